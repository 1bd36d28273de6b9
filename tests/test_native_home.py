"""A home of native devices, end to end: recorded Zigbee2MQTT, Tasmota, Shelly and Homie
traffic (tests/data/<protocol>/, written from each protocol's documentation and real dumps)
replayed into a real Mosquitto; the daemon finds every device, `mimo-home devices --json`
lists them with their capabilities, and `mimo-home ask` switches one device of each protocol,
each command on the protocol's own topic in its own format, as an independent client sees.

The devices' answers to commands come from a small paho client playing the four devices as
their documentation says they answer (a state report for each command)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from assistant.config import Config
from assistant.daemon import Daemon
from tests.conftest import Broker

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
TIMEOUT_S = 20.0


def recorded(path: str) -> Any:
    return json.loads((DATA / path).read_text(encoding="utf-8"))


def as_payload(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else json.dumps(value)).encode()


@dataclass(frozen=True)
class Topics:
    """Where this test's devices live: prefixes of their own, so no retained message of
    another test is read, and none of ours outlives the test."""

    base: str

    @property
    def z2m(self) -> str:
        return f"{self.base}-z2m"

    @property
    def tasmota_discovery(self) -> str:
        return f"{self.base}-tasmota/discovery"

    @property
    def tasmota_topic(self) -> str:
        return f"{self.base}_B1"

    @property
    def shelly(self) -> str:
        return f"{self.base}-plus1pm"

    @property
    def homie(self) -> str:
        return f"{self.base}-homie"


SHELLY = recorded("shelly/plus1pm.json")
TASMOTA_CONFIG = recorded("tasmota/sonoff_basic.config.json")


BULB_IEEE = "0x000b57fffec6a5b2"  # the IKEA bulb of bridge_devices.json


def bulb_over_ha_discovery(topics: Topics) -> tuple[str, bytes]:
    """What Zigbee2MQTT's homeassistant option publishes for the bulb too: its recorded
    HA discovery config of a light, for this bridge's bulb."""
    text = json.dumps(recorded("ha_discovery/light_z2m_json.json"))
    text = (text.replace("zigbee2mqtt/Living room lamp", f"{topics.z2m}/bulb")
            .replace("zigbee2mqtt/bridge", f"{topics.z2m}/bridge")
            .replace("0x0017880104e45517", BULB_IEEE).replace("living_room_lamp", "bulb")
            .replace("Living room lamp", "bulb"))
    return f"{topics.base}-ha/light/{BULB_IEEE}/light/config", text.encode()


def replay(topics: Topics) -> list[tuple[str, bytes]]:
    """The retained messages the four protocols' devices leave on the broker."""
    z2m = [(f"{topics.z2m}/bridge/state", b"online"),
           (f"{topics.z2m}/bridge/devices",
            as_payload(recorded("zigbee2mqtt/bridge_devices.json"))),
           (f"{topics.z2m}/bridge/groups", as_payload(recorded("zigbee2mqtt/bridge_groups.json")))]
    for section in recorded("zigbee2mqtt/states.json").values():
        z2m += [(f"{topics.z2m}/{name}", as_payload(state)) for name, state in section.items()]
    mac = TASMOTA_CONFIG["mac"]
    tasmota = [
        (f"{topics.tasmota_discovery}/{mac}/config",
         as_payload({**TASMOTA_CONFIG, "t": topics.tasmota_topic})),
        (f"{topics.tasmota_discovery}/{mac}/sensors",
         as_payload(recorded("tasmota/sonoff_basic.sensors.json"))),
        (f"tele/{topics.tasmota_topic}/LWT", b"Online"),
        (f"stat/{topics.tasmota_topic}/RESULT", b'{"POWER":"OFF"}'),
    ]
    homie = [(topics.homie + m["topic"].removeprefix("homie"), as_payload(m["payload"]))
             for m in recorded("homie/v5_kitchen_light.json")]
    return [*z2m, bulb_over_ha_discovery(topics), *tasmota, (f"{topics.shelly}/online", b"true"),
            *homie]


