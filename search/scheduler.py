"""Operator scheduling for the search: critical-path analysis, a list scheduler and an
exact ILP on small DAGs (WHAM/Phaze, ``docs/sources.md`` M4).

The performance model of a whole training step lives in :mod:`cost_models.evaluate`
(``device_step`` schedules a stage's DAG on the tensor-core, vector-core and link
resources of many designs at once; ``evaluate_device`` is its scalar reference). This
module adds what the *search* needs on top of it, on a generic problem (tasks with
durations on typed resources):

* :func:`asap_alap` / :func:`critical_tasks` — WHAM's ASAP/ALAP mobility analysis
  (mobility 0 = critical), used by the heuristic to rank operators;
* :func:`lower_bound_s` — the two classical makespan lower bounds: the longest path and
  the per-resource load divided by the resource's units;
* :func:`list_schedule` — a non-delay list scheduler with critical-path (bottom-level)
  priority, the reference the ILP is compared with;
* :func:`ilp_schedule` — Phaze's disjunctive ILP (start times, makespan, precedence,
  big-M disjunctions on shared units, optional intra-op parallelism over all units of a
  type), solved with :func:`scipy.optimize.milp` (HiGHS). It refines the schedule of a
  unique (repeated) block and measures the list scheduler's gap;
* :func:`problem_from_costs` — builds a :class:`SchedulingProblem` from a graph and the
  per-operator latencies of :func:`cost_models.evaluate.op_costs`.

All times are seconds.

>>> p = SchedulingProblem(names=("a", "b", "c"), duration_s=(2.0, 3.0, 1.0),
...                       resource=(0, 0, 1), capacity=(1, 1), preds=((), (), (0, 1)))
>>> list_schedule(p).makespan_s
6.0
>>> lower_bound_s(p)       # the tensor-core load: 2 + 3
5.0
>>> ilp_schedule(p).makespan_s
6.0
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.errors import ConfigError
from search.malleable_ilp import block_refinement

__all__ = [
    "RESOURCE_NAMES",
    "Schedule",
    "SchedulingProblem",
    "asap_alap",
    "block_refinement",
    "critical_tasks",
    "ilp_schedule",
    "list_schedule",
    "lower_bound_s",
    "problem_from_costs",
    "validate_schedule",
]

RESOURCE_NAMES: tuple[str, ...] = ("tc", "vc", "link")
"""Resource types of a device: tensor cores, vector cores, chip-to-chip links."""


@dataclass(frozen=True, kw_only=True)
class SchedulingProblem:
    """Tasks with durations on typed, identical units.

    ``resource[i]`` indexes ``capacity`` (units of that type, e.g. tensor cores).
    ``duration_s[i]`` is task *i* on one unit; ``parallel_duration_s[i]`` (optional) is
    its latency when split over all ``capacity[resource[i]]`` units of its type, which it
    then occupies alone (Phaze's ``y_i``). ``preds[i]`` lists predecessor task indices;
    tasks must be given in a topological order (every predecessor index < i).
    """

    names: tuple[str, ...]
    duration_s: np.ndarray
    resource: np.ndarray
    capacity: tuple[int, ...]
    preds: tuple[tuple[int, ...], ...]
    parallel_duration_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        o = "SchedulingProblem"
        n = len(self.names)
        d = np.asarray(self.duration_s, dtype=np.float64).reshape(-1)
        r = np.asarray(self.resource, dtype=np.int64).reshape(-1)
        if d.shape != (n,) or r.shape != (n,):
            raise ConfigError(f"{o}: duration_s has {d.size} and resource {r.size} entries "
                              f"for {n} names; they must all match")
        if n and (not np.all(np.isfinite(d)) or np.any(d < 0)):
            raise ConfigError(f"{o}.duration_s must be finite and >= 0, got {d.min()!r}")
        caps = tuple(int(c) for c in self.capacity)
        if any(c < 1 for c in caps):
            raise ConfigError(f"{o}.capacity={caps!r}: every resource needs >= 1 unit")
        if n and (r.min() < 0 or r.max() >= len(caps)):
            raise ConfigError(f"{o}.resource values must index capacity (0..{len(caps) - 1}), "
                              f"got {int(r.min())}..{int(r.max())}")
        preds = tuple(tuple(int(p) for p in ps) for ps in self.preds)
        if len(preds) != n:
            raise ConfigError(f"{o}.preds has {len(preds)} entries for {n} tasks")
        for i, ps in enumerate(preds):
            for p in ps:
                if not 0 <= p < i:
                    raise ConfigError(f"{o}.preds[{i}] contains {p}: tasks must be listed in "
                                      "topological order (predecessor index < task index)")
        pd = None
        if self.parallel_duration_s is not None:
            pd = np.asarray(self.parallel_duration_s, dtype=np.float64).reshape(-1)
            if pd.shape != (n,) or (n and (not np.all(np.isfinite(pd)) or np.any(pd < 0))):
                raise ConfigError(f"{o}.parallel_duration_s must hold {n} finite values >= 0")
            pd.setflags(write=False)
        d.setflags(write=False)
        r.setflags(write=False)
        object.__setattr__(self, "duration_s", d)
        object.__setattr__(self, "resource", r)
        object.__setattr__(self, "capacity", caps)
        object.__setattr__(self, "preds", preds)
        object.__setattr__(self, "parallel_duration_s", pd)
        object.__setattr__(self, "names", tuple(str(x) for x in self.names))

    @property
    def n(self) -> int:
        return len(self.names)

    def succs(self) -> list[list[int]]:
        s: list[list[int]] = [[] for _ in range(self.n)]
        for i, ps in enumerate(self.preds):
            for p in ps:
                s[p].append(i)
        return s

    def min_duration_s(self) -> np.ndarray:
        """Shortest latency of each task (one unit, or all units if allowed)."""
        if self.parallel_duration_s is None:
            return self.duration_s
        return np.minimum(self.duration_s, self.parallel_duration_s)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A schedule: start/end per task, the units it used, and its makespan (s)."""

    start_s: np.ndarray
    end_s: np.ndarray
    units: tuple[tuple[int, ...], ...]
    makespan_s: float
    method: str
    lower_bound_s: float = 0.0
    """Best proven lower bound (the ILP's dual bound; for the list scheduler the
    :func:`lower_bound_s` of the problem)."""
    optimal: bool = False
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def gap(self) -> float:
        """Relative distance to the lower bound, (makespan − bound) / makespan."""
        if self.makespan_s <= 0:
            return 0.0
        return max(0.0, (self.makespan_s - self.lower_bound_s) / self.makespan_s)


# --------------------------------------------------------------------------- analysis


def asap_alap(problem: SchedulingProblem, duration_s: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Resource-free ASAP and ALAP start times and the critical-path length (s).

    ``ALAP(sink) = ASAP(sink)`` as in WHAM's code: the ALAP start of a task is the
    latest start that does not lengthen the longest path. Mobility = ALAP − ASAP.
    """
    d = problem.min_duration_s() if duration_s is None else np.asarray(duration_s, float)
    n = problem.n
    asap = np.zeros(n)
    for i, ps in enumerate(problem.preds):
        if ps:
            asap[i] = max(asap[p] + d[p] for p in ps)
    length = float(np.max(asap + d)) if n else 0.0
    alap = np.full(n, 0.0)
    latest_end = np.full(n, length)
    for i in range(n - 1, -1, -1):
        alap[i] = latest_end[i] - d[i]
        for p in problem.preds[i]:
            latest_end[p] = min(latest_end[p], alap[i])
    return asap, alap, length


def critical_tasks(problem: SchedulingProblem, rtol: float = 1e-9) -> list[int]:
    """Tasks with zero mobility (on a longest path), in topological order."""
    asap, alap, length = asap_alap(problem)
    tol = rtol * max(length, 1e-300)
    return [i for i in range(problem.n) if alap[i] - asap[i] <= tol]


def lower_bound_s(problem: SchedulingProblem) -> float:
    """max(longest path, max over resource types of work / units) (s).

    The work of a task is its unit-seconds: ``duration`` on one unit, or
    ``parallel_duration × units`` when split, whichever is smaller.
    """
    if problem.n == 0:
        return 0.0
    _, _, cp = asap_alap(problem)
    caps = np.asarray(problem.capacity, dtype=np.float64)
    work = problem.duration_s.copy()
    if problem.parallel_duration_s is not None:
        work = np.minimum(work, problem.parallel_duration_s * caps[problem.resource])
    load = np.bincount(problem.resource, weights=work, minlength=len(caps)) / caps
    return float(max(cp, float(load.max())))


def bottom_levels(problem: SchedulingProblem) -> np.ndarray:
    """Longest path from the start of each task to the end of the DAG (s): the
    critical-path priority of list scheduling."""
    d = problem.min_duration_s()
    bl = d.astype(np.float64).copy()
    succ = problem.succs()
    for i in range(problem.n - 1, -1, -1):
        if succ[i]:
            bl[i] = d[i] + max(bl[j] for j in succ[i])
    return bl


# --------------------------------------------------------------------------- list


def list_schedule(problem: SchedulingProblem, priority: Sequence[float] | None = None,
                  *, use_parallel: bool = False) -> Schedule:
    """Non-delay list schedule (parallel schedule-generation scheme).

    At every event time, ready tasks are started in decreasing ``priority`` (default:
    bottom level, i.e. critical-path priority; ties by index) on free units of their
    type. With ``use_parallel`` a task that has a ``parallel_duration_s`` runs split over
    all units of its type when they are all free and that ends it earlier; otherwise
    every task runs on one unit with ``duration_s``.
    """
    n = problem.n
    if n == 0:
        return Schedule(start_s=np.zeros(0), end_s=np.zeros(0), units=(), makespan_s=0.0,
                        method="list", lower_bound_s=0.0)
    prio = bottom_levels(problem) if priority is None else np.asarray(priority, float)
    caps = problem.capacity
    free_at = [np.zeros(c) for c in caps]
    npred = [len(ps) for ps in problem.preds]
    succ = problem.succs()
    release = np.zeros(n)
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    units: list[tuple[int, ...]] = [()] * n
    pool = {i for i in range(n) if npred[i] == 0}
    t = 0.0
    done = 0
    while done < n:
        started = True
        while started:  # zero-length tasks can release successors at the same t
            started = False
            for i in sorted((i for i in pool if release[i] <= t), key=lambda i: (-prio[i], i)):
                r = int(problem.resource[i])
                freeu = np.flatnonzero(free_at[r] <= t)
                if freeu.size == 0:
                    continue
                dur = float(problem.duration_s[i])
                use: tuple[int, ...] = (int(freeu[0]),)
                if (use_parallel and problem.parallel_duration_s is not None and caps[r] > 1
                        and freeu.size == caps[r] and problem.parallel_duration_s[i] < dur):
                    dur = float(problem.parallel_duration_s[i])
                    use = tuple(range(caps[r]))
                start[i], end[i], units[i] = t, t + dur, use
                free_at[r][list(use)] = t + dur
                pool.discard(i)
                done += 1
                started = True
                for j in succ[i]:
                    npred[j] -= 1
                    release[j] = max(release[j], end[i])
                    if npred[j] == 0:
                        pool.add(j)
        if done == n:
            break
        later = [float(f) for fa in free_at for f in fa if f > t]
        later += [float(release[i]) for i in pool if release[i] > t]
        t = min(later)
    return Schedule(start_s=start, end_s=end, units=tuple(units), makespan_s=float(end.max()),
                    method="list", lower_bound_s=lower_bound_s(problem))


# --------------------------------------------------------------------------- ILP


def _comparable(problem: SchedulingProblem) -> list[set[int]]:
    """Ancestors of every task (transitive predecessors)."""
    anc: list[set[int]] = []
    for ps in problem.preds:
        a: set[int] = set()
        for p in ps:
            a.add(p)
            a |= anc[p]
        anc.append(a)
    return anc


def ilp_schedule(problem: SchedulingProblem, *, time_limit_s: float = 10.0,
                 allow_parallel: bool = True, mip_rel_gap: float = 1e-6,
                 upper_bound: Schedule | None = None) -> Schedule:
    """Minimum-makespan schedule by mixed-integer programming (HiGHS via ``milp``).

    Formulation (Phaze ``Solver/ilp.py``, ``docs/sources.md`` M4), times scaled by
    the list-schedule makespan ``H`` (which also serves as big-M):

    * variables: start ``t_i``, makespan ``T``; ``y_i`` = task runs split over all units
      of its type (only if ``parallel_duration_s`` is given, ``allow_parallel`` and the
      type has > 1 unit); ``z_ik`` = task runs on unit *k*; for every unordered pair of
      tasks of the same type that the DAG does not order: ``s_ij`` = they share a unit
      and ``x_ij`` = *i* precedes *j*;
    * ``p_i = d1_i + y_i (dp_i − d1_i)``; ``T ≥ t_i + p_i``; ``t_i + p_i ≤ t_j`` on edges;
    * ``Σ_k z_ik = 1``; ``s_ij ≥ z_ik + z_jk − 1``, ``s_ij ≥ y_i``, ``s_ij ≥ y_j``
      (a split task runs alone);
    * ``t_i + p_i ≤ t_j + H(1 − x_ij) + H(1 − s_ij)`` and
      ``t_j + p_j ≤ t_i + H x_ij + H(1 − s_ij)`` (disjunction on a shared unit);
    * unit symmetry is broken by ``z_ik = 0`` for ``k > position of i`` in its type.

    With one unit per type ``z``/``s`` drop out (``s_ij = 1``). The better list schedule
    (one unit per task, or split when all units are free) is the warm bound: ``T ≤ H``. Returns the best schedule found within ``time_limit_s``; its
    ``lower_bound_s`` is HiGHS's dual bound and ``optimal`` says whether it closed.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    n = problem.n
    if upper_bound is not None:
        ub_sched = upper_bound
    else:
        ub_sched = list_schedule(problem)
        if allow_parallel and problem.parallel_duration_s is not None:
            alt = list_schedule(problem, use_parallel=True)
            if alt.makespan_s < ub_sched.makespan_s:
                ub_sched = alt
    if n == 0:
        return ub_sched
    H = float(ub_sched.makespan_s)
    if H <= 0:
        return Schedule(start_s=np.zeros(n), end_s=np.zeros(n), units=ub_sched.units,
                        makespan_s=0.0, method="ilp", lower_bound_s=0.0, optimal=True)
    d1 = problem.duration_s / H
    caps = problem.capacity
    res = problem.resource
    par_ok = np.zeros(n, dtype=bool)
    dp = d1.copy()
    if allow_parallel and problem.parallel_duration_s is not None:
        dp = problem.parallel_duration_s / H
        par_ok = np.array([caps[int(res[i])] > 1 and dp[i] < d1[i] for i in range(n)])

    names: list[str] = []
    lb: list[float] = []
    ubv: list[float] = []
    integ: list[int] = []

    def var(name: str, lo: float, hi: float, is_int: bool) -> int:
        names.append(name)
        lb.append(lo)
        ubv.append(hi)
        integ.append(1 if is_int else 0)
        return len(names) - 1

    T = var("T", 0.0, 1.0, False)
    t = [var(f"t{i}", 0.0, 1.0, False) for i in range(n)]
    y = [var(f"y{i}", 0.0, 1.0, True) if par_ok[i] else -1 for i in range(n)]
    pos_in_type = np.zeros(n, dtype=int)
    seen = [0] * len(caps)
    for i in range(n):
        pos_in_type[i] = seen[int(res[i])]
        seen[int(res[i])] += 1
    z: list[list[int]] = []
    for i in range(n):
        c = caps[int(res[i])]
        if c == 1:
            z.append([])
        else:
            kmax = min(c - 1, int(pos_in_type[i]))
            z.append([var(f"z{i}_{k}", 0.0, 1.0 if k <= kmax else 0.0, True)
                      for k in range(c)])
    anc = _comparable(problem)
    pairs: list[tuple[int, int, int, int]] = []  # (i, j, x_ij, s_ij or -1)
    for j in range(n):
        for i in range(j):
            if res[i] != res[j] or i in anc[j]:
                continue
            x = var(f"x{i}_{j}", 0.0, 1.0, True)
            s = -1 if caps[int(res[i])] == 1 else var(f"s{i}_{j}", 0.0, 1.0, True)
            pairs.append((i, j, x, s))

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def con(coefs: dict[int, float], lo_v: float, hi_v: float) -> None:
        r = len(lo)
        for cidx, v in coefs.items():
            rows.append(r)
            cols.append(cidx)
            vals.append(v)
        lo.append(lo_v)
        hi.append(hi_v)

    def dur_terms(i: int, sign: float) -> tuple[dict[int, float], float]:
        """sign·p_i as (coefficients, constant)."""
        if y[i] >= 0:
            return {y[i]: sign * (dp[i] - d1[i])}, sign * d1[i]
        return {}, sign * d1[i]

    def add(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
        return out

    inf = np.inf
    for i in range(n):
        # t_i + p_i - T <= 0
        dc, k = dur_terms(i, 1.0)
        con(add({t[i]: 1.0, T: -1.0}, dc), -inf, -k)
        for p in problem.preds[i]:
            dc, k = dur_terms(p, 1.0)
            con(add({t[p]: 1.0, t[i]: -1.0}, dc), -inf, -k)
        if z[i]:
            con({zk: 1.0 for zk in z[i]}, 1.0, 1.0)
    M = 1.0  # all scaled times lie in [0, 1] because T <= H
    for i, j, x, s in pairs:
        if s >= 0:
            for zi, zj in zip(z[i], z[j]):
                con({s: 1.0, zi: -1.0, zj: -1.0}, -1.0, inf)
            if y[i] >= 0:
                con({s: 1.0, y[i]: -1.0}, 0.0, inf)
            if y[j] >= 0:
                con({s: 1.0, y[j]: -1.0}, 0.0, inf)
        # t_i + p_i - t_j + M x + M s <= 2M   (i before j when x=1, s=1)
        dc, k = dur_terms(i, 1.0)
        coef = add({t[i]: 1.0, t[j]: -1.0, x: M}, dc)
        if s >= 0:
            coef[s] = coef.get(s, 0.0) + M
            con(coef, -inf, 2 * M - k)
        else:
            con(coef, -inf, M - k)
        # t_j + p_j - t_i - M x + M s <= M   (j before i when x=0, s=1)
        dc, k = dur_terms(j, 1.0)
        coef = add({t[j]: 1.0, t[i]: -1.0, x: -M}, dc)
        if s >= 0:
            coef[s] = coef.get(s, 0.0) + M
            con(coef, -inf, M - k)
        else:
            con(coef, -inf, -k)

    nv = len(names)
    cvec = np.zeros(nv)
    cvec[T] = 1.0
    A = coo_matrix((vals, (rows, cols)), shape=(len(lo), nv)).tocsr()
    opts: dict[str, Any] = {"time_limit": float(time_limit_s), "mip_rel_gap": mip_rel_gap,
                            "disp": False, "presolve": True}
    result = milp(cvec, integrality=np.asarray(integ), bounds=Bounds(lb, ubv),
                  constraints=LinearConstraint(A, lo, hi), options=opts)
    bound = float(getattr(result, "mip_dual_bound", np.nan) or np.nan)
    lb_s = max(lower_bound_s(problem), bound * H if math.isfinite(bound) else 0.0)
    if result.x is None:
        # no incumbent within the time limit: the list schedule stands
        return Schedule(start_s=ub_sched.start_s, end_s=ub_sched.end_s, units=ub_sched.units,
                        makespan_s=ub_sched.makespan_s, method="ilp(no incumbent)",
                        lower_bound_s=lb_s, optimal=False,
                        info={"status": int(result.status), "message": str(result.message)})
    xs = result.x
    start = np.array([xs[t[i]] for i in range(n)]) * H
    par = np.array([y[i] >= 0 and xs[y[i]] > 0.5 for i in range(n)])
    dur = np.where(par, dp, d1) * H
    end = start + dur
    units: list[tuple[int, ...]] = []
    for i in range(n):
        c = caps[int(res[i])]
        if par[i]:
            units.append(tuple(range(c)))
        elif z[i]:
            units.append((int(np.argmax([xs[zk] for zk in z[i]])),))
        else:
            units.append((0,))
    # HiGHS honours constraints up to its feasibility tolerance (~1e-6 of H): decode the
    # solution as an order (precedence + the sequence on every unit) and recompute exact
    # semi-active start times, so the returned schedule is valid to rounding.
    start, end = _semi_active(problem, start, dur, units)
    makespan = float(end.max())
    if makespan > ub_sched.makespan_s:
        # the solver's slack must never make the "refinement" worse than the list schedule
        return Schedule(start_s=ub_sched.start_s, end_s=ub_sched.end_s, units=ub_sched.units,
                        makespan_s=ub_sched.makespan_s, method="ilp(list kept)",
                        lower_bound_s=min(lb_s, ub_sched.makespan_s), optimal=False,
                        info={"status": int(result.status)})
    return Schedule(start_s=start, end_s=end, units=tuple(units), makespan_s=makespan,
                    method="ilp", lower_bound_s=min(lb_s, makespan),
                    optimal=bool(result.status == 0),
                    info={"status": int(result.status), "variables": nv,
                          "constraints": len(lo), "parallel": par.tolist()})


def _semi_active(problem: SchedulingProblem, approx_start: np.ndarray, dur: np.ndarray,
                 units: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Earliest start times that keep the task order of ``approx_start`` on every unit
    and respect precedence (Kahn's algorithm on precedence + unit-sequence edges)."""
    n = problem.n
    key = sorted(range(n), key=lambda i: (round(float(approx_start[i]), 15), i))
    rank = {i: r for r, i in enumerate(key)}
    preds: list[set[int]] = [set(ps) for ps in problem.preds]
    last: dict[tuple[int, int], int] = {}
    for i in key:
        for u in units[i]:
            k = (int(problem.resource[i]), u)
            if k in last:
                preds[i].add(last[k])
            last[k] = i
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for i in range(n):
        for p in preds[i]:
            succ[p].append(i)
            indeg[i] += 1
    import heapq

    heap = [(rank[i], i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    start = np.zeros(n)
    end = np.zeros(n)
    seen = 0
    while heap:
        _, i = heapq.heappop(heap)
        seen += 1
        start[i] = max((end[p] for p in preds[i]), default=0.0)
        end[i] = start[i] + dur[i]
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (rank[j], j))
    if seen < n:  # inconsistent order (degenerate zero-length ties): keep the solver's times
        return np.asarray(approx_start, float), np.asarray(approx_start, float) + dur
    return start, end


def validate_schedule(problem: SchedulingProblem, sched: Schedule, rtol: float = 1e-6) -> None:
    """Raise :class:`ConfigError` if ``sched`` breaks a precedence or overlaps two
    tasks on one unit (tolerance ``rtol`` × makespan)."""
    tol = rtol * max(sched.makespan_s, 1e-300)
    for i, ps in enumerate(problem.preds):
        for p in ps:
            if sched.start_s[i] < sched.end_s[p] - tol:
                raise ConfigError(f"schedule: task {problem.names[i]!r} starts before its "
                                  f"predecessor {problem.names[p]!r} ends")
    for r, c in enumerate(problem.capacity):
        for u in range(c):
            ivs = sorted((sched.start_s[i], sched.end_s[i], i) for i in range(problem.n)
                         if problem.resource[i] == r and u in sched.units[i])
            for (s0, e0, i0), (s1, _e1, i1) in itertools.pairwise(ivs):
                if s1 < e0 - tol:
                    raise ConfigError(f"schedule: tasks {problem.names[i0]!r} and "
                                      f"{problem.names[i1]!r} overlap on {r}:{u}")


# --------------------------------------------------------------------------- adapters


def problem_from_costs(names: Sequence[str], preds: Sequence[Sequence[int]],
                       latency_s: np.ndarray, unit: Sequence[str], capacity: dict[str, int],
                       parallel_latency_s: np.ndarray | None = None) -> SchedulingProblem:
    """Build a :class:`SchedulingProblem` from one design's per-operator latencies and
    unit names (``"tc"``, ``"vc"``, ``"link"``, as in ``cost_models.evaluate.op_costs``)
    and the units of each type ``capacity`` (e.g. ``{"tc": 4, "vc": 2, "link": 1}``)."""
    types = sorted(set(unit), key=lambda u: (RESOURCE_NAMES.index(u)
                                             if u in RESOURCE_NAMES else 99, u))
    code = {u: i for i, u in enumerate(types)}
    missing = [u for u in types if u not in capacity]
    if missing:
        raise ConfigError(f"problem_from_costs: no capacity for unit {missing[0]!r}; "
                          f"given {sorted(capacity)}")
    return SchedulingProblem(
        names=tuple(names), duration_s=np.asarray(latency_s, float),
        resource=np.array([code[u] for u in unit], dtype=np.int64),
        capacity=tuple(max(1, int(capacity[u])) for u in types),
        preds=tuple(tuple(p) for p in preds),
        parallel_duration_s=None if parallel_latency_s is None
        else np.asarray(parallel_latency_s, float))
