"""Loading YAML/JSON files and building validated dataclasses from dicts.

Every failure is a :class:`~dse.errors.ConfigError` naming the file and the problem.

>>> from dse.types import SystemConfig
>>> from_dict(SystemConfig, {"devices_per_node": 4}, "system").devices_per_node
4
>>> from_dict(SystemConfig, {"devices_per_nod": 4}, "system")
Traceback (most recent call last):
...
dse.errors.ConfigError: system: unknown field 'devices_per_nod'; valid fields: ...
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dse.errors import ConfigError, DSEError

T = TypeVar("T")


MAX_CONFIG_BYTES = 16 * 2**20
"""Largest YAML/JSON input read (16 MiB: a model or hardware file is a few kB)."""


def read_input(path: str | Path, *, max_bytes: int, what: str,
               error: type[DSEError] = ConfigError) -> bytes:
    """The bytes of a user's input file: a regular file (through symlinks) of at most
    ``max_bytes`` — never a device, FIFO or socket (which could block or never end)."""
    import os
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except (OSError, ValueError) as e:
        raise error(f"{p}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{p}: is a directory, expected {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if (
            stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else
            "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise error(f"{p}: is {kind}, expected {what} (a regular file)")
    if st.st_size > max_bytes:
        raise error(f"{p}: {st.st_size} bytes is too large for {what} (at most "
                    f"{max_bytes // 2**20} MiB)")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:  # grew while we read it
        raise error(f"{p}: too large for {what} (at most {max_bytes // 2**20} MiB)")
    return data


_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader on libyaml's C parser where PyYAML was built with it (the same
resolver and constructors as ``yaml.safe_load``, several times faster to parse the
technology tables and presets every run reads), else the pure-Python one."""


class _DuplicateKey(ValueError):
    """A mapping names one key twice (the parsers would keep the last silently)."""


class _UniqueKeyLoader(_SAFE_LOADER):  # type: ignore[misc, valid-type]
    """:data:`_SAFE_LOADER` that refuses a mapping naming a key twice."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the constructor says so
                    break
                if dup:
                    raise _DuplicateKey(f"key {key!r} appears twice (at line "
                                        f"{key_node.start_mark.line + 1}); give it once")
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"key {k!r} appears twice; give it once")
        out[k] = v
    return out


def load_mapping(path: str | Path, error: type[DSEError] = ConfigError) -> dict[str, Any]:
    """Read a YAML or JSON file whose top level is a mapping (a key named twice in any
    mapping is an error: the parsers would keep the last one silently)."""
    p = Path(path)
    raw = read_input(p, max_bytes=MAX_CONFIG_BYTES, what="a YAML or JSON file", error=error)
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not content
    except UnicodeDecodeError as e:
        raise error(f"{p}: cannot read as UTF-8 text ({e.__class__.__name__})") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise error(f"{p}: {e}") from None
    except json.JSONDecodeError as e:
        raise error(f"{p}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{p}: malformed YAML{where}: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise error(f"{p}: nested too deeply to parse") from None
    except (ValueError, TypeError, OverflowError) as e:
        # PyYAML raises these (not YAMLError) for a bad scalar under an explicit tag,
        # e.g. ``!!int four`` or ``!!float infa``
        msg = " ".join(str(e).split())[:200]
        if "int_max_str_digits" in msg:  # Python's guard against huge integer literals
            msg = "a number with more than 4300 digits"
        raise error(f"{p}: malformed {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                    f"{msg}") from None
    if not isinstance(data, dict):
        raise error(f"{p}: top level must be a mapping of keys to values, got "
                    f"{type(data).__name__}")
    return data


def from_dict(cls: type[T], data: Any, where: str, error: type[DSEError] = ConfigError) -> T:
    """Build the frozen dataclass ``cls`` from ``data``, rejecting unknown/missing fields."""
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise error(f"{where}: unknown field {unknown[0]!r}; valid fields: "
                    f"{', '.join(sorted(fields))}")
    missing = [
        n for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise error(f"{where}: missing required field {missing[0]!r}")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except DSEError as e:
        raise error(f"{where}: {e}") from None
    except (TypeError, ValueError) as e:
        raise error(f"{where}: {e}") from None
