"""Speed of the systolic cost model vs the real SCALE-Sim 3.0.0.

Prints a table and writes ``results/bench/systolic.json``:

(a) evaluations per second of :func:`cost_models.systolic.compute_cycles` on a vector
    of ``--n`` (default 1e6) random GEMM/array pairs (one dataflow string, and a mixed
    array of dataflow strings), best of ``--repeats``;
(b) the wall time of real SCALE-Sim on a few GEMMs, read from the sidecar written by
    ``benchmarks/gen_scalesim_reference.py`` (``tests/validation/data/
    scalesim_reference.json``), or measured now with ``--live`` by running that
    script in the SCALE-Sim venv (``--scalesim-python``, default
    ``$DSE_PEER_VENVS/scalesim/bin/python``, made by
    ``benchmarks/setup_peer_tools.sh``); skipped with a message if neither is
    available.  For each GEMM it also times one scalar call of our model, checks
    that the cycle counts agree, and reports the speed ratios.

Usage::

    python benchmarks/bench_systolic.py [--n 1000000] [--live]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import timeit
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a plain checkout
    sys.path.insert(0, str(REPO_ROOT))

from cost_models.systolic import DATAFLOWS, compute_cycles

SIDECAR = REPO_ROOT / "tests" / "validation" / "data" / "scalesim_reference.json"
GENERATOR = REPO_ROOT / "benchmarks" / "gen_scalesim_reference.py"
DEFAULT_OUT = REPO_ROOT / "results" / "bench" / "systolic.json"
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from _peers import peer_python  # noqa: E402

DEFAULT_SCALESIM_PYTHON = peer_python("scalesim")


def random_designs(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` random GEMMs (log-uniform dims 1..16384) on random arrays (8..256 per side)."""
    rng = np.random.default_rng(seed)
    dims = {
        name: np.exp(rng.uniform(0, np.log(16384), n)).astype(np.int64) + 1
        for name in ("m", "k", "n")
    }
    sides = np.array([8, 16, 32, 64, 128, 256])
    dims["rows"] = rng.choice(sides, n)
    dims["cols"] = rng.choice(sides, n)
    dims["dataflow"] = rng.choice(np.array(DATAFLOWS), n)
    return dims


def best_time_s(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_vectorized(n: int, repeats: int, seed: int) -> dict[str, Any]:
    d = random_designs(n, seed)
    args = (d["m"], d["k"], d["n"], d["rows"], d["cols"])
    t_single = best_time_s(lambda: compute_cycles(*args, "ws"), repeats)
    t_mixed = best_time_s(lambda: compute_cycles(*args, d["dataflow"]), repeats)
    return {
        "n": n,
        "repeats": repeats,
        "seed": seed,
        "single_dataflow_s": t_single,
        "single_dataflow_evals_per_s": n / t_single,
        "mixed_dataflow_s": t_mixed,
        "mixed_dataflow_evals_per_s": n / t_mixed,
    }


def scalesim_timings(live: bool, scalesim_python: Path) -> tuple[list[dict[str, Any]], str]:
    """Return (timings, source) or ([], reason) when SCALE-Sim timings are unavailable."""
    if live:
        if not scalesim_python.exists():
            return [], f"--live: {scalesim_python} not found (create the SCALE-Sim venv)"
        proc = subprocess.run(
            [str(scalesim_python), str(GENERATOR), "--timing-only"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return [], f"SCALE-Sim run failed: {proc.stderr.strip().splitlines()[-1:]}"
        data = json.loads(proc.stdout)
        return data["timings"], f"live run, scalesim {data['scalesim_version']}"
    if SIDECAR.exists():
        data = json.loads(SIDECAR.read_text())
        if data.get("timings"):
            return data["timings"], f"{SIDECAR.relative_to(REPO_ROOT)} (scalesim " + str(
                data.get("scalesim_version")
            ) + ")"
    if scalesim_python.exists():
        return scalesim_timings(True, scalesim_python)
    return [], "no SCALE-Sim timings: sidecar has none and no SCALE-Sim venv was found"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vector length")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live", action="store_true", help="time SCALE-Sim now")
    parser.add_argument("--scalesim-python", type=Path, default=DEFAULT_SCALESIM_PYTHON)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    vec = bench_vectorized(args.n, args.repeats, args.seed)
    per_eval_s = 1.0 / vec["single_dataflow_evals_per_s"]
    print(f"compute_cycles on {args.n:,} GEMM/array pairs (best of {args.repeats}):")
    print(
        f"  one dataflow : {vec['single_dataflow_s'] * 1e3:8.1f} ms"
        f"  {vec['single_dataflow_evals_per_s']:14,.0f} evals/s"
    )
    print(
        f"  mixed (array): {vec['mixed_dataflow_s'] * 1e3:8.1f} ms"
        f"  {vec['mixed_dataflow_evals_per_s']:14,.0f} evals/s"
    )

    timings, source = scalesim_timings(args.live, args.scalesim_python)
    rows: list[dict[str, Any]] = []
    if not timings:
        print(f"\nSCALE-Sim comparison skipped: {source}")
    else:
        print(f"\nSCALE-Sim wall time per GEMM ({source}):")
        header = (
            f"  {'m×k×n':>15} {'array':>7} {'df':>3} {'cycles':>8} {'match':>5} "
            f"{'SCALE-Sim s':>11} {'ours 1 call':>11} {'vs call':>9} {'vs vector':>10}"
        )
        print(header)
        for t in timings:
            g = (t["m"], t["k"], t["n"], t["rows"], t["cols"], t["dataflow"])
            ours = compute_cycles(*g)
            n_calls = 2000
            call_s = timeit.timeit(lambda: compute_cycles(*g), number=n_calls) / n_calls  # noqa: B023
            row = {
                **{key: t[key] for key in ("m", "k", "n", "rows", "cols", "dataflow")},
                "scalesim_compute_cycles": t["compute_cycles"],
                "model_compute_cycles": ours,
                "cycles_match": ours == t["compute_cycles"],
                "scalesim_wall_s": t["wall_s"],
                "model_scalar_call_s": call_s,
                "speedup_vs_scalar_call": t["wall_s"] / call_s,
                "speedup_vs_vectorized_eval": t["wall_s"] / per_eval_s,
            }
            rows.append(row)
            print(
                f"  {f'{g[0]}×{g[1]}×{g[2]}':>15} {f'{g[3]}×{g[4]}':>7} {g[5]:>3} {ours:>8} "
                f"{'yes' if row['cycles_match'] else 'NO':>5} {t['wall_s']:>11.3f} "
                f"{call_s * 1e6:>9.1f}µs {row['speedup_vs_scalar_call']:>9.1e} "
                f"{row['speedup_vs_vectorized_eval']:>10.1e}"
            )
        mean_s = float(np.mean([r["scalesim_wall_s"] for r in rows]))
        print(
            f"  mean SCALE-Sim {mean_s:.3f} s/GEMM; vectorized model {per_eval_s * 1e9:.1f} ns/GEMM"
            f" → {mean_s / per_eval_s:.1e}× faster"
        )

    result = {
        "benchmark": "systolic",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "vectorized": vec,
        "scalesim_source": source,
        "scalesim": rows,
        "scalesim_mean_wall_s_per_gemm": (
            float(np.mean([r["scalesim_wall_s"] for r in rows])) if rows else None
        ),
        "speed_ratio_mean_vs_vectorized": (
            float(np.mean([r["scalesim_wall_s"] for r in rows])) / per_eval_s if rows else None
        ),
        "all_cycles_match": all(r["cycles_match"] for r in rows) if rows else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
