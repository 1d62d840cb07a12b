"""DesignSpace: enumeration, sampling, neighbours, Optuna view, area/TDP feasibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.technology import load_technology
from dse.errors import ConfigError
from dse.units import MIB
from search.space import (
    HBM_GENERATIONS,
    TEMPLATE_TPUV4_LIKE,
    DesignSpace,
    Param,
    default_space,
)

TECH = load_technology(7)
SMALL = DesignSpace(template=TEMPLATE_TPUV4_LIKE, name="small", params=(
    Param(name="tensor_cores", values=(1, 2, 4, 8)),
    Param(name="array_rows", values=(32, 128)),
    Param(name="dataflow", values=("ws", "os")),
    Param(name="sram_per_core_bytes", values=(0.5 * MIB, 2 * MIB)),
    Param(name="hbm_stacks", values=(1, 2, 4)),
))
SPACE = default_space()


def test_enumerate_covers_the_grid_once() -> None:
    allx = np.concatenate(list(SMALL.enumerate(chunk=7)))
    assert len(allx) == SMALL.size == 4 * 2 * 2 * 2 * 3
    assert len(np.unique(SMALL.flat(allx))) == SMALL.size
    np.testing.assert_array_equal(SMALL.flat(allx), np.arange(SMALL.size))


def test_default_space_is_documented_and_enumerable() -> None:
    assert SPACE.size == int(np.prod([len(p.values) for p in SPACE.params]))
    assert "link_count" not in SPACE.names  # one device: links are not searched
    assert "link_count" in default_space(devices=8).names
    # array and vector parameters are on power-of-two grids (Phaze, docs/sources.md M2); core
    # counts also admit 3·2^k, so a budget can be filled with the count that fits
    for name in ("array_rows", "array_cols", "vector_cores", "vector_lanes"):
        assert SPACE.param(name).pow2
    assert {3, 6, 12, 24, 48} <= set(SPACE.param("tensor_cores").values)
    assert set(SPACE.param("tensor_cores").values) >= {2**k for k in range(7)}


def test_hbm_follows_the_stack_count() -> None:
    gen = HBM_GENERATIONS["hbm2e"]
    idx = SMALL.unflat(np.arange(SMALL.size))
    f = SMALL.fields(idx)
    np.testing.assert_allclose(f["hbm_bw_bytes_per_s"], f["hbm_stacks"] * gen.bw_bytes_per_s_per_stack)
    np.testing.assert_allclose(f["hbm_bytes"], f["hbm_stacks"] * gen.bytes_per_stack)
    hw = SMALL.config(idx[5])
    assert hw.hbm_bytes == hw.hbm_stacks * gen.bytes_per_stack


def test_sample_is_seeded_and_in_range() -> None:
    a = SPACE.sample(np.random.default_rng(7), 50)
    b = SPACE.sample(np.random.default_rng(7), 50)
    np.testing.assert_array_equal(a, b)
    assert (a >= 0).all() and (a < np.array(SPACE.shape)).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, SMALL.size - 1))
def test_neighbours_differ_in_one_parameter_by_one_step(pos: int) -> None:
    x = SMALL.unflat(np.array([pos]))[0]
    nb = SMALL.neighbors(x)
    assert len(nb) > 0
    for y in nb:
        diff = np.flatnonzero(y != x)
        assert len(diff) == 1
        j = diff[0]
        if not SMALL.params[j].categorical:
            assert abs(int(y[j]) - int(x[j])) == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, SPACE.size - 1))
def test_optuna_params_round_trip(pos: int) -> None:
    x = SPACE.unflat(np.array([pos]))[0]
    p = SPACE.to_optuna_params(x)
    dists = SPACE.optuna_distributions()
    assert set(p) == set(dists)
    for k, v in p.items():
        assert dists[k]._contains(dists[k].to_internal_repr(v))
    np.testing.assert_array_equal(SPACE.from_optuna_params(p), x)
    # physical units: what optuna-dashboard shows
    assert p["tensor_cores"] in SPACE.param("tensor_cores").values
    assert p["sram_per_core_mib"] * 2**20 in SPACE.param("sram_per_core_bytes").values
    q = SPACE.to_sampler_params(x)
    np.testing.assert_array_equal(SPACE.from_sampler_params(q), x)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, SPACE.size - 1), st.data())
def test_more_of_any_resource_never_costs_less_area_or_power(pos: int, data) -> None:
    """The monotonicity min_area_mm2 relies on, checked on the cost model."""
    x = SPACE.unflat(np.array([pos]))[0]
    j = data.draw(st.sampled_from([j for j, p in enumerate(SPACE.params) if not p.categorical]))
    if x[j] + 1 >= SPACE.shape[j]:
        return
    y = x.copy()
    y[j] += 1
    area, tdp = SPACE.area_tdp(np.stack([x, y]), TECH)
    assert area[1] >= area[0] and tdp[1] >= tdp[0]


@pytest.mark.parametrize("need", [0.0, 20e9, 60e9, 1e15])
@pytest.mark.parametrize("power", [None, 60.0])
def test_min_area_matches_brute_force(need: float, power: float | None) -> None:
    fast = SMALL.min_area_mm2(TECH, power_w=power, min_hbm_bytes=need)
    slow = SMALL.min_area_mm2_exhaustive(TECH, power_w=power, min_hbm_bytes=need)
    assert fast == slow or (math.isinf(fast) and math.isinf(slow))


def test_feasible_is_the_area_filter() -> None:
    idx = SMALL.all_indices()
    area, tdp = SMALL.area_tdp(idx, TECH)
    budget = float(np.median(area))
    np.testing.assert_array_equal(SMALL.feasible(idx, TECH, budget), area <= budget)
    np.testing.assert_array_equal(SMALL.feasible(idx, TECH, budget, power_w=float(np.median(tdp))),
                                  (area <= budget) & (tdp <= np.median(tdp)))
    got = SMALL.feasible_indices(TECH, budget, chunk=5)
    np.testing.assert_array_equal(SMALL.flat(got), np.flatnonzero(area <= budget))


def test_index_of_snaps_and_names_valid_values() -> None:
    hw = SMALL.config(np.array([2, 1, 1, 0, 2]))
    np.testing.assert_array_equal(SMALL.index_of(hw), [2, 1, 1, 0, 2])
    with pytest.raises(ConfigError, match="valid: 1, 2, 4, 8"):
        SMALL.index_of({"tensor_cores": 3})
    assert SMALL.index_of({"tensor_cores": 3}, snap=True)[0] in (1, 2)


def test_param_validation_names_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"Param\[tensor_cores\].values=\(4, 2\) must be increasing"):
        Param(name="tensor_cores", values=(4, 2))
    with pytest.raises(ConfigError, match="not a searchable field"):
        Param(name="dtype", values=("bf16",))
    with pytest.raises(ConfigError, match="valid: os, ws, is"):
        Param(name="dataflow", values=("xs",))
    with pytest.raises(ConfigError, match="out of range"):
        SMALL.flat(np.array([[9, 0, 0, 0, 0]]))
