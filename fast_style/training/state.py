"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a folder ``step_00001000/`` holding ``model.safetensors`` (the network),
``state.safetensors`` (optimiser moments and RNG states) and ``state.json`` (step, loss
history, config, optimiser hyper-parameters, grad-scaler state, and the SHA-256 of both
tensor files). It is assembled in a hidden temporary folder and renamed into place, so a
crash or a full disk leaves either the whole new checkpoint or none of it; loading checks
the hashes, and resuming skips any checkpoint that fails them.

A checkpoint also records its run's config, so that resuming it with another painting, loss,
size or network is refused (:func:`check_same_run`) rather than silently mixing two trainings.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import typing
import warnings
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fast_style.checkpoint import CheckpointError, load_tensors, read_json, save_tensors, write_json
from fast_style.config import to_dict
from fast_style.errors import FastStyleError, show
from fast_style.safety import same_file

STATE_FORMAT = "fast_style.train_state"


@dataclass
class TrainState:
    """The live objects and bookkeeping a checkpoint captures."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)
    # What the kind's task fixed at the run's first start and must not re-read on resuming (JSON-able).
    task: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimiser state -> (tensors for safetensors, JSON-able rest)."""
    tensors, plain = {}, {}
    for param_id, values in state_dict["state"].items():
        plain[str(param_id)] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{key}"] = value
            else:
                plain[str(param_id)][key] = value
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, param_id, key = name.split(".", 2)
            state.setdefault(int(param_id), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_state(folder: Path, state: TrainState, keep: int) -> Path:
    """Write ``folder/step_XXXXXXXX`` atomically and keep only the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step_{state.step:08d}"
    temp = folder / f".{final.name}.{os.getpid()}.tmp"
    replaced = folder / f".{final.name}.{os.getpid()}.old"
    for leftover in (temp, replaced):
        shutil.rmtree(leftover, ignore_errors=True)
    temp.mkdir()
    try:
        save_tensors(state.model.state_dict(), temp / "model.safetensors")
        optimizer_tensors, optimizer_plain = _split_optimizer(state.optimizer.state_dict())
        rng = {"rng.torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        save_tensors({**optimizer_tensors, **rng}, temp / "state.safetensors")
        write_json(temp / "state.json", {
            "format": STATE_FORMAT, "step": state.step, "history": state.history, "config": state.config,
            "skipped_files": state.skipped_files, "task": state.task, "optimizer": optimizer_plain,
            "scaler": state.scaler.state_dict(),
            "sha256": {name: _sha256(temp / name) for name in ("model.safetensors", "state.safetensors")}})
        if final.exists():  # the same step written again (e.g. Ctrl-C right after a checkpoint)
            os.replace(final, replaced)  # moved aside whole, never left half-deleted under its name
        os.replace(temp, final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if replaced.exists() and not final.exists():
            os.replace(replaced, final)
        raise
    for old in sorted(folder.glob("step_*"))[:-keep]:
        discard(old)
    for debris in folder.glob(".step_*"):  # this write's old copy, and temp folders of crashed writes
        shutil.rmtree(debris, ignore_errors=True)
    return final


def discard(checkpoint: Path) -> None:
    """Delete a checkpoint by renaming it to a hidden name first: a crash mid-way leaves hidden
    debris (removed by the next save), never a damaged ``step_*`` folder."""
    hidden = checkpoint.with_name(f".{checkpoint.name}.{os.getpid()}.old")
    try:
        os.replace(checkpoint, hidden)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(checkpoint: Path) -> dict:
    """The checkpoint's JSON if every file is present and matches its hash; else CheckpointError."""
    info = read_json(checkpoint / "state.json")
    if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{checkpoint}: not a fast_style training checkpoint")
    # state.json is not covered by the hashes it holds: check the types resuming relies on.
    expected = {"step": int, "history": list, "config": dict, "optimizer": dict, "scaler": dict, "sha256": dict}
    for key, kind in expected.items():
        value = info.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise CheckpointError(f"{checkpoint / 'state.json'}: '{key}' is missing or not a {kind.__name__}; "
                                  "missing or damaged")
    for name, digest in info["sha256"].items():
        path = checkpoint / name
        if not path.is_file() or _sha256(path) != digest:
            raise CheckpointError(f"{path}: missing or damaged (hash mismatch)")
    return info


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that verifies; damaged ones are reported and passed over."""
    for candidate in sorted(folder.glob("step_*"), reverse=True):
        try:
            verify(candidate)
            return candidate
        except CheckpointError as error:
            warnings.warn(f"{error}; trying an older checkpoint")
    return None


def load_state(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device) -> TrainState:
    """Restore model, optimiser, scaler and RNG from a verified checkpoint."""
    info = verify(checkpoint)
    weights, _ = load_tensors(checkpoint / "model.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise CheckpointError(f"{checkpoint}: its network does not match this config's model settings; "
                              "train into a new output_dir or restore the original model.* keys") from None
    tensors, _ = load_tensors(checkpoint / "state.safetensors")
    optimizer.load_state_dict(_join_optimizer(tensors, info["optimizer"]))
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":
                state[key] = value.to(device)
    scaler.load_state_dict(info["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return TrainState(step=info["step"], model=model, optimizer=optimizer, scaler=scaler, history=info["history"],
                      config=info["config"], skipped_files=info.get("skipped_files", []),
                      task=info["task"] if isinstance(info.get("task"), dict) else {})  # state.json may be damaged


# What makes two runs the same run: resuming with any of these changed would mix two trainings.
RUN_IDENTITY = ("architecture", "style_image", "style_images", "init_from", "trainable", "style_assignment",
                "style_size", "image_size", "model", "loss", "stability", "wct")


def _flatten(data: dict, cls: type, prefix: str = "") -> dict[str, object]:
    """``{"loss": {"style_weight": 5}}`` -> ``{"loss.style_weight": 5}``, down through the config's own
    sections only: a mapping value (``loss.style_layers``) stays one value, so an added layer differs."""
    hints = typing.get_type_hints(cls)
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and is_dataclass(hints.get(key)):
            flat.update(_flatten(value, hints[key], f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def same_painting(then: str, now: str) -> bool:
    """Two paths name the same painting: one file (through symlinks, a symlinked folder, hard links) or
    two files with the same bytes (a copy)."""
    if same_file(then, now):
        return True
    try:
        return Path(then).read_bytes() == Path(now).read_bytes()
    except OSError:
        return False


def _painting_entry(entry: Any) -> tuple[Any, Any, Any]:
    """A ``style_images`` entry as (image, size, style_weight): a path, or its mapping form."""
    if isinstance(entry, dict):
        return entry.get("image"), entry.get("size"), entry.get("style_weight")
    return entry, None, None


def paintings_difference(then: list, now: list) -> str | None:
    """What differs between the recorded and the current ``style_images`` (None: the same paintings, in
    the same order, by file not by name): a multi-style network's rows follow that order, so a reordered
    list is another run."""
    was = f"style_images was {show(then)}, now {show(now)}"
    if len(then) != len(now):
        return f"{was}: {len(then)} paintings, now {len(now)}"
    old, new = [_painting_entry(entry) for entry in then], [_painting_entry(entry) for entry in now]

    def same(a: tuple, b: tuple) -> bool:
        return (isinstance(a[0], str) and isinstance(b[0], str) and same_painting(a[0], b[0])
                and a[1:] == b[1:])

    changed = [index for index, (a, b) in enumerate(zip(old, new)) if not same(a, b)]
    if not changed:
        return None
    index = changed[0]
    moved = [place for place, entry in enumerate(old) if same(entry, new[index])]
    if moved:
        return (f"{was}: reordered, painting {index} is now {show(new[index][0])}, painting {moved[0]} before "
                "(each painting owns the row of its place)")
    return f"{was}: painting {index} was {show(then[index])}, now {show(now[index])}"


def check_same_run(checkpoint: Path, config: Any, output_dir: Path) -> None:
    """Refuse to resume ``checkpoint`` with a config (a TrainConfig) whose painting, loss, sizes or
    network differ.

    Keys an older checkpoint does not record are not compared; the painting counts as the same
    when both paths name one file.
    """
    recorded = read_json(checkpoint / "state.json").get("config")
    if not isinstance(recorded, dict):
        return
    current = to_dict(config)
    then = _flatten({key: recorded[key] for key in RUN_IDENTITY if key in recorded}, type(config))
    now = _flatten({key: current[key] for key in RUN_IDENTITY if key in current}, type(config))
    differences = []
    for key in sorted(set(then) & set(now)):
        if then[key] == now[key]:
            continue
        if key == "style_image" and isinstance(then[key], str) and now[key] and same_painting(then[key], now[key]):
            continue
        if key == "style_images" and isinstance(then[key], list) and isinstance(now[key], list):
            difference = paintings_difference(then[key], now[key])
            if difference:
                differences.append(difference)
            continue
        differences.append(f"{key} was {show(then[key])}, now {show(now[key])}")
    if differences:
        raise FastStyleError(f"output_dir={output_dir}: its checkpoint {checkpoint.name} is from another run "
                             f"({'; '.join(differences[:3])}); resuming would mix the two: restore those settings, "
                             "choose another output_dir, or pass resume=false overwrite=true to start over")
