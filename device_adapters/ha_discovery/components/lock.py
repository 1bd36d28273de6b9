"""lock: state_* payloads on the state topic; lock, unlock and open payloads."""

from device_adapters.ha_discovery.components.kind import ComponentKind, Reader
from device_adapters.ha_discovery.components.shared import send, state_reader

_STATES = {
    "state_locked": "locked",
    "state_locking": "locking",
    "state_unlocked": "unlocked",
    "state_unlocking": "unlocking",
    "state_jammed": "jammed",
    "state_open": "open",
    "state_opening": "opening",
}

KIND = ComponentKind(
    name="lock",
    component="lock",
    defaults={
        "payload_lock": "LOCK",
        "payload_unlock": "UNLOCK",
        "state_jammed": "JAMMED",
        "state_locked": "LOCKED",
        "state_locking": "LOCKING",
        "state_open": "OPEN",
        "state_opening": "OPENING",
        "state_unlocked": "UNLOCKED",
        "state_unlocking": "UNLOCKING",
    },
    required=("command_topic",),
    readers=(Reader("state_topic", "value_template", state_reader(_STATES)),),
    commands={
        "lock": send("payload_lock", template="command_template"),
        "unlock": send("payload_unlock", template="command_template"),
        "open": send("payload_open", template="command_template"),
    },
)
