"""The bundled models: every one loads, has a complete card, and stylizes deterministically;
`fast-style demo` and `fast-style models` work with no arguments and no data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from script_loader import load_script
from fast_style.checkpoint import read_model
from fast_style.models import DEFAULT_MODEL, bundled_models, read_card
from fast_style.stylize import load_stylizer
from fast_style.transformer import TransformerNet

pytestmark = pytest.mark.usefixtures("one_thread")

EXPECTED = {"starry_night", "wave", "udnie", "composition_vii"}
CARD_KEYS = {"name", "painting", "training", "final_train_loss", "validation_loss", "weights"}


def test_at_least_four_models_are_bundled():
    assert EXPECTED <= set(bundled_models())
    assert DEFAULT_MODEL in bundled_models()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_model_card_and_deterministic_stylization(name):
    card = read_card(name)
    assert CARD_KEYS <= set(card) and card["name"] == name
    painting = card["painting"]
    assert painting["title"] and painting["artist"] and painting["year"] < 1929 and "public domain" in painting["licence"]
    training = card["training"]
    assert training["steps"] > 0 and training["images_seen"] == training["steps"] * training["batch_size"]
    assert training["hardware"] and training["seconds"] > 0 and training["loss"]["style_weight"] > 0
    assert card["validation_loss"]["loss"] > 0
    model, metadata = read_model(bundled_models()[name])
    assert isinstance(model, TransformerNet) and metadata["style"]["name"] == name
    photo = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, second = model(photo), model(photo)
    assert first.shape == photo.shape and torch.equal(first, second)
    assert (first - photo).abs().mean() > 0.05  # it really stylizes


def load_record_quality():
    return load_script("record_quality")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_card_quality_is_a_rerunnable_measurement_or_says_it_is_missing(name):
    """The quality bar's verdict must follow from the recorded numbers, never be asserted alone."""
    quality = read_card(name)["quality"]
    if quality.get("measured") is False:
        assert "not measured" in quality["note"].lower()
        return
    averages = quality["average_loss"]
    assert quality["command"].startswith("fast-style compare --model " + name)
    assert quality["bar_met"] == (averages["network"]["loss"] < averages["gatys-50"]["loss"])
    assert quality["network_over_gatys_50"] == round(averages["network"]["loss"] / averages["gatys-50"]["loss"], 2)
    assert quality["size"] > 0 and quality["photos"] and quality["note"]


def test_record_quality_turns_a_compare_report_into_a_card_entry():
    terms = {"content": 0.5, "style": 0.4, "tv": 0.1}
    report = {"model": "wave", "style": {"image": "styles/wave.jpg"}, "photos": ["eval/a.png", "eval/b.png"],
              "size": 512, "steps": [50, 100], "device": "cuda",
              "averages": {"network": {"loss": 0.9, **terms, "seconds": 0.01},
                           "gatys-50": {"loss": 1.0, **terms, "seconds": 2.0},
                           "gatys-100": {"loss": 0.8, **terms, "seconds": 4.0}}}
    entry = load_record_quality().quality_entry(report, "a note")
    assert entry["command"] == ("fast-style compare --model wave --style styles/wave.jpg eval/a.png eval/b.png "
                                "--size 512 --steps 50,100 --device cuda")
    assert entry["photos"] == ["a.png", "b.png"] and entry["bar_met"] is True
    assert entry["network_over_gatys_50"] == 0.9 and entry["network_over_gatys_100"] == 1.12
    assert set(entry["average_loss"]) == {"network", "gatys-50", "gatys-100"}


def test_fp16_storage_is_lossless_enough(tmp_path):
    """Bundled weights are stored as fp16; an fp32 network saved that way must stylize the same
    to well under one 8-bit level, and the bundled files must really be fp16."""
    from safetensors import safe_open

    from fast_style.checkpoint import save_model

    with safe_open(str(bundled_models()[DEFAULT_MODEL]), framework="pt") as handle:
        assert all(handle.get_tensor(k).dtype == torch.float16 for k in handle.keys() if "weight" in k)
    model, _ = read_model(bundled_models()[DEFAULT_MODEL])
    exact = TransformerNet(model.config)
    generator = torch.Generator().manual_seed(2)
    exact.load_state_dict({k: v + 1e-3 * torch.randn(v.shape, generator=generator) * v.abs().mean()
                           for k, v in model.state_dict().items()})  # fp32 values fp16 cannot hold
    save_model(exact, tmp_path / "model.safetensors", {}, dtype=torch.float16)
    halved, _ = read_model(tmp_path / "model.safetensors")
    photo = torch.rand(1, 3, 64, 48, generator=generator)
    with torch.no_grad():
        assert (halved(photo) - exact.eval()(photo)).abs().max() < 1 / 255


def test_bundled_name_resolves_in_the_stylizer(tmp_path):
    stylizer = load_stylizer("wave", device="cpu")
    assert stylizer.metadata["style"]["name"] == "wave"


def test_demo_writes_an_image_with_no_arguments(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fast_style.cli", "demo"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    output = tmp_path / "fast_style_demo.png"
    from PIL import Image

    with Image.open(output) as image:
        assert image.size == (1024, 512)
    assert "fast_style_demo.png" in result.stdout
    before = output.read_bytes()
    again = subprocess.run([sys.executable, "-m", "fast_style.cli", "demo"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr, "an earlier picture is kept"
    assert output.read_bytes() == before


def test_models_lists_every_bundled_model(capsys):
    from fast_style.cli import main

    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPECTED)


@pytest.mark.parametrize(("model", "name"), [("starry_night", "starry_night"), ("runs/mine/model.safetensors", "mine"),
                                             ("runs/mine/model.json", "mine"), ("exports/wave_v2.safetensors", "wave_v2"),
                                             ("runs/mine", "mine")])
def test_default_output_names_come_from_the_model(model, name):
    from fast_style.commands.common import model_name

    assert model_name(model) == name
