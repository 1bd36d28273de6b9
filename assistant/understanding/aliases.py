"""Derived spoken names: what people call a device or a room besides the name it was given.

The "Smart Speaker" is "the speaker", the "Kitchen Thermostat" in the kitchen is "the
thermostat", any climate entity is "the heating"; the "Coastal Garden" is "the garden" and the
"Living Room/Kitchen" is both "the living room" and "the kitchen". The fast path puts device
names into its ``name`` slot list as a second tier: a real name or alias always wins over a
derived one, and a derived name must come down to a single device (after the room is taken
into account) or the user is asked which one they meant. Room names join the ``area`` list
only where they fit one room.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from assistant.registry import Entity, normalize_name

# Only devices one acts on get derived names; a sensor's leftover ("temperature", "motion")
# is a word the upstream questions already use on their own.
DERIVED_DOMAINS = frozenset({
    "light", "switch", "fan", "cover", "valve", "lock", "climate", "media_player", "vacuum",
    "humidifier", "water_heater", "siren", "input_boolean",
})

# Bare kind words the upstream templates read as "every such device in the area" ("turn off
# the light in the kitchen"); as one device's derived name they would narrow that to one.
_AREA_KIND_WORDS = frozenset({
    "light", "lights", "lamp", "lamps", "lighting", "fan", "fans", "switch", "switches",
    "door", "doors", "window", "windows", "blind", "blinds", "curtain", "curtains", "shade",
    "shades", "shutter", "shutters", "awning", "awnings", "gate", "gates",
})
# Words that say what the device is sold as rather than what it is.
_FILLER = re.compile(r"^(my|the)\s+|\bsmart\s+")
# Trailing words that only repeat the kind of device: "Fountain Switch" is "the fountain",
# and "the reading light" is the "Reading Lamp" (the light templates say "{name} light").
_KIND_SUFFIXES: dict[str, tuple[str, ...]] = {
    "light": ("light", "lights", "lamp", "lamps"),
    "switch": ("switch", "plug", "outlet", "socket", "relay", "controller"),
}


def _cue(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b({pattern})\b")


class _Kind(NamedTuple):
    """Words for a kind of device: for the whole domain, or only for devices of
    ``device_class`` or whose name has ``cue``; for climate entities, only when they can
    run ``hvac_mode`` (an air conditioner is not "the heating")."""

    domain: str
    words: tuple[str, ...]
    device_class: str | None = None
    cue: re.Pattern[str] | None = None
    hvac_mode: str | None = None

    def applies(self, entity: Entity, names: set[str]) -> bool:
        if entity.domain != self.domain:
            return False
        if self.hvac_mode is not None:
            modes = entity.capabilities.get("hvac_modes") or ()
            return not modes or self.hvac_mode in modes or "heat_cool" in modes
        if self.device_class is None and self.cue is None:
            return True
        return (self.device_class is not None and entity.device_class == self.device_class) \
            or (self.cue is not None and any(self.cue.search(n) for n in names))


_KINDS = (
    _Kind("media_player", ("tv", "television"), "tv", _cue("tv|television|projector")),
    _Kind("media_player", ("speaker", "music", "audio"), "speaker",
          _cue("speakers?|sonos|sound ?bar|sound system|homepod|echo")),
    _Kind("climate", ("thermostat",)),
    _Kind("climate", ("heating", "heater", "heat"), hvac_mode="heat"),
    _Kind("climate", ("ac", "a c", "air conditioning", "air conditioner"), hvac_mode="cool"),
    _Kind("vacuum", ("vacuum", "vacuum cleaner", "robot vacuum", "robot")),
    _Kind("valve", ("valve", "water valve", "water")),
    _Kind("valve", ("sprinkler", "sprinklers", "sprinkler system", "irrigation"),
          cue=_cue("sprinklers?|irrigation|watering")),
    _Kind("lock", ("lock", "door lock", "door")),
    _Kind("cover", ("garage", "garage door"), "garage", _cue("garage door")),
)


def derived_names(entity: Entity, area_names: Iterable[str],
                  reserved: frozenset[str] = frozenset(),
                  kind_words: frozenset[str] = frozenset(),
                  place_links: frozenset[str] = frozenset()) -> set[str]:
    """Normalised names for ``entity`` beyond its own. ``area_names``: its area's names;
    ``reserved``: normalised area and floor names, which a derived name must not shadow
    ("the kitchen lights" are the lights of the kitchen, not the "Kitchen Light");
    ``kind_words``: the language's device nouns, which a shortened name must not be either
    ("la luce" in a room is every light there, not the "Luce Cucina"); ``place_links``: the
    words that tie a name to its room, which a shortened name must not end with."""
    if entity.domain not in DERIVED_DOMAINS:
        return set()
    own = {normalize_name(n) for n in (entity.name, *entity.aliases)} - {""}
    places = [p for p in map(normalize_name, area_names) if p]
    suffixes = _KIND_SUFFIXES.get(entity.domain, ())
    shorter: set[str] = set()
    for name in own:
        shorter |= _shortened(name, places, suffixes)
    shorter = {s for s in shorter
               if s not in _AREA_KIND_WORDS and s not in kind_words
               and s.rpartition(" ")[2] not in place_links and any(c.isalpha() for c in s)}
    if entity.domain in _PART_NAMED_DOMAINS:
        shorter |= {part for name in own for part in _end_parts(name)}
    kinds = {word for kind in _KINDS if kind.applies(entity, own) for word in kind.words}
    return (shorter | kinds | _plurals(own, places, reserved)) - own - reserved


# A home has one or two robot vacuums, called by the brand or by the part of the home each
# serves: the "Roborock Downstairs" is "the Roborock" and "the downstairs vacuum".
_PART_NAMED_DOMAINS = frozenset({"vacuum"})


def _end_parts(name: str) -> set[str]:
    """The leading and trailing words of a name of several words."""
    words = name.split()
    return {" ".join(words[:i]) for i in range(1, len(words))} | \
        {" ".join(words[i:]) for i in range(1, len(words))}


def _plurals(names: set[str], places: list[str], reserved: frozenset[str]) -> set[str]:
    """"the smart curtains" for the "Smart Curtain"; not where the name is a room plus a kind
    ("the kitchen lights" are every light in the kitchen)."""
    found = set()
    for name in names:
        head, _, last = name.rpartition(" ")
        if head and head not in places and head not in reserved and last.isalpha():
            found.add(f"{head} {_plural(last)}")
    return found


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _shortened(name: str, places: list[str], suffixes: tuple[str, ...]) -> set[str]:
    """``name`` without filler words, without its area's name at either end and without a
    trailing kind word, in every combination."""
    found: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        candidates = [_FILLER.sub("", current)]
        for place in places:
            if current.startswith(place + " "):
                candidates.append(current[len(place) + 1:])
            if current.endswith(" " + place):
                candidates.append(current[:-len(place) - 1])
        for suffix in suffixes:
            if current.endswith(" " + suffix):
                candidates.append(current[:-len(suffix) - 1])
        for candidate in candidates:
            if candidate and candidate != current and candidate not in found:
                found.add(candidate)
                todo.append(candidate)
    return found


# A room's last word alone that names no room in particular ("the room", "the house").
_GENERIC_PLACE_WORDS = frozenset({
    "room", "rooms", "area", "zone", "space", "house", "home", "floor", "level",
})
_COMPOUND_PLACE = re.compile(r"\s*(?:/|&|\+|,|\band\b)\s*")


def derived_area_names(areas: Mapping[str, Iterable[str]],
                       taken: frozenset[str] = frozenset(),
                       place_links: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """Shorter normalised names per area id (``areas``: id -> its names): each part of a
    compound name and the trailing words of a longer one. A shorter name is kept only where
    exactly one area comes down to it and nothing in ``taken`` (the home's own names) or any
    area's own name is spoken so — "the bedroom" among a master and a guest bedroom stays a
    question for the templates, never a guess."""
    derived: dict[str, set[str]] = defaultdict(set)
    for candidate, claimed_by in _claims(areas, taken, place_links).items():
        if len(claimed_by) == 1:
            derived[next(iter(claimed_by))].add(candidate)
    return dict(derived)


def shared_area_names(areas: Mapping[str, Iterable[str]],
                      taken: frozenset[str] = frozenset(),
                      place_links: frozenset[str] = frozenset()) -> dict[str, tuple[str, ...]]:
    """Names that stand for several areas at once (name -> area ids): "the bedroom" for
    "Bedroom 1" and "Bedroom 2", "outside" for the garden and the terrace. The fast path
    acts on such a place only where one device fits in all of them, or all were asked for."""
    shared = {name: tuple(sorted(ids)) for name, ids in _claims(areas, taken, place_links).items()
              if len(ids) > 1}
    outdoor = tuple(sorted(area_id for area_id, names in areas.items()
                           if any(_OUTDOOR.search(n.casefold()) for n in names)))
    own = _own_names(areas)
    if outdoor:
        shared.update({word: outdoor for word in _OUTSIDE_WORDS
                       if word not in own and word not in taken})
    return shared


# Areas under the open sky, which "outside" and "outdoors" stand for together.
_OUTDOOR = re.compile(r"\b(garden|yard|backyard|patio|terrace|porch|balcony|deck|lawn|"
                      r"courtyard|driveway|pool|outdoors?|outside)\b")
_OUTSIDE_WORDS = ("outside", "outdoors")
# "Bedroom 2", "Room B": a room told apart from its siblings by a number or a letter.
_NUMBERED = re.compile(r"^(.*\D)\s+(\d+|[a-z])$")


def _own_names(areas: Mapping[str, Iterable[str]]) -> set[str]:
    return {normalize_name(n) for names in areas.values() for n in names}


def _claims(areas: Mapping[str, Iterable[str]], taken: frozenset[str],
            place_links: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """Shorter names -> the areas that come down to each, without any area's own name or a
    name in ``taken``. Where a language ties a room's words with ``place_links``, the words
    before the first link are a name too ("Camera da letto" is "camera")."""
    own = _own_names(areas)
    claims: dict[str, set[str]] = defaultdict(set)
    for area_id, names in areas.items():
        for name in names:
            parts = [normalize_name(p) for p in _COMPOUND_PLACE.split(name.casefold())]
            parts = [p for p in parts if p]
            shorter = set(parts) if len(parts) > 1 else set()
            for part in parts:
                words = part.split()
                if words[-1] not in _GENERIC_PLACE_WORDS:
                    shorter |= {" ".join(words[i:]) for i in range(1, len(words))}
                if numbered := _NUMBERED.match(part):
                    shorter.add(numbered.group(1))
                if link := next((i for i, w in enumerate(words) if w in place_links), 0):
                    shorter.add(" ".join(words[:link]))
            for candidate in shorter:
                if any(c.isalpha() for c in candidate) and candidate not in own \
                        and candidate not in taken:
                    claims[candidate].add(area_id)
    return claims
