"""The one safety policy: what the assistant may see, and what it may do without a "yes".

Every path asks this module and nothing else: the skills' executor (``ToolContext.send``),
the fast path's sweeping commands, the LLM's grounding check, the eval harness and the docs.
An entity is *sensitive* (every command needs a confirmation) when

- its domain or device class says so (locks, alarm panels, valves, sirens, garage doors,
  gates, doors; restart/update buttons),
- one of its names or aliases, in any language the hub knows, names such a thing ("door
  opener", "Garagentor", "portail", "cancello", "buzzer"),
- it commands a topic that a sensitive entity commands or reads its state from (a "switch"
  whose command topic is the lock's), or
- the user said so in config (``home.entities.<id>.sensitive: true``).

A command is checked again on what it would really publish: a message on a topic that a
sensitive entity uses makes the command sensitive whatever its entity claims to be.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import topic_matches_sub

from assistant.config import ExposureConfig
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity, RegistryChange, normalize_name

# Actuating these is never undone by a second command in time: a wrong unlock is worse than
# a slow one.
SENSITIVE_DOMAINS = frozenset({"lock", "alarm_control_panel", "valve", "siren"})
SENSITIVE_DEVICE_CLASSES: Mapping[str, frozenset[str]] = {
    "cover": frozenset({"garage", "gate", "door"}),
    "button": frozenset({"restart", "update"}),
}
# Names only count where the thing itself can open or switch something: a "Garage Light" is
# a light, a "Garage Door" relay exposed as a switch is a garage door.
NAME_CHECKED_DOMAINS = frozenset({"cover", "switch", "button", "script", "input_boolean"})
# Services that must be said as what they do: "turn off" never unlocks or disarms.
NEVER_BY_ON_OFF = frozenset({"lock", "alarm_control_panel"})
ON_OFF_SERVICES = frozenset({"turn_on", "turn_off", "toggle"})

# Names of things whose actuation opens the home or costs dearly, per language, as
# normalised words (accents removed). Multi-word entries match as phrases.
SENSITIVE_WORDS: Mapping[str, tuple[str, ...]] = {
    "en": ("garage", "gate", "gates", "door opener", "opener", "buzzer", "intercom", "lock",
           "locks", "unlock", "deadbolt", "latch", "valve", "valves", "alarm", "siren",
           "sprinkler", "water main", "restart", "reboot", "factory reset",
           "firmware"),
    "it": ("garage", "box auto", "cancello", "cancelli", "cancelletto", "portone", "apriporta",
           "citofono", "serratura", "serrature", "chiavistello", "valvola", "valvole",
           "rubinetto", "allarme", "antifurto", "sirena", "irrigazione", "riavvia",
           "ripristino"),
    "es": ("garaje", "cochera", "porton", "cancela", "verja", "reja", "abrepuertas",
           "portero", "cerradura", "cerraduras", "cerrojo", "pestillo", "valvula",
           "valvulas", "llave de paso", "alarma", "sirena", "riego", "reiniciar"),
    "de": ("garage", "tor", "tore", "turoffner", "turoeffner", "toroffner", "summer",
           "gegensprechanlage", "schloss", "turschloss", "riegel", "ventil", "ventile",
           "wasserventil", "alarm", "alarmanlage", "sirene", "bewasserung", "neustart"),
    "fr": ("garage", "portail", "portillon", "porte de garage", "ouvre porte", "gache",
           "interphone", "serrure", "serrures", "verrou", "vanne", "vannes", "electrovanne",
           "alarme", "sirene", "arrosage", "redemarrer"),
}
# German builds compounds: "Garagentor", "Hoftor", "Haustürschloss", "Wasserventil".
_GERMAN_COMPOUNDS = re.compile(
    r"\b\w*(garagen|hof|garten|einfahrts|roll|schiebe|dreh|flugel|sektional)tor(e)?\b"
    r"|\b\w+(schloss|ventil|offner|oeffner|sirene)\b")
SECRET_KEYS = frozenset({"code", "pin", "password", "passcode"})
SECRET_MARK = "<secret>"


class Verdict(enum.Enum):
    ALLOW = "allow"
    CONFIRM = "confirm"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = ""


ALLOW = Decision(Verdict.ALLOW)
Encoder = Callable[[Entity, EntityCommand], list[MqttMessage]]


def _phrase_pattern(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(alternatives) + r")\b")


_SENSITIVE_NAME = _phrase_pattern(w for words in SENSITIVE_WORDS.values() for w in words)


def sensitive_name(text: str) -> str | None:
    """The word of ``text`` that names a sensitive thing in any known language, or None."""
    normal = normalize_name(text)
    found = _SENSITIVE_NAME.search(normal) or _GERMAN_COMPOUNDS.search(normal)
    return found.group(0) if found else None


def exposure_predicate(config: ExposureConfig) -> Callable[[Entity], bool]:
    """Whether the assistant may see an entity, following ``exposure:`` in the config."""
    include, exclude = config.include, config.exclude

    def matches(rule: Any, entity: Entity) -> bool:
        return (entity.domain in rule.domains or (entity.area or "") in rule.areas
                or (entity.entity_category or "") in rule.entity_categories)

    limited = bool(include.domains or include.areas or include.entity_categories)

    def exposed(entity: Entity) -> bool:
        if entity.entity_id in exclude.entities:
            return False
        if entity.entity_id in include.entities:
            return True
        if matches(exclude, entity):
            return False
        if not entity.enabled_by_default and not config.expose_disabled_by_default:
            return False
        return matches(include, entity) if limited else True

    return exposed


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every secret (alarm codes, PINs, passwords) replaced by a marker."""
    return {key: SECRET_MARK if key in SECRET_KEYS and value not in (None, "") else value
            for key, value in params.items()}


