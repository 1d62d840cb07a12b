"""The parallel plans of a workload (issue 4): every valid (tp, pp, dp, micro-batch,
schedule, recompute, ZeRO) plan on ``devices`` devices. :mod:`search.trainstep` costs them
on designs; :mod:`search.plans` picks the fastest that fits.

The space (all filtered by :func:`workloads.parallel.validate_plan`):

* ``tp``: divisors of ``devices`` that divide the heads and MLP width (1 for models that
  are not transformers); ``pp``: divisors of ``devices/tp`` up to the layer count (up to
  ``max_pp`` forward-operator ranges otherwise); ``dp = devices/(tp·pp)``;
* micro-batch: powers of two dividing ``global_batch/dp``, up to ``max_micro_batch``
  (Megatron-LM's sweeps use 1–16; Narayanan et al. Fig. 16); for DLRM also the whole
  ``global_batch/dp`` (no gradient accumulation, as MLPerf's submissions train);
* schedule: ``1f1b`` and ``interleaved`` with every ``v`` in ``interleaves`` the layer
  count allows. GPipe is left out by default: it has the 1F1B bubble and stashes all
  ``m`` micro-batches instead of ``p`` (Narayanan et al. §2.2.1), so it never wins;
* recompute: none, selective (unfused attention only: with fused attention it re-runs
  nothing and equals none), full; sequence parallelism whenever ``tp > 1`` (same
  communication volume, less activation memory, Korthikanti et al. §4.2.2);
* ZeRO stage 0 or 1 when ``dp > 1``;
* ``ep`` (mixture-of-experts models): every divisor of the expert count that divides a
  stage's expert ranks ``tp·dp/etp``, with experts split over tp (``etp`` = tp) or whole
  (``etp`` = 1) when ``tp > 1``.

Evaluation is shared: memory depends only on the plan (computed once per plan, plans
that cannot fit any design are pruned before timing), and stage costs only on
``(stage shape, tp, micro-batch, sequence parallelism)``, cached across plans, so the
schedule/recompute/ZeRO variants of a shape cost a closed-form pipeline evaluation each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dse.errors import ConfigError
from dse.types import ParallelPlan

__all__ = ["enumerate_plans"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def enumerate_plans(spec: Any, devices: int, *, global_batch: int | None = None,
                    seq: int | None = None, max_micro_batch: int = 16,
                    schedules: Sequence[str] = ("1f1b", "interleaved"),
                    interleaves: Sequence[int] = (2, 3, 4),
                    recompute: Sequence[str] = ("none", "selective", "full"),
                    zero_stages: Sequence[int] = (0, 1), max_pp: int = 8) -> list[ParallelPlan]:
    """Every valid plan of ``spec`` on ``devices`` devices (module docstring).

    ``global_batch`` defaults to the workload's default batch; plans whose ``dp`` does
    not divide it are skipped (the global batch is part of the training recipe).

    >>> from workloads.spec import TransformerSpec
    >>> s = TransformerSpec(name="t", model_type="gpt2", layers=4, hidden=256, heads=4,
    ...                     ffn=1024, vocab=1000, max_positions=128, source="doc",
    ...                     default_batch=8)
    >>> plans = enumerate_plans(s, 4, recompute=("none",), zero_stages=(0,))
    >>> sorted({(p.tp, p.pp, p.dp) for p in plans})
    [(1, 1, 4), (1, 2, 2), (1, 4, 1), (2, 1, 2), (2, 2, 1), (4, 1, 1)]
    """
    from workloads.parallel import validate_plan

    if devices < 1:
        raise ConfigError(f"devices={devices} must be >= 1")
    gb = int(global_batch or spec.default_batch)
    transformer = getattr(spec, "family", "") == "transformer"
    layers = int(spec.layers) if transformer else max_pp
    experts = int(getattr(spec, "experts", 0) or 0) if transformer else 0
    # with fused attention selective recomputation (the attention core) re-runs nothing
    # the kernel does not already recompute: the same plan as none, enumerated once
    if transformer and getattr(spec, "attention", "") == "fused":
        recompute = tuple(rc for rc in recompute if rc != "selective") or ("none",)
    out: list[ParallelPlan] = []
    for tp in _divisors(devices) if transformer else [1]:
        if transformer and (spec.heads % tp or spec.ffn % tp
                            or (spec.kv_heads % tp and tp % spec.kv_heads)
                            or (experts and spec.moe_ffn % tp)):
            continue
        for pp in _divisors(devices // tp):
            if pp > layers:
                continue
            dp = devices // (tp * pp)
            if gb % dp:
                continue
            mbs = [b for b in (2 ** i for i in range(16)) if b <= max_micro_batch
                   and (gb // dp) % b == 0]
            if getattr(spec, "family", "") == "dlrm":  # no accumulation (MLPerf: GA 1)
                mbs = sorted(set(mbs) | {gb // dp})
            for mb in mbs:
                m = gb // (dp * mb)
                scheds: list[tuple[str, int]] = []
                if "1f1b" in schedules:
                    scheds.append(("1f1b", 1))
                if "gpipe" in schedules:
                    scheds.append(("gpipe", 1))
                if "interleaved" in schedules and pp > 1 and transformer and m % pp == 0:
                    scheds += [("interleaved", v) for v in interleaves
                               if layers >= pp * v]
                # expert layouts: experts split over tp like the MLP (etp 0 = tp) or
                # whole (etp 1, the tp ranks joining the expert-parallel group)
                eeps = [(etp, ep) for etp in ((0, 1) if tp > 1 else (0,))
                        for ep in _divisors(experts)
                        if (tp * dp // (etp or tp)) % ep == 0] if experts else [(0, 1)]
                for sched, v in scheds:
                    for rc in recompute:
                        for z in zero_stages if dp > 1 else (0,):
                            for etp, ep in eeps:
                                plan = ParallelPlan(tp=tp, pp=pp, dp=dp, global_batch=gb,
                                                    micro_batch=mb, schedule=sched,
                                                    recompute=rc, interleave=v, zero_stage=z,
                                                    sequence_parallel=tp > 1 and transformer,
                                                    ep=ep, etp=etp)
                                try:
                                    validate_plan(spec, plan, devices, seq=seq)
                                except ConfigError:
                                    continue
                                out.append(plan)
    return out
