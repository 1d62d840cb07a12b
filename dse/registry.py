"""One small registry for named things (workloads, hardware presets, searchers).

Unknown names raise an error that lists the valid ones:

>>> r: Registry[int] = Registry("searcher", ConfigError)
>>> r.register("random", 1)
>>> r.get("random")
1
>>> r.get("tpe")
Traceback (most recent call last):
...
dse.errors.ConfigError: unknown searcher 'tpe'; valid: random
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dse.errors import ConfigError, DSEError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object map with helpful errors. Entries may be lazy factories."""

    def __init__(self, what: str, error: type[DSEError] = ConfigError) -> None:
        self._what = what
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> None:
        if name in self._items:
            raise self._error(f"{self._what} {name!r} is already registered")
        self._items[name] = obj

    def decorator(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.register(name, obj)
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise self._error(
                f"unknown {self._what} {name!r}; valid: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
