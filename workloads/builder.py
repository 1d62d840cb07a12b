"""Forward-graph builder shared by every family (transformer, CNN, RNN, DLRM, ONNX).

A family module describes the *forward* pass as a list of :class:`Node` records with the
helpers of :class:`ForwardBuilder`; :func:`workloads.training.expand` then derives the
backward and optimizer operators. Each node knows

* its forward :class:`~dse.types.Operator` (``None`` for *virtual* nodes that cost
  nothing forward, e.g. Megatron's ``f`` operator or an ONNX ``Reshape``),
* its producers (``inputs``), how it is differentiated (``rule``),
* the parameter tensors it owns (for the optimizer step),
* the activation bytes it saves for its backward pass (``Operator.stash_bytes``); a tensor
  saved by two ops (e.g. the LayerNorm output read by both the QKV and the MLP GEMM of a
  parallel block) is counted once, by the first op that saves it.

Sizes are per execution of the node; ``count`` is its multiplicity (a transformer block
stored once and executed ``count`` times).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from dse.errors import WorkloadError
from dse.types import Operator
from workloads.vector_ops import vector_op

INDEX_BYTES = 8
"""Bytes per lookup index: PyTorch's ``nn.Embedding``/``EmbeddingBag`` take int64 indices."""
MASK_BYTES = 1
"""Bytes per dropout-mask element (a byte mask, as counted by Korthikanti et al. 2022)."""

RULES = ("gemm_w", "gemm_aa", "attention", "vector", "embedding", "loss", "collective", "pass",
         "seed")
LSE_BYTES = 4
"""Bytes per row statistic of fused attention (the fp32 log-sum-exp FlashAttention keeps)."""


@dataclass(kw_only=True)
class Node:
    """One forward node (internal, mutable while a graph is being built)."""

    name: str
    rule: str
    op: Operator | None
    inputs: tuple[str, ...] = ()
    out_elements: int = 0
    count: int = 1
    block: str = ""
    layer: int = -1
    params: tuple[tuple[str, int], ...] = ()
    """Parameter tensors owned: (suffix, number of elements)."""
    tied_to: str = ""
    """gemm_w only: the node owning this GEMM's weight (tied embeddings)."""
    force_grad: bool = False
    """Output needs a gradient even without parameters upstream (a pipeline stage input)."""
    partial: bool = False
    """Reads a disjoint part of its input (a slice of the fused QKV output): its gradient
    contributions are written side by side and need no accumulation."""
    # gemm
    m: int = 0
    k: int = 0
    n: int = 0
    batch: int = 1
    a_bytes: float = 0.0
    b_bytes: float = 0.0
    c_bytes: float = 0.0
    wgrad_merge: bool = False
    """Compute the weight gradient once over all ``count`` executions (LSTM BPTT)."""
    regather: tuple[str, float] | None = None
    """(collective, bytes): re-gather the saved input shard before bwd_weight (Megatron SP)."""
    # vector / loss
    bwd_key: str | None = None
    bwd_elements: int = 0
    bwd_fan: int = 0
    """``mul`` only: products in the backward per output element (0: one per input that
    needs a gradient)."""
    bwd_extra_bytes: tuple[float, float] = (0.0, 0.0)
    """HBM bytes (read, written) the backward moves beyond its generic form (the fp32
    cross entropy's multiply and cast back: :meth:`ForwardBuilder.loss`)."""
    # collective
    bwd_collective: str = ""
    comm_bytes: float = 0.0
    group: str = "tp"
    # embedding
    rows: int = 0
    """Rows looked up per execution (embedding)."""
    dim: int = 0
    sparse_optimizer: bool = False
    """Update only the looked-up rows (DLRM); else the whole table (transformers)."""
    requires_grad: bool = field(default=False, repr=False)


