"""Make models carry their paintings (fast_style.carried_paintings), weights untouched.

    python scripts/carry_paintings.py checkpoints/starry_night checkpoints/udnie ... \
        --styles ../shared/data/styles --licence "public domain (...)"

Only for paintings whose licence allows a copy: the bundled ones are public domain; for a model of
your own, say the licence of your painting. For each model folder: every painting its model.json
records (``style``, or each of ``styles``) is read from ``--styles`` by file name (default: the path
recorded), resized to its style size, and written into model.safetensors
beside the stored weights, which are copied as stored (same dtype, same bytes: checked before the
file is replaced); model.json keeps the old path as the record and gains the paintings' records;
card.json's painting sections say what is carried. A model for any painting (adain) carries none
and is left as it is. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fast_style.carried_paintings import carry, read_paintings, tensor_name
from fast_style.checkpoint import METADATA_KEY, load_tensors, read_json, write_json, write_model_file
from fast_style.model_file import read_header

def records_of(info: dict) -> list[dict]:
    """The painting records of a model.json: its one ``style``, or each of a multi-style model's ``styles``."""
    if isinstance(info.get("styles"), list):
        return info["styles"]
    style = info.get("style")
    return [style] if isinstance(style, dict) and style.get("image") else []


def carried_section(name: str, painting) -> dict:
    """What a card says about a carried painting."""
    return {"tensor": tensor_name(name), "width": painting.pixels.shape[-1], "height": painting.pixels.shape[-2],
            "sha256": painting.record()["sha256"], "licence": painting.licence}


def add_paintings(folder: Path, styles: Path | None, licence: str) -> dict:
    """Rewrite ``folder``'s model with its paintings carried; returns what was done."""
    path = folder / "model.safetensors"
    info = read_json(path.with_suffix(".json"))
    records = records_of(info)
    if not records:
        return {"model": str(folder), "carried": []}
    header, _ = read_header(path)
    stored, _ = load_tensors(path)
    weights = {name: value for name, value in stored.items() if not name.startswith("painting.")}
    paintings = {record["name"]: carry(styles / Path(record["image"]).name if styles else record["image"],
                                       record["size"], licence, source=record["image"]) for record in records}
    info["model"] = json.loads(header[METADATA_KEY])["model"]
    temp = folder / "model.carrying.safetensors"
    write_model_file(temp, weights, info, paintings)
    rewritten, _ = load_tensors(temp)
    for name, value in weights.items():  # the weights must come back bit for bit
        if rewritten[name].dtype != value.dtype or not torch.equal(rewritten[name].view(torch.uint8),
                                                                   value.view(torch.uint8)):
            raise SystemExit(f"{temp}: weight {name} changed; not replacing {path}")
    if {name: p.pixels.shape for name, p in read_paintings(temp).items()} != \
            {name: p.pixels.shape for name, p in paintings.items()}:
        raise SystemExit(f"{temp}: the paintings did not come back; not replacing {path}")
    temp.replace(path)
    temp.with_suffix(".json").replace(path.with_suffix(".json"))
    update_card(folder / "card.json", paintings)
    return {"model": str(folder), "carried": {name: list(p.pixels.shape) for name, p in paintings.items()},
            "bytes": path.stat().st_size}


def update_card(card_path: Path, paintings: dict) -> None:
    """The card's painting section (one painting) or each style's (multi-style) says what is carried."""
    card = read_json(card_path)
    if "styles" in card:
        for style in card["styles"]:
            style["painting"]["carried"] = carried_section(style["name"], paintings[style["name"]])
    else:
        (name, painting), = paintings.items()
        card["painting"]["carried"] = carried_section(name, painting)
    write_json(card_path, card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="bundled model folders (checkpoints/NAME)")
    parser.add_argument("--styles", type=Path, help="the folder holding the paintings (default: their recorded paths)")
    parser.add_argument("--licence", required=True, help="the paintings' licence, recorded beside each")
    args = parser.parse_args()
    for folder in args.folders:
        print(json.dumps(add_paintings(folder, args.styles, args.licence)))


if __name__ == "__main__":
    main()
