"""Zigbee2MQTT ``exposes`` as entity descriptions.

A device's ``definition.exposes`` (Zigbee2MQTT's guide, "Exposes") lists *specific* exposes
(``light``, ``switch``, ``cover``, ``lock``, ``climate``, ``fan``: a ``features`` list, an
optional ``endpoint``) and *generic* ones (``binary``, ``numeric``, ``enum``, ``text``,
``composite``, ``list``). Every generic expose has a ``property``: the key of its value in
the device's JSON state and in a ``/set`` command (``<name>_<endpoint>`` when it belongs to
an endpoint) and an ``access`` bitmask: 1 published in the state, 2 settable with ``/set``,
4 readable with ``/get``.

What becomes what:

- each specific expose is one entity of its type (``fan`` included), its features matched
  by name (``state``, ``brightness``, ``color_temp``, ``color_xy``, ``color_hs``, ``position``,
  ``tilt``, ``lock_state``, the climate set points, ``system_mode``, ``running_state``,
  ``preset``, the fan's ``state``/``mode``);
- a published binary is a ``binary_sensor``, a settable one a ``switch`` (a device setting:
  ``entity_category`` config unless the expose says otherwise);
- a published numeric, enum or text is a ``sensor``; a settable published numeric is a
  setting (config);
- composites and lists outside a light (level config, pin codes, schedules) are left out.

The expose's ``category`` becomes the entity category; exposes older Zigbee2MQTT releases
publish without one (``linkquality``...) are diagnostic all the same. Everything here comes
from the device: every string is cleaned and bounded, numbers must be finite, and a feature
that is not what its name promises is ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from assistant.device_data import DeviceLimits, bounded_text_list, clean_text

Feature = dict[str, Any]

ACCESS_STATE, ACCESS_SET, ACCESS_GET = 1, 2, 4
SPECIFIC_TYPES = ("light", "switch", "cover", "lock", "climate", "fan")
_GENERIC_TYPES = frozenset({"binary", "numeric", "enum", "text", "composite", "list"})
_CATEGORIES = frozenset({"config", "diagnostic"})
_PROPERTY = re.compile(r"[A-Za-z0-9_]{1,100}")
_ENDPOINT = re.compile(r"[A-Za-z0-9_]{1,40}")
_MAX_VALUE_CHARS = 100  # value_on/value_off/enum values: ON, LOCK, OPEN, heat...

# Feature name in a specific expose -> (role in the entity's wire description, its type).
_ROLES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "light": {
        "state": ("state", ("binary",)),
        "brightness": ("brightness", ("numeric",)),
        "color_temp": ("color_temp", ("numeric",)),
        "color_xy": ("color_xy", ("composite",)),
        "color_hs": ("color_hs", ("composite",)),
    },
    "switch": {"state": ("state", ("binary",))},
    "cover": {
        "state": ("state", ("binary", "enum")),
        "position": ("position", ("numeric",)),
        "tilt": ("tilt", ("numeric",)),
    },
    "lock": {"state": ("state", ("binary",)), "lock_state": ("lock_state", ("enum",))},
    "climate": {
        "occupied_heating_setpoint": ("heating_setpoint", ("numeric",)),
        "current_heating_setpoint": ("heating_setpoint", ("numeric",)),
        "occupied_cooling_setpoint": ("cooling_setpoint", ("numeric",)),
        "local_temperature": ("local_temperature", ("numeric",)),
        "system_mode": ("system_mode", ("enum",)),
        "running_state": ("running_state", ("enum",)),
        "preset": ("preset", ("enum",)),
        "fan_mode": ("fan_mode", ("enum",)),
        "mode": ("fan_mode", ("enum",)),  # the guide's climate example names it "mode"
    },
    "fan": {"state": ("state", ("binary",)), "mode": ("mode", ("enum",))},
}
# An entity of the type needs one of these roles.
_NEEDS_ONE_OF: dict[str, tuple[str, ...]] = {
    "light": ("state",),
    "switch": ("state",),
    "cover": ("state", "position"),
    "lock": ("state",),
    "climate": ("heating_setpoint", "cooling_setpoint"),
    "fan": ("state", "mode"),
}

# Home Assistant device classes from the expose's name (the property without endpoint).
SENSOR_CLASSES = {
    "temperature": "temperature", "device_temperature": "temperature",
    "local_temperature": "temperature", "humidity": "humidity", "pressure": "pressure",
    "illuminance": "illuminance", "illuminance_lux": "illuminance", "battery": "battery",
    "power": "power", "energy": "energy", "voltage": "voltage", "current": "current",
    "co2": "carbon_dioxide", "eco2": "carbon_dioxide", "pm25": "pm25", "pm10": "pm10",
    "voc": "volatile_organic_compounds", "soil_moisture": "moisture",
}
BINARY_CLASSES = {
    "contact": "door", "occupancy": "occupancy", "presence": "presence",
    "water_leak": "moisture", "smoke": "smoke", "vibration": "vibration", "tamper": "tamper",
    "battery_low": "battery", "gas": "gas", "carbon_monoxide": "carbon_monoxide",
    "window": "window", "window_open": "window", "moving": "moving",
}
# Diagnostic even when an older Zigbee2MQTT publishes them without a category.
_DIAGNOSTIC_NAMES = frozenset({"linkquality", "update", "update_available", "last_seen"})


@dataclass(frozen=True)
class EntitySpec:
    """One entity a device's exposes describe."""

    key: str  # unique within the device: "light", "switch_l1", "temperature"
    domain: str
    label: str | None  # None: the entity is the device itself and carries its name
    features: dict[str, Feature]  # role -> feature ("state", "brightness", "value"...)
    endpoint: str | None = None
    device_class: str | None = None
    entity_category: str | None = None
    unit: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # capabilities: state_class
    specific: bool = False  # a light/switch/cover/lock/climate/fan expose, not a generic one


