"""Model files: safetensors for the weights, JSON for what they are. Nothing is unpickled.

A finished model is ``model.safetensors`` with ``model.json`` beside it. The safetensors
header also carries the architecture, so the ``.safetensors`` file alone is enough to
stylize; the JSON adds the training config, loss history and loss network for people and
for ``compare``. Files are written atomically (temp file + rename), and loading checks the
format, the architecture and every tensor's shape, so a truncated file, a pickle or another
network's weights give one clear line instead of a traceback or a silently wrong model. What a
network stores, and how it is rebuilt, is its kind's business (:mod:`fast_style.networks`). A model
may also carry the paintings its loss scores against (:mod:`fast_style.carried_paintings`): format
version 2, written only by models that carry one, so files without stay readable by older versions.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fast_style import model_file, safety
from fast_style.carried_paintings import PAINTING_PREFIX, CarriedPainting, tensor_name
from fast_style.images import atomic_output, atomic_write_bytes
from fast_style.model_file import METADATA_KEY, CheckpointError
from fast_style.networks import get_kind, kind_of

MODEL_FORMAT = "fast_style.model"
FORMAT_VERSION = 2  # the newest this fast_style reads; v2 files may carry paintings
PLAIN_VERSION = 1  # what a model carrying no painting is written as (readable by every version)


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (a crash leaves the old file or the new one, never half of one)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error.__class__.__name__}); the file is damaged") from None


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, header: dict[str, str] | None = None) -> None:
    """Atomically write tensors as safetensors (contiguous CPU copies)."""
    from safetensors.torch import save_file

    tensors = {name: value.detach().to("cpu").contiguous() for name, value in tensors.items()}
    with atomic_output(path) as temp:
        try:
            save_file(tensors, str(temp), metadata=header)
        except OSError:
            raise
        except Exception as error:  # safetensors reports a full disk as its own SafetensorError
            raise CheckpointError(f"{path}: cannot write ({' '.join(str(error).split())[:160]}); free some "
                                  "space or choose another output") from None


def refuse_unusable(path: Path) -> None:
    """A missing or special file, or a pickle (which could run code when loaded), is refused before it is
    read further; the message says what the bytes are, not what the name suggests."""
    kind = safety.kind_of(path)
    if kind is not None:
        raise CheckpointError(f"{path}: is {kind}, not a model file; pass a model.safetensors written by "
                              "`fast-style train`")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; pass a model.safetensors written by `fast-style train`")
    with open(path, "rb") as handle:
        start = handle.read(9)
    # A safetensors file is an 8-byte header length, then the JSON header: its length may well start
    # with the byte a pickle starts with (0x80), so the '{' after it is what tells them apart. A pickle
    # is 0x80 and a protocol number (2 to 5); torch.save writes a zip.
    safetensors_shaped = start[8:9] == b"{"
    pickled = (start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
               or start[:4] == b"PK\x03\x04")
    if pickled and not safetensors_shaped:
        raise CheckpointError(f"{path}: a pickle/torch file, which fast_style never loads (it could run code); "
                              "pass a model.safetensors written by `fast-style train`")
    if not safetensors_shaped and path.suffix in (".pt", ".pth", ".ckpt", ".pkl"):
        raise CheckpointError(f"{path}: neither a safetensors file nor a pickle (its bytes are no known model "
                              "format: damaged or not a model); pass a model.safetensors written by `fast-style train`")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file and its header; anything else is a one-line CheckpointError."""
    from safetensors import safe_open

    path = Path(path)
    refuse_unusable(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for damaged headers/data
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(error)[:80]}); "
                              "it may be truncated: re-copy it or re-export the model") from None
    return tensors, header


def save_model(model: nn.Module, path: str | Path, metadata: dict[str, Any], dtype: torch.dtype | None = None,
               paintings: Mapping[str, CarriedPainting] | None = None) -> Path:
    """Write ``path`` (.safetensors) and the JSON beside it; ``dtype`` e.g. fp16 to halve the file;
    ``paintings``: the paintings the model's loss scores against, by name, to carry in the file."""
    state = {name: value.to(dtype) if dtype and value.is_floating_point() else value
             for name, value in kind_of(model).stored_tensors(model).items()}
    return write_model_file(Path(path), state, {"model": model.config.to_metadata(), **metadata}, paintings)


def write_model_file(path: Path, weights: Mapping[str, torch.Tensor], info: dict[str, Any],
                     paintings: Mapping[str, CarriedPainting] | None = None) -> Path:
    """The safetensors (weights as given, paintings, header) and the JSON beside it; ``info`` holds
    ``model`` (the network's settings) and the rest of the metadata."""
    paintings = dict(paintings or {})
    version = FORMAT_VERSION if paintings else PLAIN_VERSION
    records = {name: painting.record() for name, painting in paintings.items()}
    info = {key: value for key, value in info.items() if key not in ("format", "format_version", "paintings")}
    info = {"format": MODEL_FORMAT, "format_version": version, "model": info.pop("model"), **info,
            **({"paintings": records} if records else {})}
    header = {"format": MODEL_FORMAT, "format_version": version, "model": info["model"],
              **({"paintings": records} if records else {})}
    tensors = {**weights, **{tensor_name(name): painting.pixels for name, painting in paintings.items()}}
    save_tensors(tensors, path, {METADATA_KEY: json.dumps(header)})
    write_json(path.with_suffix(".json"), info)
    return path


def model_path(path: str | Path) -> Path:
    """Accept the .safetensors, the .json beside it, or the folder holding model.safetensors."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    return path


def read_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from a model file's own metadata; returns (model in eval mode, metadata)."""
    path = model_path(path)
    # Everything is checked from the header before anything is allocated (fast_style.model_file).
    refuse_unusable(path)
    header, entries = model_file.read_header(path)
    try:
        info = json.loads(header[METADATA_KEY])
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: a safetensors file, but not a fast_style model (no '{METADATA_KEY}' "
                              "header); pass a model.safetensors written by `fast-style train`") from None
    architecture, settings = model_file.model_settings(path, info, model_format=MODEL_FORMAT,
                                                       format_version=FORMAT_VERSION)
    kind = get_kind(architecture)
    # Shapes without allocating (the settings could describe a huge network); a kind that loads fixed
    # weights while building (adain's encoder) copies them onto meta tensors, a no-op PyTorch warns about.
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = {name: tuple(value.shape) for name, value in kind.stored_tensors(kind.build(settings)).items()}
    model_file.check_paintings(path, info, entries, PAINTING_PREFIX)  # read when refining, checked now
    weights = {name: entry for name, entry in entries.items() if not name.startswith(PAINTING_PREFIX)}
    model_file.check_tensors(path, weights, expected, architecture)
    tensors, _ = load_tensors(path)
    tensors = {name: value for name, value in tensors.items() if name in weights}
    model_file.check_finite(path, tensors)
    model = kind.build(settings)
    kind.load_tensors(model, tensors)
    json_path = path.with_suffix(".json")
    if json_path.is_file():
        model_file.check_json_size(json_path)
        info = {**model_file.check_model_json(json_path, read_json(json_path)), **info}
    return model.to(device).eval(), info
