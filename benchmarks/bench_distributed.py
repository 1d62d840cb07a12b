"""Distributed training model vs published A100 cluster runs, and its speed.

Prints, and writes ``results/bench/distributed.json``:

(a) the validation table: for every run of ``tests/validation/data/published_training.yaml``
    (Narayanan et al. SC'21 Table 1; Korthikanti et al. 2022 Table 5) the published and
    modelled step time and per-GPU TFLOP/s (Narayanan's Eq. 3 counting), the error, the
    model's bubble / p2p / tensor-parallel / tail time and memory per GPU; then the mean
    absolute percentage error and the ranking check of the test;
(a'') the ablation of Megatron 2021-2022's separate gradient-accumulation add and bias
    reduction (both fused into the GEMM, then the add, then both);
(a') one layer of the 22B model against Korthikanti et al. 2022 Table 4 (forward and
    backward per layer, five recomputation / sequence-parallel variants);
(b) the speed: wall time of ``evaluate_training`` (one design) and designs per second of
    ``evaluate_training_batch`` on ``--designs`` random variants of the a100 preset for
    GPT-3 175B on 1024 GPUs (tp 8, pp 8, dp 16), and the plan search on 64 GPUs;
(c) the Llama 3.1 runs on DGX H100 of ``tests/validation/data/published_training_h100.yaml``
    (NeMo 2 / Megatron-Core 2025: context parallelism, uneven interleaved stages, FP8) with
    the megatron-core-2024 stack: published and modelled step time, error, MAPE;
(d) the DeepSeek-V3 and Qwen3 MoE runs of ``tests/validation/data/published_training_moe.yaml``
    (mixture of experts with EP 64 over 8 nodes; dgxc-benchmarking, Megatron-Bridge, the
    DeepSeek-V3 report on H800) with each source's stack: step time, error, the
    all-to-all's share, MAPE; (d') the FP8 DeepSeek-V3 rows' memory as each memory
    mechanism is added (fp8 GEMM inputs, moe_act, routing weights in the activation);
(e) DLRM against NVIDIA's MLPerf Training submissions (v1.0-v2.1, HugeCTR, one to 14
    nodes) of ``tests/validation/data/published_training_dlrm.yaml``: the published time
    to train (olympic mean of the runs) against the model's training steps plus the
    interleaved evaluations, the step, the embedding exchange's share; (e') the same with
    each option of the table planner (data-parallel, column-wise, table-row-wise tables)
    taken away.

Usage::

    python benchmarks/bench_distributed.py [--designs 256] [--out results/bench/distributed.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a plain checkout
    sys.path.insert(0, str(REPO_ROOT))

from cost_models.designs import DesignBatch
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.types import ParallelPlan, SystemConfig
from search.plans import evaluate_training_batch
from search.trainstep import evaluate_training
from workloads.spec import TransformerSpec

DATA = REPO_ROOT / "tests" / "validation" / "data" / "published_training.yaml"
DEFAULT_OUT = REPO_ROOT / "results" / "bench" / "distributed.json"
SEQ, VOCAB = 2048, 51200


def _spec(r: dict[str, Any], grad_accumulation: str = "separate",
          bias_grad: str = "separate", cross_entropy: str = "fp32") -> TransformerSpec:
    h = r["hidden"]
    return TransformerSpec(name=r["id"], model_type="gpt2", layers=r["layers"], hidden=h,
                           heads=r["heads"], ffn=4 * h, vocab=VOCAB, max_positions=SEQ,
                           default_seq=SEQ, default_batch=r["global_batch"], source=r["source"],
                           # Megatron-LM 2021-2022 (stacks megatron-2021/2022): no fused
                           # attention; fp16 weight gradients summed by a separate add,
                           # bias gradients by a separate reduction; the loss in fp32 passes
                           attention="unfused", grad_accumulation=grad_accumulation,
                           bias_grad=bias_grad, cross_entropy=cross_entropy)


def _plan(r: dict[str, Any]) -> ParallelPlan:
    return ParallelPlan(tp=r["tp"], pp=r["pp"], dp=r["dp"], global_batch=r["global_batch"],
                        micro_batch=r["micro_batch"], schedule=r["schedule"],
                        interleave=r["interleave"], recompute=r["recompute"],
                        sequence_parallel=r["sequence_parallel"])


def _flop(r: dict[str, Any]) -> float:
    b, l, h = r["global_batch"], r["layers"], r["hidden"]
    return 96 * b * SEQ * l * h * h * (1 + SEQ / (6 * h) + VOCAB / (16 * l * h))


def validation(grad_accumulation: str = "separate", bias_grad: str = "separate",
               cross_entropy: str = "fp32") -> dict[str, Any]:
    """(a) The A100 rows; the arguments set the Megatron 2021-2022 weight-gradient kernels
    and loss (``TransformerSpec``'s fields of those names) for the ablation (a'')."""
    d = yaml.safe_load(DATA.read_text())
    system = SystemConfig(**d["system"])
    hw = load_preset("a100").hardware
    tech = load_technology(hw.tech_node_nm)
    rows = []
    for r in d["runs"]:
        n = r["tp"] * r["pp"] * r["dp"]
        f = _flop(r)
        if "tflops_per_gpu" in r:
            pub = f / (n * r["tflops_per_gpu"] * 1e12)
            lo, hi = f / (n * (r["tflops_per_gpu"] + 0.5) * 1e12), \
                f / (n * (r["tflops_per_gpu"] - 0.5) * 1e12)
        else:
            pub = r["iteration_time_s"]
            lo, hi = pub - 0.005, pub + 0.005
        ev = evaluate_training(_spec(r, grad_accumulation, bias_grad, cross_entropy), hw,
                               system, _plan(r),
                               tech, seq=SEQ,
                               dp_overlap=r["ddp"] == "torch",
                               tp_overlap=d["sources"][r["source"]].get("tp_overlap", True))
        ph = ev.breakdown["phase_s"]
        rows.append({
            "id": r["id"], "source": r["source"], "table": r["table"], "row": r["row"],
            "gpus": n, "tp": r["tp"], "pp": r["pp"], "dp": r["dp"],
            "micro_batch": r["micro_batch"], "global_batch": r["global_batch"],
            "schedule": r["schedule"] + (f" v={r['interleave']}" if r["interleave"] > 1 else ""),
            "recompute": r["recompute"] + ("+sp" if r["sequence_parallel"] else ""),
            "published_step_s": pub, "published_low_s": lo, "published_high_s": hi,
            "model_step_s": ev.step_time_s,
            "published_tflops_per_gpu": f / (n * pub) / 1e12,
            "model_tflops_per_gpu": f / (n * ev.step_time_s) / 1e12,
            "error": ev.step_time_s / pub - 1,
            "bubble_s": ph["bubble_s"], "p2p_s": ph["p2p_s"], "tail_s": ph["tail_s"],
            "tp_comm_s": ev.breakdown["comm_s"]["tp_s"],
            "memory_gib": ev.memory_per_device_bytes / 2**30, "fits_memory": ev.fits_memory,
            "mfu": ev.extra["mfu"],
        })
    errs = np.abs([r["error"] for r in rows])
    discordant = []
    for src in sorted({r["source"] for r in rows}):
        sub = [r for r in rows if r["source"] == src]
        for i, a in enumerate(sub):
            for b in sub[i + 1:]:
                tied = a["published_high_s"] >= b["published_low_s"] and \
                    b["published_high_s"] >= a["published_low_s"]
                if not tied and (a["published_step_s"] - b["published_step_s"]) * \
                        (a["model_step_s"] - b["model_step_s"]) < 0:
                    discordant.append([a["id"], b["id"]])
    from scipy.stats import spearmanr

    rho = float(spearmanr([r["published_step_s"] for r in rows],
                          [r["model_step_s"] for r in rows])[0])
    by_src = {src: float(np.mean([abs(r["error"]) for r in rows if r["source"] == src]))
              for src in sorted({r["source"] for r in rows})}
    return {"rows": rows, "mape": float(errs.mean()), "max_abs_error": float(errs.max()),
            "mean_error": float(np.mean([r["error"] for r in rows])),
            "mape_by_source": by_src, "discordant_pairs": discordant, "spearman_rho": rho,
            "system": d["system"], "hardware": "a100"}


def weight_gradient_ablation(full: dict[str, Any]) -> list[dict[str, Any]]:
    """(a'') A100 MAPE with the separate gradient-accumulation add and bias reduction of
    Megatron-LM 2021-2022 (``docs/distributed.md`` §8) fused into the GEMM instead and its
    fp32 loss passes as one, cumulatively: all fused, the add only, add and bias, all
    three (``full``: the table (a))."""
    out = []
    for ga, bg, ce in (("fused", "fused", "fused"), ("separate", "fused", "fused"),
                       ("separate", "separate", "fused")):
        v = validation(ga, bg, ce)
        out.append({"grad_accumulation": ga, "bias_grad": bg, "cross_entropy": ce,
                    "mape": v["mape"], "mean_error": v["mean_error"]})
    out.append({"grad_accumulation": "separate", "bias_grad": "separate",
                "cross_entropy": "fp32", "mape": full["mape"], "mean_error": full["mean_error"]})
    return out


def layer_times() -> dict[str, Any]:
    """(a') One transformer layer of the 22B model (Korthikanti et al. 2022 Table 4):
    forward and backward per layer, published and modelled
    (``tests/validation/test_published_training.py::layer_time_rows``)."""
    from tests.validation.test_published_training import layer_time_rows

    rows = layer_time_rows()

    def mape(pub: str, mod: str) -> float:
        return float(np.mean([abs(r[mod] / r[pub] - 1) for r in rows]))

    return {"rows": rows, "mape_forward": mape("forward_ms", "model_forward_ms"),
            "mape_backward": mape("backward_ms", "model_backward_ms"),
            "mape_sum": float(np.mean([abs((r["model_forward_ms"] + r["model_backward_ms"])
                                           / (r["forward_ms"] + r["backward_ms"]) - 1)
                                       for r in rows]))}


DATA_H100 = REPO_ROOT / "tests" / "validation" / "data" / "published_training_h100.yaml"


def validation_h100() -> dict[str, Any]:
    """(c) Llama 3.1 on DGX H100 (NVIDIA dgxc-benchmarking, NeMo 2 / Megatron-Core 2025):
    the published plan of each row with the megatron-core-2024 stack, the row's preset
    (``h100`` for BF16, ``h100-fp8`` for FP8) and the NeMo recipe's distributed optimizer
    (ZeRO-1 over dp·cp)."""
    import workloads
    from cost_models.stacks import load_stack

    d = yaml.safe_load(DATA_H100.read_text())
    st = load_stack(d["sources"]["dgxc2025"]["stack"])
    rows = []
    for r in d["runs"]:
        p = load_preset(r["hardware"])
        vp = int(r["vp"])
        plan = ParallelPlan(tp=r["tp"], pp=r["pp"], cp=r["cp"], dp=r["dp"],
                            global_batch=r["global_batch"], micro_batch=r["micro_batch"],
                            schedule="interleaved" if vp > 1 else "1f1b", interleave=vp,
                            sequence_parallel=r["tp"] > 1, zero_stage=1)
        spec = dataclasses.replace(workloads.model_spec(r["model"]), cross_entropy=d[
            "sources"]["dgxc2025"].get("cross_entropy", st.cross_entropy))  # the recipe's loss
        ev = evaluate_training(spec, p.hardware, p.system, plan,
                               load_technology(p.hardware.tech_node_nm), 8192,
                               dp_overlap=st.dp_overlap, tp_overlap=st.tp_overlap)
        ph = ev.breakdown["phase_s"]
        rows.append({
            "id": r["id"], "model": r["model"], "hardware": r["hardware"], "gpus": r["gpus"],
            "plan": f"{r['tp']}/{r['cp']}/{r['pp']}/{r['dp']}" + (f" v{vp}" if vp > 1 else ""),
            "published_step_s": r["step_s"], "model_step_s": ev.step_time_s,
            "error": ev.step_time_s / r["step_s"] - 1,
            "bubble_s": ph["bubble_s"], "p2p_s": ph["p2p_s"], "tail_s": ph["tail_s"],
            "tp_comm_s": ev.breakdown["comm_s"]["tp_s"],
            "cp_comm_s": ev.breakdown["comm_s"].get("cp_s", 0.0),
            "memory_gib": ev.memory_per_device_bytes / 2**30, "fits_memory": ev.fits_memory,
            "mfu": ev.extra["mfu"],
        })
    err = {k: [abs(r["error"]) for r in rows if r["hardware"] == k]
           for k in ("h100", "h100-fp8")}
    return {"rows": rows, "stack": st.name,
            "mape": float(np.mean([abs(r["error"]) for r in rows])),
            "mape_bf16": float(np.mean(err["h100"])), "mape_fp8": float(np.mean(err["h100-fp8"])),
            "mean_error": float(np.mean([r["error"] for r in rows])),
            "refused": 0, "all_fit": all(r["fits_memory"] for r in rows)}


def validation_moe() -> dict[str, Any]:
    """(d) DeepSeek-V3 and Qwen3 MoE (tests/validation/data/published_training_moe.yaml)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.validation.test_published_training_moe import (evaluate_row, load,
                                                               published_step_s)

    _, runs = load()
    rows = []
    for r in runs:
        ev = evaluate_row(r)
        pub = published_step_s(r)
        comm = ev.breakdown["comm_s"]
        rows.append({
            "id": r["id"], "source": r["source"], "hardware": r["hardware"], "gpus": r["gpus"],
            "plan": f"{r['tp']}/{r['pp']}/{r['ep']}/{r['dp']}" + (
                f" v{r['vp']}" if r["vp"] > 1 else "") + (" etp1" if r["etp"] == 1 else "")
            + (" deepep" if r.get("dispatcher") == "deepep" else ""),
            "recompute": ",".join(r["recompute_modules"]) or "none", "published_step_s": pub,
            "model_step_s": ev.step_time_s, "error": ev.step_time_s / pub - 1,
            "all_to_all_s": comm["ep_s"], "all_to_all_hidden": bool(comm.get("ep_hidden")),
            "bubble_s": ev.breakdown["phase_s"]["bubble_s"],
            "memory_gib": ev.memory_per_device_bytes / 2**30, "fits_memory": ev.fits_memory,
        })
    errs = [abs(r["error"]) for r in rows]
    return {"rows": rows, "mape": float(np.mean(errs)), "max_abs_error": float(np.max(errs)),
            "mean_error": float(np.mean([r["error"] for r in rows])),
            "all_fit": all(r["fits_memory"] for r in rows)}


def moe_memory_ablation() -> list[dict[str, Any]]:
    """(d') The FP8 rows' per-device memory as each memory mechanism is added: 16-bit
    saves with the routing weights in the combine; fp8 GEMM inputs kept in fp8; the
    DeepSeek report's moe_act; the weights in the experts' activation (docs §9)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.validation.test_published_training_moe import load, plan_of

    from workloads import model_spec

    _, runs = load()
    out = []
    for rid, bf16 in (("dsv3-fp8-2048-h800", "h800"), ("dsv3-fp8-1024-tp2pp8vp4", "h100")):
        r = next(x for x in runs if x["id"] == rid)
        plan = plan_of(r)
        mods = tuple(m for m in plan.recompute_modules if m != "moe_act")
        steps = [("16-bit saves, weights in the combine", bf16, "combine", mods),
                 ("+ fp8 GEMM inputs", r["hardware"], "combine", mods)]
        if "moe_act" in plan.recompute_modules:
            steps.append(("+ moe_act recomputation", r["hardware"], "combine",
                          plan.recompute_modules))
        steps.append(("+ weights in the activation", r["hardware"], "activation",
                      plan.recompute_modules))
        for what, hw, weighting, rm in steps:
            pr = load_preset(hw)
            ev = evaluate_training(dataclasses.replace(model_spec("deepseek-v3"),
                                                       moe_weighting=weighting),
                                   pr.hardware, pr.system,
                                   dataclasses.replace(plan, recompute_modules=rm),
                                   load_technology(pr.hardware.tech_node_nm), 4096,
                                   ep_overlap=True)
            out.append({"id": rid, "step": what, "memory_gib":
                        ev.memory_per_device_bytes / 2**30})
    return out


def validation_dlrm() -> dict[str, Any]:
    """(e) DLRM vs MLPerf Training (tests/validation/data/published_training_dlrm.yaml)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.validation.test_published_training_dlrm import load, model, published

    d, runs = load()
    rows = []
    for r in runs:
        p, m = published(r), model(r, d)
        rows.append({"id": r["id"], "source": r["source"], "hardware": r["hardware"],
                     "gpus": r["gpus"], "global_batch": r["global_batch"],
                     "published_minutes": p["minutes"],
                     "published_samples_per_s": p["samples_per_s"],
                     "model_minutes": m["minutes"], "model_step_s": m["step_s"],
                     "model_eval_s": m["eval_s"], "evaluations": m["evaluations"],
                     "embedding_comm_s": m["embedding_comm_s"],
                     "error": m["minutes"] / p["minutes"] - 1, "memory_gb": m["memory_gb"]})
    one = [abs(r["error"]) for r in rows if r["gpus"] <= 8]
    many = [abs(r["error"]) for r in rows if r["gpus"] > 8]
    return {"rows": rows, "mape_one_node": float(np.mean(one)),
            "mape_multi_node": float(np.mean(many)),
            "mape_all": float(np.mean([abs(r["error"]) for r in rows]))}


DLRM_ABLATIONS: dict[str, dict[str, Any]] = {
    "planner (TorchRec options)": {},
    "+ 32-column column-wise": {"min_columns": 32},
    "no data-parallel tables": {"kinds": ("tw", "cw", "twrw", "rw")},
    "no table-row-wise": {"kinds": ("dp", "tw", "cw", "rw")},
    "table-wise / row-wise only": {"kinds": ("tw", "rw")},
}
"""(e') the table planner's options (``workloads.dlrm.plan_tables``'s ``kinds`` and
``min_columns``) changed one at a time; row-wise, always feasible, stays."""


def dlrm_ablation() -> list[dict[str, Any]]:
    """(e') Part (e)'s errors with each sharding option of the planner taken away."""
    import functools

    from workloads import dlrm
    from workloads.parallel import _generic_stages

    plain = dlrm.shard_tables
    out = []
    try:
        for name, kw in DLRM_ABLATIONS.items():
            dlrm.shard_tables = functools.partial(plain, **kw)  # type: ignore[assignment]
            _generic_stages.cache_clear()
            v = validation_dlrm()
            out.append({"variant": name, "options": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in kw.items()},
                        "errors": {r["id"]: r["error"] for r in v["rows"]},
                        "mape_one_node": v["mape_one_node"],
                        "mape_multi_node": v["mape_multi_node"], "mape_all": v["mape_all"]})
    finally:
        dlrm.shard_tables = plain  # type: ignore[assignment]
        _generic_stages.cache_clear()
    return out


def speed(n_designs: int, seed: int) -> dict[str, Any]:
    import workloads
    from search.plans import best_plan

    preset = load_preset("a100")
    hw, system = preset.hardware, preset.system
    tech = load_technology(hw.tech_node_nm)
    spec = workloads.model_spec("gpt3-175b")
    plan = ParallelPlan(tp=8, pp=8, dp=16, global_batch=1536, micro_batch=1,
                        recompute="selective", sequence_parallel=True)
    evaluate_training(spec, hw, system, plan, tech)  # warm the stage-graph caches
    t0 = time.perf_counter()
    evaluate_training(spec, hw, system, plan, tech)
    one = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    cfgs = [dataclasses.replace(hw, name=f"d{i}",
                                tensor_cores=int(rng.choice([108, 216, 432, 864])),
                                hbm_bw_bytes_per_s=float(rng.uniform(1e12, 4e12)),
                                freq_hz=float(rng.uniform(1.0e9, 1.8e9)))
            for i in range(n_designs)]
    designs = DesignBatch.from_configs(cfgs)
    t0 = time.perf_counter()
    r = evaluate_training_batch(spec, designs, system, plan, tech)
    batch = time.perf_counter() - t0
    small = workloads.model_spec("gpt2-xl")
    t0 = time.perf_counter()
    best, ev = best_plan(small, hw, system, 64, tech=tech)
    search = time.perf_counter() - t0
    return {
        "evaluate_training_s": one,
        "batch_designs": n_designs, "batch_s": batch,
        "designs_per_s": n_designs / batch,
        "batch_step_time_range_s": [float(r["step_time_s"].min()), float(r["step_time_s"].max())],
        "best_plan_gpt2_xl_64_gpus_s": search,
        "best_plan": dataclasses.asdict(best),
        "best_plan_step_s": ev.step_time_s,
        "plans_enumerated": ev.extra["plans_enumerated"],
        "plans_evaluated": ev.extra["plans_evaluated"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    v = validation()
    print(f"{'run':13s} {'source':15s} {'GPUs':>5s} {'t/p/d':>9s} {'mb':>3s} {'schedule':>14s} "
          f"{'recompute':>12s} {'pub s':>8s} {'model s':>8s} {'pub TF':>7s} {'mod TF':>7s} "
          f"{'error':>7s} {'bubble':>7s} {'tail':>6s} {'GiB':>5s}")
    for r in v["rows"]:
        print(f"{r['id']:13s} {r['source']:15s} {r['gpus']:5d} "
              f"{r['tp']:>2d}/{r['pp']:>2d}/{r['dp']:>2d} {r['micro_batch']:3d} "
              f"{r['schedule']:>14s} {r['recompute']:>12s} {r['published_step_s']:8.2f} "
              f"{r['model_step_s']:8.2f} {r['published_tflops_per_gpu']:7.1f} "
              f"{r['model_tflops_per_gpu']:7.1f} {100 * r['error']:+6.1f}% "
              f"{r['bubble_s']:7.2f} {r['tail_s']:6.2f} {r['memory_gib']:5.1f}")
    print(f"MAPE {100 * v['mape']:.1f}% (max {100 * v['max_abs_error']:.1f}%, mean signed "
          f"{100 * v['mean_error']:+.1f}%); by source: "
          + ", ".join(f"{k} {100 * x:.1f}%" for k, x in v["mape_by_source"].items()))
    print(f"ranking: Spearman rho {v['spearman_rho']:.4f}; discordant pairs within a table "
          f"(beyond the printed rounding): {v['discordant_pairs'] or 'none'}")
    wg = weight_gradient_ablation(v)
    print("\n(a'') Megatron 2021-2022's weight-gradient kernels taken away, one at a time")
    for r in wg:
        print(f"   grad_accumulation={r['grad_accumulation']:<9s} bias_grad="
              f"{r['bias_grad']:<9s} cross_entropy={r['cross_entropy']:<6s} "
              f"MAPE {100 * r['mape']:.1f}%  signed "
              f"{100 * r['mean_error']:+.1f}%")
    lt = layer_times()
    print("\n(a') One layer of the 22B model, Korthikanti et al. 2022 Table 4 (ms; backward "
          "with recomputation)")
    print(f"{'experiment':24s} {'pub fwd':>8s} {'model':>6s} {'error':>7s} {'pub bwd':>8s} "
          f"{'model':>6s} {'error':>7s} {'pub sum':>8s} {'model':>6s} {'error':>7s}")
    for r in lt["rows"]:
        pf, mf, pb, mb = (r["forward_ms"], r["model_forward_ms"], r["backward_ms"],
                          r["model_backward_ms"])
        print(f"{r['experiment']:24s} {pf:8.1f} {mf:6.2f} {100 * (mf / pf - 1):+6.1f}% "
              f"{pb:8.1f} {mb:6.2f} {100 * (mb / pb - 1):+6.1f}% {pf + pb:8.1f} "
              f"{mf + mb:6.2f} {100 * ((mf + mb) / (pf + pb) - 1):+6.1f}%")
    print(f"MAPE forward {100 * lt['mape_forward']:.1f}%, backward "
          f"{100 * lt['mape_backward']:.1f}%, sum {100 * lt['mape_sum']:.1f}%")
    h = validation_h100()
    print(f"\n(c) Llama 3.1 on DGX H100, NVIDIA dgxc-benchmarking @741c886, stack {h['stack']}")
    print(f"{'run':16s} {'GPUs':>5s} {'t/c/p/d':>13s} {'pub s':>7s} {'model s':>8s} {'error':>7s} "
          f"{'bubble':>7s} {'cp ring':>8s} {'GiB':>5s} {'MFU':>5s}")
    for r in h["rows"]:
        print(f"{r['id']:16s} {r['gpus']:5d} {r['plan']:>13s} {r['published_step_s']:7.2f} "
              f"{r['model_step_s']:8.2f} {100 * r['error']:+6.1f}% {r['bubble_s']:7.2f} "
              f"{r['cp_comm_s']:8.2f} {r['memory_gib']:5.1f} {100 * r['mfu']:4.1f}%")
    print(f"MAPE {100 * h['mape']:.1f}% (BF16 {100 * h['mape_bf16']:.1f}%, FP8 "
          f"{100 * h['mape_fp8']:.1f}%; mean signed {100 * h['mean_error']:+.1f}%); "
          f"every plan runs and fits: {h['all_fit']}")
    mo = validation_moe()
    print("\n(d) Mixture of experts (DeepSeek-V3, Qwen3), "
          "tests/validation/data/published_training_moe.yaml")
    print(f"{'run':26s} {'GPUs':>5s} {'t/p/e/d':>18s} {'recompute modules':>22s} {'pub s':>7s} "
          f"{'model s':>8s} "
          f"{'error':>7s} {'a2a s':>6s} {'bubble':>7s} {'GiB':>5s}")
    for r in mo["rows"]:
        print(f"{r['id']:26s} {r['gpus']:5d} {r['plan']:>18s} {r['recompute']:>22s} "
              f"{r['published_step_s']:7.2f} {r['model_step_s']:8.2f} "
              f"{100 * r['error']:+6.1f}% {r['all_to_all_s']:6.1f}"
              f"{'h' if r['all_to_all_hidden'] else ' '}{r['bubble_s']:6.2f} "
              f"{r['memory_gib']:5.1f}{'' if r['fits_memory'] else ' DOES NOT FIT'}")
    print(f"MAPE {100 * mo['mape']:.1f}% (max {100 * mo['max_abs_error']:.1f}%, mean signed "
          f"{100 * mo['mean_error']:+.1f}%); every plan runs and fits: {mo['all_fit']} "
          "(a2a h: under the neighbouring micro-batch)")
    ab = moe_memory_ablation()
    print("\n(d') FP8 MoE rows: per-device memory as each mechanism is added (GiB)")
    for r in ab:
        print(f"  {r['id']:26s} {r['step']:40s} {r['memory_gib']:6.1f}")
    dl = validation_dlrm()
    print("\n(e) DLRM vs MLPerf Training (NVIDIA, HugeCTR), time to train incl. evaluations")
    print(f"{'run':14s} {'GPUs':>5s} {'batch':>6s} {'pub min':>8s} {'model min':>9s} "
          f"{'error':>8s} {'step ms':>8s} {'emb comm ms':>12s} {'evals':>6s}")
    for r in dl["rows"]:
        print(f"{r['id']:14s} {r['gpus']:5d} {r['global_batch']:6d} "
              f"{r['published_minutes']:8.3f} {r['model_minutes']:9.3f} "
              f"{100 * r['error']:+7.1f}% {1e3 * r['model_step_s']:8.3f} "
              f"{1e3 * r['embedding_comm_s']:12.3f} {r['evaluations']:6d}")
    print(f"MAPE one node {100 * dl['mape_one_node']:.1f}%, several nodes "
          f"{100 * dl['mape_multi_node']:.1f}%, all {100 * dl['mape_all']:.1f}% (the "
          "model's table planner, not HugeCTR's hybrid embedding: docs/distributed.md §9b)")
    dab = dlrm_ablation()
    print("\n(e') DLRM: the table planner's options taken away (error per run, MAPE)")
    ids = [r["id"] for r in dl["rows"]]
    print(f"{'variant':28s} " + " ".join(f"{i[:13]:>13s}" for i in ids) + "  1 node  nodes")
    for a in dab:
        print(f"{a['variant']:28s} " + " ".join(f"{100 * a['errors'][i]:+12.1f}%" for i in ids)
              + f" {100 * a['mape_one_node']:6.1f}% {100 * a['mape_multi_node']:5.1f}%")
    s = speed(args.designs, args.seed)
    print(f"speed: evaluate_training (GPT-3 175B, 1024 GPUs) {1e3 * s['evaluate_training_s']:.0f} ms;"
          f" evaluate_training_batch {s['designs_per_s']:.0f} designs/s ({s['batch_designs']} "
          f"designs in {s['batch_s']:.2f} s); best_plan GPT-2 XL on 64 GPUs "
          f"{s['best_plan_gpt2_xl_64_gpus_s']:.1f} s ({s['plans_evaluated']} of "
          f"{s['plans_enumerated']} plans timed)")
    out = {"validation": v, "weight_gradient_ablation": wg, "layer_times": lt, "validation_h100": h, "validation_moe": mo,
           "moe_memory_ablation": ab, "validation_dlrm": dl, "dlrm_ablation": dab,
           "speed": s,
           "python": platform.python_version(),
           "machine": platform.machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
