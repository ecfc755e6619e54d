"""Tests for fast_style.checkpoint: model files round-trip, and bad files fail with one clear line.

A model file is the product users pass around; a damaged, foreign or malicious file must give
a CheckpointError naming the file, never a traceback, a pickle load, or a silently wrong model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import save_file

from fast_style.checkpoint import (
    FORMAT_VERSION,
    METADATA_KEY,
    MODEL_FORMAT,
    CheckpointError,
    read_model,
    save_model,
)
from fast_style.transformer import TransformerNet


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(2, 3, 21, 26, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def saved(tmp_path: Path, make_tiny_model: Callable[..., TransformerNet]) -> tuple[TransformerNet, Path]:
    """A tiny model saved as ``model.safetensors`` (+ ``model.json``) with some training metadata."""
    model = make_tiny_model(seed=7)
    return model, save_model(model, tmp_path / "model.safetensors", {"style": "starry_night.jpg", "steps": 12})


def checkpoint_error(path: Path) -> str:
    """The one-line CheckpointError that loading ``path`` gives; it must name the file."""
    with pytest.raises(CheckpointError) as error:
        read_model(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_round_trip_gives_identical_outputs(saved: tuple[TransformerNet, Path], image: torch.Tensor) -> None:
    """Save then load: the same network (architecture from the header), bit-identical outputs."""
    model, path = saved
    loaded, info = read_model(path)
    assert not loaded.training and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))
    assert info["style"] == "starry_night.jpg" and info["steps"] == 12
    assert info["model"] == {"architecture": "johnson2016", "width": 4, "residual_blocks": 1}


def test_model_can_be_named_by_its_folder_or_json(saved: tuple[TransformerNet, Path], image: torch.Tensor) -> None:
    """``stylize --model`` accepts the folder, the .safetensors or the .json beside it."""
    model, path = saved
    with torch.no_grad():
        expected = model(image)
        for name in (path.parent, path.with_suffix(".json")):
            assert torch.equal(read_model(name)[0](image), expected)


def test_safetensors_alone_is_enough(saved: tuple[TransformerNet, Path], image: torch.Tensor) -> None:
    """Without model.json the header still rebuilds the network (only the extra metadata is lost)."""
    model, path = saved
    path.with_suffix(".json").unlink()
    loaded, info = read_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(image), model(image))
    assert info["format"] == MODEL_FORMAT and "style" not in info


def test_fp16_file_is_smaller_and_close(tmp_path: Path, make_tiny_model: Callable[..., TransformerNet],
                                        image: torch.Tensor) -> None:
    """Half-precision weights halve the file and change outputs only slightly; they load as fp32."""
    model = make_tiny_model(seed=8)
    full = save_model(model, tmp_path / "full.safetensors", {})
    half = save_model(model, tmp_path / "half.safetensors", {}, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = read_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        error = (loaded(image) - model(image)).abs().max().item()
    assert 0 < error < 5e-3


def test_truncated_file(saved: tuple[TransformerNet, Path]) -> None:
    """A half-copied file is reported as damaged, with the advice to re-copy it."""
    _, path = saved
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated" in checkpoint_error(path)


def test_pickle_is_never_loaded(tmp_path: Path, saved: tuple[TransformerNet, Path]) -> None:
    """A torch.save file, even renamed to .safetensors, is refused without unpickling it."""
    model, _ = saved
    for name in ("model.pt", "renamed.safetensors"):
        path = tmp_path / name
        torch.save(model.state_dict(), path)
        assert "pickle" in checkpoint_error(path)


def test_safetensors_of_other_tensors(tmp_path: Path) -> None:
    """Some other program's safetensors file (no fast_style header) is named as not a fast_style model."""
    path = tmp_path / "other.safetensors"
    save_file({"embedding": torch.zeros(3, 4)}, str(path))
    assert "not a fast_style model" in checkpoint_error(path)


def write_with_header(path: Path, model: TransformerNet, model_header: dict, version: int = FORMAT_VERSION) -> Path:
    """A model's real tensors under a hand-written header."""
    header = {"format": MODEL_FORMAT, "format_version": version, "model": model_header}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={METADATA_KEY: json.dumps(header)})
    return path


def test_header_for_another_architecture(tmp_path: Path, make_tiny_model: Callable[..., TransformerNet]) -> None:
    """A header naming an unknown network is refused, naming it and the known ones, before any weights are matched."""
    path = write_with_header(tmp_path / "m.safetensors", make_tiny_model(),
                             {"architecture": "pix2pix", "width": 4, "residual_blocks": 1})
    message = checkpoint_error(path)
    assert "architecture 'pix2pix' is not known" in message and "(known: adain, johnson2016, johnson2016_multi, wct)" in message


def test_header_that_does_not_fit_the_weights(tmp_path: Path, make_tiny_model: Callable[..., TransformerNet]) -> None:
    """A header describing another size of network names the first tensor that does not fit."""
    path = write_with_header(tmp_path / "m.safetensors", make_tiny_model(),
                             {"architecture": "johnson2016", "width": 8, "residual_blocks": 1})
    assert "first mismatch" in checkpoint_error(path)


def test_unknown_model_setting_and_newer_format(tmp_path: Path, make_tiny_model: Callable[..., TransformerNet]) -> None:
    """Files from a newer fast_style (new settings or format version) ask for an upgrade."""
    model = make_tiny_model()
    unknown = write_with_header(tmp_path / "a.safetensors", model,
                                {"architecture": "johnson2016", "width": 4, "residual_blocks": 1, "attention": True})
    newer = write_with_header(tmp_path / "b.safetensors", model,
                              {"architecture": "johnson2016", "width": 4, "residual_blocks": 1}, FORMAT_VERSION + 1)
    assert "upgrade fast_style" in checkpoint_error(unknown)
    assert "upgrade fast_style" in checkpoint_error(newer)


def test_missing_file(tmp_path: Path) -> None:
    """A wrong path says there is no such file."""
    assert "no such file" in checkpoint_error(tmp_path / "model.safetensors")
