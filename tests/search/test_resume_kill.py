"""Killed searches lose at most the batch in flight and resume where they stopped.

* ``dse search`` (one process, in-memory hot loop persisted in batches to SQLite) is
  SIGKILLed after a batch reached the storage, then rerun with the same
  ``--storage``/``--study``: every trial persisted before the kill is still there,
  unchanged, and the total reaches the budget without a design evaluated twice.
* ``dse search --jobs 2`` (workers on a journal file) is SIGKILLed as a whole process
  group, then rerun: the trials the dead workers held are failed and re-run, nothing
  finished is lost, every budget slot is finished exactly once.
* Ctrl-C (SIGINT to the process group) stops ``dse search --jobs 2`` with exit 130 and
  one line on stderr, leaving no trial RUNNING.
* A ``dse worker`` SIGKILLed mid-trial on SQLite: the next worker on the same host sees
  the owner is dead and re-runs the trial at once (no heartbeat wait).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from search import distributed as dist

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


_STORAGES: dict[str, optuna.storages.BaseStorage] = {}


def _complete(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the study, read with a plain Optuna storage (no pragma changes;
    one storage object per URL, so polling is cheap)."""
    spec = dist.parse_storage(storage)
    if spec.kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        st: optuna.storages.BaseStorage = JournalStorage(JournalFileBackend(spec.path))
    else:
        if spec.url not in _STORAGES:
            _STORAGES[spec.url] = optuna.storages.RDBStorage(spec.url)
        st = _STORAGES[spec.url]
    try:
        s = optuna.load_study(study_name=study, storage=st)
    except KeyError:
        return []
    return s.get_trials(deepcopy=False)


def _sqlite_trial_count(path: Path) -> int:
    """Trials in an Optuna SQLite file, by one cheap query (polling while it is written)."""
    import sqlite3

    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        con.close()


def _states(trials: list[optuna.trial.FrozenTrial]) -> Counter:
    return Counter(t.state for t in trials)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 300.0) -> None:  # type: ignore
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the search ended (rc {proc.returncode}) before the kill: {err[-500:]}")
        time.sleep(0.05)
    pytest.fail("timed out waiting for trials to be persisted")


def _snapshot(trials: list[optuna.trial.FrozenTrial]) -> dict[int, tuple]:
    return {t.number: (dict(t.params), list(t.values or [])) for t in trials
            if t.state == TrialState.COMPLETE}


def test_dse_search_sigkill_then_resume_keeps_every_persisted_trial(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.db"
    budget = 5000  # batches of 512 designs reach the storage as the search goes
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "resnet50", "--area", "200",
           "--searcher", "random", "--budget", str(budget), "--seed", "1", "--storage", db,
           "--study", "s", "--out", str(tmp_path / "run"), "--no-report", "--json"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _sqlite_trial_count(tmp_path / "x.db") > 0, p)
    p.send_signal(signal.SIGKILL)  # at once: the hot loop runs thousands of designs a second
    p.communicate()
    assert p.returncode == -signal.SIGKILL  # killed mid-run, not finished
    before = _snapshot(_complete(db, "s"))
    assert 0 < len(before) < budget

    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
                       check=False)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    trials = _complete(db, "s")
    after = _snapshot(trials)
    assert all(after.get(n) == v for n, v in before.items())  # nothing persisted was lost
    assert len(after) == budget == len(trials)                 # the budget, no extra trial
    designs = {json.dumps(p, sort_keys=True) for p, _ in after.values()}
    assert len(designs) == budget                              # no design evaluated twice
    assert summary["evaluations_resumed"] == len(before)
    assert summary["evaluations"] == budget


def _jobs_cmd(storage: str, out: Path, budget: int) -> list[str]:
    return [sys.executable, "-m", "dse.cli", "search", "--workload", "resnet50", "--area",
            "200", "--searcher", "random", "--budget", str(budget), "--seed", "2",
            "--storage", storage, "--study", "j", "--jobs", "2", "--out", str(out),
            "--no-report", "--json"]


def _slots_once(trials: list[optuna.trial.FrozenTrial], budget: int) -> None:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    slots = Counter(t.user_attrs["dse:slot"] for t in done)
    missing = sorted(set(range(budget)) - set(slots))
    copies = [(t.number, t.state.name, sorted(k for k in t.system_attrs if k.startswith("dse")),
               t.system_attrs.get("retry_history"), str(t.datetime_complete))
              for t in trials if t.user_attrs.get("dse:slot") in missing[:3]]
    assert sorted(slots) == list(range(budget)) and set(slots.values()) == {1}, (
        f"slots missing {missing}, their copies {copies}")
    assert len({t.number for t in done}) == len(done) == budget


