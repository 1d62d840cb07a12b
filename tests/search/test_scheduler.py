"""List scheduler vs ILP on small DAGs: ILP ≤ list, both ≥ critical path and ≥ load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.errors import ConfigError
from search.scheduler import (
    SchedulingProblem,
    asap_alap,
    critical_tasks,
    ilp_schedule,
    list_schedule,
    lower_bound_s,
    problem_from_costs,
    validate_schedule,
)


@st.composite
def small_dags(draw: st.DrawFn) -> SchedulingProblem:
    n = draw(st.integers(2, 7))
    ntypes = draw(st.integers(1, 2))
    caps = tuple(draw(st.integers(1, 2)) for _ in range(ntypes))
    dur = [draw(st.integers(1, 9)) * 1e-6 for _ in range(n)]
    res = [draw(st.integers(0, ntypes - 1)) for _ in range(n)]
    preds = []
    for i in range(n):
        ps = [p for p in range(i) if draw(st.booleans()) and draw(st.booleans())]
        preds.append(tuple(ps))
    with_par = draw(st.booleans())
    par = None
    if with_par:
        # split over all units: ideal speed-up degraded by an overhead factor in [1, 2]
        par = [d / caps[r] * draw(st.sampled_from([1.0, 1.25, 2.0])) for d, r in zip(dur, res)]
    return SchedulingProblem(names=tuple(f"op{i}" for i in range(n)), duration_s=dur,
                             resource=res, capacity=caps, preds=tuple(preds),
                             parallel_duration_s=par)


@settings(max_examples=40, deadline=None)
@given(small_dags())
def test_ilp_le_list_and_both_ge_bounds(p: SchedulingProblem) -> None:
    ls = list_schedule(p)
    validate_schedule(p, ls)
    ilp = ilp_schedule(p, time_limit_s=5.0)
    validate_schedule(p, ilp)
    lb = lower_bound_s(p)
    _, _, cp = asap_alap(p)
    eps = 1e-9
    assert ilp.makespan_s <= ls.makespan_s * (1 + eps)
    for s in (ls, ilp):
        assert s.makespan_s >= cp * (1 - 1e-6)
        assert s.makespan_s >= lb * (1 - 1e-6)
    assert ilp.lower_bound_s <= ilp.makespan_s * (1 + 1e-9)


def test_ilp_beats_list_on_a_known_bad_case() -> None:
    # A chain of two tasks on a 2-unit type: each runs in half the time when split over
    # both units. The list scheduler (use_parallel=False) runs them on one unit each,
    # 8 s; the ILP chooses the split (Phaze's y_i) for both, 4 s.
    p = SchedulingProblem(names=("a", "b"), duration_s=(4.0, 4.0), resource=(0, 0),
                          capacity=(2,), preds=((), (0,)), parallel_duration_s=(2.0, 2.0))
    ls = list_schedule(p)
    assert ls.makespan_s == pytest.approx(8.0)
    ilp = ilp_schedule(p)
    assert ilp.makespan_s == pytest.approx(4.0)
    assert ilp.optimal
    assert ilp.info["parallel"] == [True, True]
    validate_schedule(p, ilp)


def test_list_scheduler_critical_path_priority() -> None:
    # one unit: the task heading the long chain must go first
    p = SchedulingProblem(names=("short", "head", "tail"), duration_s=(1.0, 1.0, 5.0),
                          resource=(0, 0, 1), capacity=(1, 1), preds=((), (), (1,)))
    s = list_schedule(p)
    assert s.start_s[1] == 0.0 and s.start_s[0] == 1.0
    assert s.makespan_s == pytest.approx(6.0)
    assert critical_tasks(p) == [1, 2]


def test_list_schedule_uses_all_units() -> None:
    p = SchedulingProblem(names=tuple("abcd"), duration_s=(1.0,) * 4, resource=(0,) * 4,
                          capacity=(2,), preds=((),) * 4)
    assert list_schedule(p).makespan_s == pytest.approx(2.0)
    assert ilp_schedule(p).makespan_s == pytest.approx(2.0)


def test_validate_schedule_catches_overlap() -> None:
    p = SchedulingProblem(names=("a", "b"), duration_s=(1.0, 1.0), resource=(0, 0),
                          capacity=(1,), preds=((), ()))
    s = list_schedule(p)
    bad = type(s)(start_s=np.zeros(2), end_s=np.ones(2), units=((0,), (0,)), makespan_s=1.0,
                  method="bad")
    with pytest.raises(ConfigError, match="overlap"):
        validate_schedule(p, bad)


def test_problem_validation_messages() -> None:
    with pytest.raises(ConfigError, match="topological"):
        SchedulingProblem(names=("a", "b"), duration_s=(1.0, 1.0), resource=(0, 0),
                          capacity=(1,), preds=((1,), ()))
    with pytest.raises(ConfigError, match="capacity"):
        SchedulingProblem(names=("a",), duration_s=(1.0,), resource=(0,), capacity=(0,),
                          preds=((),))


def test_problem_from_costs_maps_units() -> None:
    p = problem_from_costs(["g", "v"], [[], [0]], np.array([2.0, 1.0]), ["tc", "vc"],
                           {"tc": 2, "vc": 1})
    assert p.capacity == (2, 1)
    assert list_schedule(p).makespan_s == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="no capacity"):
        problem_from_costs(["g"], [[]], np.array([1.0]), ["tc"], {"vc": 1})


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_malleable_ilp_never_above_the_list_schedule(seed: int) -> None:
    """The ILP of the in-loop scheduling problem: never longer than the list schedule, never
    below the critical path at the fastest levels nor the tensor cores' load."""
    from cost_models.schedule import LEVELS, Topology, schedule_scalar
    from search.malleable_ilp import malleable_ilp

    rng = np.random.default_rng(seed)
    o = int(rng.integers(2, 8))
    units = rng.choice([0, 0, 1], size=o)
    preds = [tuple(sorted(set(rng.choice(i, size=min(i, int(rng.integers(0, 2))),
                                         replace=False).tolist()))) if i else ()
             for i in range(o)]
    topo = Topology.build(units, preds, ref_duration_s=rng.random(o))
    base = rng.uniform(1e-6, 1e-5, size=(o, 1))
    dur = np.sort(base * rng.uniform(1.0, 1.2, size=(o, LEVELS))
                  * np.array([1.0, 1.6, 2.5, 4.2]), axis=1)
    ok = [True, True, True, bool(rng.random() < 0.5)]
    r = malleable_ilp(topo, dur, ok, time_limit_s=5.0)
    ls = schedule_scalar(topo, dur, level_ok=ok)
    assert r.list_makespan_s == pytest.approx(ls.makespan_s)
    assert r.makespan_s <= ls.makespan_s * (1 + 1e-9)
    # lower bounds: the longest path at each op's fastest level; the tensor work
    fastest = dur[:, 0]
    longest = np.zeros(o)
    for i in range(o):
        longest[i] = fastest[i] + max((longest[p] for p in preds[i]), default=0.0)
    work = sum(min(dur[i, a] / 2**a for a in range(LEVELS) if ok[a])
               for i in range(o) if units[i] == 0)
    assert r.makespan_s >= max(longest.max(), work) * (1 - 1e-6)
