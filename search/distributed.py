"""Searches beyond one process: shared Optuna studies, workers, one global budget, resume.

A distributed search is an Optuna study in a shared storage (PostgreSQL across machines,
a journal file or SQLite on one machine) that any number of workers fill together:

* The process that **creates** the study writes everything a worker needs into the
  study's user attributes (``dse:settings``: workloads, area, power, objective, devices,
  searcher, seed, design space, budget …) and then **enqueues exactly ``budget`` slot
  trials** (``WAITING``). For the ``random`` and ``exhaustive`` searchers each slot
  carries its design (``fixed_params``), drawn from the seeded design space, so the result
  does not depend on how many workers run it; for ``optuna`` (TPE) the slot is empty and
  the sampler of whichever worker pops it proposes the design from the shared history.
* Workers only ever **pop** waiting slots (an atomic ``WAITING → RUNNING`` transition in
  every Optuna storage) and never create trials: ``N`` workers together finish exactly
  ``budget`` trials, with unique trial numbers, however they interleave. This is
  ``MaxTrialsCallback`` semantics made exact: the budget is counted in the storage, not
  per process.
* Each finished trial is written when it finishes, so a killed worker loses only the trial
  in flight. That trial goes back to the queue: on RDB storages by the heartbeat
  (``fail_stale_trials`` + :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, the
  Optuna 5 name of ``RetryFailedTrialCallback``), on one machine also as soon as the
  owning process is seen dead (each claimed trial records ``host:pid``).
* ``dse worker --storage URL --study NAME`` rebuilds the objective from the study alone.

Every message shows storage URLs through :func:`redact_url`; an unreachable storage raises
:class:`~dse.errors.StorageError` (exit 1) naming host and port, never the password.

The package is split by layer: :mod:`search.storage_url` (storage URLs: parse, redact,
open), :mod:`search.slots` (the shared study: settings, objectives, budget slots),
:mod:`search.worker` (claiming and evaluating slots), and this module (several processes
on one machine, ``--jobs N``); it re-exports the names of the first three.
"""

from __future__ import annotations

import contextlib
import copy
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dse.errors import ConfigError, DSEError
from search.slots import (
    BUDGET_ATTR,
    DEFAULT_SLOT_WINDOW,
    DEFAULT_WORKER_BATCH,
    DUPLICATE_ATTR,
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    OBJECTIVE_FACTORIES,
    OWNER_ATTR,
    SETTINGS_ATTR,
    SLOT_ATTR,
    SyntheticObjective,
    TrialObjective,
    _window,
    build_objective,
    check_workload_files,
    create_or_load_study,
    load_worker_study,
    repair_slots,
    study_budget,
    study_progress,
    study_settings,
    workload_fingerprints,
)
from search.storage_url import (
    JOURNAL_FILE,
    STORAGE_FORMS,
    STUDY_DB,
    StorageSpec,
    open_storage,
    parse_storage,
    redact_url,
    study_names,
)
from search.worker import (
    WorkerReport,
    join_study,
    recover_orphans,
    run_worker,
    sigterm_as_interrupt,
    worker_storage,
)

__all__ = [
    "BUDGET_ATTR",
    "DEFAULT_SLOT_WINDOW",
    "DEFAULT_WORKER_BATCH",
    "DUPLICATE_ATTR",
    "ERROR_ATTR",
    "INTERRUPTED_ATTR",
    "JOURNAL_FILE",
    "OBJECTIVE_FACTORIES",
    "OWNER_ATTR",
    "SETTINGS_ATTR",
    "SLOT_ATTR",
    "STORAGE_FORMS",
    "STUDY_DB",
    "StorageSpec",
    "SyntheticObjective",
    "TrialObjective",
    "WorkerFailed",
    "WorkerReport",
    "best_trial_summary",
    "build_objective",
    "check_local_writable",
    "check_workload_files",
    "create_or_load_study",
    "default_settings",
    "join_study",
    "load_worker_study",
    "open_storage",
    "parse_storage",
    "recover_orphans",
    "redact_url",
    "repair_slots",
    "run_parallel_jobs",
    "run_worker",
    "sigterm_as_interrupt",
    "study_budget",
    "study_names",
    "study_progress",
    "study_settings",
    "worker_storage",
    "workload_fingerprints",
]


