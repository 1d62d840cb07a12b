"""Systolic-array GEMM cost model, cycle-exact against SCALE-Sim 3.0.0.

A GEMM here is ``C[m, n] = A[m, k] @ B[k, n]`` (an M×K matrix times a K×N
matrix) on one ``rows × cols`` systolic array with dataflow ``"os"`` (output
stationary), ``"ws"`` (weight stationary) or ``"is"`` (input stationary).  In
SCALE-Sim's words, A is the *ifmap*, B the *filter* and C the *ofmap*; SCALE-Sim's
GEMM topology row ``Layer, M, N, K,`` has ``M = m``, ``N = n``, ``K = k``
(``scalesim/topology_utils.py::load_arrays_gemm``).

Closed forms (derived from ``scalesim/compute/systolic_compute_{os,ws,is}.py``
and checked cycle-for-cycle against real runs, see
``tests/validation/data/scalesim_reference.csv``).  The operand mapped to the
array rows has ``S_R`` elements, the one mapped to the columns ``S_C``, and ``T``
elements are streamed through per fold:

========  =====  =====  =====  ==============================
dataflow  S_R    S_C    T      compute cycles
========  =====  =====  =====  ==============================
os        m      n      k      folds·(T + R + C − 2) − 1
ws        k      n      m      folds·(T + 2R + C − 2) − 1
is        k      m      n      folds·(T + 2R + C − 2) − 1
========  =====  =====  =====  ==============================

with ``folds = ceil(S_R / R) · ceil(S_C / C)``.  Partial folds cost as much as full
ones (SCALE-Sim pads them with null requests), the extra ``R`` of WS/IS is the
stationary operand's load, and the ``− 1`` is there because SCALE-Sim reports the
0-based cycle index of the last output write, not a count
(``scalesim/memory/double_buffered_scratchpad_mem.py``:
``total_cycles = int(max(ofmap_serviced_cycles))``; users reported it as an
off-by-one, SCALE-Sim issue #125).

**Weight double-buffering** (``double_buffer=True``, WS/IS only): real weight-stationary
arrays (the TPU's MXU) shift the next fold's stationary tile into shadow registers while
the current fold computes, so only the first fold's load is exposed:
``folds·(T + R + C − 2) + R − 1``. SCALE-Sim loads every fold's tile in series (the
default, ``double_buffer=False``, which stays cycle-exact with it). OS has no stationary
load and is unchanged.

All public functions are pure and vectorized: they accept Python scalars or numpy
arrays that broadcast together, and return Python ``int`` for all-scalar inputs and
``numpy.int64`` arrays otherwise.  Units: dimensions and counts in elements
("words"), time in cycles, traffic in bytes where the name says so.

>>> compute_cycles(64, 64, 64, 8, 8, "ws")
5503
>>> compute_cycles([10, 3], 7, 13, 4, 8, ["os", "is"])
array([101,  53])
"""

from __future__ import annotations

from typing import Any, Final, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dse.errors import ConfigError

__all__ = [
    "DATAFLOWS",
    "Dataflow",
    "compute_cycles",
    "compute_cycles_raw",
    "compute_cycles_scalar",
    "dram_traffic_breakdown_bytes",
    "dram_traffic_bytes",
    "gemm_cycles_multi_core",
    "ideal_cycles",
    "multi_core_cycles_raw",
    "sram_accesses",
    "sram_accesses_scalar",
]

Dataflow = Literal["os", "ws", "is"]
#: Valid dataflow names, in a fixed order (immutable).
DATAFLOWS: Final[tuple[str, ...]] = ("os", "ws", "is")

IntResult = int | NDArray[np.int64]

_OS, _WS, _IS = 0, 1, 2


