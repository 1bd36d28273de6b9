"""The device gateway: sensitive commands go out now or never; which devices report back."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.config import MqttConfig
from assistant.devices import DeviceGateway
from assistant.messages import EntityCommand
from assistant.transport.mqtt_link import BrokerUnreachableError, MqttLink
from assistant.registry import DeviceRegistry, Entity
from device_adapters.ha_discovery.adapter import SOURCE, HomeAssistantDiscoveryAdapter
from tests.conftest import free_port


def discovered(entity_id: str, **wire: Any) -> Entity:
    return Entity(entity_id=entity_id, name=entity_id.split(".")[1], domain=entity_id.split(".")[0],
                  source=SOURCE, wire=wire)


LIGHT = discovered("light.porch", command_topic="home/porch/set", state_topic="home/porch/state")
LOCK = discovered("lock.front_door", command_topic="home/door/set", state_topic="home/door/state")


def gateway_to_nowhere(**options: Any) -> tuple[DeviceGateway, MqttLink]:
    """A gateway whose broker is unreachable (nothing listens on the port)."""
    link = MqttLink(MqttConfig(host="127.0.0.1", port=free_port(), client_id="test-gateway"))
    gateway = DeviceGateway(DeviceRegistry(None), link, **options)
    gateway.add_adapter(HomeAssistantDiscoveryAdapter())
    return gateway, link


async def test_a_sensitive_command_is_refused_rather_than_queued_while_the_broker_is_away(
        ) -> None:
    gateway, link = gateway_to_nowhere(is_sensitive=lambda e: e.domain == "lock")
    await gateway.send([(LIGHT, EntityCommand(LIGHT.entity_id, "turn_on"))])
    assert link.queued == 1  # goes out when the broker is back
    with pytest.raises(BrokerUnreachableError):
        await gateway.send([(LOCK, EntityCommand(LOCK.entity_id, "unlock"))])
    assert link.queued == 1


async def test_without_a_policy_every_command_is_treated_as_sensitive() -> None:
    gateway, link = gateway_to_nowhere()
    with pytest.raises(BrokerUnreachableError):
        await gateway.send([(LIGHT, EntityCommand(LIGHT.entity_id, "turn_on"))])
    assert link.queued == 0


@pytest.mark.parametrize(("entity", "reports"), [
    (LIGHT, True),
    (discovered("light.garden", command_topic="home/garden/set"), False),  # no state topic
    (discovered("light.shed", command_topic="home/shed/set", state_topic="home/shed/state",
                optimistic=True), False),
    (discovered("cover.blinds", command_topic="home/blinds/set",
                position_topic="home/blinds/position"), True),  # the position tells
    (discovered("switch.relay", command_topic="home/relay/set").model_copy(
        update={"source": "not_running"}), False),
])
def test_optimistic_devices_do_not_report_their_state(entity: Entity, reports: bool) -> None:
    gateway, _ = gateway_to_nowhere()
    assert gateway.reports_state(entity) is reports


async def test_the_command_log_line_never_shows_an_alarm_code(
        caplog: pytest.LogCaptureFixture) -> None:
    panel = discovered("alarm_control_panel.house", command_topic="home/alarm/set",
                       state_topic="home/alarm/state",
                       command_template='{"action": "{{ action }}", "code": "{{ code }}"}')
    gateway, link = gateway_to_nowhere(is_sensitive=lambda e: False)
    with caplog.at_level("INFO", logger="assistant.devices"):
        await gateway.send([(panel, EntityCommand(panel.entity_id, "alarm_disarm",
                                                  {"code": "9182"}))])
    assert "home/alarm/set" in caplog.text and "9182" not in caplog.text
    assert link.queued == 1  # the real payload still carries it
