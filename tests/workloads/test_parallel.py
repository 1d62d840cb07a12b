"""Tests of workloads.parallel: plan rules, cost-balanced stages, stage graphs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.errors import ConfigError
from dse.types import ParallelPlan
from workloads import model_spec
from workloads.parallel import (
    _balanced_split,
    layer_costs,
    stage_graphs,
    stage_layers,
    validate_plan,
)
from workloads.spec import TransformerSpec


def tiny(**kw):
    base = {"name": "tiny", "model_type": "gpt2", "layers": 8, "hidden": 256, "heads": 8, "ffn": 1024,
                "vocab": 4000, "max_positions": 512, "source": "test", "default_seq": 256}
    base.update(kw)
    return TransformerSpec(**base)


@pytest.mark.parametrize("plan,devices,rule", [
    (ParallelPlan(tp=2, pp=2, dp=2, global_batch=8), 16, "must equal devices=16"),
    (ParallelPlan(tp=3, global_batch=8), 3, "attention heads"),
    (ParallelPlan(pp=9, global_batch=9), 9, "exceeds the 8 layers"),
    (ParallelPlan(pp=2, global_batch=8, schedule="interleaved", interleave=5), 2,
     "at least one layer per virtual stage"),
    (ParallelPlan(pp=4, global_batch=6, schedule="interleaved", interleave=2), 4,
     "multiple of pp=4"),
    (ParallelPlan(global_batch=4, schedule="interleaved", interleave=2), 1, "pp >= 2"),
    (ParallelPlan(pp=2, global_batch=4, interleave=2), 2, "needs schedule='interleaved'"),
])
def test_validate_plan_names_the_rule(plan, devices, rule):
    with pytest.raises(ConfigError, match=rule):
        validate_plan(tiny(), plan, devices)


def test_validate_plan_gqa_and_ffn_and_sequence_parallel():
    gqa = tiny(heads=8, kv_heads=2)
    validate_plan(gqa, ParallelPlan(tp=4, global_batch=1), 4)  # kv heads replicated
    validate_plan(gqa, ParallelPlan(tp=2, global_batch=1), 2)
    with pytest.raises(ConfigError, match="MLP width"):
        validate_plan(tiny(ffn=1020), ParallelPlan(tp=8, global_batch=1), 8)
    # seq not a multiple of tp: sequence parallelism pads it (no longer refused)
    validate_plan(tiny(), ParallelPlan(tp=4, global_batch=1, sequence_parallel=True), 4,
                  seq=250)
    validate_plan(tiny(), ParallelPlan(tp=8, pp=2, dp=2, global_batch=8), 32)


def test_non_transformer_rejects_tp():
    with pytest.raises(ConfigError, match="tensor parallelism needs a transformer"):
        validate_plan(model_spec("resnet50") if "resnet50" in _zoo() else _cnn(),
                      ParallelPlan(tp=2, global_batch=2), 2)


def _zoo():
    from workloads import zoo_names
    return zoo_names()


def _cnn():
    from workloads.spec import CNNSpec
    return CNNSpec(name="c", arch="resnet", config={}, source="t")


def test_balanced_split_gives_head_stage_fewer_layers():
    # the last stage carries a head costing 1.5 layers: it gets fewer layers
    assert _balanced_split(10, 3, 1.0, 0.0, 1.5) == [4, 4, 2]
    assert _balanced_split(12, 4, 1.0, 0.0, 0.0) == [3, 3, 3, 3]
    assert _balanced_split(5, 1, 1.0, 9.0, 9.0) == [5]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 60), p=st.integers(1, 12), first=st.floats(0, 3), last=st.floats(0, 5))
def test_balanced_split_is_optimal(n, p, first, last):
    """Brute force over all splits for small cases: the max stage cost is minimal."""
    if p > n:
        return
    counts = _balanced_split(n, p, 1.0, first, last)
    assert sum(counts) == n and min(counts) >= 1 and len(counts) == p

    def cost(c):
        return max(c[i] + (first if i == 0 else 0) + (last if i == p - 1 else 0)
                   for i in range(len(c)))
    # optimum: choose first/last stage sizes, spread the rest evenly over the middle
    best = float("inf")
    if p == 1:
        best = n + first + last
    else:
        for a in range(1, n):
            for z in range(1, n - a + 1):
                rest, mid = n - a - z, p - 2
                if mid == 0 and rest:
                    continue
                if mid and rest < mid:
                    continue
                m = -(-rest // mid) if mid else 0
                best = min(best, max(a + first, z + last, m))
    assert cost(counts) == pytest.approx(best)


def test_stage_layers_from_built_costs_and_interleaving():
    spec = tiny(layers=12)
    lc, emb, head = layer_costs(spec, seq=256)
    assert lc > 0 and head > 0 and emb >= 0
    ranges = stage_layers(spec, 4, seq=256)
    assert ranges[0][0] == 0 and ranges[-1][1] == 12
    assert all(a < b for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(3))
    assert stage_layers(spec, 2, interleave=3) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10),
                                                   (10, 12)]


def test_stage_graphs_cover_the_model_once():
    spec = tiny(layers=8)
    plan = ParallelPlan(tp=2, pp=4, dp=1, global_batch=8, micro_batch=2)
    graphs = stage_graphs(spec, plan, 256)
    assert len(graphs) == 4
    assert graphs[0].meta["first_stage"] and not graphs[0].meta["last_stage"]
    assert graphs[-1].meta["last_stage"] and not graphs[-1].meta["first_stage"]
    layers = [g.meta["stage_layers"] for g in graphs]
    assert layers[0][0] == 0 and layers[-1][1] == 8
    # every parameter of the tp shard lives on exactly one stage, except the tied word
    # embedding that the last stage keeps a copy of (as Megatron-LM does)
    from workloads import build
    whole = build(spec, batch=2, seq=256, tp=2)
    params = sum(op.params * op.count for g in graphs for op in g.ops if op.phase == "fwd")
    copy = spec.vocab // 2 * spec.hidden
    assert params == sum(op.params * op.count for op in whole.ops if op.phase == "fwd") + copy
    assert all(g.meta["batch"] == 2 and g.meta["tp"] == 2 for g in graphs)
    inter = stage_graphs(spec, ParallelPlan(pp=2, global_batch=4, schedule="interleaved",
                                            interleave=2), 256)
    assert [g.meta["device"] for g in inter] == [0, 1, 0, 1]


def test_stage_graphs_of_a_non_transformer_split_ops():
    names = _zoo()
    if "resnet50" not in names:
        pytest.skip("resnet50 not in the zoo yet")
    spec = model_spec("resnet50")
    graphs = stage_graphs(spec, ParallelPlan(pp=3, global_batch=3), None)
    assert len(graphs) == 3
    from workloads import build
    whole = build(spec, batch=1)
    assert sum(len(g.ops) for g in graphs) == len(whole.ops)
    flops = [g.total_flop() for g in graphs]
    assert max(flops) < 0.6 * sum(flops)


def test_sequence_parallel_pads_seq_to_a_multiple_of_tp():
    from workloads.transformer import build_transformer

    padded = build_transformer(tiny(), batch=2, seq=250, tp=4, sequence_parallel=True)
    exact = build_transformer(tiny(), batch=2, seq=252, tp=4, sequence_parallel=True)
    assert padded.meta["seq_len"] == 250 and padded.meta["seq_padded"] == 252
    assert padded.meta["model_flop_scale"] == pytest.approx(250 / 252)
    # every operator is the one of the padded sequence (pad tokens run like real ones)
    assert [(op.name, op.m, op.k, op.n, op.elements) for op in padded.ops] == \
        [(op.name, op.m, op.k, op.n, op.elements) for op in exact.ops]
    plain = build_transformer(tiny(), batch=2, seq=250, tp=4)
    assert plain.meta["seq_padded"] == 250 and plain.meta["model_flop_scale"] == 1.0


def test_interleaved_stages_may_be_uneven():
    # 10 layers on pp=2 × v=3 = 6 virtual stages (Megatron's uniform split refuses it);
    # the head and the embedding make the first and last virtual stages the lighter ones
    s = tiny(layers=10)
    r = stage_layers(s, 2, interleave=3, costs=(1.0, 0.6, 0.9))
    assert len(r) == 6 and r[0][0] == 0 and r[-1][1] == 10
    assert all(a < b for a, b in r) and all(r[i][1] == r[i + 1][0] for i in range(5))
    counts = [b - a for a, b in r]
    assert counts[0] == 1 and counts[-1] == 1 and max(counts) == 2
    # divisible: Megatron's equal split, whatever the costs
    assert stage_layers(s, 5, interleave=2, costs=(1.0, 0.6, 3.0)) == \
        [(i, i + 1) for i in range(10)]
    validate_plan(s, ParallelPlan(pp=2, global_batch=8, schedule="interleaved",
                                  interleave=3), 2)
    # the Llama 3 405B shape: 126 layers on 16 stages
    big = tiny(layers=126)
    r = stage_layers(big, 16, interleave=4, costs=(1.0, 0.1, 0.65))
    counts = [b - a for a, b in r]
    assert len(counts) == 64 and sum(counts) == 126 and counts[0] == counts[-1] == 1
