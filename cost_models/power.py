"""Thermal design power (W), vectorized over designs: every unit busy at the clock.

TDP = dynamic power at full activity + leakage, with (keys of :func:`tdp_w`):

=================  ==============================================================================
``tensor``         MACs · freq · E_MAC(dtype)
``sram_core``      tensor_cores · freq · edge bytes/cycle · E_SRAM(sram_per_core_bytes); the edge
                   traffic of a busy array is ``(rows + cols)·dtype_bytes`` per cycle for output
                   stationary (both operands stream in, outputs stay) and
                   ``rows·dtype_bytes + cols·accumulator_bytes`` for weight/input stationary
                   (one operand streams in, one partial sum leaves per column), as in
                   SCALE-Sim's steady-state SRAM counts (``systolic.sram_accesses``)
``global_buffer``  global_buffer_bw_bytes_per_cycle · freq · E_SRAM(global_buffer_bytes), if the
                   design has a global buffer
``vector``         vector_cores · vector_lanes · freq · E_vector_op
``hbm``            hbm_bw_bytes_per_s · E_HBM
``links``          link_count · link_bw_bytes_per_s · 2 directions · E_link
``dynamic``        sum of the above
``leakage``        leakage_fraction · dynamic
``total``          dynamic + leakage
=================  ==============================================================================

The same per-access energies give the energy of a training step from access counts in
:mod:`cost_models.evaluate`.

>>> from dse.types import HardwareConfig
>>> from cost_models.designs import DesignBatch
>>> from cost_models.technology import load_technology
>>> hw = HardwareConfig(name="x", tensor_cores=1, array_rows=128, array_cols=128,
...                     vector_cores=1, vector_lanes=128, freq_hz=1e9, hbm_bw_bytes_per_s=1e12,
...                     hbm_bytes=16e9, link_count=0)
>>> p = tdp_w(DesignBatch.from_configs([hw]), load_technology(7))
>>> round(float(p["tensor"][0]), 2)            # 16384 MACs x 1 GHz x 0.786 pJ
12.88
>>> round(float(p["hbm"][0]), 2)               # 1 TB/s x 31.76 pJ/B
31.76
"""

from __future__ import annotations

import numpy as np

from cost_models.area import node_constants
from cost_models.designs import DesignBatch
from cost_models.technology import Technology
from dse.types import DATAFLOWS

__all__ = ["TDP_KEYS", "array_edge_bytes_per_cycle", "tdp_w"]

TDP_KEYS: tuple[str, ...] = (
    "tensor", "sram_core", "global_buffer", "vector", "hbm", "links", "dynamic", "leakage",
    "total",
)
_OS = DATAFLOWS.index("os")


def array_edge_bytes_per_cycle(designs: DesignBatch, accumulator_bytes: np.ndarray | float
                               ) -> np.ndarray:
    """SRAM bytes one busy tensor core reads/writes per cycle (see the module docstring)."""
    r = designs.array_rows.astype(np.float64)
    c = designs.array_cols.astype(np.float64)
    b = designs.dtype_bytes.astype(np.float64)
    return np.where(designs.dataflow_code == _OS, (r + c) * b, r * b + c * accumulator_bytes)


def tdp_w(designs: DesignBatch, tech: Technology,
          constants: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """TDP breakdown of every design (W); see the module docstring for the keys."""
    if constants is None:
        return designs.memo(("tdp_w",), tech,
                            lambda: tdp_w(designs, tech, node_constants(designs, tech)))
    c = constants
    f = designs.freq_hz
    out: dict[str, np.ndarray] = {}
    out["tensor"] = designs.macs * f * c["mac_energy_j"]
    out["sram_core"] = (designs.tensor_cores * f
                        * array_edge_bytes_per_cycle(designs, c["accumulator_bytes"])
                        * c["sram_core_energy_j_per_byte"])
    out["global_buffer"] = np.where(
        designs.global_buffer_bytes > 0,
        designs.global_buffer_bw_bytes_per_cycle * f * c["global_buffer_energy_j_per_byte"], 0.0)
    out["vector"] = designs.vector_cores * designs.vector_lanes * f * c["vector_op_energy_j"]
    out["hbm"] = designs.hbm_bw_bytes_per_s * c["hbm_energy_j_per_byte"]
    out["links"] = (designs.link_count * designs.link_bw_bytes_per_s * 2.0
                    * c["link_energy_j_per_byte"])
    out["dynamic"] = (out["tensor"] + out["sram_core"] + out["global_buffer"] + out["vector"]
                      + out["hbm"] + out["links"])
    out["leakage"] = c["leakage_fraction"] * out["dynamic"]
    out["total"] = out["dynamic"] + out["leakage"]
    return out
