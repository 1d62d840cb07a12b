"""Training expansion: forward nodes → forward, backward and optimizer operators.

Rules (one training step, see ``docs/workloads.md``):

* **Weight GEMM** ``C = A·W`` (``m×k`` times ``k×n``): ``bwd_data`` ``dA = dC·Wᵀ``
  (``m, k=n, n=k``) when A needs a gradient, and ``bwd_weight`` ``dW = Aᵀ·dC``
  (``m=k, k=m, n``); both have the forward's FLOPs ``2·m·k·n·batch``.
* **Activation × activation GEMM** (attention ``QKᵀ``, ``A·V``, DLRM's interaction):
  one ``bwd_data`` op per input that needs a gradient, ``.bwd_data_a`` (``dA = dC·Bᵀ``)
  and ``.bwd_data_b`` (``dB = Aᵀ·dC``), each with the forward's FLOPs. There is no weight,
  hence no ``bwd_weight`` op.
* **Fused attention** (FlashAttention-2): one ``.bwd`` attention op that recomputes the
  scores: five GEMMs, 2.5× the forward's FLOPs; gradients to Q, K and V.
* **Vector ops**: one ``.bwd`` op with the backward key of :mod:`workloads.vector_ops`;
  ``add`` passes the gradient through (no op); ``mul`` computes one product per input that
  needs a gradient.
* **Embedding gather** → ``.bwd`` scatter-add (``embedding_scatter``, phase
  ``bwd_weight``) whose bytes are the looked-up rows, never the table.
* **Forward collectives** → the backward collective of Megatron's conjugate operator
  (``g``: all-reduce → identity; SP all-gather ↔ reduce-scatter); virtual ``f`` nodes
  (identity forward) → an all-reduce of the input gradient.
* A tensor read by several ops gets a ``.grad_accum`` add of the gradient contributions
  (e.g. the residual stream at every block input), in the block of the tensor's producer.
* **Optimizer**: one op per parameter tensor (``adam``: 14 FLOP, ``sgd``: 2 FLOP per
  parameter), after the op producing that tensor's gradient.

Dependencies: a backward op depends on its forward op and on the gradient of its output
(the backward ops of every consumer); operators are stored forward ops first, then
backward ops in reverse forward order, then optimizer ops — a topological order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from dse.errors import WorkloadError
from dse.types import OPTIMIZERS, Graph, Operator
from workloads.builder import ForwardBuilder, Node
from workloads.vector_ops import vector_op

MASTER_BYTES = 4
"""fp32 master weight per parameter (mixed precision; Micikevicius et al. 2018, ZeRO §3)."""
ADAM_STATE_BYTES = 8
"""fp32 first and second moments per parameter (ZeRO: 2 + 2 + 12 = 16 B/param)."""


def _optimizer_op(name: str, key: str, numel: int, db: int, *, count: int, block: str,
                  layer: int, fwd: str) -> Operator:
    """One optimizer step over ``numel`` parameters, mixed precision.

    Bytes per parameter: read the ``db``-byte gradient; read and write the fp32 master
    weight (and, for Adam, the two fp32 moments); write the ``db``-byte working copy.
    """
    states = MASTER_BYTES + (ADAM_STATE_BYTES if key == "adam" else 0)
    return Operator(
        name=name, kind="optimizer", phase="optimizer", vector_op=key, elements=numel,
        flop=float(numel * vector_op(key).flop_per_element), params=numel,
        bytes_in=float(numel * db), bytes_weight=float(numel * states),
        bytes_out=float(numel * (states + db)), dtype_bytes=db, count=count, block=block,
        layer=layer, fwd=fwd,
    )


def _requires_grad(nodes: list[Node]) -> None:
    by = {n.name: n for n in nodes}
    for n in nodes:
        n.requires_grad = (n.force_grad or bool(n.params) or bool(n.tied_to)
                           or any(by[i].requires_grad for i in n.inputs))


def _fwd_edges(nodes: list[Node]) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]:
    """Resolve virtual nodes: each node's nearest real (operator-carrying) producers."""
    real: dict[str, tuple[str, ...]] = {}
    edges: list[tuple[str, str]] = []
    for n in nodes:
        prods: list[str] = []
        for i in n.inputs:
            prods.extend(real[i])
        prods = list(dict.fromkeys(prods))
        if n.op is not None:
            edges.extend((p, n.name) for p in prods)
            real[n.name] = (n.name,)
        else:
            real[n.name] = tuple(prods)
    return real, edges


