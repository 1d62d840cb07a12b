"""Megatron-Core's per-module recomputation (cost_models/recompute.py): which operators a
module re-runs, what a layer keeps of its saved tensors, and the plan's step and memory
between no recomputation and full recomputation."""

from __future__ import annotations

import dataclasses

import pytest

import workloads
from cost_models.recompute import kept_stash_bytes, module_of, module_op_indices
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from cost_models.training import segment_costs, selective_indices, split_phases
from dse.errors import ConfigError
from dse.types import ParallelPlan
from search.stagememory import layer_stash_bytes, module_stash_bytes

H100 = load_preset("h100")
TECH = load_technology(H100.hardware.tech_node_nm)


def _small_deepseek():
    """DeepSeek-V3's layer structure (MLA, 1 shared + routed experts, dense prefix) at a
    size a unit test can cost."""
    spec = workloads.model_spec("deepseek-v3")
    return dataclasses.replace(spec, name="tiny-dsv3", layers=4, hidden=256, heads=4,
                               ffn=512, moe_ffn=64, experts=8, experts_per_token=2, kv_heads=4,
                               first_k_dense=1, q_lora_rank=96, kv_lora_rank=64,
                               qk_rope_head_dim=16, rotary_dim=16, head_dim=48, v_head_dim=32,
                               vocab=1024, mtp_layers=0)


def _layer(spec, block="layer", **kw):
    g = workloads.build(spec, batch=1, seq=128, **kw)
    return g, [x for blk, xs in g.meta["saves"].items() if blk == block for x in xs]


def test_modules_name_megatron_cores_parts_of_a_layer():
    assert module_of("layer.attn.core") == {"core_attn"}
    assert module_of("layer.attn.dropout:mask") == {"core_attn"}
    assert module_of("layer.attn.resid_dropout") == set()
    assert module_of("layer.norm2") == {"layernorm"}
    assert module_of("layer.attn.kv_up") == {"mla_up_proj"}
    assert module_of("layer.attn.q_down") == set()        # the down-projection stays
    assert module_of("dense.mlp.fc1") == {"mlp"}
    assert module_of("layer.mlp.residual") == set()
    assert module_of("layer.moe.dispatch") == {"moe"}
    assert module_of("layer.moe.experts.swiglu") == {"moe", "moe_act"}
    assert module_of("layer.moe.shared.fc2") == {"moe", "shared_experts"}


def test_nothing_recomputed_keeps_every_saved_tensor():
    spec = _small_deepseek()
    g, saves = _layer(spec)
    kept, work = kept_stash_bytes(saves, ())
    per_layer = sum(op.stash_bytes for op in g.ops if op.phase == "fwd" and op.block == "layer")
    assert (kept, work) == (pytest.approx(per_layer), 0.0)


def test_moe_checkpoint_keeps_its_input_and_drops_what_it_makes():
    spec = _small_deepseek()
    g, saves = _layer(spec)
    kept, work = kept_stash_bytes(saves, ("moe",))
    inside = {t: b for t, by, b in saves if t.startswith("layer.moe.")}
    assert sum(inside.values()) > 0
    full, _ = kept_stash_bytes(saves, ())
    assert kept == pytest.approx(full - sum(inside.values()))
    assert work == pytest.approx(sum(inside.values()))
    # the MoE input (the pre-MLP norm's output) is saved by the router: still kept
    assert any(t == "layer.norm2" and by == "layer.moe.router" for t, by, _ in saves)


def test_output_discarding_modules_release_their_outputs_not_their_inputs():
    spec = _small_deepseek()
    g, saves = _layer(spec)
    size = {t: b for t, _, b in saves}
    full, _ = kept_stash_bytes(saves, ())
    # layernorm: both norms' outputs go (saved by the GEMMs after them); the norms keep
    # their inputs
    kept, _ = kept_stash_bytes(saves, ("layernorm",))
    assert kept == pytest.approx(full - size["layer.norm1"] - size["layer.norm2"])
    # moe_act: the experts' activation output (fc2's input) goes, its input (fc1's output) stays
    kept, work = kept_stash_bytes(saves, ("moe_act",))
    assert kept == pytest.approx(full - size["layer.moe.experts.swiglu"])
    assert work == pytest.approx(size["layer.moe.experts.swiglu"])
    # mla_up_proj: the normed latents and the per-head Q, K, V the attention core saved
    kept, _ = kept_stash_bytes(saves, ("mla_up_proj",))
    gone = ("layer.attn.q_norm", "layer.attn.kv_norm", "layer.attn.q_heads",
            "layer.attn.k_heads", "layer.attn.v_heads")
    assert kept == pytest.approx(full - sum(size[t] for t in gone))


