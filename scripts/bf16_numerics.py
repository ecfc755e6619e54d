"""How far bf16 moves results from fp32: stylize, optimisation and training, printed as JSON lines.

    python3 scripts/bf16_numerics.py stylize --photos ../shared/data/eval/kodak24 --count 8
    python3 scripts/bf16_numerics.py optimize --photos ../shared/data/eval/kodak24 --count 2 --size 256 --steps 50,300
    python3 scripts/bf16_numerics.py train --steps 300 --size 128 --seeds 1,2

Why each measure:

* stylize: the bundled models on real photos, 8-bit outputs compared value by value (the share within
  1 and 2 levels, and the largest difference), because an 8-bit file is what users keep.
* optimize: the final image's loss, scored in fp32, after N L-BFGS iterations with the loss network
  in bf16 and in fp32: L-BFGS's line search needs consistent values and gradients, and this says
  whether bf16's are good enough (the gradient's cosine to fp32's at the photo is printed too).
* train: validation loss (scored in fp32) after the same steps from the same seed, bf16 against fp32,
  for several seeds: the difference has to be within seed-to-seed noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fast_style.images import find_images, load_image
from fast_style.losses import LossConfig, PerceptualLoss
from fast_style.models import bundled_models
from fast_style.optimize import optimize_image
from fast_style.stylize import load_stylizer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def first_photos(folder: Path, count: int) -> list[Path]:
    return sorted(find_images([str(folder)]), key=lambda path: path.name)[:count]


def stylize_numerics(args: argparse.Namespace) -> None:
    """Per bundled model, 8-bit agreement of bf16 with fp32 over the photos."""
    photos = [load_image(path).unsqueeze(0) for path in first_photos(args.photos, args.count)]
    for name in sorted(bundled_models()):
        fp32 = load_stylizer(name, device="cpu", precision="fp32")
        bf16 = load_stylizer(name, device="cpu", precision="bf16")
        for stylizer in (fp32, bf16):
            if stylizer.styles:  # a multi-style model: its first style (a single-painting network then)
                stylizer.choose_style(stylizer.styles[0])
            elif stylizer.kind.takes_style:  # a model for any painting: the study's painting
                stylizer.set_style(args.style)
        counts = torch.zeros(3, dtype=torch.float64)  # within 1, within 2, all
        largest = 0.0
        for photo in photos:
            levels = ((fp32.stylize_tensor(photo) * 255).round() - (bf16.stylize_tensor(photo) * 255).round()).abs()
            counts += torch.tensor([(levels <= 1).sum().item(), (levels <= 2).sum().item(), levels.numel()],
                                   dtype=torch.float64)
            largest = max(largest, levels.max().item())
        print(json.dumps({"model": name, "photos": len(photos), "within_1_level": counts[0].item() / counts[2].item(),
                          "within_2_levels": counts[1].item() / counts[2].item(), "largest_difference": largest}),
              flush=True)


def optimize_numerics(args: argparse.Namespace) -> None:
    """Loss (scored in fp32) after each step budget, loss network in fp32 and in bf16."""
    steps = sorted(int(step) for step in args.steps.split(","))
    painting = load_image(args.style, size=args.size).unsqueeze(0)
    losses = {precision: PerceptualLoss.from_config(LossConfig(), precision) for precision in ("fp32", "bf16")}
    for loss in losses.values():
        loss.set_style(painting)
    for path in first_photos(args.photos, args.count):
        photo = load_image(path, size=args.size).unsqueeze(0)
        for precision, loss in losses.items():
            started = time.perf_counter()
            result = optimize_image(photo, loss, steps=max(steps), snapshots=tuple(steps), show_progress=False)
            seconds = time.perf_counter() - started
            with torch.no_grad(), loss.network.computing("fp32"):
                scored = {f"loss_after_{n}": loss(result.snapshots[n], content=photo).as_floats()["loss"] for n in steps}
            print(json.dumps({"photo": path.name, "precision": precision, "size": args.size, **scored,
                              "seconds": round(seconds, 1)}), flush=True)
        gradients = {}
        for precision, loss in losses.items():
            image = photo.clone().requires_grad_(True)
            loss(image, content_targets=loss.content_features(photo)).total.sum().backward()
            gradients[precision] = image.grad.flatten()
        cosine = torch.nn.functional.cosine_similarity(gradients["fp32"], gradients["bf16"], dim=0).item()
        print(json.dumps({"photo": path.name, "gradient_cosine_bf16_fp32": cosine}), flush=True)


def train_numerics(args: argparse.Namespace) -> None:
    """Validation loss after the same steps, per seed and precision (the trainer's own fp32 scoring)."""
    from fast_style.config import load_config
    from fast_style.training.trainer import TrainConfig, Trainer

    for seed in (int(seed) for seed in args.seeds.split(",")):
        for precision in ("fp32", "bf16"):
            output = args.work / f"seed{seed}_{precision}"
            overrides = [f"style_image={args.style}", f"data.folder={args.data}", f"image_size={args.size}",
                         f"style_size={2 * args.size}", f"steps={args.steps}", f"batch_size={args.batch_size}",
                         f"seed={seed}", f"precision={precision}", "device=cpu", f"output_dir={output}",
                         "resume=auto", "checkpoint_every=100", "validation.every=0", "data.validation_count=8",
                         "init_from=null",
                         f"validation.size={args.size}"]
            config = load_config(TrainConfig, args.config, overrides)
            started = time.perf_counter()
            trainer = Trainer(config)
            model_file = trainer.run()
            info = json.loads(model_file.with_suffix(".json").read_text())
            print(json.dumps({"seed": seed, "precision": precision, "steps": args.steps, "size": args.size,
                              "validation_loss": info["validation_loss"], "seconds": round(time.perf_counter() - started, 1)}),
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    stylize = modes.add_parser("stylize")
    optimize = modes.add_parser("optimize")
    train = modes.add_parser("train")
    for sub in (stylize, optimize):
        sub.add_argument("--photos", type=Path, default=SHARED / "eval" / "kodak24")
        sub.add_argument("--count", type=int, default=8 if sub is stylize else 2)
    for sub in (stylize, optimize, train):
        sub.add_argument("--style", type=Path, default=SHARED / "styles" / "starry_night.jpg",
                         help="the painting (stylize: for models that take any painting)")
    for sub in (optimize, train):
        sub.add_argument("--size", type=int, default=256 if sub is optimize else 128)
        sub.add_argument("--steps", default="50,300" if sub is optimize else 300,
                         type=str if sub is optimize else int)
    train.add_argument("--seeds", default="1,2")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "starry_night.yaml"))
    train.add_argument("--data", type=Path, default=SHARED / "train256")
    train.add_argument("--work", type=Path, default=Path("runs") / "bf16_numerics")
    args = parser.parse_args(argv)
    {"stylize": stylize_numerics, "optimize": optimize_numerics, "train": train_numerics}[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
