"""One ``fast-style bench`` run: the environment it ran in, then each workload planned, timed and reported.

It is the only piece that touches process-wide state (torch's thread count, ``cudnn.benchmark``,
compiled graphs) and the temporary folder the inputs live in, so that the harness, the report and
the workloads stay plain functions.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fast_style.bench.fixtures import loss_network_config
from fast_style.bench.harness import measure
from fast_style.bench.report import Workload, summarize
from fast_style.bench.workloads import (MAX_ROUNDS, PLANS, WORKLOADS, budget_for, optimize_workload,
                                        stylize_workload, train_workload)
from fast_style.memory import keep_freed_memory
from fast_style.errors import FastStyleError
from fast_style.precision import auto_precision, cpu_info, cpu_model_name
from fast_style.runtime import resolve_device
from fast_style.vgg import LossNetworkConfig


def hardware_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo where there is one."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()


def environment(device: torch.device, quick: bool, threads: int) -> dict[str, Any]:
    """Everything a figure depends on besides the code: device, versions, threads, load, date."""
    info: dict[str, Any] = {
        "device": hardware_name(device), "device_type": device.type, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "quick": quick,
        # Both paths of every workload run under it, as `fast-style` commands do (see keep_freed_memory).
        "malloc_keeps_freed_memory": keep_freed_memory(),
        "cpu": cpu_info().as_dict(),
        "precision_auto": auto_precision(device).as_dict(),
    }
    if device.type == "cuda":
        info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), cudnn_benchmark=True)
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(value, 2) for value in os.getloadavg()]
    return info


def plan_workloads(device: torch.device, quick: bool, folder: Path, network: LossNetworkConfig,
                   names: list[str]) -> list[Callable[[], Workload]]:
    """The workloads asked for, as factories (each builds its inputs only when its turn comes)."""
    plan = PLANS[(device.type, quick)]
    factories: dict[str, Callable[[], Workload]] = {
        "train_256": lambda: train_workload(*plan["train_256"], device, folder / "train", network, quick),
        "optimize_512": lambda: optimize_workload(*plan["optimize_512"], device, network),
    }
    for name in WORKLOADS[:3]:
        factories[name] = lambda name=name: stylize_workload(name, *plan[name], device, folder, quick)
    return [factories[name] for name in names]


def run_bench(device: str = "auto", quick: bool = False, threads: int | None = None,
              workloads: list[str] | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the workloads (all by default) and return the JSON document; ``on_result`` gets the
    document after each workload (to save partial results of a long run).

    ``threads`` sets torch's CPU threads for the run (restored afterwards, like cudnn.benchmark,
    which is on for CUDA runs as the trainer has it).
    """
    torch_device = resolve_device(device)
    names = list(workloads or WORKLOADS)
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        raise FastStyleError(f"--workloads {unknown[0]}: unknown; use some of {', '.join(WORKLOADS)}")
    previous = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = torch_device.type == "cuda"
        return run_workloads(torch_device, quick, names, on_result)
    finally:
        torch.set_num_threads(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def run_workloads(torch_device: torch.device, quick: bool, names: list[str],
                  on_result: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """The body of :func:`run_bench`, with threads and cudnn settings in place."""
    document = {**environment(torch_device, quick, torch.get_num_threads()), "workloads": []}
    with tempfile.TemporaryDirectory(prefix="fast-style-bench-") as tmp:
        folder = Path(tmp)
        network, document["loss_network"] = loss_network_config(folder)
        for factory in plan_workloads(torch_device, quick, folder, network, names):
            workload = factory()
            print(f"fast-style bench: {workload.name} ({workload.size}px, batch {workload.batch}, "
                  f"{len(workload.candidates)} paths)", file=sys.stderr, flush=True)
            results = measure(workload.candidates, torch_device, budget_for(workload, torch_device, quick),
                              MAX_ROUNDS[torch_device.type])
            document["workloads"].append(summarize(workload, results))
            if any(candidate.settings.get("compile") for candidate in workload.candidates):
                torch._dynamo.reset()  # free this workload's compiled graphs; the next has other shapes
            if on_result:
                on_result(document)
    if hasattr(os, "getloadavg"):
        document["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    return document
