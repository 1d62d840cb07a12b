"""Fused attention on the template (cost_models/attention.py): the tensor, vector and HBM
terms, causal skipping, tiling re-reads, and the kernel rates docs/cost-models.md quotes.

Run ``python tests/cost_models/test_attention.py`` to print the rates table."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cost_models import attention as fa
from cost_models.designs import DesignBatch
from cost_models.opcost import op_costs
from cost_models.presets import load_preset
from cost_models.technology import load_technology
from dse.types import HardwareConfig
from workloads.builder import ForwardBuilder
from workloads.training import expand


def attention_graph(s: int, d: int, bh: int, *, causal: bool):
    b = ForwardBuilder("att")
    q, k, v = (b.gemm(x, None, m=s, k=64, n=bh * d) for x in ("q", "k", "v"))
    a = b.attention("att", q, k, v, batch=bh, heads=1, kv_heads=1, seq_q=s, seq_kv=s,
                    head_dim=d, causal=causal)
    b.loss("loss", a, key="cross_entropy", elements=16, rows=1)
    return expand(b, optimizer="sgd")


def att_costs(hw: HardwareConfig, s: int, d: int, bh: int, *, causal: bool):
    g = attention_graph(s, d, bh, causal=causal)
    oc = op_costs(g, DesignBatch.from_configs([hw]), load_technology(hw.tech_node_nm))
    j = {op.phase: i for i, op in enumerate(g.ops) if op.kind == "attention"}
    return g, oc, j["fwd"], j["bwd_data"]


def kernel_rates(preset: str, s: int, d: int, bh: int, causal: bool) -> tuple[float, float]:
    """(forward, backward) TFLOP/s in FlashAttention's convention."""
    hw = load_preset(preset).hardware
    _, oc, f, b = att_costs(hw, s, d, bh, causal=causal)
    flop = 4.0 * s * s * d * bh * (0.5 if causal else 1.0)
    return flop / oc.latency_s[0, f] / 1e12, 2.5 * flop / oc.latency_s[0, b] / 1e12


def _hw(**kw) -> HardwareConfig:
    base = {"name": "t", "tensor_cores": 8, "array_rows": 64, "array_cols": 64,
            "vector_cores": 8, "vector_lanes": 128, "freq_hz": 1e9,
            "hbm_bw_bytes_per_s": 2e12, "hbm_bytes": 8e10,
            "sram_per_core_bytes": float(1 << 20), "global_buffer_bytes": float(32 << 20)}
    base.update(kw)
    return HardwareConfig(**base)


def test_tensor_and_vector_times_add_and_causal_halves_them():
    hw = _hw()
    g, oc, f, b = att_costs(hw, 2048, 128, 32, causal=False)
    gc, occ, fc, bc = att_costs(hw, 2048, 128, 32, causal=True)
    # compute-bound (vector, then tensor) on this design: causal computes s(s+1)/2 of s²
    # scores
    assert oc.bound_code[0, f] == occ.bound_code[0, fc] == 1   # BOUNDS[1] == "vector"
    ratio = occ.latency_s[0, fc] / oc.latency_s[0, f]
    assert ratio == pytest.approx(0.5 * (2049 / 2048), rel=0.01)
    # vector time: 10 cycles per score on 8·128 lanes, added to the tensor time
    op = g.ops[f]
    t_vc = math.ceil(op.elements / (8 * 128)) * 10 / 1e9
    assert oc.compute_s[0, f] > t_vc
    vec_free = dataclasses.replace(hw, vector_lanes=4096)
    _, oc2, f2, b2 = att_costs(vec_free, 2048, 128, 32, causal=False)
    t_vc2 = math.ceil(op.elements / (8 * 4096)) * 10 / 1e9
    assert oc.compute_s[0, f] - t_vc == pytest.approx(oc2.compute_s[0, f2] - t_vc2, rel=1e-9)
    # the backward: five GEMMs against two (tensor-bound), 12 vector cycles against 10
    assert oc2.bound_code[0, f2] == 0
    assert 2.0 < oc2.latency_s[0, b2] / oc2.latency_s[0, f2] < 3.0
    assert 1.2 < oc.latency_s[0, b] / oc.latency_s[0, f] < 2.5   # (2.5·T + 1.2·V)/(T + V)


def test_small_sram_re_streams_k_and_v_from_hbm():
    big = _hw()
    small = _hw(sram_per_core_bytes=float(16 << 10), global_buffer_bytes=0.0)
    s, d, bh = 4096, 128, 16
    _, ob, fb, _ = att_costs(big, s, d, bh, causal=False)
    g, os_, fs, _ = att_costs(small, s, d, bh, causal=False)
    op = g.ops[fs]
    io = op.bytes_in + op.bytes_out
    assert ob.hbm_bytes[0, fb] == pytest.approx(io)    # one pass: K, V stay on chip
    br = fa.tile_rows_scalar(d, 16 << 10, 2.0, s)        # 16 KiB / (128·10 B) = 12 rows
    assert br == 12
    blocks = math.ceil(s / br)
    want = io + (blocks - 1) * bh * 2 * s * d * 2
    assert os_.hbm_bytes[0, fs] == pytest.approx(want, rel=1e-12)
    assert os_.latency_s[0, fs] > ob.latency_s[0, fb]
    # vectorized == scalar helpers
    assert float(fa.hbm_bytes(s, d, s, bh, io, True, 2.0, br, 1.0, 8, 0.0)) == \
        pytest.approx(fa.hbm_bytes_scalar(s, d, s, bh, io, True, 2.0, br, 1.0, 8, 0.0))
    assert int(fa.tile_rows(d, 16 << 10, 2.0, s)) == br


def test_memory_keeps_no_scores():
    from workloads import build, model_spec

    spec = model_spec("llama3-8b")
    fused = build(spec, batch=1, seq=8192)
    unfused = build(dataclasses.replace(spec, attention="unfused"), batch=1, seq=8192)
    a, s = spec.heads, 8192
    diff = unfused.meta["stash_bytes_per_layer"] - fused.meta["stash_bytes_per_layer"]
    # unfused, no dropout: the softmax output (2as²b) only; fused adds the LSE (4asb)
    assert diff == pytest.approx(2 * a * s * s - 4 * a * s, rel=1e-12)


@pytest.mark.parametrize("preset,lo,hi", [("a100", 100, 312), ("h100", 300, 989)])
def test_kernel_rates_within_the_published_range(preset, lo, hi):
    """Between FlashAttention-2's lowest published utilisation and the dense peak."""
    for causal in (False, True):
        fwd, bwd = kernel_rates(preset, 4096, 128, 256, causal)
        assert lo < fwd < hi and lo < bwd < hi


if __name__ == "__main__":  # the table quoted in docs/cost-models.md §6
    for preset in ("a100", "h100"):
        for s in (2048, 4096, 8192):
            for causal in (False, True):
                f, b = kernel_rates(preset, s, 128, 256, causal)
                print(f"{preset} s={s} d=128 {'causal' if causal else 'full  '} "
                      f"fwd {f:6.0f} bwd {b:6.0f} TFLOP/s")

