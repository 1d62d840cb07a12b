"""Bad inputs tried on the ``dse`` command line, and the one-line message each gets.

Runs every case of :data:`CASES` through :func:`dse.cli.main` in this process, in a
scratch directory holding the broken files the cases name (``bad.yaml``, a truncated
``.onnx`` …), capturing file descriptors 1 and 2 (so library logging and warnings are
caught too), and writes the table to ``docs/bad-inputs.md``::

    python benchmarks/bad_inputs.py            # writes docs/bad-inputs.md
    python benchmarks/bad_inputs.py --check    # exit 1 if a case breaks the rules

The rules (``tests/dse/test_bad_inputs.py`` asserts them): the expected exit code (2 bad
input, 3 no feasible design, 1 unreachable storage), exactly one line on stderr, no
traceback, nothing on stdout, the message naming what is wrong (``expect`` substrings)
and never echoing a password (``forbid``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLOSED = "127.0.0.1:1"
"""A loopback port nothing listens on (tcpmux; binding it needs root)."""
SECRET = "hunter2-Secret"


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` after ``dse`` (run in the scratch directory)."""

    group: str
    what: str
    argv: tuple[str, ...]
    code: int
    expect: tuple[str, ...] = ()
    """Substrings the stderr line must contain (case-sensitive)."""
    forbid: tuple[str, ...] = ()
    """Substrings it must not contain."""


def _c(group: str, what: str, cmd: str, code: int, expect: tuple[str, ...] = (),
       forbid: tuple[str, ...] = ()) -> Case:
    import shlex

    return Case(group, what, tuple(shlex.split(cmd)), code, expect, forbid)