def test_jobs_sigkill_whole_group_then_resume(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path}/study.log"
    # large enough that the search cannot finish between the first trials reaching the
    # journal and the signal (40 sometimes did: one batch completes the rest at once)
    budget = 200
    cmd = _jobs_cmd(storage, tmp_path / "run", budget)
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: _states(_complete(storage, "j"))[TrialState.COMPLETE] >= 4, p)
    os.killpg(p.pid, signal.SIGKILL)  # the search and its workers, at once
    p.communicate()
    time.sleep(0.5)
    trials = _complete(storage, "j")
    before = _snapshot(trials)
    assert 4 <= len(before) < budget

    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
                       check=False)
    assert r.returncode == 0, r.stderr
    trials = _complete(storage, "j")
    after = _snapshot(trials)
    assert all(after.get(n) == v for n, v in before.items())
    _slots_once(trials, budget)
    states = _states(trials)
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0
    # every failed trial is a worker's trial in flight at the kill, re-run by the resume,
    # or a race duplicate of a slot (two copies enqueued at once) withdrawn in favour of
    # the lower-numbered copy, which completed that slot
    by_number = {t.number: t for t in trials}
    for f in (t for t in trials if t.state == TrialState.FAIL):
        if dist.DUPLICATE_ATTR in f.system_attrs:
            kept = by_number[f.system_attrs[dist.DUPLICATE_ATTR]]
            assert kept.number < f.number and kept.state == TrialState.COMPLETE
            assert kept.user_attrs[dist.SLOT_ATTR] == f.user_attrs[dist.SLOT_ATTR]
            continue
        assert any(t.system_attrs.get("failed_trial") == f.number for t in trials
                   if t.state == TrialState.COMPLETE)
    summary = json.loads(r.stdout)
    assert summary["evaluations"] == budget


def test_jobs_ctrl_c_exits_130_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path}/study.log"
    # large enough that the search cannot finish between the first trials reaching the
    # journal and the signal (40 sometimes did: one batch completes the rest at once)
    budget = 200
    cmd = _jobs_cmd(storage, tmp_path / "run", budget)
    # SIGINT at its default in the child: a shell that starts the test run in the
    # background (`pytest &` without job control) leaves SIGINT ignored, and Python then
    # never installs its KeyboardInterrupt handler in the processes it starts
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: _states(_complete(storage, "j"))[TrialState.COMPLETE] >= 3, p)
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert json.loads(out)["error"]["exit_code"] == 130  # --json: the error object
    assert err.strip().splitlines()[-1] == "dse: interrupted"
    assert "Traceback" not in err
    trials = _complete(storage, "j")
    assert _states(trials)[TrialState.RUNNING] == 0
    before = _snapshot(trials)
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
                       check=False)
    assert r.returncode == 0, r.stderr
    trials = _complete(storage, "j")
    assert all(_snapshot(trials).get(n) == v for n, v in before.items())
    _slots_once(trials, budget)


def test_worker_sigkill_is_rerun_at_once_on_the_same_host(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", work_s=1.0, worker_batch=1,
                                     heartbeat_interval_s=60, grace_period_s=600)
    dist.create_or_load_study(dist.open_storage(url), "w", settings, budget=16)
    cmd = [sys.executable, "-m", "dse.cli", "worker", "--storage", url, "--study", "w",
           "--json"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    watch = optuna.load_study(study_name="w", storage=optuna.storages.RDBStorage(url))

    def early_in_a_trial() -> bool:  # kill within the first half of a 1 s evaluation
        ts = watch.get_trials(deepcopy=False)
        run = [t for t in ts if t.state == TrialState.RUNNING]
        return (sum(t.state == TrialState.COMPLETE for t in ts) >= 2 and len(run) == 1
                and (datetime.datetime.now() - run[0].datetime_start).total_seconds() < 0.5)

    _wait_for(early_in_a_trial, p)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    trials = _complete(url, "w")
    (held,) = [t for t in trials if t.state == TrialState.RUNNING]
    before = _snapshot(trials)

    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    # no wait for the 600 s heartbeat grace: the owner pid is dead on this host
    assert time.monotonic() - t0 < 120
    trials = _complete(url, "w")
    assert all(_snapshot(trials).get(n) == v for n, v in before.items())
    _slots_once(trials, 16)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [held.number]
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == held.number]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["dse:slot"] == held.user_attrs["dse:slot"]
    assert retry.params == held.system_attrs["fixed_params"]
    best = json.loads(r.stdout)["best"]
    x, y, v = dist.SyntheticObjective(settings).optimum()
    assert best["params"] == {"x": x, "y": y} and best["values"] == [pytest.approx(v)]


