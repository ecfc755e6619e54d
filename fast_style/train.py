"""Training any kind of network: Johnson et al.'s (one per painting) or the adain decoder (any painting).

The network is trained against the frozen loss network with the same
:class:`~fast_style.losses.PerceptualLoss` that scores Gatys optimisation, so the two are
comparable by construction. Each kind (``architecture``, :mod:`fast_style.networks`) brings its
own step, forward + loss, validation and model-file metadata (``kind.training(...)``); the loop
is shared. The loop is small; what makes it dependable lives around it:

* checkpoints every N steps (atomic, verified on load, last K kept) hold everything a run
  needs to continue exactly, and ``resume: auto`` picks up the newest intact one;
* a non-finite loss skips the step and, after ``max_bad_steps`` in a row, stops the run
  with its last good checkpoint; Ctrl-C writes a checkpoint and exits cleanly;
* under ``torchrun`` it trains with DistributedDataParallel; rank 0 alone logs and writes.
"""

from __future__ import annotations

import math
import os
import signal
import time
import typing
from dataclasses import dataclass, is_dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fast_style.checkpoint import read_json, save_model
from fast_style.config import nested, non_negative, positive, side, to_dict
from fast_style.data import (DataConfig, PhotoDataset, StepBatchSampler, collate, resize_crop, split_validation,
                             training_paths)
from fast_style.errors import FastStyleError, naming, show
from fast_style.images import ImageError
from fast_style.losses import LossConfig
from fast_style.networks import get_kind
from fast_style.networks.adain_training import AdaINTrainConfig
from fast_style.networks.multi_style_training import StyleAssignment, StylePainting
from fast_style.precision import autocast, resolve_precision
from fast_style.runtime import Device, progress, resolve_device, seed_everything
from fast_style.safety import check_creatable, refuse_non_regular, same_file
from fast_style.train_state import TrainState, discard, latest_checkpoint, load_state, save_state
from fast_style.transformer import ModelConfig


@dataclass
class ValidationConfig:
    """Held-out photos scored (and shown in TensorBoard) every ``every`` steps."""

    every: int = non_negative(500)  # 0: only at the end
    size: int = side(256)


@dataclass
class TrainConfig:
    """Everything ``fast-style train`` needs; every key can be overridden as key=value."""

    # the kind of network (fast_style.networks): johnson2016, johnson2016_multi (implied by style_images) or adain
    architecture: str = "johnson2016"
    style_image: str | None = None  # johnson2016: the one painting
    # johnson2016_multi: several paintings in one network, each a path or {image, size, style_weight}
    style_images: list[str | StylePainting] | None = None
    init_from: str | None = None  # johnson2016_multi: a trained model (path or bundled name) to add paintings to
    trainable: Literal["all", "norm"] = "all"  # norm: train only the style_images paintings' norm rows
    style_assignment: StyleAssignment = "per_image"  # johnson2016_multi: which painting each image is trained with
    style_folder: str | None = None  # adain: a folder of paintings (searched recursively)
    style_size: int = side(512)  # the painting's longer side in pixels when its Gram targets are taken
    output_dir: str = "runs/style"
    image_size: int = side(256)
    batch_size: int = positive(4)
    steps: int = positive(40000)
    # Stop at the first logged step after this many minutes (0: no limit) and write the model as at
    # the end: a run sized by the time a machine is lent for rather than by a guessed step count.
    time_limit_minutes: float = non_negative(0.0)
    lr: float = positive(1e-3)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    seed: int = 0
    device: Device = "auto"
    # auto: bf16 where the hardware has native bf16 maths (CUDA GPUs, CPUs with AMX-BF16 or
    # AVX512-BF16), fp32 elsewhere; see fast_style.precision
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    checkpoint_every: int = non_negative(1000)
    keep_checkpoints: int = positive(3)
    resume: Literal[True, False, "auto"] = "auto"
    overwrite: bool = False  # start over in an output_dir that holds another run's model or checkpoints
    log_every: int = positive(50)
    max_bad_steps: int = positive(10)
    model: ModelConfig = nested(ModelConfig)
    adain: AdaINTrainConfig = nested(AdaINTrainConfig)
    loss: LossConfig = nested(LossConfig)
    data: DataConfig = nested(DataConfig)
    validation: ValidationConfig = nested(ValidationConfig)


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Distributed:
    """Join the torchrun process group if launched under torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    info = Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    return info


PROGRESS_LINE_EVERY_S = 30.0  # a log line at most this often when the progress bar is hidden


def duration(seconds: float) -> str:
    """``2 h 13 min``, ``4 min 05 s``, ``12 s``: a remaining time to read at a glance."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def learning_rate(config: TrainConfig, step: int) -> float:
    """Constant, or cosine decay to 1 % of ``lr`` over the run."""
    if config.lr_schedule == "constant":
        return config.lr
    progress_fraction = min(step / max(config.steps, 1), 1.0)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress_fraction)))


