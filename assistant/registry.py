"""Device registry: every entity the hub knows, persisted in SQLite (WAL).

Adapters upsert entities and states; understanding reads them. Listeners hear about
changes; ``subscribe`` returns the unsubscribe function.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

# Domains whose actuation always needs a confirmation: a wrong unlock is worse than a slow one.
SENSITIVE_DOMAINS = frozenset({"lock", "alarm_control_panel", "valve"})
SENSITIVE_COVER_CLASSES = frozenset({"garage", "gate", "door"})
_SENSITIVE_NAME = re.compile(r"\b(garage|gates?|(un)?lock|valve|alarm)\b", re.IGNORECASE)


class Area(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    floor: str | None = None
    aliases: tuple[str, ...] = ()


class Floor(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    level: int | None = None
    aliases: tuple[str, ...] = ()


class Entity(BaseModel):
    """One controllable or observable thing (a light, a lock, a temperature sensor)."""

    model_config = ConfigDict(frozen=True)

    entity_id: str  # "<domain>.<object_id>"
    name: str
    domain: str
    aliases: tuple[str, ...] = ()
    area: str | None = None  # area id
    device_class: str | None = None
    # What the device can do, in HA terms: supported_color_modes, min_temp, hvac_modes, ...
    capabilities: dict[str, Any] = Field(default_factory=dict)
    state: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    available: bool = True
    source: str = ""  # the adapter that owns it
    # Adapter-private wire description (topics, templates) needed to command it.
    wire: dict[str, Any] = Field(default_factory=dict)

    @property
    def sensitive(self) -> bool:
        """Locks, alarms, valves, garage doors and gates: never actuated without confirmation."""
        if self.domain in SENSITIVE_DOMAINS:
            return True
        if self.domain == "cover" and self.device_class in SENSITIVE_COVER_CLASSES:
            return True
        # A "Garage Door" relay exposed as a plain switch is still a garage door.
        names = " ".join((self.name, self.entity_id.replace("_", " "), *self.aliases))
        return self.domain in {"cover", "switch", "button"} and bool(_SENSITIVE_NAME.search(names))


def normalize_name(text: str) -> str:
    """Lower-case, accent-free, punctuation-free form used to compare names."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[_\-]+", " ", text.casefold())
    text = re.sub(r"[^\w\s%]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True, slots=True)
class EntityPatch:
    """The user's additions to what a device says about itself (from the config file)."""

    name: str | None = None
    aliases: tuple[str, ...] = ()
    area: str | None = None  # area id or name


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """What changed: ``structure`` for names/areas/new or removed entities, else state only."""

    entity_id: str | None
    structure: bool


RegistryListener = Callable[[RegistryChange], None]


class DeviceRegistry:
    """In-memory view of the home, written through to SQLite."""

    def __init__(self, db_path: Path | str | None) -> None:
        self._entities: dict[str, Entity] = {}
        self._areas: dict[str, Area] = {}
        self._floors: dict[str, Floor] = {}
        self._listeners: list[RegistryListener] = []
        self._overrides: dict[str, EntityPatch] = {}
        self._db: sqlite3.Connection | None = None
        if db_path is not None:
            self._open(Path(db_path))

    # -- persistence -------------------------------------------------------------------

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS entities (entity_id TEXT PRIMARY KEY, body TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS areas (id TEXT PRIMARY KEY, body TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS floors (id TEXT PRIMARY KEY, body TEXT)")
        self._db = db
        for (body,) in db.execute("SELECT body FROM floors"):
            floor = Floor.model_validate_json(body)
            self._floors[floor.id] = floor
        for (body,) in db.execute("SELECT body FROM areas"):
            area = Area.model_validate_json(body)
            self._areas[area.id] = area
        for (body,) in db.execute("SELECT body FROM entities"):
            try:
                entity = Entity.model_validate_json(body)
            except ValueError:
                log.warning("skipping an unreadable registry row: %.80s", body)
                continue
            self._entities[entity.entity_id] = entity
        log.info(
            "registry %s: %d entities, %d areas", path, len(self._entities), len(self._areas)
        )

    def _write(self, table: str, key: str, body: str | None) -> None:
        if self._db is None:
            return
        column = "entity_id" if table == "entities" else "id"
        if body is None:
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))
        else:
            self._db.execute(
                f"INSERT INTO {table} ({column}, body) VALUES (?, ?) "
                f"ON CONFLICT({column}) DO UPDATE SET body = excluded.body",
                (key, body),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- listeners ---------------------------------------------------------------------

    def subscribe(self, listener: RegistryListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, change: RegistryChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not break the adapter feeding us
                log.exception("registry listener failed")

    # -- areas and floors --------------------------------------------------------------

    def set_floor(self, floor: Floor) -> None:
        if self._floors.get(floor.id) == floor:
            return
        self._floors[floor.id] = floor
        self._write("floors", floor.id, floor.model_dump_json())
        self._notify(RegistryChange(None, structure=True))

    def set_area(self, area: Area) -> None:
        if self._areas.get(area.id) == area:
            return
        self._areas[area.id] = area
        self._write("areas", area.id, area.model_dump_json())
        self._notify(RegistryChange(None, structure=True))

    def ensure_area(self, name: str) -> str:
        """The id of the area called ``name``, creating it when unknown."""
        wanted = normalize_name(name)
        for area in self._areas.values():
            if wanted in {normalize_name(area.name), normalize_name(area.id)}:
                return area.id
        area_id = re.sub(r"\W+", "_", wanted).strip("_") or "area"
        self.set_area(Area(id=area_id, name=name.strip()))
        return area_id

    @property
    def areas(self) -> dict[str, Area]:
        return dict(self._areas)

    @property
    def floors(self) -> dict[str, Floor]:
        return dict(self._floors)

    def area_name(self, area_id: str | None) -> str | None:
        area = self._areas.get(area_id or "")
        return area.name if area else area_id

    def floor_of(self, area_id: str | None) -> str | None:
        area = self._areas.get(area_id or "")
        return area.floor if area else None

    # -- entities ----------------------------------------------------------------------

    def set_overrides(self, overrides: dict[str, EntityPatch]) -> None:
        """User patches applied to entities now and whenever an adapter upserts them."""
        self._overrides = dict(overrides)
        for entity in list(self._entities.values()):
            self.upsert(entity)

    def _patched(self, entity: Entity) -> Entity:
        patch = self._overrides.get(entity.entity_id)
        if patch is None:
            return entity
        update: dict[str, Any] = {"aliases": tuple(dict.fromkeys((*entity.aliases, *patch.aliases)))}
        if patch.name:
            update["name"] = patch.name
        if patch.area:
            update["area"] = patch.area if patch.area in self._areas else self.ensure_area(patch.area)
        return entity.model_copy(update=update)

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)

    def entities(self, domain: str | None = None) -> list[Entity]:
        return [e for e in self._entities.values() if domain is None or e.domain == domain]

    def __len__(self) -> int:
        return len(self._entities)

    def upsert(self, entity: Entity) -> None:
        """Add or replace an entity; keeps the known state when the new one has none."""
        entity = self._patched(entity)
        old = self._entities.get(entity.entity_id)
        if old is not None and entity.state is None and old.state is not None:
            entity = entity.model_copy(update={"state": old.state, "attributes": {
                **old.attributes, **entity.attributes}})
        if old == entity:
            return
        self._entities[entity.entity_id] = entity
        self._write("entities", entity.entity_id, entity.model_dump_json())
        structure = old is None or _structure_key(old) != _structure_key(entity)
        self._notify(RegistryChange(entity.entity_id, structure=structure))

    def update_state(
        self,
        entity_id: str,
        state: str | None = None,
        attributes: dict[str, Any] | None = None,
        available: bool | None = None,
    ) -> Entity | None:
        """Merge a state update; returns the new entity, or None when it is unknown."""
        old = self._entities.get(entity_id)
        if old is None:
            return None
        update: dict[str, Any] = {}
        if state is not None:
            update["state"] = state
        if attributes:
            update["attributes"] = {**old.attributes, **attributes}
        if available is not None:
            update["available"] = available
        new = old.model_copy(update=update)
        if new == old:
            return old
        self._entities[entity_id] = new
        self._write("entities", entity_id, new.model_dump_json())
        self._notify(RegistryChange(entity_id, structure=False))
        return new

    def remove(self, entity_id: str) -> None:
        if self._entities.pop(entity_id, None) is None:
            return
        self._write("entities", entity_id, None)
        self._notify(RegistryChange(entity_id, structure=True))

    def remove_source(self, source: str, keep: Iterable[str] = ()) -> None:
        keep_ids = set(keep)
        for entity_id in [
            e.entity_id for e in self._entities.values() if e.source == source
        ]:
            if entity_id not in keep_ids:
                self.remove(entity_id)


def _structure_key(entity: Entity) -> tuple[Any, ...]:
    return (entity.name, entity.aliases, entity.area, entity.domain, entity.device_class,
            entity.available)
