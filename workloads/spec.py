"""Model hyperparameters: one frozen, keyword-only dataclass per family.

Every spec derives from :class:`ModelSpec` (``name``, ``family``, ``source``,
``default_batch``, ``default_seq``) and is validated in ``__post_init__`` with messages
naming the field and the value. Zoo files (``workloads/zoo/*.yaml``) hold exactly these
fields; :func:`spec_from_mapping` builds the right class from the ``family`` key.

>>> s = TransformerSpec(name="tiny", model_type="gpt2", layers=2, hidden=64, heads=4,
...                     ffn=256, vocab=100, max_positions=32, source="test")
>>> s.kv_heads, s.head_dim
(4, 16)
>>> TransformerSpec(name="bad", model_type="gpt2", layers=2, hidden=64, heads=5, ffn=256,
...                 vocab=100, max_positions=32, source="test")
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
dse.errors.WorkloadError: TransformerSpec[bad]: hidden=64 is not divisible by heads=5; ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

from dse.errors import WorkloadError

FAMILIES = ("transformer", "cnn", "rnn", "dlrm", "onnx")

PARAM_COUNTERS: dict[str, Any] = {}
"""Parameter counters of the families whose count needs their graph builder
(``workloads.cnn``, ``workloads.rnn``, ``workloads.onnx_import`` register theirs when
imported, which ``import workloads`` does): specs do not import their builders, the
builders import the specs."""


def count_params(spec: Any) -> int:
    """Trainable parameters of ``spec`` by its family's registered counter."""
    fn = PARAM_COUNTERS.get(spec.family)
    if fn is None:
        raise WorkloadError(f"{spec.owner}: no parameter counter for family {spec.family!r}; "
                            "import workloads first")
    return int(fn(spec))
MODEL_TYPES = ("gpt2", "gptj", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "bert", "opt",
               "mixtral", "qwen3_moe", "deepseek_v3")
ROUTERS = ("softmax", "sigmoid")
"""How a mixture-of-experts router scores the experts: ``softmax`` over the expert logits
(Mixtral: top-k of the softmax, renormalized) or a ``sigmoid`` per expert (DeepSeek-V3:
top-k of the sigmoid affinities plus a per-expert bias used only for selection, the chosen
affinities normalized)."""
ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rotary")
MOE_WEIGHTING = ("activation", "combine")
"""Where a MoE layer multiplies expert outputs by their routing weights: ``activation``
(Megatron-Core 0.13 and later, MR !2668 "Memory efficient token permutation": the
experts' activation multiplies its rows by their weights, the combine is a plain sum and
keeps nothing for the backward) or ``combine`` (Megatron-Core 0.12 and before: the
combine's weighted sum keeps the experts' outputs, ``k`` rows of ``hidden`` per token,
for the weights' gradient)."""

ATTENTION = ("fused", "unfused")
"""Attention kernels: ``fused`` (FlashAttention 2/3, cuDNN, XLA: no score tensor in HBM,
the backward recomputes it on chip) or ``unfused`` (materialized ``s×s`` scores, softmax
and dropout in HBM: Megatron-LM 2021–2022, the validation rows of that era)."""
GRAD_ACCUMULATION = ("fused", "separate")
"""How a weight gradient joins the gradient accumulated over the step's micro-batches:
``fused`` (the weight-gradient GEMM accumulates into the main gradient: Megatron's
``gradient_accumulation_fusion``, Transformer Engine) or ``separate`` (an elementwise add
per parameter per micro-batch, reading the new and the accumulated gradient and writing
the sum: PyTorch autograd's accumulation into ``.grad`` and Megatron-LM's
``main_grad.add_`` of fp16 runs, 2021–2022; ``docs/distributed.md`` §8)."""
CROSS_ENTROPY = ("fused", "fp32", "fp32_fused")
"""How the language-model loss runs over the logits: ``fused`` (one kernel over the 16-bit
logits: Transformer Engine's parallel cross entropy, Megatron-Core's
``cross_entropy_fusion_impl te``), ``fp32`` (Megatron-LM 2021–2022's default
``vocab_parallel_cross_entropy(output.float())``: the logits cast to fp32, then max,
subtract, exp, sum and divide as kernels of their own over the fp32 copy, the fp32 softmax
kept for the backward, whose in-place multiply and cast back to 16 bits are two more
passes) or ``fp32_fused`` (Megatron-Core's native ``cross_entropy_loss_fusion``: the same
steps in three ``torch.compile``-fused kernels forward — cast and max, subtract-exp-sum,
divide — and one backward; ``docs/distributed.md`` §8, §8b)."""
BIAS_GRAD = ("fused", "separate")
"""Where a biased linear layer's bias gradient is summed: ``fused`` (in the weight-gradient
GEMM's epilogue: cuBLASLt ``BGRADB``, Transformer Engine) or ``separate`` (a reduction of
the output gradient over its rows: ``grad_output.sum(dim=0)`` in Megatron-LM 2021–2022)."""


