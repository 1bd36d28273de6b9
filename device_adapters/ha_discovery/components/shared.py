"""Building blocks several component kinds share: state readers, command encoders, and the
cover/valve position and preset-mode vocabularies."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.ha_discovery.components.kind import Command, Reader, Request, Update
from assistant.templating import TemplateError, render_template
from device_adapters.ha_discovery.vocabulary import Config
from device_adapters.wire import (
    PAYLOAD_NONE,
    clamp,
    is_exact_topic,
    parse_json_object,
    percentage_to_ranged,
    ranged_to_percentage,
)

COMMAND_QOS = 1

ON_OFF_PAYLOADS = {"payload_on": "on", "payload_off": "off"}

# -- reading states ---------------------------------------------------------------------------


def state_from_table(config: Mapping[str, Any], value: str, table: Mapping[str, str]) -> str:
    """The state whose configured payload option (``table``'s key) ``value`` is."""
    for option, state in table.items():
        expected = config.get(option)
        if expected is not None and value == str(expected):
            return state
    if value == PAYLOAD_NONE:
        return "unknown"
    raise ValueError(f"unexpected state payload {value[:80]!r}")


def state_reader(table: Mapping[str, str]) -> Callable[[Config, str, Entity], Update]:
    return lambda config, value, entity: Update(state_from_table(config, value, table))


def state_in(states: frozenset[str]) -> Callable[[Config, str, Entity], Update]:
    """A state topic that carries Home Assistant's state names themselves."""

    def apply(config: Config, value: str, entity: Entity) -> Update:
        if value == PAYLOAD_NONE:
            return Update("unknown")
        if value not in states:
            raise ValueError(f"unexpected state payload {value[:80]!r}")
        return Update(value)

    return apply


def attribute_reader(
    name: str, convert: Callable[[str], Any] = str
) -> Callable[[Config, str, Entity], Update]:
    return lambda config, value, entity: Update(attributes={name: convert(value)})


def preset_mode(config: Config, value: str, entity: Entity) -> Update:
    if value == config.get("payload_reset_preset_mode", PAYLOAD_NONE):
        return Update(attributes={"preset_mode": None})
    if value not in config["preset_modes"]:
        raise ValueError(f"unknown preset mode {value[:80]!r}")
    return Update(attributes={"preset_mode": value})


# Attributes this adapter computes; a device's json_attributes must not overwrite them
# (zigbee2mqtt points json_attributes_topic at a state that holds raw brightness, say).
MANAGED_ATTRIBUTES = frozenset({
    "available", "battery_level", "brightness", "color_mode", "color_temp",
    "color_temp_kelvin", "current_position", "current_temperature", "device_class", "effect",
    "fan_speed", "friendly_name", "hvac_action", "icon", "media_album_name", "media_artist",
    "media_title", "percentage", "preset_mode", "rgb_color", "state", "supported_features",
    "temperature", "unit_of_measurement", "volume_level",
})


def _json_attributes(config: Config, value: str, entity: Entity) -> Update:
    document = parse_json_object(value)
    return Update(attributes={
        key: item for key, item in document.items() if key not in MANAGED_ATTRIBUTES
    })


# Every kind's extra attributes topic.
ATTRIBUTES_READER = Reader("json_attributes_topic", "json_attributes_template", _json_attributes)

# -- encoding commands ------------------------------------------------------------------------


def message(
    request: Request,
    topic_option: str,
    value: Any,
    template_option: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> MqttMessage:
    """``value`` on the configured topic, through the command template when there is one."""
    config = request.config
    topic = config.get(topic_option)
    if not is_exact_topic(topic):
        raise CommandNotSupportedError(f"{request.entity.entity_id} has no usable {topic_option}")
    template = config.get(template_option) if template_option else None
    if template:
        try:
            payload = render_template(str(template), {"value": value, **(variables or {})})
        except TemplateError as error:
            raise CommandNotSupportedError(
                f"{request.entity.entity_id}: cannot render {template_option}: {error}"
            ) from None
    elif isinstance(value, dict):
        payload = json.dumps(value, separators=(",", ":"))
    else:
        payload = str(value)
    retain = config.get("retain") is True
    return MqttMessage(topic, payload.encode(), qos=COMMAND_QOS, retain=retain)


def send(
    payload_option: str,
    topic_option: str = "command_topic",
    *,
    template: str | None = None,
    feature: str | None = None,
) -> Command:
    """A command that publishes one configured payload, as most services do."""

    def encode(request: Request) -> list[MqttMessage]:
        payload = request.config[payload_option]
        # action/code are the alarm panel's template variables; other templates ignore them.
        variables = {"action": payload, "code": request.params.get("code")}
        return [message(request, topic_option, payload, template, variables)]

    return Command(encode, (topic_option, payload_option), feature)


def number(
    request: Request, name: str, low: float, high: float, *, required: bool = False
) -> Any:
    """The numeric parameter ``name`` within ``low..high``, or None when not given."""
    value = request.params.get(name)
    if value is None:
        if required:
            raise CommandNotSupportedError(f"{request.entity.entity_id}: {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CommandNotSupportedError(f"{name} must be a number, got {value!r}") from None
    if not low <= value <= high:
        raise CommandNotSupportedError(f"{name} {value} is outside {low}..{high}")
    return value


def choice(request: Request, name: str, choices: list[str]) -> str:
    value = request.params.get(name)
    if value not in choices:
        raise CommandNotSupportedError(
            f"{request.entity.entity_id}: {name} {value!r} is not one of {choices}"
        )
    return value


def unsupported(request: Request, what: str) -> CommandNotSupportedError:
    return CommandNotSupportedError(f"{request.entity.entity_id} does not support {what}")


def _set_preset_mode(request: Request) -> list[MqttMessage]:
    preset = choice(request, "preset_mode", request.config["preset_modes"])
    return [message(request, "preset_mode_command_topic", preset, "preset_mode_command_template")]


SET_PRESET_MODE = Command(_set_preset_mode, ("preset_mode_command_topic",))

# -- cover and valve positions ----------------------------------------------------------------


def _position_range(config: Mapping[str, Any]) -> tuple[int, int]:
    return config["position_closed"] + 1, config["position_open"]


def position_percentage(config: Mapping[str, Any], value: Any) -> int:
    """A cover or valve position on the wire as 0..100 (closed..open), clamped."""
    return int(clamp(ranged_to_percentage(*_position_range(config), float(value)), 0, 100))


def set_position(topic_option: str, template_option: str, *requires: str) -> Command:
    """The ``position`` parameter (0..100) on the device's own position range."""

    def encode(request: Request) -> list[MqttMessage]:
        percentage = number(request, "position", 0, 100, required=True)
        config = request.config
        position = round(percentage_to_ranged(*_position_range(config), percentage))
        return [message(request, topic_option, position, template_option, {
            "position": percentage,
            "position_open": config["position_open"],
            "position_closed": config["position_closed"],
        })]

    return Command(encode, (topic_option, *requires))
