"""The design space of the accelerator template (brief §3, ``docs/sources.md`` M2).

A :class:`DesignSpace` is a grid over the fields of a template
:class:`~dse.types.HardwareConfig`. Every searched field takes one of an ordered tuple
of values (powers of two like Phaze, with core counts of 3·2^k between them; the HBM stack
count and the dataflow are listed); the
other fields (clock, datatype, link bandwidth, global-buffer bandwidth, node) stay those
of the template. A design is a vector of **indices**, one per parameter; a batch of
designs is an ``(D, P)`` int array, turned into a :class:`cost_models.designs.DesignBatch`
by :meth:`DesignSpace.designs`.

HBM: ``hbm_stacks`` sets both the bandwidth and the capacity, ``stacks × per-stack``
of the space's :data:`HBM_GENERATIONS` entry.

The **default space** (:func:`default_space`) — see ``docs/search.md`` for the
derivation of its size:

=====================  ================================  ==========================
parameter              values                            why
=====================  ================================  ==========================
tensor_cores           1, 2, 3, 4, 6, 8, …, 96, 128      Phaze ``num_tc`` powers of 2,
                                                         and 3·2^k between them
array_rows, _cols      32, 64, 128, 256                  Phaze width/depth 2–256; < 32
                                                         never wins a training GEMM
dataflow               ws, os                            SCALE-Sim's; ``is`` ≡ ``ws``
                                                         with the operands swapped
vector_cores           1, 2, 4, 8, 16                    Phaze ``num_vc``
vector_lanes           128, 256, 512, 1024               TPUv4 VPU: 128 lanes × 8
sram_per_core_bytes    0.5, 1, 2, 4, 8 MiB               tile buffers of the cores
global_buffer_bytes    8, 32, 128 MiB                    Phaze GLB 2–128 MiB
hbm_stacks             1, 2, 3, 4, 5, 6, 8               TPUv4 4, A100/H100 5
link_count             2, 4, 6 (``devices > 1`` only)    TPUv4 3D torus uses 6
=====================  ================================  ==========================

Clock is not searched: without a voltage–frequency model a faster clock only costs
power, so a search would always take the top value (Phaze fixes it too, docs/sources.md M2).

>>> s = DesignSpace(template=TEMPLATE_TPUV4_LIKE, params=(
...     Param(name="tensor_cores", values=(1, 2, 4)),
...     Param(name="dataflow", values=("ws", "os"))))
>>> s.size
6
>>> s.index_of({"tensor_cores": 4, "dataflow": "os"}).tolist()
[2, 1]
>>> s.neighbors(np.array([0, 0])).tolist()
[[1, 0], [0, 1]]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.errors import ConfigError
from dse.types import DATAFLOWS, HardwareConfig
from dse.units import GB, GIB, MIB

__all__ = [
    "HBM_GENERATIONS",
    "SEARCHABLE_FIELDS",
    "TEMPLATE_TPUV4_LIKE",
    "DesignSpace",
    "HBMGeneration",
    "Param",
    "default_space",
]


@dataclass(frozen=True, kw_only=True)
class HBMGeneration:
    """Bandwidth and capacity of one HBM stack (1024-bit interface)."""

    name: str
    bw_bytes_per_s_per_stack: float
    bytes_per_stack: float
    source: str

    def __post_init__(self) -> None:
        for f in ("bw_bytes_per_s_per_stack", "bytes_per_stack"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"HBMGeneration[{self.name}].{f}={v!r} must be > 0")


HBM_GENERATIONS: dict[str, HBMGeneration] = {
    "hbm2": HBMGeneration(
        name="hbm2", bw_bytes_per_s_per_stack=256 * GB, bytes_per_stack=8 * GIB,
        source="bandwidth: 2 Gb/s x 1024 bit = 256 GB/s (docs/sources.md S2 [S]); "
               "capacity: TPUv3 32 GiB over 4 stacks (900 GB/s / 256 GB/s -> 4) [D]"),
    "hbm2e": HBMGeneration(
        name="hbm2e", bw_bytes_per_s_per_stack=410 * GB, bytes_per_stack=16 * GB,
        source="bandwidth: 3.2 Gb/s x 1024 bit = 410 GB/s (docs/sources.md S2 [S]); "
               "capacity: A100 80 GB at 2039 GB/s = 5 stacks of 3.2 Gb/s (2039/410 -> 5) "
               "-> 16 GB per stack [D]"),
    "hbm3": HBMGeneration(
        name="hbm3", bw_bytes_per_s_per_stack=819 * GB, bytes_per_stack=16 * GB,
        source="bandwidth: 6.4 Gb/s x 1024 bit = 819 GB/s, JESD238 (docs/sources.md "
               "S2 [S]); capacity: H100 80 GB HBM3 in 5 stacks (S1.2) -> 16 GB [D]"),
}
"""Per-stack HBM numbers with their sources (``docs/sources.md`` S1–S2)."""

SEARCHABLE_FIELDS: tuple[str, ...] = (
    "tensor_cores", "array_rows", "array_cols", "dataflow", "vector_cores", "vector_lanes",
    "sram_per_core_bytes", "global_buffer_bytes", "hbm_stacks", "link_count", "freq_hz",
)
"""HardwareConfig fields a space may search. ``hbm_stacks`` also sets
``hbm_bw_bytes_per_s`` and ``hbm_bytes`` through the HBM generation."""

_INT_FIELDS = ("tensor_cores", "array_rows", "array_cols", "vector_cores", "vector_lanes",
               "hbm_stacks", "link_count", "single_stream", "weight_double_buffer")

TEMPLATE_TPUV4_LIKE = HardwareConfig(
    name="template", tensor_cores=8, array_rows=128, array_cols=128, vector_cores=2,
    vector_lanes=128, freq_hz=1.05e9, hbm_bw_bytes_per_s=4 * 410 * GB, hbm_bytes=4 * 16 * GB,
    dataflow="ws", dtype="bf16", sram_per_core_bytes=2 * MIB, global_buffer_bytes=32 * MIB,
    hbm_stacks=4, link_count=6, link_bw_bytes_per_s=45e9, tech_node_nm=7.0)
"""Fallback template (fields the space does not search): TPUv4's 8 MXUs of 128×128 at
1.05 GHz (docs/sources.md M2's ``A_max`` config; clock [U] and ICI 4.5e10 B/s per link one-way,
6 links of the 3D torus, docs/sources.md S1.1), bf16, 7 nm. :func:`default_space`
prefers the ``tpuv4`` preset's hardware when cost_models.presets has it."""


