"""A device's JSON state (``<base>/<friendly_name>``) read onto one of its entities, in Home
Assistant's terms: "on"/"off", "open"/"closed", "locked"/"unlocked", brightness 0..255,
kelvin, current_position, hvac_action...

Only the properties of features the entity has, and that are published (access bit 1), are
read; a value of the wrong type is ignored, never guessed at."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from device_adapters.wire import brightness_from_wire, clamp, mired_kelvin, ranged_to_percentage
from device_adapters.zigbee2mqtt.exposes import ACCESS_STATE, Feature

Document = Mapping[str, Any]
_MISSING = object()
_COLOR_MODES = frozenset({"xy", "hs", "color_temp"})
_HVAC_ACTIONS = {"idle": "idle", "heat": "heating", "cool": "cooling", "fan_only": "fan",
                 "dry": "drying", "off": "off"}
FAN_SPEEDS = ("low", "medium", "high")  # ordered: the fan's percentage steps


@dataclass(frozen=True, slots=True)
class Update:
    state: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(features: Mapping[str, Feature], role: str, document: Document) -> Any:
    feature = features.get(role)
    if feature is None or not feature["access"] & ACCESS_STATE:
        return _MISSING
    return document.get(feature["property"], _MISSING)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _binary(feature: Feature | None, value: Any, on: str = "on", off: str = "off") -> str | None:
    if feature is None or value is _MISSING:
        return None
    if value == feature.get("value_on") and type(value) is type(feature.get("value_on")):
        return on
    if value == feature.get("value_off") and type(value) is type(feature.get("value_off")):
        return off
    return None


def fan_speeds(feature: Feature | None) -> list[str]:
    return [v for v in FAN_SPEEDS if feature and v in feature.get("values", ())]


def fan_presets(feature: Feature | None) -> list[str]:
    values = feature.get("values", ()) if feature else ()
    return [v for v in values if v not in FAN_SPEEDS and v != "off"]


def _light(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    attributes: dict[str, Any] = {}
    level = _number(_value(features, "brightness", document))
    if level:  # 0 is "off", which the state says
        scale = features["brightness"].get("value_max") or 254
        attributes["brightness"] = brightness_from_wire(level, scale)
    mireds = _number(_value(features, "color_temp", document))
    if mireds and mireds > 0:
        attributes["color_temp_kelvin"] = mired_kelvin(mireds)
        attributes["color_temp"] = round(mireds)
    color_role = "color_xy" if "color_xy" in features else "color_hs"
    color = _value(features, color_role, document)
    if isinstance(color, dict):
        x, y = _number(color.get("x")), _number(color.get("y"))
        hue, saturation = _number(color.get("hue")), _number(color.get("saturation"))
        if x is not None and y is not None:
            attributes["xy_color"] = [x, y]
        if hue is not None and saturation is not None:
            attributes["hs_color"] = [hue, saturation]
    color_mode = document.get("color_mode")
    if isinstance(color_mode, str) and color_mode in _COLOR_MODES:
        attributes["color_mode"] = color_mode
    return Update(_binary(features.get("state"), _value(features, "state", document)), attributes)


def _switch(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    return Update(_binary(features.get("state"), _value(features, "state", document)))


def _cover(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    attributes: dict[str, Any] = {}
    state = None
    position = _number(_value(features, "position", document))
    if position is not None:
        attributes["current_position"] = round(clamp(position, 0, 100))
        state = "closed" if attributes["current_position"] == 0 else "open"
    tilt = _number(_value(features, "tilt", document))
    if tilt is not None:
        attributes["current_tilt_position"] = round(clamp(tilt, 0, 100))
    raw = _value(features, "state", document)
    if state is None and isinstance(raw, str):
        # Zigbee2MQTT's OPEN / CLOSE / STOP; a stopped cover is open unless it was closed.
        state = {"OPEN": "open", "CLOSE": "closed"}.get(raw.upper())
        if raw.upper() == "STOP":
            state = "closed" if entity_state == "closed" else "open"
    return Update(state, attributes)


def _lock(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    state = _binary(features.get("state"), _value(features, "state", document),
                    "locked", "unlocked")
    lock_state = _value(features, "lock_state", document)
    attributes = {"lock_state": lock_state} if isinstance(lock_state, str) else {}
    return Update(state, attributes)


LAST_MODE = "last_hvac_mode"


def _climate(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    attributes: dict[str, Any] = {}
    setpoint_role = "heating_setpoint" if "heating_setpoint" in features else "cooling_setpoint"
    for role, attribute in ((setpoint_role, "temperature"),
                            ("local_temperature", "current_temperature")):
        number = _number(_value(features, role, document))
        if number is not None:
            attributes[attribute] = number
    action = _value(features, "running_state", document)
    if isinstance(action, str) and action in _HVAC_ACTIONS:
        attributes["hvac_action"] = _HVAC_ACTIONS[action]
    for role, attribute in (("preset", "preset_mode"), ("fan_mode", "fan_mode")):
        value = _value(features, role, document)
        if isinstance(value, str) and value in features[role].get("values", ()):
            attributes[attribute] = value
    if "system_mode" in features:
        mode = _value(features, "system_mode", document)
        state = mode if isinstance(mode, str) and mode in features["system_mode"].get(
            "values", ()) else None
        if state not in (None, "off"):
            attributes[LAST_MODE] = state  # what "turn it back on" returns to
    else:  # without a system_mode the thermostat only ever does what its set point says
        state = ("heat" if setpoint_role == "heating_setpoint" else "cool") if attributes else None
    return Update(state, attributes)


def _fan(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    attributes: dict[str, Any] = {}
    state = _binary(features.get("state"), _value(features, "state", document))
    mode = _value(features, "mode", document)
    speeds = fan_speeds(features.get("mode"))
    if isinstance(mode, str):
        if mode in speeds:
            attributes["percentage"] = ranged_to_percentage(1, len(speeds), speeds.index(mode) + 1)
        elif mode in fan_presets(features.get("mode")):
            attributes["preset_mode"] = mode
        elif mode == "off" and "state" not in features:
            state = "off"
        if mode != "off" and "state" not in features:
            state = "on"
    return Update(state, attributes)


def _sensor(features: Mapping[str, Feature], document: Document, entity_state: Any) -> Update:
    value = _value(features, "value", document)
    if features["value"]["type"] == "numeric":
        return Update(None if _number(value) is None else str(value))
    return Update(value if isinstance(value, str) and value else None)


def _binary_sensor(features: Mapping[str, Feature], document: Document,
                   entity_state: Any) -> Update:
    return Update(_binary(features["value"], _value(features, "value", document)))


READERS: dict[str, Callable[[Mapping[str, Feature], Document, Any], Update]] = {
    "light": _light, "switch": _switch, "cover": _cover, "lock": _lock, "climate": _climate,
    "fan": _fan, "sensor": _sensor, "binary_sensor": _binary_sensor,
}


def read(kind: str, features: Mapping[str, Feature], document: Document,
         entity_state: Any) -> Update | None:
    """What ``document`` says about the entity; None when it says nothing."""
    reader = READERS.get(kind)
    if reader is None:
        return None
    update = reader(features, document, entity_state)
    return update if update.state is not None or update.attributes else None
