"""ASTRA-sim export (dse/export/astrasim.py): network/system/memory files and Chakra ET.

Environment used:
* ``DSE_CHAKRA_PYTHON``: a Python with ``mlc-chakra==1.0.0`` (``import chakra``); default
  ``${DSE_PEER_VENVS:-$HOME/.cache/dse-peer-venvs}/chakra/bin/python`` (``benchmarks/setup_peer_tools.sh`` creates it, with
  chakra and protobuf only; the test appends this interpreter's ``sys.path`` so dse's own
  dependencies are found). It must be the same Python minor version as pytest's.
  Without one, the trace test is skipped with the reason. ASTRA-sim itself is a C++
  build and is not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dse.errors import ExportError
from dse.export import export_design, load_design
from dse.export.astrasim import network, system
from dse.export.chakra_et import encode_node
from tests.dse.test_export_scalesim import peer_python, write_design


def _design(tmp: Path, system_cfg: dict, plan: dict) -> Path:
    return write_design(tmp, extra={"system": system_cfg, "plan": plan})


def test_two_level_network_and_system(tmp_path: Path) -> None:
    src = _design(tmp_path, {"devices_per_node": 4, "intra_node_topology": "ring",
                             "intra_node_bw_bytes_per_s": 150e9, "intra_node_latency_s": 1e-6,
                             "inter_node_topology": "switch", "inter_node_bw_bytes_per_s": 25e9,
                             "inter_node_latency_s": 5e-6},
                  {"tp": 2, "dp": 8, "global_batch": 16, "micro_batch": 2})
    paths = export_design(src, "astrasim", tmp_path / "as")
    names = {p.name for p in paths}
    assert {"network.yml", "system.json", "remote_memory.json", "run_astrasim.sh"} <= names
    net = yaml.safe_load((tmp_path / "as" / "network.yml").read_text())
    assert net == {"topology": ["Ring", "Switch"], "npus_count": [4, 4],
                   "bandwidth": [150.0, 25.0], "latency": [1000.0, 5000.0]}
    sysj = json.loads((tmp_path / "as" / "system.json").read_text())
    assert sysj["all-reduce-implementation"] == ["ring", "ring"]
    assert sysj["roofline-enabled"] == 1
    assert sysj["peak-perf"] == pytest.approx(2 * 2 * 8 * 8 * 1e9 / 1e12)
    assert sysj["local-mem-bw"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "as" / "remote_memory.json").read_text()) == {
        "memory-type": "NO_MEMORY_EXPANSION"}
    # Chakra traces, one per device, without mlc-chakra (pure-Python writer)
    assert sum(n.endswith(".et") for n in names) == 16


def test_torus_and_fully_connected(tmp_path: Path) -> None:
    src = _design(tmp_path, {"devices_per_node": 4, "intra_node_topology": "torus2d",
                             "inter_node_topology": "torus2d", "torus_dims": [4, 4],
                             "inter_node_bw_bytes_per_s": 45e9, "inter_node_latency_s": 1e-6},
                  {"dp": 16, "global_batch": 16})
    d = load_design(src)
    assert network(d)["topology"] == ["Ring", "Ring"]
    assert network(d)["npus_count"] == [4, 4]
    src2 = _design(tmp_path, {"devices_per_node": 8, "intra_node_topology": "fully_connected"},
                   {"tp": 8, "global_batch": 8})
    d2 = load_design(src2)
    assert network(d2)["topology"] == ["FullyConnected"]
    assert system(d2)["all-reduce-implementation"] == ["direct"]


def test_unsupported_plans_are_export_errors(tmp_path: Path) -> None:
    src = _design(tmp_path, {"devices_per_node": 8}, {"dp": 12, "global_batch": 12})
    with pytest.raises(ExportError, match="12 devices do not fill nodes of 8"):
        export_design(src, "astrasim", tmp_path / "a")
    src2 = _design(tmp_path, {"devices_per_node": 8}, {"pp": 2, "global_batch": 4,
                                                      "micro_batch": 1})
    with pytest.raises(ExportError, match="pp=2") as e:
        export_design(src2, "astrasim", tmp_path / "b")
    assert e.value.exit_code == 2  # the design is bad input for this format, not a failure


def test_an_export_that_fails_late_leaves_its_directory_as_it_was(tmp_path: Path) -> None:
    """The files are written beside ``--out`` and moved in once all are: a design found
    bad after the first files (a second workload whose sequence is too long) leaves no
    partial export behind, and the corrected design then exports to the same path."""
    src = write_design(tmp_path)
    d = json.loads(src.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(d, workload="tiny-gpt2.yaml,bert-base", seq=1024)))
    with pytest.raises(Exception, match="max_positions"):
        export_design(bad, "astrasim", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "out").mkdir()
    with pytest.raises(Exception, match="max_positions"):
        export_design(bad, "astrasim", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # an existing empty --out stays empty
    paths = export_design(src, "astrasim", tmp_path / "out")
    assert paths and all(p.parent == tmp_path / "out" or p.parent.parent == tmp_path / "out"
                         for p in paths)
    assert all(p.exists() for p in paths)


def test_gemm_exports_refuse_plans_whose_device_holds_part_of_the_layers(
        tmp_path: Path) -> None:
    src = write_design(tmp_path)
    d = json.loads(src.read_text())
    for plan, what in (({"pp": 2, "global_batch": 4, "micro_batch": 1}, "pp=2"),
                       ({"cp": 2}, "cp=2")):
        p = tmp_path / f"{what}.json"
        p.write_text(json.dumps(dict(d, plan=plan)))
        with pytest.raises(ExportError, match=what) as e:
            export_design(p, "scalesim", tmp_path / what)
        assert e.value.exit_code == 2


_DECODE = r"""
import json, sys
sys.path.extend(json.loads(sys.argv[1]))
from dse.export import export_design
from chakra.schema.protobuf import et_def_pb2 as et
from chakra.src.third_party.utils.protolib import decodeMessage, encodeMessage
import io
paths = export_design(sys.argv[2], "astrasim", sys.argv[3])
traces = sorted(str(p) for p in paths if p.suffix == ".et")
out = {"traces": traces, "nodes": []}
# Chakra re-encodes what it decoded: byte-identical to what dse wrote
raw = open(traces[0], "rb").read()
again = io.BytesIO()
with open(traces[0], "rb") as fh:
    m = et.GlobalMetadata(); decodeMessage(fh, m); encodeMessage(again, m)
    n = et.Node()
    while decodeMessage(fh, n):
        encodeMessage(again, n); n = et.Node()
