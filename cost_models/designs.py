"""``DesignBatch``: many :class:`~dse.types.HardwareConfig` designs as a struct of arrays.

Every cost model in this package is vectorized over designs: it takes a ``DesignBatch``
whose attributes are numpy arrays of length ``D`` (one per HardwareConfig field) and
returns arrays of length ``D`` (or ``D × O`` for per-operator quantities).

>>> from dse.types import HardwareConfig
>>> a = HardwareConfig(name="a", tensor_cores=2, array_rows=128, array_cols=128,
...                    vector_cores=2, vector_lanes=128, freq_hz=1e9,
...                    hbm_bw_bytes_per_s=1e12, hbm_bytes=16e9)
>>> b = HardwareConfig(name="b", tensor_cores=4, array_rows=32, array_cols=64,
...                    vector_cores=1, vector_lanes=64, freq_hz=1.5e9,
...                    hbm_bw_bytes_per_s=2e12, hbm_bytes=32e9, dataflow="os", dtype="int8")
>>> batch = DesignBatch.from_configs([a, b])
>>> len(batch), batch.tensor_cores.tolist(), batch.dtype_bytes.tolist()
(2, [2, 4], [2, 1])
>>> batch.config(1) == b
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from dse.errors import ConfigError
from dse.types import DATAFLOWS, DTYPES, HardwareConfig
from dse.units import DTYPE_BYTES

__all__ = ["FLOAT_FIELDS", "HW_FIELDS", "INT_FIELDS", "STR_FIELDS", "DesignBatch"]

HW_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HardwareConfig))
STR_FIELDS: tuple[str, ...] = ("name", "dataflow", "dtype")
INT_FIELDS: tuple[str, ...] = tuple(
    f for f in HW_FIELDS
    if f not in STR_FIELDS and dataclasses.fields(HardwareConfig)[HW_FIELDS.index(f)].type
    in ("int", int)
)
FLOAT_FIELDS: tuple[str, ...] = tuple(f for f in HW_FIELDS
                                      if f not in STR_FIELDS and f not in INT_FIELDS)


@dataclass(frozen=True, eq=False)
class DesignBatch:
    """``D`` hardware designs, one read-only numpy array per HardwareConfig field.

    Integer fields (``tensor_cores``, ``array_rows`` …) are int64, string fields
    (``name``, ``dataflow``, ``dtype``) object arrays, the rest float64. Derived arrays:
    ``dataflow_code`` (index into ``dse.types.DATAFLOWS``), ``dtype_bytes``, ``macs``,
    ``peak_flop_per_s``, ``sram_bytes``. Build with :meth:`from_configs` or
    :meth:`from_arrays`; get one design back with :meth:`config`.
    """

    arrays: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        n = None
        for f in HW_FIELDS:
            if f not in self.arrays:
                raise ConfigError(f"DesignBatch: missing field {f!r}")
            a = self.arrays[f]
            if a.ndim != 1:
                raise ConfigError(f"DesignBatch.{f} must be one-dimensional, got shape {a.shape}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ConfigError(f"DesignBatch.{f} has {a.shape[0]} entries, expected {n}")
        if not n:
            raise ConfigError("DesignBatch needs at least one design")
        for a in self.arrays.values():
            a.setflags(write=False)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_configs(cls, configs: Sequence[HardwareConfig]) -> DesignBatch:
        """Stack validated configs (their ``__post_init__`` already checked every field)."""
        configs = list(configs)
        if not configs:
            raise ConfigError("DesignBatch.from_configs needs at least one HardwareConfig")
        for i, c in enumerate(configs):
            if not isinstance(c, HardwareConfig):
                raise ConfigError(f"DesignBatch.from_configs: item {i} is a "
                                  f"{type(c).__name__}, expected HardwareConfig")
        arrays: dict[str, np.ndarray] = {}
        for f in HW_FIELDS:
            vals = [getattr(c, f) for c in configs]
            arrays[f] = _column(f, vals)
        return cls(arrays)

    @classmethod
    def from_arrays(cls, **columns: Any) -> DesignBatch:
        """Build from columns (sequences or arrays, scalars broadcast); missing fields take
        HardwareConfig's defaults. Validates ranges vectorially (no per-design objects).

        >>> b = DesignBatch.from_arrays(tensor_cores=[1, 8], array_rows=128, array_cols=128,
        ...                             vector_cores=1, vector_lanes=128, freq_hz=1e9,
        ...                             hbm_bw_bytes_per_s=1e12, hbm_bytes=16e9)
        >>> b.macs.tolist(), b.name.tolist()
        ([16384, 131072], ['design0', 'design1'])
        """
        unknown = sorted(set(columns) - set(HW_FIELDS))
        if unknown:
            raise ConfigError(f"DesignBatch: unknown field {unknown[0]!r}; valid fields: "
                              f"{', '.join(HW_FIELDS)}")
        n = max((np.size(v) for v in columns.values() if np.ndim(v) > 0), default=1)
        defaults = {f.name: f.default for f in dataclasses.fields(HardwareConfig)}
        arrays: dict[str, np.ndarray] = {}
        for f in HW_FIELDS:
            if f in columns:
                v = columns[f]
            elif f == "name":
                v = [f"design{i}" for i in range(n)]
            elif defaults[f] is dataclasses.MISSING:
                raise ConfigError(f"DesignBatch.from_arrays: missing required field {f!r}")
            else:
                v = defaults[f]
            v = np.asarray(v, dtype=object if f in STR_FIELDS else None)
            if v.ndim == 0:
                v = np.full(n, v.item(), dtype=object if f in STR_FIELDS else None)
            if v.shape != (n,):
                raise ConfigError(f"DesignBatch.{f} has shape {v.shape}, expected ({n},)")
            arrays[f] = _column(f, list(v) if f in STR_FIELDS else v)
        _validate_arrays(arrays)
        return cls(arrays)

    @classmethod
    def trusted(cls, **columns: np.ndarray) -> DesignBatch:
        """Build from complete, already valid columns (every HardwareConfig field but
        ``name``, each a 1-D array of the right dtype: what
        :meth:`search.space.DesignSpace.fields` returns for a grid whose values and
        template were validated). Skips :meth:`from_arrays`' checks (hot loops)."""
        n = len(next(iter(columns.values())))
        arrays = {"name": np.full(n, "design", dtype=object)}
        arrays.update(columns)
        return cls(arrays)

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.arrays["tensor_cores"].shape[0])

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def config(self, i: int) -> HardwareConfig:
        """Design ``i`` as a validated HardwareConfig."""
        if not -len(self) <= i < len(self):
            raise ConfigError(f"DesignBatch.config({i}): index out of range for "
                              f"{len(self)} designs")
        kw: dict[str, Any] = {}
        for f in HW_FIELDS:
            v = self.arrays[f][i]
            if f in STR_FIELDS:
                kw[f] = str(v)
            elif f in INT_FIELDS:
                kw[f] = int(v)
            else:
                kw[f] = float(v)
        return HardwareConfig(**kw)

    def configs(self) -> Iterator[HardwareConfig]:
        for i in range(len(self)):
            yield self.config(i)

    def subset(self, index: Any) -> DesignBatch:
        """The designs selected by an index array or boolean mask (a new batch)."""
        idx = np.asarray(index)
        return DesignBatch({f: np.array(a[idx]).reshape(-1) for f, a in self.arrays.items()})

    def memo(self, key: tuple[Any, ...], tech: Any, make: Any) -> Any:
        """``make()`` computed once per batch and technology (node constants, area and TDP
        of the same batch are asked for many times in one evaluation). The technology
        object is kept with the value, so its ``id`` in the key cannot be reused."""
        store = self.__dict__.setdefault("_memo", {})
        k = key + (id(tech),)
        hit = store.get(k)
        if hit is None or hit[0] is not tech:
            hit = (tech, make())
            store[k] = hit
        return hit[1]

    # -- derived arrays ----------------------------------------------------------------------
    @cached_property
    def dataflow_code(self) -> np.ndarray:
        return _codes(self.arrays["dataflow"], DATAFLOWS)

    @cached_property
    def dtype_code(self) -> np.ndarray:
        return _codes(self.arrays["dtype"], DTYPES)

    @cached_property
    def dtype_bytes(self) -> np.ndarray:
        return np.array([DTYPE_BYTES[d] for d in self.arrays["dtype"]], dtype=np.int64)

    @cached_property
    def macs(self) -> np.ndarray:
        return self.tensor_cores * self.array_rows * self.array_cols

    @cached_property
    def peak_flop_per_s(self) -> np.ndarray:
        """Dense tensor peak, FLOP/s: cores × rows × cols × 2 × clock."""
        return self.macs.astype(np.float64) * 2.0 * self.freq_hz

    @cached_property
    def sram_bytes(self) -> np.ndarray:
        """All on-chip SRAM (bytes): per-core buffers plus the global buffer."""
        return self.tensor_cores * self.sram_per_core_bytes + self.global_buffer_bytes


