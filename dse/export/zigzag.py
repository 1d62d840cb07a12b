"""Export to ZigZag 3.9 (``zigzag-dse`` 3.9.1): hardware, mapping and workload YAML.

ZigZag models one core, so the export is one tensor core of the design with its share
of the chip's memories:

* ``hardware.yaml`` (cerberus schema of ``zigzag/parser/accelerator_validator.py``):
  ``operational_array`` with ``dimensions [D1, D2]``, ``sizes [array_rows, array_cols]``
  and both dimensions systolic; memories, from the PEs up:

  - ``rf_<operand>``: the stationary operand's register in every PE (one element;
    ``served_dimensions: []``), plus ``rf_psum`` (one partial sum, twice the datatype
    width) for WS and IS, where outputs move through the array;
  - ``core_sram``: the tensor core's SRAM (I1, I2, O), served to the whole array
    (``[D1, D2]``), ports ``(array_rows + array_cols)`` elements wide (one element per
    array edge and cycle);
  - ``global_buffer`` (when the design has one): I1, I2, O, ports
    ``global_buffer_bw_bytes_per_cycle`` wide;
  - ``hbm``: capacity ``hbm_bytes``, one read-write port of the core's share of the HBM
    bandwidth per cycle (``hbm_bw_bytes_per_s / freq_hz / tensor_cores``).

  Sizes and bandwidths are in bits and bits/cycle as ZigZag expects. Access energies
  (``r_cost``/``w_cost``, pJ per access of one port width) and the MAC energy
  (``unit_energy``, pJ) come from the design's technology
  (:func:`cost_models.technology.load_technology` at ``tech_node_nm``): energy per byte
  of each level times the port width in bytes. ``area`` is the SRAM area from the same
  table where it has one, 0 otherwise (ZigZag does not use area for digital arrays).
* ``mapping.yaml``: the ``default`` operator (and ``Gemm``) with the dataflow as the
  spatial mapping, SCALE-Sim's (rows, cols) assignment:
  ws → ``D1: C`` (k), ``D2: K`` (n); os → ``D1: B`` (m), ``D2: K`` (n);
  is → ``D1: C`` (k), ``D2: B`` (m); ``memory_operand_links O: O, W: I2, I: I1``.
* ``workload.yaml``: one ``Gemm`` layer per unique GEMM shape,
  ``O[b][k]+=W[k][c]*I[b][c]`` with ``loop_dims [B, K, C]`` = our ``(m, n, k)``: ZigZag's
  ``I`` is our A (m×k), ``W`` our B (k×n, indexed [n][k]), ``O`` our C (m×n). Layers are
  independent (each its own operand source), precisions from the datatype (partial sums
  twice as wide).

Entry point: ``zigzag.api.get_hardware_performance_zigzag(workload="workload.yaml",
accelerator="hardware.yaml", mapping="mapping.yaml", opt="latency")``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dse.errors import ExportError
from dse.export.design import Design, Gemm, require_gemms, workload_graphs

__all__ = [
    "EnergyCosts",
    "energy_costs",
    "export",
    "hardware",
    "mapping",
    "workload",
    "write_files",
]

_SPATIAL = {  # dataflow -> (D1 = rows, D2 = cols) in ZigZag's GEMM loop names
    "ws": ("C", "K"),
    "os": ("B", "K"),
    "is": ("C", "B"),
}
_STATIONARY = {"ws": "I2", "os": "O", "is": "I1"}


@dataclass(frozen=True, kw_only=True)
class EnergyCosts:
    """Energies for the ZigZag export, in pJ (ZigZag's convention), with their source."""

    mac_pj: float
    register_pj_per_byte: float
    core_sram_pj_per_byte: float
    global_buffer_pj_per_byte: float
    hbm_pj_per_byte: float
    sram_mm2_per_byte: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("mac_pj", "register_pj_per_byte", "core_sram_pj_per_byte",
                     "global_buffer_pj_per_byte", "hbm_pj_per_byte", "sram_mm2_per_byte"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ExportError(f"EnergyCosts.{name}={v!r} must be a finite number >= 0")


def energy_costs(design: Design) -> EnergyCosts:
    """The design's energy constants from ``cost_models.technology`` at its node.

    MAC: ``mac_energy_j[dtype]``; registers: the smallest SRAM point of the table (the
    accumulator size, ``accumulator_bytes``); core SRAM and global buffer:
    ``sram_energy_j_per_byte(capacity)``; HBM: ``hbm_energy_j_per_byte``; SRAM area:
    ``sram_area_mm2_per_byte``.
    """
    try:
        from cost_models.technology import load_technology
    except ImportError as e:  # pragma: no cover - the package ships with dse
        raise ExportError(f"zigzag export needs cost_models.technology for energies ({e})"
                          ) from None
    hw = design.hardware
    tech = load_technology(hw.tech_node_nm)
    pj = 1e12
    return EnergyCosts(
        mac_pj=float(tech.mac_energy_j[hw.dtype]) * pj,
        register_pj_per_byte=float(tech.sram_energy_j_per_byte(tech.accumulator_bytes)) * pj,
        core_sram_pj_per_byte=float(tech.sram_energy_j_per_byte(hw.sram_per_core_bytes)) * pj,
        global_buffer_pj_per_byte=float(
            tech.sram_energy_j_per_byte(max(hw.global_buffer_bytes, 1.0))) * pj,
        hbm_pj_per_byte=float(tech.hbm_energy_j_per_byte) * pj,
        sram_mm2_per_byte=float(tech.sram_area_mm2_per_byte),
        source=f"cost_models.technology at {hw.tech_node_nm:g} nm",
    )


def _port(name: str, kind: str, bw_bits: int, allocation: list[str]) -> dict[str, Any]:
    return {"name": name, "type": kind, "bandwidth_min": int(bw_bits),
            "bandwidth_max": int(bw_bits), "allocation": allocation}


def _rw_ports(operands: list[str], bw_bits: int) -> list[dict[str, Any]]:
    """A read port and a write port carrying every operand in both directions."""
    reads, writes = [], []
    for op in operands:
        if op == "O":
            reads += ["O, tl", "O, th"]
            writes += ["O, fh", "O, fl"]
        else:
            reads.append(f"{op}, tl")
            writes.append(f"{op}, fh")
    return [_port("r_port_1", "read", bw_bits, reads), _port("w_port_1", "write", bw_bits, writes)]


def _memory(size_bits: int, bw_bits: int, pj_per_byte: float, operands: list[str],
            served: list[str], area: float, ports: list[dict[str, Any]]) -> dict[str, Any]:
    cost = round(pj_per_byte * bw_bits / 8.0, 6)
    return {"size": int(size_bits), "r_cost": float(cost), "w_cost": float(cost),
            "area": float(area), "latency": 1, "operands": operands, "ports": ports,
            "served_dimensions": served}


def hardware(design: Design, energy: EnergyCosts) -> dict[str, Any]:
    """The ZigZag accelerator mapping (one tensor core) of the design."""
    hw = design.hardware
    bits = hw.dtype_bytes * 8
    psum_bits = 2 * bits
    memories: dict[str, Any] = {}
    stat = _STATIONARY[hw.dataflow]
    reg_name = {"I1": "rf_input", "I2": "rf_weight", "O": "rf_output"}[stat]
    reg_bits = psum_bits if stat == "O" else bits
    memories[reg_name] = _memory(reg_bits, reg_bits, energy.register_pj_per_byte, [stat], [],
                                 0.0, _rw_ports([stat], reg_bits))
    if stat != "O":
        memories["rf_psum"] = _memory(psum_bits, psum_bits, energy.register_pj_per_byte, ["O"],
                                      [], 0.0, _rw_ports(["O"], psum_bits))
    all_ops = ["I1", "I2", "O"]
    edge_bits = (hw.array_rows + hw.array_cols) * bits
    memories["core_sram"] = _memory(
        int(hw.sram_per_core_bytes * 8), edge_bits, energy.core_sram_pj_per_byte, all_ops,
        ["D1", "D2"], energy.sram_mm2_per_byte * hw.sram_per_core_bytes,
        _rw_ports(all_ops, edge_bits))
    if hw.global_buffer_bytes > 0:
        gb_bits = max(bits, int(hw.global_buffer_bw_bytes_per_cycle * 8))
        memories["global_buffer"] = _memory(
            int(hw.global_buffer_bytes * 8), gb_bits, energy.global_buffer_pj_per_byte,
            all_ops, ["D1", "D2"], energy.sram_mm2_per_byte * hw.global_buffer_bytes,
            _rw_ports(all_ops, gb_bits))
    hbm_bits = max(bits, int(hw.hbm_bw_bytes_per_s / hw.freq_hz / hw.tensor_cores * 8))
    alloc = ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"]
    memories["hbm"] = _memory(int(hw.hbm_bytes * 8), hbm_bits, energy.hbm_pj_per_byte, all_ops,
                              ["D1", "D2"], 0.0,
                              [_port("rw_port_1", "read_write", hbm_bits, alloc)])
    return {
        "name": _yaml_name(hw.name),
        "memories": memories,
        "operational_array": {
            "unit_energy": float(round(energy.mac_pj, 6)),
            "unit_area": 1.0,
            "dimensions": ["D1", "D2"],
            "sizes": [hw.array_rows, hw.array_cols],
            "systolic_dimensions": ["D1", "D2"],
        },
    }


def _yaml_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "dse_design"


def mapping(design: Design) -> list[dict[str, Any]]:
    """Mapping entries: the dataflow as a spatial unrolling over the array."""
    hw = design.hardware
    d1, d2 = _SPATIAL[hw.dataflow]

    def entry(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "spatial_mapping": {"D1": [f"{d1}, {hw.array_rows}"],
                                "D2": [f"{d2}, {hw.array_cols}"]},
            "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
        }

    return [entry("default"), entry("Gemm")]


def workload(design: Design, gemms: list[Gemm]) -> list[dict[str, Any]]:
    """ZigZag workload layers, one ``Gemm`` per unique GEMM shape."""
    bits = design.hardware.dtype_bytes * 8
    return [{
        "id": i,
        "name": g.name,
        "operator_type": "Gemm",
        "equation": "O[b][k]+=W[k][c]*I[b][c]",
        "loop_dims": ["B", "K", "C"],
        "loop_sizes": [g.m, g.n, g.k],
        "operand_precision": {"W": bits, "I": bits, "O": 2 * bits, "O_final": bits},
        "operand_source": {"I": i, "W": i},
    } for i, g in enumerate(gemms)]


_RUNNER = '''"""Run ZigZag 3.9 on this export: python run_zigzag.py [--lpf-limit N] [--out DIR]

Needs a Python with zigzag-dse==3.9.1 and six. Prints one JSON line with the total
latency (cycles) and energy (pJ, the unit of the exported costs) and per-layer values.
"""
import argparse
import json
import logging
from pathlib import Path

from zigzag.api import get_hardware_performance_zigzag

HERE = Path(__file__).resolve().parent
ap = argparse.ArgumentParser()
ap.add_argument("--lpf-limit", type=int, default=6)
ap.add_argument("--out", default=str(HERE / "zigzag_out"))
a = ap.parse_args()
logging.disable(logging.INFO)
energy, latency, cmes = get_hardware_performance_zigzag(
    workload=str(HERE / "workload.yaml"), accelerator=str(HERE / "hardware.yaml"),
    mapping=str(HERE / "mapping.yaml"), opt="latency", dump_folder=a.out,
    lpf_limit=a.lpf_limit, loma_show_progress_bar=False)
layers = []
for path in sorted(Path(a.out).glob("*_complete.json")):
    out = json.loads(path.read_text())["outputs"]
    lat = out["latency"]
    layers.append({"layer": path.name[: -len("_complete.json")],
                   "latency_cycles": sum(float(v) for v in lat.values()),
                   "computation_cycles": lat.get("computation"),
                   "energy_pj": out["energy"]["energy_total"]})
print(json.dumps({"latency_cycles": latency, "energy_pj": energy, "layers": layers}))
'''


def export(design: Design, out_dir: Path, *, top: int | None = None,
           layers: tuple[str, ...] | None = None) -> list[Path]:
    """Write ``hardware.yaml``, ``mapping.yaml``, ``workload.yaml`` and ``gemms.csv``."""
    gemms = require_gemms(design, workload_graphs(design), top=top, layers=layers)
    return write_files(design, gemms, out_dir, energy_costs(design))


def write_files(design: Design, gemms: list[Gemm], out_dir: Path,
                energy: EnergyCosts) -> list[Path]:
    """Write the ZigZag files for given GEMMs and energies (used by :func:`export`)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def put(name: str, data: Any, header: str) -> Path:
        p = out_dir / name
        p.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
        return p

    src = f"# energies: {energy.source}\n" if energy.source else ""
    paths = [
        put("hardware.yaml", hardware(design, energy),
            f"# ZigZag 3.9 accelerator: one tensor core of {design.hardware.name}\n{src}"),
        put("mapping.yaml", mapping(design), f"# dataflow {design.hardware.dataflow}\n"),
        put("workload.yaml", workload(design, gemms),
            "# unique GEMMs C[m,n]=A[m,k]B[k,n]: loop_sizes [B,K,C] = [m,n,k]\n"),
    ]
    listing = out_dir / "gemms.csv"
    with listing.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["layer_id", "name", "m", "k", "n", "instances_per_step", "phases"])
        for i, g in enumerate(gemms):
            w.writerow([i, g.name, g.m, g.k, g.n, g.instances_per_step, ";".join(g.phases)])
    paths.append(listing)
    runner = out_dir / "run_zigzag.py"
    runner.write_text(_RUNNER)
    paths.append(runner)
    return paths
