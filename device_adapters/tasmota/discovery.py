"""Tasmota's native discovery documents as what the hub needs to know about a device.

A device publishes ``<prefix>/<MAC>/config`` (its relays, lights, shutters, names, topics,
state texts) and ``<prefix>/<MAC>/sensors`` (``{"sn": <its SENSOR status>, "ver": 1}``).
hatasmota, Home Assistant's parser of this protocol, validates both and tells which relay is a
switch, a light or half of a shutter, each light's type and colour-temperature range, each
sensor's value path, quantity and unit, and the unique ids (the ones Home Assistant's Tasmota
integration uses). Topics are built here as the firmware builds them (``GetTopic_P``):
hatasmota puts only the MAC's last six digits in for ``%id%``, the firmware the whole MAC, and
the firmware also drops ``#``, collapses ``//`` and ends the full topic with ``/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from hatasmota import discovery as tasmota
from hatasmota.const import (
    CONF_DEEP_SLEEP,
    CONF_DEVICENAME,
    CONF_FRIENDLYNAME,
    CONF_FULLTOPIC,
    CONF_HOSTNAME,
    CONF_LIGHT_SUBTYPE,
    CONF_MAC,
    CONF_OFFLINE,
    CONF_ONLINE,
    CONF_PREFIX,
    CONF_RELAY,
    CONF_STATE,
    CONF_TOPIC,
    PREFIX_CMND,
    PREFIX_STAT,
    PREFIX_TELE,
    RL_NONE,
    RL_SHUTTER,
    STATE_OFF,
    STATE_ON,
)
from hatasmota.light import LIGHT_TYPE_MAP, TasmotaLightConfig
from hatasmota.relay import TasmotaRelayConfig
from hatasmota.sensor import get_sensor_entities
from hatasmota.shutter import TasmotaShutterConfig

from assistant.device_data import clean_text
from device_adapters.intake import OncePerMessage
from device_adapters.wire import is_exact_topic, mired_kelvin

Config = dict[str, Any]

# hatasmota logs what a device's documents hold ("Unknown unit …") on every message; a
# filter only sees its own logger's records, so it goes on each of hatasmota's modules.
_ONCE = OncePerMessage()
for _name in [name for name in logging.Logger.manager.loggerDict if name.startswith("hatasmota")]:
    logging.getLogger(_name).addFilter(_ONCE)

MAX_RELAYS = 32  # Tasmota's most (ESP32); longer lists in a config are cut
MAX_SENSORS = 128  # sensor entities kept per device, and entries kept per level of "sn"
MAX_TOPIC_CHARS = 256  # the firmware's own limit (TOPSZ) is 151
NAME_CHARS = 100
_MAC = re.compile(r"[0-9A-F]{12}")
_SLUG = re.compile(r"[^a-z0-9]+")
_LIST_KEYS = ("fn", "rl", "swc", "swn", "btn", "sho", "sht")
# Kept out of the sensors: what a shutter entity already reports, or no reading at all.
_NOT_SENSORS = re.compile(r"Shutter\d+|Time")

# hatasmota's light types as Home Assistant's colour modes (its Tasmota integration's mapping)
_COLOR_MODES = {0: ["onoff"], 1: ["brightness"], 2: ["color_temp"], 3: ["hs"],
                4: ["hs", "white"], 5: ["color_temp", "hs"]}
_SWITCH_SERVICES = ["toggle", "turn_off", "turn_on"]
_COVER_SERVICES = ["close_cover", "open_cover", "set_cover_position", "stop_cover", "toggle"]

# Home Assistant's device class and state class of a Tasmota sensor, by quantity.
_MEASUREMENTS = {
    "Temperature": "temperature", "DewPoint": "temperature", "Humidity": "humidity",
    "Pressure": "pressure", "SeaPressure": "pressure", "Power": "power",
    "ActivePower": "power", "ApparentPower": "apparent_power",
    "ReactivePower": "reactive_power", "Factor": "power_factor", "Voltage": "voltage",
    "Current": "current", "Frequency": "frequency", "Illuminance": "illuminance",
    "Battery": "battery", "CarbonDioxide": "carbon_dioxide", "eCO2": "carbon_dioxide",
    "PM1": "pm1", "PM2.5": "pm25", "PM10": "pm10", "TVOC": "volatile_organic_compounds_parts",
    "Moisture": "moisture", "Distance": "distance", "Weight": "weight", "Speed": "speed",
}
_ENERGY_TOTALS = frozenset({"Total", "Today", "Yesterday", "ImportActive", "ExportActive"})
_UNITS = {"C": "°C", "F": "°F", "K": "K"}  # Tasmota's TempUnit as Home Assistant writes it


class MalformedConfigError(ValueError):
    """A discovery document that is not a usable Tasmota device."""


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One entity a device announces, ready to become a registry entity."""

    entity_id: str
    unique_id: str
    domain: str
    name: str
    capabilities: Config
    wire: Config  # what encoding commands and reading states need
    device_class: str | None = None
    unit: str | None = None
    entity_category: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    command: str  # "cmnd/<topic>/": a command's name is appended
    stat: str  # "stat/<topic>/": RESULT, POWER<n> and STATUS10 follow
    tele: str  # "tele/<topic>/": STATE, SENSOR and LWT follow


