"""The public Python API (dse.api) agrees with the CLI contract and is deterministic."""

import pytest

from dse import api
from dse.errors import ConfigError, WorkloadError

SEARCH_KEYS = ("best", "top_k", "baselines", "evaluations", "wall_s", "out_dir")


def test_names_are_listed() -> None:
    assert {"gptj", "bert-large", "resnet50", "dlrm"} <= set(api.workload_names())
    assert {"tpuv4", "a100", "h100", "nvdla-large"} <= set(api.hardware_names())


def test_unknown_names_raise_dse_errors() -> None:
    with pytest.raises(WorkloadError, match="gptj"):
        api.model_spec("gpt-j-typo")
    with pytest.raises(ConfigError, match="tpuv4"):
        api.load_hardware("tpu-typo")


def test_evaluate_matches_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dse.cli import main

    hw, system = api.load_hardware("tpuv4")
    plan = api.ParallelPlan(global_batch=4, micro_batch=4)
    ev = api.evaluate(api.model_spec("gpt2"), hw, system, plan=plan, seq=256)
    assert main(["evaluate", "--workload", "gpt2", "--hardware", "tpuv4", "--global-batch", "4",
                 "--micro-batch", "4", "--seq", "256", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step_time_s"] == pytest.approx(ev.step_time_s, rel=1e-12)
    assert out["memory_per_device_bytes"] == pytest.approx(ev.memory_per_device_bytes)


def test_search_is_deterministic_and_has_contract_keys() -> None:
    a = api.search("bert-base", 200, budget=30, seed=3)
    b = api.search(("bert-base",), 200, budget=30, seed=3)
    for k in SEARCH_KEYS:
        assert k in a
    assert a["best"]["hardware"] == b["best"]["hardware"]
    assert a["best"]["evaluation"]["samples_per_s"] == b["best"]["evaluation"]["samples_per_s"]


@pytest.mark.parametrize("call, match", [
    (lambda a, s, h: a.evaluate(s, None), "hw must be a HardwareConfig"),
    (lambda a, s, h: a.evaluate(s, h, "x"), "system must be a SystemConfig"),
    (lambda a, s, h: a.evaluate(s, h, plan={}), "plan must be a ParallelPlan"),
    (lambda a, s, h: a.evaluate(s, h, seq=0), "out of range"),
    (lambda a, s, h: a.evaluate(s, h, seq=1.5), "must be an integer"),
    (lambda a, s, h: a.evaluate("gpt2", h), "must be a model spec"),
    (lambda a, s, h: a.search(None, 400), "a name or a list of names"),
    (lambda a, s, h: a.search("gpt2", 400, nosuch=1), "unknown search option 'nosuch'"),
    (lambda a, s, h: a.search("gpt2", 1e30), "--area"),
    (lambda a, s, h: a.search("gpt2", 400, devices=10**12), "--devices"),
    (lambda a, s, h: a.search("gpt2", 400, out_dir=5), "out_dir must be a path"),
])
def test_bad_arguments_raise_a_dse_error_naming_them(call, match) -> None:
    """The API checks what the CLI checks and names the argument: no bare TypeError or
    AttributeError from deep inside, no hang on a device count no cluster has."""
    from dse import api
    from dse.errors import DSEError

    spec = api.model_spec("gpt2")
    hw, _ = api.load_hardware("a100")
    with pytest.raises(DSEError, match=match):
        call(api, spec, hw)
