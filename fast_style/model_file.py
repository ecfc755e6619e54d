"""Model files are untrusted input: every part is checked before anything is built from one.

Users download and share models, so a ``model.safetensors`` (and the ``model.json`` beside it)
may hold anything: a list where a mapping belongs, a fraction or a string where an integer
belongs, a width that would allocate hundreds of GB, tensors of the wrong names, shapes or
dtypes, or NaN weights that would turn every photo black. The checks here read only the
safetensors header (a bounded JSON prefix) and the metadata, so a hostile file is refused
before a single tensor is allocated; the weights are checked for finiteness once read.

Each check is a function of already-parsed data (the header's metadata, its tensor table,
the shapes an architecture expects), so an architecture registry can call them per
architecture. Every refusal is one :class:`CheckpointError` line naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fast_style.config import MAX_SIDE
from fast_style.errors import FastStyleError, show
from fast_style.networks.multi_style import MAX_STYLES

METADATA_KEY = "fast_style"  # the safetensors header entry holding a model's JSON metadata
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit for the JSON header
MAX_MODEL_BYTES = 4 * 2**30  # a Johnson network is a few MB; 4 GB is far beyond any sane one
MAX_JSON_BYTES = 256 * 2**20  # model.json: a config and a loss history, a few hundred KB at most
MAX_PARAMETERS = 500_000_000  # checked from the settings before the network is built
TENSOR_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}  # what save_model writes (fp32, or fp16/bf16 to halve it)
ENTRY_BYTES = {**TENSOR_DTYPES, "U8": 1}  # element sizes checked against data offsets (U8: carried paintings)
# The settings each architecture takes, with their inclusive ranges.
SETTING_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "johnson2016": {"width": (1, 512), "residual_blocks": (1, 64)},
    "adain": {"width": (1, 512)},
    "johnson2016_multi": {"width": (1, 512), "residual_blocks": (1, 64)},
    "wct": {"width": (1, 512), "deepest": (1, 5), "shallowest": (1, 5)},
}
# Settings that are mappings rather than integers (checked by the kind that reads them), per architecture.
MAPPING_SETTINGS: dict[str, frozenset[str]] = {"adain": frozenset({"encoder"}), "wct": frozenset({"encoder"})}
# Settings that are lists of distinct, non-empty names (a multi-style model's paintings), per architecture.
NAME_LIST_SETTINGS: dict[str, frozenset[str]] = {"johnson2016_multi": frozenset({"styles"})}
MAX_NAMES = MAX_STYLES  # the one list of names a model file holds is a multi-style model's paintings
MAX_NAME_CHARS = 200


class CheckpointError(FastStyleError):
    """A model or training-state file that cannot be used (re-exported by :mod:`fast_style.checkpoint`)."""


def is_int(value: Any) -> bool:
    """An integer in the JSON sense: not a bool, not a float (even 8.0), not a string."""
    return isinstance(value, int) and not isinstance(value, bool)


def read_header(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The safetensors header of ``path``, checked: (its ``__metadata__``, its tensor table).

    Reads only the 8-byte length and the JSON it announces; every entry must have a string
    dtype, a list of non-negative integer dimensions and data offsets inside the file.
    """
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes, over the {MAX_MODEL_BYTES:,}-byte limit for a model file; "
                              "this is not a fast_style model")
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: not a safetensors file (its header length is impossible); it may be "
                                  "truncated: re-copy it or re-export the model")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON; the file is damaged") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is {type(header).__name__}, not a mapping; "
                              "the file is damaged")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: the safetensors __metadata__ must map names to strings")
    data_bytes = size - 8 - length
    for name, entry in header.items():
        _check_entry(path, name, entry, data_bytes)
    return metadata, header


def _check_entry(path: Path, name: str, entry: Any, data_bytes: int) -> None:
    """One tensor-table entry: a known dtype, integer dimensions, offsets inside the file that fit the shape."""
    where = f"{path}: tensor {show(name)}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: its header entry is {type(entry).__name__}, not a mapping")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise CheckpointError(f"{where}: dtype {show(dtype)} is not a string")
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{where}: shape {show(shape)} is not a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
        raise CheckpointError(f"{where}: data offsets {show(offsets)} do not lie inside the file; it is truncated "
                              "or damaged")
    if dtype in ENTRY_BYTES and offsets[1] - offsets[0] != math.prod(shape) * ENTRY_BYTES[dtype]:
        raise CheckpointError(f"{where}: its data size does not match its shape {show(shape)}; the file is damaged")


