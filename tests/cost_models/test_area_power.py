"""Area and TDP models: breakdowns, scaling, vectorization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.area import AREA_KEYS, area_mm2
from cost_models.designs import DesignBatch
from cost_models.power import TDP_KEYS, tdp_w
from cost_models.technology import load_technology
from tests.cost_models._graphs import random_hw

TECH = load_technology(7)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_breakdowns_sum_and_batch_equals_single(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hws = [random_hw(rng, f"h{i}") for i in range(4)]
    batch = DesignBatch.from_configs(hws)
    a, p = area_mm2(batch, TECH), tdp_w(batch, TECH)
    assert set(a) == set(AREA_KEYS) and set(p) == set(TDP_KEYS)
    parts = ("tensor", "sram_core", "global_buffer", "vector", "control")
    assert np.allclose(a["core"], sum(a[k] for k in parts))
    assert np.allclose(a["total"], a["core"] + a["layout_overhead"] + a["hbm_phy"] + a["links"])
    dyn = ("tensor", "sram_core", "global_buffer", "vector", "hbm", "links")
    assert np.allclose(p["dynamic"], sum(p[k] for k in dyn))
    assert np.allclose(p["total"], p["dynamic"] + p["leakage"])
    for i, hw in enumerate(hws):
        one = DesignBatch.from_configs([hw])
        assert area_mm2(one, TECH)["total"][0] == pytest.approx(a["total"][i])
        assert tdp_w(one, TECH)["total"][0] == pytest.approx(p["total"][i])
    assert np.all(a["total"] > 0) and np.all(p["total"] > 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_more_of_anything_costs_more(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hw = random_hw(rng)
    bigger = [dataclasses.replace(hw, tensor_cores=hw.tensor_cores + 1),
              dataclasses.replace(hw, array_rows=hw.array_rows * 2),
              dataclasses.replace(hw, vector_lanes=hw.vector_lanes * 2),
              dataclasses.replace(hw, sram_per_core_bytes=hw.sram_per_core_bytes * 2),
              dataclasses.replace(hw, hbm_stacks=hw.hbm_stacks + 1),
              dataclasses.replace(hw, tech_node_nm=hw.tech_node_nm * 1.5)]
    a = area_mm2(DesignBatch.from_configs([hw] + bigger), TECH)["total"]
    assert np.all(a[1:] > a[0])
    faster = [dataclasses.replace(hw, freq_hz=hw.freq_hz * 1.5),
              dataclasses.replace(hw, hbm_bw_bytes_per_s=hw.hbm_bw_bytes_per_s * 2),
              dataclasses.replace(hw, tensor_cores=hw.tensor_cores + 1)]
    p = tdp_w(DesignBatch.from_configs([hw] + faster), TECH)["total"]
    assert np.all(p[1:] > p[0])


def test_design_node_selects_the_constants() -> None:
    hw = random_hw(np.random.default_rng(3))
    a7 = area_mm2(DesignBatch.from_configs([dataclasses.replace(hw, tech_node_nm=7)]), TECH)
    a16 = area_mm2(DesignBatch.from_configs([dataclasses.replace(hw, tech_node_nm=16)]), TECH)
    assert a16["tensor"][0] / a7["tensor"][0] == pytest.approx(3.2)
    assert a16["hbm_phy"][0] == a7["hbm_phy"][0]          # off-chip I/O does not scale
    # the design's node wins over the node of the technology object passed in
    a16b = area_mm2(DesignBatch.from_configs([dataclasses.replace(hw, tech_node_nm=16)]),
                    load_technology(4))
    assert a16b["total"][0] == pytest.approx(a16["total"][0])


def test_tdp_hand_computation() -> None:
    from dse.types import HardwareConfig

    hw = HardwareConfig(name="x", tensor_cores=2, array_rows=64, array_cols=32,
                        dataflow="ws", vector_cores=1, vector_lanes=16, freq_hz=1e9,
                        hbm_bw_bytes_per_s=1e11, hbm_bytes=1e9, sram_per_core_bytes=1 << 20,
                        global_buffer_bytes=0, link_count=2, link_bw_bytes_per_s=1e10)
    p = tdp_w(DesignBatch.from_configs([hw]), TECH)
    assert p["tensor"][0] == pytest.approx(2 * 64 * 32 * 1e9 * 0.786e-12)
    # WS: 64 bf16 inputs in + 32 fp32 partial sums out per cycle per core, 1 MiB SRAM
    assert p["sram_core"][0] == pytest.approx(2 * 1e9 * (64 * 2 + 32 * 4) * 1.75e-12)
    assert p["global_buffer"][0] == 0
    assert p["vector"][0] == pytest.approx(16 * 1e9 * 12.95e-12)
    assert p["hbm"][0] == pytest.approx(1e11 * 31.76e-12)
    assert p["links"][0] == pytest.approx(2 * 1e10 * 2 * 15.2e-12)
    assert p["leakage"][0] == pytest.approx(0.1 * p["dynamic"][0])
