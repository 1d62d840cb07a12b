"""The exact reference of the in-loop schedule: an ILP of the malleable scheduling problem
that :mod:`cost_models.schedule` solves greedily, on small DAGs (one transformer block).

Problem (the same as the list scheduler's): a tensor operator ``i`` runs on one block
``(a, b)`` of the chip's tensor cores — level ``a`` (the whole chip, halves, quarters,
eighths: ``2^a`` blocks of ``floor(P/2^a)`` cores), block ``b`` covering eighths
``b·8/2^a … (b+1)·8/2^a − 1`` — with duration ``d[i, a]`` (its latency on that block,
with that share of SRAM and bandwidth); vector operators use the vector unit, collectives
the links, each one at a time. Precedence edges must hold.

Formulation (Phaze's disjunctive ILP, ``docs/sources.md`` M4, extended to blocks),
times scaled by the list schedule's makespan ``H`` (also the big-M):

* binaries ``x[i,a,b]`` (tensor ops: ``Σ x = 1`` over the allowed levels), start ``t_i``,
  makespan ``T``; duration ``p_i = Σ d[i,a]·x[i,a,b]``;
* ``u[i,k] = Σ_{blocks covering eighth k} x[i,a,b]`` (linear): op ``i`` uses eighth ``k``;
* for every pair of same-resource operators the DAG does not order: ``s_ij`` (they share
  a unit: tensor ops when some eighth has ``u[i,k] + u[j,k] = 2``; vector and link ops
  always) and the order ``o_ij``; ``t_i + p_i <= t_j + H(1 − o_ij) + H(1 − s_ij)`` and the
  converse;
* ``T >= t_i + p_i``; minimize ``T``.

The list schedule is a feasible solution, so the ILP's makespan is never above it; the
gap ``(list − ILP) / list`` is what ``benchmarks/bench_schedule.py`` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MalleableILPResult", "block_refinement", "malleable_ilp"]


@dataclass(frozen=True)
class MalleableILPResult:
    makespan_s: float
    list_makespan_s: float
    lower_bound_s: float
    optimal: bool
    status: int
    variables: int
    constraints: int
    level: list[int]

    @property
    def gap(self) -> float:
        """(list − ILP) / list: how much the list schedule loses against the ILP's best."""
        if self.list_makespan_s <= 0:
            return 0.0
        return max(0.0, (self.list_makespan_s - self.makespan_s) / self.list_makespan_s)


