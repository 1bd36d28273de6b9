"""climate (HVAC): mode, target and current temperature, action and preset mode.
Left out: fan, swing and humidity modes, dual set points."""

from collections.abc import Mapping
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import (
    Command, ComponentKind, Reader, Request, Update
)
from device_adapters.ha_discovery.components.shared import (
    SET_PRESET_MODE,
    attribute_reader,
    choice,
    message,
    number,
    preset_mode,
    send,
    state_in,
    unsupported,
)
from device_adapters.ha_discovery.vocabulary import Config

_DEFAULT_TEMPERATURE_RANGE = {"C": (7.0, 35.0), "F": (44.6, 95.0)}


def _temperature_range(config: Mapping[str, Any]) -> tuple[float, float]:
    low, high = _DEFAULT_TEMPERATURE_RANGE["F" if config.get("temperature_unit") == "F" else "C"]
    return config.get("min_temp", low), config.get("max_temp", high)


def _mode(config: Config, value: str, entity: Entity) -> Update:
    return state_in(frozenset(config["modes"]))(config, value, entity)


def _set_temperature(request: Request) -> list[MqttMessage]:
    low, high = _temperature_range(request.config)
    temperature = number(request, "temperature", low, high, required=True)
    messages = _set_hvac_mode(request) if request.params.get("hvac_mode") else []
    messages.append(message(
        request, "temperature_command_topic", float(temperature), "temperature_command_template"
    ))
    return messages


def _set_hvac_mode(request: Request) -> list[MqttMessage]:
    mode = choice(request, "hvac_mode", request.config["modes"])
    return [message(request, "mode_command_topic", mode, "mode_command_template")]


def _turn_off(request: Request) -> list[MqttMessage]:
    config = request.config
    if config.get("power_command_topic"):
        return [message(
            request, "power_command_topic", config["payload_off"], "power_command_template"
        )]
    if "off" in config["modes"] and config.get("mode_command_topic"):
        return [message(request, "mode_command_topic", "off", "mode_command_template")]
    raise unsupported(request, "turn_off (no power_command_topic and no off mode)")


def _details(config: Mapping[str, Any]) -> Config:
    low, high = _temperature_range(config)
    return {
        "hvac_modes": list(config["modes"]),
        "min_temp": low,
        "max_temp": high,
        "target_temp_step": config["temp_step"],
        "temperature_unit": config.get("temperature_unit"),
        "preset_modes": list(config["preset_modes"]),
    }


KIND = ComponentKind(
    name="climate",
    component="climate",
    defaults={
        "modes": ["auto", "off", "cool", "heat", "dry", "fan_only"],
        "payload_on": "ON",
        "payload_off": "OFF",
        "preset_modes": [],
        "temp_step": 1,
    },
    readers=(
        Reader("mode_state_topic", "mode_state_template", _mode),
        Reader("temperature_state_topic", "temperature_state_template",
               attribute_reader("temperature", float)),
        Reader("current_temperature_topic", "current_temperature_template",
               attribute_reader("current_temperature", float)),
        Reader("action_topic", "action_template", attribute_reader("hvac_action")),
        Reader("preset_mode_state_topic", "preset_mode_value_template", preset_mode),
    ),
    commands={
        "set_temperature": Command(_set_temperature, ("temperature_command_topic",)),
        "set_hvac_mode": Command(_set_hvac_mode, ("mode_command_topic",)),
        "set_preset_mode": SET_PRESET_MODE,
        "turn_on": send("payload_on", "power_command_topic", template="power_command_template"),
        "turn_off": Command(_turn_off),
    },
    details=_details,
)
