"""The moves of the critical-path local search (:mod:`search.heuristic`): which design
parameters serve which resource, grid steps, reshapes, grows repaired by less critical
resources, and the tiered neighbourhoods a step tries (module docstring of
:mod:`search.heuristic`, step 3).
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

import numpy as np

from search.space import DesignSpace

__all__ = [
    "GROW_SHARE",
    "RESHAPE_SPAN",
    "RESOURCE_PARAMS",
    "SHAPE_GROUPS",
    "SLACK_SHARE",
    "TIERS",
    "grow_and_repair",
    "invert_bounds",
    "move_sets",
    "payers",
    "propose_moves",
    "second_params",
]


class Budgeted(Protocol):
    """What :func:`grow_and_repair` needs of a search target."""

    space: DesignSpace

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def within_budget(self, idx: np.ndarray) -> np.ndarray: ...

    def area_and_fit(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area (mm²) of each design and whether it is within the budgets (one lookup)."""
        ...


RESOURCE_PARAMS: dict[str, tuple[str, ...]] = {
    "tensor": ("tensor_cores", "array_rows", "array_cols", "dataflow"),
    "vector": ("vector_cores", "vector_lanes"),
    "sram": ("sram_per_core_bytes", "global_buffer_bytes"),
    "hbm": ("hbm_stacks", "sram_per_core_bytes", "global_buffer_bytes"),
    "link": ("link_count",),
    "memory": ("hbm_stacks",),
}
"""Which design parameters grow a bounding resource (``cost_models.evaluate.BOUNDS`` plus
``memory`` for HBM capacity)."""

GROW_SHARE = 0.25
"""A resource is grown when it holds at least this share of the largest resource's
critical time (so the top two are grown when they are close)."""
SLACK_SHARE = 0.05
"""A resource is slack (shrunk) below this share of the critical time. Area and power
come from cost_models, so a slack resource is pure cost on the critical path."""




def _step(space: DesignSpace, idx: np.ndarray, name: str, direction: int) -> list[np.ndarray]:
    """Designs one step up (+1) or down (−1) in parameter ``name`` (dataflow: every other
    choice, for either direction)."""
    if name not in space.names:
        return []
    j = space.names.index(name)
    p = space.params[j]
    out = []
    if p.categorical:
        if direction > 0:
            for k in range(len(p.values)):
                if k != idx[j]:
                    b = idx.copy()
                    b[j] = k
                    out.append(b)
        return out
    if 0 <= idx[j] + direction < len(p.values):
        b = idx.copy()
        b[j] += direction
        out.append(b)
    return out


SHAPE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("tensor_cores", "array_rows", "array_cols"),
    ("vector_cores", "vector_lanes"),
)
"""Parameters that multiply into one resource (MACs; vector lanes): other values of the
group with the same product keep the resource and change its shape — a *reshape*."""

RESHAPE_SPAN = 2
"""A reshape moves each parameter of its group at most this many grid steps."""


def _reshapes(space: DesignSpace, idx: np.ndarray, group: tuple[str, ...]) -> list[np.ndarray]:
    """Designs whose ``group`` parameters multiply to the same product as ``idx``'s (the
    same MACs or vector lanes in another shape), each parameter within
    :data:`RESHAPE_SPAN` grid steps. Reshaping the tensor cores also offers the per-core
    SRAM that keeps the chip's core SRAM (cores × per-core) the same (the nearest grid
    value): 8 cores of 64×128 with 1 MiB each ↔ 16 of 64×64 with 0.5 MiB."""
    names = [n for n in group if n in space.names]
    if len(names) < 2:
        return []
    pos = [space.names.index(n) for n in names]
    vals = [space.param(n).values for n in names]
    cur = [vals[k][int(idx[j])] for k, j in enumerate(pos)]
    prod = float(np.prod(cur))
    ranges = [range(max(0, int(idx[j]) - RESHAPE_SPAN),
                    min(len(vals[k]), int(idx[j]) + RESHAPE_SPAN + 1))
              for k, j in enumerate(pos)]
    out: list[np.ndarray] = []
    sram_j = space.names.index("sram_per_core_bytes") if (
        "sram_per_core_bytes" in space.names and "tensor_cores" in names) else -1
    for combo in _product(ranges):
        if all(int(c) == int(idx[j]) for c, j in zip(combo, pos)):
            continue
        if float(np.prod([vals[k][c] for k, c in enumerate(combo)])) != prod:
            continue
        b = idx.copy()
        for c, j in zip(combo, pos):
            b[j] = c
        out.append(b)
        if sram_j >= 0:
            tc = names.index("tensor_cores")
            ratio = cur[tc] / vals[tc][combo[tc]]
            if ratio != 1.0:
                sv = np.asarray(space.param("sram_per_core_bytes").values, dtype=float)
                want = sv[int(idx[sram_j])] * ratio
                k = int(np.argmin(np.abs(np.log(sv) - np.log(want))))
                if k != int(idx[sram_j]):
                    c2 = b.copy()
                    c2[sram_j] = k
                    out.append(c2)
    return out


