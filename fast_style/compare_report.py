"""``compare``'s report in the forms people read it: averages, the terminal table, the HTML page, the files.

Kept apart from the measuring (:mod:`fast_style.compare`) so that how results are summarised and
shown can change without touching how they are obtained; everything here works on the report's
plain numbers, never on tensors or models.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from fast_style.images import atomic_write_bytes
from fast_style.pictures import png_bytes

REPORT_FILES = ("report.json", "grid.png", "report.html")  # what compare writes at the top of --output
TERMS = ("loss", "content", "style", "tv")
TABLE_HEADER = ["photo", "method", "loss", "content", "style", "tv", "time", "network faster"]


def times_faster(seconds: float, network_seconds: float) -> float | None:
    """How many times faster the network was (None where its time is too small to divide by)."""
    return seconds / network_seconds if network_seconds > 0 else None


def average(results: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Mean of every term and of the time per method; speed-up is the ratio of mean times."""
    means = {}
    for method in methods:
        rows = [row for row in results if row["method"] == method]
        means[method] = {key: sum(row[key] for row in rows) / len(rows) for key in (*TERMS, "seconds")}
    for method in methods:
        means[method]["speedup"] = times_faster(means[method]["seconds"], means["network"]["seconds"])
    return means


# What the chunks of one compare run (photos split to share a machine) agree on.
SAME_RUN = ("model", "size", "steps", "refine", "optimizer", "device", "precision", "style")


def merged_chunks(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report of a compare run split into chunks of photos: the first chunk's settings, every chunk's
    photos and results, averages over all; chunks that differ in a setting of :data:`SAME_RUN` raise ValueError."""
    for key in SAME_RUN:
        values = {json.dumps(report.get(key), sort_keys=True) for report in reports}
        if len(values) > 1:
            raise ValueError(f"the reports differ in {key!r}: {sorted(values)}; merge only chunks of one run")
    results = [row for report in reports for row in report["results"]]
    methods = list(dict.fromkeys(row["method"] for row in results))
    return {**reports[0], "photos": [photo for report in reports for photo in report.get("photos", [])],
            "results": results, "averages": average(results, methods)}


def cell_label(result: dict[str, Any]) -> str:
    """What a grid cell says under a result: its loss and how long it took."""
    return f"loss {result['loss']:#.4g} | {format_seconds(result['seconds'])}"


def format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def write_report(report: dict[str, Any], grid: Image.Image, output: Path) -> None:
    """report.json, grid.png and the self-contained report.html, each written atomically."""
    grid_png = png_bytes(grid)
    atomic_write_bytes(output / "report.json", (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(output / "grid.png", grid_png)
    atomic_write_bytes(output / "report.html", render_html(report, grid_png).encode("utf-8"))


# ----------------------------------------------------------------------------- the table


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Per photo then on average: method, every term, time and speed-up, as display strings."""
    def cells(photo: str, method: str, values: dict[str, Any]) -> list[str]:
        faster = values["speedup"]
        return [photo, method, *[f"{values[key]:#.4g}" for key in TERMS], format_seconds(values["seconds"]),
                "" if method == "network" or faster is None else f"{faster:.3g}x"]

    rows = [cells(Path(row["photo"]).name, row["method"], row) for row in report["results"]]
    rows += [cells("average", method, values) for method, values in report["averages"].items()]
    return rows


def format_table(report: dict[str, Any]) -> str:
    """The report as aligned plain text for the terminal: text left, numbers right."""
    rows = [TABLE_HEADER, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.average td { font-weight: bold; background: #f4f4f4; }
img { max-width: 100%; }
"""


def render_html(report: dict[str, Any], grid_png: bytes) -> str:
    """One page that opens offline: settings, the table, and the grid embedded as a PNG."""
    def row_html(cells: list[str], average_row: bool) -> str:
        tds = "".join(f'<td class="num">{html.escape(c)}</td>' if i >= 2 else f"<td>{html.escape(c)}</td>"
                      for i, c in enumerate(cells))
        return f'<tr class="average">{tds}</tr>' if average_row else f"<tr>{tds}</tr>"

    head = "".join(f"<th>{html.escape(name)}</th>" for name in TABLE_HEADER)
    body = "\n".join(row_html(cells, cells[0] == "average") for cells in table_rows(report))
    weights = report["loss"]
    settings = " &middot; ".join(html.escape(part) for part in (
        f"model {report['model']}", f"painting {report['style']['image']} at {report['style']['size']} px",
        f"photos at {report['size']} px", f"{report['optimizer']} on {report['device']}",
        f"weights: content {weights['content_weight']:g}, style {weights['style_weight']:g}, "
        f"tv {weights['tv_weight']:g}"))
    grid = base64.b64encode(grid_png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fast-style compare</title>
<style>{HTML_STYLE}</style></head>
<body>
<h1>Network vs Gatys optimisation</h1>
<p>{settings}</p>
<p>Every result is scored with the loss the network was trained with, on the 8-bit image as written.
"network faster" is the optimisation's time divided by the network's; a network+N row is the network's
picture refined by N optimisation steps, its time the network's plus the steps'.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
<img alt="photo, painting, network and Gatys results per photo" src="data:image/png;base64,{grid}">
</body></html>
"""
