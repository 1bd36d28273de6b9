"""Zigbee2MQTT: each device a Zigbee device behind one simulated bridge.

Written from Zigbee2MQTT's documentation (guide/usage/mqtt_topics_and_messages and
guide/usage/exposes), with the device options ``retain: true`` and availability on::

    <base>/bridge/state                {"state": "online"}, retained ("offline" on stop)
    <base>/bridge/info                 retained: version, config
    <base>/bridge/devices              retained: every device with definition.exposes
    <base>/bridge/groups               retained: []
    <base>/<friendly_name>             the device's state as JSON, retained
    <base>/<friendly_name>/availability  {"state": "online"|"offline"}, retained
    <base>/<friendly_name>/set         commands as JSON ({"state": "ON", "brightness": 200})
    <base>/<friendly_name>/get         {"<property>": ""}: publish the state again

Brightness is 0..254, color temperature in mireds; colors as xy or hue/saturation (the
bridge also takes r/g/b, "rgb" and "hex"). Every fixture entity is its own Zigbee device
(IEEE address from a hash of the simulator's base topic and the entity id).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from device_adapters.wire import (
    brightness_from_wire,
    brightness_to_wire,
    is_topic_level,
    mired_kelvin,
    parse_json_object,
)

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.models import (
    CLIMATE,
    COVER,
    FAN,
    LIGHT,
    LOCK,
    SWITCH,
    Device,
    EntityState,
    LightModel,
    lookup,
    number_in,
)
from assistant.virtual.protocols.base import FrontEnd, PresentedOn, Publication, Reaction, reading
from assistant.virtual.protocols.colors import hs_to_rgb, rgb_to_hs, rgb_to_xy, xy_to_rgb

BRIGHTNESS_MAX = 254
STATE, SET, GET = 1, 2, 4  # exposes access bits
ONLINE = json.dumps({"state": "online"})
OFFLINE = json.dumps({"state": "offline"})
Feature = dict[str, Any]

# Numeric sensor properties by device class (the names exposes use).
_SENSORS = {"temperature": "temperature", "humidity": "humidity", "pressure": "pressure",
            "illuminance": "illuminance", "battery": "battery", "power": "power",
            "energy": "energy", "voltage": "voltage", "current": "current",
            "carbon_dioxide": "co2", "pm25": "pm25", "volatile_organic_compounds": "voc"}
# Binary sensor properties: (property, value meaning "on", value meaning "off").
_BINARY = {"motion": ("occupancy", True, False), "occupancy": ("occupancy", True, False),
           "presence": ("presence", True, False), "moisture": ("water_leak", True, False),
           "smoke": ("smoke", True, False), "gas": ("gas", True, False),
           "vibration": ("vibration", True, False), "tamper": ("tamper", True, False),
           # contact is true when closed: "on" (open) is false
           "door": ("contact", False, True), "window": ("contact", False, True),
           "opening": ("contact", False, True), "garage_door": ("contact", False, True)}
# system_mode values the exposes documentation lists.
_SYSTEM_MODES = ("off", "heat", "cool", "auto", "dry", "fan_only", "sleep", "emergency_heating")
_RUNNING = {"heating": "heat", "cooling": "cool", "fan": "fan_only", "drying": "dry"}


def _binary(name: str, access: int, on: Any = "ON", off: Any = "OFF",
            prop: str | None = None) -> Feature:
    return {"type": "binary", "name": name, "property": prop or name, "access": access,
            "value_on": on, "value_off": off,
            **({"value_toggle": "TOGGLE"} if on == "ON" and access & SET else {})}


def _numeric(name: str, access: int, low: float | None = None, high: float | None = None,
             unit: str | None = None, step: float | None = None) -> Feature:
    feature: Feature = {"type": "numeric", "name": name, "property": name, "access": access}
    for key, value in (("value_min", low), ("value_max", high), ("unit", unit),
                       ("value_step", step)):
        if value is not None:
            feature[key] = value
    return feature


def _enum(name: str, access: int, values: list[str]) -> Feature:
    return {"type": "enum", "name": name, "property": name, "access": access, "values": values}


def _switching(device: Device, command: dict[str, Any], prop: str = "state") -> bool | None:
    """ON/OFF/TOGGLE from ``command[prop]`` (None when absent) as on or off."""
    if prop not in command:
        return None
    wanted = lookup({"ON": "on", "OFF": "off", "TOGGLE": "toggle"}, command[prop])
    if wanted == "toggle":
        return device.state.state != "on"
    return wanted == "on"


class _Domain:
    kind: ClassVar[str | None] = None  # the specific exposes type, None: generic features

    def fits(self, spec: VirtualEntitySpec) -> bool:
        return True

    def features(self, device: Device) -> list[Feature]:
        raise NotImplementedError

    def state(self, device: Device) -> dict[str, Any]:
        raise NotImplementedError

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        raise ValueError("this device takes no commands")


class _Light(_Domain):
    kind = "light"

    def features(self, device: Device) -> list[Feature]:
        model = LIGHT
        spec, modes = device.spec, model.modes(device.spec)
        features = [_binary("state", STATE | SET | GET)]
        if model.dims(spec):
            features.append(_numeric("brightness", STATE | SET | GET, 0, BRIGHTNESS_MAX))
        if "color_temp" in modes:
            features.append(_numeric("color_temp", STATE | SET | GET,
                                     mired_kelvin(model.MAX_KELVIN),
                                     mired_kelvin(model.MIN_KELVIN), "mired"))
        if model.color_mode(spec):
            for name, axes in (("color_xy", ("x", "y")), ("color_hs", ("hue", "saturation"))):
                features.append({"type": "composite", "name": name, "property": "color",
                                 "access": STATE | SET | GET,
                                 "features": [_numeric(a, STATE | SET | GET) for a in axes]})
        return features

    def state(self, device: Device) -> dict[str, Any]:
        model = LIGHT
        report: dict[str, Any] = {"state": "ON" if device.state.state == "on" else "OFF"}
        brightness = model.lit(device, "brightness")
        if model.dims(device.spec) and brightness is not None:
            report["brightness"] = brightness_to_wire(brightness, BRIGHTNESS_MAX)
        mode = model.lit(device, "color_mode")
        kelvin = model.lit(device, "color_temp_kelvin")
        if "color_temp" in model.modes(device.spec) and kelvin:
            report["color_temp"] = mired_kelvin(kelvin)
        color_mode = model.color_mode(device.spec)
        color = model.lit(device, LightModel.COLOR_ATTRIBUTES.get(color_mode or "", ""))
        if color:
            x, y = rgb_to_xy(color)
            hue, saturation = rgb_to_hs(color)
            report["color"] = {"x": x, "y": y, "hue": hue, "saturation": saturation}
        if "color_temp" in report and (mode == "color_temp" or not color):
            report["color_mode"] = "color_temp"
        elif color:
            report["color_mode"] = "xy"
        return report

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = LIGHT
        on = _switching(device, command)
        changes = {"brightness", "color_temp", "color"} & command.keys()
        if on is None and not changes:
            raise ValueError("nothing to do")
        brightness = None
        if "brightness" in command:
            level = number_in(command["brightness"], 0, BRIGHTNESS_MAX)
            brightness = brightness_from_wire(level, BRIGHTNESS_MAX) if level else 0
        kelvin = None
        if "color_temp" in command:
            kelvin = mired_kelvin(number_in(command["color_temp"], 50, 1000))
        color = self._color(command["color"]) if "color" in command else None
        return model.set(device, on is not False, brightness, color, kelvin)

    @staticmethod
    def _color(color: Any) -> tuple[int, ...]:
        if not isinstance(color, dict):
            raise ValueError("color must be an object")
        if "x" in color:
            return xy_to_rgb(number_in(color["x"], 0, 1), number_in(color["y"], 0, 1))
        if "hue" in color or "h" in color:
            return hs_to_rgb(number_in(color.get("hue", color.get("h")), 0, 360),
                             number_in(color.get("saturation", color.get("s")), 0, 100))
        if "rgb" in color:
            return tuple(int(channel) for channel in str(color["rgb"]).split(","))
        if "hex" in color:
            text = str(color["hex"]).lstrip("#")
            return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
        return color["r"], color["g"], color["b"]


class _Switch(_Domain):
    kind = "switch"

    def features(self, device: Device) -> list[Feature]:
        return [_binary("state", STATE | SET | GET)]

    def state(self, device: Device) -> dict[str, Any]:
        return {"state": "ON" if device.state.state == "on" else "OFF"}

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = SWITCH
        on = _switching(device, command)
        if on is None:
            raise ValueError("expected state")
        return model.switch(device, on)


class _Fan(_Domain):
    """On/off fans only: Zigbee fans have a few named speeds, not a percentage."""

    kind = "fan"

    def fits(self, spec: VirtualEntitySpec) -> bool:
        return not FAN.has_speeds(spec)

    def features(self, device: Device) -> list[Feature]:
        return [_binary("state", STATE | SET | GET, prop="fan_state")]

    def state(self, device: Device) -> dict[str, Any]:
        return {"fan_state": "ON" if device.state.state == "on" else "OFF"}

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = FAN
        on = _switching(device, command, "fan_state")
        if on is None:
            raise ValueError("expected fan_state")
        return model.switch(device, on)


class _Cover(_Domain):
    kind = "cover"

    def features(self, device: Device) -> list[Feature]:
        model = COVER
        features = [_enum("state", STATE | SET, ["OPEN", "CLOSE", "STOP"])]
        if model.has_position(device.spec):
            features.append(_numeric("position", STATE | SET | GET, 0, 100, "%"))
        return features

    def state(self, device: Device) -> dict[str, Any]:
        model = COVER
        report: dict[str, Any] = {"state": "OPEN" if device.state.state == "open" else "CLOSE"}
        if model.has_position(device.spec):
            report["position"] = model.position(device)
        return report

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = COVER
        if "position" in command and model.has_position(device.spec):
            return model.move_to(device, command["position"])
        move = lookup({"OPEN": "open", "CLOSE": "close", "STOP": "stop"}, command.get("state"))
        if move == "stop":
            return model.stop(device)
        return model.move_to(device, 100 if move == "open" else 0)


class _Lock(_Domain):
    kind = "lock"

    def features(self, device: Device) -> list[Feature]:
        return [_binary("state", STATE | SET | GET, "LOCK", "UNLOCK"),
                _enum("lock_state", STATE, ["not_fully_locked", "locked", "unlocked"])]

    def state(self, device: Device) -> dict[str, Any]:
        locked = device.state.state == "locked"
        return {"state": "LOCK" if locked else "UNLOCK",
                "lock_state": "locked" if locked else "unlocked"}

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = LOCK
        wanted = lookup({"LOCK": "lock", "UNLOCK": "unlock"}, command.get("state"))
        return model.lock(device, wanted == "lock")


class _Climate(_Domain):
    kind = "climate"

    def fits(self, spec: VirtualEntitySpec) -> bool:
        modes = CLIMATE.with_defaults(spec, spec.attributes)["hvac_modes"]
        return all(mode in _SYSTEM_MODES for mode in modes)

    @staticmethod
    def setpoint(device: Device) -> str:
        modes = device.state.attributes["hvac_modes"]
        cools_only = "cool" in modes and "heat" not in modes and "auto" not in modes
        return "occupied_cooling_setpoint" if cools_only else "occupied_heating_setpoint"

    def features(self, device: Device) -> list[Feature]:
        attributes = device.state.attributes
        unit = f"°{CLIMATE.unit(device.spec)}"
        return [
            _numeric(self.setpoint(device), STATE | SET | GET, attributes["min_temp"],
                     attributes["max_temp"], unit, attributes.get("target_temp_step") or 0.5),
            _numeric("local_temperature", STATE | GET, unit=unit),
            _enum("system_mode", STATE | SET | GET, list(attributes["hvac_modes"])),
            _enum("running_state", STATE | GET, ["idle", "heat", "cool", "fan_only", "dry"]),
        ]

    def state(self, device: Device) -> dict[str, Any]:
        attributes = device.state.attributes
        return {"system_mode": device.state.state,
                self.setpoint(device): attributes.get("temperature"),
                "local_temperature": attributes.get("current_temperature"),
                "running_state": _RUNNING.get(attributes.get("hvac_action", ""), "idle")}

    def command(self, device: Device, command: dict[str, Any]) -> EntityState:
        model = CLIMATE
        setpoint = self.setpoint(device)
        if not {"system_mode", setpoint} & command.keys():
            raise ValueError(f"expected system_mode or {setpoint}")
        state = device.state
        if setpoint in command:
            state = model.set_temperature(device, command[setpoint])
        if "system_mode" in command:
            if command["system_mode"] not in state.attributes["hvac_modes"]:
                raise ValueError(f"not one of {state.attributes['hvac_modes']}")
            state = model.settle(device, command["system_mode"], dict(state.attributes))
        return state


class _Sensor(_Domain):
    def fits(self, spec: VirtualEntitySpec) -> bool:
        return spec.device_class in _SENSORS and (
            spec.state in (None, "unknown", "unavailable") or reading(spec.state) is not None)

    def features(self, device: Device) -> list[Feature]:
        unit = device.spec.attributes.get("unit_of_measurement")
        return [_numeric(_SENSORS[device.spec.device_class or ""], STATE, unit=unit)]

    def state(self, device: Device) -> dict[str, Any]:
        return {_SENSORS[device.spec.device_class or ""]: reading(device.state.state)}


class _BinarySensor(_Domain):
    def fits(self, spec: VirtualEntitySpec) -> bool:
        return spec.device_class in _BINARY

    def features(self, device: Device) -> list[Feature]:
        prop, on, off = _BINARY[device.spec.device_class or ""]
        return [_binary(prop, STATE, on, off)]

    def state(self, device: Device) -> dict[str, Any]:
        prop, on, off = _BINARY[device.spec.device_class or ""]
        value = {"on": on, "off": off}.get(device.state.state)
        return {prop: value}


_DOMAINS: dict[str, _Domain] = {
    "light": _Light(), "switch": _Switch(), "fan": _Fan(), "cover": _Cover(),
    "lock": _Lock(), "climate": _Climate(), "sensor": _Sensor(),
    "binary_sensor": _BinarySensor(),
}


class Zigbee2MqttFrontEnd(FrontEnd):
    name = "zigbee2mqtt"
    domains = frozenset(_DOMAINS)
    VERSION = "1.42.0"

    def __init__(self, home: HomeSpec, base_topic: str, z2m_base: str = "zigbee2mqtt") -> None:
        super().__init__(home, base_topic)
        self.root = z2m_base.strip("/")
        self._by_name: dict[str, Device] = {}

    @classmethod
    def can_present(cls, spec: VirtualEntitySpec) -> bool:
        return (super().can_present(spec) and is_topic_level(spec.name)
                and spec.name not in ("bridge", "Coordinator")
                and _DOMAINS[spec.domain].fits(spec))

    def add(self, device: Device) -> None:
        super().add(device)
        self._by_name[device.spec.name] = device

    def ieee_address(self, device: Device) -> str:
        return f"0x{self.device_key(device)}"

    def subscriptions(self) -> list[str]:
        return [f"{self.root}/+/set", f"{self.root}/+/get"]

    def announce(self) -> list[Publication]:
        messages = [
            Publication(f"{self.root}/bridge/state", ONLINE),
            Publication(f"{self.root}/bridge/info", json.dumps(
                {"version": self.VERSION, "permit_join": False,
                 "config": {"advanced": {"output": "json"}}})),
            Publication(f"{self.root}/bridge/devices", json.dumps(self._bridge_devices())),
            Publication(f"{self.root}/bridge/groups", "[]"),
        ]
        for device in self.devices:
            messages += self.availability_messages(device)
            messages += self.state_messages(device)
        return messages

    def state_messages(self, device: Device) -> list[Publication]:
        report = _DOMAINS[device.spec.domain].state(device)
        return [Publication(f"{self.root}/{device.spec.name}", json.dumps(report))]

    def availability_messages(self, device: Device) -> list[Publication]:
        return [Publication(f"{self.root}/{device.spec.name}/availability",
                            ONLINE if device.available else OFFLINE)]

    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        if not topic.startswith(f"{self.root}/"):
            return None
        name, _, verb = topic[len(self.root) + 1:].rpartition("/")
        device = self._by_name.get(name)
        if device is None or verb not in ("set", "get"):
            return None
        command = parse_json_object(payload)
        if verb == "get":
            return Reaction(None, reply=lambda: self.state_messages(device))
        return Reaction(device, lambda d: _DOMAINS[d.spec.domain].command(d, command))

    def farewell(self) -> list[Publication]:
        topics = [f"{self.root}/bridge/devices", f"{self.root}/bridge/groups",
                  f"{self.root}/bridge/info"]
        for device in self.devices:
            topics += [f"{self.root}/{device.spec.name}",
                       f"{self.root}/{device.spec.name}/availability"]
        return [*(Publication(topic, b"") for topic in topics),
                Publication(f"{self.root}/bridge/state", OFFLINE)]

    def presented_on(self, device: Device) -> PresentedOn:
        address = self.ieee_address(device)
        return PresentedOn(self.name, (f"zigbee:{address}",), address)

    def _bridge_devices(self) -> list[dict[str, Any]]:
        coordinator = {"ieee_address": f"0x{self.key('coordinator')}",
                       "type": "Coordinator", "network_address": 0, "friendly_name":
                       "Coordinator", "supported": True, "disabled": False,
                       "interview_completed": True, "interviewing": False, "definition": None,
                       "endpoints": {}}
        return [coordinator, *(self._bridge_device(d, n) for n, d in
                               enumerate(self.devices, start=1))]

    def _bridge_device(self, device: Device, number: int) -> dict[str, Any]:
        spec = device.spec
        owner = self.home.device(spec.device)
        domain = _DOMAINS[spec.domain]
        features = domain.features(device)
        exposes = [{"type": domain.kind, "features": features}] if domain.kind else features
        battery = spec.domain in ("sensor", "binary_sensor")
        model = (owner.model if owner and owner.model else f"VH-{spec.domain}")
        vendor = (owner.manufacturer if owner and owner.manufacturer else "mimo-home")
        return {
            "ieee_address": self.ieee_address(device), "type": "EndDevice" if battery else "Router",
            "network_address": number, "friendly_name": spec.name, "supported": True,
            "disabled": False, "interview_completed": True, "interviewing": False,
            "power_source": "Battery" if battery else "Mains (single phase)",
            "manufacturer": vendor, "model_id": model,
            "definition": {"model": model, "vendor": vendor,
                           "description": f"Simulated {spec.domain.replace('_', ' ')}",
                           "exposes": exposes, "options": []},
            "endpoints": {"1": {"bindings": [], "configured_reportings": [], "scenes": [],
                                "clusters": {"input": [], "output": []}}},
        }
