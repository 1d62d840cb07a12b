"""A small synthetic problem for searcher tests (no cost model): closed-form area, TDP
and throughput over a tiny design space."""

from __future__ import annotations

import numpy as np

from search.evaluator import Scores, objective_value, within_budget
from search.space import TEMPLATE_TPUV4_LIKE, DesignSpace, Param

SPACE = DesignSpace(template=TEMPLATE_TPUV4_LIKE, name="synthetic", params=(
    Param(name="tensor_cores", values=(1, 2, 4, 8, 16)),
    Param(name="array_rows", values=(32, 64, 128)),
    Param(name="array_cols", values=(32, 64, 128)),
    Param(name="dataflow", values=("ws", "os")),
    Param(name="vector_cores", values=(1, 2, 4, 8)),
    Param(name="hbm_stacks", values=(1, 2, 4)),
))


class SyntheticProblem:
    """Throughput = min(MAC rate, vector rate × 40, HBM-bound rate): a roofline with a
    single balanced optimum per area budget; area is linear in the resources."""

    def __init__(self, area_mm2: float = 60.0, power_w: float | None = None,
                 objective: str = "throughput", workloads: tuple[str, ...] = ("toy",),
                 memory_bytes: float = 10e9) -> None:
        self.space = SPACE
        self.workload_names = workloads
        self.area_budget_mm2 = area_mm2
        self.power_budget_w = power_w
        self.objective = objective
        self.memory_bytes = memory_bytes
        self.calls = 0

    def area_tdp(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = self.space.fields(idx)
        macs = f["tensor_cores"] * f["array_rows"] * f["array_cols"]
        area = macs * 1.5e-3 + f["vector_cores"] * 2.0 + f["hbm_stacks"] * 8.0
        tdp = area * 0.8 + 10.0
        return area, tdp

    def score(self, idx: np.ndarray) -> Scores:
        self.calls += 1
        f = self.space.fields(idx)
        area, tdp = self.area_tdp(idx)
        macs = f["tensor_cores"] * f["array_rows"] * f["array_cols"]
        eff = np.where(f["dataflow"] == "ws", 1.0, 0.9)
        rate = np.minimum.reduce([macs * eff, f["vector_cores"] * 4000.0,
                                  f["hbm_stacks"] * 9000.0])
        w = len(self.workload_names)
        samples = np.stack([rate / (1.0 + j) for j in range(w)])
        mem = np.full((w, len(idx)), self.memory_bytes)
        hbm = f["hbm_bytes"].astype(float)
        feas = within_budget(self, area, tdp) & np.all(mem <= hbm[None, :], axis=0)
        return Scores(area_mm2=area, tdp_w=tdp, samples_per_s=samples,
                      step_time_s=1.0 / samples, memory_bytes=mem, hbm_bytes=hbm,
                      value=objective_value(self.objective, samples, tdp), feasible=feas)

    def optimum(self) -> float:
        idx = self.space.all_indices()
        s = self.score(idx)
        return float(np.max(np.where(s.feasible, s.value, -np.inf)))
