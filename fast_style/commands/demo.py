"""``fast-style demo``: see a stylized photo seconds after installing, offline, no data needed."""

from __future__ import annotations

import argparse

from fast_style.commands.common import DEVICE_CHOICES

HELP = "Stylize a photo that ships with scikit-image using a bundled model (no data, no internet)."
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="fast_style_demo.png", metavar="FILE",
                        help="where to write the picture: photo and stylized result side by side")
    parser.add_argument("--model", default=None, metavar="NAME", help="bundled model name (default starry_night)")
    parser.add_argument("--photo", default="astronaut", choices=PHOTOS, help="which scikit-image photo")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="where to run")
    parser.add_argument("--overwrite", action="store_true", help="replace the picture of an earlier run")


def main(args: argparse.Namespace) -> int:
    import time

    from PIL import Image

    from fast_style.errors import FastStyleError
    from fast_style.images import SAVE_FORMATS, save_image
    from fast_style.models import DEFAULT_MODEL
    from fast_style.pictures import hstack
    from fast_style.safety import check_output
    from fast_style.stylize import load_stylizer

    try:
        import skimage.data
    except ImportError:
        raise FastStyleError("the demo photo comes from scikit-image: `pip install scikit-image`") from None
    check_output(args.output, overwrite=args.overwrite, suffixes=SAVE_FORMATS)
    photo = Image.fromarray(getattr(skimage.data, args.photo)())
    name = args.model or DEFAULT_MODEL
    stylizer = load_stylizer(name, device=args.device)
    stylizer.stylize(photo.resize((64, 64)))  # warm-up, so the time below is the steady-state one
    started = time.perf_counter()
    result = stylizer.stylize(photo)
    seconds = time.perf_counter() - started
    path = save_image(hstack([photo, result]), args.output)
    print(f"wrote {path}: scikit-image's '{args.photo}' ({photo.width}x{photo.height}) | stylized by the "
          f"bundled '{name}' model in {seconds * 1000:.0f} ms on {stylizer.device}")
    return 0
