"""Activation memory on fp8 designs and of MoE layers by where their routing weights are
applied (search/stagememory.py, workloads/transformer.py): a GEMM running in fp8 keeps the
fp8 copy of its input for its weight gradient (Transformer Engine, DeepSeek-V3 §3.3.4),
high-precision operators keep theirs at 16 bits, and a combine that no longer weights
the expert outputs keeps nothing for the backward (Megatron-Core MR !2668)."""

from __future__ import annotations

import dataclasses

import pytest

import workloads
from cost_models.designs import DesignBatch
from cost_models.presets import load_preset
from cost_models.recompute import kept_stash_bytes
from cost_models.technology import load_technology
from dse.errors import ConfigError
from dse.types import ParallelPlan
from search.stagememory import gemm_bytes_of, low_precision_saves, module_stash_bytes
from search.trainstep import WorkloadModel, evaluate_training

SEQ = 1024


def _block(spec, tp=1, **kw):
    plan = ParallelPlan(tp=tp, pp=1, dp=1, global_batch=1, micro_batch=1,
                        sequence_parallel=tp > 1, **kw)
    m = WorkloadModel(spec, devices=plan.devices, seq=SEQ, global_batch=1, plans=[plan])
    g = m.segments(plan).block
    saves = [x for blk, xs in g.meta["saves"].items() if blk == "layer" for x in xs]
    return g, saves


def test_a_dense_layer_keeps_its_gemm_inputs_in_fp8_by_hand():
    # Llama-3-70B's layer, tp 1, in units of s·h bytes at bf16: input 2, norm1 2, Q 2,
    # K and V 0.25 each (GQA 8 of 64), O 2, log-sum-exp 1/32, residual 2, norm2 2,
    # fc1 out 14 (2·28672/8192 · 2), SwiGLU out 7. On fp8 the QKV input (norm1), the fc1
    # input (norm2) and the fc2 input (SwiGLU out) are kept at one byte; O stays bf16 for
    # the attention's backward and the output projection keeps its own fp8 copy.
    spec = dataclasses.replace(workloads.model_spec("llama3-70b"), layers=2)
    g, _ = _block(spec)
    sh = SEQ * spec.hidden
    bf16 = 2 + 2 + 2 + 0.25 + 0.25 + 2 + 1 / 32 + 2 + 2 + 14 + 7
    fp8 = bf16 - 1 - 1 - 3.5 + 1
    assert module_stash_bytes(g, ())[0] == pytest.approx(bf16 * sh)
    assert module_stash_bytes(g, (), 1)[0] == pytest.approx(fp8 * sh)


def _tiny_moe(**kw):
    spec = workloads.model_spec("deepseek-v3")
    return dataclasses.replace(spec, name="tiny-dsv3", layers=4, hidden=256, heads=4,
                               ffn=512, moe_ffn=64, experts=8, experts_per_token=2,
                               kv_heads=4, first_k_dense=1, q_lora_rank=96, kv_lora_rank=64,
                               qk_rope_head_dim=16, rotary_dim=16, head_dim=48, v_head_dim=32,
                               vocab=1024, mtp_layers=0, **kw)


def test_high_precision_gemms_keep_their_inputs_and_shared_tensors_get_a_copy():
    g, saves = _block(_tiny_moe())
    low = low_precision_saves(g, saves, 1)
    by = {(t, s): b for t, s, b in low}
    orig = {(t, s): b for t, s, b in saves}
    # the router (a high-precision GEMM) keeps its 16-bit input; the shared expert's fc1,
    # reading the same tensor in fp8, keeps its own copy at half the bytes
    assert by["layer.norm2", "layer.moe.router"] == orig["layer.norm2", "layer.moe.router"]
    assert by["layer.moe.shared.fc1:fp8_input", "layer.moe.shared.fc1"] == pytest.approx(
        orig["layer.norm2", "layer.moe.shared.fc1"] / 2)
    # the routed experts' input is saved by their fc1 alone: kept in fp8
    assert by["layer.moe.dispatch" if ("layer.moe.dispatch", "layer.moe.experts.fc1") in by
              else "layer.moe.permute", "layer.moe.experts.fc1"] == pytest.approx(
        orig[next(k for k in orig if k[1] == "layer.moe.experts.fc1")] / 2)
    # attention's inputs stay 16-bit (attention runs in bf16)
    for (t, s), b in orig.items():
        if s == "layer.attn.core":
            assert by[t, s] == b
    # a copy made inside a recomputed module goes with it: recomputing the MoE drops the
    # shared expert's fp8 copy of norm2 (the module keeps its 16-bit input)
    kept_bf16 = kept_stash_bytes(saves, ("moe",))[0]
    kept_fp8 = kept_stash_bytes(low, ("moe",))[0]
    assert kept_fp8 <= kept_bf16 + orig["layer.attn.core", "layer.attn.out"] / 2


