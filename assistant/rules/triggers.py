"""What starts a rule: each trigger model attached to its source, calling ``fire`` with
Home Assistant's ``trigger`` variables.

- ``mqtt``: the injected ``subscribe`` (wildcards as MQTT has them), optionally a payload or
  a ``value_template`` result to match;
- ``state`` / ``numeric_state``: registry changes, compared with the last state this trigger
  saw (``numeric_state`` fires when the value *starts* to match, as in Home Assistant); with
  ``for``, the match must hold that long on the injected clock, and a change cancels it;
- ``time`` / ``time_pattern`` / ``sun``: an APScheduler trigger's next fire time, slept to on
  the injected clock in steps of at most a minute (a wall clock that jumps is noticed); a
  time missed while the clock jumped fires once, not once per missed occurrence;
- ``homeassistant``: fired by the engine at start and stop.

``attach`` returns the detach function; everything it started ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from assistant.automation import sun
from assistant.automation.scheduler import Clock
from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry, Entity, RegistryChange
from assistant.rules.schema_triggers import (
    HomeAssistantTrigger,
    MqttTrigger,
    NumericStateTrigger,
    StateTrigger,
    SunTrigger,
    TimePatternTrigger,
    TimeTrigger,
    TriggerBase,
)
from assistant.rules.templates import Template

log = logging.getLogger(__name__)

# Longest single sleep while waiting for a time: the wall clock may jump meanwhile.
MAX_SLEEP_S = 60.0
# The longest MQTT payload a trigger looks at (bigger ones are not matched).
MAX_PAYLOAD_BYTES = 64 * 1024

T = TypeVar("T")
Fire = Callable[[dict[str, Any]], None]
Detach = Callable[[], None]
Subscribe = Callable[[str, Callable[[MqttMessage], None]], Callable[[], None]]
# A value (a Template, or data holding template strings) rendered to native values.
Render = Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class RuleEnv:
    """What triggers, conditions and actions read: the home, time, place and templates."""

    registry: DeviceRegistry
    clock: Clock
    subscribe: Subscribe
    location: sun.Location | None
    timezone: tzinfo
    render: Render  # with these variables (states(), now() etc. built in)
    render_bool: Callable[[Template, Mapping[str, Any]], bool]
    last_changed: Callable[[str], datetime]  # when the entity's state last changed


async def within(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or TimeoutError once ``clock`` has moved ``seconds`` on."""
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
    if work.cancelled():
        raise TimeoutError
    return work.result()


async def sleep_until(clock: Clock, when: datetime) -> None:
    """Return once ``clock`` reads ``when``; in steps of at most a minute, so a wall clock
    that jumps is noticed."""
    while (left := (when - clock.now()).total_seconds()) > 0:
        await clock.sleep(min(left, MAX_SLEEP_S))


