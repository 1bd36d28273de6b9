"""``mimo-home bench mqtt``: how much device traffic the daemon keeps up with, against what a
plain subscriber reaches on the same broker in the same run, and the command round trip.

A private broker (Mosquitto when installed, else the embedded one) and a real daemon with a
small virtual home of lights, in this process. After an uncounted warm-up, each repeat runs:

- ``raw``: a burst of light state messages on topics nothing of the daemon hears, counted by
  a plain paho subscriber connected for the whole run;
- ``ingest``: the same burst on the lights' own state topics, counted as the daemon applies
  each message to its registry (a registry listener; the burst ends with every light "OFF");
- ``roundtrip``: one command at a time through the daemon's gateway, each timed until the
  virtual light's new state is back in the registry.

The bursts come from another process (``burst_publisher``), so the publisher does not share
the daemon's GIL; rates count from its first publish to the last message received (raw) or
applied (ingest). A run that loses or duplicates messages reports no rate for them: that
figure leaves the run out, ``complete`` is false and ``problems`` says what went wrong.

Result (plain JSON)::

    {"broker": "mosquitto 2.0.11" | "embedded amqtt (mosquitto is not installed)" | ...,
     "messages": 20000, "repeats": 3, "lights": 4, "roundtrips": 50,
     "raw_per_s": {"median": .., "p95": ..}, "ingest_per_s": {..},
     "ingest_ratio": {..},          # ingest / raw, per repeat
     "roundtrip_ms": {..},          # over every command of every repeat
     "complete": true, "problems": []}

A figure is {"median": None, "p95": None} when no run measured it completely; p95 is the
nearest rank (with 3 repeats, the highest).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.config import Config
from assistant.daemon import Daemon
from assistant.figures import figure
from assistant.messages import EntityCommand
from assistant.registry import RegistryChange
from assistant.transport.embedded_broker import (
    mosquitto_executable,
    mosquitto_version,
)
from assistant.virtual.burst_publisher import OFF
from assistant.virtual.fixtures import AreaSpec, HomeSpec, VirtualEntitySpec
from assistant.virtual.home import VirtualHome
from assistant.virtual.stack import private_broker, running_home

LIGHTS = 4  # the burst goes round-robin over this many lights
ROUNDTRIPS = 50
HOME_TOPIC = "bench-home"
RAW_ROOT = "bench-raw"  # the raw burst's topics: nothing of the daemon subscribes there
ROUNDTRIP_LIGHT = "light.bench_roundtrip"
BURST_TIMEOUT_S = 60.0
WARM_UP = 1000  # messages of the uncounted first bursts
COMMAND_TIMEOUT_S = 5.0


def bench_home(lights: int = LIGHTS) -> HomeSpec:
    """Dimmable lights for the burst, and one more for the round trips."""
    ids = [f"light.bench_burst_{n}" for n in range(1, lights + 1)] + [ROUNDTRIP_LIGHT]
    entities = tuple(VirtualEntitySpec(
        entity_id=entity_id, name=entity_id.split(".")[1].replace("_", " ").title(),
        domain="light", area="bench", device_class=None, state="off",
        attributes={"supported_color_modes": ["brightness"]}) for entity_id in ids)
    return HomeSpec(floors=(), areas=(AreaSpec("bench", "Bench"),), devices=(),
                    entities=entities)


@dataclass
class _Counter:
    """Counts a burst's messages as they arrive (from any thread); calls ``on_done`` once
    every topic said its last word."""

    expected: int
    ends: int  # how many "OFF" messages end the burst
    seen: int = 0
    ended: int = 0
    finished_at: float | None = None
    on_done: Callable[[], None] = field(default=lambda: None)

    def count(self, last: bool) -> None:
        self.seen += 1
        if last:
            self.ended += 1
            if self.ended == self.ends:
                self.finished_at = time.monotonic()
                self.on_done()


@dataclass(frozen=True, slots=True)
class BurstResult:
    """A burst's rate, or (None and) what went wrong."""

    per_s: float | None
    problem: str | None


