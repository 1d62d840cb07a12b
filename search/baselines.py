"""Baseline searchers and baseline designs.

* :func:`random_search` — designs drawn uniformly from the grid, kept if within the
  area/power budgets (area and TDP are closed-form, so the filter costs no workload
  evaluation), evaluated until the budget is spent.
* :func:`exhaustive_search` — every design of the grid within the budgets, evaluated in
  grid order (vectorized chunks). Its best is the optimum the other searchers are
  measured against.
* :func:`baseline_designs` — the hand-designed architectures a mined chip is compared
  with, each built **fairly at the same budget** and scored by the same model as the
  search's own candidates (:meth:`search.objective.TrainingProblem.score_designs`):

  - ``tpuv4-like``: TPU v4's MXU (128×128, weight-stationary, double-buffered weights)
    **re-balanced to the budget** by a small search of its own
    (:func:`rebalanced_tpu`): every MXU count that fits, per-core buffer and common
    memory (CMEM) sizes and HBM stacks, one vector unit per four MXUs (TPU v4's
    TensorCore), the best objective kept — the best TPU-like chip of that area;
  - ``tpuv2-like``: WHAM's own comparison (TPU v2: 128×128 MXUs with a 16 MiB vector
    memory each, no common buffer), scaled to fill the budget (:func:`scaled_baseline`);
  - ``nvdla-like``: NVDLA-large (64×32 MACs, 512 KiB convolution buffer) scaled to fill
    the budget.

  All are put on the search's footing first: the template's datatype, clock, node and
  links, and enough HBM of the space's generation to hold the workloads (a baseline that
  cannot hold the model would be a hollow comparison).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dse.errors import ConfigError, InfeasibleDesignError
from dse.types import HardwareConfig
from search.evaluator import Evaluator, within_budget

__all__ = [
    "BASELINE_PRESETS",
    "baseline_designs",
    "best_baseline",
    "exhaustive_search",
    "largest_fitting",
    "random_search",
    "rebalanced_tpu",
    "scaled_baseline",
]

BASELINE_PRESETS: dict[str, str] = {"tpuv4-like": "tpuv4", "tpuv2-like": "tpuv2",
                                    "nvdla-like": "nvdla-large"}
"""Baseline name -> hardware preset it is built from (see the module docstring)."""

REBALANCE_SRAM_PER_CORE_MIB: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16)
"""Per-MXU buffer sizes the re-balanced TPU-like chip chooses from (TPU v4: 4 MiB, its
16 MiB VMEM per TensorCore over 4 MXUs)."""
REBALANCE_CMEM_MIB: tuple[float, ...] = (0, 8, 16, 32, 64, 128)
"""Common-memory sizes it chooses from (TPU v4: 128 MiB CMEM)."""
MXUS_PER_VECTOR_UNIT = 4
"""TPU v4: one vector unit per TensorCore of four MXUs (cost_models/data/presets/tpuv4.yaml)."""


def random_search(evaluator: Evaluator, *, seed: int, budget: int | None = None,
                  batch: int = 256, max_draws: int | None = None) -> int:
    """Uniform random search over the feasible part of the grid; returns designs newly
    evaluated. Deterministic given ``seed`` (``np.random.default_rng``)."""
    rng = np.random.default_rng(seed)
    pb = evaluator.problem
    space = evaluator.space
    target = evaluator.remaining if budget is None else budget
    if target is None:
        raise ConfigError("random search needs a budget (--budget)")
    max_draws = max_draws if max_draws is not None else max(100 * target, 100_000)
    start = evaluator.evaluations
    drawn = 0
    while evaluator.evaluations - start < target and not evaluator.exhausted:
        if drawn >= max_draws:
            break
        cand = space.sample(rng, batch)
        drawn += batch
        area, tdp = pb.area_tdp(cand)
        cand = cand[within_budget(pb, area, tdp)]
        if cand.size == 0:
            continue
        need = target - (evaluator.evaluations - start)
        fresh = cand[~evaluator.known(cand)]
        # unique in draw order, so the sequence is reproducible
        _, first = np.unique(space.flat(fresh), return_index=True)
        fresh = fresh[np.sort(first)][:need]
        if fresh.size:
            evaluator.evaluate(fresh, "random")
    return evaluator.evaluations - start


def exhaustive_search(evaluator: Evaluator, *, chunk: int = 8192,
                      on_feasible_count: Callable[[int], None] | None = None) -> int:
    """Evaluate every design within the budgets (grid order); returns designs newly
    evaluated (a budget, if any, stops it early)."""
    pb = evaluator.problem
    space = evaluator.space
    feas = []
    for c in space.enumerate(65536):
        area, tdp = pb.area_tdp(c)
        feas.append(c[within_budget(pb, area, tdp)])
    allf = np.concatenate(feas) if feas else np.zeros((0, len(space.params)), np.int64)
    if on_feasible_count is not None:
        on_feasible_count(len(allf))
    start = evaluator.evaluations
    for lo in range(0, len(allf), chunk):
        if evaluator.exhausted:
            break
        evaluator.evaluate(allf[lo:lo + chunk], "exhaustive")
    return evaluator.evaluations - start


def scaled_baseline(hw: HardwareConfig, area_fn: Callable[[HardwareConfig], tuple[float, float]],
                    area_mm2: float, power_w: float | None = None, *,
                    name: str | None = None, max_cores: int = 4096) -> HardwareConfig:
    """Scale ``hw`` to the largest version that fits ``area_mm2`` (and ``power_w``).

    The tensor-core count ``n`` goes up (or down) one core at a time; vector cores keep
    the preset's ratio to tensor cores (rounded, at least 1) and the global buffer its
    size per tensor core. Array shape, dataflow, per-core SRAM, clock, links and HBM stay
    the preset's (callers adjust HBM to the workload first, see module docstring).
    ``area_fn(hw) -> (area_mm2, tdp_w)`` must grow with ``n``. Raises
    InfeasibleDesignError if even one tensor core does not fit.
    """
    ratio = hw.vector_cores / hw.tensor_cores
    gb_per_core = hw.global_buffer_bytes / hw.tensor_cores

    def scaled(n: int) -> HardwareConfig:
        return dataclasses.replace(hw, name=name or f"{hw.name}-scaled", tensor_cores=n,
                                   vector_cores=max(1, round(ratio * n)),
                                   global_buffer_bytes=gb_per_core * n)

    def fits(n: int) -> bool:
        a, p = area_fn(scaled(n))
        return a <= area_mm2 and (power_w is None or p <= power_w)

    n = largest_fitting(fits, max_cores)
    if n == 0:
        a, p = area_fn(scaled(1))
        raise InfeasibleDesignError(
            f"no scaled {hw.name} fits area {area_mm2:g} mm²"
            + (f" and {power_w:g} W" if power_w is not None else "")
            + f": one tensor core needs {a:.1f} mm², {p:.1f} W")
    return scaled(n)


def largest_fitting(fits: Callable[[int], bool], max_n: int) -> int:
    """The largest ``n`` in ``1..max_n`` with ``fits(n)`` for a monotone ``fits`` (true up
    to some count, false beyond), 0 if ``fits(1)`` is false: an exponential, then a binary
    search."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= max_n and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, max_n + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def describe_baseline(name: str, preset: str, hw: HardwareConfig) -> dict[str, Any]:
    return {"baseline": name, "preset": preset, "tensor_cores": hw.tensor_cores,
            "vector_cores": hw.vector_cores, "global_buffer_bytes": hw.global_buffer_bytes}


