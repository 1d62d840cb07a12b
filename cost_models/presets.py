"""Hardware presets (data files in ``cost_models/data/presets/*.yaml``) and the
``hardware show`` dictionary.

A preset file has four mappings: ``hardware`` (HardwareConfig fields), ``system``
(SystemConfig fields), ``published`` (the vendor's numbers the model is checked against)
and ``sources`` (citation per published value), plus ``name`` and ``description``.
:func:`load_preset` takes a preset name or the path of a YAML/JSON file with the same
fields; a file may also hold just the HardwareConfig fields at the top level, or be the
JSON of ``dse hardware show --json`` / a run's ``best.json`` (derived keys are ignored).

>>> preset_names()
['a100', 'h100', 'nvdla-large', 'nvdla-small', 'tpuv2', 'tpuv3', 'tpuv4', 'tpuv5e']
>>> p = load_preset("tpuv4")
>>> round(p.hardware.peak_flop_per_s / 1e12, 1), p.published["peak_flop_per_s"] / 1e12
(275.3, 275.0)
>>> load_preset("tpu9")
Traceback (most recent call last):
...
dse.errors.ConfigError: unknown hardware preset 'tpu9'; valid: a100, h100, nvdla-large, nvdla-small, tpuv2, tpuv3, tpuv4, tpuv5e (or a path to a .yaml/.json file)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cost_models.area import area_mm2
from cost_models.designs import DesignBatch
from cost_models.power import tdp_w
from cost_models.technology import Technology, load_technology
from dse.config import from_dict, load_mapping
from dse.errors import ConfigError
from dse.types import HardwareConfig, SystemConfig, jsonable

__all__ = [
    "HARDWARE_SHOW_KEYS",
    "PRESET_DIR",
    "Preset",
    "hardware_dict",
    "load_preset",
    "preset_names",
    "preset_to_mapping",
    "save_preset",
]

PRESET_DIR = Path(__file__).with_name("data") / "presets"

HARDWARE_SHOW_KEYS: tuple[str, ...] = (
    "name", "peak_flop_per_s", "area_mm2", "tdp_w", "freq_hz", "tensor_cores", "array_rows",
    "array_cols", "vector_cores", "vector_lanes", "sram_bytes", "hbm_bytes",
    "hbm_bw_bytes_per_s",
)
"""Contract keys of ``dse hardware show --json`` (design brief §4)."""

# Keys hardware_dict() adds on top of the HardwareConfig fields; ignored when loading.
_DERIVED_KEYS = frozenset(HARDWARE_SHOW_KEYS) - {f.name for f in dataclasses.fields(HardwareConfig)}
_DERIVED_KEYS |= {"area_breakdown_mm2", "tdp_breakdown_w", "macs", "dtype_bytes",
                  "vector_flop_per_s", "published", "system", "sources", "description",
                  "preset"}


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A named hardware design with its system, published numbers and sources."""

    name: str
    hardware: HardwareConfig
    system: SystemConfig = field(default_factory=SystemConfig)
    published: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("Preset.name must be a non-empty string")
        if not isinstance(self.hardware, HardwareConfig):
            raise ConfigError(f"Preset[{self.name}].hardware must be a HardwareConfig")
        if not isinstance(self.system, SystemConfig):
            raise ConfigError(f"Preset[{self.name}].system must be a SystemConfig")
        object.__setattr__(self, "published", MappingProxyType(dict(self.published)))
        object.__setattr__(self, "sources", MappingProxyType(
            {str(k): str(v) for k, v in self.sources.items()}))