def _job_main(url: str, study: str, index: int, parent: int, conn: Any) -> None:
    """Entry point of one ``--jobs`` process (spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    if hasattr(signal, "pthread_sigmask"):  # inherited blocked from the spawning parent
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        spec = parse_storage(url) if "://" in url else parse_storage(f"journal:{url}")

        def orphaned() -> bool:  # the parent was killed: stop after the trial in flight
            return os.getppid() != parent

        with sigterm_as_interrupt():
            report, _, _ = join_study(spec, study, should_stop=orphaned)
        conn.send(("ok", report.as_dict()))
    except DSEError as e:
        conn.send(("error", e.exit_code, " ".join(str(e).split())))
    except KeyboardInterrupt:
        conn.send(("error", 130, "interrupted"))
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        msg = f"{e.__class__.__name__}: {' '.join(str(e).split())[:200]}"
        conn.send(("error", 1, f"internal error in worker {index}: {msg}"))
    finally:
        conn.close()


class WorkerFailed(DSEError):
    """A ``--jobs`` worker process ended with an error (its exit code is kept)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_settings(**kw: Any) -> dict[str, Any]:
    """Distributed-search settings with the defaults filled in (heartbeat 10 s, grace 60 s,
    3 retries per slot)."""
    s = {"heartbeat_interval_s": 10, "grace_period_s": 60, "max_retry": 3}
    s.update(kw)
    return s


