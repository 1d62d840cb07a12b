"""Core data model of dse (design brief §3).

Frozen, keyword-only dataclasses validated in ``__post_init__``; derive variants with
:func:`dataclasses.replace`. SI units inside, unit suffixes in field names.

Conventions
-----------
* A GEMM operator multiplies an ``m × k`` matrix by a ``k × n`` matrix, ``batch`` times
  (independent GEMMs, e.g. attention heads); ``flop = 2·m·k·n·batch``.
* ``count`` is the multiplicity of an operator: a transformer block is stored once and
  executed ``count = L`` times, one after the other. All per-operator quantities
  (``flop``, ``bytes_*``, ``elements``) are **per execution**; totals multiply by ``count``.
* ``bytes_in``/``bytes_out`` are activation bytes read/written per execution,
  ``bytes_weight`` the parameter (or optimizer-state) bytes read per execution.

>>> op = Operator(name="ffn1", kind="gemm", phase="fwd", m=2048, k=4096, n=16384,
...               flop=2.0 * 2048 * 4096 * 16384, count=28)
>>> op.total_flop == 28 * op.flop
True
>>> hw = HardwareConfig(name="toy", tensor_cores=2, array_rows=128, array_cols=128,
...                     vector_cores=2, vector_lanes=128, freq_hz=1e9,
...                     hbm_bw_bytes_per_s=1e12, hbm_bytes=16 * 1024**3)
>>> hw.peak_flop_per_s
65536000000000.0
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from dse.errors import ConfigError, WorkloadError
from dse.units import DTYPE_BYTES

OP_KINDS: tuple[str, ...] = (
    "gemm",
    "attention",
    "elementwise",
    "activation",
    "reduction",
    "softmax",
    "norm",
    "pool",
    "embedding_gather",
    "embedding_scatter",
    "loss",
    "optimizer",
    "collective",
    "sendrecv",
)
"""Operator kinds. Convolutions are lowered to ``gemm`` (im2col dims) by the importers;
``attention`` is a fused (FlashAttention-style) attention core on the tensor cores."""

PHASES: tuple[str, ...] = ("fwd", "bwd_data", "bwd_weight", "optimizer", "comm")
DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")
DTYPES: tuple[str, ...] = tuple(DTYPE_BYTES)
TOPOLOGIES: tuple[str, ...] = ("ring", "switch", "torus2d", "torus3d", "fully_connected")
SCHEDULES: tuple[str, ...] = ("1f1b", "gpipe", "interleaved")
RECOMPUTE: tuple[str, ...] = ("none", "selective", "full")
DISPATCHERS: tuple[str, ...] = ("alltoall", "deepep")
"""Mixture-of-experts token dispatchers (:attr:`ParallelPlan.dispatcher`)."""
RECOMPUTE_MODULES: tuple[str, ...] = ("core_attn", "layernorm", "mla_up_proj", "mlp", "moe",
                                      "moe_act", "shared_experts")
"""Megatron-Core's ``--recompute-modules`` (``TransformerConfig.recompute_modules``)."""
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
COLLECTIVES: tuple[str, ...] = (
    "all_reduce",
    "reduce_scatter",
    "all_gather",
    "all_to_all",
    "p2p",
)
COMM_GROUPS: tuple[str, ...] = ("tp", "pp", "dp", "ep", "cp", "edp", "dp_intra", "dp_inter")
_KIND_SET = frozenset(OP_KINDS)
_PHASE_SET = frozenset(PHASES)
_OP_NON_NEGATIVE_FIELDS = ("flop", "bytes_in", "bytes_out", "bytes_weight", "stash_bytes",
                           "comm_bytes", "m", "k", "n", "elements", "params", "row")
_OP_POSITIVE_FIELDS = ("batch", "count", "dtype_bytes")
_OP_NON_NEGATIVE = operator.attrgetter(*_OP_NON_NEGATIVE_FIELDS)
_OP_POSITIVE = operator.attrgetter(*_OP_POSITIVE_FIELDS)


