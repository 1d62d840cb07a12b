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
import os
import shutil
import tempfile
from pathlib import Path

from dse.errors import NOT_WRITABLE_ERRNOS, ConfigError
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


EXPORT_MARKER = ".dse-export"
"""Written into every export directory: a later export may rewrite that directory, never
one holding other files."""


def export_design(source: str | Path, fmt: str, out_dir: str | Path, *, top: int | None = None,
                  layers: tuple[str, ...] | None = None) -> list[Path]:
    """Export the design in ``source`` (run directory or design file) to format ``fmt``.

    Returns the paths written, in a stable order. Raises
    :class:`~dse.errors.ConfigError` for an unknown format or unreadable source and
    :class:`~dse.errors.ExportError` when the design cannot be expressed in the format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not str(out_dir).strip():
        raise ConfigError("--out needs a directory to write the export into")
    design = load_design(source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if out.is_dir() and not (out / EXPORT_MARKER).exists():
        try:
            busy = next(out.iterdir(), None) is not None
        except OSError as e:
            raise ConfigError(f"{out}: cannot read the directory ({e.strerror})") from None
        if busy:
            raise ConfigError(f"{out}: the directory holds other files and no dse export; "
                              "give a new or empty directory (an earlier export's "
                              "directory is rewritten)")
    module = importlib.import_module(f"dse.export.{fmt}")
    if (top is not None or layers) and fmt not in ("scalesim", "zigzag", "timeloop"):
        raise ConfigError(f"--top/--layers select GEMMs of the scalesim, zigzag and timeloop "
                          f"exports; the {fmt} export has none to select")
    kw = {"top": top, "layers": layers} if fmt in ("scalesim", "zigzag", "timeloop") else {}
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # the files are written beside DIR and moved in once all of them are: an export
        # that fails (bad input found late, a full disk) leaves DIR as it was
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the output directory ({e.strerror})") from None
    try:
        written: list[Path] = module.export(design, tmp, **kw)
        paths = [out / p.relative_to(tmp) for p in written]
        for src in sorted(tmp.rglob("*")):
            dst = out / src.relative_to(tmp)
            if src.is_dir():
                dst.mkdir(exist_ok=True)
            else:
                os.replace(src, dst)
        (out / EXPORT_MARKER).write_text(f"{fmt}\n", encoding="utf-8")
    except OSError as e:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if e.errno in NOT_WRITABLE_ERRNOS:
            raise ConfigError(f"{out}: cannot write the export there ({e.strerror})") from None
        raise
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths
