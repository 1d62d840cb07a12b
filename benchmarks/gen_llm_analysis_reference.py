"""Generate the llm-analysis reference table for our training FLOPs and memory models.

Run it with the Python of a separate virtual environment that has the real
``llm-analysis`` installed (``docs/sources.md`` P5)::

    DSE_PEER_ALL=1 bash benchmarks/setup_peer_tools.sh     # venvs in $DSE_PEER_VENVS
    ${DSE_PEER_VENVS:-~/.cache/dse-peer-venvs}/llm-analysis/bin/python benchmarks/gen_llm_analysis_reference.py

It runs ``LLMAnalysis.training`` (cli99/llm-analysis 0.2.2, ``llm_analysis/analysis.py``)
once per (model, plan) on a grid of GPT-style models of our zoo and writes

* ``tests/validation/data/llm_analysis_reference.csv``: one row per case, preceded by
  ``#`` comment lines naming the version and the settings;
* ``tests/validation/data/llm_analysis_reference.json``: a sidecar with the versions,
  the settings, the model configs handed to the tool and the wall time.

The script imports only the standard library, PyYAML and ``llm_analysis``; it does not
import the ``dse`` packages. Model hyperparameters come from our zoo's data files
(``workloads/zoo/<name>.yaml``); the test checks that they still match.

How the tool is driven (pitfalls of docs/sources.md P5)
------------------------------------------------------
* Models are passed as ``ModelConfig`` objects built from the zoo YAML, never by name
  (an unknown name triggers an online Hugging Face fetch). The GPU is a ``GPUConfig``
  with NVIDIA's A100-SXM4-80GB data-sheet values (312 TFLOP/s dense bf16, 2039 GB/s,
  80 GB, NVLink 600 GB/s bidirectional = 300 GB/s per direction); it only matters for the
  tool's step-time and "memory left" outputs, which we do not compare.
* ``training(batch_size_per_gpu=b, global_batch_size=b·dp·m)`` (the branch of
  ``config_batch_size_and_gradient_accumulation_steps`` that does not assert that the
  model fits: some rows, e.g. GPT-3 on one GPU, deliberately do not).
* ``flash_attn=False`` and ``softmax_dropout=<model has dropout>``: Korthikanti et al.'s
  accounting (the score matrices are stored), which is what we model.
* ``layernorm_dtype_bytes=2``: the tool's default is 4 (fp32 LayerNorm inputs, 8sbh for
  two LayerNorms vs Korthikanti's 4sbh, cli99/llm-analysis#18); we record the
  Korthikanti-convention number. ``master_weights_dtype_bytes`` and the optimizer are left
  at the tool's defaults (Adam, fp32 master weights; the tool then stores gradients in
  fp32, 4 B/param: a convention difference the test names).
* ``sp_size`` is set explicitly: the tool defaults it to ``tp_size`` (sequence
  parallelism on whenever tp > 1); rows with ``sp=0`` pass ``sp_size=1``.
* GPT-J/Llama hyperparameters the tool cannot express are recorded as they were
  passed: for Llama's SwiGLU MLP (three h×f matrices) we pass
  ``ffn_embed_dim = 1.5·f`` (``expansion_ratio = 1.5·f/h``) so that its two-matrix
  count ``2·h·ffn`` equals ``3·h·f``; everything else is left to the tool.

Recorded columns (bytes and FLOPs, per GPU unless named otherwise)
------------------------------------------------------------------
* the case: ``model, seq, tp, pp, dp, sp, micro_batch, micro_batches, recompute, zero``;
* ``num_params_total`` (the tool's parameter count);
* ``flop_fwd_per_micro_batch`` (``get_num_flops_fwd_total``: whole model, one
  micro-batch) and ``flop_total_per_micro_batch`` (summary key
  ``num_flops_total_per_micro_batch``: forward + backward + recomputation);
* ``weight_bytes``, ``weight_embedding_bytes``, ``weight_attn_bytes``,
  ``weight_mlp_bytes``, ``weight_layernorm_bytes``, ``grad_bytes``, ``optimizer_bytes``
  (summary keys ``*_memory_per_gpu``);
* ``act_bytes_per_layer`` and its ``_attn/_mlp/_layernorm`` parts
  (``get_activation_memory_per_layer(..., return_breakdown=True)`` with the same
  arguments as ``training`` uses), ``act_bytes`` (``activation_memory_per_gpu``:
  ``num_layers × per layer + logits + one LayerNorm``), ``act_output_embedding_bytes``;
* ``weight_bytes_per_layer`` (``get_weight_memory_per_layer``);
* ``total_bytes`` (``(weight+op_state+grad+act)_memory_per_gpu``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
ZOO = REPO_ROOT / "workloads" / "zoo"
DEFAULT_CSV = REPO_ROOT / "tests" / "validation" / "data" / "llm_analysis_reference.csv"

# NVIDIA A100 Tensor Core GPU data sheet (2021), SXM4 80 GB column.
A100_80GB = {
    "name": "a100-sxm-80gb",
    "mem_per_GPU_in_GB": 80,
    "hbm_bandwidth_in_GB_per_sec": 2039,
    "intra_node_bandwidth_in_GB_per_sec": 300,
    "intra_node_min_message_latency": 8e-06,
    "peak_fp16_TFLOPS": 312,
    "peak_i8_TFLOPS": 624,
    "peak_i4_TFLOPS": 1248,
    "inter_node_bandwidth_in_GB_per_sec": 200,
}
DTYPE = {"name": "w16a16e16", "weight_bits": 16, "activation_bits": 16, "embedding_bits": 16}
LAYERNORM_DTYPE_BYTES = 2

# model -> (tensor-parallel sizes, pipeline sizes). tp divides heads and ffn; pp divides layers.
MODELS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "gpt2-xl": ((1, 5), (1, 4)),  # 25 heads
    "gptj": ((1, 4), (1, 4)),
    "llama2-7b": ((1, 8), (1, 4)),
    "gpt3-175b": ((1, 8), (1, 8)),
    "megatron-1.7b": ((1, 8), (1, 4)),
    "megatron-22b": ((1, 8), (1, 4)),
}
DPS = (1, 4)
MICRO_BATCHES = (1, 2)
RECOMPUTE = ("none", "selective", "full")

CSV_COLUMNS = (
    "model", "seq", "tp", "pp", "dp", "sp", "micro_batch", "micro_batches", "recompute",
    "zero", "num_params_total", "flop_fwd_per_micro_batch", "flop_total_per_micro_batch",
    "weight_bytes", "weight_embedding_bytes", "weight_attn_bytes", "weight_mlp_bytes",
    "weight_layernorm_bytes", "weight_bytes_per_layer", "grad_bytes", "optimizer_bytes",
    "act_bytes_per_layer", "act_attn_bytes_per_layer", "act_mlp_bytes_per_layer",
    "act_layernorm_bytes_per_layer", "act_output_embedding_bytes", "act_bytes",
    "total_bytes",
)


def zoo_model(name: str) -> dict[str, Any]:
    """The zoo's YAML fields of ``name`` (the data file, not the dse package)."""
    data = yaml.safe_load((ZOO / f"{name}.yaml").read_text())
    assert isinstance(data, dict) and data.get("name") == name, name
    return data