def training_architecture(config: TrainConfig) -> str:
    """The kind of network a config trains: ``style_images`` (several paintings) means johnson2016_multi."""
    if config.style_images is not None and config.architecture == "johnson2016":
        return "johnson2016_multi"
    if config.architecture != "johnson2016_multi" and (config.init_from or config.trainable != "all"):
        raise FastStyleError("init_from and trainable=norm add paintings to a multi-style network: list the new "
                             "paintings in style_images=[a.jpg, ...]")
    return config.architecture


class Trainer:
    """Owns the model, loss, optimiser and data of one run; ``run()`` trains to ``steps``."""

    def __init__(self, config: TrainConfig):
        config = replace(config, architecture=training_architecture(config))
        kind = get_kind(config.architecture)
        self.dist = init_distributed(config.device)
        self.device = resolve_device(config.device)
        if self.dist.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        # The resolved precision is what checkpoints, model files and TensorBoard record.
        self.precision = resolve_precision(config.precision, self.device, flag="precision")
        self.config = config = replace(config, precision=self.precision.name)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        seed_everything(config.seed)
        self.output_dir = Path(config.output_dir)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        # The kind's own step (forward + loss, validation, model-file metadata); the loop below is shared.
        # Its loss network runs in config.precision (resolved above).
        self.task = kind.training(config, self.device, self.memory_format)
        self.model, self.loss = self.task.model, self.task.loss
        trainable = getattr(self.task, "trainable_parameters", self.model.parameters)
        self.optimizer = torch.optim.Adam(trainable(), lr=config.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        paths, validation = split_validation(training_paths(config.data), config.data)
        self.train_set = PhotoDataset(paths, config.image_size, preload=config.data.preload)
        self.skipped_files: list[str] = []
        held_out, self.validation_paths = [], []
        for path in validation:  # an unreadable held-out photo is skipped like a training one
            try:
                held_out.append(resize_crop(path, config.validation.size, None))
                self.validation_paths.append(str(path))
            except ImageError as error:
                if self.dist.main:
                    print(f"fast-style train: warning: skipped validation photo {error}", flush=True)
                self.skipped_files.append(str(error))
        self.validation = torch.stack(held_out) if held_out else None
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.bad_steps = 0
        self.stopped_by_time_limit = False
        self.good_steps = 0  # steps this process applied (a failed run with none leaves nothing behind)
        self.network = self.model
        if self.dist.world > 1:
            self.network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(self.network) if config.compile else self.network
        # compile covers the loss network too: on GPUs that is most of a step (docs/performance.md).
        self.compiled_loss = torch.compile(self.loss) if config.compile else None

    # ------------------------------------------------------------------ state

    def state(self) -> TrainState:
        return TrainState(step=self.step, model=self.model, optimizer=self.optimizer, scaler=self.scaler,
                          history=self.history, config=to_dict(self.config), skipped_files=self.skipped_files)

    @cached_property
    def resume_point(self) -> Path | None:
        """The checkpoint this run continues from, or None to start from scratch; checked before anything
        is written, so a refused start leaves the output_dir as it was.

        Refuses to resume a run whose recorded painting, loss, sizes or network differ from this
        config (the two would be mixed silently), and to start over where an earlier run left a model
        or checkpoints, unless ``overwrite`` (``resume: false`` with ``overwrite: true`` discards them).
        """
        folder = self.output_dir / "checkpoints"
        check_creatable(self.output_dir, "output_dir")
        for name in ("model.safetensors", "model.json", "config.yaml"):  # never a FIFO, device or folder
            refuse_non_regular(self.output_dir / name, "output_dir")
        found = None if self.config.resume is False else latest_checkpoint(folder)
        if found is not None:
            check_same_run(found, to_dict(self.config), self.output_dir)
            return found
        if self.config.resume is True:
            raise FastStyleError(f"resume=true but {folder} holds no intact checkpoint; "
                                 "use resume=auto or resume=false")
        earlier = [path for path in (self.output_dir / "model.safetensors", folder) if path.exists()
                   and (path.is_file() or any(path.glob("step_*")))]
        if earlier and not self.config.overwrite:
            raise FastStyleError(f"output_dir={self.output_dir}: holds an earlier run ({earlier[0]}) that this run "
                                 "would replace; choose another output_dir, or pass overwrite=true to start over")
        if earlier and self.dist.main:
            for old in sorted(folder.glob("step_*")):  # or a later resume would mix the two runs
                discard(old)
        return None

    def check_output_dir(self) -> Path | None:
        """Refuse a run that would mix with or replace another (see :attr:`resume_point`); returns the
        checkpoint it will resume from."""
        return self.resume_point

    def restore(self) -> Path | None:
        """Continue from the newest intact checkpoint when ``resume`` allows it."""
        found = self.resume_point
        if found is None:
            return None
        loaded = load_state(found, self.model, self.optimizer, self.scaler, self.device)
        self.step, self.history, self.skipped_files = loaded.step, loaded.history, loaded.skipped_files
        return found

    def checkpoint(self) -> None:
        """Write a checkpoint (rank 0); a failed write keeps the previous one and says so."""
        if not self.dist.main:
            return
        folder = self.output_dir / "checkpoints"
        previous = max(folder.glob("step_*"), default=None) if folder.is_dir() else None
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists yet"
        try:
            save_state(folder, self.state(), keep=self.config.keep_checkpoints)
        except OSError as error:
            print(f"fast-style train: warning: could not write the step {self.step} checkpoint ({error}); "
                  f"{kept}", flush=True)
        except FastStyleError as error:
            print(f"fast-style train: warning: could not write the step {self.step} checkpoint ({error}); "
                  f"{kept}", flush=True)

    # ------------------------------------------------------------------ steps

    def batch_files(self, step: int) -> list[str]:
        """The photos of global batch ``step`` (0-based): what a warning about that step names."""
        sampler = StepBatchSampler(len(self.train_set), self.config.batch_size, self.config.seed, step, step + 1)
        return [str(self.train_set.paths[index]) for index, _ in next(iter(sampler))]

    def loader(self, start: int) -> torch.utils.data.DataLoader:
        sampler = StepBatchSampler(len(self.train_set), self.config.batch_size, self.config.seed, start,
                                   self.config.steps, self.dist.rank, self.dist.world)
        workers = 0 if self.train_set.preloaded is not None else self.config.data.workers
        return torch.utils.data.DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate,
                                           num_workers=workers, pin_memory=self.device.type == "cuda",
                                           persistent_workers=False, prefetch_factor=4 if workers else None)

    def forward_in_precision(self, inputs: torch.Tensor) -> torch.Tensor:
        """The trained network under autocast (bf16/fp16 maths, fp32 master weights), its output in fp32.

        Only the network: the loss network runs in its own resident precision outside autocast, so
        Grams and loss sums stay fp32 (autocast would cast their matrix products down).
        """
        with autocast(self.device, self.config.precision):
            return self.forward(inputs).float()

    def train_step(self, photos: torch.Tensor) -> torch.Tensor | None:
        """One optimiser step; returns the detached [loss, content, style, tv] on the device,
        or None when the loss was not finite (the step is then not applied).

        The finiteness check is the step's only host sync; losses are read back only when
        logged, so the GPU queue never drains for bookkeeping.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        photos = photos.to(self.device, non_blocking=True).float().div_(255)
        photos = photos.contiguous(memory_format=self.memory_format)
        score = self.loss if self.compiled_loss is None else self.compiled_loss
        terms = self.task.terms(self.forward_in_precision, score, photos, self.step).mean()
        total = terms.total
        finite = torch.isfinite(total).float()
        if self.dist.world > 1:  # every rank must agree to skip, or DDP would hang
            import torch.distributed as dist
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(finite > 0):
            return None
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return torch.stack([total, terms.content, terms.style, terms.tv]).detach()

    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], torch.Tensor] | None:
        """Loss on the held-out photos, and their stylizations for TensorBoard."""
        if self.validation is None:
            return None
        return self.task.validate(self.validation.to(self.device))

    def run(self) -> Path:
        """Train from the current step to ``steps``; returns the finished model's path."""
        resumed = self.restore()
        # Before the start line, so a Ctrl-C from then on always ends with a checkpoint.
        previous_handlers = _stop_on_signals()
        writer = self._writer()
        if self.dist.main:
            where = f"resuming from {resumed} at step {self.step}" if resumed else "starting from scratch"
            print(f"fast-style train: {len(self.train_set)} photos, {self.config.steps} steps of "
                  f"{self.config.batch_size} on {self.device} in {self.precision.name} ({self.precision.reason}); {where}",
                  flush=True)
        self.model.train()
        bar = progress(total=self.config.steps, desc="train", unit="step", disable=None if self.dist.main else True)
        bar.update(self.step)
        window: list[torch.Tensor] = []
        first_step = self.step
        started, images_seen = time.perf_counter(), 0
        last_line = started  # progress lines for logs, where the bar is hidden (stderr not a terminal)
        try:
            for photos, skipped in self.loader(self.step):
                _stop_if_requested()
                for reason in skipped:
                    if self.dist.main:
                        print(f"fast-style train: warning: skipped {reason}", flush=True)
                    self.skipped_files.append(reason)
                with naming(f"image_size={self.config.image_size}"):  # e.g. too small for the loss network
                    values = self.train_step(photos)
                if values is None:
                    self.bad_steps += 1
                    if self.dist.main:
                        print(f"fast-style train: warning: non-finite loss at step {self.step + 1} on batch "
                              f"[{', '.join(self.batch_files(self.step))}]; step skipped, weights unchanged",
                              flush=True)
                    if self.bad_steps >= self.config.max_bad_steps:
                        raise FastStyleError(
                            f"the loss was not finite for {self.bad_steps} steps in a row (step {self.step + 1}); "
                            f"stopped with the last good checkpoint in {self.output_dir / 'checkpoints'}; "
                            "lower lr or use precision=fp32")
                    # The batch is used up (step s always trains on batch s), so the run still
                    # ends at `steps` and a resumed run sees the same batches as this one.
                    self.step += 1
                    bar.update(1)
                    continue
                self.bad_steps = 0
                self.good_steps += 1
                self.step += 1
                images_seen += photos.shape[0] * self.dist.world
                window.append(values)
                bar.update(1)
                if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                    rate = images_seen / max(time.perf_counter() - started, 1e-9)
                    mean = self._log(writer, window, rate)
                    bar.set_postfix(loss=f"{mean['loss']:.4g}", img_s=f"{rate:.0f}", refresh=False)
                    window = []
                    if bar.disable and self.dist.main and time.perf_counter() - last_line >= PROGRESS_LINE_EVERY_S:
                        print(self._progress_line(mean, rate), flush=True)
                        last_line = time.perf_counter()
                    if self._time_is_up(started):
                        break
                every = self.config.validation.every
                if every and self.step % every == 0 and self.step != self.config.steps:
                    self._log_validation(writer)
                if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                    self.checkpoint()
            _stop_if_requested()
        except KeyboardInterrupt:
            self.checkpoint()
            if self.dist.main:
                print(f"fast-style train: interrupted at step {self.step}; checkpoint written, "
                      "run the same command again to resume", flush=True)
            raise
        finally:
            bar.close()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        if self.step > first_step and self.good_steps == 0:
            raise FastStyleError(f"every step of this run ({first_step + 1} to {self.step}) had a non-finite loss, so "
                                 "the network is untrained; no model written: lower lr or the loss weights")
        return self._finish(writer)

    def _time_is_up(self, started: float) -> bool:
        """Whether ``time_limit_minutes`` has passed; under DDP every rank takes rank 0's answer, so all
        stop at the same step. Asked only at logged steps (one sync there, none elsewhere)."""
        limit = self.config.time_limit_minutes
        if not limit:
            return False
        up = torch.tensor(float(time.perf_counter() - started >= 60.0 * limit), device=self.device)
        if self.dist.world > 1:
            import torch.distributed as dist
            dist.broadcast(up, src=0)
        if bool(up > 0):
            self.stopped_by_time_limit = True
            if self.dist.main:
                print(f"fast-style train: time limit of {limit:g} min reached at step {self.step}; "
                      "writing the model", flush=True)
        return self.stopped_by_time_limit

    def _progress_line(self, mean: dict[str, float], rate: float) -> str:
        """``step 1200/40000 (3%): loss 1.758 (content 0.983, style 0.607, tv 0.167), 36 images/s, about
        2 h 13 min left`` for log files, where no progress bar shows."""
        left_s = (self.config.steps - self.step) * self.config.batch_size * self.dist.world / max(rate, 1e-9)
        terms = ", ".join(f"{name} {mean[name]:.4g}" for name in ("content", "style", "tv") if name in mean)
        return (f"fast-style train: step {self.step}/{self.config.steps} ({100 * self.step / self.config.steps:.0f}%): "
                f"loss {mean['loss']:.4g} ({terms}), {rate:.3g} images/s, about {duration(left_s)} left")

    # ------------------------------------------------------------------ outputs

    def _writer(self):
        if not self.dist.main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        self.output_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(self.output_dir))
        from fast_style.config import dump_yaml
        writer.add_text("config", "```\n" + dump_yaml(self.config) + "\n```", self.step)
        return writer

    def _log(self, writer, window: list[torch.Tensor], rate: float) -> dict[str, float]:
        """Average the window's losses (one host sync) into the history and TensorBoard."""
        values = torch.stack(window).mean(0)
        if self.dist.world > 1:  # each rank saw its slice of the batch: log the global mean
            import torch.distributed as dist
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.dist.world
        values = values.tolist()
        mean = {"loss": values[0], "content": values[1], "style": values[2], "tv": values[3],
                "lr": self.optimizer.param_groups[0]["lr"]}
        if not self.dist.main:
            return mean
        self.history.append({"step": self.step, **mean, "images_per_second": rate})
        for key, value in mean.items():
            writer.add_scalar(f"train/{key}", value, self.step)
        writer.add_scalar("train/images_per_second", rate, self.step)
        return mean

    def _log_validation(self, writer) -> dict[str, float] | None:
        if not self.dist.main:
            return None
        with naming(f"validation.size={self.config.validation.size}"):
            result = self.validate()
        if result is None:
            return None
        terms, images = result
        for key, value in terms.items():
            writer.add_scalar(f"validation/{key}", value, self.step)
        writer.add_images("validation/stylized", images, self.step)
        self.history.append({"step": self.step, **{f"validation_{k}": v for k, v in terms.items()}})
        return terms

    def _finish(self, writer) -> Path:
        if self.dist.world > 1:
            import torch.distributed as dist
            dist.barrier()
        path = self.output_dir / "model.safetensors"
        if not all(bool(torch.isfinite(value).all()) for value in self.model.state_dict().values()):
            raise FastStyleError(f"training diverged: the weights are NaN or infinite after step {self.step}; no "
                                 f"model written: lower lr (checkpoints: {self.output_dir / 'checkpoints'})")
        if self.dist.main:
            validation = self._log_validation(writer)
            writer.close()
            self.checkpoint()
            save_model(self.task.network, path, self.metadata(validation))
        return path

    def metadata(self, validation: dict[str, float] | None) -> dict:
        """What the model card and ``compare`` need: the loss it was trained with, and how."""
        config = self.config
        return {
            **self.task.metadata(),
            "training": {"steps": self.step, "batch_size": config.batch_size, "image_size": config.image_size,
                         "images_seen": self.step * config.batch_size, "photos": len(self.train_set),
                         "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                         "skipped_files": len(self.skipped_files), **self.precision.as_dict(),
                         "stopped_by_time_limit": self.stopped_by_time_limit},
            "final_loss": next((h for h in reversed(self.history) if "loss" in h), None),
            "validation_loss": validation,
            "validation_photos": self.validation_paths,
            "config": to_dict(config),
            "loss_history": self.history,
        }


