"""Stylize time of several models on the same photo, as JSON, each against the first in the same run.

The recipe study (docs/recipe.md) compares network sizes at equal training time; what a size costs
the user afterwards is its stylize time, so this times each model's `Stylizer` on one random
``--size`` x ``--size`` photo, the models alternating round by round (the same machine load for all),
median of ``--rounds`` after one warm-up call each.

    python3 scripts/bench_models.py runs/study/base_seed1/train/model.safetensors \\
        runs/study/width16/train/model.safetensors runs/study/blocks3/train/model.safetensors --size 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (after the path is set)

from fast_style.errors import FastStyleError  # noqa: E402
from fast_style.memory import keep_freed_memory  # noqa: E402
from fast_style.precision import cpu_info  # noqa: E402
from fast_style.stylize import load_stylizer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model files or bundled names; the first is the baseline")
    parser.add_argument("--size", type=int, default=512, help="side of the square photo (px)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto")
    return parser.parse_args(argv)


def model_size(stylizer) -> dict:
    """What the study varies: the network's settings as its model.json records them, and its parameters."""
    return {**stylizer.model.config.to_metadata(), "parameters": sum(p.numel() for p in stylizer.model.parameters())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.size < 16 or args.rounds < 1 or args.threads < 1:
        raise SystemExit("bench_models: --size must be at least 16, --rounds and --threads at least 1")
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    stylizers = {}
    photo = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    for model in args.models:
        try:
            stylizers[model] = load_stylizer(model, device="cpu", precision=args.precision)
            with torch.inference_mode():
                stylizers[model].stylize_tensor(photo)  # warm-up, and a check that it runs without a painting
        except FastStyleError as error:
            raise SystemExit(f"bench_models: {model}: {error} (this benchmark takes models that stylize "
                             "without a painting or style choice)") from None
    times: dict[str, list[float]] = {model: [] for model in args.models}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for model, stylizer in stylizers.items():
                start = time.perf_counter()
                stylizer.stylize_tensor(photo)
                times[model].append(time.perf_counter() - start)
    seconds = {model: statistics.median(values) for model, values in times.items()}
    baseline = seconds[args.models[0]]
    print(json.dumps({"cpu": cpu_info().as_dict(), "threads": args.threads, "size": args.size, "rounds": args.rounds,
                      "models": {model: {**model_size(stylizers[model]), "stylize_s": seconds[model],
                                         "over_first": seconds[model] / baseline} for model in args.models}},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
