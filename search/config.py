"""What a search is asked to do: :class:`SearchConfig` (everything ``dse search`` takes,
validated), the names every searcher module shares, and the default study name.

This module is at the bottom of ``search``'s imports (it imports nothing from ``search``):
the searchers, the runner and the distributed workers all build on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.errors import ConfigError

__all__ = [
    "DEFAULT_BUDGETS",
    "GUIDANCE",
    "OBJECTIVES",
    "SEARCHER_NAMES",
    "SearchConfig",
    "default_study_name",
]

OBJECTIVES: tuple[str, ...] = ("throughput", "perf_per_tdp")
"""Objectives: geometric-mean samples/s over workloads, or that per TDP watt."""
SEARCHER_NAMES: tuple[str, ...] = ("exhaustive", "optuna", "random", "wham")
"""Searchers of ``dse search --searcher`` (:data:`search.registry.SEARCHERS`)."""
GUIDANCE: tuple[str, ...] = ("critical-path", "none", "inverted")
"""How the wham heuristic picks its moves (``dse search --guidance``): from the critical
path of the design's in-loop schedule (the method), from nothing (every step scans the
full neighbourhood), or from the critical path inverted (grow what has slack, shrink what
is critical) — the last two for ablation."""

DEFAULT_BUDGETS: dict[str, int | None] = {"wham": None, "optuna": 500, "random": 500,
                                          "exhaustive": None}
"""Designs evaluated when ``--budget`` is not given (None: until the searcher is done —
the heuristic converges, exhaustive enumerates the feasible grid)."""

COST_MODEL_VERSION = 3
"""Version of the cost model a study's values come from, stored in its settings: a study
scored by another version is not resumed (1: attention materialized in HBM; 2: fused
attention by default, uneven pipeline stages, sequence-parallel padding; 3: a MoE layer's
routing weights applied in the experts' activation, an fp8 GEMM's input kept in fp8)."""
ATTENTION = ("fused", "unfused")
SEARCH_DTYPES = ("bf16", "fp16", "fp8")
"""Tensor-core datatypes a search's designs may compute in (``--dtype``): fp8 designs run
the layers' GEMMs in fp8 and attention, output head and router on their 16-bit form
(:func:`cost_models.opcost.high_precision`), with bf16 weights and fp32 optimizer states."""


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Everything ``dse search`` takes (brief §4)."""

    workloads: tuple[str, ...]
    area_mm2: float
    power_w: float | None = None
    objective: str = "throughput"
    devices: int = 1
    searcher: str = "wham"
    budget: int | None = None
    top_k: int = 5
    seed: int = 0
    storage: str | None = None
    """Optuna storage; None: ``sqlite:///OUT/study.db`` when ``out_dir`` is set, else no
    persistence."""
    study: str | None = None
    out_dir: str | None = None
    batch: int | None = None
    seq: int | None = None
    multi_objective: bool = False
    guidance: str = "critical-path"
    """How the wham heuristic picks its moves (:data:`GUIDANCE`)."""
    heterogeneous: bool = False
    """Also search a chip per pipeline stage (:mod:`search.hetero`; wham, one workload)."""
    attention: str | None = None
    """Attention kernel of transformer workloads (:data:`ATTENTION`); None: each
    workload's own (fused for the zoo)."""
    dtype: str = "bf16"
    """Datatype of the designs' tensor cores (:data:`SEARCH_DTYPES`): the template's."""
    ilp_time_limit_s: float = 0.5
    """Time limit of each ILP refinement (per phase of each top-k design)."""
    ilp_total_s: float = 0.0
    """Wall-time cap of all ILP refinements of a run (0: none — the list scheduler's gap
    to the ILP is measured by ``benchmarks/bench_schedule.py``, not in every search);
    designs after it are not refined (their ``ilp_refinement`` says so)."""

    def __post_init__(self) -> None:
        o = "SearchConfig"
        if not self.workloads:
            raise ConfigError(f"{o}.workloads is empty; give --workload NAME[,NAME...]")
        object.__setattr__(self, "workloads", tuple(str(w) for w in self.workloads))
        for f in ("area_mm2",):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{o}.{f}={v!r} must be a positive number")
        if self.power_w is not None and not (math.isfinite(self.power_w) and self.power_w > 0):
            raise ConfigError(f"{o}.power_w={self.power_w!r} must be a positive number")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{o}.objective={self.objective!r}; valid: {', '.join(OBJECTIVES)}")
        if self.searcher not in SEARCHER_NAMES:
            raise ConfigError(f"unknown searcher {self.searcher!r}; valid: "
                              f"{', '.join(sorted(SEARCHER_NAMES))}")
        for f in ("devices", "top_k"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{o}.{f}={v!r} must be a positive integer")
        for f in ("budget", "batch", "seq"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{o}.{f}={v!r} must be a positive integer")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"{o}.seed={self.seed!r} must be an integer >= 0")
        if self.attention is not None and self.attention not in ATTENTION:
            raise ConfigError(f"{o}.attention={self.attention!r}; valid: {', '.join(ATTENTION)}")
        if self.dtype not in SEARCH_DTYPES:
            raise ConfigError(f"{o}.dtype={self.dtype!r}; valid: {', '.join(SEARCH_DTYPES)}")
        if self.guidance not in GUIDANCE:
            raise ConfigError(f"{o}.guidance={self.guidance!r}; valid: {', '.join(GUIDANCE)}")
        if self.heterogeneous and (self.searcher != "wham" or len(self.workloads) != 1):
            raise ConfigError("--heterogeneous (a chip per pipeline stage) needs --searcher "
                              "wham and one workload")

    def settings(self) -> dict[str, Any]:
        """JSON-able settings (study user attribute, summary.json)."""
        return {"workloads": list(self.workloads), "area_mm2": self.area_mm2,
                "power_w": self.power_w, "objective": self.objective,
                "devices": self.devices, "searcher": self.searcher, "seed": self.seed,
                "batch": self.batch, "seq": self.seq, "multi_objective": self.multi_objective,
                "budget": self.budget, "guidance": self.guidance,
                "heterogeneous": self.heterogeneous, "attention": self.attention,
                "dtype": self.dtype, "model": COST_MODEL_VERSION}


def default_study_name(cfg: SearchConfig) -> str:
    """A study name that identifies the search (so a rerun resumes it)."""
    parts = ["dse", "+".join(Path(w).stem if ("/" in w or "." in w) else w
                             for w in cfg.workloads),
             f"a{cfg.area_mm2:g}"]
    if cfg.power_w is not None:
        parts.append(f"p{cfg.power_w:g}")
    parts += [cfg.objective, cfg.searcher, f"d{cfg.devices}"]
    if cfg.batch:
        parts.append(f"b{cfg.batch}")
    if cfg.seq:
        parts.append(f"s{cfg.seq}")
    if cfg.attention:
        parts.append(cfg.attention)
    if cfg.dtype != "bf16":
        parts.append(cfg.dtype)
    if cfg.multi_objective:
        parts.append("mo")
    if cfg.guidance != "critical-path":
        parts.append(f"g{cfg.guidance}")
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "-".join(parts))


