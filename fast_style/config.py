"""Typed configuration: YAML files and dotted ``key=value`` overrides become dataclasses.

Every recipe (optimize, train, compare, ...) declares its settings as a dataclass. This
module turns a YAML file plus command-line overrides into an instance of it, and rejects
unknown keys, wrong types and impossible values with one line that names the key, so a
typo never silently falls back to a default. A dotted override sets exactly one key: inside a
mapping field (``loss.style_layers.relu5_1=0.5``) it adds or changes that entry and keeps the
others; giving a mapping (``loss.style_layers={relu1_1: 1}``) replaces the field.

Constraints ride on the fields: ``Literal[...]`` for choices, and ``field(metadata=...)``
with ``min`` (inclusive) or ``gt`` (exclusive) for numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from fast_style.errors import FastStyleError, show

T = TypeVar("T")


class ConfigError(FastStyleError):
    """A config file or override that cannot be used as given."""


MAX_SIDE = 16384  # the largest image side any setting may ask for (16384^2 is already over the pixel limit)
MAX_INT = 2**53  # no setting needs more; larger ones overflow torch's seeds and C sizes
MAX_STRING = 4096  # the longest path (PATH_MAX) or name a setting may hold
MAX_YAML_NODES = 100_000  # a config expands to far fewer values; an anchor bomb to billions


def positive(default: Any) -> Any:
    """A field that must be > 0 (sizes, steps, learning rates)."""
    return dataclasses.field(default=default, metadata={"gt": 0})


def side(default: Any) -> Any:
    """An image side in pixels: > 0 and at most :data:`MAX_SIDE` (a huge one would exhaust memory)."""
    return dataclasses.field(default=default, metadata={"gt": 0, "max": MAX_SIDE})


def non_negative(default: Any) -> Any:
    """A field that must be >= 0 (loss weights, intervals where 0 means 'never')."""
    return dataclasses.field(default=default, metadata={"min": 0})


def bounded(default: Any, **bounds: float) -> Any:
    """A number with its own ``gt``/``min``/``max`` bounds, where no named helper above fits."""
    return dataclasses.field(default=default, metadata=bounds)


def nested(factory: type) -> Any:
    """A sub-section of the config, built from its own defaults."""
    return dataclasses.field(default_factory=factory)


def mapping(default: dict, **bounds: float) -> Any:
    """A dict-valued field with a fresh copy of ``default``; ``gt``/``min`` bounds apply to each value."""
    return dataclasses.field(default_factory=lambda: dict(default), metadata=bounds)


def sequence(default: list, **bounds: float) -> Any:
    """A list-valued field with a fresh copy of ``default``; ``gt``/``min`` bounds apply to each item."""
    return dataclasses.field(default_factory=lambda: list(default), metadata=bounds)


# ----------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, made strict where users' files go wrong silently.

    * ``1e5`` and ``1e-3`` are numbers (YAML 1.2; PyYAML follows 1.1, where a float needs a dot);
    * a key given twice in one mapping is refused (PyYAML keeps the last one without a word);
    * a document that expands to more than :data:`MAX_YAML_NODES` values through anchors and
      aliases is refused before it is built (a 600-byte "billion laughs" would otherwise hang us).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {show(key)}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared nodes counted once per use)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ConfigError("the YAML refers to itself (a recursive anchor); fix the file")
    open_.add(key)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    else:
        size = 1
    open_.discard(key)
    sizes[key] = min(size, MAX_YAML_NODES + 1)
    return sizes[key]


def parse_yaml(text: str) -> Any:
    """YAML text -> Python data with :class:`_Loader`'s rules; raises yaml.YAMLError or ConfigError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_YAML_NODES:
            raise ConfigError(f"expands to more than {MAX_YAML_NODES:,} values through anchors and aliases "
                              "(a YAML bomb?); write the values out")
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError("nested too deeply to be a config; fix the file") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every way it can fail into one ConfigError line."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block the read forever
        raise ConfigError(f"{path}: not a regular file; pass a YAML file to --config")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the path given to --config") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config ({error.__class__.__name__}); pass a UTF-8 YAML file") from None
    try:
        data = parse_yaml(text)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(error, "problem", None) or "invalid syntax")[:100]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str], cls: type | None = None) -> dict[str, Any]:
    """Set ``a.b.c=value`` overrides into a nested dict; values are parsed as YAML scalars.

    With ``cls`` (the dataclass the dict will become), a key inside a mapping field
    (``loss.style_layers.relu5_1=0.5``) is merged into that field's default when neither the
    file nor an earlier override gave the mapping, so the other layers are kept; a mapping
    value (``loss.style_layers={relu1_1: 1}``) still replaces the whole field.
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. loss.style_weight=5)")
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        except ConfigError as error:
            raise ConfigError(f"override '{key}': {error}") from None
        set_key(data, key, value, cls)
    return data


def set_key(data: dict[str, Any], key: str, value: Any, cls: type | None = None) -> None:
    """Set dotted ``key`` in a nested dict, creating sections on the way.

    A section created here for a mapping field of ``cls`` starts as a copy of the field's
    default rather than empty: otherwise setting one key would silently drop the others.
    """
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = _mapping_default(cls, part)
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{part}' is a value, not a section")
        node = child
        cls = _section_class(cls, part)
    node[parts[-1]] = value


def _field_of(cls: type | None, name: str) -> tuple[Any, dataclasses.Field] | None:
    """(type hint, field) of ``cls.name``, or None where ``cls`` is not a dataclass or has no such field
    (an unknown key is reported later by :func:`from_dict`, with the file it came from)."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if name not in fields:
        return None
    return typing.get_type_hints(cls)[name], fields[name]


