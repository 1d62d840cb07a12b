"""Tests of the ``dse evaluate`` command (design brief §4 contract)."""

import json
import subprocess
import sys
import time

import pytest

from dse.cli import main

CONTRACT = ("step_time_s", "samples_per_s", "achieved_flop_per_s_per_device", "area_mm2",
            "tdp_w", "energy_per_step_j", "memory_per_device_bytes", "fits_memory",
            "critical_path", "breakdown")


def run_json(capsys, *argv):
    rc = main(["evaluate", *argv, "--json"])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


def test_single_device_gptj_on_tpuv4_has_every_contract_key(capsys):
    rc, d, _ = run_json(capsys, "--workload", "gptj", "--hardware", "tpuv4")
    assert rc == 0
    for k in CONTRACT:
        assert k in d
    assert d["plan"]["tp"] == d["plan"]["pp"] == d["plan"]["dp"] == 1
    assert d["plan"]["global_batch"] == 512  # the workload's default batch
    assert d["workload"] == "gptj" and d["hardware"]["name"] == "tpuv4"
    assert isinstance(d["critical_path"], list) and d["critical_path"]
    assert d["fits_memory"] is False  # 6B params x 16 B/param > 32 GiB


def test_derived_plan_values(capsys):
    rc, d, _ = run_json(capsys, "--workload", "gpt2", "--hardware", "a100", "--devices", "8",
                        "--tp", "2", "--pp", "2", "--micro-batch", "2")
    assert rc == 0
    p = d["plan"]
    assert (p["tp"], p["pp"], p["dp"], p["devices"]) == (2, 2, 2, 8)
    assert p["global_batch"] % (p["dp"] * p["micro_batch"]) == 0
    rc, d, _ = run_json(capsys, "--workload", "gpt2", "--hardware", "a100", "--pp", "2",
                        "--schedule", "interleaved", "--global-batch", "8")
    assert rc == 0 and d["plan"]["interleave"] == 2


@pytest.mark.parametrize("argv,rule", [
    (["--devices", "8", "--tp", "3"], "not divisible by tp\\*pp"),
    (["--tp", "5"], "attention heads"),
    (["--pp", "200"], "exceeds the 12 layers"),
    (["--devices", "8", "--tp", "2", "--dp", "2"], "must equal devices=8"),
    (["--dp", "3", "--global-batch", "8"], "divisible by dp\\*micro_batch"),
    (["--pp", "2", "--schedule", "interleaved", "--global-batch", "3"], "multiple of pp=2"),
])
def test_invalid_plans_exit_2_naming_the_rule(capsys, argv, rule):
    import re

    rc = main(["evaluate", "--workload", "gpt2", "--hardware", "a100", *argv, "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and json.loads(out) == {"error": {"message": err.strip().removeprefix(
        "dse: error: "), "exit_code": 2}}  # --json: the error as one object on stdout
    assert len(err.strip().splitlines()) == 1 and re.search(rule, err), err


def test_readable_table(capsys):
    rc = main(["evaluate", "--workload", "gpt2", "--hardware", "a100", "--tp", "2",
               "--recompute", "selective", "--sequence-parallel"])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "step time" in out and "time per phase" in out and "sequence parallel" in out


def test_a_plan_that_does_not_fit_says_what_to_change(capsys):
    """The text names the larger part of the memory and only options that shrink it and
    are not already set; a plan that fits gets no hint."""
    from dse.commands.evaluate import fit_hint

    rc = main(["evaluate", "--workload", "llama3-8b", "--hardware", "h100", "--devices",
               "8", "--tp", "2", "--dp", "4", "--micro-batch", "4"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "DOES NOT FIT" in out
    hint = next(line for line in out.splitlines() if line.startswith("  to fit: "))
    assert "activations are" in hint and "--sequence-parallel" in hint
    assert "a smaller --micro-batch" in hint and "--zero" not in hint
    rc = main(["evaluate", "--workload", "llama3-70b", "--hardware", "h100", "--devices",
               "8", "--tp", "8"])
    out, _ = capsys.readouterr()
    assert "weights, gradients and optimizer states are" in out and "--zero 1" in out
    acts = {"weights": 1.0, "grads": 1.0, "optimizer": 1.0, "activations": 9.0}
    plan = {"tp": 8, "sequence_parallel": True, "recompute": "full", "micro_batch": 1}
    assert fit_hint(acts, plan) == ("activations are 9 B of it: try more --tp, --cp or "
                                    "--pp")
    states = {"weights": 8.0, "grads": 8.0, "optimizer": 40.0, "activations": 1.0}
    assert fit_hint(states, {"zero_stage": 1}).startswith(
        "weights, gradients and optimizer states are 56 B of it: try --zero 2, more --tp")
    main(["evaluate", "--workload", "gpt2", "--hardware", "a100"])
    assert "to fit:" not in capsys.readouterr()[0]


def test_gpt3_1024_gpus_under_two_seconds():
    """Issue 4 acceptance: the 1024-GPU GPT-3 evaluation runs in < 2 s (a fresh process)."""
    argv = [sys.executable, "-m", "dse.cli", "evaluate", "--workload", "gpt3-175b",
            "--hardware", "a100", "--devices", "1024", "--tp", "8", "--pp", "8", "--dp", "16",
            "--global-batch", "1536", "--micro-batch", "1", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["plan"]["micro_batches"] == 96
    assert wall < 2.0, f"took {wall:.2f} s"


@pytest.mark.parametrize("argv", [
    ["--json", "evaluate", "--workload", "gpt2", "--hardware", "a100"],
    ["evaluate", "--json", "--workload", "gpt2", "--hardware", "a100"],
    ["--json", "workloads", "list"],
    ["--json", "hardware", "show", "a100"],
])
def test_json_before_or_after_the_command_prints_one_object(capsys, argv):
    # A subcommand's own --json default must not reset the top-level flag
    # (argparse's subparser defaults overwrite the namespace).
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert isinstance(json.loads(out), dict)
    assert main([a for a in argv if a != "--json"]) == 0
    out, _ = capsys.readouterr()
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
