"""End-to-end distributed training step: stage graphs → per-device times → pipeline
step, memory, energy and the contract keys of ``dse evaluate`` (issue 4).

For a plan ``tp × pp × dp`` (:class:`dse.types.ParallelPlan`) on ``system``:

1. :func:`workloads.parallel.stage_graphs` gives one tensor-parallel shard of every
   (virtual) pipeline stage for one micro-batch, with Megatron's tp collectives.
2. Each stage graph is split by phase into a forward, a backward and an optimizer graph;
   :func:`cost_models.evaluate.device_step` list-schedules each on the design's tensor
   cores, vector cores and link (vectorized over designs), with the collectives timed by
   :func:`cost_models.network.comm_time_s` on the placed tp group. Stages with the same
   layer count and role share one evaluation.
3. Recomputation adds the stage forward (``full``) or attention's ``QKᵀ``, softmax,
   dropout and ``A·V`` (``selective``) to the backward
   (:func:`cost_models.pipeline.backward_with_recompute_s`).
4. Pipeline p2p: ``b·s·h`` activations per micro-batch, sent as ``1/t`` slices over the
   NICs and re-gathered over NVLink (Megatron's scatter/gather, Narayanan et al. §4.1;
   already sharded with sequence parallelism).
5. Data parallelism: the gradients of a device's shard (2 B/param) are all-reduced over
   the dp group (reduce-scattered, then the parameters all-gathered after the optimizer,
   with ZeRO); with tied embeddings the first and last stages also all-reduce the word
   embedding's gradient (Megatron-LM). :func:`cost_models.pipeline.step_time_s` overlaps
   the all-reduce with each device's last backward.
6. Memory: :func:`cost_models.memory.device_memory_bytes`; area and TDP from
   :mod:`cost_models.area` / :mod:`cost_models.power`.

Reported FLOP rates: ``achieved_flop_per_s_per_device`` counts model FLOPs — the GEMM
FLOPs of forward and backward without recomputation, per device and second, as
Megatron's MFU does (Korthikanti et al. 2022 §6); ``extra["hardware_flop_per_s_per_device"]``
adds the recomputed GEMMs (HFU). ``energy_per_step_j`` is the energy of **one device**
(averaged over the pipeline ranks) for one step: dynamic energy of its operators, link
energy of the bytes it sends, and leakage over the whole step; the cluster total is in
``extra["energy_per_step_total_j"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_models.memory import device_memory_bytes, graph_params
from cost_models.network import (
    collective_time_s,
    comm_time_s,
    group_collective_time_s,
    group_placement,
    p2p_time_s,
)
from cost_models.pipeline import backward_with_recompute_s, step_time_s
from dse.types import Evaluation, Graph, HardwareConfig, ParallelPlan, SystemConfig

__all__ = [
    "StageCosts",
    "evaluate_training",
    "evaluate_training_batch",
    "split_phases",
    "stage_costs",
]

GRAD_BYTES = 2
"""Gradients are all-reduced in 16 bits (Megatron-LM fp16/bf16 training; reference
hardware-and-models.md §4.7)."""
PARAM_BYTES = 2
"""16-bit parameters gathered by ZeRO (ZeRO §5)."""


# --------------------------------------------------------------------------- graphs
def _is_bwd_comm(op: Any) -> bool:
    return op.phase == "comm" and bool(op.fwd)


def _subgraph(graph: Graph, keep: Sequence[int], suffix: str) -> Graph | None:
    if not keep:
        return None
    names = {graph.ops[i].name for i in keep}
    ops = tuple(graph.ops[i] for i in keep)
    edges = tuple((a, b) for a, b in graph.edges if a in names and b in names)
    return Graph(name=f"{graph.name}.{suffix}", ops=ops, edges=edges, meta=graph.meta)


@dataclass(frozen=True)
class PhaseGraphs:
    """A stage graph split by phase; ``attn_core`` indexes the forward graph's attention
    core (``QKᵀ``, softmax, its dropout, ``A·V``) that selective recomputation re-runs."""

    fwd: Graph | None
    bwd: Graph | None
    opt: Graph | None
    attn_core: tuple[int, ...]


def split_phases(graph: Graph) -> PhaseGraphs:
    """Split a training graph into forward (+ forward collectives), backward (+ backward
    collectives) and optimizer graphs."""
    fwd, bwd, opt = [], [], []
    for i, op in enumerate(graph.ops):
        if op.phase == "fwd" or (op.phase == "comm" and not _is_bwd_comm(op)):
            fwd.append(i)
        elif op.phase == "optimizer":
            opt.append(i)
        else:
            bwd.append(i)
    fg = _subgraph(graph, fwd, "fwd")
    core: list[int] = []
    if fg is not None:
        softmax = {op.name for op in fg.ops if op.kind == "softmax"}
        preds = fg.pred_indices
        for j, op in enumerate(fg.ops):
            if op.kind == "softmax":
                core.append(j)
            elif op.kind == "gemm" and op.batch > 1 and op.params == 0 and op.block:
                core.append(j)  # QKᵀ and A·V: batched over heads, no weights
            elif op.vector_op == "dropout" and any(fg.ops[p].name in softmax for p in preds[j]):
                core.append(j)
    return PhaseGraphs(fwd=fg, bwd=_subgraph(graph, bwd, "bwd"),
                       opt=_subgraph(graph, opt, "opt"), attn_core=tuple(core))


# --------------------------------------------------------------------------- stage costs
@dataclass(frozen=True)
class StageCosts:
    """Per-micro-batch costs of one stage graph on ``D`` designs (arrays of shape (D,))."""

    fwd_s: np.ndarray
    bwd_s: np.ndarray
    opt_s: np.ndarray
    attn_core_s: np.ndarray
    fwd_j: np.ndarray
    bwd_j: np.ndarray
    opt_j: np.ndarray
    attn_core_j: np.ndarray
    fwd_layers_s: np.ndarray
    """The part of ``fwd_s`` spent in repeated transformer blocks (what full recomputation
    re-runs: Megatron checkpoints the layers, not the embedding, head or loss; Narayanan
    et al. 2021 Eq. 3 counts 4 forward passes of the layers but 3 of the logits)."""
    fwd_layers_j: np.ndarray
    gemm_flop_fwd_layers: float
    gemm_flop_fwd: float
    gemm_flop_bwd: float
    gemm_flop_attn_core: float
    params: float
    comm_bytes: float
    """Bytes of its tp collectives per micro-batch (their link energy is in ``*_j``)."""
    phases: PhaseGraphs | None = None
    fwd_step: Any = None
    """:class:`cost_models.evaluate.DeviceStep` of the forward graph (schedule, op costs)."""
    bwd_step: Any = None


def _step(graph: Graph | None, designs: Any, tech: Any, system: SystemConfig,
          plan: ParallelPlan, tp_overlap: bool = True) -> tuple[np.ndarray, np.ndarray, Any]:
    """(makespan, dynamic energy, DeviceStep) of ``graph`` on every design."""
    from cost_models.evaluate import device_step

    n = len(designs)
    if graph is None:
        return np.zeros(n), np.zeros(n), None
    res = device_step(graph, designs, tech, comm_time_s=comm_time_s(graph, system, plan),
                      blocking_comm=not tp_overlap)
    return (np.asarray(res.makespan_s, dtype=np.float64).copy(),
            np.asarray(res.dynamic_energy_j, dtype=np.float64).copy(), res)


def _gemm_flop(graph: Graph | None, idx: Sequence[int] | None = None) -> float:
    if graph is None:
        return 0.0
    ops = graph.ops if idx is None else [graph.ops[i] for i in idx]
    return float(sum(op.total_flop for op in ops if op.kind == "gemm"))


def stage_costs(graph: Graph, designs: Any, tech: Any, system: SystemConfig,
                plan: ParallelPlan, *, tp_overlap: bool = True) -> StageCosts:
    """Forward, backward, optimizer and attention-core time and energy of one stage graph
    (one micro-batch, one tensor-parallel shard) on every design. ``tp_overlap=False``:
    collectives do not overlap computation (see :func:`evaluate_training_batch`)."""
    ph = split_phases(graph)
    f_s, f_j, f_res = _step(ph.fwd, designs, tech, system, plan, tp_overlap)
    b_s, b_j, b_res = _step(ph.bwd, designs, tech, system, plan, tp_overlap)
    o_s, o_j, _ = _step(ph.opt, designs, tech, system, plan)
    n = len(designs)
    a_s, a_j = np.zeros(n), np.zeros(n)
    if f_res is not None and ph.fwd is not None and ph.attn_core:
        oc = f_res.costs
        idx = np.asarray(ph.attn_core)
        cnt = np.asarray([ph.fwd.ops[i].count for i in ph.attn_core], dtype=np.float64)
        a_s = (np.asarray(oc.latency_s)[:, idx] * cnt).sum(axis=1)
        a_j = (np.asarray(oc.energy_j)[:, idx] * cnt).sum(axis=1)
    # forward share of the repeated blocks: scale the forward makespan and energy by the
    # blocks' share of the operators' summed latency (energy) on each design; a graph
    # without blocks (CNN, DLRM) is re-run whole
    l_s, l_j, l_flop = f_s, f_j, _gemm_flop(ph.fwd)
    if f_res is not None and ph.fwd is not None:
        layer_idx = [i for i, op in enumerate(ph.fwd.ops) if op.block]
        if layer_idx and len(layer_idx) < len(ph.fwd.ops):
            oc = f_res.costs
            cnt_all = np.asarray([op.count for op in ph.fwd.ops], dtype=np.float64)
            lat = np.asarray(oc.latency_s) * cnt_all
            en = np.asarray(oc.energy_j) * cnt_all
            with np.errstate(invalid="ignore", divide="ignore"):
                frac_s = np.nan_to_num(lat[:, layer_idx].sum(axis=1) / lat.sum(axis=1))
                frac_j = np.nan_to_num(en[:, layer_idx].sum(axis=1) / en.sum(axis=1))
            l_s, l_j = f_s * frac_s, f_j * frac_j
            l_flop = _gemm_flop(ph.fwd, layer_idx)
    comm_b = float(sum(op.comm_bytes * op.count for op in graph.ops if op.kind == "collective"
                       and op.group == "tp"))
    return StageCosts(
        fwd_s=f_s, bwd_s=b_s, opt_s=o_s, attn_core_s=a_s, fwd_j=f_j, bwd_j=b_j, opt_j=o_j,
        attn_core_j=a_j, fwd_layers_s=l_s, fwd_layers_j=l_j, gemm_flop_fwd_layers=l_flop,
        gemm_flop_fwd=_gemm_flop(ph.fwd),
        gemm_flop_bwd=_gemm_flop(ph.bwd),
        gemm_flop_attn_core=_gemm_flop(ph.fwd, ph.attn_core) if ph.fwd else 0.0,
        params=graph_params(graph), comm_bytes=comm_b, phases=ph, fwd_step=f_res,
        bwd_step=b_res,
    )


def critical_path(graph: Graph, step: Any, d: int = 0) -> list[str]:
    """Operator names on the critical chain of a device schedule (a
    :class:`cost_models.evaluate.DeviceStep` of ``graph``): from the operator that ends
    last back through what each operator waited for — its latest predecessor, or the
    operator that held the block of cores or unit it needed
    (:func:`cost_models.evaluate.schedule_chain`)."""
    from cost_models.evaluate import schedule_chain

    if step is None or not graph.ops:
        return []
    return [graph.ops[i].name for i in schedule_chain(graph, step, d)]


def _stage_key(g: Graph) -> tuple[Any, ...]:
    from workloads.parallel import unique_stage_key

    return unique_stage_key(g)


# --------------------------------------------------------------------------- p2p / dp
def _p2p_s(spec: Any, graphs: list[Graph], plan: ParallelPlan, system: SystemConfig,
           seq: int | None) -> float:
    """One activation (or gradient) transfer between neighbouring stages (s)."""
    if plan.pp <= 1:
        return 0.0
    hidden = int(getattr(spec, "hidden", 0) or 0)
    if hidden and seq:
        full = float(plan.micro_batch * seq * hidden * 2)
    else:  # generic graph: the activation leaving the first stage
        fwd = [op for op in graphs[0].ops if op.phase == "fwd"]
        full = float(fwd[-1].bytes_out) if fwd else 0.0
    t = plan.tp
    if t == 1:
        return float(p2p_time_s(full, plan, system))
    # scatter/gather (Narayanan §4.1): each tp rank sends 1/t; with sequence parallelism
    # the activations are already sharded, otherwise they are re-gathered inside the node
    out = float(p2p_time_s(full / t, plan, system))
    if not plan.sequence_parallel:
        out += float(group_collective_time_s("all_gather", full,
                                             group_placement("tp", plan, system), system))
    return out


def _dp_times(params: float, plan: ParallelPlan, system: SystemConfig
              ) -> tuple[float, float, float]:
    """(overlappable gradient reduction, per-micro-batch exposed ZeRO traffic candidates,
    post-optimizer parameter gather) for a device holding ``params`` parameters."""
    if plan.dp <= 1 or params <= 0:
        return 0.0, 0.0, 0.0
    pl = group_placement("dp", plan, system)
    grads = params * GRAD_BYTES
    if plan.zero_stage == 0:
        return float(group_collective_time_s("all_reduce", grads, pl, system)), 0.0, 0.0
    rs = float(group_collective_time_s("reduce_scatter", grads, pl, system))
    ag = float(group_collective_time_s("all_gather", params * PARAM_BYTES, pl, system))
    return rs, ag, ag


# --------------------------------------------------------------------------- evaluation
def _seq_of(spec: Any, seq: int | None) -> int | None:
    """Sequence length of the step (``None`` for families without one)."""
    s = seq or getattr(spec, "default_seq", None)
    return int(s) if s else None


def _stage_graph_list(spec: Any, plan: ParallelPlan, seq: int | None) -> list[Graph]:
    from workloads.parallel import stage_graphs

    return stage_graphs(spec, plan, seq)


def evaluate_training_batch(spec: Any, designs: Any, system: SystemConfig, plan: ParallelPlan,
                            tech: Any, seq: int | None = None, *,
                            cache: dict[Any, Any] | None = None, dp_overlap: bool = True,
                            tp_overlap: bool = True, _detail: bool = False) -> dict[str, Any]:
    """Evaluate ``plan`` for every design of a :class:`cost_models.designs.DesignBatch`.

    Returns a dict of ``(D,)`` arrays: the contract keys of ``dse evaluate`` that are
    numbers (``step_time_s``, ``samples_per_s``, ``achieved_flop_per_s_per_device``,
    ``area_mm2``, ``tdp_w``, ``energy_per_step_j``, ``memory_per_device_bytes``,
    ``fits_memory``) plus ``hardware_flop_per_s_per_device``, ``bubble_s``, ``p2p_s``,
    ``dp_exposed_s``, ``optimizer_s``, ``compute_s``. Stage graphs are built once per
    (spec, plan, seq) and every stage shape is evaluated once for all designs.

    ``cache`` (a dict the caller keeps for one ``designs``/``system``/``tech``) shares
    stage costs across plans with the same stage shapes, tp, micro-batch and sequence
    parallelism (what :mod:`search.plans` does). ``dp_overlap=False`` exposes the whole
    gradient all-reduce after the backward pass (Megatron-LM's ``--DDP-impl local`` of 2021
    all-reduces after the last micro-batch; PyTorch DDP overlaps it, the default).
    ``tp_overlap=False`` runs the tensor-parallel collectives with no computation beside
    them, as Megatron-LM's 2021 code did (the backward all-reduce of ``f`` is issued after
    the layer's weight-gradient GEMM, on the compute stream's critical path); the default
    lets a backward collective overlap the weight-gradient GEMM (Megatron-LM's
    ``--async-tensor-model-parallel-allreduce`` / sequence-parallel reduce-scatter, 2022).
    """
    from cost_models.area import area_mm2
    from cost_models.power import tdp_w

    s = _seq_of(spec, seq)
    graphs = _stage_graph_list(spec, plan, s)
    n = len(designs)
    p = plan.pp
    v = len(graphs) // p
    m = plan.micro_batches

    costs: dict[Any, Any] = {} if cache is None else cache
    per_stage: list[StageCosts] = []
    shape = (id(spec), plan.tp, plan.micro_batch, bool(plan.sequence_parallel and plan.tp > 1),
             s, plan.optimizer, bool(tp_overlap))
    for g in graphs:
        key = (_stage_key(g), shape)
        if key not in costs:
            costs[key] = stage_costs(g, designs, tech, system, plan, tp_overlap=tp_overlap)
        per_stage.append(costs[key])

    # per pipeline device: sum over its chunks
    f = np.zeros((n, p))
    b = np.zeros((n, p))
    opt = np.zeros((n, p))
    e_mb = np.zeros((n, p))
    e_opt = np.zeros((n, p))
    params = np.zeros(p)
    comm_bytes = np.zeros(p)
    hw_extra_flop = 0.0
    model_flop_shard = 0.0
    for k, c in enumerate(per_stage):
        d = k % p
        extra = backward_with_recompute_s(0.0, c.fwd_layers_s, c.attn_core_s, plan.recompute)
        extra_j = backward_with_recompute_s(0.0, c.fwd_layers_j, c.attn_core_j, plan.recompute)
        f[:, d] += c.fwd_s
        b[:, d] += c.bwd_s + extra
        opt[:, d] += c.opt_s / (plan.dp if plan.zero_stage >= 1 else 1)
        e_mb[:, d] += c.fwd_j + c.bwd_j + extra_j
        e_opt[:, d] += c.opt_j / (plan.dp if plan.zero_stage >= 1 else 1)
        params[d] += c.params
        comm_bytes[d] += c.comm_bytes
        model_flop_shard += c.gemm_flop_fwd + c.gemm_flop_bwd
        hw_extra_flop += float(backward_with_recompute_s(0.0, c.gemm_flop_fwd_layers,
                                                         c.gemm_flop_attn_core,
                                                         plan.recompute))

    # data parallel and ZeRO
    dp_comm = np.zeros(p)
    dp_post = np.zeros(p)
    dp_traffic = np.zeros(p)  # all data-parallel communication per step, before any overlap
    zero_exposed = np.zeros((n, p))  # ZeRO-2/3 traffic not hidden by compute, per step
    for d in range(p):
        red, zero_ag, post = _dp_times(float(params[d]), plan, system)
        dp_comm[d] = red
        dp_post[d] = post
        dp_traffic[d] = red + post
        if plan.zero_stage >= 2 and plan.dp > 1:  # per-micro-batch gradient reduce-scatter
            ag = zero_ag if plan.zero_stage >= 3 else 0.0
            add_f = np.maximum(ag - f[:, d], 0.0)  # parameter gather before the forward
            add_b = np.maximum(red + ag - b[:, d], 0.0)  # gather + gradient reduce-scatter
            f[:, d] += add_f
            b[:, d] += add_b
            zero_exposed[:, d] = m * (add_f + add_b)
            dp_traffic[d] = m * (red + 2 * ag) + post
            dp_comm[d] = 0.0
    tied = bool(getattr(spec, "tied_embeddings", False)) and p > 1 and hasattr(spec, "vocab")
    if tied:  # Megatron all-reduces the word-embedding gradient between first and last stage
        emb_bytes = float(-(-spec.vocab // plan.tp) * getattr(spec, "embed_dim", spec.hidden)
                          * GRAD_BYTES)
        t_emb = float(collective_time_s("all_reduce", emb_bytes, 2,
                                        system.inter_node_bw_bytes_per_s,
                                        system.inter_node_latency_s, "switch"))
        dp_post[0] += t_emb
        dp_post[p - 1] += t_emb

    c_p2p = _p2p_s(spec, graphs, plan, system, s)
    pt = step_time_s(f, b, np.full(n, c_p2p), plan, dp_comm_s=dp_comm, dp_post_s=dp_post,
                     optimizer_s=opt, dp_overlap=dp_overlap)
    step = np.asarray(pt.step_time_s, dtype=np.float64)

    area = area_mm2(designs, tech)
    tdp = tdp_w(designs, tech)
    mem = device_memory_bytes(graphs, plan, seq=s)
    hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
    devices = plan.devices
    model_flop_total = model_flop_shard * plan.tp * plan.dp * m
    hw_flop_total = (model_flop_shard + hw_extra_flop) * plan.tp * plan.dp * m

    # energy of one device per step: its operators, the bytes it sends, leakage
    link_j = float(getattr(tech, "link_energy_j_per_byte", 0.0))
    # bytes sent outside the stage graphs (tp collectives are in the operators' energy):
    # activations and gradients to the neighbouring stages, and the ring all-reduce's
    # 2(n-1)/n of the gradients
    p2p_bytes = (2.0 * m * v * plan.micro_batch * (s or 1) * getattr(spec, "hidden", 0) * 2
                 / plan.tp if p > 1 else 0.0)
    dp_bytes = params * GRAD_BYTES * 2.0 * (plan.dp - 1) / plan.dp
    sent = p2p_bytes + dp_bytes
    dyn = m * e_mb + e_opt + link_j * np.asarray(sent)[None, :]
    leak = np.asarray(tdp["leakage"], dtype=np.float64)
    e_dev = dyn.mean(axis=1) + leak * step

    out: dict[str, Any] = {
        "step_time_s": step,
        "samples_per_s": plan.global_batch / step,
        "achieved_flop_per_s_per_device": model_flop_total / (devices * step),
        "hardware_flop_per_s_per_device": hw_flop_total / (devices * step),
        "area_mm2": np.asarray(area["total"], dtype=np.float64),
        "tdp_w": np.asarray(tdp["total"], dtype=np.float64),
        "energy_per_step_j": e_dev,
        "energy_per_step_total_j": e_dev * devices,
        "memory_per_device_bytes": np.full(n, mem["total"]),
        "fits_memory": mem["total"] <= hbm,
        "compute_s": np.asarray(pt.compute_s, dtype=np.float64),
        "bubble_s": np.asarray(pt.bubble_s, dtype=np.float64),
        "bubble_fraction": np.asarray(pt.bubble_fraction, dtype=np.float64),
        "p2p_s": np.asarray(pt.p2p_s, dtype=np.float64),
        "dp_exposed_s": np.asarray(pt.dp_exposed_s, dtype=np.float64),
        "optimizer_s": np.asarray(pt.optimizer_s, dtype=np.float64),
        "post_optimizer_comm_s": np.asarray(pt.post_s, dtype=np.float64),
        "tail_hidden_s": np.asarray(pt.hidden_s, dtype=np.float64),
        "tail_s": np.asarray(pt.tail_s, dtype=np.float64),
        "dp_comm_s": np.full(n, float(dp_traffic.max()) if p else 0.0),
        "zero_exposed_s": zero_exposed.max(axis=1),
    }
    if _detail:
        out["_graphs"] = graphs
        out["_per_stage"] = per_stage
        out["_fwd"], out["_bwd"], out["_opt"] = f, b, opt
        out["_slowest"] = np.atleast_1d(pt.slowest_stage)
        out["_memory"] = mem
        out["_area"], out["_tdp"] = area, tdp
        out["_p2p_one_s"] = c_p2p
        out["_dp_comm"], out["_dp_post"] = dp_comm, dp_post
        out["_model_flop_total"] = model_flop_total
        out["_v"] = v
    return out


def evaluate_training(spec: Any, hw: HardwareConfig, system: SystemConfig, plan: ParallelPlan,
                      tech: Any, seq: int | None = None, *, dp_overlap: bool = True,
                      tp_overlap: bool = True) -> Evaluation:
    """Evaluate one design on one workload and plan (the ``dse evaluate`` result).

    ``critical_path`` lists markers and the operator names of the slowest pipeline
    device's stage: ``pipeline:fill``, its forward/backward critical path (from the
    device schedule, :func:`critical_path`), ``pipeline:drain``, and the exposed
    communication and optimizer markers.
    """
    from cost_models.designs import DesignBatch

    designs = DesignBatch.from_configs([hw])
    r = evaluate_training_batch(spec, designs, system, plan, tech, seq, dp_overlap=dp_overlap,
                                tp_overlap=tp_overlap, _detail=True)
    graphs: list[Graph] = r["_graphs"]
    p = plan.pp
    slow = int(r["_slowest"][0])
    s = _seq_of(spec, seq)

    # critical path of the slowest device's (first) stage, forward then backward
    path: list[str] = []
    if p > 1:
        path.append("pipeline:fill")
    sc = r["_per_stage"][slow]
    ph = sc.phases
    if ph.fwd is not None:
        path.extend(critical_path(ph.fwd, sc.fwd_step))
    if plan.recompute == "full":
        path.append("recompute:forward")
    elif plan.recompute == "selective" and ph.attn_core:
        path.append("recompute:attention_core")
    if ph.bwd is not None:
        path.extend(critical_path(ph.bwd, sc.bwd_step))
    if p > 1:
        path.append("pipeline:drain")
    if float(r["dp_exposed_s"][0]) > 0:
        path.append("comm:dp_all_reduce")
    if ph.opt is not None:
        path.append("optimizer:step")

    # breakdown: step time by phase (slowest device) and by operator kind
    m = plan.micro_batches
    f = float(r["_fwd"][0, slow])
    b = float(r["_bwd"][0, slow])
    rec = 0.0
    for k in range(slow, len(graphs), p):
        c = r["_per_stage"][k]
        rec += float(np.atleast_1d(backward_with_recompute_s(0.0, c.fwd_layers_s, c.attn_core_s,
                                                             plan.recompute))[0])
    by_kind: dict[str, float] = {}
    by_phase_op: dict[str, float] = {}
    for k in range(slow, len(graphs), p):
        c = r["_per_stage"][k]
        for res, mult in ((c.fwd_step, m), (c.bwd_step, m)):
            if res is None:
                continue
            lat = np.asarray(res.costs.latency_s)[0] * np.asarray(res.costs.count)
            g = c.phases.fwd if res is c.fwd_step else c.phases.bwd
            for i, op in enumerate(g.ops):
                t = float(lat[i]) * mult
                by_kind[op.kind] = by_kind.get(op.kind, 0.0) + t
                by_phase_op[op.phase] = by_phase_op.get(op.phase, 0.0) + t
    by_kind["optimizer"] = by_kind.get("optimizer", 0.0) + float(r["_opt"][0, slow])
    by_phase_op["optimizer"] = float(r["_opt"][0, slow])
    step = float(r["step_time_s"][0])
    tail = float(r["tail_s"][0])
    phases = {  # a partition of the step time (slowest device's compute + pipeline + tail)
        "forward_s": m * f,
        "backward_s": m * (b - rec),
        "recompute_s": m * rec,
        "bubble_s": float(r["bubble_s"][0]),
        "p2p_s": float(r["p2p_s"][0]),
        "tail_s": tail,
    }
    tail_parts = {  # tail = dp_exposed + optimizer + post_optimizer_comm - hidden
        "dp_exposed_s": float(r["dp_exposed_s"][0]) if tail > 0 else 0.0,
        "optimizer_s": float(r["optimizer_s"][0]) if tail > 0 else 0.0,
        "post_optimizer_comm_s": float(r["post_optimizer_comm_s"][0]) if tail > 0 else 0.0,
        "hidden_by_drain_s": float(r["tail_hidden_s"][0]),
    }
    comm = {
        "tp_s": by_kind.get("collective", 0.0),
        "tp_note": "tensor-parallel collectives, inside forward_s/backward_s (blocking)",
        "p2p_s": float(r["p2p_s"][0]),
        "dp_s": float(r["dp_comm_s"][0]),
        "dp_note": "data-parallel gradient reduction (+ ZeRO gathers) per step, before overlap",
        "dp_exposed_s": tail_parts["dp_exposed_s"] + float(r["zero_exposed_s"][0]),
    }
    breakdown = {
        "phase_s": phases,
        "tail_s": tail_parts,
        "comm_s": comm,
        "op_kind_s": by_kind,
        "op_phase_s": by_phase_op,
        "bubble_fraction": float(r["bubble_fraction"][0]),
        "slowest_stage": slow,
        "step_time_s": step,
    }
    mem = r["_memory"]
    area, tdp = r["_area"], r["_tdp"]
    peak = hw.peak_flop_per_s
    extra = {
        "hardware_flop_per_s_per_device": float(r["hardware_flop_per_s_per_device"][0]),
        "mfu": float(r["achieved_flop_per_s_per_device"][0]) / peak,
        "hfu": float(r["hardware_flop_per_s_per_device"][0]) / peak,
        "energy_per_step_total_j": float(r["energy_per_step_total_j"][0]),
        "devices": plan.devices,
        "micro_batches": m,
        "seq": s,
        "p2p_transfer_s": float(r["_p2p_one_s"]),
        "stage_layers": [list(g.meta.get("stage_layers", [])) for g in graphs],
    }
    return Evaluation(
        step_time_s=step,
        samples_per_s=float(r["samples_per_s"][0]),
        achieved_flop_per_s_per_device=float(r["achieved_flop_per_s_per_device"][0]),
        area_mm2=float(r["area_mm2"][0]),
        tdp_w=float(r["tdp_w"][0]),
        energy_per_step_j=float(r["energy_per_step_j"][0]),
        memory_per_device_bytes=float(mem["total"]),
        fits_memory=bool(r["fits_memory"][0]),
        critical_path=tuple(path),
        breakdown=breakdown,
        utilization=float(r["hardware_flop_per_s_per_device"][0]) / peak,
        area_breakdown_mm2={k: float(np.asarray(v)[0]) for k, v in area.items()},
        power_breakdown_w={k: float(np.asarray(v)[0]) for k, v in tdp.items()},
        memory_breakdown_bytes={k: float(v) for k, v in mem.items()},
        extra=extra,
    )
