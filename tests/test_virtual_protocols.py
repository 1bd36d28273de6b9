"""The virtual home's native front ends against a real Mosquitto.

Every check plays the other side with an independent paho client: what each front end
publishes (topics, retained flags, payload shapes as the protocol's public documentation
describes them: Zigbee2MQTT's MQTT topics and exposes, Tasmota's commands and discovery
protocol, Shelly's Gen2 RPC over MQTT, the Homie 5 convention), and that a command in the
protocol's own format changes the simulated device and is reported back in that format.
Every simulator gets its own base topic and native topic roots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from assistant.virtual.home import NativeTopics, VirtualHome, demo_home
from tests.conftest import Broker
from tests.virtual_home_support import Observer, fresh_base, observe, until

IEEE = re.compile(r"0x[0-9a-f]{16}")
MAC = re.compile(r"[0-9A-F]{12}")
MALFORMED = "ignored a malformed command"


@contextlib.asynccontextmanager
async def presenting(broker: Broker, protocols: Mapping[str, str] | str,
                     **native: str) -> AsyncIterator[tuple[VirtualHome, NativeTopics]]:
    base = fresh_base()
    topics = NativeTopics(zigbee2mqtt=f"{base}-z2m", tasmota_discovery=f"{base}/tasmota",
                          homie=f"{base}-homie", **native)
    house = VirtualHome(demo_home(), broker.host, broker.port, base_topic=base,
                        protocols=protocols, native=topics)
    await house.start()
    try:
        yield house, topics
    finally:
        await house.stop()


def payload_json(observer: Observer, topic: str) -> Any:
    text = observer.payload(topic)
    assert text is not None, f"nothing on {topic}"
    return json.loads(text)


async def until_json(observer: Observer, topic: str, check: Callable[[Any], bool]) -> None:
    """Until the JSON last seen on ``topic`` passes ``check``."""
    def passes() -> bool:
        text = observer.payload(topic)
        try:
            return text is not None and bool(check(json.loads(text)))
        except (KeyError, TypeError, ValueError):
            return False

    await until(passes)


def retained(observer: Observer, topic: str) -> bool:
    return observer.matching(topic)[topic].retain


async def send(broker: Broker, topic: str, payload: str | bytes, retain: bool = False) -> None:
    sender = await observe(broker)
    try:
        sender.publish(topic, payload, retain)
    finally:
        sender.close()


def state(house: VirtualHome, entity_id: str) -> tuple[str, dict[str, Any]]:
    current = house.states()[entity_id]
    return current.state, current.attributes


# -- Zigbee2MQTT ----------------------------------------------------------------------------------

Z2M = {entity_id: "zigbee2mqtt" for entity_id in (
    "light.kitchen", "light.office_desk_lamp", "light.hallway", "switch.coffee_maker",
    "cover.living_room_blinds", "lock.front_door", "climate.thermostat",
    "sensor.living_room_temperature", "binary_sensor.back_door", "fan.ceiling_fan")}


async def test_zigbee2mqtt_bridge_devices_and_states_are_retained_as_documented(
        broker: Broker) -> None:
    async with presenting(broker, Z2M) as (house, topics):
        root = topics.zigbee2mqtt
        late = await observe(broker, f"{root}/#", f"homeassistant/+/{house.node_id}/+/config")
        try:
            wanted = [f"{root}/{t}" for t in ("bridge/devices", "bridge/state", "Kitchen Light",
                                               "Living Room Blinds", "Back Door", "Thermostat",
                                               "Front Door/availability")]
            await until(lambda: all(late.payload(t) is not None for t in wanted))
            assert payload_json(late, f"{root}/bridge/state") == {"state": "online"}
            assert retained(late, f"{root}/bridge/state")
            assert retained(late, f"{root}/bridge/devices")
            devices = payload_json(late, f"{root}/bridge/devices")
            assert devices[0]["type"] == "Coordinator"
            by_name = {d["friendly_name"]: d for d in devices[1:]}
            # A fan with speeds cannot be a Zigbee fan (no percentage): it stays on HA.
            assert "Ceiling Fan" not in by_name and house.protocols()["fan.ceiling_fan"] == "ha"
            assert set(by_name) == {"Kitchen Light", "Office Desk Lamp", "Hallway Light",
                                    "Coffee Maker", "Living Room Blinds", "Front Door",
                                    "Thermostat", "Living Room Temperature", "Back Door",
                                    # one appliance with the temperature: they go together
                                    "Living Room Humidity"}
            for device in by_name.values():
                assert IEEE.fullmatch(device["ieee_address"])
                assert device["interview_completed"] and device["supported"]
            light = by_name["Kitchen Light"]["definition"]["exposes"]
            assert light[0]["type"] == "light"
            features = {f["name"]: f for f in light[0]["features"]}
            assert set(features) == {"state", "brightness", "color_xy", "color_hs"}
            assert features["brightness"]["value_max"] == 254 and features["state"]["access"] == 7
            assert features["color_xy"]["property"] == "color"
            lamp = by_name["Office Desk Lamp"]["definition"]["exposes"][0]["features"]
            color_temp = next(f for f in lamp if f["name"] == "color_temp")
            assert (color_temp["value_min"], color_temp["value_max"], color_temp["unit"]) == (
                153, 500, "mired")
            hallway = by_name["Hallway Light"]["definition"]["exposes"][0]["features"]
            assert [f["name"] for f in hallway] == ["state"]  # an on/off bulb
            door = by_name["Back Door"]["definition"]["exposes"]
            assert door == [{"type": "binary", "name": "contact", "property": "contact",
                             "access": 1, "value_on": False, "value_off": True}]
            climate = {f["name"]: f for f in
                       by_name["Thermostat"]["definition"]["exposes"][0]["features"]}
            assert climate["occupied_heating_setpoint"]["value_min"] == 10
            assert climate["system_mode"]["values"] == ["off", "heat", "cool", "auto"]
            # states, retained (the device option retain: true), and availability
            # off, with what it will show when on (as Zigbee bulbs report it)
            kitchen = payload_json(late, f"{root}/Kitchen Light")
            assert (kitchen["state"], kitchen["brightness"], kitchen["color_mode"]) == (
                "OFF", 199, "xy")
            assert set(kitchen["color"]) == {"x", "y", "hue", "saturation"}
            assert round(kitchen["color"]["hue"]) == 27 and kitchen["color"]["saturation"] == 52.9
            assert retained(late, f"{root}/Kitchen Light")
            assert payload_json(late, f"{root}/Living Room Blinds") == {"state": "OPEN",
                                                                       "position": 100}
            assert payload_json(late, f"{root}/Back Door") == {"contact": True}
            assert payload_json(late, f"{root}/Thermostat")["occupied_heating_setpoint"] == 21
            assert payload_json(late, f"{root}/Front Door/availability") == {"state": "online"}
            # what Zigbee2MQTT presents is not also on HA discovery
            configs = late.matching(f"homeassistant/+/{house.node_id}/+/config")
            assert not any("/kitchen/" in topic for topic in configs)
            assert any("/ceiling_fan/" in topic for topic in configs)
        finally:
            late.close()


async def test_zigbee2mqtt_commands_change_the_device_and_are_reported_back(
        broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    async with presenting(broker, Z2M) as (house, topics):
        root = topics.zigbee2mqtt
        watcher = await observe(broker, f"{root}/+")
        try:
            await send(broker, f"{root}/Kitchen Light/set", '{"state": "ON", "brightness": 127}')
            await until(lambda: state(house, "light.kitchen")[0] == "on")
            assert state(house, "light.kitchen")[1]["brightness"] == 128
            await until_json(watcher, f"{root}/Kitchen Light", lambda d: d["brightness"] == 127)
            assert payload_json(watcher, f"{root}/Kitchen Light")["state"] == "ON"

            await send(broker, f"{root}/Kitchen Light/set",
                       '{"color": {"hue": 0, "saturation": 100}}')
            await until(lambda: state(house, "light.kitchen")[1].get("rgb_color") == [255, 0, 0])
            await send(broker, f"{root}/Office Desk Lamp/set", '{"state": "ON", "color_temp": 250}')
            await until(lambda: state(house, "light.office_desk_lamp")[1].get(
                "color_temp_kelvin") == 4000)
            await send(broker, f"{root}/Living Room Blinds/set", '{"position": 30}')
            await until(lambda: state(house, "cover.living_room_blinds")[1].get(
                "current_position") == 30)
            await until_json(watcher, f"{root}/Living Room Blinds", lambda d: d == {
                "state": "OPEN", "position": 30})
            await send(broker, f"{root}/Front Door/set", '{"state": "UNLOCK"}')
            await until(lambda: state(house, "lock.front_door")[0] == "unlocked")
            await until_json(watcher, f"{root}/Front Door", lambda d: d == {
                "state": "UNLOCK", "lock_state": "unlocked"})
            await send(broker, f"{root}/Thermostat/set",
                       '{"occupied_heating_setpoint": 22.5, "system_mode": "cool"}')
            await until(lambda: state(house, "climate.thermostat")[0] == "cool")
            assert state(house, "climate.thermostat")[1]["temperature"] == 22.5
            await send(broker, f"{root}/Coffee Maker/set", '{"state": "TOGGLE"}')
            await until(lambda: state(house, "switch.coffee_maker")[0] == "on")

            before = house.states()
            with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
                for name, body in (("Kitchen Light", '{"brightness": 300}'),
                                   ("Kitchen Light", '{"state": "BLINK"}'),
                                   ("Kitchen Light", "not json"),
                                   ("Front Door", '{"state": "OPEN"}'),
                                   ("Thermostat", '{"system_mode": "turbo"}'),
                                   ("Back Door", '{"contact": false}')):  # a sensor
                    await send(broker, f"{root}/{name}/set", body)
                await send(broker, f"{root}/Nobody/set", '{"state": "ON"}')
                await send(broker, f"{root}/Hallway Light/set", '{"state": "OFF"}')
                await until(lambda: state(house, "light.hallway")[0] == "off")
            after = house.states()
            assert {k: v for k, v in after.items() if k != "light.hallway"} == {
                k: v for k, v in before.items() if k != "light.hallway"}
            assert caplog.text.count(MALFORMED) == 6
        finally:
            watcher.close()


async def test_zigbee2mqtt_get_publishes_the_state_again(broker: Broker) -> None:
    async with presenting(broker, Z2M) as (house, topics):
        root = topics.zigbee2mqtt
        watcher = await observe(broker, f"{root}/Front Door")
        try:
            await until(lambda: watcher.payload(f"{root}/Front Door") is not None)
            watcher.messages.clear()
            await send(broker, f"{root}/Back Door/get", '{"contact": ""}')  # another device
            await send(broker, f"{root}/Front Door/get", '{"state": ""}')
            await until(lambda: watcher.payload(f"{root}/Front Door") is not None)
            assert payload_json(watcher, f"{root}/Front Door")["state"] == "LOCK"
            assert list(watcher.messages) == [f"{root}/Front Door"]
        finally:
            watcher.close()


# -- Tasmota --------------------------------------------------------------------------------------

TASMOTA = {entity_id: "tasmota" for entity_id in (
    "switch.coffee_maker", "light.hallway", "light.bedroom", "light.office_desk_lamp",
    "light.kitchen", "cover.living_room_blinds", "sensor.outdoor_temperature",
    "sensor.robot_vacuum_battery")}


def tasmota_topic(house: VirtualHome, entity_id: str) -> str:
    return house.presented_on()[entity_id].native_id


async def test_tasmota_discovery_is_retained_in_the_documented_shape(broker: Broker) -> None:
    async with presenting(broker, TASMOTA) as (house, topics):
        late = await observe(broker, f"{topics.tasmota_discovery}/#", "tele/+/LWT")
        try:
            await until(lambda: len(late.matching(f"{topics.tasmota_discovery}/+/config")) == 7)
            configs = {json.loads(m.payload)["dn"]: (t, json.loads(m.payload)) for t, m in
                       late.matching(f"{topics.tasmota_discovery}/+/config").items()}
            await until(lambda: all(late.payload(f"tele/{c['t']}/LWT") is not None
                                    for _, c in configs.values()))
            # A battery level is no Tasmota sensor: it stays on HA discovery.
            assert house.protocols()["sensor.robot_vacuum_battery"] == "ha"
            documented = {"ip", "dn", "fn", "hn", "mac", "md", "ty", "if", "ofln", "onln",
                          "state", "sw", "t", "ft", "tp", "rl", "swc", "swn", "btn", "so", "lk",
                          "lt_st", "sho", "ver"}
            for topic, config in configs.values():
                assert documented <= config.keys()
                assert MAC.fullmatch(config["mac"]) and topic.split("/")[-2] == config["mac"]
                assert config["ft"] == "%prefix%/%topic%/" and config["tp"] == [
                    "cmnd", "stat", "tele"]
                assert retained(late, topic)
                assert late.payload(f"tele/{config['t']}/LWT") == "Online"
                assert retained(late, f"tele/{config['t']}/LWT")
            relays = {name: (c["rl"][:3], c["lt_st"], c["so"]["30"])
                      for name, (_, c) in configs.items()}
            assert relays == {
                "Coffee Maker": ([1, 0, 0], 0, 0),
                "Hallway Light": ([1, 0, 0], 0, 1),  # a relay announced as a light
                "Bedroom Light": ([2, 0, 0], 1, 1),
                "Office Desk Lamp": ([2, 0, 0], 2, 1),
                "Kitchen Light": ([2, 0, 0], 3, 1),
                "Living Room Blinds": ([3, 3, 0], 0, 0),
                "Outdoor Temperature": ([0, 0, 0], 0, 0)}
            assert configs["Coffee Maker"][1]["fn"][0] == "Coffee Maker"
            sensor_topic = configs["Outdoor Temperature"][0].replace("/config", "/sensors")
            await until(lambda: late.payload(sensor_topic) is not None)
            sensors = payload_json(late, sensor_topic)
            assert sensors["ver"] == 1 and sensors["sn"]["DS18B20"] == {"Temperature": 11.8}
            assert sensors["sn"]["TempUnit"] == "C" and retained(late, sensor_topic)
        finally:
            late.close()


async def test_tasmota_commands_change_the_device_and_answer_on_stat(
        broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    async with presenting(broker, TASMOTA) as (house, _topics):
        plug, bulb = tasmota_topic(house, "switch.coffee_maker"), tasmota_topic(house,
                                                                                 "light.bedroom")
        blinds = tasmota_topic(house, "cover.living_room_blinds")
        watcher = await observe(broker, "stat/+/+", "tele/+/+")
        try:
            await send(broker, f"cmnd/{plug}/POWER", "ON")
            await until(lambda: state(house, "switch.coffee_maker")[0] == "on")
            await until(lambda: watcher.payload(f"stat/{plug}/POWER") == "ON")
            assert payload_json(watcher, f"stat/{plug}/RESULT") == {"POWER": "ON"}
            newcomer = await observe(broker, f"stat/{plug}/#", f"cmnd/{plug}/#")
            await send(broker, f"cmnd/{plug}/STATUS", "11")  # answered after any retained
            await until(lambda: newcomer.payload(f"stat/{plug}/STATUS11") is not None)
            assert set(newcomer.messages) == {f"stat/{plug}/STATUS11", f"cmnd/{plug}/STATUS"}
            newcomer.close()  # nothing it answered, nor the command, was retained
            await send(broker, f"cmnd/{plug}/power", "toggle")  # commands are case-insensitive
            await until(lambda: state(house, "switch.coffee_maker")[0] == "off")

            await send(broker, f"cmnd/{bulb}/Dimmer", "50")
            await until(lambda: state(house, "light.bedroom")[0] == "on")
            assert state(house, "light.bedroom")[1]["brightness"] == 128
            await until_json(watcher, f"stat/{bulb}/RESULT", lambda d: d == {
                "POWER": "ON", "Dimmer": 50})
            await send(broker, f"cmnd/{bulb}/Backlog", "Dimmer 20; POWER OFF")
            await until(lambda: state(house, "light.bedroom")[0] == "off")
            await send(broker, f"cmnd/{tasmota_topic(house, 'light.office_desk_lamp')}/CT", "250")
            await until(lambda: state(house, "light.office_desk_lamp")[1].get(
                "color_temp_kelvin") == 4000)
            await send(broker, f"cmnd/{tasmota_topic(house, 'light.kitchen')}/HSBColor",
                       "0,100,100")
            await until(lambda: state(house, "light.kitchen")[1].get("rgb_color") == [255, 0, 0])
            assert state(house, "light.kitchen")[1]["brightness"] == 255

            await send(broker, f"cmnd/{blinds}/ShutterPosition", "30")
            await until(lambda: state(house, "cover.living_room_blinds")[1].get(
                "current_position") == 30)
            await until_json(watcher, f"stat/{blinds}/RESULT", lambda d: d[
                "Shutter1"]["Position"] == 30)
            await until_json(watcher, f"tele/{blinds}/SENSOR", lambda d: d[
                "Shutter1"]["Position"] == 30)
            await send(broker, f"cmnd/{blinds}/ShutterClose", "")
            await until(lambda: state(house, "cover.living_room_blinds")[0] == "closed")
            # with the shutter's (relay's) index, as the commands also take it
            await send(broker, f"cmnd/{blinds}/ShutterOpen1", "")
            await until(lambda: state(house, "cover.living_room_blinds")[0] == "open")
            await send(broker, f"cmnd/{blinds}/ShutterPosition1", "40")
            await until(lambda: state(house, "cover.living_room_blinds")[1].get(
                "current_position") == 40)
            await send(broker, f"cmnd/{plug}/POWER1", "ON")
            await until(lambda: state(house, "switch.coffee_maker")[0] == "on")
            await send(broker, f"cmnd/{plug}/POWER1", "OFF")
            await until(lambda: state(house, "switch.coffee_maker")[0] == "off")

            await send(broker, f"cmnd/{plug}/STATUS", "11")
            await until_json(watcher, f"stat/{plug}/STATUS11",
                             lambda d: d == {"StatusSTS": {"POWER": "OFF"}})

            before = house.states()
            with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
                await send(broker, f"cmnd/{bulb}/Dimmer", "150")
                await send(broker, f"cmnd/{bulb}/HSBColor", "red")
                await send(broker, f"cmnd/{plug}/POWER", "maybe")
                await send(broker, f"cmnd/{blinds}/ShutterClose2", "")  # it has one shutter
                await send(broker, f"cmnd/{plug}/POWER2", "ON")  # and one relay
                await send(broker, f"cmnd/{plug}/Blink", "3")
                await until(lambda: watcher.payload(f"stat/{plug}/RESULT") == json.dumps(
                    {"Command": "Unknown"}))
            assert house.states() == before
            assert caplog.text.count(MALFORMED) == 3
        finally:
            watcher.close()


async def test_tasmota_honours_its_full_topic(broker: Broker) -> None:
    async with presenting(broker, {"switch.coffee_maker": "tasmota"},
                          tasmota_full_topic="home/%topic%/%prefix%/") as (house, topics):
        plug = tasmota_topic(house, "switch.coffee_maker")
        late = await observe(broker, f"{topics.tasmota_discovery}/+/config", f"home/{plug}/#")
        try:
            await until(lambda: late.payload(f"home/{plug}/tele/LWT") == "Online")
            config = next(json.loads(m.payload) for m in late.matching(
                f"{topics.tasmota_discovery}/+/config").values())
            assert config["ft"] == "home/%topic%/%prefix%/"
            await send(broker, f"cmnd/{plug}/POWER", "ON")  # the default layout: not its topic
            await send(broker, f"home/{plug}/cmnd/POWER", "ON")
            await until(lambda: late.payload(f"home/{plug}/stat/POWER") == "ON")
            assert state(house, "switch.coffee_maker")[0] == "on"
        finally:
            late.close()


# -- Shelly Gen2+ ---------------------------------------------------------------------------------

SHELLY = {entity_id: "shelly" for entity_id in (
    "switch.coffee_maker", "light.bedroom", "cover.living_room_blinds",
    "binary_sensor.hallway_motion", "sensor.outdoor_temperature", "light.kitchen")}


class RpcClient:
    """Plays a Shelly client: its own src, answers on <src>/rpc."""

    def __init__(self, observer: Observer, src: str) -> None:
        self.observer, self.src, self.next_id = observer, src, 1

    async def call(self, broker: Broker, prefix: str, method: str,
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id, self.next_id = self.next_id, self.next_id + 1
        body = {"id": request_id, "src": self.src, "method": method, "params": params or {}}
        await send(broker, f"{prefix}/rpc", json.dumps(body))
        topic = f"{self.src}/rpc"
        await until_json(self.observer, topic, lambda d: d["id"] == request_id)
        return payload_json(self.observer, topic)  # type: ignore[no-any-return]


async def test_shelly_announces_online_and_answers_rpc(
        broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    async with presenting(broker, SHELLY) as (house, _topics):
        where = house.presented_on()
        # A colour bulb is no Shelly dimmer: it stays on HA discovery.
        assert house.protocols()["light.kitchen"] == "ha"
        plug, dimmer = where["switch.coffee_maker"].native_id, where["light.bedroom"].native_id
        blinds = where["cover.living_room_blinds"].native_id
        src = f"client-{uuid.uuid4().hex[:6]}"
        watcher = await observe(broker, "+/online", f"{src}/rpc", "+/events/rpc")
        rpc = RpcClient(watcher, src)
        try:
            await until(lambda: watcher.payload(f"{plug}/online") == "true")
            assert retained(watcher, f"{plug}/online")
            info = await rpc.call(broker, plug, "Shelly.GetDeviceInfo")
            assert (info["src"], info["dst"]) == (plug, src)
            assert info["result"]["name"] == "Coffee Maker" and info["result"]["gen"] == 2
            assert info["result"]["mac"].lower() == where["switch.coffee_maker"].device_ids[0][4:]
            status = await rpc.call(broker, plug, "Shelly.GetStatus")
            assert status["result"]["switch:0"]["output"] is False

            answer = await rpc.call(broker, plug, "Switch.Set", {"id": 0, "on": True})
            assert answer["result"] == {"was_on": False}
            assert state(house, "switch.coffee_maker")[0] == "on"
            await until_json(watcher, f"{plug}/events/rpc",
                             lambda d: d["method"] == "NotifyStatus")
            event = payload_json(watcher, f"{plug}/events/rpc")
            assert event["src"] == plug and event["params"]["switch:0"]["output"] is True

            await rpc.call(broker, dimmer, "Light.Set", {"id": 0, "on": True, "brightness": 50})
            assert state(house, "light.bedroom")[1]["brightness"] == 128
            light = await rpc.call(broker, dimmer, "Light.GetStatus", {"id": 0})
            assert light["result"]["output"] is True and light["result"]["brightness"] == 50
            await rpc.call(broker, blinds, "Cover.GoToPosition", {"id": 0, "pos": 30})
            assert state(house, "cover.living_room_blinds")[1]["current_position"] == 30
            cover = await rpc.call(broker, blinds, "Cover.GetStatus", {"id": 0})
            assert cover["result"]["current_pos"] == 30 and cover["result"]["state"] == "open"
            motion = await rpc.call(broker, where["binary_sensor.hallway_motion"].native_id,
                                    "Input.GetStatus", {"id": 0})
            assert motion["result"] == {"id": 0, "state": False}
            temperature = await rpc.call(broker, where["sensor.outdoor_temperature"].native_id,
                                         "Temperature.GetStatus", {"id": 0})
            assert temperature["result"]["tC"] == 11.8

            before = house.states()
            unknown = await rpc.call(broker, plug, "Switch.Fly", {"id": 0})
            assert unknown["error"]["code"] == 404
            wrong = await rpc.call(broker, plug, "Switch.Set", {"id": 0, "on": "yes"})
            assert wrong["error"]["code"] == -103
            missing = await rpc.call(broker, plug, "Switch.Set", {"id": 3, "on": False})
            assert missing["error"]["code"] == -103
            with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
                await send(broker, f"{plug}/rpc", json.dumps(  # no src: no one to answer
                    {"id": 99, "method": "Switch.Set", "params": {"id": 0, "on": False}}))
                await rpc.call(broker, plug, "Shelly.GetStatus")  # handled after it
            assert house.states() == before and caplog.text.count(MALFORMED) == 1
        finally:
            watcher.close()


# -- Homie 5 --------------------------------------------------------------------------------------

HOMIE = {entity_id: "homie" for entity_id in (
    "switch.coffee_maker", "light.bedroom", "sensor.living_room_temperature",
    "binary_sensor.back_door", "light.kitchen")}


async def test_homie_devices_follow_the_convention(
        broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    async with presenting(broker, HOMIE) as (house, topics):
        where = house.presented_on()
        assert house.protocols()["light.kitchen"] == "ha"  # colour: not a simple light
        root = f"{topics.homie}/5"
        plug, bulb = (f"{root}/{where[e].native_id}" for e in ("switch.coffee_maker",
                                                               "light.bedroom"))
        sensor = f"{root}/{where['sensor.living_room_temperature'].native_id}"
        late = await observe(broker, f"{root}/#")
        try:
            wanted = [f"{d}/{t}" for d in (plug, bulb, sensor) for t in ("$state", "$description")]
            await until(lambda: all(late.payload(t) is not None for t in wanted)
                        and late.payload(f"{sensor}/sensor/value") is not None
                        and late.payload(f"{bulb}/light/state") is not None)
            assert late.payload(f"{sensor}/$state") == "ready"
            for device in (plug, bulb, sensor):
                assert retained(late, f"{device}/$state") and retained(late,
                                                                       f"{device}/$description")
            description = payload_json(late, f"{bulb}/$description")
            assert description["homie"] == "5.0" and isinstance(description["version"], int)
            assert description["name"] == "Bedroom Light"
            properties = description["nodes"]["light"]["properties"]
            assert properties["state"]["datatype"] == "boolean" and properties["state"]["settable"]
            assert properties["brightness"]["format"] == "0:100"
            assert late.payload(f"{bulb}/light/state") == "false"
            reading = payload_json(late, f"{sensor}/$description")["nodes"]["sensor"]
            assert reading["properties"]["value"] == {
                "name": "Living Room Temperature", "datatype": "float", "settable": False,
                "retained": True, "unit": "°C"}
            assert late.payload(f"{sensor}/sensor/value") == "21.4"

            await send(broker, f"{plug}/switch/state/set", "true")
            await until(lambda: state(house, "switch.coffee_maker")[0] == "on")
            await until(lambda: late.payload(f"{plug}/switch/state") == "true")
            newcomer = await observe(broker, f"{plug}/switch/state")  # it was retained
            try:
                await until(lambda: newcomer.payload(f"{plug}/switch/state") == "true")
                assert retained(newcomer, f"{plug}/switch/state")
            finally:
                newcomer.close()
            await send(broker, f"{bulb}/light/brightness/set", "50")
            await until(lambda: state(house, "light.bedroom")[0] == "on")
            assert state(house, "light.bedroom")[1]["brightness"] == 128
            await until(lambda: late.payload(f"{bulb}/light/brightness") == "50")

            before = house.states()
            with caplog.at_level(logging.WARNING, logger="assistant.virtual.home"):
                await send(broker, f"{plug}/switch/state/set", "maybe")
                await send(broker, f"{bulb}/light/brightness/set", "150")
                await send(broker, f"{bulb}/light/brightness/set", "5.5")
                await send(broker, f"{sensor}/sensor/value/set", "99")  # not settable
                await send(broker, f"{bulb}/light/state/set", "false")
                await until(lambda: state(house, "light.bedroom")[0] == "off")
            assert {k: v for k, v in house.states().items() if k != "light.bedroom"} == {
                k: v for k, v in before.items() if k != "light.bedroom"}
            assert caplog.text.count(MALFORMED) == 3
        finally:
            late.close()
