"""Virtual home: a houseful of simulated MQTT devices that speak Home Assistant discovery.

Used by the zero-setup demo, by the evaluation harness and by tests. A home is described in
the home-assistant-datasets fixture format (``_fixtures.yaml``: ``floors``, ``areas``,
``devices``, ``entities`` with ``state`` and ``attributes``); ``demo_home()`` is our own.

Every entity behaves like a real device: it announces itself with a retained discovery
config, obeys commands on its command topics and publishes its new state, retained. The
simulator's own state table (``states()``) uses Home Assistant state semantics, so a harness
can compare it with a dataset's ``expect_changes``.

Topics (``<base>`` is ``base_topic``, ``<node>`` the same with ``-`` as ``_``)::

    <prefix>/<component>/<node>/<object_id>/config  retained discovery config
    <base>/availability                             online/offline for the whole simulator
                                                    (offline is its last will)
    <base>/<domain>/<object_id>/availability        online/offline for one device
    <base>/<domain>/<object_id>/state               main state, retained
    <base>/<domain>/<object_id>/<aspect>            other state: position, percentage, ...
    <base>/<domain>/<object_id>/set                 main command
    <base>/<domain>/<object_id>/<aspect>/set        other commands

Domains (commands on ``set`` unless an aspect is named; moves are instant):

    light          schema json: {"state": "ON"|"OFF", "brightness": 0..255, "color": {r,g,b[,w]},
                   "color_temp": kelvin}; a bulb remembers brightness and color while off
    switch         ON/OFF
    fan            ON/OFF; percentage/set 0..100 (when it has speeds)
    cover          OPEN/CLOSE/STOP; position/set 0..100 (when it has a position)
    valve          OPEN/CLOSE, or a position 0..100 when it reports one
    lock           LOCK/UNLOCK; state LOCKED/UNLOCKED
    climate        mode/set, temperature/set, power/set ON/OFF (back to the last mode)
    media_player   ON/OFF; play, pause, play_pause, next, previous (any payload); volume/set 0..1
    vacuum         start, pause, stop, return_to_base; state {"state": ...}
    scene, button  ON / PRESS: the state becomes the time; a scene sets its ``scene_states``
    sensor, binary_sensor, todo (a sensor of open items): read-only
    others (weather, calendar): kept in ``states()``, not published

Threading: paho runs its network loop in its own thread and calls back there. The device
logic runs in that thread too, behind one lock shared with the asyncio side (``reset``,
``states``); nothing touches the event loop from paho's thread except through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import paho.mqtt.client as mqtt
import yaml

log = logging.getLogger(__name__)

__all__ = [
    "AreaSpec",
    "DeviceSpec",
    "EntityState",
    "FloorSpec",
    "HomeSpec",
    "StateChange",
    "VirtualEntitySpec",
    "VirtualHome",
    "demo_home",
    "load_home",
]

FIXTURES_FILE = "_fixtures.yaml"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
DEFAULT_BASE_TOPIC = "virtual-home"
ONLINE, OFFLINE = "online", "offline"
UNKNOWN = "unknown"
PAYLOAD_NONE = "None"  # Home Assistant's wire payload for "state unknown"
QOS = 1
ACK_TIMEOUT_S = 5.0
CHANGE_LOG_SIZE = 10_000

_ENTITY_ID = re.compile(r"[a-z0-9_]+\.[A-Za-z0-9_]+")  # ha-intents has "price_per_kW"
# Fixtures write enum members as Python reprs: "cover.CoverDeviceClass.GARAGE" means "garage".
_ENUM_MEMBER = re.compile(r"[a-z_]+\.[A-Za-z]+\.([A-Z0-9_]+)")
_ATTRIBUTE_RENAMES = {
    "native_unit_of_measurement": "unit_of_measurement",
    "target_temperature": "temperature",
    "current_valve_position": "current_position",
}
# Fixture attributes that hold what Home Assistant shows as the state.
_STATE_ATTRIBUTES = ("native_value", "hvac_mode")
_MALFORMED = (ValueError, TypeError, KeyError)


# -- the home description -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloorSpec:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class AreaSpec:
    id: str
    name: str
    floor: str | None = None  # floor id


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    id: str
    name: str
    area: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    sw_version: str | None = None


@dataclass(frozen=True, slots=True)
class VirtualEntitySpec:
    """One fixture entity, its enum spellings and odd state types already normalised."""

    entity_id: str
    name: str
    domain: str
    area: str | None
    device_class: str | None
    state: str | None  # None: the fixture gives none, the device model infers one
    attributes: Mapping[str, Any]
    device: str | None = None  # device id
    # Scenes only: what activating it does, as {entity_id: {"state": .., "attributes": ..}}.
    scene_states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def object_id(self) -> str:
        return self.entity_id.split(".", 1)[1]


@dataclass(frozen=True, slots=True)
class HomeSpec:
    floors: tuple[FloorSpec, ...]
    areas: tuple[AreaSpec, ...]
    devices: tuple[DeviceSpec, ...]
    entities: tuple[VirtualEntitySpec, ...]

    def area_name(self, area_id: str | None) -> str | None:
        return next((a.name for a in self.areas if a.id == area_id), area_id)

    def device(self, device_id: str | None) -> DeviceSpec | None:
        return next((d for d in self.devices if d.id == device_id), None)


@dataclass(frozen=True, slots=True)
class EntityState:
    """What Home Assistant would show: the state string and the attributes."""

    state: str
    attributes: dict[str, Any] = field(default_factory=dict)


ChangeCause = Literal["command", "reset"]


@dataclass(frozen=True, slots=True)
class StateChange:
    sequence: int
    entity_id: str
    before: EntityState
    after: EntityState
    cause: ChangeCause


def load_home(path: Path | str) -> HomeSpec:
    """A home from a fixture directory (holding ``_fixtures.yaml``) or a fixture file."""
    path = Path(path)
    if path.is_dir():
        path = path / FIXTURES_FILE
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a fixture file (expected a mapping)")
    try:
        return _parse_home(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error!r}") from error


def demo_home() -> HomeSpec:
    """Our built-in demo home (assistant/data/demo_home.yaml)."""
    source = resources.files("assistant").joinpath("data", "demo_home.yaml")
    with resources.as_file(source) as path:
        return load_home(path)


def _parse_home(document: Mapping[str, Any]) -> HomeSpec:
    floors = {str(f["id"]): FloorSpec(str(f["id"]), str(f["name"]))
              for f in document.get("floors") or ()}
    areas = tuple(
        AreaSpec(str(a["id"]), str(a["name"]), _text(a.get("floor")))
        for a in document.get("areas") or ()
    )
    for area in areas:  # some fixtures name floors only on their areas
        if area.floor and area.floor not in floors:
            floors[area.floor] = FloorSpec(area.floor, area.floor.replace("_", " "))
    devices = tuple(_parse_device(d) for d in document.get("devices") or ())
    device_areas = {d.id: d.area for d in devices}
    entities: dict[str, VirtualEntitySpec] = {}
    for raw in document.get("entities") or ():
        entity = _parse_entity(raw, device_areas)
        if entity.entity_id in entities:  # a few dataset homes list one twice
            log.info("virtual home: %s is listed twice; keeping the first", entity.entity_id)
            continue
        entities[entity.entity_id] = entity
    return HomeSpec(tuple(floors.values()), areas, devices, tuple(entities.values()))


def _parse_device(raw: Mapping[str, Any]) -> DeviceSpec:
    info = raw.get("info") or {}
    return DeviceSpec(
        id=str(raw["id"]),
        name=str(raw.get("name") or raw["id"]),
        area=_text(raw.get("area")),
        manufacturer=_text(info.get("manufacturer")),
        model=_text(info.get("model")),
        sw_version=_text(info.get("sw_version")),
    )


def _parse_entity(raw: Mapping[str, Any],
                  device_areas: Mapping[str, str | None]) -> VirtualEntitySpec:
    entity_id = str(raw["id"])
    if not _ENTITY_ID.fullmatch(entity_id):
        raise ValueError(f"{entity_id!r} is not an entity id (domain.object_id)")
    domain = entity_id.split(".", 1)[0]
    model = _model_for(domain)
    hint, attributes = _normalise_attributes(raw.get("attributes") or {})
    state = model.normalise_state(raw.get("state"))
    device = _text(raw.get("device"))
    return VirtualEntitySpec(
        entity_id=entity_id,
        name=str(raw.get("name") or entity_id.split(".", 1)[1].replace("_", " ")),
        domain=domain,
        area=_text(raw.get("area")) or device_areas.get(device or ""),
        device_class=_text(attributes.get("device_class")),
        state=state if state is not None else model.normalise_state(hint),
        attributes=attributes,
        device=device,
        scene_states={str(k): v or {} for k, v in (raw.get("scene_states") or {}).items()},
    )


def _normalise_attributes(raw: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(a state hint, attributes as Home Assistant shows them) from fixture attributes."""
    attributes = {_ATTRIBUTE_RENAMES.get(str(k), str(k)): _plain(v) for k, v in raw.items()}
    hints = [attributes.pop(name) for name in _STATE_ATTRIBUTES if name in attributes]
    if isinstance(attributes.get("color_mode"), list):  # some fixtures list the one mode
        attributes["color_mode"] = next(iter(attributes["color_mode"]), None)
    return next((h for h in hints if h is not None), None), attributes


