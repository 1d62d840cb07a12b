"""The HTML report of a search run: ``dse report RUN_DIR`` → ``RUN_DIR/report.html``.

The report is one self-contained HTML file (plotly.js embedded once, no network access
needed to view it) with:

1. key facts and the best design (tables);
2. the Pareto front of the evaluated designs (samples/s vs area and vs TDP, from
   ``designs.csv``), with the budget, the best design and the baselines marked;
3. the best design against the TPU-like and NVDLA-like baselines of the same budget
   (samples/s and samples/s per W of TDP, from ``summary.json`` ``baselines``);
4. the step-time breakdown by phase and operator kind (``best.json`` evaluation
   ``breakdown``);
5. the schedule of one training step as a timeline per execution unit with the
   critical path highlighted (the evaluation's ``schedule`` when the run stored it,
   otherwise recomputed with ``cost_models.evaluate.evaluate_device``);
6. area and power breakdowns;
7. search convergence: best-so-far objective vs designs evaluated, per searcher;
8. the parallel plans compared (``summary.json`` ``plans``, from ``search.plans.compare_plans``).

It reads the run-directory format of ``docs/architecture.md``. ``images=True`` also writes
every figure as PNG and SVG under ``RUN_DIR/report_images/`` through kaleido, which needs
a Chrome/Chromium; without one a one-line hint (:data:`IMAGES_HINT`) is returned instead.

>>> pareto_mask([[3, 1, 1], [2, 1, 1], [4, 2, 2], [1, 0.5, 3]])
array([ True, False,  True,  True])
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dse.errors import NOT_WRITABLE_ERRNOS, ConfigError
from dse.figures import Figure, plotly_js

__all__ = [
    "IMAGES_HINT",
    "SECTION_IDS",
    "ReportResult",
    "RunData",
    "Section",
    "build_sections",
    "generate_report",
    "load_run",
    "pareto_mask",
    "render_html",
    "write_images",
    "write_report",
]

IMAGES_HINT = ("PNG/SVG export needs kaleido and a Chrome/Chromium: pip install 'dse[images]' "
               "and install chromium (e.g. apt-get install chromium) or set BROWSER_PATH to a "
               "Chrome/Chromium binary")

SECTION_IDS: tuple[str, ...] = ("pareto", "baselines", "breakdown", "timeline", "area-power",
                                "convergence", "plans", "links")
"""Figure ids in report order; each figure's div id is ``fig-<id>``."""

_MAX_POINTS = 20000
_SUBTOTALS = frozenset({"total", "core", "dynamic", "subtotal"})
"""Breakdown keys that sum other keys (cost_models.area: core; cost_models.power: dynamic)."""
_COLORS = {"best": "#d62728", "front": "#1f77b4", "other": "#9ecae1", "infeasible": "#c7c7c7",
           "tpu": "#2ca02c", "nvdla": "#ff7f0e", "critical": "#d62728"}
_PHASE_COLORS = {"fwd": "#4c78a8", "bwd_data": "#72b7b2", "bwd_weight": "#54a24b",
                 "optimizer": "#b279a2", "comm": "#f58518", "forward": "#4c78a8",
                 "backward": "#54a24b", "recompute": "#9d755d", "bubble": "#bab0ac",
                 "p2p": "#f58518", "tail": "#b279a2"}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, kw_only=True)
class RunData:
    """The files of one run directory, parsed."""

    run_dir: Path
    summary: Mapping[str, Any]
    best: Mapping[str, Any]
    designs: Table
    """The columns of ``designs.csv`` (:class:`Table`)."""


_CSV_PANDAS_BYTES = 8 * 2**20
"""designs.csv files larger than this are read by pandas (its C parser); smaller ones with
``csv`` and numpy, which spares a small run pandas' import."""


class Table:
    """Columns of a CSV file by name: numbers as float arrays (empty cells NaN), other
    columns as arrays of strings. A light stand-in for a data frame (no pandas on the
    path of ``dse search``)."""

    def __init__(self, cols: Mapping[str, np.ndarray]) -> None:
        self._cols = {k: np.asarray(v) for k, v in cols.items()}
        lens = {len(v) for v in self._cols.values()}
        if len(lens) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lens)}")
        self._n = lens.pop() if lens else 0

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._cols)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name]

    def rows(self, sel: Any) -> Table:
        """The rows selected by a boolean mask, an index array or a slice."""
        return Table({k: v[sel] for k, v in self._cols.items()})

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """``(rows, len(names))`` float array of the given columns."""
        if not self._n:
            return np.zeros((0, len(names)))
        return np.stack([np.asarray(self._cols[k], dtype=float) for k in names], axis=1)

    @staticmethod
    def read_csv(path: Path, chunk: int = 8192) -> Table:
        """Columns of a CSV file with a header row: numeric where every cell of the column
        parses (empty cells NaN), else strings. Two streaming passes (types, then values
        in chunks; conversions in numpy), so memory stays that of the arrays."""
        import csv

        def chunks() -> Any:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rd = csv.reader(fh)
                head = next(rd, None)
                yield head
                buf: list[list[str]] = []
                for r in rd:
                    if r:
                        buf.append(r)
                        if len(buf) >= chunk:
                            yield buf
                            buf = []
                if buf:
                    yield buf

        def floats(raw: list[str]) -> np.ndarray:
            a = np.array(raw, dtype=str)
            a[a == ""] = "nan"
            return a.astype(float)

        if path.stat().st_size > _CSV_PANDAS_BYTES:  # a large run: pandas' C reader
            import pandas as pd

            df = pd.read_csv(path, encoding="utf-8-sig")
            return Table({c: (df[c].to_numpy(dtype=float) if df[c].dtype.kind in "iuf"
                              else df[c].astype(str).to_numpy(dtype=object))
                          for c in df.columns})
        it = chunks()
        head = next(it)
        if not head or not any(head):
            raise ValueError("no columns to parse from file")
        numeric = [True] * len(head)
        line = 2
        for buf in it:
            for i, r in enumerate(buf):
                if len(r) != len(head):
                    raise ValueError(f"line {line + i}: expected {len(head)} fields, "
                                     f"saw {len(r)}")
            line += len(buf)
            cols = list(zip(*buf))
            for j in range(len(head)):
                if numeric[j]:
                    try:
                        floats(list(cols[j]))
                    except ValueError:
                        numeric[j] = False
        parts: list[list[np.ndarray]] = [[] for _ in head]
        it = chunks()
        next(it)
        for buf in it:
            cols = list(zip(*buf))
            for j in range(len(head)):
                raw = list(cols[j])
                parts[j].append(floats(raw) if numeric[j] else np.array(raw, dtype=object))
        return Table({name: (np.concatenate(parts[j]) if parts[j] else
                             np.zeros(0, dtype=float if numeric[j] else object))
                      for j, name in enumerate(head)})