class _Burst:
    """One burst from the publisher process: ``prepare`` connects it, ``fire`` starts it and
    returns its first publish's monotonic time."""

    def __init__(self, host: str, port: int, count: int, topics: list[str]) -> None:
        self._args = [sys.executable, "-m", "assistant.virtual.burst_publisher", host,
                      str(port), str(count), *topics]
        self._process: subprocess.Popen[str] | None = None

    def prepare(self) -> None:
        self._process = subprocess.Popen(self._args, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the burst publisher could not connect")

    def fire(self) -> float:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        started, _ = process.stdout.readline().split()
        process.wait(BURST_TIMEOUT_S)
        return float(started)


def _outcome(counter: _Counter, started: float, what: str) -> BurstResult:
    if counter.finished_at is None:
        return BurstResult(None, f"{what}: the burst's end never arrived "
                                 f"({counter.seen} of {counter.expected} messages)")
    if counter.seen != counter.expected:
        return BurstResult(None, f"{what}: {counter.seen} of {counter.expected} messages")
    return BurstResult(counter.expected / max(counter.finished_at - started, 1e-9), None)


async def _wait(done: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)


class RawSubscriber:
    """A plain paho subscriber to the raw burst's topics, connected for the whole run as
    the daemon's link is (a fresh connection's socket buffers are small: the broker drops
    QoS 0 messages for it sooner)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._counter: _Counter | None = None
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_connect = lambda c, *_: c.subscribe(f"{RAW_ROOT}/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message

    def _on_message(self, _client: paho.Client, _userdata: object,
                    message: paho.MQTTMessage) -> None:
        if self._counter is not None:
            self._counter.count(message.payload == OFF)

    async def start(self) -> None:
        self._client.connect(self.host, self.port)
        self._client.loop_start()
        if not await asyncio.to_thread(self._subscribed.wait, COMMAND_TIMEOUT_S):
            raise RuntimeError("the raw subscriber could not subscribe")

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def burst(self, messages: int, lights: int) -> BurstResult:
        """The burst as this subscriber receives it."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        self._counter = counter = _Counter(
            messages, lights, on_done=lambda: loop.call_soon_threadsafe(done.set))
        try:
            topics = [f"{RAW_ROOT}/light/bench_burst_{n}/state" for n in range(1, lights + 1)]
            started = await _fire(self.host, self.port, messages, topics)
            await _wait(done, BURST_TIMEOUT_S)
        finally:
            self._counter = None
        return _outcome(counter, started, "raw")


async def _fire(host: str, port: int, messages: int, topics: list[str]) -> float:
    burst = _Burst(host, port, messages, topics)
    await asyncio.to_thread(burst.prepare)
    return await asyncio.to_thread(burst.fire)


async def ingest_burst(daemon: Daemon, house: VirtualHome, messages: int,
                       lights: int) -> BurstResult:
    """The burst on the lights' own state topics, counted as the registry applies it."""
    registry = daemon.registry
    known = house.known_as(registry.all_entities())
    ids = {known[f"light.bench_burst_{n}"] for n in range(1, lights + 1)}
    done = asyncio.Event()
    counter = _Counter(messages, lights, on_done=done.set)

    def listener(change: RegistryChange) -> None:
        if change.reported and change.entity_id in ids:
            entity = registry.get_any(change.entity_id)
            counter.count(entity is not None and entity.state == "off")

    unsubscribe = registry.subscribe(listener)
    try:
        topics = [f"{HOME_TOPIC}/light/bench_burst_{n}/state" for n in range(1, lights + 1)]
        started = await _fire(daemon.link.config.host, daemon.link.config.port, messages,
                              topics)
        await _wait(done, BURST_TIMEOUT_S)
    finally:
        unsubscribe()
    return _outcome(counter, started, "ingest")


