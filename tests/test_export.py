"""Tests for `fast-style export`: ONNX and TorchScript files that run at any size, checked against PyTorch."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fast_style import cli
from fast_style.checkpoint import save_model
from fast_style.networks.johnson2016 import ExportableNet
from fast_style.transformer import TransformerNet

ODD_SHAPES = [(1, 3, 37, 53), (2, 3, 61, 29)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def network(strong_network: TransformerNet) -> TransformerNet:
    return strong_network


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, network: TransformerNet) -> Path:
    return save_model(network, tmp_path_factory.mktemp("model") / "model.safetensors", {"style": "test"})


def export_cli(*args: object) -> int:
    return cli.main(["export", *map(str, args)])


def random_batch(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (1, 3, 13, 70), (1, 3, 5, 3), (1, 3, 1, 1), (2, 3, 64, 48)])
def test_exportable_padding_equals_the_network(network: TransformerNet, shape: tuple[int, ...]) -> None:
    """Odd sizes, a side under 16 (replicate padding) and tiny images: same result as TransformerNet."""
    x = random_batch(shape)
    with torch.no_grad():
        assert torch.allclose(ExportableNet(network)(x), network(x), atol=1e-6)


def test_onnx_runs_at_any_size_in_onnxruntime(model_file: Path, network: TransformerNet, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    output = tmp_path / "style.onnx"
    assert export_cli("--model", model_file, "--format", "onnx", "--output", output) == 0
    assert "matches PyTorch" in capsys.readouterr().out
    graph = onnx.load(str(output)).graph
    dims = [[dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
            for value in (graph.input[0], graph.output[0])]
    assert dims == [["batch", 3, "height", "width"]] * 2  # dynamic batch, height and width
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for shape in ODD_SHAPES:
        x = random_batch(shape)
        result = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            expected = network(x).numpy()
        assert result.shape == shape and np.abs(result - expected).max() < 1e-4


def test_torchscript_round_trips_at_any_size(model_file: Path, network: TransformerNet, tmp_path: Path) -> None:
    output = tmp_path / "style.pt"
    assert export_cli("--model", model_file, "--output", output) == 0  # format from the suffix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # newer torch deprecates torch.jit (still works)
        loaded = torch.jit.load(str(output))
    for shape in ODD_SHAPES:
        x = random_batch(shape)
        with torch.no_grad():
            assert torch.allclose(loaded(x), network(x), atol=1e-5)


def test_missing_onnx_extra_names_the_install_command(model_file: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert export_cli("--model", model_file, "--format", "onnx", "--output", tmp_path / "style.onnx") == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "pip install 'fast_style[onnx]'" in error
    assert not (tmp_path / "style.onnx").exists()


@pytest.mark.parametrize("case", ["unknown suffix", "pickle model"])
def test_export_errors_are_one_line_and_write_nothing(model_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture, case: str) -> None:
    model, output = model_file, tmp_path / "style.bin"
    if case == "pickle model":
        model, output = tmp_path / "model.pt", tmp_path / "style.onnx"
        torch.save({"weights": torch.zeros(1)}, model)
    assert export_cli("--model", model, "--output", output) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and str(model if case == "pickle model" else output) in error
    assert list(tmp_path.iterdir()) == ([model] if case == "pickle model" else [])


def test_without_output_the_export_is_named_after_the_model(model_file: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert export_cli("--model", model_file, "--format", "torchscript") == 0
    assert (tmp_path / f"{model_file.parent.name}.pt").is_file()
