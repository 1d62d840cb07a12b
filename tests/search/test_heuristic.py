"""The critical-path heuristic: its diagnosis, its moves and its local search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cost_models.designs import DesignBatch
from cost_models.evaluate import device_step, evaluate_device
from cost_models.training import split_phases
from dse.types import ParallelPlan
from search.evaluator import Evaluator
from search.heuristic import (
    GlobalTarget,
    chain_bounds,
    critical_chain,
    local_search,
    propose_moves,
    seed_designs,
    wham_search,
)
from search.space import default_space
from tests.search.tiny import SMALL_SPACE, TINY, tiny_problem
from workloads.parallel import stage_graphs


def _phase_graphs():
    g = stage_graphs(TINY, ParallelPlan(global_batch=8, micro_batch=2), 128)[0]
    ph = split_phases(g)
    return [x for x in (ph.fwd, ph.bwd, ph.opt) if x is not None]


def test_critical_chain_matches_the_scalar_reference() -> None:
    """critical_chain of the vectorized schedule == evaluate_device's schedule_chain."""
    pb = tiny_problem()
    rng = np.random.default_rng(3)
    for sub in _phase_graphs():
        xs = default_space().sample(rng, 5)
        hws = [default_space().config(x) for x in xs]
        st = device_step(sub, DesignBatch.from_configs(hws), pb.tech)
        for d, hw in enumerate(hws):
            ref = evaluate_device(sub, hw, pb.tech)
            ch = critical_chain(sub, st, d)
            assert tuple(sub.ops[j].name for j in ch) == ref.schedule_chain


def test_critical_chain_on_the_vectorized_schedule_ends_at_its_makespan() -> None:
    pb = tiny_problem()
    for x in default_space().sample(np.random.default_rng(4), 4):
        hw = default_space().config(x)
        for sub in _phase_graphs():
            st = device_step(sub, DesignBatch.from_configs([hw]), pb.tech)
            ch = critical_chain(sub, st, 0)
            assert st.end_s[0][ch[-1]] == pytest.approx(st.end_s[0].max())
            # consecutive chain ops touch: each starts when the previous one ends
            for a, b in itertools.pairwise(ch):
                assert st.start_s[0][b] == pytest.approx(st.end_s[0][a], rel=1e-9, abs=1e-15)


def test_chain_bounds_add_up_to_the_makespan() -> None:
    pb = tiny_problem()
    for x in SMALL_SPACE.sample(np.random.default_rng(0), 4):
        hw = SMALL_SPACE.config(x)
        for sub in _phase_graphs():
            b = chain_bounds(sub, hw, pb.tech)
            ms = device_step(sub, DesignBatch.from_configs([hw]), pb.tech).makespan_s[0]
            # the chain runs back to back from 0 to the makespan, or starts late only
            # when it waited on nothing (then the sum is smaller, never larger)
            assert sum(b.values()) <= ms * (1 + 1e-9)
            assert set(b) <= {"tensor", "vector", "sram", "hbm", "link"}


def test_moves_grow_the_bounding_resource_and_shrink_slack() -> None:
    s = SMALL_SPACE
    x = s.index_of({"tensor_cores": 4, "array_rows": 32, "array_cols": 32, "dataflow": "ws",
                    "vector_cores": 2, "sram_per_core_bytes": 1 * 2**20, "hbm_stacks": 2})
    bounds = {"tensor": 1.0, "vector": 0.0, "hbm": 0.0}
    focused = propose_moves(s, x, bounds, tier=0)
    wider = propose_moves(s, x, bounds, tier=1)
    j_tc, j_vc = s.names.index("tensor_cores"), s.names.index("vector_cores")
    d0, d1 = focused - x, wider - x
    assert any((d[j_tc] == 1) and (np.abs(d).sum() == 1) for d in d0)  # grow tensor
    assert any((d[j_tc] == 1) and (d[j_vc] == -1) for d in d1)         # trade vector
    assert not any(d[j_vc] > 0 for d in np.vstack([d0, d1]))          # never grow slack
    full = propose_moves(s, x, {}, full=True)
    assert len(full) > len(focused) + len(wider)


