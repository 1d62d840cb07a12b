"""Per-operator costs of a training-step graph on many designs, at every block size.

:func:`op_costs` returns ``D × O`` arrays (designs × operators) of latency, energy and
bound, and ``D × O × A`` arrays of the same at each **level** ``a`` of
:mod:`cost_models.schedule` (a block of ``floor(P/2^a)`` of the ``P`` tensor cores with
``1/2^a`` of the chip's HBM bandwidth, fabric bandwidth and global buffer). The level-0
arrays are the whole chip. :func:`op_costs_scalar` is the plain-Python reference of one
design (``tests/cost_models/test_evaluate.py`` compares them).

Operator model (all times in seconds, per execution of the operator)
--------------------------------------------------------------------
**GEMM** (tensor cores). For ``batch`` independent ``m×k·k×n`` GEMMs on a block of ``g``
tensor cores of ``R×C``:

* compute cycles = ``min(split, serial)`` where ``split`` runs the batch in parallel
  groups — ``ceil(batch/g)·cc(m,k,n)`` if ``batch >= g``, else every GEMM on
  ``floor(g/batch)`` cores (``systolic.gemm_cycles_multi_core``) — and ``serial`` runs the
  GEMMs one after another, each split over all ``g`` cores; ``cc`` is
  ``systolic.compute_cycles`` (SCALE-Sim's count; with **weight double-buffering** when the
  design has it and its per-core SRAM holds two stationary tiles, ``2·R·C·dtype_bytes``).
* HBM bytes = ``batch · systolic.dram_traffic_bytes`` under the best loop order and
  blocking (:func:`_blocked_traffic`) with the block's on-chip SRAM (its cores' buffers
  plus ``1/2^a`` of the global buffer): the tiling SRAM capacity allows decides the
  re-reads (the spill). Operands use the design's datatype.
* on-chip fabric ("sram") bytes = the same traffic with only the block's per-core SRAMs:
  what the cores fetch from the shared level over ``1/2^a`` of the global-buffer network.
* latency = max(compute, HBM bytes / block HBM bandwidth, fabric bytes / block fabric
  bandwidth); the largest term names the bound: ``tensor``, ``hbm`` or ``sram``.

**Vector ops** (the vector unit: all vector cores): cycles = ``ceil(elements / (lanes·
cores)) · pe_cycles`` (:mod:`cost_models.vector`); HBM bytes = ``bytes_in + bytes_out +
bytes_weight`` of the operator, minus fused inputs, plus spills:

* *fusion rule*: an input produced by a GEMM that is a direct predecessor of the vector op
  is read from on-chip SRAM instead of HBM when the GEMM's output tensor (its
  ``bytes_out``) fits in the chip's SRAM (the GEMM still writes it to HBM, where backward
  needs it); saved bytes are capped at the vector op's ``bytes_in``;
* *spill rule*: two-pass ops (``softmax``, ``norm``, ``reduction``, ``loss``: statistics
  pass, then normalization pass) whose input does not fit in SRAM read it twice.

latency = max(compute, HBM bytes / HBM bandwidth); bound ``vector`` or ``hbm``. Vector
operators have one level (the same values at every level).

**Communication** (``collective``, ``sendrecv``; the links): latency from the
``comm_time_s`` argument (the network model, :mod:`cost_models.network`, computes it);
links are a separate resource, so communication overlaps computation. Bound ``link``.

**Energy** per execution: MACs · E_MAC + SRAM bytes (``systolic.sram_accesses``, operands
at ``dtype_bytes``, partial sums at the accumulator width) · E_SRAM(per-core size) +
fabric bytes · E_SRAM(global buffer) + HBM bytes · E_HBM + vector lane-operations ·
E_vector + fused bytes · E_SRAM + communication bytes · E_link (:mod:`cost_models.power`
documents the constants). A step adds leakage power × step time.

>>> from dse.types import Graph, HardwareConfig, Operator
>>> from cost_models.designs import DesignBatch
>>> from cost_models.technology import load_technology
>>> g = Graph(name="one", ops=(Operator(name="fc", kind="gemm", phase="fwd", m=512, k=512,
...                                     n=512, flop=2.0 * 512**3),))
>>> hw = HardwareConfig(name="x", tensor_cores=4, array_rows=64, array_cols=64,
...                     vector_cores=1, vector_lanes=16, freq_hz=1e9,
...                     hbm_bw_bytes_per_s=1e12, hbm_bytes=8e9)
>>> oc = op_costs(g, DesignBatch.from_configs([hw]), load_technology(7))
>>> oc.level_ok[0].tolist()          # 4 cores: whole chip, halves, quarters (no eighths)
[True, True, True, False]
>>> t = oc.latency_levels_s[0, 0, :3]
>>> bool(t[0] < t[1] < t[2])         # fewer cores: slower
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_models import attention as fa
from cost_models import systolic
from cost_models.area import node_constants
from cost_models.designs import DesignBatch
from cost_models.schedule import LEVELS, Topology, block_cores
from cost_models.technology import Technology
from cost_models.vector import pe_cycles, pe_cycles_array, unknown_keys
from dse.errors import ConfigError
from dse.types import DATAFLOWS, Graph

__all__ = [
    "BOUNDS",
    "UNITS",
    "GraphArrays",
    "OpCosts",
    "fp8_cast_bytes",
    "graph_arrays",
    "high_precision",
    "level_ok",
    "op_costs",
    "op_costs_many",
    "op_costs_scalar",
    "sixteen_bit",
]

UNITS: tuple[str, ...] = ("tc", "vc", "link")
"""Resources of a device: tensor cores, vector cores, chip-to-chip links."""
BOUNDS: tuple[str, ...] = ("tensor", "vector", "sram", "hbm", "link")
"""What bounds an operator's latency (index = ``bound_code``)."""

_TC, _VC, _LINK = 0, 1, 2
_B_TENSOR, _B_VECTOR, _B_SRAM, _B_HBM, _B_LINK = 0, 1, 2, 3, 4
_COMM_KINDS = ("collective", "sendrecv")
_TWO_PASS_KINDS = ("softmax", "norm", "loss")
"""Vector kinds that need a row's statistic before they can write it (max and sum, mean and
variance): they read an input that does not fit on chip twice, unless one row fits in a
core's SRAM (``Operator.row`` elements at :data:`ROW_BYTES` each), where the kernel keeps
the row while it reduces it and reads it once (Megatron's fused scaled-masked softmax and
apex's LayerNorm hold a row in registers). A ``reduction`` (a sum over rows: bias
gradients) reads its input once."""
ROW_BYTES = 4
"""Bytes per element of a row held on chip (fp32 working copy)."""

# Reference machine of the scheduling priorities: TPU v4's published peak, HBM bandwidth and
# ICI injection bandwidth (cost_models/data/presets/tpuv4.yaml) — a balanced training chip.
_REF_FLOP_PER_S = 275e12
_REF_HBM_BYTES_PER_S = 1.2e12
_REF_LINK_BYTES_PER_S = 270e9


