"""Invariants of the training expansion (hypothesis property tests over random models)."""

from __future__ import annotations

import dataclasses
import math

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workloads
from dse.errors import WorkloadError
from dse.types import Graph
from workloads.spec import CNNSpec, DLRMSpec, TransformerSpec
from workloads.training import pass_of, summarize

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def transformer_specs(draw: st.DrawFn) -> TransformerSpec:
    mt = draw(st.sampled_from(["gpt2", "gptj", "gpt_neox", "llama", "bert", "opt"]))
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.sampled_from([1, 2]))
    head_dim = draw(st.sampled_from([4, 8]))
    hidden = heads * head_dim
    kw: dict = {"name": "rand", "model_type": mt, "source": "hypothesis",
                "layers": draw(st.integers(1, 3)), "hidden": hidden, "heads": heads,
                "ffn": 4 * draw(st.sampled_from([4, 8, 16])),
                "vocab": 4 * draw(st.integers(3, 30)), "max_positions": 64,
                "dropout": draw(st.booleans())}
    if mt in ("gptj", "gpt_neox"):
        kw.update(position="rotary", rotary_dim=head_dim // 2, parallel_block=True,
                  parallel_shared_norm=mt == "gptj", tied_embeddings=False)
    elif mt == "llama":
        kw.update(kv_heads=kv, position="rotary", gated_mlp=True, norm="rmsnorm",
                  norm_bias=False, activation="silu", tied_embeddings=draw(st.booleans()),
                  qkv_bias=False, out_bias=False, mlp_bias=False)
    elif mt == "bert":
        kw.update(causal=False, post_norm=True, embed_norm=True, final_norm=False,
                  type_vocab=2, head_bias=True, mlm_transform=True,
                  nsp_head=draw(st.booleans()))
    elif mt == "opt":
        kw.update(activation="relu", position_offset=2)
    return TransformerSpec(**kw)


def _dims(draw: st.DrawFn) -> tuple[int, int]:
    return draw(st.integers(1, 3)), draw(st.sampled_from([4, 8, 16]))


def _gemm_flop(g: Graph, phase: str | None = None) -> float:
    return sum(op.total_flop for op in g.ops if op.kind == "gemm"
               and (phase is None or op.phase == phase))


def _check_structure(g: Graph) -> None:
    """Acyclic, topologically stored, backward ops after their forward op and gradient."""
    dg = g.nx()
    assert nx.is_directed_acyclic_graph(dg)
    pos = g.index
    for a, b in g.edges:
        assert pos[a] < pos[b]
    fwd_names = {op.name for op in g.ops if op.phase == "fwd"}
    by_fwd: dict[str, list[str]] = {}
    for op in g.ops:
        if op.fwd and op.phase in ("bwd_data", "bwd_weight", "comm"):
            by_fwd.setdefault(op.fwd, []).append(op.name)
    # a backward op of a real forward op depends on it
    for f, bws in by_fwd.items():
        if f in fwd_names:
            for b in bws:
                assert nx.has_path(dg, f, b), (f, b)
    # ... and on the gradient of its output: some data-gradient op of every consumer
    # reaches some backward op of the producer
    for a, b in g.edges:
        ys = [y for y in by_fwd.get(b, []) if g.op(y).phase in ("bwd_data", "comm")]
        if a in fwd_names and b in fwd_names and a in by_fwd and ys:
            assert any(nx.has_path(dg, y, x) for y in ys for x in by_fwd[a]), (a, b)
    # with a loss, every backward op waits for the loss gradient
    losses = [op.name + ".bwd" for op in g.ops if op.kind == "loss" and op.phase == "fwd"]
    if losses:
        reach = set().union(*(nx.descendants(dg, lo) for lo in losses)) | set(losses)
        for op in g.ops:
            if op.phase in ("bwd_data", "bwd_weight") or (op.phase == "comm" and op.fwd):
                assert op.name in reach or op.name.endswith(".bwd_regather"), op.name
    # optimizer ops come after the op producing their gradient
    for op in g.ops:
        if op.phase == "optimizer":
            assert any(nx.has_path(dg, b, op.name) for b in by_fwd.get(op.fwd, [])) or \
                any(d == op.name for _, d in g.edges), op.name


