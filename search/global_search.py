"""Global search: from the per-stage top-k sets to the one chip every device uses
(``docs/sources.md`` M4, steps 3–4), and the common design of several workloads.

:func:`global_search` is the searcher ``wham``:

1. seeds: the TPU-like and NVDLA-like baselines of the same budget snapped to the grid
   and random designs filling most of the area (:func:`search.heuristic.seed_designs`);
2. for every workload, the **reference plan** is the best parallel plan of the first
   seed (the TPU-like design); every distinct pipeline stage of that plan gets a
   critical-path local search from every seed (:func:`search.heuristic.wham_search`),
   which keeps its top-``k`` designs. With one stage (``pp = 1``) the stage is the
   workload and its search runs on the end-to-end objective;
3. the union of all top-``k`` sets is evaluated **end to end** — every workload, each
   design under its own best plan (tp, pp, dp, micro-batch, schedule, recompute), the
   objective the geometric mean of throughput over workloads (or per TDP watt) — and the
   best few candidates are polished by the same local search on that objective (the
   end-to-end throughput of one chip is what the stages share: the slowest stage, the
   bubbles and the communication decide it, so a stage's favourite can lose here);
4. the result is the evaluator's top-``k`` (all of it is in the evaluator's records).

Budget: ``budget`` caps the designs evaluated in total — stage evaluations included —
(None: until every local search converges).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.types import HardwareConfig
from search.evaluator import Evaluator
from search.heuristic import (
    GlobalTarget,
    StageResult,
    StageTarget,
    local_searches,
    seed_designs,
    wham_search,
)

__all__ = ["STAGE_SHARE", "GlobalResult", "global_search"]

STAGE_SHARE = 0.6
"""Under an evaluation budget, the share the per-workload / per-stage searches may use."""


@dataclass
class GlobalResult:
    """What the wham searcher did."""

    stages: list[StageResult]
    evaluations: int
    """Designs evaluated in total (stage, per-workload and end-to-end evaluations)."""
    end_to_end_evaluations: int
    seeds: list[str]
    polish: list[dict[str, Any]] = field(default_factory=list)
    rederived: list[dict[str, Any]] = field(default_factory=list)
    """Stage searches repeated under the winning chip's own plan."""
    heterogeneous: dict[str, Any] | None = None
    """``--heterogeneous``: the best chip per pipeline stage (:mod:`search.hetero`)."""

    def to_dict(self, space: Any) -> dict[str, Any]:
        def label(f: int) -> str:
            return space.label(space.unflat(np.array([f]))[0])

        return {
            "evaluations": self.evaluations,
            "end_to_end_evaluations": self.end_to_end_evaluations,
            "seeds": self.seeds,
            "stages": [{
                "stage": s.name, "workload": s.workload, "evaluations": s.evaluations,
                "plan": s.plan,
                "top_k": [{"design": label(f), "value": v}
                          for f, v in zip(s.top, s.top_values)],
                "local_searches": [{
                    "seed": space.label(r.seed), "start_value": _num(r.start_value),
                    "best": space.label(r.best), "best_value": _num(r.best_value),
                    "steps": [{"step": st["step"], "to": space.label(np.array(st["to"])),
                               "bound": st["bound"], "gain": _num(st["gain"]),
                               "fallback": st["fallback"]} for st in r.steps],
                } for r in s.searches],
            } for s in self.stages],
            "polish": self.polish,
            "rederived": self.rederived,
            "heterogeneous": self.heterogeneous,
        }


def _num(x: float) -> float | None:
    """JSON-safe number: None for ±inf (a search that started infeasible)."""
    return float(x) if np.isfinite(x) else None


def _plan_dict(plan: Any) -> dict[str, Any] | None:
    if plan is None:
        return None
    import dataclasses

    return dict(dataclasses.asdict(plan), devices=plan.devices)


