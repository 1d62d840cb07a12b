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
