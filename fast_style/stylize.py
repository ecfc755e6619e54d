"""Instant stylization with a trained network: any size, any number of photos, no half-written files.

:class:`Stylizer` wraps a network of any registered kind (:mod:`fast_style.networks`) loaded from a
model file and turns photos into stylized photos of exactly the same size. Kinds that take any
painting (``adain``) get it once per run through :meth:`Stylizer.set_style`. Images too big to run in one go are
tiled so that the result equals the untiled one: overlapping windows wider than the receptive field,
with every instance norm using statistics gathered over the whole image (see
:func:`fast_style.tiling.stylize_tiled`).

What is fast, and why (figures: docs/performance.md, measured with ``fast-style bench``):

* One forward pass is the whole cost; keep the :class:`Stylizer` and call it repeatedly (loading a
  model and the first call at a new size, which picks kernels, cost more than one image).
* ``precision="auto"`` runs bf16 where the hardware has native bf16 maths (CPUs with AMX-BF16 or
  AVX512-BF16, CUDA GPUs) and fp32 elsewhere: emulated bf16 is slower than fp32.
* On CPU, untiled passes run :func:`~fast_style.inference.inference_network`, an exact rewrite of
  the network (transposed convs for upsample + conv, group norm reading channels_last in place, a
  row-split final conv, and in fp32 Winograd residual convs).
* Batches of same-sized images amortise per-call overhead on GPUs; on CPU a batch of N costs about
  N single images. Time grows with the pixel count, so ``--size`` is the big lever.
* Tiling happens only when an image would not fit: it costs more time for less peak memory.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torch import nn

from fast_style.checkpoint import CheckpointError, read_model, model_path
from fast_style.errors import FastStyleError, one_line
from fast_style.images import (
    ImageError,
    check_output_size,
    find_images,
    image_to_tensor,
    open_image,
    resize_longer_side,
    save_image,
    tensor_to_image,
)
from fast_style.inference import has_flat_photo
from fast_style.networks import kind_of
from fast_style.paintings import load_painting, parse_styles
from fast_style.precision import DTYPES, resolve_precision
from fast_style.runtime import progress, resolve_device
from fast_style.safety import file_identity, refuse_non_regular, same_file
from fast_style.tiling import HALO, check_tile

CPU_MAX_PIXELS = 4_000_000  # above this (per batch) CPU inference is tiled: activations get into GBs
CPU_TILE = 1024  # window side on CPU: big enough that the overlap costs little, small enough to be quick
# Whether untiled passes use inference_network() by default: 2.06x faster on CPU (512x512, 1 thread,
# `fast-style bench`); off on CUDA, where eager it was faster at 512x512 but slower at 1024x1024 (H100).
FAST_DEFAULT: dict[str, bool] = {"cpu": True, "cuda": False}
GPU_MEMORY_SHARE = 0.5  # fraction of free GPU memory one pass may plan to use
OUTPUT_FORMATS: dict[str, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}
WRITABLE_SUFFIXES = frozenset({*OUTPUT_FORMATS.values(), ".jpeg", ".tif"})


# ----------------------------------------------------------------------------- loading


def resolve_model_path(name_or_path: str) -> Path:
    """The .safetensors file for a bundled model's name, or a model given as that file, the .json
    beside it, or their folder."""
    from fast_style.models import bundled_models

    bundled = bundled_models()
    if str(name_or_path) in bundled and not Path(name_or_path).exists():
        return bundled[str(name_or_path)]
    path = model_path(name_or_path)
    if not path.is_file() and str(name_or_path) in bundled:
        raise CheckpointError(f"{name_or_path}: a local {'folder' if Path(name_or_path).is_dir() else 'file'} of "
                              f"this name hides the bundled model '{name_or_path}' (and holds no model); pass "
                              f"{bundled[str(name_or_path)]} for the bundled one, or run from another folder")
    if not path.is_file():
        names = ", ".join(bundled) or "none"
        raise CheckpointError(f"{name_or_path}: no model found (looked for {path}; bundled models: {names}); pass "
                              "a bundled name, the model.safetensors written by `fast-style train`, its .json, "
                              "or their folder")
    return path


def load_stylizer(model: str | Path, *, device: str = "auto", precision: str = "auto",
                  channels_last: bool = False, fast: bool | None = None, compile: bool = False) -> Stylizer:
    """Load a model file into a ready-to-run :class:`Stylizer` (defaults: the fastest measured, see above;
    ``precision="auto"``: bf16 where the hardware has native bf16 maths, see :mod:`fast_style.precision`;
    ``fast=None``: the inference form where it measured faster, see :data:`FAST_DEFAULT`; ``compile``:
    see :class:`Stylizer`)."""
    torch_device = resolve_device(device)
    resolved = resolve_precision(precision, torch_device)
    network, metadata = read_model(resolve_model_path(str(model)))
    if fast is None:
        fast = FAST_DEFAULT.get(torch_device.type, False)
    return Stylizer(network, metadata, torch_device, resolved.name, channels_last, fast, compile,
                    precision_reason=resolved.reason)


# ----------------------------------------------------------------------------- colour


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (the Y of JPEG's YCbCr), (B,3,H,W) -> (B,1,H,W)."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("bchw,c->bhw", rgb, weights).unsqueeze(1)


def preserve_color(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luminance transfer: Y from ``stylized``, Cb/Cr from ``photo``, both (B,3,H,W) in [0,1].

    YCbCr -> RGB adds Y to every channel with weight 1, so swapping Y is the same as adding the
    luma difference to the photo; the only loss of chroma is clamping where the result leaves [0,1].
    """
    return (photo + (luminance(stylized) - luminance(photo))).clamp(0.0, 1.0)


