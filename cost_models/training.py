"""End-to-end distributed training step from costed graph segments (issue 4; issue 11).

The cost models take graphs; they do not build them (``workloads`` does, and
``search.trainstep`` composes the two). A pipeline stage of one tensor-parallel shard is a
sum of **segments**, each a training graph for one micro-batch:

* the *pre* segment (embedding side), on the first stage;
* the *block* — one repetition of a repeated layer (a transformer layer) — run ``L``
  times on a stage of ``L`` layers, one after the other (each layer reads the previous
  one's output), so its time is ``L`` times one repetition's;
* the *post* segment (final norm, head, loss), on the last stage.

Graphs without a repeated block (CNN, RNN, DLRM, ONNX) are one segment per stage.

1. :func:`segment_costs` splits every segment graph by phase (forward + its collectives,
   backward + its collectives, optimizer) and list-schedules each phase graph on the
   design's tensor-core blocks, vector unit and links (:func:`cost_models.evaluate.device_step`,
   operator-level parallelism included), every design and segment at once: graphs of the
   same structure are scheduled in one vectorized call. Collectives are timed by
   :func:`cost_models.network.comm_time_s` on the placed tensor-parallel group.
2. :func:`training_step` adds a pipeline stage's segments (× their multiplicities),
   recomputation (``full``: the layers' forward again; ``selective``: attention's
   ``QKᵀ``, softmax, dropout and ``A·V``; Korthikanti et al. 2022), the pipeline schedule
   (:func:`cost_models.pipeline.step_time_s`), point-to-point activations (``b·s·h`` per
   micro-batch, ``1/t`` slices over the NICs re-gathered over NVLink: Megatron's
   scatter/gather, Narayanan et al. §4.1), data parallelism (gradients of a device's shard,
   2 B/param, all-reduced over the dp group; reduce-scattered and the parameters
   all-gathered after the optimizer with ZeRO-1/2; ZeRO-3 gathers the parameters before
   every forward and backward instead and has no post-optimizer gather), the tied
   word-embedding all-reduce between first and last stage, area and TDP
   (:mod:`cost_models.area`, :mod:`cost_models.power`) and energy.

Reported FLOP rates: ``achieved_flop_per_s_per_device`` counts model FLOPs — the GEMM
FLOPs of forward and backward without recomputation, per device and second, as
Megatron's MFU does (Korthikanti et al. 2022 §6); fused attention counts the score
elements it computes (causal: on or below the diagonal) at ``4·d`` forward and ``8·d``
backward (its recomputed ``QKᵀ`` is not counted, in neither MFU nor HFU);
``hardware_flop_per_s_per_device`` adds the recomputed GEMMs (HFU). ``energy_per_step_j`` is the energy of **one device**
(averaged over the pipeline ranks) for one step: dynamic energy of its operators, link
energy of the bytes it sends, and leakage over the whole step; the cluster total is
``energy_per_step_total_j``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cost_models.contention import beside_s, comm_share, contention_s, nccl_share, overlapped
from cost_models.memory import expert_params, graph_params, local_params
from cost_models.network import (
    collective_time_s,
    group_placement,
    placed_collective_time_s,
)
from cost_models.pipeline import step_time_s
from cost_models.schedule import LEVELS
from dse.types import Graph, ParallelPlan, SystemConfig

__all__ = [
    "GRAD_BYTES",
    "PARAM_BYTES",
    "PhaseGraphs",
    "SegmentCosts",
    "StagePart",
    "critical_path",
    "dp_times",
    "segment_costs",
    "selective_indices",
    "split_phases",
    "training_step",
]

GRAD_BYTES = 2
"""Gradients are all-reduced in 16 bits (Megatron-LM fp16/bf16 training; docs/sources.md,
Megatron-LM)."""
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
    """A training graph split by phase; ``attn_core`` indexes the forward graph's attention
    core (``QKᵀ``, softmax, its dropout, ``A·V``) that selective recomputation re-runs
    (empty with fused attention: no score tensor is kept, the fused backward recomputes
    the scores itself)."""

    fwd: Graph | None
    bwd: Graph | None
    opt: Graph | None
    attn_core: tuple[int, ...]


def split_phases(graph: Graph) -> PhaseGraphs:
    """Split a training graph into forward (+ forward collectives), backward (+ backward
    collectives) and optimizer graphs (memoized on the graph)."""
    memo = graph.derived
    hit = memo.get("cost_models.training.phases")
    if hit is not None:
        return hit
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
    out = PhaseGraphs(fwd=fg, bwd=_subgraph(graph, bwd, "bwd"),
                      opt=_subgraph(graph, opt, "opt"), attn_core=tuple(core))
    memo["cost_models.training.phases"] = out
    return out


def selective_indices(ph: PhaseGraphs, modules: Sequence[str] = ()) -> tuple[int, ...]:
    """Forward-graph indices selective recomputation re-runs: the attention core
    (Korthikanti et al. 2022) when ``modules`` is empty, else the operators of
    Megatron-Core's recompute ``modules`` (:mod:`cost_models.recompute`)."""
    if not modules or ph.fwd is None:
        return ph.attn_core
    from cost_models.recompute import module_op_indices

    key = ("cost_models.training.selective", tuple(sorted(modules)))
    memo = ph.fwd.derived
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = module_op_indices(ph.fwd.ops, modules)
    return hit


