"""``dse export RUN_DIR_OR_DESIGN_JSON --format F --out DIR`` (design brief §4)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dse.errors import ConfigError
from dse.export import export_design


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export the design and return ``{"format", "source", "out_dir", "files"}``."""
    layers = None
    if getattr(args, "layers", None) is not None:
        layers = tuple(x.strip() for x in args.layers.split(",") if x.strip())
        if not layers:
            raise ConfigError(f"--layers {args.layers!r} names no layer; give names as in "
                              "expected_cycles.csv, comma-separated")
    paths = export_design(args.source, args.format, args.out, top=getattr(args, "top", None),
                          layers=layers)
    out = Path(args.out)
    return {
        "format": args.format,
        "source": str(args.source),
        "out_dir": str(out),
        "files": [str(p) for p in paths],
    }


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    """The files written, one per line, relative to the output directory."""
    out = Path(result["out_dir"])
    lines = [f"{result['format']} export of {result['source']} -> {out}/"]
    for f in result["files"]:
        p = Path(f)
        try:
            rel = p.relative_to(out)
        except ValueError:
            rel = p
        note = "   (note: read it)" if p.suffix == ".txt" else ""
        lines.append(f"  {rel}{note}")
    return "\n".join(lines)
