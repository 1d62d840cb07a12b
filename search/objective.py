"""The search objective on real workloads: designs of a :class:`~search.space.DesignSpace`
scored by the cost models (brief §5, docs/architecture.md).

For every workload the score of a design is its training throughput under the **best
parallel plan for that design** (:func:`search.plans.best_plan_batch`: tp × pp × dp,
micro-batch, schedule, recompute, ZeRO, vectorized over designs; with one device only
the micro-batch and recomputation vary). A design is feasible when its area and TDP are
within budget and some plan fits every workload in its HBM; a design that fits no plan
scores 0 samples/s and its memory constraint is the leanest plan's need minus its HBM.

The system: ``devices_per_node`` and the inter-node network are :class:`SystemConfig`'s
defaults (8-device nodes, 25 GB/s NICs); inside a node the bandwidth per device is the
design's own chip-to-chip links, ``link_count × link_bw_bytes_per_s`` (so links are a
searched resource when ``devices > 1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dse.errors import ConfigError, InfeasibleDesignError
from dse.types import Evaluation, HardwareConfig, ParallelPlan, SystemConfig
from search.evaluator import Scores, objective_value
from search.space import DesignSpace
from search.stagememory import leanest_memory_bytes, memory_floor_bytes

__all__ = ["TrainingProblem", "WorkloadTarget", "build_problem", "load_targets",
           "system_for"]


def system_for(base: SystemConfig, link_count: int, link_bw_bytes_per_s: float) -> SystemConfig:
    """``base`` with the intra-node bandwidth of a chip's links (bytes/s per direction)."""
    bw = float(link_count) * float(link_bw_bytes_per_s)
    if bw <= 0:
        return base
    return dataclasses.replace(base, intra_node_bw_bytes_per_s=bw)


@dataclass(frozen=True, kw_only=True)
class WorkloadTarget:
    """One workload of a search: its spec, sequence length, global batch and devices."""

    name: str
    spec: Any
    seq: int | None = None
    global_batch: int | None = None
    devices: int = 1
    system: SystemConfig = field(default_factory=SystemConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.devices, int) or self.devices < 1:
            raise ConfigError(f"WorkloadTarget[{self.name}].devices={self.devices!r} must be "
                              "a positive integer")


def load_targets(workloads: Sequence[str], *, devices: int = 1, batch: int | None = None,
                 seq: int | None = None, system: SystemConfig | None = None,
                 attention: str | None = None) -> list[WorkloadTarget]:
    """Targets for workload names/paths (``workloads.model_spec``); ``attention`` sets
    the attention kernel of the transformers among them (None: their own)."""
    import dataclasses

    import workloads as wl

    out = []
    seen = set()
    for w in workloads:
        w = w.strip()
        if not w:
            raise ConfigError("--workload has an empty entry; give names separated by commas")
        same = str(Path(w).resolve()) if Path(w).is_file() else w  # one file, two spellings
        if w in seen or same in seen:
            raise ConfigError(f"--workload lists {w!r} twice")
        seen.update((w, same))
        spec = wl.model_spec(w)
        if attention is not None and hasattr(spec, "attention"):
            spec = dataclasses.replace(spec, attention=attention)
        s = seq
        if s is not None and getattr(spec, "default_seq", None) is None:
            s = None  # families without a sequence (CNN, DLRM) ignore --seq
        out.append(WorkloadTarget(name=spec.name, spec=spec, seq=s, global_batch=batch,
                                  devices=devices, system=system or SystemConfig()))
    # a flag no workload of the search takes is a mistake, not a no-op
    if seq is not None and out and all(t.seq is None for t in out):
        raise ConfigError(f"--seq {seq}: none of {', '.join(t.name for t in out)} has a "
                          "sequence length (it applies to transformers and RNNs)")
    if attention is not None and out and not any(hasattr(t.spec, "attention") for t in out):
        raise ConfigError(f"--attention {attention}: none of "
                          f"{', '.join(t.name for t in out)} has attention (it applies to "
                          "transformers)")
    return out


