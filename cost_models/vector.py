"""Vector-unit cost model: cycles per element of every ``Operator.vector_op`` key.

A vector op of ``elements`` output elements on ``vector_cores`` SIMD cores of
``vector_lanes`` lanes takes (WHAM's ``vector_core_estimator.py``, docs/sources.md M3)::

    cycles = ceil(elements / (vector_lanes · vector_cores)) · pe_cycles(key)

``pe_cycles`` comes from WHAM's per-op table where the key is in it (relu/add/mul 1, norms 1,
dropout 2, softmax/div/mean 10, sigmoid/silu 12, log-softmax/sin/cos 13, pow/sqrt/erf 15,
tanh 27; exp and log, absent from it, take the 13 cycles of its other range-reduction
functions) and is composed from those primitives for the composite keys of
``workloads.vector_ops`` (each composition is written next to its row in
:data:`PE_CYCLES`). Backward keys follow WHAM's rule "mostly 1–2 cycles": 2 per element
unless WHAM lists more (div 10, pow/sqrt 16, erf 15, hardswish 15, sigmoid 22) or the
backward recomputes a transcendental (``gelu_bwd`` recomputes tanh). Embedding gathers cost no vector cycles (pure data movement,
memory-bound; WHAM treats Embedding as a no-op), scatter-adds 1 cycle per element (WHAM's
gradient accumulation). Pooling costs its window per output element (WHAM: "pooling costs
the kernel area"), taken from the op's FLOPs per element.

Unknown keys get :data:`DEFAULT_FWD_CYCLES` (forward) or :data:`DEFAULT_BWD_CYCLES`
(backward phases, or keys ending in ``_bwd``) and are reported by
:func:`unknown_keys`, so a user sees which ops were costed by default.

>>> pe_cycles("relu", "fwd"), pe_cycles("tanh", "fwd"), pe_cycles("softmax_bwd", "bwd_data")
(1, 27, 2)
>>> vector_cycles(1_048_576, 128 * 2, "relu")       # docs/sources.md M7 worked example
4096
>>> vector_cycles(1_048_576, 128 * 2, "tanh")
110592
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "ADAM_CYCLES_PER_PARAM",
    "DEFAULT_BWD_CYCLES",
    "DEFAULT_FWD_CYCLES",
    "PE_CYCLES",
    "SGD_CYCLES_PER_PARAM",
    "pe_cycles",
    "pe_cycles_array",
    "unknown_keys",
    "vector_cycles",
]

# Primitive costs from WHAM's table (docs/sources.md M3). exp/log are not in the table;
# they take the cost of the table's other range-reduction + polynomial functions
# (LogSoftmax, Sin, Cos: 13).
_ALU, _DIV, _EXP, _SQRT, _SIGMOID, _TANH = 1, 10, 13, 15, 12, 27

ADAM_CYCLES_PER_PARAM = (3 * _ALU            # m = b1*m + (1-b1)*g: mul, mul, add
                         + 4 * _ALU          # v = b2*v + (1-b2)*g*g: mul, mul, mul, add
                         + 2 * _ALU          # bias corrections m/(1-b1^t), v/(1-b2^t): mul by
                                             # per-step scalars
                         + _SQRT + _ALU      # sqrt(v_hat) + eps
                         + _DIV              # m_hat / (...)
                         + 2 * _ALU)         # * lr, p -= ...
"""Adam step per parameter = 37 cycles (14 operations, two of them sqrt and div)."""

SGD_CYCLES_PER_PARAM = 2
"""SGD step per parameter: WHAM's ``2·ceil(params/(VC_PE·Cx·Cy))`` (docs/sources.md M3)."""

