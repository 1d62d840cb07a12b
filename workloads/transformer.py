"""Decoder and encoder transformers (GPT-2/J/NeoX, Llama, OPT, BERT) as training graphs.

One block is built once and stored with ``count = layers`` (``block="layer"``). Tensor
parallelism follows Megatron-LM (Shoeybi et al. 2019; Narayanan et al. 2021 §2.3):

* QKV and MLP-in are column-parallel (heads and ``ffn`` split over ``tp``), attention
  output and MLP-out are row-parallel. GQA: key/value heads are split when ``tp`` divides
  them, replicated (one per shard) when they divide ``tp``.
* ``f`` (identity forward, all-reduce backward) before each column-parallel GEMM and ``g``
  (all-reduce forward, identity backward) after each row-parallel one: two all-reduces of
  ``b·s·h`` per layer forward and two backward. A parallel block sums attention and MLP
  outputs before one all-reduce (mesh-transformer-jax's GPT-J; gpt-neox's
  ``gpt_j_residual`` defers the row-parallel reductions the same way); with one shared
  LayerNorm (GPT-J) a single ``f`` serves both branches.
* With sequence parallelism (Korthikanti et al. 2022) LayerNorm, dropout and residual ops
  work on ``s/tp`` tokens; each ``g`` becomes a reduce-scatter and each ``f`` an
  all-gather (and vice versa in backward), and the column-parallel GEMM's saved input is
  the sequence shard, re-gathered before its weight gradient (Megatron-LM's
  ``LinearWithGradAccumulationAndAsyncCommunication``).
* Vocab-parallel embedding (all-reduce or reduce-scatter of its output) and LM head
  (vocabulary split; the cross-entropy all-reduces 3 fp32 values per token: max logit,
  target logit, sum of exponentials). ``comm_bytes`` is the full, unsharded tensor size
  (the NCCL-tests size convention: all-reduce ``2(n−1)/n·S``, reduce-scatter and
  all-gather ``(n−1)/n·S`` bytes on the wire).

Attention: by default (``spec.attention == "fused"``) one fused attention operator per
layer (FlashAttention 2/3, cuDNN, XLA; :meth:`workloads.builder.ForwardBuilder.attention`):
the scores never reach HBM, a causal mask skips the blocks above the diagonal
(``s(s+1)/2`` score elements per head), and the backward recomputes the scores. With
``attention: unfused`` (Megatron-LM 2021–2022, the validation rows of that era) ``QKᵀ``
and ``A·V`` are batched GEMMs over ``batch·heads`` with the full ``s × s`` score matrix,
causal or not (PaLM's 6N + 12·L·H·Q·T counts the same), the softmax and its dropout work
on ``batch·heads·s·s`` elements in HBM, and the backward keeps the scores.
"""

from __future__ import annotations

from typing import Any

from dse.errors import WorkloadError
from dse.types import Graph
from workloads.builder import ForwardBuilder
from workloads.spec import TransformerSpec, ceil_div
from workloads.training import expand, summarize


def _shard(spec: TransformerSpec, tp: int) -> tuple[int, int, int, int]:
    """(query heads, kv heads, ffn, vocab) held by one tensor-parallel shard."""
    o = spec.owner
    valid = [d for d in range(1, spec.heads + 1) if spec.heads % d == 0
             and spec.ffn % d == 0 and (spec.kv_heads % d == 0 or d % spec.kv_heads == 0)]
    if spec.heads % tp:
        raise WorkloadError(f"{o}: tp={tp} does not divide heads={spec.heads}; valid tp: "
                            f"{', '.join(map(str, valid))}")
    if spec.ffn % tp:
        raise WorkloadError(f"{o}: tp={tp} does not divide ffn={spec.ffn}; valid tp: "
                            f"{', '.join(map(str, valid))}")
    if spec.kv_heads % tp == 0:
        kv = spec.kv_heads // tp
    elif tp % spec.kv_heads == 0:
        kv = 1  # each shard keeps one (replicated) key/value head
    else:
        raise WorkloadError(f"{o}: tp={tp} neither divides nor is a multiple of "
                            f"kv_heads={spec.kv_heads}; valid tp: {', '.join(map(str, valid))}")
    return spec.heads // tp, kv, spec.ffn // tp, ceil_div(spec.vocab, tp)