class Tasks:
    """Background tasks that end together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("rule task failed", exc_info=task.exception())

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def state_object(entity: Entity | None) -> dict[str, Any] | None:
    """An entity as templates see a Home Assistant state (``trigger.to_state.state``)."""
    if entity is None:
        return None
    domain, _, object_id = entity.entity_id.partition(".")
    return {"entity_id": entity.entity_id, "state": entity.state,
            "attributes": {"friendly_name": entity.name, **entity.attributes},
            "domain": domain, "object_id": object_id, "name": entity.name}


def watched_value(entity: Entity | None, attribute: str | None) -> Any:
    if entity is None:
        return None
    return entity.state if attribute is None else entity.attributes.get(attribute)


def number_of(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def seconds_of(value: float | Template | None, env: RuleEnv,
               variables: Mapping[str, Any]) -> float:
    """A duration, its template rendered; a template that gives no duration is an error."""
    if value is None:
        return 0.0
    if isinstance(value, Template):
        rendered = env.render(value, variables)
        seconds = number_of(rendered)
        if seconds is None and isinstance(rendered, str) and ":" in rendered:
            parts = rendered.strip().split(":")
            numbers = [number_of(part) for part in parts]
            if len(parts) in (2, 3) and None not in numbers:
                seconds = sum(n * 60 ** (len(parts) - 1 - i)  # type: ignore[operator]
                              for i, n in enumerate(numbers))
        if seconds is None or seconds < 0:
            raise ValueError(f"the duration {str(rendered)[:40]!r} is not a number of seconds")
        return min(seconds, 366 * 86400.0)
    return value


def _guarded(what: str, fire: Fire) -> Fire:
    """``fire`` that logs instead of raising into the registry or the MQTT link."""

    def call(variables: dict[str, Any]) -> None:
        try:
            fire(variables)
        except Exception:
            log.exception("rules: %s failed", what)

    return call


# -- entity triggers ---------------------------------------------------------------------------


class _EntityWatch:
    """The last state seen of some entities, and what each change was."""

    def __init__(self, env: RuleEnv, entity_ids: tuple[str, ...],
                 changed: Callable[[str, Entity | None, Entity | None], None]) -> None:
        self._env = env
        self._ids = frozenset(entity_ids)
        self._seen = {eid: env.registry.get_any(eid) for eid in entity_ids}
        self._changed = changed
        self._unsubscribe = env.registry.subscribe(self._on_change)

    def _on_change(self, change: RegistryChange) -> None:
        ids = self._ids if change.entity_id is None else (
            {change.entity_id} & self._ids)
        for entity_id in ids:
            old, new = self._seen.get(entity_id), self._env.registry.get_any(entity_id)
            if _same(old, new):
                continue
            self._seen[entity_id] = new
            self._changed(entity_id, old, new)

    def close(self) -> None:
        self._unsubscribe()


def _same(old: Entity | None, new: Entity | None) -> bool:
    if old is None or new is None:
        return old is new
    return old.state == new.state and old.attributes == new.attributes


class _Holds:
    """Pending ``for`` waits, one per entity: fire once the clock has moved on enough."""

    def __init__(self, clock: Clock, tasks: Tasks) -> None:
        self._clock, self._tasks = clock, tasks
        self._pending: dict[str, asyncio.Task[Any]] = {}

    def start(self, key: str, seconds: float, then: Callable[[], None]) -> None:
        self.cancel(key)
        until = self._clock.now() + timedelta(seconds=seconds)  # from now, not from when
        # the task first runs

        async def hold() -> None:
            await sleep_until(self._clock, until)
            self._pending.pop(key, None)
            then()

        self._pending[key] = self._tasks.spawn(hold())

    def cancel(self, key: str) -> None:
        task = self._pending.pop(key, None)
        if task is not None:
            task.cancel()

    def fire_after(self, duration: float | Template | None, env: RuleEnv, key: str,
                   variables: dict[str, Any], fire: Fire, still: Callable[[], bool]) -> None:
        """``fire`` now without a ``for`` duration; else once it has passed, if ``still``
        holds then (a change that ends the match cancels it before)."""
        if duration is None:
            fire(variables)
            return
        seconds = seconds_of(duration, env, {"trigger": variables})
        variables["for"] = seconds
        self.start(key, seconds, lambda: fire(variables) if still() else None)


def _watching(env: RuleEnv, entity_ids: tuple[str, ...],
              changed: Callable[[str, Entity | None, Entity | None], None],
              tasks: Tasks) -> Detach:
    watch = _EntityWatch(env, entity_ids, changed)

    def detach() -> None:
        watch.close()
        tasks.cancel()

    return detach


def _states_match(value: Any, wanted: tuple[str, ...] | None, refused: tuple[str, ...]) -> bool:
    if wanted and (value is None or str(value) not in wanted):
        return False
    return not (refused and value is not None and str(value) in refused)


def _attach_state(trigger: StateTrigger, env: RuleEnv, fire: Fire) -> Detach:
    tasks = Tasks()
    holds = _Holds(env.clock, tasks)
    attribute = trigger.attribute
    match_all = (trigger.from_state is None and trigger.to_state is None
                 and not trigger.not_from and not trigger.not_to)

    def changed(entity_id: str, old: Entity | None, new: Entity | None) -> None:
        before, after = watched_value(old, attribute), watched_value(new, attribute)
        if before == after and (attribute is not None or not match_all):
            return  # an attribute change only counts for a trigger without from/to
        if not (_states_match(before, trigger.from_state, trigger.not_from)
                and _states_match(after, trigger.to_state, trigger.not_to)):
            holds.cancel(entity_id)
            return
        variables = {"platform": "state", "entity_id": entity_id, "attribute": attribute,
                     "from_state": state_object(old), "to_state": state_object(new)}
        holds.fire_after(trigger.for_duration, env, entity_id, variables, fire, lambda: (
            watched_value(env.registry.get_any(entity_id), attribute) == after))

    return _watching(env, trigger.entity_id, changed, tasks)


def numeric_value(entity: Entity | None, attribute: str | None,
                  value_template: Template | None, env: RuleEnv) -> float | None:
    """The number a ``numeric_state`` trigger or condition compares, or None."""
    if entity is None:
        return None
    if value_template is not None:
        return number_of(env.render(value_template, {"state": state_object(entity)}))
    return number_of(watched_value(entity, attribute))


def threshold(value: float | str | None, env: RuleEnv) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return number_of(watched_value(env.registry.get_any(value), None))


def in_range(number: float | None, above: float | str | None, below: float | str | None,
             env: RuleEnv) -> bool:
    """Home Assistant's ``above < number < below``; an unknown bound never matches."""
    if number is None:
        return False
    low, high = threshold(above, env), threshold(below, env)
    if (above is not None and low is None) or (below is not None and high is None):
        return False
    return (low is None or number > low) and (high is None or number < high)