def _choice(cls: type[Exception], owner: str, field_name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise cls(f"{owner}.{field_name}={value!r} is not valid; choose one of {', '.join(valid)}")


_HW_RANGED = ("tensor_cores", "array_rows", "array_cols", "vector_cores", "vector_lanes",
              "hbm_stacks", "link_count", "freq_hz", "hbm_bw_bytes_per_s", "hbm_bytes",
              "sram_per_core_bytes", "global_buffer_bytes", "global_buffer_bw_bytes_per_cycle",
              "link_bw_bytes_per_s", "tech_node_nm")


def _number_hint(value: Any) -> str:
    """Why a text that reads as a number is text: YAML 1.1 takes ``1e-9`` (no dot) for a
    string."""
    import re

    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
        return (f" (YAML reads {value.strip()}, without a dot before the exponent, as text: "
                "write it as 1.0e-9 is written)")
    return ""


def _positive(cls: type[Exception], owner: str, field_name: str, value: float) -> None:
    if isinstance(value, (bool, np.bool_)):
        raise cls(f"{owner}.{field_name}={value!r} must be a number, not a boolean")
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)):
        raise cls(f"{owner}.{field_name}={value!r} must be a finite number"
                  f"{_number_hint(value)}")
    if value <= 0:
        raise cls(f"{owner}.{field_name}={value!r} must be > 0")


def _non_negative(cls: type[Exception], owner: str, field_name: str, value: float) -> None:
    if isinstance(value, (bool, np.bool_)):
        raise cls(f"{owner}.{field_name}={value!r} must be a number, not a boolean")
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)):
        raise cls(f"{owner}.{field_name}={value!r} must be a finite number"
                  f"{_number_hint(value)}")
    if value < 0:
        raise cls(f"{owner}.{field_name}={value!r} must be >= 0")


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True, kw_only=True)
class Operator:
    """One operator of a training step (per execution; see module docstring)."""

    name: str
    kind: str
    phase: str
    flop: float = 0.0
    m: int = 0
    k: int = 0
    n: int = 0
    batch: int = 1
    elements: int = 0
    """Elements produced (vector ops) or processed (optimizer: parameters updated)."""
    vector_op: str = ""
    """Key of the vector cycle table (``relu``, ``gelu``, ``softmax``, ``layernorm``, ``adam`` …)."""
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    bytes_weight: float = 0.0
    dtype_bytes: int = 2
    count: int = 1
    block: str = ""
    """Name of the repeated block this op belongs to ('' for unique ops)."""
    layer: int = -1
    stage: int = 0
    params: int = 0
    """Parameters owned (forward op) or updated (optimizer op) per execution."""
    stash_bytes: float = 0.0
    """Activation bytes this forward op keeps alive for its backward pass (per execution)."""
    fwd: str = ""
    """For backward ops: name of the forward op they differentiate."""
    collective: str = ""
    group: str = ""
    comm_bytes: float = 0.0
    """Payload of a collective or p2p op, bytes per participating device."""
    row: int = 0
    """Row-wise vector ops (softmax, LayerNorm/RMSNorm): elements of one row, the unit
    the kernel reduces on chip (0: not row-wise or unknown)."""

    def __post_init__(self) -> None:
        # graphs hold 10^5-10^6 operators a search: the common valid case is checked in one
        # expression; anything else goes through the field-by-field checks that name it
        try:
            nonneg, pos = _OP_NON_NEGATIVE(self), _OP_POSITIVE(self)
            ok = bool(self.name) and isinstance(self.name, str) and self.kind in _KIND_SET \
                and self.phase in _PHASE_SET and min(nonneg) >= 0 and min(pos) > 0 \
                and math.isfinite(sum(nonneg) + sum(pos))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            self._check_fields()
        if self.kind == "gemm" and min(self.m, self.k, self.n) <= 0:
            raise WorkloadError(
                f"Operator[{self.name}] is a gemm but m,k,n = {self.m},{self.k},{self.n}; "
                "all must be >= 1"
            )
        if self.kind in ("collective", "sendrecv"):
            _choice(WorkloadError, f"Operator[{self.name}]", "collective", self.collective,
                    COLLECTIVES)
            _choice(WorkloadError, f"Operator[{self.name}]", "group", self.group, COMM_GROUPS)

    def _check_fields(self) -> None:
        """Field-by-field validation, raising :class:`WorkloadError` naming the field."""
        if not self.name or not isinstance(self.name, str):
            raise WorkloadError("Operator.name must be a non-empty string")
        _choice(WorkloadError, f"Operator[{self.name}]", "kind", self.kind, OP_KINDS)
        _choice(WorkloadError, f"Operator[{self.name}]", "phase", self.phase, PHASES)
        for f in _OP_NON_NEGATIVE_FIELDS:
            _non_negative(WorkloadError, f"Operator[{self.name}]", f, getattr(self, f))
        for f in _OP_POSITIVE_FIELDS:
            _positive(WorkloadError, f"Operator[{self.name}]", f, getattr(self, f))

    @property
    def is_gemm(self) -> bool:
        return self.kind == "gemm"

    @property
    def is_comm(self) -> bool:
        return self.kind in ("collective", "sendrecv")

    @property
    def total_flop(self) -> float:
        return self.flop * self.count

    @property
    def bytes_total(self) -> float:
        """Bytes moved per execution (activations in and out plus weights)."""
        return self.bytes_in + self.bytes_out + self.bytes_weight


