"""Shared fixtures: a real Mosquitto broker per test session on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
