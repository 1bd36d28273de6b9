"""English questions about binary sensors and measuring sensors read the right kind of sensor."""

import pytest

from assistant.registry import Area, DeviceRegistry, Entity
from assistant.understanding.fastpath import FastPath


@pytest.fixture()
def fast() -> FastPath:
    registry = DeviceRegistry(None)
    for area_id, name in [("kitchen", "Kitchen"), ("hall", "Hall")]:
        registry.set_area(Area(id=area_id, name=name))
    # One phone with several sensors of the same name, as Home Assistant devices have.
    entities = [
        ("binary_sensor.phone_battery", "Phone", "hall", "battery"),
        ("binary_sensor.phone_connected", "Phone", "hall", "connectivity"),
        ("binary_sensor.phone_charging", "Phone", "hall", "battery_charging"),
        ("binary_sensor.kitchen_smoke", "Kitchen Smoke", "kitchen", "smoke"),
        ("binary_sensor.hall_smoke", "Hall Smoke", "hall", "smoke"),
        ("binary_sensor.kitchen_leak", "Sink Leak", "kitchen", "moisture"),
        ("binary_sensor.kitchen_presence", "Kitchen Presence", "kitchen", "occupancy"),
        ("sensor.phone_battery_level", "My Phone", "hall", "battery"),
        ("sensor.my_phone_signal", "My Phone", "hall", "signal_strength"),
        ("sensor.router_signal", "Router", "hall", "signal_strength"),
    ]
    for entity_id, name, area, device_class in entities:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state="off"))
    path = FastPath(registry)
    yield path
    path.close()


def read(fast: FastPath, text: str) -> tuple[set[str], str | None]:
    """The entities a question reads and the state it asks about."""
    result = fast.understand(text)
    assert result.calls, f"{text!r} not understood: {result}"
    (call,) = result.calls
    assert call.tool == "get_state"
    return set(call.args["entity_ids"]), call.args.get("state")


@pytest.mark.parametrize(("text", "entity", "state"), [
    ("is the phone battery low", "binary_sensor.phone_battery", "on"),
    ("is the battery of the phone normal", "binary_sensor.phone_battery", "off"),
    ("is the phone connected", "binary_sensor.phone_connected", "on"),
    ("is the phone offline", "binary_sensor.phone_connected", "off"),
    ("is the phone charging", "binary_sensor.phone_charging", "on"),
])
def test_a_named_device_is_read_by_the_sensor_of_the_kind_asked(
        fast: FastPath, text: str, entity: str, state: str) -> None:
    assert read(fast, text) == ({entity}, state)


def test_a_battery_question_never_reads_another_sensor_of_the_same_name(fast: FastPath) -> None:
    for text in ("is the phone battery low", "is the phone low", "are any batteries low"):
        entities, _ = read(fast, text)
        assert entities == {"binary_sensor.phone_battery"}, text
    # and a state word of no battery ("connected") is not asked of the battery sensor
    assert read(fast, "is the phone connected")[0] == {"binary_sensor.phone_connected"}


def test_what_a_detector_senses_is_asked_by_room_and_house_wide(fast: FastPath) -> None:
    assert read(fast, "is there smoke in the kitchen") == ({"binary_sensor.kitchen_smoke"}, "on")
    assert read(fast, "which smoke detectors are triggered") == (
        {"binary_sensor.kitchen_smoke", "binary_sensor.hall_smoke"}, "on")
    assert read(fast, "is there a leak in the kitchen") == ({"binary_sensor.kitchen_leak"}, "on")
    assert read(fast, "is anyone in the kitchen") == ({"binary_sensor.kitchen_presence"}, "on")
    assert read(fast, "is the kitchen empty") == ({"binary_sensor.kitchen_presence"}, "off")


def test_a_named_measure_reads_that_sensor_only(fast: FastPath) -> None:
    assert read(fast, "what is the battery level of my phone")[0] == {
        "sensor.phone_battery_level"}
    assert read(fast, "what's the signal strength of the router")[0] == {"sensor.router_signal"}
    # a measure is never answered by a binary sensor's on/off
    assert read(fast, "how much battery does my phone have left")[0] == {
        "sensor.phone_battery_level"}