def _plain(value: Any) -> Any:
    if isinstance(value, str) and (member := _ENUM_MEMBER.fullmatch(value)):
        return member.group(1).lower()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# -- device models ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Device:
    """One simulated device: its description, its topics and what it is doing now."""

    spec: VirtualEntitySpec
    model: DomainModel
    root: str  # <base>/<domain>/<object_id>
    state: EntityState = field(default_factory=lambda: EntityState(UNKNOWN))
    # What the device keeps while off (a bulb's last brightness), not shown in its state.
    memory: dict[str, Any] = field(default_factory=dict)
    available: bool = True

    def topic(self, aspect: str = "state") -> str:
        return f"{self.root}/{aspect}"

    def command_topic(self, aspect: str = "") -> str:
        return f"{self.root}/{aspect}/set" if aspect else f"{self.root}/set"


Handler = Callable[[_Device, str], EntityState]
Config = dict[str, Any]
_Announced = tuple[mqtt.ReasonCode, list[mqtt.MQTTMessageInfo]]


def _updated(current: EntityState, state: str | None = None, **attributes: Any) -> EntityState:
    """``current`` with a new state and attributes; a None attribute is removed."""
    merged = {**current.attributes, **attributes}
    return EntityState(state or current.state,
                       {key: value for key, value in merged.items() if value is not None})


def _number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not low <= number <= high:  # also refuses NaN
        raise ValueError(f"{number} is outside {low}..{high}")
    return number


def _lookup(table: Mapping[str, str], payload: str) -> str:
    if payload not in table:
        raise ValueError(f"expected one of {sorted(table)}")
    return table[payload]


def _json_object(payload: str) -> dict[str, Any]:
    document = json.loads(payload)
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")
    return document


def _features(spec: VirtualEntitySpec) -> set[str]:
    return set(spec.attributes.get("supported_features") or ())


def _timestamp() -> str:
    return datetime.now(UTC).isoformat()


_ON_OFF = {"ON": "on", "OFF": "off"}  # command payload -> state
_ON_OFF_WIRE = {"on": "ON", "off": "OFF"}  # state -> state payload


