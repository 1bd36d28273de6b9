"""Homes for the virtual home: the home-assistant-datasets fixture format, loaded.

A home is described in ``_fixtures.yaml``: ``floors``, ``areas``, ``devices`` and
``entities`` with ``state`` and ``attributes``; ``demo_home()`` is our own. Loading
normalises what the datasets spell in several ways (enum reprs, booleans for states,
fixture-only attribute names), so the device models see Home Assistant's terms only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

FIXTURES_FILE = "_fixtures.yaml"

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
# What a fixture's boolean state means, per domain (default: on/off).
_TRUE_FALSE = {"cover": ("open", "closed"), "valve": ("open", "closed"),
               "lock": ("locked", "unlocked")}
# States a dataset uses that the domain does not have.
_STATE_ALIASES: Mapping[str, Mapping[str, str]] = {
    "vacuum": {"off": "idle", "on": "cleaning"},  # vacuums have no on/off state
}


# A name in other languages, by language code: {"it": ("Cucina",)}.
Spoken = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class FloorSpec:
    id: str
    name: str
    spoken: Spoken = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AreaSpec:
    id: str
    name: str
    floor: str | None = None  # floor id
    aliases: tuple[str, ...] = ()  # other names the room goes by ("Hall" for the Hallway)
    spoken: Spoken = field(default_factory=dict)


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
    spoken: Spoken = field(default_factory=dict)

    @property
    def object_id(self) -> str:
        return self.entity_id.split(".", 1)[1]

    @property
    def features(self) -> set[str]:
        return set(self.attributes.get("supported_features") or ())


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


def normalise_state(domain: str, value: Any) -> str | None:
    """A fixture's state in Home Assistant's terms; None when it gives none."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return _TRUE_FALSE.get(domain, ("on", "off"))[0 if value else 1]
    text = str(value).strip()
    return _STATE_ALIASES.get(domain, {}).get(text, text)


def normalise_attributes(raw: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(a state hint, attributes as Home Assistant shows them) from fixture attributes."""
    attributes = {_ATTRIBUTE_RENAMES.get(str(k), str(k)): _plain(v) for k, v in raw.items()}
    hints = [attributes.pop(name) for name in _STATE_ATTRIBUTES if name in attributes]
    if isinstance(attributes.get("color_mode"), list):  # some fixtures list the one mode
        attributes["color_mode"] = next(iter(attributes["color_mode"]), None)
    return next((h for h in hints if h is not None), None), attributes


def _parse_home(document: Mapping[str, Any]) -> HomeSpec:
    floors = {str(f["id"]): FloorSpec(str(f["id"]), str(f["name"]), _spoken(f))
              for f in document.get("floors") or ()}
    areas = tuple(
        AreaSpec(str(a["id"]), str(a["name"]), _text(a.get("floor")),
                 tuple(str(alias) for alias in a.get("aliases") or ()), _spoken(a))
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
    hint, attributes = normalise_attributes(raw.get("attributes") or {})
    state = normalise_state(domain, raw.get("state"))
    device = _text(raw.get("device"))
    return VirtualEntitySpec(
        entity_id=entity_id,
        name=str(raw.get("name") or entity_id.split(".", 1)[1].replace("_", " ")),
        domain=domain,
        area=_text(raw.get("area")) or device_areas.get(device or ""),
        device_class=_text(attributes.get("device_class")),
        state=state if state is not None else normalise_state(domain, hint),
        attributes=attributes,
        device=device,
        scene_states={str(k): v or {} for k, v in (raw.get("scene_states") or {}).items()},
        spoken=_spoken(raw),
    )


def _spoken(raw: Mapping[str, Any]) -> Spoken:
    return {str(language): tuple(str(name) for name in names)
            for language, names in (raw.get("spoken") or {}).items()}


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
