"""Every image entering or leaving fast_style passes through here.

Inputs from the real world (odd modes, rotated phone photos, truncated downloads, decompression
bombs) either load as a clean RGB/RGBA image or fail with one :class:`ImageError` line that names
the file and the fix. Outputs are written atomically, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import errno
import glob
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fast_style.errors import FastStyleError
from fast_style.safety import kind_of, refuse_non_regular, remove_stale_temps, temp_name

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
DEFAULT_MAX_PIXELS: int = 178_956_970  # same as Pillow's hard limit, but checked by us
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
_ACCEPTED = "pass a JPEG, PNG, WebP, BMP or TIFF"
# What open_image() hands to Pillow: the formats above and GIF (first frame); camera JPEGs with extra
# views (MPO) come through the JPEG decoder. Pillow's other decoders (EPS via Ghostscript...) stay unused.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
# The largest side each encoder can write (libwebp: 16383; libjpeg: 65500; GIF: 16-bit sizes).
MAX_SIDE_BY_SUFFIX = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500, ".gif": 65535}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class ImageError(FastStyleError):
    """An image could not be read or written; the message names the file and the fix."""


def _reason(error: BaseException) -> str:
    """Squash an exception into one line so messages stay single-line."""
    return " ".join(str(error).split()).rstrip(".") or type(error).__name__


def open_image(path: str | Path, *, keep_alpha: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open any supported file as a fully loaded, upright RGB (or RGBA) image, or raise ImageError."""
    path = Path(path)
    try:
        kind = kind_of(path)  # a FIFO would block the read, a device never end: only regular files are opened
        if kind is not None:
            raise ImageError(f"{path}: is {kind}, not an image; pass an image file")
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes); re-export or re-download it")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Only the formats the README lists: a PostScript file named .jpg must never reach Ghostscript.
            with Image.open(path, formats=OPEN_FORMATS) as im:  # lazy: only the header has been read
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{path}: declares {width}x{height} = {width * height:,} pixels, over the "
                        f"{max_pixels:,}-pixel limit (possible decompression bomb); downscale it first")
                # MPO (camera JPEGs) store extra views, not animation frames.
                animated = getattr(im, "is_animated", False) and im.format != "MPO"
                im.seek(0)
                im.load()  # raises on truncation (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
                image = _to_rgb(ImageOps.exif_transpose(im), keep_alpha)
        _rewarn(path, caught)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found; check the path") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied; make the file readable (chmod +r)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (cannot identify image file); {_ACCEPTED}") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: too large to decode safely ({_reason(error)}); "
                         "downscale it first") from None
    except _DECODE_ERRORS as error:
        raise ImageError(f"{path}: cannot decode image data ({_reason(error)}); the file is truncated "
                         f"or corrupt, re-export or re-download it") from None
    if animated:
        warnings.warn(f"{path}: animated image, using the first frame only", stacklevel=2)
    return image


def _rewarn(path: Path, caught: list[warnings.WarningMessage]) -> None:
    """Repeat Pillow's warnings (corrupt EXIF, odd TIFF tags...) with the file they are about; our own
    pixel limit replaces its decompression-bomb warning."""
    for warning in caught:
        if not issubclass(warning.category, Image.DecompressionBombWarning):
            warnings.warn(f"{path}: {_reason(warning.message)}", warning.category, stacklevel=3)


def _to_rgb(image: Image.Image, keep_alpha: bool) -> Image.Image:
    """Normalise every PIL mode to RGB/RGBA so the rest of fast_style sees one layout."""
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_depth_to_uint8(np.array(image)))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    image = image.convert("RGBA" if has_alpha else "RGB")
    return image if keep_alpha or not has_alpha else image.convert("RGB")


def _depth_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit and float pixels to 8 bits (PIL's convert would clip them at 255)."""
    floats = np.nan_to_num(values.astype(np.float64))
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        peak = 65535.0  # I;16 files: the full 16-bit range, however dark the picture
    elif np.issubdtype(values.dtype, np.floating) and floats.max() <= 1.0:
        peak = 1.0  # float images in [0,1]
    else:
        peak = 255.0 if floats.max() <= 255 else 65535.0  # 32-bit I: guess 8- or 16-bit content
    return np.clip(np.rint(floats * (255.0 / peak)), 0, 255).astype(np.uint8)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """(C,H,W) float32 in [0,1], the layout every network in fast_style consumes."""
    if image.mode not in ("RGB", "RGBA"):
        image = _to_rgb(image, keep_alpha=True)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Turn a network output back into an 8-bit image, clamping overshoot and rounding to nearest."""
    if tensor.dim() == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (3, 4):
        raise ValueError(f"expected a (3|4,H,W) or (1,3|4,H,W) tensor, got shape {tuple(tensor.shape)}")
    pixels = torch.nan_to_num(tensor.detach().float().cpu()).clamp(0.0, 1.0).mul(255.0).round()
    return Image.fromarray(pixels.to(torch.uint8).permute(1, 2, 0).contiguous().numpy())


def resize_longer_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side equals ``size`` keeping the aspect ratio (and no side below 1)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    width, height = image.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size[0] * new_size[1] > DEFAULT_MAX_PIXELS:
        raise ImageError(f"size {size}: would make a {new_size[0]}x{new_size[1]} image, "
                         f"{new_size[0] * new_size[1]:,} pixels, over the {DEFAULT_MAX_PIXELS:,}-pixel limit; "
                         "choose a smaller size")
    return image.resize(new_size, Image.Resampling.LANCZOS)


def check_output_size(path: str | Path, width: int, height: int) -> None:
    """Refuse, before any work, an image larger than ``path``'s format can hold (WebP 16383 px a side,
    JPEG 65500), which the encoder would only report after the network has run."""
    check_longer_side(path, max(width, height), f"a {width}x{height} image")


def check_longer_side(path: str | Path, side: int, what: str | None = None) -> None:
    """Refuse an output whose longer side ``side`` exceeds what ``path``'s format can hold."""
    path = Path(path)
    limit = MAX_SIDE_BY_SUFFIX.get(path.suffix.lower())
    if limit is not None and side > limit:
        raise ImageError(f"{path}: {what or f'an image {side} px long'} does not fit in {path.suffix} (at most "
                         f"{limit} px a side); use a smaller size or write .png or .tiff")


