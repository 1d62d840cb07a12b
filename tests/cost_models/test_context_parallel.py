"""Context parallelism (ring attention, ``ParallelPlan.cp``): the graph of one rank, the
ring's traffic against the textbook all-gather / reduce-scatter, placement of the cp and
gradient groups, memory and the refusals."""

from __future__ import annotations

import dataclasses

import pytest

from cost_models.network import collective_time_s, comm_time_s, group_placement
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.errors import ConfigError, WorkloadError
from dse.types import ParallelPlan, SystemConfig
from search.trainstep import evaluate_training
from workloads import build, model_spec
from workloads.parallel import validate_plan

H100 = load_preset("h100")
TECH = load_technology(H100.hardware.tech_node_nm)


def test_one_rank_holds_a_cp_th_of_the_tokens_and_of_the_causal_scores():
    spec = model_spec("llama3-8b")  # causal, GQA 32/8, head 128
    s, cp, tp = 16384, 4, 2
    full = build(spec, batch=1, seq=s, tp=tp, sequence_parallel=True)
    ring = build(spec, batch=1, seq=s, tp=tp, sequence_parallel=True, cp=cp)
    fa, ra = full.op("layer.attn.core"), ring.op("layer.attn.core")
    assert (ra.m, ra.n) == (s // cp, s) and ra.batch == fa.batch == 32 // tp
    # load-balanced causal chunks: every rank computes 1/cp of the s(s+1)/2 scores
    assert ra.elements * cp == pytest.approx(fa.elements, rel=1e-9)
    assert ring.op("layer.attn.qkv").m == s // cp
    assert ring.meta["stash_bytes_per_layer"] * cp == pytest.approx(
        full.meta["stash_bytes_per_layer"], rel=1e-12)
    # the ring: the K and V of the whole sequence (this shard's kv heads), both ways
    kv_heads = 8 // tp
    op = ring.op("layer.attn.cp_ring")
    assert (op.kind, op.collective, op.group) == ("collective", "all_gather", "cp")
    assert op.comm_bytes == s * 2 * kv_heads * 128 * 2
    back = ring.op("layer.attn.cp_ring.bwd")
    assert back.collective == "reduce_scatter" and back.comm_bytes == op.comm_bytes
    # the ring and the attention do not wait for each other (they overlap); the output
    # projection waits for both
    dg = ring.nx()
    assert not dg.has_edge("layer.attn.cp_ring", "layer.attn.core")
    assert "layer.attn.cp_ring" in set(dg.predecessors("layer.attn.out"))
    assert "layer.attn.core" in set(dg.predecessors("layer.attn.out"))


def test_ring_time_is_the_textbook_all_gather_and_groups_are_placed_tp_cp_dp_pp():
    plan = ParallelPlan(tp=2, cp=4, pp=2, dp=2, global_batch=8)
    assert plan.devices == 32 and plan.grad_group == 8
    sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=400e9,
                        intra_node_latency_s=0.0, inter_node_bw_bytes_per_s=50e9,
                        inter_node_latency_s=0.0)
    cp = group_placement("cp", plan, sysc)
    assert (cp.size, cp.per_node, cp.nodes) == (4, 4, 1)       # ranks 0, 2, 4, 6
    dpg = group_placement("dp", plan, sysc)
    assert (dpg.size, dpg.per_node, dpg.nodes) == (8, 4, 2)    # dp·cp ranks, stride tp
    g = build(model_spec("llama3-8b"), batch=1, seq=8192, tp=2, sequence_parallel=True, cp=4)
    t = comm_time_s(g, sysc, plan)
    j = [op.name for op in g.ops].index("layer.attn.cp_ring")
    nbytes = g.ops[j].comm_bytes
    assert t[j] == pytest.approx((4 - 1) / 4 * nbytes / 400e9, rel=1e-9)
    assert t[j] == pytest.approx(collective_time_s("all_gather", nbytes, 4, 400e9, 0.0,
                                                   "ring"), rel=1e-9)


def test_cp_divides_activation_memory_and_runs_long_sequences():
    spec = model_spec("llama3-8b")
    hw, system = H100.hardware, H100.system
    base = {"tp": 2, "global_batch": 4, "sequence_parallel": True}
    one = evaluate_training(spec, hw, system, ParallelPlan(**base), TECH, seq=32768)
    four = evaluate_training(spec, hw, system, ParallelPlan(**base, cp=4), TECH, seq=32768)
    act1 = one.to_dict()["memory_breakdown_bytes"]["activations"]
    act4 = four.to_dict()["memory_breakdown_bytes"]["activations"]
    assert act4 * 4 == pytest.approx(act1, rel=1e-9)
    # 4 ranks share each sequence: the step is faster, but not 4x (the ring and the
    # replicated weights' gradient reduction cost something)
    assert one.step_time_s / 4 < four.step_time_s < one.step_time_s
    assert four.breakdown["comm_s"]["cp_s"] > 0


def test_cp_is_refused_where_it_cannot_run():
    with pytest.raises(ConfigError, match="context parallelism splits a sequence"):
        validate_plan(model_spec("resnet50"), ParallelPlan(cp=2, global_batch=2), 2)
    unfused = dataclasses.replace(model_spec("gpt2"), attention="unfused")
    with pytest.raises(ConfigError, match="needs fused attention"):
        validate_plan(unfused, ParallelPlan(cp=2, global_batch=2), 2)
    with pytest.raises(WorkloadError, match="needs fused attention"):
        build(unfused, batch=1, seq=128, cp=2)
    with pytest.raises(ConfigError, match=r"tp\*cp\*pp\*dp = 1\*2\*1\*1 = 2 must equal devices=4"):
        validate_plan(model_spec("gpt2"), ParallelPlan(cp=2, global_batch=2), 4)