def test_budget_slots_are_exact_after_a_dead_creator_and_racing_duplicates(
        tmp_path: Path) -> None:
    """A creator that died after enqueuing part of its window is repaired by the next
    process; slots created twice by a race are withdrawn when claimed; the budget is met
    exactly."""
    storage = dist.open_storage(f"journal:{tmp_path}/r.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[5, 5], seed=1,
                                     searcher="exhaustive", slot_window=4, budget=25)
    obj = dist.build_objective(settings)
    # the dead creator: settings and slots 0, 1 written, slot 1 twice, no budget marker
    study = optuna.create_study(storage=storage, study_name="r", direction="maximize")
    study.set_user_attr(dist.SETTINGS_ATTR, settings)
    for i in (0, 1, 1):
        study.enqueue_trial(obj.slot_params(i, i + 1)[0], user_attrs={dist.SLOT_ATTR: i})
    study, _ = dist.create_or_load_study(storage, "r", settings, budget=25, wait_ready_s=0.2)
    assert dist.study_budget(study) == 25
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[dist.SLOT_ATTR] for t in waiting) == [0, 1, 1, 2, 3]
    # another racing repair duplicates slot 2
    study.enqueue_trial(obj.slot_params(2, 3)[0], user_attrs={dist.SLOT_ATTR: 2})
    first = dist.run_worker(study, obj, window=4, max_trials=5)
    assert dist.repair_slots(study, obj, 25, 4) == []  # nothing is missing: idempotent
    rest = dist.run_worker(study, obj, window=4)
    trials = study.get_trials(deepcopy=False)
    _slots_once(trials, 25)
    assert first.duplicates + rest.duplicates == 2
    dups = [t for t in trials if dist.DUPLICATE_ATTR in t.system_attrs]
    assert len(dups) == 2 and all(t.state == TrialState.FAIL for t in dups)
    # the whole grid once: the exhaustive optimum
    best = dist.best_trial_summary(study)
    x, y, _ = obj.optimum()
    assert best is not None and best["params"] == {"x": x, "y": y}


def test_budget_extension_and_settings_mismatch(tmp_path: Path) -> None:
    storage = dist.open_storage(f"sqlite:///{tmp_path}/e.db")
    settings = dist.default_settings(objective_factory="synthetic", grid=[6, 6], seed=2,
                                     searcher="random", slot_window=3)
    study, _ = dist.create_or_load_study(storage, "e", settings, budget=7)
    obj = dist.build_objective(settings)
    dist.run_worker(study, obj, window=3)
    assert dist.study_progress(study).finished == 7
    study, stored = dist.create_or_load_study(storage, "e", settings, budget=12)
    assert stored["budget"] == 12 == dist.study_budget(study)
    dist.run_worker(study, obj, window=3)
    trials = study.get_trials(deepcopy=False)
    _slots_once(trials, 12)
    # the designs are the seeded slot designs, whatever the split into runs
    assert [t.params for t in sorted(trials, key=lambda t: t.user_attrs["dse:slot"])] == \
        obj.slot_params(0, 12)
    # a smaller budget keeps the finished work
    _, stored = dist.create_or_load_study(storage, "e", settings, budget=5)
    assert stored["budget"] == 12
    with pytest.raises(dist.ConfigError, match="seed=2.*seed=3"):
        dist.create_or_load_study(storage, "e", dict(settings, seed=3), budget=12)


