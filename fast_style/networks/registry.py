"""The registry of network kinds: what a kind is (:class:`NetworkKind`), and finding one by name.

Kept apart from the package's ``__init__`` (which imports every kind so that each registers itself)
so that the kind modules import this one and nothing imports in a circle.
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
    """One kind of network; see :mod:`fast_style.networks`."""

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
