"""Export a trained network to ONNX or TorchScript that accepts any batch, height and width.

Both formats are produced by tracing, which records Python arithmetic on sizes as constants: the
network's own pad-to-a-multiple-of-4 (a Python ``max``, an ``if`` and a mode chosen by comparing
sizes) would be frozen at the example's size. :class:`~fast_style.networks.johnson2016.ExportableNet`
therefore restates that padding with tensor operations on the input's shape, so the exported graph
pads, runs and crops correctly at every size, odd and tiny ones included. Every export is checked
against PyTorch at a size other than the traced one before it is renamed into place, so a wrong file
is never written. What is traced, with which inputs, is the network kind's
:class:`~fast_style.networks.ExportSpec` (adain models take the photo, the painting and alpha).

ONNX needs the optional extra: ``pip install 'fast_style[onnx]'`` (onnx + onnxruntime).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from fast_style.errors import FastStyleError
from fast_style.images import atomic_output
from fast_style.networks import ExportSpec
from fast_style.stylize import load_stylizer

FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}
TRACE_SHAPE = (1, 3, 64, 48)  # any shape works: sizes are not frozen into the graph
CHECK_SHAPES = ((1, 3, 37, 53), (2, 3, 13, 70))  # odd sizes, a batch of 2, and a side below MIN_SIDE
TOLERANCE = 1e-4
ONNX_EXTRA = "pip install 'fast_style[onnx]'"
Runner = Callable[..., torch.Tensor]  # an exported model, called with its ExportSpec's inputs


def export_model(model: str | Path, output: str | Path, fmt: str | None = None, *, opset: int = 17) -> float:
    """Write ``model`` as ONNX or TorchScript to ``output`` (format from ``fmt`` or the suffix).

    Returns the largest difference from PyTorch over :data:`CHECK_SHAPES`; raises FastStyleError
    (and writes nothing) if the export does not reproduce the network.
    """
    output = Path(output)
    fmt = check_output_format(output, fmt)
    if fmt == "onnx":
        check_opset(opset)
        require_onnx()
    stylizer = load_stylizer(model, device="cpu", precision="fp32")  # exported graphs are fp32
    spec = stylizer.kind.export_spec(stylizer.source)
    with atomic_output(output) as temp, quiet_tracing(), torch.no_grad():
        run = export_onnx(spec, temp, opset) if fmt == "onnx" else export_torchscript(spec, temp)
        difference = max(check(run, spec, shape) for shape in CHECK_SHAPES)
        if not difference <= TOLERANCE:  # NaN compares False: a non-finite difference fails too
            raise FastStyleError(f"{output}: the exported {fmt} model differs from PyTorch by {difference:.2g}; "
                                 "not written (please report this as a bug)")
    return difference


def check_output_format(output: Path, fmt: str | None) -> str:
    """The format to write, from ``fmt`` or the suffix; a suffix that names the other format is refused
    (a TorchScript file called .onnx would fail in whatever loads it later)."""
    named = next((name for name, suffix in FORMATS.items() if output.suffix.lower() == suffix), None)
    fmt = fmt or named
    if fmt not in FORMATS:
        raise FastStyleError(f"{output}: cannot tell the format from the suffix; pass --format onnx or torchscript")
    if named is not None and named != fmt:
        raise FastStyleError(f"{output}: the suffix says {named} but --format is {fmt}; name the file "
                             f"{output.with_suffix(FORMATS[fmt]).name} or change --format")
    return fmt


def opset_range() -> tuple[int, int]:
    """The ONNX opsets this torch's (TorchScript-based) exporter can write."""
    try:
        from torch.onnx import _constants

        return _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):
        return 7, 17


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write before any model is loaded (torch's own error is 200 lines)."""
    low, high = opset_range()
    if not low <= opset <= high:
        raise FastStyleError(f"--opset {opset}: this torch exports ONNX opsets {low} to {high}; the default 17 "
                             "runs in any recent onnxruntime")


def require_onnx() -> None:
    """One clear line, naming the install command, when the optional ONNX packages are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise FastStyleError(f"ONNX export needs the optional packages onnx and onnxruntime ({error.name} is "
                             f"missing); install them with: {ONNX_EXTRA}") from None


def export_onnx(spec: ExportSpec, path: Path, opset: int) -> Runner:
    """Trace to ONNX with dynamic batch/height/width; returns a runner for the written file."""
    import onnx
    import onnxruntime

    torch.onnx.export(spec.module, spec.example(TRACE_SHAPE, torch.Generator().manual_seed(0)), str(path),
                      dynamo=False, opset_version=opset, input_names=spec.input_names, output_names=["stylized"],
                      dynamic_axes=spec.dynamic_axes)
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda *inputs: torch.from_numpy(session.run(None, {name: x.numpy() for name, x in
                                                               zip(spec.input_names, inputs)})[0])


def export_torchscript(spec: ExportSpec, path: Path) -> Runner:
    """Trace to TorchScript and save; returns the reloaded module (what users will run)."""
    example = spec.example(TRACE_SHAPE, torch.Generator().manual_seed(0))
    torch.jit.trace(spec.module, example, check_trace=False).save(str(path))
    return torch.jit.load(str(path))


def check(run: Runner, spec: ExportSpec, shape: tuple[int, ...]) -> float:
    """Largest absolute difference between an exported model and PyTorch on random inputs."""
    inputs = spec.example(shape, torch.Generator().manual_seed(0))
    result, expected = run(*inputs), spec.reference(*inputs)
    if result.shape != expected.shape:
        return float("inf")
    return (result - expected).abs().max().item()


@contextmanager
def quiet_tracing() -> Iterator[None]:
    """Silence tracing's known-benign noise: deprecation notices for TorchScript and the legacy ONNX
    exporter, and TracerWarnings from InstanceNorm2d's channel-count check (a constant). Correctness
    is checked by :func:`check` instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        yield
