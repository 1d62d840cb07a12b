"""Software-stack profiles (cost_models/stacks.py, --stack on dse evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cost_models.stacks import DEFAULT_STACK, load_stack, stack_names
from dse.cli import main
from dse.errors import ConfigError

DATA = Path(__file__).parents[1] / "validation" / "data" / "published_training.yaml"


def test_every_stack_loads_with_a_source_for_each_rule():
    assert stack_names() == ["megatron-2021", "megatron-2022", "megatron-core-2024",
                             "megatron-core-2025"]
    assert DEFAULT_STACK == "megatron-core-2024"
    for name in stack_names():
        s = load_stack(name)
        assert s.name == name and s.attention in ("fused", "unfused")
        assert all(s.sources[k] for k in ("attention", "tp_overlap", "dp_overlap",
                                          "ep_overlap", "grad_accumulation", "bias_grad",
                                          "cross_entropy"))
    # fp16 Megatron-LM of 2021-2022 summed weight gradients in a separate kernel;
    # Megatron-Core's gradient_accumulation_fusion does it inside the weight-gradient GEMM
    assert [load_stack(n).grad_accumulation for n in stack_names()] == [
        "separate", "separate", "fused", "fused"]
    # Megatron-LM's grad_output.sum(dim=0) against Transformer Engine's BGRADB epilogue
    assert [load_stack(n).bias_grad for n in stack_names()] == [
        "separate", "separate", "fused", "fused"]
    # Megatron-LM's vocab_parallel_cross_entropy(output.float()) of 2021-2022
    assert [load_stack(n).cross_entropy for n in stack_names()] == [
        "fp32", "fp32", "fused", "fused"]
    # batch-level all-to-all overlap arrived in Megatron-Core in 2025 only
    assert [load_stack(n).ep_overlap for n in stack_names()] == [False, False, False, True]
    with pytest.raises(ConfigError, match="unknown stack 'deepspeed'; valid: megatron-2021"):
        load_stack("deepspeed")


def test_stacks_agree_with_the_validation_data_of_their_era():
    src = yaml.safe_load(DATA.read_text())["sources"]
    assert load_stack("megatron-2021").tp_overlap == src["narayanan2021"]["tp_overlap"]
    assert load_stack("megatron-2022").tp_overlap == src["korthikanti2022"]["tp_overlap"]
    assert load_stack("megatron-2021").attention == load_stack("megatron-2022").attention \
        == "unfused"


def _evaluate(capsys, *extra):
    code = main(["evaluate", "--workload", "megatron-1.7b", "--hardware", "a100", "--devices", "8",
                 "--tp", "4", "--dp", "2", "--global-batch", "16", "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_stack_flag_orders_the_eras(capsys):
    times = {}
    for name in stack_names():
        code, d = _evaluate(capsys, "--stack", name)
        assert code == 0 and d["stack"] == name
        times[name] = d["step_time_s"]
    # blocking collectives and no DDP overlap, then overlap, then fused attention
    assert times["megatron-2021"] > times["megatron-2022"] > times["megatron-core-2024"]
    code, d = _evaluate(capsys)
    assert d["stack"] == DEFAULT_STACK and d["step_time_s"] == times[DEFAULT_STACK]
    # an explicit --attention wins over the stack's
    code, d = _evaluate(capsys, "--stack", "megatron-2022", "--attention", "fused")
    assert d["step_time_s"] < times["megatron-2022"]


def test_unknown_stack_exits_2_naming_the_choices(capsys):
    code = main(["evaluate", "--workload", "gpt2", "--hardware", "a100", "--stack", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "megatron-core-2024" in err and "Traceback" not in err


def test_separate_gradient_accumulation_costs_its_hbm_traffic_per_micro_batch():
    """The add per parameter and micro-batch reads the new and the accumulated gradient
    and writes the sum (6 B per fp16 parameter) at the sustained HBM rate; the new
    gradient may still sit in L2 after its GEMM (4 B), so each micro-batch costs between
    4 and 6 B per parameter of the device, and nothing else changes."""
    import dataclasses

    import workloads
    from cost_models.presets import load_preset
    from cost_models.technology import load_technology
    from dse.types import ParallelPlan
    from search.trainstep import evaluate_training

    p = load_preset("a100")
    hw = p.hardware
    tech = load_technology(hw.tech_node_nm)
    spec = workloads.model_spec("megatron-1.7b")
    plan = ParallelPlan(tp=2, pp=1, dp=1, global_batch=8, micro_batch=1)
    t = {g: evaluate_training(dataclasses.replace(spec, grad_accumulation=g), hw, p.system,
                              plan, tech).step_time_s for g in ("fused", "separate")}
    per_byte = plan.micro_batches * spec.params / plan.tp / (
        hw.hbm_bw_bytes_per_s * hw.hbm_efficiency)
    assert 4 * per_byte * 0.95 < t["separate"] - t["fused"] < 6 * per_byte * 1.05
