"""Typed config dataclasses from YAML / JSON dicts, with one-line errors: the builder every config
of kflow uses (images and molecules), `key.sub=value` overrides, and config files with a `base`.
Unknown keys get a did-you-mean; wrong types name the key; ints are accepted where floats are
expected (YAML writes 1 for 1.0) and so are YAML 1.1's dot-less exponents (1e-4)."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

from .errors import ConfigError


def build(cls, d: dict):
    """A config dataclass from a dict with the typing rules and one-line errors of Config (unknown
    key, wrong type); range checks belong to the dataclass (`__post_init__`) or `validate`."""
    return _build(cls, d, "")


def _type_ok(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(tp)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _build(cls, d: Any, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {prefix}{near[0]}?)" if near else f"; known keys: {', '.join(sorted(names))}"
        raise ConfigError(f"unknown config key {prefix}{unknown[0]}{hint}")
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in d.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            # a section's unset keys take the parent's defaults for it (its default_factory), which
            # may differ from the section class's own (a molecule run's train section)
            make = fields[name].default_factory
            if make is not dataclasses.MISSING and isinstance(value, dict):
                value = {**dataclasses.asdict(make()), **value}
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
            continue
        if tp is float or (typing.get_origin(tp) in (Union, types.UnionType) and float in typing.get_args(tp)):
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
        if typing.get_origin(tp) is list or any(typing.get_origin(a) is list for a in typing.get_args(tp)):
            if isinstance(value, list):
                inner = next(
                    (typing.get_args(a)[0] for a in (tp, *typing.get_args(tp)) if typing.get_origin(a) is list), None
                )
                if inner is float:
                    value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        if not _type_ok(value, tp):
            tname = getattr(tp, "__name__", str(tp).replace("typing.", ""))
            raise ConfigError(f"config key {prefix}{name} must be {tname}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _parse_value(key: str, text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        why = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise ConfigError(
            f"override {key}={text[:40]!r}: the value is not YAML ({why}); write numbers, true/false, [lists] "
            "or quoted text"
        ) from None


KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # section.key, as in the config files


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """key.sub=value overrides (values parsed as YAML) onto a nested dict."""
    d = json.loads(json.dumps(d))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.steps=200)")
        key, text = item.split("=", 1)
        node = d
        parts = key.split(".")
        if not KEY.fullmatch(key):
            raise ConfigError(
                f"override {item[:60]!r}: {key[:40]!r} is not a config key; "
                "write section.key=value (e.g. train.steps=200)"
            )
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {p} is not a section")
        node[parts[-1]] = _parse_value(key, text)
    return d


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config_file(path: str | Path, _seen: tuple = ()) -> dict:
    """YAML or JSON; a top-level `base: other.yaml` (relative to this file) is merged underneath."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    if path.resolve() in _seen:
        raise ConfigError(f"config {path} includes itself through 'base'")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start} is not); save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if d is None:
        raise ConfigError(f"config file {path} is empty; see configs/ for examples")
    if not isinstance(d, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections")
    base = d.pop("base", None)
    if base is not None:
        d = _merge(read_config_file(path.parent / base, _seen + (path.resolve(),)), d)
    return d
