"""Fast path: hassil + home-assistant-intents, with slot lists built live from the registry.

A matched intent becomes the same ``ToolCall`` objects the LLM produces, so one executor
serves both. Targets are resolved like Home Assistant does (name, area, floor, domain,
device class), with the speaker's area as context; when a name could mean several devices in
different rooms the answer is a question, never a guess.

Besides each device's own names, the ``name`` list holds derived ones ("the speaker", "the
heating", see ``assistant.understanding.aliases``); those must point at exactly one device
once the room is taken into account. Which intents are matched and what each becomes is in
``assistant.understanding.routes``; our own templates add common phrasings the upstream set
lacks, including commands without any target ("pause", "louder"), which go to the one device
that can be meant or else to a question.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from hassil import RecognizeResult

from assistant.messages import ToolCall
from assistant.registry import DeviceRegistry, Entity, RegistryChange, normalize_name
from assistant.safety import SafetyPolicy
from assistant.understanding.routes import REPLIES, ROUTES, TARGET_SLOTS, Route, load_language
from assistant.understanding.slot_lists import AREA_SEPARATOR, Lists, Snapshot, build_lists
from assistant.understanding.words import words_for

log = logging.getLogger(__name__)

# "21°C" -> "21 degrees C" where the language's templates spell the unit as a word.
_DEGREE_SIGN = re.compile(r"\s*°\s*")
# Building the lists of a home of thousands of devices takes seconds on a small board.
PREPARE_TIMEOUT_S = 60.0
CHANGE_WAIT_S = 60.0  # how long ``changes_settled`` waits for a change before it looks again
# Devices that serve the whole home or follow the listener around: a command without a target
# may mean one in another room, so the speaker's room is a preference for them, not a filter.
_FOLLOW_THE_SPEAKER = frozenset({"media_player", "vacuum", "climate"})


@dataclass(frozen=True, slots=True)
class FastPathResult:
    """``calls`` to run, or a ``reply`` (a question or an answer), or neither (no match)."""

    intent: str | None = None
    calls: tuple[ToolCall, ...] = ()
    reply: str | None = None
    # The intent matched but its targets did not resolve: ``reply`` explains or asks.
    unresolved: bool = False
    clarification: bool = False
    # Filled for a clarification: the entities the user may have meant.
    candidates: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return self.intent is not None


NO_MATCH = FastPathResult()


@dataclass
class _Targets:
    # the spoken name, normalised
    name: str | None = None
    # an area the user said; the speaker's own area arrives separately
    area: str | None = None
    floor: str | None = None
    # the speaker's area, copied in by a template that needs one ("turn on the lights")
    context_area: str | None = None
    domains: set[str] = field(default_factory=set)
    device_classes: set[str] = field(default_factory=set)
    # what the matched template allows a named device to be (its requires_context)
    name_domains: set[str] = field(default_factory=set)
    name_classes: set[str] = field(default_factory=set)
    # a question about those in a state ("which lights are on")
    state_asked: bool = False


class _Together(enum.Enum):
    """When several devices fit, may they all be meant?"""

    SAME_AREA = enum.auto()  # yes when they share one area (a name they share)
    SPEAKER_AREA = enum.auto()  # yes when they are all in the speaker's area
    NEVER = enum.auto()  # no: ask which one


class FastPath:
    def __init__(self, registry: DeviceRegistry, language: str = "en", *,
                 policy: SafetyPolicy | None = None) -> None:
        self.registry = registry
        self.language = language
        self._own_policy = policy is None
        self.policy = policy or SafetyPolicy(registry)
        loaded = load_language(language)
        self.words = words_for(language)
        self._intents = loaded.intents
        self._routes = {**ROUTES, **loaded.routes}
        # the registry's changes of names, rooms and devices so far, and the lists built
        # as of one of them
        self._generation = 0
        self._lists: Lists | None = None
        self._building: asyncio.Future[Lists] | None = None
        self._changed = asyncio.Event()
        self._unsubscribe = registry.subscribe(self._on_registry_change)

    def close(self) -> None:
        self._unsubscribe()
        if self._own_policy:
            self.policy.close()

    def _on_registry_change(self, change: RegistryChange) -> None:
        if change.structure:
            self._generation += 1  # the lists are rebuilt before they are used again
            self._changed.set()

    # -- lists ---------------------------------------------------------------------------

    @property
    def lists(self) -> Lists:
        """The lists as of the registry now: built here when it changed since."""
        if self._lists is None or self._lists.generation != self._generation:
            started = time.perf_counter()
            self._lists = build_lists(Snapshot.of(self.registry, self._generation),
                                      self._intents, self.words, self.language)
            log.debug("slot lists and template filter rebuilt in %.1f ms",
                      (time.perf_counter() - started) * 1000)
        return self._lists

    async def prepare(self, timeout_s: float = PREPARE_TIMEOUT_S) -> None:
        """Bring the lists up to date on a thread, so that the event loop keeps running
        meanwhile (a request then finds them built). Changes while one is built get
        another, a few times at most; what is still stale is built when needed."""
        for _ in range(3):
            if self._lists is not None and self._lists.generation == self._generation:
                return
            if self._building is None or self._building.done():
                snapshot = Snapshot.of(self.registry, self._generation)
                self._building = asyncio.ensure_future(asyncio.to_thread(
                    build_lists, snapshot, self._intents, self.words, self.language))
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation that
                # comes as the build ends, and the daemon's stop then waits for ever
                async with asyncio.timeout(timeout_s):
                    built = await asyncio.shield(self._building)
            except TimeoutError:
                log.warning("the fast path's lists took over %.0f s to build", timeout_s)
                return
            if self._lists is None or built.generation > self._lists.generation:
                self._lists = built

    async def changes_settled(self, quiet_s: float) -> None:
        """Return once the lists are out of date and the registry has had no change of
        names, rooms or devices for ``quiet_s`` (a discovery has settled)."""
        while self._lists is not None and self._lists.generation == self._generation:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHANGE_WAIT_S):
                    await self._changed.wait()
        seen = -1
        while seen != self._generation:
            seen = self._generation
            await asyncio.sleep(quiet_s)  # a quiet time, not an event

    # -- recognition ---------------------------------------------------------------------

    def recognize(self, text: str, area: str | None = None) -> RecognizeResult | None:
        lists = self.lists
        context: dict[str, Any] = {}
        if area and (known := self.registry.areas.get(area)):
            context["area"] = {"value": known.id, "text": known.name}
        text = self.spoken_form(text)
        return lists.template_filter.recognize_best(
            text, slot_lists=lists.slots, intent_context=context, language=self.language,
            best_slot_name="name",
        )

    def spoken_form(self, text: str) -> str:
        """The text as ``recognize`` matches it; the spans of its slots index this form."""
        # Case-folded: our templates' ``required_keywords`` compare words as written.
        if self.words.degree_word:
            text = _DEGREE_SIGN.sub(f" {self.words.degree_word} ", text)
        return text.casefold()

    def names_a_place(self, text: str) -> bool:
        """Whether ``text`` (an article allowed) is an area's or a floor's spoken name."""
        said = self.words.without_article(normalize_name(text))
        slots = self.lists.slots
        return any(normalize_name(value.text_in.text) == said
                   for key in ("area", "floor") for value in slots[key].values)

    def understand(self, text: str, area: str | None = None) -> FastPathResult:
        return self.understand_match(self.recognize(text, area), text, area)

    def understand_match(self, result: RecognizeResult | None, text: str,
                         area: str | None = None) -> FastPathResult:
        """``understand`` for a match already made of ``text``."""
        if result is None:
            return NO_MATCH
        try:
            return self._to_calls(result, text, area)
        except (KeyError, TypeError, ValueError):
            log.debug("intent %s matched without usable slots: %r", result.intent.name, text)
            return NO_MATCH
        except _Unresolved as exc:
            return FastPathResult(intent=result.intent.name, reply=exc.reply, unresolved=True,
                                  clarification=exc.clarification, candidates=exc.candidates)

    # -- intent -> tool calls ------------------------------------------------------------

    def _to_calls(self, result: RecognizeResult, text: str, area: str | None) -> FastPathResult:
        intent = result.intent.name
        if intent in REPLIES:
            return FastPathResult(intent, reply=REPLIES[intent]())
        route = self._routes.get(intent)
        if route is None:
            return NO_MATCH
        if not route.targeted:  # a place the speaker did not say is not an argument
            spoken = {name: slot.value for name, slot in result.entities.items()
                      if slot.text_span is not None or name not in TARGET_SLOTS}
            return FastPathResult(intent, (ToolCall(route.tool, route.args(spoken)),))
        args = route.args({name: slot.value for name, slot in result.entities.items()})
        targets = self._targets(result)
        ids = self._resolve(targets, route, text, area)
        return FastPathResult(intent, (ToolCall(_lock_tool(route.tool, targets, ids),
                                                {"entity_ids": ids, **args}),))

    def _targets(self, result: RecognizeResult) -> _Targets:
        slots = result.entities
        context = result.context or {}
        targets = _Targets()
        if "name" in slots:
            targets.name = str(slots["name"].value).split("|")[0]
        if "area" in slots:
            if slots["area"].text_span is None:  # copied from the context, not spoken
                targets.context_area = str(slots["area"].value)
            else:
                targets.area = str(slots["area"].value)
        if "floor" in slots:
            targets.floor = str(slots["floor"].value)
        targets.state_asked = "state" in slots
        for key, bucket in (("domain", targets.domains), ("device_class", targets.device_classes),
                            ("cover_classes", targets.device_classes)):
            for source in (slots.get(key).value if key in slots else None, context.get(key),
                           _slot_data(result, key)):
                _collect(bucket, source)
        required = getattr(result.intent_data, "requires_context", None) or {}
        _collect(targets.name_domains, required.get("domain"))
        _collect(targets.name_classes, required.get("device_class"))
        return targets

    def _resolve(self, targets: _Targets, route: Route, text: str,
                 speaker_area: str | None) -> list[str]:
        """Entity ids for the targets, or _Unresolved with a question / explanation."""
        everything = self.words.says_all(text)
        if targets.name is not None:
            found, derived = self._named(targets, route)
            if derived and self.words.without_article(normalize_name(text)) == targets.name:
                # "music" or "heat" on its own is a fragment, not a request to switch it on
                raise _NotACommand(text)
            found = self._in_place(found, targets) or self._serving(found, targets)
            if everything and found:
                return [e.entity_id for e in found]
            return self._choose(found, targets, speaker_area, route.prefer_states,
                                _Together.NEVER if derived else _Together.SAME_AREA)
        kind_said = bool(targets.domains or targets.device_classes)
        if not targets.domains:
            targets.domains.update(route.domains)
            targets.device_classes.update(route.device_classes)
        if route.tool == "get_state" and "cover" in targets.domains:
            # "is the window open" asks a window's contact sensor as much as a motorised one
            targets.domains.add("binary_sensor")
            targets.device_classes.update(_SENSED_AS.get(c, c) for c in set(targets.device_classes))
        # As the lists were built: what places a device (its domain, class and area) changes
        # them, but its state is read from the registry once the place has narrowed them.
        found = [e for e in self._of_domains(targets.domains) if _fits(e, targets)]
        follows_speaker = bool(targets.domains) and targets.domains <= _FOLLOW_THE_SPEAKER
        if targets.context_area and not follows_speaker and not targets.floor:
            targets.area = targets.context_area  # "turn on the lights": the lights here
        if targets.area or targets.floor or everything:
            found = self._current(self._in_place(found, targets)
                                  or self._serving(found, targets))
            if not found:
                raise _Unresolved(f"I couldn't find {self._describe(targets)}.")
            if not kind_said and route.tool != "get_state":
                # "everything" or a whole room never sweeps in a lock or a garage door: those
                # are acted on when named or asked for by their kind ("lock all the doors").
                found = [e for e in found if self.policy.may_sweep(e)]
                if not found:
                    raise _Unresolved(f"I couldn't find {self._describe(targets)}.")
            # Questions report every device that fits; actions said in the singular act on one.
            # A plural over a name several rooms share ("the bedroom lights") is not enough.
            several = everything or (self.words.says_plural_noun(text)
                                     and AREA_SEPARATOR not in (targets.area or ""))
            if len(found) > 1 and route.tool != "get_state" and not several:
                return self._one_in_place(found, targets, text, route.prefer_states)
            return [e.entity_id for e in found]
        if route.tool == "get_state" and kind_said and found:
            # "Which lights are on" asks about the home; "what's the humidity" about this room
            # when it has one, else the home.
            here = [e for e in found if speaker_area and e.area == speaker_area]
            return [e.entity_id for e in (found if targets.state_asked else here or found)]
        # No place was said: never all devices of a kind, unless they are all in this room.
        return self._choose(self._current(found), targets, speaker_area, route.prefer_states,
                            _Together.SPEAKER_AREA)

    def _of_domains(self, domains: set[str]) -> list[Entity]:
        """The devices of those domains (every device when none is given) in the registry's
        order, as they were when the slot lists were built."""
        if not domains:
            return self.registry.entities()
        return [entity for _, entity in sorted(
            (entry for domain in domains for entry in self.lists.by_domain.get(domain, ())),
            key=lambda entry: entry[0])]

    def _current(self, found: list[Entity]) -> list[Entity]:
        """The devices as the registry has them now (their states)."""
        return [e for e in map(self.registry.get, (e.entity_id for e in found)) if e is not None]

    def _one_in_place(self, found: list[Entity], targets: _Targets, text: str,
                      prefer_states: frozenset[str]) -> list[str]:
        """A singular request in a room with several fitting devices: the one that is active,
        the one whose name has the noun said, the room's own ("Den Light"), else ask."""
        said = self.words.singular_nouns_in(normalize_name(text))
        room = normalize_name(self.registry.area_name(targets.area) or "") \
            if targets.area and AREA_SEPARATOR not in targets.area else ""
        narrowings = (
            lambda e: e.state in prefer_states,
            lambda e: bool(said & set(normalize_name(e.name).split())),
            lambda e: bool(room) and room in normalize_name(e.name),
        )
        for keep in narrowings:
            narrowed = [e for e in found if keep(e)]
            if narrowed:
                found = narrowed
            if len(found) == 1:
                return [found[0].entity_id]
        raise _Unresolved(self._which_question(found, targets), clarification=True,
                          candidates=tuple(e.entity_id for e in found))

    def _named(self, targets: _Targets, route: Route) -> tuple[list[Entity], bool]:
        """Devices called ``targets.name`` that the template and tool accept, and whether
        only a derived name matched them (own names win over derived ones)."""
        for index, derived in ((self.lists.by_name, False), (self.lists.by_derived_name, True)):
            found = [e for e in map(self.registry.get, index.get(targets.name or "", ()))
                     if e is not None and _may_be_named(e, targets, route)]
            if found:
                return found, derived
        return [], False

    def _in_place(self, found: list[Entity], targets: _Targets) -> list[Entity]:
        """Those in the area (or one of the areas a shared name stands for) and on the floor
        that were said: "the bedroom lights upstairs"."""
        if targets.area:
            areas = targets.area.split(AREA_SEPARATOR)
            found = [e for e in found if e.area in areas]
        if targets.floor:
            found = [e for e in found if self.registry.floor_of(e.area) == targets.floor]
        return found

    def _serving(self, found: list[Entity], targets: _Targets) -> list[Entity]:
        """A vacuum cleans rooms other than the one it docks in: "clean the kitchen" is for
        the vacuums on the kitchen's floor, or the home's where floors are not known (a
        vacuum does not climb stairs)."""
        if not found or any(e.domain != "vacuum" for e in found):
            return []
        floors = {targets.floor} if targets.floor else {
            self.registry.floor_of(a) for a in (targets.area or "").split(AREA_SEPARATOR)}
        if None in floors:
            return found
        return [e for e in found if self.registry.floor_of(e.area) in floors]

    def _choose(self, found: list[Entity], targets: _Targets, speaker_area: str | None,
                prefer_states: frozenset[str], together: _Together) -> list[str]:
        """Narrow several candidates to the speaker's area, then to those in a preferred state
        (the one that plays); ask when that still leaves several that are not meant together."""
        if not found:
            raise _Unresolved(f"I couldn't find {self._describe(targets)}.")
        here = [e for e in found if speaker_area and e.area == speaker_area]
        if len(found) > 1 and here:
            found = here
        active = [e for e in found if e.state in prefer_states]
        if len(found) > 1 and active:
            found = active
        if len(found) == 1 or _meant_together(found, together, in_speaker_area=bool(here)):
            return [e.entity_id for e in found]
        raise _Unresolved(self._which_question(found, targets), clarification=True,
                          candidates=tuple(e.entity_id for e in found))

    def _which_question(self, found: list[Entity], targets: _Targets) -> str:
        options = [f"the {e.name} in the {self.registry.area_name(e.area) or 'unassigned area'}"
                   for e in found[:6]]
        listing = ", ".join(options[:-1]) + f" or {options[-1]}"
        more = f" (and {len(found) - 6} more)" if len(found) > 6 else ""
        return f"Which one do you mean: {listing}{more}?"

    def _describe(self, targets: _Targets) -> str:
        what = targets.name or " or ".join(sorted(targets.device_classes or targets.domains)) \
            or "a device"
        where = " or ".join(map(str, map(self.registry.area_name,
                                         targets.area.split(AREA_SEPARATOR)))) \
            if targets.area else (
            self.registry.floors[targets.floor].name if targets.floor in self.registry.floors
            else None)
        return f"{what.replace('_', ' ')}" + (f" in the {where}" if where else "")


