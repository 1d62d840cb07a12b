"""Tests of ``dse report`` (dse/report.py, dse/commands/report.py).

Environment used:
* ``chromium`` on PATH (or ``DSE_CHROMIUM`` = path to a Chrome/Chromium binary): the
  browser test opens the report headless and checks every figure was drawn with no
  console errors. Without one the browser test is skipped with the reason
  (CI installs Debian's ``chromium`` in ``.ci/run``).
* ``kaleido`` (``pip install 'dse[images]'``) plus Chromium for the PNG/SVG test;
  without them the test checks that the one-line hint is returned instead.

The run directory is a synthetic one written exactly in the format of
``docs/architecture.md`` ("Run directory"): summary.json, best.json, designs.csv.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dse.cli import main
from dse.errors import ConfigError
from dse.report import (
    IMAGES_HINT,
    SECTION_IDS,
    generate_report,
    load_run,
    pareto_mask,
    write_report,
)

HW_FIELDS = ("name", "tensor_cores", "array_rows", "array_cols", "vector_cores", "vector_lanes",
             "freq_hz", "hbm_bw_bytes_per_s", "hbm_bytes", "dataflow", "dtype",
             "sram_per_core_bytes", "global_buffer_bytes", "global_buffer_bw_bytes_per_cycle",
             "hbm_stacks", "link_count", "link_bw_bytes_per_s", "tech_node_nm")


def _hardware(name: str, cores: int, rows: int, cols: int, dataflow: str, sram: int,
              freq: float = 1.0e9) -> dict[str, Any]:
    hw = {"name": name, "tensor_cores": cores, "array_rows": rows, "array_cols": cols,
          "vector_cores": cores, "vector_lanes": 128, "freq_hz": freq,
          "hbm_bw_bytes_per_s": 1.2e12, "hbm_bytes": 32 * 2**30, "dataflow": dataflow,
          "dtype": "bf16", "sram_per_core_bytes": sram, "global_buffer_bytes": 16 * 2**20,
          "global_buffer_bw_bytes_per_cycle": 4096.0, "hbm_stacks": 4, "link_count": 4,
          "link_bw_bytes_per_s": 50e9, "tech_node_nm": 7.0}
    macs = cores * rows * cols
    hw.update(peak_flop_per_s=2.0 * macs * freq, area_mm2=_area(cores, rows, cols, sram),
              tdp_w=_tdp(cores, rows, cols, sram, freq),
              sram_bytes=cores * sram + hw["global_buffer_bytes"])
    return hw


def _area(cores: int, rows: int, cols: int, sram: int) -> float:
    # 7 nm-like constants: ~0.0015 mm² per bf16 MAC, ~0.45 mm² per MiB of SRAM, uncore 60 mm²
    return 0.0015 * cores * rows * cols + 0.45 * cores * sram / 2**20 + 60.0


def _tdp(cores: int, rows: int, cols: int, sram: int, freq: float) -> float:
    return 0.0011 * cores * rows * cols * freq / 1e9 + 0.9 * cores * sram / 2**20 + 35.0


def _throughput(cores: int, rows: int, cols: int, dataflow: str, sram: int) -> float:
    util = {"ws": 0.62, "os": 0.55, "is": 0.5}[dataflow] * (1 - math.exp(-sram / 2**21))
    util *= 1.0 / (1.0 + 0.15 * max(rows, cols) / 128.0)
    return 2.0 * cores * rows * cols * 1e9 * util / 1.2e12  # samples/s at 1.2 TFLOP/sample


def _evaluation(hw: dict[str, Any], thr: float, schedule: bool) -> dict[str, Any]:
    step = 8 / thr
    ev: dict[str, Any] = {
        "step_time_s": step, "samples_per_s": thr,
        "achieved_flop_per_s_per_device": thr * 1.2e12, "area_mm2": hw["area_mm2"],
        "tdp_w": hw["tdp_w"], "energy_per_step_j": 0.6 * hw["tdp_w"] * step,
        "memory_per_device_bytes": 21.5 * 2**30, "fits_memory": True,
        "critical_path": ["embed", "l0_qkv", "l0_attn", "l0_ffn1", "head_dx", "l0_ffn1_dx",
                          "l0_qkv_dx", "adam"],
        "breakdown": {
            "phase": {"fwd": 0.31 * step, "bwd_data": 0.29 * step, "bwd_weight": 0.27 * step,
                      "optimizer": 0.05 * step, "comm": 0.08 * step},
            "kind": {"gemm": 0.71 * step, "softmax": 0.06 * step, "norm": 0.05 * step,
                     "elementwise": 0.05 * step, "optimizer": 0.05 * step,
                     "collective": 0.08 * step},
        },
        "utilization": thr * 1.2e12 / hw["peak_flop_per_s"],
        "perf_per_tdp": thr / hw["tdp_w"],
        "area_breakdown_mm2": {"tensor_cores": 0.0015 * hw["tensor_cores"] * hw["array_rows"]
                               * hw["array_cols"], "sram": 0.45 * hw["sram_bytes"] / 2**20,
                               "vector_cores": 9.5, "hbm_phy": 4 * 7.5, "links": 12.0,
                               "control": 8.5, "total": hw["area_mm2"]},
        "power_breakdown_w": {"tensor_cores": 0.6 * hw["tdp_w"], "sram": 0.18 * hw["tdp_w"],
                              "vector_cores": 0.07 * hw["tdp_w"], "hbm": 0.1 * hw["tdp_w"],
                              "leakage": 0.05 * hw["tdp_w"], "total": hw["tdp_w"]},
        "memory_breakdown_bytes": {"weights": 4.0 * 2**30, "optimizer": 12.0 * 2**30,
                                   "activations": 5.5 * 2**30},
    }
    if schedule:
        ops = [("embed", "vc0", "embedding_gather", "fwd", 0.00, 0.02),
               ("l0_qkv", "tc0", "gemm", "fwd", 0.02, 0.12),
               ("l0_attn", "tc1", "gemm", "fwd", 0.12, 0.20),
               ("l0_softmax", "vc0", "softmax", "fwd", 0.12, 0.16),
               ("l0_ffn1", "tc0", "gemm", "fwd", 0.20, 0.36),
               ("l0_gelu", "vc0", "activation", "fwd", 0.36, 0.38),
               ("head_dx", "tc1", "gemm", "bwd_data", 0.38, 0.46),
               ("l0_ffn1_dx", "tc0", "gemm", "bwd_data", 0.46, 0.62),
               ("l0_ffn1_dw", "tc1", "gemm", "bwd_weight", 0.46, 0.60),
               ("l0_qkv_dx", "tc0", "gemm", "bwd_data", 0.62, 0.74),
               ("l0_qkv_dw", "tc1", "gemm", "bwd_weight", 0.62, 0.72),
               ("grad_allreduce", "link", "collective", "comm", 0.72, 0.90),
               ("adam", "vc0", "optimizer", "optimizer", 0.74, 0.98)]
        ev["schedule"] = [{"op": o, "unit": u, "kind": k, "phase": p, "start_s": a * step,
                           "end_s": b * step} for o, u, k, p, a, b in ops]
    return ev


def make_run_dir(root: Path, *, n_designs: int = 240, schedule: bool = True,
                 seed: int = 7) -> Path:
    """A realistic run directory of a GPT-2 search at a 400 mm² budget."""
    rng = np.random.default_rng(seed)
    run = root / "run-gpt2"
    run.mkdir(parents=True)
    area_budget, power_budget = 400.0, 300.0
    rows_out: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for i in range(n_designs):
        cores = int(rng.choice([1, 2, 4, 8]))
        rows = int(rng.choice([32, 64, 128, 256]))
        cols = int(rng.choice([32, 64, 128, 256]))
        df = str(rng.choice(["ws", "os", "is"]))
        sram = int(rng.choice([1, 2, 4, 8, 16])) * 2**20
        hw = _hardware(f"d{i}", cores, rows, cols, df, sram)
        thr = _throughput(cores, rows, cols, df, sram) * float(rng.uniform(0.93, 1.0))
        feasible = hw["area_mm2"] <= area_budget and hw["tdp_w"] <= power_budget
        searcher = "wham" if i % 2 == 0 else "random"
        row = {k: hw[k] for k in HW_FIELDS}
        row.update(area_mm2=hw["area_mm2"], tdp_w=hw["tdp_w"], samples_per_s=thr,
                   step_time_s=8 / thr, feasible=feasible, searcher=searcher, eval_index=i)
        rows_out.append(row)
        if feasible and (best is None or thr > best[0]):
            best = (thr, hw)
    assert best is not None
    with (run / "designs.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows_out[0]))
        w.writeheader()
        w.writerows(rows_out)
    best_hw = best[1]
    best_eval = _evaluation(best_hw, best[0], schedule)
    system = {"devices_per_node": 8, "intra_node_topology": "switch",
              "intra_node_bw_bytes_per_s": 300e9, "intra_node_latency_s": 2e-6,
              "inter_node_topology": "switch", "inter_node_bw_bytes_per_s": 25e9,
              "inter_node_latency_s": 5e-6, "torus_dims": []}
    plan = {"tp": 1, "pp": 1, "dp": 8, "global_batch": 64, "micro_batch": 8,
            "schedule": "1f1b", "recompute": "none", "optimizer": "adam",
            "sequence_parallel": False, "zero_stage": 0, "interleave": 1}
    best_json = {"hardware": best_hw, "system": system, "plan": plan, "workload": "gpt2",
                 "evaluation": best_eval}
    (run / "best.json").write_text(json.dumps(best_json, indent=1))
    tpu = _hardware("tpu-like", 2, 128, 128, "ws", 16 * 2**20, 0.94e9)
    nvdla = _hardware("nvdla-like", 16, 32, 32, "ws", 2**20, 1.0e9)
    baselines = {
        "tpu-like": {"hardware": tpu, "evaluation": _evaluation(
            tpu, _throughput(2, 128, 128, "ws", 16 * 2**20) * 0.9, False)},
        "nvdla-like": {"hardware": nvdla, "evaluation": _evaluation(
            nvdla, _throughput(16, 32, 32, "ws", 2**20) * 0.8, False)},
    }
    conv = []
    for searcher in ("wham", "random"):
        best_so_far = 0.0
        for r in rows_out:
            if r["searcher"] != searcher:
                continue
            if r["feasible"]:
                best_so_far = max(best_so_far, r["samples_per_s"])
            conv.append({"evaluations": r["eval_index"] // 2 + 1, "best": best_so_far,
                         "searcher": searcher})
    plans = []
    for tp, pp, dp, fits in ((1, 1, 8, True), (2, 1, 4, True), (1, 2, 4, True),
                             (2, 2, 2, True), (8, 1, 1, True), (1, 8, 1, False)):
        scale = 1.0 / (1 + 0.08 * (tp - 1) + 0.12 * (pp - 1))
        plans.append({"plan": {**plan, "tp": tp, "pp": pp, "dp": dp,
                               "micro_batch": 64 // (dp * 8) if pp > 1 else 64 // dp},
                      "samples_per_s": best[0] * 8 * scale,
                      "step_time_s": 64 / (best[0] * 8 * scale),
                      "fits_memory": fits})
    tradeoff = []
    for n in (2, 4, 6):
        for bw in (22.5e9, 45e9, 90e9):
            link_mm2 = n * bw / 25e9
            tradeoff.append({
                "link_count": n, "link_bw_bytes_per_s": bw, "is_best": (n, bw) == (6, 45e9),
                "feasible": True, "tensor_cores": 100 - int(link_mm2), "area_mm2": 399.0,
                "links_area_mm2": link_mm2, "tdp_w": 300.0,
                "samples_per_s": best[0] * (1 - 0.5 / (n * bw / 22.5e9)),
                "objective_value": best[0] * (1 - 0.5 / (n * bw / 22.5e9)),
                "all_to_all_share": 0.5 / (n * bw / 22.5e9), "plans": [plan]})
    top = sorted((r for r in rows_out if r["feasible"]), key=lambda r: -r["samples_per_s"])[:5]
    summary = {
        "best": {"hardware": best_hw, "evaluation": best_eval},
        "top_k": [{"hardware": {k: r[k] for k in HW_FIELDS},
                   "evaluation": {"samples_per_s": r["samples_per_s"],
                                  "area_mm2": r["area_mm2"], "tdp_w": r["tdp_w"]}}
                  for r in top],
        "baselines": baselines, "evaluations": n_designs, "wall_s": 12.4,
        "out_dir": str(run), "workloads": ["gpt2"], "area_mm2": area_budget,
        "power_w": power_budget, "objective": "throughput", "searcher": "wham", "seed": seed,
        "plan": plan, "convergence": conv,
        "pareto": [], "plans": plans, "link_tradeoff": tradeoff,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return run


# --------------------------------------------------------------------------- unit tests


def test_pareto_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    pts = rng.uniform(1, 10, size=(200, 3))
    pts[::7] = pts[1::7][: len(pts[::7])]  # duplicates
    mask = pareto_mask(pts)
    for i, p in enumerate(pts):
        dominated = any(q[0] >= p[0] and q[1] <= p[1] and q[2] <= p[2]
                        and (q[0] > p[0] or q[1] < p[1] or q[2] < p[2]) for q in pts)
        assert mask[i] == (not dominated), i


def test_report_is_self_contained_with_every_figure(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text(encoding="utf-8")
    # plotly.js embedded exactly once, nothing fetched from the network
    assert text.count("* plotly.js v") == 1
    assert len(re.findall(r"<script[^>]*\bsrc=", text)) == 0
    assert len(re.findall(r"<link[^>]*\bhref=", text)) == 0
    for sid in SECTION_IDS:
        assert f'id="fig-{sid}"' in text, sid
    assert "critical path" in text
    assert "tpu-like" in text and "nvdla-like" in text
    assert len(text) > 3_000_000  # plotly.js (~4.7 MB) inlined


def test_report_sections_carry_the_run_data(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    result = generate_report(run)
    assert result.sections == SECTION_IDS
    data = load_run(run)
    from dse.report import build_sections

    secs = {s.id: s for s in build_sections(data)}
    # Pareto: the front trace holds exactly the non-dominated feasible designs
    df = data.designs.rows(data.designs["feasible"].astype(str) == "True")
    n_front = int(pareto_mask(df.matrix(["samples_per_s", "area_mm2", "tdp_w"])).sum())
    front = [t for t in secs["pareto"].figure.data if t.name.startswith("Pareto front")]
    assert len(front[0].x) == n_front
    # baselines: best first, ratios as stored
    bars = secs["baselines"].figure.data[0]
    assert list(bars.x) == ["best: " + data.best["hardware"]["name"], "tpu-like", "nvdla-like"]
    assert bars.y[0] == pytest.approx(data.best["evaluation"]["samples_per_s"])
    # timeline: critical-path ops are in the red trace
    crit = [t for t in secs["timeline"].figure.data if t.name == "critical path"][0]
    names = {c[0] for c in crit.customdata}
    assert names == set(data.best["evaluation"]["critical_path"])
    # convergence: one monotone line per searcher
    lines = secs["convergence"].figure.data
    assert sorted(t.name for t in lines) == ["random", "wham"]
    for t in lines:
        assert all(b >= a for a, b in zip(t.y, t.y[1:]))
    # plans: all six plans, sorted by throughput
    plan_bars = secs["plans"].figure.data[0]
    assert len(plan_bars.x) == 6 and list(plan_bars.y) == sorted(plan_bars.y, reverse=True)
    # links: one bar group per link bandwidth, one bar per link count, the mined links named
    link = secs["links"].figure.data
    assert [t.name for t in link] == ["22.5 GB/s per link", "45 GB/s per link",
                                      "90 GB/s per link"]
    assert all(list(t.x) == ["2 links", "4 links", "6 links"] for t in link)
    summ = json.loads((run / "summary.json").read_text())
    assert link[1].y[2] == pytest.approx(summ["link_tradeoff"][7]["samples_per_s"])
    assert sum("the mined design's links" in f for f in secs["links"].facts) == 1
    assert "6 links of 90 GB/s" in secs["links"].text


def test_a_one_device_run_has_a_links_note(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    summ = json.loads((run / "summary.json").read_text())
    summ["link_tradeoff"] = []
    (run / "summary.json").write_text(json.dumps(summ))
    from dse.report import build_sections

    sec = {s.id: s for s in build_sections(load_run(run))}["links"]
    assert sec.figure is None and "one device" in sec.note


def test_missing_schedule_gives_a_note_not_a_crash(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, schedule=False)
    best = json.loads((run / "best.json").read_text())
    best["workload"] = None  # nothing to recompute from
    (run / "best.json").write_text(json.dumps(best))
    text = write_report(run).read_text()
    assert 'id="fig-timeline"' not in text
    assert "No per-operator schedule" in text


def test_schedule_recomputed_from_the_design_when_not_stored(tmp_path: Path) -> None:
    """Without a stored schedule the timeline comes from cost_models.evaluate on the
    best design's workload (real gpt2 graph, micro-batch 2)."""
    from cost_models.evaluate import evaluate_device
    from cost_models.technology import load_technology
    from dse.export import load_design, workload_graphs
    from dse.report import build_sections

    run = make_run_dir(tmp_path, schedule=False)
    best = json.loads((run / "best.json").read_text())
    best["plan"]["micro_batch"] = 2
    (run / "best.json").write_text(json.dumps(best))
    sec = {s.id: s for s in build_sections(load_run(run))}["timeline"]
    assert sec.figure is not None and "recomputed" in sec.text
    design = load_design(run)
    graph = workload_graphs(design)[0]
    ref = evaluate_device(graph, design.hardware, load_technology(7.0))
    traces = {t.name: t for t in sec.figure.data}
    red = {c[0] for c in traces["critical path"].customdata}
    assert red == set(ref.schedule_chain)
    drawn = sum(len(t.x) for t in sec.figure.data)
    assert drawn == len(ref.records) == len(graph.ops)
    ends = [b + w for t in sec.figure.data for b, w in zip(t.base, t.x)]
    assert max(ends) == pytest.approx(ref.makespan_s * 1e3)  # ms axis


