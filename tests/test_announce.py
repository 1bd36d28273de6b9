"""mimo-home announced to Home Assistant as a device, on a real Mosquitto with the real link.

An independent paho client watches the wire. Each test uses its own base topic and discovery
prefix, so retained messages of other tests never reach it. The discovery format follows
Home Assistant's MQTT docs (device-based discovery: ``dev``, ``o``, ``cmps`` with ``p`` and
``uniq_id`` per component) and its schema (homeassistant/components/mqtt/schemas.py:
DEVICE_DISCOVERY_SCHEMA requires device, origin with a name, and components).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from assistant.announce import MAX_STATE_CHARS, SelfDevice, object_id_for
from assistant.config import MqttConfig
from assistant.messages import Action, ConversationResponse, EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity
from assistant.transport.mqtt_link import BrokerUnreachableError, MqttLink
from device_adapters.base import AdapterContext
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from tests.conftest import Broker, free_port, start_mosquitto
from tests.test_mqtt_link import running

TIMEOUT = 15.0
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """An independent paho client; what it receives is handed to the event loop in order."""

    def __init__(self, port: int, filters: tuple[str, ...]) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Seen] = asyncio.Queue()
        self._subscribed = asyncio.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"watcher-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_: loop.call_soon_threadsafe(self._subscribed.set)
        self.client.on_message = lambda _c, _u, m: loop.call_soon_threadsafe(
            self._queue.put_nowait, Seen(m.topic, bytes(m.payload), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    async def ready(self) -> None:
        await asyncio.wait_for(self._subscribed.wait(), TIMEOUT)

    async def until(self, topic: str, payload: bytes | None = None) -> list[Seen]:
        """Everything received up to and including the next message on ``topic`` (with
        ``payload``, when given)."""
        seen: list[Seen] = []
        while True:
            message = await asyncio.wait_for(self._queue.get(), TIMEOUT)
            seen.append(message)
            if message.topic == topic and payload in (None, message.payload):
                return seen

    async def until_each(self, *topics: str) -> dict[str, Seen]:
        """The last message on each of ``topics``, once every one has had one (any order:
        retained messages come in the broker's order)."""
        seen: dict[str, Seen] = {}
        while not set(topics) <= seen.keys():
            message = await asyncio.wait_for(self._queue.get(), TIMEOUT)
            seen[message.topic] = message
        return seen

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.asynccontextmanager
async def watching(port: int, *filters: str) -> AsyncIterator[Watcher]:
    watcher = Watcher(port, filters)
    try:
        await watcher.ready()
        yield watcher
    finally:
        watcher.close()


@dataclass(frozen=True)
class Names:
    base: str
    prefix: str


@pytest.fixture
def names() -> Names:
    tag = uuid.uuid4().hex[:8]
    return Names(f"hub-{tag}", f"ha-{tag}")


def link_for(port: int, base: str, suffix: str = "") -> MqttLink:
    config = MqttConfig(host="127.0.0.1", port=port, client_id=base, base_topic=base,
                        reconnect_min_s=1, reconnect_max_s=1)
    return MqttLink(config, client_id_suffix=suffix)


def hub_on(link: MqttLink, names: Names, client_id: str = "kitchen-hub", *,
           set_muted: Callable[[bool], None] | None = None) -> SelfDevice:
    return SelfDevice(names.base, names.prefix, client_id, link.publish, link.subscribe,
                      set_muted=set_muted)


# -- the device config ----------------------------------------------------------------------


def test_object_ids_keep_only_id_characters_and_distinct_hubs_apart() -> None:
    assert object_id_for("kitchen-hub_2") == "kitchen-hub_2"
    cleaned = [object_id_for(name) for name in ("hub.1", "hub:1", "hub/#1", "")]
    assert all(id_ and set(id_) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
               for id_ in cleaned)
    assert len(set(cleaned)) == len(cleaned)  # "hub.1" and "hub:1" are not one device


async def test_the_hub_is_one_retained_device_config_with_three_entities(
        broker: Broker, names: Names) -> None:
    async with running(link_for(broker.port, names.base)) as link:
        await link.wait_connected(TIMEOUT)
        hub = hub_on(link, names, set_muted=lambda _muted: None)
        text_only = hub_on(link, names, "text-hub")  # nothing to mute
        async with watching(broker.port, f"{names.prefix}/device/+/config") as live:
            stops = [hub.start(), text_only.start()]
            await live.until(text_only.config_topic)
        # Subscribing afterwards: what it gets is what the broker retained.
        async with watching(broker.port, f"{names.prefix}/device/+/config",
                            link.status_topic) as watcher:
            retained = await watcher.until_each(hub.config_topic, text_only.config_topic,
                                                link.status_topic)
        for stop in stops:
            stop()

    assert hub.availability_topic == link.status_topic
    assert hub.config_topic == f"{names.prefix}/device/kitchen-hub/config"
    assert all(s.retain for s in retained.values())
    assert retained[link.status_topic].payload == b"online"
    config = json.loads(retained[hub.config_topic].payload)
    assert config["o"]["name"] == "mimo-home"
    assert config["dev"]["ids"] == ["mimo-home_kitchen-hub"]
    assert config["avty"] == [{"t": link.status_topic}]
    components = config["cmps"]
    assert {key: (c["p"], c["ent_cat"]) for key, c in components.items()} == {
        "last_request": ("sensor", "diagnostic"), "last_result": ("sensor", "diagnostic"),
        "mute_listening": ("switch", "config")}
    assert components["mute_listening"]["cmd_t"] == f"{names.base}/listening/mute/set"
    assert components["mute_listening"]["stat_t"] == f"{names.base}/listening/mute/state"
    # A hub with nothing to mute offers no switch; its ids are its own.
    other = json.loads(retained[text_only.config_topic].payload)
    assert set(other["cmps"]) == {"last_request", "last_result"}
    unique_ids = [c["uniq_id"] for cfg in (config, other) for c in cfg["cmps"].values()]
    assert len(set(unique_ids)) == len(unique_ids) == 5
    assert other["dev"]["ids"] != config["dev"]["ids"]


CHILD_HUB = """
import asyncio, sys
from assistant.announce import SelfDevice
from assistant.config import MqttConfig
from assistant.transport.mqtt_link import MqttLink

async def main(port, base, prefix):
    link = MqttLink(MqttConfig(host="127.0.0.1", port=port, client_id=base, base_topic=base))
    SelfDevice(base, prefix, base, link.publish, link.subscribe).start()
    await link.run()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


async def test_a_killed_hub_goes_offline_by_its_last_will(broker: Broker, names: Names) -> None:
    status_topic = f"{names.base}/status"
    config_topic = f"{names.prefix}/device/{names.base}/config"
    async with watching(broker.port, status_topic, config_topic) as watcher:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD_HUB, str(broker.port), names.base, names.prefix,
            cwd=REPO)
        try:
            before = await watcher.until(config_topic)
            assert Seen(status_topic, b"online", False) in before
            assert not any(s.payload == b"offline" for s in before)
            child.send_signal(signal.SIGKILL)  # no clean disconnect: only the will can tell
            await asyncio.wait_for(child.wait(), TIMEOUT)
            after = await watcher.until(status_topic)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert after == [Seen(status_topic, b"offline", False)]
    assert json.loads(before[-1].payload)["avty"] == [{"t": status_topic}]


# -- when it announces ---------------------------------------------------------------------


async def test_home_assistant_coming_online_gets_the_announcement_again(
        broker: Broker, names: Names) -> None:
    muted: list[bool] = []
    async with watching(broker.port, f"{names.prefix}/#", f"{names.base}/#") as watcher, \
            running(link_for(broker.port, names.base)) as link:
        await link.wait_connected(TIMEOUT)
        hub = hub_on(link, names, set_muted=muted.append)
        stop = hub.start()
        first = await watcher.until(hub.mute_state_topic)
        assert [s.topic for s in first if s.topic.endswith("/config")] == [hub.config_topic]

        # "offline" is not a birth: nothing is announced before the mute state echoed after it
        watcher.publish(hub.birth_topic, b"offline")
        watcher.publish(hub.mute_command_topic, b"ON")
        assert [s.topic for s in await watcher.until(hub.mute_state_topic, b"ON")] == [
            hub.birth_topic, hub.mute_command_topic, hub.mute_state_topic]

        watcher.publish(hub.birth_topic, b"online")
        again = await watcher.until(hub.mute_state_topic, b"ON")
        assert [s.topic for s in again] == [
            hub.birth_topic, hub.config_topic, hub.mute_state_topic]
        assert json.loads(again[1].payload) == hub.discovery_config()
        stop()
    assert muted == [True]


async def test_a_stopped_hub_no_longer_answers_a_birth(broker: Broker, names: Names) -> None:
    async with watching(broker.port, f"{names.prefix}/device/+/config") as watcher, \
            running(link_for(broker.port, names.base)) as link:
        await link.wait_connected(TIMEOUT)
        stopped = hub_on(link, names, "stopped-hub")  # subscribed first: it would go first
        running_hub = hub_on(link, names, "running-hub")
        stop_stopped = stopped.start()
        stop_running = running_hub.start()
        assert [s.topic for s in await watcher.until(running_hub.config_topic)] == [
            stopped.config_topic, running_hub.config_topic]
        stop_stopped()
        watcher.publish(running_hub.birth_topic, b"online")
        answered = await watcher.until(running_hub.config_topic)
        stop_running()
    assert [s.topic for s in answered] == [running_hub.config_topic]


async def test_a_reconnect_to_a_broker_that_forgot_everything_re_announces(
        names: Names) -> None:
    port = free_port()
    mosquitto = start_mosquitto(port)
    try:
        async with running(link_for(port, names.base)) as link:
            await link.wait_connected(TIMEOUT)
            hub = hub_on(link, names, set_muted=lambda _muted: None)
            stop = hub.start()
            async with watching(port, hub.config_topic) as watcher:
                await watcher.until(hub.config_topic)
            hub.record("turn on the porch light", ConversationResponse("Done.", path="fast"))
            mosquitto.stop_sync()
            mosquitto = start_mosquitto(port)  # no persistence: nothing retained survives
            async with watching(port, f"{names.prefix}/#", f"{names.base}/#") as watcher:
                again = await watcher.until_each(
                    hub.config_topic, hub.request_topic, hub.result_topic,
                    hub.mute_state_topic, link.status_topic)
            stop()
    finally:
        mosquitto.stop_sync()
    assert json.loads(again[hub.config_topic].payload) == hub.discovery_config()
    assert again[hub.request_topic].payload == b"turn on the porch light"
    assert json.loads(again[hub.result_topic].payload)["reply"] == "Done."
    assert again[link.status_topic].payload == b"online"


# -- states and the mute switch --------------------------------------------------------------


async def test_mute_commands_reach_the_voice_and_the_state_is_echoed(
        broker: Broker, names: Names) -> None:
    muted: list[bool] = []

    def set_muted(value: bool) -> None:
        if value and len(muted) >= 2:
            raise RuntimeError("the microphone is busy")
        muted.append(value)

    async with watching(broker.port, f"{names.base}/listening/#") as watcher, \
            running(link_for(broker.port, names.base)) as link:
        await link.wait_connected(TIMEOUT)
        hub = hub_on(link, names, set_muted=set_muted)
        stop = hub.start()
        await watcher.until(hub.mute_state_topic, b"OFF")  # announced: not muted

        watcher.publish(hub.mute_command_topic, b"ON")
        await watcher.until(hub.mute_state_topic, b"ON")
        assert muted == [True] and hub.muted

        for invalid in (b"on", b"TOGGLE", b"", b"\xff\xfe", b"ON " * 1000):
            watcher.publish(hub.mute_command_topic, invalid)
        watcher.publish(hub.mute_command_topic, b"OFF")
        echoed = await watcher.until(hub.mute_state_topic)
        assert [s.payload for s in echoed if s.topic == hub.mute_state_topic] == [b"OFF"]
        assert muted == [True, False] and not hub.muted

        watcher.publish(hub.mute_command_topic, b"ON")  # set_muted fails: still unmuted
        assert (await watcher.until(hub.mute_state_topic))[-1].payload == b"OFF"
        assert muted == [True, False] and not hub.muted
        stop()

        async with watching(broker.port, hub.mute_state_topic) as late:
            assert await late.until(hub.mute_state_topic) == [
                Seen(hub.mute_state_topic, b"OFF", True)]


async def test_the_last_request_and_result_are_published_bounded_and_without_secrets(
        broker: Broker, names: Names) -> None:
    async with watching(broker.port, f"{names.base}/assistant/#") as watcher, \
            running(link_for(broker.port, names.base)) as link:
        await link.wait_connected(TIMEOUT)
        hub = hub_on(link, names)
        stop = hub.start()
        hub.record("disarm the alarm, code 4711", ConversationResponse(
            "Disarm House Alarm with 4711? Say yes.", path="fast",
            pending=(Action("alarm_disarm", "alarm_control_panel.house", {"code": "4711"}),),
            awaiting_confirmation=True))
        seen = await watcher.until(hub.result_topic)
        hub.record("x" * 5000 + "\n\x00", ConversationResponse("y" * 5000, success=False))
        seen += await watcher.until(hub.result_topic)
        stop()
        async with watching(broker.port, f"{names.base}/assistant/#") as late:
            kept = await late.until_each(hub.request_topic, hub.result_topic)

    request, result, long_request, long_result = (s.payload for s in seen)
    assert [(s.payload, s.retain) for s in kept.values()] == [
        (long_request, True), (long_result, True)]
    assert request == b"disarm the alarm, code <secret>"
    assert json.loads(result) == {"reply": "Disarm House Alarm with <secret>? Say yes.",
                                  "path": "fast", "success": True}
    assert all(b"4711" not in s.payload for s in seen)
    assert long_request == b"x" * MAX_STATE_CHARS
    assert json.loads(long_result) == {"reply": "y" * MAX_STATE_CHARS, "path": "none",
                                       "success": False}


# -- read back by our own Home Assistant discovery adapter -----------------------------------


async def test_our_discovery_adapter_makes_working_entities_of_the_announcement(
        broker: Broker, names: Names) -> None:
    registry = DeviceRegistry(None)
    adapter = HomeAssistantDiscoveryAdapter(names.prefix)
    muted: list[bool] = []

    def ours() -> dict[str, Entity]:
        return {e.unique_id or "": e for e in registry.all_entities()}

    async with running(link_for(broker.port, names.base)) as hub_link, \
            running(link_for(broker.port, names.base, "-reader")) as reader:
        stop_adapter = adapter.start(AdapterContext(registry, reader.subscribe, reader.publish))
        await asyncio.wait_for(asyncio.gather(hub_link.wait_connected(TIMEOUT),
                                              reader.wait_connected(TIMEOUT)), TIMEOUT)
        hub = hub_on(hub_link, names, set_muted=muted.append)
        other = hub_on(hub_link, names, "hall-hub")
        stops = [hub.start(), other.start()]
        request_id, result_id, switch_id = (f"kitchen-hub_{key}" for key in (
            "last_request", "last_result", "mute_listening"))
        # The switch's retained state and the availability arrive after its config, in any order.
        await _registry_until(registry, lambda: len(ours()) == 5
                              and ours()[switch_id].state == "off"
                              and all(e.available for e in ours().values()))

        hub.record("what is the code 1234", ConversationResponse("No code needed.", path="llm"))
        await _registry_until(registry, lambda: ours()[result_id].state == "No code needed.")
        entities = ours()
        switch = entities[switch_id]
        for message in adapter.encode(switch, EntityCommand(switch.entity_id, "turn_on", {})):
            reader.publish(message)
        await _registry_until(registry, lambda: ours()[switch_id].state == "on")
        assert muted == [True]

        for stop in stops:
            stop()
        stop_adapter()

    assert {key: (e.domain, e.entity_category, e.available)
            for key, e in entities.items() if key.startswith("kitchen-hub_")} == {
        request_id: ("sensor", "diagnostic", True), result_id: ("sensor", "diagnostic", True),
        switch_id: ("switch", "config", True)}
    assert entities[request_id].state == "what is the code <secret>"
    assert entities[result_id].attributes["path"] == "llm"
    assert switch.state == "off" and switch.wire["command_topic"] == hub.mute_command_topic
    assert len({e.entity_id for e in entities.values()}) == 5  # two hubs, no clash


async def _registry_until(registry: DeviceRegistry, predicate: Callable[[], bool]) -> None:
    changed = asyncio.Event()
    unsubscribe = registry.subscribe(lambda _change: changed.set())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not _holds(predicate):
                await changed.wait()
                changed.clear()
    finally:
        unsubscribe()


def _holds(predicate: Callable[[], bool]) -> bool:
    try:
        return predicate()
    except KeyError:  # not discovered yet
        return False


def test_states_go_out_now_or_never_through_the_given_publish() -> None:
    sent: list[MqttMessage] = []

    def publish(message: MqttMessage) -> None:
        if not online:
            raise BrokerUnreachableError("away")
        sent.append(message)

    online = False
    hub = SelfDevice("base", "homeassistant", "hub", publish,
                     lambda _topic, _handler: lambda: None)
    hub.start()  # the link is away: nothing is sent, nothing raises
    hub.record("hello", ConversationResponse("Hi."))
    assert sent == []
    online = True
    hub.announce()
    assert [m.topic for m in sent] == [hub.config_topic, hub.request_topic, hub.result_topic]
    assert all(m.retain and m.qos == 1 and not m.resend for m in sent)
