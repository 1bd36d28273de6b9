"""A Zigbee2MQTT group as one light or switch entity, from what its members expose.

A group's ``members`` are ``{"ieee_address", "endpoint"}`` pairs; the member's light or
switch is the specific expose of that endpoint (named in the device's ``endpoints`` map, as
``l1``), or its only one without an endpoint. A group with a light member is a light that
can do what any of its lights can (Home Assistant's light groups do the same); without one,
a switch. A group reaching a lock, cover, climate or fan is left out: a group command would
reach it too. Zigbee2MQTT publishes a group's state on ``<base>/<group>`` like a device's and
takes the plain feature names on ``<base>/<group>/set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any, Protocol

from assistant.device_data import DeviceLimits
from device_adapters.zigbee2mqtt.exposes import ACCESS_SET, ACCESS_STATE, EntitySpec, Feature

_GROUP_ACCESS = ACCESS_STATE | ACCESS_SET
_OTHER_SPECIFIC = frozenset({"lock", "cover", "climate", "fan"})


class Member(Protocol):
    specs: list[EntitySpec]
    record: dict[str, Any]


def _endpoint_name(member: Member, endpoint: Any) -> str | None:
    endpoints = member.record.get("endpoints")
    entry = endpoints.get(str(endpoint)) if isinstance(endpoints, dict) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def _member_specs(member: Member, endpoint: Any) -> list[EntitySpec]:
    specific = [s for s in member.specs if s.specific]
    wanted = _endpoint_name(member, endpoint)
    chosen = [s for s in specific if s.endpoint == wanted]
    return chosen or [s for s in specific if s.endpoint is None]


def group_spec(members: Any, devices: Mapping[str, Member], limits: DeviceLimits
               ) -> EntitySpec | None:
    """The group's entity, or None when it has no light or switch member (or a risky one)."""
    if not isinstance(members, list):
        return None
    found: list[EntitySpec] = []
    for entry in islice(members, limits.max_list_items):
        ieee = entry.get("ieee_address") if isinstance(entry, dict) else None
        device = devices.get(ieee.lower()) if isinstance(ieee, str) else None
        if device is not None:
            found.extend(_member_specs(device, entry.get("endpoint")))
    if any(spec.domain in _OTHER_SPECIFIC for spec in found):
        return None
    lights = [s for s in found if s.domain == "light"]
    if lights:
        return EntitySpec("light", "light", None, _light_features(lights))
    if any(s.domain == "switch" for s in found):
        return EntitySpec("switch", "switch", None, {"state": _plain("state", "binary", {
            "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"})})
    return None


def _plain(name: str, kind: str, extra: Mapping[str, Any]) -> Feature:
    return {"type": kind, "name": name, "property": "color" if name.startswith("color_")
            else name, "access": _GROUP_ACCESS, **extra}


def _light_features(lights: list[EntitySpec]) -> dict[str, Feature]:
    features = {"state": _plain("state", "binary", {
        "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"})}
    roles = [s.features for s in lights]
    if any("brightness" in r for r in roles):
        features["brightness"] = _plain("brightness", "numeric", {"value_min": 0, "value_max": max(
            r["brightness"].get("value_max", 254) for r in roles if "brightness" in r)})
    temps = [r["color_temp"] for r in roles if "color_temp" in r]
    if temps:
        features["color_temp"] = _plain("color_temp", "numeric", {
            "value_min": min(t.get("value_min", 153) for t in temps),
            "value_max": max(t.get("value_max", 500) for t in temps)})
    for role in ("color_xy", "color_hs"):
        if any(role in r for r in roles):
            features[role] = _plain(role, "composite", {})
            break
    return features
