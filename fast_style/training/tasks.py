"""The registry of training tasks: a kind of network's part of training, found by its ``architecture`` name.

:mod:`fast_style.networks` says how a kind is built, stored and run; this says how it is trained.
Each module of :mod:`fast_style.training` named after a kind (``johnson2016``, ``multi_style``,
``adain``) registers its task here under the same name as its network; the package's ``__init__``
imports them all. Kept apart from that ``__init__`` so that nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from fast_style.errors import FastStyleError
from fast_style.networks import get_kind


class TrainingTask(Protocol):
    """A kind's part of training: the trainer owns the loop, data, optimiser, checkpoints and logs.

    Optionally a task also has ``trainable_parameters() -> Iterable[nn.Parameter]``: the parameters the
    optimiser trains, where only part of ``model`` is trained (without it, all of ``model``'s). Optional
    rather than part of the protocol so that a kind training its whole model need not say so.
    """

    model: nn.Module  # what the optimiser trains and checkpoints hold
    network: nn.Module  # what model.safetensors stores (the model, or a network around it)
    loss: Any  # the PerceptualLoss (the trainer may compile it)

    def terms(self, forward: Callable[[torch.Tensor], torch.Tensor], score: Callable[..., Any],
              photos: torch.Tensor, step: int) -> Any:
        """Per-image LossTerms of training step ``step`` on ``photos`` ((B,3,H,W) in [0, 1]); ``forward`` is
        the (maybe DDP-wrapped or compiled) model and ``score`` the (maybe compiled) loss."""

    def validate(self, photos: torch.Tensor) -> tuple[dict[str, float], torch.Tensor] | None:
        """Validation loss terms and pictures for TensorBoard, from the held-out photos."""

    def metadata(self, steps: int) -> dict[str, Any]:
        """(``steps``: the steps trained so far, resumed ones included.) The kind's part of model.json (``style``, ``loss`` that compare scores with, ``loss_network``)."""


# Builds a kind's task from the trainer's TrainConfig, the training device and the maps' memory format.
TaskFactory = Callable[[Any, torch.device, torch.memory_format], TrainingTask]
TASKS: dict[str, TaskFactory] = {}


def register(architecture: str, factory: TaskFactory) -> TaskFactory:
    """Add ``factory`` as the task of the kind of network named ``architecture`` (called by each kind's module)."""
    TASKS[architecture] = factory
    return factory


def get_task(architecture: str) -> TaskFactory:
    """The task of ``architecture``: an unknown name is the network registry's one line, a known kind
    that cannot be trained here another."""
    get_kind(architecture)
    if architecture not in TASKS:
        raise FastStyleError(f"architecture '{architecture}' cannot be trained by this fast_style (trainable: "
                             f"{', '.join(sorted(TASKS))})")
    return TASKS[architecture]