def _product(ranges: list[range]) -> Any:
    return itertools.product(*ranges)


def move_sets(space: DesignSpace, bounds: dict[str, float], *, full: bool = False
              ) -> tuple[list[str], list[str], list[str]]:
    """(bound resources to grow, their parameters, slack parameters to shrink)."""
    if full:
        return (list(RESOURCE_PARAMS), list(space.names),
                [n for n in space.names if not space.param(n).categorical])
    total = sum(v for v in bounds.values() if v > 0) or 1.0
    top = max(bounds.values()) if bounds else 0.0
    grow_res = [r for r, v in sorted(bounds.items(), key=lambda x: -x[1])
                if v > 0 and v >= GROW_SHARE * top]
    if not grow_res:
        grow_res = ["tensor"]
    grow_params = [p for p in dict.fromkeys(p for r in grow_res for p in RESOURCE_PARAMS[r])
                   if p in space.names]
    busy = {p for r, v in bounds.items() if v >= SLACK_SHARE * total
            for p in RESOURCE_PARAMS.get(r, ())}
    shrink_params = [n for n in space.names
                     if n not in busy and n not in grow_params
                     and not space.param(n).categorical]
    if not shrink_params:  # everything is busy: trade against the least critical
        ranked = sorted(RESOURCE_PARAMS, key=lambda r: bounds.get(r, 0.0))
        shrink_params = [p for r in ranked[:2] for p in RESOURCE_PARAMS[r]
                         if p in space.names and p not in grow_params
                         and not space.param(p).categorical]
    return grow_res, grow_params, shrink_params


def second_params(space: DesignSpace, bounds: dict[str, float]) -> list[str]:
    """Parameters of the resources on the critical path that are not grown first (below
    :data:`GROW_SHARE` of the top one, but with critical time): when the dominant resource
    cannot grow within the budget, these are what still shortens the chain."""
    top = max(bounds.values()) if bounds else 0.0
    res = [r for r, v in sorted(bounds.items(), key=lambda x: -x[1])
           if 0 < v < GROW_SHARE * top and r in RESOURCE_PARAMS]
    first = set(move_sets(space, bounds)[1])
    return [p for p in dict.fromkeys(p for r in res for p in RESOURCE_PARAMS[r])
            if p in space.names and p not in first]


def _share(name: str, bounds: dict[str, float]) -> float:
    """Critical share of a parameter: the largest of the resources it serves."""
    return max((bounds.get(r, 0.0) for r, ps in RESOURCE_PARAMS.items() if name in ps),
               default=0.0)


def payers(space: DesignSpace, bounds: dict[str, float], grow: str,
           shrink_params: list[str]) -> list[str]:
    """Parameters that may pay (shrink) for growing ``grow``: the slack ones and every one
    less critical than ``grow``'s resource (a resource that holds 12 % of the critical
    path pays for one that holds 28 %)."""
    mine = _share(grow, bounds)
    out = [q for q in space.names if q != grow and not space.param(q).categorical
           and (q in shrink_params or _share(q, bounds) < mine)]
    return out


