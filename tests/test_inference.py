"""The inference form computes the trained network's function: each rewritten layer against the layer
it replaces, and the whole network against the plain one, at awkward sizes and batch sizes."""

from __future__ import annotations

import copy

import pytest
import torch

from fast_style.inference import (
    RowSplitConv,
    WinogradConv3x3,
    has_flat_photo,
    inference_network,
)
from fast_style.precision import Precision
from fast_style.stylize import Stylizer


def test_layers_that_cannot_be_rewritten_are_refused() -> None:
    with pytest.raises(ValueError, match="3x3"):
        WinogradConv3x3(torch.nn.Conv2d(4, 4, 3, stride=2))
    with pytest.raises(ValueError, match="unpadded"):
        RowSplitConv(torch.nn.Conv2d(4, 3, 9, padding=4))


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_row_split_conv_equals_the_conv_it_replaces(memory_format: torch.memory_format) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 3, 9)
    x = torch.randn(2, 8, 25, 19).contiguous(memory_format=memory_format)
    with torch.inference_mode():
        torch.testing.assert_close(RowSplitConv(conv)(x), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 17, 23), (1, 3, 5, 7), (3, 3, 33, 16), (1, 3, 130, 97)])
def test_inference_network_computes_the_same_function(make_tiny_model, shape, winograd: bool) -> None:
    model = make_tiny_model(width=8, residual_blocks=2)
    photo = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, fast = model(photo), inference_network(model, winograd=winograd)(photo)
    assert fast.shape == expected.shape
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=0)


def count(module: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(layer, kind) for layer in module.modules())


def test_cpu_fp32_stylizer_runs_winograd_and_bf16_does_not(make_tiny_model) -> None:
    model = make_tiny_model(width=8, residual_blocks=2)
    fp32 = Stylizer(model, {}, torch.device("cpu"), fast=True)
    bf16 = Stylizer(copy.deepcopy(model), {}, torch.device("cpu"), Precision("bf16", "asked for"),
                    fast=True)  # casts in place
    assert count(fp32.network, WinogradConv3x3) == 4, "both convs of both residual blocks"
    assert count(bf16.network, WinogradConv3x3) == 0, "Winograd's transforms lose too much in bf16"
    photo = torch.rand(1, 3, 72, 52)
    with torch.inference_mode():
        expected = model(photo)
    torch.testing.assert_close(fp32.stylize_tensor(photo), expected, atol=1e-4, rtol=0)


def test_inference_network_leaves_the_model_alone_and_tiles_run_it_too(make_tiny_model) -> None:
    model = make_tiny_model(width=8, residual_blocks=1)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    stylizer = Stylizer(model, {}, torch.device("cpu"), fast=True)
    calls: list[str] = []
    for layer in stylizer.tiled_network.modules():
        if isinstance(layer, (RowSplitConv, WinogradConv3x3)):
            layer.register_forward_hook(lambda module, *_: calls.append(type(module).__name__))
    photo = torch.rand(1, 3, 96, 80)
    with torch.inference_mode():
        expected = stylizer.model(photo)
    torch.testing.assert_close(stylizer.stylize_tensor(photo), expected, atol=1e-4, rtol=0)
    calls.clear()
    torch.testing.assert_close(stylizer.stylize_tensor(photo, tile=64), expected, atol=1e-4, rtol=0)
    assert {"RowSplitConv", "WinogradConv3x3"} <= set(calls), "tiles should run the inference form"
    for name, value in stylizer.model.state_dict().items():
        torch.testing.assert_close(value, before[name], atol=0, rtol=0)


def test_solid_colour_photos_bypass_winograd_and_match_the_plain_network(make_tiny_model) -> None:
    model = make_tiny_model(width=8, residual_blocks=2)
    stylizer = Stylizer(model, {}, torch.device("cpu"), fast=True)
    solid = torch.full((2, 3, 48, 40), 0.4)
    solid[1] = torch.tensor([0.7, 0.1, 0.5]).view(3, 1, 1)  # solid, but not grey
    with torch.inference_mode():
        expected = model(solid)
        amplified = inference_network(model, winograd=True)(solid)
    assert (amplified - expected).abs().max() > 1e-3, "the case the bypass exists for is no longer reproduced"
    torch.testing.assert_close(stylizer.stylize_tensor(solid), expected, atol=1e-5, rtol=0)
    big = torch.full((1, 3, 100, 90), 0.3)  # tiled too
    with torch.inference_mode():
        expected_big = model(big)
    torch.testing.assert_close(stylizer.stylize_tensor(big, tile=64), expected_big, atol=1e-5, rtol=0)


def test_flat_means_one_colour_to_half_an_8_bit_level() -> None:
    batch = torch.full((2, 3, 8, 8), 0.5)
    batch[0, 0, 0, 0] += 1 / 255
    assert not has_flat_photo(batch[:1]) and has_flat_photo(batch)
    batch[1, 2, 3, 3] += 0.4 / 255
    batch[1, 1] = 0.9  # channels may differ from each other
    assert has_flat_photo(batch)


def test_the_gpu_inference_form_compiles_without_graph_breaks(make_tiny_model) -> None:
    """On CUDA the Stylizer compiles this form with CUDA graphs; a graph break would split them."""
    network = inference_network(make_tiny_model(width=8, residual_blocks=1))
    with torch.inference_mode():
        explanation = torch._dynamo.explain(network)(torch.rand(1, 3, 24, 20))
    assert explanation.graph_break_count == 0, explanation.break_reasons