@dataclass
class Devices:
    """One paho client: publishes the recordings, answers commands as the devices do, and
    records every command it sees (the independent witness)."""

    topics: Topics
    broker: Broker
    commands: list[tuple[str, bytes, bool]] = field(default_factory=list)  # topic, payload, retain
    _changed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{self.topics.base}",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        t = self.topics
        for topic in (f"{t.z2m}/+/set", f"cmnd/{t.tasmota_topic}/#", f"{t.shelly}/rpc",
                      f"{t.homie}/5/+/+/+/set"):
            self.client.subscribe(topic, options=paho.SubscribeOptions(
                qos=1, retainAsPublished=True))
        for topic, payload in replay(t):
            self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def stop(self) -> None:
        for topic, _payload in replay(self.topics):
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        if not is_read(msg.topic, msg.payload):  # reading a device is no command
            self.commands.append((msg.topic, msg.payload, msg.retain))
        self._answer(client, msg.topic, msg.payload)
        self._changed.set()

    def _answer(self, client: paho.Client, topic: str, payload: bytes) -> None:
        t = self.topics
        if topic.startswith(f"{t.z2m}/"):  # the device reports its new state
            client.publish(topic.removesuffix("/set"), payload)
        elif topic.startswith(f"cmnd/{t.tasmota_topic}/"):
            command = topic.rsplit("/", 1)[1]
            client.publish(f"stat/{t.tasmota_topic}/RESULT",
                           json.dumps({command.upper(): payload.decode()}))
        elif topic == f"{t.shelly}/rpc":
            self._answer_rpc(client, json.loads(payload))
        elif topic.startswith(f"{t.homie}/"):
            client.publish(topic.removesuffix("/set"), payload, qos=1, retain=True)

    def _answer_rpc(self, client: paho.Client, request: dict[str, Any]) -> None:
        """As the Shelly Gen2 RPC docs say: a response frame to ``<src>/rpc``, and for
        Switch.Set a NotifyStatus on ``<prefix>/events/rpc``."""
        device_id = SHELLY["Shelly.GetDeviceInfo"]["id"]
        method = request["method"]
        result = SHELLY.get(method, {"was_on": False} if method.startswith("Switch.") else None)
        client.publish(f"{request['src']}/rpc", json.dumps(
            {"id": request["id"], "src": device_id, "dst": request["src"], "result": result}))
        if method == "Switch.Set":
            client.publish(f"{self.topics.shelly}/events/rpc", json.dumps({
                "src": device_id, "dst": f"{self.topics.shelly}/events",
                "method": "NotifyStatus",
                "params": {"switch:0": {"id": 0, "output": request["params"]["on"]}}}))

    async def commands_since(self, start: int, count: int) -> list[tuple[str, Any]]:
        """``count`` commands after the first ``start`` (topic, decoded payload), awaited
        with a timeout."""
        async with asyncio.timeout(TIMEOUT_S):
            while len(self.commands) < start + count:
                self._changed.clear()
                await asyncio.to_thread(self._changed.wait, 0.2)
        return [(topic, decoded(payload)) for topic, payload, _ in self.commands[start:]]


def is_read(topic: str, payload: bytes) -> bool:
    """The Shelly adapter's Shelly.Get* requests, the Tasmota adapter's State / Status 10."""
    request = decoded(payload)
    if topic.endswith(("/State", "/Status")):
        return payload in (b"", b"10")
    return isinstance(request, dict) and str(request.get("method", "")).startswith("Shelly.")


def decoded(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode()


@dataclass(frozen=True)
class Home:
    daemon: Daemon
    devices: Devices
    env: dict[str, str]


@pytest.fixture
async def home(broker: Broker, tmp_path: Path) -> AsyncIterator[Home]:
    topics = Topics(f"native{uuid.uuid4().hex[:8]}")
    config = Config.model_validate({
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": topics.base,
                 "client_id": topics.base},
        "adapters": {"ha_discovery": {"prefix": f"{topics.base}-ha"},
                     "zigbee2mqtt": {"base_topic": topics.z2m},
                     "tasmota": {"discovery_prefix": topics.tasmota_discovery},
                     "homie": {"base_topic": topics.homie}},
        "llm": {"enabled": False}, "voice": {"enabled": False}, "mdns": {"enabled": False},
    })
    devices = Devices(topics, broker)
    await asyncio.to_thread(devices.start)
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    env.update(MIMO_HOME__MQTT__HOST=broker.host, MIMO_HOME__MQTT__PORT=str(broker.port),
               MIMO_HOME__MQTT__BASE_TOPIC=topics.base, XDG_RUNTIME_DIR=tempfile.gettempdir())
    try:
        ready = asyncio.create_task(daemon.ready.wait())
        await asyncio.wait({task, ready}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # what stopped the daemon
        assert ready.done(), "the daemon was not ready in time"
        await until_registry(daemon, lambda: sources(daemon) >= PROTOCOLS,
                             lambda: f"only {sorted(sources(daemon))} arrived")
        yield Home(daemon, devices, env)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, TIMEOUT_S)
        await asyncio.to_thread(devices.stop)


PROTOCOLS = {"zigbee2mqtt", "tasmota", "shelly", "homie"}


def sources(daemon: Daemon) -> set[str]:
    return {e.source for e in daemon.registry.entities()}


async def until_registry(daemon: Daemon, predicate: Callable[[], bool],
                         explain: Callable[[], str]) -> None:
    """Wait, on the registry's own change events, until ``predicate`` holds."""
    changed = asyncio.Event()
    unsubscribe = daemon.registry.subscribe(lambda _change: changed.set())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not predicate():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(explain()) from None
    finally:
        unsubscribe()


