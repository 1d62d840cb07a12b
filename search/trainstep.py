"""A workload's training step on designs, under parallel plans: ``workloads`` builds the
graph segments, ``cost_models`` costs them (the cost models never build graphs).

:class:`WorkloadModel` holds what does not depend on the design about one workload on
``devices`` devices in nodes of ``devices_per_node``, computed once for the whole search
(unbounded: a search touches a few hundred plans at most): the valid plans
(:func:`search.plans.enumerate_plans`) and, per plan, its virtual-stage layout
(:func:`workloads.parallel.stage_layout`), per-device memory
(:func:`cost_models.memory.device_memory_from_stages`) and point-to-point transfer; the
graph segments of every tensor-parallel shard shape (:func:`workloads.parallel.shard_segments`):
a transformer stage of ``L`` layers is ``pre + L·block + post``, so three small graphs
serve every pipeline cut of that shape, even and uneven.

:meth:`WorkloadModel.evaluate` costs a list of plans on a :class:`~cost_models.designs.DesignBatch`:
the segments all plans need are costed in one call (:func:`cost_models.training.segment_costs`,
which schedules graphs of the same structure together), then each plan is a closed-form
pipeline evaluation (:func:`cost_models.training.training_step`). Plans whose memory
exceeds the largest HBM of the batch are never costed.

:func:`evaluate_training` is the full :class:`~dse.types.Evaluation` of one design (the
``dse evaluate`` result): breakdowns, critical path, memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_models.network import overlap_sms
from dse.errors import ConfigError
from dse.types import Evaluation, HardwareConfig, ParallelPlan, SystemConfig
from search import planbound
from search.breakdown import comm_terms, operator_times, table_sharding
from search.planbound import cost_key as _cost_key
from search.stagememory import expert_params as _expert_params
from search.stagememory import gemm_bytes_of, leanest_memory_bytes
from search.stagememory import graph_params_of as _params

__all__ = ["PlanInfo", "WorkloadModel", "evaluate_training", "workload_model"]


@dataclass(frozen=True)
class PlanInfo:
    """Design-independent facts of one plan."""

    plan: ParallelPlan
    stages: tuple[Any, ...]
    """:class:`workloads.parallel.VirtualStage` per virtual stage."""
    memory: dict[str, float]
    p2p_full_bytes: float
    """One micro-batch's activation between stages, unsharded (bytes)."""
    shard: tuple[Any, ...]
    """Key of the tensor-parallel shard shape (segments)."""


def _seq_of(spec: Any, seq: int | None) -> int | None:
    s = seq or getattr(spec, "default_seq", None)
    return int(s) if s else None


