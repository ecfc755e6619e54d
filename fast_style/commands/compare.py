"""``fast-style compare``: the trained network against Gatys optimisation, under the network's own loss."""

from __future__ import annotations

import argparse

from fast_style.commands.common import add_device_options

HELP = "Compare a trained network with Gatys optimisation on the same photos: loss, time, grid, report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="photos, folders or glob patterns to compare on")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a bundled model's name, or model.safetensors (with model.json beside it) or its folder")
    parser.add_argument("--style", metavar="PAINTING",
                        help="the painting (default: the one the model carries, or was trained on if that file "
                             "is still there); for a "
                             "multi-style model, the style to compare, by name")
    parser.add_argument("--output", metavar="DIR",
                        help="folder for report.json, report.html, grid.png and images/ (default: compare_MODEL)")
    parser.add_argument("--steps", default="50,100,300", metavar="N,N,...", help="optimisation step budgets")
    parser.add_argument("--refine", metavar="N,N,...",
                        help="also refine the network's picture by these numbers of optimisation steps (1 to 1000 "
                             "each, e.g. 5,10,20): rows network+N, timed as the network plus the steps")
    parser.add_argument("--size", type=int, default=512, help="longer side of the photos in pixels")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs", help="the baseline's optimiser")
    add_device_options(parser, scored=True)
    parser.add_argument("--overwrite", action="store_true", help="replace the report of an earlier run in --output")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fast_style.commands.common import model_name, parse_int_list, read_files
    from fast_style.compare import compare
    from fast_style.compare_report import REPORT_FILES, format_table
    from fast_style.config import MAX_SIDE
    from fast_style.errors import FastStyleError
    from fast_style.refine import parse_steps_list
    from fast_style.safety import check_creatable, check_not_empty, check_output_folder

    if not 0 < args.size <= MAX_SIDE:
        raise FastStyleError(f"--size {args.size}: must be a positive number of pixels, at most {MAX_SIDE}")
    check_not_empty(args.output, "--output")
    refine = parse_steps_list(args.refine) if args.refine is not None else []
    output = Path(args.output if args.output is not None else f"compare_{model_name(args.model)}")
    # The model and the painting are inputs: no report file may be one of them, even with --overwrite.
    check_output_folder(output, REPORT_FILES, inputs=[args.style, *read_files(args.model, args.style)],
                        overwrite=args.overwrite)
    check_creatable(output)
    report = compare(args.model, args.photos, output, style=args.style,
                     steps=parse_int_list(args.steps, "--steps"), size=args.size, optimizer=args.optimizer,
                     device=args.device, precision=args.precision, refine=refine)
    print(format_table(report))
    print(f"\nwrote {output / 'report.json'}, {output / 'grid.png'} and {output / 'report.html'}; "
          f"ran in {report['precision']} ({report['precision_reason']}), scored in fp32")
    return 0