def load_image(path: str | Path, *, size: int | None = None, keep_alpha: bool = False) -> torch.Tensor:
    """Open, optionally resize, and convert a file to a (C,H,W) tensor in one call."""
    image = open_image(path, keep_alpha=keep_alpha)
    if size is not None:
        image = resize_longer_side(image, size)
    return image_to_tensor(image)


def _write_error(path: Path, error: OSError) -> ImageError:
    """Explain a failed write in terms of what the user can change."""
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "the folder is not writable; fix its permissions or choose another --output"
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "the disk is full; free some space or choose another --output"
    else:
        fix = "choose another --output"
    return ImageError(f"{path}: cannot write ({_reason(error)}); {fix}")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync and rename over it, on failure delete it.

    Readers never see a partial file. The temp name ends in '.tmp', so writers that guess the
    format from the suffix must be told the format explicitly. OSErrors become ImageError.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ImageError(f"{path}: folder {folder} does not exist; create it or choose another --output")
    refuse_non_regular(path)
    remove_stale_temps(folder)
    temp = temp_name(path)
    try:
        # O_EXCL: never clobber; mode 0o666 lets the umask decide, unlike mkstemp's 0o600.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        yield temp
        fd = os.open(temp, os.O_RDWR)
        try:
            os.fsync(fd)
            # Some writers (safetensors) recreate the file as 0o600: restore umask permissions.
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        refuse_non_regular(path)  # again: never rename over a FIFO or device created meanwhile
        os.replace(temp, path)
    except BaseException as error:
        temp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from error
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` all-or-nothing."""
    with atomic_output(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def save_image(image: Image.Image | torch.Tensor, path: str | Path, *, overwrite: bool = True,
               quality: int = 95) -> Path:
    """Save atomically in the format named by the suffix; JPEG silently drops alpha."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image suffix {path.suffix!r}; "
                         f"use {', '.join(sorted(SAVE_FORMATS))}")
    if not overwrite and path.exists():
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it")
    if isinstance(image, torch.Tensor):
        check_output_size(path, image.shape[-1], image.shape[-2])
        image = tensor_to_image(image)
    else:
        check_output_size(path, *image.size)
    if image.mode not in ("RGB", "RGBA"):
        image = _to_rgb(image, keep_alpha=True)
    if fmt == "JPEG" and image.mode == "RGBA":
        image = image.convert("RGB")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_output(path) as temp:
        image.save(temp, format=fmt, **options)
    return path


def find_images(inputs: Sequence[str | Path], exclude: Sequence[str | Path] = ()) -> list[Path]:
    """Expand files, folders (recursive) and glob patterns into a de-duplicated list of images.

    Folders and patterns never yield images under ``exclude`` (a run's own output folder, which may
    lie inside its input folder: re-running must not stylize its earlier results).
    """
    excluded = [Path(folder).resolve() for folder in exclude]
    found: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_file():
            paths = [path]
        elif path.is_dir():
            paths = _scan_folder(path, excluded)
            if not paths:
                raise ImageError(f"no images found in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        elif kind_of(path) is not None:  # a FIFO or a device: never read, and not a pattern either
            raise ImageError(f"{item}: is {kind_of(path)}, not an image; pass image files, folders or patterns")
        else:
            paths = sorted(Path(match) for match in glob.glob(str(item), recursive=True)
                           if Path(match).suffix.lower() in IMAGE_SUFFIXES and Path(match).is_file()
                           and not _under(Path(match), excluded))
            if not paths:
                raise ImageError(f"{item}: no such file or folder, and no images match it as a pattern; "
                                 "check the path")
        for found_path in paths:
            found.setdefault(found_path.resolve(), found_path)
    return list(found.values())


def _under(path: Path, folders: Sequence[Path]) -> bool:
    """Whether ``path`` lies in one of the (resolved) ``folders``."""
    resolved = path.resolve()
    return any(folder == resolved or folder in resolved.parents for folder in folders)


def _scan_folder(folder: Path, excluded: Sequence[Path] = ()) -> list[Path]:
    """Images under ``folder``, recursively, skipping hidden files and folders (.git, .cache...) and
    the ``excluded`` (resolved) folders."""
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")
                   and not (excluded and _under(Path(root) / name, excluded))]
        paths.extend(Path(root) / name for name in files
                     if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(path for path in paths if path.is_file())
