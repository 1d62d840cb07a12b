"""Single-device performance and energy of a training-step graph.

Three entry points (docs/architecture.md, "cost_models (issue 3)"):

* :func:`op_costs` — per-operator latency, bound and energy for ``D`` designs at once
  (``D × O`` arrays);
* :func:`device_step` — the operator DAG scheduled on each design's tensor-core,
  vector-core and link resources, vectorized over designs: step time (makespan), energy,
  busy time per unit;
* :func:`evaluate_device` — the scalar reference of both for one design: the schedule
  (start/end of every operator), the critical path, breakdowns by phase, kind and bound.
  Tests check ``device_step == evaluate_device`` on random designs and graphs.

Operator model (all times in seconds, per execution of the operator)
--------------------------------------------------------------------
**GEMM** (unit ``tc``; all tensor cores work on it, intra-operator parallelism). For
``batch`` independent ``m×k·k×n`` GEMMs on ``p`` tensor cores of ``R×C``:

* compute cycles = ``min(split, serial)`` where ``split`` runs the batch in parallel
  groups — ``ceil(batch/p)·cc(m,k,n)`` if ``batch >= p``, else every GEMM on
  ``floor(p/batch)`` cores (``systolic.gemm_cycles_multi_core``) — and ``serial`` runs the
  GEMMs one after another, each split over all ``p`` cores; ``cc`` is
  ``systolic.compute_cycles`` (SCALE-Sim's count). Both options are non-increasing in
  ``p``, so more tensor cores are never slower.
* HBM bytes = ``batch · systolic.dram_traffic_bytes(m,k,n,R,C,dataflow, sram_bytes,
  dtype_bytes)`` with the chip's whole on-chip SRAM (per-core buffers + global buffer):
  the tiling SRAM capacity allows decides the re-reads (the spill). Operands use the
  design's datatype.
* on-chip fabric ("sram") bytes = the same traffic computed with only the per-core SRAMs
  (``tensor_cores · sram_per_core_bytes``): what the cores fetch from the shared level
  over the global-buffer network of ``global_buffer_bw_bytes_per_cycle``.
* latency = max(compute, HBM bytes / HBM bandwidth, fabric bytes / fabric bandwidth); the
  largest term names the bound: ``tensor``, ``hbm`` or ``sram``.

**Vector ops** (unit ``vc``; all vector cores): cycles = ``ceil(elements / (lanes·cores)) ·
pe_cycles`` (:mod:`cost_models.vector`); HBM bytes = ``bytes_in + bytes_out +
bytes_weight`` of the operator, minus fused inputs, plus spills:

* *fusion rule*: an input produced by a GEMM that is a direct predecessor of the vector op
  is read from on-chip SRAM instead of HBM when the GEMM's output tensor (its
  ``bytes_out``) fits in the chip's SRAM (the GEMM still writes it to HBM, where backward
  needs it); saved bytes are capped at the vector op's ``bytes_in``;
* *spill rule*: two-pass ops (``softmax``, ``norm``, ``reduction``, ``loss``: statistics
  pass, then normalization pass) whose input does not fit in SRAM read it twice.

latency = max(compute, HBM bytes / HBM bandwidth); bound ``vector`` or ``hbm``.

**Communication** (``collective``, ``sendrecv``; unit ``link``): latency from the
``comm_time_s`` argument (the network model, :mod:`cost_models.network`, computes it);
links are a separate resource, so communication overlaps computation. Bound ``link``.

**Energy** per execution: MACs · E_MAC + SRAM bytes (``systolic.sram_accesses``, operands
at ``dtype_bytes``, partial sums at the accumulator width) · E_SRAM(per-core size) +
fabric bytes · E_SRAM(global buffer) + HBM bytes · E_HBM + vector lane-operations ·
E_vector + fused bytes · E_SRAM + communication bytes · E_link (:mod:`cost_models.power`
documents the constants). A step adds leakage power × step time.

Schedule
--------
Three resources per device — tensor cores, vector cores, links — each runs one operator
at a time (an operator uses all units of its type). A fixed-priority list schedule: the
operators are taken in a priority order and each starts when its predecessors have
finished and its resource is free (``start = max(max(end of predecessors), free[unit])``),
so each resource runs its operators in priority order. Two topological orders are tried
and the shorter schedule kept: the *critical-path* order (decreasing bottom level, the
longest path from an operator to the end of the DAG, computed on a reference roofline
— TPU v4's 275 TFLOP/s, 1.2 TB/s and 270 GB/s ICI —, ties in stored order) and the stored
order. The orders depend on the graph only, not on the design: then every start time is a
max-plus expression of operator durations, so giving a design more of any resource can
never lengthen its step (a design-dependent priority would allow Graham's list-scheduling
anomalies; we found them in 9 of 1,500 random cases, up to +45 %), and the schedule
vectorizes over designs as column operations. HBM is shared by the units running at the
same time, so the step time is at least all its HBM bytes at full bandwidth
(``hbm_floor_s``); the step time is the larger of the two.

*Multiplicity*: an operator with ``count = c`` (a block repeated ``c`` times, one after the
other) is scheduled once with duration ``c × latency``. This is exact when the repetitions
run back to back — each starts when the previous ends, as for transformer blocks chained
through their residual stream: the schedule of ``c`` sequential copies of a block is ``c``
times the schedule of one copy, and a list schedule scales linearly when all durations of
the block are scaled by ``c``. It ignores overlap between consecutive repetitions (e.g.
block i's weight-gradient GEMMs running beside block i+1's backward), so it is an upper
bound on the step time of such overlapping schedules.

>>> from dse.types import DATAFLOWS, Graph, HardwareConfig, Operator
>>> from cost_models.technology import load_technology
>>> g = Graph(name="toy", ops=(
...     Operator(name="fc", kind="gemm", phase="fwd", m=512, k=512, n=512,
...              flop=2.0 * 512**3, bytes_out=512 * 512 * 2.0),
...     Operator(name="act", kind="activation", phase="fwd", vector_op="relu",
...              elements=512 * 512, bytes_in=512 * 512 * 2.0, bytes_out=512 * 512 * 2.0)),
...     edges=(("fc", "act"),))
>>> hw = HardwareConfig(name="x", tensor_cores=2, array_rows=64, array_cols=64,
...                     vector_cores=1, vector_lanes=16, freq_hz=1e9,
...                     hbm_bw_bytes_per_s=1e11, hbm_bytes=8e9)
>>> r = evaluate_device(g, hw, load_technology(7))
>>> [(rec.name, rec.bound) for rec in r.records]
[('fc', 'tensor'), ('act', 'vector')]
>>> r.critical_path
('fc', 'act')
>>> from cost_models.designs import DesignBatch
>>> s = device_step(g, DesignBatch.from_configs([hw]), load_technology(7))
>>> bool(np.isclose(s.makespan_s[0], r.makespan_s))
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from cost_models import systolic
from cost_models.area import node_constants
from cost_models.designs import DesignBatch
from cost_models.power import tdp_w
from cost_models.technology import Technology
from cost_models.vector import pe_cycles, pe_cycles_array, unknown_keys
from dse.errors import ConfigError
from dse.types import DATAFLOWS, Graph, HardwareConfig

__all__ = [
    "BOUNDS",
    "UNITS",
    "DeviceResult",
    "DeviceStep",
    "OpCosts",
    "OpRecord",
    "device_step",
    "evaluate_device",
    "op_costs",
]

UNITS: tuple[str, ...] = ("tc", "vc", "link")
"""Resources of a device: tensor cores, vector cores, chip-to-chip links."""
BOUNDS: tuple[str, ...] = ("tensor", "vector", "sram", "hbm", "link")
"""What bounds an operator's latency (index = ``bound_code``)."""

