"""Finding a model: what ``--model`` names, whether a bundled model or a file, in one place.

Bundled models ship in ``checkpoints/``, usable by name: each is a folder ``checkpoints/<name>/``
holding the trainer's ``model.safetensors`` + ``model.json`` and a ``card.json`` model card
(painting, artist, licence, training recipe, losses, hardware). ``--model starry_night`` resolves
to it (:func:`resolve_model_path`); any other value is taken as a path. ``FAST_STYLE_MODELS``
points at another folder of models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fast_style.checkpoint import CheckpointError, model_path, read_json
from fast_style.safety import kind_of

DEFAULT_MODEL = "starry_night"


def models_dir() -> Path:
    """Where bundled models live: $FAST_STYLE_MODELS, else the repository's checkpoints/."""
    override = os.environ.get("FAST_STYLE_MODELS")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "checkpoints"


def bundled_models() -> dict[str, Path]:
    """Name -> model.safetensors of every bundled model, sorted by name."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {folder.name: folder / "model.safetensors" for folder in sorted(root.iterdir())
            if (folder / "model.safetensors").is_file()}


def read_card(name: str) -> dict[str, Any]:
    """The model card of a bundled model."""
    path = models_dir() / name / "card.json"
    card = read_json(path)
    if not isinstance(card, dict):  # $FAST_STYLE_MODELS may hold downloaded models: their cards are untrusted
        raise CheckpointError(f"{path}: the top level is {type(card).__name__}, not a mapping; the card is damaged")
    return card


def resolve_model_path(name_or_path: str) -> Path:
    """The .safetensors file for a bundled model's name, or a model given as that file, the .json
    beside it, or their folder."""
    bundled = bundled_models()
    if str(name_or_path) in bundled and not Path(name_or_path).exists():
        return bundled[str(name_or_path)]
    path = model_path(name_or_path)
    if not path.is_file() and str(name_or_path) in bundled:
        raise CheckpointError(f"{name_or_path}: a local {'folder' if Path(name_or_path).is_dir() else 'file'} of "
                              f"this name hides the bundled model '{name_or_path}' (and holds no model); pass "
                              f"{bundled[str(name_or_path)]} for the bundled one, or run from another folder")
    kind = kind_of(path)
    if kind is not None and kind != "a folder":  # a folder is looked into above; a FIFO is never read
        raise CheckpointError(f"{name_or_path}: is {kind}, not a model file; pass the model.safetensors written by "
                              "`fast-style train`, its .json, or their folder")
    if not path.is_file():
        names = ", ".join(bundled) or "none"
        raise CheckpointError(f"{name_or_path}: no model found (looked for {path}; bundled models: {names}); pass "
                              "a bundled name, the model.safetensors written by `fast-style train`, its .json, "
                              "or their folder")
    return path
