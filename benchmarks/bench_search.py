"""Search quality and speed (issue 5 acceptance; design brief §6).

A. On a space small enough to enumerate — ``bert-large`` on one device, area 200 mm²,
   the default design space — the exhaustive optimum; the ``wham`` heuristic's result as a
   fraction of it and the evaluations it needed (target: ≥ 99% with ≤ 5% of exhaustive's
   evaluations); Optuna TPE and random search at the same budget; and how many
   evaluations TPE needs to match the heuristic.
B. The wall time of ``dse search --workload gptj --area 400`` with defaults (target
   ≤ 60 s on the 2-core development machine) and its margin over the TPU-like baseline
   of the same area, with the critical-path shares of both (the reason).

C. Storage batching: trials written with ``study.add_trials`` vs the batched path.

Prints tables and writes ``results/bench/search.json``.

    python benchmarks/bench_search.py [--seeds 3] [--tpe-max 3000] [--skip-cli]
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

warnings.filterwarnings("ignore")


def _problem(workload: str, area: float):  # type: ignore[no-untyped-def]
    from search.runner import SearchConfig, build_problem

    return build_problem(SearchConfig(workloads=(workload,), area_mm2=area))


def _best(ev) -> float:  # type: ignore[no-untyped-def]
    rows = ev.top(1)
    return float(ev.columns()["value"][rows[0]]) if len(rows) else 0.0


def part_a(seeds: int, tpe_max: int) -> dict:
    from search.baselines import exhaustive_search, random_search
    from search.evaluator import Evaluator
    from search.global_search import global_search
    from search.optuna_search import run_optuna
    from search.runner import baseline_designs

    workload, area = "bert-large", 200.0
    pb = _problem(workload, area)
    bases = [b for _, _, b, _ in baseline_designs(pb) if b is not None]

    t0 = time.perf_counter()
    ex = Evaluator(pb)
    n_feasible: dict[str, int] = {}
    exhaustive_search(ex, on_feasible_count=lambda n: n_feasible.setdefault("n", n))
    t_ex = time.perf_counter() - t0
    opt = _best(ex)
    c = ex.columns()
    opt_design = pb.space.label(c["idx"][ex.top(1)[0]])
    print(f"\nA. {workload}, area {area:g} mm², 1 device, default space "
          f"({pb.space.size} designs, {n_feasible['n']} within the area)")
    print(f"   exhaustive: optimum {opt:.4f} samples/s ({opt_design}), "
          f"{ex.evaluations} evaluations, {t_ex:.1f} s "
          f"({ex.evaluations / t_ex:.0f} designs/s)")

    rows = []
    for s in range(seeds):
        t0 = time.perf_counter()
        ev = Evaluator(pb)
        res = global_search(ev, seed=s, baselines=bases)
        t_w = time.perf_counter() - t0
        w_best = _best(ev)
        budget = res.evaluations
        row = {"seed": s, "wham_value": w_best, "wham_fraction": w_best / opt,
               "wham_evaluations": budget,
               "wham_evaluation_fraction": budget / ex.evaluations, "wham_s": t_w}
        # TPE and random at the same budget
        t0 = time.perf_counter()
        ev_t = Evaluator(pb)
        run_optuna(ev_t, n_trials=budget, seed=s)
        row.update(tpe_value=_best(ev_t), tpe_fraction=_best(ev_t) / opt,
                   tpe_s=time.perf_counter() - t0)
        t0 = time.perf_counter()
        ev_r = Evaluator(pb)
        random_search(ev_r, seed=s, budget=budget)
        row.update(random_value=_best(ev_r), random_fraction=_best(ev_r) / opt,
                   random_s=time.perf_counter() - t0)
        # TPE until it matches the heuristic (or tpe_max trials)
        t0 = time.perf_counter()
        ev_m = Evaluator(pb)
        run_optuna(ev_m, n_trials=tpe_max, seed=s)
        conv = ev_m.convergence
        match = next((p["evaluations"] for p in conv if p["best"] >= w_best * (1 - 1e-9)),
                     None)
        match99 = next((p["evaluations"] for p in conv if p["best"] >= 0.99 * w_best), None)
        trials_match = None
        if match is not None:  # trials (duplicates included) until that evaluation
            trials_match = match  # run_optuna evaluates each trial once; cache hits are rare
        row.update(tpe_evaluations_to_match=match, tpe_evaluations_to_99pct=match99,
                   tpe_trials_run=tpe_max, tpe_distinct_evaluations=ev_m.evaluations,
                   tpe_long_value=_best(ev_m), tpe_long_s=time.perf_counter() - t0,
                   tpe_trials_to_match=trials_match)
        rows.append(row)
        print(f"   seed {s}: wham {100 * row['wham_fraction']:.2f}% of optimum with "
              f"{budget} evaluations ({100 * row['wham_evaluation_fraction']:.2f}% of "
              f"exhaustive, {t_w:.1f} s) | at that budget TPE {100 * row['tpe_fraction']:.2f}%, "
              f"random {100 * row['random_fraction']:.2f}% | TPE matches wham after "
              f"{match if match is not None else f'>{tpe_max}'} evaluations "
              f"(99% of it after {match99})")
    print("\n   | seed | wham % opt | wham evals (% exh.) | TPE % (same budget) | random % "
          "| TPE evals to match |")
    print("   |---|---|---|---|---|---|")
    for r in rows:
        print(f"   | {r['seed']} | {100 * r['wham_fraction']:.2f} | {r['wham_evaluations']} "
              f"({100 * r['wham_evaluation_fraction']:.2f}%) | {100 * r['tpe_fraction']:.2f} | "
              f"{100 * r['random_fraction']:.2f} | "
              f"{r['tpe_evaluations_to_match'] or '>' + str(tpe_max)} |")
    return {"workload": workload, "area_mm2": area, "space_size": pb.space.size,
            "feasible_designs": n_feasible["n"], "exhaustive_evaluations": ex.evaluations,
            "exhaustive_s": t_ex, "optimum_samples_per_s": opt, "optimum_design": opt_design,
            "runs": rows,
            "acceptance": {
                "wham_min_fraction": min(r["wham_fraction"] for r in rows),
                "wham_max_evaluation_fraction": max(r["wham_evaluation_fraction"]
                                                    for r in rows),
                "target": ">= 0.99 of the optimum with <= 0.05 of exhaustive's evaluations"}}


def part_b() -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-gptj-"))
    cmd = [sys.executable, "-m", "dse.cli", "search", "--workload", "gptj", "--area", "400",
           "--out", str(out / "run"), "--json"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"dse search failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    r = json.loads(p.stdout)
    tpu = next(b for b in r["baselines"] if b["name"] == "tpu-like")
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

    res = {"command": " ".join(cmd[1:]), "wall_s_process": wall, "wall_s_reported": r["wall_s"],
           "evaluations": r["evaluations"], "best": brief(best), "tpu_like": brief(tpu),
           "margin_over_tpu_like": margin,
           "ilp_refinement": best.get("ilp_refinement"),
           "nvdla_like_samples_per_s": next(b for b in r["baselines"]
                                            if b["name"] == "nvdla-like").get("samples_per_s")}
    print(f"\nB. {res['command']}: {wall:.1f} s wall (process), {r['wall_s']:.1f} s inside, "
          f"{r['evaluations']} evaluations")
    for name, e in (("mined", res["best"]), ("TPU-like", res["tpu_like"])):
        print(f"   {name:<9} {e['design']:<40} {e['samples_per_s']:.4g} samples/s, "
              f"{e['macs']} MACs, {e['area_mm2']:.1f} mm², MFU {100 * (e['mfu'] or 0):.1f}%, "
              f"critical path {e['critical_path_shares']}")
    print(f"   margin over the TPU-like baseline of the same area: {100 * margin:+.1f}%")
    res["ablation"] = ablation(best, tpu)
    return res


def ablation(best: dict, tpu: dict) -> list[dict]:
    """From the TPU-like baseline to the mined design one change at a time (each step
    refilled to the area budget with tensor cores), to attribute the margin."""
    import dataclasses

    from cost_models.designs import DesignBatch
    from dse.types import HardwareConfig
    from search.baselines import scaled_baseline
    from search.runner import _area_tdp_fn

    pb = _problem("gptj", 400.0)
    fields = {f.name for f in dataclasses.fields(HardwareConfig)}
    t_hw = HardwareConfig(**{k: v for k, v in tpu["hardware"].items() if k in fields})
    b_hw = HardwareConfig(**{k: v for k, v in best["hardware"].items() if k in fields})
    area_fn = _area_tdp_fn(pb.tech)

    def refill(hw: HardwareConfig) -> HardwareConfig:
        return scaled_baseline(hw, area_fn, 400.0, name=hw.name)

    steps = [("TPU-like baseline", t_hw)]
    cur = dataclasses.replace(t_hw, dataflow=b_hw.dataflow, name="+dataflow")
    steps.append((f"+ {b_hw.dataflow} dataflow", cur))
    cur = refill(dataclasses.replace(cur, sram_per_core_bytes=b_hw.sram_per_core_bytes,
                                     global_buffer_bytes=b_hw.global_buffer_bytes
                                     * cur.tensor_cores / b_hw.tensor_cores,
                                     name="+sram"))
    steps.append(("+ mined SRAM sizes, area refilled with cores", cur))
    cur = refill(dataclasses.replace(cur, array_rows=b_hw.array_rows,
                                     array_cols=b_hw.array_cols, name="+array"))
    steps.append((f"+ {b_hw.array_rows}x{b_hw.array_cols} arrays, refilled", cur))
    steps.append(("mined design", b_hw))
    sc = pb.score_designs(DesignBatch.from_configs([h for _, h in steps]))
    out = []
    print("\n   ablation (TPU-like -> mined, same 400 mm² budget):")
    for k, (label, h) in enumerate(steps):
        row = {"step": label, "tensor_cores": h.tensor_cores,
               "array": f"{h.array_rows}x{h.array_cols}", "dataflow": h.dataflow,
               "macs": h.macs, "area_mm2": float(sc.area_mm2[k]),
               "samples_per_s": float(sc.samples_per_s[0, k]),
               "mfu_proxy": float(sc.samples_per_s[0, k]) / h.peak_flop_per_s}
        out.append(row)
        print(f"   {label:<46} {h.tensor_cores:>3} x {row['array']:<8} {h.dataflow}  "
              f"{h.macs:>7} MACs {row['area_mm2']:6.1f} mm²  {row['samples_per_s']:.4g} samples/s")
    return out


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
    trials = ev.make_trials(idx, ev.scores_at(rows), "bench", 0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    slow = optuna.create_study(storage=f"sqlite:///{tmp}/slow.db", study_name="s",
                               direction="maximize")
    t0 = time.perf_counter()
    slow.add_trials(trials)
    t_slow = time.perf_counter() - t0
    fast = open_study(open_storage(f"sqlite:///{tmp}/fast.db"), "s", ["maximize"], ["v"])
    t0 = time.perf_counter()
    persist_trials(fast, trials)
    t_fast = time.perf_counter() - t0
    attrs = len(trials[0].user_attrs)
    print(f"\nC. persisting {n} trials ({attrs} user attributes each) into SQLite: "
          f"add_trials {t_slow:.2f} s ({1e3 * t_slow / n:.1f} ms/trial), batched "
          f"{t_fast:.3f} s ({1e3 * t_fast / n:.2f} ms/trial): {t_slow / t_fast:.0f}x")
    return {"trials": n, "user_attrs_per_trial": attrs, "add_trials_s": t_slow,
            "persist_trials_s": t_fast, "speedup": t_slow / t_fast}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tpe-max", type=int, default=3000)
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    a = ap.parse_args()
    out: dict = {"machine": {"cpus": os.cpu_count()}}
    if not a.skip_cli:
        out["gptj_cli"] = part_b()
    out["storage"] = part_c()
    if not a.skip_quality:
        out["quality"] = part_a(a.seeds, a.tpe_max)
    dest = ROOT / "results" / "bench" / "search.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    from dse.types import jsonable

    dest.write_text(json.dumps(jsonable(out), indent=2) + "\n")
    print(f"\nwrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