# --------------------------------------------------------------------------- validation
def _positive_ints(name: str, value: ArrayLike, *, minimum: int = 1) -> NDArray[np.int64]:
    """Return ``value`` as an int64 array, raising ConfigError if not integers >= minimum."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind == "f":
        integral = np.isfinite(arr) & (arr == np.floor(arr))
        if not np.all(integral):
            bad = np.atleast_1d(arr)[~np.atleast_1d(integral)][0]
            raise ConfigError(f"{name} must be a positive integer, got {float(bad)!r}")
        out = arr.astype(np.int64)
    else:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if out.size and out.min() < minimum:
        bad = out[out < minimum].flat[0]
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {int(bad)}")
    return out


def _nonneg_reals(name: str, value: ArrayLike, *, strictly_positive: bool) -> NDArray[np.float64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    out = arr.astype(np.float64, copy=False)
    bad_mask = ~np.isfinite(out) | ((out <= 0) if strictly_positive else (out < 0))
    if np.any(bad_mask):
        bad = out[bad_mask].flat[0] if out.ndim else out
        cond = "> 0" if strictly_positive else ">= 0"
        raise ConfigError(f"{name} must be finite and {cond}, got {float(bad)!r}")
    return out


def _dataflow_codes(dataflow: str | ArrayLike) -> int | NDArray[np.int8]:
    """Map ``"os"|"ws"|"is"`` (a string or an array of strings) to 0|1|2."""
    if isinstance(dataflow, str):
        try:
            return DATAFLOWS.index(dataflow)
        except ValueError:
            raise ConfigError(
                f"dataflow must be one of {', '.join(repr(d) for d in DATAFLOWS)}; got {dataflow!r}"
            ) from None
    arr = np.asarray(dataflow)
    if arr.dtype.kind not in "UO":
        raise ConfigError(
            f"dataflow must be one of {', '.join(repr(d) for d in DATAFLOWS)} "
            f"(or an array of them); got {dataflow!r}"
        )
    codes = np.full(arr.shape, -1, dtype=np.int8)
    for code, name in enumerate(DATAFLOWS):
        codes[arr == name] = code
    if np.any(codes < 0):
        bad = arr[codes < 0].flat[0] if arr.ndim else arr.item()
        raise ConfigError(
            f"dataflow must be one of {', '.join(repr(d) for d in DATAFLOWS)}; got {bad!r}"
        )
    if codes.ndim == 0:
        return int(codes)
    return codes


def _scalar_dims(m: int, k: int, n: int, rows: int, cols: int) -> tuple[int, int, int, int, int]:
    """Validate the scalar references' dimensions: positive integers (integral floats ok)."""
    out = []
    for name, v in (("m", m), ("k", k), ("n", n), ("rows", rows), ("cols", cols)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        try:
            iv = int(v)
        except (ValueError, OverflowError):  # nan, inf
            raise ConfigError(f"{name} must be a positive integer, got {v!r}") from None
        if v != iv or iv < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        out.append(iv)
    return out[0], out[1], out[2], out[3], out[4]


def _out(x: NDArray[np.int64]) -> IntResult:
    return int(x) if np.ndim(x) == 0 else x


def _ceil_div(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    return -(-a // b)


def _mapping(
    m: NDArray[np.int64],
    k: NDArray[np.int64],
    n: NDArray[np.int64],
    rows: NDArray[np.int64],
    code: int | NDArray[np.int8],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Return (S_R, S_C, T, stationary-load rows) for each dataflow code."""
    if isinstance(code, int):
        if code == _OS:
            return m, n, k, np.zeros_like(rows)
        if code == _WS:
            return k, n, m, rows
        return k, m, n, rows
    is_os, is_ws = code == _OS, code == _WS
    s_r = np.where(is_os, m, k)
    s_c = np.where(is_os | is_ws, n, m)
    t = np.where(is_os, k, np.where(is_ws, m, n))
    load = np.where(is_os, 0, rows)
    return s_r, s_c, t, load


# --------------------------------------------------------------------------- compute cycles
@overload
def compute_cycles(m: int, k: int, n: int, rows: int, cols: int, dataflow: str, *,
                   double_buffer: bool = ...) -> int: ...
@overload
def compute_cycles(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    *,
    double_buffer: ArrayLike = ...,
) -> NDArray[np.int64]: ...
def compute_cycles(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    *,
    double_buffer: ArrayLike = False,
) -> IntResult:
    """Compute cycles of one GEMM on one systolic array, as SCALE-Sim 3.0.0 counts them.

    Parameters
    ----------
    m, k, n : int or array of int
        GEMM dimensions (elements): ``A`` is ``m × k``, ``B`` is ``k × n``.
    rows, cols : int or array of int
        Systolic array height and width (processing elements).
    dataflow : {"os", "ws", "is"} or array of those strings
        Output-, weight- or input-stationary.
    double_buffer : bool or array of bool, keyword-only
        Load the next fold's stationary tile while the current fold computes (WS/IS;
        see the module docstring). ``False`` (default) is SCALE-Sim's count.

    Returns
    -------
    int or numpy.ndarray of int64
        Cycles (the "Total Cycles" column of SCALE-Sim's ``COMPUTE_REPORT.csv`` with
        no memory stalls when ``double_buffer`` is false), broadcast over all inputs.

    Raises
    ------
    dse.errors.ConfigError
        (a ``ValueError``) for an unknown dataflow or a non-positive dimension.

    Notes
    -----
    ``folds · (T + fill) − 1`` with ``fill = R + C − 2`` for OS and ``2R + C − 2``
    for WS/IS; see the module docstring for ``S_R, S_C, T``.  For a 1×1 OS array
    this is one cycle below the ideal ``m·k·n`` (SCALE-Sim's 0-based count).

    Examples
    --------
    >>> compute_cycles(10, 7, 13, 4, 8, "os")   # 3·2 folds · (7 + 4 + 8 − 2) − 1
    101
    >>> compute_cycles(10, 7, 13, 4, 8, "ws")   # 2·2 folds · (10 + 8 + 8 − 2) − 1
    95
    >>> compute_cycles(10, 7, 13, 4, 8, "is")   # 2·2 folds · (13 + 8 + 8 − 2) − 1
    107
    >>> compute_cycles(10, 7, 13, 4, 8, "ws", double_buffer=True)  # 4·(10 + 4 + 8 − 2) + 4 − 1
    83
    >>> compute_cycles([[64], [128]], 64, 64, [8, 32], [8, 32], "os")
    array([[4991,  503],
           [9983, 1007]])
    >>> compute_cycles(8, 8, 8, 4, 4, "xs")
    Traceback (most recent call last):
    ...
    dse.errors.ConfigError: dataflow must be one of 'os', 'ws', 'is'; got 'xs'
    """
    code = _dataflow_codes(dataflow)
    if (  # fast path for plain Python ints (no numpy overhead), same formula
        isinstance(code, int) and all(type(v) is int and v >= 1 for v in (m, k, n, rows, cols))
        and isinstance(double_buffer, (bool, int, np.bool_))
    ):
        mi, ki, ni, ri, ci = int(m), int(k), int(n), int(rows), int(cols)  # type: ignore[arg-type]
        sr, sc, t = ((mi, ni, ki), (ki, ni, mi), (ki, mi, ni))[code]
        load = 0 if code == _OS else ri
        folds = (-(-sr // ri)) * (-(-sc // ci))
        if double_buffer:
            return folds * (t + ri + ci - 2) + load - 1
        return folds * (t + load + ri + ci - 2) - 1
    m_, k_, n_ = _positive_ints("m", m), _positive_ints("k", k), _positive_ints("n", n)
    r_, c_ = _positive_ints("rows", rows), _positive_ints("cols", cols)
    s_r, s_c, t_, load_ = _mapping(m_, k_, n_, r_, code)
    folds = _ceil_div(s_r, r_) * _ceil_div(s_c, c_)
    db = np.asarray(double_buffer, dtype=bool)
    if db.ndim == 0 and not bool(db):
        cycles = folds * (t_ + load_ + r_ + c_ - 2) - 1
    else:
        exposed = np.where(db, 0, load_)
        cycles = folds * (t_ + exposed + r_ + c_ - 2) + (load_ - exposed) - 1
    return _out(np.asarray(cycles, dtype=np.int64))


def compute_cycles_scalar(m: int, k: int, n: int, rows: int, cols: int, dataflow: str,
                          double_buffer: bool = False) -> int:
    """Slow scalar reference for :func:`compute_cycles`: walks the folds one by one.

    It mirrors how SCALE-Sim builds its demand matrices
    (``scalesim/compute/systolic_compute_{os,ws,is}.py``): for each column fold
    (outer) and row fold (inner) it adds the lines of that fold's demand matrix:
    the stationary-operand load (``rows`` lines for WS/IS, ``0`` for OS), ``T`` lines
    of streamed operands, ``rows − 1`` lines of skew and ``cols − 1`` lines of
    drain.  A partial fold is padded to the full array, so its length does not
    depend on how many rows/columns it uses.  The last output is written in
    cycle ``lines − 1`` (0-based).

    Parameters
    ----------
    m, k, n, rows, cols : int
        GEMM dimensions and array size (elements, processing elements).
    dataflow : {"os", "ws", "is"}

    Returns
    -------
    int
        Cycles.

    Examples
    --------
    >>> compute_cycles_scalar(10, 7, 13, 4, 8, "os")
    101
    """
    code = _dataflow_codes(dataflow)
    if not isinstance(code, int):
        raise ConfigError(f"compute_cycles_scalar takes one dataflow string, got {dataflow!r}")
    m, k, n, rows, cols = _scalar_dims(m, k, n, rows, cols)
    s_r, s_c, t = {_OS: (m, n, k), _WS: (k, n, m), _IS: (k, m, n)}[code]
    stationary_load = 0 if code == _OS else rows
    lines = 0
    col_start = 0
    first = True
    while col_start < s_c:  # column folds (outer loop in SCALE-Sim)
        row_start = 0
        while row_start < s_r:  # row folds (inner loop)
            # A fold using only min(rows, s_r - row_start) rows and min(cols, s_c - col_start)
            # columns is padded with null requests to the full array: same length. With
            # double buffering only the first fold waits for its stationary tile; later
            # tiles load while the previous fold computes.
            exposed = stationary_load if (first or not double_buffer) else 0
            lines += exposed + t + (rows - 1) + (cols - 1)
            first = False
            row_start += rows
        col_start += cols
    return lines - 1


@overload
def ideal_cycles(m: int, k: int, n: int, rows: int, cols: int) -> int: ...
@overload
def ideal_cycles(
    m: ArrayLike, k: ArrayLike, n: ArrayLike, rows: ArrayLike, cols: ArrayLike
) -> NDArray[np.int64]: ...
def ideal_cycles(
    m: ArrayLike, k: ArrayLike, n: ArrayLike, rows: ArrayLike, cols: ArrayLike
) -> IntResult:
    """Roofline bound ``ceil(m·k·n / (rows·cols))`` in cycles (every PE busy every cycle).

    >>> ideal_cycles(64, 64, 64, 8, 8)
    4096
    """
    m_, k_, n_ = _positive_ints("m", m), _positive_ints("k", k), _positive_ints("n", n)
    r_, c_ = _positive_ints("rows", rows), _positive_ints("cols", cols)
    return _out(np.asarray(_ceil_div(m_ * k_ * n_, r_ * c_), dtype=np.int64))


# --------------------------------------------------------------------------- SRAM accesses
@overload
def sram_accesses(
    m: int, k: int, n: int, rows: int, cols: int, dataflow: str
) -> dict[str, int]: ...
@overload
def sram_accesses(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
) -> dict[str, NDArray[np.int64]]: ...
def sram_accesses(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
) -> dict[str, Any]:
    """SRAM reads and writes of one GEMM, in words, as SCALE-Sim 3.0.0 counts them.

    With ``F_M = ceil(m/R)`` (OS) or ``ceil(m/C)`` (IS), ``F_N = ceil(n/C)``,
    ``F_K = ceil(k/R)`` and ``folds`` as in :func:`compute_cycles`:

    ========  ==========  ==========  ====================
    dataflow  ifmap (A)   filter (B)  ofmap (C) writes
    ========  ==========  ==========  ====================
    os        m·k·F_N     k·n·F_M     m·n + folds·(R + C)
    ws        m·k·F_N     k·n         m·n·F_K
    is        m·k         k·n·F_M     m·n·F_K
    ========  ==========  ==========  ====================

    The stationary operand is read once; the streamed one once per fold of the
    other operand.  WS/IS write a partial sum per K-fold (no accumulation across
    folds in the array).  The OS surplus ``folds·(R + C)`` is a SCALE-Sim counter
    artifact: ``systolic_compute_os.py::create_ofmap_demand_mat`` adds
    ``shape[0] + shape[1]`` of the padded fold after counting its elements.

    Parameters
    ----------
    m, k, n, rows, cols : int or array of int
        GEMM dimensions (elements) and array size (processing elements).
    dataflow : {"os", "ws", "is"} or array of those strings

    Returns
    -------
    dict
        ``ifmap_sram_reads``, ``filter_sram_reads``, ``ofmap_sram_writes`` (words),
        each an ``int`` or an int64 array broadcast over the inputs.

    Examples
    --------
    >>> sram_accesses(10, 7, 13, 4, 8, "os")
    {'ifmap_sram_reads': 140, 'filter_sram_reads': 273, 'ofmap_sram_writes': 202}
    >>> sram_accesses(10, 7, 13, 4, 8, "is")
    {'ifmap_sram_reads': 70, 'filter_sram_reads': 182, 'ofmap_sram_writes': 260}
    """
    code = _dataflow_codes(dataflow)
    m_, k_, n_ = _positive_ints("m", m), _positive_ints("k", k), _positive_ints("n", n)
    r_, c_ = _positive_ints("rows", rows), _positive_ints("cols", cols)
    s_r, s_c, _, _ = _mapping(m_, k_, n_, r_, code)
    folds = _ceil_div(s_r, r_) * _ceil_div(s_c, c_)
    f_n = _ceil_div(n_, c_)
    f_k = _ceil_div(k_, r_)
    a, b, c = m_ * k_, k_ * n_, m_ * n_

    def pick(*by_dataflow: NDArray[Any]) -> NDArray[np.int64]:
        if isinstance(code, int):
            return np.asarray(by_dataflow[code], dtype=np.int64)
        return np.asarray(np.choose(code, by_dataflow), dtype=np.int64)

    f_m_os = _ceil_div(m_, r_)
    f_m_is = _ceil_div(m_, c_)
    ifmap = pick(a * f_n, a * f_n, a)
    filt = pick(b * f_m_os, b, b * f_m_is)
    ofmap = pick(c + folds * (r_ + c_), c * f_k, c * f_k)
    shape = np.broadcast_shapes(np.shape(code), m_.shape, k_.shape, n_.shape, r_.shape, c_.shape)
    return {
        "ifmap_sram_reads": _out(np.broadcast_to(ifmap, shape).copy()),
        "filter_sram_reads": _out(np.broadcast_to(filt, shape).copy()),
        "ofmap_sram_writes": _out(np.broadcast_to(ofmap, shape).copy()),
    }


def sram_accesses_scalar(
    m: int, k: int, n: int, rows: int, cols: int, dataflow: str
) -> dict[str, int]:
    """Slow scalar reference for :func:`sram_accesses`: sums the counts fold by fold.

    Per fold (column fold outer, row fold inner, as in SCALE-Sim) it adds the
    elements each operand contributes: OS reads a ``T × used_rows`` ifmap slice and
    a ``T × used_cols`` filter slice and writes the ``used_rows × used_cols`` outputs
    plus ``R + C``; WS reads ``m × used_rows`` of the ifmap and the
    ``used_rows × used_cols`` stationary weights and writes ``m × used_cols``;
    IS reads the ``used_rows × used_cols`` stationary inputs and ``n × used_rows``
    weights and writes ``n × used_cols``.

    >>> sram_accesses_scalar(10, 7, 13, 4, 8, "ws")
    {'ifmap_sram_reads': 140, 'filter_sram_reads': 91, 'ofmap_sram_writes': 260}
    """
    code = _dataflow_codes(dataflow)
    if not isinstance(code, int):
        raise ConfigError(f"sram_accesses_scalar takes one dataflow string, got {dataflow!r}")
    m, k, n, rows, cols = _scalar_dims(m, k, n, rows, cols)
    s_r, s_c, t = {_OS: (m, n, k), _WS: (k, n, m), _IS: (k, m, n)}[code]
    ifmap = filt = ofmap = 0
    for col_start in range(0, s_c, cols):
        used_c = min(cols, s_c - col_start)
        for row_start in range(0, s_r, rows):
            used_r = min(rows, s_r - row_start)
            if code == _OS:
                ifmap += t * used_r
                filt += t * used_c
                ofmap += used_r * used_c + rows + cols
            else:  # WS and IS: stationary tile used_r × used_c, t streamed vectors
                stationary, streamed = used_r * used_c, t * used_r
                if code == _WS:
                    ifmap, filt = ifmap + streamed, filt + stationary
                else:
                    ifmap, filt = ifmap + stationary, filt + streamed
                ofmap += t * used_c
    return {"ifmap_sram_reads": ifmap, "filter_sram_reads": filt, "ofmap_sram_writes": ofmap}


# --------------------------------------------------------------------------- DRAM traffic
@overload
def dram_traffic_breakdown_bytes(
    m: int,
    k: int,
    n: int,
    rows: int,
    cols: int,
    dataflow: str,
    sram_bytes: float,
    dtype_bytes: float,
    *,
    accumulate_partial_sums: bool = ...,
) -> dict[str, float]: ...
@overload
def dram_traffic_breakdown_bytes(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    sram_bytes: ArrayLike,
    dtype_bytes: ArrayLike,
    *,
    accumulate_partial_sums: bool = ...,
) -> dict[str, NDArray[np.float64]]: ...
def dram_traffic_breakdown_bytes(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    sram_bytes: ArrayLike,
    dtype_bytes: ArrayLike,
    *,
    accumulate_partial_sums: bool = True,
) -> dict[str, Any]:
    """Off-chip traffic of one GEMM per operand, in bytes (see :func:`dram_traffic_bytes`).

    Returns
    -------
    dict
        ``ifmap_read_bytes``, ``filter_read_bytes``, ``ofmap_write_bytes``,
        ``ofmap_read_bytes`` (partial sums read back), each a float or a float64
        array broadcast over the inputs.

    Examples
    --------
    >>> d = dram_traffic_breakdown_bytes(256, 256, 256, 32, 32, "ws", 6 * 32768, 1)
    >>> {key: int(v) for key, v in d.items()}   # A (64 KiB) exceeds its 32 KiB half
    {'ifmap_read_bytes': 524288, 'filter_read_bytes': 65536, 'ofmap_write_bytes': 65536, 'ofmap_read_bytes': 0}
    """
    code = _dataflow_codes(dataflow)
    m_, k_, n_ = _positive_ints("m", m), _positive_ints("k", k), _positive_ints("n", n)
    r_, c_ = _positive_ints("rows", rows), _positive_ints("cols", cols)
    sram = _nonneg_reals("sram_bytes", sram_bytes, strictly_positive=False)
    word = _nonneg_reals("dtype_bytes", dtype_bytes, strictly_positive=True)

    # Per-operand active half-buffer capacity, in words (float: dtype_bytes may be 0.5).
    cap_words = sram / 6.0 / word
    f_m_os, f_m_is = _ceil_div(m_, r_), _ceil_div(m_, c_)
    f_n, f_k = _ceil_div(n_, c_), _ceil_div(k_, r_)
    a, b, c = m_ * k_, k_ * n_, m_ * n_

    def fits(words: NDArray[np.int64]) -> NDArray[np.bool_]:
        return np.asarray(words <= cap_words)

    # OS: column folds over n outer, row folds over m inner.
    os_a = np.where(fits(a), a, a * f_n)  # A swept once per n-fold unless resident
    os_b = np.where(fits(k_ * np.minimum(n_, c_)), b, b * f_m_os)  # k×C tile reused over m-folds
    # WS: n-folds outer, k-folds inner; weights stationary (each tile loaded once).
    ws_a = os_a
    ws_b = b
    ws_psum = m_ * np.minimum(n_, c_)  # partial-sum tile m×C accumulated over k-folds
    # IS: m-folds outer, k-folds inner; inputs stationary.
    is_a = a
    is_b = np.where(fits(b), b, b * f_m_is)  # B swept once per m-fold unless resident
    is_psum = n_ * np.minimum(m_, c_)

    def spill(psum_words: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        if not accumulate_partial_sums:  # SCALE-Sim 3.0.0: every k-fold's partials go out
            return c * f_k, np.zeros_like(c)
        resident = fits(psum_words)
        return np.where(resident, c, c * f_k), np.where(resident, 0, c * (f_k - 1))

    ws_w, ws_r = spill(ws_psum)
    is_w, is_r = spill(is_psum)

    def pick(*by_dataflow: NDArray[Any]) -> NDArray[np.float64]:
        if isinstance(code, int):
            words = np.asarray(by_dataflow[code])
        else:
            words = np.asarray(np.choose(code, by_dataflow))
        return np.asarray(words * word, dtype=np.float64)

    shape = np.broadcast_shapes(
        np.shape(code), m_.shape, k_.shape, n_.shape, r_.shape, c_.shape, sram.shape, word.shape
    )
    parts = {
        "ifmap_read_bytes": pick(os_a, ws_a, is_a),
        "filter_read_bytes": pick(os_b, ws_b, is_b),
        "ofmap_write_bytes": pick(c, ws_w, is_w),
        "ofmap_read_bytes": pick(np.zeros_like(c), ws_r, is_r),
    }
    out: dict[str, Any] = {}
    for key, v in parts.items():
        full = np.broadcast_to(v, shape)
        out[key] = float(full) if full.ndim == 0 else full.copy()
    return out


@overload
def dram_traffic_bytes(
    m: int,
    k: int,
    n: int,
    rows: int,
    cols: int,
    dataflow: str,
    sram_bytes: float,
    dtype_bytes: float,
    *,
    accumulate_partial_sums: bool = ...,
) -> float: ...
@overload
def dram_traffic_bytes(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    sram_bytes: ArrayLike,
    dtype_bytes: ArrayLike,
    *,
    accumulate_partial_sums: bool = ...,
) -> NDArray[np.float64]: ...
def dram_traffic_bytes(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    sram_bytes: ArrayLike,
    dtype_bytes: ArrayLike,
    *,
    accumulate_partial_sums: bool = True,
) -> NDArray[np.float64] | float:
    """Off-chip (DRAM) traffic of one GEMM given the on-chip buffer size, in bytes.

    Model
    -----
    * ``sram_bytes`` is the total on-chip buffer of the array, split into three
      equal operand buffers (A/ifmap, B/filter, C/ofmap), each double-buffered
      with an active half as in SCALE-Sim (``single_layer_sim.py``:
      ``active_buf_frac = 0.5``).  An operand's working set must fit in
      ``sram_bytes / 6`` bytes to be kept on chip.
    * The loop order is SCALE-Sim's: column folds outer, row folds inner
      (``systolic_compute_*.py``).  A data set reused across iterations of a loop
      is read from DRAM once if it fits in its active half-buffer, otherwise
      again on every iteration (all-or-nothing: a streaming sweep larger than an
      LRU/FIFO buffer gets no hits).  Per dataflow (words; ``F_*`` as in
      :func:`sram_accesses`):

      - OS: A read ``m·k`` if A fits else ``m·k·F_N``; B read ``k·n`` if a
        ``k × min(n, C)`` column tile fits else ``k·n·F_M``; C written ``m·n``.
      - WS: A as for OS; B read ``k·n`` (each stationary tile once); C written
        ``m·n`` if the ``m × min(n, C)`` partial-sum tile fits, else partial sums
        spill: ``m·n·F_K`` written and ``m·n·(F_K − 1)`` read back.
      - IS: A read ``m·k``; B read ``k·n`` if B fits else ``k·n·F_M``
        (``F_M = ceil(m/C)``); C as WS with an ``n × min(m, C)`` tile.

    * ``accumulate_partial_sums=False`` reproduces SCALE-Sim 3.0.0, which writes
      every K-fold's partial sums to DRAM (WS/IS ofmap writes ``m·n·F_K``, no
      read-back).
    * Each operand word costs ``dtype_bytes`` (partial sums too); no compression,
      no bandwidth limit (time is not modelled here), no padding to bursts.

    Properties: monotone non-increasing in ``sram_bytes`` (every term is a step
    down when a working set starts to fit) and never below the compulsory
    ``(m·k + k·n + m·n)·dtype_bytes``.

    Checked by hand against SCALE-Sim 3.0.0's DRAM reads with 1, 4 and 16 KiB SRAMs:
    A reads (all dataflows) and B reads (WS, IS) agree exactly; OS B reads are
    approximate (SCALE-Sim's diagonal prefetch gets partial reuse, 0–50 % above
    our ``k·n`` when the tile fits).

    Parameters
    ----------
    m, k, n, rows, cols : int or array of int
        GEMM dimensions (elements) and array size (processing elements).
    dataflow : {"os", "ws", "is"} or array of those strings
    sram_bytes : float or array
        Total on-chip buffer capacity for the three operands (bytes, >= 0).
    dtype_bytes : float or array
        Bytes per element (> 0).
    accumulate_partial_sums : bool, keyword-only
        Keep WS/IS partial sums on chip when their tile fits (default), or write
        them all out like SCALE-Sim.

    Returns
    -------
    float or numpy.ndarray of float64
        Bytes read plus written off chip.

    Examples
    --------
    >>> dram_traffic_bytes(64, 64, 64, 8, 8, "os", 1 << 20, 2)   # all fits: compulsory
    24576.0
    >>> dram_traffic_bytes(64, 64, 64, 8, 8, "os", [0, 6 * 1024, 6 * 8192], 1)
    array([69632., 40960., 12288.])
    """
    parts = dram_traffic_breakdown_bytes(
        m,
        k,
        n,
        rows,
        cols,
        dataflow,
        sram_bytes,
        dtype_bytes,
        accumulate_partial_sums=accumulate_partial_sums,
    )
    total = sum(np.asarray(v) for v in parts.values())
    return float(total) if np.ndim(total) == 0 else np.asarray(total, dtype=np.float64)


# --------------------------------------------------------------------------- multi-core
@overload
def gemm_cycles_multi_core(
    m: int, k: int, n: int, rows: int, cols: int, dataflow: str, cores: int, *,
    double_buffer: bool = ...,
) -> int: ...
@overload
def gemm_cycles_multi_core(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    cores: ArrayLike,
    *,
    double_buffer: ArrayLike = ...,
) -> NDArray[np.int64]: ...
def gemm_cycles_multi_core(
    m: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    rows: ArrayLike,
    cols: ArrayLike,
    dataflow: str | ArrayLike,
    cores: ArrayLike,
    *,
    double_buffer: ArrayLike = False,
) -> IntResult:
    """Cycles of one GEMM split across ``cores`` identical systolic arrays.

    The ``m × n`` output is tiled over a ``p_m × p_n`` grid of cores (``p_m·p_n ≤ cores``),
    the way GEMM libraries tile a matrix product over the SMs of a GPU (one output tile
    per thread block, CUTLASS's threadblock tiling) and the way a TPU splits a matmul
    over its MXUs: each core computes a ``ceil(m/p_m) × ceil(n/p_n)`` block of the output
    with all of ``k``. The grid is the best of the candidates
    ``p_m ∈ {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, cores}`` with
    ``p_n = floor(cores/p_m)`` (this includes the pure 1-D splits ``1 × cores`` and
    ``cores × 1``). The result is the slowest core's :func:`compute_cycles`. No
    inter-core communication or shared-memory contention is modelled (the memory
    levels bound the time separately). Non-increasing in ``cores``: for every candidate
    ``p_m``, ``p_n`` does not decrease when ``cores`` grows, and :func:`compute_cycles`
    is non-decreasing in every GEMM dimension.

    Parameters
    ----------
    m, k, n, rows, cols : int or array of int
        GEMM dimensions (elements) and per-core array size (processing elements).
    dataflow : {"os", "ws", "is"} or array of those strings
    cores : int or array of int
        Number of identical arrays (>= 1).
    double_buffer : bool or array of bool, keyword-only
        Weight double-buffering (:func:`compute_cycles`).

    Returns
    -------
    int or numpy.ndarray of int64
        Cycles.

    Examples
    --------
    >>> gemm_cycles_multi_core(128, 64, 32, 8, 8, "ws", [1, 2, 4])
    array([4799, 2399, 1199])
    >>> gemm_cycles_multi_core(128, 64, 32, 8, 8, "ws", 1) == compute_cycles(128, 64, 32, 8, 8, "ws")
    True
    >>> int(gemm_cycles_multi_core(256, 64, 256, 16, 16, "os", 16))   # 16 tiles of 64 x 64 work
    1503
    """
    code = _dataflow_codes(dataflow)
    m_, k_, n_ = _positive_ints("m", m), _positive_ints("k", k), _positive_ints("n", n)
    r_, c_ = _positive_ints("rows", rows), _positive_ints("cols", cols)
    p = _positive_ints("cores", cores)
    return _out(multi_core_cycles_raw(m_, k_, n_, r_, c_, code, p,
                                      np.asarray(double_buffer, dtype=bool)))


def compute_cycles_raw(m: NDArray[np.int64], k: NDArray[np.int64], n: NDArray[np.int64],
                       rows: NDArray[np.int64], cols: NDArray[np.int64],
                       code: int | NDArray[np.int8],
                       double_buffer: NDArray[np.bool_]) -> NDArray[np.int64]:
    """:func:`compute_cycles` on validated int64 arrays and a dataflow code (no checks)."""
    s_r, s_c, t_, load_ = _mapping(m, k, n, rows, code)
    folds = _ceil_div(s_r, rows) * _ceil_div(s_c, cols)
    db = np.asarray(double_buffer, dtype=bool)
    if db.ndim == 0 and not bool(db):
        return folds * (t_ + load_ + rows + cols - 2) - 1
    exposed = np.where(db, 0, load_)
    return folds * (t_ + exposed + rows + cols - 2) + (load_ - exposed) - 1


def multi_core_cycles_raw(m: NDArray[np.int64], k: NDArray[np.int64], n: NDArray[np.int64],
                          rows: NDArray[np.int64], cols: NDArray[np.int64],
                          code: int | NDArray[np.int8], cores: NDArray[np.int64],
                          double_buffer: NDArray[np.bool_]) -> NDArray[np.int64]:
    """:func:`gemm_cycles_multi_core` on validated int64 arrays and a dataflow code (no
    checks; every grid candidate in one broadcast). For the cost models' hot loops."""
    cand = np.asarray(_GRID_CANDIDATES, dtype=np.int64)
    shape = np.broadcast_shapes(np.shape(m), np.shape(k), np.shape(n), np.shape(rows),
                                np.shape(cols), np.shape(code), np.shape(cores),
                                np.shape(double_buffer))
    p = np.broadcast_to(cores, shape)[None, ...]
    p_m = np.concatenate([np.minimum(p, cand.reshape((len(cand),) + (1,) * len(shape))), p],
                         axis=0)
    p_n = p // p_m
    mm = _ceil_div(m, p_m)
    nn = _ceil_div(n, p_n)
    s_r, s_c, t_, load_ = _mapping(mm, np.broadcast_to(k, mm.shape), nn, rows, code)
    folds = _ceil_div(s_r, rows) * _ceil_div(s_c, cols)
    db = np.asarray(double_buffer, dtype=bool)
    if db.ndim == 0 and not bool(db):
        cyc = folds * (t_ + load_ + rows + cols - 2) - 1
    else:
        exposed = np.where(db, 0, load_)
        cyc = folds * (t_ + exposed + rows + cols - 2) + (load_ - exposed) - 1
    return np.asarray(cyc.min(axis=0), dtype=np.int64)


# Row counts of the core grid tried by gemm_cycles_multi_core (plus ``cores`` itself).
_GRID_CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def gemm_cycles_multi_core_scalar(
    m: int, k: int, n: int, rows: int, cols: int, dataflow: str, cores: int,
    double_buffer: bool = False,
) -> int:
    """Slow scalar reference of :func:`gemm_cycles_multi_core` (plain Python loop)."""
    if cores < 1:
        raise ConfigError(f"cores={cores!r} must be >= 1")
    best = None
    for cand in (*_GRID_CANDIDATES, cores):
        p_m = min(cores, cand)
        p_n = cores // p_m
        cyc = compute_cycles_scalar(-(-m // p_m), k, -(-n // p_n), rows, cols, dataflow,
                                    double_buffer)
        best = cyc if best is None else min(best, cyc)
    assert best is not None
    return best
