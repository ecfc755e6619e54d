"""CPU stylize speed as users see it: `fast-style`'s path against plain PyTorch, each in its own process.

`fast-style bench` times both paths in one process, so both run under the memory setting that the
`fast-style` command makes (glibc keeps freed memory, see ``fast_style.memory.keep_freed_memory``). That
ratio is the network's alone. A plain PyTorch script runs with glibc's defaults instead, where every
large activation is page-faulted in again on each pass. This script measures that difference too:
fresh processes, alternately plain (default malloc, ``TransformerNet.forward``) and fast_style
(``keep_freed_memory`` + the CPU default ``Stylizer``), same random weights and photo, and prints
JSON with the medians and their ratio.

    python3 scripts/bench_cpu_processes.py [--size 512] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLS = 5  # timed calls per process, after one warm-up call


def child(path: str, size: int, threads: int) -> list[float]:
    """Run in a fresh process: time CALLS forward passes of one path, in milliseconds."""
    if path == "fast_style":
        from fast_style.memory import keep_freed_memory

        keep_freed_memory()
    import torch

    from fast_style.stylize import Stylizer
    from fast_style.transformer import TransformerNet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TransformerNet().eval()
    photo = torch.rand(1, 3, size, size)
    run = Stylizer(model, {}, torch.device("cpu"), fast=True).stylize_tensor if path == "fast_style" else model
    times = []
    with torch.inference_mode():
        run(photo)
        for _ in range(CALLS):
            start = time.perf_counter()
            run(photo)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="processes per path, alternating")
    parser.add_argument("--child", choices=["plain", "fast_style"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.threads)))
        return
    times: dict[str, list[float]] = {"plain": [], "fast_style": []}
    for _ in range(args.rounds):
        for path in times:
            command = [sys.executable, __file__, "--child", path, "--size", str(args.size),
                       "--threads", str(args.threads)]
            output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            times[path] += json.loads(output.splitlines()[-1])
    medians = {path: statistics.median(values) for path, values in times.items()}
    print(json.dumps({"size": args.size, "threads": args.threads, "unit": "ms/image",
                      "baseline": medians["plain"], "optimized": medians["fast_style"],
                      "ratio": medians["plain"] / medians["fast_style"],
                      "times": {path: [round(value, 1) for value in values] for path, values in times.items()}},
                     indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
