"""Operator-level parallel schedule of a device's DAG: malleable list scheduling.

A device has ``P`` tensor cores, one vector unit (all vector cores) and its links. The
tensor cores are a *malleable* resource: an operator runs on a **block** of the cores —
the whole chip, a half, a quarter or an eighth (level ``a`` = 0, 1, 2, 3; block ``b`` of
level ``a`` holds cores ``floor(b·P/2^a) … floor((b+1)·P/2^a) − 1``, so blocks nest like
a buddy allocator) — with the latency it has on ``floor(P/2^a)`` cores and ``1/2^a`` of
the chip's HBM and on-chip fabric bandwidth and global buffer (what runs at once shares
them; :mod:`cost_models.opcost` computes those latencies). Independent operators run at
the same time on disjoint blocks; vector operators on the vector unit and collectives on
the links overlap with both.

The schedule is a serial schedule-generation scheme over a fixed priority order, with an
earliest-finish-time choice of the block:

* operators are placed one at a time in a *priority order* (a topological order that does
  not depend on the design: the critical-path order on a reference roofline, and the
  stored order; both are tried);
* a tensor operator may use any allowed level; at each level it takes the block that is
  free earliest and would end at ``max(ready, block free) + latency(level)``; the level
  that ends it first wins (ties: the smaller block, leaving the rest of the chip free);
* a **cap** ``c`` keeps operators that have an independent tensor operator somewhere in
  the DAG (an *antichain partner*, so concurrency is possible at all) at levels ``>= c``:
  with ``c = 0`` a greedy operator grabs the whole chip and, for operators that scale, the
  schedule is the one-operator-at-a-time schedule of a single resource; ``c = 1..3`` splits
  the chip between independent operators. Operators without partners (a chain) always
  choose freely. The schedule of a design is the shortest over the caps and orders
  (``2 × 4`` candidates), so it is never longer than running every operator on all cores.

Single-stream designs (GPUs: one CUDA stream) use level 0 only and their tensor and
vector operators exclude each other; with ``blocking`` communication (Megatron-LM 2021's
synchronous tensor-parallel collectives) a collective waits for and holds all compute.

The vectorized scheduler (:func:`schedule_rows`) runs many *rows* at once (designs ×
plan variants × caps) of one topology; :func:`schedule_scalar` is its plain-Python
reference for one row, which also traces what every operator waited for (the critical
chain). Tests check that both give the same schedules.

>>> import numpy as np
>>> topo = Topology.build(units=(0, 0, 0), preds=((), (0,), (0,)))   # a -> b, a -> c
>>> dur = np.array([[[4.0, 6.0, 9.0, 9.0], [4.0, 6.0, 9.0, 9.0], [4.0, 6.0, 9.0, 9.0]]])
>>> r = schedule_rows(topo, dur, level_ok=np.ones((1, 4), bool))
>>> float(r.makespan_s[0])        # b and c share the chip: 4 + 6, not 4 + 4 + 4
10.0
>>> schedule_scalar(topo, dur[0], level_ok=[True] * 4).makespan_s
10.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CAPS",
    "LEVELS",
    "ScalarSchedule",
    "ScheduleRows",
    "Topology",
    "block_cores",
    "schedule_rows",
    "schedule_scalar",
]

LEVELS = 4
"""Block levels: the whole chip, halves, quarters, eighths."""
EIGHTHS = 2 ** (LEVELS - 1)
CAPS: tuple[int, ...] = tuple(range(LEVELS))
"""Caps tried for operators that have an antichain partner (see the module docstring)."""
TC, VC, LINK = 0, 1, 2
_SLOT_VC, _SLOT_LINK = EIGHTHS, EIGHTHS + 1
_NSLOTS = EIGHTHS + 2

# block masks: row (offset[a] + b) marks the eighths of block b of level a
_OFFSET = np.array([2**a - 1 for a in range(LEVELS)], dtype=np.int64)
_MASKS = np.zeros((2**LEVELS - 1, EIGHTHS), dtype=bool)
for _a in range(LEVELS):
    _w = EIGHTHS >> _a
    for _b in range(2**_a):
        _MASKS[_OFFSET[_a] + _b, _b * _w:(_b + 1) * _w] = True


def block_cores(p: np.ndarray | int, level: np.ndarray | int) -> np.ndarray:
    """Cores a block of ``level`` uses on a chip of ``p`` tensor cores: ``floor(p/2^level)``
    (0: the level does not exist on that chip).

    >>> block_cores(np.array([8, 6, 1]), 1).tolist()
    [4, 3, 0]
    """
    return np.asarray(p, dtype=np.int64) >> np.asarray(level, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Topology:
    """The design-independent structure of a DAG: units, predecessors, priority orders
    and which tensor operators have an antichain partner. Shared by every graph of the
    same shape (plan variants differ in durations, not in structure)."""

    units: np.ndarray
    """(O,) 0 tensor cores, 1 vector unit, 2 links."""
    preds: tuple[tuple[int, ...], ...]
    orders: tuple[np.ndarray, ...]
    partner: np.ndarray
    """(O,) bool: a tensor operator that some other tensor operator is not ordered with."""

    @property
    def n(self) -> int:
        return len(self.units)

    @staticmethod
    def build(units: Sequence[int], preds: Sequence[Sequence[int]],
              ref_duration_s: Sequence[float] | None = None) -> Topology:
        """From unit codes and predecessor lists (topological: every predecessor index is
        smaller). ``ref_duration_s`` (reference durations, e.g. on a reference roofline)
        gives the critical-path order: decreasing bottom level, ties in stored order."""
        u = np.asarray(units, dtype=np.int64).reshape(-1)
        o = len(u)
        ps = tuple(tuple(int(p) for p in x) for x in preds)
        succ: list[list[int]] = [[] for _ in range(o)]
        for i, pp in enumerate(ps):
            for p in pp:
                succ[p].append(i)
        stored = np.arange(o, dtype=np.int64)
        orders: tuple[np.ndarray, ...] = (stored,)
        if ref_duration_s is not None and o:
            ref = np.asarray(ref_duration_s, dtype=np.float64)
            bl = np.zeros(o)
            for j in range(o - 1, -1, -1):
                bl[j] = ref[j] + max((bl[s] for s in succ[j]), default=0.0)
            critical = np.lexsort((stored, -bl)).astype(np.int64)
            if not np.array_equal(critical, stored):
                orders = (critical, stored)
        # ancestors as Python int bitsets; an antichain partner is a tensor op that is
        # neither an ancestor nor a descendant
        anc = [0] * o
        for i, pp in enumerate(ps):
            a = 0
            for p in pp:
                a |= anc[p] | (1 << p)
            anc[i] = a
        tc_mask = 0
        for i in range(o):
            if u[i] == TC:
                tc_mask |= 1 << i
        desc = [0] * o
        for i in range(o - 1, -1, -1):
            d = 0
            for s in succ[i]:
                d |= desc[s] | (1 << s)
            desc[i] = d
        partner = np.zeros(o, dtype=bool)
        for i in range(o):
            if u[i] == TC:
                others = tc_mask & ~anc[i] & ~desc[i] & ~(1 << i)
                partner[i] = others != 0
        for arr in (u, partner, *orders):
            arr.setflags(write=False)
        return Topology(units=u, preds=ps, orders=orders, partner=partner)


@dataclass(frozen=True, eq=False)
class ScheduleRows:
    """The chosen schedule of every row (times in seconds; ``level``/``block`` of tensor
    operators, 0 for the others; ``cap``/``order`` index the winning candidate)."""

    makespan_s: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    level: np.ndarray
    block: np.ndarray
    cap: np.ndarray
    order: np.ndarray


def _pass(topo: Topology, order: np.ndarray, dur: np.ndarray, allowed: np.ndarray,
          hold_vc: np.ndarray | None, blocking: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One in-order pass. ``dur`` (O, A, R) durations per level (non-tensor operators use
    level 0); ``allowed`` (2, A, R): allowed levels of operators without / with an
    antichain partner. Returns start, end (O, R) and level, block (O, R)."""
    o, nlev, r = dur.shape
    free = np.zeros((_NSLOTS, r))
    start = np.zeros((o, r))
    end = np.zeros((o + 1, r))           # row o: a sentinel that ends at 0
    level = np.zeros((o, r), dtype=np.int8)
    block = np.zeros((o, r), dtype=np.int8)
    zero = np.zeros(r)
    inf = np.inf
    units = topo.units
    partner = topo.partner
    any_hold = hold_vc is not None and bool(hold_vc.any())
    rr = np.arange(r)
    for j in order:
        ps = topo.preds[j]
        if not ps:
            ready = zero
        elif len(ps) == 1:
            ready = end[ps[0]]
        else:
            ready = end[list(ps)].max(axis=0)
        u = units[j]
        if u == TC:
            f8 = free[:EIGHTHS]
            extra = None
            if any_hold:
                extra = np.where(hold_vc, free[_SLOT_VC], 0.0)
            if blocking:
                extra = free[_SLOT_LINK] if extra is None else np.maximum(extra,
                                                                          free[_SLOT_LINK])
            ok = allowed[1 if partner[j] else 0]
            best_fin = np.full(r, inf)
            best_st = np.zeros(r)
            best_a = np.zeros(r, dtype=np.int64)
            best_b = np.zeros(r, dtype=np.int64)
            # block free times from the eighths up: level a has 2^a blocks
            lvl_free = [f8]
            for _ in range(nlev - 1):
                prev = lvl_free[-1]
                lvl_free.append(np.maximum(prev[0::2], prev[1::2]))
            for a in range(nlev - 1, -1, -1):   # smallest blocks first: ties keep them
                bf = lvl_free[nlev - 1 - a]      # (2^a, R)
                if bf.shape[0] == 1:
                    b = np.zeros(r, dtype=np.int64)
                    av = bf[0]
                else:
                    b = bf.argmin(axis=0)
                    av = bf[b, rr]
                st = np.maximum(ready, av)
                if extra is not None:
                    st = np.maximum(st, extra)
                fin = np.where(ok[a], st + dur[j, a], inf)
                better = fin < best_fin
                best_fin = np.where(better, fin, best_fin)
                best_st = np.where(better, st, best_st)
                best_a = np.where(better, a, best_a)
                best_b = np.where(better, b, best_b)
            e = best_fin
            s = best_st
            mask = _MASKS[_OFFSET[best_a] + best_b].T     # (8, R)
            free[:EIGHTHS] = np.where(mask, e, f8)
            if any_hold:
                free[_SLOT_VC] = np.where(hold_vc, e, free[_SLOT_VC])
            if blocking:
                free[_SLOT_LINK] = e
            level[j] = best_a
            block[j] = best_b
        else:
            slot = _SLOT_VC if u == VC else _SLOT_LINK
            av = free[slot]
            if u == VC and any_hold:
                av = np.maximum(av, np.where(hold_vc, free[:EIGHTHS].max(axis=0), 0.0))
            if blocking:
                av = np.maximum(av, free.max(axis=0)) if u == LINK else \
                    np.maximum(av, free[_SLOT_LINK])
            s = np.maximum(ready, av)
            e = s + dur[j, 0]
            free[slot] = e
            if u == VC and any_hold:
                free[:EIGHTHS] = np.where(hold_vc, e, free[:EIGHTHS])
            if blocking:
                if u == LINK:
                    free[:] = e
                else:
                    free[_SLOT_LINK] = e
        start[j] = s
        end[j] = e
    return start, end[:o], level, block


