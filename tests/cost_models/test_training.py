"""Tests of the distributed training step model: cost_models.training (segment costs,
training step) through search.trainstep (segments of a workload under a plan)."""

import dataclasses

import pytest

from cost_models.designs import DesignBatch
from cost_models.evaluate import device_step
from cost_models.network import comm_time_s
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from cost_models.training import critical_path, split_phases
from dse.types import ParallelPlan
from search.trainstep import WorkloadModel, evaluate_training
from workloads import build, model_spec
from workloads.parallel import shard_segments, stage_layout
from workloads.spec import TransformerSpec

CONTRACT = ("step_time_s", "samples_per_s", "achieved_flop_per_s_per_device", "area_mm2",
            "tdp_w", "energy_per_step_j", "memory_per_device_bytes", "fits_memory",
            "critical_path", "breakdown")

A100 = load_preset("a100")
TECH = load_technology(7)


def spec(**kw):
    base = {"name": "t", "model_type": "gpt2", "layers": 8, "hidden": 1024, "heads": 16, "ffn": 4096,
                "vocab": 8000, "max_positions": 1024, "default_seq": 1024, "default_batch": 32,
                "source": "test"}
    base.update(kw)
    return TransformerSpec(**base)


def ev(plan, s=None, hw=None, **kw):
    return evaluate_training(s or spec(), hw or A100.hardware, A100.system, plan, TECH, **kw)


def evaluate_training_batch(s, designs, system, plan, tech):
    return WorkloadModel(s, devices=plan.devices, plans=[plan]).evaluate(designs, system, tech,
                                                                         [plan])[0]


def test_split_phases_partitions_the_graph():
    fused = split_phases(build(spec(), batch=2, seq=1024, tp=2))
    assert fused.attn_core == ()  # nothing for selective recomputation to re-run
    g = build(spec(attention="unfused"), batch=2, seq=1024, tp=2)
    ph = split_phases(g)
    n = sum(len(x.ops) for x in (ph.fwd, ph.bwd, ph.opt))
    assert n == len(g.ops)
    assert all(op.phase in ("fwd", "comm") for op in ph.fwd.ops)
    assert all(op.phase == "optimizer" for op in ph.opt.ops)
    core = {ph.fwd.ops[i].name for i in ph.attn_core}
    assert core == {"layer.attn.qk", "layer.attn.softmax", "layer.attn.dropout", "layer.attn.av"}


def test_single_device_is_micro_batches_times_segments():
    """tp = pp = dp = 1: step = m·(forward + backward) + optimizer of pre + L·block +
    post, each phase of each segment scheduled on its own, and close to the schedule of
    the whole one-micro-batch graph."""
    s = spec()
    plan = ParallelPlan(global_batch=4, micro_batch=2)
    one = DesignBatch.from_configs([A100.hardware])
    r = evaluate_training_batch(s, one, A100.system, plan, TECH)
    seg = shard_segments(s, micro_batch=2, seq=1024)
    tot = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
    for g, mult in ((seg.pre, 1), (seg.block, s.layers), (seg.post, 1)):
        ph = split_phases(g)
        for key in tot:
            sub = getattr(ph, key)
            tot[key] += mult * device_step(sub, one, TECH).makespan_s[0]
    assert r["step_time_s"][0] == pytest.approx(2 * (tot["fwd"] + tot["bwd"]) + tot["opt"])
    # splitting into segments and phases only removes overlap between them: within 10 %
    # of the whole DAG
    g = build(s, batch=2, seq=1024)
    whole = device_step(g, one, TECH).makespan_s[0]
    one_mb = sum(tot.values())
    assert whole <= one_mb * (1 + 1e-9)
    assert one_mb <= 1.10 * whole


