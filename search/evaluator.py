"""The evaluation loop every searcher shares: cache, budget, records, Optuna trials.

A :class:`Problem` scores batches of designs (``(D, P)`` index arrays of a
:class:`~search.space.DesignSpace`); :class:`search.objective.TrainingProblem` is the
real one (cost_models), tests use small synthetic ones. The :class:`Evaluator` wraps a
problem for a searcher:

* it **caches** every design it has scored (by grid position), so revisiting a design is
  free and does not count as an evaluation;
* it enforces the **budget** (designs newly scored; a resumed study's trials count);
* it keeps **records** of every evaluated design in evaluation order (for
  ``designs.csv``, top-k and convergence) and turns each into a finished Optuna trial
  (params, objective values, constraints, and user attributes that carry the hardware
  fields, area, TDP, throughput, the constraint values and ``feasible``: the dashboard
  reads user attributes, not Optuna 5 constraints, ``docs/sources.md`` E2);
* trials go to a :class:`~search.storage.TrialBuffer` that persists them in batches.

Objective values: ``throughput`` is the geometric mean over workloads of samples/s (the
plain value for one workload; scale-free, so a small model does not dominate a large one);
``perf_per_tdp`` divides it by the TDP (W). Multi-objective studies record
``(throughput, area_mm2, tdp_w)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError
from search.config import OBJECTIVES
from search.space import DesignSpace

__all__ = [
    "CONSTRAINT_KEYS",
    "OBJECTIVES",
    "Evaluator",
    "Problem",
    "Scores",
    "TrialRecord",
    "TrialSink",
    "directions",
    "metric_names",
    "objective_value",
    "violation",
]

CONSTRAINT_KEYS = ("area_mm2_over_budget", "tdp_w_over_budget", "memory_bytes_over_hbm")
"""Optuna constraint names (value ≤ 0 means satisfied)."""


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Scores of ``D`` designs on ``W`` workloads (SI units)."""

    area_mm2: np.ndarray
    tdp_w: np.ndarray
    samples_per_s: np.ndarray
    """(W, D) training throughput."""
    step_time_s: np.ndarray
    """(W, D) training step time."""
    memory_bytes: np.ndarray
    """(W, D) memory needed per device."""
    hbm_bytes: np.ndarray
    """(D,) HBM capacity."""
    value: np.ndarray
    """(D,) objective value (regardless of feasibility)."""
    feasible: np.ndarray
    """(D,) within area and power budgets and fits memory on every workload."""
    plan_id: np.ndarray | None = None
    """(W, D) index of each design's parallel plan in the problem's plan list (-1: none
    fits; None: the problem has no plans)."""

    def __post_init__(self) -> None:
        d = np.shape(self.area_mm2)[0]
        for f in ("tdp_w", "hbm_bytes", "value", "feasible"):
            if np.shape(getattr(self, f)) != (d,):
                raise ConfigError(f"Scores.{f} has shape {np.shape(getattr(self, f))}, "
                                  f"expected ({d},)")
        w = np.shape(self.samples_per_s)[0]
        if self.plan_id is None:
            object.__setattr__(self, "plan_id", np.full((w, d), -1, dtype=np.int64))
        for f in ("samples_per_s", "step_time_s", "memory_bytes", "plan_id"):
            if np.shape(getattr(self, f)) != (w, d):
                raise ConfigError(f"Scores.{f} has shape {np.shape(getattr(self, f))}, "
                                  f"expected ({w}, {d})")

    @property
    def fits_memory(self) -> np.ndarray:
        return self.memory_bytes <= self.hbm_bytes[None, :]

    @property
    def throughput(self) -> np.ndarray:
        """(D,) geometric mean of samples/s over workloads."""
        return geomean(self.samples_per_s)