S = "search --workload gptj --area 400"
CASES: tuple[Case, ...] = (
    # ---------------------------------------------------------------- usage
    _c("usage", "no command", "", 2, ("missing command",)),
    _c("usage", "unknown command", "frobnicate", 2, ("invalid choice", "frobnicate")),
    _c("usage", "missing required flag", "search --workload gptj", 2, ("--area",)),
    _c("usage", "workloads without action", "workloads", 2, ("missing action",)),
    _c("usage", "a flag the command does not have (named by the command)",
       "evaluate --workload gpt2 --hardware a100 --dtype fp8", 2,
       ("dse evaluate: unrecognized arguments: --dtype fp8",)),
    # ---------------------------------------------------------------- workloads
    _c("workloads", "unknown workload name (lists the zoo)", "workloads show gpt5", 2,
       ("gpt5", "gptj", "bert-large")),
    _c("workloads", "missing config.json", "workloads show nosuch/config.json", 2,
       ("nosuch/config.json",)),
    _c("workloads", "config.json missing fields", "workloads show missing_fields.json", 2,
       ("missing_fields.json",)),
    _c("workloads", "config.json that is not JSON", "workloads show broken_config.json", 2,
       ("broken_config.json",)),
    _c("workloads", "config.json with a negative size", "workloads show negative_config.json",
       2, ("negative_config.json",)),
    _c("workloads", "truncated ONNX file", "workloads show truncated.onnx", 2,
       ("truncated.onnx",)),
    _c("workloads", "empty ONNX file", "workloads show empty.onnx", 2, ("empty.onnx",)),
    _c("workloads", "ONNX file that is text", "workloads show text.onnx", 2, ("text.onnx",)),
    _c("workloads", "zero batch", "workloads show gptj --batch 0", 2, ("--batch",)),
    _c("workloads", "negative sequence length", "workloads show gptj --seq -5", 2, ("--seq",)),
    # ---------------------------------------------------------------- hardware
    _c("hardware", "unknown preset (lists the presets)", "hardware show tpuv9", 2,
       ("tpuv9", "tpuv4", "a100")),
    _c("hardware", "malformed YAML", "hardware show malformed.yaml", 2,
       ("malformed.yaml", "YAML")),
    _c("hardware", "malformed JSON", "hardware show malformed.json", 2,
       ("malformed.json", "JSON")),
    _c("hardware", "YAML whose top level is a list", "hardware show list.yaml", 2,
       ("list.yaml",)),
    _c("hardware", "negative tensor_cores", "hardware show negative_cores.yaml", 2,
       ("tensor_cores",)),
    _c("hardware", "NaN clock", "hardware show nan_clock.yaml", 2, ("freq_hz",)),
    _c("hardware", "unknown field (lists the valid ones)", "hardware show typo_field.json", 2,
       ("tensor_core", "valid")),
    _c("hardware", "binary garbage as YAML", "hardware show garbage.yaml", 2,
       ("garbage.yaml",)),
    _c("hardware", "bad scalar under an explicit YAML tag", "hardware show tagged.yaml", 2,
       ("tagged.yaml",)),
    # ---------------------------------------------------------------- evaluate
    _c("evaluate", "tp·pp·dp ≠ devices",
       "evaluate --workload gptj --hardware tpuv4 --devices 8 --tp 2 --pp 2 --dp 1", 2,
       ("8",)),
    _c("evaluate", "tp does not divide the heads",
       "evaluate --workload gptj --hardware tpuv4 --devices 5 --tp 5 --pp 1 --dp 1", 2,
       ("tp",)),
    _c("evaluate", "more pipeline stages than layers",
       "evaluate --workload gptj --hardware tpuv4 --devices 64 --tp 1 --pp 64 --dp 1", 2,
       ("pp",)),
    _c("evaluate", "global batch not divisible by dp × micro-batch",
       "evaluate --workload gptj --hardware tpuv4 --devices 2 --tp 1 --pp 1 --dp 2 "
       "--global-batch 10 --micro-batch 3", 2, ("global_batch",)),
    _c("evaluate", "unknown schedule", "evaluate --workload gptj --hardware tpuv4 --schedule zz",
       2, ("zz",)),
    _c("evaluate", "zero tensor parallelism", "evaluate --workload gptj --hardware tpuv4 --tp 0",
       2, ("--tp",)),
    _c("evaluate", "hardware file with a bad field",
       "evaluate --workload gptj --hardware negative_cores.yaml", 2, ("tensor_cores",)),
    # ---------------------------------------------------------------- search
    _c("search", "zero area", "search --workload gptj --area 0", 2, ("--area",)),
    _c("search", "negative area", "search --workload gptj --area -5", 2, ("--area",)),
    _c("search", "NaN area", "search --workload gptj --area nan", 2, ("--area",)),
    _c("search", "infinite area", "search --workload gptj --area inf", 2, ("--area",)),
    _c("search", "zero power", f"{S} --power 0", 2, ("--power",)),
    _c("search", "zero budget", f"{S} --budget 0", 2, ("--budget",)),
    _c("search", "negative budget", f"{S} --budget -3", 2, ("--budget",)),
    _c("search", "NaN budget", f"{S} --budget nan", 2, ("--budget",)),
    _c("search", "infinite budget", f"{S} --budget inf", 2, ("--budget",)),
    _c("search", "unknown searcher (lists the valid ones)", f"{S} --searcher genetic", 2,
       ("genetic", "optuna")),
    _c("search", "unknown objective", f"{S} --objective speed", 2, ("speed",)),
    _c("search", "negative seed", f"{S} --seed -1", 2, ("--seed",)),
    _c("search", "zero jobs", f"{S} --jobs 0", 2, ("--jobs",)),
    _c("search", "empty entry in the workload list", "search --workload gptj,,bert-large "
       "--area 400", 2, ("empty",)),
    _c("search", "unknown workload in the list", "search --workload gptj,gpt5 --area 400", 2,
       ("gpt5",)),
    _c("search", "area too small for any design", "search --workload gptj --area 1 "
       "--out out_small", 3, ("mm",)),
    _c("search", "unwritable --out", f"{S} --out /proc/dse-out", 2, ("/proc/dse-out",)),
    _c("search", "--out is a file", f"{S} --out a_file.txt", 2, ("a_file.txt",)),
    _c("search", "sequential searcher with --jobs", f"{S} --searcher wham --jobs 2 --out o_w",
       2, ("wham",)),
    _c("search", "unsupported storage scheme", f"{S} --storage redis://h/0 --out o_r", 2,
       ("redis",)),
    _c("search", "in-memory SQLite storage", f"{S} --storage sqlite:// --out o_m", 2,
       ("in-memory",)),
    _c("search", "--jobs with a journal in an unwritable directory",
       f"{S} --searcher random --budget 5 --jobs 2 --out o_j --storage journal:/proc/dse/s.log",
       2, ("/proc/dse",)),
    _c("search", "unreachable PostgreSQL (password in the URL)",
       f"{S} --searcher random --budget 5 --out o_pg "
       f"--storage postgresql://dse:{SECRET}@{CLOSED}/studies", 1,
       (CLOSED, "dse:***@"), (SECRET,)),
    # ---------------------------------------------------------------- worker
    _c("worker", "unreachable PostgreSQL (password in the URL)",
       f"worker --storage postgresql://dse:{SECRET}@{CLOSED}/studies --study s", 1,
       (CLOSED, "dse:***@"), (SECRET,)),
    _c("worker", "password in the query string",
       f"worker --storage postgresql://dse@{CLOSED}/studies?password={SECRET} --study s", 1,
       (CLOSED,), (SECRET,)),
    _c("worker", "missing study (lists the studies there)",
       "worker --storage sqlite:///studies.db --study nope", 2, ("nope", "other")),
    _c("worker", "study not made for workers", "worker --storage sqlite:///studies.db "
       "--study other", 2, ("other",)),
    _c("search", "--jobs joining a single-process study", "search --workload gptj --area 400 "
       "--storage sqlite:///studies.db --study other --searcher random --budget 4 --jobs 2 "
       "--out jobs_run", 2, ("other", "--jobs")),
    _c("worker", "storage path that is not a storage", "worker --storage nowhere --study s", 2,
       ("nowhere",)),
    # ---------------------------------------------------------------- report / export
    _c("report", "missing run directory", "report no_such_run", 2, ("no_such_run",)),
    _c("report", "run directory without summary.json", "report empty_run", 2,
       ("empty_run",)),
    _c("export", "missing run directory", "export no_such_run --format scalesim --out ex", 2,
       ("no_such_run",)),
    _c("export", "unknown format", "export design.json --format verilog --out ex", 2,
       ("verilog",)),
    _c("export", "design JSON without hardware", "export no_hw.json --format scalesim --out ex",
       2, ("no_hw.json",)),
    _c("dashboard", "missing storage", "dashboard --storage no_such_run", 2, ("no_such_run",)),
    # ------------------------------------------------- secrets in every position (issue 14)
    _c("secrets", "password holding '/' and a non-numeric port",
       f"worker --storage postgresql://dse:pa/ss-{SECRET}@127.0.0.1:notaport/studies --study s",
       2, ("port must be a number", "dse:***@"), (SECRET, "ss-" + SECRET)),
    _c("secrets", "password holding '@'",
       f"worker --storage postgresql://dse:pa@{SECRET}@{CLOSED}/studies --study s", 1,
       (CLOSED,), (SECRET,)),
    _c("secrets", "sslpassword in the query string",
       f"worker --storage postgresql://dse@{CLOSED}/studies?sslpassword={SECRET} --study s", 1,
       ("sslpassword=***",), (SECRET,)),
    _c("secrets", "password in an unsupported scheme",
       f"search --workload gptj --area 400 --storage redis://u:pa/ss-{SECRET}@h/0", 2,
       ("redis",), (SECRET,)),
    _c("secrets", "dashboard on an unreachable server with a password",
       f"dashboard --storage postgresql://u:{SECRET}@{CLOSED}/db", 1, (CLOSED,), (SECRET,)),
    _c("secrets", "unknown database driver (not blamed on the network)",
       f"worker --storage mysql+nosuchdriver://u:{SECRET}@h/db --study s", 2,
       ("unknown mysql driver", "nosuchdriver"), (SECRET, "cannot reach")),
    _c("secrets", "search with an unknown driver names the driver, not the searcher",
       "search --workload gptj --area 400 --storage mysql+nosuchdriver://u@h/db --out o_d", 2,
       ("nosuchdriver",), ("wham",)),
    # ------------------------------------------------------ numbers out of physical range
    _c("range", "area beyond a wafer", "search --workload gptj --area 1e30", 2,
       ("--area", "out of range", "wafer")),
    _c("range", "power beyond any package", "search --workload gptj --area 400 --power 1e9", 2,
       ("--power", "out of range")),
    _c("range", "a trillion devices", "search --workload gptj --area 400 --devices "
       "1000000000000", 2, ("--devices", "1048576")),
    _c("range", "budget beyond any space", "search --workload gptj --area 400 --searcher "
       "random --budget 1000000000000000000", 2, ("--budget", "out of range")),
    _c("range", "seed beyond 32 bits", "search --workload gptj --area 400 --seed 99999999999", 2,
       ("--seed", "32-bit")),
    _c("range", "sequence of 10^12 tokens", "evaluate --workload gptj --hardware a100 --seq "
       "1000000000000", 2, ("--seq",)),
    _c("range", "global batch of 10^15", "evaluate --workload gptj --hardware a100 "
       "--global-batch 1000000000000000", 2, ("--global-batch",)),
    _c("range", "HF config: hidden size 10^12", "evaluate --workload huge_embd.json "
       "--hardware a100", 2, ("n_embd", "out of range")),
    _c("range", "HF config: 1e300 layers", "evaluate --workload huge_layers.json --hardware "
       "a100", 2, ("n_layer", "out of range")),
    _c("range", "HF config: 10^400 layers (beyond float)", "evaluate --workload "
       "huger_layers.json --hardware a100", 2, ("n_layer", "digits")),
    _c("range", "HF config: NaN dropout", "workloads show nan_dropout.json", 2,
       ("attn_pdrop", "finite")),
    _c("range", "HF config: dropout 3", "workloads show big_dropout.json", 2,
       ("resid_pdrop", "probability")),
    _c("range", "hardware: 1e300 Hz clock", "hardware show clock_1e300.yaml", 2,
       ("freq_hz", "out of range")),
    _c("range", "hardware: 10^9-row array", "hardware show rows_1e9.yaml", 2,
       ("array_rows", "out of range")),
    _c("range", "hardware: 10^9 HBM stacks", "hardware show stacks_1e9.yaml", 2,
       ("hbm_stacks", "out of range")),
    _c("range", "system: torus with a zero and a negative dimension",
       "evaluate --workload gptj --hardware bad_torus.yaml --dp 8", 2, ("torus_dim",)),
    _c("range", "a chip without links on 8 devices", "evaluate --workload gptj --hardware "
       "no_links.yaml --dp 8", 2, ("link_count=0", "8 devices")),
    # ------------------------------------------------------------------ unbounded reads
    _c("reads", "workload file that is /dev/zero", "workloads show zero.json", 2,
       ("zero.json", "device")),
    _c("reads", "hardware file that is /dev/zero", "hardware show zero.yaml", 2,
       ("zero.yaml", "device")),
    _c("reads", "workload file that is a FIFO", "workloads show fifo.json", 2,
       ("fifo.json", "FIFO")),
    _c("reads", "hardware file that is a FIFO", "evaluate --workload gptj --hardware fifo.yaml",
       2, ("fifo.yaml", "FIFO")),
    _c("reads", "ONNX file that is /dev/zero", "workloads show zero.onnx", 2,
       ("zero.onnx", "device")),
    _c("reads", "a 17 MiB workload file", "workloads show big.json", 2,
       ("big.json", "too large")),
    # --------------------------------------------------------------------- invalid models
    _c("models", "ONNX graph with a cycle", "workloads show cycle.onnx", 2, ("cycle",)),
    _c("models", "ONNX opset 999", "workloads show opset999.onnx", 2, ("opset 999",)),
    # ---------------------------------------------- more classes, more cases (issue 14)
    # CLI numbers, every flag that takes one
    _c("range", "top-k zero", f"{S} --top-k 0", 2, ("--top-k",)),
    _c("range", "top-k beyond any report", f"{S} --top-k 100000000", 2, ("--top-k",)),
    _c("range", "zero jobs on evaluate-like flags: --jobs 10^6", f"{S} --jobs 1000000", 2,
       ("--jobs",)),
    _c("range", "search batch of 10^30", f"{S} --batch 1000000000000000000000000000000", 2,
       ("--batch",)),
    _c("range", "search sequence of zero", f"{S} --seq 0", 2, ("--seq",)),
    _c("range", "power NaN", f"{S} --power nan", 2, ("--power",)),
    _c("range", "area as a word", "search --workload gptj --area big", 2, ("--area",)),
    _c("range", "area in hex", "search --workload gptj --area 0x190", 2, ("--area",)),
    _c("range", "devices as a float", f"{S} --devices 8.5", 2, ("--devices",)),
    _c("range", "pipeline of 10^12 stages", "evaluate --workload gptj --hardware a100 --pp "
       "1000000000000", 2, ("--pp",)),
    _c("range", "negative data parallelism", "evaluate --workload gptj --hardware a100 --dp -1",
       2, ("--dp",)),
    _c("range", "micro-batch NaN", "evaluate --workload gptj --hardware a100 --micro-batch nan",
       2, ("--micro-batch",)),
    _c("range", "interleave of 10^6", "evaluate --workload gptj --hardware a100 --pp 2 "
       "--schedule interleaved --interleave 1000000", 2, ("--interleave",)),
    _c("range", "dashboard port 70000", "dashboard --storage studies.db --port 70000", 2,
       ("--port",)),
    _c("range", "worker wait negative", "worker --storage studies.db --study s --wait -1", 2,
       ("--wait",)),
    _c("range", "worker wait infinite", "worker --storage studies.db --study s --wait inf", 2,
       ("--wait",)),
    _c("range", "export top zero", "export design.json --format scalesim --out ex --top 0", 2,
       ("--top",)),
    # hardware and system fields, each way a number can be wrong
    _c("hardware", "zero tensor cores", "hardware show hw_tensor_cores_0.yaml", 2,
       ("tensor_cores",)),
    _c("hardware", "fractional tensor cores", "hardware show hw_tensor_cores_frac.yaml", 2,
       ("tensor_cores",)),
    _c("hardware", "boolean tensor cores", "hardware show hw_tensor_cores_bool.yaml", 2,
       ("tensor_cores",)),
    _c("hardware", "string clock", "hardware show hw_freq_str.yaml", 2, ("freq_hz",)),
    _c("hardware", "infinite clock", "hardware show hw_freq_inf.yaml", 2, ("freq_hz",)),
    _c("hardware", "10^9 columns", "hardware show hw_cols_huge.yaml", 2, ("array_cols",)),
    _c("hardware", "negative vector lanes", "hardware show hw_lanes_neg.yaml", 2,
       ("vector_lanes",)),
    _c("hardware", "10^30 bytes of SRAM per core", "hardware show hw_sram_huge.yaml", 2,
       ("sram_per_core_bytes",)),
    _c("hardware", "negative global buffer", "hardware show hw_gb_neg.yaml", 2,
       ("global_buffer_bytes",)),
    _c("hardware", "zero HBM bandwidth", "hardware show hw_hbmbw_0.yaml", 2,
       ("hbm_bw_bytes_per_s",)),
    _c("hardware", "10^40 bytes of HBM", "hardware show hw_hbm_huge.yaml", 2, ("hbm_bytes",)),
    _c("hardware", "negative link count", "hardware show hw_links_neg.yaml", 2,
       ("link_count",)),
    _c("hardware", "link of 10^20 B/s", "hardware show hw_linkbw_huge.yaml", 2,
       ("link_bw_bytes_per_s",)),
    _c("hardware", "zero nm node", "hardware show hw_node_0.yaml", 2, ("tech_node_nm",)),
    _c("hardware", "matmul efficiency above 1", "hardware show hw_eff_2.yaml", 2,
       ("matmul_efficiency",)),
    _c("hardware", "unknown dataflow", "hardware show hw_dataflow.yaml", 2, ("dataflow",)),
    _c("hardware", "unknown dtype", "hardware show hw_dtype.yaml", 2, ("dtype",)),
    _c("hardware", "a directory as hardware", "hardware show empty_run", 2,
       ("empty_run", "directory")),
    _c("hardware", "an empty hardware file", "hardware show empty.yaml", 2, ("empty.yaml",)),
    _c("hardware", "a symlink loop", "hardware show loop.yaml", 2, ("loop.yaml",)),
    _c("range", "system: zero devices per node", "evaluate --workload gptj --hardware "
       "sys_dpn_0.yaml --dp 8", 2, ("devices_per_node",)),
    _c("range", "system: zero bandwidth inside a node", "evaluate --workload gptj --hardware "
       "sys_bw_0.yaml --dp 8", 2, ("intra_node_bw_bytes_per_s",)),
    _c("range", "system: a ten-second link latency", "evaluate --workload gptj --hardware "
       "sys_lat_10.yaml --dp 8", 2, ("latency",)),
    _c("range", "system: unknown topology", "evaluate --workload gptj --hardware "
       "sys_topo.yaml --dp 8", 2, ("topology",)),
    # model configurations
    _c("models", "HF config: zero heads", "workloads show hf_heads_0.json", 2, ("n_head",)),
    _c("models", "HF config: hidden not divisible by heads", "workloads show hf_indivisible.json",
       2, ("divisible",)),
    _c("models", "HF config: a vocabulary of 10^12", "workloads show hf_vocab_huge.json", 2,
       ("vocab",)),
    _c("models", "HF config: unknown model_type", "workloads show hf_type.json", 2,
       ("model_type",)),
    _c("models", "HF config: string layer count", "workloads show hf_layers_str.json", 2,
       ("n_layer",)),
    _c("models", "HF config: KV heads that do not divide the heads",
       "workloads show hf_kv.json", 2, ("heads",)),
    _c("models", "zoo-style YAML with 10^12 layers", "workloads show zoo_layers_huge.yaml", 2,
       ("layers",)),
    _c("models", "ONNX node of an unknown op", "workloads show unknown_op.onnx", 2,
       ("unknown_op.onnx",)),
    _c("models", "ONNX input with a negative dimension", "workloads show negdim.onnx", 2,
       ("negdim.onnx",)),
    # storage and run directories
    _c("storage", "journal: with no path", f"{S} --storage journal: --out o_jn", 2,
       ("journal",)),
    _c("storage", "blank storage", f"{S} --storage ' ' --out o_b", 2, ("--storage",)),
    _c("storage", "SQLite URL of a directory", f"{S} --storage sqlite:///empty_run --out o_sd",
       2, ("empty_run",)),
    _c("storage", "PostgreSQL URL without a database", "worker --storage "
       "postgresql://u@127.0.0.1:1 --study s", 2, ("database",)),
    _c("report", "summary.json that is a list", "report list_run", 2, ("list_run",)),
    _c("report", "malformed summary.json", "report bad_run", 2, ("bad_run",)),
    _c("export", "--layers that names nothing", "export design.json --format scalesim --out ex "
       "--layers ,,", 2, ("--layers",)),
    _c("export", "--top on an export without GEMMs", "export design.json --format astrasim "
       "--out ex --top 2", 2, ("--top",)),
    _c("export", "design without a workload, to a GEMM format",
       "export design.json --format zigzag --out ex", 2, ("names no 'workload'",)),
    _c("export", "devices that do not fill the design's nodes",
       "export odd_node.json --format astrasim --out ex", 2, ("do not fill nodes of 3",)),
    # search flags
    _c("search", "empty workload", "search --workload '' --area 400", 2, ("workload",)),
    _c("search", "unknown guidance", f"{S} --guidance random", 2, ("--guidance",)),
    _c("search", "unknown objective spelled close", f"{S} --objective Throughput", 2,
       ("Throughput",)),
    _c("search", "power too small for any design", f"{S} --power 1 --out o_p", 3, ("W",)),
    _c("evaluate", "context parallelism on a CNN",
       "evaluate --workload resnet50 --hardware a100 --devices 2 --cp 2", 2,
       ("cp=2", "use cp=1")),
    _c("evaluate", "context parallelism with materialized attention",
       "evaluate --workload gpt2 --hardware a100 --devices 2 --cp 2 --attention unfused", 2,
       ("fused attention",)),
    _c("evaluate", "devices not divisible by tp*cp*pp",
       "evaluate --workload gpt2 --hardware a100 --devices 4 --cp 3", 2, ("tp*cp*pp",)),
    _c("evaluate", "unknown software stack",
       "evaluate --workload gpt2 --hardware a100 --stack deepspeed", 2,
       ("--stack", "megatron-core-2024")),
    _c("evaluate", "attention kernel of a model without attention",
       "evaluate --workload dlrm --hardware a100 --attention fused", 2, ("transformers only",)),
    _c("evaluate", "zero context-parallel ranks",
       "evaluate --workload gpt2 --hardware a100 --cp 0", 2, ("--cp",)),
    _c("search", "unknown attention kernel", f"{S} --attention flash", 2, ("--attention",)),
    _c("evaluate", "--ep that does not divide the experts",
       "evaluate --workload mixtral-8x7b --hardware h100 --devices 64 --pp 4 --ep 3", 2,
       ("--ep 3", "valid --ep: 1, 2, 4, 8")),
    _c("evaluate", "--ep that does not divide the data-parallel group",
       "evaluate --workload mixtral-8x7b --hardware h100 --devices 8 --tp 4 --ep 4", 2,
       ("2 expert ranks", "valid --ep: 1, 2")),
    _c("evaluate", "expert parallelism on a dense model",
       "evaluate --workload gptj --hardware h100 --devices 8 --ep 2", 2,
       ("mixture-of-experts", "use ep=1")),
    _c("evaluate", "whole experts under tp without sequence parallelism",
       "evaluate --workload mixtral-8x7b --hardware h100 --devices 16 --tp 2 --ep 8 --etp 1",
       2, ("sequence parallelism",)),
    _c("evaluate", "zero expert-parallel ranks",
       "evaluate --workload mixtral-8x7b --hardware h100 --ep 0", 2, ("--ep",)),
    _c("evaluate", "an unknown recompute module",
       "evaluate --workload deepseek-v3 --hardware h100 --recompute-modules experts", 2,
       ("'experts' is not a module", "mla_up_proj")),
    _c("evaluate", "recompute modules with full recomputation",
       "evaluate --workload gptj --hardware h100 --recompute full --recompute-modules mlp",
       2, ("needs --recompute selective",)),
    _c("evaluate", "a recompute module the model does not have",
       "evaluate --workload gptj --hardware h100 --recompute-modules moe", 2,
       ("gptj has no such part", "core_attn, layernorm, mlp")),
    _c("workloads", "MoE config without its expert count",
       "workloads show moe_missing.json", 2, ("num_local_experts", "missing")),
    _c("workloads", "MoE config routing to more experts than it has",
       "workloads show moe_topk.json", 2, ("experts_per_token=9", "experts=8")),
    _c("workloads", "MoE config whose expert groups do not divide the experts",
       "workloads show moe_groups.json", 2, ("expert_groups=7", "experts=256")),
    _c("workloads", "MoE config whose chosen groups hold fewer experts than it routes to",
       "workloads show moe_topk_group.json", 2, ("experts_per_token=8 exceed the 4",)),
    *(_c("evaluate", f"a pipeline layout {what}",
         "evaluate --workload gpt2 --hardware h100 --devices 2 --pp 2 --pipeline-layout "
         + layout, 2, expect)
      for what, layout, expect in (
          ("with more stages than the plan", "Ettt|tttt|ttttL", ("3 stages", "--pp 2 = 2")),
          ("with the wrong number of layers", "Etttttt|tttttL",
           ("holds 11 layers", "gpt2 has 12")),
          ("with the loss before the last stage", "EttttttL|tttttt",
           ("loss on stage 0", "stage 1 (the last)")),
          ("with an unknown token", "Ettttttx|ttttttL",
           ("'x' is not a layout token", "E (embedding)")))),
    _c("evaluate", "the DeepEP dispatcher on a dense model",
       "evaluate --workload gptj --hardware h100 --devices 16 --dispatcher deepep", 2,
       ("gptj has no experts", "use alltoall")),
    _c("evaluate", "an unknown dispatcher",
       "evaluate --workload deepseek-v3 --hardware h100 --dispatcher nccl", 2,
       ("--dispatcher", "alltoall", "deepep")),
    _c("search", "a tensor-core datatype a training search does not take",
       f"{S} --dtype int8", 2, ("--dtype", "bf16", "fp8")),
    # classes found by the stop-26 sweep: sizes whose product or expansion is unbounded
    _c("evaluate", "parallel degrees whose product exceeds any cluster",
       "evaluate --workload gptj --hardware a100 --dp 1048576 --cp 1048576", 2,
       ("devices is out of range", "1048576")),
    _c("evaluate", "a context-parallel degree beyond 64 bits",
       "evaluate --workload gptj --hardware a100 --cp 18446744073709551616", 2,
       ("--cp", "out of range")),
    _c("evaluate", "more context-parallel chunks than tokens",
       "evaluate --workload gptj --hardware a100 --cp 4096", 2,
       ("cp=4096", "seq=2048", "use cp <= 1024")),
    _c("evaluate", "a pipeline layout that expands without bound",
       "evaluate --workload gpt2 --hardware h100 --devices 2 --pp 2 "
       "--pipeline-layout 'E(t|)*1000000000L'", 2, ("expands to more than",)),
    _c("evaluate", "a pipeline layout with two embeddings",
       "evaluate --workload gpt2 --hardware h100 --devices 2 --pp 2 "
       "--pipeline-layout 'EEt*6|t*6L'", 2, ("E (embedding) appears 2 times",)),
    _c("evaluate", "a pipeline layout with an MTP layer the model lacks",
       "evaluate --workload gpt2 --hardware h100 --devices 2 --pp 2 "
       "--pipeline-layout 'Et*6|t*6mL'", 2, ("multi-token-prediction", "remove the m")),
    _c("evaluate", "recomputation of a model without transformer layers",
       "evaluate --workload resnet50 --hardware a100 --recompute full", 2,
       ("cnn model", "use none")),
    _c("evaluate", "sequence parallelism without tensor parallelism",
       "evaluate --workload gptj --hardware a100 --sequence-parallel", 2, ("--tp > 1",)),
    _c("evaluate", "expert tensor parallelism on a dense model",
       "evaluate --workload gptj --hardware a100 --etp 1", 2, ("mixture-of-experts",)),
    _c("workloads", "config with a million multi-token-prediction layers",
       "workloads show mtp_huge.json", 2, ("mtp_layers=1000000", "0 to 64")),
    _c("workloads", "config with 2^31 shared experts",
       "workloads show shared_huge.json", 2, ("shared_experts=2147483648",)),
    _c("search", "--out a directory of other files", f"{S} --out userdir", 2,
       ("userdir", "no dse run", "new or empty directory")),
    _c("search", "--out a name too long for the file system", f"{S} --out {'o' * 300}", 2,
       ("File name too long",)),
    _c("search", "a journal storage that is a text file",
       f"{S} --out o_j1 --storage journal:notes.log", 2, ("not an Optuna journal",)),
    _c("search", "a journal storage on a device", f"{S} --out o_j2 --storage journal:/dev/null",
       2, ("not a regular file",)),
    _c("search", "a SQLite storage that is not SQLite", f"{S} --out o_j3 --storage notes.db", 2,
       ("not a SQLite database",)),
    _c("search", "a sequence length for a model without one",
       "search --workload resnet50 --area 400 --seq 128", 2,
       ("--seq 128", "resnet50", "transformers and RNNs")),
    _c("search", "an attention kernel for a model without attention",
       "search --workload resnet50 --area 400 --attention unfused", 2,
       ("--attention unfused", "resnet50")),
    _c("evaluate", "an empty hardware name", "evaluate --workload gptj --hardware ''", 2,
       ("empty hardware name", "a100")),
    _c("hardware", "a YAML number YAML reads as text",
       "hardware show exp_text.yaml", 2, ("without a dot before the exponent",)),
    _c("dashboard", "a host that is no address",
       "dashboard --storage empty_journal.log --host 999.999.1.1 --port 18080", 2,
       ("--host 999.999.1.1",)),
    _c("range", "export top beyond any graph",
       "export design.json --format scalesim --out ex --top 18446744073709551616", 2,
       ("--top", "out of range")),
    _c("hardware", "a YAML file naming a key twice", "hardware show dup_key.yaml", 2,
       ("'tensor_cores' appears twice",)),
    _c("workloads", "a config.json naming a key twice", "workloads show dup_key.json", 2,
       ("'n_layer' appears twice",)),
    _c("range", "an integer flag written with an underscore",
       "evaluate --workload gptj --hardware a100 --tp 2_0", 2,
       ("--tp must be a positive integer", "2_0")),
    _c("search", "a study name of blanks", f"{S} --study '   '", 2,
       ("--study must name the study",)),
    _c("workloads", "a config.json with a 5000-digit number", "workloads show long_int.json",
       2, ("more than 4300 digits",)),
    _c("worker", "a run directory without a study (nothing is created in it)",
       "worker --storage empty_run --study x", 2, ("does not exist",)),
    _c("storage", "a PostgreSQL port beyond 65535",
       f"{S} --storage postgresql://u:{SECRET}@127.0.0.1:99999/db --study s --out o_pg", 2,
       ("port 99999 is not a TCP port",), (SECRET,)),
    _c("search", "one workload file under two spellings",
       "search --workload dup_key_ok/config.json,./dup_key_ok/config.json --area 400", 2,
       ("twice",)),
    _c("export", "--out an empty path", "export design.json --format scalesim --out ''", 2,
       ("--out needs a directory",)),
    _c("export", "--out a directory of other files",
       "export design.json --format scalesim --out userdir", 2,
       ("userdir", "no dse export")),
    _c("export", "a design whose devices disagree with its plan",
       "export devices_mismatch.json --format scalesim --out ex", 2,
       ("plan.devices=7", "= 1")),
    # sweep 3 (stop 27): classes of input that were accepted and ignored or crashed
    _c("export", "a pipeline-parallel plan (its GEMMs are not one device's)",
       "export design_pp2.json --format scalesim --out ex_pp", 2, ("pp=2", "must be")),
    _c("export", "an unknown field in the design's hardware",
       "export design_typo.json --format scalesim --out ex_typo", 2,
       ("unknown field 'tensor_core'", "valid fields")),
    _c("export", "a design name that is not text",
       "export design_name.json --format scalesim --out ex_name", 2,
       ("hardware.name must be a string",)),
    _c("hardware", "a boolean efficiency", "hardware show hw_eff_bool.yaml", 2,
       ("matmul_efficiency=True", "not a boolean")),
    _c("hardware", "a 16-bit efficiency on a bf16 design", "hardware show hw_eff16_bf16.yaml",
       2, ("matmul_efficiency_16bit", "fewer than 16 bits")),
    _c("hardware", "torus_dims that is not a list", "hardware show sys_torus_int.yaml", 2,
       ("torus_dims=4", "list of sizes")),
    _c("hardware", "torus_dims of the wrong rank", "hardware show sys_torus_rank.yaml", 2,
       ("torus_dims=[2, 2, 2, 2]", "3-D torus takes 3")),
    _c("evaluate", "a design computing in fp32",
       "evaluate --workload gpt2 --hardware hw_fp32.yaml", 2, ("dtype='fp32'", "bf16, fp16")),
    _c("evaluate", "a MoE dispatcher without expert parallelism",
       "evaluate --workload mixtral-8x7b --hardware h100 --devices 8 --dispatcher deepep", 2,
       ("dispatcher=deepep", "--ep > 1")),
    _c("workloads", "a Mixtral config with a sliding window", "workloads show hf_mixtral_sw.json",
       2, ("sliding_window",)),
    _c("workloads", "a DeepSeek-V3 config with MoE layers every other layer",
       "workloads show hf_dsv3_freq.json", 2, ("moe_layer_freq",)),
    _c("workloads", "a DeepSeek-V3 config with an unknown top-k method",
       "workloads show hf_dsv3_topk.json", 2, ("topk_method", "noaux_tc")),
    _c("workloads", "a zoo file whose family is a list", "workloads show zoo_family_list.yaml",
       2, ("family=['transformer']", "choose one of")),
    _c("workloads", "a zoo ONNX entry whose path is a number", "workloads show zoo_onnx_int.yaml",
       2, ("'path'=5", "must be a string")),
    _c("workloads", "a ResNet with an empty stage", "workloads show zoo_resnet_zero.yaml", 2,
       ("config.blocks[]=0",)),
    _c("workloads", "a MobileNetV2 row with stride 0", "workloads show zoo_mbv2_s0.yaml", 2,
       ("inverted_residual s=0",)),
    _c("workloads", "a CNN config key misspelt", "workloads show zoo_resnet_typo.yaml", 2,
       ("config.expnsion", "valid: blocks")),
)