# ------------------------------------------------------------------------ static arrays
@dataclass(frozen=True, eq=False)
class GraphArrays:
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
    gemm_hp: np.ndarray
    """(G,) bool: the GEMM stays 16-bit on a sub-16-bit design (:func:`high_precision`)."""
    gemm_cast_bytes: np.ndarray
    """(G,) HBM bytes of the FP8 casts each GEMM needs on a GPU (:func:`fp8_cast_bytes`)."""
    pe: np.ndarray
    elements: np.ndarray
    bytes_io: np.ndarray
    bytes_in: np.ndarray
    two_pass: np.ndarray
    row_bytes: np.ndarray
    """Bytes of one row a row-wise op holds on chip (``inf``: not row-wise)."""
    fuse_pairs_vec: np.ndarray
    """Position (in ``vec``) of the consumer of each GEMM -> vector fusion candidate."""
    fuse_pairs_bytes: np.ndarray
    comm_bytes: np.ndarray
    flop: np.ndarray
    unknown: tuple[str, ...]
    topology: Topology
    att: np.ndarray
    """Fused attention operators (tensor-core unit, :mod:`cost_models.attention`)."""
    att_shapes: np.ndarray
    """(2A, 4): each attention op's two GEMM shapes (m, k, n, batch), (m, n, k, batch)."""
    att_mult: np.ndarray
    """(A, 2) GEMM counts of the two shapes (forward 1, 1; backward 2, 3)."""
    att_frac: np.ndarray
    """(A,) fraction of the score blocks computed (causal: about one half)."""
    att_pe: np.ndarray
    att_elements: np.ndarray
    """(A,) score elements each attention op computes."""
    att_mknb: np.ndarray
    att_io: np.ndarray
    att_fwd: np.ndarray
    """The schedule structure (:class:`cost_models.schedule.Topology`), shared by every
    graph of the same shape and priority order."""


_TOPOLOGIES: dict[tuple[Any, ...], Topology] = {}
_TOPOLOGY_LIMIT = 1 << 16


def _reference_durations(graph: Graph, unit: np.ndarray) -> np.ndarray:
    """Durations on the reference roofline: ``count · max(flop / 275 TFLOP/s, bytes /
    1.2 TB/s)`` (communication: ``comm_bytes / 270 GB/s``). Their bottom levels give the
    critical-path priority order, which depends on the graph only, not on the design."""
    ops = graph.ops
    ref = np.empty(len(ops))
    for j, op in enumerate(ops):
        if unit[j] == _LINK:
            ref[j] = op.comm_bytes / _REF_LINK_BYTES_PER_S
        else:
            ref[j] = max(op.flop / _REF_FLOP_PER_S, op.bytes_total / _REF_HBM_BYTES_PER_S)
        ref[j] *= op.count
    return ref


def _topology(graph: Graph, unit: np.ndarray) -> Topology:
    """The graph's :class:`Topology`, shared with every graph of the same structure and
    the same priority orders (so plan variants of a stage can be scheduled together)."""
    cand = Topology.build(unit, graph.pred_indices, _reference_durations(graph, unit))
    key = (cand.units.tobytes(), cand.preds, tuple(o.tobytes() for o in cand.orders))
    hit = _TOPOLOGIES.get(key)
    if hit is not None:
        return hit
    if len(_TOPOLOGIES) >= _TOPOLOGY_LIMIT:
        _TOPOLOGIES.clear()
    _TOPOLOGIES[key] = cand
    return cand


_HP_SUFFIXES = (".logits", ".router")


def high_precision(graph: Graph) -> np.ndarray:
    """(O,) bool: operators that run in 16 bits on a design whose tensor cores compute in
    fewer (fp8, int8): attention (fused, or its weightless batched ``QKᵀ``/``A·V`` GEMMs),
    the output head and the MoE router, forward and backward. Transformer Engine's FP8
    recipes put only the transformer layers' Linear GEMMs in FP8 (attention stays bf16
    unless ``fp8_dpa``; Megatron-Core's output layer is not a TE module), and DeepSeek-V3
    keeps "the embedding module, the output head, MoE gating modules, normalization
    operators, and attention operators" in their original precision (report §3.3;
    docs/sources.md, deepseek-v3, transformer-engine-fp8)."""
    out = np.zeros(len(graph.ops), dtype=bool)
    for j, op in enumerate(graph.ops):
        if op.kind == "attention":
            out[j] = True
        elif op.kind == "gemm":
            # weightless (activation x activation) GEMMs: a forward without weight bytes,
            # and the two data gradients workloads.training gives them (.bwd_data_a/_b);
            # a backward op's forward may sit in another phase graph, so go by names
            out[j] = ((op.phase == "fwd" and op.bytes_weight == 0)
                      or op.name.endswith((".bwd_data_a", ".bwd_data_b"))
                      or op.name.endswith(_HP_SUFFIXES)
                      or (op.phase != "fwd" and op.fwd.endswith(_HP_SUFFIXES)))
    return out


