"""``johnson2016_multi``: several paintings in one network (Dumoulin et al. 2017, conditional instance norm).

Johnson's network (:mod:`fast_style.transformer`) with every instance norm made *conditional*: the
convolutions are shared by all paintings, and each painting owns one row of scale (γ) and shift (β)
in every norm layer, about 3.2k numbers per painting at width 32. A mix of paintings is a weighted
sum of their rows (weights normalised to sum to 1), so one-hot weights give exactly a painting's row.

Stylizing first fixes the mix (:meth:`MultiStyleNet.select`); :meth:`MultiStyleNet.single_style`
then folds the mixed rows into a plain :class:`~fast_style.transformer.TransformerNet`, so inference,
its fast form and tiling are johnson2016's own and a multi-style model costs nothing extra to run.
Training gives every image of a batch its own painting (``select`` with one row of weights per image).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.config import positive, sequence
from fast_style.errors import FastStyleError
from fast_style.networks.johnson2016 import ExportableNet, Johnson2016
from fast_style.networks.registry import ExportSpec, register
from fast_style.paintings import clipped, normalised_weights, parse_weighted
from fast_style.transformer import ModelConfig, TransformerNet

ARCHITECTURE = "johnson2016_multi"
MAX_STYLES = 1024  # far beyond Dumoulin et al.'s 32; model files are checked against it (fast_style.model_file)


@dataclass
class MultiStyleConfig:
    """The network's size and its paintings' names in row order; recorded in model.json's ``model``."""

    architecture: ClassVar[str] = ARCHITECTURE
    width: int = positive(32)
    residual_blocks: int = positive(5)
    styles: list[str] = sequence([])

    def to_metadata(self) -> dict:
        return {"architecture": ARCHITECTURE, **dataclasses.asdict(self)}

    def plain(self) -> ModelConfig:
        """The single-painting network of the same size."""
        return ModelConfig(width=self.width, residual_blocks=self.residual_blocks)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose scale and shift are a weighted sum of per-painting rows.

    ``mix`` ((B|1, styles) weights summing to 1) is set by the network before each forward pass. The
    rows are mixed with elementwise products and a sum, never a matrix product, so they stay fp32
    under autocast and a one-hot mix reproduces its row bit for bit.
    """

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.mix: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise FastStyleError("no painting chosen for this multi-style network: call select() first")
        mix = self.mix.to(self.weight.dtype).unsqueeze(-1)  # (B|1, styles, 1)
        scale = (mix * self.weight).sum(1)[..., None, None]
        shift = (mix * self.bias).sum(1)[..., None, None]
        return F.instance_norm(x) * scale + shift


def normalised(mix: torch.Tensor) -> torch.Tensor:
    """Weights divided by their sum per row, so ``a=1,b=1`` and ``a=0.5,b=0.5`` are the same mix; divided
    by the row's largest first, so weights near float32's limit (``3e38`` twice) do not sum to infinity."""
    mix = mix / mix.amax(-1, keepdim=True)
    return mix / mix.sum(-1, keepdim=True)


class MultiStyleNet(TransformerNet):
    """Photo in, stylized photo out, in the painting mix chosen by :meth:`select`.

    A :class:`TransformerNet` whose instance norms are :class:`ConditionalInstanceNorm2d`: tensor
    names are johnson2016's, the norms' weights having one row per painting.
    """

    def __init__(self, config: MultiStyleConfig | None = None):
        config = config or MultiStyleConfig()
        if not 1 <= len(config.styles) <= MAX_STYLES:
            raise FastStyleError(f"a multi-style network needs 1 to {MAX_STYLES} paintings, got {len(config.styles)}")
        super().__init__(config.plain())
        self.config = config
        for parent in list(self.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.InstanceNorm2d):
                    setattr(parent, name, ConditionalInstanceNorm2d(child.num_features, len(config.styles)))

    @property
    def norms(self) -> list[ConditionalInstanceNorm2d]:
        return [module for module in self.modules() if isinstance(module, ConditionalInstanceNorm2d)]

    @property
    def styles(self) -> list[str]:
        return list(self.config.styles)

    def select(self, mix: torch.Tensor) -> None:
        """Stylize with ``mix`` from now on: (styles,) for every image or (B, styles) one row per image,
        non-negative, normalised here."""
        mix = normalised(mix.reshape(-1, len(self.config.styles)).float())
        for norm in self.norms:
            norm.mix = mix

    @torch.no_grad()
    def single_style(self) -> TransformerNet:
        """A plain network computing this one with the selected (single-row) mix: the mixed rows become
        ordinary instance-norm parameters."""
        mix = self.norms[0].mix
        if mix is None or mix.shape[0] != 1:
            raise FastStyleError("single_style needs one mix for every image; call select() with (styles,) weights")
        plain = TransformerNet(self.config.plain())
        conditional = dict(self.named_modules())
        for name, module in plain.named_modules():
            if isinstance(module, nn.InstanceNorm2d):
                source = conditional[name]
                weights = mix.to(source.weight.device).T  # (styles, 1)
                module.weight.copy_((weights * source.weight).sum(0))
                module.bias.copy_((weights * source.bias).sum(0))
        plain_state = plain.state_dict()
        for name, value in self.state_dict().items():
            if plain_state[name].shape == value.shape:
                plain_state[name] = value
        plain.load_state_dict(plain_state)
        return plain.to(next(self.parameters()).device, next(self.parameters()).dtype)


def mix_of(styles: Sequence[str], weights: Mapping[str, float], text: str) -> torch.Tensor:
    """The (styles,) weight vector for ``{name: weight}``; unknown names, negative weights or weights
    summing to 0 are one line (``text`` is what the user wrote, for the message)."""
    known = clipped(", ".join(styles))
    text = clipped(text)
    for name in weights:
        if name not in styles:
            hint = ("; a style whose name holds ',' is chosen alone, by its whole name"
                    if any("," in style for style in styles) else "")
            raise FastStyleError(f"--style {text}: this model has no style {clipped(name)!r} (it has: {known}){hint}")
    # Parsed once and normalised in float64, largest first: 3e38 twice is an even mix, not infinity.
    values = normalised_weights(list(weights.values()), text)
    mix = torch.zeros(len(styles), dtype=torch.float64)
    for name, weight in zip(weights, values):
        mix[styles.index(name)] += weight
    return mix.float()


def parse_mix(text: str, styles: Sequence[str]) -> torch.Tensor:
    """``"starry_night"`` or ``"starry_night=0.7,wave=0.3"`` -> the (styles,) weight vector."""
    weights: dict[str, float] = {}
    for name, value in parse_weighted(text, "NAME or a=0.7,b=0.3", lambda name: name in styles):
        weights[name] = weights.get(name, 0.0) + value
    return mix_of(styles, weights, text)


class ExportableMultiStyle(nn.Module):
    """(image, style_weights) -> stylized: the mix is an input of the exported graph."""

    def __init__(self, net: MultiStyleNet):
        super().__init__()
        self.net = net
        self.body = ExportableNet(net)

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        self.net.select(style_weights)
        return self.body(image)


class MultiStyle(Johnson2016):
    """Registry entry for :class:`MultiStyleNet`: johnson2016's, but for how it is built, run (through
    the plain network of the chosen mix), and exported (the mix is an input); its training step is
    :mod:`fast_style.training.multi_style`."""

    name = ARCHITECTURE
    takes_style = False  # no painting file: styles are chosen by name (style_names)

    def build(self, settings: dict[str, Any]) -> MultiStyleNet:
        return MultiStyleNet(MultiStyleConfig(**settings))

    def style_names(self, network: MultiStyleNet) -> list[str]:
        return network.styles

    def inference_form(self, network: MultiStyleNet, winograd: bool) -> TransformerNet:
        return super().inference_form(network.single_style(), winograd)

    def stylize_tiled(self, network: MultiStyleNet, batch: torch.Tensor, tile: int) -> torch.Tensor:
        """johnson2016's exact tiling, on the plain network of the selected mix (tiling fixes each
        instance norm's statistics, which it finds by type)."""
        return super().stylize_tiled(network.single_style(), batch, tile)

    def export_spec(self, network: MultiStyleNet) -> ExportSpec:
        axes = {0: "batch", 2: "height", 3: "width"}
        count = len(network.styles)

        def example(shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.rand(shape, generator=generator), torch.rand((shape[0], count), generator=generator) + 0.01

        def reference(image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
            network.select(style_weights)
            return network(image)

        return ExportSpec(ExportableMultiStyle(network).eval(), ["image", "style_weights"],
                          {"image": axes, "style_weights": {0: "batch"}, "stylized": axes}, example, reference)


KIND = register(MultiStyle())