def make_files(d: Path) -> None:
    """Write the broken (and the few valid) files the cases name into ``d``."""
    (d / "missing_fields.json").write_text(json.dumps({"model_type": "llama",
                                                       "architectures": ["LlamaForCausalLM"]}))
    (d / "broken_config.json").write_text('{"model_type": "gpt2", "n_layer": 12,')
    mixtral = {"model_type": "mixtral", "num_hidden_layers": 4, "hidden_size": 512,
               "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 1024,
               "max_position_embeddings": 2048, "vocab_size": 1000}
    (d / "moe_missing.json").write_text(json.dumps(mixtral))
    (d / "moe_topk.json").write_text(json.dumps(dict(mixtral, num_local_experts=8,
                                                     num_experts_per_tok=9)))
    dsv3 = json.loads((Path(__file__).resolve().parents[1] / "tests" / "workloads" / "data"
                       / "hf" / "deepseek-v3" / "config.json").read_text())
    (d / "moe_groups.json").write_text(json.dumps(dict(dsv3, n_group=7)))
    (d / "moe_topk_group.json").write_text(json.dumps(dict(dsv3, n_group=64, topk_group=1)))
    (d / "negative_config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": -768,
        "vocab_size": 50257, "n_positions": 1024}))
    onnx_bytes = _small_onnx()
    (d / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    (d / "empty.onnx").write_bytes(b"")
    (d / "text.onnx").write_text("this is not a protobuf\n")
    (d / "malformed.yaml").write_text("tensor_cores: [1, 2\narray_rows: 128\n")
    (d / "malformed.json").write_text('{"tensor_cores": 4,,}')
    (d / "list.yaml").write_text("- tensor_cores\n- 4\n")
    hw = {"name": "x", "tensor_cores": 4, "array_rows": 128, "array_cols": 128,
          "vector_cores": 2, "vector_lanes": 128, "freq_hz": 1.0e9,
          "hbm_bw_bytes_per_s": 1.0e12, "hbm_bytes": 17179869184}
    import yaml

    (d / "negative_cores.yaml").write_text(yaml.safe_dump(dict(hw, tensor_cores=-4)))
    (d / "nan_clock.yaml").write_text(yaml.safe_dump(hw).replace("freq_hz: 1000000000.0",
                                                                 "freq_hz: .nan"))
    typo = dict(hw)
    typo["tensor_core"] = typo.pop("tensor_cores")
    (d / "typo_field.json").write_text(json.dumps(typo))
    (d / "garbage.yaml").write_bytes(bytes(range(256)) * 4)
    (d / "tagged.yaml").write_text("tensor_cores: !!int four\n")
    (d / "a_file.txt").write_text("not a directory\n")
    (d / "empty_run").mkdir(exist_ok=True)
    (d / "design.json").write_text(json.dumps({"hardware": hw}))
    (d / "devices_mismatch.json").write_text(json.dumps({
        "hardware": hw, "workload": "gpt2", "plan": {"tp": 1, "pp": 1, "dp": 1,
                                                     "devices": 7}}))
    (d / "userdir").mkdir(exist_ok=True)
    (d / "userdir" / "notes.txt").write_text("the user's own file\n")
    (d / "notes.log").write_text("a text file, not a journal\n")
    (d / "notes.db").write_text("not a database either\n")
    (d / "empty_journal.log").write_text("")
    (d / "dup_key.yaml").write_text(yaml.safe_dump(hw) + "tensor_cores: 8\n")
    (d / "exp_text.yaml").write_text(yaml.safe_dump(hw).replace(
        "freq_hz: 1000000000.0", "freq_hz: 1e9"))
    (d / "mtp_huge.json").write_text(json.dumps(dict(dsv3, num_nextn_predict_layers=10**6)))
    (d / "shared_huge.json").write_text(json.dumps(dict(dsv3, n_shared_experts=2**31)))
    gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 100,
            "n_positions": 128}
    (d / "huge_embd.json").write_text(json.dumps(dict(gpt2, n_embd=10**12, n_head=10**6)))
    (d / "dup_key.json").write_text(json.dumps(gpt2)[:-1] + ', "n_layer": 3}')
    (d / "dup_key_ok").mkdir(exist_ok=True)
    (d / "dup_key_ok" / "config.json").write_text(json.dumps(gpt2))
    (d / "long_int.json").write_text(json.dumps(gpt2).replace('"n_layer": 2',
                                                              '"n_layer": ' + "7" * 5000))
    (d / "huge_layers.json").write_text(json.dumps(dict(gpt2, n_layer=1e300)))
    (d / "huger_layers.json").write_text(json.dumps(gpt2).replace('"n_layer": 2',
                                                                  '"n_layer": 1' + "0" * 400))
    (d / "nan_dropout.json").write_text(json.dumps(dict(gpt2, attn_pdrop=float("nan"))))
    (d / "big_dropout.json").write_text(json.dumps(dict(gpt2, resid_pdrop=3)))
    (d / "clock_1e300.yaml").write_text(yaml.safe_dump(dict(hw, freq_hz=1e300)))
    (d / "rows_1e9.yaml").write_text(yaml.safe_dump(dict(hw, array_rows=10**9)))
    (d / "stacks_1e9.yaml").write_text(yaml.safe_dump(dict(hw, hbm_stacks=10**9)))
    preset = yaml.safe_load((ROOT / "cost_models" / "data" / "presets" / "a100.yaml")
                            .read_text())
    torus = dict(preset, system=dict(preset["system"], torus_dims=[0, -1, 16]))
    (d / "bad_torus.yaml").write_text(yaml.safe_dump(torus))
    nolink = dict(preset, hardware=dict(preset["hardware"], link_count=0))
    (d / "no_links.yaml").write_text(yaml.safe_dump(nolink))
    for name in ("zero.json", "zero.yaml", "zero.onnx"):
        if not (d / name).is_symlink():
            os.symlink("/dev/zero", d / name)
    for name in ("fifo.json", "fifo.yaml"):
        if not (d / name).exists():
            os.mkfifo(d / name)
    (d / "big.json").write_text('{"x": "' + "a" * (17 * 2**20) + '"}')
    (d / "cycle.onnx").write_bytes(_cycle_onnx())
    for key, val in (("tensor_cores_0", ("tensor_cores", 0)),
                     ("tensor_cores_frac", ("tensor_cores", 4.5)),
                     ("tensor_cores_bool", ("tensor_cores", True)),
                     ("freq_str", ("freq_hz", "fast")), ("freq_inf", ("freq_hz", float("inf"))),
                     ("cols_huge", ("array_cols", 10**9)), ("lanes_neg", ("vector_lanes", -1)),
                     ("sram_huge", ("sram_per_core_bytes", 1e30)),
                     ("gb_neg", ("global_buffer_bytes", -5)),
                     ("hbmbw_0", ("hbm_bw_bytes_per_s", 0)), ("hbm_huge", ("hbm_bytes", 1e40)),
                     ("links_neg", ("link_count", -1)),
                     ("linkbw_huge", ("link_bw_bytes_per_s", 1e20)),
                     ("node_0", ("tech_node_nm", 0)), ("eff_2", ("matmul_efficiency", 2.0)),
                     ("dataflow", ("dataflow", "xy")), ("dtype", ("dtype", "fp3"))):
        (d / f"hw_{key}.yaml").write_text(yaml.safe_dump(dict(hw, **{val[0]: val[1]})))
    (d / "empty.yaml").write_text("")
    # sweep 3 (stop 27)
    for key, extra in (("eff_bool", {"matmul_efficiency": True}),
                       ("eff16_bf16", {"matmul_efficiency_16bit": 0.5}),
                       ("fp32", {"dtype": "fp32"})):
        (d / f"hw_{key}.yaml").write_text(yaml.safe_dump(dict(hw, **extra)))
    for key, dims, topo in (("torus_int", 4, "torus3d"), ("torus_rank", [2, 2, 2, 2], "torus3d")):
        bad_sys = dict(preset, system=dict(preset["system"], inter_node_topology=topo,
                                           torus_dims=dims))
        (d / f"sys_{key}.yaml").write_text(yaml.safe_dump(bad_sys))
    base_design = {"hardware": hw, "plan": {"pp": 1}, "workload": "gpt2"}
    (d / "design_pp2.json").write_text(json.dumps(dict(base_design, plan={"pp": 2})))
    (d / "design_typo.json").write_text(json.dumps(dict(base_design,
                                                        hardware=dict(hw, tensor_core=64))))
    (d / "design_name.json").write_text(json.dumps(dict(base_design,
                                                        hardware=dict(hw, name={"a": 1}))))
    (d / "hf_mixtral_sw.json").write_text(json.dumps(dict(mixtral, num_local_experts=8,
                                                          num_experts_per_tok=2,
                                                          sliding_window=128)))
    (d / "hf_dsv3_freq.json").write_text(json.dumps(dict(dsv3, moe_layer_freq=2)))
    (d / "hf_dsv3_topk.json").write_text(json.dumps(dict(dsv3, topk_method="bogus")))
    (d / "zoo_family_list.yaml").write_text("family: [transformer]\n")
    (d / "zoo_onnx_int.yaml").write_text("family: onnx\npath: 5\n")
    (d / "zoo_resnet_zero.yaml").write_text(
        "family: cnn\narch: resnet\nconfig: {blocks: [0, 0, 0, 0], widths: [64, 128, 256, 512]}\n")
    (d / "zoo_resnet_typo.yaml").write_text(
        "family: cnn\narch: resnet\nconfig: {blocks: [3, 4, 6, 3], widths: [64, 128, 256, 512], "
        "expnsion: 2}\n")
    (d / "zoo_mbv2_s0.yaml").write_text(
        "family: cnn\narch: mobilenetv2\nconfig: {inverted_residual: [[1, 16, 1, 0]]}\n")
    if not (d / "loop.yaml").is_symlink():
        os.symlink("loop.yaml", d / "loop.yaml")
    for key, field, val in (("dpn_0", "devices_per_node", 0),
                            ("bw_0", "intra_node_bw_bytes_per_s", 0),
                            ("lat_10", "inter_node_latency_s", 10.0),
                            ("topo", "intra_node_topology", "mesh9")):
        bad_sys = dict(preset, system=dict(preset["system"], **{field: val}))
        (d / f"sys_{key}.yaml").write_text(yaml.safe_dump(bad_sys))
    for key, extra in (("heads_0", {"n_head": 0}), ("indivisible", {"n_embd": 65}),
                       ("vocab_huge", {"vocab_size": 10**12}), ("type", {"model_type": "gpt9"}),
                       ("layers_str", {"n_layer": "twelve"})):
        (d / f"hf_{key}.json").write_text(json.dumps(dict(gpt2, **extra)))
    (d / "hf_kv.json").write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 3, "intermediate_size": 128,
        "vocab_size": 100, "max_position_embeddings": 128}))
    (d / "zoo_layers_huge.yaml").write_text(yaml.safe_dump({
        "name": "huge", "family": "transformer", "model_type": "gpt2", "layers": 10**12,
        "hidden": 64, "heads": 2, "ffn": 256, "vocab": 100, "max_positions": 128,
        "source": "test", "default_batch": 2}))
    (d / "unknown_op.onnx").write_bytes(_onnx_of("FrobnicateOp"))
    (d / "negdim.onnx").write_bytes(_onnx_of("Relu", dims=(-3, 8)))
    (d / "list_run").mkdir(exist_ok=True)
    (d / "list_run" / "summary.json").write_text("[1, 2, 3]")
    (d / "bad_run").mkdir(exist_ok=True)
    (d / "bad_run" / "summary.json").write_text('{"best": ')
    (d / "opset999.onnx").write_bytes(_small_onnx(opset=999))
    (d / "no_hw.json").write_text(json.dumps({"workload": "gptj"}))
    (d / "odd_node.json").write_text(json.dumps({
        "hardware": hw, "workload": "gpt2", "system": {"devices_per_node": 3},
        "plan": {"dp": 8, "global_batch": 8}}))
    # a storage with one study that was not made for workers
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(storage=f"sqlite:///{d / 'studies.db'}", study_name="other")


