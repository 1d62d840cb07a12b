"""Vector-unit cycle table (WHAM, docs/sources.md M3 and M7)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.vector import (
    ADAM_CYCLES_PER_PARAM,
    DEFAULT_BWD_CYCLES,
    DEFAULT_FWD_CYCLES,
    PE_CYCLES,
    pe_cycles,
    unknown_keys,
    vector_cycles,
)


def test_method_worked_examples() -> None:
    # docs/sources.md M7: ReLU over 1,048,576 elements, VC_PE=128, 2x1 cores -> 4096 cycles;
    # tanh forward (x27) -> 110,592
    assert vector_cycles(1_048_576, 256, "relu") == 4096
    assert vector_cycles(1_048_576, 256, "tanh") == 110_592


def test_wham_table_values() -> None:
    table = {"relu": 1, "add": 1, "mul": 1, "layernorm": 1, "dropout": 2, "softmax": 10,
             "sigmoid": 12, "silu": 12, "tanh": 27, "cross_entropy": 13, "sgd": 2,
             "embedding_scatter": 1, "sigmoid_bwd": 22}
    for key, cycles in table.items():
        assert pe_cycles(key) == cycles, key


def test_adam_counts_its_operations() -> None:
    # 14 operations per parameter: 12 ALU ops (1 cycle), one sqrt (15), one div (10)
    assert ADAM_CYCLES_PER_PARAM == 12 * 1 + 15 + 10 == 37


def test_every_workload_key_has_a_row() -> None:
    vector_ops = pytest.importorskip("workloads.vector_ops")
    missing = [k for k in vector_ops.VECTOR_OPS
               if k not in PE_CYCLES and k not in ("maxpool", "avgpool")]
    assert missing == []


def test_defaults_and_unknown_keys() -> None:
    assert pe_cycles("mystery") == DEFAULT_FWD_CYCLES
    assert pe_cycles("mystery", "bwd_weight") == DEFAULT_BWD_CYCLES
    assert pe_cycles("mystery_bwd") == DEFAULT_BWD_CYCLES
    assert pe_cycles("", kind="embedding_gather") == 0
    assert pe_cycles("maxpool", flop_per_element=8) == 8
    assert pe_cycles("avgpool", flop_per_element=0.2) == 1
    assert unknown_keys([("relu", "activation"), ("zz", "elementwise"), ("", "elementwise"),
                         ("", "embedding_gather")]) == ["<empty vector_op of elementwise>", "zz"]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10**9), st.integers(1, 10**5), st.sampled_from(sorted(PE_CYCLES)))
def test_cycles_formula_and_monotone_in_lanes(elements: int, lanes: int, key: str) -> None:
    c = vector_cycles(elements, lanes, key)
    assert c == -(-elements // lanes) * pe_cycles(key)
    assert vector_cycles(elements, lanes * 2, key) <= c
    assert np.all(vector_cycles(np.array([elements, elements]), np.array([lanes, 2 * lanes]),
                                key) == [c, vector_cycles(elements, 2 * lanes, key)])
