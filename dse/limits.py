"""The physical range of every number a user can give, in one place.

The CLI flags, hardware and system YAML/JSON, parallel plans and model configurations
(zoo YAML, HF ``config.json``, ONNX attributes) check their numbers here: finite, within
a range wide enough for any real or plausible machine and model, and named with its
reason when refused. Products computed from them (FLOPs, bytes, parameters) then stay far
below float64's range, so no cost model sees an overflow, a negative time or an infinity.

>>> check("--area", 400.0)
400.0
>>> check("--area", 1e30)
Traceback (most recent call last):
...
dse.errors.ConfigError: --area=1e+30 mm² is out of range: use 1e-06 to 100000 mm² (a 300 mm wafer is 70,686 mm²)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dse.errors import ConfigError

__all__ = ["RANGES", "Range", "check", "check_int"]


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    unit: str = ""
    why: str = ""
    integer: bool = False


_WAFER = "a 300 mm wafer is 70,686 mm²"
_MAX_DEVICES = 1 << 20

RANGES: dict[str, Range] = {
    # command-line flags
    "--area": Range(1e-6, 1e5, "mm²", _WAFER),
    "--power": Range(1e-6, 1e5, "W", "100 kW is beyond any single package"),
    "--devices": Range(1, _MAX_DEVICES, "", "the largest training clusters have ~10^5 "
                       "accelerators; 2^20 is the limit", True),
    "--budget": Range(1, 1e9, "designs", "more than any design space here holds", True),
    "--batch": Range(1, 1 << 24, "samples", "16 M samples per step", True),
    "--global-batch": Range(1, 1 << 24, "samples", "16 M samples per step", True),
    "--micro-batch": Range(1, 1 << 20, "samples", "", True),
    "--seq": Range(1, 1 << 24, "tokens", "16 M tokens per sample", True),
    "--tp": Range(1, _MAX_DEVICES, "", "", True),
    "--pp": Range(1, _MAX_DEVICES, "", "", True),
    "--dp": Range(1, _MAX_DEVICES, "", "", True),
    "--cp": Range(1, _MAX_DEVICES, "", "", True),
    "--ep": Range(1, _MAX_DEVICES, "", "", True),
    "--interleave": Range(1, 1024, "", "", True),
    "--top-k": Range(1, 10_000, "", "", True),
    "--top": Range(1, 1 << 20, "GEMMs", "more distinct GEMMs than any graph here has", True),
    "--jobs": Range(1, 1024, "processes", "", True),
    "--seed": Range(0, 2**32 - 1, "", "NumPy and Optuna seeds are 32-bit", True),
    "--port": Range(1, 65535, "", "a TCP port", True),
    "--wait": Range(0, 7 * 86400, "s", "one week", False),
    # hardware (HardwareConfig fields)
    "tensor_cores": Range(1, 1 << 20, "", "", True),
    "array_rows": Range(1, 1 << 14, "", "16,384 PEs per side", True),
    "array_cols": Range(1, 1 << 14, "", "16,384 PEs per side", True),
    "vector_cores": Range(1, 1 << 20, "", "", True),
    "vector_lanes": Range(1, 1 << 20, "", "", True),
    "hbm_stacks": Range(1, 256, "", "", True),
    "link_count": Range(0, 4096, "", "", True),
    "freq_hz": Range(1, 1e11, "Hz", "at most 100 GHz", False),
    "hbm_bw_bytes_per_s": Range(1e-3, 1e16, "B/s", "", False),
    "hbm_bytes": Range(1, 1e16, "B", "", False),
    "sram_per_core_bytes": Range(1, 1e13, "B", "", False),
    "global_buffer_bytes": Range(0, 1e13, "B", "", False),
    "global_buffer_bw_bytes_per_cycle": Range(1e-6, 1e9, "B/cycle", "", False),
    "link_bw_bytes_per_s": Range(0, 1e15, "B/s", "", False),
    "tech_node_nm": Range(3, 130, "nm", "the nodes the technology tables scale between "
                          "(cost_models/data/technology.yaml)", False),
    # system
    "devices_per_node": Range(1, _MAX_DEVICES, "", "", True),
    "intra_node_bw_bytes_per_s": Range(1e-3, 1e15, "B/s", "", False),
    "inter_node_bw_bytes_per_s": Range(1e-3, 1e15, "B/s", "", False),
    "intra_node_latency_s": Range(0, 1.0, "s", "", False),
    "inter_node_latency_s": Range(0, 1.0, "s", "", False),
    "torus_dim": Range(1, _MAX_DEVICES, "", "", True),
    # models (zoo YAML, HF config.json, ONNX)
    "layers": Range(1, 100_000, "", "", True),
    "hidden": Range(1, 1 << 20, "", "", True),
    "heads": Range(1, 1 << 16, "", "", True),
    "kv_heads": Range(1, 1 << 16, "", "", True),
    "ffn": Range(1, 1 << 22, "", "", True),
    "vocab": Range(1, 1 << 24, "", "", True),
    "max_positions": Range(1, 1 << 24, "", "", True),
    "experts": Range(1, 1 << 16, "", "", True),
    "experts_per_token": Range(0, 1 << 16, "", "", True),
    "shared_experts": Range(0, 1 << 10, "", "DeepSeek-V3 has 1, Qwen2-MoE 4", True),
    "expert_groups": Range(0, 1 << 16, "", "", True),
    "expert_groups_per_token": Range(0, 1 << 16, "", "", True),
    "first_k_dense": Range(0, 100_000, "", "at most the layers", True),
    "mtp_layers": Range(0, 64, "", "DeepSeek-V3 trains 1 multi-token-prediction module", True),
    "moe_ffn": Range(0, 1 << 22, "", "", True),
    "embed_proj": Range(0, 1 << 20, "", "a hidden width", True),
    "q_lora_rank": Range(0, 1 << 20, "", "a hidden width", True),
    "kv_lora_rank": Range(0, 1 << 20, "", "a hidden width", True),
    "head_dim": Range(0, 1 << 16, "", "", True),
    "rotary_dim": Range(0, 1 << 16, "", "", True),
    "qk_rope_head_dim": Range(0, 1 << 16, "", "", True),
    "v_head_dim": Range(0, 1 << 16, "", "", True),
    "type_vocab": Range(0, 1 << 24, "", "", True),
    "position_offset": Range(0, 1 << 24, "", "", True),
    "dropout": Range(0, 1, "", "a probability", False),
    "dimension": Range(1, 1 << 31, "", "a tensor dimension", True),
}


def _fmt(v: float) -> str:
    return f"{v:g}" if not float(v).is_integer() or abs(v) >= 1e15 else f"{int(v)}"


def check(name: str, value: Any, *, owner: str = "", rng: Range | None = None) -> Any:
    """``value`` when it is a finite number (an integer where the range wants one) in the
    range of ``name`` (:data:`RANGES`); else :class:`ConfigError` naming the range."""
    r = rng if rng is not None else RANGES[name]
    label = f"{owner}.{name}" if owner else name
    unit = f" {r.unit}" if r.unit else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(
            value, "__float__"):
        raise ConfigError(f"{label}={value!r} must be a number")
    try:
        f = float(value)
    except (OverflowError, ValueError, TypeError):
        raise ConfigError(f"{label}={value!r} is out of range: use {_fmt(r.lo)} to "
                          f"{_fmt(r.hi)}{unit}" + (f" ({r.why})" if r.why else "")) from None
    if not math.isfinite(f):
        raise ConfigError(f"{label}={value!r} must be a finite number")
    if r.integer and not f.is_integer():
        raise ConfigError(f"{label}={value!r} must be an integer")
    if not r.lo <= f <= r.hi:
        shown = _fmt(f) if abs(f) < 1e15 else f"{f:g}"
        raise ConfigError(f"{label}={shown}{unit} is out of range: use {_fmt(r.lo)} to "
                          f"{_fmt(r.hi)}{unit}" + (f" ({r.why})" if r.why else ""))
    return value


def check_int(name: str, value: Any, *, owner: str = "") -> int:
    """:func:`check` for an integer-valued range; returns ``int(value)``."""
    check(name, value, owner=owner)
    return int(value)
