"""Validation of the distributed training model against published A100 cluster runs.

Rows: Narayanan et al. SC'21 Table 1 (10 GPT models, 1.7B-1T, 32-3072 GPUs, tp/pp/dp
as in the authors' ``examples/sc21/run_table_1.sh``) and Korthikanti et al. 2022 Table 5
(22B-1T, full vs. selective recomputation with sequence parallelism), all on DGX A100
nodes. Data, sources and derivations: ``data/published_training.yaml`` and
``docs/distributed.md``. The model is the ``a100`` preset on the DGX A100 SuperPOD
system of that file; nothing is fitted to these rows.

Acceptance (issue 4): mean absolute percentage error of the step time <= 15 % and the
same ranking of step times within each published table (rows whose published values
are equal within the rounding of the printed numbers count as ties).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from cost_models.designs import DesignBatch
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.types import ParallelPlan, SystemConfig
from search.plans import evaluate_training_batch
from workloads.spec import TransformerSpec

DATA = Path(__file__).parent / "data" / "published_training.yaml"
SEQ, VOCAB = 2048, 51200


def load_runs() -> tuple[dict, list[dict]]:
    d = yaml.safe_load(DATA.read_text())
    return d, d["runs"]


def spec_of(r: dict) -> TransformerSpec:
    h = r["hidden"]
    return TransformerSpec(name=r["id"], model_type="gpt2", layers=r["layers"], hidden=h,
                           heads=r["heads"], ffn=4 * h, vocab=VOCAB, max_positions=SEQ,
                           default_seq=SEQ, default_batch=r["global_batch"],
                           attention="unfused",  # Megatron-LM 2021-2022: no fused attention
                           grad_accumulation="separate",  # fp16: a separate add (stacks)
                           bias_grad="separate",  # grad_output.sum(dim=0) (stacks)
                           cross_entropy="fp32",  # output.float() (stacks)
                           source=f"{r['source']} {r['table']} {r['row']}")


def plan_of(r: dict) -> ParallelPlan:
    return ParallelPlan(tp=r["tp"], pp=r["pp"], dp=r["dp"], global_batch=r["global_batch"],
                        micro_batch=r["micro_batch"], schedule=r["schedule"],
                        interleave=r["interleave"], recompute=r["recompute"],
                        sequence_parallel=r["sequence_parallel"])


def narayanan_flop(r: dict) -> float:
    """Narayanan et al. Eq. 3: FLOPs per iteration including the recomputed forward."""
    b, l, h = r["global_batch"], r["layers"], r["hidden"]
    return 96 * b * SEQ * l * h * h * (1 + SEQ / (6 * h) + VOCAB / (16 * l * h))


def published_step_s(r: dict) -> tuple[float, float, float]:
    """(value, low, high) of the published step time; low/high from the printed rounding."""
    if "tflops_per_gpu" in r:
        n = r["tp"] * r["pp"] * r["dp"]
        x = r["tflops_per_gpu"] * 1e12
        f = narayanan_flop(r)
        return f / (n * x), f / (n * (x + 0.5e12)), f / (n * (x - 0.5e12))
    t = r["iteration_time_s"]
    return t, t - 0.005, t + 0.005


def model_rows() -> list[dict]:
    d, runs = load_runs()
    system = SystemConfig(**d["system"])
    hw = load_preset("a100").hardware
    tech = load_technology(hw.tech_node_nm)
    designs = DesignBatch.from_configs([hw])
    out = []
    for r in runs:
        res = evaluate_training_batch(spec_of(r), designs, system, plan_of(r), tech, SEQ,
                                      dp_overlap=r["ddp"] == "torch",
                                      tp_overlap=d["sources"][r["source"]]["tp_overlap"])
        pub, lo, hi = published_step_s(r)
        out.append(dict(r, published_s=pub, low_s=lo, high_s=hi,
                        model_s=float(res["step_time_s"][0]),
                        memory_bytes=float(res["memory_per_device_bytes"][0]),
                        fits=bool(res["fits_memory"][0])))
    return out


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return model_rows()


def test_data_has_enough_distinct_configurations():
    _, runs = load_runs()
    assert len(runs) >= 8
    mixes = {(r["tp"], r["pp"], r["dp"]) for r in runs}
    sizes = {r["hidden"] for r in runs}
    assert len(mixes) >= 8 and len(sizes) >= 8
    for r in runs:
        assert r["tp"] * r["pp"] * r["dp"] >= 8  # cluster scale
        assert r["source"] in ("narayanan2021", "korthikanti2022")


def test_published_step_times_are_consistent_with_the_papers():
    """Sanity of the derivation: Narayanan's aggregate PFLOP/s column equals
    GPUs x per-GPU TFLOP/s (e.g. 1T: 3072 x 163 = 500.7 ~ 502.0 printed) and the
    Korthikanti 175B row reproduces the Megatron README's 51.4% MFU."""
    _, runs = load_runs()
    one_t = next(r for r in runs if r["id"] == "gpt-1008b")
    assert 3072 * one_t["tflops_per_gpu"] / 1e3 == pytest.approx(502.0, rel=0.01)
    k = next(r for r in runs if r["id"] == "k175b-seqsel")
    b, l, h = k["global_batch"], k["layers"], k["hidden"]
    model_flop = 72 * b * SEQ * l * h * h * (1 + SEQ / (6 * h) + VOCAB / (12 * l * h))
    mfu = model_flop / (64 * k["iteration_time_s"] * 312e12)
    assert mfu == pytest.approx(0.514, abs=0.005)