def entity_specs(exposes: Any, limits: DeviceLimits) -> list[EntitySpec]:
    """The entities ``exposes`` describe, at most ``max_list_items``, with unique keys."""
    if not isinstance(exposes, list):
        raise ValueError("definition.exposes is not a list")
    specs: dict[str, EntitySpec] = {}
    for raw in islice(exposes, limits.max_list_items):
        spec = _spec(raw, limits) if isinstance(raw, dict) else None
        if spec is not None and spec.key not in specs:
            if spec.label is None and any(s.label is None for s in specs.values()):
                # A fan with a light: the first is the device, the next one "<device> light".
                spec = replace(spec, label=spec.domain)
            specs[spec.key] = spec
    return list(specs.values())


def _spec(raw: Mapping[str, Any], limits: DeviceLimits) -> EntitySpec | None:
    kind = raw.get("type")
    if kind in SPECIFIC_TYPES:
        return _specific(kind, raw, limits)
    feature = clean_feature(raw, limits)
    return _generic(feature) if feature is not None else None


def _specific(kind: str, raw: Mapping[str, Any], limits: DeviceLimits) -> EntitySpec | None:
    features = raw.get("features")
    if not isinstance(features, list):
        return None
    endpoint = _endpoint(raw.get("endpoint"))
    roles: dict[str, Feature] = {}
    for item in islice(features, limits.max_list_items):
        feature = clean_feature(item, limits) if isinstance(item, dict) else None
        if feature is None:
            continue
        role = _ROLES[kind].get(feature["name"])
        if role is not None and feature["type"] in role[1]:
            roles.setdefault(role[0], feature)
    if "color_xy" in roles and "color_hs" in roles:
        # The guide: a light that takes colours better as hue/saturation lists color_hs first.
        names = [f.get("name") for f in features if isinstance(f, dict)]
        preferred = "color_hs" if names.index("color_hs") < names.index("color_xy") else "color_xy"
        roles = {role: f for role, f in roles.items()
                 if role not in ("color_xy", "color_hs") or role == preferred}
    if not any(role in roles for role in _NEEDS_ONE_OF[kind]):
        return None
    key, label = (f"{kind}_{endpoint}", endpoint) if endpoint else (kind, None)
    prop = roles.get("state", {}).get("property", "state")
    if kind == "switch" and prop not in ("state", f"state_{endpoint}"):
        # A switch of one setting ("window_detection"): named after what it switches.
        key, label = prop, clean_text(raw.get("label"), 100) or prop.replace("_", " ")
    return EntitySpec(key, kind, label, roles, endpoint=endpoint, entity_category=_category(raw),
                      specific=True)


