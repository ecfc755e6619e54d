"""Training any kind of network: Johnson et al.'s (one per painting) or the adain decoder (any painting).

The network is trained against the frozen loss network with the same
:class:`~fast_style.losses.PerceptualLoss` that scores Gatys optimisation, so the two are
comparable by construction. Each kind (``architecture``, :mod:`fast_style.networks`) brings its
own step, forward + loss, validation and model-file metadata (its task, :mod:`fast_style.training.tasks`);
the loop is shared. :class:`Trainer` reads top to bottom as a recipe: set-up, state, the loop, checkpoints,
the end. What makes it dependable lives around the loop:

* checkpoints every N steps (atomic, verified on load, last K kept: :mod:`fast_style.training.state`)
  hold everything a run needs to continue exactly, and ``resume: auto`` picks up the newest intact one;
* a non-finite loss skips the step and, after ``max_bad_steps`` in a row, stops the run
  with its last good checkpoint; Ctrl-C or SIGTERM writes a checkpoint at a step boundary and exits
  (:class:`~fast_style.runtime.StopAtStepBoundary`);
* under ``torchrun`` it trains with DistributedDataParallel (:mod:`fast_style.training.distributed`); rank 0
  alone logs (:mod:`fast_style.training.log`) and writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import torch

from fast_style.checkpoint import save_model
from fast_style.config import nested, non_negative, positive, side, to_dict
from fast_style.errors import FastStyleError, naming
from fast_style.images import ImageError
from fast_style.losses import LossConfig
from fast_style.precision import autocast, resolve_precision
from fast_style.runtime import Device, StopAtStepBoundary, resolve_device, seed_everything, set_determinism
from fast_style.safety import check_creatable, refuse_non_regular
from fast_style.training.adain import AdaINTrainConfig
from fast_style.training.data import (DataConfig, PhotoDataset, StepBatchSampler, collate, resize_crop,
                                      split_validation, training_paths)
from fast_style.training.distributed import init_distributed
from fast_style.training.log import Validation, train_log
from fast_style.training.multi_style import StyleAssignment, StylePainting
from fast_style.training.stability import StabilityConfig
from fast_style.training.state import TrainState, check_same_run, discard, latest_checkpoint, load_state, save_state
from fast_style.training.tasks import TaskFactory, get_task
from fast_style.training.wct import WctTrainConfig
from fast_style.transformer import ModelConfig


@dataclass
class ValidationConfig:
    """Held-out photos scored (shown in TensorBoard, and written to OUTPUT/validation.jpg) every ``every``
    steps, and at least every ``every_minutes`` of training, so a slow CPU run shows its progress too."""

    every: int = non_negative(500)  # 0: only at the end
    every_minutes: float = non_negative(5.0)  # 0: by steps only
    size: int = side(256)


@dataclass
class TrainConfig:
    """Everything ``fast-style train`` needs; every key can be overridden as key=value."""

    # the kind of network (fast_style.networks): johnson2016, johnson2016_multi (implied by style_images) or adain
    architecture: str = "johnson2016"
    style_image: str | None = None  # johnson2016: the one painting
    # johnson2016_multi: several paintings in one network, each a path or {image, size, style_weight}
    style_images: list[str | StylePainting] | None = None
    # johnson2016(_multi): a trained model (path or bundled name) to start from (one painting) or add paintings to
    init_from: str | None = None
    trainable: Literal["all", "norm"] = "all"  # norm: train only the norms (the new paintings' rows)
    style_assignment: StyleAssignment = "per_image"  # johnson2016_multi: which painting each image is trained with
    style_folder: str | None = None  # adain: a folder of paintings (searched recursively)
    style_size: int = side(512)  # the painting's longer side in pixels when its Gram targets are taken
    output_dir: str = "runs/style"
    image_size: int = side(256)
    batch_size: int = positive(4)
    steps: int = positive(40000)
    # Stop at the first step after this many minutes (under torchrun: the first logged step; 0: no limit)
    # and write the model as at the end: a run sized by the time a machine is lent for, not by a guess.
    time_limit_minutes: float = non_negative(0.0)
    lr: float = positive(1e-3)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Linear warm-up from lr/warm-up steps to lr over the first steps (0: none); lets a higher lr start
    # without saturating the sigmoid output, which is how lr 3e-3 collapsed in the CPU study.
    lr_warmup_steps: int = non_negative(0)
    seed: int = 0
    device: Device = "auto"
    # auto: bf16 where the hardware has native bf16 maths (CUDA GPUs, CPUs with AMX-BF16 or
    # AVX512-BF16), fp32 elsewhere; see fast_style.precision
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # Layout of the trained network's maps. auto: channels_last on CUDA (the fastest compiled GPU run
    # used it), plain NCHW elsewhere: on CPU channels_last made steps 0.92-0.98x in fp32 and bf16
    # (instance norm and reflection padding copy it). The loss network picks its own layout.
    channels_last: Literal[True, False, "auto"] = "auto"
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
    wct: WctTrainConfig = nested(WctTrainConfig)  # architecture: wct (one level's decoder per run)
    loss: LossConfig = nested(LossConfig)
    # johnson2016: also train the output not to change when the photo moves a little or gets noise
    stability: StabilityConfig = nested(StabilityConfig)
    data: DataConfig = nested(DataConfig)
    validation: ValidationConfig = nested(ValidationConfig)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Constant, or cosine decay to 1 % of ``lr`` over the run; either after ``lr_warmup_steps`` of linear
    warm-up. ``step`` counts from 0 (the step about to be taken)."""
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    progress_fraction = min(step / max(config.steps, 1), 1.0)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress_fraction)))


