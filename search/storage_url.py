"""Optuna storages from what a user types: URLs, journal files, SQLite files, run
directories — parsed, redacted, opened (:func:`parse_storage`, :func:`open_storage`).

Every message shows storage URLs through :func:`redact_url`; an unreachable storage raises
:class:`~dse.errors.StorageError` (exit 1) naming host and port, never the password.

>>> redact_url("postgresql+psycopg://dse:s3cret@db.example:5432/studies")
'postgresql+psycopg://dse:***@db.example:5432/studies'
>>> parse_storage("postgresql://u:pw@127.0.0.1:6543/x").display
'postgresql+psycopg://u:***@127.0.0.1:6543/x'
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from dse.secrets import _secrets_of, _userinfo_secret, redact_url
from dse.errors import ConfigError, DSEError, StorageError

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

_log = logging.getLogger("dse.search.distributed")


# --------------------------------------------------------------------------- storage URLs


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
    span = _userinfo_secret(s)
    if span is not None and any(c in s[span[0]:span[1]] for c in "@/?#"):
        # a password holding '@', '/', '?' or '#' (URL delimiters) is what the user meant
        # up to the last '@': encode those so the URL parser reads host, port and database
        pw = s[span[0]:span[1]]
        for c, code in (("@", "%40"), ("/", "%2F"), ("?", "%3F"), ("#", "%23")):
            pw = pw.replace(c, code)
        s = s[:span[0]] + pw + s[span[1]:]
    try:
        u = make_url(s)
    except (ArgumentError, ValueError) as e:
        why = ("the port must be a number" if "int()" in str(e) else _scrub(str(e), s))
        raise ConfigError(f"--storage {shown!r} is not a valid URL ({why}); use one of: "
                          f"{STORAGE_FORMS}") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ConfigError(f"--storage {shown!r}: an in-memory SQLite database cannot be "
                              "shared or resumed; give a file, e.g. sqlite:///run/study.db")
        path = str(_path(u.database).resolve())
        if Path(path).is_dir():
            raise ConfigError(f"--storage {shown!r}: {path} is a directory; give a database "
                              "file (sqlite:///DIR/study.db) or the run directory itself")
        url = u.set(database=path).render_as_string(hide_password=False)
        return StorageSpec(kind="rdb", url=url, display=redact_url(url), backend="sqlite",
                           path=path)
    if backend in ("postgresql", "mysql") and "+" in u.drivername:
        from sqlalchemy.exc import NoSuchModuleError

        try:
            u.get_dialect()
        except NoSuchModuleError:
            raise ConfigError(f"--storage {shown!r}: unknown {backend} driver "
                              f"{u.get_driver_name()!r}; use one of: {STORAGE_FORMS}") from None
        except ImportError as e:  # a known driver whose module is missing
            raise ConfigError(f"storage {shown} needs the missing Python module "
                               f"{getattr(e, 'name', None) or u.get_driver_name()!r} "
                               f"(pip install {u.get_driver_name()})") from None
        try:
            u.get_dialect().import_dbapi()
        except ImportError as e:
            raise ConfigError(f"storage {shown} needs the missing Python module "
                               f"{getattr(e, 'name', None) or u.get_driver_name()!r} "
                               f"(pip install {u.get_driver_name()})") from None
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
        if not 1 <= port <= 65535:
            raise ConfigError(f"--storage {shown!r}: port {port} is not a TCP port (1 to "
                              "65535)")
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


_FAULTS = (
    (("database or disk is full", "no space left", "disk is full", "errno 28", "enospc",
      "could not extend file", "disk full"), "the disk is full"),
    (("readonly database", "read-only", "readonly", "permission denied", "errno 13",
      "errno 30", "eacces", "erofs"), "it is read-only or not writable"),
    (("server closed the connection", "terminating connection", "connection refused",
      "could not connect", "connection reset", "server has gone away", "lost connection",
      "broken pipe", "the connection is closed", "consuming input failed",
      "connection is lost", "no connection to the server"), "the database server is gone"),
    (("database is locked",), "another process holds it locked"),
    (("disk i/o error", "input/output error", "errno 5"), "an I/O error on the disk"),
)


def storage_fault(e: BaseException, where: str) -> StorageError | None:
    """A one-line :class:`StorageError` naming the cause of a storage failure (disk full,
    read-only, server gone, locked, I/O error) from the exception and its causes; None
    when ``e`` is not a storage failure."""
    chain: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and x not in chain and len(chain) < 8:
        chain.append(x)
        x = x.__cause__ or x.__context__
    mods = {type(c).__module__.split(".")[0] for c in chain}
    texts = " | ".join(f"{type(c).__name__}: {c}" for c in chain).lower()
    is_storage = bool(mods & {"sqlite3", "sqlalchemy", "psycopg", "psycopg2", "pymysql",
                              "optuna"}) or any(isinstance(c, OSError) for c in chain)
    if not is_storage:
        return None
    for needles, cause in _FAULTS:
        if any(n in texts for n in needles):
            return StorageError(f"storage {where} failed: {cause}")
    # a connection SQLAlchemy saw drop, or a driver's connection-level error on a server
    # storage (psycopg raises some of these with an empty message)
    server = where.split(":")[0].split("+")[0] in ("postgresql", "mysql")
    if any(getattr(c, "connection_invalidated", False) for c in chain) or (
            server and any(type(c).__name__ in ("OperationalError", "InterfaceError")
                           for c in chain)):
        return StorageError(f"storage {where} failed: the database server is gone")
    if isinstance(e, OSError) and not mods & {"sqlite3", "sqlalchemy", "optuna"}:
        return None
    first = " ".join(str(chain[-1]).split())[:160]
    if first.strip("()[]{}'\" ") == "":
        first = type(chain[-1]).__name__
    return StorageError(f"storage {where} failed: {_scrub(first, where)}")


def _check_journal_file(path: Path) -> None:
    """A journal storage's file is new, empty, or an Optuna journal: its first line a JSON
    record with an ``op_code`` (a text file of the user's is refused before anything is
    appended to it; a device such as /dev/null cannot hold a study)."""
    import json

    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"journal storage {path} is not a regular file (a directory or a "
                          "device cannot hold a study); give a new .log file")
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 20)
    except OSError as e:
        raise StorageError(f"cannot read journal storage {path}: {e.strerror or e}") from None
    if not first.strip():
        return
    try:
        rec = json.loads(first)
    except (ValueError, UnicodeDecodeError):
        rec = None
    if not isinstance(rec, dict) or "op_code" not in rec:
        raise ConfigError(f"{path} is not an Optuna journal (its first line is not a "
                          "journal record); give a new file, or the study.log of a dse run")


def open_storage(storage: StorageSpec | str, *, heartbeat_interval_s: int | None = None,
                 grace_period_s: int | None = None, max_retry: int | None = 3,
                 connect_timeout_s: int = 10) -> optuna.storages.BaseStorage:
    """Open (and for RDB, connect to and initialize) a storage.

    With ``heartbeat_interval_s`` an RDB storage records heartbeats of running trials;
    trials silent for ``grace_period_s`` are failed by :func:`optuna.storages.fail_stale_trials`
    and re-enqueued (up to ``max_retry`` times) by :class:`RetryTrial`.
    Journal storages have no heartbeat; see :func:`recover_orphans`.

    Raises :class:`StorageError` (exit 1) naming host and port (redacted URL) when the
    server cannot be reached, or a driver is missing.
    """
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    with _quiet():
        if spec.kind == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            _check_journal_file(Path(spec.path))
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
                "heartbeat_stale_trial_callback": RetryTrial(max_retry),
            }
        try:
            if spec.backend == "sqlite" and not kwargs:
                from search.sqlite_new import new_sqlite_storage

                new = new_sqlite_storage(spec.path, spec.url, engine_kwargs)
                if new is not None:  # a new file, written without Alembic
                    _sqlite_fast_commits(new)
                    return new
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
            text = str(e).lower()
            if "file is not a database" in text:  # the user's file is not SQLite
                raise ConfigError(f"{spec.display}: not a SQLite database; give a new .db "
                                  "file, a run directory, or the study.db of a dse run"
                                  ) from None
            if "failed to import db access module" in text:  # optuna: no driver
                drv = {"mysql": "pymysql", "postgresql": "'dse[postgres]'"}.get(
                    spec.backend, "the database driver")
                raise ConfigError(f"storage {spec.display} needs its Python driver, which "
                                  f"is not installed (pip install {drv})") from None
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
    killed process (what resume needs), only not a power cut, and costs no fsync.

    And every transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock before
    its first read). Python's ``sqlite3`` otherwise begins a transaction only at the first
    write, so Optuna's read-check-write of a claim (``WAITING`` → ``RUNNING``) is not
    atomic across processes: two workers could both read ``WAITING`` and both claim the
    same trial (it ran twice, and the slower one failed with "Trial#N has already
    finished"). PostgreSQL and MySQL lock the row (``SELECT ... FOR UPDATE``)."""
    from sqlalchemy import event

    def on_connect(dbapi_con: Any, _record: Any) -> None:
        dbapi_con.isolation_level = None  # the driver emits no BEGIN of its own
        dbapi_con.execute("PRAGMA synchronous=NORMAL")

    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(rdb.engine, "connect", on_connect)
    event.listen(rdb.engine, "begin", on_begin)
    rdb.engine.dispose()  # reconnect the pooled connections with both


