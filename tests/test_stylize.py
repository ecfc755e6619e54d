"""Tests for fast_style.stylize and `fast-style stylize`: sizes, tiling, odd inputs, folders, interruption.

Every model here is a random width-8 TransformerNet with perturbed instance-norm affine parameters
(so its output is far from flat), saved with the trainer's own checkpoint.save_model.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import fast_style
from fast_style import cli
from fast_style.checkpoint import CheckpointError, save_model
from fast_style.errors import FastStyleError
from fast_style.images import image_to_tensor, tensor_to_image
from fast_style.models import resolve_model_path
from fast_style.stylize import (
    Options,
    Stylizer,
    blend,
    load_stylizer,
    luminance,
    preserve_color,
)
from fast_style.tiling import FixedStatsNorm, fixed_norm_statistics, tile_spans
from fast_style.transformer import TransformerNet


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A synthetic photo: smooth colour gradients, a few blocks and mild noise, mid-range values."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([0.3 + 0.4 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * np.sin(6 * x + 3 * y)], axis=-1)
    for _ in range(3):
        top, left = rng.integers(0, max(1, height - 4)), rng.integers(0, max(1, width - 4))
        pixels[top:top + height // 3, left:left + width // 3] = rng.uniform(0.2, 0.8, 3)
    pixels += rng.normal(0, 0.03, pixels.shape)
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's
    spin-waiting makes them ~10x slower; restored afterwards for other modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, strong_network: TransformerNet) -> Path:
    return save_model(strong_network, tmp_path_factory.mktemp("model") / "model.safetensors", {"style": "test"})


@pytest.fixture(scope="module")
def stylizer(model_file: Path) -> Stylizer:
    return load_stylizer(model_file, device="cpu", precision="fp32")


def stylize_cli(*args: object) -> int:
    """The CLI on CPU in fp32, so results compare exactly with the ``stylizer`` fixture on any machine
    (``auto`` would be bf16 on CPUs with bf16 units: see test_auto_precision_stylizes_in_bf16_where_fast)."""
    return cli.main(["stylize", "--device", "cpu", "--precision", "fp32", *map(str, args)])


def pixels(path_or_image: Path | Image.Image) -> np.ndarray:
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(image, dtype=np.int16)


def leftovers(folder: Path) -> list[Path]:
    """Temp or hidden files a crashed write could leave behind."""
    return [path for path in folder.rglob("*") if path.name.startswith(".") or path.suffix == ".tmp"]


# --- the Python API ---------------------------------------------------------------------------

def test_package_load_model_returns_a_stylizer(model_file: Path) -> None:
    model = fast_style.load_model(model_file, device="cpu")
    image = photo(37, 23)
    result = model.stylize(image)
    assert isinstance(model, Stylizer) and model.metadata["style"] == "test"
    assert result.size == (37, 23) and result.mode == "RGB"
    assert np.abs(pixels(result) - pixels(image)).mean() > 10  # it really stylized


def test_import_fast_style_does_not_import_torch() -> None:
    code = "import sys, fast_style; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_model_path_may_be_the_file_the_json_or_the_folder(model_file: Path) -> None:
    for name in (model_file, model_file.with_suffix(".json"), model_file.parent):
        assert resolve_model_path(str(name)) == model_file
    with pytest.raises(CheckpointError, match="no model found"):
        resolve_model_path(str(model_file.parent / "missing"))


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (17, 9), (33, 65), (95, 31)])
def test_any_size_gives_exactly_that_size_without_resampling(stylizer: Stylizer, size: tuple[int, int]) -> None:
    image = photo(*size)
    expected = tensor_to_image(stylizer.model(image_to_tensor(image)[None]).detach())
    result = stylizer.stylize(image)
    assert result.size == size
    # No crop, shift or resize on the way: every pixel matches the plain network's, up to one
    # 8-bit level where the CPU's faster (mathematically equal) network rounds the other way.
    difference = np.abs(pixels(result).astype(int) - pixels(expected).astype(int))
    assert difference.max() <= 1


def test_no_border_artefacts_at_odd_sizes(stylizer: Stylizer) -> None:
    result = stylizer.stylize_tensor(image_to_tensor(photo(95, 61))[None])[0]
    for axis in (1, 2):  # rows, columns: the step across the last/first line is like any other
        steps = result.diff(dim=axis).abs().mean(dim=[d for d in (0, 1, 2) if d != axis])
        assert max(steps[0], steps[-1]) < 2 * steps.median()


def test_size_sets_the_longer_side(stylizer: Stylizer) -> None:
    assert stylizer.stylize(photo(80, 40), size=50).size == (50, 25)


def test_batches_match_single_images(stylizer: Stylizer) -> None:
    batch = torch.stack([image_to_tensor(photo(40, 30, seed)) for seed in range(3)])
    together = stylizer.stylize_tensor(batch)
    alone = torch.cat([stylizer.stylize_tensor(image[None]) for image in batch])
    assert together.dtype == torch.float32 and together.shape == batch.shape
    assert torch.allclose(together, alone, atol=1e-5)


def test_channels_last_matches_contiguous(model_file: Path) -> None:
    batch = image_to_tensor(photo(45, 29))[None]
    nhwc = load_stylizer(model_file, device="cpu", channels_last=True).stylize_tensor(batch)
    nchw = load_stylizer(model_file, device="cpu", channels_last=False).stylize_tensor(batch)
    assert torch.allclose(nhwc, nchw, atol=1e-5)
    nhwc.clamp_(0, 1)  # an ordinary tensor, not an inference tensor: callers may modify it


def test_fp16_on_cpu_is_one_clear_line(model_file: Path) -> None:
    with pytest.raises(FastStyleError, match="fp16 needs a CUDA GPU") as info:
        load_stylizer(model_file, device="cpu", precision="fp16")
    assert "\n" not in str(info.value)


def test_bf16_on_cpu_stays_close_to_fp32(model_file: Path, stylizer: Stylizer) -> None:
    batch = image_to_tensor(photo(32, 24))[None]
    bf16 = load_stylizer(model_file, device="cpu", precision="bf16").stylize_tensor(batch)
    assert bf16.dtype == torch.float32
    assert (bf16 - stylizer.stylize_tensor(batch)).abs().mean() < 0.03


def test_bundled_model_in_bf16_is_within_two_levels_of_fp32(shared_data: Path) -> None:
    """The bf16 inference form on a real (bundled) model and a real photo: 8-bit values within 2 levels
    of fp32 for at least 99 % of them (the random test network above is far more sensitive)."""
    from fast_style.images import load_image

    photo_tensor = load_image(shared_data / "eval" / "kodak24" / "kodim05.png", size=96)[None]
    fp32 = load_stylizer("wave", device="cpu", precision="fp32").stylize_tensor(photo_tensor)
    bf16 = load_stylizer("wave", device="cpu", precision="bf16").stylize_tensor(photo_tensor)
    levels = ((fp32 * 255).round() - (bf16 * 255).round()).abs()
    assert (levels <= 2).float().mean() >= 0.99 and levels.max() <= 8


def test_bf16_tiles_match_untiled_bf16(model_file: Path) -> None:
    """Tiling with shared norm statistics stays exact in bf16 too, to bf16 rounding."""
    bf16 = load_stylizer(model_file, device="cpu", precision="bf16")
    batch = image_to_tensor(photo(157, 131))[None]
    difference = (bf16.stylize_tensor(batch, tile=64) - bf16.stylize_tensor(batch)).abs()
    assert difference.mean() < 0.01


def test_auto_precision_stylizes_in_bf16_where_fast(model_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """``auto`` follows the detected CPU (both outcomes), says so once, and bf16 output stays near fp32."""
    from fast_style import precision

    for has_units, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "_torch_cpu_flag", lambda name, has_units=has_units: has_units)
        assert load_stylizer(model_file, device="cpu").precision.name == expected
        source = tmp_path / f"photo_{expected}.png"
        photo(40, 30).save(source)
        assert cli.main(["stylize", "--device", "cpu", "--model", str(model_file), str(source),
                         "--output", str(tmp_path / f"out_{expected}.png")]) == 0
        assert f", {expected} (auto: this CPU has" in capsys.readouterr().out, "the precision and why, once"
    fp32, bf16 = (pixels(Image.open(tmp_path / f"out_{name}.png")) for name in ("fp32", "bf16"))
    assert 0 < np.abs(fp32 - bf16).mean() < 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_matches_cpu(model_file: Path, stylizer: Stylizer, precision: str) -> None:
    batch = image_to_tensor(photo(67, 41))[None]
    cuda = load_stylizer(model_file, device="cuda", precision=precision)
    result = cuda.stylize_tensor(batch)
    assert result.device.type == "cuda" and result.dtype == torch.float32
    # fp32 convs use TF32 on recent GPUs (PyTorch's cuDNN default): ~5e-4 mean difference from CPU
    tolerance = 2e-3 if precision == "fp32" else 0.03
    assert (result.cpu() - stylizer.stylize_tensor(batch)).abs().mean() < tolerance
    assert (cuda.stylize_tensor(batch, tile=64) - result).abs().mean() < tolerance / 2


# --- tiling -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("width", "height", "tile"), [(157, 131, 64), (130, 97, 96)])
def test_tiled_result_matches_untiled(stylizer: Stylizer, width: int, height: int, tile: int) -> None:
    batch = torch.stack([image_to_tensor(photo(width, height, seed)) for seed in range(2)])
    untiled = stylizer.stylize_tensor(batch)
    tiled = stylizer.stylize_tensor(batch, tile=tile)
    difference = (tiled - untiled).abs()
    print(f"tiled vs untiled at {width}x{height}, tile {tile}: max {difference.max():.2e}, "
          f"mean {difference.mean():.2e}")
    # Exact up to float rounding (tiles run the plain network, whole images on the CPU the
    # rewritten fast one with Winograd convs, ~1e-4 apart): no seams, no tone shift, far below one
    # 8-bit level (4e-3). Over random networks the mean ranged 5e-6 to 1.3e-5.
    assert difference.max() < 5e-4 and difference.mean() < 3e-5


def test_naive_tiles_would_differ(stylizer: Stylizer) -> None:
    """The problem tiling solves: a tile normalised by its own content changes tone."""
    batch = image_to_tensor(photo(128, 64))[None]
    whole = stylizer.stylize_tensor(batch)
    naive = stylizer.stylize_tensor(batch[..., :64])
    assert (naive - whole[..., :64]).abs().mean() > 0.01


def test_large_images_are_tiled_automatically(stylizer: Stylizer, monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_style.networks.johnson2016 as kind
    import fast_style.stylize as module

    batch = image_to_tensor(photo(96, 80))[None]
    untiled = stylizer.stylize_tensor(batch)
    tiles, real = [], kind.stylize_tiled
    monkeypatch.setattr(kind, "stylize_tiled", lambda model, x, tile: tiles.append(tile) or real(model, x, tile))
    monkeypatch.setattr(module, "CPU_MAX_PIXELS", 96 * 80 - 1)
    monkeypatch.setattr(module, "CPU_TILE", 64)
    assert (stylizer.stylize_tensor(batch) - untiled).abs().max() < 1e-4
    assert tiles == [64]


@pytest.mark.parametrize(("side", "tile", "halo", "align"),
                         [(100, 64, 16, 4), (1001, 256, 16, 4), (6000, 1024, 16, 4), (33, 16, 4, 1), (64, 64, 16, 4)])
def test_tile_spans_partition_the_side_on_the_stride_grid(side: int, tile: int, halo: int, align: int) -> None:
    spans = tile_spans(side, tile, halo, align)
    assert spans[0].start == spans[0].keep_start == 0 and spans[-1].end == spans[-1].keep_end == side
    for span, after in zip(spans, spans[1:]):
        assert span.keep_end == after.keep_start  # kept parts partition the side
        assert span.keep_end <= span.end - (halo - align + 1) and after.keep_start >= after.start + halo - align
    for span in spans:
        assert span.start % align == 0 and span.keep_start % align == 0 and span.end - span.start < tile + align
    assert sum(span.end - span.start for span in spans) < side * 1.5 + 2 * tile  # little wasted overlap


def test_norm_swap_is_undone_even_on_error(stylizer: Stylizer) -> None:
    norms = [name for name, module in stylizer.model.named_modules() if isinstance(module, nn.InstanceNorm2d)]
    stats = {name: (torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)) for name in norms}
    with pytest.raises(RuntimeError), fixed_norm_statistics(stylizer.model, stats):
        assert all(isinstance(stylizer.model.get_submodule(name), FixedStatsNorm) for name in norms)
        raise RuntimeError
    assert [name for name, module in stylizer.model.named_modules() if isinstance(module, nn.InstanceNorm2d)] == norms


@pytest.mark.parametrize(("options", "flag"), [({"tile": 50}, "--tile"), ({"strength": 1.5}, "--strength"),
                                               ({"size": 0}, "--size"), ({"batch_size": 0}, "--batch-size")])
def test_impossible_options_are_one_line_errors(options: dict, flag: str) -> None:
    with pytest.raises(FastStyleError, match=flag) as info:
        Options(**options)
    assert "\n" not in str(info.value)


# --- colour and strength ----------------------------------------------------------------------

def chroma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("YCbCr"), dtype=np.float64)[..., 1:]


def test_preserve_color_keeps_the_photos_chroma(stylizer: Stylizer) -> None:
    image = photo(64, 48)
    kept = stylizer.stylize(image, preserve_color=True)
    plain = stylizer.stylize(image)
    assert np.abs(chroma(kept) - chroma(image)).mean() < 1.5  # rounding and a little clamping
    assert np.abs(chroma(plain) - chroma(image)).mean() > 5  # the plain stylization does change colours
    luma = lambda im: np.asarray(im.convert("L"), dtype=np.float64)  # noqa: E731
    assert np.abs(luma(kept) - luma(plain)).mean() < 2.5  # luminance still comes from the style


def test_preserve_color_is_luminance_transfer() -> None:
    generator = torch.Generator().manual_seed(0)
    # ranges where photo + (Y_styled - Y_photo) stays inside [0, 1], so no clamping is involved
    photo_t = 0.35 + 0.3 * torch.rand(2, 3, 5, 7, generator=generator)
    styled = 0.4 + 0.2 * torch.rand(2, 3, 5, 7, generator=generator)
    result = preserve_color(styled, photo_t)
    assert torch.allclose(luminance(result), luminance(styled), atol=1e-6)
    assert torch.allclose(result - luminance(result), photo_t - luminance(photo_t), atol=1e-6)


def test_strength_zero_returns_the_photo_and_half_is_between(stylizer: Stylizer) -> None:
    image = photo(41, 27)
    assert np.array_equal(pixels(stylizer.stylize(image, strength=0.0)), pixels(image))
    full, half = pixels(stylizer.stylize(image)), pixels(stylizer.stylize(image, strength=0.5))
    assert np.abs(half - (full + pixels(image)) / 2).max() <= 1
    assert torch.equal(blend(torch.ones(1), torch.zeros(1), 0.25), torch.tensor([0.25]))


# --- real-world inputs ------------------------------------------------------------------------

def test_exif_rotation_is_honoured(stylizer: Stylizer, model_file: Path, tmp_path: Path) -> None:
    upright = photo(32, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored sideways
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif, quality=100, subsampling=0)
    assert stylize_cli("--model", model_file, tmp_path / "phone.jpg", "--output", tmp_path / "out.png") == 0
    result = Image.open(tmp_path / "out.png")
    assert result.size == (32, 48)
    with Image.open(tmp_path / "phone.jpg") as stored:  # Image.open itself does not rotate
        turned = Image.fromarray(np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270)))
    assert np.abs(pixels(turned) - pixels(upright)).mean() < 3  # the right way round (JPEG noise only)
    assert np.array_equal(pixels(result), pixels(stylizer.stylize(turned)))
    assert stylizer.stylize(Image.open(tmp_path / "phone.jpg")).size == (32, 48)  # the API too


def test_alpha_is_dropped_by_default_and_kept_on_request(model_file: Path, tmp_path: Path) -> None:
    rgba = photo(40, 30).convert("RGBA")
    alpha = Image.linear_gradient("L").resize((40, 30))
    rgba.putalpha(alpha)
    rgba.save(tmp_path / "logo.png")
    assert stylize_cli("--model", model_file, tmp_path / "logo.png", "--output", tmp_path / "flat.png") == 0
    assert stylize_cli("--model", model_file, tmp_path / "logo.png", "--output", tmp_path / "alpha.png",
                       "--keep-alpha") == 0
    assert Image.open(tmp_path / "flat.png").mode == "RGB"
    kept = Image.open(tmp_path / "alpha.png")
    assert kept.mode == "RGBA" and np.array_equal(pixels(kept.getchannel("A")), pixels(alpha))
    assert np.array_equal(pixels(kept.convert("RGB")), pixels(Image.open(tmp_path / "flat.png")))


@pytest.mark.parametrize("kind", ["greyscale", "cmyk", "16-bit"])
def test_greyscale_cmyk_and_16_bit_inputs(stylizer: Stylizer, model_file: Path, tmp_path: Path, kind: str) -> None:
    base = photo(36, 28)
    if kind == "greyscale":
        source, reference, tolerance = base.convert("L"), base.convert("L").convert("RGB"), 0
        source.save(tmp_path / "in.png")
    elif kind == "cmyk":
        base.convert("CMYK").save(tmp_path / "in.jpg", quality=100)
        reference, tolerance = Image.open(tmp_path / "in.jpg").convert("RGB"), 2
    else:  # 16-bit greyscale: 257 * v maps back to exactly v
        values = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(values.astype(np.uint16)).save(tmp_path / "in.png")
        reference, tolerance = base.convert("L").convert("RGB"), 0
    source_path = next(tmp_path.glob("in.*"))
    assert stylize_cli("--model", model_file, source_path, "--output", tmp_path / "out.png") == 0
    result = Image.open(tmp_path / "out.png")
    assert result.mode == "RGB" and result.size == (36, 28)
    assert np.abs(pixels(result) - pixels(stylizer.stylize(reference))).mean() <= tolerance


# --- files and folders ------------------------------------------------------------------------

@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "trip" / "day2").mkdir(parents=True)
    photo(40, 30, 1).save(folder / "a.png")
    photo(33, 21, 2).save(folder / "trip" / "b.jpg")
    photo(40, 30, 3).save(folder / "trip" / "day2" / "c.webp")
    return folder


def test_folder_keeps_names_and_sub_folders(model_file: Path, photos: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert stylize_cli("--model", model_file, photos, "--output", out) == 0
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == ["a.png", "trip/b.jpg", "trip/day2/c.webp"]
    assert Image.open(out / "trip" / "b.jpg").size == (33, 21)
    assert "stylized 3 images" in capsys.readouterr().out


def test_format_picks_the_extension(model_file: Path, photos: Path, tmp_path: Path) -> None:
    assert stylize_cli("--model", model_file, photos, "--output", tmp_path / "out", "--format", "png") == 0
    assert sorted(path.name for path in (tmp_path / "out").rglob("*.png")) == ["a.png", "b.png", "c.png"]


def test_bad_image_in_a_folder_is_skipped_counted_and_exit_1(model_file: Path, photos: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    (photos / "broken.png").write_bytes(b"not a png")
    assert stylize_cli("--model", model_file, photos, "--output", tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "stylized 3 images" in captured.out and "skipped 1 (1 unreadable)" in captured.out
    assert "broken.png" in captured.err and "not an image" in captured.err
    assert not (tmp_path / "out" / "broken.png").exists()


def test_existing_outputs_are_kept_unless_overwrite(model_file: Path, photos: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """A kept output is counted, not failed (exit 0); --overwrite replaces it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"precious")
    assert stylize_cli("--model", model_file, photos, "--output", out) == 0
    assert (out / "a.png").read_bytes() == b"precious"
    captured = capsys.readouterr()
    assert "stylized 2 images" in captured.out and "; 1 already exists (use --overwrite)" in captured.out
    assert "skipped" not in captured.out + captured.err
    assert stylize_cli("--model", model_file, photos, "--output", out, "--overwrite") == 0
    assert Image.open(out / "a.png").size == (40, 30)
    assert "already exist" not in capsys.readouterr().out