def _allowed(level_ok: np.ndarray, cap: int) -> np.ndarray:
    """(2, A, R) allowed levels without / with an antichain partner under ``cap``."""
    lok = np.asarray(level_ok, dtype=bool).T            # (A, R)
    capped = lok.copy()
    capped[:cap] = False
    # a chip too small for the cap's levels keeps its largest allowed block
    none = ~capped.any(axis=0)
    if none.any():
        last = lok.shape[0] - 1 - np.argmax(lok[::-1], axis=0)
        capped[last[none], np.flatnonzero(none)] = True
    return np.stack([lok, capped])


def schedule_rows(topo: Topology, dur_levels: np.ndarray, *, level_ok: np.ndarray,
                  hold_vc: np.ndarray | None = None, blocking: bool = False,
                  caps: Sequence[int] = CAPS, floor_levels_s: np.ndarray | None = None,
                  ) -> ScheduleRows:
    """Schedule ``R`` rows of one topology (module docstring).

    ``dur_levels`` (R, O, A): each operator's duration (count × latency, s) at every
    level (only level 0 is read for vector and link operators); ``level_ok`` (R, A): the
    levels each row's chip has (``floor(P/2^a) >= 1``, level 0 only for single-stream
    designs); ``hold_vc`` (R,) bool: tensor and vector operators exclude each other.
    ``floor_levels_s`` (R, O, A): each operator's share of a lower bound that depends on
    the levels chosen (its HBM bytes at full bandwidth: what runs at once shares HBM,
    so a step takes at least all its traffic at full bandwidth); candidates are then
    compared on ``max(schedule, Σ floor)`` and ``makespan_s`` is that maximum. Returns the
    shortest candidate per row.
    """
    dur = np.asarray(dur_levels, dtype=np.float64)
    r, o, nlev = dur.shape
    if nlev != LEVELS:
        raise ValueError(f"dur_levels has {nlev} levels, expected {LEVELS}")
    lok = np.asarray(level_ok, dtype=bool)
    hv = None if hold_vc is None else np.asarray(hold_vc, dtype=bool)
    has_partner = bool(topo.partner.any())
    cand_caps = [c for c in caps if c == 0 or (has_partner and lok[:, c:].any())] or [0]
    k = len(cand_caps)
    # every cap is a block of rows of one pass: cap-major (R·k rows)
    durt = np.ascontiguousarray(np.tile(dur.transpose(1, 2, 0), (1, 1, k)))   # (O, A, R·k)
    allowed = np.concatenate([_allowed(lok, c) for c in cand_caps], axis=2)
    hvk = None if hv is None else np.tile(hv, k)
    fl = None
    if floor_levels_s is not None and o:
        fl = np.tile(np.asarray(floor_levels_s, dtype=np.float64), (k, 1, 1))
    best_ms = np.full(r, np.inf)
    best: dict[str, np.ndarray] = {}
    for oi, order in enumerate(topo.orders):
        st, en, lv, bk = _pass(topo, order, durt, allowed, hvk, blocking)
        ms = en.max(axis=0) if o else np.zeros(r * k)
        if fl is not None:
            f = np.take_along_axis(fl, lv.T[:, :, None].astype(np.int64), axis=2)[:, :, 0]
            ms = np.maximum(ms, f.sum(axis=1))
        msk = ms.reshape(k, r)
        ci = np.argmin(msk, axis=0)          # first minimum: the smallest cap wins ties
        win = ci * r + np.arange(r)
        ms_w = msk[ci, np.arange(r)]
        better = ms_w < best_ms
        if not best:
            best = {"ms": ms_w, "start": st[:, win].T.copy(), "end": en[:, win].T.copy(),
                    "level": lv[:, win].T.copy(), "block": bk[:, win].T.copy(),
                    "cap": np.asarray(cand_caps)[ci], "order": np.full(r, oi)}
            best_ms = ms_w.copy()
            continue
        if not better.any():
            continue
        sel = np.flatnonzero(better)
        w = win[sel]
        best["ms"][sel] = ms_w[sel]
        best["start"][sel] = st[:, w].T
        best["end"][sel] = en[:, w].T
        best["level"][sel] = lv[:, w].T
        best["block"][sel] = bk[:, w].T
        best["cap"][sel] = np.asarray(cand_caps)[ci[sel]]
        best["order"][sel] = oi
        best_ms[sel] = ms_w[sel]
    return ScheduleRows(makespan_s=best["ms"], start_s=best["start"], end_s=best["end"],
                        level=best["level"], block=best["block"],
                        cap=best["cap"].astype(np.int64), order=best["order"].astype(np.int64))


