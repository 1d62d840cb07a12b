"""Acceptance numbers of issue 2 for the model zoo (published parameter counts and FLOPs)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import workloads
from dse.errors import WorkloadError
from workloads.spec import TransformerSpec

ISSUE_ZOO = ("gpt2", "gpt2-xl", "gptj", "gpt3-175b", "llama2-7b", "llama3-8b", "bert-base",
             "bert-large", "resnet50", "vgg16", "mobilenetv2", "gnmt", "dlrm", "dlrm-kaggle")


def test_zoo_has_the_issue_workloads_each_with_a_source():
    names = workloads.zoo_names()
    assert set(ISSUE_ZOO) <= set(names)
    for n in names:
        spec = workloads.model_spec(n)
        assert spec.name == n
        assert len(spec.source) > 10, f"{n} has no source citation"
        assert spec.default_batch >= 1


@pytest.mark.parametrize("name", ISSUE_ZOO)
def test_every_issue_workload_builds_with_meta(name):
    spec = workloads.model_spec(name)
    small = {"batch": 2}
    if spec.has_seq:
        small["seq"] = 16
    g = workloads.build(spec, **small)
    for k in ("family", "params", "seq_len", "batch", "fwd_flop_per_sample",
              "train_flop_per_sample"):
        assert k in g.meta
    assert g.meta["params"] == spec.params
    assert g.meta["train_flop_per_sample"] > 2 * g.meta["fwd_flop_per_sample"] > 0


def test_gptj_params_and_train_flops_match_the_model_card_and_palm_formula():
    spec = workloads.model_spec("gptj")
    # HF GPTJForCausalLM counts 6,050,882,784; the model card's 6,053,381,344 also counts
    # mesh-transformer-jax's 8 shard replicas of LayerNorms/biases (docs/workloads.md)
    assert spec.params == 6_050_882_784
    assert abs(spec.params / 6_053_381_344 - 1) < 1e-3
    # PaLM's formula counts the full score matrix of materialized (unfused) attention
    g = workloads.build(dataclasses.replace(spec, attention="unfused"), batch=1, seq=2048)
    n, layers, heads, q, t = spec.params, 28, 16, 256, 2048
    palm = (6 * n + 12 * layers * heads * q * t) * t
    assert abs(g.meta["train_flop_per_sample"] / palm - 1) < 0.05
    # GEMM-only training FLOPs equal 6·(N − embedding)·T + 12·L·H·Q·T² exactly: the
    # embedding is a gather, not a GEMM
    n_gemm = n - spec.vocab * spec.hidden - 28 * 2 * 4096 - 2 * 4096 - spec.vocab
    gemm_train = sum(op.total_flop for op in g.ops if op.kind == "gemm")
    # minus biases and norms (not GEMM weights) are O(L·h), negligible relative to 1e-3
    assert gemm_train == pytest.approx((6 * n_gemm + 12 * layers * heads * q * t) * t,
                                       rel=1e-3)
    # fused (FlashAttention) causal attention computes the T(T+1)/2 scores on or below the
    # diagonal: 4·Q forward and 10·Q backward (the recomputed QKᵀ included) per score
    fused = workloads.build(spec, batch=1, seq=2048)
    assert sum(op.total_flop for op in fused.ops if op.kind == "gemm") == pytest.approx(
        6 * n_gemm * t, rel=1e-3)
    assert sum(op.total_flop for op in fused.ops if op.kind == "attention") == \
        pytest.approx(14 * layers * heads * q * t * (t + 1) / 2, rel=1e-12)


def test_dlrm_mlperf_rows_and_mlp_params():
    spec = workloads.model_spec("dlrm")
    assert len(spec.tables) == 26 and spec.dim == 128
    assert spec.embedding_rows == 187_767_399
    assert spec.mlp_params == 2_368_897
    assert spec.interaction_dim == 479
    g = workloads.build(spec, batch=2048)
    assert g.meta["embedding_rows"] == 187_767_399
    assert g.meta["mlp_params"] == 2_368_897


def test_dlrm_kaggle_config():
    spec = workloads.model_spec("dlrm-kaggle")
    assert spec.embedding_rows == 33_762_577
    assert spec.interaction_dim == 367  # ln_top[0] of the reference configuration
    assert spec.bottom_mlp == (13, 512, 256, 64, 16) and spec.top_mlp == (512, 256, 1)


def test_dlrm_embedding_backward_is_sparse():
    g = workloads.build(workloads.model_spec("dlrm"), batch=2048)
    big = g.op("emb0.bwd")  # table of 39,884,406 rows
    assert big.kind == "embedding_scatter" and big.phase == "bwd_weight"
    assert big.bytes_out == 2048 * 128 * 2  # looked-up rows only, never the table
    opt = g.op("emb0.weight.adam")
    assert opt.params == 2048 * 128
    assert g.op("emb5.weight.adam").params == 3 * 128  # 3-row table: min(rows, lookups)


def test_resnet50_params_and_macs():
    spec = workloads.model_spec("resnet50")
    assert abs(spec.params / 25.56e6 - 1) < 0.01
    assert spec.params == 25_557_032  # torchvision resnet50
    g = workloads.build(spec, batch=1)
    macs = g.meta["fwd_gemm_flop_per_sample"] / 2
    assert 3.8e9 <= macs <= 4.1e9


def test_other_cnns_match_torchvision():
    assert workloads.model_spec("vgg16").params == 138_357_544
    assert workloads.model_spec("mobilenetv2").params == 3_504_872
    g = workloads.build(workloads.model_spec("vgg16"), batch=1)
    assert g.meta["fwd_gemm_flop_per_sample"] / 2 == pytest.approx(15.47e9, rel=0.01)
    g = workloads.build(workloads.model_spec("mobilenetv2"), batch=1)
    assert g.meta["fwd_gemm_flop_per_sample"] / 2 == pytest.approx(300e6, rel=0.01)


def test_mobilenetv2_has_depthwise_convs():
    g = workloads.build(workloads.model_spec("mobilenetv2"), batch=2)
    dw = [op for op in g.ops if op.name.endswith(".dw") and op.phase == "fwd"]
    assert dw
    for op in dw:
        assert op.n == 1 and op.k == 9 and op.batch > 1  # one 3x3 filter per channel


def test_bert_params():
    assert 335e6 <= workloads.model_spec("bert-large").params <= 340e6
    assert workloads.model_spec("bert-large").params == 336_226_108  # BertForPreTraining
    assert workloads.model_spec("bert-base").params == 110_106_428


def test_llm_params_match_hf():
    assert workloads.model_spec("gpt2").params == 124_439_808
    assert workloads.model_spec("gpt2-xl").params == 1_557_611_200
    assert workloads.model_spec("llama2-7b").params == 6_738_415_616
    assert workloads.model_spec("llama3-8b").params == 8_030_261_248
    # Llama 3: 70.55 B and 405.85 B (HF model cards' safetensors totals)
    assert workloads.model_spec("llama3-70b").params == 70_553_706_496
    assert workloads.model_spec("llama3-405b").params == 405_853_388_800


@pytest.mark.parametrize("name,label", [
    ("megatron-1.7b", 1.7e9), ("megatron-3.6b", 3.6e9), ("megatron-7.5b", 7.5e9),
    ("megatron-18b", 18.4e9), ("megatron-39b", 39.1e9), ("megatron-76b", 76.1e9),
    ("megatron-145b", 145.6e9), ("megatron-310b", 310.1e9), ("megatron-530b", 529.6e9),
    ("megatron-1t", 1008.0e9), ("megatron-22b", 22.1e9), ("gpt3-175b", 174.6e9),
])
def test_megatron_sizes_match_narayanan_eq2(name, label):
    s = workloads.model_spec(name)
    assert isinstance(s, TransformerSpec)
    l_, h, v, sq = s.layers, s.hidden, s.vocab, s.max_positions
    eq2 = 12 * l_ * h * h * (1 + 13 / (12 * h) + (v + sq) / (12 * l_ * h))
    # Eq. 2 omits the final LayerNorm (2h): otherwise exact
    assert s.params == pytest.approx(eq2 + 2 * h, rel=1e-12)
    assert round(s.params / 1e9, 1) == pytest.approx(label / 1e9, abs=0.051)


@pytest.mark.parametrize("tp,sp", [(1, False), (8, False), (8, True), (4, False), (2, True)])
def test_stash_matches_korthikanti(tp, sp):
    """Activation bytes kept per layer = Korthikanti et al. 2022 Table 2, exactly."""
    fused = workloads.model_spec("gpt3-175b")
    s = dataclasses.replace(fused, attention="unfused")  # Korthikanti's materialized scores
    b, sq, h, a = 2, 2048, s.hidden, s.heads
    g = workloads.build(s, batch=b, seq=sq, tp=tp, sequence_parallel=sp)
    if tp == 1:
        want = sq * b * h * (34 + 5 * a * sq / h)
    elif sp:
        want = sq * b * h / tp * (34 + 5 * a * sq / h)
    else:
        want = sq * b * h * (10 + 24 / tp + 5 * a * sq / (h * tp))
    assert g.meta["stash_bytes_per_layer"] == pytest.approx(want, rel=1e-12)
    # fused attention: no 5as²b score terms, the fp32 log-sum-exp (4 B per row and head)
    gf = workloads.build(fused, batch=b, seq=sq, tp=tp, sequence_parallel=sp)
    score = 5 * a * sq * sq * b / tp
    assert gf.meta["stash_bytes_per_layer"] == pytest.approx(want - score + 4 * a * sq * b / tp,
                                                             rel=1e-12)
    # ... which is what the memory model charges
    from cost_models.memory import activation_bytes_per_layer
    assert activation_bytes_per_layer(seq=sq, micro_batch=b, hidden=h, heads=a, tp=tp,
                                      sequence_parallel=sp, fused_attention=True) == \
        pytest.approx(gf.meta["stash_bytes_per_layer"], rel=1e-12)


def test_stash_without_dropout_drops_masks_and_duplicates():
    """Without dropout the two 1-byte residual masks (2sbh), the attention mask (as²b)
    and the dropout output (2as²b; AV reads the saved softmax output) disappear."""
    s = workloads.model_spec("gpt2")
    nodrop = dataclasses.replace(s, dropout=False, attention="unfused")
    b, sq, h, a = 1, 1024, s.hidden, s.heads
    g = workloads.build(nodrop, batch=b, seq=sq)
    # no dropout: no masks (sbh + sbh + as²b) and no dropout output (2as²b)
    want = sq * b * h * (34 - 2) + 5 * a * sq * sq * b - 3 * a * sq * sq * b
    assert g.meta["stash_bytes_per_layer"] == pytest.approx(want, rel=1e-12)
    fused = workloads.build(dataclasses.replace(nodrop, attention="fused"), batch=b, seq=sq)
    assert fused.meta["stash_bytes_per_layer"] == pytest.approx(
        sq * b * h * (34 - 2) + 4 * a * sq * b, rel=1e-12)


def test_repeated_blocks_cost_the_same_to_build():
    s = workloads.model_spec("gpt3-175b")
    g96 = workloads.build(s, batch=1, seq=128)
    g1 = workloads.build(dataclasses.replace(s, layers=1), batch=1, seq=128)
    assert len(g96.ops) == len(g1.ops)
    layer_ops = [op for op in g96.ops if op.block == "layer"]
    assert layer_ops and all(op.count == 96 for op in layer_ops)
    assert g96.num_ops - g1.num_ops == 95 * len(layer_ops)


def test_unknown_workload_lists_valid_names():
    with pytest.raises(WorkloadError, match="unknown workload 'gpt5'; valid: .*gptj"):
        workloads.model_spec("gpt5")


def test_seq_for_a_family_without_sequence_is_rejected():
    with pytest.raises(WorkloadError, match="does not apply"):
        workloads.load("resnet50", batch=1, seq=128)


def test_learned_positions_bound_the_sequence():
    with pytest.raises(WorkloadError, match="max_positions=1024"):
        workloads.load("gpt2", batch=1, seq=2048)


def test_tp_for_non_transformers_is_rejected():
    with pytest.raises(WorkloadError, match="transformer families only"):
        workloads.build(workloads.model_spec("resnet50"), batch=1, tp=2)


def test_gnmt_structure():
    spec = workloads.model_spec("gnmt")
    g = workloads.build(spec, batch=4, seq=10)
    names = {op.name for op in g.ops}
    assert {"enc.l1.fwd.rec", "enc.l1.bwd.rec", "enc.l8.rec", "dec.l8.rec",
            "dec.attn.context", "dec.classifier"} <= names
    rec = g.op("enc.l3.rec")
    assert (rec.m, rec.k, rec.n, rec.count) == (4, 1024, 4096, 10)
    wg = g.op("enc.l3.rec.bwd_weight")  # one weight-gradient GEMM over all steps
    assert (wg.m, wg.k, wg.n, wg.count) == (1024, 40, 4096, 1)
    assert wg.total_flop == rec.total_flop
    assert g.op("enc.l3.rec.weight.adam").count == 1  # shared weights updated once
    assert g.op("enc.l2.x_proj").k == 2048  # after the bidirectional layer
    assert g.op("dec.l2.x_proj").k == 2048  # input concatenated with the attention context
    assert g.meta["shard_params"] == spec.params


# ---------------------------------------------------------------- mixture of experts
@pytest.mark.parametrize("name,params,active", [
    # Mixtral 8x7B: the model card's 46,702,792,704; 12.9 B active (Jiang et al. 2024)
    ("mixtral-8x7b", 46_702_792_704, 12_879_925_248),
    # DeepSeek-V3 without its MTP module: "671B total, 37B activated" (report §1); the
    # exact counts follow from config_671B.json (checked term by term below)
    ("deepseek-v3", 671_026_419_200, 37_552_297_472),
    # Qwen3 MoE: "30.5B / 3.3B activated" and "235B / 22B activated" (Qwen3 technical
    # report Table 2); by hand in test_qwen3_moe_counts_by_hand
    ("qwen3-30b-a3b", 30_532_122_624, 3_353_032_704),
    ("qwen3-235b-a22b", 235_093_634_560, 22_190_763_520),
])
def test_moe_parameter_counts_are_exact(name, params, active):
    spec = workloads.model_spec(name)
    assert (spec.params, spec.active_params) == (params, active)
    g = workloads.build(spec, batch=1, seq=64)
    # the graph also trains the multi-token-prediction modules, counted apart
    assert sum(op.params * op.count for op in g.ops if op.phase == "fwd") == \
        params + spec.mtp_params
    assert g.meta["active_params"] == active
    if name == "deepseek-v3":
        assert round(params / 1e9) == 671 and round(active / 1e9) == 38
        # one MTP module: an MoE layer, the 2h -> h projection and three RMSNorms; with
        # the model's embedding and head copies the checkpoint's 684.5 B (HF index)
        h = 7168
        assert spec.mtp_layers == 1
        assert spec.mtp_params == spec.layer_params() + 2 * h * h + 3 * h == 11_610_068_224
        assert params + spec.mtp_params + 2 * 129280 * h == 684_489_845_504


@pytest.mark.parametrize("name,h,L,heads,kv,f,card", [
    ("qwen3-30b-a3b", 2048, 48, 32, 4, 768, (30.5, 3.3)),
    ("qwen3-235b-a22b", 4096, 94, 64, 4, 1536, (235, 22)),
])
def test_qwen3_moe_counts_by_hand(name, h, L, heads, kv, f, card):
    """HF Qwen3MoeForCausalLM shapes: q/k/v/o projections, q_norm and k_norm (128 each),
    the router (h × 128), 128 SwiGLU experts, two RMSNorms; untied embedding and head."""
    d, e, k, v = 128, 128, 8, 151936
    attn = h * heads * d + 2 * h * kv * d + 2 * d + heads * d * h
    expert = 3 * h * f
    total = 2 * v * h + h + L * (attn + h * e + e * expert + 2 * h)
    active = 2 * v * h + h + L * (attn + h * e + k * expert + 2 * h)
    spec = workloads.model_spec(name)
    assert (spec.params, spec.active_params) == (total, active)
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == pytest.approx(card, abs=0.51)


def test_deepseek_v3_count_term_by_term():
    """config_671B.json, module by module (HF modeling_deepseek.py shapes)."""
    h, v, L, dense, e, fe, f = 7168, 129280, 61, 3, 256, 2048, 18432
    heads, ql, kl, nope, rope, dv = 128, 1536, 512, 128, 64, 128
    attn = (h * ql + ql + ql * heads * (nope + rope)          # q_a_proj, q_a_layernorm, q_b_proj
            + h * (kl + rope) + kl + kl * heads * (nope + dv)  # kv_a_proj_with_mqa, norm, kv_b
            + heads * dv * h)                                  # o_proj
    mlp = 3 * h * f
    moe = e * h + e + e * 3 * h * fe + 3 * h * fe             # gate, its bias, experts, shared
    total = 2 * v * h + h + L * (attn + 2 * h) + dense * mlp + (L - dense) * moe
    assert workloads.model_spec("deepseek-v3").params == total


def test_moe_graph_is_one_expert_parallel_rank():
    """ep ranks hold experts/ep experts each: their expert parameters add up to the model's;
    the dispatch and combine all-to-alls appear with ep > 1, forward and backward."""
    spec = workloads.model_spec("mixtral-8x7b")
    one = workloads.build(spec, batch=1, seq=128)
    four = workloads.build(spec, batch=1, seq=128, ep=4)

    def expert_params(g):
        return sum(op.params * op.count for op in g.ops
                   if op.phase == "fwd" and ".moe.experts." in op.name)

    assert 4 * expert_params(four) == expert_params(one) == 32 * 8 * 3 * 4096 * 14336
    a2a = [op for op in four.ops if op.kind == "collective" and op.collective == "all_to_all"]
    assert {op.group for op in a2a} == {"ep"} and len(a2a) == 4  # dispatch, combine × fwd, bwd
    # every rank sends its tokens' k expert rows: b·s·k·h bf16 values
    assert {op.comm_bytes for op in a2a} == {128 * 2 * 4096 * 2}
    assert not [op for op in one.ops if op.collective == "all_to_all"]
    # the same expert work per rank: tokens·k rows spread over the local experts
    fc1 = [op for op in four.ops if op.name.endswith("moe.experts.fc1")][0]
    assert fc1.m * fc1.batch == 128 * 2 and fc1.batch == 2


def test_moe_load_imbalance_and_capacity_scale_the_busiest_rank():
    import dataclasses

    spec = workloads.model_spec("mixtral-8x7b")
    hot = dataclasses.replace(spec, load_imbalance=1.5)
    capped = dataclasses.replace(spec, load_imbalance=1.5, capacity_factor=1.25)

    def rows(s):
        g = workloads.build(s, batch=1, seq=128, ep=8)
        op = [o for o in g.ops if o.name.endswith("moe.experts.fc1")][0]
        return op.m * op.batch

    assert (rows(spec), rows(hot), rows(capped)) == (256, 384, 320)


def test_deepseek_v3_dense_prefix_is_its_own_block():
    spec = workloads.model_spec("deepseek-v3")
    g = workloads.build(spec, batch=1, seq=64, layers=(1, 5))
    counts = {op.block: op.count for op in g.ops if op.phase == "fwd" and op.block}
    assert counts == {"dense_layer": 2, "layer": 2, "mtp": 1}  # MTP on the last stage
    mid = workloads.build(spec, batch=1, seq=64, layers=(1, 5), last_stage=False)
    assert "mtp" not in {op.block for op in mid.ops}
    # MLA: the low-rank projections and the key/value latent norm exist
    names = {op.name for op in g.ops}
    assert {"dense.attn.q_down", "layer.attn.kv_up", "layer.moe.router"} <= names


# ---------------------------------------------------------------- DLRM sharded
def test_dlrm_tables_are_sharded_once_over_the_devices():
    from workloads.dlrm import shard_tables

    spec = workloads.model_spec("dlrm")
    d = spec.dim
    for n, b in ((2, 1024), (8, 6912), (16, 256), (64, 1120), (112, 640)):
        plan = shard_tables(spec, n, node=8, batch=b)
        held = [0] * len(spec.tables)
        for dev in plan.devices:
            for sh in dev:
                assert sh.kind == plan.kinds[sh.table]
                if sh.kind != "dp":
                    held[sh.table] += sh.rows * sh.dim
        for i, r in enumerate(spec.tables):
            if plan.kinds[i] == "dp":   # a replica on every device
                assert sum(sh.table == i for dev in plan.devices for sh in dev) == n
            else:                       # every row and column once (row shards rounded up)
                assert r * d <= held[i] < (r + n) * d
        # the memory balance: no device above its fair share plus a node share of the
        # largest table
        cap = sum(spec.tables) * d / n + max(spec.tables) * d / min(8, n)
        assert max(sum(sh.rows * sh.dim for sh in dev if sh.kind != "dp")
                   for dev in plan.devices) <= cap
        assert plan.load[plan.busiest] == max(plan.load)


def test_dlrm_planner_replicates_tiny_tables_and_spreads_the_big_ones():
    """Tiny tables are data parallel (a 3-row table's gradient all-reduce is less than its
    pooled outputs); across nodes no table is row-wise over every device (every device
    would reduce-scatter the whole step's partial sums), the busiest NIC carries less
    than half of what one whole table-wise table sends, and the loads are balanced."""
    from workloads.dlrm import plan_tables, shard_tables

    spec = workloads.model_spec("dlrm")
    for n, b in ((8, 6912), (64, 1120), (112, 640)):
        plan = shard_tables(spec, n, node=8, batch=b)
        assert plan.kinds[spec.tables.index(3)] == "dp"
        assert plan.kinds[spec.tables.index(39979771)] != "dp"
        if n > 8:
            assert "rw" not in plan.kinds
            tw_one = 2 * n * b * spec.dim * 2 * (n - 8) / n   # fwd + bwd, through the NIC
            assert max(plan.load) < tw_one / 2
        # and the exchange is balanced: the busiest device within 10 % of the mean
        assert max(plan.load) <= 1.1 * sum(plan.load) / n
    # one table on two nodes: table-row-wise (rows over a node, 1/8 of the sums cross)
    # beats table-wise (all of them leave one port)
    one = plan_tables((10**6,), 128, 16, node=8, batch=4096)
    assert one.kinds == ("twrw",) or one.kinds == ("cw",)
    # one device: everything whole, no exchange
    assert set(plan_tables((5, 10**6), 128, 1).kinds) == {"tw"}


def test_dlrm_device_graph_exchanges_embeddings_by_all_to_all():
    from workloads.dlrm import shard_tables

    spec = workloads.model_spec("dlrm")
    d, b = spec.dim, 1120
    for n in (8, 64):
        g = workloads.build(spec, batch=b, shards=n)
        plan = shard_tables(spec, n, node=8, batch=b)
        mine = plan.devices[plan.busiest]
        emb = {op.name: op for op in g.ops if op.kind == "embedding_gather"}
        assert len(emb) == len(mine)
        comm = {op.name: op for op in g.ops if op.kind == "collective" and op.phase == "comm"
                and not op.fwd}
        pooled = [sh for sh in mine if sh.kind in ("tw", "cw")]
        if pooled:  # pooled embeddings of the owned columns for every sample, 2 B each
            assert comm["emb.output_dist"].comm_bytes == n * b * sum(sh.dim for sh in pooled) * 2
            assert comm["emb.output_dist"].collective == "all_to_all"
        for sh in mine:
            if sh.kind == "twrw":   # partial sums reduce-scattered in the node, 1/8 across
                rs, out = comm[f"emb{sh.table}.reduce_scatter"], comm[f"emb{sh.table}.output_dist"]
                assert (rs.group, rs.collective, rs.comm_bytes) == (
                    "dp_intra", "reduce_scatter", n * b * d * 2)
                assert (out.group, out.collective, out.comm_bytes) == (
                    "dp_inter", "all_to_all", n * b * d * 2 / 8)
            if sh.kind == "dp":     # a replica looks up only the device's own samples
                assert emb[f"emb{sh.table}"].elements == b * d
        assert g.meta["model_parallel_params"] == sum(sh.rows * sh.dim for sh in mine
                                                      if sh.kind != "dp")
        assert g.meta["replicated_embedding_params"] == sum(
            r * d for r, k in zip(spec.tables, plan.kinds) if k == "dp")
        # the dense MLPs stay whole (data parallel)
        mlp = sum(op.params for op in g.ops if op.phase == "fwd" and op.kind == "gemm")
        assert mlp == spec.mlp_params


def test_dlrm_on_8_devices_fits_80_gb_and_reports_the_embedding_exchange(capsys):
    from dse.cli import main

    assert main(["evaluate", "--workload", "dlrm", "--hardware", "a100", "--devices", "8",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits_memory"] and out["memory_per_device_bytes"] < 80e9
    assert out["plan"]["micro_batch"] == 256     # no gradient accumulation
    comm = out["breakdown"]["comm_s"]
    assert comm["embedding_s"] > 0 and comm["tp_s"] == 0
