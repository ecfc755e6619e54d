"""The trainer's learning-rate schedule: constant or cosine, after an optional linear warm-up.

The schedule is a pure function of the config and the step, so a resumed run continues on the same
curve; these tests pin its shape (warm-up starts small and reaches ``lr``, cosine ends at 1 %).
"""

from __future__ import annotations

import pytest

from fast_style.config import ConfigError, load_config
from fast_style.training.trainer import TrainConfig, learning_rate


def config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, None, ["lr=0.004", "steps=100", *overrides])


def test_constant_is_lr_at_every_step() -> None:
    assert {learning_rate(config(), step) for step in (0, 1, 50, 99, 100)} == {0.004}


def test_cosine_starts_at_lr_halves_midway_and_ends_at_one_percent() -> None:
    cosine = config("lr_schedule=cosine")
    assert learning_rate(cosine, 0) == pytest.approx(0.004)
    assert learning_rate(cosine, 50) == pytest.approx(0.004 * (0.01 + 0.99 * 0.5))
    assert learning_rate(cosine, 100) == pytest.approx(0.004 * 0.01)
    assert learning_rate(cosine, 500) == pytest.approx(0.004 * 0.01)  # past the end: stays at the floor


def test_warm_up_rises_linearly_to_lr_then_hands_over_to_the_schedule() -> None:
    warm = config("lr_warmup_steps=4")
    assert [learning_rate(warm, step) for step in range(6)] == pytest.approx([0.001, 0.002, 0.003, 0.004,
                                                                              0.004, 0.004])
    warm_cosine = config("lr_warmup_steps=10", "lr_schedule=cosine")
    assert learning_rate(warm_cosine, 0) == pytest.approx(0.0004)
    assert learning_rate(warm_cosine, 10) == pytest.approx(learning_rate(config("lr_schedule=cosine"), 10))


def test_negative_warm_up_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        config("lr_warmup_steps=-1")
    assert "lr_warmup_steps" in str(info.value) and "\n" not in str(info.value)
