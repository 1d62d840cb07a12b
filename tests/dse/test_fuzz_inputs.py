"""Fuzzing the readers of user files: arbitrary bytes, JSON and YAML into the config
loader (:func:`dse.config.load_mapping`), the hardware preset loader
(:func:`cost_models.presets.load_preset`) and the workload importers
(:func:`workloads.load` for HF ``config.json`` and ``.onnx`` files), plus arbitrary
``--storage`` strings. The only exceptions that may escape are :class:`DSEError`
subclasses (the CLI turns those into one line and an exit code).

Deterministic (``derandomize=True``) and moderate in examples, for CI.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.errors import DSEError

FUZZ = settings(derandomize=True, deadline=None, max_examples=60, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def _file(name: str, data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dse-fuzz-") as d:
        p = Path(d) / name
        p.write_bytes(data)
        yield p


def _only_dse_errors(fn: Callable[[], Any]) -> None:
    """Run ``fn``; a DSEError (with a message) is an accepted outcome, any other
    exception escapes and fails the test."""
    try:
        fn()
    except DSEError as e:
        assert str(e).strip(), f"{type(e).__name__} with an empty message"


# ----------------------------------------------------------------------- strategies

_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=5)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=5),
                           max_leaves=25)


def _json_bytes(v: Any) -> bytes:
    return json.dumps(v, allow_nan=True).encode()


_num = (st.integers(-5, 5) | st.integers(-(2**64), 2**64) | st.sampled_from([0, 1, 2, 3, 64])
        | st.floats(allow_nan=True, allow_infinity=True) | st.none() | st.text(max_size=6)
        | st.booleans() | st.lists(st.integers(0, 4), max_size=3))

HW_FIELDS = ("name", "tensor_cores", "array_rows", "array_cols", "vector_cores",
             "vector_lanes", "freq_hz", "hbm_bw_bytes_per_s", "hbm_bytes", "dataflow", "dtype",
             "sram_per_core_bytes", "global_buffer_bytes", "global_buffer_bw_bytes_per_cycle",
             "hbm_stacks", "link_count", "link_bw_bytes_per_s", "tech_node_nm")
_valid_hw: dict[str, Any] = {"name": "f", "tensor_cores": 2, "array_rows": 32,
                             "array_cols": 32, "vector_cores": 1, "vector_lanes": 64,
                             "freq_hz": 1.0e9, "hbm_bw_bytes_per_s": 1.0e12,
                             "hbm_bytes": 2.0**34}


@st.composite
def hardware_mappings(draw: st.DrawFn) -> dict[str, Any]:
    """Near-valid hardware files: a valid design with some fields replaced or dropped,
    sometimes nested under ``hardware`` with a ``system`` section."""
    hw = dict(_valid_hw)
    for k in draw(st.lists(st.sampled_from(HW_FIELDS + ("bogus", "system")), max_size=4)):
        if draw(st.booleans()):
            hw[k] = draw(_num | st.sampled_from(["os", "ws", "is", "bf16", "fp8", "x"]))
        else:
            hw.pop(k, None)
    if draw(st.booleans()):
        doc: dict[str, Any] = {"hardware": hw}
        if draw(st.booleans()):
            doc["system"] = draw(st.dictionaries(
                st.sampled_from(["devices_per_node", "intra_node_topology", "torus_dims",
                                 "intra_node_bw_bytes_per_s", "inter_node_latency_s", "x"]),
                _num | st.sampled_from(["ring", "torus2d", "mesh"]), max_size=3))
        if draw(st.booleans()):
            doc[draw(st.sampled_from(["published", "name", "sources", "extra"]))] = \
                draw(json_values)
        return doc
    return hw


HF_KEYS = ("n_layer", "n_embd", "n_head", "n_positions", "n_inner", "vocab_size",
           "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
           "max_position_embeddings", "num_key_value_heads", "head_dim", "rotary_dim",
           "rotary_pct", "ffn_dim", "word_embed_proj_dim", "type_vocab_size",
           "activation_function", "hidden_act", "tie_word_embeddings", "architectures",
           "use_parallel_residual", "torch_dtype", "do_layer_norm_before")
_GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 32,
         "vocab_size": 100}
_LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 32,
          "vocab_size": 100, "num_key_value_heads": 2}


@st.composite
def hf_configs(draw: st.DrawFn) -> dict[str, Any]:
    """config.json documents: a small valid GPT-2 or Llama with fields mutated, or a
    random model_type with random HF fields."""
    if draw(st.booleans()):
        cfg = dict(draw(st.sampled_from([_GPT2, _LLAMA])))
        for k in draw(st.lists(st.sampled_from(HF_KEYS + ("model_type",)), max_size=3)):
            if draw(st.booleans()):
                cfg[k] = draw(_num | st.sampled_from(["gelu", "silu", "tanh", "bert", "t5"]))
            else:
                cfg.pop(k, None)
        return cfg
    return draw(st.dictionaries(
        st.sampled_from(HF_KEYS + ("model_type",)),
        _num | st.sampled_from(["gpt2", "gptj", "gpt_neox", "llama", "bert", "opt", "t5"]),
        max_size=10))


YAML_FRAGMENTS = ("a: 1", "- x", "? k", ": v", "{", "}", "[", "]", "&a", "*a", "!!python/object",
                  "!!binary", "<<: *a", "---", "...", "%YAML 1.2", "'", '"', "#", "|", ">",
                  "\t", "  ", "\n", "tensor_cores: 4", "hardware:", "  freq_hz: .nan",
                  "hbm_bytes: 1e400", "!!float inf", "~", "\x00", "\ufeff")
yaml_texts = st.lists(st.sampled_from(YAML_FRAGMENTS) | st.text(max_size=8),
                      max_size=20).map("".join)


def _yaml_dump(v: Any) -> bytes:
    return yaml.safe_dump(v, allow_unicode=True).encode("utf-8")


# ----------------------------------------------------------------------- config loader


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".yaml", ".yml", ".json", ""]))
def test_load_mapping_arbitrary_bytes(data: bytes, suffix: str) -> None:
    from dse.config import load_mapping

    with _file(f"f{suffix}", data) as p:
        _only_dse_errors(lambda: load_mapping(p))


@FUZZ
@given(value=json_values)
def test_load_mapping_arbitrary_json(value: Any) -> None:
    from dse.config import load_mapping

    with _file("f.json", _json_bytes(value)) as p:
        try:
            out = load_mapping(p)
        except DSEError:
            return
        assert isinstance(out, dict)


@FUZZ
@given(text=yaml_texts)
def test_load_mapping_arbitrary_yaml(text: str) -> None:
    from dse.config import load_mapping

    with _file("f.yaml", text.encode("utf-8", "surrogatepass")) as p:
        _only_dse_errors(lambda: load_mapping(p))


@pytest.mark.parametrize("text", ["a: !!float infa\n", "tensor_cores: !!int four\n"])
def test_load_mapping_tagged_scalar_is_a_config_error(text: str) -> None:
    from dse.config import load_mapping
    from dse.errors import ConfigError

    with _file("hw.yaml", text.encode()) as p, pytest.raises(ConfigError, match="hw.yaml"):
        load_mapping(p)


def test_load_mapping_deep_nesting() -> None:
    from dse.config import load_mapping

    for suffix, text in ((".json", "[" * 100_000 + "]" * 100_000),
                         (".yaml", "a: " + "[" * 20_000 + "]" * 20_000)):
        with _file(f"deep{suffix}", text.encode()) as p:
            _only_dse_errors(lambda: load_mapping(p))


# ----------------------------------------------------------------------- hardware presets


def _load_preset(p: Path) -> None:
    from cost_models.presets import load_preset

    load_preset(str(p))


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".yaml", ".json"]))
def test_load_preset_arbitrary_bytes(data: bytes, suffix: str) -> None:
    with _file(f"hw{suffix}", data) as p:
        _only_dse_errors(lambda: _load_preset(p))


@FUZZ
@given(value=json_values | hardware_mappings())
def test_load_preset_arbitrary_json(value: Any) -> None:
    with _file("hw.json", _json_bytes(value)) as p:
        _only_dse_errors(lambda: _load_preset(p))


@FUZZ
@given(doc=hardware_mappings(), text=yaml_texts)
def test_load_preset_arbitrary_yaml(doc: dict[str, Any], text: str) -> None:
    with _file("hw.yaml", _yaml_dump(doc)) as p:
        _only_dse_errors(lambda: _load_preset(p))
    with _file("hw2.yaml", text.encode("utf-8", "surrogatepass")) as p:
        _only_dse_errors(lambda: _load_preset(p))


@FUZZ
@given(published=st.dictionaries(st.sampled_from(["peak_flop_per_s", "tdp_w", "hbm_bytes"]),
                                 st.sampled_from([math.inf, -math.inf, math.nan, 0, True,
                                                  "x", 7.0e14, [300, 350]])
                                 | _num | st.lists(_num, max_size=2), max_size=3))
def test_published_figures_load_only_when_printable(published: dict[str, Any]) -> None:
    """A preset's ``published`` figures are checked when it loads: one that loads prints
    as valid JSON in ``dse --json hardware show`` (an ``inf`` once reached the JSON writer
    and exited 1 as an internal error)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from dse.cli import main

    so, se = io.StringIO(), io.StringIO()
    doc_bytes = _yaml_dump({"hardware": _valid_hw, "published": published})
    with _file("hw.yaml", doc_bytes) as p, redirect_stdout(so), redirect_stderr(se):
        rc = main(["--json", "hardware", "show", str(p)])
    out = so.getvalue()
    assert rc in (0, 2)
    doc = json.loads(out)
    assert ("error" in doc) == (rc == 2)


