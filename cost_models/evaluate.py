"""Single-device performance and energy of a training-step graph.

Three entry points (docs/architecture.md, "cost_models"):

* :func:`op_costs` — per-operator latency, bound and energy for ``D`` designs at once
  (``D × O`` arrays, and ``D × O × A`` at every block size; :mod:`cost_models.opcost`
  documents the operator model);
* :func:`device_step` — the operator DAG scheduled on each design with operator-level
  parallelism, vectorized over designs: step time (makespan), energy, busy time per unit
  (:mod:`cost_models.schedule` documents the scheduler);
* :func:`evaluate_device` — the scalar reference of both for one design: the schedule
  (start/end and block of every operator), the critical chain, breakdowns by phase, kind
  and bound. Tests check ``device_step == evaluate_device`` on random designs and graphs.

Schedule
--------
A device has ``P`` tensor cores, a vector unit and links. A tensor operator runs on a
block of the cores — all of them, a half, a quarter or an eighth — with the latency it
has there (its block's cores, SRAM and share of HBM and fabric bandwidth); independent
operators run at the same time on disjoint blocks, vector operators on the vector unit,
collectives on the links. The block of each operator is chosen as the list schedule
places it (earliest finish), in a design-independent priority order; a few schedule
candidates are tried (two orders × caps on how much of the chip an operator with
independent neighbours may take) and the shortest kept, so the schedule is never longer
than running every tensor operator on the whole chip one at a time. HBM is shared by
whatever runs at once, so the step time is at least all its HBM bytes at full bandwidth
(``hbm_floor_s``).

*Multiplicity*: an operator with ``count = c`` (a block repeated ``c`` times, one after the
other) is scheduled once with duration ``c × latency``. This is exact when the repetitions
run back to back — each starts when the previous ends, as for transformer blocks chained
through their residual stream: the schedule of ``c`` sequential copies of a block is ``c``
times the schedule of one copy, and a list schedule scales linearly when all durations of
the block are scaled by ``c``. It ignores overlap between consecutive repetitions (e.g.
block i's weight-gradient GEMMs running beside block i+1's backward), so it is an upper
bound on the step time of such overlapping schedules.

>>> from dse.types import Graph, HardwareConfig, Operator
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
>>> [(rec.name, rec.bound, rec.cores) for rec in r.records]
[('fc', 'tensor', 2), ('act', 'vector', 0)]
>>> r.schedule_chain
('fc', 'act')
>>> from cost_models.designs import DesignBatch
>>> s = device_step(g, DesignBatch.from_configs([hw]), load_technology(7))
>>> bool(np.isclose(s.makespan_s[0], r.makespan_s))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cost_models.area import node_constants
from cost_models.designs import DesignBatch
from cost_models.opcost import (
    BOUNDS,
    UNITS,
    OpCosts,
    graph_arrays,
    op_costs,
    op_costs_many,
    op_costs_scalar,
)
from cost_models.power import tdp_w
from cost_models.schedule import LEVELS, schedule_rows, schedule_scalar
from cost_models.technology import Technology
from dse.errors import ConfigError
from dse.types import Graph, HardwareConfig

__all__ = [
    "BOUNDS",
    "UNITS",
    "DeviceResult",
    "DeviceStep",
    "OpCosts",
    "OpRecord",
    "device_step",
    "device_steps",
    "evaluate_device",
    "op_costs",
    "schedule_chain",
]

_TC = 0


# ---------------------------------------------------------------------------- device step
@dataclass(frozen=True, eq=False)
class DeviceStep:
    """One training step (the graph) on each of ``D`` designs.

    ``makespan_s`` (D,) step time; ``energy_j`` (D,) = ``dynamic_energy_j`` +
    ``leakage_energy_j``; ``busy_s`` maps ``"tc"``, ``"vc"``, ``"link"`` to (D,) busy time
    (tensor cores: whole-chip equivalent, a block of ``1/2^a`` counting ``1/2^a`` of its
    duration); ``flop`` the step's FLOPs; ``costs`` the :class:`OpCosts` it was built from;
    ``start_s``/``end_s`` (D, O) the schedule, ``level`` (D, O) the block level of every
    operator (0 = whole chip; see :mod:`cost_models.schedule`); ``hbm_floor_s`` (D,) all
    HBM traffic at full bandwidth (the step time is at least this: HBM is shared by all
    units); ``candidate`` (D, 2) the (order, cap) of the winning schedule.
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
    level: np.ndarray
    candidate: np.ndarray
    level_ok: np.ndarray
    """(D, A) the levels the schedule could use."""
    hold_vc: np.ndarray
    """(D,) tensor and vector operators exclude each other (single stream)."""
    blocking: bool = False

    @property
    def achieved_flop_per_s(self) -> np.ndarray:
        return np.where(self.makespan_s > 0, self.flop / np.maximum(self.makespan_s, 1e-300), 0.0)


