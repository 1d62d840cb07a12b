"""Speed of the single-device evaluation: GPT-J training-step designs per second.

Prints a table and writes ``results/bench/evaluate.json``:

(a) designs evaluated per second, on one CPU core, for the GPT-J training step
    (``workloads.load("gptj")``): :func:`cost_models.evaluate.device_step` (operator costs +
    list schedule + energy) over a :class:`~cost_models.designs.DesignBatch` of ``--designs``
    random designs (default 10,000) drawn from the template grid below, best of
    ``--repeats``; also with area and TDP (what a search scores);
(b) the scalar reference :func:`cost_models.evaluate.evaluate_device` on the same graph,
    per design;
(c) the speed ratio against SCALE-Sim 3.0.0 on the same GEMMs: SCALE-Sim's wall time per
    GEMM (``tests/validation/data/scalesim_reference.json``, written by
    ``benchmarks/gen_scalesim_reference.py`` from real runs) against our full cost of that
    GEMM (latency incl. multi-core split, blocked HBM and fabric traffic, SRAM accesses,
    energy): one ``op_costs`` call on the SCALE-Sim configuration, and the cost per
    (design, GEMM) pair inside ``op_costs`` on the batch of random designs.

Random designs (``--seed``): tensor cores 2^0..2^10, array rows/cols 2^3..2^8, dataflow
os/ws/is, vector cores 2^0..2^6, lanes 2^3..2^10, per-core SRAM 64 KiB..16 MiB, global
buffer 0 or 1..256 MiB, HBM 0.4..3.4 TB/s, clock 0.7..1.9 GHz, bf16, 7 nm (the WHAM/Phaze
ranges of docs/sources.md M2, extended to GPU-like core counts).

Usage::

    python benchmarks/bench_evaluate.py [--designs 10000] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: set before numpy is imported

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from cost_models.area import area_mm2, node_constants
from cost_models.designs import DesignBatch
from cost_models.evaluate import device_step, evaluate_device, op_costs
from cost_models.power import tdp_w
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.types import Graph, Operator

SIDECAR = REPO_ROOT / "tests" / "validation" / "data" / "scalesim_reference.json"
OUT = REPO_ROOT / "results" / "bench" / "evaluate.json"


def random_designs(n: int, seed: int) -> DesignBatch:
    rng = np.random.default_rng(seed)
    gb = np.where(rng.random(n) < 0.2, 0.0, 2.0 ** rng.integers(20, 29, n))
    return DesignBatch.from_arrays(
        name=[f"r{i}" for i in range(n)],
        tensor_cores=2 ** rng.integers(0, 11, n), array_rows=2 ** rng.integers(3, 9, n),
        array_cols=2 ** rng.integers(3, 9, n), dataflow=rng.choice(["os", "ws", "is"], n),
        vector_cores=2 ** rng.integers(0, 7, n), vector_lanes=2 ** rng.integers(3, 11, n),
        sram_per_core_bytes=2.0 ** rng.integers(16, 25, n), global_buffer_bytes=gb,
        hbm_bw_bytes_per_s=rng.uniform(0.4e12, 3.4e12, n), hbm_bytes=80e9,
        freq_hz=rng.uniform(0.7e9, 1.9e9, n), dtype="bf16", tech_node_nm=7.0)


def best_of(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scalar-designs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        except OSError:
            pass

    import workloads

    graph = workloads.load("gptj")
    tech = load_technology(7)
    designs = random_designs(args.designs, args.seed)
    d = len(designs)

    def step_only() -> Any:
        return device_step(graph, designs, tech)

    def step_area_tdp() -> Any:
        c = node_constants(designs, tech)
        s = device_step(graph, designs, tech, constants=c)
        return s, area_mm2(designs, tech, constants=c)["total"], tdp_w(designs, tech,
                                                                    constants=c)["total"]

    step_only()  # warm the per-graph plan cache (built once per graph, ~ms)
    t_step, step = best_of(step_only, args.repeats)
    t_full, _ = best_of(step_area_tdp, args.repeats)
    ms = step.makespan_s

    # (b) scalar reference on presets
    scalar = []
    for name in ("tpuv4", "a100", "h100")[: args.scalar_designs]:
        hw = load_preset(name).hardware
        t, r = best_of(lambda hw=hw: evaluate_device(graph, hw, tech), 1)
        scalar.append({"preset": name, "wall_s": t, "step_time_s": r.makespan_s,
                       "utilization": r.utilization})

    # (c) SCALE-Sim ratio on the same GEMMs
    scalesim_rows = []
    if SIDECAR.exists():
        side = json.loads(SIDECAR.read_text())
        for row in side.get("timings", []):
            m, k, n = int(row["m"]), int(row["k"]), int(row["n"])
            g = Graph(name="gemm", ops=(Operator(name="g", kind="gemm", phase="fwd", m=m, k=k,
                                                 n=n, flop=2.0 * m * k * n),))
            one = DesignBatch.from_arrays(
                tensor_cores=1, array_rows=int(row["rows"]), array_cols=int(row["cols"]),
                dataflow=row["dataflow"], vector_cores=1, vector_lanes=8,
                sram_per_core_bytes=3 * 64 * 1024.0, global_buffer_bytes=0.0,
                hbm_bw_bytes_per_s=1e12, hbm_bytes=1e9, freq_hz=1e9)
            t_one, oc = best_of(lambda g=g, one=one: op_costs(g, one, tech), args.repeats)
            t_vec, _ = best_of(lambda g=g: op_costs(g, designs, tech), args.repeats)
            per_pair = t_vec / d
            scalesim_rows.append({
                "m": m, "k": k, "n": n, "rows": row["rows"], "cols": row["cols"],
                "dataflow": row["dataflow"], "scalesim_wall_s": row["wall_s"],
                "model_one_design_call_s": t_one, "speedup_one_call": row["wall_s"] / t_one,
                "model_s_per_design_gemm_in_batch": per_pair,
                "speedup_in_batch": row["wall_s"] / per_pair,
                "model_compute_cycles": float(oc.compute_s[0, 0] * 1e9),
                "scalesim_compute_cycles": row["compute_cycles"],
            })

    result = {
        "benchmark": "evaluate",
        "python": platform.python_version(), "numpy": np.__version__,
        "machine": platform.machine(), "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity") else None,
        "workload": "gptj", "graph_unique_ops": graph.num_unique_ops,
        "graph_ops_per_step": graph.num_ops, "designs": d, "seed": args.seed,
        "repeats": args.repeats,
        "device_step_s": t_step, "designs_per_s": d / t_step,
        "device_step_area_tdp_s": t_full, "designs_per_s_with_area_tdp": d / t_full,
        "us_per_design_op": t_step / d / graph.num_unique_ops * 1e6,
        "step_time_s_quantiles": {q: float(np.quantile(ms, q)) for q in (0.0, 0.5, 1.0)},
        "scalar_reference": scalar,
        "scalesim_source": str(SIDECAR.relative_to(REPO_ROOT)) if SIDECAR.exists() else None,
        "scalesim": scalesim_rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"GPT-J training step ({graph.num_unique_ops} unique ops, {graph.num_ops} per step), "
          f"{d} random designs, one core, best of {args.repeats}")
    print(f"  device_step                {t_step:8.3f} s  {d / t_step:10,.0f} designs/s  "
          f"({result['us_per_design_op']:.2f} us per design-op)")
    print(f"  + area + TDP               {t_full:8.3f} s  {d / t_full:10,.0f} designs/s")
    for s in scalar:
        print(f"  evaluate_device ({s['preset']:5s})   {s['wall_s']:8.3f} s per design "
              f"(step {s['step_time_s']:.2f} s, utilization {s['utilization']:.2f}) -> "
              f"vectorized is {s['wall_s'] / (t_step / d):,.0f}x faster")
    if scalesim_rows:
        print(f"  SCALE-Sim 3.0.0 vs op_costs, same GEMMs ({len(scalesim_rows)}):")
        print(f"    {'m':>5} {'k':>5} {'n':>5} {'RxC':>7} df  {'SCALE-Sim s':>11} "
              f"{'1 call us':>9} {'speedup':>9} {'batch us':>9} {'speedup':>11}  cycles equal")
        for r in scalesim_rows:
            print(f"    {r['m']:>5} {r['k']:>5} {r['n']:>5} {r['rows']:>3}x{r['cols']:<3} "
                  f"{r['dataflow']}  {r['scalesim_wall_s']:11.3f} "
                  f"{r['model_one_design_call_s'] * 1e6:9.0f} {r['speedup_one_call']:9,.0f} "
                  f"{r['model_s_per_design_gemm_in_batch'] * 1e6:9.3f} "
                  f"{r['speedup_in_batch']:11,.0f}  "
                  f"{r['model_compute_cycles'] == r['scalesim_compute_cycles']}")
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
