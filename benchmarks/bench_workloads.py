"""Time and peak memory to build training graphs (issue 2 target: < 1 s, < 200 MB for
gpt3-175b and dlrm).

Each build starts from the zoo name (YAML parsing included; the spec cache is cleared),
builds the full training graph at the zoo's default batch and sequence, and also builds
its columnar view (``Graph.columns``, what the cost models read). Time: median of
``--repeat`` runs (``time.perf_counter``); memory: ``tracemalloc`` peak of one run.

    python benchmarks/bench_workloads.py [--repeat 5] [--out results/bench/workloads.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import workloads
from workloads import zoo as zoo_mod

TARGET_S = 1.0
TARGET_BYTES = 200e6
REQUIRED = ("gpt3-175b", "dlrm")
ALSO = ("megatron-1t", "gptj", "llama3-8b", "bert-large", "resnet50", "mobilenetv2", "gnmt",
        "dlrm-kaggle")


def _build(name: str, tp: int = 1) -> object:
    zoo_mod._zoo_spec.cache_clear()
    spec = workloads.model_spec(name)
    g = workloads.build(spec, tp=tp) if tp > 1 else workloads.build(spec)
    _ = g.columns
    return g


def measure(name: str, repeat: int, tp: int = 1) -> dict[str, object]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        g = _build(name, tp)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    g = _build(name, tp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    m = g.meta  # type: ignore[attr-defined]
    return {
        "workload": name, "tp": tp, "batch": m["batch"], "seq_len": m.get("seq_len"),
        "unique_ops": g.num_unique_ops, "executed_ops": g.num_ops,  # type: ignore[attr-defined]
        "build_s_median": statistics.median(times), "build_s_max": max(times),
        "peak_bytes": peak, "train_flop": m["train_flop"],
        "meets_target": statistics.median(times) < TARGET_S and peak < TARGET_BYTES,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "workloads.json"))
    args = ap.parse_args(argv)
    rows = [measure(n, args.repeat) for n in REQUIRED]
    rows.append(measure("gpt3-175b", args.repeat, tp=8))
    rows += [measure(n, args.repeat) for n in ALSO]
    head = (f"{'workload':<13} {'tp':>3} {'batch':>6} {'seq':>5} {'unique':>7} {'executed':>9} "
            f"{'median s':>9} {'peak MB':>8} {'target':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        seq = "-" if r["seq_len"] is None else str(r["seq_len"])
        print(f"{r['workload']:<13} {r['tp']:>3} {r['batch']:>6} {seq:>5} {r['unique_ops']:>7} "
              f"{r['executed_ops']:>9} {r['build_s_median']:>9.4f} "
              f"{r['peak_bytes'] / 1e6:>8.2f} {'ok' if r['meets_target'] else 'MISS':>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "workloads", "target_s": TARGET_S, "target_bytes": TARGET_BYTES,
        "repeat": args.repeat, "python": platform.python_version(),
        "machine": platform.machine(), "rows": rows,
        "required_met": all(r["meets_target"] for r in rows if r["workload"] in REQUIRED),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0 if result["required_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
