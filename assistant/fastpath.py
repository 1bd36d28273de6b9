"""Fast path: hassil + home-assistant-intents, with slot lists built live from the registry.

A matched intent becomes the same ``ToolCall`` objects the LLM produces, so one executor
serves both. Targets are resolved like Home Assistant does (name, area, floor, domain,
device class), with the speaker's area as context; when a name could mean several devices in
different rooms the answer is a question, never a guess.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from hassil import Intents, RecognizeResult, TextSlotList, recognize_best
from hassil.intents import TextSlotValue
from home_assistant_intents import get_intents

from assistant.messages import ToolCall
from assistant.registry import DeviceRegistry, Entity, RegistryChange, normalize_name

log = logging.getLogger(__name__)

# Intents this module maps onto tools; the rest are left out of matching entirely, which
# also keeps recognition fast (fewer templates to try).
SUPPORTED_INTENTS = frozenset({
    "HassTurnOn", "HassTurnOff", "HassToggle", "HassLightSet", "HassGetState",
    "HassClimateGetTemperature", "HassClimateSetTemperature", "HassSetPosition",
    "HassFanSetSpeed", "HassMediaPause", "HassMediaUnpause", "HassMediaNext",
    "HassMediaPrevious", "HassSetVolume", "HassSetVolumeRelative", "HassVacuumStart",
    "HassVacuumReturnToBase", "HassNevermind", "HassGetCurrentTime", "HassGetCurrentDate",
    "HassMediaPlayerMute",
})
_MEDIA_COMMANDS = {"HassMediaPause": "pause", "HassMediaUnpause": "play",
                   "HassMediaNext": "next", "HassMediaPrevious": "previous"}
_ALL_WORDS = re.compile(r"\b(all|every|everything|both)\b")
VOLUME_STEP_PCT = 10
BRIGHTNESS_STEP_PCT = 25


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
    name: str | None = None
    area: str | None = None
    floor: str | None = None
    domains: set[str] = field(default_factory=set)
    device_classes: set[str] = field(default_factory=set)


@cache
def _load_intents(language: str) -> Intents:
    data = get_intents(language)
    if data is None:
        raise ValueError(f"no intents for language {language!r}")
    data["intents"] = {k: v for k, v in data["intents"].items() if k in SUPPORTED_INTENTS}
    own = resources.files("assistant") / "data" / f"sentences_{language}.yaml"
    if own.is_file():
        extra = yaml.safe_load(own.read_text(encoding="utf-8"))
        _merge(data, extra)
    return Intents.from_dict(data)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add our own templates, lists and rules to the upstream intent data."""
    for intent_name, intent in extra.get("intents", {}).items():
        base["intents"].setdefault(intent_name, {"data": []})["data"].extend(intent["data"])
    for key in ("lists", "expansion_rules"):
        base.setdefault(key, {}).update(extra.get(key, {}))
    base["skip_words"] = [*base.get("skip_words", []), *extra.get("skip_words", [])]