@dataclass(frozen=True, kw_only=True)
class Section:
    """One report section: a title, an explanation and a figure (or a note)."""

    id: str
    title: str
    text: str
    figure: Figure | None = None
    """The figure as plotly.js data (:class:`dse.figures.Figure`)."""
    note: str = ""
    facts: tuple[str, ...] = field(default=())


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a run directory needs summary.json, best.json "
                          "and designs.csv, written by `dse search`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: "
                          f"{e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


_DESIGN_COLUMNS = ("area_mm2", "tdp_w", "samples_per_s")


def load_run(run_dir: str | Path) -> RunData:
    """Read ``summary.json``, ``best.json`` and ``designs.csv`` of a run directory.

    Raises :class:`ConfigError` (exit code 2) naming the missing or malformed file.
    """
    d = Path(run_dir)
    if not d.exists():
        raise ConfigError(f"{d}: no such run directory")
    if not d.is_dir():
        raise ConfigError(f"{d}: not a directory (expected a run directory from `dse search`)")
    summary = _read_json(d / "summary.json")
    best = _read_json(d / "best.json")
    if not isinstance(best.get("hardware"), Mapping):
        raise ConfigError(f"{d / 'best.json'}: no 'hardware' mapping")
    if not isinstance(best.get("evaluation"), Mapping):
        raise ConfigError(f"{d / 'best.json'}: no 'evaluation' mapping")
    csv_path = d / "designs.csv"
    if not csv_path.is_file():
        raise ConfigError(f"{csv_path}: no such file (a run directory needs summary.json, "
                          "best.json and designs.csv, written by `dse search`)")
    import csv

    try:
        designs = Table.read_csv(csv_path)
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise ConfigError(f"{csv_path}: malformed CSV ({msg})") from None
    except OSError as e:
        raise ConfigError(f"{csv_path}: cannot read ({e.__class__.__name__})") from None
    missing = [c for c in _DESIGN_COLUMNS if c not in designs.columns]
    if missing:
        raise ConfigError(f"{csv_path}: missing column {missing[0]!r} (needs "
                          f"{', '.join(_DESIGN_COLUMNS)})")
    for c in _DESIGN_COLUMNS:   # numbers, unparsable cells NaN
        col = designs[c]
        if col.dtype == object:
            designs._cols[c] = np.array([_num(x) if _num(x) is not None else math.nan
                                         for x in col], dtype=float)
    return RunData(run_dir=d, summary=summary, best=best, designs=designs)


# --------------------------------------------------------------------------- helpers


def pareto_mask(points: Any) -> np.ndarray:
    """Non-dominated rows of ``points`` = (throughput, area, tdp): maximize the first,
    minimize the others. O(n²) in the worst case, fine for tens of thousands of rows
    because dominated points are dropped early."""
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    key = np.column_stack([-p[:, 0], p[:, 1], p[:, 2]])  # all minimized
    finite = np.isfinite(key).all(axis=1)
    # equal points never dominate each other: decide each distinct point once (a study
    # that scored a design many times would otherwise grow the front with every repeat)
    uniq, inverse = np.unique(np.where(finite[:, None], key, np.inf), axis=0,
                              return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    ufinite = np.isfinite(uniq).all(axis=1)
    order = np.lexsort((uniq[:, 2], uniq[:, 1], uniq[:, 0]))
    ukeep = np.zeros(len(uniq), dtype=bool)
    front = np.empty((len(uniq), 3))
    n = 0
    for i in order:
        if not ufinite[i]:
            continue
        k = uniq[i]
        f = front[:n]
        if n and ((f <= k).all(axis=1) & (f < k).any(axis=1)).any():
            continue
        ukeep[i] = True
        front[n] = k
        n += 1
    return ukeep[inverse] & finite


def _num(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)) and math.isfinite(float(x)):
        return float(x)
    return None


def _mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _entries(obj: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Baselines as (name, entry) whether stored as a mapping or a list."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(obj, Mapping):
        for name, e in obj.items():
            if isinstance(e, Mapping):
                out.append((str(name), e))
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        for i, e in enumerate(obj):
            if isinstance(e, Mapping):
                hw = _mapping(e.get("hardware"))
                name = e.get("name") or e.get("label") or hw.get("name") or f"baseline {i + 1}"
                out.append((str(name), e))
    return out


def _metric(entry: Mapping[str, Any], key: str) -> float | None:
    ev = entry.get("evaluation")
    if isinstance(ev, Mapping) and key in ev:
        return _num(ev.get(key))
    return _num(entry.get(key))


def _si(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "–"
    if x == 0:
        return f"0 {unit}".strip()
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]
    if not unit and abs(x) < 1000:
        return f"{x:.{digits}g}"
    for scale, pre in prefixes:
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g} {pre}{unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()


def _bytes(x: float | None) -> str:
    if x is None:
        return "–"
    for scale, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if x >= scale:
            return f"{x / scale:.3g} {name}"
    return f"{x:.0f} B"


def _objective_label(summary: Mapping[str, Any]) -> str:
    return ("samples/s per W of TDP" if summary.get("objective") == "perf_per_tdp"
            else "samples/s")


def _layout(fig: Figure, title: str, height: int = 420) -> Figure:
    # the look of plotly's "plotly_white" set directly (no named template to resolve)
    fig.update_layout(title=dict(text=title, x=0.01), height=height,
                      paper_bgcolor="white", plot_bgcolor="white",
                      font=dict(color="#2a3f5f"), colorway=_COLORWAY,
                      margin=dict(l=70, r=30, t=70, b=120),
                      legend=dict(orientation="h", yanchor="top", y=-0.24, x=0.0))
    fig.update_xaxes(showgrid=True, gridcolor="#EBF0F8", zerolinecolor="#EBF0F8",
                     linecolor="#EBF0F8", automargin=True)
    fig.update_yaxes(showgrid=True, gridcolor="#EBF0F8", zerolinecolor="#EBF0F8",
                     linecolor="#EBF0F8", automargin=True)
    return fig


_COLORWAY = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692",
             "#B6E880", "#FF97FF", "#FECB52"]
"""plotly's default qualitative colours (its "plotly" template)."""


# --------------------------------------------------------------------------- sections


def _scatter(**props: Any) -> dict[str, Any]:
    return {"type": "scatter", **props}


def _bar(**props: Any) -> dict[str, Any]:
    return {"type": "bar", **props}


