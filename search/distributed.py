"""Searches beyond one process: shared Optuna studies, workers, one global budget, resume.

A distributed search is an Optuna study in a shared storage (PostgreSQL across machines,
a journal file or SQLite on one machine) that any number of workers fill together:

* The process that **creates** the study writes everything a worker needs into the
  study's user attributes (``dse:settings``: workloads, area, power, objective, devices,
  searcher, seed, design space, budget …) and then **enqueues exactly ``budget`` slot
  trials** (``WAITING``). For the ``random`` and ``exhaustive`` searchers each slot
  carries its design (``fixed_params``), drawn from the seeded design space, so the result
  does not depend on how many workers run it; for ``optuna`` (TPE) the slot is empty and
  the sampler of whichever worker pops it proposes the design from the shared history.
* Workers only ever **pop** waiting slots (an atomic ``WAITING → RUNNING`` transition in
  every Optuna storage) and never create trials: ``N`` workers together finish exactly
  ``budget`` trials, with unique trial numbers, however they interleave. This is
  ``MaxTrialsCallback`` semantics made exact: the budget is counted in the storage, not
  per process.
* Each finished trial is written when it finishes, so a killed worker loses only the trial
  in flight. That trial goes back to the queue: on RDB storages by the heartbeat
  (``fail_stale_trials`` + :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, the
  Optuna 5 name of ``RetryFailedTrialCallback``), on one machine also as soon as the
  owning process is seen dead (each claimed trial records ``host:pid``).
* ``dse worker --storage URL --study NAME`` rebuilds the objective from the study alone.

Every message shows storage URLs through :func:`redact_url`; an unreachable storage raises
:class:`~dse.errors.StorageError` (exit 1) naming host and port, never the password.

>>> redact_url("postgresql+psycopg://dse:s3cret@db.example:5432/studies")
'postgresql+psycopg://dse:***@db.example:5432/studies'
>>> parse_storage("postgresql://u:pw@127.0.0.1:6543/x").display
'postgresql+psycopg://u:***@127.0.0.1:6543/x'
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import multiprocessing
import os
import random
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, DSEError, StorageError
from dse.registry import Registry

__all__ = [
    "BUDGET_ATTR",
    "JOURNAL_FILE",
    "OBJECTIVE_FACTORIES",
    "SETTINGS_ATTR",
    "STUDY_DB",
    "StorageSpec",
    "SyntheticObjective",
    "TrialObjective",
    "WorkerReport",
    "build_objective",
    "create_or_load_study",
    "load_worker_study",
    "open_storage",
    "parse_storage",
    "recover_orphans",
    "redact_url",
    "repair_slots",
    "run_parallel_jobs",
    "run_worker",
    "study_budget",
    "study_names",
    "study_progress",
    "study_settings",
]

SETTINGS_ATTR = "dse:settings"
"""Study user attribute holding the JSON settings a worker rebuilds the objective from."""
BUDGET_ATTR = "dse:budget"
"""Study user attribute: the global budget (finished trials wanted); written last at
creation, so its presence means the study is ready for workers."""
DEFAULT_SLOT_WINDOW = 64
"""Waiting slots kept ahead of the workers (setting ``slot_window``); at least workers ×
``worker_batch`` for every worker to fill its batches."""
DEFAULT_WORKER_BATCH = 8
"""Slots a worker claims and evaluates together when the objective has a vectorized
``evaluate_trials`` (setting ``worker_batch``); a killed worker loses this batch."""
SLOT_ATTR = "dse:slot"
"""Trial user attribute: index of the budget slot this trial fills (copied on retries)."""
DUPLICATE_ATTR = "dse:duplicate_of"
"""Trial system attribute of a withdrawn race duplicate: the number of the live copy."""
OWNER_ATTR = "dse:worker"
"""Trial system attribute: ``host:pid`` of the process that claimed it."""
JOURNAL_FILE = "study.log"
"""Journal file used inside a run directory for ``--jobs N``."""
STUDY_DB = "study.db"
"""SQLite file used inside a run directory (the run directory's default storage)."""

_JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
STORAGE_FORMS = ("sqlite:///PATH.db, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
                 "(or postgresql+psycopg://...), mysql+pymysql://..., journal:PATH, "
                 "PATH.log/.jsonl/.journal (journal file), PATH.db, or a run directory")

# Settings keys that may differ between the creator and a later run on the same study
# (everything else identifies the search and must match).
_MUTABLE_SETTINGS = frozenset({"budget", "heartbeat_interval_s", "grace_period_s",
                               "max_retry", "out_dir", "jobs", "top_k", "storage", "study"})

_log = logging.getLogger("dse.search.distributed")


# --------------------------------------------------------------------------- storage URLs


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``?password=``).

    >>> redact_url("postgresql://alice:pa:ss@h/db?sslmode=require&password=x")
    'postgresql://alice:***@h/db?sslmode=require&password=***'
    >>> redact_url("sqlite:////tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    s = str(url)
    # userinfo: scheme://user:password@host -> the password is everything up to the last
    # '@' before the path (passwords may contain ':' and '@').
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@", s)
    if m:
        userinfo = m.group(2)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            s = f"{m.group(1)}{user}:***@{s[m.end():]}"
    s = re.sub(r"([?&](?:password|passwd|pwd)=)[^&#]*", r"\1***", s, flags=re.IGNORECASE)
    return s


def _secrets_of(url: str) -> list[str]:
    """The password substrings of ``url`` (to scrub from third-party error texts)."""
    out = []
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)@", url)
    if m and ":" in m.group(1):
        out.append(m.group(1).split(":", 1)[1])
    out += re.findall(r"[?&](?:password|passwd|pwd)=([^&#]*)", url, flags=re.IGNORECASE)
    secrets = [s for s in out if s]
    from urllib.parse import unquote

    secrets += [unquote(s) for s in secrets if unquote(s) != s]
    return sorted(set(secrets), key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """One line of ``text`` without the passwords of ``url``."""
    line = " ".join(str(text).split())
    for secret in _secrets_of(url):
        line = line.replace(secret, "***")
    return line


@dataclass(frozen=True, kw_only=True)
class StorageSpec:
    """A parsed ``--storage`` value.

    ``url`` is the full SQLAlchemy URL or journal path (may contain a password: never
    print it); ``display`` is the redacted form for messages.
    """

    kind: str
    """``rdb`` (SQLAlchemy URL) or ``journal`` (journal file)."""
    url: str = field(repr=False)
    display: str
    backend: str
    """``sqlite``, ``postgresql``, ``mysql`` or ``journal``."""
    host: str = ""
    port: int | None = None
    path: str = ""
    """File of a SQLite or journal storage."""

    @property
    def where(self) -> str:
        """``host:port`` of a server storage, the file of a local one."""
        if self.backend in ("postgresql", "mysql"):
            return f"{self.host or 'localhost'}:{self.port}"
        return self.path

    @property
    def multi_host(self) -> bool:
        """Whether workers on other machines can share this storage."""
        return self.backend in ("postgresql", "mysql")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def parse_storage(storage: str | os.PathLike[str], *, run_dir: str | os.PathLike[str] | None
                  = None) -> StorageSpec:
    """Validate a ``--storage`` value (see :data:`STORAGE_FORMS`).

    A run directory means its ``study.db`` (or its ``study.log`` journal when only that
    exists). ``postgresql://`` picks the installed driver (psycopg 3, else psycopg2).
    Raises :class:`ConfigError` for malformed values.

    >>> parse_storage("journal:/tmp/s.log").kind
    'journal'
    >>> parse_storage("sqlite:////tmp/s.db").path
    '/tmp/s.db'
    >>> parse_storage("redis://h/0")
    Traceback (most recent call last):
    ...
    dse.errors.ConfigError: --storage 'redis://h/0': unsupported scheme 'redis'; use ...
    """
    s = str(storage).strip()
    if not s:
        raise ConfigError(f"--storage is empty; use one of: {STORAGE_FORMS}")
    try:
        return _parse_storage(s)
    except (ValueError, OSError, RuntimeError) as e:  # NUL bytes, unknown ~user, ...
        if isinstance(e, DSEError):
            raise
        raise ConfigError(f"--storage {redact_url(s)!r} is not a usable path or URL "
                          f"({e.__class__.__name__}: {_scrub(str(e), s)[:80]})") from None


def _path(s: str) -> Path:
    """``s`` as a path, ``~`` expanded where it names a home directory."""
    try:
        return Path(s).expanduser()
    except RuntimeError:  # ~unknownuser
        return Path(s)


def _parse_storage(s: str) -> StorageSpec:
    if s.startswith("journal:") and not s.startswith("journal://"):
        path = s[len("journal:"):]
        if not path:
            raise ConfigError("--storage 'journal:' needs a file path, e.g. journal:run/study.log")
        p = _path(path).resolve()
        return StorageSpec(kind="journal", url=str(p), display=f"journal:{p}",
                           backend="journal", path=str(p))
    if "://" in s:
        return _parse_url(s)
    p = _path(s)
    if p.is_dir():
        db, journal = p / STUDY_DB, p / JOURNAL_FILE
        if journal.exists() and not db.exists():
            p = journal
        else:
            p = db
    suffix = p.suffix.lower()
    if suffix in _SQLITE_SUFFIXES:
        return _parse_url(f"sqlite:///{p.resolve()}")
    if suffix in _JOURNAL_SUFFIXES:
        r = p.resolve()
        return StorageSpec(kind="journal", url=str(r), display=f"journal:{r}",
                           backend="journal", path=str(r))
    raise ConfigError(f"--storage {redact_url(s)!r} is not a storage: no such run directory "
                      f"and not a URL or storage file; use one of: {STORAGE_FORMS}")


def _parse_url(s: str) -> StorageSpec:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact_url(s)
    try:
        u = make_url(s)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"--storage {shown!r} is not a valid URL "
                          f"({_scrub(str(e), s)}); use one of: {STORAGE_FORMS}") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ConfigError(f"--storage {shown!r}: an in-memory SQLite database cannot be "
                              "shared or resumed; give a file, e.g. sqlite:///run/study.db")
        path = str(_path(u.database).resolve())
        url = u.set(database=path).render_as_string(hide_password=False)
        return StorageSpec(kind="rdb", url=url, display=redact_url(url), backend="sqlite",
                           path=path)
    if backend in ("postgresql", "mysql"):
        if backend == "postgresql" and "+" not in u.drivername and (
                _has_module("psycopg") or not _has_module("psycopg2")):
            u = u.set(drivername="postgresql+psycopg")  # psycopg 3 (the postgres extra)
        if not u.database:
            raise ConfigError(f"--storage {shown!r}: missing database name (…/DBNAME)")
        try:
            port = int(u.port) if u.port is not None else _DEFAULT_PORTS[backend]
        except ValueError:
            raise ConfigError(f"--storage {shown!r}: port must be a number") from None
        url = u.render_as_string(hide_password=False)
        return StorageSpec(kind="rdb", url=url, display=redact_url(url), backend=backend,
                           host=u.host or "localhost", port=port)
    raise ConfigError(f"--storage {shown!r}: unsupported scheme {u.drivername!r}; use one "
                      f"of: {STORAGE_FORMS}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's INFO logs and experimental warnings (stderr is for our messages)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _storage_error(spec: StorageSpec, e: BaseException) -> StorageError:
    reason = _scrub(str(e).split("\n")[0] if str(e) else e.__class__.__name__, spec.url)
    # psycopg/libpq: 'connection failed: connection to server at "h", port p failed: X'
    m = re.findall(r"failed:\s*([^:]+?)(?:\s+Is the server|\(Background|$)", reason)
    if m:
        reason = m[-1].strip().rstrip(".")
    reason = re.sub(r"\s*\(Background on this error.*$", "", reason)
    reason = re.sub(r"^\(\S+\)\s*", "", reason)[:160]
    if spec.multi_host:
        name = "PostgreSQL" if spec.backend == "postgresql" else "MySQL"
        return StorageError(f"cannot reach {name} at {spec.where} (storage {spec.display}): "
                            f"{reason}")
    return StorageError(f"cannot open storage {spec.display}: {reason}")


def open_storage(storage: StorageSpec | str, *, heartbeat_interval_s: int | None = None,
                 grace_period_s: int | None = None, max_retry: int | None = 3,
                 connect_timeout_s: int = 10) -> optuna.storages.BaseStorage:
    """Open (and for RDB, connect to and initialize) a storage.

    With ``heartbeat_interval_s`` an RDB storage records heartbeats of running trials;
    trials silent for ``grace_period_s`` are failed by :func:`optuna.storages.fail_stale_trials`
    and re-enqueued (up to ``max_retry`` times) by ``RetryHeartbeatStaleTrialCallback``.
    Journal storages have no heartbeat; see :func:`recover_orphans`.

    Raises :class:`StorageError` (exit 1) naming host and port (redacted URL) when the
    server cannot be reached, or a driver is missing.
    """
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    with _quiet():
        if spec.kind == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            try:
                Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
                return JournalStorage(JournalFileBackend(spec.path))
            except OSError as e:
                raise StorageError(f"cannot open journal storage {spec.path}: "
                                   f"{e.strerror or e}") from None
        engine_kwargs: dict[str, Any] = {}
        if spec.backend == "sqlite":
            try:
                Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot open storage {spec.display}: "
                                   f"{e.strerror or e}") from None
            # concurrent writers wait for the lock instead of failing at once
            engine_kwargs["connect_args"] = {"timeout": 120}
        elif spec.backend == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": int(connect_timeout_s)}
            engine_kwargs["pool_pre_ping"] = True
        elif spec.backend == "mysql":
            engine_kwargs["pool_pre_ping"] = True
        kwargs: dict[str, Any] = {}
        if heartbeat_interval_s is not None:
            kwargs = {
                "heartbeat_interval": int(heartbeat_interval_s),
                "grace_period": int(grace_period_s or 4 * heartbeat_interval_s),
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
            }
        try:
            if spec.backend == "sqlite":
                _sqlite_wal(spec)
            rdb = _rdb_storage(spec.url, engine_kwargs, kwargs)
            if spec.backend == "sqlite":
                _sqlite_fast_commits(rdb)
            return rdb
        except ModuleNotFoundError as e:
            hint = (" (pip install 'dse[postgres]')" if spec.backend == "postgresql" else "")
            raise StorageError(f"storage {spec.display} needs the missing Python module "
                               f"{e.name!r}{hint}") from None
        except Exception as e:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
            raise _storage_error(spec, e) from None


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], kwargs: dict[str, Any]
                 ) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``; retried when processes that start together race to create the
    schema of a fresh database (the loser sees the winner's tables or version row)."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except (IntegrityError, ProgrammingError, OperationalError) as e:
            text = str(e).lower()
            racing = ("alembic_version" in text or "already exists" in text
                      or "unique constraint" in text or "database is locked" in text)
            if not racing or attempt == 3:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlite_wal(spec: StorageSpec) -> None:
    """Switch a SQLite storage to write-ahead logging (persistent in the file): readers no
    longer block the writer and a commit appends to the log instead of rewriting pages.
    Safe against killed processes; not for network file systems (neither is SQLite)."""
    import sqlite3

    con = sqlite3.connect(spec.path, timeout=5)
    try:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass  # another process holds the file (needs an exclusive lock): keep its mode
    finally:
        con.close()


def _sqlite_fast_commits(rdb: optuna.storages.RDBStorage) -> None:
    """``synchronous=NORMAL`` on every connection: in WAL mode a commit then survives a
    killed process (what resume needs), only not a power cut, and costs no fsync."""
    from sqlalchemy import event

    def on_connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.execute("PRAGMA synchronous=NORMAL")

    event.listen(rdb.engine, "connect", on_connect)
    rdb.engine.dispose()  # reconnect the pooled connections with the pragma


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in ``storage``, sorted."""
    with _quiet():
        return sorted(optuna.get_all_study_names(storage))


# --------------------------------------------------------------------------- objectives


class TrialObjective(Protocol):
    """What a worker needs to run trials of a study (built from the study's settings).

    ``__call__`` evaluates one Optuna trial (it calls ``trial.suggest_*`` for every design
    parameter, so slots carrying ``fixed_params`` evaluate exactly that design) and returns
    the value(s) in the order of ``directions``.
    """

    directions: list[str]
    metric_names: list[str]

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]: ...

    def slot_params(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Fixed params of budget slots ``start..stop-1`` (``{}``: the sampler decides).
        Must be a pure function of the settings (same on every machine)."""
        ...

    def sampler(self, worker_seed: int) -> optuna.samplers.BaseSampler:
        """The sampler a worker uses for slots without fixed params."""
        ...


ObjectiveFactory = Callable[[Mapping[str, Any]], TrialObjective]
OBJECTIVE_FACTORIES: Registry[ObjectiveFactory] = Registry("objective factory", ConfigError)
"""``settings["objective_factory"]`` → factory. ``dse`` (the default) is the accelerator
search objective of :mod:`search.optuna_search`; ``synthetic`` a closed-form objective over
a small integer grid, used to measure storage overhead and to test the worker machinery
independently of the cost models."""


def build_objective(settings: Mapping[str, Any]) -> TrialObjective:
    """The objective described by a study's ``settings`` (see :data:`OBJECTIVE_FACTORIES`)."""
    name = str(settings.get("objective_factory", "dse"))
    return OBJECTIVE_FACTORIES.get(name)(settings)


def _dse_objective(settings: Mapping[str, Any]) -> TrialObjective:
    try:
        from search import optuna_search
    except ImportError as e:
        raise ConfigError(f"the accelerator objective is not available ({e})") from None
    factory = getattr(optuna_search, "objective_from_settings", None)
    if factory is None:
        raise ConfigError("search.optuna_search has no objective_from_settings(settings); "
                          "this dse version cannot run workers for accelerator studies")
    return factory(settings)  # type: ignore[no-any-return]


OBJECTIVE_FACTORIES.register("dse", _dse_objective)


class SyntheticObjective:
    """A closed-form objective on an integer grid (``x`` in ``0..nx-1``, ``y`` in
    ``0..ny-1``) whose unique maximum sits at a seed-dependent point. Settings keys:
    ``grid`` ([nx, ny], default [8, 8]), ``seed``, ``searcher`` (``random``,
    ``exhaustive`` or ``optuna``), ``budget``, ``work_s`` (seconds of sleep per
    evaluation — of one trial, or of a batch in :meth:`evaluate_trials` — to emulate an
    expensive vectorized cost model).

    >>> obj = SyntheticObjective({"grid": [4, 3], "seed": 1, "searcher": "exhaustive"})
    >>> len(obj.slot_params(0, 12)), obj.slot_params(0, 2)
    (12, [{'x': 0, 'y': 0}, {'x': 0, 'y': 1}])
    >>> max(obj.value(p["x"], p["y"]) for p in obj.slot_params(0, 12)) == obj.optimum()[2]
    True
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.metric_names = ["score"]
        self.directions = ["maximize"]
        grid = settings.get("grid", [8, 8])
        if (not isinstance(grid, (list, tuple)) or len(grid) != 2
                or not all(isinstance(g, int) and g >= 1 for g in grid)):
            raise ConfigError(f"synthetic objective: grid={grid!r} must be [nx, ny] >= 1")
        self.nx, self.ny = int(grid[0]), int(grid[1])
        self.seed = int(settings.get("seed", 0))
        self.searcher = str(settings.get("searcher", "random"))
        if self.searcher not in ("random", "exhaustive", "optuna"):
            raise ConfigError(f"synthetic objective: searcher={self.searcher!r}; valid: "
                              "exhaustive, optuna, random")
        self.work_s = float(settings.get("work_s", 0.0))
        rng = np.random.default_rng(self.seed)
        self.cx = float(rng.uniform(0, self.nx - 1))
        self.cy = float(rng.uniform(0, self.ny - 1))

    def value(self, x: int, y: int) -> float:
        """Score of grid point (x, y): a paraboloid with a small cross term (unique max)."""
        return float(100.0 - (x - self.cx) ** 2 - 2.0 * (y - self.cy) ** 2
                     - 0.1 * (x - self.cx) * (y - self.cy))

    def optimum(self) -> tuple[int, int, float]:
        """The exhaustive optimum (x, y, value)."""
        best = max(((x, y) for x in range(self.nx) for y in range(self.ny)),
                   key=lambda p: self.value(*p))
        return best[0], best[1], self.value(*best)

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, self.nx - 1)
        y = trial.suggest_int("y", 0, self.ny - 1)
        if self.work_s > 0:
            time.sleep(self.work_s)
        return self.value(x, y)

    def evaluate_trials(self, trials: Sequence[optuna.Trial]) -> list[float]:
        """A batch at the cost of one evaluation (``work_s`` once), as a vectorized cost
        model would."""
        xy = [(t.suggest_int("x", 0, self.nx - 1), t.suggest_int("y", 0, self.ny - 1))
              for t in trials]
        if self.work_s > 0:
            time.sleep(self.work_s)
        return [self.value(x, y) for x, y in xy]

    def slot_params(self, start: int, stop: int) -> list[dict[str, Any]]:
        if self.searcher == "optuna":
            return [{} for _ in range(start, stop)]
        if self.searcher == "exhaustive":
            pts = [{"x": x, "y": y} for x in range(self.nx) for y in range(self.ny)]
            return [pts[i % len(pts)] for i in range(start, stop)]
        out = []
        for i in range(start, stop):  # one stream per slot: independent of the split
            r = np.random.default_rng([self.seed, i])
            out.append({"x": int(r.integers(self.nx)), "y": int(r.integers(self.ny))})
        return out

    def sampler(self, worker_seed: int) -> optuna.samplers.BaseSampler:
        if self.searcher == "optuna":
            return optuna.samplers.TPESampler(seed=worker_seed)
        return optuna.samplers.RandomSampler(seed=worker_seed)


OBJECTIVE_FACTORIES.register("synthetic", SyntheticObjective)


# --------------------------------------------------------------------------- studies


def _directions(objective: TrialObjective) -> list[str]:
    dirs = [str(d).lower() for d in objective.directions]
    bad = [d for d in dirs if d not in ("maximize", "minimize")]
    if bad or not dirs:
        raise ConfigError(f"objective directions {dirs!r} must be maximize/minimize")
    return dirs


def _settings_json(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(settings), allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"search settings are not JSON-serializable: {e}") from None


def workload_fingerprints(workloads: Sequence[str]) -> dict[str, str]:
    """sha256 of each workload given as a file (config.json, .onnx): workers on other
    machines check they read the same file. Zoo names are skipped."""
    out = {}
    for w in workloads:
        p = Path(w)
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_workload_files(settings: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` if a workload file of the study is missing or differs
    here (a worker on another machine needs the same file at the same path)."""
    for path, digest in dict(settings.get("workload_files", {})).items():
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"workload file {path} of this study does not exist on this "
                              f"machine ({socket.gethostname()}); copy it to the same path")
        if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            raise ConfigError(f"workload file {path} differs from the one the study was "
                              "created with (sha256 mismatch)")


def study_settings(study: optuna.Study) -> dict[str, Any]:
    """The settings stored in ``study`` (:data:`SETTINGS_ATTR`); ConfigError if absent."""
    attrs = study.user_attrs
    if SETTINGS_ATTR not in attrs:
        raise ConfigError(f"study {study.study_name!r} has no {SETTINGS_ATTR!r} attribute: "
                          "it was not created by `dse search --storage ... --study ...` for "
                          "workers (batched single-process studies cannot be joined)")
    s = attrs[SETTINGS_ATTR]
    if not isinstance(s, dict):
        raise ConfigError(f"study {study.study_name!r}: {SETTINGS_ATTR} is not a mapping")
    return s


def _slot_of(t: FrozenTrial) -> int | None:
    i = t.user_attrs.get(SLOT_ATTR)
    return i if isinstance(i, int) and not isinstance(i, bool) else None


def study_budget(study: optuna.Study) -> int:
    """The study's global budget (0 while its creator is still writing it)."""
    b = study.user_attrs.get(BUDGET_ATTR, 0)
    return int(b) if isinstance(b, int) else 0


def _window(settings: Mapping[str, Any]) -> int:
    w = settings.get("slot_window", DEFAULT_SLOT_WINDOW)
    if not isinstance(w, int) or isinstance(w, bool) or w < 1:
        raise ConfigError(f"slot_window={w!r} must be a positive integer")
    return w


def _enqueue_slot(study: optuna.Study, objective: TrialObjective, i: int) -> None:
    params = objective.slot_params(i, i + 1)[0]
    study.enqueue_trial(dict(params), user_attrs={SLOT_ATTR: i})


def repair_slots(study: optuna.Study, objective: TrialObjective, budget: int, window: int,
                 trials: Sequence[FrozenTrial] | None = None) -> list[int]:
    """Enqueue every slot below ``budget`` that is missing and whose turn has come (it is
    in the first window, or its predecessor ``i - window`` was claimed at least once).
    Idempotent; a duplicate created by a race is withdrawn when claimed. Returns the slot
    indices enqueued."""
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    state_of: dict[int, list[TrialState]] = {}
    for t in trials:
        i = _slot_of(t)
        if i is not None:
            state_of.setdefault(i, []).append(t.state)
    made = []
    for j in range(budget):
        if j in state_of:
            continue
        pred = state_of.get(j - window)
        if j < window or (pred is not None and any(s != TrialState.WAITING for s in pred)):
            _enqueue_slot(study, objective, j)
            state_of[j] = [TrialState.WAITING]
            made.append(j)
    return made


def create_or_load_study(storage: optuna.storages.BaseStorage, name: str,
                         settings: Mapping[str, Any], *, budget: int | None = None,
                         objective: TrialObjective | None = None,
                         wait_ready_s: float = 30.0) -> tuple[optuna.Study, dict[str, Any]]:
    """Create study ``name`` with ``settings`` and a global ``budget``, or load it
    (``load_if_exists`` semantics). Returns ``(study, settings)``: the stored settings,
    with the effective ``budget``.

    Slots are enqueued lazily: the first ``slot_window`` (setting, default
    :data:`DEFAULT_SLOT_WINDOW`) at creation, then whoever claims slot ``i`` enqueues slot
    ``i + window``; so the queue of waiting trials (which every worker and the TPE sampler
    re-read from the storage each trial) stays short however large the budget.

    Loading checks that the settings identify the same search (workloads, area, space …)
    and raises :class:`ConfigError` naming the first difference. A larger ``budget`` than
    stored extends the study; a smaller one is ignored (finished work is kept). Slots
    missing after a crash are re-enqueued (:func:`repair_slots`).
    """
    settings = _settings_json(settings)
    if budget is None:
        budget = settings.get("budget")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)
                               or budget < 1):
        raise ConfigError(f"budget={budget!r} must be a positive integer")
    settings["budget"] = budget
    window = _window(settings)
    obj = objective if objective is not None else build_objective(settings)
    directions = _directions(obj)
    with _quiet():
        try:
            study = optuna.create_study(storage=storage, study_name=name,
                                        directions=cast(Any, directions))
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
            created = False
        except ValueError as e:
            raise ConfigError(f"study {name!r}: {e}") from None
        if created:
            if budget is None:
                raise ConfigError(f"study {name!r} does not exist yet: give --budget")
            study.set_metric_names(list(obj.metric_names))
            study.set_user_attr(SETTINGS_ATTR, settings)
            for i in range(min(window, budget)):
                _enqueue_slot(study, obj, i)
            study.set_user_attr(BUDGET_ATTR, budget)  # last: marks the study ready
            return study, settings
        # loaded: wait for a concurrent creator to finish writing settings and slots
        # (after ``wait_ready_s`` the creator is presumed dead and the study repaired)
        deadline = time.monotonic() + wait_ready_s
        while BUDGET_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = study_settings(study)
        _check_same_search(name, stored, settings)
        want = [d.name.lower() for d in study.directions]
        if want != directions:
            raise ConfigError(f"study {name!r} has directions {want}, this search needs "
                              f"{directions}; use another --study name")
        have = max(study_budget(study), int(stored.get("budget") or 0))
        new_budget = max(have, budget or 0)
        if new_budget != study_budget(study):
            stored["budget"] = new_budget
            study.set_user_attr(SETTINGS_ATTR, stored)
            study.set_user_attr(BUDGET_ATTR, new_budget)
        repair_slots(study, obj, new_budget, _window(stored))
        return study, stored


