"""Fused attention (FlashAttention-style) on the template: tensor, vector and HBM time.

An ``attention`` operator (:meth:`workloads.builder.ForwardBuilder.attention`) holds, per
head, ``softmax(Q·Kᵀ/√d)·V`` with ``m = s_q``, ``k = d``, ``n = s_kv``, ``batch =
batch·heads`` and ``elements`` = score elements computed (a causal mask skips the blocks
above the diagonal). The kernel is FlashAttention-2 (Dao 2023, Algorithm 1 and §3.1):

* **Tensor cores.** The forward runs the GEMMs ``S = Q·Kᵀ`` (``s_q×d·d×s_kv``) and
  ``O = P·V`` (``s_q×s_kv·s_kv×d``) per head; the backward recomputes ``S`` and runs
  ``dP = dO·Vᵀ`` (the first shape) and ``dV = Pᵀ·dO``, ``dQ = dS·K``, ``dK = dSᵀ·Q``
  (the second): multiplicities ``(1, 1)`` forward and ``(2, 3)`` backward of the two
  shapes, costed like any batched GEMM on the block's systolic arrays
  (:mod:`cost_models.opcost`), times the fraction of score blocks computed
  (``elements / (s_q·s_kv·batch)``: ½ and a diagonal for causal).
* **Vector cores.** The online softmax (forward) and the recomputed probabilities and
  ``dS`` (backward) cost ``pe_cycles`` per score element (``flash_attn`` keys of
  :mod:`cost_models.vector`) on the block's share of the vector lanes.
* Tensor and vector work of one tile alternate, so their times add (FlashAttention-2 does
  not overlap the softmax with the next GEMM; FlashAttention-3's ping-pong scheduling
  does — Shah et al. 2024 §3.1 — which this model leaves as a stated optimism of FA3 over
  it); the operator's latency is ``max(t_tensor + t_vector, t_hbm)``.
* **HBM.** Q, K, V in and O plus the fp32 log-sum-exp out (the operator's ``bytes_in +
  bytes_out``), plus the re-reads of the streamed operand: the forward's outer loop runs
  over blocks of ``B_r`` query rows and streams K and V once per block (``⌈s_q/B_r⌉ − 1``
  extra passes of ``2·s_kv·d`` elements per head, times the fraction of blocks computed:
  a causal query block streams only the blocks up to the diagonal); the backward's outer
  loop runs over key/value blocks and streams Q, dO (``d`` elements each) and LSE, D
  (fp32) per row once per block. The re-reads stay on chip when the streamed operands of
  the heads in flight fit in the block's share of the global buffer (the cores take
  consecutive blocks of the same head, FlashAttention's grid order: ``⌈cores / blocks
  per head⌉`` heads at once), as the K and V of a head stay in a GPU's L2. ``B_r`` (= ``B_c``) is the largest tile whose Q, K and V blocks (``dtype``)
  and fp32 O accumulator fit in one core's share of the block's on-chip SRAM
  (``sram_per_core + global_buffer·2^-a / cores``): ``B_r = ⌊M / (d·(3·dtype + 4))⌋``,
  at least 1 and at most ``s``. (The HBM traffic is ``Θ(s²d²/M)``, Dao et al. 2022,
  Theorem 2.)

Energy: MACs · E_MAC + vector lane-cycles · E_vector + HBM bytes · E_HBM + the score tile
written and read once on chip (``elements · 4 B · 2``) · E_SRAM.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ACC_BYTES",
    "BWD_MODEL_FLOP_FRACTION",
    "BWD_MULT",
    "FWD_MULT",
    "hbm_bytes",
    "hbm_bytes_scalar",
    "model_flop",
    "multiplicity",
    "tile_rows",
    "tile_rows_scalar",
]

FWD_MULT = (1, 1)
"""GEMMs of the two shapes ``(s_q, d, s_kv)`` and ``(s_q, s_kv, d)`` in the forward."""
BWD_MULT = (2, 3)
"""... and in the backward (recomputed ``S``, ``dP``; ``dV``, ``dQ``, ``dK``)."""
ACC_BYTES = 4
"""fp32 output accumulator and row statistics (log-sum-exp, ``D``)."""
BWD_MODEL_FLOP_FRACTION = 0.8
"""Model FLOPs of the fused backward: ``dP``, ``dV``, ``dQ``, ``dK`` (8 of its 10 FLOPs per
head dimension and score); the recomputed ``S = Q·Kᵀ`` is recomputation, which MFU does
not count (Korthikanti et al. 2022 §6; Chowdhery et al. 2022, App. B)."""


def model_flop(op: Any) -> float:
    """Model FLOPs of one execution of an attention operator (recomputation excluded)."""
    return float(op.flop) * (1.0 if op.phase == "fwd" else BWD_MODEL_FLOP_FRACTION)


def multiplicity(phase: str) -> tuple[int, int]:
    """(first shape, second shape) GEMM counts of an attention operator of ``phase``."""
    return FWD_MULT if phase == "fwd" else BWD_MULT


def tile_rows(head_dim: Any, sram_core_bytes: Any, dtype_bytes: Any, seq: Any) -> np.ndarray:
    """``B_r``: rows of a query (forward) or key/value (backward) block that fit with the
    other blocks in one core's SRAM share (module docstring). Broadcasts."""
    d = np.asarray(head_dim, dtype=np.float64)
    per_row = d * (3.0 * np.asarray(dtype_bytes, dtype=np.float64) + ACC_BYTES)
    br = np.floor(np.asarray(sram_core_bytes, dtype=np.float64) / per_row)
    return np.clip(br, 1.0, np.maximum(np.asarray(seq, dtype=np.float64), 1.0))