def test_contract_keys_and_sanity():
    e = ev(ParallelPlan(tp=2, pp=2, dp=2, global_batch=16, micro_batch=2))
    d = e.to_dict()
    for k in CONTRACT:
        assert k in d
    assert d["step_time_s"] > 0 and d["samples_per_s"] == pytest.approx(16 / d["step_time_s"])
    assert 0 < d["achieved_flop_per_s_per_device"] <= A100.hardware.peak_flop_per_s
    assert d["energy_per_step_j"] > 0 and d["tdp_w"] > 0 and d["area_mm2"] > 0
    assert isinstance(d["fits_memory"], bool)
    assert d["critical_path"][0] == "pipeline:fill" and "pipeline:drain" in d["critical_path"]
    ph = e.breakdown["phase_s"]
    assert sum(ph.values()) == pytest.approx(e.step_time_s, rel=1e-9)
    assert e.extra["energy_per_step_total_j"] == pytest.approx(8 * e.energy_per_step_j)


def test_recompute_trades_time_for_memory():
    base = {"tp": 2, "pp": 2, "global_batch": 8, "micro_batch": 1}
    # fused attention keeps no scores: selective recomputation has nothing to re-run
    f_none, f_sel = (ev(ParallelPlan(**base, recompute=r)) for r in ("none", "selective"))
    assert f_sel.step_time_s == f_none.step_time_s
    assert f_sel.memory_per_device_bytes == f_none.memory_per_device_bytes
    un = spec(attention="unfused")
    none, sel, full = (ev(ParallelPlan(**base, recompute=r), un)
                       for r in ("none", "selective", "full"))
    assert none.step_time_s < sel.step_time_s < full.step_time_s
    assert none.memory_per_device_bytes > sel.memory_per_device_bytes > full.memory_per_device_bytes
    # model FLOP/s count no recomputation; hardware FLOP/s do
    assert full.extra["hardware_flop_per_s_per_device"] > full.achieved_flop_per_s_per_device
    assert none.extra["hardware_flop_per_s_per_device"] == pytest.approx(
        none.achieved_flop_per_s_per_device)
    # full recompute re-runs the forward of the transformer layers only (Megatron
    # checkpoints layers; embedding, head and loss are not re-run): less than the forward
    ph = full.breakdown["phase_s"]
    assert 0.0 < ph["recompute_s"] < ph["forward_s"]
    # ... and its extra hardware FLOPs are exactly the layers' forward GEMM FLOPs
    plan = ParallelPlan(**base, recompute="full")
    seg = shard_segments(un, micro_batch=1, seq=1024, tp=2)
    n = spec().layers

    def flop(g, keep):
        return sum(op.total_flop for op in g.ops if op.kind == "gemm" and keep(op))

    model = (flop(seg.pre, lambda op: True) + n * flop(seg.block, lambda op: True)
             + flop(seg.post, lambda op: True))
    layers_fwd = n * flop(seg.block, lambda op: op.phase == "fwd")
    assert full.extra["hardware_flop_per_s_per_device"] / full.achieved_flop_per_s_per_device \
        == pytest.approx(1 + layers_fwd / model, rel=1e-9)


def test_pipeline_bubble_and_interleaving():
    # near-identical stages (the unfused layers outweigh the embedding and head): the
    # textbook bubble (p − 1)/m
    un = spec(attention="unfused")
    p1 = ev(ParallelPlan(pp=4, global_batch=8), un)
    assert p1.breakdown["bubble_fraction"] == pytest.approx(3 / 8, rel=0.2)
    inter = ev(ParallelPlan(pp=4, global_batch=8, schedule="interleaved", interleave=2), un)
    assert inter.breakdown["phase_s"]["bubble_s"] < p1.breakdown["phase_s"]["bubble_s"]
    assert inter.breakdown["phase_s"]["p2p_s"] > p1.breakdown["phase_s"]["p2p_s"]


def test_tensor_parallelism_adds_communication_and_cuts_compute():
    t1 = ev(ParallelPlan(global_batch=2))
    t4 = ev(ParallelPlan(tp=4, global_batch=2))
    assert t4.breakdown["comm_s"]["tp_s"] > 0 == t1.breakdown["comm_s"]["tp_s"]
    assert t4.step_time_s < t1.step_time_s
    assert t4.memory_per_device_bytes < t1.memory_per_device_bytes


