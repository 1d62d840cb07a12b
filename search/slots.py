"""Shared studies of a distributed search: the settings a worker rebuilds its objective
from, the budget as exactly ``budget`` enqueued slot trials, slot repair, progress
(:mod:`search.distributed` documents the protocol).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError
from dse.registry import Registry
from search.storage_url import _quiet, study_names

SETTINGS_ATTR = "dse:settings"
"""Study user attribute holding the JSON settings a worker rebuilds the objective from."""
BUDGET_ATTR = "dse:budget"
"""Study user attribute: the global budget (finished trials wanted); written last at
creation, so its presence means the study is ready for workers."""
DEFAULT_SLOT_WINDOW = 64
"""Waiting slots kept ahead of the workers (setting ``slot_window``); at least workers ×
``worker_batch`` for every worker to fill its batches."""
DEFAULT_WORKER_BATCH = 8
"""Slots a worker claims and evaluates together when the objective has a vectorized
``evaluate_trials`` (setting ``worker_batch``); a killed worker loses this batch."""
SLOT_ATTR = "dse:slot"
"""Trial user attribute: index of the budget slot this trial fills (copied on retries)."""
DUPLICATE_ATTR = "dse:duplicate_of"
"""Trial system attribute of a withdrawn race duplicate: the number of the live copy."""
OWNER_ATTR = "dse:worker"
"""Trial system attribute: ``host:pid`` of the process that claimed it."""
INTERRUPTED_ATTR = "dse:interrupted"
"""Trial system attribute of a trial failed because its worker was stopped (Ctrl-C,
SIGTERM): re-run without counting against the retries."""
ERROR_ATTR = "dse:error"
"""Trial system attribute of a trial its objective failed on (not retried: it would fail
again)."""
# Settings keys that may differ between the creator and a later run on the same study
# (everything else identifies the search and must match).
_MUTABLE_SETTINGS = frozenset({"budget", "heartbeat_interval_s", "grace_period_s",
                               "max_retry", "out_dir", "jobs", "top_k", "storage", "study"})


_log = logging.getLogger("dse.search.distributed")


# --------------------------------------------------------------------------- objectives


class TrialObjective(Protocol):
    """What a worker needs to run trials of a study (built from the study's settings).

    ``__call__`` evaluates one Optuna trial (it calls ``trial.suggest_*`` for every design
    parameter, so slots carrying ``fixed_params`` evaluate exactly that design) and returns
    the value(s) in the order of ``directions``.
    """

    directions: list[str]
    metric_names: list[str]

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]: ...

    def slot_params(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Fixed params of budget slots ``start..stop-1`` (``{}``: the sampler decides).
        Must be a pure function of the settings (same on every machine)."""
        ...

    def sampler(self, worker_seed: int) -> optuna.samplers.BaseSampler:
        """The sampler a worker uses for slots without fixed params."""
        ...


ObjectiveFactory = Callable[[Mapping[str, Any]], TrialObjective]
OBJECTIVE_FACTORIES: Registry[ObjectiveFactory] = Registry("objective factory", ConfigError)
"""``settings["objective_factory"]`` → factory. ``dse`` (the default) is the accelerator
search objective of :mod:`search.optuna_search`; ``synthetic`` a closed-form objective over
a small integer grid, used to measure storage overhead and to test the worker machinery
independently of the cost models."""


def build_objective(settings: Mapping[str, Any]) -> TrialObjective:
    """The objective described by a study's ``settings`` (see :data:`OBJECTIVE_FACTORIES`)."""
    name = str(settings.get("objective_factory", "dse"))
    return OBJECTIVE_FACTORIES.get(name)(settings)


def _dse_objective(settings: Mapping[str, Any]) -> TrialObjective:
    try:
        from search import optuna_search
    except ImportError as e:
        raise ConfigError(f"the accelerator objective is not available ({e})") from None
    factory = getattr(optuna_search, "objective_from_settings", None)
    if factory is None:
        raise ConfigError("search.optuna_search has no objective_from_settings(settings); "
                          "this dse version cannot run workers for accelerator studies")
    return factory(settings)  # type: ignore[no-any-return]


OBJECTIVE_FACTORIES.register("dse", _dse_objective)


class SyntheticObjective:
    """A closed-form objective on an integer grid (``x`` in ``0..nx-1``, ``y`` in
    ``0..ny-1``) whose unique maximum sits at a seed-dependent point. Settings keys:
    ``grid`` ([nx, ny], default [8, 8]), ``seed``, ``searcher`` (``random``,
    ``exhaustive`` or ``optuna``), ``budget``, ``work_s`` (seconds of sleep per
    evaluation — of one trial, or of a batch in :meth:`evaluate_trials` — to emulate an
    expensive vectorized cost model).

    >>> obj = SyntheticObjective({"grid": [4, 3], "seed": 1, "searcher": "exhaustive"})
    >>> len(obj.slot_params(0, 12)), obj.slot_params(0, 2)
    (12, [{'x': 0, 'y': 0}, {'x': 0, 'y': 1}])
    >>> max(obj.value(p["x"], p["y"]) for p in obj.slot_params(0, 12)) == obj.optimum()[2]
    True
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.metric_names = ["score"]
        self.directions = ["maximize"]
        grid = settings.get("grid", [8, 8])
        if (not isinstance(grid, (list, tuple)) or len(grid) != 2
                or not all(isinstance(g, int) and g >= 1 for g in grid)):
            raise ConfigError(f"synthetic objective: grid={grid!r} must be [nx, ny] >= 1")
        self.nx, self.ny = int(grid[0]), int(grid[1])
        self.seed = int(settings.get("seed", 0))
        self.searcher = str(settings.get("searcher", "random"))
        if self.searcher not in ("random", "exhaustive", "optuna"):
            raise ConfigError(f"synthetic objective: searcher={self.searcher!r}; valid: "
                              "exhaustive, optuna, random")
        self.work_s = float(settings.get("work_s", 0.0))
        rng = np.random.default_rng(self.seed)
        self.cx = float(rng.uniform(0, self.nx - 1))
        self.cy = float(rng.uniform(0, self.ny - 1))

    def value(self, x: int, y: int) -> float:
        """Score of grid point (x, y): a paraboloid with a small cross term (unique max)."""
        return float(100.0 - (x - self.cx) ** 2 - 2.0 * (y - self.cy) ** 2
                     - 0.1 * (x - self.cx) * (y - self.cy))

    def optimum(self) -> tuple[int, int, float]:
        """The exhaustive optimum (x, y, value)."""
        best = max(((x, y) for x in range(self.nx) for y in range(self.ny)),
                   key=lambda p: self.value(*p))
        return best[0], best[1], self.value(*best)

    def __call__(self, trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, self.nx - 1)
        y = trial.suggest_int("y", 0, self.ny - 1)
        if self.work_s > 0:
            time.sleep(self.work_s)
        return self.value(x, y)

    def evaluate_trials(self, trials: Sequence[optuna.Trial]) -> list[float]:
        """A batch at the cost of one evaluation (``work_s`` once), as a vectorized cost
        model would."""
        xy = [(t.suggest_int("x", 0, self.nx - 1), t.suggest_int("y", 0, self.ny - 1))
              for t in trials]
        if self.work_s > 0:
            time.sleep(self.work_s)
        return [self.value(x, y) for x, y in xy]

    def slot_params(self, start: int, stop: int) -> list[dict[str, Any]]:
        if self.searcher == "optuna":
            return [{} for _ in range(start, stop)]
        if self.searcher == "exhaustive":
            pts = [{"x": x, "y": y} for x in range(self.nx) for y in range(self.ny)]
            return [pts[i % len(pts)] for i in range(start, stop)]
        out = []
        for i in range(start, stop):  # one stream per slot: independent of the split
            r = np.random.default_rng([self.seed, i])
            out.append({"x": int(r.integers(self.nx)), "y": int(r.integers(self.ny))})
        return out

    def sampler(self, worker_seed: int) -> optuna.samplers.BaseSampler:
        if self.searcher == "optuna":
            return optuna.samplers.TPESampler(seed=worker_seed)
        return optuna.samplers.RandomSampler(seed=worker_seed)


OBJECTIVE_FACTORIES.register("synthetic", SyntheticObjective)


# --------------------------------------------------------------------------- studies


def _directions(objective: TrialObjective) -> list[str]:
    dirs = [str(d).lower() for d in objective.directions]
    bad = [d for d in dirs if d not in ("maximize", "minimize")]
    if bad or not dirs:
        raise ConfigError(f"objective directions {dirs!r} must be maximize/minimize")
    return dirs


def _settings_json(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(settings), allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"search settings are not JSON-serializable: {e}") from None


def workload_fingerprints(workloads: Sequence[str]) -> dict[str, str]:
    """sha256 of each workload given as a file (config.json, .onnx): workers on other
    machines check they read the same file. Zoo names are skipped."""
    out = {}
    for w in workloads:
        p = Path(w)
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_workload_files(settings: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` if a workload file of the study is missing or differs
    here (a worker on another machine needs the same file at the same path)."""
    for path, digest in dict(settings.get("workload_files", {})).items():
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"workload file {path} of this study does not exist on this "
                              f"machine ({socket.gethostname()}); copy it to the same path")
        if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            raise ConfigError(f"workload file {path} differs from the one the study was "
                              "created with (sha256 mismatch)")


