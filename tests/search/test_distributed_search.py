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
