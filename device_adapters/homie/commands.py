"""Entity commands as Homie ``…/<property>/set`` messages.

A controller publishes to ``set`` non-retained only; QoS 2 for a retained property (the
convention's recommendation) and QoS 0 for a non-retained one, whose commands are
time-sensitive: "either you get it now, or you don't get it at all".
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assistant.device_data import clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.homie.description import PropertySpec
from device_adapters.homie.entities import brightness_range, preferred_color
from device_adapters.homie.values import (
    INT64,
    color_text,
    number_text,
    parse_choices,
    parse_range,
)
from device_adapters.wire import brightness_to_wire, clamp, is_exact_topic, scale_rgb

# QoS 1 like every command of the hub: the link drops un-acknowledged re-sends of
# commands that may not go out late, which it tracks for QoS 1.
COMMAND_QOS = 1


@dataclass(frozen=True, slots=True)
class _Target:
    topic: str  # the property's own topic; commands go to <topic>/set
    spec: PropertySpec


@dataclass(frozen=True, slots=True)
class _Request:
    entity: Entity
    parts: Mapping[str, _Target]
    params: Mapping[str, Any]

    def part(self, role: str, what: str) -> _Target:
        target = self.parts.get(role)
        if target is None:
            raise CommandNotSupportedError(f"{self.entity.entity_id} does not support {what}")
        return target


def _targets(entity: Entity) -> dict[str, _Target]:
    """The settable properties behind ``entity``, from its wire; a v4 entity has none."""
    parts = entity.wire.get("parts")
    if entity.wire.get("version") != 5 or not isinstance(parts, dict):
        raise CommandNotSupportedError(f"{entity.entity_id} is read-only (a Homie 4 device)")
    targets = {}
    for role, part in parts.items():
        fields = {key: value for key, value in part.items() if key != "topic"}
        try:
            spec = PropertySpec(**fields)
        except TypeError:
            continue
        if spec.settable and is_exact_topic(part.get("topic")):
            targets[role] = _Target(part["topic"], spec)
    return targets


def _set(target: _Target, payload: str) -> MqttMessage:
    return MqttMessage(f"{target.topic}/set", payload.encode("utf-8"), qos=COMMAND_QOS,
                       retain=False)


def _number_param(request: _Request, name: str) -> float:
    value = request.params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value):
        raise CommandNotSupportedError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _brightness_param(request: _Request) -> float | None:
    if request.params.get("brightness") is None:
        return None
    brightness = _number_param(request, "brightness")
    if not 0 <= brightness <= 255:
        raise CommandNotSupportedError(f"brightness {brightness:g} is outside 0..255")
    return brightness


def _rgb_param(request: _Request) -> tuple[int, int, int] | None:
    value = request.params.get("rgb_color")
    if value is None:
        return None
    if not (isinstance(value, list | tuple) and len(value) == 3 and all(
            isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255
            for c in value)):
        raise CommandNotSupportedError(f"rgb_color must be three numbers 0..255, got {value!r}")
    red, green, blue = (round(channel) for channel in value)
    return red, green, blue


def _switch(on: bool) -> Callable[[_Request], list[MqttMessage]]:
    def encode(request: _Request) -> list[MqttMessage]:
        role = "power" if request.entity.domain == "light" else "state"
        return [_set(request.part(role, "on/off"), "true" if on else "false")]
    return encode


def _brightness_level(target: _Target, brightness: float) -> str:
    """Home Assistant's 0..255 on the property's range; never its minimum, which is off."""
    numbers = brightness_range(target.spec)
    assert numbers is not None and numbers.low is not None and numbers.high is not None
    span = numbers.high - numbers.low
    integer = target.spec.datatype == "integer"
    if integer:
        level = numbers.low + brightness_to_wire(brightness, int(span))
    else:
        level = numbers.low + clamp(span * brightness / 255, span / 255, span)
    return number_text(clamp(numbers.snap(level), numbers.low, numbers.high), integer)


def _current_color(entity: Entity) -> tuple[float, float, float]:
    """The light's color at full brightness, as its attributes tell it (white if unknown)."""
    rgb, hs = entity.attributes.get("rgb_color"), entity.attributes.get("hs_color")
    if isinstance(rgb, list) and len(rgb) == 3:
        return tuple(float(c) for c in rgb)  # type: ignore[return-value]
    if isinstance(hs, list) and len(hs) == 2:
        channels = colorsys.hsv_to_rgb(float(hs[0]) / 360, float(hs[1]) / 100, 1.0)
        return tuple(channel * 255 for channel in channels)  # type: ignore[return-value]
    return 255.0, 255.0, 255.0


