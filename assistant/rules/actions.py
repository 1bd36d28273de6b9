"""What a rule does: the action models run in order, with Home Assistant's variables
(``trigger``, ``this``, ``repeat``, ``wait`` and the rule's own).

Device commands go through the one gate: a ``ToolContext`` whose ``confirmed`` holds only
the targets the configuration allows for rules (``allow_sensitive``); the safety policy
decides the rest, so a lock that is not allowed is not actuated and the run reports why.
An ``area_id`` target sweeps the area's exposed entities of the service's kind, never a
sensitive one.

Everything is bounded: a delay or a wait at most :data:`MAX_WAIT_S`, a repeat at most
:data:`MAX_ITERATIONS` passes, a run at most :data:`MAX_STEPS` actions; each send and each
announcement has a timeout. What goes wrong in an action is an :class:`ActionError`: it
ends the run (unless ``continue_on_error``) and is reported, never raised into the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.automation.sun import Location
from assistant.messages import (
    CommandNotSentError,
    CommandNotSupportedError,
    EntityCommand,
    MqttMessage,
    Notice,
)
from assistant.registry import Entity
from assistant.rules import triggers
from assistant.rules.conditions import condition_problem, holds
from assistant.rules.schema_actions import (
    MQTT_PUBLISH,
    SAY_SERVICES,
    ActionBase,
    ChooseAction,
    DelayAction,
    IfAction,
    RepeatAction,
    ServiceCall,
    StopAction,
    VariablesAction,
    WaitForTriggerAction,
    WaitTemplateAction,
)
from assistant.rules.schema_conditions import ConditionBase
from assistant.rules.services import ServiceError, ServiceSpec, service_spec
from assistant.rules.triggers import check_trigger
from assistant.rules.templates import Template
from assistant.rules.triggers import RuleEnv, seconds_of, within
from assistant.safety import SafetyPolicy
from skills.base import ActionRefusedError, CommandSink, ConfirmationRequired, ToolContext

log = logging.getLogger(__name__)

MAX_WAIT_S = 24 * 3600.0  # the longest delay or wait in a run
MAX_ITERATIONS = 1000  # passes of one repeat
MAX_STEPS = 10_000  # actions one run may take, loops included
SEND_TIMEOUT_S = 10.0
ANNOUNCE_TIMEOUT_S = 10.0
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 1000


class ActionError(RuntimeError):
    """An action could not be done; the text says why (for the log and the announcement)."""


class RunStopped(Exception):  # noqa: N818 - control flow, not an error
    """A ``stop`` action, or a condition action that did not hold: the run ends here."""

    def __init__(self, reason: str, error: bool = False) -> None:
        super().__init__(reason)
        self.error = error


@dataclass
class Effects:
    """What a run changed, for the engine's loop protection."""

    entities: set[str] = field(default_factory=set)
    topics: set[str] = field(default_factory=set)


@dataclass
class Outlets:
    """Where a run's effects go; the engine builds one for all its rules."""

    send: CommandSink
    policy: SafetyPolicy
    publish: Callable[[MqttMessage], None]
    announce: Callable[[Notice], Awaitable[None]]
    allow_sensitive: frozenset[str]
    # The run changed these entities or topics (the engine remembers when).
    changed: Callable[[str, Effects], None]


