"""Searcher ``optuna``: TPE (single objective) or NSGA-II (multi-objective) over the same
design space, with the hot loop in memory and batched persistence.

* The study that samples lives in an :class:`optuna.storages.InMemoryStorage`; designs
  are asked in small batches (``batch``; Optuna 5's TPE uses the constant liar for the
  pending ones), scored together by the vectorized cost model, told back, and the
  finished trials handed to the evaluator's :class:`~search.storage.TrialBuffer`, which
  writes them to the persistent ``--storage`` in batches.
* A resumed study's trials are first copied into the in-memory study, so the sampler
  learns from them; the sampler seed is then ``seed + len(history)``.
* ``trial.set_constraint`` records the area, TDP and memory constraints (≤ 0 feasible;
  TPE and NSGA-II use them); the same values and ``feasible`` are also user attributes,
  because optuna-dashboard 0.21 does not read Optuna 5 constraints
  (``docs/sources.md`` E2). The dashboard's multi-objective "best trials" are
  therefore unconstrained; ``feasible`` tells them apart.
* Designs found by the heuristic can seed the study (``enqueue``, through
  ``study.enqueue_trial``): they run first and keep ``user_attrs["source"]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError
from search.evaluator import Evaluator, directions, metric_names
from search.storage import quiet_optuna

__all__ = ["OptunaOutcome", "make_sampler", "run_optuna"]


@dataclass(frozen=True, kw_only=True)
class OptunaOutcome:
    trials: int
    """Trials told in this run."""
    total_trials: int
    """Trials in the study, history included."""
    pareto_rows: tuple[int, ...]
    """Evaluator record rows of the feasible Pareto front (multi-objective), else ()."""


def make_sampler(seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    """TPESampler (Optuna 5 defaults: multivariate, constant liar) or NSGAIISampler,
    seeded."""
    if multi_objective:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def run_optuna(evaluator: Evaluator, *, n_trials: int, seed: int,
               multi_objective: bool = False, enqueue: Sequence[np.ndarray] = (),
               history: Sequence[FrozenTrial] = (), batch: int = 8,
               source: str = "wham") -> OptunaOutcome:
    """Run ``n_trials`` new trials (see module docstring). ``history``: the persistent
    study's finished trials (resume). Returns counts and the Pareto rows."""
    if n_trials < 0:
        raise ConfigError(f"n_trials={n_trials!r} must be >= 0")
    if batch < 1:
        raise ConfigError(f"batch={batch!r} must be >= 1")
    quiet_optuna()
    space = evaluator.space
    dists = space.sampler_distributions()
    objective = evaluator.problem.objective
    mem = optuna.create_study(storage=InMemoryStorage(),
                              directions=directions(multi_objective),  # type: ignore[arg-type]
                              sampler=make_sampler((seed + len(history)) % 2**32,
                                                   multi_objective))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        mem.set_metric_names(metric_names(objective, multi_objective))
    done = [t for t in history if t.state == TrialState.COMPLETE]
    if done:  # the sampler learns from the history in its own (ordinal) parameters
        mem.add_trials([_convert(t, space, sampler=True) for t in done])
    for idx in enqueue:
        mem.enqueue_trial(space.to_sampler_params(np.asarray(idx)),
                          user_attrs={"source": source}, skip_if_exists=True)
    told = 0
    while told < n_trials:
        k = min(batch, n_trials - told)
        trials = [mem.ask(dists) for _ in range(k)]
        idx = np.array([space.from_sampler_params(t.params) for t in trials], dtype=np.int64)
        evaluator.evaluate(idx, "optuna", persist=False)
        rows = evaluator.rows_of(idx)
        sc = evaluator.scores_at(rows)
        for j, t in enumerate(trials):
            values, cons, attrs = evaluator.trial_payload(idx, sc, j, "optuna", int(rows[j]))
            for key, v in cons.items():
                t.set_constraint(key, float(v))
            for key, v in attrs.items():
                t.set_user_attr(key, v)
            mem.tell(t, values if multi_objective else values[0])
        told += k
        if evaluator.buffer is not None:  # stored in physical units (the dashboard's)
            # the trials just told (enqueued seeds not yet asked wait after them)
            numbers = {t.number for t in trials}
            evaluator.buffer.add([_convert(t, space, sampler=False)
                                  for t in mem.get_trials(deepcopy=False)
                                  if t.number in numbers])
    pareto: tuple[int, ...] = ()
    if multi_objective:
        front = mem.best_trials  # Optuna excludes infeasible trials (constraints > 0)
        if front:
            idx = np.array([space.from_sampler_params(t.params) for t in front], dtype=np.int64)
            rows = evaluator.rows_of(idx)
            pareto = tuple(sorted({int(r) for r in rows if r >= 0}))
    return OptunaOutcome(trials=told, total_trials=len(mem.trials), pareto_rows=pareto)


