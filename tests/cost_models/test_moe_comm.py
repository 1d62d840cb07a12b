"""Mixture-of-experts communication and memory against textbook forms: the all-to-all on
each topology and across nodes, the expert-parallel group's placement, the dispatch of a
Mixtral layer, the expert gradients' reduction group and the experts' ZeRO shards."""

from __future__ import annotations

import pytest

import workloads
from cost_models.memory import model_state_bytes, stage_memory_bytes
from cost_models.network import (collective_time_s, comm_time_s, group_collective_time_s,
                                 group_placement)
from cost_models.training import dp_times
from dse.types import ParallelPlan, SystemConfig

S, B = 64e6, 100e9


def test_all_to_all_on_a_torus_is_bisection_bound():
    # 4x4 torus, links of B/4 per direction (B split over 2 dims x 2 directions): the
    # bisection (2·4 links per direction with the wrap-around) carries n²/4 · S/n = n·S/4
    n, k = 16, 4
    bisection_bw = 2 * k * B / 4
    assert collective_time_s("all_to_all", S, n, B, 0.0, "torus2d") == pytest.approx(
        (n * S / 4) / bisection_bw)
    # fully connected: the injection bound (n−1)/n · S/B
    assert collective_time_s("all_to_all", S, n, B, 0.0, "fully_connected") == pytest.approx(
        (n - 1) / n * S / B)


def _system(**kw):
    base = dict(devices_per_node=8, intra_node_bw_bytes_per_s=450e9, intra_node_latency_s=0.0,
                inter_node_bw_bytes_per_s=50e9, inter_node_latency_s=0.0,
                intra_node_topology="switch", inter_node_topology="switch")
    base.update(kw)
    return SystemConfig(**base)


def test_expert_parallel_group_and_hierarchical_all_to_all():
    sysc = _system()
    # ranks tp-cp-ep-dp: ep consecutive data-parallel ranks, tp apart
    plan = ParallelPlan(tp=2, dp=16, ep=8, global_batch=16)
    pl = group_placement("ep", plan, sysc)
    assert (pl.size, pl.per_node, pl.nodes) == (8, 4, 2)
    # a rank sends (k−1)/n of its buffer inside its node and (n−k)/n over its NIC
    t = group_collective_time_s("all_to_all", S, pl, sysc)
    assert t == pytest.approx(S * 3 / 8 / 450e9 + S * 4 / 8 / 50e9)
    # inside one node: one switch level, (n−1)/n · S/B
    pl1 = group_placement("ep", ParallelPlan(tp=1, dp=8, ep=8, global_batch=8), sysc)
    assert pl1.nodes == 1
    assert group_collective_time_s("all_to_all", S, pl1, sysc) == pytest.approx(
        7 / 8 * S / 450e9)


def test_mixtral_dispatch_time_is_the_textbook_all_to_all():
    sysc = _system()
    spec = workloads.model_spec("mixtral-8x7b")
    plan = ParallelPlan(tp=1, dp=16, ep=16, global_batch=16)
    with pytest.raises(Exception):  # 16 does not divide the 8 experts
        workloads.build(spec, batch=1, seq=256, ep=16)
    plan = ParallelPlan(tp=1, dp=16, ep=8, global_batch=16)
    g = workloads.build(spec, batch=1, seq=256, ep=8)
    t = comm_time_s(g, sysc, plan)
    i = [j for j, op in enumerate(g.ops) if op.name == "layer.moe.dispatch"][0]
    s_bytes = 256 * 2 * 4096 * 2   # tokens · top-2 · hidden · bf16
    assert g.ops[i].comm_bytes == s_bytes
    assert t[i] == pytest.approx(7 / 8 * s_bytes / 450e9)   # the 8 ep ranks share a node


def test_expert_gradients_reduce_over_the_ranks_holding_the_same_experts():
    sysc = _system()
    plan = ParallelPlan(tp=1, dp=32, ep=8, global_batch=32)
    pl = group_placement("edp", plan, sysc)
    assert (pl.size, pl.per_node, pl.nodes) == (4, 1, 4)  # every 8th rank: one per node
    red, _, _ = dp_times(1e9, plan, sysc, group="edp")
    # ring all-reduce over 4 nodes' NICs: 2·(n−1)/n · 2 bytes/param / B_inter
    assert red == pytest.approx(2 * 3 / 4 * 2e9 / 50e9)
    # no peers with the same experts: nothing to reduce
    assert dp_times(1e9, ParallelPlan(tp=1, dp=8, ep=8, global_batch=8), sysc,
                    group="edp")[0] == 0.0


def test_expert_states_are_sharded_over_the_expert_data_parallel_ranks():
    plan = ParallelPlan(tp=1, dp=16, ep=8, global_batch=16, zero_stage=1)
    dense, experts = 1e9, 3e9
    mem = stage_memory_bytes(params=dense + experts, expert_params=experts, layers=1,
                             first=False, last=False, plan=plan, in_flight=1.0, seq=16,
                             hidden=64, heads=4, layer_stash_bytes=0.0)
    want_opt = (model_state_bytes(dense, dp=16, zero_stage=1)["optimizer"]
                + model_state_bytes(experts, dp=2, zero_stage=1)["optimizer"])
    assert mem["optimizer"] == pytest.approx(want_opt) == pytest.approx(
        12 * dense / 16 + 12 * experts / 2)
    assert mem["weights"] == pytest.approx(2 * (dense + experts))
