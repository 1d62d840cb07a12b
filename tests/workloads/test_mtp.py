"""Multi-token prediction (DeepSeek-V3 §2.2): the module trains beside the model on the
last pipeline stage, counted apart from the model's parameters, in the stage balance and
in the last stage's memory."""

from __future__ import annotations

import dataclasses

import pytest

import workloads
from dse.errors import WorkloadError
from dse.types import ParallelPlan
from workloads.parallel import layer_costs, stage_layout


def _tiny(mtp: int):
    spec = workloads.model_spec("deepseek-v3")
    return dataclasses.replace(spec, name=f"tiny-mtp{mtp}", layers=6, hidden=256, heads=4,
                               kv_heads=4, ffn=512, moe_ffn=64, experts=8,
                               experts_per_token=2, expert_groups=0,
                               expert_groups_per_token=0, first_k_dense=1, q_lora_rank=96,
                               kv_lora_rank=64, qk_rope_head_dim=16, rotary_dim=16,
                               head_dim=48, v_head_dim=32, vocab=512, mtp_layers=mtp)


def test_the_module_is_on_the_last_stage_and_counted_apart():
    one, none = _tiny(1), _tiny(0)
    assert one.params == none.params and one.active_params == none.active_params
    g = workloads.build(one, batch=1, seq=128)
    fwd = [op for op in g.ops if op.phase == "fwd"]
    mtp = [op for op in fwd if op.block == "mtp"]
    assert {op.name for op in mtp} >= {"mtp0.embed", "mtp0.enorm", "mtp0.hnorm",
                                       "mtp0.eh_proj", "mtp0.moe.experts.fc1",
                                       "mtp0.logits", "mtp0.loss"}
    assert sum(op.params * op.count for op in mtp) == one.mtp_params
    assert sum(op.params * op.count for op in fwd) == one.params + one.mtp_params
    # the embedding and the output head are the model's (tied: no parameters of its own)
    assert g.op("mtp0.embed").params == 0 and g.op("mtp0.logits").params == 0
    # a stage without the head has no module
    mid = workloads.build(one, batch=1, seq=128, layers=(0, 3), last_stage=False)
    assert not [op for op in mid.ops if op.block == "mtp"]


def test_the_module_weighs_on_the_last_stage():
    layer, _, head0 = layer_costs(_tiny(0), seq=128, micro_batch=1)
    _, _, head1 = layer_costs(_tiny(1), seq=128, micro_batch=1)
    # one more MoE layer, a second head and loss, the projection: more than a layer
    assert head1 - head0 > layer
    plan = ParallelPlan(pp=2, global_batch=2)
    with_mtp = [s.n_layers for s in stage_layout(_tiny(1), plan, seq=128)]
    without = [s.n_layers for s in stage_layout(_tiny(0), plan, seq=128)]
    assert sum(with_mtp) == sum(without) == 6 and with_mtp[-1] < without[-1]


def test_the_last_stage_keeps_the_modules_activations():
    from cost_models.memory import stage_memory_bytes
    from search.stagememory import transformer_stage_memories
    from workloads.parallel import shard_segments

    plan = ParallelPlan(pp=2, global_batch=2)
    spec = _tiny(1)
    seg = shard_segments(spec, micro_batch=1, seq=128)
    first, last = transformer_stage_memories(spec, plan, stage_layout(spec, plan, seq=128),
                                             seg, 128)
    saved = sum(op.stash_bytes * op.count for op in seg.post.ops
                if op.phase == "fwd" and op.block == "mtp")
    assert last.dims["head_extra_bytes"] == pytest.approx(saved) and saved > 0
    assert "head_extra_bytes" not in first.dims
    kw = dict(params=last.params, layers=last.layers, first=False, last=True, plan=plan,
              in_flight=1.0, seq=128)
    with_mtp = stage_memory_bytes(**kw, **last.dims)
    dims = {k: v for k, v in last.dims.items() if k != "head_extra_bytes"}
    assert with_mtp["head_activations"] - stage_memory_bytes(**kw, **dims)[
        "head_activations"] == pytest.approx(saved)


def test_mtp_needs_a_decoder():
    spec = workloads.model_spec("bert-base")
    with pytest.raises(WorkloadError, match="multi-token prediction needs a causal"):
        dataclasses.replace(spec, mtp_layers=1)


def test_a_later_last_stage_holds_a_copy_of_the_embedding():
    from search.trainstep import WorkloadModel

    spec = _tiny(1)
    last = workloads.build(spec, batch=1, seq=128, layers=(3, 6), first_stage=False)
    assert last.op("mtp0.embed").params == spec.vocab * spec.hidden
    plan = ParallelPlan(pp=2, global_batch=2)
    model = WorkloadModel(spec, devices=2, seq=128, global_batch=2, plans=[plan])
    assert model._tied_bytes(plan) == spec.vocab * spec.hidden * 2  # its gradient, bf16
    assert WorkloadModel(_tiny(0), devices=2, seq=128, global_batch=2,
                         plans=[plan])._tied_bytes(plan) == 0.0


def test_fast_path_equals_evaluate_with_mtp_experts():
    """The MTP module's experts are reduced over the expert ranks in step_times too."""
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology
    from search.trainstep import WorkloadModel

    p = load_preset("h100")
    plan = ParallelPlan(tp=1, pp=1, dp=16, ep=8, global_batch=64, zero_stage=1)
    model = WorkloadModel(_tiny(1), devices=16, seq=128, global_batch=64, plans=[plan])
    d = DesignBatch.from_configs([p.hardware])
    tech = load_technology(p.hardware.tech_node_nm)
    fast = model.step_times(d, p.system, tech, [plan])[0, 0]
    full = model.evaluate(d, p.system, tech, [plan])[0]["step_time_s"][0]
    assert fast == pytest.approx(full, rel=1e-9)


def test_expert_groups_must_hold_the_routed_experts():
    spec = _tiny(0)
    with pytest.raises(WorkloadError, match="experts_per_token=2 exceed the 1 experts"):
        dataclasses.replace(spec, expert_groups=8, expert_groups_per_token=1)