@dataclass(frozen=True, kw_only=True)
class Param:
    """One searched field and its ordered values (increasing, except ``dataflow``)."""

    name: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        o = f"Param[{self.name}]"
        if self.name not in SEARCHABLE_FIELDS:
            raise ConfigError(f"{o}: {self.name!r} is not a searchable field; valid: "
                              f"{', '.join(SEARCHABLE_FIELDS)}")
        vals = tuple(self.values)
        if not vals:
            raise ConfigError(f"{o}.values is empty")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"{o}.values={vals!r} has duplicates")
        if self.name == "dataflow":
            bad = [v for v in vals if v not in DATAFLOWS]
            if bad:
                raise ConfigError(f"{o}.values contains {bad[0]!r}; valid: {', '.join(DATAFLOWS)}")
        else:
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
                    raise ConfigError(f"{o}.values contains {v!r}; numbers expected")
                if self.name in _INT_FIELDS and int(v) != v:
                    raise ConfigError(f"{o}.values contains {v!r}; integers expected")
                if v < 0 or (v == 0 and self.name != "link_count"):
                    raise ConfigError(f"{o}.values contains {v!r}; must be > 0")
            if list(vals) != sorted(vals):
                raise ConfigError(f"{o}.values={vals!r} must be increasing")
            if self.name in _INT_FIELDS:
                vals = tuple(int(v) for v in vals)
            else:
                vals = tuple(float(v) for v in vals)
        object.__setattr__(self, "values", vals)

    @property
    def categorical(self) -> bool:
        return self.name == "dataflow"

    @property
    def pow2(self) -> bool:
        """All values are powers of two (Optuna then searches log2 of the value)."""
        if self.categorical:
            return False
        return all(v > 0 and float(v) == 2.0 ** round(math.log2(v)) for v in self.values)


