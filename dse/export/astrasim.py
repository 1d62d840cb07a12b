"""Export to ASTRA-sim 2 (analytical network backend): network, system, memory, Chakra ET.

Files written:

* ``network.yml``: one entry per network dimension, innermost first: the node's
  devices (``min(devices, devices_per_node)``) on the intra-node topology, then the
  nodes (``devices / devices_per_node``) on the inter-node topology. ``ring`` →
  ``Ring``, ``switch`` → ``Switch``, ``fully_connected`` → ``FullyConnected``; a
  ``torus2d``/``torus3d`` level becomes one ``Ring`` dimension per torus dimension of
  ``system.torus_dims`` (whose product must be that level's device count, or the whole
  system's, in which case the torus is the only level). ``bandwidth`` is GB/s
  (10⁹ B/s) per device and direction, ``latency`` ns.
* ``system.json``: the collective algorithm per dimension (``ring`` on Ring and Switch
  dimensions, as in ASTRA-sim's validated HGX-H100 example; ``direct`` on
  FullyConnected), ``"roofline-enabled": 1`` with ``peak-perf`` = the chip's dense peak in
  TFLOP/s and ``local-mem-bw`` = its HBM bandwidth in GB/s (so COMP nodes take
  ``num_ops / min(local-mem-bw · num_ops / tensor_size, peak-perf)``); scheduling and
  chunking settings are those of ASTRA-sim's examples.
* ``remote_memory.json``: ``{"memory-type": "NO_MEMORY_EXPANSION"}``.
* ``workload/<name>.<npu>.et``: Chakra execution traces, one per device, written by the
  pure-Python writer :mod:`dse.export.chakra_et` (Chakra's published schema; no
  ``mlc-chakra`` or protobuf needed, the bytes equal ``mlc-chakra``'s). Each trace is the device's
  training graph (the tensor-parallel shard when ``tp > 1``): one COMP node per
  compute operator (``num_ops`` = FLOP, ``tensor_size`` = bytes moved) and one
  COMM_COLL node per collective (``comm_type``, ``comm_size`` in bytes; tensor-parallel
  collectives use only the intra-node dimensions when ``tp`` fits in a node), with data
  dependencies from the graph's edges. A block repeated ``count`` times is one node
  carrying ``count`` times the work. With ``dp > 1`` a gradient ALL_REDUCE of the
  device's replicated parameters follows the backward pass (a DLRM's table shards are not
  reduced; its exchange legs inside and across nodes use the intra- and inter-node
  dimensions). Pipeline parallelism (``pp > 1``,
  stage-to-stage sends) is not written: the export refuses it with a message.
* ``run_astrasim.sh``: the command line with the four configuration flags.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from cost_models.memory import local_params
from dse.errors import ExportError, ExportInputError
from dse.export.chakra_et import COLLECTIVES, write_trace
from dse.export.design import Design, safe_name, workload_graphs
from dse.types import Graph

__all__ = [
    "export",
    "network",
    "network_dimensions",
    "remote_memory",
    "system",
    "write_traces",
]

_TOPO = {"ring": "Ring", "switch": "Switch", "fully_connected": "FullyConnected"}
_ALGO = {"Ring": "ring", "Switch": "ring", "FullyConnected": "direct"}


def _level(topology: str, count: int, bw: float, lat: float, dims: tuple[int, ...],
           where: str) -> list[dict[str, Any]]:
    if count <= 1:
        return []
    if topology in _TOPO:
        return [{"topology": _TOPO[topology], "npus": count, "bw": bw, "lat": lat}]
    want = 2 if topology == "torus2d" else 3
    if len(dims) != want or math.prod(dims) != count:
        raise ExportInputError(f"{where}: {topology} needs system.torus_dims of {want} sizes "
                               f"whose product is {count}, got {list(dims)}")
    return [{"topology": "Ring", "npus": int(d), "bw": bw, "lat": lat} for d in dims if d > 1]


def network_dimensions(design: Design) -> list[dict[str, Any]]:
    """The network dimensions (innermost first): topology, npus, bw (B/s), lat (s)."""
    sysc, n = design.system, design.devices
    per_node = min(n, sysc.devices_per_node)
    where = str(design.source)
    torus = ("torus2d", "torus3d")
    if sysc.torus_dims and math.prod(sysc.torus_dims) == n and (
            sysc.intra_node_topology in torus or sysc.inter_node_topology in torus):
        topo = sysc.inter_node_topology if sysc.inter_node_topology in torus else \
            sysc.intra_node_topology
        dims = _level(topo, n, sysc.inter_node_bw_bytes_per_s, sysc.inter_node_latency_s,
                      sysc.torus_dims, where)
        return dims or [{"topology": "Ring", "npus": 1, "bw": sysc.intra_node_bw_bytes_per_s,
                         "lat": sysc.intra_node_latency_s}]
    if n % per_node:
        raise ExportInputError(f"{where}: {n} devices do not fill nodes of {per_node} devices")
    dims = _level(sysc.intra_node_topology, per_node, sysc.intra_node_bw_bytes_per_s,
                  sysc.intra_node_latency_s, sysc.torus_dims, where)
    dims += _level(sysc.inter_node_topology, n // per_node, sysc.inter_node_bw_bytes_per_s,
                   sysc.inter_node_latency_s, sysc.torus_dims, where)
    if not dims:  # a single device: one trivial dimension keeps the file well-formed
        dims = [{"topology": "Ring", "npus": 1, "bw": sysc.intra_node_bw_bytes_per_s,
                 "lat": sysc.intra_node_latency_s}]
    return dims


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def network(design: Design) -> dict[str, list[Any]]:
    """``network.yml`` content for the analytical backend."""
    dims = network_dimensions(design)
    return {
        "topology": [d["topology"] for d in dims],
        "npus_count": [int(d["npus"]) for d in dims],
        "bandwidth": [_r(d["bw"] / 1e9) for d in dims],
        "latency": [_r(d["lat"] * 1e9) for d in dims],
    }


def system(design: Design) -> dict[str, Any]:
    """``system.json`` content."""
    hw = design.hardware
    algos = [_ALGO[d["topology"]] for d in network_dimensions(design)]
    return {
        "scheduling-policy": "LIFO",
        "endpoint-delay": 10,
        "active-chunks-per-dimension": 1,
        "preferred-dataset-splits": 4,
        "all-reduce-implementation": algos,
        "all-gather-implementation": algos,
        "reduce-scatter-implementation": algos,
        "all-to-all-implementation": algos,
        "collective-optimization": "localBWAware",
        "local-mem-bw": _r(hw.hbm_bw_bytes_per_s / 1e9),
        "boost-mode": 0,
        "roofline-enabled": 1,
        "peak-perf": _r(hw.peak_flop_per_s / 1e12),
    }


def remote_memory() -> dict[str, str]:
    """``remote_memory.json`` content (no memory expansion)."""
    return {"memory-type": "NO_MEMORY_EXPANSION"}


def _trace_nodes(design: Design, graph: Graph) -> list[dict[str, Any]]:
    """Plain-dict description of one device's trace (also used by tests)."""
    hw = design.hardware
    dims = network_dimensions(design)
    intra = min(design.devices, design.system.devices_per_node)
    intra_dims = 0
    prod = 1
    for d in dims:
        if prod * d["npus"] > intra:
            break
        prod *= d["npus"]
        intra_dims += 1
    nodes: list[dict[str, Any]] = []
    for i, op in enumerate(graph.ops):
        deps = list(graph.pred_indices[i])
        node: dict[str, Any] = {"id": i, "name": op.name, "data_deps": deps}
        if op.kind == "collective":
            node["type"] = "COMM_COLL"
            node["comm_type"] = op.collective.upper()
            node["comm_size"] = int(round(op.comm_bytes * op.count))
            split = 0 < intra_dims < len(dims)
            if split and ((op.group == "tp" and design.plan.tp <= intra)
                          or op.group == "dp_intra"):
                node["involved_dim"] = [j < intra_dims for j in range(len(dims))]
            elif split and op.group == "dp_inter":  # a DLRM's sums across the nodes
                node["involved_dim"] = [j >= intra_dims for j in range(len(dims))]
        elif op.kind == "sendrecv":
            raise ExportError(f"{design.source}: operator {op.name!r} is a pipeline send/recv; "
                              "Chakra traces for pp > 1 are not supported by this export")
        else:
            node["type"] = "COMP"
            node["num_ops"] = int(round(op.flop * op.count))
            node["tensor_size"] = int(round(op.bytes_total * op.count))
        nodes.append(node)
    # the gradient all-reduce of what is replicated (a DLRM's table shards are not)
    params = sum(op.params * op.count for op in graph.ops if op.phase == "fwd")
    params -= local_params(graph)
    if design.plan.dp > 1 and params > 0:
        last_bwd = [i for i, op in enumerate(graph.ops) if op.phase in ("bwd_data", "bwd_weight")]
        nodes.append({"id": len(graph.ops), "name": "dp_grad_all_reduce", "type": "COMM_COLL",
                      "comm_type": "ALL_REDUCE", "comm_size": int(params * hw.dtype_bytes),
                      "data_deps": last_bwd[-1:] if last_bwd else []})
    return nodes


