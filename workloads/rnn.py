"""GNMT (Wu et al. 2016, arXiv 1609.08144) — LSTM encoder-decoder with attention.

Structure (paper §3 and the GNMT v2 of NVIDIA DeepLearningExamples / the MLPerf
``rnn_translator`` reference): a bidirectional first encoder layer (``hidden`` units per
direction), the other encoder layers unidirectional, residual connections from layer
``residual_from`` on; the decoder's first LSTM feeds a normalized Bahdanau attention over
the encoder outputs whose context is concatenated with the input of every other decoder
layer; a ``hidden × vocab`` classifier and cross-entropy over every target token.

LSTM lowering (cuDNN style): per layer one input-projection GEMM over all time steps
(``m = batch·steps, k = in, n = 4·hidden``), then a block of ``count = steps`` recurrent
steps: the recurrent GEMM ``h_{t−1}·U`` (``m = batch, k = hidden, n = 4·hidden``), the gate
add, sigmoid on i/f/o, tanh on g, ``c = f·c_{t−1} + i·g``, ``h = o·tanh(c)``.
Backward through time runs the steps' backward ops ``count`` times; the recurrent weight
gradient is one GEMM over all steps (``k = batch·steps``), as cuDNN computes it, and the
recurrent weights are updated once (their optimizer ops have ``count = 1``). The
gradients carried from step t+1 to step t (``dh``, ``dc``) arrive from outside the stored
step (``seed`` nodes) and are accumulated at each step.

Training uses teacher forcing, so the attention queries (the first decoder layer's outputs)
are known for all target steps at once and attention is computed for all steps together.
"""

from __future__ import annotations

from typing import Any

from dse.types import Graph
from workloads.builder import ForwardBuilder
from workloads.spec import PARAM_COUNTERS, RNNSpec
from workloads.training import expand, summarize


def _lstm(bld: ForwardBuilder, name: str, x: str, *, in_dim: int, steps: int, batch: int,
          hidden: int, layer: int) -> str:
    b, h, db = batch, hidden, bld.dtype_bytes
    # The step block runs `steps` times but holds one copy of the recurrent weights: their
    # parameters are reported on the layer's (count 1) x_proj op, the step GEMM owns none.
    rec_params = h * 4 * h + 4 * h
    xp = bld.gemm(f"{name}.x_proj", x, m=b * steps, k=in_dim, n=4 * h, bias=True,
                  params_override=in_dim * 4 * h + 4 * h + rec_params)
    with bld.block(f"{name}.step", count=steps, layer=layer):
        hprev = bld.virtual(f"{name}.h_prev", [], elements=b * h, force_grad=True)
        rec = bld.gemm(f"{name}.rec", hprev, m=b, k=h, n=4 * h, bias=True, wgrad_merge=True,
                       params_override=0)
        gates = bld.vector(f"{name}.gates", [xp, rec], key="add", elements=b * 4 * h)
        sig = bld.vector(f"{name}.sigmoid", [gates], key="sigmoid", elements=3 * b * h,
                         in_elements=3 * b * h, partial=True,
                         saves=[(f"{name}.sigmoid", 3 * b * h * db)])
        tg = bld.vector(f"{name}.tanh_g", [gates], key="tanh", elements=b * h,
                        in_elements=b * h, partial=True, saves=[(f"{name}.tanh_g", b * h * db)])
        cprev = bld.virtual(f"{name}.c_prev", [], elements=b * h, force_grad=True)
        # f·c_{t−1} and i·g; backward: df, dc_{t−1}, di, dg = 2 products per output
        cm = bld.vector(f"{name}.cell_mul", [sig, tg, cprev], key="mul", elements=2 * b * h,
                        in_elements=4 * b * h, partial=True, bwd_fan=2,
                        saves=[(f"{name}.sigmoid", 3 * b * h * db),
                               (f"{name}.tanh_g", b * h * db), (cprev, b * h * db)])
        c = bld.vector(f"{name}.cell_add", [cm], key="add", elements=b * h,
                       in_elements=2 * b * h)
        bld.seed(f"{name}.c_next", c, elements=b * h)
        tc = bld.vector(f"{name}.tanh_c", [c], key="tanh", elements=b * h,
                        saves=[(f"{name}.tanh_c", b * h * db)])
        # h = o·tanh(c); backward: do, dtanh(c)
        hh = bld.vector(f"{name}.h", [sig, tc], key="mul", elements=b * h, partial=True,
                        bwd_fan=2, saves=[(f"{name}.tanh_c", b * h * db)])
        bld.seed(f"{name}.h_next", hh, elements=b * h)
    return bld.virtual(f"{name}.out", [hh], elements=b * steps * h)


