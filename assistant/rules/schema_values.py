"""Value types shared by the rule models: errors, durations, times, entity ids, templates.

Each fuzzy Home Assistant spelling is read by one ``PlainValidator`` that either returns the
normal form or raises ``PydanticCustomError`` with a sentence; ``schema.parse_rule`` turns
those into :class:`RuleError` lines that name the key.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, PlainValidator, Tag, model_validator
from pydantic_core import PydanticCustomError

from assistant.rules.templates import Template, is_template_text, template_problem


class RuleError(ValueError):
    """One thing wrong in a rule file: which file, which rule, which key, and what."""

    def __init__(self, file: Path | None, rule: str, key: str, message: str) -> None:
        self.file, self.rule, self.key, self.message = file, rule, key, message
        super().__init__(str(self))

    @property
    def errors(self) -> tuple[RuleError, ...]:
        return (self,)

    def __str__(self) -> str:
        where = [f"{self.file}:" if self.file is not None else "", f"rule {self.rule!r}:"
                 if self.rule else "", f"{self.key}:" if self.key else ""]
        return " ".join([part for part in where if part] + [self.message])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleError) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class RuleErrors(RuleError):
    """Every error of one rule (or file); ``str`` gives one line each."""

    def __init__(self, errors: tuple[RuleError, ...]) -> None:
        first = errors[0]
        self._all = errors
        super().__init__(first.file, first.rule, first.key, first.message)

    @property
    def errors(self) -> tuple[RuleError, ...]:
        return self._all

    def __str__(self) -> str:
        return "\n".join(RuleError.__str__(error) for error in self._all)


class Model(BaseModel):
    """Frozen, unknown keys are errors, Home Assistant's key spelled by alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("rule", message)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 4, 4
MAX_DEPTH = 40  # nested mappings and lists in one rule; HA's deepest are about a dozen


def shown(value: Any) -> str:
    """``value`` for an error message: short, whatever it is."""
    return _SHORT.repr(value)


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests mappings and lists more than ``limit`` levels deep."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            pending.extend((child, depth + 1) for child in item)
    return False


def as_list(value: Any) -> Any:
    """Home Assistant takes one item or a list of them."""
    if value is None:
        return []
    return value if isinstance(value, list | tuple) else [value]


# -- text ------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, bool):
        word = "on" if value else "off"
        raise problem(f"{value} is a YAML boolean here: write \"{word}\" (in quotes)")
    if isinstance(value, int | float):
        return str(value)  # Home Assistant's cv.string: 21 is "21"
    if not isinstance(value, str):
        raise problem(f"{shown(value)} is not text")
    return value


Text = Annotated[str, PlainValidator(_text)]


def texts(value: Any) -> tuple[str, ...]:
    return tuple(_text(item) for item in as_list(value))


Texts = Annotated[tuple[str, ...], PlainValidator(texts)]


# -- entity ids ------------------------------------------------------------------------------

ENTITY_ID = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def entity_id(value: Any) -> str:
    if isinstance(value, str) and is_template_text(value):
        raise problem("templates are not supported in entity_id")
    if not isinstance(value, str) or not ENTITY_ID.match(value.strip().lower()):
        raise problem(f"{shown(value)} is not an entity id (like light.kitchen)")
    return value.strip().lower()


def _entity_ids(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else as_list(value)  # HA: "a.b, c.d"
    ids = tuple(entity_id(item) for item in items)
    if not ids:
        raise problem("names no entity")
    return ids


EntityIds = Annotated[tuple[str, ...], PlainValidator(_entity_ids)]


def _optional_entity_ids(value: Any) -> tuple[str, ...]:
    return () if value is None or value == [] else _entity_ids(value)


OptionalEntityIds = Annotated[tuple[str, ...], PlainValidator(_optional_entity_ids)]


# -- templates -------------------------------------------------------------------------------

def template(value: Any) -> Template:
    if isinstance(value, Template):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem(f"{shown(value)} is not a template")
    text = str(value)
    error = template_problem(text)
    if error:
        raise problem(f"bad template: {error}")
    return Template(text=text)


TemplateValue = Annotated[Template, PlainValidator(template)]


def template_if_text(value: Any) -> Any:
    """A string holding ``{{``/``{%`` becomes a checked :class:`Template`; the rest stays."""
    return template(value) if isinstance(value, str) and is_template_text(value) else value


# -- durations -------------------------------------------------------------------------------

_CLOCK_TEXT = re.compile(r"^(-)?(\d+):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?$")
_DURATION_KEYS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1,
                  "milliseconds": 0.001}
MAX_DURATION_S = 366 * 86400.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _seconds(value: Any) -> float:
    """Seconds in a duration: a number, "HH:MM[:SS]", or {days, hours, minutes, ...}."""
    seconds = _number(value)
    if seconds is None and isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _CLOCK_TEXT.match(text)
            if match:
                sign, hours, minutes, secs = match.groups()
                seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs or 0)
                seconds = -seconds if sign else seconds
    if seconds is None and isinstance(value, dict) and value:
        unknown = [key for key in value if key not in _DURATION_KEYS]
        if unknown:
            raise problem(f"{shown(unknown[0])} is not a duration unit "
                          f"({', '.join(_DURATION_KEYS)})")
        parts = [_number(amount) for amount in value.values()]
        if any(part is None for part in parts):
            raise problem(f"{shown(value)} is not a duration: its amounts must be numbers")
        seconds = sum(part * _DURATION_KEYS[key] for key, part in zip(value, parts, strict=True)
                      if part is not None)
    if seconds is None or math.isnan(seconds):
        raise problem(f"{shown(value)} is not a duration")
    if abs(seconds) > MAX_DURATION_S:
        raise problem(f"{shown(value)} is longer than a year")
    return seconds


