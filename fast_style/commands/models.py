"""``fast-style models``: list the bundled style models and their cards."""

from __future__ import annotations

import argparse
import json

HELP = "List the bundled style models (usable as --model NAME)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the model cards as JSON")


def main(args: argparse.Namespace) -> int:
    from fast_style.models import bundled_models, models_dir, read_card

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
        print(f"{name:<18} {title[:48]:<48} {str(training.get('steps', '?'))[:6]:>6}  {path}")
    return 0


def section(card: dict, key: str) -> dict:
    """A card's sub-mapping, or {} where a damaged card holds something else there."""
    value = card.get(key)
    return value if isinstance(value, dict) else {}
