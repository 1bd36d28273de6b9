"""Shelly Gen2+ adapter: entities, states, notifications, commands and availability, with the
documented devices of tests/data/shelly answering through an in-process broker."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.shelly import ShellyAdapter
from device_adapters.shelly.components import merge
from tests.shelly_support import SRC, Hub, device, until

PLUS1PM = "shellyplus1pm-a8032ab636ec"
KETTLE = "switch.shellyplus1pm_a8032ab636ec_switch_0"
KETTLE_POWER = "sensor.shellyplus1pm_a8032ab636ec_switch_0_power"
BLIND = "cover.shellyplus2pm_c049ef8b3a44_cover_0"
DIMMER = "light.shellypluswdus_80646fc6f4e8_light_0"
DOORBELL = "sensor.shellyplusi4_c4d8d5573f1c_input_2"
HALL_SWITCH = "binary_sensor.shellyplusi4_c4d8d5573f1c_input_0"
BOILER = "sensor.shellyplus1_b48a0a1cd978_temperature_100"


@pytest.fixture
async def hub() -> Hub:
    return Hub.started()


def encoded(hub: Hub, entity_id: str, service: str, **params: Any) -> list[dict[str, Any]]:
    messages = hub.adapter.encode(hub.entity(entity_id), EntityCommand(entity_id, service, params))
    assert all(m.qos == 1 and not m.retain for m in messages)
    return [{"topic": m.topic, **json.loads(m.payload)} for m in messages]


# -- entities ---------------------------------------------------------------------------------


async def test_a_plus_1pm_is_a_switch_with_power_sensors(hub: Hub) -> None:
    await hub.add("plus1pm")
    assert set(hub.shelly_entities()) == {
        KETTLE, KETTLE_POWER, "sensor.shellyplus1pm_a8032ab636ec_switch_0_energy",
        "sensor.shellyplus1pm_a8032ab636ec_switch_0_voltage",
        "sensor.shellyplus1pm_a8032ab636ec_switch_0_current",
        "binary_sensor.shellyplus1pm_a8032ab636ec_input_0",
    }
    kettle = hub.entity(KETTLE)
    assert (kettle.name, kettle.domain, kettle.state, kettle.available) == (
        "Kettle", "switch", "on", True)
    assert kettle.capabilities == {"services": ["toggle", "turn_off", "turn_on"]}
    assert kettle.device_ids == ("mac:a8032ab636ec",)
    assert kettle.unique_id == "shelly:a8032ab636ec:switch:0"
    power = hub.entity(KETTLE_POWER)
    assert (power.name, power.state, power.device_class) == ("Kettle Power", "1205.3", "power")
    assert power.attributes == {"unit_of_measurement": "W"}
    assert power.capabilities == {"services": [], "unit_of_measurement": "W",
                                  "state_class": "measurement"}
    # Voltage and current are there, not shown to the assistant by default.
    assert not hub.entity("sensor.shellyplus1pm_a8032ab636ec_switch_0_voltage").enabled_by_default
    assert power.enabled_by_default
    # The input is what it is wired as, a binary sensor, named after the device.
    wall = hub.entity("binary_sensor.shellyplus1pm_a8032ab636ec_input_0")
    assert (wall.name, wall.state, wall.capabilities) == ("Kitchen Input 0", "off",
                                                          {"services": []})
    assert {e.device_ids for e in hub.shelly_entities().values()} == {("mac:a8032ab636ec",)}


async def test_a_relay_without_metering_has_no_power_sensors(hub: Hub) -> None:
    await hub.add("plus1_addon")
    ids = set(hub.shelly_entities())
    assert "switch.shellyplus1_b48a0a1cd978_switch_0" in ids
    assert not any(entity_id.endswith(("_power", "_energy")) for entity_id in ids)
    # Unnamed, the one relay of a device is the device.
    assert hub.entity("switch.shellyplus1_b48a0a1cd978_switch_0").name == "Boiler room"


async def test_add_on_sensors(hub: Hub) -> None:
    await hub.add("plus1_addon")
    boiler = hub.entity(BOILER)
    assert (boiler.name, boiler.state, boiler.device_class) == ("Boiler", "22.4", "temperature")
    assert boiler.attributes == {"unit_of_measurement": "°C"}
    humidity = hub.entity("sensor.shellyplus1_b48a0a1cd978_humidity_100")
    assert (humidity.name, humidity.state, humidity.device_class) == (
        "Boiler room Humidity", "48.1", "humidity")
    volts = hub.entity("sensor.shellyplus1_b48a0a1cd978_voltmeter_100")
    assert (volts.state, volts.attributes) == ("3.12", {"unit_of_measurement": "V"})


async def test_battery_of_a_plus_ht(hub: Hub) -> None:
    await hub.add("plusht")
    battery = hub.entity("sensor.shellyplusht_b8d61a8b17cc_devicepower_0")
    assert (battery.name, battery.state, battery.device_class) == (
        "Bedroom H&T Battery", "0", "battery")
    assert hub.entity("sensor.shellyplusht_b8d61a8b17cc_temperature_0").state == "19.8"


async def test_a_calibrated_cover_reports_its_position(hub: Hub) -> None:
    await hub.add("plus2pm_cover")
    blind = hub.entity(BLIND)
    # "stopped" at 60 % reads as open, as Home Assistant shows it.
    assert (blind.name, blind.state, blind.attributes) == (
        "Living room blind", "open", {"current_position": 60})
    assert blind.device_class == "shutter"
    assert blind.capabilities == {"services": ["close_cover", "open_cover", "set_cover_position",
                                               "stop_cover", "toggle"], "reports_position": True}
    assert blind.device_ids == ("mac:c049ef8b3a44",)  # the MAC came with colons


async def test_an_uncalibrated_cover_has_no_position(hub: Hub) -> None:
    recorded = device("plus2pm_cover")
    status = recorded["Shelly.GetStatus"]["cover:0"]
    status.update(pos_control=False, state="stopped")
    del status["current_pos"]
    hub.broker.serve(recorded)
    hub.broker.deliver(f"{recorded['prefix']}/online", "true")
    await hub.settled(recorded["prefix"])
    blind = hub.entity(BLIND)
    assert "set_cover_position" not in blind.capabilities["services"]
    assert blind.capabilities["reports_position"] is False
    assert blind.attributes == {} and blind.state == "open"
    with pytest.raises(CommandNotSupportedError):
        encoded(hub, BLIND, "set_cover_position", position=30)


async def test_inputs_by_type(hub: Hub) -> None:
    await hub.add("plusi4")
    hall = hub.entity(HALL_SWITCH)
    assert (hall.domain, hall.name, hall.state) == ("binary_sensor", "Hall switch", "off")
    assert hub.entity("binary_sensor.shellyplusi4_c4d8d5573f1c_input_1").name == "Hall Input 1"
    doorbell = hub.entity(DOORBELL)
    assert (doorbell.domain, doorbell.name, doorbell.state) == ("sensor", "Doorbell", None)
    # A button is not a binary sensor: it has no on/off state.
    assert hub.registry.get_any("binary_sensor.shellyplusi4_c4d8d5573f1c_input_2") is None


async def test_a_dimmer_is_a_light_with_brightness(hub: Hub) -> None:
    await hub.add("pluswalldimmer")
    light = hub.entity(DIMMER)
    assert (light.name, light.state, light.attributes) == ("Dining room", "on", {"brightness": 128})
    assert light.capabilities == {"services": ["toggle", "turn_off", "turn_on"],
                                  "supported_color_modes": ["brightness"], "brightness": True}


# -- notifications ------------------------------------------------------------------------


async def test_notify_status_merges_deltas(hub: Hub) -> None:
    plus1pm = await hub.add("plus1pm")
    hub.notify(plus1pm, 0)  # the button turned it off; power not reported yet
    assert hub.entity(KETTLE).state == "off"
    assert hub.entity(KETTLE_POWER).state == "1205.3"
    hub.notify(plus1pm, 1)  # power and current fell; voltage was not in the delta
    assert hub.entity(KETTLE_POWER).state == "0.0"
    assert hub.entity("sensor.shellyplus1pm_a8032ab636ec_switch_0_voltage").state == "230.4"
    assert hub.entity(KETTLE).state == "off"
    hub.notify(plus1pm, 2)  # a nested delta: the energy counter
    assert hub.entity("sensor.shellyplus1pm_a8032ab636ec_switch_0_energy").state == "11673.9"


async def test_notify_full_status_replaces_the_status(hub: Hub) -> None:
    plus1pm = await hub.add("plus1pm")
    hub.notify(plus1pm, 0)
    hub.notify(plus1pm, 3)
    assert hub.entity(KETTLE).state == "on"
    assert hub.entity("binary_sensor.shellyplus1pm_a8032ab636ec_input_0").state == "on"
    assert hub.entity(KETTLE_POWER).state == "1190.0"


async def test_a_cover_moving_and_closing(hub: Hub) -> None:
    cover = await hub.add("plus2pm_cover")
    hub.notify(cover, 0)
    assert hub.entity(BLIND).state == "closing"
    assert hub.entity(BLIND).attributes == {"current_position": 60}
    hub.notify(cover, 1)
    assert (hub.entity(BLIND).state, hub.entity(BLIND).attributes) == (
        "closed", {"current_position": 0})


async def test_a_dimmer_turned_off_and_on(hub: Hub) -> None:
    dimmer = await hub.add("pluswalldimmer")
    hub.notify(dimmer, 0)
    assert hub.entity(DIMMER).state == "off"
    assert hub.entity(DIMMER).attributes == {"brightness": 128}  # kept while off
    hub.notify(dimmer, 1)
    assert (hub.entity(DIMMER).state, hub.entity(DIMMER).attributes) == ("on", {"brightness": 204})


async def test_button_events_set_the_last_push(hub: Hub) -> None:
    i4 = await hub.add("plusi4")
    hub.notify(i4, 1)
    assert hub.entity(DOORBELL).state == "single_push"
    assert hub.entity("sensor.shellyplusi4_c4d8d5573f1c_input_3").state is None
    hub.broker.deliver(f"{i4['prefix']}/events/rpc", {
        "src": i4["Shelly.GetDeviceInfo"]["id"], "method": "NotifyEvent", "params": {"events": [
            {"component": "input:2", "id": 2, "event": "config_changed"},
            {"component": "input:0", "id": 0, "event": "single_push"}]}})
    assert hub.entity(DOORBELL).state == "single_push"  # not an input event: ignored
    assert hub.entity(HALL_SWITCH).state == "off"  # a switch input has no pushes
    hub.notify(i4, 0)
    assert hub.entity(HALL_SWITCH).state == "on"


async def test_only_the_device_itself_is_heard(hub: Hub) -> None:
    plus1pm = await hub.add("plus1pm")
    frame = plus1pm["notifications"][0]
    hub.broker.deliver(f"{PLUS1PM}/events/rpc", {**frame, "src": "shellyplus1pm-000000000000"})
    hub.broker.deliver("another-prefix/events/rpc", frame)
    hub.broker.deliver(f"{PLUS1PM}/events/rpc", {**frame, "params": "off"})
    assert hub.entity(KETTLE).state == "on"
    hub.broker.deliver(f"{PLUS1PM}/events/rpc", frame)
    assert hub.entity(KETTLE).state == "off"


def test_merge_overlays_and_null_removes() -> None:
    known = {"output": True, "apower": 5.0, "aenergy": {"total": 1.0}}
    assert merge(known, {"apower": None, "aenergy": {"total": 2.0}}) == {
        "output": True, "aenergy": {"total": 2.0}}
    assert merge(known, {}) == known


async def test_a_changed_configuration_is_read_again(hub: Hub) -> None:
    addon = await hub.add("plus1_addon")
    prefix = addon["prefix"]
    hub.notify(addon, 0)
    await hub.settled(prefix)
    assert hub.entity(BOILER).state == "23.0"
    assert len(hub.broker.requests(prefix)) == 3  # a plain status change reads nothing
    addon["Shelly.GetConfig"]["temperature:100"]["name"] = "Hot water"
    addon["Shelly.GetStatus"]["sys"]["cfg_rev"] = 16
    hub.notify(addon, 1)  # sys.cfg_rev 15 -> 16
    await hub.settled(prefix)
    assert [r["method"] for r in hub.broker.requests(prefix)[3:]] == [
        "Shelly.GetDeviceInfo", "Shelly.GetConfig", "Shelly.GetStatus"]
    assert hub.entity(BOILER).name == "Hot water"
    hub.notify(addon, 1)  # the same revision again
    await hub.settled(prefix)
    assert len(hub.broker.requests(prefix)) == 6


async def test_a_component_gone_from_the_configuration_is_removed(hub: Hub) -> None:
    addon = await hub.add("plus1_addon")
    for reply in ("Shelly.GetConfig", "Shelly.GetStatus"):
        del addon[reply]["humidity:100"]
    hub.broker.deliver(f"{addon['prefix']}/events/rpc", {
        "src": addon["Shelly.GetDeviceInfo"]["id"], "method": "NotifyStatus",
        "params": {"sys": {"cfg_rev": 99}}})
    await hub.settled(addon["prefix"])
    assert hub.registry.get_any("sensor.shellyplus1_b48a0a1cd978_humidity_100") is None
    assert hub.registry.get_any(BOILER) is not None


# -- commands -----------------------------------------------------------------------------


async def test_switch_commands(hub: Hub) -> None:
    await hub.add("plus1pm")
    first, = encoded(hub, KETTLE, "turn_on")
    assert first == {"topic": f"{PLUS1PM}/rpc", "id": first["id"], "src": SRC,
                     "method": "Switch.Set", "params": {"id": 0, "on": True}}
    second, = encoded(hub, KETTLE, "turn_off")
    assert second["id"] == first["id"] + 1
    assert (second["method"], second["params"]) == ("Switch.Set", {"id": 0, "on": False})
    toggle, = encoded(hub, KETTLE, "toggle")
    assert (toggle["method"], toggle["params"]) == ("Switch.Toggle", {"id": 0})
    for service in ("open_cover", "set_percentage"):
        with pytest.raises(CommandNotSupportedError):
            encoded(hub, KETTLE, service)
    with pytest.raises(CommandNotSupportedError):
        encoded(hub, KETTLE_POWER, "turn_on")  # a sensor takes no commands


async def test_cover_commands(hub: Hub) -> None:
    await hub.add("plus2pm_cover")
    calls = {service: encoded(hub, BLIND, service)[0]
             for service in ("open_cover", "close_cover", "stop_cover", "toggle")}
    assert {s: (c["method"], c["params"]) for s, c in calls.items()} == {
        "open_cover": ("Cover.Open", {"id": 0}), "close_cover": ("Cover.Close", {"id": 0}),
        "stop_cover": ("Cover.Stop", {"id": 0}),
        "toggle": ("Cover.Close", {"id": 0}),  # it is open
    }
    position, = encoded(hub, BLIND, "set_cover_position", position=30)
    assert (position["topic"], position["method"], position["params"]) == (
        "shellyplus2pm-c049ef8b3a44/rpc", "Cover.GoToPosition", {"id": 0, "pos": 30})
    for bad in (101, -1, "30", True, None):
        with pytest.raises(CommandNotSupportedError):
            encoded(hub, BLIND, "set_cover_position", position=bad)
    hub.notify(device("plus2pm_cover"), 1)  # closed now: toggling opens
    assert encoded(hub, BLIND, "toggle")[0]["method"] == "Cover.Open"


async def test_light_commands(hub: Hub) -> None:
    await hub.add("pluswalldimmer")
    on, = encoded(hub, DIMMER, "turn_on")
    assert (on["method"], on["params"]) == ("Light.Set", {"id": 0, "on": True})
    full, = encoded(hub, DIMMER, "turn_on", brightness=255)
    assert full["params"] == {"id": 0, "on": True, "brightness": 100}
    dim, = encoded(hub, DIMMER, "turn_on", brightness=1)
    assert dim["params"]["brightness"] == 1  # never 0, which would read as off
    off, = encoded(hub, DIMMER, "turn_off")
    assert off["params"] == {"id": 0, "on": False}
    assert encoded(hub, DIMMER, "toggle")[0]["method"] == "Light.Toggle"
    for bad in (256, -5, "max"):
        with pytest.raises(CommandNotSupportedError):
            encoded(hub, DIMMER, "turn_on", brightness=bad)


async def test_a_command_is_refused_when_its_wire_is_unusable(hub: Hub) -> None:
    await hub.add("plus1pm")
    kettle = hub.entity(KETTLE)
    command = EntityCommand(KETTLE, "turn_on")
    for wire in ({**kettle.wire, "prefix": "+"}, {**kettle.wire, "prefix": "a/#"},
                 {**kettle.wire, "id": "0"}, {}):
        with pytest.raises(CommandNotSupportedError):
            hub.adapter.encode(kettle.model_copy(update={"wire": wire}), command)
    hub.stop()
    with pytest.raises(CommandNotSupportedError):
        hub.adapter.encode(kettle, command)


async def test_a_command_error_reply_is_logged(hub: Hub, caplog: pytest.LogCaptureFixture
                                               ) -> None:
    await hub.add("plus1pm")
    request, = encoded(hub, KETTLE, "turn_on")
    with caplog.at_level(logging.WARNING):
        hub.broker.deliver(f"{SRC}/rpc", {"id": request["id"], "src": PLUS1PM, "dst": SRC,
                                          "error": {"code": -103, "message": "Invalid argument"}})
    assert "Switch.Set" in caplog.text and "Invalid argument" in caplog.text


def test_reports_state() -> None:
    assert ShellyAdapter().reports_state(Entity(entity_id="switch.x", name="x", domain="switch"))


# -- finding devices and availability -----------------------------------------------------


async def test_online_false_makes_the_device_unavailable(hub: Hub) -> None:
    plus1pm = await hub.add("plus1pm")
    hub.broker.deliver(f"{PLUS1PM}/online", "false")
    assert not any(e.available for e in hub.shelly_entities().values())
    hub.broker.deliver(f"{PLUS1PM}/online", "offline")  # not Shelly's word: ignored
    assert not hub.entity(KETTLE).available
    hub.broker.deliver(f"{PLUS1PM}/online", "true")  # back: available, and read again
    assert all(e.available for e in hub.shelly_entities().values())
    await hub.settled(PLUS1PM)
    assert len(hub.broker.requests(PLUS1PM)) == 6
    hub.broker.deliver(f"{PLUS1PM}/online", "true")  # the retained message again
    await hub.settled(PLUS1PM)
    assert len(hub.broker.requests(PLUS1PM)) == 6
    assert plus1pm["prefix"] == PLUS1PM


async def test_only_a_shelly_looking_reply_makes_a_device(hub: Hub) -> None:
    recorded = device("plus1pm")
    for broken in ({"gen": 1}, {"mac": "not-a-mac"}, {"model": None}, {"app": 7},
                   {"id": "shelly/../x"}, {"gen": True}):
        prefix = f"candidate-{len(hub.broker.devices)}"
        info = {**recorded["Shelly.GetDeviceInfo"], **broken}
        hub.broker.serve({**recorded, "prefix": prefix, "Shelly.GetDeviceInfo": info})
        hub.broker.deliver(f"{prefix}/online", "true")
        await hub.settled(prefix)
        # One question, no entities, and it is not asked again.
        assert [r["method"] for r in hub.broker.requests(prefix)] == ["Shelly.GetDeviceInfo"]
        hub.broker.deliver(f"{prefix}/online", "true")
        await hub.settled(prefix)
        assert len(hub.broker.requests(prefix)) == 1
    assert hub.shelly_entities() == {}
    await hub.add("plus1pm")  # the documented reply does make one
    assert KETTLE in hub.shelly_entities()


async def test_a_reply_must_come_from_the_device_it_describes(hub: Hub) -> None:
    recorded = device("plus1pm")
    hub.broker.serve({**recorded, "src": "shellyplus1pm-ffffffffffff"})
    hub.broker.deliver(f"{PLUS1PM}/online", "true")
    await hub.settled(PLUS1PM)
    assert hub.shelly_entities() == {}
    honest = Hub.started()  # told apart from the reply above only by its src
    await honest.add("plus1pm")
    assert KETTLE in honest.shelly_entities()


async def test_a_silent_prefix_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub.started(rpc_timeout_s=0.05)
    with caplog.at_level(logging.WARNING):
        hub.broker.deliver("zigbee2mqtt/online", "true")
        await hub.settled("zigbee2mqtt")
    assert "no reply to Shelly.GetDeviceInfo" in caplog.text
    assert hub.shelly_entities() == {}
    hub.broker.deliver("zigbee2mqtt/online", "true")  # it may be a slow Shelly: asked again
    await hub.settled("zigbee2mqtt")
    assert len(hub.broker.requests("zigbee2mqtt")) == 2
    hub.broker.deliver("elsewhere/online", "false")  # offline and unknown: nothing to ask
    await hub.settled("elsewhere")
    assert hub.broker.requests("elsewhere") == []


async def test_configured_prefixes_are_probed_at_start() -> None:
    hub = Hub.started(prefixes=["home/garage/shelly", PLUS1PM, "/home/garage/shelly/"])
    await until(lambda: len(hub.broker.published) == 2)
    assert [r["method"] for r in hub.broker.requests("home/garage/shelly")] == [
        "Shelly.GetDeviceInfo"]
    assert len(hub.broker.requests(PLUS1PM)) == 1
    # A prefix of several levels is not under "+/online": its own online topic is followed.
    assert {"+/online", "home/garage/shelly/online", f"{SRC}/rpc"} == hub.broker.topics
    hub.stop()


@pytest.mark.parametrize("prefix", ["+", "a/#", "", "bad\nprefix", "x" * 301])
def test_an_unusable_configured_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        ShellyAdapter(prefixes=[prefix])
    ShellyAdapter(prefixes=["shellies/kitchen"])  # a usable one is taken


async def test_entity_ids_stay_and_are_not_taken_from_others() -> None:
    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id=KETTLE, name="Someone else's", domain="switch",
                           source="ha_discovery", unique_id="other"))
    hub = Hub.started(registry)
    await hub.add("plus1pm")
    assert hub.entity(KETTLE).source == "ha_discovery"  # left alone
    assert KETTLE_POWER in hub.shelly_entities()
    ids = set(hub.shelly_entities())
    hub.broker.deliver(f"{PLUS1PM}/online", "false")
    hub.broker.deliver(f"{PLUS1PM}/online", "true")
    await hub.settled(PLUS1PM)
    assert set(hub.shelly_entities()) == ids


async def test_stop_unsubscribes_everything(hub: Hub) -> None:
    await hub.add("plus1pm")
    hub.broker.deliver("late-device/online", "true")
    hub.stop()
    assert hub.broker.topics == set()
    await until(lambda: not hub.adapter._tasks)
    hub.stop()  # twice is fine