def test_data_parallel_all_reduce_overlap_and_zero():
    plan = ParallelPlan(dp=16, global_batch=16)
    over = ev(plan)
    after = ev(plan, dp_overlap=False)
    assert after.step_time_s > over.step_time_s
    assert after.breakdown["comm_s"]["dp_s"] > 0
    assert after.breakdown["comm_s"]["dp_exposed_s"] > over.breakdown["comm_s"]["dp_exposed_s"]
    z1 = ev(dataclasses.replace(plan, zero_stage=1))
    assert z1.memory_per_device_bytes < over.memory_per_device_bytes
    assert z1.breakdown["tail_s"]["post_optimizer_comm_s"] > 0
    z3 = ev(dataclasses.replace(plan, zero_stage=3))
    assert z3.memory_per_device_bytes < z1.memory_per_device_bytes
    assert z3.breakdown["comm_s"]["dp_s"] > z1.breakdown["comm_s"]["dp_s"]


def test_vectorized_batch_matches_scalar_evaluations():
    hw = A100.hardware
    small = dataclasses.replace(hw, name="half", tensor_cores=216, hbm_bw_bytes_per_s=1.0e12)
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch=16, micro_batch=2, recompute="selective",
                        sequence_parallel=True)
    r = evaluate_training_batch(spec(), DesignBatch.from_configs([hw, small]), A100.system, plan,
                                TECH)
    for i, h in enumerate((hw, small)):
        e = ev(plan, hw=h)
        assert r["step_time_s"][i] == pytest.approx(e.step_time_s)
        assert r["energy_per_step_j"][i] == pytest.approx(e.energy_per_step_j)
    assert r["step_time_s"][1] > r["step_time_s"][0]


def test_critical_path_walks_the_schedule_back():
    seg = shard_segments(spec(), micro_batch=1, seq=1024)
    ph = split_phases(seg.block)
    res = device_step(ph.fwd, DesignBatch.from_configs([A100.hardware]), TECH,
                      comm_time_s=comm_time_s(ph.fwd, A100.system, ParallelPlan()))
    path = critical_path(ph.fwd, res)
    assert path[0] == "layer.norm1" and path[-1] == "layer.mlp.residual"
    names = [op.name for op in ph.fwd.ops]
    assert [names.index(p) for p in path] == sorted(names.index(p) for p in path)
    busy = sum(res.costs.latency_s[0, names.index(p)] * ph.fwd.ops[names.index(p)].count
               for p in path)
    assert busy == pytest.approx(res.makespan_s[0], rel=1e-6)


def test_uneven_stage_is_pre_plus_layers_plus_post():
    """A stage's time is linear in its layer count: pre + L·block + post."""
    s = spec(layers=10)
    plan = ParallelPlan(pp=3, global_batch=6)
    layout = stage_layout(s, plan, 1024)
    assert [st.n_layers for st in layout] == [b - a for a, b in
                                              (st.layers for st in layout)]
    assert sum(st.n_layers for st in layout) == 10


def test_non_transformer_pipeline():
    resnet = model_spec("resnet50")
    e = ev(ParallelPlan(pp=2, dp=2, global_batch=8), s=resnet)
    assert e.step_time_s > 0 and e.breakdown["phase_s"]["bubble_s"] > 0
    assert e.memory_per_device_bytes > 0


def test_zero3_traffic_per_step_is_textbook():
    """ZeRO-3 / FSDP per step and device (Rajbhandari et al. 2020 §7.2.2, 1.5× the
    data-parallel traffic of ZeRO-1/2): gradients reduce-scattered once per micro-batch,
    parameters all-gathered before each forward and each backward, no post-optimizer
    gather; ZeRO-1 reduce-scatters once and gathers once after the optimizer."""
    from cost_models.network import group_collective_time_s, group_placement
    from cost_models.training import GRAD_BYTES, PARAM_BYTES, dp_times

    plan3 = ParallelPlan(dp=8, global_batch=32, micro_batch=1, zero_stage=3)
    plan1 = dataclasses.replace(plan3, zero_stage=1)
    params = 1.0e9
    red3, gather3, post3 = dp_times(params, plan3, A100.system)
    red1, gather1, post1 = dp_times(params, plan1, A100.system)
    pl = group_placement("dp", plan3, A100.system)
    rs = group_collective_time_s("reduce_scatter", params * GRAD_BYTES, pl, A100.system)
    ag = group_collective_time_s("all_gather", params * PARAM_BYTES, pl, A100.system)
    assert (red3, gather3, post3) == pytest.approx((rs, ag, 0.0), rel=1e-12)
    assert (red1, gather1, post1) == pytest.approx((rs, 0.0, ag), rel=1e-12)
    # per step (m micro-batches): ZeRO-3 moves m·(rs + 2·ag), ZeRO-1 rs + ag
    e3 = ev(plan3)
    m = plan3.micro_batches
    n = spec().params
    rs_n, ag_n, _ = dp_times(float(n), plan3, A100.system)
    assert e3.breakdown["comm_s"]["dp_s"] == pytest.approx(m * (rs_n + 2 * ag_n), rel=1e-3)


