"""Tests for fast_style.transformer: any input size in, exactly that size out, each image on its own.

Small random-weight networks are enough: these are properties of the architecture (padding,
cropping, instance norm, sigmoid), not of training.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from fast_style.transformer import (MIN_SIDE, ConvLayer, ModelConfig, TransformerNet, padding_to_fit, row_split_conv,
                                   row_split_weight)


@pytest.mark.parametrize("height, width", [(1, 1), (5, 7), (17, 31), (3, 200), (32, 32), (64, 45)])
def test_output_has_exactly_the_input_size_and_valid_pixels(make_tiny_model: Callable[..., TransformerNet],
                                                            height: int, width: int) -> None:
    """Odd, tiny and very thin images come back at their exact size, every value in [0, 1]."""
    image = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height * 1000 + width))
    with torch.no_grad():
        output = make_tiny_model()(image)
    assert output.shape == image.shape
    assert torch.isfinite(output).all() and output.min() >= 0 and output.max() <= 1


@pytest.mark.parametrize("side, padding", [(1, 15), (5, 11), (15, 1), (16, 0), (17, 3), (31, 1), (200, 0)])
def test_padding_reaches_a_multiple_of_four_and_the_minimum_side(side: int, padding: int) -> None:
    """Two stride-2 convs need a multiple of 4, and the 9x9 reflection padding needs MIN_SIDE."""
    assert padding_to_fit(side) == padding
    assert (side + padding) % 4 == 0 and side + padding >= MIN_SIDE


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_each_image_in_a_batch_is_stylized_as_if_alone(make_tiny_model: Callable[..., TransformerNet],
                                                       mode: str) -> None:
    """Instance norm uses each image's own statistics, in training and inference alike."""
    model = make_tiny_model(seed=1)
    model.train(mode == "train")
    generator = torch.Generator().manual_seed(5)
    # Very different images, so shared (batch) statistics would visibly change each output.
    batch = torch.cat([torch.rand(1, 3, 24, 20, generator=generator) * 0.2,
                       torch.rand(1, 3, 24, 20, generator=generator),
                       torch.linspace(0, 1, 20).expand(1, 3, 24, 20)])
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(batch[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_content_changes_the_output(make_tiny_model: Callable[..., TransformerNet]) -> None:
    """Different photos give different results (the sigmoid is not saturated into a constant)."""
    model = make_tiny_model(seed=2)
    generator = torch.Generator().manual_seed(6)
    with torch.no_grad():
        a = model(torch.rand(1, 3, 20, 20, generator=generator))
        b = model(torch.rand(1, 3, 20, 20, generator=generator))
    assert (a - b).abs().mean() > 1e-3


def test_every_parameter_gets_a_gradient(make_tiny_model: Callable[..., TransformerNet]) -> None:
    """Training reaches every layer, including through the crop and the upsampling."""
    model = make_tiny_model(seed=3, residual_blocks=2).train()
    model(torch.rand(2, 3, 18, 22)).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_width_and_blocks_set_the_size_of_the_network() -> None:
    """``width`` doubles per downsampling and ``residual_blocks`` counts blocks, as the config says."""
    model = TransformerNet(ModelConfig(width=8, residual_blocks=3))
    assert len(model.residuals) == 3
    assert model.encoder[2][1].out_channels == 32  # 8 -> 16 -> 32
    assert model.config.to_metadata() == {"architecture": "johnson2016", "width": 8, "residual_blocks": 3}


@pytest.mark.parametrize("height, width", [(18, 22), (33, 17)])
def test_cheaper_layers_compute_the_same_function_and_weight_gradients(
        make_tiny_model: Callable[..., TransformerNet], height: int, width: int) -> None:
    """The trainer's CPU forms (upsample, pad and 3x3 conv as one transposed conv; the final conv row-split)
    must give the plain network's outputs and weight gradients, with the same tensors to save; conv biases
    feeding an instance norm have gradient 0 in exact maths, so only their rounding noise is compared, loosely."""
    model = make_tiny_model(seed=4, width=6, residual_blocks=1).train()
    photos = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(7))
    results = []
    for cheaper in (False, True):
        model.use_cheaper_layers(cheaper)
        output = model(photos)
        gradients = torch.autograd.grad((output * torch.linspace(0, 1, width)).sum(), list(model.parameters()))
        results.append((output, dict(zip([name for name, _ in model.named_parameters()], gradients))))
    (plain, plain_grads), (cheaper, cheaper_grads) = results
    torch.testing.assert_close(cheaper, plain, atol=1e-5, rtol=1e-5)
    for name, gradient in plain_grads.items():
        tolerance = 1e-3 if name.endswith(".bias") and gradient.abs().max() < 1e-4 else 1e-4
        torch.testing.assert_close(cheaper_grads[name], gradient, atol=tolerance, rtol=1e-3, msg=name)
    layers = [layer for layer in model.modules() if isinstance(layer, ConvLayer)]
    assert sum(layer.transposed_upsampling for layer in layers) == 2 and [layer.row_split for layer in layers][-1]
    assert list(model.state_dict()) == list(TransformerNet(model.config).state_dict())


def test_row_split_conv_gradient_reaches_every_row_block() -> None:
    """The shifted sum's own backward writes each output gradient into all k row blocks: the input and
    weight gradients equal a plain k x k conv's, also in bf16 under autocast (to bf16 rounding)."""
    conv = torch.nn.Conv2d(5, 3, 9)
    x = torch.randn(2, 5, 21, 17, generator=torch.Generator().manual_seed(8))
    weights = torch.randn(2, 3, 13, 9, generator=torch.Generator().manual_seed(9))
    for autocast, tolerance in ((False, 1e-5), (True, 3e-2)):
        grads = []
        for split in (False, True):
            inputs = x.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = row_split_conv(inputs, row_split_weight(conv.weight), conv.bias, 9) if split else conv(inputs)
            assert out.shape == (2, 3, 13, 9)
            grads.append(torch.autograd.grad((out.float() * weights).sum(), [inputs, conv.weight]))
        for split_grad, plain_grad in zip(grads[1], grads[0]):
            torch.testing.assert_close(split_grad.float(), plain_grad.float(), atol=tolerance, rtol=tolerance)
