"""A training recipe's learning curve: network / Gatys-50 loss on held-out photos against images seen.

    python3 scripts/learning_curve.py --config configs/starry_night.yaml --milestones 250,625,1250,2500 \
        --photos ../shared/data/eval/kodak24 --count 6 --size 256 --output runs/curve_starry [key=value ...]

Trains one run with the project's trainer (any config and key=value overrides: the recipe under
study) and stops at each milestone (in steps) to score the model as `fast-style compare` does: the
network's loss against 50 iterations of Gatys L-BFGS on the same photos, under the loss the model
was trained with, every image scored in fp32. Each milestone's line goes to stdout as JSON and into
``OUTPUT/curve.json``. Why it is built this way:

* It runs unattended for hours: training resumes from its own checkpoints (a killed study goes on
  where it stopped when run again), and the Gatys results, which do not change while the network
  trains, are computed once and cached in ``OUTPUT/gatys.json``.
* One curve per recipe, judged against the same photos and the same Gatys budget, so that rows of
  the recipe study (docs/recipe.md) are comparable; ``--count`` takes the first N photos by name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fast_style.checkpoint import read_model, write_json
from fast_style.compare import run_gatys, score
from fast_style.config import load_config, to_dict
from fast_style.images import find_images, load_image
from fast_style.losses import PerceptualLoss
from fast_style.model_loss import trained_loss
from fast_style.precision import resolve_precision
from fast_style.stylize import Stylizer
from fast_style.training.trainer import TrainConfig, Trainer

GATYS_STEPS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("--milestones", required=True, help="comma-separated step counts to score at")
    parser.add_argument("--photos", required=True, help="held-out photos (folder or files; never trained on)")
    parser.add_argument("--count", type=int, default=6, help="score on the first N photos by name")
    parser.add_argument("--size", type=int, default=256, help="longer side of the scored photos")
    parser.add_argument("--output", required=True, type=Path, help="folder for the run, curve.json, gatys.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--score-model", metavar="MODEL",
                        help="instead of training, score this model file (e.g. a bundled model trained with the "
                             "same recipe) on the study's photos against its cached Gatys results")
    parser.add_argument("--style", metavar="NAME[,NAME...]|all",
                        help="multi-style models: the styles to score, each against its own painting and cached "
                             "Gatys (OUTPUT/gatys_NAME.json); when training, the one style the curve follows")
    parser.add_argument("--painting", metavar="FILE[,FILE...]",
                        help="with --score-model of a model that takes any painting (wct, adain): score it with each "
                             "of these paintings, each against its own cached Gatys (OUTPUT/gatys_STEM.json)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")
    return parser.parse_args(argv)


def scoring_setup(model_file: Path, photos: list[Path], size: int, device: torch.device,
                  precision: str, style: str | None = None,
                  painting: Path | None = None) -> tuple[PerceptualLoss, list[torch.Tensor]]:
    """The model's own loss (painting targets set) and the photos, as `fast-style compare` builds them
    (``style``: which of a multi-style model's paintings; ``painting``: the one an any-painting model is
    given)."""
    _network, metadata = read_model(model_file)
    config, style_size, trained = trained_loss(metadata, model_file, style)
    loss = PerceptualLoss.from_config(config, precision).to(device)
    loss.set_style(load_image(painting or trained, size=style_size).unsqueeze(0).to(device))
    return loss, [load_image(path, size=size).unsqueeze(0).to(device) for path in photos]


def gatys_losses(loss: PerceptualLoss, photos: list[Path], tensors: list[torch.Tensor], cache_file: Path,
                 device: torch.device) -> dict[str, dict[str, float]]:
    """Gatys-50 terms per photo, computed once per study and cached (they do not depend on the network)."""
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    for path, photo in zip(photos, tensors):
        if str(path) not in cache:
            image, _seconds = run_gatys(photo, loss, [GATYS_STEPS], optimizer="lbfgs", device=device,
                                        desc=f"gatys {path.stem}", show_progress=False)[GATYS_STEPS]
            with loss.network.computing("fp32"):
                cache[str(path)] = score(loss, image, loss.content_features(photo))
            write_json(cache_file, cache)
    return {str(path): cache[str(path)] for path in photos}


def network_losses(model_file: Path, loss: PerceptualLoss, photos: list[Path], tensors: list[torch.Tensor],
                   device: torch.device, precision: str, style: str | None = None,
                   painting: Path | None = None) -> dict[str, dict[str, float]]:
    """The trained network's terms per photo (run in the study's precision, scored in fp32)."""
    network, metadata = read_model(model_file)
    stylizer = Stylizer(network, metadata, device, resolve_precision(precision, device), fast=device.type == "cpu")
    if style is not None:
        stylizer.choose_style(style)
    if painting is not None:
        stylizer.set_style(painting)
    results = {}
    with loss.network.computing("fp32"):
        for path, photo in zip(photos, tensors):
            image = stylizer.stylize_tensor(photo).mul(255).round().div(255)  # as an 8-bit file holds it
            results[str(path)] = score(loss, image, loss.content_features(photo))
    return results


def mean_terms(per_photo: dict[str, dict[str, float]]) -> dict[str, float]:
    rows = list(per_photo.values())
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}


def score_existing(model: Path, photos: list[Path], args: argparse.Namespace) -> int:
    """One line per style for a model trained elsewhere: its ratio on the study's photos (Gatys from the cache)."""
    from fast_style.runtime import resolve_device
    from fast_style.models import resolve_model_path

    model_file = resolve_model_path(str(model))
    device = resolve_device(args.device)
    precision = resolve_precision("auto", device).name
    network, metadata = read_model(model_file)
    names = list(getattr(network, "styles", []))
    styles: list[str | None] = [None]
    if args.style:
        styles = names if args.style == "all" else args.style.split(",")
    seen = {record.get("name"): record.get("images_seen") for record in metadata.get("styles", [])}
    paintings: list[Path | None] = [Path(file) for file in args.painting.split(",")] if args.painting else [None]
    for style, painting in [(style, painting) for style in styles for painting in paintings]:
        loss, tensors = scoring_setup(model_file, photos, args.size, device, precision, style, painting)
        label = style if painting is None else painting.stem
        cache = args.output / ("gatys.json" if label is None else f"gatys_{label}.json")
        gatys = mean_terms(gatys_losses(loss, photos, tensors, cache, device))
        network_terms = mean_terms(network_losses(model_file, loss, photos, tensors, device, precision, style,
                                                  painting))
        images_seen = metadata.get("training", {}).get("images_seen") if style is None else seen.get(style)
        print(json.dumps({"model": str(model), "style": label, "images_seen": images_seen, "size": args.size,
                          "photos": [path.name for path in photos], "network": network_terms,
                          f"gatys_{GATYS_STEPS}": gatys, "ratio": network_terms["loss"] / gatys["loss"]}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    milestones = sorted({int(step) for step in args.milestones.split(",")})
    photos = sorted(find_images([args.photos]), key=lambda path: path.name)[:args.count]
    args.output.mkdir(parents=True, exist_ok=True)
    if args.score_model:
        return score_existing(Path(args.score_model), photos, args)
    curve_file = args.output / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.is_file() else {"milestones": []}
    done = {entry["steps"] for entry in curve["milestones"]}
    for steps in milestones:
        if steps in done:
            continue
        overrides = [*args.overrides, f"output_dir={args.output / 'train'}", f"steps={steps}",
                     f"device={args.device}", "resume=auto"]
        config = load_config(TrainConfig, args.config, overrides)
        started = time.perf_counter()
        trainer = Trainer(config)
        model_file = trainer.run()
        seconds = time.perf_counter() - started
        precision = resolve_precision(config.precision, trainer.device).name
        style = args.style  # a multi-style run: the one style the curve follows
        loss, tensors = scoring_setup(model_file, photos, args.size, trainer.device, precision, style)
        cache = args.output / ("gatys.json" if style is None else f"gatys_{style}.json")
        gatys = gatys_losses(loss, photos, tensors, cache, trainer.device)
        network = network_losses(model_file, loss, photos, tensors, trainer.device, precision, style)
        network_mean, gatys_mean = mean_terms(network), mean_terms(gatys)
        total_seconds = seconds + sum(entry["train_seconds"] for entry in curve["milestones"])
        entry = {"steps": steps, "images_seen": steps * config.batch_size, "train_seconds": round(seconds, 1),
                 "train_seconds_total": round(total_seconds, 1),
                 "precision": precision, "size": args.size, "photos": [path.name for path in photos],
                 "network": network_mean, f"gatys_{GATYS_STEPS}": gatys_mean,
                 "ratio": network_mean["loss"] / gatys_mean["loss"]}
        curve["milestones"].append(entry)
        curve["config"] = to_dict(trainer.config)
        write_json(curve_file, curve)
        print(json.dumps(entry), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