# --------------------------------------------------------------------------- baselines
def _footing(hw: HardwareConfig, template: HardwareConfig) -> HardwareConfig:
    """``hw`` with the template's datatype, clock, node and links (training chips of one
    technology; NVDLA-large is an int8 inference IP at 16 nm)."""
    return dataclasses.replace(
        hw, dtype=template.dtype, freq_hz=template.freq_hz,
        tech_node_nm=template.tech_node_nm, link_count=template.link_count,
        link_bw_bytes_per_s=template.link_bw_bytes_per_s,
        global_buffer_bw_bytes_per_cycle=max(hw.global_buffer_bw_bytes_per_cycle,
                                             template.global_buffer_bw_bytes_per_cycle)
        if hw.global_buffer_bytes > 0 else hw.global_buffer_bw_bytes_per_cycle)


def _with_hbm(hw: HardwareConfig, space: Any, need_bytes: float) -> tuple[HardwareConfig, str]:
    """``hw`` with the fewest HBM stacks of the space's generation that hold
    ``need_bytes`` when its own HBM does not (and a note saying so)."""
    if hw.hbm_bytes >= need_bytes:
        return hw, ""
    stacks = math.ceil(need_bytes / space.hbm.bytes_per_stack)
    return (dataclasses.replace(hw, hbm_stacks=stacks,
                                hbm_bytes=stacks * space.hbm.bytes_per_stack,
                                hbm_bw_bytes_per_s=stacks * space.hbm.bw_bytes_per_s_per_stack),
            f", HBM raised to {stacks} {space.hbm.name} stacks to hold the workload")


def _area_tdp(designs: Any, tech: Any) -> tuple[np.ndarray, np.ndarray]:
    from cost_models.area import area_mm2
    from cost_models.power import tdp_w

    return (np.asarray(area_mm2(designs, tech)["total"], dtype=np.float64),
            np.asarray(tdp_w(designs, tech)["total"], dtype=np.float64))


