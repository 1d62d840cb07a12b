"""Persistent Optuna studies for the search: storage URLs, batched persistence, resume.

The cost model evaluates a design in microseconds, an Optuna trial written to SQLite
costs milliseconds (``docs/sources.md`` E1.3; measured here: ~8 ms per trial with
``study.add_trials`` into SQLite on this machine, ~13 ms with ten user attributes). The
search therefore keeps its hot loop in memory and persists finished trials in batches:

* :func:`persist_trials` writes a batch of finished :class:`optuna.trial.FrozenTrial`
  into the persistent study. For SQLite it inserts the whole batch in **one transaction
  through Optuna's own table definitions** (``optuna.storages._rdb.models``: the schema
  of the installed Optuna, no hand-written SQL; one executemany per table), much faster
  than ``add_trials``, which commits per trial and per attribute; the trial count is
  verified afterwards. Any other storage, or any
  failure of that path before its commit, goes through the public ``study.add_trials``.
* :func:`open_study` creates or loads (resume) a study and checks that its objectives
  match.

Storage values (parsed by :func:`search.distributed.parse_storage`): ``sqlite:///path.db``,
``postgresql://…`` (RDB), ``journal:path`` or a ``.log`` file (journal), or a run
directory (its ``study.db``).
"""

from __future__ import annotations

import json
import logging
import operator
import warnings
from collections.abc import Sequence
from datetime import timezone
from json.encoder import encode_basestring_ascii as _encode_str
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import bindparam, func, insert

from dse.errors import ConfigError, StorageError
from dse.signals import signals_held

__all__ = [
    "STUDY_DB",
    "TrialBuffer",
    "close_study",
    "open_storage",
    "open_study",
    "persist_trials",
    "quiet_optuna",
    "resolve_storage_url",
    "trial_records",
]

STUDY_DB = "study.db"
"""File name of the default SQLite storage inside a run directory."""

def resolve_storage_url(storage: str | Path, *, run_dir: str | Path | None = None) -> str:
    """The redacted display form of a ``--storage`` value (URL, journal file, ``.db``
    file or run directory), parsed by :func:`search.distributed.parse_storage`.

    >>> resolve_storage_url("sqlite:////tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    from search.storage_url import parse_storage

    return parse_storage(str(storage), run_dir=run_dir).display


def open_storage(storage: str | Path) -> optuna.storages.BaseStorage:
    """An Optuna storage for a URL, journal path, ``.db`` file or run directory (parsing,
    password redaction and error messages shared with :mod:`search.distributed`)."""
    from search.storage_url import open_storage as _open
    from search.storage_url import parse_storage

    return _open(parse_storage(str(storage)))


def open_study(storage: optuna.storages.BaseStorage, study_name: str,
               directions: Sequence[str], metric_names: Sequence[str],
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create the study, or load it if it exists (resume). A loaded study must have the
    same directions; metric names are (re)set."""
    quiet_optuna()
    try:
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    directions=list(directions),  # type: ignore[arg-type]
                                    sampler=sampler,
                                    load_if_exists=True)
    except ValueError as e:
        raise ConfigError(f"study {study_name!r}: {e}") from None
    want = [StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
            for d in directions]
    if list(study.directions) != want:
        have = ", ".join(d.name.lower() for d in study.directions)
        raise ConfigError(f"study {study_name!r} exists with directions [{have}], this search "
                          f"needs [{', '.join(directions)}]; use another --study name")
    if study.metric_names != list(metric_names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(metric_names))
    return study


def _json_value(v: Any) -> str:
    """``json.dumps(v)`` (its defaults), with the scalar types trial attributes hold written
    directly: most of a batch insert's time was the encoder's per-call overhead."""
    t = type(v)
    if t is float:
        if v != v:
            return "NaN"
        if v in (_INF, -_INF):
            return "Infinity" if v > 0 else "-Infinity"
        return float.__repr__(v)
    if t is int:
        return int.__repr__(v)
    if t is str:
        return _encode_str(v)
    if t is bool:
        return "true" if v else "false"
    if v is None:
        return "null"
    return json.dumps(v)


