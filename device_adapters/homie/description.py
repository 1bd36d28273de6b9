"""What a Homie device says it is: the v5 ``$description`` document, or the v4 attribute
topics gathered into the same shape.

Everything here is device text. Ids must match the convention's id pattern before they go
into a topic; an object (device, node, property) with an illegal known field is ignored as a
whole, unknown fields are ignored, as the convention's forward-compatibility rules say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from device_adapters.homie.values import DATATYPES, V4_DATATYPES, FormatError, check_format

ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
V5_VERSION = re.compile(r"5\.[0-9]+")
V4_VERSION = re.compile(r"4\.[0-9]+(?:\.[0-9]+)?")
# Device states; v4 also knows "alert" (connected, but something needs a human).
STATES = frozenset({"init", "ready", "disconnected", "sleeping", "lost"})
V4_STATES = STATES | {"alert"}
# A sleeping device's readings still hold, and it wakes to commands; an alerting one is up.
AVAILABLE_STATES = frozenset({"ready", "sleeping", "alert"})


class DescriptionError(ValueError):
    """A description (or a part of it) the convention does not allow."""


def is_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class PropertySpec:
    id: str
    name: str | None
    datatype: str
    format: str | None = None
    settable: bool = False
    retained: bool = True
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    name: str | None
    type: str | None
    properties: tuple[PropertySpec, ...]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    id: str
    version: int  # the convention's major version: 4 or 5
    name: str | None
    nodes: tuple[NodeSpec, ...]
    root: str | None = None  # the root of the device's tree, when it is a child


def _text(document: Mapping[str, Any], field: str) -> str | None:
    value = document.get(field)
    if value is not None and not isinstance(value, str):
        raise DescriptionError(f"{field} is not a string")
    return value


def _flag(document: Mapping[str, Any], field: str, default: bool) -> bool:
    value = document.get(field, default)
    if not isinstance(value, bool):
        raise DescriptionError(f"{field} is not a boolean")
    return value


def _property(property_id: Any, document: Any, datatypes: frozenset[str]) -> PropertySpec:
    if not is_id(property_id) or not isinstance(document, dict):
        raise DescriptionError(f"property {property_id!r} has an illegal id or is not an object")
    datatype = document.get("datatype")
    if not isinstance(datatype, str) or datatype not in datatypes:
        raise DescriptionError(f"property {property_id!r} has datatype {datatype!r}")
    format_text = _text(document, "format")
    try:
        check_format(datatype, format_text)
    except FormatError as error:
        raise DescriptionError(f"property {property_id!r}: {error}") from None
    return PropertySpec(property_id, _text(document, "name"), datatype, format_text,
                        _flag(document, "settable", False), _flag(document, "retained", True),
                        _text(document, "unit"))


def _node(node_id: Any, document: Any, skipped: list[str]) -> NodeSpec:
    if not is_id(node_id) or not isinstance(document, dict):
        raise DescriptionError(f"node {node_id!r} has an illegal id or is not an object")
    properties = document.get("properties", {})
    if not isinstance(properties, dict):
        raise DescriptionError(f"node {node_id!r}: properties is not an object")
    kept = []
    for property_id, spec in properties.items():
        try:
            kept.append(_property(property_id, spec, DATATYPES))
        except DescriptionError as error:
            skipped.append(f"{node_id}: {error}")
    return NodeSpec(node_id, _text(document, "name"), _text(document, "type"), tuple(kept))


def parse_v5(device_id: str, document: Mapping[str, Any]) -> tuple[DeviceSpec, list[str]]:
    """The device a ``$description`` document describes, and what in it was ignored.

    Raises DescriptionError when the device itself is not valid."""
    homie, version = document.get("homie"), document.get("version")
    if not isinstance(homie, str) or not V5_VERSION.fullmatch(homie):
        raise DescriptionError(f"homie is {homie!r}, not 5.x")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DescriptionError("version is not an integer")
    nodes, root = document.get("nodes", {}), document.get("root")
    if not isinstance(nodes, dict):
        raise DescriptionError("nodes is not an object")
    if root is not None and not is_id(root):
        raise DescriptionError("root is not a device id")
    skipped: list[str] = []
    kept = []
    for node_id, spec in nodes.items():
        try:
            kept.append(_node(node_id, spec, skipped))
        except DescriptionError as error:
            skipped.append(str(error))
    return DeviceSpec(device_id, 5, _text(document, "name"), tuple(kept), root), skipped


def _v4_list(text: str | None) -> list[str]:
    return [] if not text else [item for item in text.split(",") if is_id(item)]


def assemble_v4(device_id: str, attributes: Mapping[str, str]) -> DeviceSpec:
    """The device that v4 attribute topics describe so far (``"$name"``,
    ``"engine/$properties"``, ``"engine/temperature/$datatype"`` … relative to the device);
    a property without a valid datatype or format is left out until it has one."""
    nodes = []
    for node_id in _v4_list(attributes.get("$nodes")):
        properties = []
        for property_id in _v4_list(attributes.get(f"{node_id}/$properties")):
            base = f"{node_id}/{property_id}/$"
            document: dict[str, Any] = {
                field: attributes[base + field] for field in ("name", "datatype", "format",
                                                              "unit") if base + field in attributes}
            for flag in ("settable", "retained"):
                if base + flag in attributes:
                    document[flag] = {"true": True, "false": False}.get(attributes[base + flag])
            try:
                properties.append(_property(property_id, document, V4_DATATYPES))
            except DescriptionError:
                continue  # not complete yet, or wrong: the next attribute may fix it
        nodes.append(NodeSpec(node_id, attributes.get(f"{node_id}/$name"),
                              attributes.get(f"{node_id}/$type"), tuple(properties)))
    return DeviceSpec(device_id, 4, attributes.get("$name"), tuple(nodes))
