"""scripts/loss_by_layer.py: a model's loss with its style term split by VGG layer, beside Gatys and the photo."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from script_loader import load_script


def photo_file(tmp_path):
    path = tmp_path / "photo.png"
    Image.effect_noise((48, 40), 60).convert("RGB").save(path)
    return path


def test_style_layers_add_up_to_the_style_term_and_the_photo_has_no_content_loss(tmp_path, capsys):
    load_script("loss_by_layer").main(["udnie", str(photo_file(tmp_path)), "--size", "48", "--steps", "2"])
    report = json.loads(capsys.readouterr().out)
    assert set(report["mean"]) == {"network", "gatys-2", "photo"}
    for terms in report["mean"].values():
        layers = [value for key, value in terms.items() if key.startswith("style_relu")]
        assert len(layers) == 5 and sum(layers) == pytest.approx(terms["style"], rel=1e-4)
    assert report["mean"]["photo"]["content"] == pytest.approx(0.0, abs=1e-6)
    assert report["mean"]["network"]["content"] > 0.01
    assert report["photos"]["photo.png"]["network"] == report["mean"]["network"]  # one photo: its mean


def test_no_photos_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as info:
        load_script("loss_by_layer").main(["udnie", str(tmp_path), "--size", "48"])
    assert "no images found" in str(info.value) and "\n" not in str(info.value)
