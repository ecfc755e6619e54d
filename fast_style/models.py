"""Bundled style models: the ones that ship in ``checkpoints/``, usable by name.

Each bundled model is a folder ``checkpoints/<name>/`` holding the trainer's
``model.safetensors`` + ``model.json`` and a ``card.json`` model card (painting, artist,
licence, training recipe, losses, hardware). ``--model starry_night`` resolves to it
(:func:`fast_style.stylize.resolve_model_path`); any other value is taken as a path. ``FAST_STYLE_MODELS`` points at another folder of models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


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
    from fast_style.checkpoint import CheckpointError, read_json

    path = models_dir() / name / "card.json"
    card = read_json(path)
    if not isinstance(card, dict):  # $FAST_STYLE_MODELS may hold downloaded models: their cards are untrusted
        raise CheckpointError(f"{path}: the top level is {type(card).__name__}, not a mapping; the card is damaged")
    return card
