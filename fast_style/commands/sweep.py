"""``fast-style sweep``: Gatys optimisation across style/content weight ratios, as a strip and an animation."""

from __future__ import annotations

import argparse

from fast_style.commands.common import add_device_options

HELP = "Optimise one photo for a range of style/content weight ratios; write a labelled strip and a GIF."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--content", metavar="PHOTO", help="the photo to stylize")
    parser.add_argument("--style", metavar="PAINTING", help="the painting whose style to take")
    parser.add_argument("--output", metavar="DIR",
                        help="folder for strip.png, sweep.gif, sweep.json and frames/ (default: sweep_PHOTO, "
                             "named after the photo, in the current folder)")
    parser.add_argument("--ratios", default="1,3,10,30,100", metavar="R,R,...",
                        help="style weight / content weight ratios, one frame each")
    parser.add_argument("--size", type=int, help="longer side of the output in pixels (default 512)")
    parser.add_argument("--steps", type=int, help="iterations per ratio (default 300)")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], help="lbfgs (default) or adam")
    parser.add_argument("--init", choices=["content", "noise"], help="start from the photo (default) or noise")
    add_device_options(parser, from_config=True, scored=True)
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier sweep in --output")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML optimize config; flags and key=value override it")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. loss.tv_weight=1")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fast_style.commands.common import parse_float_list
    from fast_style.config import load_config
    from fast_style.optimize import OptimizeConfig
    from fast_style.safety import check_creatable, check_output_folder
    from fast_style.sweep import sweep, sweep_files

    values = {"content": args.content, "style": args.style, "size": args.size,
              "steps": args.steps, "optimizer": args.optimizer, "init": args.init, "device": args.device,
              "precision": args.precision}
    config = load_config(OptimizeConfig, args.config, args.overrides, values)
    if args.output is None and config.content:
        args.output = f"sweep_{Path(config.content).stem}"
    ratios = parse_float_list(args.ratios, "--ratios")
    check_output_folder(args.output, sweep_files(ratios), inputs=[config.content, config.style, args.config],
                        overwrite=args.overwrite)
    check_creatable(args.output)
    report = sweep(config, ratios, args.output)
    for frame in report["frames"]:
        print(f"style/content {frame['ratio']:<8g} loss {frame['loss']:.4g} (content {frame['content']:.4g}, "
              f"style {frame['style']:.4g}, tv {frame['tv']:.4g}) in {frame['seconds']:.1f} s")
    output = Path(args.output)
    print(f"wrote {output / 'strip.png'}, {output / 'sweep.gif'} and {output / 'sweep.json'}; "
          f"ran in {report['precision']} ({report['precision_reason']}), scored in fp32")
    return 0