@dataclass(frozen=True, slots=True)
class Device:
    mac: str  # as the discovery topic spells it: 12 upper-case hex digits
    name: str
    topics: DeviceTopics
    online: str
    offline: str
    deep_sleep: bool  # sleeps between reports: its LWT says nothing about it
    entities: tuple[EntitySpec, ...] = ()

    @property
    def device_id(self) -> str:
        return f"mac:{self.mac.lower()}"


def parse_config(document: Mapping[str, Any], mac: str) -> Config:
    """A config as hatasmota validates it; MalformedConfigError for anything else."""
    if mac != document.get(CONF_MAC) or not _MAC.fullmatch(mac):
        raise MalformedConfigError(f"the config's mac {str(document.get(CONF_MAC))[:20]!r} "
                                   f"is not the topic's 12 hex digits {mac[:20]!r}")
    trimmed = {key: value[:MAX_RELAYS] if key in _LIST_KEYS and isinstance(value, list)
               else value for key, value in document.items()}
    try:
        config = dict(tasmota.TasmotaDiscoveryMsg(trimmed))
    except vol.Invalid as error:
        raise MalformedConfigError(f"not a Tasmota discovery config: {error}") from None
    if len(config[CONF_STATE]) <= STATE_ON or len(config[CONF_PREFIX]) <= PREFIX_TELE:
        raise MalformedConfigError("the config lacks state texts or topic prefixes")
    if config[CONF_LIGHT_SUBTYPE] not in LIGHT_TYPE_MAP:
        raise MalformedConfigError(f"unknown light subtype {config[CONF_LIGHT_SUBTYPE]}")
    if _unpaired_shutter(config[CONF_RELAY]):  # hatasmota would log it as an error, each time
        raise MalformedConfigError("a shutter relay without its second relay")
    return config


def _unpaired_shutter(relays: list[int]) -> bool:
    """Whether a shutter relay lacks its partner: a shutter takes two consecutive relays."""
    index = 0
    while index < len(relays):
        if relays[index] == RL_SHUTTER:
            if relays[index + 1 : index + 2] != [RL_SHUTTER]:
                return True
            index += 1
        index += 1
    return False


def parse_sensors(document: Mapping[str, Any]) -> Config:
    try:
        sensors = dict(tasmota.TASMOTA_SENSOR_DISCOVERY_SCHEMA(dict(document)))
    except vol.Invalid as error:
        raise MalformedConfigError(f"not a Tasmota sensors document: {error}") from None
    return {**sensors, "sn": _trimmed(sensors["sn"])}


