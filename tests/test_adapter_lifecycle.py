"""The lifecycle every adapter shares (device_adapters/base.py): a start's subscriptions and
state end with its stop, once; a stop of an earlier start does nothing; a handler's error
never reaches the link; an adapter removes only its own entities."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar

import pytest

from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext, DeviceAdapter, Running, feature_name
from tests.adapter_support import FakeBroker


class Probe(DeviceAdapter):
    """Subscribes to ``probe/#`` and, per message, to a device topic in a group of its own."""

    name: ClassVar[str] = "probe"

    def __init__(self, fail_at_start: bool = False) -> None:
        self.heard: list[str] = []
        self.cleared = 0
        self._fail_at_start = fail_at_start

    def _started(self, running: Running) -> None:
        running.subscribe("probe/#", self._on_message)
        running.on_stop(self._clear)
        if self._fail_at_start:
            raise ValueError("no start today")

    def _clear(self) -> None:
        self.cleared += 1

    def _on_message(self, message: MqttMessage) -> None:
        if message.payload == b"boom":
            raise KeyError("a malformed message")
        self.heard.append(message.topic)
        self.group = self._running.subscriptions()
        self.group.add(f"device/{message.topic}", self._on_message)

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        return []


def started(adapter: Probe, registry: DeviceRegistry | None = None
            ) -> tuple[FakeBroker, Callable[[], None]]:
    broker = FakeBroker()
    context = AdapterContext(registry or DeviceRegistry(None), broker.subscribe, broker.publish)
    return broker, adapter.start(context)


def test_stop_ends_every_subscription_and_clears_state_once() -> None:
    adapter = Probe()
    broker, stop = started(adapter)
    broker.deliver("probe/a", "x")
    assert broker.topics == {"probe/#", "device/probe/a"}
    stop()
    stop()  # a second call does nothing: the fake's unsubscribe would raise if called again
    assert broker.topics == set() and adapter.cleared == 1
    with pytest.raises(RuntimeError, match="not started"):
        adapter._registry  # noqa: B018 - the property is what is checked


def test_a_closed_group_is_not_ended_again_by_the_stop() -> None:
    adapter = Probe()
    broker, stop = started(adapter)
    broker.deliver("probe/a", "x")
    assert adapter.group
    adapter.group.close()
    assert not adapter.group and broker.topics == {"probe/#"}
    stop()  # would raise ValueError from the fake had it unsubscribed the group twice
    assert broker.topics == set()


def test_the_stop_of_an_earlier_start_does_nothing_once_started_again() -> None:
    adapter = Probe()
    first_broker, first_stop = started(adapter)
    second_broker, second_stop = started(adapter)
    first_stop()
    assert adapter.cleared == 0 and second_broker.topics == {"probe/#"}
    second_stop()
    assert adapter.cleared == 1 and second_broker.topics == set()
    assert first_broker.topics == {"probe/#"}  # as before: a second start does not stop one


def test_a_failing_start_ends_what_it_subscribed() -> None:
    adapter = Probe(fail_at_start=True)
    broker = FakeBroker()
    with pytest.raises(ValueError, match="no start today"):
        adapter.start(AdapterContext(DeviceRegistry(None), broker.subscribe, broker.publish))
    assert broker.topics == set() and adapter.cleared == 1


def test_what_a_handler_raises_is_logged_not_passed_to_the_link(
        caplog: pytest.LogCaptureFixture) -> None:
    adapter = Probe()
    broker, stop = started(adapter)
    with caplog.at_level(logging.WARNING):
        broker.deliver("probe/b", "boom")  # would raise KeyError here if not guarded
    assert "probe: skipped a message on 'probe/b'" in caplog.text
    broker.deliver("probe/c", "x")
    assert adapter.heard == ["probe/c"]
    stop()


def test_an_adapter_removes_only_its_own_entities() -> None:
    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id="switch.mine", name="Mine", domain="switch",
                           source="probe"))
    registry.upsert(Entity(entity_id="switch.theirs", name="Theirs", domain="switch",
                           source="ha_discovery"))
    adapter = Probe()
    _broker, stop = started(adapter, registry)
    adapter._running.remove_entity("switch.theirs")
    adapter._running.remove_entity("switch.mine")
    assert [e.entity_id for e in registry.all_entities()] == ["switch.theirs"]
    stop()


def test_a_library_that_logs_each_device_message_is_heard_once_per_line(
        caplog: pytest.LogCaptureFixture) -> None:
    import device_adapters.tasmota.discovery  # noqa: F401  (installs the filter)

    library = logging.getLogger("hatasmota.sensor")
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            library.warning("Unknown unit %s for %s", "furlong", "Temperature")
        library.warning("Unknown unit %s for %s", "cubit", "Pressure")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("hatasmota")]
    assert lines == ["Unknown unit furlong for Temperature", "Unknown unit cubit for Pressure"]


@pytest.mark.parametrize(("device", "feature", "name"), [
    ("Living Room Temperature", "Temperature", "Living Room Temperature"),
    ("Hall sensor", "Temperature", "Hall sensor Temperature"),
    ("Radiator", None, "Radiator"),
    ("Tempest", "Temp", "Tempest Temp"),  # words, not letters
    ("hall_switch", "Switch", "hall_switch"),
])
def test_a_feature_is_named_after_its_device_without_saying_a_word_twice(
        device: str, feature: str | None, name: str) -> None:
    assert feature_name(device, feature) == name