def build_transformer(spec: TransformerSpec, *, batch: int, seq: int, optimizer: str = "adam",
                      tp: int = 1, sequence_parallel: bool = False,
                      layers: tuple[int, int] | None = None, first_stage: bool = True,
                      last_stage: bool = True, cp: int = 1) -> Graph:
    """The training graph of one tensor-parallel shard of layers ``layers[0]..layers[1]-1``
    (of one context-parallel rank: ``seq/cp`` tokens of each sample, with ``cp > 1``).

    >>> from workloads.spec import TransformerSpec
    >>> s = TransformerSpec(name="tiny", model_type="gpt2", layers=4, hidden=64, heads=4,
    ...                     ffn=256, vocab=1000, max_positions=128, source="test")
    >>> g = build_transformer(s, batch=2, seq=128)
    >>> g.meta["params"] == s.params == sum(op.params * op.count for op in g.ops
    ...                                     if op.phase == "fwd")
    True
    """
    o = spec.owner
    if not isinstance(tp, int) or tp < 1:
        raise WorkloadError(f"{o}: tp={tp!r} must be an integer >= 1")
    if seq > spec.max_positions and spec.position == "learned":
        raise WorkloadError(f"{o}: seq={seq} exceeds max_positions={spec.max_positions} "
                            "(learned position embeddings)")
    a0, a1 = (0, spec.layers) if layers is None else (int(layers[0]), int(layers[1]))
    if not (0 <= a0 < a1 <= spec.layers):
        raise WorkloadError(f"{o}: layers=({a0}, {a1}) must satisfy 0 <= first < last <= "
                            f"{spec.layers}")
    sp = bool(sequence_parallel) and tp > 1
    if not isinstance(cp, int) or cp < 1:
        raise WorkloadError(f"{o}: cp={cp!r} must be an integer >= 1")
    if cp > 1 and spec.attention != "fused":
        raise WorkloadError(f"{o}: context parallelism (cp={cp}) needs fused attention "
                            "(ring attention is a FlashAttention kernel); use attention: fused")
    seq_model = seq
    # pad the sequence so that every rank holds the same tokens: a multiple of tp for
    # sequence parallelism, of 2·cp for context parallelism (two chunks per rank, the
    # load-balanced causal split); the pad tokens (masked) run through every operator
    unit = (tp if sp else 1) * (2 * cp if cp > 1 else 1)
    if seq % unit:
        seq = ceil_div(seq, unit) * unit
    hq, hkv, ffn, vocab = _shard(spec, tp)
    b, s, h, d, e = batch, seq, spec.hidden, spec.head_dim, spec.embed_dim
    s_loc = s // cp  # tokens of each sample on this context-parallel rank
    tok = b * s_loc
    tok_sp = tok // tp if sp else tok  # tokens held by LayerNorm/dropout/residual ops
    db = 2
    full_bytes = float(tok * h * db)  # one b·s·h activation, the Megatron collective size
    bld = ForwardBuilder(spec.name, dtype_bytes=db)
    nrm = spec.norm
    norm_p = (("weight", h), ("bias", h)) if spec.norm == "layernorm" and spec.norm_bias \
        else (("weight", h),)

    def norm(name: str, x: str) -> str:
        return bld.vector(name, [x], key=nrm, kind="norm", elements=tok_sp * h, params=norm_p,
                          saves=[(x, tok_sp * h * db)])

    def to_tp(name: str, x: str) -> str:
        """Megatron's f (or SP all-gather) before a column-parallel GEMM."""
        if sp:
            return bld.collective(name + ".ag", x, collective="all_gather", comm_bytes=full_bytes,
                                  elements=tok * h, bwd_collective="reduce_scatter")
        if tp > 1:
            return bld.virtual(name + ".f", [x], elements=tok * h, bwd_collective="all_reduce",
                               comm_bytes=full_bytes)
        return x

    def from_tp(name: str, x: str) -> str:
        """Megatron's g (or SP reduce-scatter) after a row-parallel GEMM."""
        if sp:
            return bld.collective(name + ".rs", x, collective="reduce_scatter",
                                  comm_bytes=full_bytes, elements=tok_sp * h,
                                  bwd_collective="all_gather")
        if tp > 1:
            return bld.collective(name + ".ar", x, collective="all_reduce",
                                  comm_bytes=full_bytes, elements=tok * h)
        return x

    def column(name: str, x_tp: str, x_saved: str, *, n: int, bias: bool) -> str:
        return bld.gemm(name, x_tp, m=tok, k=h, n=n, bias=bias, save_a=x_saved,
                        save_a_bytes=float(tok_sp * h * db),
                        regather=("all_gather", full_bytes) if sp else None)

    def dropout(name: str, x: str, elements: int) -> str:
        return bld.dropout(name, x, elements=elements) if spec.dropout else x

    # ---------------------------------------------------------------- embedding
    if first_stage:
        word = bld.embedding("embed.word", rows=tok, dim=e, table_rows=vocab,
                             read_rows=ceil_div(tok, tp))
        x = word
        if spec.embed_proj:
            x = bld.gemm("embed.project_in", x, m=tok, k=e, n=h)
        if tp > 1:
            if sp:
                x = bld.collective("embed.rs", x, collective="reduce_scatter",
                                   comm_bytes=full_bytes, elements=tok_sp * h)
            else:
                x = bld.collective("embed.ar", x, collective="all_reduce",
                                   comm_bytes=full_bytes, elements=tok * h)
        if spec.position == "learned":
            pos = bld.embedding("embed.pos", rows=tok_sp, dim=h,
                                table_rows=spec.max_positions + spec.position_offset)
            x = bld.vector("embed.add_pos", [x, pos], key="add", elements=tok_sp * h)
        if spec.type_vocab:
            typ = bld.embedding("embed.type", rows=tok_sp, dim=h, table_rows=spec.type_vocab)
            x = bld.vector("embed.add_type", [x, typ], key="add", elements=tok_sp * h)
        if spec.embed_norm:
            x = norm("embed.norm", x)
        x = dropout("embed.dropout", x, tok_sp * h)
    else:
        x = bld.virtual("stage.input", [], elements=tok_sp * h, force_grad=True)

    # ---------------------------------------------------------------- blocks
    nq, nkv = hq * d, hkv * d
    ffn_out = 2 * ffn if spec.gated_mlp else ffn
    with bld.block("layer", count=a1 - a0, layer=a0):
        xin = bld.virtual("layer.input", [x], elements=tok_sp * h)

        def attention(inp_tp: str, inp_saved: str) -> str:
            qkv = column("layer.attn.qkv", inp_tp, inp_saved, n=nq + 2 * nkv,
                         bias=spec.qkv_bias)
            qk_src = qkv
            if spec.position == "rotary":
                rel = tok * (hq + hkv) * spec.rotary_dim
                qk_src = bld.vector("layer.attn.rotary", [qkv], key="rotary", elements=rel,
                                    in_elements=rel, partial=True)
            q = bld.virtual("layer.attn.q", [qk_src], elements=tok * nq, partial=True)
            k = bld.virtual("layer.attn.k", [qk_src], elements=tok * nkv, partial=True)
            v = bld.virtual("layer.attn.v", [qkv], elements=tok * nkv, partial=True)
            if spec.attention == "fused":
                ctx = bld.attention("layer.attn.core", q, k, v, batch=b, heads=hq,
                                    kv_heads=hkv, seq_q=s_loc, seq_kv=s, head_dim=d,
                                    causal=spec.causal, dropout=spec.dropout,
                                    context_parallel=cp)
                out_in = ctx
                if cp > 1:
                    # ring attention (Liu et al. 2023; Megatron-Core context parallelism):
                    # the K and V chunks of all cp ranks pass around the ring while the
                    # attention computes on the chunks it holds (no dependency between the
                    # two: they overlap); the output waits for both. Backward: the dK, dV
                    # chunks travel back (a reduce-scatter of the full K, V gradients).
                    kv_full = float(b * s * 2 * nkv * db)
                    ring = bld.collective("layer.attn.cp_ring", k, collective="all_gather",
                                          comm_bytes=kv_full, elements=b * s * 2 * nkv,
                                          bwd_collective="reduce_scatter", group="cp")
                    out_in = bld.virtual("layer.attn.cp_join", [ctx, ring], elements=tok * nq)
                return bld.gemm("layer.attn.out", out_in, m=tok, k=nq, n=h,
                                bias=spec.out_bias, save_a=ctx)
            scores = bld.gemm("layer.attn.qk", q, y=k, m=s, k=d, n=s, batch=b * hq,
                              save_b_bytes=float(tok * nkv * db))
            probs = bld.vector("layer.attn.softmax", [scores], key="softmax", kind="softmax",
                               elements=b * hq * s * s,
                               saves=[("layer.attn.softmax", b * hq * s * s * db)])
            probs = dropout("layer.attn.dropout", probs, b * hq * s * s)
            ctx = bld.gemm("layer.attn.av", probs, y=v, m=s, k=s, n=d, batch=b * hq,
                           save_b_bytes=float(tok * nkv * db))
            return bld.gemm("layer.attn.out", ctx, m=tok, k=nq, n=h, bias=spec.out_bias)

        def mlp(inp_tp: str, inp_saved: str) -> str:
            fc1 = column("layer.mlp.fc1", inp_tp, inp_saved, n=ffn_out, bias=spec.mlp_bias)
            if spec.gated_mlp:
                act = bld.vector("layer.mlp.swiglu", [fc1], key="swiglu", elements=tok * ffn,
                                 in_elements=tok * ffn_out, saves=[(fc1, tok * ffn_out * db)])
            else:
                key = "gelu" if spec.activation.startswith("gelu") else spec.activation
                saved = fc1 if key != "relu" else "layer.mlp.act"
                act = bld.vector("layer.mlp.act", [fc1], key=key, elements=tok * ffn,
                                 saves=[(saved, tok * ffn * db)])
            return bld.gemm("layer.mlp.fc2", act, m=tok, k=ffn, n=h, bias=spec.mlp_bias)

        if spec.post_norm:  # BERT, OPT-350m: x → sublayer → dropout → add → LayerNorm
            a = from_tp("layer.attn", attention(to_tp("layer.attn", xin), xin))
            a = dropout("layer.attn.resid_dropout", a, tok_sp * h)
            r1 = bld.vector("layer.attn.residual", [xin, a], key="add", elements=tok_sp * h)
            n1 = norm("layer.norm1", r1)
            m = from_tp("layer.mlp", mlp(to_tp("layer.mlp", n1), n1))
            m = dropout("layer.mlp.resid_dropout", m, tok_sp * h)
            r2 = bld.vector("layer.mlp.residual", [n1, m], key="add", elements=tok_sp * h)
            out = norm("layer.norm2", r2)
        elif spec.parallel_block:  # GPT-J / NeoX: x + attn(ln(x)) + mlp(ln(x))
            n1 = norm("layer.norm1", xin)
            g1 = to_tp("layer.attn", n1)
            a = attention(g1, n1)
            if spec.parallel_shared_norm:  # one f/all-gather feeds both branches
                m = mlp(g1, n1)
            else:
                n2 = norm("layer.norm2", xin)
                m = mlp(to_tp("layer.mlp", n2), n2)
            both = bld.vector("layer.parallel_sum", [a, m], key="add", elements=tok * h)
            both = from_tp("layer.block", both)
            both = dropout("layer.resid_dropout", both, tok_sp * h)
            out = bld.vector("layer.residual", [xin, both], key="add", elements=tok_sp * h)
        else:  # pre-LN: x + attn(ln1(x)), then + mlp(ln2(·))
            n1 = norm("layer.norm1", xin)
            a = from_tp("layer.attn", attention(to_tp("layer.attn", n1), n1))
            a = dropout("layer.attn.resid_dropout", a, tok_sp * h)
            r1 = bld.vector("layer.attn.residual", [xin, a], key="add", elements=tok_sp * h)
            n2 = norm("layer.norm2", r1)
            m = from_tp("layer.mlp", mlp(to_tp("layer.mlp", n2), n2))
            m = dropout("layer.mlp.resid_dropout", m, tok_sp * h)
            out = bld.vector("layer.mlp.residual", [r1, m], key="add", elements=tok_sp * h)
    x = out

    # ---------------------------------------------------------------- head and loss
    if last_stage:
        if spec.final_norm:
            x = norm("head.norm", x)
        if spec.nsp_head:
            # BERT NSP: pooler + classifier on the [CLS] token of each sequence (tiny, so
            # computed on every shard)
            cls = bld.virtual("head.cls", [x], elements=b * h, partial=True)
            pool = bld.gemm("head.pooler", cls, m=b, k=h, n=h, bias=True)
            pool = bld.vector("head.pooler_act", [pool], key="tanh", elements=b * h,
                              saves=[("head.pooler_act", b * h * db)])
            nsp = bld.gemm("head.nsp", pool, m=b, k=h, n=2, bias=True)
            bld.loss("loss.nsp", nsp, key="cross_entropy", elements=b * 2, rows=b,
                     saves=[("loss.nsp:logp", b * 2 * db)])
        if spec.mlm_transform:
            # BERT MLM transform: dense + gelu + LayerNorm (weights replicated under tp) on
            # all tokens, as Hugging Face's BertForPreTraining/BertForMaskedLM do
            t1 = bld.gemm("head.transform", x, m=tok_sp, k=h, n=h, bias=True)
            t2 = bld.vector("head.transform_act", [t1], key="gelu", elements=tok_sp * h,
                            saves=[(t1, tok_sp * h * db)])
            x = bld.vector("head.transform_norm", [t2], key="layernorm", kind="norm",
                           elements=tok_sp * h, params=(("weight", h), ("bias", h)),
                           saves=[(t2, tok_sp * h * db)])
        if spec.embed_proj:
            x = bld.gemm("head.project_out", x, m=tok_sp, k=h, n=e)
        xt = to_tp("head", x)
        tied = spec.tied_embeddings and first_stage
        logits = bld.gemm(
            "head.logits", xt, m=tok, k=e, n=vocab, bias=spec.head_bias and not tied,
            tied_to="embed.word" if tied else "", save_a=x,
            save_a_bytes=float((tok_sp if sp else tok) * e * db),
            regather=("all_gather", float(tok * e * db)) if sp else None,
        )
        if spec.head_bias and tied:  # BERT's decoder bias, separate from the tied weight
            logits = bld.vector("head.bias", [logits], key="add", elements=tok * vocab,
                                params=(("bias", vocab),))
        if tp > 1:
            logits = bld.collective("loss.tp_ar", logits, collective="all_reduce",
                                    comm_bytes=float(3 * tok * 4), elements=tok * vocab)
        bld.loss("loss", logits, key="cross_entropy", elements=tok * vocab, rows=tok,
                 saves=[("loss:logp", tok * vocab * db)])
    else:
        bld.seed("stage.output", x, elements=tok_sp * h)

    graph = expand(bld, optimizer=optimizer, name=spec.name)
    stats = summarize(graph, batch)
    stash = sum(op.stash_bytes for op in graph.ops if op.phase == "fwd" and op.block == "layer")
    meta: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "model_type": spec.model_type,
        "params": spec.params, "seq_len": seq_model, "seq_padded": seq, "cp": cp,
        "model_flop_scale": seq_model / seq, "attention": spec.attention, "batch": batch, "layers": spec.layers,
        "stage_layers": [a0, a1], "hidden": h, "heads": spec.heads,
        "kv_heads": spec.kv_heads, "head_dim": d, "ffn": spec.ffn, "vocab": spec.vocab,
        "tp": tp, "sequence_parallel": sp, "first_stage": first_stage,
        "last_stage": last_stage, "optimizer": optimizer,
        "stash_bytes_per_layer": float(stash), **stats,
    }
    return graph.with_ops(graph.ops, **meta)
