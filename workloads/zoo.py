"""The public workload API (docs/architecture.md): names and paths → specs → graphs.

``WORKLOAD`` strings are a zoo name (a file ``workloads/zoo/<name>.yaml``), a path to an
HF-style ``config.json`` or a path to an ``.onnx`` file.

>>> "gptj" in zoo_names()
True
>>> g = load("gpt2", batch=1, seq=128)
>>> g.meta["family"], g.meta["seq_len"], g.meta["params"]
('transformer', 128, 124439808)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dse.config import load_mapping
from dse.errors import WorkloadError
from dse.registry import Registry
from dse.types import Graph
from workloads.spec import (
    CNNSpec,
    DLRMSpec,
    ModelSpec,
    OnnxSpec,
    RNNSpec,
    TransformerSpec,
    spec_from_mapping,
)

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


@lru_cache(maxsize=1)
def _registry() -> Registry[Path]:
    reg: Registry[Path] = Registry("workload", WorkloadError)
    for p in sorted(ZOO_DIR.glob("*.yaml")):
        reg.register(p.stem, p)
    return reg


def zoo_names() -> list[str]:
    """Names of the built-in workloads, sorted."""
    return _registry().names()


@lru_cache(maxsize=256)
def _zoo_spec(name: str) -> ModelSpec:
    path = _registry().get(name)
    data = load_mapping(path, WorkloadError)
    if data.get("name", name) != name:
        raise WorkloadError(f"{path}: name={data.get('name')!r} must match the file name "
                            f"{name!r}")
    data.setdefault("name", name)
    return spec_from_mapping(data, str(path))


def model_spec(spec: str) -> ModelSpec:
    """The :class:`~workloads.spec.ModelSpec` of a zoo name, ``config.json`` or ``.onnx`` path.

    Unknown names raise :class:`WorkloadError` listing the valid ones."""
    if not isinstance(spec, str) or not spec:
        raise WorkloadError(f"workload {spec!r} must be a zoo name or a file path")
    low = spec.lower()
    if low.endswith(".onnx"):
        from workloads.onnx_import import onnx_spec

        return onnx_spec(spec)
    if low.endswith(".json"):
        from workloads.hf import spec_from_hf_config

        return spec_from_hf_config(spec)
    if low.endswith((".yaml", ".yml")):
        p = Path(spec)
        return spec_from_mapping({"name": p.stem, **load_mapping(p, WorkloadError)}, str(p))
    if spec in _registry():
        return _zoo_spec(spec)
    if Path(spec).exists():
        raise WorkloadError(f"{spec}: unsupported workload file; give a zoo name, an HF-style "
                            "config.json, a zoo-style .yaml or an .onnx file")
    _registry().get(spec)  # raises with the list of valid names
    raise AssertionError("unreachable")  # pragma: no cover


META_KEYS = ("family", "params", "seq_len", "batch", "layers", "hidden", "heads", "kv_heads",
             "ffn", "vocab", "fwd_flop_per_sample", "train_flop_per_sample",
             "stash_bytes_per_layer")
"""Graph.meta keys every graph has (docs/architecture.md); ``None`` where a key does not
apply to the family (e.g. ``heads`` of a CNN)."""


def build(spec: ModelSpec, *, batch: int | None = None, seq: int | None = None,
          optimizer: str = "adam", tp: int = 1, sequence_parallel: bool = False,
          layers: tuple[int, int] | None = None, first_stage: bool = True,
          last_stage: bool = True, cp: int = 1, ep: int = 1, etp: int | None = None,
          shards: int = 1, devices_per_node: int = 8) -> Graph:
    """The training-step graph of ``spec`` for ``batch`` samples of ``seq`` tokens.

    ``tp``/``sequence_parallel``/``layers``/``first_stage``/``last_stage``/``cp`` select
    one tensor-parallel shard of one pipeline stage (of one context-parallel rank);
    ``ep`` the expert-parallel rank of a mixture-of-experts model (its ``experts/ep``
    experts and the all-to-all dispatch), ``etp`` its expert tensor parallelism (None or 0:
    ``tp``; 1: experts whole); ``shards`` the devices a DLRM's embedding tables are
    sharded over (one device's graph, :mod:`workloads.dlrm`) in nodes of
    ``devices_per_node``. Transformers only (shards:
    DLRM only); other families accept the
    defaults and raise :class:`WorkloadError` otherwise.
    """
    if not isinstance(spec, ModelSpec):
        raise WorkloadError(f"build() needs a ModelSpec, got {type(spec).__name__}; use "
                            "workloads.model_spec(name) first")
    b = spec.default_batch if batch is None else batch
    if not isinstance(b, int) or isinstance(b, bool) or b < 1:
        raise WorkloadError(f"{spec.name}: batch={b!r} must be an integer >= 1")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
        raise WorkloadError(f"{spec.name}: seq={seq!r} must be an integer >= 1")
    graph = _build(spec, b, seq, optimizer, tp, sequence_parallel, layers, first_stage,
                   last_stage, cp, ep, etp, shards, devices_per_node)
    missing = {k: None for k in META_KEYS if k not in graph.meta}
    return graph.with_ops(graph.ops, **missing) if missing else graph


def _build(spec: ModelSpec, b: int, seq: int | None, optimizer: str, tp: int,
           sequence_parallel: bool, layers: tuple[int, int] | None, first_stage: bool,
           last_stage: bool, cp: int = 1, ep: int = 1, etp: int | None = None,
           shards: int = 1, devices_per_node: int = 8) -> Graph:
    if shards != 1 and not isinstance(spec, DLRMSpec):
        raise WorkloadError(f"{spec.name}: embedding sharding (shards={shards}) applies to "
                            f"DLRM models, not {spec.family}")
    if isinstance(spec, TransformerSpec):
        from workloads.transformer import build_transformer

        return build_transformer(spec, batch=b, seq=seq or int(spec.default_seq or 1),
                                 optimizer=optimizer, tp=tp,
                                 sequence_parallel=sequence_parallel, layers=layers,
                                 first_stage=first_stage, last_stage=last_stage, cp=cp,
                                 ep=ep, etp=etp)
    if ep != 1:
        raise WorkloadError(f"{spec.name}: expert parallelism (ep={ep}) needs a "
                            f"mixture-of-experts transformer, not {spec.family}")
    if cp != 1:
        raise WorkloadError(f"{spec.name}: context parallelism (cp={cp}) splits a sequence; "
                            f"it is supported for transformers only, not {spec.family}")
    if tp != 1 or sequence_parallel or layers is not None or not first_stage or not last_stage:
        raise WorkloadError(f"{spec.name}: tensor parallelism and pipeline stages "
                            f"(tp={tp}, layers={layers}) are supported for transformer "
                            f"families only, not {spec.family}")
    if isinstance(spec, RNNSpec):
        from workloads.rnn import build_rnn

        return build_rnn(spec, batch=b, seq=seq or int(spec.default_seq or 1),
                         optimizer=optimizer)
    if seq is not None:
        raise WorkloadError(f"{spec.name}: --seq does not apply to the {spec.family} family "
                            "(it has no sequence length)")
    if isinstance(spec, CNNSpec):
        from workloads.cnn import build_cnn

        return build_cnn(spec, batch=b, optimizer=optimizer)
    if isinstance(spec, DLRMSpec):
        from workloads.dlrm import build_dlrm

        return build_dlrm(spec, batch=b, optimizer=optimizer, shards=shards,
                          node=devices_per_node)
    if isinstance(spec, OnnxSpec):
        from workloads.onnx_import import build_onnx

        return build_onnx(spec, batch=b, optimizer=optimizer)
    raise WorkloadError(f"{spec.name}: no graph builder for family {spec.family!r}")


def load(spec: str, *, batch: int | None = None, seq: int | None = None,
         optimizer: str = "adam") -> Graph:
    """``build(model_spec(spec), batch=batch, seq=seq, optimizer=optimizer)``."""
    return build(model_spec(spec), batch=batch, seq=seq, optimizer=optimizer)