def _onnx_of(op: str, dims: tuple[int, ...] = (1, 8)) -> bytes:
    """One node of ``op`` on an input of ``dims``."""
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "one",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))])
    return bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                 .SerializeToString())


def _cycle_onnx() -> bytes:
    """Two nodes feeding each other (Add → Relu → Add)."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
         helper.make_node("Relu", ["a"], ["y"])], "cycle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    return bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
                 .SerializeToString())


def _small_onnx(opset: int = 17) -> bytes:
    """A valid two-layer MLP in ONNX (the truncated case cuts it in half)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.ones((64, 128), np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((128, 10), np.float32), "w2")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])], [w1, w2])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return bytes(model.SerializeToString())


@contextlib.contextmanager
def _captured_fds() -> Iterator[dict[str, str]]:
    """Capture file descriptors 1 and 2 (Python and anything else writing to them);
    ``sys.stdout``/``sys.stderr`` are pointed at them too (under pytest they are
    pytest's capture objects, not the descriptors)."""
    out: dict[str, str] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    files = {fd: tempfile.TemporaryFile(mode="w+b") for fd in (1, 2)}  # noqa: SIM115
    old_streams = sys.stdout, sys.stderr
    try:
        for fd, f in files.items():
            os.dup2(f.fileno(), fd)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        yield out
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = old_streams
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            files[fd].seek(0)
            out["stdout" if fd == 1 else "stderr"] = files[fd].read().decode("utf-8", "replace")
            files[fd].close()


