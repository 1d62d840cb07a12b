"""HF-style config.json import: published configs give the zoo's graphs; bad files fail
with one line naming the file and the field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import workloads
from dse.errors import WorkloadError
from workloads.hf import spec_from_hf_config

DATA = Path(__file__).parent / "data" / "hf"


def _same_graph(a, b) -> None:
    assert a.ops == b.ops
    assert a.edges == b.edges


@pytest.mark.parametrize("zoo,folder", [
    ("gpt2", "gpt2"), ("gpt2-xl", "gpt2-xl"), ("gptj", "gpt-j-6b"),
    ("llama2-7b", "llama-2-7b"), ("llama3-8b", "llama-3-8b"), ("llama3-70b", "llama-3-70b"),
    ("llama3-405b", "llama-3.1-405b"), ("mixtral-8x7b", "mixtral-8x7b"),
    ("deepseek-v3", "deepseek-v3"), ("qwen3-30b-a3b", "qwen3-30b-a3b"),
    ("qwen3-235b-a22b", "qwen3-235b-a22b"),
])
def test_zoo_entry_and_published_config_give_identical_graphs(zoo, folder):
    spec_zoo = workloads.model_spec(zoo)
    spec_hf = workloads.model_spec(str(DATA / folder / "config.json"))
    assert spec_hf.params == spec_zoo.params
    tp = min(d for d in (2, 5) if spec_zoo.heads % d == 0 and spec_zoo.ffn % d == 0)
    for kw in ({"batch": 2, "seq": 64}, {"batch": 1, "seq": 128, "tp": tp},
               {"batch": 1, "seq": 64, "layers": (0, 2), "last_stage": False}):
        _same_graph(workloads.build(spec_zoo, **kw), workloads.build(spec_hf, **kw))


def test_bert_published_config_is_the_masked_lm_and_matches_the_zoo_without_nsp():
    # the published bert-large-uncased config lists BertForMaskedLM (MLM head only); the
    # zoo entry is Devlin et al.'s pre-training model (BertForPreTraining: + NSP)
    spec_hf = workloads.model_spec(str(DATA / "bert-large-uncased" / "config.json"))
    spec_zoo = workloads.model_spec("bert-large")
    assert spec_hf.nsp_head is False and spec_zoo.nsp_head is True
    _same_graph(workloads.build(dataclasses.replace(spec_zoo, nsp_head=False), batch=2, seq=32),
                workloads.build(spec_hf, batch=2, seq=32))
    assert spec_hf.params == 335_174_458


def test_bert_pretraining_architecture_adds_nsp(tmp_path):
    data = json.loads((DATA / "bert-large-uncased" / "config.json").read_text())
    data["architectures"] = ["BertForPreTraining"]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(data))
    spec = workloads.model_spec(str(p))
    _same_graph(workloads.build(spec, batch=2, seq=32),
                workloads.build(workloads.model_spec("bert-large"), batch=2, seq=32))


@pytest.mark.parametrize("folder,params", [
    ("pythia-160m", 162_322_944),  # EleutherAI/pythia-160m (gpt_neox)
    ("opt-125m", 125_239_296),     # facebook/opt-125m
    ("opt-350m", 331_196_416),     # facebook/opt-350m: post-LN, 512-wide embeddings
])
def test_neox_and_opt_parameter_counts(folder, params):
    spec = workloads.model_spec(str(DATA / folder / "config.json"))
    assert spec.params == params
    g = workloads.build(spec, batch=1, seq=32)
    assert g.meta["shard_params"] == params


def test_neox_uses_two_layernorms_and_a_quarter_rotary():
    spec = workloads.model_spec(str(DATA / "pythia-160m" / "config.json"))
    assert spec.parallel_block and not spec.parallel_shared_norm
    assert spec.rotary_dim == 16  # 0.25 of head_dim 64
    g = workloads.build(spec, batch=1, seq=16)
    assert "layer.norm2" in g.index


def _write(tmp_path: Path, data) -> str:
    p = tmp_path / "config.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


def test_missing_field_names_the_file_and_field(tmp_path):
    data = json.loads((DATA / "llama-3-8b" / "config.json").read_text())
    del data["intermediate_size"]
    p = _write(tmp_path, data)
    with pytest.raises(WorkloadError, match=r"config\.json: field 'intermediate_size' is "
                       r"missing \(model_type llama\)"):
        spec_from_hf_config(p)


def test_ill_typed_field(tmp_path):
    data = json.loads((DATA / "gpt2" / "config.json").read_text())
    data["n_layer"] = "twelve"
    with pytest.raises(WorkloadError, match="field 'n_layer' must be an integer"):
        spec_from_hf_config(_write(tmp_path, data))
    data["n_layer"] = 12
    data["tie_word_embeddings"] = "yes"
    with pytest.raises(WorkloadError, match="'tie_word_embeddings' must be true or false"):
        spec_from_hf_config(_write(tmp_path, data))


def test_unsupported_model_type_and_missing_model_type(tmp_path):
    with pytest.raises(WorkloadError, match="model_type='t5' is not supported; choose one of"):
        spec_from_hf_config(_write(tmp_path, {"model_type": "t5"}))
    with pytest.raises(WorkloadError, match="'model_type' is missing"):
        spec_from_hf_config(_write(tmp_path, {"n_layer": 2}))


def test_malformed_json(tmp_path):
    with pytest.raises(WorkloadError, match="config.json: malformed JSON at line 1"):
        spec_from_hf_config(_write(tmp_path, '{"model_type": "gpt2",'))
    with pytest.raises(WorkloadError, match="top level must be a mapping"):
        spec_from_hf_config(_write(tmp_path, "[1, 2]"))


def test_inconsistent_sizes_are_reported(tmp_path):
    data = json.loads((DATA / "gpt2" / "config.json").read_text())
    data["n_head"] = 7  # 768 is not divisible by 7
    with pytest.raises(WorkloadError, match="hidden=768 is not divisible by heads=7"):
        spec_from_hf_config(_write(tmp_path, data))


@pytest.mark.parametrize("folder,params,card", [
    # Qwen2.5-7B: q/k/v biases, no o bias; the model card's "7.61B" (6.53 B without
    # embeddings). By hand: 28 layers of (3584·(3584 + 2·512) + 3584 + 2·512 + 3584²
    # + 3·3584·18944 + 2·3584) plus 2·152064·3584 + 3584.
    ("qwen2.5-7b", 28 * (3584 * (3584 + 2 * 512) + 3584 + 2 * 512 + 3584 * 3584
                         + 3 * 3584 * 18944 + 2 * 3584) + 2 * 152064 * 3584 + 3584, 7.61),
    # Qwen3-8B: a 128-weight RMSNorm per query and key head, no biases; "8.2B" (6.95 B
    # without embeddings).
    ("qwen3-8b", 36 * (4096 * (4096 + 2 * 1024) + 2 * 128 + 4096 * 4096
                       + 3 * 4096 * 12288 + 2 * 4096) + 2 * 151936 * 4096 + 4096, 8.2),
])
def test_qwen_dense_configs_count_their_parameters_by_hand(folder, params, card):
    spec = workloads.model_spec(str(DATA / folder / "config.json"))
    assert spec.params == spec.active_params == params
    assert params / 1e9 == pytest.approx(card, abs=0.01)  # the card's figure, as printed
    g = workloads.build(spec, batch=1, seq=64)
    assert sum(op.params * op.count for op in g.ops if op.phase == "fwd") == params
    qk = [op for op in g.ops if op.name.endswith("attn.qk_norm") and op.phase == "fwd"]
    assert bool(qk) == (folder == "qwen3-8b")


@pytest.mark.parametrize("folder,change,field", [
    ("qwen3-8b", {"model_type": "mistral", "sliding_window": 4096}, "sliding_window"),
    ("qwen2.5-7b", {"use_sliding_window": True}, "use_sliding_window"),
    ("qwen3-30b-a3b", {"decoder_sparse_step": 2}, "decoder_sparse_step"),
    ("qwen3-30b-a3b", {"mlp_only_layers": [0, 1]}, "mlp_only_layers"),
    ("qwen3-30b-a3b", {"num_experts": None}, "num_experts"),
])
def test_qwen_and_mistral_configs_the_model_cannot_represent_are_refused(tmp_path, folder,
                                                                         change, field):
    data = json.loads((DATA / folder / "config.json").read_text())
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(data))
    with pytest.raises(WorkloadError, match=field):
        workloads.model_spec(str(p))


def test_a_mistral_config_without_a_window_is_llama_shaped(tmp_path):
    data = json.loads((DATA / "llama-3-8b" / "config.json").read_text())
    data.update(model_type="mistral", sliding_window=None)
    p = tmp_path / "config.json"
    p.write_text(json.dumps(data))
    assert workloads.model_spec(str(p)).params == workloads.model_spec("llama3-8b").params