def _attach_numeric(trigger: NumericStateTrigger, env: RuleEnv, fire: Fire) -> Detach:
    tasks = Tasks()
    holds = _Holds(env.clock, tasks)

    def matching(entity: Entity | None) -> bool:
        value = numeric_value(entity, trigger.attribute, trigger.value_template, env)
        return in_range(value, trigger.above, trigger.below, env)

    # Already in range when attached: it fires only after leaving the range and coming back.
    was = {eid: matching(env.registry.get_any(eid)) for eid in trigger.entity_id}

    def changed(entity_id: str, old: Entity | None, new: Entity | None) -> None:
        now, before = matching(new), was.get(entity_id, False)
        was[entity_id] = now
        if not now:
            holds.cancel(entity_id)
            return
        if before:
            return
        variables = {"platform": "numeric_state", "entity_id": entity_id,
                     "above": trigger.above, "below": trigger.below,
                     "from_state": state_object(old), "to_state": state_object(new)}
        holds.fire_after(trigger.for_duration, env, entity_id, variables, fire,
                         lambda: matching(env.registry.get_any(entity_id)))

    return _watching(env, trigger.entity_id, changed, tasks)


# -- MQTT --------------------------------------------------------------------------------------


def _attach_mqtt(trigger: MqttTrigger, env: RuleEnv, fire: Fire) -> Detach:
    def received(message: MqttMessage) -> None:
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            log.warning("rules: a %d-byte payload on %.200s is too big to match",
                        len(message.payload), message.topic)
            return
        payload: Any = message.payload.decode(trigger.encoding or "utf-8", "replace") \
            if trigger.encoding else message.payload
        variables: dict[str, Any] = {"platform": "mqtt", "topic": message.topic,
                                     "payload": payload, "qos": message.qos}
        with contextlib.suppress(ValueError, TypeError):
            variables["payload_json"] = json.loads(payload)
        if trigger.payload is not None:
            value = payload
            if trigger.value_template is not None:
                value = env.render(trigger.value_template, {
                    "value": payload, "value_json": variables.get("payload_json")})
            if str(value) != trigger.payload:
                return
        fire(variables)

    return env.subscribe(trigger.topic, received)