def test_segment_costs_in_chunks_equal_one_call(monkeypatch):
    """A long list of graphs is costed in chunks (bounded memory): same numbers."""
    import numpy as np

    import cost_models.training as tr
    import workloads
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology

    graphs = [workloads.build(workloads.model_spec("gpt2"), batch=b, seq=128) for b in (1, 2, 4)]
    d = DesignBatch.from_configs([load_preset("h100").hardware, load_preset("a100").hardware])
    tech = load_technology(7)
    whole = tr.segment_costs(graphs, d, tech)
    monkeypatch.setattr(tr, "_CHUNK_ELEMENTS", 1)           # one graph per call
    parts = tr.segment_costs(graphs, d, tech)
    assert len(parts) == len(whole) == 3
    for a, b in zip(whole, parts):
        assert np.array_equal(a.fwd_s, b.fwd_s) and np.array_equal(a.bwd_s, b.bwd_s)
        assert np.array_equal(a.opt_s, b.opt_s) and a.params == b.params


def _overlap_graph(m: int):
    """g0 → (c1 all-reduce ∥ g2 GEMM): the collective can run beside the GEMM."""
    from dse.types import Graph, Operator

    def gemm(name, phase):
        return Operator(name=name, kind="gemm", phase=phase, m=m, k=4096, n=4096, batch=1,
                        flop=2.0 * m * 4096 * 4096, bytes_in=2.0 * m * 4096,
                        bytes_out=2.0 * m * 4096, bytes_weight=2.0 * 4096 * 4096)

    ops = (gemm("g0", "bwd_data"),
           Operator(name="c1", kind="collective", phase="comm", collective="all_reduce",
                    group="tp", comm_bytes=1e8),
           gemm("g2", "bwd_weight"))
    return Graph(name="overlap", ops=ops, edges=(("g0", "c1"), ("g0", "g2")))


@pytest.mark.parametrize("m", [8192, 512])
def test_collective_beside_computation_takes_its_sms(m):
    """NCCL's 24 CTAs hold 24 of the A100's 108 SMs while the all-reduce runs: a GEMM under
    it gets the rest, so a collective of H seconds hidden under a longer GEMM adds
    (24/108)·H, and one the short GEMM fits beside at 84/108 of the chip adds nothing. A
    TPU-like design (links with their own engines) and a blocking schedule add nothing."""
    import numpy as np

    from cost_models.contention import comm_share, contention_s
    from cost_models.network import NCCL_SMS

    g = _overlap_graph(m)
    h = 1e-3  # the collective: 1 ms
    designs = DesignBatch.from_configs([A100.hardware, load_preset("tpuv4").hardware])
    share = comm_share(designs, NCCL_SMS)
    assert share.tolist() == [pytest.approx(24 / 108), 0.0]
    st = device_step(g, designs, TECH, comm_time_s=np.array([0.0, h, 0.0]))
    gemm = float(st.end_s[0, 2] - st.start_s[0, 2])
    add = contention_s(st, g, share)
    assert st.start_s[0, 1] == pytest.approx(st.start_s[0, 2])  # side by side
    want = share[0] * h if gemm >= h else max(0.0, gemm - (1 - share[0]) * h)
    assert add[0] == pytest.approx(want, rel=1e-9)
    assert (add[0] > 0) == (m == 8192) and add[1] == 0.0
    blocking = device_step(g, designs, TECH, comm_time_s=np.array([0.0, h, 0.0]),
                           blocking_comm=True)
    assert contention_s(blocking, g, share).tolist() == [0.0, 0.0]


