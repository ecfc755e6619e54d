"""Never destroy a user's file: the one set of rules every command applies to what it writes.

Every output a command will write is checked here before any heavy work (:func:`check_output`,
:func:`check_output_folder`, :func:`check_creatable`):

* it is not one of the command's inputs, compared as files (``st_dev``/``st_ino``), so a
  symlink, a hard link or ``./photo.jpg`` vs ``photo.jpg`` cannot slip past a name comparison;
* nothing but a regular file is ever replaced (a FIFO, a device or a folder at the path is
  refused; :func:`~fast_style.images.atomic_output` checks again just before its rename);
* an existing result is replaced only with ``--overwrite``.

Writers leave hidden temp files (``.NAME.HEX-PID.tmp``) that a ``kill -9`` can orphan; the
first write into a folder removes those of this user whose process is gone, or that are older
than :data:`STALE_AFTER_S` (:func:`remove_stale_temps`). Nothing else is ever deleted. (A pid
means a process on this machine: two machines writing into one network folder at the same moment
could see each other's in-flight temp file as orphaned; fast_style does not support that.)
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from fast_style.errors import FastStyleError

# The temp names atomic_output() gives: ".NAME.<8 hex>.tmp" (older versions) or ".NAME.<8 hex>-<pid>.tmp".
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}(?:-(?P<pid>\d+))?\.tmp$")
STALE_AFTER_S = 3600.0  # a temp file whose writer cannot be identified is left alone for this long
_swept: set[Path] = set()


def temp_name(path: Path) -> Path:
    """The hidden temp file beside ``path`` that an atomic write fills before renaming it into place."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}-{os.getpid()}.tmp"


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names (following symlinks), or None if there is none."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file: through symlinks and hard links, or, for paths that do
    not exist yet, the same resolved name."""
    first, second = file_identity(Path(a)), file_identity(Path(b))
    if first is not None and second is not None:
        return first == second
    return Path(a).resolve() == Path(b).resolve()


def kind_of(path: Path) -> str | None:
    """``None`` for a regular file or nothing at all; else what is there ('a folder', 'a FIFO', ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return None  # e.g. a dangling symlink: replacing the link itself harms nothing
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def refuse_non_regular(path: Path, flag: str = "--output") -> None:
    """fast_style replaces regular files only; anything else at ``path`` is a one-line error."""
    kind = kind_of(path)
    if kind is not None:
        raise FastStyleError(f"{path}: is {kind}, not a regular file; fast_style only ever replaces regular "
                             f"files: choose another {flag}")


def check_not_empty(text: str | None, flag: str) -> None:
    """``-o ''`` is a mistake, not a request for the default."""
    if text is not None and not str(text).strip():
        raise FastStyleError(f"{flag} is empty; give a path (or leave {flag} out for the default)")


def check_not_an_input(path: Path, inputs: Iterable[str | Path | None], flag: str = "--output") -> None:
    """Refuse an output that is one of the inputs (the same file by any name)."""
    for source in inputs:
        if source is not None and str(source) and same_file(path, source):
            raise FastStyleError(f"{path}: is also an input ({source}); writing it would destroy that input: "
                                 f"choose another {flag}")


def check_output(path: str | Path, *, inputs: Iterable[str | Path | None] = (), overwrite: bool = False,
                 flag: str = "--output", suffixes: Iterable[str] | None = None, holding: str | None = None) -> Path:
    """Everything that can be known about a file output before the work: not empty, a known suffix,
    its folder exists, not an input, not something other than a regular file, and not an existing
    result unless ``overwrite``. Returns the path.

    ``holding`` names what the files of those ``suffixes`` hold (``"videos"``); the refusal of another
    suffix then says so and lists the suffixes in their given order.
    """
    check_not_empty(str(path), flag)
    path = Path(path)
    if suffixes is not None:
        suffixes = list(suffixes)
        if path.suffix.lower() not in suffixes:
            if holding is not None and not path.suffix:
                raise FastStyleError(f"{path}: has no suffix, and the suffix picks the format of the {holding}; "
                                     f"add one of {', '.join(suffixes)}")
            if holding is not None:
                raise FastStyleError(f"{path}: cannot write '{path.suffix}' {holding}; "
                                     f"use one of {', '.join(suffixes)}")
            raise FastStyleError(f"{path}: unknown output suffix {path.suffix or '(none)'!r}; "
                                 f"use {', '.join(sorted(set(suffixes)))}")
    if not path.parent.is_dir():
        raise FastStyleError(f"{path}: folder {path.parent} does not exist; create it or choose another {flag}")
    check_not_an_input(path, inputs, flag)
    refuse_non_regular(path, flag)
    if path.exists() and not overwrite:
        raise FastStyleError(f"{path}: already exists; pass --overwrite to replace it")
    return path


def check_output_folder(folder: str | Path, results: Iterable[str], *, inputs: Iterable[str | Path | None] = (),
                        overwrite: bool = False, flag: str = "--output") -> Path:
    """A folder a command fills with ``results`` (file names inside it): not empty, not a file, and
    none of its results an input, a non-regular file, or (without ``overwrite``) already there."""
    check_not_empty(str(folder), flag)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FastStyleError(f"{folder}: is {kind_of(folder) or 'a file'}, but {flag} must be a folder; "
                             f"choose another {flag}")
    inputs = list(inputs)
    for name in results:
        target = folder / name
        check_not_an_input(target, inputs, flag)
        refuse_non_regular(target, flag)
        if target.exists() and not overwrite:
            raise FastStyleError(f"{folder}: already holds {name} from an earlier run; pass --overwrite to "
                                 f"replace it, or choose another {flag}")
    return folder


def check_creatable(folder: str | Path, flag: str = "--output") -> Path:
    """A folder that exists or can be created (its nearest existing ancestor is a writable folder),
    checked without creating anything, so a run refused later leaves no empty folder behind."""
    folder = Path(folder)
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FastStyleError(f"{folder}: cannot be created, {ancestor} is {kind_of(ancestor) or 'a file'}, not a "
                             f"folder; choose another {flag}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise FastStyleError(f"{folder}: cannot write in {ancestor} (not writable); fix its permissions or choose "
                             f"another {flag}")
    return folder


def make_result_folder(output: Path, inner: str, what: str) -> None:
    """Create ``output/inner`` for a command's results; a refusal (permissions, a file in the way) is
    one line naming ``output`` as the ``what`` that could not be made, and the flag to change."""
    try:
        (output / inner).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FastStyleError(f"{output}: cannot create the {what} ({error.strerror}); choose another --output") from None


def remove_stale_temps(folder: Path) -> int:
    """Delete this user's orphaned temp files in ``folder`` (once per folder per process); returns how many.

    Only names matching :data:`TEMP_NAME` are candidates, and only regular files owned by this
    user whose writer process is gone (the pid in the name) or, without a pid, that are older
    than :data:`STALE_AFTER_S`.
    """
    folder = Path(folder)
    key = folder.resolve()
    if key in _swept:
        return 0
    _swept.add(key)
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = TEMP_NAME.match(entry.name)
        if not match:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            continue
        pid = match.group("pid")
        orphaned = not _alive(int(pid)) if pid else now - info.st_mtime > STALE_AFTER_S
        if orphaned:
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a live process of another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or a pid this system cannot have
        return True
    return True
