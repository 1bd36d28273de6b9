"""Hearing back from devices after a command, so that a reply says what the devices report
rather than what was asked of them.

A ``ReportWatch`` listens to the registry from before the commands go out (a quick device
may answer before the sender returns) until each commanded entity has reported the state
its command asks for ("locked" after lock, "open" or "opening" after open_cover), or, for a
setting that has no state of its own (brightness, volume, temperature), until it reports
anything at all. Stateless things (buttons, scenes, scripts) are not waited for; optimistic
devices, which never report, are named so the reply can say so.

``recording_report_waits`` collects how long the replies of the current task waited, so
``mimo-home bench voice`` can show what the wait adds without reaching into the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity, RegistryChange
from device_adapters.base import ReportWait

Commands = list[tuple[Entity, EntityCommand]]

# service -> the states that show it was carried out; the first one names it in a reply.
_REPORTED_STATES: dict[str, tuple[str, ...]] = {
    "turn_off": ("off",), "lock": ("locked",), "unlock": ("unlocked",),
    "open_cover": ("open", "opening"), "close_cover": ("closed", "closing"),
    "open_valve": ("open", "opening"), "close_valve": ("closed", "closing"),
    "media_play": ("playing",), "media_pause": ("paused",),
    "vacuum_start": ("cleaning",), "vacuum_pause": ("paused",),
    "vacuum_return_to_base": ("returning", "docked"),
    "alarm_arm_home": ("armed_home", "arming"), "alarm_arm_away": ("armed_away", "arming"),
    "alarm_disarm": ("disarmed",),
}
# Domains whose turn_on means the state "on" (a thermostat or a speaker turns on to a mode).
_ON_OFF_DOMAINS = frozenset({"light", "switch", "fan", "input_boolean", "humidifier", "siren"})
_STATELESS_DOMAINS = frozenset({"button", "scene", "script"})
_WAITS: ContextVar[list[float] | None] = ContextVar("report_waits", default=None)


def _reported_states(entity: Entity, command: EntityCommand) -> tuple[str, ...] | None:
    """The states that show ``command`` was carried out; None when any report will do."""
    if command.service == "turn_on":
        return ("on",) if entity.domain in _ON_OFF_DOMAINS else None
    if command.service == "set_hvac_mode":
        return (str(command.params["hvac_mode"]),)
    return _REPORTED_STATES.get(command.service)


@dataclass(frozen=True, slots=True)
class Silent:
    """An entity that did not report what its command asked for in time."""

    entity: Entity
    expected: tuple[str, ...] | None  # None: it did not report anything


@dataclass(frozen=True, slots=True)
class Outcome:
    silent: tuple[Silent, ...] = ()
    optimistic: tuple[Entity, ...] = ()  # never report: nothing to wait for


class ReportWatch:
    """Hears the registry for ``commands`` from now until ``outcome`` (or ``close``); with
    ``wait`` None it listens to nothing and every outcome is empty."""

    def __init__(self, registry: DeviceRegistry, commands: Commands,
                 wait: ReportWait | None) -> None:
        self._registry = registry
        self._timeout_s = 0.0 if wait is None else wait.timeout_s
        self._expected: dict[str, tuple[str, ...] | None] = {}
        self._optimistic: list[Entity] = []
        for entity, command in commands:
            if wait is None or entity.domain in _STATELESS_DOMAINS:
                continue
            if wait.reports_state(entity):
                self._expected[entity.entity_id] = _reported_states(entity, command)
            else:
                self._optimistic.append(entity)
        self._pending = set(self._expected)
        self._all_heard = asyncio.Event()
        self._unsubscribe = registry.subscribe(self._on_change) if self._expected else None

    def _on_change(self, change: RegistryChange) -> None:
        if not change.reported or change.entity_id not in self._pending:
            return
        expected = self._expected[change.entity_id]
        entity = self._registry.get_any(change.entity_id)
        if entity is not None and (expected is None or entity.state in expected):
            self._pending.discard(change.entity_id)
            if not self._pending:
                self._all_heard.set()

    async def outcome(self, sent: Commands) -> Outcome:
        """Waits, at most the configured time, until every entity of ``sent`` has answered;
        then stops listening."""
        sent_ids = {e.entity_id for e, _ in sent}
        self._pending &= sent_ids
        waited_for_some = not sent_ids.isdisjoint(self._expected)
        started = time.perf_counter()
        try:
            if self._pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_heard.wait(), self._timeout_s)
        finally:
            self.close()
            waits = _WAITS.get()
            if waits is not None and waited_for_some:
                waits.append(time.perf_counter() - started)
        return Outcome(
            silent=tuple(Silent(e, self._expected[e.entity_id]) for e, _ in sent
                         if e.entity_id in self._pending),
            optimistic=tuple(e for e in self._optimistic if e.entity_id in sent_ids))

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


@contextlib.contextmanager
def recording_report_waits() -> Iterator[list[float]]:
    """Seconds each reply in this task (and the tasks it starts) waited for reports."""
    waits: list[float] = []
    token = _WAITS.set(waits)
    try:
        yield waits
    finally:
        _WAITS.reset(token)
