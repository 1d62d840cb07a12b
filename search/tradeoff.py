"""Links against tensor cores at the same budget: the trade-off view of a search's best
design (issue 13: what the all-to-all of mixture-of-experts and DLRM training asks of the
chip's links, and what they cost in compute).

For every link count of the design space and the link bandwidths ``½×, 1×, 2×`` the
template's, the best design gets those links and then **as many tensor cores as the area
(and power) budget leaves** — nothing else changes (arrays, dataflow, vector cores,
buffers, HBM). A link costs die area by its PHY (``link_phy_area_mm2_per_byte_per_s``,
docs/sources.md) and power by its energy per byte, so every row spends the same budget
differently. Each row is evaluated like the best design, with its best plan per workload
among the mined design's :data:`TOP_PLANS` fastest: samples per second and the
all-to-all share of the step (expert-parallel dispatch and combine, the DLRM embedding
exchange).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dse.types import HardwareConfig

__all__ = ["BW_SCALES", "TOP_PLANS", "link_tradeoff"]

BW_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)
"""Link bandwidths tried, as multiples of the template's (45 GB/s per link for TPU v4)."""


def _fill_tensor_cores(hw: HardwareConfig, problem: Any, max_cores: int = 4096
                       ) -> HardwareConfig | None:
    """``hw`` with the most tensor cores that fit the problem's area and power budget
    (None if not even one does)."""
    from cost_models.designs import DesignBatch
    from search.baselines import _area_tdp, largest_fitting

    def fits(n: int) -> bool:
        a, p = _area_tdp(DesignBatch.from_configs([dataclasses.replace(hw, tensor_cores=n)]),
                         problem.tech)
        return bool(a[0] <= problem.area_budget_mm2
                    and (problem.power_budget_w is None or p[0] <= problem.power_budget_w))

    n = largest_fitting(fits, max_cores)
    return dataclasses.replace(hw, tensor_cores=n) if n else None


TOP_PLANS = 16
"""Plans each cell chooses from: the mined design's fastest that fit (its links changed,
the best plan is almost always among them; a full plan search per cell would cost the
whole plan space again for every new link configuration)."""


def _candidate_plans(problem: Any, i: int, best: HardwareConfig) -> list[Any] | None:
    """The mined design's :data:`TOP_PLANS` fastest plans of workload ``i`` that fit
    (None: the problem does not expose its plan space)."""
    from cost_models.designs import DesignBatch
    from search.planbound import fastest_plans

    models, plans = getattr(problem, "models", None), getattr(problem, "plans", None)
    if models is None or plans is None:
        return None
    return fastest_plans(models[i], DesignBatch.from_configs([best]), problem.system_of(best, i),
                         problem.tech, list(plans[i]), TOP_PLANS)


def _evaluate(problem: Any, hw: HardwareConfig, cands: list[list[Any] | None]
              ) -> list[tuple[Any, Any]]:
    """(plan, Evaluation) of every workload on ``hw``: the best of its candidate plans,
    or the problem's own full plan search when it has no candidates."""
    from cost_models.designs import DesignBatch
    from search.trainstep import evaluate_training

    if any(c is None for c in cands):
        return list(problem.evaluate_full(hw))
    out = []
    for i, (t, plans) in enumerate(zip(problem.targets, cands)):
        system = problem.system_of(hw, i)
        chosen = [None]
        if plans:
            chosen, _ = problem.models[i].best_plan_batch(DesignBatch.from_configs([hw]),
                                                          system, problem.tech, plans)
        plan = chosen[0]
        out.append((plan, None if plan is None else evaluate_training(
            t.spec, hw, system, plan, problem.tech, seq=t.seq)))
    return out


def link_tradeoff(problem: Any, best: HardwareConfig) -> list[dict[str, Any]]:
    """One row per (link count, link bandwidth): the best design refilled with tensor
    cores to the budget, and how it trains (module docstring). Empty when the design
    space does not search links (one device)."""
    from cost_models.area import area_mm2
    from cost_models.designs import DesignBatch
    from cost_models.power import tdp_w
    from search.evaluator import geomean, objective_value

    counts = next((p.values for p in problem.space.params if p.name == "link_count"), ())
    if not counts:
        return []
    base_bw = float(problem.space.template.link_bw_bytes_per_s)
    cands = [_candidate_plans(problem, i, best) for i in range(len(problem.targets))]
    rows = []
    for n in counts:
        for s in BW_SCALES:
            hw = _fill_tensor_cores(dataclasses.replace(
                best, link_count=int(n), link_bw_bytes_per_s=base_bw * s,
                name=f"{best.name}-l{n}x{s:g}"), problem)
            row: dict[str, Any] = {"link_count": int(n), "link_bw_bytes_per_s": base_bw * s,
                                   "is_best": int(n) == best.link_count
                                   and base_bw * s == best.link_bw_bytes_per_s}
            if hw is None:
                rows.append(dict(row, feasible=False))
                continue
            d = DesignBatch.from_configs([hw])
            area = area_mm2(d, problem.tech)
            samples, a2a, steps, plans = [], 0.0, 0.0, []
            fits = True
            for plan, ev in _evaluate(problem, hw, cands):
                if ev is None or not ev.fits_memory:
                    fits = False
                    samples.append(0.0)
                    continue
                comm = (ev.breakdown or {}).get("comm_s") or {}
                a2a += float(comm.get("ep_s", 0.0) or 0.0) + float(
                    comm.get("embedding_s", 0.0) or 0.0)
                steps += ev.step_time_s
                samples.append(ev.samples_per_s)
                plans.append({k: getattr(plan, k) for k in ("tp", "pp", "dp", "ep")})
            sp = np.array(samples, dtype=np.float64)[:, None]
            tdp = float(tdp_w(d, problem.tech)["total"][0])
            rows.append(dict(
                row, feasible=fits, tensor_cores=hw.tensor_cores,
                area_mm2=float(area["total"][0]), links_area_mm2=float(area["links"][0]),
                tdp_w=tdp, samples_per_s=float(geomean(sp)[0]),
                objective_value=float(objective_value(problem.objective, sp,
                                                      np.array([tdp]))[0]),
                all_to_all_share=a2a / steps if steps > 0 else 0.0, plans=plans))
    return rows
