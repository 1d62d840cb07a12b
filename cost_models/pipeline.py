"""Pipeline-parallel step time: GPipe, 1F1B and interleaved 1F1B schedules (issue 4).

Inputs are per pipeline *device* ``i`` (``0 … p−1``) and per micro-batch: the forward
time ``f_i``, the backward time ``b_i`` (backward-data + backward-weight, plus the
recomputed forward when activations are recomputed, see :func:`backward_with_recompute_s`)
and the time ``c`` of one point-to-point activation (or gradient) transfer between
neighbouring stages. With interleaving, ``f_i``/``b_i`` are the device's totals over its
``v`` model chunks.

Model (Narayanan et al., SC'21, §2.2; Huang et al., GPipe, 2019). With ``m``
micro-batches, per-micro-batch period ``P_i = f_i + b_i + 2·v·c`` (Megatron's p2p
calls are blocking, so each chunk's receive/send is on the critical path) and
``P = max_i P_i``, the pipeline part of a step lasts

    T_pipe = m · P + (Σ_i P_i − P) / v

i.e. ``m`` periods of the slowest device plus the fill and drain through the other
stages, which interleaving shortens ``v``-fold. For identical stages and ``c = 0`` this
is the textbook ``(m + p − 1)·(f + b)`` and the bubble, ``T_pipe − m·P``, is the
fraction ``(p − 1)/m`` of the ideal time (``(1/v)·(p − 1)/m`` interleaved).
GPipe has the same bubble as 1F1B (it only differs in activation memory).

After the pipeline drains, each device all-reduces its gradients over the data-parallel
group and runs the optimizer. The all-reduce overlaps the backward of the last
micro-batch on that device (gradient buckets are reduced as they become final, PyTorch
DDP, Li et al., VLDB 2020), so only ``max(0, t_dp − b_i)`` is exposed; on GPU-like
designs the SMs the reduction holds slow the backward beside it, so
``max(t_dp − b_i, comm_share · t_dp)`` is (:func:`cost_models.contention.beside_s`;
reported in ``dp_exposed_s``). Device ``i`` finishes its last backward ``Σ_{j<i} (b_j/v + c)`` before device 0 does (the last
gradient flows back to stage 0), which hides part of its tail. Communication that must
follow the optimizer (ZeRO's parameter all-gather) is exposed in full:

    T_step = max_i [T_pipe − slack_i + max(0, t_dp,i − b_i) + t_opt,i + t_post,i]

All functions broadcast over leading axes (e.g. one row per design); the last axis of
per-device arrays is the pipeline stage.

>>> import numpy as np
>>> from dse.types import ParallelPlan
>>> plan = ParallelPlan(pp=4, global_batch=8)  # m = 8
>>> t = step_time_s(np.full(4, 1.0), np.full(4, 2.0), 0.0, plan)
>>> float(t.step_time_s), float(t.bubble_fraction)
(33.0, 0.375)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cost_models.contention import beside_s
from dse.errors import ConfigError
from dse.types import ParallelPlan

__all__ = [
    "PipelineTime",
    "backward_with_recompute_s",
    "bubble_fraction",
    "in_flight_micro_batches",
    "step_time_batch",
    "step_time_s",
    "step_time_scalar_s",
]


def bubble_fraction(p: int, m: int, v: int = 1) -> float:
    """Textbook bubble fraction ``(1/v)·(p−1)/m`` of the ideal compute time.

    >>> bubble_fraction(8, 32)
    0.21875
    >>> bubble_fraction(8, 32, v=2)
    0.109375
    """
    if p < 1 or m < 1 or v < 1:
        raise ConfigError(f"bubble_fraction needs p, m, v >= 1, got p={p}, m={m}, v={v}")
    return (p - 1) / (v * m)


def _interleave(plan: ParallelPlan) -> int:
    return plan.interleave if plan.schedule == "interleaved" else 1


def in_flight_micro_batches(plan: ParallelPlan, stage: int = 0) -> float:
    """Micro-batches whose activations device ``stage`` holds at its peak, in units of
    one micro-batch through all of the device's layers.

    * GPipe: all ``m`` (every forward runs before the first backward).
    * 1F1B: ``min(m, p − stage)`` (Narayanan et al. §2.2.1: at most ``p`` on stage 0).
    * Interleaved (v chunks): Megatron-LM runs ``2(p − stage − 1) + (v − 1)·p`` warm-up
      chunk-forwards before the first backward (``megatron/core/pipeline_parallel/
      schedules.py``), so the peak is that plus one, divided by ``v`` chunks:
      ``p + (p − 1)/v`` on stage 0, Korthikanti et al. 2022 §4.2.3's factor
      ``(1 + (p − 1)/(p·v))`` times ``p``.

    >>> from dse.types import ParallelPlan
    >>> in_flight_micro_batches(ParallelPlan(pp=4, global_batch=16))
    4
    >>> in_flight_micro_batches(ParallelPlan(pp=4, global_batch=16, schedule="interleaved",
    ...                                      interleave=2))
    5.5
    """
    p, m = plan.pp, plan.micro_batches
    if not 0 <= stage < p:
        raise ConfigError(f"stage={stage} must be in 0..{p - 1} (pp={p})")
    if plan.schedule == "gpipe":
        return m
    if plan.schedule == "1f1b" or plan.interleave == 1:
        return min(m, p - stage)
    v = plan.interleave
    warm = 2 * (p - stage - 1) + (v - 1) * p
    return min(m * v, warm + 1) / v


def backward_with_recompute_s(bwd_s: ArrayLike, fwd_s: ArrayLike, attn_core_fwd_s: ArrayLike,
                              recompute: str) -> Any:
    """Backward time including activation recomputation (s).

    * ``none``: ``bwd``.
    * ``full``: the whole forward of the layers is re-run before their backward
      (Chen et al. 2016; Narayanan et al. §3.5): ``bwd + fwd``.
    * ``selective``: only attention's ``QKᵀ``, softmax, dropout and ``softmax·V`` are
      re-run (Korthikanti et al. 2022 §5): ``bwd + attn_core_fwd``.

    >>> backward_with_recompute_s(2.0, 1.0, 0.1, "full")
    3.0
    """
    b = np.asarray(bwd_s, dtype=np.float64)
    if recompute == "none":
        out = b
    elif recompute == "full":
        out = b + np.asarray(fwd_s, dtype=np.float64)
    elif recompute == "selective":
        out = b + np.asarray(attn_core_fwd_s, dtype=np.float64)
    else:
        raise ConfigError(f"recompute={recompute!r} is not valid; choose one of none, "
                          "selective, full")
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True, kw_only=True)
class PipelineTime:
    """Step-time decomposition (s, or arrays over leading axes). ``step_time_s`` =
    ``compute_s + bubble_s + p2p_s + tail_s``; ``bubble_fraction = bubble_s/compute_s``."""

    step_time_s: Any
    compute_s: Any
    """``m`` times the slowest device's compute per micro-batch (the ideal time)."""
    bubble_s: Any
    """Pipeline fill and drain (idle time of the slowest device), p2p excluded."""
    bubble_fraction: Any
    p2p_s: Any
    """Point-to-point transfer time on the critical path."""
    tail_s: Any
    """Exposed data-parallel communication plus optimizer step after the pipeline."""
    dp_exposed_s: Any
    optimizer_s: Any
    post_s: Any
    """Communication after the optimizer (ZeRO parameter all-gather …) on the device that
    ends last; ``tail_s = dp_exposed_s + optimizer_s + post_s − hidden_s``."""
    hidden_s: Any
    """Part of that device's tail hidden because it finished its backward early."""
    slowest_stage: Any
    """Index of the device whose period sets the pace."""


