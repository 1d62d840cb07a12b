"""A new study.db written without Alembic (search/sqlite_new.py) is the file Optuna's
RDBStorage writes: same schema, same rows, the revision Alembic itself names as head;
Optuna opens it with its compatibility check, and studies and trials round-trip."""

from __future__ import annotations

import pickle
import sqlite3
import sys
from pathlib import Path

import optuna
import pytest

from search.sqlite_new import alembic_head, new_sqlite_storage
from search.storage_url import open_storage


def _dump(path: Path) -> tuple[list[tuple[str, str, str | None]], list[tuple], list[tuple], str]:
    con = sqlite3.connect(path)
    try:
        schema = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        info = con.execute("SELECT * FROM version_info").fetchall()
        rev = con.execute("SELECT * FROM alembic_version").fetchall()
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()
    return schema, info, rev, mode


def test_head_is_the_revision_alembic_names() -> None:
    from optuna.storages._rdb.storage import RDBStorage

    ref = RDBStorage("sqlite://")  # in memory
    assert alembic_head() == ref.get_current_version() == ref._version_manager.get_head_version()


def test_new_file_is_the_file_rdbstorage_writes(tmp_path: Path) -> None:
    ref = tmp_path / "ref.db"
    optuna.storages.RDBStorage(f"sqlite:///{ref}")
    sqlite3.connect(ref).execute("PRAGMA journal_mode=WAL").fetchone()
    new = tmp_path / "new.db"
    st = open_storage(f"sqlite:///{new}")
    assert type(st).__name__ == "_NewSQLiteStorage"
    assert _dump(new) == _dump(ref)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files
    # Optuna's own check: the stamped revision is the head of its migrations
    checked = optuna.storages.RDBStorage(f"sqlite:///{new}")
    assert checked.get_current_version() == checked.get_head_version()


def test_studies_and_trials_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    st = open_storage(f"sqlite:///{path}")
    study = optuna.create_study(storage=st, study_name="s", directions=["maximize"])
    study.set_user_attr("k", {"a": 1})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    # the version manager is built on demand (upgrade, version queries) ...
    assert st.get_current_version() == alembic_head()
    # ... and a pickled storage comes back as a plain RDBStorage on the same file
    back = pickle.loads(pickle.dumps(st))
    assert type(back) is optuna.storages.RDBStorage
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{path}")
    assert len(again.trials) == 3 and again.user_attrs == {"k": {"a": 1}}


def test_existing_file_is_opened_the_usual_way(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="old")
    assert new_sqlite_storage(path, f"sqlite:///{path}", {}) is None
    st = open_storage(f"sqlite:///{path}")
    assert type(st) is optuna.storages.RDBStorage
    assert optuna.get_all_study_names(st) == ["old"]


def test_no_alembic_import_on_the_new_file_path(tmp_path: Path) -> None:
    """The point of the module: a new study costs no Alembic import."""
    import subprocess

    code = ("import sys; from search.storage_url import open_storage; "
            f"open_storage('sqlite:///{tmp_path / 'a.db'}'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_unreadable_migrations_fall_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import search.sqlite_new as sn

    monkeypatch.setattr(sn, "alembic_head", lambda: None)
    path = tmp_path / "study.db"
    st = open_storage(f"sqlite:///{path}")
    assert type(st) is optuna.storages.RDBStorage and path.exists()


def test_attribute_values_are_written_as_json_dumps_writes_them():
    import json
    import math

    import numpy as np

    from search.storage import _json_value

    values = [0.0, -0.0, 1.5, 1e300, 1e-300, math.pi, math.nan, math.inf, -math.inf, 0, -7,
              2**70, True, False, None, "", "a\"b\\c\n\u00e9\u4e2d", np.float64(2.5),
              np.int64(3), [1, 2.5, "x"], {"k": [None, True]}]
    for v in values:
        if isinstance(v, np.integer):
            v = int(v)
        assert _json_value(v) == json.dumps(v), repr(v)


def test_new_storage_has_every_attribute_rdbstorage_sets(tmp_path: Path) -> None:
    """_NewSQLiteStorage sets RDBStorage's attributes itself (to defer Alembic): an Optuna
    that adds one must show up here, not as an AttributeError mid-search."""
    ref = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'ref.db'}")
    new = open_storage(f"sqlite:///{tmp_path / 'new.db'}")
    assert type(new).__name__ == "_NewSQLiteStorage"
    want = set(vars(ref)) - {"_version_manager"}
    assert want <= set(vars(new)), sorted(want - set(vars(new)))


def test_a_finished_search_leaves_every_trial_in_study_db_itself(tmp_path: Path) -> None:
    """The run closes its study: SQLite checkpoints the write-ahead log, so a copy of
    study.db alone (without -wal) holds every trial."""
    import shutil

    from dse.cli import main

    run = tmp_path / "run"
    assert main(["search", "--workload", "gpt2", "--area", "400", "--budget", "20",
                 "--out", str(run), "--no-report"]) == 0
    alone = tmp_path / "copy.db"
    shutil.copy(run / "study.db", alone)
    con = sqlite3.connect(alone)
    try:
        n = con.execute("SELECT count(*) FROM trials").fetchone()[0]
    finally:
        con.close()
    assert n >= 20 and not (run / "study.db-wal").exists()