def test_hardware_mappings_reach_success() -> None:
    """The near-valid strategy is not all rejections: the unmutated design loads."""
    from cost_models.presets import load_preset

    with _file("ok.yaml", _yaml_dump({"hardware": _valid_hw})) as p:
        assert load_preset(str(p)).hardware.tensor_cores == 2


# ----------------------------------------------------------------------- importers


def _load_workload(p: Path) -> None:
    import workloads

    workloads.load(str(p), batch=1, seq=8)


@FUZZ
@given(data=st.binary(max_size=400))
def test_hf_config_arbitrary_bytes(data: bytes) -> None:
    with _file("config.json", data) as p:
        _only_dse_errors(lambda: _load_workload(p))


@FUZZ
@given(value=json_values | hf_configs())
def test_hf_config_arbitrary_json(value: Any) -> None:
    with _file("config.json", _json_bytes(value)) as p:
        _only_dse_errors(lambda: _load_workload(p))


def test_hf_configs_reach_success() -> None:
    import workloads

    for cfg in (_GPT2, _LLAMA):
        with _file("config.json", _json_bytes(cfg)) as p:
            assert workloads.load(str(p), batch=1, seq=8).num_ops > 0


def _valid_onnx() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.full((16, 32), 0.5, np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(32, np.float32), "b1")
    w2 = numpy_helper.from_array(np.full((32, 4), 0.5, np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                          [w1, b1, w2])
    return bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                 .SerializeToString())


