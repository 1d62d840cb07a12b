"""The fastest plan that fits, per design, without costing every plan: branch and bound
over a :class:`search.trainstep.WorkloadModel`'s plans.

A transformer on 64–2,048 devices has thousands of valid plans (Mixtral 8x7B on 64: 7,202),
and the plan-independent work of costing one — its stage layout, memory, data-parallel
traffic and pipeline recipe — costs about a millisecond each, while the segment graphs
all plans of one shard shape share are costed once. So the plans are ranked by a lower
bound that needs only the shared segment costs, and costed exactly in that order until
no remaining plan's bound beats the best time found for any design:

- **memory**: :func:`search.stagememory.memory_floor_bytes` (the model states alone) above
  the batch's largest HBM: never fits, never built;
- **time**: a device of pipeline stage ``k`` runs ``m`` micro-batches of its stages'
  forward and backward work ``c_k``, so the step is at least the pipeline model's
  (:func:`cost_models.pipeline.step_time_batch`) ``m·max c + (Σc − max c)/v``, which is
  smallest when every stage holds the average: with ``W = Σc`` the whole model's work per
  micro-batch on one shard — ``pre + dense layers + layers·block + post``, recomputation
  included, each segment costed once — the bound is ``W·(m/p + (1 − 1/p)/v)``. Gradient
  reduction, ZeRO gathers, point-to-point transfers and the optimizer only add to it.

Plans whose bound exceeds a design's best fitting time (with a relative margin of 10⁻⁹
for summation order) cannot be that design's choice, nor tie with it; every other plan is
costed exactly, so the result — the plan, its time and its memory, and on ties the first
plan in enumeration order — is the exhaustive one's (:func:`exhaustive_best_plan_batch`,
the slow reference; tests compare the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dse.types import ParallelPlan, SystemConfig

__all__ = ["best_plan_batch", "cost_key", "exhaustive_best_plan_batch", "fastest_plans", "lower_bounds"]

CHUNK = 32
"""Plans costed together per round (each round: every design's most promising plan, then
the globally most promising up to this many)."""

MARGIN = 1e-9
"""Relative slack of the bound test: the bound and the exact step sum the same terms in
different orders."""


def cost_key(plan: ParallelPlan) -> tuple[tuple[str, ...], str]:
    """What a plan changes in the costs of a shared segment graph besides its shape: the
    recompute modules (what selective recomputation re-runs) and the MoE dispatcher (the
    all-to-all's time)."""
    return plan.recompute_modules, plan.dispatcher


def _metrics(model: Any, chosen: list[ParallelPlan | None], best_t: np.ndarray,
             evaluated: int, enumerated: int) -> dict[str, np.ndarray]:
    n = len(chosen)
    mem = np.array([model.memory_bytes(p) if p is not None else np.inf for p in chosen])
    gb = np.array([p.global_batch if p is not None else 0 for p in chosen], dtype=float)
    return {"step_time_s": best_t,
            "samples_per_s": np.where(np.isfinite(best_t), gb / best_t, 0.0),
            "memory_per_device_bytes": mem,
            "fits_memory": np.isfinite(best_t),
            "plans_evaluated": np.full(n, evaluated),
            "plans_enumerated": np.full(n, enumerated)}


def _exhaustive_times(model: Any, designs: Any, system: SystemConfig, tech: Any,
                      plans: Sequence[ParallelPlan]
                      ) -> tuple[list[ParallelPlan], np.ndarray, int]:
    """(plans within the batch's largest HBM, their (C, D) step times — ``inf`` where a
    plan does not fit — and how many were costed: all of them)."""
    hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
    keep = [p for p in plans if model.memory_bytes(p) <= float(hbm.max())]
    times = np.full((len(keep), len(designs)), np.inf)
    if keep:
        mem = np.array([model.memory_bytes(p) for p in keep])
        times = np.where(mem[:, None] <= hbm[None, :],
                         model.step_times(designs, system, tech, keep), np.inf)
    return keep, times, len(keep)


def _choose(model: Any, cand: list[ParallelPlan], times: np.ndarray, costed: int,
            enumerated: int) -> tuple[list[ParallelPlan | None], dict[str, np.ndarray]]:
    """Every design's fastest fitting plan among ``cand`` (first minimum: enumeration
    order on ties) and its metrics."""
    n = times.shape[1]
    best_t = np.full(n, np.inf)
    chosen: list[ParallelPlan | None] = [None] * n
    if cand:
        best_i = np.argmin(times, axis=0)
        best_t = times[best_i, np.arange(n)]
        chosen = [cand[int(i)] if np.isfinite(t) else None for i, t in zip(best_i, best_t)]
    return chosen, _metrics(model, chosen, best_t, costed, enumerated)


def exhaustive_best_plan_batch(model: Any, designs: Any, system: SystemConfig, tech: Any,
                               plans: Sequence[ParallelPlan]
                               ) -> tuple[list[ParallelPlan | None], dict[str, np.ndarray]]:
    """Every plan within the batch's largest HBM costed on every design (the reference)."""
    return _choose(model, *_exhaustive_times(model, designs, system, tech, plans), len(plans))


def _whole_parts(model: Any, plan: ParallelPlan) -> list[tuple[Any, float, bool]]:
    """(graph, multiplicity, is a layer) of the whole model on ``plan``'s shard: what its
    stages hold together."""
    from workloads.parallel import dense_layers_in

    spec = model.spec
    layers = int(spec.layers)
    parts = model.segments(plan).parts(first=True, last=True, layers=layers,
                                       dense_layers=dense_layers_in(spec, 0, layers))
    return [(g, mult, name in ("block", "dense")) for name, g, mult in parts]


def lower_bounds(model: Any, designs: Any, system: SystemConfig, tech: Any,
                 plans: Sequence[ParallelPlan], costs: dict[Any, Any]) -> np.ndarray:
    """(P, D) lower bounds of the step time of transformer ``plans`` (module docstring);
    ``costs`` caches the segment costs by (graph id, cost key) for the exact step."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault((model.shard_key(p), cost_key(p)), []).append(i)
    parts = {key: _whole_parts(model, plans[idx[0]]) for key, idx in groups.items()}
    model.cost_segments(costs, designs, system, tech,
                        [(g, plans[idx[0]]) for key, idx in groups.items()
                         for g, _, _ in parts[key]])
    pp = np.array([p.pp for p in plans], dtype=np.float64)
    v = np.array([p.interleave if p.schedule == "interleaved" else 1 for p in plans],
                 dtype=np.float64)
    m = np.array([p.micro_batches for p in plans], dtype=np.float64)
    factor = m / pp + (1.0 - 1.0 / pp) / v
    full = np.array([p.recompute == "full" for p in plans])
    sel = np.array([p.recompute == "selective" for p in plans])
    out = np.empty((len(plans), len(designs)))
    for key, idx in groups.items():
        fb = np.zeros(len(designs))
        f_layer = np.zeros(len(designs))
        a_layer = np.zeros(len(designs))
        for g, mult, layer in parts[key]:
            c = costs[id(g), key[1]]
            fb += mult * (np.asarray(c.fwd_s) + np.asarray(c.bwd_s))
            if layer:
                f_layer += mult * np.asarray(c.fwd_s)
                a_layer += mult * np.asarray(c.attn_core_s)
        ix = np.asarray(idx)
        w = (fb[None, :] + np.where(full[ix, None], f_layer[None, :], 0.0)
             + np.where(sel[ix, None], a_layer[None, :], 0.0))
        out[ix] = w * factor[ix, None]
    return out


def _bound_search(model: Any, designs: Any, system: SystemConfig, tech: Any,
                  plans: Sequence[ParallelPlan], k: int = 1
                  ) -> tuple[list[ParallelPlan], np.ndarray, int]:
    """(candidate plans in enumeration order, their (C, D) step times — ``inf`` where a
    plan was not costed or does not fit — and the number costed): every plan that can be
    among a design's ``k`` fastest fitting ones is costed (module docstring)."""
    from search.stagememory import memory_floor_bytes

    n = len(designs)
    hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
    cap = float(hbm.max())
    floors = model.floors
    for p in plans:
        if p not in floors:
            floors[p] = memory_floor_bytes(model.spec, p)
    cand = [p for p in plans if floors[p] <= cap]
    times = np.full((len(cand), n), np.inf)
    if not cand:
        return cand, times, 0
    costs: dict[Any, Any] = {}
    lb = lower_bounds(model, designs, system, tech, cand, costs)
    done = np.zeros(len(cand), dtype=bool)
    ub = np.full(n, np.inf)
    costed = 0
    while True:
        live = ~done[:, None] & (lb <= ub[None, :] * (1.0 + MARGIN))
        if not live.any():
            break
        masked = np.where(live, lb, np.inf)
        pick = set(np.argmin(masked, axis=0)[live.any(axis=0)].tolist())
        if len(pick) < CHUNK:
            low = masked.min(axis=1)
            for j in np.argsort(low, kind="stable").tolist():
                if len(pick) >= CHUNK or not np.isfinite(low[j]):
                    break
                pick.add(j)
        chunk = sorted(pick)
        done[chunk] = True
        # costed only where it fits a design it can still win (memory is built once a plan)
        fit = [j for j in chunk if (live[j] & (model.memory_bytes(cand[j]) <= hbm)).any()]
        if not fit:
            continue
        steps = model.step_times(designs, system, tech, [cand[j] for j in fit], costs=costs)
        mem = np.array([model.memory_bytes(cand[j]) for j in fit])
        times[fit] = np.where(mem[:, None] <= hbm[None, :], steps, np.inf)
        costed += len(fit)
        ub = (np.partition(times, k - 1, axis=0)[k - 1] if len(cand) >= k
              else np.full(n, np.inf))
    return cand, times, costed


def _plan_times(model: Any, designs: Any, system: SystemConfig, tech: Any,
                plans: Sequence[ParallelPlan], k: int = 1
                ) -> tuple[list[ParallelPlan], np.ndarray, int]:
    """:func:`_bound_search` for transformers with more than :data:`CHUNK` plans, else
    :func:`_exhaustive_times` (few plans: nothing to gain from a bound)."""
    if not model.transformer or len(plans) <= CHUNK:
        return _exhaustive_times(model, designs, system, tech, plans)
    return _bound_search(model, designs, system, tech, plans, k)


def best_plan_batch(model: Any, designs: Any, system: SystemConfig, tech: Any,
                    plans: Sequence[ParallelPlan]
                    ) -> tuple[list[ParallelPlan | None], dict[str, np.ndarray]]:
    """The fastest plan that fits memory for every design (module docstring): the
    exhaustive result, costing only the plans whose bound leaves them a chance."""
    return _choose(model, *_plan_times(model, designs, system, tech, plans), len(plans))


def fastest_plans(model: Any, designs: Any, system: SystemConfig, tech: Any,
                  plans: Sequence[ParallelPlan], k: int) -> list[ParallelPlan]:
    """The ``k`` fastest plans that fit the one design of ``designs``, fastest first (ties:
    enumeration order), as costing every plan would rank them."""
    cand, times, _ = _plan_times(model, designs, system, tech, plans, k)
    t = times[:, 0]
    order = np.argsort(t, kind="stable")[:k]
    return [cand[int(j)] for j in order if np.isfinite(t[j])]
