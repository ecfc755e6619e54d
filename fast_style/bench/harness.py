"""The timing harness: build every way of running a piece of work, then time them side by side.

It is apart from the workloads because scripts that time one question of their own (for example
``scripts/bench_loss_network.py``) reuse it, and so get the same rules as ``fast-style bench``:

* Paths are timed in interleaved rounds (A, B, C, A, B, C, ...) after a warm-up call: on a shared
  CPU, load from other processes then hits every path alike.
* On CUDA, clocks are read from CUDA events after a synchronize, so queued work is counted.
* A path that fails (a compile error, out of memory) keeps its error; the others go on.
* Timing stops once its time budget is spent, after at least ``MIN_ROUNDS`` rounds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

MIN_ROUNDS = 3


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read afterwards includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(call: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call takes, queued GPU work included (CUDA events on GPU, perf_counter on CPU)."""
    synchronize(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass
class Candidate:
    """One way to run a workload. ``build`` prepares it (loading, compiling) and returns the timed
    call and a reference output (compared with the baseline's); ``settings`` say what it is."""

    name: str
    build: Callable[[], tuple[Callable[[], Any], torch.Tensor]]
    settings: dict[str, Any] = field(default_factory=dict)
    warmup_calls: int = 1  # untimed calls after build (CUDA graphs record on their second or third)


@dataclass
class Measured:
    """What one candidate gave: seconds per timed call, its reference output, or why it failed."""

    candidate: Candidate
    seconds: list[float] = field(default_factory=list)
    output: torch.Tensor | None = None
    first_call_s: float | None = None
    error: str | None = None


def describe_error(error: BaseException) -> str:
    """The first line of an exception, prefixed by its type: enough to tell OOM from a compile failure."""
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:300]}"


def prepare(candidate: Candidate, device: torch.device) -> tuple[Measured, Callable[[], Any] | None]:
    """Build and warm up one candidate (the first call compiles and picks kernels)."""
    measured = Measured(candidate)
    try:
        started = time.perf_counter()
        call, output = candidate.build()
        measured.first_call_s = time.perf_counter() - started
        for _ in range(candidate.warmup_calls):
            call()
        measured.output = output.detach().float().cpu()
        return measured, call
    except Exception as error:  # a failing path is a result to report, not a reason to stop
        measured.error = describe_error(error)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return measured, None


def measure(candidates: list[Candidate], device: torch.device, budget_s: float, max_rounds: int) -> list[Measured]:
    """Warm every candidate up, then time them in interleaved rounds until the budget is spent."""
    prepared = []
    for candidate in candidates:
        measured, call = prepare(candidate, device)
        state = f"error: {measured.error}" if measured.error else f"ready in {measured.first_call_s:.1f} s"
        print(f"fast-style bench:   {candidate.name}: {state}", file=sys.stderr, flush=True)
        prepared.append((measured, call))
    started = time.perf_counter()
    for round_index in range(max_rounds):
        for measured, call in prepared:
            if call is not None and measured.error is None:
                try:
                    measured.seconds.append(time_call(call, device))
                except Exception as error:
                    measured.error = describe_error(error)
        if round_index + 1 >= MIN_ROUNDS and time.perf_counter() - started > budget_s:
            break
    return [measured for measured, _ in prepared]


def l2_relative_error(value: torch.Tensor | None, reference: torch.Tensor | None) -> float | None:
    """``||value - reference|| / ||reference||`` (L2 over all elements), or None if either is missing."""
    if value is None or reference is None or value.shape != reference.shape:
        return None
    return float((value - reference).norm() / reference.norm().clamp_min(1e-12))
