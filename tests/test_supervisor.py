"""Everything the daemon runs stops from one place, even a task that missed its stop."""

import asyncio

import pytest

from assistant import daemon
from assistant.daemon import Supervisor


async def test_a_task_that_dropped_its_cancellation_is_stopped_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "STOP_AGAIN_S", 0.1)
    cancellations: list[str] = []

    async def deaf() -> None:
        # what Python 3.11's wait_for does when the awaited thing ends as the stop comes
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append("deaf")
                if len(cancellations) > 1:
                    raise

    async def plain() -> None:
        await asyncio.sleep(3600)

    supervisor = Supervisor()
    supervisor.start("deaf", deaf)
    supervisor.start("plain", plain)
    await asyncio.sleep(0)
    await asyncio.wait_for(supervisor.stop(), 5)
    assert cancellations == ["deaf", "deaf"]

