"""Tests of search.planbound: the branch and bound over parallel plans returns exactly what
costing every plan returns, and its bound never exceeds a plan's step time."""

import collections

import numpy as np
import pytest

import workloads
from search import planbound
from search.config import SearchConfig
from search.objective import build_problem
from workloads.spec import TransformerSpec


def _problem(workload, devices, area):
    return build_problem(SearchConfig(workloads=(workload,), area_mm2=area, devices=devices))


def _designs(problem, n, seed):
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, len(p.values), n) for p in problem.space.params], axis=1)
    return problem.space.designs(idx)


def _batches(problem, n, seed):
    """(designs, system) groups of a random batch: each group shares its links."""
    designs = _designs(problem, n, seed)
    return [(designs.subset(sel), system) for sel, system in problem._groups(designs, 0)]


@pytest.fixture(scope="module")
def mixtral():
    return _problem("mixtral-8x7b", 64, 600)


def test_stages_together_hold_the_whole_model():
    """The bound's work is the whole model's segments: summed over any plan's stages
    (even, uneven, interleaved, with dense layers and multi-token prediction), each segment
    graph's multiplicity is the whole model's."""
    for name, devices in (("deepseek-v3", 256), ("llama3-405b", 1024), ("mixtral-8x7b", 64)):
        from search.trainstep import WorkloadModel

        model = WorkloadModel(workloads.model_spec(name), devices=devices)
        plans = model.plans
        for plan in plans[:: max(1, len(plans) // 25)]:
            staged = collections.Counter()
            for _, _, g, mult, _ in model.stage_graphs(plan):
                staged[id(g)] += mult
            whole = collections.Counter()
            for g, mult, _ in planbound._whole_parts(model, plan):
                whole[id(g)] += mult
            assert staged == whole, (name, plan)


def test_bound_never_exceeds_the_step(mixtral):
    model, plans = mixtral.models[0], mixtral.plans[0][::9]
    for designs, system in _batches(mixtral, 12, 1)[:2]:
        costs = {}
        lb = planbound.lower_bounds(model, designs, system, mixtral.tech, plans, costs)
        exact = model.step_times(designs, system, mixtral.tech, plans, costs=costs)
        assert np.all(lb <= exact * (1 + 1e-12))
        # and it is a bound worth having: most plans within a factor 2
        assert np.median(lb / exact) > 0.5


@pytest.mark.parametrize("seed", [2, 3])
def test_branch_and_bound_equals_costing_every_plan(mixtral, seed):
    model, plans = mixtral.models[0], mixtral.plans[0][::5]
    for designs, system in _batches(mixtral, 16, seed)[:2]:
        fast, mf = planbound.best_plan_batch(model, designs, system, mixtral.tech, plans)
        slow, ms = planbound.exhaustive_best_plan_batch(model, designs, system, mixtral.tech,
                                                        plans)
        assert fast == slow
        for key in ("step_time_s", "samples_per_s", "memory_per_device_bytes",
                    "fits_memory", "plans_enumerated"):
            assert np.array_equal(mf[key], ms[key]), key
        assert np.all(mf["plans_evaluated"] < ms["plans_evaluated"])


def test_fastest_plans_rank_as_costing_every_plan(mixtral):
    model, plans = mixtral.models[0], mixtral.plans[0][::5]
    designs, system = _batches(mixtral, 4, 4)[0]
    one = designs.subset(np.array([0]))
    hbm = float(one.hbm_bytes[0])
    keep = [p for p in plans if model.memory_bytes(p) <= hbm]
    t = model.step_times(one, system, mixtral.tech, keep)[:, 0]
    order = np.argsort(t, kind="stable")[:16]
    assert planbound.fastest_plans(model, one, system, mixtral.tech, plans, 16) == [
        keep[int(j)] for j in order if np.isfinite(t[j])]


def test_ties_go_to_the_first_plan_in_enumeration_order():
    """A small dense model whose plans tie exactly (ZeRO stages that cost the same): the
    bound search picks what the exhaustive search picks."""
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology
    from search.trainstep import WorkloadModel

    spec = TransformerSpec(name="t", model_type="gpt2", layers=8, hidden=1024, heads=16,
                           ffn=4096, vocab=8000, max_positions=1024, default_seq=1024,
                           default_batch=64, source="test")
    a100 = load_preset("a100")
    model = WorkloadModel(spec, devices=16)
    plans = model.plans
    assert len(plans) > planbound.CHUNK
    designs = DesignBatch.from_configs([a100.hardware])
    tech = load_technology(7)
    fast, mf = planbound.best_plan_batch(model, designs, a100.system, tech, plans)
    slow, ms = planbound.exhaustive_best_plan_batch(model, designs, a100.system, tech, plans)
    assert fast == slow and np.array_equal(mf["step_time_s"], ms["step_time_s"])


def test_batched_step_times_equal_the_full_evaluation(mixtral):
    """The fast path (segment costs shared across plans, equal graphs costed once: the
    embedding and head of every expert split) gives :meth:`WorkloadModel.evaluate`'s
    step, plan by plan."""
    model = mixtral.models[0]
    plans = mixtral.plans[0]
    pick = [p for p in plans[::37] if p.ep in (1, 8)][:24]
    assert {p.ep for p in pick} == {1, 8}
    designs, system = _batches(mixtral, 6, 5)[0]
    fast = model.step_times(designs, system, mixtral.tech, pick)
    for plan, row in zip(pick, fast):
        full = model.evaluate(designs, system, mixtral.tech, [plan])[0]
        assert row == pytest.approx(np.asarray(full["step_time_s"]), rel=1e-9), plan
