"""Memory per device for distributed training (issue 4): model states and activations.

Model states (Rajbhandari et al., "ZeRO", SC'20, §3.1): mixed-precision training keeps
16-bit weights (2 B/param) and gradients (2 B/param) plus fp32 optimizer state of
``K`` bytes/param: the fp32 master weights (4) and, per optimizer moment, 4 more.
Adam has two moments, so ``K = 12`` and the total is **16 B/param**; plain SGD (the
``sgd`` optimizer op of :mod:`workloads.training`, 2 FLOP/param, no momentum) has none,
``K = 4`` (8 B/param). ZeRO stage 1 shards the optimizer state over the
``dp`` data-parallel ranks, stage 2 also the gradients, stage 3 also the weights.

Activations of one transformer layer, bytes, 16-bit activations and 1-byte dropout masks
(Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models",
2022, §4 and Table 2; s sequence, b micro-batch, h hidden, a heads, t tensor-parallel
size). Korthikanti's breakdown: attention ``11sbh + 5as²b``, MLP ``19sbh``, two
LayerNorms ``4sbh``. Split by where tensor parallelism shards them:

* outside the tensor-parallel regions (sharded only with sequence parallelism):
  LayerNorm inputs ``4sbh``, QKV input ``2sbh``, MLP input ``2sbh``, two dropout masks
  ``2sbh`` → ``10sbh``;
* inside (sharded by t): Q, K, V ``2sbh + 4sb·h_kv``, output-projection input ``2sbh``,
  MLP hidden activations ``4sb·f`` (``6sb·f`` for a gated MLP) → ``24sbh`` for
  ``h_kv = h``, ``f = 4h``;
* attention scores (sharded by t): softmax output ``2as²b``, its dropout mask
  ``as²b``, dropout output ``2as²b`` → ``5as²b``.

This reproduces Table 2: ``sbh(34 + 5as/h)`` without parallelism, ``sbh(10 + 24/t +
5as/(ht))`` with tensor parallelism, ``(sbh/t)(34 + 5as/h)`` adding sequence
parallelism, ``34sbh/t`` with selective recomputation (the score terms are recomputed)
and ``2sbh`` with full recomputation (only the layer input is kept; ``2sbh/t`` with
sequence parallelism).

With fused attention (FlashAttention; the default for transformers, see
:mod:`workloads.transformer`) no score tensor is kept: the ``5as²b`` term becomes the fp32
log-sum-exp per query row and head, ``4asb/t`` (Dao 2023, Algorithm 1: the forward saves
``O`` and ``L``; the backward recomputes ``S`` and ``P``), with or without selective
recomputation (which then has nothing to re-run).

Pipelining multiplies a device's per-micro-batch activations by the micro-batches in
flight (:func:`cost_models.pipeline.in_flight_micro_batches`: ``p`` on stage 0 for
1F1B, ``m`` for GPipe). The first stage also keeps the embedding dropout mask
(``sbh`` bytes), the last stage the final LayerNorm and output-layer inputs (``4sbh``)
and the fp32 logits ``4sbV/t`` (Korthikanti §4.3). With full recomputation one layer's
activations are re-materialized at a time, so one layer of the no-recompute footprint
is added as working memory.

>>> activation_bytes_per_layer(seq=2048, micro_batch=1, hidden=12288, heads=96)
2868903936.0
>>> model_state_bytes(1_000_000)["total"]
16000000.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dse.errors import ConfigError
from dse.types import Graph, ParallelPlan

LSE_BYTES = 4
"""fp32 log-sum-exp per query row and head kept by fused attention."""

__all__ = [
    "ADAM_STATE_BYTES_PER_PARAM",
    "StageMemory",
    "activation_bytes_per_layer",
    "device_memory_bytes",
    "device_memory_from_stages",
    "fits_memory",
    "expert_params",
    "graph_params",
    "local_params",
    "model_state_bytes",
    "stage_memory_bytes",
    "stage_memory_of_graph",
    "transformer_dims",
]

WEIGHT_BYTES = 2
"""16-bit weights (ZeRO §3.1)."""
GRAD_BYTES = 2
"""16-bit gradients (ZeRO §3.1)."""
MASTER_BYTES = 4
"""fp32 master copy of the weights (ZeRO §3.1)."""
MOMENT_BYTES = 4
"""Each fp32 optimizer moment (ZeRO §3.1: Adam's momentum and variance)."""
OPTIMIZER_MOMENTS = {"adam": 2, "sgd": 0}
"""Adam keeps momentum and variance; plain SGD none (as workloads.training's ``sgd`` op)."""
ADAM_STATE_BYTES_PER_PARAM = WEIGHT_BYTES + GRAD_BYTES + MASTER_BYTES + 2 * MOMENT_BYTES
"""16 bytes per parameter for mixed-precision Adam (ZeRO: 2 + 2 + 12)."""
MASK_BYTES = 1
"""Dropout masks are stored as bytes (Korthikanti et al. §4.1)."""
LOGITS_BYTES = 4
"""The output layer's logits are kept in fp32 for the loss (Korthikanti et al. §4.3)."""


def model_state_bytes(params: ArrayLike, *, optimizer: str = "adam", dp: int = 1,
                      zero_stage: int = 0) -> dict[str, Any]:
    """Bytes of weights, gradients and optimizer state for ``params`` parameters.

    >>> d = model_state_bytes(1000, dp=4, zero_stage=1)
    >>> d["weights"], d["grads"], d["optimizer"]
    (2000.0, 2000.0, 3000.0)
    """
    if optimizer not in OPTIMIZER_MOMENTS:
        raise ConfigError(f"optimizer={optimizer!r} is not valid; choose one of "
                          f"{', '.join(OPTIMIZER_MOMENTS)}")
    if zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"zero_stage={zero_stage!r} must be one of 0, 1, 2, 3")
    if dp < 1:
        raise ConfigError(f"dp={dp} must be >= 1")
    p = np.asarray(params, dtype=np.float64)
    k = MASTER_BYTES + OPTIMIZER_MOMENTS[optimizer] * MOMENT_BYTES
    w = p * WEIGHT_BYTES / (dp if zero_stage >= 3 else 1)
    g = p * GRAD_BYTES / (dp if zero_stage >= 2 else 1)
    o = p * k / (dp if zero_stage >= 1 else 1)
    out = {"weights": w, "grads": g, "optimizer": o, "total": w + g + o}
    return {key: (float(v) if np.ndim(v) == 0 else v) for key, v in out.items()}