def _hover(df: Table) -> list[str]:
    cols = [c for c in ("name", "tensor_cores", "array_rows", "array_cols", "dataflow",
                        "vector_cores",
                        "vector_lanes", "sram_per_core_bytes", "freq_hz", "searcher",
                        "eval_index") if c in df.columns]

    def fmt(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    data = [df[c].tolist() for c in cols]
    return ["<br>".join(f"{c}={fmt(col[i])}" for c, col in zip(cols, data))
            for i in range(len(df))]


def _pareto_section(run: RunData) -> Section:
    df = run.designs
    df = df.rows(np.isfinite(df["samples_per_s"]) & np.isfinite(df["area_mm2"])
                 & np.isfinite(df["tdp_w"]))
    if "feasible" in df.columns:
        feasible = np.array([str(x).lower() in ("true", "1", "1.0") for x in df["feasible"]],
                            dtype=bool)
    else:
        feasible = np.ones(len(df), dtype=bool)
    ok = df.rows(feasible)
    bad = df.rows(~feasible)
    mask = pareto_mask(ok.matrix(["samples_per_s", "area_mm2", "tdp_w"]))
    front = ok.rows(mask)
    rest = ok.rows(~mask)
    note = ""
    if len(rest) > _MAX_POINTS:
        step = int(math.ceil(len(rest) / _MAX_POINTS))
        rest = rest.rows(slice(None, None, step))
        note = (f"{len(ok) - len(front)} dominated feasible designs; every {step}th is drawn.")
    if len(bad) > _MAX_POINTS:
        bad = bad.rows(slice(None, None, int(math.ceil(len(bad) / _MAX_POINTS))))
    fig = Figure(rows=1, cols=2, subplot_titles=("throughput vs area", "throughput vs TDP"),
                 horizontal_spacing=0.1)
    for col, x in ((1, "area_mm2"), (2, "tdp_w")):
        show = col == 1
        if len(bad):
            fig.add_trace(_scatter(x=bad[x], y=bad["samples_per_s"], mode="markers",
                                   name="over budget / infeasible", legendgroup="bad",
                                   showlegend=show, hovertext=_hover(bad),
                                   marker=dict(color=_COLORS["infeasible"], size=5,
                                               symbol="x")), row=1, col=col)
        fig.add_trace(_scatter(x=rest[x], y=rest["samples_per_s"], mode="markers",
                               name="feasible, dominated", legendgroup="rest", showlegend=show,
                               hovertext=_hover(rest),
                               marker=dict(color=_COLORS["other"], size=6, opacity=0.7)),
                      row=1, col=col)
        fs = front.rows(np.argsort(front[x], kind="stable"))
        fig.add_trace(_scatter(x=fs[x], y=fs["samples_per_s"], mode="markers",
                               name="Pareto front (throughput, area, TDP)", legendgroup="front",
                               showlegend=show, hovertext=_hover(fs),
                               marker=dict(color=_COLORS["front"], size=9,
                                           line=dict(color="white", width=1))),
                      row=1, col=col)
        for name, entry in _entries(run.summary.get("baselines")):
            bx, by = _metric(entry, x), _throughput(entry)
            if bx is None or by is None:
                continue
            color = _COLORS["nvdla"] if "nvdla" in name.lower() else _COLORS["tpu"]
            fig.add_trace(_scatter(x=[bx], y=[by], mode="markers", name=name,
                                   legendgroup=f"b-{name}", showlegend=show,
                                   marker=dict(color=color, size=14, symbol="diamond",
                                               line=dict(color="black", width=1))),
                          row=1, col=col)
        ev = run.best["evaluation"]
        best = _mapping(run.summary.get("best"))
        bx, by = _num(ev.get(x)), (_throughput(best) if best else _num(ev.get("samples_per_s")))
        if bx is not None and by is not None:
            fig.add_trace(_scatter(x=[bx], y=[by], mode="markers", name="best design",
                                   legendgroup="best", showlegend=show,
                                   marker=dict(color=_COLORS["best"], size=18, symbol="star",
                                               line=dict(color="black", width=1))),
                          row=1, col=col)
        budget = _num(run.summary.get("area_mm2" if x == "area_mm2" else "power_w"))
        if budget is not None:
            fig.add_vline(x=budget, line=dict(color="black", dash="dash", width=1), col=col,
                          annotation_text="budget")
    # axes fitted to the budget (designs far over it are off the plot, still counted)
    for col, x, key in ((1, "area_mm2", "area_mm2"), (2, "tdp_w", "power_w")):
        budget = _num(run.summary.get(key))
        inside = np.asarray(ok[x], dtype=float) if len(ok) else np.zeros(0)
        hi = max([v for v in (budget, float(inside.max()) if inside.size else None) if v]
                 or [1.0])
        fig.update_xaxes(range=[0, 1.15 * hi], row=1, col=col)
    fig.update_xaxes(title=dict(text="area (mm²)"), col=1)
    fig.update_xaxes(title=dict(text="TDP (W)"), col=2)
    per = _mapping(run.summary.get("per_workload"))
    fig.update_yaxes(title=dict(text="training throughput (samples/s"
                                + (", geometric mean over workloads)" if len(per) > 1
                                   else ")")), col=1)
    _layout(fig, "Designs evaluated and the Pareto front", height=480)
    text = (f"{len(df)} designs from designs.csv ({int(feasible.sum())} feasible). "
            f"{int(mask.sum())} feasible designs are Pareto-optimal for (max throughput, "
            "min area, min TDP); dashed lines mark the budget.")
    return Section(id="pareto", title="Pareto front", text=text, figure=fig, note=note)


def _baselines_section(run: RunData) -> Section:
    ev = run.best["evaluation"]
    rows: list[tuple[str, float | None, float | None, str]] = []
    best_name = str(run.best["hardware"].get("name") or "best")
    rows.append((f"best: {best_name}", _num(ev.get("samples_per_s")), _num(ev.get("tdp_w")),
                 _COLORS["best"]))
    for name, entry in _entries(run.summary.get("baselines")):
        color = _COLORS["nvdla"] if "nvdla" in name.lower() else _COLORS["tpu"]
        rows.append((name, _metric(entry, "samples_per_s"), _metric(entry, "tdp_w"), color))
    if len(rows) == 1:
        return Section(id="baselines", title="Best design vs baselines", text="",
                       note="summary.json has no 'baselines'.")
    names = [r[0] for r in rows]
    thr = [r[1] for r in rows]
    ppw = [(r[1] / r[2]) if (r[1] is not None and r[2]) else None for r in rows]
    colors = [r[3] for r in rows]
    fig = Figure(rows=1, cols=2, subplot_titles=("throughput (samples/s)",
                                                 "throughput per TDP (samples/s/W)"))
    for col, vals in ((1, thr), (2, ppw)):
        ref = vals[0]
        labels = []
        for v in vals:
            if v is None:
                labels.append("n/a")
            elif ref and v:
                labels.append(f"{_si(v)}  (best ×{ref / v:.2f})" if v != ref else _si(v))
            else:
                labels.append(_si(v))
        fig.add_trace(_bar(x=names, y=[v or 0 for v in vals], marker=dict(color=colors),
                           text=labels, textposition="outside", showlegend=False,
                           cliponaxis=False), row=1, col=col)
    _layout(fig, "Best design vs TPU-like and NVDLA-like baselines (same budget)", height=440)
    facts = []
    for name, v, w in zip(names[1:], thr[1:], ppw[1:]):
        if v and thr[0]:
            facts.append(f"{thr[0] / v:.2f}× the throughput of {name}"
                         + (f" and {ppw[0] / w:.2f}× its throughput per watt"
                            if w and ppw[0] else ""))
    text = "Baselines are scaled to the same area/power budget by the search (summary.json)."
    return Section(id="baselines", title="Best design vs baselines", text=text, figure=fig,
                   facts=tuple(facts))


_BREAKDOWN_KEYS = (("op_phase_s", "by phase"), ("phase", "by phase"), ("by_phase", "by phase"),
                   ("op_kind_s", "by op kind"), ("kind", "by op kind"),
                   ("by_kind", "by op kind"), ("op_kind", "by op kind"),
                   ("phase_s", "step phases"), ("unit", "by unit"), ("by_unit", "by unit"))


def _label(key: Any) -> str:
    k = str(key)
    return k[:-2] if k.endswith("_s") and len(k) > 2 else k


def _numbers(v: Mapping[str, Any]) -> dict[str, float]:
    return {_label(k): float(x) for k, x in v.items() if _num(x) is not None}


def _breakdown_tables(bd: Any) -> dict[str, dict[str, float]]:
    """Normalize ``evaluation.breakdown`` into named {label: seconds} tables.

    Accepts the training evaluator's ``op_phase_s``/``op_kind_s``/``phase_s`` mappings,
    ``phase``/``kind`` (or ``by_*``) mappings, a nested phase → kind mapping, or a flat
    mapping of seconds; a trailing ``_s`` is dropped from labels.
    """
    if not isinstance(bd, Mapping):
        return {}
    out: dict[str, dict[str, float]] = {}
    for key, title in _BREAKDOWN_KEYS:
        v = bd.get(key)
        if isinstance(v, Mapping) and title not in out:
            nums = _numbers(v)
            if any(x > 0 for x in nums.values()):
                out[title] = nums
    if out:
        return out
    flat = {_label(k): float(v) for k, v in bd.items()
            if _num(v) is not None and str(k) not in ("total", "total_s", "step_time_s")}
    nested = {str(k): v for k, v in bd.items() if isinstance(v, Mapping)}
    if nested and not flat:
        for outer, inner in nested.items():
            nums = _numbers(inner)
            if nums:
                out[_label(outer)] = nums
        return out
    if flat:
        out["breakdown"] = flat
    return out


def _breakdown_section(run: RunData) -> Section:
    ev = run.best["evaluation"]
    tables = _breakdown_tables(ev.get("breakdown"))
    if not tables:
        return Section(id="breakdown", title="Step-time breakdown", text="",
                       note="best.json evaluation has no 'breakdown'.")
    order = {"by phase": 0, "by op kind": 1, "step phases": 2}
    names = sorted(tables, key=lambda t: order.get(t, 3))[:3]
    fig = Figure(rows=1, cols=len(names), subplot_titles=names)
    step = _num(ev.get("step_time_s"))
    facts = []
    for i, name in enumerate(names, start=1):
        items = sorted(((k, v) for k, v in tables[name].items() if v > 0),
                       key=lambda kv: -kv[1])
        labels = [k for k, _ in items]
        vals = [v for _, v in items]
        total = sum(vals)
        colors = [_PHASE_COLORS.get(k, "#4c78a8") for k in labels]
        fig.add_trace(_bar(x=labels, y=vals, marker=dict(color=colors), showlegend=False,
                           text=[f"{100 * v / total:.0f}%" if total else "" for v in vals],
                           textposition="outside", cliponaxis=False,
                           hovertemplate="%{x}: %{y:.4g} s<extra></extra>"), row=1, col=i)
        if i == 1:
            fig.update_yaxes(title=dict(text="time per step (s)"), col=i)
        if total and labels:
            facts.append(f"{name}: {labels[0]} takes {100 * vals[0] / total:.0f}% of the "
                         "operator time")
    _layout(fig, "Where the step time goes", height=420)
    text = ("Operator time per training step by phase and operator kind"
            + (f"; the step takes {_si(step, 's')} (overlap makes the makespan shorter than "
               "the sum of operator times)." if step else "."))
    return Section(id="breakdown", title="Step-time breakdown", text=text, figure=fig,
                   facts=tuple(facts))


def _schedule_rows(run: RunData) -> tuple[list[dict[str, Any]], list[str], str]:
    """Schedule rows (op, unit, start_s, end_s, kind, phase), critical path, source."""
    ev = run.best["evaluation"]
    crit = [str(x) for x in (ev.get("critical_path") or [])]
    for holder in (ev, run.best):
        sched = holder.get("schedule") if isinstance(holder, Mapping) else None
        rows = _rows_from_records(sched)
        if rows:
            return rows, crit, "the schedule stored in best.json"
    rows, chain = _recompute_schedule(run)
    names = {r["op"] for r in rows}
    stored = [c for c in crit if c in names]
    return rows, (stored or chain), ("one micro-batch's forward, backward and optimizer "
                                     "on one device, recomputed with "
                                     "cost_models.evaluate.evaluate_device")


def _rows_from_records(sched: Any) -> list[dict[str, Any]]:
    if isinstance(sched, Mapping):  # columnar {"op": [...], "start_s": [...], ...}
        keys = list(sched)
        n = len(sched[keys[0]]) if keys and isinstance(sched[keys[0]], Sequence) else 0
        sched = [{k: sched[k][i] for k in keys} for i in range(n)]
    if not isinstance(sched, Sequence) or isinstance(sched, str):
        return []
    rows = []
    for r in sched:
        if not isinstance(r, Mapping):
            continue
        start = _num(r.get("start_s", r.get("start")))
        end = _num(r.get("end_s", r.get("end")))
        name = r.get("op", r.get("name"))
        if start is None or end is None or name is None:
            continue
        rows.append({"op": str(name), "unit": str(r.get("unit", r.get("resource", "device"))),
                     "start_s": start, "end_s": end, "kind": str(r.get("kind", "")),
                     "phase": str(r.get("phase", ""))})
    return rows


def _recompute_schedule(run: RunData) -> tuple[list[dict[str, Any]], list[str]]:
    """Re-evaluate the best design's device graph to get a per-op schedule."""
    try:
        from cost_models.evaluate import evaluate_device
        from cost_models.technology import load_technology
        from dse.export.design import load_design, workload_graphs
    except ImportError:
        return [], []
    try:
        design = load_design(run.run_dir)
        if not design.workloads:
            return [], []
        graph = workload_graphs(design)[0]
        tech = load_technology(design.hardware.tech_node_nm)
        fast = _rows_from_device_step(graph, design.hardware, tech)
        if fast[0]:
            return fast
        result = evaluate_device(graph, design.hardware, tech)
    except Exception:
        return [], []
    return _rows_from_result(result, graph)


def _rows_from_device_step(graph: Any, hw: Any, tech: Any) -> tuple[list[dict[str, Any]],
                                                                   list[str]]:
    """Schedule rows from the vectorized model the search uses (``device_step``, one
    design) and its resource-aware chain; the scalar ``evaluate_device`` (the reference,
    several times slower) is the fallback."""
    from cost_models.designs import DesignBatch
    from cost_models.evaluate import device_step, schedule_chain

    step = device_step(graph, DesignBatch.from_configs([hw]), tech)
    units = getattr(step.costs, "unit", None)
    if units is None or len(units) != len(graph.ops):
        return [], []
    rows = []
    for j, op in enumerate(graph.ops):
        start, end = float(step.start_s[0, j]), float(step.end_s[0, j])
        unit = str(units[j])
        rows.append({"op": str(op.name), "unit": _UNIT_NAMES.get(unit, unit),
                     "start_s": start, "end_s": end, "kind": str(op.kind),
                     "phase": str(op.phase)})
    chain = [str(graph.ops[j].name) for j in schedule_chain(graph, step, 0)]
    return rows, chain


_UNIT_NAMES = {"tc": "tensor cores", "vc": "vector cores", "link": "links"}


def _rows_from_result(result: Any, graph: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Adapt a ``cost_models.evaluate.DeviceResult`` (its ``records``) to schedule rows;
    the highlighted path is the resource-aware ``schedule_chain`` (what the makespan
    waited for), else the zero-mobility ``critical_path``."""
    chain = [str(x) for x in (getattr(result, "schedule_chain", None) or [])]
    crit = chain or [str(x) for x in (getattr(result, "critical_path", None) or [])]
    rows = []
    for r in getattr(result, "records", None) or ():
        start, end = _num(getattr(r, "start_s", None)), _num(getattr(r, "end_s", None))
        if start is None or end is None:
            continue
        unit = str(getattr(r, "unit", "device"))
        rows.append({"op": str(r.name), "unit": _UNIT_NAMES.get(unit, unit),
                     "start_s": start, "end_s": end, "kind": str(getattr(r, "kind", "")),
                     "phase": str(getattr(r, "phase", ""))})
    return rows, crit


def _timeline_section(run: RunData) -> Section:
    rows, crit, source = _schedule_rows(run)
    title = "Schedule and critical path"
    if not rows:
        return Section(id="timeline", title=title, text="",
                       note="No per-operator schedule: best.json has none and it could not be "
                            "recomputed (cost_models.evaluate or the workload is unavailable).")
    span = max(r["end_s"] for r in rows) - min(r["start_s"] for r in rows)
    scale, unit = (1e3, "ms") if span >= 1e-3 else (1e6, "µs")
    crit_set = set(crit)
    fig = Figure()
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = "critical path" if r["op"] in crit_set else (r["phase"] or r["kind"] or "op")
        groups.setdefault(key, []).append(r)
    order = sorted(groups, key=lambda k: (k == "critical path", k))
    for key in order:
        rs = groups[key]
        color = _COLORS["critical"] if key == "critical path" else _PHASE_COLORS.get(key, "#9ecae1")
        fig.add_trace(_bar(
            y=[r["unit"] for r in rs], x=[(r["end_s"] - r["start_s"]) * scale for r in rs],
            base=[r["start_s"] * scale for r in rs], orientation="h", name=key,
            marker=dict(color=color, line=dict(color="black" if key == "critical path"
                                               else color, width=1)),
            customdata=[[r["op"], r["kind"], r["phase"]] for r in rs],
            hovertemplate=("%{customdata[0]}<br>%{customdata[1]} / %{customdata[2]}<br>"
                           f"start %{{base:.4g}} {unit}, %{{x:.4g}} {unit}<extra></extra>"),
        ))
    units = sorted({r["unit"] for r in rows})
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title=dict(text=f"time ({unit})"))
    fig.update_yaxes(title=dict(text="execution unit"), categoryorder="array",
                     categoryarray=units)
    _layout(fig, "One training step on the best design (critical path in red)",
            height=max(320, 90 + 45 * len(units)))
    on_path = [r for r in rows if r["op"] in crit_set]
    crit_time = sum(r["end_s"] - r["start_s"] for r in on_path)
    text = (f"{len(rows)} operators on {len(units)} units ({source}). The critical path has "
            f"{len(crit)} operators"
            + (f" and {_si(crit_time, 's')} of busy time out of a {_si(span, 's')} makespan."
               if on_path else "."))
    return Section(id="timeline", title=title, text=text, figure=fig)


def _pie_or_bar(fig: Figure, data: Mapping[str, Any], row: int, col: int, unit: str) -> float:
    items = [(str(k), float(v)) for k, v in data.items()
             if _num(v) is not None and str(k).lower() not in _SUBTOTALS and float(v) > 0]
    items.sort(key=lambda kv: -kv[1])
    fig.add_trace(dict(type="pie", labels=[k for k, _ in items], values=[v for _, v in items],
                       hole=0.45, sort=False, textinfo="label+percent",
                       hovertemplate=f"%{{label}}: %{{value:.4g}} {unit}<extra></extra>",
                       showlegend=False), row=row, col=col)
    return sum(v for _, v in items)


def _area_power_section(run: RunData) -> Section:
    ev = run.best["evaluation"]
    area = ev.get("area_breakdown_mm2")
    power = ev.get("power_breakdown_w")
    if not isinstance(area, Mapping) and not isinstance(power, Mapping):
        return Section(id="area-power", title="Area and power", text="",
                       note="best.json evaluation has no area/power breakdown.")
    fig = Figure(rows=1, cols=2, specs=[[{"type": "domain"}, {"type": "domain"}]],
                 subplot_titles=(f"area: {_si(_num(ev.get('area_mm2')), 'mm²')}",
                                        f"TDP: {_si(_num(ev.get('tdp_w')), 'W')}"))
    if isinstance(area, Mapping):
        _pie_or_bar(fig, area, 1, 1, "mm²")
    if isinstance(power, Mapping):
        _pie_or_bar(fig, power, 1, 2, "W")
    _layout(fig, "Area and power breakdown of the best design", height=440)
    return Section(id="area-power", title="Area and power", text=(
        "Per-component area (mm²) and TDP (W, everything busy at the clock) from the cost "
        "model's technology constants."), figure=fig)


def _convergence_section(run: RunData) -> Section:
    conv = run.summary.get("convergence")
    series: dict[str, list[tuple[float, float]]] = {}
    if isinstance(conv, Sequence) and not isinstance(conv, str):
        for p in conv:
            if not isinstance(p, Mapping):
                continue
            e, b = _num(p.get("evaluations")), _num(p.get("best"))
            if e is None or b is None:
                continue
            series.setdefault(str(p.get("searcher") or run.summary.get("searcher") or "search"),
                              []).append((e, b))
    if not series:
        return Section(id="convergence", title="Search convergence", text="",
                       note="summary.json has no 'convergence'.")
    fig = Figure()
    facts = []
    for name, pts in sorted(series.items()):
        pts.sort()
        xs = [p[0] for p in pts]
        ys = np.maximum.accumulate([p[1] for p in pts]).tolist()
        fig.add_trace(_scatter(x=xs, y=ys, mode="lines+markers", name=name,
                               line=dict(shape="hv", width=2), marker=dict(size=5)))
        final = ys[-1]
        reach = next((x for x, y in zip(xs, ys) if y >= 0.99 * final), xs[-1])
        facts.append(f"{name}: best {_si(final)} after {int(xs[-1])} evaluations, within 1% "
                     f"of it after {int(reach)}")
    fig.update_xaxes(title=dict(text="designs evaluated"), type="log" if max(
        max(p[0] for p in s) for s in series.values()) > 1000 else "linear")
    fig.update_yaxes(title=dict(text=f"best so far ({_objective_label(run.summary)})"))
    _layout(fig, "Search convergence per searcher", height=420)
    return Section(id="convergence", title="Search convergence", text=(
        "Best objective found so far against the number of designs evaluated."),
        figure=fig, facts=tuple(facts))


def _plan_label(plan: Mapping[str, Any]) -> str:
    parts = [f"tp{plan.get('tp', 1)}", f"pp{plan.get('pp', 1)}", f"dp{plan.get('dp', 1)}"]
    extra = []
    if plan.get("micro_batch") is not None:
        extra.append(f"mb{plan.get('micro_batch')}")
    if plan.get("schedule"):
        extra.append(str(plan.get("schedule")))
    if plan.get("recompute") not in (None, "none"):
        extra.append(f"rc:{plan.get('recompute')}")
    return "×".join(parts) + (" " + " ".join(extra) if extra else "")


def _plans_section(run: RunData) -> Section:
    plans = run.summary.get("plans")
    rows = []
    if isinstance(plans, Sequence) and not isinstance(plans, str):
        for p in plans:
            if not isinstance(p, Mapping):
                continue
            plan = _mapping(p.get("plan")) or p
            thr = _metric(p, "samples_per_s")
            if thr is None:
                continue
            fits = p.get("fits_memory", _mapping(p.get("evaluation")).get("fits_memory", True))
            rows.append((_plan_label(plan), thr, _metric(p, "step_time_s"), bool(fits), plan))
    if not rows:
        return Section(id="plans", title="Parallel plans compared", text="",
                       note="summary.json has no 'plans' (a single plan was evaluated).")
    chosen = run.best.get("plan") or run.summary.get("plan") or {}
    chosen_label = _plan_label(chosen) if isinstance(chosen, Mapping) and chosen else None
    rows.sort(key=lambda r: -r[1])
    colors = [_COLORS["best"] if r[0] == chosen_label else
              (_COLORS["front"] if r[3] else _COLORS["infeasible"]) for r in rows]
    fig = Figure()
    fig.add_trace(_bar(
        x=[r[0] for r in rows], y=[r[1] for r in rows], marker=dict(color=colors),
        customdata=[[_si(r[2], "s"), "fits" if r[3] else "does not fit"] for r in rows],
        hovertemplate="%{x}<br>%{y:.4g} samples/s<br>step %{customdata[0]}, memory "
                      "%{customdata[1]}<extra></extra>"))
    fig.update_yaxes(title=dict(text="samples/s"))
    fig.update_xaxes(title=dict(text="plan (tensor × pipeline × data parallel)"),
                     tickangle=-30)
    _layout(fig, "Parallel plans of the best design (chosen plan in red, grey: does not fit "
                 "memory)", height=460)
    return Section(id="plans", title="Parallel plans compared", text=(
        f"{len(rows)} tensor/pipeline/data-parallel plans evaluated for the best design."),
        figure=fig)


def _links_section(run: RunData) -> Section:
    """Links against tensor cores at the same budget (``summary.json`` ``link_tradeoff``,
    :mod:`search.tradeoff`)."""
    rows = [r for r in run.summary.get("link_tradeoff") or () if isinstance(r, Mapping)
            and r.get("feasible") and _num(r.get("samples_per_s")) is not None]
    title = "Links versus tensor cores"
    if not rows:
        return Section(id="links", title=title, text="", note=(
            "summary.json has no 'link_tradeoff' (one device: the links carry nothing)."))
    best = next((r for r in rows if r.get("is_best")), rows[0])
    ref = float(best["samples_per_s"]) or 1.0  # the mined links, refilled like every cell
    fig = Figure()
    for bw in sorted({float(r["link_bw_bytes_per_s"]) for r in rows}):
        sel = sorted((r for r in rows if float(r["link_bw_bytes_per_s"]) == bw),
                     key=lambda r: int(r["link_count"]))
        fig.add_trace(_bar(
            name=f"{_si(bw, 'B/s')} per link", x=[f"{r['link_count']} links" for r in sel],
            y=[r["samples_per_s"] for r in sel],
            customdata=[[r["tensor_cores"], f"{r['links_area_mm2']:.1f}",
                         f"{100 * float(r['all_to_all_share']):.1f}",
                         f"{100 * (float(r['samples_per_s']) / ref - 1):+.1f}"] for r in sel],
            hovertemplate="%{x}, " + _si(bw, "B/s") + " each<br>%{y:.4g} samples/s "
                          "(%{customdata[3]}% vs the best)<br>%{customdata[0]} tensor cores, "
                          "links %{customdata[1]} mm²<br>all-to-all %{customdata[2]}% of the "
                          "step<extra></extra>"))
    fig.update_yaxes(title=dict(text="samples/s"))
    fig.update_xaxes(title=dict(text="links per chip"))
    fig.update_layout(barmode="group")
    _layout(fig, "The best design with other links, refilled with tensor cores to the same "
                 "budget", height=440)
    top = max(rows, key=lambda r: float(r["samples_per_s"]))
    facts = tuple(
        f"{r['link_count']} × {_si(float(r['link_bw_bytes_per_s']), 'B/s')}: "
        f"{r['tensor_cores']} tensor cores, links {float(r['links_area_mm2']):.1f} mm², "
        f"{float(r['samples_per_s']):.4g} samples/s "
        f"({100 * (float(r['samples_per_s']) / ref - 1):+.1f} %), all-to-all "
        f"{100 * float(r['all_to_all_share']):.1f} % of the step"
        + (" (the mined design's links)" if r.get("is_best") else "") for r in rows)
    return Section(id="links", title=title, text=(
        "Each bar is the mined design with another link count and per-link bandwidth, its "
        "tensor cores refilled to the same area and power budget (link PHY area and energy "
        "from the technology table); nothing else changes. "
        f"Best here: {top['link_count']} links of "
        f"{_si(float(top['link_bw_bytes_per_s']), 'B/s')} with {top['tensor_cores']} tensor "
        f"cores ({100 * (float(top['samples_per_s']) / ref - 1):+.1f} % against the mined "
        "design's links)."), figure=fig, facts=facts)


def build_sections(run: RunData) -> list[Section]:
    """All report sections in order (see :data:`SECTION_IDS`)."""
    return [_pareto_section(run), _baselines_section(run), _breakdown_section(run),
            _timeline_section(run), _area_power_section(run), _convergence_section(run),
            _plans_section(run), _links_section(run)]


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;color:#cfd8e3}
main{max-width:1320px;margin:0 auto;padding:12px 32px 40px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:18px 0;
padding:12px 18px}
section h2{font-size:19px;margin:6px 0} p.text{margin:4px 0 8px;color:#444}
p.note{color:#8a6d3b;background:#fcf8e3;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border-bottom:1px solid #eee;padding:4px 10px;text-align:left}
th{background:#f3f5f7} ul.facts{margin:6px 0 0 0} .grid{display:flex;gap:28px;flex-wrap:wrap}
nav a{margin-right:14px;color:#1f77b4;text-decoration:none;font-size:14px}
"""


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _overview(run: RunData) -> tuple[str, list[str]]:
    s, hw, ev = run.summary, run.best["hardware"], run.best["evaluation"]
    workloads = s.get("workloads") or run.best.get("workload") or "?"
    if isinstance(workloads, (list, tuple)):
        workloads = ", ".join(map(str, workloads))
    run_rows = [
        ("workload(s)", str(workloads)),
        ("objective", str(s.get("objective", "?"))),
        ("searcher", str(s.get("searcher", "?"))),
        ("budget", f"{_si(_num(s.get('area_mm2')), 'mm²')} area, "
                   + (f"{_si(_num(s.get('power_w')), 'W')} TDP" if _num(s.get("power_w"))
                      else "no power limit")),
        ("designs evaluated", str(s.get("evaluations", len(run.designs)))),
        ("search wall time", _si(_num(s.get("wall_s")), "s")),
        ("seed", str(s.get("seed", "–"))),
    ]
    plan = run.best.get("plan") or s.get("plan")
    if isinstance(plan, Mapping):
        run_rows.append(("parallel plan", _plan_label(plan)))
    hw_rows = [
        ("name", str(hw.get("name", "?"))),
        ("tensor cores", f"{hw.get('tensor_cores', '?')} × {hw.get('array_rows', '?')}×"
                         f"{hw.get('array_cols', '?')} {str(hw.get('dataflow', '')).upper()}"),
        ("vector cores", f"{hw.get('vector_cores', '?')} × {hw.get('vector_lanes', '?')} lanes"),
        ("on-chip SRAM", f"{_bytes(_num(hw.get('sram_per_core_bytes')))} per core, "
                         f"{_bytes(_num(hw.get('global_buffer_bytes')))} global"),
        ("HBM", f"{_bytes(_num(hw.get('hbm_bytes')))} at "
                f"{_si(_num(hw.get('hbm_bw_bytes_per_s')), 'B/s')}"),
        ("clock, dtype", f"{_si(_num(hw.get('freq_hz')), 'Hz')}, {hw.get('dtype', '?')}"),
        ("peak", _si(_num(hw.get("peak_flop_per_s")), "FLOP/s")),
    ]
    ev_rows = [
        ("step time", _si(_num(ev.get("step_time_s")), "s")),
        ("throughput", f"{_si(_num(ev.get('samples_per_s')))} samples/s"),
        ("achieved per device", _si(_num(ev.get("achieved_flop_per_s_per_device")), "FLOP/s")),
        ("utilization", f"{100 * (_num(ev.get('utilization')) or 0):.1f}%"),
        ("area, TDP", f"{_si(_num(ev.get('area_mm2')), 'mm²')}, {_si(_num(ev.get('tdp_w')), 'W')}"),
        ("energy per step", _si(_num(ev.get("energy_per_step_j")), "J")),
        ("memory per device", f"{_bytes(_num(ev.get('memory_per_device_bytes')))} "
                              f"({'fits' if ev.get('fits_memory') else 'does NOT fit'} HBM)"),
    ]
    per = _mapping(s.get("per_workload"))
    multi = len(per) > 1
    ev_title = "Its evaluation" + (f" ({next(iter(per))}, the first workload)" if multi else "")
    block = ('<div class="grid"><div><h3>Run</h3>' + _table(run_rows) + "</div>"
             '<div><h3>Best design</h3>' + _table(hw_rows) + "</div>"
             f'<div><h3>{html.escape(ev_title)}</h3>' + _table(ev_rows) + "</div></div>")
    if multi:
        block += _workloads_table(s, per)
    top = run.summary.get("top_k")
    if isinstance(top, Sequence) and len(top) > 1:
        head = ("<tr><th>#</th><th>design</th><th>samples/s</th><th>area</th><th>TDP</th>"
                "<th>samples/s/W</th></tr>")
        body = ""
        for i, e in enumerate(top, start=1):
            if not isinstance(e, Mapping):
                continue
            h = _mapping(e.get("hardware"))
            thr, tdp = _throughput(e), _metric(e, "tdp_w")
            # every searched parameter, so rows that differ only in one still differ
            desc = (f"{h.get('tensor_cores', '?')}×{h.get('array_rows', '?')}×"
                    f"{h.get('array_cols', '?')} {h.get('dataflow', '')}, "
                    f"{h.get('vector_cores', '?')}×{h.get('vector_lanes', '?')} lanes, "
                    f"{_bytes(_num(h.get('sram_per_core_bytes')))}/core + "
                    f"{_bytes(_num(h.get('global_buffer_bytes')))}, "
                    f"{h.get('hbm_stacks', '?')} HBM stacks"
                    + (f", {h.get('link_count')} links" if h.get("link_count") else ""))
            body += (f"<tr><td>{i}</td><td>{html.escape(desc)}</td><td>{_si(thr)}</td>"
                     f"<td>{_si(_metric(e, 'area_mm2'), 'mm²')}</td><td>{_si(tdp, 'W')}</td>"
                     f"<td>{_si(thr / tdp if thr and tdp else None)}</td></tr>")
        block += f"<h3>Top {len(top)} designs</h3><table>{head}{body}</table>"
    crit = ev.get("critical_path") or []
    facts = []
    if crit:
        facts.append(f"critical path: {len(crit)} operators, from {crit[0]} to {crit[-1]}")
    return block, facts


def _workloads_table(s: Mapping[str, Any], per: Mapping[str, Any]) -> str:
    """Every workload's throughput and plan on the best design, its margin over each
    baseline, and the geometric mean the search maximized (multi-workload runs)."""
    names = list(per)
    bases = sorted({b for w in per.values() for b in _mapping(_mapping(w).get("over_baselines"))})
    head = ("<tr><th>workload</th><th>samples/s</th><th>parallel plan</th>"
            + "".join(f"<th>× {html.escape(b)}</th>" for b in bases) + "</tr>")
    body = ""
    for n in names:
        w = _mapping(per[n])
        over = _mapping(w.get("over_baselines"))
        plan = w.get("plan")
        body += (f"<tr><td>{html.escape(str(n))}</td><td>{_si(_num(w.get('samples_per_s')))}"
                 f"</td><td>{html.escape(_plan_label(plan) if isinstance(plan, Mapping) else '–')}"
                 "</td>" + "".join(f"<td>{_ratio(_num(over.get(b)))}</td>" for b in bases)
                 + "</tr>")
    mean = _mapping(s.get("mean"))
    geo = _mapping(mean.get("geomean_over_baselines"))
    body += (f"<tr><th>geometric mean (the objective)</th>"
             f"<th>{_si(_num(mean.get('geomean_samples_per_s')))}</th><th></th>"
             + "".join(f"<th>{_ratio(_num(geo.get(b)))}</th>" for b in bases) + "</tr>")
    return (f"<h3>Per workload ({len(names)} workloads; the search maximized the geometric "
            f"mean of their samples/s)</h3><table>{head}{body}</table>")


def _throughput(entry: Mapping[str, Any]) -> float | None:
    """samples/s of a summary entry: the geometric mean over its workloads when it has
    several (what designs.csv holds and the search maximized), else its own."""
    wl = _mapping(entry.get("workloads"))
    vals = [_num(_mapping(_mapping(w).get("evaluation")).get("samples_per_s"))
            for w in wl.values()]
    if len(vals) > 1 and all(v is not None and v > 0 for v in vals):
        return float(np.exp(np.mean(np.log(np.asarray(vals, dtype=float)))))
    return _metric(entry, "samples_per_s")


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}×"


def render_html(run: RunData, sections: list[Section]) -> str:
    """The self-contained report page (plotly.js inlined once)."""
    hw_name = str(run.best["hardware"].get("name", "best design"))
    title = f"dse report: {hw_name}"
    overview, facts = _overview(run)
    for sec in sections:
        facts.extend(sec.facts)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>",
        '<script type="text/javascript">', plotly_js(), "</script>",
        "</head><body>",
        f"<header><h1>{html.escape(title)}</h1><p>run directory "
        f"{html.escape(str(run.run_dir))} · generated by dse</p></header><main>",
        "<nav>" + "".join(f'<a href="#sec-{s.id}">{html.escape(s.title)}</a>'
                          for s in sections) + "</nav>",
        '<section id="sec-overview"><h2>Overview</h2>', overview,
    ]
    if facts:
        parts.append("<h3>Why this design</h3><ul class=\"facts\">"
                     + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>")
    parts.append("</section>")
    config = {"displaylogo": False, "responsive": True}
    for sec in sections:
        parts.append(f'<section id="sec-{sec.id}"><h2>{html.escape(sec.title)}</h2>')
        if sec.text:
            parts.append(f'<p class="text">{html.escape(sec.text)}</p>')
        if sec.figure is not None:
            parts.append(sec.figure.to_html(div_id=f"fig-{sec.id}", config=config))
        if sec.note:
            parts.append(f'<p class="note">{html.escape(sec.note)}</p>')
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_images(run_dir: str | Path, sections: list[Section],
                 formats: tuple[str, ...] = ("png", "svg")) -> tuple[list[Path], str | None]:
    """Write each figure as PNG/SVG under ``RUN_DIR/report_images``.

    Returns ``(paths, None)`` on success and ``([], hint)`` when kaleido or a
    Chrome/Chromium is missing (the hint is :data:`IMAGES_HINT` plus the cause).
    """
    figs = [(s.id, s.figure) for s in sections if s.figure is not None]
    import importlib.util

    import plotly.io as pio

    if importlib.util.find_spec("kaleido") is None:
        return [], IMAGES_HINT + " (kaleido is not installed)"
    out = Path(run_dir) / "report_images"
    out.mkdir(exist_ok=True)
    paths = [out / f"{sid}.{fmt}" for sid, _ in figs for fmt in formats]
    fig_list = [fig.to_plotly() for _, fig in figs for _ in formats]
    try:
        if hasattr(pio, "write_images"):
            pio.write_images(fig_list, paths, width=1200, height=None)
        else:  # pragma: no cover - plotly < 6.1
            for fig, p in zip(fig_list, paths):
                fig.write_image(p, width=1200)
    except Exception as e:
        cause = " ".join(str(e).split())[:160] or e.__class__.__name__
        return [], f"{IMAGES_HINT} ({cause})"
    return [p for p in paths if p.exists()], None


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    """What :func:`generate_report` wrote."""

    path: Path
    images: tuple[Path, ...] = ()
    images_hint: str | None = None
    sections: tuple[str, ...] = ()
    """Ids of the sections that have a figure."""


def generate_report(run_dir: str | Path, images: bool = False) -> ReportResult:
    """Write ``RUN_DIR/report.html`` (and the figures as PNG/SVG when ``images``)."""
    run = load_run(run_dir)
    try:
        sections = build_sections(run)
        html = render_html(run, sections)
    except (TypeError, KeyError, AttributeError, IndexError) as e:
        # load_run checked the files' shape; a field of the wrong type deeper inside
        # (a hand-edited or foreign summary.json/best.json) is the run directory's fault
        why = " ".join(str(e).split())[:160]
        raise ConfigError(f"{run.run_dir}: summary.json or best.json has a field of the "
                          f"wrong kind ({e.__class__.__name__}: {why}); rerun the search "
                          "or restore the files dse wrote") from None
    out = run.run_dir / "report.html"
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory; the report is written to that path")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:  # atomic: a reader (or a full disk) never sees half a report
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        if e.errno in NOT_WRITABLE_ERRNOS:
            raise ConfigError(f"{out}: cannot write the report there ({e.strerror}); copy "
                              "the run directory somewhere writable") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    paths: list[Path] = []
    hint = None
    if images:
        paths, hint = write_images(run.run_dir, sections)
    return ReportResult(path=out, images=tuple(paths), images_hint=hint,
                        sections=tuple(s.id for s in sections if s.figure is not None))


def write_report(run_dir: str | Path, images: bool = False) -> Path:
    """Write ``RUN_DIR/report.html`` (and PNG/SVG figures when ``images``); return its path.

    Raises :class:`ConfigError` naming the missing or malformed run-directory file. When
    images are requested but cannot be made, the report is still written; use
    :func:`generate_report` to get the hint (``dse report`` prints it).
    """
    return generate_report(run_dir, images=images).path