def training_architecture(config: TrainConfig) -> str:
    """The kind of network a config trains: ``style_images`` (several paintings) means johnson2016_multi.
    Options the resolved kind cannot train are refused here, naming the key (a value accepted and then
    silently ignored would still be recorded in model.json as if it had been used)."""
    architecture = config.architecture
    if config.style_images is not None and architecture == "johnson2016":
        architecture = "johnson2016_multi"
    elif architecture not in ("johnson2016", "johnson2016_multi") and (config.init_from or config.trainable != "all"):
        raise FastStyleError(f"init_from and trainable=norm start johnson2016 networks (one painting or several) "
                             f"from a trained one, not {architecture} networks: remove them")
    if config.stability.weight and architecture != "johnson2016":
        several = " (style_images: several paintings)" if architecture == "johnson2016_multi" else ""
        raise FastStyleError(f"stability.weight trains johnson2016 networks only, not {architecture}{several}; "
                             f"got stability.weight={config.stability.weight!r}: set stability.weight=0")
    return architecture


def training_memory_format(channels_last: bool | str, device: torch.device) -> torch.memory_format:
    """``TrainConfig.channels_last`` resolved for ``device`` (``auto``: channels_last on CUDA only)."""
    if channels_last == "auto":
        channels_last = device.type == "cuda"
    return torch.channels_last if channels_last else torch.contiguous_format


