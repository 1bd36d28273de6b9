"""Rules by voice: the LLM drafts a rule, the assistant reads it back, a "yes" saves it.

"When the hall motion sensor turns on after sunset, turn on the hall light for two minutes"
becomes one ``propose_rule`` call whose arguments (``RuleDraft``) are small on purpose: one
trigger, a few conditions, a few actions, and every device id an enum of the home's devices
(the ``x-entity-ref`` marker). The draft is never saved from the model's answer alone: the
tool reads back what it understood, in names from the registry, and asks; the conversation
runs the same call again on "yes" with the draft's devices confirmed, and only then is the
rule written (as Home Assistant automation YAML, ``RuleDraft.to_automation``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assistant.messages import EntityCommand, ToolCall, ToolResult
from assistant.registry import Entity
from assistant.safety import Verdict
from skills.base import (
    ENTITY_REF_KEY,
    Skill,
    ToolContext,
    entity_ids_field,
    spoken_names,
    tool,
)
from skills.home_control import SERVICE_VERBS

# (file name: a-z, 0-9 and _, the rules) -> the file written; raises FileExistsError when the
# name is taken, ValueError (a RuleError) when the rules do not check, OSError.
SaveRule = Callable[[str, list[dict[str, Any]]], Awaitable[Path]]

EntityRef = Annotated[str, Field(min_length=1, max_length=255,
                                 json_schema_extra={ENTITY_REF_KEY: []})]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                 description="HH:MM, 24-hour")]
# A state as Home Assistant writes it ("on", "off", "open", "locked", "home"): a word, not text.
StateName = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
Seconds = Annotated[int, Field(ge=1, le=86_400)]
RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _'-]{0,47}$",
                                description="a short name for the rule")]


class _Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _once_each(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))  # a model may name a device twice; it means it once


# -- triggers --------------------------------------------------------------------------------


class StateTrigger(_Draft):
    trigger: Literal["state"]
    entity_id: EntityRef
    to_state: StateName = Field(..., description="on, off, open, closed, locked, home ...")
    from_state: StateName | None = None
    for_seconds: Seconds | None = Field(None, description="once it stayed so this long")

    def automation(self) -> dict[str, Any]:
        found: dict[str, Any] = {"trigger": "state", "entity_id": self.entity_id,
                                 "to": self.to_state}
        if self.from_state is not None:
            found["from"] = self.from_state
        if self.for_seconds is not None:
            found["for"] = _period(self.for_seconds)
        return found


class NumericTrigger(_Draft):
    trigger: Literal["numeric_state"]
    entity_id: EntityRef
    above: float | None = Field(None, ge=-1e6, le=1e6)
    below: float | None = Field(None, ge=-1e6, le=1e6)

    @model_validator(mode="after")
    def _a_bound(self) -> NumericTrigger:
        if self.above is None and self.below is None:
            raise ValueError("give above, below or both")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError("above must be less than below")
        return self

    def automation(self) -> dict[str, Any]:
        found: dict[str, Any] = {"trigger": "numeric_state", "entity_id": self.entity_id}
        found.update({k: v for k, v in (("above", self.above), ("below", self.below))
                      if v is not None})
        return found


class TimeTrigger(_Draft):
    trigger: Literal["time"]
    at: ClockTime

    def automation(self) -> dict[str, Any]:
        return {"trigger": "time", "at": f"{self.at}:00"}


class SunTrigger(_Draft):
    trigger: Literal["sun"]
    event: Literal["sunrise", "sunset"]
    offset_minutes: int = Field(0, ge=-720, le=720, description="negative: before")

    def automation(self) -> dict[str, Any]:
        found: dict[str, Any] = {"trigger": "sun", "event": self.event}
        if self.offset_minutes:
            sign = "-" if self.offset_minutes < 0 else ""
            found["offset"] = sign + _clock(abs(self.offset_minutes) * 60)
        return found


Trigger = Annotated[StateTrigger | NumericTrigger | TimeTrigger | SunTrigger,
                    Field(discriminator="trigger")]


# -- conditions ------------------------------------------------------------------------------


# "After sunset" as people mean it lasts until sunrise (Home Assistant's own ``after: sunset``
# ends at midnight): the two night words and the two day words each name one period.
class SunCondition(_Draft):
    condition: Literal["sun"]
    when: Literal["after_sunset", "before_sunrise", "after_sunrise", "before_sunset"]

    @property
    def dark(self) -> bool:
        return self.when in ("after_sunset", "before_sunrise")

    def automation(self) -> dict[str, Any]:
        if self.dark:
            return {"condition": "or", "conditions": [
                {"condition": "sun", "after": "sunset"},
                {"condition": "sun", "before": "sunrise"}]}
        return {"condition": "sun", "after": "sunrise", "before": "sunset"}


class TimeCondition(_Draft):
    condition: Literal["time"]
    after: ClockTime | None = None
    before: ClockTime | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> TimeCondition:
        if self.after is None and self.before is None:
            raise ValueError("give after, before or both")
        if self.after == self.before:
            raise ValueError("after and before must differ")
        return self

    def automation(self) -> dict[str, Any]:
        found: dict[str, Any] = {"condition": "time"}
        found.update({k: f"{v}:00" for k, v in (("after", self.after), ("before", self.before))
                      if v is not None})
        return found


class StateCondition(_Draft):
    condition: Literal["state"]
    entity_id: EntityRef
    state: StateName

    def automation(self) -> dict[str, Any]:
        return {"condition": "state", "entity_id": self.entity_id, "state": self.state}


Condition = Annotated[SunCondition | TimeCondition | StateCondition,
                      Field(discriminator="condition")]


# -- actions ---------------------------------------------------------------------------------

Verb = Literal["turn_on", "turn_off", "toggle", "open", "close", "lock", "unlock"]
_REVERSE: dict[str, Verb] = {"turn_on": "turn_off", "turn_off": "turn_on", "toggle": "toggle",
                             "open": "close", "close": "open", "lock": "unlock",
                             "unlock": "lock"}
# The states devices of these domains have (besides unavailable and unknown): a rule waiting
# for a motion sensor to be "detected" would never run.
_STATES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("binary_sensor", "light", "switch", "fan", "input_boolean", "siren",
                     "humidifier"), ("on", "off")),
    "lock": ("locked", "unlocked", "locking", "unlocking", "open", "opening", "jammed"),
    **dict.fromkeys(("cover", "valve"), ("open", "closed", "opening", "closing")),
    "media_player": ("on", "off", "idle", "playing", "paused", "standby", "buffering"),
    "vacuum": ("cleaning", "docked", "idle", "paused", "returning", "error"),
}
_SWITCHED = ("light", "switch", "fan", "input_boolean", "media_player", "climate",
             "humidifier", "siren")
# (verb, domain) -> the Home Assistant service; a pair missing here is not a rule action.
_SERVICES: dict[tuple[str, str], str] = {
    **{(verb, domain): verb for verb in ("turn_on", "turn_off", "toggle") for domain in _SWITCHED},
    ("turn_on", "scene"): "turn_on", ("turn_on", "script"): "turn_on",
    **{(verb, domain): f"{service}_{domain}" for domain in ("cover", "valve")
       for verb, service in (("turn_on", "open"), ("open", "open"), ("turn_off", "close"),
                             ("close", "close"))},
    ("toggle", "cover"): "toggle", ("toggle", "valve"): "toggle",
    ("lock", "lock"): "lock", ("unlock", "lock"): "unlock",
}


class ActionDraft(_Draft):
    service: Verb
    entity_ids: entity_ids_field()  # type: ignore[valid-type]
    brightness_pct: int | None = Field(None, ge=1, le=100, description="lights only")
    for_seconds: Seconds | None = Field(None, description="undo it after this long")

    _unique_ids = field_validator("entity_ids")(_once_each)

    @model_validator(mode="after")
    def _brightness_for_lights(self) -> ActionDraft:
        if self.brightness_pct is not None and (
                self.service != "turn_on"
                or any(not e.startswith("light.") for e in self.entity_ids)):
            raise ValueError("brightness_pct only goes with turn_on of lights")
        return self


# -- the draft -------------------------------------------------------------------------------

RuleEntityIds = entity_ids_field(
    description="every device id the trigger, conditions and actions use")



class RuleDraft(_Draft):
    name: RuleName
    trigger: Trigger
    # Required, so a grammar asks for the conditions before the actions (optional arguments
    # come last there), in the order the rule reads.
    conditions: list[Condition] = Field(..., max_length=3, description="may be empty")
    actions: list[ActionDraft] = Field(..., min_length=1, max_length=4)
    entity_ids: RuleEntityIds  # type: ignore[valid-type]

    _unique_ids = field_validator("entity_ids")(_once_each)

    @model_validator(mode="after")
    def _entity_ids_are_what_the_rule_uses(self) -> RuleDraft:
        # The conversation grounds and confirms ``entity_ids``: they must be exactly the
        # devices the rule touches, or a "yes" would confirm something else.
        used = self.used_entity_ids()
        missing = [e for e in used if e not in self.entity_ids]
        extra = [e for e in self.entity_ids if e not in used]
        if missing or extra:
            raise ValueError("entity_ids must list exactly the devices the rule uses"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; not used {', '.join(extra)}" if extra else ""))
        return self

    def used_entity_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for part in (self.trigger, *self.conditions):
            entity_id = getattr(part, "entity_id", None)
            if entity_id is not None:
                ids[entity_id] = None
        for action in self.actions:
            ids.update(dict.fromkeys(action.entity_ids))
        return list(ids)

    def watched_states(self) -> list[tuple[str, str]]:
        """(entity id, state) for every state the trigger and the conditions wait for."""
        found = []
        if isinstance(self.trigger, StateTrigger):
            found.extend((self.trigger.entity_id, state) for state in
                         (self.trigger.to_state, self.trigger.from_state) if state is not None)
        found.extend((c.entity_id, c.state) for c in self.conditions
                     if isinstance(c, StateCondition))
        return found

    def steps(self) -> list[tuple[int, Verb, list[str], ActionDraft]]:
        """(seconds after the trigger, verb, entity ids, the action it comes from): the
        actions first, then each reversal at its time."""
        now = [(0, a.service, list(a.entity_ids), a) for a in self.actions]
        later = sorted(((a.for_seconds, _REVERSE[a.service], list(a.entity_ids), a)
                        for a in self.actions if a.for_seconds is not None),
                       key=lambda step: step[0])
        return now + later

    def to_automation(self) -> dict[str, Any]:
        """The rule as Home Assistant automation YAML (as a dict)."""
        actions: list[dict[str, Any]] = []
        elapsed = 0
        for at, verb, entity_ids, source in self.steps():
            if at > elapsed:
                actions.append({"delay": _period(at - elapsed)})
                elapsed = at
            data = {"brightness_pct": source.brightness_pct} \
                if at == 0 and source.brightness_pct is not None else {}
            for service, ids in _by_service(verb, entity_ids).items():
                action: dict[str, Any] = {"action": service, "target": {"entity_id": ids}}
                if data:
                    action["data"] = data
                actions.append(action)
        automation: dict[str, Any] = {
            "alias": self.name,
            "description": "Made by voice.",
            # A new trigger during the "off again" wait starts the wait over (motion lights).
            "mode": "restart" if elapsed else "single",
            "triggers": [self.trigger.automation()],
        }
        if self.conditions:
            automation["conditions"] = [c.automation() for c in self.conditions]
        automation["actions"] = actions
        return automation


def ha_service(verb: str, entity_id: str) -> str | None:
    """``light.turn_on`` for ("turn_on", "light.x"); None when the verb does not fit."""
    domain = entity_id.partition(".")[0]
    service = _SERVICES.get((verb, domain))
    return f"{domain}.{service}" if service else None


def _by_service(verb: str, entity_ids: Iterable[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for entity_id in entity_ids:
        service = ha_service(verb, entity_id)
        if service is None:
            raise ValueError(f"{entity_id} cannot {verb.replace('_', ' ')}")
        grouped.setdefault(service, []).append(entity_id)
    return grouped


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _period(seconds: int) -> dict[str, int]:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return {"hours": hours, "minutes": minutes, "seconds": secs}


# -- reading it back -------------------------------------------------------------------------


def spoken_duration(seconds: int) -> str:
    """"2 minutes", "1 hour and 30 minutes"; 90 is "1 minute and 30 seconds"."""
    parts = []
    for size, unit in ((3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return _joined(parts)


class ReadBack:
    """Plain English for a draft, with every device said by its registry name."""

    def __init__(self, draft: RuleDraft, names: dict[str, Entity]) -> None:
        self.draft = draft
        self.names = names

    def the(self, entity_id: str) -> str:
        return spoken_names([self.names[entity_id]])

    def trigger(self) -> str:
        trigger = self.draft.trigger
        if isinstance(trigger, StateTrigger):
            state = _state_words(trigger.to_state)
            if trigger.for_seconds is not None:
                return (f"When the {self._name(trigger.entity_id)} has been {state} for "
                        f"{spoken_duration(trigger.for_seconds)}")
            if trigger.from_state is not None:
                return (f"When the {self._name(trigger.entity_id)} changes from "
                        f"{_state_words(trigger.from_state)} to {state}")
            change = f"turns {state}" if trigger.to_state in ("on", "off") else f"becomes {state}"
            return f"When the {self._name(trigger.entity_id)} {change}"
        if isinstance(trigger, NumericTrigger):
            entity = self.names[trigger.entity_id]
            above, below = (_amount(v, entity) for v in (trigger.above, trigger.below))
            if above and below:
                limit = f"is between {above} and {below}"
            else:
                limit = f"rises above {above}" if above else f"drops below {below}"
            return f"When the {self._name(trigger.entity_id)} {limit}"
        if isinstance(trigger, TimeTrigger):
            return f"Every day at {trigger.at}"
        offset = abs(trigger.offset_minutes)
        if not offset:
            return f"Every day at {trigger.event}"
        side = "before" if trigger.offset_minutes < 0 else "after"
        return f"Every day {spoken_duration(offset * 60)} {side} {trigger.event}"

    def conditions(self) -> str:
        said = []
        for condition in self.draft.conditions:
            if isinstance(condition, SunCondition):
                said.append("between sunset and sunrise" if condition.dark
                            else "between sunrise and sunset")
            elif isinstance(condition, TimeCondition):
                if condition.after and condition.before:
                    said.append(f"between {condition.after} and {condition.before}")
                else:
                    said.append(f"after {condition.after}" if condition.after
                                else f"before {condition.before}")
            else:
                said.append(f"while {self.the(condition.entity_id)} is "
                            f"{_state_words(condition.state)}")
        return _joined(said)

    def actions(self) -> str:
        said = []
        for action in self.draft.actions:
            targets = spoken_names([self.names[e] for e in action.entity_ids])
            text = f"{_verb(action.service)} {targets}"
            if action.brightness_pct is not None:
                text += f" at {action.brightness_pct}% brightness"
            if action.for_seconds is not None:
                again = _verb_on(_REVERSE[action.service],
                                 "it" if len(action.entity_ids) == 1 else "them")
                text += f" and {again} again after {spoken_duration(action.for_seconds)}"
            said.append(text)
        return _joined(said)

    def sentence(self) -> str:
        when = self.trigger()
        conditions = self.conditions()
        # the conditions between commas: the catalogs of other languages say each part alone
        return f"{when}{', ' + conditions if conditions else ''}, I'll {self.actions()}."

    def _name(self, entity_id: str) -> str:
        return self.names[entity_id].name


def _amount(value: float | None, entity: Entity) -> str:
    """"25 °C"; "" for no value."""
    if value is None:
        return ""
    unit = entity.attributes.get("unit_of_measurement")
    return f"{value:g} {unit}" if isinstance(unit, str) else f"{value:g}"


def _verb(verb: str) -> str:
    return SERVICE_VERBS.get(verb, (verb.replace("_", " "),))[0]


def _verb_on(verb: str, pronoun: str) -> str:
    """"turn it off", "close them": a pronoun goes inside a phrasal verb."""
    head, _, particle = _verb(verb).partition(" ")
    return f"{head} {pronoun} {particle}" if particle else f"{head} {pronoun}"


def _joined(parts: list[str], word: str = "and") -> str:
    """"a", "a and b", "a, b and c"."""
    if len(parts) <= 2:
        return f" {word} ".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _state_words(state: str) -> str:
    return state.replace("_", " ")


# -- the skill -------------------------------------------------------------------------------


class RuleSkill(Skill):
    name = "rules"
    summary = ("make rules that run on their own, like \"when the hall motion sensor turns on "
               "after sunset, turn on the hall light for two minutes\" (I read them back "
               "and save them when you say yes)")

    def __init__(self, save: SaveRule, *, allow_sensitive: Collection[str] = ()) -> None:
        self.save = save
        # The sensitive devices rules may actuate (the rule engine's allow-list): a rule on
        # any other lock or garage door would never act, so it is not made.
        self.allow_sensitive = frozenset(allow_sensitive)

    @tool("propose_rule",
          "Make a rule that runs on its own from now on, for a request that says when "
          "something should happen (\"when ... turn on ...\", \"whenever ...\", \"every "
          "time ...\", \"at sunset ...\"): never act on such a request now. \"For two "
          "minutes\" is for_seconds 120. entity_ids: every device the rule uses. The user is "
          "asked before it is saved.",
          RuleDraft)
    async def propose_rule(self, args: RuleDraft, ctx: ToolContext) -> ToolResult:
        # Every id exists: SkillRegistry.run validated the draft against the registry.
        names = {e: entity for e in args.entity_ids if (entity := ctx.registry.get(e))}
        problem = _refusal(args, names, ctx) or self._not_allowed(args, names, ctx)
        if problem:
            return ToolResult(reply=f"Sorry, I can't make that rule: {problem}.", success=False)
        if set(args.entity_ids) <= ctx.confirmed:
            return await self._save(args)
        call = ToolCall("propose_rule", args.model_dump(exclude_none=True))
        text = ReadBack(args, names).sentence()
        sensitive = _sensitive_targets(args, names, ctx)
        if sensitive:
            text += (f" This rule will {sensitive} by itself, each time it runs; saying yes "
                     "confirms that.")
        return ToolResult(reply=f"{text} Shall I save this rule?", success=False,
                          needs_confirmation=(call,))

    def _not_allowed(self, draft: RuleDraft, names: dict[str, Entity],
                     ctx: ToolContext) -> str | None:
        held = {entity.entity_id: entity for entities in _sensitive(draft, names, ctx).values()
                for entity in entities if entity.entity_id not in self.allow_sensitive}
        if not held:
            return None
        return (f"rules may not act on {spoken_names(list(held.values()))} by themselves "
                "unless the configuration allows it (automation.rules_allow_sensitive)")

    async def _save(self, draft: RuleDraft) -> ToolResult:
        try:
            await self.save(file_name(draft.name), [draft.to_automation()])
        except FileExistsError:
            reason = "there is already a rule with that name"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        except ValueError as exc:  # a RuleError's message, without the file's path
            reason = getattr(exc, "message", None) or str(exc)
        else:
            return ToolResult(reply=f"Saved the rule '{draft.name}'.")
        return ToolResult(reply=f"Sorry, I couldn't save the rule '{draft.name}': {reason}.",
                          success=False)


def file_name(rule_name: str) -> str:
    """"Hall light at night" -> "hall_light_at_night"."""
    return re.sub(r"[^a-z0-9]+", "_", rule_name.lower()).strip("_")[:64]


def _refusal(draft: RuleDraft, names: dict[str, Entity], ctx: ToolContext) -> str | None:
    """Why the draft cannot become a rule (a state a device never has, an action it cannot
    do, one the safety policy refuses), or None."""
    for entity_id, state in draft.watched_states():
        states = _STATES.get(entity_id.partition(".")[0])
        if states is not None and state not in (*states, "unavailable", "unknown"):
            return (f"the {names[entity_id].name} is never {_state_words(state)}; it is "
                    f"{_joined(list(states), 'or')}")
    for _, verb, entity_ids, _ in draft.steps():
        for entity_id in entity_ids:
            entity = names[entity_id]
            service = ha_service(verb, entity_id)
            if service is None:
                return f"the {entity.name} cannot {_verb(verb)}"
            decision = ctx.policy.decide(entity, EntityCommand(entity_id,
                                                               service.partition(".")[2]))
            if decision.verdict is Verdict.REFUSE:
                return decision.reason
    return None


def _sensitive(draft: RuleDraft, names: dict[str, Entity],
               ctx: ToolContext) -> dict[str, list[Entity]]:
    """verb -> the sensitive devices the rule does it to."""
    found: dict[str, list[Entity]] = {}
    for _, verb, entity_ids, _ in draft.steps():
        for entity in (names[e] for e in entity_ids):
            if ctx.policy.is_sensitive(entity) and entity not in found.get(verb, []):
                found.setdefault(verb, []).append(entity)
    return found


def _sensitive_targets(draft: RuleDraft, names: dict[str, Entity], ctx: ToolContext) -> str:
    """"unlock the Front Door and open the Garage Door": what the rule does to sensitive
    devices, so the yes is given knowingly; "" when it touches none."""
    return _joined([f"{_verb(verb)} {spoken_names(entities)}"
                    for verb, entities in _sensitive(draft, names, ctx).items()])