def duration(value: Any) -> float | Template:
    """A duration in seconds (not negative), or a template rendering to one."""
    if isinstance(value, str) and is_template_text(value):
        return template(value)
    seconds = _seconds(value)
    if seconds < 0:
        raise problem(f"{shown(value)} is negative")
    return seconds


Duration = Annotated[float | Template, PlainValidator(duration)]


def _offset(value: Any) -> float:
    """A signed offset in seconds: -1800, "-00:30:00", {minutes: -30}."""
    return _seconds(value)


Offset = Annotated[float, PlainValidator(_offset)]


# -- times of day ----------------------------------------------------------------------------

_TIME_TEXT = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 86400:
        # YAML 1.1 reads an unquoted 7:30 as the sexagesimal number 450, 7:30:00 as 27000
        hours, minutes, seconds = ((value // 3600, value // 60 % 60, value % 60)
                                   if value >= 3600 else (value // 60, value % 60, 0))
        if hours < 24:
            return time(hours, minutes, seconds)
    if isinstance(value, str):
        if ENTITY_ID.match(value.strip()):
            raise problem(f"{value.strip()!r}: times from entities (input_datetime, sensors) "
                          "are not supported; write \"HH:MM\" or \"HH:MM:SS\"")
        match = _TIME_TEXT.match(value.strip())
        if match:
            hours, minutes, seconds = (int(part or 0) for part in match.groups())
            if hours < 24 and minutes < 60 and seconds < 60:
                return time(hours, minutes, seconds)
    raise problem(f"{shown(value)} is not a time of day (\"HH:MM\" or \"HH:MM:SS\")")


TimeOfDay = Annotated[time, PlainValidator(time_of_day)]


def _times(value: Any) -> tuple[time, ...]:
    times = tuple(time_of_day(item) for item in as_list(value))
    if not times:
        raise problem("names no time")
    return times


TimesOfDay = Annotated[tuple[time, ...], PlainValidator(_times)]


# -- numbers and other small things ----------------------------------------------------------

def _threshold(value: Any) -> float | str:
    """``above``/``below``: a number, or the entity id whose state is the number."""
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return entity_id(value)
    raise problem(f"{shown(value)} is neither a number nor an entity id")


Threshold = Annotated[float | str, PlainValidator(_threshold)]


def _variables(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise problem(f"{shown(value)} is not a mapping of names to values")
    return {key: checked_templates(item) for key, item in value.items()}


Variables = Annotated[dict[str, Any], PlainValidator(_variables)]


def checked_templates(value: Any, where: str = "") -> Any:
    """``value`` with every template string in it checked (and kept as text: rendered
    later, wherever it is); an error says where in ``value`` the template is."""
    if isinstance(value, str):
        if is_template_text(value):
            error = template_problem(value)
            if error:
                raise problem(f"bad template{f' in {where}' if where else ''}: {error}")
        return value
    if isinstance(value, dict):
        return {key: checked_templates(item, f"{where}.{key}" if where else str(key))
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [checked_templates(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _alias(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise problem(f"{shown(value)} is not text")
    return str(value)


Name = Annotated[str, PlainValidator(_alias)]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"{shown(value)} is not true or false")
    return value


Flag = Annotated[bool, PlainValidator(_flag)]


def renamed(pairs: dict[str, str]) -> Callable[[Any], Any]:
    """A before-validator that accepts Home Assistant's older key names (``service`` for
    ``action``...) and refuses both spellings at once."""

    def rename(raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        for old, new in pairs.items():
            if old in raw:
                if new in raw:
                    raise problem(f"both {old!r} and {new!r} are given; keep {new!r}")
                raw[new] = raw.pop(old)
        return raw

    return rename


def tagged_union(members: Mapping[str, type[BaseModel]] | Mapping[str, Any],
                 kind: Callable[[Any], Any]) -> Any:
    """One of ``members`` (kind → model type), chosen by ``kind(raw)``; ``members`` has a
    "refused" model that explains what is wrong when the kind is none of the others. A model
    built in code is its own kind. Union tags are "@<kind>" (``key_path`` leaves them out)."""
    by_model = {model: tag for tag, model in members.items() if isinstance(model, type)}

    def choose(raw: Any) -> str:
        tag = by_model.get(type(raw)) if isinstance(raw, BaseModel) else None
        tag = tag if tag is not None else kind(raw)
        known = isinstance(tag, str) and tag in members and tag != "refused"
        return f"@{tag}" if known else "@refused"

    union = Union[tuple(Annotated[model, Tag(f"@{tag}")]  # noqa: UP007 - built at run time
                        for tag, model in members.items())]
    return Annotated[union, Discriminator(choose)]


def require_some(model: BaseModel, *names: str) -> None:
    """Refuses ``model`` when none of the fields ``names`` is given."""
    if all(getattr(model, name) in (None, ()) for name in names):
        raise problem(f"needs {', '.join(names[:-1])} or {names[-1]}")


class NumericBounds(Model):
    """What ``numeric_state`` triggers and conditions read and compare: the state (or an
    attribute, or a template over ``state``, the state object) above / below a number or
    the number in another entity's state. One bound at least."""

    entity_id: EntityIds
    attribute: Name | None = None
    value_template: TemplateValue | None = None
    above: Threshold | None = None
    below: Threshold | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> NumericBounds:
        require_some(self, "above", "below")
        return self
