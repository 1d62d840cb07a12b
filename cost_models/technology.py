"""Technology constants (area, energy, leakage) with their sources, scaled to a node.

The constants live in ``cost_models/data/technology.yaml``: each is given at the node where
it was measured (``node_nm``) with its ``source`` and a scaling rule:

* ``logic`` area: Stillmaker & Baas (2017) area factors (>= 7 nm) and TSMC's density
  claims (< 7 nm), log-log interpolated (:func:`logic_area_factor`);
* ``sram`` area: proportional to the TSMC high-density bitcell (:func:`sram_area_factor`);
* ``logic``/``sram`` energy: ``(node / node_0) ** alpha`` with ``alpha`` fitted on the
  Horowitz (45 nm) / Jouppi (7 nm) pairs of the same circuits (:func:`energy_factor`);
* ``none``: off-chip I/O and DRAM devices, node-independent.

All values inside a :class:`Technology` are SI: mm² for areas (the one non-SI unit, named
``_mm2``), joules for energies, bytes for capacities.

>>> t7 = load_technology(7.0)
>>> round(t7.mac_area_mm2["bf16"] * 65536, 1)          # TPUv4i's four MXUs, mm²
100.0
>>> t16 = load_technology(16)
>>> round(t16.mac_area_mm2["bf16"] / t7.mac_area_mm2["bf16"], 2)   # Stillmaker 7 -> 16 nm
3.2
>>> round(t7.sram_energy_j_per_byte(1 << 20) * 1e12, 3)      # Jouppi: 14 pJ / 8 B
1.75
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from dse.config import load_mapping
from dse.errors import ConfigError
from dse.units import DTYPE_BYTES, MIB, PJ

__all__ = [
    "NODE_RANGE_NM",
    "TECHNOLOGY_FILE",
    "Technology",
    "energy_factor",
    "load_technology",
    "logic_area_factor",
    "sram_area_factor",
]

TECHNOLOGY_FILE = Path(__file__).with_name("data") / "technology.yaml"


@lru_cache(maxsize=4)
def _raw(path: str) -> dict[str, Any]:
    data = load_mapping(path)
    for key in ("scaling", "constants"):
        if key not in data:
            raise ConfigError(f"{path}: missing top-level key {key!r}")
    return data


def _table(path: str | Path | None = None) -> dict[str, Any]:
    return _raw(str(TECHNOLOGY_FILE if path is None else Path(path)))


def _node_range() -> tuple[float, float]:
    nodes = _table()["scaling"]["area_logic"]["nodes_nm"]
    return float(min(nodes)), float(max(nodes))


NODE_RANGE_NM: tuple[float, float] = _node_range()
"""Technology nodes the scaling tables cover (nm)."""


def _check_node(node_nm: float) -> float:
    lo, hi = NODE_RANGE_NM
    try:
        x = float(node_nm)
    except (TypeError, ValueError):
        raise ConfigError(f"tech_node_nm={node_nm!r} must be a number in [{lo:g}, {hi:g}] nm")
    if not (math.isfinite(x) and lo <= x <= hi):
        raise ConfigError(f"tech_node_nm={node_nm!r} is outside the scaling tables; "
                          f"valid range {lo:g}..{hi:g} nm")
    return x


def _loglog(x: float, xs: list[float], ys: list[float]) -> float:
    lx = np.log(np.asarray(xs, dtype=float))
    ly = np.log(np.asarray(ys, dtype=float))
    return float(np.exp(np.interp(math.log(x), lx, ly)))


def logic_area_factor(node_nm: float) -> float:
    """Logic area at ``node_nm`` relative to 7 nm (Stillmaker & Baas; TSMC below 7 nm).

    >>> logic_area_factor(7), logic_area_factor(16), round(logic_area_factor(5), 4)
    (1.0, 3.2, 0.5435)
    """
    t = _table()["scaling"]["area_logic"]
    return _loglog(_check_node(node_nm), t["nodes_nm"], t["factor_vs_7nm"])


def sram_area_factor(node_nm: float) -> float:
    """SRAM array area at ``node_nm`` relative to 5 nm (high-density bitcell ratio).

    Above the bitcell table's largest node (28 nm) the logic area table takes over.

    >>> round(sram_area_factor(7), 4), round(sram_area_factor(16), 4)
    (1.2857, 3.5238)
    """
    x = _check_node(node_nm)
    t = _table()["scaling"]["sram_bitcell_um2"]
    nodes, cells = t["nodes_nm"], t["bitcell_um2"]
    ref = cells[nodes.index(5)]
    top = max(nodes)
    if x <= top:
        return _loglog(x, nodes, cells) / ref
    return cells[nodes.index(top)] / ref * logic_area_factor(x) / logic_area_factor(top)


def energy_factor(kind: str, node_from_nm: float, node_to_nm: float) -> float:
    """Energy scaling ``(to/from) ** alpha`` for ``kind`` in ``logic``, ``sram``, ``none``.

    >>> round(energy_factor("logic", 7, 45), 2)     # ~ Horowitz / Jouppi for fp32 ops
    2.53
    >>> energy_factor("none", 7, 45)
    1.0
    """
    if kind == "none":
        return 1.0
    alpha = _table()["scaling"]["energy_exponent"].get(kind)
    if alpha is None:
        raise ConfigError(f"unknown energy scaling kind {kind!r}; valid: logic, sram, none")
    return (_check_node(node_to_nm) / _check_node(node_from_nm)) ** float(alpha)


def _area_factor(kind: str, node_from_nm: float, node_to_nm: float) -> float:
    if kind == "none":
        return 1.0
    if kind == "logic":
        return logic_area_factor(node_to_nm) / logic_area_factor(node_from_nm)
    if kind == "sram":
        return sram_area_factor(node_to_nm) / sram_area_factor(node_from_nm)
    raise ConfigError(f"unknown area scaling kind {kind!r}; valid: logic, sram, none")


@dataclass(frozen=True, kw_only=True)
class Technology:
    """Per-component constants at one technology node (SI units; areas in mm²).

    Build it with :func:`load_technology`; derive a variant with :func:`dataclasses.replace`
    (e.g. a different ``leakage_fraction``) or another node with :meth:`at_node`.
    ``sources`` maps each field name to the citation it comes from.
    """

    node_nm: float
    mac_area_mm2: Mapping[str, float]
    """Area of one MAC per datatype (mm²)."""
    sram_area_mm2_per_byte: float
    vector_lane_area_mm2: float
    control_area_mm2_per_core: float
    """MAC- and buffer-independent logic of one tensor core (sequencer, DMA, post-processing)."""
    layout_utilization: float
    """Placed-cell area / core area after place and route (0 < u <= 1)."""
    hbm_phy_area_mm2_per_stack: float
    link_phy_area_mm2_per_byte_per_s: float
    mac_energy_j: Mapping[str, float]
    """Energy of one MAC per datatype (J)."""
    sram_energy_capacity_bytes: tuple[float, ...]
    sram_energy_j_per_byte_points: tuple[float, ...]
    vector_op_energy_j: float
    """One vector-lane operation with its register operands (J)."""
    hbm_energy_j_per_byte: float
    link_energy_j_per_byte: float
    accumulator_bytes: float
    leakage_fraction: float
    """Leakage power as a fraction of the full-activity dynamic power."""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        o = "Technology"
        _check_node(self.node_nm)
        for f in ("sram_area_mm2_per_byte", "vector_lane_area_mm2", "hbm_phy_area_mm2_per_stack",
                  "vector_op_energy_j", "hbm_energy_j_per_byte", "accumulator_bytes"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{o}.{f}={v!r} must be a finite number > 0")
        for f in ("control_area_mm2_per_core", "link_phy_area_mm2_per_byte_per_s",
                  "link_energy_j_per_byte", "leakage_fraction"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"{o}.{f}={v!r} must be a finite number >= 0")
        if not 0 < self.layout_utilization <= 1:
            raise ConfigError(f"{o}.layout_utilization={self.layout_utilization!r} must be "
                              "in (0, 1]")
        for f in ("mac_area_mm2", "mac_energy_j"):
            table = getattr(self, f)
            missing = [d for d in DTYPE_BYTES if d not in table]
            if missing:
                raise ConfigError(f"{o}.{f} has no value for dtype {missing[0]!r}; it needs "
                                  f"all of {', '.join(DTYPE_BYTES)}")
            for d, v in table.items():
                if not (math.isfinite(v) and v > 0):
                    raise ConfigError(f"{o}.{f}[{d!r}]={v!r} must be a finite number > 0")
        caps, vals = self.sram_energy_capacity_bytes, self.sram_energy_j_per_byte_points
        if len(caps) < 2 or len(caps) != len(vals) or list(caps) != sorted(caps):
            raise ConfigError(f"{o}.sram_energy_capacity_bytes must be >= 2 increasing "
                              "capacities matching sram_energy_j_per_byte_points")

    # -- derived lookups ---------------------------------------------------------------
    def sram_energy_j_per_byte(self, capacity_bytes: Any) -> Any:
        """Energy per byte read or written in an SRAM of ``capacity_bytes`` (J/B).

        Log-log interpolation of Jouppi's 8 KB / 32 KB / 1 MB points; clamped below the
        smallest, extrapolated above the largest with the slope of the last segment.
        Accepts scalars or arrays.
        """
        cap = np.maximum(np.asarray(capacity_bytes, dtype=np.float64),
                         self.sram_energy_capacity_bytes[0])
        lx = np.log(np.asarray(self.sram_energy_capacity_bytes))
        ly = np.log(np.asarray(self.sram_energy_j_per_byte_points))
        x = np.log(cap)
        slope = (ly[-1] - ly[-2]) / (lx[-1] - lx[-2])
        y = np.where(x <= lx[-1], np.interp(x, lx, ly), ly[-1] + slope * (x - lx[-1]))
        out = np.exp(y)
        return float(out) if out.ndim == 0 else out

    def at_node(self, node_nm: float) -> Technology:
        """The same constant table scaled to another node (keeps ``leakage_fraction``,
        ``layout_utilization`` and other node-independent overrides)."""
        if float(node_nm) == float(self.node_nm):
            return self
        import dataclasses

        fresh = load_technology(node_nm)
        keep = {f: getattr(self, f) for f in ("layout_utilization", "hbm_phy_area_mm2_per_stack",
                                              "link_phy_area_mm2_per_byte_per_s",
                                              "hbm_energy_j_per_byte", "link_energy_j_per_byte",
                                              "accumulator_bytes", "leakage_fraction")}
        return dataclasses.replace(fresh, **keep)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON view of the constants with their sources (for reports)."""
        from dse.types import jsonable

        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "sources"}
        d["sources"] = dict(self.sources)
        return jsonable(d)


