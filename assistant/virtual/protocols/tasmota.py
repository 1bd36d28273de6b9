"""Tasmota (9.x+ native discovery): each device an ESP with one relay, light or shutter,
or one sensor.

Written from Tasmota's documentation (MQTT, Commands, Lights, Blinds and Shutters) and
its discovery protocol as hatasmota reads it (docs/AutoDiscovery Protocol)::

    <discovery>/<MAC>/config     retained: dn, fn, mac, t, ft, tp, rl, lt_st, so, ...
    <discovery>/<MAC>/sensors    retained: {"sn": <the SENSOR telemetry>, "ver": 1}
    tele/<t>/LWT                 Online/Offline, retained
    tele/<t>/STATE               relays and lights: {"POWER": "ON", "Dimmer": 50, ...}
    tele/<t>/SENSOR              sensors and shutters: {"DS18B20": {"Temperature": 21.5}}
    cmnd/<t>/<Command>           POWER, Dimmer, CT, HSBColor, Color, Shutter*, STATE,
                                 STATUS, Backlog; answered on stat/<t>/RESULT (and
                                 stat/<t>/POWER), STATUS <n> on stat/<t>/STATUS<n>

(with the default full topic ``%prefix%/%topic%/``). Commands are case-insensitive; a
command the device does not have is answered {"Command": "Unknown"}. Dimmer is 0..100,
CT in mireds 153..500, HSBColor "hue,saturation,brightness".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from device_adapters.wire import brightness_from_wire, brightness_to_wire, mired_kelvin

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.models import (
    COVER,
    LIGHT,
    SWITCH,
    Device,
    EntityState,
    LightModel,
    lookup,
    number_in,
)
from assistant.virtual.protocols.base import FrontEnd, PresentedOn, Publication, Reaction, reading
from assistant.virtual.protocols.colors import hs_to_rgb, rgb_to_hs

DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
PREFIXES = ("cmnd", "stat", "tele")
ONLINE, OFFLINE = "Online", "Offline"
RELAY_BASIC, RELAYLIGHT, RELAY_SHUTTER = 1, 2, 3
CT_RANGE = (153, 500)
SOFTWARE = "13.4.0"
# Sensor telemetry per device class: (sensor name, quantity, unit key and value).
_SENSORS: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "temperature": ("DS18B20", "Temperature", ("TempUnit", "C")),
    "humidity": ("SHT3X", "Humidity", None),
    "pressure": ("BMP280", "Pressure", ("PressureUnit", "hPa")),
    "illuminance": ("BH1750", "Illuminance", None),
    "power": ("ENERGY", "Power", None),
    "energy": ("ENERGY", "Total", None),
    "voltage": ("ENERGY", "Voltage", None),
    "current": ("ENERGY", "Current", None),
    "carbon_dioxide": ("SCD30", "CarbonDioxide", None),
}
_POWER = {"ON": True, "1": True, "OFF": False, "0": False, "TOGGLE": None, "2": None}

Command = Callable[[Device, str], EntityState]
# Commands that take a value; without one they ask for the current state.
_VALUED = frozenset({"power", "dimmer", "hsbcolor", "color", "ct", "shutterposition"})
# Commands that name their relay, shutter or channel: POWER1, ShutterOpen1, Color1. Each
# device here has one, so the index is 1 or left out.
_INDEXED = re.compile(r"(power|color|shutter[a-z]+)1")


def _unindexed(command: str) -> str:
    indexed = _INDEXED.fullmatch(command)
    return indexed.group(1) if indexed else command


def _light_subtype(device: Device) -> int:
    """lt_st: 0 none, 1 single channel, 2 cold/warm, 3 RGB, 4 RGBW, 5 RGB+CW."""
    model = LIGHT
    modes = model.modes(device.spec)
    color, ct = model.color_mode(device.spec), "color_temp" in modes
    if color:
        return 5 if ct else (4 if color == "rgbw" else 3)
    return 2 if ct else (1 if model.dims(device.spec) else 0)


class _Tasmota:
    """One simulated Tasmota device: its topics and commands."""

    def __init__(self, front_end: TasmotaFrontEnd, device: Device) -> None:
        self.device = device
        key = front_end.device_key(device).upper()
        self.mac = key[:12]
        self.topic = f"tasmota_{key[6:12]}"
        self.full_topic = front_end.full_topic
        self.discovery = f"{front_end.discovery_prefix}/{self.mac}"

    def at(self, prefix: str, command: str) -> str:
        return self.full_topic.replace("%prefix%", prefix).replace(
            "%topic%", self.topic) + command

    @property
    def kind(self) -> str:
        domain = self.device.spec.domain
        if domain == "cover":
            return "shutter"
        if domain == "light" and _light_subtype(self.device) > 0:
            return "light"
        return "sensor" if domain == "sensor" else "relay"

    def config(self, home: HomeSpec) -> dict[str, Any]:
        spec, kind = self.device.spec, self.kind
        relays = {"relay": [RELAY_BASIC], "light": [RELAYLIGHT], "shutter": [RELAY_SHUTTER] * 2,
                  "sensor": []}[kind]
        owner = home.device(spec.device)
        return {
            "ip": "192.0.2." + str(int(self.mac[-2:], 16) % 250 + 1),
            "dn": spec.name, "fn": [spec.name if relays else None, *[None] * 7],
            "hn": f"{self.topic.replace('_', '-')}-{int(self.mac[-4:], 16) % 10000:04d}",
            "mac": self.mac, "md": owner.model if owner and owner.model else "Generic",
            "ty": 0, "if": 0, "ofln": OFFLINE, "onln": ONLINE,
            "state": ["OFF", "ON", "TOGGLE", "HOLD"], "sw": SOFTWARE, "t": self.topic,
            "ft": self.full_topic, "tp": list(PREFIXES),
            "rl": [*relays, *[0] * (8 - len(relays))],
            "swc": [-1] * 8, "swn": [None] * 8, "btn": [0] * 8,
            # SetOption30: a plain relay that is a fixture light is announced as a light.
            "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0,
                   "30": 1 if spec.domain == "light" else 0, "68": 0, "73": 0, "82": 0,
                   "114": 0, "117": 0},
            "lk": 1, "lt_st": _light_subtype(self.device) if kind == "light" else 0,
            "sho": [0, 0, 0, 0], "sht": [[0, 0, 0]] * 4, "ver": 1,
        }

    # -- what it reports --------------------------------------------------------------------

    def power_state(self) -> dict[str, Any]:
        device = self.device
        report: dict[str, Any] = {"POWER": "ON" if device.state.state == "on" else "OFF"}
        if self.kind != "light":
            return report
        model = LIGHT
        brightness = model.lit(device, "brightness") or 255
        dimmer = brightness_to_wire(brightness, 100)
        report["Dimmer"] = dimmer
        color = model.lit(device, LightModel.COLOR_ATTRIBUTES.get(
            model.color_mode(device.spec) or "", ""))
        if model.color_mode(device.spec):
            hue, saturation = rgb_to_hs(color or (255, 255, 255))
            report["HSBColor"] = f"{round(hue)},{round(saturation)},{dimmer}"
        kelvin = model.lit(device, "color_temp_kelvin")
        if "color_temp" in model.modes(device.spec):
            report["CT"] = round(max(CT_RANGE[0], min(CT_RANGE[1],
                                                      mired_kelvin(kelvin or 4000))))
        return report

    def sensor_state(self) -> dict[str, Any]:
        report: dict[str, Any] = {"Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
        spec = self.device.spec
        if self.kind == "shutter":
            model = COVER
            position = model.position(self.device)
            report["Shutter1"] = {"Position": position, "Direction": 0, "Target": position,
                                  "Tilt": 0}
        elif self.kind == "sensor":
            name, quantity, unit = _SENSORS[spec.device_class or ""]
            report[name] = {quantity: reading(self.device.state.state)}
            if unit:
                report[unit[0]] = unit[1]
        return report

    def telemetry(self) -> list[Publication]:
        if self.kind in ("relay", "light"):
            state = {"Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                     **self.power_state()}
            return [Publication(self.at("tele", "STATE"), json.dumps(state), retain=False)]
        return [Publication(self.at("tele", "SENSOR"), json.dumps(self.sensor_state()),
                            retain=False)]

    def result(self) -> list[Publication]:
        """A command's answer: the new state on stat/RESULT (and stat/POWER)."""
        if self.kind == "shutter":
            report = {k: v for k, v in self.sensor_state().items() if k != "Time"}
            return [Publication(self.at("stat", "RESULT"), json.dumps(report), retain=False)]
        power = self.power_state()
        return [Publication(self.at("stat", "RESULT"), json.dumps(power), retain=False),
                Publication(self.at("stat", "POWER"), power["POWER"], retain=False)]

    # -- what it does -----------------------------------------------------------------------

    def commands(self) -> dict[str, Command]:
        kind = self.kind
        if kind == "shutter":
            return {"shutteropen": lambda d, _: self._shutter(d, 100),
                    "shutterclose": lambda d, _: self._shutter(d, 0),
                    "shutterstop": lambda d, _: COVER.stop(d),
                    "shutterposition": self._shutter_position}
        if kind == "sensor":
            return {}
        handlers: dict[str, Command] = {"power": self._power}
        if kind == "light":
            handlers.update(dimmer=self._dimmer, hsbcolor=self._hsb, color=self._color,
                            ct=self._ct)
        return handlers

    def _power(self, device: Device, payload: str) -> EntityState:
        on = lookup(_POWER, payload.strip().upper())
        if on is None:
            on = device.state.state != "on"
        if device.spec.domain == "light":
            return LIGHT.set(device, bool(on))
        model = SWITCH
        return model.switch(device, bool(on))

    @staticmethod
    def _dimmer(device: Device, payload: str) -> EntityState:
        model = LIGHT
        level = number_in(payload, 0, 100)
        return model.set(device, level > 0, brightness_from_wire(level, 100) if level else 0)

    @staticmethod
    def _hsb(device: Device, payload: str) -> EntityState:
        model = LIGHT
        hue, saturation, *rest = (float(part) for part in payload.split(","))
        color = hs_to_rgb(number_in(hue, 0, 360), number_in(saturation, 0, 100))
        brightness = None
        if rest:
            level = number_in(rest[0], 0, 100)
            brightness = brightness_from_wire(level, 100) if level else 0
        return model.set(device, True, brightness, color)

    @staticmethod
    def _color(device: Device, payload: str) -> EntityState:
        model = LIGHT
        text = payload.strip().lstrip("#")
        if "," in text:
            channels = tuple(int(part) for part in text.split(","))
        else:
            channels = tuple(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
        if len(channels) < 3:
            raise ValueError("expected r,g,b")
        return model.set(device, True, color=channels[:4])

    @staticmethod
    def _ct(device: Device, payload: str) -> EntityState:
        model = LIGHT
        mireds = number_in(payload, *CT_RANGE)
        return model.set(device, True, kelvin=mired_kelvin(mireds))

    @staticmethod
    def _shutter(device: Device, position: float) -> EntityState:
        model = COVER
        return model.move_to(device, position)

    def _shutter_position(self, device: Device, payload: str) -> EntityState:
        word = payload.strip().upper()
        named = {"UP": 100, "OPEN": 100, "DOWN": 0, "CLOSE": 0}
        if word == "STOP":
            return COVER.stop(device)
        if word == "TOGGLE":
            return self._shutter(device, 0 if device.state.state == "open" else 100)
        return self._shutter(device, named[word] if word in named else payload)


class TasmotaFrontEnd(FrontEnd):
    name = "tasmota"
    domains = frozenset({"switch", "light", "cover", "sensor"})

    def __init__(self, home: HomeSpec, base_topic: str,
                 discovery_prefix: str = "tasmota/discovery",
                 full_topic: str = DEFAULT_FULL_TOPIC) -> None:
        super().__init__(home, base_topic)
        self.discovery_prefix = discovery_prefix.strip("/")
        self.full_topic = full_topic
        self._units: dict[str, _Tasmota] = {}  # entity id -> its Tasmota
        self._routes: dict[str, _Tasmota] = {}  # command topic prefix -> its Tasmota

    @classmethod
    def can_present(cls, spec: VirtualEntitySpec) -> bool:
        if spec.domain == "sensor":
            return spec.device_class in _SENSORS
        return super().can_present(spec)

    def add(self, device: Device) -> None:
        super().add(device)
        unit = _Tasmota(self, device)
        self._units[device.spec.entity_id] = unit
        self._routes[unit.at("cmnd", "")] = unit

    def subscriptions(self) -> list[str]:
        return [f"{prefix}+" for prefix in self._routes]

    def announce(self) -> list[Publication]:
        messages = []
        for unit in self._units.values():
            messages += [
                Publication(f"{unit.discovery}/config", json.dumps(unit.config(self.home))),
                Publication(f"{unit.discovery}/sensors",
                            json.dumps({"sn": unit.sensor_state(), "ver": 1})),
                *self.availability_messages(unit.device), *unit.telemetry()]
        return messages

    def state_messages(self, device: Device) -> list[Publication]:
        return self._units[device.spec.entity_id].telemetry()

    def availability_messages(self, device: Device) -> list[Publication]:
        unit = self._units[device.spec.entity_id]
        return [Publication(unit.at("tele", "LWT"), ONLINE if device.available else OFFLINE)]

    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        prefix, _, command = topic.rpartition("/")
        unit = self._routes.get(f"{prefix}/")
        if unit is None:
            return None
        text = payload.decode("utf-8")
        return self._run(unit, _unindexed(command.casefold()), text)

    def _run(self, unit: _Tasmota, command: str, text: str) -> Reaction:
        device = unit.device
        if command == "backlog":
            steps = [part.strip().split(" ", 1) for part in text.split(";") if part.strip()]
            reactions = [self._run(unit, _unindexed(step[0].casefold()),
                                   step[1] if len(step) > 1 else "")
                         for step in steps]

            def run_all(d: Device) -> EntityState:
                # Each step sees the one before; the home records the end state.
                before = d.state
                try:
                    for reaction in reactions:
                        if reaction.change is not None:
                            d.state = reaction.change(d)
                    return d.state
                finally:
                    d.state = before
            return Reaction(device, run_all, unit.result)
        if command == "state":
            return Reaction(None, reply=lambda: [
                Publication(unit.at("stat", "RESULT"), json.dumps(unit.power_state()),
                            retain=False), *unit.telemetry()])
        if command == "status":
            return Reaction(None, reply=lambda: self._status(unit, text.strip()))
        handler = unit.commands().get(command)
        if handler is None:
            return Reaction(None, reply=lambda: [Publication(
                unit.at("stat", "RESULT"), json.dumps({"Command": "Unknown"}), retain=False)])
        if not text.strip() and command in _VALUED:  # a query: the state as it is
            return Reaction(None, reply=unit.result)
        return Reaction(device, lambda d: handler(d, text), unit.result)

    @staticmethod
    def _status(unit: _Tasmota, which: str) -> list[Publication]:
        if which == "10":
            body: dict[str, Any] = {"StatusSNS": unit.sensor_state()}
        elif which == "11":
            body = {"StatusSTS": unit.power_state()}
        else:
            return []
        return [Publication(unit.at("stat", f"STATUS{which}"), json.dumps(body), retain=False)]

    def farewell(self) -> list[Publication]:
        messages = []
        for unit in self._units.values():
            messages += [Publication(f"{unit.discovery}/config", b""),
                         Publication(f"{unit.discovery}/sensors", b""),
                         Publication(unit.at("tele", "LWT"), b"")]
        return messages

    def presented_on(self, device: Device) -> PresentedOn:
        unit = self._units[device.spec.entity_id]
        return PresentedOn(self.name, (f"mac:{unit.mac.lower()}",), unit.topic)