def test_worker_sigkill_loses_only_the_batch_in_flight(tmp_path: Path) -> None:
    """A worker evaluating batches of 4 (a vectorized objective) is SIGKILLed mid-batch:
    exactly that batch is failed and re-run, everything finished before is kept."""
    url = f"journal:{tmp_path}/b.log"
    settings = dist.default_settings(objective_factory="synthetic", grid=[5, 4], seed=8,
                                     searcher="exhaustive", work_s=1.0, worker_batch=4)
    dist.create_or_load_study(dist.open_storage(url), "b", settings, budget=20)
    cmd = [sys.executable, "-m", "dse.cli", "worker", "--storage", url, "--study", "b",
           "--json"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)

    def mid_batch() -> bool:
        ts = _complete(url, "b")
        run = [t for t in ts if t.state == TrialState.RUNNING]
        return (sum(t.state == TrialState.COMPLETE for t in ts) >= 4 and len(run) == 4
                and (datetime.datetime.now() - max(t.datetime_start for t in run)
                     ).total_seconds() < 0.5)

    _wait_for(mid_batch, p)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    trials = _complete(url, "b")
    held = sorted(t.number for t in trials if t.state == TrialState.RUNNING)
    assert len(held) == 4
    before = _snapshot(trials)
    assert len(before) % 4 == 0 and 4 <= len(before) < 20  # whole batches were written

    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    trials = _complete(url, "b")
    assert all(_snapshot(trials).get(n) == v for n, v in before.items())
    _slots_once(trials, 20)
    assert sorted(t.number for t in trials if t.state == TrialState.FAIL) == held
    retried = {t.system_attrs.get("failed_trial") for t in trials
               if t.state == TrialState.COMPLETE}
    assert set(held) <= retried


