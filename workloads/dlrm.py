"""DLRM (Naumov et al. 2019; facebookresearch/dlrm ``dlrm_s_pytorch.py``) as a training graph.

Forward, for a batch of ``B`` samples:

* bottom MLP over the 13 dense features (ReLU after every layer, ``sigmoid_bot = -1``);
* one embedding gather per table (``EmbeddingBag`` sum of ``lookups_per_table`` rows);
* dot interaction: ``T`` = the bottom-MLP output and the 26 embeddings stacked
  (``B × 27 × dim``), ``Z = T·Tᵀ`` as a batched GEMM (``batch=B, m=27, k=dim, n=27``), the
  strictly lower triangle (351 values) concatenated with the bottom-MLP output
  (``arch_interaction_itself = False``: 128 + 351 = 479 for MLPerf);
* top MLP with ReLU, the last layer's sigmoid fused with the binary cross-entropy loss.

Backward: the embedding gradient is a sparse scatter-add of the looked-up rows (bytes ∝
``B × lookups``, not the table), and the optimizer updates only the rows looked up
(``min(lookups, rows)`` rows per table), as the reference's sparse SGD does. The
interaction's two backward GEMMs (``dZ·T`` and ``dZᵀ·T``) both feed ``dT``.

**Sharded over ``n`` devices** in nodes of ``node`` (``shards = n``; the hybrid parallelism
of TorchRec's ``DistributedModelParallel`` and of the MLPerf submissions): the MLPs are
data parallel (each device runs its ``B`` local samples), the embedding tables are
sharded table by table by a cost-based planner (:func:`plan_tables`, in the manner of
TorchRec's): tiny tables are replicated (data parallel: no exchange, their gradients
all-reduced with the MLPs'), the others table-wise, column-wise (shards of at least
``MIN_COLUMN_SHARD`` columns on distinct devices: TorchRec's 128 keeps MLPerf's tables
whole), table-row-wise (rows over one node's devices) or row-wise (rows over every
device), whichever keeps the busiest device's exchange lowest. A device looks up,
for all ``n·B`` samples of the step, the tables and columns it owns (and its rows of the
row-sharded tables); the sparse indices reach it by an all-to-all, the pooled embeddings
go back to the samples' devices by an all-to-all (table- and column-wise), by a
reduce-scatter of the partial sums inside the node and an all-to-all across the nodes
among the devices of the same local rank (table-row-wise: groups ``dp_intra`` and
``dp_inter``), or by a reduce-scatter over every device (row-wise); their gradients
return the same way backward. The graph is the device whose exchange the planner loads
most; ``meta["fullest_local_params"]`` is the most embedding parameters any device holds
(the memory model's device).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

from dse.types import Graph
from workloads.builder import ForwardBuilder
from workloads.spec import DLRMSpec
from workloads.training import expand, summarize


def _mlp(bld: ForwardBuilder, name: str, x: str | None, widths: tuple[int, ...], batch: int,
         *, last_relu: bool) -> str:
    db = bld.dtype_bytes
    y = x
    layers = list(pairwise(widths))
    for i, (k, n) in enumerate(layers):
        y = bld.gemm(f"{name}.fc{i + 1}", y, m=batch, k=k, n=n, bias=True,
                     save_a=y or f"{name}:dense_input")
        if i < len(layers) - 1 or last_relu:
            y = bld.vector(f"{name}.relu{i + 1}", [y], key="relu", elements=batch * n,
                           saves=[(f"{name}.relu{i + 1}", batch * n * db)])
    assert y is not None
    return y


PLAN_LINK_RATIO = 12.0
"""Intra- to inter-node bandwidth the table planner assumes: 300 GB/s of NVLink against
a 25 GB/s NIC per device (a DGX A100, :class:`dse.types.SystemConfig`'s defaults), as
TorchRec's planner assumes a topology. Only the choice of sharding uses it; the step is
priced by the network model on the real system."""

MIN_COLUMN_SHARD = 128
"""Narrowest column-wise shard (columns): TorchRec's default (``MIN_CW_DIM = 128`` in
``torchrec/distributed/planner/constants.py``, used when the user sets no
``ParameterConstraints.min_partition``), so MLPerf's 128-column tables stay whole.
``benchmarks/bench_distributed.py`` part (e') shows 32-column units (``min_columns``)."""

GRAD_BYTES = 2
"""Bytes per gradient element a data-parallel table all-reduces (16-bit, as the model's
data-parallel reduction, ``cost_models.training.GRAD_BYTES``)."""

KIND_NAMES = {"dp": "data-parallel", "tw": "table-wise", "cw": "column-wise",
              "twrw": "table-row-wise", "rw": "row-wise"}
"""Shardings of a table: data parallel (replicated, gradients all-reduced), table-wise,
column-wise, table-row-wise (rows over one node's devices) and row-wise (rows over all),
with the names the text output gives them."""

KINDS = tuple(KIND_NAMES)


@dataclass(frozen=True)
class TableShard:
    """A table's share on one device: ``rows × dim`` of table ``table`` under ``kind``."""

    table: int
    kind: str
    rows: int
    dim: int


@dataclass(frozen=True)
class TablePlan:
    """Where the tables sit (:func:`plan_tables`): ``kinds[i]`` is table ``i``'s sharding,
    ``devices[k]`` the shards device ``k`` holds, ``load[k]`` its planner cost (bytes
    through its NIC, intra-node bytes weighted ``1/PLAN_LINK_RATIO``, forward + backward)."""

    kinds: tuple[str, ...]
    devices: tuple[tuple[TableShard, ...], ...]
    load: tuple[float, ...]

    @property
    def busiest(self) -> int:
        """The device with the highest load (the lowest index among equals)."""
        return max(range(len(self.load)), key=lambda k: (self.load[k], -k))

    def local_params(self, k: int) -> int:
        """Embedding parameters device ``k`` alone holds (its shards; not the replicas)."""
        return sum(sh.rows * sh.dim for sh in self.devices[k] if sh.kind != "dp")


def node_split(n: int, node: int) -> tuple[int, int]:
    """``(devices per node, nodes)`` of ``n`` devices in nodes of ``node``: one device per
    node when the devices do not fill whole nodes (as the network model places them).

    >>> node_split(64, 8), node_split(4, 8), node_split(12, 8)
    ((8, 8), (4, 1), (1, 12))
    """
    g = min(node, n)
    nodes = n // g if n % g == 0 else n
    return n // nodes, nodes


def _exchange_costs(rows: int, d: int, n: int, g: int, nodes: int, big_b: int, db: int
                    ) -> dict[str, float]:
    """Planner cost of one table per device holding a share, by sharding (a column-wise
    shard of ``c`` columns costs ``tw·c/d``; :func:`plan_tables`)."""
    out = big_b * d * db  # the table's pooled outputs for the step's samples
    # fwd pooled all-to-all + bwd gradient all-to-all, uniform over the samples' devices
    tw = 2.0 * out * ((n - g) / n + (g - 1) / n / PLAN_LINK_RATIO)
    # hierarchical reduce-scatter / all-gather (or all-reduce): inside the node over
    # NVLink, then 1/g of it across the nodes
    hier = (g - 1) / g / PLAN_LINK_RATIO + (nodes - 1) / nodes / g
    # rows: the partial sums reduce-scattered (fwd) and all-gathered (bwd); data
    # parallel: a replica's gradient all-reduced
    rows_wise = 2.0 * out * hier
    return {"dp": 2.0 * (rows * d * GRAD_BYTES) * hier, "tw": tw, "twrw": rows_wise,
            "rw": rows_wise}


@lru_cache(maxsize=64)
def plan_tables(tables: tuple[int, ...], dim: int, n: int, *, node: int = 8,
                batch: int = 1, dtype_bytes: int = 2, kinds: tuple[str, ...] = KINDS,
                min_columns: int = MIN_COLUMN_SHARD) -> TablePlan:
    """Shard ``tables`` (rows each, ``dim`` columns) over ``n`` devices in nodes of
    ``node``, each device with ``batch`` samples of the step: a greedy planner in the
    manner of TorchRec's (``EmbeddingShardingPlanner``: options per table priced by their
    communication, placed largest first on the least-loaded devices).

    Per table it weighs data parallel (every device a replica: no exchange, the
    gradient all-reduced; tiny tables), table-wise (one device looks the table up for all
    ``n·batch`` samples and sends their pooled rows), column-wise in
    shards of at least ``min_columns`` columns on distinct devices (the same bytes over
    several ports), table-row-wise (rows over one node's devices: the partial sums reduce-scattered
    over NVLink, 1/``node`` of them across the nodes) and row-wise (rows over every
    device: every device pays a hierarchical reduce-scatter). A device's load is its
    bytes through its NIC plus its intra-node bytes weighted ``1/PLAN_LINK_RATIO``. Each
    table, largest first, takes the option that minimizes the lower bound of the final
    busiest load (``max(busiest after, (total after + the rest at their cheapest)/n)``),
    ties to the smaller total; no device may hold more embedding rows·columns than its
    fair share plus a node's share of the largest table (a memory balance, the bound of
    a largest-first greedy packing; the planner does not know the HBM), which row-wise
    always meets. ``kinds`` limits the options (row-wise, always feasible, stays), for
    ablations.

    >>> from workloads.zoo import model_spec
    >>> s = model_spec("dlrm")
    >>> p = plan_tables(s.tables, s.dim, 64, node=8, batch=1120)
    >>> sorted({k: p.kinds.count(k) for k in set(p.kinds)}.items())
    [('dp', 10), ('twrw', 16)]
    """
    t = len(tables)
    if n <= 1:
        return TablePlan(kinds=("tw",) * t,
                         devices=(tuple(TableShard(i, "tw", r, dim) for i, r in enumerate(tables)),),
                         load=(0.0,))
    big_b = n * batch
    g, nodes = node_split(n, node)
    unit = max(min(int(min_columns), dim), 1)
    costs = [_exchange_costs(r, dim, n, g, nodes, big_b, dtype_bytes) for r in tables]
    cols = [c for c in (2 ** j for j in range(1, 32)) if dim // c >= unit
            and dim % c == 0 and c <= n]
    cap = sum(tables) * dim / n + max(tables) * dim / g
    load = [0.0] * n
    held = [0.0] * n
    shards: list[list[TableShard]] = [[] for _ in range(n)]
    chosen = [""] * t
    allowed = set(kinds) | {"rw"}

    def options(i: int) -> list[tuple[str, int, list[int], float]]:
        """``(kind, columns per shard, devices, per-device cost)`` of table ``i``."""
        r, c = tables[i], costs[i]
        order = sorted(range(n), key=lambda k: (load[k], held[k], k))
        out = [("dp", dim, list(range(n)), c["dp"]), ("rw", dim, list(range(n)), c["rw"])]
        room = [k for k in order if held[k] + r * dim <= cap]
        if room:
            out.append(("tw", dim, room[:1], c["tw"]))
        for k in cols:
            fit = [j for j in order if held[j] + r * dim / k <= cap]
            if len(fit) >= k:
                out.append(("cw", dim // k, fit[:k], c["tw"] / k))
        if nodes > 1 and g > 1:
            best = min(range(nodes), key=lambda m: (max(load[m * g:(m + 1) * g]), m))
            mine = list(range(best * g, (best + 1) * g))
            if all(held[j] + r * dim / g <= cap for j in mine):
                out.append(("twrw", dim, mine, c["twrw"]))
        return [o for o in out if o[0] in allowed]

    # a table's least total cost (column-wise shards total the table-wise bytes)
    holders = {"dp": n, "tw": 1, "twrw": g, "rw": n}
    cheapest = [min(v * holders[k] for k, v in c.items()
                    if k in allowed or (k == "tw" and "cw" in allowed)) for c in costs]
    order = sorted(range(t), key=lambda i: (-tables[i], i))
    rest = sum(cheapest)
    total = 0.0
    for i in order:
        rest -= cheapest[i]
        busiest = max(load)
        best: tuple[Any, ...] | None = None
        for kind, cols_each, devs, cost in options(i):
            after = max(busiest, max(load[k] + cost for k in devs))
            tot = total + cost * len(devs)
            key = (max(after, (tot + rest) / n), tot, KINDS.index(kind))
            if best is None or key < best[0]:
                best = (key, kind, cols_each, devs, cost)
        assert best is not None
        _, kind, cols_each, devs, cost = best
        chosen[i] = kind
        total += cost * len(devs)
        r = tables[i]
        held_rows = {"dp": r, "tw": r, "cw": r, "twrw": -(-r // g), "rw": -(-r // n)}[kind]
        for k in devs:
            load[k] += cost
            held[k] += held_rows * cols_each if kind != "dp" else 0.0
            shards[k].append(TableShard(i, kind, held_rows, cols_each))
    return TablePlan(kinds=tuple(chosen), devices=tuple(tuple(s) for s in shards),
                     load=tuple(load))


def shard_tables(spec: DLRMSpec, n: int, *, node: int = 8, batch: int = 1,
                 kinds: tuple[str, ...] = KINDS,
                 min_columns: int = MIN_COLUMN_SHARD) -> TablePlan:
    """:func:`plan_tables` of a DLRM's tables over ``n`` devices."""
    return plan_tables(tuple(spec.tables), spec.dim, n, node=node, batch=batch, kinds=kinds,
                       min_columns=min_columns)


def build_dlrm(spec: DLRMSpec, *, batch: int, optimizer: str = "adam",
               shards: int = 1, node: int = 8) -> Graph:
    """The training graph of ``batch`` samples (one device's ``batch`` local samples of a
    model sharded over ``shards`` devices, module docstring).

    >>> from workloads.zoo import model_spec
    >>> g = build_dlrm(model_spec("dlrm"), batch=2048, optimizer="sgd")
    >>> g.meta["embedding_rows"], g.meta["mlp_params"]
    (187767399, 2368897)
    """
    bld = ForwardBuilder(spec.name)
    db = bld.dtype_bytes
    b, d = batch, spec.dim
    n = max(int(shards), 1)
    lk = spec.lookups_per_table
    bot = _mlp(bld, "bottom", None, spec.bottom_mlp, b, last_relu=True)
    if n == 1:
        embs = [bld.embedding(f"emb{i}", rows=b, dim=d, table_rows=rows,
                              sparse_optimizer=True, lookups_per_row=lk)
                for i, rows in enumerate(spec.tables)]
        local_params = replicated = 0
        tp_: TablePlan | None = None
    else:
        tp_ = shard_tables(spec, n, node=node, batch=b)
        mine = tp_.devices[tp_.busiest]  # the device the exchange loads most
        g, _ = node_split(n, node)
        big_b = b * n  # the step's samples, all looked up in this device's shards
        sent = [i for i, k in enumerate(tp_.kinds) if k != "dp"]
        # the sparse features of the sharded tables reach the devices that hold their
        # shards (int64 indices)
        idx = bld.collective("emb.input_dist", "bottom.fc1", collective="all_to_all",
                             comm_bytes=float(b * len(sent) * lk * 8),
                             elements=b * len(sent) * lk, group="dp") if sent else None
        pooled, width, embs = [], 0, []
        for sh in mine:
            name = f"emb{sh.table}"
            if sh.kind == "dp":  # a replica: this device's own samples, no exchange
                embs.append(bld.embedding(name, rows=b, dim=d, table_rows=sh.rows,
                                          lookups_per_row=lk))
            elif sh.kind in ("tw", "cw"):
                pooled.append(bld.embedding(name if sh.dim == d else f"{name}.cols{sh.dim}",
                                            rows=big_b, dim=sh.dim, table_rows=sh.rows,
                                            sparse_optimizer=True, lookups_per_row=lk))
                width += sh.dim
            else:  # rows over a node (twrw) or over every device (rw): partial sums
                over = g if sh.kind == "twrw" else n
                part = bld.embedding(name, rows=big_b, dim=d, table_rows=sh.rows,
                                     sparse_optimizer=True, lookups_per_row=lk,
                                     read_rows=-(-big_b * lk // over))
                if sh.kind == "rw":
                    embs.append(bld.collective(f"{name}.reduce_scatter", part,
                                               collective="reduce_scatter",
                                               comm_bytes=float(big_b * d * db), elements=b * d,
                                               bwd_collective="all_gather", group="dp"))
                    continue
                # inside the node the partial sums of all samples are reduce-scattered so
                # that each device holds its node's sums for 1/g of the samples, then an
                # all-to-all among the devices of the same local rank delivers them
                rs = bld.collective(f"{name}.reduce_scatter", part,
                                    collective="reduce_scatter",
                                    comm_bytes=float(big_b * d * db),
                                    elements=big_b * d // g, bwd_collective="all_gather",
                                    group="dp_intra")
                embs.append(bld.collective(f"{name}.output_dist", rs, collective="all_to_all",
                                           comm_bytes=float(big_b * d * db / g),
                                           elements=b * d, bwd_collective="all_to_all",
                                           group="dp_inter"))
        if pooled:
            tw = bld.virtual("emb.tw_pooled", [x for x in (idx, *pooled) if x],
                             elements=big_b * width)
            embs.append(bld.collective("emb.output_dist", tw, collective="all_to_all",
                                       comm_bytes=float(big_b * width * db),
                                       elements=b * width, bwd_collective="all_to_all",
                                       group="dp"))
        local_params = tp_.local_params(tp_.busiest)
        replicated = sum(sh.rows * sh.dim for sh in mine if sh.kind == "dp")
    t = len(spec.tables) + 1
    stacked = bld.virtual("interact.stack", [bot, *embs], elements=b * t * d)
    z = bld.gemm("interact.dot", stacked, y=stacked, m=t, k=d, n=t, batch=b,
                 save_a="interact.stack", save_b="interact.stack")
    tri = bld.virtual("interact.tril", [z], elements=b * t * (t - 1) // 2)
    top_in = bld.virtual("interact.concat", [bot, tri], elements=b * spec.interaction_dim)
    logit = _mlp(bld, "top", top_in, (spec.interaction_dim, *spec.top_mlp), b,
                 last_relu=False)
    bld.loss("loss", logit, key="bce", elements=b, rows=b, saves=[("loss:p", b * db)])
    graph = expand(bld, optimizer=optimizer, name=spec.name)
    stats = summarize(graph, batch)
    meta: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "params": spec.params, "seq_len": None,
        "batch": batch, "optimizer": optimizer, "tables": len(spec.tables),
        "embedding_rows": spec.embedding_rows, "dim": d, "mlp_params": spec.mlp_params,
        "interaction_dim": spec.interaction_dim, "embedding_shards": n,
        "model_parallel_params": float(local_params),
        "replicated_embedding_params": float(replicated),
        "fullest_local_params": float(max(tp_.local_params(k) for k in range(n))
                                      if tp_ is not None else local_params),
        "table_sharding": tp_.kinds if tp_ is not None else ("tw",) * len(spec.tables),
        "devices_per_node": int(node), **stats,
    }
    return graph.with_ops(graph.ops, **meta)
