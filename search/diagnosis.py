"""What bounds a design: its critical path under its best parallel plan, per resource.

For every workload the design is evaluated under its best plan
(:class:`search.trainstep.WorkloadModel`), and the slowest pipeline device's work is
followed along the critical chain of each of its schedules — forward, backward and
optimizer of every segment (:func:`cost_models.evaluate.schedule_chain`: each operator
waited for its predecessor or for the block of cores / unit it needed). Every operator on
a chain adds its duration, × the segment's multiplicity (``L`` layers) × micro-batches,
to the resource that bounds it on the block it ran on (``tensor``, ``vector``, ``sram``,
``hbm``, ``link``; :data:`cost_models.evaluate.BOUNDS`). Recomputation adds the forward
chains again (``full``) or the attention core (``selective``). The pipeline adds its
exposed point-to-point and data-parallel communication to ``link``. A design that fits no
plan in its HBM is bound by ``memory``.

:func:`diagnose` returns each resource's share of the critical time, averaged over
workloads (each counts equally): the critical-path heuristic grows what holds most of it
and shrinks what holds none (:mod:`search.heuristic`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RESOURCES", "critical_seconds", "critical_seconds_many", "diagnose",
           "diagnose_many", "stage_seconds"]

RESOURCES = ("tensor", "vector", "sram", "hbm", "link", "memory")


def _chain_seconds(graph: Any, step: Any, scale: float, acc: dict[str, float],
                   only: set[int] | None = None, d: int = 0) -> None:
    from cost_models.evaluate import BOUNDS, schedule_chain

    if step is None or graph is None or not graph.ops:
        return
    oc = step.costs
    lv = np.asarray(step.level[d], dtype=np.int64)
    lat = np.take_along_axis(np.asarray(oc.latency_levels_s[d]), lv[:, None], axis=1)[:, 0]
    cnt = np.asarray(oc.count, dtype=np.float64)
    for j in schedule_chain(graph, step, d):
        if only is not None and j not in only:
            continue
        b = BOUNDS[int(oc.bound_levels[d, j, lv[j]])]
        acc[b] = acc.get(b, 0.0) + float(lat[j] * cnt[j]) * scale


def _parts_seconds(parts: Any, plan: Any, acc: dict[str, float], d: int = 0) -> None:
    from cost_models.training import selective_indices

    m = plan.micro_batches
    zero = plan.grad_group if plan.zero_stage >= 1 else 1
    for part in parts:
        c = part.costs
        ph = c.phases
        mult = float(part.multiplicity)
        _chain_seconds(ph.fwd, c.fwd_step, mult * m, acc, d=d)
        _chain_seconds(ph.bwd, c.bwd_step, mult * m, acc, d=d)
        _chain_seconds(ph.opt, c.opt_step, mult / zero, acc, d=d)
        if part.layer and plan.recompute == "full":
            _chain_seconds(ph.fwd, c.fwd_step, mult * m, acc, d=d)
        elif part.layer and plan.recompute == "selective":
            sel = selective_indices(ph, plan.recompute_modules)
            if sel:
                _chain_seconds(ph.fwd, c.fwd_step, mult * m, acc, only=set(sel), d=d)


def critical_seconds(model: Any, hw: Any, system: Any, tech: Any, plan: Any
                     ) -> dict[str, float]:
    """Critical seconds per resource of one workload (``model``, a
    :class:`search.trainstep.WorkloadModel`) on ``hw`` under ``plan`` per training step
    (module docstring)."""
    return critical_seconds_many(model, [hw], system, tech, plan)[0]


def critical_seconds_many(model: Any, hws: Any, system: Any, tech: Any, plan: Any
                          ) -> list[dict[str, float]]:
    """:func:`critical_seconds` of several designs under one plan and system, costed in
    one vectorized evaluation."""
    from cost_models.designs import DesignBatch

    r = model.evaluate(DesignBatch.from_configs(list(hws)), system, tech, [plan],
                       detail=True, keep_steps=True)[0]
    p = plan.pp
    stages = r["_parts"]
    out = []
    for d in range(len(hws)):
        slow = int(r["_slowest"][d])
        acc: dict[str, float] = {}
        _parts_seconds([part for k in range(slow, len(stages), p) for part in stages[k]],
                       plan, acc, d)
        comm = (float(r["p2p_s"][d]) + float(r["dp_exposed_s"][d])
                + float(r["zero_exposed_s"][d]))
        if comm > 0:
            acc["link"] = acc.get("link", 0.0) + comm
        out.append(acc)
    return out


def stage_seconds(model: Any, hw: Any, system: Any, tech: Any, plan: Any, stage: int
                  ) -> dict[str, float]:
    """Critical seconds per resource of one virtual pipeline stage's work per step."""
    from cost_models.designs import DesignBatch

    r = model.evaluate(DesignBatch.from_configs([hw]), system, tech, [plan], detail=True,
                       keep_steps=True)[0]
    acc: dict[str, float] = {}
    _parts_seconds(r["_parts"][stage], plan, acc)
    return acc


def diagnose_many(problem: Any, hws: Any, plans_of: Any) -> list[dict[str, float]]:
    """:func:`diagnose` of several designs (``plans_of[i]``: design ``i``'s best plan per
    workload): designs that share a workload's plan and system are costed together."""
    n = len(hws)
    sums: list[dict[str, float]] = [{} for _ in range(n)]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, hw in enumerate(hws):
        for w, plan in enumerate(plans_of[i]):
            if plan is None:
                sums[i]["memory"] = sums[i].get("memory", 0.0) + 1.0
                continue
            groups.setdefault((w, plan, problem.system_of(hw, w)), []).append(i)
    for (w, plan, system), idx in groups.items():
        secs = critical_seconds_many(problem.models[w], [hws[i] for i in idx], system,
                                     problem.tech, plan)
        for i, sec in zip(idx, secs):
            tot = sum(sec.values()) or 1.0
            for k, v in sec.items():
                sums[i][k] = sums[i].get(k, 0.0) + v / tot
    out = []
    for i in range(n):
        m = len(plans_of[i])
        out.append({k: v / m for k, v in sorted(sums[i].items(), key=lambda x: -x[1])}
                   if m else {})
    return out


def diagnose(problem: Any, hw: Any, plans: Any = None) -> dict[str, float]:
    """Share of the critical time per resource of ``hw`` on ``problem``'s workloads (a
    :class:`search.objective.TrainingProblem`), averaged over workloads; ``memory`` counts
    each workload no plan fits (module docstring). ``plans``: the design's best plan per
    workload when known (else :meth:`~search.objective.TrainingProblem.plans_of`)."""
    acc: dict[str, float] = {}
    plans = problem.plans_of(hw) if plans is None else list(plans)
    n = len(plans)
    for w, plan in enumerate(plans):
        if plan is None:
            acc["memory"] = acc.get("memory", 0.0) + 1.0
            continue
        sec = critical_seconds(problem.models[w], hw, problem.system_of(hw, w), problem.tech,
                               plan)
        tot = sum(sec.values()) or 1.0
        for k, v in sec.items():
            acc[k] = acc.get(k, 0.0) + v / tot
    return {k: v / n for k, v in sorted(acc.items(), key=lambda x: -x[1])} if n else {}
