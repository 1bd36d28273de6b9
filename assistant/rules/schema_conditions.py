"""Condition models: what must hold for a rule (or a branch) to go on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, model_validator

from assistant.rules.schema_values import (
    Duration,
    EntityIds,
    Flag,
    Model,
    Name,
    NumericBounds,
    Offset,
    TemplateValue,
    Texts,
    TimeOfDay,
    as_list,
    problem,
    require_some,
    shown,
    tagged_union,
)
from assistant.rules.templates import is_template_text

CONDITION_KINDS = ("state", "numeric_state", "time", "sun", "and", "or", "not", "template",
                   "trigger")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConditionBase(Model):
    alias: Name | None = None
    enabled: Flag = True


class StateCondition(ConditionBase):
    """Every entity (``match: all``) or one of them (``any``) is in one of ``state``, for at
    least ``for_duration`` when given."""

    condition: Literal["state"]
    entity_id: EntityIds
    state: Texts
    attribute: Name | None = None
    for_duration: Duration | None = Field(None, alias="for")
    match: Literal["all", "any"] = "all"


class NumericStateCondition(ConditionBase, NumericBounds):
    condition: Literal["numeric_state"]


def _weekdays(value: Any) -> tuple[str, ...]:
    days = as_list(value)
    for day in days:
        if day not in WEEKDAYS:
            raise problem(f"{shown(day)} is not a weekday ({', '.join(WEEKDAYS)})")
    return tuple(days)


class TimeCondition(ConditionBase):
    """``after``/``before`` a time of day (a range past midnight when after > before), on
    ``weekday`` (empty: every day)."""

    condition: Literal["time"]
    after: TimeOfDay | None = None
    before: TimeOfDay | None = None
    weekday: Annotated[tuple[str, ...], PlainValidator(_weekdays)] = ()

    @model_validator(mode="after")
    def _says_something(self) -> TimeCondition:
        require_some(self, "after", "before", "weekday")
        return self


class SunCondition(ConditionBase):
    condition: Literal["sun"]
    after: Literal["sunrise", "sunset"] | None = None
    before: Literal["sunrise", "sunset"] | None = None
    after_offset: Offset = 0.0
    before_offset: Offset = 0.0

    @model_validator(mode="after")
    def _says_something(self) -> SunCondition:
        require_some(self, "after", "before")
        return self


class TemplateCondition(ConditionBase):
    """True when the template renders to a true word or non-zero number."""

    condition: Literal["template"]
    value_template: TemplateValue


class TriggerCondition(ConditionBase):
    """True when the trigger that started the run has one of these ids."""

    condition: Literal["trigger"]
    id: Texts

    @model_validator(mode="after")
    def _names_an_id(self) -> TriggerCondition:
        if not self.id:
            raise problem("needs the id of a trigger")
        return self


class RefusedCondition(Model):
    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise problem(f"{shown(raw)} is not a condition (a mapping with 'condition: "
                          "<kind>', or a \"{{ template }}\")")
        if "condition" not in raw:
            raise problem(f"says no condition kind: add 'condition:' "
                          f"({', '.join(CONDITION_KINDS)})")
        raise problem(f"the {shown(raw['condition'])} condition is not supported; "
                      f"supported: {', '.join(CONDITION_KINDS)}")


def shorthand_condition(raw: Any) -> Any:
    """Home Assistant's shorthands: a "{{ template }}" string, ``and: [...]`` / ``or:`` /
    ``not:`` without ``condition:``."""
    if isinstance(raw, str) and is_template_text(raw):
        return {"condition": "template", "value_template": raw}
    if isinstance(raw, dict) and "condition" not in raw:
        groups = [kind for kind in ("and", "or", "not") if kind in raw]
        if len(groups) == 1:
            raw = dict(raw)
            return {"condition": groups[0], "conditions": raw.pop(groups[0]), **raw}
    return raw


# Groups hold "Conditions", defined below them (resolved by model_rebuild).
class AndCondition(ConditionBase):
    condition: Literal["and"]
    conditions: Conditions


class OrCondition(ConditionBase):
    condition: Literal["or"]
    conditions: Conditions


class NotCondition(ConditionBase):
    """True when none of ``conditions`` holds."""

    condition: Literal["not"]
    conditions: Conditions


Condition = Annotated[
    tagged_union({
        "state": StateCondition, "numeric_state": NumericStateCondition,
        "time": TimeCondition, "sun": SunCondition, "and": AndCondition, "or": OrCondition,
        "not": NotCondition, "template": TemplateCondition, "trigger": TriggerCondition,
        "refused": RefusedCondition,
    }, lambda raw: raw.get("condition") if isinstance(raw, dict) else None),
    BeforeValidator(shorthand_condition),
]
Conditions = Annotated[tuple[Condition, ...], BeforeValidator(as_list)]


for _group in (AndCondition, OrCondition, NotCondition):
    _group.model_rebuild()

__all__ = [
    "CONDITION_KINDS", "WEEKDAYS", "AndCondition", "Condition", "ConditionBase", "Conditions",
    "NotCondition", "NumericStateCondition", "OrCondition", "StateCondition", "SunCondition",
    "TemplateCondition", "TimeCondition", "TriggerCondition",
]