def preset_names() -> list[str]:
    """Names of the bundled presets (file stems in ``cost_models/data/presets``)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith((".yaml", ".yml", ".json")) or "/" in spec or "\\" in spec


def load_preset(name_or_path: str | Path) -> Preset:
    """A bundled preset by name, or a preset / hardware file by path.

    Unknown names raise :class:`~dse.errors.ConfigError` listing the valid ones; bad files
    raise it naming the file and the problem.
    """
    spec = str(name_or_path)
    if not spec.strip():
        raise ConfigError(f"empty hardware name; valid: {', '.join(preset_names())} (or a "
                          "path to a .yaml/.json file)")
    if spec in preset_names():
        return _from_mapping(load_mapping(PRESET_DIR / f"{spec}.yaml"), str(PRESET_DIR / spec))
    if _looks_like_path(spec) or Path(spec).exists():
        return _from_mapping(load_mapping(spec), spec)
    raise ConfigError(f"unknown hardware preset {spec!r}; valid: {', '.join(preset_names())} "
                      "(or a path to a .yaml/.json file)")


def _published_number(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return len(v) > 0 and all(_published_number(x) for x in v)
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and v > 0)


def _from_mapping(data: Mapping[str, Any], where: str) -> Preset:
    if "hardware" in data:
        hw_map = data["hardware"]
        if not isinstance(hw_map, Mapping):
            raise ConfigError(f"{where}: 'hardware' must be a mapping of HardwareConfig fields")
        extra_top = sorted(set(map(str, data)) - {"name", "description", "hardware", "system",
                                                   "published", "sources", "plan", "workload",
                                                   "evaluation"})
        if extra_top:
            raise ConfigError(f"{where}: unknown top-level key {extra_top[0]!r}; valid: name, "
                              "description, hardware, system, published, sources")
    else:
        hw_map = data
    hw_fields = {k: v for k, v in hw_map.items() if k not in _DERIVED_KEYS}
    hw = from_dict(HardwareConfig, hw_fields, f"{where}: hardware")
    sys_map = data.get("system", {}) or {}
    if not isinstance(sys_map, Mapping):
        raise ConfigError(f"{where}: 'system' must be a mapping of SystemConfig fields")
    system = from_dict(SystemConfig, dict(sys_map), f"{where}: system")
    published = data.get("published", {}) or {}
    sources = data.get("sources", {}) or {}
    if not isinstance(published, Mapping) or not isinstance(sources, Mapping):
        raise ConfigError(f"{where}: 'published' and 'sources' must be mappings")
    for k, v in published.items():
        if not _published_number(v):
            raise ConfigError(f"{where}: published.{k}={v!r} must be a finite number > 0 "
                              "(or a list of them): the vendor's figure the model is checked "
                              "against")
    return Preset(name=str(data.get("name", hw.name)), hardware=hw, system=system,
                  published=published, sources=sources,
                  description=str(data.get("description", "")))


def preset_to_mapping(preset: Preset) -> dict[str, Any]:
    """The preset as plain data in the file format (round-trips through :func:`load_preset`)."""
    return jsonable({
        "name": preset.name,
        "description": preset.description,
        "hardware": dataclasses.asdict(preset.hardware),
        "system": dataclasses.asdict(preset.system),
        "published": dict(preset.published),
        "sources": dict(preset.sources),
    })


def save_preset(preset: Preset, path: str | Path) -> Path:
    """Write ``preset`` as YAML (``.yaml``/``.yml``) or JSON (``.json``)."""
    import json

    p = Path(path)
    data = preset_to_mapping(preset)
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return p


def hardware_dict(hw: HardwareConfig, tech: Technology | None = None) -> dict[str, Any]:
    """The ``hardware show`` object of one design: the contract keys (brief §4), then every
    HardwareConfig field, then the modelled area and TDP breakdowns.

    ``area_mm2`` and ``tdp_w`` are modelled (:mod:`cost_models.area`,
    :mod:`cost_models.power`) at the design's own ``tech_node_nm``; ``tech`` supplies the
    constant table (default: :func:`load_technology`).

    >>> d = hardware_dict(load_preset("a100").hardware)
    >>> [k for k in HARDWARE_SHOW_KEYS if k not in d]
    []
    >>> round(d["peak_flop_per_s"] / 1e12, 1)
    311.9
    """
    t = load_technology(hw.tech_node_nm) if tech is None else tech
    batch = DesignBatch.from_configs([hw])
    area = area_mm2(batch, t)
    power = tdp_w(batch, t)
    out: dict[str, Any] = {
        "name": hw.name,
        "peak_flop_per_s": float(hw.peak_flop_per_s),
        "area_mm2": float(area["total"][0]),
        "tdp_w": float(power["total"][0]),
        "freq_hz": float(hw.freq_hz),
        "tensor_cores": int(hw.tensor_cores),
        "array_rows": int(hw.array_rows),
        "array_cols": int(hw.array_cols),
        "vector_cores": int(hw.vector_cores),
        "vector_lanes": int(hw.vector_lanes),
        "sram_bytes": float(hw.sram_bytes),
        "hbm_bytes": float(hw.hbm_bytes),
        "hbm_bw_bytes_per_s": float(hw.hbm_bw_bytes_per_s),
    }
    for f in dataclasses.fields(HardwareConfig):
        out.setdefault(f.name, jsonable(getattr(hw, f.name)))
    out["macs"] = int(hw.macs)
    out["dtype_bytes"] = int(hw.dtype_bytes)
    out["vector_flop_per_s"] = float(hw.vector_flop_per_s)
    out["area_breakdown_mm2"] = {k: float(v[0]) for k, v in area.items()}
    out["tdp_breakdown_w"] = {k: float(v[0]) for k, v in power.items()}
    return out
