"""Communication that holds compute resources while it overlaps computation (issue 12).

On a GPU a collective is a kernel: NCCL runs one CTA per channel on the streaming
multiprocessors (:data:`cost_models.network.NCCL_SMS`; DeepEP its own 20,
:data:`cost_models.network.DEEPEP_SMS`), so the computation the schedule runs beside it has
the other SMs. These pure functions charge that share on GPU-like designs
(``single_stream``: their ``vector_cores`` are the SMs) and nothing on designs whose links
have their own engines: :func:`contention_s` inside a scheduled phase graph,
:func:`beside_s` for a collective overlapping a known amount of computation (ZeRO's
gathers, the gradient reduction beside the last backward), :func:`overlapped` for a phase
run beside communication of the neighbouring micro-batch (batch-level MoE overlap).
``docs/distributed.md`` §8.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dse.types import Graph

__all__ = ["beside_s", "comm_share", "contention_s", "nccl_share", "overlapped"]

_CHUNK_ELEMENTS = 4_000_000
"""Designs × collectives × computing operators compared at once in :func:`contention_s`."""


def comm_share(designs: Any, sms: float) -> np.ndarray:
    """(D,) fraction of each design's chip that communication kernels holding ``sms``
    streaming multiprocessors take while they run: ``sms / vector_cores`` on GPU-like
    designs (``single_stream``; their vector cores are the SMs), at most 0.9; 0 on designs
    whose links have their own engines."""
    sm = np.maximum(np.asarray(designs.vector_cores, dtype=np.float64), 1.0)
    return np.where(np.asarray(designs.single_stream) == 1, np.minimum(sms / sm, 0.9), 0.0)


def nccl_share(designs: Any) -> np.ndarray:
    """:func:`comm_share` of an NCCL collective (:data:`cost_models.network.NCCL_SMS`)."""
    from cost_models.network import NCCL_SMS

    return comm_share(designs, NCCL_SMS)


def contention_s(step: Any, graph: Graph, share: np.ndarray) -> np.ndarray:
    """(D,) time the collectives of a scheduled phase graph add by taking SMs from the
    computation that runs beside them (``share``: :func:`comm_share`).

    The list schedule (:func:`cost_models.evaluate.device_step`) overlaps a collective of
    duration ``H`` with ``O`` seconds of computation as if both had the whole chip. While
    the collective runs the computation has ``1 − f`` of it, so it gets ``(1 − f)·H`` of
    its ``O`` seconds done in that window; the rest, ``max(0, O − (1 − f)·H)``, runs after
    it and delays the phase. Exact for a collective hidden under longer computation (``f·H``,
    the case of Megatron's backward all-reduce beside the weight-gradient GEMM); zero when
    the computation beside it is short enough to fit its window at the reduced rate.
    Blocking collectives (nothing beside them) add nothing. Lee et al. 2025 measured an
    18.9 % average (40 % maximum) compute slowdown under overlap on A100 and H100
    (arXiv:2507.03114): ``f = 24/108`` slows a fully overlapped A100 kernel by 29 %.
    """
    out = np.zeros_like(share, dtype=np.float64)
    rows = np.flatnonzero(share > 0)
    if not len(rows) or step.blocking:
        return out
    from cost_models.opcost import graph_arrays

    link = np.zeros(len(graph.ops), dtype=bool)
    link[graph_arrays(graph).comm] = True
    if not link.any() or link.all():
        return out
    # single-stream designs run their computation one operator at a time, so the overlaps
    # of one collective with the computing operators add up to the computation beside it
    s, e = np.asarray(step.start_s), np.asarray(step.end_s)
    n_link, n_comp = int(link.sum()), int((~link).sum())
    chunk = max(1, _CHUNK_ELEMENTS // (n_link * n_comp))
    for lo in range(0, len(rows), chunk):
        r = rows[lo:lo + chunk]
        ls, le = s[r][:, link][:, :, None], e[r][:, link][:, :, None]
        cs, ce = s[r][:, ~link][:, None, :], e[r][:, ~link][:, None, :]
        beside = np.clip(np.minimum(le, ce) - np.maximum(ls, cs), 0.0, None).sum(axis=2)
        dur = (le - ls)[:, :, 0]
        out[r] = np.maximum(beside - (1.0 - share[r])[:, None] * dur, 0.0).sum(axis=1)
    return out


def beside_s(comp: Any, comm: Any, share: Any) -> Any:
    """Time a collective of ``comm`` seconds adds to ``comp`` seconds of computation that
    starts beside it (ZeRO-3's prefetched gathers, ZeRO-2's per-micro-batch reduce-scatter,
    the gradient reduction beside the last backward, batch-level MoE overlap): while the
    collective runs the computation has ``1 − share`` of the chip, afterwards all of it, so
    both end at ``comm + max(0, comp − (1 − share)·comm)`` and the delay over ``comp`` is
    ``max(comm − comp, share · comm)`` — the rule :func:`contention_s` applies to each
    collective of a schedule."""
    return np.maximum(comm - comp, share * comm)


def overlapped(comp: np.ndarray, hidden: float, share: np.ndarray) -> np.ndarray:
    """A phase whose computation ``comp`` runs beside ``hidden`` seconds of communication
    that takes the fraction ``share`` of the chip while it runs
    (:func:`cost_models.training.segment_costs`: batch-level overlap; :func:`beside_s`)."""
    if hidden <= 0:
        return comp
    return comp + beside_s(comp, hidden, share)
