"""light with ``schema: json``: one JSON state and one JSON command carry power,
brightness, colour and colour temperature."""

from collections.abc import Mapping
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import (
    Command, ComponentKind, Reader, Request, Update
)
from device_adapters.ha_discovery.components.light import (
    TOGGLE,
    brightness_param,
    color_temp_attributes,
    color_temp_to_wire,
    dims,
    kelvin_param,
    light_details,
    rgb_param,
)
from device_adapters.ha_discovery.components.shared import message, unsupported
from device_adapters.ha_discovery.vocabulary import Config
from device_adapters.wire import (
    brightness_from_wire, brightness_to_wire, parse_json_object, scale_rgb
)


def _color_modes(config: Mapping[str, Any]) -> list[str]:
    modes = config.get("supported_color_modes")
    if modes:
        return list(modes)
    return ["brightness"] if config.get("brightness") else ["onoff"]


def _state(config: Config, value: str, entity: Entity) -> Update:
    document = parse_json_object(value)
    state = None
    if "state" in document:
        raw_state = document["state"]
        if raw_state is not None and raw_state not in ("ON", "OFF"):
            raise ValueError(f"unexpected light state {str(raw_state)[:80]!r}")
        state = raw_state.lower() if raw_state else "unknown"
    attributes: Config = {}
    if document.get("brightness"):
        level = float(document["brightness"])
        attributes["brightness"] = brightness_from_wire(level, config["brightness_scale"])
    color = document.get("color")
    if isinstance(color, dict) and all(channel in color for channel in ("r", "g", "b")):
        attributes["rgb_color"] = [int(color[channel]) for channel in ("r", "g", "b")]
    if document.get("color_temp") is not None:
        attributes.update(color_temp_attributes(config, float(document["color_temp"])))
    if isinstance(document.get("color_mode"), str):
        attributes["color_mode"] = document["color_mode"]
    if "effect" in document:
        attributes["effect"] = document["effect"]
    return Update(state, attributes)


def _turn_on(request: Request) -> list[MqttMessage]:
    config = request.config
    modes = _color_modes(config)
    brightness, rgb, kelvin = brightness_param(request), rgb_param(request), kelvin_param(request)
    if brightness == 0:
        return _turn_off(request)
    command: Config = {"state": "ON"}
    if rgb is not None:
        if "rgb" not in modes:
            raise unsupported(request, "rgb_color")
        # A light that dims gets the pure color; one that cannot carries brightness in it.
        red, green, blue = scale_rgb(rgb, 255 if dims(modes) else brightness or 255)
        command["color"] = {"r": red, "g": green, "b": blue}
    if brightness is not None:
        if not dims(modes):
            raise unsupported(request, "brightness")
        command["brightness"] = brightness_to_wire(brightness, config["brightness_scale"])
    if kelvin is not None:
        if "color_temp" not in modes:
            raise unsupported(request, "color_temp_kelvin")
        command["color_temp"] = color_temp_to_wire(config, kelvin)
    return [message(request, "command_topic", command)]


def _turn_off(request: Request) -> list[MqttMessage]:
    return [message(request, "command_topic", {"state": "OFF"})]


KIND = ComponentKind(
    name="light_json",
    component="light",
    schemas=("json",),
    defaults={"brightness_scale": 255},
    required=("command_topic",),
    readers=(Reader("state_topic", None, _state),),
    commands={
        "turn_on": Command(_turn_on, ("command_topic",)),
        "turn_off": Command(_turn_off, ("command_topic",)),
    },
    toggle=TOGGLE,
    details=lambda config: light_details(_color_modes(config), config),
)
