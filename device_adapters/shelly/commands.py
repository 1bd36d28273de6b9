"""Entity commands as Shelly RPC calls: Switch.Set/Toggle, Light.Set/Toggle and
Cover.Open/Close/Stop/GoToPosition, each addressed to the component's ``id``."""

from __future__ import annotations

from typing import Any

from assistant.messages import CommandNotSupportedError, EntityCommand
from assistant.registry import Entity
from device_adapters.wire import brightness_to_wire

RpcCall = tuple[str, dict[str, Any]]  # method, params


def _brightness(command: EntityCommand) -> int | None:
    value = command.params.get("brightness")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 255:
        raise CommandNotSupportedError(f"brightness must be a number 0..255, got {value!r}")
    return brightness_to_wire(value, 100)


def _position(command: EntityCommand) -> int:
    value = command.params.get("position")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise CommandNotSupportedError(f"position must be a number 0..100, got {value!r}")
    return round(value)


def _switch(service: str, number: int, command: EntityCommand) -> RpcCall | None:
    if service in ("turn_on", "turn_off"):
        return "Switch.Set", {"id": number, "on": service == "turn_on"}
    return ("Switch.Toggle", {"id": number}) if service == "toggle" else None


def _light(service: str, number: int, command: EntityCommand) -> RpcCall | None:
    if service == "turn_off":
        return "Light.Set", {"id": number, "on": False}
    if service == "turn_on":
        brightness = _brightness(command)
        params: dict[str, Any] = {"id": number, "on": True}
        if brightness is not None:
            params["brightness"] = brightness
        return "Light.Set", params
    return ("Light.Toggle", {"id": number}) if service == "toggle" else None


_COVER_METHODS = {"open_cover": "Cover.Open", "close_cover": "Cover.Close",
                  "stop_cover": "Cover.Stop"}


def _cover(service: str, number: int, command: EntityCommand) -> RpcCall | None:
    if service in _COVER_METHODS:
        return _COVER_METHODS[service], {"id": number}
    if service == "set_cover_position":
        return "Cover.GoToPosition", {"id": number, "pos": _position(command)}
    return None


_ENCODERS = {"switch": _switch, "light": _light, "cover": _cover}


def rpc_call(entity: Entity, command: EntityCommand) -> RpcCall:
    """The method and params that carry out ``command``; CommandNotSupportedError when the
    entity cannot do it."""
    component, number = entity.wire.get("component"), entity.wire.get("id")
    encoder = _ENCODERS.get(component) if isinstance(component, str) else None
    if encoder is None or isinstance(number, bool) or not isinstance(number, int):
        raise CommandNotSupportedError(f"{entity.entity_id} takes no commands")
    service = command.service
    if service == "toggle" and component == "cover":  # Home Assistant's cover toggle
        service = "close_cover" if entity.state in ("open", "opening") else "open_cover"
    if service not in entity.capabilities.get("services", ()):
        raise CommandNotSupportedError(f"{entity.entity_id} has no {command.service!r} command")
    call = encoder(service, number, command)
    if call is None:
        raise CommandNotSupportedError(f"{entity.entity_id} has no {command.service!r} command")
    return call