ONNX = _valid_onnx()


@st.composite
def mutated_onnx(draw: st.DrawFn) -> bytes:
    """A valid model's bytes with flips, cuts and insertions (reaches the parser's
    deeper paths more often than random bytes)."""
    b = bytearray(ONNX)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        if kind == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del b[i:]
        elif kind == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and b:
            del b[i:i + draw(st.integers(1, 8))]
    return bytes(b)


@st.composite
def odd_onnx_graphs(draw: st.DrawFn) -> bytes:
    """Well-formed protobufs with odd content: zero/negative/huge dims, unknown ops,
    dangling inputs, missing initializers."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    d_in = draw(st.sampled_from([0, 1, 7, 16]))
    d_out = draw(st.sampled_from([0, 1, 5]))
    op = draw(st.sampled_from(["MatMul", "Gemm", "Conv", "Relu", "Softmax", "FooBar",
                               "LayerNormalization", "Reshape"]))
    inputs = draw(st.sampled_from([["x", "w"], ["x"], ["x", "missing"], []]))
    inits = []
    if draw(st.booleans()):
        inits.append(numpy_helper.from_array(np.ones((max(d_in, 1), max(d_out, 1)), np.float32),
                                             "w"))
    dim = draw(st.sampled_from(["n", 0, -3, 2**40, 4]))
    g = helper.make_graph([helper.make_node(op, inputs, ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, d_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(
        "", draw(st.sampled_from([1, 13, 17, 99])))])
    return bytes(m.SerializeToString())


@FUZZ
@given(data=st.binary(max_size=400) | mutated_onnx() | odd_onnx_graphs())
def test_onnx_arbitrary_bytes(data: bytes) -> None:
    pytest.importorskip("onnx")
    with _file("model.onnx", data) as p:
        _only_dse_errors(lambda: _load_workload(p))


def test_valid_onnx_reaches_success() -> None:
    pytest.importorskip("onnx")
    import workloads

    with _file("model.onnx", ONNX) as p:
        g = workloads.load(str(p), batch=1)
    assert g.num_ops > 0 and math.isfinite(g.total_flop())


# ----------------------------------------------------------------------- storage strings


_url_parts = st.text(max_size=8)


@FUZZ
@given(text=st.text(max_size=60) | st.builds(
    "{}://{}:{}@{}:{}/{}".format,
    st.sampled_from(["postgresql", "postgresql+psycopg", "sqlite", "mysql", "redis", "x+y", ""]),
    _url_parts, _url_parts, _url_parts, _url_parts, _url_parts))
def test_parse_storage_arbitrary_strings(text: str) -> None:
    from search.distributed import parse_storage

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            _only_dse_errors(lambda: parse_storage(text))
        finally:
            os.chdir(cwd)


_plain = st.text(st.characters(blacklist_characters="/?#@:", blacklist_categories=("Cs",)),
                 min_size=1, max_size=10)


@FUZZ
@given(scheme=st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql"]),
       user=_plain, password=st.text(st.characters(blacklist_characters="/?#",
                                                   blacklist_categories=("Cs",)),
                                     min_size=1, max_size=12),
       host=_plain, db=_plain)
def test_redacted_urls_never_show_the_password(scheme: str, user: str, password: str,
                                               host: str, db: str) -> None:
    from search.distributed import redact_url

    url = f"{scheme}://{user}:{password}@{host}:5432/{db}"
    assert redact_url(url) == f"{scheme}://{user}:***@{host}:5432/{db}"
    q = f"{scheme}://{user}@{host}/{db}?sslmode=require&password={password.replace('&', '')}"
    assert redact_url(q).endswith("&password=***")


# ----------------------------------------------- numbers everywhere a user gives one (issue 14)

TIMED = settings(derandomize=True, deadline=20_000, max_examples=40, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""As FUZZ, with a time limit per example: no input may make the tool hang."""

