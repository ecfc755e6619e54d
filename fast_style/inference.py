"""The inference form of the transformation network: the same function, cheaper layers.

:func:`inference_network` rewrites a trained :class:`~fast_style.transformer.TransformerNet` layer by
layer into exact equivalents that cost less (outputs agree to float rounding, about 1e-5 on [0, 1]).
Each rewrite was kept only because `fast-style bench` measured it faster (docs/performance.md):

* nearest upsample + pad + 3x3 conv -> one stride-2 transposed conv (:class:`UpsampleConv`);
* instance norm -> group norm with one channel per group (:class:`GroupedInstanceNorm`);
* the final 9x9 conv to RGB -> a 1x9 conv to 27 channels and one strided sum (:class:`RowSplitConv`);
* on CPU in fp32, the residual blocks' 3x3 convs -> Winograd F(4x4, 3x3) (:class:`WinogradConv3x3`).

Training keeps the plain network: these forms exist for inference only.
"""

from __future__ import annotations

import copy
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.transformer import ConvLayer, ResidualBlock, TransformerNet

# Which taps of a 3-tap kernel land on each of the 4 taps of the equivalent stride-2 transposed
# kernel, when the 3-tap conv runs on a nearest-neighbour 2x upsampled image (see UpsampleConv).
UPSAMPLE_TAPS = ((0.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0))


