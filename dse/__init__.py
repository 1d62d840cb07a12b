"""dse: a workload-aware accelerator design-space explorer for distributed DL training.

Core types live in :mod:`dse.types`, errors in :mod:`dse.errors`; the public Python API
is :mod:`dse.api` and the command line :mod:`dse.cli`.
"""

__version__ = "0.1.0"