class FastPath:
    def __init__(self, registry: DeviceRegistry, language: str = "en") -> None:
        self.registry = registry
        self.language = language
        self._intents = _load_intents(language)
        self._slot_lists: dict[str, TextSlotList] | None = None
        # name key -> entity ids, built with the slot lists
        self._by_name: dict[str, list[str]] = {}
        self._unsubscribe = registry.subscribe(self._on_registry_change)

    def close(self) -> None:
        self._unsubscribe()

    def _on_registry_change(self, change: RegistryChange) -> None:
        if change.structure:
            self._slot_lists = None  # rebuilt on the next utterance

    # -- slot lists ----------------------------------------------------------------------

    def _build_slot_lists(self) -> dict[str, TextSlotList]:
        names: list[TextSlotValue] = []
        by_name: dict[str, list[str]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        for entity in self.registry.entities():
            context = {"domain": entity.domain}
            if entity.device_class:
                context["device_class"] = entity.device_class
            key_suffix = f"|{entity.domain}|{entity.device_class or ''}"
            for spoken in _spoken_names(entity):
                key = normalize_name(spoken) + key_suffix
                by_name[key].append(entity.entity_id)
                if (spoken, key) not in seen:
                    seen.add((spoken, key))
                    names.append(TextSlotValue.from_tuple((spoken, key, context),
                                                          allow_template=False))
        areas = [TextSlotValue.from_tuple((spoken, area.id), allow_template=False)
                 for area in self.registry.areas.values()
                 for spoken in {area.name, *area.aliases}]
        floors = [TextSlotValue.from_tuple((spoken, floor.id), allow_template=False)
                  for floor in self.registry.floors.values()
                  for spoken in {floor.name, *floor.aliases}]
        self._by_name = dict(by_name)
        return {
            "name": TextSlotList(name="name", values=names),
            "area": TextSlotList(name="area", values=areas),
            "floor": TextSlotList(name="floor", values=floors),
        }

    # -- recognition ---------------------------------------------------------------------

    def recognize(self, text: str, area: str | None = None) -> RecognizeResult | None:
        if self._slot_lists is None:
            started = time.perf_counter()
            self._slot_lists = self._build_slot_lists()
            log.debug("slot lists rebuilt in %.1f ms",
                      (time.perf_counter() - started) * 1000)
        context: dict[str, Any] = {}
        if area and (known := self.registry.areas.get(area)):
            context["area"] = {"value": known.id, "text": known.name}
        return recognize_best(
            text, self._intents, slot_lists=self._slot_lists, intent_context=context,
            language=self.language, best_slot_name="name",
        )

    def understand(self, text: str, area: str | None = None) -> FastPathResult:
        result = self.recognize(text, area)
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
        slots = {name: slot.value for name, slot in result.entities.items()}
        targets = self._targets(result)

        def call(tool: str, domains: Iterable[str] | None = None, **args: Any) -> FastPathResult:
            if domains and not targets.domains:
                targets.domains.update(domains)
            ids = self._resolve(targets, text, area)
            return FastPathResult(intent, (ToolCall(tool, {"entity_ids": ids, **args}),))

        if intent == "HassNevermind":
            return FastPathResult(intent, reply="OK.")
        if intent == "HassGetCurrentTime":
            return FastPathResult(intent, reply=time.strftime("It is %H:%M."))
        if intent == "HassGetCurrentDate":
            return FastPathResult(intent, reply=time.strftime("Today is %A, %B %d, %Y."))
        if intent in {"HassTurnOn", "HassTurnOff", "HassToggle"}:
            return call({"HassTurnOn": "turn_on", "HassTurnOff": "turn_off",
                         "HassToggle": "toggle"}[intent])
        if intent == "HassLightSet":
            return call("set_light", ["light"], **_light_args(slots))
        if intent == "HassGetState":
            return call("get_state")
        if intent == "HassClimateGetTemperature":
            if not targets.domains and targets.name is None:
                targets.domains.update({"climate", "sensor"})
                targets.device_classes.add("temperature")
            return call("get_state")
        if intent == "HassClimateSetTemperature":
            return call("set_temperature", ["climate"], temperature=float(slots["temperature"]))
        if intent == "HassSetPosition":
            return call("set_position", ["cover", "valve"], position=int(slots["position"]))
        if intent == "HassFanSetSpeed":
            return call("set_fan_speed", ["fan"], percentage=int(slots["fan_speed"]))
        if intent in _MEDIA_COMMANDS:
            return call("media", ["media_player"], command=_MEDIA_COMMANDS[intent])
        if intent == "HassSetVolume":
            return call("set_volume", ["media_player"], volume_pct=int(slots["volume"]))
        if intent == "HassMediaPlayerMute":
            return call("set_volume", ["media_player"], volume_pct=0)
        if intent == "HassSetVolumeRelative":
            step = slots.get("volume_step") or ("down" if "volume_step_down" in slots else "up")
            pct = VOLUME_STEP_PCT if step == "up" else -VOLUME_STEP_PCT if step == "down" \
                else int(step)
            return call("set_volume", ["media_player"], volume_step_pct=pct)
        if intent in {"HassVacuumStart", "HassVacuumReturnToBase"}:
            return call("vacuum", ["vacuum"], command="start" if intent == "HassVacuumStart"
                        else "return_to_base")
        return NO_MATCH

    def _targets(self, result: RecognizeResult) -> _Targets:
        slots = result.entities
        context = result.context or {}
        targets = _Targets()
        if "name" in slots:
            targets.name = str(slots["name"].value)
        if "area" in slots:
            targets.area = str(slots["area"].value)
        if "floor" in slots:
            targets.floor = str(slots["floor"].value)
        for key, bucket in (("domain", targets.domains), ("device_class", targets.device_classes),
                            ("cover_classes", targets.device_classes)):
            for source in (slots.get(key).value if key in slots else None, context.get(key),
                           _slot_data(result, key)):
                if isinstance(source, str) and source:
                    bucket.add(source)
                elif isinstance(source, list):
                    bucket.update(str(v) for v in source)
        return targets

    def _resolve(self, targets: _Targets, text: str, speaker_area: str | None) -> list[str]:
        """Entity ids for the targets, or _Unresolved with a question / explanation."""
        registry = self.registry
        if targets.name is not None:
            candidates = [registry.get(i) for i in self._by_name.get(targets.name, ())]
            found = [e for e in candidates if e is not None]
            if targets.area:
                found = [e for e in found if e.area == targets.area] or found
            return self._pick_one_per_name(found, targets, speaker_area)
        found = [e for e in registry.entities() if _fits(e, targets)]
        if targets.area:
            found = [e for e in found if e.area == targets.area]
        elif targets.floor:
            found = [e for e in found if registry.floor_of(e.area) == targets.floor]
        elif not _ALL_WORDS.search(text.casefold()) and len({e.area for e in found}) > 1:
            here = [e for e in found if speaker_area and e.area == speaker_area]
            if here:
                found = here
            elif len(found) > 1:
                raise _Unresolved(self._which_question(found, targets), clarification=True,
                                  candidates=tuple(e.entity_id for e in found))
        if not found:
            raise _Unresolved(f"I couldn't find {self._describe(targets)}.")
        return [e.entity_id for e in found]

    def _pick_one_per_name(self, found: list[Entity], targets: _Targets,
                           speaker_area: str | None) -> list[str]:
        if len(found) <= 1 or len({e.area for e in found}) <= 1:
            if not found:
                raise _Unresolved(f"I couldn't find {self._describe(targets)}.")
            return [e.entity_id for e in found]
        here = [e for e in found if speaker_area and e.area == speaker_area]
        if here:
            return [e.entity_id for e in here]
        raise _Unresolved(self._which_question(found, targets), clarification=True,
                          candidates=tuple(e.entity_id for e in found))

    def _which_question(self, found: list[Entity], targets: _Targets) -> str:
        options = [f"the {e.name} in the {self.registry.area_name(e.area) or 'unassigned area'}"
                   for e in found[:6]]
        listing = ", ".join(options[:-1]) + f" or {options[-1]}"
        more = f" (and {len(found) - 6} more)" if len(found) > 6 else ""
        return f"Which one do you mean: {listing}{more}?"

    def _describe(self, targets: _Targets) -> str:
        what = targets.name.split("|")[0] if targets.name else (
            " or ".join(sorted(targets.device_classes or targets.domains)) or "a device")
        where = self.registry.area_name(targets.area) if targets.area else (
            self.registry.floors[targets.floor].name if targets.floor in self.registry.floors
            else None)
        return f"{what.replace('_', ' ')}" + (f" in the {where}" if where else "")


class _Unresolved(Exception):
    def __init__(self, reply: str, clarification: bool = False,
                 candidates: tuple[str, ...] = ()) -> None:
        super().__init__(reply)
        self.reply = reply
        self.clarification = clarification
        self.candidates = candidates


def _spoken_names(entity: Entity) -> set[str]:
    return {n for n in (entity.name, *entity.aliases) if normalize_name(n)}


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


def _light_args(slots: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "brightness" in slots or "brightness_level" in slots:
        args["brightness_pct"] = int(slots.get("brightness", slots.get("brightness_level")))
    if "brightness_step" in slots:
        args["brightness_step_pct"] = int(slots["brightness_step"])
    if "color" in slots:
        args["color"] = str(slots["color"])
    if "color_temperature" in slots:
        args["color_temp_kelvin"] = int(slots["color_temperature"])
    return args
