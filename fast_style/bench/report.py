"""From timings to the bench's JSON entry: medians in the workload's unit, ratios, errors, the best path.

It is apart from the harness (which only times) and from the workloads (which only say what to run),
so that the arithmetic behind every reported ratio is in one small place, tested on its own:

* Every path's output is compared with the baseline's (relative L2 error), so a speed-up that
  changes results shows up next to it, and the "best" variant must keep results.
* JSON has no NaN or infinity: such values are written as null.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fast_style.bench.harness import Candidate, Measured, l2_relative_error

BEST_MAX_ERROR = 0.02  # a variant counts as "best" only if its relative error is at most this


@dataclass
class Workload:
    """A workload's plan: which candidates, which is the baseline and which the optimized path,
    how a timed call's seconds become the reported unit, and which variants differ only in
    precision (``{"fp32": name, "bf16": name}``, reported side by side)."""

    name: str
    unit: str  # "ms/image", "images/s" or "s"
    size: int
    batch: int
    candidates: list[Candidate]
    baseline: str
    optimized: str
    to_unit: Callable[[float], float]
    precision_variants: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)


def times_better(unit: str, baseline: float, value: float) -> float:
    """How many times faster ``value`` is than ``baseline`` (>1 is better) for a time or a rate."""
    return value / baseline if unit == "images/s" else baseline / value


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None


def summarize(workload: Workload, results: list[Measured]) -> dict[str, Any]:
    """The JSON entry of one workload: baseline, optimized, their ratio and error, every variant."""
    by_name = {measured.candidate.name: measured for measured in results}
    reference = by_name[workload.baseline].output
    variants: dict[str, dict[str, Any]] = {}
    for measured in results:
        entry: dict[str, Any] = {"settings": measured.candidate.settings}
        if measured.seconds:
            values = [workload.to_unit(seconds) for seconds in measured.seconds]
            entry.update(value=finite_or_none(statistics.median(values)), rounds=len(values),
                         spread=[finite_or_none(min(values)), finite_or_none(max(values))],
                         first_call_s=finite_or_none(measured.first_call_s),
                         relative_error=finite_or_none(l2_relative_error(measured.output, reference)))
        if measured.error:
            entry["error"] = measured.error
        variants[measured.candidate.name] = entry
    base_value = variants[workload.baseline].get("value")
    for entry in variants.values():
        if base_value and entry.get("value"):
            entry["ratio"] = finite_or_none(times_better(workload.unit, base_value, entry["value"]))
    optimized = variants[workload.optimized]
    return {"precisions": precision_figures(workload, variants), "workload": workload.name, "unit": workload.unit,
            "size": workload.size, "batch": workload.batch,
            "baseline": base_value, "optimized": optimized.get("value"), "ratio": optimized.get("ratio"),
            "relative_error": optimized.get("relative_error"), "baseline_path": workload.baseline,
            "optimized_path": workload.optimized, "best_variant": best_variant(variants), **workload.details,
            "variants": variants}


def precision_figures(workload: Workload, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """fp32 and bf16 runs of the same path side by side, with bf16's speed-up over fp32 (where both ran)."""
    pair = {precision: name for precision, name in workload.precision_variants.items() if name in variants}
    figures: dict[str, Any] = {precision: {"variant": name, "value": variants[name].get("value"),
                                           "relative_error": variants[name].get("relative_error")}
                               for precision, name in pair.items()}
    values = [figures.get(precision, {}).get("value") for precision in ("fp32", "bf16")]
    if all(values):
        figures["bf16_over_fp32"] = finite_or_none(times_better(workload.unit, values[0], values[1]))
    return figures


def best_variant(variants: dict[str, dict[str, Any]]) -> str | None:
    """The fastest variant whose output stays within BEST_MAX_ERROR of the baseline's."""
    usable = {name: entry["ratio"] for name, entry in variants.items()
              if entry.get("ratio") and (entry.get("relative_error") or 0.0) <= BEST_MAX_ERROR}
    return max(usable, key=usable.get) if usable else None
