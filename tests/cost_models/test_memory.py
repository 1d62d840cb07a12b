"""Tests of cost_models.memory against Korthikanti et al. 2022 Table 2 and ZeRO's 16 B/param."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.memory import (
    ADAM_STATE_BYTES_PER_PARAM,
    activation_bytes_per_layer,
    device_memory_bytes,
    fits_memory,
    model_state_bytes,
    stage_memory_bytes,
)
from dse.errors import ConfigError
from dse.types import Graph, Operator, ParallelPlan

GPT3 = {"seq": 2048, "micro_batch": 1, "hidden": 12288, "heads": 96}


def test_mixed_precision_adam_is_16_bytes_per_param():
    assert ADAM_STATE_BYTES_PER_PARAM == 16
    d = model_state_bytes(175e9)
    assert d["total"] == pytest.approx(16 * 175e9)
    assert (d["weights"], d["grads"], d["optimizer"]) == (2 * 175e9, 2 * 175e9, 12 * 175e9)


def test_zero_stages_divide_by_dp():
    p, dp = 1e9, 8
    z1 = model_state_bytes(p, dp=dp, zero_stage=1)["total"]
    z2 = model_state_bytes(p, dp=dp, zero_stage=2)["total"]
    z3 = model_state_bytes(p, dp=dp, zero_stage=3)["total"]
    assert z1 == pytest.approx(p * (2 + 2 + 12 / dp))   # ZeRO paper: P_os
    assert z2 == pytest.approx(p * (2 + 14 / dp))        # P_os+g
    assert z3 == pytest.approx(p * 16 / dp)              # P_os+g+p
    assert model_state_bytes(p, optimizer="sgd")["total"] == pytest.approx(8 * p)
    with pytest.raises(ConfigError, match="adam"):
        model_state_bytes(p, optimizer="lamb")


def test_activation_per_layer_without_parallelism_is_korthikanti_eq1():
    s, b, h, a = 2048, 1, 12288, 96
    assert activation_bytes_per_layer(**GPT3) == pytest.approx(s * b * h * (34 + 5 * a * s / h))


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_activation_per_layer_table2_rows(t):
    s, b, h, a = 2048, 4, 6144, 64
    kw = {"seq": s, "micro_batch": b, "hidden": h, "heads": a, "tp": t}
    sbh = s * b * h
    assert activation_bytes_per_layer(**kw) == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    assert activation_bytes_per_layer(**kw, sequence_parallel=True) == pytest.approx(
        sbh / t * (34 + 5 * a * s / h))
    assert activation_bytes_per_layer(**kw, recompute="selective") == pytest.approx(
        sbh * (10 + 24 / t))
    assert activation_bytes_per_layer(**kw, recompute="selective", sequence_parallel=True) == \
        pytest.approx(34 * sbh / t)
    assert activation_bytes_per_layer(**kw, recompute="full") == pytest.approx(2 * sbh)


def test_gqa_and_gated_mlp_change_the_inside_terms():
    base = activation_bytes_per_layer(**GPT3, recompute="selective")
    gqa = activation_bytes_per_layer(**GPT3, recompute="selective", kv_heads=8)
    gated = activation_bytes_per_layer(**GPT3, recompute="selective", gated_mlp=True)
    s, h = 2048, 12288
    assert base - gqa == pytest.approx(4 * s * (h - h * 8 / 96))
    assert gated - base == pytest.approx(2 * s * 4 * h)


@settings(max_examples=50, deadline=None)
@given(t=st.sampled_from([1, 2, 4, 8]), sp=st.booleans(), b=st.integers(1, 16),
       s=st.sampled_from([128, 512, 2048]))
def test_recompute_and_parallelism_never_increase_activations(t, sp, b, s):
    kw = {"seq": s, "micro_batch": b, "hidden": 4096, "heads": 32, "tp": t, "sequence_parallel": sp}
    none = activation_bytes_per_layer(**kw)
    sel = activation_bytes_per_layer(**kw, recompute="selective")
    full = activation_bytes_per_layer(**kw, recompute="full")
    assert full <= sel <= none
    more_tp = activation_bytes_per_layer(**{**kw, "tp": 2 * t})
    assert more_tp <= none


def test_1f1b_stashes_p_micro_batches_and_gpipe_m():
    common = {"params": 1e9, "layers": 12, "first": True, "last": False, "seq": 2048, "hidden": 12288,
                  "heads": 96, "vocab": 51200}
    one = ParallelPlan(pp=8, global_batch=64, tp=8)
    s1 = stage_memory_bytes(plan=one, in_flight=8, **common)
    per_layer = activation_bytes_per_layer(seq=2048, micro_batch=1, hidden=12288, heads=96, tp=8)
    assert s1["activations"] == pytest.approx(per_layer * 12 * 8)
    assert s1["weights"] == pytest.approx(2e9) and s1["optimizer"] == pytest.approx(12e9)
    total = sum(v for k, v in s1.items() if k != "total")
    assert s1["total"] == pytest.approx(total)


def _toy_graph(meta):
    ops = (
        Operator(name="w", kind="gemm", phase="fwd", m=4, k=4, n=4, flop=128.0, params=1000,
                 count=2, stash_bytes=500.0, bytes_in=64.0, block="layer"),
        Operator(name="w_bwd", kind="gemm", phase="bwd_data", m=4, k=4, n=4, flop=128.0,
                 count=2, fwd="w"),
    )
    return Graph(name="toy", ops=ops, edges=(("w", "w_bwd"),), meta=meta)


def test_device_memory_from_generic_graph_uses_stash_bytes():
    g = _toy_graph({"family": "cnn"})
    plan = ParallelPlan(global_batch=1)
    d = device_memory_bytes(g, plan)
    assert d["weights"] == pytest.approx(2 * 2000)
    assert d["activations"] == pytest.approx(1000.0)
    full = device_memory_bytes(g, ParallelPlan(global_batch=1, recompute="full"))
    assert full["activations"] == pytest.approx(64.0)
    assert full["recompute_working"] == pytest.approx(1000.0)


def test_device_memory_from_stage_graphs_picks_the_fullest_device():
    meta = {"hidden": 1024, "heads": 16, "seq_len": 512, "vocab": 1000}
    stages = [_toy_graph({**meta, "stage_layers": (0, 2), "first_stage": True,
                          "last_stage": False}),
              _toy_graph({**meta, "stage_layers": (2, 4), "first_stage": False,
                          "last_stage": True})]
    plan = ParallelPlan(pp=2, global_batch=8)
    d = device_memory_bytes(stages, plan)
    assert d["stage"] == 0.0  # stage 0 stashes 2 micro-batches, stage 1 one
    with pytest.raises(ConfigError, match="pp=3"):
        device_memory_bytes(stages, ParallelPlan(pp=3, global_batch=3))


def test_fits_memory():
    assert fits_memory({"total": 79e9}, 80e9)
    assert not fits_memory(81e9, 80e9)
    assert list(fits_memory(50e9, np.array([40e9, 60e9]))) == [False, True]
