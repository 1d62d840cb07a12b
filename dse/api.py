"""Public Python API of dse: the library behind the CLI, taking objects, not flags.

Names (zoo workloads, presets) are resolved here, at the edge; the cost models and the
search take objects. Every function raises a :class:`dse.errors.DSEError` subclass for
bad input.

>>> from dse import api
>>> g = api.load_workload("gpt2", batch=1, seq=128)
>>> g.meta["family"], g.meta["seq_len"]
('transformer', 128)
>>> hw, system = api.load_hardware("tpuv4")
>>> round(hw.peak_flop_per_s / 1e12)
275
>>> ev = api.evaluate(api.model_spec("gpt2"), hw, system, seq=128,
...                   plan=ParallelPlan(global_batch=8, micro_batch=8))
>>> ev.step_time_s > 0 and ev.fits_memory
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dse.errors import ConfigError
from dse.types import Evaluation, Graph, HardwareConfig, ParallelPlan, SystemConfig

__all__ = [
    "Evaluation",
    "HardwareConfig",
    "ParallelPlan",
    "SystemConfig",
    "evaluate",
    "hardware_names",
    "load_hardware",
    "load_workload",
    "model_spec",
    "search",
    "workload_names",
]


def workload_names() -> list[str]:
    """Names of the built-in model zoo."""
    import workloads

    return list(workloads.zoo_names())


def model_spec(workload: str) -> Any:
    """Hyperparameters of a workload: zoo name, HF-style ``config.json`` or ``.onnx`` path."""
    import workloads

    return workloads.model_spec(workload)


def load_workload(workload: str, *, batch: int | None = None, seq: int | None = None,
                  optimizer: str = "adam") -> Graph:
    """The training-step operator DAG of ``workload`` for ``batch`` samples of ``seq``
    tokens (defaults: the workload's own)."""
    import workloads

    return workloads.load(workload, batch=batch, seq=seq, optimizer=optimizer)


def hardware_names() -> list[str]:
    """Names of the hardware presets."""
    from cost_models.presets import preset_names

    return list(preset_names())


def load_hardware(hardware: str) -> tuple[HardwareConfig, SystemConfig]:
    """A preset name or a YAML/JSON file with the preset fields → (chip, system)."""
    from cost_models.presets import load_preset

    preset = load_preset(hardware)
    return preset.hardware, preset.system


def evaluate(spec: Any, hw: HardwareConfig, system: SystemConfig | None = None, *,
             plan: ParallelPlan | None = None, seq: int | None = None) -> Evaluation:
    """Evaluate one design on one workload and parallel plan (default: one device, the
    workload's default batch as one micro-batch). ``spec`` comes from :func:`model_spec`."""
    from cost_models.technology import load_technology
    from search.trainstep import evaluate_training
    from workloads.parallel import validate_plan

    from dse.limits import check_int

    if not hasattr(spec, "family"):
        raise ConfigError(f"spec must be a model spec (dse.api.model_spec(name)), got "
                          f"{type(spec).__name__}")
    if not isinstance(hw, HardwareConfig):
        raise ConfigError(f"hw must be a HardwareConfig (dse.api.load_hardware(name)[0]), "
                          f"got {type(hw).__name__}")
    if system is not None and not isinstance(system, SystemConfig):
        raise ConfigError(f"system must be a SystemConfig or None, got "
                          f"{type(system).__name__}")
    if plan is not None and not isinstance(plan, ParallelPlan):
        raise ConfigError(f"plan must be a ParallelPlan or None, got {type(plan).__name__}")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ConfigError(f"seq={seq!r} must be an integer")
        seq = check_int("--seq", seq)
    if plan is None:
        batch = int(getattr(spec, "default_batch", 1) or 1)
        plan = ParallelPlan(global_batch=batch, micro_batch=batch)
    validate_plan(spec, plan, plan.devices, seq=seq)
    return evaluate_training(spec, hw, system or SystemConfig(), plan,
                             load_technology(hw.tech_node_nm), seq=seq)


def search(workloads: str | tuple[str, ...], area_mm2: float, **options: Any) -> dict[str, Any]:
    """Mine the best design for ``workloads`` within ``area_mm2`` (and ``power_w``, …: the
    fields of :class:`search.runner.SearchConfig`). Returns the ``dse search --json``
    object; writes the run directory when ``out_dir`` is given."""
    from search.runner import SearchConfig, run_search, write_run_dir

    import dataclasses

    from dse.limits import check

    if isinstance(workloads, str):
        names: tuple[str, ...] = (workloads,)
    elif isinstance(workloads, (list, tuple)) and all(isinstance(w, str) for w in workloads):
        names = tuple(workloads)
    else:
        raise ConfigError(f"workloads must be a name or a list of names, got {workloads!r}")
    valid = {f.name for f in dataclasses.fields(SearchConfig)} - {"workloads", "area_mm2"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(f"unknown search option {unknown[0]!r}; valid: "
                          f"{', '.join(sorted(valid))}")
    check("--area", area_mm2)
    for key, flag in (("power_w", "--power"), ("devices", "--devices"),
                      ("budget", "--budget"), ("seed", "--seed"), ("batch", "--batch"),
                      ("seq", "--seq"), ("top_k", "--top-k")):
        if options.get(key) is not None:
            check(flag, options[key])
    out_dir = options.get("out_dir")
    if out_dir is not None and not isinstance(out_dir, (str, Path)):
        raise ConfigError(f"out_dir must be a path, got {type(out_dir).__name__}")
    cfg = SearchConfig(workloads=names, area_mm2=area_mm2, **options)
    summary, ev = run_search(cfg)
    if cfg.out_dir:
        write_run_dir(summary, ev, cfg.out_dir)
    return summary
