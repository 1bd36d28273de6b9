"""scene: activating (or turning on) publishes payload_on; it has no state."""

from device_adapters.ha_discovery.components.kind import ComponentKind
from device_adapters.ha_discovery.components.shared import send

KIND = ComponentKind(
    name="scene",
    component="scene",
    defaults={"payload_on": "ON"},
    required=("command_topic",),
    commands={"activate": send("payload_on"), "turn_on": send("payload_on")},
)