def global_search(evaluator: Evaluator, *, seed: int = 0, top_k: int = 5,
                  baselines: Sequence[HardwareConfig] = (), budget: int | None = None,
                  random_seeds: int = 4, polish: int = 3, max_steps: int = 64,
                  guidance: str = "critical-path", heterogeneous: bool = False,
                  on_stage: Callable[[str], None] | None = None,
                  trace: list[tuple[int, float]] | None = None) -> GlobalResult:
    """Run the wham searcher on ``evaluator`` (module docstring). The evaluator's records
    then hold every end-to-end evaluation; its :meth:`~Evaluator.top` is the result.
    ``guidance``: :data:`search.heuristic.GUIDANCE`. ``trace``: appended with
    ``(evaluations so far, best end-to-end value)`` after every end-to-end evaluation —
    evaluations count every design any target scored (the clock of the ablation)."""
    from search.objective import TrainingProblem

    pb: Any = evaluator.problem
    space = evaluator.space
    rng = np.random.default_rng(seed)
    side: list[Any] = []  # stage targets and per-workload evaluators (their evaluations)
    start = evaluator.evaluations

    def spent() -> int:
        n = evaluator.evaluations - start
        for s in side:
            n += s.evaluations
        return n

    def remaining() -> int | None:
        return None if budget is None else max(0, budget - spent())

    n_targets = max(1, len(pb.targets))

    def stage_remaining(w: int) -> Callable[[], int | None]:
        """The budget of workload ``w``'s stage searches: under a budget the stage phase
        takes at most :data:`STAGE_SHARE` of it, split evenly over the workloads in
        turn, so the end-to-end phase (the only one that scores every workload on one
        chip) always keeps the rest."""
        if budget is None:
            return remaining
        cap = int(STAGE_SHARE * budget * (w + 1) / n_targets)

        def left() -> int | None:
            r = remaining()
            return None if r is None else max(0, min(r, cap - spent()))

        return left

    progress = evaluator.on_progress  # side targets count their evaluations on it too
    if trace is not None:
        prev = evaluator.on_progress

        def _traced(n: int) -> None:
            if prev is not None:
                prev(n)
            trace.append((spent(), evaluator.best_value()))

        evaluator.on_progress = _traced
    main = GlobalTarget(evaluator, name="end-to-end", remaining=remaining)
    seeds = seed_designs(space, main, baselines, rng=rng, random_seeds=random_seeds)
    if not seeds:
        pb.raise_infeasible()
    stages: list[StageResult] = []
    stage_tops: dict[int, list[int]] = {}    # virtual stage -> its search's top designs
    ref_plans: dict[int, Any] = {}           # workload -> the plan its stages searched
    multi = len(pb.targets) > 1 and isinstance(pb, TrainingProblem)
    for w, t in enumerate(pb.targets):
        sub_pb: Any
        if multi:
            sub_pb = TrainingProblem(space, [t], pb.tech, area_mm2=pb.area_budget_mm2,
                                     power_w=pb.power_budget_w, objective=pb.objective)
            ev_w = Evaluator(sub_pb, on_progress=progress)
            side.append(ev_w)
            target_w = GlobalTarget(ev_w, name=t.name, remaining=stage_remaining(w))
        else:
            sub_pb = pb
            ev_w = evaluator
            target_w = GlobalTarget(evaluator, name=t.name, remaining=stage_remaining(w))
        target_w.evaluate(seeds[0][None, :])
        plan = None
        if hasattr(sub_pb, "plans"):
            rows = ev_w.rows_of(seeds[0][None, :])
            pid = int(ev_w.columns()["plan_id"][0, rows[0]]) if rows[0] >= 0 else -1
            plan = sub_pb.plans[0][pid] if pid >= 0 else None
        if plan is None or plan.pp == 1:
            if on_stage is not None:
                on_stage(f"{t.name}: local search, {len(seeds)} seeds")
            stages.append(wham_search(target_w, seeds, top_k=top_k, workload=t.name,
                                      plan=_plan_dict(plan), max_steps=max_steps,
                                      guidance=guidance))
            continue
        stages += _stage_searches(sub_pb, t.name, plan, seeds, stage_tops, side,
                                  remaining=stage_remaining(w), progress=progress,
                                  on_stage=on_stage,
                                  top_k=top_k, max_steps=max_steps, guidance=guidance)
        ref_plans[w] = plan
    # end to end: the union of the per-stage top-k sets, then polish the best few
    union = list(dict.fromkeys(f for s in stages for f in s.top))
    if on_stage is not None and (len(stages) > 1 or multi):
        on_stage(f"end to end: {len(union)} stage favourites, then polishing")
    if union:
        main.evaluate(space.unflat(np.array(union, dtype=np.int64)))
    polished: list[dict[str, Any]] = []
    c = evaluator.columns()
    starts = [c["idx"][r] for r in evaluator.top(polish)]
    if starts and not main.exhausted:
        for x, res in zip(starts, local_searches(main, starts, max_steps=max_steps,
                                                 guidance=guidance)):
            polished.append({"from": space.label(x), "to": space.label(res.best),
                             "start_value": res.start_value, "value": res.best_value,
                             "steps": len(res.steps)})
    # the stage partition of the chip that wins: when its best plan is not the plan the
    # stages were searched under, search its stages once more (seeded by the winner)
    rederived: list[dict[str, Any]] = []
    if not multi and 0 in ref_plans and not main.exhausted:
        win_plan = _winner_plan(evaluator, pb)
        if win_plan is not None and win_plan.pp > 1 and _stage_work(win_plan) != \
                _stage_work(ref_plans[0]):
            c = evaluator.columns()
            win = c["idx"][evaluator.top(1)[0]]
            if on_stage is not None:
                on_stage(f"the winner's plan (tp={win_plan.tp} pp={win_plan.pp} "
                         f"dp={win_plan.dp}) differs: searching its stages")
            stage_tops.clear()
            more = _stage_searches(pb, pb.targets[0].name, win_plan,
                                   [win] + seeds[:2], stage_tops, side,
                                   remaining=remaining, progress=progress,
                                   on_stage=on_stage, top_k=top_k, max_steps=max_steps,
                                   guidance=guidance)
            stages += more
            extra = list(dict.fromkeys(f for st in more for f in st.top))
            if extra:
                main.evaluate(space.unflat(np.array(extra, dtype=np.int64)))
            ref_plans[0] = win_plan
            rederived.append({"plan": _plan_dict(win_plan), "stage_searches": len(more)})
    hetero = None
    if heterogeneous:
        from search.hetero import heterogeneous_search

        win_plan = _winner_plan(evaluator, pb)
        c = evaluator.columns()
        rows = evaluator.top(1)
        if win_plan is not None and len(rows):
            if on_stage is not None:
                on_stage("heterogeneous: a chip per pipeline stage")
            hetero = heterogeneous_search(pb, win_plan, stage_tops, c["idx"][rows[0]])
    if trace is not None:
        evaluator.on_progress = prev
    return GlobalResult(stages=stages, evaluations=spent(),
                        end_to_end_evaluations=evaluator.evaluations - start,
                        seeds=[space.label(s) for s in seeds], polish=polished,
                        rederived=rederived, heterogeneous=hetero)