def model_config_dict(z: dict[str, Any]) -> dict[str, Any]:
    """llm-analysis ``ModelConfig`` fields for a zoo transformer."""
    h, f = int(z["hidden"]), int(z["ffn"])
    gated = bool(z.get("gated_mlp", False))
    ffn = f * 3 // 2 if gated else f  # SwiGLU's 3 matrices as the tool's 2 (module doc)
    if gated:
        assert (3 * f) % 2 == 0
    return {
        "name": f"dse-zoo-{z['name']}",
        "num_layers": int(z["layers"]),
        "n_head": int(z["heads"]),
        "hidden_dim": h,
        "vocab_size": int(z["vocab"]),
        "max_seq_len": int(z["max_positions"]),
        "num_key_value_heads": int(z.get("kv_heads", z["heads"])),
        "ffn_embed_dim": ffn,
        "expansion_ratio": ffn / h,
        "model_type": str(z["model_type"]),
    }


def cases() -> list[dict[str, Any]]:
    out = []
    for name, (tps, pps) in MODELS.items():
        z = zoo_model(name)
        for tp in tps:
            # Megatron sequence parallelism needs seq % tp == 0 (gpt2-xl's tp=5 has none)
            sp_options = (0, 1) if tp > 1 and int(z["default_seq"]) % tp == 0 else (0,)
            for sp in sp_options:
                for pp in pps:
                    for dp in DPS:
                        for zero in ((0, 1, 2, 3) if dp > 1 else (0,)):
                            for mb in MICRO_BATCHES:
                                for rc in RECOMPUTE:
                                    out.append({
                                        "model": name, "seq": int(z["default_seq"]),
                                        "tp": tp, "pp": pp, "dp": dp, "sp": sp,
                                        "micro_batch": mb,
                                        # 2·pp micro-batches: the 1F1B first stage
                                        # holds pp of them (>= pp in flight)
                                        "micro_batches": 2 * pp,
                                        "recompute": rc, "zero": zero,
                                    })
    return out