_number_texts = (st.integers(-(2**80), 2**80).map(str)
                 | st.floats(allow_nan=True, allow_infinity=True).map(repr)
                 | st.sampled_from(["0", "-0", "1e308", "1e309", "-1e-320", "0x10", "1_000",
                                    "nan", "inf", "", " 3 ", "2**10", "٣"]))
_FLAGS = (("search", "--area"), ("search", "--power"), ("search", "--devices"),
          ("search", "--budget"), ("search", "--top-k"), ("search", "--seed"),
          ("search", "--jobs"), ("search", "--batch"), ("search", "--seq"),
          ("evaluate", "--tp"), ("evaluate", "--pp"), ("evaluate", "--dp"),
          ("evaluate", "--devices"), ("evaluate", "--global-batch"),
          ("evaluate", "--micro-batch"), ("evaluate", "--seq"), ("evaluate", "--interleave"),
          ("workloads", "--batch"), ("export", "--top"), ("worker", "--wait"),
          ("dashboard", "--port"))
_BASE = {"search": ["search", "--workload", "gptj", "--area", "400"],
         "evaluate": ["evaluate", "--workload", "gpt2", "--hardware", "a100"],
         "workloads": ["workloads", "show", "gpt2"],
         "export": ["export", "run", "--format", "scalesim", "--out", "x"],
         "worker": ["worker", "--storage", "s.db", "--study", "s"],
         "dashboard": ["dashboard"]}


