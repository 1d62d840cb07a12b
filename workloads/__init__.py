"""Training workloads: model zoo, importers (HF config.json, ONNX), training expansion
(forward → backward-data, backward-weight, optimizer) and parallel partitioning."""
