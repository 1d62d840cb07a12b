"""``dse worker --storage URL --study NAME``: join a distributed search.

The worker needs no other flag: the study carries its settings (workloads, budget, design
space, seed …; written by ``dse search --storage URL --study NAME``). It pops waiting
trials until the study's global budget is used up, writing each finished trial at once,
then prints what it did. A missing study is a usage error (exit 2) that lists the studies
in the storage; an unreachable storage exits 1 naming host and port (never the password).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from optuna.trial import FrozenTrial


def run(args: argparse.Namespace) -> dict[str, Any]:
    from search import distributed as dist

    spec = dist.parse_storage(args.storage)
    quiet = bool(getattr(args, "json", False))
    count = [0]

    def progress(ft: FrozenTrial) -> None:
        count[0] += 1
        if not quiet and count[0] % 50 == 0:
            sys.stderr.write(f"dse worker: {count[0]} trials done\n")

    with dist.sigterm_as_interrupt():
        wait_s = float(getattr(args, "wait", 0) or 0)
        if wait_s > 0:
            _wait_for_study(dist, spec, args.study, wait_s, quiet)
        _check_file_exists(spec, args.study)
        report, study, settings = dist.join_study(spec, args.study, on_trial=progress)
    prog = dist.study_progress(study)
    return {
        "study": args.study,
        "storage": spec.display,
        **report.as_dict(),
        "study_progress": prog.as_dict(),
        "best": dist.best_trial_summary(study),
        "searcher": settings.get("searcher"),
        "workloads": settings.get("workloads"),
    }


def _check_file_exists(spec: Any, name: str) -> None:
    """A file storage (SQLite, journal) that does not exist holds no study: say so before
    opening it, which would create an empty database in the user's directory."""
    from pathlib import Path

    from dse.errors import ConfigError

    path = getattr(spec, "path", None)
    is_file = spec.kind == "journal" or getattr(spec, "backend", "") == "sqlite"
    if is_file and path and not Path(path).exists():
        raise ConfigError(f"no study {name!r}: {spec.display} does not exist (give the "
                          "storage or run directory of a `dse search --storage ... "
                          "--study ...`)")


def _wait_for_study(dist: Any, spec: Any, name: str, wait_s: float, quiet: bool = False
                    ) -> None:
    """Poll the storage (once a second) until it is reachable and holds study ``name``
    made by ``dse search``, for at most ``wait_s`` seconds; then :func:`join_study`
    raises the usual one-line error if it is still missing."""
    import time

    from dse.errors import DSEError

    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            storage = dist.open_storage(spec)
            if name in dist.study_names(storage):
                return
        except DSEError:
            pass  # the server may not be up yet
        if time.monotonic() >= deadline:
            return
        if not said:  # on stderr also with --json (stdout is the result)
            sys.stderr.write(f"dse worker: waiting up to {wait_s:g} s for study {name!r} in "
                             f"{spec.display}\n")
            said = True
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    p = result["study_progress"]
    lines = [
        f"worker {result['worker']} on study {result['study']!r} ({result['storage']})",
        (f"  ran {result['trials_run']} trials in {result['wall_s']:.1f} s "
         f"({result['complete']} complete, {result['pruned']} pruned, "
         f"{result['failed']} failed)"),
        (f"  study: {p['finished']}/{p['budget']} finished, {p['running']} running, "
         f"{p['waiting']} waiting, {p['failed']} failed"),
    ]
    best = result.get("best")
    if best:
        vals = ", ".join(f"{v:.6g}" for v in best["values"])
        params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
        lines.append(f"  best: trial {best['number']} ({vals}) {params}")
    return "\n".join(lines)