def _check_gemm_pairs(g: Graph) -> None:
    names = {op.name: op for op in g.ops}
    for op in g.ops:
        if op.phase != "fwd" or op.kind != "gemm":
            continue
        bw, bd = names.get(op.name + ".bwd_weight"), names.get(op.name + ".bwd_data")
        da, db = names.get(op.name + ".bwd_data_a"), names.get(op.name + ".bwd_data_b")
        if bw is not None:  # weight GEMM: transposed shapes, equal FLOPs
            assert bw.total_flop == pytest.approx(op.total_flop)
            assert (bw.m, bw.n) == (op.k, op.n)
            if bd is not None:
                assert bd.total_flop == op.total_flop
                assert (bd.m, bd.k, bd.n) == (op.m, op.n, op.k)
        else:  # activation x activation: one data gradient per operand
            assert da is not None and db is not None, op.name
            assert da.total_flop == db.total_flop == op.total_flop


@SETTINGS
@given(spec=transformer_specs(), data=st.data())
def test_transformer_training_graph_invariants(spec: TransformerSpec, data: st.DataObject):
    batch, seq = data.draw(st.integers(1, 3)), data.draw(st.sampled_from([4, 8, 16]))
    opt = data.draw(st.sampled_from(["adam", "sgd"]))
    g = workloads.build(spec, batch=batch, seq=seq, optimizer=opt)
    _check_structure(g)
    _check_gemm_pairs(g)
    # every forward GEMM of a transformer has both backward GEMMs (all inputs need grads)
    fwd_w = [op for op in g.ops if op.phase == "fwd" and op.kind == "gemm" and
             op.name + ".bwd_weight" in g.index]
    assert all(op.name + ".bwd_data" in g.index for op in fwd_w)
    # GEMM backward FLOPs are exactly twice the forward's
    assert _gemm_flop(g, "bwd_data") + _gemm_flop(g, "bwd_weight") == \
        pytest.approx(2 * _gemm_flop(g, "fwd"))
    # parameters: owned once by forward ops, every tensor updated once by the optimizer
    assert g.meta["shard_params"] == spec.params
    assert sum(op.params * op.count for op in g.ops if op.phase == "optimizer") == spec.params
    assert all(op.vector_op == opt for op in g.ops if op.phase == "optimizer")
    # stash: positive, and at least the inputs of every block GEMM are saved once
    assert g.meta["stash_bytes_per_layer"] > 0


@SETTINGS
@given(spec=transformer_specs(), data=st.data())
def test_tp_shards_sum_to_the_unsplit_gemm_flops(spec: TransformerSpec, data: st.DataObject):
    spec = dataclasses.replace(spec, nsp_head=False, mlm_transform=False)
    tps = [t for t in (2, 4) if spec.heads % t == 0 and spec.ffn % t == 0
           and spec.kv_heads % t == 0 and spec.vocab % t == 0]
    if not tps:
        return
    tp = data.draw(st.sampled_from(tps))
    batch, seq = data.draw(st.integers(1, 2)), data.draw(st.sampled_from([4, 8]))
    sp = data.draw(st.booleans())
    full = workloads.build(spec, batch=batch, seq=seq)
    shard = workloads.build(spec, batch=batch, seq=seq, tp=tp, sequence_parallel=sp)
    _check_structure(shard)
    _check_gemm_pairs(shard)
    assert tp * _gemm_flop(shard) == pytest.approx(_gemm_flop(full))
    # Megatron collectives per layer: 2 all-reduces forward and 2 backward. A parallel
    # block (GPT-J, GPT-NeoX) sums both branches before one forward all-reduce; with one
    # shared LayerNorm (GPT-J) one f operator also serves both branches. SP: every
    # all-reduce becomes reduce-scatter + all-gather, plus the all-gather that re-gathers
    # each column-parallel GEMM's input before its weight gradient.
    coll = [op for op in shard.ops if op.kind == "collective" and op.block == "layer"]
    n_g = 1 if spec.parallel_block else 2
    n_f = 1 if (spec.parallel_block and spec.parallel_shared_norm) else 2
    fwd = [op for op in coll if pass_of(op) == "fwd"]
    bwd = [op for op in coll if pass_of(op) == "bwd"]
    full_bytes = batch * seq * spec.hidden * 2
    assert all(op.comm_bytes == full_bytes for op in coll)
    assert all(op.group == "tp" for op in coll)
    if not sp:
        assert len(fwd) == n_g and len(bwd) == n_f
        assert {op.collective for op in coll} == {"all_reduce"}
    else:
        assert sorted(op.collective for op in fwd) == ["all_gather"] * n_f + \
            ["reduce_scatter"] * n_g
        regather = [op for op in bwd if op.name.endswith(".bwd_regather")]
        assert len(regather) == 2  # QKV and MLP-in
        assert sorted(op.collective for op in bwd if op not in regather) == \
            ["all_gather"] * n_g + ["reduce_scatter"] * n_f


