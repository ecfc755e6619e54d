"""scripts/merge_compare_reports.py: chunks of one compare run summed up as one table (docs/refine.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_loader import load_script


def report(path: Path, photo: str, network: float, gatys: float, size: int = 256) -> Path:
    rows = [{"photo": photo, "method": method, "loss": loss, "content": loss / 2, "style": loss / 4, "tv": loss / 4,
             "seconds": seconds} for method, loss, seconds in (("network", network, 0.5), ("gatys-50", gatys, 50.0))]
    path.mkdir()
    (path / "report.json").write_text(json.dumps({"model": "m", "size": size, "steps": [50], "refine": [],
                                                  "results": rows}))
    return path / "report.json"


def test_means_over_every_photo_of_every_chunk_relative_to_the_reference(tmp_path, capsys):
    reports = [report(tmp_path / "a", "p1.png", 3.0, 1.0), report(tmp_path / "b", "p2.png", 1.0, 1.0)]
    load_script("merge_compare_reports").main([str(path) for path in reports])
    summary = json.loads(capsys.readouterr().out)
    assert summary["photos"] == 2
    assert summary["methods"]["network"]["loss"] == 2.0
    assert summary["methods"]["network"]["loss_over_gatys-50"] == 2.0
    assert summary["methods"]["network"]["seconds_over_gatys-50"] == 0.01


def test_chunks_of_different_runs_are_refused(tmp_path):
    reports = [report(tmp_path / "a", "p1.png", 3.0, 1.0), report(tmp_path / "b", "p2.png", 1.0, 1.0, size=512)]
    with pytest.raises(SystemExit, match="differ in 'size'"):
        load_script("merge_compare_reports").main([str(path) for path in reports])
