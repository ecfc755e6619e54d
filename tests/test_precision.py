"""precision: auto chooses bf16 only where the hardware has native bf16 maths, and says why."""

from __future__ import annotations

import pytest
import torch

from fast_style import precision
from fast_style.errors import FastStyleError
from fast_style.precision import cpu_info, resolve_precision


def fake_cpu(monkeypatch: pytest.MonkeyPatch, *, amx: bool, avx512_bf16: bool) -> None:
    flags = {"_is_amx_tile_supported": amx, "_is_avx512_bf16_supported": avx512_bf16}
    monkeypatch.setattr(precision, "_torch_cpu_flag", lambda name: flags[name])


@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (True, True, "bf16"), (True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")])
def test_auto_on_cpu_follows_the_detected_units(monkeypatch, amx, avx512_bf16, expected):
    fake_cpu(monkeypatch, amx=amx, avx512_bf16=avx512_bf16)
    resolved = resolve_precision("auto", torch.device("cpu"))
    assert resolved.name == expected and resolved.reason.startswith("auto: this CPU has")
    if amx:
        assert "AMX-BF16" in resolved.reason
    if expected == "fp32":
        assert "neither" in resolved.reason


def test_auto_on_cuda_follows_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")).name == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cuda")).name == "fp32"


def test_explicit_choices_are_kept_and_checked(monkeypatch):
    fake_cpu(monkeypatch, amx=False, avx512_bf16=False)
    assert resolve_precision("bf16", torch.device("cpu")).name == "bf16", "bf16 runs (slowly) on any CPU"
    assert resolve_precision("fp32", torch.device("cpu")).reason == "asked for"
    with pytest.raises(FastStyleError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(FastStyleError, match="unknown; use one of auto, fp32, bf16, fp16"):
        resolve_precision("int8", torch.device("cpu"))


def test_cpu_info_reports_name_units_and_threads():
    info = cpu_info().as_dict()
    assert set(info) == {"name", "amx", "avx512_bf16", "threads"} and info["threads"] == torch.get_num_threads()
    assert isinstance(info["amx"], bool) and info["name"]
