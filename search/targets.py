"""What the local search optimizes (:mod:`search.heuristic`): the end-to-end objective of
an :class:`~search.evaluator.Evaluator` (:class:`GlobalTarget`) or one pipeline stage's
time per training step under a fixed plan (:class:`StageTarget`), with their critical
resources (:mod:`search.diagnosis`) and the evaluation budget they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from dse.types import ParallelPlan
from search.evaluator import Evaluator, objective_value, violation, within_budget
from search.space import DesignSpace

__all__ = ["GlobalTarget", "StageTarget", "Target", "chain_bounds", "critical_chain"]

class Target(Protocol):
    """What the local search optimizes: values of designs and their critical resources."""

    name: str
    space: DesignSpace
    pb: Any
    """The problem (budgets, targets, technology)."""

    @property
    def evaluations(self) -> int: ...

    @property
    def exhausted(self) -> bool: ...

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def within_budget(self, idx: np.ndarray) -> np.ndarray: ...

    def area_and_fit(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def evaluate(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Per design: ``value`` (objective), ``violation`` (0 when feasible, see
        :func:`search.evaluator.violation`), ``area_mm2`` and ``evaluated`` (False beyond
        the budget)."""
        ...

    def diagnose(self, idx: np.ndarray) -> dict[str, float]:
        """Critical seconds per resource of one design."""
        ...


def critical_chain(graph: Any, step: Any, d: int = 0) -> list[int]:
    """The chain of operators that sets the makespan of design ``d`` in a
    :func:`cost_models.evaluate.device_step` result: from the operator that ends last,
    back through whatever each waited for — its predecessor that finished last, or the
    operator that last held the block of tensor cores (or the unit) it needed
    (:func:`cost_models.evaluate.schedule_chain`, the same rule as ``evaluate_device``'s
    ``schedule_chain``)."""
    from cost_models.evaluate import schedule_chain

    return schedule_chain(graph, step, d)


def chain_bounds(graph: Any, hw: Any, tech: Any, comm_time_s: Any = None,
                 scale: float = 1.0, out: dict[str, float] | None = None) -> dict[str, float]:
    """Critical seconds per bounding resource of ``graph`` on ``hw``: the durations of
    the operators on the critical chain (:func:`critical_chain` of the in-loop
    ``device_step`` schedule, operator-level parallelism included), grouped by the bound
    each has on the block of cores it ran on, × ``scale``."""
    from cost_models.designs import DesignBatch
    from cost_models.evaluate import BOUNDS, device_step

    st = device_step(graph, DesignBatch.from_configs([hw]), tech, comm_time_s=comm_time_s)
    oc = st.costs
    chain = critical_chain(graph, st, 0)
    lv = np.asarray(st.level[0], dtype=np.int64)
    dur = (np.take_along_axis(np.asarray(oc.latency_levels_s[0]), lv[:, None], axis=1)[:, 0]
           * np.asarray(oc.count, dtype=np.float64))
    acc = {} if out is None else out
    for j in chain:
        b = BOUNDS[int(oc.bound_levels[0, j, lv[j]])]
        acc[b] = acc.get(b, 0.0) + float(dur[j]) * scale
    return acc