def test_selective_modules_rerun_the_sum_of_their_forward_operators():
    spec = _small_deepseek()
    g = workloads.build(spec, batch=1, seq=128, layers=(1, 3), first_stage=False,
                        last_stage=False)
    ph = split_phases(g)
    from cost_models.designs import DesignBatch

    designs = DesignBatch.from_configs([H100.hardware])
    mods = ("mla_up_proj", "moe")
    (c,) = segment_costs([g], designs, TECH, recompute_modules=mods)
    (korth,) = segment_costs([g], designs, TECH)
    idx = selective_indices(ph, mods)
    assert idx == module_op_indices(ph.fwd.ops, mods) and idx
    names = {ph.fwd.ops[i].name for i in idx}
    assert "layer.moe.experts.fc1" in names and "layer.attn.q_up" in names
    assert "layer.attn.core" not in names and "layer.norm1" not in names
    # re-running the modules costs less than the whole forward and more than nothing;
    # the modules' GEMMs are counted as recomputed FLOPs
    assert 0 < float(c.attn_core_s[0]) < float(c.fwd_s[0])
    gemm = sum(ph.fwd.ops[i].total_flop for i in idx if ph.fwd.ops[i].kind == "gemm")
    assert c.gemm_flop_attn_core == pytest.approx(gemm)
    # without modules selective is the attention core (fused here: nothing to re-run)
    assert float(korth.attn_core_s[0]) == 0.0


def test_a_plan_with_modules_sits_between_none_and_full():
    from search.trainstep import evaluate_training

    spec = _small_deepseek()
    hw, system = H100.hardware, H100.system
    base = dict(tp=1, pp=2, dp=4, ep=4, global_batch=16, micro_batch=1, zero_stage=1)
    ev = {rc: evaluate_training(spec, hw, system, ParallelPlan(**base, **kw), TECH, seq=256)
          for rc, kw in (("none", {}), ("full", {"recompute": "full"}),
                         ("mods", {"recompute": "selective",
                                   "recompute_modules": ("moe", "mla_up_proj")}))}
    t = {k: e.step_time_s for k, e in ev.items()}
    act = {k: e.memory_breakdown_bytes["activations"] for k, e in ev.items()}
    assert t["none"] < t["mods"] < t["full"]
    assert act["full"] < act["mods"] < act["none"]
    assert "recompute:mla_up_proj+moe" in ev["mods"].critical_path


def test_stage_memory_uses_the_segment_blocks_saves_only():
    spec = _small_deepseek()
    g = workloads.build(spec, batch=1, seq=128)     # dense prefix and MoE layers
    blocks = {op.block for op in g.ops if op.block}
    assert blocks == {"dense_layer", "layer"}
    kept, _ = module_stash_bytes(g, ())
    assert kept == pytest.approx(sum(kept_stash_bytes(xs, ())[0]
                                     for xs in g.meta["saves"].values()))
    assert layer_stash_bytes(None) == 0.0 and module_stash_bytes(None, ("moe",)) == (0.0, 0.0)


def test_recompute_modules_are_validated():
    with pytest.raises(ConfigError, match="need recompute='selective'"):
        ParallelPlan(recompute="full", recompute_modules=("moe",))
    with pytest.raises(ConfigError, match="choose one of core_attn"):
        ParallelPlan(recompute="selective", recompute_modules=("experts",))
    p = ParallelPlan(recompute="selective", recompute_modules=["moe", "mlp", "moe"])
    assert p.recompute_modules == ("mlp", "moe")
