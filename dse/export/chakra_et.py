"""A pure-Python writer of Chakra execution traces (``.et``), no protobuf runtime needed.

The format is MLCommons Chakra's published schema (``schema/protobuf/et_def.proto``,
package ``ChakraProtoMsg``; ``docs/sources.md`` E4): a file is a ``GlobalMetadata``
message followed by ``Node`` messages, each prefixed with its length as a varint
(Chakra's ``protolib.encodeMessage``). Messages are encoded as protobuf 3 does it: fields
in field-number order, scalars at their default value omitted except inside a ``oneof``
(``AttributeProto.value``), repeated scalars packed. The bytes equal what ``mlc-chakra``
writes for the same messages (a test compares them when a Chakra interpreter exists).

Only what the ASTRA-sim export writes is supported: ``Node`` (id, name, type, data deps,
attributes) and attributes of type ``bool``, ``int64``, ``uint64``, ``string`` and
``bool_list``.

>>> encode_node({"id": 1, "name": "a", "type": "COMP", "data_deps": [0],
...              "attrs": [("is_cpu_op", "bool", False)]}).hex()
'080112016118042a0100520e0a0969735f6370755f6f70d80100'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dse.errors import ExportError

__all__ = ["COLLECTIVES", "NODE_TYPES", "encode_metadata", "encode_node", "write_trace"]

NODE_TYPES = {"INVALID": 0, "METADATA": 1, "MEM_LOAD": 2, "MEM_STORE": 3, "COMP": 4,
              "COMM_SEND": 5, "COMM_RECV": 6, "COMM_COLL": 7}
"""``NodeType`` enum values of et_def.proto (names without the ``_NODE`` suffix)."""
COLLECTIVES = {"ALL_REDUCE": 0, "REDUCE": 1, "ALL_GATHER": 2, "GATHER": 3, "SCATTER": 4,
               "BROADCAST": 5, "ALL_TO_ALL": 6, "REDUCE_SCATTER": 7,
               "REDUCE_SCATTER_BLOCK": 8, "BARRIER": 9}
"""``CollectiveCommType`` enum values of et_def.proto."""
# AttributeProto oneof field numbers by value type (et_def.proto)
_ATTR_FIELD = {"int64": 9, "uint64": 13, "bool": 27, "bool_list": 28, "string": 29}
_VARINT, _LEN = 0, 2


def _varint(n: int) -> bytes:
    if n < 0:  # int64: two's complement, 10 bytes
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _attribute(name: str, kind: str, value: Any) -> bytes:
    if kind not in _ATTR_FIELD:
        raise ExportError(f"Chakra attribute {name!r}: type {kind!r} is not supported; use "
                          f"one of {', '.join(sorted(_ATTR_FIELD))}")
    out = _len_field(1, name.encode()) if name else b""
    field = _ATTR_FIELD[kind]
    if kind == "string":
        return out + _len_field(field, str(value).encode())
    if kind == "bool_list":  # BoolList { repeated bool values = 1; } (packed)
        vals = [bool(v) for v in value]
        inner = _len_field(1, bytes(int(v) for v in vals)) if vals else b""
        return out + _len_field(field, inner)
    v = int(value)
    if kind == "uint64" and v < 0:
        raise ExportError(f"Chakra attribute {name!r}: uint64 value {v} is negative")
    # a oneof member is written even at its default value (explicit presence)
    return out + _key(field, _VARINT) + _varint(v)


def encode_node(node: dict[str, Any]) -> bytes:
    """One ``Node`` message: ``{"id", "name", "type" (a NODE_TYPES key), "data_deps",
    "ctrl_deps" (optional), "attrs": [(name, kind, value), ...]}``."""
    if node["type"] not in NODE_TYPES:
        raise ExportError(f"Chakra node type {node['type']!r}: use one of "
                          f"{', '.join(NODE_TYPES)}")
    out = bytearray()
    if node["id"]:
        out += _key(1, _VARINT) + _varint(int(node["id"]))
    if node.get("name"):
        out += _len_field(2, str(node["name"]).encode())
    if NODE_TYPES[node["type"]]:
        out += _key(3, _VARINT) + _varint(NODE_TYPES[node["type"]])
    for field, key in ((4, "ctrl_deps"), (5, "data_deps")):
        deps: Sequence[int] = node.get(key) or ()
        if deps:
            out += _len_field(field, b"".join(_varint(int(d)) for d in deps))
    for name, kind, value in node.get("attrs", ()):
        out += _len_field(10, _attribute(name, kind, value))
    return bytes(out)


def encode_metadata(version: str) -> bytes:
    """A ``GlobalMetadata`` message with ``version``."""
    return _len_field(1, version.encode()) if version else b""


def _delimited(msg: bytes) -> bytes:
    return _varint(len(msg)) + msg


def write_trace(path: Path, nodes: Iterable[dict[str, Any]], version: str = "0.0.4") -> Path:
    """Write one ``.et`` file: the metadata, then every node, each length-prefixed."""
    with path.open("wb") as fh:
        fh.write(_delimited(encode_metadata(version)))
        for node in nodes:
            fh.write(_delimited(encode_node(node)))
    return path
