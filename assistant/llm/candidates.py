"""Which entities the model gets to see for one utterance.

The device context must stay small whatever the size of the home, so only candidates are
listed, in tiers, up to a cap:

0. entities the previous turns acted on (follow-ups: "and the bedroom too", "brighter"),
1. entities whose name or alias is fully in the utterance (fuzzy per word, for STT slips),
2. entities in an area (or floor) the utterance names, of a domain it implies,
3. entities in the speaker's area, of a domain the utterance implies,
4. with no area, name or fitting device in the speaker's area: entities of the implied
   domains anywhere ("all the lights"),
5. with no full name match: entities sharing a distinctive word with the utterance,
6. when nothing above matched and no domain is implied ("I'm off to bed"): the devices one
   acts on most, the speaker's area first, so the model can still propose something.

Domains are implied by domain words and synonyms ("dark" -> light, "cold" -> climate).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from rapidfuzz import fuzz, process

from assistant.messages import ToolCall
from assistant.registry import DeviceRegistry, Entity, normalize_name

DEFAULT_LIMIT = 24
MAX_HISTORY_ENTITIES = 8
WORD_MATCH = 85  # rapidfuzz ratio for two words to count as the same ("lights"/"light")

DOMAIN_WORDS: dict[str, frozenset[str]] = {
    domain: frozenset(words.split()) for domain, words in {
        "light": "light lights lamp lamps bulb bulbs lighting bright brighter brightness dim "
                 "dimmer dark darker",
        "climate": "thermostat heating heater heat warm warmer cold colder cool cooler hot "
                   "chilly temperature degrees ac aircon",
        "media_player": "music song songs play playing pause track volume louder quieter "
                        "tv television speaker radio",
        "cover": "blind blinds curtain curtains shade shades shutter shutters garage awning",
        "lock": "lock locks unlock locked door",
        "fan": "fan fans breeze stuffy",
        "switch": "plug plugs socket outlet switch",
        "vacuum": "vacuum hoover robot clean cleaning",
        "sensor": "temperature humidity degrees reading sensor",
        "binary_sensor": "motion window windows door doors open occupied",
        "alarm_control_panel": "alarm arm disarm security",
        "scene": "scene mood",
        "valve": "valve water sprinkler",
    }.items()
}
# For utterances that name nothing: what a person most often means, in this order.
OVERVIEW_DOMAINS = ("light", "lock", "cover", "climate", "media_player", "switch", "fan")
GENERIC_WORDS = frozenset().union(*DOMAIN_WORDS.values()) | frozenset(
    "the a an my our in on of to and at all every turn switch set please room".split())


def select_candidates(registry: DeviceRegistry, text: str, area: str | None = None,
                      history: Sequence[ToolCall] = (),
                      limit: int = DEFAULT_LIMIT) -> list[Entity]:
    """At most ``limit`` entities for the utterance, the most relevant first."""
    words = tuple(normalize_name(text).split())
    history_entities = _history_entities(registry, history)
    domains = implied_domains(words) or {e.domain for e in history_entities}
    areas_said = named_areas(registry, words)

    tiers: list[list[tuple[float, str, Entity]]] = [[] for _ in range(6)]
    area_words = {a.id: frozenset(normalize_name(a.name).split())
                  for a in registry.areas.values()}
    for entity in registry.entities():
        coverage, distinctive = name_match(entity, words,
                                            area_words.get(entity.area or "", frozenset()))
        domain_fits = not domains or entity.domain in domains
        if coverage >= 1.0:
            tier = 1
        elif entity.area in areas_said and domain_fits:
            tier = 2
        elif area is not None and entity.area == area and domain_fits:
            tier = 3
        elif domains and entity.domain in domains and not areas_said:
            tier = 4
        elif distinctive:
            tier = 5
        else:
            continue
        tiers[tier].append((-coverage, entity.entity_id, entity))

    chosen: dict[str, Entity] = {e.entity_id: e for e in history_entities}
    if tiers[1] or tiers[3]:
        # A named device, or fitting ones where the speaker is: "anywhere" only adds noise.
        tiers[4] = []
    if tiers[1]:
        tiers[5] = []
    for ranked in tiers:
        for _, entity_id, entity in sorted(ranked, key=lambda t: (t[0], t[1])):
            if len(chosen) >= limit:
                return list(chosen.values())
            chosen.setdefault(entity_id, entity)
    if not chosen and not domains:  # a domain nobody here has ("play music") gets nothing
        for entity in sorted(
                (e for e in registry.entities() if e.domain in OVERVIEW_DOMAINS),
                key=lambda e: (e.area != area, OVERVIEW_DOMAINS.index(e.domain), e.entity_id)
        )[:limit]:
            chosen[entity.entity_id] = entity
    return list(chosen.values())


def implied_domains(words: Iterable[str]) -> set[str]:
    found = set(words)
    return {domain for domain, vocabulary in DOMAIN_WORDS.items() if vocabulary & found}


def _history_entities(registry: DeviceRegistry, calls: Sequence[ToolCall]) -> list[Entity]:
    """Entities named by earlier calls, newest first."""
    found: dict[str, Entity] = {}
    for call in reversed(calls):
        for value in call.args.values():
            for item in value if isinstance(value, list) else [value]:
                entity = registry.get(item) if isinstance(item, str) else None
                if entity is not None:
                    found.setdefault(entity.entity_id, entity)
    return list(found.values())[:MAX_HISTORY_ENTITIES]


def named_areas(registry: DeviceRegistry, words: tuple[str, ...]) -> set[str]:
    floors = {floor.id for floor in registry.floors.values()
              if any(name_coverage(name, words) >= 1.0 for name in (floor.name, *floor.aliases))}
    return {a.id for a in registry.areas.values()
            if a.floor in floors or any(name_coverage(name, words) >= 1.0
                                        for name in (a.name, a.id, *a.aliases))}


def name_match(entity: Entity, words: tuple[str, ...],
                area_words: frozenset[str]) -> tuple[float, bool]:
    """Best share of a name's words found in the utterance, and whether a distinctive one
    was (not a generic word, not its area's name: areas have their own tier)."""
    best = 0.0
    distinctive = False
    for name in (entity.name, *entity.aliases):
        best = max(best, name_coverage(name, words))
        distinctive = distinctive or any(
            word not in GENERIC_WORDS and word not in area_words and _word_in(word, words)
            for word in normalize_name(name).split())
    return best, distinctive


def name_coverage(name: str, words: tuple[str, ...]) -> float:
    parts = normalize_name(name).split()
    if not parts or not words:
        return 0.0
    return sum(_word_in(part, words) for part in parts) / len(parts)


@lru_cache(maxsize=65_536)
def _word_in(word: str, words: tuple[str, ...]) -> bool:
    if word in words:
        return True
    if len(word) < 4:  # short words must match exactly: "tv" is not "to"
        return False
    return process.extractOne(word, words, scorer=fuzz.ratio, score_cutoff=WORD_MATCH) is not None