# --------------------------------------------------------------------------- segment costs
@dataclass(frozen=True)
class SegmentCosts:
    """Per-micro-batch costs of one segment graph (one tensor-parallel shard) on ``D``
    designs: arrays of shape (D,) in seconds and joules; FLOPs, parameters and bytes are
    design-independent numbers."""

    fwd_s: np.ndarray
    bwd_s: np.ndarray
    opt_s: np.ndarray
    attn_core_s: np.ndarray
    """What selective recomputation re-runs per execution: the attention core, or the
    plan's Megatron-Core recompute modules (:func:`selective_indices`)."""
    fwd_j: np.ndarray
    bwd_j: np.ndarray
    opt_j: np.ndarray
    attn_core_j: np.ndarray
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
    opt_step: Any = None
    hidden_fwd_s: float = 0.0
    """Communication of ``overlap_groups`` in the forward, run under the neighbouring
    micro-batch's computation (:func:`segment_costs`); ``fwd_s`` is at least this."""
    hidden_bwd_s: float = 0.0
    expert_params: float = 0.0
    """Of ``params``, a MoE layer's routed experts (reduced over the expert ranks)."""
    local_params: float = 0.0
    """Of ``params``, model-parallel shards no other device holds (never reduced)."""

    def take(self, rows: np.ndarray) -> SegmentCosts:
        """The same costs for a subset of the designs (row indices)."""
        r = np.asarray(rows)
        kw = {f: getattr(self, f)[r] for f in ("fwd_s", "bwd_s", "opt_s", "attn_core_s",
                                                 "fwd_j", "bwd_j", "opt_j", "attn_core_j")}
        return SegmentCosts(**kw, gemm_flop_fwd=self.gemm_flop_fwd,
                            gemm_flop_bwd=self.gemm_flop_bwd,
                            gemm_flop_attn_core=self.gemm_flop_attn_core, params=self.params,
                            comm_bytes=self.comm_bytes, phases=self.phases,
                            hidden_fwd_s=self.hidden_fwd_s, hidden_bwd_s=self.hidden_bwd_s,
                            expert_params=self.expert_params, local_params=self.local_params)


def _gemm_flop(graph: Graph | None, idx: Sequence[int] | None = None) -> float:
    if graph is None:
        return 0.0
    ops = graph.ops if idx is None else [graph.ops[i] for i in idx]
    from cost_models.attention import model_flop

    return float(sum(op.total_flop for op in ops if op.kind == "gemm")
                 + sum(model_flop(op) * op.count for op in ops if op.kind == "attention"))




_CHUNK_ELEMENTS = 20_000_000
"""Designs × operators × levels that :func:`segment_costs` costs in one call (~160 MB per
cost array)."""


