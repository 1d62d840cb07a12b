"""Plotly figures as plain data: the JSON that plotly.js draws, built without plotly's
Python object layer.

The report (:mod:`dse.report`) draws a handful of scatter, bar and pie charts. Building
them as ``plotly.graph_objects`` validates every property through plotly's validator
classes, which cost more than half a second of CPU per report (more than the search of
the README's job spends on some of its phases, issue 11). The figures here are the same
JSON (``{"data": [...], "layout": {...}}``, plotly.js's schema), written directly:

* :class:`Figure` holds traces and a layout; ``Figure(rows=1, cols=n)`` lays out subplots
  as ``plotly.subplots.make_subplots`` does (axis domains, titles as annotations,
  ``"domain"`` cells for pies);
* :meth:`Figure.to_html` writes the ``<div>`` and the ``Plotly.newPlot`` call;
* :meth:`Figure.to_plotly` turns it into a ``plotly.graph_objects.Figure`` where plotly's
  Python side is needed (PNG/SVG export through kaleido), which also validates it.

Traces and layouts read like plotly's objects (``fig.data[0].x``,
``fig.layout.xaxis.range``); a property never set reads as ``None``.

>>> f = Figure(rows=1, cols=2, subplot_titles=("a", "b"))
>>> f.add_trace({"type": "bar", "x": ["p"], "y": [1.0]}, row=1, col=2)
>>> f.data[0].xaxis, f.layout.xaxis2.domain
('x2', [0.55, 1.0])
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Figure", "Props", "plotly_js"]


class Props:
    """A read view of a trace or layout dict whose keys read as attributes (``t.name``,
    ``t.values``: no method names are in the way); unset keys read as ``None``, nested
    dicts as :class:`Props`."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_d", d)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self[key]

    def __getitem__(self, key: str) -> Any:
        v = self._d.get(key)
        return Props(v) if isinstance(v, Mapping) else v

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __iter__(self) -> Any:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        return self._d == (other._d if isinstance(other, Props) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Props({self._d!r})"


def _merge(dst: dict, src: Mapping[str, Any]) -> None:  # type: ignore[type-arg]
    """Deep-merge ``src`` into ``dst`` (nested dicts merged, everything else replaced)."""
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        elif isinstance(v, Mapping):
            dst[k] = {}
            _merge(dst[k], v)
        else:
            dst[k] = _plain(v)


def _plain(v: Any) -> Any:
    """Arrays and tuples as lists, numpy scalars as Python numbers (what JSON takes)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _json_safe(v: Any) -> Any:
    """NaN and infinities as ``null`` (plotly.js draws them as gaps, as plotly.py does)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return _plain(v) if isinstance(v, (np.ndarray, np.generic, tuple)) else v


class Figure:
    """Traces and a layout in plotly.js's schema, with subplots in one row.

    ``rows``/``cols``: the subplot grid (one row is all the report needs);
    ``specs``: ``[[{"type": "domain"}, ...]]`` marks cells for pies (no axes);
    ``horizontal_spacing``: the gap between columns as a fraction of the width (plotly's
    default ``0.2 / cols``).
    """

    def __init__(self, rows: int = 1, cols: int = 1, *,
                 subplot_titles: Sequence[str] = (),
                 specs: Sequence[Sequence[Mapping[str, Any]]] | None = None,
                 horizontal_spacing: float | None = None) -> None:
        if rows != 1:
            raise ValueError(f"rows={rows}: only one row of subplots is supported")
        if cols < 1:
            raise ValueError(f"cols={cols}: a figure needs at least one column")
        self._data: list[dict[str, Any]] = []
        self._layout: dict[str, Any] = {}
        self._cols = int(cols)
        gap = 0.2 / cols if horizontal_spacing is None else float(horizontal_spacing)
        width = (1.0 - gap * (cols - 1)) / cols
        self._domains = [[round(c * (width + gap), 12), round(c * (width + gap) + width, 12)]
                         for c in range(cols)]
        self._kinds = [str((specs[0][c] or {}).get("type", "xy")) if specs else "xy"
                       for c in range(cols)]
        for c in range(cols):
            if self._kinds[c] == "xy":
                sfx = "" if c == 0 else str(c + 1)
                self._layout[f"xaxis{sfx}"] = {"domain": list(self._domains[c]),
                                               "anchor": f"y{sfx}"}
                self._layout[f"yaxis{sfx}"] = {"domain": [0.0, 1.0], "anchor": f"x{sfx}"}
        notes = [{"text": t, "x": (d[0] + d[1]) / 2, "y": 1.0, "xref": "paper",
                  "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                  "showarrow": False, "font": {"size": 16}}
                 for t, d in zip(subplot_titles, self._domains) if t]
        if notes:
            self._layout["annotations"] = notes

    @property
    def data(self) -> tuple[Props, ...]:
        """The traces, in drawing order."""
        return tuple(Props(t) for t in self._data)

    @property
    def layout(self) -> Props:
        return Props(self._layout)

    # -- building ---------------------------------------------------------------------
    def _suffix(self, col: int | None) -> str:
        c = 1 if col is None else int(col)
        if not 1 <= c <= self._cols:
            raise ValueError(f"col={col}: the figure has {self._cols} column(s)")
        return "" if c == 1 else str(c)

    def add_trace(self, trace: Mapping[str, Any], row: int | None = None,
                  col: int | None = None) -> None:
        """Append a trace (``{"type": "scatter", ...}``) to the subplot at ``col``."""
        t: dict[str, Any] = {}
        _merge(t, trace)
        if col is not None or self._cols > 1 or self._kinds[0] != "xy":
            c = 1 if col is None else int(col)
            sfx = self._suffix(c)
            if self._kinds[c - 1] == "xy":
                t.setdefault("xaxis", f"x{sfx}")
                t.setdefault("yaxis", f"y{sfx}")
            else:
                t["domain"] = {"x": list(self._domains[c - 1]), "y": [0.0, 1.0]}
        self._data.append(t)

    def update_layout(self, **props: Any) -> None:
        _merge(self._layout, props)

    def _axes(self, letter: str, col: int | None) -> list[str]:
        if col is not None:
            return [f"{letter}axis{self._suffix(col)}"]
        names = [k for k in self._layout if k.startswith(f"{letter}axis")]
        return names or [f"{letter}axis"]

    def update_xaxes(self, col: int | None = None, row: int | None = None,
                     **props: Any) -> None:
        """Set properties of every x axis, or of the one in ``col``."""
        for name in self._axes("x", col):
            _merge(self._layout.setdefault(name, {}), props)

    def update_yaxes(self, col: int | None = None, row: int | None = None,
                     **props: Any) -> None:
        """Set properties of every y axis, or of the one in ``col``."""
        for name in self._axes("y", col):
            _merge(self._layout.setdefault(name, {}), props)

    def add_vline(self, x: float, col: int | None = None, *, line: Mapping[str, Any],
                  annotation_text: str | None = None) -> None:
        """A vertical line across the subplot at ``x`` (plotly's ``add_vline``), labelled
        at its top left."""
        sfx = self._suffix(col)
        self._layout.setdefault("shapes", []).append(
            {"type": "line", "x0": x, "x1": x, "xref": f"x{sfx}", "y0": 0, "y1": 1,
             "yref": f"y{sfx} domain", "line": dict(line)})
        if annotation_text:
            self._layout.setdefault("annotations", []).append(
                {"text": annotation_text, "x": x, "xref": f"x{sfx}", "y": 1,
                 "yref": f"y{sfx} domain", "xanchor": "right", "yanchor": "top",
                 "showarrow": False})

    # -- output -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"data": [...], "layout": {...}}`` with plain JSON values."""
        return {"data": [_json_safe(t) for t in self._data],
                "layout": _json_safe(self._layout)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    def to_html(self, div_id: str, config: Mapping[str, Any] | None = None) -> str:
        """A ``<div>`` and the script that draws the figure into it (plotly.js must be
        loaded by the page)."""
        d = self.to_dict()

        def js(v: Any) -> str:  # "</" never closes the script element early
            return json.dumps(v, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")

        height = d["layout"].get("height")
        style = f"height:{int(height)}px; width:100%;" if height else "height:100%; width:100%;"
        return (f'<div id="{div_id}" class="plotly-graph-div" style="{style}"></div>'
                '<script type="text/javascript">'
                f'if (document.getElementById({js(div_id)})) {{ Plotly.newPlot({js(div_id)}, '
                f'{js(d["data"])}, {js(d["layout"])}, {js(dict(config or {}))}); }}'
                "</script>")

    def to_plotly(self) -> Any:
        """The same figure as a ``plotly.graph_objects.Figure`` (validated by plotly)."""
        import plotly.graph_objects as go

        return go.Figure(self.to_dict())


def plotly_js() -> str:
    """The minified plotly.js bundled with the installed plotly (read from its package
    data, without importing plotly's Python modules)."""
    from importlib import resources

    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(
            encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - unusual layout
        import plotly.offline

        return str(plotly.offline.get_plotlyjs())
