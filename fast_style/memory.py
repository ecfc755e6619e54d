"""How the process's memory allocator treats freed memory (no torch here: ``fast-style --help`` imports it)."""

from __future__ import annotations

import ctypes

# glibc mallopt() parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; True if it took effect (Linux with glibc).

    PyTorch's CPU tensors come from malloc, and glibc serves large blocks with fresh mmaps that go
    back to the kernel when freed, so every big activation of every forward pass faults its pages in
    again (a large share of a CPU pass: docs/performance.md). With
    mmap off and trimming raised, freed blocks are reused instead: the process keeps its peak memory
    until it exits, which suits a command-line run. Called first by every ``fast-style`` subcommand
    and by ``fast-style bench``; library users may call it themselves.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): keep the platform's default
        return False
