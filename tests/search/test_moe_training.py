"""Mixture-of-experts training end to end: plans with ep run and fit, the all-to-all is its
own term of the step breakdown, expert parallelism trades memory for communication, the
stack's batch-level overlap hides the all-to-all, and bad --ep values are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workloads
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.cli import main
from dse.errors import ConfigError
from dse.types import ParallelPlan
from search.trainstep import WorkloadModel, evaluate_training


def _eval(name, plan, *, seq=1024, ep_overlap=False):
    spec = workloads.model_spec(name)
    pr = load_preset("h100")
    hw, system = pr.hardware, pr.system
    return evaluate_training(spec, hw, system, plan, load_technology(hw.tech_node_nm), seq=seq,
                             ep_overlap=ep_overlap)


def test_mixtral_expert_parallel_plan_runs_with_the_all_to_all_as_its_own_term():
    plan = ParallelPlan(tp=1, pp=4, dp=16, ep=8, global_batch=64, micro_batch=1,
                        zero_stage=1, recompute="full")
    ev = _eval("mixtral-8x7b", plan)
    comm = ev.breakdown["comm_s"]
    assert ev.fits_memory and ev.samples_per_s > 0
    assert comm["ep_s"] > 0 and comm["tp_s"] == pytest.approx(0.0, abs=1e-12)
    assert "all-to-all" in comm["ep_note"]


def test_more_expert_parallelism_less_expert_memory():
    spec = workloads.model_spec("mixtral-8x7b")
    m = WorkloadModel(spec, devices=64, seq=1024, global_batch=64)
    mem = {ep: m.memory_bytes(ParallelPlan(tp=1, pp=4, dp=16, ep=ep, global_batch=64,
                                           zero_stage=1, recompute="full"))
           for ep in (1, 2, 4, 8)}
    assert mem[1] > mem[2] > mem[4] > mem[8]
    # the experts' weights and gradients divide by ep (4 bytes per parameter of a stage)
    experts = 32 * 8 * 3 * 4096 * 14336 / 4  # the 8 layers of the fullest stage
    drop = mem[1] - mem[8]
    assert drop > 4 * experts * (1 - 1 / 8) * 0.99


def test_batch_level_overlap_hides_the_all_to_all():
    plan = ParallelPlan(tp=1, pp=2, dp=32, ep=8, global_batch=64, zero_stage=1,
                        recompute="full")
    on_path = _eval("mixtral-8x7b", plan)
    hidden = _eval("mixtral-8x7b", plan, ep_overlap=True)
    assert hidden.step_time_s < on_path.step_time_s
    assert hidden.breakdown["comm_s"]["ep_hidden"]
    # the same all-to-all volume, only placed differently
    assert hidden.breakdown["comm_s"]["ep_s"] == pytest.approx(
        on_path.breakdown["comm_s"]["ep_s"], rel=1e-9)


def test_deepseek_v3_published_plan_runs_and_fits_on_h800():
    """DeepSeek-V3 §3.1–3.2: 2048 H800, PP 16, EP 64 over 8 nodes, ZeRO-1 data parallel."""
    spec = workloads.model_spec("deepseek-v3")
    pr = load_preset("h800")
    hw, system = pr.hardware, pr.system
    plan = ParallelPlan(tp=1, pp=16, dp=128, ep=64, global_batch=1920, micro_batch=1,
                        zero_stage=1, recompute="full")
    ev = evaluate_training(spec, hw, system, plan, load_technology(hw.tech_node_nm),
                           ep_overlap=True)
    assert ev.fits_memory and ev.samples_per_s > 0


@pytest.mark.parametrize("argv,needle", [
    (["--workload", "mixtral-8x7b", "--devices", "64", "--pp", "4", "--ep", "3"],
     "valid --ep: 1, 2, 4, 8"),
    (["--workload", "mixtral-8x7b", "--devices", "8", "--ep", "16", "--dp", "8"],
     "must divide both the 8 experts"),
    (["--workload", "gptj", "--devices", "8", "--ep", "2"], "needs a mixture-of-experts"),
])
def test_bad_ep_is_a_one_line_error(argv, needle, capsys):
    assert main(["evaluate", "--hardware", "h100", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_moe_config_missing_fields_and_bad_top_k(tmp_path, capsys):
    cfg = json.loads((Path(__file__).parents[1] / "workloads" / "data" / "hf" / "mixtral-8x7b"
                      / "config.json").read_text())
    del cfg["num_local_experts"]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    assert main(["workloads", "show", str(p)]) == 2
    assert "num_local_experts" in capsys.readouterr().err
    cfg["num_local_experts"], cfg["num_experts_per_tok"] = 8, 9
    p.write_text(json.dumps(cfg))
    assert main(["workloads", "show", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert "experts_per_token=9" in err and len(err.splitlines()) == 1
    with pytest.raises(ConfigError):
        ParallelPlan(dp=4, ep=3, global_batch=4)


@pytest.mark.parametrize("name,devices", [("mixtral-8x7b", 16), ("gpt2-xl", 8)])
def test_memory_floor_is_a_lower_bound_and_prunes_the_plan_space(name, devices):
    """Plans whose model states alone exceed the space's largest HBM are dropped
    before their layouts are built; the bound never exceeds a plan's modelled memory."""
    from search.config import SearchConfig
    from search.objective import build_problem
    from search.stagememory import memory_floor_bytes

    spec = workloads.model_spec(name)
    model = WorkloadModel(spec, devices=devices, seq=256)
    plans = model.plans[::max(1, len(model.plans) // 20)]
    for p in plans:
        assert memory_floor_bytes(spec, p) <= model.memory_bytes(p), p
    pb = build_problem(SearchConfig(workloads=(name,), area_mm2=600, devices=devices))
    cap = pb.max_hbm_bytes()
    kept = pb.plans[0]
    assert all(memory_floor_bytes(spec, p) <= cap for p in kept)
    dropped = [p for p in pb.models[0].plans if p not in set(kept)]
    assert all(memory_floor_bytes(spec, p) > cap for p in dropped)
    if name == "mixtral-8x7b":  # ep 1 with tp 1 on one stage holds all 47 B parameters
        assert dropped
