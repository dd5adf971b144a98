"""Typed configuration: dataclasses, TOML files and ``--key value`` overrides.

A config is a dataclass whose fields are plain types (int, float, bool, str, optional
str) or nested dataclasses (sections). It is filled in three layers: the defaults, then
a TOML file, then command-line overrides. Every value is checked against the field's
type; a key that names no field is an error (nanoGPT's idea, without `exec`).

Keys may be written with their section (``model.hidden_size``) or, when the name is
unique across sections, without it (``hidden_size``); dashes and underscores are the same.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import tomllib
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type."""


def field_paths(config: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Map every leaf field's dotted path ("model.hidden_size") to (owner object, field)."""
    paths: dict[str, tuple[Any, dataclasses.Field]] = {}
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            paths.update(field_paths(value, f"{prefix}{field.name}."))
        else:
            field.type = hints[field.name]  # resolve "int" strings (from __future__ annotations)
            paths[prefix + field.name] = (config, field)
    return paths


def resolve_key(config: Any, key: str) -> str:
    """The dotted path a user's key means; ConfigError for unknown or ambiguous keys."""
    key = key.replace("-", "_")
    paths = field_paths(config)
    if key in paths:
        return key
    matches = [path for path in paths if path.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"config key {key!r} is ambiguous: write one of {matches}")
    raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(paths))}")


def convert(value: Any, expected: Any, key: str) -> Any:
    """Check (and, for strings from the command line, parse) `value` as type `expected`."""
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    target = next(option for option in options if option is not type(None))
    if isinstance(value, str) and target is not str:
        value = _parse_string(value, target, key)
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, target) or (target is int and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r} expects {target.__name__}, got {value!r} "
                          f"({type(value).__name__})")
    return value


def _parse_string(text: str, target: type, key: str) -> Any:
    if target is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config key {key!r} expects true/false, got {text!r}")
    try:
        return target(text)
    except ValueError as error:
        raise ConfigError(f"config key {key!r} expects {target.__name__}, got {text!r}") from error


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """Set fields from {key: value}, checking types; returns the same config object."""
    paths = field_paths(config)
    for key, value in overrides.items():
        path = resolve_key(config, key)
        owner, field = paths[path]
        new_value = convert(value, field.type, path)
        choices = field.metadata.get("choices")
        if choices and new_value not in choices:
            raise ConfigError(f"config key {path!r} must be one of {list(choices)}, got {new_value!r}")
        setattr(owner, field.name, new_value)
    return config


def flatten_toml(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden_size": 64}} -> {"model.hidden_size": 64}."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten_toml(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def load_toml(config: Any, path: str | Path) -> Any:
    """Apply a TOML file (sections or flat keys) to `config`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from error
    return apply_overrides(config, flatten_toml(table))


def from_dict(config_type: type, values: dict[str, Any]) -> Any:
    """Rebuild a config saved with `dataclasses.asdict` (checkpoints)."""
    return apply_overrides(config_type(), flatten_toml(values))


def choice(default: Any, choices: tuple, **kwargs: Any) -> Any:
    """A dataclass field restricted to `choices`."""
    return dataclasses.field(default=default, metadata={"choices": choices}, **kwargs)


# ----------------------------------------------------------------------------- command line
@functools.cache
def field_comments(config_type: type) -> dict[str, str]:
    """{field name: its trailing ``# comment``} from the dataclass's source (the help text)."""
    try:
        source = textwrap.dedent(inspect.getsource(config_type))
    except (OSError, TypeError):  # no source (a frozen app): options keep their defaults only
        return {}
    lines = source.splitlines()
    comments = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.end_lineno - 1]
            if "#" in line:
                comments[node.target.id] = line.split("#", 1)[1].strip()
    return comments


def _option_help(owner: Any, field: dataclasses.Field) -> str:
    """'what it is (type, default X; one of a, b)' for one config field."""
    type_name = getattr(field.type, "__name__", str(field.type)).replace("NoneType", "None")
    comment = field_comments(type(owner)).get(field.name, "")
    facts = [type_name, f"default {getattr(owner, field.name)!r}"]
    choices = field.metadata.get("choices")
    if choices:
        facts.append("one of " + ", ".join(map(str, choices)))
    return f"{comment} ({'; '.join(facts)})" if comment else f"({'; '.join(facts)})"


def add_config_options(parser: Any, config: Any, skip: set[str] = frozenset(), *,
                       title: str = "config fields (type-checked)") -> None:
    """One ``--name`` option per config field of `config` (dotted when the short name is
    ambiguous across sections), with the field's comment, type, default and choices as
    its help; ``--name-with-dashes`` is accepted too (not listed twice). Values stay
    strings until `config_from_args` checks them."""
    paths = field_paths(config)
    short_names = [path.rsplit(".", 1)[-1] for path in paths]
    group = parser.add_argument_group(title)
    for path, (owner, field) in paths.items():
        if path in skip:
            continue
        name = path.rsplit(".", 1)[-1]
        flag = name if short_names.count(name) == 1 else path
        metavar = getattr(field.type, "__name__", "VALUE").upper()
        group.add_argument(f"--{flag}", dest=f"cfg:{path}", metavar=metavar, help=_option_help(owner, field))
        if "_" in flag:
            group.add_argument(f"--{flag.replace('_', '-')}", dest=f"cfg:{path}", help=argparse.SUPPRESS)


def config_from_args(args: Any, base: Any, extra: dict[str, Any] | None = None) -> Any:
    """`base` (defaults or a saved config), then ``--config FILE``, then `extra` overrides
    (e.g. ``{"data.path": args.data}``), then the ``--key value`` options."""
    if getattr(args, "config", None):
        load_toml(base, args.config)
    overrides = dict(extra or {})
    overrides.update({key[4:]: value for key, value in vars(args).items()
                      if key.startswith("cfg:") and value is not None})
    return apply_overrides(base, overrides)
