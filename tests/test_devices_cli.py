"""``mimo-home devices`` against the daemon's inventory server on a real Mosquitto.

The entity part runs on the session's broker; the appliance part needs mDNS, so it runs in
an isolated network namespace (its own Mosquitto, advertiser and inventory on 127.0.0.1) as
tests/test_appliances_mdns.py does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from assistant.appliances import serve_inventory
from assistant.appliances.report import MAX_REPORTS_IN_FLIGHT, InventoryServer
from assistant.config import MqttConfig
from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry, Entity
from assistant.transport.api import devices_request_topic, devices_response_topic
from assistant.transport.mqtt_link import MqttLink
from tests.conftest import Broker
from tests.test_api import Served
from tests.test_appliances_mdns import LOOPBACK, WAIT_S, Events, run_isolated, service_info
from tests.netns import start_mosquitto
from tests.test_mqtt_link import running

REPO = Path(__file__).resolve().parents[1]


def home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    kitchen = registry.ensure_area("Kitchen")
    registry.upsert(Entity(
        entity_id="light.kitchen_ceiling", name="Kitchen ceiling", domain="light",
        area=kitchen, source="zigbee2mqtt", state="on",
        capabilities={"supported_color_modes": ["color_temp"], "min_color_temp_kelvin": 2200,
                      "max_color_temp_kelvin": 6500, "services": ["turn_on", "turn_off"]},
        device_ids=("zigbee:0x00158d0001a2b3c4",)))
    registry.upsert(Entity(entity_id="switch.boiler", name="Boiler", domain="switch",
                           source="shelly", available=False, state="off",
                           capabilities={"services": ["turn_on", "turn_off"]},
                           device_ids=("mac:c4dd57877294",)))
    registry.upsert(Entity(entity_id="button.boiler_restart", name="Boiler restart",
                           domain="button", source="shelly", entity_category="config"))
    registry.set_exposure(lambda entity: entity.entity_category is None)
    return registry


@pytest.fixture()
async def served(broker: Broker, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """The daemon's side: an inventory server (no mDNS) on a real MqttLink and broker."""
    base = f"mimo-devices-{request.node.name[:20]}"
    config = MqttConfig(host=broker.host, port=broker.port, base_topic=base, client_id=base)
    link = MqttLink(config)
    stop = serve_inventory(base, home(), None, link.subscribe, link.publish)
    async with running(link):
        await link.wait_connected(10)
        yield Served(config, link)
    stop()


