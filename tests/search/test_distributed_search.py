"""`dse search --jobs N`: the search as a shared study filled by worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from dse import cli
from search.distributed_search import settings_of
from search.optuna_search import objective_from_settings
from search.runner import SearchConfig
from tests.search.tiny import tiny_yaml

pytestmark = pytest.mark.slow


def test_jobs_fill_the_budget_once(tmp_path: Path, capsys) -> None:
    wl = tiny_yaml(tmp_path)
    out = tmp_path / "run"
    code = cli.main(["search", "--workload", wl, "--area", "150", "--searcher", "random",
                     "--budget", "6", "--jobs", "2", "--top-k", "1", "--out", str(out),
                     "--json", "--no-report"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0
    assert r["evaluations"] == 6 and r["search"]["distributed"]["finished"] == 6
    st = optuna.load_study(study_name=r["study"]["name"],
                           storage=optuna.storages.JournalStorage(
                               optuna.storages.journal.JournalFileBackend(str(out / "study.log"))))
    done = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.number for t in done) == sorted({t.number for t in done})
    assert len(done) == 6
    for t in done:
        assert "feasible" in t.user_attrs and "area_mm2" in t.user_attrs
        assert set(t.constraints) == {"area_mm2_over_budget", "tdp_w_over_budget",
                                      "memory_bytes_over_hbm"}
    assert (out / "designs.csv").exists() and (out / "best.json").exists()


def test_wham_refuses_jobs(tmp_path: Path, capsys) -> None:
    wl = tiny_yaml(tmp_path)
    code = cli.main(["search", "--workload", wl, "--area", "150", "--jobs", "2",
                     "--out", str(tmp_path / "w"), "--no-report"])
    assert code == 2
    assert "wham runs in one process" in capsys.readouterr().err


def test_worker_objective_slots_are_pure_functions_of_the_settings(tmp_path: Path) -> None:
    wl = tiny_yaml(tmp_path)
    from search.runner import build_problem

    cfg = SearchConfig(workloads=(wl,), area_mm2=150.0, searcher="random", seed=4)
    s = settings_of(cfg, build_problem(cfg).space.fingerprint())
    a = objective_from_settings(s).slot_params(3, 7)
    b = objective_from_settings(s).slot_params(0, 7)[3:]
    assert a == b and all(a)


def test_worker_started_before_the_study_waits_for_it(tmp_path: Path) -> None:
    """``dse worker --wait SECONDS`` started first waits for ``dse search`` to create the
    study, then joins it (issue 14); without the study in time it is the usual exit 2."""
    import json as _json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    db = f"sqlite:///{tmp_path / 'w.db'}"
    worker = subprocess.Popen([sys.executable, "-m", "dse.cli", "worker", "--storage", db,
                               "--study", "ws", "--wait", "300", "--json"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stderr is not None
    line = worker.stderr.readline()  # the event: it is waiting
    assert "waiting up to 300 s for study 'ws'" in line, line
    r = subprocess.run([sys.executable, "-m", "dse.cli", "search", "--workload", "gpt2",
                        "--area", "300", "--searcher", "random", "--budget", "30", "--storage",
                        db, "--study", "ws", "--jobs", "2", "--out", str(tmp_path / "run"),
                        "--no-report", "--json"], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    rep = _json.loads(out)
    assert rep["study_progress"]["finished"] == 30
    late = subprocess.run([sys.executable, "-m", "dse.cli", "worker", "--storage",
                           f"sqlite:///{tmp_path / 'none.db'}", "--study", "ws", "--wait",
                           "0.5"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert late.returncode == 2 and "no study 'ws'" in late.stderr
