"""Bundled style models: the ones that ship in ``checkpoints/``, usable by name.

Each bundled model is a folder ``checkpoints/<name>/`` holding the trainer's
``model.safetensors`` + ``model.json`` and a ``card.json`` model card (painting, artist,
licence, training recipe, losses, hardware). ``--model starry_night`` resolves to it; any
other value is taken as a path. ``FAST_STYLE_MODELS`` points at another folder of models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fast_style.errors import FastStyleError

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


def resolve_model(name_or_path: str | Path) -> Path:
    """A bundled model's name, or a path to a model file/folder, -> the model's path."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    models = bundled_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    names = ", ".join(models) or f"none found in {models_dir()}"
    raise FastStyleError(f"--model {name_or_path}: no such file and no bundled model of that name "
                         f"(bundled: {names}); run `fast-style models` to list them")


def read_card(name: str) -> dict[str, Any]:
    """The model card of a bundled model."""
    from fast_style.checkpoint import read_json

    return read_json(models_dir() / name / "card.json")
