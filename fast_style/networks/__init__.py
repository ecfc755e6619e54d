"""Kinds of network, each registered under the ``architecture`` name that ``model.json`` records.

A kind is one module here holding a :class:`NetworkKind`: how to rebuild the network from the
``model`` mapping of a model file, which tensors its ``model.safetensors`` holds, and the few
things stylize, tiling, export and compare need that differ between kinds. Everything that loads
or runs a model goes through :func:`get_kind`, so a new kind is one new module plus its tests, and
a model file naming an architecture this fast_style does not know gets one clear line. A kind is
how a network is built, stored, run, tiled and exported, never how it is trained: that is
:mod:`fast_style.training` (docs/layers.md).

Kinds: ``johnson2016`` (one painting per network, :mod:`fast_style.networks.johnson2016`),
``johnson2016_multi`` (several paintings in one network, chosen by name:
:mod:`fast_style.networks.multi_style`), ``adain`` (any painting, :mod:`fast_style.networks.adain`) and
``wct`` (any painting, decoders trained on photos alone: :mod:`fast_style.networks.wct`).
"""

from __future__ import annotations

from fast_style.networks import adain, johnson2016, multi_style, wct  # noqa: F401  (each registers itself)
from fast_style.networks.registry import (KINDS, ExportSpec, NetworkKind, UnknownArchitecture, get_kind, kind_of,
                                          register)

__all__ = ["KINDS", "ExportSpec", "NetworkKind", "UnknownArchitecture", "get_kind", "kind_of", "register"]
