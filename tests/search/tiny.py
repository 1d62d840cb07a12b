"""A tiny transformer workload and a small design space for fast search tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from cost_models.technology import load_technology
from dse.units import MIB
from search.objective import TrainingProblem, WorkloadTarget
from search.space import DesignSpace, Param, default_template
from workloads.spec import TransformerSpec

TINY = TransformerSpec(name="tiny", model_type="gpt2", layers=2, hidden=256, heads=4,
                       ffn=1024, vocab=1000, max_positions=128, source="test",
                       default_batch=8, default_seq=128)

TINY_YAML = {"name": "tiny", "family": "transformer", "model_type": "gpt2", "layers": 2,
             "hidden": 256, "heads": 4, "ffn": 1024, "vocab": 1000, "max_positions": 128,
             "source": "test", "default_batch": 8, "default_seq": 128}

SMALL_SPACE = DesignSpace(template=default_template(), name="tiny-space", params=(
    Param(name="tensor_cores", values=(1, 2, 4, 8, 16)),
    Param(name="array_rows", values=(16, 32, 64, 128)),
    Param(name="array_cols", values=(16, 32, 64, 128)),
    Param(name="dataflow", values=("ws", "os")),
    Param(name="vector_cores", values=(1, 2, 4)),
    Param(name="sram_per_core_bytes", values=(0.25 * MIB, 1 * MIB, 4 * MIB)),
    Param(name="hbm_stacks", values=(1, 2, 4)),
))


def tiny_problem(area_mm2: float = 150.0, **kw) -> TrainingProblem:
    return TrainingProblem(SMALL_SPACE, [WorkloadTarget(name="tiny", spec=TINY)],
                           load_technology(7), area_mm2=area_mm2, **kw)


def tiny_yaml(tmp: Path) -> str:
    p = tmp / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_YAML))
    return str(p)
