"""Training a wct decoder: relu{L}_1 features of photos back into the photos, photos only.

The trainer (:mod:`fast_style.training.trainer`) owns the loop, photos, checkpoints, logging and
precision; this is the wct kind's step. One run trains one level's decoder (``wct.level``), so each
level is budgeted, resumed and measured on its own; the decoders of other levels come from an earlier
wct model (``wct.decoders_from``), frozen, so the model each run writes stylizes with every level
trained so far. The loss is Li et al.'s: the squared error to the photo (``pixel``) plus the
project's content term at relu{L}_1 (the features the decoder inverts), both relative errors.

No painting is trained on. Validation shows, for the held-out photos, the level's reconstruction
and the whole model's stylization with paintings from ``style_folder`` (if given), which it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from PIL import Image

from fast_style.checkpoint import read_model
from fast_style.config import non_negative, positive, to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import ImageError, find_images, image_to_tensor, open_image
from fast_style.losses import LossTerms, PerceptualLoss, relative_error
from fast_style.models import resolve_model_path
from fast_style.networks.adain import AdaINNet, Decoder, encoder_record
from fast_style.networks.wct import (ARCHITECTURE, LEVELS, WctConfig, WctNet, batch_colouring_statistics,
                                     grown_decoder_state, head_length, layer, match_head_scale, rescaled_first_conv,
                                     wct)
from fast_style.training.adain import COMPARISON_LOSS, load_painting
from fast_style.training.data import resize_crop, training_paths, window
from fast_style.training.tasks import register
from fast_style.vgg import build_loss_network, describe

VALIDATION_PAINTINGS = 4  # at most this many paintings of style_folder stylize the validation photos
CALIBRATION_PHOTOS = 8  # training photos that set a grown decoder head's output scale


@dataclass
class WctTrainConfig:
    """The ``wct:`` section of a training config (with ``architecture: wct``)."""

    level: int = positive(4)  # the decoder this run trains: relu{level}_1 back to pictures
    width: int = positive(64)  # decoder channels at full resolution (see WctConfig)
    pixel_weight: float = non_negative(1.0)  # the squared error to the photo; loss.content_weight weighs the features
    decoders_from: str | None = None  # a wct model whose other levels' decoders this model keeps, frozen
    init_from: str | None = None  # a wct model, or an adain model for level 4, whose decoder this one starts from
    # Train only the head of a decoder grown from init_from (wct.level >= 2), to give the relu{level-1}_1
    # features of photos, its trained tail frozen: no pixel decoding and no second VGG pass per step.
    head_only: bool = False
    # Train the decoder on stylized features under the Gram loss compare scores with (``COMPARISON_LOSS``),
    # not on reconstruction: each photo, at half of image_size, is WCT-coloured with the next photo of the
    # batch at full image_size (the painting-to-photo size ratio compare uses), so the decoder learns what
    # WCT's features should look like as a picture under that loss. Still no painting is trained on.
    style_training: bool = False
    # With style_training: a folder (or comma-separated files) of paintings that colour the batch's first
    # photo instead of another photo, one painting a step in turn, a window placed by the step. Photos
    # alone teach photo textures; a few paintings show the decoder brushwork. Keep the paintings you judge
    # the model on out of it.
    style_paintings: str | None = None


def level_of(config: Any) -> int:
    level = config.wct.level
    if level not in LEVELS:
        raise FastStyleError(f"wct.level={level}: must be 1 to 5 (the decoder of relu1_1 ... relu5_1)")
    return level


def reconstruction_loss_config(config: Any, level: int) -> Any:
    """The trainer's ``loss`` section checked for a decoder that learns from photos alone; its content
    layer is the level's (given as {} or as exactly that layer)."""
    loss = config.loss
    if loss.style_weight and loss.style_layers:
        raise FastStyleError("architecture=wct trains decoders on photos alone: set loss.style_weight=0 "
                             "(see configs/wct.yaml)")
    if loss.content_layers and set(loss.content_layers) != {layer(level)}:
        raise FastStyleError(f"architecture=wct with wct.level={level}: loss.content_layers must be {{}} or "
                             f"{{{layer(level)}: 1.0}} (the features its decoder inverts)")
    return replace(loss, content_layers={layer(level): 1.0}, style_layers={}, style_weight=0.0)


