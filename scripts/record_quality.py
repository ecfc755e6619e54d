"""Record a `fast-style compare` report in a bundled model's card (its "quality" entry).

    fast-style compare --model wave --style ../shared/data/styles/wave.jpg \
        ../shared/data/eval/kodak24/*.png --size 512 --steps 50,100,300 --output runs/compare_wave
    python scripts/record_quality.py runs/compare_wave/report.json --note "512 px, all 24 Kodak photos"

A run split into chunks of photos (to share the machine) is recorded as one: give every chunk's report
(the same model and settings), and ``--name`` when the compared file is a run's model bundled since:

    python scripts/record_quality.py runs/cmp/chunk_A/report.json runs/cmp/chunk_B/report.json \
        --name starry_night --note "..."

Refinement rows (``compare --refine``) are kept beside the network's: ``network_plus_N_over_gatys_50``.

The quality bar of the bundled models (issue 9): on average over the photos, the network's loss on
its own training objective is below that of 50 iterations of the range-respecting Gatys
optimisation. The card keeps the command, the photos, the averages and whether the bar is met, so
the claim can be re-run.

A model that takes any painting (``arbitrary``) is measured per painting, for paintings it saw
and paintings held out of its training (issue 18's bar: held-out network/Gatys-50 <= 2.0):

    python scripts/record_quality.py runs/compare_arbitrary_udnie/report.json --group seen --note "..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fast_style.checkpoint import write_json
from fast_style.compare_report import merged_chunks

ROOT = Path(__file__).resolve().parents[1]
TERMS = ("loss", "content", "style", "tv")
GROUPS = ("seen", "held_out")
HELD_OUT_BAR = 2.0  # issue 18's first bar for paintings not in training (the goal is 1.5)


def quality_entry(report: dict, note: str) -> dict:
    """The card's "quality" entry for one compare report."""
    averages = report["averages"]
    budgets = [name for name in averages if name.startswith("gatys-")]
    refined = [name for name in averages if name.startswith("network+")]
    refine = [f"--refine {','.join(map(str, report['refine']))}"] if report.get("refine") else []
    command = ["fast-style compare", f"--model {report['model']}", f"--style {report['style']['image']}",
               *report["photos"], f"--size {report['size']}", f"--steps {','.join(map(str, report['steps']))}",
               *refine, f"--device {report['device']}"]
    entry = {
        "command": " ".join(command),
        "photos": [Path(photo).name for photo in report["photos"]],
        "size": report["size"],
        "average_loss": {name: {term: round(averages[name][term], 4) for term in TERMS}
                         for name in ["network", *refined, *budgets]},
    }
    for name in budgets:
        steps = name.split("-")[1]
        entry[f"network_over_gatys_{steps}"] = round(averages["network"]["loss"] / averages[name]["loss"], 2)
    if "gatys-50" in averages:
        for name in refined:
            steps = name.split("+")[1]
            entry[f"network_plus_{steps}_over_gatys_50"] = round(averages[name]["loss"] / averages["gatys-50"]["loss"], 3)
            entry[f"network_plus_{steps}_seconds_over_gatys_50"] = round(
                averages[name]["seconds"] / averages["gatys-50"]["seconds"], 2)
    entry["bar_met"] = averages["network"]["loss"] < averages["gatys-50"]["loss"] if "gatys-50" in averages else None
    entry["note"] = note
    return entry


def merged(reports: list[dict], name: str | None) -> dict:
    """One report of a compare run split into chunks (see :func:`merged_chunks`), recorded under ``name``."""
    try:
        report = merged_chunks(reports)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    return {**report, "model": name or report["model"]}


def record_group(quality: dict, group: str, report: dict, note: str) -> dict:
    """Add one painting's report to ``quality[group]`` and refresh the per-group mean ratios and the bar."""
    quality.setdefault(group, {})[Path(report["style"]["image"]).stem] = quality_entry(report, note)
    for name in GROUPS:
        ratios = [entry["network_over_gatys_50"] for entry in quality.get(name, {}).values()]
        if ratios:
            quality[f"network_over_gatys_50_{name}"] = round(sum(ratios) / len(ratios), 2)
    held_out = quality.get("network_over_gatys_50_held_out")
    quality["bar"] = f"held-out paintings: network/Gatys-50 <= {HELD_OUT_BAR} (goal 1.5)"
    quality["bar_met"] = held_out is not None and held_out <= HELD_OUT_BAR
    return quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, nargs="+", help="report.json written by fast-style compare (several: "
                        "the chunks of one run)")
    parser.add_argument("--name", help="the bundled model whose card records it (default: the report's model)")
    parser.add_argument("--note", required=True, help="where and how it was measured, in words")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--group", choices=GROUPS, help="for a model that takes any painting: whether the "
                        "painting was seen in training or held out")
    args = parser.parse_args()
    report = merged([json.loads(path.read_text()) for path in args.report], args.name)
    card_path = args.checkpoints / report["model"] / "card.json"
    card = json.loads(card_path.read_text())
    if args.group:
        card["quality"] = record_group(card.get("quality", {}), args.group, report, args.note)
    else:
        card["quality"] = quality_entry(report, args.note)
    write_json(card_path, card)
    print(json.dumps(card["quality"], indent=1))


if __name__ == "__main__":
    main()
