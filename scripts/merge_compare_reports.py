"""One summary of several ``fast-style compare`` reports of the same model and settings (a run split
into chunks of photos to share the machine): per method the mean terms and seconds over every photo,
and each method's loss and time relative to a reference method. Prints one JSON document.

    python scripts/merge_compare_reports.py runs/refine_starry_night/chunk*/report.json --reference gatys-50
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fast_style.compare_report import SAME_RUN, merged_chunks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--reference", default="gatys-50", help="the method the others are divided by")
    args = parser.parse_args(argv)
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in args.reports]
    try:
        merged = merged_chunks(reports)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    means = merged["averages"]
    reference = means[args.reference]
    summary = {
        **{key: reports[0].get(key) for key in SAME_RUN}, "photos": len({row["photo"] for row in merged["results"]}),
        "reports": [str(path) for path in args.reports],
        "methods": {method: {**{key: round(value, 4) for key, value in values.items() if key != "speedup"},
                             f"loss_over_{args.reference}": round(values["loss"] / reference["loss"], 3),
                             f"seconds_over_{args.reference}": round(values["seconds"] / reference["seconds"], 3)}
                    for method, values in means.items()},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
