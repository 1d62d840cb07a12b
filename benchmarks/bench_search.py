"""Search quality, the critical path's effect, and speed (issues 5, 10, 11; brief §6).

A. **Ablation** on six problems (``benchmarks/_problems.py``: DLRM, a CNN, BERT, GPT-J, a
   multi-workload set and a 64-device GPT-3 problem whose plans have pp > 1): the
   exhaustive optimum (cached under ``results/bench/exhaustive``), then the ``wham``
   heuristic with its moves guided by the critical path, by nothing (full neighbourhood
   every step) and by the critical path inverted, and Optuna TPE and random search at the
   same budget — the evaluations (every design any target scored) and CPU seconds each
   needs to reach 99.5 % of the optimum. Target: guidance needs >= 3x fewer evaluations
   than no guidance in the median.
B. The wall and CPU time of ``dse search --workload gptj --area 400`` (the README's main
   job) and its margin over the best baseline of the same area.
C. Storage batching: trials written with ``study.add_trials`` vs the batched path.

Prints tables and writes ``results/bench/search.json``.

    python benchmarks/bench_search.py [--seeds 3] [--problems dlrm,cnn,...] [--skip-cli]
                                      [--out search.json]
    python benchmarks/bench_search.py --merge a.json b.json --out search.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

warnings.filterwarnings("ignore")

TARGET = 0.995
GUIDANCE = ("critical-path", "none", "inverted")


class _Timed(list):
    """A trace list that stamps every (evaluations, best) entry with the CPU time."""

    def __init__(self, c0: float) -> None:
        super().__init__()
        self.c0 = c0

    def append(self, item):  # type: ignore[no-untyped-def, override]
        super().append((item[0], item[1], time.process_time() - self.c0))


def _first(trace: list, opt: float) -> tuple[int | None, float | None]:
    for n, best, cpu in trace:
        if best >= TARGET * opt:
            return int(n), float(cpu)
    return None, None


def _run_wham(pb, bases, seed: int, guidance: str, opt: float) -> dict:  # type: ignore[no-untyped-def]
    from search.evaluator import Evaluator
    from search.global_search import global_search

    c0 = time.process_time()
    ev = Evaluator(pb)
    trace = _Timed(c0)
    res = global_search(ev, seed=seed, baselines=bases, guidance=guidance, trace=trace)
    n_t, cpu_t = _first(trace, opt)
    return {"method": f"wham/{guidance}", "seed": seed, "evaluations": res.evaluations,
            "cpu_s": time.process_time() - c0, "fraction": ev.best_value() / opt,
            "evaluations_to_target": n_t, "cpu_s_to_target": cpu_t}


def _run_other(pb, method: str, seed: int, budget: int, opt: float) -> dict:  # type: ignore[no-untyped-def]
    from search.baselines import random_search
    from search.evaluator import Evaluator
    from search.optuna_search import run_optuna

    c0 = time.process_time()
    trace = _Timed(c0)
    ev = Evaluator(pb, on_progress=lambda n: trace.append((0, 0.0)))
    # the evaluator's own count and best after each batch
    ev.on_progress = lambda n: trace.append((ev.evaluations, ev.best_value()))
    if method == "tpe":
        run_optuna(ev, n_trials=budget, seed=seed)
    else:
        random_search(ev, seed=seed, budget=budget)
    n_t, cpu_t = _first(trace, opt)
    return {"method": method, "seed": seed, "evaluations": ev.evaluations,
            "cpu_s": time.process_time() - c0, "fraction": ev.best_value() / opt,
            "evaluations_to_target": n_t, "cpu_s_to_target": cpu_t}


def part_a(seeds: int, keys: list[str] | None, partial: str = "search.partial.json") -> dict:
    from _problems import ABLATION_PROBLEMS, build, exhaustive_optimum

    from search.runner import baseline_designs

    problems = [p for p in ABLATION_PROBLEMS if keys is None or p.key in keys]
    out: dict = {"target_fraction": TARGET, "problems": []}
    print(f"\nA. ablation: evaluations (and CPU s) to reach {100 * TARGET:.1f}% of the "
          "exhaustive optimum")
    for spec in problems:
        pb = build(spec)
        opt = exhaustive_optimum(spec, pb)
        bases = [b for _, _, b, _ in baseline_designs(pb) if b is not None]
        rows = []
        for s in range(seeds):
            runs = [_run_wham(pb, bases, s, g, opt["optimum"]) for g in GUIDANCE]
            budget = max(r["evaluations"] for r in runs)
            runs += [_run_other(pb, m, s, budget, opt["optimum"]) for m in ("tpe", "random")]
            rows += runs
            for r in runs:
                print(f"   {spec.key:<6} seed {s} {r['method']:<18} "
                      f"{r['evaluations_to_target'] if r['evaluations_to_target'] else '—':>6}"
                      f" evals to target ({r['cpu_s_to_target'] or 0:6.1f} s), final "
                      f"{100 * r['fraction']:6.2f}% after {r['evaluations']} evals, "
                      f"{r['cpu_s']:.1f} s CPU", flush=True)
        out["problems"].append({"problem": spec.key, "label": spec.label,
                                "exhaustive": opt, "runs": rows})
        _write(out, partial)  # a long run keeps what it measured so far
    out["summary"] = _summary(out["problems"])
    return out


def _write(out: dict, name: str) -> Path:
    from dse.types import jsonable

    dest = ROOT / "results" / "bench" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(jsonable(out), indent=2) + "\n")
    return dest


def _median_or_none(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else None


def _summary(problems: list[dict]) -> dict:
    methods = ["wham/" + g for g in GUIDANCE] + ["tpe", "random"]
    print("\n   | problem | exhaustive (designs, CPU s) | " + " | ".join(methods) + " |")
    print("   |---|---|" + "---|" * len(methods))
    table = []
    ratios = []
    for pr in problems:
        cells = {}
        for m in methods:
            rs = [r for r in pr["runs"] if r["method"] == m]
            hit = [r for r in rs if r["evaluations_to_target"] is not None]
            n = _median_or_none([r["evaluations_to_target"] for r in rs]) if len(hit) * 2 > len(
                rs) else None
            cpu = _median_or_none([r["cpu_s_to_target"] for r in hit])
            frac = float(np.median([r["fraction"] for r in rs]))
            cells[m] = {"median_evaluations_to_target": n, "median_cpu_s_to_target": cpu,
                        "reached": f"{len(hit)}/{len(rs)}", "median_final_fraction": frac}
        g, nn = (cells["wham/critical-path"]["median_evaluations_to_target"],
                 cells["wham/none"]["median_evaluations_to_target"])
        ratio = (nn / g) if (g and nn) else None
        if g and not nn:  # unguided never got there within its own run
            ratio = float("inf")
        ratios.append(ratio)
        ex = pr["exhaustive"]
        row = {"problem": pr["problem"], "cells": cells, "none_over_guided": ratio}
        table.append(row)

        def fmt(c: dict) -> str:
            n = c["median_evaluations_to_target"]
            return (f"{n:.0f} ({c['median_cpu_s_to_target']:.1f} s) [{c['reached']}]" if n
                    else f"— ({100 * c['median_final_fraction']:.2f}%) [{c['reached']}]")

        print(f"   | {pr['label']} | {ex['within_budget']}, {ex['cpu_s']:.0f} | "
              + " | ".join(fmt(cells[m]) for m in methods) + " |")
    finite = [r for r in ratios if r is not None]
    med = float(np.median(finite)) if finite else None
    print(f"\n   no guidance / critical-path guidance, evaluations to target: "
          f"{', '.join('—' if r is None else f'{r:.2f}x' for r in ratios)}; median "
          f"{'—' if med is None else f'{med:.2f}x'} (target >= 3x)")
    return {"table": table, "none_over_guided": ratios, "median_none_over_guided": med,
            "target": ">= 3x fewer evaluations with guidance than without, median"}


def part_b() -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-gptj-"))
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "gptj", "--area", "400",
           "--out", str(out / "run"), "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    r0 = os.times()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    r1 = os.times()
    wall = time.perf_counter() - t0
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    if p.returncode != 0:
        raise SystemExit(f"dse search failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    r = json.loads(p.stdout)
    tpu = next(b for b in r["baselines"] if b["name"] == r["best_baseline"])
    best = r["best"]
    margin = best["objective_value"] / tpu["objective_value"] - 1.0

    def brief(e: dict) -> dict:
        hw = e["hardware"]
        ev = e["evaluation"]
        return {"design": e.get("design", hw["name"]), "samples_per_s": e["samples_per_s"],
                "tensor_cores": hw["tensor_cores"], "array": f"{hw['array_rows']}x{hw['array_cols']}",
                "dataflow": hw["dataflow"], "macs": hw["tensor_cores"] * hw["array_rows"] * hw["array_cols"],
                "sram_bytes": hw["sram_bytes"], "hbm_stacks": hw["hbm_stacks"],
                "area_mm2": hw["area_mm2"], "tdp_w": hw["tdp_w"],
                "area_breakdown_mm2": hw.get("area_breakdown_mm2"),
                "mfu": ev.get("mfu"), "plan": ev.get("plan"),
                "critical_path_shares": e.get("critical_path_shares")}

    res = {"command": " ".join(cmd[1:]), "wall_s_process": wall, "cpu_s_process": cpu,
           "wall_s_reported": r["wall_s"],
           "evaluations": r["evaluations"], "best": brief(best), "best_baseline": brief(tpu),
           "best_baseline_name": tpu["name"], "margin_over_best_baseline": margin,
           "ilp_refinement": best.get("ilp_refinement"),
           "nvdla_like_samples_per_s": next(b for b in r["baselines"]
                                            if b["name"] == "nvdla-like").get("samples_per_s")}
    print(f"\nB. {res['command']}: {wall:.1f} s wall, {cpu:.1f} s CPU (process), "
          f"{r['wall_s']:.1f} s inside, {r['evaluations']} evaluations")
    for name, e in (("mined", res["best"]), (tpu["name"], res["best_baseline"])):
        print(f"   {name:<9} {e['design']:<40} {e['samples_per_s']:.4g} samples/s, "
              f"{e['macs']} MACs, {e['area_mm2']:.1f} mm², MFU {100 * (e['mfu'] or 0):.1f}%, "
              f"critical path {e['critical_path_shares']}")
    print(f"   margin over the best baseline of the same area ({tpu['name']}): "
          f"{100 * margin:+.1f}%")
    return res


def part_c(n: int = 300) -> dict:
    """Storage batching: the same finished trials written with ``study.add_trials`` (one
    commit per trial and attribute) and with :func:`search.storage.persist_trials` (one
    transaction), into SQLite files."""
    import optuna

    from search.evaluator import Evaluator
    from search.storage import open_storage, open_study, persist_trials, quiet_optuna
    from tests.search.synthetic import SyntheticProblem

    quiet_optuna()
    pb = SyntheticProblem()
    ev = Evaluator(pb)
    idx = pb.space.sample(np.random.default_rng(0), n)
    ev.evaluate(idx, "bench", persist=False)
    rows = ev.rows_of(idx)
    t0 = time.perf_counter()
    trials = ev.make_trials(idx, ev.scores_at(rows), "bench", 0)
    t_make = time.perf_counter() - t0
    t0 = time.perf_counter()
    frozen = [t.to_frozen() for t in trials]
    t_frozen = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    slow = optuna.create_study(storage=f"sqlite:///{tmp}/slow.db", study_name="s",
                               direction="maximize")
    t0 = time.perf_counter()
    slow.add_trials(frozen)
    t_slow = time.perf_counter() - t0
    fast = open_study(open_storage(f"sqlite:///{tmp}/fast.db"), "s", ["maximize"], ["v"])
    t0 = time.perf_counter()
    persist_trials(fast, trials)
    t_fast = time.perf_counter() - t0
    attrs = len(trials[0].user_attrs)
    print(f"\nC. persisting {n} trials ({attrs} user attributes each) into SQLite: "
          f"add_trials {t_slow:.2f} s ({1e3 * t_slow / n:.1f} ms/trial), batched "
          f"{t_fast:.3f} s ({1e3 * t_fast / n:.2f} ms/trial): {t_slow / t_fast:.0f}x; "
          f"building them: batch records {1e3 * t_make / n:.3f} ms/trial, Optuna "
          f"FrozenTrials {1e3 * t_frozen / n:.3f} ms/trial")
    return {"trials": n, "user_attrs_per_trial": attrs, "add_trials_s": t_slow,
            "persist_trials_s": t_fast, "speedup": t_slow / t_fast,
            "make_records_s": t_make, "make_frozen_trials_s": t_frozen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--problems", default=None,
                    help="comma-separated keys of benchmarks/_problems.py (default: all six)")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--out", default="search.json",
                    help="file name under results/bench (default search.json)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="only merge the ablation problems of these results/bench files "
                         "(runs split with --problems/--out) into --out and print the table")
    a = ap.parse_args()
    if a.merge:
        merged: dict = {}
        for name in a.merge:
            part = json.loads((ROOT / "results" / "bench" / name).read_text())
            for pr in part.get("ablation", part).get("problems", []):
                merged[pr["problem"]] = pr  # a later file wins
        from _problems import ABLATION_PROBLEMS

        order = [p.key for p in ABLATION_PROBLEMS]
        problems = sorted(merged.values(), key=lambda pr: order.index(pr["problem"]))
        ab = {"target_fraction": TARGET, "problems": problems, "merged_from": a.merge}
        ab["summary"] = _summary(problems)
        dest = _write({"machine": {"cpus": os.cpu_count()}, "ablation": ab}, a.out)
        print(f"\nwrote {dest.relative_to(ROOT)}")
        return
    out: dict = {"machine": {"cpus": os.cpu_count()}}
    if not a.skip_cli:
        out["gptj_cli"] = part_b()
    out["storage"] = part_c()
    if not a.skip_ablation:
        out["ablation"] = part_a(a.seeds, a.problems.split(",") if a.problems else None,
                                 partial=a.out.replace(".json", ".partial.json"))
    dest = _write(out, a.out)
    (ROOT / "results" / "bench" / a.out.replace(".json", ".partial.json")).unlink(missing_ok=True)
    print(f"\nwrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