def grow_and_repair(target: Budgeted, idx: np.ndarray, grow_params: list[str],
                    shrink_params: list[str], max_shrinks: int = 8,
                    bounds: dict[str, float] | None = None) -> list[np.ndarray]:
    """For every grow step over the budget, shrink paying parameters (:func:`payers`;
    without ``bounds`` the slack ones) one step at a time until it fits — the least
    critical first, and among equally critical ones once taking the step that saves the
    most area, once the one that saves the least (a fine repair) — so a grow can be paid
    by several less critical resources."""
    space = target.space
    out: list[np.ndarray] = []
    for p in grow_params:
        pay = payers(space, bounds, p, shrink_params) if bounds is not None else [
            q for q in shrink_params if q != p]
        if not pay:
            continue
        rank = {q: _share(q, bounds) if bounds is not None else 0.0 for q in pay}
        grows = _step(space, idx, p, +1)
        if not grows:
            continue
        _, fits = target.area_and_fit(np.array(grows))
        for g in (g for g, ok in zip(grows, fits) if not ok):
            for sign in (1.0, -1.0):  # +1: most area saved first; -1: least
                cur = g
                for _ in range(max_shrinks):
                    downs, share = [], []
                    for q in pay:
                        for b in _step(space, cur, q, -1):
                            downs.append(b)
                            share.append(rank[q])
                    if not downs:
                        break
                    arr = np.array(downs)
                    area, ok = target.area_and_fit(arr)
                    k = int(np.lexsort((sign * area, np.asarray(share)))[0])
                    cur = arr[k]
                    if ok[k]:
                        out.append(cur)
                        break
    return out


TIERS = (0, 1, 2)
"""Neighbourhoods of a guided step, tried in order until one improves: 0 the focused moves
of the critical path (grow a bound resource, reshape it), 1 the same paid by or combined
with slack resources, and the other resources of the critical path grown and repaired,
2 the full neighbourhood (the fallback; the only one without guidance)."""


def propose_moves(space: DesignSpace, idx: np.ndarray, bounds: dict[str, float], *,
                  full: bool = False, tier: int | None = None) -> np.ndarray:
    """Candidate designs around ``idx`` (module docstring, step 3) of one :data:`TIERS`
    neighbourhood (``full`` is tier 2: every ±1 move, every grow+shrink pair and every
    reshape combined with any other ±1 move)."""
    idx = np.asarray(idx, dtype=np.int64)
    t = 2 if full else (0 if tier is None else int(tier))
    grow_res, grow_params, shrink_params = move_sets(space, bounds, full=t == 2)
    grows = [b for p in grow_params for b in _step(space, idx, p, +1)]
    shrinks = [b for p in shrink_params for b in _step(space, idx, p, -1)]
    groups = [grp for grp in SHAPE_GROUPS
              if t == 2 or any(p in grp for r in grow_res for p in RESOURCE_PARAMS[r])]
    reshapes = [r for grp in groups for r in _reshapes(space, idx, grp)]
    cands: list[np.ndarray] = []
    if t in (0, 2):
        cands += grows + reshapes
    if t in (1, 2):
        cands += shrinks
        for g in grows:
            for p in shrink_params:
                cands.extend(_step(space, g, p, -1))
        # reshapes with one more grow/shrink, which may pay for or use the area they change
        others_up = grow_params if t == 1 else list(space.names)
        for grp in groups:
            for r in _reshapes(space, idx, grp):
                for p in others_up:
                    if p not in grp:
                        cands.extend(_step(space, r, p, +1))
                for p in shrink_params:
                    if p not in grp:
                        cands.extend(_step(space, r, p, -1))
    if t == 2:
        cands.extend(b for p in space.names for b in _step(space, idx, p, -1))
    if not cands:
        return np.zeros((0, len(space.params)), dtype=np.int64)
    arr = np.unique(np.array(cands, dtype=np.int64), axis=0)
    keep = ~np.all(arr == idx[None, :], axis=1)
    return arr[keep]



def invert_bounds(bounds: dict[str, float]) -> dict[str, float]:
    """Critical seconds turned upside down: the least critical resource becomes the most
    (``max − v`` over every resource the heuristic knows)."""
    top = max(bounds.values(), default=0.0) or 1.0
    return {r: top - bounds.get(r, 0.0) for r in RESOURCE_PARAMS}
