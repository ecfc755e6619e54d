"""Small pieces several subcommands share: list flags, default output names and the resolved-config file."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

from fast_style.errors import FastStyleError


# --device choices of every command (fast_style.runtime.resolve_device resolves them; kept here, free of
# torch, so that --help stays instant).
DEVICE_CHOICES = ["auto", "cpu", "cuda", "mps", "xpu"]
PRECISION_CHOICES = ["auto", "fp32", "bf16", "fp16"]


def add_device_options(parser: argparse.ArgumentParser, *, from_config: bool = False, scored: bool = False) -> None:
    """``--device`` and ``--precision``, worded once for every command. ``from_config``: no argparse
    default, so a config file's value stands unless the flag is given (both default to auto there);
    ``scored``: the command reports losses, which are computed in fp32 whatever it ran in."""
    default = None if from_config else "auto"
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=default,
                        help="where to run" + (" (default auto)" if from_config else ""))
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=default,
                        help="auto" + (" (default)" if from_config else "") + ": bf16 on CPUs with AMX-BF16 or "
                             "AVX512-BF16 and on CUDA GPUs with bf16, fp32 elsewhere; fp16 needs a CUDA GPU"
                             + ("; losses are scored in fp32 either way" if scored else ""))


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


def choose_style(stylizer: Any, model: str, style: str | None, alpha: float | None) -> None:
    """Apply ``--style``/``--alpha`` to a loaded Stylizer, or refuse in one line what the model needs:
    a model for any painting needs a painting, a multi-style model one of its styles (named in the
    message), and a single-painting model refuses both (the Stylizer says so, and checks ``alpha``)."""
    if style is not None or alpha is not None:
        # The painting's statistics (or the style's mix): computed once for the whole run.
        stylizer.set_style(style or "", alpha if alpha is not None else 1.0)
    elif stylizer.kind.takes_style:
        raise FastStyleError(f"--model {model}: this {stylizer.kind.name} model stylizes with any painting; "
                             "pass --style PAINTING")
    else:
        stylizer.require_style()  # a multi-style model: one line naming its styles


def read_files(model: str | None = None, style: str | None = None) -> list[Path]:
    """Every file a command reads besides its photos or clip: the model's ``.safetensors`` and the
    ``.json`` beside it, and the painting(s) named by ``--style`` (the whole value, and each part of a
    mix, that names an existing file), for the output rule (:func:`fast_style.safety.check_not_an_input`):
    none of them is ever an output, with or without ``--overwrite``."""
    from fast_style.errors import FastStyleError
    from fast_style.models import resolve_model_path
    from fast_style.safety import file_identity

    files: list[Path] = []
    if model is not None:
        try:
            weights = resolve_model_path(model)
            files += [weights, weights.with_suffix(".json")]
        except (FastStyleError, OSError):
            pass  # no such model: loading it says so, after the cheaper checks
    if style:
        parts = [part.strip() for part in style.split(",")]
        files += [Path(name) for name in [style, *parts, *(part.rpartition("=")[0] for part in parts)] if name]
    # file_identity, not exists(): a 100,000-character --style is "File name too long", not a crash.
    return [path for path in files if file_identity(path) is not None]


def style_tag(style: str) -> str:
    """A short name for a ``--style`` in default output paths: ``wave``, ``a.jpg=0.7,b.jpg=0.3`` ->
    ``a0.7+b0.3``; characters a file name should not hold become ``_``."""
    parts = []
    for part in (item.strip() for item in style.split(",") if item.strip()):
        name, sep, weight = part.rpartition("=")
        parts.append(f"{Path(name).stem}{weight}" if sep else Path(part).stem)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", "+".join(parts))[:80] or "style"


def write_resolved_config(config: Any, path: Path) -> Path:
    """Write the config a run actually used next to its output, atomically."""
    from fast_style.config import dump_yaml
    from fast_style.images import atomic_write_bytes

    atomic_write_bytes(path, dump_yaml(config).encode("utf-8"))
    return path
