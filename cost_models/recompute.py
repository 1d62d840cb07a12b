"""Megatron-Core's per-module activation recomputation (``--recompute-granularity
selective --recompute-modules …``) on a transformer layer graph.

A module is a set of a layer's forward operators, recognised by their names
(:mod:`workloads.transformer` names every operator ``<layer>.<part>``):

============== =================================================== ===================
module         operators                                           checkpoint
============== =================================================== ===================
core_attn      the attention core: fused ``attn.core`` (and its     inputs kept
               context-parallel ring), or ``QKᵀ``, softmax, its
               dropout, ``A·V``
layernorm      the two pre-norms ``norm1``, ``norm2``               output discarded
mla_up_proj    MLA's query/key-value norms and up-projections,      output discarded
               the rotary embedding and the per-head Q, K, V
mlp            a dense layer's MLP with its tensor-parallel         inputs kept
               collectives
moe            a MoE layer's router, permutation, dispatch,         inputs kept
               experts, combine and shared experts
moe_act        the experts' activation (SwiGLU)                     output discarded
shared_experts the shared experts                                   inputs kept
============== =================================================== ===================

(Megatron-Core ``TransformerConfig.recompute_modules``; docs/sources.md, megatron-core-
recompute.) **Time**: the backward re-runs the module's forward operators — the sum of
their latencies on the design, collectives included (what the checkpoint re-executes).
**Memory** (:func:`kept_stash_bytes`), from the tensors each operator saves for its
backward (``Graph.meta["saves"]``: tensor, saving operator, bytes):

* a module checkpointed normally keeps only its inputs: a tensor produced *inside* a
  recomputed module and saved only by operators of that module is dropped;
* an output-discarding module (``CheckpointWithoutOutput``) also releases its outputs
  once their consumers have run: every tensor it produces is dropped, whoever saves it;
* everything else is kept. The backward re-materializes one module of one layer at a time:
  the largest module's dropped bytes are the working memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dse.types import RECOMPUTE_MODULES

__all__ = ["DISCARD_OUTPUT", "RECOMPUTE_MODULES", "kept_stash_bytes", "module_of",
           "module_op_indices"]

DISCARD_OUTPUT = frozenset({"layernorm", "mla_up_proj", "moe_act"})

_CORE = {"attn.core", "attn.qk", "attn.softmax", "attn.dropout", "attn.av"}
_MLA_UP = {"attn.q_norm", "attn.q_up", "attn.kv_norm", "attn.kv_up", "attn.rotary",
           "attn.q_heads", "attn.k_heads", "attn.v_heads"}
_NORMS = {"norm1", "norm2"}
_MLP_OUTSIDE = {"mlp.residual", "mlp.resid_dropout"}


def _part(name: str) -> str:
    """``<layer>.<part>`` → ``part`` with any ``:tensor`` suffix and backward suffix cut."""
    base = name.split(":", 1)[0]
    return base.split(".", 1)[1] if "." in base else base


def module_of(name: str) -> set[str]:
    """The recompute modules a layer operator (or the tensor it produces) belongs to."""
    p = _part(name)
    out: set[str] = set()
    root = ".".join(p.split(".")[:2])
    if root in _CORE or p.startswith("attn.cp_"):
        out.add("core_attn")
    if p in _NORMS:
        out.add("layernorm")
    if root in _MLA_UP:
        out.add("mla_up_proj")
    if p.startswith("mlp.") and p not in _MLP_OUTSIDE:
        out.add("mlp")
    if p.startswith("moe."):
        out.add("moe")
        if p.startswith("moe.shared."):
            out.add("shared_experts")
        if p in ("moe.experts.swiglu", "moe.experts.act"):
            out.add("moe_act")
    return out


def module_op_indices(ops: Sequence[Any], modules: Iterable[str]) -> tuple[int, ...]:
    """Indices of the layer operators (``block`` set) of ``ops`` in any of ``modules``."""
    want = set(modules)
    return tuple(i for i, op in enumerate(ops)
                 if op.block and module_of(op.name) & want)


def kept_stash_bytes(saves: Sequence[tuple[str, str, float]], modules: Iterable[str]
                     ) -> tuple[float, float]:
    """(bytes one layer keeps for its backward, bytes its largest recomputed module
    re-materializes) with ``modules`` recomputed (module docstring). ``saves``: (tensor,
    saving operator, bytes) of one layer, a tensor listed once per operator saving it."""
    want = set(modules)
    by_tensor: dict[str, tuple[float, list[str]]] = {}
    for tensor, saver, nbytes in saves:
        by_tensor.setdefault(tensor, (float(nbytes), []))[1].append(saver)
    kept = 0.0
    dropped: dict[str, float] = {}
    for tensor, (nbytes, savers) in by_tensor.items():
        made_in = module_of(tensor) & want
        discard = made_in & DISCARD_OUTPUT
        if discard:
            owner = sorted(discard)[0]
        else:
            # kept when some saver is outside every recomputed module that produced it
            inside = [made_in & module_of(s) for s in savers]
            if not made_in or not all(inside):
                kept += nbytes
                continue
            owner = sorted(inside[0])[0]
        dropped[owner] = dropped.get(owner, 0.0) + nbytes
    return kept, max(dropped.values(), default=0.0)
