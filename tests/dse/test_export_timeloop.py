"""Timeloop/Accelergy v0.4 export (dse/export/timeloop.py) and its tag-aware YAML I/O.

Environment used: none (Timeloop is not a Python package; the files are checked for the
v0.4 structure and round-trip exactly through the tag-aware loader/dumper).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.errors import ConfigError
from dse.export import export_design, load_design
from dse.export.timeloop import TAGS, Component, Container, Parallel, architecture, dump, load
from tests.dse.test_export_scalesim import write_design

EXERCISE = """\
architecture:
  version: 0.4
  nodes:
  - !Container {name: system}
  - !Component {name: DRAM, class: DRAM, attributes: {type: LPDDR4, width: 64, datawidth: 16}}
  - !Container {name: PE, spatial: {meshX: 16, meshY: 16},
                constraints: {spatial: {permutation: [C, M], split: 1, factors: [R=1, S=1]}}}
  - !Parallel
    nodes:
    - !Component {name: weight_reg, class: storage, subclass: aladdin_register,
                  attributes: {depth: 1, width: 16, datawidth: 16}}
  - !Component {name: mac, class: intmac, attributes: {multiplier_width: 8, adder_width: 16}}
"""


def test_upstream_style_file_round_trips_with_its_tags() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(EXERCISE)  # why the tag-aware loader exists
    doc = load(EXERCISE)
    nodes = doc["architecture"]["nodes"]
    assert [type(n) for n in nodes] == [Container, Component, Container, Parallel, Component]
    assert type(nodes[3]["nodes"][0]) is Component
    again = load(dump(doc))
    assert again == doc
    assert [type(n) for n in again["architecture"]["nodes"]] == [type(n) for n in nodes]
    assert "!Parallel" in dump(doc) and "!Container" in dump(doc)
    # the global SafeLoader is untouched
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(EXERCISE)


def test_tags_matter_for_equality() -> None:
    assert Container(name="x") != Component(name="x")
    assert Container(name="x") != {"name": "x"}


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "arch.yaml"
    bad.write_text("architecture:\n  nodes: [!Container {name: a}\n")
    with pytest.raises(ConfigError, match=r"arch.yaml: malformed Timeloop YAML at line"):
        load(bad)
    with pytest.raises(ConfigError, match="must tag a mapping"):
        load("- !Component [1, 2]\n")


@pytest.mark.parametrize("dataflow,perm,keep", [("ws", ["N", "K"], "Weights"),
                                                ("os", ["N", "M"], "Outputs"),
                                                ("is", ["M", "K"], "Inputs")])
def test_export_writes_v04_arch_and_problems(tmp_path: Path, dataflow: str, perm: list[str],
                                             keep: str) -> None:
    src = write_design(tmp_path, dataflow=dataflow, rows=8, cols=16)
    paths = export_design(src, "timeloop", tmp_path / "tl")
    arch_path = paths[0]
    doc = load(arch_path)
    assert doc == architecture(load_design(src))  # exact round trip of what was written
    arch = doc["architecture"]
    assert arch["version"] == "0.4"
    by_name = {n["name"]: n for n in arch["nodes"] if "name" in n}
    assert by_name["tensor_core"]["spatial"] == {"meshX": 2}
    pe = by_name["PE"]
    assert type(pe) is Container and pe["spatial"] == {"meshX": 16, "meshY": 8}
    assert pe["constraints"]["spatial"]["permutation"] == perm
    par = [n for n in arch["nodes"] if type(n) is Parallel][0]
    assert par["nodes"][0]["constraints"]["dataspace"]["keep"] == [keep]
    assert by_name["core_sram"]["attributes"]["depth"] * by_name["core_sram"]["attributes"][
        "width"] == 65536 * 8
    problems = [p for p in paths if p.parent.name == "problems"]
    assert len(problems) >= 5
    for p in problems:
        prob = load(p)["problem"]
        assert prob["version"] == "0.4"
        assert prob["shape"]["dimensions"] == ["M", "N", "K"]
        assert {d["name"] for d in prob["shape"]["data_spaces"]} == {"Inputs", "Weights",
                                                                    "Outputs"}
        assert set(prob["instance"]) == {"M", "N", "K"}
        assert load(dump(load(p))) == load(p)


_scalar = st.one_of(st.integers(-10**6, 10**6), st.text(max_size=8), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False))
_tree = st.recursive(
    _scalar,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=6), kids, max_size=4),
        st.builds(lambda cls, d: cls(d), st.sampled_from(sorted(TAGS.values(), key=str)),
                  st.dictionaries(st.text(min_size=1, max_size=6), kids, max_size=4)),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_tree)
def test_any_tagged_tree_round_trips(tree: object) -> None:
    assert load(dump(tree)) == tree
