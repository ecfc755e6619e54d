"""Winograd F(4x4, 3x3) convolution for CPUs: 36 instead of 144 multiplies per 4x4 output tile.

On CPU, oneDNN runs wide 3x3 convs at the core's fp32 peak, so only fewer multiplies can make them
cheaper. Every stage here is a matrix product PyTorch runs well: the 6x6 input tiles (a strided view,
copied once) times the 36x36 Kronecker input transform, 36 channel GEMMs against pre-transformed
weights, and the 16x36 output transform. Used for the transformation network's residual convs at
inference (:class:`fast_style.inference.WinogradConv3x3`) and for the loss network's wide convs on CPU
(:class:`fast_style.vgg.VGGFeatures`), where gradients flow through it to the image. fp32 only: the
transforms' rounding would be too coarse in bf16.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

POINTS = (0.0, 1.0, -1.0, 0.5, -2.0)  # of 3 sets tried, the smallest fp32 error (1.6e-6 relative)
BAND_BYTES = 2 << 20  # one band's tile matrix: cache-sized bands ran faster (33 ms against 40 ms unbanded)
# With autograd every band adds graph nodes and small GEMMs: VGG19 forward + backward at 512x512 ran
# 1.44x faster than direct convs with 16 MB bands, 1.30x with 8 MB and 1.03x with 2 MB.
GRAD_BAND_BYTES = 16 << 20


@cache
def winograd_matrices(points: tuple[float, ...] = POINTS) -> tuple[torch.Tensor, ...]:
    """A^T (4x6), G (6x3) and B^T (6x6) of Winograd's F(4, 3) from its interpolation points (plus
    the point at infinity), in float64: y = A^T [(G g) * (B^T d)] is the 3-tap correlation of d.

    Built by Toom-Cook interpolation rather than copied as constants, so a test can check the
    identity and another point set is one argument away. Cached: built outside inference mode (see
    :func:`tile_transforms`).
    """
    with torch.inference_mode(False):
        return toom_cook(torch.tensor(points, dtype=torch.float64))


def toom_cook(p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """:func:`winograd_matrices` for the points ``p`` (float64)."""
    n = len(p) + 1
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


@cache
def tile_transforms(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The 36x36 input and 16x36 output transforms (Kronecker squares of B^T and A^T), float32.

    Cached, so built outside inference mode whatever the first caller runs under: tensors made in
    inference mode cannot be saved for backward, and the loss network needs gradients through them.
    """
    a_t, _g, b_t = winograd_matrices()
    with torch.inference_mode(False):
        return torch.kron(b_t, b_t).float().to(device), torch.kron(a_t, a_t).float().to(device)


def transformed_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) conv weights -> (36, C, K) G g G^T, computed in float64, stored as float32."""
    _a_t, g, _b_t = winograd_matrices()
    out_channels, in_channels = weight.shape[:2]
    with torch.inference_mode(False):  # may be cached and later used with gradients (see tile_transforms)
        transformed = torch.einsum("ai,ocij,bj->abco", g.to(weight.device), weight.detach().double(),
                                   g.to(weight.device))
        return transformed.reshape(36, in_channels, out_channels).float().contiguous()


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     band_bytes: int | None = None) -> torch.Tensor:
    """``F.conv2d(x, w, bias)`` for an already padded (N, C, H+2, W+2) fp32 ``x`` and ``weight`` =
    :func:`transformed_weight` (w); the result is channels_last.

    Any size (H and W are zero-extended to multiples of 4 and cropped back). Bands of tile rows keep
    the temporary matrices near ``band_bytes`` (default :data:`BAND_BYTES`, or :data:`GRAD_BAND_BYTES`
    with gradients). Without gradients the bands are written straight into the output; when anything
    requires grad they are concatenated instead, so autograd can follow.
    """
    batch, channels, padded_height, padded_width = x.shape
    height, width = padded_height - 2, padded_width - 2
    tiles_high, tiles_wide = -(-height // 4), -(-width // 4)
    if (4 * tiles_high, 4 * tiles_wide) != (height, width):  # zero rows/columns; cropped below
        x = F.pad(x, (0, 4 * tiles_wide - width, 0, 4 * tiles_high - height))
    input_transform, output_transform = tile_transforms(x.device)
    pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view when x is channels_last
    out_channels = weight.shape[-1]
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias))
    out = None if differentiable else torch.empty(batch, 4 * tiles_high, 4 * tiles_wide, out_channels,
                                                  dtype=x.dtype, device=x.device)
    bands: list[torch.Tensor] = []
    band_bytes = band_bytes or (GRAD_BAND_BYTES if differentiable else BAND_BYTES)
    band = max(1, band_bytes // (36 * batch * tiles_wide * channels * x.element_size()))
    for first in range(0, tiles_high, band):
        rows = min(band, tiles_high - first)
        tiles = pixels[:, 4 * first:4 * (first + rows) + 2].unfold(1, 6, 4).unfold(2, 6, 4)
        tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, -1)  # (6x6 taps, N*rows*cols*C)
        products = torch.bmm((input_transform @ tiles).view(36, -1, channels), weight)
        outputs = (output_transform @ products.view(36, -1)).view(4, 4, batch, rows, tiles_wide, out_channels)
        outputs = outputs.permute(2, 3, 0, 4, 1, 5)  # (N, rows, 4, cols, 4, K)
        if out is None:
            bands.append((outputs + bias).reshape(batch, 4 * rows, 4 * tiles_wide, out_channels))
        else:
            torch.add(outputs, bias, out=out[:, 4 * first:4 * (first + rows)].view(batch, rows, 4, tiles_wide, 4,
                                                                                  out_channels))
    result = (torch.cat(bands, dim=1) if out is None else out).permute(0, 3, 1, 2)
    if result.shape[-2:] != (height, width):
        result = result[..., :height, :width].contiguous(memory_format=torch.channels_last)
    return result
