"""DesignBatch: struct of arrays over HardwareConfig designs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.designs import HW_FIELDS, DesignBatch
from dse.errors import ConfigError
from dse.types import HardwareConfig
from tests.cost_models._graphs import random_hw


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_from_configs_round_trip(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    hws = [random_hw(rng, f"h{i}") for i in range(n)]
    b = DesignBatch.from_configs(hws)
    assert len(b) == n
    assert [b.config(i) for i in range(n)] == hws
    assert list(b.configs()) == hws
    for f in HW_FIELDS:
        assert getattr(b, f).shape == (n,)
    assert b.macs.tolist() == [h.macs for h in hws]
    assert b.peak_flop_per_s.tolist() == pytest.approx([h.peak_flop_per_s for h in hws])
    assert b.sram_bytes.tolist() == pytest.approx([h.sram_bytes for h in hws])
    assert b.dtype_bytes.tolist() == [h.dtype_bytes for h in hws]
    sub = b.subset(np.arange(n) % 2 == 0)
    assert [sub.config(i) for i in range(len(sub))] == hws[::2]


def test_arrays_are_read_only() -> None:
    b = DesignBatch.from_configs([random_hw(np.random.default_rng(0))])
    with pytest.raises(ValueError):
        b.tensor_cores[0] = 5


def test_from_arrays_defaults_broadcast_and_validation() -> None:
    b = DesignBatch.from_arrays(tensor_cores=[1, 2, 4], array_rows=128, array_cols=64,
                                vector_cores=1, vector_lanes=128, freq_hz=1e9,
                                hbm_bw_bytes_per_s=1e12, hbm_bytes=16e9)
    defaults = HardwareConfig(name="x", tensor_cores=1, array_rows=1, array_cols=1,
                              vector_cores=1, vector_lanes=1, freq_hz=1, hbm_bw_bytes_per_s=1,
                              hbm_bytes=1)
    assert b.config(2) == dataclasses.replace(
        defaults, name="design2", tensor_cores=4, array_rows=128, array_cols=64,
        vector_lanes=128, freq_hz=1e9, hbm_bw_bytes_per_s=1e12, hbm_bytes=16e9)
    with pytest.raises(ConfigError, match=r"DesignBatch\[1\].tensor_cores=0"):
        DesignBatch.from_arrays(tensor_cores=[1, 0], array_rows=8, array_cols=8,
                                vector_cores=1, vector_lanes=8, freq_hz=1e9,
                                hbm_bw_bytes_per_s=1e12, hbm_bytes=1e9)
    with pytest.raises(ConfigError, match="dataflow='xs'"):
        DesignBatch.from_arrays(tensor_cores=1, array_rows=8, array_cols=8, vector_cores=1,
                                vector_lanes=8, freq_hz=1e9, hbm_bw_bytes_per_s=1e12,
                                hbm_bytes=1e9, dataflow="xs")
    with pytest.raises(ConfigError, match="missing required field 'freq_hz'"):
        DesignBatch.from_arrays(tensor_cores=1, array_rows=8, array_cols=8, vector_cores=1,
                                vector_lanes=8, hbm_bw_bytes_per_s=1e12, hbm_bytes=1e9)
    with pytest.raises(ConfigError, match="unknown field 'cores'"):
        DesignBatch.from_arrays(cores=1)
    with pytest.raises(ConfigError, match="at least one"):
        DesignBatch.from_configs([])
    with pytest.raises(ConfigError, match="out of range"):
        b.config(3)
