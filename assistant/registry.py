"""Device registry: every entity the hub knows, persisted in SQLite (WAL).

Adapters upsert entities and states; understanding reads them. Listeners hear about
changes; ``subscribe`` returns the unsubscribe function.

Writes never block the event loop: a change marks its row dirty and a writer thread stores
the dirty rows shortly after, one transaction per batch (a burst of state updates costs one
write per entity, not one per message); ``close`` writes what is left. What devices bring in
is bounded (``DeviceLimits``): entities per source, areas, aliases and attributes per entity.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assistant.device_data import DeviceLimits

log = logging.getLogger(__name__)

FLUSH_DELAY_S = 0.1  # how long the writer gathers changes into one transaction
RETRY_S = 2.0  # after a batch failed (a full disk): how soon the writer tries it again


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
    # Home Assistant's "config"/"diagnostic" marks maintenance entities (restart buttons...).
    entity_category: str | None = None
    enabled_by_default: bool = True
    # The device's own id for this entity: the entity id stays bound to the first one.
    unique_id: str | None = None
    # False while ``state`` is only what was persisted: the device has not spoken since the
    # hub started, so the state may be stale.
    reported: bool = True
    # Who the physical device is, protocol-neutral ("zigbee:0x00158d0001a2b3c4",
    # "mac:a4cf12b3c4d5"): the same appliance arriving through two adapters is one.
    device_ids: tuple[str, ...] = ()


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
    """What changed: ``structure`` for names/areas/new or removed entities, else state only.
    ``reported``: the device reported its state or attributes, changed or not."""

    entity_id: str | None
    structure: bool
    reported: bool = False


RegistryListener = Callable[[RegistryChange], None]
ExposurePredicate = Callable[[Entity], bool]
SourceRank = Callable[[str], int]  # adapter name -> preference, lower speaks first
Row = BaseModel | None  # what a table row will hold; None deletes it


class RegistryFullError(ValueError):
    """A source already has as many entities as ``max_entities_per_source`` allows."""


class _Writer:
    """Stores dirty rows from its own thread, one transaction per batch."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._pending: dict[tuple[str, str], Row] = {}
        self._pending_lock = threading.Lock()
        self._batch_lock = threading.Lock()  # one batch at a time: the thread's or close's
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._failing = False  # the last batch failed: said once, retried on a timer
        self._thread = threading.Thread(target=self._run, name="registry-writer", daemon=True)
        self._thread.start()

    def put(self, table: str, key: str, row: Row) -> None:
        with self._pending_lock:
            self._pending[(table, key)] = row
        if not self._wake.is_set():  # set() takes a lock: once per batch is enough
            self._wake.set()

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(RETRY_S if self._failing else None)  # no change may ever come
            self._closing.wait(FLUSH_DELAY_S)  # let a burst gather into one batch
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._batch_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return
            rows = []
            for (table, key), row in batch.items():
                try:
                    rows.append((table, key, None if row is None else row.model_dump_json()))
                except ValueError:  # unstorable: skip it rather than lose the writer thread
                    log.exception("registry: cannot store %s %s", table, key)
            try:
                self._db.execute("BEGIN")
                for table, key, body in rows:
                    _store(self._db, table, key, body)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if not self._failing:  # once, not per batch: a full disk must not flood logs
                    log.error("registry: cannot store %d changes (%s); keeping them in memory "
                              "and retrying every %.0f s", len(batch), exc, RETRY_S)
                self._failing = True
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                with self._pending_lock:
                    self._pending = {**batch, **self._pending}
                return
            if self._failing:
                self._failing = False
                log.warning("registry: storing again (%d changes caught up)", len(batch))

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join()
        self.flush()
        if self._failing:
            log.error("registry: %d changes could not be stored before stopping",
                      len(self._pending))


def _store(db: sqlite3.Connection, table: str, key: str, body: str | None) -> None:
    column = "entity_id" if table == "entities" else "id"
    if body is None:
        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))
    else:
        db.execute(
            f"INSERT INTO {table} ({column}, body) VALUES (?, ?) "
            f"ON CONFLICT({column}) DO UPDATE SET body = excluded.body",
            (key, body),
        )


