"""What ``mimo-home demo`` shows of the daemon at work, so a newcomer sees what happens: each
request as it is answered (its text, the path that understood it, the tools it ran, the
commands they sent, the state changes those caused, the reply) and how the reasoning model
is doing.

It hears the daemon's watchers (``Daemon.watch``) and the registry's listeners, never the
logs. A state change counts as a request's doing only for an entity the request sent a
command to, within ``CAUSE_WINDOW_S`` of that command: other devices' reports (a sensor's
periodic reading) are not shown, so they cannot drown the requests. A scene or a script
changes other entities: for ``WIDE_WINDOW_S`` after a command to one, every entity's change
is shown as its doing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.daemon import CommandsSent, Daemon, DaemonEvent, RequestAnswered
from assistant.messages import Action, EntityCommand
from assistant.registry import Entity, RegistryChange
from assistant.safety import extract_secrets, redact

CAUSE_WINDOW_S = 3.0  # a device answers a command well within this; later news is not ours
WIDE_WINDOW_S = 1.0
WIDE_DOMAINS = frozenset({"scene", "script"})  # their commands move other entities
UNANSWERED_S = 120.0  # a request with commands but no answer this long is forgotten
MAX_LINES = 6  # of each kind per request: a sweep over 30 lights ends "... and 25 more"
MAX_NAMED = 4  # entities named on one tool or command line, then "+N"
MAX_TEXT = 160
MAX_VALUE = 24
MAX_ATTRIBUTES = 3  # changed attributes shown per state change
REASONER_POLL_S = 0.5  # the reasoner has no status event; its status is a cheap property
SCHEDULED = "(timer, schedule or rule)"

Write = Callable[[str], None]


def print_now(text: str) -> None:
    print(text, flush=True)


@dataclass
class _Request:
    """A request whose commands went out and whose answer has not been shown yet."""

    since: float
    commands: list[EntityCommand] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


@dataclass
class _Target:
    """An entity a command just went to: its changes until ``until`` are that command's."""

    request_id: int | None
    until: float
    last: Entity | None  # as it was when the command went, then as last shown
    commanded: bool = True  # False: watched because a scene or script was commanded
    heard: bool = False  # the device has reported since


class RequestDisplay:
    """Writes each request the daemon answers, with its path, actions, commands and the
    state changes they caused; ``start`` returns the function that stops it."""

    def __init__(self, daemon: Daemon, write: Write = print_now, *,
                 clock: Callable[[], float] = time.monotonic,
                 cause_window_s: float = CAUSE_WINDOW_S) -> None:
        self._daemon = daemon
        self._write = write
        self._clock = clock
        self._window = cause_window_s
        self._requests: dict[int, _Request] = {}
        self._targets: dict[str, _Target] = {}
        self._late: dict[int | None, int] = {}  # lines shown after the answer, per request

    def start(self) -> Callable[[], None]:
        stops = [self._daemon.watch(self._on_event),
                 self._daemon.registry.subscribe(self._on_change)]

        def stop() -> None:
            for stop_one in stops:
                stop_one()

        return stop

    def _on_event(self, event: DaemonEvent) -> None:
        now = self._clock()
        self._forget_before(now)
        if isinstance(event, CommandsSent):
            self._on_commands(event, now)
        elif isinstance(event, RequestAnswered):
            shown = self._requests.pop(event.request_id, None) or _Request(now)
            self._write(render_request(event, shown.commands, shown.changes))

    def _on_commands(self, event: CommandsSent, now: float) -> None:
        if any(c.entity_id.split(".", 1)[0] in WIDE_DOMAINS for c in event.commands):
            for entity in self._daemon.registry.entities():
                self._targets[entity.entity_id] = _Target(
                    event.request_id, now + WIDE_WINDOW_S, entity, commanded=False)
        for command in event.commands:
            self._targets[command.entity_id] = _Target(
                event.request_id, now + self._window,
                self._daemon.registry.get_any(command.entity_id))
        if event.request_id is None:
            self._write("\n".join(_capped(f"{SCHEDULED} sent", _commands(event.commands))))
        else:
            self._requests.setdefault(event.request_id, _Request(now)).commands.extend(
                event.commands)

    def _on_change(self, change: RegistryChange) -> None:
        entity_id = change.entity_id or ""
        target = self._targets.get(entity_id)
        if target is None or self._clock() > target.until:
            return
        entity = self._daemon.registry.get_any(entity_id)
        text = describe_change(entity_id, target.last, entity)
        if (text is None and change.reported and target.commanded and not target.heard
                and entity is not None):
            text = f"{entity_id}: stays {_value(entity.state)}"  # it did answer the command
        target.heard = target.heard or change.reported
        if text is None:
            return
        target.last = entity
        pending = self._requests.get(target.request_id) \
            if target.request_id is not None else None
        if pending is not None:
            pending.changes.append(text)
        else:  # it came after the answer was shown: its own line, tagged with the request
            self._write_late(target.request_id, text)

    def _write_late(self, request_id: int | None, text: str) -> None:
        shown = self._late.get(request_id, 0)
        self._late[request_id] = shown + 1
        if shown > MAX_LINES:
            return
        tag = f"#{request_id}" if request_id is not None else SCHEDULED
        self._write(f"{tag} state  {text if shown < MAX_LINES else '... more not shown'}")

    def _forget_before(self, now: float) -> None:
        self._targets = {k: t for k, t in self._targets.items() if t.until >= now}
        self._requests = {k: r for k, r in self._requests.items()
                          if now - r.since < UNANSWERED_S}
        watched = {t.request_id for t in self._targets.values()}
        self._late = {k: n for k, n in self._late.items() if k in watched}


