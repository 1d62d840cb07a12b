"""Storage faults get one line naming the cause and exit 1, and say what is saved
(issue 14): a full disk (a 600 kB tmpfs, where mounting is allowed), a file-size limit
(always), a read-only database (a read-only tmpfs, where mounting is allowed)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _search(out: Path, preexec=None, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "gptj", "--area", "400",
           "--searcher", "random", "--budget", "3000", "--out", str(out), "--json", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600, preexec_fn=preexec, check=False)


@contextlib.contextmanager
def _tmpfs(path: Path, opts: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["error"]["exit_code"] == 1  # --json: the error object
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_full_disk_is_named(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    with _tmpfs(mnt, "size=600k"):
        line = _one_line(_search(mnt / "run"))
        assert "the disk is full" in line and "trials were saved" in line
        assert "rerun the same command" in line


def test_a_file_size_limit_is_a_storage_error(tmp_path: Path) -> None:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))

    line = _one_line(_search(tmp_path / "run", preexec=limit))
    assert "failed:" in line and "trials were saved" in line


def test_a_read_only_database_is_named(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    with _tmpfs(mnt, "size=64m"):
        first = _search(mnt / "run", extra=("--no-report",))
        assert first.returncode == 0, first.stderr
        r = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        again = _search(mnt / "run", extra=("--budget", "4000", "--no-report"))
        assert again.returncode in (1, 2), again.stderr
        line = again.stderr.strip().splitlines()[-1]
        assert len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert "read-only" in line or "not writable" in line, line


@pytest.mark.postgres
def test_a_postgresql_server_stopped_mid_run_is_named_and_loses_nothing(
        tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    """The server stops (``pg_ctl stop -m immediate``, as a crash would) while ``dse
    search`` writes to it: one line naming the cause, exit 1, and every trial the database
    held before the stop is still there after a restart."""
    import re
    import time

    import optuna
    from optuna.trial import TrialState

    from search import distributed as dist

    url = postgres_server.url
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "gptj", "--area", "400",
           "--searcher", "random", "--budget", "30000", "--storage", url, "--study", "gone",
           "--out", str(tmp_path / "run"), "--no-report", "--json"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        watch = dist.open_storage(url)
        seen = 0
        deadline = time.monotonic() + 300
        while p.poll() is None and seen == 0 and time.monotonic() < deadline:
            try:  # the event: the search has saved its first batch of trials
                study = optuna.load_study(study_name="gone", storage=watch)
                seen = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            except KeyError:
                pass
            if seen == 0:
                time.sleep(0.05)
        assert p.poll() is None and seen > 0, "the search ended before its server could stop"
        postgres_server.stop()
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "the database server is gone" in lines[0] or "cannot reach PostgreSQL" in lines[0], err
    assert json.loads(out)["error"]["exit_code"] == 1
    assert postgres_server.start()
    study = optuna.load_study(study_name="gone", storage=dist.open_storage(url))
    after = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    assert after >= seen  # nothing the database held is lost
    said = re.search(r"at least (\d+) trials this process finished are saved", lines[0])
    assert said, lines[0]
    assert int(said.group(1)) <= after
    assert "postgresql+psycopg://dse@127.0.0.1" in lines[0]  # which storage (no password)


def test_a_connection_error_without_a_message_is_named() -> None:
    """A driver's connection-level error on a server storage can have an empty message
    (psycopg raised one as ``()`` when the server stopped during a commit): it is the
    server gone; elsewhere the type names it, never a bare ``()``."""
    from search.storage_url import storage_fault

    class OperationalError(Exception):
        pass

    OperationalError.__module__ = "psycopg"

    class DBAPIError(Exception):
        connection_invalidated = True

    DBAPIError.__module__ = "sqlalchemy.exc"

    def raised(inner: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except Exception as e:
                raise RuntimeError("An exception is raised during the commit.") from e
        except RuntimeError as outer:
            return outer

    url = "postgresql+psycopg://dse@127.0.0.1:5432/db"
    for inner in (OperationalError(()), DBAPIError()):
        fault = storage_fault(raised(inner), url)
        assert fault is not None and str(fault).endswith("failed: the database server is gone")
    fault = storage_fault(raised(OperationalError(())), "sqlite:////tmp/x.db")
    assert fault is not None and str(fault).endswith("failed: OperationalError")
