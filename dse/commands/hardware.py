"""``dse hardware list`` and ``dse hardware show HARDWARE``.

``show`` prints the contract keys of the design brief §4 (``name``, ``peak_flop_per_s``,
``area_mm2`` and ``tdp_w`` — both *modelled* by :mod:`cost_models.area` and
:mod:`cost_models.power` —, ``freq_hz``, ``tensor_cores``, ``array_rows``, ``array_cols``,
``vector_cores``, ``vector_lanes``, ``sram_bytes``, ``hbm_bytes``, ``hbm_bw_bytes_per_s``),
then every HardwareConfig field, the area and TDP breakdowns, ``published`` (the vendor's
numbers with ``sources``) and ``system``. HARDWARE is a preset name or a YAML/JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from cost_models.presets import hardware_dict, load_preset, preset_names


def _list() -> dict[str, Any]:
    rows = []
    for name in preset_names():
        p = load_preset(name)
        d = hardware_dict(p.hardware)
        rows.append({
            "name": name,
            "description": p.description,
            "peak_flop_per_s": d["peak_flop_per_s"],
            "dtype": d["dtype"],
            "area_mm2": d["area_mm2"],
            "tdp_w": d["tdp_w"],
            "hbm_bw_bytes_per_s": d["hbm_bw_bytes_per_s"],
            "tech_node_nm": d["tech_node_nm"],
        })
    return {"hardware": rows}


def _show(spec: str) -> dict[str, Any]:
    p = load_preset(spec)
    out = hardware_dict(p.hardware)
    out["preset"] = p.name
    out["description"] = p.description
    out["published"] = dict(p.published)
    out["sources"] = dict(p.sources)
    out["system"] = dataclasses.asdict(p.system)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "list":
        return _list()
    return _show(args.hardware)


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _bytes(x: float) -> str:
    for scale, prefix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if x >= scale:
            return f"{x / scale:.4g} {prefix}"
    return f"{x:.0f} B"


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    if "hardware" in result and isinstance(result["hardware"], list):
        lines = [(f"{'name':<12} {'peak':>14} {'dtype':>5} {'area mm2':>9} {'TDP W':>8} "
                 f"{'HBM':>12} {'node':>5}  description")]
        for r in result["hardware"]:
            lines.append(f"{r['name']:<12} {_si(r['peak_flop_per_s'], 'FLOP/s'):>14} "
                         f"{r['dtype']:>5} {r['area_mm2']:>9.1f} {r['tdp_w']:>8.1f} "
                         f"{_si(r['hbm_bw_bytes_per_s'], 'B/s'):>12} "
                         f"{r['tech_node_nm']:>4g}n  {r['description']}")
        lines.append("area and TDP are modelled (cost_models.area, cost_models.power); "
                     "`dse hardware show NAME` compares them with the published numbers")
        return "\n".join(lines)
    r = result
    pub = r.get("published", {})
    lines = [f"{r['name']}: {r.get('description', '')}".rstrip(": "),
             f"  peak             {_si(r['peak_flop_per_s'], 'FLOP/s')} ({r['dtype']})"
             + (f"   published {_si(pub['peak_flop_per_s'], 'FLOP/s')}"
                if "peak_flop_per_s" in pub else ""),
             (f"  tensor cores     {r['tensor_cores']} x {r['array_rows']}x{r['array_cols']} "
             f"({r['dataflow']}) at {_si(r['freq_hz'], 'Hz')}"),
             f"  vector cores     {r['vector_cores']} x {r['vector_lanes']} lanes",
             (f"  SRAM             {_bytes(r['sram_bytes'])} "
             f"({r['tensor_cores']} x {_bytes(r['sram_per_core_bytes'])} + "
             f"{_bytes(r['global_buffer_bytes'])} global)"),
             (f"  HBM              {_bytes(r['hbm_bytes'])} at "
              f"{_si(r['hbm_bw_bytes_per_s'], 'B/s')}"
             f" ({r['hbm_stacks']} stacks)"),
             f"  links            {r['link_count']} x {_si(r['link_bw_bytes_per_s'], 'B/s')}",
             f"  node             {r['tech_node_nm']:g} nm"]
    area_pub = [f"{k} {v}" for k, v in pub.items() if "area" in k]
    lines.append(f"  area (modelled)  {r['area_mm2']:.1f} mm2"
                 + (f"   published {', '.join(area_pub)}" if area_pub else ""))
    lines.append("    " + ", ".join(f"{k} {v:.2f}" for k, v in r["area_breakdown_mm2"].items()))
    power_pub = [f"{k} {v}" for k, v in pub.items() if k.startswith(("tdp", "power"))]
    lines.append(f"  TDP (modelled)   {r['tdp_w']:.1f} W"
                 + (f"   published {', '.join(power_pub)}" if power_pub else ""))
    lines.append("    " + ", ".join(f"{k} {v:.2f}" for k, v in r["tdp_breakdown_w"].items()))
    if "system" in r:
        s = r["system"]
        lines.append(f"  system           {s['devices_per_node']} per node, "
                     f"{s['intra_node_topology']} {_si(s['intra_node_bw_bytes_per_s'], 'B/s')} "
                     f"inside, {s['inter_node_topology']} "
                     f"{_si(s['inter_node_bw_bytes_per_s'], 'B/s')} between nodes")
    return "\n".join(lines)
