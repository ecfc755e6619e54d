"""`fast-style bench`: the JSON contract and the arithmetic behind its ratios (the exactness of the
inference form it shows to be faster is in test_inference.py).

No timing is asserted: CI machines are shared and slow; the bench's numbers are for people to read.
"""

from __future__ import annotations

import json
import math
import platform

import pytest
import torch

from fast_style import cli
from fast_style.bench import WORKLOADS
from fast_style.bench.harness import MIN_ROUNDS, Candidate, measure
from fast_style.bench.report import best_variant, times_better

ENTRY_KEYS = {"workload", "unit", "baseline", "optimized", "ratio", "relative_error", "size", "batch", "variants"}


@pytest.mark.slow
def test_quick_cpu_bench_prints_one_json_document_with_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    assert cli.main(["bench", "--device", "cpu", "--quick", "--threads", "1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert torch.get_num_threads() == threads, "the bench must restore the thread count it changed"
    assert document["quick"] is True and document["threads"] == 1 and document["device_type"] == "cpu"
    # Both paths ran with glibc keeping freed memory, as every fast-style command does (glibc only).
    assert document["malloc_keeps_freed_memory"] is (platform.libc_ver()[0] == "glibc")
    for key in ("device", "torch", "date", "loss_network"):
        assert document[key]
    assert set(document["cpu"]) == {"name", "amx", "avx512_bf16", "threads"} and document["cpu"]["threads"] == 1
    auto = document["precision_auto"]["precision"]
    assert auto in ("fp32", "bf16") and document["precision_auto"]["precision_reason"].startswith("auto")
    assert [entry["workload"] for entry in document["workloads"]] == list(WORKLOADS)
    for entry in document["workloads"]:
        assert ENTRY_KEYS <= set(entry), entry["workload"]
        for key in ("baseline", "optimized", "ratio", "relative_error"):
            assert isinstance(entry[key], float) and math.isfinite(entry[key]), (entry["workload"], key)
        assert entry["baseline"] > 0 and entry["optimized"] > 0 and entry["ratio"] > 0
        # fp32 paths give the baseline's results; bf16 ones stay close (images within ~1 %, losses ~2 %).
        assert entry["relative_error"] < (1e-3 if auto == "fp32" else 0.05), entry["workload"]
        figures = entry["precisions"]
        assert figures["fp32"]["value"] > 0 and figures["bf16"]["value"] > 0 and figures["bf16_over_fp32"] > 0
        assert entry["optimized_path"] == figures[auto]["variant"], "the optimized path is what auto runs"
        assert entry["baseline_path"] in entry["variants"] and entry["optimized_path"] in entry["variants"]
        assert all("error" not in variant for variant in entry["variants"].values()), entry["variants"]


def test_bench_writes_partial_results_and_rejects_unknown_workloads(tmp_path, capsys) -> None:
    output = tmp_path / "bench.json"
    assert cli.main(["bench", "--device", "cpu", "--quick", "--threads", "1", "--workloads", "stylize_512_b1",
                     "--output", str(output)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(output.read_text()) == printed
    assert [entry["workload"] for entry in printed["workloads"]] == ["stylize_512_b1"]
    assert cli.main(["bench", "--device", "cpu", "--workloads", "stylize_2048"]) == 2
    assert "unknown" in capsys.readouterr().err


@pytest.mark.parametrize("unit, baseline, value, expected", [
    ("ms/image", 2.0, 1.0, 2.0), ("s", 3.0, 6.0, 0.5), ("images/s", 200.0, 500.0, 2.5)])
def test_ratio_is_a_speedup_for_times_and_rates(unit: str, baseline: float, value: float, expected: float) -> None:
    assert times_better(unit, baseline, value) == pytest.approx(expected)


def test_best_variant_is_the_fastest_that_keeps_results() -> None:
    variants = {"plain": {"ratio": 1.0, "relative_error": 0.0},
                "wrong_but_fast": {"ratio": 9.0, "relative_error": 0.5},
                "good": {"ratio": 2.0, "relative_error": 0.001},
                "failed": {"error": "OutOfMemoryError: ..."}}
    assert best_variant(variants) == "good"


def test_a_failing_path_is_reported_and_the_others_still_run() -> None:
    def broken():
        raise RuntimeError("no kernel for this\nsecond line")

    def working():
        return (lambda: None), torch.ones(2)

    results = measure([Candidate("broken", broken), Candidate("working", working)],
                      torch.device("cpu"), budget_s=0.0, max_rounds=5)
    assert results[0].error == "RuntimeError: no kernel for this" and not results[0].seconds
    assert len(results[1].seconds) == MIN_ROUNDS and results[1].error is None