class WctTask:
    """The wct kind's training step for :class:`~fast_style.training.trainer.Trainer`: forward + loss,
    validation, and what the model file records."""

    def __init__(self, config: Any, device: torch.device, memory_format: torch.memory_format):
        self.config, self.settings, self.device = config, config.wct, device
        self.level = level_of(config)
        self.loss_config = reconstruction_loss_config(config, self.level)
        kept = self._kept_decoders()
        levels = sorted({self.level, *kept})
        if levels != list(range(levels[0], levels[-1] + 1)):
            raise FastStyleError(f"wct.decoders_from={self.settings.decoders_from} has levels {sorted(kept)}: with "
                                 f"level {self.level} they leave a gap; train the levels in between first")
        if self.settings.head_only and not (self.settings.init_from and self.level >= 2):
            raise FastStyleError("wct.head_only=true trains only the head of a decoder whose tail is trained: give "
                                 "wct.init_from=MODEL (a wct model with this level's or the level above's decoder) "
                                 "and wct.level >= 2")
        if self.settings.style_paintings and not self.settings.style_training:
            raise FastStyleError("wct.style_paintings colours training photos with paintings under the Gram loss: "
                                 "it needs wct.style_training=true")
        if self.settings.style_training and (self.settings.head_only or kept):
            raise FastStyleError("wct.style_training=true trains one level's decoder for WCT at that level alone: "
                                 "leave wct.head_only and wct.decoders_from unset")
        wanted = {*levels, self.level - 1} if self.settings.head_only else set(levels)
        vgg = build_loss_network(self.loss_config.network, [layer(level) for level in sorted(wanted)])
        self.loss = PerceptualLoss(vgg.use_precision(config.precision), self.loss_config).to(device)
        self.style_loss = self._comparison_loss() if self.settings.style_training else None
        wct_config = WctConfig(width=self.settings.width, deepest=levels[-1], shallowest=levels[0],
                               encoder=encoder_record(vgg, self.loss_config.network, layer(levels[-1])))
        self.network = WctNet(vgg, wct_config).to(device)
        for level, decoder_state in kept.items():
            self.network.decoder(level).load_state_dict(decoder_state)
        self.decoder = self.network.decoder(self.level)
        if self.settings.init_from:
            start, grown = self._initial_decoder()
            self.decoder.load_state_dict(start)
            if grown:
                self._calibrate_head()
        self.model = self._trained_part()  # what the optimiser trains and checkpoints hold
        self.model.to(memory_format=memory_format)
        for decoder in [*self.network.decoders.values(), self.model]:
            decoder.transposed_upsampling = device.type == "cpu"  # same function, cheaper on CPU
        self.validation_paintings = self._paintings()
        self.training_paintings = self._training_paintings()

    def _comparison_loss(self) -> PerceptualLoss:
        """The Gram loss compare scores with, on its own VGG (it reaches relu5_1, past the encoder)."""
        config = replace(self.loss_config, **COMPARISON_LOSS)
        layers = sorted(set(config.content_layers) | set(config.style_layers))
        vgg = build_loss_network(config.network, layers).use_precision(self.config.precision)
        return PerceptualLoss(vgg, config).to(self.device)

    def _read(self, path: str, key: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        with naming(f"wct.{key}={path}"):
            network, metadata = read_model(resolve_model_path(path))  # a file, or a bundled name
        if getattr(network.config, "width", None) != self.settings.width:
            raise FastStyleError(f"wct.{key}={path}: its decoders are width {network.config.width}, this run's "
                                 f"wct.width is {self.settings.width}; set wct.width to match")
        return network, metadata

    def _kept_decoders(self) -> dict[int, dict[str, torch.Tensor]]:
        """The other levels' decoders from ``decoders_from`` (their state), without this run's level."""
        if not self.settings.decoders_from:
            return {}
        network, _ = self._read(self.settings.decoders_from, "decoders_from")
        if not isinstance(network, WctNet):
            raise FastStyleError(f"wct.decoders_from={self.settings.decoders_from}: not a wct model")
        return {level: network.decoder(level).state_dict() for level in network.config.levels if level != self.level}

    def _initial_decoder(self) -> tuple[dict[str, torch.Tensor], bool]:
        """This level's decoder from ``init_from`` (a wct model's, or an adain model's relu4_1 decoder), or
        a new head on a wct model's relu{level-1}_1 decoder; and whether it was grown that way."""
        path = self.settings.init_from
        network, _ = self._read(path, "init_from")
        if isinstance(network, AdaINNet) and self.level == 4:
            return rescaled_first_conv(network.decoder.state_dict(), 1 / self.network.input_scale), False
        if isinstance(network, WctNet) and self.level in network.config.levels:
            return network.decoder(self.level).state_dict(), False
        if isinstance(network, WctNet) and self.level - 1 in network.config.levels:
            shallower = network.decoder(self.level - 1).state_dict()
            return grown_decoder_state(self.level, shallower, self.settings.width), True
        raise FastStyleError(f"wct.init_from={path}: holds no relu{self.level}_1 or relu{self.level - 1}_1 decoder "
                             "(a wct model with one of those levels, or an adain model for level 4)")

    def _calibrate_head(self) -> None:
        """Set a grown decoder's head to the scale of the relu{level-1}_1 features its tail was trained on,
        measured on the first training photos (the same on every rank; a resumed run then loads its
        checkpoint over this)."""
        photos = []
        for path in training_paths(self.config.data):
            try:
                photos.append(resize_crop(path, self.config.image_size, crop_seed=None))
            except FastStyleError:
                continue  # a bad photo is the training loop's to report
            if len(photos) == CALIBRATION_PHOTOS:
                break
        if not photos:
            raise FastStyleError("wct.init_from: no readable training photo to set the new decoder head's scale from")
        batch = torch.stack(photos).to(self.device).float().div(255)
        with self.loss.network.computing("fp32"):
            features = self.loss.network(batch, [layer(self.level), layer(self.level - 1)])
        match_head_scale(self.decoder, head_length(self.level, self.settings.width),
                         self.network.decoder_input(features[layer(self.level)]),
                         self.network.decoder_input(features[layer(self.level - 1)]))

    def _trained_part(self) -> Decoder:
        """The level's decoder, or with ``head_only`` its head (the same modules, so the model file holds
        what it learns), the tail's weights frozen."""
        if not self.settings.head_only:
            return self.decoder
        head = head_length(self.level, self.settings.width)
        self.decoder[head:].requires_grad_(False)
        return Decoder(*self.decoder[:head])

    def _paintings(self) -> list[tuple[str, dict, dict[str, torch.Tensor]]]:
        """Up to :data:`VALIDATION_PAINTINGS` paintings of ``style_folder`` with their WCT statistics and,
        with ``style_training``, their Gram targets, computed once (in fp32): they stylize (and score) the
        validation photos, never train anything."""
        if not self.config.style_folder:
            return []
        paths = find_images([self.config.style_folder])[:VALIDATION_PAINTINGS]
        if not paths:
            raise FastStyleError(f"style_folder={self.config.style_folder}: no paintings found to show in validation")
        paintings = []
        with self.loss.network.computing("fp32"):
            for path in paths:
                painting = load_painting(path, self.config.style_size).float().div(255).to(self.device)
                with naming(path):
                    statistics = self.network.painting_statistics(painting)
                    paintings.append((path.name, statistics, self._style_targets(painting)))
        return paintings

    def _training_paintings(self) -> list[torch.Tensor]:
        """``wct.style_paintings`` as (3,H,W) uint8, shorter side ``image_size`` (windows are cut per step)."""
        if not self.settings.style_paintings:
            return []
        sources = [item.strip() for item in self.settings.style_paintings.split(",") if item.strip()]
        with naming(f"wct.style_paintings={self.settings.style_paintings}"):
            paths = find_images(sources)
        self.training_painting_names = [path.name for path in paths]
        return [shorter_side(path, self.config.image_size) for path in paths]

    def _styles(self, photos: torch.Tensor, step: int) -> torch.Tensor:
        """The "paintings" of a style-training step: each photo's neighbour in the batch, the first one
        replaced by a window of a training painting (the step picks which and where) if there are any."""
        styles = photos.roll(1, 0)
        if self.training_paintings:
            painting = self.training_paintings[step % len(self.training_paintings)]
            styles = styles.clone()
            styles[0] = window(painting, photos.shape[-1], crop_seed=step).to(styles).div(255)
        return styles

    def _style_targets(self, painting: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.style_loss is None:
            return {}
        self.style_loss.set_style(painting)
        return dict(self.style_loss.style_targets)

    def terms(self, forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., LossTerms],
              photos: torch.Tensor, step: int) -> LossTerms:
        """Per-image loss terms of one step: decode the photos' features, compare with features and photos;
        with ``head_only``, compare the head's output with the photos' relu{level-1}_1 features."""
        if self.settings.head_only:
            return self._head_terms(forward, photos)
        if self.style_loss is not None:
            return self._style_terms(forward, photos, step)
        with torch.no_grad():
            target = self.loss.network(photos, [layer(self.level)])[layer(self.level)]
        output = forward(self.network.decoder_input(target))
        terms = score(output, content_targets={layer(self.level): target})
        return replace(terms, pixel=self.settings.pixel_weight * relative_error(output, photos))

    def _head_terms(self, forward: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor) -> LossTerms:
        """The head's relative error to relu{level-1}_1, as the content term (pixel, style, tv: zero)."""
        with torch.no_grad():
            features = self.loss.network(photos, [layer(self.level), layer(self.level - 1)])
        output = forward(self.network.decoder_input(features[layer(self.level)]))
        error = relative_error(output, self.network.decoder_input(features[layer(self.level - 1)]))
        zero = torch.zeros_like(error)
        return LossTerms(content=self.loss_config.content_weight * error, style=zero, tv=zero)

    def _style_terms(self, forward: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor,
                     step: int) -> LossTerms:
        """The comparison loss of each half-size photo WCT-coloured with the next photo (or a painting) at
        full size."""
        here = layer(self.level)
        with torch.no_grad():
            content = F.interpolate(photos, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
            styles = self._styles(photos, step)
            style_features = self.style_loss.network(styles, sorted({here, *self.style_loss.style_layers}))
            self.style_loss.set_style_features(style_features)
            targets = self.style_loss.content_features(content)
            features = self.loss.network(content, [here])[here]
            coloured = wct(features, *batch_colouring_statistics(style_features[here]))
        return self.style_loss(forward(self.network.decoder_input(coloured)), content_targets=targets)

    @torch.no_grad()
    def validate(self, photos: torch.Tensor) -> tuple[dict[str, float], torch.Tensor] | None:
        """The level's reconstructions of the held-out photos (scored), then the whole model's stylizations
        of them with the validation paintings (photo i with painting i mod n), in fp32. With ``head_only``
        too, the whole decoder's reconstruction is what is scored; with ``style_training``, the
        stylizations under the comparison loss (as ``stylized_loss``, ``stylized_content``, ...)."""
        self.decoder.eval()
        reconstructions, scores, stylized, stylized_scores = [], [], [], []
        with self.loss.network.computing("fp32"):
            for index, photo in enumerate(photos.to(self.device).split(1)):
                target = self.loss.network(photo, [layer(self.level)])[layer(self.level)]
                output = self.decoder(self.network.decoder_input(target)).float()
                terms = self.loss(output, content_targets={layer(self.level): target})
                scores.append(replace(terms, pixel=self.settings.pixel_weight * relative_error(output, photo)).as_floats())
                reconstructions.append(output.clamp(0, 1).cpu())
                if self.validation_paintings:
                    _, statistics, targets = self.validation_paintings[index % len(self.validation_paintings)]
                    self.network.set_statistics([(statistics, 1.0)])
                    picture = self.network(photo).float()
                    stylized.append(picture.cpu())
                    if targets:
                        self.style_loss.style_targets = targets
                        with self.style_loss.network.computing("fp32"):
                            stylized_scores.append(self.style_loss(picture, content=photo).as_floats())
        self.decoder.train()
        terms = mean_scores(scores)
        if stylized_scores:
            terms |= {f"stylized_{key}": value for key, value in mean_scores(stylized_scores).items()}
        return terms, torch.cat(reconstructions + stylized)

    def metadata(self, steps: int) -> dict[str, Any]:
        """``style`` (no painting was trained on; the size compare and stylize take paintings at), the Gram
        loss compare scores with, the reconstruction loss, the loss network and where each decoder came from."""
        network = {**to_dict(self.loss_config.network), "weights": self.loss.network.source}
        return {
            "style": {"size": self.config.style_size, "paintings": [],
                      "trained_on": "photos only" if not self.training_paintings else
                      "photos, coloured with other photos and with wct.style_paintings"},
            "loss": {"network": network, **COMPARISON_LOSS},
            "training_loss": {**to_dict(self.loss_config), "pixel_weight": self.settings.pixel_weight},
            "loss_network": describe(self.loss.network),
            "decoders": {"trained": self.level, "kept_from": self.settings.decoders_from,
                         "init_from": self.settings.init_from, "head_only": self.settings.head_only,
                         "style_training": self.settings.style_training,
                         "style_paintings": getattr(self, "training_painting_names", [])},
        }


def shorter_side(path: Path, size: int) -> torch.Tensor:
    """A painting as (3,H,W) uint8 with its shorter side ``size`` px (one line if it cannot be read)."""
    try:
        image = open_image(path)
    except ImageError as error:
        raise FastStyleError(f"wct.style_paintings: {error}") from None
    scale = size / min(image.size)
    image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=3.0)
    return image_to_tensor(image).mul(255).round().to(torch.uint8)


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(score[key] for score in scores) / len(scores) for key in scores[0]}


register(ARCHITECTURE, WctTask)
