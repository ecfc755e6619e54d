"""Training the adain decoder with the project's trainer: paintings, augmentation and the per-step loss.

The trainer (:mod:`fast_style.training.trainer`) owns the loop, photos, checkpoints, logging and precision; this
module is the adain kind's step: encode photos (and paintings), AdaIN, decode, score with the one
perceptual loss using mean/std style statistics (``loss.style_statistic: mean_std``).

Two phases, because a handful of paintings is far from the ~80k WikiArt paintings of the paper:

1. **reconstruction** (``adain.reconstruction_steps``): each photo is its own painting, so the AdaIN
   target is the photo's own relu4_1 features and the decoder learns to invert VGG (Li et al. 2017
   trained their decoders this way alone); it needs no paintings at all.
2. **style**: each photo is paired with a random crop of a random training painting, heavily
   augmented (scale, crop, flip, brightness, contrast, saturation, hue), so the decoder sees far more
   statistics than there are paintings.

``held_out`` paintings are never trained on; validation stylizes the held-out photos with them, so the
TensorBoard pictures and validation losses show generalisation to unseen paintings. Every random choice
of a step comes from a generator seeded by (seed, step): a resumed run trains on exactly the paintings
and crops an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from fast_style.config import non_negative, positive, sequence, to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import ImageError, find_images, load_image
from fast_style.losses import LossTerms, PerceptualLoss, mean_std
from fast_style.networks.adain import ARCHITECTURE, STYLE_LAYERS, AdaINConfig, AdaINNet, adain, encoder_record
from fast_style.paintings import check_painting_size
from fast_style.training.tasks import register
from fast_style.vgg import build_loss_network, describe

# What `compare` scores adain models with: the Gram loss of the bundled per-painting models, so every
# kind of network stands in one table against the same Gatys baseline.
COMPARISON_LOSS = {"content_layers": {"relu4_2": 1.0},
                   "style_layers": {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0},
                   "content_weight": 1.0, "style_weight": 1.5, "tv_weight": 10.0, "style_statistic": "gram"}
STEP_SEED_OFFSET = 7_777_777  # keeps painting draws apart from the photo sampler's seeds


@dataclass
class AdaINTrainConfig:
    """The ``adain:`` section of a training config (with ``architecture: adain``)."""

    width: int = positive(64)  # decoder channels at full resolution (see AdaINConfig)
    reconstruction_steps: int = non_negative(2000)  # phase 1: photos are their own paintings
    held_out: list[str] = sequence([])  # painting file names (or stems) never trained on: validation only
    min_scale: float = positive(1.0)  # a painting's shorter side is scaled to image_size x [min, max] before cropping
    max_scale: float = positive(2.0)
    flip: bool = True
    brightness: float = non_negative(0.3)  # multiplied by 1 +- this
    contrast: float = non_negative(0.3)  # distance from the mean grey scaled by 1 +- this
    saturation: float = non_negative(0.5)  # distance from the grey of each pixel scaled by 1 +- this
    hue: float = non_negative(0.2)  # rotated by up to +- this fraction of a turn


class Paintings:
    """The style folder's paintings as uint8 tensors (longer side ``style_size``), split into training
    and held-out ones, with deterministic augmented crops for training."""

    def __init__(self, folder: str, held_out: list[str], style_size: int):
        paths = find_images([folder])
        if not paths:
            raise FastStyleError(f"style_folder={folder}: no paintings found; point it at a folder of images")
        wanted = {Path(name).stem for name in held_out}
        found = {path.stem for path in paths}
        missing = sorted(wanted - found)
        if missing:
            raise FastStyleError(f"adain.held_out: '{missing[0]}' is not a painting in {folder}")
        self.train_paths = [path for path in paths if path.stem not in wanted]
        self.held_out_paths = [path for path in paths if path.stem in wanted]
        if not self.train_paths:
            raise FastStyleError(f"adain.held_out holds out every painting of {folder}; leave some to train on")
        self.train = [load_painting(path, style_size) for path in self.train_paths]
        self.held_out = [load_painting(path, style_size) for path in self.held_out_paths]

    def batch(self, count: int, size: int, generator: torch.Generator, config: AdaINTrainConfig) -> torch.Tensor:
        """``count`` augmented ``size``-pixel crops of random training paintings, (count,3,size,size) in [0, 1]."""
        crops = []
        for _ in range(count):
            index = int(torch.randint(len(self.train), (1,), generator=generator))
            crops.append(augment(self.train[index], size, generator, config))
        return torch.stack(crops)


def load_painting(path: Path, style_size: int) -> torch.Tensor:
    """(3,H,W) uint8, longer side ``style_size``; a tiny or unreadable painting is one line."""
    try:
        painting = load_image(path, size=style_size)
    except ImageError as error:
        raise FastStyleError(f"painting {error}") from None
    check_painting_size(painting, path)
    return painting.mul(255).round().to(torch.uint8)


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment(painting: torch.Tensor, size: int, generator: torch.Generator, config: AdaINTrainConfig) -> torch.Tensor:
    """A random scale, ``size`` crop, flip and colour jitter of a (3,H,W) uint8 painting -> float [0, 1]."""
    image = painting.float().div(255).unsqueeze(0)
    short = min(image.shape[-2:])
    scale = uniform(generator, config.min_scale, max(config.min_scale, config.max_scale)) * size / short
    height, width = (max(size, round(side * scale)) for side in image.shape[-2:])
    image = F.interpolate(image, size=(height, width), mode="bilinear", antialias=scale < 1, align_corners=False)[0]
    top = int(torch.randint(height - size + 1, (1,), generator=generator))
    left = int(torch.randint(width - size + 1, (1,), generator=generator))
    image = image[:, top:top + size, left:left + size]
    if config.flip and float(torch.rand((), generator=generator)) < 0.5:
        image = image.flip(-1)
    return jitter(image, generator, config)


# RGB <-> YIQ: hue is the angle of the (I, Q) chroma plane, so a hue shift is a rotation there.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


def jitter(image: torch.Tensor, generator: torch.Generator, config: AdaINTrainConfig) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter of a (3,H,W) image in [0, 1]."""
    image = image * uniform(generator, 1 - config.brightness, 1 + config.brightness)
    grey = (RGB_TO_YIQ[0].view(3, 1, 1) * image).sum(0, keepdim=True)
    image = torch.lerp(grey.mean().expand_as(image), image, uniform(generator, 1 - config.contrast, 1 + config.contrast))
    grey = (RGB_TO_YIQ[0].view(3, 1, 1) * image).sum(0, keepdim=True)
    image = torch.lerp(grey.expand_as(image), image, uniform(generator, 1 - config.saturation, 1 + config.saturation))
    angle = 2 * math.pi * uniform(generator, -config.hue, config.hue)
    cos, sin = math.cos(angle), math.sin(angle)
    rotate = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    image = torch.einsum("ij,jhw->ihw", YIQ_TO_RGB @ rotate @ RGB_TO_YIQ, image)
    return image.clamp(0.0, 1.0)


