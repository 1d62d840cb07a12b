"""Search problems the benchmarks share, and their exhaustive optima (cached).

Each problem is a :class:`search.objective.TrainingProblem` (workloads, area budget,
devices, design space). :func:`exhaustive_optimum` scores every design within the budget
in chunks, keeping only the best (bounded memory), and caches the result under
``results/bench/exhaustive/`` keyed by the problem, the space's fingerprint and a hash of
the model's source files, so a rerun after a model change recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / "results" / "bench" / "exhaustive"


@dataclass(frozen=True)
class ProblemSpec:
    key: str
    label: str
    workloads: tuple[str, ...]
    area_mm2: float
    devices: int = 1
    space: str = "default"
    """``default`` or ``reduced`` (:func:`reduced_space`)."""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ABLATION_PROBLEMS: tuple[ProblemSpec, ...] = (
    ProblemSpec("dlrm", "DLRM (Criteo Kaggle), 150 mm²", ("dlrm-kaggle",), 150.0),
    ProblemSpec("cnn", "ResNet-50, 200 mm²", ("resnet50",), 200.0),
    ProblemSpec("bert", "BERT-large, 200 mm²", ("bert-large",), 200.0),
    ProblemSpec("gptj", "GPT-J, 400 mm²", ("gptj",), 400.0),
    ProblemSpec("multi", "BERT-base + GPT-2 (geomean), 300 mm²", ("bert-base", "gpt2"), 300.0),
    ProblemSpec("pp", "GPT-3 175B on 64 devices (pp > 1), 800 mm², reduced space",
                ("gpt3-175b",), 800.0, devices=64, space="reduced"),
)


def reduced_space(devices: int) -> Any:
    """A grid small enough to enumerate with every parallel plan of a 64-device job
    (12,960 designs): the default template and values around a large training chip."""
    from search.space import HBM_GENERATIONS, DesignSpace, Param, default_template

    mib = 2**20
    ps = [Param(name="tensor_cores", values=(16, 24, 32, 48, 64)),
          Param(name="array_rows", values=(64, 128, 256)),
          Param(name="array_cols", values=(64, 128, 256)),
          Param(name="dataflow", values=("ws", "os")),
          Param(name="vector_cores", values=(4, 8)),
          Param(name="vector_lanes", values=(512, 1024)),
          Param(name="sram_per_core_bytes", values=(1.0 * mib, 4.0 * mib)),
          Param(name="global_buffer_bytes", values=(32.0 * mib, 128.0 * mib)),
          Param(name="hbm_stacks", values=(4, 6, 8))]
    if devices > 1:
        ps.append(Param(name="link_count", values=(2, 4, 6)))
    return DesignSpace(template=default_template(), params=tuple(ps),
                       hbm=HBM_GENERATIONS["hbm2e"], name="reduced")


def build(spec: ProblemSpec) -> Any:
    from search.runner import SearchConfig, build_problem

    cfg = SearchConfig(workloads=spec.workloads, area_mm2=spec.area_mm2, devices=spec.devices)
    space = reduced_space(spec.devices) if spec.space == "reduced" else None
    return build_problem(cfg, space)


def model_hash() -> str:
    """sha256 of the sources and data that determine a design's score."""
    h = hashlib.sha256()
    for pat in ("cost_models/**/*.py", "cost_models/data/**/*.yaml", "workloads/**/*.py",
                "workloads/zoo/*.yaml", "search/trainstep.py", "search/objective.py",
                "search/space.py", "search/evaluator.py", "dse/types.py"):
        for f in sorted(ROOT.glob(pat)):
            h.update(f.relative_to(ROOT).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def feasible_designs(pb: Any) -> np.ndarray:
    from search.evaluator import within_budget

    keep = []
    for c in pb.space.enumerate(65536):
        a, p = pb.area_tdp(c)
        keep.append(c[within_budget(pb, a, p)])
    return np.concatenate(keep) if keep else np.zeros((0, len(pb.space.params)), np.int64)


def exhaustive_optimum(spec: ProblemSpec, pb: Any | None = None, *, chunk: int = 4096,
                       verbose: bool = True) -> dict[str, Any]:
    """The best objective over every design within budget (cached, see module doc)."""
    pb = pb if pb is not None else build(spec)
    key = hashlib.sha256(json.dumps([spec.key, list(spec.workloads), spec.area_mm2,
                                     spec.devices, spec.space, pb.space.fingerprint(),
                                     model_hash()]).encode()).hexdigest()[:16]
    path = CACHE / f"{spec.key}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    allf = feasible_designs(pb)
    best_v, best_x, n_ok = -np.inf, None, 0
    for lo in range(0, len(allf), chunk):
        x = allf[lo:lo + chunk]
        sc = pb.score(x)
        v = np.where(sc.feasible, sc.value, -np.inf)
        n_ok += int(sc.feasible.sum())
        j = int(np.argmax(v))
        if v[j] > best_v:
            best_v, best_x = float(v[j]), x[j]
        if verbose and (lo // chunk) % 10 == 0:
            print(f"   exhaustive {spec.key}: {lo + len(x)}/{len(allf)} designs", flush=True)
    out = {"problem": spec.key, "optimum": best_v,
           "design": pb.space.label(best_x) if best_x is not None else None,
           "within_budget": len(allf), "feasible": n_ok, "space_size": pb.space.size,
           "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
           "model_hash": model_hash(), "space": pb.space.fingerprint()}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out
