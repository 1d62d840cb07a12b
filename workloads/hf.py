"""Hugging Face ``config.json`` → :class:`~workloads.spec.TransformerSpec` (no ``transformers``).

Supported ``model_type`` values and the fields read (each family's structural fields are
required; optional fields fall back to the defaults of the matching ``transformers``
configuration class, named in each mapping below):

=========== =====================================================================
gpt2        n_layer, n_embd, n_head, n_positions, vocab_size; n_inner (4·n_embd),
            activation_function (gelu_new), tie_word_embeddings (true), *_pdrop (0.1)
gptj        as gpt2 plus rotary_dim (whole head); tie_word_embeddings (false),
            *_pdrop (0.0); parallel attention + MLP from one LayerNorm
gpt_neox    num_hidden_layers, hidden_size, num_attention_heads, intermediate_size,
            max_position_embeddings, vocab_size; rotary_pct (0.25), use_parallel_residual
            (true), attention_bias (true), hidden_act (gelu), tie_word_embeddings (false)
llama       num_hidden_layers, hidden_size, num_attention_heads, intermediate_size,
            max_position_embeddings, vocab_size; num_key_value_heads (= heads), head_dim,
            hidden_act (silu), attention_bias/mlp_bias (false), tie_word_embeddings (false)
bert        num_hidden_layers, hidden_size, num_attention_heads, intermediate_size,
            max_position_embeddings, vocab_size; type_vocab_size (2), hidden_act (gelu),
            hidden_dropout_prob (0.1); NSP head if architectures has BertForPreTraining
mistral     as llama; sliding_window must be null (sliding-window attention is not
            modelled)
qwen2       as llama, with biases on the query, key and value projections (none on the
            output); use_sliding_window must be false
qwen3       as llama plus an RMSNorm over each query and key head (q_norm, k_norm);
            attention_bias (false), head_dim; use_sliding_window must be false
mixtral     as llama plus num_local_experts, num_experts_per_tok (2): every layer's MLP a
            mixture of SwiGLU experts with a softmax router; sliding_window must be null
qwen3_moe   as qwen3 plus num_experts, num_experts_per_tok (8), moe_intermediate_size:
            every layer's MLP a mixture of SwiGLU experts with a softmax router
            (decoder_sparse_step 1 and no mlp_only_layers)
deepseek_v3 num_hidden_layers, hidden_size, num_attention_heads, intermediate_size,
            moe_intermediate_size, n_routed_experts, num_experts_per_tok, q_lora_rank,
            kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim,
            max_position_embeddings, vocab_size; n_shared_experts (1),
            first_k_dense_replace (0), moe_layer_freq (1, the only one modelled),
            scoring_func (sigmoid), topk_method (noaux_tc: the per-expert
            score-correction bias; greedy, group_limited_greedy: none), n_group/topk_group (group-limited
            routing), num_nextn_predict_layers (0): multi-token-prediction modules
            trained beside the model (mtp_layers; not in params)
opt         num_hidden_layers, hidden_size, num_attention_heads, ffn_dim,
            max_position_embeddings, vocab_size; word_embed_proj_dim (hidden),
            do_layer_norm_before (true), enable_bias (true), activation_function (relu),
            dropout (0.1), tie_word_embeddings (true)
=========== =====================================================================

Missing or ill-typed fields raise :class:`~dse.errors.WorkloadError` naming the file and
the field.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Any

from dse.config import load_mapping
from dse.errors import WorkloadError
from workloads.spec import MODEL_TYPES, TransformerSpec


class _Fields:
    def __init__(self, data: dict[str, Any], where: str, model_type: str) -> None:
        self.data, self.where, self.mt = data, where, model_type

    def _err(self, key: str, msg: str) -> WorkloadError:
        return WorkloadError(f"{self.where}: field {key!r} {msg} (model_type {self.mt})")

    def get_int(self, key: str, default: int | None = None, *alias: str) -> int:
        for k in (key, *alias):
            if k in self.data and self.data[k] is not None:
                v = self.data[k]
                if isinstance(v, bool) or not isinstance(v, int):
                    if isinstance(v, float) and v.is_integer():
                        v = int(v)
                    else:
                        raise self._err(k, f"must be an integer, got {v!r}")
                if v < 1:
                    raise self._err(k, f"must be >= 1, got {v}")
                if v > 2**31:
                    t = str(v)
                    shown = t if len(t) <= 16 else f"{t[:4]}… ({len(t)} digits)"
                    raise self._err(k, f"is out of range: use 1 to {2**31}, got {shown}")
                return v
        if default is None:
            raise self._err(key, "is missing")
        return default

    def get_count(self, key: str, default: int) -> int:
        """An integer >= 0 (``null``: 0)."""
        v = self.data.get(key, default)
        if v is None or (v == 0 and not isinstance(v, bool)):
            return 0
        return self.get_int(key, default)

    def get_bool(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._err(key, f"must be true or false, got {v!r}")
        return v

    def get_float(self, key: str, default: float) -> float:
        v = self.data.get(key, default)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._err(key, f"must be a number, got {v!r}")
        try:
            f = float(v)
        except OverflowError:
            raise self._err(key, f"is out of range, got {v!r}") from None
        if not math.isfinite(f):
            raise self._err(key, f"must be a finite number, got {v!r}")
        if "drop" in key and not 0.0 <= f <= 1.0:
            raise self._err(key, f"is a probability: use 0 to 1, got {v!r}")
        return f

    def get_str(self, key: str, default: str) -> str:
        v = self.data.get(key, default)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self._err(key, f"must be a string, got {v!r}")
        return v

    def activation(self, key: str, default: str) -> str:
        v = self.get_str(key, default)
        table = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_fast": "gelu_new",
                 "gelu_pytorch_tanh": "gelu_new", "quick_gelu": "gelu", "relu": "relu",
                 "silu": "silu", "swish": "silu"}
        if v not in table:
            raise self._err(key, f"={v!r} is not supported; choose one of "
                            f"{', '.join(sorted(table))}")
        return table[v]


def _no_sliding_window(f: "_Fields", data: dict[str, Any], mt: str) -> None:
    """Refuse a config whose layers attend within a sliding window (Mistral 7B v0.1's
    4096, Qwen2's ``use_sliding_window``): the attention model is full causal."""
    win = data.get("sliding_window")
    if mt in ("mistral", "mixtral") and win is not None:
        raise f._err("sliding_window", f"={win!r}: sliding-window attention is not modelled "
                     "(full causal attention only); use a config with sliding_window null")
    if mt in ("qwen2", "qwen3", "qwen3_moe") and f.get_bool("use_sliding_window", False):
        raise f._err("use_sliding_window", "=true: sliding-window attention is not modelled "
                     "(full causal attention only)")


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def spec_from_hf_dict(data: dict[str, Any], *, where: str, name: str) -> TransformerSpec:
    """The spec of an HF config mapping (``where`` names the file in errors)."""
    mt = data.get("model_type")
    if mt is None:
        raise WorkloadError(f"{where}: field 'model_type' is missing; supported: "
                            f"{', '.join(MODEL_TYPES)}")
    if mt not in MODEL_TYPES:
        raise WorkloadError(f"{where}: model_type={mt!r} is not supported; choose one of "
                            f"{', '.join(MODEL_TYPES)}")
    f = _Fields(data, where, mt)
    src = f"HF config.json {where}"
    kw: dict[str, Any] = {"name": name, "source": src, "model_type": mt}
    if mt in ("gpt2", "gptj"):
        h = f.get_int("n_embd", None, "hidden_size")
        kw.update(
            layers=f.get_int("n_layer", None, "num_hidden_layers"), hidden=h,
            heads=f.get_int("n_head", None, "num_attention_heads"),
            ffn=f.get_int("n_inner", 4 * h), vocab=f.get_int("vocab_size"),
            max_positions=f.get_int("n_positions", None, "n_ctx", "max_position_embeddings"),
            activation=f.activation("activation_function", "gelu_new"),
        )
        if mt == "gpt2":
            drop = max(f.get_float(k, 0.1) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"))
            kw.update(tied_embeddings=f.get_bool("tie_word_embeddings", True), dropout=drop > 0)
        else:
            drop = max(f.get_float(k, 0.0) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"))
            kw.update(position="rotary", rotary_dim=f.get_int("rotary_dim", 0) if
                      data.get("rotary_dim") is not None else 0, parallel_block=True,
                      parallel_shared_norm=True,
                      tied_embeddings=f.get_bool("tie_word_embeddings", False), qkv_bias=False,
                      out_bias=False, mlp_bias=True, head_bias=True, dropout=drop > 0)
    elif mt == "gpt_neox":
        heads = f.get_int("num_attention_heads")
        h = f.get_int("hidden_size")
        pct = f.get_float("rotary_pct", 0.25)
        if not 0 < pct <= 1:
            raise f._err("rotary_pct", f"must be in (0, 1], got {pct}")
        drop = max(f.get_float(k, 0.0) for k in ("attention_dropout", "hidden_dropout"))
        bias = f.get_bool("attention_bias", True)
        kw.update(
            layers=f.get_int("num_hidden_layers"), hidden=h, heads=heads,
            ffn=f.get_int("intermediate_size"), vocab=f.get_int("vocab_size"),
            max_positions=f.get_int("max_position_embeddings"),
            activation=f.activation("hidden_act", "gelu"), position="rotary",
            rotary_dim=max(1, int((h // heads) * pct)),
            parallel_block=f.get_bool("use_parallel_residual", True), parallel_shared_norm=False,
            tied_embeddings=f.get_bool("tie_word_embeddings", False), qkv_bias=bias, out_bias=bias,
            mlp_bias=True, head_bias=False, dropout=drop > 0,
        )
    elif mt in ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen3_moe"):
        heads = f.get_int("num_attention_heads")
        h = f.get_int("hidden_size")
        drop = f.get_float("attention_dropout", 0.0)
        abias = f.get_bool("attention_bias", False)
        _no_sliding_window(f, data, mt)
        kw.update(
            layers=f.get_int("num_hidden_layers"), hidden=h, heads=heads,
            kv_heads=f.get_int("num_key_value_heads", heads),
            head_dim=f.get_int("head_dim", 0) if data.get("head_dim") is not None else 0,
            ffn=f.get_int("intermediate_size"), vocab=f.get_int("vocab_size"),
            max_positions=f.get_int("max_position_embeddings"),
            activation=f.activation("hidden_act", "silu"), gated_mlp=True, norm="rmsnorm",
            norm_bias=False, position="rotary",
            tied_embeddings=f.get_bool("tie_word_embeddings", False), qkv_bias=abias,
            out_bias=abias, mlp_bias=f.get_bool("mlp_bias", False), dropout=drop > 0,
        )
        if mt == "qwen2":  # Qwen2Attention: biases on q, k, v; none on o
            kw.update(qkv_bias=True, out_bias=False)
        if mt in ("qwen3", "qwen3_moe"):  # Qwen3Attention: RMSNorm per query and key head
            kw.update(qk_norm=True)
        if mt == "mixtral":  # every layer's MLP a softmax-routed mixture of SwiGLU experts
            kw.update(experts=f.get_int("num_local_experts"),
                      experts_per_token=f.get_int("num_experts_per_tok", 2), router="softmax")
        if mt == "qwen3_moe":  # every layer's MLP a softmax-routed mixture of SwiGLU experts
            if f.get_int("decoder_sparse_step", 1) != 1:
                raise f._err("decoder_sparse_step", "other than 1 interleaves dense and MoE "
                             "layers, which is not modelled")
            if data.get("mlp_only_layers"):
                raise f._err("mlp_only_layers", "lists dense layers among the MoE ones, "
                             "which is not modelled")
            kw.update(experts=f.get_int("num_experts"),
                      experts_per_token=f.get_int("num_experts_per_tok", 8),
                      moe_ffn=f.get_int("moe_intermediate_size"), router="softmax")
    elif mt == "deepseek_v3":
        heads = f.get_int("num_attention_heads")
        rope = f.get_int("qk_rope_head_dim")
        drop = f.get_float("attention_dropout", 0.0)
        scoring = f.get_str("scoring_func", "sigmoid")
        if scoring not in ("sigmoid", "softmax"):
            raise f._err("scoring_func", f"={scoring!r} is not supported; choose one of "
                         "sigmoid, softmax")
        topk = f.get_str("topk_method", "noaux_tc")
        if topk not in ("noaux_tc", "greedy", "group_limited_greedy"):
            raise f._err("topk_method", f"={topk!r} is not supported; choose one of "
                         "noaux_tc (a bias-corrected router), greedy, group_limited_greedy")
        if f.get_int("moe_layer_freq", 1) != 1:
            raise f._err("moe_layer_freq", "other than 1 interleaves dense and MoE layers "
                         "after the first_k_dense_replace ones, which is not modelled")
        kw.update(
            layers=f.get_int("num_hidden_layers"), hidden=f.get_int("hidden_size"), heads=heads,
            kv_heads=heads, head_dim=f.get_int("qk_nope_head_dim") + rope,
            qk_rope_head_dim=rope, v_head_dim=f.get_int("v_head_dim"),
            q_lora_rank=f.get_int("q_lora_rank") if data.get("q_lora_rank") is not None else 0,
            kv_lora_rank=f.get_int("kv_lora_rank"),
            ffn=f.get_int("intermediate_size"), moe_ffn=f.get_int("moe_intermediate_size"),
            experts=f.get_int("n_routed_experts"),
            experts_per_token=f.get_int("num_experts_per_tok"),
            shared_experts=f.get_count("n_shared_experts", 1),
            first_k_dense=f.get_count("first_k_dense_replace", 0),
            expert_groups=f.get_count("n_group", 0),
            expert_groups_per_token=f.get_count("topk_group", 0),
            mtp_layers=f.get_count("num_nextn_predict_layers", 0),
            router=scoring, router_bias=topk == "noaux_tc",
            vocab=f.get_int("vocab_size"), max_positions=f.get_int("max_position_embeddings"),
            activation=f.activation("hidden_act", "silu"), gated_mlp=True, norm="rmsnorm",
            norm_bias=False, position="rotary",
            tied_embeddings=f.get_bool("tie_word_embeddings", False),
            qkv_bias=f.get_bool("attention_bias", False),
            out_bias=f.get_bool("attention_bias", False), mlp_bias=False, dropout=drop > 0,
        )
    elif mt == "bert":
        archs = data.get("architectures") or []
        if not isinstance(archs, list):
            raise f._err("architectures", f"must be a list of class names, got {archs!r}")
        drop = max(f.get_float(k, 0.1) for k in ("hidden_dropout_prob",
                                               "attention_probs_dropout_prob"))
        kw.update(
            layers=f.get_int("num_hidden_layers"), hidden=f.get_int("hidden_size"),
            heads=f.get_int("num_attention_heads"), ffn=f.get_int("intermediate_size"),
            vocab=f.get_int("vocab_size"), max_positions=f.get_int("max_position_embeddings"),
            type_vocab=f.get_int("type_vocab_size", 2), causal=False,
            activation=f.activation("hidden_act", "gelu"), post_norm=True, embed_norm=True,
            final_norm=False, tied_embeddings=f.get_bool("tie_word_embeddings", True),
            head_bias=True, mlm_transform=True, nsp_head="BertForPreTraining" in archs,
            dropout=drop > 0,
        )
    else:  # opt
        h = f.get_int("hidden_size")
        e = f.get_int("word_embed_proj_dim", h)
        pre = f.get_bool("do_layer_norm_before", True)
        bias = f.get_bool("enable_bias", True)
        drop = max(f.get_float("dropout", 0.1), f.get_float("attention_dropout", 0.0))
        kw.update(
            layers=f.get_int("num_hidden_layers"), hidden=h, heads=f.get_int("num_attention_heads"),
            ffn=f.get_int("ffn_dim"), vocab=f.get_int("vocab_size"),
            max_positions=f.get_int("max_position_embeddings"), position_offset=2,
            embed_proj=e if e != h else 0,
            activation=f.activation("activation_function", "relu"), post_norm=not pre,
            final_norm=pre and not f.get_bool("_remove_final_layer_norm", False),
            tied_embeddings=f.get_bool("tie_word_embeddings", True), qkv_bias=bias, out_bias=bias,
            mlp_bias=bias, norm_bias=True, dropout=drop > 0,
        )
    try:
        return TransformerSpec(**kw)
    except WorkloadError as e:
        raise WorkloadError(f"{where}: {e}") from None


def spec_from_hf_config(path: str | Path) -> TransformerSpec:
    """Read an HF-style ``config.json`` (see the module docstring for the fields)."""
    p = Path(path)
    data = load_mapping(p, WorkloadError)
    return spec_from_hf_dict(data, where=str(p), name=_name(p))
