"""The docs' screenshots come from a real browser (issue 15): headless Chromium loads a
multi-workload report and optuna-dashboard's study page (``benchmarks/screenshots.py``,
which writes ``docs/report-multi-workload.png`` and ``docs/dashboard-importance.png``),
and the test checks what each page shows and that a picture was taken."""

from __future__ import annotations

import importlib.util
import re
import struct
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _shots():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("screenshots",
                                                  ROOT / "benchmarks" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _distinct_rows(png: Path) -> int:
    """How many different pixel rows the PNG has (1 for a blank page)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 4
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, _depth, color = struct.unpack(">IIBB", body[:10])
            bpp = {2: 3, 6: 4}.get(color, 4)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    # filter bytes differ between identical rows; compare the filtered payloads of rows
    # with filter type 0 or 2 ("up": a row equal to the one above is all zeros)
    rows = {raw[i * stride + 1:(i + 1) * stride] for i in range(height)}
    return len(rows)


def test_the_multi_workload_report_and_the_dashboard_in_a_real_browser(tmp_path: Path) -> None:
    shots = _shots()
    binary = shots.chromium()
    if binary is None:
        pytest.skip("no chromium on PATH (apt-get install chromium, or set DSE_CHROMIUM)")
    pytest.importorskip("optuna_dashboard", reason="the dashboard extra is not installed")

    page = shots.multi_workload_report(tmp_path, ("search", "--workload", "gpt2,bert-base",
                                                  "--area", "300", "--searcher", "random",
                                                  "--budget", "30", "--seed", "1"))
    html = shots.dom(binary, page.as_uri(), tmp_path)
    assert "Per workload" in html and "geometric mean (the objective)" in html
    assert "gpt2" in html and "bert-base" in html
    assert 'class="main-svg"' in html  # plotly drew its figures
    png = shots.screenshot(binary, page.as_uri(), tmp_path / "report.png", tmp_path)
    assert _distinct_rows(png) > 100

    with shots.dashboard(tmp_path, ("search", "--workload", "gpt2", "--area", "300",
                                    "--searcher", "optuna", "--budget", "40", "--seed", "0",
                                    "--no-report")) as url:
        html = shots.dom(binary, url, tmp_path)
        png = shots.screenshot(binary, url, tmp_path / "dashboard.png", tmp_path)
    assert "Hyperparameter Importance" in html
    # the importances are of the design parameters, in physical units
    names = set(re.findall(r"\b(tensor_cores|sram_per_core_mib|global_buffer_mib|hbm_stacks)\b",
                           html))
    assert {"tensor_cores", "sram_per_core_mib"} <= names, names
    assert _distinct_rows(png) > 100
