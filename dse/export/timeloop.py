"""Export to Timeloop/Accelergy v0.4: a tagged architecture YAML and GEMM problem YAMLs.

Files written:

* ``arch.yaml``: ``architecture: {version: '0.4', nodes: [...]}`` in the tree format of
  the timeloop-accelergy-exercises designs (``!Container``, ``!Component``,
  ``!Parallel`` tags). From the top: ``system`` (technology node, clock period) → HBM
  (``class: DRAM``) → ``chip`` → global buffer (``smartbuffer_SRAM``, when the design has
  one) → ``tensor_core`` container spatially replicated ``tensor_cores`` times → the
  core's SRAM (``smartbuffer_SRAM``) → ``PE`` container with ``meshX = array_cols``,
  ``meshY = array_rows`` and the dataflow as a spatial constraint → a ``!Parallel`` with
  the stationary operand's register → ``mac`` (``intmac`` of the datatype's width).
* ``problems/<gemm>.yaml``: one ``problem:`` per unique GEMM shape with dimensions
  ``M, N, K`` and data spaces ``Inputs`` = A (M×K), ``Weights`` = B (K×N),
  ``Outputs`` = C (M×N, ``read_write``), our ``C[m, n] = A[m, k] @ B[k, n]``.
* ``gemms.csv``: the GEMM list (name, m, k, n, instances per step, phases).

Dataflow as spatial constraints (Timeloop puts the permutation's dims before ``split``
on X = the array columns, the rest on Y = the rows; SCALE-Sim's mapping):

=====  ========================  =====================  =====================
flow   X (cols)                  Y (rows)               stationary register
=====  ========================  =====================  =====================
ws     N                         K                      ``weight_reg`` keeps Weights
os     N                         M                      ``output_reg`` keeps Outputs
is     M                         K                      ``input_reg`` keeps Inputs
=====  ========================  =====================  =====================

The YAML tags break ``yaml.safe_load``; :func:`load` and :func:`dump` use a
:class:`TimeloopLoader`/:class:`TimeloopDumper` (subclasses of PyYAML's SafeLoader and
SafeDumper, so the global ones are left alone) with a constructor and a representer per
tag: tagged nodes load as :class:`Container`/:class:`Component`/... mappings (or
sequences) and dump back with their tags.

>>> doc = load("nodes:\\n- !Container {name: system}\\n- !Parallel\\n  nodes: []\\n")
>>> type(doc["nodes"][0]).__name__, doc["nodes"][0]["name"]
('Container', 'system')
>>> load(dump(doc)) == doc
True
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import yaml

from dse.errors import ConfigError
from dse.export.design import Design, Gemm, require_gemms, workload_graphs

__all__ = [
    "TAGS",
    "Component",
    "Container",
    "Hierarchical",
    "Nothing",
    "Parallel",
    "TimeloopDumper",
    "TimeloopLoader",
    "architecture",
    "dump",
    "export",
    "load",
    "problem",
]


class _TaggedMap(dict):  # type: ignore[type-arg]
    """A mapping node carrying a Timeloop tag; equal only to the same tag and contents."""

    tag = ""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and dict.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class Container(_TaggedMap):
    """``!Container``: a level of the hierarchy (may be spatially replicated)."""

    tag = "!Container"


class Component(_TaggedMap):
    """``!Component``: a storage or compute component with an Accelergy class."""

    tag = "!Component"


class Parallel(_TaggedMap):
    """``!Parallel``: sibling nodes at the same level (``nodes:`` inside)."""

    tag = "!Parallel"


class Hierarchical(_TaggedMap):
    """``!Hierarchical``: nodes nested one below the other (``nodes:`` inside)."""

    tag = "!Hierarchical"


class Nothing(_TaggedMap):
    """``!Nothing``: an empty placeholder node."""

    tag = "!Nothing"


TAGS: dict[str, type[_TaggedMap]] = {
    c.tag: c for c in (Container, Component, Parallel, Hierarchical, Nothing)
}


class TimeloopLoader(yaml.SafeLoader):
    """SafeLoader that understands the Timeloop v0.4 tags."""


class TimeloopDumper(yaml.SafeDumper):
    """SafeDumper that writes the Timeloop v0.4 tags back."""


def _constructor(cls: type[_TaggedMap]):  # type: ignore[no-untyped-def]
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> _TaggedMap:
        if isinstance(node, yaml.MappingNode):
            return cls(loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.ScalarNode) and loader.construct_scalar(node) in ("", None):
            return cls()
        raise yaml.constructor.ConstructorError(
            None, None, f"{cls.tag} must tag a mapping", node.start_mark)

    return construct


def _representer(dumper: yaml.SafeDumper, data: _TaggedMap) -> yaml.Node:
    return dumper.represent_mapping(data.tag, dict(data))


for _tag, _cls in TAGS.items():
    TimeloopLoader.add_constructor(_tag, _constructor(_cls))
    TimeloopDumper.add_representer(_cls, _representer)


def load(text_or_path: str | Path) -> Any:
    """Parse Timeloop YAML (text, or a :class:`~pathlib.Path` to read) keeping the tags.

    Raises :class:`ConfigError` naming the file on malformed YAML.
    """
    where = "<text>"
    if isinstance(text_or_path, Path):
        where = str(text_or_path)
        try:
            text = text_or_path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{where}: cannot read ({e.strerror})") from None
    else:
        text = text_or_path
    try:
        return yaml.load(text, Loader=TimeloopLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: malformed Timeloop YAML{at}: "
                          f"{getattr(e, 'problem', None) or e}") from None


def dump(data: Any) -> str:
    """Serialize to YAML text with the Timeloop tags (block style, key order kept)."""
    return yaml.dump(data, Dumper=TimeloopDumper, default_flow_style=False, sort_keys=False,
                     width=100)


# --------------------------------------------------------------------------- content

_SPATIAL = {  # dataflow -> (permutation X..., Y...), factors fixed to 1, register
    "ws": (["N", "K"], ["M=1"], "weight_reg", "Weights"),
    "os": (["N", "M"], ["K=1"], "output_reg", "Outputs"),
    "is": (["M", "K"], ["N=1"], "input_reg", "Inputs"),
}
_DATASPACES = ("Inputs", "Weights", "Outputs")


def _sram(name: str, size_bytes: float, width_bits: int, datawidth: int,
          bandwidth_words: float, extra: dict[str, Any] | None = None) -> Component:
    depth = max(1, int(size_bytes * 8 // width_bits))
    attrs: dict[str, Any] = {
        "depth": depth, "width": int(width_bits), "datawidth": datawidth,
        "read_bandwidth": _num(bandwidth_words), "write_bandwidth": _num(bandwidth_words),
    }
    return Component({"name": name, "class": "smartbuffer_SRAM", "attributes": attrs,
                      **(extra or {})})


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(float(x), 6)


def architecture(design: Design) -> dict[str, Any]:
    """The ``architecture:`` document (v0.4 tree with tags) of the design's chip."""
    hw = design.hardware
    bits = hw.dtype_bytes * 8
    hbm_words_per_cycle = hw.hbm_bw_bytes_per_s / hw.freq_hz / hw.dtype_bytes
    hbm_width = max(bits, int(math.ceil(hbm_words_per_cycle)) * bits)
    perm, factors, reg, keep = _SPATIAL[hw.dataflow]
    nodes: list[Any] = [
        Container(name="system", attributes={
            "technology": f"{_num(hw.tech_node_nm)}nm",
            "global_cycle_seconds": float(1.0 / hw.freq_hz),
            "datawidth": bits,
        }),
        Component({"name": "HBM", "class": "DRAM", "attributes": {
            "type": "HBM2", "width": hbm_width, "datawidth": bits,
            "depth": max(1, int(hw.hbm_bytes * 8 // hbm_width)),
            "read_bandwidth": _num(round(hbm_words_per_cycle, 6)),
            "write_bandwidth": _num(round(hbm_words_per_cycle, 6)),
        }}),
        Container(name="chip", attributes={"technology": f"{_num(hw.tech_node_nm)}nm"}),
    ]
    if hw.global_buffer_bytes > 0:
        gb_words = hw.global_buffer_bw_bytes_per_cycle / hw.dtype_bytes
        nodes.append(_sram("global_buffer", hw.global_buffer_bytes,
                           max(bits, int(hw.global_buffer_bw_bytes_per_cycle * 8)), bits,
                           gb_words))
    nodes.append(Container(name="tensor_core", spatial={"meshX": hw.tensor_cores}))
    edge_words = hw.array_rows + hw.array_cols
    nodes.append(_sram("core_sram", hw.sram_per_core_bytes,
                       bits * max(hw.array_rows, hw.array_cols), bits, edge_words))
    nodes.append(Container(
        name="PE", spatial={"meshX": hw.array_cols, "meshY": hw.array_rows},
        constraints={"spatial": {"permutation": perm, "split": 1, "factors": factors}},
    ))
    others = [d for d in _DATASPACES if d != keep]
    nodes.append(Parallel(nodes=[Component({
        "name": reg, "class": "storage", "subclass": "aladdin_register",
        "attributes": {"depth": 1, "width": bits, "datawidth": bits},
        "constraints": {"dataspace": {"keep": [keep], "bypass": others}},
    })]))
    nodes.append(Component({"name": "mac", "class": "intmac", "attributes": {
        "multiplier_width": bits, "adder_width": 2 * bits}}))
    return {"architecture": {"version": "0.4", "nodes": nodes}}


def problem(gemm: Gemm) -> dict[str, Any]:
    """The ``problem:`` document of one GEMM (``C[M,N] = A[M,K] · B[K,N]``)."""
    return {"problem": {
        "version": "0.4",
        "shape": {
            "name": "gemm",
            "dimensions": ["M", "N", "K"],
            "data_spaces": [
                {"name": "Weights", "projection": [[["K"]], [["N"]]]},
                {"name": "Inputs", "projection": [[["M"]], [["K"]]]},
                {"name": "Outputs", "projection": [[["M"]], [["N"]]], "read_write": True},
            ],
        },
        "instance": {"M": gemm.m, "N": gemm.n, "K": gemm.k},
    }}


def export(design: Design, out_dir: Path, *, top: int | None = None,
           layers: tuple[str, ...] | None = None) -> list[Path]:
    """Write ``arch.yaml``, ``problems/*.yaml`` and ``gemms.csv`` into ``out_dir``."""
    gemms = require_gemms(design, workload_graphs(design), top=top, layers=layers)
    return write_files(design, gemms, out_dir)


def write_files(design: Design, gemms: list[Gemm], out_dir: Path) -> list[Path]:
    """Write the Timeloop files for given GEMMs (used by :func:`export` and tests)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = out_dir / "arch.yaml"
    arch.write_text(dump(architecture(design)))
    paths = [arch]
    pdir = out_dir / "problems"
    pdir.mkdir(exist_ok=True)
    for g in gemms:
        p = pdir / f"{g.name}.yaml"
        p.write_text(dump(problem(g)))
        paths.append(p)
    listing = out_dir / "gemms.csv"
    with listing.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["name", "m", "k", "n", "instances_per_step", "phases", "problem"])
        for g in gemms:
            w.writerow([g.name, g.m, g.k, g.n, g.instances_per_step, ";".join(g.phases),
                        f"problems/{g.name}.yaml"])
    paths.append(listing)
    return paths
