"""dse.figures writes the JSON plotly.py would: subplot layouts as make_subplots lays them
out, vertical lines as add_vline draws them, and every report figure passes plotly's own
validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dse.figures import Figure, plotly_js


@pytest.mark.parametrize("cols,spacing", [(1, None), (2, None), (3, None), (2, 0.1)])
def test_subplot_layout_matches_make_subplots(cols: int, spacing: float | None) -> None:
    from plotly.subplots import make_subplots

    titles = tuple(f"t{c}" for c in range(cols))
    kw = {} if spacing is None else {"horizontal_spacing": spacing}
    ref = make_subplots(rows=1, cols=cols, subplot_titles=titles, **kw).to_plotly_json()
    mine = Figure(rows=1, cols=cols, subplot_titles=titles, **kw).to_dict()["layout"]
    for c in range(cols):
        sfx = "" if c == 0 else str(c + 1)
        for ax in (f"xaxis{sfx}", f"yaxis{sfx}"):
            assert mine[ax]["domain"] == pytest.approx(list(ref["layout"][ax]["domain"]))
            assert mine[ax]["anchor"] == ref["layout"][ax]["anchor"]
    got = [(a["text"], a["x"], a["y"]) for a in mine["annotations"]]
    want = [(a["text"], a["x"], a["y"]) for a in ref["layout"]["annotations"]]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose([g[1:] for g in got], [w[1:] for w in want])


def test_traces_land_on_their_subplot_and_pies_in_their_domain() -> None:
    from plotly.subplots import make_subplots

    f = Figure(rows=1, cols=2)
    f.add_trace({"type": "bar", "x": ["a"], "y": [1]}, row=1, col=2)
    f.add_trace({"type": "bar", "x": ["a"], "y": [1]}, row=1, col=1)
    assert [(t.xaxis, t.yaxis) for t in f.data] == [("x2", "y2"), ("x", "y")]
    specs = [[{"type": "domain"}, {"type": "domain"}]]
    pies = Figure(rows=1, cols=2, specs=specs)
    pies.add_trace({"type": "pie", "labels": ["a"], "values": [1.0]}, row=1, col=2)
    ref = make_subplots(rows=1, cols=2, specs=specs)
    import plotly.graph_objects as go

    ref.add_trace(go.Pie(labels=["a"], values=[1.0]), row=1, col=2)
    assert pies.data[0].domain.x == pytest.approx(list(ref.data[0].domain.x))
    assert pies.data[0]["values"] == [1.0]  # a property named like a dict method
    with pytest.raises(ValueError, match="col=3"):
        f.add_trace({"type": "bar"}, col=3)


def test_vline_as_plotly_draws_it() -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ref = make_subplots(rows=1, cols=2)
    ref.add_trace(go.Scatter(x=[0, 1], y=[0, 1]), row=1, col=2)
    ref.add_vline(x=0.5, line=dict(dash="dash"), row=1, col=2, annotation_text="budget",
                  annotation_position="top left")
    mine = Figure(rows=1, cols=2)
    mine.add_vline(x=0.5, col=2, line=dict(dash="dash"), annotation_text="budget")
    r, m = ref.to_plotly_json()["layout"], mine.to_dict()["layout"]
    for key in ("type", "x0", "x1", "xref", "y0", "y1", "yref"):
        assert m["shapes"][0][key] == r["shapes"][0][key], key
    for key in ("text", "x", "xref", "y", "yref", "xanchor", "yanchor", "showarrow"):
        assert m["annotations"][0][key] == r["annotations"][0][key], key


def test_json_has_no_nan_and_no_early_script_end() -> None:
    f = Figure()
    f.add_trace({"type": "scatter", "x": np.array([1.0, math.nan, 3.0]), "y": [1, 2, 3],
                 "hovertext": ["</script><b>x</b>", "b", "c"], "name": np.str_("s")})
    d = json.loads(f.to_json())
    assert d["data"][0]["x"] == [1.0, None, 3.0]
    page = f.to_html("fig-x", {"responsive": True})
    assert "</script>" not in page[:-len("</script>")]
    assert page.startswith('<div id="fig-x"')


def test_every_report_figure_passes_plotly_validation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """go.Figure(dict) raises on any property plotly.js does not know."""
    from dse.report import SECTION_IDS, build_sections, load_run
    from tests.dse.test_report import make_run_dir

    run = make_run_dir(tmp_path)
    figs = [s.figure for s in build_sections(load_run(run)) if s.figure is not None]
    assert len(figs) == len(SECTION_IDS) == 8
    for fig in figs:
        fig.to_plotly()


def test_plotly_js_is_the_bundled_file() -> None:
    import plotly.offline

    assert plotly_js() == plotly.offline.get_plotlyjs()
