"""What an advertisement says about an appliance, and which entities are the same appliance
(no network: the records of tests/data/mdns, as a resolved service hands them over)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.appliances.protocols import BY_TYPE, PROTOCOLS
from assistant.appliances.records import (
    MAX_ADDRESSES,
    Advertisement,
    Appliance,
    EntityIndex,
    describe,
    linked,
)
from assistant.appliances.report import capability_summary
from assistant.appliances.table import render_inventory
from assistant.device_data import DeviceLimits
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext
from device_adapters.ha_discovery.adapter import HomeAssistantDiscoveryAdapter
from tests.adapter_support import FakeBroker

DATA = Path(__file__).parent / "data" / "mdns"
SERVICES = json.loads((DATA / "services.json").read_text())
LIMITS = DeviceLimits()
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def advert(kind: str, **changes: Any) -> Advertisement:
    service = {**SERVICES[kind], **changes}
    return Advertisement(
        service["type"], f"{service['instance']}.{service['type']}",
        f"{service['instance']}.local.", tuple(service.get("addresses", ["192.168.1.20"])),
        service["port"],
        {key.encode(): value.encode() for key, value in service["txt"].items()})


def appliance(kind: str, **changes: Any) -> Appliance:
    found = describe(advert(kind, **changes), LIMITS)
    assert found is not None
    return found


def entity(entity_id: str, source: str, *, device_ids: tuple[str, ...] = (),
           wire: dict[str, Any] | None = None) -> Entity:
    return Entity(entity_id=entity_id, name=entity_id, domain=entity_id.split(".")[0],
                  source=source, device_ids=device_ids, wire=wire or {})


# -- what an advertisement says ------------------------------------------------------------

def test_each_documented_advertisement_gives_protocol_name_model_and_mac() -> None:
    seen = {kind: appliance(kind) for kind in ("shelly", "googlecast", "esphome", "mqtt")}
    assert {kind: (a.protocol, a.name, a.model, a.mac, a.port, a.addresses)
            for kind, a in seen.items()} == {
        "shelly": ("Shelly", "shellyplus1-c4dd57877294", "Plus1", "c4dd57877294", 80,
                   ("192.168.1.20",)),
        "googlecast": ("Chromecast", "Living Room TV", "Chromecast", None, 8009,
                       ("192.168.1.20",)),
        "esphome": ("ESPHome", "Kitchen Plug", "esp32dev", "a4cf12b3c4d5", 6053,
                    ("192.168.1.20",)),
        "mqtt": ("MQTT broker", "Mosquitto MQTT broker", None, None, 1883, ("192.168.1.20",)),
    }
    assert seen["shelly"].service_type == "_shelly._tcp"
    assert seen["shelly"].key == "shellyplus1-c4dd57877294._shelly._tcp.local."


def test_a_type_the_inventory_does_not_list_gives_nothing() -> None:
    assert describe(advert("not_browsed"), LIMITS) is None
    assert describe(advert("shelly"), LIMITS) is not None


def test_txt_keys_are_case_insensitive_and_the_model_falls_back_in_order() -> None:
    esphome = SERVICES["esphome"]
    assert appliance("esphome", txt={**esphome["txt"], "project_name": "athom.smart-plug-v2"}
                     ).model == "athom.smart-plug-v2"  # the project names it better
    assert appliance("googlecast", txt={"MD": "Google Nest Mini", "FN": "Kitchen"}).model \
        == "Google Nest Mini"
    assert appliance("googlecast", txt={"fn": "Kitchen"}).model is None


def test_a_shelly_without_a_mac_in_its_id_has_no_mac() -> None:
    assert appliance("shelly", instance="my-renamed-shelly").mac is None
    assert appliance("shelly").mac == "c4dd57877294"


def test_macs_come_from_where_each_protocol_keeps_them() -> None:
    miio = describe(Advertisement(
        "_miio._udp.local.", "zhimi-airpurifier-m1_miio12345678._miio._udp.local.", None,
        ("192.168.1.40",), 54321, {b"epoch": b"1", b"poch": b"0:mac=7811dcab12cd\x00"}),
        LIMITS)
    sonos = describe(Advertisement(
        "_sonos._tcp.local.", "RINCON_347E5C0CF1E301400@Kitchen._sonos._tcp.local.",
        "Sonos-347E5C0CF1E3.local.", ("192.168.1.41",), 1443, {b"info": b"/api/v1/players"}),
        LIMITS)
    airplay = describe(Advertisement(
        "_airplay._tcp.local.", "Living Room._airplay._tcp.local.", "Apple-TV.local.",
        ("192.168.1.42",), 7000, {b"deviceid": b"AA:BB:CC:11:22:33", b"model": b"AppleTV6,2"}),
        LIMITS)
    assert miio is not None and sonos is not None and airplay is not None
    assert (miio.mac, miio.model) == ("7811dcab12cd", "zhimi-airpurifier-m1")
    assert sonos.mac == "347e5c0cf1e3"
    assert (airplay.mac, airplay.model) == ("aabbcc112233", "AppleTV6,2")
    homekit = describe(Advertisement(  # HAP's "id" is a pairing identity, never the MAC
        "_hap._tcp.local.", "Eve Energy 1A2B._hap._tcp.local.", None, ("192.168.1.43",),
        80, {b"id": b"AA:BB:CC:11:22:33", b"md": b"Eve Energy"}), LIMITS)
    assert homekit is not None and (homekit.mac, homekit.model) == (None, "Eve Energy")


def test_device_text_is_cleaned_and_bounded() -> None:
    hostile = appliance("googlecast", instance="Chromecast\x1b[2J-1",
                        txt={"fn": "Living\u202eRoom\n" + "x" * 5000, "md": "\x00\x01"},
                        addresses=[f"10.0.0.{i}" for i in range(40)], port=70000)
    assert hostile.name.startswith("Living Room x") and len(hostile.name) <= LIMITS.max_text_chars
    assert hostile.model is None and hostile.port is None
    assert hostile.instance == "Chromecast [2J-1"
    assert len(hostile.addresses) == MAX_ADDRESSES
    assert appliance("googlecast").port == 8009


# -- linking to the registry's entities ------------------------------------------------------

def test_a_shelly_links_to_the_shelly_adapters_entities_by_mac() -> None:
    index = EntityIndex([entity("switch.boiler", "shelly", device_ids=("mac:c4dd57877294",)),
                         entity("switch.other", "shelly", device_ids=("mac:c4dd57877295",))])
    shelly = linked(appliance("shelly"), index)
    assert (shelly.controlled, shelly.adapters, shelly.entity_ids) == (
        True, ("shelly",), ("switch.boiler",))
    assert shelly.note == "Shelly: controlled over MQTT by the shelly adapter"


def test_a_shelly_links_by_its_default_prefix_only_to_the_shelly_adapter() -> None:
    by_prefix = EntityIndex([entity("switch.boiler", "shelly",
                                    wire={"prefix": "ShellyPlus1-C4DD57877294"})])
    assert linked(appliance("shelly"), by_prefix).entity_ids == ("switch.boiler",)
    other_adapter = EntityIndex([entity("switch.boiler", "tasmota",
                                        wire={"prefix": "shellyplus1-c4dd57877294"})])
    alone = linked(appliance("shelly"), other_adapter)
    assert (alone.controlled, alone.adapters) == (False, ())
    assert alone.note == "Shelly: MQTT not enabled on the device or prefix unknown"


def test_an_esphome_node_links_to_the_discovered_entities_with_its_mac() -> None:
    index = EntityIndex([entity("switch.kitchen_plug", "ha_discovery",
                                device_ids=("mac:a4cf12b3c4d5",)),
                         entity("sensor.kitchen_plug_power", "ha_discovery",
                                device_ids=("mac:a4cf12b3c4d5", "zigbee:0x00158d0001a2b3c4"))])
    node = linked(appliance("esphome"), index)
    assert (node.controlled, node.adapters, node.entity_ids) == (
        True, ("ha_discovery",), ("sensor.kitchen_plug_power", "switch.kitchen_plug"))
    elsewhere = linked(appliance("esphome"), EntityIndex([entity(
        "switch.kitchen_plug", "ha_discovery", device_ids=("mac:a4cf12b3c4d6",))]))
    assert not elsewhere.controlled and elsewhere.note.startswith("ESPHome: native API")


def test_an_esphome_node_is_linked_through_the_real_ha_discovery_adapter() -> None:
    """The node's own discovery config (as ESPHome builds it) through the HA discovery
    adapter gives the entities the mDNS record links to."""
    recorded = json.loads((DATA / "esphome_mqtt_discovery.json").read_text())
    registry, broker = DeviceRegistry(None), FakeBroker()
    stop = HomeAssistantDiscoveryAdapter().start(
        AdapterContext(registry, broker.subscribe, broker.publish))
    broker.deliver(recorded["topic"], recorded["payload"])
    stop()
    node = linked(appliance("esphome"), EntityIndex(registry.all_entities()))
    assert (node.controlled, node.adapters) == (True, ("ha_discovery",))
    assert len(node.entity_ids) == 1 and node.entity_ids[0].startswith("switch.")
    other = linked(appliance("esphome", txt={**SERVICES["esphome"]["txt"],
                                             "mac": "a4cf12b3c4d6"}),
                   EntityIndex(registry.all_entities()))
    assert not other.controlled


def test_an_appliance_without_an_adapter_says_why() -> None:
    cast = linked(appliance("googlecast"), EntityIndex([]))
    assert (cast.controlled, cast.note) == (False, "Chromecast: no adapter for cast")


def test_every_protocol_is_browsed_once_with_a_reason() -> None:
    assert len(BY_TYPE) == len(PROTOCOLS)
    assert all(p.service_type.endswith((".local.",)) and p.unlinked for p in PROTOCOLS)
    assert {"_hap._tcp.local.", "_googlecast._tcp.local.", "_shelly._tcp.local.",
            "_esphomelib._tcp.local.", "_hue._tcp.local.", "_matter._tcp.local.",
            "_matterc._udp.local.", "_mqtt._tcp.local.", "_miio._udp.local.",
            "_wyoming._tcp.local.", "_home-assistant._tcp.local.", "_ipp._tcp.local.",
            "_airplay._tcp.local.", "_sonos._tcp.local."} <= set(BY_TYPE)


# -- untrusted advertisements ------------------------------------------------------------------

# Hostile samples spliced into the documented records; one seed per example keeps the
# generation cheap (10,000 examples in seconds).
_HOSTILE = ["", " ", "\x00", "\x1b[2J", "a\u202eb", "x" * 3000, "\ud800", "é" * 300,
            "AA:BB:CC:DD:EE:FF", "aabbccddeeff", "-aabbccddeeff", "mac=aabbccddeeff",
            "shellyplus1-c4dd57877294", "*", "#", "+/#", "0:mac=zz", "\n\r\t", "\ufeff"]
_KEYS = [b"mac", b"md", b"fn", b"app", b"friendly_name", b"board", b"MAC", b"poch", b"\xff"]


def _noise(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_HOSTILE)
    return "".join(chr(rng.randrange(0x110000 if rng.random() < 0.2 else 128))
                   for _ in range(rng.randrange(20)))


def _noise_bytes(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randrange(40))
    return _noise(rng).encode("utf-8", "surrogatepass")


def mutated(kind: str, seed: int) -> Advertisement:
    """The documented advertisement of ``kind`` with a few of its fields made hostile."""
    rng = random.Random(seed)
    base = advert(kind)
    txt = dict(base.txt)
    for _ in range(rng.randrange(6)):
        key = rng.choice([*txt, *_KEYS]) if rng.random() < 0.8 else _noise_bytes(rng)
        txt[key] = None if rng.random() < 0.1 else _noise_bytes(rng)
    pick = rng.random
    return Advertisement(
        rng.choice(PROTOCOLS).service_type if pick() < 0.3 else base.service_type,
        _noise(rng) if pick() < 0.2 else base.name + (_noise(rng) if pick() < 0.2 else ""),
        None if pick() < 0.1 else _noise(rng) if pick() < 0.3 else base.host,
        tuple(_noise(rng) for _ in range(rng.randrange(12))) if pick() < 0.3
        else base.addresses,
        rng.choice([None, -1, 0, 65536, 2**70, 80]) if pick() < 0.3 else base.port,
        txt)


@settings(max_examples=10_000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(["shelly", "googlecast", "esphome", "mqtt"]), st.integers(0, 2**64))
def test_any_advertisement_becomes_a_clean_bounded_record(kind: str, seed: int) -> None:
    found = describe(mutated(kind, seed), LIMITS)
    assert found is not None
    record = linked(found, EntityIndex([entity("switch.x", "shelly", device_ids=(
        f"mac:{found.mac}",))]))
    strings = [record.name, record.instance, record.model, record.host, record.note,
               *record.addresses]
    for text in (s for s in strings if s is not None):
        assert not CONTROL.search(text) and len(text) <= LIMITS.max_text_chars
    assert len(record.addresses) <= MAX_ADDRESSES
    assert record.mac is None or re.fullmatch(r"[0-9a-f]{12}", record.mac)
    assert record.controlled == (record.mac is not None)


# -- the report as people read it ---------------------------------------------------------------

def test_capabilities_are_summarised_in_a_few_words() -> None:
    assert capability_summary({"supported_color_modes": ["color_temp", "hs"],
                               "min_color_temp_kelvin": 2000, "max_color_temp_kelvin": 6500,
                               "services": ["turn_on", "turn_off"]}) == "color_temp/hs 2000-6500 K"
    assert capability_summary({"hvac_modes": ["heat", "off"], "min_temp": 7, "max_temp": 35,
                               "temperature_unit": "°C"}) == "heat/off 7-35°C"
    assert capability_summary({"services": ["open_cover", "close_cover"],
                               "reports_position": False}) == "open_cover/close_cover"
    assert capability_summary({}) == ""


REPORT = {
    "entities": [
        {"entity_id": "light.kitchen", "name": "Kitchen light", "source": "zigbee2mqtt",
         "area": "Kitchen", "capabilities": "brightness", "available": True, "state": "on",
         "exposed": True},
        {"entity_id": "switch.boiler", "name": "Boiler\x1b[31m", "source": "shelly",
         "area": None, "capabilities": "", "available": False, "state": None,
         "exposed": False},
        {"entity_id": "sensor.kitchen_temp", "name": "Kitchen temperature",
         "source": "tasmota", "area": "Kitchen", "capabilities": "°C", "available": True,
         "state": "21.5", "exposed": True},
    ],
    "appliances": [appliance("googlecast").to_json() | {"note": "Chromecast: no adapter for cast"},
                   appliance("shelly").to_json() | {
                       "controlled": True, "note": "Shelly: controlled over MQTT by the shelly "
                                                   "adapter"}],
    "mdns": "browsing",
}


def test_the_table_groups_entities_by_area_and_says_what_controls_each_appliance() -> None:
    lines = render_inventory(REPORT).splitlines()
    text = "\n".join(lines)
    assert lines[0] == "ENTITIES: 3 (1 hidden, 1 unavailable)"
    kitchen, no_area = lines.index("Kitchen"), lines.index("(no area)")
    assert kitchen < no_area
    kitchen_rows = lines[kitchen + 1: no_area]
    assert [row.split()[0] for row in kitchen_rows] == ["light.kitchen", "sensor.kitchen_temp"]
    header = lines[1]
    assert header.split() == ["ENTITY", "NAME", "SOURCE", "STATE", "FLAGS", "CAPABILITIES"]
    for row, source in [(kitchen_rows[0], "zigbee2mqtt"), (kitchen_rows[1], "tasmota"),
                        (lines[no_area + 1], "shelly")]:  # one alignment across the areas
        assert row.index(f"  {source} ") + 2 == header.index("SOURCE")
    boiler = next(line for line in lines if "switch.boiler" in line)
    assert "\x1b" not in text and " HU? " in boiler
    assert "APPLIANCES ON THE LAN (mDNS): 2 (1 controlled)" in lines
    cast = next(line for line in lines if line.strip().startswith("Chromecast"))
    assert "Living Room TV" in cast and "192.168.1.20:8009" in cast
    assert cast.rstrip().endswith("no: no adapter for cast")
    shelly = next(line for line in lines if line.strip().startswith("Shelly"))
    assert shelly.rstrip().endswith("yes: controlled over MQTT by the shelly adapter")
    assert lines[-2].startswith("Flags: H hidden") and lines[-1].startswith("Control: yes")


def test_columns_line_up_under_their_headers() -> None:
    lines = render_inventory(REPORT).splitlines()
    header = next(line for line in lines if line.strip().startswith("PROTOCOL"))
    rows = [line for line in lines if line.strip().startswith(("Chromecast", "Shelly"))]
    for column in ("NAME", "MODEL", "ADDRESS", "CONTROL"):
        at = header.index(column)
        assert all(row[at - 2: at] == "  " and row[at] != " " for row in rows), column


def test_without_mdns_the_table_says_so() -> None:
    text = render_inventory({**REPORT, "appliances": [], "mdns": "off"})
    assert "mDNS browsing is off" in text and "PROTOCOL" not in text
    assert "none seen yet" in render_inventory({**REPORT, "appliances": []})
    assert "mDNS is unavailable here" in render_inventory({**REPORT, "mdns": "unavailable"})