async def mimo(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_every_native_device_is_listed_with_its_capabilities(home: Home) -> None:
    body = json.loads(await mimo(home.env, "devices", "--json", "--timeout", "10"))
    rows = {row["entity_id"]: row for row in body["entities"]}
    by_source: dict[str, set[str]] = {}
    for row in rows.values():
        by_source.setdefault(row["source"], set()).add(row["entity_id"])
    assert set(by_source) >= PROTOCOLS

    expected = {
        # entity: (source, domain, words the capabilities summary must hold)
        "light.z2m_000b57fffec6a5b2_light": ("zigbee2mqtt", "light", ("color_temp",)),
        "lock.z2m_000d6f000f8e2a04_lock": ("zigbee2mqtt", "lock", ()),
        "climate.z2m_a4c1380b2e9d7f01_climate": ("zigbee2mqtt", "climate", ("heat",)),
        "cover.z2m_680ae2fffe4b1c03_cover": ("zigbee2mqtt", "cover", ("position",)),
        f"switch.tasmota_{TASMOTA_CONFIG['mac'].lower()}_relay_1": ("tasmota", "switch", ()),
    }
    for entity_id, (source, domain, words) in expected.items():
        row = rows.get(entity_id)
        assert row is not None, f"{entity_id} not listed; got {sorted(rows)}"
        assert (row["source"], row["domain"]) == (source, domain)
        for word in words:
            assert word in row["capabilities"], (entity_id, row["capabilities"])
    shelly = [row for row in rows.values() if row["source"] == "shelly"
              and row["domain"] == "switch"]
    assert [row["name"] for row in shelly] == ["Kettle"]
    homie_lights = [row for row in rows.values() if row["source"] == "homie"
                    and row["domain"] == "light"]
    assert len(homie_lights) == 1 and "rgb" in homie_lights[0]["capabilities"]

    # The bulb also came over HA discovery: one appliance, spoken for by its native adapter.
    twin = rows.get("light.bulb")
    assert twin is not None and twin["source"] == "ha_discovery" and twin["exposed"] is False
    assert rows["light.z2m_000b57fffec6a5b2_light"]["exposed"] is True
    assert twin["device_ids"] == rows["light.z2m_000b57fffec6a5b2_light"]["device_ids"] == [
        f"zigbee:{BULB_IEEE}"]

    # What the recordings say cannot be used is not listed: the coordinator, a device
    # still being interviewed, an unsupported one.
    names = {row["name"] for row in rows.values() if row["source"] == "zigbee2mqtt"}
    assert "Coordinator" not in names
    assert not any(name.startswith("0x90fd9ffffe6494fc") for name in names)


SWITCH_ONE_OF_EACH = [
    # (request, topic suffix after the protocol's prefix, expected payload)
    ("turn on the bulb", "z2m", "bulb/set", {"state": "ON"}),
    ("turn on the kettle", "shelly", "rpc",
     {"method": "Switch.Set", "params": {"id": 0, "on": True}}),
    ("turn off the kitchen light", "homie", "5/kitchen-light/light/power/set", False),
]


@pytest.mark.parametrize(("request_text", "protocol", "suffix", "payload"), SWITCH_ONE_OF_EACH)
async def test_ask_switches_a_device_on_its_own_protocol(
        home: Home, request_text: str, protocol: str, suffix: str, payload: Any) -> None:
    prefix = getattr(home.devices.topics, protocol)
    before = len(home.devices.commands)
    reply = json.loads(await mimo(home.env, "ask", "--json", request_text))
    commands = await home.devices.commands_since(before, 1)
    topic, sent = commands[0]
    assert topic == f"{prefix}/{suffix}", commands
    if isinstance(payload, dict) and "method" in payload:
        assert {k: sent[k] for k in ("method", "params")} == payload
        assert sent["src"] and isinstance(sent["id"], int)  # a reply comes back to us
    else:
        assert sent == payload
    assert reply["success"] is True, reply
    # one command: the bulb's HA discovery twin is not a second target
    assert len(home.devices.commands) - before == 1, home.devices.commands[before:]
    assert all(not retain for _t, _p, retain in home.devices.commands)  # commands never retained


async def test_ask_switches_a_tasmota_relay_by_its_friendly_name(home: Home) -> None:
    name = TASMOTA_CONFIG["fn"][0]  # "SONOFF_B1": said as "sonoff b1"
    before = len(home.devices.commands)
    reply = json.loads(await mimo(home.env, "ask", "--json",
                                  f"turn on {name.replace('_', ' ').lower()}"))
    assert reply["success"] is True, reply
    commands = await home.devices.commands_since(before, 1)
    assert commands == [(f"cmnd/{home.devices.topics.tasmota_topic}/POWER", "ON")]


async def test_a_request_for_no_such_device_sends_nothing(home: Home) -> None:
    reply = json.loads(await mimo(home.env, "ask", "--json", "turn on the toaster"))
    assert reply["success"] is False
    assert home.devices.commands == []  # nothing reached any device