def write_traces(design: Design, graph: Graph, out_dir: Path) -> list[Path]:
    """Write ``<name>.<npu>.et`` Chakra traces, one per device (pure-Python writer:
    :mod:`dse.export.chakra_et`)."""
    nodes = []
    for nd in _trace_nodes(design, graph):
        attrs: list[tuple[str, str, Any]] = [("is_cpu_op", "bool", False)]
        if nd["type"] == "COMP":
            attrs += [("num_ops", "uint64", nd["num_ops"]),
                      ("tensor_size", "uint64", nd["tensor_size"])]
        else:
            attrs += [("comm_type", "int64", COLLECTIVES[nd["comm_type"]]),
                      ("comm_size", "int64", nd["comm_size"])]
            if "involved_dim" in nd:
                attrs.append(("involved_dim", "bool_list", nd["involved_dim"]))
        nodes.append({"id": nd["id"], "name": nd["name"], "type": nd["type"],
                      "data_deps": nd["data_deps"], "attrs": attrs})
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = safe_name(graph.name)
    return [write_trace(out_dir / f"{prefix}.{npu}.et", nodes)
            for npu in range(design.devices)]


def export(design: Design, out_dir: Path) -> list[Path]:
    """Write the ASTRA-sim files (and traces when possible) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if design.plan.pp > 1:
        raise ExportInputError(f"{design.source}: plan has pp={design.plan.pp}; the ASTRA-sim "
                               "export writes data/tensor-parallel traces only (pp must be 1)")
    net = out_dir / "network.yml"
    net.write_text(yaml.safe_dump(network(design), sort_keys=False, default_flow_style=None))
    sysf = out_dir / "system.json"
    sysf.write_text(json.dumps(system(design), indent=2) + "\n")
    mem = out_dir / "remote_memory.json"
    mem.write_text(json.dumps(remote_memory(), indent=2) + "\n")
    paths = [net, sysf, mem]
    wdir = out_dir / "workload"
    prefix = "workload/trace"
    if design.workloads:
        graph = workload_graphs(design)[0]
        prefix = f"workload/{safe_name(graph.name)}"
        paths += write_traces(design, graph, wdir)
    run = out_dir / "run_astrasim.sh"
    run.write_text(
        "#!/bin/sh\n# Analytical backend binary of an ASTRA-sim 2 build; adjust the path.\n"
        'ASTRA_SIM="${ASTRA_SIM:-AstraSim_Analytical_Congestion_Aware}"\n'
        'cd "$(dirname "$0")"\n'
        f'"$ASTRA_SIM" --workload-configuration={prefix} '
        "--system-configuration=system.json --network-configuration=network.yml "
        "--remote-memory-configuration=remote_memory.json\n")
    paths.append(run)
    return paths
