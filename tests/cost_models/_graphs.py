"""Random training-like graphs and designs for the cost-model tests (shared helpers)."""

from __future__ import annotations

import numpy as np

from dse.types import Graph, HardwareConfig, Operator

VECTOR_KINDS = ("elementwise", "activation", "softmax", "norm", "loss", "optimizer",
                "embedding_gather", "embedding_scatter", "pool", "reduction")
VECTOR_KEYS = {"elementwise": "add", "activation": "gelu", "softmax": "softmax",
               "norm": "layernorm", "loss": "cross_entropy", "optimizer": "adam",
               "embedding_gather": "", "embedding_scatter": "embedding_scatter",
               "pool": "maxpool", "reduction": "mystery_reduce"}


def random_graph(rng: np.random.Generator, n_ops: int = 12, *, comm: bool = True,
                 counts: bool = True) -> Graph:
    """A random DAG of GEMMs, fused attention, vector ops and (optionally) collectives, stored
    topologically."""
    ops = []
    for i in range(n_ops):
        r = rng.random()
        count = int(rng.choice([1, 1, 2, 4, 28])) if counts else 1
        if r < 0.45:
            m, k, n = (int(x) for x in rng.integers(1, 300, 3))
            b = int(rng.choice([1, 1, 2, 3, 16]))
            ops.append(Operator(name=f"g{i}", kind="gemm", phase=str(rng.choice(
                ["fwd", "bwd_data", "bwd_weight"])), m=m, k=k, n=n, batch=b,
                flop=2.0 * m * k * n * b, bytes_in=2.0 * m * k * b, bytes_out=2.0 * m * n * b,
                bytes_weight=2.0 * k * n, count=count))
        elif comm and r < 0.55:
            ops.append(Operator(name=f"c{i}", kind="collective", phase="comm",
                                collective="all_reduce", group="tp",
                                comm_bytes=float(rng.integers(1, 1 << 22)), count=count))
        elif r > 0.93:  # fused attention (cost_models/attention.py)
            s, d = int(rng.integers(1, 600)), int(rng.choice([16, 64, 128, 256]))
            b = int(rng.choice([1, 2, 12, 64]))
            causal = bool(rng.random() < 0.5)
            e = b * s * (s + 1) // 2 if causal else b * s * s
            fwd = bool(rng.random() < 0.5)
            ops.append(Operator(name=f"a{i}", kind="attention", phase="fwd" if fwd else
                                "bwd_data", m=s, k=d, n=s, batch=b, elements=e,
                                vector_op="flash_attn" if fwd else "flash_attn_bwd",
                                flop=(4.0 if fwd else 10.0) * d * e,
                                bytes_in=6.0 * b * s * d, bytes_out=2.0 * b * s * d + 4.0 * b * s,
                                count=count))
        else:
            kind = str(rng.choice(VECTOR_KINDS))
            e = int(rng.integers(1, 1 << 20))
            ops.append(Operator(name=f"v{i}", kind=kind, phase=str(rng.choice(
                ["fwd", "bwd_data", "optimizer"])), vector_op=VECTOR_KEYS[kind], elements=e,
                flop=float(e * int(rng.integers(1, 10))), bytes_in=2.0 * e * rng.integers(1, 3),
                bytes_out=2.0 * e, bytes_weight=float(rng.integers(0, 2)) * 8.0 * e,
                count=count))
    edges = []
    for j in range(1, n_ops):
        for i in rng.choice(j, size=min(j, int(rng.integers(1, 3))), replace=False):
            edges.append((ops[int(i)].name, ops[j].name))
    return Graph(name="random", ops=tuple(ops), edges=tuple(edges))


def random_hw(rng: np.random.Generator, name: str = "hw") -> HardwareConfig:
    """A random valid design of the template."""
    return HardwareConfig(
        name=name,
        tensor_cores=int(rng.choice([1, 2, 3, 4, 8, 16, 64])),
        array_rows=int(rng.choice([8, 16, 32, 64, 128, 256])),
        array_cols=int(rng.choice([8, 16, 32, 64, 128, 256])),
        dataflow=str(rng.choice(["os", "ws", "is"])),
        dtype=str(rng.choice(["bf16", "int8", "fp32", "fp8"])),
        vector_cores=int(rng.choice([1, 2, 4, 16])),
        vector_lanes=int(rng.choice([8, 32, 128, 1024])),
        freq_hz=float(rng.uniform(0.5e9, 2e9)),
        hbm_bw_bytes_per_s=float(rng.uniform(1e10, 3e12)),
        hbm_bytes=float(rng.uniform(1e9, 1e11)),
        sram_per_core_bytes=float(2 ** int(rng.integers(12, 24))),
        global_buffer_bytes=float(rng.choice([0.0, 2.0 ** int(rng.integers(16, 28))])),
        global_buffer_bw_bytes_per_cycle=float(rng.choice([64, 512, 4096])),
        hbm_stacks=int(rng.integers(1, 7)),
        link_count=int(rng.integers(0, 19)),
        link_bw_bytes_per_s=float(rng.uniform(0, 1e11)),
        tech_node_nm=float(rng.choice([4, 5, 7, 12, 16, 28])),
    )