def activation_bytes_per_layer(*, seq: ArrayLike, micro_batch: ArrayLike, hidden: int,
                               heads: int, tp: ArrayLike = 1, sequence_parallel: bool = False,
                               recompute: str = "none", kv_heads: int | None = None,
                               ffn: int | None = None, gated_mlp: bool = False,
                               dropout: bool = True, dtype_bytes: int = 2,
                               shared_norm: bool = False, fused_attention: bool = False
                               ) -> Any:
    """Activation bytes one transformer layer keeps for its backward pass, per device
    (module docstring; Korthikanti et al. 2022, Table 2). Broadcasts over arrays.
    ``dropout=False`` (GPT-J, Llama) drops the three masks and the dropout output of the
    scores (``2as²b`` of scores remain: the softmax output feeds ``A·V`` directly).

    >>> s, b, h, a, t = 2048, 1, 12288, 96, 8
    >>> activation_bytes_per_layer(seq=s, micro_batch=b, hidden=h, heads=a, tp=t) == \\
    ...     s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    True
    """
    if recompute not in ("none", "selective", "full"):
        raise ConfigError(f"recompute={recompute!r} is not valid; choose one of none, "
                          "selective, full")
    s = np.asarray(seq, dtype=np.float64)
    b = np.asarray(micro_batch, dtype=np.float64)
    t = np.asarray(tp, dtype=np.float64)
    h = float(hidden)
    a = float(heads)
    kv = float(heads if kv_heads is None else kv_heads)
    h_kv = h * kv / a
    f = float(4 * hidden if ffn is None else ffn)
    e = dtype_bytes / 2.0  # Korthikanti's counts are for 2-byte activations
    sb = s * b
    shard_out = t if sequence_parallel else 1.0
    if recompute == "full":
        out = 2.0 * e * sb * h / shard_out
    else:
        masks = MASK_BYTES if dropout else 0.0
        # LayerNorm inputs, QKV input, first MLP GEMM input (shared in a parallel block)
        ln_and_inputs = (2 * h + 2 * h) if shared_norm else (4 * h + 2 * h + 2 * h)
        outside = sb * (e * ln_and_inputs + masks * 2 * h)
        mlp = (6.0 if gated_mlp else 4.0) * e * sb * f
        inside = sb * e * (2 * h + 2 * h_kv + 2 * h_kv + 2 * h) + mlp
        out = outside / shard_out + inside / t
        if fused_attention:
            # FlashAttention keeps the fp32 log-sum-exp of every query row and head (its
            # dropout regenerates the mask from the RNG state): no score term
            out = out + a * s * b * LSE_BYTES / t
        elif recompute == "none":
            scores = a * s * s * b * (2 * e + (MASK_BYTES + 2 * e if dropout else 0.0))
            out = out + scores / t
    return float(out) if np.ndim(out) == 0 else out


