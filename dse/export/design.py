"""Loading the design to export: a run directory or a design JSON/YAML file.

A design file is either a run directory's ``best.json`` or any JSON/YAML file with a
top-level ``hardware`` mapping (``HardwareConfig`` fields; the extra contract keys of
``dse hardware show`` such as ``peak_flop_per_s`` are ignored) and optionally
``system``, ``plan``, ``workload`` (zoo name, ``config.json`` or ``.onnx`` path, or a
comma-separated list of them), ``batch`` and ``seq``
(see ``docs/architecture.md``, "Run directory").

Bad input raises :class:`~dse.errors.ConfigError` (exit code 2) naming the file and the
problem; a design that cannot be expanded into a workload raises
:class:`~dse.errors.ExportError`.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "design.json").write_text(json.dumps({"hardware": {
...     "name": "toy", "tensor_cores": 1, "array_rows": 8, "array_cols": 8,
...     "vector_cores": 1, "vector_lanes": 8, "freq_hz": 1e9,
...     "hbm_bw_bytes_per_s": 1e11, "hbm_bytes": 2**30, "peak_flop_per_s": 1.28e11}}))
>>> design = load_design(d / "design.json")
>>> design.hardware.array_rows, design.plan.tp, design.workload
(8, 1, None)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse.config import from_dict, load_mapping
from dse.errors import ConfigError, DSEError, ExportError, ExportInputError
from dse.types import (
    Graph,
    HardwareConfig,
    Operator,
    ParallelPlan,
    SystemConfig,
)

__all__ = ["Design", "Gemm", "load_design", "safe_name", "unique_gemms", "workload_graphs"]


@dataclass(frozen=True, kw_only=True)
class Design:
    """One design to export: the chip, how chips are connected, the plan and workload."""

    hardware: HardwareConfig
    system: SystemConfig
    plan: ParallelPlan
    workload: str | None
    """Workload spec(s) as given (comma-separated for several), or None."""
    batch: int | None = None
    """Samples per device graph (defaults to the plan's micro-batch)."""
    seq: int | None = None
    source: Path
    """The design file that was read."""
    evaluation: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def devices(self) -> int:
        """Devices in the system: tp · pp · dp of the plan."""
        return self.plan.devices

    @property
    def workloads(self) -> tuple[str, ...]:
        if not self.workload:
            return ()
        return tuple(w.strip() for w in self.workload.split(",") if w.strip())


@dataclass(frozen=True, kw_only=True)
class Gemm:
    """One unique GEMM shape of a workload: ``C[m, n] = A[m, k] @ B[k, n]``.

    ``instances_per_step`` counts every execution of that shape in one training step of
    one device: Σ over the operators with that shape of ``op.batch · op.count``.
    """

    name: str
    m: int
    k: int
    n: int
    instances_per_step: int
    phases: tuple[str, ...]
    ops: tuple[str, ...]

    @property
    def flop(self) -> float:
        """FLOP of one instance (2·m·k·n)."""
        return 2.0 * self.m * self.k * self.n


_INT_FIELDS: dict[type, frozenset[str]] = {}


def _int_fields(cls: type) -> frozenset[str]:
    if cls not in _INT_FIELDS:
        _INT_FIELDS[cls] = frozenset(
            f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.type in ("int", int)
        )
    return _INT_FIELDS[cls]


def _build(cls: type, data: Any, where: str, derived: frozenset[str] = frozenset()) -> Any:
    """``from_dict`` over the dataclass fields of ``data`` (the ``derived`` keys that
    ``best.json`` adds, e.g. ``area_mm2``, skipped; any other key is an error, as in
    ``dse hardware show``), with integral floats (``128.0`` from a CSV/JSON round trip)
    turned into ints."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    ints = _int_fields(cls)
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            if key in derived:
                continue
            raise ConfigError(f"{where}: unknown field {key!r}; valid fields: "
                              f"{', '.join(sorted(names))}")
        if key in ints and isinstance(value, float) and value.is_integer():
            value = int(value)
        kept[key] = value
    return from_dict(cls, kept, where)


def load_design(source: str | Path) -> Design:
    """Read a run directory (its ``best.json``) or a design JSON/YAML file.

    Raises :class:`ConfigError` when the path does not exist, a run directory has no
    ``best.json``, the file is malformed, or ``hardware`` is missing or invalid.
    """
    p = Path(source)
    if not p.exists():
        raise ConfigError(f"{p}: no such file or directory")
    if p.is_dir():
        best = p / "best.json"
        if not best.is_file():
            raise ConfigError(f"{best}: no such file (is {p} a run directory written by "
                              "`dse search`?)")
        p = best
    data = load_mapping(p, ConfigError)
    hw_data = data.get("hardware")
    if not isinstance(hw_data, Mapping):
        raise ConfigError(f"{p}: no top-level 'hardware' mapping (expected best.json or a "
                          "design file with the fields of `dse hardware show`)")
    hw_data = dict(hw_data)
    hw_data.setdefault("name", p.parent.name if p.name == "best.json" else p.stem)
    if not isinstance(hw_data["name"], str):
        raise ConfigError(f"{p}: hardware.name must be a string, got "
                          f"{type(hw_data['name']).__name__}")
    from cost_models.presets import _DERIVED_KEYS

    hardware = _build(HardwareConfig, hw_data, f"{p}: hardware", _DERIVED_KEYS)
    system = _build(SystemConfig, data.get("system"), f"{p}: system")
    plan = _build(ParallelPlan, data.get("plan"), f"{p}: plan",
                  frozenset(("devices", "micro_batches")))
    stated = data.get("plan", {}).get("devices") if isinstance(data.get("plan"), Mapping) \
        else None
    if stated is not None and stated != plan.devices:
        raise ConfigError(f"{p}: plan.devices={stated!r} but tp*cp*pp*dp = {plan.tp}*"
                          f"{plan.cp}*{plan.pp}*{plan.dp} = {plan.devices}; make them agree "
                          "(or drop 'devices')")
    workload = data.get("workload")
    if isinstance(workload, (list, tuple)):
        workload = ",".join(str(w) for w in workload)
    if workload is not None and not isinstance(workload, str):
        raise ConfigError(f"{p}: 'workload' must be a string, got {type(workload).__name__}")
    ev_raw = data.get("evaluation")
    ev_data: Mapping[str, Any] = ev_raw if isinstance(ev_raw, Mapping) else {}
    batch = data.get("batch")
    seq = data.get("seq", ev_data.get("seq"))
    for key, value in (("batch", batch), ("seq", seq)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise ConfigError(f"{p}: '{key}' must be a positive integer, got {value!r}")
    evaluation = data.get("evaluation") or {}
    if not isinstance(evaluation, Mapping):
        raise ConfigError(f"{p}: 'evaluation' must be a mapping")
    return Design(hardware=hardware, system=system, plan=plan, workload=workload or None,
                  batch=batch, seq=seq, source=p, evaluation=dict(evaluation))


def _resolve_spec(spec: str, base: Path) -> str:
    """Workload files named relative to the design file are found next to it."""
    if spec.endswith((".json", ".onnx", ".yaml", ".yml")):
        cand = Path(spec)
        if not cand.is_absolute() and not cand.exists() and (base / cand).exists():
            return str(base / cand)
    return spec


def workload_graphs(design: Design) -> list[Graph]:
    """The training graph of one device for each workload of the design.

    Uses ``workloads.load(spec, batch=, seq=)`` (batch = the design's ``batch`` or the
    plan's micro-batch); with tensor parallelism (``plan.tp > 1``) the device's shard
    ``workloads.build(model_spec(spec), batch=, seq=, tp=)`` instead, whose GEMMs are
    the ones a device executes; a DLRM with ``dp > 1`` is the device of its sharded
    tables (``shards=dp``, :mod:`workloads.dlrm`), with their exchange.
    """
    if not design.workloads:
        raise ExportInputError(f"{design.source}: the design names no 'workload'; add e.g. "
                               '"workload": "gpt2" to export its GEMMs')
    try:
        import workloads
    except ImportError as e:  # pragma: no cover - the package ships with dse
        raise ExportError(f"cannot import the workloads package ({e})") from None
    plan = design.plan
    split = [f"{k}={v}" for k, v in (("pp", plan.pp), ("cp", plan.cp), ("ep", plan.ep))
             if v > 1]
    if split:
        raise ExportInputError(
            f"{design.source}: plan has {', '.join(split)}; the GEMM exports write one "
            "device's GEMMs under tensor and data parallelism only (pp, cp and ep must be "
            "1: set them to 1 in a copy of the design to export the tensor-parallel shard "
            "of the whole model)")
    batch = design.batch or design.plan.micro_batch
    graphs: list[Graph] = []
    for raw in design.workloads:
        spec = _resolve_spec(raw, design.source.parent)
        try:
            ms = workloads.model_spec(spec)
            if getattr(ms, "family", "") == "dlrm" and design.plan.dp > 1:
                # the tables sharded over the data-parallel devices (workloads.dlrm)
                graphs.append(workloads.build(
                    ms, batch=batch, optimizer=design.plan.optimizer, shards=design.plan.dp,
                    devices_per_node=design.system.devices_per_node))
            elif design.plan.tp > 1:
                graphs.append(workloads.build(
                    ms, batch=batch, seq=design.seq,
                    tp=design.plan.tp, sequence_parallel=design.plan.sequence_parallel,
                    optimizer=design.plan.optimizer))
            else:
                graphs.append(workloads.load(spec, batch=batch, seq=design.seq,
                                             optimizer=design.plan.optimizer))
        except DSEError:
            raise
        except AttributeError as e:
            raise ExportError(f"the workloads package lacks {e.name or e}: cannot expand "
                              f"workload {raw!r}") from None
    return graphs


def safe_name(text: str, used: set[str] | None = None) -> str:
    """A simulator-safe identifier (letters, digits, underscores), unique within ``used``.

    >>> safe_name("layer.0/attn qkv-proj")
    'layer_0_attn_qkv_proj'
    >>> used = {"a"}; safe_name("a", used), safe_name("a", used)
    ('a_2', 'a_3')
    """
    base = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"
    if base[0].isdigit():
        base = "L" + base
    if used is None:
        return base
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _gemm_shapes(op: Operator) -> list[tuple[tuple[int, int, int], int, str]]:
    """``((m, k, n), repetitions, name suffix)`` of the GEMMs an operator runs: a GEMM
    itself; a fused attention operator its per-head tile GEMMs over the whole score
    matrix (simulators run whole GEMMs; the causal kernel skips the blocks above the
    diagonal, which ``expected_cycles.csv`` does not): forward ``S = Q·Kᵀ`` and
    ``O = P·V``, backward the recomputed ``S`` and ``dP = dO·Vᵀ``, ``dV = Pᵀ·dO``,
    ``dQ = dS·K``, ``dK = dSᵀ·Q``."""
    m, k, n = int(op.m), int(op.k), int(op.n)
    if op.kind == "gemm":
        return [((m, k, n), 1, "")]
    if op.phase == "fwd":
        return [((m, k, n), 1, ".qk"), ((m, n, k), 1, ".pv")]
    return [((m, k, n), 2, ".qk_dp"), ((n, m, k), 2, ".dv_dk"), ((m, n, k), 1, ".dq")]


def unique_gemms(graphs: list[Graph] | tuple[Graph, ...]) -> list[Gemm]:
    """The distinct GEMM shapes ``(m, k, n)`` of the graphs, in order of first appearance
    (forward, backward-data and backward-weight GEMMs alike, and the tile GEMMs of fused
    attention, :func:`_gemm_shapes`), with how often each runs.

    >>> ops = (Operator(name="fc", kind="gemm", phase="fwd", m=4, k=8, n=2, flop=128.0),
    ...        Operator(name="fc_dx", kind="gemm", phase="bwd_data", m=4, k=2, n=8,
    ...                 flop=128.0, count=3),
    ...        Operator(name="fc2", kind="gemm", phase="fwd", m=4, k=8, n=2, flop=128.0,
    ...                 batch=2))
    >>> gemms = unique_gemms([Graph(name="t", ops=ops)])
    >>> [(g.name, g.m, g.k, g.n, g.instances_per_step) for g in gemms]
    [('fc', 4, 8, 2, 3), ('fc_dx', 4, 2, 8, 3)]
    """
    order: list[tuple[int, int, int]] = []
    acc: dict[tuple[int, int, int], dict[str, Any]] = {}
    multi = len(graphs) > 1
    for g in graphs:
        op: Operator
        for op in g.ops:
            if op.kind not in ("gemm", "attention"):
                continue
            label = f"{g.name}:{op.name}" if multi else op.name
            for key, reps, suffix in _gemm_shapes(op):
                name = label + suffix
                if key not in acc:
                    order.append(key)
                    acc[key] = {"first": name, "count": 0, "phases": [], "ops": []}
                entry = acc[key]
                entry["count"] += int(op.batch) * int(op.count) * reps
                if op.phase not in entry["phases"]:
                    entry["phases"].append(op.phase)
                entry["ops"].append(name)
    used: set[str] = set()
    return [
        Gemm(name=safe_name(acc[key]["first"], used), m=key[0], k=key[1], n=key[2],
             instances_per_step=acc[key]["count"], phases=tuple(acc[key]["phases"]),
             ops=tuple(acc[key]["ops"]))
        for key in order
    ]


def require_gemms(design: Design, graphs: list[Graph], *, top: int | None = None,
                  layers: tuple[str, ...] | None = None) -> list[Gemm]:
    """:func:`unique_gemms`, raising :class:`ExportError` when there are none; with
    ``layers`` only those (by name, in that order), with ``top`` the ``top`` GEMMs that
    take the largest share of the step (:func:`select_gemms`)."""
    gemms = unique_gemms(graphs)
    if not gemms:
        raise ExportInputError(f"{design.source}: workload {design.workload!r} has no GEMM "
                               "operators to export")
    return select_gemms(design, gemms, top=top, layers=layers)


def step_share_cycles(design: Design, g: Gemm) -> int:
    """Cycles ``g`` takes per training step on one of the design's arrays (single-array
    cycles × executions per step): the ranking of ``--top``."""
    from cost_models.systolic import compute_cycles

    hw = design.hardware
    return int(compute_cycles(g.m, g.k, g.n, hw.array_rows, hw.array_cols,
                              hw.dataflow)) * int(g.instances_per_step)


def select_gemms(design: Design, gemms: list[Gemm], *, top: int | None = None,
                 layers: tuple[str, ...] | None = None) -> list[Gemm]:
    """The GEMMs an export writes: all, the named ``layers`` (a GEMM is named by its
    first operator, as in ``expected_cycles.csv``), or the ``top`` by share of the step."""
    if layers:
        by_name = {g.name: g for g in gemms}
        by_op = {op: g for g in gemms for op in g.ops}
        unknown = [n for n in layers if n not in by_name and n not in by_op]
        if unknown:
            raise ConfigError(f"--layers: no GEMM named {unknown[0]!r} in {design.workload!r}; "
                              f"valid: {', '.join(g.name for g in gemms)}")
        out: list[Gemm] = []
        for n in layers:
            g = by_name.get(n) or by_op[n]
            if g not in out:
                out.append(g)
        gemms = out
    if top is not None:
        if top < 1:
            raise ConfigError(f"--top {top}: must be >= 1")
        ranked = sorted(gemms, key=lambda g: -step_share_cycles(design, g))
        keep = {id(g) for g in ranked[:top]}
        gemms = [g for g in gemms if id(g) in keep]
    return gemms