def cli_env(host: str, port: int, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    env.update(MIMO_HOME__MQTT__HOST=host, MIMO_HOME__MQTT__PORT=str(port),
               MIMO_HOME__MQTT__BASE_TOPIC=base, XDG_RUNTIME_DIR=tempfile.gettempdir())
    return env


async def mimo_devices(config: MqttConfig, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "devices", "--timeout", "10", *args,
        env=cli_env(config.host, config.port, config.base_topic), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_devices_json_lists_every_entity_with_source_area_and_state(
        served: Served) -> None:
    code, out, err = await mimo_devices(served.config, "--json")
    assert code == 0, err
    body = json.loads(out)
    rows = {row["entity_id"]: (row["source"], row["area"], row["capabilities"],
                               row["available"], row["state"], row["exposed"])
            for row in body["entities"]}
    assert rows == {
        "light.kitchen_ceiling": ("zigbee2mqtt", "Kitchen", "color_temp 2200-6500 K", True,
                                  "on", True),
        "switch.boiler": ("shelly", None, "turn_on/turn_off", False, "off", True),
        "button.boiler_restart": ("shelly", None, "", True, None, False),
    }
    assert (body["appliances"], body["mdns"]) == ([], "off")


async def test_devices_prints_a_table_grouped_by_area(served: Served) -> None:
    code, out, err = await mimo_devices(served.config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "ENTITIES: 3 (1 hidden, 1 unavailable)"
    assert lines.index("Kitchen") < lines.index("(no area)")
    boiler = next(line for line in lines if line.lstrip().startswith("switch.boiler "))
    assert " U " in boiler and "turn_on/turn_off" in boiler
    assert "APPLIANCES: mDNS browsing is off (mdns.enabled)" in lines
    assert not out.lstrip().startswith("{")


async def test_without_a_daemon_devices_says_so(served: Served) -> None:
    elsewhere = MqttConfig(host=served.config.host, port=served.config.port,
                           base_topic="nobody-serves-this")
    code, out, err = await mimo_devices(elsewhere, "--json")
    assert code == 1 and out == ""
    assert "no mimo-home daemon is online" in err


async def test_unusable_requests_get_no_answer_and_the_next_one_does(served: Served) -> None:
    base = served.config.base_topic
    answers: list[str] = []
    good = asyncio.get_running_loop().create_future()

    def arrived(message: MqttMessage) -> None:
        answers.append(message.topic)
        if message.topic == devices_response_topic(base, "good1") and not good.done():
            good.set_result(json.loads(message.payload))

    unsubscribe = served.link.subscribe(devices_response_topic(base, "#"), arrived)
    try:
        for payload in (b"not json", b'{"id": "+/#"}', b'{"no": "id"}', b"[1]",
                        b'{"id": "good1"}'):
            served.link.publish(MqttMessage(devices_request_topic(base), payload, qos=1))
        body = await asyncio.wait_for(good, 10)
    finally:
        unsubscribe()
    assert answers == [devices_response_topic(base, "good1")]
    assert len(body["entities"]) == 3


async def test_requests_beyond_those_in_flight_are_told_to_retry() -> None:
    replies: dict[str, dict[str, Any]] = {}
    all_answered = asyncio.Event()

    def publish(message: MqttMessage) -> None:
        replies[message.topic.rsplit("/", 1)[-1]] = json.loads(message.payload)
        if len(replies) == MAX_REPORTS_IN_FLIGHT + 1:
            all_answered.set()

    server = InventoryServer("base", home(), None, publish)
    for number in range(MAX_REPORTS_IN_FLIGHT + 1):  # all before any report is made
        server.on_request(MqttMessage(devices_request_topic("base"),
                                      json.dumps({"id": f"r{number}"}).encode()))
    await asyncio.wait_for(all_answered.wait(), 10)
    busy = f"r{MAX_REPORTS_IN_FLIGHT}"
    assert replies[busy]["error"].startswith("busy")
    assert all(len(body["entities"]) == 3 and "error" not in body
               for request_id, body in replies.items() if request_id != busy)


# -- with appliances: mDNS in a namespace ----------------------------------------------------

async def wait_for_port(port: int) -> None:
    async def attempt() -> None:
        while True:
            try:
                _reader, writer = await asyncio.open_connection(LOOPBACK, port)
            except OSError:
                await asyncio.sleep(0.05)  # polling a port: no event to wait on
                continue
            writer.close()
            return
    await asyncio.wait_for(attempt(), WAIT_S)


async def scenario() -> dict[str, Any]:
    from zeroconf.asyncio import AsyncZeroconf

    from assistant.appliances import ApplianceInventory
    from assistant.config import MdnsConfig

    port, base = 18830, "mimo-devices-mdns"
    with tempfile.TemporaryDirectory() as directory:
        mosquitto = start_mosquitto(port, Path(directory))
        try:
            await wait_for_port(port)
            registry = home()
            inventory = ApplianceInventory(MdnsConfig(interfaces=[LOOPBACK]), registry)
            events = Events()
            inventory.subscribe(events)
            await inventory.start()
            advertiser = AsyncZeroconf(interfaces=[LOOPBACK])
            infos = [service_info("shelly"), service_info("googlecast")]
            await asyncio.wait_for(asyncio.gather(
                *[await advertiser.async_register_service(info) for info in infos]), WAIT_S)
            for info in infos:
                await events.until(lambda e, key=info.name: e.appliance.key == key)

            config = MqttConfig(host=LOOPBACK, port=port, base_topic=base, client_id=base)
            link = MqttLink(config)
            stop = serve_inventory(base, registry, inventory, link.subscribe, link.publish)
            async with running(link):
                await link.wait_connected(10)
                code, out, err = await mimo_devices(config, "--json")
                _code, table, _err = await mimo_devices(config)
            stop()
            await inventory.stop()
            await advertiser.async_close()
        finally:
            mosquitto.terminate()
            mosquitto.wait(10)
    return {"code": code, "err": err, "body": json.loads(out) if code == 0 else None,
            "table": table}


@pytest.fixture(scope="module")
def with_appliances() -> dict[str, Any]:
    return run_isolated("tests.test_devices_cli")


def test_devices_json_lists_the_appliances_mdns_found(with_appliances: dict[str, Any]) -> None:
    assert with_appliances["code"] == 0, with_appliances["err"]
    body = with_appliances["body"]
    assert body["mdns"] == "browsing"
    seen = {a["protocol"]: (a["name"], a["model"], a["addresses"], a["controlled"],
                            a["adapters"], a["note"]) for a in body["appliances"]}
    assert seen == {
        "Shelly": ("shellyplus1-c4dd57877294", "Plus1", [LOOPBACK], True, ["shelly"],
                   "Shelly: controlled over MQTT by the shelly adapter"),
        "Chromecast": ("Living Room TV", "Chromecast", [LOOPBACK], False, [],
                       "Chromecast: no adapter for cast"),
    }
    assert len(body["entities"]) == 3


def test_devices_table_shows_the_appliances(with_appliances: dict[str, Any]) -> None:
    lines = with_appliances["table"].splitlines()
    assert "APPLIANCES ON THE LAN (mDNS): 2 (1 controlled)" in lines
    cast = next(line for line in lines if line.lstrip().startswith("Chromecast"))
    assert f"{LOOPBACK}:8009" in cast and cast.rstrip().endswith("no: no adapter for cast")


if __name__ == "__main__":
    import socket

    if [name for _index, name in socket.if_nameindex()] != ["lo"]:
        sys.exit("refusing to run mDNS where there is more than a loopback interface")
    print(json.dumps(asyncio.run(scenario())))