def stage_memory_bytes(*, params: float, layers: int, first: bool, last: bool,
                       plan: ParallelPlan, in_flight: float, seq: int, hidden: int = 0,
                       heads: int = 0, kv_heads: int | None = None, ffn: int | None = None,
                       vocab: int = 0, gated_mlp: bool = False, dropout: bool = True,
                       dtype_bytes: int = 2, shared_norm: bool = False,
                       fused_attention: bool = False,
                       stash_bytes_per_micro_batch: float | None = None,
                       input_bytes_per_micro_batch: float = 0.0, expert_params: float = 0.0,
                       local_params: float = 0.0,
                       layer_stash_bytes: float | None = None, layer_input_bytes: float = 0.0,
                       max_layer_stash_bytes: float = 0.0,
                       layer_working_bytes: float = 0.0,
                       head_extra_bytes: float = 0.0) -> dict[str, float]:
    """Memory breakdown (bytes) of one device holding ``layers`` transformer layers
    (``params`` parameters in its tensor-parallel shard) of a pipeline stage.

    For non-transformer graphs pass ``stash_bytes_per_micro_batch`` (the stage's
    activation bytes kept for backward per micro-batch, from the operators'
    ``stash_bytes``) and ``input_bytes_per_micro_batch`` (the stage input, all that full
    recomputation keeps).

    Mixture-of-experts stages: ``expert_params`` (in ``params`` too) are the experts'
    parameters, whose gradients and ZeRO shards live on the ranks holding the same experts
    (``ParallelPlan.expert_grad_group``). ``local_params`` (in ``params`` too) are
    model-parallel shards no other device holds (a DLRM's embedding tables): their states
    are neither reduced nor sharded by ZeRO. Layers the Korthikanti formulas do not describe (MoE, multi-head latent
    attention) pass ``layer_stash_bytes`` (what the stage's layers save per micro-batch,
    from their operators' ``stash_bytes``), ``layer_input_bytes`` (their inputs: all that
    full recomputation keeps) and ``max_layer_stash_bytes`` (one layer re-materialized);
    with Megatron-Core's recompute modules, ``layer_stash_bytes`` is what the layers keep
    beside them and ``layer_working_bytes`` the largest module re-materialized
    (:mod:`cost_models.recompute`). ``head_extra_bytes``: what the last stage's
    multi-token-prediction modules keep per micro-batch (beside the head's logits).
    """
    ep_params = min(float(expert_params), float(params))
    loc = min(float(local_params), float(params) - ep_params)
    states = model_state_bytes(params - ep_params - loc, optimizer=plan.optimizer,
                               dp=plan.grad_group, zero_stage=plan.zero_stage)
    if loc > 0:  # model-parallel shards (a DLRM's tables): held once, nothing to shard
        lo = model_state_bytes(loc, optimizer=plan.optimizer)
        states = {k: states[k] + lo[k] for k in states}
    if ep_params > 0:
        ex = model_state_bytes(ep_params, optimizer=plan.optimizer,
                               dp=int(getattr(plan, "expert_grad_group", plan.grad_group)),
                               zero_stage=plan.zero_stage)
        states = {k: states[k] + ex[k] for k in states}
    t, sp, b = plan.tp, plan.sequence_parallel and plan.tp > 1, plan.micro_batch
    shard = t if sp else 1
    out = {k: float(v) for k, v in states.items() if k != "total"}
    if stash_bytes_per_micro_batch is None:
        if hidden <= 0 or heads <= 0:
            raise ConfigError("stage_memory_bytes needs hidden/heads for a transformer stage "
                              "or stash_bytes_per_micro_batch for another graph")
        kw: dict[str, Any] = {"seq": seq, "micro_batch": b, "hidden": hidden, "heads": heads, "tp": t,
                                  "sequence_parallel": sp, "kv_heads": kv_heads, "ffn": ffn,
                                  "gated_mlp": gated_mlp, "dropout": dropout,
                                  "dtype_bytes": dtype_bytes, "shared_norm": shared_norm,
                                  "fused_attention": fused_attention}
        if layer_stash_bytes is not None:
            full_rc = plan.recompute == "full" and layers > 0
            act = (layer_input_bytes if full_rc else layer_stash_bytes) * in_flight
            work = max_layer_stash_bytes if full_rc else (
                layer_working_bytes if layers > 0 else 0.0)
        else:
            per_layer = activation_bytes_per_layer(recompute=plan.recompute, **kw)
            act = per_layer * layers * in_flight
            work = activation_bytes_per_layer(recompute="none", **kw) if (
                plan.recompute == "full" and layers > 0) else 0.0
        emb = (MASK_BYTES * seq * b * hidden / shard * in_flight) if first and dropout else 0.0
        head = 0.0
        if last:  # the last chunk runs each micro-batch's backward right after its forward
            head = (2 * dtype_bytes * seq * b * hidden / shard
                    + LOGITS_BYTES * seq * b * vocab / t + head_extra_bytes) * (
                        plan.micro_batches if plan.schedule == "gpipe" else 1.0)
    else:
        full = float(stash_bytes_per_micro_batch)
        if plan.recompute == "full":
            act = float(input_bytes_per_micro_batch) * in_flight
            work = full
        else:
            act = full * in_flight
            work = 0.0
        emb = head = 0.0
    out["activations"] = float(act)
    out["recompute_working"] = float(work)
    out["embedding_activations"] = float(emb)
    out["head_activations"] = float(head)
    out["total"] = float(sum(out.values()))
    return out