def test_processes_starting_together_on_a_fresh_database(tmp_path: Path) -> None:
    """Optuna's schema creation races when several processes open a fresh database at
    once (one fails on ``alembic_version``); open_storage retries, so every worker gets
    to the study lookup (here: exit 2, no such study) instead of exit 1. (The file exists
    and is empty, as one ``dse search`` just created it: a worker refuses a storage file
    that does not exist before opening it.)"""
    for k in range(3):
        (tmp_path / f"fresh{k}.db").touch()
        url = f"sqlite:///{tmp_path}/fresh{k}.db"
        procs = [subprocess.Popen([sys.executable, "-m", "dse.cli", "worker", "--storage", url,
                                   "--study", "nope"], cwd=ROOT, env=_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 2, err
            assert "no study 'nope'" in err and "studies there: none" in err


def test_sigterm_flushes_every_evaluated_design_and_says_how_many(tmp_path: Path) -> None:
    """SIGTERM (like Ctrl-C) stops ``dse search`` after writing every design it scored
    since the last batch, and the one line it prints counts them."""
    db = tmp_path / "t.db"
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "resnet50", "--area", "200",
           "--searcher", "random", "--budget", "100000", "--seed", "4", "--storage",
           f"sqlite:///{db}", "--study", "t", "--out", str(tmp_path / "run"), "--no-report",
           "--json"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _sqlite_trial_count(db) > 0, p)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    assert json.loads(out)["error"]["exit_code"] == 130 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("dse: interrupted; ") and "the same command resumes" in line
    saved = int(line.split("; ")[1].split()[0])
    assert saved == len(_complete(f"sqlite:///{db}", "t")) > 0


def test_a_second_search_on_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    """Two searches on one ``--out`` would score every design twice into one study: the
    second is refused (exit 2, naming the first), and a killed holder frees it at once."""
    from search.runlock import LOCK_NAME

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from search.runlock import run_lock\n"
         f"with run_lock([(Path({str(out / LOCK_NAME)!r}), 'x')]):\n"
         "    print('locked', flush=True)\n    time.sleep(600)\n"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "gptj", "--area", "400",
           "--out", str(out), "--json"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["exit_code"] == 2
    assert len(r.stderr.splitlines()) == 1
    assert f"pid {holder.pid}" in r.stderr and "dse worker" in r.stderr
    holder.kill()  # SIGKILL: the kernel drops the lock with the process
    holder.wait()
    from search.runlock import run_lock

    with run_lock([(out / LOCK_NAME, "x")]):
        pass


def test_a_slot_failed_without_its_retry_is_repaired(tmp_path: Path) -> None:
    """A worker stopped between failing its trial and re-enqueuing it leaves a slot whose
    only copy is FAIL: the repair re-enqueues it (the budget is met exactly), except when
    the objective itself failed on it or its retries are used up (issue 14: "slot 19
    missing" after Ctrl-C)."""
    storage = dist.open_storage(f"journal:{tmp_path}/f.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", slot_window=4, budget=8,
                                     max_retry=2)
    study, _ = dist.create_or_load_study(storage, "f", settings, budget=8)
    obj = dist.build_objective(settings)
    st = study._storage
    waiting = {t.user_attrs[dist.SLOT_ATTR]: t for t in
               study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    # slot 1: interrupted, failed, its retry never enqueued
    st.set_trial_state_values(waiting[1]._trial_id, state=TrialState.RUNNING)
    st.set_trial_system_attr(waiting[1]._trial_id, dist.INTERRUPTED_ATTR, True)
    st.set_trial_state_values(waiting[1]._trial_id, state=TrialState.FAIL)
    # slot 2: the objective raised on it: not retried
    st.set_trial_state_values(waiting[2]._trial_id, state=TrialState.RUNNING)
    st.set_trial_system_attr(waiting[2]._trial_id, dist.ERROR_ATTR, True)
    st.set_trial_state_values(waiting[2]._trial_id, state=TrialState.FAIL)
    # slot 1 again; 5 and 6 because their predecessors were claimed (whoever claims
    # slot i enqueues i + window: the stopped worker did not get that far)
    assert dist.repair_slots(study, obj, 8, 4) == [1, 5, 6]
    assert dist.repair_slots(study, obj, 8, 4) == []  # idempotent
    dist.run_worker(study, obj, window=4)
    trials = study.get_trials(deepcopy=False)
    done = Counter(t.user_attrs[dist.SLOT_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert sorted(done) == [0, 1, 3, 4, 5, 6, 7] and set(done.values()) == {1}


def test_a_retry_copy_starts_clean_and_interruptions_do_not_count(tmp_path: Path) -> None:
    """The copy of a failed trial keeps params, user attributes and the retry history,
    not the failed run's owner, marks and constraint values (Optuna warned "constraint
    value is ignored" when the retry set them again); interruptions do not count against
    ``max_retry``."""
    from search.storage_url import INTERRUPTS_ATTR, RetryTrial

    study = optuna.create_study(storage=dist.open_storage(f"journal:{tmp_path}/r.log"))
    study.enqueue_trial({"x": 1.0}, user_attrs={dist.SLOT_ATTR: 7})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 2.0)})
    trial.set_constraint("area", 1.0)
    st = study._storage
    st.set_trial_system_attr(trial._trial_id, dist.OWNER_ATTR, "h:1")
    st.set_trial_system_attr(trial._trial_id, dist.INTERRUPTED_ATTR, True)
    st.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    failed = st.get_trial(trial._trial_id)
    assert RetryTrial(0, interrupted=True)(study, failed)      # an interruption: free
    copy = study.get_trials(deepcopy=False)[-1]
    assert copy.state == TrialState.WAITING and copy.params == {"x": 1.0}
    assert copy.user_attrs[dist.SLOT_ATTR] == 7
    assert copy.system_attrs["retry_history"] == [failed.number]
    assert copy.system_attrs[INTERRUPTS_ATTR] == 1
    assert not any(k.startswith(("constraints", "dse:worker", "dse:interrupted"))
                   for k in copy.system_attrs), copy.system_attrs
    # the copy fails for real: with max_retry=0 it is not retried, with 1 it is
    st.set_trial_state_values(copy._trial_id, state=TrialState.RUNNING)
    st.set_trial_state_values(copy._trial_id, state=TrialState.FAIL)
    again = st.get_trial(copy._trial_id)
    assert not RetryTrial(0)(study, again)
    assert RetryTrial(1)(study, again)
    assert study.get_trials(deepcopy=False)[-1].system_attrs["retry_history"] == [
        failed.number, copy.number]


def test_signals_are_held_between_failing_and_re_enqueuing() -> None:
    """A SIGTERM that arrives inside the held block is delivered after it, to the handler
    that was installed (the block ran to its end)."""
    import signal as _signal

    from search.worker import _signals_held

    seen: list[str] = []

    def handler(signum: int, _frame: object) -> None:
        seen.append("handler")

    old = _signal.signal(_signal.SIGTERM, handler)
    try:
        with _signals_held():
            _signal.raise_signal(_signal.SIGTERM)
            seen.append("block ended")
        assert seen == ["block ended", "handler"]
        assert _signal.getsignal(_signal.SIGTERM) is handler
    finally:
        _signal.signal(_signal.SIGTERM, old)


def _synthetic_study(tmp_path: Path, name: str, *, budget: int) -> tuple[Any, Any]:
    """A journal-file study of the synthetic 4×4 grid (exhaustive, window 4) and its
    objective."""
    storage = dist.open_storage(f"journal:{tmp_path}/{name}.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", slot_window=4, budget=budget)
    study, _ = dist.create_or_load_study(storage, name, settings, budget=budget)
    return study, dist.build_objective(settings)


@pytest.mark.parametrize("batch", [1, 4])
def test_a_trial_failed_under_its_worker_is_dropped_and_run_again(tmp_path: Path,
                                                                  batch: int) -> None:
    """Another process fails a trial while its worker evaluates it (an ownerless claim
    taken for an orphan, a missed heartbeat) and re-enqueues the slot: the worker drops
    its result instead of crashing on "Trial#N has already finished", and the slot's copy
    is run once."""
    from search.storage_url import RetryTrial

    study, obj = _synthetic_study(tmp_path, "l", budget=6)
    st = study._storage
    stolen: list[int] = []

    class Thief:
        def __getattr__(self, name: str) -> object:
            return getattr(obj, name)

        def _steal(self, trial: optuna.Trial) -> None:
            if not stolen:  # the other process, while the first trial runs
                stolen.append(trial.number)
                st.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                RetryTrial(3)(study, st.get_trial(trial._trial_id))

        def __call__(self, trial: optuna.Trial) -> object:
            self._steal(trial)
            return obj(trial)

        def evaluate_trials(self, trials: list[optuna.Trial]) -> list[object]:
            self._steal(trials[-1])
            return obj.evaluate_trials(trials)

    assert hasattr(obj, "evaluate_trials")
    report = dist.run_worker(study, Thief(), window=4, batch=batch)
    assert report.lost == 1 and stolen
    trials = study.get_trials(deepcopy=False)
    done = Counter(t.user_attrs[dist.SLOT_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert sorted(done) == list(range(6)) and set(done.values()) == {1}


def test_a_slot_whose_retry_was_lost_is_repaired_once_its_failure_is_old(
        tmp_path: Path) -> None:
    """A slot failed by the heartbeat or an orphan recovery whose process was killed
    before it re-enqueued the slot: not repaired at once (the re-enqueue may be under way),
    repaired once the failure is older than ``stale_fail_s``; not when its retries are used
    up."""
    storage = dist.open_storage(f"journal:{tmp_path}/s.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", slot_window=4, budget=4,
                                     max_retry=1)
    study, _ = dist.create_or_load_study(storage, "s", settings, budget=4)
    obj = dist.build_objective(settings)
    st = study._storage
    waiting = {t.user_attrs[dist.SLOT_ATTR]: t for t in
               study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    for i in (1, 2):  # failed without a retry; slot 2 twice (its one retry used up)
        st.set_trial_state_values(waiting[i]._trial_id, state=TrialState.RUNNING)
        st.set_trial_state_values(waiting[i]._trial_id, state=TrialState.FAIL)
    from search.storage_url import RetryTrial

    assert RetryTrial(1)(study, st.get_trial(waiting[2]._trial_id))
    copy = study.get_trials(deepcopy=False)[-1]
    st.set_trial_state_values(copy._trial_id, state=TrialState.RUNNING)
    st.set_trial_state_values(copy._trial_id, state=TrialState.FAIL)
    assert not RetryTrial(1)(study, st.get_trial(copy._trial_id))  # no retry left
    assert dist.repair_slots(study, obj, 4, 4) == []                  # failed just now
    assert dist.repair_slots(study, obj, 4, 4, stale_fail_s=0.0) == [1]
    assert dist.repair_slots(study, obj, 4, 4, stale_fail_s=0.0) == []


def test_an_ignored_ctrl_c_does_not_swallow_a_held_sigterm() -> None:
    """A ``--jobs`` worker ignores SIGINT (its parent coordinates Ctrl-C) and stops on
    SIGTERM: when both arrive inside a held block, SIGTERM is still delivered after it
    (only the first held signal was, and the worker ran on until it was killed)."""
    import signal as _signal

    from dse.signals import signals_held

    seen: list[str] = []
    old_int = _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    old_term = _signal.signal(_signal.SIGTERM, lambda *_: seen.append("term"))
    try:
        with signals_held():
            _signal.raise_signal(_signal.SIGINT)
            _signal.raise_signal(_signal.SIGTERM)
            seen.append("block ended")
        assert seen == ["block ended", "term"]
        assert _signal.getsignal(_signal.SIGINT) is _signal.SIG_IGN
    finally:
        _signal.signal(_signal.SIGINT, old_int)
        _signal.signal(_signal.SIGTERM, old_term)


def test_an_exclusive_repair_reruns_every_slot_without_a_live_copy(tmp_path: Path) -> None:
    """Resuming a local storage under the run lock (no other process uses it), a slot
    whose copies all failed is re-run whatever failed it last — a withdrawn duplicate, a
    failure a moment ago — unless its objective raised."""
    study, obj = _synthetic_study(tmp_path, "x", budget=4)
    st = study._storage
    waiting = {t.user_attrs[dist.SLOT_ATTR]: t for t in
               study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    for i, attr in ((1, dist.DUPLICATE_ATTR), (2, None), (3, dist.ERROR_ATTR)):
        st.set_trial_state_values(waiting[i]._trial_id, state=TrialState.RUNNING)
        if attr is not None:
            st.set_trial_system_attr(waiting[i]._trial_id, attr, True)
        st.set_trial_state_values(waiting[i]._trial_id, state=TrialState.FAIL)
    assert dist.repair_slots(study, obj, 4, 4) == []
    assert dist.repair_slots(study, obj, 4, 4, exclusive=True) == [1, 2]
    assert dist.repair_slots(study, obj, 4, 4, exclusive=True) == []


def test_an_error_raised_while_stopping_requeues_instead_of_giving_up(tmp_path: Path) -> None:
    """A SIGTERM can cut a storage call short so that its clean-up raises another error
    (a lock file gone): that error, raised while the stop was handled, re-enqueues the
    batch like the stop itself; only an error of the objective gives a slot up. (A stopped
    ``--jobs`` run lost slot 49 to this: its only copy was FAIL with ``dse:error``.)"""
    from search.worker import _Stop

    storage = dist.open_storage(f"journal:{tmp_path}/e.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", slot_window=4, budget=4)
    study, _ = dist.create_or_load_study(storage, "e", settings, budget=4)
    obj = dist.build_objective(settings)

    class Stopped:
        def __getattr__(self, name: str) -> object:
            return getattr(obj, name)

        def __call__(self, trial: optuna.Trial) -> object:
            try:
                raise _Stop()
            except _Stop:
                raise OSError("the lock file vanished") from None

    with pytest.raises(OSError):
        dist.run_worker(study, Stopped(), window=4, batch=1)
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and dist.ERROR_ATTR not in failed[0].system_attrs
    assert dist.INTERRUPTED_ATTR in failed[0].system_attrs
    slot = failed[0].user_attrs[dist.SLOT_ATTR]
    assert any(t.state == TrialState.WAITING and t.user_attrs[dist.SLOT_ATTR] == slot
               for t in trials)  # its retry

    class Broken(Stopped):
        def __call__(self, trial: optuna.Trial) -> object:
            raise ValueError("the objective's own error")

    with pytest.raises(ValueError):
        dist.run_worker(study, Broken(), window=4, batch=1)
    gave_up = [t for t in study.get_trials(deepcopy=False)
               if t.state == TrialState.FAIL and dist.ERROR_ATTR in t.system_attrs]
    assert len(gave_up) == 1


def test_a_trial_claimed_by_a_process_killed_before_its_owner_write_is_recovered(
        tmp_path: Path) -> None:
    """The claimant is written before the claim, the owner after it: a worker SIGKILLed in
    between leaves a RUNNING trial without an owner, which the next process on the host
    recovers through the claimant (a plain ``dse worker`` does not assume the storage is
    its own, so before it never did)."""
    import socket

    from search.worker import CLAIMANT_ATTR, recover_orphans

    storage = dist.open_storage(f"journal:{tmp_path}/c.log")
    settings = dist.default_settings(objective_factory="synthetic", grid=[4, 4], seed=3,
                                     searcher="exhaustive", slot_window=4, budget=4)
    study, _ = dist.create_or_load_study(storage, "c", settings, budget=4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    st = study._storage
    t = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    st.set_trial_system_attr(t._trial_id, CLAIMANT_ATTR,
                             f"{socket.gethostname()}:{dead.stdout.strip()}")
    st.set_trial_state_values(t._trial_id, state=TrialState.RUNNING)
    assert recover_orphans(study, max_retry=3) == [t.number]
    copy = study.get_trials(deepcopy=False)[-1]
    assert copy.state == TrialState.WAITING and CLAIMANT_ATTR not in copy.system_attrs
