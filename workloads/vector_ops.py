"""Vector-op keys used in ``Operator.vector_op`` and their FLOP counts per element.

The cost models time a vector op as ``elements / (lanes · cores) × cycles(key)`` with the
cycle table of ``docs/sources.md`` M3 (WHAM's ``vector_core_estimator.py``); this
module only names the keys the workload graphs use and gives the *arithmetic* FLOP count
per element that goes into ``Operator.flop`` (a transcendental function — exp, tanh, erf,
sqrt — counts as one FLOP; every count below is derived from the formula in the comment).
GEMM FLOPs are always ``2·m·k·n·batch`` and are not in this table.

Forward keys map to the method table directly (relu, add, mul → 1 cycle; dropout 2;
softmax 10; sigmoid/silu 12; tanh 27 …). Backward keys are ``<key>_bwd``; WHAM's
backward cycle counts are "mostly 1–2" (docs/sources.md M3). Keys with no row in that table
(``rotary``, ``swiglu``, ``cross_entropy``, ``bce``, ``adam`` …) are composites; their
description names the primitive ops they consist of so a cost model can add them up.

>>> VECTOR_OPS["softmax"].flop_per_element
5
>>> VECTOR_OPS["softmax"].bwd
'softmax_bwd'
>>> VECTOR_OPS["add"].bwd is None   # addition passes gradients through unchanged
True
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.errors import WorkloadError


@dataclass(frozen=True, kw_only=True)
class VectorOp:
    """One vector-op key: FLOPs per output element and the key of its backward op."""

    key: str
    flop_per_element: int
    bwd: str | None
    """Backward key, or ``None`` when the gradient passes through unchanged (add)."""
    formula: str
    """The formula the FLOP count is derived from, and the primitive ops it uses."""

    def __post_init__(self) -> None:
        if self.flop_per_element < 0:
            raise WorkloadError(f"VectorOp[{self.key}].flop_per_element="
                                f"{self.flop_per_element} must be >= 0")


def _table(*rows: tuple[str, int, str | None, str]) -> dict[str, VectorOp]:
    return {k: VectorOp(key=k, flop_per_element=f, bwd=b, formula=s) for k, f, b, s in rows}


VECTOR_OPS: dict[str, VectorOp] = _table(
    # ---- forward ------------------------------------------------------------------------
    ("add", 1, None, "y = a + b (gradient passes through to both inputs)"),
    ("mul", 1, "mul", "y = a · b; backward da = g·b, db = g·a (one mul per input)"),
    ("relu", 1, "relu_bwd", "y = max(x, 0)"),
    ("relu6", 2, "relu6_bwd", "y = min(max(x, 0), 6)"),
    ("gelu", 9, "gelu_bwd", ("0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): x³ 2 mul, ·0.044715, "
     "+x, ·√(2/π), tanh, +1, ·x, ·0.5 = 9 (erf form 0.5·x·(1+erf(x/√2)) = 5; one key for both)")),
    ("silu", 5, "silu_bwd", "x·σ(x), σ = 1/(1+exp(−x)): neg, exp, add, div, mul = 5"),
    ("swiglu", 6, "swiglu_bwd", ("silu(a)·b on the fused fc1 output [a|b]: silu 5 + mul 1 = 6; "
     "= silu + mul of the method table")),
    ("sigmoid", 4, "sigmoid_bwd", "1/(1+exp(−x)): neg, exp, add, div = 4"),
    ("tanh", 1, "tanh_bwd", "tanh(x): one transcendental"),
    ("softmax", 5, "softmax_bwd", ("exp(x − max)/Σ: max, sub, exp, sum, div = 5 per element "
     "(scale and causal mask fused, as in Megatron's fused softmax)")),
    ("layernorm", 7, "layernorm_bwd", "mean 1, x−μ 1, square 1, sum 1, ·rstd 1, ·γ 1, +β 1 = 7"),
    ("rmsnorm", 4, "rmsnorm_bwd", "square 1, sum 1, ·rstd 1, ·γ 1 = 4"),
    ("batchnorm", 7, "batchnorm_bwd", "training-mode batch statistics: as layernorm = 7"),
    ("dropout", 2, "dropout_bwd", ("compare a random number with p 1, mul by mask/(1−p) 1 = 2 "
     "(random-number generation not counted)")),
    ("rotary", 3, "rotary", ("x·cos + rotate_half(x)·sin: mul, mul, add = 3; its backward is the "
     "same rotation transposed (same key)")),
    ("maxpool", 0, "maxpool_bwd", "FLOPs set per op: (window − 1) comparisons per output"),
    ("avgpool", 0, "avgpool_bwd", "FLOPs set per op: window adds + 1 div per output"),
    ("cross_entropy", 4, "cross_entropy_bwd", ("log-softmax per logit: max, sub, exp, sum = 4 "
     "(per-row log and the target pick are O(rows))")),
    ("bce", 11, "bce_bwd", ("sigmoid 4 + −(y·log p + (1−y)·log(1−p)): 2 log, 2 mul, sub, add, "
     "neg = 7 → 11")),
    ("embedding_scatter", 1, None, "scatter-add of one gradient row element: 1 add"),
    ("adam", 14, None, ("m = β1·m+(1−β1)·g 3; v = β2·v+(1−β2)·g² 4; bias corrections 2; "
     "p −= lr·m̂/(√v̂+ε): sqrt, add, div, mul, sub 5 → 14 per parameter")),
    ("sgd", 2, None, "p −= lr·g: mul, sub = 2 per parameter (WHAM: 2 cycles per element)"),
    ("broadcast_add", 1, "broadcast_add_bwd", ("y[i,j] = a[i] + b[j] (additive attention "
     "energies): 1 add per output")),
    ("div", 1, "div_bwd", "y = a / b"),
    ("exp", 1, "exp_bwd", "y = exp(x): one transcendental"),
    ("log", 1, "log_bwd", "y = log(x): one transcendental"),
    ("sqrt", 1, "sqrt_bwd", "y = √x: one transcendental"),
    ("erf", 1, "erf_bwd", "y = erf(x): one transcendental"),
    ("pow", 1, "pow_bwd", "y = x^p: one transcendental"),
    ("abs", 1, "abs_bwd", "y = |x|"),
    ("leaky_relu", 2, "leaky_relu_bwd", "y = x if x > 0 else α·x: compare, mul = 2"),
    ("hardswish", 5, "hardswish_bwd", "x·relu6(x + 3)/6: add, max, min, mul, div = 5"),
    ("generic", 1, "generic", "an ONNX op we do not model: one operation per output element"),
    ("permute", 0, "permute", ("MoE token permutation: rows gathered into expert order (a copy, "
     "no arithmetic); its backward is the inverse permutation")),
    ("weighted_sum", 2, "weighted_sum_bwd", ("MoE combine y = Σ_k p_k·x_k over a token's k expert "
     "outputs: mul, add = 2 per input element")),
    ("flash_attn", 5, "flash_attn_bwd", ("fused attention, per score element: online softmax "
     "scale·s − m (FMA), running max, exp, running sum, rescale = 5 (the GEMM FLOPs are "
     "counted by the attention op itself)")),
    ("flash_attn_dropout", 7, "flash_attn_dropout_bwd", ("flash_attn 5 + in-kernel dropout "
     "(compare, scale) 2 = 7")),
    # ---- backward -----------------------------------------------------------------------
    ("relu_bwd", 1, None, "g·[x > 0]: one select"),
    ("relu6_bwd", 2, None, "g·[0 < x < 6]: two compares/selects"),
    ("gelu_bwd", 20, None, ("d/dx of the tanh form, recomputing tanh(u): u 5, tanh 1, 1−t² 2, "
     "du/dx 4, products and sum 7, ·g 1 = 20")),
    ("silu_bwd", 9, None, "g·σ·(1 + x·(1−σ)): σ 4, 1−σ 1, ·x 1, +1 1, ·σ 1, ·g 1 = 9"),
    ("swiglu_bwd", 15, None, "da = g·b·silu'(a) 9 + 1; db = g·silu(a) 5 → 15 per output element"),
    ("sigmoid_bwd", 3, None, "g·y·(1−y): sub, mul, mul = 3"),
    ("tanh_bwd", 3, None, "g·(1−y²): mul, sub, mul = 3"),
    ("softmax_bwd", 4, None, "y·(g − Σ y·g): mul, sum, sub, mul = 4"),
    ("weighted_sum_bwd", 3, None, "dx_k = g·p_k 1; dp_k = Σ g·x_k: mul, add 2 → 3"),
    ("flash_attn_bwd", 5, None, ("per score element: recompute P = exp(scale·s − LSE) "
     "(FMA, exp) 2, dS = P·(dP − D) (sub, mul) 2, scale 1 = 5")),
    ("flash_attn_dropout_bwd", 7, None, "flash_attn_bwd 5 + regenerated dropout mask 2 = 7"),
    ("layernorm_bwd", 13, None, ("dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·γ: 10; "
     "dγ += g·x̂ 2; dβ += g 1 → 13")),
    ("rmsnorm_bwd", 9, None, "ĝ = g·γ 1, x̂ 1, ĝ·x̂ 1, sum 1, x̂·mean 1, sub 1, ·rstd 1, dγ 2 = 9"),
    ("batchnorm_bwd", 13, None, "as layernorm_bwd over the batch statistics = 13"),
    ("dropout_bwd", 2, None, "g·mask/(1−p): 2"),
    ("maxpool_bwd", 1, None, "route each output gradient to its argmax: 1 add per input element"),
    ("avgpool_bwd", 1, None, "g/window added to each input element: 1 per input element"),
    ("cross_entropy_bwd", 2, None, ("softmax − one-hot, scaled by 1/N: exp of the saved "
     "log-softmax 1, ·1/N 1 = 2 per logit")),
    ("bce_bwd", 2, None, "(p − y)/N: sub, mul = 2"),
    ("div_bwd", 4, None, "da = g/b 1; db = −g·a/b² 3 → 4 per output"),
    ("exp_bwd", 1, None, "g·y: 1"),
    ("log_bwd", 1, None, "g/x: 1"),
    ("sqrt_bwd", 2, None, "g/(2·y): mul, div = 2"),
    ("erf_bwd", 4, None, "g·(2/√π)·exp(−x²): square, exp, mul, mul = 4"),
    ("pow_bwd", 3, None, "g·p·x^(p−1): pow, mul, mul = 3"),
    ("abs_bwd", 1, None, "g·sign(x): 1"),
    ("leaky_relu_bwd", 2, None, "g·(1 if x > 0 else α): compare, mul = 2"),
    ("hardswish_bwd", 3, None, "piecewise g·(2x + 3)/6 on (−3, 3): mul, add, mul = 3"),
    ("broadcast_add_bwd", 1, None, ("sum the output gradient over each input's broadcast axis: "
     "1 add per output element and input")),
)
"""Every vector-op key a workload graph may use."""


def vector_op(key: str) -> VectorOp:
    """The table row of ``key``; unknown keys raise :class:`WorkloadError` listing valid ones."""
    try:
        return VECTOR_OPS[key]
    except KeyError:
        raise WorkloadError(f"unknown vector op {key!r}; valid: {', '.join(sorted(VECTOR_OPS))}"
                            ) from None