PE_CYCLES: dict[str, int] = {
    # ---- forward, WHAM table ------------------------------------------------------------
    "add": 1, "mul": 1, "relu": 1,
    "layernorm": 1, "rmsnorm": 1, "batchnorm": 1,        # "norms: 1"
    "dropout": 2, "softmax": 10, "sigmoid": _SIGMOID, "silu": _SIGMOID, "tanh": _TANH,
    "cross_entropy": 13,                                  # LogSoftmax 13 per logit
    "div": _DIV, "sqrt": _SQRT, "erf": _SQRT, "pow": _SQRT, "hardswish": 14,
    "exp": _EXP, "log": _EXP,                             # transcendental class (see _EXP)
    "abs": 1, "broadcast_add": 1,
    "permute": _ALU,                                      # one copy per element
    "weighted_sum": 2 * _ALU,                             # mul, add
    "leaky_relu": 2 * _ALU,                               # compare, mul
    # ---- forward composites -------------------------------------------------------------
    "relu6": 2 * _ALU,                                    # max, min
    "gelu": 8 * _ALU + _TANH,                             # tanh form: x^3 (2), *c, +x, *c,
                                                          # tanh, +1, *x, *0.5 -> 35
    "swiglu": _SIGMOID + _ALU,                            # silu(a) * b -> 13
    "rotary": 3 * _ALU,                                   # x*cos + rot(x)*sin
    "bce": _SIGMOID + 2 * _EXP + 5 * _ALU,                # sigmoid, 2 log, 5 ALU -> 43
    "embedding_scatter": 1,                               # gradient accumulation, 1/element
    "embedding_gather": 0,                                # data movement only
    "adam": ADAM_CYCLES_PER_PARAM,
    "sgd": SGD_CYCLES_PER_PARAM,
    "generic": 1,
    # ---- backward: WHAM "mostly 1-2" -> 2, with WHAM's exceptions ---------------------
    "relu_bwd": 1, "relu6_bwd": 2, "dropout_bwd": 2, "tanh_bwd": 2, "softmax_bwd": 2,
    "layernorm_bwd": 2, "rmsnorm_bwd": 2, "batchnorm_bwd": 2, "cross_entropy_bwd": 2,
    "bce_bwd": 2, "maxpool_bwd": 1, "avgpool_bwd": 1,
    "sigmoid_bwd": 22,                                    # WHAM's per-op estimator
    "div_bwd": 10, "sqrt_bwd": 16, "pow_bwd": 16, "erf_bwd": 15, "hardswish_bwd": 15,
    "log_bwd": _DIV,                                      # g / x: a division
    "exp_bwd": 1, "abs_bwd": 1, "leaky_relu_bwd": 2, "broadcast_add_bwd": 1,
    "weighted_sum_bwd": 3,                                # dx = g·p; dp = Σ g·x
    "silu_bwd": _SIGMOID + 2,                             # recompute sigmoid, then 1-2
    "swiglu_bwd": _SIGMOID + 2,                           # recompute sigmoid(a), then 1-2
    "gelu_bwd": _TANH + 2,                                # recompute tanh(u), then 1-2
    # ---- fused attention, per score element (cost_models/attention.py) -----------------
    "flash_attn": 10,                                     # online softmax: WHAM's softmax
    "flash_attn_dropout": 10 + 2,                         # + in-kernel dropout
    "flash_attn_bwd": 10 + 2,                             # recompute P (softmax), dS 1-2
    "flash_attn_dropout_bwd": 10 + 2 + 2,                 # + dropout mask regenerated
}
"""Cycles per element per lane for every known key (pooling keys are per-op: see below)."""

DEFAULT_FWD_CYCLES = 1
"""Unknown forward key: one ALU operation per element (WHAM's elementwise baseline)."""
DEFAULT_BWD_CYCLES = 2
"""Unknown backward key: WHAM's "mostly 1–2" backward rule."""

_POOL_KEYS = ("maxpool", "avgpool")


def _is_backward(key: str, phase: str) -> bool:
    return key.endswith("_bwd") or phase in ("bwd_data", "bwd_weight")


def pe_cycles(key: str, phase: str = "fwd", *, kind: str = "", flop_per_element: float = 0.0
              ) -> int:
    """Cycles per element of one lane for ``key`` (see the module docstring).

    ``kind`` resolves empty keys (``embedding_gather``/``embedding_scatter``, optimizer);
    ``flop_per_element`` sets the window of pooling ops (at least 1 cycle).

    >>> pe_cycles("adam", "optimizer"), pe_cycles("sgd", "optimizer")
    (37, 2)
    >>> pe_cycles("maxpool", flop_per_element=8.0), pe_cycles("", kind="embedding_gather")
    (8, 0)
    >>> pe_cycles("not_a_key", "fwd"), pe_cycles("not_a_key", "bwd_data")
    (1, 2)
    """
    if not key and kind in ("embedding_gather", "embedding_scatter"):
        key = kind
    if key in PE_CYCLES:
        return PE_CYCLES[key]
    if key in _POOL_KEYS:
        return max(1, int(np.ceil(flop_per_element)))
    return DEFAULT_BWD_CYCLES if _is_backward(key, phase) else DEFAULT_FWD_CYCLES


def unknown_keys(keys: Iterable[tuple[str, str]]) -> list[str]:
    """The distinct ``(key, kind)`` keys that are costed by default, sorted."""
    out = set()
    for key, kind in keys:
        if not key and kind in ("embedding_gather", "embedding_scatter"):
            continue
        if key not in PE_CYCLES and key not in _POOL_KEYS:
            out.add(key or f"<empty vector_op of {kind}>")
    return sorted(out)


def pe_cycles_array(keys: Any, phases: Any, kinds: Any, flop: Any, elements: Any
                    ) -> np.ndarray:
    """:func:`pe_cycles` over operator columns (object arrays of keys/phases/kinds, float
    arrays of FLOPs and elements); returns int64 cycles per element."""
    out = np.empty(len(keys), dtype=np.int64)
    for i, (k, p, kd, f, e) in enumerate(zip(keys, phases, kinds, flop, elements)):
        out[i] = pe_cycles(str(k), str(p), kind=str(kd),
                           flop_per_element=float(f) / float(e) if e else 0.0)
    return out


def vector_cycles(elements: Any, lanes_total: Any, key: str, phase: str = "fwd", *,
                  kind: str = "", flop_per_element: float = 0.0) -> Any:
    """``ceil(elements / lanes_total) · pe_cycles(key)``; broadcasts over numpy arrays.

    ``lanes_total`` is ``vector_lanes · vector_cores``.
    """
    e = np.asarray(elements, dtype=np.float64)
    lanes = np.asarray(lanes_total, dtype=np.float64)
    out = np.ceil(e / lanes) * pe_cycles(key, phase, kind=kind, flop_per_element=flop_per_element)
    return int(out) if out.ndim == 0 else out.astype(np.int64)