def _forward(spec: RNNSpec, batch: int, seq: int) -> ForwardBuilder:
    bld = ForwardBuilder(spec.name)
    db = bld.dtype_bytes
    b, s, t, h, v = batch, seq, seq, spec.hidden, spec.vocab
    layer = 0

    def drop(name: str, x: str, elements: int) -> str:
        return bld.dropout(name, x, elements=elements) if spec.dropout else x

    def lstm(name: str, x: str, in_dim: int, steps: int) -> str:
        nonlocal layer
        layer += 1
        return _lstm(bld, name, x, in_dim=in_dim, steps=steps, batch=b, hidden=h, layer=layer)

    # ---- encoder
    x = drop("enc.embed.dropout", bld.embedding("enc.embed", rows=b * s, dim=h, table_rows=v),
             b * s * h)
    if spec.bidirectional_first:
        fw = lstm("enc.l1.fwd", x, h, s)
        bw = lstm("enc.l1.bwd", x, h, s)
        x = bld.virtual("enc.l1.out", [fw, bw], elements=b * s * 2 * h)
        in_dim, first = 2 * h, 2
    else:
        in_dim, first = h, 1
    for i in range(first, spec.encoder_layers + 1):
        y = lstm(f"enc.l{i}", drop(f"enc.l{i}.dropout", x, b * s * in_dim), in_dim, s)
        x = bld.vector(f"enc.l{i}.residual", [y, x], key="add", elements=b * s * h) \
            if i >= spec.residual_from else y
        in_dim = h
    enc = x

    # ---- decoder
    dec_emb = bld.embedding("dec.embed", rows=b * t, dim=h, table_rows=v,
                            tied_to="enc.embed" if spec.shared_embedding else "")
    x = drop("dec.embed.dropout", dec_emb, b * t * h)
    x = lstm("dec.l1", x, h, t)
    keys = bld.gemm("dec.attn.key", enc, m=b * s, k=h, n=h)
    query = bld.gemm("dec.attn.query", x, m=b * t, k=h, n=h)
    el = b * t * s * h
    e = bld.vector("dec.attn.add", [query, keys], key="broadcast_add", elements=el,
                   in_elements=b * t * h + b * s * h, bwd_elements=2 * el,
                   params=(("normalize_bias", h), ("normalize_scalar", 1)))
    e = bld.vector("dec.attn.tanh", [e], key="tanh", elements=el,
                   saves=[("dec.attn.tanh", el * db)])
    e = bld.gemm("dec.attn.energy", e, m=b * t * s, k=h, n=1)
    p = bld.vector("dec.attn.softmax", [e], key="softmax", kind="softmax", elements=b * t * s,
                   saves=[("dec.attn.softmax", b * t * s * db)])
    ctx = bld.gemm("dec.attn.context", p, y=enc, m=t, k=s, n=h, batch=b)
    for i in range(2, spec.decoder_layers + 1):
        inp = bld.virtual(f"dec.l{i}.concat", [x, ctx], elements=b * t * 2 * h)
        y = lstm(f"dec.l{i}", drop(f"dec.l{i}.dropout", inp, b * t * 2 * h), 2 * h, t)
        x = bld.vector(f"dec.l{i}.residual", [y, x], key="add", elements=b * t * h) \
            if i >= spec.residual_from else y
    x = drop("dec.classifier.dropout", x, b * t * h)
    logits = bld.gemm("dec.classifier", x, m=b * t, k=h, n=v, bias=True)
    bld.loss("loss", logits, key="cross_entropy", elements=b * t * v, rows=b * t,
             saves=[("loss:logp", b * t * v * db)])
    return bld


def rnn_params(spec: RNNSpec) -> int:
    """Trainable parameters (both LSTM biases counted, as in ``torch.nn.LSTM``)."""
    bld = _forward(spec, 1, 1)
    return int(sum(n.op.params * n.count for n in bld.nodes if n.op is not None))


PARAM_COUNTERS["rnn"] = rnn_params


def build_rnn(spec: RNNSpec, *, batch: int, seq: int, optimizer: str = "adam") -> Graph:
    """The training graph of ``batch`` sentence pairs of ``seq`` source and target tokens.

    >>> from workloads.zoo import model_spec
    >>> g = build_rnn(model_spec("gnmt"), batch=2, seq=8)
    >>> g.meta["encoder_layers"], g.meta["decoder_layers"], g.meta["seq_len"]
    (8, 8, 8)
    """
    bld = _forward(spec, batch, seq)
    graph = expand(bld, optimizer=optimizer, name=spec.name)
    stats = summarize(graph, batch)
    meta: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "params": rnn_params(spec), "seq_len": seq,
        "batch": batch, "optimizer": optimizer, "hidden": spec.hidden, "vocab": spec.vocab,
        "encoder_layers": spec.encoder_layers, "decoder_layers": spec.decoder_layers,
        "layers": spec.encoder_layers + spec.decoder_layers, **stats,
    }
    return graph.with_ops(graph.ops, **meta)