def _convert(t: FrozenTrial, space: Any, *, sampler: bool) -> FrozenTrial:
    """A finished trial with its parameters in the sampler's ordinal form (``sampler``)
    or in physical units (what studies store)."""
    if sampler:
        idx = space.from_optuna_params(t.params)
        params, dists = space.to_sampler_params(idx), space.sampler_distributions()
    else:
        idx = space.from_sampler_params(t.params)
        params, dists = space.to_optuna_params(idx), space.optuna_distributions()
    cons = getattr(t, "constraints", None)
    return optuna.trial.create_trial(
        state=t.state, values=t.values, params=params, distributions=dists,
        user_attrs=dict(t.user_attrs),
        system_attrs={k: v for k, v in t.system_attrs.items()
                      if not str(k).startswith("constraints")},
        constraints=dict(cons) if cons else None)


def pareto_rows(evaluator: Evaluator) -> list[int]:
    """Feasible records not dominated in (throughput ↑, area ↓, TDP ↑↓) — the Pareto
    front of everything evaluated, whatever the searcher."""
    c = evaluator.columns()
    rows = np.flatnonzero(c["feasible"])
    if rows.size == 0:
        return []
    pts = np.stack([-c["value"][rows], c["area_mm2"][rows], c["tdp_w"][rows]], axis=1)
    keep = _non_dominated(pts)
    out = rows[keep]
    return [int(r) for r in out[np.argsort(-c["value"][out], kind="stable")]]


def _non_dominated(pts: np.ndarray) -> np.ndarray:
    """Mask of rows not dominated (all objectives minimized).

    Sweep in lexicographic order: a point can only be dominated by one before it, so it
    is compared with the front found so far (O(n · front)).
    """
    n = len(pts)
    keep = np.zeros(n, dtype=bool)
    front = np.zeros((0, pts.shape[1]))
    for i in np.lexsort(pts.T[::-1]):
        p = pts[i]
        if front.size and np.any(np.all(front <= p, axis=1) & np.any(front < p, axis=1)):
            continue
        if front.size and np.any(np.all(front == p, axis=1)):
            continue  # duplicate of a front point: keep the first only
        keep[i] = True
        front = np.vstack([front, p])
    return keep


def study_info(study: optuna.Study) -> dict[str, Any]:
    """Name, trial count and metric names of a persistent study (for summary.json)."""
    return {"study": study.study_name, "trials": len(study.get_trials(deepcopy=False)),
            "metric_names": study.metric_names}


# --------------------------------------------------------------------------- workers