def _const(c: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    try:
        return c[name]
    except KeyError:
        raise ConfigError(f"{TECHNOLOGY_FILE}: constant {name!r} is missing") from None


def _scaled_area(entry: Mapping[str, Any], node: float) -> float:
    kind = entry.get("scaling", "none")
    base = float(entry.get("node_nm", node))
    return float(entry["value"]) * _area_factor(kind, base, node)


def _scaled_energy(value: float, entry: Mapping[str, Any], node: float) -> float:
    kind = entry.get("scaling", "none")
    base = float(entry.get("node_nm", node))
    return value * energy_factor(kind, base, node)


@lru_cache(maxsize=64)
def load_technology(node_nm: float = 7.0) -> Technology:
    """The constants of ``cost_models/data/technology.yaml`` scaled to ``node_nm``.

    Raises :class:`~dse.errors.ConfigError` for a node outside the scaling tables.

    >>> load_technology(7).node_nm
    7.0
    >>> load_technology(1)
    Traceback (most recent call last):
    ...
    dse.errors.ConfigError: tech_node_nm=1 is outside the scaling tables; valid range 3..130 nm
    """
    node = _check_node(node_nm)
    c = _table()["constants"]
    src = {k: " ".join(str(v.get("source", "")).split()) for k, v in c.items()}

    mac_bf16 = _const(c, "mac_area_mm2_bf16")
    ratio = _const(c, "mac_area_ratio")["value"]
    mac_bf16_mm2 = _scaled_area(mac_bf16, node)
    mac_area = {d: mac_bf16_mm2 * float(ratio[d]) for d in DTYPE_BYTES if d in ratio}

    sram = _const(c, "sram_area_mm2_per_mib_5nm")
    sram_mm2_per_byte = _scaled_area(sram, node) / MIB

    me = _const(c, "mac_energy_pj")
    mac_energy = {d: _scaled_energy(float(v) * PJ, me, node) for d, v in me["value"].items()}

    se = _const(c, "sram_energy_pj_per_byte")
    caps = tuple(float(x) for x in se["capacity_bytes"])
    pts = tuple(_scaled_energy(float(v) * PJ, se, node) for v in se["value"])

    ve = _const(c, "vector_op_energy_pj")
    link_area = _const(c, "link_phy_area_mm2_per_gbyte_per_s")

    return Technology(
        node_nm=node,
        mac_area_mm2=MappingProxyType(mac_area),
        sram_area_mm2_per_byte=sram_mm2_per_byte,
        vector_lane_area_mm2=_scaled_area(_const(c, "vector_lane_area_mm2"), node),
        control_area_mm2_per_core=_scaled_area(_const(c, "control_area_mm2_per_core"), node),
        layout_utilization=float(_const(c, "layout_utilization")["value"]),
        hbm_phy_area_mm2_per_stack=_scaled_area(_const(c, "hbm_phy_area_mm2_per_stack"), node),
        link_phy_area_mm2_per_byte_per_s=float(link_area["value"]) / 1e9,
        mac_energy_j=MappingProxyType(mac_energy),
        sram_energy_capacity_bytes=caps,
        sram_energy_j_per_byte_points=pts,
        vector_op_energy_j=_scaled_energy(float(ve["value"]) * PJ, ve, node),
        hbm_energy_j_per_byte=float(_const(c, "hbm_energy_pj_per_byte")["value"]) * PJ,
        link_energy_j_per_byte=float(_const(c, "link_energy_pj_per_byte")["value"]) * PJ,
        accumulator_bytes=float(_const(c, "accumulator_bytes")["value"]),
        leakage_fraction=float(_const(c, "leakage_fraction")["value"]),
        sources={
            "mac_area_mm2": src["mac_area_mm2_bf16"] + " | dtype ratios: "
            + src["mac_area_ratio"],
            "sram_area_mm2_per_byte": src["sram_area_mm2_per_mib_5nm"],
            "vector_lane_area_mm2": src["vector_lane_area_mm2"],
            "control_area_mm2_per_core": src["control_area_mm2_per_core"],
            "layout_utilization": src["layout_utilization"],
            "hbm_phy_area_mm2_per_stack": src["hbm_phy_area_mm2_per_stack"],
            "link_phy_area_mm2_per_byte_per_s": src["link_phy_area_mm2_per_gbyte_per_s"],
            "mac_energy_j": src["mac_energy_pj"],
            "sram_energy_j_per_byte": src["sram_energy_pj_per_byte"],
            "vector_op_energy_j": src["vector_op_energy_pj"],
            "hbm_energy_j_per_byte": src["hbm_energy_pj_per_byte"],
            "link_energy_j_per_byte": src["link_energy_pj_per_byte"],
            "accumulator_bytes": src["accumulator_bytes"],
            "leakage_fraction": src["leakage_fraction"],
            "node_scaling": "; ".join(
                f"{k}: {' '.join(str(v.get('source', '')).split())}"
                for k, v in _table()["scaling"].items()),
        },
    )