# "disarm the alarm, code 1234", "the pin is 0000"
_SPOKEN_SECRET = re.compile(r"\b(code|pin|password|passcode|passwort|codice|codigo)\b"
                            r"(\s+(is|was|ist|e|es|est))?[\s:=]+([^\s,.;!?]+)", re.IGNORECASE)


def extract_secrets(text: str) -> tuple[str, list[str]]:
    """``text`` with spoken codes replaced by the marker, and the codes in order."""
    found: list[str] = []

    def mark(match: re.Match[str]) -> str:
        found.append(match.group(4))
        return match.group(0)[: match.start(4) - match.start(0)] + SECRET_MARK

    return _SPOKEN_SECRET.sub(mark, text), found


def redact_text(text: str, params: Mapping[str, Any]) -> str:
    """``text`` (a payload, a log line) with the secrets of ``params`` replaced."""
    for key in SECRET_KEYS:
        value = params.get(key)
        if value not in (None, ""):
            text = text.replace(str(value), SECRET_MARK)
    return text


def _topics(entity: Entity, *, commands_only: bool) -> set[str]:
    """The MQTT topics in an entity's wire description (availability excluded: devices
    share it); with ``commands_only``, the ones it publishes commands to."""
    found: set[str] = set()
    for key, value in entity.wire.items():
        if not isinstance(value, str) or not key.endswith("topic") or "availability" in key:
            continue
        if commands_only and not ("command" in key or key.startswith("set_")):
            continue
        found.add(value)
    return found


class SafetyPolicy:
    """Decides, for each entity and command, whether it needs a confirmation, a refusal
    or nothing. Reads the registry; follows its changes."""

    def __init__(self, registry: DeviceRegistry, *,
                 user_marks: Mapping[str, bool] | None = None,
                 encode: Encoder | None = None) -> None:
        self.registry = registry
        self.user_marks = dict(user_marks or {})
        self.encode = encode
        self._guarded: set[str] | None = None  # topics sensitive entities use; None: stale
        self._unsubscribe = registry.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()

    def _on_change(self, change: RegistryChange) -> None:
        if change.structure:
            self._guarded = None

    # -- entities ------------------------------------------------------------------------

    def intrinsic_reason(self, entity: Entity) -> str | None:
        """Why ``entity`` is sensitive by what it is (domain, class, name, config), or None."""
        mark = self.user_marks.get(entity.entity_id)
        if entity.domain in SENSITIVE_DOMAINS:
            return f"it is a {entity.domain.replace('_', ' ')}"
        classes = SENSITIVE_DEVICE_CLASSES.get(entity.domain, frozenset())
        if entity.device_class in classes:
            return f"it is a {entity.device_class} {entity.domain}"
        if mark is True:
            return "the configuration says so"
        if mark is False or entity.domain not in NAME_CHECKED_DOMAINS:
            return None
        for name in (entity.name, entity.entity_id.split(".", 1)[-1], *entity.aliases):
            word = sensitive_name(name)
            if word:
                return f"its name says {word!r}"
        return None

    def sensitivity_reason(self, entity: Entity) -> str | None:
        """Why every command to ``entity`` needs a confirmation, or None when none does."""
        reason = self.intrinsic_reason(entity)
        if reason is not None or self.user_marks.get(entity.entity_id) is False:
            return reason
        shared = self._shares_guarded_topic(_topics(entity, commands_only=True))
        return f"it commands {shared}, a topic of a sensitive device" if shared else None

    def is_sensitive(self, entity: Entity) -> bool:
        return self.sensitivity_reason(entity) is not None

    def may_sweep(self, entity: Entity) -> bool:
        """Whether "everything"/"all devices" may include ``entity``: never a sensitive one."""
        return not self.is_sensitive(entity)

    def _guarded_topics(self) -> set[str]:
        if self._guarded is None:
            self._guarded = set().union(*(
                _topics(e, commands_only=False) for e in self.registry.all_entities()
                if self.intrinsic_reason(e) is not None))
        return self._guarded

    def _shares_guarded_topic(self, topics: Iterable[str]) -> str | None:
        guarded = self._guarded_topics()
        for topic in topics:
            if topic in guarded:
                return topic
            for pattern in guarded:
                if ("+" in pattern or "#" in pattern) and _matches(pattern, topic):
                    return topic
        return None

    # -- commands ------------------------------------------------------------------------

    def decide(self, entity: Entity, command: EntityCommand) -> Decision:
        """What ``command`` on ``entity`` needs before it may be sent."""
        if self.registry.get(entity.entity_id) is None:
            return Decision(Verdict.REFUSE, f"{entity.entity_id} is not exposed to the assistant")
        if entity.domain in NEVER_BY_ON_OFF and command.service in ON_OFF_SERVICES:
            return Decision(Verdict.REFUSE, f"say lock, unlock, arm or disarm for the "
                                            f"{entity.name}, not on or off")
        reason = self.sensitivity_reason(entity)
        if reason is None and self.encode is not None:
            published = {m.topic for m in self.encode(entity, command)}
            shared = self._shares_guarded_topic(published)
            if shared:
                reason = f"it would publish to {shared}, a topic of a sensitive device"
        return Decision(Verdict.CONFIRM, reason) if reason else ALLOW


def _matches(pattern: str, topic: str) -> bool:
    try:
        return topic_matches_sub(pattern, topic)
    except ValueError:
        return False