@SETTINGS
@given(spec=transformer_specs(), data=st.data())
def test_pipeline_stages_partition_the_model(spec: TransformerSpec, data: st.DataObject):
    if spec.layers < 2:
        spec = dataclasses.replace(spec, layers=2)
    cut = data.draw(st.integers(1, spec.layers - 1))
    batch, seq = 1, 8
    full = workloads.build(spec, batch=batch, seq=seq)
    a = workloads.build(spec, batch=batch, seq=seq, layers=(0, cut), last_stage=False)
    b = workloads.build(spec, batch=batch, seq=seq, layers=(cut, spec.layers),
                        first_stage=False)
    for g in (a, b):
        _check_structure(g)
        _check_gemm_pairs(g)
    assert _gemm_flop(a) + _gemm_flop(b) == pytest.approx(_gemm_flop(full))
    tied_copy = spec.vocab * spec.embed_dim if spec.tied_embeddings else 0
    assert a.meta["shard_params"] + b.meta["shard_params"] == spec.params + tied_copy
    # the first stage's output gradient arrives from outside; the last stage's input
    # gradient is computed (it is sent to the previous stage)
    assert "stage.input.grad_accum" in b.index or any(
        op.phase == "bwd_data" and op.block == "layer" for op in b.ops)


@SETTINGS
@given(data=st.data())
def test_dlrm_graph_invariants(data: st.DataObject):
    n_tab = data.draw(st.integers(1, 6))
    dim = data.draw(st.sampled_from([4, 8, 16]))
    spec = DLRMSpec(name="d", source="hypothesis",
                    tables=tuple(data.draw(st.integers(1, 10_000)) for _ in range(n_tab)),
                    dim=dim, bottom_mlp=(13, data.draw(st.sampled_from([8, 32])), dim),
                    top_mlp=(data.draw(st.sampled_from([8, 32])), 1),
                    lookups_per_table=data.draw(st.integers(1, 3)))
    batch = data.draw(st.integers(1, 64))
    g = workloads.build(spec, batch=batch, optimizer=data.draw(st.sampled_from(["adam", "sgd"])))
    _check_structure(g)
    _check_gemm_pairs(g)
    assert g.meta["shard_params"] == spec.params
    for i, rows in enumerate(spec.tables):
        scatter = g.op(f"emb{i}.bwd")
        assert scatter.elements == batch * spec.lookups_per_table * dim  # sparse
        assert g.op(f"emb{i}.weight.{g.meta['optimizer']}").params == \
            min(rows, batch * spec.lookups_per_table) * dim


def test_cnn_graph_invariants():
    spec = CNNSpec(name="r", source="test", arch="resnet", image_size=32, num_classes=10,
                   config={"blocks": [2, 2], "widths": [8, 16]})
    g = workloads.build(spec, batch=2)
    _check_structure(g)
    _check_gemm_pairs(g)
    # the stem convolution reads the image: no data gradient; every other GEMM has one
    assert "stem.conv.bwd_data" not in g.index
    others = [op for op in g.ops if op.phase == "fwd" and op.kind == "gemm"
              and op.name != "stem.conv"]
    assert all(op.name + ".bwd_data" in g.index for op in others)


def test_rnn_graph_invariants():
    g = workloads.build(workloads.model_spec("gnmt"), batch=2, seq=3)
    _check_structure(g)
    _check_gemm_pairs(g)
    m = g.meta
    assert 2.95 <= (m["train_flop"] - m["flop_optimizer"]) / m["flop_fwd"] <= 3.05


@pytest.mark.parametrize("name", ["gptj", "gpt3-175b", "bert-large", "llama3-8b", "resnet50",
                                  "vgg16", "dlrm"])