def _check_same_search(name: str, stored: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    keys = sorted((set(stored) | set(asked)) - _MUTABLE_SETTINGS)
    for k in keys:
        if k in asked and stored.get(k) != asked.get(k):
            raise ConfigError(f"study {name!r} exists with {k}={stored.get(k)!r}, this run asks "
                              f"{k}={asked.get(k)!r}; rerun with the same settings to resume "
                              "or use another --study name")


def load_worker_study(storage: optuna.storages.BaseStorage, name: str, *, display: str = ""
                      ) -> tuple[optuna.Study, dict[str, Any]]:
    """Load study ``name`` for a worker. A missing study raises :class:`ConfigError`
    listing the studies in the storage."""
    names = study_names(storage)
    if name not in names:
        where = f" in {display}" if display else ""
        listing = ", ".join(names) if names else "none"
        raise ConfigError(f"no study {name!r}{where}; studies there: {listing}")
    with _quiet():
        study = optuna.load_study(study_name=name, storage=storage)
    return study, study_settings(study)


@dataclass
class Progress:
    """Trial counts of a study (``finished`` = COMPLETE + PRUNED, what the budget counts)."""

    budget: int
    complete: int
    pruned: int
    running: int
    waiting: int
    failed: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def as_dict(self) -> dict[str, int]:
        return {"budget": self.budget, "finished": self.finished, "complete": self.complete,
                "pruned": self.pruned, "running": self.running, "waiting": self.waiting,
                "failed": self.failed}


def study_progress(study: optuna.Study) -> Progress:
    """Counts of the study's trials by state, and its budget."""
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    budget = study_budget(study)
    return Progress(budget=budget, complete=counts[TrialState.COMPLETE],
                    pruned=counts[TrialState.PRUNED], running=counts[TrialState.RUNNING],
                    waiting=counts[TrialState.WAITING], failed=counts[TrialState.FAIL])


# --------------------------------------------------------------------------- workers


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int | None) -> bool:
    """Put a failed trial's slot back in the queue (same params, ``retry_history``)."""
    before = len(study.get_trials(deepcopy=False))
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
    return len(study.get_trials(deepcopy=False)) > before


