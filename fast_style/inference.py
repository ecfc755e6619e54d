"""The inference form of the transformation network: the same function, cheaper layers.

:func:`inference_network` rewrites a trained :class:`~fast_style.transformer.TransformerNet` layer by
layer into exact equivalents that cost less (outputs agree to float rounding, about 1e-5 on [0, 1]).
Each rewrite was kept only because `fast-style bench` measured it faster (docs/performance.md):

* nearest upsample + pad + 3x3 conv -> one stride-2 transposed conv (:class:`UpsampleConv`);
* instance norm -> group norm with one channel per group (:class:`GroupedInstanceNorm`);
* the final 9x9 conv to RGB -> a 1x9 conv to 27 channels and one strided sum (:class:`RowSplitConv`);
* ReLU -> out of place where in place is slow (bf16 on CPU; :class:`DtypeAwareReLU`);
* on CPU in fp32, the residual blocks' 3x3 convs -> Winograd F(4x4, 3x3) (:class:`WinogradConv3x3`).

Training keeps the plain network: these forms exist for inference only.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.transformer import (ConvLayer, ResidualBlock, TransformerNet, row_split_conv, row_split_weight,
                                   upsample_conv, upsample_kernel)
from fast_style.winograd import transformed_weight, winograd_conv3x3

class UpsampleConv(nn.Module):
    """Nearest 2x upsample -> reflection pad 1 -> 3x3 conv, as one stride-2 transposed 4x4 conv
    (:func:`~fast_style.transformer.upsample_conv`), its kernel folded once."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.groups != 1 or conv.bias is None:
            raise ValueError("UpsampleConv folds only a 3x3, stride-1, biased, ungrouped conv")
        self.register_buffer("weight", upsample_kernel(conv.weight.detach().float()).to(conv.weight.dtype))
        self.register_buffer("bias", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv(x, self.weight, self.bias)


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
    as many channels whose row-shifted blocks are summed in fp32 (:func:`~fast_style.transformer.row_split_conv`),
    its weight rearranged once. Expects its input already padded, like the conv it replaces."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.stride != (1, 1) or conv.groups != 1 or conv.bias is None or conv.padding != (0, 0):
            raise ValueError("RowSplitConv splits only an unpadded, stride-1, biased, ungrouped conv")
        self.rows = conv.kernel_size[0]
        self.register_buffer("weight", row_split_weight(conv.weight.detach()).contiguous())
        self.register_buffer("bias", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return row_split_conv(x, self.weight, self.bias, self.rows)


class WinogradConv3x3(nn.Module):
    """An unpadded 3x3 conv computed as Winograd F(4x4, 3x3) (:func:`~fast_style.winograd.winograd_conv3x3`),
    for the residual blocks on CPU: they are over half the CPU time of a 512x512 pass, and oneDNN already
    runs them at the core's fp32 peak, so only fewer multiplies could make them cheaper. 31-34 ms
    against 52-55 ms per 128-channel 128x128 conv on one core; relative error 2e-6.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (0, 0) \
                or conv.dilation != (1, 1) or conv.groups != 1 or conv.bias is None:
            raise ValueError("WinogradConv3x3 replaces only an unpadded, stride-1, biased, ungrouped 3x3 conv")
        self.register_buffer("weight", transformed_weight(conv.weight))
        self.register_buffer("bias", conv.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return winograd_conv3x3(x, self.weight, self.bias)


class DtypeAwareReLU(nn.Module):
    """ReLU in place for fp32 and out of place otherwise: PyTorch's CPU in-place ReLU on bf16 takes a
    slow path (about 5x the out-of-place one, docs/performance.md), while in fp32 in place is cheaper."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_() if x.dtype == torch.float32 else torch.relu(x)


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


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``model``'s submodule called ``name`` (dotted) is."""
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
        if isinstance(module, ConvLayer) and module.upsamples:
            replace_module(fast, name, nn.Sequential(UpsampleConv(module[2]), *list(module)[3:]))
    if winograd:
        for block in fast.modules():
            if isinstance(block, ResidualBlock):
                for name, conv in list(block.named_modules()):
                    if isinstance(conv, nn.Conv2d):
                        replace_module(block, name, WinogradConv3x3(conv))
    for name, module in list(fast.named_modules()):
        if isinstance(module, nn.InstanceNorm2d):
            replace_module(fast, name, GroupedInstanceNorm(module))
        elif isinstance(module, nn.ReLU):
            replace_module(fast, name, DtypeAwareReLU())
    final = fast.decoder[-1]
    final[-1] = RowSplitConv(final[-1])
    return fast.to(memory_format=torch.channels_last).eval()