def blend(stylized: torch.Tensor, photo: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength`` 0 gives the photo exactly, 1 the stylization, in between a linear mix."""
    return torch.lerp(photo, stylized, strength)


def finish(stylized: torch.Tensor, photo: torch.Tensor, *, keep_colors: bool, strength: float) -> torch.Tensor:
    """Apply the user's colour and strength options to a network output (``photo`` on any device)."""
    photo = photo.to(stylized.device, torch.float32)
    if keep_colors:
        stylized = preserve_color(stylized, photo)
    return stylized if strength == 1.0 else blend(stylized, photo, strength)


# ----------------------------------------------------------------------------- the stylizer


@dataclass
class Options:
    """How each photo is prepared and finished: the flags that are not about files or devices."""

    size: int | None = None
    preserve_color: bool = False
    strength: float = 1.0
    tile: int | None = None
    keep_alpha: bool = False
    batch_size: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        """Refuse impossible values before any model is loaded or image read."""
        if self.size is not None and self.size < 1:
            raise FastStyleError(f"--size {self.size}: must be a positive number of pixels (the longer side)")
        if not 0.0 <= self.strength <= 1.0:
            raise FastStyleError(f"--strength {self.strength}: must be between 0 (the photo) and 1 (full style)")
        if self.tile is not None:
            check_tile(self.tile)
        if self.batch_size < 1:
            raise FastStyleError(f"--batch-size {self.batch_size}: must be at least 1")


@dataclass
class Stylizer:
    """A loaded network, ready to stylize tensors or PIL images; keep one and call it repeatedly."""

    model: nn.Module
    metadata: dict
    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    fast: bool = False  # untiled passes run inference_network(model): same outputs, cheaper layers
    # torch.compile untiled passes (CUDA graphs on CUDA): each new image shape costs a compilation of
    # seconds, so it pays only for long runs of same-sized images (--size) on a GPU (docs/performance.md).
    compile: bool = False
    precision_reason: str = "asked for"  # why this precision (see fast_style.precision), for reports

    def __post_init__(self) -> None:
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        dtype = DTYPES[self.precision]
        # Winograd on CPU in fp32 only: cuDNN picks its own algorithms, and bf16 would lose too much.
        self.winograd = self.fast and self.device.type == "cpu" and dtype == torch.float32
        self.kind = kind_of(self.model)
        fast_form = self.kind.inference_form(self.model, self.winograd) if self.fast else None
        self.network = fast_form.to(self.device, dtype) if fast_form is not None else None
        self.model = self.model.to(self.device, dtype, memory_format=memory_format).eval()
        # Tiles run the network stage by stage, so they need it uncompiled.
        self.tiled_network = self.model if self.network is None else self.network
        if self.compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            self.network = torch.compile(self.model if self.network is None else self.network, mode=mode,
                                         dynamic=False)

    def auto_tile(self, height: int, width: int, batch_size: int = 1) -> int | None:
        """The tile side to use for this shape, or None when it fits in one pass.

        CPU: a pixel threshold (RAM is plentiful, but time and GBs of activations are not).
        CUDA: the largest tile whose estimated activations fit in a share of free GPU memory.
        """
        pixels = height * width * batch_size
        if self.device.type != "cuda":
            return CPU_TILE if pixels > CPU_MAX_PIXELS else None
        free, _total = torch.cuda.mem_get_info(self.device)
        budget_pixels = int(free * GPU_MEMORY_SHARE / self.bytes_per_pixel())
        if pixels <= budget_pixels:
            return None
        side = int((budget_pixels / batch_size) ** 0.5) // 64 * 64
        return max(side, 4 * HALO)

    def bytes_per_pixel(self) -> int:
        """Peak memory per input pixel of an untiled pass (each kind knows its own)."""
        return self.kind.bytes_per_pixel(self.model, torch.finfo(DTYPES[self.precision]).bits // 8)

    def set_style(self, style: str | Path | Image.Image | torch.Tensor
                  | Sequence[tuple[str | Path | Image.Image | torch.Tensor, float]], alpha: float = 1.0) -> None:
        """The painting(s) every following photo is stylized with, for kinds that take any painting.

        ``style``: a file, a PIL image, a (3,H,W) tensor, ``"a.jpg=0.5,b.jpg=0.5"``, or (painting, weight)
        pairs; ``alpha`` 0 keeps the photo's features, 1 is the full style. The paintings' statistics are
        computed here, once, at the size the model was trained with.
        """
        if not self.kind.takes_style:
            raise FastStyleError(f"--style: this model ({self.kind.name}) was trained for one painting and takes "
                                 "no --style or --alpha; use an adain model (e.g. --model arbitrary) for any painting")
        if isinstance(style, str):
            style = parse_styles(style)
        elif not isinstance(style, Sequence):
            style = [(style, 1.0)]
        size = (self.metadata.get("style") or {}).get("size")
        paintings = [(load_painting(painting, size), weight) for painting, weight in style]
        self.model.set_style(paintings, alpha)

    def stylize_tensor(self, batch: torch.Tensor, *, tile: int | None = None) -> torch.Tensor:
        """(B,3,H,W) in [0,1] on any device -> same shape, float32 in [0,1] on ``self.device``.

        No autograd; tiled when ``tile`` is given and smaller than the image, or when the image would
        not fit (see :meth:`auto_tile`). The result is an ordinary tensor (not an inference tensor), so
        callers may modify it in place.
        """
        if batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B,3,H,W) batch, got shape {tuple(batch.shape)}")
        batch_size, _, height, width = batch.shape
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = batch.to(self.device, DTYPES[self.precision]).contiguous(memory_format=memory_format)
        tile = tile or self.auto_tile(height, width, batch_size)
        with torch.inference_mode():
            plain = self.network is None or (self.winograd and has_flat_photo(batch))
            if tile is None or (height <= tile and width <= tile):
                result = (self.model if plain else self.network)(batch)
            else:
                result = self.kind.stylize_tiled(self.model if plain else self.tiled_network, batch, tile)
        return result.float().clone(memory_format=torch.contiguous_format)

    def stylize(self, image: Image.Image, *, size: int | None = None, preserve_color: bool = False,
                strength: float = 1.0, tile: int | None = None, style=None, alpha: float = 1.0) -> Image.Image:
        """Stylize a PIL image (any mode; EXIF orientation applied; alpha, if any, kept) -> PIL image.

        The output has exactly the input's size, or a longer side of ``size`` when given. ``style`` and
        ``alpha``: see :meth:`set_style` (kept for later calls; without ``style`` the last one is used).
        """
        if style is not None:
            self.set_style(style, alpha)
        options = Options(size=size, preserve_color=preserve_color, strength=strength, tile=tile)
        photo = prepare_photo(ImageOps.exif_transpose(image), options.size)
        return tensor_to_image(stylize_batch(self, [photo], options)[0])


def prepare_photo(image: Image.Image, size: int | None) -> torch.Tensor:
    """Resize (longer side = ``size``) and convert to a (3|4,H,W) tensor; 16-bit/CMYK/greyscale become RGB."""
    if size is not None:
        image = resize_longer_side(image, size)
    return image_to_tensor(image)


def check_finite_output(result: torch.Tensor) -> None:
    """A network whose finite weights still overflow gives NaN, which would be written as a black image
    with exit 0: refuse it (it does so for every photo)."""
    if not bool(torch.isfinite(result).all()):
        raise FastStyleError("the model produced NaN or infinite pixels; its weights are broken (too large "
                             "or altered): retrain or re-download it")


def stylize_batch(stylizer: Stylizer, photos: list[torch.Tensor], options: Options) -> list[torch.Tensor]:
    """Same-sized (3|4,H,W) photos -> finished (3|4,H,W) CPU results, alpha re-attached."""
    batch = torch.stack([photo[:3] for photo in photos])
    result = finish(stylizer.stylize_tensor(batch, tile=options.tile), batch,
                    keep_colors=options.preserve_color, strength=options.strength).cpu()
    check_finite_output(result)
    return [torch.cat([styled, photo[3:]]) for styled, photo in zip(result, photos)]


# ----------------------------------------------------------------------------- files


@dataclass
class Job:
    """One photo to stylize and where its result goes."""

    source: Path
    target: Path


@dataclass
class Summary:
    """What a run did: counts for the final line; each skip is reported on stderr as it happens."""

    done: int = 0
    skipped: Counter = field(default_factory=Counter)
    # Outputs already there (without --overwrite): kept, counted and not failures, so that re-running a
    # folder job after adding photos, or after an interruption, stylizes just the new ones and exits 0.
    kept: int = 0
    seconds: float = 0.0

    def skip(self, kind: str, reason: str) -> None:
        """Count a skipped photo under ``kind`` and print the reason (which names the file) above the bar."""
        from tqdm.auto import tqdm

        self.skipped[kind] += 1
        tqdm.write(f"fast-style stylize: skipped {one_line(reason)}", file=sys.stderr)

    def line(self, output: Path) -> str:
        """One line for the end of a run: what was written where, and what was skipped and why."""
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.skipped.most_common())
        skipped = f"; skipped {sum(self.skipped.values())} ({kinds})" if self.skipped else ""
        kept = f"; {self.kept} already exist{'s' * (self.kept == 1)} (use --overwrite)" if self.kept else ""
        return (f"stylized {self.done} image{'s' * (self.done != 1)} into {output} in {self.seconds:.1f} s"
                f"{skipped}{kept}")


