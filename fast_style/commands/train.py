"""``fast-style train``: train a network: one painting per network, or (architecture: adain) any painting."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fast_style.training.trainer import TrainConfig, Trainer

HELP = ("Train a fast style network for one painting (Johnson et al. 2016), or a decoder for any painting "
        "(architecture=adain, configs/adain.yaml); resumable.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config, e.g. configs/starry_night.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint (same as resume=true)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in an output_dir holding another run's model or checkpoints (same as "
                             "overwrite=true)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. style_image=painting.jpg data.folder=photos/ steps=2000")


def main(args: argparse.Namespace) -> int:
    from fast_style.config import load_config
    from fast_style.training.distributed import shutdown
    from fast_style.training.trainer import TrainConfig, Trainer

    flags = {"resume": True if args.resume else None, "overwrite": True if args.overwrite else None}
    config = load_config(TrainConfig, args.config, args.overrides, flags)
    try:
        trainer = Trainer(config)
        path = train(trainer, config, args.config)
    finally:
        shutdown()  # leave the torchrun process group (if this process joined one), finished or failed
    if trainer.dist.main:
        from fast_style.networks import get_kind

        kind = get_kind(trainer.config.architecture)
        style, styles = " --style PAINTING" if kind.takes_style else "", ""
        if hasattr(kind, "style_names"):  # several paintings, chosen by name
            names = kind.style_names(trainer.task.model)
            style, styles = f" --style {names[0]}", f" (styles: {', '.join(names)}; mix them as a=0.7,b=0.3)"
        print(f"wrote {path} (and {path.with_suffix('.json').name}) after {trainer.step} steps; "
              f"stylize with: fast-style stylize --model {path}{style} PHOTO{styles}")
    return 0


def train(trainer: Trainer, config: TrainConfig, config_file: str | None) -> Path:
    """Check the output_dir, record ``config`` (as given: precision ``auto`` stays auto) there on rank 0,
    and train; a run that fails before applying a single step leaves the output_dir as it found it."""
    from fast_style.commands.common import write_resolved_config
    from fast_style.errors import FastStyleError
    from fast_style.safety import same_file

    trainer.check_output_dir()  # before anything is written
    before = set(trainer.output_dir.iterdir()) if trainer.output_dir.is_dir() else None
    if trainer.dist.main:
        try:
            trainer.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FastStyleError(f"output_dir={trainer.output_dir}: cannot create it ({error.strerror}); "
                                 "choose another output_dir") from None
        if not (config_file and same_file(config_file, trainer.output_dir / "config.yaml")):
            write_resolved_config(config, trainer.output_dir / "config.yaml")  # never over the --config read
    try:
        return trainer.run()
    except FastStyleError:
        if trainer.dist.main and trainer.good_steps == 0:
            discard_failed_start(trainer.output_dir, before)
        raise


def discard_failed_start(output_dir: Path, before: set[Path] | None) -> None:
    """A run that failed before training anything leaves nothing behind: the files it
    added (config.yaml, a TensorBoard event file) go, and the output_dir too if this run created it."""
    if (output_dir / "model.safetensors").exists() or any((output_dir / "checkpoints").glob("step_*")):
        return
    for path in set(output_dir.iterdir()) - (before or set()):
        if path.is_file() and (path.name == "config.yaml" or path.name.startswith("events.out.tfevents.")):
            path.unlink(missing_ok=True)
        elif path.is_dir() and path.name == "checkpoints" and not any(path.iterdir()):
            path.rmdir()
    if before is None and not any(output_dir.iterdir()):
        output_dir.rmdir()
