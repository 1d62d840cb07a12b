"""WHAM's critical-path local search (``reference/method.md`` §4), per pipeline stage.

One **step** from a design ``x``:

1. *evaluate* ``x`` and *find its critical path*: the stage's forward and backward graphs
   are scheduled by the scalar reference scheduler
   (:func:`cost_models.evaluate.evaluate_device`); the critical chain is the chain of
   operators that sets the makespan in the resource-constrained schedule
   (``schedule_chain``: each operator waited for its predecessor or for its resource);
2. *find what bounds each critical operator* — ``tensor`` (systolic compute), ``vector``,
   ``sram`` (on-chip fabric traffic, set by the per-core SRAM), ``hbm`` (off-chip
   bandwidth; the spill, hence the traffic, also shrinks with SRAM), ``link``
   (collectives) — and add up the critical seconds of each (forward and backward × the
   plan's micro-batches); a design that fits no plan in its HBM is bound by ``memory``;
3. *grow the bounding resource and shrink slack ones*: the candidates are one grid step
   up in every parameter of the resources holding ≥ :data:`GROW_SHARE` of the critical
   time (the dataflow switch counts as a tensor move), the same combined with one step
   down in a parameter of a slack resource (< :data:`SLACK_SHARE` of the critical time,
   which frees budget), the same grow *repaired* by as many slack steps down as the
   budget needs (:func:`grow_and_repair`), the slack steps down alone, and *reshapes* of a bound resource
   (:data:`SHAPE_GROUPS`: one step up in tensor cores and down in array columns keeps the
   MACs and changes their shape) alone or with one more grow or slack shrink; candidates
   over the area/power budget are dropped before evaluation;
4. evaluate the candidates (one vectorized batch) and move to the best one if it beats
   ``x``. When no guided candidate improves, the step falls back once to the full
   neighbourhood (every ±1 move, every grow+shrink pair, every reshape with any other ±1
   move) before declaring ``x`` a local optimum.

:func:`local_search` iterates steps from one seed until no gain; :func:`wham_search`
runs it from several seeds (the TPU-like and NVDLA-like baselines snapped to the grid,
plus random designs that use most of the area budget) for every **stage**:

* with a single pipeline stage (``pp = 1`` under the seed's best plan) the stage is the
  whole workload and the search optimizes the end-to-end objective directly;
* with ``pp > 1`` every distinct stage of the seed's plan (first, middle, last) gets its
  own search on its own time per training step (:class:`StageTarget`), so each stage's
  top-``k`` designs reflect that stage's operator mix;

the per-stage top-``k`` sets then go to :func:`search.global_search.global_search`,
which picks the one chip for all devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dse.errors import ConfigError
from dse.types import ParallelPlan
from search.config import GUIDANCE
from search.moves import (
    GROW_SHARE,
    RESOURCE_PARAMS,
    SHAPE_GROUPS,
    SLACK_SHARE,
    TIERS,
    _step,
    grow_and_repair,
    invert_bounds,
    move_sets,
    payers,
    propose_moves,
    second_params,
)
from search.evaluator import Evaluator, objective_value, violation, within_budget
from search.space import DesignSpace

__all__ = [
    "GROW_SHARE",
    "GUIDANCE",
    "RESOURCE_PARAMS",
    "SHAPE_GROUPS",
    "SLACK_SHARE",
    "TIERS",
    "GlobalTarget",
    "LocalSearchResult",
    "StageResult",
    "StageTarget",
    "Target",
    "chain_bounds",
    "critical_chain",
    "grow_and_repair",
    "invert_bounds",
    "local_search",
    "move_sets",
    "payers",
    "propose_moves",
    "seed_designs",
    "wham_search",
]

# --------------------------------------------------------------------------- targets


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

    def _score(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from cost_models.network import comm_time_s
        from cost_models.training import segment_costs

        designs = self.space.designs(idx)
        n = len(idx)
        time_s = np.zeros(n)
        plan = self.plan
        zero = plan.dp if plan.zero_stage >= 1 else 1
        for sel, system in self.pb._groups(designs, self.w):
            sub = designs if len(sel) == n else designs.subset(sel)
            graphs = [g for _, _, g, _, _ in self.parts]
            costs = segment_costs(graphs, sub, self.pb.tech,
                                  [comm_time_s(g, system, plan) for g in graphs])
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


# --------------------------------------------------------------------------- search


@dataclass
class LocalSearchResult:
    """Trajectory of one local search: the designs it moved through and why."""

    seed: np.ndarray
    best: np.ndarray
    best_value: float
    start_value: float
    steps: list[dict[str, Any]] = field(default_factory=list)


def _hbm_floor(space: DesignSpace, need_bytes: float) -> int:
    """Smallest ``hbm_stacks`` index whose capacity holds ``need_bytes`` (the last one if
    none does)."""
    vals = space.param("hbm_stacks").values
    for k, v in enumerate(vals):
        if v * space.hbm.bytes_per_stack >= need_bytes:
            return k
    return len(vals) - 1


def _repair(target: Target, idx: np.ndarray, need_hbm_bytes: float = 0.0,
            max_steps: int = 64) -> np.ndarray | None:
    """Give the design the HBM stacks the workload needs, then shrink it one step at a
    time (the step saving the most area first, never below that HBM) until it fits the
    area/power budget; None if it cannot."""
    space = target.space
    cur = np.asarray(idx, dtype=np.int64).copy()
    floor = -1
    if "hbm_stacks" in space.names and need_hbm_bytes > 0:
        j = space.names.index("hbm_stacks")
        floor = _hbm_floor(space, need_hbm_bytes)
        cur[j] = max(cur[j], floor)
    for _ in range(max_steps):
        if target.within_budget(cur[None, :])[0]:
            return cur
        downs = [b for n in space.names for b in _step(space, cur, n, -1)
                 if n != "hbm_stacks" or b[space.names.index(n)] >= floor]
        if not downs:
            return None
        arr = np.array(downs)
        area, _ = target.area_tdp(arr)
        cur = arr[int(np.argmin(area))]
    return cur if target.within_budget(cur[None, :])[0] else None


def _key(r: dict[str, np.ndarray], i: int) -> tuple[float, float, float]:
    """Ordering of designs (larger is better): feasible first (smaller violation), then
    the objective, then smaller area (an equally good smaller chip frees budget)."""
    if not r["evaluated"][i]:
        return (-math.inf, -math.inf, -math.inf)
    viol = float(r["violation"][i])
    if viol > 0:
        return (-viol, -math.inf, -float(r["area_mm2"][i]))
    return (0.0, float(r["value"][i]), -float(r["area_mm2"][i]))


def _better(a: tuple[float, float, float], b: tuple[float, float, float],
            rtol: float = 1e-9) -> bool:
    """``a`` strictly better than ``b`` (objective compared with a relative tolerance)."""
    if a[0] != b[0]:
        return a[0] > b[0]
    if math.isfinite(a[1]) and math.isfinite(b[1]):
        tol = rtol * max(abs(a[1]), abs(b[1]))
        if abs(a[1] - b[1]) > tol:
            return a[1] > b[1]
        return a[2] - b[2] > rtol * abs(b[2])
    if a[1] != b[1]:
        return a[1] > b[1]
    return a[2] - b[2] > rtol * abs(b[2])


def local_search(target: Target, seed: np.ndarray, *, max_steps: int = 64,
                 guidance: str = "critical-path",
                 on_step: Callable[[dict[str, Any]], None] | None = None
                 ) -> LocalSearchResult:
    """Critical-path local search from ``seed`` until no candidate improves (or the
    target's budget is spent). Moves are accepted when strictly better in (feasibility,
    objective, smaller area). ``guidance``: one of :data:`GUIDANCE`."""
    if guidance not in GUIDANCE:
        raise ConfigError(f"guidance={guidance!r} is not valid; choose one of "
                          f"{', '.join(GUIDANCE)}")
    cur = np.asarray(seed, dtype=np.int64)
    r0 = target.evaluate(cur[None, :])
    cur_k = _key(r0, 0)
    res = LocalSearchResult(seed=cur.copy(), best=cur.copy(), best_value=cur_k[1],
                            start_value=cur_k[1])
    for it in range(max_steps):
        if target.exhausted:
            break
        if guidance == "none":
            bounds: dict[str, float] = {}
            tiers: tuple[int, ...] = (2,)
        else:
            bounds = target.diagnose(cur)
            if guidance == "inverted":
                bounds = invert_bounds(bounds)
            tiers = TIERS
        moved = False
        for tier in tiers:
            full = tier == 2
            cands = propose_moves(target.space, cur, bounds, tier=tier)
            if cur_k[0] == 0.0:  # feasible: stay within the area/power budget
                cands = cands[target.within_budget(cands)] if len(cands) else cands
                _, gp, sp = move_sets(target.space, bounds, full=full)
                if tier == 1:  # the other critical resources, grown and repaired
                    gp = second_params(target.space, bounds)
                # grows repaired by less critical resources
                extra = grow_and_repair(target, cur, gp, sp,
                                        bounds=None if full else bounds) if gp else []
                if extra:
                    cands = np.unique(np.vstack([cands.reshape(-1, len(cur)),
                                                 np.array(extra)]), axis=0)
            if len(cands) == 0:
                continue
            r = target.evaluate(cands)
            keys = [_key(r, i) for i in range(len(cands))]
            j = max(range(len(cands)), key=lambda i: (keys[i], -i))
            if _better(keys[j], cur_k):
                top = max(bounds, key=lambda k: bounds[k]) if bounds else ""
                gain = (keys[j][1] / cur_k[1] - 1.0
                        if cur_k[0] == 0.0 and cur_k[1] > 0 else math.inf)
                step = {"step": it, "from": cur.tolist(), "to": cands[j].tolist(),
                        "value": keys[j][1], "gain": gain, "bound": top, "fallback": full,
                        "tier": tier,
                        "critical_s": {k: float(x) for k, x in bounds.items()}}
                res.steps.append(step)
                if on_step is not None:
                    on_step(step)
                cur, cur_k = cands[j], keys[j]
                moved = True
                break
            if target.exhausted:
                break
        if not moved:
            break
    res.best, res.best_value = cur, cur_k[1]
    return res


def seed_designs(space: DesignSpace, target: Target, baselines: Sequence[Any], *,
                 rng: np.random.Generator, random_seeds: int = 4,
                 min_area_fraction: float = 0.7) -> list[np.ndarray]:
    """Starting points: the baselines (HardwareConfigs) snapped to the grid, given the HBM
    the workloads need and repaired into the budget, then ``random_seeds`` random designs using between
    ``min_area_fraction`` and 100% of the area budget (Phaze keeps designs above 30% of
    the budget, method.md §2; a training chip that leaves most of its area unused is
    never the throughput optimum, so we start higher)."""
    out: list[np.ndarray] = []
    seen: set[int] = set()

    def add(x: np.ndarray | None) -> None:
        if x is None:
            return
        f = int(space.flat(x[None, :])[0])
        if f not in seen:
            seen.add(f)
            out.append(x)

    need = float(target.pb.min_hbm_bytes()) if hasattr(target.pb, "min_hbm_bytes") else 0.0
    for hw in baselines:
        add(_repair(target, space.index_of(hw, snap=True), need))
    budget = target.pb.area_budget_mm2
    tries = 0
    want = len(out) + random_seeds
    while len(out) < want and tries < 200:
        tries += 1
        cand = space.sample(rng, 256)
        if need > 0 and "hbm_stacks" in space.names:
            j = space.names.index("hbm_stacks")
            cand[:, j] = np.maximum(cand[:, j], _hbm_floor(space, need))
        area, _ = target.area_tdp(cand)
        ok = target.within_budget(cand) & (area >= min_area_fraction * budget)
        for x in cand[ok]:
            add(x)
            if len(out) >= want:
                break
    return out


@dataclass
class StageResult:
    """Local searches of one stage and its top-k designs (grid positions)."""

    name: str
    workload: str
    evaluations: int
    top: list[int]
    top_values: list[float]
    searches: list[LocalSearchResult]
    plan: dict[str, Any] | None = None


def wham_search(target: Target, seeds: Sequence[np.ndarray], *, top_k: int = 5,
                top_fn: Callable[[int], list[tuple[int, float]]] | None = None,
                workload: str = "", plan: dict[str, Any] | None = None,
                max_steps: int = 64, guidance: str = "critical-path") -> StageResult:
    """Local search from every seed on one target; the stage's top-``k`` designs."""
    searches = []
    for s in seeds:
        if target.exhausted:
            break
        searches.append(local_search(target, s, max_steps=max_steps, guidance=guidance))
    if top_fn is None:
        if not hasattr(target, "top"):
            raise ConfigError(f"target {target.name!r} cannot rank its designs; pass top_fn")
        top_fn = target.top  # type: ignore[attr-defined]
    tops = top_fn(top_k)
    return StageResult(name=target.name, workload=workload, evaluations=target.evaluations,
                       top=[int(f) for f, _ in tops], top_values=[float(v) for _, v in tops],
                       searches=searches, plan=plan)