class Trainer:
    """One run: set up by ``__init__``, trained to ``steps`` by :meth:`run`.

    Names: ``model`` is the module the optimiser trains and checkpoints hold; ``forward`` is how a
    step calls it (under DistributedDataParallel with torchrun, compiled with ``compile``); the kind's
    ``task.network`` is what model.safetensors stores (the model, or a network around it).
    """

    def __init__(self, config: TrainConfig):
        config = replace(config, architecture=training_architecture(config))
        task = get_task(config.architecture)  # an unknown architecture fails before anything else
        self.dist = init_distributed(config.device)
        self.device = self.dist.local_device(resolve_device(config.device))
        # The resolved precision is what checkpoints, model files and TensorBoard record.
        self.precision = resolve_precision(config.precision, self.device, flag="precision")
        self.config = config = replace(config, precision=self.precision.name)
        set_determinism(config.deterministic)
        seed_everything(config.seed)  # before the task builds (initialises) the network
        self.output_dir = Path(config.output_dir)
        # batch_size: the global batch
        self.log = train_log(self.dist.main, config.steps, config.batch_size, config.time_limit_minutes)
        self._set_up_state()
        self._set_up_task(task)
        self._set_up_optimizer()
        self._set_up_data()
        self._set_up_forward()

    # ------------------------------------------------------------------ set-up

    def _set_up_state(self) -> None:
        """The run's counters: the step and skipped files, which checkpoints carry (with the history the
        log keeps), and this process's bad-step, good-step and time-limit bookkeeping, which they do not."""
        self.step = 0
        self.skipped_files: list[str] = []
        self.bad_steps = 0  # non-finite losses in a row
        self.good_steps = 0  # steps this process applied (a failed run with none leaves nothing behind)
        self.stopped_by_time_limit = False
        self.last_validation = 0.0  # when validation last ran (time.perf_counter), reset as the loop starts

    def _set_up_task(self, task: TaskFactory) -> None:
        """The kind's own step (forward + loss, validation, model-file metadata); the loop is shared.
        Its loss network runs in the resolved ``config.precision``."""
        self.memory_format = training_memory_format(self.config.channels_last, self.device)
        self.task = task(self.config, self.device, self.memory_format)
        self.model, self.loss = self.task.model, self.task.loss

    def _set_up_optimizer(self) -> None:
        """Adam over the task's ``trainable_parameters()`` where it names some (e.g. to train part of the
        model), else over the whole model; a grad scaler that only acts in fp16."""
        choose = getattr(self.task, "trainable_parameters", None)
        parameters = choose() if choose is not None else self.model.parameters()
        self.optimizer = torch.optim.Adam(parameters, lr=self.config.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.config.precision == "fp16")

    def _set_up_data(self) -> None:
        """The training photos, and the held-out ones validation scores (read once, here)."""
        config = self.config
        paths, validation = split_validation(training_paths(config.data), config.data)
        self.train_set = PhotoDataset(paths, config.image_size, preload=config.data.preload,
                                      crop_from=config.data.crop_from)
        held_out: list[torch.Tensor] = []
        self.validation_paths: list[str] = []
        for path in validation:  # an unreadable held-out photo is skipped like a training one
            try:
                held_out.append(resize_crop(path, config.validation.size, None))
                self.validation_paths.append(str(path))
            except ImageError as error:
                self.log.warning(f"skipped validation photo {error}")
                self.skipped_files.append(str(error))
        self.validation = torch.stack(held_out) if held_out else None

    def _set_up_forward(self) -> None:
        """``forward``: the model as a step runs it. ``compile`` covers the loss network too: on GPUs
        that is most of a step (docs/performance.md)."""
        wrapped = self.dist.wrap(self.model, self.device)
        self.forward = torch.compile(wrapped) if self.config.compile else wrapped
        self.compiled_loss = torch.compile(self.loss) if self.config.compile else None

    # ------------------------------------------------------------------ state

    @property
    def history(self) -> list[dict[str, float]]:
        """The loss curve so far (kept by the log, which writes it; carried by checkpoints)."""
        return self.log.history

    @history.setter
    def history(self, history: list[dict[str, float]]) -> None:
        self.log.history = history

    def state(self) -> TrainState:
        record = getattr(self.task, "checkpoint_record", None)
        return TrainState(step=self.step, model=self.model, optimizer=self.optimizer, scaler=self.scaler,
                          history=self.history, config=to_dict(self.config), skipped_files=self.skipped_files,
                          task=record() if record is not None else {})

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
            check_same_run(found, self.config, self.output_dir)
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
        restore_record = getattr(self.task, "restore_record", None)
        if restore_record is not None:
            restore_record(loaded.task)
        return found

    # ------------------------------------------------------------------ the loop

    def run(self) -> Path:
        """Train from the current step to ``steps`` (or the time limit); returns the finished model's path."""
        resumed = self.restore()
        first_step = self.step
        try:
            # Before the start line, so a Ctrl-C from then on always ends with a checkpoint.
            with StopAtStepBoundary() as stop:
                self.log.open(self.output_dir, self.config, self.step, self._start_line(resumed))
                self._train(stop)
            if self.step > first_step and self.good_steps == 0:
                raise FastStyleError(f"every step of this run ({first_step + 1} to {self.step}) had a non-finite "
                                     "loss, so the network is untrained; no model written: lower lr or the loss "
                                     "weights")
            return self._finish()
        finally:
            self.log.close()

    def _start_line(self, resumed: Path | None) -> str:
        where = f"resuming from {resumed} at step {self.step}" if resumed else "starting from scratch"
        return (f"{len(self.train_set)} photos, {self.config.steps} steps of {self.config.batch_size} on "
                f"{self.device} in {self.precision.name} ({self.precision.reason}); {where}")

    def _train(self, stop: StopAtStepBoundary) -> None:
        """The loop, and on Ctrl-C/SIGTERM (raised by ``stop`` between steps) a checkpoint for the step reached."""
        self.model.train()
        try:
            with self.log.progress(self.step):
                self._loop(stop)
        except KeyboardInterrupt:
            self.checkpoint()
            self.log.say(f"interrupted at step {self.step}; checkpoint written, run the same command again to resume")
            raise

    def _loop(self, stop: StopAtStepBoundary) -> None:
        """Step s trains on global batch s, applied or skipped, so a resumed run sees the batches this one
        would have; losses are logged, the network validated and checkpoints written every so many steps."""
        window: list[torch.Tensor] = []  # the applied steps' losses since the last logged step
        started, images_seen = time.perf_counter(), 0
        self.last_validation = started
        for photos, skipped in self.loader(self.step):
            stop.check()
            for reason in skipped:
                self.log.warning(f"skipped {reason}")
                self.skipped_files.append(reason)
            values = self._counted_step(photos)
            self.step += 1
            self.log.advance(self.step)
            if values is None:
                continue
            images_seen += photos.shape[0] * self.dist.world
            window.append(values)
            logged = self.step % self.config.log_every == 0 or self.step == self.config.steps
            # One process asks the clock every step (a slow CPU does 400 images between logged steps);
            # under torchrun only at logged steps, where the ranks sync anyway.
            time_up = (logged or self.dist.world == 1) and self._time_is_up(started)
            if logged or time_up:
                rate = images_seen / max(time.perf_counter() - started, 1e-9)
                self.log.losses(self.step, self._mean_losses(window), rate)
                window = []
                if time_up:
                    break
            if self._validation_due() and self.step != self.config.steps:
                self.log.validation(self.step, self.validate)
                self.last_validation = time.perf_counter()
            if self._every(self.config.checkpoint_every):
                self.checkpoint()
        stop.check()

    def _validation_due(self) -> bool:
        """Every ``validation.every`` steps, or once ``validation.every_minutes`` have passed since the last
        validation (or the start of this process's loop)."""
        minutes = self.config.validation.every_minutes
        overdue = bool(minutes) and time.perf_counter() - self.last_validation >= 60.0 * minutes
        return self._every(self.config.validation.every) or overdue

    def _every(self, steps: int) -> bool:
        """Whether the step just taken is a multiple of ``steps`` (0: never)."""
        return bool(steps) and self.step % steps == 0

    def _counted_step(self, photos: torch.Tensor) -> torch.Tensor | None:
        """:meth:`train_step`, with non-finite losses counted: each one is a warning naming the step's
        photos, and ``max_bad_steps`` in a row stop the run (its last good checkpoint is kept)."""
        with naming(f"image_size={self.config.image_size}"):  # e.g. too small for the loss network
            values = self.train_step(photos)
        if values is not None:
            self.bad_steps = 0
            self.good_steps += 1
            return values
        self.bad_steps += 1
        batch = ", ".join(self.batch_files(self.step))
        self.log.warning(f"non-finite loss at step {self.step + 1} on batch [{batch}]; step skipped, weights unchanged")
        if self.bad_steps >= self.config.max_bad_steps:
            raise FastStyleError(f"the loss was not finite for {self.bad_steps} steps in a row (step {self.step + 1}); "
                                 f"stopped with the last good checkpoint in {self.output_dir / 'checkpoints'}; "
                                 "lower lr or use precision=fp32")
        return None

    def batch_files(self, step: int) -> list[str]:
        """The photos of global batch ``step`` (0-based): what a warning about that step names."""
        sampler = StepBatchSampler(len(self.train_set), self.config.batch_size, self.config.seed, step, step + 1)
        return [str(self.train_set.paths[index]) for index, _ in next(iter(sampler))]

    def loader(self, start: int) -> torch.utils.data.DataLoader:
        """This rank's slices of global batches ``start`` to ``steps - 1``, with the names of skipped files."""
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
        """One optimiser step; returns the detached [loss, content, style, tv(, stability)] on the device,
        or None when the loss was not finite on any rank (the step is then not applied).

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
        finite = self.dist.all_true(torch.isfinite(total).float())  # every rank skips, or DDP would hang
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(finite > 0):
            return None
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.term_names = ("loss", *terms.parts())  # the terms this kind's steps have (pixel, stability)
        return torch.stack([total, *terms.parts().values()]).detach()

    def _mean_losses(self, window: list[torch.Tensor]) -> dict[str, float]:
        """The window's mean losses over every rank's slice of the batch (one host sync), and the lr."""
        values = self.dist.mean(torch.stack(window).mean(0)).tolist()
        return {**dict(zip(self.term_names, values)), "lr": self.optimizer.param_groups[0]["lr"]}

    def _time_is_up(self, started: float) -> bool:
        """Whether ``time_limit_minutes`` has passed; under DDP every rank takes rank 0's answer, so all
        stop at the same step. Under DDP asked only at logged steps (one sync there, none elsewhere)."""
        limit = self.config.time_limit_minutes
        if not limit:
            return False
        up = torch.tensor(float(time.perf_counter() - started >= 60.0 * limit), device=self.device)
        if bool(self.dist.from_main(up) > 0):
            self.stopped_by_time_limit = True
            self.log.say(f"time limit of {limit:g} min reached at step {self.step}; writing the model")
        return self.stopped_by_time_limit

    @torch.no_grad()
    def validate(self) -> Validation:
        """Loss on the held-out photos, and their stylizations for TensorBoard."""
        if self.validation is None:
            return None
        with naming(f"validation.size={self.config.validation.size}"):
            return self.task.validate(self.validation.to(self.device))

    # ------------------------------------------------------------------ outputs

    def checkpoint(self) -> None:
        """Write a checkpoint (rank 0); a failed write keeps the previous one and says so."""
        if not self.dist.main:
            return
        folder = self.output_dir / "checkpoints"
        previous = max(folder.glob("step_*"), default=None) if folder.is_dir() else None
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists yet"
        try:
            save_state(folder, self.state(), keep=self.config.keep_checkpoints)
        except (OSError, FastStyleError) as error:
            self.log.warning(f"could not write the step {self.step} checkpoint ({error}); {kept}")

    def _finish(self) -> Path:
        """Once every rank is done: refuse weights that diverged, then rank 0 validates, writes the last
        checkpoint and the model file."""
        self.dist.barrier()
        path = self.output_dir / "model.safetensors"
        if not all(bool(torch.isfinite(value).all()) for value in self.model.state_dict().values()):
            raise FastStyleError(f"training diverged: the weights are NaN or infinite after step {self.step}; no "
                                 f"model written: lower lr (checkpoints: {self.output_dir / 'checkpoints'})")
        validation = self.log.validation(self.step, self.validate)
        if self.dist.main:
            self.checkpoint()
            save_model(self.task.network, path, self.metadata(validation))
        return path

    def metadata(self, validation: dict[str, float] | None) -> dict:
        """What the model card and ``compare`` need: the loss it was trained with, and how."""
        config = self.config
        return {
            **self.task.metadata(self.step),
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
