"""Our training FLOPs, memory and per-operator costs vs the real peer tools.

Reads the committed reference tables (no peer tool needed):

* ``tests/validation/data/llm_analysis_reference.csv`` — llm-analysis 0.2.2
  (``benchmarks/gen_llm_analysis_reference.py``): training FLOPs per micro-batch,
  parameters, per-GPU weights/gradients/optimizer state, activations per layer and per
  GPU, 1020 (model, plan) cases on an A100-80GB;
* ``tests/validation/data/genz_reference.csv`` — GenZ 0.0.16
  (``benchmarks/gen_genz_reference.py``): per-operator prefill roofline of a layer's
  GEMMs and the LM head, 224 rows.

For every quantity it prints ours vs theirs with the relative error per row (a
representative subset of rows on screen, every row in the JSON), the raw agreement
(median and maximum |error| over all rows), and the residual after the named convention
terms of ``tests/validation/test_llm_analysis_reference.py`` (which should be float
rounding). For GenZ it prints our efficiency factors (our time / GenZ's ideal roofline)
per operator. Writes ``results/bench/peers.json``.

Usage::

    python benchmarks/bench_peers.py [--out results/bench/peers.json] [--all]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a plain checkout
    sys.path.insert(0, str(REPO_ROOT))

from tests.validation import test_genz_reference as gz
from tests.validation import test_llm_analysis_reference as la

DEFAULT_OUT = REPO_ROOT / "results" / "bench" / "peers.json"


def _err(ours: float, theirs: float) -> float:
    return ours / theirs - 1.0 if theirs else (0.0 if ours == 0 else float("inf"))


def _summary(errs: list[float]) -> dict[str, Any]:
    a = [abs(e) for e in errs]
    return {"n": len(a), "median_abs_err": statistics.median(a) if a else None,
            "max_abs_err": max(a) if a else None,
            "min_err": min(errs) if errs else None, "max_err": max(errs) if errs else None}


# --------------------------------------------------------------------------- llm-analysis
def llm_analysis_rows() -> list[dict[str, Any]]:
    """One record per reference row: ours, theirs (raw), theirs + named terms."""
    out = []
    for r in la.load_table():
        o = la.ours_row(r)
        spec = la.spec_of(r["model"])
        mem = o["mem"]
        rec: dict[str, Any] = {k: r[k] for k in ("model", "seq", "tp", "pp", "dp", "sp",
                                                 "micro_batch", "recompute", "zero")}
        q: dict[str, tuple[float, float, float | None]] = {}
        # (ours, theirs raw, theirs + named terms)
        q["flop_fwd_bwd"] = (o["flop_no_recompute"], 3 * r["flop_fwd_per_micro_batch"],
                             3 * la.flop_fwd_ours_from_theirs(spec, r))
        theirs_rc = r["flop_total_per_micro_batch"] - 3 * r["flop_fwd_per_micro_batch"]
        want_rc = theirs_rc + (la.flop_fwd_ours_from_theirs(spec, r)
                               - r["flop_fwd_per_micro_batch"]
                               if r["recompute"] == "full" else 0.0)
        q["flop_with_recompute"] = (o["flop_no_recompute"] + o["flop_recompute"],
                                    r["flop_total_per_micro_batch"],
                                    q["flop_fwd_bwd"][2] + want_rc)
        states = la.expected_model_states(spec, r, o["chunks"])
        for part in ("weights", "grads", "optimizer"):
            q[f"{part}_per_gpu"] = (mem[part], r[{"weights": "weight_bytes",
                                                  "grads": "grad_bytes",
                                                  "optimizer": "optimizer_bytes"}[part]],
                                    states[part])
        q["act_per_layer"] = (o["act_per_layer"], r["act_bytes_per_layer"],
                              la.act_per_layer_ours_from_theirs(spec, r))
        act = (mem["activations"] + mem["recompute_working"] + mem["embedding_activations"]
               + mem["head_activations"])
        act_want = la.act_per_gpu_ours_from_theirs(spec, r) if r["pp"] == 1 else None
        q["act_per_gpu"] = (act, r["act_bytes"], act_want)
        q["total_per_gpu"] = (mem["total"], r["total_bytes"],
                              None if act_want is None else act_want + sum(states.values()))
        rec["quantities"] = {
            k: {"ours": v[0], "theirs": v[1], "err": _err(v[0], v[1]),
                "theirs_plus_terms": v[2],
                "residual": None if v[2] is None else _err(v[0], v[2])}
            for k, v in q.items()}
        rec["device"] = o["device"]
        out.append(rec)
    return out


def params_rows() -> list[dict[str, Any]]:
    import workloads

    seen: dict[str, dict[str, Any]] = {}
    for r in la.load_table():
        if r["model"] in seen:
            continue
        spec = la.spec_of(r["model"])
        ours = float(workloads.build(spec, batch=1, seq=r["seq"]).meta["params"])
        theirs = r["num_params_total"]
        seen[r["model"]] = {"model": r["model"], "ours": ours, "theirs": theirs,
                            "err": _err(ours, theirs),
                            "named_terms": la.omitted_params_total(spec),
                            "residual": ours - theirs - la.omitted_params_total(spec)}
    return list(seen.values())


# --------------------------------------------------------------------------- GenZ
def genz_rows() -> list[dict[str, Any]]:
    out = []
    for r in gz.load_table():
        o = gz.ours_op(r)
        out.append({
            "model": r["model"], "batch": r["batch"], "seq": r["seq"], "tp": r["tp"],
            "op": r["op"],
            "flop_ours": o["flop"], "flop_genz": r["flop"],
            "bytes_ours": o["bytes"], "bytes_genz": gz.genz_bytes(r),
            "compute_s_ours": o["compute_s"], "compute_s_genz": r["compute_s"],
            "hbm_bytes_ours": o["hbm_bytes"], "offchip_bytes_genz": gz.genz_offchip_bytes(r),
            "memory_s_ours": o["memory_s"], "memory_s_genz": r["memory_s"],
            "latency_s_ours": o["latency_s"], "latency_s_genz": r["latency_s"],
            "bound_genz": r["bound"],
            "bound_ours": "compute" if o["latency_s"] == o["compute_s"] else "memory",
            "compute_ratio": o["compute_s"] / r["compute_s"],
            "hbm_traffic_ratio": o["hbm_bytes"] / gz.genz_bytes(r),
            "latency_ratio": o["latency_s"] / r["latency_s"],
        })
    return out


# --------------------------------------------------------------------------- printing
def _fmt(v: float) -> str:
    return f"{v:.4g}"


def print_llm_analysis(rows: list[dict[str, Any]], show_all: bool) -> dict[str, Any]:
    keys = list(rows[0]["quantities"])
    summary = {}
    print("\n== llm-analysis 0.2.2 (A100-80GB): ours vs theirs, relative error ==")
    print(f"{'quantity':<22}{'rows':>6}{'median |err|':>14}{'max |err|':>11}"
          f"{'min err':>10}{'max err':>10}{'max |residual|':>16}")
    for k in keys:
        sel = rows if k not in ("act_per_gpu", "total_per_gpu") else [
            r for r in rows if r["pp"] == 1]
        s = _summary([r["quantities"][k]["err"] for r in sel])
        res = [abs(r["quantities"][k]["residual"]) for r in sel
               if r["quantities"][k]["residual"] is not None]
        s["max_abs_residual_after_terms"] = max(res) if res else None
        s["rows"] = "pp=1 only" if k in ("act_per_gpu", "total_per_gpu") else "all"
        summary[k] = s
        resid = "—" if not res else f"{max(res):.1e}"
        print(f"{k:<22}{s['n']:>6}{s['median_abs_err']:>14.2%}{s['max_abs_err']:>11.2%}"
              f"{s['min_err']:>10.2%}{s['max_err']:>10.2%}{resid:>16}")
    print("(residual: after the named convention terms F1-F3, P1-P3, S1, A2-A6 of "
          "tests/validation/test_llm_analysis_reference.py; per-GPU activations and totals\n"
          " summarized for pp=1, where both tools' per-GPU layouts can be reconciled)")

    sub = rows if show_all else [r for r in rows if r["dp"] == 4 and r["zero"] == 1
                                 and r["micro_batch"] == 1 and r["sp"] == (1 if r["tp"] > 1
                                                                           else 0)]
    print(f"\nper row ({'all' if show_all else 'subset: dp=4, ZeRO-1, mb=1, sp when tp>1'}; "
          "ours / theirs − 1)")
    cols = ("flop_fwd_bwd", "flop_with_recompute", "weights_per_gpu", "grads_per_gpu",
            "optimizer_per_gpu", "act_per_layer", "act_per_gpu", "total_per_gpu")
    head = f"{'model':<14}{'tp':>3}{'pp':>3}{'sp':>3}{'recomp':>10}"
    print(head + "".join(f"{c[:13]:>14}" for c in cols))
    for r in sub:
        line = (f"{r['model']:<14}{r['tp']:>3}{r['pp']:>3}{r['sp']:>3}"
                f"{r['recompute']:>10}")
        line += "".join(f"{r['quantities'][c]['err']:>14.2%}" for c in cols)
        print(line)
    return summary


def print_params(rows: list[dict[str, Any]]) -> None:
    print("\n== parameters: ours vs llm-analysis (P1: biases, norms, positions, untied head) ==")
    print(f"{'model':<14}{'ours':>16}{'theirs':>16}{'err':>9}{'named terms':>14}{'residual':>10}")
    for r in rows:
        print(f"{r['model']:<14}{r['ours']:>16,.0f}{r['theirs']:>16,.0f}{r['err']:>9.3%}"
              f"{r['named_terms']:>14,}{r['residual']:>10,.0f}")


def print_genz(rows: list[dict[str, Any]], show_all: bool) -> dict[str, Any]:
    print("\n== GenZ 0.0.16 prefill roofline (312 TFLOP/s, 2039 GB/s, efficiencies 1) ==")
    flop_ok = all(abs(r["flop_ours"] / r["flop_genz"] - 1) < 1e-9 for r in rows)
    bytes_ok = all(abs(r["bytes_ours"] / r["bytes_genz"] - 1) < 1e-9 for r in rows)
    print(f"FLOPs equal in {len(rows)} rows: {flop_ok}; A+W+C bytes equal: {bytes_ok}")
    print("our time / GenZ's ideal (= 1 / our efficiency factor), per operator:")
    print(f"{'op':<12}{'rows':>5}{'compute med':>13}{'compute max':>13}{'HBM bytes med':>15}"
          f"{'HBM max':>9}{'latency med':>13}{'latency max':>13}{'ours mem-bound':>16}")
    summary: dict[str, Any] = {"flop_equal": flop_ok, "bytes_equal": bytes_ok, "per_op": {}}
    for op in gz.OUR_OP:
        sel = [r for r in rows if r["op"] == op]
        c = [r["compute_ratio"] for r in sel]
        h = [r["hbm_traffic_ratio"] for r in sel]
        lat = [r["latency_ratio"] for r in sel]
        mb = sum(r["bound_ours"] == "memory" for r in sel)
        summary["per_op"][op] = {
            "rows": len(sel), "compute_ratio_median": statistics.median(c),
            "compute_ratio_min": min(c), "compute_ratio_max": max(c),
            "hbm_traffic_ratio_median": statistics.median(h), "hbm_traffic_ratio_max": max(h),
            "latency_ratio_median": statistics.median(lat), "latency_ratio_max": max(lat),
            "ours_memory_bound": mb,
            "genz_memory_bound": sum(r["bound_genz"] == "Memory" for r in sel)}
        print(f"{op:<12}{len(sel):>5}{statistics.median(c):>13.3f}{max(c):>13.3f}"
              f"{statistics.median(h):>15.2f}{max(h):>9.2f}{statistics.median(lat):>13.3f}"
              f"{max(lat):>13.3f}{mb:>12}/{len(sel)}")
    sub = rows if show_all else [r for r in rows if r["batch"] == 4 and r["seq"] == 2048]
    print(f"\nper row ({'all' if show_all else 'subset: batch 4, seq 2048'}):")
    print(f"{'model':<14}{'tp':>3}{'op':>11}{'GenZ µs':>10}{'ours µs':>10}{'ratio':>8}"
          f"{'compute':>9}{'HBM B':>8}{'GenZ':>9}{'ours':>9}")
    for r in sub:
        print(f"{r['model']:<14}{r['tp']:>3}{r['op']:>11}{r['latency_s_genz'] * 1e6:>10.1f}"
              f"{r['latency_s_ours'] * 1e6:>10.1f}{r['latency_ratio']:>8.3f}"
              f"{r['compute_ratio']:>9.3f}{r['hbm_traffic_ratio']:>8.2f}"
              f"{r['bound_genz']:>9}{r['bound_ours']:>9}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--all", action="store_true", help="print every row")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    la_rows = llm_analysis_rows()
    p_rows = params_rows()
    gz_rows = genz_rows()
    wall_s = time.perf_counter() - t0

    la_summary = print_llm_analysis(la_rows, args.all)
    print_params(p_rows)
    gz_summary = print_genz(gz_rows, args.all)
    print(f"\n({len(la_rows)} llm-analysis rows, {len(gz_rows)} GenZ rows, our side "
          f"computed in {wall_s:.1f} s)")

    la_meta = json.loads(la.SIDECAR.read_text())
    gz_meta = json.loads(gz.SIDECAR.read_text())
    out = {
        "python_version": platform.python_version(),
        "llm_analysis": {"version": la_meta["llm_analysis_version"],
                         "table": str(la.DATA.relative_to(REPO_ROOT)),
                         "summary": la_summary, "params": p_rows, "rows": la_rows},
        "genz": {"version": gz_meta["genz_version"], "table": str(gz.DATA.relative_to(REPO_ROOT)),
                 "summary": gz_summary, "rows": gz_rows},
        "wall_s": wall_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
