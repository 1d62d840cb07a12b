"""Single-device evaluation: vectorized == scalar, roofline bounds, monotonicity in every
resource, multiplicity, communication, fusion and spill rules, critical path."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cost_models import systolic
from cost_models.designs import DesignBatch
from cost_models.evaluate import BOUNDS, device_step, evaluate_device, op_costs
from cost_models.technology import load_technology
from cost_models.vector import pe_cycles
from dse.errors import ConfigError
from dse.types import Graph, HardwareConfig, Operator
from tests.cost_models._graphs import random_graph, random_hw

TECH = load_technology(7)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _comm_times(rng: np.random.Generator, g: Graph) -> dict[str, float]:
    return {op.name: float(rng.uniform(0, 2e-3)) for op in g.ops if op.is_comm}


def _hw(**kw) -> HardwareConfig:
    base = {"name": "t", "tensor_cores": 2, "array_rows": 32, "array_cols": 32, "vector_cores": 1,
                "vector_lanes": 32, "freq_hz": 1e9, "hbm_bw_bytes_per_s": 1e11, "hbm_bytes": 8e9,
                "sram_per_core_bytes": 1 << 20, "global_buffer_bytes": 4 << 20, "link_count": 0}
    base.update(kw)
    return HardwareConfig(**base)


# ---------------------------------------------------------------- vectorized == scalar
@FAST
@given(SEEDS)
def test_device_step_equals_evaluate_device(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = random_graph(rng, int(rng.integers(1, 14)))
    hws = [random_hw(rng, f"d{i}") for i in range(3)]
    comm = _comm_times(rng, g)
    step = device_step(g, DesignBatch.from_configs(hws), TECH, comm)
    for i, hw in enumerate(hws):
        ref = evaluate_device(g, hw, TECH, comm)
        assert step.makespan_s[i] == pytest.approx(ref.makespan_s, rel=1e-12, abs=1e-300)
        assert step.energy_j[i] == pytest.approx(ref.energy_j, rel=1e-12)
        for j, rec in enumerate(ref.records):
            a = int(step.level[i, j])
            assert a == rec.level
            assert step.costs.latency_levels_s[i, j, a] == pytest.approx(rec.latency_s,
                                                                          rel=1e-12)
            assert step.costs.energy_levels_j[i, j, a] == pytest.approx(rec.energy_j,
                                                                         rel=1e-12)
            assert BOUNDS[step.costs.bound_levels[i, j, a]] == rec.bound
            assert step.costs.unit[j] == rec.unit
            assert step.start_s[i, j] == pytest.approx(rec.start_s, rel=1e-12, abs=1e-300)


def test_scalar_gemm_cycles_match_systolic_reference() -> None:
    """The scalar path uses SCALE-Sim's fold walker; on one core it is compute_cycles."""
    g = Graph(name="one", ops=(Operator(name="g", kind="gemm", phase="fwd", m=100, k=70,
                                        n=130, flop=2.0 * 100 * 70 * 130),))
    hw = _hw(tensor_cores=1, array_rows=16, array_cols=8, dataflow="is",
             hbm_bw_bytes_per_s=1e15, global_buffer_bw_bytes_per_cycle=1e6)
    rec = evaluate_device(g, hw, TECH).records[0]
    assert rec.compute_s * hw.freq_hz == pytest.approx(
        systolic.compute_cycles(100, 70, 130, 16, 8, "is"))
    assert rec.bound == "tensor"


