"""The CPU bf16 targets at their own sizes: stylize 512², train 256² (batch 4), optimise 512², as JSON.

    python3 scripts/bench_bf16_targets.py --threads 2

`fast-style bench --device cpu` keeps its CPU plans small (training at 128², optimisation at 128²) so
that a full run takes minutes; the targets of the CPU bf16 work are stated at 256² and 512², so this
runs the same workloads (the bench's own candidates: plain fp32 baseline, fp32 and bf16 paths, timed
in interleaved rounds in one process) at those sizes. Each entry's ``precisions`` holds fp32 and bf16
side by side and ``bf16_over_fp32``; ``ratio`` is the optimized path (what ``auto`` runs) against the
plain fp32 baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from fast_style.bench.fixtures import loss_network_config
from fast_style.bench.harness import measure
from fast_style.bench.report import summarize
from fast_style.bench.run import environment
from fast_style.bench.workloads import optimize_workload, stylize_workload, train_workload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timed rounds per workload")
    parser.add_argument("--rounds", type=int, default=5, help="at most this many rounds per workload")
    parser.add_argument("--optimize-iterations", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    document = {**environment(device, False, torch.get_num_threads()), "workloads": []}
    with tempfile.TemporaryDirectory(prefix="fast-style-bf16-") as tmp:
        folder = Path(tmp)
        network, document["loss_network"] = loss_network_config(folder)
        factories = [lambda: stylize_workload("stylize_512_b1", 512, 1, device, folder, False),
                     lambda: train_workload(256, 4, 1, device, folder / "train", network, False),
                     lambda: optimize_workload(512, args.optimize_iterations, device, network)]
        for factory in factories:
            workload = factory()
            print(f"bench_bf16_targets: {workload.name} at {workload.size}px", file=sys.stderr, flush=True)
            document["workloads"].append(summarize(workload, measure(workload.candidates, device, args.budget,
                                                                     args.rounds)))
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
