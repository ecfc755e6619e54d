"""Training photos: COCO (through pycocotools) or a plain folder, in a resumable order.

The order of images is a pure function of (seed, step): step ``s`` trains on positions
``[s*B, (s+1)*B)`` of a stream of per-epoch permutations, and each image's random crop is
seeded by its position. So a run resumed at step ``s`` sees exactly the batches an
uninterrupted run would, and N DDP processes, each taking a slice of every global batch,
see the same images as one process.

Real data is messy: greyscale, CMYK, palette and alpha images are converted to RGB, and a
corrupt file is replaced by the next readable one, reported by name and counted, instead of
killing a run.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from fast_style.config import nested, non_negative
from fast_style.errors import FastStyleError
from fast_style.images import ImageError, find_images, image_to_tensor, open_image

MAX_REPLACEMENTS = 16  # consecutive unreadable files tolerated before the data itself is suspect


@dataclass
class CocoConfig:
    """A COCO image folder and the annotation file that lists its images."""

    root: str | None = None
    annotations: str | None = None


@dataclass
class DataConfig:
    """Where training photos come from, and how they are loaded."""

    folder: str | None = None  # a folder of photos (searched recursively)
    coco: CocoConfig = nested(CocoConfig)
    workers: int = non_negative(2)
    preload: bool = False  # decode every photo once into RAM (small datasets, fast GPUs)
    validation_folder: str | None = None  # held-out photos; None: hold out the last validation_count
    validation_count: int = non_negative(8)
    # 0: each photo resized so its shorter side is image_size (the whole photo). N (at least image_size):
    # resized so its shorter side is N, then a random image_size window of it, so 128 px steps (4x
    # cheaper than 256) see the strokes and textures at the photo's own scale, not a shrunken photo.
    crop_from: int = non_negative(0)


class DataError(FastStyleError):
    """Training data that cannot be used as configured."""

    def __init__(self, message: str):
        # Raised in a DataLoader worker, it is rebuilt in the main process from "Caught DataError
        # in DataLoader worker process N.\nOriginal Traceback ...": keep only the line users need.
        if message.startswith("Caught DataError") and "\n" in message:
            message = message.rstrip().rsplit("\n", 1)[-1].removeprefix(f"{__name__}.DataError: ")
        super().__init__(message)


def coco_image_paths(root: str | Path, annotations: str | Path) -> list[Path]:
    """Images listed by a COCO annotation file (not by globbing the folder), sorted by id."""
    from pycocotools.coco import COCO

    annotations, root = Path(annotations), Path(root)
    if not annotations.is_file():
        raise DataError(f"{annotations}: annotation file not found; set data.coco.annotations to e.g. "
                        "annotations/instances_train2014.json")
    if not root.is_dir():
        raise DataError(f"{root}: COCO image folder not found; set data.coco.root to the folder of images")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(annotations))
    except Exception as error:  # malformed files raise KeyError/TypeError/JSONDecodeError deep inside
        raise DataError(f"{annotations}: not a usable COCO annotation file ({error.__class__.__name__}: "
                        f"{str(error)[:60]}); use an instances_*.json or person_keypoints_*.json file") from None
    paths = [root / coco.imgs[i]["file_name"] for i in sorted(coco.getImgIds())]
    if not paths:
        raise DataError(f"{annotations}: lists no images; check data.coco.annotations")
    return paths


def training_paths(config: DataConfig) -> list[Path]:
    """All training photo paths from the configured source."""
    if config.coco.root or config.coco.annotations:
        if not (config.coco.root and config.coco.annotations):
            raise DataError("COCO needs both data.coco.root and data.coco.annotations")
        return coco_image_paths(config.coco.root, config.coco.annotations)
    if config.folder:
        return find_images([config.folder])
    raise DataError("no training photos: set data.folder=DIR or data.coco.root/data.coco.annotations")


def split_validation(paths: list[Path], config: DataConfig) -> tuple[list[Path], list[Path]]:
    """(training, validation) photos; held-out photos are never trained on."""
    if config.validation_folder:
        return paths, find_images([config.validation_folder])[: max(config.validation_count, 1)]
    count = min(config.validation_count, len(paths) - 1)
    return (paths[:-count], paths[-count:]) if count > 0 else (paths, [])


def resize_crop(path: Path, size: int, crop_seed: int | None) -> torch.Tensor:
    """Open as RGB, resize the shorter side to ``size``, crop a square (random if seeded)."""
    image = open_image(path)
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    from PIL import Image

    image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if crop_seed is None:
        left, top = (width - size) // 2, (height - size) // 2
    else:
        generator = torch.Generator().manual_seed(crop_seed)
        left = int(torch.randint(width - size + 1, (1,), generator=generator))
        top = int(torch.randint(height - size + 1, (1,), generator=generator))
    return image_to_tensor(image.crop((left, top, left + size, top + size)))


def window(photo: torch.Tensor, size: int, crop_seed: int) -> torch.Tensor:
    """A ``size`` x ``size`` window of ``photo`` (..., H, W) placed by ``crop_seed`` (the same seed, the same
    window, so a resumed run sees the crops an uninterrupted one would)."""
    height, width = photo.shape[-2:]
    generator = torch.Generator().manual_seed(crop_seed)
    top = int(torch.randint(height - size + 1, (1,), generator=generator))
    left = int(torch.randint(width - size + 1, (1,), generator=generator))
    return photo[..., top:top + size, left:left + size]


class PhotoDataset(Dataset):
    """Photos as (3, size, size) uint8 tensors; indexed by (position, crop seed) pairs.

    ``crop_from`` > 0: each photo is read at ``crop_from`` px (shorter side) and a random ``size``
    window of it is taken per use (preloaded photos are kept at ``crop_from`` and windowed per use).

    uint8 is exact for 8-bit photos and moves a quarter of the bytes to the GPU, where the
    trainer converts to float.

    An unreadable photo is replaced by the next readable one; the names of the files
    skipped come back with the sample so the trainer can report and count them.
    """

    def __init__(self, paths: list[Path], size: int, preload: bool = False, crop_from: int = 0):
        if crop_from and crop_from < size:
            raise DataError(f"data.crop_from={crop_from} is smaller than image_size={size}: set it to 0 (whole "
                            f"photos) or at least {size} (e.g. {2 * size}: {size} px windows of {2 * size} px photos)")
        self.paths, self.size, self.crop_from = paths, size, crop_from
        self.preloaded: torch.Tensor | None = None
        if preload:
            self.preloaded = torch.stack([self._load(i, None)[0] for i in range(len(paths))])

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int, crop_seed: int | None) -> tuple[torch.Tensor, list[str]]:
        skipped = []
        for attempt in range(MAX_REPLACEMENTS):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                photo = resize_crop(path, self.crop_from or self.size, crop_seed)
                return photo.mul(255).round().to(torch.uint8), skipped
            except ImageError as error:
                skipped.append(str(error))
        raise DataError(f"{MAX_REPLACEMENTS} unreadable photos in a row near {self.paths[index]}; "
                        "check the training data")

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
        index, crop_seed = key
        photo, skipped = (self.preloaded[index], []) if self.preloaded is not None else self._load(index, crop_seed)
        if self.crop_from:
            photo = window(photo, self.size, crop_seed).contiguous()
        return photo, skipped


def collate(samples: list[tuple[torch.Tensor, list[str]]]) -> tuple[torch.Tensor, list[str]]:
    """Stack photos; gather the names of skipped files."""
    return torch.stack([s[0] for s in samples]), [name for s in samples for name in s[1]]


class StepBatchSampler(Sampler):
    """Yields this rank's slice of the global batch for steps ``start..stop-1``.

    Global batch ``s`` is positions ``[s*B, (s+1)*B)`` of the concatenated per-epoch
    permutations (each seeded by ``seed + epoch``); rank ``r`` of ``world`` gets the r-th
    contiguous slice of it.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise DataError(f"batch_size={batch_size} must be divisible by the {world} processes")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _position(self, position: int) -> tuple[int, int]:
        epoch = position // self.size
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator)
        return int(self._order[position % self.size]), self.seed * 1_000_003 + position

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        local = self.batch_size // self.world
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.rank * local
            yield [self._position(first + i) for i in range(local)]
