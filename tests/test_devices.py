"""--device auto|cpu|cuda|mps|xpu: one rule for every command, chosen through torch.accelerator."""

from __future__ import annotations

import typing

import pytest
import torch

from fast_style import runtime
from fast_style.commands.common import DEVICE_CHOICES
from fast_style.errors import FastStyleError


def test_auto_takes_the_accelerator_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("xpu"))
    assert runtime.resolve_device("auto") == torch.device("xpu")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name, label", [("cuda", "CUDA GPU"), ("cuda:1", "CUDA GPU"), ("mps", "Apple GPU (MPS)"),
                                         ("xpu", "Intel GPU (XPU)")])
def test_a_missing_accelerator_is_one_line(monkeypatch, name, label):
    monkeypatch.setattr(runtime, "accelerator_available", lambda kind: False)
    with pytest.raises(FastStyleError, match=f"--device {name}: no {label.replace('(', '.').replace(')', '.')} "
                                             "is visible to PyTorch; use --device cpu or auto"):
        runtime.resolve_device(name)


def test_every_command_offers_the_same_devices():
    from fast_style import cli

    assert list(typing.get_args(runtime.Device)) == DEVICE_CHOICES
    parser = cli.build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command").choices
    for name, sub in subparsers.items():
        devices = [action for action in sub._actions if "--device" in action.option_strings]
        if devices:
            assert list(devices[0].choices) == DEVICE_CHOICES, name
