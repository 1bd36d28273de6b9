"""Shared fixtures: a real Mosquitto broker per test session on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from assistant.transport.embedded_broker import MosquittoProcess, free_loopback_port, mosquitto_executable

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


def free_port() -> int:
    return free_loopback_port()


def start_mosquitto(port: int, log_file: Path | None = None) -> MosquittoProcess:
    if mosquitto_executable() is None:
        pytest.fail("mosquitto is not installed: run the README's test setup command")
    broker = MosquittoProcess(port, log_file=log_file)
    broker.start_sync()
    return broker


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    port = free_port()
    mosquitto = start_mosquitto(port)
    yield Broker("127.0.0.1", port)
    mosquitto.stop_sync()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Makes rule engines on a manual clock from rule text (tests/rules_support.py); stops
    them after the test."""
    import asyncio
    import uuid

    from assistant.automation.scheduler import ManualClock
    from assistant.messages import Notice
    from assistant.rules.engine import RuleEngine
    from assistant.safety import SafetyPolicy
    from tests.rules_support import (
        HOME, MONDAY_NOON, TIMEOUT, Bus, Rig, Sink, home_registry, settle, write_rules)

    made: list[RuleEngine] = []

    async def make(text: str, *, location: Any = HOME,
                   allow_sensitive: frozenset[str] = frozenset(), per_minute: int = 30,
                   start: datetime = MONDAY_NOON, report: bool = True) -> Rig:
        registry = home_registry()
        clock = ManualClock(start)
        sink, bus = Sink(registry, report), Bus()
        notices: list[Notice] = []

        async def announce(notice: Notice) -> None:
            notices.append(notice)

        engine = RuleEngine(registry, send=sink, policy=SafetyPolicy(registry),
                            subscribe=bus.subscribe, publish=bus.publish, announce=announce,
                            clock=clock, location=location, allow_sensitive=allow_sensitive,
                            max_runs_per_minute=per_minute)
        made.append(engine)
        directory = tmp_path / uuid.uuid4().hex[:6]
        errors = engine.load(write_rules(directory, text).rules)
        engine.start()
        await settle()
        return Rig(engine, registry, clock, sink, bus, directory, notices, errors)

    yield make
    for engine in made:
        await asyncio.wait_for(engine.stop(), 4 * TIMEOUT)
