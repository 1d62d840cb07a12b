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
                      last_stage: bool = True, cp: int = 1, ep: int = 1,
                      etp: int | None = None) -> Graph:
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
    if not isinstance(ep, int) or ep < 1:
        raise WorkloadError(f"{o}: ep={ep!r} must be an integer >= 1")
    if ep > 1 and not spec.moe:
        raise WorkloadError(f"{o}: ep={ep}: expert parallelism needs a mixture-of-experts "
                            "model (experts > 0)")
    if spec.moe and spec.experts % ep:
        valid = [e for e in range(1, spec.experts + 1) if spec.experts % e == 0]
        raise WorkloadError(f"{o}: ep={ep} does not divide experts={spec.experts}; valid ep: "
                            f"{', '.join(map(str, valid))}")
    etp = tp if etp is None or etp == 0 else etp
    if etp not in (1, tp):
        raise WorkloadError(f"{o}: etp={etp} must be 1 or tp={tp}")
    if spec.moe and spec.moe_ffn % etp:
        raise WorkloadError(f"{o}: tp={etp} does not divide moe_ffn={spec.moe_ffn}")
    # experts kept whole under tensor parallelism: the tokens stay sharded over the tp
    # ranks (Megatron-Core requires sequence parallelism for MoE with tp > 1)
    local_experts = spec.moe and etp == 1 and tp > 1
    if local_experts and not sp:
        raise WorkloadError(f"{o}: experts not split over tp={tp} (etp=1) need sequence "
                            "parallelism (Megatron-Core's rule for MoE with tensor "
                            "parallelism)")
    if local_experts and (spec.post_norm or spec.parallel_block):
        raise WorkloadError(f"{o}: etp=1 is modelled for pre-norm MoE layers only")
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
                          saves=[(x, tok_sp * h * db)], row=h)

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

    def layer(pfx: str, x_in: str, moe: bool) -> str:
        """One layer's operators, named ``{pfx}.…`` (the block's repeated body)."""
        xin = bld.virtual(f"{pfx}.input", [x_in], elements=tok_sp * h)

        def attention(inp_tp: str, inp_saved: str) -> str:
            if spec.mla:
                return mla(inp_tp, inp_saved)
            qkv = column(f"{pfx}.attn.qkv", inp_tp, inp_saved, n=nq + 2 * nkv,
                         bias=spec.qkv_bias)
            qk_src = qkv
            if spec.qk_norm:  # Qwen3: RMSNorm over each query and key head
                qk_el = tok * (nq + nkv)
                qk_src = bld.vector(f"{pfx}.attn.qk_norm", [qkv], key="rmsnorm", kind="norm",
                                    elements=qk_el, in_elements=qk_el, partial=True,
                                    params=(("q_weight", d), ("k_weight", d)),
                                    saves=[(qkv, qk_el * db)], row=d)
            if spec.position == "rotary":
                rel = tok * (hq + hkv) * spec.rotary_dim
                qk_src = bld.vector(f"{pfx}.attn.rotary", [qk_src], key="rotary", elements=rel,
                                    in_elements=rel, partial=True)
            q = bld.virtual(f"{pfx}.attn.q", [qk_src], elements=tok * nq, partial=True)
            k = bld.virtual(f"{pfx}.attn.k", [qk_src], elements=tok * nkv, partial=True)
            v = bld.virtual(f"{pfx}.attn.v", [qkv], elements=tok * nkv, partial=True)
            if spec.attention == "fused":
                return core(q, k, v, kv_heads=hkv, head_dim=d, q_width=nq, kv_width=nkv)
            scores = bld.gemm(f"{pfx}.attn.qk", q, y=k, m=s, k=d, n=s, batch=b * hq,
                              save_b_bytes=float(tok * nkv * db))
            probs = bld.vector(f"{pfx}.attn.softmax", [scores], key="softmax",
                               kind="softmax", elements=b * hq * s * s,
                               saves=[(f"{pfx}.attn.softmax", b * hq * s * s * db)], row=s)
            probs = dropout(f"{pfx}.attn.dropout", probs, b * hq * s * s)
            ctx = bld.gemm(f"{pfx}.attn.av", probs, y=v, m=s, k=s, n=d, batch=b * hq,
                           save_b_bytes=float(tok * nkv * db))
            return bld.gemm(f"{pfx}.attn.out", ctx, m=tok, k=nq, n=h, bias=spec.out_bias)

        def core(q: str, k: str, v: str, *, kv_heads: int, head_dim: int, q_width: int,
                 kv_width: int) -> str:
            """Fused attention, the context-parallel ring and the output projection."""
            ctx = bld.attention(f"{pfx}.attn.core", q, k, v, batch=b, heads=hq,
                                kv_heads=kv_heads, seq_q=s_loc, seq_kv=s, head_dim=head_dim,
                                causal=spec.causal, dropout=spec.dropout,
                                context_parallel=cp)
            out_in = ctx
            if cp > 1:
                # ring attention (Liu et al. 2023; Megatron-Core context parallelism):
                # the K and V chunks of all cp ranks pass around the ring while the
                # attention computes on the chunks it holds (no dependency between the
                # two: they overlap); the output waits for both. Backward: the dK, dV
                # chunks travel back (a reduce-scatter of the full K, V gradients).
                kv_full = float(b * s * 2 * kv_width * db)
                ring = bld.collective(f"{pfx}.attn.cp_ring", k, collective="all_gather",
                                      comm_bytes=kv_full, elements=b * s * 2 * kv_width,
                                      bwd_collective="reduce_scatter", group="cp")
                out_in = bld.virtual(f"{pfx}.attn.cp_join", [ctx, ring],
                                     elements=tok * q_width)
            return bld.gemm(f"{pfx}.attn.out", out_in, m=tok, k=hq * spec.v_head_dim, n=h,
                            bias=spec.out_bias, save_a=ctx)

        def mla(inp_tp: str, inp_saved: str) -> str:
            """Multi-head latent attention (DeepSeek-V2 §2.1; Megatron-Core's MLA): low-rank
            query and key/value projections (replicated over tp, as their small outputs
            are), the up-projections column-parallel over the heads, the rotary part of
            the key shared by all heads. The fused kernel sees query/key heads of
            ``head_dim`` and value heads of ``v_head_dim``: it is costed with their mean
            width, which gives its FLOPs (``2·d_qk + 2·d_v`` per score) and its Q, K, V,
            O traffic exactly."""
            ql, kl, rope = spec.q_lora_rank, spec.kv_lora_rank, spec.qk_rope_head_dim
            dv = spec.v_head_dim
            if ql:
                qa = bld.gemm(f"{pfx}.attn.q_down", inp_tp, m=tok, k=h, n=ql, save_a=inp_saved,
                              save_a_bytes=float(tok_sp * h * db),
                              regather=("all_gather", full_bytes) if sp else None)
                qa = bld.vector(f"{pfx}.attn.q_norm", [qa], key="rmsnorm", kind="norm",
                                elements=tok * ql, params=(("weight", ql),),
                                saves=[(qa, tok * ql * db)], row=ql)
                q = bld.gemm(f"{pfx}.attn.q_up", qa, m=tok, k=ql, n=hq * d)
            else:
                q = column(f"{pfx}.attn.q", inp_tp, inp_saved, n=hq * d, bias=False)
            kva = bld.gemm(f"{pfx}.attn.kv_down", inp_tp, m=tok, k=h, n=kl + rope,
                           save_a=inp_saved, save_a_bytes=float(tok_sp * h * db),
                           regather=("all_gather", full_bytes) if sp else None)
            kvn = bld.vector(f"{pfx}.attn.kv_norm", [kva], key="rmsnorm", kind="norm",
                             elements=tok * kl, in_elements=tok * kl,
                             params=(("weight", kl),), saves=[(kva, tok * kl * db)], row=kl)
            kv = bld.gemm(f"{pfx}.attn.kv_up", kvn, m=tok, k=kl, n=hq * (d - rope + dv))
            rel = tok * (hq + 1) * rope
            qr = bld.vector(f"{pfx}.attn.rotary", [q, kva], key="rotary", elements=rel,
                            in_elements=rel, partial=True)
            qq = bld.virtual(f"{pfx}.attn.q_heads", [q, qr], elements=tok * hq * d,
                             partial=True)
            kk = bld.virtual(f"{pfx}.attn.k_heads", [kv, qr], elements=tok * hq * d,
                             partial=True)
            vv = bld.virtual(f"{pfx}.attn.v_heads", [kv], elements=tok * hq * dv, partial=True)
            width = -(-(d + dv) // 2)
            return core(qq, kk, vv, kv_heads=hq, head_dim=width, q_width=hq * width,
                        kv_width=hq * width)

        def mlp(name: str, inp_tp: str, inp_saved: str, f_loc: int) -> str:
            f_out = 2 * f_loc if spec.gated_mlp else f_loc
            fc1 = column(f"{name}.fc1", inp_tp, inp_saved, n=f_out, bias=spec.mlp_bias)
            if spec.gated_mlp:
                act = bld.vector(f"{name}.swiglu", [fc1], key="swiglu", elements=tok * f_loc,
                                 in_elements=tok * f_out, saves=[(fc1, tok * f_out * db)])
            else:
                key = "gelu" if spec.activation.startswith("gelu") else spec.activation
                saved = fc1 if key != "relu" else f"{name}.act"
                act = bld.vector(f"{name}.act", [fc1], key=key, elements=tok * f_loc,
                                 saves=[(saved, tok * f_loc * db)])
            return bld.gemm(f"{name}.fc2", act, m=tok, k=f_loc, n=h, bias=spec.mlp_bias)

        def ffn_block(inp_tp: str, inp_saved: str) -> str:
            if not moe:
                return mlp(f"{pfx}.mlp", inp_tp, inp_saved, ffn)
            return moe_mlp(inp_tp, inp_saved)

        def moe_mlp(inp_tp: str, inp_saved: str, *, ntok: int = tok, e_tp: int = tp,
                    local: bool = False) -> str:
            """A mixture-of-experts MLP (Megatron-Core's MoE layer with the all-to-all
            token dispatcher; Fedus et al. 2022, DeepSeek-V3 §2.1.2). The router (replicated
            over tp) scores the ``tok`` tokens this rank holds against the ``E`` experts;
            each token goes to its top ``k``. The rows are permuted into expert order and
            sent to the ranks that hold their experts (all-to-all over the ``ep`` group);
            the ``E/ep`` local experts run as one grouped GEMM (tensor-parallel over tp, as
            the dense MLP), the results come back (all-to-all) and are summed, weighted by
            the routing weights (in the experts' activation or in the sum:
            :attr:`~workloads.spec.TransformerSpec.moe_weighting`). A rank receives ``tok·k`` rows on average and ``λ·tok·k`` on
            the busiest one (``λ`` = :attr:`load_imbalance`, capped by the capacity
            factor): the graph is the busiest rank's. Shared experts run beside the
            routed ones on every token.

            ``local``: experts kept whole (``etp = 1``): the ``ntok`` tokens of this
            rank's sequence shard are routed, no tensor-parallel collective around the
            routed experts; the shared expert stays tensor-parallel."""
            n_exp, topk = spec.experts, spec.experts_per_token
            e_loc = n_exp // ep
            lam = spec.load_imbalance
            if spec.capacity_factor:
                lam = min(lam, spec.capacity_factor)
            rows = max(1, int(round(lam * ntok * topk)))  # expert rows on the busiest rank
            m_e = max(1, -(-rows // e_loc))               # rows per local expert
            fe = spec.moe_ffn // e_tp
            regather = ("all_gather", full_bytes) if sp and not local else None
            logits = bld.gemm(f"{pfx}.moe.router", inp_tp, m=ntok, k=h, n=n_exp,
                              save_a=inp_saved, save_a_bytes=float(tok_sp * h * db),
                              regather=regather)
            route = bld.vector(f"{pfx}.moe.route", [logits], key=spec.router,
                               elements=ntok * n_exp,
                               params=(("bias", n_exp),) if spec.router_bias else (),
                               saves=[(f"{pfx}.moe.route", ntok * n_exp * 4)])
            perm = bld.vector(f"{pfx}.moe.permute", [inp_tp, route], key="permute",
                              elements=rows * h, in_elements=ntok * h + ntok * topk)
            if ep > 1:
                perm = bld.collective(f"{pfx}.moe.dispatch", perm, collective="all_to_all",
                                      comm_bytes=float(rows * h * db), elements=rows * h,
                                      bwd_collective="all_to_all", group="ep")
            f_out = 2 * fe if spec.gated_mlp else fe
            fc1 = bld.gemm(f"{pfx}.moe.experts.fc1", perm, m=m_e, k=h, n=f_out, batch=e_loc)
            # routing weights applied in the activation (spec.moe_weighting): it keeps
            # them (fp32, one a row) beside its input; else the combine keeps the outputs
            in_act = spec.moe_weighting == "activation"
            act = bld.vector(f"{pfx}.moe.experts.swiglu" if spec.gated_mlp else
                             f"{pfx}.moe.experts.act", [fc1, route] if in_act else [fc1],
                             key="swiglu" if spec.gated_mlp else (
                                 "gelu" if spec.activation.startswith("gelu")
                                 else spec.activation),
                             elements=e_loc * m_e * fe, in_elements=e_loc * m_e * f_out,
                             saves=[(fc1, e_loc * m_e * f_out * db)] + (
                                 [(f"{pfx}.moe.probs", e_loc * m_e * 4)] if in_act else []))
            out = bld.gemm(f"{pfx}.moe.experts.fc2", act, m=m_e, k=fe, n=h, batch=e_loc)
            if ep > 1:
                out = bld.collective(f"{pfx}.moe.combine", out, collective="all_to_all",
                                     comm_bytes=float(rows * h * db), elements=rows * h,
                                     bwd_collective="all_to_all", group="ep")
            comb = bld.vector(f"{pfx}.moe.unpermute", [out, route], key="weighted_sum",
                              elements=ntok * h, in_elements=rows * h + ntok * topk,
                              saves=[] if in_act else [(out, rows * h * db)])
            if spec.shared_ffn:
                if local:
                    shared = from_tp(f"{pfx}.moe.shared", mlp(
                        f"{pfx}.moe.shared", to_tp(f"{pfx}.moe.shared", inp_tp), inp_saved,
                        spec.shared_ffn // tp))
                else:
                    shared = mlp(f"{pfx}.moe.shared", inp_tp, inp_saved,
                                 spec.shared_ffn // tp)
                comb = bld.vector(f"{pfx}.moe.add_shared", [comb, shared], key="add",
                                  elements=ntok * h)
            return comb

        if spec.post_norm:  # BERT, OPT-350m: x → sublayer → dropout → add → LayerNorm
            a = from_tp(f"{pfx}.attn", attention(to_tp(f"{pfx}.attn", xin), xin))
            a = dropout(f"{pfx}.attn.resid_dropout", a, tok_sp * h)
            r1 = bld.vector(f"{pfx}.attn.residual", [xin, a], key="add", elements=tok_sp * h)
            n1 = norm(f"{pfx}.norm1", r1)
            m = from_tp(f"{pfx}.mlp", ffn_block(to_tp(f"{pfx}.mlp", n1), n1))
            m = dropout(f"{pfx}.mlp.resid_dropout", m, tok_sp * h)
            r2 = bld.vector(f"{pfx}.mlp.residual", [n1, m], key="add", elements=tok_sp * h)
            return norm(f"{pfx}.norm2", r2)
        if spec.parallel_block:  # GPT-J / NeoX: x + attn(ln(x)) + mlp(ln(x))
            n1 = norm(f"{pfx}.norm1", xin)
            g1 = to_tp(f"{pfx}.attn", n1)
            a = attention(g1, n1)
            if spec.parallel_shared_norm:  # one f/all-gather feeds both branches
                m = ffn_block(g1, n1)
            else:
                n2 = norm(f"{pfx}.norm2", xin)
                m = ffn_block(to_tp(f"{pfx}.mlp", n2), n2)
            both = bld.vector(f"{pfx}.parallel_sum", [a, m], key="add", elements=tok * h)
            both = from_tp(f"{pfx}.block", both)
            both = dropout(f"{pfx}.resid_dropout", both, tok_sp * h)
            return bld.vector(f"{pfx}.residual", [xin, both], key="add", elements=tok_sp * h)
        # pre-LN: x + attn(ln1(x)), then + mlp(ln2(·))
        n1 = norm(f"{pfx}.norm1", xin)
        a = from_tp(f"{pfx}.attn", attention(to_tp(f"{pfx}.attn", n1), n1))
        a = dropout(f"{pfx}.attn.resid_dropout", a, tok_sp * h)
        r1 = bld.vector(f"{pfx}.attn.residual", [xin, a], key="add", elements=tok_sp * h)
        n2 = norm(f"{pfx}.norm2", r1)
        if moe and local_experts:  # the routed experts work on this rank's tokens
            m = moe_mlp(n2, n2, ntok=tok_sp, e_tp=1, local=True)
        else:
            m = from_tp(f"{pfx}.mlp", ffn_block(to_tp(f"{pfx}.mlp", n2), n2))
        m = dropout(f"{pfx}.mlp.resid_dropout", m, tok_sp * h)
        return bld.vector(f"{pfx}.mlp.residual", [r1, m], key="add", elements=tok_sp * h)

    # a mixture-of-experts model's first ``first_k_dense`` layers keep the dense MLP: they
    # are their own block (``dense_layer``), before the repeated MoE block (``layer``)
    n_dense = max(0, min(a1, spec.first_k_dense) - a0) if spec.moe else 0
    if n_dense:
        with bld.block("dense_layer", count=n_dense, layer=a0):
            x = layer("dense", x, moe=False)
    if a1 - a0 - n_dense:
        with bld.block("layer", count=a1 - a0 - n_dense, layer=a0 + n_dense):
            x = layer("layer", x, moe=spec.moe)

    def mtp(k: int, x_prev: str) -> str:
        """Multi-token-prediction module ``k`` (DeepSeek-V3 §2.2): the next token's embedding
        (the model's table) and the previous depth's hidden state, each RMS-normed, joined
        and projected ``2h → h``, one layer like the repeated ones, the shared head and its
        loss. Its block (``mtp``) is on the last stage, after the model's loss."""
        pfx = f"mtp{k}"
        with bld.block("mtp", count=1, layer=spec.layers + k):
            # the model's table: shared on the first stage, a copy on a later last stage
            # (Megatron-Core builds the embedding on the MTP stage and all-reduces its
            # gradient with the first stage's)
            emb = bld.embedding(f"{pfx}.embed", rows=tok, dim=e, table_rows=vocab,
                                read_rows=ceil_div(tok, tp),
                                tied_to="embed.word" if first_stage else "")
            if tp > 1:
                emb = (bld.collective(f"{pfx}.embed.rs", emb, collective="reduce_scatter",
                                      comm_bytes=full_bytes, elements=tok_sp * h) if sp else
                       bld.collective(f"{pfx}.embed.ar", emb, collective="all_reduce",
                                      comm_bytes=full_bytes, elements=tok * h))
            both = bld.virtual(f"{pfx}.cat", [norm(f"{pfx}.enorm", emb),
                                               norm(f"{pfx}.hnorm", x_prev)],
                               elements=tok_sp * 2 * h)
            y = bld.gemm(f"{pfx}.eh_proj", both, m=tok_sp, k=2 * h, n=h)
            y = norm(f"{pfx}.norm", layer(pfx, y, moe=spec.moe))
            lg = bld.gemm(f"{pfx}.logits", to_tp(f"{pfx}.head", y), m=tok, k=e, n=vocab,
                          tied_to="head.logits", save_a=y,
                          save_a_bytes=float((tok_sp if sp else tok) * e * db),
                          regather=("all_gather", float(tok * e * db)) if sp else None)
            if tp > 1:
                lg = bld.collective(f"{pfx}.loss.tp_ar", lg, collective="all_reduce",
                                    comm_bytes=float(3 * tok * 4), elements=tok * vocab)
            bld.loss(f"{pfx}.loss", lg, key="cross_entropy", elements=tok * vocab, rows=tok,
                     saves=[(f"{pfx}.loss:logp", tok * vocab * db)])
        return y

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
                           saves=[(t2, tok_sp * h * db)], row=h)
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
        f32 = spec.cross_entropy != "fused"  # Megatron's fp32 softmax (output.float())
        bld.loss("loss", logits, key="cross_entropy", elements=tok * vocab, rows=tok,
                 saves=[("loss:softmax" if f32 else "loss:logp",
                         tok * vocab * (4 if f32 else db))], mode=spec.cross_entropy)
        for k in range(spec.mtp_layers):
            x = mtp(k, x)
    else:
        bld.seed("stage.output", x, elements=tok_sp * h)

    graph = expand(bld, optimizer=optimizer, name=spec.name,
                   grad_accumulation=spec.grad_accumulation, bias_grad=spec.bias_grad)
    stats = summarize(graph, batch)
    stash = sum(op.stash_bytes for op in graph.ops if op.phase == "fwd" and op.block == "layer")
    meta: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "model_type": spec.model_type,
        "params": spec.params, "seq_len": seq_model, "seq_padded": seq, "cp": cp,
        "model_flop_scale": seq_model / seq, "attention": spec.attention, "batch": batch, "layers": spec.layers,
        "stage_layers": [a0, a1], "hidden": h, "heads": spec.heads,
        "kv_heads": spec.kv_heads, "head_dim": d, "ffn": spec.ffn, "vocab": spec.vocab,
        "tp": tp, "ep": ep, "etp": etp, "sequence_parallel": sp, "first_stage": first_stage,
        "active_params": spec.active_params, "experts": spec.experts,
        "experts_per_token": spec.experts_per_token, "expert_groups": spec.expert_groups,
        "expert_groups_per_token": spec.expert_groups_per_token,
        "dense_layers": n_dense,
        "last_stage": last_stage, "optimizer": optimizer,
        "stash_bytes_per_layer": float(stash), **stats,
        # (tensor, saving op, bytes) of each repeated block: per-module recomputation
        "saves": {blk: tuple((t, by, b) for k, t, by, b in bld.saves if k == blk)
                  for blk in dict.fromkeys(k for k, _, _, _ in bld.saves)},
    }
    return graph.with_ops(graph.ops, **meta)
