"""Generate the GenZ reference table for our per-operator GEMM costs (forward, prefill).

Run it with the Python of a separate virtual environment that has the real GenZ
installed (``genz-llm`` 0.0.16, ~0.9 GB; ``docs/sources.md`` P4)::

    DSE_PEER_ALL=1 bash benchmarks/setup_peer_tools.sh     # venvs in $DSE_PEER_VENVS
    ${DSE_PEER_VENVS:-~/.cache/dse-peer-venvs}/genz/bin/python benchmarks/gen_genz_reference.py

GenZ models inference only; a training step's forward pass is a prefill of
``batch × seq`` tokens, so we build GenZ's prefill model
(``GenZ.Models.create_full_prefill_model``) for a grid of zoo transformers, batches,
sequence lengths and tensor-parallel sizes and record GenZ's per-operator roofline
(``GenZ.analyse_model.get_model_df`` → ``Operator.get_roofline``) for the GEMMs of one
transformer layer (``QKV``, ``Logit`` = QKᵀ, ``Attend`` = A·V, ``Out Proj``, ``up+gate``,
``down``) and the LM head (``classifier``). It writes

* ``tests/validation/data/genz_reference.csv``: one row per (model, batch, seq, tp, op),
  preceded by ``#`` comment lines naming the version and the settings;
* ``tests/validation/data/genz_reference.json``: a sidecar with the versions, the GenZ
  ``System`` settings and the model configs.

The script imports only the standard library, PyYAML and GenZ (no ``dse`` packages).
Model hyperparameters come from our zoo's data files (``workloads/zoo/<name>.yaml``).

GenZ's model and how it is driven
---------------------------------
* Per operator: ``time = max(compute, memory, comm)`` with ``compute = MACs ·
  bit_multiplier / (flops/2) / compute_efficiency`` and ``memory = Σ_tensors bytes /
  bandwidth(location) / memory_efficiency``, every tensor read or written once
  (``GenZ/operator_base.py``). Efficiencies are set to 1 (the ideal roofline), so the
  efficiency factors compared are ours.
* System: ``System(flops=312, offchip_mem_bw=…, bits='bf16')`` — the A100's 312 TFLOP/s
  dense bf16 and 2039 GB/s. **Unit pitfall**: GenZ's bandwidth unit ``GBsec`` is binary
  (``Unit.binary_dicts``: 2^30 B/s), while its FLOP/s unit is decimal; we pass
  ``2039e9 / 2**30`` so GenZ's raw bandwidth is exactly 2039·10^9 B/s. Memory sizes are
  in MiB (``MB`` = 2^20 bytes); the script converts them back to bytes.
* Flash attention: GenZ's prefill keeps the score matrix on chip (``Logit`` output and
  ``Attend`` input pinned ``on``: ``ResidencyInfo.C_onchip/A_onchip`` and
  ``intermediate_on_chip=True``). GenZ *adds* the on-chip tensors' time (at
  ``onchip_mem_bw``) to the off-chip time; we set ``onchip_mem_bw`` to infinity so the
  recorded memory time is the HBM time alone (our model takes ``max(HBM, fabric)``).
* GenZ's ``embeddings`` op is a one-hot GEMM (``2·tokens·V·h`` FLOPs); ours is a gather
  with no FLOPs: not recorded.
* SwiGLU (Llama) uses GenZ's ``num_ffi = 2`` (``up+gate`` is one ``h × 2f`` GEMM, as our
  fused fc1).

Recorded columns
----------------
``model, batch, seq, tp, op, genz_dims`` (GenZ's operator dimensions), ``flop`` (GenZ's
``Num ops``: 2 × MACs), ``input_a_bytes, input_w_bytes, output_bytes`` (tensor sizes),
``compute_s, memory_s, latency_s`` (GenZ's roofline terms), ``bound`` (GenZ's
``Compute``/``Memory``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import math
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
ZOO = REPO_ROOT / "workloads" / "zoo"
DEFAULT_CSV = REPO_ROOT / "tests" / "validation" / "data" / "genz_reference.csv"

PEAK_TFLOPS = 312.0          # NVIDIA A100 data sheet: dense bf16 tensor TFLOP/s
HBM_BYTES_PER_S = 2039.0e9   # NVIDIA A100 80GB data sheet
GENZ_BW = HBM_BYTES_PER_S / 2**30  # GenZ's "GB/s" is GiB/s (module docstring)

# model -> tensor-parallel sizes (dividing heads, ffn and vocab)
MODELS: dict[str, tuple[int, ...]] = {
    "gpt2-xl": (1,),
    "gptj": (1, 4),
    "llama2-7b": (1, 8),
    "gpt3-175b": (8,),
    "megatron-22b": (1, 8),
}
BATCHES = (1, 4)
SEQS = (512, 2048)
"""Sequence lengths, capped at the model's ``max_positions`` (gpt2-xl: 512 and 1024)."""
OPS = ("QKV", "Logit", "Attend", "Out Proj", "up+gate", "down", "classifier")
MB = 2**20  # GenZ's "MB"