def sixteen_bit(designs: DesignBatch) -> DesignBatch:
    """The designs as their tensor cores run a 16-bit GEMM: a sub-16-bit array of ``R×C``
    multipliers computes bf16 as ``R×(C·dtype_bytes/2)`` (two fp8 MACs per bf16 MAC: the
    throughput ratio of H100/H200, MI300 and the template's ``mac_area_ratio``) at its
    ``matmul_efficiency_16bit`` where one is given; 16-bit and wider designs are returned
    unchanged (the same object)."""
    dtb = designs.dtype_bytes
    low = dtb < 2
    if not low.any():
        return designs
    hit = designs.__dict__.get("_sixteen_bit")
    if hit is not None:
        return hit
    arrays = dict(designs.arrays)
    arrays["dtype"] = np.where(low, "bf16", designs.dtype).astype(object)
    eff16 = np.asarray(designs.matmul_efficiency_16bit, dtype=float)
    arrays["matmul_efficiency"] = np.where(low & (eff16 > 0), eff16,
                                           designs.matmul_efficiency).astype(float)
    # the 16-bit form has one efficiency
    arrays["matmul_efficiency_16bit"] = np.where(low, 0.0, eff16).astype(float)
    arrays["array_cols"] = np.where(low, np.maximum(designs.array_cols * dtb // 2, 1),
                                    designs.array_cols).astype(np.int64)
    out = DesignBatch({k: np.array(v) for k, v in arrays.items()})
    designs.__dict__["_sixteen_bit"] = out
    return out


FP8_CAST_BYTES_PER_ELEMENT = 4.0
"""Transformer Engine's ``fp8_cast_transpose_fused``: reads a 16-bit tensor (2 B an
element) and writes its FP8 copy and the FP8 copy transposed (1 B each)."""
FP8_NORM_CAST_BYTES_PER_ELEMENT = 1.0
"""A GEMM fed by a norm (TE's ``LayerNormLinear``: Megatron-Core's QKV and FC1) gets its
input from the norm in FP8 (1 B written instead of 2) and transposes it (1 B read, 1 B
written): one byte an element more than the 16-bit path."""


def fp8_cast_bytes(graph: Graph) -> np.ndarray:
    """(O,) HBM bytes of the FP8 casts Transformer Engine runs for each GEMM of ``graph``
    when the GEMM runs in FP8 on a GPU (``single_stream``): before a forward GEMM its
    activation input is cast and transposed (:data:`FP8_CAST_BYTES_PER_ELEMENT`, or
    :data:`FP8_NORM_CAST_BYTES_PER_ELEMENT` after a norm), before the input-gradient GEMM
    the output gradient is (its weight-gradient GEMM reuses both transposed copies); 0 for
    every other operator. TE's ``Linear`` and ``LayerNormLinear`` forward
    (``fp8_cast_transpose_fused`` of ``inputmat`` "FP8 input for forward, FP8 input
    transpose for backward wgrad") and backward (``fp8_cast_transpose_fused`` of
    ``grad_output``) run them as kernels of their own, reading and writing HBM; the
    amax they record is computed in the same pass. Weights are cast once per step
    (``is_first_microbatch``), not counted. ``docs/sources.md`` transformer-engine-fp8."""
    ops = graph.ops
    out = np.zeros(len(ops))
    for j, op in enumerate(ops):
        if op.kind != "gemm" or op.phase not in ("fwd", "bwd_data"):
            continue
        per = FP8_CAST_BYTES_PER_ELEMENT
        if op.phase == "fwd" and any(ops[p].kind == "norm" for p in graph.pred_indices[j]):
            per = FP8_NORM_CAST_BYTES_PER_ELEMENT
        out[j] = per * float(op.m) * float(op.k) * float(op.batch)
    return out


def _casts_on(designs: DesignBatch) -> np.ndarray:
    """(D,) 1.0 for GPU-like sub-16-bit designs (FP8 GEMMs cast by separate kernels)."""
    return ((designs.dtype_bytes < 2) & (np.asarray(designs.single_stream) == 1)).astype(
        np.float64)


def graph_arrays(graph: Graph) -> GraphArrays:
    """The :class:`GraphArrays` of ``graph`` (memoized on the graph object)."""
    memo = graph.derived
    hit = memo.get("cost_models.opcost")
    if hit is not None:
        return hit
    cols = graph.columns
    kinds = cols["kind"]
    o = len(graph.ops)
    unit = np.where(np.isin(kinds, ("gemm", "attention")), _TC,
                    np.where(np.isin(kinds, _COMM_KINDS), _LINK, _VC)).astype(np.int64)
    gemm = np.flatnonzero(kinds == "gemm")
    att = np.flatnonzero(kinds == "attention")
    att_mknb = np.stack([cols[x][att] for x in ("m", "k", "n", "batch")],
                        axis=1).astype(np.int64).reshape(-1, 4)
    att_shapes = np.stack([att_mknb, att_mknb[:, [0, 2, 1, 3]]], axis=1).reshape(-1, 4)
    att_fwd = cols["phase"][att] == "fwd"
    att_mult = np.array([fa.multiplicity("fwd" if f_ else "bwd") for f_ in att_fwd],
                        dtype=np.float64).reshape(-1, 2)
    full = (att_mknb[:, 0] * att_mknb[:, 2] * att_mknb[:, 3]).astype(np.float64)
    att_frac = np.where(full > 0, cols["elements"][att] / np.where(full > 0, full, 1.0), 0.0)
    vec = np.flatnonzero(unit == _VC)
    comm = np.flatnonzero(unit == _LINK)
    pe = pe_cycles_array(cols["vector_op"][vec], cols["phase"][vec], kinds[vec],
                         cols["flop"][vec], cols["elements"][vec])
    vec_pos = {int(j): i for i, j in enumerate(vec)}
    pairs_v, pairs_b = [], []
    for j in vec:
        for p in graph.pred_indices[j]:
            if kinds[p] == "gemm":
                pairs_v.append(vec_pos[int(j)])
                pairs_b.append(float(cols["bytes_out"][p]))
    unknown = tuple(unknown_keys(zip(cols["vector_op"][np.concatenate([vec, att])],
                                     kinds[np.concatenate([vec, att])])))
    mknb = np.stack([cols[x][gemm] for x in ("m", "k", "n", "batch")], axis=1).astype(np.int64)
    shapes, inverse = np.unique(mknb.reshape(-1, 4), axis=0, return_inverse=True)
    out = GraphArrays(
        names=tuple(cols["name"]), unit_code=unit, count=cols["count"].astype(np.float64),
        gemm=gemm, vec=vec, comm=comm,
        gemm_shapes=shapes.reshape(-1, 4), gemm_inverse=np.asarray(inverse).reshape(-1),
        gemm_hp=high_precision(graph)[gemm],
        gemm_cast_bytes=fp8_cast_bytes(graph)[gemm],
        pe=pe, elements=cols["elements"][vec].astype(np.float64),
        bytes_io=(cols["bytes_in"] + cols["bytes_out"] + cols["bytes_weight"])[vec],
        bytes_in=cols["bytes_in"][vec].astype(np.float64),
        two_pass=np.isin(kinds[vec], _TWO_PASS_KINDS),
        row_bytes=np.where(cols["row"][vec] > 0, cols["row"][vec] * ROW_BYTES, np.inf),
        fuse_pairs_vec=np.asarray(pairs_v, dtype=np.int64),
        fuse_pairs_bytes=np.asarray(pairs_b, dtype=np.float64),
        comm_bytes=cols["comm_bytes"][comm].astype(np.float64),
        flop=cols["flop"].astype(np.float64), unknown=unknown,
        topology=_topology(graph, unit) if o else Topology.build((), ()),
        att=att, att_shapes=att_shapes, att_mult=att_mult, att_frac=att_frac,
        att_pe=pe_cycles_array(cols["vector_op"][att], cols["phase"][att], kinds[att],
                               cols["flop"][att], cols["elements"][att]).astype(np.float64),
        att_elements=cols["elements"][att].astype(np.float64), att_mknb=att_mknb, att_io=(cols["bytes_in"] + cols["bytes_out"])[att].astype(
            np.float64), att_fwd=att_fwd,
    )
    memo["cost_models.opcost"] = out
    return out


def level_ok(designs: DesignBatch, levels: int = LEVELS) -> np.ndarray:
    """(D, A) bool: the block levels each design has — ``floor(P/2^a) >= 1``, and only
    the whole chip for single-stream designs (GPUs) or when ``levels == 1``."""
    a = np.arange(LEVELS)
    ok = block_cores(designs.tensor_cores[:, None], a[None, :]) >= 1
    ok &= (a[None, :] == 0) | (designs.single_stream[:, None] == 0)
    ok &= a[None, :] < max(1, int(levels))
    return ok


# ------------------------------------------------------------------------------ op costs
@dataclass(frozen=True, eq=False)
class OpCosts:
    """Per-operator costs of ``D`` designs (rows) × ``O`` operators (columns).

    Times in seconds and energies in joules are **per execution**; multiply by ``count``
    for the step. ``unit[j]`` is ``"tc"``, ``"vc"`` or ``"link"``; ``bound_code`` indexes
    :data:`BOUNDS`. The plain arrays are the whole chip (level 0); the ``*_levels``
    arrays (D, O, A) hold every level of :mod:`cost_models.schedule` (a block of
    ``floor(P/2^a)`` tensor cores; vector and link operators repeat their one value) and
    ``level_ok`` (D, A) says which levels a design has. ``latency_one_unit_s`` is the
    latency on a single tensor or vector core with the whole chip's memory system.
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
    latency_levels_s: np.ndarray
    compute_levels_s: np.ndarray
    hbm_levels_s: np.ndarray
    sram_levels_s: np.ndarray
    hbm_bytes_levels: np.ndarray
    energy_levels_j: np.ndarray
    bound_levels: np.ndarray
    level_ok: np.ndarray
    unknown_vector_ops: tuple[str, ...] = ()

    def bound(self, d: int = 0) -> list[str]:
        """Bound names of design ``d``'s operators (whole chip)."""
        return [BOUNDS[int(c)] for c in self.bound_code[d]]


def _comm_matrix(arrs: GraphArrays, d: int, comm_time_s: Any) -> np.ndarray:
    """(D, n_comm) communication latencies from the ``comm_time_s`` argument."""
    nc = len(arrs.comm)
    out = np.zeros((d, nc))
    if comm_time_s is None or nc == 0:
        return out
    if isinstance(comm_time_s, Mapping):
        pos = {arrs.names[j]: i for i, j in enumerate(arrs.comm)}
        for name, v in comm_time_s.items():
            if name not in pos:
                if name in arrs.names:
                    continue  # a time for a non-communication op is ignored
                raise ConfigError(f"comm_time_s names {name!r}, which is not an operator of "
                                  f"the graph; communication ops: "
                                  f"{', '.join(arrs.names[j] for j in arrs.comm)}")
            out[:, pos[name]] = np.broadcast_to(np.asarray(v, dtype=np.float64), (d,))
    else:
        arr = np.asarray(comm_time_s, dtype=np.float64)
        o = len(arrs.names)
        if arr.shape == (o,):
            out[:] = arr[arrs.comm][None, :]
        elif arr.shape == (d, o):
            out[:] = arr[:, arrs.comm]
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
                  srams: np.ndarray) -> np.ndarray:
    """Off-chip bytes (d, U, K) of the GEMM shapes on every design for each of the ``K``
    SRAM capacities ``srams`` (d, K): the least :func:`_blocked_traffic` over the three
    loop orders of ``systolic.dram_traffic_bytes`` (``os``, ``ws``, ``is``).

    The order of the DRAM → SRAM loops is a mapping choice of its own, independent of the
    array's dataflow (Timeloop and ZigZag give every memory level its own temporal loop
    order); the array's dataflow sets the compute cycles and the SRAM accesses. The
    traffic depends on a design only through ``(rows, cols, dtype_bytes, SRAM bytes)``; it
    is computed once per distinct key (designs of a grid share most keys).
    """
    d, k = srams.shape
    keys = np.stack([np.repeat(rows, k).astype(np.float64),
                     np.repeat(cols, k).astype(np.float64),
                     np.repeat(dtb, k).astype(np.float64),
                     srams.reshape(-1).astype(np.float64)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    # a search asks for the same shapes on the same (array, SRAM) keys batch after batch:
    # keep every row computed (keyed by the shape set and the design key)
    sk = shapes.tobytes()
    t = np.empty((len(uniq), len(shapes)))
    miss = []
    for i, key in enumerate(map(tuple, uniq.tolist())):
        hit = _TRAFFIC.get((sk, key))
        if hit is None:
            miss.append(i)
        else:
            t[i] = hit
    if miss:
        u = uniq[miss]
        new = _blocked_traffic(shapes, u[:, 0].astype(np.int64), u[:, 1].astype(np.int64),
                               _LOOP_ORDERS, u[:, 2], u[:, 3:4])[:, :, 0]   # (misses, U)
        t[miss] = new
        if len(_TRAFFIC) + len(miss) > _TRAFFIC_LIMIT:
            _TRAFFIC.clear()
        for i, row in zip(miss, new):
            row.setflags(write=False)
            _TRAFFIC[(sk, tuple(uniq[i].tolist()))] = row
    return t[inverse].reshape(d, k, -1).transpose(0, 2, 1)


_TRAFFIC: dict[tuple[bytes, tuple[float, ...]], np.ndarray] = {}
_TRAFFIC_LIMIT = 1 << 18
"""Rows kept by :func:`_gemm_traffic` (a pure function of its key; cleared when full)."""


def _double_buffered(designs: DesignBatch) -> np.ndarray:
    """(D,) bool: weight double-buffering is on and each core's SRAM holds two stationary
    tiles (``2·rows·cols·dtype_bytes``)."""
    tile = (designs.array_rows * designs.array_cols * designs.dtype_bytes).astype(np.float64)
    return (designs.weight_double_buffer == 1) & (designs.sram_per_core_bytes >= 2.0 * tile)


def _multi_core_cycles(m: Any, k: Any, n: Any, b: Any, r: Any, c: Any, code: int, p: Any,
                       db: Any, cc: Any) -> np.ndarray:
    """Cycles of ``b`` independent GEMMs on ``p`` cores: ``min(split, serial)`` (module
    docstring); ``cc`` the cycles of one GEMM on one core. Validated int64 inputs."""
    grouped = np.where(
        b >= p, np.ceil(b / p) * cc,
        systolic.multi_core_cycles_raw(m, k, n, r, c, code, np.maximum(p // b, 1),
                                       db).astype(np.float64))
    serial = b * systolic.multi_core_cycles_raw(m, k, n, r, c, code, p, db).astype(np.float64)
    return np.minimum(grouped, serial)


def op_costs(graph: Graph, designs: DesignBatch, tech: Technology,
             comm_time_s: Any = None, *,
             constants: dict[str, np.ndarray] | None = None, levels: int = LEVELS) -> OpCosts:
    """Latency, bound and energy of every operator of ``graph`` on every design, at every
    block level (module docstring).

    ``comm_time_s``: ``None`` (communication costs nothing), a mapping from communication
    op name to seconds (scalar or one value per design), or an array of shape ``(O,)`` or
    ``(D, O)`` (only the communication columns are used). ``constants`` may pass a
    precomputed :func:`cost_models.area.node_constants` (hot loops). ``levels=1`` keeps
    every tensor operator on the whole chip (no operator-level parallelism).
    """
    return op_costs_many([graph], designs, tech, [comm_time_s], constants=constants,
                         levels=levels)[0]


def _gemm_level_costs(shapes: np.ndarray, designs: DesignBatch, c: dict[str, np.ndarray],
                      lok: np.ndarray) -> dict[str, np.ndarray]:
    """(D, U, A) latency, compute, HBM and fabric times, HBM bytes, energy, bound of the
    ``U`` GEMM shapes (m, k, n, batch) at every level, and (D, U) one-core latency."""
    d, nl, u = len(designs), LEVELS, len(shapes)
    f = designs.freq_hz
    hbm_bw = designs.hbm_bw_bytes_per_s * designs.hbm_efficiency  # sustained bandwidth
    frac = 2.0 ** -np.arange(nl)
    g_lv = np.maximum(block_cores(designs.tensor_cores[:, None], np.arange(nl)[None, :]), 1)
    s_core = designs.sram_per_core_bytes.astype(np.float64)
    sram_tot_lv = g_lv * s_core[:, None] + designs.global_buffer_bytes[:, None] * frac[None, :]
    sram_core_lv = g_lv * s_core[:, None]
    fabric_bw = designs.global_buffer_bw_bytes_per_cycle * f
    e_fabric = np.where(designs.global_buffer_bytes > 0, c["global_buffer_energy_j_per_byte"],
                        c["sram_core_energy_j_per_byte"])
    used = np.flatnonzero(lok.any(axis=0))          # levels some design has
    cyc = np.zeros((d, u, nl))
    cc1 = np.empty((d, u))
    opw = np.empty((d, u))
    psw = np.empty((d, u))
    dtb_all = designs.dtype_bytes.astype(np.float64)
    dfc = designs.dataflow_code
    db = _double_buffered(designs)
    m, k, n, b = (shapes[None, :, i].astype(np.int64) for i in range(4))
    # compute cycles depend on a design only through (rows, cols, dataflow, double
    # buffering, cores of the block): cost each distinct key once
    nu = len(used)
    keys = np.stack([np.repeat(designs.array_rows, nu), np.repeat(designs.array_cols, nu),
                     np.repeat(dfc, nu), np.repeat(db.astype(np.int64), nu),
                     g_lv[:, used].reshape(-1)], axis=1).astype(np.int64)
    uk, kinv = np.unique(keys, axis=0, return_inverse=True)
    kinv = np.asarray(kinv).reshape(d, nu)
    ucyc = np.empty((len(uk), u))
    ucc = np.empty((len(uk), u))
    for code in np.unique(uk[:, 2]).tolist():
        sel = np.flatnonzero(uk[:, 2] == code)
        r, cl = uk[sel, 0][:, None], uk[sel, 1][:, None]
        dbi, gk = uk[sel, 3][:, None].astype(bool), uk[sel, 4][:, None]
        ucc[sel] = systolic.compute_cycles_raw(m, k, n, r, cl, int(code),
                                               dbi).astype(np.float64)
        ucyc[sel] = _multi_core_cycles(m, k, n, b, r, cl, int(code), gk, dbi, ucc[sel])
    cyc[:, :, used] = ucyc[kinv].transpose(0, 2, 1)
    cc1[:] = ucc[kinv[:, 0]]
    for code, name in enumerate(DATAFLOWS):
        idx = np.flatnonzero(dfc == code)
        if not len(idx):
            continue
        ak = np.stack([designs.array_rows[idx], designs.array_cols[idx]], axis=1)
        ua, ainv = np.unique(ak, axis=0, return_inverse=True)
        acc = systolic.sram_accesses(m, k, n, ua[:, 0:1], ua[:, 1:2], name)
        ainv = np.asarray(ainv).reshape(-1)
        opw[idx] = np.asarray(acc["ifmap_sram_reads"] + acc["filter_sram_reads"],
                              dtype=np.float64)[ainv]
        psw[idx] = np.asarray(acc["ofmap_sram_writes"], dtype=np.float64)[ainv]
    srams = np.concatenate([sram_tot_lv[:, used], sram_core_lv[:, used]], axis=1)
    traffic = _gemm_traffic(shapes, designs.array_rows, designs.array_cols, dtb_all, srams)
    hb = np.zeros((d, u, nl))
    fb = np.zeros((d, u, nl))
    hb[:, :, used] = traffic[:, :, :nu]
    fb[:, :, used] = traffic[:, :, nu:]
    bb = shapes[None, :, 3].astype(np.float64)
    mkn = (shapes[:, 0] * shapes[:, 1] * shapes[:, 2]).astype(np.float64)[None, :]
    fe = (f * designs.matmul_efficiency)[:, None, None]
    t_comp = cyc / fe
    t_hbm = hb / (hbm_bw[:, None, None] * frac[None, None, :])
    t_fab = fb / (fabric_bw[:, None, None] * frac[None, None, :])
    t_mem = np.maximum(t_hbm, t_fab)
    lt = np.maximum(t_comp, t_mem)
    bd = np.where(t_comp >= t_mem, _B_TENSOR,
                  np.where(t_hbm >= t_fab, _B_HBM, _B_SRAM)).astype(np.int8)
    sram_b = bb * (opw * dtb_all[:, None] + psw * c["accumulator_bytes"][:, None])
    en = ((bb * mkn * c["mac_energy_j"][:, None]
           + sram_b * c["sram_core_energy_j_per_byte"][:, None])[:, :, None]
          + fb * e_fabric[:, None, None] + hb * c["hbm_energy_j_per_byte"][:, None, None])
    one = np.maximum(bb * cc1 / fe[:, :, 0], t_mem[:, :, 0])
    return {"lat": lt, "comp": t_comp, "hbm_s": t_hbm, "sram_s": t_fab, "hbm_b": hb,
            "energy": en, "bound": bd, "one": one, "one_comp": bb * cc1 / fe[:, :, 0]}


def _attention_costs(a: GraphArrays, apos: np.ndarray, gem: dict[str, np.ndarray],
                     designs: DesignBatch, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(D, A, L) costs of a graph's fused attention operators (:mod:`cost_models.attention`)
    from the level costs of their GEMM shapes (``gem`` rows ``apos``: two per operator)."""
    nl = LEVELS
    frac = 2.0 ** -np.arange(nl)
    f = designs.freq_hz.astype(np.float64)
    mult, cf = a.att_mult, a.att_frac
    comp = gem["comp"][:, apos]                               # (D, 2A, L)
    t_tc = (comp[:, 0::2] * mult[None, :, 0, None] + comp[:, 1::2] * mult[None, :, 1, None]
            ) * cf[None, :, None]
    el = a.att_elements
    lanes = (designs.vector_cores * designs.vector_lanes).astype(np.float64)
    lanes_lv = np.maximum(np.floor(lanes[:, None] * frac[None, :]), 1.0)          # (D, L)
    t_vc = (np.ceil(el[None, :, None] / lanes_lv[:, None, :]) * a.att_pe[None, :, None]
            / f[:, None, None])
    g_lv = np.maximum(block_cores(designs.tensor_cores[:, None], np.arange(nl)[None, :]), 1)
    share = (designs.sram_per_core_bytes[:, None].astype(np.float64)
             + designs.global_buffer_bytes[:, None] * frac[None, :] / g_lv)         # (D, L)
    dtb = designs.dtype_bytes.astype(np.float64)[:, None, None]
    m, k, n, b = (a.att_mknb[None, :, i, None] for i in range(4))
    seq = np.where(a.att_fwd, a.att_mknb[:, 0], a.att_mknb[:, 2])[None, :, None]
    br = fa.tile_rows(k, share[:, None, :], dtb, seq)
    hb = fa.hbm_bytes(m, k, n, b, a.att_io[None, :, None], a.att_fwd[None, :, None], dtb, br,
                      cf[None, :, None], g_lv[:, None, :],
                      (designs.global_buffer_bytes[:, None] * frac[None, :])[:, None, :])
    hbm_bw = (designs.hbm_bw_bytes_per_s * designs.hbm_efficiency)[:, None, None]
    t_h = hb / (hbm_bw * frac[None, None, :])
    work = t_tc + t_vc
    lat = np.maximum(work, t_h)
    bound = np.where(work >= t_h, np.where(t_tc >= t_vc, _B_TENSOR, _B_VECTOR),
                     _B_HBM).astype(np.int8)
    flop = a.flop[a.att]
    energy = ((flop[None, :] / 2.0 * c["mac_energy_j"][:, None]
               + el[None, :] * a.att_pe[None, :] * c["vector_op_energy_j"][:, None]
               + el[None, :] * 2.0 * fa.ACC_BYTES * c["sram_core_energy_j_per_byte"][:, None]
               )[:, :, None] + hb * c["hbm_energy_j_per_byte"][:, None, None])
    oc = gem["one_comp"][:, apos]                                                  # (D, 2A)
    one_tc = (oc[:, 0::2] * mult[None, :, 0] + oc[:, 1::2] * mult[None, :, 1]) * cf[None, :]
    one_vc = (np.ceil(el[None, :] / designs.vector_lanes[:, None].astype(np.float64))
              * a.att_pe[None, :] / f[:, None])
    return {"lat": lat, "comp": work, "hbm_s": t_h, "hbm_b": hb, "energy": energy,
            "bound": bound, "one": np.maximum(one_tc + one_vc, t_h[:, :, 0])}


def op_costs_many(graphs: Sequence[Graph], designs: DesignBatch, tech: Technology,
                  comm_times: Sequence[Any] | None = None, *,
                  constants: dict[str, np.ndarray] | None = None,
                  levels: int = LEVELS) -> list[OpCosts]:
    """:func:`op_costs` of many graphs on the same designs: the distinct GEMM shapes of all
    graphs are costed once, and the vector operators of all graphs in one pass."""
    if not isinstance(designs, DesignBatch):
        raise ConfigError(f"op_costs needs a DesignBatch, got {type(designs).__name__}")
    c = node_constants(designs, tech) if constants is None else constants
    d, nl = len(designs), LEVELS
    lok = level_ok(designs, levels)
    lok.setflags(write=False)
    arrs_l = [graph_arrays(g) for g in graphs]
    comm = list(comm_times) if comm_times is not None else [None] * len(graphs)

    # ---- GEMMs of every graph: distinct shapes once ------------------------------------
    # (fused attention ops bring their two GEMM shapes into the same pool)
    empty = np.zeros(0, dtype=np.int64)
    rows = [np.concatenate([a.gemm_shapes.reshape(-1, 4) if len(a.gemm)
                            else np.zeros((0, 4), dtype=np.int64), a.att_shapes])
            for a in arrs_l]
    gem: dict[str, np.ndarray] = {}
    pos: list[np.ndarray] = []
    apos: list[np.ndarray] = []
    if sum(len(r) for r in rows):
        allshapes, inv_all = np.unique(np.concatenate(rows), axis=0, return_inverse=True)
        inv_all = np.asarray(inv_all).reshape(-1)
        gem = _gemm_level_costs(allshapes, designs, c, lok)
        d16 = sixteen_bit(designs)
        c16 = c if d16 is designs else node_constants(d16, tech)
        gem16 = gem if d16 is designs else _gemm_level_costs(allshapes, d16, c16, lok)
        at = 0
        for a, r in zip(arrs_l, rows):
            inv = inv_all[at:at + len(r)]
            at += len(r)
            ng = len(a.gemm_shapes) if len(a.gemm) else 0
            pos.append(inv[:ng][a.gemm_inverse] if len(a.gemm) else empty)
            apos.append(inv[ng:])
    else:
        pos = [empty for _ in arrs_l]
        apos = [empty for _ in arrs_l]
        d16, c16, gem16 = designs, c, gem

    # ---- vector ops of every graph in one pass -----------------------------------------
    nv = [len(a.vec) for a in arrs_l]
    vec: dict[str, np.ndarray] = {}
    if sum(nv):
        f = designs.freq_hz
        hbm_bw = designs.hbm_bw_bytes_per_s * designs.hbm_efficiency
        sram_total = designs.sram_bytes.astype(np.float64)
        elements = np.concatenate([a.elements for a in arrs_l])
        pe = np.concatenate([a.pe for a in arrs_l]).astype(np.float64)[None, :]
        bytes_io = np.concatenate([a.bytes_io for a in arrs_l])
        bytes_in = np.concatenate([a.bytes_in for a in arrs_l])
        two_pass = np.concatenate([a.two_pass for a in arrs_l])
        row_bytes = np.concatenate([a.row_bytes for a in arrs_l])
        offs = np.cumsum([0] + nv[:-1])
        fv = np.concatenate([a.fuse_pairs_vec + o for a, o in zip(arrs_l, offs)])
        fbytes = np.concatenate([a.fuse_pairs_bytes for a in arrs_l])
        lanes = (designs.vector_cores * designs.vector_lanes).astype(np.float64)
        t_c = np.ceil(elements[None, :] / lanes[:, None]) * pe / f[:, None]
        saved = np.zeros((d, len(elements)))
        if len(fv):
            fits = fbytes[None, :] <= sram_total[:, None]
            contrib = np.where(fits, fbytes[None, :], 0.0)
            np.add.at(saved, (slice(None), fv.astype(np.int64)), contrib)
            saved = np.minimum(saved, bytes_in[None, :])
        sram_core = designs.sram_per_core_bytes.astype(np.float64)
        spill = np.where(two_pass[None, :] & (bytes_in[None, :] > sram_total[:, None])
                         & (row_bytes[None, :] > sram_core[:, None]), bytes_in[None, :], 0.0)
        hbv = bytes_io[None, :] - saved + spill
        t_h = hbv / hbm_bw[:, None]
        vec = {"lat": np.maximum(t_c, t_h), "comp": t_c, "hbm_s": t_h, "hbm_b": hbv,
               "energy": (elements[None, :] * pe * c["vector_op_energy_j"][:, None]
                          + hbv * c["hbm_energy_j_per_byte"][:, None]
                          + saved * c["sram_core_energy_j_per_byte"][:, None]),
               "bound": np.where(t_c >= t_h, _B_VECTOR, _B_HBM).astype(np.int8),
               "one": np.maximum(np.ceil(elements[None, :] / designs.vector_lanes[:, None])
                                 * pe / f[:, None], t_h),
               "saved": saved}
        vstart = np.concatenate([[0], np.cumsum(nv)])

    casts = _casts_on(designs)
    cast_bw = designs.hbm_bw_bytes_per_s * designs.hbm_efficiency
    frac_l = 2.0 ** -np.arange(nl)
    out = []
    for gi, (a, ct) in enumerate(zip(arrs_l, comm)):
        o = len(a.names)
        lat = np.zeros((d, o, nl))
        comp = np.zeros((d, o, nl))
        hbm_s = np.zeros((d, o, nl))
        sram_s = np.zeros((d, o, nl))
        hbm_b = np.zeros((d, o, nl))
        energy = np.zeros((d, o, nl))
        bound = np.zeros((d, o, nl), dtype=np.int8)
        one_unit = np.zeros((d, o))
        fused = np.zeros((d, o))
        g = a.gemm
        if len(g):
            q = pos[gi]
            for sel, src in ((~a.gemm_hp, gem), (a.gemm_hp, gem16)) if gem16 is not gem \
                    else ((slice(None), gem),):
                gs, qs = g[sel], q[sel]
                lat[:, gs], comp[:, gs] = src["lat"][:, qs], src["comp"][:, qs]
                hbm_s[:, gs], sram_s[:, gs] = src["hbm_s"][:, qs], src["sram_s"][:, qs]
                hbm_b[:, gs], energy[:, gs] = src["hbm_b"][:, qs], src["energy"][:, qs]
                bound[:, gs] = src["bound"][:, qs]
                one_unit[:, gs] = src["one"][:, qs]
            cast = ~a.gemm_hp & (a.gemm_cast_bytes > 0)
            if gem16 is not gem and cast.any() and casts.any():
                # FP8 GEMMs on a GPU: Transformer Engine's cast kernels (fp8_cast_bytes)
                gs = g[cast]
                cb = a.gemm_cast_bytes[cast][None, :, None] * casts[:, None, None]
                t = cb / (cast_bw[:, None, None] * frac_l[None, None, :])
                lat[:, gs] += t
                hbm_b[:, gs] += cb
                energy[:, gs] += cb * c["hbm_energy_j_per_byte"][:, None, None]
                one_unit[:, gs] += t[:, :, 0]
        if len(a.att):  # attention runs in 16 bits (high_precision)
            at_ = _attention_costs(a, apos[gi], gem16, d16, c16)
            ai = a.att
            lat[:, ai], comp[:, ai], hbm_s[:, ai] = at_["lat"], at_["comp"], at_["hbm_s"]
            hbm_b[:, ai], energy[:, ai] = at_["hbm_b"], at_["energy"]
            bound[:, ai], one_unit[:, ai] = at_["bound"], at_["one"]
        v = a.vec
        if len(v):
            sl = slice(int(vstart[gi]), int(vstart[gi + 1]))
            lat[:, v] = vec["lat"][:, sl, None]
            comp[:, v] = vec["comp"][:, sl, None]
            hbm_s[:, v] = vec["hbm_s"][:, sl, None]
            hbm_b[:, v] = vec["hbm_b"][:, sl, None]
            energy[:, v] = vec["energy"][:, sl, None]
            bound[:, v] = vec["bound"][:, sl, None]
            one_unit[:, v] = vec["one"][:, sl]
            fused[:, v] = vec["saved"][:, sl]
        cm = a.comm
        if len(cm):
            t = _comm_matrix(a, d, ct)
            lat[:, cm] = t[:, :, None]
            one_unit[:, cm] = t
            bound[:, cm] = _B_LINK
            energy[:, cm] = (a.comm_bytes[None, :] * c["link_energy_j_per_byte"][:, None]
                             )[:, :, None]
        memory = np.maximum(hbm_s[:, :, 0], sram_s[:, :, 0])
        if len(cm):
            memory[:, cm] = lat[:, cm, 0]
        for x in (lat, comp, hbm_s, sram_s, hbm_b, energy, bound, one_unit, fused, memory):
            x.setflags(write=False)
        out.append(OpCosts(
            names=a.names, unit=tuple(UNITS[x] for x in a.unit_code), unit_code=a.unit_code,
            count=a.count, latency_s=lat[:, :, 0], compute_s=comp[:, :, 0], memory_s=memory,
            hbm_s=hbm_s[:, :, 0], sram_s=sram_s[:, :, 0], hbm_bytes=hbm_b[:, :, 0],
            energy_j=energy[:, :, 0], bound_code=bound[:, :, 0],
            latency_one_unit_s=one_unit, fused_bytes=fused, latency_levels_s=lat,
            compute_levels_s=comp, hbm_levels_s=hbm_s, sram_levels_s=sram_s,
            hbm_bytes_levels=hbm_b, energy_levels_j=energy, bound_levels=bound, level_ok=lok,
            unknown_vector_ops=a.unknown))
    return out


# ------------------------------------------------------------------------ scalar reference
def op_costs_scalar(graph: Graph, hw: Any, tech: Technology, comm_time_s: Any = None, *,
                    levels: int = LEVELS) -> list[dict[str, Any]]:
    """Plain-Python reference of :func:`op_costs` for one design ``hw``: one dict per
    operator with ``unit``, ``bound`` (whole chip) and per-level lists ``latency_s``,
    ``compute_s``, ``hbm_s``, ``sram_s``, ``hbm_bytes``, ``energy_j``, ``bound_levels``,
    and ``fused_bytes``, ``level_ok`` (list of bool). On a sub-16-bit design the
    :func:`high_precision` operators are costed on its 16-bit form (:func:`sixteen_bit`)."""
    out = _op_costs_scalar_one(graph, hw, tech, comm_time_s, levels=levels)
    if int(hw.dtype_bytes) >= 2:
        return out
    hw16 = sixteen_bit(DesignBatch.from_configs([hw])).config(0)
    hi = _op_costs_scalar_one(graph, hw16, tech, comm_time_s, levels=levels)
    hp = high_precision(graph)
    if int(hw.single_stream) == 1:  # Transformer Engine's FP8 casts (fp8_cast_bytes)
        cast = fp8_cast_bytes(graph)
        bw = float(hw.hbm_bw_bytes_per_s) * float(hw.hbm_efficiency)
        e_b = float(node_constants(DesignBatch.from_configs([hw]), tech)[
            "hbm_energy_j_per_byte"][0])
        for j, rec in enumerate(out):
            if hp[j] or cast[j] <= 0:
                continue
            t = [float(cast[j]) / (bw * 2.0 ** -a) for a in range(len(rec["latency_s"]))]
            rec["latency_s"] = [x + y for x, y in zip(rec["latency_s"], t)]
            rec["hbm_bytes"] = [x + float(cast[j]) for x in rec["hbm_bytes"]]
            rec["energy_j"] = [x + float(cast[j]) * e_b for x in rec["energy_j"]]
    return [h if hp[j] else o for j, (o, h) in enumerate(zip(out, hi))]


def _op_costs_scalar_one(graph: Graph, hw: Any, tech: Technology, comm_time_s: Any = None,
                         *, levels: int = LEVELS) -> list[dict[str, Any]]:
    """:func:`op_costs_scalar` with every operator at the design's own datatype."""
    batch1 = DesignBatch.from_configs([hw])
    cst = {key: float(val[0]) for key, val in node_constants(batch1, tech).items()}
    arrs = graph_arrays(graph)
    comm = _comm_matrix(arrs, 1, comm_time_s)[0]
    comm_pos = {int(j): i for i, j in enumerate(arrs.comm)}
    lok = [bool(x) for x in level_ok(batch1, levels)[0]]
    f = float(hw.freq_hz)
    p = int(hw.tensor_cores)
    r, cc_ = int(hw.array_rows), int(hw.array_cols)
    df = hw.dataflow
    dtb = float(hw.dtype_bytes)
    db = bool(hw.weight_double_buffer == 1
              and hw.sram_per_core_bytes >= 2.0 * r * cc_ * hw.dtype_bytes)
    sram_total = float(hw.sram_bytes)
    fabric_bw = float(hw.global_buffer_bw_bytes_per_cycle) * f
    e_fabric = (cst["global_buffer_energy_j_per_byte"] if hw.global_buffer_bytes > 0
                else cst["sram_core_energy_j_per_byte"])
    lanes = float(hw.vector_cores * hw.vector_lanes)
    preds = graph.pred_indices
    hbm_bw = float(hw.hbm_bw_bytes_per_s) * float(hw.hbm_efficiency)
    eff = float(hw.matmul_efficiency)
    nl = LEVELS
    out: list[dict[str, Any]] = []
    traffic: dict[tuple[int, int, int, int, float], float] = {}

    def blocked(m: int, k: int, n: int, b: int, sram: float) -> float:
        key = (m, k, n, b, sram)
        if key not in traffic:
            traffic[key] = _blocked_traffic_scalar(m, k, n, b, r, cc_, _LOOP_ORDERS, dtb, sram)
        return traffic[key]

    for j, op in enumerate(graph.ops):
        rec: dict[str, Any] = {"fused_bytes": 0.0, "level_ok": lok}
        if op.kind == "gemm":
            m, k, n, b = op.m, op.k, op.n, op.batch
            cc = int(systolic.compute_cycles(m, k, n, r, cc_, df, double_buffer=db))
            acc = systolic.sram_accesses(m, k, n, r, cc_, df)
            sram_b = b * ((acc["ifmap_sram_reads"] + acc["filter_sram_reads"]) * dtb
                          + acc["ofmap_sram_writes"] * cst["accumulator_bytes"])
            lv: dict[str, list[Any]] = {x: [] for x in ("latency_s", "compute_s", "hbm_s",
                                                         "sram_s", "hbm_bytes", "energy_j",
                                                         "bound_levels")}
            for a in range(nl):
                gcores = max(p >> a, 1)
                fr = 2.0 ** -a
                t_comp = _gemm_cycles_scalar(m, k, n, b, r, cc_, df, db, gcores,
                                             cc) / (f * eff)
                s_tot = gcores * float(hw.sram_per_core_bytes) + float(
                    hw.global_buffer_bytes) * fr
                s_core = gcores * float(hw.sram_per_core_bytes)
                hb = blocked(m, k, n, b, s_tot)
                fb = blocked(m, k, n, b, s_core)
                t_hbm = hb / (hbm_bw * fr)
                t_fab = fb / (fabric_bw * fr)
                t_mem = max(t_hbm, t_fab)
                lv["latency_s"].append(max(t_comp, t_mem))
                lv["compute_s"].append(t_comp)
                lv["hbm_s"].append(t_hbm)
                lv["sram_s"].append(t_fab)
                lv["hbm_bytes"].append(hb)
                lv["energy_j"].append(b * float(m * k * n) * cst["mac_energy_j"]
                                      + sram_b * cst["sram_core_energy_j_per_byte"]
                                      + fb * e_fabric + hb * cst["hbm_energy_j_per_byte"])
                lv["bound_levels"].append("tensor" if t_comp >= t_mem
                                          else ("hbm" if t_hbm >= t_fab else "sram"))
            rec.update(unit="tc", bound=lv["bound_levels"][0], **lv)
        elif op.kind == "attention":
            rec.update(unit="tc", **_attention_scalar(op, hw, cst, nl))
        elif op.kind in _COMM_KINDS:
            t = float(comm[comm_pos[j]])
            e = float(op.comm_bytes) * cst["link_energy_j_per_byte"]
            rec.update(unit="link", bound="link", latency_s=[t] * nl, compute_s=[0.0] * nl,
                       hbm_s=[0.0] * nl, sram_s=[0.0] * nl, hbm_bytes=[0.0] * nl,
                       energy_j=[e] * nl, bound_levels=["link"] * nl)
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
            row_fits = 0 < op.row * ROW_BYTES <= float(hw.sram_per_core_bytes)
            spill = (float(op.bytes_in) if op.kind in _TWO_PASS_KINDS
                     and op.bytes_in > sram_total and not row_fits else 0.0)
            hb = float(op.bytes_in + op.bytes_out + op.bytes_weight) - saved + spill
            t_hbm = hb / hbm_bw
            e = (float(op.elements) * pe * cst["vector_op_energy_j"]
                 + hb * cst["hbm_energy_j_per_byte"]
                 + saved * cst["sram_core_energy_j_per_byte"])
            bd = "vector" if t_comp >= t_hbm else "hbm"
            rec.update(unit="vc", bound=bd, latency_s=[max(t_comp, t_hbm)] * nl,
                       compute_s=[t_comp] * nl, hbm_s=[t_hbm] * nl, sram_s=[0.0] * nl,
                       hbm_bytes=[hb] * nl, energy_j=[e] * nl, bound_levels=[bd] * nl,
                       fused_bytes=saved)
        out.append(rec)
    return out


def _gemm_cycles_scalar(m: int, k: int, n: int, b: int, r: int, c: int, df: str,
                        dbuf: bool, gcores: int, cc: int) -> float:
    """Plain-Python :func:`_multi_core_cycles`: ``b`` GEMMs on ``gcores`` cores, the batch
    in parallel groups or each GEMM split over all cores, whichever is faster (``cc``: one
    GEMM on one core)."""
    if b >= gcores:
        grouped = math.ceil(b / gcores) * cc
    else:
        grouped = int(systolic.gemm_cycles_multi_core(m, k, n, r, c, df, max(gcores // b, 1),
                                                      double_buffer=dbuf))
    serial = b * int(systolic.gemm_cycles_multi_core(m, k, n, r, c, df, gcores,
                                                     double_buffer=dbuf))
    return float(min(grouped, serial))


def _attention_scalar(op: Any, hw: Any, cst: dict[str, float], nl: int) -> dict[str, Any]:
    """Plain-Python costs of one fused attention operator at every level (reference of
    :func:`_attention_costs`)."""
    f, eff = float(hw.freq_hz), float(hw.matmul_efficiency)
    p, r, cl, df = int(hw.tensor_cores), int(hw.array_rows), int(hw.array_cols), hw.dataflow
    dtb = float(hw.dtype_bytes)
    dbuf = bool(hw.weight_double_buffer == 1
                and hw.sram_per_core_bytes >= 2.0 * r * cl * hw.dtype_bytes)
    m, k, n, b = op.m, op.k, op.n, op.batch
    fwd = op.phase == "fwd"
    mult = fa.multiplicity("fwd" if fwd else "bwd")
    cf = op.elements / float(m * n * b)
    pe = pe_cycles(op.vector_op, op.phase, kind=op.kind,
                   flop_per_element=op.flop / op.elements if op.elements else 0.0)
    lanes = float(hw.vector_cores * hw.vector_lanes)
    hbm_bw = float(hw.hbm_bw_bytes_per_s) * float(hw.hbm_efficiency)

    def comp(mm: int, kk: int, nn: int, gcores: int) -> tuple[float, float]:
        cc = int(systolic.compute_cycles(mm, kk, nn, r, cl, df, double_buffer=dbuf))
        cyc = _gemm_cycles_scalar(mm, kk, nn, b, r, cl, df, dbuf, gcores, cc)
        return cyc / (f * eff), b * cc / (f * eff)

    lv: dict[str, list[Any]] = {x: [] for x in ("latency_s", "compute_s", "hbm_s", "sram_s",
                                                 "hbm_bytes", "energy_j", "bound_levels")}
    one = 0.0
    for a in range(nl):
        gcores = max(p >> a, 1)
        fr = 2.0 ** -a
        (c1, o1), (c2, o2) = comp(m, k, n, gcores), comp(m, n, k, gcores)
        t_tc = cf * (mult[0] * c1 + mult[1] * c2)
        t_vc = math.ceil(op.elements / max(math.floor(lanes * fr), 1)) * pe / f
        share = float(hw.sram_per_core_bytes) + float(hw.global_buffer_bytes) * fr / gcores
        br = fa.tile_rows_scalar(k, share, dtb, m if fwd else n)
        hb = fa.hbm_bytes_scalar(m, k, n, b, float(op.bytes_in + op.bytes_out), fwd, dtb, br,
                                 cf, gcores, float(hw.global_buffer_bytes) * fr)
        t_h = hb / (hbm_bw * fr)
        work = t_tc + t_vc
        lv["latency_s"].append(max(work, t_h))
        lv["compute_s"].append(work)
        lv["hbm_s"].append(t_h)
        lv["sram_s"].append(0.0)
        lv["hbm_bytes"].append(hb)
        lv["energy_j"].append(op.flop / 2.0 * cst["mac_energy_j"]
                              + op.elements * pe * cst["vector_op_energy_j"]
                              + op.elements * 2.0 * fa.ACC_BYTES
                              * cst["sram_core_energy_j_per_byte"]
                              + hb * cst["hbm_energy_j_per_byte"])
        lv["bound_levels"].append(("tensor" if t_tc >= t_vc else "vector") if work >= t_h
                                  else "hbm")
        if a == 0:
            one_vc = math.ceil(op.elements / float(hw.vector_lanes)) * pe / f
            one = max(cf * (mult[0] * o1 + mult[1] * o2) + one_vc, t_h)
    return {"bound": lv["bound_levels"][0], "latency_one_unit_s": one, **lv}