def recover_orphans(study: optuna.Study, *, max_retry: int | None = 3,
                    all_unowned: bool = False) -> list[int]:
    """Fail and re-enqueue RUNNING trials whose owner is a dead process on this host
    (with ``all_unowned`` also those with no recorded owner, for a storage that only
    processes that are gone have used). Trials owned by other hosts are left to the
    heartbeat. Returns the numbers of the trials failed."""
    host = socket.gethostname()
    storage = study._storage
    failed = []
    with _quiet():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(OWNER_ATTR)
            dead = False
            if isinstance(owner, str) and owner.rpartition(":")[0] == host:
                pid = owner.rpartition(":")[2]
                dead = pid.isdigit() and not _pid_alive(int(pid))
            elif owner is None:
                dead = all_unowned
            if not dead:
                continue
            try:
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            failed.append(t.number)
            _requeue(study, storage.get_trial(t._trial_id), max_retry)
    return failed


def _heartbeat_enabled(study: optuna.Study) -> bool:
    st: Any = study._storage  # RDB storages (and their cache wrapper) implement heartbeats
    return bool(hasattr(st, "get_heartbeat_interval") and st.get_heartbeat_interval())


class _Heartbeat:
    """Records the heartbeat of the running trials of a batch every interval, in a
    thread."""

    def __init__(self, study: optuna.Study, trial_ids: Sequence[int]) -> None:
        self._storage: Any = study._storage
        self._trial_ids = list(trial_ids)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if _heartbeat_enabled(study):
            st: Any = study._storage
            interval = float(st.get_heartbeat_interval())
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for tid in self._trial_ids:
                with contextlib.suppress(Exception):  # a missed beat is retried next time
                    self._storage.record_heartbeat(tid)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _SlotQueue:
    """A worker's view of the budget slots.

    The waiting slots are read from the storage only when the known ones are used up
    (a read costs every unfinished trial), and claimed one at a time with the storage's
    atomic ``WAITING → RUNNING`` transition; slots another worker took meanwhile are
    skipped.

    The same read records every trial's slot (number and state) and the budget: enough to
    :meth:`admit` a claimed slot without reading the study again. That snapshot is safe:
    a live copy of the slot with a lower number existed when this trial did (numbers are
    assigned at creation), so it is in the snapshot; and successors (slot ``i + window``)
    are created only by the claimer of slot ``i`` (races with a repair make duplicates,
    which :meth:`admit` withdraws)."""

    def __init__(self, study: optuna.Study, objective: TrialObjective, offset: int,
                 window: int) -> None:
        self._study = study
        self._objective = objective
        self._rng = random.Random(offset)
        self._window = window
        self._waiting: list[FrozenTrial] = []
        self._slots: dict[int, list[tuple[int, TrialState]]] = {}
        self._budget = 0

    def _refill(self) -> None:
        trials = self._study.get_trials(deepcopy=False)
        self._budget = study_budget(self._study)
        slots: dict[int, list[tuple[int, TrialState]]] = {}
        for t in trials:
            i = _slot_of(t)
            if i is not None:
                slots.setdefault(i, []).append((t.number, t.state))
        self._slots = slots
        self._waiting = [t for t in trials if t.state == TrialState.WAITING]

    def claim(self) -> FrozenTrial | None:
        """Claim one waiting slot (its trial as read, still ``WAITING`` in the object),
        or None when none is waiting. Picks at random among the known waiting slots (so
        concurrent workers seldom race for the same one) and re-reads the list after a
        slot turned out to be taken."""
        storage: Any = self._study._storage
        hb = _heartbeat_enabled(self._study)
        if not self._waiting:
            self._refill()
        misses = 0
        while self._waiting:
            t = self._waiting.pop(self._rng.randrange(len(self._waiting)))
            try:
                if hb:  # beat first: a claimed trial always has a heartbeat row
                    storage.record_heartbeat(t._trial_id)
                if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                    storage.set_trial_system_attr(t._trial_id, OWNER_ATTR, _worker_name())
                    return t
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
            misses += 1
            if misses <= 3 or not self._waiting:  # the list is stale: read it again
                self._refill()
        return None

    def admit(self, t: FrozenTrial) -> bool:
        """After claiming ``t``: withdraw it (FAIL, ``dse:duplicate_of``) if a live copy of
        its slot with a lower number exists (a race duplicate); else enqueue the slot one
        window ahead if it is within the budget and not known. Returns whether to run."""
        i = _slot_of(t)
        if i is None:  # not a budget slot (e.g. enqueued by hand): just run it
            return True
        storage = self._study._storage
        live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        for number, state in self._slots.get(i, []):
            if number < t.number and state in live:
                storage.set_trial_system_attr(t._trial_id, DUPLICATE_ATTR, number)
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                return False
        j = i + self._window
        if j < self._budget and j not in self._slots:
            _enqueue_slot(self._study, self._objective, j)
            self._slots[j] = [(-1, TrialState.WAITING)]
        return True