RUN_STATE_ATTRS = ("dse:worker", "dse:claimant", "dse:interrupted", "dse:error",
                   "dse:duplicate_of", "constraints")
"""System attributes (and ``KEY:...`` forms) of one run of a trial: a retry's copy starts
without them (its own run sets them; Optuna warns on a constraint already set)."""
INTERRUPTS_ATTR = "dse:interrupts"
"""System attribute of a retry copy: how many of its ``retry_history`` were
interruptions (Ctrl-C, SIGTERM), which do not count against ``max_retry``."""


class RetryTrial:
    """Re-enqueue a failed trial as a ``WAITING`` copy (same params, distributions and
    user attributes; ``failed_trial`` and ``retry_history`` as Optuna's
    :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` records them), at most
    ``max_retry`` times not counting interruptions (``interrupted=True``: the trial
    failed because its worker was stopped). Unlike Optuna's callback the copy carries
    none of the failed run's state (:data:`RUN_STATE_ATTRS`). Also the storage's
    heartbeat callback. Calling it returns whether a copy was enqueued."""

    def __init__(self, max_retry: int | None = None, *, interrupted: bool = False) -> None:
        self._max_retry = max_retry
        self._interrupted = interrupted

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        attrs = dict(trial.system_attrs)
        history = [*attrs.get("retry_history", []), trial.number]
        interrupts = int(attrs.get(INTERRUPTS_ATTR, 0)) + int(self._interrupted)
        if self._max_retry is not None and len(history) - interrupts > self._max_retry:
            return False
        keep = {k: v for k, v in attrs.items()
                if k not in RUN_STATE_ATTRS and k.split(":")[0] != "constraints"
                and not any(k.startswith(p + ":") for p in RUN_STATE_ATTRS)}
        keep.update({"failed_trial": attrs.get("failed_trial", trial.number),
                     "retry_history": history, INTERRUPTS_ATTR: interrupts})
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING, params=trial.params,
            distributions=trial.distributions, user_attrs=trial.user_attrs,
            system_attrs=keep))
        return True


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in ``storage``, sorted."""
    with _quiet():
        return sorted(optuna.get_all_study_names(storage))


