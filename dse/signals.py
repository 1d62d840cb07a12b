"""Signals held back while a few storage writes must happen together (core: no dse
dependencies).

:func:`signals_held` defers Ctrl-C (SIGINT) and SIGTERM in the main thread until the block
ends, then delivers each one that arrived, in order, to the handler that was installed: a
stopped worker never leaves a trial failed without its retry enqueued, a search never
writes a batch of trials without counting it (and then writes it again)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["signals_held", "sigterm_raises"]

HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends (main thread only; elsewhere a
    no-op). Python-level, not a signal mask: with a mask the heartbeat thread would take
    the signal and Python would still run its handler in the main thread. A signal that is
    ignored (``SIG_IGN``) stays ignored; one whose handler Python did not install is left
    alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old: dict[signal.Signals, Any] = {}

    def record(signum: int, _frame: Any) -> None:
        got.append(signum)

    for sig in HELD:
        handler = signal.getsignal(sig)
        if handler is None or handler is signal.SIG_IGN:
            continue
        old[sig] = signal.signal(sig, record)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(got):  # each one once, in the order they came
            signal.raise_signal(signum)


@contextlib.contextmanager
def sigterm_raises(exc_type: type[BaseException]) -> Iterator[None]:
    """In the main thread, SIGTERM raises ``exc_type`` for the block (elsewhere a no-op);
    the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise exc_type()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