def study_settings(study: optuna.Study) -> dict[str, Any]:
    """The settings stored in ``study`` (:data:`SETTINGS_ATTR`); ConfigError if absent."""
    attrs = study.user_attrs
    if SETTINGS_ATTR not in attrs:
        raise ConfigError(f"study {study.study_name!r} holds a single-process search (no "
                          f"{SETTINGS_ATTR!r} attribute), which --jobs and workers cannot "
                          "join: resume it with the command that made it, without --jobs, "
                          "or name a new study with --study")
    s = attrs[SETTINGS_ATTR]
    if not isinstance(s, dict):
        raise ConfigError(f"study {study.study_name!r}: {SETTINGS_ATTR} is not a mapping")
    return s


def _slot_of(t: FrozenTrial) -> int | None:
    i = t.user_attrs.get(SLOT_ATTR)
    return i if isinstance(i, int) and not isinstance(i, bool) else None


def study_budget(study: optuna.Study) -> int:
    """The study's global budget (0 while its creator is still writing it)."""
    b = study.user_attrs.get(BUDGET_ATTR, 0)
    return int(b) if isinstance(b, int) else 0


def _window(settings: Mapping[str, Any]) -> int:
    w = settings.get("slot_window", DEFAULT_SLOT_WINDOW)
    if not isinstance(w, int) or isinstance(w, bool) or w < 1:
        raise ConfigError(f"slot_window={w!r} must be a positive integer")
    return w


