"""Rules in Home Assistant's automation YAML, read into frozen, typed models.

Model overview (every model is a frozen pydantic model; unknown keys are errors):

- ``Rule``: id, alias, description (str | None); mode ("single" | "restart" | "queued" |
  "parallel", default "single"); max (int, default 10); max_exceeded (str, default
  "warning"); initial_state (bool, default True); variables (dict); triggers
  (tuple[Trigger, ...], at least one); conditions (tuple[Condition, ...]); actions
  (tuple[Action, ...]). ``rule_name(raw, index)``: alias, else id, else "#<index>".
- Triggers (``schema_triggers``), all with id, alias (str | None), enabled (bool),
  variables (dict), and ``trigger`` (the kind, a Literal):
  ``MqttTrigger`` topic (+/# wildcards), payload (str | None), value_template
  (Template | None), qos (0-2), encoding (str); ``StateTrigger`` entity_id (tuple),
  from_state / to_state (tuple[str, ...] | None: None = not given, () = null = any state),
  not_from / not_to (tuple), attribute (str | None), for_duration (Duration | None);
  ``NumericStateTrigger`` entity_id, attribute, value_template, above / below (float, or
  the entity id whose state is the bound, or None; one at least), for_duration;
  ``TimeTrigger`` at (tuple[datetime.time, ...]); ``TimePatternTrigger`` hours, minutes,
  seconds (APScheduler cron text: "*", "*/5", "7"; HA's defaults applied);
  ``SunTrigger`` event ("sunrise" | "sunset"), offset (float seconds, negative = before);
  ``HomeAssistantTrigger`` event ("start" | "shutdown").
- Conditions (``schema_conditions``), all with alias, enabled, and ``condition`` (kind):
  ``StateCondition`` entity_id, state (tuple[str, ...]), attribute, for_duration, match
  ("all" | "any"); ``NumericStateCondition`` entity_id, attribute, value_template, above,
  below; ``TimeCondition`` after / before (datetime.time | None), weekday (tuple of
  "mon".."sun", empty = every day); ``SunCondition`` after / before ("sunrise" | "sunset" |
  None), after_offset / before_offset (float seconds); ``AndCondition`` / ``OrCondition`` /
  ``NotCondition`` conditions (tuple); ``TemplateCondition`` value_template (Template);
  ``TriggerCondition`` id (tuple[str, ...]).
- Actions (``schema_actions``), all with alias, enabled, continue_on_error (bool):
  ``ServiceCall`` action ("domain.service"), target (``Target``: entity_id, area_id
  tuples), data (dict; strings in it may be templates, kept as text), response_variable;
  ``mqtt.publish`` and the speaking services (``SAY_SERVICES``, data.message; ``say:
  "text"`` becomes ``SAY_SERVICE``) are ServiceCalls. ``DelayAction`` delay (Duration);
  ``WaitForTriggerAction`` wait_for_trigger (tuple[Trigger]), timeout (Duration | None),
  continue_on_timeout (bool, default True); ``WaitTemplateAction`` wait_template
  (Template), timeout, continue_on_timeout; ``ChooseAction`` choose
  (tuple[``ChooseOption``(alias, conditions, sequence)]), default (tuple[Action]);
  ``IfAction`` if_ (conditions), then, else_ (actions); ``RepeatAction`` repeat
  (``RepeatLoop``: exactly one of count (int | Template), while_ / until (conditions),
  for_each (list | Template); sequence); ``VariablesAction`` variables (dict);
  ``StopAction`` stop (str), error (bool), response_variable; a condition model used as an
  action (stops the run when false).
- Values (``schema_values``): a Duration is float seconds or a ``Template``
  (``templates.Template``, field ``text``, syntax-checked when the rule is read).

Equivalent spellings arrive as one model: ``trigger``/``triggers``, ``condition``/
``conditions``, ``action``/``actions``; ``platform:`` for ``trigger:``; ``service:`` for
``action:``; one item or a list; "{{ ... }}" as a condition; ``and:``/``or:``/``not:``
without ``condition:``; ``data_template`` and ``entity_id`` outside ``target``.

``parse_rule`` raises :class:`RuleErrors` (a :class:`RuleError`) holding every error of
the rule, each naming its key ("actions[1].delay").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from assistant.rules.schema_actions import *  # noqa: F403 - the models, re-exported
from assistant.rules.schema_actions import Actions
from assistant.rules.schema_conditions import *  # noqa: F403
from assistant.rules.schema_conditions import Conditions
from assistant.rules.schema_triggers import *  # noqa: F403
from assistant.rules.schema_triggers import Trigger
from assistant.rules.schema_values import (
    MAX_DEPTH,
    Duration,
    Model,
    Name,
    RuleError,
    RuleErrors,
    Variables,
    as_list,
    deeper_than,
    problem,
    renamed,
    shown,
)
from assistant.rules.templates import Template

# Keys Home Assistant writes into automations.yaml that change nothing here.
HARMLESS_RULE_KEYS = ("trace",)
MODES = ("single", "restart", "queued", "parallel")


class Rule(Model):
    id: Name | None = None
    alias: Name | None = None
    description: str | None = None
    mode: Literal["single", "restart", "queued", "parallel"] = "single"
    max: int = Field(10, ge=1, le=1000)
    max_exceeded: Literal["silent", "critical", "fatal", "error", "warning", "info",
                          "debug", "notset"] = "warning"
    initial_state: bool = True
    variables: Variables = Field(default_factory=dict)
    triggers: Annotated[tuple[Trigger, ...], BeforeValidator(as_list)]
    conditions: Conditions = ()
    actions: Actions

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = {key: value for key, value in raw.items() if key not in HARMLESS_RULE_KEYS}
        if isinstance(raw.get("max_exceeded"), str):
            raw["max_exceeded"] = raw["max_exceeded"].lower()
        return renamed({"trigger": "triggers", "condition": "conditions",
                        "action": "actions"})(raw)

    @field_validator("triggers")
    @classmethod
    def _some_trigger(cls, triggers: tuple[Trigger, ...]) -> tuple[Trigger, ...]:
        if not triggers:
            raise problem("a rule needs at least one trigger")
        return triggers


def rule_name(raw: Any, index: int) -> str:
    """How errors name a rule: its alias, else its id, else "#<index>" (from 1)."""
    if isinstance(raw, dict):
        for key in ("alias", "id"):
            value = raw.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool) \
                    and str(value).strip():
                return str(value)[:80]
    return f"#{index}"


def key_path(location: tuple[int | str, ...]) -> str:
    """("actions", 1, "@delay", "delay") → "actions[1].delay" (union tags left out)."""
    key = ""
    for part in location:
        if isinstance(part, int) and not isinstance(part, bool):
            key += f"[{part}]"
        elif not str(part).startswith("@"):
            key += f".{part}" if key else str(part)
    return key


def _message(error: Any) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "rule":
        return error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "invalid_key":
        return "a key must be text"
    if kind == "literal_error":
        return f"{shown(error['input'])} is not one of {context.get('expected')}"
    if kind.startswith(("model_type", "model_attributes_type", "dict_type")):
        return f"{shown(error['input'])} is not a mapping"
    message = error["msg"].removeprefix("Value error, ")
    return f"{shown(error['input'])}: {message[:1].lower()}{message[1:]}"


def validation_errors(error: ValidationError, file: Path | None, rule: str,
                      prefix: str = "") -> tuple[RuleError, ...]:
    errors = []
    for item in error.errors(include_url=False):
        key = key_path(item["loc"])
        if prefix:
            key = f"{prefix}.{key}" if key and not key.startswith("[") else prefix + key
        errors.append(RuleError(file, rule, key, _message(item)))
    return tuple(dict.fromkeys(errors))  # a refused union member may repeat itself


def parse_rule(raw: Any, *, file: Path | None = None, index: int = 1) -> Rule:
    """The rule in ``raw`` (one automation, as YAML reads it), or :class:`RuleErrors`
    with every error in it."""
    name = rule_name(raw, index)
    if not isinstance(raw, dict):
        raise RuleErrors((RuleError(file, name, "", f"{shown(raw)} is not a rule "
                                                     "(a mapping with triggers and actions)"),))
    if deeper_than(raw):
        raise RuleErrors((RuleError(file, name, "", f"is nested more than {MAX_DEPTH} "
                                                     "levels deep"),))
    try:
        return Rule.model_validate(raw)
    except ValidationError as error:
        raise RuleErrors(validation_errors(error, file, name)) from None


__all__ = [
    "HARMLESS_RULE_KEYS", "MODES", "Duration", "Rule", "RuleError", "RuleErrors", "Template",
    "key_path", "parse_rule", "rule_name", "validation_errors",
]
