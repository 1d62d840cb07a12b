"""ONNX import: models built with onnx.helper (no downloads); FLOPs equal hand counts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import workloads
from dse.errors import WorkloadError
from workloads.onnx_import import WorkloadWarning

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper


def _save(tmp_path: Path, name: str, nodes, inputs, outputs, inits) -> str:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    p = tmp_path / f"{name}.onnx"
    onnx.save(m, str(p))
    return str(p)


def _w(name: str, *shape: int):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _vi(name: str, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _fwd_gemms(g):
    return {op.name: op for op in g.ops if op.phase == "fwd" and op.kind == "gemm"}


def test_conv_and_depthwise_conv(tmp_path):
    p = _save(tmp_path, "convs", [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2],
                         group=16, name="dw"),
    ], [_vi("x", ["N", 3, 32, 32])], [_vi("y", ["N", 16, 16, 16])],
        [_w("w1", 16, 3, 3, 3), _w("w2", 16, 1, 3, 3)])
    n = 4
    g = workloads.load(p, batch=n)
    gm = _fwd_gemms(g)
    conv, dw = gm["conv"], gm["dw"]
    assert conv.flop == 2 * n * 16 * 32 * 32 * 3 * 3 * 3  # hand count: 2·N·K·P·Q·C·R·S
    assert (conv.m, conv.k, conv.n, conv.batch) == (n * 32 * 32, 27, 16, 1)
    assert dw.flop == 2 * n * 16 * 16 * 16 * 9            # one 3x3 filter per channel
    assert (dw.m, dw.k, dw.n, dw.batch) == (n * 16 * 16, 9, 1, 16)
    assert g.meta["params"] == 16 * 27 + 16 * 9
    assert "conv.bwd_data" not in g.index  # reads the graph input
    assert g.op("dw.bwd_data").flop == g.op("dw.bwd_weight").flop == dw.flop
    assert g.op("relu").elements == n * 16 * 32 * 32


def test_gemm_matmul_and_bias(tmp_path):
    p = _save(tmp_path, "mlp", [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("Reshape", ["a", "shape"], ["a3"], name="view"),
        helper.make_node("MatMul", ["a3", "w2"], ["y"], name="fc2"),
    ], [_vi("x", ["B", 64])], [_vi("y", ["B", 4, 8])],
        [_w("w1", 128, 64), _w("b1", 128), _w("w2", 32, 8),
         numpy_helper.from_array(np.array([0, 4, 32], np.int64), "shape")])
    b = 3
    g = workloads.load(p, batch=b)
    gm = _fwd_gemms(g)
    assert gm["fc1"].flop == 2 * b * 64 * 128
    assert (gm["fc1"].m, gm["fc1"].k, gm["fc1"].n) == (b, 64, 128)
    assert gm["fc2"].flop == 2 * b * 4 * 32 * 8  # leading dims folded into m
    assert gm["fc2"].m == b * 4
    assert g.meta["params"] == 128 * 64 + 128 + 32 * 8
    assert sum(op.params for op in g.ops if op.phase == "optimizer") == g.meta["params"]
    assert "view" not in g.index  # layout ops cost nothing
    assert g.nx().has_edge("act", "fc2")


def test_attention_like_subgraph(tmp_path):
    t, d = 16, 32
    p = _save(tmp_path, "attn", [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["pr"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["pr", "v"], ["o"], name="context"),
        helper.make_node("LayerNormalization", ["o", "g", "bt"], ["y"], axis=-1, name="ln"),
    ], [_vi("x", ["N", t, d])], [_vi("y", ["N", t, d])],
        [_w("wq", d, d), _w("wk", d, d), _w("wv", d, d), _w("g", d), _w("bt", d)])
    n = 2
    g = workloads.load(p, batch=n)
    gm = _fwd_gemms(g)
    proj = 3 * 2 * n * t * d * d
    att = 2 * n * t * d * t + 2 * n * t * t * d
    hand = proj + att
    assert sum(op.flop for op in gm.values()) == hand
    s, c = gm["scores"], gm["context"]
    assert (s.m, s.k, s.n, s.batch) == (t, d, t, n)
    assert (c.m, c.k, c.n, c.batch) == (t, t, d, n)
    assert g.op("softmax").elements == n * t * t
    assert g.op("scores.bwd_data_a").flop == g.op("scores.bwd_data_b").flop == s.flop
    # x is the graph input: no gradient is computed for it
    assert not {"q.bwd_data", "k.bwd_data", "v.bwd_data"} & set(g.index)
    assert {"q.bwd_weight", "k.bwd_weight", "v.bwd_weight"} <= set(g.index)
    assert g.op("ln").kind == "norm" and g.op("ln").params == 2 * d
    gemm_bwd = sum(op.flop for op in g.ops if op.kind == "gemm" and op.phase != "fwd")
    assert gemm_bwd == proj + 2 * att  # weight gradients only for the projections


def test_cnn_ops_pooling_batchnorm_and_embedding_gather(tmp_path):
    p = _save(tmp_path, "mix", [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "var"], ["bn"], name="bn"),
        helper.make_node("MaxPool", ["bn"], ["mp"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("GlobalAveragePool", ["mp"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["y"], name="flat"),
    ], [_vi("x", ["N", 3, 8, 8])], [_vi("y", ["N", 4])],
        [_w("w", 4, 3, 3, 3), _w("s", 4), _w("b", 4), _w("mu", 4), _w("var", 4)])
    g = workloads.load(p, batch=2)
    assert g.op("bn").vector_op == "batchnorm"
    # BatchNorm's scale and bias are trained; running mean/var too are float initializers
    # of the file, so they count in the file's parameters but are not BN's tensors
    assert g.op("bn").params == 8
    assert g.op("pool").vector_op == "maxpool" and g.op("pool").elements == 2 * 4 * 4 * 4
    assert g.op("pool").flop == 2 * 4 * 4 * 4 * 3  # (window − 1) comparisons per output
    assert g.op("gap").elements == 2 * 4

    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 6])
    p2 = _save(tmp_path, "emb", [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
        helper.make_node("MatMul", ["e", "w"], ["y"], name="proj"),
    ], [ids], [_vi("y", ["N", 6, 5])], [_w("table", 100, 8), _w("w", 8, 5)])
    g2 = workloads.load(p2, batch=3)
    e = g2.op("embed")
    assert e.kind == "embedding_gather" and e.elements == 3 * 6 * 8
    assert g2.op("embed.bwd").kind == "embedding_scatter"
    assert g2.op("embed.bwd").bytes_out == 3 * 6 * 8 * 2  # looked-up rows only


def test_unknown_ops_warn_once_listing_them(tmp_path):
    p = _save(tmp_path, "odd", [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
        helper.make_node("Celu", ["h"], ["a"], name="celu"),
        helper.make_node("Softsign", ["a"], ["b"], name="softsign"),
        helper.make_node("Celu", ["b"], ["y"], name="celu2"),
    ], [_vi("x", ["N", 8])], [_vi("y", ["N", 4])], [_w("w", 8, 4)])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = workloads.load(p, batch=2)
    msgs = [str(w.message) for w in rec if issubclass(w.category, WorkloadWarning)]
    assert len(msgs) == 1 and "Celu, Softsign" in msgs[0]
    assert g.op("celu").vector_op == "generic" and g.op("celu").elements == 8


def test_batch_defaults_and_fixed_batches(tmp_path):
    p = _save(tmp_path, "fixed", [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
              [_vi("x", [5, 8])], [_vi("y", [5, 4])], [_w("w", 8, 4)])
    spec = workloads.model_spec(p)
    assert spec.family == "onnx" and spec.default_batch == 5
    assert workloads.build(spec).meta["batch"] == 5
    with pytest.raises(WorkloadError, match="batch dimension is fixed at 5"):
        workloads.build(spec, batch=2)


@pytest.mark.parametrize("content", [b"", b"hello, not onnx", None])
def test_non_onnx_and_truncated_files(tmp_path, content):
    good = _save(tmp_path, "ok", [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
                 [_vi("x", ["N", 8])], [_vi("y", ["N", 4])], [_w("w", 8, 4)])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(Path(good).read_bytes()[:60] if content is None else content)
    with pytest.raises(WorkloadError, match=r"bad\.onnx: not a valid ONNX model"):
        workloads.load(str(bad))


def test_missing_onnx_file():
    with pytest.raises(WorkloadError, match="no such file"):
        workloads.load("/nonexistent/model.onnx")