def test_moe_weighting_in_the_activation_keeps_the_weights_not_the_expert_outputs():
    gc, sc = _block(_tiny_moe(moe_weighting="combine"))
    ga, sa = _block(_tiny_moe(moe_weighting="activation"))
    fc1 = next(op for op in ga.ops if op.name == "layer.moe.experts.fc1" and op.phase == "fwd")
    rows = fc1.m * fc1.batch  # expert rows this rank runs
    h = 256
    diff = kept_stash_bytes(sc, ())[0] - kept_stash_bytes(sa, ())[0]
    assert diff == pytest.approx(rows * h * 2 - rows * 4)
    # the same GEMMs either way (the weights' gradient moves from the sum to the activation)
    assert (sum(op.flop for op in ga.ops if op.kind == "gemm")
            == sum(op.flop for op in gc.ops if op.kind == "gemm"))
    with pytest.raises(Exception, match="moe_weighting"):
        _tiny_moe(moe_weighting="router")


def test_an_fp8_design_needs_less_activation_memory_for_the_same_plan():
    spec = workloads.model_spec("llama3-8b")
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch=16, micro_batch=1,
                        sequence_parallel=True, zero_stage=1)
    out = {}
    for name in ("h100", "h100-fp8"):
        pr = load_preset(name)
        out[name] = evaluate_training(spec, pr.hardware, pr.system, plan,
                                      load_technology(pr.hardware.tech_node_nm), seq=4096)
    b, f = (out[k].memory_breakdown_bytes for k in ("h100", "h100-fp8"))
    for k in ("weights", "grads", "optimizer"):  # bf16 weights, fp32 master and moments
        assert f[k] == b[k]
    assert 0.7 * b["activations"] < f["activations"] < 0.95 * b["activations"]


def test_designs_of_different_gemm_widths_are_evaluated_apart():
    bf, f8 = (load_preset(n).hardware for n in ("h100", "h100-fp8"))
    assert gemm_bytes_of(DesignBatch.from_configs([bf, bf])) == 2
    assert gemm_bytes_of(DesignBatch.from_configs([f8])) == 1
    with pytest.raises(ConfigError, match="apart"):
        gemm_bytes_of(DesignBatch.from_configs([bf, f8]))
    spec = workloads.model_spec("gpt2")
    plan = ParallelPlan(tp=1, pp=1, dp=1, global_batch=1, micro_batch=1)
    model = WorkloadModel(spec, devices=1, global_batch=1, plans=[plan])  # 16-bit memory
    pr = load_preset("h100-fp8")
    with pytest.raises(ConfigError, match="apart"):
        model.best_plan_batch(DesignBatch.from_configs([f8]), pr.system,
                              load_technology(f8.tech_node_nm), [plan])


@pytest.mark.parametrize("name,plan_kw", [
    ("gpt2", dict(tp=1, pp=2, dp=4, micro_batch=2, schedule="interleaved", interleave=4)),
    ("mixtral-8x7b", dict(tp=2, pp=4, dp=8, ep=8, sequence_parallel=True)),
])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_fp8_never_keeps_more_than_bf16_for_the_same_plan(name, plan_kw, recompute):
    """Unfused attention (selective recomputation re-runs its core): the fp8 design's
    activations are at most the bf16 design's, with the same recomputation conventions."""
    spec = dataclasses.replace(workloads.model_spec(name), attention="unfused")
    n = plan_kw["tp"] * plan_kw["pp"] * plan_kw["dp"]
    plan = ParallelPlan(global_batch=8 * plan_kw["dp"] * plan_kw.get("micro_batch", 1),
                        recompute=recompute, zero_stage=1, **plan_kw)
    mem = {}
    for gb in (2, 1):
        m = WorkloadModel(spec, devices=n, seq=1024, global_batch=plan.global_batch,
                          plans=[plan], gemm_bytes=gb)
        mem[gb] = m.info(plan).memory
    assert mem[1]["total"] <= mem[2]["total"]
    assert mem[1]["activations"] < mem[2]["activations"] or recompute == "full"
    assert mem[1]["recompute_working"] <= mem[2]["recompute_working"] + 1.0


