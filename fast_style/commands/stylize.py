"""``fast-style stylize``: run a trained network over photos: files, folders or globs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from fast_style.commands.common import add_device_options, choose_style

if TYPE_CHECKING:
    from fast_style.stylize_files import Job

HELP = "Stylize photos (files, folders, globs) with a trained model: milliseconds per image on a GPU."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) or glob patterns")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a bundled model's name (see `fast-style models`), or the model.safetensors "
                             "written by `fast-style train` (or its .json, or their folder)")
    parser.add_argument("--style", metavar="STYLE",
                        help="a multi-style model's style by name (`fast-style models` lists them), or a mix: "
                             "a=0.7,b=0.3; for models that take any painting (e.g. --model arbitrary): the painting "
                             "file, or a.jpg=0.5,b.jpg=0.5 to interpolate between several")
    parser.add_argument("--alpha", type=float, metavar="X",
                        help="with --style: 0 = the photo's own features, 1 = the full style (default 1)")
    parser.add_argument("--output", "-o", metavar="OUT",
                        help="a file for one input image; otherwise a folder (created; names and the "
                             "sub-folders of folder inputs are kept). Default: PHOTO_MODEL.EXT beside a "
                             "single photo, else the folder stylized_MODEL")
    parser.add_argument("--size", type=int, metavar="N",
                        help="longer side of the output (default: the photo's own size)")
    parser.add_argument("--tile", type=int, metavar="N",
                        help="run in N-pixel tiles (multiple of 16, >= 64); the result equals the untiled one. "
                             "Default: only when the image would not fit in memory")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the photo's colours and take only luminance from the style")
    parser.add_argument("--strength", type=float, default=1.0, metavar="X",
                        help="0 = the photo, 1 = the full stylization, in between a blend")
    parser.add_argument("--format", choices=["png", "jpg", "webp", "bmp", "tiff"],
                        help="output format in folder mode (default: the input's own, or png)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files (without it a folder run keeps them, counts them "
                             "and still exits 0, so re-running it stylizes only new photos)")
    parser.add_argument("--keep-alpha", action="store_true",
                        help="re-attach the photo's transparency to the output (png/webp/tiff)")
    parser.add_argument("--refine", default="0", metavar="N",
                        help="after the network, N optimisation steps on the model's own loss (0 to 1000; 5-20 "
                             "brings the picture close to Gatys's at seconds a photo; default 0: the network's "
                             "picture). The painting is the one the model carries; for an older single-painting "
                             "model pass it with --style")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="stylize up to N consecutive same-sized photos at once (helps on GPUs)")
    add_device_options(parser)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                        help="NHWC memory layout (measured slower for this network on CPU and on an H100)")


def main(args: argparse.Namespace) -> int:
    import time

    from fast_style.images import ImageError
    from fast_style.paintings import check_alpha
    from fast_style.safety import check_creatable, check_not_empty
    from fast_style.stylize import Options, load_stylizer
    from fast_style.stylize_files import is_single_file, plan_jobs, stylize_file, stylize_folder

    check_not_empty(args.output, "--output")
    if args.alpha is not None:
        check_alpha(args.alpha)  # before the model loads: fail fast
    options = Options(size=args.size, preserve_color=args.preserve_color, strength=args.strength,
                      tile=args.tile, keep_alpha=args.keep_alpha, batch_size=args.batch_size,
                      overwrite=args.overwrite, refine=args.refine)
    output = (Path(args.output) if args.output is not None else
              default_output(args.inputs, args.model, args.format, args.style, options.refine))
    jobs = plan_jobs(args.inputs, output, args.format)
    check_reads(jobs, args.model, args.style)
    single = is_single_file(args.inputs, output)
    check_creatable(output.parent if single else output)
    if single and output.exists() and not args.overwrite:
        raise ImageError(f"{output}: already exists; pass --overwrite to replace it")
    stylizer = load_stylizer(args.model, device=args.device, precision=args.precision,
                             channels_last=args.channels_last)
    if options.refine and args.style is not None and not (stylizer.styles or stylizer.kind.takes_style):
        stylizer.use_painting(args.style)  # a single-painting model that does not carry its painting
    else:
        choose_style(stylizer, args.model, args.style, args.alpha)
    if options.refine:
        stylizer.refine_loss()  # a missing painting is refused here, before anything is written
    if single:
        start = time.perf_counter()
        result = stylize_file(stylizer, jobs[0], options)
        print(f"wrote {output} ({result.shape[-1]}x{result.shape[-2]}) in {time.perf_counter() - start:.2f} s, "
              f"{stylizer.precision.name} ({stylizer.precision.reason})")
        return 0
    summary = stylize_folder(stylizer, jobs, options)
    print(f"{summary.line(output)}, {stylizer.precision.name} ({stylizer.precision.reason})")
    return 1 if summary.skipped else 0


def default_output(inputs: list[str], model: str, fmt: str | None, style: str | None = None, refine: int = 0) -> Path:
    """Where results go without --output: ``photo_starry_night.jpg`` beside a single photo (its format
    kept where it can be written, else png), otherwise the folder ``stylized_starry_night``; named
    after a bundled model, or a trained model's file or folder, and the --style when one is given
    (``photo_multi_style_wave.jpg``) and the refinement (``_refine10``), so stylizing one photo in several
    styles or refinements keeps every result."""
    from fast_style.commands.common import model_name, style_tag
    from fast_style.stylize_files import OUTPUT_FORMATS, WRITABLE_SUFFIXES

    name = model_name(model) + (f"_{style_tag(style)}" if style else "") + (f"_refine{refine}" if refine else "")
    photo = Path(inputs[0])
    if len(inputs) == 1 and photo.is_file():
        suffix = OUTPUT_FORMATS[fmt] if fmt else photo.suffix.lower()
        return photo.with_name(f"{photo.stem}_{name}{suffix if suffix in WRITABLE_SUFFIXES else '.png'}")
    return Path(f"stylized_{name}")


def check_reads(jobs: list[Job], model: str, style: str | None) -> None:
    """The painting(s) of ``--style`` and the model's files are inputs too: no result may be one of them
    (by any name), with or without ``--overwrite``."""
    from fast_style.commands.common import read_files
    from fast_style.safety import check_not_an_input

    inputs = read_files(model, style)
    for job in jobs:
        check_not_an_input(job.target, inputs)
