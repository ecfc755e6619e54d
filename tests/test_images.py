"""Tests for fast_style.images: odd and broken real-world files, atomic writes, input discovery."""

from __future__ import annotations

import errno
import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.images import (
    IMAGE_SUFFIXES,
    ImageError,
    atomic_output,
    atomic_write_bytes,
    find_images,
    image_to_tensor,
    load_image,
    open_image,
    resize_longer_side,
    save_image,
    tensor_to_image,
)

KODAK = Path("/work/shared/data/eval/kodak24/kodim01.png")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions")


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Random pixels: compress badly, so truncating the file really cuts image data."""
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge RGB canvas."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def refused(path: Path, match: str, **kwargs: object) -> str:
    """open_image must fail with a one-line ImageError naming the file."""
    with pytest.raises(ImageError, match=match) as info:
        open_image(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(info.value, FastStyleError)
    return message


# --- refused inputs ---------------------------------------------------------------------------

def test_missing_file_and_directory(tmp_path: Path) -> None:
    refused(tmp_path / "nope.jpg", "file not found")
    refused(tmp_path, "is a folder")


def test_empty_file(tmp_path: Path) -> None:
    refused(write(tmp_path / "empty.png", b""), r"empty file \(0 bytes\)")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    message = refused(write(tmp_path / "photo.jpg", b"hello, not a picture\n" * 10), "not an image")
    assert "pass a JPEG, PNG" in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(tmp_path: Path, fmt: str) -> None:
    data = encode(noise(64, 64), fmt)
    path = write(tmp_path / f"cut.{fmt.lower()}", data[: len(data) // 2])
    refused(path, "truncated or corrupt")


def test_decompression_bomb_refused_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "bomb.png", bomb_png(100_000, 100_000))
    start = time.perf_counter()
    refused(path, "decompression bomb")
    # Our own header check must hold even if someone disabled Pillow's global guard.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    message = refused(path, "100000x100000")
    assert time.perf_counter() - start < 0.5
    assert "downscale" in message


def test_max_pixels_is_honoured(tmp_path: Path) -> None:
    path = write(tmp_path / "big.png", encode(noise(200, 100), "PNG"))
    refused(path, "over the 10,000-pixel limit", max_pixels=10_000)
    assert open_image(path, max_pixels=20_000).size == (200, 100)


@needs_non_root
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.png", encode(noise(4, 4), "PNG"))
    path.chmod(0)
    try:
        refused(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_permission_error_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same path as the chmod test, but runnable as root."""
    path = write(tmp_path / "secret.png", encode(noise(4, 4), "PNG"))

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", deny)
    refused(path, "permission denied")


# --- odd but valid inputs -----------------------------------------------------------------------

def test_jpeg_with_png_suffix(tmp_path: Path) -> None:
    image = open_image(write(tmp_path / "really_a.png", encode(noise(16, 8), "JPEG")))
    assert image.mode == "RGB" and image.size == (16, 8)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = write(tmp_path / "cmyk.jpg", encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    image = open_image(path)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((4, 4))
    assert red > 200 and green < 60 and blue < 60  # 100 % magenta + yellow = red


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[65535, 32768, 0]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    image = open_image(path)
    assert image.mode == "RGB"
    assert [image.getpixel((x, 0)) for x in range(3)] == [(255,) * 3, (128,) * 3, (0,) * 3]


def test_big_endian_16bit_and_float_modes() -> None:
    big_endian = Image.frombytes("I;16B", (2, 1), np.array([65535, 257], ">u2").tobytes())
    assert image_to_tensor(big_endian)[:, 0, :].mul(255).round().tolist() == [[255.0, 1.0]] * 3
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert floats.mode == "F"
    assert image_to_tensor(floats)[0, 0].mul(255).round().tolist() == [0.0, 128.0, 255.0]


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    path = tmp_path / "pal.png"
    image.save(path, transparency=0)
    with_alpha = open_image(path, keep_alpha=True)
    assert with_alpha.mode == "RGBA"
    assert with_alpha.getpixel((0, 0))[3] == 0 and with_alpha.getpixel((1, 1)) == (255, 0, 0, 255)
    assert open_image(path).mode == "RGB"


def test_rgba_greyscale_and_bilevel(tmp_path: Path) -> None:
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (3, 3), (10, 20, 30, 40)).save(rgba)
    assert open_image(rgba).getpixel((1, 1)) == (10, 20, 30)  # alpha dropped, colour untouched
    assert open_image(rgba, keep_alpha=True).getpixel((1, 1)) == (10, 20, 30, 40)
    assert load_image(rgba, keep_alpha=True).shape == (4, 3, 3)
    grey = tmp_path / "grey.png"
    Image.new("L", (3, 3), 77).save(grey)
    assert open_image(grey).getpixel((0, 0)) == (77, 77, 77)
    grey_alpha = tmp_path / "la.png"
    Image.new("LA", (3, 3), (77, 5)).save(grey_alpha)
    assert open_image(grey_alpha).mode == "RGB"
    assert open_image(grey_alpha, keep_alpha=True).getpixel((0, 0)) == (77, 77, 77, 5)
    bilevel = tmp_path / "bw.png"
    Image.new("1", (3, 3), 1).save(bilevel)
    assert open_image(bilevel).getpixel((2, 2)) == (255, 255, 255)


def test_exif_rotation(tmp_path: Path) -> None:
    stored = Image.new("RGB", (20, 10), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 4, 4))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=100)
    image = open_image(path)
    assert image.size == (10, 20)
    top_right, top_left = image.getpixel((8, 1)), image.getpixel((1, 1))
    assert top_right[0] > 200 and top_right[2] < 60
    assert top_left[2] > 200 and top_left[0] < 60


