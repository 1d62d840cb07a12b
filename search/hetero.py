"""A chip per pipeline stage (``dse search --heterogeneous``): WHAM's per-stage
accelerators, combined by the end-to-end objective.

With a plan of ``pp > 1`` stages the pipeline ranks do different work (the first holds the
embedding, the last the head and loss, the middle ones only layers), so each rank class may
prefer another chip. After the common-chip search, :func:`heterogeneous_search` takes the
per-stage top-k designs of the stage searches (:class:`search.heuristic.StageTarget`) and
the common chip, costs every candidate on every rank class once, and evaluates every
combination — one candidate per rank class — with the pipeline model
(:func:`cost_models.pipeline.step_time_batch`): each rank's forward, backward (with
recomputation) and optimizer time on its own chip, its data-parallel traffic on its own
chip's links, the point-to-point transfer of the slowest link in the pipeline. A
combination is feasible when every chip is within the area and power budget and holds its
rank's memory. The best combination and its gain over the common chip are reported.

The objective is the problem's: samples/s, or samples/s per watt of the mean TDP of the
chips (each device draws its own chip's TDP).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from dse.errors import ConfigError

__all__ = ["heterogeneous_search"]

MAX_COMBINATIONS = 20000
"""Combinations evaluated at most (the per-class candidate lists are cut to fit)."""


def _rank_classes(model: Any, plan: Any) -> tuple[list[tuple[Any, ...]], list[int]]:
    """(distinct rank signatures, class of every pipeline rank)."""
    p = plan.pp
    parts = model.stage_graphs(plan)
    sig: list[list[tuple[Any, ...]]] = [[] for _ in range(p)]
    for k, name, g, mult, _ in parts:
        sig[k % p].append((name, id(g), mult))
    keys = [tuple(sorted(s)) for s in sig]
    classes = list(dict.fromkeys(keys))
    return classes, [classes.index(k) for k in keys]


def heterogeneous_search(problem: Any, plan: Any, stage_tops: dict[int, list[int]],
                         common: np.ndarray, *, top_per_class: int = 5) -> dict[str, Any]:
    """Best chip per rank class for ``plan`` (module docstring).

    ``stage_tops[k]``: grid positions of the top designs of virtual stage ``k``'s search
    (stages not searched borrow from the stage with the same role); ``common``: the grid
    indices of the best common chip. Returns a JSON-able result with the chips, the
    throughput, the objective and the gain over the common chip.
    """
    from cost_models.contention import beside_s, nccl_share
    from cost_models.network import collective_time_s, comm_time_s
    from cost_models.pipeline import step_time_batch
    from cost_models.training import dp_times, segment_costs
    from search.evaluator import objective_value

    if len(problem.targets) != 1:
        raise ConfigError("--heterogeneous needs one workload (a chip per pipeline stage of "
                          "one model)")
    space = problem.space
    model = problem.models[0]
    p = plan.pp
    if p < 2:
        return {"plan": None, "note": "the best plan has one pipeline stage: nothing to "
                "specialize"}
    classes, rank_class = _rank_classes(model, plan)
    info = model.info(plan)
    # candidates of each class: the tops of the virtual stages its ranks run, + common
    common_flat = int(space.flat(np.asarray(common)[None, :])[0])
    cand: list[list[int]] = []
    for c in range(len(classes)):
        ranks = [d for d in range(p) if rank_class[d] == c]
        flats: list[int] = []
        for d in ranks:
            for k in range(d, len(info.stages), p):
                flats += stage_tops.get(k, [])
        flats = list(dict.fromkeys(flats))[:top_per_class]
        cand.append(list(dict.fromkeys([common_flat] + flats)))
    while int(np.prod([len(c) for c in cand])) > MAX_COMBINATIONS:
        j = int(np.argmax([len(c) for c in cand]))
        cand[j] = cand[j][:-1]
    union = list(dict.fromkeys(f for c in cand for f in c))
    idx = space.unflat(np.asarray(union, dtype=np.int64))
    designs = space.designs(idx)
    area, tdp = problem.area_tdp(idx)
    hbm = np.asarray(designs.hbm_bytes, dtype=np.float64)
    # per-design rank-class costs, each design on its own system (links)
    n = len(union)
    parts = model.stage_graphs(plan)
    zero = plan.grad_group if plan.zero_stage >= 1 else 1
    m = plan.micro_batches
    f = np.zeros((n, len(classes)))
    b = np.zeros((n, len(classes)))
    opt = np.zeros((n, len(classes)))
    p2p = np.zeros(n)
    red = np.zeros((n, len(classes)))
    gat = np.zeros((n, len(classes)))
    post = np.zeros((n, len(classes)))
    rep = [rank_class.index(c) for c in range(len(classes))]  # a rank of each class
    for sel, system in problem._groups(designs, 0):
        sub = designs if len(sel) == n else designs.subset(sel)
        graphs = list({id(g): g for _, _, g, _, _ in parts}.values())
        costs = dict(zip((id(g) for g in graphs),
                         segment_costs(graphs, sub, problem.tech,
                                       [comm_time_s(g, system, plan) for g in graphs],
                                       recompute_modules=plan.recompute_modules)))
        for c, d in enumerate(rep):
            prm = 0.0  # parameters of this rank's shard
            for k, _, g, mult, layer in parts:
                if k % p != d:
                    continue
                sc = costs[id(g)]
                f[sel, c] += mult * sc.fwd_s
                b[sel, c] += mult * sc.bwd_s
                opt[sel, c] += mult * sc.opt_s / zero
                prm += mult * sc.params
                if layer and plan.recompute == "full":
                    b[sel, c] += mult * sc.fwd_s
                elif layer and plan.recompute == "selective":
                    b[sel, c] += mult * sc.attn_core_s
            r_, g_, p_ = dp_times(prm, plan, system)
            red[sel, c], gat[sel, c], post[sel, c] = r_, g_, p_
            tied = model._tied_bytes(plan)
            if tied > 0 and d in (0, p - 1):  # word-embedding all-reduce, first ↔ last
                post[sel, c] += float(collective_time_s(
                    "all_reduce", tied, 2, system.inter_node_bw_bytes_per_s,
                    system.inter_node_latency_s, "switch"))
        p2p[sel] = model._p2p_s(info, system)
    mem = np.array([info.memory.get(f"device_{d}", info.memory["total"]) for d in range(p)])
    # every combination: one candidate (position in `union`) per class
    pos = {fl: i for i, fl in enumerate(union)}
    combos = np.array(list(itertools.product(*[[pos[x] for x in c] for c in cand])),
                      dtype=np.int64)                       # (C, classes)
    by_rank = combos[:, rank_class]                         # (C, p) design of each rank
    fr = f[by_rank, rank_class][:, None, :]                 # (C, 1, p)
    br = b[by_rank, rank_class][:, None, :]
    orr = opt[by_rank, rank_class][:, None, :]
    redr = red[by_rank, rank_class]
    gatr = gat[by_rank, rank_class]
    postr = post[by_rank, rank_class]
    share = nccl_share(designs)[by_rank][:, None, :]   # (C, 1, p)
    if plan.zero_stage >= 2 and plan.grad_group > 1:
        add_f = beside_s(fr, gatr[:, None, :], share)
        add_b = beside_s(br, redr[:, None, :] + gatr[:, None, :], share)
        fr, br = fr + add_f, br + add_b
        redr = np.zeros_like(redr)
    c2 = p2p[by_rank].max(axis=1)                           # the slowest link sets the pace
    v = max(1, len(info.stages) // p)
    res = step_time_batch(fr, br, c2, np.full(len(combos), m), np.full(len(combos), v),
                          dp_comm_s=redr, dp_post_s=postr, optimizer_s=orr,
                          comm_share=share)
    step = res["step_time_s"][:, 0]
    fits = (mem[None, :] <= hbm[by_rank]).all(axis=1)
    within = np.ones(n, dtype=bool)
    within &= area <= problem.area_budget_mm2
    if problem.power_budget_w is not None:
        within &= tdp <= problem.power_budget_w
    ok = fits & within[by_rank].all(axis=1)
    samples = np.where(ok, plan.global_batch / step, 0.0)
    mean_tdp = tdp[by_rank].mean(axis=1)
    value = objective_value(problem.objective, samples[None, :], mean_tdp)
    value = np.where(ok, value, -np.inf)
    best = int(np.argmax(value))
    common_combo = int(np.flatnonzero((combos == pos[common_flat]).all(axis=1))[0])
    chips = []
    for c in range(len(classes)):
        u = int(combos[best, c])
        ranks = [d for d in range(p) if rank_class[d] == c]
        chips.append({"ranks": ranks, "design": space.label(idx[u]),
                      "area_mm2": float(area[u]), "tdp_w": float(tdp[u]),
                      "candidates": len(cand[c])})
    base = float(value[common_combo])
    out = {"plan": {"tp": plan.tp, "pp": plan.pp, "dp": plan.dp,
                    "micro_batch": plan.micro_batch, "schedule": plan.schedule,
                    "interleave": plan.interleave, "recompute": plan.recompute,
                    "zero_stage": plan.zero_stage},
           "chips": chips, "samples_per_s": float(samples[best]),
           "objective_value": float(value[best]), "step_time_s": float(step[best]),
           "common_objective_value": base,
           "gain_over_common": float(value[best] / base) if base > 0 else None,
           "combinations": len(combos)}
    return out