def _pipe(f: np.ndarray, b: np.ndarray, c: np.ndarray, m: int, v: int) -> np.ndarray:
    p = f.shape[-1]
    cc = 2.0 * v * c if p > 1 else 0.0 * c
    period = f + b + cc[..., None]
    pmax = period.max(axis=-1)
    return m * pmax + (period.sum(axis=-1) - pmax) / v


def step_time_s(stage_fwd_s: ArrayLike, stage_bwd_s: ArrayLike, p2p_s: ArrayLike,
                plan: ParallelPlan, *, dp_comm_s: ArrayLike = 0.0,
                dp_post_s: ArrayLike = 0.0, optimizer_s: ArrayLike = 0.0,
                dp_overlap: bool = True, comm_share: ArrayLike = 0.0) -> PipelineTime:
    """Training-step time of one pipeline replica (module docstring for the model).

    ``stage_fwd_s``/``stage_bwd_s``: per micro-batch, shape ``(..., pp)`` (backward
    already including recomputation); ``p2p_s``: one activation transfer, shape ``(...)``;
    ``dp_comm_s``: the gradient all-reduce (or reduce-scatter) per device, overlappable
    with the last backward; ``dp_post_s``: communication after the optimizer (ZeRO
    parameter all-gather); ``optimizer_s``: optimizer step per device. Per-device
    arguments broadcast against ``(..., pp)``. ``comm_share``: the fraction of the chip
    the overlapped gradient reduction takes from the last backward while it runs (shape
    ``(...)``; :func:`cost_models.contention.comm_share`): the exposed time is
    ``max(t_dp − b_i, comm_share · t_dp)`` (:func:`cost_models.contention.beside_s`).
    """
    f = np.asarray(stage_fwd_s, dtype=np.float64)
    b = np.asarray(stage_bwd_s, dtype=np.float64)
    f, b = np.broadcast_arrays(f, b)
    if f.ndim == 0:
        f, b = f[None], b[None]
    p = f.shape[-1]
    if p != plan.pp:
        raise ConfigError(f"stage times have {p} stages but plan.pp={plan.pp}")
    if np.any(f < 0) or np.any(b < 0):
        raise ConfigError("stage times must be >= 0")
    c = np.broadcast_to(np.asarray(p2p_s, dtype=np.float64), f.shape[:-1])
    m, v = plan.micro_batches, _interleave(plan)
    total = _pipe(f, b, c, m, v)
    no_p2p = _pipe(f, b, np.zeros_like(c), m, v)
    comp = f + b
    ideal = m * comp.max(axis=-1)
    bubble = no_p2p - ideal
    # tail after the pipeline: device i finishes its last backward slack_i before stage 0
    dp = np.broadcast_to(np.asarray(dp_comm_s, dtype=np.float64), f.shape)
    post = np.broadcast_to(np.asarray(dp_post_s, dtype=np.float64), f.shape)
    opt = np.broadcast_to(np.asarray(optimizer_s, dtype=np.float64), f.shape)
    share = np.asarray(comm_share, dtype=np.float64)[..., None]
    exposed = beside_s(b, dp, share) if dp_overlap else dp
    hop = b / v + (c[..., None] if p > 1 else 0.0)
    slack = np.cumsum(hop, axis=-1) - hop  # Σ_{j<i}
    tail_i = exposed + opt + post - slack
    tail = np.maximum(tail_i.max(axis=-1), 0.0)
    step = total + tail
    frac = np.where(ideal > 0, bubble / np.where(ideal > 0, ideal, 1.0), 0.0)
    slowest = np.argmax(comp + (2.0 * v * c[..., None] if p > 1 else 0.0), axis=-1)
    worst = np.argmax(tail_i, axis=-1)

    def out(x: np.ndarray) -> Any:
        return float(x) if np.ndim(x) == 0 else x

    return PipelineTime(
        step_time_s=out(step), compute_s=out(ideal), bubble_s=out(bubble),
        bubble_fraction=out(frac), p2p_s=out(total - no_p2p), tail_s=out(tail),
        dp_exposed_s=out(np.take_along_axis(exposed, np.asarray(worst)[..., None],
                                            axis=-1)[..., 0]),
        optimizer_s=out(np.take_along_axis(opt, np.asarray(worst)[..., None],
                                           axis=-1)[..., 0]),
        post_s=out(np.take_along_axis(post, np.asarray(worst)[..., None], axis=-1)[..., 0]),
        hidden_s=out(np.where(tail > 0, np.take_along_axis(
            slack, np.asarray(worst)[..., None], axis=-1)[..., 0], 0.0)),
        slowest_stage=out(slowest) if np.ndim(slowest) else int(slowest),
    )


