"""Shelly Gen2+: each device a Shelly with one component, spoken to in JSON-RPC over MQTT.

Written from Shelly's Gen2+ API documentation (RPC over MQTT, Notifications, and the
Switch, Cover, Light, Input, Temperature and Humidity components)::

    <prefix>/online       "true", retained ("false" is what its last will would say)
    <prefix>/rpc          requests {"id", "src", "method", "params"}; the answer goes to
                          <src>/rpc as {"id", "src": <device id>, "dst": <src>, "result"}
                          or {"error": {"code", "message"}}
    <prefix>/events/rpc   NotifyStatus {"params": {"ts", "<component>": {changes}}} after a
                          change, NotifyFullStatus on connecting

The prefix is the device id (``shellyplus1-<mac>``, Shelly's default). Methods:
Shelly.GetDeviceInfo, Shelly.GetStatus, Shelly.GetConfig, Shelly.GetComponents, and per
component <Type>.GetStatus / GetConfig plus Switch.Set/Toggle, Light.Set/Toggle (brightness
0..100), Cover.Open/Close/Stop/GoToPosition.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_adapters.wire import (
    brightness_from_wire,
    brightness_to_wire,
    is_exact_topic,
    parse_json_object,
)

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.models import (
    COVER,
    LIGHT,
    SWITCH,
    Device,
    EntityState,
    number_in,
)
from assistant.virtual.protocols.base import (
    MALFORMED,
    FrontEnd,
    PresentedOn,
    Publication,
    Reaction,
    reading,
)

FIRMWARE = "1.4.4"
NO_HANDLER, INVALID_ARGUMENT = 404, -103  # Shelly's RPC error codes


@dataclass(frozen=True, slots=True)
class _Kind:
    component: str  # its type in RPC method names: "Switch"
    model: str
    app: str
    id_prefix: str


_KINDS = {
    "switch": _Kind("Switch", "SNSW-001X16EU", "Plus1", "shellyplus1"),
    "cover": _Kind("Cover", "SNSW-102P16EU", "Plus2PM", "shellyplus2pm"),
    "light": _Kind("Light", "SNDM-0013US", "PlusWallDimmer", "shellywalldimmer"),
    "binary_sensor": _Kind("Input", "SNSN-0024X", "PlusI4", "shellyplusi4"),
    "temperature": _Kind("Temperature", "SNSN-0013A", "PlusHT", "shellyplusht"),
    "humidity": _Kind("Humidity", "SNSN-0013A", "PlusHT", "shellyplusht"),
}
Operation = Callable[[Device, dict[str, Any]], EntityState]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _kind_of(spec: VirtualEntitySpec) -> _Kind | None:
    if spec.domain == "sensor":
        return _KINDS.get(spec.device_class or "")
    if spec.domain == "light" and LIGHT.modes(spec) not in (["onoff"], ["brightness"]):
        return None  # a Shelly dimmer has no color
    return _KINDS.get(spec.domain)


class _Shelly:
    """One simulated Shelly and its one component."""

    def __init__(self, front_end: ShellyFrontEnd, device: Device) -> None:
        self.device = device
        kind = _kind_of(device.spec)
        if kind is None:
            raise ValueError(f"a Shelly cannot be {device.spec.entity_id}")
        self.kind: _Kind = kind
        self.mac = front_end.device_key(device)[:12].upper()
        self.id = f"{self.kind.id_prefix}-{self.mac.lower()}"
        self.prefix = self.id
        self.key = f"{self.kind.component.lower()}:0"

    # -- what it reports --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        device, component = self.device, self.kind.component
        state = device.state
        if component == "Switch":
            return {"id": 0, "source": "init", "output": state.state == "on",
                    "temperature": {"tC": 41.5, "tF": 106.7}}
        if component == "Light":
            status: dict[str, Any] = {"id": 0, "source": "init", "output": state.state == "on"}
            if LIGHT.dims(device.spec):
                status["brightness"] = brightness_to_wire(
                    LIGHT.lit(device, "brightness") or 255, 100)
            return status
        if component == "Cover":
            model = COVER
            positioned = model.has_position(device.spec)
            status = {"id": 0, "source": "init",
                      "state": state.state if state.state in ("open", "closed") else "stopped",
                      "pos_control": positioned, "last_direction": None}
            if positioned:
                status.update(current_pos=model.position(device), target_pos=None)
            return status
        if component == "Input":
            return {"id": 0, "state": {"on": True, "off": False}.get(state.state)}
        value = reading(state.state)
        if component == "Temperature":
            return {"id": 0, "tC": value,
                    "tF": None if value is None else round(value * 9 / 5 + 32, 1)}
        return {"id": 0, "rh": value}

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": 0, "name": self.device.spec.name}
        if self.kind.component == "Input":
            config.update(type="switch", invert=False)
        return config

    def device_info(self) -> dict[str, Any]:
        kind = self.kind
        return {"name": self.device.spec.name, "id": self.id, "mac": self.mac, "slot": 0,
                "model": kind.model, "gen": 2, "fw_id": f"20241011-114455/{FIRMWARE}-g1",
                "ver": FIRMWARE, "app": kind.app, "auth_en": False, "auth_domain": None}

    def sys_status(self) -> dict[str, Any]:
        return {"mac": self.mac, "restart_required": False, "uptime": 1000,
                "cfg_rev": 1, "available_updates": {}}

    def full_status(self) -> dict[str, Any]:
        return {"sys": self.sys_status(), self.key: self.status()}

    def full_config(self) -> dict[str, Any]:
        return {"sys": {"device": {"name": self.device.spec.name, "mac": self.mac,
                                   "fw_id": self.device_info()["fw_id"]}},
                self.key: self.config()}

    def notify(self, method: str, params: dict[str, Any]) -> Publication:
        return Publication(f"{self.prefix}/events/rpc", json.dumps(
            {"src": self.id, "dst": f"{self.prefix}/events", "method": method,
             "params": {"ts": round(time.time(), 2), **params}}), retain=False)

    # -- what it does -----------------------------------------------------------------------

    def operations(self) -> dict[str, Operation]:
        component = self.kind.component
        if component == "Switch":
            return {"Switch.Set": self._switch_set, "Switch.Toggle": self._switch_toggle}
        if component == "Light":
            return {"Light.Set": self._light_set, "Light.Toggle": self._light_toggle}
        if component == "Cover":
            return {"Cover.Open": lambda d, _: self._move(d, 100),
                    "Cover.Close": lambda d, _: self._move(d, 0),
                    "Cover.Stop": lambda d, _: COVER.stop(d),
                    "Cover.GoToPosition": lambda d, p: self._move(d, _param(p, "pos"))}
        return {}

    def queries(self) -> dict[str, Callable[[], Any]]:
        component = self.kind.component
        return {
            "Shelly.GetDeviceInfo": self.device_info,
            "Shelly.GetStatus": self.full_status,
            "Shelly.GetConfig": self.full_config,
            "Shelly.GetComponents": lambda: {
                "components": [{"key": self.key, "status": self.status(),
                                "config": self.config()}],
                "cfg_rev": 1, "offset": 0, "total": 1},
            "Sys.GetStatus": self.sys_status,
            f"{component}.GetStatus": self.status,
            f"{component}.GetConfig": self.config,
        }

    @staticmethod
    def _switch_set(device: Device, params: dict[str, Any]) -> EntityState:
        model = SWITCH
        return model.switch(device, _boolean(_param(params, "on")))

    @staticmethod
    def _switch_toggle(device: Device, params: dict[str, Any]) -> EntityState:
        model = SWITCH
        return model.switch(device, None)

    @staticmethod
    def _light_set(device: Device, params: dict[str, Any]) -> EntityState:
        if "on" not in params and "brightness" not in params:
            raise ValueError("on or brightness is required")
        on = _boolean(params["on"]) if "on" in params else device.state.state == "on"
        brightness = None
        if "brightness" in params:
            if not LIGHT.dims(device.spec):
                raise ValueError("this light does not dim")
            level = number_in(params["brightness"], 0, 100)
            brightness = brightness_from_wire(level, 100) if level else 0
        if not on and brightness:  # an off light keeps the new level for later
            device.memory["brightness"] = brightness
            brightness = None
        return LIGHT.set(device, on, brightness)

    @staticmethod
    def _light_toggle(device: Device, params: dict[str, Any]) -> EntityState:
        return LIGHT.set(device, device.state.state != "on")

    @staticmethod
    def _move(device: Device, position: Any) -> EntityState:
        model = COVER
        if not isinstance(position, (int, float)) or isinstance(position, bool):
            raise ValueError("pos must be a number")
        return model.move_to(device, position)


def _param(params: dict[str, Any], name: str) -> Any:
    if name not in params:
        raise ValueError(f"{name} is required")
    return params[name]


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a boolean")
    return value


class ShellyFrontEnd(FrontEnd):
    name = "shelly"
    domains = frozenset({"switch", "cover", "light", "binary_sensor", "sensor"})

    def __init__(self, home: HomeSpec, base_topic: str) -> None:
        super().__init__(home, base_topic)
        self._units: dict[str, _Shelly] = {}  # entity id -> its Shelly
        self._by_rpc_topic: dict[str, _Shelly] = {}

    @classmethod
    def can_present(cls, spec: VirtualEntitySpec) -> bool:
        return super().can_present(spec) and _kind_of(spec) is not None

    def add(self, device: Device) -> None:
        super().add(device)
        unit = _Shelly(self, device)
        self._units[device.spec.entity_id] = unit
        self._by_rpc_topic[f"{unit.prefix}/rpc"] = unit

    def subscriptions(self) -> list[str]:
        return list(self._by_rpc_topic)

    def announce(self) -> list[Publication]:
        messages = []
        for unit in self._units.values():
            messages += self.availability_messages(unit.device)
            messages.append(unit.notify("NotifyFullStatus", unit.full_status()))
        return messages

    def state_messages(self, device: Device) -> list[Publication]:
        unit = self._units[device.spec.entity_id]
        return [unit.notify("NotifyStatus", {unit.key: unit.status()})]

    def availability_messages(self, device: Device) -> list[Publication]:
        unit = self._units[device.spec.entity_id]
        return [Publication(f"{unit.prefix}/online", "true" if device.available else "false")]

    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        unit = self._by_rpc_topic.get(topic)
        if unit is None:
            return None
        request = parse_json_object(payload)
        source, request_id = request.get("src"), request.get("id")
        if not isinstance(source, str) or not is_exact_topic(f"{source}/rpc"):
            raise ValueError("a request needs a src to answer to")
        params = request.get("params") or {}
        try:
            if not isinstance(params, dict):
                raise RpcError(INVALID_ARGUMENT, "params must be an object")
            return self._call(unit, str(request.get("method")), params, source, request_id)
        except RpcError as error:
            answer = {"error": {"code": error.code, "message": str(error)}}
        return Reaction(None, reply=lambda: [self._answer(unit, source, request_id, answer)])

    def _call(self, unit: _Shelly, method: str, params: dict[str, Any], source: str,
              request_id: Any) -> Reaction:
        if params.get("id", 0) != 0 and method.split(".")[0] != "Shelly":
            raise RpcError(INVALID_ARGUMENT, f"no {unit.key.split(':')[0]}:{params['id']}")
        query = unit.queries().get(method)
        if query is not None:
            return Reaction(None, reply=lambda: [
                self._answer(unit, source, request_id, {"result": query()})])
        operation = unit.operations().get(method)
        if operation is None:
            raise RpcError(NO_HANDLER, f"No handler for {method}")
        device = unit.device
        was_on = device.state.state == "on"
        try:
            new = operation(device, params)
        except MALFORMED as error:
            raise RpcError(INVALID_ARGUMENT, str(error)) from None
        switching = unit.kind.component in ("Switch", "Light")
        result = {"was_on": was_on} if switching else None
        return Reaction(device, lambda _d: new, lambda: [
            self._answer(unit, source, request_id, {"result": result})])

    @staticmethod
    def _answer(unit: _Shelly, source: str, request_id: Any,
                body: dict[str, Any]) -> Publication:
        return Publication(f"{source}/rpc", json.dumps(
            {"id": request_id, "src": unit.id, "dst": source, **body}), retain=False)

    def farewell(self) -> list[Publication]:
        return [Publication(f"{unit.prefix}/online", b"") for unit in self._units.values()]

    def presented_on(self, device: Device) -> PresentedOn:
        unit = self._units[device.spec.entity_id]
        return PresentedOn(self.name, (f"mac:{unit.mac.lower()}",), unit.id)