def local_params(graph: Graph) -> float:
    """Parameters of a graph held by its device alone: the embedding shards of a DLRM
    sharded over its data-parallel devices (``meta["embedding_shards"] > 1``), less its
    replicated (data-parallel) tables, whose gradients are reduced (memoized)."""
    memo = graph.derived
    hit = memo.get("cost_models.memory.local_params")
    if hit is None:
        hit = 0.0
        if int(graph.meta.get("embedding_shards") or 1) > 1:
            hit = float(sum(op.params * op.count for op in graph.ops
                            if op.phase == "fwd" and op.kind == "embedding_gather"))
            hit -= float(graph.meta.get("replicated_embedding_params") or 0.0)
        memo["cost_models.memory.local_params"] = hit
    return hit


def expert_params(graph: Graph) -> float:
    """Parameters of a graph's routed MoE experts (``…moe.experts.…`` operators; their
    gradients are reduced over the ranks holding the same experts; memoized)."""
    memo = graph.derived
    hit = memo.get("cost_models.memory.expert_params")
    if hit is None:
        hit = float(sum(op.params * op.count for op in graph.ops
                        if op.phase == "fwd" and ".moe.experts." in op.name))
        memo["cost_models.memory.expert_params"] = hit
    return hit


def graph_params(graph: Graph) -> float:
    """Parameters held by a (stage, tensor-parallel shard) graph: the ``params`` of its
    forward operators times their multiplicity (memoized on the graph)."""
    memo = graph.derived
    hit = memo.get("cost_models.memory.params")
    if hit is None:
        hit = float(sum(op.params * op.count for op in graph.ops if op.phase == "fwd"))
        memo["cost_models.memory.params"] = hit
    return hit