def render_request(event: RequestAnswered, commands: Iterable[EntityCommand],
                   changes: Iterable[str]) -> str:
    """One request as the terminal shows it, for example::

        #1 "turn on the kitchen light"  [fast, 14 ms]
           tool   turn_on light.kitchen
           sent   turn_on light.kitchen
           state  light.kitchen: off -> on
           reply  Turned on the kitchen light.
    """
    response = event.response
    text = _shorten(extract_secrets(event.request.text)[0], MAX_TEXT)
    lines = [f"#{event.request_id} {json.dumps(text, ensure_ascii=False)}  "
             f"[{response.path}, {event.elapsed_ms:.0f} ms]"]
    lines += _capped("   tool  ", _actions(response.actions))
    lines += _capped("   sent  ", _commands(commands))
    lines += _capped("   state ", changes)
    lines += _capped("   asks  ", (f"{line} (waits for a yes)"
                                   for line in _actions(response.pending)))
    lines.append(f"   reply  {_shorten(response.reply, MAX_TEXT)}")
    return "\n".join(lines)


def describe_change(entity_id: str, old: Entity | None, new: Entity | None) -> str | None:
    """``light.kitchen: off -> on, brightness=255`` (an attribute it did not have),
    ``light.kitchen: brightness 255 -> 128``, or None when nothing shown changed."""
    if new is None:
        return None
    before_state = old.state if old is not None else None
    before = old.attributes if old is not None else {}
    parts = [f"{_value(before_state)} -> {_value(new.state)}"] \
        if before_state != new.state else []
    changed = [key for key in sorted({*before, *new.attributes})
               if before.get(key) != new.attributes.get(key)]
    parts += [f"{key}={_value(new.attributes[key])}" if before.get(key) is None
              else f"{key} {_value(before[key])} -> {_value(new.attributes.get(key))}"
              for key in changed[:MAX_ATTRIBUTES]]
    if len(changed) > MAX_ATTRIBUTES:
        more = len(changed) - MAX_ATTRIBUTES
        parts.append(f"{more} more attribute{'s' if more > 1 else ''}")
    if old is not None and old.available != new.available:
        parts.append("available" if new.available else "unavailable")
    return f"{entity_id}: {', '.join(parts)}" if parts else None


def describe_reasoner(status: str, model: str, elapsed_s: float) -> str:
    if status == "loading":
        return (f"reasoning model: loading {model} in the background; "
                "the fast path answers meanwhile")
    if status == "ready":
        return f"reasoning model: ready ({model}, {elapsed_s:.1f} s after the start)"
    if status.startswith("failed"):
        return f"reasoning model: {status}; only the fast path answers"
    if status == "restarting":
        return "reasoning model: restarting its worker; the fast path answers meanwhile"
    return f"reasoning model: {status}"


async def show_reasoner(daemon: Daemon, write: Write = print_now, *,
                        since: float | None = None, poll_s: float = REASONER_POLL_S) -> None:
    """Writes how the reasoning model is doing each time that changes (loading, ready,
    failed, restarting), with the time since ``since`` (a ``time.monotonic()``, by default
    now); runs until cancelled."""
    reasoner = daemon.reasoner
    if reasoner is None:
        write("reasoning model: off (llm.enabled is false); only the fast path answers")
        return
    llm = daemon.config.llm
    model = llm.model_path.name if llm.model_path is not None \
        else llm.endpoint_model or llm.endpoint_url or "no model configured"
    started, last = time.monotonic() if since is None else since, ""
    while True:
        status = reasoner.status
        if status != last:
            write(describe_reasoner(status, model, time.monotonic() - started))
            last = status
        await asyncio.sleep(poll_s)


def _capped(label: str, items: Iterable[str]) -> list[str]:
    shown = list(items)
    if len(shown) > MAX_LINES:
        shown = [*shown[:MAX_LINES - 1], f"... and {len(shown) - MAX_LINES + 1} more"]
    return [f"{label} {item}" for item in shown]


def _actions(actions: Iterable[Action]) -> list[str]:
    return _grouped((a.tool, a.entity_id, {k: v for k, v in a.args.items()
                                           if k not in ("entity_id", "entity_ids")})
                    for a in actions)


def _commands(commands: Iterable[EntityCommand]) -> list[str]:
    return _grouped((c.service, c.entity_id, redact(c.params)) for c in commands)


def _grouped(items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[str]:
    """``turn_off light.a, light.b +3``: one line per verb and arguments, in order."""
    groups: dict[tuple[str, str], list[str]] = {}
    for verb, entity_id, params in items:
        args = "".join(f" {key}={_value(value)}" for key, value in params.items())
        groups.setdefault((verb, args), []).append(entity_id)
    return [f"{verb} {_named(entity_ids)}{args}" for (verb, args), entity_ids in groups.items()]


def _named(entity_ids: list[str]) -> str:
    named = ", ".join(entity_ids[:MAX_NAMED])
    return named if len(entity_ids) <= MAX_NAMED else f"{named} +{len(entity_ids) - MAX_NAMED}"


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)
    return _shorten(text, MAX_VALUE)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
