"""``dse workloads list`` and ``dse workloads show WORKLOAD [--batch B] [--seq S] [--ops]``.

JSON keys of ``show`` (contract, design brief §4 and §4b): ``name``, ``family``, ``params``,
``active_params`` (equal to ``params`` for dense models),
``fwd_flop_per_sample``, ``train_flop_per_sample``, ``num_ops`` (training graph,
multiplicity counted), ``seq_len`` (sequence families); extras: ``batch``,
``num_unique_ops``, ``source``, model sizes, FLOPs per phase, bytes, and with ``--ops``
one row per unique operator.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from dse.types import Graph

_SIZE_KEYS = ("layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab",
              "model_type", "arch", "image_size", "tables", "embedding_rows", "dim",
              "encoder_layers", "decoder_layers", "attention")


def _list() -> dict[str, Any]:
    import workloads

    rows = []
    for name in workloads.zoo_names():
        spec = workloads.model_spec(name)
        rows.append({
            "name": name, "family": spec.family, "params": int(spec.params),
            "default_batch": spec.default_batch, "default_seq": spec.default_seq,
            "source": spec.source,
        })
    return {"workloads": rows}


def _op_row(op: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": op.name, "kind": op.kind, "phase": op.phase, "count": op.count,
        "flop": op.flop, "bytes_in": op.bytes_in, "bytes_out": op.bytes_out,
        "bytes_weight": op.bytes_weight, "params": op.params, "stash_bytes": op.stash_bytes,
    }
    if op.kind == "gemm":
        row.update(m=op.m, k=op.k, n=op.n, batch=op.batch)
    else:
        row["elements"] = op.elements
    if op.vector_op:
        row["vector_op"] = op.vector_op
    if op.is_comm:
        row.update(collective=op.collective, group=op.group, comm_bytes=op.comm_bytes)
    return row


def show_dict(graph: Graph, *, source: str = "", ops: bool = False) -> dict[str, Any]:
    """The ``workloads show`` JSON object of a training graph."""
    m = graph.meta
    out: dict[str, Any] = {
        "name": m.get("name", graph.name),
        "family": m["family"],
        "params": int(m["params"]),
        # parameters a token passes through: all of them for a dense model (the mixture-
        # of-experts workloads of issue 13 will count the routed experts it skips)
        "active_params": int(m.get("active_params") or m["params"]),
        "fwd_flop_per_sample": float(m["fwd_flop_per_sample"]),
        "train_flop_per_sample": float(m["train_flop_per_sample"]),
        "num_ops": graph.num_ops,
    }
    if m.get("seq_len") is not None:
        out["seq_len"] = int(m["seq_len"])
    out["batch"] = int(m["batch"])
    out["num_unique_ops"] = graph.num_unique_ops
    out["source"] = source
    for k in _SIZE_KEYS:
        if k in m and m[k] is not None:
            out[k] = m[k]
    out["optimizer"] = m.get("optimizer", "adam")
    out["flop_by_phase"] = {p: float(m[f"flop_{p}"]) for p in
                            ("fwd", "bwd_data", "bwd_weight", "optimizer")}
    out["gemm_flop"] = float(m["gemm_flop"])
    out["train_flop"] = float(m["train_flop"])
    out["bytes"] = float(m["bytes"])
    out["weight_bytes"] = float(int(m["params"]) * 2)
    if m.get("stash_bytes_per_layer") is not None:
        out["stash_bytes_per_layer"] = float(m["stash_bytes_per_layer"])
    out["stash_bytes"] = float(sum(op.stash_bytes * op.count for op in graph.ops))
    if ops:
        out["ops"] = [_op_row(op) for op in graph.ops]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import workloads

    if args.action == "list":
        return _list()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = workloads.model_spec(args.workload)
        graph = workloads.build(spec, batch=args.batch, seq=args.seq)
    for w in caught:  # importer warnings (e.g. unmodeled ONNX ops): one line on stderr
        sys.stderr.write("dse: warning: " + " ".join(str(w.message).split()) + "\n")
    return show_dict(graph, source=spec.source, ops=bool(getattr(args, "ops", False)))


def _si(x: float, unit: str = "") -> str:
    for div, p in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3f} {p}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    if "workloads" in result:
        rows = result["workloads"]
        w = max(len(r["name"]) for r in rows)
        lines = [f"{'name':<{w}}  {'family':<11}  {'params':>12}  {'batch':>6}  {'seq':>6}"]
        for r in rows:
            seq = "-" if r["default_seq"] is None else str(r["default_seq"])
            lines.append(f"{r['name']:<{w}}  {r['family']:<11}  {_si(r['params']):>12}  "
                         f"{r['default_batch']:>6}  {seq:>6}")
        return "\n".join(lines)
    r = result
    lines = [f"{r['name']} ({r['family']})"]
    if r.get("source"):
        lines.append(f"  source                  {r['source']}")
    lines.append(f"  params                  {r['params']:,} ({_si(r['params'])})")
    if r.get("active_params") is not None:
        lines.append(f"  active_params           {r['active_params']:,} "
                     f"({_si(r['active_params'])})")
    lines.append(f"  batch                   {r['batch']}")
    if "seq_len" in r:
        lines.append(f"  seq_len                 {r['seq_len']}")
    for k in _SIZE_KEYS:
        if k in r:
            lines.append(f"  {k:<22}  {r[k]}")
    lines.append(f"  fwd FLOP per sample     {_si(r['fwd_flop_per_sample'], 'FLOP')}")
    lines.append(f"  train FLOP per sample   {_si(r['train_flop_per_sample'], 'FLOP')}")
    for p, v in r["flop_by_phase"].items():
        lines.append(f"    {p:<20}  {_si(v, 'FLOP')}")
    lines.append(f"  operators (executed)    {r['num_ops']:,} ({r['num_unique_ops']} unique)")
    lines.append(f"  bytes moved per step    {_si(r['bytes'], 'B')}")
    lines.append(f"  activations stashed     {_si(r['stash_bytes'], 'B')}")
    if "ops" in r:
        lines.append("")
        lines.append(f"  {'operator':<40} {'kind':<17} {'phase':<10} {'count':>5}  "
                     f"{'shape':<28} {'FLOP':>14}")
        for op in r["ops"]:
            shape = (f"{op['m']}x{op['k']}x{op['n']}" + (f" b{op['batch']}" if op['batch'] > 1
                                                          else "")
                     if "m" in op else f"{op['elements']} el")
            lines.append(f"  {op['name']:<40} {op['kind']:<17} {op['phase']:<10} "
                         f"{op['count']:>5}  {shape:<28} {_si(op['flop'], 'FLOP'):>14}")
    return "\n".join(lines)