def device_step(graph: Graph, designs: DesignBatch, tech: Technology,
                comm_time_s: Any = None, *, costs: OpCosts | None = None,
                constants: dict[str, np.ndarray] | None = None,
                blocking_comm: bool = False, levels: int = LEVELS) -> DeviceStep:
    """Schedule ``graph`` on every design (vectorized; see the module docstring).
    ``blocking_comm``: communication does not overlap computation (Megatron-LM 2021's
    synchronous tensor-parallel collectives); ``levels=1``: no operator-level parallelism
    (every tensor operator on the whole chip, one at a time)."""
    c = node_constants(designs, tech) if constants is None else constants
    oc = (op_costs(graph, designs, tech, comm_time_s, constants=c, levels=levels)
          if costs is None else costs)
    return _steps([(graph, oc)], designs, tech, c, blocking_comm, levels)[0]


def device_steps(jobs: Sequence[tuple[Graph, Any, bool]], designs: DesignBatch,
                 tech: Technology, *, constants: dict[str, np.ndarray] | None = None,
                 levels: int = LEVELS) -> list[DeviceStep]:
    """:func:`device_step` of many graphs at once: ``jobs[i] = (graph, comm_time_s,
    blocking_comm)``. Graphs of the same structure (a stage's phase graphs for every
    micro-batch size or tensor-parallel degree) are scheduled in one vectorized call, one
    row per (graph, design); results equal :func:`device_step` of each."""
    c = node_constants(designs, tech) if constants is None else constants
    out: list[DeviceStep | None] = [None] * len(jobs)
    groups: dict[tuple[int, bool], list[int]] = {}
    for i, (g, _, blocking) in enumerate(jobs):
        groups.setdefault((id(graph_arrays(g).topology), bool(blocking)), []).append(i)
    costs = op_costs_many([g for g, _, _ in jobs], designs, tech, [ct for _, ct, _ in jobs],
                          constants=c, levels=levels)
    for (_, blocking), members in groups.items():
        pairs = [(jobs[i][0], costs[i]) for i in members]
        for i, st in zip(members, _steps(pairs, designs, tech, c, blocking, levels)):
            out[i] = st
    return [x for x in out if x is not None]


def _steps(pairs: Sequence[tuple[Graph, OpCosts]], designs: DesignBatch, tech: Technology,
           c: dict[str, np.ndarray], blocking: bool, levels: int) -> list[DeviceStep]:
    """Schedule graphs of one topology (with their op costs) in one call."""
    d = len(designs)
    arrs0 = graph_arrays(pairs[0][0])
    full_bw = designs.hbm_bw_bytes_per_s * designs.hbm_efficiency
    hold = np.asarray(designs.single_stream, dtype=bool)
    durs, floors, loks = [], [], []
    for g, oc in pairs:
        cnt = graph_arrays(g).count[None, :, None]
        durs.append(oc.latency_levels_s * cnt)
        floors.append(oc.hbm_bytes_levels * cnt / full_bw[:, None, None])
        lok = oc.level_ok if levels >= LEVELS else oc.level_ok & (np.arange(LEVELS) < levels)
        loks.append(lok)
    k = len(pairs)
    sched = schedule_rows(arrs0.topology, np.concatenate(durs) if k > 1 else durs[0],
                          level_ok=np.concatenate(loks) if k > 1 else loks[0],
                          hold_vc=np.tile(hold, k), blocking=blocking,
                          floor_levels_s=np.concatenate(floors) if k > 1 else floors[0])
    leak_w = tdp_w(designs, tech, constants=c)["leakage"]
    out = []
    for i, (g, oc) in enumerate(pairs):
        arrs = graph_arrays(g)
        rows = slice(i * d, (i + 1) * d)
        level = sched.level[rows]
        lv = level.astype(np.int64)[:, :, None]

        def pick(a: np.ndarray, lv: np.ndarray = lv) -> np.ndarray:
            return np.take_along_axis(a, lv, axis=2)[:, :, 0]

        dur = pick(oc.latency_levels_s) * arrs.count[None, :]
        hbm_floor = (pick(oc.hbm_bytes_levels) * arrs.count[None, :]).sum(axis=1) / full_bw
        share = 2.0 ** -level
        busy = {"tc": (dur * share)[:, arrs.unit_code == _TC].sum(axis=1),
                "vc": dur[:, arrs.unit_code == 1].sum(axis=1),
                "link": dur[:, arrs.unit_code == 2].sum(axis=1)}
        dyn = (pick(oc.energy_levels_j) * arrs.count[None, :]).sum(axis=1)
        makespan = sched.makespan_s[rows]
        leak = leak_w * makespan
        out.append(DeviceStep(
            makespan_s=makespan, energy_j=dyn + leak, dynamic_energy_j=dyn,
            leakage_energy_j=leak, busy_s=busy, flop=float((arrs.flop * arrs.count).sum()),
            costs=oc, start_s=sched.start_s[rows], end_s=sched.end_s[rows],
            hbm_floor_s=hbm_floor, level=level,
            candidate=np.stack([sched.order[rows], sched.cap[rows]], axis=1),
            level_ok=oc.level_ok if levels >= LEVELS else
            oc.level_ok & (np.arange(LEVELS) < levels), hold_vc=hold, blocking=blocking))
    return out


