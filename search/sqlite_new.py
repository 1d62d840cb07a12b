"""A new SQLite study file, created without Alembic.

``optuna.storages.RDBStorage`` on a new file creates Optuna's tables, then stamps the
schema's Alembic revision: it imports Alembic (with Mako and Pygments, ~110 modules) and
parses every migration script to find the head revision, about 0.25 s of CPU — a twelfth
of the README's whole search (issue 11). A search writes a new ``study.db`` in every run
directory, so :func:`new_sqlite_storage` writes the same file directly:

* the tables from **Optuna's own table definitions** (``optuna.storages._rdb.models``,
  SQLAlchemy's ``create_all``: no hand-written DDL);
* the ``version_info`` row as ``RDBStorage`` writes it (schema version, Optuna version);
* the ``alembic_version`` table (Alembic's DDL for it) holding the head revision of the
  installed Optuna's migration scripts, read from their ``revision``/``down_revision``
  lines (the one revision no script names as its parent).

The file is built under a temporary name and hard-linked into place, so a process that
races to create the same file either wins or sees a complete file and opens it the usual
way. Any surprise (unreadable migrations, more than one head, no hard links) returns
``None`` and the caller opens the storage with ``RDBStorage`` as before.
``tests/search/test_sqlite_new.py`` checks the file against one ``RDBStorage`` creates
(schema, rows, Alembic's own view of the revision) and that Optuna and optuna-dashboard's
storage accept it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import optuna

__all__ = ["alembic_head", "new_sqlite_storage"]

_REV = re.compile(r"""^(down_revision|revision)\s*=\s*(?:"([^"]*)"|'([^']*)'|None)\s*$""",
                  re.MULTILINE)


def alembic_head() -> str | None:
    """The head revision of the installed Optuna's Alembic migrations (``None`` when the
    scripts are not where, or not what, this reader expects)."""
    from importlib import resources

    try:
        versions = resources.files("optuna.storages._rdb") / "alembic" / "versions"
        scripts = [p for p in versions.iterdir() if p.name.endswith(".py")]
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        return None
    revs: set[str] = set()
    parents: set[str] = set()
    for p in scripts:
        found = {m.group(1): (m.group(2) or m.group(3)) for m in _REV.finditer(p.read_text())}
        if "revision" not in found or not found["revision"]:
            return None
        revs.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revs - parents
    if len(heads) != 1 or not parents <= revs:
        return None
    return heads.pop()


def _write_schema(path: Path, head: str) -> None:
    import sqlalchemy
    from optuna.storages._rdb import models

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        models.BaseModel.metadata.create_all(engine)
        meta = sqlalchemy.MetaData()
        alembic_version = sqlalchemy.Table(  # the table Alembic's stamp creates
            "alembic_version", meta,
            sqlalchemy.Column("version_num", sqlalchemy.String(32), nullable=False),
            sqlalchemy.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
        meta.create_all(engine)
        with engine.begin() as con:
            con.execute(models.VersionInfoModel.__table__.insert().values(
                version_info_id=1, schema_version=models.SCHEMA_VERSION,
                library_version=optuna.__version__))
            con.execute(alembic_version.insert().values(version_num=head))
    finally:
        engine.dispose()
    con3 = sqlite3.connect(path)
    try:  # write-ahead logging, as open_storage sets on every SQLite study
        con3.execute("PRAGMA journal_mode=WAL")
    finally:
        con3.close()


class _NewSQLiteStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` on a file :func:`new_sqlite_storage` has just written: the same
    attributes as ``RDBStorage(url, engine_kwargs, skip_compatibility_check=True)``, but
    Optuna's Alembic version manager (used only to upgrade a storage or report its
    version) is built on first use. Pickled, it becomes a plain ``RDBStorage``."""

    def __init__(self, url: str, engine_kwargs: dict[str, Any]) -> None:  # noqa: D107
        # RDBStorage.__init__ is not called: it builds the version manager (Alembic)
        import sqlalchemy
        import sqlalchemy.orm

        self.engine_kwargs = dict(engine_kwargs)
        self.url = url
        self.skip_compatibility_check = True
        self.heartbeat_interval = None
        self.grace_period = None
        self.heartbeat_stale_trial_callback = None
        self.failed_trial_callback = None
        self.engine = sqlalchemy.engine.create_engine(url, **self.engine_kwargs)
        self.scoped_session = sqlalchemy.orm.scoped_session(
            sqlalchemy.orm.sessionmaker(bind=self.engine))

    @property  # type: ignore[override]
    def _version_manager(self) -> Any:
        vm = self.__dict__.get("_vm")
        if vm is None:
            from optuna.storages._rdb.storage import _VersionManager

            vm = _VersionManager(self.url, self.engine, self.scoped_session)
            self.__dict__["_vm"] = vm
        return vm

    @_version_manager.setter
    def _version_manager(self, vm: Any) -> None:
        self.__dict__["_vm"] = vm

    def __reduce__(self) -> Any:
        return (optuna.storages.RDBStorage, (self.url, self.engine_kwargs, True))


def new_sqlite_storage(path: str | os.PathLike[str], url: str,
                       engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage | None:
    """Create the SQLite study file ``path`` (which must not exist) and return its
    storage; ``None`` when the file exists (another process made it) or the fast path
    does not apply (the caller then uses ``RDBStorage``)."""
    p = Path(path)
    if p.exists():
        return None
    head = alembic_head()
    if head is None:
        return None
    tmp = p.with_name(f".{p.name}.{os.getpid()}.new")
    try:
        tmp.unlink(missing_ok=True)
        _write_schema(tmp, head)
        os.link(tmp, p)  # atomic: fails when the file appeared meanwhile
    except OSError:
        return None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return _NewSQLiteStorage(url, engine_kwargs)
