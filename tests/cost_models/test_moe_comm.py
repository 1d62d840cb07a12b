"""Mixture-of-experts communication and memory against textbook forms: the all-to-all on
each topology and across nodes, the expert-parallel group's placement, the dispatch of a
Mixtral layer, the expert gradients' reduction group and the experts' ZeRO shards."""

from __future__ import annotations

import pytest

import workloads
from cost_models.memory import model_state_bytes, stage_memory_bytes
from cost_models.network import (GroupPlacement, collective_time_s, comm_time_s,
                                 group_collective_time_s, group_placement)
from cost_models.training import dp_times
from dse.errors import ConfigError
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


# ---------------------------------------------------------------- DeepEP dispatch
def _simulated_nodes(experts, k, nodes, groups=0, m=0, trials=4000, seed=0):
    """Monte Carlo of the routing the closed form describes: uniform top-k over the
    experts, or over the experts of m uniformly chosen groups with every chosen group
    getting at least one of the k (group-limited routing)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    per_node = experts // nodes
    hit = []
    for _ in range(trials):
        if groups:
            gs = rng.choice(groups, size=m, replace=False)
            size = experts // groups
            first = gs * size + rng.integers(0, size, size=m)      # one expert per group
            pool = np.setdiff1d(np.concatenate([np.arange(g * size, (g + 1) * size)
                                                for g in gs]), first)
            chosen = np.concatenate([first, rng.choice(pool, size=k - m, replace=False)])
        else:
            chosen = rng.choice(experts, size=k, replace=False)
        hit.append(len(set((chosen // per_node).tolist())))
    return float(np.mean(hit))


@pytest.mark.parametrize("experts,k,nodes,groups,m", [
    (256, 8, 8, 0, 0), (8, 2, 2, 0, 0), (256, 8, 8, 8, 4), (256, 8, 4, 8, 4)])
def test_expected_token_nodes_matches_a_simulation(experts, k, nodes, groups, m):
    from cost_models.network import expected_token_nodes

    exact = expected_token_nodes(experts, k, nodes, groups, m)
    assert exact == pytest.approx(_simulated_nodes(experts, k, nodes, groups, m), rel=0.02)
    if groups:  # at most M nodes: DeepSeek-V3's node-limited routing
        assert exact <= m


def test_deepep_sends_each_token_once_per_remote_node():
    from cost_models.network import deepep_all_to_all_time_s, expected_token_nodes

    sysc = _system(intra_node_bw_bytes_per_s=1e15)       # NVLink leg out of the way
    pl = GroupPlacement(group="ep", size=64, per_node=8, nodes=8)
    k, h = 8, 7168
    s = 4096 * k * h * 2.0                                # one rank's NCCL send buffer
    nodes = expected_token_nodes(256, 8, 8, 8, 4)         # 4 nodes per token
    t = deepep_all_to_all_time_s(s, pl, sysc, k=k, token_nodes=nodes)
    assert t == pytest.approx(4096 * h * 2.0 * nodes * 7 / 8 / 50e9)
    # the NCCL all-to-all sends all k copies, 56/64 of them over the NICs: 2x the bytes
    nccl = group_collective_time_s("all_to_all", s, pl, sysc)
    assert nccl / t == pytest.approx((56 / 64 * k) / (4 * 7 / 8), rel=1e-3)
    # inside one node DeepEP is the all-to-all
    one = GroupPlacement(group="ep", size=8, per_node=8, nodes=1)
    assert deepep_all_to_all_time_s(s, one, sysc, k=k, token_nodes=1.0) == pytest.approx(
        group_collective_time_s("all_to_all", s, one, sysc))


def test_the_plan_dispatcher_reaches_the_moe_all_to_all():
    spec = workloads.model_spec("deepseek-v3")
    g = workloads.build(spec, batch=1, seq=256, layers=(3, 4), ep=64)
    sysc = _system()
    nccl = comm_time_s(g, sysc, ParallelPlan(tp=1, dp=64, ep=64, global_batch=64))
    deep = comm_time_s(g, sysc, ParallelPlan(tp=1, dp=64, ep=64, global_batch=64,
                                             dispatcher="deepep"))
    a2a = [i for i, op in enumerate(g.ops) if op.collective == "all_to_all"]
    assert a2a and all(deep[i] < nccl[i] for i in a2a)
    rest = [i for i in range(len(g.ops)) if i not in a2a]
    assert all(deep[i] == nccl[i] for i in rest)


def test_plans_differing_only_in_dispatcher_are_costed_apart():
    """Plans of one shape share segment graphs; the dispatcher still changes their cost."""
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology
    from search.trainstep import WorkloadModel

    spec = workloads.model_spec("mixtral-8x7b")
    p = load_preset("h100")
    a = ParallelPlan(tp=2, pp=4, dp=8, ep=8, sequence_parallel=True, global_batch=64,
                     zero_stage=1)
    b = ParallelPlan(tp=2, pp=4, dp=8, ep=8, sequence_parallel=True, global_batch=64,
                     zero_stage=1, dispatcher="deepep")
    model = WorkloadModel(spec, devices=64, seq=1024, global_batch=64, plans=[a, b])
    d = DesignBatch.from_configs([p.hardware])
    tech = load_technology(p.hardware.tech_node_nm)
    alone = [model.step_times(d, p.system, tech, [x])[0, 0] for x in (a, b)]
    assert alone[1] < alone[0]
    assert model.step_times(d, p.system, tech, [a, b])[:, 0].tolist() == pytest.approx(alone)
    assert model.step_times(d, p.system, tech, [b, a])[:, 0].tolist() == pytest.approx(
        alone[::-1])
    both = model.evaluate(d, p.system, tech, [a, b])
    assert [r["step_time_s"][0] for r in both] == pytest.approx(alone)


def test_overlapped_communication_takes_sms_on_a_gpu():
    """DeepEP's 20 SMs of an H100's 132 slow the computation it runs beside."""
    import dataclasses

    import numpy as np

    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology
    from cost_models.contention import overlapped as _overlapped
    from cost_models.training import segment_costs

    f = 20 / 132
    c, h = np.array([1.0]), 0.5
    assert _overlapped(c, h, np.array([f]))[0] == pytest.approx(1.0 + f * 0.5)
    assert _overlapped(c, 0.0, np.array([f]))[0] == 1.0
    assert _overlapped(np.array([0.2]), h, np.array([f]))[0] == h   # communication-bound
    assert _overlapped(c, h, np.array([0.0]))[0] == 1.0              # no SMs taken
    # on the GPU preset (single stream) the share applies; on a chip whose links have their
    # own engines it does not
    spec = workloads.model_spec("mixtral-8x7b")
    g = workloads.build(spec, batch=1, seq=512, layers=(0, 1), first_stage=False,
                        last_stage=False, ep=8)
    p = load_preset("h100")
    tech = load_technology(p.hardware.tech_node_nm)
    dma = dataclasses.replace(p.hardware, name="dma", single_stream=0)
    d = DesignBatch.from_configs([p.hardware, dma])
    pl = ParallelPlan(tp=1, dp=16, ep=8, global_batch=16)
    ct = [comm_time_s(g, _system(), pl)]
    base = segment_costs([g], d, tech, ct, overlap_groups=("ep",))[0]
    sm = segment_costs([g], d, tech, ct, overlap_groups=("ep",), overlap_sms=20)[0]
    assert sm.fwd_s[0] > base.fwd_s[0] and sm.fwd_s[1] == base.fwd_s[1]


def test_affine_collective_form_equals_the_direct_computation():
    """The cached affine form of a placed collective (network.placed_collective_time_s,
    used by comm_time_s and dp_times) against group_collective_time_s on every level shape: one node, one rank per node,
    hierarchical; ring and switch with latencies; sizes from a byte to terabytes, and
    zero."""
    import dataclasses

    import numpy as np

    from cost_models.network import group_collective_time_s
    from cost_models.network import placed_collective_time_s

    sizes = np.array([0.0, 1.0, 3e3, 7.5e6, 2.2e9, 4.1e12])
    base = _system(intra_node_latency_s=2e-6, inter_node_latency_s=6e-6)
    systems = [base, dataclasses.replace(base, intra_node_topology="ring",
                                         inter_node_topology="ring")]
    for sysc in systems:
        for plan in (ParallelPlan(tp=1, dp=8, global_batch=8),
                     ParallelPlan(tp=8, dp=4, global_batch=4),
                     ParallelPlan(tp=2, dp=16, global_batch=16)):
            pl = group_placement("dp", plan, sysc)
            for coll in ("all_reduce", "reduce_scatter", "all_gather"):
                want = group_collective_time_s(coll, sizes, pl, sysc)
                got = placed_collective_time_s(coll, sizes, pl, sysc)
                for x, w in zip(sizes, want):  # scalar bytes too
                    assert placed_collective_time_s(coll, float(x), pl, sysc) == \
                        pytest.approx(w, rel=1e-12, abs=0.0)
                assert got == pytest.approx(want, rel=1e-12, abs=0.0)
                assert got[0] == 0.0 and got[1] > 0.0
    with pytest.raises(ConfigError, match="nbytes"):
        placed_collective_time_s("all_gather", -1.0, pl, sysc)
