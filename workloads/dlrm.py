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

**Sharded over ``n`` devices** (``shards = n``; the hybrid parallelism of TorchRec's
``DistributedModelParallel`` and of the MLPerf submissions): the MLPs are data parallel
(each device runs its ``B`` local samples), the embedding tables are model parallel
(:func:`shard_tables`): a table larger than a device's fair share of all tables
(``Σ rows·dim / n``) is split **row-wise** over every device, the others are placed
**table-wise**, largest first, each on the device holding the fewest parameters (a greedy
size rule; TorchRec's planner chooses by estimated cost, which this rule does not
reproduce). A device looks up, for all ``n·B`` samples of the step, the tables it owns
(and its rows of the row-wise tables); the sparse indices reach it by an all-to-all, the
pooled embeddings go back to the samples' devices by an all-to-all (table-wise) or a
reduce-scatter of the partial sums (row-wise), and their gradients return the same way
backward (all-to-all, all-gather). The graph is the device with the most embedding
parameters.
"""

from __future__ import annotations

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


def shard_tables(spec: DLRMSpec, n: int) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """``(row_wise, table_wise)``: the tables split row-wise over all ``n`` devices, and
    the tables each device holds whole (module docstring).

    >>> from workloads.zoo import model_spec
    >>> rw, tw = shard_tables(model_spec("dlrm"), 8)
    >>> rw, [len(t) for t in tw]
    ((0, 9, 19, 20, 21), [1, 1, 1, 1, 5, 3, 6, 3])
    """
    if n <= 1:
        return (), (tuple(range(len(spec.tables))),)
    fair = sum(spec.tables) / n
    row_wise = tuple(i for i, r in enumerate(spec.tables) if r > fair)
    load = [0] * n
    held: list[list[int]] = [[] for _ in range(n)]
    rest = sorted((i for i in range(len(spec.tables)) if i not in row_wise),
                  key=lambda i: (-spec.tables[i], i))
    for i in rest:
        k = min(range(n), key=lambda j: (load[j], j))
        held[k].append(i)
        load[k] += spec.tables[i]
    return row_wise, tuple(tuple(sorted(h)) for h in held)


def build_dlrm(spec: DLRMSpec, *, batch: int, optimizer: str = "adam",
               shards: int = 1) -> Graph:
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
        local_params = 0
    else:
        row_wise, held = shard_tables(spec, n)
        # the device with the most embedding rows (the lowest index among equals)
        mine = held[max(range(n), key=lambda k: (sum(spec.tables[i] for i in held[k]), -k))]
        big_b = b * n  # the step's samples, all looked up in this device's tables
        # the sparse features reach the devices that hold their tables (int64 indices)
        idx = bld.collective("emb.input_dist", "bottom.fc1", collective="all_to_all",
                             comm_bytes=float(b * len(spec.tables) * lk * 8),
                             elements=b * len(spec.tables) * lk, group="dp")
        pooled = []
        for i in mine:
            pooled.append(bld.embedding(f"emb{i}", rows=big_b, dim=d,
                                        table_rows=spec.tables[i], sparse_optimizer=True,
                                        lookups_per_row=lk))
        embs = []
        if pooled:
            tw = bld.virtual("emb.tw_pooled", [idx, *pooled], elements=big_b * d * len(mine))
            embs.append(bld.collective("emb.output_dist", tw, collective="all_to_all",
                                       comm_bytes=float(big_b * d * len(mine) * db),
                                       elements=b * d * len(mine), bwd_collective="all_to_all",
                                       group="dp"))
        for i in row_wise:
            part = bld.embedding(f"emb{i}", rows=big_b, dim=d,
                                 table_rows=-(-spec.tables[i] // n), sparse_optimizer=True,
                                 lookups_per_row=lk, read_rows=-(-big_b * lk // n))
            embs.append(bld.collective(f"emb{i}.reduce_scatter", part,
                                       collective="reduce_scatter",
                                       comm_bytes=float(big_b * d * db), elements=b * d,
                                       bwd_collective="all_gather", group="dp"))
        local_params = sum(spec.tables[i] for i in mine) * d + sum(
            -(-spec.tables[i] // n) for i in row_wise) * d
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
        "model_parallel_params": float(local_params), **stats,
    }
    return graph.with_ops(graph.ops, **meta)