def model_settings(path: Path, info: Any, *, model_format: str, format_version: int) -> tuple[str, dict[str, int]]:
    """(architecture, its settings) from the ``fast_style`` header entry, every field type- and range-checked."""
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: the fast_style header is {type(info).__name__}, not a mapping; "
                              "the file is damaged or not a fast_style model")
    version = info.get("format_version")
    if info.get("format") != model_format:
        raise CheckpointError(f"{path}: format {show(info.get('format'))} is not {model_format}; "
                              "pass a model.safetensors written by `fast-style train`")
    if not is_int(version) or version < 1:
        raise CheckpointError(f"{path}: format_version {show(version)} is not a positive integer; the file is damaged")
    if version > format_version:
        raise CheckpointError(f"{path}: model format {model_format} v{version} is not supported by this fast_style "
                              f"(it reads up to v{format_version}); upgrade fast_style")
    settings = info.get("model")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: 'model' is {show(settings)}, not a mapping of network settings")
    settings = dict(settings)
    architecture = settings.pop("architecture", None)
    if not isinstance(architecture, str) or architecture not in SETTING_RANGES:
        raise CheckpointError(f"{path}: architecture {show(architecture)} is not known to this fast_style (known: "
                              f"{', '.join(sorted(SETTING_RANGES))}); the file is for another network or a newer "
                              "fast_style")
    check_settings(path, architecture, settings)
    return architecture, settings


def check_settings(path: Path, architecture: str, settings: Mapping[str, Any]) -> None:
    """Every setting known to ``architecture``, an integer within its range; nothing else."""
    ranges = SETTING_RANGES[architecture]
    mappings = MAPPING_SETTINGS.get(architecture, frozenset())
    name_lists = NAME_LIST_SETTINGS.get(architecture, frozenset())
    unknown = sorted(set(settings) - set(ranges) - mappings - name_lists, key=str)
    if unknown:
        raise CheckpointError(f"{path}: unknown {architecture} setting {show(unknown[0])} (known: "
                              f"{', '.join(ranges)}); upgrade fast_style")
    for name in mappings & set(settings):
        if not isinstance(settings[name], dict):
            raise CheckpointError(f"{path}: the {architecture} setting '{name}' is {show(settings[name])}, not a mapping")
    for name in name_lists:
        check_names(path, name, settings.get(name))
    for name, (low, high) in ranges.items():
        if name not in settings:
            raise CheckpointError(f"{path}: the {architecture} setting '{name}' is missing; the file is damaged")
        value = settings[name]
        if not is_int(value) or not low <= value <= high:
            raise CheckpointError(f"{path}: '{name}' must be an integer from {low} to {high}, got {show(value)}")


def check_names(path: Path, setting: str, names: Any) -> None:
    """A list of 1 to :data:`MAX_NAMES` distinct non-empty strings of at most :data:`MAX_NAME_CHARS`."""
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_NAMES:
        raise CheckpointError(f"{path}: the setting '{setting}' must be a list of 1 to {MAX_NAMES} names, got "
                              f"{show(names)}; the file is damaged")
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable():
            raise CheckpointError(f"{path}: '{setting}' holds {show(name)}, not a name of 1 to {MAX_NAME_CHARS} "
                                  "printable characters; the file is damaged")
    if len(set(names)) != len(names):
        raise CheckpointError(f"{path}: '{setting}' names a style twice; the file is damaged")


