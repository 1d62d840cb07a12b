"""Operators that stay 16-bit on a sub-16-bit (fp8, int8) design: attention, weightless
GEMMs, the output head and the router run on the design's 16-bit form; the transformer
layers' weight GEMMs run at the design's own rate (cost_models/opcost.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import workloads
from cost_models.designs import DesignBatch
from cost_models.evaluate import device_step, evaluate_device
from cost_models.opcost import high_precision, op_costs, sixteen_bit
from cost_models.presets import load_preset
from cost_models.technology import load_technology

H100, H100_FP8 = load_preset("h100"), load_preset("h100-fp8")
TECH = load_technology(4)


def _gpt2(attention: str, batch: int = 1):
    spec = dataclasses.replace(workloads.model_spec("gpt2"), attention=attention, layers=2)
    return workloads.build(spec, batch=batch, seq=256)


def test_which_operators_stay_sixteen_bit():
    g = _gpt2("unfused")
    hp = {op.name for op, h in zip(g.ops, high_precision(g)) if h}
    assert hp == {"layer.attn.qk", "layer.attn.av", "layer.attn.qk.bwd_data_a",
                  "layer.attn.qk.bwd_data_b", "layer.attn.av.bwd_data_a",
                  "layer.attn.av.bwd_data_b", "head.logits", "head.logits.bwd_data",
                  "head.logits.bwd_weight"}
    fused = _gpt2("fused")
    assert {op.name for op, h in zip(fused.ops, high_precision(fused)) if h} == {
        "layer.attn.core", "layer.attn.core.bwd", "head.logits", "head.logits.bwd_data",
        "head.logits.bwd_weight"}
    moe = workloads.build(workloads.model_spec("mixtral-8x7b"), batch=1, seq=64,
                          layers=(0, 1), last_stage=False)
    assert {op.name for op, h in zip(moe.ops, high_precision(moe)) if h} >= {
        "layer.moe.router", "layer.moe.router.bwd_data", "layer.moe.router.bwd_weight"}


def test_the_sixteen_bit_form_of_an_fp8_h100_is_the_bf16_h100():
    d = DesignBatch.from_configs([H100_FP8.hardware, H100.hardware])
    v = sixteen_bit(d)
    assert v.dtype.tolist() == ["bf16", "bf16"]
    assert v.array_cols.tolist() == [H100.hardware.array_cols] * 2
    assert v.peak_flop_per_s[0] == pytest.approx(v.peak_flop_per_s[1])
    bf = DesignBatch.from_configs([H100.hardware])
    assert sixteen_bit(bf) is bf


def test_fp8_speeds_up_weight_gemms_only():
    g = _gpt2("fused", batch=16)
    lo = op_costs(g, DesignBatch.from_configs([H100_FP8.hardware]), TECH)
    hi = op_costs(g, DesignBatch.from_configs([H100.hardware]), TECH)
    hp = high_precision(g)
    for j, op in enumerate(g.ops):
        if op.kind == "attention" or (op.kind == "gemm" and hp[j]):
            assert lo.latency_s[0, j] == pytest.approx(hi.latency_s[0, j], rel=1e-12), op.name
        elif op.kind == "gemm":  # twice the MACs per cycle at the lower sustained FP8
            # fraction (MSMF 0.675 vs 0.753): faster, at most 2 x 0.675 / 0.753 = 1.79x
            ratio = hi.compute_s[0, j] / lo.compute_s[0, j]
            most = 2.0 * H100_FP8.hardware.matmul_efficiency / H100.hardware.matmul_efficiency
            assert 1.2 < ratio <= most + 1e-9, (op.name, ratio)


def test_sixteen_bit_gemms_of_an_fp8_design_run_at_its_16_bit_efficiency():
    """An FP8 design's bf16 GEMMs (attention, head) sustain ``matmul_efficiency_16bit``;
    0 keeps ``matmul_efficiency`` (the template's designs)."""
    import dataclasses

    hw = H100_FP8.hardware
    assert hw.matmul_efficiency_16bit == H100.hardware.matmul_efficiency
    d16 = sixteen_bit(DesignBatch.from_configs([hw]))
    assert d16.matmul_efficiency[0] == pytest.approx(H100.hardware.matmul_efficiency)
    same = dataclasses.replace(hw, matmul_efficiency_16bit=0.0)
    assert sixteen_bit(DesignBatch.from_configs([same])).matmul_efficiency[0] == \
        pytest.approx(hw.matmul_efficiency)


def test_scalar_reference_agrees_on_an_fp8_design():
    g = _gpt2("unfused")
    hw = H100_FP8.hardware
    step = device_step(g, DesignBatch.from_configs([hw]), TECH)
    ref = evaluate_device(g, hw, TECH)
    assert step.makespan_s[0] == pytest.approx(ref.makespan_s, rel=1e-12)
    assert step.energy_j[0] == pytest.approx(ref.energy_j, rel=1e-12)
    for j, rec in enumerate(ref.records):
        a = int(step.level[0, j])
        assert np.isclose(step.costs.latency_levels_s[0, j, a], rec.latency_s, rtol=1e-12)


def test_fp8_gemms_on_a_gpu_pay_transformer_engines_casts():
    """On an FP8 GPU each FP8 GEMM pays Transformer Engine's cast kernels: 4 B an element of
    its activation input forward (cast + transposed copy; 1 B after a norm, TE's
    LayerNormLinear), 4 B an element of its output gradient before the input-gradient GEMM,
    nothing for the weight-gradient GEMM; at the HBM's sustained bandwidth, on top of the
    GEMM. 16-bit GEMMs, bf16 designs and FP8 designs whose links and units are not a GPU's
    (``single_stream = 0``) pay nothing."""
    from cost_models.opcost import fp8_cast_bytes

    g = _gpt2("fused", batch=4)
    cast = fp8_cast_bytes(g)
    hp = high_precision(g)
    by = {op.name: j for j, op in enumerate(g.ops)}
    qkv, out, fc2 = (g.ops[by[n]] for n in ("layer.attn.qkv", "layer.attn.out", "layer.mlp.fc2"))
    assert cast[by["layer.attn.qkv"]] == 1.0 * qkv.m * qkv.k * qkv.batch   # after norm1
    assert cast[by["layer.attn.out"]] == 4.0 * out.m * out.k * out.batch
    bd = g.ops[by["layer.mlp.fc2.bwd_data"]]
    assert cast[by["layer.mlp.fc2.bwd_data"]] == 4.0 * bd.m * bd.k * bd.batch == \
        4.0 * fc2.m * fc2.n * fc2.batch                                       # dY of fc2
    assert cast[by["layer.mlp.fc2.bwd_weight"]] == 0.0
    gpu = H100_FP8.hardware
    chip = dataclasses.replace(gpu, single_stream=0)
    designs = DesignBatch.from_configs([gpu, chip])
    with_casts = op_costs(g, designs, TECH)
    bw = gpu.hbm_bw_bytes_per_s * gpu.hbm_efficiency
    for j, op in enumerate(g.ops):
        if op.kind != "gemm":
            continue
        want = cast[j] / bw if not hp[j] else 0.0
        added = with_casts.latency_s[0, j] - with_casts.latency_s[1, j]
        assert added == pytest.approx(want, rel=1e-9, abs=1e-15), op.name
    extra = with_casts.hbm_bytes[0] - with_casts.hbm_bytes[1]
    assert extra.sum() == pytest.approx(float(cast[~hp].sum()), rel=1e-9)
    assert float(cast[~hp].sum()) > 0
    bf16 = op_costs(g, DesignBatch.from_configs([H100.hardware]), TECH)
    gemms = [j for j, op in enumerate(g.ops) if op.kind == "gemm"]
    assert bf16.compute_s[0, gemms].sum() > with_casts.compute_s[0, gemms].sum()
