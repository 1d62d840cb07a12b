"""Pipeline layouts as Megatron-Core writes them (--pipeline-model-parallel-layout): the
parser, the stages a plan's layout gives, a stage without layers, and the bad inputs."""

from __future__ import annotations

import re

import pytest

import workloads
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.errors import ConfigError
from dse.types import ParallelPlan
from search.trainstep import evaluate_training
from workloads.parallel import parse_pipeline_layout, stage_layout


def test_the_grammar():
    counts, where = parse_pipeline_layout("Et|(tt|)*30mL")        # Megatron-Bridge 25.09
    assert counts == (1,) + (2,) * 30 + (0,) and sum(counts) == 61
    assert where == {"embedding": [0], "mtp": [31], "loss": [31]}
    assert parse_pipeline_layout("Et*3|(t*4|)*14ttmL")[0] == (3,) + (4,) * 14 + (2,)
    assert parse_pipeline_layout("E, t|t|tL")[0] == (1, 1, 1)     # ',' only separates
    assert parse_pipeline_layout("((t|)*2)*2tL")[0] == (1, 1, 1, 1, 1)
    for bad, msg in (("Ex|tL", "'x' is not a layout token"), ("(t|tL", "unmatched '('"),
                     ("t)|tL", "unmatched ')'"), ("Et*|tL", "'*' needs a count")):
        with pytest.raises(ConfigError, match=re.escape(msg)):
            parse_pipeline_layout(bad)


def test_a_plans_layout_sets_its_stages_even_an_empty_one():
    spec = workloads.model_spec("gpt2")                         # 12 layers
    lay = parse_pipeline_layout("Ettt|tttt|ttttt|L")[0]
    plan = ParallelPlan(pp=4, global_batch=8, layout=lay)
    stages = stage_layout(spec, plan, seq=256)
    assert [s.layers for s in stages] == [(0, 3), (3, 7), (7, 12), (12, 12)]
    assert stages[-1].last and stages[-1].n_layers == 0
    p = load_preset("a100")
    tech = load_technology(p.hardware.tech_node_nm)
    ev = evaluate_training(spec, p.hardware, p.system, plan, tech, seq=256)
    assert ev.extra["stage_layers"] == [[0, 3], [3, 7], [7, 12], [12, 12]]
    assert ev.step_time_s > 0 and ev.fits_memory
    # nine layers and the head on the last stage: slower
    heavy = ParallelPlan(pp=4, global_batch=8, layout=(1, 1, 1, 9))
    assert evaluate_training(spec, p.hardware, p.system, heavy, tech,
                             seq=256).step_time_s > 1.3 * ev.step_time_s


def test_layouts_are_checked_against_the_plan_and_the_model():
    with pytest.raises(ConfigError, match="layout has 3 stages; pp\\*interleave = 4"):
        ParallelPlan(pp=4, global_batch=8, layout=(4, 4, 4))
    with pytest.raises(ConfigError, match="layer counts >= 0"):
        ParallelPlan(pp=2, global_batch=8, layout=(13, -1))
    spec = workloads.model_spec("gpt2")
    with pytest.raises(ConfigError, match="holds 11 layers; gpt2 has 12"):
        stage_layout(spec, ParallelPlan(pp=2, global_batch=8, layout=(5, 6)), seq=256)
    interleaved = ParallelPlan(pp=2, global_batch=8, schedule="interleaved", interleave=2,
                               layout=(3, 3, 3, 3))
    assert [s.layers for s in stage_layout(spec, interleaved, seq=256)] == [
        (0, 3), (3, 6), (6, 9), (9, 12)]
