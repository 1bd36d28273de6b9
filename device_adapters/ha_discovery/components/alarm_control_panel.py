"""alarm_control_panel: Home Assistant's state names on the state topic, one payload per
arming mode (offered when in ``supported_features``), an optional ``code`` in the template."""

from device_adapters.ha_discovery.components.kind import ComponentKind, Reader
from device_adapters.ha_discovery.components.shared import send, state_in

_FEATURES = ["arm_home", "arm_away", "arm_night", "arm_vacation", "arm_custom_bypass", "trigger"]
_STATES = frozenset({
    "disarmed", "armed_home", "armed_away", "armed_night", "armed_vacation",
    "armed_custom_bypass", "pending", "triggered", "arming", "disarming",
})

KIND = ComponentKind(
    name="alarm_control_panel",
    component="alarm_control_panel",
    defaults={
        "payload_arm_away": "ARM_AWAY",
        "payload_arm_custom_bypass": "ARM_CUSTOM_BYPASS",
        "payload_arm_home": "ARM_HOME",
        "payload_arm_night": "ARM_NIGHT",
        "payload_arm_vacation": "ARM_VACATION",
        "payload_disarm": "DISARM",
        "payload_trigger": "TRIGGER",
        "supported_features": _FEATURES,
    },
    required=("command_topic", "state_topic"),
    readers=(Reader("state_topic", "value_template", state_in(_STATES)),),
    commands={
        **{
            f"alarm_{feature}": send(
                f"payload_{feature}", template="command_template", feature=feature
            )
            for feature in _FEATURES
        },
        "alarm_disarm": send("payload_disarm", template="command_template"),
    },
)