def test_train_flops_are_three_times_forward_plus_optimizer(name):
    spec = workloads.model_spec(name)
    kw = {"batch": 8}
    if spec.has_seq:
        kw["seq"] = 512
    g = workloads.build(spec, **kw)
    m = g.meta
    assert m["train_flop"] == pytest.approx(m["flop_fwd"] + m["flop_bwd_data"]
                                            + m["flop_bwd_weight"] + m["flop_optimizer"])
    ratio = (m["train_flop"] - m["flop_optimizer"]) / m["flop_fwd"]
    assert 2.9 <= ratio <= 3.05, ratio
    # optimizer: 14 FLOP per parameter for Adam (dense) — DLRM updates looked-up rows only
    if name != "dlrm":
        assert m["flop_optimizer"] == pytest.approx(14 * spec.params)


def test_summary_columns_agree_with_a_scalar_loop():
    g = workloads.build(workloads.model_spec("bert-base"), batch=2, seq=64)
    s = summarize(g, 2)
    assert s["train_flop"] == pytest.approx(sum(op.flop * op.count for op in g.ops))
    for p in ("fwd", "bwd_data", "bwd_weight", "optimizer"):
        assert s[f"flop_{p}"] == pytest.approx(
            sum(op.flop * op.count for op in g.ops if op.phase == p))
    assert s["bytes"] == pytest.approx(sum(op.bytes_total * op.count for op in g.ops))
    assert s["gemm_flop"] == pytest.approx(
        sum(op.flop * op.count for op in g.ops if op.kind == "gemm"))