def test_contention_in_chunks_equals_one_pass(monkeypatch):
    """Designs compared a few at a time (bounded memory) give the same delays."""
    import numpy as np

    import cost_models.contention as cc
    from cost_models.network import NCCL_SMS

    g = _overlap_graph(8192)
    hws = [dataclasses.replace(A100.hardware, vector_cores=v) for v in (54, 108, 216)]
    designs = DesignBatch.from_configs(hws + [load_preset("tpuv4").hardware])
    st = device_step(g, designs, TECH, comm_time_s=np.array([0.0, 1e-3, 0.0]))
    share = cc.comm_share(designs, NCCL_SMS)
    whole = cc.contention_s(st, g, share)
    monkeypatch.setattr(cc, "_CHUNK_ELEMENTS", 1)
    assert cc.contention_s(st, g, share).tolist() == whole.tolist()
    assert whole[3] == 0.0 and (whole[:3] > 0).all()


def test_gradient_reduction_beside_the_last_backward_takes_its_sms():
    """The overlapped data-parallel reduction slows the last backward it runs beside: the
    closed form and the event simulation alike end the stage-0 device at
    max(t_dp, b + f·t_dp) with the backward at 1 − f of the chip while the reduction runs
    — f·t_dp more when the reduction is the shorter, nothing more when the backward fits
    its window at the reduced rate (t_dp = 3 s ≥ b/(1 − f) = 2.67 s)."""
    from cost_models.pipeline import step_time_s, step_time_scalar_s

    plan = ParallelPlan(pp=2, dp=4, global_batch=32, micro_batch=2)
    f, b = [1.0, 1.2], [2.0, 2.4]
    for dp_s in (0.5, 3.0):
        base = step_time_s(f, b, 0.01, plan, dp_comm_s=dp_s).step_time_s
        slowed = step_time_s(f, b, 0.01, plan, dp_comm_s=dp_s, comm_share=0.25).step_time_s
        ref = step_time_scalar_s(f, b, 0.01, plan, dp_comm_s=dp_s, comm_share=0.25)
        ref0 = step_time_scalar_s(f, b, 0.01, plan, dp_comm_s=dp_s)
        assert slowed - base == pytest.approx(ref - ref0, rel=1e-9)
        want = max(dp_s, b[0] + 0.25 * dp_s) - max(dp_s, b[0])
        assert slowed - base == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert want == (0.25 * dp_s if dp_s < b[0] else 0.0)
        blocking = step_time_s(f, b, 0.01, plan, dp_comm_s=dp_s, comm_share=0.25,
                               dp_overlap=False).step_time_s
        assert blocking == pytest.approx(step_time_s(f, b, 0.01, plan, dp_comm_s=dp_s,
                                                     dp_overlap=False).step_time_s)


def test_breakdown_reports_the_sm_contention_it_charges(monkeypatch):
    """The breakdown's ``sm_contention_s`` is what the forward and backward passes lose to
    the SMs of overlapped collectives: the passes without it (no SMs taken) are shorter by
    exactly that. A TPU-like design, whose links have their own engines, reports none."""
    import cost_models.network

    plan = ParallelPlan(tp=4, dp=2, global_batch=16, micro_batch=2)
    with_sms = ev(plan).breakdown
    assert with_sms["comm_s"]["sm_contention_s"] > 0
    monkeypatch.setattr(cost_models.network, "NCCL_SMS", 0)
    without = ev(plan).breakdown
    assert without["comm_s"]["sm_contention_s"] == 0.0

    def passes(b):
        return b["phase_s"]["forward_s"] + b["phase_s"]["backward_s"]

    assert passes(with_sms) - passes(without) == pytest.approx(
        with_sms["comm_s"]["sm_contention_s"], rel=1e-9)
    monkeypatch.undo()
    tpu = ev(plan, hw=load_preset("tpuv4").hardware).breakdown
    assert tpu["comm_s"]["sm_contention_s"] == 0.0
