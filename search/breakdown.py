"""The step breakdown of one design's detailed evaluation
(:func:`search.trainstep.evaluate_training`): operator time per kind and phase on the
slowest pipeline device, and the communication terms (tensor-parallel, expert-parallel
all-to-all, DLRM embedding exchange, context-parallel ring, pipeline p2p, data-parallel),
each with what it covers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["comm_terms", "operator_times", "table_sharding"]


_GROUP_TERM = {"cp": "cp", "ep": "ep", "dp": "dp", "dp_intra": "dp", "dp_inter": "dp"}
"""Breakdown term of a collective inside the forward/backward by its group (``dp``: a
DLRM's embedding exchange, its table-row-wise legs inside and across nodes included)."""


def operator_times(parts: Sequence[Any], m: int, share: float = 0.0
                   ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """``(by operator kind, by operator phase, by collective group)`` seconds per step of a
    device's stage parts (:class:`cost_models.training.StagePart`, their kept schedules)
    over ``m`` micro-batches; ``groups["ep_hidden"]`` is the all-to-all run under the
    neighbouring micro-batch (batch-level overlap), ``groups["contention"]`` what the SMs
    of overlapped collectives (the design's ``share`` of its chip,
    :func:`cost_models.contention.comm_share`) add to the forward and backward passes."""
    from cost_models.contention import contention_s

    by_kind: dict[str, float] = {}
    by_phase_op: dict[str, float] = {}
    groups = {"cp": 0.0, "ep": 0.0, "dp": 0.0, "ep_hidden": 0.0, "contention": 0.0}
    for part in parts:
        for st, g in ((part.costs.fwd_step, part.costs.phases.fwd),
                      (part.costs.bwd_step, part.costs.phases.bwd)):
            if st is None or g is None:
                continue
            lv = np.asarray(st.level[0], dtype=np.int64)
            lat = np.take_along_axis(np.asarray(st.costs.latency_levels_s[0]), lv[:, None],
                                     axis=1)[:, 0] * np.asarray(st.costs.count)
            for i, op in enumerate(g.ops):
                t = float(lat[i]) * m * part.multiplicity
                by_kind[op.kind] = by_kind.get(op.kind, 0.0) + t
                by_phase_op[op.phase] = by_phase_op.get(op.phase, 0.0) + t
                if op.kind == "collective" and op.group in _GROUP_TERM:
                    groups[_GROUP_TERM[op.group]] += t
            if share > 0:
                groups["contention"] += float(contention_s(st, g, np.array([share]))[0]) \
                    * m * part.multiplicity
        groups["ep_hidden"] += ((part.costs.hidden_fwd_s + part.costs.hidden_bwd_s)
                                * m * part.multiplicity)
    return by_kind, by_phase_op, groups


def comm_terms(by_kind: Mapping[str, float], groups: Mapping[str, float],
               r: Mapping[str, Any], dp_exposed_tail_s: float) -> dict[str, Any]:
    """The ``comm_s`` part of the breakdown (``r``: :func:`cost_models.training.training_step`'s
    detailed result of one design)."""
    cp_s, ep_s, emb_s, hidden = groups["cp"], groups["ep"], groups["dp"], groups["ep_hidden"]
    return {
        "tp_s": by_kind.get("collective", 0.0) - cp_s - ep_s - emb_s,
        "tp_note": "tensor-parallel collectives, inside forward_s/backward_s",
        "ep_s": ep_s + hidden,
        "ep_note": ("expert-parallel all-to-all (token dispatch and combine, forward and "
                    "backward), " + ("run under the neighbouring micro-batch's computation "
                                     "(batch-level overlap): a layer takes the longer of the two"
                                     if hidden else "inside forward_s/backward_s")),
        "ep_hidden": bool(hidden),
        "embedding_s": emb_s,
        "embedding_note": "DLRM embedding exchange (sparse indices and pooled embeddings "
                          "all-to-all, row-wise partial sums reduce-scatter; their gradients "
                          "backward), inside forward_s/backward_s",
        "cp_s": cp_s,
        "cp_note": "context-parallel ring (K/V chunks forward, their gradients backward), "
                   "overlapped with the attention, inside forward_s/backward_s",
        "p2p_s": float(r["p2p_s"][0]),
        "dp_s": float(r["dp_comm_s"][0]),
        "dp_note": "data-parallel gradient reduction (+ ZeRO gathers) per step, before overlap",
        "dp_exposed_s": dp_exposed_tail_s + float(r["zero_exposed_s"][0]),
        "sm_contention_s": groups.get("contention", 0.0),
        "sm_contention_note": "computation slowed beside overlapped collectives, whose "
                              "kernels hold SMs (NCCL: 24; GPU-like designs only), inside "
                              "forward_s/backward_s",
    }


def table_sharding(stages: Sequence[Any]) -> list[str]:
    """Each embedding table's sharding of a DLRM (``workloads.dlrm.KINDS``, from its
    stage graph's ``meta``); empty for other workloads."""
    g = stages[0].graph if stages else None
    return list(g.meta.get("table_sharding") or ()) if g is not None else []