def check_paintings(path: Path, info: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]],
                    prefix: str) -> dict[str, dict[str, str]]:
    """The carried paintings the header declares (``info["paintings"]``: name -> sha256, source, licence),
    each with its ``prefix + name`` tensor: uint8, (3, H, W); no painting tensor without a record.
    Returns the records by name (empty for a model that carries none)."""
    records = info.get("paintings")
    if records is None:
        records = {}
    if not isinstance(records, dict) or len(records) > MAX_NAMES:
        raise CheckpointError(f"{path}: 'paintings' in the header must map up to {MAX_NAMES} names to records, got "
                              f"{show(records)}; the file is damaged")
    for name, record in records.items():
        if not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable():
            raise CheckpointError(f"{path}: a carried painting is named {show(name)}, not 1 to {MAX_NAME_CHARS} "
                                  "printable characters; the file is damaged")
        fields = record if isinstance(record, dict) else {}
        digest = fields.get("sha256")
        if (not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)
                or not isinstance(fields.get("source"), str) or not isinstance(fields.get("licence"), str)):
            raise CheckpointError(f"{path}: the record of carried painting {show(name)} must hold a sha256 (64 hex "
                                  "digits), a source and a licence; the file is damaged")
        entry = entries.get(prefix + name)
        if entry is None:
            raise CheckpointError(f"{path}: the carried painting {show(name)} is declared but its tensor "
                                  f"'{prefix}{name}' is missing; the file is damaged")
        shape = entry["shape"]
        if (entry["dtype"] != "U8" or len(shape) != 3 or shape[0] != 3
                or not all(1 <= side <= MAX_SIDE for side in shape[1:])):
            raise CheckpointError(f"{path}: the carried painting {show(name)} must be uint8 of shape (3, H, W) with "
                                  f"sides up to {MAX_SIDE}, got {show(entry['dtype'])} {show(shape)}; "
                                  "the file is damaged")
    stray = sorted((name for name in entries if name.startswith(prefix) and name[len(prefix):] not in records), key=str)
    if stray:
        raise CheckpointError(f"{path}: tensor {show(stray[0])} is a painting the header does not declare; the file "
                              "is damaged")
    return records


def expected_shapes(network: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a network's state dict holds (build it on the meta device: no memory)."""
    return {name: tuple(value.shape) for name, value in network.state_dict().items()}


def check_tensors(path: Path, entries: Mapping[str, Mapping[str, Any]], expected: Mapping[str, tuple[int, ...]],
                  architecture: str) -> None:
    """The header's tensor table against what the architecture needs: names, shapes and dtypes."""
    missing = sorted(set(expected) - set(entries))
    extra = sorted(set(entries) - set(expected), key=str)
    if missing or extra:
        first = f"missing '{missing[0]}'" if missing else f"unexpected {show(extra[0])}"
        raise CheckpointError(f"{path}: weights do not fit the {architecture} network its header describes "
                              f"(first mismatch: {first}); the file is damaged or from another network")
    total = sum(math.prod(shape) for shape in expected.values())
    if total > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: {total:,} parameters, over the {MAX_PARAMETERS:,} limit")
    for name, shape in expected.items():
        entry = entries[name]
        if tuple(entry["shape"]) != tuple(shape):
            raise CheckpointError(f"{path}: weights do not fit the {architecture} network its header describes "
                                  f"(first mismatch: '{name}' is {show(entry['shape'])}, expected {list(shape)}); "
                                  "the file is damaged or from another network")
        if entry["dtype"] not in TENSOR_DTYPES:
            raise CheckpointError(f"{path}: tensor '{name}' has dtype {show(entry['dtype'])}; model weights are "
                                  f"{', '.join(TENSOR_DTYPES)}")


def check_finite(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """NaN or infinite weights would make every photo black (and exit 0): refuse them."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite weights; the model is broken "
                                  "(its training diverged or the file was altered): retrain or re-download it")


def check_json_size(path: Path) -> None:
    """Refuse to read a model.json far larger than any real one (it is read whole)."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes, over the {MAX_JSON_BYTES:,}-byte limit for a model.json; "
                              "the file is not a fast_style model.json: restore it or delete it")


def check_model_json(path: Path, data: Any) -> dict[str, Any]:
    """The ``model.json`` beside a model must be a mapping (its sections are checked by their readers,
    e.g. ``compare``)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the top level is {type(data).__name__}, not a mapping; the file is "
                              "damaged: restore it or delete it (the .safetensors alone is enough to stylize)")
    return data
