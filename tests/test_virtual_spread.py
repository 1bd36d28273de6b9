"""The virtual home's protocols as a whole: how "mixed" spreads a fixture, how a hub's
entities are matched back to the fixture's, what a stop leaves behind, and the daemon's own
adapters finding and commanding a device in every protocol (real Mosquitto, or the demo
stack's private broker, with an independent paho client watching the wire)."""

from __future__ import annotations

import json
import logging

import pytest

from assistant.config import Config, LlmConfig
from assistant.messages import ConversationRequest
from assistant.registry import Entity
from assistant.virtual.home import NativeTopics, VirtualHome, demo_home
from assistant.virtual.protocols import assign_protocols
from assistant.virtual.stack import demo_stack
from tests.conftest import Broker
from tests.virtual_home_support import fresh_base, observe, until
from tests.test_virtual_protocols import (
    HOMIE,
    SHELLY,
    TASMOTA,
    Z2M,
    payload_json,
    presenting,
    send,
    state,
)


# -- spreading, finding, leaving ------------------------------------------------------------------


def test_mixed_spreads_every_device_deterministically_over_protocols_that_fit(
        caplog: pytest.LogCaptureFixture) -> None:
    home = demo_home()
    first = VirtualHome(home, "127.0.0.1", 1, protocols="mixed").protocols()
    again = VirtualHome(home, "127.0.0.1", 1, base_topic="elsewhere",
                        protocols="mixed").protocols()
    assert first == again
    published = {e.entity_id for e in home.entities if e.domain not in ("weather", "calendar")}
    assert first.keys() == published
    assert len(set(first.values())) >= 4  # HA discovery and at least three native protocols
    for entity_id in ("media_player.living_room_tv", "vacuum.robot_vacuum", "scene.movie_night",
                      "valve.garden_sprinkler"):
        assert first[entity_id] == "ha"  # no native protocol here has these domains
    with caplog.at_level(logging.INFO, logger="assistant.virtual.protocols"):
        chosen = VirtualHome(home, "127.0.0.1", 1, protocols="zigbee2mqtt").protocols()
    assert chosen["light.kitchen"] == "zigbee2mqtt"
    assert chosen["media_player.living_room_tv"] == "ha"
    assert "zigbee2mqtt cannot present this media_player" in caplog.text
    assert caplog.text.count("zigbee2mqtt cannot present this media_player") == 1
    with pytest.raises(ValueError, match="unknown protocols"):
        VirtualHome(home, "127.0.0.1", 1, protocols="x10")
    with pytest.raises(ValueError, match="unknown protocol"):
        VirtualHome(home, "127.0.0.1", 1, protocols={"light.kitchen": "x10"})


def test_zigbee2mqtt_never_gets_two_devices_of_one_name() -> None:
    home = demo_home()
    twins = [e for e in home.entities if e.domain == "light"][:2]
    renamed = [type(e)(**{**{f: getattr(e, f) for f in e.__dataclass_fields__}, "name": "Lamp"})
               for e in twins]
    chosen = assign_protocols(home, renamed, "zigbee2mqtt")
    assert sorted(chosen.values()) == ["ha", "zigbee2mqtt"]
    assert sorted(assign_protocols(home, renamed[:1], "zigbee2mqtt").values()) == ["zigbee2mqtt"]


def test_known_as_finds_native_entities_by_their_device_ids() -> None:
    house = VirtualHome(demo_home(), "127.0.0.1", 1, protocols={
        "light.kitchen": "zigbee2mqtt", "switch.coffee_maker": "tasmota",
        "light.bedroom": "homie", "cover.garage_door": "shelly"})
    where = house.presented_on()
    hub = [
        Entity(entity_id="light.kitchen_light", name="Kitchen Light", domain="light",
               device_ids=where["light.kitchen"].device_ids),
        Entity(entity_id="sensor.kitchen_light_linkquality", name="Kitchen Light", domain="sensor",
               device_ids=where["light.kitchen"].device_ids),
        Entity(entity_id="switch.coffee_maker_relay", name="Coffee Maker", domain="switch",
               device_ids=where["switch.coffee_maker"].device_ids),
        Entity(entity_id="light.bedroom_light", name="Bedroom Light", domain="light",
               unique_id=f"homie_{where['light.bedroom'].native_id}_light"),
        Entity(entity_id="light.hallway", name="Hallway Light", domain="light"),  # HA's own
        Entity(entity_id="cover.unrelated", name="Garage Door", domain="cover",
               device_ids=("mac:000000000000",)),
    ]
    assert house.known_as(hub) == {"light.kitchen": "light.kitchen_light",
                                   "switch.coffee_maker": "switch.coffee_maker_relay",
                                   "light.bedroom": "light.bedroom_light",
                                   "light.hallway": "light.hallway"}