def run_parallel_jobs(settings: Mapping[str, Any], storage: str | StorageSpec | None,
                      study: str | None, jobs: int, budget: int | None, *,
                      run_dir: str | os.PathLike[str] | None = None,
                      start_timeout_s: float = 300.0) -> dict[str, Any]:
    """Run ``jobs`` worker processes on this machine against one study, until the global
    ``budget`` of finished trials is reached; returns counts and timing.

    ``storage`` None means ``RUN_DIR/study.log`` (a :class:`optuna.storages.JournalStorage`
    on a :class:`~optuna.storages.journal.JournalFileBackend`); ``study`` None means
    ``"dse"``. Creating the study writes ``settings`` and ``budget`` slots; an existing
    study resumes (finished trials are kept, dead owners' trials re-enqueued). Each process
    is a worker as in ``dse worker`` (``jobs == 1``: this process is the worker). Ctrl-C
    stops every worker after re-enqueuing its trial in flight and re-raises
    KeyboardInterrupt.

    Returns ``{"study", "storage" (redacted), "jobs", "budget", "finished", "complete",
    "pruned", "failed", "running", "waiting", "trials_this_run", "wall_s", "workers"}``.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--jobs={jobs!r} must be a positive integer")
    if storage is None:
        if run_dir is None:
            raise ConfigError("run_parallel_jobs: give a storage or a run directory")
        storage = f"journal:{Path(run_dir) / JOURNAL_FILE}"
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    name = study or "dse"
    full = default_settings(**dict(settings))
    if spec.kind == "journal" or spec.backend == "sqlite":
        check_local_writable(Path(spec.path).parent)
    t0 = time.perf_counter()
    st = open_storage(spec)
    study_obj, stored = create_or_load_study(st, name, full, budget=budget)
    before = study_progress(study_obj).finished
    recover_orphans(study_obj, max_retry=stored.get("max_retry", 3),
                    all_unowned=not spec.multi_host)
    if not spec.multi_host:  # a local storage resumed under the run lock: every slot
        # that an earlier, stopped run left without a live copy is run (same assumption
        # as all_unowned above)
        repair_slots(study_obj, build_objective(stored), study_budget(study_obj),
                     _window(stored), exclusive=True)
    ctx = multiprocessing.get_context("spawn")
    reports: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    url = spec.url if spec.kind == "rdb" else spec.path
    while jobs == 1:  # one worker: run it in this process (no start-up of a child)
        with sigterm_as_interrupt():
            report, _, _ = join_study(spec, name)
        reports.append(report.as_dict())
        break
    while jobs > 1:
        prog = study_progress(study_obj)
        if prog.waiting == 0 and prog.running == 0:
            break
        n = max(1, min(jobs, prog.waiting + prog.running))
        procs = []
        try:
            with _sigint_ignored():  # children start with Ctrl-C ignored (no traceback
                for i in range(n):     # from their imports); the parent stops them
                    parent_conn, child_conn = ctx.Pipe(duplex=False)
                    p = ctx.Process(target=_job_main,
                                    args=(url, name, i, os.getpid(), child_conn), daemon=False)
                    p.start()
                    child_conn.close()
                    procs.append((p, parent_conn))
            for p, conn in procs:
                p.join()
                if conn.poll():
                    msg = conn.recv()
                    if msg[0] == "ok":
                        reports.append(msg[1])
                    else:
                        errors.append((int(msg[1]), str(msg[2])))
                elif p.exitcode != 0:
                    errors.append((1, f"worker process {p.pid} died (exit code {p.exitcode})"))
        except KeyboardInterrupt:
            _stop_children(procs, spec)
            recover_orphans(study_obj, max_retry=None, all_unowned=not spec.multi_host)
            raise
        recover_orphans(study_obj, max_retry=stored.get("max_retry", 3),
                        all_unowned=not spec.multi_host)
        if errors:
            code, msg = errors[0]
            if code == 130:
                raise KeyboardInterrupt()
            raise WorkerFailed(msg, code)
        after = study_progress(study_obj)
        if after.waiting and after.finished == prog.finished:
            raise WorkerFailed(f"workers made no progress on study {name!r} in "
                               f"{spec.display} ({after.waiting} slots waiting)")
    prog = study_progress(study_obj)
    return {"study": name, "storage": spec.display, "jobs": jobs, **prog.as_dict(),
            "trials_this_run": prog.finished - before, "wall_s": time.perf_counter() - t0,
            "workers": reports}


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored *and blocked* while the block runs: processes spawned inside inherit
    SIG_IGN, and Python then installs no KeyboardInterrupt handler in them (a Ctrl-C
    during their imports would print a traceback). Blocked, a Ctrl-C that arrives
    meanwhile stays pending in this process (Linux never discards a blocked signal) and
    is delivered, as KeyboardInterrupt, when the block ends: it is never lost."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is not None:
        mask(signal.SIG_BLOCK, {signal.SIGINT})
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if mask is not None:
            mask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending Ctrl-C arrives here


def _stop_children(procs: Sequence[tuple[Any, Any]], spec: StorageSpec) -> None:
    for p, _ in procs:
        if p.is_alive():
            with contextlib.suppress(Exception):
                p.terminate()  # SIGTERM: the worker re-enqueues its trial and exits
    for p, _ in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
            p.join()


def check_local_writable(path: Path) -> None:
    """ConfigError (exit 2) if the directory ``path`` cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"directory {path} is not writable")


def best_trial_summary(study: optuna.Study) -> dict[str, Any] | None:
    """Number, params and values of the best finished trial (first objective for
    multi-objective studies); None when nothing finished."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = [t for t in trials if t.values and all(math.isfinite(v) for v in t.values)]
    if not trials:
        return None
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    best = max(trials, key=lambda t: (sign * t.values[0], -t.number))
    return {"number": best.number, "params": dict(best.params), "values": list(best.values),
            "user_attrs": copy.deepcopy(dict(best.user_attrs))}

