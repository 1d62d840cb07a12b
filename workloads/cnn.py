"""Convolutional networks (ResNet, VGG, MobileNetV2) as training graphs.

Convolutions are lowered to GEMMs with im2col dimensions (the SCALE-Sim/Timeloop
convention): for input ``N×C×H×W``, ``K`` filters of ``C/g × R × S``, ``g`` groups and
output ``P×Q`` (``P = floor((H + 2·pad − R)/stride) + 1``)::

    m = N·P·Q,  k = (C/g)·R·S,  n = K/g,  batch = g

so a depthwise convolution (``g = C = K``) is ``C`` GEMMs of ``N·P·Q × R·S × 1``.
``bytes_in``/``bytes_out`` are the real input/output tensors (im2col is not materialized).
The first convolution reads the image, which needs no gradient: it has no ``bwd_data``.
BatchNorm runs in training mode (batch statistics); ReLU saves its output (in-place,
as torchvision does), the next convolution reads the same saved tensor.
"""

from __future__ import annotations

from typing import Any

from dse.errors import WorkloadError
from dse.types import Graph
from workloads.builder import INDEX_BYTES, ForwardBuilder
from workloads.spec import PARAM_COUNTERS, CNNSpec
from workloads.training import expand, summarize


class _Net:
    """Tracks the current activation (producer, channels, height, width) while building."""

    def __init__(self, spec: CNNSpec, batch: int) -> None:
        self.spec = spec
        self.b = ForwardBuilder(spec.name)
        self.n = batch
        self.db = self.b.dtype_bytes

    # each helper returns (producer, channels, height, width)
    def conv(self, name: str, x: tuple[str | None, int, int, int], k_out: int, r: int,
             stride: int = 1, pad: int | None = None, groups: int = 1,
             bias: bool = False) -> tuple[str, int, int, int]:
        src, c, h, w = x
        pad = (r - 1) // 2 if pad is None else pad
        if c % groups or k_out % groups:
            raise WorkloadError(f"{self.spec.owner}: conv {name!r} groups={groups} must divide "
                                f"in channels {c} and out channels {k_out}")
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - r) // stride + 1
        n = self.n
        out = self.b.gemm(
            name, src, m=n * p * q, k=(c // groups) * r * r, n=k_out // groups, batch=groups,
            bias=bias, a_bytes=float(n * c * h * w * self.db),
            c_bytes=float(n * k_out * p * q * self.db),
            save_a=src or f"{name}:image", save_a_bytes=float(n * c * h * w * self.db),
        )
        return out, k_out, p, q

    def bn(self, name: str, x: tuple[str, int, int, int]) -> tuple[str, int, int, int]:
        src, c, h, w = x
        el = self.n * c * h * w
        out = self.b.vector(name, [src], key="batchnorm", kind="norm", elements=el,
                            params=(("weight", c), ("bias", c)), saves=[(src, el * self.db)])
        return out, c, h, w

    def act(self, name: str, x: tuple[str, int, int, int], key: str = "relu"
            ) -> tuple[str, int, int, int]:
        src, c, h, w = x
        el = self.n * c * h * w
        out = self.b.vector(name, [src], key=key, elements=el, saves=[(name, el * self.db)])
        return out, c, h, w

    def add(self, name: str, a: tuple[str, int, int, int], b_: tuple[str, int, int, int]
            ) -> tuple[str, int, int, int]:
        src, c, h, w = a
        out = self.b.vector(name, [src, b_[0]], key="add", elements=self.n * c * h * w)
        return out, c, h, w

    def maxpool(self, name: str, x: tuple[str, int, int, int], r: int, stride: int, pad: int
                ) -> tuple[str, int, int, int]:
        src, c, h, w = x
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - r) // stride + 1
        el_out, el_in = self.n * c * p * q, self.n * c * h * w
        out = self.b.vector(name, [src], key="maxpool", kind="pool", elements=el_out,
                            flop=float(el_out * (r * r - 1)), in_elements=el_in,
                            saves=[(src, el_in * self.db),
                                   (name + ":argmax", el_out * INDEX_BYTES)],
                            bwd_elements=el_in)
        return out, c, p, q

    def global_avgpool(self, name: str, x: tuple[str, int, int, int]
                       ) -> tuple[str, int, int, int]:
        src, c, h, w = x
        el_out, el_in = self.n * c, self.n * c * h * w
        out = self.b.vector(name, [src], key="avgpool", kind="pool", elements=el_out,
                            flop=float(el_in + el_out), in_elements=el_in, bwd_elements=el_in)
        return out, c, 1, 1

    def fc(self, name: str, x: tuple[str, int, int, int], n_out: int, bias: bool = True
           ) -> tuple[str, int, int, int]:
        src, c, h, w = x
        out = self.b.gemm(name, src, m=self.n, k=c * h * w, n=n_out, bias=bias)
        return out, n_out, 1, 1

    def dropout(self, name: str, x: tuple[str, int, int, int]) -> tuple[str, int, int, int]:
        src, c, h, w = x
        return self.b.dropout(name, src, elements=self.n * c * h * w), c, h, w

    def block_input(self, name: str, x: tuple[str, int, int, int]
                    ) -> tuple[str, int, int, int]:
        src, c, h, w = x
        return self.b.virtual(name, [src], elements=self.n * c * h * w), c, h, w


