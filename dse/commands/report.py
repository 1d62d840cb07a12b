"""``dse report RUN_DIR [--images]``: write ``RUN_DIR/report.html`` (design brief §4)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dse.report import generate_report


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write the report; return ``{"report", "figures", "images", "images_hint"}``.

    A missing or malformed run directory raises ConfigError (exit 2) naming the file.
    """
    result = generate_report(args.run_dir, images=bool(getattr(args, "images", False)))
    if result.images_hint:
        sys.stderr.write(f"dse report: no images: {result.images_hint}\n")
    return {
        "report": str(result.path),
        "figures": list(result.sections),
        "images": [str(p) for p in result.images],
        "images_hint": result.images_hint,
    }


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    """Where the report went, and the images if any."""
    lines = [f"wrote {result['report']} ({len(result['figures'])} figures: "
             f"{', '.join(result['figures'])})"]
    if result["images"]:
        lines.append(f"images: {len(result['images'])} files in "
                     f"{result['images'][0].rsplit('/', 1)[0]}/")
    return "\n".join(lines)
