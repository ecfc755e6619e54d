"""``fast-style train``: train a network: one painting per network, or (architecture: adain) any painting."""

from __future__ import annotations

import argparse

HELP = ("Train a fast style network for one painting (Johnson et al. 2016), or a decoder for any painting "
        "(architecture=adain, configs/adain.yaml); resumable.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML config, e.g. configs/starry_night.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint (same as resume=true)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. style_image=painting.jpg data.folder=photos/ steps=2000")


def main(args: argparse.Namespace) -> int:
    from fast_style.commands.common import write_resolved_config
    from fast_style.config import load_config
    from fast_style.errors import FastStyleError
    from fast_style.train import TrainConfig, Trainer

    config = load_config(TrainConfig, args.config, args.overrides, {"resume": True if args.resume else None})
    trainer = Trainer(config)
    if trainer.dist.main:
        try:
            trainer.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FastStyleError(f"output_dir={trainer.output_dir}: cannot create it ({error.strerror}); "
                                 "choose another output_dir") from None
        write_resolved_config(config, trainer.output_dir / "config.yaml")
    try:
        path = trainer.run()
    finally:
        if trainer.dist.world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()
    if trainer.dist.main:
        from fast_style.networks import get_kind

        style = " --style PAINTING" if get_kind(config.architecture).takes_style else ""
        print(f"wrote {path} (and {path.with_suffix('.json').name}) after {trainer.step} steps; "
              f"stylize with: fast-style stylize --model {path}{style} PHOTO")
    return 0