@dataclass(frozen=True)
class StageMemory:
    """What the memory model needs of one virtual pipeline stage: its parameters (one
    tensor-parallel shard), layers, role, and either the transformer dimensions
    (``dims``: the keyword arguments of :func:`activation_bytes_per_layer` that describe
    the model, plus ``vocab``) or, for other graphs, the activation bytes kept per
    micro-batch and the stage input."""

    params: float
    layers: int
    first: bool
    last: bool
    dims: Mapping[str, Any] | None = None
    stash_bytes_per_micro_batch: float = 0.0
    input_bytes_per_micro_batch: float = 0.0
    expert_params: float = 0.0
    """Of ``params``, those of mixture-of-experts experts (reduced over ``dp·cp/ep``)."""
    local_params: float = 0.0
    """Of ``params``, model-parallel shards held by this device alone (DLRM tables)."""


def transformer_dims(graph: Graph) -> dict[str, Any] | None:
    """The model dimensions of a transformer training graph (``meta`` with ``hidden`` and
    ``heads``) for :class:`StageMemory`, or None for other graphs."""
    meta: Mapping[str, Any] = graph.meta
    if not (meta.get("hidden") and meta.get("heads")):
        return None
    return {"hidden": int(meta["hidden"]), "heads": int(meta["heads"]),
            "kv_heads": meta.get("kv_heads"), "ffn": meta.get("ffn"),
            "vocab": int(meta.get("vocab", 0) or 0),
            "gated_mlp": any(op.vector_op == "swiglu" for op in graph.ops),
            "dropout": any(op.vector_op == "dropout" for op in graph.ops),
            # a block with a single forward LayerNorm is a shared-norm parallel block (GPT-J)
            "fused_attention": any(op.kind == "attention" for op in graph.ops),
            "shared_norm": sum(1 for op in graph.ops if op.kind == "norm"
                               and op.block == "layer" and op.phase == "fwd") == 1}


def stage_memory_of_graph(graph: Graph, index: int, count: int) -> StageMemory:
    """:class:`StageMemory` of a whole stage graph (``workloads.parallel.stage_graphs``).

    A DLRM graph is the device its table exchange loads most; ``meta
    ["fullest_local_params"]`` (the most embedding parameters any device holds) sets
    the memory, so that it is the fullest device's."""
    m = graph.meta
    loc = local_params(graph)
    extra = max(float(m.get("fullest_local_params") or 0.0) - loc, 0.0)
    layers = m.get("stage_layers")
    if layers is None:
        nl = int(m.get("layers", 0) or 0)
        layers = (0, nl)
    dims = transformer_dims(graph)
    fwd = [op for op in graph.ops if op.phase == "fwd"]
    return StageMemory(local_params=loc + extra,
        params=graph_params(graph) + extra, layers=int(layers[1]) - int(layers[0]),
        first=bool(m.get("first_stage", index == 0)),
        last=bool(m.get("last_stage", index == count - 1)), dims=dims,
        stash_bytes_per_micro_batch=0.0 if dims else sum(op.stash_bytes * op.count
                                                         for op in fwd),
        input_bytes_per_micro_batch=0.0 if dims else (fwd[0].bytes_in if fwd else 0.0))


def device_memory_bytes(graphs: Graph | Sequence[Graph], plan: ParallelPlan, *,
                        seq: int | None = None) -> dict[str, float]:
    """Per-device memory breakdown (bytes) of the most loaded pipeline device, from the
    single-device training graph (``pp = 1``) or the list of stage graphs (one per
    virtual stage). See :func:`device_memory_from_stages`."""
    gl = [graphs] if isinstance(graphs, Graph) else list(graphs)
    if not gl:
        raise ConfigError("device_memory_bytes needs at least one graph")
    s = int(seq or gl[0].meta.get("seq_len", 0) or 0)
    return device_memory_from_stages([stage_memory_of_graph(g, i, len(gl))
                                      for i, g in enumerate(gl)], plan, seq=s)


