"""Parallel partitioning of a training workload (issue 4): plan validation, pipeline
stages balanced by cost, and the graphs of one tensor-parallel shard of each stage.

Transformers are split Megatron-style (Narayanan et al., SC'21): ``tp`` shards each
layer (column/row-parallel GEMMs, heads split, GQA aware, vocab-parallel embedding and
head; the collectives are inserted by :func:`workloads.build`), ``pp`` cuts the stack of
layers into contiguous stages (the first also holds the embedding, the last the final
norm, LM head and loss) and ``dp`` replicates the pipeline.

Stage balancing (:func:`stage_layers`): the cost of a layer, of the embedding and of
the head + loss are the training FLOPs of graphs built for one micro-batch; the split
minimizes the most expensive stage (exactly: a binary search over the achievable stage
costs with a greedy capacity check, then trimming the most loaded stages). The
interleaved schedule splits the ``pp·v`` virtual stages evenly when they divide the
layers (Megatron-LM), otherwise by cost as above: any ``layers ≥ pp·v``, the remainder of an uneven split taken from the stages that hold the
embedding and the head (Megatron-LM's ``--decoder-first/last-pipeline-num-layers``;
Llama 3 405B: 126 layers on 16 stages, the first and last one layer short).

Other families (CNN, RNN, DLRM, ONNX) have no layer stack: ``pp`` splits their forward
operators, in the stored topological order, into contiguous ranges balanced by training
FLOPs; each stage keeps the backward and optimizer operators of its forward operators.
Tensor parallelism needs a transformer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dse.errors import ConfigError, WorkloadError
from dse.limits import RANGES
from dse.types import Graph, ParallelPlan

__all__ = [
    "Segments",
    "VirtualStage",
    "dense_layers_in",
    "generic_stage_graphs",
    "layer_costs",
    "parse_pipeline_layout",
    "shard_segments",
    "split_segments",
    "stage_graphs",
    "stage_layers",
    "stage_layout",
    "stage_op_ranges",
    "unique_stage_key",
    "validate_plan",
]


def _is_transformer(spec: Any) -> bool:
    return getattr(spec, "family", "") == "transformer"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _valid_tp(spec: Any) -> list[int]:
    return [d for d in _divisors(spec.heads) if spec.ffn % d == 0
            and (spec.kv_heads % d == 0 or d % spec.kv_heads == 0)
            and (not getattr(spec, "experts", 0) or spec.moe_ffn % d == 0)]


def _first_moe(spec: Any) -> int:
    """Index of the first layer of the repeated block (after a MoE model's dense layers)."""
    return int(getattr(spec, "first_k_dense", 0) or 0) if getattr(spec, "experts", 0) else 0


def dense_layers_in(spec: Any, a: int, b: int) -> int:
    """Leading dense layers of a MoE model among layers ``a..b-1`` (0 for dense models)."""
    return max(0, min(b, _first_moe(spec)) - a)


def _recompute_modules_of(spec: Any) -> list[str]:
    """Megatron-Core recompute modules a transformer has (cost_models/recompute.py)."""
    experts = getattr(spec, "experts", 0)
    out = ["core_attn", "layernorm"]
    if getattr(spec, "kv_lora_rank", 0):
        out.append("mla_up_proj")
    if not experts or getattr(spec, "first_k_dense", 0):
        out.append("mlp")
    if experts:
        out += ["moe", "moe_act"] + (["shared_experts"] if spec.shared_experts else [])
    return out


def validate_plan(spec: Any, plan: ParallelPlan, devices: int | None = None, *,
                  seq: int | None = None) -> None:
    """Check that ``plan`` can run ``spec`` on ``devices`` devices.

    Raises :class:`ConfigError` naming the first rule that fails and the valid choices:
    ``tp·cp·pp·dp == devices`` (``cp > 1`` for transformers with fused attention); tp
    divides the attention heads and the MLP width, and divides
    (or is a multiple of) the key/value heads; ``pp <= layers``; the global batch divides
    into ``dp × micro_batch``; the interleaved schedule needs ``pp >= 2``, micro-batches a
    multiple of ``pp`` and layers divisible by ``pp·interleave``; ``interleave > 1`` needs
    the interleaved schedule.

    >>> from workloads.spec import TransformerSpec
    >>> s = TransformerSpec(name="t", model_type="gpt2", layers=8, hidden=512, heads=8,
    ...                     ffn=2048, vocab=1000, max_positions=1024, source="doc")
    >>> validate_plan(s, ParallelPlan(tp=3, global_batch=8), 3)
    Traceback (most recent call last):
    ...
    dse.errors.ConfigError: tp=3 must divide the attention heads (heads=8) of t; valid tp: 1, 2, 4, 8
    """
    n = plan.devices if devices is None else int(devices)
    if plan.devices != n:
        if plan.cp > 1:
            raise ConfigError(f"tp*cp*pp*dp = {plan.tp}*{plan.cp}*{plan.pp}*{plan.dp} = "
                              f"{plan.devices} must equal devices={n}")
        raise ConfigError(f"tp*pp*dp = {plan.tp}*{plan.pp}*{plan.dp} = "
                          f"{plan.tp * plan.pp * plan.dp} must equal devices={n}")
    if plan.cp > 1:
        if not _is_transformer(spec):
            raise ConfigError(f"cp={plan.cp}: context parallelism splits a sequence; "
                              f"{getattr(spec, 'name', 'the workload')} is a "
                              f"{getattr(spec, 'family', '?')} model (use cp=1)")
        if getattr(spec, "attention", "fused") != "fused":
            raise ConfigError(f"cp={plan.cp}: context parallelism (ring attention) needs "
                              "fused attention; use --attention fused")
        s_len = int(seq or getattr(spec, "default_seq", 0) or 0)
        chunks = 2 * plan.cp if getattr(spec, "causal", True) else plan.cp
        if s_len and s_len < chunks:
            raise ConfigError(f"cp={plan.cp}: context parallelism splits each sequence into "
                              f"{'2·cp load-balanced causal chunks' if chunks > plan.cp else 'cp chunks'}"
                              f" ({chunks}); seq={s_len} is shorter: use cp <= "
                              f"{max(s_len * plan.cp // chunks, 1)}")
    ep = getattr(plan, "ep", 1)
    if ep > 1:
        experts = getattr(spec, "experts", 0) if _is_transformer(spec) else 0
        if not experts:
            raise ConfigError(f"ep={ep}: expert parallelism needs a mixture-of-experts model; "
                              f"{getattr(spec, 'name', 'the workload')} has no experts "
                              "(use ep=1)")
        if experts % ep:
            ranks = plan.tp * plan.cp * plan.dp // plan.expert_tp
            valid = [e for e in _divisors(experts) if ranks % e == 0]
            raise ConfigError(f"ep={ep} must divide the {experts} experts of "
                              f"{getattr(spec, 'name', 'the workload')}; valid ep: "
                              f"{', '.join(map(str, valid))}")
    lay = getattr(plan, "layout", ())
    if lay:
        name = getattr(spec, "name", "the workload")
        if not _is_transformer(spec):
            raise ConfigError(f"a pipeline layout places transformer layers; {name} is a "
                              f"{spec.family} model")
        if sum(lay) != spec.layers:
            raise ConfigError(f"the pipeline layout holds {sum(lay)} layers; {name} has "
                              f"{spec.layers}")
    disp = getattr(plan, "dispatcher", "alltoall")
    if disp != "alltoall" and not (_is_transformer(spec) and getattr(spec, "experts", 0)):
        raise ConfigError(f"dispatcher={disp}: {getattr(spec, 'name', 'the workload')} has "
                          "no experts to dispatch to; the dispatcher applies to "
                          "mixture-of-experts models only (use alltoall)")
    if disp != "alltoall" and plan.ep * plan.tp // plan.expert_tp == 1:
        raise ConfigError(f"dispatcher={disp}: the plan has no expert-parallel all-to-all "
                          "(every expert is on every rank: ep 1); the dispatcher applies "
                          "with --ep > 1")
    mods = getattr(plan, "recompute_modules", ())
    if mods:
        name = getattr(spec, "name", "the workload")
        if not _is_transformer(spec):
            raise ConfigError(f"recompute modules {','.join(mods)}: {name} is not a "
                              "transformer; use --recompute none or full")
        has = _recompute_modules_of(spec)
        missing = [m for m in mods if m not in has]
        if missing:
            raise ConfigError(f"recompute modules {','.join(missing)}: {name} has no such "
                              f"part; its modules: {', '.join(has)}")
    if plan.global_batch % (plan.dp * plan.micro_batch):
        raise ConfigError(f"global_batch={plan.global_batch} must be divisible by "
                          f"dp*micro_batch = {plan.dp}*{plan.micro_batch}")
    if plan.interleave > 1 and plan.schedule != "interleaved":
        raise ConfigError(f"interleave={plan.interleave} needs schedule='interleaved' "
                          f"(got schedule={plan.schedule!r})")
    name = getattr(spec, "name", "the workload")
    if _is_transformer(spec):
        valid = ", ".join(map(str, _valid_tp(spec)))
        if spec.heads % plan.tp:
            raise ConfigError(f"tp={plan.tp} must divide the attention heads "
                              f"(heads={spec.heads}) of {name}; valid tp: {valid}")
        if spec.ffn % plan.tp:
            raise ConfigError(f"tp={plan.tp} must divide the MLP width (ffn={spec.ffn}) of "
                              f"{name}; valid tp: {valid}")
        if (getattr(spec, "experts", 0) and plan.tp > 1 and plan.expert_tp == 1
                and not plan.sequence_parallel):
            raise ConfigError(f"etp=1 (experts not split over tp={plan.tp}) needs sequence "
                              "parallelism (Megatron-Core's rule for MoE with tensor "
                              "parallelism); add --sequence-parallel")
        if getattr(spec, "experts", 0) and spec.moe_ffn % plan.expert_tp:
            raise ConfigError(f"tp={plan.tp} must divide the expert width "
                              f"(moe_ffn={spec.moe_ffn}) of {name}; valid tp: {valid}")
        if spec.kv_heads % plan.tp and plan.tp % spec.kv_heads:
            raise ConfigError(f"tp={plan.tp} must divide the key/value heads "
                              f"(kv_heads={spec.kv_heads}) of {name} or be a multiple of "
                              f"them (replicated kv heads); valid tp: {valid}")
        if plan.pp > spec.layers:
            raise ConfigError(f"pp={plan.pp} exceeds the {spec.layers} layers of {name}; "
                              f"pp must be <= {spec.layers}")
    else:
        if plan.tp > 1:
            raise ConfigError(f"tp={plan.tp}: tensor parallelism needs a transformer; "
                              f"{name} is a {getattr(spec, 'family', '?')} model (use tp=1)")
    if plan.schedule == "interleaved":
        v, p, m = plan.interleave, plan.pp, plan.micro_batches
        if p < 2:
            raise ConfigError("schedule='interleaved' needs pp >= 2 pipeline stages")
        if m % p:
            raise ConfigError(f"schedule='interleaved' needs the micro-batches per pipeline "
                              f"(global_batch/(dp*micro_batch) = {m}) to be a multiple of "
                              f"pp={p}")
        if _is_transformer(spec) and spec.layers < p * v:
            raise ConfigError(f"schedule='interleaved' needs at least one layer per virtual "
                              f"stage: layers={spec.layers} < pp*interleave = {p}*{v}; valid "
                              f"interleave: 1..{max(spec.layers // p, 1)}")


# --------------------------------------------------------------------------- costs
@lru_cache(maxsize=8192)  # three small floats each; a MoE plan space has ~10^3 shard shapes
def _layer_costs_cached(spec: Any, seq: int, micro_batch: int, tp: int, sp: bool,
                        optimizer: str, cp: int = 1, ep: int = 1,
                        etp: int | None = None) -> tuple[float, float, float]:
    from workloads import build

    k = _first_moe(spec)  # the repeated layer (a MoE model's dense layers cost alike)

    def flop(first: bool, last: bool) -> float:
        g = build(spec, batch=micro_batch, seq=seq, optimizer=optimizer, tp=tp,
                  sequence_parallel=sp, layers=(k, k + 1), first_stage=first,
                  last_stage=last, cp=cp, ep=ep, etp=etp)
        return g.total_flop()

    mid = flop(False, False)
    return mid, flop(True, False) - mid, flop(False, True) - mid


def layer_costs(spec: Any, *, seq: int | None = None, micro_batch: int = 1, tp: int = 1,
                sequence_parallel: bool = False, optimizer: str = "adam", cp: int = 1,
                ep: int = 1, etp: int | None = None) -> tuple[float, float, float]:
    """Training FLOPs of (one layer, the embedding, the head + loss) for one micro-batch
    on one tensor-parallel shard: the costs :func:`stage_layers` balances."""
    s = int(seq or spec.default_seq)
    return _layer_costs_cached(spec, s, int(micro_batch), int(tp), bool(sequence_parallel),
                               optimizer, int(cp), int(ep), etp)


def _balanced_split(n_layers: int, p: int, layer: float, first: float, last: float
                    ) -> list[int]:
    """Layers per stage (each >= 1) minimizing the largest stage cost, where stage cost
    is ``layers·layer`` plus ``first`` on stage 0 and ``last`` on stage p−1."""
    if p == 1:
        return [n_layers]
    extra = [first] + [0.0] * (p - 2) + [last]
    if layer <= 0:
        base = [n_layers // p + (1 if i < n_layers % p else 0) for i in range(p)]
        return base

    def caps(t: float) -> list[int] | None:
        c = [int((t - e) / layer + 1e-9) for e in extra]
        if min(c) < 1 or sum(c) < n_layers:
            return None
        return c

    cands = sorted({k * layer + e for k in range(1, n_layers + 1) for e in set(extra)})
    lo, hi = 0, len(cands) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if caps(cands[mid]) is None:
            lo = mid + 1
        else:
            hi = mid
    counts = caps(cands[lo])
    assert counts is not None
    while sum(counts) > n_layers:  # trim the most loaded stage that can give a layer
        costs = [(counts[i] * layer + extra[i], i) for i in range(p) if counts[i] > 1]
        _, i = max(costs)
        counts[i] -= 1
    return counts


def stage_layers(spec: Any, pp: int, *, interleave: int = 1, seq: int | None = None,
                 micro_batch: int = 1, tp: int = 1, sequence_parallel: bool = False,
                 optimizer: str = "adam",
                 costs: tuple[float, float, float] | None = None,
                 cp: int = 1, ep: int = 1, etp: int | None = None) -> list[tuple[int, int]]:
    """Layer ranges ``(a, b)`` (blocks ``a..b-1``) of the ``pp·interleave`` virtual stages.

    The stages are balanced by cost (:func:`layer_costs`, or ``costs = (layer, embedding,
    head)`` given by the caller, e.g. measured times). With interleaving the ``pp·v``
    virtual stages are equal when ``pp·v`` divides the layers (Megatron-LM's split) and
    balanced by cost otherwise (the stages holding the embedding and the head lighter).

    >>> from workloads.spec import TransformerSpec
    >>> s = TransformerSpec(name="t", model_type="gpt2", layers=10, hidden=64, heads=4,
    ...                     ffn=256, vocab=1000, max_positions=64, source="doc")
    >>> stage_layers(s, 3, costs=(1.0, 0.2, 1.5))
    [(0, 4), (4, 8), (8, 10)]
    """
    if not _is_transformer(spec):
        raise WorkloadError(f"stage_layers needs a transformer; {spec.name} is a "
                            f"{spec.family} model (use stage_op_ranges)")
    n = spec.layers
    v = interleave
    if pp < 1 or v < 1:
        raise ConfigError(f"pp={pp} and interleave={v} must be >= 1")
    if pp * v > n:
        raise ConfigError(f"pp*interleave = {pp}*{v} exceeds the {n} layers of {spec.name}")
    if costs is None:
        costs = layer_costs(spec, seq=seq, micro_batch=micro_batch, tp=tp,
                            sequence_parallel=sequence_parallel, optimizer=optimizer, cp=cp,
                            ep=ep, etp=etp)
    if v > 1 and n % (pp * v) == 0:
        k = n // (pp * v)  # Megatron-LM's uniform split of the virtual stages
        return [(i * k, (i + 1) * k) for i in range(pp * v)]
    # the pp·v virtual stages in pipeline order, the embedding on the first and the head +
    # loss on the last, balanced by cost: an uneven interleaved split takes its remainder
    # from the stages that hold the embedding and the head
    counts = _balanced_split(n, pp * v, *costs)
    out, a = [], 0
    for c in counts:
        out.append((a, a + c))
        a += c
    return out


# --------------------------------------------------------------------------- graphs
def stage_op_ranges(graph: Graph, pp: int) -> list[tuple[int, int]]:
    """Contiguous ranges ``[i, j)`` of positions in ``graph``'s list of forward operators
    (stored, topological order) for ``pp`` stages, minimizing the largest stage's training
    FLOPs (each forward operator brings itself, its backward and optimizer operators)."""
    fwd = [i for i, op in enumerate(graph.ops) if op.phase == "fwd"]
    if pp > len(fwd):
        raise ConfigError(f"pp={pp} exceeds the {len(fwd)} forward operators of "
                          f"{graph.name}")
    names = {graph.ops[i].name: k for k, i in enumerate(fwd)}
    cost = [graph.ops[i].total_flop for i in fwd]
    for op in graph.ops:
        if op.phase != "fwd" and op.fwd in names:
            cost[names[op.fwd]] += op.total_flop
    # exact linear-partition DP (Skiena's "painter's partition"): minimize the max range
    n = len(cost)
    pre = [0.0]
    for c in cost:
        pre.append(pre[-1] + c)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(pp + 1)]
    cut = [[0] * (n + 1) for _ in range(pp + 1)]
    best[0][0] = 0.0
    for k in range(1, pp + 1):
        for j in range(k, n - (pp - k) + 1):
            for i in range(k - 1, j):
                val = max(best[k - 1][i], pre[j] - pre[i])
                if val < best[k][j]:
                    best[k][j], cut[k][j] = val, i
    bounds, j = [], n
    for k in range(pp, 0, -1):
        i = cut[k][j]
        bounds.append((i, j))
        j = i
    return list(reversed(bounds))


def _split_graph(graph: Graph, pp: int) -> list[Graph]:
    fwd = [op for op in graph.ops if op.phase == "fwd"]
    fwd_stage: dict[str, int] = {}
    for k, (a, b) in enumerate(stage_op_ranges(graph, pp)):
        for op in fwd[a:b]:
            fwd_stage[op.name] = k
    members: list[list[int]] = [[] for _ in range(pp)]
    for i, op in enumerate(graph.ops):
        key = op.name if op.phase == "fwd" else op.fwd
        owner = fwd_stage.get(key)
        if owner is None:
            # comm ops or ops without a forward owner follow their first predecessor's stage
            preds = graph.pred_indices[i]
            owner = 0
            for pi in preds:
                pk = fwd_stage.get(graph.ops[pi].name if graph.ops[pi].phase == "fwd"
                                   else graph.ops[pi].fwd)
                if pk is not None:
                    owner = pk
                    break
            fwd_stage.setdefault(op.name, owner)
        members[owner].append(i)
    out = []
    for k, idx in enumerate(members):
        keep = {graph.ops[i].name for i in idx}
        ops = tuple(graph.ops[i] for i in idx)
        edges = tuple((a, b) for a, b in graph.edges if a in keep and b in keep)
        out.append(graph.with_ops(ops, edges, stage=k, first_stage=k == 0,
                                  last_stage=k == pp - 1, stage_ops=len(ops)))
    return out


@lru_cache(maxsize=512)
def _transformer_stage(spec: Any, n_layers: int, first: bool, last: bool, seq: int,
                       micro_batch: int, tp: int, sp: bool, optimizer: str,
                       cp: int = 1, ep: int = 1, n_dense: int = 0,
                       etp: int | None = None) -> Graph:
    from workloads import build

    a = _first_moe(spec) - n_dense  # n_dense dense layers, then the repeated ones
    return build(spec, batch=micro_batch, seq=seq, optimizer=optimizer, tp=tp,
                 sequence_parallel=sp, layers=(a, a + n_layers), first_stage=first,
                 last_stage=last, cp=cp, ep=ep, etp=etp)


def _layer_ranges(spec: Any, plan: ParallelPlan, seq: int) -> list[tuple[int, int]]:
    """Layer ranges of the virtual stages: the plan's layout, else balanced by cost."""
    if getattr(plan, "layout", ()):
        bounds = [0]
        for c in plan.layout:
            bounds.append(bounds[-1] + c)
        return list(zip(bounds[:-1], bounds[1:]))
    v = plan.interleave if plan.schedule == "interleaved" else 1
    return stage_layers(spec, plan.pp, interleave=v, seq=seq, micro_batch=plan.micro_batch,
                        tp=plan.tp, sequence_parallel=plan.sequence_parallel,
                        optimizer=plan.optimizer, cp=plan.cp, ep=plan.ep, etp=plan.expert_tp)


def stage_graphs(spec: Any, plan: ParallelPlan, seq: int | None = None, *,
                 devices_per_node: int = 8) -> list[Graph]:
    """Graphs of one tensor-parallel shard of every pipeline stage for one micro-batch
    (a DLRM's tables planned for nodes of ``devices_per_node``).

    One graph per *virtual* stage (``pp·interleave`` of them, in pipeline order); device
    ``i`` runs virtual stages ``i, i + pp, …``. ``meta`` gains ``stage_layers``,
    ``first_stage``, ``last_stage``, ``stage`` (virtual index) and ``device``. Stages
    with the same number of layers and role share their operators (built once, cached).
    """
    validate_plan(spec, plan, seq=seq)
    p, v = plan.pp, (plan.interleave if plan.schedule == "interleaved" else 1)
    if _is_transformer(spec):
        s = int(seq or spec.default_seq)
        ranges = _layer_ranges(spec, plan, s)
        out = []
        last_k = len(ranges) - 1
        for k, (a, b) in enumerate(ranges):
            if a == b:
                raise ConfigError(f"pipeline stage {k} of the layout holds no layer; "
                                  "per-stage graphs need one (the cost model does not)")
            g = _transformer_stage(spec, b - a, k == 0, k == last_k, s, plan.micro_batch,
                                   plan.tp, bool(plan.sequence_parallel and plan.tp > 1),
                                   plan.optimizer, plan.cp, plan.ep,
                                   dense_layers_in(spec, a, b), plan.expert_tp)
            out.append(g.with_ops(g.ops, stage_layers=[a, b], stage=k, device=k % p))
        return out
    if v > 1:
        raise ConfigError(f"the interleaved schedule needs a transformer; {spec.name} is a "
                          f"{spec.family} model")
    return list(_generic_stages(spec, p, plan.micro_batch, seq, plan.optimizer,
                                _embedding_shards(spec, plan), int(devices_per_node)))


def _embedding_shards(spec: Any, plan: ParallelPlan) -> int:
    """Devices a DLRM's embedding tables are sharded over: its data-parallel ranks (the
    MLPs are data parallel, the tables model parallel; :mod:`workloads.dlrm`)."""
    return int(plan.dp) if getattr(spec, "family", "") == "dlrm" else 1


@lru_cache(maxsize=128)
def _generic_stages(spec: Any, p: int, micro_batch: int, seq: int | None,
                    optimizer: str, shards: int = 1, node: int = 8) -> tuple[Graph, ...]:
    from workloads import build

    full = build(spec, batch=micro_batch, seq=seq, optimizer=optimizer,
                 **({"shards": shards, "devices_per_node": node} if shards > 1 else {}))
    if p == 1:
        return (full.with_ops(full.ops, stage=0, device=0, first_stage=True, last_stage=True),)
    return tuple(g.with_ops(g.ops, device=int(g.meta["stage"])) for g in _split_graph(full, p))


def unique_stage_key(graph: Graph) -> tuple[Any, ...]:
    """A key equal for stage graphs with identical operators (same layer count and role)."""
    m = graph.meta
    sl = m.get("stage_layers") or (0, 0)
    return (m.get("name"), int(sl[1]) - int(sl[0]), m.get("dense_layers"),
            bool(m.get("first_stage", True)),
            bool(m.get("last_stage", True)), m.get("stage_ops"), len(graph.ops),
            m.get("stage") if m.get("family") != "transformer" else None)


# --------------------------------------------------------------------------- segments
@dataclass(frozen=True)
class Segments:
    """A tensor-parallel shard's training work for one micro-batch as segments (each a
    training graph with its forward, backward and optimizer operators):

    * ``pre``: the embedding side (on the first pipeline stage);
    * ``block``: one repetition of the repeated layer (``L`` of them on a stage of ``L``
      layers, one after the other);
    * ``post``: final norm, head and loss (on the last stage);
    * ``dense``: one of a mixture-of-experts model's leading dense layers (None otherwise).

    A graph without a repeated block is all ``pre``.
    """

    pre: Graph | None
    block: Graph | None
    post: Graph | None
    dense: Graph | None = None

    def parts(self, *, first: bool, last: bool, layers: int, dense_layers: int = 0
              ) -> list[tuple[str, Graph, float]]:
        """(name, graph, multiplicity) of a stage holding ``layers`` layers, the first
        ``dense_layers`` of them dense layers of a MoE model."""
        out: list[tuple[str, Graph, float]] = []
        if first and self.pre is not None:
            out.append(("pre", self.pre, 1.0))
        if dense_layers > 0 and self.dense is not None:
            out.append(("dense", self.dense, float(dense_layers)))
            layers -= dense_layers
        if layers > 0 and self.block is not None:
            out.append(("block", self.block, float(layers)))
        if last and self.post is not None:
            out.append(("post", self.post, 1.0))
        return out


def split_segments(graph: Graph) -> Segments:
    """Split a one-layer training graph (``layers=(a, a+1)``, first and last stage) into
    its :class:`Segments`.

    Forward operators and forward collectives are placed by their stored position around
    the block (``op.block == "layer"``): before it ``pre``, after it ``post``; backward,
    backward-collective and optimizer operators follow the forward operator they belong
    to (``op.fwd``), else their first placed predecessor. Edges across segments are
    dropped: the segments run one after the other.
    """
    ops = graph.ops
    blk = [i for i, op in enumerate(ops) if op.block in ("layer", "dense_layer")]
    if not blk:
        return Segments(pre=graph, block=None, post=None)
    first_b = min(i for i in blk if ops[i].phase in ("fwd", "comm"))
    seg: dict[str, str] = {}
    for i, op in enumerate(ops):
        if op.block == "layer":
            seg[op.name] = "block"
        elif op.block == "dense_layer":
            seg[op.name] = "dense"
        elif op.phase == "fwd" or (op.phase == "comm" and not op.fwd):
            seg[op.name] = "pre" if i < first_b else "post"
    for i, op in enumerate(ops):
        if op.name in seg:
            continue
        if op.fwd in seg:
            seg[op.name] = seg[op.fwd]
            continue
        owner = next((seg[ops[q].name] for q in graph.pred_indices[i]
                      if ops[q].name in seg), "pre")
        seg[op.name] = owner

    def sub(name: str) -> Graph | None:
        keep = [op for op in ops if seg[op.name] == name]
        if not keep:
            return None
        names = {op.name for op in keep}
        edges = tuple((a, b) for a, b in graph.edges if a in names and b in names)
        return Graph(name=f"{graph.name}.{name}", ops=tuple(keep), edges=edges,
                     meta={**graph.meta, "segment": name})

    return Segments(pre=sub("pre"), block=sub("block"), post=sub("post"), dense=sub("dense"))


_SEGMENTS: dict[tuple[Any, ...], Segments] = {}


def shard_segments(spec: Any, *, micro_batch: int, seq: int, tp: int = 1,
                   sequence_parallel: bool = False, optimizer: str = "adam",
                   cp: int = 1, ep: int = 1, etp: int | None = None) -> Segments:
    """The :class:`Segments` of one tensor-parallel shard of a transformer for one
    micro-batch (built once per argument set and kept: a search reuses them across every
    plan and design)."""
    if not _is_transformer(spec):
        raise WorkloadError(f"shard_segments needs a transformer; {spec.name} is a "
                            f"{spec.family} model (use generic_stage_graphs)")
    sp = bool(sequence_parallel and tp > 1)
    etp = int(tp) if not etp else int(etp)
    key = (spec, int(micro_batch), int(seq), int(tp), sp, optimizer, int(cp), int(ep), etp)
    hit = _SEGMENTS.get(key)
    if hit is None:
        from workloads import build

        k = _first_moe(spec)  # one dense layer of a MoE model, then one repeated layer
        g = build(spec, batch=int(micro_batch), seq=int(seq), optimizer=optimizer, tp=int(tp),
                  sequence_parallel=sp, layers=(max(k - 1, 0), k + 1), first_stage=True,
                  last_stage=True, cp=int(cp), ep=int(ep), etp=etp)
        hit = split_segments(g)
        _SEGMENTS[key] = hit
    return hit


@dataclass(frozen=True)
class VirtualStage:
    """One virtual pipeline stage: ``layers = (a, b)`` (transformer blocks ``a..b-1``),
    whether it holds the embedding (``first``) and the head (``last``); for graphs
    without a layer stack, its own ``graph``."""

    index: int
    layers: tuple[int, int]
    first: bool
    last: bool
    graph: Graph | None = None

    @property
    def n_layers(self) -> int:
        return self.layers[1] - self.layers[0]


_LAYOUT_TOKENS = {"E": "embedding", "t": "layer", "m": "mtp", "L": "loss"}
_LAYOUT_MAX_CHARS = 4 * int(RANGES["layers"].hi)
"""Longest expanded layout: every layer of the largest model (:mod:`dse.limits`) its own
stage (``t|``), with room to spare."""


def parse_pipeline_layout(text: str) -> tuple[tuple[int, ...], dict[str, list[int]]]:
    """Megatron-Core's ``--pipeline-model-parallel-layout`` string: stages split by ``|``,
    ``E`` the embedding, ``t`` a transformer layer, ``m`` a multi-token-prediction layer,
    ``L`` the output head and loss; ``x*n`` repeats a token, ``(…)*n`` a group; ``,`` only
    separates. Returns the layers of each virtual stage and, per other token, the stages
    holding it.

    >>> parse_pipeline_layout("Et|(tt|)*3mL")[0]
    (1, 2, 2, 2, 0)
    """
    src = str(text).replace(" ", "").replace(",", "")

    def expand(s: str, i: int = 0, depth: int = 0) -> tuple[str, int]:
        out = ""
        while i < len(s):
            c = s[i]
            if c == ")":
                if depth == 0:
                    raise ConfigError(f"pipeline layout {text!r}: unmatched ')'")
                return out, i + 1
            if c == "(":
                piece, i = expand(s, i + 1, depth + 1)
            elif c in _LAYOUT_TOKENS or c == "|":
                piece, i = c, i + 1
            else:
                raise ConfigError(f"pipeline layout {text!r}: {c!r} is not a layout token; "
                                  "use E (embedding), t (layer), m (MTP layer), L (loss), "
                                  "| (next stage), x*n and (...)*n")
            if s.startswith("*", i):
                j = i + 1
                while j < len(s) and s[j].isdigit():
                    j += 1
                if j == i + 1:
                    raise ConfigError(f"pipeline layout {text!r}: '*' needs a count")
                count = int(s[i + 1:j]) if j - i <= 8 else _LAYOUT_MAX_CHARS + 1
                if len(piece) * count > _LAYOUT_MAX_CHARS:
                    raise ConfigError(f"pipeline layout {text[:60]!r}: it expands to more "
                                      f"than {_LAYOUT_MAX_CHARS:,} tokens (at most the "
                                      f"{int(RANGES['layers'].hi):,} layers of a model "
                                      "and its stages)")
                piece, i = piece * count, j
            out += piece
            if len(out) > _LAYOUT_MAX_CHARS:
                raise ConfigError(f"pipeline layout {text[:60]!r}: it expands to more than "
                                  f"{_LAYOUT_MAX_CHARS:,} tokens")
        if depth:
            raise ConfigError(f"pipeline layout {text!r}: unmatched '('")
        return out, i

    flat, _ = expand(src)
    for c in "EL":
        if flat.count(c) > 1:
            raise ConfigError(f"pipeline layout {text[:60]!r}: {c} "
                              f"({_LAYOUT_TOKENS[c]}) appears {flat.count(c)} times; a "
                              "model has one")
    stages = flat.split("|")
    where: dict[str, list[int]] = {v: [k for k, st in enumerate(stages) if c in st]
                                   for c, v in _LAYOUT_TOKENS.items() if c != "t"}
    return tuple(st.count("t") for st in stages), where


def stage_layout(spec: Any, plan: ParallelPlan, seq: int | None = None, *,
                 devices_per_node: int = 8) -> list[VirtualStage]:
    """The virtual stages of ``plan`` (``pp·v`` of them in pipeline order; device ``i``
    runs ``i, i + pp, …``): layer ranges of :func:`stage_layers` for transformers, the
    balanced operator ranges of :func:`stage_op_ranges` (with their graphs) otherwise."""
    validate_plan(spec, plan, seq=seq)
    p, v = plan.pp, (plan.interleave if plan.schedule == "interleaved" else 1)
    if _is_transformer(spec):
        ranges = _layer_ranges(spec, plan, int(seq or spec.default_seq))
        last_k = len(ranges) - 1
        return [VirtualStage(index=k, layers=(a, b), first=k == 0, last=k == last_k)
                for k, (a, b) in enumerate(ranges)]
    if v > 1:
        raise ConfigError(f"the interleaved schedule needs a transformer; {spec.name} is a "
                          f"{spec.family} model")
    graphs = generic_stage_graphs(spec, p, plan.micro_batch, seq, plan.optimizer,
                                  shards=_embedding_shards(spec, plan),
                                  devices_per_node=devices_per_node)
    return [VirtualStage(index=k, layers=(0, 0), first=k == 0, last=k == p - 1, graph=g)
            for k, g in enumerate(graphs)]


def generic_stage_graphs(spec: Any, pp: int, micro_batch: int, seq: int | None = None,
                         optimizer: str = "adam", shards: int = 1,
                         devices_per_node: int = 8) -> tuple[Graph, ...]:
    """Stage graphs of a model without a layer stack (CNN, RNN, DLRM, ONNX): ``pp``
    contiguous ranges of its forward operators balanced by training FLOPs (a DLRM's
    embedding tables sharded over ``shards`` data-parallel devices in nodes of
    ``devices_per_node``)."""
    return _generic_stages(spec, int(pp), int(micro_batch), seq, optimizer, int(shards),
                           int(devices_per_node))