def _enqueue_slot(study: optuna.Study, objective: TrialObjective, i: int) -> None:
    params = objective.slot_params(i, i + 1)[0]
    study.enqueue_trial(dict(params), user_attrs={SLOT_ATTR: i})


STALE_FAIL_S = 120.0
"""A slot whose newest copy failed this long ago without a retry enqueued lost its retry
(the process that failed it was killed before re-enqueuing); re-enqueuing follows a
failure within milliseconds, so the repair cannot race with it."""


def _age_s(when: datetime.datetime | None) -> float:
    """Seconds since ``when`` (Optuna's storages return naive local or aware datetimes)."""
    if when is None:
        return float("inf")
    if when.tzinfo is None:
        return (datetime.datetime.now() - when).total_seconds()
    return (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()


def repair_slots(study: optuna.Study, objective: TrialObjective, budget: int, window: int,
                 trials: Sequence[FrozenTrial] | None = None,
                 stale_fail_s: float = STALE_FAIL_S, exclusive: bool = False) -> list[int]:
    """Enqueue every slot below ``budget`` that is missing and whose turn has come (it is
    in the first window, or its predecessor ``i - window`` was claimed at least once).
    Idempotent; a duplicate created by a race is withdrawn when claimed. Returns the slot
    indices enqueued.

    ``exclusive``: no other process uses the study now (a local storage that ``dse
    search`` resumes under its run lock, as ``recover_orphans(all_unowned=True)``
    assumes): every slot without a live copy is re-enqueued, whatever failed it last,
    unless its objective raised or its retries are used up."""
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    try:
        max_retry = study_settings(study).get("max_retry", 3)
    except ConfigError:
        max_retry = 3
    state_of: dict[int, list[TrialState]] = {}
    newest: dict[int, FrozenTrial] = {}
    retried: dict[int, int] = {}
    for t in trials:
        i = _slot_of(t)
        if i is None:
            continue
        state_of.setdefault(i, []).append(t.state)
        if i not in newest or t.number > newest[i].number:
            newest[i] = t
        if (t.state == TrialState.FAIL and INTERRUPTED_ATTR not in t.system_attrs
                and DUPLICATE_ATTR not in t.system_attrs):
            retried[i] = retried.get(i, 0) + 1
    live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    made = []
    for j in range(budget):
        if j in state_of:
            # a slot whose newest copy was failed by an interrupt and whose retry was never
            # enqueued (a worker of an older dse stopped in between; a current one holds
            # signals there) is missing too. Not a slot failed by the heartbeat: its retry
            # is being enqueued by whoever failed it, or its retries are used up.
            # Not a slot failed a moment ago: its retry is being enqueued by whoever failed
            # it (the heartbeat, an orphan recovery); after STALE_FAIL_S it is lost, unless
            # its retries are used up.
            last = newest[j]
            if (any(st in live for st in state_of[j]) or last.state != TrialState.FAIL
                    or ERROR_ATTR in last.system_attrs
                    or (DUPLICATE_ATTR in last.system_attrs and not exclusive)):
                continue
            if exclusive:
                if max_retry is not None and retried.get(j, 0) > int(max_retry):
                    continue
            elif INTERRUPTED_ATTR not in last.system_attrs:
                age = _age_s(last.datetime_complete)
                if age < stale_fail_s or (max_retry is not None
                                          and retried.get(j, 0) > int(max_retry)):
                    continue
            _enqueue_slot(study, objective, j)
            state_of[j].append(TrialState.WAITING)
            made.append(j)
            continue
        pred = state_of.get(j - window)
        if j < window or (pred is not None and any(s != TrialState.WAITING for s in pred)):
            _enqueue_slot(study, objective, j)
            state_of[j] = [TrialState.WAITING]
            made.append(j)
    return made


def create_or_load_study(storage: optuna.storages.BaseStorage, name: str,
                         settings: Mapping[str, Any], *, budget: int | None = None,
                         objective: TrialObjective | None = None,
                         wait_ready_s: float = 30.0) -> tuple[optuna.Study, dict[str, Any]]:
    """Create study ``name`` with ``settings`` and a global ``budget``, or load it
    (``load_if_exists`` semantics). Returns ``(study, settings)``: the stored settings,
    with the effective ``budget``.

    Slots are enqueued lazily: the first ``slot_window`` (setting, default
    :data:`DEFAULT_SLOT_WINDOW`) at creation, then whoever claims slot ``i`` enqueues slot
    ``i + window``; so the queue of waiting trials (which every worker and the TPE sampler
    re-read from the storage each trial) stays short however large the budget.

    Loading checks that the settings identify the same search (workloads, area, space …)
    and raises :class:`ConfigError` naming the first difference. A larger ``budget`` than
    stored extends the study; a smaller one is ignored (finished work is kept). Slots
    missing after a crash are re-enqueued (:func:`repair_slots`).
    """
    settings = _settings_json(settings)
    if budget is None:
        budget = settings.get("budget")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)
                               or budget < 1):
        raise ConfigError(f"budget={budget!r} must be a positive integer")
    settings["budget"] = budget
    window = _window(settings)
    obj = objective if objective is not None else build_objective(settings)
    directions = _directions(obj)
    with _quiet():
        try:
            study = optuna.create_study(storage=storage, study_name=name,
                                        directions=cast(Any, directions))
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
            created = False
        except ValueError as e:
            raise ConfigError(f"study {name!r}: {e}") from None
        if created:
            if budget is None:
                raise ConfigError(f"study {name!r} does not exist yet: give --budget")
            study.set_metric_names(list(obj.metric_names))
            study.set_user_attr(SETTINGS_ATTR, settings)
            for i in range(min(window, budget)):
                _enqueue_slot(study, obj, i)
            study.set_user_attr(BUDGET_ATTR, budget)  # last: marks the study ready
            return study, settings
        # loaded: wait for a concurrent creator to finish writing settings and slots
        # (after ``wait_ready_s`` the creator is presumed dead and the study repaired)
        deadline = time.monotonic() + wait_ready_s
        while BUDGET_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = study_settings(study)
        _check_same_search(name, stored, settings)
        want = [d.name.lower() for d in study.directions]
        if want != directions:
            raise ConfigError(f"study {name!r} has directions {want}, this search needs "
                              f"{directions}; use another --study name")
        have = max(study_budget(study), int(stored.get("budget") or 0))
        new_budget = max(have, budget or 0)
        if new_budget != study_budget(study):
            stored["budget"] = new_budget
            study.set_user_attr(SETTINGS_ATTR, stored)
            study.set_user_attr(BUDGET_ATTR, new_budget)
        repair_slots(study, obj, new_budget, _window(stored))
        return study, stored


