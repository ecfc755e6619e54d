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


def fold_upsampled_taps(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The 3 taps of a kernel along ``dim`` -> the 4 taps of the stride-2 transposed kernel that gives the
    same outputs on the nearest-neighbour 2x upsampled input (see :func:`upsample_conv`).

    An output pixel of the upsampled image sees 2 distinct input pixels per axis through a 3-tap window;
    which taps land on which depends on the output's parity: taps (2), (1, 2), (0, 1), (0).
    Sums, not a product, so autocast leaves them in the weights' precision.
    """
    first, middle, last = weight.unbind(dim)
    return torch.stack([last, middle + last, first + middle, first], dim)


def upsample_kernel(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 conv's (out, in, 3, 3) weight -> the (in, out, 4, 4) kernel of :func:`upsample_conv`."""
    return fold_upsampled_taps(fold_upsampled_taps(weight, 2), 3).transpose(0, 1).contiguous()


def upsample_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Nearest 2x upsample -> reflection pad 1 -> 3x3 conv, as one stride-2 transposed 4x4 conv with
    ``kernel = upsample_kernel(weight)``: the same outputs.

    Reflection-padding an upsampled image equals upsampling a replicate-padded one, and a 3x3 window on a
    nearest-upsampled image covers only 2x2 distinct pixels; so each output takes 4 instead of 9
    multiply-adds, and the 4x larger upsampled and padded copies (and, in training, their gradients) are
    never written.
    """
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv_transpose2d(x, kernel, bias, stride=2, padding=3)


def upsampled_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv``'s layer (nearest 2x upsample -> reflection pad 1 -> ``conv``) as :func:`upsample_conv`, its
    kernel folded from the current weights (trained layers change every step), in fp32 and cast back to
    the weights' type so a network cast to bf16 as a whole rounds only the folded sums."""
    kernel = upsample_kernel(conv.weight.float()).to(conv.weight.dtype)
    return upsample_conv(x, kernel, conv.bias)


def row_split_weight(weight: torch.Tensor) -> torch.Tensor:
    """A k x k conv's (out, in, k, k) weight -> the (k*out, in, 1, k) weight of :func:`row_split_conv`:
    one 1 x k kernel per row of the original and output channel, row by row."""
    out_channels, in_channels, rows, cols = weight.shape
    return weight.permute(2, 0, 1, 3).reshape(rows * out_channels, in_channels, 1, cols)


def shifted_row_blocks(partial: torch.Tensor, rows: int) -> torch.Tensor:
    """(N, rows*C, H + rows - 1, W) -> a (N, H, W, rows, C) view: ``[n, y, x, r, c]`` is row block r's
    channel c, moved up r rows, ``partial[n, r*C + c, y + r, x]``. Distinct elements, one strided view."""
    batch, channels, padded_height, width = partial.shape
    out_channels, height = channels // rows, padded_height - rows + 1
    s_n, s_c, s_h, s_w = partial.stride()
    return torch.as_strided(partial, (batch, height, width, rows, out_channels),
                            (s_n, s_h, s_w, s_h + out_channels * s_c, s_c))  # compiles without breaks


class _SumOfShiftedRows(torch.autograd.Function):
    """The sum over r of :func:`shifted_row_blocks` in fp32, as (N, C, H, W); its backward writes the
    gradient into each row block through the same view, one pass (autograd's backward of a strided sum
    or of slices would fill and add a full-size tensor per row)."""

    @staticmethod
    def forward(ctx, partial: torch.Tensor, rows: int) -> torch.Tensor:
        ctx.partial_meta = (partial.shape, partial.dtype, partial.device)
        ctx.rows = rows
        # In fp32 before the strided sum: summing a bf16 view with dtype=float32 gathers it element by
        # element, several times slower (docs/performance.md).
        return shifted_row_blocks(partial.float(), rows).sum(3).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        shape, dtype, device = ctx.partial_meta
        grad_partial = torch.zeros(shape, dtype=dtype, device=device)
        blocks = shifted_row_blocks(grad_partial, ctx.rows)
        blocks.copy_(grad.permute(0, 2, 3, 1).unsqueeze(3).expand(blocks.shape))
        return grad_partial, None


def row_split_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: int) -> torch.Tensor:
    """A k x k conv (no padding, stride 1) to few channels, as a 1 x k conv to k times as many channels
    (``weight = row_split_weight(...)``) whose row blocks are summed shifted, in fp32.

    The multiply-adds are the same, but a 3-channel output leaves most vector lanes idle: oneDNN ran
    the final 9x9 conv to RGB at a quarter of the wide layers' speed, forward and backward; 27
    channels fill them (docs/performance.md).
    """
    return _SumOfShiftedRows.apply(F.conv2d(x, weight), rows) + bias.float().view(1, -1, 1, 1)


class ConvLayer(nn.Sequential):
    """Reflection pad -> conv -> (instance norm -> ReLU), the network's only building block.

    With :meth:`TransformerNet.use_cheaper_layers`, an upsampling layer computes its first three steps as
    :func:`upsample_conv` (``transposed_upsampling``) and the final layer its conv as :func:`row_split_conv`
    (``row_split``); the parameters, and what the layer computes, are the same either way.
    """

    transposed_upsampling = False
    row_split = False

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *,
                 upsample: bool = False, activate: bool = True):
        layers: list[nn.Module] = []
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride)]
        if activate:
            layers += [nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)

    @property
    def upsamples(self) -> bool:
        return isinstance(self[0], nn.Upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.row_split:
            conv = self[1]
            return row_split_conv(self[0](x), row_split_weight(conv.weight), conv.bias, conv.kernel_size[0])
        if not self.transposed_upsampling:
            return super().forward(x)
        x = upsampled_conv(x, self[2])
        for layer in list(self)[3:]:
            x = layer(x)
        return x


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

    def use_cheaper_layers(self, enabled: bool = True) -> "TransformerNet":
        """Compute the upsampling layers as transposed convs (:func:`upsample_conv`) and the final conv to
        RGB as a row-split one (:func:`row_split_conv`): the same function and parameters, forward and
        backward, at half (fp32) to two thirds (bf16) of the upsampling's cost and about half the final
        conv's on CPU, so the trainers set it there (docs/performance.md). Unmeasured on GPUs: off there."""
        for layer in self.modules():
            if isinstance(layer, ConvLayer) and layer.upsamples:
                layer.transposed_upsampling = enabled
        self.decoder[-1].row_split = enabled
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        y = self.decoder(self.residuals(self.encoder(pad_to_fit(x))))
        return torch.sigmoid(y[..., :height, :width])
