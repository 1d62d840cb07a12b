"""Parallelization plan search (issue 4): enumerate the valid (tp, pp, dp, micro-batch,
schedule, recompute, ZeRO) plans of a workload on ``devices`` devices and pick the
fastest that fits in memory, for one design or a whole :class:`DesignBatch`.

The space (all filtered by :func:`workloads.parallel.validate_plan`):

* ``tp``: divisors of ``devices`` that divide the heads and MLP width (1 for models that
  are not transformers); ``pp``: divisors of ``devices/tp`` up to the layer count (up to
  ``max_pp`` forward-operator ranges otherwise); ``dp = devices/(tp·pp)``;
* micro-batch: powers of two dividing ``global_batch/dp``, up to ``max_micro_batch``
  (Megatron-LM's sweeps use 1–16; Narayanan et al. Fig. 16);
* schedule: ``1f1b`` and ``interleaved`` with every ``v`` in ``interleaves`` the layer
  count allows. GPipe is left out by default: it has the 1F1B bubble and stashes all
  ``m`` micro-batches instead of ``p`` (Narayanan et al. §2.2.1), so it never wins;
* recompute: none, selective, full; sequence parallelism whenever ``tp > 1`` (same
  communication volume, less activation memory, Korthikanti et al. §4.2.2);
* ZeRO stage 0 or 1 when ``dp > 1``.

Evaluation is shared: memory depends only on the plan (computed once per plan, plans
that cannot fit any design are pruned before timing), and stage costs only on
``(stage shape, tp, micro-batch, sequence parallelism)``, cached across plans, so the
schedule/recompute/ZeRO variants of a shape cost a closed-form pipeline evaluation each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np

from dse.errors import ConfigError, InfeasibleDesignError
from dse.types import Evaluation, HardwareConfig, ParallelPlan, SystemConfig
from search.planspace import enumerate_plans
from search.stagememory import gemm_bytes_of

__all__ = ["best_plan", "best_plan_batch", "enumerate_plans", "evaluate_training_batch",
           "plan_memory_bytes"]



def plan_memory_bytes(spec: Any, plan: ParallelPlan, seq: int | None = None,
                      gemm_bytes: int = 2) -> float:
    """Per-device memory (bytes) of the fullest device under ``plan`` on designs whose
    GEMMs take ``gemm_bytes`` per element (1: fp8, inputs kept quantized)."""
    from search.trainstep import workload_model

    return workload_model(spec, plan.devices, seq=seq, global_batch=plan.global_batch,
                          gemm_bytes=gemm_bytes).memory_bytes(plan)


def _tech_of(designs: Any, tech: Any) -> Any:
    from cost_models.technology import load_technology

    if tech is not None:
        return tech
    nodes = np.unique(np.asarray(designs.tech_node_nm, dtype=np.float64))
    if nodes.size != 1:
        raise ConfigError("designs span several technology nodes; pass tech=")
    return load_technology(float(nodes[0]))


def best_plan_batch(spec: Any, designs: Any, system: SystemConfig, devices: int, *,
                    global_batch: int | None = None, seq: int | None = None, tech: Any = None,
                    plans: Iterable[ParallelPlan] | None = None
                    ) -> tuple[list[ParallelPlan | None], dict[str, np.ndarray]]:
    """The fastest plan that fits memory for every design of a DesignBatch.

    Returns ``(plans, metrics)``: one plan per design (``None`` where nothing fits) and the
    :func:`cost_models.training.training_step` arrays of the chosen plans
    (``step_time_s`` is ``inf`` where nothing fits), plus ``plans_evaluated``.
    """
    from search.trainstep import workload_model

    model = workload_model(spec, devices, seq=seq, global_batch=global_batch,
                           gemm_bytes=gemm_bytes_of(designs),
                           devices_per_node=system.devices_per_node)
    cand = list(plans) if plans is not None else model.plans
    if not cand:
        raise ConfigError(f"no valid parallel plan for {spec.name} on {devices} devices "
                          f"(global batch {global_batch or spec.default_batch})")
    return model.best_plan_batch(designs, system, _tech_of(designs, tech), cand)


def best_plan(spec: Any, hw: HardwareConfig, system: SystemConfig, devices: int,
              global_batch: int | None = None, seq: int | None = None,
              tech: Any = None) -> tuple[ParallelPlan, Evaluation]:
    """The fastest valid plan for ``spec`` on ``devices`` copies of ``hw`` that fits in
    its memory, with its full :class:`Evaluation`.

    Raises :class:`InfeasibleDesignError` when no plan fits.
    """
    from cost_models.designs import DesignBatch
    from cost_models.technology import load_technology
    from search.trainstep import evaluate_training, workload_model

    t = tech if tech is not None else load_technology(hw.tech_node_nm)
    designs = DesignBatch.from_configs([hw])
    model = workload_model(spec, devices, seq=seq, global_batch=global_batch,
                           gemm_bytes=hw.dtype_bytes, devices_per_node=system.devices_per_node)
    cand = model.plans
    if not cand:
        raise ConfigError(f"no valid parallel plan for {spec.name} on {devices} devices "
                          f"(global batch {global_batch or spec.default_batch})")
    plans, metrics = model.best_plan_batch(designs, system, t, cand)
    if plans[0] is None:
        need = model.min_memory_bytes()
        raise InfeasibleDesignError(
            f"no parallel plan of {spec.name} on {devices} x {hw.name} fits in "
            f"{hw.hbm_bytes / 2**30:.1f} GiB per device (the leanest needs "
            f"{need / 2**30:.1f} GiB); add devices or memory")
    plan = plans[0]
    ev = evaluate_training(spec, hw, system, plan, t, seq=seq)
    extra = dict(ev.extra, plans_enumerated=len(cand),
                 plans_evaluated=int(metrics["plans_evaluated"][0]))

    return plan, dataclasses.replace(ev, extra=extra)


def compare_plans(spec: Any, hw: HardwareConfig, system: SystemConfig, devices: int, *,
                  global_batch: int | None = None, seq: int | None = None, tech: Any = None,
                  limit: int = 48) -> list[dict[str, Any]]:
    """Every valid plan of ``spec`` on ``devices`` copies of ``hw`` (at most ``limit``,
    an evenly spaced deterministic subset of :func:`enumerate_plans` plus the fastest
    plan that fits) with its throughput, step time, memory and whether it fits: the
    "parallel plans compared" of a search report, fastest first.
    """
    from cost_models.designs import DesignBatch
    from cost_models.technology import load_technology
    from search.trainstep import workload_model

    if limit < 1:
        raise ConfigError(f"limit={limit!r} must be >= 1")
    t = tech if tech is not None else load_technology(hw.tech_node_nm)
    designs = DesignBatch.from_configs([hw])
    model = workload_model(spec, devices, seq=seq, global_batch=global_batch,
                           gemm_bytes=hw.dtype_bytes, devices_per_node=system.devices_per_node)
    cand = model.plans
    if len(cand) > limit:
        picks = np.unique(np.linspace(0, len(cand) - 1, limit).round().astype(int))
        subset = [cand[int(i)] for i in picks]
    else:
        subset = list(cand)
    chosen, _ = model.best_plan_batch(designs, system, t, cand)
    if chosen[0] is not None and chosen[0] not in subset:
        subset.append(chosen[0])
    rows: list[dict[str, Any]] = []
    for plan, r in zip(subset, model.evaluate(designs, system, t, subset)):
        rows.append({
            "plan": dict(dataclasses.asdict(plan), devices=plan.devices),
            "samples_per_s": float(np.asarray(r["samples_per_s"])[0]),
            "step_time_s": float(np.asarray(r["step_time_s"])[0]),
            "memory_per_device_bytes": float(np.asarray(r["memory_per_device_bytes"])[0]),
            "fits_memory": bool(np.asarray(r["fits_memory"])[0]),
            "chosen": plan == chosen[0],
        })
    rows.sort(key=lambda row: (not row["fits_memory"], -row["samples_per_s"]))
    return rows


def evaluate_training_batch(spec: Any, designs: Any, system: SystemConfig, plan: ParallelPlan,
                            tech: Any, seq: int | None = None, *, dp_overlap: bool = True,
                            tp_overlap: bool = True) -> dict[str, Any]:
    """``plan`` on every design of a :class:`~cost_models.designs.DesignBatch`: the (D,)
    arrays of :func:`cost_models.training.training_step` (number contract keys of
    ``dse evaluate`` and the step-time terms)."""
    from search.trainstep import workload_model

    model = workload_model(spec, plan.devices, seq=seq, global_batch=plan.global_batch,
                           gemm_bytes=gemm_bytes_of(designs),
                           devices_per_node=system.devices_per_node)
    return model.evaluate(designs, system, tech, [plan], dp_overlap=dp_overlap,
                          tp_overlap=tp_overlap)[0]