# ---------------------------------------------------------------- roofline lower bounds
@FAST
@given(SEEDS)
def test_latency_at_least_roofline(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = random_graph(rng, int(rng.integers(1, 14)), comm=False)
    hw = random_hw(rng)
    oc = op_costs(g, DesignBatch.from_configs([hw]), TECH)
    lat = oc.latency_s[0]
    gemm_flop = hbm_compulsory = 0.0
    for j, op in enumerate(g.ops):
        if op.kind == "gemm":
            flop = 2.0 * op.m * op.k * op.n * op.batch
            compulsory = ((op.m * op.k + op.k * op.n + op.m * op.n) * hw.dtype_bytes
                          * op.batch)
            assert lat[j] >= flop / hw.peak_flop_per_s * (1 - 1e-12)
            gemm_flop += flop * op.count
        else:
            compulsory = op.bytes_out + op.bytes_weight
            pe = pe_cycles(op.vector_op, op.phase, kind=op.kind,
                           flop_per_element=op.flop / op.elements)
            assert lat[j] >= op.elements * pe / (
                hw.vector_cores * hw.vector_lanes * hw.freq_hz) * (1 - 1e-12)
        assert lat[j] >= compulsory / hw.hbm_bw_bytes_per_s * (1 - 1e-12)
        assert oc.hbm_bytes[0, j] >= compulsory * (1 - 1e-12)
        hbm_compulsory += compulsory * op.count
    step = device_step(g, DesignBatch.from_configs([hw]), TECH)
    bound = max(gemm_flop / hw.peak_flop_per_s, hbm_compulsory / hw.hbm_bw_bytes_per_s)
    assert step.makespan_s[0] >= bound * (1 - 1e-12)
    # and no longer than running everything one after the other
    assert step.makespan_s[0] <= (oc.latency_s[0] * oc.count).sum() * (1 + 1e-12)


# ---------------------------------------------------------------- monotonicity
_MORE = {
    "hbm_bw_bytes_per_s": lambda hw: {"hbm_bw_bytes_per_s": hw.hbm_bw_bytes_per_s * 1.7},
    "sram_per_core_bytes": lambda hw: {"sram_per_core_bytes": hw.sram_per_core_bytes * 4},
    "global_buffer_bytes": lambda hw: {"global_buffer_bytes": hw.global_buffer_bytes
                                       + (1 << 22)},
    "global_buffer_bw": lambda hw: {"global_buffer_bw_bytes_per_cycle":
                                    hw.global_buffer_bw_bytes_per_cycle * 2},
    "vector_lanes": lambda hw: {"vector_lanes": hw.vector_lanes * 2},
    "vector_cores": lambda hw: {"vector_cores": hw.vector_cores + 1},
    "tensor_cores+1": lambda hw: {"tensor_cores": hw.tensor_cores + 1},
    "tensor_cores*4": lambda hw: {"tensor_cores": hw.tensor_cores * 4},
}


@FAST
@given(SEEDS)
def test_more_resources_never_slower(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = random_graph(rng, int(rng.integers(2, 16)))
    hw = random_hw(rng)
    variants = [hw] + [dataclasses.replace(hw, **f(hw)) for f in _MORE.values()]
    step = device_step(g, DesignBatch.from_configs(variants), TECH, _comm_times(rng, g))
    base_lat = step.costs.latency_s[0]
    for i, name in enumerate(_MORE, start=1):
        assert step.makespan_s[i] <= step.makespan_s[0] * (1 + 1e-12), name
        assert np.all(step.costs.latency_s[i] <= base_lat * (1 + 1e-12)), name


def test_more_tensor_cores_speed_up_a_compute_bound_gemm() -> None:
    g = Graph(name="g", ops=(Operator(name="g", kind="gemm", phase="fwd", m=4096, k=4096,
                                      n=4096, flop=2.0 * 4096**3),))
    # output stationary: splitting m over the cores divides the folds, not the fold length
    hws = [_hw(tensor_cores=p, dataflow="os", hbm_bw_bytes_per_s=1e14,
               global_buffer_bw_bytes_per_cycle=1e6) for p in (1, 2, 4, 8)]
    t = device_step(g, DesignBatch.from_configs(hws), TECH).makespan_s
    assert np.all(np.diff(t) < 0)
    assert t[0] / t[3] == pytest.approx(8, rel=0.02)


# ---------------------------------------------------------------- multiplicity
def _block(prefix: str, count: int) -> tuple[list[Operator], list[tuple[str, str]]]:
    """entry GEMM -> (GEMM || vector op) -> exit vector op: single entry, single exit."""
    ops = [
        Operator(name=f"{prefix}in", kind="gemm", phase="fwd", m=256, k=512, n=256,
                 flop=2.0 * 256 * 512 * 256, bytes_out=2.0 * 256 * 256, count=count),
        Operator(name=f"{prefix}a", kind="gemm", phase="fwd", m=256, k=256, n=1024,
                 flop=2.0 * 256 * 256 * 1024, bytes_out=2.0 * 256 * 1024, count=count),
        Operator(name=f"{prefix}b", kind="activation", phase="fwd", vector_op="gelu",
                 elements=1 << 18, bytes_in=2.0 * (1 << 18), bytes_out=2.0 * (1 << 18),
                 count=count),
        Operator(name=f"{prefix}out", kind="elementwise", phase="fwd", vector_op="add",
                 elements=1 << 16, bytes_in=4.0 * (1 << 16), bytes_out=2.0 * (1 << 16),
                 count=count),
    ]
    edges = [(f"{prefix}in", f"{prefix}a"), (f"{prefix}in", f"{prefix}b"),
             (f"{prefix}a", f"{prefix}out"), (f"{prefix}b", f"{prefix}out")]
    return ops, edges


@pytest.mark.parametrize("count", [1, 3, 7])
def test_count_equals_back_to_back_repetitions(count: int) -> None:
    ops, edges = _block("", count)
    scaled = Graph(name="scaled", ops=tuple(ops), edges=tuple(edges))
    all_ops, all_edges = [], []
    for r in range(count):
        o, e = _block(f"r{r}.", 1)
        all_ops += o
        all_edges += e
        if r:
            all_edges.append((f"r{r - 1}.out", f"r{r}.in"))
    explicit = Graph(name="explicit", ops=tuple(all_ops), edges=tuple(all_edges))
    for hw in (_hw(), _hw(vector_lanes=4, tensor_cores=8), _hw(hbm_bw_bytes_per_s=1e9)):
        a = evaluate_device(scaled, hw, TECH)
        b = evaluate_device(explicit, hw, TECH)
        assert a.makespan_s == pytest.approx(b.makespan_s, rel=1e-12)
        assert a.energy_j == pytest.approx(b.energy_j, rel=1e-12)


# ---------------------------------------------------------------- communication
def _gemm_and_comm() -> Graph:
    return Graph(name="gc", ops=(
        Operator(name="g", kind="gemm", phase="fwd", m=1024, k=1024, n=1024,
                 flop=2.0 * 1024**3),
        Operator(name="ar", kind="collective", phase="comm", collective="all_reduce",
                 group="dp", comm_bytes=1e6),
        Operator(name="v", kind="elementwise", phase="fwd", vector_op="add", elements=1024,
                 bytes_in=4096.0, bytes_out=2048.0),
    ), edges=(("g", "v"), ("ar", "v")))


def test_comm_runs_on_the_link_in_parallel() -> None:
    g = _gemm_and_comm()
    hw = _hw(hbm_bw_bytes_per_s=1e13)
    t_gemm = evaluate_device(g, hw, TECH, {"ar": 0.0}).records[0].latency_s
    t_vec = evaluate_device(g, hw, TECH, {"ar": 0.0}).records[2].latency_s
    for t_comm in (0.1 * t_gemm, 3.0 * t_gemm):
        r = evaluate_device(g, hw, TECH, {"ar": t_comm})
        assert r.records[1].unit == "link" and r.records[1].bound == "link"
        assert r.makespan_s == pytest.approx(max(t_gemm, t_comm) + t_vec, rel=1e-12)
    as_array = np.array([0.0, 3.0 * t_gemm, 0.0])
    s = device_step(g, DesignBatch.from_configs([hw, hw]), TECH, np.stack([as_array] * 2))
    assert s.makespan_s == pytest.approx(3.0 * t_gemm + t_vec, rel=1e-12)
    assert s.busy_s["link"] == pytest.approx(3.0 * t_gemm)


def test_comm_time_errors() -> None:
    g = _gemm_and_comm()
    b = DesignBatch.from_configs([_hw()])
    with pytest.raises(ConfigError, match="not an operator"):
        op_costs(g, b, TECH, {"nope": 1.0})
    with pytest.raises(ConfigError, match="shape"):
        op_costs(g, b, TECH, np.zeros(7))
    with pytest.raises(ConfigError, match=">= 0"):
        op_costs(g, b, TECH, {"ar": -1.0})
    with pytest.raises(ConfigError, match="DesignBatch"):
        op_costs(g, _hw(), TECH)  # type: ignore[arg-type]


# ---------------------------------------------------------------- fusion and spill rules
def test_fusion_reads_a_fitting_gemm_output_from_sram() -> None:
    out_bytes = 2.0 * 512 * 512
    g = Graph(name="f", ops=(
        Operator(name="g", kind="gemm", phase="fwd", m=512, k=512, n=512,
                 flop=2.0 * 512**3, bytes_out=out_bytes),
        Operator(name="act", kind="activation", phase="fwd", vector_op="gelu",
                 elements=512 * 512, bytes_in=out_bytes, bytes_out=out_bytes),
    ), edges=(("g", "act"),))
    big = _hw(sram_per_core_bytes=1 << 20, global_buffer_bytes=8 << 20)
    small = _hw(sram_per_core_bytes=1 << 16, global_buffer_bytes=0)
    oc = op_costs(g, DesignBatch.from_configs([big, small]), TECH)
    assert oc.fused_bytes[0, 1] == out_bytes and oc.hbm_bytes[0, 1] == out_bytes
    assert oc.fused_bytes[1, 1] == 0 and oc.hbm_bytes[1, 1] == 2 * out_bytes


def test_two_pass_op_spills_when_input_exceeds_sram() -> None:
    e = 1 << 22
    g = Graph(name="s", ops=(Operator(name="sm", kind="softmax", phase="fwd",
                                      vector_op="softmax", elements=e, bytes_in=2.0 * e,
                                      bytes_out=2.0 * e),))
    fits = _hw(sram_per_core_bytes=8 << 20, global_buffer_bytes=0)
    spills = _hw(sram_per_core_bytes=1 << 20, global_buffer_bytes=0)
    oc = op_costs(g, DesignBatch.from_configs([fits, spills]), TECH)
    assert oc.hbm_bytes[0, 0] == 4.0 * e and oc.hbm_bytes[1, 0] == 6.0 * e


def test_a_row_wise_op_whose_row_fits_a_core_reads_its_input_once() -> None:
    """A softmax or norm kernel holds one row on chip while it reduces it (Megatron's fused
    softmax, apex's LayerNorm): a tensor larger than the SRAM is read once when a row
    (fp32) fits one core's SRAM, twice when it does not; vectorized and scalar agree."""
    from cost_models.opcost import op_costs_scalar

    e = 1 << 22

    def sm(row: int) -> Graph:
        return Graph(name="s", ops=(Operator(name="sm", kind="softmax", phase="fwd",
                                             vector_op="softmax", elements=e,
                                             bytes_in=2.0 * e, bytes_out=2.0 * e, row=row),))
    core = _hw(sram_per_core_bytes=1 << 16, global_buffer_bytes=0)  # 64 KiB: 16 Ki fp32
    for row, read in ((2048, 1), (1 << 14, 1), ((1 << 14) + 1, 2), (0, 2)):
        oc = op_costs(sm(row), DesignBatch.from_configs([core]), TECH)
        assert oc.hbm_bytes[0, 0] == (2.0 * read + 2.0) * e, row
        ref = op_costs_scalar(sm(row), core, TECH)[0]
        assert ref["hbm_bytes"][0] == oc.hbm_bytes[0, 0]


def test_unknown_vector_ops_are_listed_and_costed_by_default() -> None:
    g = Graph(name="u", ops=(Operator(name="x", kind="elementwise", phase="fwd",
                                      vector_op="frobnicate", elements=1 << 12),))
    hw = _hw(hbm_bw_bytes_per_s=1e15)
    r = evaluate_device(g, hw, TECH)
    assert r.unknown_vector_ops == ("frobnicate",)
    assert r.records[0].compute_s == pytest.approx((1 << 12) / 32 / hw.freq_hz)


# ---------------------------------------------------------------- explanation
def test_critical_path_and_breakdowns() -> None:
    g = Graph(name="cp", ops=(
        Operator(name="a", kind="gemm", phase="fwd", m=2048, k=2048, n=2048,
                 flop=2.0 * 2048**3),
        Operator(name="side", kind="elementwise", phase="fwd", vector_op="add", elements=8,
                 bytes_in=16.0, bytes_out=16.0),
        Operator(name="b", kind="gemm", phase="bwd_data", m=2048, k=2048, n=2048,
                 flop=2.0 * 2048**3),
    ), edges=(("a", "side"), ("a", "b")))
    r = evaluate_device(g, _hw(), TECH)
    assert r.critical_path == ("a", "b")
    assert r.schedule_chain == ("a", "b")
    assert r.records[1].mobility_s > 0
    assert set(r.breakdown["phase_s"]) == {"fwd", "bwd_data"}
    assert r.breakdown["unit_busy_s"]["tc"] == pytest.approx(
        r.records[0].duration_s + r.records[2].duration_s)
    assert 0 < r.utilization <= 1
    assert r.energy_j == pytest.approx(r.dynamic_energy_j + r.leakage_energy_j)
    assert r.dynamic_energy_j == pytest.approx(sum(x.energy_j * x.count for x in r.records))


def test_gemm_energy_counts_macs_sram_and_hbm() -> None:
    m = k = n = 256
    g = Graph(name="e", ops=(Operator(name="g", kind="gemm", phase="fwd", m=m, k=k, n=n,
                                      flop=2.0 * m * k * n),))
    hw = _hw(tensor_cores=1, array_rows=16, array_cols=16, dataflow="ws")
    rec = evaluate_device(g, hw, TECH).records[0]
    macs = m * k * n * TECH.mac_energy_j["bf16"]
    assert rec.energy_j > macs
    acc = systolic.sram_accesses(m, k, n, 16, 16, "ws")
    sram = ((acc["ifmap_sram_reads"] + acc["filter_sram_reads"]) * 2
            + acc["ofmap_sram_writes"] * 4) * TECH.sram_energy_j_per_byte(1 << 20)
    hbm = rec.hbm_bytes * TECH.hbm_energy_j_per_byte
    assert rec.energy_j >= macs + sram + hbm
    assert math.isfinite(rec.energy_j)


def test_gptj_on_presets_is_consistent() -> None:
    workloads = pytest.importorskip("workloads")
    from cost_models.presets import load_preset

    g = workloads.load("gptj", batch=2)
    hws = [load_preset(n).hardware for n in ("tpuv4", "a100", "h100")]
    step = device_step(g, DesignBatch.from_configs(hws), TECH)
    for i, hw in enumerate(hws):
        ref = evaluate_device(g, hw, TECH)
        assert step.makespan_s[i] == pytest.approx(ref.makespan_s, rel=1e-12)
        assert 0.3 < ref.utilization <= 1.0
        assert ref.critical_path and ref.critical_path[0] == "embed.word"
    # H100 has 3.2x A100's peak and 1.6x its HBM bandwidth: faster, by less than 3.2x
    assert 1.0 < step.makespan_s[1] / step.makespan_s[2] < 3.3
