"""WHAM's critical-path local search (``docs/sources.md`` M4), per pipeline stage.

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
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.errors import ConfigError
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
from search.space import DesignSpace
from search.targets import (
    GlobalTarget,
    StageTarget,
    Target,
    chain_bounds,
    critical_chain,
)

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
    return local_searches(target, [seed], max_steps=max_steps, guidance=guidance,
                          on_step=on_step)[0]


def local_searches(target: Target, seeds: Sequence[np.ndarray], *, max_steps: int = 64,
                   guidance: str = "critical-path",
                   on_step: Callable[[dict[str, Any]], None] | None = None
                   ) -> list[LocalSearchResult]:
    """:func:`local_search` from every seed, run in lockstep: each round pools the
    candidates every active search proposes into one batch for the cost model (one
    vectorized call instead of one per search and step). Each search takes exactly the
    steps it would take alone; only the order in which designs are first scored differs
    (and, under a small evaluation budget, which search spends it)."""
    if guidance not in GUIDANCE:
        raise ConfigError(f"guidance={guidance!r} is not valid; choose one of "
                          f"{', '.join(GUIDANCE)}")
    gens = [_search_steps(target, np.asarray(s, dtype=np.int64), max_steps, guidance, on_step)
            for s in seeds]
    out: list[LocalSearchResult | None] = [None] * len(gens)
    pending: dict[int, tuple[str, np.ndarray]] = {}
    for i, g in enumerate(gens):
        pending[i] = next(g)
    while pending:
        asks = [req[1].reshape(-1, len(target.space.params)) for req in pending.values()
                if req[0] == "evaluate"]
        if len(asks) > 1:
            target.evaluate(np.unique(np.vstack(asks), axis=0))
        diags = [req[1] for req in pending.values() if req[0] == "diagnose"]
        if len(diags) > 1 and hasattr(target, "diagnose_many"):
            target.diagnose_many(diags)  # one batch; each search then reads its own
        for i in sorted(pending):
            kind, x = pending[i]
            ans = target.evaluate(x) if kind == "evaluate" else target.diagnose(x)
            try:
                pending[i] = gens[i].send(ans)
            except StopIteration as stop:
                out[i] = stop.value
                del pending[i]
    return [r for r in out if r is not None]


def _search_steps(target: Target, seed: np.ndarray, max_steps: int, guidance: str,
                  on_step: Callable[[dict[str, Any]], None] | None
                  ) -> Generator[tuple[str, np.ndarray], Any, LocalSearchResult]:
    """One local search as a generator: it yields ``("evaluate", designs)`` and
    ``("diagnose", design)`` requests and receives the target's answers."""
    cur = seed
    r0 = yield ("evaluate", cur[None, :])
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
            bounds = yield ("diagnose", cur)
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
            r = yield ("evaluate", cands)
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
    the budget, docs/sources.md M2; a training chip that leaves most of its area unused is
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
    searches = local_searches(target, list(seeds), max_steps=max_steps, guidance=guidance)
    if top_fn is None:
        if not hasattr(target, "top"):
            raise ConfigError(f"target {target.name!r} cannot rank its designs; pass top_fn")
        top_fn = target.top  # type: ignore[attr-defined]
    tops = top_fn(top_k)
    return StageResult(name=target.name, workload=workload, evaluations=target.evaluations,
                       top=[int(f) for f, _ in tops], top_values=[float(v) for _, v in tops],
                       searches=searches, plan=plan)