def _light_on(request: _Request) -> list[MqttMessage]:
    brightness, rgb = _brightness_param(request), _rgb_param(request)
    if brightness == 0:
        return _switch(False)(request)
    messages = [_set(request.part("power", "on/off"), "true")]
    level = request.parts.get("brightness")
    if brightness is not None and level is not None:
        messages.append(_set(level, _brightness_level(level, brightness)))
    if rgb is not None or (brightness is not None and level is None):
        color = request.part("color", "rgb_color" if rgb is not None else "brightness")
        kind = preferred_color(color.spec)
        if level is None and kind == "xyz" and brightness is not None:
            raise CommandNotSupportedError(
                f"{request.entity.entity_id} cannot dim: xyz colors carry no brightness")
        shade: tuple[float, ...] = rgb or _current_color(request.entity)
        if level is None and kind != "xyz":  # rgb and hsv carry the brightness
            current = request.entity.attributes.get("brightness")
            shade = scale_rgb(shade, brightness or current or 255)  # type: ignore[arg-type]
        messages.append(_set(color, color_text(shade, kind)))  # type: ignore[arg-type]
    return messages


def _set_value(request: _Request) -> list[MqttMessage]:
    target = request.part("state", "set_value")
    integer = target.spec.datatype == "integer"
    numbers = parse_range(target.spec.format, integer)
    value = numbers.snap(_number_param(request, "value"))
    if not numbers.holds(value) or (integer and not -INT64 <= round(value) < INT64):
        raise CommandNotSupportedError(
            f"{request.entity.entity_id}: {value:g} is outside {target.spec.format}")
    return [_set(target, number_text(value, integer))]


def _select_option(request: _Request) -> list[MqttMessage]:
    target = request.part("state", "select_option")
    option = request.params.get("option")
    for choice in parse_choices(target.spec.format, "enum"):
        # Options are shown cleaned; the device gets its own spelling back.
        if option is not None and option in (choice, clean_text(choice, 255)):
            return [_set(target, choice)]
    raise CommandNotSupportedError(f"{request.entity.entity_id} has no option {option!r}")


_COMMANDS: dict[str, dict[str, Callable[[_Request], list[MqttMessage]]]] = {
    "light": {"turn_on": _light_on, "turn_off": _switch(False)},
    "switch": {"turn_on": _switch(True), "turn_off": _switch(False)},
    "number": {"set_value": _set_value},
    "select": {"select_option": _select_option},
}


def encode(entity: Entity, command: EntityCommand) -> list[MqttMessage]:
    service = command.service
    if service == "toggle" and entity.domain in ("light", "switch"):
        service = "turn_off" if entity.state == "on" else "turn_on"
    handler = _COMMANDS.get(entity.domain, {}).get(service)
    if handler is None:
        raise CommandNotSupportedError(
            f"{entity.entity_id} ({entity.domain}) has no {command.service!r} command")
    return handler(_Request(entity, _targets(entity), command.params))


def reports_state(entity: Entity) -> bool:
    """A retained property reports its value; a non-retained one sends events only, so a
    command to it is never confirmed (optimistic)."""
    parts = entity.wire.get("parts")
    if not isinstance(parts, dict):
        return False
    return all(part.get("retained") is not False for part in parts.values()
               if isinstance(part, dict))
