"""Home Assistant templates in Jinja's sandbox: devices' ``value_template`` and
``command_template`` (HA discovery), and rules' templates (``assistant/rules/templates.py``
adds the state helpers there).

Templates are rendered by jinja2's ``ImmutableSandboxedEnvironment`` with what Home Assistant
offers MQTT devices: ``value`` and ``value_json`` (undefined when the payload is not JSON);
Home Assistant's ``float``, ``int`` and ``round`` (failing without a default, as in
``| float(0)``), ``from_json``, ``to_json``, ``is_defined``, ``iif``, ``bool`` and
``is_number``; Jinja's safe filters, its tests and statements (``if``, ``for``, ``set``,
``with``, inline ``if … else``). An undefined value fails when printed or computed with but is
false in a test, as in Home Assistant. Output is stripped; a dict or list prints as JSON.

What a device's template may cost is bounded without threads, by three budgets per render:

- CPU time (:data:`RENDER_CPU_S`, the thread's own, so a busy machine does not trip it) and
  loop iterations (:data:`MAX_LOOP_ITERATIONS`): the template is rewritten as it is compiled
  so that every loop iteration, filter, test, call, attribute or item access, comparison,
  concatenation and assignment spends from them; ``range`` stops at :data:`MAX_RANGE`;
- size (:data:`MAX_SIZE`, characters plus items): what a ``set`` or ``with`` stores, what a
  filter or ``~`` takes, and what ``*``, ``+``, ``**``, ``%``, ``join`` and ``replace`` would
  build is measured before it is built (shared references counted each time, so no value
  grows by doubling), and the output is streamed and cut there;
- the language is an allow-list: the filters and globals above (no ``format``, ``center``,
  ``indent``, regular expressions, ``namespace``), a few methods of strings and dicts that
  cannot grow a value, and no macros, call or filter blocks, block ``set``, recursive loops
  or includes. Templates over :data:`MAX_TEMPLATE_CHARS` are refused.

So every step between two budget checks costs at most about :data:`MAX_SIZE` operations. A
template that once ran out of CPU time is refused from then on.

Each template string is compiled once (a bounded cache keeps it, a refusal too).
:class:`UnsupportedTemplateError` means the template needs what is not offered (another
filter, Home Assistant's state machine); :class:`TemplateRenderError` that it failed on this
payload (a missing key, not a number, over a budget).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.filters import do_int
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS as JINJA_TESTS
from jinja2.visitor import NodeTransformer

MAX_TEMPLATE_CHARS = 16 * 1024
MAX_SIZE = 256 * 1024  # Home Assistant's limit on template output
MAX_LOOP_ITERATIONS = 10_000
MAX_RANGE = 1_000
RENDER_CPU_S = 0.1
MAX_POWER_BITS = 4096  # int ** int beyond this many bits is refused
_CLOCK_EVERY = 64  # budget steps between two looks at the CPU clock
_CACHED_TEMPLATES = 512


class TemplateError(ValueError):
    """A device template that produced no text."""


class UnsupportedTemplateError(TemplateError):
    """The template needs more than devices are offered here."""


class TemplateRenderError(TemplateError):
    """The template failed on this payload (missing key, not a number, over a budget)."""


class _OutOfTimeError(TemplateRenderError):
    pass


# -- the budget of one render --------------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    deadline: float  # time.thread_time()
    steps: int = 0
    iterations: int = MAX_LOOP_ITERATIONS

    def step(self) -> None:
        self.steps += 1
        if self.steps % _CLOCK_EVERY == 0 and time.thread_time() > self.deadline:
            raise _OutOfTimeError(f"rendering took over {RENDER_CPU_S} s of CPU time")

    def iterate(self) -> None:
        self.iterations -= 1
        if self.iterations < 0:
            raise TemplateRenderError(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
        self.step()


_BUDGET: ContextVar[_Budget] = ContextVar("ha_template_budget")


def _step() -> None:
    _BUDGET.get().step()


def _size(value: Any) -> int:
    """Characters plus items in ``value``, shared references counted each time; stops
    counting just past :data:`MAX_SIZE`."""
    remaining = MAX_SIZE
    pending = [value]
    while pending and remaining >= 0:
        item = pending.pop()
        if isinstance(item, str):
            remaining -= len(item)
        elif isinstance(item, dict):
            remaining -= 1 + len(item)
            if remaining >= 0:
                pending.extend(item.keys())
                pending.extend(item.values())
        elif isinstance(item, list | tuple):
            remaining -= 1 + len(item)
            if remaining >= 0:
                pending.extend(item)
        else:
            remaining -= 1
    return MAX_SIZE - remaining


def _check_size(size: int) -> None:
    if size > MAX_SIZE:
        raise TemplateRenderError(f"a value of over {MAX_SIZE} characters and items")


def _sized(value: Any) -> Any:
    _step()
    _check_size(_size(value))
    return value


# What the compile-time rewrite (_Guard) puts into templates. pass_context keeps Jinja from
# running them once at compile time: every render spends its own budget.


@jinja2.pass_context
def _counted(context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _BUDGET.get()
    for item in iterable:
        budget.iterate()
        yield item


@jinja2.pass_context
def _stored(context: Any, value: Any) -> Any:
    return _sized(value)


@jinja2.pass_context
def _stepped(context: Any, value: Any) -> Any:
    _step()
    return value


@jinja2.pass_context
def _concatenated(context: Any, parts: list[Any]) -> str:
    texts, size = [], 0
    for part in parts:
        _sized(part)
        text = str(part)
        size += len(text)
        _check_size(size)
        texts.append(text)
    return "".join(texts)


_GUARD_FILTERS = {
    "_counted": _counted, "_stored": _stored, "_stepped": _stepped,
    "_concatenated": _concatenated,
}


def _guard_filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Rewrites a parsed template so that its costly constructs spend from the budget."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        if node.recursive:
            raise UnsupportedTemplateError("recursive loops are not offered")
        node = self.generic_visit(node)
        node.iter = _guard_filter(node.iter, "_counted")
        return node

    def visit_Assign(self, node: nodes.Assign) -> nodes.Assign:
        node = self.generic_visit(node)
        node.node = _guard_filter(node.node, "_stored")
        return node

    def visit_With(self, node: nodes.With) -> nodes.With:
        node = self.generic_visit(node)
        node.values = [_guard_filter(value, "_stored") for value in node.values]
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Filter:
        return _guard_filter(self.generic_visit(node), "_stepped")

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        node = self.generic_visit(node)
        return _guard_filter(nodes.List(node.nodes, lineno=node.lineno), "_concatenated")


# -- Home Assistant's filters and globals --------------------------------------------------

_NO_DEFAULT: Any = object()


def _no_default(function: str, value: Any) -> TemplateRenderError:
    return TemplateRenderError(f"{function} got invalid input {str(value)[:80]!r} and no default")


def _is_undefined(value: Any) -> bool:
    return isinstance(value, jinja2.Undefined)


def forgiving_float(value: Any, default: Any = _NO_DEFAULT) -> Any:
    if not _is_undefined(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    if default is _NO_DEFAULT:
        raise _no_default("float", value)
    return default


def forgiving_int(value: Any, default: Any = _NO_DEFAULT, base: int = 10) -> Any:
    # Jinja's int: "21.7" | int is 21; Home Assistant fails where Jinja would return 0.
    result = _NO_DEFAULT if _is_undefined(value) else do_int(value, _NO_DEFAULT, base)
    if result is not _NO_DEFAULT:
        return result
    if default is _NO_DEFAULT:
        raise _no_default("int", value)
    return default


def forgiving_round(
    value: Any, precision: int = 0, method: str = "common", default: Any = _NO_DEFAULT
) -> Any:
    number = forgiving_float(value, None)
    try:
        if number is not None:
            multiplier = 10.0 ** int(precision)
            if method == "ceil":
                number = math.ceil(number * multiplier) / multiplier
            elif method == "floor":
                number = math.floor(number * multiplier) / multiplier
            elif method == "half":
                number = round(number * 2) / 2
            else:
                number = round(number, int(precision))
            return int(number) if precision == 0 else number
    except (TypeError, ValueError, OverflowError):
        pass
    if default is _NO_DEFAULT:
        raise _no_default("round", value)
    return default


_TRUE_WORDS = frozenset({"1", "true", "yes", "on", "enable"})  # Home Assistant's cv.boolean
_FALSE_WORDS = frozenset({"0", "false", "no", "off", "disable"})


def forgiving_bool(value: Any, default: Any = _NO_DEFAULT) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    if default is _NO_DEFAULT:
        raise _no_default("bool", value)
    return default


def is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def iif(value: Any, if_true: Any = True, if_false: Any = False,
        if_none: Any = _NO_DEFAULT) -> Any:
    if value is None and if_none is not _NO_DEFAULT:
        return if_none
    return if_true if value else if_false


def fail_when_undefined(value: Any) -> Any:
    if _is_undefined(value):
        value()  # an Undefined raises when called
    return value


def from_json(value: Any) -> Any:
    return json.loads(value)


def to_json(value: Any, ensure_ascii: bool = True) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii)


def bounded_replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    occurrences = len(text) + 1 if not old else text.count(old)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    _check_size(len(text) + occurrences * (len(new) - len(old)))
    return text.replace(old, new, -1 if count is None else count)


@jinja2.pass_eval_context
def bounded_join(eval_context: Any, value: Iterable[Any], d: Any = "",
                 attribute: Any = None) -> str:
    items = list(value)
    _check_size(_size(items) + len(str(d)) * max(len(items) - 1, 0))
    return JINJA_FILTERS["join"](eval_context, items, d, attribute)


@jinja2.pass_environment
def numeric_sum(environment: Any, iterable: Iterable[Any], attribute: Any = None,
                start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise TemplateRenderError("sum adds numbers")  # lists would grow by doubling
    return JINJA_FILTERS["sum"](environment, iterable, attribute, start)


def bounded_range(*arguments: int) -> range:
    numbers = range(*arguments)
    if len(numbers) > MAX_RANGE:
        raise TemplateRenderError(f"a range of more than {MAX_RANGE} items")
    return numbers


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that spends a step and refuses an oversized input."""
    pass_arg = getattr(function, "jinja_pass_arg", None)
    if pass_arg is None:

        @wraps(function)
        def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
            return function(_sized(value), *args, **kwargs)

        return guarded

    @wraps(function)
    def guarded_passing(passed: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        return function(passed, _sized(value), *args, **kwargs)

    guarded_passing.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded_passing


# -- the environment -----------------------------------------------------------------------

_SAFE_JINJA_FILTERS = (
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first", "groupby",
    "items", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
    "reverse", "select", "selectattr", "sort", "string", "title", "tojson", "trim",
    "truncate", "unique", "upper", "wordcount",
)
_OWN_FILTERS: dict[str, Callable[..., Any]] = {
    "bool": forgiving_bool,
    "float": forgiving_float,
    "from_json": from_json,
    "iif": iif,
    "int": forgiving_int,
    "is_defined": fail_when_undefined,
    "is_number": is_number,
    "join": bounded_join,
    "replace": bounded_replace,
    "round": forgiving_round,
    "sum": numeric_sum,
    "to_json": to_json,
}
_GLOBALS: dict[str, Any] = {
    "bool": forgiving_bool,
    "dict": dict,
    "float": forgiving_float,
    "iif": iif,
    "int": forgiving_int,
    "is_number": is_number,
    "range": bounded_range,
}
# Methods a template may call: none that grows a value (center, zfill, format, replace...).
_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset({
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "isupper", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "title", "upper",
    }),
    dict: frozenset({"get", "items", "keys", "values"}),
    # rule templates' now(): fields and methods whose results are small
    datetime: frozenset({
        "year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo",
        "weekday", "isoweekday", "isoformat", "timestamp", "date", "time", "replace",
    }),
    date: frozenset({"year", "month", "day", "weekday", "isoweekday", "isoformat"}),
    time_of_day: frozenset({"hour", "minute", "second", "microsecond", "isoformat"}),
    timedelta: frozenset({"days", "seconds", "microseconds", "total_seconds"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}
_REFUSED_NODES = (
    nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock, nodes.Import,
    nodes.FromImport, nodes.Include, nodes.Extends, nodes.Block,
)
# "%*d", "%.*f", or a width or precision of 1000 and more
_WIDE_FORMAT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{4,}|\d*\.(?:\*|\d{4,}))")


class _Undefined(jinja2.StrictUndefined):
    """Fails when printed or computed with, but is false in a test, as in Home Assistant:
    ``{% if value_json.x %}`` works on payloads without ``x``."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False


def _finalize(value: Any) -> Any:
    return json.dumps(_sized(value)) if isinstance(value, dict | list) else value


class _DeviceTemplateEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, LoopContext):
            return super().is_safe_attribute(obj, attr, value)
        allowed = next((names for kind, names in _SAFE_METHODS.items() if isinstance(obj, kind)),
                       frozenset())
        return attr in allowed and super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # no str.format: "{:>100000000}" would build a huge string

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return super().getitem(obj, argument)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _step()
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _step()
        sequences = str | list | tuple
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, sequences) and isinstance(times, int):
                    _check_size(_size(sequence) * times)
        elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            _check_size(_size(left) + _size(right))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * left.bit_length() > MAX_POWER_BITS:
                raise TemplateRenderError(f"a power of over {MAX_POWER_BITS} bits")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise TemplateRenderError("a %-format wider than 999 characters")
        return super().call_binop(context, operator, left, right)


def _environment() -> _DeviceTemplateEnvironment:
    environment = _DeviceTemplateEnvironment(
        undefined=_Undefined, finalize=_finalize, autoescape=False, cache_size=0
    )
    filters = {**{name: JINJA_FILTERS[name] for name in _SAFE_JINJA_FILTERS}, **_OWN_FILTERS}
    environment.filters = {
        **{name: _guarded(function) for name, function in filters.items()}, **_GUARD_FILTERS
    }
    tests = {**JINJA_TESTS, "is_number": is_number}
    environment.tests = {name: _guarded(function) for name, function in tests.items()}
    environment.globals = dict(_GLOBALS)
    return environment


_ENVIRONMENT = _environment()


@dataclass(slots=True)
class _Compiled:
    template: jinja2.Template
    free_names: frozenset[str]  # names the template reads but neither sets nor has as globals
    out_of_time: bool = False  # it once ran out of CPU time: refused from then on


@lru_cache(maxsize=_CACHED_TEMPLATES)
def compile_template(source: str) -> _Compiled | UnsupportedTemplateError:
    """The template ready to render, or why it cannot be (cached as well: a broken template
    on a busy topic is not parsed again for every message)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return UnsupportedTemplateError(f"a template of over {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = _ENVIRONMENT.parse(source)
        refused = next(tree.find_all(_REFUSED_NODES), None)
        if refused is not None:
            return UnsupportedTemplateError(f"{type(refused).__name__} is not offered")
        free_names = frozenset(meta.find_undeclared_variables(tree) - _GLOBALS.keys())
        return _Compiled(_ENVIRONMENT.from_string(_Guard().visit(tree)), free_names)
    except UnsupportedTemplateError as error:
        return error
    except (jinja2.TemplateError, RecursionError, SyntaxError, MemoryError) as error:
        return UnsupportedTemplateError(f"{type(error).__name__}: {str(error)[:200]}")


# -- rendering -----------------------------------------------------------------------------


def value_variables(payload: str) -> dict[str, Any]:
    """``value`` and, when the payload is JSON, ``value_json``: a value template's variables."""
    try:
        return {"value": payload, "value_json": json.loads(payload)}
    except (ValueError, RecursionError):
        return {"value": payload}


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """``template`` rendered with ``variables``, stripped; see the module docstring."""
    compiled = compile_template(template)
    if isinstance(compiled, UnsupportedTemplateError):
        raise compiled
    if compiled.out_of_time:
        raise TemplateRenderError("the template once ran out of CPU time")
    unknown = compiled.free_names - variables.keys() - {"value_json"}
    if unknown:
        raise UnsupportedTemplateError(f"{', '.join(sorted(unknown))[:200]} is not offered")
    token = _BUDGET.set(_Budget(time.thread_time() + RENDER_CPU_S))
    try:
        parts, size = [], 0
        for part in compiled.template.generate(variables):
            size += len(part)
            _check_size(size)
            parts.append(part)
        return "".join(parts).strip()
    except _OutOfTimeError:
        compiled.out_of_time = True
        raise
    except TemplateError:
        raise
    except jinja2.exceptions.SecurityError as error:
        raise UnsupportedTemplateError(str(error)[:200]) from None
    except (jinja2.TemplateError, ValueError, TypeError, LookupError, ArithmeticError,
            RecursionError, MemoryError) as error:
        raise TemplateRenderError(f"{type(error).__name__}: {str(error)[:200]}") from None
    finally:
        _BUDGET.reset(token)
