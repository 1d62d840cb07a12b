"""Alpha-beta model of collective communication on cluster topologies (issue 4).

A collective over ``n`` ranks moving a buffer of ``S`` bytes costs a bandwidth term
``factor(n) · S / B`` plus a latency term ``steps(n) · α``, where ``B`` is the per-device
bandwidth in one direction (bytes/s) and ``α`` the per-message latency (s).

Buffer-size convention (NCCL's, ``nccl-tests/doc/PERFORMANCE.md``): ``S`` is the size
of the *full* buffer, i.e. the all-reduce buffer, the reduce-scatter **input**, the
all-gather **output** and the all-to-all send buffer of one rank; for ``p2p`` the bytes
sent. With that convention the bandwidth factors are NCCL's "bus bandwidth" factors
(``docs/sources.md`` S4.5):

=================  ==================  =======================================
collective         bandwidth factor    latency steps (ring)
=================  ==================  =======================================
all_reduce         2(n−1)/n            2(n−1)
reduce_scatter     (n−1)/n             n−1
all_gather         (n−1)/n             n−1
all_to_all         (n−1)/n (injection) see below
p2p                1                   1
=================  ==================  =======================================

Topologies (``dse.types.TOPOLOGIES``); ``B`` is always the device's total injection
bandwidth per direction, split evenly over its links:

* ``ring``: a bidirectional ring (two counter-rotating rings each carrying half the
  data on half the bandwidth), so the textbook ring forms hold exactly, e.g.
  all-reduce ``2(n−1)/n · S/B + 2(n−1)·α`` (Patarasuk & Yuan, JPDC 2009, "Bandwidth
  optimal all-reduce algorithms for clusters of workstations"). All-to-all is bounded
  by the bisection: ``n·S/4`` bytes cross it per direction over 2 cut links of ``B/2``.
* ``switch``: every device has ``B`` to a non-blocking switch. NCCL uses rings for
  bandwidth and, for all-reduce, double binary trees whose latency grows as
  ``2⌈log2 n⌉·α`` at full bandwidth (Sanders et al., Parallel Computing 2009; NVIDIA
  blog "Massively Scale Your Deep Learning Training with NCCL 2.4", 2019).
* ``torus2d`` / ``torus3d``: dimension-ordered rings, with the data split into one
  chunk per dimension and the dimension order rotated per chunk so that every link is
  busy in every phase (the "2-D gradient summation" of Ying et al., "Image
  Classification at Supercomputer Scale", arXiv:1811.06992). Each dimension gets
  ``B/ndim`` (its ``+`` and ``−`` links). For equal dimensions the bandwidth term is
  exactly the optimal ``2(n−1)/n · S/B``. All-to-all is bisection bound.
* ``fully_connected``: a direct link to every peer (``B/(n−1)`` each): one-step
  direct reduce-scatter/all-gather, same bandwidth term, latency ``α`` per phase.

Hierarchical systems (:class:`dse.types.SystemConfig`): nodes of ``devices_per_node``
devices with an intra-node fabric, nodes joined by one NIC per device. Ranks are
placed tensor-parallel innermost, then data-parallel, then pipeline (Megatron-LM's
default order ``tp-dp-pp``, ``megatron/core/parallel_state.py``), so a group of
``n`` ranks with stride ``σ`` has ``k`` members on each of ``N`` nodes. A collective
over such a group is done hierarchically (NCCL's tree/ring over NVLink then NICs;
Calculon, Isaev et al. SC'23, §4.3 uses the same decomposition):

* all_reduce = reduce_scatter(intra, k, S) + all_reduce(inter, N, S/k) + all_gather(intra, k, S)
* reduce_scatter = reduce_scatter(intra, k, S) + reduce_scatter(inter, N, S/k)
* all_gather = all_gather(inter, N, S/k) + all_gather(intra, k, S)
* all_to_all: the ``(k−1)/n`` share goes over the intra fabric, ``(n−k)/n`` over NICs.

Every function is pure and broadcasts over numpy arrays (``nbytes``, ``n``, ``bw``,
``latency``); topology and collective names are scalars.

>>> round(collective_time_s("all_reduce", 1e9, 8, 100e9, 0.0, "ring"), 6)
0.0175
>>> round(collective_time_s("all_gather", 8e6, 4, 1e9, 1e-6, "ring") * 1e3, 3)
6.003
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dse.errors import ConfigError, WorkloadError
from dse.types import COLLECTIVES, COMM_GROUPS, TOPOLOGIES, Graph, ParallelPlan, SystemConfig

__all__ = [
    "NCCL_SMS",
    "GroupPlacement",
    "collective_time_s",
    "collective_time_scalar_s",
    "comm_time_s",
    "deepep_all_to_all_time_s",
    "expected_token_nodes",
    "group_collective_time_s",
    "group_placement",
    "overlap_sms",
    "p2p_time_s",
    "placed_collective_time_s",
    "torus_shape",
]

NCCL_SMS = 24
"""Streaming multiprocessors an NCCL collective holds while it runs: NCCL runs one CTA per
channel, and an all-reduce on a DGX A100 node (12 NVLinks per GPU) uses 24 channels
(NVIDIA/nccl issue #1225: "For dgxA100, 12 nvlink and 24 cta for allreduce case";
nccl-tests issue #100 logs ``Channel 23/24`` on HGX A100); an ``ncclAllGather`` on H100
launched 24 blocks in an Nsight Systems trace (NVIDIA developer forum thread 337991).
On GPU-like designs (``single_stream``: the SMs are the ``vector_cores``) computation
that runs beside an overlapped collective has the other SMs
(:func:`cost_models.contention.comm_share`). ``docs/sources.md`` nccl-ctas."""

DEEPEP_SMS = 20
"""SMs DeepEP takes while it overlaps (Megatron-Core ``moe_deepep_num_sms``; DeepSeek-V3
§3.2.2: "only 20 SMs are sufficient")."""


def overlap_sms(dispatcher: str, ep_overlap: bool) -> float:
    """SMs the expert-parallel all-to-all holds while it runs under other computation
    (batch-level overlap): DeepEP's 20, or NCCL's channels for the NCCL dispatcher."""
    if not ep_overlap:
        return 0.0
    return float(DEEPEP_SMS if dispatcher == "deepep" else NCCL_SMS)


_GROUP_ORDER = ("tp", "dp", "pp")
"""Rank order, innermost first (Megatron-LM ``order="tp-cp-ep-dp-pp"`` without cp/ep)."""


def _check(collective: str, topology: str) -> None:
    if collective not in COLLECTIVES:
        raise ConfigError(f"collective={collective!r} is not valid; choose one of "
                          f"{', '.join(COLLECTIVES)}")
    if topology not in TOPOLOGIES:
        raise ConfigError(f"topology={topology!r} is not valid; choose one of "
                          f"{', '.join(TOPOLOGIES)}")


def torus_shape(n: int, ndim: int, dims: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Shape of an ``ndim``-dimensional torus holding ``n`` devices.

    ``dims`` (the system's pod shape) is used when its product is ``n``; otherwise the
    most nearly cubic factorization of ``n`` into ``ndim`` factors (a sub-torus).

    >>> torus_shape(16, 2)
    (4, 4)
    >>> torus_shape(8, 3)
    (2, 2, 2)
    >>> torus_shape(12, 2, (4, 3))
    (4, 3)
    """
    n = int(n)
    if n < 1:
        raise ConfigError(f"torus size n={n} must be >= 1")
    if dims and math.prod(dims) == n and len(dims) == ndim:
        return tuple(int(d) for d in dims)
    best: tuple[int, ...] = (n,) + (1,) * (ndim - 1)

    def rec(rem: int, left: int, start: int, acc: tuple[int, ...]) -> None:
        nonlocal best
        if left == 1:
            cand = tuple(sorted(acc + (rem,), reverse=True))
            if max(cand) < max(best) or (max(cand) == max(best) and sum(cand) < sum(best)):
                best = cand
            return
        for f in range(start, rem + 1):
            if rem % f == 0:
                rec(rem // f, left - 1, f, acc + (f,))

    rec(n, ndim, 1, ())
    return best


# --------------------------------------------------------------------------- one level
def collective_time_scalar_s(collective: str, nbytes: float, n: int, bw_bytes_per_s: float,
                             latency_s: float, topology: str = "ring",
                             dims: tuple[int, ...] = ()) -> float:
    """Scalar reference of :func:`collective_time_s` (plain Python, one case).

    Seconds for one collective over ``n`` ranks on a single-level ``topology``.
    """
    _check(collective, topology)
    s, b, a, n = float(nbytes), float(bw_bytes_per_s), float(latency_s), int(n)
    if n <= 1 or s <= 0.0:
        return 0.0
    if b <= 0:
        raise ConfigError(f"bw_bytes_per_s={bw_bytes_per_s!r} must be > 0")
    if collective == "p2p":
        return s / b + a
    frac = (n - 1) / n
    if collective == "all_to_all":
        inj = frac * s / b
        if topology in ("switch", "fully_connected"):
            return inj + a
        ndim = {"ring": 1, "torus2d": 2, "torus3d": 3}[topology]
        shape = torus_shape(n, ndim, dims)
        dmax = max(shape)
        # bisection: n·S/4 bytes per direction over 2·(n/dmax) cut links of B/(2·ndim)
        bis = s * dmax * ndim / (4.0 * b) if dmax > 1 else 0.0
        return max(inj, bis) + a * (dmax // 2) * ndim
    phases = 2 if collective == "all_reduce" else 1
    if topology == "ring":
        return phases * (frac * s / b + (n - 1) * a)
    if topology == "switch":
        if collective == "all_reduce":
            return 2.0 * frac * s / b + 2.0 * math.ceil(math.log2(n)) * a
        return frac * s / b + (n - 1) * a
    if topology == "fully_connected":
        return phases * (frac * s / b + a)
    ndim = 2 if topology == "torus2d" else 3
    ring_dims = [d for d in torus_shape(n, ndim, dims) if d > 1]
    k = len(ring_dims)
    # chunk c visits dimensions in the order c, c+1, ...; phase j of chunk c runs on
    # dimension (c+j) % k with the data already divided by the sizes visited before.
    total = 0.0
    for j in range(k):
        worst = 0.0
        for c in range(k):
            before = math.prod(ring_dims[(c + i) % k] for i in range(j))
            d = ring_dims[(c + j) % k]
            worst = max(worst, (d - 1) / d * (s / k) / before / (b / ndim))
        total += worst
    lat = sum(d - 1 for d in ring_dims) * a
    return phases * (total + lat)


def collective_time_s(collective: str, nbytes: ArrayLike, n: ArrayLike,
                      bw_bytes_per_s: ArrayLike, latency_s: ArrayLike,
                      topology: str = "ring", dims: tuple[int, ...] = ()) -> Any:
    """Seconds for one collective on a single-level topology (vectorized).

    ``nbytes`` follows NCCL's buffer convention (module docstring), ``n`` is the number
    of ranks, ``bw_bytes_per_s`` each rank's injection bandwidth per direction and
    ``latency_s`` the per-message latency α. Arrays broadcast; a float is returned for
    all-scalar input. ``n <= 1`` or ``nbytes == 0`` costs nothing.

    >>> collective_time_s("reduce_scatter", [4e9, 8e9], 4, 1e9, 0.0)
    array([3., 6.])
    """
    _check(collective, topology)
    s, n_arr, b, a = np.broadcast_arrays(np.asarray(nbytes, dtype=np.float64),
                                         np.asarray(n, dtype=np.int64),
                                         np.asarray(bw_bytes_per_s, dtype=np.float64),
                                         np.asarray(latency_s, dtype=np.float64))
    if np.any(b <= 0):
        raise ConfigError("bw_bytes_per_s must be > 0")
    if np.any(s < 0):
        raise ConfigError("nbytes must be >= 0")
    scalar = all(np.ndim(x) == 0 for x in (nbytes, n, bw_bytes_per_s, latency_s))
    if topology.startswith("torus") or (collective == "all_to_all" and topology == "ring"):
        # shape-dependent forms are still linear in S/B and in α: take the coefficients
        # from the scalar reference for each distinct n
        out = np.zeros(s.shape, dtype=np.float64)
        for nv in np.unique(n_arr):
            m = n_arr == nv
            c_bw = collective_time_scalar_s(collective, 1.0, int(nv), 1.0, 0.0, topology, dims)
            c_lat = collective_time_scalar_s(collective, 1.0, int(nv), math.inf, 1.0,
                                             topology, dims)
            out[m] = c_bw * s[m] / b[m] + c_lat * a[m]
        out = np.where((n_arr <= 1) | (s <= 0), 0.0, out)
        return float(out) if scalar else out
    nf = n_arr.astype(np.float64)
    frac = np.where(n_arr > 1, (nf - 1.0) / np.maximum(nf, 1.0), 0.0)
    if collective == "p2p":
        t = s / b + a
    elif collective == "all_to_all":  # switch / fully connected
        t = frac * s / b + a
    else:
        phases = 2.0 if collective == "all_reduce" else 1.0
        if topology == "ring":
            t = phases * (frac * s / b + (nf - 1.0) * a)
        elif topology == "switch":
            if collective == "all_reduce":
                t = 2.0 * frac * s / b + 2.0 * np.ceil(np.log2(np.maximum(nf, 1.0))) * a
            else:
                t = frac * s / b + (nf - 1.0) * a
        else:  # fully_connected
            t = phases * (frac * s / b + a)
    t = np.where((n_arr <= 1) | (s <= 0), 0.0, t)
    return float(t) if scalar else t


# --------------------------------------------------------------------------- placement
@dataclass(frozen=True, kw_only=True)
class GroupPlacement:
    """Where the ``size`` ranks of one communication group sit: ``per_node`` of them
    on each of ``nodes`` nodes (``size == per_node · nodes``)."""

    group: str
    size: int
    per_node: int
    nodes: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.per_node < 1 or self.nodes < 1:
            raise ConfigError(f"GroupPlacement[{self.group}]: size={self.size}, "
                              f"per_node={self.per_node}, nodes={self.nodes} must be >= 1")
        if self.per_node * self.nodes != self.size:
            raise ConfigError(f"GroupPlacement[{self.group}]: per_node*nodes="
                              f"{self.per_node}*{self.nodes} != size={self.size}")


def _group_size_stride(group: str, plan: ParallelPlan) -> tuple[int, int]:
    if group not in COMM_GROUPS:
        raise ConfigError(f"group={group!r} is not valid; choose one of {', '.join(COMM_GROUPS)}")
    cp = getattr(plan, "cp", 1)
    if group == "tp":
        return plan.tp, 1
    if group == "cp":
        return cp, plan.tp
    if group == "dp":  # gradients are reduced over the data- and context-parallel ranks
        return plan.dp * cp, plan.tp
    if group == "pp":
        return plan.pp, plan.tp * cp * plan.dp
    if group == "edp":  # the ranks holding the same experts: every (etp·ep)-th rank
        etp = getattr(plan, "expert_tp", plan.tp)
        return plan.expert_grad_group, etp * plan.ep
    # expert parallelism is carved out of a stage's tp·cp·dp ranks (Megatron-Core's expert
    # order etp-ep-edp): ep groups of etp consecutive ranks
    return getattr(plan, "ep", 1), getattr(plan, "expert_tp", plan.tp)


def group_placement(group: str, plan: ParallelPlan, system: SystemConfig) -> GroupPlacement:
    """Placement of ``group`` ('tp', 'dp', 'pp', 'ep', …) for ranks laid out tp-innermost;
    ``dp_intra`` and ``dp_inter`` are the data-parallel ranks of one node and the ranks
    of the same local index across nodes (a DLRM table's row shards inside a node and the
    exchange of their sums across nodes, :mod:`workloads.dlrm`).

    >>> from dse.types import ParallelPlan, SystemConfig
    >>> plan = ParallelPlan(tp=4, pp=2, dp=4, global_batch=16)
    >>> sysc = SystemConfig(devices_per_node=8)
    >>> group_placement("tp", plan, sysc)
    GroupPlacement(group='tp', size=4, per_node=4, nodes=1)
    >>> group_placement("dp", plan, sysc)
    GroupPlacement(group='dp', size=4, per_node=2, nodes=2)
    """
    if group in ("dp_intra", "dp_inter"):  # a dp group's ranks on one node / one per node
        dp = group_placement("dp", plan, system)
        if group == "dp_intra":
            return GroupPlacement(group=group, size=dp.per_node, per_node=dp.per_node, nodes=1)
        return GroupPlacement(group=group, size=dp.nodes, per_node=1, nodes=dp.nodes)
    size, stride = _group_size_stride(group, plan)
    g = int(system.devices_per_node)
    ranks = stride * np.arange(size, dtype=np.int64)
    nodes = ranks // g
    counts = np.bincount(nodes - nodes.min())
    counts = counts[counts > 0]
    per_node = int(counts.max())
    n_nodes = int(counts.size)
    if per_node * n_nodes != size:  # uneven spread (node size not a multiple of stride)
        per_node, n_nodes = 1, size
        if np.all(counts == counts[0]):
            per_node, n_nodes = int(counts[0]), int(counts.size)
    return GroupPlacement(group=group, size=size, per_node=per_node, nodes=n_nodes)


def group_collective_time_s(collective: str, nbytes: ArrayLike, placement: GroupPlacement,
                            system: SystemConfig) -> Any:
    """Seconds for one collective over a placed group on a hierarchical system.

    One level when the group is inside a node (``nodes == 1``) or has one member per
    node (``per_node == 1``, each member uses its own NIC); otherwise the hierarchical
    decomposition of the module docstring.

    >>> from dse.types import SystemConfig
    >>> sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=200e9,
    ...                     intra_node_latency_s=0, inter_node_bw_bytes_per_s=25e9,
    ...                     inter_node_latency_s=0)
    >>> p = GroupPlacement(group="dp", size=16, per_node=8, nodes=2)
    >>> round(group_collective_time_s("all_reduce", 1.6e9, p, sysc), 6)
    0.022
    """
    k, nn = placement.per_node, placement.nodes
    dims = system.torus_dims
    intra = (system.intra_node_bw_bytes_per_s, system.intra_node_latency_s,
             system.intra_node_topology)
    inter = (system.inter_node_bw_bytes_per_s, system.inter_node_latency_s,
             system.inter_node_topology)

    def one(coll: str, s: Any, n: int, lvl: tuple[float, float, str]) -> Any:
        return collective_time_s(coll, s, n, lvl[0], lvl[1], lvl[2], dims)

    s = np.asarray(nbytes, dtype=np.float64)
    if collective == "p2p":
        out = one("p2p", s, 2, inter if nn > 1 else intra)
    elif nn == 1:
        out = one(collective, s, k, intra)
    elif k == 1:
        out = one(collective, s, nn, inter)
    elif collective == "all_reduce":
        out = (one("reduce_scatter", s, k, intra) + one("all_reduce", s / k, nn, inter)
               + one("all_gather", s, k, intra))
    elif collective == "reduce_scatter":
        out = one("reduce_scatter", s, k, intra) + one("reduce_scatter", s / k, nn, inter)
    elif collective == "all_gather":
        out = one("all_gather", s / k, nn, inter) + one("all_gather", s, k, intra)
    elif collective == "all_to_all":
        n = placement.size
        out = (s * (k - 1) / n / intra[0] + intra[1]
               + s * (n - k) / n / inter[0] + inter[1])
    else:
        raise ConfigError(f"collective={collective!r} is not valid; choose one of "
                          f"{', '.join(COLLECTIVES)}")
    return float(out) if np.ndim(out) == 0 else out


@lru_cache(maxsize=4096)
def _affine(collective: str, placement: GroupPlacement, system: SystemConfig
            ) -> tuple[float, float]:
    """``(A, B)`` of :func:`placed_collective_time_s`: two evaluations of
    :func:`group_collective_time_s`, at a vanishing size and at 10^15 bytes."""
    b = float(group_collective_time_s(collective, 1e-30, placement, system))
    big = 1e15
    return (float(group_collective_time_s(collective, big, placement, system)) - b) / big, b


def placed_collective_time_s(collective: str, nbytes: ArrayLike, placement: GroupPlacement,
                             system: SystemConfig) -> Any:
    """:func:`group_collective_time_s` through its affine form, for the search's hot paths.

    Every level of a placed collective costs ``c·bytes + α`` (nothing for no bytes), so
    the whole is ``A·bytes + B`` for ``bytes > 0``: ``B`` and ``A`` are taken once per
    (collective, placement, system) from two evaluations (at a vanishing size and at
    10^15 bytes) and kept (:func:`_affine`, a bounded cache). Equal to
    :func:`group_collective_time_s` to rounding for ``bytes > 0`` (tests); no bytes cost
    nothing (where :func:`group_collective_time_s`
    still charges a hierarchical all-to-all's two latencies).
    """
    hit = _affine(collective, placement, system)
    s = np.asarray(nbytes, dtype=np.float64)
    if np.any(s < 0):
        raise ConfigError("nbytes must be >= 0")
    if s.ndim == 0:
        return hit[0] * float(s) + hit[1] if s > 0 else 0.0
    return np.where(s > 0, hit[0] * s + hit[1], 0.0)


def expected_token_nodes(experts: int, k: int, nodes: int, groups: int = 0,
                         groups_per_token: int = 0) -> float:
    """Expected number of distinct nodes one token's ``k`` routed experts sit on, the
    ``experts`` spread evenly over ``nodes`` and routing uniform over the experts.

    Without expert groups: ``N·(1 − C(E − E/N, k)/C(E, k))`` (a node is missed when none
    of the ``k`` experts is among its ``E/N``). With group-limited routing (DeepSeek-V3:
    ``groups_per_token`` = M of ``groups`` = G groups, report §2.1.2) and groups aligned to
    nodes (G a multiple of N): ``N·(1 − C(G − G/N, M)/C(G, M))``, taking every chosen
    group to hold at least one of the token's experts (k ≥ M); with nodes a multiple of
    G, uniform routing inside the M·E/G experts of the chosen groups on their M·N/G nodes.

    >>> round(expected_token_nodes(256, 8, 8), 3)     # DeepSeek-V3 experts, no node limit
    5.295
    >>> expected_token_nodes(256, 8, 8, groups=8, groups_per_token=4)
    4.0
    """
    if nodes <= 1:
        return 1.0
    comb = math.comb
    if groups and groups_per_token and k >= groups_per_token:
        g, m = groups, groups_per_token
        if g % nodes == 0:
            return nodes * (1.0 - comb(g - g // nodes, m) / comb(g, m))
        if nodes % g == 0:
            pool, n_pool = m * experts // g, m * nodes // g
            return n_pool * (1.0 - comb(pool - experts // nodes, k) / comb(pool, k))
    e_node = experts // nodes
    if e_node < 1:
        return float(min(k, nodes))
    return nodes * (1.0 - comb(experts - e_node, k) / comb(experts, k))


def deepep_all_to_all_time_s(nbytes: ArrayLike, placement: GroupPlacement,
                             system: SystemConfig, *, k: int, token_nodes: float) -> Any:
    """Seconds for a mixture-of-experts dispatch (or combine) by DeepEP's normal kernels
    (deepseek-ai/DeepEP; DeepSeek-V3 report §3.2.2): each token crosses the NICs once per
    *remote node* holding one of its experts, then NVLink forwards it to the expert ranks
    of that node; the two legs are pipelined, so the slower sets the time.

    ``nbytes``: one rank's all-to-all send buffer, one copy per routed expert (``k`` per
    token), as the NCCL all-to-all sends it. NIC leg: ``nbytes/k`` per token times the
    expected remote nodes ``token_nodes·(N−1)/N``; NVLink leg: every copy bound for
    another rank, ``nbytes·(n−1)/n``. Inside one node it is the NCCL all-to-all.

    >>> from dse.types import SystemConfig
    >>> sysc = SystemConfig(devices_per_node=8, intra_node_bw_bytes_per_s=400e9,
    ...                     intra_node_latency_s=0, inter_node_bw_bytes_per_s=50e9,
    ...                     inter_node_latency_s=0)
    >>> p = GroupPlacement(group="ep", size=64, per_node=8, nodes=8)
    >>> deepep_all_to_all_time_s(8e6, p, sysc, k=8, token_nodes=4.0) * 1e6  # 1e6 B x 3.5
    70.0
    """
    nn, n = placement.nodes, placement.size
    s = np.asarray(nbytes, dtype=np.float64)
    if nn <= 1:
        return group_collective_time_s("all_to_all", s, placement, system)
    remote = token_nodes * (nn - 1) / nn
    nic = s / max(k, 1) * remote / system.inter_node_bw_bytes_per_s \
        + system.inter_node_latency_s
    nvl = s * (n - 1) / n / system.intra_node_bw_bytes_per_s + system.intra_node_latency_s
    out = np.maximum(nic, nvl)
    return float(out) if np.ndim(out) == 0 else out


def p2p_time_s(nbytes: ArrayLike, plan: ParallelPlan, system: SystemConfig) -> Any:
    """Seconds to send ``nbytes`` between adjacent pipeline stages.

    Adjacent stages are ``tp·cp·dp`` ranks apart; the slowest boundary sets the pace, so
    the transfer uses the inter-node NICs as soon as any boundary crosses a node.
    """
    if plan.pp <= 1:
        return 0.0 if np.ndim(nbytes) == 0 else np.zeros(np.shape(nbytes))
    stride = plan.tp * getattr(plan, "cp", 1) * plan.dp
    g = system.devices_per_node
    crosses = any((i * stride) // g != ((i + 1) * stride) // g for i in range(plan.pp - 1))
    bw = system.inter_node_bw_bytes_per_s if crosses else system.intra_node_bw_bytes_per_s
    lat = system.inter_node_latency_s if crosses else system.intra_node_latency_s
    return collective_time_s("p2p", nbytes, 2, bw, lat, "switch")


# --------------------------------------------------------------------------- graphs
def comm_time_s(graph: Graph, system: SystemConfig, plan: ParallelPlan) -> np.ndarray:
    """Per-operator communication time (s) of a stage graph: one entry per operator of
    ``graph.ops`` (0 for non-communication operators), per execution of the operator.

    Collective ops use their ``collective``, ``group`` and ``comm_bytes`` (NCCL buffer
    convention) on the placement of their group under ``plan``; ``sendrecv`` ops are
    pipeline p2p transfers. With ``plan.dispatcher == "deepep"`` a MoE layer's
    all-to-all across nodes is :func:`deepep_all_to_all_time_s` with the token fan-out of
    the graph's routing (``meta``: experts, experts_per_token, expert groups).
    """
    cols = graph.columns
    kinds = cols["kind"]
    out = np.zeros(len(graph.ops), dtype=np.float64)
    is_comm = (kinds == "collective") | (kinds == "sendrecv")
    if not np.any(is_comm):
        return out
    placements: dict[str, GroupPlacement] = {}
    for i in np.flatnonzero(is_comm):
        op = graph.ops[int(i)]
        if op.kind == "sendrecv" or op.collective == "p2p":
            out[i] = p2p_time_s(op.comm_bytes, plan, system)
            continue
        if op.group not in placements:
            placements[op.group] = group_placement(op.group, plan, system)
        pl = placements[op.group]
        if op.group == "tp" and pl.size != plan.tp:
            raise WorkloadError(f"operator {op.name!r} is a tp collective but the plan has "
                                f"tp={plan.tp}")
        if (op.group == "ep" and op.collective == "all_to_all" and pl.nodes > 1
                and getattr(plan, "dispatcher", "alltoall") == "deepep"):
            m = graph.meta
            k = int(m.get("experts_per_token") or 1)
            nodes = expected_token_nodes(int(m.get("experts") or pl.size), k, pl.nodes,
                                         int(m.get("expert_groups") or 0),
                                         int(m.get("expert_groups_per_token") or 0))
            out[i] = deepep_all_to_all_time_s(op.comm_bytes, pl, system, k=k,
                                              token_nodes=nodes)
            continue
        out[i] = placed_collective_time_s(op.collective, op.comm_bytes, pl, system)
    return out
