"""Evaluator, random, exhaustive and Optuna searchers on a synthetic problem."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from dse.errors import ConfigError
from search.baselines import exhaustive_search, random_search
from search.evaluator import Evaluator
from search.optuna_search import _non_dominated, pareto_rows, run_optuna
from search.storage import TrialBuffer, open_storage, open_study
from tests.search.synthetic import SyntheticProblem

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def test_evaluator_caches_and_enforces_budget() -> None:
    pb = SyntheticProblem()
    ev = Evaluator(pb, budget=5)
    idx = pb.space.sample(np.random.default_rng(0), 4)
    r1 = ev.evaluate(idx, "t")
    assert ev.evaluations == len(np.unique(pb.space.flat(idx)))
    calls = pb.calls
    r2 = ev.evaluate(idx, "t")  # all cached: no new model call
    assert pb.calls == calls
    np.testing.assert_array_equal(r1["value"], r2["value"])
    more = pb.space.sample(np.random.default_rng(1), 10)
    r3 = ev.evaluate(more, "t")
    assert ev.evaluations == 5 and ev.exhausted
    assert (~r3["evaluated"]).any()
    assert np.isnan(r3["value"][~r3["evaluated"]]).all()


def test_exhaustive_finds_the_optimum() -> None:
    pb = SyntheticProblem(area_mm2=60.0)
    ev = Evaluator(pb)
    n = exhaustive_search(ev)
    area, _tdp = pb.area_tdp(pb.space.all_indices())
    assert n == int(np.sum(area <= 60.0))
    best = ev.top(1)[0]
    assert ev.columns()["value"][best] == pytest.approx(pb.optimum())


def test_random_search_is_deterministic_and_feasible() -> None:
    def run(seed: int) -> np.ndarray:
        pb = SyntheticProblem(area_mm2=60.0)
        ev = Evaluator(pb, budget=30)
        random_search(ev, seed=seed)
        assert ev.evaluations == 30
        assert np.all(ev.columns()["area_mm2"] <= 60.0)
        return ev.columns()["idx"]

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_optuna_constraints_are_user_attrs_and_seeded(tmp_path) -> None:
    def run(seed: int, tag: str) -> tuple[list, optuna.Study]:
        pb = SyntheticProblem(area_mm2=60.0)
        st = open_study(open_storage(f"sqlite:///{tmp_path}/{tag}.db"), "s",
                        ["maximize"], ["samples_per_s"])
        buf = TrialBuffer(st, batch_size=7)
        ev = Evaluator(pb, buffer=buf)
        run_optuna(ev, n_trials=24, seed=seed)
        buf.flush()
        return [t.params for t in st.trials], st

    p1, st = run(0, "a")
    p2, _ = run(0, "b")
    assert p1 == p2 and len(p1) == 24
    t = st.trials[0]
    for key in ("area_mm2", "tdp_w", "feasible", "constraint_area_mm2_over_budget",
                "samples_per_s", "tensor_cores", "design"):
        assert key in t.user_attrs
    assert set(t.constraints) == {"area_mm2_over_budget", "tdp_w_over_budget",
                                  "memory_bytes_over_hbm"}
    assert t.user_attrs["feasible"] == all(v <= 0 for v in t.constraints.values())
    assert t.user_attrs["constraint_area_mm2_over_budget"] == pytest.approx(
        t.constraints["area_mm2_over_budget"])
    assert st.metric_names == ["samples_per_s"]


def test_optuna_enqueued_designs_run_first() -> None:
    pb = SyntheticProblem()
    ev = Evaluator(pb)
    seeds = [pb.space.index_of({"tensor_cores": 4, "array_rows": 64, "array_cols": 64,
                                "dataflow": "ws", "vector_cores": 2, "hbm_stacks": 2})]
    run_optuna(ev, n_trials=3, seed=0, enqueue=seeds)
    np.testing.assert_array_equal(ev.columns()["idx"][0], seeds[0])


def test_optuna_resume_continues(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    pb = SyntheticProblem()

    def session(n: int) -> int:
        st = open_study(open_storage(url), "r", ["maximize"], ["samples_per_s"])
        hist = st.get_trials(deepcopy=False)
        buf = TrialBuffer(st, batch_size=5)
        ev = Evaluator(pb, buffer=buf)
        ev.load_history(hist)
        run_optuna(ev, n_trials=n - len(hist), seed=1, history=hist)
        buf.flush()
        return len(st.get_trials(deepcopy=False))

    assert session(10) == 10
    assert session(25) == 25
    st = optuna.load_study(study_name="r", storage=url)
    assert [t.number for t in st.trials] == list(range(25))


def test_multi_objective_pareto_front() -> None:
    pb = SyntheticProblem(area_mm2=80.0)
    ev = Evaluator(pb, multi_objective=True)
    out = run_optuna(ev, n_trials=40, seed=0, multi_objective=True)
    assert out.pareto_rows
    c = ev.columns()
    assert all(c["feasible"][r] for r in out.pareto_rows)
    front = pareto_rows(ev)
    pts = np.stack([-c["value"][front], c["area_mm2"][front], c["tdp_w"][front]], axis=1)
    assert _non_dominated(pts).all()


def test_non_dominated_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 5, size=(60, 3)).astype(float)
    fast = _non_dominated(pts)
    for i in range(len(pts)):
        dominated = np.any(np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1))
        if dominated:
            assert not fast[i]
    # every non-dominated distinct point is kept once
    nd = {tuple(p) for i, p in enumerate(pts) if not np.any(
        np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))}
    assert {tuple(p) for p in pts[fast]} == nd and fast.sum() == len(nd)


def test_fast_persist_equals_add_trials(tmp_path) -> None:
    pb = SyntheticProblem()
    ev = Evaluator(pb)
    idx = pb.space.sample(np.random.default_rng(2), 6)
    ev.evaluate(idx, "t", persist=False)
    sc = ev.scores_at(ev.rows_of(idx))
    trials = ev.make_trials(idx, sc, "t", 0)
    fast = open_study(open_storage(f"sqlite:///{tmp_path}/f.db"), "x", ["maximize"], ["v"])
    from search.storage import _fast_sqlite_insert

    assert _fast_sqlite_insert(fast, trials)  # the batched path ran (no silent fallback)
    slow = optuna.create_study(storage=f"sqlite:///{tmp_path}/g.db", study_name="x",
                               direction="maximize")
    slow.add_trials([t.to_frozen() for t in trials])
    for a, b in zip(fast.trials, slow.trials):
        assert (a.number, a.params, a.values, a.user_attrs, a.constraints, a.state) == \
               (b.number, b.params, b.values, b.user_attrs, b.constraints, b.state)
        assert (a.datetime_start, a.datetime_complete, a.distributions) == \
               (b.datetime_start, b.datetime_complete, b.distributions)


def test_history_from_another_workload_is_rejected(tmp_path) -> None:
    pb = SyntheticProblem()
    ev = Evaluator(pb)
    idx = pb.space.sample(np.random.default_rng(2), 2)
    ev.evaluate(idx, "t", persist=False)
    trials = ev.make_trials(idx, ev.scores_at(ev.rows_of(idx)), "t", 0)
    other = Evaluator(SyntheticProblem(workloads=("other",)))
    with pytest.raises(ConfigError, match="other workloads"):
        other.load_history(trials)
