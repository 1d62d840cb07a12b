"""The worker of a distributed search: claims waiting slots of a shared study, evaluates
them (in batches when the objective is vectorized), heartbeats, retries what dead workers
left running (:mod:`search.distributed` documents the protocol).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, StorageError
from dse.signals import signals_held, sigterm_raises
from search.slots import (
    DEFAULT_SLOT_WINDOW,
    DEFAULT_WORKER_BATCH,
    DUPLICATE_ATTR,
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    OWNER_ATTR,
    TrialObjective,
    _enqueue_slot,
    _slot_of,
    _window,
    build_objective,
    check_workload_files,
    load_worker_study,
    repair_slots,
    study_budget,
    study_progress,
)
from search.storage_url import (
    RetryTrial,
    StorageSpec,
    _quiet,
    open_storage,
    parse_storage,
    storage_fault,
)

# --------------------------------------------------------------------------- workers


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _requeue(study: optuna.Study, trial: FrozenTrial, max_retry: int | None, *,
             interrupted: bool = False) -> bool:
    """Put a failed trial's slot back in the queue (same params, ``retry_history``);
    an interruption does not count against ``max_retry`` (:class:`RetryTrial`)."""
    return RetryTrial(max_retry, interrupted=interrupted)(study, trial)


CLAIMANT_ATTR = "dse:claimant"
"""Trial system attribute: ``host:pid`` of the process claiming it, written before the
claim (the owner, :data:`OWNER_ATTR`, after it)."""

_signals_held = signals_held  # the name the tests and older callers use


def recover_orphans(study: optuna.Study, *, max_retry: int | None = 3,
                    all_unowned: bool = False) -> list[int]:
    """Fail and re-enqueue RUNNING trials whose owner is a dead process on this host
    (with ``all_unowned`` also those with no recorded owner, for a storage that only
    processes that are gone have used). Trials owned by other hosts are left to the
    heartbeat. Returns the numbers of the trials failed."""
    host = socket.gethostname()
    storage = study._storage
    failed = []
    with _quiet():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(OWNER_ATTR, t.system_attrs.get(CLAIMANT_ATTR))
            dead = False
            if isinstance(owner, str) and owner.rpartition(":")[0] == host:
                pid = owner.rpartition(":")[2]
                dead = pid.isdigit() and not _pid_alive(int(pid))
            elif owner is None:
                dead = all_unowned
            if not dead:
                continue
            with _signals_held():  # failed and re-enqueued, or neither
                try:
                    if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
                failed.append(t.number)
                _requeue(study, storage.get_trial(t._trial_id), max_retry)
    return failed


def _heartbeat_enabled(study: optuna.Study) -> bool:
    st: Any = study._storage  # RDB storages (and their cache wrapper) implement heartbeats
    return bool(hasattr(st, "get_heartbeat_interval") and st.get_heartbeat_interval())


class _Heartbeat:
    """Records the heartbeat of the running trials of a batch every interval, in a
    thread."""

    def __init__(self, study: optuna.Study, trial_ids: Sequence[int]) -> None:
        self._storage: Any = study._storage
        self._trial_ids = list(trial_ids)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if _heartbeat_enabled(study):
            st: Any = study._storage
            interval = float(st.get_heartbeat_interval())
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
            self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for tid in self._trial_ids:
                with contextlib.suppress(Exception):  # a missed beat is retried next time
                    self._storage.record_heartbeat(tid)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _SlotQueue:
    """A worker's view of the budget slots.

    The waiting slots are read from the storage only when the known ones are used up
    (a read costs every unfinished trial), and claimed one at a time with the storage's
    atomic ``WAITING → RUNNING`` transition; slots another worker took meanwhile are
    skipped.

    The same read records every trial's slot (number and state) and the budget: enough to
    :meth:`admit` a claimed slot without reading the study again. That snapshot is safe:
    a live copy of the slot with a lower number existed when this trial did (numbers are
    assigned at creation), so it is in the snapshot; and successors (slot ``i + window``)
    are created only by the claimer of slot ``i`` (races with a repair make duplicates,
    which :meth:`admit` withdraws)."""

    def __init__(self, study: optuna.Study, objective: TrialObjective, offset: int,
                 window: int) -> None:
        self._study = study
        self._objective = objective
        self._rng = random.Random(offset)
        self._window = window
        self._waiting: list[FrozenTrial] = []
        self._slots: dict[int, list[tuple[int, TrialState]]] = {}
        self._budget = 0

    def _refill(self) -> None:
        trials = self._study.get_trials(deepcopy=False)
        self._budget = study_budget(self._study)
        slots: dict[int, list[tuple[int, TrialState]]] = {}
        for t in trials:
            i = _slot_of(t)
            if i is not None:
                slots.setdefault(i, []).append((t.number, t.state))
        self._slots = slots
        self._waiting = [t for t in trials if t.state == TrialState.WAITING]

    def claim(self) -> FrozenTrial | None:
        """Claim one waiting slot (its trial as read, still ``WAITING`` in the object),
        or None when none is waiting. Picks at random among the known waiting slots (so
        concurrent workers seldom race for the same one) and re-reads the list after a
        slot turned out to be taken."""
        storage: Any = self._study._storage
        hb = _heartbeat_enabled(self._study)
        if not self._waiting:
            self._refill()
        misses = 0
        while self._waiting:
            t = self._waiting.pop(self._rng.randrange(len(self._waiting)))
            try:
                if hb:  # beat first: a claimed trial always has a heartbeat row
                    storage.record_heartbeat(t._trial_id)
                with _signals_held():  # a stopped worker leaves no RUNNING trial unowned
                    # who is claiming is written first: a worker SIGKILLed between the
                    # claim and its owner left a RUNNING trial that no one recovered; now
                    # recover_orphans reads the claimant of an ownerless trial (a racing
                    # claimant's token never overrides the winner's owner)
                    storage.set_trial_system_attr(t._trial_id, CLAIMANT_ATTR, _worker_name())
                    if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                        storage.set_trial_system_attr(t._trial_id, OWNER_ATTR, _worker_name())
                        return t
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
            misses += 1
            if misses <= 3 or not self._waiting:  # the list is stale: read it again
                self._refill()
        return None

    def admit(self, t: FrozenTrial) -> bool:
        """After claiming ``t``: withdraw it (FAIL, ``dse:duplicate_of``) if a live copy of
        its slot with a lower number exists (a race duplicate); else enqueue the slot one
        window ahead if it is within the budget and not known. Returns whether to run."""
        i = _slot_of(t)
        if i is None:  # not a budget slot (e.g. enqueued by hand): just run it
            return True
        storage = self._study._storage
        live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        for number, state in self._slots.get(i, []):
            if number < t.number and state in live:
                storage.set_trial_system_attr(t._trial_id, DUPLICATE_ATTR, number)
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                return False
        j = i + self._window
        if j < self._budget and j not in self._slots:
            _enqueue_slot(self._study, self._objective, j)
            self._slots[j] = [(-1, TrialState.WAITING)]
        return True


@dataclass
class WorkerReport:
    """What one worker did."""

    worker: str
    trials_run: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    duplicates: int = 0
    """Race duplicates of a slot this worker claimed and withdrew."""
    lost: int = 0
    """Trials another process failed (and re-enqueued) while this worker ran them."""
    wall_s: float = 0.0
    numbers: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "trials_run": self.trials_run,
                "complete": self.complete, "pruned": self.pruned, "failed": self.failed,
                "duplicates": self.duplicates, "lost": self.lost, "wall_s": self.wall_s}


class _Stop(BaseException):
    """Raised in a worker by SIGTERM: finish like Ctrl-C (re-queue the trial in flight)."""


def run_worker(study: optuna.Study, objective: TrialObjective, *, max_retry: int | None = 3,
               poll_s: float = 1.0, max_trials: int | None = None,
               should_stop: Callable[[], bool] | None = None,
               worker_seed: int | None = None, window: int = DEFAULT_SLOT_WINDOW,
               batch: int | None = None,
               on_trial: Callable[[FrozenTrial], None] | None = None) -> WorkerReport:
    """Pop and run the study's waiting slots until none is left (or ``max_trials``).

    Slots are claimed ``batch`` at a time (default :data:`DEFAULT_WORKER_BATCH` when the
    objective has a vectorized ``evaluate_trials(trials) -> list of values (None:
    pruned)``, else 1) and each trial is written to the storage as soon as its batch is
    evaluated. While other workers still run trials on a heartbeat storage, the worker
    waits (``poll_s``) and runs whatever :func:`optuna.storages.fail_stale_trials`
    re-enqueues, so a dead worker's batch is finished by a live one. On Ctrl-C/SIGTERM
    the batch in flight is failed, re-enqueued and the interrupt re-raised. An exception
    of the objective fails the batch (not re-enqueued: it would fail again) and
    propagates.
    """
    name = _worker_name()
    report = WorkerReport(worker=name)
    t0 = time.perf_counter()
    seed = worker_seed if worker_seed is not None else int.from_bytes(
        hashlib.sha256(name.encode()).digest()[:4], "little")
    if batch is None:
        batch = DEFAULT_WORKER_BATCH if hasattr(objective, "evaluate_trials") else 1
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(f"worker_batch={batch!r} must be a positive integer")
    study.sampler = objective.sampler(seed)
    queue = _SlotQueue(study, objective, seed, window)
    hb = _heartbeat_enabled(study)
    with _quiet():
        recover_orphans(study, max_retry=max_retry)
        while max_trials is None or report.trials_run < max_trials:
            if should_stop is not None and should_stop():
                break
            want = batch if max_trials is None else min(batch, max_trials - report.trials_run)
            tids: list[int] = []
            while len(tids) < want:
                claimed = queue.claim()
                if claimed is None:
                    break
                if queue.admit(claimed):
                    tids.append(claimed._trial_id)
                else:
                    report.duplicates += 1
            if tids:
                _run_batch(study, objective, tids, report, max_retry, on_trial)
                continue
            # nothing waiting: fail stale trials, re-enqueue dead owners' and missing
            # slots; wait while others run (they may die), stop when all is done
            if hb:
                optuna.storages.fail_stale_trials(study)
            recover_orphans(study, max_retry=max_retry)
            repair_slots(study, objective, study_budget(study), window)
            prog = study_progress(study)
            if prog.waiting:
                continue
            if prog.running and hb:
                time.sleep(poll_s)
                continue
            break
    report.wall_s = time.perf_counter() - t0
    return report


def _interrupted(e: BaseException) -> bool:
    """Whether ``e`` is Ctrl-C/SIGTERM, or was raised while one was being handled."""
    seen: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and len(seen) < 16 and all(x is not s for s in seen):
        if isinstance(x, (KeyboardInterrupt, _Stop)):
            return True
        seen.append(x)
        x = x.__context__ or x.__cause__
    return False


def _ours(trial: optuna.Trial) -> bool:
    """Whether ``trial`` is still RUNNING (not failed meanwhile by another process)."""
    return trial.storage.get_trial(trial._trial_id).state == TrialState.RUNNING


def _evaluate(objective: TrialObjective, trials: list[optuna.Trial], report: WorkerReport
              ) -> list[tuple[optuna.Trial, Any]]:
    """(trial, values or None for pruned) of each trial: one ``objective.evaluate_trials``
    call when the objective has it (vectorized), else one call per trial. A trial that
    another process failed meanwhile (an ownerless claim taken for an orphan, a missed
    heartbeat: it re-enqueued the slot, whose copy runs it again) is dropped
    (``report.lost``) instead of failing the batch with "Trial#N has already finished"."""
    batch_fn = getattr(objective, "evaluate_trials", None)
    pending = list(trials)
    with warnings.catch_warnings():
        for _attempt in range(len(trials) + 1):
            try:
                if batch_fn is not None and len(pending) > 1:
                    results = list(batch_fn(pending))
                    if len(results) != len(pending):
                        raise ConfigError(f"evaluate_trials returned {len(results)} results "
                                          f"for {len(pending)} trials")
                    return list(zip(pending, results))
                out: list[tuple[optuna.Trial, Any]] = []
                for trial in pending:
                    try:
                        out.append((trial, objective(trial)))
                    except optuna.TrialPruned:
                        out.append((trial, None))
                    except optuna.exceptions.UpdateFinishedTrialError:
                        if _ours(trial):
                            raise
                        report.lost += 1
                return out
            except optuna.exceptions.UpdateFinishedTrialError:
                ours = [t for t in pending if _ours(t)]
                if len(ours) == len(pending):
                    raise
                report.lost += len(pending) - len(ours)
                pending = ours
                # the batch wrote some trials' constraints before it stopped: evaluating
                # them again sets the same values, which Optuna warns about
                warnings.simplefilter("ignore", UserWarning)
    raise AssertionError("unreachable")  # pragma: no cover


def _run_batch(study: optuna.Study, objective: TrialObjective, tids: Sequence[int],
               report: WorkerReport, max_retry: int | None,
               on_trial: Callable[[FrozenTrial], None] | None) -> None:
    """Run the claimed trials ``tids``: one ``objective.evaluate_trials`` call when the
    objective has it (vectorized), else one call per trial; tell each result."""
    storage = study._storage
    beat = _Heartbeat(study, tids)
    trials: list[optuna.Trial] = []
    told: set[int] = set()
    finished: list[FrozenTrial] = []
    try:
        try:
            trials = [optuna.trial.Trial(study, tid) for tid in tids]
            pairs = _evaluate(objective, trials, report)
            told.update(t._trial_id for t in trials if t not in {p[0] for p in pairs})
            for trial, values in pairs:
                with _signals_held():
                    try:
                        if values is None:
                            ft = study.tell(trial, state=TrialState.PRUNED)
                        else:
                            ft = study.tell(trial, values)
                    except optuna.exceptions.UpdateFinishedTrialError:
                        # another process failed it meanwhile (an ownerless claim taken
                        # for an orphan, a missed heartbeat) and re-enqueued its slot:
                        # the copy runs it again; this result is dropped
                        told.add(trial._trial_id)
                        report.lost += 1
                        continue
                    told.add(trial._trial_id)
                    if ft.state == TrialState.FAIL:  # tell() turned a NaN/invalid value
                        # into FAIL: give the slot another try
                        _requeue(study, storage.get_trial(ft._trial_id), max_retry)
                finished.append(ft)
        except BaseException as e:
            if _interrupted(e) or storage_fault(e, "") is not None:
                # stopped (or an error raised while stopping, e.g. by a storage call the
                # signal cut short), or the storage failed: the batch in flight goes back
                # to the queue, not counted against the retries
                with _signals_held():
                    for tid in tids:
                        if tid in told:
                            continue
                        with contextlib.suppress(Exception):
                            storage.set_trial_system_attr(tid, INTERRUPTED_ATTR, True)
                            storage.set_trial_state_values(tid, state=TrialState.FAIL)
                            _requeue(study, storage.get_trial(tid), None, interrupted=True)
                raise
            for tid in tids:  # the objective raised: it would fail again, not retried
                if tid in told:
                    continue
                with contextlib.suppress(Exception):
                    storage.set_trial_system_attr(tid, ERROR_ATTR, True)
                    storage.set_trial_state_values(tid, state=TrialState.FAIL)
                report.failed += 1
            raise
    finally:
        beat.stop()
    for ft in finished:
        report.trials_run += 1
        report.numbers.append(ft.number)
        if ft.state == TrialState.COMPLETE:
            report.complete += 1
        elif ft.state == TrialState.PRUNED:
            report.pruned += 1
        else:  # tell() turned a NaN/invalid value into FAIL (re-enqueued above)
            report.failed += 1
        if on_trial is not None:
            on_trial(ft)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, turn SIGTERM into a clean stop (the trial in flight is
    re-enqueued) for the duration of the block."""
    try:
        with sigterm_raises(_Stop):
            yield
    except _Stop:
        raise KeyboardInterrupt() from None