def malleable_ilp(topo: Any, dur_levels: np.ndarray, level_ok: Any, *,
                  time_limit_s: float = 10.0, mip_rel_gap: float = 1e-4
                  ) -> MalleableILPResult:
    """Minimum-makespan malleable schedule of ``topo`` (a
    :class:`cost_models.schedule.Topology`) with durations ``dur_levels`` (O, A) (module
    docstring). ``level_ok``: the levels the chip has. HiGHS via
    :func:`scipy.optimize.milp`, with the list schedule as the upper bound."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    from cost_models.schedule import EIGHTHS, LEVELS, TC, schedule_scalar

    dur = np.asarray(dur_levels, dtype=np.float64)
    o = topo.n
    lok = [bool(x) for x in level_ok]
    ls = schedule_scalar(topo, dur, level_ok=lok)
    H = float(ls.makespan_s)
    if o == 0 or H <= 0:
        return MalleableILPResult(makespan_s=H, list_makespan_s=H, lower_bound_s=H,
                                  optimal=True, status=0, variables=0, constraints=0,
                                  level=list(ls.level))
    d = dur / H
    units = np.asarray(topo.units)
    lb: list[float] = []
    ub: list[float] = []
    integ: list[int] = []

    def var(lo: float, hi: float, is_int: bool) -> int:
        lb.append(lo)
        ub.append(hi)
        integ.append(1 if is_int else 0)
        return len(lb) - 1

    T = var(0.0, 1.0, False)
    t = [var(0.0, 1.0, False) for _ in range(o)]
    blocks = [(a, b) for a in range(LEVELS) if lok[a] for b in range(2**a)]
    x: dict[int, list[tuple[int, int, int]]] = {}
    for i in range(o):
        if units[i] == TC:
            x[i] = [(a, b, var(0.0, 1.0, True)) for a, b in blocks]
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def con(coefs: dict[int, float], lo_v: float, hi_v: float) -> None:
        r = len(lo)
        for c, v in coefs.items():
            rows.append(r)
            cols.append(c)
            vals.append(v)
        lo.append(lo_v)
        hi.append(hi_v)

    def dur_terms(i: int, sign: float) -> tuple[dict[int, float], float]:
        if i in x:
            return {v: sign * d[i, a] for a, _, v in x[i]}, 0.0
        return {}, sign * d[i, 0]

    def add(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
        return out

    inf = np.inf
    for i in range(o):
        dc, k = dur_terms(i, 1.0)
        con(add({t[i]: 1.0, T: -1.0}, dc), -inf, -k)
        for p in topo.preds[i]:
            dc, k = dur_terms(p, 1.0)
            con(add({t[p]: 1.0, t[i]: -1.0}, dc), -inf, -k)
        if i in x:
            con({v: 1.0 for _, _, v in x[i]}, 1.0, 1.0)
    # unit usage of tensor ops: u[i][k] = sum of x covering eighth k (kept as expressions)
    def usage(i: int, k: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for a, b, v in x[i]:
            w = EIGHTHS >> a
            if b * w <= k < (b + 1) * w:
                out[v] = 1.0
        return out

    anc: list[set[int]] = []
    for ps in topo.preds:
        s: set[int] = set()
        for p in ps:
            s.add(p)
            s |= anc[p]
        anc.append(s)
    M = 1.0
    for j in range(o):
        for i in range(j):
            if units[i] != units[j] or i in anc[j]:
                continue
            order = var(0.0, 1.0, True)
            share = -1
            if units[i] == TC:
                share = var(0.0, 1.0, True)
                for k in range(EIGHTHS):
                    ui, uj = usage(i, k), usage(j, k)
                    if ui and uj:
                        con(add({share: 1.0}, {v: -c for v, c in add(ui, uj).items()}),
                            -1.0, inf)
            # i before j when order = 1 (and they share), else j before i
            dc, k = dur_terms(i, 1.0)
            coef = add({t[i]: 1.0, t[j]: -1.0, order: M}, dc)
            if share >= 0:
                coef[share] = coef.get(share, 0.0) + M
                con(coef, -inf, 2 * M - k)
            else:
                con(coef, -inf, M - k)
            dc, k = dur_terms(j, 1.0)
            coef = add({t[j]: 1.0, t[i]: -1.0, order: -M}, dc)
            if share >= 0:
                coef[share] = coef.get(share, 0.0) + M
                con(coef, -inf, M - k)
            else:
                con(coef, -inf, -k)
    nv = len(lb)
    c = np.zeros(nv)
    c[T] = 1.0
    A = coo_matrix((vals, (rows, cols)), shape=(len(lo), nv)).tocsr()
    res = milp(c, integrality=np.asarray(integ), bounds=Bounds(lb, ub),
               constraints=LinearConstraint(A, lo, hi),
               options={"time_limit": float(time_limit_s), "mip_rel_gap": mip_rel_gap,
                        "disp": False, "presolve": True})
    bound = float(getattr(res, "mip_dual_bound", np.nan) or np.nan)
    lb_s = bound * H if math.isfinite(bound) else 0.0
    if res.x is None:
        return MalleableILPResult(makespan_s=H, list_makespan_s=H, lower_bound_s=lb_s,
                                  optimal=False, status=int(res.status), variables=nv,
                                  constraints=len(lo), level=list(ls.level))
    ms = min(float(res.x[T]) * H, H)
    level = [0] * o
    for i, xs in x.items():
        a = max(xs, key=lambda z: res.x[z[2]])[0]
        level[i] = int(a)
    return MalleableILPResult(makespan_s=ms, list_makespan_s=H,
                              lower_bound_s=min(lb_s, ms), optimal=bool(res.status == 0),
                              status=int(res.status), variables=nv, constraints=len(lo),
                              level=level)


def block_refinement(graph: Any, hw: Any, tech: Any, comm_time_s: Any = None, *,
                     block: str = "layer", max_units: int = 4,
                     time_limit_s: float = 2.0) -> dict[str, Any] | None:
    """List schedule vs ILP for one repetition of a repeated block of ``graph`` on ``hw``:
    the in-loop malleable list schedule (:mod:`cost_models.schedule`) and the exact
    malleable ILP of the same problem (:func:`search.malleable_ilp.malleable_ilp`).
    Returns None when the graph has no such block. ``max_units`` is kept for
    compatibility (the ILP uses the chip's own block levels).

    Keys: ``ops``, ``count`` (repetitions), ``list_s``, ``ilp_s``, ``lower_bound_s``,
    ``gap`` = (list − ILP)/list, ``optimal``, ``parallel_ops`` (tensor operators the ILP
    runs on less than the whole chip).
    """
    from cost_models.designs import DesignBatch
    from cost_models.evaluate import device_step
    from cost_models.opcost import graph_arrays
    from dse.types import Graph

    del max_units
    keep = [i for i, op in enumerate(graph.ops) if op.block == block]
    if not keep:
        return None
    names = {graph.ops[i].name for i in keep}
    sub = Graph(name=f"{graph.name}.{block}", ops=tuple(graph.ops[i] for i in keep),
                edges=tuple((a, b) for a, b in graph.edges if a in names and b in names),
                meta=graph.meta)
    ct = None
    if comm_time_s is not None:
        full = np.asarray(comm_time_s, dtype=np.float64)
        ct = full[keep] if full.shape == (len(graph.ops),) else None
    one = sub.with_ops(tuple(dataclasses_replace_count(op) for op in sub.ops))
    st = device_step(one, DesignBatch.from_configs([hw]), tech, comm_time_s=ct)
    arrs = graph_arrays(one)
    dur = np.asarray(st.costs.latency_levels_s[0])
    r = malleable_ilp(arrs.topology, dur, st.level_ok[0], time_limit_s=time_limit_s)
    count = int(graph.ops[keep[0]].count)
    return {"ops": len(keep), "count": count, "list_s": float(r.list_makespan_s),
            "ilp_s": float(r.makespan_s), "lower_bound_s": float(r.lower_bound_s),
            "gap": float(r.gap), "optimal": bool(r.optimal),
            "parallel_ops": int(sum(1 for i, a in enumerate(r.level)
                                    if arrs.unit_code[i] == 0 and a > 0))}


def dataclasses_replace_count(op: Any) -> Any:
    """``op`` executed once (one repetition of its block)."""
    import dataclasses

    return dataclasses.replace(op, count=1) if op.count != 1 else op
