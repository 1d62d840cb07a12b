"""Systolic cost model vs real SCALE-Sim 3.0.0 runs, cycle-for-cycle.

The table is produced by ``benchmarks/gen_scalesim_reference.py`` (run with a venv that
has ``scalesim==3.0.0`` and ``numpy<2``); its sidecar JSON records the versions.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cost_models.systolic import (
    DATAFLOWS,
    compute_cycles,
    compute_cycles_scalar,
    sram_accesses,
    sram_accesses_scalar,
)

DATA = Path(__file__).parent / "data" / "scalesim_reference.csv"
SIDECAR = DATA.with_suffix(".json")
SRAM_COLUMNS = ("ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes")


@pytest.fixture(scope="module")
def table() -> dict[str, np.ndarray]:
    with DATA.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    assert rows, "empty reference table"
    out: dict[str, np.ndarray] = {"dataflow": np.array([r["dataflow"] for r in rows])}
    for key in rows[0]:
        if key != "dataflow":
            out[key] = np.array([int(r[key]) for r in rows], dtype=np.int64)
    return out


Dims = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _dims(t: dict[str, np.ndarray], mask: np.ndarray | slice = slice(None)) -> Dims:
    return (t["m"][mask], t["k"][mask], t["n"][mask], t["rows"][mask], t["cols"][mask])


def test_table_provenance(table: dict[str, np.ndarray]) -> None:
    meta = json.loads(SIDECAR.read_text())
    assert meta["scalesim_version"] == "3.0.0"
    assert meta["n_cases"] == len(table["m"])
    header = DATA.read_text().splitlines()[0]
    assert "scalesim==3.0.0" in header
    # the grid covers what the model must get right
    assert set(table["dataflow"]) == set(DATAFLOWS)
    assert len(table["m"]) >= 300
    assert np.any(table["k"] < table["rows"])
    assert np.any(table["m"] % table["rows"] != 0)
    assert np.any(table["rows"] != table["cols"])


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_compute_cycles_exact(table: dict[str, np.ndarray], dataflow: str) -> None:
    mask = table["dataflow"] == dataflow
    got = compute_cycles(*_dims(table, mask), dataflow)
    want = table["compute_cycles"][mask]
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [
        (tuple(int(d[i]) for d in _dims(table, mask)), int(got[i]), int(want[i])) for i in bad[:5]
    ]


def test_compute_cycles_exact_mixed_dataflow_array(table: dict[str, np.ndarray]) -> None:
    got = compute_cycles(*_dims(table), table["dataflow"])
    np.testing.assert_array_equal(got, table["compute_cycles"])


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("column", SRAM_COLUMNS)
def test_sram_accesses_exact(table: dict[str, np.ndarray], dataflow: str, column: str) -> None:
    mask = table["dataflow"] == dataflow
    got = sram_accesses(*_dims(table, mask), dataflow)[column]
    np.testing.assert_array_equal(got, table[column][mask])


def test_scalar_references_match_table(table: dict[str, np.ndarray]) -> None:
    m, k, n, rows, cols = (d.tolist() for d in _dims(table))
    for i, dataflow in enumerate(table["dataflow"].tolist()):
        args = (m[i], k[i], n[i], rows[i], cols[i], dataflow)
        assert compute_cycles_scalar(*args) == table["compute_cycles"][i], args
        counts = sram_accesses_scalar(*args)
        assert all(counts[c] == table[c][i] for c in SRAM_COLUMNS), args
