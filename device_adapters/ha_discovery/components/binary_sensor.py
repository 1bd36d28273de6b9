"""binary_sensor: payload_on/payload_off on the state topic; no commands."""

from device_adapters.ha_discovery.components.kind import ComponentKind, Reader
from device_adapters.ha_discovery.components.shared import ON_OFF_PAYLOADS, state_reader

KIND = ComponentKind(
    name="binary_sensor",
    component="binary_sensor",
    defaults={"payload_on": "ON", "payload_off": "OFF"},
    required=("state_topic",),
    readers=(Reader("state_topic", "value_template", state_reader(ON_OFF_PAYLOADS)),),
)
