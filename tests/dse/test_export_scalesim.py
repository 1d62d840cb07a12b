"""SCALE-Sim export (dse/export/scalesim.py), checked against the real scalesim 3.0.0.

Environment used:
* ``DSE_SCALESIM_PYTHON``: a Python with ``scalesim==3.0.0`` and ``numpy<2``; default
  ``${DSE_PEER_VENVS:-$HOME/.cache/dse-peer-venvs}/scalesim/bin/python`` (``benchmarks/setup_peer_tools.sh`` creates it).
  Without one, the real-SCALE-Sim test is skipped with the reason.
The workload is a tiny GPT-2-style transformer YAML written by the test (2 layers,
hidden 64, batch 2, sequence 32) on an 8×8 weight-stationary array: 7 unique GEMMs
(forward, backward-data, backward-weight) that SCALE-Sim runs in a few seconds.
"""

from __future__ import annotations

import configparser
import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from cost_models.systolic import compute_cycles
from dse.cli import main
from dse.export import export_design, load_design, unique_gemms, workload_graphs

TINY_GPT2 = """\
family: transformer
model_type: gpt2
layers: 2
hidden: 64
heads: 2
ffn: 256
vocab: 256
max_positions: 64
activation: gelu_new
tied_embeddings: true
default_batch: 2
default_seq: 32
"""


def write_design(tmp: Path, *, dataflow: str = "ws", rows: int = 8, cols: int = 8,
                 extra: dict | None = None) -> Path:
    (tmp / "tiny-gpt2.yaml").write_text(TINY_GPT2)
    design = {"hardware": {
        "name": "tiny-array", "tensor_cores": 2, "array_rows": rows, "array_cols": cols,
        "vector_cores": 2, "vector_lanes": 16, "freq_hz": 1e9, "hbm_bw_bytes_per_s": 1e11,
        "hbm_bytes": 2**30, "dataflow": dataflow, "sram_per_core_bytes": 65536,
        "global_buffer_bytes": 262144, "peak_flop_per_s": 2.56e11, "area_mm2": 3.1},
        "workload": "tiny-gpt2.yaml", "batch": 2, "seq": 32, **(extra or {})}
    p = tmp / "design.json"
    p.write_text(json.dumps(design))
    return p


def peer_python(name: str, env_var: str) -> str | None:
    cands = [os.environ.get(env_var, "")]
    root = os.environ.get("DSE_PEER_VENVS") or str(Path.home() / ".cache" / "dse-peer-venvs")
    cands += [f"{root}/{name}/bin/python"]
    return next((c for c in cands if c and Path(c).exists()), None)


