"""Software-stack profiles (``cost_models/data/stacks/*.yaml``): how a training framework
runs the same plan — its attention kernel and which communication overlaps computation.

Each profile is data with its sources (framework code and documentation, cited in the
file): ``attention`` (``fused``: FlashAttention-style, ``unfused``: scores in HBM),
``tp_overlap`` (the backward tensor-parallel collective beside the weight-gradient GEMM,
or blocking), ``dp_overlap`` (the gradient reduction during the backward, or after
it) and ``grad_accumulation`` (weight gradients summed over micro-batches inside the
weight-gradient GEMM, or by a separate add per parameter and micro-batch) and
``bias_grad`` (bias gradients in the GEMM's epilogue, or a separate reduction) and
``cross_entropy`` (the loss in one pass over the logits, or Megatron's fp32 passes). ``dse
evaluate --stack NAME`` applies one; the default is :data:`DEFAULT_STACK`.
GEMM efficiency stays a property of the hardware preset (its measured matmul rate:
sustained, MSMF, where published, else the burst mean, MAMF): no per-stack kernel
efficiency is cited yet.

>>> s = load_stack("megatron-2021")
>>> (s.attention, s.tp_overlap, s.dp_overlap)
('unfused', False, False)
>>> DEFAULT_STACK in stack_names()
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dse.errors import ConfigError

__all__ = ["DEFAULT_STACK", "Stack", "load_stack", "stack_names"]

_DIR = Path(__file__).resolve().parent / "data" / "stacks"
DEFAULT_STACK = "megatron-core-2024"
"""The stack of current training (fused attention, overlapped communication)."""


@dataclass(frozen=True, kw_only=True)
class Stack:
    """One software-stack profile (module docstring)."""

    name: str
    description: str
    attention: str
    tp_overlap: bool
    dp_overlap: bool
    grad_accumulation: str = "fused"
    """How weight gradients accumulate over micro-batches
    (:data:`workloads.spec.GRAD_ACCUMULATION`: ``fused`` into the weight-gradient GEMM, or
    a ``separate`` add per parameter and micro-batch)."""
    bias_grad: str = "fused"
    """Where linear layers' bias gradients are summed (:data:`workloads.spec.BIAS_GRAD`: in
    the weight-gradient GEMM's epilogue, or a ``separate`` reduction)."""
    cross_entropy: str = "fused"
    """How the language-model loss runs over the logits
    (:data:`workloads.spec.CROSS_ENTROPY`: ``fused``, Megatron-LM's ``fp32`` passes or
    Megatron-Core's ``fp32_fused`` kernels)."""
    ep_overlap: bool = False
    """The MoE all-to-all of one micro-batch runs under another's computation
    (batch-level overlap; :func:`cost_models.training.segment_costs` ``overlap_groups``)."""
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def stack_names() -> list[str]:
    """Names of the profiles shipped in ``cost_models/data/stacks``."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def load_stack(name: str) -> Stack:
    """The profile ``name``; :class:`ConfigError` names the valid ones."""
    import yaml

    names = stack_names()
    if name not in names:
        raise ConfigError(f"unknown stack {name!r}; valid: {', '.join(names)}")
    data: Any = yaml.safe_load((_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"stack {name}: top level must be a mapping")
    missing = [k for k in ("name", "description", "attention", "tp_overlap", "dp_overlap",
                           "sources") if k not in data]
    if missing:
        raise ConfigError(f"stack {name}: missing {missing[0]!r}")
    if data["attention"] not in ("fused", "unfused"):
        raise ConfigError(f"stack {name}: attention={data['attention']!r}; valid: fused, "
                          "unfused")
    data.setdefault("ep_overlap", False)
    for k in ("grad_accumulation", "bias_grad"):
        data.setdefault(k, "fused")
        if data[k] not in ("fused", "separate"):
            raise ConfigError(f"stack {name}: {k}={data[k]!r}; valid: fused, separate")
    data.setdefault("cross_entropy", "fused")
    if data["cross_entropy"] not in ("fused", "fp32", "fp32_fused"):
        raise ConfigError(f"stack {name}: cross_entropy={data['cross_entropy']!r}; valid: "
                          "fused, fp32, fp32_fused")
    for k in ("tp_overlap", "dp_overlap", "ep_overlap"):
        if not isinstance(data[k], bool):
            raise ConfigError(f"stack {name}: {k}={data[k]!r} must be true or false")
    for k in ("attention", "tp_overlap", "dp_overlap", "ep_overlap", "grad_accumulation",
              "bias_grad", "cross_entropy"):
        if not str(data["sources"].get(k, "")).strip():
            raise ConfigError(f"stack {name}: no source for {k!r}")
    return Stack(name=str(data["name"]), description=str(data["description"]),
                 attention=data["attention"], tp_overlap=data["tp_overlap"],
                 dp_overlap=data["dp_overlap"], ep_overlap=data["ep_overlap"],
                 grad_accumulation=data["grad_accumulation"], bias_grad=data["bias_grad"],
                 cross_entropy=data["cross_entropy"],
                 sources={str(k): str(v) for k, v in data["sources"].items()})