def _check_same_search(name: str, stored: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    keys = sorted((set(stored) | set(asked)) - _MUTABLE_SETTINGS)
    for k in keys:
        if k in asked and stored.get(k) != asked.get(k):
            raise ConfigError(f"study {name!r} exists with {k}={stored.get(k)!r}, this run asks "
                              f"{k}={asked.get(k)!r}; rerun with the same settings to resume "
                              "or use another --study name")


def load_worker_study(storage: optuna.storages.BaseStorage, name: str, *, display: str = ""
                      ) -> tuple[optuna.Study, dict[str, Any]]:
    """Load study ``name`` for a worker. A missing study raises :class:`ConfigError`
    listing the studies in the storage."""
    names = study_names(storage)
    if name not in names:
        where = f" in {display}" if display else ""
        listing = ", ".join(names) if names else "none"
        raise ConfigError(f"no study {name!r}{where}; studies there: {listing}")
    with _quiet():
        study = optuna.load_study(study_name=name, storage=storage)
    return study, study_settings(study)


@dataclass
class Progress:
    """Trial counts of a study (``finished`` = COMPLETE + PRUNED, what the budget counts)."""

    budget: int
    complete: int
    pruned: int
    running: int
    waiting: int
    failed: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    def as_dict(self) -> dict[str, int]:
        return {"budget": self.budget, "finished": self.finished, "complete": self.complete,
                "pruned": self.pruned, "running": self.running, "waiting": self.waiting,
                "failed": self.failed}


def study_progress(study: optuna.Study) -> Progress:
    """Counts of the study's trials by state, and its budget."""
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    budget = study_budget(study)
    return Progress(budget=budget, complete=counts[TrialState.COMPLETE],
                    pruned=counts[TrialState.PRUNED], running=counts[TrialState.RUNNING],
                    waiting=counts[TrialState.WAITING], failed=counts[TrialState.FAIL])


