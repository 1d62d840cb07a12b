"""Technology constants: sources, node scaling rules, derived values."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.technology import (
    NODE_RANGE_NM,
    energy_factor,
    load_technology,
    logic_area_factor,
    sram_area_factor,
)
from dse.errors import ConfigError
from dse.units import DTYPE_BYTES, MIB

NODES = st.floats(min_value=NODE_RANGE_NM[0], max_value=NODE_RANGE_NM[1])


def test_every_constant_has_a_source() -> None:
    t = load_technology(7)
    for f in dataclasses.fields(t):
        if f.name in ("node_nm", "sources", "sram_energy_capacity_bytes",
                      "sram_energy_j_per_byte_points"):
            continue
        key = "sram_energy_j_per_byte" if f.name.startswith("sram_energy") else f.name
        assert len(t.sources.get(key, "")) > 20, f"{f.name} has no source"
    assert "Stillmaker" in t.sources["node_scaling"]


def test_seven_nm_values_are_the_cited_ones() -> None:
    t = load_technology(7)
    # TPUv4i: 100 mm2 for 4 MXUs of 128x128 (Jouppi ISCA'21 via docs/sources.md)
    assert t.mac_area_mm2["bf16"] * 4 * 128 * 128 == pytest.approx(100, rel=1e-3)
    # Jouppi ISCA'21 Table 2: fp32 mult 1.3 + add 0.4 pJ
    assert t.mac_energy_j["fp32"] == pytest.approx(1.7e-12)
    # SRAM per 64-bit access: 8 KB 7.5 pJ, 32 KB 8.5 pJ, 1 MB 14 pJ
    for cap, pj in ((8192, 7.5), (32768, 8.5), (1 << 20, 14.0)):
        assert t.sram_energy_j_per_byte(cap) * 8 == pytest.approx(pj * 1e-12)
    # O'Connor MICRO'17: HBM2 3.97 pJ/bit
    assert t.hbm_energy_j_per_byte == pytest.approx(3.97e-12 * 8)
    # TSMC N7 bitcell 0.027 um2 with N5's 70% array efficiency (31.8 Mib/mm2 at 0.021 um2)
    assert t.sram_area_mm2_per_byte * MIB == pytest.approx(8 / 31.8 * 0.027 / 0.021, rel=1e-3)


def test_nvdla_control_area_derivation() -> None:
    """The per-core control area is NVDLA's 32-MAC configuration (0.51 mm2 at 16 nm, 128 KB
    CBUF, 1 SDP lane) minus its modelled MACs, SRAM and lane."""
    t = load_technology(16)
    derived = (0.51 - 32 * t.mac_area_mm2["int8"] - 128 * 1024 * t.sram_area_mm2_per_byte
               - t.vector_lane_area_mm2)
    assert t.control_area_mm2_per_core == pytest.approx(derived, rel=1e-3)


def test_stillmaker_area_table_points() -> None:
    assert logic_area_factor(7) == 1.0
    assert logic_area_factor(16) == pytest.approx(3.2)
    assert logic_area_factor(45) == pytest.approx(17.0)
    # between table points: log-log interpolation, between the neighbours
    assert 3.6 < logic_area_factor(28) < 7.8
    assert sram_area_factor(5) == pytest.approx(1.0)
    assert sram_area_factor(16) == pytest.approx(0.074 / 0.021)


def test_energy_exponents_reproduce_the_45nm_anchors() -> None:
    """alpha fitted on Horowitz (45 nm) vs Jouppi (7 nm): within the spread of the pairs."""
    logic = energy_factor("logic", 7, 45)
    assert 0.9 / 0.4 * 0.85 < logic < 3.7 / 1.3 * 1.15      # fp32 add 2.25x, mult 2.85x
    sram = energy_factor("sram", 7, 45)
    assert 10 / 7.5 * 0.75 < sram < 20 / 8.5 * 1.1           # 8 KB 1.33x, 32 KB 2.35x


@settings(max_examples=60, deadline=None)
@given(NODES, NODES)
def test_scaling_is_monotone_in_node(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert logic_area_factor(lo) <= logic_area_factor(hi) * (1 + 1e-12)
    assert sram_area_factor(lo) <= sram_area_factor(hi) * (1 + 1e-12)
    assert energy_factor("logic", hi, lo) <= 1 + 1e-12
    tl, th = load_technology(lo), load_technology(hi)
    for d in DTYPE_BYTES:
        assert tl.mac_area_mm2[d] <= th.mac_area_mm2[d] * (1 + 1e-12)
        assert tl.mac_energy_j[d] <= th.mac_energy_j[d] * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1.0, max_value=2.0**34), st.floats(min_value=1.0, max_value=2.0**34))
def test_sram_energy_grows_with_capacity(a: float, b: float) -> None:
    t = load_technology(7)
    lo, hi = sorted((a, b))
    assert t.sram_energy_j_per_byte(lo) <= t.sram_energy_j_per_byte(hi) * (1 + 1e-12)
    assert math.isfinite(t.sram_energy_j_per_byte(hi))


def test_datatype_ordering() -> None:
    t = load_technology(7)
    for table in (t.mac_area_mm2, t.mac_energy_j):
        assert table["int8"] < table["fp8"] < table["bf16"] <= table["fp32"]
        assert table["bf16"] == table["fp16"]


def test_at_node_keeps_overrides_and_rejects_bad_nodes() -> None:
    t = dataclasses.replace(load_technology(7), leakage_fraction=0.3)
    t16 = t.at_node(16)
    assert t16.leakage_fraction == 0.3 and t16.node_nm == 16
    assert t.at_node(7) is t
    for bad in (1, 500, float("nan"), "x"):
        with pytest.raises(ConfigError, match="tech_node_nm"):
            load_technology(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layout_utilization"):
        dataclasses.replace(load_technology(7), layout_utilization=1.5)


def test_hardware_node_range_is_the_tables_range() -> None:
    """A HardwareConfig accepts exactly the nodes the area/power tables scale between, so
    a design that validates can be costed (tech_node_nm=1 used to pass validation and
    fail in the area model)."""
    from dse.limits import RANGES

    r = RANGES["tech_node_nm"]
    assert (float(r.lo), float(r.hi)) == NODE_RANGE_NM
