"""Fixtures for the search tests: a throw-away PostgreSQL server.

``postgres_url`` starts a private PostgreSQL cluster for the test session:
``initdb -A trust`` into a temporary directory, ``pg_ctl start`` on a free loopback port
(no TCP outside 127.0.0.1, the Unix socket inside the directory), ``createdb``, and yields
``postgresql+psycopg://dse@127.0.0.1:PORT/dse_test``; the cluster is stopped and deleted
afterwards. PostgreSQL refuses to run as root, so when the tests run as root the cluster
belongs to the ``postgres`` system user (Debian's package creates it) or ``nobody``, and
the server commands run through ``runuser``/``su``.

The server binaries are looked up in ``$PG_BIN``, ``/usr/lib/postgresql/*/bin`` (Debian,
newest first) and ``$PATH``. Without them, or without ``psycopg``, the tests that use the
fixture skip with the reason (CI installs the Debian ``postgresql`` package and the
``psycopg[binary]`` extra).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and createdb, or None."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))

    def version(p: str) -> tuple[int, ...]:
        v = Path(p).parent.parent.name
        return tuple(int(x) for x in v.split(".") if x.isdigit())

    candidates += [Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                                                   key=version, reverse=True)]
    which = shutil.which("initdb")
    if which:
        candidates.append(Path(which).resolve().parent)
    for c in candidates:
        if all((c / exe).exists() for exe in ("initdb", "pg_ctl", "createdb")):
            return c
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(user: str | None, cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    if user is not None:
        runuser = shutil.which("runuser")
        cmd = ([runuser, "-u", user, "--", *cmd] if runuser
               else ["su", "-s", "/bin/sh", user, "-c", " ".join(map(_quote, cmd))])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                          **kw)  # type: ignore


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def _server_user() -> str | None:
    """None when not root; else a system user that may own the cluster."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to "
                "own a PostgreSQL cluster")
    return None  # pragma: no cover


class PgServer:
    """A private PostgreSQL cluster on a free loopback port: ``start`` (initdb on first
    use), ``stop`` (immediate: like a crash or a killed server), ``start`` again on the same
    port and data (crash recovery), ``remove``. Skips the test when it cannot run."""

    def __init__(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            pytest.skip("psycopg is not installed (pip install 'psycopg[binary]', the "
                        "'postgres' extra)")
        bindir = pg_bindir()
        if bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, createdb) not found: "
                        "apt-get install postgresql, or set PG_BIN")
        self.bindir = bindir
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="dse-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = 0
        self.running = False
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        r = _run_as(self.user, [str(bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                                "-U", "dse", "-E", "UTF8", "--locale=C", "--no-sync"])
        if r.returncode != 0:
            self.remove()
            pytest.skip(f"initdb failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
        for _attempt in range(3):
            self.port = _free_port()
            if self.start():
                break
        if not self.running:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:] \
                if self.log.exists() else []
            self.remove()
            pytest.skip(f"pg_ctl start failed: {tail}")
        r = _run_as(self.user, [str(bindir / "createdb"), "-h", "127.0.0.1", "-p",
                                str(self.port), "-U", "dse", "dse_test"])
        if r.returncode != 0:
            self.remove()
            pytest.skip(f"createdb failed: {r.stderr.strip()}")
        self.url = f"postgresql+psycopg://dse@127.0.0.1:{self.port}/dse_test"

    def start(self) -> bool:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=100")
        r = _run_as(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                "-l", str(self.log), "-w", "-t", "60", "start"])
        self.running = r.returncode == 0
        return self.running

    def stop(self) -> None:
        _run_as(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                            "immediate", "-w", "stop"])
        self.running = False

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database (see the module docstring)."""
    server = PgServer()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture()
def postgres_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the test's own, which the test may stop and start."""
    server = PgServer()
    try:
        yield server
    finally:
        server.remove()