def test_files_follow_the_scalesim_3_formats(tmp_path: Path) -> None:
    src = write_design(tmp_path)
    paths = export_design(src, "scalesim", tmp_path / "out")
    names = [p.name for p in paths]
    assert names == ["tiny_array.cfg", "gemm_topology.csv", "layout.csv", "expected_cycles.csv",
                     "run_scalesim.py"]
    cfg_text = paths[0].read_text()
    assert "#" not in cfg_text and ";" not in cfg_text  # no inline comments
    cfg = configparser.ConfigParser()
    cfg.read_string(cfg_text)
    required = {
        "general": ["run_name"],
        "architecture_presets": ["ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB",
                                 "OfmapSramSzkB", "IfmapOffset", "FilterOffset", "OfmapOffset",
                                 "Bandwidth", "Dataflow", "MemoryBanks", "ReadRequestBuffer",
                                 "WriteRequestBuffer"],
        "layout": ["IfmapCustomLayout", "IfmapSRAMBankBandwidth", "IfmapSRAMBankNum",
                   "IfmapSRAMBankPort", "FilterCustomLayout", "FilterSRAMBankBandwidth",
                   "FilterSRAMBankNum", "FilterSRAMBankPort"],
        "sparsity": ["SparsitySupport", "SparseRep", "OptimizedMapping", "BlockSize",
                     "RandomNumberGeneratorSeed"],
        "run_presets": ["InterfaceBandwidth", "UseRamulatorTrace"],
    }
    for section, keys in required.items():
        for key in keys:
            assert cfg.has_option(section, key), (section, key)
    arch = cfg["architecture_presets"]
    assert (arch["ArrayHeight"], arch["ArrayWidth"], arch["Dataflow"]) == ("8", "8", "ws")
    # 64 KiB per core, three equal bf16 buffers: 64 KiB / 3 / 2 B = 10.67 k elements -> 10
    assert arch["IfmapSramSzkB"] == arch["FilterSramSzkB"] == arch["OfmapSramSzkB"] == "10"
    assert cfg["run_presets"]["InterfaceBandwidth"] == "CALC"

    design = load_design(src)
    gemms = unique_gemms(workload_graphs(design))
    assert len(gemms) == len({(g.m, g.k, g.n) for g in gemms}) >= 5
    assert {"fwd", "bwd_data", "bwd_weight"} <= {p for g in gemms for p in g.phases}
    topo = paths[1].read_text().splitlines()
    assert topo[0] == "Layer, M, N, K,"
    assert len(topo) == 1 + len(gemms)
    for line, g in zip(topo[1:], gemms):
        assert line.endswith(",")  # SCALE-Sim drops the last field
        name, m, n, k = [f.strip() for f in line.split(",")[:-1]]
        assert (name, int(m), int(n), int(k)) == (g.name, g.m, g.n, g.k)
    layout = paths[2].read_text().splitlines()
    assert len(layout) == 1 + len(gemms)
    assert all(len(row.split(",")[:-1]) == 21 for row in layout)
    with paths[3].open() as fh:
        rows = list(csv.DictReader(fh))
    for r, g in zip(rows, gemms):
        assert int(r["compute_cycles"]) == compute_cycles(g.m, g.k, g.n, 8, 8, "ws")
        assert int(r["instances_per_step"]) == g.instances_per_step