class TrainingProblem:
    """Scores designs on training workloads (the :class:`search.evaluator.Problem` of
    ``dse search``). ``tech`` is the technology of the template's node."""

    def __init__(self, space: DesignSpace, targets: Sequence[WorkloadTarget], tech: Any, *,
                 area_mm2: float, power_w: float | None = None,
                 objective: str = "throughput") -> None:
        from search.trainstep import workload_model

        if not targets:
            raise ConfigError("a search needs at least one workload")
        if not (area_mm2 > 0):
            raise ConfigError(f"area budget {area_mm2!r} mm² must be > 0")
        if power_w is not None and not (power_w > 0):
            raise ConfigError(f"power budget {power_w!r} W must be > 0")
        objective_value(objective, np.ones((1, 1)), np.ones(1))  # validates the name
        self.space = space
        self.targets = tuple(targets)
        self.tech = tech
        self.area_budget_mm2 = float(area_mm2)
        self.power_budget_w = None if power_w is None else float(power_w)
        self.objective = objective
        self.workload_names = tuple(t.name for t in self.targets)
        self.plans: list[list[ParallelPlan]] = []
        self.models: list[Any] = []
        self._min_memory: list[float] | None = None
        for t in self.targets:
            model = workload_model(t.spec, t.devices, seq=t.seq, global_batch=t.global_batch,
                                   gemm_bytes=space.template.dtype_bytes,
                                   devices_per_node=t.system.devices_per_node)
            cand = model.plans
            # plans whose model states alone exceed the space's largest HBM never
            # fit: dropped before their layouts are built (all kept if none would remain,
            # so that "no plan fits" can name the leanest)
            cap = self.max_hbm_bytes()
            lean = [p for p in cand if memory_floor_bytes(t.spec, p) <= cap]
            cand = lean or cand
            if not cand:
                raise ConfigError(f"no valid parallel plan for {t.name} on {t.devices} "
                                  f"devices (global batch {t.global_batch or t.spec.default_batch})")
            self.models.append(model)
            self.plans.append(cand)
        self.model_calls = 0
        self._plans_cache: dict[HardwareConfig, list[ParallelPlan | None]] = {}

    @property
    def min_memory_bytes(self) -> list[float]:
        """Per workload, the per-device memory of its leanest plan (computed the first
        time this is asked for, over the plans a weights-and-gradients floor cannot rule
        out: :func:`search.stagememory.leanest_memory_bytes`)."""
        if self._min_memory is None:
            self._min_memory = [leanest_memory_bytes(m, plans)
                                for m, plans in zip(self.models, self.plans)]
        return self._min_memory

    def max_hbm_within_budget(self) -> float:
        """The most HBM (bytes) a design within the area and power budgets can have (0 if
        no design meets them): the largest stack count whose cheapest design fits."""
        sp = self.space
        if "hbm_stacks" in sp.names:
            for v in sorted(sp.param("hbm_stacks").values, reverse=True):
                b = float(v * sp.hbm.bytes_per_stack)
                if sp.min_area_mm2(self.tech, power_w=self.power_budget_w,
                                   min_hbm_bytes=b) <= self.area_budget_mm2:
                    return b
            return 0.0
        ok = sp.min_area_mm2(self.tech, power_w=self.power_budget_w) <= self.area_budget_mm2
        return float(sp.template.hbm_bytes) if ok else 0.0

    def anything_fits(self) -> bool:
        """Whether some design within the budgets holds some plan of every workload —
        the same answer as comparing :meth:`min_hbm_bytes` with the budgets, but it stops
        at the first plan that fits (a bad budget is reported before any long work)."""
        cap = self.max_hbm_within_budget()
        if cap <= 0:
            return False
        return all(leanest_memory_bytes(m, plans, fits_bytes=cap) <= cap
                   for m, plans in zip(self.models, self.plans))

    # -- cheap ----------------------------------------------------------------------------
    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.space.area_tdp(idx, self.tech)

    # -- scoring --------------------------------------------------------------------------
    max_batch = 1024
    """Designs scored per cost-model call: every operator is costed at every block size
    (D × O × levels arrays), so memory grows with the batch; larger inputs are split."""

    def score(self, idx: np.ndarray) -> Scores:
        a = np.asarray(idx)
        if len(a) <= self.max_batch:
            return self.score_designs(self.space.designs(a))
        parts = [self.score_designs(self.space.designs(a[lo:lo + self.max_batch]))
                 for lo in range(0, len(a), self.max_batch)]
        return Scores(
            area_mm2=np.concatenate([x.area_mm2 for x in parts]),
            tdp_w=np.concatenate([x.tdp_w for x in parts]),
            samples_per_s=np.concatenate([x.samples_per_s for x in parts], axis=1),
            step_time_s=np.concatenate([x.step_time_s for x in parts], axis=1),
            memory_bytes=np.concatenate([x.memory_bytes for x in parts], axis=1),
            hbm_bytes=np.concatenate([x.hbm_bytes for x in parts]),
            value=np.concatenate([x.value for x in parts]),
            feasible=np.concatenate([x.feasible for x in parts]),
            plan_id=np.concatenate([x.plan_id for x in parts], axis=1))

    def score_designs(self, designs: Any) -> Scores:
        """Scores of a :class:`cost_models.designs.DesignBatch` (any designs, on the grid
        or not: baselines use this)."""
        from cost_models.area import area_mm2
        from cost_models.power import tdp_w

        self.model_calls += 1
        n = len(designs)
        w = len(self.targets)
        samples = np.zeros((w, n))
        step = np.full((w, n), np.inf)
        mem = np.zeros((w, n))
        pid = np.full((w, n), -1, dtype=np.int64)
        for i in range(w):
            s, t, m, plans = self._score_target(i, designs)
            samples[i], step[i], mem[i] = s, t, m
            index = {id(p): k for k, p in enumerate(self.plans[i])}
            pid[i] = [index[id(p)] if p is not None else -1 for p in plans]
        area = np.asarray(area_mm2(designs, self.tech)["total"], dtype=np.float64)
        tdp = np.asarray(tdp_w(designs, self.tech)["total"], dtype=np.float64)
        hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
        ok = area <= self.area_budget_mm2
        if self.power_budget_w is not None:
            ok &= tdp <= self.power_budget_w
        ok &= np.all(mem <= hbm[None, :], axis=0) & np.all(samples > 0, axis=0)
        return Scores(area_mm2=area, tdp_w=tdp, samples_per_s=samples, step_time_s=step,
                      memory_bytes=mem, hbm_bytes=hbm,
                      value=objective_value(self.objective, samples, tdp), feasible=ok,
                      plan_id=pid)

    def _groups(self, designs: Any, i: int) -> list[tuple[np.ndarray, SystemConfig]]:
        """Designs grouped by the system their links imply (one group for one device)."""
        t = self.targets[i]
        if t.devices == 1:
            return [(np.arange(len(designs)), t.system)]
        key = np.asarray(designs.link_count, float) * np.asarray(designs.link_bw_bytes_per_s)
        out = []
        for k in np.unique(key):
            sel = np.flatnonzero(key == k)
            first = int(sel[0])
            out.append((sel, system_for(t.system, int(designs.link_count[first]),
                                        float(designs.link_bw_bytes_per_s[first]))))
        return out

    def _score_target(self, i: int, designs: Any
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[ParallelPlan | None]]:
        n = len(designs)
        samples = np.zeros(n)
        step = np.full(n, np.inf)
        mem = np.full(n, self.min_memory_bytes[i])
        plans: list[ParallelPlan | None] = [None] * n
        for sel, system in self._groups(designs, i):
            sub = designs if len(sel) == n else designs.subset(sel)
            chosen, metrics = self.models[i].best_plan_batch(sub, system, self.tech,
                                                             self.plans[i])
            st = np.asarray(metrics["step_time_s"], dtype=np.float64)
            okp = np.isfinite(st)
            sp = np.asarray(metrics.get("samples_per_s", np.zeros(len(sel))), dtype=np.float64)
            samples[sel] = np.where(okp, sp, 0.0)
            step[sel] = st
            if "memory_per_device_bytes" in metrics:
                mm = np.asarray(metrics["memory_per_device_bytes"], dtype=np.float64)
                mem[sel] = np.where(okp, mm, self.min_memory_bytes[i])
            for k, j in enumerate(sel):
                plans[int(j)] = chosen[k]
        return samples, step, mem, plans

    # -- one design in full ---------------------------------------------------------------
    def system_of(self, hw: HardwareConfig, i: int = 0) -> SystemConfig:
        t = self.targets[i]
        if t.devices == 1:
            return t.system
        return system_for(t.system, hw.link_count, hw.link_bw_bytes_per_s)

    def plans_of(self, hw: HardwareConfig) -> list[ParallelPlan | None]:
        """The best plan of every workload for one design (None: no plan fits)."""
        key = dataclasses.replace(hw, name="")
        if key not in self._plans_cache:
            self.prepare_plans([hw])
        return list(self._plans_cache[key])

    def prepare_plans(self, hws: Sequence[HardwareConfig]) -> None:
        """Choose the best plans of several designs in one batch (the cost model's
        per-call work is paid once; :meth:`plans_of` then reads them)."""
        from cost_models.designs import DesignBatch

        keys = list(dict.fromkeys(dataclasses.replace(h, name="") for h in hws))
        keys = [k for k in keys if k not in self._plans_cache]
        if not keys:
            return
        d = DesignBatch.from_configs(keys)
        per_target = [self._score_target(i, d)[3] for i in range(len(self.targets))]
        for j, k in enumerate(keys):
            self._plans_cache[k] = [plans[j] for plans in per_target]

    def evaluate_full(self, hw: HardwareConfig) -> list[tuple[ParallelPlan | None,
                                                              Evaluation | None]]:
        """The full :class:`Evaluation` (critical path, breakdowns) of one design on every
        workload under its best plan (the ``dse evaluate`` result)."""
        from search.trainstep import evaluate_training

        out: list[tuple[ParallelPlan | None, Evaluation | None]] = []
        for i, plan in enumerate(self.plans_of(hw)):
            t = self.targets[i]
            if plan is None:
                out.append((None, None))
                continue
            out.append((plan, evaluate_training(t.spec, hw, self.system_of(hw, i), plan,
                                                self.tech, seq=t.seq)))
        return out

    def min_hbm_bytes(self) -> float:
        """HBM the leanest plan of the hungriest workload needs (bytes)."""
        return float(max(self.min_memory_bytes))

    def max_hbm_bytes(self) -> float:
        """The largest HBM capacity of the space (bytes)."""
        if "hbm_stacks" in self.space.names:
            return float(self.space.param("hbm_stacks").values[-1]
                         * self.space.hbm.bytes_per_stack)
        return float(self.space.template.hbm_bytes)

    def infeasible_message(self) -> str:
        """Why nothing is feasible: the smallest area (and power) that would work."""
        need = self.min_hbm_bytes()
        a_min = self.space.min_area_mm2(self.tech, power_w=self.power_budget_w,
                                        min_hbm_bytes=need)
        p = f" and {self.power_budget_w:g} W" if self.power_budget_w is not None else ""
        wl = ", ".join(self.workload_names)
        if not np.isfinite(a_min):
            most = self.max_hbm_bytes()
            if need > most:
                return (f"no design in the space holds {wl}: it needs {need / 1e9:.1f} GB of "
                        f"HBM per device, the space offers at most {most / 1e9:.1f} GB; "
                        "use more --devices")
            return (f"no design in the space that holds the {need / 1e9:.1f} GB of HBM "
                    f"{wl} needs per device stays within {self.power_budget_w:g} W; "
                    "raise --power")
        if a_min <= self.area_budget_mm2:
            # The smallest such design is within the budgets (it is feasible): the
            # searcher's budget of evaluations missed every feasible design.
            return (f"the search evaluated no feasible design for {wl} within "
                    f"{self.area_budget_mm2:g} mm²{p}, though the space has some (the "
                    f"smallest, {a_min:.1f} mm², holds the {need / 1e9:.1f} GB of HBM it "
                    "needs); raise --budget or use --searcher exhaustive")
        return (f"no feasible design for {wl} within {self.area_budget_mm2:g} mm²{p}; the "
                f"smallest design that would work needs {a_min:.1f} mm² (holding "
                f"{need / 1e9:.1f} GB of HBM); use --area {np.ceil(a_min * 10) / 10:g} or more")

    def raise_infeasible(self) -> None:
        raise InfeasibleDesignError(self.infeasible_message())

    def settings(self) -> dict[str, Any]:
        """JSON-able description (summary.json, study user attributes)."""
        return {"workloads": list(self.workload_names), "area_mm2": self.area_budget_mm2,
                "power_w": self.power_budget_w, "objective": self.objective,
                "devices": self.targets[0].devices,
                "global_batch": self.targets[0].global_batch, "seq": self.targets[0].seq}


def build_problem(cfg: Any, space: Any = None) -> TrainingProblem:
    """The :class:`TrainingProblem` of a :class:`search.config.SearchConfig` (on
    ``space``, or the default space for its device count)."""
    from cost_models.technology import load_technology
    from search.space import default_space, default_template

    dtype = getattr(cfg, "dtype", None)
    if space is None:
        tpl = default_template()
        space = default_space(template=dataclasses.replace(tpl, dtype=dtype)
                              if dtype and dtype != tpl.dtype else None, devices=cfg.devices)
    elif dtype and dtype != space.template.dtype:
        raise ConfigError(f"the design space's template computes in {space.template.dtype}, "
                          f"the search asks for {dtype}; give one or the other")
    tech = load_technology(space.template.tech_node_nm)
    targets = load_targets(cfg.workloads, devices=cfg.devices, batch=cfg.batch, seq=cfg.seq,
                           attention=getattr(cfg, "attention", None))
    return TrainingProblem(space, targets, tech, area_mm2=cfg.area_mm2, power_w=cfg.power_w,
                           objective=cfg.objective)
