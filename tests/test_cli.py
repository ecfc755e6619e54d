"""Tests for the ``fast-style`` command: instant help, one-line errors, and a real optimize run.

Subprocesses check what a user sees (exit status, stderr, no traceback, start-up time); the
end-to-end run goes through ``cli.main`` in-process so the test fixtures keep weights offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fast_style import cli
from fast_style.config import load_config
from fast_style.images import load_image
from fast_style.optimize import OptimizeConfig


def fast_style(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the installed ``fast-style ARGS`` as a user would; returns the result and seconds taken."""
    command = shutil.which("fast-style")
    if command is None:
        pytest.skip("the fast-style console script is not on PATH (pip install -e . first)")
    started = time.perf_counter()
    result = subprocess.run([command, *args], capture_output=True, text=True, timeout=60)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("args, expected", [((), "optimize"), (("optimize",), "--content")])
def test_help_is_quick_and_complete(args: tuple[str, ...], expected: str) -> None:
    """``--help`` exits 0 without importing torch (seconds, not the ~10 s torch costs on slow disks)."""
    result, seconds = fast_style(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout and result.stderr == ""
    assert seconds < 10


def test_help_does_not_import_torch() -> None:
    """Building every subcommand's parser stays free of torch, which is what keeps help instant."""
    code = ("import sys; from fast_style.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_bad_config_is_one_line_on_stderr(tmp_path: Path) -> None:
    """A config error exits 2 with a short message naming the file and key, never a traceback."""
    config = tmp_path / "bad.yaml"
    config.write_text("steps: -3\n", encoding="utf-8")
    result, _ = fast_style("optimize", "--config", str(config), "--content", "a.png", "--style", "b.jpg",
                           "--output", str(tmp_path / "out.png"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in result.stderr
    assert lines[-1].startswith("fast-style optimize: error:") and "'steps'" in lines[-1] and str(config) in lines[-1]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("args, words", [
    (["stpes=3"], ["unknown key 'stpes'"]),
    (["steps"], ["'steps'", "key=value"]),
    (["--pyramid", "32,x"], ["--pyramid", "integers"]),
    ([], ["--output"]),
])
def test_user_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture, args: list[str], words: list[str]) -> None:
    """Bad overrides, flags or a missing --output are caught before any work, as one stderr line."""
    status = cli.main(["optimize", "--content", "a.png", "--style", "b.jpg", *args])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("fast-style optimize: error:")
    assert all(word in err for word in words), err


def test_missing_photo_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path, shared_data: Path) -> None:
    """A photo that does not exist is named (after the weights load), still without a traceback."""
    missing = tmp_path / "nope.png"
    painting = shared_data / "styles" / "starry_night.jpg"
    status = cli.main(["optimize", "--content", str(missing), "--style", str(painting),
                       "--output", str(tmp_path / "out.png"), "--size", "32", "--steps", "1"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and str(missing) in err and "not found" in err


def test_optimize_writes_the_image_and_its_resolved_config(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                           shared_data: Path) -> None:
    """End to end: a 32 px run writes the PNG at the right size and a config that reproduces the run."""
    output = tmp_path / "out.png"
    status = cli.main(["optimize", "--content", str(shared_data / "eval" / "kodak24" / "kodim23.png"),
                       "--style", str(shared_data / "styles" / "starry_night.jpg"), "--output", str(output),
                       "--size", "32", "--steps", "2", "--optimizer", "adam", "loss.tv_weight=5"])
    assert status == 0
    assert capsys.readouterr().out.startswith(f"wrote {output} (32x21)")
    assert load_image(output).shape == (3, 21, 32)
    resolved = load_config(OptimizeConfig, tmp_path / "out.config.yaml")
    assert (resolved.size, resolved.steps, resolved.optimizer, resolved.loss.tv_weight) == (32, 2, "adam", 5.0)
    assert resolved.output == str(output)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """The README's second set-up line is the one CI runs, so a fresh clone can trust it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    setup = (root / "README.md").read_text().split("## Set-up: two commands", 1)[1].split("```")[1]
    test_line = setup.strip().splitlines()[2].split("#")[0].strip()
    assert "pytest" in test_line and "install" in test_line, "the line installs what the tests need, then runs them"
    assert test_line in (root / ".ci" / "run").read_text().splitlines()
