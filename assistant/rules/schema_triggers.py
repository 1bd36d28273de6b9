"""Trigger models: what starts a rule (see ``schema`` for the overview)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, model_validator

from assistant.rules.schema_values import (
    Duration,
    EntityIds,
    Flag,
    Model,
    Name,
    NumericBounds,
    Offset,
    TemplateValue,
    Text,
    Texts,
    TimesOfDay,
    Variables,
    problem,
    renamed,
    shown,
    tagged_union,
    texts,
)

TRIGGER_KINDS = ("mqtt", "state", "numeric_state", "time", "time_pattern", "sun",
                 "homeassistant")


class TriggerBase(Model):
    id: Name | None = None
    alias: Name | None = None
    enabled: Flag = True
    variables: Variables = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _platform_is_trigger(cls, raw: Any) -> Any:
        return renamed({"platform": "trigger"})(raw)


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise problem(f"{shown(value)} is not an MQTT topic")
    levels = value.split("/")
    for position, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise problem(f"{value!r}: a wildcard (+ or #) must be a whole topic level")
        if level == "#" and position != len(levels) - 1:
            raise problem(f"{value!r}: # may only be the last topic level")
    if len(value.encode()) > 65535 or "\0" in value:
        raise problem(f"{shown(value)} is not an MQTT topic")
    return value


Topic = Annotated[str, PlainValidator(_topic)]


def _qos(value: Any) -> int:
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise problem(f"{shown(value)} is not an MQTT QoS (0, 1 or 2)")
    return int(value)


QoS = Annotated[int, PlainValidator(_qos)]


class MqttTrigger(TriggerBase):
    trigger: Literal["mqtt"]
    topic: Topic
    payload: Text | None = None
    value_template: TemplateValue | None = None  # its result is compared with ``payload``
    qos: QoS = 0
    encoding: str = "utf-8"  # "" hands the payload over as bytes, as in Home Assistant


States = Texts  # a state or a list of them


def _states_or_null(value: Any) -> tuple[str, ...]:
    return () if value is None else texts(value)


# ``from``/``to``: null (given) is (): any state, but only state changes
StatesOrNull = Annotated[tuple[str, ...] | None, PlainValidator(_states_or_null)]



class StateTrigger(TriggerBase):
    """``from_state``/``to_state``: None = not given (attribute changes fire too), () = given
    as null (any state, but only state changes), else the states to match."""

    trigger: Literal["state"]
    entity_id: EntityIds
    from_state: StatesOrNull = Field(None, alias="from")
    to_state: StatesOrNull = Field(None, alias="to")
    not_from: States = ()
    not_to: States = ()
    attribute: Name | None = None
    for_duration: Duration | None = Field(None, alias="for")


class NumericStateTrigger(TriggerBase, NumericBounds):
    """Fires when the value crosses into the range (above < value < below)."""

    trigger: Literal["numeric_state"]
    for_duration: Duration | None = Field(None, alias="for")


class TimeTrigger(TriggerBase):
    trigger: Literal["time"]
    at: TimesOfDay


def _pattern(maximum: int) -> Callable[[Any], str]:
    """"*", "/5" (every 5), 7 or "7" → APScheduler cron text ("*", "*/5", "7")."""

    def cron(value: Any) -> str:
        text = str(value).strip() if isinstance(value, int | str) \
            and not isinstance(value, bool) else ""
        every = text.startswith(("/", "*/"))  # "*/5" is the normal form itself
        digits = text.partition("/")[2] if every else text
        if text == "*":
            return "*"
        if re.fullmatch(r"\d{1,2}", digits) and int(digits) <= maximum \
                and not (every and int(digits) == 0):
            return f"*/{int(digits)}" if every else str(int(digits))
        raise problem(f"{shown(value)} is not \"*\", \"/N\" or a number from 0 to {maximum}")

    return cron


class TimePatternTrigger(TriggerBase):
    """Cron-style fields; a unit below one given defaults to 0, above it to "*" (as in Home
    Assistant: ``minutes: "/5"`` is every five minutes at second 0)."""

    trigger: Literal["time_pattern"]
    hours: Annotated[str, PlainValidator(_pattern(23))] = "*"
    minutes: Annotated[str, PlainValidator(_pattern(59))] = "*"
    seconds: Annotated[str, PlainValidator(_pattern(59))] = "*"

    @model_validator(mode="before")
    @classmethod
    def _smaller_units_default_to_zero(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        units = ("hours", "minutes", "seconds")
        if not any(raw.get(unit) is not None for unit in units):
            raise problem("needs hours, minutes or seconds")
        raw = dict(raw)
        given = False
        for unit in units:
            if raw.get(unit) is not None:
                given = True
            elif given:
                raw[unit] = 0
            else:
                raw.pop(unit, None)
        return raw


class SunTrigger(TriggerBase):
    trigger: Literal["sun"]
    event: Literal["sunrise", "sunset"]
    offset: Offset = 0.0  # seconds, negative is before


class HomeAssistantTrigger(TriggerBase):
    """``start``: when the rules are loaded at start-up; ``shutdown``: when the hub stops."""

    trigger: Literal["homeassistant"]
    event: Literal["start", "shutdown"]


class RefusedTrigger(Model):
    """Never valid: says which trigger kind was asked for and which ones there are."""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise problem(f"{shown(raw)} is not a trigger (a mapping with 'trigger: <kind>')")
        kind = raw.get("trigger", raw.get("platform"))
        if kind is None:
            raise problem(f"says no trigger kind: add 'trigger:' ({', '.join(TRIGGER_KINDS)})")
        raise problem(f"the {shown(kind)} trigger is not supported; "
                      f"supported: {', '.join(TRIGGER_KINDS)}")


def _trigger_kind(raw: Any) -> Any:
    return raw.get("trigger", raw.get("platform")) if isinstance(raw, dict) else None


Trigger = tagged_union({
    "mqtt": MqttTrigger, "state": StateTrigger, "numeric_state": NumericStateTrigger,
    "time": TimeTrigger, "time_pattern": TimePatternTrigger, "sun": SunTrigger,
    "homeassistant": HomeAssistantTrigger, "refused": RefusedTrigger,
}, _trigger_kind)


__all__ = [
    "TRIGGER_KINDS", "HomeAssistantTrigger", "MqttTrigger", "NumericStateTrigger",
    "StateTrigger", "SunTrigger", "TimePatternTrigger", "TimeTrigger", "Trigger",
    "TriggerBase",
]
