"""The searchers of ``dse search --searcher``: one :class:`dse.registry.Registry`.

Each entry is ``fn(ctx: search.runner.SearchContext) -> None``: it evaluates designs
through ``ctx.evaluator`` (cached, budgeted, persisted in batches), may record what it
did in ``ctx.info``, evaluations outside the end-to-end evaluator in
``ctx.extra_evaluations`` and a Pareto front in ``ctx.pareto_rows``.

* ``wham`` — the critical-path heuristic per stage + global search
  (:func:`search.global_search.global_search`);
* ``optuna`` — TPE, or NSGA-II with ``--multi-objective`` (:func:`search.optuna_search.run_optuna`);
* ``random`` — uniform over the designs within budget (:func:`search.baselines.random_search`);
* ``exhaustive`` — every design within budget (:func:`search.baselines.exhaustive_search`).

>>> SEARCHERS.names()
['exhaustive', 'optuna', 'random', 'wham']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dse.registry import Registry

__all__ = ["SEARCHERS"]

SEARCHERS: Registry[Callable[[Any], None]] = Registry("searcher")
"""``search.config.SEARCHER_NAMES`` lists the same names (a test checks it)."""


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


@SEARCHERS.decorator("wham")
def _wham(ctx: Any) -> None:
    from search.global_search import global_search

    before = ctx.evaluator.evaluations
    res = global_search(ctx.evaluator, seed=ctx.cfg.seed, top_k=ctx.cfg.top_k,
                        baselines=ctx.baselines, budget=ctx.budget,
                        guidance=ctx.cfg.guidance, heterogeneous=ctx.cfg.heterogeneous,
                        on_stage=ctx.on_message)
    ctx.extra_evaluations = res.evaluations - (ctx.evaluator.evaluations - before)
    ctx.info = _finite(res.to_dict(ctx.evaluator.space))


@SEARCHERS.decorator("optuna")
def _optuna(ctx: Any) -> None:
    from search.heuristic import GlobalTarget, seed_designs
    from search.optuna_search import run_optuna

    ev = ctx.evaluator
    space = ev.space
    n = ctx.budget if ctx.budget is not None else 0
    # seed the study with the heuristic's starting designs (the baselines on the grid)
    # and the best designs earlier wham runs left in this study
    target = GlobalTarget(ev, name="seeds")
    enqueue = seed_designs(space, target, ctx.baselines, rng=np.random.default_rng(ctx.cfg.seed),
                           random_seeds=0)
    c = ev.columns()
    wham_rows = [r for r in ev.top(ctx.cfg.top_k) if c["searcher"][r] == "wham"]
    enqueue += [c["idx"][r] for r in wham_rows]
    if ctx.history:
        enqueue = []  # a resumed study already ran its seeds
    out = run_optuna(ev, n_trials=n, seed=ctx.cfg.seed,
                     multi_objective=ctx.cfg.multi_objective, enqueue=enqueue,
                     history=ctx.history)
    ctx.pareto_rows = out.pareto_rows
    ctx.info = {"sampler": "NSGAIISampler" if ctx.cfg.multi_objective else "TPESampler",
                "trials_this_run": out.trials, "trials_total": out.total_trials,
                "enqueued": [space.label(x) for x in enqueue]}


@SEARCHERS.decorator("random")
def _random(ctx: Any) -> None:
    from search.baselines import random_search

    n = ctx.budget if ctx.budget is not None else 0
    new = random_search(ctx.evaluator, seed=ctx.cfg.seed, budget=n)
    ctx.info = {"evaluated_this_run": new}


@SEARCHERS.decorator("exhaustive")
def _exhaustive(ctx: Any) -> None:
    from search.baselines import exhaustive_search

    ev = ctx.evaluator
    if ctx.budget is not None:
        ev.budget = ev.evaluations + ctx.budget
    counted: dict[str, int] = {}

    def feasible_count(n: int) -> None:
        counted["n"] = n

    new = exhaustive_search(ev, on_feasible_count=feasible_count)
    ctx.info = {"feasible_designs": counted.get("n", 0), "evaluated_this_run": new}
