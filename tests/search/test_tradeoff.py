"""The links-versus-tensor-cores view (search/tradeoff.py): every row spends the same
budget, refilled with as many tensor cores as fit; a single-device space has no links."""

from __future__ import annotations

import dataclasses

import pytest

from cost_models.designs import DesignBatch
from search.baselines import _area_tdp
from search.config import SearchConfig
from search.objective import build_problem
from search.tradeoff import BW_SCALES, link_tradeoff


@pytest.fixture(scope="module")
def problem():
    return build_problem(SearchConfig(workloads=("dlrm-kaggle",), area_mm2=200, devices=4))


def test_rows_spend_the_same_budget_links_against_tensor_cores(problem):
    sp = problem.space
    best = dataclasses.replace(sp.config([0] * len(sp.names)), tensor_cores=8,
                               link_count=4)
    rows = link_tradeoff(problem, best)
    counts = sp.param("link_count").values
    assert len(rows) == len(counts) * len(BW_SCALES)
    bw0 = sp.template.link_bw_bytes_per_s
    assert [r["is_best"] for r in rows].count(True) == 1
    for r in rows:
        assert r["feasible"]
        hw = dataclasses.replace(best, link_count=r["link_count"],
                                 link_bw_bytes_per_s=r["link_bw_bytes_per_s"],
                                 tensor_cores=r["tensor_cores"])
        a, _ = _area_tdp(DesignBatch.from_configs([hw]), problem.tech)
        more, _ = _area_tdp(DesignBatch.from_configs(
            [dataclasses.replace(hw, tensor_cores=hw.tensor_cores + 1)]), problem.tech)
        # filled: this many tensor cores fit, one more does not
        assert a[0] == pytest.approx(r["area_mm2"]) and a[0] <= 200 < more[0]
        assert r["samples_per_s"] > 0 and 0 <= r["all_to_all_share"] < 1
    by = {(r["link_count"], r["link_bw_bytes_per_s"] / bw0): r for r in rows}
    n = max(counts)
    # link PHY area grows with count x bandwidth and is paid for in tensor cores
    assert by[n, 2.0]["links_area_mm2"] == pytest.approx(4 * by[n, 0.5]["links_area_mm2"])
    assert by[n, 2.0]["tensor_cores"] < by[n, 0.5]["tensor_cores"]
    # each row is the design evaluated as the search evaluates its winners
    r = by[n, 1.0]
    hw = dataclasses.replace(best, link_count=n, tensor_cores=r["tensor_cores"])
    ((plan, ev),) = problem.evaluate_full(hw)
    assert r["samples_per_s"] == pytest.approx(ev.samples_per_s)
    assert r["plans"] == [{k: getattr(plan, k) for k in ("tp", "pp", "dp", "ep")}]


def test_one_device_has_no_link_tradeoff():
    pb = build_problem(SearchConfig(workloads=("dlrm-kaggle",), area_mm2=200, devices=1))
    sp = pb.space
    assert "link_count" not in sp.names
    assert link_tradeoff(pb, sp.config([0] * len(sp.names))) == []
