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
                                          "ep_overlap"))
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