def test_reshapes_keep_the_macs_and_offer_the_core_sram_that_keeps_it() -> None:
    from search.moves import _reshapes

    s = default_space()
    x = s.index_of({"tensor_cores": 8, "array_rows": 64, "array_cols": 128,
                    "sram_per_core_bytes": 1 * 2**20})
    v = s.values(np.array(_reshapes(s, x, ("tensor_cores", "array_rows", "array_cols"))))
    macs = v["tensor_cores"] * v["array_rows"] * v["array_cols"]
    assert (macs == 8 * 64 * 128).all() and len(macs) >= 4
    pairs = set(zip(v["tensor_cores"].tolist(), v["array_cols"].tolist(),
                    v["sram_per_core_bytes"].tolist()))
    assert (16, 64, 0.5 * 2**20) in pairs      # 16 cores of 64x64, same core SRAM in total


def test_a_grow_is_paid_by_less_critical_resources() -> None:
    from search.heuristic import payers

    s = default_space()
    bounds = {"tensor": 0.6, "vector": 0.28, "hbm": 0.12}
    pay = payers(s, bounds, "vector_cores", [])
    assert "hbm_stacks" in pay and "tensor_cores" not in pay


def test_local_search_improves_and_stops_at_a_local_optimum() -> None:
    pb = tiny_problem(area_mm2=150.0)
    ev = Evaluator(pb)
    target = GlobalTarget(ev)
    seeds = seed_designs(SMALL_SPACE, target, [], rng=np.random.default_rng(1), random_seeds=3)
    assert len(seeds) == 3
    improved = 0
    for s in seeds:
        res = local_search(target, s)
        assert res.best_value >= res.start_value
        improved += res.best_value > res.start_value
        # every accepted step was an improvement, and the end is a local optimum of the
        # whole neighbourhood within budget
        vals = [res.start_value] + [st["value"] for st in res.steps]
        assert all(b >= a for a, b in itertools.pairwise(vals))
        nb = SMALL_SPACE.neighbors(res.best)
        nb = nb[target.within_budget(nb)]
        r = ev.evaluate(nb, "check")
        assert np.all(np.where(r["feasible"], r["value"], -np.inf) <= res.best_value * (1 + 1e-9))
    assert improved >= 1


def test_wham_search_is_deterministic_and_keeps_top_k() -> None:
    def run():
        pb = tiny_problem(area_mm2=150.0)
        ev = Evaluator(pb)
        t = GlobalTarget(ev)
        seeds = seed_designs(SMALL_SPACE, t, [], rng=np.random.default_rng(5), random_seeds=2)
        return wham_search(t, seeds, top_k=3), ev

    a, ev_a = run()
    b, _ = run()
    assert a.top == b.top and a.top_values == b.top_values
    assert len(a.top) == 3 and a.top_values == sorted(a.top_values, reverse=True)
    assert a.evaluations == ev_a.evaluations


def test_seeds_hold_the_workload_in_hbm() -> None:
    pb = tiny_problem(area_mm2=150.0)
    t = GlobalTarget(Evaluator(pb))
    seeds = seed_designs(SMALL_SPACE, t, [SMALL_SPACE.config(np.zeros(7, int))],
                         rng=np.random.default_rng(0), random_seeds=2)
    f = SMALL_SPACE.fields(np.array(seeds))
    assert (f["hbm_bytes"] >= pb.min_hbm_bytes()).all()
    assert t.within_budget(np.array(seeds)).all()


def test_infeasible_start_walks_to_feasibility() -> None:
    """From the largest design of the grid, far over the area budget, the search sheds
    area (the violation ordering) until the design fits, then optimizes."""
    pb = tiny_problem(area_mm2=150.0)
    ev = Evaluator(pb)
    t = GlobalTarget(ev)
    x = np.array(SMALL_SPACE.shape) - 1
    assert not t.within_budget(x[None, :])[0]
    res = local_search(t, x)
    assert ev.lookup(res.best[None, :])["feasible"][0]
    assert res.best_value > 0


def test_batched_diagnosis_equals_one_design_at_a_time() -> None:
    """``diagnose_many`` (several designs in one vectorized evaluation per plan) gives each
    design the same critical-path shares as :func:`diagnose` alone."""
    import numpy as np

    from search.diagnosis import diagnose, diagnose_many
    from tests.search.tiny import SMALL_SPACE, tiny_problem

    pb = tiny_problem()
    idx = SMALL_SPACE.sample(np.random.default_rng(5), 6)
    hws = [SMALL_SPACE.config(x) for x in idx]
    plans = [pb.plans_of(hw) for hw in hws]
    many = diagnose_many(pb, hws, plans)
    for hw, p, got in zip(hws, plans, many):
        want = diagnose(pb, hw, p)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-15)