@dataclass
class WorkerReport:
    """What one worker did."""

    worker: str
    trials_run: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    duplicates: int = 0
    """Race duplicates of a slot this worker claimed and withdrew."""
    wall_s: float = 0.0
    numbers: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "trials_run": self.trials_run,
                "complete": self.complete, "pruned": self.pruned, "failed": self.failed,
                "duplicates": self.duplicates, "wall_s": self.wall_s}


class _Stop(BaseException):
    """Raised in a worker by SIGTERM: finish like Ctrl-C (re-queue the trial in flight)."""


def run_worker(study: optuna.Study, objective: TrialObjective, *, max_retry: int | None = 3,
               poll_s: float = 1.0, max_trials: int | None = None,
               should_stop: Callable[[], bool] | None = None,
               worker_seed: int | None = None, window: int = DEFAULT_SLOT_WINDOW,
               batch: int | None = None,
               on_trial: Callable[[FrozenTrial], None] | None = None) -> WorkerReport:
    """Pop and run the study's waiting slots until none is left (or ``max_trials``).

    Slots are claimed ``batch`` at a time (default :data:`DEFAULT_WORKER_BATCH` when the
    objective has a vectorized ``evaluate_trials(trials) -> list of values (None:
    pruned)``, else 1) and each trial is written to the storage as soon as its batch is
    evaluated. While other workers still run trials on a heartbeat storage, the worker
    waits (``poll_s``) and runs whatever :func:`optuna.storages.fail_stale_trials`
    re-enqueues, so a dead worker's batch is finished by a live one. On Ctrl-C/SIGTERM
    the batch in flight is failed, re-enqueued and the interrupt re-raised. An exception
    of the objective fails the batch (not re-enqueued: it would fail again) and
    propagates.
    """
    name = _worker_name()
    report = WorkerReport(worker=name)
    t0 = time.perf_counter()
    seed = worker_seed if worker_seed is not None else int.from_bytes(
        hashlib.sha256(name.encode()).digest()[:4], "little")
    if batch is None:
        batch = DEFAULT_WORKER_BATCH if hasattr(objective, "evaluate_trials") else 1
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"worker_batch={batch!r} must be a positive integer")
    study.sampler = objective.sampler(seed)
    queue = _SlotQueue(study, objective, seed, window)
    hb = _heartbeat_enabled(study)
    with _quiet():
        recover_orphans(study, max_retry=max_retry)
        while max_trials is None or report.trials_run < max_trials:
            if should_stop is not None and should_stop():
                break
            want = batch if max_trials is None else min(batch, max_trials - report.trials_run)
            tids: list[int] = []
            while len(tids) < want:
                claimed = queue.claim()
                if claimed is None:
                    break
                if queue.admit(claimed):
                    tids.append(claimed._trial_id)
                else:
                    report.duplicates += 1
            if tids:
                _run_batch(study, objective, tids, report, max_retry, on_trial)
                continue
            # nothing waiting: fail stale trials, re-enqueue dead owners' and missing
            # slots; wait while others run (they may die), stop when all is done
            if hb:
                optuna.storages.fail_stale_trials(study)
            recover_orphans(study, max_retry=max_retry)
            repair_slots(study, objective, study_budget(study), window)
            prog = study_progress(study)
            if prog.waiting:
                continue
            if prog.running and hb:
                time.sleep(poll_s)
                continue
            break
    report.wall_s = time.perf_counter() - t0
    return report


