"""ZigZag 3.9 export (dse/export/zigzag.py), run in the real zigzag-dse 3.9.1.

Environment used:
* ``DSE_ZIGZAG_PYTHON``: a Python with ``zigzag-dse==3.9.1`` and ``six``; default
  ``${DSE_PEER_VENVS:-$HOME/.cache/dse-peer-venvs}/zigzag/bin/python`` (``benchmarks/setup_peer_tools.sh`` creates it).
  Without one, the real-ZigZag tests are skipped with the reason.
Same tiny GPT-2 workload as the SCALE-Sim test (7 unique GEMMs); ZigZag's temporal
mapping search is limited with ``--lpf-limit 4`` to keep the run near 10 s.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from cost_models.technology import load_technology
from dse.export import export_design, load_design, unique_gemms, workload_graphs
from dse.export.zigzag import energy_costs, hardware
from tests.dse.test_export_scalesim import peer_python, write_design


def test_files_have_the_zigzag_structure(tmp_path: Path) -> None:
    src = write_design(tmp_path, dataflow="os")
    paths = export_design(src, "zigzag", tmp_path / "zz")
    assert [p.name for p in paths] == ["hardware.yaml", "mapping.yaml", "workload.yaml",
                                       "gemms.csv", "run_zigzag.py"]
    hw = yaml.safe_load(paths[0].read_text())
    assert hw["operational_array"]["sizes"] == [8, 8]
    assert hw["operational_array"]["dimensions"] == ["D1", "D2"]
    mems = hw["memories"]
    assert list(mems) == ["rf_output", "core_sram", "global_buffer", "hbm"]  # OS: psum reg
    assert mems["core_sram"]["size"] == 65536 * 8 and mems["hbm"]["size"] == 2**30 * 8
    for m in mems.values():
        for port in m["ports"]:
            for alloc in port["allocation"]:
                op, direction = alloc.split(", ")
                assert op in ("I1", "I2", "O") and direction in ("fh", "tl", "fl", "th")
    # energies are the technology's, per port-width access
    tech = load_technology(7.0)
    e = energy_costs(load_design(src))
    assert e.mac_pj == pytest.approx(tech.mac_energy_j["bf16"] * 1e12)
    assert mems["hbm"]["r_cost"] == pytest.approx(
        tech.hbm_energy_j_per_byte * 1e12 * mems["hbm"]["ports"][0]["bandwidth_min"] / 8,
        rel=1e-5)
    mapping = yaml.safe_load(paths[1].read_text())
    assert mapping[0]["spatial_mapping"] == {"D1": ["B, 8"], "D2": ["K, 8"]}
    work = yaml.safe_load(paths[2].read_text())
    gemms = unique_gemms(workload_graphs(load_design(src)))
    assert [(w["loop_sizes"]) for w in work] == [[g.m, g.n, g.k] for g in gemms]
    assert all(w["loop_dims"] == ["B", "K", "C"] for w in work)


@pytest.mark.parametrize("dataflow,stationary", [("ws", "rf_weight"), ("is", "rf_input")])
def test_stationary_register_per_dataflow(tmp_path: Path, dataflow: str, stationary: str) -> None:
    design = load_design(write_design(tmp_path, dataflow=dataflow))
    mems = hardware(design, energy_costs(design))["memories"]
    assert list(mems)[:2] == [stationary, "rf_psum"]
    assert mems[stationary]["served_dimensions"] == []


@pytest.mark.slow
def test_real_zigzag_runs_the_export(tmp_path: Path) -> None:
    py = peer_python("zigzag", "DSE_ZIGZAG_PYTHON")
    if py is None:
        pytest.skip("no ZigZag interpreter: set DSE_ZIGZAG_PYTHON or run "
                    "benchmarks/setup_peer_tools.sh")
    src = write_design(tmp_path, dataflow="ws")
    out = tmp_path / "zz"
    export_design(src, "zigzag", out)
    proc = subprocess.run([py, str(out / "run_zigzag.py"), "--lpf-limit", "4", "--out",
                           str(tmp_path / "zz_out")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    gemms = unique_gemms(workload_graphs(load_design(src)))
    assert len(result["layers"]) == len(gemms)
    assert result["latency_cycles"] > 0 and result["energy_pj"] > 0
    assert result["latency_cycles"] == pytest.approx(
        sum(layer["latency_cycles"] for layer in result["layers"]))
    # an 8x8 array needs at least m·k·n/64 cycles for each GEMM
    by_name = {g.name: g for g in gemms}
    for layer in result["layers"]:
        g = by_name[layer["layer"]]
        assert layer["computation_cycles"] >= g.m * g.k * g.n / 64