class GlobalTarget:
    """The end-to-end objective of an :class:`~search.evaluator.Evaluator` (all its
    workloads, best plan per design); diagnosis on every workload's slowest stage."""

    def __init__(self, evaluator: Evaluator, name: str = "global",
                 searcher: str = "wham", remaining: Callable[[], int | None] | None = None
                 ) -> None:
        self.remaining = remaining
        self.ev = evaluator
        self.pb: Any = evaluator.problem
        self.space = evaluator.space
        self.name = name
        self.searcher = searcher
        self._diag: dict[int, dict[str, float]] = {}

    @property
    def evaluations(self) -> int:
        return self.ev.evaluations

    @property
    def exhausted(self) -> bool:
        return self.ev.exhausted or _spent(self.remaining)

    def top(self, k: int) -> list[tuple[int, float]]:
        """(grid position, value) of the ``k`` best feasible designs evaluated."""
        c = self.ev.columns()
        rows = self.ev.top(k)
        flat = self.space.flat(c["idx"][rows]) if len(rows) else np.zeros(0, np.int64)
        return [(int(f), float(c["value"][r])) for f, r in zip(flat, rows)]

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pb.area_tdp(idx)

    def within_budget(self, idx: np.ndarray) -> np.ndarray:
        a, p = self.area_tdp(idx)
        return within_budget(self.pb, a, p)

    def area_and_fit(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, p = self.area_tdp(idx)
        return a, within_budget(self.pb, a, p)

    def evaluate(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        a = self.space.check_indices(idx)
        a = a[_allowed(self.space, a, self.ev.known(a), self.remaining)]
        if len(a):
            self.ev.evaluate(a, self.searcher)
        return self.ev.lookup(np.asarray(idx))

    def diagnose(self, idx: np.ndarray) -> dict[str, float]:
        """Critical-time share per resource (:func:`search.diagnosis.diagnose`)."""
        key = int(self.space.flat(idx)[0])
        if key not in self._diag:
            from search.diagnosis import diagnose

            plans = None
            row = int(self.ev.rows_of(np.asarray(idx)[None, :])[0])
            if row >= 0 and hasattr(self.pb, "plans"):
                pid = self.ev.columns()["plan_id"][:, row]
                plans = [self.pb.plans[w][int(k)] if k >= 0 else None
                         for w, k in enumerate(pid)]
            self._diag[key] = diagnose(self.pb, self.space.config(idx), plans)
        return self._diag[key]

    def diagnose_many(self, idxs: list[np.ndarray]) -> None:
        """Fill the diagnosis cache of several designs in one vectorized evaluation per
        (plan, system) (the lockstep local searches ask for several at once)."""
        if not hasattr(self.pb, "plans") or not hasattr(self.pb, "system_of"):
            return
        from search.diagnosis import diagnose_many

        todo: dict[int, np.ndarray] = {}
        for x in idxs:
            key = int(self.space.flat(np.asarray(x))[0])
            if key not in self._diag and key not in todo:
                todo[key] = np.asarray(x)
        if len(todo) < 2:
            return
        keys = list(todo)
        arr = np.array([todo[k] for k in keys])
        rows = self.ev.rows_of(arr)
        if np.any(rows < 0):
            return
        pid = self.ev.columns()["plan_id"][:, rows]
        plans_of = [[self.pb.plans[w][int(k)] if k >= 0 else None
                     for w, k in enumerate(pid[:, i])] for i in range(len(keys))]
        hws = [self.space.config(x) for x in arr]
        for k, d in zip(keys, diagnose_many(self.pb, hws, plans_of)):
            self._diag[k] = d


class StageTarget:
    """One pipeline stage's time per training step under a fixed plan:
    ``m·(fwd + bwd + recompute) + optimizer`` of the stage's segments
    (:func:`cost_models.training.segment_costs`); feasible when within budget and the
    plan's memory fits the design's HBM. Value: 1 / that time (or per TDP watt for
    ``perf_per_tdp``)."""

    def __init__(self, problem: Any, workload: int, stage: int, plan: ParallelPlan, *,
                 name: str, remaining: Callable[[], int | None] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.remaining = remaining
        self.on_progress = on_progress
        self.pb: Any = problem
        self.space = problem.space
        self.w = workload
        self.stage = stage
        self.plan = plan
        self.name = name
        model = problem.models[workload]
        self.parts = [x for x in model.stage_graphs(plan) if x[0] == stage]
        self.memory_bytes = model.memory_bytes(plan)
        self._cache: dict[int, tuple[float, float, float]] = {}
        self._diag: dict[int, dict[str, float]] = {}

    @property
    def evaluations(self) -> int:
        return len(self._cache)

    @property
    def exhausted(self) -> bool:
        return _spent(self.remaining)

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pb.area_tdp(idx)

    def within_budget(self, idx: np.ndarray) -> np.ndarray:
        a, p = self.area_tdp(idx)
        return within_budget(self.pb, a, p)

    def area_and_fit(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, p = self.area_tdp(idx)
        return a, within_budget(self.pb, a, p)

    def _score(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from cost_models.network import comm_time_s
        from cost_models.training import segment_costs

        designs = self.space.designs(idx)
        n = len(idx)
        time_s = np.zeros(n)
        plan = self.plan
        zero = plan.grad_group if plan.zero_stage >= 1 else 1
        for sel, system in self.pb._groups(designs, self.w):
            sub = designs if len(sel) == n else designs.subset(sel)
            graphs = [g for _, _, g, _, _ in self.parts]
            costs = segment_costs(graphs, sub, self.pb.tech,
                                  [comm_time_s(g, system, plan) for g in graphs],
                                  recompute_modules=plan.recompute_modules)
            t = np.zeros(len(sel))
            for (_, _, _, mult, layer), c in zip(self.parts, costs):
                rec = 0.0
                if layer and plan.recompute == "full":
                    rec = c.fwd_s
                elif layer and plan.recompute == "selective":
                    rec = c.attn_core_s
                t = t + mult * (plan.micro_batches * (c.fwd_s + c.bwd_s + rec) + c.opt_s / zero)
            time_s[sel] = t
        area, tdp = self.area_tdp(idx)
        hbm = np.asarray(designs.hbm_bytes, float)
        viol = violation(self.pb, area, tdp, np.full((1, n), self.memory_bytes), hbm)
        rate = 1.0 / np.maximum(time_s, 1e-30)
        value = objective_value(self.pb.objective, rate[None, :], tdp)
        return value, viol, area

    def evaluate(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        a = self.space.check_indices(idx)
        flat = self.space.flat(a)
        known = np.array([int(f) in self._cache for f in flat], dtype=bool)
        allowed = _allowed(self.space, a, known, self.remaining)
        new = [i for i in np.flatnonzero(allowed & ~known).tolist()]
        if new:
            v, viol, area = self._score(a[new])
            for k, i in enumerate(new):
                self._cache[int(flat[i])] = (float(v[k]), float(viol[k]), float(area[k]))
            if self.on_progress is not None:
                self.on_progress(len(new))
        out = {"value": np.full(len(a), np.nan), "violation": np.full(len(a), np.inf),
               "area_mm2": np.full(len(a), np.nan), "evaluated": np.zeros(len(a), bool)}
        for i, f in enumerate(flat.tolist()):
            if f in self._cache:
                cv, cviol, car = self._cache[f]
                out["value"][i], out["violation"][i], out["area_mm2"][i] = cv, cviol, car
                out["evaluated"][i] = True
        out["feasible"] = out["violation"] <= 0
        return out

    def diagnose(self, idx: np.ndarray) -> dict[str, float]:
        key = int(self.space.flat(idx)[0])
        if key not in self._diag:
            from search.diagnosis import stage_seconds

            hw = self.space.config(idx)
            acc = stage_seconds(self.pb.models[self.w], hw, self.pb.system_of(hw, self.w),
                                self.pb.tech, self.plan, self.stage)
            if self.memory_bytes > hw.hbm_bytes:
                acc["memory"] = 10.0 * (sum(acc.values()) or 1.0)
            self._diag[key] = acc
        return self._diag[key]

    def top(self, k: int) -> list[tuple[int, float]]:
        """(grid position, value) of the ``k`` best feasible designs seen (ties: smaller
        area first)."""
        items = [(f, v, ar) for f, (v, viol, ar) in self._cache.items() if viol <= 0]
        items.sort(key=lambda x: (-x[1], x[2], x[0]))
        return [(f, v) for f, v, _ in items[:k]]


def _spent(remaining: Callable[[], int | None] | None) -> bool:
    if remaining is None:
        return False
    r = remaining()
    return r is not None and r <= 0


def _allowed(space: DesignSpace, idx: np.ndarray, known: np.ndarray,
             remaining: Callable[[], int | None] | None) -> np.ndarray:
    """Mask of designs that may be evaluated: every known one, and the first new ones
    (distinct grid positions) up to the remaining budget."""
    ok = known.copy()
    r = None if remaining is None else remaining()
    seen: set[int] = set()
    for i, f in enumerate(space.flat(idx).tolist()):
        if known[i]:
            continue
        if f in seen:
            ok[i] = True
            continue
        if r is not None and len(seen) >= r:
            continue
        seen.add(f)
        ok[i] = True
    return ok