_TC, _VC, _LINK = 0, 1, 2
_B_TENSOR, _B_VECTOR, _B_SRAM, _B_HBM, _B_LINK = 0, 1, 2, 3, 4
_COMM_KINDS = ("collective", "sendrecv")
_TWO_PASS_KINDS = ("softmax", "norm", "reduction", "loss")


# ------------------------------------------------------------------------ static graph plan
@dataclass(frozen=True, eq=False)
class _Plan:
    """Design-independent arrays of a graph, computed once per graph."""

    names: tuple[str, ...]
    unit_code: np.ndarray
    count: np.ndarray
    gemm: np.ndarray
    vec: np.ndarray
    comm: np.ndarray
    gemm_shapes: np.ndarray
    """(U, 4) distinct (m, k, n, batch) rows of the GEMMs."""
    gemm_inverse: np.ndarray
    """Position of each GEMM's shape in ``gemm_shapes``."""
    pe: np.ndarray
    elements: np.ndarray
    bytes_io: np.ndarray
    bytes_in: np.ndarray
    two_pass: np.ndarray
    fuse_pairs_vec: np.ndarray
    """Position (in ``vec``) of the consumer of each GEMM -> vector fusion candidate."""
    fuse_pairs_bytes: np.ndarray
    comm_bytes: np.ndarray
    preds: np.ndarray
    """(O, max preds) predecessor indices, padded with O (a sentinel that ends at 0)."""
    succs: np.ndarray
    flop: np.ndarray
    unknown: tuple[str, ...]
    orders: tuple[np.ndarray, ...]
    """Design-independent priority orders tried by the scheduler (see :func:`_orders`)."""


# Reference machine of the scheduling priorities: TPU v4's published peak, HBM bandwidth and
# ICI injection bandwidth (cost_models/data/presets/tpuv4.yaml) — a balanced training chip.
_REF_FLOP_PER_S = 275e12
_REF_HBM_BYTES_PER_S = 1.2e12
_REF_LINK_BYTES_PER_S = 270e9


def _orders(graph: Graph, unit: np.ndarray) -> tuple[np.ndarray, ...]:
    """Critical-path (bottom-level) order on a reference roofline, and the stored order.

    The reference duration of an operator is ``count · max(flop / 275 TFLOP/s, bytes /
    1.2 TB/s)`` (communication: ``comm_bytes / 270 GB/s``). Bottom levels on these
    durations give the critical-path priority; ties keep the stored topological order, so
    the order is topological. Because the orders do not depend on the design, every
    operator's start and end time is a max-plus function of the durations: the step time
    can only fall when a design gets more of any resource (no list-scheduling anomaly).
    """
    ops = graph.ops
    o = len(ops)
    ref = np.empty(o)
    for j, op in enumerate(ops):
        if unit[j] == _LINK:
            ref[j] = op.comm_bytes / _REF_LINK_BYTES_PER_S
        else:
            ref[j] = max(op.flop / _REF_FLOP_PER_S, op.bytes_total / _REF_HBM_BYTES_PER_S)
        ref[j] *= op.count
    bl = np.zeros(o)
    for j in range(o - 1, -1, -1):
        bl[j] = ref[j] + max((bl[s] for s in graph.succ_indices[j]), default=0.0)
    critical = np.lexsort((np.arange(o), -bl)).astype(np.int64)
    stored = np.arange(o, dtype=np.int64)
    if np.array_equal(critical, stored):
        return (stored,)
    return (critical, stored)


@lru_cache(maxsize=64)
def _plan(graph: Graph) -> _Plan:
    cols = graph.columns
    kinds = cols["kind"]
    o = len(graph.ops)
    unit = np.where(kinds == "gemm", _TC,
                    np.where(np.isin(kinds, _COMM_KINDS), _LINK, _VC)).astype(np.int64)
    gemm = np.flatnonzero(unit == _TC)
    vec = np.flatnonzero(unit == _VC)
    comm = np.flatnonzero(unit == _LINK)
    pe = pe_cycles_array(cols["vector_op"][vec], cols["phase"][vec], kinds[vec],
                         cols["flop"][vec], cols["elements"][vec])
    vec_pos = {int(j): i for i, j in enumerate(vec)}
    pairs_v, pairs_b = [], []
    for j in vec:
        for p in graph.pred_indices[j]:
            if unit[p] == _TC:
                pairs_v.append(vec_pos[int(j)])
                pairs_b.append(float(cols["bytes_out"][p]))
    maxp = max((len(p) for p in graph.pred_indices), default=0)
    preds = np.full((o, max(maxp, 1)), o, dtype=np.int64)
    for i, ps in enumerate(graph.pred_indices):
        preds[i, :len(ps)] = ps
    maxs = max((len(s) for s in graph.succ_indices), default=0)
    succs = np.full((o, max(maxs, 1)), o, dtype=np.int64)
    for i, ss in enumerate(graph.succ_indices):
        succs[i, :len(ss)] = ss
    unknown = tuple(unknown_keys(zip(cols["vector_op"][vec], kinds[vec])))
    mknb = np.stack([cols[x][gemm] for x in ("m", "k", "n", "batch")], axis=1).astype(np.int64)
    shapes, inverse = np.unique(mknb.reshape(-1, 4), axis=0, return_inverse=True)
    return _Plan(
        names=tuple(cols["name"]), unit_code=unit, count=cols["count"].astype(np.float64),
        gemm=gemm, vec=vec, comm=comm,
        gemm_shapes=shapes.reshape(-1, 4), gemm_inverse=np.asarray(inverse).reshape(-1),
        pe=pe, elements=cols["elements"][vec].astype(np.float64),
        bytes_io=(cols["bytes_in"] + cols["bytes_out"] + cols["bytes_weight"])[vec],
        bytes_in=cols["bytes_in"][vec].astype(np.float64),
        two_pass=np.isin(kinds[vec], _TWO_PASS_KINDS),
        fuse_pairs_vec=np.asarray(pairs_v, dtype=np.int64),
        fuse_pairs_bytes=np.asarray(pairs_b, dtype=np.float64),
        comm_bytes=cols["comm_bytes"][comm].astype(np.float64),
        preds=preds, succs=succs, flop=cols["flop"].astype(np.float64), unknown=unknown,
        orders=_orders(graph, unit),
    )


