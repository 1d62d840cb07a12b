"""Generate the SCALE-Sim reference table for the systolic GEMM cost model.

Run it with the Python of a separate virtual environment that has the real
SCALE-Sim installed (it needs ``numpy<2``, see ``docs/sources.md`` P1)::

    DSE_PEER_ALL=1 bash benchmarks/setup_peer_tools.sh     # venvs in $DSE_PEER_VENVS
    ${DSE_PEER_VENVS:-~/.cache/dse-peer-venvs}/scalesim/bin/python benchmarks/gen_scalesim_reference.py

It runs SCALE-Sim once per case on a grid of small GEMMs (all three dataflows,
remainder folds, ``k < rows``, square and non-square arrays) and writes

* ``tests/validation/data/scalesim_reference.csv``: one row per case with columns
  ``m,k,n,rows,cols,dataflow,compute_cycles,ifmap_sram_reads,filter_sram_reads,
  ofmap_sram_writes``, preceded by ``#`` comment lines naming the SCALE-Sim version
  and settings;
* ``tests/validation/data/scalesim_reference.json``: a sidecar with the versions,
  the SCALE-Sim settings, the wall time of every case and of a few larger
  "timing" GEMMs (read by ``benchmarks/bench_systolic.py``).

The script imports only the standard library and ``scalesim``: it does not import
the ``dse`` packages, whose environment has numpy 2.

Dimension convention
--------------------
Our GEMM is ``C[m, n] = A[m, k] @ B[k, n]`` (an M×K matrix times a K×N matrix).
SCALE-Sim's GEMM topology rows are ``Layer, M, N, K,`` (note the order and the
mandatory trailing comma; ``topology_utils.py::load_arrays_gemm`` drops the last
field).  SCALE-Sim turns such a row into a convolution with ifmap ``M×K``,
a ``1×K`` filter with one channel and ``N`` filters (``entries = [name, m, k, 1,
k, 1, n, 1, 1, ...]``), so its ifmap operand matrix is ``M×K``, its filter
operand matrix ``K×N`` and its ofmap ``M×N``.  Hence SCALE-Sim's ``M, N, K`` are
exactly our ``m, n, k``: we write the CSV row as ``L, m, n, k,``.  "ifmap" is
our left operand A, "filter" our right operand B, "ofmap" our output C.

What is recorded
----------------
* ``compute_cycles``: the third column ("Total Cycles") of ``COMPUTE_REPORT.csv``.
  With ``InterfaceBandwidth: CALC`` there are no stalls (the script checks that
  "Stall Cycles" is 0), so this is SCALE-Sim's compute cycle count.  The
  second column ("incl. prefetch") adds the DRAM prefetch before the first fold
  and is not recorded.
* ``ifmap_sram_reads``, ``filter_sram_reads``, ``ofmap_sram_writes``: the
  "SRAM IFMAP Reads", "SRAM Filter Reads" and "SRAM OFMAP Writes" columns of
  ``DETAILED_ACCESS_REPORT.csv``, in words.  They come from deterministic
  counters in ``compute/systolic_compute_{os,ws,is}.py`` and do not depend on the
  SRAM sizes.

SRAMs are 64 KiB each (default of the repo's ``scale.cfg``); the GEMMs are small
enough that SRAM capacity plays no role in the compute cycles.

Runtime: well under a minute on 2 cores for the default grid (SCALE-Sim's cost
grows with cycles × array width; see docs/sources.md P1 "Speed").
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / "tests" / "validation" / "data" / "scalesim_reference.csv"

DATAFLOWS = ("os", "ws", "is")

# (rows, cols): the arrays of the brief plus a tall, an odd-sized and a 1-row one.
ARRAYS: tuple[tuple[int, int], ...] = (
    (4, 4),
    (8, 8),
    (16, 8),
    (8, 16),
    (32, 32),
    (4, 16),
    (16, 4),
    (3, 5),
    (1, 8),
)

# Larger GEMMs timed one by one for the speed comparison (m, k, n, rows, cols, dataflow).
TIMING_GEMMS: tuple[tuple[int, int, int, int, int, str], ...] = (
    (64, 64, 64, 8, 8, "ws"),
    (128, 128, 128, 32, 32, "os"),
    (128, 128, 128, 32, 32, "ws"),
    (128, 128, 128, 32, 32, "is"),
    (256, 256, 256, 32, 32, "ws"),
)

SRAM_KB = 64

# v3 parser has no fallbacks: every key must be present (docs/sources.md P1).  No inline
# comments: configparser would keep them as part of the value.
CONFIG_TEMPLATE = """[general]
run_name = ref
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {sram_kb}
FilterSramSzkB: {sram_kb}
OfmapSramSzkB: {sram_kb}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

