"""Unit constants. SI inside the code; conversions only at the edges (CLI, files).

>>> 2 * MIB
2097152
>>> round(989.4 * TERA / GIGA)
989400
"""

from __future__ import annotations

KIB = 1024
MIB = 1024**2
GIB = 1024**3
KB = 1000
MB = 1000**2
GB = 1000**3
TB = 1000**4

KILO = 1e3
MEGA = 1e6
GIGA = 1e9
TERA = 1e12
PETA = 1e15

MM2_PER_UM2 = 1e-6
PJ = 1e-12
NS = 1e-9
US = 1e-6
MS = 1e-3

GBIT = 1e9 / 8  # bytes per second in one Gb/s

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