# What makes two runs the same run: resuming with any of these changed would mix two trainings.
RUN_IDENTITY = ("architecture", "style_image", "style_images", "init_from", "trainable", "style_assignment",
                "style_size", "image_size", "model", "loss")


def _flatten(data: dict, cls: type, prefix: str = "") -> dict[str, object]:
    """``{"loss": {"style_weight": 5}}`` -> ``{"loss.style_weight": 5}``, down through the config's own
    sections only: a mapping value (``loss.style_layers``) stays one value, so an added layer differs."""
    hints = typing.get_type_hints(cls)
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and is_dataclass(hints.get(key)):
            flat.update(_flatten(value, hints[key], f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def check_same_run(checkpoint: Path, config: dict, output_dir: Path) -> None:
    """Refuse to resume ``checkpoint`` with a config whose painting, loss, sizes or network differ.

    Keys an older checkpoint does not record are not compared; the painting counts as the same
    when both paths name one file.
    """
    recorded = read_json(checkpoint / "state.json").get("config")
    if not isinstance(recorded, dict):
        return
    then = _flatten({key: recorded[key] for key in RUN_IDENTITY if key in recorded}, TrainConfig)
    now = _flatten({key: config[key] for key in RUN_IDENTITY if key in config}, TrainConfig)
    differences = []
    for key in sorted(set(then) & set(now)):
        if then[key] == now[key]:
            continue
        if key == "style_image" and isinstance(then[key], str) and now[key] and same_file(then[key], now[key]):
            continue
        differences.append(f"{key} was {show(then[key])}, now {show(now[key])}")
    if differences:
        raise FastStyleError(f"output_dir={output_dir}: its checkpoint {checkpoint.name} is from another run "
                             f"({'; '.join(differences[:3])}); resuming would mix the two: restore those settings, "
                             "choose another output_dir, or pass resume=false overwrite=true to start over")


_stop_requested = False


def _raise_interrupt(signum: int, frame) -> None:
    """First Ctrl-C/SIGTERM: stop at the next step boundary; a second one: stop now.

    Raising at once could land between the optimiser's in-place updates, and the final
    checkpoint would then hold a half-applied step that no uninterrupted run ever had.
    """
    global _stop_requested
    if _stop_requested:
        raise KeyboardInterrupt
    _stop_requested = True


def _stop_if_requested() -> None:
    global _stop_requested
    if _stop_requested:
        _stop_requested = False
        raise KeyboardInterrupt


def _stop_on_signals() -> dict[int, object]:
    """Make Ctrl-C and SIGTERM (schedulers, `timeout`) stop training with a checkpoint.

    Installed explicitly because a process started in the background of a shell inherits
    SIGINT as *ignored*, and SIGTERM would otherwise kill it without a checkpoint.
    """
    global _stop_requested
    _stop_requested = False
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, _raise_interrupt)
        except ValueError:  # not the main thread (e.g. called from a worker thread): leave as is
            pass
    return previous