def segment_costs(graphs: Sequence[Graph], designs: Any, tech: Any,
                  comm_times: Sequence[Any] | None = None, *, blocking_comm: bool = False,
                  levels: int = LEVELS, keep_steps: bool = False,
                  overlap_groups: Sequence[str] = (),
                  recompute_modules: Sequence[str] = (),
                  overlap_sms: float = 0.0) -> list[SegmentCosts]:
    """Costs of every segment graph on every design (module docstring, step 1).

    ``comm_times[i]``: the per-operator communication time of ``graphs[i]``
    (:func:`cost_models.network.comm_time_s`; ``None``: free). ``blocking_comm``:
    collectives do not overlap computation (Megatron-LM 2021). ``keep_steps`` keeps each
    phase's :class:`~cost_models.evaluate.DeviceStep` (schedules for reports).
    ``overlap_groups``: collectives of these groups (``"ep"``: the MoE all-to-all) run
    under the computation of the neighbouring micro-batch (batch-level overlap: DeepSeek-V3's
    DualPipe, Megatron-Core's ``--overlap-moe-expert-parallel-comm``): they leave the
    micro-batch's schedule, and each phase takes the longer of its computation and their
    communication. ``recompute_modules``: what selective recomputation re-runs
    (``attn_core_s``; :func:`selective_indices`). ``overlap_sms``: streaming
    multiprocessors that overlapped communication kernels occupy on GPU-like designs
    (``single_stream``; ``vector_cores`` are their SMs): while it runs, the computation
    has ``1 − f`` of the chip, ``f = overlap_sms / SMs`` (DeepEP: 20, Megatron-Core's
    ``moe_deepep_num_sms``; DeepSeek-V3 §3.2.2), so a phase takes
    ``max(H, C + f·min(H, C/(1 − f)))`` for computation ``C`` and communication ``H``.
    """
    from cost_models.area import node_constants
    from cost_models.evaluate import device_steps

    n = len(designs)
    comm = list(comm_times) if comm_times is not None else [None] * len(graphs)
    # the per-operator cost arrays of all graphs are alive together (designs × operators ×
    # levels each): cost a long list of graphs in chunks, so memory stays bounded
    sizes = [n * len(g.ops) * levels for g in graphs]
    if len(graphs) > 1 and sum(sizes) > _CHUNK_ELEMENTS:
        bounds, acc = [0], 0
        for i, size in enumerate(sizes):
            if i > bounds[-1] and acc + size > _CHUNK_ELEMENTS:
                bounds.append(i)
                acc = 0
            acc += size
        bounds.append(len(graphs))
        return [c for a, b in zip(bounds[:-1], bounds[1:]) for c in segment_costs(
            graphs[a:b], designs, tech, comm[a:b], blocking_comm=blocking_comm,
            levels=levels, keep_steps=keep_steps, overlap_groups=overlap_groups,
            recompute_modules=recompute_modules, overlap_sms=overlap_sms)]
    c = node_constants(designs, tech)
    jobs: list[tuple[Graph, Any, bool]] = []
    index: list[tuple[int | None, int | None, int | None]] = []
    phases = []
    hidden: list[list[float]] = []
    for g, ct in zip(graphs, comm):
        ph = split_phases(g)
        phases.append(ph)
        slots: list[int | None] = []
        hid = [0.0, 0.0, 0.0]
        for si, sub in enumerate((ph.fwd, ph.bwd, ph.opt)):
            if sub is None:
                slots.append(None)
                continue
            sub_ct = None
            if ct is not None:
                full = np.asarray(ct, dtype=np.float64)
                pos = g.index
                sub_ct = full[[pos[op.name] for op in sub.ops]]
                if overlap_groups:
                    off = np.array([op.kind == "collective" and op.group in overlap_groups
                                    for op in sub.ops], dtype=bool)
                    if off.any():
                        cnt = np.array([op.count for op in sub.ops], dtype=np.float64)
                        hid[si] = float((sub_ct * cnt)[off].sum())
                        sub_ct = np.where(off, 0.0, sub_ct)
            jobs.append((sub, sub_ct, blocking_comm and sub is not ph.opt))
            slots.append(len(jobs) - 1)
        index.append((slots[0], slots[1], slots[2]))
        hidden.append(hid)
    steps = device_steps(jobs, designs, tech, constants=c, levels=levels)
    zero = np.zeros(n)
    # GPU-like designs: communication kernels run on the SMs (DeepEP's or NCCL's)
    share = comm_share(designs, overlap_sms) if overlap_sms > 0 else zero
    nccl = nccl_share(designs)
    out: list[SegmentCosts] = []
    for g, ph, (fi, bi, oi), hid in zip(graphs, phases, index, hidden):
        fs, bs, os_ = (steps[i] if i is not None else None for i in (fi, bi, oi))

        def ms(st: Any, sub: Graph | None = None) -> np.ndarray:
            if st is None:
                return zero
            t = np.asarray(st.makespan_s, dtype=np.float64)
            return t if sub is None else t + contention_s(st, sub, nccl)

        def ej(st: Any) -> np.ndarray:
            return zero if st is None else np.asarray(st.dynamic_energy_j, dtype=np.float64)

        a_s, a_j = zero, zero
        sel = selective_indices(ph, recompute_modules)
        if fs is not None and ph.fwd is not None and sel:
            idx = np.asarray(sel)
            cnt = np.asarray([ph.fwd.ops[i].count for i in sel], dtype=np.float64)
            lv = np.asarray(fs.level, dtype=np.int64)[:, idx][:, :, None]
            oc = fs.costs
            lat = np.take_along_axis(np.asarray(oc.latency_levels_s)[:, idx], lv, axis=2)[:, :, 0]
            en = np.take_along_axis(np.asarray(oc.energy_levels_j)[:, idx], lv, axis=2)[:, :, 0]
            a_s, a_j = (lat * cnt).sum(axis=1), (en * cnt).sum(axis=1)
        scale = float(g.meta.get("model_flop_scale", 1.0))
        comm_b = float(sum(op.comm_bytes * op.count for op in g.ops if op.kind == "collective"
                           and op.group == "tp"))
        out.append(SegmentCosts(
            fwd_s=overlapped(ms(fs, ph.fwd), hid[0], share),
            bwd_s=overlapped(ms(bs, ph.bwd), hid[1], share),
            opt_s=ms(os_), attn_core_s=a_s, hidden_fwd_s=hid[0], hidden_bwd_s=hid[1],
            fwd_j=ej(fs), bwd_j=ej(bs), opt_j=ej(os_), attn_core_j=a_j,
            # model FLOPs of the real tokens: a sequence padded to a multiple of tp for
            # sequence parallelism computes pad tokens that MFU does not count
            gemm_flop_fwd=_gemm_flop(ph.fwd) * scale, gemm_flop_bwd=_gemm_flop(ph.bwd) * scale,
            gemm_flop_attn_core=_gemm_flop(ph.fwd, sel) if ph.fwd else 0.0,
            params=graph_params(g), comm_bytes=comm_b, phases=ph,
            expert_params=expert_params(g), local_params=local_params(g),
            fwd_step=fs if keep_steps else None, bwd_step=bs if keep_steps else None,
            opt_step=os_ if keep_steps else None))
    return out


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


