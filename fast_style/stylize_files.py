"""``fast-style stylize`` on files and folders: which photo goes where, and no half-written results.

:mod:`fast_style.stylize` turns tensors and PIL images into stylized ones; this module is
everything around that for photos on disk. It maps inputs (files, folders, globs) to outputs
and refuses, before any work, a run that would overwrite a photo or write two results to one
file; it skips unreadable photos with a reason instead of stopping; it writes every result
atomically; and it keeps the network busy by decoding the next photos and encoding finished
ones on background threads, batching consecutive same-sized photos.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fast_style.errors import FastStyleError, one_line
from fast_style.images import ImageError, check_output_size, find_images, open_image, save_image
from fast_style.runtime import progress
from fast_style.safety import file_identity, refuse_non_regular, same_file
from fast_style.stylize import Options, Stylizer, prepare_photo, stylize_batch

OUTPUT_FORMATS: dict[str, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff"}
WRITABLE_SUFFIXES = frozenset({*OUTPUT_FORMATS.values(), ".jpeg", ".tif"})


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