async def roundtrips(daemon: Daemon, house: VirtualHome, count: int) -> tuple[list[float], int]:
    """Milliseconds from sending each command to its state back in the registry; and how
    many never came back within COMMAND_TIMEOUT_S."""
    registry = daemon.registry
    entity_id = house.known_as(registry.all_entities())[ROUNDTRIP_LIGHT]
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[float]] = {}

    def listener(change: RegistryChange) -> None:
        entity = registry.get_any(entity_id)
        if change.entity_id == entity_id and entity is not None:
            future = waiting.pop(entity.state or "", None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    unsubscribe = registry.subscribe(listener)
    times, lost = [], 0
    try:
        for _ in range(count):
            entity = registry.get_any(entity_id)
            assert entity is not None
            wanted = "off" if entity.state == "on" else "on"
            back = waiting[wanted] = loop.create_future()
            sent = time.perf_counter()
            await daemon.gateway.send([(entity, EntityCommand(entity_id, f"turn_{wanted}"))])
            try:
                times.append((await asyncio.wait_for(back, COMMAND_TIMEOUT_S) - sent) * 1000)
            except TimeoutError:
                lost += 1
                waiting.clear()
    finally:
        unsubscribe()
    return times, lost


def _broker_label(choice: str) -> str:
    executable = mosquitto_executable()
    if choice == "embedded":
        return "embedded amqtt"
    if executable is None:
        return "embedded amqtt (mosquitto is not installed)"
    return f"mosquitto {mosquitto_version(executable)}"


@contextlib.asynccontextmanager
async def _broker(config: Config, choice: str) -> AsyncIterator[Config]:
    """The private broker ``choice`` names: "auto" (Mosquitto when installed) or
    "embedded"."""
    if choice not in ("auto", "embedded"):
        raise ValueError(f"unknown broker {choice!r}: 'auto' or 'embedded'")
    async with private_broker(config, embedded=choice == "embedded") as config:
        yield config


def bench_config(state_dir: Path) -> Config:
    """The daemon as shipped (automations, API, announce), without models or sound."""
    config = Config()
    return config.model_copy(update={
        "state_dir": state_dir,
        "llm": config.llm.model_copy(update={"enabled": False}),
        "voice": config.voice.model_copy(update={"enabled": False})})


async def mqtt_bench(messages: int = 20000, repeats: int = 3, broker: str = "auto", *,
                     roundtrip_count: int = ROUNDTRIPS, lights: int = LIGHTS) -> dict[str, Any]:
    """The bench (see the module's docstring)."""
    if messages < lights or repeats < 1:
        raise ValueError("need at least one message per light and one repeat")
    raw, ingest, ratios, times, problems = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="mimo-bench-") as state_dir:
        async with _broker(bench_config(Path(state_dir)), broker) as config, \
                running_home(config, bench_home(lights), home_topic=HOME_TOPIC) as (house,
                                                                                    daemon):
            subscriber = RawSubscriber(config.mqtt.host, config.mqtt.port)
            await subscriber.start()
            # Not counted: the first burst after the start meets a daemon still settling.
            await subscriber.burst(min(messages, WARM_UP), lights)
            await ingest_burst(daemon, house, min(messages, WARM_UP), lights)
            for _ in range(repeats):
                got_raw = await subscriber.burst(messages, lights)
                got_ingest = await ingest_burst(daemon, house, messages, lights)
                problems += [r.problem for r in (got_raw, got_ingest) if r.problem]
                raw += [got_raw.per_s] if got_raw.per_s else []
                ingest += [got_ingest.per_s] if got_ingest.per_s else []
                if got_raw.per_s and got_ingest.per_s:
                    ratios.append(got_ingest.per_s / got_raw.per_s)
                measured, lost = await roundtrips(daemon, house, roundtrip_count)
                times += measured
                if lost:
                    problems.append(f"roundtrip: {lost} of {roundtrip_count} commands "
                                    f"never came back")
            await subscriber.stop()
    return {"broker": _broker_label(broker), "messages": messages, "repeats": repeats,
            "lights": lights, "roundtrips": roundtrip_count,
            "raw_per_s": figure(raw), "ingest_per_s": figure(ingest),
            "ingest_ratio": figure(ratios), "roundtrip_ms": figure(times),
            "complete": not problems, "problems": problems}


def run_mqtt_bench(messages: int = 20000, repeats: int = 3,
                   broker: str = "auto") -> dict[str, Any]:
    """``mqtt_bench`` in an event loop of its own (for the command line)."""
    return asyncio.run(mqtt_bench(messages, repeats, broker))