def worker_storage(spec: StorageSpec, settings: Mapping[str, Any]) -> optuna.storages.BaseStorage:
    """Open ``spec`` with the heartbeat settings the study was created with."""
    if spec.kind != "rdb":
        return open_storage(spec)
    return open_storage(spec, heartbeat_interval_s=int(settings.get("heartbeat_interval_s", 10)),
                        grace_period_s=int(settings.get("grace_period_s", 60)),
                        max_retry=settings.get("max_retry", 3))


def join_study(storage: StorageSpec | str, study: str, **worker_kwargs: Any
               ) -> tuple[WorkerReport, optuna.Study, dict[str, Any]]:
    """Everything ``dse worker`` does: load the study, rebuild its objective from the
    stored settings, run trials until the budget is used up."""
    spec = parse_storage(storage) if isinstance(storage, str) else storage
    plain = open_storage(spec)
    st, settings = load_worker_study(plain, study, display=spec.display)
    check_workload_files(settings)
    objective = build_objective(settings)
    storage_obj = worker_storage(spec, settings)
    with _quiet():
        st = optuna.load_study(study_name=study, storage=storage_obj)
    saved = [0]
    user_on_trial = worker_kwargs.pop("on_trial", None)

    def counted(ft: FrozenTrial) -> None:
        saved[0] += 1
        if user_on_trial is not None:
            user_on_trial(ft)

    try:
        report = run_worker(st, objective, max_retry=settings.get("max_retry", 3),
                            window=_window(settings), batch=settings.get("worker_batch"),
                            on_trial=counted, **worker_kwargs)
    except Exception as e:  # disk full, read-only, server gone: one line, what is safe
        fault = storage_fault(e, spec.display)
        if fault is None:
            raise
        raise StorageError(f"{fault}; at least {saved[0]} trials this process finished are "
                           "saved (each is written when it finishes, the batch in flight is "
                           "not); fix the storage and rerun the same command to resume"
                           ) from None
    return report, st, settings


