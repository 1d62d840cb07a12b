"""Per-stage local searches (pipeline stages) and the global combination."""

from __future__ import annotations

import numpy as np
import pytest

from cost_models.network import comm_time_s
from cost_models.training import segment_costs
from search.evaluator import Evaluator
from search.global_search import global_search
from search.heuristic import StageTarget, local_search
from search.objective import TrainingProblem, WorkloadTarget
from tests.search.tiny import SMALL_SPACE, TINY


def _pipelined_problem() -> TrainingProblem:
    from cost_models.technology import load_technology

    pb = TrainingProblem(SMALL_SPACE, [WorkloadTarget(name="tiny", spec=TINY, devices=2)],
                         load_technology(7), area_mm2=150.0)
    pb.plans[0] = [p for p in pb.plans[0] if p.pp == 2 and p.schedule == "1f1b"]
    assert pb.plans[0]
    return pb


def test_stage_target_scores_the_stage_time_per_step() -> None:
    pb = _pipelined_problem()
    plan = pb.plans[0][0]
    t = StageTarget(pb, 0, 0, plan, name="stage0")
    idx = SMALL_SPACE.sample(np.random.default_rng(0), 6)
    r = t.evaluate(idx)
    designs = SMALL_SPACE.designs(idx)
    system = pb.system_of(SMALL_SPACE.config(idx[0]), 0)
    parts = [x for x in pb.models[0].stage_graphs(plan) if x[0] == 0]
    assert {name for _, name, _, _, _ in parts} == {"pre", "block"}
    costs = segment_costs([g for _, _, g, _, _ in parts], designs, pb.tech,
                          [comm_time_s(g, system, plan) for _, _, g, _, _ in parts])
    step = sum(mult * (plan.micro_batches * (c.fwd_s + c.bwd_s) + c.opt_s)
               for (_, _, _, mult, _), c in zip(parts, costs))
    assert plan.recompute == "none"
    np.testing.assert_allclose(r["value"], 1.0 / step, rtol=1e-12)
    assert t.evaluations == len(np.unique(SMALL_SPACE.flat(idx)))


def test_stage_local_search_improves() -> None:
    pb = _pipelined_problem()
    plan = pb.plans[0][0]
    last = len(pb.models[0].info(plan).stages) - 1
    t = StageTarget(pb, 0, last, plan, name="last")
    x = SMALL_SPACE.index_of({"tensor_cores": 1, "array_rows": 32, "array_cols": 32,
                              "dataflow": "ws", "vector_cores": 1,
                              "sram_per_core_bytes": 2**20, "hbm_stacks": 1})
    res = local_search(t, x)
    assert res.best_value > res.start_value
    assert t.top(3)[0][1] == pytest.approx(res.best_value)


def test_pipelined_workload_gets_per_stage_top_k_then_one_chip() -> None:
    pb = _pipelined_problem()
    ev = Evaluator(pb)
    res = global_search(ev, seed=0, top_k=3, random_seeds=1, polish=1)
    names = [s.name for s in res.stages]
    assert names[:2] == ["tiny/stage0", "tiny/stage1"]  # first and last stage differ
    # more only when the winner's plan cuts or shards the stages differently
    assert len(names) == 2 or res.rederived
    for s in res.stages:
        assert 0 < len(s.top) <= 3 and s.plan["pp"] == 2
    # every stage's top-k was evaluated end to end, and the best is among those or better
    union = {f for s in res.stages for f in s.top}
    c = ev.columns()
    flat_seen = set(SMALL_SPACE.flat(c["idx"]).tolist())
    assert union <= flat_seen
    best = ev.top(1)[0]
    best_union = max(c["value"][ev.rows_of(SMALL_SPACE.unflat(np.array(sorted(union))))])
    assert c["value"][best] >= best_union
    assert res.evaluations == ev.evaluations + sum(s.evaluations for s in res.stages)


def test_budget_caps_all_evaluations() -> None:
    pb = _pipelined_problem()
    ev = Evaluator(pb)
    res = global_search(ev, seed=0, top_k=2, random_seeds=1, budget=40)
    assert res.evaluations <= 40 + 1  # the one seed evaluated to pick the reference plan


def test_heterogeneous_is_never_worse_than_the_common_chip() -> None:
    """A chip per pipeline rank class, combined by the pipeline model: the common chip is
    one of the combinations, so the best is at least as good; every chip fits the budget."""
    from search.hetero import heterogeneous_search

    pb = _pipelined_problem()
    ev = Evaluator(pb)
    res = global_search(ev, seed=0, top_k=3, random_seeds=1, polish=1, heterogeneous=True)
    het = res.heterogeneous
    assert het is not None and het["chips"]
    assert het["gain_over_common"] >= 1.0 - 1e-12
    assert all(c["area_mm2"] <= 150.0 for c in het["chips"])
    assert sorted(r for c in het["chips"] for r in c["ranks"]) == list(range(het["plan"]["pp"]))
    # the common chip's combination reproduces the end-to-end value of that design
    c = ev.columns()
    best = ev.top(1)[0]
    plan = pb.plans[0][int(c["plan_id"][0, best])]
    again = heterogeneous_search(pb, plan, {}, c["idx"][best])
    assert again["common_objective_value"] == pytest.approx(c["value"][best], rel=1e-9)


def test_lockstep_local_searches_take_the_steps_each_takes_alone() -> None:
    """``local_searches`` pools the candidates of all searches into one batch per round;
    every search must move exactly as it does alone."""
    from search.heuristic import local_searches

    pb = _pipelined_problem()
    plan = pb.plans[0][0]
    seeds = list(SMALL_SPACE.sample(np.random.default_rng(3), 4))
    alone = [local_search(StageTarget(pb, 0, 0, plan, name="s"), x) for x in seeds]
    shared = StageTarget(pb, 0, 0, plan, name="s")
    calls = []
    score = shared._score
    shared._score = lambda idx: (calls.append(len(idx)), score(idx))[1]  # type: ignore
    together = local_searches(shared, seeds)
    assert len(together) == len(alone)
    for a, b in zip(alone, together):
        assert a.best.tolist() == b.best.tolist()
        assert a.best_value == b.best_value
        assert [s["to"] for s in a.steps] == [s["to"] for s in b.steps]
    # fewer, larger cost-model calls than the searches' steps put together
    assert len(calls) < sum(len(a.steps) + 1 for a in alone)
