"""Published Llama 3.1 runs on DGX H100 (NVIDIA dgxc-benchmarking, NeMo 2 / Megatron-Core):
every plan that really ran runs and fits in the model — context parallelism, interleaved
stages uneven for 126 layers, FP8 — with the megatron-core-2024 stack.

The accuracy of the step times is reported by ``benchmarks/bench_validation.py`` (the table
of ``docs/distributed.md`` §8), not asserted here: nothing is fitted to these rows."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import pytest
import yaml

from cost_models.presets import load_preset
from cost_models.stacks import load_stack
from cost_models.technology import load_technology
from dse.types import ParallelPlan
from search.trainstep import evaluate_training
from workloads import model_spec

DATA = Path(__file__).parent / "data" / "published_training_h100.yaml"
SEQ = 8192


def load() -> tuple[dict, list[dict]]:
    d = yaml.safe_load(DATA.read_text())
    return d, d["runs"]


def plan_of(r: dict) -> ParallelPlan:
    """The run's plan: the NeMo recipe's distributed optimizer is ZeRO-1 over dp·cp,
    sequence parallelism with tp > 1, the interleaved schedule where VP > 1."""
    vp = int(r["vp"])
    return ParallelPlan(tp=r["tp"], pp=r["pp"], cp=r["cp"], dp=r["dp"],
                        global_batch=r["global_batch"], micro_batch=r["micro_batch"],
                        schedule="interleaved" if vp > 1 else "1f1b", interleave=vp,
                        sequence_parallel=r["tp"] > 1, zero_stage=1)


def evaluate_row(r: dict, stack: str = "megatron-core-2024"):
    st = load_stack(stack)
    p = load_preset(r["hardware"])
    ce = load()[0]["sources"]["dgxc2025"].get("cross_entropy", st.cross_entropy)
    spec = dataclasses.replace(model_spec(r["model"]), cross_entropy=ce)
    return evaluate_training(spec, p.hardware, p.system, plan_of(r),
                             load_technology(p.hardware.tech_node_nm), SEQ,
                             dp_overlap=st.dp_overlap, tp_overlap=st.tp_overlap)


def test_rows_cover_what_issue_12_asks():
    d, runs = load()
    assert len(runs) >= 12
    assert d["sources"]["dgxc2025"]["stack"] == "megatron-core-2024"
    assert any(r["cp"] > 1 for r in runs)
    assert any(model_spec(r["model"]).layers % (r["pp"] * r["vp"]) for r in runs)  # uneven
    assert {r["hardware"] for r in runs} == {"h100", "h100-fp8"}
    for r in runs:
        assert r["tp"] * r["pp"] * r["cp"] * r["dp"] == r["gpus"], r["id"]


@pytest.mark.parametrize("row", load()[1], ids=lambda r: r["id"])
def test_every_published_plan_runs_and_fits(row):
    e = evaluate_row(row)
    assert e.fits_memory, (row["id"], e.memory_per_device_bytes)
    assert e.step_time_s > 0
    assert e.memory_per_device_bytes <= load_preset(row["hardware"]).hardware.hbm_bytes
