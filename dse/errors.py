"""Exception tree of dse.

Every error a user can cause derives from :class:`DSEError`; the CLI turns each into a
one-line message and an exit code (2 for bad input, 3 for "no feasible design",
1 otherwise). ``ConfigError`` and ``WorkloadError`` also derive from ``ValueError`` so
that plain-Python callers can catch them the usual way.

>>> try:
...     raise ConfigError("tensor_cores must be >= 1, got 0")
... except DSEError as e:
...     print(type(e).__name__, e.exit_code)
ConfigError 2
"""

from __future__ import annotations

import errno

NOT_WRITABLE_ERRNOS = frozenset((errno.EROFS, errno.EACCES, errno.EPERM))
"""OS errors of a path the user chose to write into that cannot be written (read-only file
system, no permission): bad input (exit 2), not an environment failure."""


class DSEError(Exception):
    """Root of every error raised on purpose by dse."""

    exit_code: int = 1


class ConfigError(DSEError, ValueError):
    """Invalid hardware/system/plan/search configuration or CLI argument."""

    exit_code = 2


class WorkloadError(DSEError, ValueError):
    """Unknown workload, malformed model file, unsupported model field."""

    exit_code = 2


class InfeasibleDesignError(DSEError):
    """No design satisfies the constraints (expected: search prunes these)."""

    exit_code = 3


class ExportError(DSEError):
    """A design could not be exported to a simulator format."""

    exit_code = 1


class ExportInputError(ExportError, ConfigError):
    """The design given to ``dse export`` cannot be exported as it is (no workload, a
    node size its device count does not fill, a plan the format cannot express): bad
    input, exit 2, not a failure of the exporter."""

    exit_code = 2


class StorageError(DSEError):
    """The study storage (SQLite, journal, PostgreSQL) cannot be reached or used."""

    exit_code = 1