def device_memory_from_stages(stages: Sequence[StageMemory], plan: ParallelPlan, *,
                              seq: int) -> dict[str, float]:
    """Per-device memory breakdown (bytes) of the most loaded pipeline device.

    ``stages`` are the virtual stages in pipeline order (device ``i`` holds ``i, i + pp,
    …``). Transformer stages (``dims``) use the Korthikanti formulas; others their
    ``stash_bytes_per_micro_batch``. Returns the breakdown plus ``total`` and ``stage``
    (the device index).
    """
    if not stages:
        raise ConfigError("device_memory_from_stages needs at least one stage")
    p = plan.pp
    if len(stages) % p:
        raise ConfigError(f"{len(stages)} stages do not divide over pp={p} devices")
    from cost_models.pipeline import in_flight_micro_batches

    # context parallelism: a rank holds seq/cp tokens of each sample (the ring's K/V
    # chunks in flight, two of s/cp tokens, are not counted)
    seq = -(-int(seq) // max(int(getattr(plan, "cp", 1)), 1))

    best: dict[str, float] | None = None
    per_device: list[float] = []
    # a stage's breakdown is linear in the micro-batches in flight (only the activation
    # terms scale with it): compute it once per distinct stage for one micro-batch and
    # scale, which gives the same floating-point numbers as computing it per device
    unit: dict[tuple[Any, ...], dict[str, float]] = {}
    for dev in range(p):
        chunks = [stages[i] for i in range(dev, len(stages), p)]
        flight = in_flight_micro_batches(plan, dev)
        tot: dict[str, float] = {}
        for st in chunks:
            key = (st.params, st.layers, st.first, st.last, id(st.dims),
                   st.stash_bytes_per_micro_batch, st.input_bytes_per_micro_batch,
                   st.expert_params, st.local_params)
            one = unit.get(key)
            if one is None:
                kw: dict[str, Any]
                if st.dims:
                    kw = dict(st.dims)
                else:
                    kw = {"stash_bytes_per_micro_batch": st.stash_bytes_per_micro_batch,
                          "input_bytes_per_micro_batch": st.input_bytes_per_micro_batch}
                one = stage_memory_bytes(params=st.params, layers=st.layers, first=st.first,
                                         last=st.last, plan=plan, in_flight=1.0, seq=seq,
                                         expert_params=st.expert_params,
                                         local_params=st.local_params, **kw)
                unit[key] = one
            part = dict(one)
            part["activations"] = float(one["activations"] * flight)
            part["embedding_activations"] = float(one["embedding_activations"] * flight)
            part["total"] = float(sum(v for k, v in part.items() if k != "total"))
            for k, v in part.items():
                tot[k] = tot.get(k, 0.0) + v
        if plan.recompute == "full" or plan.recompute_modules:  # one chunk at a time
            tot["total"] -= tot["recompute_working"] * (1 - 1 / len(chunks))
            tot["recompute_working"] /= len(chunks)
        per_device.append(float(tot["total"]))
        if best is None or tot["total"] > best["total"]:
            best = dict(tot, stage=float(dev))
    assert best is not None
    best.update({f"device_{d}": v for d, v in enumerate(per_device)} if p > 1 else {})
    return best


def fits_memory(memory: Mapping[str, float] | float, hbm_bytes: ArrayLike) -> Any:
    """Whether the per-device ``memory`` (a breakdown with ``total`` or a number) fits in
    ``hbm_bytes``.

    >>> fits_memory({"total": 70e9}, 80e9)
    True
    """
    total = memory["total"] if isinstance(memory, Mapping) else memory
    out = np.asarray(total) <= np.asarray(hbm_bytes)
    return bool(out) if out.ndim == 0 else out
