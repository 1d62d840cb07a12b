"""Exports of a design to cycle-level and analytical simulators.

``export_design(source, fmt, out_dir)`` reads a run directory (its ``best.json``) or a
design JSON/YAML file and writes the files of one format into ``out_dir``:

==========  =====================================================================
format      files
==========  =====================================================================
scalesim    SCALE-Sim 3.0.0 ``.cfg``, GEMM topology CSV, layout CSV,
            ``expected_cycles.csv`` (our cycles), ``run_scalesim.py``
timeloop    Timeloop/Accelergy v0.4 ``arch.yaml`` (``!Container``/``!Component``/
            ``!Parallel`` tags) and one ``problem`` YAML per unique GEMM
zigzag      ZigZag 3.9 ``hardware.yaml``, ``mapping.yaml``, ``workload.yaml``
astrasim    ASTRA-sim ``network.yml``, ``system.json``, ``remote_memory.json``,
            Chakra ET traces (when ``mlc-chakra`` is installed)
==========  =====================================================================

See ``docs/exports.md`` for the mapping conventions and what was checked with the real
tools.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dse.errors import ConfigError
from dse.export.design import Design, Gemm, load_design, unique_gemms, workload_graphs

__all__ = [
    "FORMATS",
    "Design",
    "Gemm",
    "export_design",
    "load_design",
    "unique_gemms",
    "workload_graphs",
]

FORMATS: tuple[str, ...] = ("scalesim", "timeloop", "zigzag", "astrasim")


def export_design(source: str | Path, fmt: str, out_dir: str | Path, *, top: int | None = None,
                  layers: tuple[str, ...] | None = None) -> list[Path]:
    """Export the design in ``source`` (run directory or design file) to format ``fmt``.

    Returns the paths written, in a stable order. Raises
    :class:`~dse.errors.ConfigError` for an unknown format or unreadable source and
    :class:`~dse.errors.ExportError` when the design cannot be expressed in the format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    design = load_design(source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the output directory ({e.strerror})") from None
    module = importlib.import_module(f"dse.export.{fmt}")
    if (top is not None or layers) and fmt not in ("scalesim", "zigzag", "timeloop"):
        raise ConfigError(f"--top/--layers select GEMMs of the scalesim, zigzag and timeloop "
                          f"exports; the {fmt} export has none to select")
    kw = {"top": top, "layers": layers} if fmt in ("scalesim", "zigzag", "timeloop") else {}
    paths: list[Path] = module.export(design, out, **kw)
    return paths