def _run_batch(study: optuna.Study, objective: TrialObjective, tids: Sequence[int],
               report: WorkerReport, max_retry: int | None,
               on_trial: Callable[[FrozenTrial], None] | None) -> None:
    """Run the claimed trials ``tids``: one ``objective.evaluate_trials`` call when the
    objective has it (vectorized), else one call per trial; tell each result."""
    storage = study._storage
    beat = _Heartbeat(study, tids)
    trials: list[optuna.Trial] = []
    told: set[int] = set()
    finished: list[FrozenTrial] = []
    try:
        try:
            trials = [optuna.trial.Trial(study, tid) for tid in tids]
            batch_fn = getattr(objective, "evaluate_trials", None)
            if batch_fn is not None and len(trials) > 1:
                results: list[Any] = list(batch_fn(trials))
                if len(results) != len(trials):
                    raise ConfigError(f"evaluate_trials returned {len(results)} results for "
                                      f"{len(trials)} trials")
            else:
                results = []
                for trial in trials:
                    try:
                        results.append(objective(trial))
                    except optuna.TrialPruned:
                        results.append(None)
            for trial, values in zip(trials, results):
                if values is None:
                    ft = study.tell(trial, state=TrialState.PRUNED)
                else:
                    ft = study.tell(trial, values)
                told.add(trial._trial_id)
                finished.append(ft)
        except (KeyboardInterrupt, _Stop):
            for tid in tids:  # the batch in flight goes back to the queue
                if tid in told:
                    continue
                with contextlib.suppress(Exception):
                    storage.set_trial_state_values(tid, state=TrialState.FAIL)
                    _requeue(study, storage.get_trial(tid), None)
            raise
        except BaseException:
            for tid in tids:
                if tid in told:
                    continue
                with contextlib.suppress(Exception):
                    storage.set_trial_state_values(tid, state=TrialState.FAIL)
                report.failed += 1
            raise
    finally:
        beat.stop()
    for ft in finished:
        report.trials_run += 1
        report.numbers.append(ft.number)
        if ft.state == TrialState.COMPLETE:
            report.complete += 1
        elif ft.state == TrialState.PRUNED:
            report.pruned += 1
        else:  # tell() turned a NaN/invalid value into FAIL: give the slot another try
            report.failed += 1
            _requeue(study, storage.get_trial(ft._trial_id), max_retry)
        if on_trial is not None:
            on_trial(ft)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, turn SIGTERM into a clean stop (the trial in flight is
    re-enqueued) for the duration of the block."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Stop()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Stop:
        raise KeyboardInterrupt() from None
    finally:
        signal.signal(signal.SIGTERM, old)


