"""Export to SCALE-Sim v3 (``scalesim`` 3.0.0): config, GEMM topology, layout, expected cycles.

Files written (``<run>`` is the hardware name made safe):

* ``<run>.cfg``: every section and key the 3.0.0 parser reads (it has no fallbacks:
  ``[general]``, ``[architecture_presets]`` with the request buffers, ``[layout]``,
  ``[sparsity]``, ``[run_presets]`` with ``UseRamulatorTrace``), no inline comments
  (configparser would keep them in the value). One tensor core of the design:
  ``ArrayHeight = array_rows``, ``ArrayWidth = array_cols``, ``Dataflow``.
* ``gemm_topology.csv``: one row per unique GEMM shape of the workload's training step
  (forward, backward-data and backward-weight), ``Layer, M, N, K,`` with the trailing
  comma SCALE-Sim needs (its parser drops the last field).
* ``layout.csv``: the layout file 3.0.0 opens even when custom layouts are off: its
  header and one row per layer (factors 1, identity orders; unused with
  ``IfmapCustomLayout: False``).
* ``expected_cycles.csv``: our :func:`cost_models.systolic.compute_cycles` per GEMM on one
  array (what SCALE-Sim reports as "Total Cycles" in ``COMPUTE_REPORT.csv``), plus the
  instances per training step and the cycles when the design's ``tensor_cores`` arrays
  split the GEMM (:func:`cost_models.systolic.gemm_cycles_multi_core`, not modelled by
  SCALE-Sim).
* ``run_scalesim.py``: runs the export through SCALE-Sim's Python API with
  ``save_disk_space=True`` (the ``scale.py`` CLI ignores ``-s`` and writes per-cycle
  traces) and prints SCALE-Sim's cycles next to ours.

Mapping conventions
-------------------
Our GEMM is ``C[m, n] = A[m, k] @ B[k, n]``. SCALE-Sim turns a GEMM row ``M, N, K`` into
an ifmap of ``M × K``, a filter of ``K × N`` and an ofmap of ``M × N``
(``topology_utils.py``), so its ``M, N, K`` are exactly our ``m, n, k``: the row is
``name, m, n, k,`` (see ``cost_models/systolic.py``).

SCALE-Sim counts 1-byte words. So that the same number of *elements* fits on chip, the
three operand SRAMs split the per-core SRAM into equal thirds (as
``cost_models.systolic.dram_traffic_bytes`` does) expressed in elements:
``SramSzkB = floor(sram_per_core_bytes / 3 / dtype_bytes / 1024)`` (at least 1).
``InterfaceBandwidth: CALC`` (no DRAM stalls: SCALE-Sim's compute cycles, the quantity
``compute_cycles`` models); ``Bandwidth`` holds the core's share of HBM bandwidth in
elements per cycle, used if the user switches to ``USER``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from dse.errors import ExportError
from dse.export.design import Design, Gemm, require_gemms, safe_name, workload_graphs

__all__ = [
    "LAYOUT_COLUMNS",
    "config_text",
    "expected_cycles_rows",
    "export",
    "layout_text",
    "sram_kb",
    "topology_text",
]

#: The layout CSV header SCALE-Sim 3.0.0 writes itself (``layout_utils.write_layout_file``).
LAYOUT_COLUMNS: tuple[str, ...] = (
    "IFMAP Height Intraline Factor", "IFMAP Width Intraline Factor",
    "Filter Height Intraline Factor", "Filter Width Intraline Factor",
    "Channel Intraline Factor", "Num Filter Intraline Factor",
    "IFMAP Height Intraline Order", "IFMAP Width Intraline Order", "Channel Intraline Order",
    "IFMAP Height Interline Order", "IFMAP Width Interline Order", "Channel Interline Order",
    "Num Filter Intraline Order", "Channel Intraline Order", "Filter Height Intraline Order",
    "Filter Width Intraline Order", "Num Filter Interline Order", "Channel Interline Order",
    "Filter Height Interline Order", "Filter Width Interline Order",
)
# Six factors of 1, then identity orders: ifmap intra (3), ifmap inter (3), filter intra
# (4), filter inter (4).
_LAYOUT_VALUES = (1, 1, 1, 1, 1, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3)


def sram_kb(design: Design) -> int:
    """Size of each of SCALE-Sim's three operand SRAMs, in its kB of 1-byte words."""
    hw = design.hardware
    return max(1, int(hw.sram_per_core_bytes // (3 * hw.dtype_bytes * 1024)))


def _bandwidth_words_per_cycle(design: Design) -> int:
    hw = design.hardware
    per_core = hw.hbm_bw_bytes_per_s / hw.freq_hz / hw.dtype_bytes / hw.tensor_cores
    return max(1, int(math.floor(per_core)))


def config_text(design: Design, run_name: str) -> str:
    """The SCALE-Sim 3.0.0 ``.cfg`` of one tensor core of the design."""
    hw = design.hardware
    kb = sram_kb(design)
    return "\n".join([
        "[general]",
        f"run_name = {run_name}",
        "",
        "[architecture_presets]",
        f"ArrayHeight: {hw.array_rows}",
        f"ArrayWidth: {hw.array_cols}",
        f"IfmapSramSzkB: {kb}",
        f"FilterSramSzkB: {kb}",
        f"OfmapSramSzkB: {kb}",
        "IfmapOffset: 0",
        "FilterOffset: 10000000",
        "OfmapOffset: 20000000",
        f"Bandwidth: {_bandwidth_words_per_cycle(design)}",
        f"Dataflow: {hw.dataflow}",
        "MemoryBanks: 1",
        "ReadRequestBuffer: 32",
        "WriteRequestBuffer: 32",
        "",
        "[layout]",
        "IfmapCustomLayout: False",
        "IfmapSRAMBankBandwidth: 10",
        "IfmapSRAMBankNum: 10",
        "IfmapSRAMBankPort: 2",
        "FilterCustomLayout: False",
        "FilterSRAMBankBandwidth: 10",
        "FilterSRAMBankNum: 10",
        "FilterSRAMBankPort: 2",
        "",
        "[sparsity]",
        "SparsitySupport: false",
        "SparseRep: ellpack_block",
        "OptimizedMapping: false",
        "BlockSize: 8",
        "RandomNumberGeneratorSeed: 40",
        "",
        "[run_presets]",
        "InterfaceBandwidth: CALC",
        "UseRamulatorTrace: False",
        "",
    ])


def topology_text(gemms: list[Gemm]) -> str:
    """GEMM topology CSV: ``Layer, M, N, K,`` rows with SCALE-Sim's trailing comma.

    >>> print(topology_text([Gemm(name="fc", m=4, k=8, n=2, instances_per_step=1,
    ...                           phases=("fwd",), ops=("fc",))]), end="")
    Layer, M, N, K,
    fc, 4, 2, 8,
    """
    lines = ["Layer, M, N, K,"]
    lines += [f"{g.name}, {g.m}, {g.n}, {g.k}," for g in gemms]
    return "\n".join(lines) + "\n"


def layout_text(gemms: list[Gemm]) -> str:
    """Layout CSV with SCALE-Sim's own header and one default row per layer."""
    lines = ["Layer name," + ",".join(LAYOUT_COLUMNS) + ","]
    values = ",".join(str(v) for v in _LAYOUT_VALUES)
    lines += [f"{g.name},{values}," for g in gemms]
    return "\n".join(lines) + "\n"


def expected_cycles_rows(design: Design, gemms: list[Gemm]) -> list[dict[str, object]]:
    """Our model's cycles per GEMM (one array, and split over the design's cores)."""
    try:
        from cost_models.systolic import compute_cycles, gemm_cycles_multi_core
    except ImportError as e:  # pragma: no cover - the package ships with dse
        raise ExportError(f"cannot import cost_models.systolic ({e})") from None
    hw = design.hardware
    rows = []
    for g in gemms:
        one = int(compute_cycles(g.m, g.k, g.n, hw.array_rows, hw.array_cols, hw.dataflow))
        multi = int(gemm_cycles_multi_core(g.m, g.k, g.n, hw.array_rows, hw.array_cols,
                                           hw.dataflow, hw.tensor_cores))
        rows.append({
            "layer": g.name, "m": g.m, "k": g.k, "n": g.n,
            "scalesim_M": g.m, "scalesim_N": g.n, "scalesim_K": g.k,
            "rows": hw.array_rows, "cols": hw.array_cols, "dataflow": hw.dataflow,
            "compute_cycles": one,
            "tensor_cores": hw.tensor_cores, "multi_core_cycles": multi,
            "instances_per_step": g.instances_per_step,
            "phases": ";".join(g.phases), "ops": ";".join(g.ops),
        })
    return rows


_RUNNER = '''"""Run SCALE-Sim 3.0.0 on this export and compare with dse's expected cycles.

Usage: python run_scalesim.py [OUT_DIR]   (a Python with scalesim==3.0.0 and numpy<2)
Simulates one layer at a time (progress and each comparison as it finishes) and writes
SCALE-Sim's reports under OUT_DIR/<layer>/{run_name}/ (default: ./scalesim_out).
Exit 0 when every layer's cycles match dse's ``compute_cycles``.
"""
import contextlib
import csv
import io
import sys
import time
from pathlib import Path

from scalesim.scale_sim import scalesim

HERE = Path(__file__).resolve().parent
out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "scalesim_out"
with open(HERE / "expected_cycles.csv") as fh:
    expected = list(csv.DictReader(fh))
topo = (HERE / "gemm_topology.csv").read_text().splitlines()
lay = (HERE / "layout.csv").read_text().splitlines()
bad = 0
t_all = time.perf_counter()
print("layer,scalesim_cycles,dse_cycles,match,seconds", flush=True)
for i, exp in enumerate(expected):
    d = out / exp["layer"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "topology.csv").write_text(topo[0] + "\\n" + topo[i + 1] + "\\n")
    (d / "layout.csv").write_text(lay[0] + "\\n" + lay[i + 1] + "\\n")
    print(f"[{{i + 1}}/{{len(expected)}}] {{exp['layer']}}: {{exp['compute_cycles']}} cycles expected",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        sim = scalesim(save_disk_space=True, verbose=False, config=str(HERE / "{cfg}"),
                       topology=str(d / "topology.csv"), layout=str(d / "layout.csv"),
                       input_type_gemm=True)
        sim.run_scale(top_path=str(d))
    with open(d / "{run_name}" / "COMPUTE_REPORT.csv") as fh:
        row = [[f.strip() for f in line.split(",")] for line in fh if line.strip()][1]
    got = int(float(row[2]))
    ok = got == int(exp["compute_cycles"])
    bad += not ok
    print(f"{{exp['layer']}},{{got}},{{exp['compute_cycles']}},{{ok}},"
          f"{{time.perf_counter() - t0:.1f}}", flush=True)
print(f"{{len(expected) - bad}}/{{len(expected)}} layers match, "
      f"{{time.perf_counter() - t_all:.1f}} s", file=sys.stderr)
sys.exit(1 if bad else 0)
'''


def export(design: Design, out_dir: Path, *, top: int | None = None,
           layers: tuple[str, ...] | None = None) -> list[Path]:
    """Write the SCALE-Sim files for ``design`` into ``out_dir``; return their paths."""
    gemms = require_gemms(design, workload_graphs(design), top=top, layers=layers)
    return write_files(design, gemms, out_dir)


def write_files(design: Design, gemms: list[Gemm], out_dir: Path) -> list[Path]:
    """Write the SCALE-Sim files for given GEMMs (used by :func:`export` and tests)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_name = safe_name(design.hardware.name)
    cfg = out_dir / f"{run_name}.cfg"
    cfg.write_text(config_text(design, run_name))
    topo = out_dir / "gemm_topology.csv"
    topo.write_text(topology_text(gemms))
    layout = out_dir / "layout.csv"
    layout.write_text(layout_text(gemms))
    expected = out_dir / "expected_cycles.csv"
    rows = expected_cycles_rows(design, gemms)
    with expected.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    runner = out_dir / "run_scalesim.py"
    runner.write_text(_RUNNER.format(cfg=cfg.name, run_name=run_name))
    return [cfg, topo, layout, expected, runner]
