"""``fast-style video``: stylize a clip with flow-guided temporal stability, streaming, keeping its sound."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fast_style.commands.common import add_device_options, choose_style

HELP = "Stylize a video (or animated GIF/WebP) with stable frames, keeping frame rate, size and audio."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="a video file (mp4, mov, mkv, webm, ...) or an animated GIF/WebP")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="a bundled model's name (see `fast-style models`), or a model.safetensors "
                             "written by `fast-style train` (or its .json, or their folder)")
    parser.add_argument("--output", "-o", metavar="OUT",
                        help="the output clip; its suffix picks the format (.mp4 .m4v .mov .mkv .webm .gif "
                             ".webp). Default: IN_MODEL.EXT beside the input (mp4 where IN's format cannot be written)")
    from fast_style.video.stabilize import DEFAULT_HOLD, DEFAULT_STABILITY

    parser.add_argument("--stability", type=float, default=DEFAULT_STABILITY, metavar="X",
                        help="how much of the previous output, carried along the optical flow where it is "
                             "trustworthy (reset at scene cuts), to blend into each renewed frame; below 1. "
                             "With --hold 1 every frame is blended (0.6 halves the flicker but softens the "
                             "strokes: perceptual loss +16-20 %%); --hold 1 --stability 0 is plain frame by frame")
    parser.add_argument("--hold", type=int, default=DEFAULT_HOLD, metavar="N",
                        help="carry the stylized texture along the flow unblended for N-1 frames and renew it "
                             "every Nth, like animation on twos/threes: the defaults measured 0.45-0.49x the "
                             "flicker of frame by frame on slow pans and zooms at +2.8-4.0 %% perceptual loss")
    parser.add_argument("--report", action="store_true",
                        help="print a JSON line with the flicker (motion-compensated difference between frames) "
                             "of the output and of frame-by-frame stylization, and the speed")
    parser.add_argument("--size", type=int, metavar="N", help="longer side of the output (default: the input's)")
    parser.add_argument("--style", metavar="STYLE",
                        help="a multi-style model's style by name (`fast-style models` lists them), or a mix: "
                             "a=0.7,b=0.3; for models that take any painting (e.g. --model arbitrary): the painting "
                             "file, or a.jpg=0.5,b.jpg=0.5 to interpolate between several")
    parser.add_argument("--alpha", type=float, metavar="X",
                        help="with --style: 0 = the clip's own features, 1 = the full style (default 1)")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the clip's colours and take only luminance from the style")
    parser.add_argument("--strength", type=float, default=1.0, metavar="X",
                        help="0 = the input, 1 = the full stylization, in between a blend")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never the input)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="stylize N frames at once (helps on GPUs; memory grows with N, not with the clip)")
    add_device_options(parser)


def main(args: argparse.Namespace) -> int:
    from fast_style.commands.common import read_files
    from fast_style.paintings import check_alpha
    from fast_style.safety import check_not_empty
    from fast_style.stylize import Options, load_stylizer
    from fast_style.video import require
    from fast_style.video.io import check_output
    from fast_style.video.pipeline import stylize_video
    from fast_style.video.stabilize import check_hold, check_stability

    require("av")
    require("cv2")
    stability, hold = check_stability(args.stability), check_hold(args.hold)
    if args.alpha is not None:
        check_alpha(args.alpha)
    options = Options(size=args.size, preserve_color=args.preserve_color, strength=args.strength,
                      batch_size=args.batch_size, overwrite=args.overwrite)
    check_not_empty(args.output, "--output")
    source = Path(args.input)
    output = Path(args.output) if args.output is not None else default_output(source, args.model, args.style)
    # Before the model loads: fail fast. The painting and the model are inputs too, never the output.
    check_output(source, output, overwrite=args.overwrite, reads=read_files(args.model, args.style))
    stylizer = load_stylizer(args.model, device=args.device, precision=args.precision)
    choose_style(stylizer, args.model, args.style, args.alpha)  # before any output is opened
    summary = stylize_video(stylizer, source, output, options, stability=stability, hold=hold, measure=args.report)
    width, height = summary.size
    print(f"wrote {output} ({summary.frames} frames, {width}x{height}, {summary.rate:g} fps, audio {summary.audio}) "
          f"in {summary.seconds:.1f} s ({summary.frames / max(summary.seconds, 1e-9):.2f} frames/s)")
    if args.report:
        print(json.dumps(summary.report()))
    return 0


def default_output(source: Path, model: str, style: str | None = None) -> Path:
    """``clip_starry_night.mp4`` beside the input (``clip_multi_style_wave.mp4`` with a --style): its
    format kept where it can be written, else mp4."""
    from fast_style.commands.common import model_name, style_tag
    from fast_style.video.io import OUTPUT_SUFFIXES

    suffix = source.suffix.lower()
    name = model_name(model) + (f"_{style_tag(style)}" if style else "")
    return source.with_name(f"{source.stem}_{name}{suffix if suffix in OUTPUT_SUFFIXES else '.mp4'}")