def is_single_file(inputs: list[str], output: Path) -> bool:
    """One file in, and OUT names a file (not an existing folder or a path ending in a separator)."""
    return (len(inputs) == 1 and Path(inputs[0]).is_file() and not output.is_dir()
            and not str(output).endswith((os.sep, "/")))


def plan_jobs(inputs: list[str], output: Path, fmt: str | None = None) -> list[Job]:
    """Map inputs to outputs: a file for one file, else ``output/relative/path.ext`` per image.

    Folder inputs keep their sub-folders; files and globs keep their names. Two inputs that would
    write the same output, or an output that would replace its own input, are refused up front.
    """
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise FastStyleError(f"--format {fmt}: unknown; use one of {', '.join(OUTPUT_FORMATS)}")
    if is_single_file(inputs, output):
        if output.suffix.lower() not in WRITABLE_SUFFIXES:
            raise FastStyleError(f"{output}: --output for one image must end in .png, .jpg, .webp, .bmp or "
                                 ".tiff (or be an existing folder)")
        if fmt is not None and output.suffix.lower() != OUTPUT_FORMATS[fmt]:
            raise FastStyleError(f"{output}: does not end in {OUTPUT_FORMATS[fmt]} as --format {fmt} asks; "
                                 "change one of them")
        jobs = [Job(Path(inputs[0]), output)]
    else:
        if output.exists() and not output.is_dir():
            raise FastStyleError(f"{output}: is a file, but several images need a folder as --output")
        for item in inputs:  # results written among the photos would be read as photos by the next run
            if Path(item).is_dir() and same_file(item, output):
                raise FastStyleError(f"{output}: is also the input folder {item}; the results would mix with the "
                                     "photos: choose another --output (a sub-folder is fine)")
        jobs = [Job(source, output / target_name(relative, fmt))
                for source, relative in expand_inputs(inputs, exclude=output)]
    check_targets(jobs)
    return jobs