_INF = float("inf")


def _driver_insert(table: Any, cols: tuple[str, ...], dialect: Any
                   ) -> tuple[str, Any]:
    """The positional INSERT statement SQLAlchemy compiles for ``table``'s ``cols`` and a
    function turning a row dict into its parameter tuple through each column type's bind
    processor (what ``session.execute(insert(table), rows)`` does per row)."""
    stmt = insert(table).values({c: bindparam(c) for c in cols}).compile(dialect=dialect)
    order = stmt.positiontup or list(cols)
    procs = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in order]

    if all(f is None for f in procs):  # plain integers, floats and strings
        return str(stmt), operator.itemgetter(*order) if len(order) > 1 else (
            lambda row: (row[order[0]],))

    def convert(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c] if f is None else f(row[c]) for c, f in zip(order, procs))

    return str(stmt), convert


def _fast_sqlite_insert(study: optuna.Study, trials: Sequence[FrozenTrial]) -> bool:
    """Insert ``trials`` in one SQLite transaction through Optuna's ORM models.

    Returns False (nothing written) when the storage is not SQLite-backed RDB or the
    private models are not what this code expects; the caller then uses add_trials.
    """
    storage = study._storage
    inner = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDBStorage
    if not isinstance(inner, optuna.storages.RDBStorage):
        return False
    if not str(inner.engine.url).startswith("sqlite"):
        return False
    try:
        from optuna.storages._rdb import models
    except ImportError:
        return False
    needed = ("TrialModel", "TrialParamModel", "TrialValueModel", "TrialUserAttributeModel",
              "TrialSystemAttributeModel", "StudyModel")
    if not all(hasattr(models, n) for n in needed):
        return False
    study_id = study._study_id

    def utc(dt: Any) -> Any:
        # RDBStorage stores naive UTC datetimes (models.TrialModel.datetime_start setter)
        return None if dt is None else dt.astimezone(timezone.utc).replace(tzinfo=None)

    dumps = _json_value  # json.dumps of the attribute values, scalars without the encoder
    session = inner.scoped_session()
    try:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        start_number = (session.query(models.TrialModel)
                        .filter(models.TrialModel.study_id == study_id).count())
        first_id = int(session.query(func.max(models.TrialModel.trial_id)).scalar() or 0) + 1
        dist_json: dict[tuple[str, BaseDistribution], str] = {}
        t_rows, v_rows, p_rows, u_rows, s_rows = [], [], [], [], []
        for k, ft in enumerate(trials):
            tid = first_id + k
            t_rows.append({"trial_id": tid, "number": start_number + k, "study_id": study_id,
                           "state": ft.state, "datetime_start": utc(ft.datetime_start),
                           "datetime_complete": utc(ft.datetime_complete)})
            for obj, v in enumerate(ft.values if ft.values is not None else []):
                stored, vtype = models.TrialValueModel.value_to_stored_repr(v)
                v_rows.append({"trial_id": tid, "objective": obj, "value": stored,
                               "value_type": vtype})
            for name, value in ft.params.items():
                dist = ft.distributions[name]
                key = (name, dist)
                if key not in dist_json:
                    dist_json[key] = distribution_to_json(dist)
                p_rows.append({"trial_id": tid, "param_name": name,
                               "param_value": dist.to_internal_repr(value),
                               "distribution_json": dist_json[key]})
            for key_, value in ft.user_attrs.items():
                u_rows.append({"trial_id": tid, "key": key_, "value_json": dumps(value)})
            for key_, value in ft.system_attrs.items():
                s_rows.append({"trial_id": tid, "key": key_, "value_json": dumps(value)})
        # one executemany per table for the whole batch, at the driver level: SQLAlchemy's
        # statement for the table, its column types' own value conversions (datetimes,
        # the state enum), without building a parameter dict per row and column
        con = session.connection()
        for model, rows in ((models.TrialModel, t_rows), (models.TrialValueModel, v_rows),
                            (models.TrialParamModel, p_rows),
                            (models.TrialUserAttributeModel, u_rows),
                            (models.TrialSystemAttributeModel, s_rows)):
            if rows:
                sql, convert = _driver_insert(model.__table__, tuple(rows[0]), con.dialect)
                con.exec_driver_sql(sql, [convert(r) for r in rows])
        session.commit()
        written = (session.query(models.TrialModel)
                   .filter(models.TrialModel.study_id == study_id).count()) - start_number
    except Exception:  # noqa: BLE001 - any ORM/schema mismatch: roll back, use the public API
        session.rollback()
        session.close()
        return False
    session.close()
    if written != len(trials):
        raise StorageError(f"study {study.study_name!r}: batch insert wrote {written} trials "
                           f"instead of {len(trials)}")
    return True