def geomean(x: np.ndarray) -> np.ndarray:
    """Geometric mean over axis 0 (0 if any entry is 0)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 1:
        return x[0].copy()
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(np.maximum(x, 0.0)), axis=0))


def objective_value(objective: str, samples_per_s: np.ndarray, tdp_w: np.ndarray) -> np.ndarray:
    """Objective of each design: geomean samples/s, or that per TDP watt."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    thr = geomean(samples_per_s)
    if objective == "throughput":
        return thr
    return thr / np.asarray(tdp_w, dtype=np.float64)


def metric_names(objective: str, multi_objective: bool) -> list[str]:
    first = "samples_per_s" if objective == "throughput" else "samples_per_s_per_w"
    return [first, "area_mm2", "tdp_w"] if multi_objective else [first]


def directions(multi_objective: bool) -> list[str]:
    return ["maximize", "minimize", "minimize"] if multi_objective else ["maximize"]


def _now() -> Any:
    import datetime

    return datetime.datetime.now()


@dataclass
class TrialRecord:
    """A finished trial as a study stores it — the fields of Optuna's
    :class:`~optuna.trial.FrozenTrial` that :func:`search.storage.persist_trials` writes,
    without FrozenTrial's per-trial validation (1 ms a trial; a search scores a thousand
    designs in a fraction of that). :meth:`to_frozen` gives the FrozenTrial."""

    values: list[float]
    params: dict[str, Any]
    distributions: dict[str, Any]
    user_attrs: dict[str, Any]
    constraints: dict[str, float]
    datetime_start: Any = None
    datetime_complete: Any = None
    state: TrialState = TrialState.COMPLETE

    @property
    def system_attrs(self) -> dict[str, Any]:
        """Optuna 5 keeps constraints as ``constraints:<name>`` system attributes."""
        return {f"constraints:{k}": float(v) for k, v in self.constraints.items()}

    def to_frozen(self) -> FrozenTrial:
        t = optuna.trial.create_trial(state=self.state, values=self.values,
                                      params=self.params, distributions=self.distributions,
                                      user_attrs=self.user_attrs,
                                      constraints=self.constraints)
        t.datetime_start = self.datetime_start
        t.datetime_complete = self.datetime_complete
        return t


class TrialSink(Protocol):
    """Where finished trials go (``search.storage.TrialBuffer`` persists them in batches):
    the evaluator hands its trials to a sink and never writes to a storage itself."""

    def add(self, trials: Sequence[FrozenTrial]) -> None:
        ...