class DomainModel:
    """How one Home Assistant domain behaves: discovery config, wire format, commands.

    A model is stateless; the device it works on carries the state and memory.
    """

    component: ClassVar[str | None]  # the discovery component; None: not published
    default_state: ClassVar[str] = UNKNOWN
    true_false: ClassVar[tuple[str, str]] = ("on", "off")  # what fixture booleans mean
    state_aliases: ClassVar[Mapping[str, str]] = {}  # states a dataset uses that we map

    def normalise_state(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return self.true_false[0 if value else 1]
        text = str(value).strip()
        return self.state_aliases.get(text, text)

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        """The state the attributes imply (a position, a brightness), if they imply one."""
        return None

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        """A consistent state from a wanted state (None: infer) and attributes."""
        return EntityState(state or self.infer_state(attributes) or self.default_state,
                           attributes)

    def discovery(self, device: _Device) -> Config:
        """Component-specific discovery options."""
        return {}

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        """What to publish, retained: {aspect: payload}."""
        return {}

    def commands(self, device: _Device) -> dict[str, Handler]:
        """{aspect: handler}; "" is the main command topic."""
        return {}

    def side_effects(self, device: _Device) -> Mapping[str, Mapping[str, Any]]:
        """Other entities a command on ``device`` sets: {entity_id: setup entry}."""
        return {}

    def default_entity_id(self, spec: VirtualEntitySpec) -> str:
        return spec.entity_id


class PassiveModel(DomainModel):
    """Domains with no MQTT platform (weather, calendar): kept in the table, not published."""

    component = None


class SwitchModel(DomainModel):
    component = "switch"
    default_state = "off"

    def discovery(self, device: _Device) -> Config:
        return {"command_topic": device.command_topic(), "state_topic": device.topic(),
                "payload_on": "ON", "payload_off": "OFF"}

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        return {"state": _ON_OFF_WIRE.get(state.state, PAYLOAD_NONE)}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": lambda d, payload: _updated(d.state, _lookup(_ON_OFF, payload))}


class BinarySensorModel(DomainModel):
    component = "binary_sensor"

    def discovery(self, device: _Device) -> Config:
        return {"state_topic": device.topic(), "payload_on": "ON", "payload_off": "OFF"}

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        return {"state": _ON_OFF_WIRE.get(state.state, PAYLOAD_NONE)}


class SensorModel(DomainModel):
    component = "sensor"

    def discovery(self, device: _Device) -> Config:
        attributes = device.spec.attributes
        options = {"state_topic": device.topic()}
        for option in ("unit_of_measurement", "state_class"):
            if attributes.get(option):
                options[option] = attributes[option]
        return options

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        return {"state": PAYLOAD_NONE if state.state == UNKNOWN else state.state}


class TodoModel(SensorModel):
    """A to-do list has no MQTT platform: published as a read-only sensor of open items."""

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        items = attributes.get("todo_items") or []
        done = [i for i in items if isinstance(i, dict) and i.get("status") == "completed"]
        return EntityState(str(len(items) - len(done)), attributes)

    def discovery(self, device: _Device) -> Config:
        return {"state_topic": device.topic(), "unit_of_measurement": "items",
                "icon": "mdi:clipboard-list"}

    def default_entity_id(self, spec: VirtualEntitySpec) -> str:
        return f"sensor.{spec.object_id}"  # Home Assistant keeps the platform's domain


class LightModel(DomainModel):
    """A ``schema: json`` light; brightness 0..255 on the wire, as in Home Assistant."""

    component = "light"
    default_state = "off"
    _MODES = ("onoff", "brightness", "color_temp", "rgb", "rgbw")  # the ones we simulate
    _COLOR_ATTRIBUTES = {"rgb": "rgb_color", "rgbw": "rgbw_color",
                         "color_temp": "color_temp_kelvin"}
    # What a bulb remembers while off and shows again when turned on.
    _KEPT_WHILE_OFF = ("brightness", "color_mode", "rgb_color", "rgbw_color", "color_temp_kelvin")

    def modes(self, spec: VirtualEntitySpec) -> list[str]:
        wanted = [m for m in spec.attributes.get("supported_color_modes") or () if m in self._MODES]
        colors = [m for m in wanted if m not in ("onoff", "brightness")]
        if colors:  # Home Assistant: onoff/brightness never combine with color modes
            return colors
        if wanted:
            return wanted[-1:]
        return ["brightness" if "brightness" in spec.attributes else "onoff"]

    def dims(self, spec: VirtualEntitySpec) -> bool:
        return self.modes(spec) != ["onoff"]

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        brightness = attributes.get("brightness")
        return None if brightness is None else ("on" if brightness > 0 else "off")

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        modes = self.modes(device.spec)
        attributes = {**attributes, "supported_color_modes": modes}
        if attributes.get("brightness") == 0:
            del attributes["brightness"]  # 0 is "off", never a level to come back to
        if state != "on":
            for name in self._KEPT_WHILE_OFF:
                if attributes.get(name) is not None:
                    device.memory[name] = attributes[name]
                attributes.pop(name, None)
            return EntityState(state, attributes)
        lit = {**{k: v for k, v in device.memory.items() if k in self._KEPT_WHILE_OFF},
               **{k: v for k, v in attributes.items() if v is not None}}
        if lit.get("color_mode") not in modes:
            lit["color_mode"] = modes[0]
        if self.dims(device.spec):
            lit.setdefault("brightness", 255)
        else:
            lit.pop("brightness", None)
        return EntityState("on", lit)

    def discovery(self, device: _Device) -> Config:
        modes = self.modes(device.spec)
        options: Config = {"schema": "json", "command_topic": device.command_topic(),
                           "state_topic": device.topic(), "supported_color_modes": modes}
        if self.dims(device.spec):
            options["brightness"] = True
        if "color_temp" in modes:
            options.update(color_temp_kelvin=True, min_kelvin=2000, max_kelvin=6500)
        return options

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        attributes = state.attributes
        power = _ON_OFF_WIRE.get(state.state)
        document: dict[str, Any] = {"state": power}
        if power == "ON":
            mode = attributes.get("color_mode")
            document["color_mode"] = mode
            if "brightness" in attributes:
                document["brightness"] = attributes["brightness"]
            if mode in ("rgb", "rgbw") and self._COLOR_ATTRIBUTES[mode] in attributes:
                document["color"] = dict(zip("rgbw", attributes[self._COLOR_ATTRIBUTES[mode]]))
            if mode == "color_temp" and "color_temp_kelvin" in attributes:
                document["color_temp"] = attributes["color_temp_kelvin"]
        return {"state": json.dumps(document)}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": self._command}

    def _command(self, device: _Device, payload: str) -> EntityState:
        command = _json_object(payload)
        power = _lookup(_ON_OFF, command.get("state"))
        attributes = dict(device.state.attributes)
        if power == "off" or command.get("brightness") == 0:
            return self.settle(device, "off", attributes)
        modes = self.modes(device.spec)
        if "brightness" in command:
            if not self.dims(device.spec):
                raise ValueError("this light does not dim")
            attributes["brightness"] = round(_number(command["brightness"], 0, 255))
        if "color" in command:
            mode = next((m for m in ("rgbw", "rgb") if m in modes), None)
            if mode is None:
                raise ValueError("this light has no color")
            color = command["color"]
            white = [color.get("w", 0)] if mode == "rgbw" else []  # an rgb command keeps w off
            channels = (color["r"], color["g"], color["b"], *white)
            attributes[self._COLOR_ATTRIBUTES[mode]] = [round(_number(v, 0, 255)) for v in channels]
            attributes["color_mode"] = mode
        if "color_temp" in command:
            if "color_temp" not in modes:
                raise ValueError("this light has no color temperature")
            attributes["color_temp_kelvin"] = round(_number(command["color_temp"], 1000, 12000))
            attributes["color_mode"] = "color_temp"
        return self.settle(device, "on", attributes)


class FanModel(DomainModel):
    component = "fan"
    default_state = "off"

    def has_speeds(self, spec: VirtualEntitySpec) -> bool:
        return "set_speed" in _features(spec) or "percentage" in spec.attributes

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        percentage = attributes.get("percentage")
        return None if percentage is None else ("on" if percentage > 0 else "off")

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        if not self.has_speeds(device.spec):
            return EntityState(state, attributes)
        percentage = attributes.get("percentage") or 0
        if state == "on":
            percentage = percentage or device.memory.get("percentage", 100)
            device.memory["percentage"] = percentage
        else:
            percentage = 0  # Home Assistant shows a fan that is off at 0 %
        return EntityState(state, {**attributes, "percentage": percentage})

    def discovery(self, device: _Device) -> Config:
        options: Config = {"command_topic": device.command_topic(), "state_topic": device.topic(),
                           "payload_on": "ON", "payload_off": "OFF"}
        if self.has_speeds(device.spec):
            options.update(percentage_command_topic=device.command_topic("percentage"),
                           percentage_state_topic=device.topic("percentage"),
                           speed_range_min=1, speed_range_max=100)
        return options

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        messages = {"state": _ON_OFF_WIRE.get(state.state, PAYLOAD_NONE)}
        if self.has_speeds(device.spec):
            messages["percentage"] = str(state.attributes.get("percentage", 0))
        return messages

    def commands(self, device: _Device) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {"": self._switch}
        if self.has_speeds(device.spec):
            handlers["percentage"] = self._set_percentage
        return handlers

    def _switch(self, device: _Device, payload: str) -> EntityState:
        return self.settle(device, _lookup(_ON_OFF, payload), dict(device.state.attributes))

    def _set_percentage(self, device: _Device, payload: str) -> EntityState:
        percentage = round(_number(payload, 0, 100))
        state = "on" if percentage else "off"
        return self.settle(device, state, {**device.state.attributes, "percentage": percentage})


class _PositionModel(DomainModel):
    """Shared by covers and valves: open/closed plus an optional 0..100 position."""

    default_state = "closed"
    true_false = ("open", "closed")
    _MOVES = {"OPEN": 100, "CLOSE": 0}

    def has_position(self, spec: VirtualEntitySpec) -> bool:
        return "set_position" in _features(spec) or "current_position" in spec.attributes

    def infer_state(self, attributes: Mapping[str, Any]) -> str | None:
        position = attributes.get("current_position")
        return None if position is None else ("open" if position > 0 else "closed")

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.infer_state(attributes) or self.default_state
        if not self.has_position(device.spec):
            return EntityState(state, attributes)
        position = attributes.get("current_position")
        if state == "closed":
            position = 0
        elif state == "open" and not position:
            position = 100
        return EntityState(state, {**attributes, "current_position": position or 0})

    def move_to(self, device: _Device, position: float) -> EntityState:
        # Devices here move instantly: a harness sees the end state at once.
        state = "open" if position > 0 else "closed"
        attributes = dict(device.state.attributes)
        if self.has_position(device.spec):
            attributes["current_position"] = round(position)
        return self.settle(device, state, attributes)


class CoverModel(_PositionModel):
    component = "cover"

    def discovery(self, device: _Device) -> Config:
        options: Config = {"command_topic": device.command_topic(), "state_topic": device.topic(),
                           "payload_open": "OPEN", "payload_close": "CLOSE",
                           "payload_stop": "STOP"}
        if self.has_position(device.spec):
            options.update(position_topic=device.topic("position"),
                           set_position_topic=device.command_topic("position"),
                           position_open=100, position_closed=0)
        return options

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        messages = {"state": PAYLOAD_NONE if state.state == UNKNOWN else state.state}
        if self.has_position(device.spec):
            messages["position"] = str(state.attributes.get("current_position", 0))
        return messages

    def commands(self, device: _Device) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {"": self._command}
        if self.has_position(device.spec):
            handlers["position"] = lambda d, payload: self.move_to(d, _number(payload, 0, 100))
        return handlers

    def _command(self, device: _Device, payload: str) -> EntityState:
        if payload == "STOP":
            return device.state  # it has already arrived: moves are instant
        if payload not in self._MOVES:
            raise ValueError("expected OPEN, CLOSE or STOP")
        return self.move_to(device, self._MOVES[payload])


class ValveModel(_PositionModel):
    component = "valve"

    def has_position(self, spec: VirtualEntitySpec) -> bool:
        return super().has_position(spec) or spec.attributes.get("reports_position") is True

    def discovery(self, device: _Device) -> Config:
        options: Config = {"command_topic": device.command_topic(), "state_topic": device.topic(),
                           "reports_position": self.has_position(device.spec)}
        if not options["reports_position"]:
            # Home Assistant refuses payload_open/close on a valve that reports a position.
            options.update(payload_open="OPEN", payload_close="CLOSE")
        return options

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        if state.state == UNKNOWN:
            return {"state": PAYLOAD_NONE}
        if self.has_position(device.spec):
            position = state.attributes.get("current_position", 0)
            return {"state": json.dumps({"state": state.state, "position": position})}
        return {"state": state.state}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": self._command}

    def _command(self, device: _Device, payload: str) -> EntityState:
        if payload in self._MOVES:  # Home Assistant sends a position instead when it can
            return self.move_to(device, self._MOVES[payload])
        if not self.has_position(device.spec):
            raise ValueError("expected OPEN or CLOSE")
        return self.move_to(device, _number(payload, 0, 100))


class LockModel(DomainModel):
    component = "lock"
    default_state = "locked"
    true_false = ("locked", "unlocked")
    _WIRE = {"locked": "LOCKED", "unlocked": "UNLOCKED", "locking": "LOCKING",
             "unlocking": "UNLOCKING", "jammed": "JAMMED", "open": "OPEN", "opening": "OPENING"}

    def discovery(self, device: _Device) -> Config:
        return {"command_topic": device.command_topic(), "state_topic": device.topic(),
                "payload_lock": "LOCK", "payload_unlock": "UNLOCK",
                "state_locked": "LOCKED", "state_unlocked": "UNLOCKED"}

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        return {"state": self._WIRE.get(state.state, PAYLOAD_NONE)}

    def commands(self, device: _Device) -> dict[str, Handler]:
        table = {"LOCK": "locked", "UNLOCK": "unlocked"}
        return {"": lambda d, payload: _updated(d.state, _lookup(table, payload))}


class ClimateModel(DomainModel):
    component = "climate"
    default_state = "off"
    _DEFAULT_MODES = ["off", "heat", "cool", "auto"]
    _DEFAULT_RANGES = {"C": (7.0, 35.0), "F": (44.6, 95.0)}  # Home Assistant's defaults
    # hvac_action per mode: (when the room is below target, above it, at it)
    _ACTIONS = {"heat": ("heating", "idle", "idle"), "cool": ("idle", "cooling", "idle"),
                "auto": ("heating", "cooling", "idle"), "heat_cool": ("heating", "cooling", "idle"),
                "dry": ("drying",) * 3, "fan_only": ("fan",) * 3, "off": ("off",) * 3}

    def unit(self, spec: VirtualEntitySpec) -> str:
        return "F" if "F" in str(spec.attributes.get("unit_of_measurement", "")) else "C"

    def with_defaults(self, spec: VirtualEntitySpec,
                      attributes: Mapping[str, Any]) -> dict[str, Any]:
        low, high = self._DEFAULT_RANGES[self.unit(spec)]
        return {"hvac_modes": list(self._DEFAULT_MODES), "min_temp": low, "max_temp": high,
                **attributes}

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        state = state or self.default_state
        attributes = self.with_defaults(device.spec, attributes)
        if state != "off":
            device.memory["mode"] = state
        target, current = attributes.get("temperature"), attributes.get("current_temperature")
        below, above, at = self._ACTIONS.get(state, ("idle",) * 3)
        action = at
        if target is not None and current is not None and current != target:
            action = below if current < target else above
        return EntityState(state, {**attributes, "hvac_action": action})

    def discovery(self, device: _Device) -> Config:
        attributes = self.with_defaults(device.spec, device.spec.attributes)
        return {
            "mode_command_topic": device.command_topic("mode"),
            "mode_state_topic": device.topic("mode"),
            "modes": attributes["hvac_modes"],
            "temperature_command_topic": device.command_topic("temperature"),
            "temperature_state_topic": device.topic("temperature"),
            "current_temperature_topic": device.topic("current_temperature"),
            "action_topic": device.topic("action"),
            "power_command_topic": device.command_topic("power"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "min_temp": attributes["min_temp"],
            "max_temp": attributes["max_temp"],
            "temp_step": 0.5,
            "precision": 0.1,
            "temperature_unit": self.unit(device.spec),
        }

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        attributes = state.attributes
        messages = {"mode": PAYLOAD_NONE if state.state == UNKNOWN else state.state,
                    "action": attributes["hvac_action"]}
        for aspect, name in (("temperature", "temperature"),
                             ("current_temperature", "current_temperature")):
            if attributes.get(name) is not None:
                messages[aspect] = str(attributes[name])
        return messages

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"mode": self._set_mode, "temperature": self._set_temperature,
                "power": self._set_power}

    def _set_mode(self, device: _Device, payload: str) -> EntityState:
        if payload not in device.state.attributes["hvac_modes"]:
            raise ValueError(f"not one of {device.state.attributes['hvac_modes']}")
        return self.settle(device, payload, dict(device.state.attributes))

    def _set_temperature(self, device: _Device, payload: str) -> EntityState:
        attributes = device.state.attributes
        target = _number(payload, attributes["min_temp"], attributes["max_temp"])
        return self.settle(device, device.state.state, {**attributes, "temperature": target})

    def _set_power(self, device: _Device, payload: str) -> EntityState:
        if _lookup(_ON_OFF, payload) == "off":
            return self.settle(device, "off", dict(device.state.attributes))
        if device.state.state != "off":
            return device.state
        modes = [m for m in device.state.attributes["hvac_modes"] if m != "off"]
        if not modes:
            raise ValueError("this thermostat only knows off")
        mode = device.memory.get("mode")
        mode = mode if mode in modes else modes[0]
        return self.settle(device, mode, dict(device.state.attributes))


class MediaPlayerModel(DomainModel):
    """Home Assistant has no MQTT media_player: the community layout (see ha_discovery)."""

    component = "media_player"
    default_state = "off"

    def discovery(self, device: _Device) -> Config:
        return {
            "state_topic": device.topic(),
            "command_topic": device.command_topic(),
            "payload_on": "ON",
            "payload_off": "OFF",
            "volume_state_topic": device.topic("volume"),
            "volume_set_topic": device.command_topic("volume"),
            **{f"{action}_topic": device.command_topic(action)
               for action in ("play", "pause", "play_pause", "next", "previous")},
        }

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        messages = {"state": PAYLOAD_NONE if state.state == UNKNOWN else state.state}
        if state.attributes.get("volume_level") is not None:
            messages["volume"] = str(state.attributes["volume_level"])
        return messages

    def commands(self, device: _Device) -> dict[str, Handler]:
        # The topic is the command: any payload on play_topic plays.
        return {
            "": self._power,
            "play": lambda d, _: _updated(d.state, "playing"),
            "pause": lambda d, _: _updated(d.state, "paused" if self._playing(d) else None),
            "play_pause": lambda d, _: _updated(d.state,
                                                "paused" if self._playing(d) else "playing"),
            "next": lambda d, _: self._skip(d, +1),
            "previous": lambda d, _: self._skip(d, -1),
            "volume": lambda d, payload: _updated(d.state, volume_level=_number(payload, 0, 1)),
        }

    def _power(self, device: _Device, payload: str) -> EntityState:
        if _lookup(_ON_OFF, payload) == "off":
            return _updated(device.state, "off")
        return _updated(device.state, "idle") if device.state.state == "off" else device.state

    @staticmethod
    def _playing(device: _Device) -> bool:
        return device.state.state == "playing"

    @staticmethod
    def _skip(device: _Device, step: int) -> EntityState:
        track = int(device.state.attributes.get("media_track") or 1)
        return _updated(device.state, media_track=max(1, track + step))


class VacuumModel(DomainModel):
    component = "vacuum"
    default_state = "docked"
    state_aliases = {"off": "idle", "on": "cleaning"}  # vacuums have no on/off state
    _COMMANDS = {"start": "cleaning", "pause": "paused", "stop": "idle",
                 "return_to_base": "returning"}

    def discovery(self, device: _Device) -> Config:
        features = ["start", "stop", "pause", "return_home", "status"]
        if "battery_level" in device.spec.attributes:
            features.append("battery")
        return {"command_topic": device.command_topic(), "state_topic": device.topic(),
                "supported_features": features,
                **{f"payload_{c}": c for c in self._COMMANDS}}

    def wire(self, state: EntityState, device: _Device) -> dict[str, str]:
        document: dict[str, Any] = {"state": None if state.state == UNKNOWN else state.state}
        if state.attributes.get("battery_level") is not None:
            document["battery_level"] = state.attributes["battery_level"]
        return {"state": json.dumps(document)}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": self._command}

    def _command(self, device: _Device, payload: str) -> EntityState:
        state = _lookup(self._COMMANDS, payload)
        if state == "paused" and device.state.state not in ("cleaning", "returning"):
            return device.state  # nothing to pause
        return _updated(device.state, state)


class SceneModel(DomainModel):
    """Activating a scene sets its entities; its state is when it was last activated."""

    component = "scene"

    def settle(self, device: _Device, state: str | None, attributes: dict[str, Any]) -> EntityState:
        if device.spec.scene_states:
            attributes = {**attributes, "entity_id": list(device.spec.scene_states)}
        return super().settle(device, state, attributes)

    def discovery(self, device: _Device) -> Config:
        return {"command_topic": device.command_topic(), "payload_on": "ON"}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": lambda d, payload: _updated(d.state, _lookup({"ON": _timestamp()}, payload))}

    def side_effects(self, device: _Device) -> Mapping[str, Mapping[str, Any]]:
        return device.spec.scene_states


class ButtonModel(DomainModel):
    component = "button"

    def discovery(self, device: _Device) -> Config:
        return {"command_topic": device.command_topic(), "payload_press": "PRESS"}

    def commands(self, device: _Device) -> dict[str, Handler]:
        return {"": lambda d, payload: _updated(d.state,
                                                _lookup({"PRESS": _timestamp()}, payload))}


_MODELS: dict[str, DomainModel] = {
    "binary_sensor": BinarySensorModel(),
    "button": ButtonModel(),
    "climate": ClimateModel(),
    "cover": CoverModel(),
    "fan": FanModel(),
    "light": LightModel(),
    "lock": LockModel(),
    "media_player": MediaPlayerModel(),
    "scene": SceneModel(),
    "sensor": SensorModel(),
    "switch": SwitchModel(),
    "todo": TodoModel(),
    "vacuum": VacuumModel(),
    "valve": ValveModel(),
}
_PASSIVE = PassiveModel()
# Platforms whose discovery config carries the entity's device_class.
# media_player has no Home Assistant platform, but tv/speaker helps the daemon tell them apart.
_DEVICE_CLASS_COMPONENTS = frozenset({"binary_sensor", "button", "cover", "media_player",
                                      "sensor", "switch", "valve"})


def _model_for(domain: str) -> DomainModel:
    return _MODELS.get(domain, _PASSIVE)


# -- the simulator ----------------------------------------------------------------------------


class VirtualHome:
    """Simulated MQTT devices for every entity of ``spec``."""

    def __init__(
        self,
        spec: HomeSpec,
        host: str,
        port: int,
        discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX,
        base_topic: str = DEFAULT_BASE_TOPIC,
    ) -> None:
        self.spec = spec
        self._host, self._port = host, port
        self.discovery_prefix = discovery_prefix.strip("/")
        self.base_topic = base_topic.strip("/")
        # One node id per base topic: two simulators on one broker never share configs.
        self.node_id = re.sub(r"[^a-zA-Z0-9_]", "_", self.base_topic)
        self._lock = threading.Lock()
        self._devices = {
            entity.entity_id: _Device(entity, _model_for(entity.domain),
                                      f"{self.base_topic}/{entity.domain}/{entity.object_id}")
            for entity in spec.entities
        }
        for device in self._devices.values():
            device.state = self._initial_state(device)
        self._routes: dict[str, tuple[_Device, Handler]] = {
            device.command_topic(aspect): (device, handler)
            for device in self._published()
            for aspect, handler in device.model.commands(device).items()
        }
        self._changes: deque[StateChange] = deque(maxlen=CHANGE_LOG_SIZE)
        self._sequence = 0
        self._last_command_at = 0.0
        self._client: mqtt.Client | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def availability_topic(self) -> str:
        return f"{self.base_topic}/availability"

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect, announce every device and publish its state; returns once the broker
        has all of it (and so also the command subscriptions, sent before)."""
        if self._client is not None:
            raise RuntimeError("the virtual home is already started")
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[_Announced] = loop.create_future()

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any,
                       reason: mqtt.ReasonCode, properties: Any) -> None:
            infos = [] if reason.is_failure else self._announce(client)
            with contextlib.suppress(RuntimeError):  # the loop may be gone on a late reconnect
                loop.call_soon_threadsafe(
                    lambda: connected.done() or connected.set_result((reason, infos)))

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"{self.node_id}-{uuid.uuid4().hex[:8]}")
        client.will_set(self.availability_topic, OFFLINE, qos=QOS, retain=True)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(0.5, 10)
        client.on_connect = on_connect
        client.on_message = self._on_message
        await asyncio.to_thread(client.connect, self._host, self._port, 30)
        client.loop_start()
        try:
            deadline = time.monotonic() + timeout_s
            reason, infos = await asyncio.wait_for(connected, timeout_s)
            if reason.is_failure:
                raise ConnectionError(f"the broker refused the virtual home: {reason}")
            await asyncio.to_thread(_wait_acknowledged, infos, deadline - time.monotonic())
        except BaseException:
            await asyncio.to_thread(_shut_down, client)
            raise
        self._client = client
        log.info("virtual home: %d devices on %s:%d under %s/", len(self._devices),
                 self._host, self._port, self.base_topic)

    async def stop(self) -> None:
        """Remove every device (empty retained configs and states) and disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        with self._lock:
            devices = list(self._published())
            # Configs first: the entities go away before their states are cleared.
            topics = [self._config_topic(device) for device in devices]
            for device in devices:
                topics += [device.topic("availability"),
                           *(device.topic(a) for a in device.model.wire(device.state, device))]
        topics.append(self.availability_topic)
        infos = [client.publish(topic, b"", qos=QOS, retain=True) for topic in topics]
        try:
            await asyncio.to_thread(_wait_acknowledged, infos, ACK_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as error:
            log.warning("virtual home: could not clear its retained topics: %s", error)
        await asyncio.to_thread(_shut_down, client)

    # -- what harnesses use ---------------------------------------------------------------

    def states(self) -> dict[str, EntityState]:
        with self._lock:
            return {entity_id: device.state for entity_id, device in self._devices.items()}

    def mark(self) -> int:
        """A marker for ``changes_since``: the sequence number of the latest change."""
        with self._lock:
            return self._sequence

    def changes_since(self, marker: int) -> list[StateChange]:
        with self._lock:
            return [change for change in self._changes if change.sequence > marker]

    async def reset(self, setup: Mapping[str, Mapping[str, Any] | None] | None = None,
                    timeout_s: float = ACK_TIMEOUT_S) -> int:
        """Back to the fixture state, overlaid with ``setup`` ({entity_id: {"state": ..,
        "attributes": {..}}}); returns once the broker acknowledged every new state, with
        the marker to pass to ``changes_since``."""
        client = self._require_client()
        setup = setup or {}
        for entity_id in setup.keys() - self._devices.keys():
            log.warning("virtual home: setup names unknown entity %s; ignored", entity_id)
        with self._lock:
            for device in self._devices.values():
                device.memory.clear()
                fixture = self._initial_state(device)
                entry = setup.get(device.spec.entity_id)
                new = self._apply_entry(device, fixture, entry) if entry else fixture
                self._record(device, new, "reset")
            infos = [info for device in self._published()
                     for info in self._publish_state(client, device)]
            for device in self._published():
                if not device.available:  # back on power, as in the fixture
                    device.available = True
                    infos.append(client.publish(device.topic("availability"), ONLINE,
                                                qos=QOS, retain=True))
            marker = self._sequence
        await asyncio.to_thread(_wait_acknowledged, infos, timeout_s)
        return marker

    async def wait_quiet(self, quiet_s: float = 0.3, timeout_s: float = 5.0) -> bool:
        """True once no command has arrived for ``quiet_s``; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            idle = time.monotonic() - self._last_command_at
            if idle >= quiet_s:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(quiet_s - idle, remaining))

    async def set_available(self, entity_id: str, available: bool,
                            timeout_s: float = ACK_TIMEOUT_S) -> None:
        """Take one device offline (or back online), as if it lost power."""
        client = self._require_client()
        with self._lock:
            device = self._devices[entity_id]
            device.available = available
            info = client.publish(device.topic("availability"), ONLINE if available else OFFLINE,
                                  qos=QOS, retain=True)
        await asyncio.to_thread(_wait_acknowledged, [info], timeout_s)

    # -- internals ------------------------------------------------------------------------

    def _require_client(self) -> mqtt.Client:
        if self._client is None:
            raise RuntimeError("the virtual home is not started")
        return self._client

    def _published(self) -> Iterable[_Device]:
        return (d for d in self._devices.values() if d.model.component is not None)

    def _initial_state(self, device: _Device) -> EntityState:
        spec = device.spec
        return device.model.settle(device, spec.state, dict(spec.attributes))

    def _apply_entry(self, device: _Device, base: EntityState,
                     entry: Mapping[str, Any]) -> EntityState:
        """``base`` overlaid with a setup entry; a position or brightness given without a
        state decides the state, as it would on a real device."""
        _, attributes = _normalise_attributes(entry.get("attributes") or {})
        state = device.model.normalise_state(entry.get("state"))
        state = state or device.model.infer_state(attributes) or base.state
        return device.model.settle(device, state, {**base.attributes, **attributes})

    def _record(self, device: _Device, new: EntityState, cause: ChangeCause) -> None:
        """Must hold the lock."""
        old, device.state = device.state, new
        if old != new:
            self._sequence += 1
            self._changes.append(StateChange(self._sequence, device.spec.entity_id, old, new,
                                             cause))
            log.debug("%s: %s %s -> %s %s (%s)", device.spec.entity_id, old.state,
                      old.attributes, new.state, new.attributes, cause)

    def _config_topic(self, device: _Device) -> str:
        component = device.model.component
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{device.spec.object_id}/config"

    def _config(self, device: _Device) -> Config:
        spec = device.spec
        owner = self.spec.device(spec.device)
        device_block: Config = {
            "identifiers": [f"{self.node_id}_{owner.id if owner else spec.entity_id}"],
            "name": owner.name if owner else spec.name,
        }
        if owner is not None:
            device_block.update({k: v for k, v in (("manufacturer", owner.manufacturer),
                                                   ("model", owner.model),
                                                   ("sw_version", owner.sw_version)) if v})
        area = self.spec.area_name(spec.area)
        if area:
            device_block["suggested_area"] = area
        config: Config = {
            "name": spec.name,
            "unique_id": f"{self.node_id}_{spec.domain}_{spec.object_id}",
            "default_entity_id": device.model.default_entity_id(spec),
            "device": device_block,
            "origin": {"name": "mimo-home virtual home"},
            # The simulator's last will and the device's own topic: offline if either says so.
            "availability": [{"topic": self.availability_topic},
                             {"topic": device.topic("availability")}],
            "availability_mode": "all",
            "qos": QOS,
            **device.model.discovery(device),
        }
        if spec.device_class and device.model.component in _DEVICE_CLASS_COMPONENTS:
            config["device_class"] = spec.device_class
        return config

    def _announce(self, client: mqtt.Client) -> list[mqtt.MQTTMessageInfo]:
        """(Re)publish every config, availability and state; runs on each connect."""
        client.subscribe([(f"{self.base_topic}/+/+/set", QOS),
                          (f"{self.base_topic}/+/+/+/set", QOS),
                          (f"{self.discovery_prefix}/status", QOS)])
        infos = []
        with self._lock:
            for device in self._published():
                infos.append(client.publish(self._config_topic(device),
                                            json.dumps(self._config(device)), qos=QOS, retain=True))
                infos.append(client.publish(device.topic("availability"),
                                            ONLINE if device.available else OFFLINE,
                                            qos=QOS, retain=True))
                infos += self._publish_state(client, device)
        infos.append(client.publish(self.availability_topic, ONLINE, qos=QOS, retain=True))
        return infos

    def _publish_state(self, client: mqtt.Client, device: _Device) -> list[mqtt.MQTTMessageInfo]:
        """Must hold the lock, so retained states reach the broker in the order they changed."""
        return [client.publish(device.topic(aspect), payload, qos=QOS, retain=True)
                for aspect, payload in device.model.wire(device.state, device).items()]

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == f"{self.discovery_prefix}/status":
                if message.payload == ONLINE.encode():  # Home Assistant restarted: re-announce
                    self._announce(client)
                return
            route = self._routes.get(message.topic)
            if route is None or message.retain:  # a stale retained command is not a command
                return
            self._last_command_at = time.monotonic()
            self._command(client, *route, message)
        except Exception:  # paho's thread must survive anything a message does
            log.exception("virtual home: failed on a message to %s", message.topic)

    def _command(self, client: mqtt.Client, device: _Device, handler: Handler,
                 message: mqtt.MQTTMessage) -> None:
        try:
            payload = message.payload.decode("utf-8")
            with self._lock:
                self._record(device, handler(device, payload), "command")
                self._publish_state(client, device)
                for entity_id, entry in device.model.side_effects(device).items():
                    target = self._devices.get(entity_id)
                    if target is None:
                        log.warning("virtual home: %s sets unknown entity %s",
                                    device.spec.entity_id, entity_id)
                        continue
                    self._record(target, self._apply_entry(target, target.state, entry),
                                 "command")
                    if target.model.component is not None:
                        self._publish_state(client, target)
        except _MALFORMED as error:
            log.warning("virtual home: ignored a malformed command on %s (%.80r): %s",
                        message.topic, message.payload, error)


def _wait_acknowledged(infos: Iterable[mqtt.MQTTMessageInfo], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for info in infos:
        try:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
        except (RuntimeError, ValueError) as error:  # paho: not connected, queue full
            raise ConnectionError(f"publish failed: {error}") from error
        if not info.is_published():
            raise TimeoutError(f"the broker did not acknowledge within {timeout_s} s")


def _shut_down(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


# -- standalone -------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    spec = load_home(args.home) if args.home else demo_home()
    house = VirtualHome(spec, args.host, args.port, args.discovery_prefix, args.base_topic)
    await house.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"virtual home: {len(spec.entities)} entities on {args.host}:{args.port} "
          f"under {args.base_topic}/; Ctrl-C stops.", flush=True)
    try:
        await stopping.wait()
    finally:
        await house.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.virtual.home",
        description="Run a virtual home of MQTT devices (Home Assistant discovery).")
    parser.add_argument("--home", type=Path, help="fixture dir or _fixtures.yaml (default: demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--base-topic", default=DEFAULT_BASE_TOPIC)
    parser.add_argument("--discovery-prefix", default=DEFAULT_DISCOVERY_PREFIX)
    parser.add_argument("--quiet", action="store_true", help="do not log every state change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.quiet:
        log.setLevel(logging.DEBUG)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