def run_case(case: Case, workdir: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``dse <case.argv>`` run in ``workdir``."""
    from dse.cli import main

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with _captured_fds() as cap:
            try:
                code = main(list(case.argv))
            except SystemExit as e:  # never expected: main returns its code
                code = int(e.code) if isinstance(e.code, int) else 1
    finally:
        os.chdir(cwd)
    return code, cap["stdout"], cap["stderr"]


def problems(case: Case, code: int, out: str, err: str) -> list[str]:
    """What ``case``'s outcome breaks (empty when it follows the rules)."""
    bad = []
    if code != case.code:
        bad.append(f"exit {code}, expected {case.code}")
    if out:
        bad.append(f"stdout not empty: {out[:80]!r}")
    lines = err.splitlines()
    if len(lines) != 1 or not err.endswith("\n"):
        bad.append(f"{len(lines)} lines on stderr, expected exactly one: {err[:300]!r}")
    if "Traceback" in err:
        bad.append("traceback on stderr")
    if "internal error" in err:
        bad.append("an internal error (a non-DSEError exception escaped)")
    for s in case.expect:
        if s not in err:
            bad.append(f"message lacks {s!r}")
    for s in case.forbid:
        if s in err:
            bad.append(f"message contains {s!r}")
    return bad


def run_all() -> list[tuple[Case, int, str, str]]:
    """Every case's (case, exit code, stdout, stderr); the scratch directory's path in
    messages is shown as ``<scratch>``."""
    with tempfile.TemporaryDirectory(prefix="dse-bad-") as tmp:
        d = Path(tmp)
        make_files(d)
        real = str(d.resolve())
        out = []
        for c in CASES:
            code, so, se = run_case(c, d)
            out.append((c, code, so.replace(real, "<scratch>"), se.replace(real, "<scratch>")))
        return out


def markdown(results: list[tuple[Case, int, str, str]]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ").strip()

    lines = [
        "# Bad inputs and the message each gets",
        "",
        ("Generated by `python benchmarks/bad_inputs.py` (checked by "
         "`tests/dse/test_bad_inputs.py`): every case runs through `dse.cli.main` in a "
         "scratch directory holding the broken files it names. Rules: exit 2 for bad input, "
         "3 when no design is feasible, 1 when the storage cannot be reached; exactly one "
         "line on stderr, no traceback, nothing on stdout, never a password. "
         f"`{CLOSED}` is a loopback port nothing listens on."),
        "",
        f"{len(results)} cases.",
        "",
        "| # | input | command line | exit | message (stderr) |",
        "|---|---|---|---|---|",
    ]
    for k, (c, code, _out, err) in enumerate(results, 1):
        cmd = "dse " + " ".join(c.argv)
        flag = "" if not problems(c, code, _out, err) else " ⚠"
        lines.append(f"| {k} | {cell(c.group + ': ' + c.what)} | `{cell(cmd)}` | "
                     f"{code}{flag} | {cell(err)} |")
    broken = [(c, code, o, e) for c, code, o, e in results if problems(c, code, o, e)]
    if broken:
        lines += ["", "## Cases that break the rules (⚠)", ""]
        for c, code, o, e in broken:
            lines.append(f"- `dse {' '.join(c.argv)}`: {'; '.join(problems(c, code, o, e))}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "bad-inputs.md"))
    p.add_argument("--check", action="store_true", help="only check; exit 1 on a broken case")
    a = p.parse_args(argv)
    results = run_all()
    broken = [(c, code, o, e) for c, code, o, e in results if problems(c, code, o, e)]
    for c, code, o, e in broken:
        print(f"BROKEN dse {' '.join(c.argv)}: {'; '.join(problems(c, code, o, e))}",
              file=sys.stderr)
    if not a.check:
        Path(a.out).write_text(markdown(results), encoding="utf-8")
        print(f"wrote {a.out}: {len(results)} cases, {len(broken)} breaking the rules")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