@TIMED
@given(flag=st.sampled_from(_FLAGS), text=_number_texts)
def test_cli_numbers_parse_into_range_or_one_error(flag: tuple[str, str], text: str) -> None:
    """Every numeric flag: a value is accepted only when finite and in its physical range
    (:mod:`dse.limits`); anything else is a UsageError naming the flag."""
    from dse.cli import build_parser
    from dse.limits import RANGES

    cmd, name = flag
    try:
        args = build_parser().parse_args([*_BASE[cmd], name, text])
    except DSEError as e:
        assert name in str(e) or "argument" in str(e), str(e)
        return
    v = getattr(args, name.lstrip("-").replace("-", "_"))
    assert isinstance(v, (int, float)) and math.isfinite(v), v
    r = RANGES.get(name)
    if r is not None:
        assert r.lo <= v <= r.hi, (name, v)


_HW_NUMBERS = (st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
               | st.sampled_from([0, 1, 3, 1e-300, 1e300, True, "12"]))
_HW_FIELDS = ("tensor_cores", "array_rows", "array_cols", "vector_cores", "vector_lanes",
              "freq_hz", "hbm_bw_bytes_per_s", "hbm_bytes", "sram_per_core_bytes",
              "global_buffer_bytes", "global_buffer_bw_bytes_per_cycle", "hbm_stacks",
              "link_count", "link_bw_bytes_per_s", "tech_node_nm", "matmul_efficiency",
              "matmul_efficiency_16bit", "hbm_efficiency")


@TIMED
@given(field=st.sampled_from(_HW_FIELDS), value=_HW_NUMBERS)
def test_hardware_numbers_give_finite_costs_or_one_error(field: str, value: Any) -> None:
    """One hardware field set to any number: rejected with a ConfigError, or the design's
    area, TDP and the step time of a small training graph are finite and positive."""
    import numpy as np

    from cost_models.area import area_mm2
    from cost_models.designs import DesignBatch
    from cost_models.evaluate import device_step
    from cost_models.power import tdp_w
    from cost_models.technology import load_technology
    from dse.config import from_dict
    from dse.types import HardwareConfig

    doc = dict(_valid_hw, **{field: value})
    try:
        hw = from_dict(HardwareConfig, doc, "hardware")
    except DSEError:
        return
    tech = load_technology(7)
    d = DesignBatch.from_configs([hw])
    a, t = area_mm2(d, tech)["total"], tdp_w(d, tech)["total"]
    assert np.all(np.isfinite(a)) and np.all(a > 0) and np.all(np.isfinite(t)) and np.all(t > 0)
    step = device_step(_small_graph(), d, tech).makespan_s
    assert np.all(np.isfinite(step)) and np.all(step > 0)


