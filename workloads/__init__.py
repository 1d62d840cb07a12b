"""Training workloads: model zoo, importers (HF config.json, ONNX), training expansion
(forward → backward-data, backward-weight, optimizer) and parallel partitioning.

Public API (docs/architecture.md):

* :func:`load` — a zoo name, ``config.json`` or ``.onnx`` path → training :class:`~dse.types.Graph`
* :func:`zoo_names` — the built-in workload names
* :func:`model_spec` — a name or path → :class:`ModelSpec` (hyperparameters, defaults)
* :func:`build` — a :class:`ModelSpec` → the graph of one tensor-parallel shard of one
  pipeline stage
"""

from workloads.spec import (
    CNNSpec,
    DLRMSpec,
    ModelSpec,
    OnnxSpec,
    RNNSpec,
    TransformerSpec,
)
from workloads.training import pass_of
from workloads.vector_ops import VECTOR_OPS
from workloads.zoo import build, load, model_spec, zoo_names

# the families whose parameter count needs their builder register it (workloads.spec)
from workloads import cnn as _cnn  # noqa: F401  isort: skip
from workloads import onnx_import as _onnx_import  # noqa: F401  isort: skip
from workloads import rnn as _rnn  # noqa: F401  isort: skip

__all__ = [
    "VECTOR_OPS",
    "CNNSpec",
    "DLRMSpec",
    "ModelSpec",
    "OnnxSpec",
    "RNNSpec",
    "TransformerSpec",
    "build",
    "load",
    "model_spec",
    "pass_of",
    "zoo_names",
]