# --------------------------------------------------------------------------- step
@dataclass(frozen=True)
class StagePart:
    """A segment in a pipeline stage: its costs, how many times it runs per micro-batch
    (``L`` for a block of ``L`` layers) and whether it is a repeated layer (what
    recomputation re-runs: Megatron checkpoints layers, not the embedding, head or loss;
    Narayanan et al. 2021 Eq. 3)."""

    costs: SegmentCosts
    multiplicity: float = 1.0
    layer: bool = False
    name: str = ""


def _recompute(c: SegmentCosts, recompute: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(extra backward time, energy, GEMM FLOPs) of recomputation per execution."""
    if recompute == "full":
        return c.fwd_s, c.fwd_j, c.gemm_flop_fwd
    if recompute == "selective":
        return c.attn_core_s, c.attn_core_j, c.gemm_flop_attn_core
    return np.zeros_like(c.fwd_s), np.zeros_like(c.fwd_j), 0.0


def dp_times(params: Any, plan: ParallelPlan, system: SystemConfig, *, group: str = "dp"
             ) -> tuple[Any, Any, Any]:
    """Data-parallel traffic times (s) of a device holding ``params`` parameters (a number
    or an array, one per pipeline device): ``(gradient reduction, one ZeRO-3 parameter
    gather, post-optimizer gather)``.

    * ZeRO 0: the gradient all-reduce (overlappable with the last backward);
    * ZeRO 1/2: gradient reduce-scatter, then the updated parameters all-gathered after
      the optimizer (ZeRO §5.1–5.2);
    * ZeRO 3 / FSDP: gradient reduce-scatter; parameters all-gathered before each forward
      and each backward (the gather time is returned as the second value, charged per
      micro-batch by :func:`training_step`) and no gather after the optimizer (each
      device updates only its shard; ZeRO §5.3).

    ``group="edp"``: a mixture-of-experts model's expert parameters, reduced over the
    ranks that hold the same experts (``ParallelPlan.expert_grad_group``).
    """
    pr = np.asarray(params, dtype=np.float64)
    zero = np.zeros_like(pr)

    def out(x: Any) -> Any:
        x = np.where(pr > 0, x, 0.0)
        return float(x) if np.ndim(x) == 0 else x

    size = plan.grad_group if group == "dp" else plan.expert_grad_group
    if size <= 1 or not np.any(pr > 0):
        return out(zero), out(zero), out(zero)
    pl = group_placement(group, plan, system)
    grads = pr * GRAD_BYTES
    if plan.zero_stage == 0:
        return out(placed_collective_time_s("all_reduce", grads, pl, system)), out(zero), \
            out(zero)
    rs = placed_collective_time_s("reduce_scatter", grads, pl, system)
    ag = placed_collective_time_s("all_gather", pr * PARAM_BYTES, pl, system)
    if plan.zero_stage >= 3:
        return out(rs), out(ag), out(zero)
    return out(rs), out(zero), out(ag)


def training_step(stages: Sequence[Sequence[StagePart]], designs: Any, system: SystemConfig,
                  plan: ParallelPlan, tech: Any, *, p2p_s: float, p2p_bytes: float,
                  memory_bytes: float, tied_embedding_bytes: float = 0.0,
                  dp_overlap: bool = True, detail: bool = False) -> dict[str, Any]:
    """The training step of ``plan`` on every design (module docstring, step 2).

    ``stages[k]``: the parts of virtual stage ``k`` (``pp·v`` of them in pipeline order;
    device ``i`` runs ``i, i + pp, …``). ``p2p_s``/``p2p_bytes``: one activation transfer
    between stages and the bytes each device sends for it; ``memory_bytes``: per-device
    memory of the plan (design-independent); ``tied_embedding_bytes``: the word-embedding
    gradient first and last stage all-reduce (0: none). ``dp_overlap=False`` exposes the
    whole gradient all-reduce after the backward (Megatron-LM's ``--DDP-impl local`` of
    2021). Returns (D,) arrays: the number contract keys of ``dse evaluate`` and the
    breakdown terms (``bubble_s``, ``p2p_s``, ``dp_exposed_s``, ``optimizer_s`` …).
    """
    from cost_models.area import area_mm2
    from cost_models.power import tdp_w

    n = len(designs)
    p = plan.pp
    v = max(1, len(stages) // p)
    m = plan.micro_batches
    f = np.zeros((n, p))
    b = np.zeros((n, p))
    rec = np.zeros((n, p))
    opt = np.zeros((n, p))
    e_mb = np.zeros((n, p))
    e_opt = np.zeros((n, p))
    params = np.zeros(p)
    experts = np.zeros(p)
    model_flop_shard = 0.0
    hw_extra_flop = 0.0
    zero_div = plan.grad_group if plan.zero_stage >= 1 else 1
    nccl = nccl_share(designs)
    for k, parts in enumerate(stages):
        d = k % p
        for part in parts:
            c, mult = part.costs, float(part.multiplicity)
            f[:, d] += mult * c.fwd_s
            b[:, d] += mult * c.bwd_s
            opt[:, d] += mult * c.opt_s / zero_div
            e_mb[:, d] += mult * (c.fwd_j + c.bwd_j)
            e_opt[:, d] += mult * c.opt_j / zero_div
            params[d] += mult * (c.params - c.expert_params - c.local_params)
            experts[d] += mult * c.expert_params
            model_flop_shard += mult * (c.gemm_flop_fwd + c.gemm_flop_bwd)
            if part.layer:
                xs, xj, xf = _recompute(c, plan.recompute)
                rec[:, d] += mult * xs
                e_mb[:, d] += mult * xj
                hw_extra_flop += mult * xf
    b_total = b + rec

    dp_comm = np.zeros(p)
    dp_post = np.zeros(p)
    dp_traffic = np.zeros(p)
    zero_exposed = np.zeros((n, p))
    red_all, gather_all, post_all = (np.array(np.broadcast_to(np.asarray(x, dtype=np.float64),
                                                              (p,)))
                                     for x in dp_times(params, plan, system))
    if experts.any():  # expert gradients: over the ranks holding the same experts
        for acc, x in zip((red_all, gather_all, post_all),
                          dp_times(experts, plan, system, group="edp")):
            acc += np.broadcast_to(np.asarray(x, dtype=np.float64), (p,))
    for d in range(p):
        red, gather, post = float(red_all[d]), float(gather_all[d]), float(post_all[d])
        dp_comm[d] = red
        dp_post[d] = post
        dp_traffic[d] = red + post
        if plan.zero_stage >= 2 and plan.grad_group > 1:
            # gradients reduce-scattered per micro-batch as they are produced (ZeRO-2/3),
            # ZeRO-3 also gathers the parameters before every forward and backward; what
            # the compute of that phase does not hide is exposed (prefetch overlap)
            add_f = beside_s(f[:, d], gather, nccl)
            add_b = beside_s(b_total[:, d], red + gather, nccl)
            f[:, d] += add_f
            b_total[:, d] += add_b
            zero_exposed[:, d] = m * (add_f + add_b)
            dp_traffic[d] = m * (red + 2 * gather) + post
            dp_comm[d] = 0.0
    if tied_embedding_bytes > 0 and p > 1:
        t_emb = float(collective_time_s("all_reduce", tied_embedding_bytes, 2,
                                        system.inter_node_bw_bytes_per_s,
                                        system.inter_node_latency_s, "switch"))
        dp_post[0] += t_emb
        dp_post[p - 1] += t_emb

    pt = step_time_s(f, b_total, np.full(n, p2p_s), plan, dp_comm_s=dp_comm,
                     dp_post_s=dp_post, optimizer_s=opt, dp_overlap=dp_overlap,
                     comm_share=nccl)
    step = np.asarray(pt.step_time_s, dtype=np.float64)
    area = area_mm2(designs, tech)
    tdp = tdp_w(designs, tech)
    hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
    devices = plan.devices
    model_flop_total = model_flop_shard * plan.tp * plan.cp * plan.dp * m
    hw_flop_total = (model_flop_shard + hw_extra_flop) * plan.tp * plan.cp * plan.dp * m
    link_j = float(getattr(tech, "link_energy_j_per_byte", 0.0))
    dp_bytes = params * GRAD_BYTES * 2.0 * (plan.grad_group - 1) / plan.grad_group
    sent = (2.0 * m * v * p2p_bytes if p > 1 else 0.0) + dp_bytes
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
        "memory_per_device_bytes": np.full(n, float(memory_bytes)),
        "fits_memory": float(memory_bytes) <= hbm,
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
    if detail:
        out["_fwd"], out["_bwd"], out["_rec"], out["_opt"] = f, b_total, rec, opt
        out["_slowest"] = np.atleast_1d(pt.slowest_stage)
        out["_area"], out["_tdp"] = area, tdp
        out["_dp_comm"], out["_dp_post"] = dp_comm, dp_post
        out["_model_flop_total"] = model_flop_total
        out["_v"] = v
    return out


@dataclass(frozen=True)
class StepInputs:
    """Design-independent inputs of :func:`training_step` for one plan (built by the
    caller that knows the workload): per virtual stage the keys of its segments and their
    multiplicities, and the plan's p2p, memory and tied-embedding figures."""

    stages: tuple[tuple[tuple[Any, float, bool], ...], ...]
    p2p_bytes: float
    p2p_s: float
    memory_bytes: float
    memory: Mapping[str, float] = field(default_factory=dict)
    tied_embedding_bytes: float = 0.0