@dataclass(frozen=True)
class ScalarSchedule:
    """One row's schedule from :func:`schedule_scalar`, with what each operator waited
    for (``waited_for[j]``: the predecessor that finished last, or the operator that last
    held a resource ``j`` needed and freed it last; -1 at the start)."""

    makespan_s: float
    start_s: list[float]
    end_s: list[float]
    level: list[int]
    block: list[int]
    waited_for: list[int]
    cap: int
    order: int

    def chain(self) -> list[int]:
        """The chain of operators that sets the makespan: from the operator that ends last,
        back through what each waited for."""
        o = len(self.end_s)
        if not o:
            return []
        j = max(range(o), key=lambda x: (self.end_s[x], -x))
        out: list[int] = []
        seen: set[int] = set()
        while j >= 0 and j not in seen:
            seen.add(j)
            out.append(j)
            j = self.waited_for[j]
        out.reverse()
        return out


def _scalar_pass(topo: Topology, order: Sequence[int], dur: np.ndarray, ok0: list[bool],
                 ok1: list[bool], hold_vc: bool, blocking: bool
                 ) -> tuple[list[float], list[float], list[int], list[int], list[int]]:
    o, nlev = dur.shape
    free = [0.0] * _NSLOTS
    owner = [-1] * _NSLOTS
    start = [0.0] * o
    end = [0.0] * o
    level = [0] * o
    block = [0] * o
    waited = [-1] * o
    for j in (int(x) for x in order):
        ready, rp = 0.0, -1
        for p in topo.preds[j]:
            if end[p] > ready:
                ready, rp = end[p], p
        u = int(topo.units[j])
        if u == TC:
            ok = ok1 if topo.partner[j] else ok0
            extra_slots: list[int] = []
            if hold_vc:
                extra_slots.append(_SLOT_VC)
            if blocking:
                extra_slots.append(_SLOT_LINK)
            best: tuple[float, int, int, list[int]] | None = None
            for a in range(nlev - 1, -1, -1):
                if not ok[a]:
                    continue
                w = EIGHTHS >> a
                av_best, b_best = np.inf, 0
                for b in range(2**a):
                    av = max(free[b * w:(b + 1) * w])
                    if av < av_best:
                        av_best, b_best = av, b
                slots = list(range(b_best * w, (b_best + 1) * w)) + extra_slots
                st = max([ready] + [free[x] for x in slots])
                fin = st + float(dur[j, a])
                if best is None or fin < best[0]:
                    best = (fin, a, b_best, slots, st)
            assert best is not None
            e, a, b, slots, s = best
            level[j], block[j] = a, b
        else:
            slot = _SLOT_VC if u == VC else _SLOT_LINK
            slots = [slot]
            if u == VC and hold_vc:
                slots += list(range(EIGHTHS))
            if blocking:
                slots = list(range(_NSLOTS)) if u == LINK else slots + [_SLOT_LINK]
            s = max([ready] + [free[x] for x in slots])
            e = s + float(dur[j, 0])
        # what it waited for: the resource freed last if later than the data
        hold = max(slots, key=lambda x: (free[x], -x))
        if free[hold] > ready:
            waited[j] = owner[hold]
        else:
            waited[j] = rp
        for x in slots:
            free[x] = e
            owner[x] = j
        start[j], end[j] = s, e
    return start, end, level, block, waited


