"""Screenshots for the docs (issue 15), taken by headless Chromium from real runs:

* ``docs/report-multi-workload.png``: the report of a search over two workloads
  (``dse search --workload gptj,bert-large --area 400``): per-workload table, the geometric
  mean the search maximized, axes fitted to the budget;
* ``docs/dashboard-importance.png``: optuna-dashboard (``dse dashboard``) on the study of
  an Optuna search, on its page with the parameter importances, in physical units.

``tests/dse/test_screenshots.py`` drives the same functions in a real browser and checks
what the pages show.

    python benchmarks/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPORT_CMD = ("search", "--workload", "gptj,bert-large", "--area", "400", "--seed", "0")
"""The multi-workload search of the report screenshot (default searcher)."""
STUDY_CMD = ("search", "--workload", "gptj", "--area", "400", "--searcher", "optuna",
             "--budget", "300", "--seed", "0", "--no-report")
"""The Optuna search whose study the dashboard shows."""


def chromium() -> str | None:
    """A Chrome/Chromium binary: ``$DSE_CHROMIUM`` or the first on PATH."""
    import shutil

    env = os.environ.get("DSE_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(binary: str, profile: Path, *args: str, size: tuple[int, int] = (1400, 1800),
             budget_ms: int = 20000) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def screenshot(binary: str, url: str, png: Path, work: Path,
               size: tuple[int, int] = (1400, 1800)) -> Path:
    """Load ``url`` headless and write a PNG of the window."""
    png.parent.mkdir(parents=True, exist_ok=True)
    r = _browser(binary, work / "profile-shot", f"--screenshot={png}", url, size=size)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot of {url}: {r.stderr[-400:]}")
    return png


def dom(binary: str, url: str, work: Path) -> str:
    """The DOM of ``url`` after its scripts ran (what the page shows, as HTML)."""
    return _browser(binary, work / "profile-dom", "--dump-dom", url).stdout


def dse(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "dse.cli", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"dse {' '.join(args)} failed ({r.returncode}): {r.stderr[-400:]}")
    return r


def multi_workload_report(work: Path, cmd: tuple[str, ...] = REPORT_CMD) -> Path:
    """Run the multi-workload search; returns its report.html."""
    run = work / "multi"
    dse(*cmd, "--out", str(run))
    return run / "report.html"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dashboard(work: Path, cmd: tuple[str, ...] = STUDY_CMD) -> Iterator[str]:
    """An Optuna search's study served by ``dse dashboard``; yields the URL of the study's
    page with its parameter importances (the server stops afterwards)."""
    run = work / "study"
    dse(*cmd, "--out", str(run))
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server = subprocess.Popen([sys.executable, "-m", "dse.cli", "dashboard", "--storage",
                               str(run), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # the event: the server accepts connections
            if server.poll() is not None:
                raise RuntimeError(f"dse dashboard exited: {server.stderr.read()[-400:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dse dashboard did not start within 120 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/dashboard/studies/1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    a = ap.parse_args()
    binary = chromium()
    if binary is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium, or set DSE_CHROMIUM)")
    out = Path(a.out)
    with tempfile.TemporaryDirectory(prefix="dse-shots-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        page = multi_workload_report(work)
        png = screenshot(binary, page.as_uri(), out / "report-multi-workload.png", work)
        print(f"wrote {png} ({time.perf_counter() - t0:.0f} s)")
        t0 = time.perf_counter()
        with dashboard(work) as url:
            png = screenshot(binary, url, out / "dashboard-importance.png", work,
                             size=(1400, 2200))
        print(f"wrote {png} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