# The layout CSV is mandatory even with IfmapCustomLayout False (layout_utils.py opens
# it unconditionally); its values are unused then.  Layer name + 20 columns.
LAYOUT_HEADER = "Layer," + ",".join(f"c{i}" for i in range(20)) + ",\n"
LAYOUT_ROW = "L0,1,1,1,1,1,1,0,1,2,0,1,2,0,1,2,3,0,1,2,3,\n"

CSV_COLUMNS = (
    "m",
    "k",
    "n",
    "rows",
    "cols",
    "dataflow",
    "compute_cycles",
    "ifmap_sram_reads",
    "filter_sram_reads",
    "ofmap_sram_writes",
)


def gemm_grid(seed: int = 2404) -> list[tuple[int, int, int, int, int]]:
    """Return the (m, k, n, rows, cols) grid; each entry is run for all dataflows.

    Per array: structured cases around the fold boundaries (1, r-1, r, r+1, 2r+1,
    ... for both array dimensions, so remainders and ``k < rows`` both occur),
    then seeded random shapes up to four (a few: eight) times the larger array
    dimension.
    """
    rng = random.Random(seed)
    cases: list[tuple[int, int, int, int, int]] = []
    for rows, cols in ARRAYS:
        big = max(rows, cols)
        special = sorted(
            {
                v
                for v in (
                    1,
                    2,
                    rows - 1,
                    rows,
                    rows + 1,
                    cols - 1,
                    cols,
                    cols + 1,
                    2 * rows + 1,
                    2 * cols + 3,
                    3 * big - 1,
                )
                if v >= 1
            }
        )
        chosen: set[tuple[int, int, int]] = set()
        # Fixed corner cases: all-ones, exact fit, k < rows with remainders elsewhere.
        chosen.add((1, 1, 1))
        chosen.add((rows, rows, cols))
        chosen.add((2 * rows + 1, max(1, rows // 2), 2 * cols + 1))
        while len(chosen) < 12:
            chosen.add((rng.choice(special), rng.choice(special), rng.choice(special)))
        while len(chosen) < 28:
            chosen.add((rng.randint(1, 4 * big), rng.randint(1, 4 * big), rng.randint(1, 4 * big)))
        while len(chosen) < 32:  # a few with many folds
            chosen.add((rng.randint(1, 8 * big), rng.randint(1, 8 * big), rng.randint(1, 8 * big)))
        for m, k, n in sorted(chosen):
            cases.append((m, k, n, rows, cols))
    return cases


def _write_inputs(
    workdir: Path, m: int, k: int, n: int, rows: int, cols: int, dataflow: str
) -> tuple[Path, Path, Path]:
    cfg = workdir / "arch.cfg"
    topo = workdir / "gemm.csv"
    layout = workdir / "layout.csv"
    cfg.write_text(CONFIG_TEMPLATE.format(rows=rows, cols=cols, dataflow=dataflow, sram_kb=SRAM_KB))
    # SCALE-Sim GEMM order is M, N, K with a trailing comma (topology_utils.py).
    topo.write_text(f"Layer, M, N, K,\nL0, {m}, {n}, {k},\n")
    layout.write_text(LAYOUT_HEADER + LAYOUT_ROW)
    return cfg, topo, layout


def _read_report(path: Path) -> list[str]:
    with path.open() as fh:
        lines = [ln.strip() for ln in fh if ln.strip()]
    # header + one layer; every row ends with a trailing comma
    return [field.strip() for field in lines[1].split(",")[:-1]]


def run_one(case: tuple[int, int, int, int, int, str]) -> dict[str, Any]:
    """Run real SCALE-Sim on one GEMM and return its counts and wall time."""
    import contextlib
    import io

    from scalesim.scale_sim import scalesim  # imported here: only the venv has it

    m, k, n, rows, cols, dataflow = case
    with tempfile.TemporaryDirectory(prefix="scalesim_ref_") as tmp:
        workdir = Path(tmp)
        cfg, topo, layout = _write_inputs(workdir, m, k, n, rows, cols, dataflow)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(
                save_disk_space=True,
                verbose=False,
                config=str(cfg),
                topology=str(topo),
                layout=str(layout),
                input_type_gemm=True,
            )
            sim.run_scale(top_path=str(workdir / "out"))
        wall_s = time.perf_counter() - t0
        report_dir = workdir / "out" / "ref"
        comp = _read_report(report_dir / "COMPUTE_REPORT.csv")
        detail = _read_report(report_dir / "DETAILED_ACCESS_REPORT.csv")
    # COMPUTE_REPORT: LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, ...
    stall = int(float(comp[3]))
    if stall != 0:
        raise RuntimeError(f"unexpected stalls ({stall}) for {case}: CALC mode should have none")
    # DETAILED_ACCESS_REPORT: LayerID, ifmap start, stop, reads, filter start, stop, reads,
    # ofmap start, stop, writes, ... (simulator.py::generate_reports)
    return {
        "m": m,
        "k": k,
        "n": n,
        "rows": rows,
        "cols": cols,
        "dataflow": dataflow,
        "compute_cycles": int(float(comp[2])),
        "ifmap_sram_reads": int(float(detail[3])),
        "filter_sram_reads": int(float(detail[6])),
        "ofmap_sram_writes": int(float(detail[9])),
        # DRAM counts depend on the SRAM sizes; kept in the sidecar timings only.
        "ifmap_dram_reads": int(float(detail[12])),
        "filter_dram_reads": int(float(detail[15])),
        "ofmap_dram_writes": int(float(detail[18])),
        "wall_s": wall_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CSV, help="CSV to write")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=2404)
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="only time the TIMING_GEMMS and print them as JSON on stdout",
    )
    args = parser.parse_args(argv)

    version = importlib.metadata.version("scalesim")
    numpy_version = importlib.metadata.version("numpy")

    if args.timing_only:
        timings = [run_one(c) for c in TIMING_GEMMS]
        json.dump({"scalesim_version": version, "timings": timings}, sys.stdout, indent=1)
        print()
        return 0

    cases = [(*g, df) for g in gemm_grid(args.seed) for df in DATAFLOWS]
    print(
        f"running SCALE-Sim {version} on {len(cases)} cases with {args.jobs} jobs", file=sys.stderr
    )
    t0 = time.perf_counter()
    pool = multiprocessing.get_context("spawn").Pool(args.jobs)
    try:
        rows = pool.map(run_one, cases, chunksize=4)
    finally:
        pool.close()
        pool.join()
    grid_wall_s = time.perf_counter() - t0
    print(
        f"grid done in {grid_wall_s:.1f} s; timing {len(TIMING_GEMMS)} larger GEMMs",
        file=sys.stderr,
    )
    timings = [run_one(c) for c in TIMING_GEMMS]  # serial, for clean timings

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        fh.write(
            f"# SCALE-Sim reference: scalesim=={version} (numpy {numpy_version}), "
            f"generated by benchmarks/gen_scalesim_reference.py --seed {args.seed}\n"
        )
        fh.write(
            "# GEMM C[m,n] = A[m,k] @ B[k,n]; SCALE-Sim GEMM row 'L, M, N, K,' = "
            "'L, m, n, k,'; ifmap=A, filter=B, ofmap=C\n"
        )
        fh.write(
            f"# compute_cycles = COMPUTE_REPORT 'Total Cycles' (CALC bandwidth, 0 stalls); "
            f"SRAM counts in words from DETAILED_ACCESS_REPORT; SRAMs {SRAM_KB} KiB each\n"
        )
        writer = csv.DictWriter(
            fh, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)

    sidecar = {
        "scalesim_version": version,
        "numpy_version": numpy_version,
        "python_version": platform.python_version(),
        "generator": "benchmarks/gen_scalesim_reference.py",
        "seed": args.seed,
        "settings": {
            "sram_kb_each": SRAM_KB,
            "interface_bandwidth": "CALC",
            "word_bytes": 1,
            "save_disk_space": True,
        },
        "n_cases": len(rows),
        "arrays": [list(a) for a in ARRAYS],
        "grid_wall_s": grid_wall_s,
        "grid_jobs": args.jobs,
        "mean_case_wall_s": sum(r["wall_s"] for r in rows) / len(rows),
        "timings": timings,
    }
    sidecar_path = args.out.with_suffix(".json")
    sidecar_path.write_text(json.dumps(sidecar, indent=1) + "\n")
    print(f"wrote {args.out} ({len(rows)} cases) and {sidecar_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