class UpsampleConv(nn.Module):
    """Nearest 2x upsample -> reflection pad 1 -> 3x3 conv, as one stride-2 transposed 4x4 conv.

    Reflection-padding an upsampled image equals upsampling a replicate-padded one, and a 3x3 window
    on a nearest-upsampled image covers only 2x2 distinct pixels; so the same outputs take 4 instead
    of 9 multiply-adds each, and the 4x larger upsampled and padded copies are never written.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.groups != 1 or conv.bias is None:
            raise ValueError("UpsampleConv folds only a 3x3, stride-1, biased, ungrouped conv")
        taps = torch.tensor(UPSAMPLE_TAPS, device=conv.weight.device)
        weight = torch.einsum("oihw,yh,xw->ioyx", conv.weight.detach().float(), taps, taps)
        self.register_buffer("weight", weight.to(conv.weight.dtype))
        self.register_buffer("bias", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv_transpose2d(x, self.weight, self.bias, stride=2, padding=3)


class GroupedInstanceNorm(nn.Module):
    """Instance norm computed as group norm with one channel per group (the same maths, same
    parameters): PyTorch's CPU group norm reads channels_last input in place, where instance norm
    copies it to NCHW and back."""

    def __init__(self, norm: nn.InstanceNorm2d):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, x.shape[1], self.norm.weight, self.norm.bias, self.norm.eps)


class RowSplitConv(nn.Module):
    """A k x k conv with few output channels (the final 9x9 conv to RGB) as a 1 x k conv to k times
    as many channels, whose row-shifted channel blocks are then summed (in fp32).

    The multiply-adds are the same, but a 3-channel output leaves most of the vector lanes idle
    (oneDNN ran it at a quarter of the wide layers' speed on CPU); 27 channels fill them. The k
    shifted blocks are one strided view of the partial sums, so the sum is a single reduction (12 ms
    against 17 ms for k separate adds, 512x512 on CPU). Expects its input already padded, like the
    conv it replaces.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        out_channels, in_channels, rows, cols = conv.weight.shape
        if conv.stride != (1, 1) or conv.groups != 1 or conv.bias is None or conv.padding != (0, 0):
            raise ValueError("RowSplitConv splits only an unpadded, stride-1, biased, ungrouped conv")
        self.rows, self.out_channels = rows, out_channels
        weight = conv.weight.detach().permute(2, 0, 1, 3).reshape(rows * out_channels, in_channels, 1, cols)
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("bias", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        partial_sums = F.conv2d(x, self.weight)  # (N, rows*out, H + rows - 1, W)
        batch, _, padded_height, width = partial_sums.shape
        height = padded_height - self.rows + 1
        # shifted[n, y, x, r, c] = partial_sums[n, r*out + c, y + r, x]: row r's block, moved up r rows.
        s_n, s_c, s_h, s_w = partial_sums.stride()
        shifted = partial_sums.as_strided((batch, height, width, self.rows, self.out_channels),
                                          (s_n, s_h, s_w, s_h + self.out_channels * s_c, s_c),
                                          partial_sums.storage_offset())
        return (shifted.sum(3, dtype=torch.float32) + self.bias.float()).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------- Winograd

WINOGRAD_POINTS = (0.0, 1.0, -1.0, 0.5, -2.0)  # of 3 sets tried, the smallest fp32 error (1.6e-6 relative)
WINOGRAD_BAND_BYTES = 2 << 20  # one band's tile matrix: cache-sized bands ran faster (33 ms against 40 ms unbanded)


@cache
def winograd_matrices(points: tuple[float, ...] = WINOGRAD_POINTS) -> tuple[torch.Tensor, ...]:
    """A^T (4x6), G (6x3) and B^T (6x6) of Winograd's F(4, 3) from its interpolation points (plus
    the point at infinity), in float64: y = A^T [(G g) * (B^T d)] is the 3-tap correlation of d.

    Built by Toom-Cook interpolation rather than copied as constants, so a test can check the
    identity and another point set is one argument away.
    """
    p = torch.tensor(points, dtype=torch.float64)
    n = len(points) + 1
    a_t = torch.zeros(n - 2, n, dtype=torch.float64)
    a_t[:, :-1] = p.unsqueeze(0) ** torch.arange(n - 2, dtype=torch.float64).unsqueeze(1)
    a_t[-1, -1] = 1.0
    g = torch.zeros(n, 3, dtype=torch.float64)
    g[-1, -1] = 1.0
    b_t = torch.zeros(n, n, dtype=torch.float64)
    full = polynomial_with_roots(p)  # prod (x - p_i), ascending coefficients, length n
    for i, point in enumerate(p):
        others = torch.cat([p[:i], p[i + 1:]])
        g[i] = point ** torch.arange(3, dtype=torch.float64) / torch.prod(point - others)
        b_t[i, :-1] = polynomial_with_roots(others)
    b_t[-1] = full
    return a_t, g, b_t


def polynomial_with_roots(roots: torch.Tensor) -> torch.Tensor:
    """Ascending coefficients of prod (x - r) over ``roots``."""
    coefficients = torch.ones(1, dtype=torch.float64)
    for root in roots:
        zero = torch.zeros(1, dtype=torch.float64)
        coefficients = torch.cat([zero, coefficients]) - root * torch.cat([coefficients, zero])  # times (x - r)
    return coefficients


class WinogradConv3x3(nn.Module):
    """An unpadded 3x3 conv computed as Winograd F(4x4, 3x3): 36 instead of 144 multiplies per 4x4
    output tile, for the residual blocks on CPU.

    The residual convs are over half the CPU time of a 512x512 pass, and oneDNN already runs them
    at the core's fp32 peak, so only fewer multiplies could make them cheaper. Here every stage is a
    matrix product PyTorch runs well: the 6x6 input tiles (a strided view, copied once) times the
    36x36 Kronecker input transform, 36 channel GEMMs against pre-transformed weights, and the 16x36
    output transform, written straight into the output with the bias. 36 ms against 52 ms per
    128-channel 128x128 conv on one core; relative error 2e-6. Large images go in bands of tile
    rows so the temporary matrices stay small.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (0, 0) \
                or conv.dilation != (1, 1) or conv.groups != 1 or conv.bias is None:
            raise ValueError("WinogradConv3x3 replaces only an unpadded, stride-1, biased, ungrouped 3x3 conv")
        a_t, g, b_t = winograd_matrices()
        weight = conv.weight.detach().double()
        out_channels, in_channels = weight.shape[:2]
        transformed = torch.einsum("ai,ocij,bj->abco", g, weight, g).reshape(36, in_channels, out_channels)
        self.register_buffer("weight", transformed.float().contiguous())
        self.register_buffer("input_transform", torch.kron(b_t, b_t).float())
        self.register_buffer("output_transform", torch.kron(a_t, a_t).float())
        self.register_buffer("bias", conv.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, padded_height, padded_width = x.shape
        height, width = padded_height - 2, padded_width - 2
        tiles_high, tiles_wide = -(-height // 4), -(-width // 4)
        if (4 * tiles_high, 4 * tiles_wide) != (height, width):  # zero rows/columns; cropped below
            x = F.pad(x, (0, 4 * tiles_wide - width, 0, 4 * tiles_high - height))
        pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view when x is channels_last
        out_channels = self.weight.shape[-1]
        out = torch.empty(batch, 4 * tiles_high, 4 * tiles_wide, out_channels, dtype=x.dtype, device=x.device)
        band = max(1, WINOGRAD_BAND_BYTES // (36 * batch * tiles_wide * channels * x.element_size()))
        for first in range(0, tiles_high, band):
            rows = min(band, tiles_high - first)
            tiles = pixels[:, 4 * first:4 * (first + rows) + 2].unfold(1, 6, 4).unfold(2, 6, 4)
            tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, -1)  # (6x6 taps, N*rows*cols*C)
            products = torch.bmm((self.input_transform @ tiles).view(36, -1, channels), self.weight)
            outputs = (self.output_transform @ products.view(36, -1)).view(4, 4, batch, rows, tiles_wide, out_channels)
            torch.add(outputs.permute(2, 3, 0, 4, 1, 5), self.bias,
                      out=out[:, 4 * first:4 * (first + rows)].view(batch, rows, 4, tiles_wide, 4, out_channels))
        out = out.permute(0, 3, 1, 2)
        if out.shape[-2:] != (height, width):
            out = out[..., :height, :width].contiguous(memory_format=torch.channels_last)
        return out


FLAT_RANGE = 0.5 / 255  # a channel whose values all lie within half an 8-bit level is flat


def has_flat_photo(batch: torch.Tensor) -> bool:
    """Whether any photo of a (B,3,H,W) batch is one solid colour: those must not go through
    :class:`WinogradConv3x3`.

    Winograd rounds differently at each position of a 4x4 tile. On a solid-colour photo every
    feature map is flat, each instance norm divides that rounding by a near-zero deviation, and the
    pattern grows layer by layer: a solid grey 256x256 image came out 123 levels off. The plain
    network rounds the same everywhere and stays flat. Photos with any detail are unaffected (Kodak:
    at most 1 level from the plain network, as without Winograd).
    """
    low, high = batch.flatten(2).aminmax(dim=2)  # per photo and channel
    return bool((high - low < FLAT_RANGE).all(dim=1).any())


# ----------------------------------------------------------------------------- the rewrite


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def inference_network(model: TransformerNet, *, winograd: bool = False) -> TransformerNet:
    """A channels_last copy of ``model`` that computes the same function with cheaper layers.

    Upsample+conv stages become transposed convs (:class:`UpsampleConv`), instance norms group norms
    (:class:`GroupedInstanceNorm`), the final conv a row-split one (:class:`RowSplitConv`) and, with
    ``winograd`` (for fp32 on CPU; GPUs' cuDNN picks its own algorithms), the residual blocks' convs
    :class:`WinogradConv3x3`. Same outputs to float rounding (about 1e-5), any size. The copy is fp32
    (its weights are derived in fp32; cast it afterwards) and is derived once: rebuild it after
    changing ``model``.
    """
    fast = copy.deepcopy(model).float()
    for name, module in list(fast.named_modules()):
        if isinstance(module, ConvLayer) and isinstance(module[0], nn.Upsample):
            _replace(fast, name, nn.Sequential(UpsampleConv(module[2]), *list(module)[3:]))
    if winograd:
        for block in fast.modules():
            if isinstance(block, ResidualBlock):
                for name, conv in list(block.named_modules()):
                    if isinstance(conv, nn.Conv2d):
                        _replace(block, name, WinogradConv3x3(conv))
    for name, module in list(fast.named_modules()):
        if isinstance(module, nn.InstanceNorm2d):
            _replace(fast, name, GroupedInstanceNorm(module))
    final = fast.decoder[-1]
    final[-1] = RowSplitConv(final[-1])
    return fast.to(memory_format=torch.channels_last).eval()
