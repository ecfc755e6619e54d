"""Gatys et al. optimisation: the slow, flexible baseline every network is compared with.

The image stays a valid picture at every step, so the loss that is reported is the loss of
the file that is saved. Plain L-BFGS on pixels ends with 5-12 % of them out of range, and
clamping afterwards wrecks the result, so:

* ``lbfgs`` optimises a bounded parametrisation, image = sigmoid(z), with a strong-Wolfe
  line search (without one, L-BFGS on the sigmoid diverged on most photos);
* ``adam`` steps on the pixels and projects them back into [0, 1] after every step.

A pyramid (e.g. 256 -> 512 -> 1024) optimises coarse structure cheaply first; each level
starts from the upsampled result of the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from fast_style.config import MAX_SIDE, nested, positive, sequence, side
from fast_style.errors import FastStyleError, naming
from fast_style.images import load_image
from fast_style.losses import LossConfig, LossTerms, PerceptualLoss
from fast_style.precision import Precision, resolve_precision
from fast_style.runtime import Device, progress, resolve_device, seed_everything

# The photo is nudged this far inside (0, 1) so that its logit is finite.
LOGIT_MARGIN = 1.0 / 255.0


@dataclass
class OptimizeConfig:
    """Everything ``fast-style optimize`` needs; flags and ``key=value`` overrides land here."""

    content: str | None = None
    style: str | None = None
    output: str | None = None
    size: int = side(512)  # longer side of the output
    pyramid: list[int] = sequence([], gt=0, max=MAX_SIDE)  # e.g. [256, 512, 1024]; the last level is the output size
    style_scale: float = positive(1.0)  # painting's longer side relative to the output's
    steps: int = positive(300)  # iterations per pyramid level
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    init: Literal["content", "noise"] = "content"
    lr: float | None = positive(None)  # None: 1.0 for lbfgs, 0.02 for adam (pixel units in [0, 1])
    device: Device = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # of the loss network's convs; see fast_style.precision
    seed: int = 0
    loss: LossConfig = nested(LossConfig)


@dataclass
class OptimizeResult:
    """The final image (1, 3, H, W) in [0, 1], its loss terms, and what happened on the way."""

    image: torch.Tensor
    terms: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    precision: Precision | None = None  # what the loss network ran in, and why (set by run())


def quantize(image: torch.Tensor) -> torch.Tensor:
    """The image as an 8-bit file will hold it: what the reported loss is computed on."""
    return image.clamp(0, 1).mul(255).round().div(255)


class _Pixels:
    """Maps the optimised variable to the image and back (identity or sigmoid)."""

    def __init__(self, start: torch.Tensor, bounded_by_sigmoid: bool):
        self.sigmoid = bounded_by_sigmoid
        if bounded_by_sigmoid:
            start = torch.logit(start.clamp(LOGIT_MARGIN, 1 - LOGIT_MARGIN))
        self.variable = start.detach().contiguous().clone().requires_grad_(True)

    def image(self) -> torch.Tensor:
        return torch.sigmoid(self.variable) if self.sigmoid else self.variable

    @torch.no_grad()
    def project(self) -> None:
        if not self.sigmoid:
            self.variable.clamp_(0, 1)


def lbfgs(variable: torch.Tensor, lr: float = 1.0) -> torch.optim.LBFGS:
    """The L-BFGS every optimisation uses (and the bench's plain baseline, so both differ only in
    how closures are evaluated): one iteration per ``step``, strong Wolfe line search, no early stop.

    max_iter=1 gives one progress tick per iteration; max_eval must then be raised by hand (it
    defaults to 1.25 * max_iter = 1), or the line search cannot backtrack and the run freezes at
    the first rejected step.
    """
    return torch.optim.LBFGS([variable], lr=lr, max_iter=1, max_eval=25, history_size=50,
                             tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")


def optimize_image(content: torch.Tensor, loss: PerceptualLoss, *, steps: int, optimizer: str = "lbfgs",
                   init: str | torch.Tensor = "content", lr: float | None = None, seed: int = 0,
                   snapshots: tuple[int, ...] = (), show_progress: bool | None = None,
                   on_step: Callable[[int, torch.Tensor], None] | None = None,
                   desc: str = "optimize", progress_delay: float = 0.0) -> OptimizeResult:
    """Optimise one image against ``loss`` (style already set) and the photo ``content``.

    ``init`` is ``"content"``, ``"noise"`` or a starting image (pyramid levels, a network's
    picture to refine). Images after the iterations listed in ``snapshots`` are kept (for
    50/100/300 comparisons). The progress bar appears after ``progress_delay`` seconds.
    """
    content_targets = loss.content_features(content)
    if isinstance(init, torch.Tensor):
        start = init
    elif init == "noise":
        generator = torch.Generator(device="cpu").manual_seed(seed)
        start = torch.rand(content.shape, generator=generator).to(content.device)
    else:
        start = content
    pixels = _Pixels(start, bounded_by_sigmoid=optimizer == "lbfgs")
    if optimizer == "lbfgs":
        opt = lbfgs(pixels.variable, lr or 1.0)
    else:
        opt = torch.optim.Adam([pixels.variable], lr=lr or 0.02)

    cache: dict[str, object] = {}

    def closure() -> torch.Tensor:
        # L-BFGS re-evaluates the point its line search just accepted at the start of each
        # iteration; reuse that evaluation (and its gradient) instead of paying for it twice.
        if cache and torch.equal(cache["at"], pixels.variable):
            return cache["loss"]
        opt.zero_grad(set_to_none=True)
        terms = loss(pixels.image(), content_targets=content_targets)
        total = terms.total.sum()
        total.backward()
        cache.update(at=pixels.variable.detach().clone(), loss=total.detach(), terms=terms)
        return total

    history: list[dict[str, float]] = []
    kept: dict[int, torch.Tensor] = {}
    started = time.perf_counter()
    bar = progress(range(1, steps + 1), desc=desc, unit="it", disable=None if show_progress is None else not show_progress,
                   delay=progress_delay)
    for step in bar:
        opt.step(closure)
        pixels.project()
        terms: LossTerms = cache["terms"]  # the loss at the last evaluated point, for display
        values = terms.as_floats()
        history.append({"step": step, **values})
        bar.set_postfix(loss=f"{values['loss']:.4g}", content=f"{values['content']:.3g}",
                        style=f"{values['style']:.3g}", tv=f"{values['tv']:.3g}", refresh=False)
        if step in snapshots or on_step:
            image = quantize(pixels.image().detach())
            if step in snapshots:
                kept[step] = image
            if on_step:
                on_step(step, image)
    seconds = time.perf_counter() - started
    final = quantize(pixels.image().detach())
    with torch.no_grad(), loss.network.computing("fp32"):  # reported in fp32, whatever the run's precision
        final_terms = loss(final, content=content).as_floats()
    return OptimizeResult(final, final_terms, history, kept, seconds)


def level_sizes(config: OptimizeConfig) -> list[int]:
    """The pyramid's sizes, or just the output size."""
    return list(config.pyramid) or [config.size]