async def test_a_stale_retained_command_is_no_command(broker: Broker) -> None:
    base = fresh_base()
    topics = NativeTopics(zigbee2mqtt=f"{base}-z2m", tasmota_discovery=f"{base}/tasmota",
                          homie=f"{base}-homie")
    protocols = {"light.hallway": "zigbee2mqtt", "switch.coffee_maker": "tasmota",
                 "light.bedroom": "homie", "cover.garage_door": "shelly"}
    house = VirtualHome(demo_home(), broker.host, broker.port, base_topic=base,
                        protocols=protocols, native=topics)
    where = house.presented_on()
    stale = [(f"{topics.zigbee2mqtt}/Hallway Light/set", '{"state": "OFF"}'),
             (f"cmnd/{where['switch.coffee_maker'].native_id}/POWER", "ON"),
             (f"{topics.homie}/5/{where['light.bedroom'].native_id}/light/state/set", "true"),
             (f"{where['cover.garage_door'].native_id}/rpc", json.dumps(
                 {"id": 1, "src": "someone", "method": "Cover.Open", "params": {"id": 0}}))]
    for topic, body in stale:
        await send(broker, topic, body, retain=True)
    before = house.states()
    await house.start()
    try:
        # A live command after them: once it shows, the retained ones were seen.
        await send(broker, f"{topics.zigbee2mqtt}/Hallway Light/set", '{"state": "ON"}')
        await send(broker, f"{topics.zigbee2mqtt}/Hallway Light/set", '{"state": "TOGGLE"}')
        await until(lambda: state(house, "light.hallway")[0] == "off")
        assert {k: v for k, v in house.states().items() if k != "light.hallway"} == {
            k: v for k, v in before.items() if k != "light.hallway"}
    finally:
        for topic, _ in stale:
            await send(broker, topic, b"", retain=True)
        await house.stop()


async def test_stop_clears_what_the_native_front_ends_retained(broker: Broker) -> None:
    protocols = {**Z2M, **TASMOTA, **SHELLY, **HOMIE, "switch.coffee_maker": "shelly"}
    async with presenting(broker, protocols) as (house, topics):
        prefixes = [p.native_id for e, p in house.presented_on().items() if p.protocol == "shelly"]
        filters = [f"{topics.zigbee2mqtt}/#", f"{topics.tasmota_discovery}/#",
                   f"{topics.homie}/#", *(f"{prefix}/#" for prefix in prefixes)]
        early = await observe(broker, *filters)
        await until(lambda: len(early.matching(f"{topics.tasmota_discovery}/+/config")) > 0)
        early.close()
    late = await observe(broker, *filters)
    try:
        # Only the bridge's own state stays, saying it is offline.
        await until(lambda: late.payload(f"{topics.zigbee2mqtt}/bridge/state") is not None)
        assert payload_json(late, f"{topics.zigbee2mqtt}/bridge/state") == {"state": "offline"}
        assert list(late.matching("#")) == [f"{topics.zigbee2mqtt}/bridge/state"]
    finally:
        await send(broker, f"{topics.zigbee2mqtt}/bridge/state", b"", retain=True)
        late.close()


# -- end to end: the daemon's own adapters find and command every protocol ------------------------

EVERY_PROTOCOL = {"light.kitchen": "zigbee2mqtt", "switch.coffee_maker": "tasmota",
                  "light.bedroom": "shelly", "light.living_room_lamp": "homie",
                  "light.hallway": "ha"}


async def test_the_daemon_finds_and_commands_a_device_in_every_protocol() -> None:
    config = Config(llm=LlmConfig(enabled=False))
    async with demo_stack(config, protocols=EVERY_PROTOCOL) as (house, daemon):
        known = house.known_as(daemon.registry.all_entities())
        assert EVERY_PROTOCOL.keys() <= known.keys()
        # Native protocols carry no areas: the stack put them where the fixture has them.
        assert daemon.registry.get_any(known["light.kitchen"]).area == "kitchen"
        where = house.presented_on()
        wire = Broker(daemon.config.mqtt.host, daemon.config.mqtt.port)
        watcher = await observe(wire, "#")
        try:
            for entity_id, sentence in (
                    ("light.kitchen", "turn on the kitchen light"),
                    ("switch.coffee_maker", "turn on the coffee maker"),
                    ("light.bedroom", "turn on the bedroom light"),
                    ("light.living_room_lamp", "turn on the living room lamp"),
                    ("light.hallway", "turn off the hallway light")):
                before = house.states()[entity_id].state
                await daemon.converse(ConversationRequest(sentence, f"e2e-{entity_id}"))
                await until(lambda: house.states()[entity_id].state != before)
            # each command went out on the protocol's own topic, in its own format (the house may
            # apply a command before the watcher's copy of it arrives, so wait for each)
            async def sent(topic: str) -> str:
                await until(lambda: watcher.payload(topic) is not None)
                return watcher.payload(topic) or ""

            assert json.loads(await sent("zigbee2mqtt/Kitchen Light/set"))["state"] == "ON"
            assert await sent(f"cmnd/{where['switch.coffee_maker'].native_id}/POWER") in (
                "ON", "1")
            shelly = json.loads(await sent(f"{where['light.bedroom'].native_id}/rpc"))
            assert shelly["method"] in ("Light.Set", "Light.Toggle") and shelly["src"]
            homie = f"homie/5/{where['light.living_room_lamp'].native_id}/light/state/set"
            assert await sent(homie) == "true"
            assert await sent("virtual-home/light/hallway/set")
            # and never on HA discovery's topic for a device that speaks another protocol
            assert watcher.payload("virtual-home/light/kitchen/set") is None
        finally:
            watcher.close()
