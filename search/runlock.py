"""One search at a time per run directory and per storage file.

Two ``dse search`` processes writing one study (the same ``--out``, or the same SQLite or
journal file) would evaluate every design twice and interleave their trials. A search
holds an exclusive ``flock`` on ``OUT/.dse-search.lock`` (and on ``.NAME.dse-lock`` beside
a storage file outside the run directory) for its whole run; the kernel drops it when the
process ends, however it ends (even SIGKILL), so a lock is never stale. The file records
the owner's pid, host and start time for the message the second search prints. Adding
processes to one study is what ``--jobs`` and ``dse worker`` are for.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dse.errors import ConfigError

__all__ = ["LOCK_NAME", "run_lock", "sigterm_stops"]

LOCK_NAME = ".dse-search.lock"


def _owner(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8") or "{}"))
    except (OSError, ValueError, TypeError):
        return {}


@contextlib.contextmanager
def run_lock(paths: list[tuple[Path, str]]) -> Iterator[None]:
    """Hold the lock files ``paths`` (``(lock file, what it guards)``) for the block, or
    raise :class:`ConfigError` (exit 2) naming the process that holds one."""
    import fcntl

    held: list[int] = []
    try:
        for path, what in paths:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ConfigError(f"{what}: cannot create the lock file {path} "
                                  f"({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                o = _owner(path)
                since = (time.strftime("%H:%M:%S", time.localtime(float(o["started"])))
                         if isinstance(o.get("started"), (int, float)) else "?")
                raise ConfigError(
                    f"{what} is in use by another dse search (pid {o.get('pid', '?')} on "
                    f"{o.get('host', '?')}, since {since}); wait for it to finish, use "
                    "another --out, or add processes to its study with `dse worker`"
                ) from None
            held.append(fd)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": time.time()}).encode())
        yield
    finally:
        for fd in held:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing drops the flock; the file stays (harmless)


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """In the main thread, SIGTERM raises :class:`KeyboardInterrupt` for the block: a
    search stopped by a scheduler or ``kill`` saves what it scored, like Ctrl-C."""
    from dse.signals import sigterm_raises

    with sigterm_raises(KeyboardInterrupt):
        yield