# -- time --------------------------------------------------------------------------------------


def _attach_schedule(schedule: BaseTrigger, env: RuleEnv, fire: Fire,
                     variables: dict[str, Any]) -> Detach:
    tasks = Tasks()

    async def run() -> None:
        previous: datetime | None = None
        while True:
            # Strictly after now (the attach instant is no occurrence) and after the last
            # one: after a jump the next time from now fires, not each one missed.
            now = max(env.clock.now(), previous or env.clock.now())
            due = schedule.get_next_fire_time(None, now + timedelta(microseconds=1))
            if due is None:
                return
            await sleep_until(env.clock, due)
            previous = due
            fire({**variables, "now": env.clock.now()})

    tasks.spawn(run())
    return tasks.cancel


def _attach_time(trigger: TimeTrigger, env: RuleEnv, fire: Fire) -> Detach:
    detaches = [_attach_schedule(
        CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=env.timezone),
        env, fire, {"platform": "time"}) for at in trigger.at]

    def detach_all() -> None:
        for detach in detaches:
            detach()

    return detach_all


def _attach_time_pattern(trigger: TimePatternTrigger, env: RuleEnv, fire: Fire) -> Detach:
    cron = CronTrigger(hour=trigger.hours, minute=trigger.minutes, second=trigger.seconds,
                       timezone=env.timezone)
    return _attach_schedule(cron, env, fire, {"platform": "time_pattern"})


def _attach_sun(trigger: SunTrigger, env: RuleEnv, fire: Fire) -> Detach:
    if env.location is None:
        raise ValueError("a sun trigger needs the home's location (latitude and longitude)")
    schedule = sun.SunTrigger(trigger.event, env.location, trigger.offset)
    return _attach_schedule(schedule, env, fire, {"platform": "sun", "event": trigger.event,
                                                  "offset": trigger.offset})


_ATTACH: dict[type[TriggerBase], Callable[[Any, RuleEnv, Fire], Detach]] = {
    StateTrigger: _attach_state,
    NumericStateTrigger: _attach_numeric,
    MqttTrigger: _attach_mqtt,
    TimeTrigger: _attach_time,
    TimePatternTrigger: _attach_time_pattern,
    SunTrigger: _attach_sun,
}


def check_trigger(trigger: TriggerBase, location: sun.Location | None) -> str | None:
    """Why ``trigger`` cannot run in this home (a sun trigger without a location), or None."""
    if isinstance(trigger, SunTrigger) and location is None:
        return "a sun trigger needs the home's location (latitude and longitude)"
    return None


def attach(triggers: tuple[TriggerBase, ...] | list[Any], env: RuleEnv, fire: Fire,
           *, events: dict[str, list[Fire]] | None = None) -> Detach:
    """Attach every enabled trigger; ``fire`` gets its variables plus ``id``, ``idx`` and
    ``alias``. ``homeassistant`` triggers are put in ``events`` by event ("start",
    "shutdown") for the engine to call."""
    detaches: list[Detach] = []
    for index, trigger in enumerate(triggers):
        if not trigger.enabled:
            continue
        identity = {"id": trigger.id if trigger.id is not None else str(index),
                    "idx": str(index), "alias": trigger.alias}

        def tagged(variables: dict[str, Any], identity: dict[str, Any] = identity) -> None:
            fire({**variables, **identity})

        guarded = _guarded(f"trigger {identity['id']}", tagged)
        if isinstance(trigger, HomeAssistantTrigger):
            if events is not None:
                event = trigger.event
                events.setdefault(event, []).append(
                    lambda variables, event=event, call=guarded: call(
                        {**variables, "platform": "homeassistant", "event": event}))
            continue
        try:
            detaches.append(_ATTACH[type(trigger)](trigger, env, guarded))
        except Exception:
            for detach in detaches:
                detach()
            raise

    def detach_all() -> None:
        for detach in detaches:
            detach()

    return detach_all