# ------------------------------------------------------------------------------ op costs
@dataclass(frozen=True, eq=False)
class OpCosts:
    """Per-operator costs of ``D`` designs (rows) × ``O`` operators (columns).

    Times in seconds and energies in joules are **per execution**; multiply by ``count``
    for the step. ``unit[j]`` is ``"tc"``, ``"vc"`` or ``"link"``; ``bound_code`` indexes
    :data:`BOUNDS`. ``latency_one_unit_s`` is the latency on a single tensor or vector core
    (for schedulers that choose intra-operator parallelism, e.g. the ILP).
    """

    names: tuple[str, ...]
    unit: tuple[str, ...]
    unit_code: np.ndarray
    count: np.ndarray
    latency_s: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    hbm_s: np.ndarray
    sram_s: np.ndarray
    hbm_bytes: np.ndarray
    energy_j: np.ndarray
    bound_code: np.ndarray
    latency_one_unit_s: np.ndarray
    fused_bytes: np.ndarray
    unknown_vector_ops: tuple[str, ...] = ()

    def bound(self, d: int = 0) -> list[str]:
        """Bound names of design ``d``'s operators."""
        return [BOUNDS[int(c)] for c in self.bound_code[d]]


def _comm_matrix(plan: _Plan, d: int, comm_time_s: Any) -> np.ndarray:
    """(D, n_comm) communication latencies from the ``comm_time_s`` argument."""
    nc = len(plan.comm)
    out = np.zeros((d, nc))
    if comm_time_s is None or nc == 0:
        return out
    if isinstance(comm_time_s, Mapping):
        pos = {plan.names[j]: i for i, j in enumerate(plan.comm)}
        for name, v in comm_time_s.items():
            if name not in pos:
                if name in plan.names:
                    continue  # a time for a non-communication op is ignored
                raise ConfigError(f"comm_time_s names {name!r}, which is not an operator of "
                                  f"the graph; communication ops: "
                                  f"{', '.join(plan.names[j] for j in plan.comm)}")
            out[:, pos[name]] = np.broadcast_to(np.asarray(v, dtype=np.float64), (d,))
    else:
        arr = np.asarray(comm_time_s, dtype=np.float64)
        o = len(plan.names)
        if arr.shape == (o,):
            out[:] = arr[plan.comm][None, :]
        elif arr.shape == (d, o):
            out[:] = arr[:, plan.comm]
        else:
            raise ConfigError(f"comm_time_s has shape {arr.shape}; expected ({o},) or "
                              f"({d}, {o}), or a mapping from op name to seconds")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ConfigError("comm_time_s must be finite and >= 0 seconds")
    return out




_LOOP_ORDERS = ("ws", "is", "os")
"""Loop orders of ``systolic.dram_traffic_bytes`` searched for the DRAM traffic; the one that
is usually best (weights read once) first, so that it bounds the search of the others."""
_BLOCK_BASE = 8
"""Candidate row-block counts and virtual widths are powers of this base."""
_BLOCKS_M = tuple(_BLOCK_BASE ** i for i in range(7))
"""Candidate numbers of row blocks ``s`` (1 .. 8^6 = 262,144)."""
_WIDTHS = tuple(_BLOCK_BASE ** i for i in range(6))
"""Candidate virtual widths ``q`` in array widths (1 .. 8^5)."""