@dataclass(frozen=True, kw_only=True)
class DesignSpace:
    """A grid of designs around ``template`` (see module docstring)."""

    template: HardwareConfig
    params: tuple[Param, ...]
    hbm: HBMGeneration = field(default_factory=lambda: HBM_GENERATIONS["hbm2e"])
    name: str = "space"

    def __post_init__(self) -> None:
        ps = tuple(self.params)
        names = [p.name for p in ps]
        if len(set(names)) != len(names):
            raise ConfigError(f"DesignSpace[{self.name}].params names a field twice: {names}")
        if not ps:
            raise ConfigError(f"DesignSpace[{self.name}].params is empty")
        object.__setattr__(self, "params", ps)
        self.__dict__["_names"] = tuple(names)  # asked for tens of thousands of times

    # -- shape ------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return self.__dict__["_names"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(p.values) for p in self.params)

    @property
    def size(self) -> int:
        """Designs in the grid (before the area/power filter)."""
        return int(np.prod(self.shape, dtype=np.int64))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ConfigError(f"DesignSpace[{self.name}] has no parameter {name!r}; "
                          f"valid: {', '.join(self.names)}")

    # -- indices <-> values -------------------------------------------------------------
    def check_indices(self, idx: np.ndarray) -> np.ndarray:
        a = np.asarray(idx, dtype=np.int64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != len(self.params):
            raise ConfigError(f"design indices must have shape (D, {len(self.params)}), "
                              f"got {np.shape(idx)}")
        hi = self._hi()
        if a.size and (a.min() < 0 or (a >= hi).any()):
            raise ConfigError(f"design indices out of range for space {self.name!r} "
                              f"(shape {self.shape})")
        return a

    def _hi(self) -> np.ndarray:
        hi = self.__dict__.get("_hi_arr")
        if hi is None:
            hi = np.asarray(self.shape, dtype=np.int64)
            self.__dict__["_hi_arr"] = hi
        return hi

    def _strides(self) -> np.ndarray:
        st = self.__dict__.get("_strides_arr")
        if st is None:
            st = np.array([int(np.prod(self.shape[j + 1:], dtype=np.int64))
                           for j in range(len(self.shape))], dtype=np.int64)
            self.__dict__["_strides_arr"] = st
        return st

    def flat(self, idx: np.ndarray) -> np.ndarray:
        """Grid position of each design (row-major, as ``np.ravel_multi_index``)."""
        a = self.check_indices(idx)
        return a @ self._strides()

    def unflat(self, flat: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(np.asarray(flat, dtype=np.int64), self.shape),
                        axis=1).astype(np.int64)

    def values(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Column arrays of the searched values for ``(D, P)`` indices."""
        a = self.check_indices(idx)
        out: dict[str, np.ndarray] = {}
        for j, p in enumerate(self.params):
            vals = np.asarray(p.values, dtype=object if p.categorical else None)
            out[p.name] = vals[a[:, j]]
        return out

    def fields(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """One array per HardwareConfig field (template values broadcast), with the HBM
        bandwidth and capacity derived from ``hbm_stacks``."""
        a = self.check_indices(idx)
        d = a.shape[0]
        base = {f.name: getattr(self.template, f.name)
                for f in dataclasses.fields(HardwareConfig) if f.name != "name"}
        out: dict[str, np.ndarray] = {}
        for k, v in base.items():
            if isinstance(v, str):
                out[k] = np.full(d, v, dtype=object)
            else:
                out[k] = np.full(d, v, dtype=np.int64 if k in _INT_FIELDS else np.float64)
        out.update(self.values(a))
        if "hbm_stacks" in self.names:
            stacks = out["hbm_stacks"].astype(np.float64)
            out["hbm_bw_bytes_per_s"] = stacks * self.hbm.bw_bytes_per_s_per_stack
            out["hbm_bytes"] = stacks * self.hbm.bytes_per_stack
        for k in _INT_FIELDS:
            out[k] = out[k].astype(np.int64)
        return out

    def config(self, idx: Sequence[int] | np.ndarray, name: str | None = None) -> HardwareConfig:
        """The HardwareConfig of one design."""
        a = np.asarray(idx)
        f = self.fields(a[None, :] if a.ndim == 1 else a)
        kw: dict[str, Any] = {}
        for k, v in f.items():
            x = v[0]
            kw[k] = int(x) if k in _INT_FIELDS else (str(x) if isinstance(x, str) else float(x))
        return HardwareConfig(name=name or self.label(np.asarray(idx).reshape(-1)), **kw)

    def designs(self, idx: np.ndarray) -> Any:
        """A :class:`cost_models.designs.DesignBatch` for ``(D, P)`` indices."""
        from cost_models.designs import DesignBatch

        return _make_batch(DesignBatch, self.fields(idx))

    def label(self, idx: np.ndarray) -> str:
        """Short name of one design, e.g. ``8x128x128-ws-v2x128-s2M-g32M-h4-l6``."""
        v = {k: a[0] for k, a in self.values(np.asarray(idx).reshape(1, -1)).items()}
        t = self.template

        def g(k: str) -> Any:
            return v.get(k, getattr(t, k))

        return (f"{g('tensor_cores')}x{g('array_rows')}x{g('array_cols')}-{g('dataflow')}"
                f"-v{g('vector_cores')}x{g('vector_lanes')}"
                f"-s{_mib(g('sram_per_core_bytes'))}-g{_mib(g('global_buffer_bytes'))}"
                f"-h{g('hbm_stacks')}-l{g('link_count')}")

    def labels(self, idx: np.ndarray) -> list[str]:
        """:meth:`label` of every design of ``idx`` (one pass over the columns)."""
        v = self.values(idx)
        t = self.template
        n = len(np.asarray(idx))

        def col(k: str) -> list[Any]:
            return v[k].tolist() if k in v else [getattr(t, k)] * n

        tc, r, c, df = col("tensor_cores"), col("array_rows"), col("array_cols"), col("dataflow")
        vc, vl = col("vector_cores"), col("vector_lanes")
        sc, gb = col("sram_per_core_bytes"), col("global_buffer_bytes")
        hb, lk = col("hbm_stacks"), col("link_count")
        return [f"{tc[i]}x{r[i]}x{c[i]}-{df[i]}-v{vc[i]}x{vl[i]}-s{_mib(sc[i])}"
                f"-g{_mib(gb[i])}-h{hb[i]}-l{lk[i]}" for i in range(n)]

    def index_of(self, values: Mapping[str, Any] | HardwareConfig, *, snap: bool = False
                 ) -> np.ndarray:
        """Indices of a design given by field values (a mapping or a HardwareConfig).

        Unsearched parameters missing from ``values`` take the template's value. With
        ``snap`` a value not on the grid maps to the nearest one (log scale); otherwise
        it raises ConfigError naming the valid values.
        """
        if isinstance(values, HardwareConfig):
            values = dataclasses.asdict(values)
        out = np.zeros(len(self.params), dtype=np.int64)
        for j, p in enumerate(self.params):
            v = values.get(p.name, getattr(self.template, p.name))
            if v in p.values:
                out[j] = p.values.index(v)
            elif snap and not p.categorical:
                lv = np.log(np.maximum(np.asarray(p.values, float), 1e-12))
                out[j] = int(np.argmin(np.abs(lv - math.log(max(float(v), 1e-12)))))
            elif snap:
                out[j] = 0
            else:
                raise ConfigError(f"{p.name}={v!r} is not in the space; valid: "
                                  f"{', '.join(map(_fmt, p.values))}")
        return out

    # -- enumeration and sampling -------------------------------------------------------
    def enumerate(self, chunk: int = 65536) -> Iterator[np.ndarray]:
        """All designs as ``(≤chunk, P)`` index arrays, in grid order."""
        for lo in range(0, self.size, chunk):
            yield self.unflat(np.arange(lo, min(self.size, lo + chunk)))

    def all_indices(self) -> np.ndarray:
        return self.unflat(np.arange(self.size))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` designs drawn uniformly (with replacement) from the grid."""
        if n < 0:
            raise ConfigError(f"sample: n={n!r} must be >= 0")
        return np.stack([rng.integers(0, k, size=n) for k in self.shape], axis=1
                        ).astype(np.int64)

    def neighbors(self, idx: np.ndarray) -> np.ndarray:
        """Designs one grid step away in one parameter (dataflow: every other choice)."""
        a = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = []
        for j, p in enumerate(self.params):
            if p.categorical:
                steps = [k - a[j] for k in range(len(p.values)) if k != a[j]]
            else:
                steps = [s for s in (1, -1) if 0 <= a[j] + s < len(p.values)]
            for s in steps:
                b = a.copy()
                b[j] += s
                out.append(b)
        return np.array(out, dtype=np.int64).reshape(-1, len(self.params))

    # -- constraints -------------------------------------------------------------------
    def area_tdp(self, idx: np.ndarray, tech: Any) -> tuple[np.ndarray, np.ndarray]:
        """Total area (mm²) and TDP (W) of each design, from cost_models; looked up in a
        table over the grid, filled the first time a design is asked for (searches ask
        for the area of the same neighbours thousands of times)."""
        a = self.check_indices(idx)
        flat = a @ self._strides()
        table = self._area_table(tech)
        if isinstance(table, dict):
            miss_l = [i for i, f in enumerate(flat.tolist()) if f not in table]
            if miss_l:
                ar, tp = self._area_tdp_raw(a[miss_l], tech)
                for k, i in enumerate(miss_l):
                    table[int(flat[i])] = (float(ar[k]), float(tp[k]))
            vals = np.array([table[int(f)] for f in flat.tolist()], dtype=np.float64)
            vals = vals.reshape(-1, 2)
            return vals[:, 0].copy(), vals[:, 1].copy()
        miss = np.isnan(table[0, flat])
        if miss.any():
            # searches walk the grid one step at a time: fill the missed designs'
            # one-step neighbourhoods too, in the same vectorized call
            ff = self._with_neighbours(a[miss])
            ff = ff[np.isnan(table[0, ff])]
            ar, tp = self._area_tdp_raw(self.unflat(ff), tech)
            table[0, ff] = ar
            table[1, ff] = tp
        return table[0, flat].copy(), table[1, flat].copy()

    def _pair_steps(self) -> np.ndarray:
        """Offsets of every design within one step in up to two parameters (cached)."""
        st = self.__dict__.get("_pair_steps_arr")
        if st is None:
            n = len(self.params)
            single = np.concatenate([np.zeros((1, n), np.int64), np.eye(n, dtype=np.int64),
                                     -np.eye(n, dtype=np.int64)])
            st = np.unique((single[:, None, :] + single[None, :, :]).reshape(-1, n), axis=0)
            self.__dict__["_pair_steps_arr"] = st
        return st

    def _with_neighbours(self, a: np.ndarray, cap: int = 8192) -> np.ndarray:
        """Grid positions of ``a`` and of every design within one step of one of them in
        up to two parameters (just ``a`` beyond ``cap`` rows; duplicates removed)."""
        steps = self._pair_steps()
        if len(a) * len(steps) > cap:
            return np.unique(a @ self._strides())
        b = (a[:, None, :] + steps[None, :, :]).reshape(-1, a.shape[1])
        b = b[((b >= 0) & (b < self._hi())).all(axis=1)]
        return np.unique(b @ self._strides())

    def _area_table(self, tech: Any) -> Any:
        store = self.__dict__.setdefault("_area_tables", {})
        hit = store.get(id(tech))
        if hit is None or hit[0] is not tech:
            table: Any = (np.full((2, self.size), np.nan) if self.size <= 1 << 22 else {})
            hit = (tech, table)
            store[id(tech)] = hit
        return hit[1]

    def _area_tdp_raw(self, idx: np.ndarray, tech: Any) -> tuple[np.ndarray, np.ndarray]:
        from cost_models.area import area_mm2
        from cost_models.power import tdp_w

        batch = self.designs(idx)
        return (np.asarray(area_mm2(batch, tech)["total"], dtype=np.float64),
                np.asarray(tdp_w(batch, tech)["total"], dtype=np.float64))

    def feasible(self, idx: np.ndarray, tech: Any, area_mm2: float,
                 power_w: float | None = None) -> np.ndarray:
        """Mask of designs within the area (mm²) and, if given, TDP (W) budgets."""
        area, tdp = self.area_tdp(idx, tech)
        ok = area <= area_mm2
        if power_w is not None:
            ok &= tdp <= power_w
        return ok

    def feasible_indices(self, tech: Any, area_mm2: float, power_w: float | None = None,
                         chunk: int = 65536) -> np.ndarray:
        """Every design of the grid within the budgets, in grid order."""
        keep = [c[self.feasible(c, tech, area_mm2, power_w)] for c in self.enumerate(chunk)]
        return np.concatenate(keep) if keep else np.zeros((0, len(self.params)), np.int64)

    def min_area_mm2(self, tech: Any, power_w: float | None = None,
                     min_hbm_bytes: float = 0.0) -> float:
        """Smallest area (mm²) of a design meeting the power budget (W) and holding
        ``min_hbm_bytes`` of HBM; ``inf`` if none does.

        Area and TDP grow with every numeric parameter (more cores, lanes, SRAM, stacks or
        links never cost less; ``tests/search/test_space.py`` checks it on the cost
        model), so the minimum lies at the lower corner of the grid — every numeric
        parameter at its first value, HBM at the fewest stacks that hold the workload —
        for one of the categorical choices. :meth:`min_area_mm2_exhaustive` is the
        brute-force reference.
        """
        corners = []
        cat = [j for j, p in enumerate(self.params) if p.categorical]
        base = np.zeros(len(self.params), dtype=np.int64)
        if "hbm_stacks" in self.names and min_hbm_bytes > 0:
            j = self.names.index("hbm_stacks")
            vals = np.asarray(self.param("hbm_stacks").values, dtype=np.float64)
            holds = np.flatnonzero(vals * self.hbm.bytes_per_stack >= min_hbm_bytes)
            if holds.size == 0:
                return math.inf
            base[j] = int(holds[0])
        elif min_hbm_bytes > float(self.template.hbm_bytes) and "hbm_stacks" not in self.names:
            return math.inf
        for combo in np.ndindex(*[len(self.params[j].values) for j in cat]):
            c = base.copy()
            for j, k in zip(cat, combo):
                c[j] = k
            corners.append(c)
        arr = np.array(corners, dtype=np.int64)
        area, tdp = self.area_tdp(arr, tech)
        fits = np.ones(len(arr), dtype=bool) if power_w is None else tdp <= power_w
        return float(area[fits].min()) if fits.any() else math.inf

    def min_area_mm2_exhaustive(self, tech: Any, power_w: float | None = None,
                                min_hbm_bytes: float = 0.0, chunk: int = 65536) -> float:
        """:meth:`min_area_mm2` by enumerating the whole grid (reference, slow)."""
        best = math.inf
        for c in self.enumerate(chunk):
            area, tdp = self.area_tdp(c, tech)
            ok = np.ones(len(c), dtype=bool)
            if power_w is not None:
                ok &= tdp <= power_w
            if min_hbm_bytes > 0:
                ok &= self.fields(c)["hbm_bytes"] >= min_hbm_bytes
            if ok.any():
                best = min(best, float(area[ok].min()))
        return best

    # -- Optuna view ---------------------------------------------------------------------
    def optuna_name(self, name: str) -> str:
        """The trial parameter name of a field, in the unit architects read: byte sizes in
        MiB (``sram_per_core_mib``, ``global_buffer_mib``), everything else as the field."""
        return _OPTUNA_NAMES.get(name, name)

    def optuna_distributions(self) -> dict[str, Any]:
        """Distributions of the trials a study stores (and optuna-dashboard plots): every
        parameter in physical units — cores, lanes, PE rows/columns, MiB, HBM stacks, links
        — as a categorical over the grid's values (numbers stay numbers, so the
        dashboard's importance, slice and contour plots read ``tensor_cores=32``)."""
        from optuna.distributions import CategoricalDistribution

        return {self.optuna_name(p.name): CategoricalDistribution(
            tuple(_physical(p.name, v) for v in p.values)) for p in self.params}

    def to_optuna_params(self, idx: np.ndarray) -> dict[str, Any]:
        """Physical trial parameters of one design (:meth:`optuna_distributions`)."""
        a = np.asarray(idx, dtype=np.int64).reshape(-1)
        return {self.optuna_name(p.name): _physical(p.name, p.values[int(a[j])])
                for j, p in enumerate(self.params)}

    def from_optuna_params(self, params: Mapping[str, Any]) -> np.ndarray:
        """Indices of a design from physical trial parameters."""
        out = np.zeros(len(self.params), dtype=np.int64)
        for j, p in enumerate(self.params):
            key = self.optuna_name(p.name)
            if key not in params:
                raise ConfigError(f"trial parameters lack {key!r} (space {self.name!r}); the "
                                  "study was made by another dse version or design space")
            choices = [_physical(p.name, v) for v in p.values]
            v = params[key]
            if v not in choices:
                raise ConfigError(f"trial parameter {key}={v!r} is not in space "
                                  f"{self.name!r}; valid: {', '.join(map(str, choices))}")
            out[j] = choices.index(v)
        return out

    def sampler_distributions(self) -> dict[str, Any]:
        """Ordinal distributions for samplers (TPE models neighbouring values as close):
        ``idx_<field>`` integer index into each numeric grid, the dataflow categorical.
        :mod:`search.optuna_search` samples with these and stores physical trials."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        return {(p.name if p.categorical else f"idx_{p.name}"):
                (CategoricalDistribution(p.values) if p.categorical
                 else IntDistribution(0, len(p.values) - 1)) for p in self.params}

    def to_sampler_params(self, idx: np.ndarray) -> dict[str, Any]:
        a = np.asarray(idx, dtype=np.int64).reshape(-1)
        return {(p.name if p.categorical else f"idx_{p.name}"):
                (p.values[int(a[j])] if p.categorical else int(a[j]))
                for j, p in enumerate(self.params)}

    def from_sampler_params(self, params: Mapping[str, Any]) -> np.ndarray:
        out = np.zeros(len(self.params), dtype=np.int64)
        for j, p in enumerate(self.params):
            key = p.name if p.categorical else f"idx_{p.name}"
            v = params[key]
            out[j] = p.values.index(v) if p.categorical else int(v)
        return out

    def fingerprint(self) -> str:
        """``name:sha256[:12]`` of :meth:`describe` (a study remembers its space)."""
        import hashlib
        import json

        from dse.types import jsonable

        blob = json.dumps(jsonable(self.describe()), sort_keys=True, default=str)
        return f"{self.name}:{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for summary.json and docs)."""
        return {"name": self.name, "size": self.size,
                "params": {p.name: list(p.values) for p in self.params},
                "hbm_generation": self.hbm.name,
                "hbm_bw_bytes_per_s_per_stack": self.hbm.bw_bytes_per_s_per_stack,
                "hbm_bytes_per_stack": self.hbm.bytes_per_stack,
                "template": {f.name: getattr(self.template, f.name)
                             for f in dataclasses.fields(HardwareConfig)}}


_OPTUNA_NAMES = {"sram_per_core_bytes": "sram_per_core_mib",
                 "global_buffer_bytes": "global_buffer_mib"}


def _physical(name: str, v: Any) -> Any:
    """A grid value in the unit of its trial parameter (bytes -> MiB; ints stay ints)."""
    if name in _OPTUNA_NAMES:
        return float(v) / MIB
    if name in _INT_FIELDS:
        return int(v)
    return v


def _mib(b: float) -> str:
    x = float(b) / MIB
    return f"{x:g}M"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _make_batch(cls: Any, fields: dict[str, np.ndarray]) -> Any:
    """Build a DesignBatch from per-field arrays (struct of arrays) without re-validating
    them: the grid's values and the template were validated when the space was built.
    Designs are named by :meth:`DesignSpace.label` only when reported (hot path)."""
    return cls.trusted(**fields)


TENSOR_CORES: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
"""Core counts of the default grid: powers of two and the 3·2^k between them, so that the
search can fill an area budget with the core count that fits (a TPU-like chip of 400 mm²
holds 7–8 MXUs, not 4 or 16)."""


def _pow2(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**e for e in range(int(math.log2(lo)), int(math.log2(hi)) + 1))


def default_params(devices: int = 1) -> tuple[Param, ...]:
    """The default grid (module docstring table); ``link_count`` only when
    ``devices > 1`` (one device never uses its links)."""
    ps = [
        Param(name="tensor_cores", values=TENSOR_CORES),
        Param(name="array_rows", values=_pow2(32, 256)),
        Param(name="array_cols", values=_pow2(32, 256)),
        Param(name="dataflow", values=("ws", "os")),
        Param(name="vector_cores", values=_pow2(1, 16)),
        Param(name="vector_lanes", values=_pow2(128, 1024)),
        Param(name="sram_per_core_bytes", values=tuple(float(x) * MIB
                                                       for x in (0.5, 1, 2, 4, 8))),
        Param(name="global_buffer_bytes", values=tuple(float(x) * MIB for x in (8, 32, 128))),
        Param(name="hbm_stacks", values=(1, 2, 3, 4, 5, 6, 8)),
    ]
    if devices > 1:
        ps.append(Param(name="link_count", values=(2, 4, 6)))
    return tuple(ps)


def default_template() -> HardwareConfig:
    """The ``tpuv4`` preset's hardware if cost_models.presets provides it (clock, dtype,
    link bandwidth, node), else :data:`TEMPLATE_TPUV4_LIKE`."""
    try:
        from cost_models.presets import load_preset

        hw = load_preset("tpuv4").hardware
    except Exception:  # noqa: BLE001 - the preset module may not exist in a partial install
        return TEMPLATE_TPUV4_LIKE
    return dataclasses.replace(hw, name="template")


def default_space(template: HardwareConfig | None = None, hbm: str = "hbm2e",
                  devices: int = 1) -> DesignSpace:
    """The documented default space (module docstring) for ``devices`` devices."""
    if hbm not in HBM_GENERATIONS:
        raise ConfigError(f"unknown HBM generation {hbm!r}; valid: {', '.join(HBM_GENERATIONS)}")
    if not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"devices={devices!r} must be a positive integer")
    return DesignSpace(template=template or default_template(),
                       params=default_params(devices), hbm=HBM_GENERATIONS[hbm],
                       name="default" if devices == 1 else "default-multi")