class WorkloadModel:
    """One workload on ``devices`` devices (module docstring)."""

    def __init__(self, spec: Any, *, devices: int = 1, seq: int | None = None,
                 global_batch: int | None = None, plans: Sequence[ParallelPlan] | None = None,
                 gemm_bytes: int = 2, devices_per_node: int = 8) -> None:
        self.spec = spec
        self.node = int(devices_per_node)  # a DLRM's table plan needs it
        self.gemm_bytes = min(int(gemm_bytes), 2)  # < 2: transformers keep GEMM inputs in it
        self.devices = int(devices)
        self.seq = _seq_of(spec, seq)
        self.global_batch = global_batch
        self.transformer = getattr(spec, "family", "") == "transformer"
        self._plans: list[ParallelPlan] | None = list(plans) if plans is not None else None
        self._info: dict[ParallelPlan, PlanInfo] = {}
        self._statics: dict[tuple[ParallelPlan, SystemConfig], dict[str, Any]] = {}
        self._recipes: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._segments: dict[tuple[Any, ...], Any] = {}  # by shard_key (hashing a spec is slow)
        self.floors: dict[ParallelPlan, float] = {}  # memory floors (search.planbound)

    # -- design-independent --------------------------------------------------------------
    @property
    def plans(self) -> list[ParallelPlan]:
        """Every valid plan (:func:`search.plans.enumerate_plans`), enumerated once."""
        if self._plans is None:
            from search.planspace import enumerate_plans

            self._plans = enumerate_plans(self.spec, self.devices,
                                          global_batch=self.global_batch, seq=self.seq)
        return self._plans

    def info(self, plan: ParallelPlan) -> PlanInfo:
        """Layout, memory and p2p of ``plan`` (cached)."""
        hit = self._info.get(plan)
        if hit is not None:
            return hit
        from cost_models.memory import device_memory_from_stages
        from workloads.parallel import stage_layout

        stages = tuple(stage_layout(self.spec, plan, self.seq, devices_per_node=self.node))
        s = self.seq or 0
        if self.transformer:
            from search.stagememory import transformer_stage_memories

            mems = transformer_stage_memories(self.spec, plan, stages, self.segments(plan), s,
                                              self.gemm_bytes)
            p2p = float(plan.micro_batch * -(-s // plan.cp) * int(self.spec.hidden) * 2)
        else:
            from cost_models.memory import stage_memory_of_graph

            mems = [stage_memory_of_graph(st.graph, k, len(stages))
                    for k, st in enumerate(stages)]
            fwd = [op for op in stages[0].graph.ops if op.phase == "fwd"]
            p2p = float(fwd[-1].bytes_out) if (fwd and plan.pp > 1) else 0.0
        mem = device_memory_from_stages(mems, plan, seq=s)
        info = PlanInfo(plan=plan, stages=stages, memory=mem, p2p_full_bytes=p2p,
                        shard=self.shard_key(plan))
        self._info[plan] = info
        return info

    def memory_bytes(self, plan: ParallelPlan) -> float:
        """Per-device memory of ``plan`` (bytes, the fullest device)."""
        return float(self.info(plan).memory["total"])

    def shard_key(self, plan: ParallelPlan) -> tuple[Any, ...]:
        sp = bool(plan.sequence_parallel and plan.tp > 1)
        if self.transformer:
            return ("t", plan.tp, plan.micro_batch, sp, plan.optimizer, plan.cp, plan.ep,
                    plan.expert_tp)
        return ("g", plan.pp, plan.micro_batch, plan.optimizer,
                plan.dp if getattr(self.spec, "family", "") == "dlrm" else 1)

    def segments(self, plan: ParallelPlan) -> Any:
        """:class:`workloads.parallel.Segments` of the plan's shard (transformers)."""
        from workloads.parallel import shard_segments

        key = self.shard_key(plan)
        hit = self._segments.get(key)
        if hit is None:
            hit = self._segments[key] = shard_segments(
                self.spec, micro_batch=plan.micro_batch, seq=int(self.seq or 0), tp=plan.tp,
                sequence_parallel=plan.sequence_parallel, optimizer=plan.optimizer,
                cp=plan.cp, ep=plan.ep, etp=plan.expert_tp)
        return hit

    def stage_graphs(self, plan: ParallelPlan) -> list[tuple[int, str, Any, float, bool]]:
        """(virtual stage, part name, graph, multiplicity, is a layer) of every part."""
        from workloads.parallel import dense_layers_in

        out: list[tuple[int, str, Any, float, bool]] = []
        for st in self.info(plan).stages:
            if st.graph is not None:
                out.append((st.index, "stage", st.graph, 1.0, False))
                continue
            nd = dense_layers_in(self.spec, st.layers[0], st.layers[1])
            for name, g, mult in self.segments(plan).parts(first=st.first, last=st.last,
                                                           layers=st.n_layers,
                                                           dense_layers=nd):
                out.append((st.index, name, g, mult, name in ("block", "dense")))
        return out

    def min_memory_bytes(self) -> float:
        return leanest_memory_bytes(self, self.plans)

    # -- costing ---------------------------------------------------------------------------
    def evaluate(self, designs: Any, system: SystemConfig, tech: Any,
                 plans: Sequence[ParallelPlan], *, dp_overlap: bool = True,
                 tp_overlap: bool = True, detail: bool = False,
                 keep_steps: bool = False, ep_overlap: bool = False) -> list[dict[str, Any]]:
        """:func:`cost_models.training.training_step` of every plan on every design."""
        from cost_models.network import comm_time_s
        from cost_models.training import StagePart, segment_costs, training_step

        gemm_bytes_of(designs, self.gemm_bytes)  # the memory below is for this width
        # (id(graph), cost key) -> (graph, plan for comm): plans of the same shape share
        # graphs, but their recompute modules and dispatcher change the costs
        need: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        per_plan = []
        for plan in plans:
            parts = self.stage_graphs(plan)
            per_plan.append(parts)
            for _, _, g, _, _ in parts:
                need.setdefault((id(g), _cost_key(plan)), (g, plan))
        by_id: dict[tuple[Any, ...], Any] = {}
        for ck in dict.fromkeys(k[1] for k in need):
            keys = [k for k in need if k[1] == ck]
            graphs = [need[k][0] for k in keys]
            comms = [comm_time_s(need[k][0], system, need[k][1]) for k in keys]
            costs = segment_costs(graphs, designs, tech, comms, blocking_comm=not tp_overlap,
                                  keep_steps=keep_steps,
                                  overlap_groups=("ep",) if ep_overlap else (),
                                  recompute_modules=ck[0],
                                  overlap_sms=overlap_sms(ck[1], ep_overlap))
            by_id.update(zip(keys, costs))
        out = []
        for plan, parts in zip(plans, per_plan):
            info = self.info(plan)
            stages: list[list[StagePart]] = [[] for _ in info.stages]
            for k, name, g, mult, layer in parts:
                stages[k].append(StagePart(costs=by_id[id(g), _cost_key(plan)],
                                           multiplicity=mult, layer=layer, name=name))
            r = training_step(stages, designs, system, plan, tech,
                              p2p_s=self._p2p_s(info, system),
                              p2p_bytes=(info.p2p_full_bytes / plan.tp
                                         if self.transformer else 0.0),
                              memory_bytes=info.memory["total"],
                              tied_embedding_bytes=self._tied_bytes(plan),
                              dp_overlap=dp_overlap, detail=detail)
            if detail:
                r["_parts"] = stages
                r["_info"] = info
                r["_p2p_one_s"] = self._p2p_s(info, system)
            out.append(r)
        return out

    def _p2p_s(self, info: PlanInfo, system: SystemConfig) -> float:
        """One activation (or gradient) transfer between neighbouring stages (s):
        Megatron's scatter/gather (Narayanan §4.1) — each tp rank sends ``1/t`` over the
        NICs; without sequence parallelism the slices are re-gathered inside the node."""
        from cost_models.network import group_collective_time_s, group_placement, p2p_time_s

        plan = info.plan
        if plan.pp <= 1:
            return 0.0
        full = info.p2p_full_bytes
        t = plan.tp
        if t == 1 or not self.transformer:
            return float(p2p_time_s(full, plan, system))
        out = float(p2p_time_s(full / t, plan, system))
        if not plan.sequence_parallel:
            out += float(group_collective_time_s("all_gather", full,
                                                 group_placement("tp", plan, system), system))
        return out

    def _tied_bytes(self, plan: ParallelPlan) -> float:
        """The word-embedding gradient that first and last stage all-reduce (Megatron-LM)
        when the embeddings are tied, or multi-token prediction uses them on the last
        stage, and the two are different stages."""
        from cost_models.training import GRAD_BYTES

        sp = self.spec
        shared = getattr(sp, "tied_embeddings", False) or getattr(sp, "mtp_layers", 0) > 0
        if not (self.transformer and plan.pp > 1 and shared):
            return 0.0
        return float(-(-sp.vocab // plan.tp) * getattr(sp, "embed_dim", sp.hidden)
                     * GRAD_BYTES)

    def _static(self, plan: ParallelPlan, system: SystemConfig) -> dict[str, Any]:
        """Design-independent terms of ``plan`` on ``system`` (cached): its parts, the
        data-parallel traffic per device, the tied-embedding all-reduce and the p2p
        transfer."""
        key = (plan, system)
        hit = self._statics.get(key)
        if hit is not None:
            return hit
        from cost_models.network import collective_time_s
        from cost_models.training import dp_times

        info = self.info(plan)
        parts = self.stage_graphs(plan)
        p = plan.pp
        params = np.zeros(p)
        experts = np.zeros(p)
        from cost_models.memory import local_params

        for k, _, g, mult, _ in parts:
            params[k % p] += mult * _params(g)
            experts[k % p] += mult * _expert_params(g)  # MoE layers and MTP modules
            params[k % p] -= mult * local_params(g)  # model-parallel shards: not reduced
        red, gather, post = (np.array(np.broadcast_to(np.asarray(x, dtype=np.float64), (p,)))
                             for x in dp_times(params - experts, plan, system))
        if experts.any():  # expert gradients: over the dp·cp/ep ranks with the same experts
            for acc, x in zip((red, gather, post),
                              dp_times(experts, plan, system, group="edp")):
                acc += np.broadcast_to(np.asarray(x, dtype=np.float64), (p,))
        tied = self._tied_bytes(plan)
        if tied > 0 and p > 1:
            t_emb = float(collective_time_s("all_reduce", tied, 2,
                                            system.inter_node_bw_bytes_per_s,
                                            system.inter_node_latency_s, "switch"))
            post[0] += t_emb
            post[p - 1] += t_emb
        out = {"parts": parts, "red": red, "gather": gather, "post": post,
               "p2p": self._p2p_s(info, system), "zero2": plan.zero_stage >= 2 and plan.grad_group > 1,
               "m": plan.micro_batches, "v": max(1, len(info.stages) // p),
               "zero_div": plan.grad_group if plan.zero_stage >= 1 else 1}
        self._statics[key] = out
        return out

    def step_times(self, designs: Any, system: SystemConfig, tech: Any,
                   plans: Sequence[ParallelPlan], *, dp_overlap: bool = True,
                   tp_overlap: bool = True, ep_overlap: bool = False,
                   costs: dict[Any, Any] | None = None) -> np.ndarray:
        """(P, D) step time of every plan on every design — the fast path of the search:
        the segments of all plans are costed once, every plan's per-device times are the
        segment costs weighted by their multiplicities (one tensor product per pipeline
        depth), and the pipeline model runs on all plans of a depth at once
        (:func:`cost_models.pipeline.step_time_batch`). Same numbers as
        :meth:`evaluate` (tests). ``costs``: a cache of segment costs on these designs
        and system (:meth:`cost_segments`), kept by the caller across calls."""
        from cost_models.contention import beside_s, nccl_share
        from cost_models.pipeline import step_time_batch

        if not plans:
            return np.zeros((0, len(designs)))
        keys = [_cost_key(p) for p in plans]
        if len(set(keys)) > 1:  # shared graphs cost differently: one batch per cost key
            out_all = np.empty((len(plans), len(designs)))
            for key in dict.fromkeys(keys):
                idx = [i for i, k in enumerate(keys) if k == key]
                out_all[idx] = self.step_times(designs, system, tech, [plans[i] for i in idx],
                                               dp_overlap=dp_overlap, tp_overlap=tp_overlap,
                                               ep_overlap=ep_overlap, costs=costs)
            return out_all
        statics = [self._static(p, system) for p in plans]
        gid: dict[int, int] = {}
        graphs: list[Any] = []
        comm_plan: list[ParallelPlan] = []
        for plan, st in zip(plans, statics):
            for _, _, g, _, _ in st["parts"]:
                if id(g) not in gid:
                    gid[id(g)] = len(graphs)
                    graphs.append(g)
                    comm_plan.append(plan)
        cache: dict[Any, Any] = {} if costs is None else costs
        self.cost_segments(cache, designs, system, tech, list(zip(graphs, comm_plan)),
                           tp_overlap=tp_overlap, ep_overlap=ep_overlap)
        seg = [cache[id(g), keys[0]] for g in graphs]
        fw = np.stack([c.fwd_s for c in seg])          # (S, D)
        bw = np.stack([c.bwd_s for c in seg])
        op = np.stack([c.opt_s for c in seg])
        at = np.stack([c.attn_core_s for c in seg])
        n_s, n = len(graphs), len(designs)
        out = np.full((len(plans), n), np.inf)
        del n_s
        nccl = nccl_share(designs)
        for rec in self._recipe(plans, statics, gid, system):
            members, used = rec["members"], rec["used"]
            cf, cr_f, cr_a, co = rec["cf"], rec["cr_f"], rec["cr_a"], rec["co"]
            fws, bws, ats, ops = fw[used], bw[used], at[used], op[used]
            f = np.einsum("sd,psk->pdk", fws, cf)
            b = np.einsum("sd,psk->pdk", bws, cf)
            if rec["any_full"]:
                b = b + np.einsum("sd,psk->pdk", fws, cr_f)
            if rec["any_sel"]:
                b = b + np.einsum("sd,psk->pdk", ats, cr_a)
            opt = np.einsum("sd,psk->pdk", ops, co)
            red, gat, post, z2 = rec["red"], rec["gather"], rec["post"], rec["z2"]
            if z2.any():
                zz = z2[:, None, None]
                share = nccl[None, :, None]
                add_f = beside_s(f, gat[:, None, :], share)
                add_b = beside_s(b, red[:, None, :] + gat[:, None, :], share)
                f = f + np.where(zz, add_f, 0.0)
                b = b + np.where(zz, add_b, 0.0)
                red = np.where(z2[:, None], 0.0, red)
            r = step_time_batch(f, b, rec["p2p"], rec["m"], rec["v"], dp_comm_s=red,
                                dp_post_s=post, optimizer_s=opt, dp_overlap=dp_overlap,
                                comm_share=nccl)
            out[members] = r["step_time_s"]
        return out

    def cost_segments(self, cache: dict[Any, Any], designs: Any, system: SystemConfig,
                      tech: Any, items: Sequence[tuple[Any, ParallelPlan]], *,
                      tp_overlap: bool = True, ep_overlap: bool = False) -> None:
        """Cost the (graph, plan) ``items`` missing from ``cache`` (keys: graph id and
        :func:`search.planbound.cost_key`), one :func:`cost_models.training.segment_costs`
        call per key; equal graphs with equal communication times are costed once (the
        cache serves the times of :meth:`step_times`)."""
        from cost_models.network import comm_time_s
        from cost_models.training import segment_costs

        todo: dict[tuple[Any, ...], list[tuple[Any, ParallelPlan]]] = {}
        for g, plan in items:
            if (id(g), _cost_key(plan)) not in cache:
                todo.setdefault(_cost_key(plan), []).append((g, plan))
        for ck, its in todo.items():
            comms = [comm_time_s(g, system, pl) for g, pl in its]
            # shards that differ only in what a segment does not hold (the embedding of
            # every expert split) build equal graphs: cost each once
            first: dict[Any, int] = {}
            rep = [first.setdefault((g.ops, g.edges, c.tobytes()), j)
                   for j, ((g, _), c) in enumerate(zip(its, comms))]
            uniq = sorted(set(rep))
            got = dict(zip(uniq, segment_costs(
                [its[j][0] for j in uniq], designs, tech, [comms[j] for j in uniq],
                blocking_comm=not tp_overlap, overlap_groups=("ep",) if ep_overlap else (),
                recompute_modules=ck[0], overlap_sms=overlap_sms(ck[1], ep_overlap))))
            cache.update(((id(g), ck), got[r]) for (g, _), r in zip(its, rep))

    def _recipe(self, plans: Sequence[ParallelPlan], statics: list[dict[str, Any]],
                gid: dict[int, int], system: SystemConfig) -> list[dict[str, Any]]:
        """How :meth:`step_times` combines segment costs into plans (design-independent,
        cached per plan list and system): plans of one pipeline depth over the same
        segment graphs (one shard shape) are evaluated together, each device's time a few
        segments × multiplicities (coefficient tensors (plans, segments, devices))."""
        key = (tuple(plans), system)
        hit = self._recipes.get(key)
        if hit is not None:
            return hit
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, (plan, st) in enumerate(zip(plans, statics)):
            used = tuple(sorted({gid[id(g)] for _, _, g, _, _ in st["parts"]}))
            groups.setdefault((plan.pp, used), []).append(i)
        out = []
        for (p, used), members in groups.items():
            k, ns = len(members), len(used)
            loc = {g: j for j, g in enumerate(used)}
            cf = np.zeros((k, ns, p))
            cr_f = np.zeros((k, ns, p))
            cr_a = np.zeros((k, ns, p))
            co = np.zeros((k, ns, p))
            for a, i in enumerate(members):
                st, plan = statics[i], plans[i]
                for kk, _, g, mult, layer in st["parts"]:
                    s_, d = loc[gid[id(g)]], kk % p
                    cf[a, s_, d] += mult
                    co[a, s_, d] += mult / st["zero_div"]
                    if layer and plan.recompute == "full":
                        cr_f[a, s_, d] += mult
                    elif layer and plan.recompute == "selective":
                        cr_a[a, s_, d] += mult
            out.append({
                "members": np.asarray(members), "used": list(used), "cf": cf, "cr_f": cr_f,
                "cr_a": cr_a, "co": co, "any_full": bool(cr_f.any()),
                "any_sel": bool(cr_a.any()),
                "red": np.stack([statics[i]["red"] for i in members]),
                "gather": np.stack([statics[i]["gather"] for i in members]),
                "post": np.stack([statics[i]["post"] for i in members]),
                "z2": np.array([statics[i]["zero2"] for i in members]),
                "p2p": np.array([statics[i]["p2p"] for i in members]),
                "m": np.array([statics[i]["m"] for i in members]),
                "v": np.array([statics[i]["v"] for i in members])})
        if len(self._recipes) > 64:
            self._recipes.clear()
        self._recipes[key] = out
        return out

    def best_plan_batch(self, designs: Any, system: SystemConfig, tech: Any,
                        plans: Sequence[ParallelPlan] | None = None
                        ) -> tuple[list[ParallelPlan | None], dict[str, np.ndarray]]:
        """The fastest plan that fits memory for every design of a DesignBatch: one plan
        per design (``None`` where nothing fits) and the chosen plans' ``step_time_s``
        (``inf`` where nothing fits), ``samples_per_s``, ``memory_per_device_bytes``,
        ``fits_memory``, plus ``plans_evaluated`` (costed) and ``plans_enumerated``: the
        exhaustive result, by branch and bound (:mod:`search.planbound`)."""
        gemm_bytes_of(designs, self.gemm_bytes)
        return planbound.best_plan_batch(self, designs, system, tech,
                               list(plans) if plans is not None else self.plans)


_MODELS: dict[tuple[Any, ...], WorkloadModel] = {}


def workload_model(spec: Any, devices: int = 1, *, seq: int | None = None,
                   global_batch: int | None = None, gemm_bytes: int = 2,
                   devices_per_node: int = 8) -> WorkloadModel:
    """The shared :class:`WorkloadModel` of ``(spec, devices, seq, global batch, node size)``
    on designs whose GEMMs take ``gemm_bytes`` per element (:func:`gemm_bytes_of`)."""
    gb = min(int(gemm_bytes), 2)  # widths of 16 bits and more keep the same memory
    key = (spec, int(devices), _seq_of(spec, seq), global_batch, gb, int(devices_per_node))
    hit = _MODELS.get(key)
    if hit is None:
        hit = _MODELS[key] = WorkloadModel(spec, devices=devices, seq=seq, gemm_bytes=gb,
                                           global_batch=global_batch, devices_per_node=devices_per_node)
    return hit


# --------------------------------------------------------------------------- one design
def evaluate_training(spec: Any, hw: HardwareConfig, system: SystemConfig, plan: ParallelPlan,
                      tech: Any, seq: int | None = None, *, dp_overlap: bool = True,
                      tp_overlap: bool = True, ep_overlap: bool = False) -> Evaluation:
    """Evaluate one design on one workload and plan (the ``dse evaluate`` result).

    ``critical_path`` lists markers and the operator names of the slowest pipeline
    device's work per micro-batch: ``pipeline:fill``, the forward critical chain of each
    of its segments (``×L`` after a block's operators repeated ``L`` times), the
    recomputation marker, the backward chains, ``pipeline:drain``, and the exposed
    communication and optimizer markers.
    """
    from cost_models.designs import DesignBatch
    from cost_models.training import critical_path
    from workloads.parallel import validate_plan

    if hw.dtype_bytes > 2:  # a 4-byte step (activations, weights, traffic) is not modelled
        raise ConfigError(f"HardwareConfig[{hw.name}].dtype={hw.dtype!r}: the training model "
                          "runs 16-bit tensors and 16- or 8-bit GEMMs; give dtype bf16, "
                          "fp16, fp8 or int8")
    validate_plan(spec, plan, seq=_seq_of(spec, seq))
    node = system.devices_per_node
    model = WorkloadModel(spec, devices=plan.devices, seq=seq, global_batch=plan.global_batch,
                          plans=[plan], gemm_bytes=hw.dtype_bytes, devices_per_node=node)
    designs = DesignBatch.from_configs([hw])
    r = model.evaluate(designs, system, tech, [plan], dp_overlap=dp_overlap,
                       tp_overlap=tp_overlap, detail=True, keep_steps=True,
                       ep_overlap=ep_overlap)[0]
    info: PlanInfo = r["_info"]
    stages = r["_parts"]
    p = plan.pp
    slow = int(r["_slowest"][0])
    s = model.seq
    m = plan.micro_batches
    mine = [part for k in range(slow, len(stages), p) for part in stages[k]]

    path: list[str] = ["pipeline:fill"] if p > 1 else []
    for part in mine:
        ph = part.costs.phases
        if ph.fwd is not None:
            chain = critical_path(ph.fwd, part.costs.fwd_step)
            path.extend(chain)
            if part.multiplicity != 1 and chain:
                path.append(f"{part.name}:x{part.multiplicity:g}")
    if plan.recompute == "full":
        path.append("recompute:forward")
    elif plan.recompute == "selective":
        path.append("recompute:" + ("+".join(plan.recompute_modules) or "attention_core"))
    for part in reversed(mine):
        ph = part.costs.phases
        if ph.bwd is not None:
            chain = critical_path(ph.bwd, part.costs.bwd_step)
            path.extend(chain)
            if part.multiplicity != 1 and chain:
                path.append(f"{part.name}:x{part.multiplicity:g}")
    if p > 1:
        path.append("pipeline:drain")
    if float(r["dp_exposed_s"][0]) > 0:
        path.append("comm:dp_all_reduce")
    if any(part.costs.phases.opt is not None for part in mine):
        path.append("optimizer:step")

    f = float(r["_fwd"][0, slow])
    b = float(r["_bwd"][0, slow])
    rec = float(r["_rec"][0, slow])
    from cost_models.contention import nccl_share

    by_kind, by_phase_op, groups = operator_times(mine, m, float(nccl_share(designs)[0]))
    by_kind["optimizer"] = by_kind.get("optimizer", 0.0) + float(r["_opt"][0, slow])
    by_phase_op["optimizer"] = float(r["_opt"][0, slow])
    step = float(r["step_time_s"][0])
    tail = float(r["tail_s"][0])
    phases = {  # a partition of the step time (slowest device's compute + pipeline + tail)
        "forward_s": m * f,
        "backward_s": m * (b - rec),
        "recompute_s": m * rec,
        "bubble_s": float(r["bubble_s"][0]),
        "p2p_s": float(r["p2p_s"][0]),
        "tail_s": tail,
    }
    tail_parts = {  # tail = dp_exposed + optimizer + post_optimizer_comm - hidden
        "dp_exposed_s": float(r["dp_exposed_s"][0]) if tail > 0 else 0.0,
        "optimizer_s": float(r["optimizer_s"][0]) if tail > 0 else 0.0,
        "post_optimizer_comm_s": float(r["post_optimizer_comm_s"][0]) if tail > 0 else 0.0,
        "hidden_by_drain_s": float(r["tail_hidden_s"][0]),
    }
    comm = comm_terms(by_kind, groups, r, tail_parts["dp_exposed_s"])
    breakdown = {
        "phase_s": phases,
        "tail_s": tail_parts,
        "comm_s": comm,
        "op_kind_s": by_kind,
        "op_phase_s": by_phase_op,
        "bubble_fraction": float(r["bubble_fraction"][0]),
        "slowest_stage": slow,
        "step_time_s": step,
    }
    mem = info.memory
    area, tdp = r["_area"], r["_tdp"]
    peak = hw.peak_flop_per_s
    extra = {
        "hardware_flop_per_s_per_device": float(r["hardware_flop_per_s_per_device"][0]),
        "mfu": float(r["achieved_flop_per_s_per_device"][0]) / peak,
        "hfu": float(r["hardware_flop_per_s_per_device"][0]) / peak,
        "energy_per_step_total_j": float(r["energy_per_step_total_j"][0]),
        "devices": plan.devices,
        "micro_batches": m,
        "seq": s,
        "p2p_transfer_s": float(r["_p2p_one_s"]),
        "stage_layers": [list(st.layers) for st in info.stages],
        "table_sharding": table_sharding(info.stages),
    }
    return Evaluation(
        step_time_s=step,
        samples_per_s=float(r["samples_per_s"][0]),
        achieved_flop_per_s_per_device=float(r["achieved_flop_per_s_per_device"][0]),
        area_mm2=float(r["area_mm2"][0]),
        tdp_w=float(r["tdp_w"][0]),
        energy_per_step_j=float(r["energy_per_step_j"][0]),
        memory_per_device_bytes=float(mem["total"]),
        fits_memory=bool(r["fits_memory"][0]),
        critical_path=tuple(path),
        breakdown=breakdown,
        utilization=float(r["hardware_flop_per_s_per_device"][0]) / peak,
        area_breakdown_mm2={k: float(np.asarray(v)[0]) for k, v in area.items()},
        power_breakdown_w={k: float(np.asarray(v)[0]) for k, v in tdp.items()},
        memory_breakdown_bytes={k: float(v) for k, v in mem.items()},
        extra=extra,
    )