def _cfg(spec: CNNSpec, key: str, default: Any = None) -> Any:
    if key in spec.config:
        return spec.config[key]
    if default is None:
        raise WorkloadError(f"{spec.owner}: config.{key} is required for arch={spec.arch}")
    return default


def _resnet(net: _Net, x: tuple[str | None, int, int, int]) -> tuple[str, int, int, int]:
    """He et al. 2016 bottleneck ResNet; ``stride_in_3x3`` selects v1.5 (torchvision/MLPerf)."""
    spec = net.spec
    depths = [int(v) for v in _cfg(spec, "blocks")]
    widths = [int(v) for v in _cfg(spec, "widths")]
    expansion = int(_cfg(spec, "expansion", 4))
    stem = int(_cfg(spec, "stem_channels", 64))
    s3 = bool(_cfg(spec, "stride_in_3x3", True))
    y = net.act("stem.relu", net.bn("stem.bn", net.conv("stem.conv", x, stem, 7, stride=2)))
    y = net.maxpool("stem.maxpool", y, 3, 2, 1)
    for si, (depth, width) in enumerate(zip(depths, widths)):
        for bi in range(2 if depth > 1 else 1):
            first = bi == 0
            stride = 2 if (first and si > 0) else 1
            name = f"stage{si + 1}.block{1 if first else 2}"
            count = 1 if first else depth - 1
            with net.b.block(name if not first else "", count, layer=si):
                inp = net.block_input(f"{name}.input", y) if not first else y
                out_c = width * expansion
                z = net.conv(f"{name}.conv1", inp, width, 1, stride=1 if s3 else stride)
                z = net.act(f"{name}.relu1", net.bn(f"{name}.bn1", z))
                z = net.conv(f"{name}.conv2", z, width, 3, stride=stride if s3 else 1)
                z = net.act(f"{name}.relu2", net.bn(f"{name}.bn2", z))
                z = net.bn(f"{name}.bn3", net.conv(f"{name}.conv3", z, out_c, 1))
                short = inp
                if first and (stride != 1 or inp[1] != out_c):
                    short = net.bn(f"{name}.down_bn",
                                   net.conv(f"{name}.down", inp, out_c, 1, stride=stride))
                y = net.act(f"{name}.relu3", net.add(f"{name}.add", z, short))
    return y


def _vgg(net: _Net, x: tuple[str | None, int, int, int]) -> tuple[str, int, int, int]:
    """Simonyan & Zisserman 2015, configuration D (VGG-16): 3×3 convs with bias and ReLU."""
    layers = _cfg(net.spec, "layers")
    y: Any = x
    ci = 0
    pi = 0
    for item in layers:
        if item == "M":
            pi += 1
            y = net.maxpool(f"pool{pi}", y, 2, 2, 0)
        else:
            ci += 1
            y = net.act(f"conv{ci}.relu", net.conv(f"conv{ci}", y, int(item), 3, bias=True))
    return y


