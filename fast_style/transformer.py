"""The image transformation network of Johnson et al. (2016), made exact at every size.

9x9 conv -> two stride-2 convs -> residual blocks -> two (nearest-neighbour upsample +
conv) stages -> 9x9 conv -> sigmoid. Instance norm with affine parameters, reflection
padding everywhere. Upsampling is resize + conv rather than a transposed conv, which
leaves checkerboard patterns.

Any width and height work: the input is reflection-padded up to a multiple of 4 and the
output cropped back, so the result has exactly the input's size with no shift (the
pytorch/examples network returns a different size when a side is not a multiple of 4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.config import positive

ARCHITECTURE = "johnson2016"


@dataclass
class ModelConfig:
    """Size of the transformation network; stored in every checkpoint."""

    architecture: ClassVar[str] = ARCHITECTURE
    width: int = positive(32)  # channels of the first conv; doubled by each downsampling
    residual_blocks: int = positive(5)

    def to_metadata(self) -> dict:
        return {"architecture": ARCHITECTURE, **asdict(self)}


MIN_SIDE = 16  # the 9x9 convs' reflection padding needs room at a quarter of the size


def padding_to_fit(side: int) -> int:
    """Pixels to add so ``side`` is a multiple of 4 and at least ``MIN_SIDE``."""
    return max(MIN_SIDE, side + (-side) % 4) - side


def pad_to_fit(x: torch.Tensor) -> torch.Tensor:
    """Pad (B,C,H,W) at the bottom and right to sides :func:`padding_to_fit` accepts (the forward pass
    crops back). Reflection needs the padding to be smaller than the side; replicate covers tiny images."""
    height, width = x.shape[-2:]
    pad_h, pad_w = padding_to_fit(height), padding_to_fit(width)
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class ConvLayer(nn.Sequential):
    """Reflection pad -> conv -> (instance norm -> ReLU), the network's only building block."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *,
                 upsample: bool = False, activate: bool = True):
        layers: list[nn.Module] = []
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride)]
        if activate:
            layers += [nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip; the second has no ReLU so the block can be an identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3),
                                  nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformerNet(nn.Module):
    """Photo in, stylized photo out: (B, 3, H, W) in [0, 1] -> same shape in [0, 1]."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        w = self.config.width
        self.encoder = nn.Sequential(ConvLayer(3, w, 9), ConvLayer(w, 2 * w, 3, 2), ConvLayer(2 * w, 4 * w, 3, 2))
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(self.config.residual_blocks)])
        self.decoder = nn.Sequential(ConvLayer(4 * w, 2 * w, 3, upsample=True), ConvLayer(2 * w, w, 3, upsample=True),
                                     ConvLayer(w, 3, 9, activate=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.decoder(self.residuals(self.encoder(pad_to_fit(x))))
        return torch.sigmoid(y[..., :height, :width])
