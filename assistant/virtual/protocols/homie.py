"""Homie v5: each device a Homie device with one node.

Written from the Homie convention 5.0 (homieiot.github.io/specification)::

    homie/5/<id>/$state              init -> ready (lost, disconnected), retained
    homie/5/<id>/$description        retained JSON: homie, version, name, nodes with
                                     properties (datatype, format, settable, retained, unit)
    homie/5/<id>/<node>/<property>   its value, retained
    homie/5/<id>/<node>/<property>/set   commands (never retained)

Switches (node "switch": boolean "state"), simple lights (node "light": boolean "state",
integer "brightness" 0:100 %), sensors (node "sensor": float "value" with the unit) and
binary sensors (node "sensor": boolean "state", read-only). Payloads: "true"/"false",
decimal numbers.
"""

from __future__ import annotations

import json
from typing import Any

from device_adapters.wire import brightness_from_wire, brightness_to_wire

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.models import (
    LIGHT,
    SWITCH,
    Device,
    EntityState,
    lookup,
    number_in,
)
from assistant.virtual.protocols.base import FrontEnd, PresentedOn, Publication, Reaction, reading

HOMIE_VERSION = "5.0"
_BOOLEAN = {"true": True, "false": False}
Property = dict[str, Any]


def _simple_light(spec: VirtualEntitySpec) -> bool:
    return LIGHT.modes(spec) in (["onoff"], ["brightness"])


class _Homie:
    """One simulated Homie device: its node, properties and topics."""

    def __init__(self, front_end: HomieFrontEnd, device: Device) -> None:
        self.device = device
        self.id = f"mimo-{front_end.device_key(device)[:12]}"
        self.root = f"{front_end.root}/5/{self.id}"
        domain = device.spec.domain
        self.node = "sensor" if domain in ("sensor", "binary_sensor") else domain

    def properties(self) -> dict[str, Property]:
        spec = self.device.spec
        if spec.domain == "switch":
            return {"state": self._property("State", "boolean", settable=True)}
        if spec.domain == "light":
            properties = {"state": self._property("State", "boolean", settable=True)}
            if LIGHT.dims(spec):
                properties["brightness"] = self._property(
                    "Brightness", "integer", settable=True, format="0:100", unit="%")
            return properties
        if spec.domain == "binary_sensor":
            return {"state": self._property(spec.name, "boolean")}
        unit = spec.attributes.get("unit_of_measurement")
        datatype = "float" if self._numeric(spec) else "string"
        return {"value": self._property(spec.name, datatype, **({"unit": unit} if unit else {}))}

    @staticmethod
    def _numeric(spec: VirtualEntitySpec) -> bool:
        return spec.state in (None, "unknown") or reading(spec.state) is not None

    @staticmethod
    def _property(name: str, datatype: str, settable: bool = False, **extra: Any) -> Property:
        return {"name": name, "datatype": datatype, "settable": settable, "retained": True,
                **extra}

    def description(self) -> dict[str, Any]:
        spec = self.device.spec
        return {"homie": HOMIE_VERSION, "version": 1, "name": spec.name,
                "nodes": {self.node: {"name": spec.name, "type": spec.domain,
                                      "properties": self.properties()}}}

    def values(self) -> dict[str, str]:
        state = self.device.state
        if self.device.spec.domain == "sensor":
            numeric = self._numeric(self.device.spec)
            return {"value": state.state if not numeric or reading(state.state) is not None else ""}
        values = {"state": {"on": "true", "off": "false"}.get(state.state, "")}
        if "brightness" in self.properties():
            brightness = LIGHT.lit(self.device, "brightness") or 255
            values["brightness"] = str(brightness_to_wire(brightness, 100))
        return values

    def topic(self, prop: str) -> str:
        return f"{self.root}/{self.node}/{prop}"

    def command(self, prop: str, payload: str) -> EntityState:
        device = self.device
        if prop == "state":
            on = lookup(_BOOLEAN, payload)
            if device.spec.domain == "light":
                return LIGHT.set(device, bool(on))
            model = SWITCH
            return model.switch(device, bool(on))
        if not payload.strip().lstrip("-").isdigit():
            raise ValueError("brightness is an integer")
        level = number_in(int(payload), 0, 100)
        return LIGHT.set(device, level > 0, brightness_from_wire(level, 100) if level else 0)


class HomieFrontEnd(FrontEnd):
    name = "homie"
    domains = frozenset({"switch", "light", "sensor", "binary_sensor"})

    def __init__(self, home: HomeSpec, base_topic: str, homie_base: str = "homie") -> None:
        super().__init__(home, base_topic)
        self.root = homie_base.strip("/")
        self._units: dict[str, _Homie] = {}  # entity id -> its Homie device
        self._settable: dict[str, tuple[_Homie, str]] = {}  # set topic -> (device, property)

    @classmethod
    def can_present(cls, spec: VirtualEntitySpec) -> bool:
        return super().can_present(spec) and (spec.domain != "light" or _simple_light(spec))

    def add(self, device: Device) -> None:
        super().add(device)
        unit = _Homie(self, device)
        self._units[device.spec.entity_id] = unit
        for prop, description in unit.properties().items():
            if description["settable"]:
                self._settable[f"{unit.topic(prop)}/set"] = (unit, prop)

    def subscriptions(self) -> list[str]:
        return list(self._settable)

    def announce(self) -> list[Publication]:
        messages = []
        for unit in self._units.values():
            messages += [Publication(f"{unit.root}/$state", "init"),
                         Publication(f"{unit.root}/$description",
                                     json.dumps(unit.description())),
                         *self.state_messages(unit.device),
                         *self.availability_messages(unit.device)]
        return messages

    def state_messages(self, device: Device) -> list[Publication]:
        unit = self._units[device.spec.entity_id]
        return [Publication(unit.topic(prop), value) for prop, value in unit.values().items()]

    def availability_messages(self, device: Device) -> list[Publication]:
        unit = self._units[device.spec.entity_id]
        return [Publication(f"{unit.root}/$state", "ready" if device.available else "lost")]

    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        route = self._settable.get(topic)
        if route is None:
            return None
        unit, prop = route
        text = payload.decode("utf-8")
        return Reaction(unit.device, lambda _d: unit.command(prop, text))

    def farewell(self) -> list[Publication]:
        messages = []
        for unit in self._units.values():
            messages += [Publication(unit.topic(prop), b"") for prop in unit.values()]
            messages += [Publication(f"{unit.root}/$description", b""),
                         Publication(f"{unit.root}/$state", b"")]
        return messages

    def presented_on(self, device: Device) -> PresentedOn:
        return PresentedOn(self.name, (), self._units[device.spec.entity_id].id)