def test_selective_recomputation_drops_the_attention_core_of_moe_layers():
    """A MoE model with unfused attention: selective recomputation (Megatron's core_attn)
    no longer keeps the s×s scores that the time model re-computes."""
    spec = dataclasses.replace(workloads.model_spec("mixtral-8x7b"), attention="unfused")
    out = {}
    for rc in ("none", "selective"):
        plan = ParallelPlan(tp=2, pp=4, dp=8, ep=8, sequence_parallel=True, global_batch=64,
                            recompute=rc, zero_stage=1)
        m = WorkloadModel(spec, devices=64, seq=1024, global_batch=64, plans=[plan])
        out[rc] = m.info(plan).memory["activations"]
    # the softmax output and the dropout mask of 32/2 heads · 1024² per layer (bf16, 1 B)
    assert out["none"] - out["selective"] >= 8 * 16 * 1024 * 1024 * (2 + 1) * 0.99


def test_an_fp8_gemm_keeps_only_its_copy_of_a_shared_input():
    """With the attention core recomputed, its output O is dropped; the output
    projection (an fp8 GEMM) keeps only its fp8 copy, not the 16-bit O too."""
    spec = workloads.model_spec("llama3-8b")
    g, saves = _block(spec)
    low = low_precision_saves(g, saves, 1)
    assert not [x for x in low if x[0] == "layer.attn.core" and x[1] == "layer.attn.out"]
    kept_bf16 = kept_stash_bytes(saves, ("core_attn",))[0]
    kept_fp8 = kept_stash_bytes(low, ("core_attn",))[0]
    sh = SEQ * spec.hidden
    # bf16 keeps O for the output projection (2·s·h); fp8 keeps its 1-byte copy (s·h) and
    # the QKV and MLP inputs at one byte: norm1 1, norm2 1, SwiGLU out 3.5 (in s·h)
    assert kept_bf16 - kept_fp8 == pytest.approx((1 + 1 + 1 + 3.5) * sh)


def test_memory_floor_is_below_the_memory_of_zero2_plans_too():
    from search.stagememory import memory_floor_bytes

    spec = workloads.model_spec("llama3-8b")
    for zero in (0, 1, 2):
        plan = ParallelPlan(tp=1, dp=32, global_batch=32, zero_stage=zero)
        m = WorkloadModel(spec, devices=32, seq=1024, global_batch=32, plans=[plan])
        assert memory_floor_bytes(spec, plan) <= m.memory_bytes(plan)


def test_memory_floor_counts_the_optimizer_state_as_zero_shards_it():
    """The floor is the model states of the average stage's shard: bf16 weights and
    gradients and Adam's fp32 master and two moments (16 B a parameter with ZeRO 0; the
    12 B of optimizer state over dp·cp with ZeRO 1; all of it over dp·cp with ZeRO 3)."""
    from search.stagememory import memory_floor_bytes

    spec = workloads.model_spec("llama3-8b")
    p = float(spec.params)
    for zero, per_param in ((0, 16.0), (1, 4.0 + 12.0 / 8), (2, 2.0 + 14.0 / 8),
                            (3, 16.0 / 8)):
        plan = ParallelPlan(tp=2, pp=2, dp=8, global_batch=64, zero_stage=zero)
        assert memory_floor_bytes(spec, plan) == pytest.approx(p / 4 * per_param)
        m = WorkloadModel(spec, devices=32, seq=1024, global_batch=64, plans=[plan])
        assert memory_floor_bytes(spec, plan) <= m.memory_bytes(plan)


def test_leanest_memory_walk_finds_the_exhaustive_minimum_with_fewer_layouts():
    from search.stagememory import leanest_memory_bytes

    spec = workloads.model_spec("gpt2-xl")
    m = WorkloadModel(spec, devices=8)
    lean = leanest_memory_bytes(m, m.plans)
    built = len(m._info)
    assert built < len(m.plans) / 2
    assert lean == min(m.memory_bytes(p) for p in m.plans)
