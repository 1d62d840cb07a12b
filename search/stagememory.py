"""Per-stage memory inputs of a transformer plan (:class:`cost_models.memory.StageMemory`)
from its graph segments: parameters per virtual stage (a MoE model's experts apart, as
their gradients and ZeRO shards live on fewer ranks) and, for layers the Korthikanti
formulas do not cover (mixture of experts, multi-head latent attention), the activation
bytes their operators save. Used by :class:`search.trainstep.WorkloadModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["expert_params", "gemm_bytes_of", "graph_params_of", "layer_stash_bytes",
           "leanest_memory_bytes", "low_precision_saves",
           "memory_floor_bytes", "module_stash_bytes", "transformer_stage_memories"]


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


def gemm_bytes_of(designs: Any, want: int | None = None) -> int:
    """Bytes per element of a DesignBatch's GEMMs as the memory model sees them: the
    designs' datatype width, 2 for 16 bits and wider (1: fp8 and int8 designs keep their
    GEMMs' inputs quantized, :func:`low_precision_saves`). A batch mixing the two, or one
    not matching ``want`` (a :class:`search.trainstep.WorkloadModel`'s), is an error."""
    from dse.errors import ConfigError

    widths = set(np.minimum(np.asarray(designs.dtype_bytes, dtype=np.int64), 2).tolist())
    got = widths.pop() if len(widths) == 1 else None
    if got is None or (want is not None and got != want):
        raise ConfigError("designs whose GEMMs take different widths keep different "
                          "activations: evaluate 16-bit and fp8/int8 designs apart")
    return int(got)


def layer_stash_bytes(g: Any) -> float:
    """Activation bytes one layer of a layer graph keeps for its backward."""
    if g is None:
        return 0.0
    n = max((op.count for op in g.ops if op.block), default=1)
    return float(sum(op.stash_bytes * op.count for op in g.ops
                     if op.phase == "fwd" and op.block)) / max(n, 1)


def memory_floor_bytes(spec: Any, plan: Any) -> float:
    """A lower bound of ``plan``'s per-device memory without building a graph: the model
    states (:func:`cost_models.memory.model_state_bytes`: weights, gradients and optimizer
    state, each sharded as ``plan.zero_stage`` shards it) of the average stage's shard,
    routed experts over ``ep·etp`` (their states over the expert gradient group) and the
    rest over ``tp`` (over ``dp·cp``); the fullest device holds at least the average and
    its activations come on top (0 for other families)."""
    from cost_models.memory import model_state_bytes

    if getattr(spec, "family", "") != "transformer":
        return 0.0
    routed = float((spec.moe_layers + spec.mtp_layers) * spec.experts
                   * spec.mlp_params(spec.moe_ffn)) if spec.moe else 0.0
    rest = float(spec.params + spec.mtp_params) - routed
    kw = {"optimizer": plan.optimizer, "zero_stage": plan.zero_stage}
    dense = model_state_bytes(rest / plan.tp / plan.pp, dp=plan.grad_group, **kw)["total"]
    experts = model_state_bytes(routed / (plan.ep * plan.expert_tp) / plan.pp,
                                dp=plan.expert_grad_group, **kw)["total"] if routed else 0.0
    return float(dense + experts)


def low_precision_saves(g: Any, saves: Sequence[tuple[str, str, float]], gemm_bytes: int
                        ) -> list[tuple[str, str, float]]:
    """``saves`` (tensor, saving operator, bytes) of a layer graph as a design whose tensor
    cores compute in ``gemm_bytes`` per element (< 16 bits: fp8, int8) keeps them: a GEMM
    that runs in that format (not :func:`cost_models.opcost.high_precision`) saves the
    quantized copy of its input that its weight-gradient GEMM reads, ``gemm_bytes`` per
    element (Transformer Engine's FP8 ``Linear`` saves its FP8 input; DeepSeek-V3 caches
    "the activations in FP8 format for the backward pass of the Linear operator", report
    §3.3.4; docs/sources.md). A tensor only such GEMMs save is kept in that format; one
    another operator also saves (attention's output, a norm's output the router reads)
    is kept at its width for that operator, and the GEMM keeps only its copy,
    ``<gemm>:fp8_input``: made by the GEMM, it goes with the GEMM's recompute module. Per-tensor scaling factors (a few
    bytes a tensor) are not counted."""
    from cost_models.opcost import high_precision

    low: dict[str, float] = {}
    for op, hp in zip(g.ops, high_precision(g)):
        if op.kind == "gemm" and op.phase == "fwd" and not hp and op.dtype_bytes > gemm_bytes:
            low[op.name] = gemm_bytes / op.dtype_bytes
    savers: dict[str, list[str]] = {}
    for tensor, saver, _ in saves:
        savers.setdefault(tensor, []).append(saver)
    out: list[tuple[str, str, float]] = []
    for tensor, saver, nbytes in saves:
        if saver in low:
            every = all(s in low for s in savers[tensor])
            out.append((tensor if every else f"{saver}:fp8_input", saver, nbytes * low[saver]))
        else:
            out.append((tensor, saver, nbytes))
    return out


def leanest_memory_bytes(model: Any, plans: Sequence[Any], fits_bytes: float | None = None
                         ) -> float:
    """The smallest per-device memory among ``plans`` of a
    :class:`search.trainstep.WorkloadModel` (``inf`` for none), building as few plan
    layouts as it can: plans go in order of :func:`memory_floor_bytes` (never above a
    plan's memory) and the walk stops once the floor reaches the best found — or, with
    ``fits_bytes``, at the first plan within it (then any fitting plan's memory is
    returned, not necessarily the least)."""
    best = float("inf")
    floors = [memory_floor_bytes(model.spec, p) for p in plans]
    for k in sorted(range(len(plans)), key=floors.__getitem__):
        if floors[k] >= best or (fits_bytes is not None and floors[k] > fits_bytes):
            break
        best = min(best, model.memory_bytes(plans[k]))
        if fits_bytes is not None and best <= fits_bytes:
            break
    return best


def module_stash_bytes(g: Any, modules: Sequence[str], gemm_bytes: int = 2
                       ) -> tuple[float, float]:
    """(bytes one layer of a layer graph keeps, bytes its largest recomputed module
    re-materializes) with Megatron-Core's recompute ``modules``
    (:func:`cost_models.recompute.kept_stash_bytes`; (0, 0) for ``None``), on a design
    whose GEMMs take ``gemm_bytes`` per element (:func:`low_precision_saves` below 2)."""
    if g is None:
        return 0.0, 0.0
    from cost_models.recompute import kept_stash_bytes

    blocks = {op.block for op in g.ops if op.block}  # a segment keeps its parent's meta
    saves = [x for blk, xs in (g.meta.get("saves") or {}).items() if blk in blocks
             for x in xs]
    if gemm_bytes < 2:
        saves = low_precision_saves(g, saves, gemm_bytes)
    return kept_stash_bytes(saves, modules)


def transformer_stage_memories(spec: Any, plan: Any, stages: Sequence[Any], seg: Any,
                               seq: int, gemm_bytes: int = 2) -> list[Any]:
    """:class:`~cost_models.memory.StageMemory` of every virtual stage of ``plan``
    (``stages``: :class:`workloads.parallel.VirtualStage`; ``seg``: the plan's
    :class:`workloads.parallel.Segments`) on a design whose GEMMs take ``gemm_bytes`` per
    element: below 2 the layers keep what their operators save with the GEMMs' inputs
    quantized (:func:`low_precision_saves`; selective recomputation without modules is
    Megatron's ``core_attn``, nothing with fused attention)."""
    from cost_models.memory import StageMemory, transformer_dims
    from workloads.parallel import dense_layers_in

    pre_p, blk_p = graph_params_of(seg.pre), graph_params_of(seg.block)
    post_p, dense_p = graph_params_of(seg.post), graph_params_of(seg.dense)
    dims = transformer_dims(seg.block) if seg.block is not None else None
    moe = bool(getattr(spec, "experts", 0))
    mods = plan.recompute_modules if plan.recompute == "selective" else ()
    low = gemm_bytes < 2
    graphwise = moe or bool(getattr(spec, "kv_lora_rank", 0)) or low
    # selective recomputation without modules is Megatron's core_attn (the time model
    # re-runs the attention core); with fused attention there is nothing to re-run
    legacy = (plan.recompute == "selective" and not mods and graphwise
              and not (dims and dims["fused_attention"]))
    if legacy:
        mods = ("core_attn",)
    by_graph = graphwise or bool(mods)
    exp_p = expert_params(seg.block) if moe else 0.0
    blk_w = dense_w = 0.0
    if mods or low:  # Megatron-Core's recompute modules: what the rest of the layer saves
        (blk_st, blk_w), (dense_st, dense_w) = (module_stash_bytes(seg.block, mods, gemm_bytes),
                                                module_stash_bytes(seg.dense, mods, gemm_bytes))
        if legacy:  # as Korthikanti's selective form: the core's re-run is not counted
            blk_w = dense_w = 0.0
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
        if low:  # less what its GEMMs' inputs save in the design's format, as the layers'
            from cost_models.recompute import kept_stash_bytes

            sv = (seg.post.meta.get("saves") or {}).get("mtp", ())
            mtp_st -= (kept_stash_bytes(sv, ())[0]
                       - kept_stash_bytes(low_precision_saves(seg.post, sv, gemm_bytes), ())[0])
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