def rebalanced_tpu(problem: Any, *, max_mxus: int = 512) -> tuple[HardwareConfig | None, str]:
    """The best TPU v4-like chip within the problem's budget (module docstring).

    Candidates: TPU v4's MXU (``tpuv4`` preset: 128×128, weight-stationary, double-buffered)
    on the search's footing; for every per-core buffer in
    :data:`REBALANCE_SRAM_PER_CORE_MIB`, common memory in :data:`REBALANCE_CMEM_MIB` and HBM
    stack count from the fewest that hold the workloads to the space's largest, the largest
    MXU count that fits the area and power budgets (any integer: 7 when 7 fit), with one
    vector unit of the preset's lanes per four MXUs. All candidates are scored by the
    problem's model in one batch and the best objective wins (ties: the smaller chip).
    Returns ``(None, why)`` when no MXU fits.
    """
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset

    space = problem.space
    base = _footing(load_preset("tpuv4").hardware, space.template)
    need = float(problem.min_hbm_bytes())
    stacks_hi = int(max(space.param("hbm_stacks").values)) if "hbm_stacks" in space.names \
        else int(base.hbm_stacks)
    stacks_lo = max(1, math.ceil(need / space.hbm.bytes_per_stack))
    combos = [(s_mib, c_mib, st) for s_mib in REBALANCE_SRAM_PER_CORE_MIB
              for c_mib in REBALANCE_CMEM_MIB for st in range(stacks_lo, stacks_hi + 1)]
    if not combos:
        return None, f"no HBM configuration holds the workload ({need / 1e9:.1f} GB)"
    n = np.arange(1, max_mxus + 1)
    rows = []
    for s_mib, c_mib, st in combos:
        rows.append({"tensor_cores": n, "sram_per_core_bytes": s_mib * 2**20,
                     "global_buffer_bytes": c_mib * 2**20, "hbm_stacks": st})
    cols = {k: np.concatenate([np.broadcast_to(np.asarray(r[k]), n.shape) for r in rows])
            for k in rows[0]}
    cores = cols["tensor_cores"].astype(np.int64)
    stacks = cols["hbm_stacks"].astype(np.int64)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(HardwareConfig)}
    fields.update(name="tpuv4-like", tensor_cores=cores,
                  vector_cores=np.maximum(1, -(-cores // MXUS_PER_VECTOR_UNIT)),
                  sram_per_core_bytes=cols["sram_per_core_bytes"],
                  global_buffer_bytes=cols["global_buffer_bytes"], hbm_stacks=stacks,
                  hbm_bytes=stacks * space.hbm.bytes_per_stack,
                  hbm_bw_bytes_per_s=stacks * space.hbm.bw_bytes_per_s_per_stack)
    grid = DesignBatch.from_arrays(**fields)
    area, tdp = _area_tdp(grid, problem.tech)
    ok = within_budget(problem, area, tdp)
    if not ok.any():
        return None, (f"no TPU v4-like chip fits {problem.area_budget_mm2:g} mm²"
                      + (f" and {problem.power_budget_w:g} W"
                         if problem.power_budget_w is not None else ""))
    # the largest MXU count that fits, per (buffer, CMEM, stacks) combination
    combo = np.repeat(np.arange(len(combos)), len(n))
    keep = []
    for k in np.unique(combo[ok]):
        sel = np.flatnonzero(ok & (combo == k))
        keep.append(int(sel[np.argmax(cores[sel])]))
    cand = grid.subset(np.array(keep))
    sc = problem.score_designs(cand)
    v = np.where(sc.feasible, sc.value, -np.inf)
    if not np.isfinite(v).any():
        return None, "no TPU v4-like chip of the budget fits any plan in its HBM"
    best = int(np.lexsort((sc.area_mm2, -v))[0])
    hw = dataclasses.replace(cand.config(best), name="tpuv4-like")
    note = (f"TPU v4 MXUs re-balanced to {problem.area_budget_mm2:g} mm²: {hw.tensor_cores} "
            f"MXUs, {hw.sram_per_core_bytes / 2**20:g} MiB per MXU, "
            f"{hw.global_buffer_bytes / 2**20:g} MiB CMEM, {hw.hbm_stacks} HBM stacks "
            f"(best of {len(keep)} candidates)")
    return hw, note


def baseline_designs(problem: Any) -> list[tuple[str, str, HardwareConfig | None, str]]:
    """(name, preset, design or None, note) of every baseline of the problem's budget
    (module docstring)."""
    from cost_models.designs import DesignBatch
    from cost_models.presets import load_preset

    space = problem.space
    need = problem.min_hbm_bytes()

    def area_fn(hw: HardwareConfig) -> tuple[float, float]:
        a, p = _area_tdp(DesignBatch.from_configs([hw]), problem.tech)
        return float(a[0]), float(p[0])

    out: list[tuple[str, str, HardwareConfig | None, str]] = []
    for name, preset in BASELINE_PRESETS.items():
        if name == "tpuv4-like":
            hw, note = rebalanced_tpu(problem)
            out.append((name, preset, hw, note))
            continue
        hw0, extra = _with_hbm(_footing(load_preset(preset).hardware, space.template), space,
                               need)
        note = f"{preset} scaled to {problem.area_budget_mm2:g} mm²{extra}"
        try:
            scaled = scaled_baseline(hw0, area_fn, problem.area_budget_mm2,
                                     problem.power_budget_w, name=name)
        except InfeasibleDesignError as e:
            out.append((name, preset, None, str(e)))
            continue
        out.append((name, preset, scaled, note))
    return out


def best_baseline(baselines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The baseline entry (of ``dse search``'s ``baselines``) with the best objective."""
    ok = [b for b in baselines if b.get("hardware") is not None
          and b.get("objective_value") is not None]
    return max(ok, key=lambda b: b["objective_value"]) if ok else None