@dataclass
class Run:
    """One run of one rule's actions."""

    rule: str
    env: RuleEnv
    outlets: Outlets
    variables: dict[str, Any]
    steps: int = 0

    async def actions(self, actions: tuple[Any, ...]) -> None:
        for action in actions:
            await self.action(action)

    async def action(self, action: Any) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ActionError(f"it took more than {MAX_STEPS} steps")
        if not action.enabled:
            return
        if isinstance(action, ConditionBase):
            if not self.holds((action,)):
                raise RunStopped(f"condition {action.alias or action.condition} did not hold")
            return
        try:
            await _RUNNERS[type(action)](self, action)
        except ActionError as error:
            if not action.continue_on_error:
                raise
            log.warning("rule %r: %s (continuing: continue_on_error)", self.rule, error)

    # -- values ------------------------------------------------------------------------------

    def render(self, value: Any) -> Any:
        """``value`` with every template in it rendered with the run's variables."""
        try:
            return self.env.render(value, self.variables)
        except Exception as error:  # a template failure is the rule's, not the engine's
            raise ActionError(f"a template failed: {str(error)[:200]}") from None

    def seconds(self, value: float | Template | None, default: float = MAX_WAIT_S) -> float:
        if value is None:
            return default
        try:
            seconds = seconds_of(value, self.env, self.variables)
        except Exception as error:
            raise ActionError(str(error)[:200]) from None
        if seconds > MAX_WAIT_S:
            log.warning("rule %r: %.0f s is longer than the %d h a rule may wait; waiting %d h",
                        self.rule, seconds, MAX_WAIT_S // 3600, MAX_WAIT_S // 3600)
        return min(seconds, MAX_WAIT_S)

    def holds(self, conditions: tuple[Any, ...]) -> bool:
        try:
            return holds(conditions, self.variables, self.env)
        except Exception as error:
            raise ActionError(f"a condition failed: {str(error)[:200]}") from None


# -- service calls -----------------------------------------------------------------------------


async def _call(run: Run, call: ServiceCall) -> None:
    if call.action in SAY_SERVICES:
        await _say(run, call)
    elif call.action == MQTT_PUBLISH:
        _publish(run, call)
    else:
        await _entity_call(run, call)


async def _say(run: Run, call: ServiceCall) -> None:
    text = str(run.render(call.data.get("message", "")))[:MAX_MESSAGE_CHARS].strip()
    if not text:
        raise ActionError(f"{call.action}: the message is empty")
    area = call.target.area_id[0] if call.target.area_id else None
    for entity_id in call.target.entity_id:
        entity = run.env.registry.get_any(entity_id)
        area = area or (entity.area if entity else None)
    await announce(run.outlets, Notice(kind="rule", text=text, area=area,
                                       data={"rule": run.rule}))


def _publish(run: Run, call: ServiceCall) -> None:
    data = run.render(call.data)
    topic = str(data.get("topic") or "")
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ActionError(f"mqtt.publish: {topic[:80]!r} is not a topic to publish to")
    payload = data.get("payload", data.get("payload_template", ""))
    body = payload if isinstance(payload, bytes) else str(payload).encode()
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ActionError(f"mqtt.publish: the payload is over {MAX_PAYLOAD_BYTES} bytes")
    qos = int(data.get("qos", 0))
    run.outlets.changed(run.rule, Effects(topics={topic}))
    run.outlets.publish(MqttMessage(topic, body, qos=qos if qos in (0, 1, 2) else 0,
                                    retain=data.get("retain") is True))


def targets(run: Run, call: ServiceCall, spec: ServiceSpec) -> list[Entity]:
    """The entities a call names, then those its areas hold (exposed, of the service's kind,
    never a sensitive one)."""
    registry = run.env.registry
    found = [entity for eid in call.target.entity_id
             if (entity := registry.get_any(eid)) is not None]
    if len(found) < len(call.target.entity_id):
        missing = sorted(set(call.target.entity_id) - {entity.entity_id for entity in found})
        raise ActionError(f"{call.action}: no such entity {', '.join(missing)}")
    for area in call.target.area_id:
        found.extend(entity for entity in registry.entities()
                     if entity.area == area and entity.domain in spec.area_domains
                     and run.outlets.policy.may_sweep(entity) and entity not in found)
    if not found:
        raise ActionError(f"{call.action}: the target names no device")
    return found


async def _entity_call(run: Run, call: ServiceCall) -> None:
    try:
        spec = service_spec(call.action)
    except ServiceError as error:
        raise ActionError(str(error)) from None
    entities = targets(run, call, spec)
    data = run.render(call.data)
    if not isinstance(data, dict):
        raise ActionError(f"{call.action}: data is not a mapping")
    commands, problems = [], []
    for entity in entities:
        try:
            commands.append((entity, spec.command(entity, data)))
        except (CommandNotSupportedError, ServiceError) as error:
            problems.append(str(error))
    problems.extend(await send_through_gate(run, commands))
    if problems:
        raise ActionError(f"{call.action}: {'; '.join(problems)}")


async def send_through_gate(run: Run, commands: list[tuple[Entity, EntityCommand]]) -> list[str]:
    """Send ``commands`` past the safety policy; what it holds back or refuses, and what
    devices cannot do, comes back as problems (the rest is sent)."""
    if not commands:
        return []
    outlets = run.outlets
    confirmed = outlets.allow_sensitive & {entity.entity_id for entity, _ in commands}
    gate = ToolContext(run.env.registry, outlets.send, outlets.policy, confirmed=confirmed)
    problems: list[str] = []
    try:
        await _send(run, gate, commands)
        return problems
    except ConfirmationRequired as needed:
        held = {entity.entity_id for entity in needed.entities}
        for entity in needed.entities:
            reason = outlets.policy.sensitivity_reason(entity) or "it is sensitive"
            problems.append(f"{entity.entity_id} was not actuated: it needs a yes "
                            f"({reason}); list it in automation.rules_allow_sensitive to let "
                            "rules do it")
        commands = [(entity, command) for entity, command in commands
                    if entity.entity_id not in held]
    except (ActionRefusedError, CommandNotSupportedError, CommandNotSentError):
        pass  # find which ones: one at a time below
    for entity, command in commands:
        try:
            await _send(run, gate, [(entity, command)])
        except ConfirmationRequired:
            problems.append(f"{entity.entity_id} was not actuated: it needs a yes")
        except (ActionRefusedError, CommandNotSupportedError, CommandNotSentError) as error:
            problems.append(f"{entity.entity_id}: {error}")
    return problems


async def _send(run: Run, gate: ToolContext, commands: list[tuple[Entity, EntityCommand]]) -> None:
    try:
        await asyncio.wait_for(gate.send(commands), SEND_TIMEOUT_S)
    except TimeoutError:
        raise CommandNotSentError(f"sending took over {SEND_TIMEOUT_S:g} s") from None
    run.outlets.changed(run.rule, Effects(entities={entity.entity_id for entity, _ in commands}))


async def announce(outlets: Outlets, notice: Notice) -> None:
    """Say ``notice``; a speaker that hangs or fails is logged, never raised."""
    try:
        await asyncio.wait_for(outlets.announce(notice), ANNOUNCE_TIMEOUT_S)
    except Exception:
        log.exception("rules: could not announce %r", notice.text[:80])


# -- waiting -----------------------------------------------------------------------------------


async def _delay(run: Run, action: DelayAction) -> None:
    await run.env.clock.sleep(run.seconds(action.delay))


async def _wait_for_trigger(run: Run, action: WaitForTriggerAction) -> None:
    timeout = run.seconds(action.timeout)
    fired: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def fire(variables: dict[str, Any]) -> None:
        if not fired.done():
            fired.set_result(variables)

    started = run.env.clock.now()
    try:
        detach = triggers.attach(action.wait_for_trigger, run.env, fire)
    except Exception as error:
        raise ActionError(f"wait_for_trigger: {error}") from None
    try:
        trigger = await within(run.env.clock, timeout, fired)
    except TimeoutError:
        trigger = None
    finally:
        detach()
    waited = (run.env.clock.now() - started).total_seconds()
    run.variables["wait"] = {"trigger": trigger, "remaining": max(0.0, timeout - waited),
                             "completed": trigger is not None}
    if trigger is None and not action.continue_on_timeout:
        raise RunStopped("wait_for_trigger timed out")


async def _wait_template(run: Run, action: WaitTemplateAction) -> None:
    timeout = run.seconds(action.timeout)
    changed = asyncio.Event()
    unsubscribe = run.env.registry.subscribe(lambda _change: changed.set())
    started = run.env.clock.now()
    try:
        while not run.env.render_bool(action.wait_template, run.variables):
            left = timeout - (run.env.clock.now() - started).total_seconds()
            if left <= 0:
                break
            changed.clear()
            try:  # a template may read the time: look again at least every minute
                await within(run.env.clock, min(left, triggers.MAX_SLEEP_S), changed.wait())
            except TimeoutError:
                pass
        else:
            run.variables["wait"] = {"completed": True, "remaining": max(
                0.0, timeout - (run.env.clock.now() - started).total_seconds())}
            return
    except ActionError:
        raise
    except Exception as error:
        raise ActionError(f"wait_template failed: {str(error)[:200]}") from None
    finally:
        unsubscribe()
    run.variables["wait"] = {"completed": False, "remaining": 0.0}
    if not action.continue_on_timeout:
        raise RunStopped("wait_template timed out")


# -- flow --------------------------------------------------------------------------------------


async def _choose(run: Run, action: ChooseAction) -> None:
    for option in action.choose:
        if run.holds(option.conditions):
            await run.actions(option.sequence)
            return
    await run.actions(action.default)


async def _if(run: Run, action: IfAction) -> None:
    await run.actions(action.then if run.holds(action.if_) else action.else_)


def _count(run: Run, value: int | Template) -> int:
    count = triggers.number_of(run.render(value))
    if count is None or count < 0:
        raise ActionError(f"repeat: {value!r} gives no count")
    if count > MAX_ITERATIONS:
        raise ActionError(f"repeat: {count:g} passes is more than {MAX_ITERATIONS}")
    return int(count)


def _items(run: Run, value: list[Any] | Template) -> list[Any]:
    items = run.render(value)
    if isinstance(items, str):  # HA reads a comma-separated text as a list
        items = [item.strip() for item in items.split(",") if item.strip()]
    if not isinstance(items, list | tuple):
        raise ActionError(f"repeat: for_each gives {str(items)[:40]!r}, not a list")
    if len(items) > MAX_ITERATIONS:
        raise ActionError(f"repeat: {len(items)} items is more than {MAX_ITERATIONS}")
    return list(items)


async def _repeat(run: Run, action: RepeatAction) -> None:
    loop, outer = action.repeat, run.variables.get("repeat")
    items: list[Any] | None = None
    if loop.count is not None:
        items = list(range(1, _count(run, loop.count) + 1))
    elif loop.for_each is not None:
        items = _items(run, loop.for_each)
    try:
        for index in range(1, MAX_ITERATIONS + 2):
            if index > MAX_ITERATIONS:
                raise ActionError(f"repeat: stopped after {MAX_ITERATIONS} passes")
            if items is not None and index > len(items):
                return
            run.variables["repeat"] = {"index": index, "first": index == 1,
                                       **({"last": index == len(items)} if items else {}),
                                       **({"item": items[index - 1]}
                                          if loop.for_each is not None and items else {})}
            if loop.while_ is not None and not run.holds(loop.while_):
                return
            await run.actions(loop.sequence)
            if loop.until is not None and run.holds(loop.until):
                return
            await asyncio.sleep(0)  # a loop without waits must not hold the event loop
    finally:
        if outer is None:
            run.variables.pop("repeat", None)
        else:
            run.variables["repeat"] = outer


async def _variables(run: Run, action: VariablesAction) -> None:
    for name, value in action.variables.items():
        run.variables[name] = run.render(value)


async def _stop(run: Run, action: StopAction) -> None:
    raise RunStopped(action.stop, action.error)


_RUNNERS: dict[type[ActionBase], Callable[[Run, Any], Awaitable[None]]] = {
    ServiceCall: _call,
    DelayAction: _delay,
    WaitForTriggerAction: _wait_for_trigger,
    WaitTemplateAction: _wait_template,
    ChooseAction: _choose,
    IfAction: _if,
    RepeatAction: _repeat,
    VariablesAction: _variables,
    StopAction: _stop,
}


# -- checks when a rule is loaded --------------------------------------------------------------

Problem = tuple[str, str]  # (key, message)


def action_problems(actions: tuple[Any, ...], location: Location | None,
                    key: str) -> list[Problem]:
    """What in ``actions`` cannot run in this home, each with its key ("actions[1].action"):
    services we cannot map, data keys they do not take, targets of another kind, waits or
    loops over the bounds, sun triggers and conditions without a location."""
    found: list[Problem] = []
    for index, action in enumerate(actions):
        here = f"{key}[{index}]"
        if isinstance(action, ConditionBase):
            found.extend(condition_problems((action,), location, here))
        elif isinstance(action, ServiceCall):
            found.extend(_call_problems(action, here))
        elif isinstance(action, DelayAction | WaitForTriggerAction | WaitTemplateAction):
            value = action.delay if isinstance(action, DelayAction) else action.timeout
            if isinstance(value, float | int) and value > MAX_WAIT_S:
                name = "delay" if isinstance(action, DelayAction) else "timeout"
                found.append((f"{here}.{name}", f"{value:.0f} s is longer than the "
                              f"{MAX_WAIT_S / 3600:.0f} h a rule may wait"))
            if isinstance(action, WaitForTriggerAction):
                for number, trigger in enumerate(action.wait_for_trigger):
                    problem = check_trigger(trigger, location)
                    if problem:
                        found.append((f"{here}.wait_for_trigger[{number}]", problem))
        elif isinstance(action, ChooseAction):
            for number, option in enumerate(action.choose):
                found.extend(condition_problems(option.conditions, location,
                                                 f"{here}.choose[{number}].conditions"))
                found.extend(action_problems(option.sequence, location,
                                             f"{here}.choose[{number}].sequence"))
            found.extend(action_problems(action.default, location, f"{here}.default"))
        elif isinstance(action, IfAction):
            found.extend(condition_problems(action.if_, location, f"{here}.if"))
            found.extend(action_problems(action.then, location, f"{here}.then"))
            found.extend(action_problems(action.else_, location, f"{here}.else"))
        elif isinstance(action, RepeatAction):
            found.extend(_repeat_problems(action, location, f"{here}.repeat"))
    return found


def condition_problems(conditions: tuple[Any, ...], location: Location | None,
                       key: str) -> list[Problem]:
    return [(f"{key}[{index}]", problem) for index, condition in enumerate(conditions)
            if (problem := condition_problem(condition, location))]


def _call_problems(call: ServiceCall, key: str) -> list[Problem]:
    if call.action in SAY_SERVICES or call.action == MQTT_PUBLISH:
        return []
    try:
        spec = service_spec(call.action)
        spec.check_keys(call.data)
    except ServiceError as error:
        return [(f"{key}.action", str(error))]
    return [(f"{key}.target.entity_id", f"{call.action} cannot act on {entity_id}")
            for entity_id in call.target.entity_id
            if entity_id.partition(".")[0] not in spec.domains]


def _repeat_problems(action: RepeatAction, location: Location | None,
                     key: str) -> list[Problem]:
    loop = action.repeat
    found = action_problems(loop.sequence, location, f"{key}.sequence")
    for name, conditions in (("while", loop.while_), ("until", loop.until)):
        if conditions:
            found.extend(condition_problems(conditions, location, f"{key}.{name}"))
    size = loop.count if isinstance(loop.count, int) else \
        len(loop.for_each) if isinstance(loop.for_each, list) else 0
    if size > MAX_ITERATIONS:
        found.append((key, f"{size} passes is more than the {MAX_ITERATIONS} a repeat may make"))
    return found
