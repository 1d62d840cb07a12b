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


def build_dlrm(spec: DLRMSpec, *, batch: int, optimizer: str = "adam") -> Graph:
    """The training graph of ``batch`` samples.

    >>> from workloads.zoo import model_spec
    >>> g = build_dlrm(model_spec("dlrm"), batch=2048, optimizer="sgd")
    >>> g.meta["embedding_rows"], g.meta["mlp_params"]
    (187767399, 2368897)
    """
    bld = ForwardBuilder(spec.name)
    db = bld.dtype_bytes
    b, d = batch, spec.dim
    bot = _mlp(bld, "bottom", None, spec.bottom_mlp, b, last_relu=True)
    embs = [bld.embedding(f"emb{i}", rows=b, dim=d, table_rows=rows, sparse_optimizer=True,
                          lookups_per_row=spec.lookups_per_table)
            for i, rows in enumerate(spec.tables)]
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
        "interaction_dim": spec.interaction_dim, **stats,
    }
    return graph.with_ops(graph.ops, **meta)
