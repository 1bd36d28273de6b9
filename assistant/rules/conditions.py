"""Whether a rule (or a branch of it) goes on: each condition model checked against the home
now, as Home Assistant checks it. A disabled condition holds; an entity that does not exist
(or has no number where one is needed) does not match."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import time
from typing import Any

from assistant.automation.sun import Location, after_event, before_event
from assistant.rules.schema_conditions import (
    WEEKDAYS,
    AndCondition,
    ConditionBase,
    NotCondition,
    NumericStateCondition,
    OrCondition,
    StateCondition,
    SunCondition,
    TemplateCondition,
    TimeCondition,
    TriggerCondition,
)
from assistant.rules.triggers import RuleEnv, in_range, numeric_value, seconds_of, watched_value

Variables = Mapping[str, Any]


def holds(conditions: Iterable[ConditionBase], variables: Variables, env: RuleEnv) -> bool:
    """Whether every condition holds (none given: true)."""
    return all(check(condition, variables, env) for condition in conditions)


def check(condition: ConditionBase, variables: Variables, env: RuleEnv) -> bool:
    if not condition.enabled:
        return True
    return _CHECKS[type(condition)](condition, variables, env)


def _state(condition: StateCondition, variables: Variables, env: RuleEnv) -> bool:
    wanted = set(condition.state)
    held_s = seconds_of(condition.for_duration, env, variables)

    def matches(entity_id: str) -> bool:
        entity = env.registry.get_any(entity_id)
        value = watched_value(entity, condition.attribute)
        if entity is None or value is None or str(value) not in wanted:
            return False
        if held_s:
            return (env.clock.now() - env.last_changed(entity_id)).total_seconds() >= held_s
        return True

    results = (matches(entity_id) for entity_id in condition.entity_id)
    return any(results) if condition.match == "any" else all(results)


def _numeric(condition: NumericStateCondition, variables: Variables, env: RuleEnv) -> bool:
    return all(
        in_range(numeric_value(env.registry.get_any(entity_id), condition.attribute,
                               condition.value_template, env),
                 condition.above, condition.below, env)
        for entity_id in condition.entity_id)


def _time(condition: TimeCondition, variables: Variables, env: RuleEnv) -> bool:
    now = env.clock.now().astimezone(env.timezone)
    if condition.weekday and WEEKDAYS[now.weekday()] not in condition.weekday:
        return False
    return time_between(now.time().replace(tzinfo=None), condition.after, condition.before)


def time_between(now: time, after: time | None, before: time | None) -> bool:
    """``after <= now < before``; a range that passes midnight when after is later."""
    if after is not None and before is not None and after > before:
        return now >= after or now < before
    return (after is None or now >= after) and (before is None or now < before)


def _sun(condition: SunCondition, variables: Variables, env: RuleEnv) -> bool:
    if env.location is None:
        return False  # refused when the rule is loaded; never true without a place
    now = env.clock.now()
    if condition.after is not None and not after_event(now, condition.after,
                                                       condition.after_offset, env.location):
        return False
    return condition.before is None or before_event(now, condition.before,
                                                    condition.before_offset, env.location)


def _template(condition: TemplateCondition, variables: Variables, env: RuleEnv) -> bool:
    return env.render_bool(condition.value_template, variables)


def _trigger(condition: TriggerCondition, variables: Variables, env: RuleEnv) -> bool:
    trigger = variables.get("trigger")
    return isinstance(trigger, Mapping) and str(trigger.get("id")) in condition.id


def _and(condition: AndCondition, variables: Variables, env: RuleEnv) -> bool:
    return holds(condition.conditions, variables, env)


def _or(condition: OrCondition, variables: Variables, env: RuleEnv) -> bool:
    return any(check(item, variables, env) for item in condition.conditions if item.enabled)


def _not(condition: NotCondition, variables: Variables, env: RuleEnv) -> bool:
    return not any(check(item, variables, env) for item in condition.conditions if item.enabled)


_CHECKS: dict[type[ConditionBase], Callable[[Any, Variables, RuleEnv], bool]] = {
    StateCondition: _state,
    NumericStateCondition: _numeric,
    TimeCondition: _time,
    SunCondition: _sun,
    TemplateCondition: _template,
    TriggerCondition: _trigger,
    AndCondition: _and,
    OrCondition: _or,
    NotCondition: _not,
}


def condition_problem(condition: ConditionBase, location: Location | None) -> str | None:
    """Why ``condition`` (or one inside it) cannot be checked in this home, or None."""
    if isinstance(condition, SunCondition) and location is None:
        return "a sun condition needs the home's location (latitude and longitude)"
    for inner in getattr(condition, "conditions", ()):
        found = condition_problem(inner, location)
        if found:
            return found
    return None
