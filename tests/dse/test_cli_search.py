"""`dse search` through the CLI: the JSON contract, the run directory, exit codes, the
report hook and `dse evaluate` agreeing with the search on the best design."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from dse import cli
from tests.search.tiny import tiny_yaml

CONTRACT = ("best", "top_k", "baselines", "evaluations", "wall_s", "out_dir")
HARDWARE_SHOW = ("name", "peak_flop_per_s", "area_mm2", "tdp_w", "freq_hz", "tensor_cores",
                 "array_rows", "array_cols", "vector_cores", "vector_lanes", "sram_bytes",
                 "hbm_bytes", "hbm_bw_bytes_per_s")
EVALUATE = ("step_time_s", "samples_per_s", "achieved_flop_per_s_per_device", "area_mm2",
            "tdp_w", "energy_per_step_j", "memory_per_device_bytes", "fits_memory",
            "critical_path", "breakdown")
RUN_DIR = ("summary.json", "best.json", "designs.csv", "study.db")
SUMMARY = ("workloads", "area_mm2", "power_w", "objective", "searcher", "seed", "plan",
           "convergence", "pareto")
CSV = ("tensor_cores", "array_rows", "array_cols", "dataflow", "vector_cores",
       "vector_lanes", "sram_per_core_bytes", "global_buffer_bytes", "hbm_bytes",
       "hbm_bw_bytes_per_s", "area_mm2", "tdp_w", "samples_per_s", "step_time_s",
       "feasible", "searcher", "eval_index")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str, str]:
    tmp = tmp_path_factory.mktemp("cli")
    wl = tiny_yaml(tmp)
    out = tmp / "run"
    import io
    from contextlib import redirect_stderr, redirect_stdout

    so, se = io.StringIO(), io.StringIO()
    with redirect_stdout(so), redirect_stderr(se):
        code = cli.main(["search", "--workload", wl, "--area", "150", "--searcher", "random",
                         "--budget", "12", "--top-k", "2", "--out", str(out), "--json",
                         "--no-report"])
    assert code == 0, se.getvalue()
    return out, json.loads(so.getvalue()), se.getvalue(), wl


def test_json_contract_keys(run) -> None:
    out, r, _, _ = run
    for k in CONTRACT:
        assert k in r
    assert r["evaluations"] == 12
    assert r["out_dir"] == str(out.resolve())
    for entry in [r["best"], *r["top_k"]]:
        for k in HARDWARE_SHOW:
            assert k in entry["hardware"]
        for k in EVALUATE:
            assert k in entry["evaluation"]
    assert len(r["top_k"]) == 2 and r["top_k"][0]["design"] == r["best"]["design"]
    names = {b["name"] for b in r["baselines"]}
    assert names == {"tpuv4-like", "tpuv2-like", "nvdla-like"}
    assert {b["name"]: b["family"] for b in r["baselines"]} == {
        "tpuv4-like": "tpu-like", "tpuv2-like": "tpu-like", "nvdla-like": "nvdla-like"}
    for b in r["baselines"]:
        if b["hardware"] is not None:
            assert b["hardware"]["area_mm2"] <= 150.0
            for k in EVALUATE:
                assert k in b["evaluation"]


def test_run_directory(run) -> None:
    out, r, _, _ = run
    for f in RUN_DIR:
        assert (out / f).exists(), f
    summary = json.loads((out / "summary.json").read_text())
    for k in CONTRACT + SUMMARY:
        assert k in summary
    assert summary["best"]["design"] == r["best"]["design"]
    best = json.loads((out / "best.json").read_text())
    assert set(best) == {"hardware", "system", "plan", "workload", "evaluation"}
    for k in HARDWARE_SHOW:
        assert k in best["hardware"]
    df = pd.read_csv(out / "designs.csv")
    assert len(df) == 12
    for c in CSV:
        assert c in df.columns
    assert list(df["eval_index"]) == list(range(12))
    assert (df["searcher"] == "random").all()


def test_json_mode_keeps_stdout_to_one_object(run) -> None:
    _, _, err, _ = run
    # no progress bar with --json: stderr holds at most one-line warnings
    assert all(line.startswith("dse search: warning: ") for line in err.splitlines()), err


def test_progress_without_a_terminal_is_plain_lines(tmp_path, capsys) -> None:
    """stderr to a file or pipe: phase lines, no bar, no carriage return."""
    wl = tiny_yaml(tmp_path)
    code = cli.main(["search", "--workload", wl, "--area", "150", "--searcher", "random",
                     "--budget", "6", "--out", str(tmp_path / "run"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert lines and all(line.startswith("dse search: ") for line in lines), err
    assert any("writing" in line for line in lines)


def test_progress_log_line_only_when_the_count_moves(capsys) -> None:
    from dse.commands.search import _Progress

    bar = _Progress(enabled=True, tty=False)
    bar.message("phase one")
    try:
        bar.update(7)
        bar._log_count()
        bar._log_count()  # nothing new: no second line
        bar.update(2)
        bar._log_count()
    finally:
        bar.close()
    assert capsys.readouterr().err.splitlines() == [
        "dse search: phase one", "dse search: 7 design(s) scored",
        "dse search: 9 design(s) scored"]


def test_evaluate_agrees_with_the_search_on_best_json(run, capsys) -> None:
    out, r, _, wl = run
    p = r["best"]["evaluation"]["plan"]
    code = cli.main(["evaluate", "--workload", wl, "--hardware", str(out / "best.json"),
                     "--micro-batch", str(p["micro_batch"]), "--recompute", p["recompute"],
                     "--global-batch", str(p["global_batch"]), "--json"])
    assert code == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["samples_per_s"] == pytest.approx(r["best"]["evaluation"]["samples_per_s"],
                                                rel=1e-9)
    assert ev["area_mm2"] == pytest.approx(r["best"]["hardware"]["area_mm2"], rel=1e-9)


def test_rerun_resumes_the_study(run, capsys) -> None:
    out, _r, _, wl = run
    code = cli.main(["search", "--workload", wl, "--area", "150", "--searcher", "random",
                     "--budget", "15", "--top-k", "1", "--out", str(out), "--json",
                     "--no-report"])
    assert code == 0
    again = json.loads(capsys.readouterr().out)
    assert again["evaluations_resumed"] == 12 and again["evaluations_this_run"] == 3
    assert len(pd.read_csv(out / "designs.csv")) == 15


def test_area_too_small_exits_3_naming_the_smallest_area(run, capsys, tmp_path) -> None:
    _, _, _, wl = run
    code = cli.main(["search", "--workload", wl, "--area", "1", "--out", str(tmp_path / "x"),
                     "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 3
    assert len(err.splitlines()) == 1
    assert "smallest design that would work needs" in err and "mm²" in err


@pytest.mark.parametrize("argv, needle", [
    (["--searcher", "tpe"], "invalid choice"),
    (["--budget", "0"], "--budget must be a positive integer"),
    (["--workload", "nosuchmodel"], "nosuchmodel"),
])
def test_bad_input_exits_2(run, capsys, tmp_path, argv: list[str], needle: str) -> None:
    _, _, _, wl = run
    base = ["search", "--workload", wl, "--area", "150", "--out", str(tmp_path / "y")]
    code = cli.main(base + argv)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_report_failure_is_a_warning_not_a_lost_run(run, capsys, tmp_path, monkeypatch) -> None:
    _, _, _, wl = run
    import types

    fake = types.ModuleType("dse.report")

    def boom(run_dir: Path) -> None:
        raise RuntimeError("no browser")

    fake.write_report = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dse.report", fake)
    import dse

    monkeypatch.setattr(dse, "report", fake, raising=False)
    out = tmp_path / "z"
    code = cli.main(["search", "--workload", wl, "--area", "150", "--searcher", "random",
                     "--budget", "3", "--top-k", "1", "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 0
    assert "warning: report.html not written" in cap.err
    assert (out / "summary.json").exists() and (out / "designs.csv").exists()
    assert "best" in cap.out  # the human-readable table


def test_every_flag_has_help() -> None:
    """``dse CMD --help`` explains every flag and positional argument (issue 15)."""
    import argparse

    from dse.cli import build_parser

    missing = []

    def walk(p: argparse.ArgumentParser, name: str) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for n, sp in a.choices.items():
                    walk(sp, f"{name} {n}")
            elif not a.help and "--help" not in a.option_strings:
                missing.append(f"{name} {a.option_strings or a.dest}")

    walk(build_parser(), "dse")
    assert missing == []


def _search(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``dse ARGV``."""
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_a_run_directory_holds_one_search_and_resumes_only_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command resumes its run; another seed, another workload or a workload file
    that changed since would mix or overwrite results, so each is refused naming why."""
    cfg = tmp_path / "m" / "config.json"
    cfg.parent.mkdir()
    gpt = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2,
           "vocab_size": 100, "n_positions": 128}
    cfg.write_text(json.dumps(gpt))
    out = tmp_path / "run"
    base = ["search", "--workload", str(cfg), "--area", "400", "--searcher", "random",
            "--no-report", "--out", str(out)]
    assert _search(base + ["--budget", "3"], capsys)[0] == 0
    code, err = _search(base + ["--budget", "5"], capsys)
    assert code == 0 and "(3 from the resumed study)" in err
    code, err = _search(base + ["--budget", "6", "--seed", "5"], capsys)
    assert code == 2 and "seed=0, this run 5" in err and "give another --out" in err
    code, err = _search(["search", "--workload", "gpt2", "--area", "400", "--searcher",
                         "random", "--budget", "3", "--no-report", "--out", str(out)], capsys)
    assert code == 2 and "holds another search" in err
    cfg.write_text(json.dumps(dict(gpt, n_layer=3)))
    code, err = _search(base + ["--budget", "6"], capsys)
    assert code == 2 and "workload_files" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 5  # the refused runs wrote nothing


def test_optuna_with_fewer_trials_than_its_seed_designs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A budget below the enqueued seed designs stores only the trials it ran."""
    code, err = _search(["search", "--workload", "gpt2", "--area", "400", "--searcher",
                         "optuna", "--budget", "1", "--no-report", "--out",
                         str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["evaluations"] == 1


def test_a_worker_on_a_storage_that_does_not_exist_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty_run"
    empty.mkdir()
    for storage in (str(empty), str(tmp_path / "new.db"), f"journal:{tmp_path / 'n.log'}"):
        code, err = _search(["worker", "--storage", storage, "--study", "x"], capsys)
        assert code == 2 and "does not exist" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty_run"]
    assert not any(empty.iterdir())