class SearchObjective:
    """The accelerator objective for shared studies (:mod:`search.distributed`): the
    ``TrialObjective`` a worker rebuilds from a study's settings
    (:func:`objective_from_settings`). Each trial suggests every design parameter (so
    slots with fixed params evaluate exactly that design), scores it with the same
    :class:`~search.objective.TrainingProblem` as ``dse search``, and records the same
    user attributes and constraints as the in-memory path."""

    def __init__(self, settings: Any) -> None:
        from search.config import SearchConfig
        from search.evaluator import Evaluator
        from search.objective import build_problem

        keys = ("workloads", "area_mm2", "power_w", "objective", "devices", "searcher",
                "seed", "batch", "seq", "multi_objective")
        missing = [k for k in keys if k not in settings]
        if missing:
            raise ConfigError(f"study settings lack {missing[0]!r}; the study was not made "
                              "by this dse version")
        from search.config import COST_MODEL_VERSION

        if settings.get("model") != COST_MODEL_VERSION:
            raise ConfigError(f"the study was scored by dse cost model "
                              f"{settings.get('model', 1)}, this dse has {COST_MODEL_VERSION}; "
                              "start a new study")
        kw: dict[str, Any] = {k: (tuple(settings[k]) if k == "workloads" else settings[k])
                              for k in keys}
        kw["attention"] = settings.get("attention")
        kw["dtype"] = settings.get("dtype", "bf16")
        cfg = SearchConfig(**kw)
        self.cfg = cfg
        self.problem = build_problem(cfg)
        self.space = self.problem.space
        want = settings.get("space")
        if want is not None and want != self.space.fingerprint():
            raise ConfigError(f"the study was made on design space {want}, this dse has "
                              f"{self.space.fingerprint()}; use the same dse version")
        self.evaluator = Evaluator(self.problem, multi_objective=cfg.multi_objective)
        self.directions = directions(cfg.multi_objective)
        self.metric_names = metric_names(cfg.objective, cfg.multi_objective)
        self._dists = self.space.optuna_distributions()
        self._feasible: np.ndarray | None = None

    def __call__(self, trial: optuna.Trial) -> Any:
        from optuna.distributions import CategoricalDistribution

        params: dict[str, Any] = {}
        for name, d in self._dists.items():
            if isinstance(d, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, d.choices)
            else:
                params[name] = trial.suggest_int(name, d.low, d.high)
        idx = self.space.from_optuna_params(params)[None, :]
        ev = self.evaluator
        ev.evaluate(idx, self.cfg.searcher, persist=False)
        sc = ev.scores_at(ev.rows_of(idx))
        values, cons, attrs = ev.trial_payload(idx, sc, 0, self.cfg.searcher, trial.number)
        for k, v in cons.items():
            trial.set_constraint(k, float(v))
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        return values if self.cfg.multi_objective else values[0]

    def _feasible_designs(self) -> np.ndarray:
        if self._feasible is None:
            from search.evaluator import within_budget

            keep = []
            for c in self.space.enumerate(65536):
                a, p = self.problem.area_tdp(c)
                keep.append(c[within_budget(self.problem, a, p)])
            self._feasible = np.concatenate(keep) if keep else np.zeros(
                (0, len(self.space.params)), np.int64)
        return self._feasible

    def slot_params(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Fixed params of budget slots: none for optuna (the sampler decides), the
        ``i``-th design within budget in grid order for exhaustive, a design within
        budget drawn from ``default_rng([seed, i])`` for random (independent of how the
        slots are split among workers)."""
        s = self.cfg.searcher
        if s == "optuna":
            return [{} for _ in range(start, stop)]
        if s == "exhaustive":
            f = self._feasible_designs()
            if len(f) == 0:
                return [{} for _ in range(start, stop)]
            return [self.space.to_optuna_params(f[i % len(f)]) for i in range(start, stop)]
        from search.evaluator import within_budget

        out = []
        for i in range(start, stop):
            rng = np.random.default_rng([self.cfg.seed, i])
            for _ in range(1000):
                c = self.space.sample(rng, 64)
                a, p = self.problem.area_tdp(c)
                ok = np.flatnonzero(within_budget(self.problem, a, p))
                if ok.size:
                    out.append(self.space.to_optuna_params(c[ok[0]]))
                    break
            else:
                out.append({})
        return out

    def sampler(self, worker_seed: int) -> optuna.samplers.BaseSampler:
        if self.cfg.searcher == "optuna":
            return make_sampler(worker_seed, self.cfg.multi_objective)
        return optuna.samplers.RandomSampler(seed=worker_seed)


def objective_from_settings(settings: Any) -> SearchObjective:
    """The worker objective of a study made by ``dse search --jobs N`` or with a
    PostgreSQL/MySQL ``--storage`` (hook of :mod:`search.distributed`)."""
    return SearchObjective(settings)