def _column(f: str, vals: Sequence[Any]) -> np.ndarray:
    if f in STR_FIELDS:
        out = np.empty(len(vals), dtype=object)
        out[:] = [str(v) for v in vals]
        return out
    if f in INT_FIELDS:
        return np.asarray(vals).astype(np.int64)
    return np.asarray(vals, dtype=np.float64)


def _codes(values: np.ndarray, valid: tuple[str, ...]) -> np.ndarray:
    out = np.full(values.shape, -1, dtype=np.int64)
    for i, v in enumerate(valid):
        out[values == v] = i
    return out


_MAY_BE_ZERO = ("global_buffer_bytes", "link_bw_bytes_per_s", "matmul_efficiency_16bit")
_FLAGS = ("single_stream", "weight_double_buffer")


def _validate_arrays(a: dict[str, np.ndarray]) -> None:
    """Vectorized version of HardwareConfig.__post_init__'s checks."""
    for f in INT_FIELDS:
        v = a[f]
        lo = 0 if f in ("link_count",) + _FLAGS else 1
        if np.any(v < lo):
            i = int(np.argmax(v < lo))
            raise ConfigError(f"DesignBatch[{i}].{f}={int(v[i])} must be >= {lo}")
    for f in _FLAGS:
        if np.any(a[f] > 1):
            i = int(np.argmax(a[f] > 1))
            raise ConfigError(f"DesignBatch[{i}].{f}={int(a[f][i])} must be 0 or 1")
    for f in FLOAT_FIELDS:
        v = a[f]
        bad = ~np.isfinite(v) | (v < 0)
        if f not in _MAY_BE_ZERO:
            bad |= v <= 0
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ConfigError(f"DesignBatch[{i}].{f}={float(v[i])!r} must be a finite number "
                              f"{'>= 0' if f in _MAY_BE_ZERO else '> 0'}")
    for f in ("matmul_efficiency", "matmul_efficiency_16bit", "hbm_efficiency"):
        if np.any(a[f] > 1):
            i = int(np.argmax(a[f] > 1))
            raise ConfigError(f"DesignBatch[{i}].{f}={float(a[f][i])!r} must be <= 1")
    for f, valid in (("dataflow", DATAFLOWS), ("dtype", DTYPES)):
        codes = _codes(a[f], valid)
        if np.any(codes < 0):
            i = int(np.argmax(codes < 0))
            raise ConfigError(f"DesignBatch[{i}].{f}={a[f][i]!r} is not valid; choose one of "
                              f"{', '.join(valid)}")