def _mobilenetv2(net: _Net, x: tuple[str | None, int, int, int]) -> tuple[str, int, int, int]:
    """Sandler et al. 2018 Table 2: inverted residual blocks (expand 1×1, depthwise 3×3,
    linear project 1×1), ReLU6, residual when stride 1 and channels match."""
    spec = net.spec
    rows = _cfg(spec, "inverted_residual")
    stem = int(_cfg(spec, "stem_channels", 32))
    last = int(_cfg(spec, "last_channels", 1280))
    y = net.act("stem.relu6", net.bn("stem.bn", net.conv("stem.conv", x, stem, 3, stride=2)),
                "relu6")
    for ri, row in enumerate(rows):
        t, c, n, s = (int(v) for v in row)
        for bi in range(2 if n > 1 else 1):
            first = bi == 0
            name = f"ir{ri + 1}.block{1 if first else 2}"
            stride = s if first else 1
            with net.b.block(name if not first else "", 1 if first else n - 1, layer=ri):
                inp = net.block_input(f"{name}.input", y) if not first else y
                cin = inp[1]
                z = inp
                if t != 1:
                    z = net.act(f"{name}.expand_relu6",
                                net.bn(f"{name}.expand_bn", net.conv(f"{name}.expand", z,
                                                                     cin * t, 1)), "relu6")
                hid = z[1]
                z = net.conv(f"{name}.dw", z, hid, 3, stride=stride, groups=hid)
                z = net.act(f"{name}.dw_relu6", net.bn(f"{name}.dw_bn", z), "relu6")
                z = net.bn(f"{name}.project_bn", net.conv(f"{name}.project", z, c, 1))
                y = net.add(f"{name}.add", z, inp) if (stride == 1 and cin == c) else z
    y = net.act("head.relu6", net.bn("head.bn", net.conv("head.conv", y, last, 1)), "relu6")
    return y


_CONFIG_KEYS = {
    "resnet": {"blocks": "list", "widths": "list", "expansion": "int", "stem_channels": "int",
               "stride_in_3x3": "bool"},
    "vgg": {"layers": "list", "classifier": "list", "dropout": "bool"},
    "mobilenetv2": {"inverted_residual": "list", "stem_channels": "int",
                    "last_channels": "int", "dropout": "bool"},
}
"""The ``config`` keys of each arch and their kinds (:func:`_check_config`)."""
_MAX_CONFIG_INT = 1 << 20


def _check_config(spec: CNNSpec) -> None:
    """Refuse a ``config`` the generator would misread: unknown keys, non-integer or
    non-positive counts and widths, lists of the wrong length, non-boolean switches."""
    o, cfg = spec.owner, spec.config
    kinds = _CONFIG_KEYS.get(spec.arch, {})
    for key in cfg:
        if key not in kinds:
            raise WorkloadError(f"{o}: config.{key} is not a key of arch={spec.arch}; valid: "
                                f"{', '.join(kinds)}")

    def count(v: Any, what: str, lo: int = 1) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= _MAX_CONFIG_INT:
            raise WorkloadError(f"{o}: {what}={v!r} must be an integer in "
                                f"{lo}..{_MAX_CONFIG_INT}")
        return v

    def seq(key: str) -> list[Any]:
        v = cfg[key]
        if not isinstance(v, list) or not v:
            raise WorkloadError(f"{o}: config.{key}={v!r} must be a non-empty list")
        return v

    for key, kind in kinds.items():
        if key not in cfg:
            continue
        if kind == "int":
            count(cfg[key], f"config.{key}")
        elif kind == "bool" and not isinstance(cfg[key], bool):
            raise WorkloadError(f"{o}: config.{key}={cfg[key]!r} must be true or false")
    if spec.arch == "resnet":
        blocks = [count(v, "config.blocks[]") for v in seq("blocks")] if "blocks" in cfg \
            else None
        widths = [count(v, "config.widths[]") for v in seq("widths")] if "widths" in cfg \
            else None
        if blocks is not None and widths is not None and len(blocks) != len(widths):
            raise WorkloadError(f"{o}: config.blocks has {len(blocks)} stages and "
                                f"config.widths {len(widths)}; give one width per stage")
    elif spec.arch == "vgg":
        for v in seq("layers") if "layers" in cfg else ():
            if v != "M":
                count(v, "config.layers[] (a conv width, or M for a max-pool)")
        for v in seq("classifier") if "classifier" in cfg else ():
            count(v, "config.classifier[]")
    elif spec.arch == "mobilenetv2" and "inverted_residual" in cfg:
        for row in seq("inverted_residual"):
            if not isinstance(row, list) or len(row) != 4:
                raise WorkloadError(f"{o}: config.inverted_residual row {row!r} must be "
                                    "[t, c, n, s] (expansion, channels, repeats, stride)")
            for v, what in zip(row, ("t", "c", "n", "s")):
                count(v, f"config.inverted_residual {what}")