def _lock_tool(tool: str, targets: _Targets, ids: list[str]) -> str:
    """Home Assistant's lock templates ("lock the front door") are HassTurnOn/Off; only they
    become lock/unlock. A plain "turn off the front door" stays turn_off, which no lock has."""
    said_lock = "lock" in targets.domains or "lock" in targets.name_domains
    if said_lock and tool in _LOCK_TOOLS and ids and all(i.startswith("lock.") for i in ids):
        return _LOCK_TOOLS[tool]
    return tool


_LOCK_TOOLS = {"turn_on": "lock", "turn_off": "unlock"}
# A cover's device class as its contact sensor's ("garage" door: "garage_door").
_SENSED_AS = {"garage": "garage_door"}


class _NotACommand(ValueError):
    """The words matched a template but do not ask for anything."""


class _Unresolved(Exception):
    def __init__(self, reply: str, clarification: bool = False,
                 candidates: tuple[str, ...] = ()) -> None:
        super().__init__(reply)
        self.reply = reply
        self.clarification = clarification
        self.candidates = candidates


def _collect(bucket: set[str], source: Any) -> None:
    if isinstance(source, str) and source:
        bucket.add(source)
    elif isinstance(source, list):
        bucket.update(str(v) for v in source)


def _meant_together(found: list[Entity], together: _Together, in_speaker_area: bool) -> bool:
    if together is _Together.SAME_AREA:
        return len({e.area for e in found}) == 1
    return together is _Together.SPEAKER_AREA and in_speaker_area


def _may_be_named(entity: Entity, targets: _Targets, route: Route) -> bool:
    """Whether a device with the spoken name fits the template and the tool."""
    return ((not targets.name_domains or entity.domain in targets.name_domains)
            and (not targets.name_classes or entity.device_class in targets.name_classes)
            and (not route.domains or entity.domain in route.domains))


def _fits(entity: Entity, targets: _Targets) -> bool:
    if targets.domains and entity.domain not in targets.domains:
        return False
    if targets.device_classes and entity.device_class not in targets.device_classes:
        # a climate entity answers temperature questions without a device class
        return entity.domain == "climate" and "temperature" in targets.device_classes
    return bool(targets.domains or targets.device_classes)


def _slot_data(result: RecognizeResult, key: str) -> Any:
    """Fixed slots declared by the matched template (e.g. ``slots: {domain: light}``)."""
    data = getattr(result.intent_data, "slots", None) or {}
    return data.get(key)