def _int(owner: str, name: str, v: Any, *, minimum: int = 1) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise WorkloadError(f"{owner}: {name}={v!r} must be an integer")
    if v < minimum:
        raise WorkloadError(f"{owner}: {name}={v!r} must be >= {minimum}")
    from dse.limits import RANGES

    r = RANGES.get(name, RANGES["dimension"])
    if v > r.hi:  # physical range (dse.limits): FLOPs and bytes stay finite downstream
        raise WorkloadError(f"{owner}: {name}={v} is out of range: use {minimum} to "
                            f"{int(r.hi)}")


def _choice(owner: str, name: str, v: Any, valid: tuple[str, ...]) -> None:
    if v not in valid:
        raise WorkloadError(f"{owner}: {name}={v!r} is not valid; choose one of "
                            f"{', '.join(valid)}")


def _bool(owner: str, name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise WorkloadError(f"{owner}: {name}={v!r} must be true or false")


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Common fields of every workload spec."""

    name: str
    family: str
    source: str = ""
    """Citation of the hyperparameters (paper, model card, repository file)."""
    default_batch: int = 1
    """Samples per step when the user gives none (the published global batch)."""
    default_seq: int | None = None
    """Sequence length when the user gives none (``None``: the family has no sequence)."""
    description: str = ""

    family_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        o = f"{type(self).__name__}[{self.name}]"
        if not isinstance(self.name, str) or not self.name:
            raise WorkloadError(f"{o}: name={self.name!r} must be a non-empty string")
        _choice(o, "family", self.family, FAMILIES)
        if self.family_name and self.family != self.family_name:
            raise WorkloadError(f"{o}: family={self.family!r} must be {self.family_name!r} "
                                f"for {type(self).__name__}")
        _int(o, "default_batch", self.default_batch)
        if self.default_seq is not None:
            _int(o, "default_seq", self.default_seq)

    @property
    def owner(self) -> str:
        return f"{type(self).__name__}[{self.name}]"

    @property
    def has_seq(self) -> bool:
        return self.default_seq is not None

    @property
    def params(self) -> int:
        """Trainable parameters of the whole model (each family computes it)."""
        raise NotImplementedError(f"{type(self).__name__} does not count its parameters")


@dataclass(frozen=True, kw_only=True)
class TransformerSpec(ModelSpec):
    """A decoder (GPT-2/J/NeoX, Llama, OPT) or encoder (BERT) transformer.

    ``heads`` query heads of ``head_dim`` each; ``kv_heads`` key/value heads (GQA when
    fewer than ``heads``). ``ffn`` is the MLP inner width; with ``gated_mlp`` (SwiGLU) the
    MLP has three ``hidden × ffn`` matrices. ``parallel_block`` computes attention and MLP
    from the same LayerNorm output and adds both to the residual (GPT-J, GPT-NeoX).
    """

    family: str = "transformer"
    model_type: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    kv_heads: int = 0
    """0 means ``heads`` (multi-head attention)."""
    head_dim: int = 0
    """0 means ``hidden // heads``."""
    causal: bool = True
    activation: str = "gelu"
    gated_mlp: bool = False
    norm: str = "layernorm"
    position: str = "learned"
    rotary_dim: int = 0
    """Rotated dimensions per head (GPT-J 64; 0 means the whole head for rotary models)."""
    parallel_block: bool = False
    parallel_shared_norm: bool = True
    """Parallel block with one LayerNorm feeding both branches (GPT-J); False: one per
    branch (GPT-NeoX ``use_parallel_residual``)."""
    tied_embeddings: bool = True
    qkv_bias: bool = True
    qk_norm: bool = False
    """An RMSNorm over each query and each key head before the rotary embedding (Qwen3's
    ``q_norm``/``k_norm``: ``head_dim`` weights each, shared by the heads)."""
    out_bias: bool = True
    mlp_bias: bool = True
    head_bias: bool = False
    norm_bias: bool = True
    dropout: bool = True
    """Dropout after attention probabilities, attention output, MLP output and embeddings."""
    type_vocab: int = 0
    """Token-type (segment) embeddings (BERT: 2)."""
    position_offset: int = 0
    """Extra learned position rows (OPT: 2)."""
    embed_proj: int = 0
    """Word-embedding width when it differs from ``hidden`` (OPT-350m ``word_embed_proj_dim``)."""
    final_norm: bool = True
    attention: str = "fused"
    """How the attention core runs (:data:`ATTENTION`)."""
    grad_accumulation: str = "fused"
    """How weight gradients accumulate over micro-batches (:data:`GRAD_ACCUMULATION`)."""
    bias_grad: str = "fused"
    """Where the bias gradients of linear layers are summed (:data:`BIAS_GRAD`)."""
    cross_entropy: str = "fused"
    """How the loss runs over the logits (:data:`CROSS_ENTROPY`)."""
    post_norm: bool = False
    """BERT: LayerNorm after each residual add instead of before each sublayer."""
    embed_norm: bool = False
    """LayerNorm after the embedding sum (BERT)."""
    mlm_transform: bool = False
    """BERT MLM head transform before the decoder: dense + gelu + LayerNorm."""
    nsp_head: bool = False
    """BERT next-sentence prediction: pooler (dense + tanh on [CLS]), 2-way classifier and
    its loss (``BertForPreTraining``)."""
    # ---- mixture of experts (Mixtral, DeepSeek-V3) -------------------------------------
    experts: int = 0
    """Routed experts of the MLP of each MoE layer (0: a dense MLP in every layer)."""
    experts_per_token: int = 0
    """Experts each token is routed to (top-k)."""
    moe_ffn: int = 0
    """Inner width of one routed expert (0: ``ffn``); experts are gated like the dense MLP."""
    shared_experts: int = 0
    """Experts every token passes through (DeepSeek-V3: 1), as one MLP of width
    ``shared_experts · moe_ffn``."""
    first_k_dense: int = 0
    """Leading layers that keep the dense MLP of width ``ffn`` (DeepSeek-V3: 3)."""
    router: str = "softmax"
    """:data:`ROUTERS`."""
    router_bias: bool = False
    """A per-expert bias on the routing scores (DeepSeek-V3's auxiliary-loss-free balancing,
    a parameter of the checkpoint)."""
    capacity_factor: float = 0.0
    """Tokens an expert may take, as a multiple of the mean ``tokens·k/experts``; tokens
    beyond it are dropped (0: dropless, as Mixtral and DeepSeek-V3 train)."""
    load_imbalance: float = 1.0
    """Tokens of the busiest expert-parallel rank over the mean (1: perfectly balanced);
    capped by ``capacity_factor`` when that is set."""
    moe_weighting: str = "activation"
    """:data:`MOE_WEIGHTING`."""
    expert_groups: int = 0
    """Groups the routed experts are split into for group-limited routing (DeepSeek-V3's
    ``n_group`` 8: one group per node of its expert-parallel layout); 0: no groups."""
    expert_groups_per_token: int = 0
    """Groups a token's experts may come from (DeepSeek-V3's ``topk_group`` 4: each token
    reaches at most 4 nodes); 0 with ``expert_groups`` 0."""
    mtp_layers: int = 0
    """Multi-token-prediction modules trained beside the model (DeepSeek-V3 §2.2: 1; HF
    ``num_nextn_predict_layers``): each predicts one more future token from the previous
    depth's hidden state and the next token's embedding (two RMSNorms, a ``2h → h``
    projection, one transformer layer like the model's repeated one, the shared output
    head and its loss), on the last pipeline stage. Not counted in :attr:`params` or
    :attr:`active_params` (the model's own counts); :attr:`mtp_params` counts them."""
    # ---- multi-head latent attention (DeepSeek-V2/V3) ----------------------------------
    q_lora_rank: int = 0
    """Rank of the low-rank query projection (0: a full query projection)."""
    kv_lora_rank: int = 0
    """Rank of the compressed key/value latent (> 0: multi-head latent attention)."""
    qk_rope_head_dim: int = 0
    """Rotary part of each query/key head (MLA: ``head_dim`` = no-rope part + this)."""
    v_head_dim: int = 0
    """Value head width (0: ``head_dim``)."""

    family_name: ClassVar[str] = "transformer"

    def __post_init__(self) -> None:
        super().__post_init__()
        o = self.owner
        _choice(o, "model_type", self.model_type, MODEL_TYPES)
        for f in ("layers", "hidden", "heads", "ffn", "vocab", "max_positions"):
            _int(o, f, getattr(self, f))
        for f in ("kv_heads", "head_dim", "rotary_dim", "type_vocab", "position_offset",
                  "embed_proj"):
            _int(o, f, getattr(self, f), minimum=0)
        for f in ("causal", "gated_mlp", "parallel_block", "tied_embeddings", "qkv_bias", "qk_norm",
                  "out_bias", "mlp_bias", "head_bias", "norm_bias", "dropout", "final_norm",
                  "post_norm", "embed_norm", "mlm_transform", "nsp_head", "parallel_shared_norm"):
            _bool(o, f, getattr(self, f))
        _choice(o, "activation", self.activation, ACTIVATIONS)
        _choice(o, "norm", self.norm, NORMS)
        _choice(o, "position", self.position, POSITIONS)
        _choice(o, "attention", self.attention, ATTENTION)
        _choice(o, "grad_accumulation", self.grad_accumulation, GRAD_ACCUMULATION)
        _choice(o, "bias_grad", self.bias_grad, BIAS_GRAD)
        _choice(o, "cross_entropy", self.cross_entropy, CROSS_ENTROPY)
        for f in ("experts", "experts_per_token", "moe_ffn", "shared_experts", "first_k_dense",
                  "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim",
                  "expert_groups", "expert_groups_per_token", "mtp_layers"):
            _int(o, f, getattr(self, f), minimum=0)
        _bool(o, "router_bias", self.router_bias)
        _choice(o, "router", self.router, ROUTERS)
        _choice(o, "moe_weighting", self.moe_weighting, MOE_WEIGHTING)
        for f, lo in (("capacity_factor", 0.0), ("load_imbalance", 1.0)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    lo <= float(v) <= 1e3):
                raise WorkloadError(f"{o}: {f}={v!r} must be a number from {lo:g} to 1000")
            object.__setattr__(self, f, float(v))
        if self.experts:
            if not 1 <= self.experts_per_token <= self.experts:
                raise WorkloadError(f"{o}: experts_per_token={self.experts_per_token} must be "
                                    f"from 1 to experts={self.experts}")
            if self.first_k_dense >= self.layers:
                raise WorkloadError(f"{o}: first_k_dense={self.first_k_dense} leaves no MoE "
                                    f"layer of the {self.layers}; use 0 to {self.layers - 1}")
            if self.capacity_factor and self.capacity_factor * self.experts_per_token < 1:
                raise WorkloadError(f"{o}: capacity_factor={self.capacity_factor:g} lets an "
                                    "expert take less than one token per routed token share; "
                                    "use 0 (dropless) or >= 1/experts_per_token")
            if self.moe_ffn == 0:
                object.__setattr__(self, "moe_ffn", self.ffn)
            g, m = self.expert_groups, self.expert_groups_per_token
            if g and (self.experts % g or not 1 <= m <= g):
                raise WorkloadError(f"{o}: expert_groups={g} must divide experts="
                                    f"{self.experts} and expert_groups_per_token={m} be from "
                                    f"1 to {g}")
            if m and not g:
                raise WorkloadError(f"{o}: expert_groups_per_token={m} needs expert_groups")
            if g and self.experts_per_token > m * (self.experts // g):
                raise WorkloadError(f"{o}: experts_per_token={self.experts_per_token} exceed "
                                    f"the {m * (self.experts // g)} experts of "
                                    f"expert_groups_per_token={m} groups of "
                                    f"{self.experts // g}; use at most that many")
        elif (self.experts_per_token or self.shared_experts or self.first_k_dense
              or self.expert_groups or self.expert_groups_per_token):
            raise WorkloadError(f"{o}: experts_per_token, shared_experts, first_k_dense and "
                                "expert groups "
                                "need experts > 0 (a mixture-of-experts model)")
        if self.mtp_layers and not self.causal:
            raise WorkloadError(f"{o}: mtp_layers={self.mtp_layers}: multi-token prediction "
                                "needs a causal (decoder) model; use 0")
        if self.kv_lora_rank:
            if self.kv_heads not in (0, self.heads):
                raise WorkloadError(f"{o}: multi-head latent attention has one key/value "
                                    f"head per query head; kv_heads={self.kv_heads} must be "
                                    f"{self.heads} or 0")
            if self.head_dim == 0:
                raise WorkloadError(f"{o}: multi-head latent attention needs head_dim "
                                    "(query/key head width, rotary part included)")
            if self.qk_rope_head_dim >= self.head_dim:
                raise WorkloadError(f"{o}: qk_rope_head_dim={self.qk_rope_head_dim} must be "
                                    f"below head_dim={self.head_dim}")
        elif self.q_lora_rank or self.qk_rope_head_dim:
            raise WorkloadError(f"{o}: q_lora_rank and qk_rope_head_dim need kv_lora_rank > 0 "
                                "(multi-head latent attention)")
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise WorkloadError(f"{o}: hidden={self.hidden} is not divisible by "
                                    f"heads={self.heads}; set head_dim explicitly")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.kv_heads == 0:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.heads % self.kv_heads:
            raise WorkloadError(f"{o}: heads={self.heads} must be a multiple of "
                                f"kv_heads={self.kv_heads}")
        if self.v_head_dim == 0:
            object.__setattr__(self, "v_head_dim", self.head_dim)
        if self.position == "rotary" and self.rotary_dim == 0:
            object.__setattr__(self, "rotary_dim", self.qk_rope_head_dim or self.head_dim)
        if self.rotary_dim > self.head_dim:
            raise WorkloadError(f"{o}: rotary_dim={self.rotary_dim} exceeds "
                                f"head_dim={self.head_dim}")
        if self.default_seq is None:
            object.__setattr__(self, "default_seq", self.max_positions)
        if int(self.default_seq or 0) > self.max_positions and self.position == "learned":
            raise WorkloadError(f"{o}: default_seq={self.default_seq} exceeds "
                                f"max_positions={self.max_positions} (learned positions)")

    # ---- derived sizes --------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def embed_dim(self) -> int:
        return self.embed_proj or self.hidden

    def norm_params(self) -> int:
        """Parameters of one norm: γ (and β for LayerNorm with bias)."""
        return self.hidden * (2 if self.norm_bias and self.norm == "layernorm" else 1)

    @property
    def moe(self) -> bool:
        """A mixture-of-experts model."""
        return self.experts > 0

    @property
    def mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.first_k_dense if self.moe else 0

    @property
    def shared_ffn(self) -> int:
        """Inner width of the shared expert(s), one MLP (0: none)."""
        return self.shared_experts * self.moe_ffn

    def attention_params(self) -> int:
        """Parameters of one layer's attention (projections and, for MLA, the latent
        norms; exact, as the HF modules' ``numel``)."""
        h = self.hidden
        if self.mla:
            qk = self.head_dim
            rope = self.qk_rope_head_dim
            nope = qk - rope
            q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.heads * qk
                 if self.q_lora_rank else h * self.heads * qk)
            kv = (h * (self.kv_lora_rank + rope) + self.kv_lora_rank
                  + self.kv_lora_rank * self.heads * (nope + self.v_head_dim))
            out = self.heads * self.v_head_dim * h + (h if self.out_bias else 0)
            return q + kv + out
        qkv = h * (self.q_dim + 2 * self.kv_dim) + (self.q_dim + 2 * self.kv_dim
                                                    if self.qkv_bias else 0)
        qk_norm = 2 * self.head_dim if self.qk_norm else 0
        return qkv + qk_norm + self.q_dim * h + (h if self.out_bias else 0)

    def mlp_params(self, f: int) -> int:
        """Parameters of one (gated or plain) MLP of inner width ``f``."""
        h = self.hidden
        fc1_out = 2 * f if self.gated_mlp else f
        return h * fc1_out + f * h + ((fc1_out + h) if self.mlp_bias else 0)

    def moe_params(self, *, active: bool = False) -> int:
        """Parameters of one MoE layer's MLP: router (and its bias), the routed experts
        (``experts_per_token`` of them when ``active``), the shared expert."""
        routed = self.experts_per_token if active else self.experts
        return (self.hidden * self.experts + (self.experts if self.router_bias else 0)
                + routed * self.mlp_params(self.moe_ffn)
                + (self.mlp_params(self.shared_ffn) if self.shared_ffn else 0))

    def layer_params(self, *, moe: bool | None = None, active: bool = False) -> int:
        """Parameters of one block (exact; matches the HF modules' ``numel``): a dense
        layer, or an MoE layer (``moe``; default: the model's repeated layer)."""
        moe = self.moe if moe is None else moe
        nnorm = 1 if (self.parallel_block and self.parallel_shared_norm) else 2
        norm = nnorm * self.norm_params()
        mlp = self.moe_params(active=active) if moe else self.mlp_params(self.ffn)
        return self.attention_params() + mlp + norm

    def embedding_params(self) -> int:
        e = self.embed_dim
        p = self.vocab * e
        if self.position == "learned":
            p += (self.max_positions + self.position_offset) * self.hidden
        p += self.type_vocab * self.hidden
        if self.embed_proj:
            p += e * self.hidden  # project_in (no bias in OPT)
        if self.embed_norm:  # BERT: embedding LayerNorm
            p += self.norm_params()
        return p

    def head_params(self) -> int:
        h, e = self.hidden, self.embed_dim
        p = 0
        if self.final_norm:
            p += self.norm_params()
        if self.embed_proj:
            p += h * e  # project_out
        if self.mlm_transform:
            p += h * h + h + 2 * h  # dense + LayerNorm
        if self.nsp_head:
            p += h * h + h + h * 2 + 2  # pooler + classifier
        if not self.tied_embeddings:
            p += self.vocab * e
        if self.head_bias:
            p += self.vocab
        return p

    @property
    def params(self) -> int:
        """Total trainable parameters (tied embeddings counted once; every expert)."""
        return self.embedding_params() + self._layers_params(active=False) + self.head_params()

    @property
    def active_params(self) -> int:
        """Parameters a token passes through (the routed experts it is sent to; equal to
        :attr:`params` for a dense model)."""
        return self.embedding_params() + self._layers_params(active=True) + self.head_params()

    @property
    def mtp_params(self) -> int:
        """Parameters of the multi-token-prediction modules (:attr:`mtp_layers`): per module
        its layer, the ``2h → h`` projection and three norms (of the embedding, of the hidden
        state, before the shared head); embedding and output head are the model's."""
        one = self.layer_params() + 2 * self.hidden * self.hidden + 3 * self.norm_params()
        return self.mtp_layers * one

    def _layers_params(self, *, active: bool) -> int:
        if not self.moe:
            return self.layers * self.layer_params()
        return (self.first_k_dense * self.layer_params(moe=False)
                + self.moe_layers * self.layer_params(moe=True, active=active))


@dataclass(frozen=True, kw_only=True)
class CNNSpec(ModelSpec):
    """A convolutional classifier generated from its architecture table.

    ``arch`` selects the generator in :mod:`workloads.cnn`; ``config`` holds its table
    (ResNet stage depths and widths, VGG's layer list, MobileNetV2's ``t, c, n, s`` rows).
    """

    family: str = "cnn"
    arch: str
    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    family_name: ClassVar[str] = "cnn"
    ARCHS: ClassVar[tuple[str, ...]] = ("resnet", "vgg", "mobilenetv2")

    def __post_init__(self) -> None:
        super().__post_init__()
        o = self.owner
        _choice(o, "arch", self.arch, self.ARCHS)
        for f in ("image_size", "in_channels", "num_classes"):
            _int(o, f, getattr(self, f))
        if not isinstance(self.config, dict):
            raise WorkloadError(f"{o}: config={self.config!r} must be a mapping")
        object.__setattr__(self, "config", dict(self.config))

    @property
    def params(self) -> int:
        return count_params(self)


@dataclass(frozen=True, kw_only=True)
class RNNSpec(ModelSpec):
    """GNMT-style LSTM encoder-decoder with attention (Wu et al. 2016)."""

    family: str = "rnn"
    encoder_layers: int
    decoder_layers: int
    hidden: int
    vocab: int
    bidirectional_first: bool = True
    residual_from: int = 3
    """1-based index of the first layer with a residual connection (GNMT: 3)."""
    shared_embedding: bool = True
    """One embedding table for source and target (shared wordpiece vocabulary)."""
    dropout: bool = True
    """Dropout on every LSTM layer's input and before the classifier."""

    family_name: ClassVar[str] = "rnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        o = self.owner
        for f in ("encoder_layers", "decoder_layers", "hidden", "vocab"):
            _int(o, f, getattr(self, f))
        _int(o, "residual_from", self.residual_from)
        for f in ("bidirectional_first", "shared_embedding", "dropout"):
            _bool(o, f, getattr(self, f))
        if self.encoder_layers < 2 and self.bidirectional_first:
            raise WorkloadError(f"{o}: encoder_layers={self.encoder_layers} must be >= 2 "
                                "with a bidirectional first layer")
        if self.default_seq is None:
            raise WorkloadError(f"{o}: default_seq is required (sentence length in tokens)")

    @property
    def params(self) -> int:
        return count_params(self)


@dataclass(frozen=True, kw_only=True)
class DLRMSpec(ModelSpec):
    """DLRM (Naumov et al. 2019): bottom MLP, embedding tables, dot interaction, top MLP.

    ``bottom_mlp`` starts with the dense-feature count; ``top_mlp`` lists the layer widths
    after the interaction (its input width is derived: ``dim + T·(T−1)/2`` with
    ``T = tables + 1``, interaction without self-pairs).
    """

    family: str = "dlrm"
    tables: tuple[int, ...]
    dim: int
    bottom_mlp: tuple[int, ...]
    top_mlp: tuple[int, ...]
    lookups_per_table: int = 1
    """Indices pooled per table and sample (Criteo: one categorical value per feature)."""

    family_name: ClassVar[str] = "dlrm"

    def __post_init__(self) -> None:
        super().__post_init__()
        o = self.owner
        for f in ("tables", "bottom_mlp", "top_mlp"):
            v = getattr(self, f)
            if not isinstance(v, (list, tuple)) or not v:
                raise WorkloadError(f"{o}: {f}={v!r} must be a non-empty list of integers")
            for i, x in enumerate(v):
                _int(o, f"{f}[{i}]", x)
            object.__setattr__(self, f, tuple(v))
        _int(o, "dim", self.dim)
        _int(o, "lookups_per_table", self.lookups_per_table)
        if self.bottom_mlp[-1] != self.dim:
            raise WorkloadError(f"{o}: bottom_mlp ends with {self.bottom_mlp[-1]} but the "
                                f"interaction needs dim={self.dim}")
        if self.top_mlp[-1] != 1:
            raise WorkloadError(f"{o}: top_mlp={list(self.top_mlp)} must end with 1 (the "
                                "click probability)")

    @property
    def interaction_dim(self) -> int:
        t = len(self.tables) + 1
        return self.dim + t * (t - 1) // 2

    @property
    def embedding_rows(self) -> int:
        return int(sum(self.tables))

    @property
    def mlp_params(self) -> int:
        widths_b = list(self.bottom_mlp)
        widths_t = [self.interaction_dim, *self.top_mlp]
        return sum(a * b + b for w in (widths_b, widths_t) for a, b in pairwise(w))

    @property
    def params(self) -> int:
        return self.embedding_rows * self.dim + self.mlp_params


@dataclass(frozen=True, kw_only=True)
class OnnxSpec(ModelSpec):
    """A model read from an ONNX file (shapes from ONNX shape inference)."""

    family: str = "onnx"
    path: str

    family_name: ClassVar[str] = "onnx"

    @property
    def params(self) -> int:
        return count_params(self)


SPEC_CLASSES: dict[str, type[ModelSpec]] = {
    "transformer": TransformerSpec, "cnn": CNNSpec, "rnn": RNNSpec, "dlrm": DLRMSpec,
    "onnx": OnnxSpec,
}


def spec_from_mapping(data: dict[str, Any], where: str) -> ModelSpec:
    """Build the spec of ``data['family']``; unknown or missing fields raise
    :class:`WorkloadError` naming ``where`` (the file) and the field."""
    if not isinstance(data, dict):
        raise WorkloadError(f"{where}: expected a mapping, got {type(data).__name__}")
    fam = data.get("family")
    if not isinstance(fam, str) or fam not in SPEC_CLASSES:
        raise WorkloadError(f"{where}: family={fam!r} is not valid; choose one of "
                            f"{', '.join(SPEC_CLASSES)}")
    cls = SPEC_CLASSES[fam]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise WorkloadError(f"{where}: unknown field {unknown[0]!r} for family {fam}; valid "
                            f"fields: {', '.join(sorted(fields))}")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise WorkloadError(f"{where}: missing required field {missing[0]!r} for family {fam}")
    for name, value in data.items():  # text fields (arch, path, model_type ...) are text
        if fields[name].type in ("str", str) and not isinstance(value, str):
            raise WorkloadError(f"{where}: field {name!r}={value!r} must be a string")
    try:
        return cls(**data)
    except WorkloadError as e:
        raise WorkloadError(f"{where}: {e}") from None
    except (TypeError, ValueError) as e:
        raise WorkloadError(f"{where}: {e}") from None


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)

