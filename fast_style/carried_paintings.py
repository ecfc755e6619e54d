"""Paintings carried inside a model file, so the model's own loss can be rebuilt anywhere.

``model.json`` records a painting as a path on the machine that trained it, which other machines
(and every fresh clone) do not have; refining a picture (:mod:`fast_style.refine`) and ``compare``
need the painting itself. A model file may therefore carry each painting its loss scores against:
an 8-bit (3, H, W) copy at the size its style targets were taken (``style.size``, the longer side),
stored as a ``U8`` tensor ``painting.<name>`` beside the weights, and declared in the safetensors
header with the SHA-256 of its pixels, its source and its licence. Only paintings whose licence
allows a copy should be carried (every bundled one is public domain).

Pixels, not Gram matrices: 0.6 MB for a 512 px painting against 2.4 MB of fp32 Grams at five VGG19
layers, and they serve any loss (other layers, mean/std statistics) and the grids that show them.
Like the weights, a carried painting is untrusted input: its entry is checked from the header
(:func:`fast_style.model_file.check_paintings`) before it is read, and its pixels against their
checksum once read, so a painting altered after the model was written is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fast_style import model_file
from fast_style.images import open_image, resize_longer_side
from fast_style.model_file import METADATA_KEY, CheckpointError

PAINTING_PREFIX = "painting."  # tensor names of carried paintings: painting.<name>


@dataclass
class CarriedPainting:
    """One painting as a model file carries it: (3, H, W) uint8 pixels at the style size, and their record."""

    pixels: torch.Tensor
    source: str  # where it was read from (a record, like model.json's style.image)
    licence: str

    def record(self) -> dict[str, str]:
        """The header's entry for this painting (the pixels go in the tensor)."""
        return {"sha256": pixel_digest(self.pixels), "source": self.source, "licence": self.licence}

    def image(self) -> torch.Tensor:
        """(3, H, W) float in [0, 1], exactly what ``load_image(source, size=...)`` gives for the same file."""
        return self.pixels.float().div(255.0)


def tensor_name(name: str) -> str:
    return PAINTING_PREFIX + name


def pixel_digest(pixels: torch.Tensor) -> str:
    """SHA-256 of the pixels in (3, H, W) C order, the bytes the tensor holds in the file."""
    return hashlib.sha256(pixels.contiguous().numpy().tobytes()).hexdigest()


def read_pixels(path: str | Path, size: int) -> torch.Tensor:
    """A painting file resized to longer side ``size`` as (3, H, W) uint8: the same pixels ``load_image``
    turns into floats, so targets from a carried copy equal those from the file."""
    image = resize_longer_side(open_image(path), size)
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


def carry(path: str | Path, size: int, licence: str, source: str | None = None) -> CarriedPainting:
    """The painting at ``path`` as a model file will carry it; ``source`` is the path to record (default ``path``)."""
    return CarriedPainting(read_pixels(path, size), str(source if source is not None else path), licence)


def read_paintings(path: Path) -> dict[str, CarriedPainting]:
    """Every painting ``path`` (a model.safetensors) carries, by name, each checked against its checksum;
    empty for a model that carries none (written before models carried paintings)."""
    from safetensors import safe_open

    header, entries = model_file.read_header(path)
    try:
        info = json.loads(header[METADATA_KEY])
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: not a fast_style model (no '{METADATA_KEY}' header)") from None
    records = model_file.check_paintings(path, info, entries, PAINTING_PREFIX)
    if not records:
        return {}
    paintings = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            for name, record in records.items():
                paintings[name] = CarriedPainting(handle.get_tensor(tensor_name(name)), record["source"],
                                                  record["licence"])
    except Exception as error:  # safetensors' own error types for damaged data
        raise CheckpointError(f"{path}: a carried painting is unreadable ({str(error)[:80]}); the file is "
                              "damaged: re-copy or re-download it") from None
    for name, painting in paintings.items():
        if pixel_digest(painting.pixels) != records[name]["sha256"]:
            raise CheckpointError(f"{path}: the carried painting '{name}' does not match its checksum (its pixels "
                                  "were altered after the model was written); re-download the model")
    return paintings
