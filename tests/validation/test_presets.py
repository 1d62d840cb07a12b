"""Hardware presets against published numbers, preset files, and `dse hardware`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cost_models.presets import (
    HARDWARE_SHOW_KEYS,
    hardware_dict,
    load_preset,
    preset_names,
    preset_to_mapping,
    save_preset,
)
from dse.cli import main
from dse.errors import ConfigError
from dse.types import HardwareConfig

# Published dense bf16 peaks (acceptance: within 1%), docs/sources.md S1.
PUBLISHED_PEAK_TFLOPS = {"tpuv3": 123.0, "tpuv4": 275.0, "tpuv5e": 197.0, "a100": 312.0,
                         "h100": 989.4}
# Published HBM bandwidths (acceptance: exact), docs/sources.md S1.
PUBLISHED_HBM_GBPS = {"tpuv2": 700, "tpuv3": 900, "tpuv4": 1200, "tpuv5e": 819, "a100": 2039,
                      "h100": 3350}
# NVDLA primer table (nvdla/doc doc/primer.rst), synthesis area at 16 nm incl. memories.
NVDLA_AREA_16NM = {"nvdla-large": 3.3, "nvdla-small": 0.55}


def test_all_presets_listed() -> None:
    assert preset_names() == ["a100", "h100", "h100-fp8", "h200", "h800", "h800-fp8",
                              "nvdla-large", "nvdla-small", "tpuv2", "tpuv3", "tpuv4",
                              "tpuv5e"]


def test_fp8_and_h200_presets_reproduce_the_datasheets() -> None:
    fp8 = load_preset("h100-fp8").hardware
    bf16 = load_preset("h100").hardware
    assert fp8.dtype == "fp8" and fp8.dtype_bytes == 1
    assert fp8.peak_flop_per_s / 1e12 == pytest.approx(1978.9, rel=0.001)   # dense FP8
    assert fp8.peak_flop_per_s == pytest.approx(2 * bf16.peak_flop_per_s)
    h200 = load_preset("h200").hardware
    assert (h200.hbm_bw_bytes_per_s, h200.hbm_bytes) == (4.8e12, 141e9)
    assert h200.peak_flop_per_s == bf16.peak_flop_per_s


def test_h800_is_an_h100_with_nvlink_cut_to_400_gb_s() -> None:
    h800, h100 = load_preset("h800"), load_preset("h100")
    assert h800.hardware.peak_flop_per_s == h100.hardware.peak_flop_per_s
    assert h800.hardware.hbm_bw_bytes_per_s == h100.hardware.hbm_bw_bytes_per_s
    # 400 GB/s bidirectional aggregate = 8 links x 25 GB/s per direction x 2
    assert 2 * h800.hardware.link_count * h800.hardware.link_bw_bytes_per_s == 400e9
    assert h800.system.intra_node_bw_bytes_per_s == 200e9
    assert h800.system.inter_node_bw_bytes_per_s == h100.system.inter_node_bw_bytes_per_s \
        == 50e9


def test_h800_fp8_is_the_h800_with_the_h100_fp8_tensor_cores() -> None:
    import dataclasses

    f8, h800, h100f8 = (load_preset(n) for n in ("h800-fp8", "h800", "h100-fp8"))
    assert f8.system == dataclasses.replace(h800.system)
    for fld in ("tensor_cores", "array_rows", "array_cols", "dtype", "freq_hz",
                "matmul_efficiency", "matmul_efficiency_16bit", "peak_flop_per_s"):
        assert getattr(f8.hardware, fld) == getattr(h100f8.hardware, fld), fld
    for fld in ("link_count", "link_bw_bytes_per_s", "hbm_bytes", "hbm_bw_bytes_per_s"):
        assert getattr(f8.hardware, fld) == getattr(h800.hardware, fld), fld


def test_fp8_gemms_speed_up_training_less_than_twofold() -> None:
    """FP8 doubles the tensor rate; attention's softmax, vector ops and communication do
    not speed up, so a step gains less than 2x."""
    from cost_models.technology import load_technology
    from dse.types import ParallelPlan
    from search.trainstep import evaluate_training
    from workloads import model_spec

    spec = model_spec("llama3-8b")
    plan = ParallelPlan(tp=8, global_batch=8, sequence_parallel=True)
    t = {}
    for name in ("h100", "h100-fp8"):
        p = load_preset(name)
        t[name] = evaluate_training(spec, p.hardware, p.system, plan,
                                    load_technology(p.hardware.tech_node_nm)).step_time_s
    assert t["h100"] / 2 < t["h100-fp8"] < t["h100"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PEAK_TFLOPS))
def test_peak_reproduces_published_dense_bf16(name: str) -> None:
    hw = load_preset(name).hardware
    assert hw.dtype == "bf16"
    assert hw.peak_flop_per_s / 1e12 == pytest.approx(PUBLISHED_PEAK_TFLOPS[name], rel=0.01)
    assert load_preset(name).published["peak_flop_per_s"] / 1e12 == pytest.approx(
        PUBLISHED_PEAK_TFLOPS[name])


@pytest.mark.parametrize("name", sorted(PUBLISHED_HBM_GBPS))
def test_hbm_bandwidth_is_exact(name: str) -> None:
    p = load_preset(name)
    assert p.hardware.hbm_bw_bytes_per_s == PUBLISHED_HBM_GBPS[name] * 1e9
    assert p.published["hbm_bw_bytes_per_s"] == p.hardware.hbm_bw_bytes_per_s


@pytest.mark.parametrize("name", sorted(NVDLA_AREA_16NM))
def test_nvdla_area_within_30_percent_of_primer(name: str) -> None:
    p = load_preset(name)
    assert p.hardware.dtype == "int8" and p.hardware.tech_node_nm == 16
    d = hardware_dict(p.hardware)
    core = d["area_breakdown_mm2"]["core"]   # synthesis area: no layout overhead, no DRAM PHY
    assert core == pytest.approx(NVDLA_AREA_16NM[name], rel=0.30)
    assert p.published["core_area_mm2"] == NVDLA_AREA_16NM[name]


def test_nvdla_configurations_match_the_spec_files() -> None:
    large, small = load_preset("nvdla-large").hardware, load_preset("nvdla-small").hardware
    assert (large.array_rows, large.array_cols, large.macs) == (64, 32, 2048)
    assert (small.array_rows, small.array_cols, small.macs) == (8, 8, 64)
    assert large.sram_per_core_bytes == 16 * 64 * 512      # CBUF banks x width x depth
    assert small.sram_per_core_bytes == 32 * 8 * 512


def test_gpu_systems_are_dgx_nodes() -> None:
    a100, h100 = load_preset("a100"), load_preset("h100")
    for p, nvlink, ib in ((a100, 300e9, 25e9), (h100, 450e9, 50e9)):
        assert p.system.devices_per_node == 8
        assert p.system.intra_node_bw_bytes_per_s == nvlink
        assert p.system.inter_node_bw_bytes_per_s == ib
        assert p.hardware.link_count * p.hardware.link_bw_bytes_per_s == nvlink
    assert a100.hardware.tensor_cores == 432 and h100.hardware.tensor_cores == 528


@pytest.mark.parametrize("name", ["tpuv2", "tpuv3", "tpuv4", "tpuv5e"])
def test_tpu_systems_are_tori(name: str) -> None:
    p = load_preset(name)
    assert p.system.intra_node_topology.startswith("torus")
    n = 1
    for x in p.system.torus_dims:
        n *= x
    assert n == p.system.devices_per_node
    assert p.system.intra_node_bw_bytes_per_s == pytest.approx(
        p.hardware.link_count * p.hardware.link_bw_bytes_per_s)


@pytest.mark.parametrize("name", preset_names())
def test_modelled_area_and_tdp_are_plausible(name: str) -> None:
    """Modelled values are positive and within a factor of three of the published ones
    (the documented deviations are in docs/cost-models.md)."""
    p = load_preset(name)
    d = hardware_dict(p.hardware)
    pub = p.published
    area_ref = pub.get("die_area_mm2") or pub.get("die_area_mm2_upper_bound")
    if area_ref:
        assert area_ref / 3 < d["area_mm2"] < area_ref * 3
    power_ref = pub.get("tdp_w") or pub.get("power_measured_max_w")
    if power_ref:
        assert power_ref / 3 < d["tdp_w"] < power_ref * 3
    assert len(p.sources) >= 2 and p.description


@pytest.mark.parametrize("name", preset_names())
def test_round_trip_through_yaml_and_json(name: str, tmp_path) -> None:
    p = load_preset(name)
    for suffix in (".yaml", ".json"):
        path = save_preset(p, tmp_path / f"{name}{suffix}")
        q = load_preset(str(path))
        assert q.hardware == p.hardware and q.system == p.system
        assert dict(q.published) == dict(p.published)
    # a bare HardwareConfig mapping is a valid hardware file too
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(dataclasses.asdict(p.hardware)))
    assert load_preset(str(bare)).hardware == p.hardware
    assert preset_to_mapping(p)["hardware"]["name"] == p.hardware.name


def test_bad_preset_inputs(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown hardware preset 'tpu9'; valid: a100"):
        load_preset("tpu9")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hardware:\n  name: x\n  tensor_cores: 0\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_preset(str(bad))
    bad.write_text("hardware: {name: x, tensor_cores: 1, array_rows: 8, array_cols: 8,"
                   " vector_cores: 1, vector_lanes: 8, freq_hz: 1.0e+9,"
                   " hbm_bw_bytes_per_s: 1.0e+9, hbm_bytes: 1.0e+9, dataflow: zz}\n")
    with pytest.raises(ConfigError, match="dataflow='zz' is not valid; choose one of os, ws"):
        load_preset(str(bad))
    bad.write_text("hardware: {}\nextra: 1\n")
    with pytest.raises(ConfigError, match="unknown top-level key 'extra'"):
        load_preset(str(bad))


def test_hardware_dict_contract_keys() -> None:
    hw = load_preset("tpuv4").hardware
    d = hardware_dict(hw)
    assert list(d)[:len(HARDWARE_SHOW_KEYS)] == list(HARDWARE_SHOW_KEYS)
    for f in dataclasses.fields(HardwareConfig):
        assert f.name in d
    assert d["sram_bytes"] == hw.sram_bytes and d["peak_flop_per_s"] == hw.peak_flop_per_s


def test_cli_hardware_show_and_list(capsys, tmp_path) -> None:
    assert main(["hardware", "show", "h100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in HARDWARE_SHOW_KEYS:
        assert key in d
    assert d["published"]["tdp_w"] == 700 and d["system"]["devices_per_node"] == 8
    path = tmp_path / "h100.json"
    path.write_text(json.dumps(d))
    assert main(["hardware", "show", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["area_mm2"] == d["area_mm2"]
    assert main(["hardware", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["hardware"]
    assert [r["name"] for r in rows] == preset_names()
    assert main(["hardware", "show", "tpuv4"]) == 0
    assert "published" in capsys.readouterr().out
    assert main(["hardware", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid: a100" in err
