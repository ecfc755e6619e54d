"""``fast-style optimize``: Gatys optimisation of one photo towards one painting."""

from __future__ import annotations

import argparse

from fast_style.commands.common import add_device_options

HELP = "Stylize one photo by Gatys et al. optimisation (the slow, flexible baseline)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--content", metavar="PHOTO", help="the photo to stylize")
    parser.add_argument("--style", metavar="PAINTING", help="the painting whose style to take")
    parser.add_argument("--output", metavar="OUT.png", help="where to write the result (PNG, JPEG, WebP, ...)")
    parser.add_argument("--size", type=int, help="longer side of the output in pixels (default 512)")
    parser.add_argument("--steps", type=int, help="iterations per pyramid level (default 300)")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], help="lbfgs (default) or adam")
    parser.add_argument("--init", choices=["content", "noise"], help="start from the photo (default) or noise")
    parser.add_argument("--pyramid", metavar="SIZES", help="comma-separated sizes, e.g. 256,512,1024")
    parser.add_argument("--content-weight", type=float, help="weight of the content term")
    parser.add_argument("--style-weight", type=float, help="weight of the style term")
    parser.add_argument("--tv-weight", type=float, help="weight of the total-variation term")
    add_device_options(parser, from_config=True, scored=True)
    parser.add_argument("--overwrite", action="store_true", help="replace OUT (and OUT.config.yaml) if they exist")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config; flags and key=value override it")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. loss.style_weight=20")


def main(args: argparse.Namespace) -> int:
    from fast_style.commands.common import parse_int_list, write_resolved_config
    from fast_style.config import load_config
    from fast_style.errors import FastStyleError
    from fast_style.images import SAVE_FORMATS, check_longer_side, save_image
    from fast_style.optimize import OptimizeConfig, level_sizes, output_config_path, run
    from fast_style.safety import check_not_empty, check_output

    values = {"content": args.content, "style": args.style, "output": args.output, "size": args.size,
              "steps": args.steps, "optimizer": args.optimizer, "init": args.init, "device": args.device,
              "precision": args.precision,
              "pyramid": parse_int_list(args.pyramid, "--pyramid") if args.pyramid else None,
              "loss.content_weight": args.content_weight, "loss.style_weight": args.style_weight,
              "loss.tv_weight": args.tv_weight}
    check_not_empty(args.output, "--output")
    config = load_config(OptimizeConfig, args.config, args.overrides, values)
    if not config.output:
        raise FastStyleError("optimize needs --output OUT.png")
    # Every output is checked before the (long) optimisation, and none may be an input.
    inputs = [config.content, config.style, args.config]
    check_output(config.output, inputs=inputs, overwrite=args.overwrite, suffixes=SAVE_FORMATS)
    check_output(output_config_path(config.output), inputs=inputs, overwrite=args.overwrite)
    check_longer_side(config.output, level_sizes(config)[-1])
    result = run(config)
    path = save_image(result.image[0], config.output)
    write_resolved_config(config, output_config_path(path))
    terms = result.terms
    h, w = result.image.shape[-2:]
    print(f"wrote {path} ({w}x{h}) in {result.seconds:.1f} s: loss {terms['loss']:.4g} "
          f"(content {terms['content']:.4g}, style {terms['style']:.4g}, tv {terms['tv']:.4g}); "
          f"{result.precision.name} ({result.precision.reason})")
    return 0