def expand_inputs(inputs: list[str], exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(image, its output-relative path) for every image named by ``inputs``, each image once; folders
    and patterns skip ``exclude`` (the output folder, which may lie inside an input folder)."""
    seen: dict[Path, tuple[Path, Path]] = {}
    for item in inputs:
        folder = Path(item) if Path(item).is_dir() else None
        for source in find_images([item], exclude=[exclude] if exclude is not None else []):
            relative = source.relative_to(folder) if folder else Path(source.name)
            seen.setdefault(source.resolve(), (source, relative))
    return list(seen.values())


def target_name(relative: Path, fmt: str | None) -> Path:
    """Same name; the --format's extension, else the input's own when it can be written, else .png."""
    suffix = relative.suffix.lower()
    if fmt is not None:
        suffix = OUTPUT_FORMATS[fmt]
    elif suffix not in WRITABLE_SUFFIXES:
        suffix = ".png"
    return relative.with_suffix(suffix)


def check_targets(jobs: list[Job]) -> None:
    """Refuse runs where two photos share an output or an output would overwrite its own photo."""
    owners: dict[Path, Job] = {}
    # Files, not names: a symlink or hard link to a photo is that photo (safety.same_file).
    sources = {file_identity(job.source) for job in jobs}
    for job in jobs:
        key = job.target.resolve()
        if same_file(job.target, job.source):
            raise FastStyleError(f"{job.source}: the output would replace this input; choose another --output")
        if file_identity(job.target) in sources - {None}:
            raise FastStyleError(f"{job.target}: is also one of the input photos; writing it would destroy that "
                                 "photo: choose another --output")
        refuse_non_regular(job.target)
        if key in owners:
            raise FastStyleError(f"{owners[key].source} and {job.source} would both be written to {job.target}; "
                                 "pass their parent folder instead (it keeps sub-folders) or run them separately")
        owners[key] = job


def stylize_file(stylizer: Stylizer, job: Job, options: Options) -> torch.Tensor:
    """One photo to one file (replacing what is there); every failure is a one-line FastStyleError."""
    result = stylize_batch(stylizer, [load_job(job, options)], options)[0]
    save_result(result, job.target)
    return result


def load_photo(path: Path, options: Options) -> torch.Tensor:
    """Open (EXIF-upright, any depth/mode), resize, tensor: (3|4,H,W) in [0,1]."""
    return prepare_photo(open_image(path, keep_alpha=options.keep_alpha), options.size)


def load_job(job: Job, options: Options) -> torch.Tensor:
    """A job's photo, refused before the network runs when its output format cannot hold that size."""
    photo = load_photo(job.source, options)
    check_output_size(job.target, photo.shape[-1], photo.shape[-2])
    return photo


def save_result(result: torch.Tensor, target: Path) -> Path:
    """Atomic write (a temp file renamed into place), creating sub-folders as needed."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageError(f"{target.parent}: cannot create folder ({error.strerror}); choose another --output") \
            from None
    return save_image(result, target)


def stylize_folder(stylizer: Stylizer, jobs: list[Job], options: Options) -> Summary:
    """Stylize many photos: bad ones are skipped with a reason, the rest written atomically.

    Decoding the next photos and encoding finished ones happen on background threads while the network
    runs; consecutive same-sized photos are batched up to ``options.batch_size``.
    """
    summary, start = Summary(), time.perf_counter()
    todo = [job for job in jobs if options.overwrite or not job.target.exists()]
    summary.kept = len(jobs) - len(todo)
    pending: list[tuple[Job, torch.Tensor]] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fast-style-io") as pool:
        saving: deque[tuple[Job, Future]] = deque()
        try:
            for job, photo in progress(prefetch(pool, lambda job: load_job(job, options), todo,
                                                depth=2 * options.batch_size),
                                       total=len(todo), desc="stylize", unit="img"):
                if isinstance(photo, FastStyleError):
                    summary.skip("unreadable", str(photo))
                    continue
                if pending and (len(pending) == options.batch_size or pending[0][1].shape != photo.shape):
                    submit_saves(pool, stylizer, pending, options, saving)
                    collect_saves(saving, summary, keep=options.batch_size)
                    pending = []
                pending.append((job, photo))
            if pending:
                submit_saves(pool, stylizer, pending, options, saving)
        finally:
            collect_saves(saving, summary, keep=0)
            pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - start
    return summary


def prefetch(pool: ThreadPoolExecutor, load: Callable[[Job], torch.Tensor], jobs: Iterable[Job],
             depth: int) -> Iterator[tuple[Job, torch.Tensor | FastStyleError]]:
    """Yield (job, loaded photo or its error) in order, keeping up to ``depth`` loads in flight."""
    queue: deque[tuple[Job, Future]] = deque()

    def take() -> tuple[Job, torch.Tensor | FastStyleError]:
        job, future = queue.popleft()
        try:
            return job, future.result()
        except FastStyleError as error:
            return job, error

    for job in jobs:
        queue.append((job, pool.submit(load, job)))
        if len(queue) > depth:
            yield take()
    while queue:
        yield take()


def submit_saves(pool: ThreadPoolExecutor, stylizer: Stylizer, pending: list[tuple[Job, torch.Tensor]],
                 options: Options, saving: deque[tuple[Job, Future]]) -> None:
    """Run the network on a batch here, then hand each result to a background writer."""
    results = stylize_batch(stylizer, [photo for _, photo in pending], options)
    for (job, _), result in zip(pending, results):
        saving.append((job, pool.submit(save_result, result, job.target)))


def collect_saves(saving: deque[tuple[Job, Future]], summary: Summary, keep: int) -> None:
    """Wait for finished writes until at most ``keep`` are in flight; failed writes count as skipped."""
    while len(saving) > keep:
        job, future = saving.popleft()
        try:
            future.result()
            summary.done += 1
        except FastStyleError as error:
            summary.skip("not written", str(error))
