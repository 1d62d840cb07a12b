"""`dse dashboard`: optuna-dashboard's JSON API on a search study, headless (in-process
WSGI calls), and the hint when the extra is missing."""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from dse import cli
from search.evaluator import Evaluator
from search.optuna_search import run_optuna
from search.storage import TrialBuffer, open_storage, open_study
from tests.search.synthetic import SyntheticProblem

warnings.filterwarnings("ignore")


def _study_dir(tmp_path: Path) -> Path:
    st = open_study(open_storage(str(tmp_path / "study.db")), "dash", ["maximize"],
                    ["samples_per_s"])
    buf = TrialBuffer(st, batch_size=4)
    run_optuna(Evaluator(SyntheticProblem(area_mm2=60.0), buffer=buf), n_trials=12, seed=0)
    buf.flush()
    return tmp_path


def _get(app: Any, path: str) -> tuple[str, Any]:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
           "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
           "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http"}
    status: dict[str, str] = {}

    def start_response(s: str, headers: list, exc: Any = None) -> None:
        status["s"] = s

    body = b"".join(app(env, start_response))
    return status["s"], json.loads(body)


def test_dashboard_api_shows_constraints_as_user_attrs(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard (extra 'dashboard') "
                        "is not installed")
    from dse.commands.dashboard import make_app

    run_dir = _study_dir(tmp_path)
    app, spec = make_app(str(run_dir))  # a run directory is accepted as --storage
    assert spec.backend == "sqlite"
    status, studies = _get(app, "/api/studies")
    assert status.startswith("200")
    (summary,) = studies["study_summaries"]
    assert summary["study_name"] == "dash"
    status, detail = _get(app, f"/api/studies/{summary['study_id']}")
    assert status.startswith("200")
    assert detail["objective_names"] == ["samples_per_s"]
    assert len(detail["trials"]) == 12
    n_feasible = 0
    for t in detail["trials"]:
        attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
        for key in ("area_mm2", "tdp_w", "feasible", "constraint_area_mm2_over_budget",
                    "constraint_tdp_w_over_budget", "constraint_memory_bytes_over_hbm"):
            assert key in attrs
        over = float(attrs["constraint_area_mm2_over_budget"])
        assert (attrs["feasible"] == "True") == (over <= 0 and float(
            attrs["constraint_memory_bytes_over_hbm"]) <= 0)
        n_feasible += attrs["feasible"] == "True"
    assert 0 < n_feasible < 12  # the synthetic budget cuts through the space


def test_dashboard_missing_extra_exits_1_with_hint(tmp_path: Path, monkeypatch, capsys) -> None:
    run_dir = _study_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import raises ImportError
    code = cli.main(["dashboard", "--storage", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert "pip install 'dse[dashboard]'" in err
    assert len(err.strip().splitlines()) == 1


def test_dashboard_run_dir_without_study_is_exit_2(tmp_path: Path, capsys) -> None:
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")
    code = cli.main(["dashboard", "--storage", str(tmp_path)])
    assert code == 2
    assert "holds no study" in capsys.readouterr().err


def test_dashboard_plots_parameters_in_physical_units(tmp_path: Path, capsys) -> None:
    """A real search's study, read through optuna-dashboard's API: trial parameters and
    the parameter-importance plot name cores, PE rows/columns, MiB and stacks, with the
    grid's physical values (issue 15)."""
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard (extra 'dashboard') "
                        "is not installed")
    from dse.commands.dashboard import make_app
    from search.space import default_space

    run = tmp_path / "run"
    assert cli.main(["search", "--workload", "gpt2", "--area", "300", "--searcher", "random",
                     "--budget", "40", "--seed", "3", "--out", str(run), "--no-report",
                     "--json"]) == 0, capsys.readouterr().err
    app, _ = make_app(str(run))
    _, studies = _get(app, "/api/studies")
    (summary,) = studies["study_summaries"]
    sid = summary["study_id"]
    _, detail = _get(app, f"/api/studies/{sid}")
    space = default_space()
    want = {space.optuna_name(n) for n in space.names}
    assert {"tensor_cores", "array_rows", "array_cols", "sram_per_core_mib",
            "hbm_stacks"} <= want
    cores = set(space.param("tensor_cores").values)
    for t in detail["trials"]:
        params = {p["name"]: p["param_external_value"] for p in t["params"]}
        assert set(params) == want
        assert not any(k.startswith(("idx_", "log2_")) for k in params)
        assert int(params["tensor_cores"]) in cores
    status, imp = _get(app, f"/api/studies/{sid}/param_importances")
    assert status.startswith("200")
    names = {p["name"] for objective in imp["param_importances"] for p in objective}
    assert names and names <= want
