"""Refinement: a dial between the network's instant picture and Gatys optimisation.

The network's picture already has the painting's colours and strokes, so it is a far better start
for optimisation than the photo: a few L-BFGS iterations from it, on the model's own loss
(:mod:`fast_style.model_loss`), remove much of the gap between the network and Gatys (figures:
docs/refine.md). The iterations are those of ``optimize`` and ``compare`` (:func:`fast_style.optimize.
optimize_image`: bounded pixels, so the loss reported is the loss of the file written). This module
is the refinement itself, a function of the network's output, the photo and the loss, shared by
``stylize --refine`` and ``compare --refine``; where the loss comes from is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fast_style.errors import FastStyleError
from fast_style.losses import PerceptualLoss
from fast_style.optimize import OptimizeResult, check_finite_result, optimize_image

# Gatys from the photo is close to converged after 300 iterations; a thousand from the network's
# picture is already minutes a photo on a GPU, and a typo (10000) would be hours on a CPU.
MAX_STEPS = 1000
PROGRESS_DELAY_S = 1.0  # a refinement that ends sooner shows no bar


def parse_steps(value: str | int, flag: str = "--refine", *, allow_zero: bool = True) -> int:
    """``"10"`` (or 10) -> 10: an integer from 0 (or 1) to :data:`MAX_STEPS`, else one line naming ``flag``."""
    text = str(value).strip()
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= MAX_STEPS:
        usage = "0: the network's picture as it is; 5-20 is the usual range" if allow_zero else "e.g. 5,10,20"
        raise FastStyleError(f"{flag} {value}: the number of refinement steps must be an integer from {low} to "
                             f"{MAX_STEPS} ({usage})")
    return int(text)


def parse_steps_list(text: str, flag: str = "--refine") -> list[int]:
    """``"5,10,20"`` -> ``[5, 10, 20]`` (sorted, each once), every item checked like :func:`parse_steps`."""
    items = [item for item in str(text).split(",") if item.strip()]
    if not items:
        raise FastStyleError(f"{flag} {text}: give step counts, e.g. 5,10,20")
    return sorted({parse_steps(item, flag, allow_zero=False) for item in items})


def refine(stylized: torch.Tensor, photo: torch.Tensor, loss: PerceptualLoss, steps: int, *,
           snapshots: tuple[int, ...] = (), on_step: Callable[[int, torch.Tensor], None] | None = None,
           show_progress: bool | None = None, desc: str = "refine") -> OptimizeResult:
    """``steps`` iterations of the optimiser on ``loss`` from the network's picture ``stylized`` of ``photo``
    (both (1, 3, H, W) in [0, 1], on the loss's device; its painting set). The result is the 8-bit
    picture as a file holds it, its loss terms in fp32, and the ``snapshots`` asked for.

    The start is the network's picture nudged 1/255 inside (0, 1) (the optimiser's bounded pixels
    cannot hold 0 or 1 exactly), so a pixel the loss does not move may differ by one level.
    """
    if not 1 <= steps <= MAX_STEPS:
        raise FastStyleError(f"refine: {steps} steps; refinement takes 1 to {MAX_STEPS}")
    result = optimize_image(photo, loss, steps=steps, init=stylized.float().clamp(0, 1), snapshots=snapshots,
                            on_step=on_step, show_progress=show_progress, desc=desc, progress_delay=PROGRESS_DELAY_S)
    check_finite_result(result)
    return result
