"""A SQLite storage claims a waiting trial atomically across processes (issue 14: with
``dse worker`` beside ``dse search --jobs 2`` on one SQLite file, two processes claimed
trial 16, both ran it, and the slower one failed with "Trial#16 has already finished").

Python's ``sqlite3`` begins a transaction only at the first write, so Optuna's
read-check-write of a claim could interleave; the storage now begins every transaction
with ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState
from sqlalchemy import text

from search import distributed as dist


def _study(path: Path, waiting: int) -> optuna.Study:
    storage = dist.open_storage(f"sqlite:///{path}")
    study = optuna.create_study(study_name="c", storage=storage)
    for i in range(waiting):
        study.enqueue_trial({"x": float(i)}, skip_if_exists=False)
    return study


def test_a_transaction_holds_the_write_lock_from_its_first_read(tmp_path: Path) -> None:
    """The mechanism: while a storage transaction has only read, another connection
    cannot start writing (it would have to wait for the lock)."""
    db = tmp_path / "s.db"
    study = _study(db, 1)
    engine = study._storage._backend.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM trials")).fetchone()  # a read, no write
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            try:
                other.execute("BEGIN IMMEDIATE")
                locked = False
                other.execute("ROLLBACK")
            except sqlite3.OperationalError as e:
                locked = "locked" in str(e)
        finally:
            other.close()
        conn.rollback()
    assert locked, "a reading transaction did not hold the write lock"


def test_concurrent_claims_of_the_same_trials_succeed_once_each(tmp_path: Path) -> None:
    """Eight connections (each its own storage, as eight processes would have) claim the
    same six waiting trials at once: every trial is claimed exactly once."""
    db = tmp_path / "s.db"
    study = _study(db, 6)
    ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    storages = [dist.open_storage(f"sqlite:///{db}") for _ in range(8)]
    start = threading.Barrier(len(storages))
    wins: Counter[int] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claim(st: optuna.storages.BaseStorage) -> None:
        try:
            start.wait(timeout=60)
            for tid in ids:
                try:
                    ok = st.set_trial_state_values(tid, state=TrialState.RUNNING)
                except optuna.exceptions.UpdateFinishedTrialError:
                    ok = False
                if ok:
                    with lock:
                        wins[tid] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(st,)) for st in storages]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert all(not th.is_alive() for th in threads)
    assert wins == Counter({tid: 1 for tid in ids}), wins