out["identical"] = again.getvalue() == raw and len(raw) > 0
with open(traces[0], "rb") as fh:
    meta = et.GlobalMetadata(); decodeMessage(fh, meta)
    node = et.Node()
    while decodeMessage(fh, node):
        attrs = {}
        for a in node.attr:
            v = getattr(a, a.WhichOneof("value"))
            attrs[a.name] = list(v.values) if hasattr(v, "values") else v
        out["nodes"].append({"id": node.id, "name": node.name, "type": node.type,
                             "deps": list(node.data_deps), "attrs": attrs})
        node = et.Node()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_chakra_traces_decode(tmp_path: Path) -> None:
    py = peer_python("chakra", "DSE_CHAKRA_PYTHON")
    if py is None:
        pytest.skip("no mlc-chakra interpreter: set DSE_CHAKRA_PYTHON or run "
                    "benchmarks/setup_peer_tools.sh")
    src = _design(tmp_path, {"devices_per_node": 4}, {"tp": 2, "dp": 4, "global_batch": 8,
                                                     "micro_batch": 2})
    paths = json.dumps([p for p in sys.path if p] + [str(Path(__file__).resolve().parents[2])])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([py, "-c", _DECODE, paths, str(src), str(tmp_path / "as")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["traces"]) == 8  # one per NPU
    assert out["identical"], "mlc-chakra encodes the decoded trace differently"
    nodes = out["nodes"]
    comp = [n for n in nodes if n["type"] == 4]
    coll = [n for n in nodes if n["type"] == 7]
    assert comp and coll
    assert all(n["attrs"]["num_ops"] >= 0 and "tensor_size" in n["attrs"] for n in comp)
    assert any(n["name"] == "dp_grad_all_reduce" for n in coll)
    tp_colls = [n for n in coll if n["name"] != "dp_grad_all_reduce"]
    assert tp_colls, "tp=2 graphs have tensor-parallel all-reduces"
    ids = {n["id"] for n in nodes}
    assert all(set(n["deps"]) <= ids for n in nodes)
    assert sum(n["attrs"]["num_ops"] for n in comp) > 0


def test_chakra_writer_encodes_the_published_schema() -> None:
    """Bytes worked out by hand from et_def.proto (field numbers, wire types, proto3
    defaults omitted except in the attribute oneof, packed repeated scalars)."""
    node = {"id": 300, "name": "ar", "type": "COMM_COLL", "data_deps": [1, 2],
            "attrs": [("comm_type", "int64", 0), ("involved_dim", "bool_list", [True, False])]}
    want = bytes([0x08, 0xAC, 0x02,              # id = 300 (varint)
                  0x12, 0x02]) + b"ar" + bytes([  # name
                  0x18, 0x07,                     # type = COMM_COLL_NODE
                  0x2A, 0x02, 0x01, 0x02,         # data_deps, packed
                  0x52, 0x0D, 0x0A, 0x09]) + b"comm_type" + bytes([0x48, 0x00,  # int64_val 0
                  0x52, 0x15, 0x0A, 0x0C]) + b"involved_dim" + bytes([
                  0xE2, 0x01, 0x04, 0x0A, 0x02, 0x01, 0x00])  # bool_list {values: [1, 0]}
    assert encode_node(node) == want
    with pytest.raises(ExportError, match="not supported"):
        encode_node({"id": 0, "name": "x", "type": "COMP", "attrs": [("f", "float", 1.0)]})
    with pytest.raises(ExportError, match="node type"):
        encode_node({"id": 0, "name": "x", "type": "GEMM"})


def test_dlrm_trace_shards_the_tables_and_places_their_exchange(tmp_path: Path) -> None:
    """A DLRM on 16 devices (2 nodes) exports the device of its sharded tables: the
    table-row-wise legs on the intra- and inter-node dimensions, and a gradient all-reduce
    of the replicated parameters only (the MLPs and the tiny tables, not the shards)."""
    from dse.export.astrasim import _trace_nodes
    from dse.export.design import workload_graphs
    from workloads import model_spec
    from workloads.dlrm import shard_tables

    src = write_design(tmp_path, extra={"workload": "dlrm", "batch": 256,
                                        "system": {"devices_per_node": 8},
                                        "plan": {"dp": 16, "global_batch": 4096,
                                                 "micro_batch": 256, "optimizer": "sgd"}})
    design = load_design(src)
    graph = workload_graphs(design)[0]
    nodes = {n["name"]: n for n in _trace_nodes(design, graph)}
    spec = model_spec("dlrm")
    plan = shard_tables(spec, 16, node=8, batch=256)
    mine = plan.devices[plan.busiest]
    twrw = [sh.table for sh in mine if sh.kind == "twrw"]
    assert twrw, plan.kinds
    for i in twrw:
        assert nodes[f"emb{i}.reduce_scatter"]["involved_dim"] == [True, False]
        assert nodes[f"emb{i}.output_dist"]["involved_dim"] == [False, True]
        assert nodes[f"emb{i}.output_dist"]["comm_size"] == 16 * 256 * 128 * 2 // 8
    replicated = spec.mlp_params + sum(r * spec.dim for r, k in zip(spec.tables, plan.kinds)
                                       if k == "dp")
    assert nodes["dp_grad_all_reduce"]["comm_size"] == replicated * 2