class DeviceRegistry:
    """In-memory view of the home, written through to SQLite."""

    def __init__(self, db_path: Path | str | None, limits: DeviceLimits | None = None) -> None:
        self.limits = limits or DeviceLimits()
        self._entities: dict[str, Entity] = {}
        self._per_source: Counter[str] = Counter()
        self._warned: set[tuple[str, str]] = set()
        self._areas: dict[str, Area] = {}
        self._floors: dict[str, Floor] = {}
        self._listeners: list[RegistryListener] = []
        self._overrides: dict[str, EntityPatch] = {}
        self._exposed: ExposurePredicate = lambda _entity: True
        # device id -> how many entities each source has for that physical device
        self._device_sources: dict[str, Counter[str]] = {}
        self._source_rank: SourceRank = lambda _source: 0
        self._db: sqlite3.Connection | None = None
        self._writer: _Writer | None = None
        if db_path is not None:
            self._open(Path(db_path))
            assert self._db is not None
            self._writer = _Writer(self._db)

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
            self._entities[entity.entity_id] = entity.model_copy(update={"reported": False})
            self._per_source[entity.source] += 1
            self._index_device(entity, +1)
        log.info(
            "registry %s: %d entities, %d areas", path, len(self._entities), len(self._areas)
        )

    def _write(self, table: str, key: str, row: Row) -> None:
        if self._writer is not None:
            self._writer.put(table, key, row)

    def flush(self) -> None:
        """Store every pending change now (blocks: for shutdown and tests, not the loop)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Store what is pending and close the database."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def _warn_limit(self, limit: str, source: str, detail: str) -> None:
        if (limit, source) not in self._warned:  # once per source: a flood must not flood logs
            self._warned.add((limit, source))
            log.warning("registry: %r reached adapters.limits.%s (at %s); what is over it is "
                        "dropped", source or "?", limit, detail)

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
        self._write("floors", floor.id, floor)
        self._notify(RegistryChange(None, structure=True))

    def set_area(self, area: Area) -> None:
        if self._areas.get(area.id) == area:
            return
        self._areas[area.id] = area
        self._write("areas", area.id, area)
        self._notify(RegistryChange(None, structure=True))

    def ensure_area(self, name: str, source: str = "") -> str | None:
        """The id of the area called ``name``, creating it when unknown and there is room."""
        wanted = normalize_name(name)
        for area in self._areas.values():
            if wanted in {normalize_name(area.name), normalize_name(area.id)}:
                return area.id
        if len(self._areas) >= self.limits.max_areas:
            self._warn_limit("max_areas", source, f"area {name[:40]!r}")
            return None
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
            area = patch.area if patch.area in self._areas else self.ensure_area(
                patch.area, "home.entities")
            update["area"] = area or entity.area
        return entity.model_copy(update=update)

    def _bounded(self, entity: Entity) -> Entity:
        """The entity with at most ``max_aliases`` aliases and ``max_attributes`` attributes."""
        limits, update = self.limits, {}
        if len(entity.aliases) > limits.max_aliases:
            self._warn_limit("max_aliases", entity.source, entity.entity_id)
            update["aliases"] = entity.aliases[: limits.max_aliases]
        if len(entity.attributes) > limits.max_attributes:
            self._warn_limit("max_attributes", entity.source, entity.entity_id)
            update["attributes"] = dict(list(entity.attributes.items())[: limits.max_attributes])
        return entity.model_copy(update=update) if update else entity

    def _merged_attributes(self, old: Entity, attributes: dict[str, Any]) -> dict[str, Any]:
        """``old``'s attributes updated by ``attributes``; new keys only while there is room."""
        merged = dict(old.attributes)
        for key, value in attributes.items():
            if key in merged or len(merged) < self.limits.max_attributes:
                merged[key] = value
            else:
                self._warn_limit("max_attributes", old.source, old.entity_id)
        return merged

    def set_exposure(self, exposed: ExposurePredicate) -> None:
        """Which entities the assistant may see and touch; the rest exist for adapters only."""
        self._exposed = exposed
        self._notify(RegistryChange(None, structure=True))

    def set_source_preference(self, rank: SourceRank) -> None:
        """Which adapter speaks for an appliance that arrives through several (the same
        ``device_ids``): the lowest rank; the others' entities of it are hidden."""
        self._source_rank = rank
        self._notify(RegistryChange(None, structure=True))

    def preferred_source(self, entity: Entity) -> str | None:
        """The source that speaks for ``entity``'s appliance when it is not its own."""
        rank = self._source_rank(entity.source)
        for device_id in entity.device_ids:
            for source in self._device_sources.get(device_id, ()):
                if self._source_rank(source) < rank:
                    return source
        return None

    def _visible(self, entity: Entity) -> bool:
        return self._exposed(entity) and (
            not entity.device_ids or self.preferred_source(entity) is None)

    def get(self, entity_id: str) -> Entity | None:
        """An exposed entity (what understanding, skills and replies may use)."""
        entity = self._entities.get(entity_id)
        return entity if entity is not None and self._visible(entity) else None

    def entities(self, domain: str | None = None) -> list[Entity]:
        """Exposed entities, optionally of one domain."""
        return [e for e in self._entities.values()
                if (domain is None or e.domain == domain) and self._visible(e)]

    def _index_device(self, entity: Entity, delta: int) -> bool:
        """Count ``entity`` in (or out of) its appliances' sources; whether a source of an
        appliance appeared or went, which can change who speaks for it."""
        changed = False
        for device_id in entity.device_ids:
            sources = self._device_sources.setdefault(device_id, Counter())
            before = sources[entity.source] > 0
            sources[entity.source] += delta
            if sources[entity.source] <= 0:
                del sources[entity.source]
            changed = changed or before != (sources[entity.source] > 0)
            if not sources:
                del self._device_sources[device_id]
        return changed

    def get_any(self, entity_id: str) -> Entity | None:
        """Any known entity, exposed or not: for the adapters that own them."""
        return self._entities.get(entity_id)

    def all_entities(self) -> list[Entity]:
        """Every known entity, exposed or not: for adapters and the safety policy."""
        return list(self._entities.values())

    def __len__(self) -> int:
        return len(self._entities)

    def upsert(self, entity: Entity) -> None:
        """Add or replace an entity; keeps the known state when the new one has none.

        Raises RegistryFullError for a new entity of a source that has no room left."""
        entity = self._patched(self._bounded(entity))
        old = self._entities.get(entity.entity_id)
        if old is None and self._per_source[entity.source] >= self.limits.max_entities_per_source:
            self._warn_limit("max_entities_per_source", entity.source, entity.entity_id)
            raise RegistryFullError(f"{entity.source!r} has no room for {entity.entity_id}")
        if old is not None and entity.state is None and old.state is not None:
            entity = entity.model_copy(update={
                "state": old.state, "reported": old.reported,
                "attributes": self._merged_attributes(old, entity.attributes)})
        if old == entity:
            return
        owners_changed = False
        if old is not None:
            self._per_source[old.source] -= 1
            owners_changed = self._index_device(old, -1)
        self._per_source[entity.source] += 1
        owners_changed = self._index_device(entity, +1) or owners_changed
        self._entities[entity.entity_id] = entity
        self._write("entities", entity.entity_id, entity)
        structure = old is None or _structure_key(old) != _structure_key(entity)
        self._notify(RegistryChange(entity.entity_id, structure=structure))
        if owners_changed:  # other adapters' entities of this appliance may hide or show
            self._notify(RegistryChange(None, structure=True))

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
            update["reported"] = True
        if attributes:
            update["attributes"] = self._merged_attributes(old, attributes)
        if available is not None:
            update["available"] = available
        # Compared field by field: most reports repeat what is known, and copying the
        # entity to compare it whole costs more than the rest of a report.
        changed = any(getattr(old, name) != value for name, value in update.items())
        new = old.model_copy(update=update) if changed else old
        reported = state is not None or bool(attributes)
        if changed:
            self._entities[entity_id] = new
            self._write("entities", entity_id, new)
        if changed or reported:  # an unchanged report still answers a command
            self._notify(RegistryChange(entity_id, structure=False, reported=reported))
        return new

    def remove(self, entity_id: str) -> None:
        old = self._entities.pop(entity_id, None)
        if old is None:
            return
        self._per_source[old.source] -= 1
        owners_changed = self._index_device(old, -1)
        self._write("entities", entity_id, None)
        self._notify(RegistryChange(entity_id, structure=True))
        if owners_changed:
            self._notify(RegistryChange(None, structure=True))

    def remove_source(self, source: str, keep: Iterable[str] = ()) -> None:
        keep_ids = set(keep)
        for entity_id in [
            e.entity_id for e in self._entities.values() if e.source == source
        ]:
            if entity_id not in keep_ids:
                self.remove(entity_id)


def _structure_key(entity: Entity) -> tuple[Any, ...]:
    return (entity.name, entity.aliases, entity.area, entity.domain, entity.device_class,
            entity.available, entity.entity_category, entity.enabled_by_default)