def _blocked_traffic(shapes: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     orders: tuple[str, ...], dtb: np.ndarray, sram: np.ndarray) -> np.ndarray:
    """Off-chip bytes of ``batch`` GEMMs under the best loop order and blocking, (d, U, L)
    for the ``L`` SRAM capacities ``sram`` (d, L) (e.g. the whole chip's and the cores' own).

    ``orders`` are the loop orders of ``systolic.dram_traffic_bytes`` to try (its
    ``dataflow`` argument: which operand's tiles stay in SRAM); each is searched with the
    best found so far as the bound, so later orders are pruned harder.

    ``systolic.dram_traffic_bytes`` models one pass of SCALE-Sim's loop nest over the whole
    GEMM, where an operand is either resident or re-read in full. A compiler blocks the
    GEMM to fit its SRAM; we search two blockings on top of that model:

    * ``s`` row blocks: the GEMM is run as ``s`` sub-GEMMs of ``ceil(m/s)`` rows (each costs
      the model's traffic, so the right operand is re-read once per block);
    * virtual width ``q``: each sub-GEMM is tiled as on a ``rows × (cols·q)`` array — ``q``
      column folds in flight at once (on several cores side by side or one after the
      other), sharing each pass of the row-streamed operand; the model decides whether the
      wider tiles still fit.

    ``s`` and ``q`` range over powers of :data:`_BLOCK_BASE` (``s <= m``; ``q`` until the
    virtual width spans the column-mapped dimension); the least traffic is taken. The
    search of a pair stops once it reaches the compulsory traffic ``(mk + kn + mn)·dtype``,
    or once the compulsory traffic of ``s`` blocks, ``s·(m_b·k + k·n + m_b·n)·dtype``
    (increasing in ``s``; the model never goes below it), exceeds the best found: both
    are exact, they skip only candidates that cannot win. The candidate set depends only on
    the shapes and the array, and the model's traffic is non-increasing in SRAM, so the
    result is non-increasing in SRAM.
    """
    d, u = len(rows), len(shapes)
    nl = sram.shape[1]
    rep = u * nl
    mm = np.tile(np.repeat(shapes[:, 0], nl), d)
    kk = np.tile(np.repeat(shapes[:, 1], nl), d)
    nn = np.tile(np.repeat(shapes[:, 2], nl), d)
    bb = np.tile(np.repeat(shapes[:, 3], nl), d).astype(np.float64)
    rr = np.repeat(rows, rep)
    cc = np.repeat(cols, rep)
    ww = np.repeat(dtb, rep)
    ss = np.tile(sram, (1, u)).ravel()          # (design, shape, level) order
    compulsory = (mm * kk + kk * nn + mm * nn) * ww
    best = np.full(mm.shape, np.inf)
    qs = np.asarray(_WIDTHS, dtype=np.int64)
    for df in orders:
        act = np.flatnonzero(best > compulsory * (1.0 + 1e-12))  # not yet at compulsory
        for s in _BLOCKS_M:
            act = act[mm[act] >= s]
            # s blocks cost at least their compulsory traffic, which grows with s: a pair
            # whose best is already below it cannot improve at this or any larger s
            mb = -(-mm[act] // s)
            lower = s * (mb * kk[act] + kk[act] * nn[act] + mb * nn[act]) * ww[act]
            keep = lower <= best[act] * (1.0 + 1e-9)
            act, mb = act[keep], mb[keep]
            if not len(act):
                break
            width = mb if df == "is" else nn[act]
            # all useful widths of every active pair in one call: q = 1, or the previous
            # width (q / base array widths) does not span the column-mapped dimension yet
            useful = (qs[None, :] == 1) | (cc[act][:, None] * (qs[None, :] // _BLOCK_BASE)
                                           < width[:, None])
            pos, qi = np.nonzero(useful)
            idx = act[pos]
            t = s * systolic.dram_traffic_bytes(mb[pos], kk[idx], nn[idx], rr[idx],
                                                cc[idx] * qs[qi], df, ss[idx], ww[idx])
            np.minimum.at(best, idx, t)
            act = act[best[act] > compulsory[act] * (1.0 + 1e-12)]
    return (bb * best).reshape(d, u, nl)


def _blocked_traffic_scalar(m: int, k: int, n: int, b: int, rows: int, cols: int,
                            orders: tuple[str, ...], dtb: float, sram: float) -> float:
    """:func:`_blocked_traffic` for one GEMM, one design and one SRAM (plain Python loops)."""
    compulsory = (m * k + k * n + m * n) * dtb
    best = math.inf
    for df in orders:
        for s in _BLOCKS_M:
            if best <= compulsory * (1.0 + 1e-12) or s > m:
                break
            mb = -(-m // s)
            if s * (mb * k + k * n + mb * n) * dtb > best * (1.0 + 1e-9):
                break  # the compulsory traffic of s blocks already exceeds the best
            width = mb if df == "is" else n
            for q in _WIDTHS:
                if q > 1 and cols * (q // _BLOCK_BASE) >= width:
                    break
                best = min(best, s * float(systolic.dram_traffic_bytes(
                    mb, k, n, rows, cols * q, df, sram, dtb)))
    return b * best


def _gemm_traffic(shapes: np.ndarray, rows: np.ndarray, cols: np.ndarray, dtb: np.ndarray,
                  sram_total: np.ndarray, sram_core: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(HBM bytes, fabric bytes), each (d, U), of the GEMM shapes on every design.

    The least :func:`_blocked_traffic` over the three loop orders of
    ``systolic.dram_traffic_bytes`` (``os``, ``ws``, ``is``), with the chip's SRAM (HBM
    bytes) and with the per-core SRAMs only (fabric bytes). The order of the DRAM → SRAM
    loops is a mapping choice of its own, independent of the array's dataflow (Timeloop and
    ZigZag give every memory level its own temporal loop order); the array's dataflow sets
    the compute cycles and the SRAM accesses. The traffic depends on a design only through
    ``(rows, cols, dtype_bytes, SRAM bytes)``; it is computed once per distinct key (designs
    of a grid share most keys).
    """
    d = len(rows)
    keys = np.stack([np.concatenate([rows, rows]).astype(np.float64),
                     np.concatenate([cols, cols]).astype(np.float64),
                     np.concatenate([dtb, dtb]).astype(np.float64),
                     np.concatenate([sram_total, sram_core]).astype(np.float64)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    t = _blocked_traffic(shapes, uniq[:, 0].astype(np.int64), uniq[:, 1].astype(np.int64),
                         _LOOP_ORDERS, uniq[:, 2], uniq[:, 3:4])[:, :, 0]
    return t[inverse[:d]], t[inverse[d:]]


def _gemm_costs(shapes: np.ndarray, rows: np.ndarray, cols: np.ndarray, df: str,
                p: np.ndarray) -> dict[str, np.ndarray]:
    """GEMM compute cycles and SRAM accesses for designs sharing one dataflow.

    ``shapes`` is (U, 4) rows of (m, k, n, batch); the per-design arrays have shape (d,).
    Returns (d, U) arrays: ``cycles`` (multi-core compute), ``cc`` (one core, one GEMM),
    ``operand_sram_words`` (A and B reads) and ``psum_sram_words`` (C writes) per GEMM.
    """
    m, k, n, b = (shapes[None, :, i] for i in range(4))
    r, c, pp = rows[:, None], cols[:, None], p[:, None]
    cc = np.asarray(systolic.compute_cycles(m, k, n, r, c, df), dtype=np.float64)
    grouped = np.where(
        b >= pp, np.ceil(b / pp) * cc,
        np.asarray(systolic.gemm_cycles_multi_core(m, k, n, r, c, df, np.maximum(pp // b, 1)),
                   dtype=np.float64))
    serial = b * np.asarray(systolic.gemm_cycles_multi_core(m, k, n, r, c, df, pp),
                            dtype=np.float64)
    acc = systolic.sram_accesses(m, k, n, r, c, df)
    return {"cycles": np.minimum(grouped, serial), "cc": cc,
            "operand_sram_words": np.asarray(acc["ifmap_sram_reads"] + acc["filter_sram_reads"],
                                             dtype=np.float64),
            "psum_sram_words": np.asarray(acc["ofmap_sram_writes"], dtype=np.float64)}


def op_costs(graph: Graph, designs: DesignBatch, tech: Technology,
             comm_time_s: Any = None, *,
             constants: dict[str, np.ndarray] | None = None) -> OpCosts:
    """Latency, bound and energy of every operator of ``graph`` on every design.

    ``comm_time_s``: ``None`` (communication costs nothing), a mapping from communication
    op name to seconds (scalar or one value per design), or an array of shape ``(O,)`` or
    ``(D, O)`` (only the communication columns are used). ``constants`` may pass a
    precomputed :func:`cost_models.area.node_constants` (hot loops).
    """
    if not isinstance(designs, DesignBatch):
        raise ConfigError(f"op_costs needs a DesignBatch, got {type(designs).__name__}")
    plan = _plan(graph)
    c = node_constants(designs, tech) if constants is None else constants
    d, o = len(designs), len(plan.names)
    f = designs.freq_hz
    hbm_bw = designs.hbm_bw_bytes_per_s * designs.hbm_efficiency  # sustained bandwidth
    sram_total = designs.sram_bytes.astype(np.float64)
    sram_core = (designs.tensor_cores * designs.sram_per_core_bytes).astype(np.float64)
    fabric_bw = designs.global_buffer_bw_bytes_per_cycle * f
    e_fabric = np.where(designs.global_buffer_bytes > 0, c["global_buffer_energy_j_per_byte"],
                        c["sram_core_energy_j_per_byte"])

    latency = np.zeros((d, o))
    compute = np.zeros((d, o))
    memory = np.zeros((d, o))
    hbm_s = np.zeros((d, o))
    sram_s = np.zeros((d, o))
    hbm_bytes = np.zeros((d, o))
    energy = np.zeros((d, o))
    bound = np.zeros((d, o), dtype=np.int8)
    one_unit = np.zeros((d, o))
    fused = np.zeros((d, o))

    # ---- GEMMs (costed once per distinct shape, per dataflow group) ----------------------
    g = plan.gemm
    if len(g):
        shapes, inv = plan.gemm_shapes, plan.gemm_inverse
        u = len(shapes)
        parts = {key: np.empty((d, u)) for key in ("cycles", "cc", "operand_sram_words",
                                                     "psum_sram_words")}
        dtb_all = designs.dtype_bytes.astype(np.float64)
        dfc = designs.dataflow_code
        for code, name in enumerate(DATAFLOWS):
            idx = np.flatnonzero(dfc == code)
            if not len(idx):
                continue
            res = _gemm_costs(shapes, designs.array_rows[idx], designs.array_cols[idx], name,
                              designs.tensor_cores[idx])
            for key, val in res.items():
                parts[key][idx] = val
        parts["hbm_bytes"], parts["fabric_bytes"] = _gemm_traffic(
            shapes, designs.array_rows, designs.array_cols, dtb_all, sram_total, sram_core)
        b = shapes[None, :, 3].astype(np.float64)
        mkn = (shapes[:, 0] * shapes[:, 1] * shapes[:, 2]).astype(np.float64)[None, :]
        fcol = f[:, None]
        eff = designs.matmul_efficiency[:, None]
        t_comp = parts["cycles"] / (fcol * eff)
        hb, fb = parts["hbm_bytes"], parts["fabric_bytes"]
        t_hbm = hb / hbm_bw[:, None]
        t_fab = fb / fabric_bw[:, None]
        t_mem = np.maximum(t_hbm, t_fab)
        lat = np.maximum(t_comp, t_mem)
        bd = np.where(t_comp >= t_mem, _B_TENSOR, np.where(t_hbm >= t_fab, _B_HBM, _B_SRAM))
        sram_b = b * (parts["operand_sram_words"] * dtb_all[:, None]
                      + parts["psum_sram_words"] * c["accumulator_bytes"][:, None])
        en = (b * mkn * c["mac_energy_j"][:, None]
              + sram_b * c["sram_core_energy_j_per_byte"][:, None]
              + fb * e_fabric[:, None] + hb * c["hbm_energy_j_per_byte"][:, None])
        t_one = np.maximum(b * parts["cc"] / (fcol * eff), t_mem)
        latency[:, g], compute[:, g], memory[:, g] = lat[:, inv], t_comp[:, inv], t_mem[:, inv]
        hbm_s[:, g], sram_s[:, g] = t_hbm[:, inv], t_fab[:, inv]
        hbm_bytes[:, g], energy[:, g] = hb[:, inv], en[:, inv]
        bound[:, g] = bd[:, inv]
        one_unit[:, g] = t_one[:, inv]

    # ---- vector ops ---------------------------------------------------------------------
    v = plan.vec
    if len(v):
        lanes = (designs.vector_cores * designs.vector_lanes).astype(np.float64)
        pe = plan.pe[None, :].astype(np.float64)
        cyc = np.ceil(plan.elements[None, :] / lanes[:, None]) * pe
        t_comp = cyc / f[:, None]
        saved = np.zeros((d, len(v)))
        if len(plan.fuse_pairs_vec):
            fits = plan.fuse_pairs_bytes[None, :] <= sram_total[:, None]
            contrib = np.where(fits, plan.fuse_pairs_bytes[None, :], 0.0)
            for i, j in enumerate(plan.fuse_pairs_vec):
                saved[:, j] += contrib[:, i]
            saved = np.minimum(saved, plan.bytes_in[None, :])
        spill = np.where(plan.two_pass[None, :] & (plan.bytes_in[None, :] > sram_total[:, None]),
                         plan.bytes_in[None, :], 0.0)
        hb = plan.bytes_io[None, :] - saved + spill
        t_hbm = hb / hbm_bw[:, None]
        lat = np.maximum(t_comp, t_hbm)
        en = (plan.elements[None, :] * pe * c["vector_op_energy_j"][:, None]
              + hb * c["hbm_energy_j_per_byte"][:, None]
              + saved * c["sram_core_energy_j_per_byte"][:, None])
        one_cyc = np.ceil(plan.elements[None, :] / designs.vector_lanes[:, None]) * pe
        latency[:, v], compute[:, v], memory[:, v] = lat, t_comp, t_hbm
        hbm_s[:, v], hbm_bytes[:, v], energy[:, v] = t_hbm, hb, en
        bound[:, v] = np.where(t_comp >= t_hbm, _B_VECTOR, _B_HBM)
        one_unit[:, v] = np.maximum(one_cyc / f[:, None], t_hbm)
        fused[:, v] = saved

    # ---- communication ------------------------------------------------------------------
    cm = plan.comm
    if len(cm):
        t = _comm_matrix(plan, d, comm_time_s)
        latency[:, cm] = t
        memory[:, cm] = t
        one_unit[:, cm] = t
        bound[:, cm] = _B_LINK
        energy[:, cm] = plan.comm_bytes[None, :] * c["link_energy_j_per_byte"][:, None]

    for a in (latency, compute, memory, hbm_s, sram_s, hbm_bytes, energy, bound, one_unit,
              fused):
        a.setflags(write=False)
    return OpCosts(names=plan.names, unit=tuple(UNITS[u] for u in plan.unit_code),
                   unit_code=plan.unit_code, count=plan.count, latency_s=latency,
                   compute_s=compute, memory_s=memory, hbm_s=hbm_s, sram_s=sram_s,
                   hbm_bytes=hbm_bytes, energy_j=energy, bound_code=bound,
                   latency_one_unit_s=one_unit, fused_bytes=fused,
                   unknown_vector_ops=plan.unknown)


# ---------------------------------------------------------------------------- device step
@dataclass(frozen=True, eq=False)
class DeviceStep:
    """One training step (the graph) on each of ``D`` designs.

    ``makespan_s`` (D,) step time; ``energy_j`` (D,) = ``dynamic_energy_j`` +
    ``leakage_energy_j``; ``busy_s`` maps ``"tc"``, ``"vc"``, ``"link"`` to (D,) busy time;
    ``flop`` the step's FLOPs; ``costs`` the :class:`OpCosts` it was built from;
    ``start_s``/``end_s`` (D, O) the schedule; ``hbm_floor_s`` (D,) all HBM traffic at full
    bandwidth (the step time is at least this: HBM is shared by all units).
    """

    makespan_s: np.ndarray
    energy_j: np.ndarray
    dynamic_energy_j: np.ndarray
    leakage_energy_j: np.ndarray
    busy_s: Mapping[str, np.ndarray]
    flop: float
    costs: OpCosts
    start_s: np.ndarray
    end_s: np.ndarray
    hbm_floor_s: np.ndarray

    @property
    def achieved_flop_per_s(self) -> np.ndarray:
        return np.where(self.makespan_s > 0, self.flop / np.maximum(self.makespan_s, 1e-300), 0.0)


def _occupancy(single_stream: Any, blocking_comm: bool, d: int) -> np.ndarray | None:
    """(3, 3, D) bool: which resources an operator on unit ``u`` holds, per design; ``None``
    when every unit holds only itself. ``single_stream`` designs (GPUs: one CUDA stream on
    shared SMs) run tensor and vector operators one at a time; ``blocking_comm``
    (Megatron-LM 2021's synchronous tensor-parallel collectives) makes communication wait
    for, and hold up, all computation."""
    ss = np.broadcast_to(np.asarray(single_stream, dtype=bool), (d,))
    if not ss.any() and not blocking_comm:
        return None
    occ = np.zeros((len(UNITS), len(UNITS), d), dtype=bool)
    for u in range(len(UNITS)):
        occ[u, u] = True
    occ[_TC, _VC] = occ[_VC, _TC] = ss
    if blocking_comm:
        occ[_LINK, :] = True
        occ[:, _LINK] = True
    return occ


def _schedule_fixed_order(dur: np.ndarray, order: np.ndarray, preds: tuple[tuple[int, ...], ...],
                          unit: np.ndarray, occ: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times (D, O) of the in-order list schedule of ``order``. ``occ``
    (:func:`_occupancy`): an operator starts when all resources it holds are free and
    holds them until it ends (start times stay max-plus expressions of the durations)."""
    d, o = dur.shape
    start = np.zeros((o, d))
    end = np.zeros((o, d))
    free = np.zeros((len(UNITS), d))
    zero = np.zeros(d)
    durt = np.ascontiguousarray(dur.T)
    for j in order:
        ps = preds[j]
        if len(ps) == 0:
            ready = zero
        elif len(ps) == 1:
            ready = end[ps[0]]
        else:
            ready = end[list(ps)].max(axis=0)
        u = unit[j]
        if occ is None:
            st = np.maximum(ready, free[u])
            start[j] = st
            end[j] = st + durt[j]
            free[u] = end[j]
        else:
            held = occ[u]
            st = np.maximum(ready, np.where(held, free, 0.0).max(axis=0))
            start[j] = st
            end[j] = st + durt[j]
            free = np.where(held, end[j][None, :], free)
    return start.T, end.T


def device_step(graph: Graph, designs: DesignBatch, tech: Technology,
                comm_time_s: Any = None, *, costs: OpCosts | None = None,
                constants: dict[str, np.ndarray] | None = None,
                blocking_comm: bool = False) -> DeviceStep:
    """Schedule ``graph`` on every design (vectorized; see the module docstring).
    ``blocking_comm``: communication does not overlap computation (see *Schedule*)."""
    plan = _plan(graph)
    c = node_constants(designs, tech) if constants is None else constants
    oc = op_costs(graph, designs, tech, comm_time_s, constants=c) if costs is None else costs
    d, o = oc.latency_s.shape
    dur = oc.latency_s * plan.count[None, :]
    best_start = best_end = None
    makespan = np.full(d, np.inf)
    occ = _occupancy(designs.single_stream, blocking_comm, d)
    for order in plan.orders:
        st, en = _schedule_fixed_order(dur, order, graph.pred_indices, plan.unit_code, occ)
        ms = en.max(axis=1) if o else np.zeros(d)
        better = ms < makespan
        if best_start is None:
            best_start, best_end = st, en
        else:
            best_start = np.where(better[:, None], st, best_start)
            best_end = np.where(better[:, None], en, best_end)
        makespan = np.minimum(makespan, ms)
    hbm_floor = ((oc.hbm_bytes * plan.count[None, :]).sum(axis=1)
                 / (designs.hbm_bw_bytes_per_s * designs.hbm_efficiency))
    makespan = np.maximum(makespan, hbm_floor)
    busy = {name: dur[:, plan.unit_code == i].sum(axis=1) for i, name in enumerate(UNITS)}
    dyn = (oc.energy_j * plan.count[None, :]).sum(axis=1)
    leak = tdp_w(designs, tech, constants=c)["leakage"] * makespan
    flop = float((plan.flop * plan.count).sum())
    return DeviceStep(makespan_s=makespan, energy_j=dyn + leak, dynamic_energy_j=dyn,
                      leakage_energy_j=leak, busy_s=busy, flop=flop, costs=oc,
                      start_s=best_start, end_s=best_end, hbm_floor_s=hbm_floor)


# ------------------------------------------------------------------------ scalar reference
@dataclass(frozen=True, kw_only=True)
class OpRecord:
    """One operator in the schedule of one design (times in seconds; ``latency_s`` and
    ``energy_j`` per execution, ``duration_s = count · latency_s``)."""

    name: str
    kind: str
    phase: str
    unit: str
    count: int
    latency_s: float
    duration_s: float
    start_s: float
    end_s: float
    compute_s: float
    hbm_s: float
    sram_s: float
    bound: str
    flop: float
    hbm_bytes: float
    fused_bytes: float
    energy_j: float
    mobility_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DeviceResult:
    """The scalar evaluation of one design on one graph (see :func:`evaluate_device`)."""

    hardware: HardwareConfig
    makespan_s: float
    energy_j: float
    dynamic_energy_j: float
    leakage_energy_j: float
    flop: float
    records: tuple[OpRecord, ...]
    critical_path: tuple[str, ...]
    """Operators with zero mobility (ASAP = ALAP on the DAG, method.md §4), in order."""
    schedule_chain: tuple[str, ...]
    """The chain of operators that determines the makespan in the resource-constrained
    schedule, traced back from the last operator through whichever of its predecessor or
    its resource's previous operator it waited for."""
    breakdown: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    utilization: float = 0.0
    unknown_vector_ops: tuple[str, ...] = ()

    @property
    def achieved_flop_per_s(self) -> float:
        return self.flop / self.makespan_s if self.makespan_s > 0 else 0.0


def _scalar_multi_core(m: int, k: int, n: int, r: int, c: int, df: str, cores: int) -> int:
    """``systolic.gemm_cycles_multi_core`` on Python ints (its closed form, not the fold
    walker, which is too slow for training-size GEMMs)."""
    return int(systolic.gemm_cycles_multi_core(m, k, n, r, c, df, cores))


def evaluate_device(graph: Graph, hw: HardwareConfig, tech: Technology,
                    comm_time_s: Any = None, *, blocking_comm: bool = False) -> DeviceResult:
    """Scalar reference: cost every operator of ``graph`` on ``hw`` with plain Python
    arithmetic, schedule it, and explain the result (see the module docstring).

    ``comm_time_s``: ``None``, a mapping from communication op name to seconds, or an
    array of shape ``(O,)``. ``blocking_comm``: as in :func:`device_step`.
    """
    if not isinstance(hw, HardwareConfig):
        raise ConfigError(f"evaluate_device needs a HardwareConfig, got {type(hw).__name__}")
    batch1 = DesignBatch.from_configs([hw])
    cst = {key: float(val[0]) for key, val in node_constants(batch1, tech).items()}
    plan = _plan(graph)
    comm = _comm_matrix(plan, 1, comm_time_s)[0]
    comm_pos = {int(j): i for i, j in enumerate(plan.comm)}
    f = float(hw.freq_hz)
    p = int(hw.tensor_cores)
    r, cc_ = int(hw.array_rows), int(hw.array_cols)
    df = hw.dataflow
    dtb = float(hw.dtype_bytes)
    sram_total = float(hw.sram_bytes)
    sram_core = float(hw.tensor_cores * hw.sram_per_core_bytes)
    fabric_bw = float(hw.global_buffer_bw_bytes_per_cycle) * f
    e_fabric = (cst["global_buffer_energy_j_per_byte"] if hw.global_buffer_bytes > 0
                else cst["sram_core_energy_j_per_byte"])
    lanes = float(hw.vector_cores * hw.vector_lanes)
    preds = graph.pred_indices
    hbm_bw = float(hw.hbm_bw_bytes_per_s) * float(hw.hbm_efficiency)  # sustained bandwidth

    recs: list[dict[str, Any]] = []
    traffic_cache: dict[tuple[int, int, int, int], tuple[float, float]] = {}
    for j, op in enumerate(graph.ops):
        rec: dict[str, Any] = {
            "name": op.name, "kind": op.kind, "phase": op.phase, "count": op.count,
            "flop": float(op.flop), "fused_bytes": 0.0, "compute_s": 0.0, "hbm_s": 0.0,
            "sram_s": 0.0, "hbm_bytes": 0.0}
        if op.kind == "gemm":
            m, k, n, b = op.m, op.k, op.n, op.batch
            cc = int(systolic.compute_cycles(m, k, n, r, cc_, df))  # closed form on ints
            if b >= p:
                grouped = math.ceil(b / p) * cc
            else:
                grouped = _scalar_multi_core(m, k, n, r, cc_, df, max(p // b, 1))
            serial = b * _scalar_multi_core(m, k, n, r, cc_, df, p)
            t_comp = float(min(grouped, serial)) / (f * float(hw.matmul_efficiency))
            key = (m, k, n, b)
            if key not in traffic_cache:
                traffic_cache[key] = (
                    _blocked_traffic_scalar(m, k, n, b, r, cc_, _LOOP_ORDERS, dtb, sram_total),
                    _blocked_traffic_scalar(m, k, n, b, r, cc_, _LOOP_ORDERS, dtb, sram_core))
            hb, fb = traffic_cache[key]
            t_hbm = hb / hbm_bw
            t_fab = fb / fabric_bw
            t_mem = max(t_hbm, t_fab)
            bound = "tensor" if t_comp >= t_mem else ("hbm" if t_hbm >= t_fab else "sram")
            acc = systolic.sram_accesses(m, k, n, r, cc_, df)
            sram_b = b * ((acc["ifmap_sram_reads"] + acc["filter_sram_reads"]) * dtb
                          + acc["ofmap_sram_writes"] * cst["accumulator_bytes"])
            energy = (b * float(m * k * n) * cst["mac_energy_j"]
                      + sram_b * cst["sram_core_energy_j_per_byte"]
                      + fb * e_fabric + hb * cst["hbm_energy_j_per_byte"])
            rec.update(unit="tc", compute_s=t_comp, hbm_s=t_hbm, sram_s=t_fab, hbm_bytes=hb,
                       latency_s=max(t_comp, t_mem), bound=bound, energy_j=energy)
        elif op.kind in _COMM_KINDS:
            t = float(comm[comm_pos[j]])
            rec.update(unit="link", latency_s=t, bound="link",
                       energy_j=float(op.comm_bytes) * cst["link_energy_j_per_byte"])
        else:
            pe = pe_cycles(op.vector_op, op.phase, kind=op.kind,
                           flop_per_element=op.flop / op.elements if op.elements else 0.0)
            t_comp = math.ceil(op.elements / lanes) * pe / f
            saved = 0.0
            for q in preds[j]:
                prod = graph.ops[q]
                if prod.kind == "gemm" and prod.bytes_out <= sram_total:
                    saved += float(prod.bytes_out)
            saved = min(saved, float(op.bytes_in))
            spill = (float(op.bytes_in) if op.kind in _TWO_PASS_KINDS
                     and op.bytes_in > sram_total else 0.0)
            hb = float(op.bytes_in + op.bytes_out + op.bytes_weight) - saved + spill
            t_hbm = hb / hbm_bw
            energy = (float(op.elements) * pe * cst["vector_op_energy_j"]
                      + hb * cst["hbm_energy_j_per_byte"]
                      + saved * cst["sram_core_energy_j_per_byte"])
            rec.update(unit="vc", compute_s=t_comp, hbm_s=t_hbm, hbm_bytes=hb, fused_bytes=saved,
                       latency_s=max(t_comp, t_hbm),
                       bound="vector" if t_comp >= t_hbm else "hbm", energy_j=energy)
        rec["duration_s"] = rec["latency_s"] * float(op.count)
        recs.append(rec)

    # -- fixed-priority list schedules (the same orders as device_step), keep the best ----
    o = len(recs)
    succ = graph.succ_indices
    best: tuple[float, list[float], list[float], list[int]] | None = None
    # resources an operator holds (see _occupancy): GPUs run tensor and vector kernels on
    # one stream; blocking communication holds everything
    holds: dict[str, tuple[str, ...]] = {u: (u,) for u in UNITS}
    if hw.single_stream:
        holds["tc"] = holds["vc"] = ("tc", "vc")
    if blocking_comm:
        holds = {u: UNITS for u in UNITS}
    for order in plan.orders:
        free = {u: 0.0 for u in UNITS}
        last_on = {u: -1 for u in UNITS}
        end = [0.0] * o
        start = [0.0] * o
        waited_for = [-1] * o
        for j in (int(x) for x in order):
            u = recs[j]["unit"]
            ready, rp = 0.0, -1
            for q in preds[j]:
                if end[q] > ready:
                    ready, rp = end[q], q
            held = holds[u]
            hu = max(held, key=lambda x: free[x])
            if free[hu] > ready:
                start[j], waited_for[j] = free[hu], last_on[hu]
            else:
                start[j], waited_for[j] = ready, rp
            end[j] = start[j] + recs[j]["duration_s"]
            for x in held:
                free[x] = end[j]
                last_on[x] = j
        ms = max(end, default=0.0)
        if best is None or ms < best[0]:
            best = (ms, start, end, waited_for)
    assert best is not None
    sched_makespan, start, end, waited_for = best
    hbm_floor = (sum(r["hbm_bytes"] * r["count"] for r in recs)
                 / hbm_bw)
    makespan = max(sched_makespan, hbm_floor)

    # -- ASAP / ALAP on the DAG (method.md §4) --------------------------------------------------
    asap = [0.0] * o
    for j in range(o):
        asap[j] = max((asap[q] + recs[q]["duration_s"] for q in preds[j]), default=0.0)
    horizon = max((asap[j] + recs[j]["duration_s"] for j in range(o)), default=0.0)
    alap = [0.0] * o
    for j in range(o - 1, -1, -1):
        alap[j] = min((alap[s] for s in succ[j]), default=horizon) - recs[j]["duration_s"]
    tol = 1e-9 * horizon
    mobility = [alap[j] - asap[j] for j in range(o)]
    critical = tuple(recs[j]["name"] for j in range(o) if mobility[j] <= tol)

    chain: list[str] = []
    if o:
        j = max(range(o), key=lambda x: (end[x], -x))
        seen = set()
        while j >= 0 and j not in seen:
            seen.add(j)
            chain.append(recs[j]["name"])
            j = waited_for[j]
        chain.reverse()

    records = tuple(OpRecord(start_s=start[j], end_s=end[j], mobility_s=mobility[j], **recs[j])
                    for j in range(o))
    by_phase: dict[str, float] = {}
    by_kind: dict[str, float] = {}
    by_unit = {u: 0.0 for u in UNITS}
    by_bound: dict[str, float] = {}
    flop_by_phase: dict[str, float] = {}
    for rec in records:
        by_phase[rec.phase] = by_phase.get(rec.phase, 0.0) + rec.duration_s
        by_kind[rec.kind] = by_kind.get(rec.kind, 0.0) + rec.duration_s
        by_unit[rec.unit] += rec.duration_s
        by_bound[rec.bound] = by_bound.get(rec.bound, 0.0) + rec.duration_s
        flop_by_phase[rec.phase] = flop_by_phase.get(rec.phase, 0.0) + rec.flop * rec.count
    dyn = sum(rec.energy_j * rec.count for rec in records)
    leak_w = float(tdp_w(batch1, tech)["leakage"][0])
    flop = sum(rec.flop * rec.count for rec in records)
    util = flop / (makespan * hw.peak_flop_per_s) if makespan > 0 else 0.0
    return DeviceResult(
        hardware=hw, makespan_s=makespan, energy_j=dyn + leak_w * makespan,
        dynamic_energy_j=dyn, leakage_energy_j=leak_w * makespan, flop=flop, records=records,
        critical_path=critical, schedule_chain=tuple(chain),
        breakdown={"phase_s": by_phase, "kind_s": by_kind, "unit_busy_s": by_unit,
                   "bound_s": by_bound, "flop_by_phase": flop_by_phase,
                   "step_s": {"schedule": sched_makespan, "hbm_floor": hbm_floor},
                   "energy_j": {"dynamic": dyn, "leakage": leak_w * makespan}},
        utilization=util, unknown_vector_ops=plan.unknown)
