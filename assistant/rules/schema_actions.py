"""Action models: what a rule does (see ``schema`` for the overview)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainValidator, model_validator

from assistant.rules.schema_conditions import Condition, ConditionBase, Conditions
from assistant.rules.schema_triggers import Trigger
from assistant.rules.schema_values import (
    Duration,
    Flag,
    Model,
    Name,
    OptionalEntityIds,
    TemplateValue,
    Text,
    Variables,
    as_list,
    checked_templates,
    problem,
    renamed,
    shown,
    tagged_union,
    template_if_text,
)
from assistant.rules.templates import Template

SERVICE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
# Service calls that speak: data.message is said where the target (or the rule) is.
SAY_SERVICES = ("assist_satellite.announce", "tts.say")
SAY_SERVICE = SAY_SERVICES[0]  # what the short ``say: "text"`` becomes
MQTT_PUBLISH = "mqtt.publish"
HARMLESS_CALL_KEYS = ("metadata",)  # Home Assistant's editor writes ``metadata: {}``
ACTION_KINDS = ("action (a service call)", "say", "delay", "wait_for_trigger", "wait_template",
                "choose", "if", "repeat", "variables", "stop", "condition")


class ActionBase(Model):
    alias: Name | None = None
    enabled: Flag = True
    continue_on_error: Flag = False


def _areas(value: Any) -> tuple[str, ...]:
    areas = as_list(value)
    for area in areas:
        if not isinstance(area, str) or not re.fullmatch(r"[a-z0-9_]+", area):
            raise problem(f"{shown(area)} is not an area id (like living_room)")
    return tuple(areas)


def _unsupported_target(value: Any) -> None:
    raise problem("only entity_id and area_id targets are supported")


Unsupported = Annotated[None, PlainValidator(_unsupported_target)]


class Target(Model):
    entity_id: OptionalEntityIds = ()
    area_id: Annotated[tuple[str, ...], PlainValidator(_areas)] = ()
    # Home Assistant's other target kinds, named so that the error names them
    device_id: Unsupported = Field(None, repr=False, exclude=True)
    floor_id: Unsupported = Field(None, repr=False, exclude=True)
    label_id: Unsupported = Field(None, repr=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raise problem(f"{shown(raw)}: a target is a mapping, like "
                          "{entity_id: light.kitchen} or {area_id: kitchen}")
        return raw


def _service(value: Any) -> str:
    if not isinstance(value, str) or not SERVICE.match(value):
        raise problem(f"{shown(value)} is not a service (like light.turn_on)")
    return value


def _data(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise problem(f"{shown(value)} is not a mapping of names to values")
    return checked_templates(value)


Data = Annotated[dict[str, Any], PlainValidator(_data)]


class ServiceCall(ActionBase):
    """A service call. ``mqtt.publish`` (data: topic, payload, qos, retain) and the speaking
    services (:data:`SAY_SERVICES`, data: message) are service calls too. Legacy spellings
    (``service:``, ``data_template:``, ``entity_id`` at the top or in data) and ``say:
    "text"`` arrive here normalised. String values in ``data`` may be templates (checked,
    kept as text)."""

    action: Annotated[str, PlainValidator(_service)]
    target: Target = Target()
    data: Data = Field(default_factory=dict)
    response_variable: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = renamed({"service": "action"})(raw)
        for key in HARMLESS_CALL_KEYS:
            raw.pop(key, None)
        if "say" in raw:
            if "action" in raw:
                raise problem("both 'say' and 'action' are given")
            raw["action"], message = SAY_SERVICE, raw.pop("say")
            raw["data"] = {**(raw.get("data") or {}), "message": message}
        if "data_template" in raw:
            data, legacy = raw.get("data") or {}, raw.pop("data_template")
            if not isinstance(data, dict) or not isinstance(legacy, dict):
                raise problem("data and data_template must be mappings")
            raw["data"] = {**data, **legacy}
        moved = {}
        if "entity_id" in raw:
            moved["entity_id"] = raw.pop("entity_id")
        data = raw.get("data")
        if isinstance(data, dict) and "entity_id" in data:
            raw["data"] = {key: value for key, value in data.items() if key != "entity_id"}
            moved.setdefault("entity_id", data["entity_id"])
        if moved:
            target = raw.get("target") or {}
            if not isinstance(target, dict) or "entity_id" in target:
                raise problem("entity_id is given both in target and outside it")
            raw["target"] = {**target, **moved}
        return raw

    @model_validator(mode="after")
    def _service_needs(self) -> ServiceCall:
        if self.action in SAY_SERVICES and not isinstance(self.data.get("message"), str):
            raise problem(f"{self.action} needs data.message (the text to say)")
        if self.action == MQTT_PUBLISH:
            topic = self.data.get("topic")
            if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
                raise problem("mqtt.publish needs data.topic, a topic without wildcards")
            if self.data.get("qos", 0) not in (0, 1, 2, "0", "1", "2"):
                raise problem("mqtt.publish: data.qos must be 0, 1 or 2")
            if not isinstance(self.data.get("retain", False), bool):
                raise problem("mqtt.publish: data.retain must be true or false")
        return self


class DelayAction(ActionBase):
    delay: Duration


class WaitForTriggerAction(ActionBase):
    """Waits until one of the triggers fires (``wait.trigger`` is set), or ``timeout``."""

    wait_for_trigger: Annotated[tuple[Trigger, ...], BeforeValidator(as_list)]
    timeout: Duration | None = None
    continue_on_timeout: Flag = True


class WaitTemplateAction(ActionBase):
    wait_template: TemplateValue
    timeout: Duration | None = None
    continue_on_timeout: Flag = True


class ChooseOption(Model):
    alias: Name | None = None
    conditions: Conditions
    sequence: Actions


class ChooseAction(ActionBase):
    """Runs the sequence of the first option whose conditions all hold, else ``default``."""

    choose: Annotated[tuple[ChooseOption, ...], BeforeValidator(as_list)]
    default: Actions = ()


class IfAction(ActionBase):
    if_: Conditions = Field(alias="if")
    then: Actions
    else_: Actions = Field((), alias="else")


def _count(value: Any) -> int | Template:
    value = template_if_text(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, Template) or (isinstance(value, int) and not isinstance(value, bool)
                                       and value >= 0):
        return value
    raise problem(f"{shown(value)} is not a count (a whole number or a template)")


def _items(value: Any) -> list[Any] | Template:
    value = template_if_text(value)
    if isinstance(value, Template):
        return value
    if isinstance(value, list | tuple):
        return checked_templates(list(value))
    raise problem(f"{shown(value)} is not a list of items (or a template giving one)")


class RepeatLoop(Model):
    """Exactly one of count, while_ (checked before each pass), until (after), for_each
    (``repeat.item`` is set); ``repeat.index`` counts from 1."""

    count: Annotated[int | Template | None, PlainValidator(_count)] = None
    while_: Conditions | None = Field(None, alias="while")
    until: Conditions | None = None
    for_each: Annotated[list[Any] | Template | None, PlainValidator(_items)] = None
    sequence: Actions

    @model_validator(mode="after")
    def _one_kind(self) -> RepeatLoop:
        kinds = [self.count, self.while_, self.until, self.for_each]
        if sum(kind is not None for kind in kinds) != 1:
            raise problem("needs exactly one of count, while, until, for_each")
        return self


class RepeatAction(ActionBase):
    repeat: RepeatLoop


class VariablesAction(ActionBase):
    variables: Variables


class StopAction(ActionBase):
    """Ends the run; ``error`` marks it failed."""

    stop: Text
    error: Flag = False
    response_variable: Name | None = None


class RefusedAction(Model):
    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise problem(f"{shown(raw)} is not an action (a mapping)")
        kind = next((key for key in _UNSUPPORTED if key in raw), None)
        if kind:
            raise problem(f"the {kind!r} action is not supported; supported: "
                          f"{', '.join(ACTION_KINDS)}")
        raise problem(f"no known action in keys {shown(sorted(map(str, raw)))}; supported: "
                      f"{', '.join(ACTION_KINDS)}")


_UNSUPPORTED = ("event", "parallel", "sequence", "scene", "device_id", "set_conversation_response")
_ACTION_KEYS = ("delay", "wait_template", "wait_for_trigger", "choose", "if", "repeat",
                "variables", "stop", "condition", "action", "service", "say")


def _action_kind(raw: Any) -> str:
    if isinstance(raw, ConditionBase):
        return "condition"
    if not isinstance(raw, dict) or any(key in raw for key in _UNSUPPORTED):
        return "refused"
    key = next((key for key in _ACTION_KEYS if key in raw), "refused")
    return "call" if key in ("action", "service", "say") else key


Action = tagged_union({
    "call": ServiceCall, "delay": DelayAction, "wait_for_trigger": WaitForTriggerAction,
    "wait_template": WaitTemplateAction, "choose": ChooseAction, "if": IfAction,
    "repeat": RepeatAction, "variables": VariablesAction, "stop": StopAction,
    "condition": Condition,  # a condition model: stops the run when false
    "refused": RefusedAction,
}, _action_kind)
Actions = Annotated[tuple[Action, ...], BeforeValidator(as_list)]

for _model in (ChooseOption, ChooseAction, IfAction, RepeatLoop):
    _model.model_rebuild()

__all__ = [
    "ACTION_KINDS", "HARMLESS_CALL_KEYS", "MQTT_PUBLISH", "SAY_SERVICE", "SAY_SERVICES",
    "Action", "ActionBase", "Actions", "ChooseAction", "ChooseOption", "DelayAction",
    "IfAction", "RepeatAction", "RepeatLoop", "ServiceCall", "StopAction", "Target",
    "VariablesAction", "WaitForTriggerAction", "WaitTemplateAction",
]
