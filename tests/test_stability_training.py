"""Training for stability (``stability:``, issue 19): off changes nothing, on adds a positive, logged
term, resumes exactly, and its shifts and noise are the same for the same (seed, step)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fast_style.checkpoint import read_json
from fast_style.config import ConfigError, load_config
from fast_style.errors import FastStyleError
from fast_style.training import stability
from fast_style.training.stability import StabilityConfig, draw, off_grid_shifts, output_change, shifted, step_generator
from fast_style.training.trainer import TrainConfig, Trainer
from test_train import tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def train(shared_data: Path, output: Path, **overrides) -> Path:
    """A tiny run on the COCO sample (32 px, 4 steps unless overridden); returns its output_dir."""
    overrides = {"data.folder": shared_data / "coco_sample" / "val2017", **overrides}
    Trainer(load_config(TrainConfig, None, tiny(shared_data, output, **overrides))).run()
    return output


def logged(output: Path) -> list[dict[str, float]]:
    return [entry for entry in read_json(output / "model.json")["loss_history"] if "loss" in entry]


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_off_draws_nothing_and_trains_as_without_the_section(shared_data, tmp_path, monkeypatch):
    plain = train(shared_data, tmp_path / "plain")

    def never(*args, **kwargs):
        raise AssertionError("stability.weight=0 must not perturb anything")

    monkeypatch.setattr(stability, "draw", never)
    other = train(shared_data, tmp_path / "other", **{"stability.noise": 0.5, "stability.max_shift": 7})
    assert same_weights(plain, other)
    assert [(h["loss"], h["content"]) for h in logged(plain)] == [(h["loss"], h["content"]) for h in logged(other)]
    assert all("stability" not in h for h in logged(other))


def test_on_logs_a_positive_finite_term_inside_the_total(shared_data, tmp_path):
    output = train(shared_data, tmp_path / "on", **{"stability.weight": 10.0})
    for entry in logged(output):
        assert 0 < entry["stability"] < float("inf")
        parts = entry["content"] + entry["style"] + entry["tv"] + entry["stability"]
        assert entry["loss"] == pytest.approx(parts, rel=1e-5)
    assert not same_weights(output, train(shared_data, tmp_path / "off")), "the term changes training"


def test_resume_with_stability_is_exact_and_refuses_another_weight(shared_data, tmp_path):
    on = {"stability.weight": 10.0, "steps": 6}
    straight = train(shared_data, tmp_path / "straight", **on)
    stopped = train(shared_data, tmp_path / "stopped", **on)
    for checkpoint in (stopped / "checkpoints").glob("step_*"):
        if checkpoint.name != "step_00000002":
            shutil.rmtree(checkpoint)
    (stopped / "model.safetensors").unlink()
    with pytest.raises(FastStyleError, match="stability.weight was 10.0, now 1.0"):
        train(shared_data, stopped, **{**on, "stability.weight": 1.0})
    train(shared_data, stopped, **on)
    assert same_weights(straight, stopped)
    curve = lambda run: [(h["step"], h["loss"], h["stability"]) for h in logged(run)]
    assert curve(straight) == curve(stopped)


def test_draws_are_fixed_by_seed_and_step_and_never_on_the_stride_grid():
    settings = StabilityConfig(weight=1.0, noise=0.05, max_shift=5)
    shape = torch.Size((64, 3, 8, 8))
    first, again = draw(shape, settings, step_generator(3, 7)), draw(shape, settings, step_generator(3, 7))
    assert first.shifts == again.shifts and torch.equal(first.noise, again.noise)
    later = draw(shape, settings, step_generator(3, 8))
    assert first.shifts != later.shifts and not torch.equal(first.noise, later.noise)
    assert all(dy % 4 or dx % 4 for dy, dx in first.shifts) and max(max(map(abs, s)) for s in first.shifts) <= 5
    assert first.noise.std().item() == pytest.approx(0.05, rel=0.05)
    assert (4, 0) not in off_grid_shifts(5) and (0, 0) not in off_grid_shifts(5) and (4, 1) in off_grid_shifts(5)


def test_the_change_ignores_exactly_the_border_the_shift_invents():
    images = torch.rand(3, 3, 10, 12)
    shifts = [(1, -3), (-2, 2), (0, 1)]
    moved = shifted(images, shifts, 3)
    assert output_change(images, moved, shifts).tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(moved[0, :, 1:, :9], images[0, :, :9, 3:])
    brighter = moved + 0.1
    assert output_change(images, brighter, shifts) == pytest.approx([0.01] * 3)


@pytest.mark.parametrize("override, message", [
    ("stability.max_shift=9", "key 'stability.max_shift' must be at most 8"),
    ("stability.weight=-1", "key 'stability.weight' must be at least 0"),
])
def test_bad_values_are_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, [override])


def test_other_kinds_refuse_the_term(tmp_path):
    config = load_config(TrainConfig, None, ["architecture=adain", "style_folder=x", "stability.weight=1",
                                             f"output_dir={tmp_path}", "device=cpu"])
    with pytest.raises(FastStyleError, match="stability.weight trains johnson2016 networks only, not adain"):
        Trainer(config)
