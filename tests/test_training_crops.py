"""data.crop_from: training steps on windows of photos at their own scale (cheaper steps, same strokes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fast_style.training.data import DataError, PhotoDataset, window


def gradient_photo(path: Path, size: int) -> Path:
    """A photo whose every pixel says where it is (red: column, green: row), so a window can be located."""
    ramp = torch.linspace(0, 255, size)
    pixels = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.zeros(size, size)], -1)
    Image.fromarray(pixels.round().to(torch.uint8).numpy()).save(path)
    return path


@pytest.mark.parametrize("preload", [False, True])
def test_windows_are_at_the_photos_own_scale_and_placed_by_the_seed(tmp_path, preload):
    photo = gradient_photo(tmp_path / "p.png", 64)
    whole = PhotoDataset([photo], 16, preload=preload)[(0, 5)][0]
    windows = PhotoDataset([photo], 16, preload=preload, crop_from=64)
    first, again, other = windows[(0, 5)][0], windows[(0, 5)][0], windows[(0, 9)][0]
    assert first.shape == whole.shape == (3, 16, 16)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # a window of the 64 px photo spans 16 of its columns (red climbs ~4 levels a pixel), the resized
    # whole photo spans all 64 (~17 levels a pixel)
    steps = first[0].float().diff(dim=1).mean()
    assert 3 < steps < 5 and whole[0].float().diff(dim=1).mean() > 15


def test_window_is_the_same_crop_for_the_same_seed():
    photo = torch.arange(3 * 10 * 12).reshape(3, 10, 12)
    assert torch.equal(window(photo, 4, 7), window(photo, 4, 7))
    assert window(photo, 4, 7).shape == (3, 4, 4)


def test_crop_from_below_the_image_size_is_one_line(tmp_path):
    photo = gradient_photo(tmp_path / "p.png", 32)
    with pytest.raises(DataError, match=r"data.crop_from=16 is smaller than image_size=32"):
        PhotoDataset([photo], 32, crop_from=16)
