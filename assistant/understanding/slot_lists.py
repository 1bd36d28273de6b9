"""The fast path's lists, built from a snapshot of the registry: the slot lists hassil fills
(device names with their derived names, rooms, floors), the indexes targets are resolved
with, and the template filter over them.

Building them takes a while in a home of hundreds of devices (the filter works out what
each template needs from them), so the daemon builds them off the event loop: the snapshot
is taken on the loop, the rest reads only the snapshot.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from hassil import Intents, TextSlotList
from hassil.intents import TextSlotValue

from assistant.registry import Area, DeviceRegistry, Entity, Floor, normalize_name
from assistant.understanding.aliases import (derived_area_names, derived_names,
                                             shared_area_names)
from assistant.understanding.template_filter import TemplateFilter
from assistant.understanding.words import Words

# Joins the area ids a shared place name stands for ("the bedroom": "bedroom_1|bedroom_2").
AREA_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the lists are built from, as the registry had it at one ``generation``."""

    generation: int
    entities: tuple[Entity, ...]
    areas: tuple[Area, ...]
    floors: tuple[Floor, ...]

    @staticmethod
    def of(registry: DeviceRegistry, generation: int) -> Snapshot:
        return Snapshot(generation, tuple(registry.entities()),
                        tuple(registry.areas.values()), tuple(registry.floors.values()))


@dataclass(frozen=True, slots=True)
class Lists:
    """The lists of one snapshot."""

    generation: int
    slots: dict[str, TextSlotList]
    template_filter: TemplateFilter
    # spoken name (normalised) -> entity ids: own names, and derived names
    by_name: dict[str, list[str]]
    by_derived_name: dict[str, list[str]]
    # domain -> (place in the registry's order, the entity as the snapshot had it), for
    # targets given by kind and place ("the kitchen lights") rather than by name
    by_domain: dict[str, list[tuple[int, Entity]]]


def build_lists(snapshot: Snapshot, intents: Intents, words: Words, language: str) -> Lists:
    names: list[TextSlotValue] = []
    by_name: dict[str, list[str]] = defaultdict(list)
    by_derived: dict[str, list[str]] = defaultdict(list)
    by_domain: dict[str, list[tuple[int, Entity]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    floors = snapshot.floors
    # the names devices and floors have of their own; a room's shorter name must not be one
    own_names = frozenset(normalize_name(n) for entity in snapshot.entities
                          for n in spoken_names(entity))
    floor_names = frozenset(normalize_name(n) for floor in floors
                            for n in (floor.name, *floor.aliases))
    area_names = {area.id: (area.name, *area.aliases) for area in snapshot.areas}
    links = words.place_links
    shared = shared_area_names(area_names, own_names | floor_names, links)
    for area_id, shorter in derived_area_names(area_names, own_names | floor_names,
                                               links).items():
        area_names[area_id] = (*area_names[area_id], *sorted(shorter))
    places = floor_names | shared.keys() | {normalize_name(n) for names in
                                            area_names.values() for n in names}
    kind_words = frozenset(word for pair in words.device_nouns for word in pair)
    for position, entity in enumerate(snapshot.entities):
        by_domain[entity.domain].append((position, entity))
        # The value carries domain and device class so that templates can require them
        # ("pause {name}" only for media players).
        context = {"domain": entity.domain}
        if entity.device_class:
            context["device_class"] = entity.device_class
        key_suffix = f"|{entity.domain}|{entity.device_class or ''}"
        own = spoken_names(entity)
        derived = derived_names(entity, area_names.get(entity.area or "", ()), places,
                                kind_words, words.place_links)
        for said, index in ((own, by_name), (derived, by_derived)):
            for spoken in said:
                normalized = normalize_name(spoken)
                if entity.entity_id not in index[normalized]:  # "A_B" and "a b" are one
                    index[normalized].append(entity.entity_id)
                key = normalized + key_suffix
                if (spoken, key) not in seen:
                    seen.add((spoken, key))
                    names.append(TextSlotValue.from_tuple((spoken, key, context),
                                                          allow_template=False))
    areas = [TextSlotValue.from_tuple((spoken, area_id), allow_template=False)
             for area_id, said in area_names.items() for spoken in set(said)]
    areas += [TextSlotValue.from_tuple((spoken, AREA_SEPARATOR.join(ids)),
                                       allow_template=False)
              for spoken, ids in shared.items()]
    floor_values = [TextSlotValue.from_tuple((spoken, floor.id), allow_template=False)
                    for floor in floors for spoken in {floor.name, *floor.aliases}]
    slots = {
        "name": TextSlotList(name="name", values=names),
        "area": TextSlotList(name="area", values=areas),
        "floor": TextSlotList(name="floor", values=floor_values),
    }
    return Lists(snapshot.generation, slots, TemplateFilter(intents, slots, language),
                 dict(by_name), dict(by_derived), dict(by_domain))



def spoken_names(entity: Entity) -> set[str]:
    """An entity's names as said: also without the underscores and dashes device names
    carry ("SONOFF_B1" is said "sonoff b1")."""
    names = {n for n in (entity.name, *entity.aliases) if normalize_name(n)}
    return names | {normalize_name(n) for n in names if re.search(r"[_-]", n)}