def expand(builder: ForwardBuilder, *, optimizer: str = "adam", name: str | None = None,
           meta: Mapping[str, Any] | None = None, grad_accumulation: str = "fused",
           bias_grad: str = "fused") -> Graph:
    """The training-step :class:`~dse.types.Graph` of the forward pass in ``builder``.

    ``grad_accumulation="separate"`` adds, per dense parameter tensor, an elementwise
    ``<param>.grad_accum`` after its gradient and before its optimizer step: the add of
    this micro-batch's gradient to the accumulated one (``db`` bytes each read, the sum
    written: PyTorch's in-place accumulation into ``.grad``, Megatron-LM's
    ``main_grad.add_`` of fp16 runs); ``"fused"`` (default) leaves it to the
    weight-gradient GEMM (Megatron's ``gradient_accumulation_fusion``).
    ``bias_grad="separate"`` sums a biased GEMM's output gradient over its rows in a
    ``<gemm>.bwd_bias`` reduction of its own (``grad_output.sum(dim=0)`` in Megatron-LM's
    linear layers, PyTorch's broadcast reduction behind its fused bias-GeLU and
    bias-dropout-add); ``"fused"`` (default) computes it in the GEMM's epilogue
    (cuBLASLt ``BGRADB``, Transformer Engine), at no cost.

    >>> from workloads.builder import ForwardBuilder
    >>> b = ForwardBuilder("mlp")
    >>> h = b.gemm("fc1", None, m=32, k=64, n=128, bias=True)
    >>> a = b.vector("relu", [h], key="relu", elements=32 * 128, saves=[("relu", 8192)])
    >>> y = b.gemm("fc2", a, m=32, k=128, n=10, bias=True)
    >>> _ = b.loss("loss", y, key="cross_entropy", elements=320, rows=32)
    >>> g = expand(b, optimizer="sgd")
    >>> [op.name for op in g.ops if op.phase != "fwd"]  # doctest: +NORMALIZE_WHITESPACE
    ['loss.bwd', 'fc2.bwd_data', 'fc2.bwd_weight', 'relu.bwd', 'fc1.bwd_weight',
     'fc1.weight.sgd', 'fc1.bias.sgd', 'fc2.weight.sgd', 'fc2.bias.sgd']
    >>> g.op("fc1.bwd_weight").flop == g.op("fc1").flop
    True
    """
    if optimizer not in OPTIMIZERS:
        raise WorkloadError(f"optimizer={optimizer!r} is not valid; choose one of "
                            f"{', '.join(OPTIMIZERS)}")
    for key, val in (("grad_accumulation", grad_accumulation), ("bias_grad", bias_grad)):
        if val not in ("fused", "separate"):
            raise WorkloadError(f"{key}={val!r} is not valid; choose one of fused, separate")
    nodes = builder.nodes
    db = builder.dtype_bytes
    by = {n.name: n for n in nodes}
    _requires_grad(nodes)
    _, edges = _fwd_edges(nodes)
    consumers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            consumers[i].append(n.name)

    fwd_ops: list[Operator] = [n.op for n in nodes if n.op is not None]
    bwd_ops: list[Operator] = []
    # Gradient contributions to each node's output: (ops it waits for, partial?). Empty
    # deps mean "arrives from outside this graph" (a pipeline stage's output gradient);
    # partial contributions (slices of a fused output) are written side by side.
    grads: dict[str, list[tuple[tuple[str, ...], bool]]] = {n.name: [] for n in nodes}
    wgrad_src: dict[str, list[str]] = {}  # param owner -> ops producing its gradient

    def emit(op: Operator, deps: Iterable[str]) -> str:
        bwd_ops.append(op)
        edges.extend((d, op.name) for d in dict.fromkeys(deps))
        return op.name

    def common(n: Node) -> dict[str, Any]:
        return {"count": n.count, "block": n.block, "layer": n.layer, "fwd": n.name,
                "dtype_bytes": db}

    def collective_bwd(n: Node, deps: list[str]) -> str:
        op = Operator(
            name=f"{n.name}.bwd", kind="collective", phase="comm",
            collective=n.bwd_collective, group=n.group, comm_bytes=n.comm_bytes,
            bytes_in=n.comm_bytes, bytes_out=n.comm_bytes, elements=n.out_elements,
            **common(n),
        )
        return emit(op, deps)

    for n in reversed(nodes):
        if not n.requires_grad:
            continue
        contrib = grads[n.name]
        upstream: tuple[str, ...]
        if n.rule in ("loss", "seed"):
            upstream = ()
        elif not contrib:
            continue  # output does not reach the loss
        else:
            # full-tensor gradients to add: each non-partial contribution, plus one for
            # all partial contributions together (they tile the tensor)
            full = sum(1 for _, p in contrib if not p) + (1 if any(p for _, p in contrib) else 0)
            all_deps = tuple(dict.fromkeys(d for deps_, _ in contrib for d in deps_))
            if full > 1:
                extra = full - 1
                acc = Operator(
                    name=f"{n.name}.grad_accum", kind="elementwise", phase="bwd_data",
                    vector_op="add", elements=n.out_elements * extra,
                    flop=float(n.out_elements * extra),
                    bytes_in=float(n.out_elements * full * db),
                    bytes_out=float(n.out_elements * db), **common(n),
                )
                upstream = (emit(acc, all_deps),)
            else:
                upstream = all_deps
        own = (n.name,) if n.op is not None else ()
        deps = list(upstream + own)
        grad_inputs = [i for i in dict.fromkeys(n.inputs) if by[i].requires_grad]
        given: dict[str, tuple[str, ...]] = {}  # input -> ops giving its gradient

        if n.rule == "gemm_w":
            a_in = n.inputs[0] if n.inputs else None
            if a_in is not None and by[a_in].requires_grad:
                op = Operator(
                    name=f"{n.name}.bwd_data", kind="gemm", phase="bwd_data",
                    m=n.m, k=n.n, n=n.k, batch=n.batch, flop=2.0 * n.m * n.k * n.n * n.batch,
                    elements=n.m * n.k * n.batch, bytes_in=n.c_bytes, bytes_weight=n.b_bytes,
                    bytes_out=n.a_bytes, **common(n),
                )
                given[a_in] = (emit(op, deps),)
            wdeps = list(deps)
            if n.regather is not None:
                coll, nbytes = n.regather
                ag = Operator(
                    name=f"{n.name}.bwd_regather", kind="collective", phase="comm",
                    collective=coll, group="tp", comm_bytes=nbytes, bytes_in=nbytes,
                    bytes_out=nbytes, elements=int(nbytes // db), **common(n),
                )
                wdeps.append(emit(ag, own))
            merge = n.count if n.wgrad_merge else 1
            wk = n.m * merge
            wop = Operator(
                name=f"{n.name}.bwd_weight", kind="gemm", phase="bwd_weight",
                m=n.k, k=wk, n=n.n, batch=n.batch, flop=2.0 * n.k * wk * n.n * n.batch,
                elements=n.k * n.n * n.batch, bytes_in=(n.a_bytes + n.c_bytes) * merge,
                bytes_out=float(n.k * n.n * n.batch * db),
                **{**common(n), **({"count": n.count // merge} if merge > 1 else {})},
            )
            wgrad_src.setdefault(n.tied_to or n.name, []).append(emit(wop, wdeps))
            nbias = sum(p for s_, p in n.params if s_ == "bias")
            if bias_grad == "separate" and nbias:
                out_el = n.m * n.n * n.batch
                red = Operator(
                    name=f"{n.name}.bwd_bias", kind="reduction", phase="bwd_weight",
                    vector_op="add", elements=out_el, flop=float(out_el),
                    bytes_in=float(out_el * db), bytes_out=float(nbias * db), **common(n),
                )
                # it reads the output gradient only (not the forward output)
                wgrad_src.setdefault(n.tied_to or n.name, []).append(emit(red, upstream))
        elif n.rule == "gemm_aa":
            a_in, b_in = n.inputs[0], n.inputs[-1]
            outs: list[tuple[str, str]] = []
            if by[a_in].requires_grad:
                op = Operator(
                    name=f"{n.name}.bwd_data_a", kind="gemm", phase="bwd_data",
                    m=n.m, k=n.n, n=n.k, batch=n.batch, flop=2.0 * n.m * n.k * n.n * n.batch,
                    elements=n.m * n.k * n.batch, bytes_in=n.c_bytes + n.b_bytes,
                    bytes_out=n.a_bytes, **common(n),
                )
                outs.append((a_in, emit(op, deps)))
            if by[b_in].requires_grad:
                op = Operator(
                    name=f"{n.name}.bwd_data_b", kind="gemm", phase="bwd_data",
                    m=n.k, k=n.m, n=n.n, batch=n.batch, flop=2.0 * n.m * n.k * n.n * n.batch,
                    elements=n.k * n.n * n.batch, bytes_in=n.a_bytes + n.c_bytes,
                    bytes_out=n.b_bytes, **common(n),
                )
                outs.append((b_in, emit(op, deps)))
            for i, o in outs:  # C = T·Tᵀ gives two contributions to T
                grads[i].append(((o,), n.partial))
            grad_inputs = []
        elif n.rule == "attention":
            # FlashAttention-2 backward: recompute S = Q·Kᵀ and P, then dV = Pᵀ·dO,
            # dP = dO·Vᵀ, dS = P∘(dP − D), dQ = dS·K, dK = dSᵀ·Q: five GEMMs (2.5× the
            # forward's FLOPs); reads Q, K, V, O, dO, LSE and D = rowsum(dO∘O), writes
            # dQ, dK, dV
            assert n.op is not None
            lse = n.op.bytes_out - n.c_bytes
            op = Operator(
                name=f"{n.name}.bwd", kind="attention", phase="bwd_data", m=n.m, k=n.k,
                n=n.n, batch=n.batch, elements=n.bwd_elements, vector_op=n.bwd_key or "",
                flop=2.5 * n.op.flop,
                bytes_in=n.a_bytes + 2 * n.b_bytes + 2 * n.c_bytes + 2 * lse,
                bytes_out=n.a_bytes + 2 * n.b_bytes, **common(n),
            )
            name_a = emit(op, deps)
            for i in grad_inputs:
                given[i] = (name_a,)
        elif n.rule in ("vector", "loss"):
            assert n.op is not None
            key = n.bwd_key
            if key is None:
                for i in grad_inputs:
                    given[i] = upstream
                if n.params:  # e.g. a bias add: its gradient sums g over the broadcast axes
                    red = Operator(
                        name=f"{n.name}.bwd_param", kind="reduction", phase="bwd_weight",
                        vector_op="add", elements=n.out_elements, flop=float(n.out_elements),
                        bytes_in=float(n.out_elements * db),
                        bytes_out=float(sum(p for _, p in n.params) * db), **common(n),
                    )
                    wgrad_src.setdefault(n.name, []).append(emit(red, deps))
            else:
                info = vector_op(key)
                fan = (n.bwd_fan or max(len(grad_inputs), 1)) if key == "mul" else 1
                elems = n.bwd_elements * fan
                op = Operator(
                    name=f"{n.name}.bwd", kind=n.op.kind, phase="bwd_data", vector_op=key,
                    elements=elems, flop=float(elems * info.flop_per_element),
                    bytes_in=float(n.out_elements * db + n.op.stash_bytes
                                   + n.bwd_extra_bytes[0]),
                    bytes_out=float(elems * db + n.bwd_extra_bytes[1]),
                    bytes_weight=n.op.bytes_weight, row=n.op.row, **common(n),
                )
                name_v = emit(op, deps)
                for i in grad_inputs:
                    given[i] = (name_v,)
                if n.params:
                    wgrad_src.setdefault(n.name, []).append(name_v)
        elif n.rule == "embedding":
            op = Operator(
                name=f"{n.name}.bwd", kind="embedding_scatter", phase="bwd_weight",
                vector_op="embedding_scatter", elements=n.rows * n.dim,
                flop=float(n.rows * n.dim), bytes_in=float(n.rows * n.dim * db),
                bytes_out=float(n.rows * n.dim * db), **common(n),
            )
            wgrad_src.setdefault(n.tied_to or n.name, []).append(emit(op, deps))
        elif n.rule in ("collective", "pass", "seed"):
            if n.bwd_collective:
                c = collective_bwd(n, deps)
                for i in grad_inputs:
                    given[i] = (c,)
            else:
                for i in grad_inputs:
                    given[i] = upstream
        else:  # pragma: no cover - guarded by ForwardBuilder
            raise WorkloadError(f"{builder.name}: node {n.name!r} has unknown rule {n.rule!r}")
        for i in grad_inputs:
            if i in given:
                grads[i].append((given[i], n.partial))

    # ---- optimizer: one op per parameter tensor, after its gradient is complete -------
    opt_ops: list[Operator] = []
    for n in nodes:
        if not n.params:
            continue
        srcs = wgrad_src.get(n.name, [])
        if not srcs:
            continue  # never received a gradient (unused parameters)
        for suffix, numel in n.params:
            # weights shared by all executions of a block (LSTM steps) are updated once
            count, block = (1, "") if n.wgrad_merge else (n.count, n.block)
            sparse = n.rule == "embedding" and n.sparse_optimizer
            if sparse:
                numel = min(n.rows, numel // max(n.dim, 1)) * n.dim
            deps = srcs
            if grad_accumulation == "separate" and not sparse:
                deps = [emit(Operator(
                    name=f"{n.name}.{suffix}.grad_accum", kind="elementwise",
                    phase="bwd_weight", vector_op="add", elements=numel, flop=float(numel),
                    bytes_in=float(2 * numel * db), bytes_out=float(numel * db),
                    dtype_bytes=db, count=count, block=block, layer=n.layer, fwd=n.name),
                    srcs)]
            op = _optimizer_op(f"{n.name}.{suffix}.{optimizer}", optimizer, numel, db,
                               count=count, block=block, layer=n.layer, fwd=n.name)
            opt_ops.append(op)
            edges.extend((s, op.name) for s in deps)
    ops = tuple(fwd_ops + bwd_ops + opt_ops)
    return Graph(name=name or builder.name, ops=ops, edges=tuple(dict.fromkeys(edges)),
                 meta=dict(meta or {}))


def pass_of(op: Operator) -> str:
    """Which pass an operator belongs to: ``"fwd"``, ``"bwd"`` or ``"optimizer"``.

    Collectives have phase ``comm``; a backward collective carries the name of its forward
    node in ``fwd`` (forward collectives have ``fwd == ""``).

    >>> pass_of(Operator(name="x.bwd", kind="collective", phase="comm", collective="all_reduce",
    ...                  group="tp", fwd="x"))
    'bwd'
    """
    if op.phase == "fwd":
        return "fwd"
    if op.phase in ("bwd_data", "bwd_weight"):
        return "bwd"
    if op.phase == "optimizer":
        return "optimizer"
    return "bwd" if op.fwd else "fwd"


def summarize(graph: Graph, batch: int) -> dict[str, float]:
    """FLOP and byte totals of a training graph (multiplicity counted), per step and per
    sample: ``fwd_flop_per_sample``, ``train_flop_per_sample`` and per-phase totals."""
    cols = graph.columns
    flop = cols["flop"] * cols["count"]
    phase = cols["phase"]
    out: dict[str, float] = {}
    for p in ("fwd", "bwd_data", "bwd_weight", "optimizer", "comm"):
        out[f"flop_{p}"] = float(flop[phase == p].sum())
    gemm = cols["kind"] == "gemm"
    out["gemm_flop"] = float(flop[gemm].sum())
    out["train_flop"] = float(flop.sum())
    out["fwd_flop_per_sample"] = out["flop_fwd"] / batch
    out["train_flop_per_sample"] = out["train_flop"] / batch
    byt = (cols["bytes_in"] + cols["bytes_out"] + cols["bytes_weight"]) * cols["count"]
    out["bytes"] = float(byt.sum())
    out["comm_bytes"] = float((cols["comm_bytes"] * cols["count"]).sum())
    out["shard_params"] = float((cols["params"] * cols["count"])[phase == "fwd"].sum())
    return out


def with_stage(graph: Graph, stage: int) -> Graph:
    """A copy of ``graph`` with every operator's ``stage`` set (pipeline stage id)."""
    return graph.with_ops(tuple(replace(op, stage=stage) for op in graph.ops))