CSV_COLUMNS = ("model", "batch", "seq", "tp", "op", "genz_dims", "flop", "input_a_bytes",
               "input_w_bytes", "output_bytes", "compute_s", "memory_s", "latency_s", "bound")


def zoo_model(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ZOO / f"{name}.yaml").read_text())
    assert isinstance(data, dict) and data.get("name") == name, name
    return data


def model_config_dict(z: dict[str, Any]) -> dict[str, Any]:
    """GenZ ``ModelConfig`` kwargs for a zoo transformer."""
    return {
        "model": f"dse-zoo-{z['name']}",
        "vocab_size": int(z["vocab"]),
        "hidden_size": int(z["hidden"]),
        "intermediate_size": int(z["ffn"]),
        "num_ffi": 2 if z.get("gated_mlp") else 1,
        "num_decoder_layers": int(z["layers"]),
        "num_attention_heads": int(z["heads"]),
        "num_key_value_heads": int(z.get("kv_heads", z["heads"])),
        "head_dim": int(z["hidden"]) // int(z["heads"]),
        "hidden_act": str(z.get("activation", "gelu")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CSV, help="CSV to write")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from GenZ.analyse_model import get_model_df
    from GenZ.Models import ModelConfig, create_full_prefill_model
    from GenZ.system import System
    from GenZ.unit import Unit

    version = importlib.metadata.version("genz-llm")
    unit = Unit()  # msec, MB (2^20), Tflops, GBsec (2^30)
    system = System(unit=unit, flops=PEAK_TFLOPS, offchip_mem_bw=GENZ_BW,
                    onchip_mem_bw=math.inf, bits="bf16", compute_efficiency=1,
                    memory_efficiency=1, comm_efficiency=1)
    assert system.offchip_mem_bw == HBM_BYTES_PER_S or math.isclose(
        system.offchip_mem_bw, HBM_BYTES_PER_S, rel_tol=1e-12)
    configs = {name: model_config_dict(zoo_model(name)) for name in MODELS}

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, tps in MODELS.items():
            mc = ModelConfig(**configs[name])
            for tp in tps:
                max_seq = int(zoo_model(name)["max_positions"])
                for seq in sorted({min(s, max_seq) for s in SEQS}):
                    fname = create_full_prefill_model(mc, input_sequence_length=seq,
                                                      tensor_parallel=tp, data_path=tmp)
                    for batch in BATCHES:
                        df = get_model_df(fname, system, unit, batch_size=batch,
                                          data_path=tmp, intermediate_on_chip=True)
                        seen = set()
                        for _, op in df.iterrows():
                            if op["Layer Name"] not in OPS:
                                continue
                            assert op["Layer Name"] not in seen, op["Layer Name"]
                            seen.add(op["Layer Name"])
                            rows.append({
                                "model": name, "batch": batch, "seq": seq, "tp": tp,
                                "op": op["Layer Name"],
                                "genz_dims": json.dumps(op["Dimension"], default=int),
                                "flop": float(op[f"Num ops ({unit.unit_flop})"]) * 1e6,
                                "input_a_bytes": float(op[f"Input_a ({unit.unit_mem})"]) * MB,
                                "input_w_bytes": float(op[f"Input_w ({unit.unit_mem})"]) * MB,
                                "output_bytes": float(op[f"Output ({unit.unit_mem})"]) * MB,
                                "compute_s": float(op[f"Compute time ({unit.unit_time})"]) * 1e-3,
                                "memory_s": float(op[f"Memory time ({unit.unit_time})"]) * 1e-3,
                                "latency_s": float(op[f"Latency ({unit.unit_time})"]) * 1e-3,
                                "bound": op["Bound"],
                            })
                        assert seen == set(OPS), (name, tp, seq, batch, seen)
    wall_s = time.perf_counter() - t0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        fh.write(f"# GenZ reference: genz-llm=={version}, generated by "
                 "benchmarks/gen_genz_reference.py\n")
        fh.write(f"# prefill per-operator roofline, System(flops={PEAK_TFLOPS} TFLOP/s, "
                 f"offchip_mem_bw={HBM_BYTES_PER_S:.0f} B/s, onchip_mem_bw=inf, bf16, "
                 "efficiencies 1), intermediate_on_chip=True\n")
        fh.write("# bytes, FLOPs (2 x MACs) and seconds per execution of one operator; "
                 "model configs in the .json sidecar\n")
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})

    sidecar = {
        "genz_version": version,
        "python_version": platform.python_version(),
        "generator": "benchmarks/gen_genz_reference.py",
        "system": {"flops_tflops": PEAK_TFLOPS, "offchip_mem_bw_bytes_per_s": HBM_BYTES_PER_S,
                   "offchip_mem_bw_genz_units": GENZ_BW, "onchip_mem_bw": "inf",
                   "bits": "bf16", "compute_efficiency": 1, "memory_efficiency": 1},
        "intermediate_on_chip": True,
        "model_configs": configs,
        "n_cases": len(rows),
        "wall_s": round(wall_s, 3),
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print(f"wrote {args.out} ({len(rows)} rows, {wall_s:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