class ForwardBuilder:
    """Collects forward :class:`Node` s in topological order (each input must exist)."""

    def __init__(self, name: str, *, dtype_bytes: int = 2) -> None:
        self.name = name
        self.dtype_bytes = dtype_bytes
        self.nodes: list[Node] = []
        self._by_name: dict[str, Node] = {}
        self._saved: set[str] = set()
        self.saves: list[tuple[str, str, str, float]] = []
        """Every save of a tensor in a repeated block: (block, tensor, saving op, bytes),
        a tensor listed once per op that saves it (per-module recomputation,
        :mod:`cost_models.recompute`)."""
        self._block = ""
        self._count = 1
        self._layer = -1

    # ------------------------------------------------------------------ bookkeeping
    @contextmanager
    def block(self, name: str, count: int, layer: int = -1) -> Iterator[None]:
        """Nodes added inside run ``count`` times one after the other (a repeated block)."""
        if count < 1:
            raise WorkloadError(f"{self.name}: block {name!r} count={count} must be >= 1")
        old = (self._block, self._count, self._layer)
        self._block, self._count, self._layer = name, count, layer
        try:
            yield
        finally:
            self._block, self._count, self._layer = old

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def _add(self, node: Node) -> str:
        if node.name in self._by_name:
            raise WorkloadError(f"{self.name}: two operators named {node.name!r}")
        for i in node.inputs:
            if i not in self._by_name:
                raise WorkloadError(f"{self.name}: {node.name!r} reads {i!r}, which is not "
                                    "defined before it")
        node.count, node.block, node.layer = self._count, self._block, self._layer
        if node.op is not None:
            from dataclasses import replace
            node.op = replace(node.op, count=self._count, block=self._block, layer=self._layer)
        self.nodes.append(node)
        self._by_name[node.name] = node
        return node.name

    def save(self, tensor: str, nbytes: float, by: str = "") -> float:
        """Bytes newly kept for backward: ``nbytes`` the first time ``tensor`` is saved, else 0.

        ``tensor`` names the value (usually the producing node); saved values are tracked per
        builder, so a block stored once counts its saved tensors once per execution. ``by``:
        the saving op (logged in :attr:`saves` for ops of a repeated block)."""
        if self._block:
            self.saves.append((self._block, tensor, by, float(nbytes)))
        if tensor in self._saved:
            return 0.0
        self._saved.add(tensor)
        return float(nbytes)

    # ------------------------------------------------------------------ node helpers
    def gemm(self, name: str, x: str | None, *, m: int, k: int, n: int, batch: int = 1,
             bias: bool = False, y: str | None = None, tied_to: str = "",
             a_bytes: float | None = None, c_bytes: float | None = None,
             save_a: str | None = None, save_a_bytes: float | None = None,
             save_b: str | None = None, save_b_bytes: float | None = None,
             wgrad_merge: bool = False,
             regather: tuple[str, float] | None = None, params_override: int | None = None,
             ) -> str:
        """A GEMM ``C[m×n] = A[m×k] · B[k×n]``, ``batch`` times.

        With ``y=None`` the B operand is a trainable weight (``k·n·batch`` elements, plus a bias
        of ``n·batch`` if ``bias``), owned by this node unless ``tied_to`` names its owner.
        With ``y`` given, B is the activation produced by ``y`` (attention QKᵀ, AV).
        ``x`` is the producer of A (``None``: a graph input that needs no gradient).
        ``a_bytes``/``c_bytes`` override the operand sizes (convolutions read the input
        tensor, not its im2col matrix). ``save_a``/``save_b`` name the tensors kept for
        backward (default: the producers).
        """
        for d, v in (("m", m), ("k", k), ("n", n), ("batch", batch)):
            if v < 1:
                raise WorkloadError(f"{self.name}: gemm {name!r} has {d}={v}; must be >= 1")
        db = self.dtype_bytes
        a = float(m * k * batch * db) if a_bytes is None else float(a_bytes)
        b = float(k * n * batch * db)
        c = float(m * n * batch * db) if c_bytes is None else float(c_bytes)
        weight = y is None
        params: tuple[tuple[str, int], ...] = ()
        nparams = 0
        if weight and not tied_to:
            params = (("weight", k * n * batch),)
            if bias:
                params += (("bias", n * batch),)
            nparams = sum(p for _, p in params)
        if params_override is not None:
            nparams = params_override
        stash = 0.0
        if x is not None or weight:
            # bwd_weight needs A whenever B is a weight; bwd of the other operand needs A too
            sa = save_a if save_a is not None else (x or f"{name}:input")
            stash += self.save(sa, a if save_a_bytes is None else save_a_bytes, name)
        if not weight:
            stash += self.save(save_b if save_b is not None else y,  # type: ignore[arg-type]
                               b if save_b_bytes is None else save_b_bytes, name)
        op = Operator(
            name=name, kind="gemm", phase="fwd", m=m, k=k, n=n, batch=batch,
            flop=2.0 * m * k * n * batch, elements=m * n * batch,
            bytes_in=a + (0.0 if weight else b), bytes_out=c,
            bytes_weight=b if weight else 0.0, dtype_bytes=db, params=nparams,
            stash_bytes=stash,
        )
        inputs = tuple(i for i in (x, y) if i is not None)
        return self._add(Node(
            name=name, rule="gemm_w" if weight else "gemm_aa", op=op, inputs=inputs,
            out_elements=m * n * batch, params=params, tied_to=tied_to, m=m, k=k, n=n,
            batch=batch, a_bytes=a, b_bytes=b, c_bytes=c, wgrad_merge=wgrad_merge,
            regather=regather,
        ))

    def attention(self, name: str, q: str, k: str, v: str, *, batch: int, heads: int,
                  kv_heads: int, seq_q: int, seq_kv: int, head_dim: int, causal: bool,
                  dropout: bool = False, context_parallel: int = 1) -> str:
        """Fused attention ``softmax(Q·Kᵀ/√d)·V`` (FlashAttention 2, Dao 2023): the score
        tiles live on chip, the backward recomputes them.

        The operator has ``m = seq_q``, ``k = head_dim``, ``n = seq_kv``, ``batch =
        batch·heads`` and ``elements`` = the score elements computed (``s_q·s_kv`` per
        head; a causal mask skips the blocks above the diagonal: ``s(s+1)/2``). FLOPs are
        the two GEMMs' ``4·d`` per score element. HBM bytes are Q, K, V in and O plus the
        fp32 log-sum-exp out; the backward keeps Q, K, V, O and the log-sum-exp (no score
        tensor). With ``context_parallel = cp > 1`` the queries are this rank's
        ``seq_kv/cp`` tokens against all ``seq_kv`` keys (ring attention); a causal mask
        with Megatron's load-balanced chunks (rank ``i`` holds chunks ``i`` and
        ``2cp−1−i``) gives every rank ``1/cp`` of the causal scores."""
        for dname, val in (("batch", batch), ("heads", heads), ("kv_heads", kv_heads),
                           ("seq_q", seq_q), ("seq_kv", seq_kv), ("head_dim", head_dim)):
            if val < 1:
                raise WorkloadError(f"{self.name}: attention {name!r} has {dname}={val}; "
                                    "must be >= 1")
        db = self.dtype_bytes
        bh = batch * heads
        if causal and seq_q * context_parallel == seq_kv:
            scores = bh * seq_kv * (seq_kv + 1) // (2 * context_parallel)
        else:
            scores = bh * seq_q * seq_kv
        q_b = float(bh * seq_q * head_dim * db)
        kv_b = float(batch * kv_heads * seq_kv * head_dim * db)
        o_b = q_b
        lse_b = float(bh * seq_q * LSE_BYTES)
        kv_local = kv_b / context_parallel  # K, V chunks this rank keeps (ring attention)
        stash = (self.save(q, q_b, name) + self.save(k, kv_local, name)
                 + self.save(v, kv_local, name) + self.save(name, o_b, name)
                 + self.save(f"{name}:lse", lse_b, name))
        key = "flash_attn_dropout" if dropout else "flash_attn"
        op = Operator(
            name=name, kind="attention", phase="fwd", m=seq_q, k=head_dim, n=seq_kv,
            batch=bh, elements=scores, vector_op=key, flop=4.0 * head_dim * scores,
            bytes_in=q_b + 2 * kv_b, bytes_out=o_b + lse_b, dtype_bytes=db,
            stash_bytes=stash,
        )
        return self._add(Node(
            name=name, rule="attention", op=op, inputs=(q, k, v), out_elements=bh * seq_q
            * head_dim, m=seq_q, k=head_dim, n=seq_kv, batch=bh, a_bytes=q_b, b_bytes=kv_b,
            c_bytes=o_b, bwd_key=vector_op(key).bwd, bwd_elements=scores,
        ))

    def vector(self, name: str, inputs: Sequence[str | None], *, key: str, elements: int,
               kind: str = "elementwise", params: tuple[tuple[str, int], ...] = (),
               saves: Sequence[tuple[str, float]] = (), flop: float | None = None,
               in_elements: int | None = None, out_bytes: float | None = None,
               bwd_elements: int | None = None, partial: bool = False,
               bwd_fan: int = 0, row: int = 0) -> str:
        """A vector op producing ``elements`` outputs from ``inputs`` (``None`` = graph input).

        ``saves`` lists (tensor, bytes) kept for the backward pass. ``in_elements`` is the
        number of elements read (default: ``elements`` per input). ``row``: elements of one
        row of a row-wise op (softmax, norm), which its kernel holds on chip."""
        info = vector_op(key)
        db = self.dtype_bytes
        real_inputs = tuple(i for i in inputs if i is not None)
        n_in = max(len(tuple(inputs)), 1)
        read = float((in_elements if in_elements is not None else elements * n_in) * db)
        stash = sum(self.save(t, b, name) for t, b in saves)
        nparams = sum(p for _, p in params)
        op = Operator(
            name=name, kind=kind, phase="fwd", vector_op=key, elements=elements,
            flop=float(elements * info.flop_per_element) if flop is None else float(flop),
            bytes_in=read, bytes_out=float(elements * db) if out_bytes is None else out_bytes,
            bytes_weight=float(nparams * db), dtype_bytes=db, params=nparams, stash_bytes=stash,
            row=int(row),
        )
        return self._add(Node(
            name=name, rule="vector", op=op, inputs=real_inputs, out_elements=elements,
            params=params, bwd_key=info.bwd,
            bwd_elements=elements if bwd_elements is None else bwd_elements, partial=partial,
            bwd_fan=bwd_fan,
        ))

    def dropout(self, name: str, x: str, *, elements: int) -> str:
        """Dropout with a 1-byte mask saved for backward."""
        return self.vector(name, [x], key="dropout", elements=elements,
                           saves=[(f"{name}:mask", elements * MASK_BYTES)],
                           out_bytes=float(elements * (self.dtype_bytes + MASK_BYTES)))

    def embedding(self, name: str, *, rows: int, dim: int, table_rows: int,
                  sparse_optimizer: bool = False, lookups_per_row: int = 1,
                  params: bool = True, read_rows: int | None = None,
                  tied_to: str = "") -> str:
        """Gather ``rows`` rows of a ``table_rows × dim`` table (sum-pooled over
        ``lookups_per_row`` lookups per output row, as ``EmbeddingBag``). ``read_rows``
        is the number of rows actually read (vocab-parallel shards read only their hits).
        ``tied_to`` names the embedding node owning a shared table (its optimizer step
        waits for this node's scatter too)."""
        db = self.dtype_bytes
        looked = rows * lookups_per_row if read_rows is None else read_rows
        op = Operator(
            name=name, kind="embedding_gather", phase="fwd", vector_op="",
            elements=rows * dim, flop=float(rows * dim * (lookups_per_row - 1)),
            bytes_in=float(rows * lookups_per_row * INDEX_BYTES),
            bytes_weight=float(looked * dim * db),
            bytes_out=float(rows * dim * db), dtype_bytes=db,
            params=table_rows * dim if params and not tied_to else 0,
            stash_bytes=self.save(f"{name}:indices", rows * lookups_per_row * INDEX_BYTES,
                                  name),
        )
        return self._add(Node(
            name=name, rule="embedding", op=op, inputs=(), out_elements=rows * dim,
            params=(("weight", table_rows * dim),) if params and not tied_to else (),
            rows=looked, dim=dim, sparse_optimizer=sparse_optimizer, tied_to=tied_to,
        ))

    def collective(self, name: str, x: str, *, collective: str, comm_bytes: float,
                   elements: int, bwd_collective: str = "", group: str = "tp") -> str:
        """A forward collective (Megatron ``g``: all-reduce; SP: all-gather/reduce-scatter).
        ``bwd_collective`` is the collective its backward runs ('' = gradient passes through).
        ``comm_bytes`` is the full (unsharded) tensor size, the NCCL-tests size convention."""
        op = Operator(
            name=name, kind="collective", phase="comm", collective=collective, group=group,
            comm_bytes=float(comm_bytes), elements=elements, dtype_bytes=self.dtype_bytes,
            bytes_in=float(comm_bytes), bytes_out=float(comm_bytes),
        )
        return self._add(Node(
            name=name, rule="collective", op=op, inputs=(x,), out_elements=elements,
            bwd_collective=bwd_collective, comm_bytes=float(comm_bytes), group=group,
        ))

    def virtual(self, name: str, inputs: Sequence[str], *, elements: int,
                bwd_collective: str = "", comm_bytes: float = 0.0, group: str = "tp",
                force_grad: bool = False, partial: bool = False) -> str:
        """A node with no forward cost. Its backward is a pass-through, or the collective
        ``bwd_collective`` (Megatron's ``f`` operator: identity forward, all-reduce backward).
        ``force_grad`` marks a pipeline-stage input whose gradient is sent upstream."""
        return self._add(Node(
            name=name, rule="pass", op=None, inputs=tuple(inputs), out_elements=elements,
            bwd_collective=bwd_collective, comm_bytes=float(comm_bytes), group=group,
            force_grad=force_grad, partial=partial,
        ))

    def seed(self, name: str, x: str, *, elements: int) -> str:
        """The output of a pipeline stage without the loss: its gradient arrives from the
        next stage (backward starts here without a dependency)."""
        return self._add(Node(name=name, rule="seed", op=None, inputs=(x,),
                              out_elements=elements))

    def loss(self, name: str, x: str, *, key: str, elements: int, rows: int,
             saves: Sequence[tuple[str, float]] = (), mode: str = "fused") -> str:
        """The loss over ``elements`` inputs (logits) in ``rows`` rows (tokens/samples).

        ``mode`` (:data:`workloads.spec.CROSS_ENTROPY`): ``fused`` reads the 16-bit logits
        once. ``fp32`` is Megatron-LM's ``vocab_parallel_cross_entropy(output.float())``, a
        kernel per pass over an fp32 copy: forward the cast (16-bit read, 4 B written),
        the row max (4 B read), ``sub_``, ``exp`` and ``div_`` in place (4 B read and
        written each) and the row sum (4 B read): ``db + 20`` bytes read and 16 written
        per logit; backward the in-place ``mul_`` of the saved fp32 softmax (4 B read and
        written) and the cast back (4 B read, ``db`` written). ``fp32_fused`` is
        Megatron-Core's native fused form, the same steps in ``torch.compile``d kernels:
        forward cast and max (``db`` read, 4 written), subtract-exp-sum (4 read, 4
        written), divide (4 read, 4 written): ``db + 8`` read, 12 written; backward one
        kernel reading the softmax, writing it back multiplied (4 B) and its 16-bit cast.
        The generic backward counts the saved tensor's read and the 16-bit write; the
        caller saves the fp32 softmax (4 B per logit) for the two fp32 forms."""
        info = vector_op(key)
        db = self.dtype_bytes
        rd, wr, extra = float(elements * db), 0.0, (0.0, 0.0)
        if mode == "fp32":
            rd, wr = float(elements * (db + 20)), float(elements * 16)
            extra = (float(elements * 4), float(elements * 4))
        elif mode == "fp32_fused":
            rd, wr = float(elements * (db + 8)), float(elements * 12)
            extra = (0.0, float(elements * 4))
        elif mode != "fused":
            raise WorkloadError(f"{name}: loss mode={mode!r}; valid: fused, fp32, fp32_fused")
        op = Operator(
            name=name, kind="loss", phase="fwd", vector_op=key, elements=elements,
            flop=float(elements * info.flop_per_element), bytes_in=rd,
            bytes_out=wr + float(rows * 4), dtype_bytes=db,
            stash_bytes=sum(self.save(t, b, name) for t, b in saves),
        )
        return self._add(Node(name=name, rule="loss", op=op, inputs=(x,), out_elements=rows,
                              bwd_key=info.bwd, bwd_elements=elements, bwd_extra_bytes=extra))