def hbm_bytes(m: Any, k: Any, n: Any, batch: Any, bytes_io: Any, fwd: Any, dtype_bytes: Any,
              br: Any, frac: Any, cores: Any, buffer_bytes: Any) -> np.ndarray:
    """HBM bytes of attention operators (module docstring). Broadcasts; ``fwd`` bool,
    ``frac`` the fraction of score blocks computed, ``cores`` the block's tensor cores,
    ``buffer_bytes`` its share of the global buffer."""
    m, k, n, b = (np.asarray(x, dtype=np.float64) for x in (m, k, n, batch))
    db = np.asarray(dtype_bytes, dtype=np.float64)
    br = np.asarray(br, dtype=np.float64)
    fwd = np.asarray(fwd, dtype=bool)
    outer = np.where(fwd, m, n)
    blocks = np.ceil(outer / br)                       # outer-loop blocks per head
    streamed = np.where(fwd, 2.0 * n * k * db,          # K, V of a head (forward)
                        m * (2.0 * k * db + 2.0 * ACC_BYTES))   # Q, dO, LSE, D (backward)
    in_flight = np.ceil(np.asarray(cores, dtype=np.float64) / blocks)   # heads at once
    on_chip = in_flight * streamed <= np.asarray(buffer_bytes, dtype=np.float64)
    extra = np.where(on_chip, 0.0, (blocks - 1.0) * b * streamed * np.asarray(frac))
    return np.asarray(bytes_io, dtype=np.float64) + extra


def tile_rows_scalar(head_dim: int, sram_core_bytes: float, dtype_bytes: float,
                     seq: int) -> int:
    """Plain-Python :func:`tile_rows` (the scalar reference)."""
    br = math.floor(sram_core_bytes / (head_dim * (3.0 * dtype_bytes + ACC_BYTES)))
    return int(min(max(br, 1), max(seq, 1)))


def hbm_bytes_scalar(m: int, k: int, n: int, batch: int, bytes_io: float, fwd: bool,
                     dtype_bytes: float, br: int, frac: float, cores: int,
                     buffer_bytes: float) -> float:
    """Plain-Python :func:`hbm_bytes` of one operator."""
    blocks = math.ceil((m if fwd else n) / br)
    streamed = (2.0 * n * k * dtype_bytes if fwd
                else m * (2.0 * k * dtype_bytes + 2.0 * ACC_BYTES))
    if math.ceil(cores / blocks) * streamed <= buffer_bytes:
        return bytes_io
    return bytes_io + (blocks - 1) * batch * streamed * frac