def test_every_published_run_fits_in_a100_80gb(rows):
    """They ran, so the memory model must let them fit in 80 GB."""
    for r in rows:
        assert r["fits"], f"{r['id']} needs {r['memory_bytes'] / 2**30:.1f} GiB"


def test_mean_absolute_percentage_error_within_15_percent(rows):
    errs = np.array([abs(r["model_s"] / r["published_s"] - 1) for r in rows])
    assert errs.mean() <= 0.15, (
        f"MAPE {100 * errs.mean():.1f}%: "
        + ", ".join(f"{r['id']} {100 * (r['model_s'] / r['published_s'] - 1):+.1f}%"
                    for r in rows))


def _discordant(rows: list[dict]) -> list[tuple[str, str]]:
    bad = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if a["high_s"] >= b["low_s"] and b["high_s"] >= a["low_s"]:
                continue  # tied within the printed rounding
            if (a["published_s"] - b["published_s"]) * (a["model_s"] - b["model_s"]) < 0:
                bad.append((a["id"], b["id"]))
    return bad


@pytest.mark.parametrize("source", ["narayanan2021", "korthikanti2022"])
def test_same_ranking_within_each_published_table(rows, source):
    sub = [r for r in rows if r["source"] == source]
    assert _discordant(sub) == [], [
        (a, b, next(r["model_s"] for r in sub if r["id"] == a),
         next(r["model_s"] for r in sub if r["id"] == b)) for a, b in _discordant(sub)]


def test_rank_correlation_over_all_rows(rows):
    from scipy.stats import spearmanr

    rho = spearmanr([r["published_s"] for r in rows], [r["model_s"] for r in rows])[0]
    assert rho >= 0.98


# ---------------------------------------------------------------- per-layer (Table 4)
def layer_time_rows() -> list[dict]:
    """Korthikanti et al. 2022 Table 4: one transformer layer of the 22B model, forward and
    backward (recomputation included) as published and as modelled — the ``block`` segment
    of the plan's shard on the ``a100`` preset (its forward, its backward, plus its forward
    again under full recomputation or the attention core under selective recomputation)."""
    from search.trainstep import workload_model

    d = yaml.safe_load(DATA.read_text())
    t4 = d["layer_times"]
    system = SystemConfig(**d["system"])
    hw = load_preset("a100").hardware
    tech = load_technology(hw.tech_node_nm)
    designs = DesignBatch.from_configs([hw])
    tp_overlap = d["sources"][t4["source"]]["tp_overlap"]
    out = []
    for r in t4["rows"]:
        run = dict(t4["config"], id=r["id"], source=t4["source"], table=t4["table"],
                   row=r["experiment"], recompute=r["recompute"],
                   sequence_parallel=r["sequence_parallel"])
        plan = plan_of(run)
        wm = workload_model(spec_of(run), devices=plan.devices, seq=SEQ)
        block = next(g for _, name, g, _, _ in wm.stage_graphs(plan) if name == "block")
        cache: dict = {}
        wm.cost_segments(cache, designs, system, tech, [(block, plan)], tp_overlap=tp_overlap)
        (c,) = cache.values()
        again = {"full": c.fwd_s, "selective": c.attn_core_s}.get(r["recompute"],
                                                                   np.zeros(1))
        out.append(dict(r, model_forward_ms=1e3 * float(c.fwd_s[0]),
                        model_backward_ms=1e3 * float(c.bwd_s[0] + again[0])))
    return out


@pytest.fixture(scope="module")
def layer_rows() -> list[dict]:
    return layer_time_rows()


def test_layer_times_within_15_percent(layer_rows):
    """Forward, backward and their sum per layer within the issue-4 bar of 15 %."""
    for r in layer_rows:
        for pub, mod in (("forward_ms", "model_forward_ms"), ("backward_ms", "model_backward_ms")):
            assert abs(r[mod] / r[pub] - 1) <= 0.15, (r["id"], pub, r[mod], r[pub])
        tot = r["model_forward_ms"] + r["model_backward_ms"]
        assert abs(tot / (r["forward_ms"] + r["backward_ms"]) - 1) <= 0.15, (r["id"], tot)


def test_layer_times_rank_and_recomputation_overheads(layer_rows):
    """The five experiments in the published order of their combined time, and the
    overheads the paper reports (full recomputation 39 %, selective 7 %, with sequence
    parallelism 4 %, sequence parallelism alone −3 %) within 5 points."""
    pub = {r["id"]: r["forward_ms"] + r["backward_ms"] for r in layer_rows}
    mod = {r["id"]: r["model_forward_ms"] + r["model_backward_ms"] for r in layer_rows}
    assert sorted(pub, key=pub.get) == sorted(mod, key=mod.get), mod
    for rid, paper in (("t4-full", 0.39), ("t4-sel", 0.07), ("t4-selsp", 0.04),
                       ("t4-sp", -0.03)):
        assert pub[rid] / pub["t4-baseline"] - 1 == pytest.approx(paper, abs=0.01)
        assert abs(mod[rid] / mod["t4-baseline"] - 1 - paper) <= 0.05, (rid, mod)
