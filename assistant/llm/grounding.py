"""Whether what the model proposes is grounded in what the user said.

A model, above all a small one, proposes actions on devices the request never named: it
repeats the last turn, or picks whatever is listed. A proposed target counts only when

- the utterance names it (its name or an alias, word for word up to small STT slips),
- the utterance names its area or floor, and either names no kind of device or names its
  kind ("the kitchen", "the kitchen lights"); room words that are part of a device name it
  says ("the living room lamp") name that device, not the room,
- the utterance names its kind ("the lights", "it's too dark"; "switch on" is a verb),
  no room, and nothing else
  that could tell devices apart (a word no device, room or command has: the "porch" of
  "the porch plug" in a home without a porch), and does not refer back to the previous
  turn, or
- it is a follow-up ("it", "too", "brighter"; not the "it" of "it's cold") to the devices
  of the previous turn, with no word that names something else, or
- the utterance sweeps ("everything", "all devices") and names no kind or place.

Sensitive devices are grounded by name, kind or follow-up only: a room or "everything" never
reaches a lock. A request that grounds no device at all is not about the home.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.llm.candidates import GENERIC_WORDS, implied_domains, name_coverage, named_areas
from assistant.registry import DeviceRegistry, Entity, normalize_name
from assistant.safety import SafetyPolicy

# Words that refer back to the devices of the previous turn.
REFERRING_WORDS = frozenset(
    "it its them they that those this these one ones too also again same other "
    "brighter dimmer darker louder quieter softer warmer cooler colder hotter more less back"
    .split())
# Words that say what to do, how much, or join the sentence: they tell no device apart.
COMMAND_WORDS = frozenset("""
a an the and or but to of for in on off at by with from into onto up down over out
i me my mine we us our you your it its is are was were be been being am do does did have has
can could would will shall should may might must please pls kindly thanks thank
turn switch set put make change get give let keep leave start stop pause play resume skip
next previous open close shut lock unlock arm disarm raise lower increase decrease reduce
what which how where who when why whats tell show list check see know find
now right away just still again already also too very bit little lot much some any
all every everything both each whole entire
here there room rooms house home place inside outside
high low higher lower more less max maximum min minimum full fully half quarter
percent percentage degrees degree level celsius fahrenheit
one two three four five six seven eight nine ten twenty thirty forty fifty hundred
hey hi hello okay ok yes no not please
""".split())
# "when" asks only before a verb like "is" or "does": "when the motion sensor turns on, turn on
# the light" is a rule to make, not a question.
_QUESTION = re.compile(r"^(what|which|whats|is|are|was|were|does|do|did|how|where|who|"
                       r"when(?= (is|are|was|were|do|does|did|will|would|can|could|should|has|"
                       r"have|had|s)\b)|why|tell me|show me|list|check)\b")
_REQUEST_AS_QUESTION = re.compile(r"^(can|could|would|will) (you|u)\b|^please\b")
_NUMBER = re.compile(r"^\d+([.,]\d+)?$")
# Tools that move a device one way, and words that ask for the other way: "turn everything
# off" answered with turn_on is no reading of the request, whatever the targets.
_OPPOSITES: dict[str, frozenset[str]] = {
    **dict.fromkeys(("turn_on", "open"), frozenset({"off", "close", "shut", "stop"})),
    **dict.fromkeys(("turn_off", "close"), frozenset({"on", "open", "start"})),
    "lock": frozenset({"unlock"}), "unlock": frozenset({"lock"}),
}
_SWEEP = re.compile(r"\b(everything|all (the )?(devices|things)|every (device|thing))\b")


def is_question(text: str) -> bool:
    """Whether the utterance asks about something rather than asking for something."""
    words = normalize_name(text)
    if _REQUEST_AS_QUESTION.match(words):
        return False
    return bool(_QUESTION.match(words)) or text.rstrip().endswith("?")


class Grounding:
    """What one utterance grounds, in a home, after a given previous turn."""

    def __init__(self, registry: DeviceRegistry, policy: SafetyPolicy, text: str,
                 previous: Iterable[str] = ()) -> None:
        self.registry = registry
        self.policy = policy
        self.words = tuple(normalize_name(text).split())
        # "switch on/off" is a verb, not the kind "switch"
        self.domains = implied_domains(w for i, w in enumerate(self.words) if not (
            w == "switch" and self.words[i + 1:i + 2] in (("on",), ("off",))))
        self.areas = named_areas(registry, self.words)
        self.previous = frozenset(previous)
        # the devices whose name or an alias the utterance says, word for word
        self.named = {e.entity_id: e for e in registry.entities()
                      if any(name_coverage(name, self.words) >= 1.0
                             for name in (e.name, *e.aliases))}
        self.rooms = self._rooms_outside_names(registry)
        # "it's dark", "it is cold": a dummy "it" refers to nothing
        referring = [w for i, w in enumerate(self.words) if not (
            w == "it" and self.words[i + 1:i + 2] in (("s",), ("is",), ("was",)))]
        self.refers_back = bool(REFERRING_WORDS & set(referring))
        self.sweeps = bool(_SWEEP.search(" ".join(self.words)))
        self.qualified = self._has_unknown_word()

    def _rooms_outside_names(self, registry: DeviceRegistry) -> set[str]:
        """The named areas, less those whose words only appear inside a device name the
        utterance says ("the living room lamp" names a lamp, not the living room)."""
        in_names: set[str] = set()
        for entity in self.named.values():
            for name in (entity.name, *entity.aliases):
                if name_coverage(name, self.words) >= 1.0:
                    in_names.update(normalize_name(name).split())
        rooms = set()
        for area_id in self.areas:
            area = registry.areas.get(area_id)
            phrases = [p for p in ((area.name, area.id, *area.aliases) if area else ())
                       if name_coverage(p, self.words) >= 1.0]
            if not phrases or any(not set(normalize_name(p).split()) <= in_names
                                  for p in phrases):
                rooms.add(area_id)
        return rooms

    def _has_unknown_word(self) -> bool:
        known: set[str] = set(COMMAND_WORDS) | GENERIC_WORDS
        for entity in self.registry.entities():
            for name in (entity.name, *entity.aliases):
                known.update(normalize_name(name).split())
        for place in (*self.registry.areas.values(), *self.registry.floors.values()):
            for name in (place.name, place.id, *place.aliases):
                known.update(normalize_name(name).split())
        return any(len(word) > 2 and word not in known and not _NUMBER.match(word)
                   for word in self.words)

    def reason(self, entity: Entity) -> str | None:
        """How the utterance grounds ``entity`` ("name", "follow-up", "kind", "area",
        "sweep"), or None when it does not."""
        if entity.entity_id in self.named:
            return "name"
        if entity.entity_id in self.previous and self.refers_back and not self.qualified:
            return "follow-up"
        kind_said = entity.domain in self.domains
        # A kind alone grounds every device of it, unless a room narrows it (the area rule
        # below) or the words refer back to the previous turn's devices ("brighter").
        if kind_said and not self.qualified and not self.areas \
                and not (self.refers_back and self.previous):
            return "kind"
        if self.policy.is_sensitive(entity):
            return None  # a room or "everything" never grounds a lock or a garage door
        if entity.area in self.rooms and (kind_said or not self.domains):  # floors included
            return "area"
        if self.sweeps and not self.domains and not self.areas:
            return "sweep"
        return None

    def contradicts(self, tool: str) -> bool:
        """Whether the request asks for the opposite of what ``tool`` does."""
        return bool(_OPPOSITES.get(tool, frozenset()) & set(self.words))

    def about_the_home(self) -> bool:
        """Whether the utterance names any device, kind of device, room or floor here, or
        refers back to the previous turn's devices."""
        if self.areas or self.sweeps or (self.previous and self.refers_back
                                         and not self.qualified):
            return True
        if self.domains & {e.domain for e in self.registry.entities()}:
            return True
        return bool(self.named)

