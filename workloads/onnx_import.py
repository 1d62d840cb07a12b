"""ONNX models → training graphs (``pip install dse[onnx]``; ``onnx`` is imported lazily).

Shapes come from ``onnx.shape_inference.infer_shapes(strict_mode=True)`` after the
symbolic batch dimension (the first dimension of the first graph input, if symbolic) is
set to the requested batch. Operators:

* ``Gemm``, ``MatMul`` → GEMMs (a weight GEMM when the B operand is an initializer,
  leading dimensions folded into ``m``; otherwise a batched activation GEMM);
* ``Conv`` (1-D/2-D/3-D, grouped and depthwise) → GEMM with im2col dims
  (``m = N·∏out, k = C/g·∏kernel, n = K/g, batch = g``);
* elementwise and activation ops, ``Softmax``/``LogSoftmax``, ``LayerNormalization``,
  ``BatchNormalization``, pooling, ``Dropout`` → vector ops by output element count;
* ``Gather`` of an initializer table → embedding gather (sparse scatter-add backward);
* layout ops (``Reshape``, ``Transpose``, ``Concat``, ``Split``, ``Slice``, ``Flatten``,
  ``Squeeze``, ``Cast`` …) cost nothing (WHAM treats them as no-ops);
* anything else → a ``generic`` vector op over its output elements, with one warning
  listing the op types.

Float initializers are the trainable parameters. A softmax cross-entropy loss over the
first graph output is appended (the exported graph is the forward pass only).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dse.errors import WorkloadError
from dse.types import Graph
from workloads.builder import INDEX_BYTES, ForwardBuilder
from workloads.spec import PARAM_COUNTERS, OnnxSpec
from workloads.training import expand, summarize


class WorkloadWarning(UserWarning):
    """A workload was imported with approximations the user should know about."""


_ELEMENTWISE = {
    "Add": "add", "Sub": "add", "Sum": "add", "Mul": "mul", "Div": "div", "Relu": "relu",
    "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Sqrt": "sqrt", "Pow": "pow",
    "Exp": "exp", "Log": "log", "Abs": "abs", "Neg": "mul", "Reciprocal": "div",
    "LeakyRelu": "leaky_relu", "HardSwish": "hardswish", "Gelu": "gelu", "Max": "add",
    "Min": "add", "Where": "add", "Clip": "relu6", "Mish": "silu",
}
"""ONNX elementwise op → vector key (Sub/Max/Min/Where cost like an add, Neg like a mul)."""

_LAYOUT = {
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Concat",
    "Split", "Slice", "Cast", "Expand", "Tile", "Pad", "Gather", "GatherElements",
    "DepthToSpace", "SpaceToDepth",
}
_PARTIAL = {"Split", "Slice", "Gather", "GatherElements"}
_SHAPE_ONLY = {"Shape", "Size", "Constant", "ConstantOfShape", "Range", "NonZero",
               "EyeLike"}
_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16 (onnx.TensorProto)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise WorkloadError("reading .onnx files needs the optional 'onnx' package: "
                            "pip install 'dse[onnx]'") from None
    return onnx


def _read(path: str | Path) -> Any:
    onnx = _onnx()
    from dse.config import read_input

    p = Path(path)
    raw = read_input(p, max_bytes=2**31 - 1, what="an .onnx file", error=WorkloadError)
    try:
        model = onnx.load_model_from_string(raw)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, truncated or not ONNX
        raise WorkloadError(f"{p}: not a valid ONNX model ({e.__class__.__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'cannot parse'})") from None
    if not model.graph.node:
        raise WorkloadError(f"{p}: not a valid ONNX model (the graph has no nodes; is the "
                            "file truncated or not ONNX?)")
    if not model.opset_import:
        raise WorkloadError(f"{p}: not a valid ONNX model (no opset_import; is the file "
                            "truncated or not ONNX?)")
    newest = int(onnx.defs.onnx_opset_version())
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and not 1 <= int(op.version) <= newest:
            raise WorkloadError(f"{p}: ONNX opset {op.version} is not supported (this onnx "
                                f"package knows opsets 1 to {newest})")
    _check_dag(model.graph, p)
    try:  # the ONNX checker: known operators of the declared opsets, well-formed nodes
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and kin
        first = " ".join(str(e).split())[:200] or e.__class__.__name__
        raise WorkloadError(f"{p}: not a valid ONNX model ({first})") from None
    return model


def _check_dag(graph: Any, p: Path) -> None:
    """The nodes form a DAG (Kahn's algorithm over tensor edges); a cycle is named by a
    node on it."""
    producer: dict[str, int] = {}
    for i, n in enumerate(graph.node):
        for t in n.output:
            if t:
                producer[t] = i
    succ: list[set[int]] = [set() for _ in graph.node]
    indeg = [0] * len(graph.node)
    for j, n in enumerate(graph.node):
        for t in set(n.input):
            i = producer.get(t)
            if i is not None and j not in succ[i]:
                succ[i].add(j)
                indeg[j] += 1
    ready = [i for i, d in enumerate(indeg) if d == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    if seen < len(graph.node):
        k = next(i for i, d in enumerate(indeg) if d > 0)
        n = graph.node[k]
        raise WorkloadError(f"{p}: the ONNX graph has a cycle (through node "
                            f"{n.name or n.op_type!r}, {n.op_type}); a training graph must be "
                            "a DAG")


def _dims(vi: Any) -> list[int | str]:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return []
    out: list[int | str] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(str(d.dim_param))
        else:
            out.append("?")
    return out


def _graph_inputs(model: Any) -> list[Any]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def onnx_params(path: str | Path) -> int:
    """Trainable parameters: the elements of the model's floating-point initializers."""
    model = _read(path)
    return int(sum(math.prod(t.dims) for t in model.graph.initializer
                   if t.data_type in _FLOAT_TYPES))


PARAM_COUNTERS["onnx"] = lambda spec: onnx_params(spec.path)


def onnx_spec(path: str | Path) -> OnnxSpec:
    """The spec of an ONNX file; its default batch is the first input's fixed batch
    dimension (1 if symbolic)."""
    p = Path(path)
    model = _read(p)
    ins = _graph_inputs(model)
    default = 1
    if ins:
        d = _dims(ins[0])
        if d and isinstance(d[0], int) and d[0] > 0:
            default = d[0]
    return OnnxSpec(name=p.stem, path=str(p), source=f"ONNX file {p}", default_batch=default)


def _infer(model: Any, path: Path, batch: int) -> tuple[Any, dict[str, list[int]]]:
    """Set the batch dimension, run strict shape inference, return (model, shapes)."""
    onnx = _onnx()
    ins = _graph_inputs(model)
    batch_name: str | None = None
    if ins:
        d0 = _dims(ins[0])
        if d0 and isinstance(d0[0], str):
            batch_name = d0[0]
        elif d0 and isinstance(d0[0], int) and d0[0] != batch:
            raise WorkloadError(f"{path}: the model's batch dimension is fixed at {d0[0]}; "
                                f"batch={batch} needs a model exported with a symbolic batch "
                                "dimension")
    for vi in ins:
        for dim in vi.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                if dim.dim_param != batch_name:
                    which = (f"the batch dimension ({batch_name!r}, the first input's "
                             "first)" if batch_name is not None else
                             "the batch dimension, the first input's first (here fixed or "
                             "absent)")
                    raise WorkloadError(f"{path}: input {vi.name!r} has the symbolic "
                                        f"dimension {dim.dim_param!r}; only {which} may be "
                                        "symbolic: export the model with fixed sizes")
                dim.ClearField("dim_param")
                dim.dim_value = batch
            elif not dim.HasField("dim_value"):
                raise WorkloadError(f"{path}: input {vi.name!r} has a dimension without a "
                                    "size")
    for vi in model.graph.output:  # let inference recompute outputs from the new batch
        for dim in vi.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param == batch_name:
                dim.ClearField("dim_param")
                dim.dim_value = batch
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # noqa: BLE001 - onnx raises InferenceError, ValidationError …
        msg = " ".join(str(e).split())[:200]
        raise WorkloadError(f"{path}: ONNX shape inference failed: {msg}") from None
    shapes: dict[str, list[int]] = {}
    for t in model.graph.initializer:
        shapes[t.name] = [int(x) for x in t.dims]
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        d = _dims(vi)
        if d and all(isinstance(x, int) for x in d):
            shapes[vi.name] = [int(x) for x in d]  # type: ignore[misc]
        elif not d and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = []  # scalar
    _check_sizes(path, shapes, {t.name for t in model.graph.initializer})
    return model, shapes


def _check_sizes(path: Any, shapes: dict[str, list[int]], constants: set[str]) -> None:
    """Every activation's dimensions are >= 1 (a constant may be empty, as Resize's
    ``roi``) and within :mod:`dse.limits`' tensor-dimension range, and every tensor's
    element count within 2^40 (a terabyte of fp8): FLOPs and bytes computed from them stay
    finite and meaningful."""
    from dse.limits import RANGES

    hi = int(RANGES["dimension"].hi)
    for name, dims in shapes.items():
        lo = 0 if name in constants else 1
        bad = next((x for x in dims if x < lo or x > hi), None)
        if bad is not None:
            raise WorkloadError(f"{path}: tensor {name!r} has the dimension {bad} "
                                f"(shape {dims}); every dimension must be {lo} to {hi}")
        n = math.prod(dims) if dims else 1
        if n > 1 << 40:
            raise WorkloadError(f"{path}: tensor {name!r} of shape {dims} has {n:.3g} "
                                "elements; at most 2^40 (a terabyte) per tensor")


def _attr(node: Any, name: str, default: Any) -> Any:
    onnx = _onnx()
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _forward(spec: OnnxSpec, batch: int) -> tuple[ForwardBuilder, list[str]]:
    path = Path(spec.path)
    model, shapes = _infer(_read(path), path, batch)
    g = model.graph
    bld = ForwardBuilder(spec.name)
    db = bld.dtype_bytes
    inits = {t.name: t for t in g.initializer}
    consts: set[str] = set()
    producer: dict[str, str | None] = {vi.name: None for vi in g.input}
    for t in inits:
        producer[t] = None
    unknown: set[str] = set()
    used: set[str] = set()

    def shape(t: str, node: str) -> list[int]:
        if t not in shapes:
            raise WorkloadError(f"{path}: no static shape for tensor {t!r} of node {node!r} "
                                "after shape inference (dynamic shapes are not supported)")
        return shapes[t]

    def numel(t: str, node: str) -> int:
        return int(math.prod(shape(t, node)))

    # float initializers, and layout ops applied to them (a transposed weight), are
    # parameters; the value maps each such tensor to its initializer
    param_of: dict[str, str] = {t: t for t, v in inits.items() if v.data_type in _FLOAT_TYPES}

    def is_param(t: str) -> bool:
        return t in param_of

    def src(t: str) -> str | None:
        return producer.get(t)

    def uniq(base: str) -> str:
        name = base.replace(" ", "_") or "node"
        k, out = 1, name
        while out in used:
            k += 1
            out = f"{name}_{k}"
        used.add(out)
        return out

    def params_of(tensors: Sequence[str], names: Sequence[str] | None = None
                  ) -> tuple[tuple[str, int], ...]:
        """(name, elements) of the parameter tensors among ``tensors``; ``names`` default to
        the initializers' own names."""
        out = []
        for j, t in enumerate(tensors):
            if t and is_param(t):
                nm = names[j] if names is not None else param_of[t]
                out.append((nm, int(math.prod(inits[param_of[t]].dims))))
        return tuple(out)

    def saved(t: str) -> str:
        """Identity of a saved tensor: its producing node (the GEMMs' convention)."""
        return src(t) or t

    for idx, node in enumerate(g.node):
        op = node.op_type
        name = uniq(node.name or f"{op.lower()}{idx}")
        ins = [i for i in node.input]
        outs = [o for o in node.output if o]
        if op in _SHAPE_ONLY or all((not i) or (i in consts) or
                                    (i in inits and not is_param(i)) for i in ins) and ins:
            consts.update(outs)  # shape arithmetic and constant folding: no tensor work
            for o in outs:
                producer[o] = None
            continue
        act_ins = [i for i in ins if i and src(i) is not None]
        if op in _LAYOUT and op != "Gather" and ins and is_param(ins[0]) and all(
                (not i) or i in consts or (i in inits and not is_param(i)) for i in ins[1:]):
            for o in outs:  # e.g. Transpose(W): still the parameter W
                param_of[o] = param_of[ins[0]]
                producer[o] = None
            continue
        out_el = numel(outs[0], name) if outs else 0
        made: str
        if op in ("Gemm", "MatMul"):
            a, b_ = ins[0], ins[1]
            sa, sb = shape(a, name), shape(b_, name)
            if op == "Gemm":
                ta, tb = int(_attr(node, "transA", 0)), int(_attr(node, "transB", 0))
                m, k = (sa[1], sa[0]) if ta else (sa[0], sa[1])
                n = sb[0] if tb else sb[1]
                bias = len(ins) > 2 and bool(ins[2]) and is_param(ins[2])
                lead, bat = 1, 1
            else:
                sa2 = [1] + sa if len(sa) == 1 else sa
                sb2 = sb + [1] if len(sb) == 1 else sb
                m, k, n = sa2[-2], sa2[-1], sb2[-1]
                lead = int(math.prod(sa2[:-2]))
                bat = int(math.prod(shape(outs[0], name)[:-2])) if len(shape(outs[0], name)) > 2 \
                    else 1
                bias = False
            if is_param(b_) and (op == "Gemm" or len(sb) <= 2):
                nm = m * (lead if op == "MatMul" else 1)
                made = bld.gemm(name, src(a), m=nm, k=k, n=n, bias=False)
                node_ = bld.node(made)
                node_.params = params_of([b_] + ([ins[2]] if bias else []), ["weight", "bias"])
                node_.op = _with_params(node_.op, node_.params)
            elif is_param(a) and src(b_) is not None and op == "MatMul" and len(sa) <= 2:
                # W·X: transpose to Xᵀ·Wᵀ so that the weight is the B operand
                made = bld.gemm(name, src(b_), m=n * max(bat, 1), k=k, n=m)
                node_ = bld.node(made)
                node_.params = params_of([a], ["weight"])
                node_.op = _with_params(node_.op, node_.params)
            else:
                xa, xb = src(a), src(b_)
                if xa is None or xb is None:
                    raise WorkloadError(f"{path}: {op} node {name!r} multiplies a graph input "
                                        "by a non-parameter; cannot tell its operands apart")
                made = bld.gemm(name, xa, y=xb, m=m, k=k, n=n, batch=max(bat, 1))
                if bias:
                    made = bld.vector(uniq(name + ".bias"), [made], key="add", elements=out_el,
                                      params=params_of([ins[2]], ["bias"]))
        elif op == "Conv":
            x, w = ins[0], ins[1]
            sx, sw, sy = shape(x, name), shape(w, name), shape(outs[0], name)
            groups = int(_attr(node, "group", 1))
            nb, c = sx[0], sx[1]
            kk = sw[0]
            made = bld.gemm(
                name, src(x), m=nb * int(math.prod(sy[2:])),
                k=(c // groups) * int(math.prod(sw[2:])),
                n=kk // groups, batch=groups, a_bytes=float(math.prod(sx) * db),
                c_bytes=float(math.prod(sy) * db), save_a=src(x) or f"{name}:input",
                save_a_bytes=float(math.prod(sx) * db),
            )
            node_ = bld.node(made)
            node_.params = params_of([w] + ([ins[2]] if len(ins) > 2 and ins[2] else []),
                                     ["weight", "bias"])
            node_.op = _with_params(node_.op, node_.params)
        elif op in _ELEMENTWISE:
            key = _ELEMENTWISE[op]
            if op == "Clip":
                key = "relu6"
            saves = [(name, out_el * db)] if key in ("relu", "relu6", "sigmoid", "tanh", "exp",
                                                     "sqrt") else \
                [(saved(i), numel(i, name) * db) for i in ins if i and src(i) is not None]
            made = bld.vector(name, [src(i) for i in ins if i and i not in consts], key=key,
                              elements=out_el, saves=saves if key != "add" else [],
                              in_elements=sum(numel(i, name) for i in ins if i and
                                              i not in consts),
                              params=params_of(ins))
        elif op in ("Softmax", "LogSoftmax"):
            made = bld.vector(name, [src(ins[0])], key="softmax", kind="softmax",
                              elements=out_el, saves=[(name, out_el * db)])
        elif op in ("LayerNormalization", "BatchNormalization"):
            key = "layernorm" if op == "LayerNormalization" else "batchnorm"
            made = bld.vector(name, [src(ins[0])], key=key, kind="norm", elements=out_el,
                              saves=[(saved(ins[0]), numel(ins[0], name) * db)],
                              params=params_of(ins[1:3], ["weight", "bias"]))
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"):
            sx = shape(ins[0], name)
            if op.startswith("Global"):
                window = int(math.prod(sx[2:]))
            else:
                window = int(math.prod(_attr(node, "kernel_shape", [1])))
            in_el = int(math.prod(sx))
            key = "maxpool" if "Max" in op else "avgpool"
            flop = out_el * (window - 1) if key == "maxpool" else out_el * (window + 1)
            saves = [(saved(ins[0]), in_el * db)] + ([(name + ":argmax", out_el * INDEX_BYTES)]
                                              if key == "maxpool" else [])
            made = bld.vector(name, [src(ins[0])], key=key, kind="pool", elements=out_el,
                              flop=float(flop), in_elements=in_el, bwd_elements=in_el,
                              saves=saves)
        elif op == "Dropout":
            made = bld.dropout(name, src(ins[0]) or "", elements=out_el) if src(ins[0]) \
                else name
            if src(ins[0]) is None:
                for o in outs:
                    producer[o] = None
                continue
        elif op == "Gather" and is_param(ins[0]) and ins[1] not in inits:
            table = shape(ins[0], name)
            rows = numel(ins[1], name)
            made = bld.embedding(name, rows=rows, dim=int(math.prod(table[1:])),
                                 table_rows=table[0])
        elif op in _LAYOUT:
            if not act_ins:
                consts.update(outs)
                for o in outs:
                    producer[o] = None
                continue
            made = bld.virtual(name, [src(i) for i in act_ins], elements=out_el,  # type: ignore
                               partial=op in _PARTIAL)
        else:
            unknown.add(op)
            made = bld.vector(name, [src(i) for i in act_ins], key="generic",
                              elements=out_el,
                              in_elements=sum(numel(i, name) for i in act_ins),
                              saves=[(saved(i), numel(i, name) * db) for i in act_ins],
                              params=params_of(ins))
        for o in outs:
            producer[o] = made
    if not g.output:
        raise WorkloadError(f"{path}: the graph has no outputs")
    out = g.output[0].name
    last = producer.get(out)
    if last is None:
        raise WorkloadError(f"{path}: output {out!r} does not depend on any graph input")
    so = shape(out, "output")
    rows = so[0] if so else 1
    el = int(math.prod(so)) if so else 1
    bld.loss("loss", last, key="cross_entropy", elements=el, rows=rows,
             saves=[("loss:logp", el * db)])
    return bld, sorted(unknown)


def _with_params(op: Any, params: tuple[tuple[str, int], ...]) -> Any:
    from dataclasses import replace

    return replace(op, params=int(sum(p for _, p in params)))


def build_onnx(spec: OnnxSpec, *, batch: int, optimizer: str = "adam") -> Graph:
    """The training graph of an ONNX model for ``batch`` samples."""
    bld, unknown = _forward(spec, batch)
    if unknown:
        warnings.warn(f"{spec.path}: ops not modeled, counted as generic vector ops by output "
                      f"elements: {', '.join(unknown)}", WorkloadWarning, stacklevel=2)
    graph = expand(bld, optimizer=optimizer, name=spec.name)
    stats = summarize(graph, batch)
    params = int(sum(sum(p for _, p in n.params) * n.count for n in bld.nodes))
    meta: dict[str, Any] = {"name": spec.name, "family": spec.family, "params": params, "seq_len": None,
            "batch": batch, "optimizer": optimizer, "unmodeled_ops": unknown,
            "fwd_gemm_flop_per_sample": sum(op.total_flop for op in graph.ops
                                            if op.phase == "fwd" and op.kind == "gemm") / batch,
            **stats}
    return graph.with_ops(graph.ops, **meta)
