"""What ``fast-style bench`` runs: the stylize, train and optimize workloads and their variants.

Each workload runs, in one process, its *optimized* path (what the real command does by default on
CPU; the recommended settings on CUDA, see docs/performance.md) and its *baseline* (the plain fp32
eager maths of the same code), plus *variants* (precisions, layouts, torch.compile, CUDA graphs), so
that a single run on a new machine says which is fastest there. This module only says what to run
and at which sizes; the harness times it and the report turns the timings into JSON.

The error each path is compared on: the stylized images; for training, the first step's loss terms;
for optimisation, the final loss terms.

Sizes: the names (``stylize_512_b8`` ...) are the GPU targets; on CPU and with ``--quick`` smaller
images are used (``PLANS``), and every entry states its ``size`` and ``batch``. Each workload stops
adding rounds once its time budget (``BUDGETS``) is spent, so a full GPU run, compile time included,
takes a few minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fast_style.bench.fixtures import random_transformer, synthetic_photos, write_training_files
from fast_style.bench.harness import Candidate
from fast_style.bench.report import Workload
from fast_style.checkpoint import read_model, save_model
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.optimize import LOGIT_MARGIN, lbfgs, optimize_image, quantize
from fast_style.precision import auto_precision
from fast_style.stylize import load_stylizer
from fast_style.training.data import DataConfig
from fast_style.training.trainer import TrainConfig, Trainer
from fast_style.vgg import LossNetworkConfig

WORKLOADS = ("stylize_512_b8", "stylize_512_b1", "stylize_1024_b1", "train_256", "optimize_512")

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


def budget_for(workload: Workload, device: torch.device, quick: bool) -> float:
    """Seconds of timed rounds this workload may take."""
    return QUICK_BUDGET if quick else BUDGETS[device.type][workload.name.split("_")[0]]


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
        network = read_model(model_file)[0].to(device).eval()

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
                    optimized, lambda seconds: 1000.0 * seconds / batch_size, PRECISION_VARIANTS["stylize"])


# ----------------------------------------------------------------------------- train


def trainer_candidate(name: str, folder: Path, size: int, batch_size: int, steps_per_call: int,
                      device: torch.device, network: LossNetworkConfig, **overrides: Any) -> Candidate:
    """A :class:`~fast_style.training.trainer.Trainer` on preloaded photos; a timed call is ``steps_per_call``
    steps, loading included. Its output is the first step's [loss, content, style, tv]."""
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
                    lambda seconds: steps_per_call * batch_size / seconds, PRECISION_VARIANTS["train"],
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
    (image = sigmoid(z), :func:`~fast_style.optimize.lbfgs`'s settings) but evaluating at every
    closure call, as plain PyTorch code does."""
    targets = loss.content_features(content)
    variable = torch.logit(content.clamp(LOGIT_MARGIN, 1 - LOGIT_MARGIN)).detach().clone().requires_grad_(True)
    opt = lbfgs(variable)

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
                    lambda seconds: seconds, PRECISION_VARIANTS["optimize"],
                    {"iterations": iterations, "compared": "final loss terms"})

