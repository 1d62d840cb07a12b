"""``dse dashboard [--storage URL|RUN_DIR] [--host H] [--port P]``: optuna-dashboard on a
search's study.

optuna-dashboard is the optional extra ``dashboard`` (``pip install 'dse[dashboard]'``);
it is imported only here, and only when the command runs. ``--storage`` takes a storage
URL, a journal/SQLite file or a run directory (its ``study.db``); without it the newest
run directory under ``results/`` that holds a ``study.db`` is used.

The dashboard shows every trial's user attributes: the hardware fields, ``area_mm2``,
``tdp_w``, ``samples_per_s``, the constraint values (``constraint_*``) and ``feasible``.
optuna-dashboard 0.21 does not read Optuna 5 constraints (``docs/sources.md`` E2),
so its multi-objective "best trials" ignore them: filter on ``feasible``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dse.errors import ConfigError, DSEError

HINT = "pip install 'dse[dashboard]'"


class DashboardMissing(DSEError):
    """optuna-dashboard is not installed (exit 1)."""

    exit_code = 1


def _import_dashboard() -> Any:
    try:
        import optuna_dashboard
    except ImportError:
        raise DashboardMissing(f"optuna-dashboard is not installed; {HINT}") from None
    return optuna_dashboard


def latest_run_storage(results: Path = Path("results")) -> str:
    """The newest ``results/*/study.db`` (by modification time)."""
    dbs = sorted(results.glob("*/study.db"), key=lambda p: p.stat().st_mtime)
    if not dbs:
        raise ConfigError(f"no --storage given and no run directory with a study.db under "
                          f"{results}/; pass --storage RUN_DIR or a storage URL")
    return str(dbs[-1].parent)


def resolve(storage: str | None) -> Any:
    """Parse ``--storage`` (a run directory must hold a study) into a StorageSpec."""
    from search.distributed import parse_storage

    s = storage or latest_run_storage()
    p = Path(s)
    if p.is_dir() and not any((p / f).exists() for f in ("study.db", "study.log")):
        raise ConfigError(f"run directory {p} holds no study (study.db or study.log); "
                          "was it written by `dse search`?")
    spec = parse_storage(s)
    if spec.backend in ("sqlite", "journal") and not Path(spec.path).exists():
        raise ConfigError(f"--storage {spec.display}: no such file")
    return spec


def make_app(storage: str | None) -> tuple[Any, Any]:
    """(WSGI app, StorageSpec) of optuna-dashboard on ``storage`` (used by tests too)."""
    od = _import_dashboard()
    from search.distributed import open_storage

    spec = resolve(storage)
    return od.wsgi(open_storage(spec)), spec


def _check_bind(host: str, port: int) -> None:
    """Bind ``host:port`` once before serving, so an address the machine does not have
    or a port in use is a one-line error before the server prints anything."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:  # not an address: bad input
        raise ConfigError(f"--host {host}: not an address this machine can serve on "
                          f"({getattr(e, 'strerror', None) or e})") from None
    family, kind, proto, _, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
    except OSError as e:
        import errno

        if e.errno == errno.EADDRNOTAVAIL:  # an address of another machine
            raise ConfigError(f"--host {host}: not an address of this machine "
                              f"({e.strerror})") from None
        raise DSEError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    od = _import_dashboard()
    from search.distributed import open_storage, study_names

    spec = resolve(args.storage)
    _check_bind(args.host, args.port)  # a bad host or a busy port: one line, no banner
    st = open_storage(spec)
    url = f"http://{args.host}:{args.port}/dashboard/"
    sys.stderr.write(f"dse dashboard: {spec.display} ({', '.join(study_names(st)) or 'no studies'})"
                     f" at {url} — Ctrl-C to stop\n")
    sys.stderr.flush()
    try:
        od.run_server(st, host=args.host, port=args.port)
    except OSError as e:
        raise DSEError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from None
    return {"storage": spec.display, "url": url, "stopped": True}


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    return f"dashboard on {result['storage']} stopped"
