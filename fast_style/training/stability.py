"""Training for stability (issue 19; after Wang et al. 2020): the output should not change when the
photo gets a little noise or moves by a few pixels.

Frame-by-frame stylization flickers because the network answers a small shift of the content with
different strokes (docs/performance.md, "Flicker"): an integer 3 px shift alone gives most of it. A
shift by a multiple of the network's stride of 4 moves the downsampled grid with the content, so only
the other shifts teach anything; this term draws those.

With ``stability.weight`` > 0, every step also stylizes a perturbed copy of the photos, each moved by
its own (dy, dx) (``|d| <= max_shift``, not both multiples of 4) and given Gaussian noise, in the
same forward pass, and adds ``weight`` x the mean squared difference between the two outputs where
they show the same content (the rows and columns the shift invents are left out). Every draw comes
from a generator seeded by (seed, step), so a resumed run perturbs exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F

from fast_style.config import bounded, non_negative
from fast_style.losses import LossTerms

STRIDE = 4  # the transformer's downsampling: shifts by multiples of it are (nearly) free already
STEP_SEED_OFFSET = 9_191_919  # keeps these draws apart from the photo sampler's and adain's

Shift = tuple[int, int]  # (dy, dx): content at (y, x) moves to (y + dy, x + dx)


@dataclass
class StabilityConfig:
    """The ``stability:`` section of a johnson2016 training config."""

    # 0: off, and training is exactly as without this section. 30 (with no noise) took the network's own
    # flicker to 0.60-0.72x at no measurable cost against Gatys over 3 seeds; 100 with noise 0.02 to
    # 0.40-0.55x, but with a rising style term and dark blotches (docs/performance.md).
    weight: float = non_negative(0.0)
    # Standard deviation of the added noise, in [0, 1] units. 0 by default: the flicker comes from
    # shifts, not noise, and 30 / 0 is the setting measured to cost nothing.
    noise: float = bounded(0.0, min=0, max=1)
    max_shift: int = bounded(3, gt=0, max=8)  # the largest shift along each axis, in pixels


@dataclass
class Perturbation:
    """One step's draws: a shift per photo and the noise for the whole batch, (B, 3, H, W)."""

    shifts: list[Shift]
    noise: torch.Tensor


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of training step ``step``: the same draws on any device and after a resume."""
    return torch.Generator().manual_seed(seed * 1_000_003 + STEP_SEED_OFFSET + step)


def off_grid_shifts(max_shift: int) -> list[Shift]:
    """Every shift within ``max_shift`` along each axis that the stride-4 grid does not absorb."""
    span = range(-max_shift, max_shift + 1)
    return [(dy, dx) for dy in span for dx in span if dy % STRIDE or dx % STRIDE]


def draw(shape: torch.Size, settings: StabilityConfig, generator: torch.Generator) -> Perturbation:
    """Shifts, then noise, for a batch of photos of ``shape`` (B, 3, H, W)."""
    choices = off_grid_shifts(settings.max_shift)
    picks = torch.randint(len(choices), (shape[0],), generator=generator).tolist()
    noise = torch.randn(tuple(shape), generator=generator) * settings.noise
    return Perturbation([choices[pick] for pick in picks], noise)


def shifted(images: torch.Tensor, shifts: list[Shift], max_shift: int) -> torch.Tensor:
    """Each image moved by its shift: ``out[y, x] = image[y - dy, x - dx]``, the rows and columns that
    come in from outside being the edge's reflection (so they look like photo, not a seam)."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (max_shift,) * 4, mode="reflect")
    return torch.stack([padded[index, :, max_shift - dy:max_shift - dy + height, max_shift - dx:max_shift - dx + width]
                        for index, (dy, dx) in enumerate(shifts)])


def perturbed(photos: torch.Tensor, perturbation: Perturbation, max_shift: int) -> torch.Tensor:
    """The photos shifted and noised, kept in [0, 1] like every photo the network sees."""
    noise = perturbation.noise.to(photos.device, photos.dtype)
    return (shifted(photos, perturbation.shifts, max_shift) + noise).clamp(0.0, 1.0)


def overlap(length: int, shift: int) -> tuple[slice, slice]:
    """Along one axis: where the shifted image shows content, and where that content was before."""
    return slice(max(shift, 0), length + min(shift, 0)), slice(max(-shift, 0), length + min(-shift, 0))


def output_change(original: torch.Tensor, moved: torch.Tensor, shifts: list[Shift]) -> torch.Tensor:
    """Per image, the mean squared difference between the output for the perturbed photo and the
    output for the photo, moved the same way, over the pixels both show; shape (B,), fp32."""
    height, width = original.shape[-2:]
    changes = []
    for index, (dy, dx) in enumerate(shifts):
        (rows_now, rows_then), (cols_now, cols_then) = overlap(height, dy), overlap(width, dx)
        difference = moved[index, :, rows_now, cols_now].float() - original[index, :, rows_then, cols_then].float()
        changes.append(difference.pow(2).mean())
    return torch.stack(changes)


def terms_with_stability(forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., LossTerms],
                         photos: torch.Tensor, settings: StabilityConfig, generator: torch.Generator,
                         memory_format: torch.memory_format) -> LossTerms:
    """The perceptual terms of the photos' stylizations plus the weighted stability term.

    Photos and perturbed copies go through the network as one batch: one forward (and, under
    DistributedDataParallel, the one forward per backward it expects); instance norm keeps images apart.
    """
    perturbation = draw(photos.shape, settings, generator)
    both = torch.cat([photos, perturbed(photos, perturbation, settings.max_shift)])
    stylized, moved = forward(both.contiguous(memory_format=memory_format)).split(photos.shape[0])
    terms = score(stylized, content=photos)
    return replace(terms, stability=settings.weight * output_change(stylized, moved, perturbation.shifts))