def run_one(case: dict[str, Any], configs: dict[str, Any]) -> dict[str, Any]:
    from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
    from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig

    z = zoo_model(case["model"])
    mc = ModelConfig(**configs[case["model"]])
    par = ParallelismConfig(tp_size=case["tp"], pp_size=case["pp"], dp_size=case["dp"],
                            sp_size=case["tp"] if case["sp"] else 1)
    an = LLMAnalysis(mc, GPUConfig(**A100_80GB), DtypeConfig(**DTYPE), par)
    rc = {"none": ActivationRecomputation.NONE, "selective": ActivationRecomputation.SELECTIVE,
          "full": ActivationRecomputation.FULL}[case["recompute"]]
    zero = DSZeRO(case["zero"])
    b, s = case["micro_batch"], case["seq"]
    softmax_dropout = bool(z.get("dropout", True))
    summ = an.training(batch_size_per_gpu=b,
                       global_batch_size=b * case["dp"] * case["micro_batches"],
                       seq_len=s, activation_recomputation=rc, ds_zero=zero,
                       layernorm_dtype_bytes=LAYERNORM_DTYPE_BYTES, flash_attn=False,
                       softmax_dropout=softmax_dropout)
    assert summ["batch_size_per_gpu"] == b
    assert summ["gradient_accumulation_steps"] == case["micro_batches"]
    per_layer = an.get_activation_memory_per_layer(
        b, s, is_inference=False, activation_recomputation=rc,
        layernorm_dtype_bytes=LAYERNORM_DTYPE_BYTES, flash_attn=False,
        softmax_dropout=softmax_dropout, return_breakdown=True)
    row = dict(case)
    row.update({
        "num_params_total": summ["num_params_total"],
        "flop_fwd_per_micro_batch": an.get_num_flops_fwd_total(b, s),
        "flop_total_per_micro_batch": summ["num_flops_total_per_micro_batch"],
        "weight_bytes": summ["weight_memory_per_gpu"],
        "weight_embedding_bytes": summ["weight_memory_embedding_per_gpu"],
        "weight_attn_bytes": summ["weight_memory_attn_per_gpu"],
        "weight_mlp_bytes": summ["weight_memory_mlp_per_gpu"],
        "weight_layernorm_bytes": summ["weight_memory_layernorm_per_gpu"],
        "weight_bytes_per_layer": an.get_weight_memory_per_layer(zero),
        "grad_bytes": summ["gradient_memory_per_gpu"],
        "optimizer_bytes": summ["optimizer_state_memory_per_gpu"],
        "act_bytes_per_layer": per_layer[0],
        "act_attn_bytes_per_layer": per_layer[1],
        "act_mlp_bytes_per_layer": per_layer[2],
        "act_layernorm_bytes_per_layer": per_layer[3],
        "act_output_embedding_bytes": summ["activation_memory_embedding_output_per_gpu"],
        "act_bytes": summ["activation_memory_per_gpu"],
        "total_bytes": summ["(weight+op_state+grad+act)_memory_per_gpu"],
    })
    return row


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)  # shortest round-trip repr: no precision lost
    return str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CSV, help="CSV to write")
    args = parser.parse_args(argv)

    logging.disable(logging.WARNING)  # the tool logs every step at INFO/WARNING
    version = importlib.metadata.version("llm-analysis")
    configs = {name: model_config_dict(zoo_model(name)) for name in MODELS}
    grid = cases()
    print(f"running llm-analysis {version} on {len(grid)} cases", file=sys.stderr)
    t0 = time.perf_counter()
    rows = [run_one(c, configs) for c in grid]
    wall_s = time.perf_counter() - t0
    print(f"done in {wall_s:.1f} s", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        fh.write(f"# llm-analysis reference: llm-analysis=={version}, generated by "
                 "benchmarks/gen_llm_analysis_reference.py\n")
        fh.write("# LLMAnalysis.training(flash_attn=False, softmax_dropout=<model dropout>, "
                 f"layernorm_dtype_bytes={LAYERNORM_DTYPE_BYTES}, Adam fp32 master defaults), "
                 "GPU a100-sxm-80gb, dtype w16a16e16\n")
        fh.write("# bytes and FLOPs per GPU unless named *_per_micro_batch (whole model); "
                 "model configs in the .json sidecar\n")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([fmt(r[c]) for c in CSV_COLUMNS])

    sidecar = {
        "llm_analysis_version": version,
        "python_version": platform.python_version(),
        "generator": "benchmarks/gen_llm_analysis_reference.py",
        "gpu_config": A100_80GB,
        "dtype_config": DTYPE,
        "training_kwargs": {"flash_attn": False, "softmax_dropout": "model dropout flag",
                            "layernorm_dtype_bytes": LAYERNORM_DTYPE_BYTES,
                            "master_weights_dtype_bytes": 4, "other_op_bytes": None},
        "model_configs": configs,
        "n_cases": len(rows),
        "wall_s": round(wall_s, 3),
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print(f"wrote {args.out} ({len(rows)} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
