"""Kinds of network, each registered under the ``architecture`` name that ``model.json`` records.

A kind is one module here holding a :class:`NetworkKind`: how to rebuild the network from the
``model`` mapping of a model file, which tensors its ``model.safetensors`` holds, and the few
things stylize, tiling, export and compare need that differ between kinds. Everything that loads
or runs a model goes through :func:`get_kind`, so a new kind is one new module plus its tests, and
a model file naming an architecture this fast_style does not know gets one clear line.

Kinds: ``johnson2016`` (one painting per network, :mod:`fast_style.networks.johnson2016`),
``johnson2016_multi`` (several paintings in one network, chosen by name:
:mod:`fast_style.networks.multi_style`) and ``adain`` (any painting, :mod:`fast_style.networks.adain`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from fast_style.errors import FastStyleError


class UnknownArchitecture(FastStyleError):
    """A model file (or config) names a kind of network this fast_style does not have."""


@dataclass
class ExportSpec:
    """What tracing a kind of network to ONNX/TorchScript needs.

    ``module`` is traceable at any size; ``example(shape, generator)`` gives inputs for a photo batch of
    ``shape``; ``reference(*inputs)`` is PyTorch's answer that the export must reproduce.
    """

    module: nn.Module
    input_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    example: Callable[[tuple[int, ...], torch.Generator], tuple[torch.Tensor, ...]]
    reference: Callable[..., torch.Tensor]


class NetworkKind(Protocol):
    """One kind of network; see the module docstring."""

    name: str
    takes_style: bool  # whether stylizing needs a painting (--style)

    def build(self, settings: dict[str, Any]) -> nn.Module:
        """The network described by model.json's ``model`` mapping (``architecture`` removed), untrained."""

    def stored_tensors(self, network: nn.Module) -> dict[str, torch.Tensor]:
        """The tensors model.safetensors holds for ``network`` (names and shapes are what loading checks)."""

    def load_tensors(self, network: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        """Put stored tensors (already checked against :meth:`stored_tensors`) into ``network``."""

    def inference_form(self, network: nn.Module, winograd: bool) -> nn.Module | None:
        """An exact, cheaper form for untiled inference (a copy, or ``network`` itself switched to its cheaper
        layers where it holds state the caller keeps setting), or None where the kind has none."""

    def stylize_tiled(self, network: nn.Module, batch: torch.Tensor, tile: int) -> torch.Tensor:
        """Tiled inference that equals the untiled result."""

    def bytes_per_pixel(self, network: nn.Module, element: int) -> int:
        """Peak memory per input pixel of an untiled pass, for choosing GPU tiles."""

    def export_spec(self, network: nn.Module) -> ExportSpec:
        """How to trace ``network`` for export."""

    def training(self, config: Any, device: torch.device, memory_format: torch.memory_format) -> TrainingTask:
        """The per-kind step :class:`fast_style.train.Trainer` runs (``config`` is its TrainConfig)."""


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


KINDS: dict[str, NetworkKind] = {}


def register(kind: NetworkKind) -> NetworkKind:
    """Add ``kind`` under its name (called by each kind's module)."""
    KINDS[kind.name] = kind
    return kind


def get_kind(name: object) -> NetworkKind:
    """The kind registered as ``name``; an unknown name is one line naming it and the known ones."""
    if name not in KINDS:
        raise UnknownArchitecture(f"architecture '{name}' is not known to this fast_style (known: "
                                  f"{', '.join(sorted(KINDS))}); upgrade fast_style or check model.json")
    return KINDS[name]  # type: ignore[index]


def kind_of(network: nn.Module) -> NetworkKind:
    """The kind of a built network (every kind's network has ``config.architecture``)."""
    return get_kind(network.config.architecture)


from fast_style.networks import adain, johnson2016, multi_style  # noqa: E402,F401  (each registers itself)
