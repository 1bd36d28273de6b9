"""Templates in rules: Home Assistant's template helpers over our registry, in Jinja's
sandbox.

Rendering reuses the device templates' sandbox (``assistant.templating``:
``ImmutableSandboxedEnvironment``, compiled once, bounded in CPU time, loop iterations and
size, an allow-list of filters). A rule's template also gets:

- ``states('light.x')`` (its state, "unknown" when there is no such entity,
  "unavailable" when it is away), ``states.light.x`` (a state object: ``entity_id``,
  ``state``, ``attributes``, ``name``, ``domain``, ``object_id``), ``is_state(id, value)``
  (value may be a list), ``state_attr(id, name)``, ``is_state_attr(id, name, value)``,
  ``has_value(id)``;
- ``now()`` / ``utcnow()`` from the injected clock, ``as_timestamp(value, default)``,
  ``today_at("HH:MM")``; ``datetime`` fields (``now().hour``, ``.weekday()``);
- the rule's variables, ``trigger`` and ``this``.

Helpers are globals of one render (not filters: ``as_timestamp(now())``, not
``now() | as_timestamp``). A :class:`Template` is checked when its rule is read (a syntax
error or a refused construct is a rule error); rendering raises :class:`TemplateError`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from assistant.registry import Entity
from assistant.templating import (  # the shared sandbox (see module doc)
    TemplateError,
    compile_template,
    forgiving_bool,
    render_template,
)

MAX_NATIVE_CHARS = 64 * 1024  # rendered text longer than this stays text
_NO_DEFAULT: Any = object()


class Template(BaseModel):
    """A Jinja template as written in a rule, checked when the rule was read."""

    model_config = ConfigDict(frozen=True)

    text: str


class StateSource(Protocol):
    """Where templates read states: the device registry (``DeviceRegistry.get``)."""

    def get(self, entity_id: str) -> Entity | None: ...


Now = Callable[[], datetime]  # the injected clock's now(), time-zone aware


def is_template_text(text: str) -> bool:
    return "{{" in text or "{%" in text


def template_problem(text: str) -> str | None:
    """Why ``text`` cannot be a template (syntax, a refused construct), or None."""
    compiled = compile_template(text)
    return str(compiled) if isinstance(compiled, Exception) else None


# -- the helpers -----------------------------------------------------------------------------

def _state_text(entity: Entity | None) -> str:
    if entity is None or entity.state is None:
        return "unknown"
    return entity.state if entity.available else "unavailable"


def _state_object(entity: Entity) -> dict[str, Any]:
    return {"entity_id": entity.entity_id, "state": _state_text(entity),
            "attributes": dict(entity.attributes), "name": entity.name,
            "domain": entity.domain, "object_id": entity.entity_id.partition(".")[2]}


class _DomainStates(dict[str, Any]):
    """``states.light``: state objects looked up as they are named (``.kitchen``)."""

    def __init__(self, source: StateSource, domain: str) -> None:
        super().__init__()
        self._source, self._domain = source, domain

    def __missing__(self, object_id: str) -> Any:
        entity = self._source.get(f"{self._domain}.{object_id}")
        if entity is None:
            raise KeyError(object_id)  # undefined in the template
        return _state_object(entity)


class _States(dict[str, Any]):
    """``states('light.x')`` and ``states.light.x``."""

    def __init__(self, source: StateSource) -> None:
        super().__init__()
        self._source = source

    def __call__(self, entity_id: str, rounded: bool = False, with_unit: bool = False) -> str:
        return _state_text(self._source.get(str(entity_id)))

    def __missing__(self, domain: str) -> _DomainStates:
        return _DomainStates(self._source, str(domain))


def _timestamp(value: Any, default: Any = _NO_DEFAULT) -> Any:
    try:
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    except (ValueError, OverflowError, OSError):
        pass
    if default is _NO_DEFAULT:
        raise TemplateError(f"as_timestamp got invalid input {str(value)[:80]!r} "
                            "and no default")
    return default


def helpers(source: StateSource, now: Now) -> dict[str, Any]:
    """The names a rule's template may use besides its variables."""

    def entity(entity_id: Any) -> Entity | None:
        return source.get(str(entity_id))

    def is_state(entity_id: Any, value: Any) -> bool:
        state = _state_text(entity(entity_id))
        return state in value if isinstance(value, list | tuple) else state == value

    def state_attr(entity_id: Any, name: Any) -> Any:
        found = entity(entity_id)
        return None if found is None else found.attributes.get(str(name))

    def is_state_attr(entity_id: Any, name: Any, value: Any) -> bool:
        found = entity(entity_id)
        return found is not None and str(name) in found.attributes \
            and found.attributes[str(name)] == value

    def has_value(entity_id: Any) -> bool:
        return _state_text(entity(entity_id)) not in ("unknown", "unavailable")

    def today_at(clock_time: str = "00:00") -> datetime:
        try:
            at = time.fromisoformat(clock_time)
        except (TypeError, ValueError):
            raise TemplateError(f"today_at: {str(clock_time)[:40]!r} is not HH:MM") from None
        return datetime.combine(now().date(), at, tzinfo=now().tzinfo)

    return {
        "states": _States(source), "is_state": is_state, "state_attr": state_attr,
        "is_state_attr": is_state_attr, "has_value": has_value, "now": now,
        "utcnow": lambda: now().astimezone(UTC), "as_timestamp": _timestamp,
        "today_at": today_at,
    }


# -- rendering -------------------------------------------------------------------------------

def render(template: Template | str, variables: Mapping[str, Any], registry: StateSource,
           now: Now) -> str:
    """The template's text, stripped; ``variables`` holds the rule's variables, ``trigger``
    and ``this``. Raises :class:`TemplateError`."""
    text = template.text if isinstance(template, Template) else template
    return render_template(text, {**variables, **helpers(registry, now)})


def render_bool(template: Template | str, variables: Mapping[str, Any],
                registry: StateSource, now: Now) -> bool:
    """True for "true", "yes", "on", "enable" or "1" (any case), as Home Assistant's
    template conditions."""
    return bool(forgiving_bool(render(template, variables, registry, now), False))


def _native(text: str) -> Any:
    """What Home Assistant makes of a rendered value: a number, boolean, list or mapping
    when the text is one, else the text."""
    if len(text) > MAX_NATIVE_CHARS:
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, str) or (isinstance(value, int) and text.lstrip("-+").startswith("0")
                                  and text.strip("-+") != "0"):
        return text  # "0123" stays text, as in Home Assistant
    return value


def render_value(value: Any, variables: Mapping[str, Any], registry: StateSource,
                 now: Now) -> Any:
    """``value`` (service data, variables) with every template string in it rendered to a
    native value; other values unchanged."""
    if isinstance(value, Template):
        return _native(render(value, variables, registry, now))
    if isinstance(value, str):
        return _native(render(value, variables, registry, now)) if is_template_text(value) \
            else value
    if isinstance(value, dict):
        return {key: render_value(item, variables, registry, now) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(item, variables, registry, now) for item in value]
    return value


__all__ = ["Now", "StateSource", "Template", "TemplateError", "helpers", "is_template_text",
           "render", "render_bool", "render_value", "template_problem"]
