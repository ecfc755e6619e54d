"""Winograd F(4x4, 3x3): the same convolution as oneDNN's, forward and backward, in the inference
form's residual blocks and in the loss network on CPU."""

from __future__ import annotations

import pytest
import torch

from fast_style import vgg, winograd
from fast_style.bench.fixtures import random_vgg19_weights
from fast_style.inference import WinogradConv3x3
from fast_style.vgg import VGGFeatures
from fast_style.winograd import transformed_weight, winograd_conv3x3, winograd_matrices


def test_winograd_matrices_compute_a_three_tap_correlation_exactly() -> None:
    a_t, g, b_t = winograd_matrices()
    assert a_t.shape == (4, 6) and g.shape == (6, 3) and b_t.shape == (6, 6)
    generator = torch.Generator().manual_seed(0)
    signal = torch.randn(6, dtype=torch.float64, generator=generator)
    kernel = torch.randn(3, dtype=torch.float64, generator=generator)
    expected = torch.stack([(signal[i:i + 3] * kernel).sum() for i in range(4)])
    torch.testing.assert_close(a_t @ ((g @ kernel) * (b_t @ signal)), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(1, 16, 18, 18), (2, 8, 13, 30), (1, 8, 3, 3), (3, 4, 41, 9)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_winograd_conv_equals_the_conv_it_replaces(shape, channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], 12, 3)
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        result = WinogradConv3x3(conv)(x)
        expected = conv(x)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)


def test_winograd_bands_give_the_same_result_as_one_band(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3)
    x = torch.randn(2, 8, 38, 26).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        whole = WinogradConv3x3(conv)(x)
        monkeypatch.setattr(winograd, "BAND_BYTES", 1)  # one tile row per band: 9 bands
        banded = WinogradConv3x3(conv)(x)
    torch.testing.assert_close(banded, whole, atol=0, rtol=0)


@pytest.mark.parametrize("band_bytes", [None, 1])
def test_gradients_flow_to_the_image_like_a_direct_conv(band_bytes) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, 3).requires_grad_(False)
    image = torch.randn(2, 6, 23, 14)
    grads = []
    for run in (conv, lambda x: winograd_conv3x3(x, transformed_weight(conv.weight), conv.bias, band_bytes)):
        x = image.clone().requires_grad_(True)
        out = run(x)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        grads.append((out.detach(), x.grad))
    (expected, expected_grad), (result, result_grad) = grads
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(result_grad, expected_grad, atol=1e-4, rtol=1e-4)


def random_vgg19(layers: list[str]) -> VGGFeatures:
    """VGG19 with random weights (the maths, not the ImageNet features, is under test)."""
    return VGGFeatures(vgg.LoadedWeights(random_vgg19_weights(), "torchvision", "random", "test"), "vgg19", layers)


def test_the_loss_network_uses_winograd_for_wide_convs_on_cpu_fp32_only(monkeypatch: pytest.MonkeyPatch) -> None:
    layers = ["relu3_1", "relu4_1", "relu5_1"]
    network = random_vgg19(layers)
    image = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        fast = network(image, layers)
        assert sorted(network.winograd_weights) == [12, 14, 16, 19, 21, 23, 25, 28], "convs with >= 256 inputs"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not network.winograd_applies(network.layers[12], image)
        assert not network.winograd_applies(network.layers[12], image.double())
        monkeypatch.setattr(vgg, "WINOGRAD_MIN_CHANNELS", 10**9)
        direct = network(image, layers)
    for name in layers:
        torch.testing.assert_close(fast[name], direct[name], atol=1e-4, rtol=1e-3)


def test_gradients_work_after_a_first_call_in_inference_mode() -> None:
    """compare stylizes (inference mode) before it optimises (gradients through the loss network):
    the cached transforms and weights must not be inference tensors."""
    winograd.winograd_matrices.cache_clear()
    winograd.tile_transforms.cache_clear()
    layers = ["relu4_1"]
    network = random_vgg19(layers)
    image = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        network(image, layers)
    x = image.clone().requires_grad_(True)
    network(x, layers)["relu4_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
