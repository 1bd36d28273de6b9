"""Zigbee2MQTT adapter over time: availability in both payload forms, the bridge going
offline, renames, removals, groups, and the /get requests after discovery."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from assistant.device_data import DeviceLimits
from assistant.registry import DeviceRegistry, Entity
from tests.zigbee2mqtt_support import (
    AVAILABILITY,
    DEVICES,
    GROUPS,
    Bridge,
    entity_id,
    ieee_of,
)

HUE = "light.z2m_0017880104dfc05e_light"
CONTACT = entity_id("binary_sensor", "livingroom/window", "contact")
LOCK = entity_id("lock", "front door", "lock")
GROUP = "light.z2m_group_1_light"


@pytest.fixture
def bridge() -> Bridge:
    bridge = Bridge()
    bridge.discover()
    return bridge


def renamed(old: str, new: str) -> list[dict[str, Any]]:
    return [{**d, "friendly_name": new} if d["friendly_name"] == old else d for d in DEVICES]


def without(*names: str) -> list[dict[str, Any]]:
    return [d for d in DEVICES if d["friendly_name"] not in names]


# -- availability ----------------------------------------------------------------------------


def test_captured_availability_in_both_forms(bridge: Bridge) -> None:
    for topic, payload in AVAILABILITY.items():
        bridge.send(topic, payload if isinstance(payload, str) else json.dumps(payload))
    assert not bridge.entity(HUE).available  # "offline"
    assert bridge.entity(CONTACT).available  # "online"
    assert not bridge.entity(GROUP).available  # the group's own availability: "offline"


@pytest.mark.parametrize(("payload", "available"), [
    ("offline", False), ("online", True), ('{"state":"offline"}', False),
    ('{"state":"online"}', True), ('{"state": "Offline"}', False)])
def test_device_availability(bridge: Bridge, payload: str, available: bool) -> None:
    bridge.send("livingroom/window/availability", "online" if not available else "offline")
    bridge.send("livingroom/window/availability", payload)
    assert bridge.entity(CONTACT).available is available
    battery = bridge.entity(entity_id("sensor", "livingroom/window", "battery"))
    assert battery.available is available  # every entity of the device


@pytest.mark.parametrize("payload", ["gone", '{"state": 1}', "", '["offline"]', "{"])
def test_an_unknown_availability_payload_changes_nothing(bridge: Bridge, payload: str) -> None:
    bridge.send("livingroom/window/availability", "offline")
    bridge.send("livingroom/window/availability", payload)
    assert not bridge.entity(CONTACT).available


@pytest.mark.parametrize(("offline", "online"), [
    ("offline", "online"), ('{"state":"offline"}', '{"state":"online"}')])
def test_while_the_bridge_is_offline_every_device_is_unavailable(
        bridge: Bridge, offline: str, online: str) -> None:
    bridge.send("hue_back_tv/availability", "offline")
    bridge.send("bridge/state", offline)
    ours = [e for e in bridge.registry.all_entities() if e.source == "zigbee2mqtt"]
    assert ours and not any(e.available for e in ours)
    bridge.send("bridge/state", online)
    assert bridge.entity(CONTACT).available and bridge.entity(LOCK).available
    assert not bridge.entity(HUE).available  # what the device said still holds


def test_a_device_discovered_while_the_bridge_is_offline_is_unavailable() -> None:
    bridge = Bridge()
    bridge.send("bridge/state", "offline")
    bridge.discover()
    assert not bridge.entity(LOCK).available
    assert bridge.broker.published == []  # no /get while nobody answers
    bridge.send("bridge/state", "online")
    assert "zigbee2mqtt/front door/get" in {m.topic for m in bridge.broker.published}


# -- renames and removals --------------------------------------------------------------------


def test_a_renamed_device_keeps_its_entity_ids_and_moves_to_its_new_topics(
        bridge: Bridge) -> None:
    before = {e.entity_id for e in bridge.registry.all_entities()}
    bridge.send("bridge/devices", renamed("hue_back_tv", "living room/tv lamp"))
    assert {e.entity_id for e in bridge.registry.all_entities()} == before
    light = bridge.entity(HUE)
    assert light.name == "living room tv lamp"
    assert light.wire["command_topic"] == "zigbee2mqtt/living room/tv lamp/set"
    assert "zigbee2mqtt/hue_back_tv" not in bridge.broker.topics
    bridge.send("hue_back_tv", {"state": "ON"})  # the old topic: nobody listens
    assert bridge.entity(HUE).state is None
    bridge.send("living room/tv lamp", {"state": "ON"})
    assert bridge.entity(HUE).state == "on"


def test_a_rename_response_renames_at_once(bridge: Bridge) -> None:
    bridge.send("bridge/response/device/rename", {
        "data": {"from": "front door", "to": "porch/door", "homeassistant_rename": False},
        "status": "ok"})
    lock = bridge.entity(LOCK)
    assert (lock.name, lock.wire["command_topic"]) == ("porch door", "zigbee2mqtt/porch/door/set")
    bridge.send("bridge/response/device/rename", {
        "data": {"from": "porch/door", "to": "x"}, "status": "error", "error": "failed"})
    assert bridge.entity(LOCK).name == "porch door"


def test_a_group_rename_response_renames_the_group(bridge: Bridge) -> None:
    bridge.send("bridge/response/group/rename", {
        "data": {"from": "hue lights", "to": "tv corner"}, "status": "ok"})
    group = bridge.entity(GROUP)
    assert (group.name, group.wire["command_topic"]) == ("tv corner", "zigbee2mqtt/tv corner/set")


def test_a_device_gone_from_the_list_is_removed(bridge: Bridge) -> None:
    bridge.send("bridge/devices", without("front door"))
    assert bridge.registry.get_any(LOCK) is None
    assert "zigbee2mqtt/front door" not in bridge.broker.topics
    assert bridge.registry.get_any(CONTACT) is not None


def test_a_device_leave_event_removes_the_device(bridge: Bridge) -> None:
    bridge.send("bridge/event", {"type": "device_leave", "data": {
        "ieee_address": ieee_of("front door"), "friendly_name": "front door"}})
    assert bridge.registry.get_any(LOCK) is None
    bridge.send("bridge/event", {"type": "device_joined", "data": {
        "ieee_address": ieee_of("livingroom/window"), "friendly_name": "livingroom/window"}})
    assert bridge.registry.get_any(CONTACT) is not None


def test_entities_of_devices_that_left_while_the_hub_was_down_are_removed(tmp_path) -> None:
    registry = DeviceRegistry(tmp_path / "registry.db")
    Bridge(registry).discover()
    assert registry.get_any(LOCK) is not None
    restarted = Bridge(registry)
    restarted.discover(without("front door"))
    assert registry.get_any(LOCK) is None
    assert registry.get_any(CONTACT) is not None
    registry.close()


def test_exposes_that_disappear_take_their_entity_with_them(bridge: Bridge) -> None:
    devices = copy.deepcopy(DEVICES)
    blind = next(d for d in devices if d["friendly_name"] == "bedroom blind")
    blind["definition"]["exposes"] = [e for e in blind["definition"]["exposes"]
                                      if e.get("name") != "battery"]
    bridge.send("bridge/devices", devices)
    assert bridge.registry.get_any(entity_id("sensor", "bedroom blind", "battery")) is None
    assert bridge.registry.get_any(entity_id("cover", "bedroom blind", "cover")) is not None


@pytest.mark.parametrize("name", [
    "lamp/+", "lamp/#", "bridge/lamp", "lamp/set", "lamp/availability", "/lamp", "lamp//x",
    "", "lamp\x00", "lamp\n", 42, None])
def test_a_friendly_name_that_cannot_be_a_device_topic_is_refused(name: Any) -> None:
    bridge = Bridge()
    bridge.discover(renamed("front door", name))
    assert bridge.registry.get_any(LOCK) is None
    assert all(("+" not in t and "#" not in t) or t == "zigbee2mqtt/#"
               for t in bridge.broker.topics)


def test_two_devices_may_not_share_a_friendly_name() -> None:
    bridge = Bridge()
    bridge.discover(renamed("front door", "bedroom blind"))
    assert bridge.registry.get_any(LOCK) is None
    assert bridge.registry.get_any(entity_id("cover", "bedroom blind", "cover")) is not None


def test_an_entity_id_of_another_source_is_never_taken(caplog: pytest.LogCaptureFixture) -> None:
    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id=LOCK, name="other lock", domain="lock", source="other"))
    with caplog.at_level(logging.WARNING):
        Bridge(registry).discover()
    assert registry.get_any(LOCK).source == "other"
    assert "belongs to another device" in caplog.text


# -- groups ----------------------------------------------------------------------------------


def test_a_light_group_from_its_members(bridge: Bridge) -> None:
    group = bridge.entity(GROUP)
    assert (group.name, group.device_ids, group.unique_id) == ("hue lights", (), "group_1_light")
    assert group.capabilities["supported_color_modes"] == ["color_temp", "xy"]
    bridge.send("hue lights", {"state": "ON", "brightness": 254})
    group = bridge.entity(GROUP)
    assert (group.state, group.attributes["brightness"]) == ("on", 255)
    assert bridge.registry.get_any("light.z2m_group_901_light") is None  # no members


def test_a_group_follows_its_members_and_goes_with_them(bridge: Bridge) -> None:
    bridge.send("bridge/devices", without("hue_back_tv", "0x0017880103d55d65"))
    assert bridge.registry.get_any(GROUP) is None
    bridge.discover()
    assert bridge.registry.get_any(GROUP) is not None
    bridge.send("bridge/groups", [g for g in GROUPS if g["id"] != 1])
    assert bridge.registry.get_any(GROUP) is None


def test_a_group_that_reaches_a_lock_is_left_out(bridge: Bridge) -> None:
    risky = {"id": 7, "friendly_name": "everything", "members": [
        {"ieee_address": ieee_of("hue_back_tv"), "endpoint": 11},
        {"ieee_address": ieee_of("front door"), "endpoint": 1}]}
    bridge.send("bridge/groups", [*GROUPS, risky])
    assert bridge.registry.get_any("light.z2m_group_7_light") is None
    assert bridge.registry.get_any(GROUP) is not None


def test_a_group_member_on_a_named_endpoint_brings_that_endpoints_light(bridge: Bridge) -> None:
    group = {"id": 8, "friendly_name": "zigfred dimmer 2", "members": [
        {"ieee_address": ieee_of("zigfred_plus"), "endpoint": 7}]}  # endpoint 7 is "l2"
    bridge.send("bridge/groups", [group])
    entity = bridge.entity("light.z2m_group_8_light")
    assert entity.capabilities["supported_color_modes"] == ["brightness"]  # l2 has no colour


# -- asking for states -----------------------------------------------------------------------


def test_devices_that_can_be_read_are_asked_once_for_their_state() -> None:
    bridge = Bridge()
    bridge.send("bridge/devices", DEVICES)
    asked = {m.topic: json.loads(m.payload) for m in bridge.broker.published}
    assert asked["zigbee2mqtt/hue_back_tv/get"] == {"state": "", "brightness": "",
                                                    "color_temp": "", "color": ""}
    assert asked["zigbee2mqtt/front door/get"] == {"state": ""}
    assert "zigbee2mqtt/hall switch/get" not in asked  # access 3: not readable
    assert "zigbee2mqtt/livingroom/window/get" not in asked  # a sleeping sensor
    assert all((m.qos, m.retain) == (1, False) for m in bridge.broker.published)
    bridge.send("bridge/devices", DEVICES)
    assert len(bridge.broker.published) == len(asked)  # once


def test_a_device_that_has_reported_is_not_asked() -> None:
    bridge = Bridge()
    bridge.send("bridge/devices", without("front door"))
    bridge.send("front door", {"state": "LOCK"})  # not known yet: ignored
    bridge.send("bridge/devices", DEVICES)
    assert "zigbee2mqtt/front door/get" in {m.topic for m in bridge.broker.published}
    quiet = Bridge()
    quiet.send("bridge/devices", without("front door"))
    quiet.broker.published.clear()
    quiet.send("hue_back_tv", {"state": "ON"})
    quiet.send("bridge/devices", DEVICES)
    assert "zigbee2mqtt/hue_back_tv/get" not in {m.topic for m in quiet.broker.published}


def test_get_requests_are_bounded_per_device_list() -> None:
    from device_adapters.zigbee2mqtt.adapter import GET_REQUESTS_PER_LIST
    bulb = next(d for d in DEVICES if d["friendly_name"] == "bulb")
    many = [{**bulb, "ieee_address": f"0x{n:016x}", "friendly_name": f"bulb {n}"}
            for n in range(1, GET_REQUESTS_PER_LIST * 2 + 1)]
    bridge = Bridge()
    bridge.send("bridge/devices", many)
    assert len(bridge.broker.published) == GET_REQUESTS_PER_LIST
    bridge.send("bridge/devices", many)
    assert len(bridge.broker.published) == GET_REQUESTS_PER_LIST * 2


def test_stopping_unsubscribes_everything(bridge: Bridge) -> None:
    assert bridge.broker.topics
    bridge.stop()
    assert bridge.broker.topics == set()


def test_a_device_list_over_its_limit_is_dropped_and_one_within_is_read() -> None:
    limits = DeviceLimits(max_device_list_bytes=len(json.dumps(DEVICES)))
    within = Bridge(DeviceRegistry(None, limits))
    within.discover()
    assert within.registry.all_entities()
    over = Bridge(DeviceRegistry(None, DeviceLimits(
        max_device_list_bytes=len(json.dumps(DEVICES)) - 1)))
    over.discover()
    assert not [e for e in over.registry.all_entities() if e.device_ids]  # groups only, if any
