"""Tests of cost_models.network against the textbook alpha-beta forms (NCCL PERFORMANCE.md)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cost_models.network import (
    GroupPlacement,
    collective_time_s,
    collective_time_scalar_s,
    comm_time_s,
    group_collective_time_s,
    group_placement,
    p2p_time_s,
    torus_shape,
)
from dse.errors import ConfigError
from dse.types import Graph, Operator, ParallelPlan, SystemConfig

S, B, A = 3.2e9, 150e9, 4e-6


@pytest.mark.parametrize("n", [2, 3, 8, 64, 1000])
def test_ring_all_reduce_is_textbook(n):
    t = collective_time_s("all_reduce", S, n, B, A, "ring")
    assert t == pytest.approx(2 * (n - 1) / n * S / B + 2 * (n - 1) * A, rel=1e-12)


@pytest.mark.parametrize("coll", ["reduce_scatter", "all_gather"])
@pytest.mark.parametrize("n", [2, 5, 16])
def test_ring_reduce_scatter_all_gather_are_textbook(coll, n):
    t = collective_time_s(coll, S, n, B, A, "ring")
    assert t == pytest.approx((n - 1) / n * S / B + (n - 1) * A, rel=1e-12)


def test_all_reduce_is_reduce_scatter_plus_all_gather_on_every_topology():
    for topo in ("ring", "torus2d", "torus3d", "fully_connected"):
        n = 64
        ar = collective_time_s("all_reduce", S, n, B, A, topo)
        rs = collective_time_s("reduce_scatter", S, n, B, A, topo)
        ag = collective_time_s("all_gather", S, n, B, A, topo)
        assert ar == pytest.approx(rs + ag, rel=1e-12), topo


def test_switch_all_reduce_uses_tree_latency():
    n = 256
    t = collective_time_s("all_reduce", S, n, B, A, "switch")
    assert t == pytest.approx(2 * (n - 1) / n * S / B + 2 * math.log2(n) * A)


def test_torus_with_equal_dims_reaches_bandwidth_optimum():
    # Ying et al. 2018 2-D summation with rotated dimension order: bandwidth term
    # equals the optimal 2(n-1)/n * S/B for a square/cubic torus.
    for topo, n in (("torus2d", 256), ("torus3d", 64)):
        t = collective_time_s("all_reduce", S, n, B, 0.0, topo)
        assert t == pytest.approx(2 * (n - 1) / n * S / B, rel=1e-12)
    # an unequal torus is never better than the optimum
    t = collective_time_s("all_reduce", S, 32, B, 0.0, "torus2d")
    assert t >= 2 * 31 / 32 * S / B * (1 - 1e-12)


def test_torus_shape_prefers_cubes_and_uses_pod_dims():
    assert torus_shape(64, 3) == (4, 4, 4)
    assert torus_shape(32, 2) == (8, 4)
    assert torus_shape(32, 2, (16, 2)) == (16, 2)


def test_all_to_all():
    n = 16
    assert collective_time_s("all_to_all", S, n, B, 0.0, "switch") == pytest.approx(
        (n - 1) / n * S / B)
    # a ring is bisection bound: n*S/4 bytes over a bisection of B per direction
    assert collective_time_s("all_to_all", S, n, B, 0.0, "ring") == pytest.approx(
        n * S / (4 * B))


def test_p2p_and_trivial_cases():
    assert collective_time_s("p2p", S, 2, B, A) == pytest.approx(S / B + A)
    assert collective_time_s("all_reduce", S, 1, B, A) == 0.0
    assert collective_time_s("all_reduce", 0.0, 8, B, A) == 0.0


def test_bad_names_raise_config_error():
    with pytest.raises(ConfigError, match="choose one of"):
        collective_time_s("allreduce", S, 8, B, A)
    with pytest.raises(ConfigError, match="topology"):
        collective_time_s("all_reduce", S, 8, B, A, "mesh")


@settings(max_examples=60, deadline=None)
@given(coll=st.sampled_from(["all_reduce", "reduce_scatter", "all_gather", "all_to_all", "p2p"]),
       topo=st.sampled_from(["ring", "switch", "torus2d", "torus3d", "fully_connected"]),
       n=st.integers(1, 300), s=st.floats(0, 1e11), bw=st.floats(1e8, 1e13),
       lat=st.floats(0, 1e-4))
def test_vectorized_matches_scalar_and_is_monotone(coll, topo, n, s, bw, lat):
    v = collective_time_s(coll, np.array([s, 2 * s]), np.array([n, n]), np.array([bw, bw]),
                          np.array([lat, lat]), topo)
    ref = collective_time_scalar_s(coll, s, n, bw, lat, topo)
    assert v[0] == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert v[1] >= v[0]
    # more bandwidth never slows a collective
    assert collective_time_scalar_s(coll, s, n, 2 * bw, lat, topo) <= ref * (1 + 1e-12)


def test_group_placement_tp_innermost():
    sysc = SystemConfig(devices_per_node=8)
    plan = ParallelPlan(tp=8, pp=8, dp=16, global_batch=1536)
    assert group_placement("tp", plan, sysc) == GroupPlacement(group="tp", size=8,
                                                               per_node=8, nodes=1)
    assert group_placement("dp", plan, sysc) == GroupPlacement(group="dp", size=16,
                                                               per_node=1, nodes=16)
    assert group_placement("pp", plan, sysc).nodes == 8
    small = ParallelPlan(tp=2, dp=16, global_batch=32)
    assert group_placement("dp", small, sysc) == GroupPlacement(group="dp", size=16,
                                                                per_node=4, nodes=4)


def test_dp_intra_and_inter_groups_split_the_data_parallel_ranks():
    """A DLRM table's row shards sit on one node's dp ranks (``dp_intra``); their sums
    cross the nodes among the ranks of the same local index (``dp_inter``, one per node,
    each through its own NIC)."""
    sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=300e9,
                        intra_node_latency_s=0.0, inter_node_bw_bytes_per_s=25e9,
                        inter_node_latency_s=0.0)
    plan = ParallelPlan(dp=64, global_batch=71680)
    intra = group_placement("dp_intra", plan, sysc)
    inter = group_placement("dp_inter", plan, sysc)
    assert intra == GroupPlacement(group="dp_intra", size=8, per_node=8, nodes=1)
    assert inter == GroupPlacement(group="dp_inter", size=8, per_node=1, nodes=8)
    s = 71680 * 128 * 2.0
    # reduce-scatter of the node's partial sums over NVLink, then 1/8 of them all-to-all
    # across the 8 nodes: (n-1)/n of each buffer leaves its rank
    assert group_collective_time_s("reduce_scatter", s, intra, sysc) == pytest.approx(
        7 / 8 * s / 300e9)
    assert group_collective_time_s("all_to_all", s / 8, inter, sysc) == pytest.approx(
        7 / 8 * s / 8 / 25e9)
    one_node = ParallelPlan(dp=8, global_batch=8)
    assert group_placement("dp_inter", one_node, sysc).size == 1


def test_hierarchical_all_reduce_decomposition():
    sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=200e9,
                        intra_node_latency_s=0.0, inter_node_bw_bytes_per_s=25e9,
                        inter_node_latency_s=0.0)
    pl = GroupPlacement(group="dp", size=32, per_node=8, nodes=4)
    t = group_collective_time_s("all_reduce", S, pl, sysc)
    expect = 2 * (7 / 8) * S / 200e9 + 2 * (3 / 4) * (S / 8) / 25e9
    assert t == pytest.approx(expect)
    # a group inside one node only sees the intra-node fabric
    inside = GroupPlacement(group="tp", size=8, per_node=8, nodes=1)
    assert group_collective_time_s("all_reduce", S, inside, sysc) == pytest.approx(
        2 * 7 / 8 * S / 200e9)
    # hierarchy beats a flat ring over the slow NICs
    flat = collective_time_s("all_reduce", S, 32, 25e9, 0.0, "ring")
    assert t < flat


def test_p2p_crosses_nodes_only_when_stages_do():
    sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=200e9,
                        inter_node_bw_bytes_per_s=25e9, intra_node_latency_s=0.0,
                        inter_node_latency_s=0.0)
    inside = ParallelPlan(tp=2, pp=4, global_batch=4)
    across = ParallelPlan(tp=8, pp=4, global_batch=4)
    assert p2p_time_s(1e9, inside, sysc) == pytest.approx(1e9 / 200e9)
    assert p2p_time_s(1e9, across, sysc) == pytest.approx(1e9 / 25e9)
    assert p2p_time_s(1e9, ParallelPlan(), sysc) == 0.0


def test_comm_time_of_graph_ops():
    sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=200e9,
                        intra_node_latency_s=1e-6)
    ops = (
        Operator(name="mm", kind="gemm", phase="fwd", m=8, k=8, n=8, flop=1024.0),
        Operator(name="ar", kind="collective", phase="comm", collective="all_reduce",
                 group="tp", comm_bytes=1e8, count=4),
    )
    g = Graph(name="g", ops=ops, edges=(("mm", "ar"),))
    t = comm_time_s(g, sysc, ParallelPlan(tp=4, global_batch=1))
    assert t[0] == 0.0
    # default intra-node fabric is a switch: ring bandwidth, double-binary-tree latency
    assert t[1] == pytest.approx(2 * 3 / 4 * 1e8 / 200e9 + 2 * 2 * 1e-6)