def worker_storage(spec: StorageSpec, settings: Mapping[str, Any]) -> optuna.storages.BaseStorage:
    """Open ``spec`` with the heartbeat settings the study was created with."""
    if spec.kind != "rdb":
        return open_storage(spec)
    return open_storage(spec, heartbeat_interval_s=int(settings.get("heartbeat_interval_s", 10)),
                        grace_period_s=int(settings.get("grace_period_s", 60)),
                        max_retry=settings.get("max_retry", 3))


def join_study(storage: StorageSpec | str, study: str, **worker_kwargs: Any
               ) -> tuple[WorkerReport, optuna.Study, dict[str, Any]]:
    """Everything ``dse worker`` does: load the study, rebuild its objective from the
    stored settings, run trials until the budget is used up."""
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    plain = open_storage(spec)
    st, settings = load_worker_study(plain, study, display=spec.display)
    check_workload_files(settings)
    objective = build_objective(settings)
    storage_obj = worker_storage(spec, settings)
    with _quiet():
        st = optuna.load_study(study_name=study, storage=storage_obj)
    report = run_worker(st, objective, max_retry=settings.get("max_retry", 3),
                        window=_window(settings), batch=settings.get("worker_batch"),
                        **worker_kwargs)
    return report, st, settings


def _job_main(url: str, study: str, index: int, parent: int, conn: Any) -> None:
    """Entry point of one ``--jobs`` process (spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    try:
        spec = parse_storage(url) if "://" in url else parse_storage(f"journal:{url}")

        def orphaned() -> bool:  # the parent was killed: stop after the trial in flight
            return os.getppid() != parent

        with sigterm_as_interrupt():
            report, _, _ = join_study(spec, study, should_stop=orphaned)
        conn.send(("ok", report.as_dict()))
    except DSEError as e:
        conn.send(("error", e.exit_code, " ".join(str(e).split())))
    except KeyboardInterrupt:
        conn.send(("error", 130, "interrupted"))
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        msg = f"{e.__class__.__name__}: {' '.join(str(e).split())[:200]}"
        conn.send(("error", 1, f"internal error in worker {index}: {msg}"))
    finally:
        conn.close()


class WorkerFailed(DSEError):
    """A ``--jobs`` worker process ended with an error (its exit code is kept)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_settings(**kw: Any) -> dict[str, Any]:
    """Distributed-search settings with the defaults filled in (heartbeat 10 s, grace 60 s,
    3 retries per slot)."""
    s = {"heartbeat_interval_s": 10, "grace_period_s": 60, "max_retry": 3}
    s.update(kw)
    return s