# ------------------------------------------------------------------------ scalar reference
@dataclass(frozen=True, kw_only=True)
class OpRecord:
    """One operator in the schedule of one design (times in seconds; ``latency_s`` and
    ``energy_j`` per execution at the block it ran on, ``duration_s = count · latency_s``;
    ``level`` and ``cores``: the block of tensor cores it ran on, 0 for other units)."""

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
    level: int = 0
    cores: int = 0


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
    """Operators with zero mobility (ASAP = ALAP on the DAG at the durations they ran
    with, docs/sources.md M4), in order."""
    schedule_chain: tuple[str, ...]
    """The chain of operators that determines the makespan in the resource-constrained
    schedule, traced back from the last operator through whatever it waited for (its
    predecessor, or the operator that last held a block of cores or unit it needed)."""
    breakdown: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    utilization: float = 0.0
    unknown_vector_ops: tuple[str, ...] = ()

    @property
    def achieved_flop_per_s(self) -> float:
        return self.flop / self.makespan_s if self.makespan_s > 0 else 0.0


def evaluate_device(graph: Graph, hw: HardwareConfig, tech: Technology,
                    comm_time_s: Any = None, *, blocking_comm: bool = False,
                    levels: int = LEVELS) -> DeviceResult:
    """Scalar reference: cost every operator of ``graph`` on ``hw`` with plain Python
    arithmetic (:func:`cost_models.opcost.op_costs_scalar`), schedule it
    (:func:`cost_models.schedule.schedule_scalar`), and explain the result (see the module
    docstring).

    ``comm_time_s``: ``None``, a mapping from communication op name to seconds, or an
    array of shape ``(O,)``. ``blocking_comm`` and ``levels``: as in :func:`device_step`.
    """
    if not isinstance(hw, HardwareConfig):
        raise ConfigError(f"evaluate_device needs a HardwareConfig, got {type(hw).__name__}")
    arrs = graph_arrays(graph)
    recs = op_costs_scalar(graph, hw, tech, comm_time_s, levels=levels)
    o = len(recs)
    hbm_bw = float(hw.hbm_bw_bytes_per_s) * float(hw.hbm_efficiency)
    dur = np.array([[x * op.count for x in r["latency_s"]] for r, op in zip(recs, graph.ops)],
                   dtype=np.float64).reshape(o, LEVELS)
    flo = np.array([[x * op.count / hbm_bw for x in r["hbm_bytes"]]
                    for r, op in zip(recs, graph.ops)], dtype=np.float64).reshape(o, LEVELS)
    lok = recs[0]["level_ok"] if recs else [True] + [False] * (LEVELS - 1)
    sch = schedule_scalar(arrs.topology, dur, level_ok=lok, hold_vc=bool(hw.single_stream),
                          blocking=blocking_comm, floor_levels_s=flo)
    chosen = [sch.level[j] for j in range(o)]
    durations = [float(dur[j, chosen[j]]) for j in range(o)]
    hbm_floor = sum(float(flo[j, chosen[j]]) for j in range(o))
    sched_makespan = max(sch.end_s, default=0.0)
    makespan = max(sched_makespan, hbm_floor)

    # -- ASAP / ALAP on the DAG at the chosen durations (docs/sources.md M4) ---------------------
    preds = graph.pred_indices
    succ = graph.succ_indices
    asap = [0.0] * o
    for j in range(o):
        asap[j] = max((asap[q] + durations[q] for q in preds[j]), default=0.0)
    horizon = max((asap[j] + durations[j] for j in range(o)), default=0.0)
    alap = [0.0] * o
    for j in range(o - 1, -1, -1):
        alap[j] = min((alap[s] for s in succ[j]), default=horizon) - durations[j]
    tol = 1e-9 * horizon
    mobility = [alap[j] - asap[j] for j in range(o)]
    critical = tuple(arrs.names[j] for j in range(o) if mobility[j] <= tol)
    chain = tuple(arrs.names[j] for j in sch.chain())

    records = []
    for j, (op, r) in enumerate(zip(graph.ops, recs)):
        a = chosen[j]
        tc = r["unit"] == "tc"
        records.append(OpRecord(
            name=op.name, kind=op.kind, phase=op.phase, unit=r["unit"], count=op.count,
            latency_s=float(r["latency_s"][a]), duration_s=durations[j],
            start_s=float(sch.start_s[j]), end_s=float(sch.end_s[j]),
            compute_s=float(r["compute_s"][a]), hbm_s=float(r["hbm_s"][a]),
            sram_s=float(r["sram_s"][a]), bound=str(r["bound_levels"][a]),
            flop=float(op.flop), hbm_bytes=float(r["hbm_bytes"][a]),
            fused_bytes=float(r["fused_bytes"]), energy_j=float(r["energy_j"][a]),
            mobility_s=mobility[j], level=a if tc else 0,
            cores=max(int(hw.tensor_cores) >> a, 1) if tc else 0))
    by_phase: dict[str, float] = {}
    by_kind: dict[str, float] = {}
    by_unit = {u: 0.0 for u in UNITS}
    by_bound: dict[str, float] = {}
    flop_by_phase: dict[str, float] = {}
    by_level: dict[str, float] = {}
    for rec in records:
        by_phase[rec.phase] = by_phase.get(rec.phase, 0.0) + rec.duration_s
        by_kind[rec.kind] = by_kind.get(rec.kind, 0.0) + rec.duration_s
        by_unit[rec.unit] += rec.duration_s * (2.0 ** -rec.level)
        by_bound[rec.bound] = by_bound.get(rec.bound, 0.0) + rec.duration_s
        flop_by_phase[rec.phase] = flop_by_phase.get(rec.phase, 0.0) + rec.flop * rec.count
        if rec.unit == "tc":
            key = f"{rec.cores} cores"
            by_level[key] = by_level.get(key, 0.0) + rec.duration_s
    dyn = sum(rec.energy_j * rec.count for rec in records)
    leak_w = float(tdp_w(DesignBatch.from_configs([hw]), tech)["leakage"][0])
    flop = sum(rec.flop * rec.count for rec in records)
    util = flop / (makespan * hw.peak_flop_per_s) if makespan > 0 else 0.0
    return DeviceResult(
        hardware=hw, makespan_s=makespan, energy_j=dyn + leak_w * makespan,
        dynamic_energy_j=dyn, leakage_energy_j=leak_w * makespan, flop=flop,
        records=tuple(records), critical_path=critical, schedule_chain=chain,
        breakdown={"phase_s": by_phase, "kind_s": by_kind, "unit_busy_s": by_unit,
                   "bound_s": by_bound, "flop_by_phase": flop_by_phase,
                   "tensor_block_s": by_level,
                   "step_s": {"schedule": sched_makespan, "hbm_floor": hbm_floor},
                   "schedule": {"order": sch.order, "cap": sch.cap},
                   "energy_j": {"dynamic": dyn, "leakage": leak_w * makespan}},
        utilization=util, unknown_vector_ops=arrs.unknown)



def schedule_chain(graph: Graph, step: DeviceStep, d: int = 0) -> list[int]:
    """Operator indices of the chain that sets design ``d``'s makespan in ``step`` (a
    :func:`device_step` result): the winning schedule candidate replayed by the scalar
    scheduler, which records what every operator waited for — its predecessor that ended
    last, or the operator that last held the block of cores (or unit) it needed."""
    arrs = graph_arrays(graph)
    if not arrs.names:
        return []
    oc = step.costs
    dur = np.asarray(oc.latency_levels_s[d]) * arrs.count[:, None]
    order, cap = (int(x) for x in step.candidate[d])
    sch = schedule_scalar(arrs.topology, dur, level_ok=list(np.asarray(step.level_ok[d])),
                          hold_vc=bool(step.hold_vc[d]), blocking=step.blocking,
                          only=(order, cap))
    return sch.chain()
