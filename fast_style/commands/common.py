"""Small pieces several subcommands share: list flags, default output names and the resolved-config file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fast_style.errors import FastStyleError


# --device choices of every command (fast_style.runtime.resolve_device resolves them; kept here, free of
# torch, so that --help stays instant).
DEVICE_CHOICES = ["auto", "cpu", "cuda", "mps", "xpu"]
MAX_LIST_INT = 2**31 - 1  # sizes and step counts; larger ones overflow C sizes deep inside torch


def parse_int_list(text: str, flag: str) -> list[int]:
    """``"256,512"`` -> ``[256, 512]``, with a one-line error naming the flag."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FastStyleError(f"{flag} {text}: expected comma-separated integers, e.g. 256,512") from None
    if not values or min(values) <= 0 or max(values) > MAX_LIST_INT:
        raise FastStyleError(f"{flag} {text}: expected positive integers up to {MAX_LIST_INT:,}, e.g. 256,512")
    return values


def parse_float_list(text: str, flag: str) -> list[float]:
    """``"1,10,100"`` -> ``[1.0, 10.0, 100.0]``, with a one-line error naming the flag."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise FastStyleError(f"{flag} {text}: expected comma-separated numbers, e.g. 1,10,100") from None
    if not values:
        raise FastStyleError(f"{flag}: give at least one number")
    if not all(math.isfinite(value) for value in values):
        raise FastStyleError(f"{flag} {text}: every number must be finite (not nan or inf)")
    return values


def model_name(model: str) -> str:
    """A short name for default output paths: a bundled model's name, or a trained model's run folder
    (``runs/mine/model.safetensors`` -> ``mine``) or file stem."""
    path = Path(model)
    if path.suffix in (".safetensors", ".json") and path.stem == "model":
        return path.parent.name or "model"
    return path.stem or "model"


def write_resolved_config(config: Any, path: Path) -> Path:
    """Write the config a run actually used next to its output, atomically."""
    from fast_style.config import dump_yaml
    from fast_style.images import atomic_write_bytes

    atomic_write_bytes(path, dump_yaml(config).encode("utf-8"))
    return path