def _stage_work(plan: Any) -> tuple[Any, ...] | None:
    """What makes stage searches differ: the cut (pp, interleaving) and the shard (tp,
    micro-batch); recomputation and ZeRO variants of one cut share the stage searches."""
    if plan is None:
        return None
    return (plan.pp, plan.interleave if plan.schedule == "interleaved" else 1, plan.tp,
            plan.micro_batch)


def _winner_plan(evaluator: Evaluator, pb: Any) -> Any:
    """The best plan of the evaluator's best design (first workload), or None."""
    rows = evaluator.top(1)
    if not len(rows) or not hasattr(pb, "plans"):
        return None
    pid = int(evaluator.columns()["plan_id"][0, rows[0]])
    return pb.plans[0][pid] if pid >= 0 else None


def _stage_searches(pb: Any, name: str, plan: Any, seeds: Sequence[np.ndarray],
                    stage_tops: dict[int, list[int]], side: list[Any], *,
                    remaining: Callable[[], int | None], progress: Any,
                    on_stage: Callable[[str], None] | None, top_k: int, max_steps: int,
                    guidance: str) -> list[StageResult]:
    """A local search per distinct virtual stage of ``plan`` (first, middle, last: stages
    with the same role and layer count share one), on its time per training step."""
    layout = pb.models[0].info(plan).stages
    seen: dict[Any, int] = {}
    out: list[StageResult] = []
    for k, vs in enumerate(layout):
        key = (vs.first, vs.last, vs.n_layers, id(vs.graph))
        if key in seen:
            stage_tops[k] = stage_tops.get(seen[key], [])
            continue
        seen[key] = k
        label = f"{name}/stage{k}"
        st = StageTarget(pb, 0, k, plan, name=label, remaining=remaining,
                         on_progress=progress)
        side.append(st)
        if on_stage is not None:
            on_stage(f"{label}: local search, {len(seeds)} seeds")
        res = wham_search(st, seeds, top_k=top_k, workload=name, plan=_plan_dict(plan),
                          max_steps=max_steps, guidance=guidance)
        out.append(res)
        stage_tops[k] = list(res.top)
    for k, vs in enumerate(layout):  # stages that share a search share its tops
        key = (vs.first, vs.last, vs.n_layers, id(vs.graph))
        stage_tops[k] = stage_tops.get(seen[key], [])
    return out