@pytest.mark.parametrize("missing", ["nope.json", "rundir"])
def test_cli_bad_sources_exit_2(tmp_path: Path, missing: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / missing
    if missing == "rundir":
        src.mkdir()
    assert main(["export", str(src), "--format", "scalesim", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert ("best.json" in err) if missing == "rundir" else (missing in err)


def test_cli_invalid_design_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_design(tmp_path)
    data = json.loads(src.read_text())
    data["hardware"]["dataflow"] = "rs"
    src.write_text(json.dumps(data))
    assert main(["export", str(src), "--format", "scalesim", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "design.json" in err and "dataflow" in err
    (tmp_path / "nohw.json").write_text(json.dumps({"workload": "gpt2"}))
    assert main(["export", str(tmp_path / "nohw.json"), "--format", "zigzag", "--out",
                 str(tmp_path / "o")]) == 2
    assert "no top-level 'hardware'" in capsys.readouterr().err


def test_design_without_workload_is_an_export_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = write_design(tmp_path)
    data = json.loads(src.read_text())
    del data["workload"]
    src.write_text(json.dumps(data))
    # a design file without a workload is bad input (exit 2), not a failure of the exporter
    assert main(["export", str(src), "--format", "scalesim", "--out", str(tmp_path / "o")]) == 2
    assert "names no 'workload'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("dataflow,rows,cols", [("ws", 8, 8), ("os", 8, 16), ("is", 16, 8)])
def test_real_scalesim_agrees_exactly(tmp_path: Path, dataflow: str, rows: int,
                                      cols: int) -> None:
    py = peer_python("scalesim", "DSE_SCALESIM_PYTHON")
    if py is None:
        pytest.skip("no SCALE-Sim interpreter: set DSE_SCALESIM_PYTHON or run "
                    "benchmarks/setup_peer_tools.sh")
    src = write_design(tmp_path, dataflow=dataflow, rows=rows, cols=cols)
    out = tmp_path / "export"
    assert main(["export", str(src), "--format", "scalesim", "--out", str(out)]) == 0
    proc = subprocess.run([py, str(out / "run_scalesim.py"), str(tmp_path / "sim")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (out / "expected_cycles.csv").open() as fh:
        expected = list(csv.DictReader(fh))
    got = []  # the runner simulates one layer at a time: OUT/<layer>/<run>/
    for exp in expected:
        with (tmp_path / "sim" / exp["layer"] / "tiny_array" / "COMPUTE_REPORT.csv").open() as fh:
            got += [[f.strip() for f in ln.split(",")] for ln in fh if ln.strip()][1:]
    assert len(got) == len(expected) >= 5
    # progress on stderr per layer, the comparison on stdout
    assert proc.stderr.count("cycles expected") == len(expected)
    assert f"{len(expected)}/{len(expected)} layers match" in proc.stderr
    for row, exp in zip(got, expected):
        assert int(float(row[3])) == 0  # CALC bandwidth: no stalls
        assert int(float(row[2])) == int(exp["compute_cycles"]), exp["layer"]


def test_top_and_layers_select_what_the_export_simulates(tmp_path: Path) -> None:
    """``--top N`` keeps the N GEMMs with the largest share of a step (cycles on one
    array × executions per step); ``--layers`` keeps the named ones; a wrong name is a
    one-line error listing the valid ones (issue 15)."""
    src = write_design(tmp_path)
    full = tmp_path / "full"
    assert main(["export", str(src), "--format", "scalesim", "--out", str(full)]) == 0
    with (full / "expected_cycles.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    share = {r["layer"]: int(r["compute_cycles"]) * int(r["instances_per_step"]) for r in rows}
    want = sorted(share, key=lambda k: -share[k])[:2]
    top = tmp_path / "top"
    assert main(["export", str(src), "--format", "scalesim", "--out", str(top), "--top", "2"]) == 0
    with (top / "expected_cycles.csv").open() as fh:
        assert sorted(r["layer"] for r in csv.DictReader(fh)) == sorted(want)
    one = tmp_path / "one"
    name = rows[-1]["layer"]
    assert main(["export", str(src), "--format", "zigzag", "--out", str(one), "--layers",
                 name]) == 0
    assert main(["export", str(src), "--format", "scalesim", "--out", str(one), "--layers",
                 "no_such_layer"]) == 2


def test_fused_attention_exports_its_tile_gemms() -> None:
    """Fused attention (the default) is one operator, but simulators run GEMMs: its
    per-head tiles are exported — QKᵀ and P·V forward, the recomputed S, dP, dV, dK and
    dQ backward — with the instances of the whole score matrix."""
    import dataclasses

    from dse.export.design import unique_gemms
    from workloads import build, model_spec

    spec = model_spec("gpt2")  # 12 layers, 12 heads of 64
    fused = {(g.m, g.k, g.n): g for g in unique_gemms([build(spec, batch=2, seq=128)])}
    unfused = {(g.m, g.k, g.n): g for g in unique_gemms(
        [build(dataclasses.replace(spec, attention="unfused"), batch=2, seq=128)])}
    heads = 2 * 12 * 12          # batch · heads · layers
    qk, pv = fused[(128, 64, 128)], fused[(128, 128, 64)]
    assert qk.name == "layer_attn_core_qk" and qk.instances_per_step == 3 * heads
    assert pv.name == "layer_attn_core_pv" and pv.instances_per_step == 4 * heads
    # the unfused graph runs six GEMMs per head and layer (its dK as (d×s)·(s×s)); the
    # fused one seven: the same work plus the backward's recomputed S = Q·Kᵀ

    def work(gs: dict) -> int:
        return sum(2 * m * k * n * g.instances_per_step for (m, k, n), g in gs.items())

    assert work(fused) - work(unfused) == heads * 2 * 128 * 64 * 128


def test_an_export_rewrites_its_own_directory_never_one_of_other_files(tmp_path: Path) -> None:
    """A second export into an export's directory rewrites it; a directory holding other
    files is refused before anything in it is touched (``--out /`` would write into the
    root)."""
    from dse.errors import ConfigError
    from dse.export import EXPORT_MARKER

    src = write_design(tmp_path)
    out = tmp_path / "ex"
    first = export_design(src, "scalesim", out)
    assert (out / EXPORT_MARKER).read_text() == "scalesim\n"
    assert export_design(src, "scalesim", out) == first
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "gemm_topology.csv").write_text("my own data\n")
    with pytest.raises(ConfigError, match="holds other files and no dse export"):
        export_design(src, "scalesim", mine)
    assert (mine / "gemm_topology.csv").read_text() == "my own data\n"
    assert sorted(p.name for p in mine.iterdir()) == ["gemm_topology.csv"]
