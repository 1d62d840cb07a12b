"""Tests of search.plans: plan enumeration and the fastest plan that fits memory."""

import dataclasses

import numpy as np
import pytest

from cost_models.designs import DesignBatch
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.errors import InfeasibleDesignError
from dse.types import ParallelPlan
from search.plans import best_plan, best_plan_batch, enumerate_plans, plan_memory_bytes
from search.trainstep import evaluate_training
from workloads.parallel import validate_plan
from workloads.spec import TransformerSpec

A100 = load_preset("a100")
TECH = load_technology(7)


def spec(**kw):
    base = {"name": "t", "model_type": "gpt2", "layers": 8, "hidden": 1024, "heads": 16, "ffn": 4096,
                "vocab": 8000, "max_positions": 1024, "default_seq": 1024, "default_batch": 16,
                "source": "test"}
    base.update(kw)
    return TransformerSpec(**base)


def test_enumerated_plans_are_valid_and_distinct():
    s = spec()
    plans = enumerate_plans(s, 8)
    assert len(plans) == len(set(plans)) > 20
    for p in plans:
        validate_plan(s, p, 8)
        assert p.global_batch == 16
        assert p.sequence_parallel == (p.tp > 1)
    assert {p.schedule for p in plans} == {"1f1b", "interleaved"}
    # with fused attention (the TransformerSpec default) selective is the same plan as none
    assert s.attention == "fused"
    assert {p.recompute for p in plans} == {"none", "full"}
    unfused = dataclasses.replace(s, attention="unfused")
    assert {p.recompute for p in enumerate_plans(unfused, 8)} == {"none", "selective", "full"}
    assert {p.tp for p in plans} == {1, 2, 4, 8}
    # dp must divide the global batch
    assert enumerate_plans(s, 8, global_batch=12) and all(
        12 % p.dp == 0 for p in enumerate_plans(s, 8, global_batch=12))


def test_best_plan_is_the_fastest_fitting_plan():
    """Brute force over a small space: best_plan equals the minimum over every plan that
    fits."""
    s = spec()
    kw = {"recompute": ("none", "full"), "zero_stages": (0,), "interleaves": (2,),
              "max_micro_batch": 4}
    plans = enumerate_plans(s, 4, **kw)
    # an HBM capacity that some plans fit and others do not: the median plan's memory
    mem = sorted(evaluate_training(s, A100.hardware, A100.system, p, TECH
                                   ).memory_per_device_bytes for p in plans)
    hw = dataclasses.replace(A100.hardware, hbm_bytes=mem[len(mem) // 2])
    times = {}
    for p in plans:
        e = evaluate_training(s, hw, A100.system, p, TECH)
        if e.fits_memory:
            times[p] = e.step_time_s
    assert 0 < len(times) < len(plans)
    designs = DesignBatch.from_configs([hw])
    chosen, metrics = best_plan_batch(s, designs, A100.system, 4, tech=TECH, plans=plans)
    fastest = min(times, key=times.get)
    assert chosen[0] == fastest
    assert metrics["step_time_s"][0] == pytest.approx(times[fastest])
    assert metrics["fits_memory"][0]


def test_best_plan_returns_an_evaluation_and_prefers_fitting():
    s = spec()
    plan, ev = best_plan(s, A100.hardware, A100.system, 8, tech=TECH)
    assert isinstance(plan, ParallelPlan) and plan.devices == 8
    assert ev.fits_memory and ev.step_time_s > 0
    assert ev.extra["plans_evaluated"] <= ev.extra["plans_enumerated"]


def test_no_plan_fits_raises_infeasible():
    tiny_hbm = dataclasses.replace(A100.hardware, hbm_bytes=1e6)
    with pytest.raises(InfeasibleDesignError, match="fits"):
        best_plan(spec(), tiny_hbm, A100.system, 2, tech=TECH)


def test_batch_picks_per_design():
    s = spec()
    big = A100.hardware
    small = dataclasses.replace(big, name="small", hbm_bytes=3.0e9)
    plans = enumerate_plans(s, 4, recompute=("none", "full"), zero_stages=(0,),
                            max_micro_batch=2)
    chosen, m = best_plan_batch(s, DesignBatch.from_configs([big, small]), A100.system, 4,
                                tech=TECH, plans=plans)
    assert chosen[0] is not None and chosen[1] is not None
    assert plan_memory_bytes(s, chosen[1]) <= 3.0e9
    assert m["step_time_s"][0] <= m["step_time_s"][1]
    assert np.all(m["plans_evaluated"] <= m["plans_enumerated"])


def test_compare_plans_lists_the_chosen_plan_first_among_fitting_ones():
    from search.plans import compare_plans

    preset = load_preset("a100")
    import workloads

    spec = workloads.model_spec("gpt2")
    rows = compare_plans(spec, preset.hardware, preset.system, 8, limit=12)
    assert 1 <= len(rows) <= 13
    chosen = [r for r in rows if r["chosen"]]
    assert len(chosen) == 1
    plan, ev = best_plan(spec, preset.hardware, preset.system, 8)
    assert chosen[0]["plan"]["tp"] == plan.tp and chosen[0]["plan"]["pp"] == plan.pp
    assert chosen[0]["samples_per_s"] == pytest.approx(ev.samples_per_s, rel=1e-9)
    fitting = [r["samples_per_s"] for r in rows if r["fits_memory"]]
    assert fitting == sorted(fitting, reverse=True) and fitting[0] == chosen[0]["samples_per_s"]
    for r in rows:
        assert r["plan"]["tp"] * r["plan"]["pp"] * r["plan"]["dp"] == 8
