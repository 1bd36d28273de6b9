"""Entity commands as Tasmota commands: ``<cmnd full topic><Command>`` with the parameter as
payload (Commands.md), QoS 1, never retained (a retained POWER would switch the relay again
at every reconnect of the device, the "ghost switching" MQTT.md warns about).

Relays and lights: ``POWER<n>`` (plain ``POWER`` on a one-output device) ``ON``/``OFF``;
lights: ``Dimmer`` 0..100 (``Dimmer1``/``Dimmer2``/``Dimmer3``, ``Channel<n>`` as the light's
type says), ``CT`` 153..500 mireds, ``HSBColor`` "h,s,b", ``Color2`` "r,g,b" (the colour at
the current dimmer, as Home Assistant's Tasmota light sends it), ``White`` 0..100; shutters:
``ShutterOpen<n>``, ``ShutterClose<n>``, ``ShutterStop<n>``, ``ShutterPosition<n>`` 0..100.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.tasmota.discovery import Device
from device_adapters.wire import brightness_to_wire, clamp, is_exact_topic, mired_kelvin

Config = dict[str, Any]
COMMAND_QOS = 1

# toggle: (service when on, service when off, states that count as on), as for HA discovery
_TOGGLES = {
    "relay": ("turn_off", "turn_on", frozenset({"on"})),
    "light": ("turn_off", "turn_on", frozenset({"on"})),
    "shutter": ("close_cover", "open_cover", frozenset({"open", "opening"})),
}


def command(wire: Config, name: str, parameter: Any = "") -> MqttMessage:
    topic = f"{wire['command_topic']}{name}"
    if not is_exact_topic(topic):
        raise CommandNotSupportedError(f"{topic[:80]!r} is not an exact topic")
    return MqttMessage(topic, str(parameter).encode(), qos=COMMAND_QOS, retain=False)


def _number(params: Config, name: str, low: float, high: float) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise CommandNotSupportedError(f"{name} must be a number {low}..{high}, got {value!r}")
    return value


def _triple(params: Config, name: str, highs: tuple[float, ...]) -> tuple[float, ...] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != len(highs) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= high
            for v, high in zip(value, highs, strict=False)):
        raise CommandNotSupportedError(f"{name} must be {len(highs)} numbers, got {value!r}")
    return tuple(value)


def _power(wire: Config, on: bool) -> MqttMessage:
    return command(wire, wire["power"], "ON" if on else "OFF")


def _light_on(entity: Entity, params: Config) -> list[MqttMessage]:
    """Home Assistant's Tasmota light: the dimmer (or channel) turns the light on with its
    level, else POWER ON; then colour and colour temperature; POWER again when SetOption20
    keeps the dimmer from switching the power."""
    wire, modes = entity.wire, entity.capabilities.get("supported_color_modes") or ["onoff"]
    brightness = _number(params, "brightness", 0, 255)
    if brightness == 0:
        return [_power(wire, False)]
    rgb = _triple(params, "rgb_color", (255, 255, 255))
    hs = _triple(params, "hs_color", (360, 100))
    kelvin = _number(params, "color_temp_kelvin", 1, 1_000_000)
    white = _number(params, "white", 0, 255)
    wanted = {"brightness": brightness, "rgb_color": rgb, "hs_color": hs, "white": white,
              "color_temp_kelvin": kelvin}
    needs = {"brightness": modes != ["onoff"], "rgb_color": "hs" in modes,
             "hs_color": "hs" in modes, "white": "white" in modes,
             "color_temp_kelvin": "color_temp" in modes}
    missing = [name for name, value in wanted.items() if value is not None and not needs[name]]
    if missing:
        raise CommandNotSupportedError(f"{entity.entity_id} does not support {missing}")
    dimmer = None if brightness is None else brightness_to_wire(brightness, 100)
    messages = [_power(wire, True) if dimmer is None else command(
        wire, wire.get("channel_command") or wire["dimmer_command"], dimmer)]
    if rgb is not None:
        red, green, blue = (round(channel) for channel in rgb)
        messages.append(command(wire, "Color2", f"{red},{green},{blue}{wire['color_suffix']}"))
    if hs is not None:
        level = dimmer or brightness_to_wire(entity.attributes.get("brightness") or 255, 100)
        messages.append(command(wire, "HSBColor", f"{round(hs[0])},{round(hs[1])},{level}"))
    if kelvin is not None:
        mireds = clamp(mired_kelvin(kelvin), wire["min_mireds"], wire["max_mireds"])
        messages.append(command(wire, "CT", round(mireds)))
    if white is not None:
        messages.append(command(wire, "White", brightness_to_wire(white, 100)))
    if wire.get("not_power_linked") and dimmer is not None:
        messages.append(_power(wire, True))
    return messages


def _relay_on(entity: Entity, params: Config) -> list[MqttMessage]:
    if params.get("brightness") not in (None, 255):
        raise CommandNotSupportedError(f"{entity.entity_id} cannot dim")
    return [_power(entity.wire, True)]


def _shutter(name: str) -> Callable[[Entity, Config], list[MqttMessage]]:
    return lambda entity, _params: [command(entity.wire, f"{name}{entity.wire['index']}")]


def _shutter_position(entity: Entity, params: Config) -> list[MqttMessage]:
    position = _number(params, "position", 0, 100)
    if position is None:
        raise CommandNotSupportedError(f"{entity.entity_id}: position is required")
    position = 100 - position if entity.wire.get("inverted") else position
    return [command(entity.wire, f"ShutterPosition{entity.wire['index']}", round(position))]


_COMMANDS: dict[str, dict[str, Callable[[Entity, Config], list[MqttMessage]]]] = {
    "relay": {"turn_on": _relay_on,
              "turn_off": lambda entity, _params: [_power(entity.wire, False)]},
    "light": {"turn_on": _light_on,
              "turn_off": lambda entity, _params: [_power(entity.wire, False)]},
    "shutter": {"open_cover": _shutter("ShutterOpen"), "close_cover": _shutter("ShutterClose"),
                "stop_cover": _shutter("ShutterStop"), "set_cover_position": _shutter_position},
}


def encode(entity: Entity, request: EntityCommand) -> list[MqttMessage]:
    kind = entity.wire.get("kind")
    service = request.service
    if service == "toggle" and kind in _TOGGLES:
        when_on, when_off, on_states = _TOGGLES[kind]
        service = when_on if entity.state in on_states else when_off
    handler = _COMMANDS.get(str(kind), {}).get(service)
    if handler is None:
        raise CommandNotSupportedError(f"{entity.entity_id} has no {request.service!r} command")
    try:
        return handler(entity, dict(request.params))
    except (KeyError, TypeError) as error:  # a wire from an older or damaged registry row
        raise CommandNotSupportedError(f"{entity.entity_id}: {error!r}") from None


def status_polls(device: Device) -> list[MqttMessage]:
    """What a device that came online is asked (payloads as Tasmota's docs give them):
    its state, reported on RESULT, and its sensors and shutters, on STATUS10."""
    polls = [MqttMessage(device.topics.command + "State", b"", qos=COMMAND_QOS)]
    if any(spec.wire["kind"] in ("sensor", "shutter") for spec in device.entities):
        polls.append(MqttMessage(device.topics.command + "Status", b"10", qos=COMMAND_QOS))
    return [poll for poll in polls if is_exact_topic(poll.topic)]
