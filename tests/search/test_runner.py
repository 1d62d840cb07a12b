"""run_search: determinism, resume, the infeasible exit, multi-workload results."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from dse.errors import ConfigError, InfeasibleDesignError
from search.runner import SearchConfig, default_study_name, run_search, write_run_dir
from tests.search.tiny import SMALL_SPACE, tiny_yaml

FAST = {"ilp_time_limit_s": 0.2, "ilp_total_s": 0.5}


def _cfg(tmp: Path, **kw) -> SearchConfig:
    base = dict(workloads=(tiny_yaml(tmp),), area_mm2=150.0, top_k=2, **FAST)
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture(scope="module")
def wham_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One wham search persisted in a run directory (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("wham")
    out = tmp / "run"
    s, _ = run_search(_cfg(tmp, searcher="wham", seed=3, out_dir=str(out)), space=SMALL_SPACE)
    return tmp, s


def test_same_seed_same_result(tmp_path: Path, wham_run) -> None:
    tmp, a = wham_run
    b, _ = run_search(_cfg(tmp, searcher="wham", seed=3), space=SMALL_SPACE)
    assert a["best"]["design"] == b["best"]["design"]
    assert [t["design"] for t in a["top_k"]] == [t["design"] for t in b["top_k"]]
    assert a["evaluations"] == b["evaluations"]
    assert a["convergence"] == b["convergence"]
    r1, _ = run_search(_cfg(tmp_path, searcher="optuna", budget=12, seed=1), space=SMALL_SPACE)
    r2, _ = run_search(_cfg(tmp_path, searcher="optuna", budget=12, seed=1), space=SMALL_SPACE)
    assert r1["best"]["design"] == r2["best"]["design"]
    assert r1["convergence"] == r2["convergence"]


def test_wham_beats_its_seeds_and_the_baselines_are_same_budget(wham_run) -> None:
    _, s = wham_run
    starts = [ls["start_value"] for st in s["search"]["stages"] for ls in st["local_searches"]
              if ls["start_value"] is not None]
    assert s["best"]["objective_value"] >= max(starts)
    assert s["best"]["objective_value"] > min(starts)
    for b in s["baselines"]:
        if b["hardware"] is not None:
            assert b["hardware"]["area_mm2"] <= 150.0
            assert b["best_over_baseline"] == pytest.approx(
                s["best"]["objective_value"] / b["objective_value"])


def test_resume_counts_the_study_against_the_budget(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first, _ev1 = run_search(_cfg(tmp_path, searcher="random", budget=10, out_dir=str(out)),
                            space=SMALL_SPACE)
    assert first["evaluations"] == 10 and first["evaluations_resumed"] == 0
    again, _ = run_search(_cfg(tmp_path, searcher="random", budget=16, out_dir=str(out)),
                          space=SMALL_SPACE)
    assert again["evaluations_resumed"] == 10
    assert again["evaluations_this_run"] == 6 and again["evaluations"] == 16
    st = optuna.load_study(study_name=again["study"]["name"],
                           storage=f"sqlite:///{out}/study.db")
    assert len(st.trials) == 16
    assert [t.number for t in st.trials] == list(range(16))
    done, _ = run_search(_cfg(tmp_path, searcher="random", budget=16, out_dir=str(out)),
                         space=SMALL_SPACE)
    assert done["evaluations_this_run"] == 0 and done["evaluations"] == 16
    assert done["best"]["design"] == again["best"]["design"]


def test_wham_resume_replays_from_the_study(wham_run) -> None:
    tmp, a = wham_run
    b, _ = run_search(_cfg(tmp, searcher="wham", seed=3, out_dir=str(tmp / "run")),
                      space=SMALL_SPACE)
    assert b["evaluations_resumed"] == a["evaluations_end_to_end"]
    assert b["evaluations_this_run"] == 0
    assert b["best"]["design"] == a["best"]["design"]


def test_study_of_another_search_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "x"
    run_search(_cfg(tmp_path, searcher="random", budget=4, out_dir=str(out), study="s"),
               space=SMALL_SPACE)
    with pytest.raises(ConfigError, match="made by another search"):
        run_search(_cfg(tmp_path, searcher="random", budget=4, out_dir=str(out), study="s",
                        area_mm2=140.0), space=SMALL_SPACE)


def test_no_feasible_design_names_the_smallest_area(tmp_path: Path) -> None:
    with pytest.raises(InfeasibleDesignError) as e:
        run_search(_cfg(tmp_path, area_mm2=1.0), space=SMALL_SPACE)
    msg = str(e.value)
    assert e.value.exit_code == 3
    from cost_models.technology import load_technology

    smallest = SMALL_SPACE.min_area_mm2(load_technology(7))
    assert f"{smallest:.1f} mm²" in msg and "\n" not in msg


def test_power_budget_is_respected(tmp_path: Path) -> None:
    s, ev = run_search(_cfg(tmp_path, searcher="random", budget=20, power_w=120.0),
                       space=SMALL_SPACE)
    assert s["best"]["hardware"]["tdp_w"] <= 120.0
    c = ev.columns()
    assert (c["tdp_w"][c["feasible"]] <= 120.0).all()


def test_multi_workload_reports_each_and_the_mean(tmp_path: Path) -> None:
    tiny = tiny_yaml(tmp_path)
    other = tmp_path / "tiny2.yaml"
    other.write_text(Path(tiny).read_text().replace("name: tiny", "name: tiny2")
                     .replace("layers: 2", "layers: 4"))
    cfg = SearchConfig(workloads=(tiny, str(other)), area_mm2=150.0, searcher="random",
                       budget=10, top_k=1, **FAST)
    s, ev = run_search(cfg, space=SMALL_SPACE)
    per = s["best"]["workloads"]
    assert set(per) == {"tiny", "tiny2"}
    sp = [per[n]["evaluation"]["samples_per_s"] for n in ("tiny", "tiny2")]
    assert s["best"]["samples_per_s"] == pytest.approx((sp[0] * sp[1]) ** 0.5)
    assert set(s["per_workload"]) == {"tiny", "tiny2"}
    for base in ("tpuv4-like", "tpuv2-like"):
        ratios = [s["per_workload"][n]["over_baselines"][base] for n in ("tiny", "tiny2")]
        assert s["mean"]["mean_over_baselines"][base] == pytest.approx(sum(ratios) / 2)
        assert s["mean"]["geomean_over_baselines"][base] == pytest.approx(
            (ratios[0] * ratios[1]) ** 0.5)
    best_base = max((b for b in s["baselines"] if b["hardware"]),
                    key=lambda b: b["objective_value"])
    assert s["best_baseline"] == best_base["name"]
    assert s["margin_over_best_baseline"] == pytest.approx(
        s["best"]["objective_value"] / best_base["objective_value"])
    out = write_run_dir(s, ev, tmp_path / "multi")
    import pandas as pd

    df = pd.read_csv(out / "designs.csv")
    assert {"samples_per_s[tiny]", "samples_per_s[tiny2]"} <= set(df.columns)


def test_default_study_name_identifies_the_search(tmp_path: Path) -> None:
    a = default_study_name(_cfg(tmp_path))
    assert a == default_study_name(_cfg(tmp_path, seed=9))  # same search, other seed
    assert a != default_study_name(_cfg(tmp_path, area_mm2=151.0))
    assert a != default_study_name(_cfg(tmp_path, searcher="optuna"))


def test_batch_trial_records_equal_the_per_trial_payload() -> None:
    """make_trials (vectorized, what the study stores) == trial_payload (per trial, the
    Optuna paths): same values, parameters, user attributes and constraints."""
    import numpy as np

    from search.evaluator import Evaluator
    from tests.search.tiny import SMALL_SPACE, tiny_problem

    pb = tiny_problem(area_mm2=150.0)
    for multi in (False, True):
        ev = Evaluator(pb, multi_objective=multi)
        idx = SMALL_SPACE.sample(np.random.default_rng(3), 5)
        sc = pb.score(idx)
        recs = ev.make_trials(idx, sc, "x", 10)
        for k, rec in enumerate(recs):
            values, cons, attrs = ev.trial_payload(idx, sc, k, "x", 10 + k)
            assert rec.values == values and rec.constraints == cons
            assert rec.user_attrs == attrs
            assert rec.params == SMALL_SPACE.to_optuna_params(idx[k])
            ft = rec.to_frozen()
            assert ft.params == rec.params and ft.user_attrs == attrs


def test_same_seed_same_result_and_resume_at_1024_devices(tmp_path: Path) -> None:
    """At cluster scale (1,024 devices, hundreds of parallel plans) the search is still
    deterministic, and a rerun on the same study replays it without scoring anything."""
    out = tmp_path / "run"
    cfg = _cfg(tmp_path, searcher="wham", seed=5, devices=1024, batch=1024,
               out_dir=str(out))
    a, _ = run_search(cfg, space=SMALL_SPACE)
    assert a["devices"] == 1024 and a["best"]["workloads"]
    plan = next(iter(a["best"]["workloads"].values()))["plan"]
    assert plan["tp"] * plan["pp"] * plan["dp"] == 1024
    b, _ = run_search(_cfg(tmp_path, searcher="wham", seed=5, devices=1024, batch=1024),
                      space=SMALL_SPACE)
    assert a["best"]["design"] == b["best"]["design"]
    assert [t["design"] for t in a["top_k"]] == [t["design"] for t in b["top_k"]]
    assert a["evaluations"] == b["evaluations"] and a["convergence"] == b["convergence"]
    again, _ = run_search(cfg, space=SMALL_SPACE)
    assert again["evaluations_resumed"] == a["evaluations_this_run"]
    assert again["best"]["design"] == a["best"]["design"]


def test_multi_workload_search_under_a_small_budget_finds_a_design(tmp_path: Path) -> None:
    """The per-workload searches may not use up a shared budget: the end-to-end phase
    keeps its share and returns a feasible design (issue 14, multi-workload budget)."""
    import yaml

    from tests.search.tiny import TINY_YAML

    other = tmp_path / "tiny2.yaml"
    other.write_text(yaml.safe_dump(dict(TINY_YAML, name="tiny2", layers=4, hidden=128)))
    cfg = _cfg(tmp_path, workloads=(tiny_yaml(tmp_path), str(other)), searcher="wham",
               budget=60)
    s, _ = run_search(cfg, space=SMALL_SPACE)
    assert s["evaluations"] <= 60
    assert s["best"]["objective_value"] > 0 and len(s["best"]["workloads"]) == 2


def test_an_fp8_search_mines_fp8_designs_in_a_study_of_its_own(tmp_path: Path) -> None:
    """--dtype fp8: the template's tensor cores compute in fp8 (twice the FLOPs a MAC of
    a 16-bit array), the study is named and kept apart from the bf16 one."""
    cfg = _cfg(tmp_path, searcher="random", budget=6, seed=2, dtype="fp8")
    assert default_study_name(cfg).endswith("fp8")
    s, _ = run_search(cfg)
    hw = s["best"]["hardware"]
    assert hw["dtype"] == "fp8" and s["dtype"] == "fp8"
    macs = hw["tensor_cores"] * hw["array_rows"] * hw["array_cols"]
    assert hw["peak_flop_per_s"] == pytest.approx(2 * macs * hw["freq_hz"])
    out = tmp_path / "y"
    run_search(_cfg(tmp_path, searcher="random", budget=4, out_dir=str(out), study="s"),
               space=SMALL_SPACE)
    with pytest.raises(ConfigError, match="dtype"):
        run_search(_cfg(tmp_path, searcher="random", budget=4, out_dir=str(out), study="s",
                        dtype="fp8"))
    with pytest.raises(ConfigError, match="template computes in bf16"):
        run_search(_cfg(tmp_path, searcher="random", budget=4, dtype="fp8"),
                   space=SMALL_SPACE)
    with pytest.raises(ConfigError, match="valid: bf16, fp16, fp8"):
        _cfg(tmp_path, dtype="int8")


def test_infeasible_message_tells_a_missed_budget_from_a_small_area(tmp_path: Path) -> None:
    # A search whose evaluations all missed the feasible designs must not tell the user
    # to raise an area that already admits some: the message names the searcher's budget.
    from cost_models.technology import load_technology
    from search.objective import build_problem

    smallest = SMALL_SPACE.min_area_mm2(load_technology(7))
    small = build_problem(_cfg(tmp_path, area_mm2=smallest / 2), SMALL_SPACE)
    assert "use --area" in small.infeasible_message()
    roomy = build_problem(_cfg(tmp_path, area_mm2=smallest * 2), SMALL_SPACE)
    msg = roomy.infeasible_message()
    assert "use --area" not in msg and "raise --budget" in msg
    assert f"{smallest:.1f} mm²" in msg and "\n" not in msg
    watts = build_problem(_cfg(tmp_path, area_mm2=smallest * 2, power_w=1e-3), SMALL_SPACE)
    assert "raise --power" in watts.infeasible_message()


def test_off_grid_names_the_fields_a_searcher_cannot_reach():
    """A baseline that beats the mined design only through values between the grid's
    (the re-balanced TPU v4-like chip takes any MXU count) is named as off the grid."""
    import dataclasses

    from cost_models.presets import load_preset
    from search.runner import off_grid
    from search.space import default_space

    space = default_space(devices=64)
    assert off_grid(space, space.config(space.index_of({}))) == ""
    assert off_grid(space, None) == ""
    hw = dataclasses.replace(space.config(space.index_of({})), tensor_cores=14,
                             hbm_stacks=7, global_buffer_bytes=0)
    assert off_grid(space, hw) == ("tensor_cores 14 (grid: 12, 16); global_buffer_bytes "
                                   "0 MiB (grid: 8 MiB); hbm_stacks 7 (grid: 6, 8)")
    assert "tensor_cores" not in off_grid(space, load_preset("tpuv4").hardware)
