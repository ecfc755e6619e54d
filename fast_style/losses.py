"""The one perceptual loss: content + Gram style + total variation.

Optimisation, training, evaluation and comparison all score images with
:class:`PerceptualLoss`, so "the loss" means the same thing everywhere.

Normalisation (why the weights are portable): each content and style term is a *relative*
squared error, ``||x - target||^2 / ||target||^2``, per image and per layer. That makes a
term's size independent of the image size, of the layer's depth and width, and of the
weight source's input scale (Caffe features are ~60x larger than torchvision's), so one
set of weights means the same balance everywhere. Gram matrices are divided by the number
of positions, so the painting's statistics do not depend on the size it is seen at.
``style_statistic: mean_std`` swaps the Gram matrices for each channel's mean and standard
deviation (Huang & Belongie's AdaIN loss; the statistics AdaIN itself aligns), and style
targets may hold one painting per image of the batch.
Total variation is the mean squared difference between neighbouring pixels in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fast_style.config import mapping, nested, non_negative
from fast_style.vgg import LossNetworkConfig, VGGFeatures, build_loss_network

EPS = 1e-8
GATYS_STYLE_LAYERS = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}


@dataclass
class LossConfig:
    """Layers, per-layer weights and term weights of the perceptual loss (Gatys defaults)."""

    network: LossNetworkConfig = nested(LossNetworkConfig)
    content_layers: dict[str, float] = mapping({"relu4_2": 1.0}, min=0)
    style_layers: dict[str, float] = mapping(GATYS_STYLE_LAYERS, min=0)
    content_weight: float = non_negative(1.0)
    style_weight: float = non_negative(10.0)
    tv_weight: float = non_negative(10.0)
    # gram: Gatys/Johnson; mean_std: per-channel mean and std (AdaIN), cheaper and what AdaIN aligns
    style_statistic: Literal["gram", "mean_std"] = "gram"


# The terms in the order logs report them; pixel and stability only where a run trains them.
TERM_NAMES = ("content", "style", "tv", "pixel", "stability")


@dataclass
class LossTerms:
    """Each weighted term per image (shape ``(B,)``) and their sum; ``.mean()`` for a batch.

    ``stability`` is not part of the perceptual loss: training adds it (``stability.weight``,
    :mod:`fast_style.training.stability`); None everywhere else, so scores stay comparable with Gatys.
    Nor is ``pixel``, the relative squared error to the photo itself that wct decoders learn to
    reconstruct photos with (:mod:`fast_style.training.wct`).
    """

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    stability: torch.Tensor | None = None
    pixel: torch.Tensor | None = None

    @property
    def total(self) -> torch.Tensor:
        return sum(self.parts().values())

    def parts(self) -> dict[str, torch.Tensor]:
        """The terms present, by name in :data:`TERM_NAMES` order."""
        parts = {"content": self.content, "style": self.style, "tv": self.tv, "pixel": self.pixel,
                 "stability": self.stability}
        return {name: value for name, value in parts.items() if value is not None}

    def mean(self) -> "LossTerms":
        return LossTerms(**{name: value.mean() for name, value in self.parts().items()})

    def as_floats(self) -> dict[str, float]:
        """Batch-mean values as plain floats, for logs, bars and reports."""
        terms = LossTerms(**{name: value.detach() for name, value in self.parts().items()}).mean()
        return {"loss": float(terms.total), **{name: float(value) for name, value in terms.parts().items()}}


class _Gram(torch.autograd.Function):
    """``X^T X`` in fp32 for ``X`` (B, N, C) of any float type, with a backward of one matrix product.

    Autograd's backward of ``bmm(X^T, X)`` takes two products, one for each operand, and adds them;
    the one for ``X^T`` writes a transposed (B, C, N) result, several times slower than the other, and
    their sum is another pass over the largest activations. For a Gram matrix both are ``X`` times the
    symmetrised gradient, so one product gives the same gradient: the Gram's forward and backward
    together take half the time or less at the style layers (docs/performance.md).

    For bf16 features the backward is a bf16 product (the bf16 units'), whose result is the bf16 gradient
    the features take anyway, and the fp32 copy of ``X`` is not kept for it; other types run it in fp32.
    """

    @staticmethod
    def forward(ctx, pixels: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pixels)
        pixels = pixels.float()
        return torch.bmm(pixels.transpose(1, 2), pixels)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (pixels,) = ctx.saved_tensors
        if pixels.dtype != torch.bfloat16:  # fp16's range is too small for a gradient's products: fp32
            pixels = pixels.float()
        symmetric = (grad + grad.transpose(1, 2)).to(pixels.dtype)
        if pixels.transpose(1, 2).is_contiguous():  # NCHW features read as (B, N, C): keep their layout
            return torch.bmm(symmetric, pixels.transpose(1, 2)).transpose(1, 2)
        return torch.bmm(pixels, symmetric)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) channel correlations divided by H*W (size-independent), in fp32.

    Read as (B, H*W, C) pixels without a copy in either layout: channels-last features (the loss
    network's layout on CPU) are that already, and flattening them to (B, C, H*W) would copy every
    activation (the largest, at relu1_1, is 64 values per pixel); NCHW ones are its transpose.
    """
    b, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        pixels = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view: same memory
    else:
        pixels = features.reshape(b, c, h * w).transpose(1, 2)
    return _Gram.apply(pixels) / (h * w)


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> per-channel mean and standard deviation, each (B, C, 1, 1), in fp32.

    The biased variance (over H*W, like instance norm), with ``eps`` inside the root so the
    gradient stays finite on flat channels.
    """
    var, mean = torch.var_mean(features.float(), dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def mean_std_vector(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2C): each channel's mean then its std, the AdaIN style statistic."""
    mean, std = mean_std(features)
    return torch.cat([mean.flatten(1), std.flatten(1)], dim=1)


STYLE_STATISTICS = {"gram": gram_matrix, "mean_std": mean_std_vector}


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image ``||value - target||^2 / ||target||^2`` (target broadcast over the batch)."""
    value, target = value.float(), target.float()
    dims = tuple(range(1, value.dim()))
    error = (value - target).pow(2).sum(dims)
    return error / (target.pow(2).sum(dims) + EPS)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared difference between horizontal and vertical neighbours."""
    image = image.float()
    dh = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean((1, 2, 3)) if image.shape[2] > 1 else 0
    dw = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean((1, 2, 3)) if image.shape[3] > 1 else 0
    return torch.zeros(image.shape[0], device=image.device) + dh + dw


class PerceptualLoss(nn.Module):
    """Scores images against a painting (cached Gram targets) and their content photos."""

    def __init__(self, network: VGGFeatures, config: LossConfig):
        super().__init__()
        self.network = network
        self.config = config
        self.content_layers = dict(config.content_layers)
        self.style_layers = dict(config.style_layers)
        self.layers = sorted(set(self.content_layers) | set(self.style_layers))
        self.style_targets: dict[str, torch.Tensor] = {}
        self.statistic = STYLE_STATISTICS[config.style_statistic]

    @classmethod
    def from_config(cls, config: LossConfig, precision: str = "fp32") -> "PerceptualLoss":
        """Build the loss network truncated at the deepest layer this loss uses, its convs running in
        ``precision`` (a resolved one: "bf16" or fp32; Grams and sums are always fp32)."""
        layers = sorted(set(config.content_layers) | set(config.style_layers))
        return cls(build_loss_network(config.network, layers).use_precision(precision), config)

    @torch.no_grad()
    def set_style(self, style: torch.Tensor) -> None:
        """Compute the painting's style statistics once; ``style`` is (1, 3, H, W) in [0, 1], or (B, 3, H, W)
        with one painting per image of the batches to be scored.

        Always from fp32 features, so the targets, and with them every reported loss, are the same
        whatever precision the images are optimised or trained in.
        """
        with self.network.computing("fp32"):
            self.set_style_features(self.network(style, self.style_layers))

    @torch.no_grad()
    def set_style_features(self, features: dict[str, torch.Tensor]) -> None:
        """Style targets from loss-network features the caller already has (AdaIN encodes its paintings anyway)."""
        self.style_targets = {name: self.statistic(features[name]) for name in self.style_layers}

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content targets of photos, computed without a graph."""
        return self.network(content, self.content_layers)

    def forward(self, image: torch.Tensor, content: torch.Tensor | None = None,
                content_targets: dict[str, torch.Tensor] | None = None) -> LossTerms:
        """Per-image weighted terms of ``image`` against its photo and the painting.

        Give the photo either as ``content`` or as precomputed ``content_targets``. With
        ``content``, a graph-free score runs photo and image in one VGG pass; when gradients flow,
        the photo gets its own graph-free pass (up to the deepest content layer only).
        """
        if not self.style_targets and self.style_layers:
            raise RuntimeError("PerceptualLoss.set_style must be called before scoring images")
        batch = image.shape[0]
        if content is not None and image.requires_grad and torch.is_grad_enabled():
            # Separate passes: in one batch, the backward pass would also compute (and discard) input
            # gradients for the photos, through every layer (1.24x slower training steps on CPU).
            content_targets = self.content_features(content.to(image.dtype))
            features = self.network(image, self.layers)
        elif content is not None:
            both = self.network(torch.cat([image, content.to(image.dtype)]), self.layers)
            features = {name: value[:batch] for name, value in both.items()}
            content_targets = {name: both[name][batch:].detach() for name in self.content_layers}
        else:
            features = self.network(image, self.layers)
        zero = torch.zeros(batch, device=image.device)
        content_term = zero
        if self.content_layers and self.config.content_weight:
            if content_targets is None:
                raise ValueError("content loss needs the photo: pass content= or content_targets=")
            content_term = sum(weight * relative_error(features[name], content_targets[name])
                               for name, weight in self.content_layers.items())
        style_term = sum((weight * relative_error(self.statistic(features[name]), self.style_targets[name])
                          for name, weight in self.style_layers.items()), zero)
        tv_term = total_variation(image)
        return LossTerms(self.config.content_weight * content_term, self.config.style_weight * style_term,
                         self.config.tv_weight * tv_term)