class AdaINTask:
    """The adain kind's training step for :class:`~fast_style.training.trainer.Trainer`: forward + loss, validation,
    and what the model file records."""

    def __init__(self, config: Any, device: torch.device, memory_format: torch.memory_format):
        if not config.style_folder:
            raise FastStyleError("architecture=adain trains on a folder of paintings: set style_folder=DIR")
        loss_config = config.loss
        if loss_config.style_statistic != "mean_std" or set(loss_config.content_layers) != {"relu4_1"}:
            raise FastStyleError("architecture=adain needs loss.style_statistic=mean_std and loss.content_layers "
                                 "{relu4_1: 1} (its content target is the AdaIN output at relu4_1); see configs/adain.yaml")
        self.config, self.settings, self.device, self.memory_format = config, config.adain, device, memory_format
        self.paintings = Paintings(config.style_folder, config.adain.held_out, config.style_size)
        vgg = build_loss_network(loss_config.network, sorted(set(STYLE_LAYERS) | set(loss_config.style_layers)))
        if vgg.names[-1] != "relu4_1":
            raise FastStyleError("architecture=adain: the loss layers must end at relu4_1 (the encoder's depth)")
        self.loss = PerceptualLoss(vgg.use_precision(config.precision), loss_config).to(device)
        adain_config = AdaINConfig(width=config.adain.width, encoder=encoder_record(vgg, loss_config.network))
        self.network = AdaINNet(vgg, adain_config).to(device)
        self.network.decoder.to(memory_format=memory_format)
        self.network.decoder.transposed_upsampling = device.type == "cpu"  # same function, cheaper on CPU
        self.model = self.network.decoder  # what the optimiser trains and checkpoints hold
        self.held_out_targets = self._held_out_targets()

    @torch.no_grad()
    def _held_out_targets(self) -> list[tuple[tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]]:
        """Per held-out painting: its relu4_1 (mean, std) and its style targets, computed once."""
        targets = []
        for path, painting in zip(self.paintings.held_out_paths, self.paintings.held_out):
            with naming(path):
                features = self.loss.network(painting.float().div(255).unsqueeze(0).to(self.device), STYLE_LAYERS)
            self.loss.set_style_features(features)
            targets.append((mean_std(features["relu4_1"]), dict(self.loss.style_targets)))
        return targets

    def phase(self, step: int) -> str:
        return "reconstruction" if step < self.settings.reconstruction_steps else "style"

    def terms(self, forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., LossTerms],
              photos: torch.Tensor, step: int) -> LossTerms:
        """Per-image loss terms of one training step (the trainer averages, checks and back-propagates)."""
        with torch.no_grad():
            photo_features = self.loss.network(photos, STYLE_LAYERS)
            if self.phase(step) == "reconstruction":
                style_features = photo_features
                target = photo_features["relu4_1"]
            else:
                generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + STEP_SEED_OFFSET + step)
                paintings = self.paintings.batch(photos.shape[0], photos.shape[-1], generator, self.settings)
                paintings = paintings.to(self.device).contiguous(memory_format=self.memory_format)
                style_features = self.loss.network(paintings, STYLE_LAYERS)
                target = adain(photo_features["relu4_1"], *mean_std(style_features["relu4_1"]))
            self.loss.set_style_features(style_features)
        return score(forward(target), content_targets={"relu4_1": target})

    @torch.no_grad()
    def validate(self, photos: torch.Tensor) -> tuple[dict[str, float], torch.Tensor] | None:
        """Held-out photos stylized with the held-out paintings (photo i with painting i mod n)."""
        if not self.held_out_targets:
            return None
        self.model.eval()
        outputs, scores = [], []
        for index, photo in enumerate(photos.to(self.device)):
            (style_mean, style_std), targets = self.held_out_targets[index % len(self.held_out_targets)]
            photo = photo.unsqueeze(0)
            target = adain(self.network.encoder(photo), style_mean, style_std).float()
            self.loss.style_targets = targets
            stylized = self.model(target.contiguous(memory_format=self.memory_format)).float()
            with self.loss.network.computing("fp32"):  # comparable across precisions
                scores.append(self.loss(stylized, content_targets={"relu4_1": target}).as_floats())
            outputs.append(stylized.clamp(0, 1).cpu())
        self.model.train()
        terms = {key: sum(score[key] for score in scores) / len(scores) for key in scores[0]}
        return terms, torch.cat(outputs)

    def metadata(self, steps: int) -> dict[str, Any]:
        """``style`` (the paintings seen and held out, their size), the Gram loss compare scores with, the
        training loss and the loss network."""
        network = {**to_dict(self.config.loss.network), "weights": self.loss.network.source}
        return {
            "style": {"size": self.config.style_size, "folder": self.config.style_folder,
                      "paintings": [path.name for path in self.paintings.train_paths],
                      "held_out": [path.name for path in self.paintings.held_out_paths]},
            "loss": {"network": network, **COMPARISON_LOSS},
            "training_loss": to_dict(self.config.loss),
            "loss_network": describe(self.loss.network),
            "phases": {"reconstruction_steps": self.settings.reconstruction_steps},
        }



register(ARCHITECTURE, AdaINTask)
