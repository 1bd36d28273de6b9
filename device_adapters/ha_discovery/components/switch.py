"""switch: payload_on/payload_off commands; state_on/state_off (the payloads by default)."""

from device_adapters.ha_discovery.components.kind import ComponentKind, Reader, Toggle
from device_adapters.ha_discovery.components.shared import send, state_reader

KIND = ComponentKind(
    name="switch",
    component="switch",
    defaults={"payload_on": "ON", "payload_off": "OFF"},
    derived_defaults={"state_on": "payload_on", "state_off": "payload_off"},
    required=("command_topic",),
    readers=(Reader("state_topic", "value_template",
                    state_reader({"state_on": "on", "state_off": "off"})),),
    commands={
        "turn_on": send("payload_on", template="command_template"),
        "turn_off": send("payload_off", template="command_template"),
    },
    toggle=Toggle("turn_off", "turn_on", frozenset({"on"})),
)
