"""Entity commands as Zigbee2MQTT ``/set`` messages, and what each entity can be asked.

Zigbee2MQTT takes one JSON object on ``<base>/<friendly_name>/set`` whose keys are the
features' properties (``state_l1`` for endpoint l1, as the device's exposes name them), so a
command is one message: ``{"state": "ON", "brightness": 128}``. A feature is commandable
only when its access has the settable bit (2). Commands are QoS 1 and never retained.

Services follow Home Assistant's vocabulary (turn_on with brightness 0..255,
color_temp_kelvin, rgb_color, hs_color, xy_color; open_cover, set_cover_position,
set_cover_tilt_position; lock/unlock; set_temperature, set_hvac_mode, set_preset_mode;
set_percentage...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.wire import (
    brightness_to_wire,
    clamp,
    is_exact_topic,
    mired_kelvin,
    percentage_to_ranged,
)
from device_adapters.zigbee2mqtt.exposes import ACCESS_SET, Feature
from device_adapters.zigbee2mqtt.state import LAST_MODE, fan_presets, fan_speeds

COMMAND_QOS = 1
Features = Mapping[str, Feature]
Payload = dict[str, Any]
_DEFAULT_TEMPERATURE_RANGE = (7.0, 35.0)  # Home Assistant's, for a set point without limits


@dataclass(frozen=True, slots=True)
class _Request:
    entity: Entity
    features: Features
    params: Mapping[str, Any]

    def settable(self, role: str) -> Feature:
        feature = self.features.get(role)
        if feature is None or not feature["access"] & ACCESS_SET:
            raise CommandNotSupportedError(
                f"{self.entity.entity_id} cannot set its {role.replace('_', ' ')}")
        return feature

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self.params.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and low <= value <= high):
            raise CommandNotSupportedError(f"{name} must be a number {low:g}..{high:g}, "
                                           f"got {value!r}")
        return value

    def choice(self, name: str, choices: list[str]) -> str:
        value = self.params.get(name)
        if value not in choices:
            raise CommandNotSupportedError(
                f"{self.entity.entity_id}: {name} {value!r} is not one of {choices}")
        return value


def _set(feature: Feature, value: Any) -> Payload:
    return {feature["property"]: value}


def _binary_value(request: _Request, role: str, option: str) -> Payload:
    feature = request.settable(role)
    if option not in feature:
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no {option}")
    return _set(feature, feature[option])


def _on(role: str = "state") -> Callable[[_Request], Payload]:
    return lambda request: _binary_value(request, role, "value_on")


def _off(role: str = "state") -> Callable[[_Request], Payload]:
    return lambda request: _binary_value(request, role, "value_off")


def _light_turn_on(request: _Request) -> Payload:
    brightness = request.number("brightness", 0, 255)
    if brightness == 0:
        return _off()(request)
    payload = _on()(request)
    if brightness is not None:
        feature = request.settable("brightness")
        scale = feature.get("value_max", 254)
        payload.update(_set(feature, brightness_to_wire(brightness, int(scale if scale >= 1
                                                                         else 254))))
    kelvin = request.number("color_temp_kelvin", 1, 1_000_000)
    if kelvin is not None:
        feature = request.settable("color_temp")
        mireds = mired_kelvin(kelvin)
        low, high = feature.get("value_min", mireds), feature.get("value_max", mireds)
        payload.update(_set(feature, round(clamp(mireds, low, high))))
    color = _color(request)
    if color is not None:
        role = "color_xy" if "color_xy" in request.features else "color_hs"
        payload.update(_set(request.settable(role), color))
    return payload


def _color(request: _Request) -> Payload | None:
    """The colour asked for, in the form Zigbee2MQTT's ``color`` takes: r/g/b, hue/saturation
    or x/y (it converts between them for the light)."""
    for name, keys, limits in (("rgb_color", ("r", "g", "b"), ((0, 255),) * 3),
                               ("hs_color", ("hue", "saturation"), ((0, 360), (0, 100))),
                               ("xy_color", ("x", "y"), ((0, 1), (0, 1)))):
        value = request.params.get(name)
        if value is None:
            continue
        if not (isinstance(value, list | tuple) and len(value) == len(keys) and all(
                isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high
                for v, (low, high) in zip(value, limits, strict=True))):
            raise CommandNotSupportedError(f"{name} must be {len(keys)} numbers in range, "
                                           f"got {value!r}")
        rounded = [round(v) if name == "rgb_color" else v for v in value]
        return dict(zip(keys, rounded, strict=True))
    return None


def _toggle(request: _Request) -> Payload:
    feature = request.settable("state")
    if "value_toggle" in feature:
        return _set(feature, feature["value_toggle"])
    on = request.entity.state == "on"
    return _binary_value(request, "state", "value_off" if on else "value_on")


def _cover_state(word: str) -> Callable[[_Request], Payload]:
    """OPEN / CLOSE / STOP: an enum's value of that name, or a binary's on/off value."""

    def encode(request: _Request) -> Payload:
        feature = request.settable("state")
        if feature["type"] == "binary":
            option = {"OPEN": "value_on", "CLOSE": "value_off"}.get(word)
            if option is None or option not in feature:
                raise CommandNotSupportedError(f"{request.entity.entity_id} cannot {word.lower()}")
            return _set(feature, feature[option])
        for value in feature.get("values", ()):
            if value.upper() == word:
                return _set(feature, value)
        raise CommandNotSupportedError(f"{request.entity.entity_id} cannot {word.lower()}")

    return encode


def _position(role: str) -> Callable[[_Request], Payload]:
    def encode(request: _Request) -> Payload:
        feature = request.settable(role)
        percentage = request.number("position" if role == "position" else "tilt_position", 0, 100)
        if percentage is None:
            raise CommandNotSupportedError(f"{request.entity.entity_id}: a position is required")
        low, high = feature.get("value_min", 0), feature.get("value_max", 100)
        return _set(feature, round(low + (high - low) * percentage / 100))

    return encode


def _setpoint_role(features: Features) -> str:
    return "heating_setpoint" if "heating_setpoint" in features else "cooling_setpoint"


def temperature_range(features: Features) -> tuple[float, float]:
    feature = features.get(_setpoint_role(features)) or {}
    low, high = _DEFAULT_TEMPERATURE_RANGE
    return feature.get("value_min", low), feature.get("value_max", high)


def _set_temperature(request: _Request) -> Payload:
    feature = request.settable(_setpoint_role(request.features))
    temperature = request.number("temperature", *temperature_range(request.features))
    if temperature is None:
        raise CommandNotSupportedError(f"{request.entity.entity_id}: a temperature is required")
    payload = _set_hvac_mode(request) if request.params.get("hvac_mode") else {}
    payload.update(_set(feature, temperature))
    return payload


def _set_hvac_mode(request: _Request) -> Payload:
    feature = request.settable("system_mode")
    return _set(feature, request.choice("hvac_mode", feature.get("values", [])))


def _climate_turn_on(request: _Request) -> Payload:
    """Back on in the mode it last had (as Home Assistant's climate turn_on), else heat or
    auto, else the first mode that is not off."""
    feature = request.settable("system_mode")
    modes = [mode for mode in feature.get("values", ()) if mode != "off"]
    if not modes:
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no mode but off")
    wanted = (request.entity.state, request.entity.attributes.get(LAST_MODE), "heat", "auto")
    return _set(feature, next((mode for mode in wanted if mode in modes), modes[0]))


def _climate_turn_off(request: _Request) -> Payload:
    feature = request.settable("system_mode")
    if "off" not in feature.get("values", ()):
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no off mode")
    return _set(feature, "off")


def _enum_choice(role: str, param: str, choices: Callable[[Feature], list[str]]
                 ) -> Callable[[_Request], Payload]:
    def encode(request: _Request) -> Payload:
        feature = request.settable(role)
        return _set(feature, request.choice(param, choices(feature)))

    return encode


def _all_values(feature: Feature) -> list[str]:
    return list(feature.get("values", ()))


def _fan_turn_on(request: _Request) -> Payload:
    if "state" in request.features:
        payload = _on()(request)
    else:  # a fan without an on/off feature is switched by its mode
        feature = request.settable("mode")
        if "on" not in feature.get("values", ()):
            raise CommandNotSupportedError(f"{request.entity.entity_id} has no on mode")
        payload = _set(feature, "on")
    if request.params.get("percentage"):
        payload.update(_fan_set_percentage(request))
    if request.params.get("preset_mode") is not None:
        payload.update(_enum_choice("mode", "preset_mode", fan_presets)(request))
    return payload


def _fan_turn_off(request: _Request) -> Payload:
    if "state" in request.features:
        return _off()(request)
    feature = request.settable("mode")
    if "off" not in feature.get("values", ()):
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no off mode")
    return _set(feature, "off")


def _fan_set_percentage(request: _Request) -> Payload:
    percentage = request.number("percentage", 0, 100)
    if percentage is None:
        raise CommandNotSupportedError(f"{request.entity.entity_id}: a percentage is required")
    if percentage == 0:
        return _fan_turn_off(request)
    feature = request.settable("mode")
    speeds = fan_speeds(feature)
    if not speeds:
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no speeds")
    step = math.ceil(percentage_to_ranged(1, len(speeds), percentage))
    return _set(feature, speeds[int(clamp(step, 1, len(speeds))) - 1])


@dataclass(frozen=True, slots=True)
class _Command:
    encode: Callable[[_Request], Payload]
    roles: tuple[str, ...]  # settable features the entity needs (any one of them)
    needs_value: str | None = None  # a value the first role's feature must offer

    def available(self, features: Features) -> bool:
        settable = [features[r] for r in self.roles
                    if r in features and features[r]["access"] & ACCESS_SET]
        if not settable:
            return False
        return self.needs_value is None or self.needs_value in settable[0].get("values", ())


_ON_OFF = {
    "turn_on": _Command(_on(), ("state",)),
    "turn_off": _Command(_off(), ("state",)),
    "toggle": _Command(_toggle, ("state",)),
}
_COMMANDS: dict[str, dict[str, _Command]] = {
    "light": {**_ON_OFF, "turn_on": _Command(_light_turn_on, ("state",))},
    "switch": _ON_OFF,
    "cover": {
        "open_cover": _Command(_cover_state("OPEN"), ("state",)),
        "close_cover": _Command(_cover_state("CLOSE"), ("state",)),
        "stop_cover": _Command(_cover_state("STOP"), ("state",), "STOP"),
        "set_cover_position": _Command(_position("position"), ("position",)),
        "set_cover_tilt_position": _Command(_position("tilt"), ("tilt",)),
    },
    "lock": {"lock": _Command(_on(), ("state",)), "unlock": _Command(_off(), ("state",))},
    "climate": {
        "set_temperature": _Command(_set_temperature, ("heating_setpoint", "cooling_setpoint")),
        "set_hvac_mode": _Command(_set_hvac_mode, ("system_mode",)),
        "set_preset_mode": _Command(_enum_choice("preset", "preset_mode", _all_values),
                                    ("preset",)),
        "turn_on": _Command(_climate_turn_on, ("system_mode",)),
        "turn_off": _Command(_climate_turn_off, ("system_mode",), "off"),
    },
    "fan": {
        "turn_on": _Command(_fan_turn_on, ("state", "mode")),
        "turn_off": _Command(_fan_turn_off, ("state", "mode")),
        "set_percentage": _Command(_fan_set_percentage, ("mode",)),
        "set_preset_mode": _Command(_enum_choice("mode", "preset_mode", fan_presets), ("mode",)),
    },
}


def services(kind: str, features: Features) -> list[str]:
    available = {name for name, command in _COMMANDS.get(kind, {}).items()
                 if command.available(features)}
    if kind == "fan":  # a speed or a preset needs one of those values
        mode = features.get("mode")
        if not fan_speeds(mode):
            available.discard("set_percentage")
        if not fan_presets(mode):
            available.discard("set_preset_mode")
    return sorted(available)


def capabilities(kind: str, features: Features) -> dict[str, Any]:
    """The services the entity offers plus Home Assistant's details for its kind."""
    details: dict[str, Any] = {"services": services(kind, features)}
    if kind == "light":
        modes = ["color_temp"] if "color_temp" in features else []
        modes += ["xy"] if "color_xy" in features else ["hs"] if "color_hs" in features else []
        details["supported_color_modes"] = modes or (
            ["brightness"] if "brightness" in features else ["onoff"])
        details["brightness"] = details["supported_color_modes"] != ["onoff"]
        if "color_temp" in features:
            mireds = features["color_temp"]
            details["min_color_temp_kelvin"] = mired_kelvin(mireds.get("value_max", 500))
            details["max_color_temp_kelvin"] = mired_kelvin(mireds.get("value_min", 153))
    elif kind == "cover":
        details["reports_position"] = "position" in features and bool(
            features["position"]["access"] & 1)
        details["tilt"] = "tilt" in features
    elif kind == "climate":
        role = _setpoint_role(features)
        modes = features.get("system_mode", {}).get("values") or [
            "heat" if role == "heating_setpoint" else "cool"]
        low, high = temperature_range(features)
        unit = (features.get(role) or {}).get("unit")
        details.update(
            hvac_modes=list(modes), min_temp=low, max_temp=high,
            target_temp_step=(features.get(role) or {}).get("value_step", 0.5),
            temperature_unit={"°C": "C", "°F": "F"}.get(unit),
            preset_modes=list(features.get("preset", {}).get("values", ())))
    elif kind == "fan":
        count = len(fan_speeds(features.get("mode")))
        details.update(speed_range=[1, count] if count else [], speed_count=count,
                       preset_modes=fan_presets(features.get("mode")))
    return details


def encode(entity: Entity, command: EntityCommand) -> list[MqttMessage]:
    """The one ``/set`` message that carries out ``command`` on ``entity``."""
    kind, features = entity.wire.get("kind"), entity.wire.get("features")
    topic = entity.wire.get("command_topic")
    if not isinstance(features, dict) or not is_exact_topic(topic):
        raise CommandNotSupportedError(f"{entity.entity_id} has no Zigbee2MQTT command topic")
    handler = _COMMANDS.get(str(kind), {}).get(command.service)
    if handler is None or command.service not in services(str(kind), features):
        raise CommandNotSupportedError(
            f"{entity.entity_id} ({kind}) has no {command.service!r} command")
    payload = handler.encode(_Request(entity, features, command.params))
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return [MqttMessage(topic, body, qos=COMMAND_QOS, retain=False)]
