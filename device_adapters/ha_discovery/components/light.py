"""light, default schema: separate topics for power, brightness, RGB and colour temperature;
``on_command_type`` orders them. Also the colour vocabulary both light schemas share.
Left out: hs/xy/rgbw/rgbww/white/effect commands (and ``schema: template`` lights)."""

from collections.abc import Mapping
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.ha_discovery.components.kind import (
    Command, ComponentKind, Reader, Request, Toggle, Update
)
from device_adapters.ha_discovery.components.shared import (
    ON_OFF_PAYLOADS, message, number, send, state_reader, unsupported
)
from device_adapters.ha_discovery.vocabulary import Config
from device_adapters.wire import (
    brightness_from_wire, brightness_to_wire, clamp, mired_kelvin, scale_rgb
)

TOGGLE = Toggle("turn_off", "turn_on", frozenset({"on"}))

# -- shared by both schemas -------------------------------------------------------------------


def color_temp_attributes(config: Mapping[str, Any], value: float) -> Config:
    """A reported colour temperature (kelvin or mireds, as configured) in both units."""
    if config.get("color_temp_kelvin"):
        kelvin = round(value)
        return {"color_temp_kelvin": kelvin, "color_temp": mired_kelvin(kelvin)}
    return {"color_temp_kelvin": mired_kelvin(value), "color_temp": round(value)}


def color_temp_range(config: Mapping[str, Any]) -> tuple[int, int]:
    """Supported (min, max) kelvin; Home Assistant's 2000..6535 unless configured."""
    low = config.get("min_kelvin") or (
        mired_kelvin(config["max_mireds"]) if config.get("max_mireds") else 2000
    )
    high = config.get("max_kelvin") or (
        mired_kelvin(config["min_mireds"]) if config.get("min_mireds") else 6535
    )
    return low, high


def color_temp_to_wire(config: Mapping[str, Any], kelvin: float) -> int:
    low, high = color_temp_range(config)
    kelvin = clamp(kelvin, low, high)  # Home Assistant clamps to what the light supports
    return round(kelvin) if config.get("color_temp_kelvin") else mired_kelvin(kelvin)


def dims(modes: list[str]) -> bool:
    return any(mode != "onoff" for mode in modes)


def light_details(modes: list[str], config: Mapping[str, Any]) -> Config:
    details: Config = {"supported_color_modes": modes, "brightness": dims(modes)}
    if "color_temp" in modes:
        details["min_color_temp_kelvin"], details["max_color_temp_kelvin"] = color_temp_range(
            config
        )
    if config.get("effect_list"):
        details["effect_list"] = list(config["effect_list"])
    return details


def rgb_param(request: Request) -> tuple[int, int, int] | None:
    value = request.params.get("rgb_color")
    if value is None:
        return None
    if not (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(
            isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255 for c in value
        )
    ):
        raise CommandNotSupportedError(f"rgb_color must be three numbers 0..255, got {value!r}")
    red, green, blue = (round(channel) for channel in value)
    return red, green, blue


def brightness_param(request: Request) -> int | None:
    value = number(request, "brightness", 0, 255)
    return None if value is None else round(value)


def kelvin_param(request: Request) -> Any:
    return number(request, "color_temp_kelvin", 1, 1_000_000)


# -- the default schema -----------------------------------------------------------------------

_COLOR_MODE_TOPICS = (
    ("color_temp_command_topic", "color_temp"),
    ("hs_command_topic", "hs"),
    ("rgb_command_topic", "rgb"),
    ("rgbw_command_topic", "rgbw"),
    ("rgbww_command_topic", "rgbww"),
    ("white_command_topic", "white"),
    ("xy_command_topic", "xy"),
)


def _color_modes(config: Mapping[str, Any]) -> list[str]:
    """Home Assistant's color modes of a default-schema light, from its command topics."""
    modes = [mode for topic, mode in _COLOR_MODE_TOPICS if config.get(topic)]
    if modes:
        return modes
    return ["brightness"] if config.get("brightness_command_topic") else ["onoff"]


