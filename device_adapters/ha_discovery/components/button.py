"""button: press publishes payload_press; it has no state."""

from device_adapters.ha_discovery.components.kind import ComponentKind
from device_adapters.ha_discovery.components.shared import send

KIND = ComponentKind(
    name="button",
    component="button",
    defaults={"payload_press": "PRESS"},
    required=("command_topic",),
    commands={"press": send("payload_press", template="command_template")},
)