def _trimmed(value: Any, depth: int = 0) -> Any:
    """``value`` with at most MAX_SENSORS entries on each of the levels sensors are read from
    (a device's readings, a sensor's quantities, a quantity's phases)."""
    if depth > 2:
        return value
    if isinstance(value, dict):
        return {key: _trimmed(item, depth + 1)
                for key, item in list(value.items())[:MAX_SENSORS]}
    if isinstance(value, list):
        return [_trimmed(item, depth + 1) for item in value[:MAX_SENSORS]]
    return value


def full_topic(config: Mapping[str, Any], prefix: int) -> str:
    """The firmware's FullTopic for one of the three prefixes (cmnd, stat, tele)."""
    topic = str(config[CONF_FULLTOPIC])
    for token, value in (("%prefix%", config[CONF_PREFIX][prefix]),
                         ("%topic%", config[CONF_TOPIC]), ("%hostname%", config[CONF_HOSTNAME]),
                         ("%id%", config[CONF_MAC])):
        topic = topic.replace(token, str(value))
    topic = topic.replace("#", "").replace("//", "/")
    return topic if topic.endswith("/") else topic + "/"


def device_from(config: Config, sensors: Config | None) -> Device:
    """The device a validated config (and its sensors document, once known) describes."""
    topics = DeviceTopics(*(full_topic(config, prefix)
                            for prefix in (PREFIX_CMND, PREFIX_STAT, PREFIX_TELE)))
    # Every topic the device is read or commanded on is one of these and a constant name.
    if not all(is_exact_topic(topic) and len(topic) <= MAX_TOPIC_CHARS
               for topic in (topics.command, topics.stat, topics.tele)):
        raise MalformedConfigError("the device's topics are not short exact topics")
    name = clean_text(config[CONF_DEVICENAME], NAME_CHARS) or config[CONF_MAC]
    try:
        entities = [*_output_entities(config, name, topics.command),
                    *(_sensor_entities(config, sensors, name) if sensors else ())]
    except (LookupError, vol.Invalid, TypeError) as error:  # hatasmota on odd combinations
        raise MalformedConfigError(f"cannot read the device's outputs: {error!r}") from None
    return Device(config[CONF_MAC], name, topics, config[CONF_ONLINE], config[CONF_OFFLINE],
                  bool(config[CONF_DEEP_SLEEP]), tuple(entities))


# -- relays, lights and shutters ---------------------------------------------------------------


def _object_id(mac: str, *parts: Any) -> str:
    return "_".join(["tasmota", mac.lower(), *(str(part) for part in parts)])


def _output_name(config: Config, device_name: str, idx: int) -> str:
    names = config[CONF_FRIENDLYNAME]
    own = clean_text(names[idx], NAME_CHARS) if idx < len(names) else None
    outputs = sum(1 for relay in config[CONF_RELAY] if relay != RL_NONE)
    return own or (device_name if outputs == 1 else f"{device_name} {idx + 1}")


def _power_wire(config: Config, command_topic: str, idx: int) -> Config:
    outputs = [n for n, relay in enumerate(config[CONF_RELAY]) if relay != RL_NONE]
    # A device with one output answers to (and reports) plain POWER; others number them.
    power = "POWER" if outputs == [0] else f"POWER{idx + 1}"
    return {"command_topic": command_topic, "index": idx + 1, "power": power,
            "state_on": config[CONF_STATE][STATE_ON],
            "state_off": config[CONF_STATE][STATE_OFF]}


