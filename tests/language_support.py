"""What the Italian and Spanish tests share: a home of named devices, its fast path, a
conversation over it in that language, and timers to speak to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation
from assistant.messages import ConversationRequest, ToolCall
from assistant.registry import Area, DeviceRegistry, Entity, Floor
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill
from tests.test_conversation import Clock, Sent
from tests.test_timers import Hub as TimerHub

# (entity id, name, area id, device class, state)
Device = tuple[str, str, str, str | None, str]


def home_of(areas: Iterable[tuple[str, ...]], devices: Iterable[Device],
            floors: Iterable[Floor] = ()) -> DeviceRegistry:
    """A home of areas (id, name[, floor id]) and devices, in memory."""
    registry = DeviceRegistry(None)
    for floor in floors:
        registry.set_floor(floor)
    for area_id, name, *floor_id in areas:
        registry.set_area(Area(id=area_id, name=name, floor=floor_id[0] if floor_id else None))
    for entity_id, name, area, device_class, state in devices:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state=state))
    return registry


def calls_of(fast: FastPath, text: str, area: str | None = None) -> list[tuple[str, dict]]:
    return [(c.tool, c.args) for c in fast.understand(text, area).calls]


def conversation_for(registry: DeviceRegistry, language: str) -> tuple[Conversation, Sent]:
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    sent = Sent()
    policy = SafetyPolicy(registry)
    conversation = Conversation(
        registry, skills, sent, FastPath(registry, language, policy=policy), None,
        UnderstandingConfig(language=language, confirmation_window_s=20), policy=policy,
        clock=Clock())
    return conversation, sent


def ask(text: str, area: str | None = None) -> ConversationRequest:
    return ConversationRequest(text, "c1", area=area)


async def timer_hub(path: Path, registry: DeviceRegistry) -> AsyncIterator[TimerHub]:
    hub = TimerHub(path, registry)
    hub.start()
    yield hub
    assert hub.scheduler is not None
    await hub.scheduler.stop()


async def said_to(hub: Any, fast: FastPath, text: str, area: str, **context: Any) -> Any:
    """What the tool the fast path chose for ``text`` (said in ``area``) answers."""
    (call,) = fast.understand(text, area).calls
    return await hub.run(ToolCall(call.tool, call.args), **context)
