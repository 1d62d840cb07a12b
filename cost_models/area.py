"""Chip area model, vectorized over designs (mm²).

Each design is built at its own ``tech_node_nm``: the constants of ``tech`` (a
:class:`~cost_models.technology.Technology`) are rescaled to that node with
:meth:`Technology.at_node`. Breakdown (keys of :func:`area_mm2`):

========================  ==================================================================
``tensor``                tensor_cores · rows · cols · area per MAC of the design's dtype
``sram_core``             tensor_cores · sram_per_core_bytes · SRAM mm²/byte
``global_buffer``         global_buffer_bytes · SRAM mm²/byte
``vector``                vector_cores · vector_lanes · area per lane (fp32 FMA)
``control``               tensor_cores · fixed control logic per tensor core
``core``                  sum of the five above: synthesis (pre-layout) area, comparable with
                          synthesis tables such as NVDLA's primer
``layout_overhead``       core · (1/layout_utilization − 1): whitespace, clock/power grid, NoC
``hbm_phy``               hbm_stacks · HBM PHY + controller per 1024-bit stack
``links``                 link_count · link_bw_bytes_per_s · link PHY mm² per B/s
``total``                 core + layout_overhead + hbm_phy + links: die area
========================  ==================================================================

>>> from dse.types import HardwareConfig
>>> from cost_models.designs import DesignBatch
>>> from cost_models.technology import load_technology
>>> hw = HardwareConfig(name="x", tensor_cores=1, array_rows=128, array_cols=128,
...                     vector_cores=1, vector_lanes=128, freq_hz=1e9, hbm_bw_bytes_per_s=1e12,
...                     hbm_bytes=16e9, sram_per_core_bytes=0.5 * 2**20, global_buffer_bytes=0,
...                     link_count=0)
>>> a = area_mm2(DesignBatch.from_configs([hw]), load_technology(7))
>>> round(float(a["tensor"][0]), 2)        # 16384 MACs x 1.5259e-3 mm2
25.0
>>> bool(np.allclose(a["total"], a["core"] + a["layout_overhead"] + a["hbm_phy"] + a["links"]))
True
"""

from __future__ import annotations

import numpy as np

from cost_models.designs import DesignBatch
from cost_models.technology import Technology
from dse.types import DTYPES

__all__ = ["AREA_KEYS", "area_mm2", "node_constants"]

AREA_KEYS: tuple[str, ...] = (
    "tensor", "sram_core", "global_buffer", "vector", "control", "core", "layout_overhead",
    "hbm_phy", "links", "total",
)


def node_constants(designs: DesignBatch, tech: Technology) -> dict[str, np.ndarray]:
    """Per-design arrays of the technology constants at each design's node (SI, mm²).

    Keys: ``mac_area_mm2``, ``sram_area_mm2_per_byte``, ``vector_lane_area_mm2``,
    ``control_area_mm2_per_core``, ``layout_utilization``, ``hbm_phy_area_mm2_per_stack``,
    ``link_phy_area_mm2_per_byte_per_s``, ``mac_energy_j``, ``sram_core_energy_j_per_byte``,
    ``global_buffer_energy_j_per_byte``, ``vector_op_energy_j``, ``hbm_energy_j_per_byte``,
    ``link_energy_j_per_byte``, ``accumulator_bytes``, ``leakage_fraction``.
    """
    return designs.memo(("node_constants",), tech, lambda: _node_constants(designs, tech))


def _node_constants(designs: DesignBatch, tech: Technology) -> dict[str, np.ndarray]:
    nodes = designs.tech_node_nm
    dcode = designs.dtype_code
    d = len(designs)
    out = {k: np.empty(d) for k in (
        "mac_area_mm2", "sram_area_mm2_per_byte", "vector_lane_area_mm2",
        "control_area_mm2_per_core", "layout_utilization", "hbm_phy_area_mm2_per_stack",
        "link_phy_area_mm2_per_byte_per_s", "mac_energy_j", "sram_core_energy_j_per_byte",
        "global_buffer_energy_j_per_byte", "vector_op_energy_j", "hbm_energy_j_per_byte",
        "link_energy_j_per_byte", "accumulator_bytes", "leakage_fraction")}
    for node in np.unique(nodes):
        sel = nodes == node
        t = tech.at_node(float(node))
        mac_a = np.array([t.mac_area_mm2[x] for x in DTYPES])
        mac_e = np.array([t.mac_energy_j[x] for x in DTYPES])
        out["mac_area_mm2"][sel] = mac_a[dcode[sel]]
        out["mac_energy_j"][sel] = mac_e[dcode[sel]]
        for k in ("sram_area_mm2_per_byte", "vector_lane_area_mm2", "control_area_mm2_per_core",
                  "layout_utilization", "hbm_phy_area_mm2_per_stack",
                  "link_phy_area_mm2_per_byte_per_s", "vector_op_energy_j",
                  "hbm_energy_j_per_byte", "link_energy_j_per_byte", "accumulator_bytes",
                  "leakage_fraction"):
            out[k][sel] = getattr(t, k)
        out["sram_core_energy_j_per_byte"][sel] = t.sram_energy_j_per_byte(
            designs.sram_per_core_bytes[sel])
        out["global_buffer_energy_j_per_byte"][sel] = t.sram_energy_j_per_byte(
            np.maximum(designs.global_buffer_bytes[sel], 1.0))
    return out


def area_mm2(designs: DesignBatch, tech: Technology,
             constants: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Area breakdown of every design (mm²); see the module docstring for the keys.

    ``constants`` may pass a precomputed :func:`node_constants` (saves work in hot loops).
    """
    if constants is None:
        return designs.memo(("area_mm2",), tech,
                            lambda: area_mm2(designs, tech, node_constants(designs, tech)))
    c = constants
    tc = designs.tensor_cores.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    out["tensor"] = designs.macs * c["mac_area_mm2"]
    out["sram_core"] = tc * designs.sram_per_core_bytes * c["sram_area_mm2_per_byte"]
    out["global_buffer"] = designs.global_buffer_bytes * c["sram_area_mm2_per_byte"]
    out["vector"] = (designs.vector_cores * designs.vector_lanes) * c["vector_lane_area_mm2"]
    out["control"] = tc * c["control_area_mm2_per_core"]
    out["core"] = (out["tensor"] + out["sram_core"] + out["global_buffer"] + out["vector"]
                   + out["control"])
    out["layout_overhead"] = out["core"] * (1.0 / c["layout_utilization"] - 1.0)
    out["hbm_phy"] = designs.hbm_stacks * c["hbm_phy_area_mm2_per_stack"]
    out["links"] = (designs.link_count * designs.link_bw_bytes_per_s
                    * c["link_phy_area_mm2_per_byte_per_s"])
    out["total"] = out["core"] + out["layout_overhead"] + out["hbm_phy"] + out["links"]
    return out
