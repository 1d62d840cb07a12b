"""One accelerator search end to end: the Python API behind ``dse search``.

:func:`run_search` builds the problem (workloads, design space, technology, budgets),
opens or resumes the Optuna study, runs the searcher from :data:`search.registry.SEARCHERS`,
evaluates the baselines of the same budget, and assembles the result: the contract keys
of ``dse search --json`` (brief §4: ``best``, ``top_k``, ``baselines``, ``evaluations``,
``wall_s``, ``out_dir``) plus the run-directory keys of ``docs/architecture.md``.
:func:`write_run_dir` writes ``summary.json``, ``best.json`` and ``designs.csv``.

Resume: the study (``--storage``/``--study``) holds every evaluated design as a finished
trial (hardware fields, area, TDP, throughput, constraints in its user attributes). A
rerun loads them into the evaluator's cache: they count against ``--budget`` and cost
nothing when a searcher revisits them, so a deterministic searcher replays its path for
free and continues where it stopped, and Optuna's sampler starts from the whole history.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dse.errors import ConfigError, StorageError
from dse.types import HardwareConfig, jsonable
from search.config import DEFAULT_BUDGETS, SearchConfig, default_study_name
from search.evaluator import Evaluator, directions, geomean, metric_names
from search.objective import build_problem

__all__ = [
    "DEFAULT_BUDGETS",
    "SearchConfig",
    "SearchContext",
    "assemble",
    "baseline_designs",
    "build_problem",
    "default_study_name",
    "run_search",
    "write_run_dir",
]

PERSIST_BATCH = 512
"""Finished trials written to the storage per batch (the hot loop stays in memory)."""


@dataclass
class SearchContext:
    """What a searcher gets (see :data:`search.registry.SEARCHERS`)."""

    cfg: SearchConfig
    problem: Any
    evaluator: Evaluator
    baselines: list[HardwareConfig]
    history: list[Any]
    budget: int | None
    """New designs this run may evaluate (None: no limit)."""
    on_message: Callable[[str], None] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """What the searcher reports (summary.json ``search``)."""
    extra_evaluations: int = 0
    """Evaluations outside the end-to-end evaluator (the heuristic's stage searches)."""
    pareto_rows: tuple[int, ...] = ()


# --------------------------------------------------------------------------- baselines


def baseline_designs(problem: Any) -> list[tuple[str, str, HardwareConfig | None, str]]:
    """The baselines of the problem's budget (:func:`search.baselines.baseline_designs`)."""
    from search.baselines import baseline_designs as _b

    return _b(problem)


# --------------------------------------------------------------------------- results


def _plan_dict(plan: Any) -> dict[str, Any] | None:
    if plan is None:
        return None
    return dict(dataclasses.asdict(plan), devices=plan.devices,
                micro_batches=plan.micro_batches)


def explain(problem: Any, hw: HardwareConfig) -> dict[str, float]:
    """Share of the critical path (slowest stage, fwd+bwd×micro-batches+optimizer) per
    bounding resource of ``hw``, averaged over workloads (:func:`search.diagnosis.diagnose`)."""
    from search.diagnosis import diagnose

    return diagnose(problem, hw)


def _entry(problem: Any, hw: HardwareConfig, *, ilp_time_limit_s: float | None = None,
           ilp_deadline: float | None = None,
           shares: dict[str, float] | None = None) -> dict[str, Any]:
    """The result object of one design: ``hardware`` (the ``hardware show`` fields) and
    ``evaluation`` (the ``evaluate`` fields of the first workload, with its plan), per
    workload results, the objective and the critical-path shares."""
    from cost_models.presets import hardware_dict
    from cost_models.training import split_phases
    from search.evaluator import objective_value
    from search.scheduler import block_refinement

    full = problem.evaluate_full(hw)
    per: dict[str, Any] = {}
    samples = []
    for t, (plan, ev) in zip(problem.targets, full):
        if ev is None:
            per[t.name] = {"evaluation": None, "plan": None, "fits_memory": False}
            samples.append(0.0)
            continue
        d = ev.to_dict()
        d["plan"] = _plan_dict(plan)
        d["workload"] = t.name
        d["system"] = jsonable(dataclasses.asdict(problem.system_of(hw, 0)))
        per[t.name] = {"evaluation": d, "plan": _plan_dict(plan)}
        samples.append(ev.samples_per_s)
    hwd = hardware_dict(hw, problem.tech)
    sp = np.array(samples, dtype=np.float64)[:, None]
    value = float(objective_value(problem.objective, sp, np.array([hwd["tdp_w"]]))[0])
    first = per[problem.targets[0].name]["evaluation"]
    out: dict[str, Any] = {
        "design": hw.name, "hardware": hwd, "evaluation": first,
        "objective_value": value, "samples_per_s": float(geomean(sp)[0]),
        "feasible": bool(all(p["evaluation"] is not None and p["evaluation"]["fits_memory"]
                             for p in per.values())
                         and hwd["area_mm2"] <= problem.area_budget_mm2
                         and (problem.power_budget_w is None
                              or hwd["tdp_w"] <= problem.power_budget_w)),
        "workloads": per,
        "critical_path_shares": explain(problem, hw) if shares is None else shares,
    }
    if ilp_time_limit_s is not None and ilp_deadline is not None and \
            time.perf_counter() > ilp_deadline:
        out["ilp_refinement"] = {"skipped": "the run's ILP time cap (ilp_total_s) was used up"}
    elif ilp_time_limit_s is not None:
        from cost_models.network import comm_time_s

        refs = []
        for w, (t, (plan, ev)) in enumerate(zip(problem.targets, full)):
            if plan is None or ev is None:
                continue
            model = problem.models[w]
            slow = int(ev.breakdown.get("slowest_stage", 0))
            parts = [x for x in model.stage_graphs(plan) if x[0] == slow]
            g = next((x[2] for x in parts if x[4]), parts[0][2])  # the block, else the stage
            ph = split_phases(g)
            for phase, sub in (("fwd", ph.fwd), ("bwd", ph.bwd)):
                if sub is None:
                    continue
                r = block_refinement(sub, hw, problem.tech,
                                     comm_time_s(sub, problem.system_of(hw, w), plan),
                                     time_limit_s=ilp_time_limit_s)
                if r is not None:
                    # one block repetition saved `count` times per micro-batch
                    saved = (r["list_s"] - r["ilp_s"]) * r["count"] * plan.micro_batches
                    r.update(workload=t.name, phase=phase,
                             step_time_saving_s=saved,
                             refined_step_time_s=max(ev.step_time_s - saved, 0.0))
                    refs.append(r)
        out["ilp_refinement"] = refs
    return out


def off_grid(space: Any, hw: HardwareConfig | None) -> str:
    """The searched fields of ``hw`` whose values are not on ``space``'s grid, with the
    grid values around each (``tensor_cores 14 (grid: 12, 16)``; empty when on the
    grid)."""
    if hw is None:
        return ""
    out = []
    for p in space.params:
        v = getattr(hw, p.name, None)
        if v is None or v in p.values:
            continue
        if p.categorical:
            out.append(f"{p.name} {v}")
            continue
        mib = p.name.endswith("_bytes")
        lo = [x for x in p.values if x < v]
        hi = [x for x in p.values if x > v]
        near = ", ".join(_grid_value(x, mib) for x in (lo[-1:] + hi[:1]))
        out.append(f"{p.name} {_grid_value(v, mib)} (grid: {near})")
    return "; ".join(out)


def _grid_value(x: float, mib: bool) -> str:
    return f"{x / 2**20:g} MiB" if mib else f"{x:g}"


def _plans_compared(problem: Any, hw: HardwareConfig) -> list[dict[str, Any]]:
    """The parallel plans of the first workload on the best design, compared
    (:func:`search.plans.compare_plans`; the report's "parallel plans compared")."""
    from search.plans import compare_plans

    t = problem.targets[0]
    return compare_plans(t.spec, hw, problem.system_of(hw, 0), t.devices,
                         global_batch=t.global_batch, seq=t.seq, tech=problem.tech)


def _pareto(ev: Evaluator, rows: Any, space: Any) -> list[dict[str, Any]]:
    c = ev.columns()
    rows = sorted((int(r) for r in rows), key=lambda r: (-c["value"][r], r))
    return [{"design": space.label(c["idx"][r]), "objective_value": float(c["value"][r]),
             "samples_per_s": float(geomean(c["samples_per_s"][:, r:r + 1])[0]),
             "area_mm2": float(c["area_mm2"][r]), "tdp_w": float(c["tdp_w"][r])}
            for r in rows]


def _per_workload(best: dict[str, Any], baselines: list[dict[str, Any]]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-workload throughput of the best design against every baseline, and the means
    (geometric mean of samples/s; arithmetic and geometric mean speed-up over each
    baseline). ``over_baselines[name]`` is best / baseline on that workload."""
    per: dict[str, Any] = {}
    ratios: dict[str, list[float]] = {}
    for name, w in best["workloads"].items():
        sp = float(w["evaluation"]["samples_per_s"]) if w["evaluation"] else 0.0
        over: dict[str, float | None] = {}
        base_sp: dict[str, float | None] = {}
        for b in baselines:
            if b.get("hardware") is None:
                continue
            ev = b["workloads"][name]["evaluation"]
            bs = float(ev["samples_per_s"]) if ev is not None else None
            base_sp[b["name"]] = bs
            over[b["name"]] = sp / bs if bs else None
            if bs:
                ratios.setdefault(b["name"], []).append(sp / bs)
        per[name] = {"samples_per_s": sp, "baseline_samples_per_s": base_sp,
                     "over_baselines": over, "plan": w["plan"]}
    mean = {"geomean_samples_per_s": float(best["samples_per_s"]),
            "mean_over_baselines": {k: float(np.mean(v)) for k, v in ratios.items()},
            "geomean_over_baselines": {k: float(np.exp(np.mean(np.log(v))))
                                       for k, v in ratios.items()}}
    return per, mean


def designs_table(ev: Evaluator) -> dict[str, np.ndarray]:
    """Every evaluated design, column by column (``designs.csv``; :func:`write_csv`)."""
    c = ev.columns()
    space = ev.space
    idx = c["idx"]
    names = list(ev.problem.workload_names)
    hw_cols = [f.name for f in dataclasses.fields(HardwareConfig)]
    if len(idx) == 0:
        return {k: np.zeros(0) for k in hw_cols + ["area_mm2", "tdp_w", "samples_per_s",
                                                   "step_time_s", "feasible", "searcher",
                                                   "eval_index"]}
    f = space.fields(idx)
    out: dict[str, np.ndarray] = {"name": np.asarray(space.labels(idx), dtype=object)}
    for k in hw_cols:
        if k != "name":
            out[k] = np.asarray(f[k])
    out["area_mm2"] = np.asarray(c["area_mm2"])
    out["tdp_w"] = np.asarray(c["tdp_w"])
    out["samples_per_s"] = np.asarray(geomean(c["samples_per_s"]))
    out["step_time_s"] = np.asarray(c["step_time_s"][0])
    out["objective_value"] = np.asarray(c["value"])
    if len(names) > 1:
        for w, n in enumerate(names):
            out[f"samples_per_s[{n}]"] = np.asarray(c["samples_per_s"][w])
            out[f"step_time_s[{n}]"] = np.asarray(c["step_time_s"][w])
    out["memory_per_device_bytes"] = np.asarray(c["memory_bytes"]).max(axis=0)
    out["feasible"] = np.asarray(c["feasible"], dtype=bool)
    out["searcher"] = np.asarray(c["searcher"], dtype=object)
    out["eval_index"] = np.arange(len(idx))
    return out


def _csv_strings(col: np.ndarray) -> list[str]:
    """One column's cells: floats in their shortest repr, NaN and infinities empty (the
    step time of a design no plan runs: ``inf`` is not a number spreadsheets and most CSV
    readers take), booleans ``True``/``False``."""
    if col.dtype == bool:
        return ["True" if v else "False" for v in col.tolist()]
    if col.dtype.kind == "f":
        out = list(map(repr, col.tolist()))
        bad = ~np.isfinite(col)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                out[i] = ""
        return out
    return list(map(str, col.tolist()))


_CSV_CHUNK = 8192
"""Rows converted to Python objects at a time by :func:`write_csv`."""


_CSV_PANDAS_ROWS = 20_000
"""Tables this long are written by pandas (its C writer); shorter ones with ``csv``, which
spares a small run pandas' import (a third of a second)."""


def write_csv(table: dict[str, np.ndarray], path: Path) -> None:
    """Write a column table (:func:`designs_table`) as CSV with a header row."""
    import csv

    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    if n >= _CSV_PANDAS_ROWS:
        import pandas as pd

        pd.DataFrame({k: (np.where(np.isfinite(table[k]), table[k], np.nan)
                          if np.asarray(table[k]).dtype.kind == "f" else table[k])
                      for k in cols}).to_csv(path, index=False)
        return
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for a in range(0, n, _CSV_CHUNK):  # bounded memory: Python objects per chunk only
            w.writerows(zip(*(_csv_strings(np.asarray(table[k][a:a + _CSV_CHUNK]))
                              for k in cols)))


# --------------------------------------------------------------------------- run


def _open(cfg: SearchConfig, space_name: str) -> tuple[Any, str | None, str]:
    """(study or None, storage display, study name)."""
    from search.distributed import parse_storage
    from search.storage import open_storage, open_study

    name = cfg.study or default_study_name(cfg)
    if cfg.storage is None and cfg.out_dir is None:
        return None, None, name
    storage = (cfg.storage if cfg.storage is not None
               else str(Path(str(cfg.out_dir)) / "study.db"))
    from search.slots import workload_fingerprints

    spec = parse_storage(storage)
    st = open_storage(storage)
    if cfg.storage is None:  # the run directory's own study.db holds one search
        others = [s.study_name for s in st.get_all_studies() if s.study_name != name]
        if others:
            raise ConfigError(f"--out {cfg.out_dir} holds another search (study "
                              f"{others[0]!r}); this one would overwrite its summary and "
                              "designs: give another --out (the same command resumes a "
                              "run)")
    study = open_study(st, name, directions(cfg.multi_objective),
                       metric_names(cfg.objective, cfg.multi_objective))
    stored = study.user_attrs.get("dse:search")
    mine = {k: v for k, v in cfg.settings().items()
            if k not in ("budget", "guidance", "heterogeneous")}
    mine["space"] = space_name
    # a workload file that changed since the study began would mix two models' results
    mine["workload_files"] = workload_fingerprints(list(cfg.workloads))
    if stored is None:
        study.set_user_attr("dse:search", mine)
    else:
        # studies of earlier versions recorded neither the seed nor the files: as then
        known = {k: v for k, v in mine.items()
                 if k in stored or k not in ("seed", "workload_files")}
        if stored != known:
            diff = next(k for k in sorted(set(stored) | set(known))
                        if stored.get(k) != known.get(k))
            where = ("give another --out" if cfg.storage is None
                     else "use another --study name")
            raise ConfigError(f"study {name!r} in {spec.display} was made by another "
                              f"search ({diff}={stored.get(diff)!r}, this run "
                              f"{known.get(diff)!r}); {where}")
    return study, spec.display, name


def run_search(cfg: SearchConfig, *, on_progress: Callable[[int], None] | None = None,
               on_message: Callable[[str], None] | None = None,
               progress_total: Callable[[int | None], None] | None = None,
               space: Any = None) -> tuple[dict[str, Any], Evaluator]:
    """Run one search (module docstring). Returns ``(summary, evaluator)``; raises
    :class:`InfeasibleDesignError` (exit 3) when nothing fits the budgets, naming the
    smallest area that would. ``space``: a :class:`~search.space.DesignSpace` other than
    the default one (API and benchmarks; a study remembers which space it was made on)."""
    from search.registry import SEARCHERS
    from search.storage import TrialBuffer, close_study

    t0 = time.perf_counter()
    problem = build_problem(cfg, space)
    space = problem.space
    # nothing fits at all: say so before searching (and before any line of progress)
    if not problem.anything_fits():
        problem.raise_infeasible()
    # a storage that cannot be opened is a one-line error before any progress
    study, storage_display, study_name = _open(cfg, space.fingerprint())
    if on_message is not None:
        n = sum(len(p) for p in problem.plans)
        on_message(f"preparing {', '.join(problem.workload_names)} on {cfg.devices} "
                   f"device(s): memory and stage layouts of {n} parallel plans")
    need = problem.min_hbm_bytes()
    a_min = space.min_area_mm2(problem.tech, power_w=cfg.power_w, min_hbm_bytes=need)
    history = (list(study.get_trials(deepcopy=False)) if study is not None else [])
    buffer = TrialBuffer(study, batch_size=PERSIST_BATCH) if study is not None else None
    ev = Evaluator(problem, buffer=buffer, multi_objective=cfg.multi_objective,
                   on_progress=on_progress)
    loaded = ev.load_history(history)
    budget = cfg.budget if cfg.budget is not None else DEFAULT_BUDGETS[cfg.searcher]
    if budget is not None and budget > space.size:  # never more work than the space holds
        if on_message is not None:
            on_message(f"note: --budget {budget} exceeds the {space.size} designs of the "
                       f"space; capped at {space.size}")
        budget = int(space.size)
    remaining = None if budget is None else max(0, budget - loaded)
    if progress_total is not None:
        progress_total(remaining)
    if on_message is not None:
        on_message("baselines: re-balancing the TPU v4-like chip to the budget")
    bases = baseline_designs(problem)
    ctx = SearchContext(cfg=cfg, problem=problem, evaluator=ev,
                        baselines=[b for _, _, b, _ in bases if b is not None],
                        history=history, budget=remaining, on_message=on_message)
    try:
        try:
            SEARCHERS.get(cfg.searcher)(ctx)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI: keep what was scored
            if buffer is None:
                raise
            buffer.flush()
            raise KeyboardInterrupt(f"{loaded + buffer.written} trials are saved in "
                                    f"{storage_display} (study {study_name!r}); the same "
                                    "command resumes from them") from None
        if buffer is not None:
            buffer.flush()
    except StorageError as e:  # disk full, read-only, server gone: say what is safe
        n = loaded + (buffer.written if buffer is not None else 0)
        lost = buffer.pending if buffer is not None else 0
        raise StorageError(f"{e}; {n} trials were saved before it (study {study_name!r}), "
                           f"the {lost} scored since were not; fix the storage and rerun "
                           "the same command to resume") from None
    if on_message is not None:
        on_message(f"explaining the top {cfg.top_k} designs and the baselines")
    try:
        return assemble(cfg, problem, ev, bases=bases, t0=t0, loaded=loaded, budget=budget,
                        a_min=a_min, info=ctx.info, extra_evaluations=ctx.extra_evaluations,
                        pareto=ctx.pareto_rows, study=study, storage_display=storage_display,
                        study_name=study_name, history=history, buffer=buffer), ev
    finally:
        if study is not None:
            close_study(study)


def assemble(cfg: SearchConfig, problem: Any, ev: Evaluator, *, bases: list[Any], t0: float,
             loaded: int, budget: int | None, a_min: float, info: dict[str, Any],
             extra_evaluations: int = 0, pareto: Any = (), study: Any = None,
             storage_display: str | None = None, study_name: str = "",
             history: Sequence[Any] = (), buffer: Any = None) -> dict[str, Any]:
    """The result object of a finished search (the ``--json`` object / summary.json)."""
    from search.optuna_search import pareto_rows

    space = problem.space
    rows = ev.top(cfg.top_k)
    if len(rows) == 0:
        problem.raise_infeasible()
    c = ev.columns()
    top = []
    deadline = time.perf_counter() + cfg.ilp_total_s
    hws = [space.config(c["idx"][r]) for r in rows] + [b[2] for b in bases if b[2] is not None]
    shares: dict[HardwareConfig, dict[str, float]] = {}
    if hasattr(problem, "prepare_plans"):
        # the plans and critical-path shares of the winners and the baselines, each in
        # one cost-model batch (designs sharing a plan are costed together)
        from search.diagnosis import diagnose_many

        problem.prepare_plans(hws)
        shares = dict(zip(hws, diagnose_many(problem, hws, [problem.plans_of(h) for h in hws])))
    for r in rows:
        hw = space.config(c["idx"][r])
        top.append(_entry(problem, hw, ilp_time_limit_s=(cfg.ilp_time_limit_s
                                                          if cfg.ilp_total_s > 0 else None),
                          ilp_deadline=deadline, shares=shares.get(hw)))
    baselines = []
    for name, preset, hw, note in bases:
        if hw is None:
            baselines.append({"name": name, "preset": preset, "feasible": False,
                              "family": "nvdla-like" if preset.startswith("nvdla")
                              else "tpu-like",
                              "note": note, "hardware": None, "evaluation": None})
            continue
        e = _entry(problem, hw, shares=shares.get(hw))
        e.update(name=name, preset=preset, note=note,
                 family="nvdla-like" if preset.startswith("nvdla") else "tpu-like")
        if e["objective_value"] > 0:
            e["best_over_baseline"] = top[0]["objective_value"] / e["objective_value"]
        baselines.append(e)
    front = _pareto(ev, pareto or pareto_rows(ev), space)
    best = top[0]
    from search.baselines import best_baseline

    strongest = best_baseline(baselines)
    warnings: list[str] = []
    margin = None
    if strongest is not None and strongest["objective_value"] > 0:
        margin = best["objective_value"] / strongest["objective_value"]
        if margin <= 1.0:
            off = off_grid(space, next((hw for n, _, hw, _ in bases
                                        if n == strongest["name"]), None))
            advice = (f"it lies off the design space's grid ({off}), where no searcher "
                      "reaches it: use the baseline" if off else
                      "search longer (--budget, --searcher exhaustive) or use the baseline")
            warnings.append(
                f"the mined design does not beat the best baseline: {strongest['name']} "
                f"reaches {strongest['objective_value']:.4g} against the mined "
                f"{best['objective_value']:.4g} ({margin:.3f}x); {advice}")
    plans = _plans_compared(problem, space.config(c["idx"][rows[0]]))
    tradeoff: list[dict[str, Any]] = []
    if hasattr(problem, "evaluate_full") and "link_count" in space.names:
        from search.tradeoff import link_tradeoff

        tradeoff = link_tradeoff(problem, space.config(c["idx"][rows[0]]))
    per_workload, mean = _per_workload(best, baselines)
    summary: dict[str, Any] = {
        "best": best,
        "top_k": top,
        "baselines": baselines,
        "evaluations": int(ev.evaluations + extra_evaluations),
        "wall_s": time.perf_counter() - t0,
        "out_dir": str(Path(cfg.out_dir).resolve()) if cfg.out_dir else None,
        "workloads": list(problem.workload_names),
        "area_mm2": cfg.area_mm2,
        "power_w": cfg.power_w,
        "objective": cfg.objective,
        "searcher": cfg.searcher,
        "seed": cfg.seed,
        "devices": cfg.devices,
        "dtype": problem.space.template.dtype,
        "heterogeneous": (info or {}).get("heterogeneous"),
        "best_baseline": strongest["name"] if strongest is not None else None,
        "margin_over_best_baseline": margin,
        "warnings": warnings,
        "plan": {n: p["plan"] for n, p in best["workloads"].items()},
        "plans": plans,
        "link_tradeoff": tradeoff,
        "per_workload": per_workload,
        "mean": mean,
        "convergence": ev.convergence,
        "pareto": front,
        "evaluations_end_to_end": int(ev.evaluations),
        "evaluations_resumed": int(loaded),
        "evaluations_this_run": int(ev.evaluations - loaded + extra_evaluations),
        "feasible_evaluated": int(c["feasible"].sum()),
        "space": space.describe(),
        "study": {"storage": storage_display, "name": study_name,
                  # counted, not read back: the history it resumed plus what this run wrote
                  "trials": (len(history) + (buffer.written if buffer is not None else 0)
                             if study is not None else None)},
        "search": info,
        "budget": budget,
        "min_area_mm2": a_min,
    }
    return jsonable(summary)


def write_run_dir(summary: dict[str, Any], ev: Evaluator, out_dir: str | Path) -> Path:
    """Write ``summary.json``, ``best.json`` and ``designs.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best = summary["best"]
    first = summary["workloads"][0]
    ev0 = best["workloads"][first]
    system = (ev0["evaluation"] or {}).get("system") if ev0["evaluation"] else None
    best_json = {
        "hardware": best["hardware"],
        "system": system,
        "plan": ev0["plan"],
        "workload": ",".join(summary["workloads"]),
        "evaluation": dict(best["evaluation"] or {},
                           per_workload={k: v["evaluation"]
                                         for k, v in best["workloads"].items()}),
    }
    _atomic_write(out / "best.json", json.dumps(jsonable(best_json), indent=2,
                                                allow_nan=False))
    _atomic_write(out / "summary.json", json.dumps(jsonable(summary), indent=2,
                                                   allow_nan=False))
    tmp = out / ".designs.csv.tmp"
    write_csv(designs_table(ev), tmp)
    tmp.replace(out / "designs.csv")
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