def _brightness(config: Config, value: str, entity: Entity) -> Update | None:
    level = float(value)
    if level == 0:  # Home Assistant ignores 0: "off" comes from the state topic
        return None
    return Update(attributes={"brightness": brightness_from_wire(level,
                                                                 config["brightness_scale"])})


def _rgb(config: Config, value: str, entity: Entity) -> Update | None:
    rgb = [int(part) for part in value.split(",")]
    if len(rgb) != 3:
        raise ValueError(f"not an r,g,b color: {value[:80]!r}")
    if config.get("brightness_state_topic"):
        return Update(attributes={"rgb_color": rgb})
    # Without a brightness topic the color carries the brightness (Home Assistant's rule).
    brightness = max(rgb)
    if brightness == 0:
        return None
    normalized = [min(round(channel / brightness * 255), 255) for channel in rgb]
    return Update(attributes={"rgb_color": normalized, "brightness": brightness})


def _color_temp(config: Config, value: str, entity: Entity) -> Update:
    return Update(attributes=color_temp_attributes(config, float(value)))


_TURN_OFF = send("payload_off")


def _turn_on(request: Request) -> list[MqttMessage]:
    """Separate topics, ON first or last as on_command_type says."""
    config, attributes = request.config, request.entity.attributes
    brightness, rgb, kelvin = brightness_param(request), rgb_param(request), kelvin_param(request)
    if brightness == 0:
        return _TURN_OFF.encode(request)
    on_command_type = config["on_command_type"]
    turn_on = message(request, "command_topic", config["payload_on"])
    messages = [turn_on] if on_command_type == "first" else []
    if on_command_type == "brightness" and brightness is None:
        brightness = attributes.get("brightness") or 255  # the brightness is the on command
    has_brightness_topic = bool(config.get("brightness_command_topic"))
    if rgb is not None:
        if not config.get("rgb_command_topic"):
            raise unsupported(request, "rgb_color")
        scale = 255 if has_brightness_topic else brightness or attributes.get("brightness") or 255
        messages.append(_rgb_message(request, scale_rgb(rgb, scale)))
    if brightness is not None:
        if has_brightness_topic:
            level = brightness_to_wire(brightness, config["brightness_scale"])
            messages.append(
                message(request, "brightness_command_topic", level, "brightness_command_template")
            )
        elif config.get("rgb_command_topic"):
            if rgb is None:  # dim by scaling the current color
                color = tuple(attributes.get("rgb_color") or (255, 255, 255))
                messages.append(_rgb_message(request, scale_rgb(color, brightness)))
        elif "brightness" in request.params:
            raise unsupported(request, "brightness")
    if kelvin is not None:
        if not config.get("color_temp_command_topic"):
            raise unsupported(request, "color_temp_kelvin")
        messages.append(message(
            request, "color_temp_command_topic", color_temp_to_wire(config, kelvin),
            "color_temp_command_template",
        ))
    if on_command_type == "last":
        messages.append(turn_on)
    if not messages:
        raise unsupported(request, "turning on without brightness")
    return messages


def _rgb_message(request: Request, rgb: tuple[int, ...]) -> MqttMessage:
    red, green, blue = rgb
    return message(
        request, "rgb_command_topic", f"{red},{green},{blue}", "rgb_command_template",
        {"red": red, "green": green, "blue": blue},
    )


KIND = ComponentKind(
    name="light",
    component="light",
    schemas=("basic", "default"),
    defaults={
        "brightness_scale": 255,
        "on_command_type": "last",
        "payload_on": "ON",
        "payload_off": "OFF",
    },
    required=("command_topic",),
    readers=(
        Reader("state_topic", "state_value_template", state_reader(ON_OFF_PAYLOADS)),
        Reader("brightness_state_topic", "brightness_value_template", _brightness),
        Reader("rgb_state_topic", "rgb_value_template", _rgb),
        Reader("color_temp_state_topic", "color_temp_value_template", _color_temp),
    ),
    commands={
        "turn_on": Command(_turn_on, ("command_topic",)),
        "turn_off": _TURN_OFF,
    },
    toggle=TOGGLE,
    details=lambda config: light_details(_color_modes(config), config),
)