def persist_trials(study: optuna.Study, trials: Sequence[FrozenTrial]) -> int:
    """Append finished ``trials`` to the persistent ``study`` in one batch; returns how
    many were written. Only COMPLETE/PRUNED/FAIL trials are accepted."""
    trials = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED,
                                                  TrialState.FAIL)]
    if not trials:
        return 0
    if _fast_sqlite_insert(study, trials):
        return len(trials)
    trials = [t.to_frozen() if hasattr(t, "to_frozen") else t for t in trials]
    try:
        study.add_trials(trials)
    except ValueError as e:
        raise ConfigError(f"study {study.study_name!r} was created with another design "
                          f"space: {e}") from None
    return len(trials)


class TrialBuffer:
    """Collects finished trials and persists them every ``batch_size`` (and on
    :meth:`flush`). ``study`` may be None (no persistence)."""

    def __init__(self, study: optuna.Study | None, batch_size: int = 512) -> None:
        if batch_size < 1:
            raise ConfigError(f"TrialBuffer.batch_size={batch_size!r} must be >= 1")
        self.study = study
        self.batch_size = batch_size
        self._pending: list[FrozenTrial] = []
        self.written = 0

    def add(self, trials: Sequence[FrozenTrial]) -> None:
        self._pending.extend(trials)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the pending trials; a storage failure is a one-line
        :class:`~dse.errors.StorageError` naming its cause, and the trials stay pending."""
        if self.study is not None and self._pending:
            try:
                # a Ctrl-C/SIGTERM between the commit and the count would write the batch
                # twice (the interrupt handler flushes what is pending)
                with signals_held():
                    self.written += persist_trials(self.study, self._pending)
                    self._pending = []
            except Exception as e:  # noqa: BLE001 - classified below, else re-raised
                from search.storage_url import storage_fault

                fault = storage_fault(e, self.where)
                if fault is None:
                    raise
                raise fault from None
        self._pending = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def where(self) -> str:
        st = getattr(self.study, "_storage", None)
        inner = getattr(st, "_backend", st)
        url = getattr(inner, "url", None)
        if url:
            from dse.secrets import redact_url

            return redact_url(str(url))
        return type(inner).__name__


def close_study(study: optuna.Study) -> None:
    """Close an RDB study's pooled connections once the run is done with it. For SQLite
    the last close checkpoints the write-ahead log into the database file, so
    ``study.db`` alone holds every trial (a process that exits without tearing its
    objects down, as ``dse`` does, would leave them in ``study.db-wal``). The study can
    still be used: the engine reconnects on demand."""
    storage = study._storage
    inner = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDBStorage
    engine = getattr(inner, "engine", None)
    if engine is not None:
        inner.scoped_session.remove()
        engine.dispose()


def quiet_optuna() -> None:
    """Silence Optuna's per-trial INFO logging (progress goes to our own bar)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """Finished trials as plain dicts (number, params, values, user_attrs, constraints)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        out.append({"number": t.number, "params": dict(t.params),
                    "values": list(t.values or []), "user_attrs": dict(t.user_attrs),
                    "constraints": dict(getattr(t, "constraints", {}) or {})})
    return out
