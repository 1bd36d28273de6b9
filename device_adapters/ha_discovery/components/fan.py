"""fan: on/off, a speed percentage over ``speed_range_min..max`` and preset modes.
Left out: direction and oscillation."""

import math

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import (
    Command, ComponentKind, Reader, Request, Toggle, Update
)
from device_adapters.ha_discovery.components.shared import (
    ON_OFF_PAYLOADS, SET_PRESET_MODE, message, number, preset_mode, send, state_reader
)
from device_adapters.ha_discovery.vocabulary import Config, MalformedConfigError
from device_adapters.wire import PAYLOAD_NONE, percentage_to_ranged, ranged_to_percentage


def _percentage(config: Config, value: str, entity: Entity) -> Update:
    if value == config["payload_reset_percentage"]:
        return Update(attributes={"percentage": None})
    low, high = config["speed_range_min"], config["speed_range_max"]
    percentage = ranged_to_percentage(low, high, float(value))
    if not 0 <= percentage <= 100:
        raise ValueError(f"speed {value[:20]!r} is outside {low}..{high}")
    return Update(attributes={"percentage": percentage})


_TURN_OFF = send("payload_off", template="command_template")


def _turn_on(request: Request) -> list[MqttMessage]:
    messages = [
        message(request, "command_topic", request.config["payload_on"], "command_template")
    ]
    if number(request, "percentage", 0, 100):  # 0 would mean off: Home Assistant skips it
        messages.extend(_set_percentage(request))
    if request.params.get("preset_mode") is not None:
        messages.extend(SET_PRESET_MODE.encode(request))
    return messages


def _set_percentage(request: Request) -> list[MqttMessage]:
    percentage = number(request, "percentage", 0, 100, required=True)
    if percentage == 0:
        return _TURN_OFF.encode(request)
    config = request.config
    speed = math.ceil(
        percentage_to_ranged(config["speed_range_min"], config["speed_range_max"], percentage)
    )
    return [message(request, "percentage_command_topic", speed, "percentage_command_template")]


def _check_speed_range(config: Config) -> None:
    if not 1 <= config["speed_range_min"] <= config["speed_range_max"]:
        raise MalformedConfigError("speed range must satisfy 1 <= min <= max")


def _details(config: Config) -> Config:
    low, high = config["speed_range_min"], config["speed_range_max"]
    return {
        "speed_range": [low, high],
        "speed_count": high - low + 1,
        "preset_modes": list(config["preset_modes"]),
    }


KIND = ComponentKind(
    name="fan",
    component="fan",
    defaults={
        "payload_on": "ON",
        "payload_off": "OFF",
        "payload_reset_percentage": PAYLOAD_NONE,
        "payload_reset_preset_mode": PAYLOAD_NONE,
        "preset_modes": [],
        "speed_range_min": 1,
        "speed_range_max": 100,
    },
    required=("command_topic",),
    readers=(
        Reader("state_topic", "state_value_template", state_reader(ON_OFF_PAYLOADS)),
        Reader("percentage_state_topic", "percentage_value_template", _percentage),
        Reader("preset_mode_state_topic", "preset_mode_value_template", preset_mode),
    ),
    commands={
        "turn_on": Command(_turn_on, ("command_topic",)),
        "turn_off": _TURN_OFF,
        "set_percentage": Command(_set_percentage, ("percentage_command_topic",)),
        "set_preset_mode": SET_PRESET_MODE,
    },
    toggle=Toggle("turn_off", "turn_on", frozenset({"on"})),
    details=_details,
    check=_check_speed_range,
)
