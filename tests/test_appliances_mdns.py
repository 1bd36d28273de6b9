"""The appliance inventory on real mDNS, inside an isolated network namespace.

mDNS must never touch the host's interfaces: the scenario runs in a child process under
``unshare -rn`` (a private network namespace with only loopback, multicast on), and both
the advertiser and the inventory use 127.0.0.1 only. The child is this module run as a
script; it prints what it observed as JSON, and the tests below check it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.netns import REPO, run_python

SERVICES = json.loads((REPO / "tests" / "data" / "mdns" / "services.json").read_text())
LOOPBACK = "127.0.0.1"
WAIT_S = 15.0  # each awaited mDNS event


def run_isolated(module: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``python -m module`` in a fresh network namespace; its last line of JSON."""
    return run_python("-m", module, timeout=timeout)


# -- the child: runs only inside the namespace ------------------------------------------------

def service_info(kind: str, **txt: str) -> Any:
    """The documented advertisement of ``kind`` on 127.0.0.1; ``txt`` changes its TXT."""
    from zeroconf.asyncio import AsyncServiceInfo

    service = SERVICES[kind]
    return AsyncServiceInfo(
        service["type"], f"{service['instance']}.{service['type']}",
        port=service["port"], properties={**service["txt"], **txt},
        addresses=[socket.inet_aton(LOOPBACK)], server=f"{kind}-host.local.")


