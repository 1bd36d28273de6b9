"""What a Shelly Gen2+ device's replies mean: who it is (``Shelly.GetDeviceInfo``), which
entities its components make (``Shelly.GetConfig`` names them, ``Shelly.GetStatus`` tells
which readings they have) and what each entity's state is, in Home Assistant's terms.

Components are keyed ``<type>:<id>`` in every config, status and notification. Kept:
``switch`` (relay, with power metering as sensors), ``cover``, ``light`` (dimmer), ``input``
(``switch`` type: a binary sensor; ``button`` type: a sensor holding the last push event;
``analog``: a percentage sensor), and the add-on and peripheral sensors ``temperature``,
``humidity``, ``voltmeter`` and ``devicepower``. Only the status fields read here are kept,
so what a device sends cannot grow what is stored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from typing import Any

from assistant.device_data import DeviceLimits, clean_text
from assistant.registry import Entity
from device_adapters.wire import brightness_from_wire

SOURCE = "shelly"
MAX_COMPONENTS = 64  # per device; the largest Pro devices have a few dozen
_COMPONENT_KEY = re.compile(r"(switch|cover|light|input|temperature|humidity|voltmeter|devicepower)"
                            r":(\d{1,4})")
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_MAC = re.compile(r"[0-9a-f]{12}")

# Status fields kept per component type; a set names the fields kept of a nested object.
_STATUS_FIELDS: dict[str, dict[str, frozenset[str] | None]] = {
    "switch": {"output": None, "apower": None, "voltage": None, "current": None,
               "aenergy": frozenset({"total"})},
    "cover": {"state": None, "current_pos": None, "pos_control": None, "apower": None,
              "voltage": None, "current": None, "aenergy": frozenset({"total"})},
    "input": {"state": None, "percent": None},
    "temperature": {"tC": None},
    "humidity": {"rh": None},
    "voltmeter": {"voltage": None},
    "devicepower": {"battery": frozenset({"percent"})},
    "sys": {"cfg_rev": None},
}
_STATUS_FIELDS["light"] = {**_STATUS_FIELDS["switch"], "brightness": None}

COVER_STATES = frozenset({"open", "closed", "opening", "closing"})
BUTTON_EVENTS = frozenset({"btn_down", "btn_up", "single_push", "double_push", "triple_push",
                           "long_push"})


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """``Shelly.GetDeviceInfo``: what makes a reply Shelly-looking."""

    id: str  # also the ``src`` of everything the device sends
    mac: str  # 12 lowercase hex digits
    model: str
    gen: int
    app: str
    name: str | None
    firmware: str | None

    @property
    def device_ids(self) -> tuple[str, ...]:
        return (f"mac:{self.mac}",)


def parse_device_info(result: dict[str, Any], src: Any) -> DeviceInfo | None:
    """The device a ``Shelly.GetDeviceInfo`` result describes, or None when it does not look
    like a Gen2+ Shelly: id (its reply's src), mac, model, gen >= 2 and app are required."""
    device_id, mac, gen = result.get("id"), result.get("mac"), result.get("gen")
    model, app = (clean_text(value, 64) if isinstance(value, str) else None
                  for value in (result.get("model"), result.get("app")))
    if not (isinstance(device_id, str) and _DEVICE_ID.fullmatch(device_id) and src == device_id):
        return None
    mac = re.sub("[:-]", "", mac).lower() if isinstance(mac, str) else ""
    if not (_MAC.fullmatch(mac) and model and app and isinstance(gen, int)
            and not isinstance(gen, bool) and 2 <= gen < 100):
        return None
    firmware = clean_text(result.get("ver"), 64) or clean_text(result.get("fw_id"), 64)
    return DeviceInfo(device_id, mac, model, gen, app, clean_text(result.get("name"), 100),
                      firmware)


def component_type(key: str) -> str | None:
    match = _COMPONENT_KEY.fullmatch(key)
    return match.group(1) if match else None


def project(key: str, status: Any) -> dict[str, Any]:
    """The fields of a component's status (or status delta) that are read here; a null
    value (a field that disappeared, as NotifyStatus tells it) is kept to remove it."""
    fields = _STATUS_FIELDS.get(component_type(key) or key)
    if fields is None or not isinstance(status, dict):
        return {}
    kept: dict[str, Any] = {}
    for name, nested in fields.items():
        if name not in status:
            continue
        value = status[name]
        if nested is not None and isinstance(value, dict):
            value = {field: value[field] for field in nested if field in value}
        kept[name] = value
    return kept


def merge(known: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """``delta`` overlaid on ``known`` as NotifyStatus is meant to be: null removes a field."""
    merged = dict(known)
    for name, value in delta.items():
        if value is None:
            merged.pop(name, None)
        elif isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = merge(merged[name], value)
        else:
            merged[name] = value
    return merged


# -- entities -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    """A numeric reading at ``path`` of a component's status, as a sensor."""

    path: tuple[str, ...]
    suffix: str  # of the entity id and unique id
    label: str
    device_class: str
    unit: str
    state_class: str = "measurement"
    enabled: bool = True


# Power metering of switches, covers and lights: sensors of their own, as Home Assistant has.
_METERING = (
    Measure(("apower",), "power", "Power", "power", "W"),
    Measure(("aenergy", "total"), "energy", "Energy", "energy", "Wh", "total_increasing"),
    Measure(("voltage",), "voltage", "Voltage", "voltage", "V", enabled=False),
    Measure(("current",), "current", "Current", "current", "A", enabled=False),
)
_SENSORS = {
    "temperature": Measure(("tC",), "", "Temperature", "temperature", "°C"),
    "humidity": Measure(("rh",), "", "Humidity", "humidity", "%"),
    "voltmeter": Measure(("voltage",), "", "Voltage", "voltage", "V"),
    "devicepower": Measure(("battery", "percent"), "", "Battery", "battery", "%"),
}
_ANALOG_INPUT = Measure(("percent",), "", "Input", "", "%")
_LABELS = {"switch": "Switch", "cover": "Cover", "light": "Light", "input": "Input"}
_SERVICES = {
    "switch": ["toggle", "turn_off", "turn_on"],
    "light": ["toggle", "turn_off", "turn_on"],
    "cover": ["close_cover", "open_cover", "stop_cover", "toggle"],
}


@dataclass(frozen=True, slots=True)
class Reading:
    """How an entity's state comes out of its component's status."""

    key: str  # the component, "switch:0"
    kind: str  # "switch", "light", "cover", "input_switch", "input_button" or "measure"
    measure: Measure | None = None


@dataclass(frozen=True, slots=True)
class Blueprint:
    entity: Entity  # without a state yet
    reading: Reading


def device_name(info: DeviceInfo, config: dict[str, Any]) -> str:
    system = config.get("sys")
    device = system.get("device") if isinstance(system, dict) else None
    configured = clean_text(device.get("name"), 100) if isinstance(device, dict) else None
    return configured or info.name or clean_text(f"Shelly {info.app}", 100) or info.id


def components(config: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(key, type, id) of the components both replies list, in the device's order, bounded."""
    found = []
    for key in islice(config, MAX_COMPONENTS * 4):  # sys, wifi, cloud... come along
        match = _COMPONENT_KEY.fullmatch(key) if isinstance(key, str) else None
        if match and isinstance(config[key], dict) and isinstance(status.get(key), dict):
            found.append((key, match.group(1), int(match.group(2))))
    return found[:MAX_COMPONENTS]


class _Builder:
    """Collects one device's entities, named and identified alike."""

    def __init__(self, prefix: str, info: DeviceInfo) -> None:
        self.prefix, self.info = prefix, info
        self.object_base = re.sub(r"\W+", "_", info.id.lower(), flags=re.ASCII).strip("_")
        self.made: list[Blueprint] = []

    def add(self, reading: Reading, domain: str, name: str, suffix: str = "",
            **extra: Any) -> None:
        kind, number = reading.key.split(":")
        info = self.info
        entity = Entity(
            entity_id=f"{domain}.{self.object_base}_{kind}_{number}"
                      + (f"_{suffix}" if suffix else ""),
            unique_id=f"shelly:{info.mac}:{reading.key}" + (f":{suffix}" if suffix else ""),
            name=clean_text(name, 200) or info.id, domain=domain, source=SOURCE,
            device_ids=info.device_ids,
            wire={"prefix": self.prefix, "device_src": info.id, "component": kind,
                  "id": int(number)},
            **extra)
        self.made.append(Blueprint(entity, reading))


def blueprints(prefix: str, info: DeviceInfo, config: dict[str, Any],
               status: dict[str, Any]) -> list[Blueprint]:
    """Every entity the device's components make."""
    found = components(config, status)
    per_type = Counter(kind for _key, kind, _id in found)
    device = device_name(info, config)
    builder = _Builder(prefix, info)
    for key, kind, number in found:
        label = _LABELS.get(kind) or _SENSORS[kind].label
        name = clean_text(config[key].get("name"), 100)
        if name is None and kind in _SERVICES and per_type[kind] == 1:
            name = device  # a one-relay device's relay is the device, to people
        elif name is None:
            several = per_type[kind] > 1 or kind == "input"
            name = f"{device} {label}" + (f" {number}" if several else "")
        if kind in _SENSORS:
            builder.add(Reading(key, "measure", _SENSORS[kind]), "sensor", name,
                        **_sensor_details(_SENSORS[kind]))
        elif kind == "input":
            _add_input(builder, Reading(key, "input_switch"), name, config[key].get("type"))
        else:
            builder.add(Reading(key, kind), kind, name, **_primary_details(kind, status[key]))
            for measure in _METERING:
                if _value_at(project(key, status[key]), measure.path) is not None:
                    builder.add(Reading(key, "measure", measure), "sensor",
                                f"{name} {measure.label}", measure.suffix,
                                **_sensor_details(measure))
    return builder.made


def _add_input(builder: _Builder, reading: Reading, name: str, input_type: Any) -> None:
    if input_type == "switch":
        builder.add(reading, "binary_sensor", name, capabilities={"services": []})
    elif input_type == "button":
        builder.add(Reading(reading.key, "input_button"), "sensor", name,
                    capabilities={"services": []})
    elif input_type == "analog":
        builder.add(Reading(reading.key, "measure", _ANALOG_INPUT), "sensor", name,
                    **_sensor_details(_ANALOG_INPUT))


def _primary_details(kind: str, status: dict[str, Any]) -> dict[str, Any]:
    services = list(_SERVICES[kind])
    capabilities: dict[str, Any] = {"services": services}
    if kind == "light":
        capabilities.update(supported_color_modes=["brightness"], brightness=True)
    if kind == "cover":
        reports_position = status.get("pos_control") is True
        if reports_position:
            services.insert(services.index("stop_cover"), "set_cover_position")
        capabilities["reports_position"] = reports_position
        return {"capabilities": capabilities, "device_class": "shutter"}
    return {"capabilities": capabilities}


def _sensor_details(measure: Measure) -> dict[str, Any]:
    return {
        "device_class": measure.device_class or None,
        "capabilities": {"services": [], "unit_of_measurement": measure.unit,
                         "state_class": measure.state_class},
        "attributes": {"unit_of_measurement": measure.unit},
        "enabled_by_default": measure.enabled,
    }


# -- states ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Update:
    state: str | None = None
    attributes: dict[str, Any] | None = None


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _value_at(status: dict[str, Any], path: tuple[str, ...]) -> float | int | None:
    value: Any = status
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return _number(value)


def _on_off(value: Any) -> str | None:
    return {True: "on", False: "off"}.get(value) if isinstance(value, bool) else None


def read(reading: Reading, status: dict[str, Any], entity: Entity,
         limits: DeviceLimits) -> Update | None:
    """The state ``status`` (the component's known status) gives the entity; None when it
    says nothing about it."""
    if reading.kind in ("switch", "input_switch"):
        state = _on_off(status.get("output" if reading.kind == "switch" else "state"))
        return Update(state) if state else None
    if reading.kind == "light":
        brightness = _number(status.get("brightness"))
        attributes = ({"brightness": brightness_from_wire(brightness, 100)}
                      if brightness is not None and 0 < brightness <= 100 else None)
        return Update(_on_off(status.get("output")), attributes)
    if reading.kind == "cover":
        return _cover(status, entity)
    if reading.kind == "measure" and reading.measure is not None:
        value = _value_at(status, reading.measure.path)
        return Update(clean_text(value, limits.max_text_chars)) if value is not None else None
    return None  # a button has no state of its own: its events tell what it did


def _cover(status: dict[str, Any], entity: Entity) -> Update | None:
    position = _number(status.get("current_pos"))
    if status.get("pos_control") is not True or position is None or not 0 <= position <= 100:
        position = None
    state = status.get("state")
    if state == "stopped":  # Home Assistant shows a stopped cover as open or closed
        if position is not None:
            state = "closed" if position == 0 else "open"
        else:
            state = "closed" if entity.state in ("closed", "closing") else "open"
    elif state not in COVER_STATES:
        state = None  # "calibrating" and the like say nothing about open or closed
    attributes = {"current_position": round(position)} if position is not None else None
    return Update(state, attributes) if state or attributes else None