def run_parallel_jobs(settings: Mapping[str, Any], storage: str | StorageSpec | None,
                      study: str | None, jobs: int, budget: int | None, *,
                      run_dir: str | os.PathLike[str] | None = None,
                      start_timeout_s: float = 300.0) -> dict[str, Any]:
    """Run ``jobs`` worker processes on this machine against one study, until the global
    ``budget`` of finished trials is reached; returns counts and timing.

    ``storage`` None means ``RUN_DIR/study.log`` (a :class:`optuna.storages.JournalStorage`
    on a :class:`~optuna.storages.journal.JournalFileBackend`); ``study`` None means
    ``"dse"``. Creating the study writes ``settings`` and ``budget`` slots; an existing
    study resumes (finished trials are kept, dead owners' trials re-enqueued). Each process
    is a worker as in ``dse worker`` (``jobs == 1``: this process is the worker). Ctrl-C
    stops every worker after re-enqueuing its trial in flight and re-raises
    KeyboardInterrupt.

    Returns ``{"study", "storage" (redacted), "jobs", "budget", "finished", "complete",
    "pruned", "failed", "running", "waiting", "trials_this_run", "wall_s", "workers"}``.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--jobs={jobs!r} must be a positive integer")
    if storage is None:
        if run_dir is None:
            raise ConfigError("run_parallel_jobs: give a storage or a run directory")
        storage = f"journal:{Path(run_dir) / JOURNAL_FILE}"
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    name = study or "dse"
    full = default_settings(**dict(settings))
    if spec.kind == "journal" or spec.backend == "sqlite":
        check_local_writable(Path(spec.path).parent)
    t0 = time.perf_counter()
    st = open_storage(spec)
    study_obj, stored = create_or_load_study(st, name, full, budget=budget)
    before = study_progress(study_obj).finished
    recover_orphans(study_obj, max_retry=stored.get("max_retry", 3),
                    all_unowned=not spec.multi_host)
    ctx = multiprocessing.get_context("spawn")
    reports: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    url = spec.url if spec.kind == "rdb" else spec.path
    while jobs == 1:  # one worker: run it in this process (no start-up of a child)
        with sigterm_as_interrupt():
            report, _, _ = join_study(spec, name)
        reports.append(report.as_dict())
        break
    while jobs > 1:
        prog = study_progress(study_obj)
        if prog.waiting == 0 and prog.running == 0:
            break
        n = max(1, min(jobs, prog.waiting + prog.running))
        procs = []
        try:
            with _sigint_ignored():  # children start with Ctrl-C ignored (no traceback
                for i in range(n):     # from their imports); the parent stops them
                    parent_conn, child_conn = ctx.Pipe(duplex=False)
                    p = ctx.Process(target=_job_main,
                                    args=(url, name, i, os.getpid(), child_conn), daemon=False)
                    p.start()
                    child_conn.close()
                    procs.append((p, parent_conn))
            for p, conn in procs:
                p.join()
                if conn.poll():
                    msg = conn.recv()
                    if msg[0] == "ok":
                        reports.append(msg[1])
                    else:
                        errors.append((int(msg[1]), str(msg[2])))
                elif p.exitcode != 0:
                    errors.append((1, f"worker process {p.pid} died (exit code {p.exitcode})"))
        except KeyboardInterrupt:
            _stop_children(procs, spec)
            recover_orphans(study_obj, max_retry=None, all_unowned=not spec.multi_host)
            raise
        recover_orphans(study_obj, max_retry=stored.get("max_retry", 3),
                        all_unowned=not spec.multi_host)
        if errors:
            code, msg = errors[0]
            if code == 130:
                raise KeyboardInterrupt()
            raise WorkerFailed(msg, code)
        after = study_progress(study_obj)
        if after.waiting and after.finished == prog.finished:
            raise WorkerFailed(f"workers made no progress on study {name!r} in "
                               f"{spec.display} ({after.waiting} slots waiting)")
    prog = study_progress(study_obj)
    return {"study": name, "storage": spec.display, "jobs": jobs, **prog.as_dict(),
            "trials_this_run": prog.finished - before, "wall_s": time.perf_counter() - t0,
            "workers": reports}


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block runs: processes spawned inside inherit SIG_IGN, and
    Python then installs no KeyboardInterrupt handler in them (a Ctrl-C during their
    imports would print a traceback). The block only starts processes (milliseconds)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _stop_children(procs: Sequence[tuple[Any, Any]], spec: StorageSpec) -> None:
    for p, _ in procs:
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.terminate()  # SIGTERM: the worker re-enqueues its trial and exits
    for p, _ in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
            p.join()


def check_local_writable(path: Path) -> None:
    """ConfigError (exit 2) if the directory ``path`` cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"directory {path} is not writable")


def best_trial_summary(study: optuna.Study) -> dict[str, Any] | None:
    """Number, params and values of the best finished trial (first objective for
    multi-objective studies); None when nothing finished."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = [t for t in trials if t.values and all(math.isfinite(v) for v in t.values)]
    if not trials:
        return None
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    best = max(trials, key=lambda t: (sign * t.values[0], -t.number))
    return {"number": best.number, "params": dict(best.params), "values": list(best.values),
            "user_attrs": copy.deepcopy(dict(best.user_attrs))}
