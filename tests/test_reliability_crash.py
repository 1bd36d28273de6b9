"""A real `mimo-home run` process is SIGKILLed twice while a stream of state messages keeps
its registry writing, and started again: every SQLite file in the state directory passes
``PRAGMA integrity_check`` as the crash left it, what was stored before the kill (entities,
timers, schedules, list items) is there after the restart, and the restarted daemon replays
nothing: no command sent before the kill goes out again, no timer that fired fires again."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import free_port, start_mosquitto
from tests.reliability_support import (
    Client, Lights, Requester, StateStream, integrity_problems, stored_entities, until,
    until_known, write_hub)

LAMPS = tuple(f"{word}_lamp" for word in (
    "desk", "floor", "reading", "porch", "attic", "garden", "bench", "corner", "shelf",
    "window", "table", "stair"))
ENTITIES = {f"light.{lamp}" for lamp in LAMPS}
KILLS = 2


def crash_copy(state_dir: Path, into: Path) -> Path:
    """The state directory as the crash left it (database, write-ahead log, its index)."""
    shutil.copytree(state_dir, into, ignore=shutil.ignore_patterns("rules"))
    return into


async def test_state_survives_kills_during_registry_writes(tmp_path: Path) -> None:
    port, base = free_port(), f"crash{uuid.uuid4().hex[:8]}"
    broker = start_mosquitto(port)
    hub = write_hub(tmp_path, port, base)
    lights = Lights(port, base, LAMPS)
    requester = Requester(port, base)
    notices = Client(port, [f"{base}/notices"], "notices")
    stream: StateStream | None = None
    try:
        await until(lambda: lights.subscribed and requester.subscribed and notices.subscribed,
                    what="subscriptions")
        lights.announce(f"{base}-ha")
        await hub.start()
        await until_known(requester, LAMPS)
        at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:00")
        asked = [f"every day at {at} turn on the desk lamp", "set a pizza timer for 50 minutes",
                 "set a timer for 2 seconds", "add milk to the shopping list",
                 *(f"turn off the {lamp.replace('_', ' ')}" for lamp in LAMPS[:4])]
        # At once: the first list item waits for the lists' word forms to load meanwhile.
        replies = await asyncio.gather(*map(requester.ask, asked))
        assert all(reply["success"] for reply in replies), replies
        assert (await requester.ask("add eggs to the shopping list"))["success"]
        await until(lambda: len(notices.payloads(f"{base}/notices")) == 1, what="the timer")
        commands_before = len(lights.received)
        await until(lambda: ENTITIES <= set(stored_entities(hub.state_dir)),
                    what="every lamp stored")

        stream = StateStream(port, base, LAMPS, per_s=1000)
        for kill in range(KILLS):
            stored = stored_entities(hub.state_dir)
            # Kill once the registry is storing the stream's states, between or in a batch.
            await until(lambda: stored_entities(hub.state_dir) != stored, what="a write")
            await hub.kill()
            killed_at = time.time()
            # The broker says "offline" (the daemon's will): a request is not sent to the dead.
            await until(lambda: not requester.online, what="the daemon's will")
            left = crash_copy(hub.state_dir, tmp_path / f"crash{kill}")
            assert integrity_problems(left) == {}
            assert ENTITIES <= set(stored_entities(left))
            assert stored_entities(left)["light.desk_lamp"]["name"] == "Desk Lamp"

            await hub.start()
            await until_known(requester, LAMPS[:1])
            # Automations start after the API answers: missed jobs run then, not later.
            await until(lambda: hub.log_file.read_text().count(" rules loaded from ") == kill + 2,
                        what="the automations started")
            log = hub.log_file.read_text()
            loaded = [int(n) for n in re.findall(r"registry \S+: (\d+) entities", log)]
            assert len(loaded) == kill + 2 and loaded[-1] >= len(LAMPS), loaded

            # A fresh command goes out after anything the restarted daemon might replay.
            fresh = f"{base}/{LAMPS[-1]}/set"
            assert (await requester.ask(f"turn {'on' if kill % 2 else 'off'} the "
                                        f"{LAMPS[-1].replace('_', ' ')}"))["success"]
            await until(lambda: any(t == fresh and when > killed_at
                                    for t, _, when in lights.received), what="the fresh one")
            with lights.lock:
                since = [t for t, _, when in lights.received if when > killed_at]
            assert since == [fresh], f"replayed after the restart: {since}"
            assert len(notices.payloads(f"{base}/notices")) == 1, "a fired timer fired again"
        stream.close()
        stream = None

        schedules = (await requester.ask("what schedules do I have"))["reply"]
        assert at in schedules and "Desk Lamp" in schedules, schedules
        left = (await requester.ask("how much time is left on the pizza timer"))["reply"]
        assert re.search(r"\b(49|50) minutes", left), left
        items = (await requester.ask("what's on my shopping list"))["reply"].lower()
        assert "milk" in items and "eggs" in items, items
        assert len(lights.received) == commands_before + KILLS
    finally:
        if stream is not None:
            stream.close()
        await hub.stop()
        for client in (notices, requester, lights):
            client.close()
        broker.stop_sync()
    assert integrity_problems(hub.state_dir) == {}