def _forward(spec: CNNSpec, batch: int) -> _Net:
    _check_config(spec)
    net = _Net(spec, batch)
    x: tuple[str | None, int, int, int] = (None, spec.in_channels, spec.image_size,
                                           spec.image_size)
    if spec.arch == "resnet":
        y = net.global_avgpool("avgpool", _resnet(net, x))
        y = net.fc("fc", y, spec.num_classes)
    elif spec.arch == "vgg":
        y = _vgg(net, x)
        for i, width in enumerate(_cfg(spec, "classifier")):
            y = net.act(f"fc{i + 1}.relu", net.fc(f"fc{i + 1}", y, int(width)))
            if _cfg(spec, "dropout", True):
                y = net.dropout(f"fc{i + 1}.dropout", y)
        y = net.fc(f"fc{len(_cfg(spec, 'classifier')) + 1}", y, spec.num_classes)
    elif spec.arch == "mobilenetv2":
        y = net.global_avgpool("avgpool", _mobilenetv2(net, x))
        if _cfg(spec, "dropout", True):
            y = net.dropout("dropout", y)
        y = net.fc("fc", y, spec.num_classes)
    else:  # pragma: no cover - validated by CNNSpec
        raise WorkloadError(f"{spec.owner}: unknown arch {spec.arch!r}")
    net.b.loss("loss", y[0], key="cross_entropy", elements=batch * spec.num_classes,
               rows=batch, saves=[("loss:logp", batch * spec.num_classes * net.db)])
    return net


def cnn_params(spec: CNNSpec) -> int:
    """Trainable parameters (weights, biases, BatchNorm γ and β)."""
    net = _forward(spec, 1)
    return int(sum(n.op.params * n.count for n in net.b.nodes if n.op is not None))


PARAM_COUNTERS["cnn"] = cnn_params


def build_cnn(spec: CNNSpec, *, batch: int, optimizer: str = "adam") -> Graph:
    """The training graph of ``batch`` images of ``spec.image_size``².

    >>> from workloads.zoo import model_spec
    >>> g = build_cnn(model_spec("resnet50"), batch=1, optimizer="sgd")
    >>> round(g.meta["fwd_gemm_flop_per_sample"] / 2 / 1e9, 2)   # multiply-adds per image
    4.09
    """
    net = _forward(spec, batch)
    graph = expand(net.b, optimizer=optimizer, name=spec.name)
    stats = summarize(graph, batch)
    fwd_gemm = sum(op.total_flop for op in graph.ops if op.phase == "fwd" and op.kind == "gemm")
    meta: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "arch": spec.arch, "params": cnn_params(spec),
        "seq_len": None, "batch": batch, "image_size": spec.image_size,
        "num_classes": spec.num_classes, "optimizer": optimizer,
        "layers": sum(op.count for op in graph.ops if op.phase == "fwd" and op.kind == "gemm"),
        "fwd_gemm_flop_per_sample": fwd_gemm / batch, **stats,
    }
    return graph.with_ops(graph.ops, **meta)