def _device_order(schedule: str, p: int, m: int, v: int, rank: int) -> list[tuple[str, int, int]]:
    """Task order of one device: ('F'|'B', virtual stage, micro-batch), Megatron-LM's
    ``forward_backward_pipelining_{without,with}_interleaving`` and GPipe's all-forward
    then all-backward."""
    if schedule == "gpipe" or (schedule == "1f1b" and p == 1):
        return [("F", rank, j) for j in range(m)] + [("B", rank, j) for j in range(m)]
    if v == 1:
        warm = min(p - rank - 1, m)
        fw = [("F", rank, j) for j in range(m)]
        bw = [("B", rank, j) for j in range(m)]
        order = fw[:warm]
        for k in range(m - warm):
            order += [fw[warm + k], bw[k]]
        return order + bw[m - warm:]
    total = m * v

    def task(kind: str, k: int) -> tuple[str, int, int]:
        in_group = k % (p * v)
        chunk = in_group // p
        if kind == "B":
            chunk = v - chunk - 1
        mb = (k // (p * v)) * p + k % p
        return (kind, chunk * p + rank, mb)

    warm = total if m == p else min((p - rank - 1) * 2 + (v - 1) * p, total)
    order = [task("F", k) for k in range(warm)]
    for k in range(total - warm):
        order += [task("F", warm + k), task("B", k)]
    return order + [task("B", k) for k in range(total - warm, total)]


def step_time_scalar_s(stage_fwd_s: list[float], stage_bwd_s: list[float], p2p_s: float,
                       plan: ParallelPlan, *, dp_comm_s: float | list[float] = 0.0,
                       dp_post_s: float | list[float] = 0.0,
                       optimizer_s: float | list[float] = 0.0, dp_overlap: bool = True,
                       comm_share: float = 0.0) -> float:
    """Slow scalar reference of :func:`step_time_s`: an event simulation of the actual
    schedule (task order per device as in Megatron-LM, each device running its tasks in
    order, a task starting when its input has arrived). A transfer delays its consumer
    by ``p2p_s`` and blocks the sending device for ``p2p_s`` (blocking p2p).

    It agrees with the closed form exactly for identical stages without p2p, and
    approximately otherwise (tests bound the gap).
    """
    p = len(stage_fwd_s)
    m = plan.micro_batches
    v = plan.interleave if plan.schedule == "interleaved" else 1
    last_vs = p * v - 1
    orders = [_device_order(plan.schedule, p, m, v, r) for r in range(p)]
    done: dict[tuple[str, int, int], float] = {}
    free = [0.0] * p
    ptr = [0] * p
    last_bwd_end = [0.0] * p
    remaining = sum(len(o) for o in orders)
    while remaining:
        progressed = False
        for r in range(p):
            while ptr[r] < len(orders[r]):
                kind, vs, j = orders[r][ptr[r]]
                if kind == "F":
                    dep = ("F", vs - 1, j) if vs > 0 else None
                    dur = stage_fwd_s[r] / v
                    sends = vs < last_vs and p > 1
                else:
                    dep = ("B", vs + 1, j) if vs < last_vs else ("F", vs, j)
                    dur = stage_bwd_s[r] / v
                    sends = vs > 0 and p > 1
                if dep is not None and dep not in done:
                    break
                ready = 0.0
                if dep is not None:
                    ready = done[dep] + (p2p_s if p > 1 and dep[1] != vs else 0.0)
                start = max(free[r], ready)
                end = start + dur
                done[(kind, vs, j)] = end
                free[r] = end + (p2p_s if sends else 0.0)
                if kind == "B":
                    last_bwd_end[r] = max(last_bwd_end[r], end)
                ptr[r] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise RuntimeError("pipeline simulation deadlocked (invalid schedule)")

    def at(x: float | list[float], i: int) -> float:
        return float(x[i]) if isinstance(x, list) else float(x)

    finish = 0.0
    for r in range(p):
        dp = at(dp_comm_s, r)
        exp = float(beside_s(stage_bwd_s[r], dp, comm_share)) if dp_overlap else dp
        finish = max(finish, last_bwd_end[r] + exp + at(optimizer_s, r) + at(dp_post_s, r))
    return finish


def step_time_batch(f: np.ndarray, b: np.ndarray, c: np.ndarray, m: np.ndarray, v: np.ndarray,
                    *, dp_comm_s: np.ndarray, dp_post_s: np.ndarray, optimizer_s: np.ndarray,
                    dp_overlap: bool = True, comm_share: ArrayLike = 0.0
                    ) -> dict[str, np.ndarray]:
    """:func:`step_time_s` of many plans with the same pipeline depth at once.

    ``f``, ``b``, ``optimizer_s``: (P, D, p) per plan, design and device; ``c``, ``m``,
    ``v``: (P,) p2p transfer, micro-batches and interleaving of each plan; ``dp_comm_s``,
    ``dp_post_s``: (P, p); ``comm_share``: (D,), or broadcastable to ``f``. Returns
    (P, D) arrays ``step_time_s``, ``compute_s``, ``bubble_s``, ``p2p_s``, ``tail_s`` (the
    same model; tests compare the two).
    """
    p = f.shape[-1]
    mm = np.asarray(m, dtype=np.float64)[:, None]
    vv = np.asarray(v, dtype=np.float64)[:, None]
    cc = np.asarray(c, dtype=np.float64)[:, None, None]
    comp = f + b
    cmax = comp.max(axis=-1)
    base = mm * cmax + (comp.sum(axis=-1) - cmax) / vv
    if p > 1:
        period = comp + 2.0 * vv[:, :, None] * cc
        pmax = period.max(axis=-1)
        total = mm * pmax + (period.sum(axis=-1) - pmax) / vv
        hop = b / vv[:, :, None] + cc
    else:
        total = base
        hop = b / vv[:, :, None]
    ideal = mm * cmax
    dp = np.asarray(dp_comm_s, dtype=np.float64)[:, None, :]
    post = np.asarray(dp_post_s, dtype=np.float64)[:, None, :]
    share = np.asarray(comm_share, dtype=np.float64)
    share = share[None, :, None] if share.ndim == 1 else share
    exposed = beside_s(b, dp, share) if dp_overlap else np.broadcast_to(dp, b.shape)
    slack = np.cumsum(hop, axis=-1) - hop
    tail = np.maximum((exposed + optimizer_s + post - slack).max(axis=-1), 0.0)
    return {"step_time_s": total + tail, "compute_s": ideal, "bubble_s": base - ideal,
            "p2p_s": total - base, "tail_s": tail}
