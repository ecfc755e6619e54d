"""``fast-style bench``: speed of stylizing, training and optimising against plain fp32 eager, as JSON."""

from __future__ import annotations

import argparse

from fast_style.commands.common import DEVICE_CHOICES

HELP = ("Benchmark stylize, train and optimize: the optimized paths against plain fp32 eager PyTorch, "
        "in one process, printed as JSON.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where to run")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few rounds, no torch.compile variants (a smoke test, e.g. in CI)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads; unset: PyTorch's own choice (the JSON reports it)")
    parser.add_argument("--workloads", metavar="NAMES",
                        help="comma-separated subset of stylize_512_b8, stylize_512_b1, stylize_1024_b1, "
                             "train_256, optimize_512; unset: all")
    parser.add_argument("--output", metavar="FILE.json",
                        help="also write the JSON here, rewritten after every workload (keeps partial results)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from fast_style.bench import run_bench
    from fast_style.checkpoint import write_json
    from fast_style.errors import FastStyleError

    if args.threads is not None and args.threads < 1:
        raise FastStyleError(f"--threads {args.threads}: must be at least 1")
    if args.output is not None:
        from fast_style.safety import check_output

        check_output(args.output, overwrite=args.overwrite)
    workloads = [name.strip() for name in args.workloads.split(",") if name.strip()] if args.workloads else None

    def save(document: dict) -> None:
        if args.output:
            write_json(Path(args.output), document)

    document = run_bench(args.device, quick=args.quick, threads=args.threads, workloads=workloads, on_result=save)
    save(document)
    print(json.dumps(document, indent=2))
    return 0
