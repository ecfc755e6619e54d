"""Where a network's loss gap to Gatys comes from: its style term layer by layer, as JSON.

`fast-style compare` reports one style number; to choose what to train or change next (a deeper wct
level, a better decoder, other style-layer weights) one needs to know which VGG layer holds the gap.
For each photo this scores, under the model's own loss (the painting it carries or ``--style``), the
network's picture (8-bit, as a file holds it), Gatys after ``--steps`` iterations from the photo, and
the photo itself: content, TV, and each style layer's weighted share of the style term (they add up
to it). Means over the photos come last.

    python3 scripts/loss_by_layer.py arbitrary ../shared/data/eval/kodak24/kodim01.png \\
        --style ../shared/data/styles/the_shipwreck_of_the_minotaur.jpg --size 256 --steps 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402  (after the path is set)

from fast_style.compare import compared_painting, run_gatys  # noqa: E402
from fast_style.errors import FastStyleError  # noqa: E402
from fast_style.images import find_images, load_image  # noqa: E402
from fast_style.losses import PerceptualLoss, relative_error  # noqa: E402
from fast_style.model_loss import build_loss, trained_loss  # noqa: E402
from fast_style.precision import cpu_info  # noqa: E402
from fast_style.stylize import load_stylizer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model file or bundled name")
    parser.add_argument("photos", nargs="+", help="photos or folders")
    parser.add_argument("--style", help="the painting (any-painting models), or a multi-style model's style name")
    parser.add_argument("--size", type=int, default=256, help="longer side of the scored photos")
    parser.add_argument("--steps", type=int, default=50, help="Gatys iterations from the photo")
    return parser.parse_args(argv)


@torch.no_grad()
def terms_by_layer(loss: PerceptualLoss, image: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """``image``'s loss as ``loss`` computes it (fp32), with the style term split into its layers."""
    with loss.network.computing("fp32"):
        total = loss(image, content=photo).as_floats()
        features = loss.network(image, list(loss.style_layers))
        layers = {f"style_{name}": float(loss.config.style_weight * weight *
                                         relative_error(loss.statistic(features[name]), loss.style_targets[name]))
                  for name, weight in loss.style_layers.items()}
    return {**total, **layers}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.size < 32 or args.steps < 1:
        raise SystemExit("loss_by_layer: --size must be at least 32 and --steps at least 1")
    try:
        stylizer = load_stylizer(args.model, device="cpu", precision="fp32")
        style_name = args.style if stylizer.styles else None
        config, style_size, _ = trained_loss(stylizer.metadata, args.model, style_name)
        if style_name is not None:
            stylizer.choose_style(style_name)
        painting = compared_painting(stylizer, args.model, None if style_name else args.style, style_name, style_size)
        if stylizer.kind.takes_style:
            stylizer.set_style([(painting.image, 1.0)])
        loss = build_loss(config, [(painting, config.style_weight)], precision="fp32", device=torch.device("cpu"),
                          model=args.model)
        paths = find_images(args.photos)  # none found: its own one-line error
        photos = [load_image(path, size=args.size).unsqueeze(0) for path in paths]
    except FastStyleError as error:
        raise SystemExit(f"loss_by_layer: {error}") from None
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for path, photo in zip(paths, photos):
        network = stylizer.stylize_tensor(photo).float().mul(255).round().div(255)
        gatys, _seconds = run_gatys(photo, loss, [args.steps], optimizer="lbfgs", device=torch.device("cpu"),
                                    desc=f"gatys {path.stem}", show_progress=False)[args.steps]
        rows[path.name] = {"network": terms_by_layer(loss, network, photo),
                           f"gatys-{args.steps}": terms_by_layer(loss, gatys, photo),
                           "photo": terms_by_layer(loss, photo, photo)}
    methods = next(iter(rows.values())).keys()
    means = {method: {key: sum(row[method][key] for row in rows.values()) / len(rows)
                      for key in next(iter(rows.values()))[method]} for method in methods}
    print(json.dumps({"model": args.model, "painting": painting.name, "size": args.size, "cpu": cpu_info().as_dict(),
                      "photos": rows, "mean": means}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