def _section_class(cls: type | None, name: str) -> type | None:
    """The dataclass that section ``name`` of ``cls`` becomes, or None (a mapping, or unknown)."""
    found = _field_of(cls, name)
    return found[0] if found and dataclasses.is_dataclass(found[0]) else None


def _mapping_default(cls: type | None, name: str) -> dict[str, Any]:
    """A fresh copy of the default of mapping field ``cls.name``; ``{}`` for anything else."""
    found = _field_of(cls, name)
    if not found or typing.get_origin(found[0]) is not dict:
        return {}
    field = found[1]
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = field.default
    return copy.deepcopy(default) if isinstance(default, dict) else {}


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Iterable[str] = (),
                values: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from defaults, then the YAML file, then ``values`` (flags), then overrides."""
    data = read_yaml(path) if path else {}
    source = str(path) if path else "config"
    for key, value in (values or {}).items():
        if value is not None:
            set_key(data, key, value, cls)
    apply_overrides(data, overrides, cls)
    return from_dict(cls, data, source=source)


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "config", prefix: str = "") -> T:
    """Check ``data`` against dataclass ``cls`` field by field and build it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.')}' must be a section (mapping), got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # keys may mix types (1: x, a: y)
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{str(unknown[0])[:60]}' (known here: {known})")
    kwargs = {}
    for name, value in data.items():
        key = prefix + name
        kwargs[name] = _coerce(hints[name], value, source=source, key=key)
        _check_bounds(fields[name], kwargs[name], source=source, key=key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, *, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    fail = ConfigError(f"{source}: key '{key}' must be {_describe(hint)}, got {_show(value)}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, source=source, prefix=key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source=source, key=key)
            except ConfigError as error:
                errors.append((arg, error))
        for arg, error in errors:  # a list or section of the right shape: its own error names the key inside
            if _shaped_like(arg, value):
                raise error from None
        raise fail
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{source}: key '{key}' must be one of {', '.join(map(str, args))}; got {_show(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise fail
        return [_coerce(args[0], item, source=source, key=f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail
        return {_coerce(args[0], k, source=source, key=key): _coerce(args[1], v, source=source, key=f"{key}.{k}")
                for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if hint is int:
        if isinstance(value, float) and value.is_integer():  # 1e5 from YAML: a whole number written as a float
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= MAX_INT:
                raise ConfigError(f"{source}: key '{key}' must be an integer below {MAX_INT:.0e}, got {show(value)}")
            return value
        raise fail
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{source}: key '{key}' must be a finite number, got {value}")
            return float(value)
        raise fail
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if len(str(value)) > MAX_STRING:  # later messages quote names and paths whole
                raise ConfigError(f"{source}: key '{key[:60]}' must be at most {MAX_STRING} characters, got "
                                  f"{len(str(value)):,}")
            return str(value)
        raise fail
    raise fail


def _shaped_like(hint: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``hint`` (a list for a list, a mapping for a section or a mapping,
    a float for a number), so that its own error, naming the entry and key inside, is the one worth showing."""
    origin = typing.get_origin(hint)
    if isinstance(value, dict):
        return dataclasses.is_dataclass(hint) or origin is dict
    if isinstance(value, float):  # nan or inf for a number: "must be a finite number" says why
        return hint is float
    return isinstance(value, list) and origin is list


def _check_bounds(field: dataclasses.Field, value: Any, *, source: str, key: str) -> None:
    values = value if isinstance(value, list) else value.values() if isinstance(value, dict) else [value]
    for item in values:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if "gt" in field.metadata and not item > field.metadata["gt"]:
            raise ConfigError(f"{source}: key '{key}' must be greater than {field.metadata['gt']}, got {show(item)}")
        if "min" in field.metadata and not item >= field.metadata["min"]:
            raise ConfigError(f"{source}: key '{key}' must be at least {field.metadata['min']}, got {item}")
        if "max" in field.metadata and not item <= field.metadata["max"]:
            raise ConfigError(f"{source}: key '{key}' must be at most {field.metadata['max']}, got {show(item)}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}s"
    if origin is dict:
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _show(value: Any) -> str:
    return show(value, 60)


# ----------------------------------------------------------------------------- writing


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for JSON metadata and the resolved YAML)."""
    return dataclasses.asdict(config)


def dump_yaml(config: Any) -> str:
    """The resolved config as YAML text, in field order."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
