"""``fast-style models``: list the bundled style models and their cards."""

from __future__ import annotations

import argparse
import json

HELP = ("List the bundled style models (usable as --model NAME) and the styles of multi-style ones; with MODEL, "
        "what one model is and the styles it holds.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="a bundled name or model.safetensors: show its kind and, for a multi-style model, "
                             "the names --style takes")
    parser.add_argument("--json", action="store_true", help="print the model cards as JSON")


def main(args: argparse.Namespace) -> int:
    from fast_style.models import bundled_models, models_dir, read_card

    if args.model is not None:
        return describe_model(args.model, args.json)
    models = bundled_models()
    if not models:
        print(f"no bundled models in {models_dir()}")
        return 1
    cards = {name: read_card(name) for name in models}
    if args.json:
        print(json.dumps(cards, indent=2))
        return 0
    print(f"{'name':<18} {'painting':<48} {'steps':>6}  path")
    for name, path in models.items():
        painting, training = (section(cards[name], key) for key in ("painting", "training"))
        title = f"{painting.get('title', '?')}, {painting.get('artist', '?')} ({painting.get('year', '?')})"
        if isinstance(cards[name].get("styles"), list):
            title = f"{len(cards[name]['styles'])} paintings in one network (--style NAME, or a mix a=0.7,b=0.3)"
        print(f"{name:<18} {title[:48]:<48} {str(training.get('steps', '?'))[:6]:>6}  {path}")
        for style in (item for item in cards[name].get("styles") or [] if isinstance(item, dict)):
            painting = section(style, "painting")
            print(f"  --style {str(style.get('name', '?')):<26} {painting.get('title', '?')}, "
                  f"{painting.get('artist', '?')} ({painting.get('year', '?')})")
    return 0


def describe_model(model: str, as_json: bool) -> int:
    """One model's kind and the styles --style takes (a multi-style model's, in row order)."""
    from fast_style.checkpoint import read_model
    from fast_style.models import resolve_model_path

    path = resolve_model_path(model)
    network, metadata = read_model(path)
    styles = list(getattr(network, "styles", []))
    architecture = network.config.architecture
    if as_json:
        print(json.dumps({"model": str(path), "architecture": architecture, "styles": styles}, indent=2))
        return 0
    from fast_style.networks import kind_of

    what = "any painting (--style PAINTING)" if kind_of(network).takes_style else "one painting (no --style)"
    print(f"{path}: {architecture}, " + (f"{len(styles)} styles (--style NAME, or a mix a=0.7,b=0.3):"
                                          if styles else what))
    for name in styles:
        print(f"  {name}")
    return 0


def section(card: dict, key: str) -> dict:
    """A card's sub-mapping, or {} where a damaged card holds something else there."""
    value = card.get(key)
    return value if isinstance(value, dict) else {}
