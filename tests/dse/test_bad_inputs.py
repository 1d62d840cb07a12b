"""Every bad input of ``benchmarks/bad_inputs.py`` gets exactly one line on stderr, the
right exit code (2 bad input, 3 infeasible, 1 unreachable storage), no traceback, an
empty stdout, a message naming the problem, and never a password; ``docs/bad-inputs.md``
is the table of the same cases."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dse_bad_inputs", ROOT / "benchmarks" /
                                                  "bad_inputs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dse_bad_inputs"] = mod
    spec.loader.exec_module(mod)
    return mod


BAD = _load()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad-inputs")
    BAD.make_files(d)
    return d


def test_at_least_thirty_cases_of_every_kind() -> None:
    cases = BAD.CASES
    assert len(cases) >= 30
    assert len({c.argv for c in cases}) == len(cases)
    assert {c.code for c in cases} == {1, 2, 3}
    groups = {c.group for c in cases}
    assert {"workloads", "hardware", "evaluate", "search", "worker", "report",
            "export"} <= groups


@pytest.mark.parametrize("case", BAD.CASES, ids=lambda c: f"{c.group}-{c.what}")
def test_bad_input(case: object, scratch: Path) -> None:
    code, out, err = BAD.run_case(case, scratch)
    assert code == case.code, err
    assert out == ""
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for s in case.expect:
        assert s in err, f"{s!r} not in {err!r}"
    for s in case.forbid:
        assert s not in err, err
    assert BAD.problems(case, code, out, err) == []


@pytest.mark.parametrize("what", ["unknown workload name (lists the zoo)", "malformed YAML",
                                  "unreachable PostgreSQL (password in the URL)"])
def test_bad_input_as_a_process(what: str, scratch: Path) -> None:
    """The same through the ``dse`` entry point in a fresh process (nothing printed by
    logging set up at import time, no traceback from the interpreter)."""
    (case,) = [c for c in BAD.CASES if c.what == what and c.group != "search"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "dse.cli", *case.argv], cwd=scratch, env=env,
                       capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == case.code and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert BAD.problems(case, r.returncode, r.stdout, r.stderr) == []


def test_docs_table_lists_every_case() -> None:
    text = (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    assert len(rows) >= 30
    for c in BAD.CASES:
        cmd = ("dse " + " ".join(c.argv)).strip().replace("|", "\\|")
        assert f"`{cmd}`" in text, f"docs/bad-inputs.md lacks {cmd!r}: rerun the script"
    assert "⚠" not in text, "a case broke the rules when the table was generated"


@pytest.mark.parametrize("case", BAD.CASES[::4], ids=lambda c: f"{c.group}-{c.what}")
def test_bad_input_with_json_prints_one_error_object(case: object, scratch: Path) -> None:
    """With ``--json`` an error is also one JSON object on stdout (brief §4b)."""
    import dataclasses
    import json

    if "--json" in case.argv:  # type: ignore[attr-defined]
        pytest.skip("the case already asks for --json")
    c = dataclasses.replace(case, argv=(*case.argv, "--json"))  # type: ignore[type-var]
    code, out, err = BAD.run_case(c, scratch)
    assert code == case.code, err  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    obj = json.loads(out)
    assert list(obj) == ["error"] and obj["error"]["exit_code"] == code
    assert obj["error"]["message"] and obj["error"]["message"] in err
    for s in case.forbid:  # type: ignore[attr-defined]
        assert s not in out