def run(config: OptimizeConfig, *, show_progress: bool | None = None) -> OptimizeResult:
    """Load the photo and painting, optimise (level by level), and return the final result."""
    if not config.content or not config.style:
        raise FastStyleError("optimize needs a photo and a painting: pass --content PHOTO --style PAINTING")
    largest = max(level_sizes(config)) * config.style_scale
    if largest > MAX_SIDE:
        raise FastStyleError(f"style_scale {config.style_scale:g}: the painting would be {largest:,.0f} px long, "
                             f"over {MAX_SIDE}; lower style_scale")
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device, flag="precision")
    seed_everything(config.seed)
    loss = PerceptualLoss.from_config(config.loss, precision.name).to(device)
    result: OptimizeResult | None = None
    started = time.perf_counter()
    for level, size in enumerate(level_sizes(config)):
        content = load_image(config.content, size=size).unsqueeze(0).to(device)
        style_size = max(16, round(size * config.style_scale))
        painting = load_image(config.style, size=style_size).unsqueeze(0).to(device)
        init: str | torch.Tensor = config.init
        if result is not None:
            init = F.interpolate(result.image, size=content.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        # The loss network's own errors (e.g. a 3x2000 photo is 1 px wide at this size) do not
        # know the file: name it.
        with naming(config.style):
            loss.set_style(painting)
        with naming(config.content):
            result = optimize_image(content, loss, steps=config.steps, optimizer=config.optimizer, init=init,
                                    lr=config.lr, seed=config.seed, show_progress=show_progress,
                                    desc=f"optimize {size}px" if len(config.pyramid) > 1 else "optimize")
    assert result is not None
    check_finite_result(result)
    result.seconds = time.perf_counter() - started
    result.precision = precision
    return result


def check_finite_result(result: OptimizeResult) -> None:
    """A NaN/inf loss or image would be written as a black picture with exit 0: refuse it instead."""
    if not bool(torch.isfinite(result.image).all()) or not all(math.isfinite(v) for v in result.terms.values()):
        raise FastStyleError("the optimisation diverged (its loss or image is NaN or infinite); nothing written: "
                             "lower lr or the loss weights")


def output_config_path(output: str | Path) -> Path:
    """Where the resolved config of an output image is written: beside it."""
    output = Path(output)
    return output.with_name(output.stem + ".config.yaml")
