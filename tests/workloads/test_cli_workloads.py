"""``dse workloads list|show`` through ``dse.cli.main`` (exit codes, one-line errors, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dse.cli import main

DATA = Path(__file__).parent / "data" / "hf"
CONTRACT = ("name", "family", "params", "fwd_flop_per_sample", "train_flop_per_sample",
            "num_ops")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(capsys):
    code, out, err = _run(capsys, "workloads", "list", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    rows = {r["name"]: r for r in data["workloads"]}
    assert rows["gptj"]["family"] == "transformer"
    assert rows["dlrm"]["params"] == 187_767_399 * 128 + 2_368_897
    assert rows["resnet50"]["default_seq"] is None


def test_list_table(capsys):
    code, out, _ = _run(capsys, "workloads", "list")
    assert code == 0
    assert "gptj" in out and "transformer" in out and "6.051 G" in out


def test_show_gptj_json_contract(capsys):
    code, out, err = _run(capsys, "workloads", "show", "gptj", "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    for k in CONTRACT + ("seq_len",):
        assert k in d
    assert d["name"] == "gptj" and d["family"] == "transformer"
    assert d["active_params"] == d["params"]  # dense: every parameter is active
    assert abs(d["params"] / 6_053_381_344 - 1) < 1e-3
    assert d["seq_len"] == 2048
    n, t = d["params"], 2048
    # fused causal attention: 4 + 10 FLOPs per head dimension and score on or below the
    # diagonal (PaLM's 12·L·H·Q·T² counts the full matrix of unfused attention)
    fused = (6 * n + 7 * 28 * 16 * 256 * (t + 1)) * t
    assert abs(d["train_flop_per_sample"] / fused - 1) < 0.05
    assert d["attention"] == "fused"
    assert d["num_ops"] > d["num_unique_ops"]


def test_show_overrides_and_ops(capsys):
    code, out, _ = _run(capsys, "workloads", "show", "gpt2", "--batch", "2", "--seq", "64",
                        "--ops", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["batch"] == 2 and d["seq_len"] == 64
    ops = {o["name"]: o for o in d["ops"]}
    assert ops["layer.attn.qkv"]["m"] == 128 and ops["layer.attn.qkv"]["count"] == 12
    assert len(d["ops"]) == d["num_unique_ops"]


def test_show_table(capsys):
    code, out, _ = _run(capsys, "workloads", "show", "resnet50", "--batch", "2")
    assert code == 0
    assert "resnet50 (cnn)" in out and "25,557,032" in out and "seq_len" not in out


def test_show_cnn_has_no_seq_len(capsys):
    code, out, _ = _run(capsys, "workloads", "show", "resnet50", "--json", "--batch", "1")
    assert code == 0
    d = json.loads(out)
    assert "seq_len" not in d
    assert 3.8e9 <= d["fwd_flop_per_sample"] / 2 <= 4.2e9  # GEMM MACs plus BN/ReLU/pool


def test_show_hf_config_path(capsys):
    code, out, _ = _run(capsys, "workloads", "show", str(DATA / "llama-3-8b" / "config.json"),
                        "--seq", "128", "--batch", "1", "--json")
    assert code == 0
    assert json.loads(out)["params"] == 8_030_261_248


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    # nothing on stdout, or with --json the error as one object
    assert out == "" or json.loads(out)["error"]["exit_code"] == 2
    assert err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    return err


def test_unknown_workload(capsys):
    err = _one_line_error(*_run(capsys, "workloads", "show", "gpt5", "--json"))
    assert "unknown workload 'gpt5'" in err and "gptj" in err and "resnet50" in err


def test_malformed_config_json(capsys, tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "llama", "hidden_size": 4096,')
    err = _one_line_error(*_run(capsys, "workloads", "show", str(p)))
    assert str(p) in err and "malformed JSON" in err


def test_missing_field_in_config_json(capsys, tmp_path):
    data = json.loads((DATA / "gpt2" / "config.json").read_text())
    del data["n_head"]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(data))
    err = _one_line_error(*_run(capsys, "workloads", "show", str(p)))
    assert str(p) in err and "'n_head' is missing" in err


@pytest.mark.parametrize("content", [b"\x08\x07garbage", b"not an onnx file at all"])
def test_truncated_or_non_onnx(capsys, tmp_path, content):
    p = tmp_path / "model.onnx"
    p.write_bytes(content)
    err = _one_line_error(*_run(capsys, "workloads", "show", str(p)))
    assert str(p) in err and "not a valid ONNX model" in err


def test_seq_for_cnn_and_bad_batch(capsys):
    err = _one_line_error(*_run(capsys, "workloads", "show", "resnet50", "--seq", "128"))
    assert "does not apply" in err
    err = _one_line_error(*_run(capsys, "workloads", "show", "gpt2", "--batch", "0"))
    assert "--batch" in err


def test_missing_action(capsys):
    err = _one_line_error(*_run(capsys, "workloads"))
    assert "list, show" in err


def test_onnx_warning_is_one_stderr_line(capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Celu", ["h"], ["y"])],
        "odd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.zeros((8, 4), np.float32), "w")])
    p = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    code, out, err = _run(capsys, "workloads", "show", str(p), "--batch", "2", "--json")
    assert code == 0
    assert json.loads(out)["family"] == "onnx"
    assert err.count("\n") == 1 and err.startswith("dse: warning:") and "Celu" in err