def _output_entities(config: Config, device_name: str, command_topic: str) -> list[EntitySpec]:
    mac = config[CONF_MAC]
    entities: list[EntitySpec] = []
    for platform in ("switch", "light"):
        for entry, _hash in tasmota.get_entities_for_platform(config, platform):
            if isinstance(entry, TasmotaLightConfig):
                capabilities, light_wire = _light(entry)
                wire = {"kind": "light", **light_wire}
            elif isinstance(entry, TasmotaRelayConfig):
                capabilities, wire = {}, {"kind": "relay"}
                if platform == "light":  # SetOption30: a relay shown as a light
                    capabilities = {"supported_color_modes": ["onoff"], "brightness": False}
            else:
                continue
            entities.append(EntitySpec(
                f"{platform}.{_object_id(mac, entry.endpoint, entry.idx + 1)}",
                entry.unique_id, platform, _output_name(config, device_name, entry.idx),
                {"services": _SWITCH_SERVICES, **capabilities},
                {**wire, **_power_wire(config, command_topic, entry.idx)}))
    shutters = [entry for entry, _hash in tasmota.get_cover_entities(config)
                if isinstance(entry, TasmotaShutterConfig)]
    for entry in shutters:
        entities.append(EntitySpec(
            f"cover.{_object_id(mac, 'shutter', entry.idx + 1)}", entry.unique_id, "cover",
            device_name if len(shutters) == 1 else f"{device_name} shutter {entry.idx + 1}",
            {"services": _COVER_SERVICES, "reports_position": True},
            {"kind": "shutter", "command_topic": command_topic, "index": entry.idx + 1,
             "inverted": bool(entry.inverted_shutter)}, device_class="shutter"))
    return entities


def _light(entry: TasmotaLightConfig) -> tuple[Config, Config]:
    """A light's capabilities, and the commands and state keys its type takes."""
    modes = _COLOR_MODES[entry.light_type]
    capabilities: Config = {"supported_color_modes": modes, "brightness": modes != ["onoff"]}
    if "color_temp" in modes:
        capabilities["min_color_temp_kelvin"] = mired_kelvin(entry.max_mireds)
        capabilities["max_color_temp_kelvin"] = mired_kelvin(entry.min_mireds)
    return capabilities, {
        "light_type": entry.light_type, "dimmer_command": entry.dimmer_cmd,
        "dimmer_state": entry.dimmer_state, "color_suffix": entry.color_suffix,
        "min_mireds": entry.min_mireds, "max_mireds": entry.max_mireds,
        "channel_command": f"Channel{entry.idx + 1}" if entry.control_by_channel else None,
        "not_power_linked": bool(entry.not_power_linked),
    }


# -- sensors ---------------------------------------------------------------------------------


def _sensor_entities(config: Config, sensors: Config, device_name: str) -> list[EntitySpec]:
    mac = config[CONF_MAC]
    entities: list[EntitySpec] = []
    taken: set[str] = set()
    for entry, _hash in get_sensor_entities(sensors, config):
        path = [part if isinstance(part, int) else str(part) for part in entry.value_path]
        if len(entities) >= MAX_SENSORS:
            break
        if _NOT_SENSORS.fullmatch(str(path[0])) or any(
                len(str(part)) > NAME_CHARS for part in path):
            continue
        label = clean_text(" ".join(str(part) for part in path), NAME_CHARS) or "sensor"
        digest = hashlib.sha1(json.dumps(path).encode()).hexdigest()[:12]
        slug = _SLUG.sub("_", "_".join(str(part) for part in path).lower()).strip("_")
        if not slug or slug in taken:  # two paths that read the same once cleaned
            slug = f"{slug}_{digest}".strip("_")
        taken.add(slug)
        # hatasmota's id quotes the device's keys: kept when it is plain text
        unique_id = entry.unique_id if clean_text(entry.unique_id, 255) == entry.unique_id \
            else f"{mac}_sensor_sensor_{digest}"
        quantity = str(entry.quantity)
        device_class = "energy" if quantity in _ENERGY_TOTALS else _MEASUREMENTS.get(quantity)
        unit = clean_text(_UNITS.get(str(entry.unit), entry.unit), 20)
        state_class = ("total_increasing" if quantity in _ENERGY_TOTALS else
                       "measurement" if device_class else None)
        capabilities = {"services": [], **({"unit_of_measurement": unit} if unit else {}),
                        **({"state_class": state_class} if state_class else {})}
        # A text, not a reading (a probe's id, when the energy total started): maintenance data.
        category = "diagnostic" if isinstance(entry.discovered_value, str) else None
        entities.append(EntitySpec(
            f"sensor.{_object_id(mac, slug)}", unique_id, "sensor", f"{device_name} {label}",
            capabilities, {"kind": "sensor", "value_path": path}, device_class, unit, category))
    return entities
