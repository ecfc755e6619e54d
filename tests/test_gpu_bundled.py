"""scripts/gpu_bundled.py: the one-command GPU retraining, run end to end in its CPU dry-run mode."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from script_loader import load_script


@pytest.mark.slow
def test_dry_run_trains_compares_and_packs_few_small_files(shared_data: Path, tmp_path: Path) -> None:
    script = load_script("gpu_bundled")
    output = tmp_path / "out"
    code = script.main(["--output", str(output), "--work", str(tmp_path / "work"), "--dry-run",
                        "--models", "wave,udnie", "--photos-count", "1",
                        "--styles", str(shared_data / "styles"), "--data", str(shared_data / "coco_sample" / "val2017"),
                        "--photos", str(shared_data / "eval" / "kodak24")])
    assert code == 0
    files = sorted(path.name for path in output.iterdir())
    assert files == ["summary.json", "udnie.tar.gz", "wave.tar.gz"]
    assert all(path.stat().st_size < 16 * 2**20 for path in output.iterdir())
    summary = json.loads((output / "summary.json").read_text())
    for name in ("wave", "udnie"):
        entry = summary["models"][name]
        assert entry["train_exit"] == 0 and entry["compare_exit"] == 0 and entry["images_seen"] == 4
        assert entry["network_over_gatys_50"] > 0
        with tarfile.open(output / f"{name}.tar.gz") as archive:
            names = set(archive.getnames())
        assert {f"{name}/model.safetensors", f"{name}/model.json", f"{name}/report.json"} <= names
