"""The in-loop list scheduler against the exact ILP of the same problem (issue 10).

For the repeated block (one transformer layer) of five transformer workloads and the
whole step graph of DLRM, forward and backward, on three designs of the default grid, the
malleable list schedule of :mod:`cost_models.schedule` (what every search evaluation uses)
is compared with the malleable ILP of :mod:`search.malleable_ilp` (HiGHS, a time limit per
problem): gap = (list − ILP) / list, and whether the ILP proved optimality. Also the share
of tensor operators each runs on part of the chip (operator-level parallelism).

Prints a table and writes ``results/bench/schedule.json``.

    python benchmarks/bench_schedule.py [--time-limit 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKLOADS = ("gpt2", "bert-large", "gptj", "llama2-7b", "megatron-1.7b", "dlrm-kaggle")
DESIGNS = {
    "8x64x64 ws": {"tensor_cores": 8, "array_rows": 64, "array_cols": 64, "dataflow": "ws"},
    "32x32x32 os": {"tensor_cores": 32, "array_rows": 32, "array_cols": 32, "dataflow": "os"},
    "6x128x128 ws": {"tensor_cores": 6, "array_rows": 128, "array_cols": 128,
                     "dataflow": "ws"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=20.0)
    a = ap.parse_args()
    import workloads as wl
    from cost_models.designs import DesignBatch
    from cost_models.evaluate import device_step
    from cost_models.opcost import graph_arrays
    from cost_models.technology import load_technology
    from cost_models.training import split_phases
    from search.malleable_ilp import malleable_ilp
    from search.space import default_space
    from workloads.parallel import shard_segments

    tech = load_technology(7)
    space = default_space()
    rows = []
    print(f"list schedule vs ILP (time limit {a.time_limit:g} s per problem)\n")
    print("| workload | graph | ops (tensor) | design | list (ms) | ILP (ms) | gap | ILP optimal "
          "| tensor ops on part of the chip: list / ILP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in WORKLOADS:
        spec = wl.model_spec(name)
        if spec.family == "transformer":
            g = shard_segments(spec, micro_batch=1, seq=int(spec.default_seq or 1024)).block
            label = "one layer"
        else:
            g = wl.load(name, batch=8)
            label = "whole step (batch 8)"
        ph = split_phases(g)
        for phase, sub in (("fwd", ph.fwd), ("bwd", ph.bwd)):
            arrs = graph_arrays(sub)
            n_tc = int((arrs.unit_code == 0).sum())
            for dname, fields in DESIGNS.items():
                base = {"vector_cores": 4, "vector_lanes": 1024,
                        "sram_per_core_bytes": 2.0 * 2**20,
                        "global_buffer_bytes": 32.0 * 2**20, "hbm_stacks": 5}
                hw = space.config(space.index_of({**base, **fields}))
                st = device_step(sub, DesignBatch.from_configs([hw]), tech)
                dur = np.asarray(st.costs.latency_levels_s[0]) * arrs.count[:, None]
                t0 = time.perf_counter()
                r = malleable_ilp(arrs.topology, dur, st.level_ok[0],
                                  time_limit_s=a.time_limit)
                wall = time.perf_counter() - t0
                lv = np.asarray(st.level[0])
                part_list = int(((arrs.unit_code == 0) & (lv > 0)).sum())
                part_ilp = int(sum(1 for i, x in enumerate(r.level)
                                   if arrs.unit_code[i] == 0 and x > 0))
                row = {"workload": name, "graph": f"{label} {phase}", "ops": len(sub.ops),
                       "tensor_ops": n_tc, "design": dname, "list_s": r.list_makespan_s,
                       "ilp_s": r.makespan_s, "ilp_lower_bound_s": r.lower_bound_s,
                       "gap": r.gap, "optimal": r.optimal, "ilp_wall_s": wall,
                       "variables": r.variables, "constraints": r.constraints,
                       "partial_tensor_ops_list": part_list,
                       "partial_tensor_ops_ilp": part_ilp}
                rows.append(row)
                print(f"| {name} | {label} {phase} | {len(sub.ops)} ({n_tc}) | {dname} | "
                      f"{1e3 * r.list_makespan_s:.4g} | {1e3 * r.makespan_s:.4g} | "
                      f"{100 * r.gap:.2f}% | {'yes' if r.optimal else 'no'} | "
                      f"{part_list} / {part_ilp} |", flush=True)
    gaps = [r["gap"] for r in rows]
    summary = {"problems": len(rows), "mean_gap": float(np.mean(gaps)),
               "median_gap": float(np.median(gaps)), "max_gap": float(np.max(gaps)),
               "proven_optimal": sum(r["optimal"] for r in rows),
               "workloads": sorted({r["workload"] for r in rows})}
    print(f"\ngap over {len(rows)} problems: mean {100 * summary['mean_gap']:.2f}%, median "
          f"{100 * summary['median_gap']:.2f}%, max {100 * summary['max_gap']:.2f}%; ILP "
          f"proved optimality on {summary['proven_optimal']}")
    dest = ROOT / "results" / "bench" / "schedule.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"machine": {"cpus": os.cpu_count()},
                                "time_limit_s": a.time_limit, "rows": rows,
                                "summary": summary}, indent=2) + "\n")
    print(f"wrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
