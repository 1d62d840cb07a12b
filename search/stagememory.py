"""Per-stage memory inputs of a transformer plan (:class:`cost_models.memory.StageMemory`)
from its graph segments: parameters per virtual stage (a MoE model's experts apart, as
their gradients and ZeRO shards live on fewer ranks) and, for layers the Korthikanti
formulas do not cover (mixture of experts, multi-head latent attention), the activation
bytes their operators save. Used by :class:`search.trainstep.WorkloadModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["expert_params", "graph_params_of", "layer_stash_bytes", "memory_floor_bytes",
           "module_stash_bytes", "transformer_stage_memories"]


def graph_params_of(g: Any) -> float:
    """Parameters of a graph (0 for ``None``)."""
    if g is None:
        return 0.0
    from cost_models.memory import graph_params

    return graph_params(g)


def expert_params(g: Any) -> float:
    """Parameters of a layer graph's routed experts (their gradients are reduced over the
    ranks holding the same experts; 0 for ``None``)."""
    if g is None:
        return 0.0
    from cost_models.memory import expert_params as _ep

    return _ep(g)


def layer_stash_bytes(g: Any) -> float:
    """Activation bytes one layer of a layer graph keeps for its backward."""
    if g is None:
        return 0.0
    n = max((op.count for op in g.ops if op.block), default=1)
    return float(sum(op.stash_bytes * op.count for op in g.ops
                     if op.phase == "fwd" and op.block)) / max(n, 1)


def memory_floor_bytes(spec: Any, plan: Any) -> float:
    """A lower bound of ``plan``'s per-device memory without building a graph: the bf16
    weights and gradients of the average stage's shard (ZeRO 0–2 keep both whole on every
    device), routed experts over ``ep·etp`` and the rest over ``tp`` (0 for other
    families and ZeRO-3)."""
    from cost_models.memory import GRAD_BYTES, WEIGHT_BYTES

    if getattr(spec, "family", "") != "transformer" or plan.zero_stage >= 3:
        return 0.0
    routed = float((spec.moe_layers + spec.mtp_layers) * spec.experts
                   * spec.mlp_params(spec.moe_ffn)) if spec.moe else 0.0
    rest = float(spec.params + spec.mtp_params) - routed
    shard = (rest / plan.tp + routed / (plan.ep * plan.expert_tp)) / plan.pp
    return shard * (WEIGHT_BYTES + GRAD_BYTES)


def module_stash_bytes(g: Any, modules: Sequence[str]) -> tuple[float, float]:
    """(bytes one layer of a layer graph keeps, bytes its largest recomputed module
    re-materializes) with Megatron-Core's recompute ``modules``
    (:func:`cost_models.recompute.kept_stash_bytes`; (0, 0) for ``None``)."""
    if g is None:
        return 0.0, 0.0
    from cost_models.recompute import kept_stash_bytes

    blocks = {op.block for op in g.ops if op.block}  # a segment keeps its parent's meta
    saves = [x for blk, xs in (g.meta.get("saves") or {}).items() if blk in blocks
             for x in xs]
    return kept_stash_bytes(saves, modules)


def transformer_stage_memories(spec: Any, plan: Any, stages: Sequence[Any], seg: Any,
                               seq: int) -> list[Any]:
    """:class:`~cost_models.memory.StageMemory` of every virtual stage of ``plan``
    (``stages``: :class:`workloads.parallel.VirtualStage`; ``seg``: the plan's
    :class:`workloads.parallel.Segments`)."""
    from cost_models.memory import StageMemory, transformer_dims
    from workloads.parallel import dense_layers_in

    pre_p, blk_p = graph_params_of(seg.pre), graph_params_of(seg.block)
    post_p, dense_p = graph_params_of(seg.post), graph_params_of(seg.dense)
    dims = transformer_dims(seg.block) if seg.block is not None else None
    moe = bool(getattr(spec, "experts", 0))
    mods = plan.recompute_modules if plan.recompute == "selective" else ()
    by_graph = moe or bool(getattr(spec, "kv_lora_rank", 0)) or bool(mods)
    exp_p = expert_params(seg.block) if moe else 0.0
    blk_w = dense_w = 0.0
    if mods:  # Megatron-Core's recompute modules: what the rest of the layer saves
        (blk_st, blk_w), (dense_st, dense_w) = (module_stash_bytes(seg.block, mods),
                                                module_stash_bytes(seg.dense, mods))
    else:
        blk_st, dense_st = layer_stash_bytes(seg.block), layer_stash_bytes(seg.dense)
    sp = plan.sequence_parallel and plan.tp > 1
    inp = float(plan.micro_batch * -(-seq // plan.cp) * int(spec.hidden) * 2
                / (plan.tp if sp else 1))
    # multi-token-prediction modules (the last stage's post segment): what their operators
    # save; the model recomputes only the layer blocks, so they keep it all
    mtp_st, mtp_exp = 0.0, 0.0
    if getattr(spec, "mtp_layers", 0) and seg.post is not None:
        mtp_exp = expert_params(seg.post) if moe else 0.0
        mtp_st = float(sum(op.stash_bytes * op.count for op in seg.post.ops
                           if op.phase == "fwd" and op.block == "mtp"))
    mems = []
    for st in stages:
        nd = dense_layers_in(spec, st.layers[0], st.layers[1])
        nb = st.n_layers - nd
        sdims = dims
        if by_graph and dims is not None:
            # MoE and MLA layers keep what their operators save (cost_models.memory):
            # the stage's layers, per micro-batch
            sdims = dict(dims, layer_stash_bytes=nb * blk_st + nd * dense_st,
                         layer_input_bytes=st.n_layers * inp,
                         max_layer_stash_bytes=max(blk_st if nb else 0.0,
                                                   dense_st if nd else 0.0),
                         layer_working_bytes=max(blk_w if nb else 0.0,
                                                 dense_w if nd else 0.0))
        if st.last and mtp_st and sdims is not None:
            sdims = dict(sdims, head_extra_bytes=mtp_st)
        mems.append(StageMemory(
            params=(pre_p if st.first else 0.0) + nb * blk_p + nd * dense_p
            + (post_p if st.last else 0.0), layers=st.n_layers, first=st.first,
            last=st.last, dims=sdims,
            expert_params=nb * exp_p + (mtp_exp if st.last else 0.0)))
    return mems