# Numeric columns of Graph.columns(); strings are mapped to integer codes.
_NUM_COLUMNS = (
    "flop", "m", "k", "n", "batch", "elements", "bytes_in", "bytes_out", "bytes_weight",
    "dtype_bytes", "count", "stage", "params", "stash_bytes", "comm_bytes", "row",
)


@dataclass(frozen=True, kw_only=True)
class Graph:
    """A training-step operator DAG.

    ``edges`` are (producer name, consumer name). Operators are stored in a topological
    order (checked). ``meta`` holds model facts (``family``, ``params``, ``seq_len``,
    ``batch``, ``layers`` …) used by reports and partitioning.
    """

    name: str
    ops: tuple[Operator, ...]
    edges: tuple[tuple[str, str], ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "edges", tuple((str(a), str(b)) for a, b in self.edges))
        pos: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            if op.name in pos:
                raise WorkloadError(f"Graph[{self.name}] has two operators named {op.name!r}")
            pos[op.name] = i
        for a, b in self.edges:
            if a not in pos or b not in pos:
                missing = a if a not in pos else b
                raise WorkloadError(f"Graph[{self.name}] edge {a!r}->{b!r}: no operator {missing!r}")
            if pos[a] >= pos[b]:
                raise WorkloadError(
                    f"Graph[{self.name}] edge {a!r}->{b!r} goes backwards in the stored "
                    "order: operators must be stored topologically"
                )

    # -- lookups ---------------------------------------------------------------------
    @cached_property
    def index(self) -> dict[str, int]:
        """Operator name -> position in ``ops``."""
        return {op.name: i for i, op in enumerate(self.ops)}

    def op(self, name: str) -> Operator:
        try:
            return self.ops[self.index[name]]
        except KeyError:
            raise WorkloadError(f"Graph[{self.name}] has no operator {name!r}") from None

    @cached_property
    def pred_indices(self) -> tuple[tuple[int, ...], ...]:
        """For each operator, the positions of its predecessors."""
        preds: list[list[int]] = [[] for _ in self.ops]
        idx = self.index
        for a, b in self.edges:
            preds[idx[b]].append(idx[a])
        return tuple(tuple(p) for p in preds)

    @cached_property
    def succ_indices(self) -> tuple[tuple[int, ...], ...]:
        succs: list[list[int]] = [[] for _ in self.ops]
        idx = self.index
        for a, b in self.edges:
            succs[idx[a]].append(idx[b])
        return tuple(tuple(s) for s in succs)

    def nx(self) -> Any:
        """The DAG as a :class:`networkx.DiGraph` with operators as node attribute ``op``."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for op in self.ops:
            g.add_node(op.name, op=op)
        g.add_edges_from(self.edges)
        return g

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """Columnar view for vectorized costing: one numpy array per numeric field, plus
        integer codes ``kind_code``/``phase_code`` (indices into OP_KINDS/PHASES) and the
        object arrays ``vector_op``, ``collective``, ``group``, ``name``."""
        cols: dict[str, np.ndarray] = {}
        for c in _NUM_COLUMNS:
            cols[c] = np.array([getattr(op, c) for op in self.ops], dtype=np.float64)
        cols["kind_code"] = np.array([OP_KINDS.index(op.kind) for op in self.ops], dtype=np.int64)
        cols["phase_code"] = np.array([PHASES.index(op.phase) for op in self.ops], dtype=np.int64)
        for c in ("vector_op", "collective", "group", "name", "kind", "phase"):
            cols[c] = np.array([getattr(op, c) for op in self.ops], dtype=object)
        for a in cols.values():
            a.setflags(write=False)
        return cols

    @cached_property
    def derived(self) -> dict[str, Any]:
        """Scratch space where cost models memoize design-independent arrays of this graph
        (keyed by module name; a graph is immutable, so they never go stale)."""
        return {}

    # -- aggregates ------------------------------------------------------------------
    def total_flop(self, phase: str | None = None) -> float:
        return float(sum(op.total_flop for op in self.ops if phase is None or op.phase == phase))

    @property
    def num_ops(self) -> int:
        """Operators executed in one step (multiplicity counted)."""
        return int(sum(op.count for op in self.ops))

    @property
    def num_unique_ops(self) -> int:
        return len(self.ops)

    def with_ops(self, ops: tuple[Operator, ...], edges: tuple[tuple[str, str], ...] | None = None,
                 **meta: Any) -> Graph:
        """A copy with other operators (and edges, and extra meta)."""
        return dataclasses.replace(
            self, ops=tuple(ops), edges=self.edges if edges is None else tuple(edges),
            meta={**self.meta, **meta},
        )


# --------------------------------------------------------------------------- hardware


@dataclass(frozen=True, kw_only=True)
class HardwareConfig:
    """One accelerator chip built from the template (brief §3).

    Tensor cores are ``array_rows × array_cols`` systolic arrays of MACs; vector cores
    are SIMD units of ``vector_lanes`` lanes. Each tensor core has a private SRAM of
    ``sram_per_core_bytes``; all cores share a global buffer. Off-chip: HBM.
    """

    name: str
    tensor_cores: int
    array_rows: int
    array_cols: int
    vector_cores: int
    vector_lanes: int
    freq_hz: float
    hbm_bw_bytes_per_s: float
    hbm_bytes: float
    dataflow: str = "ws"
    dtype: str = "bf16"
    sram_per_core_bytes: float = 2 * 1024**2
    global_buffer_bytes: float = 16 * 1024**2
    global_buffer_bw_bytes_per_cycle: float = 4096.0
    hbm_stacks: int = 4
    link_count: int = 4
    link_bw_bytes_per_s: float = 50e9
    """Chip-to-chip link bandwidth, per link and direction."""
    tech_node_nm: float = 7.0
    matmul_efficiency: float = 1.0
    """Measured fraction of the analytical systolic GEMM throughput that the real device
    sustains (0 < x <= 1). 1.0 for designs of the template, whose GEMM time the systolic
    model is; GPU presets carry the measured Maximum Achievable Matmul FLOPS over the dense
    peak (power-limited clocks and instruction issue, which an array model does not see)."""
    matmul_efficiency_16bit: float = 0.0
    """On a design whose tensor cores compute in fewer than 16 bits (fp8, int8): the
    fraction its 16-bit GEMMs sustain (attention, output head, router:
    :func:`cost_models.opcost.high_precision`), 0 for the same as ``matmul_efficiency``.
    A GPU sustains a lower fraction of its FP8 peak than of its BF16 one (FP8 draws more
    power per clock at the cap); the template's arrays have one efficiency, 0."""
    hbm_efficiency: float = 1.0
    """Measured fraction of the HBM bandwidth that memory-bound kernels sustain
    (0 < x <= 1); it divides every HBM time. 1.0 for template designs; GPU presets carry a
    measured streaming bandwidth over the datasheet rate (refresh, bank and page
    conflicts, read/write turnaround)."""
    single_stream: int = 0
    """1: tensor-core and vector-core operators run one at a time, as a GPU's kernels on
    one CUDA stream do (both run on the same SMs, ``vector_cores`` of them; PyTorch issues
    a training step's compute on one stream), a collective overlapping computation holds
    some of those SMs (NCCL's 24, at most 90 % of the chip:
    :mod:`cost_models.contention`), and FP8 GEMMs pay Transformer Engine's cast kernels
    (:func:`cost_models.opcost.fp8_cast_bytes`); 0 (template designs): separate units that
    overlap, links with their own engines, producers that write FP8 themselves."""
    weight_double_buffer: int = 0
    """1: weight-/input-stationary arrays load the next fold's stationary tile while the
    current fold computes (the TPU MXU's weight shadow registers; needs room for two
    tiles, ``2·rows·cols·dtype_bytes``, in the core's SRAM); 0: every fold waits for its
    tile, SCALE-Sim's timing (``cost_models.systolic.compute_cycles``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"HardwareConfig.name={self.name!r} must be a string")
        o = f"HardwareConfig[{self.name}]"
        for f in ("tensor_cores", "array_rows", "array_cols", "vector_cores", "vector_lanes",
                  "hbm_stacks"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise ConfigError(f"{o}.{f}={v!r} must be an integer")
            _positive(ConfigError, o, f, v)
        _non_negative(ConfigError, o, "link_count", self.link_count)
        for f in ("freq_hz", "hbm_bw_bytes_per_s", "hbm_bytes", "sram_per_core_bytes",
                  "global_buffer_bw_bytes_per_cycle", "tech_node_nm"):
            _positive(ConfigError, o, f, getattr(self, f))
        for f in ("global_buffer_bytes", "link_bw_bytes_per_s"):
            _non_negative(ConfigError, o, f, getattr(self, f))
        _choice(ConfigError, o, "dataflow", self.dataflow, DATAFLOWS)
        _choice(ConfigError, o, "dtype", self.dtype, DTYPES)
        _positive(ConfigError, o, "matmul_efficiency", self.matmul_efficiency)
        if self.matmul_efficiency > 1:
            raise ConfigError(f"{o}.matmul_efficiency={self.matmul_efficiency!r} must be <= 1")
        _non_negative(ConfigError, o, "matmul_efficiency_16bit", self.matmul_efficiency_16bit)
        if self.matmul_efficiency_16bit > 1:
            raise ConfigError(f"{o}.matmul_efficiency_16bit={self.matmul_efficiency_16bit!r} "
                              "must be <= 1 (0: as matmul_efficiency)")
        if self.matmul_efficiency_16bit > 0 and DTYPE_BYTES.get(self.dtype, 2) >= 2:
            raise ConfigError(f"{o}.matmul_efficiency_16bit={self.matmul_efficiency_16bit!r} "
                              f"applies to designs whose tensor cores compute in fewer than "
                              f"16 bits (fp8, int8), not dtype {self.dtype}; leave it 0")
        _positive(ConfigError, o, "hbm_efficiency", self.hbm_efficiency)
        if self.hbm_efficiency > 1:
            raise ConfigError(f"{o}.hbm_efficiency={self.hbm_efficiency!r} must be <= 1")
        for f in ("single_stream", "weight_double_buffer"):
            if getattr(self, f) not in (0, 1):
                raise ConfigError(f"{o}.{f}={getattr(self, f)!r} must be 0 or 1")
        from dse.limits import check

        for f in _HW_RANGED:  # physical ranges (dse.limits): no overflow downstream
            check(f, getattr(self, f), owner=o)

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def macs(self) -> int:
        return self.tensor_cores * self.array_rows * self.array_cols

    @property
    def peak_flop_per_s(self) -> float:
        """Dense tensor-core peak: cores × rows × cols × 2 FLOP/MAC × clock."""
        return float(self.macs * 2 * self.freq_hz)

    @property
    def vector_flop_per_s(self) -> float:
        """Vector peak at one op per lane per cycle."""
        return float(self.vector_cores * self.vector_lanes * self.freq_hz)

    @property
    def sram_bytes(self) -> float:
        """All on-chip SRAM: per-core buffers plus the global buffer."""
        return float(self.tensor_cores * self.sram_per_core_bytes + self.global_buffer_bytes)


@dataclass(frozen=True, kw_only=True)
class SystemConfig:
    """How devices are connected (brief §3): nodes of ``devices_per_node`` devices with
    a fast intra-node fabric, nodes joined by NICs. Bandwidths are per device and
    direction; latencies per message hop."""

    devices_per_node: int = 8
    intra_node_topology: str = "switch"
    intra_node_bw_bytes_per_s: float = 300e9
    intra_node_latency_s: float = 2e-6
    inter_node_topology: str = "switch"
    inter_node_bw_bytes_per_s: float = 25e9
    inter_node_latency_s: float = 5e-6
    torus_dims: tuple[int, ...] = ()
    """For torus topologies: the pod shape (e.g. (16, 16) for a 2-D torus)."""

    def __post_init__(self) -> None:
        o = "SystemConfig"
        _positive(ConfigError, o, "devices_per_node", self.devices_per_node)
        _choice(ConfigError, o, "intra_node_topology", self.intra_node_topology, TOPOLOGIES)
        _choice(ConfigError, o, "inter_node_topology", self.inter_node_topology, TOPOLOGIES)
        for f in ("intra_node_bw_bytes_per_s", "inter_node_bw_bytes_per_s"):
            _positive(ConfigError, o, f, getattr(self, f))
        for f in ("intra_node_latency_s", "inter_node_latency_s"):
            _non_negative(ConfigError, o, f, getattr(self, f))
        from dse.limits import check

        for f in ("devices_per_node", "intra_node_bw_bytes_per_s", "inter_node_bw_bytes_per_s",
                  "intra_node_latency_s", "inter_node_latency_s"):
            check(f, getattr(self, f), owner=o)
        if isinstance(self.torus_dims, (str, bytes)) or not isinstance(
                self.torus_dims, (tuple, list)):
            raise ConfigError(f"{o}.torus_dims={self.torus_dims!r} must be a list of sizes, "
                              "e.g. [16, 16] for a 2-D torus")
        for d in self.torus_dims:
            check("torus_dim", d, owner=o)
        object.__setattr__(self, "torus_dims", tuple(int(d) for d in self.torus_dims))
        want = {{"torus2d": 2, "torus3d": 3}.get(t) for t in (self.intra_node_topology,
                                                         self.inter_node_topology)} - {None}
        if self.torus_dims and len(want) > 1:
            raise ConfigError(f"{o}: a 2-D and a 3-D torus share one torus_dims; give the "
                              "torus levels the same topology")
        if self.torus_dims and want and len(self.torus_dims) not in want:
            n = want.pop()
            raise ConfigError(f"{o}.torus_dims={list(self.torus_dims)} has "
                              f"{len(self.torus_dims)} sizes; a {n}-D torus takes {n}")


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True, kw_only=True)
class ParallelPlan:
    """How a training step is spread over devices (Megatron-style tp × cp × pp × dp; ranks
    laid out tp innermost, then cp, dp and pp)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    global_batch: int = 1
    micro_batch: int = 1
    schedule: str = "1f1b"
    recompute: str = "none"
    optimizer: str = "adam"
    sequence_parallel: bool = False
    zero_stage: int = 0
    interleave: int = 1
    """Virtual pipeline stages per device for the ``interleaved`` schedule."""
    cp: int = 1
    """Context parallelism: each sample's sequence split over ``cp`` devices (ring
    attention); weights replicated over them, gradients reduced over ``dp·cp``."""
    ep: int = 1
    """Expert parallelism (mixture-of-experts models): the experts sharded over ``ep``
    ranks carved out of the ``tp·cp·dp`` ranks of a pipeline stage (Megatron-Core's
    expert rank order etp-ep-edp); tokens reach their experts by all-to-all. Expert
    gradients are reduced over the :attr:`expert_grad_group` ranks holding the same
    experts."""
    etp: int = 0
    """Expert tensor parallelism: 0 (Megatron-Core's default) splits each expert over the
    ``tp`` ranks like the dense MLP; 1 keeps experts whole, the tokens staying sharded over
    the tensor-parallel ranks (sequence parallelism) and the ``tp`` ranks joining the
    expert-parallel group (the DeepSeek-V3 recipes' ETP 1)."""

    dispatcher: str = "alltoall"
    """How a mixture-of-experts layer sends tokens to their experts: ``alltoall`` (NCCL
    all-to-all of one copy per routed expert, Megatron-Core's alltoall dispatcher) or
    ``deepep`` (DeepEP: one copy per destination node over the NICs, forwarded to the
    expert ranks inside the node; :func:`cost_models.network.deepep_all_to_all_time_s`)."""
    layout: tuple[int, ...] = ()
    """Transformer layers of each of the ``pp·v`` virtual pipeline stages in pipeline order
    (Megatron-Core's ``--pipeline-model-parallel-layout``, or its first/last stage layer
    counts); empty: balanced by cost (:func:`workloads.parallel.stage_layers`)."""
    recompute_modules: tuple[str, ...] = ()
    """With ``recompute="selective"``: Megatron-Core's recompute modules (``core_attn``,
    ``layernorm``, ``mla_up_proj``, ``mlp``, ``moe``, ``moe_act``, ``shared_experts``;
    :mod:`cost_models.recompute`); empty: the attention core of Korthikanti et al. 2022."""

    def __post_init__(self) -> None:
        o = "ParallelPlan"
        for f in ("tp", "pp", "dp", "global_batch", "micro_batch", "interleave", "cp", "ep"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise ConfigError(f"{o}.{f}={v!r} must be an integer")
            _positive(ConfigError, o, f, v)
        from dse.limits import RANGES

        hi = int(RANGES["--devices"].hi)
        for f in ("tp", "pp", "dp", "cp", "ep", "interleave", "global_batch", "micro_batch"):
            key = {"global_batch": "--global-batch", "micro_batch": "--micro-batch"}.get(
                f, f"--{f}")
            if getattr(self, f) > RANGES[key].hi:
                raise ConfigError(f"{o}.{f}={getattr(self, f)} is out of range: use 1 to "
                                  f"{int(RANGES[key].hi)}")
        if self.tp * self.cp * self.pp * self.dp > hi:
            raise ConfigError(f"{o}: tp*cp*pp*dp = {self.tp}*{self.cp}*{self.pp}*{self.dp} = "
                              f"{self.tp * self.cp * self.pp * self.dp} devices is out of "
                              f"range: use at most {hi} ({RANGES['--devices'].why})")
        _choice(ConfigError, o, "schedule", self.schedule, SCHEDULES)
        _choice(ConfigError, o, "recompute", self.recompute, RECOMPUTE)
        _choice(ConfigError, o, "dispatcher", self.dispatcher, DISPATCHERS)
        lay = self.layout
        if not isinstance(lay, (tuple, list)) or not all(
                isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0
                for x in lay):
            raise ConfigError(f"{o}.layout={lay!r} must be layer counts >= 0, one per "
                              "virtual stage")
        if not isinstance(lay, tuple):
            object.__setattr__(self, "layout", tuple(int(x) for x in lay))
        stages = self.pp * (self.interleave if self.schedule == "interleaved" else 1)
        if lay and len(lay) != stages:
            raise ConfigError(f"{o}: layout has {len(lay)} stages; pp*interleave = {stages}")
        mods = self.recompute_modules
        if not isinstance(mods, (tuple, list)) or not all(isinstance(m, str) for m in mods):
            raise ConfigError(f"{o}.recompute_modules={mods!r} must be a tuple of names")
        for m in mods:
            _choice(ConfigError, o, "recompute_modules", m, RECOMPUTE_MODULES)
        if mods and self.recompute != "selective":
            raise ConfigError(f"{o}: recompute modules {','.join(mods)} need "
                              f"recompute='selective', not {self.recompute!r}")
        if not isinstance(mods, tuple) or tuple(sorted(set(mods))) != mods:
            object.__setattr__(self, "recompute_modules", tuple(sorted(set(mods))))
        _choice(ConfigError, o, "optimizer", self.optimizer, OPTIMIZERS)
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"{o}.zero_stage={self.zero_stage!r} must be one of 0, 1, 2, 3")
        if self.etp not in (0, 1, self.tp) or isinstance(self.etp, bool):
            raise ConfigError(f"{o}.etp={self.etp!r} must be 0 (= tp), 1 or tp={self.tp}")
        ranks = self.tp * self.cp * self.dp // self.expert_tp
        if (self.tp * self.cp * self.dp) % self.expert_tp or ranks % self.ep:
            valid = [e for e in range(1, ranks + 1) if ranks % e == 0]
            raise ConfigError(f"{o}: ep={self.ep} must divide the {ranks} expert ranks of a "
                              f"stage (tp*cp*dp/etp = {self.tp}*{self.cp}*{self.dp}/"
                              f"{self.expert_tp}); valid ep: {', '.join(map(str, valid))}")
        if self.global_batch % (self.dp * self.micro_batch):
            raise ConfigError(
                f"{o}: global_batch={self.global_batch} must be divisible by "
                f"dp*micro_batch={self.dp}*{self.micro_batch}={self.dp * self.micro_batch}"
            )

    @property
    def devices(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @property
    def grad_group(self) -> int:
        """Ranks that hold the same weights and reduce their gradients: ``dp·cp``."""
        return self.dp * self.cp

    @property
    def expert_tp(self) -> int:
        """Ranks each expert is split over (``etp``, 0 meaning ``tp``)."""
        return self.etp or self.tp

    @property
    def expert_grad_group(self) -> int:
        """Ranks that hold the same experts and reduce their gradients:
        ``tp·cp·dp/(etp·ep)``."""
        return self.tp * self.cp * self.dp // (self.expert_tp * self.ep)

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per step: global_batch / (dp · micro_batch)."""
        return self.global_batch // (self.dp * self.micro_batch)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """The result of evaluating one design on one workload and plan (brief §3, §4).

    ``to_dict()`` gives the JSON of ``dse evaluate --json`` (contract keys first).
    """

    step_time_s: float
    samples_per_s: float
    achieved_flop_per_s_per_device: float
    area_mm2: float
    tdp_w: float
    energy_per_step_j: float
    memory_per_device_bytes: float
    fits_memory: bool
    critical_path: tuple[str, ...] = ()
    breakdown: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    utilization: float = 0.0
    area_breakdown_mm2: Mapping[str, float] = field(default_factory=dict, compare=False,
                                                    hash=False)
    power_breakdown_w: Mapping[str, float] = field(default_factory=dict, compare=False,
                                                   hash=False)
    memory_breakdown_bytes: Mapping[str, float] = field(default_factory=dict, compare=False,
                                                        hash=False)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def perf_per_tdp(self) -> float:
        """Samples per second per watt of TDP."""
        return self.samples_per_s / self.tdp_w if self.tdp_w > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "step_time_s": float(self.step_time_s),
            "samples_per_s": float(self.samples_per_s),
            "achieved_flop_per_s_per_device": float(self.achieved_flop_per_s_per_device),
            "area_mm2": float(self.area_mm2),
            "tdp_w": float(self.tdp_w),
            "energy_per_step_j": float(self.energy_per_step_j),
            "memory_per_device_bytes": float(self.memory_per_device_bytes),
            "fits_memory": bool(self.fits_memory),
            "critical_path": list(self.critical_path),
            "breakdown": _jsonable(self.breakdown),
            "utilization": float(self.utilization),
            "perf_per_tdp": float(self.perf_per_tdp),
            "area_breakdown_mm2": _jsonable(self.area_breakdown_mm2),
            "power_breakdown_w": _jsonable(self.power_breakdown_w),
            "memory_breakdown_bytes": _jsonable(self.memory_breakdown_bytes),
        }
        d.update(_jsonable(self.extra))
        return d


def _jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays and mappings into plain JSON types."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    return x


jsonable = _jsonable