def _small_graph() -> Any:
    import workloads

    return workloads.load("gpt2", batch=1, seq=16)


@settings(derandomize=True, deadline=60_000, max_examples=12, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(tp=st.sampled_from(["1", "2", "3", "12", "64", "1000000"]),
       pp=st.sampled_from(["1", "2", "5", "12", "13"]),
       mb=st.sampled_from(["1", "2", "7", "1048576"]),
       seq=st.sampled_from(["1", "64", "1024", "5000", "16777216"]))
def test_evaluate_plans_are_finite_or_one_error(tp: str, pp: str, mb: str, seq: str) -> None:
    """``dse evaluate`` over odd plans: exit 0 with finite, non-negative numbers, or exit
    2 with one line; never a traceback, a negative time or an infinity."""
    import contextlib
    import io

    from dse.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["evaluate", "--workload", "gpt2", "--hardware", "a100", "--tp", tp,
                     "--pp", pp, "--micro-batch", mb, "--seq", seq, "--json"])
    assert code in (0, 2), err.getvalue()
    r = json.loads(out.getvalue())
    if code == 2:
        assert "error" in r and len(err.getvalue().splitlines()) == 1
        return
    for key in ("step_time_s", "samples_per_s", "energy_per_step_j", "memory_per_device_bytes"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])


@st.composite
def random_onnx_graphs(draw: st.DrawFn) -> bytes:
    """Chains and small DAGs of MatMul/Relu/Add/Softmax, sometimes with a cycle, under a
    random opset version."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n = draw(st.integers(1, 6))
    width = draw(st.sampled_from([1, 8, 64]))
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        op = draw(st.sampled_from(["MatMul", "Relu", "Add", "Softmax"]))
        out = f"t{i}"
        if op == "MatMul":
            w = f"w{i}"
            inits.append(numpy_helper.from_array(np.ones((width, width), np.float32), w))
            nodes.append(helper.make_node(op, [prev, w], [out]))
        elif op == "Add":
            other = draw(st.sampled_from(["x", prev, f"t{n - 1}"]))  # t{n-1}: maybe a cycle
            nodes.append(helper.make_node(op, [prev, other], [out]))
        else:
            nodes.append(helper.make_node(op, [prev], [out]))
        prev = out
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [draw(st.sampled_from([1, 4, "n"])), width])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(
        "", draw(st.sampled_from([1, 7, 13, 17, 21, 99, 1000])))])
    return bytes(m.SerializeToString())


@TIMED
@given(data=random_onnx_graphs())
def test_onnx_graphs_give_finite_work_or_one_error(data: bytes) -> None:
    """Random ONNX graphs (cycles, opsets old and unknown): a WorkloadError, or a training
    graph whose operators have finite, non-negative FLOPs and bytes."""
    pytest.importorskip("onnx")
    import workloads

    with _file("g.onnx", data) as p:
        try:
            g = workloads.load(str(p), batch=2)
        except DSEError as e:
            assert str(e).strip()
            return
    for op in g.ops:
        for v in (op.flop, op.bytes_in, op.bytes_out):
            assert math.isfinite(float(v)) and float(v) >= 0, (op.name, v)


def test_a_config_with_a_byte_order_mark_reads_as_without(tmp_path) -> None:
    """Windows editors write a UTF-8 byte-order mark; it is not content."""
    import json as _json

    import workloads

    cfg = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2,
           "vocab_size": 100, "n_positions": 128}
    plain, bom = tmp_path / "plain" / "config.json", tmp_path / "bom" / "config.json"
    for p, pre in ((plain, b""), (bom, b"\xef\xbb\xbf")):
        p.parent.mkdir()
        p.write_bytes(pre + _json.dumps(cfg).encode())
    a, b = workloads.model_spec(str(plain)), workloads.model_spec(str(bom))
    assert (a.layers, a.hidden, a.params) == (b.layers, b.hidden, b.params) == (2, 64, a.params)
