"""``johnson2016``: Johnson et al.'s transformation network, one painting per trained network.

The network itself is :mod:`fast_style.transformer`; its inference form
:mod:`fast_style.inference`, its exact tiling :mod:`fast_style.tiling`. This module is the
registry entry that ties them to model files, stylize, export and compare, with the traceable form
export uses (:class:`ExportableNet`); its training step is :mod:`fast_style.training.johnson2016`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.inference import inference_network
from fast_style.networks.registry import ExportSpec, register
from fast_style.tiling import stylize_tiled
from fast_style.transformer import ARCHITECTURE, MIN_SIDE, ModelConfig, TransformerNet


def padding_to_fit(side: torch.Tensor) -> torch.Tensor:
    """Tensor version of :func:`fast_style.transformer.padding_to_fit`, traceable with dynamic sizes."""
    target = torch.clamp(side, min=MIN_SIDE)
    return target + torch.remainder(-target, 4) - side


class ExportableNet(nn.Module):
    """A :class:`TransformerNet` whose padding is expressed in tensor ops, for tracing.

    ``TransformerNet.forward`` reflects when the padding is smaller than both sides and replicates
    otherwise. A traced graph cannot branch, so both are computed (the input has 3 channels: cheap)
    and ``torch.where`` picks; the reflect branch reflects at most ``side - 1`` pixels and replicates
    the rest, so it stays valid even on the tiny images where it is not chosen.
    """

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(x)
        height, width = shape[2], shape[3]
        pad_h, pad_w = padding_to_fit(height), padding_to_fit(width)
        reflect_h, reflect_w = torch.minimum(pad_h, height - 1), torch.minimum(pad_w, width - 1)
        reflected = F.pad(F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect"),
                          (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
        replicated = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        padded = torch.where((pad_h < height) & (pad_w < width), reflected, replicated)
        y = self.net.decoder(self.net.residuals(self.net.encoder(padded)))
        return torch.sigmoid(y[:, :, :height, :width])


class Johnson2016:
    """Registry entry for :class:`~fast_style.transformer.TransformerNet`."""

    name = ARCHITECTURE
    takes_style = False

    def build(self, settings: dict[str, Any]) -> TransformerNet:
        return TransformerNet(ModelConfig(**settings))

    def stored_tensors(self, network: TransformerNet) -> dict[str, torch.Tensor]:
        return network.state_dict()

    def load_tensors(self, network: TransformerNet, tensors: dict[str, torch.Tensor]) -> None:
        network.load_state_dict({name: value.float() for name, value in tensors.items()})

    def inference_form(self, network: TransformerNet, winograd: bool) -> TransformerNet:
        return inference_network(network, winograd=winograd)

    def stylize_tiled(self, network: TransformerNet, batch: torch.Tensor, tile: int) -> torch.Tensor:
        return stylize_tiled(network, batch, tile)

    def bytes_per_pixel(self, network: TransformerNet, element: int) -> int:
        """Measured 6.2 x width x element size on an H100 (the last upsample's 2w full-size channels,
        their padded copy and the w-channel output, plus workspaces); 7x leaves a margin."""
        return 7 * network.config.width * element

    def export_spec(self, network: TransformerNet) -> ExportSpec:
        axes = {0: "batch", 2: "height", 3: "width"}
        return ExportSpec(ExportableNet(network).eval(), ["image"], {"image": axes, "stylized": axes},
                          lambda shape, generator: (torch.rand(shape, generator=generator),), network)


KIND = register(Johnson2016())
