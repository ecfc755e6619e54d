"""Which number format the maths runs in, and why: the one place that decides ``precision: auto``.

CPUs differ: Intel Xeons since Sapphire Rapids have AMX-BF16 tiles and AMD Zen 4 and later have
AVX512-BF16, and on those oneDNN runs bf16 convolutions several times faster than fp32 (a VGG19
forward and backward pass 4.7x on one such 2-core Xeon, docs/performance.md). On CPUs without
those units bf16 is emulated and several times *slower* than fp32. So ``auto`` is decided by
detection, never assumed, and the decision travels with its reason into model files, reports and
benchmark JSON, and each command's closing line names it.
"""

from __future__ import annotations

import platform
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from fast_style.errors import FastStyleError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = ("auto", *DTYPES)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, its bf16 matrix units and torch's thread count: what a CPU figure depends on."""

    name: str
    amx: bool
    avx512_bf16: bool
    threads: int

    @property
    def fast_bf16(self) -> bool:
        """Whether oneDNN has native bf16 maths here (AMX-BF16 tiles or AVX512-BF16 instructions)."""
        return self.amx or self.avx512_bf16

    def as_dict(self) -> dict:
        return {"name": self.name, "amx": self.amx, "avx512_bf16": self.avx512_bf16, "threads": self.threads}


def _torch_cpu_flag(name: str) -> bool:
    """A ``torch.cpu._is_*_supported()`` probe; False where this torch build lacks it."""
    probe = getattr(torch.cpu, name, None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def cpu_model_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def cpu_info() -> CpuInfo:
    """Detect this CPU's bf16 units (through torch, which asks cpuid) and torch's thread count."""
    return CpuInfo(cpu_model_name(), _torch_cpu_flag("_is_amx_tile_supported"),
                   _torch_cpu_flag("_is_avx512_bf16_supported"), torch.get_num_threads())


@dataclass(frozen=True)
class Precision:
    """A resolved precision (never ``auto``) and the reason it was chosen, for records and messages."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def as_dict(self) -> dict:
        return {"precision": self.name, "precision_reason": self.reason}


def auto_precision(device: torch.device) -> Precision:
    """bf16 where the hardware runs it natively (CUDA GPUs with bf16; CPUs with AMX-BF16 or
    AVX512-BF16), fp32 everywhere else (other accelerators: fp32 until measured there)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: this CUDA GPU supports bf16")
        return Precision("fp32", "auto: this CUDA GPU has no bf16")
    if device.type == "cpu":
        cpu = cpu_info()
        if cpu.fast_bf16:
            units = " and ".join(unit for unit, present in (("AMX-BF16", cpu.amx), ("AVX512-BF16", cpu.avx512_bf16))
                                 if present)
            return Precision("bf16", f"auto: this CPU has {units}")
        return Precision("fp32", "auto: this CPU has neither AMX-BF16 nor AVX512-BF16 (bf16 would be emulated, slower)")
    return Precision("fp32", f"auto: fp32 on {device.type}")


def resolve_precision(requested: str, device: torch.device, *, flag: str = "--precision") -> Precision:
    """``auto`` -> :func:`auto_precision`; an explicit value is kept, after checking the device can run it."""
    if requested not in CHOICES:
        raise FastStyleError(f"{flag} {str(requested)[:40]}: unknown; use one of {', '.join(CHOICES)}")
    if requested == "auto":
        return auto_precision(device)
    if requested == "fp16" and device.type != "cuda":
        raise FastStyleError(f"{flag} fp16 needs a CUDA GPU (CPU fp16 maths is slow and inexact); "
                             "use auto, fp32 or bf16")
    return Precision(requested, "asked for")


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast for ``precision`` (fp32 runs plain)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])