@pytest.mark.parametrize("missing", ["summary.json", "best.json", "designs.csv"])
def test_cli_names_the_missing_file(tmp_path: Path, missing: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run_dir(tmp_path)
    (run / missing).unlink()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert missing in err and len(err.strip().splitlines()) == 1


def test_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    run = make_run_dir(tmp_path)
    (run / "summary.json").write_text("{not json")
    assert main(["report", str(run)]) == 2
    assert "summary.json: malformed JSON at line 1" in capsys.readouterr().err
    run2 = make_run_dir(tmp_path / "b")
    (run2 / "designs.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="designs.csv: missing column 'area_mm2'"):
        load_run(run2)


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run_dir(tmp_path)
    assert main(["report", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(run / "report.html")
    assert out["figures"] == list(SECTION_IDS)
    assert out["images"] == [] and out["images_hint"] is None


@pytest.mark.slow
def test_report_of_a_real_search_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: a small real `dse search`, then `dse report` on its run directory."""
    run = tmp_path / "run"
    rc = main(["search", "--workload", "gpt2", "--area", "400", "--budget", "40", "--seed", "2",
               "--out", str(run), "--no-report", "--json"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["report", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for sid in ("pareto", "baselines", "breakdown", "timeline", "area-power", "convergence"):
        assert sid in out["figures"], sid
    html_text = (run / "report.html").read_text()
    best = json.loads((run / "best.json").read_text())
    from dse.report import build_sections

    secs = {s.id: s for s in build_sections(load_run(run))}
    ev = best["evaluation"]
    area_pie, power_pie = secs["area-power"].figure.data
    assert sum(area_pie.values) == pytest.approx(ev["area_mm2"], rel=0.01)  # no subtotals
    assert sum(power_pie.values) == pytest.approx(ev["tdp_w"], rel=0.01)
    bars = {t.xaxis: t for t in secs["breakdown"].figure.data}
    assert sum(bars["x"].y) > 0 and all(v > 0 for t in bars.values() for v in t.y)
    assert best["hardware"]["name"] in html_text
    chromium = _chromium()
    if chromium is not None:
        dom, log = render_in_chromium(run / "report.html", tmp_path, chromium)
        assert dom.count('class="main-svg"') >= len(out["figures"])
        assert not [ln for ln in log.splitlines() if "Uncaught" in ln]


def _chromium() -> str | None:
    env = os.environ.get("DSE_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_images_or_hint(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    result = generate_report(run, images=True)
    import importlib.util

    have_kaleido = importlib.util.find_spec("kaleido") is not None
    if have_kaleido and _chromium():
        assert result.images_hint is None, result.images_hint
        assert len(result.images) == 2 * len(SECTION_IDS)
        png = run / "report_images" / "pareto.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (run / "report_images" / "timeline.svg").read_text().lstrip().startswith("<svg")
    else:
        assert result.images == ()
        assert result.images_hint is not None and result.images_hint.startswith(IMAGES_HINT)
        assert "\n" not in result.images_hint


def render_in_chromium(html_path: Path, tmp: Path, chromium: str) -> tuple[str, str]:
    """Load the page headless; return (dumped DOM, browser stderr)."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
           "--v=0", "--virtual-time-budget=15000", "--dump-dom", html_path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium, or set DSE_CHROMIUM)")
    run = make_run_dir(tmp_path)
    html_path = write_report(run)
    dom, log = render_in_chromium(html_path, tmp_path, chromium)
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    errors = [ln for ln in console if "ERROR" in ln or "Uncaught" in ln or ":ERROR:" in ln]
    assert not errors, "\n".join(errors)
    for sid in SECTION_IDS:
        m = re.search(rf'<div id="fig-{sid}"[^>]*>', dom)
        assert m, f"figure div fig-{sid} missing from the rendered DOM"
        rest = dom[m.end():]
        nxt = re.search(r'<div id="fig-', rest)
        chunk = rest[: nxt.start()] if nxt else rest
        assert 'class="main-svg"' in chunk, f"plotly did not draw fig-{sid}"


def test_multi_workload_report_shows_every_workload_and_the_geomean(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run over two workloads reports each one's throughput, plan and margins, the
    geometric mean the search maximized, and axes fitted to the budget (issue 15)."""
    run = tmp_path / "run"
    rc = main(["search", "--workload", "gpt2,bert-base", "--area", "300", "--power", "250",
               "--searcher", "random", "--budget", "30", "--seed", "1", "--out", str(run),
               "--json"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    page = (run / "report.html").read_text()
    assert "Per workload" in page and "geometric mean (the objective)" in page
    for w in ("gpt2", "bert-base"):
        assert f"<td>{w}</td>" in page
    from dse.report import _throughput, build_sections

    geo = summary["mean"]["geomean_samples_per_s"]
    assert _throughput(summary["best"]) == pytest.approx(geo, rel=1e-9)
    fig = next(s for s in build_sections(load_run(run)) if s.id == "pareto").figure
    lo, hi = fig.layout.xaxis.range
    assert lo == 0 and 300 <= hi <= 1.2 * 300 + 1e-9
    star = next(t for t in fig.data if t.name == "best design")
    assert star.y[0] == pytest.approx(geo, rel=1e-9)


def test_designs_csv_the_same_through_csv_and_through_pandas(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Small runs write and read designs.csv without pandas, large ones with it: the file
    and the table must not depend on which path ran."""
    import numpy as np

    import dse.report as report
    import search.runner as runner

    table = {"name": np.array(["a", "b,c", "d"], dtype=object),
             "samples_per_s": np.array([1.5, np.nan, 3.0 + 1e-12]),
             "area_mm2": np.array([100.0, 200.0, 300.0]), "tdp_w": np.array([1.0, 2.0, 3.0]),
             "step_time_s": np.array([0.5, np.inf, -np.inf]),
             "feasible": np.array([True, False, True]), "tensor_cores": np.arange(3)}
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    runner.write_csv(table, small)
    monkeypatch.setattr(runner, "_CSV_PANDAS_ROWS", 1)
    runner.write_csv(table, big)
    assert small.read_text() == big.read_text()
    # no infinities: the step time of a design no plan runs is an empty cell
    assert "inf" not in small.read_text()
    assert small.read_text().splitlines()[2].split(",")[-3] == ""
    a = report.Table.read_csv(small)
    monkeypatch.setattr(report, "_CSV_PANDAS_BYTES", 0)
    b = report.Table.read_csv(small)
    assert a.columns == b.columns
    for c in a.columns:
        if a[c].dtype.kind == "f":
            assert b[c].dtype.kind == "f" and np.array_equal(a[c], b[c], equal_nan=True)
        else:
            assert list(a[c]) == list(b[c])


def test_pareto_mask_equals_the_definition_with_repeated_and_missing_points() -> None:
    """Each distinct point is decided once (a study that scored a design many times gave a
    quadratic front); the mask equals the pairwise definition, NaN rows excluded."""
    import numpy as np

    from dse.report import pareto_mask

    rng = np.random.default_rng(3)
    base = rng.integers(0, 6, size=(60, 3)).astype(float)
    pts = np.vstack([base, base[:20], base[:5]])
    pts[7, 1] = np.nan
    key = np.column_stack([-pts[:, 0], pts[:, 1], pts[:, 2]])
    ok = np.isfinite(key).all(axis=1)
    want = np.array([ok[i] and not any(ok[j] and (key[j] <= key[i]).all()
                                       and (key[j] < key[i]).any() for j in range(len(pts)))
                     for i in range(len(pts))])
    assert (pareto_mask(pts) == want).all()