class Events:
    """The inventory's events, awaited one condition at a time (each with a timeout)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Any) -> None:
        self.seen.append(event)
        self._changed.set()

    async def until(self, predicate: Callable[[Any], bool]) -> Any:
        async def wait() -> Any:
            while True:
                found = next((event for event in self.seen if predicate(event)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(wait(), WAIT_S)


class Warned(logging.Handler):
    """Sets an event when the inventory warns that it is full."""

    def __init__(self) -> None:
        super().__init__()
        self.full = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "appliances kept" in record.getMessage():
            self.full.set()


async def bounded_inventory(registry: Any) -> dict[str, Any]:
    """An inventory with room for 2 while 4 browsed services are advertised."""
    from assistant.appliances import ApplianceInventory
    from assistant.config import MdnsConfig

    warned = Warned()
    logger = logging.getLogger("assistant.appliances.inventory")
    logger.addHandler(warned)
    small = ApplianceInventory(MdnsConfig(interfaces=[LOOPBACK]), registry, max_appliances=2)
    await small.start()
    try:
        await asyncio.wait_for(warned.full.wait(), WAIT_S)
        return {"kept": len(small.appliances())}
    finally:
        logger.removeHandler(warned)
        await small.stop()


async def scenario() -> dict[str, Any]:
    from zeroconf.asyncio import AsyncZeroconf

    from assistant.appliances import ApplianceInventory, find_mqtt_broker
    from assistant.config import MdnsConfig
    from assistant.registry import DeviceRegistry, Entity

    observed: dict[str, Any] = {}
    observed["broker_before"] = await find_mqtt_broker([LOOPBACK], 1.0)

    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id="switch.boiler", name="Boiler", domain="switch",
                           source="shelly", device_ids=("mac:c4dd57877294",)))
    nowhere = ApplianceInventory(MdnsConfig(interfaces=["10.9.9.9"]), registry)
    await nowhere.start()  # no such interface in the namespace: no sockets, no crash
    observed["status_without_sockets"] = nowhere.status
    await nowhere.stop()

    inventory = ApplianceInventory(MdnsConfig(enabled=True, interfaces=[LOOPBACK]), registry)
    events = Events()
    unsubscribe = inventory.subscribe(events)
    await inventory.start()
    observed["status"] = inventory.status

    advertiser = AsyncZeroconf(interfaces=[LOOPBACK])
    infos = {kind: service_info(kind) for kind in SERVICES}
    announced = [await advertiser.async_register_service(info) for info in infos.values()]
    await asyncio.wait_for(asyncio.gather(*announced), WAIT_S)

    for kind in ("shelly", "googlecast", "esphome", "mqtt"):
        name = infos[kind].name
        await events.until(lambda e, name=name: e.change == "added" and e.appliance.key == name)
    observed["listed"] = [appliance.to_json() for appliance in inventory.appliances()]
    observed["bounded"] = await bounded_inventory(registry)

    observed["broker"] = await find_mqtt_broker([LOOPBACK], WAIT_S)

    # An ESPHome node's entities arrive over HA discovery: the node becomes controlled.
    registry.upsert(Entity(entity_id="switch.kitchen_plug", name="Kitchen Plug",
                           domain="switch", source="ha_discovery",
                           device_ids=("mac:a4cf12b3c4d5",)))
    relinked = await events.until(lambda e: e.change == "updated"
                                  and e.appliance.protocol == "ESPHome")
    observed["esphome_relinked"] = relinked.appliance.to_json()

    # The node is renamed: its new TXT record reaches the inventory as an update.
    renamed = service_info("esphome", friendly_name="Pantry Plug")
    await asyncio.wait_for(await advertiser.async_update_service(renamed), WAIT_S)
    updated = await events.until(lambda e: e.change == "updated"
                                 and e.appliance.name == "Pantry Plug")
    observed["renamed"] = updated.appliance.to_json()

    await asyncio.wait_for(advertiser.async_unregister_service(infos["googlecast"]), WAIT_S)
    removed = await events.until(lambda e: e.change == "removed")
    observed["removed"] = removed.appliance.name
    observed["after_removal"] = sorted(a.protocol for a in inventory.appliances())

    unsubscribe()
    await inventory.stop()
    await advertiser.async_close()
    observed["events"] = [(event.change, event.appliance.protocol) for event in events.seen]
    return observed


# -- the tests --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def observed() -> dict[str, Any]:
    return run_isolated("tests.test_appliances_mdns")


def listed(observed: dict[str, Any], protocol: str) -> dict[str, Any]:
    return next(a for a in observed["listed"] if a["protocol"] == protocol)


def test_the_advertised_appliances_are_listed_with_protocol_name_model_and_address(
        observed: dict[str, Any]) -> None:
    summary = {(a["protocol"], a["name"], a["model"], tuple(a["addresses"]), a["port"])
               for a in observed["listed"]}
    assert summary == {
        ("Shelly", "shellyplus1-c4dd57877294", "Plus1", (LOOPBACK,), 80),
        ("Chromecast", "Living Room TV", "Chromecast", (LOOPBACK,), 8009),
        ("ESPHome", "Kitchen Plug", "esp32dev", (LOOPBACK,), 6053),
        ("MQTT broker", "Mosquitto MQTT broker", None, (LOOPBACK,), 1883),
    }  # and not the _workstation._tcp host, a type the inventory does not browse


def test_each_appliance_says_whether_mimo_home_controls_it(observed: dict[str, Any]) -> None:
    shelly, cast = listed(observed, "Shelly"), listed(observed, "Chromecast")
    assert (shelly["controlled"], shelly["adapters"], shelly["entity_ids"]) == (
        True, ["shelly"], ["switch.boiler"])
    assert (cast["controlled"], cast["note"]) == (False, "Chromecast: no adapter for cast")
    esphome = listed(observed, "ESPHome")
    assert not esphome["controlled"] and esphome["mac"] == "a4cf12b3c4d5"


def test_entities_arriving_later_link_the_appliance_live(observed: dict[str, Any]) -> None:
    node = observed["esphome_relinked"]
    assert (node["controlled"], node["adapters"], node["entity_ids"]) == (
        True, ["ha_discovery"], ["switch.kitchen_plug"])
    assert node["note"] == "ESPHome: controlled over MQTT by the ha_discovery adapter"


def test_a_changed_advertisement_updates_the_appliance_live(
        observed: dict[str, Any]) -> None:
    renamed = observed["renamed"]
    assert (renamed["name"], renamed["key"]) == (
        "Pantry Plug", listed(observed, "ESPHome")["key"])
    assert listed(observed, "ESPHome")["name"] == "Kitchen Plug"
    assert renamed["controlled"]  # still the linked node


def test_a_withdrawn_service_disappears_live(observed: dict[str, Any]) -> None:
    assert observed["removed"] == "Living Room TV"
    assert observed["after_removal"] == ["ESPHome", "MQTT broker", "Shelly"]
    assert ("removed", "Chromecast") in [tuple(event) for event in observed["events"]]
    assert ("removed", "Shelly") not in [tuple(event) for event in observed["events"]]


def test_without_mdns_sockets_the_inventory_says_so_and_runs_on(
        observed: dict[str, Any]) -> None:
    assert observed["status_without_sockets"] == "unavailable"
    assert observed["status"] == "browsing"


def test_a_full_inventory_keeps_its_bound(observed: dict[str, Any]) -> None:
    assert observed["bounded"] == {"kept": 2}
    assert len(observed["listed"]) == 4  # the same LAN, with the default bound


def test_the_advertised_broker_is_found_and_none_before_it_is(
        observed: dict[str, Any]) -> None:
    assert observed["broker"] == [LOOPBACK, 1883]
    assert observed["broker_before"] is None


if __name__ == "__main__":
    if [name for _index, name in socket.if_nameindex()] != ["lo"]:
        sys.exit("refusing to run mDNS where there is more than a loopback interface")
    print(json.dumps(asyncio.run(scenario())))