def test_without_output_results_go_beside_the_photo_or_into_a_named_folder(
        model_file: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fast-style stylize --model NAME PHOTO` works with no --output, and never overwrites the photo."""
    monkeypatch.chdir(tmp_path)
    name = model_file.parent.name  # a trained model is named after its run folder
    photo = photos / "trip" / "b.jpg"
    before = photo.read_bytes()
    assert stylize_cli("--model", model_file, photo) == 0
    assert Image.open(photos / "trip" / f"b_{name}.jpg").size == (33, 21) and photo.read_bytes() == before
    assert stylize_cli("--model", model_file, photo, "--format", "png") == 0
    assert (photos / "trip" / f"b_{name}.png").is_file()
    assert stylize_cli("--model", model_file, photos) == 0
    assert (tmp_path / f"stylized_{name}" / "trip" / "day2" / "c.webp").is_file()


def test_stylizing_a_folder_twice_exits_0_and_only_real_failures_exit_1(
        make_tiny_model, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The second run over the same folder keeps every output and succeeds; an unreadable photo, or an
    output that cannot be written, is still a failure (exit 1) beside the kept ones."""
    model = save_model(make_tiny_model(), tmp_path / "tiny.safetensors", {"style": "test"})
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    for seed, name in enumerate(["a.png", "b.jpg", "c.png"]):
        photo(20, 16, seed).save(folder / name)

    assert stylize_cli("--model", model, folder, "--output", out) == 0
    first = {path.name: path.read_bytes() for path in out.iterdir()}
    assert sorted(first) == ["a.png", "b.jpg", "c.png"] and "stylized 3 images" in capsys.readouterr().out

    assert stylize_cli("--model", model, folder, "--output", out) == 0
    captured = capsys.readouterr()
    assert "stylized 0 images" in captured.out and "; 3 already exist (use --overwrite)" in captured.out
    assert "skipped" not in captured.out + captured.err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == first

    (folder / "broken.png").write_bytes(b"not a png")
    assert stylize_cli("--model", model, folder, "--output", out) == 1
    captured = capsys.readouterr()
    assert "skipped 1 (1 unreadable)" in captured.out and "3 already exist (use --overwrite)" in captured.out
    assert "broken.png" in captured.err

    (folder / "broken.png").unlink()
    (folder / "new").mkdir()
    photo(20, 16, 9).save(folder / "new" / "d.png")
    (out / "new").write_bytes(b"a file where the sub-folder must go")
    assert stylize_cli("--model", model, folder, "--output", out) == 1
    captured = capsys.readouterr()
    assert "skipped 1 (1 not written)" in captured.out and "3 already exist (use --overwrite)" in captured.out


def test_batch_size_writes_the_same_files(model_file: Path, tmp_path: Path, monkeypatch) -> None:
    """Same-sized photos really form batches (counted), and batching changes no output pixel."""
    import fast_style.stylize_files as module

    folder = tmp_path / "same_size"
    folder.mkdir()
    for seed in range(5):
        photo(40, 28, seed).save(folder / f"p{seed}.png")
    photo(24, 24).save(folder / "odd_one.png")  # a different size ends a batch
    batch_sizes: list[int] = []
    real = module.stylize_batch

    def counting(stylizer, photos, options):
        batch_sizes.append(len(photos))
        return real(stylizer, photos, options)

    monkeypatch.setattr(module, "stylize_batch", counting)
    assert stylize_cli("--model", model_file, folder, "--output", tmp_path / "one") == 0
    assert batch_sizes == [1] * 6
    batch_sizes.clear()
    assert stylize_cli("--model", model_file, folder, "--output", tmp_path / "many", "--batch-size", "4") == 0
    assert max(batch_sizes) == 4 and sum(batch_sizes) == 6, batch_sizes
    written = sorted((tmp_path / "one").rglob("*.png"))
    assert len(written) == 6
    for path in written:
        assert np.array_equal(pixels(path), pixels(tmp_path / "many" / path.relative_to(tmp_path / "one")))


def test_files_and_globs_keep_their_names(model_file: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert stylize_cli("--model", model_file, photos / "a.png", str(photos / "trip" / "*.jpg"), "--output", out) == 0
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "b.jpg"]


@pytest.mark.parametrize("case", ["same name twice", "output replaces input", "single file exists",
                                  "bad single image", "pickle model", "truncated model"])
def test_usage_errors_are_one_line_and_exit_2(model_file: Path, photos: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture, case: str) -> None:
    model, inputs, output = model_file, [photos / "a.png"], tmp_path / "out.png"
    if case == "same name twice":
        photo(8, 8).save(photos / "trip" / "a.png")
        inputs, output = [photos / "a.png", photos / "trip" / "a.png"], tmp_path / "out"
    elif case == "output replaces input":
        inputs, output = [photos], photos
    elif case == "single file exists":
        output.write_bytes(b"keep me")
    elif case == "bad single image":
        (photos / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
        inputs = [photos / "bad.jpg"]
    elif case == "pickle model":
        model = tmp_path / "model.pt"
        torch.save({"weights": torch.zeros(1)}, model)
    else:
        model = tmp_path / "model.safetensors"
        model.write_bytes(model_file.read_bytes()[:1000])
    assert stylize_cli("--model", model, *inputs, "--output", output) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("fast-style stylize: error:")
    assert case != "single file exists" or output.read_bytes() == b"keep me"


def test_interrupted_run_leaves_only_complete_files(model_file: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    for index in range(5):
        photo(40, 30, index).save(folder / f"{index}.png")
    forward, calls = TransformerNet.forward, []

    def interrupt_third(self: TransformerNet, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(TransformerNet, "forward", interrupt_third)
    assert stylize_cli("--model", model_file, folder, "--output", out) == 130
    assert sorted(path.name for path in out.iterdir()) == ["0.png", "1.png"]  # finished ones only
    for path in out.iterdir():
        Image.open(path).load()  # complete, decodable files
    assert leftovers(out) == []


def test_interrupted_write_leaves_no_partial_file(model_file: Path, photos: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    save = Image.Image.save

    def crash_midway(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        buffer = io.BytesIO()
        save(self, buffer, *args, **kwargs)
        Path(fp).write_bytes(buffer.getvalue()[:20])  # half a file...
        raise KeyboardInterrupt  # ...then Ctrl-C

    monkeypatch.setattr(Image.Image, "save", crash_midway)
    out = tmp_path / "out"
    assert stylize_cli("--model", model_file, photos, "--output", out) == 130
    assert [path for path in out.rglob("*") if path.is_file()] == []