@pytest.mark.parametrize("size", [(1, 1), (3, 2000)])
def test_tiny_and_thin_images(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "odd.png"
    noise(*size).save(path)
    assert load_image(path).shape == (3, size[1], size[0])
    resized = load_image(path, size=100)
    assert max(resized.shape[1:]) == 100 and min(resized.shape[1:]) >= 1


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with pytest.warns(UserWarning, match="first frame") as record:
        image = open_image(path)
    assert str(path) in str(record[0].message)
    assert image.mode == "RGB" and image.getpixel((4, 4)) == (255, 0, 0)


def test_returned_image_is_detached_from_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.png", encode(noise(8, 8), "PNG"))
    image = open_image(path)
    path.unlink()
    assert image.getpixel((0, 0)) == noise(8, 8).getpixel((0, 0))


# --- conversions ----------------------------------------------------------------------------------

def test_tensor_to_image_clamps_rounds_and_accepts_batch() -> None:
    tensor = torch.tensor([-0.5, 1.5, 0.502, 0.0]).view(1, 1, 4).expand(3, 1, 4)
    image = tensor_to_image(tensor.unsqueeze(0))
    assert image.mode == "RGB" and [image.getpixel((x, 0))[0] for x in range(4)] == [0, 255, 128, 0]
    assert tensor_to_image(torch.rand(4, 2, 2)).mode == "RGBA"
    with pytest.raises(ValueError, match="shape"):
        tensor_to_image(torch.rand(2, 2, 2))


def test_resize_longer_side_keeps_aspect() -> None:
    assert resize_longer_side(Image.new("RGB", (768, 512)), 384).size == (384, 256)
    assert resize_longer_side(Image.new("RGB", (3, 2000)), 100).size == (1, 100)


@pytest.mark.skipif(not KODAK.exists(), reason="shared Kodak data not available")
def test_real_photo_round_trip(tmp_path: Path) -> None:
    tensor = load_image(KODAK)
    assert tensor.shape == (3, 512, 768) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert np.array_equal(np.array(tensor_to_image(tensor)), np.array(Image.open(KODAK).convert("RGB")))
    out = save_image(tensor, tmp_path / "kodim01.png")
    assert torch.equal(load_image(out), tensor)


# --- saving -----------------------------------------------------------------------------------------

def test_save_formats_and_jpeg_drops_alpha(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (6, 4), (200, 100, 50, 128))
    for suffix in (".png", ".jpg", ".JPEG", ".webp", ".bmp", ".tif", ".tiff"):
        out = save_image(rgba, tmp_path / f"out{suffix}")
        assert out.stat().st_size > 0 and open_image(out).size == (6, 4)
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"
    assert Image.open(tmp_path / "out.png").mode == "RGBA"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_save_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"unknown image suffix '\.gifv'"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "out.gifv")
    assert list(tmp_path.iterdir()) == []


def test_save_to_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist; create it or choose another --output"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "missing" / "out.png")


@needs_non_root
def test_save_to_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageError, match="not writable") as info:
            save_image(Image.new("RGB", (2, 2)), folder / "out.png")
        assert str(folder / "out.png") in str(info.value)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_failed_save_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    save_image(Image.new("RGB", (2, 2), (1, 2, 3)), target)
    before = target.read_bytes()

    def half_write(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_write)
    with pytest.raises(ImageError, match="disk is full") as info:
        save_image(Image.new("RGB", (2, 2)), target)
    assert str(target) in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"] and target.read_bytes() == before
    with pytest.raises(ImageError):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "new.png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_overwrite_false(tmp_path: Path) -> None:
    target = save_image(Image.new("RGB", (2, 2)), tmp_path / "out.png")
    with pytest.raises(ImageError, match="--overwrite"):
        save_image(Image.new("RGB", (3, 3)), target, overwrite=False)
    assert Image.open(target).size == (2, 2)
    assert Image.open(save_image(Image.new("RGB", (3, 3)), target)).size == (3, 3)


def test_atomic_output_general_use(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "report.json", b'{"ok": true}')
    assert target.read_bytes() == b'{"ok": true}'
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "report.json") as temp:
            assert temp.parent == tmp_path and temp.name.startswith(".") and temp.name.endswith(".tmp")
            temp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert target.read_bytes() == b'{"ok": true}'


# --- finding inputs ---------------------------------------------------------------------------------

def test_find_images_folder_glob_and_dedup(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "sub/c.webp", "sub/deep/d.tiff", ".hidden.png",
                 ".git/e.png", "notes.txt", "sub/f.jpeg.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    expected = [tmp_path / n for n in ("a.JPG", "b.png", "sub/c.webp", "sub/deep/d.tiff")]
    assert find_images([tmp_path]) == expected
    odd = tmp_path / "notes.txt"
    assert find_images([odd, tmp_path / "b.png", tmp_path]) == [odd, tmp_path / "b.png", *expected[:1],
                                                                *expected[2:]]
    assert find_images([str(tmp_path / "**" / "*.*")]) == expected
    assert ".gif" in IMAGE_SUFFIXES


def test_find_images_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(ImageError, match=r"no images found in .*empty \(looked for .*\.jpg.*\.png"):
        find_images([empty])
    with pytest.raises(ImageError, match="missing_\\*.png: no such file or folder"):
        find_images([str(tmp_path / "missing_*.png")])
