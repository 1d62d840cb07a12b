"""``dse evaluate``: one design (a hardware preset or file) on one workload and plan.

Plan flags and how missing ones are derived:

* ``--tp`` and ``--pp`` default to 1; ``--dp`` to ``devices/(tp·pp)`` when ``--devices``
  is given (which must then divide), else 1; ``--devices`` to ``tp·pp·dp``.
* ``--micro-batch`` defaults to 1; ``--global-batch`` to the workload's default batch
  (its published global batch) rounded up to a multiple of ``dp·micro_batch``.
* ``--seq`` defaults to the workload's sequence length; ``--interleave`` to 2 with
  ``--schedule interleaved`` (else 1); ``--zero`` to 0.

Invalid plans exit with code 2 and one line naming the rule that failed
(:func:`workloads.parallel.validate_plan`).

JSON: the contract keys of ``evaluate`` (design brief §4: ``step_time_s``,
``samples_per_s``, ``achieved_flop_per_s_per_device``, ``area_mm2``, ``tdp_w``,
``energy_per_step_j`` — per device —, ``memory_per_device_bytes``, ``fits_memory``,
``critical_path``, ``breakdown``), then ``plan``, ``hardware``, ``workload``, ``system``
and the extras of :class:`dse.types.Evaluation`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from dse.errors import ConfigError
from dse.types import ParallelPlan, jsonable


def derive_plan(args: argparse.Namespace, default_batch: int, experts: int = 0,
                family: str = "", mtp_layers: int = 0) -> ParallelPlan:
    """The :class:`ParallelPlan` of the CLI flags, missing values derived (module doc).
    ``experts``: the workload's routed experts (0: a dense model), for the ``--ep`` check."""
    tp = args.tp or 1
    pp = args.pp or 1
    cp = getattr(args, "cp", None) or 1
    names, sizes = ("tp*pp", f"{tp}*{pp}") if cp == 1 else ("tp*cp*pp", f"{tp}*{cp}*{pp}")
    if args.dp is not None:
        dp = args.dp
    elif args.devices is not None:
        if args.devices % (tp * cp * pp):
            raise ConfigError(f"devices={args.devices} is not divisible by {names} = {sizes}; "
                              f"give --dp or change --tp/--pp{'/--cp' if cp > 1 else ''}")
        dp = args.devices // (tp * cp * pp)
    else:
        dp = 1
    if args.devices is not None and tp * cp * pp * dp != args.devices:
        raise ConfigError(f"{names}*dp = {sizes}*{dp} = {tp * cp * pp * dp} must equal "
                          f"devices={args.devices}")
    ep = getattr(args, "ep", None) or 1
    etp = getattr(args, "etp", None) or 0
    ranks = tp * cp * dp // (etp or tp)
    if ep > 1 and experts and (experts % ep or ranks % ep):
        valid = [e for e in range(1, experts + 1) if experts % e == 0 and ranks % e == 0]
        raise ConfigError(f"--ep {ep} must divide both the {experts} experts and the "
                          f"{ranks} expert ranks of a stage (tp*cp*dp/etp); valid --ep: "
                          f"{', '.join(map(str, valid))}")
    mb = args.micro_batch or 1
    if args.micro_batch is None and family == "dlrm" and pp == 1:
        # DLRM trains without gradient accumulation (MLPerf submissions: GA 1): each
        # data-parallel device runs its whole share of the global batch at once
        gb0 = args.global_batch if args.global_batch is not None else int(default_batch)
        mb = max(1, -(-gb0 // dp))
    if args.global_batch is not None:
        gb = args.global_batch
    else:
        unit = dp * mb
        gb = -(-int(default_batch) // unit) * unit
    schedule = args.schedule
    mods = getattr(args, "recompute_modules", None) or ()
    recompute = getattr(args, "recompute", None) or ("selective" if mods else "none")
    if mods and recompute != "selective":
        raise ConfigError(f"--recompute-modules {','.join(mods)} needs --recompute selective, "
                          f"not {recompute} (valid: selective, or no --recompute)")
    if family and family != "transformer":
        if recompute != "none":
            raise ConfigError(f"--recompute {recompute}: recomputation re-runs transformer "
                              f"layers; this is a {family} model (use none)")
        if args.sequence_parallel:
            raise ConfigError(f"--sequence-parallel splits a transformer's sequence over "
                              f"the tensor-parallel group; this is a {family} model")
    if args.sequence_parallel and tp == 1:
        raise ConfigError("--sequence-parallel splits the sequence over the tensor-parallel "
                          "group: it needs --tp > 1")
    if getattr(args, "etp", None) is not None and not experts:
        raise ConfigError("--etp sets how experts split over tp: it applies to "
                          "mixture-of-experts models only")
    interleave = args.interleave if args.interleave is not None else (
        2 if schedule == "interleaved" else 1)
    layout: tuple[int, ...] = ()
    if getattr(args, "pipeline_layout", None):
        from workloads.parallel import parse_pipeline_layout

        layout, where = parse_pipeline_layout(args.pipeline_layout)
        v = interleave if schedule == "interleaved" else 1
        if len(layout) != pp * v:
            raise ConfigError(f"--pipeline-layout has {len(layout)} stages; --pp {pp}"
                              + (f" x --interleave {v}" if v > 1 else "")
                              + f" = {pp * v}")
        if where["mtp"] and not mtp_layers:
            raise ConfigError("--pipeline-layout places a multi-token-prediction layer (m); "
                              "this model has none (mtp_layers=0): remove the m")
        # the model keeps the embedding on the first stage, head, loss and MTP on the last
        home = {"embedding": 0, "loss": len(layout) - 1, "mtp": len(layout) - 1}
        for part, stage in home.items():
            off = [k for k in where[part] if k != stage]
            if off:
                raise ConfigError(f"--pipeline-layout puts the {part} on stage {off[0]}; "
                                  f"this model keeps it on stage {stage} (the "
                                  f"{'first' if stage == 0 else 'last'})")
    return ParallelPlan(tp=tp, pp=pp, dp=dp, global_batch=gb, micro_batch=mb,
                        schedule=schedule, recompute=recompute, recompute_modules=mods,
                        dispatcher=getattr(args, "dispatcher", None) or "alltoall",
                        layout=layout,
                        sequence_parallel=bool(args.sequence_parallel),
                        zero_stage=int(args.zero or 0), interleave=interleave, cp=cp, ep=ep,
                        etp=etp)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import workloads
    from cost_models.presets import hardware_dict, load_preset
    from cost_models.technology import load_technology
    from search.trainstep import evaluate_training
    from workloads.parallel import validate_plan

    from cost_models.stacks import DEFAULT_STACK, load_stack

    spec = workloads.model_spec(args.workload)
    stack = load_stack(getattr(args, "stack", None) or DEFAULT_STACK)
    att = getattr(args, "attention", None)
    if att is None and getattr(args, "stack", None) and hasattr(spec, "attention"):
        att = stack.attention  # an explicit --stack sets the attention kernel
    if att is not None:
        if not hasattr(spec, "attention"):
            raise ConfigError(f"--attention: {spec.name} is a {spec.family} model without "
                              "attention; --attention applies to transformers only")
        spec = dataclasses.replace(spec, attention=att)
    if getattr(args, "stack", None) and hasattr(spec, "grad_accumulation"):
        spec = dataclasses.replace(spec, grad_accumulation=stack.grad_accumulation,
                                   bias_grad=stack.bias_grad,
                                   cross_entropy=stack.cross_entropy)
    preset = load_preset(args.hardware)
    hw, system = preset.hardware, preset.system
    plan = derive_plan(args, spec.default_batch, int(getattr(spec, "experts", 0) or 0),
                       str(getattr(spec, "family", "")),
                       mtp_layers=int(getattr(spec, "mtp_layers", 0) or 0))
    seq = args.seq
    validate_plan(spec, plan, plan.devices, seq=seq)
    if plan.devices > 1 and (hw.link_count == 0 or hw.link_bw_bytes_per_s == 0):
        raise ConfigError(f"{args.hardware}: link_count={hw.link_count}, link_bw_bytes_per_s="
                          f"{hw.link_bw_bytes_per_s:g}: a chip without chip-to-chip links "
                          f"cannot train on {plan.devices} devices; give it links or use "
                          "--devices 1")
    tech = load_technology(hw.tech_node_nm)
    ev = evaluate_training(spec, hw, system, plan, tech, seq=seq,
                           dp_overlap=stack.dp_overlap, tp_overlap=stack.tp_overlap,
                           ep_overlap=stack.ep_overlap)
    out = ev.to_dict()
    out["stack"] = stack.name
    out["plan"] = dict(dataclasses.asdict(plan), devices=plan.devices,
                       micro_batches=plan.micro_batches)
    out["hardware"] = hardware_dict(hw, tech)
    out["workload"] = spec.name
    out["system"] = jsonable(dataclasses.asdict(system))
    return out


def _si(x: float, unit: str = "") -> str:
    for div, p in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3f} {p}{unit}"
    if x and abs(x) < 1:
        for div, p in ((1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
            if abs(x) >= div:
                return f"{x / div:.3f} {p}{unit}"
    return f"{x:.4g} {unit}".rstrip()


_STATE_KEYS = ("weights", "grads", "optimizer")


def fit_hint(mem: dict[str, float], plan: dict[str, Any]) -> str:
    """What to change when a plan does not fit: the larger of the two parts of the
    memory breakdown (model states, or activations and what recomputation keeps) and
    the plan options that shrink it and are not already at their limit (rules of the
    memory model, ``docs/distributed.md`` §4; nothing is evaluated)."""
    states = sum(float(mem.get(k, 0.0)) for k in _STATE_KEYS)
    acts = sum(float(v) for k, v in mem.items()
               if k not in _STATE_KEYS and k not in ("total", "stage")
               and not k.startswith("device_"))
    tips: list[str] = []
    if acts >= states:
        what = f"activations are {_si(acts, 'B')} of it"
        if plan.get("tp", 1) > 1 and not plan.get("sequence_parallel"):
            tips.append("--sequence-parallel")
        if plan.get("recompute") != "full":
            tips.append("--recompute full")
        if plan.get("micro_batch", 1) > 1:
            tips.append("a smaller --micro-batch")
        tips.append("more --tp, --cp or --pp")
    else:
        what = f"weights, gradients and optimizer states are {_si(states, 'B')} of it"
        if plan.get("zero_stage", 0) < 3:
            tips.append(f"--zero {plan.get('zero_stage', 0) + 1}")
        tips.append("more --tp or --pp (or --ep for a mixture of experts)")
    return f"{what}: try " + ", ".join(tips)


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    r = result
    p = r["plan"]
    hw = r["hardware"]
    lines = [
        (f"{r['workload']} on {hw['name']} x {p['devices']} "
        f"(tp={p['tp']}{' cp=' + str(p['cp']) if p.get('cp', 1) > 1 else ''}"
        f"{' ep=' + str(p['ep']) if p.get('ep', 1) > 1 else ''}"
        f"{' (deepep)' if p.get('dispatcher') == 'deepep' else ''} pp={p['pp']} "
        f"dp={p['dp']}, global batch {p['global_batch']}, "
        f"micro-batch {p['micro_batch']}, {p['micro_batches']} micro-batches, "
        f"{p['schedule']}{' v=' + str(p['interleave']) if p['schedule'] == 'interleaved' else ''}"
        f"{', layout ' + '/'.join(map(str, p['layout'])) if p.get('layout') else ''}"
        f", recompute {p['recompute']}"
        f"{' (' + ','.join(p['recompute_modules']) + ')' if p.get('recompute_modules') else ''}"
        f"{', sequence parallel' if p['sequence_parallel'] else ''}"
        f"{', ZeRO-' + str(p['zero_stage']) if p['zero_stage'] else ''}"
        f"{', stack ' + r['stack'] if r.get('stack') else ''})"),
        "",
        f"  step time                 {_si(r['step_time_s'], 's')}",
        f"  throughput                {r['samples_per_s']:.4g} samples/s",
        (f"  model FLOP/s per device   {_si(r['achieved_flop_per_s_per_device'], 'FLOP/s')}"
        f"  (MFU {100 * r.get('mfu', 0.0):.1f}%)"),
        (f"  hw FLOP/s per device      {_si(r.get('hardware_flop_per_s_per_device', 0.0), 'FLOP/s')}"
        f"  (HFU {100 * r.get('hfu', 0.0):.1f}%)"),
        (f"  memory per device         {_si(r['memory_per_device_bytes'], 'B')} of "
        f"{_si(hw['hbm_bytes'], 'B')}: {'fits' if r['fits_memory'] else 'DOES NOT FIT'}"),
        f"  area / TDP                {r['area_mm2']:.1f} mm2 / {r['tdp_w']:.1f} W",
        f"  energy per step           {_si(r['energy_per_step_j'], 'J')} per device",
        "",
        "  time per phase (slowest pipeline device):",
    ]
    bd = r["breakdown"]
    step = r["step_time_s"] or 1.0
    for k, v in bd.get("phase_s", {}).items():
        lines.append(f"    {k[:-2]:<22}{_si(v, 's'):>14}  {100 * v / step:6.1f}%")
    tail = bd.get("tail_s", {})
    if tail and bd.get("phase_s", {}).get("tail_s", 0.0) > 0:
        lines.append("    tail = " + " + ".join(f"{k[:-2]} {_si(v, 's')}" for k, v in tail.items()
                                               if k != "hidden_by_drain_s")
                     + f" - hidden by drain {_si(tail.get('hidden_by_drain_s', 0.0), 's')}")
    comm = bd.get("comm_s", {})
    if comm:
        cps = (f", context-parallel ring {_si(comm['cp_s'], 's')} (overlapped with the "
               f"attention)" if comm.get("cp_s") else "")
        if comm.get("ep_s"):
            share = comm["ep_s"] / max(bd.get("step_time_s", 0.0) or 1.0, 1e-30)
            cps += (f", expert-parallel all-to-all {_si(comm['ep_s'], 's')} "
                    f"({100 * share:.1f}% of the step"
                    + (", under the neighbouring micro-batch's computation)"
                       if comm.get("ep_hidden") else ", on the layers' critical path)"))
        if comm.get("embedding_s"):
            from workloads.dlrm import KIND_NAMES

            kinds = list(r.get("table_sharding") or [])
            how = ", ".join(f"{kinds.count(k)} {v}" for k, v in KIND_NAMES.items()
                            if k in kinds)
            cps += (f", embedding exchange {_si(comm['embedding_s'], 's')} (tables: "
                    f"{how or 'model parallel'})")
        if comm.get("sm_contention_s"):
            cps += (f", computation slowed {_si(comm['sm_contention_s'], 's')} beside "
                    f"overlapped collectives (their kernels hold SMs)")
        lines.append(f"  communication: tensor-parallel {_si(comm['tp_s'], 's')} (inside "
                     f"forward/backward){cps}, p2p {_si(comm['p2p_s'], 's')}, data-parallel "
                     f"{_si(comm['dp_s'], 's')} of which exposed "
                     f"{_si(comm['dp_exposed_s'], 's')}")
    kinds = r["breakdown"].get("op_kind_s", {})
    if kinds:
        lines.append("  operator time by kind (slowest device, per step):")
        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {k:<22}{_si(v, 's'):>14}")
    mem = r.get("memory_breakdown_bytes", {})
    if mem:
        lines.append("  memory per device:")
        for k, v in mem.items():
            if k in ("total", "stage") or k.startswith("device_"):
                continue
            lines.append(f"    {k:<22}{_si(v, 'B'):>14}")
        if not r["fits_memory"]:
            lines.append(f"  to fit: {fit_hint(mem, p)}")
    cp = r.get("critical_path", [])
    if cp:
        shown = cp if len(cp) <= 12 else cp[:6] + ["..."] + cp[-5:]
        lines.append(f"  critical path ({len(cp)} entries): " + " -> ".join(shown))
    return "\n".join(lines)
