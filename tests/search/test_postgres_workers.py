"""Three ``dse worker`` processes against one study on a real PostgreSQL server.

Acceptance of issue 7: trial numbers unique, total = budget, same best as one process on
the same seeded space — and here also the exhaustive optimum, and a worker SIGKILLed
mid-run loses nothing (its trial in flight is failed by the heartbeat and re-run).
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

import optuna
import pytest
from optuna.trial import TrialState

from search import distributed as dist

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start_worker(url: str, study: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dse.cli", "worker", "--storage", url,
                             "--study", study, "--json"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json.loads(out)


def _create(url: str, name: str, settings: dict, budget: int) -> optuna.Study:
    storage = dist.open_storage(url)
    study, _ = dist.create_or_load_study(storage, name, dist.default_settings(**settings),
                                         budget=budget)
    return study


def _finished(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=dist.open_storage(url))
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


SYNTH = {"objective_factory": "synthetic", "grid": [6, 5], "seed": 7,
         "searcher": "exhaustive", "work_s": 0.05,
         "heartbeat_interval_s": 1, "grace_period_s": 3}


def test_three_workers_exact_budget_same_best_as_one_process(postgres_url: str) -> None:
    budget = 30  # the whole 6×5 grid: both runs must find the exhaustive optimum
    _create(postgres_url, "three", SYNTH, budget)
    t0 = time.perf_counter()
    procs = [_start_worker(postgres_url, "three") for _ in range(3)]
    reports = [_finish(p) for p in procs]
    wall3 = time.perf_counter() - t0

    trials = _finished(postgres_url, "three")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == budget          # unique, total = budget
    assert sum(r["trials_run"] for r in reports) == budget      # nobody ran a trial twice
    assert sum(r["trials_run"] > 0 for r in reports) >= 2       # the work was shared
    points = Counter((t.params["x"], t.params["y"]) for t in trials)
    assert len(points) == budget and set(points.values()) == {1}  # every design once

    _create(postgres_url, "one", SYNTH, budget)
    t0 = time.perf_counter()
    one = _finish(_start_worker(postgres_url, "one"))
    wall1 = time.perf_counter() - t0
    assert one["trials_run"] == budget
    single = _finished(postgres_url, "one")

    obj = dist.SyntheticObjective(SYNTH)
    x, y, best = obj.optimum()
    for r in (reports[0], one):
        assert r["best"]["params"] == {"x": x, "y": y}
        assert r["best"]["values"] == [pytest.approx(best)]
    # the same designs with the same values, whichever process evaluated them
    as_map = lambda ts: {(t.params["x"], t.params["y"]): t.value for t in ts}
    assert as_map(trials) == as_map(single)
    print(f"\n3 workers: {budget} trials in {wall3:.2f} s; 1 worker: {wall1:.2f} s "
          f"(work 0.05 s/trial, PostgreSQL on loopback)")


def test_tpe_workers_share_one_global_budget(postgres_url: str) -> None:
    settings = dict(SYNTH, searcher="optuna", grid=[40, 40], work_s=0.0)
    budget = 45
    _create(postgres_url, "tpe", settings, budget)
    procs = [_start_worker(postgres_url, "tpe") for _ in range(3)]
    reports = [_finish(p) for p in procs]
    trials = _finished(postgres_url, "tpe")
    assert len(trials) == budget == sum(r["trials_run"] for r in reports)
    assert len({t.number for t in trials}) == budget
    # a worker joining after the budget is used up runs nothing
    late = _finish(_start_worker(postgres_url, "tpe"))
    assert late["trials_run"] == 0 and late["study_progress"]["finished"] == budget


def test_sigkilled_worker_loses_nothing(postgres_url: str) -> None:
    settings = dict(SYNTH, work_s=1.0, worker_batch=1)  # one trial in flight per worker
    budget = 24
    _create(postgres_url, "kill", settings, budget)
    watch = optuna.load_study(study_name="kill", storage=dist.open_storage(postgres_url))
    victim = _start_worker(postgres_url, "kill")
    survivors = [_start_worker(postgres_url, "kill") for _ in range(2)]
    # kill the victim early in a trial (1 s of work), after some trials are persisted
    deadline = time.monotonic() + 120
    in_flight = None
    while time.monotonic() < deadline and in_flight is None:
        trials = watch.get_trials(deepcopy=False)
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 2:
            for t in trials:
                if (t.state == TrialState.RUNNING and t.system_attrs.get(dist.OWNER_ATTR, "")
                        .endswith(f":{victim.pid}") and (datetime.datetime.now()
                                                         - t.datetime_start).total_seconds() < 0.6):
                    victim.send_signal(signal.SIGKILL)
                    in_flight = t
                    break
        time.sleep(0.02)
    victim.wait()
    assert in_flight is not None, "the victim never ran a trial"
    before = {t.number: (t.params, t.values) for t in _finished(postgres_url, "kill")}
    assert 2 <= len(before) < budget
    reports = [_finish(p) for p in survivors]

    study = optuna.load_study(study_name="kill", storage=dist.open_storage(postgres_url))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    after = {t.number: (t.params, t.values) for t in done}
    assert all(after[n] == v for n, v in before.items())           # nothing lost
    assert len(done) == budget                                      # total = budget
    points = Counter((t.params["x"], t.params["y"]) for t in done)
    assert len(points) == budget                                    # no slot run twice
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    # the victim's trial in flight, failed by the heartbeat …
    assert [t.number for t in failed] == [in_flight.number]
    retried = [t for t in done if t.system_attrs.get("failed_trial") == in_flight.number]
    assert len(retried) == 1  # … and re-run with the same slot and design by a survivor
    assert retried[0].user_attrs["dse:slot"] == in_flight.user_attrs["dse:slot"]
    assert retried[0].params == in_flight.system_attrs["fixed_params"]
    by_victim = sum(t.system_attrs[dist.OWNER_ATTR].endswith(f":{victim.pid}") for t in done)
    assert by_victim + sum(r["trials_run"] for r in reports) == budget


def test_unreachable_postgres_names_host_not_password() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens
    url = f"postgresql://dse:Sup3rSecret@127.0.0.1:{port}/db"
    r = subprocess.run([sys.executable, "-m", "dse.cli", "worker", "--storage", url,
                        "--study", "x"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in r.stderr and "Sup3rSecret" not in r.stderr
    assert "dse:***@" in r.stderr


def _search(url: str, study: str, out: Path, jobs: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dse.cli", "search", "--workload", "resnet50", "--area", "200",
         "--searcher", "random", "--budget", "18", "--seed", "5", "--storage", url,
         "--study", study, "--jobs", str(jobs), "--out", str(out), "--no-report", "--json"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_real_search_dse_search_plus_two_workers_same_best_as_one_process(
        postgres_url: str, tmp_path: Path) -> None:
    """The accelerator objective: ``dse search --storage postgresql://…`` plus two
    ``dse worker`` processes joining its study, against one process alone."""
    lead = _search(postgres_url, "real3", tmp_path / "three")
    storage = dist.open_storage(postgres_url)
    deadline = time.monotonic() + 120
    while "real3" not in dist.study_names(storage) and time.monotonic() < deadline:
        assert lead.poll() is None, lead.communicate()[1]
        time.sleep(0.2)
    helpers = [_start_worker(postgres_url, "real3") for _ in range(2)]
    summary3 = _finish(lead, timeout=400)
    reports = [_finish(p, timeout=400) for p in helpers]
    summary1 = _finish(_search(postgres_url, "real1", tmp_path / "one"), timeout=400)

    trials3 = _finished(postgres_url, "real3")
    trials1 = _finished(postgres_url, "real1")
    assert len(trials3) == len(trials1) == 18
    assert len({t.number for t in trials3}) == 18
    lead_ran = summary3["search"]["distributed"]["trials_this_run"]
    assert lead_ran == 18 and sum(r["trials_run"] for r in reports) <= 18
    print("\nhelpers ran", [r["trials_run"] for r in reports], "lead wall", summary3["wall_s"],
          "one-process wall", summary1["wall_s"])
    # the seeded slots fix the designs: the same designs and values, so the same best
    def key(ts: list) -> dict:
        return {(t.user_attrs["dse:slot"], json.dumps(t.params, sort_keys=True)): t.values
                for t in ts}

    k3, k1 = key(trials3), key(trials1)
    assert k3 == k1, [(k, k3.get(k), k1.get(k)) for k in sorted(set(k3) | set(k1))
                      if k3.get(k) != k1.get(k)]
    assert summary3["best"]["design"] == summary1["best"]["design"]
    assert summary3["best"]["objective_value"] == pytest.approx(
        summary1["best"]["objective_value"], rel=1e-12)
    assert summary3["evaluations"] == summary1["evaluations"] == 18