def test_gqa_kv_heads_split_or_replicated():
    s = workloads.model_spec("llama3-8b")  # 32 query heads, 8 key/value heads
    for tp, kv in ((4, 2), (8, 1), (16, 1)):
        g = workloads.build(s, batch=1, seq=64, tp=tp)
        qkv = g.op("layer.attn.qkv")
        assert qkv.n == (32 // tp + 2 * kv) * 128
    with pytest.raises(WorkloadError, match="tp=3"):
        workloads.build(s, batch=1, seq=64, tp=3)


def test_swiglu_has_three_matrices():
    s = workloads.model_spec("llama2-7b")
    g = workloads.build(s, batch=1, seq=32)
    fc1, fc2 = g.op("layer.mlp.fc1"), g.op("layer.mlp.fc2")
    assert fc1.n == 2 * 11008 and fc2.k == 11008  # gate and up fused, then down
    assert fc1.params + fc2.params == 3 * 4096 * 11008


def test_fused_attention_op_and_its_backward():
    s = workloads.model_spec("gpt2")  # causal, dropout 0.1, 12 heads of 64
    g = workloads.build(s, batch=2, seq=128)
    core, bwd = g.op("layer.attn.core"), g.op("layer.attn.core.bwd")
    scores = 2 * 12 * 128 * 129 // 2
    assert (core.kind, core.m, core.k, core.n, core.batch) == ("attention", 128, 64, 128, 24)
    assert core.elements == bwd.elements == scores
    assert core.flop == 4 * 64 * scores and bwd.flop == 2.5 * core.flop
    qkvo = 2 * 24 * 128 * 64 * 2            # bytes of Q (= O) for 2 bytes per element
    lse = 24 * 128 * 4
    assert core.bytes_in == 3 * qkvo / 2 and core.bytes_out == qkvo / 2 + lse
    assert (core.vector_op, bwd.vector_op) == ("flash_attn_dropout", "flash_attn_dropout_bwd")
    assert not any(op.kind == "softmax" for op in g.ops)
    # the backward gives the gradients of Q, K and V: the rotary backward and the QKV
    # projection's backward wait for it
    dg = g.nx()
    assert dg.has_edge("layer.attn.core", "layer.attn.core.bwd")
    assert any(dg.has_edge("layer.attn.core.bwd", x) for x in dg.successors(
        "layer.attn.core.bwd"))


def test_attention_counts_the_full_score_matrix():
    s = dataclasses.replace(workloads.model_spec("gpt2"), attention="unfused")
    g = workloads.build(s, batch=2, seq=128)
    qk, av = g.op("layer.attn.qk"), g.op("layer.attn.av")
    assert (qk.m, qk.k, qk.n, qk.batch) == (128, 64, 128, 2 * 12)
    assert (av.m, av.k, av.n, av.batch) == (128, 128, 64, 2 * 12)
    assert g.op("layer.attn.softmax").elements == 2 * 12 * 128 * 128
    # row-wise kernels reduce a row on chip: the softmax over the keys, the norm over h,
    # forward and backward
    assert g.op("layer.attn.softmax").row == g.op("layer.attn.softmax.bwd").row == 128
    assert g.op("layer.norm1").row == g.op("layer.norm1.bwd").row == 768


def test_dependencies_of_a_small_graph():
    g = workloads.build(workloads.model_spec("gpt2"), batch=1, seq=8)
    dg = g.nx()
    # the weight gradient of fc1 waits for the gradient coming out of the activation
    assert dg.has_edge("layer.mlp.act.bwd", "layer.mlp.fc1.bwd_weight")
    assert dg.has_edge("layer.mlp.fc1", "layer.mlp.fc1.bwd_weight")
    # the residual stream's gradients are added at each block input
    assert set(dg.predecessors("layer.input.grad_accum")) == {
        "layer.norm1.bwd", "layer.attn.residual.grad_accum"}
    # tied embedding: the table's update waits for the head's weight gradient and the
    # embedding scatter
    assert {"head.logits.bwd_weight", "embed.word.bwd"} <= set(
        dg.predecessors("embed.word.weight.adam"))


def test_separate_gradient_accumulation_adds_each_parameter_once_per_micro_batch():
    """Megatron-LM's fp16 runs of 2021-2022 add each micro-batch's weight gradient to the
    accumulated one in a separate kernel: one add per dense parameter tensor, reading the
    new and the accumulated gradient and writing the sum, before the optimizer step."""
    spec = workloads.model_spec("gpt2")
    fused = workloads.build(spec, batch=2, seq=128, tp=2)
    sep = workloads.build(dataclasses.replace(spec, grad_accumulation="separate"), batch=2,
                          seq=128, tp=2)
    assert not any(op.name.endswith(".grad_accum") and op.phase == "bwd_weight"
                   for op in fused.ops)
    adds = [op for op in sep.ops if op.phase == "bwd_weight" and op.kind == "elementwise"]
    opts = [op for op in sep.ops if op.phase == "optimizer"]
    assert len(adds) == len(opts) > 0
    dg = sep.nx()
    for add, opt in zip(adds, opts):
        assert add.name == opt.name.rsplit(".", 1)[0] + ".grad_accum"
        assert add.elements == opt.elements and add.count == opt.count
        assert add.bytes_in == 2 * add.elements * 2 and add.bytes_out == add.elements * 2
        assert list(dg.predecessors(opt.name)) == [add.name]
    # the gradients of the tied embedding (the head's GEMM and the lookup's scatter) are
    # summed before the table's one add
    assert set(dg.predecessors("embed.word.weight.grad_accum")) == {
        "head.logits.bwd_weight", "embed.word.bwd"}
    # one add per parameter of the shard: the adds cover the optimizer's elements
    assert sum(a.elements * a.count for a in adds) == sum(o.elements * o.count for o in opts)
    assert sep.total_flop() - fused.total_flop() == sum(a.flop * a.count for a in adds)
    with pytest.raises(WorkloadError, match="grad_accumulation.*fused, separate"):
        dataclasses.replace(spec, grad_accumulation="unfused")


def test_separate_bias_gradients_reduce_the_output_gradient_of_each_biased_gemm():
    """Megatron-LM 2021-2022 sums a linear layer's bias gradient from its output gradient
    in a reduction of its own (``grad_output.sum(dim=0)``); Transformer Engine does it in
    the GEMM's epilogue (the default: no operator)."""
    spec = workloads.model_spec("gpt2")  # biased QKV, out, fc1, fc2 and head-less layers
    fused = workloads.build(spec, batch=2, seq=128, tp=2)
    sep = workloads.build(dataclasses.replace(spec, bias_grad="separate"), batch=2, seq=128,
                          tp=2)
    assert not any(op.name.endswith(".bwd_bias") for op in fused.ops)
    red = {op.name: op for op in sep.ops if op.name.endswith(".bwd_bias")}
    biased = [op for op in sep.ops if op.kind == "gemm" and op.phase == "fwd"
              and op.name + ".bwd_bias" in red]
    assert {op.name for op in biased} >= {"layer.attn.qkv", "layer.attn.out", "layer.mlp.fc1",
                                          "layer.mlp.fc2"}
    dg = sep.nx()
    for g in biased:
        r = red[g.name + ".bwd_bias"]
        # reads the output gradient once (m·n·batch elements), writes the n·batch bias
        assert r.kind == "reduction" and r.phase == "bwd_weight"
        assert r.elements == g.m * g.n * g.batch and r.bytes_in == r.elements * 2
        assert r.bytes_out == g.n * g.batch * 2
        # the bias's optimizer step waits for it
        assert dg.has_edge(r.name, f"{g.name}.bias.adam")
    assert all(n.endswith(".bwd_bias") for n in {op.name for op in sep.ops}
               - {op.name for op in fused.ops})
    with pytest.raises(WorkloadError, match="bias_grad.*fused, separate"):
        dataclasses.replace(spec, bias_grad="epilogue")


def test_vector_ops_have_known_keys():
    for name in ("gptj", "llama3-8b", "bert-large", "resnet50", "mobilenetv2", "dlrm"):
        spec = workloads.model_spec(name)
        g = workloads.build(spec, batch=2, **({"seq": 16} if spec.has_seq else {}))
        for op in g.ops:
            if op.kind not in ("gemm", "collective", "embedding_gather"):
                assert op.vector_op in workloads.VECTOR_OPS, (name, op.name)
                assert math.isfinite(op.flop)


def test_fp32_cross_entropy_moves_megatrons_passes_over_the_logits():
    """Megatron-LM 2021-2022 computes the loss on ``output.float()``: the cast, max,
    ``sub_``, ``exp``, sum and ``div_`` forward (``db + 20`` B read, 16 B written per
    logit), the fp32 softmax kept (4 B), ``mul_`` and the cast back backward (8 B read,
    4 + ``db`` written); the fused default reads the 16-bit logits once."""
    spec = workloads.model_spec("gpt2")
    b, s, tp = 2, 128, 2
    fused = workloads.build(spec, batch=b, seq=s, tp=tp)
    f32 = workloads.build(dataclasses.replace(spec, cross_entropy="fp32"), batch=b, seq=s,
                          tp=tp)
    rows = b * s
    lf, l32 = (next(op for op in g.ops if op.name == "loss") for g in (fused, f32))
    bf, b32 = (next(op for op in g.ops if op.name == "loss.bwd") for g in (fused, f32))
    logits = lf.elements  # the tp shard of the (padded) vocabulary, every token
    assert l32.elements == logits and logits % rows == 0
    assert spec.vocab // tp <= logits // rows < spec.vocab // tp + 128
    assert lf.bytes_in == 2 * logits and l32.bytes_in == 22 * logits
    assert l32.bytes_out - lf.bytes_out == 16 * logits
    assert lf.stash_bytes == 2 * logits and l32.stash_bytes == 4 * logits
    assert b32.bytes_in == rows * 2 + 4 * logits + 4 * logits
    assert b32.bytes_out == 2 * logits + 4 * logits
    assert bf.bytes_in + bf.bytes_out + 10 * logits == b32.bytes_in + b32.bytes_out
    assert f32.total_flop() == fused.total_flop()
    # Megatron-Core's native fused form: cast+max, sub-exp-sum, divide forward; one kernel
    # backward that writes the fp32 softmax back multiplied and its 16-bit cast
    mc = workloads.build(dataclasses.replace(spec, cross_entropy="fp32_fused"), batch=b,
                         seq=s, tp=tp)
    lm = next(op for op in mc.ops if op.name == "loss")
    bm = next(op for op in mc.ops if op.name == "loss.bwd")
    assert lm.bytes_in == 10 * logits and lm.bytes_out - lf.bytes_out == 12 * logits
    assert lm.stash_bytes == 4 * logits
    assert bm.bytes_in == rows * 2 + 4 * logits and bm.bytes_out == 2 * logits + 4 * logits
    with pytest.raises(WorkloadError, match="cross_entropy.*fused, fp32, fp32_fused"):
        dataclasses.replace(spec, cross_entropy="fp16")