def _generic(feature: Feature) -> EntitySpec | None:
    kind, access, name = feature["type"], feature["access"], feature["name"]
    category = feature.get("category") or ("diagnostic" if name in _DIAGNOSTIC_NAMES else None)
    label = feature.get("label") or name.replace("_", " ").capitalize()
    key, endpoint, unit = feature["property"], feature.get("endpoint"), feature.get("unit")
    if kind == "binary" and "value_on" in feature and "value_off" in feature:
        if access & ACCESS_SET:  # a device setting (child lock, eco mode, LED indicator)
            return EntitySpec(key, "switch", label, {"state": feature}, endpoint,
                              entity_category=category or "config")
        if access & ACCESS_STATE:
            return EntitySpec(key, "binary_sensor", label, {"value": feature}, endpoint,
                              device_class=BINARY_CLASSES.get(name), entity_category=category)
        return None
    if kind not in ("numeric", "enum", "text") or not access & ACCESS_STATE:
        return None
    if access & ACCESS_SET:  # a published setting (power-on behaviour, auto-lock time)
        category = category or "config"
    device_class = SENSOR_CLASSES.get(name) if kind == "numeric" else None
    attributes: dict[str, Any] = {}
    if kind == "numeric" and unit:
        total = device_class == "energy"  # a meter's reading only grows
        attributes["state_class"] = "total_increasing" if total else "measurement"
    return EntitySpec(key, "sensor", label, {"value": feature}, endpoint, device_class=device_class,
                      entity_category=category, unit=unit, attributes=attributes)


def clean_feature(raw: Mapping[str, Any], limits: DeviceLimits) -> Feature | None:
    """One generic expose as plain bounded data, or None when it cannot be used."""
    kind = raw.get("type")
    prop = raw.get("property")
    if not isinstance(kind, str) or kind not in _GENERIC_TYPES or not isinstance(prop, str) \
            or not _PROPERTY.fullmatch(prop):
        return None
    name = raw.get("name")
    feature: Feature = {
        "type": kind,
        "name": name if isinstance(name, str) and _PROPERTY.fullmatch(name) else prop,
        "property": prop,
        "access": _access(raw.get("access")),
    }
    if kind == "composite" and "access" not in raw and isinstance(raw.get("features"), list):
        # The guide: composites need not carry an access; theirs is their features'.
        for item in islice(raw["features"], limits.max_list_items):
            feature["access"] |= _access(item.get("access")) if isinstance(item, dict) else 0
    for option, size in (("label", 100), ("unit", 20)):
        text = clean_text(raw.get(option), size)
        if text:
            feature[option] = text
    category = _category(raw)
    if category:
        feature["category"] = category
    endpoint = _endpoint(raw.get("endpoint"))
    if endpoint:
        feature["endpoint"] = endpoint
    for option in ("value_on", "value_off", "value_toggle"):
        if option in raw and (value := _scalar(raw[option])) is not None:
            feature[option] = value
    for option in ("value_min", "value_max", "value_step"):
        if (number := _finite(raw.get(option))) is not None:
            feature[option] = number
    if isinstance(raw.get("values"), list):
        feature["values"] = bounded_text_list(raw["values"], limits)
    return feature


def _category(raw: Mapping[str, Any]) -> str | None:
    category = raw.get("category")
    return category if isinstance(category, str) and category in _CATEGORIES else None


def _access(value: Any) -> int:
    return value & 7 if isinstance(value, int) and not isinstance(value, bool) else 0


def _endpoint(value: Any) -> str | None:
    return value if isinstance(value, str) and _ENDPOINT.fullmatch(value) else None


def _finite(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) and abs(value) < 2**53 else None


def _scalar(value: Any) -> str | bool | float | int | None:
    """A binary's on/off/toggle value: a short string, a bool or a finite number."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if clean_text(value, _MAX_VALUE_CHARS) == value else None
    return _finite(value)