def schedule_scalar(topo: Topology, dur_levels: np.ndarray, *, level_ok: Sequence[bool],
                    hold_vc: bool = False, blocking: bool = False,
                    caps: Sequence[int] = CAPS, only: tuple[int, int] | None = None,
                    floor_levels_s: np.ndarray | None = None) -> ScalarSchedule:
    """Plain-Python reference of :func:`schedule_rows` for one row (``dur_levels`` and
    ``floor_levels_s`` are (O, A)); ``only=(order, cap)`` runs just that candidate (to
    trace a known winner). ``makespan_s`` includes the floor."""
    dur = np.asarray(dur_levels, dtype=np.float64)
    flo = None if floor_levels_s is None else np.asarray(floor_levels_s, dtype=np.float64)
    lok = [bool(x) for x in level_ok]
    has_partner = bool(topo.partner.any())
    best: ScalarSchedule | None = None
    for oi, order in enumerate(topo.orders):
        for c in caps:
            if only is not None and (oi, c) != only:
                continue
            if c > 0 and (not has_partner or not any(lok[c:])):
                continue
            capped = [lok[a] and a >= c for a in range(len(lok))]
            if not any(capped):
                last = max(a for a in range(len(lok)) if lok[a])
                capped[last] = True
            st, en, lv, bk, wf = _scalar_pass(topo, order, dur, lok, capped, hold_vc,
                                             blocking)
            ms = max(en, default=0.0)
            if flo is not None and len(en):
                ms = max(ms, float(sum(flo[j, lv[j]] for j in range(len(en)))))
            if best is None or ms < best.makespan_s:
                best = ScalarSchedule(makespan_s=ms, start_s=st, end_s=en, level=lv,
                                      block=bk, waited_for=wf, cap=c, order=oi)
    assert best is not None
    return best
