"""``dse search`` as a shared study (``--jobs N`` on one machine, or a PostgreSQL/MySQL
``--storage`` that ``dse worker`` processes on other machines join).

The study is created by :func:`search.distributed.create_or_load_study` with the search's
settings and exactly ``--budget`` slots (default: 500 for optuna/random, every design
within budget for exhaustive); the workers — ``jobs`` processes here, plus any
``dse worker`` — fill the slots with :class:`search.optuna_search.SearchObjective`, and
the result is assembled from the finished trials exactly as for a single-process search
(:func:`search.runner.assemble`). The ``wham`` heuristic is sequential (each step depends
on the last) and runs in one process: ``--jobs`` needs optuna, random or exhaustive.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dse.errors import ConfigError
from search.evaluator import Evaluator
from search.runner import (
    DEFAULT_BUDGETS,
    SearchConfig,
    assemble,
    baseline_designs,
    build_problem,
    default_study_name,
)

__all__ = ["run_distributed", "settings_of"]


def settings_of(cfg: SearchConfig, space_fingerprint: str) -> dict[str, Any]:
    """The study settings a worker rebuilds the objective from."""
    from search.distributed import workload_fingerprints

    s = cfg.settings()
    s.update(objective_factory="dse", space=space_fingerprint,
             workload_files=workload_fingerprints(list(cfg.workloads)))
    return s


def run_distributed(cfg: SearchConfig, *, jobs: int, quiet: bool = False
                    ) -> tuple[dict[str, Any], Evaluator]:
    """Run the search as a shared study (module docstring); returns (summary, evaluator)."""
    from search.distributed import run_parallel_jobs
    from search.storage import open_storage

    if cfg.searcher == "wham":
        raise ConfigError("--searcher wham runs in one process (each step depends on the "
                          "previous one); use --jobs 1, or --searcher optuna, random or "
                          "exhaustive for a shared study")
    t0 = time.perf_counter()
    problem = build_problem(cfg)
    space = problem.space
    need = problem.min_hbm_bytes()
    a_min = space.min_area_mm2(problem.tech, power_w=cfg.power_w, min_hbm_bytes=need)
    if not (a_min <= cfg.area_mm2):
        problem.raise_infeasible()
    budget = cfg.budget if cfg.budget is not None else DEFAULT_BUDGETS[cfg.searcher]
    if budget is None:  # exhaustive: every design within the budgets
        from search.optuna_search import SearchObjective

        budget = len(SearchObjective(settings_of(cfg, space.fingerprint()))._feasible_designs())
        if budget == 0:
            problem.raise_infeasible()
    name = cfg.study or default_study_name(cfg)
    result = run_parallel_jobs(settings_of(cfg, space.fingerprint()), cfg.storage, name, jobs,
                               budget, run_dir=cfg.out_dir)
    storage = (cfg.storage if cfg.storage is not None
               else f"journal:{Path(str(cfg.out_dir)) / 'study.log'}")
    st = open_storage(storage)
    import optuna

    study = optuna.load_study(study_name=name, storage=st)
    ev = Evaluator(problem, multi_objective=cfg.multi_objective)
    trials = study.get_trials(deepcopy=False)
    loaded = ev.load_history(trials)
    summary = assemble(cfg, problem, ev, bases=baseline_designs(problem), t0=t0, loaded=0,
                       budget=budget, a_min=a_min,
                       info={"distributed": {k: v for k, v in result.items()
                                             if k != "workers"},
                             "workers": result.get("workers", [])},
                       study=study, storage_display=result.get("storage"), study_name=name,
                       history=trials)
    summary["evaluations_resumed"] = int(loaded - result.get("trials_this_run", 0))
    summary["evaluations_this_run"] = int(result.get("trials_this_run", 0))
    return summary, ev
