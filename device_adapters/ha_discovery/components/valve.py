"""valve: state payloads, or positions (``reports_position``) as a number or in a JSON
``{"state", "position"}``; open, close, stop and set_position on the command topic."""

import json
from typing import Any

from assistant.registry import Entity
from device_adapters.ha_discovery.components.cover import OPEN_CLOSE_DEFAULTS
from device_adapters.ha_discovery.components.cover import STATES as COVER_STATES
from device_adapters.ha_discovery.components.kind import (
    ComponentKind, Reader, Toggle, Update
)
from device_adapters.ha_discovery.components.shared import (
    position_percentage, send, set_position, state_from_table
)
from device_adapters.ha_discovery.vocabulary import Config
from device_adapters.wire import PAYLOAD_NONE

_STATES = {key: state for key, state in COVER_STATES.items() if state != "stopped"}


def _valve_state(config: Config, value: str, entity: Entity) -> Update | None:
    state_payload: Any = value
    position_payload: Any = value
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        required = "position" if config["reports_position"] else "state"
        if required not in document:
            raise ValueError(f"the JSON state has no {required!r}")
        state_payload, position_payload = document.get("state"), document.get("position")
    if not config["reports_position"]:
        return Update(state_from_table(config, str(state_payload), _STATES))
    return _position_update(config, state_payload, position_payload, entity)


def _position_update(
    config: Config, state_payload: Any, position_payload: Any, entity: Entity
) -> Update | None:
    if state_payload == PAYLOAD_NONE:
        return Update(attributes={"current_position": None})
    moving = {config["state_opening"]: "opening", config["state_closing"]: "closing"}.get(
        state_payload
    )
    if moving is not None and position_payload == state_payload:
        return Update(moving)  # a bare "opening"/"closing" payload carries no position
    percentage = position_percentage(config, position_payload)
    if moving is not None:
        state = moving
    elif percentage in (0, 100) or entity.state not in ("opening", "closing"):
        state = "closed" if percentage == 0 else "open"
    else:
        state = None  # still moving: Home Assistant keeps opening/closing until an end stop
    return Update(state, {"current_position": percentage})


KIND = ComponentKind(
    name="valve",
    component="valve",
    defaults={**OPEN_CLOSE_DEFAULTS, "reports_position": False},
    readers=(Reader("state_topic", "value_template", _valve_state),),
    commands={
        "open_valve": send("payload_open", template="command_template"),
        "close_valve": send("payload_close", template="command_template"),
        "stop_valve": send("payload_stop", template="command_template"),
        "set_valve_position": set_position("command_topic", "command_template", "reports_position"),
    },
    toggle=Toggle("close_valve", "open_valve", frozenset({"open", "opening"})),
    details=lambda config: {"reports_position": bool(config["reports_position"])},
)