class Problem(Protocol):
    """What a searcher needs from the model (see :class:`search.objective.TrainingProblem`)."""

    space: DesignSpace
    workload_names: tuple[str, ...]
    area_budget_mm2: float
    power_budget_w: float | None
    objective: str

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (mm²) and TDP (W) of each design: cheap, no workload evaluation."""
        ...

    def score(self, idx: np.ndarray) -> Scores:
        """Full scores of each design on every workload."""
        ...


def violation(problem: Problem, area: np.ndarray, tdp: np.ndarray, memory: np.ndarray,
              hbm: np.ndarray) -> np.ndarray:
    """How far designs are from feasible: the sum of relative excesses over the area and
    power budgets and, per workload, of memory needed over HBM (0 when feasible). Lets
    a local search started from an infeasible design walk toward feasibility."""
    v = np.maximum(np.asarray(area, float) / problem.area_budget_mm2 - 1.0, 0.0)
    if problem.power_budget_w is not None:
        v = v + np.maximum(np.asarray(tdp, float) / problem.power_budget_w - 1.0, 0.0)
    hb = np.maximum(np.asarray(hbm, float), 1.0)
    v = v + np.maximum(np.asarray(memory, float) / hb[None, :] - 1.0, 0.0).sum(axis=0)
    return v


def within_budget(problem: Problem, area: np.ndarray, tdp: np.ndarray) -> np.ndarray:
    ok = np.asarray(area) <= problem.area_budget_mm2
    if problem.power_budget_w is not None:
        ok &= np.asarray(tdp) <= problem.power_budget_w
    return ok


@dataclass
class _Records:
    """Columnar log of evaluated designs (appended in batches)."""

    idx: list[np.ndarray] = field(default_factory=list)
    area: list[np.ndarray] = field(default_factory=list)
    tdp: list[np.ndarray] = field(default_factory=list)
    samples: list[np.ndarray] = field(default_factory=list)
    step: list[np.ndarray] = field(default_factory=list)
    mem: list[np.ndarray] = field(default_factory=list)
    hbm: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    feasible: list[np.ndarray] = field(default_factory=list)
    plan: list[np.ndarray] = field(default_factory=list)
    searcher: list[str] = field(default_factory=list)


class Evaluator:
    """Cached, budgeted evaluation of designs for one search (see module docstring).

    ``budget``: designs to newly evaluate in total, *including* those already in
    ``history`` (a resumed study); None = unlimited. ``on_progress(n_new)`` is called
    after every batch (the CLI's progress bar).
    """

    def __init__(self, problem: Problem, *, budget: int | None = None,
                 buffer: TrialSink | None = None, multi_objective: bool = False,
                 on_progress: Callable[[int], None] | None = None) -> None:
        if budget is not None and budget < 0:
            raise ConfigError(f"budget={budget!r} must be >= 0")
        self.problem = problem
        self.space = problem.space
        self.budget = budget
        self.buffer = buffer
        self.multi_objective = multi_objective
        self.on_progress = on_progress
        self._pos: dict[int, int] = {}  # grid position -> record row
        self._rec = _Records()
        self._n = 0
        self._cols: dict[str, np.ndarray] | None = None
        self.distributions = self.space.optuna_distributions()
        self.convergence: list[dict[str, Any]] = []
        self._best = -math.inf

    # -- accounting ---------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        """Designs evaluated so far (resumed history included)."""
        return self._n

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self._n)

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self._n >= self.budget

    def known(self, idx: np.ndarray) -> np.ndarray:
        """Mask of designs already evaluated."""
        flat = self.space.flat(idx)
        return np.array([int(f) in self._pos for f in flat], dtype=bool)

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, idx: np.ndarray, searcher: str, *, persist: bool = True
                 ) -> dict[str, np.ndarray]:
        """Score ``idx`` (``(D, P)``), from the cache where possible; new designs count
        against the budget and stop at it. Returns per-design arrays ``value``,
        ``feasible``, ``area_mm2``, ``tdp_w``, ``samples_per_s`` (W, D) and ``evaluated``
        (False for designs beyond the budget: their other entries are NaN/False)."""
        a = self.space.check_indices(idx)
        flat = self.space.flat(a)
        new_rows: list[int] = []
        seen: dict[int, int] = {}
        for i, f in enumerate(flat.tolist()):
            if f in self._pos or f in seen:
                continue
            if self.remaining is not None and len(new_rows) >= self.remaining:
                break
            seen[f] = i
            new_rows.append(i)
        if new_rows:
            sub = a[new_rows]
            sc = self.problem.score(sub)
            self._append(sub, sc, searcher, persist=persist)
            for k, i in enumerate(new_rows):
                self._pos[int(flat[i])] = self._n - len(new_rows) + k
            if self.on_progress is not None:
                self.on_progress(len(new_rows))
        return self.lookup(a, flat)

    def lookup(self, idx: np.ndarray, flat: np.ndarray | None = None) -> dict[str, np.ndarray]:
        a = self.space.check_indices(idx)
        flat = self.space.flat(a) if flat is None else flat
        rows = np.array([self._pos.get(int(f), -1) for f in flat], dtype=np.int64)
        ok = rows >= 0
        c = self.columns()
        w = len(self.problem.workload_names)
        out = {"evaluated": ok,
               "value": np.full(len(a), np.nan), "feasible": np.zeros(len(a), bool),
               "area_mm2": np.full(len(a), np.nan), "tdp_w": np.full(len(a), np.nan),
               "samples_per_s": np.full((w, len(a)), np.nan),
               "violation": np.full(len(a), np.inf)}
        if ok.any():
            r = rows[ok]
            out["violation"][ok] = violation(self.problem, c["area_mm2"][r], c["tdp_w"][r],
                                             c["memory_bytes"][:, r], c["hbm_bytes"][r])
            out["value"][ok] = c["value"][r]
            out["feasible"][ok] = c["feasible"][r]
            out["area_mm2"][ok] = c["area_mm2"][r]
            out["tdp_w"][ok] = c["tdp_w"][r]
            out["samples_per_s"][:, ok] = c["samples_per_s"][:, r]
        return out

    def rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Record row of each design (-1 if not evaluated)."""
        return np.array([self._pos.get(int(f), -1) for f in self.space.flat(idx)],
                        dtype=np.int64)

    def scores_at(self, rows: np.ndarray) -> Scores:
        """The :class:`Scores` of record ``rows``."""
        c = self.columns()
        r = np.asarray(rows, dtype=np.int64)
        return Scores(area_mm2=c["area_mm2"][r], tdp_w=c["tdp_w"][r],
                      samples_per_s=c["samples_per_s"][:, r], step_time_s=c["step_time_s"][:, r],
                      memory_bytes=c["memory_bytes"][:, r], hbm_bytes=c["hbm_bytes"][r],
                      value=c["value"][r], feasible=c["feasible"][r],
                      plan_id=c["plan_id"][:, r])

    def _append(self, idx: np.ndarray, sc: Scores, searcher: str | list[str],
                persist: bool = True) -> None:
        labels = [searcher] * len(idx) if isinstance(searcher, str) else list(searcher)
        r = self._rec
        r.idx.append(idx)
        r.area.append(np.asarray(sc.area_mm2, float))
        r.tdp.append(np.asarray(sc.tdp_w, float))
        r.samples.append(np.asarray(sc.samples_per_s, float))
        r.step.append(np.asarray(sc.step_time_s, float))
        r.mem.append(np.asarray(sc.memory_bytes, float))
        r.hbm.append(np.asarray(sc.hbm_bytes, float))
        r.value.append(np.asarray(sc.value, float))
        r.feasible.append(np.asarray(sc.feasible, bool))
        r.plan.append(np.asarray(sc.plan_id, np.int64))
        r.searcher.extend(labels)
        start = self._n
        self._n += len(idx)
        self._cols = None
        v = np.where(sc.feasible, sc.value, -np.inf)
        for k in range(len(idx)):
            if v[k] > self._best:
                self._best = float(v[k])
                self.convergence.append({"evaluations": start + k + 1, "best": self._best,
                                         "searcher": labels[k]})
        if persist and self.buffer is not None and isinstance(searcher, str):
            self.buffer.add(self.make_trials(idx, sc, searcher, start))

    def columns(self) -> dict[str, np.ndarray]:
        """All records as arrays (rows in evaluation order)."""
        if self._cols is None:
            r = self._rec
            p = len(self.space.params)
            w = len(self.problem.workload_names)
            cat = (lambda xs, shape: np.concatenate(xs, axis=-1) if xs else np.zeros(shape))
            self._cols = {
                "idx": np.concatenate(r.idx) if r.idx else np.zeros((0, p), np.int64),
                "area_mm2": cat(r.area, (0,)), "tdp_w": cat(r.tdp, (0,)),
                "samples_per_s": cat(r.samples, (w, 0)), "step_time_s": cat(r.step, (w, 0)),
                "memory_bytes": cat(r.mem, (w, 0)), "hbm_bytes": cat(r.hbm, (0,)),
                "value": cat(r.value, (0,)),
                "feasible": (np.concatenate(r.feasible) if r.feasible
                             else np.zeros(0, bool)),
                "plan_id": (np.concatenate(r.plan, axis=-1) if r.plan
                            else np.zeros((w, 0), np.int64)),
                "searcher": np.array(r.searcher, dtype=object),
            }
        return self._cols

    # -- results ------------------------------------------------------------------------
    def top(self, k: int, *, rows: np.ndarray | None = None) -> np.ndarray:
        """Record rows of the ``k`` best feasible designs: value descending, then smaller
        area (an equally fast smaller chip is better), then evaluation order — so results
        are deterministic."""
        c = self.columns()
        cand = np.flatnonzero(c["feasible"]) if rows is None else np.asarray(rows)[
            c["feasible"][np.asarray(rows)]]
        if cand.size == 0:
            return cand
        order = np.lexsort((cand, c["area_mm2"][cand], -c["value"][cand]))
        return cand[order[:k]]

    def best_value(self) -> float:
        return self._best

    # -- Optuna trials -------------------------------------------------------------------
    def trial_payload(self, idx: np.ndarray, sc: Scores, k: int, searcher: str,
                      eval_index: int) -> tuple[list[float], dict[str, float], dict[str, Any]]:
        """Objective values, constraints and user attributes of design ``k`` of a batch."""
        pb = self.problem
        area = float(sc.area_mm2[k])
        tdp = float(sc.tdp_w[k])
        cons = {"area_mm2_over_budget": area - pb.area_budget_mm2,
                "tdp_w_over_budget": (tdp - pb.power_budget_w
                                      if pb.power_budget_w is not None else 0.0),
                "memory_bytes_over_hbm": float(np.max(sc.memory_bytes[:, k])
                                               - sc.hbm_bytes[k])}
        thr = float(geomean(sc.samples_per_s[:, k:k + 1])[0])
        if self.multi_objective:
            values = [float(sc.value[k]), area, tdp]
        else:
            values = [float(sc.value[k])]
        hw = self.space.fields(idx[k:k + 1])
        attrs: dict[str, Any] = {f: (v[0].item() if hasattr(v[0], "item") else v[0])
                                 for f, v in hw.items()}
        attrs.update({
            "design": self.space.label(idx[k]),
            "area_mm2": area, "tdp_w": tdp, "samples_per_s": thr,
            "feasible": bool(sc.feasible[k]), "searcher": searcher,
            "eval_index": int(eval_index),
            "constraint_area_mm2_over_budget": cons["area_mm2_over_budget"],
            "constraint_tdp_w_over_budget": cons["tdp_w_over_budget"],
            "constraint_memory_bytes_over_hbm": cons["memory_bytes_over_hbm"],
            "hbm_bytes_needed": float(np.max(sc.memory_bytes[:, k])),
        })
        for w, name in enumerate(pb.workload_names):
            attrs[f"samples_per_s[{name}]"] = float(sc.samples_per_s[w, k])
            attrs[f"step_time_s[{name}]"] = float(sc.step_time_s[w, k])
            attrs[f"memory_bytes[{name}]"] = float(sc.memory_bytes[w, k])
            attrs[f"plan_id[{name}]"] = (int(sc.plan_id[w, k]) if sc.plan_id is not None
                                         else -1)
        return values, cons, attrs

    def make_trials(self, idx: np.ndarray, sc: Scores, searcher: str,
                    start: int) -> list[TrialRecord]:
        """Finished trials of a scored batch (:class:`TrialRecord`: what a study stores,
        built for the whole batch at once; ``to_frozen()`` gives Optuna's FrozenTrial)."""
        pb = self.problem
        n = len(idx)
        if n == 0:
            return []
        hw = self.space.fields(idx)
        vals = self.space.values(idx)
        cols = {f: v.tolist() for f, v in hw.items()}
        labels = [self.space.label(idx[k]) for k in range(n)] if n <= 1 else \
            self.space.labels(idx)
        area = sc.area_mm2.astype(float)
        tdp = sc.tdp_w.astype(float)
        mem_max = sc.memory_bytes.max(axis=0).astype(float)
        thr = geomean(sc.samples_per_s)
        c_area = (area - pb.area_budget_mm2).tolist()
        c_tdp = ((tdp - pb.power_budget_w) if pb.power_budget_w is not None
                 else np.zeros(n)).tolist()
        c_mem = (mem_max - sc.hbm_bytes.astype(float)).tolist()
        per_w = []
        for w, name in enumerate(pb.workload_names):
            pid = sc.plan_id[w] if sc.plan_id is not None else np.full(n, -1)
            per_w.append((name, sc.samples_per_s[w].astype(float).tolist(),
                          sc.step_time_s[w].astype(float).tolist(),
                          sc.memory_bytes[w].astype(float).tolist(),
                          [int(x) for x in pid]))
        value = sc.value.astype(float).tolist()
        feas = [bool(x) for x in sc.feasible]
        area_l, tdp_l, thr_l, mem_l = area.tolist(), tdp.tolist(), thr.tolist(), mem_max.tolist()
        phys = {self.space.optuna_name(p.name): [
            (float(v) / 2**20 if p.name in ("sram_per_core_bytes", "global_buffer_bytes")
             else (int(v) if not p.categorical else v)) for v in vals[p.name].tolist()]
            for p in self.space.params}
        out = []
        now = _now()
        for k in range(n):
            attrs: dict[str, Any] = {f: cols[f][k] for f in cols}
            attrs.update({
                "design": labels[k], "area_mm2": area_l[k], "tdp_w": tdp_l[k],
                "samples_per_s": thr_l[k], "feasible": feas[k], "searcher": searcher,
                "eval_index": int(start + k),
                "constraint_area_mm2_over_budget": c_area[k],
                "constraint_tdp_w_over_budget": c_tdp[k],
                "constraint_memory_bytes_over_hbm": c_mem[k],
                "hbm_bytes_needed": mem_l[k]})
            for name, sp_, st_, mb_, pid_ in per_w:
                attrs[f"samples_per_s[{name}]"] = sp_[k]
                attrs[f"step_time_s[{name}]"] = st_[k]
                attrs[f"memory_bytes[{name}]"] = mb_[k]
                attrs[f"plan_id[{name}]"] = pid_[k]
            values = ([value[k], area_l[k], tdp_l[k]] if self.multi_objective else [value[k]])
            out.append(TrialRecord(
                values=values, params={key: v[k] for key, v in phys.items()},
                distributions=self.distributions, user_attrs=attrs,
                constraints={"area_mm2_over_budget": c_area[k],
                             "tdp_w_over_budget": c_tdp[k],
                             "memory_bytes_over_hbm": c_mem[k]},
                datetime_start=now, datetime_complete=now))
        return out

    def load_history(self, trials: Sequence[FrozenTrial]) -> int:
        """Rebuild records and cache from a study's finished trials (resume); returns how
        many were loaded. Trials from another design space raise ConfigError."""
        rows = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get(
            "area_mm2") is not None]
        if not rows:
            return 0
        names = self.problem.workload_names
        idx = np.array([self.space.from_optuna_params(t.params) for t in rows], dtype=np.int64)
        ua = [t.user_attrs for t in rows]
        missing = [n for n in names if f"samples_per_s[{n}]" not in ua[0]]
        if missing:
            raise ConfigError(f"the study holds trials of other workloads (no result for "
                              f"{missing[0]!r}); use another --study name")
        sc = Scores(
            area_mm2=np.array([u["area_mm2"] for u in ua], float),
            tdp_w=np.array([u["tdp_w"] for u in ua], float),
            samples_per_s=np.array([[u[f"samples_per_s[{n}]"] for u in ua] for n in names]),
            step_time_s=np.array([[u[f"step_time_s[{n}]"] for u in ua] for n in names]),
            memory_bytes=np.array([[u[f"memory_bytes[{n}]"] for u in ua] for n in names]),
            hbm_bytes=np.array([u["hbm_bytes"] for u in ua], float),
            value=np.array([t.values[0] for t in rows], float),
            feasible=np.array([bool(u["feasible"]) for u in ua]),
            plan_id=np.array([[int(u.get(f"plan_id[{n}]", -1)) for u in ua] for n in names],
                             dtype=np.int64).reshape(len(names), len(ua)),
        )
        flat = self.space.flat(idx)
        base = self._n
        self._append(idx, sc, [str(u.get("searcher", "unknown")) for u in ua], persist=False)
        for k in range(len(rows)):
            self._pos.setdefault(int(flat[k]), base + k)
        return len(rows)
