"""cover: state_* payloads and/or a position topic; open, close, stop and set_position.
Left out: tilt."""

import json

from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import (
    ComponentKind, Reader, Toggle, Update
)
from device_adapters.ha_discovery.components.shared import (
    position_percentage, send, set_position, state_from_table
)
from device_adapters.ha_discovery.vocabulary import Config

# Home Assistant's defaults that valves share with covers.
OPEN_CLOSE_DEFAULTS = {
    "payload_open": "OPEN",
    "payload_close": "CLOSE",
    "position_open": 100,
    "position_closed": 0,
    "state_open": "open",
    "state_opening": "opening",
    "state_closed": "closed",
    "state_closing": "closing",
}
STATES = {
    "state_open": "open",
    "state_opening": "opening",
    "state_closed": "closed",
    "state_closing": "closing",
    "state_stopped": "stopped",
}


def _cover_state(config: Config, value: str, entity: Entity) -> Update:
    state = state_from_table(config, value, STATES)
    if state == "stopped":  # Home Assistant shows a stopped cover as open or closed
        position = entity.attributes.get("current_position")
        if config.get("position_topic") and position is not None:
            state = "closed" if position == 0 else "open"
        else:
            state = "closed" if entity.state in ("closed", "closing") else "open"
    return Update(state)


def _cover_position(config: Config, value: str, entity: Entity) -> Update:
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict):
        value = str(document["position"])
    percentage = position_percentage(config, value)
    state = None if config.get("state_topic") else ("closed" if percentage == 0 else "open")
    return Update(state, {"current_position": percentage})


KIND = ComponentKind(
    name="cover",
    component="cover",
    defaults={**OPEN_CLOSE_DEFAULTS, "payload_stop": "STOP", "state_stopped": "stopped"},
    readers=(
        Reader("state_topic", "value_template", _cover_state),
        Reader("position_topic", "position_template", _cover_position),
    ),
    commands={
        "open_cover": send("payload_open"),
        "close_cover": send("payload_close"),
        "stop_cover": send("payload_stop"),
        "set_cover_position": set_position("set_position_topic", "set_position_template"),
    },
    toggle=Toggle("close_cover", "open_cover", frozenset({"open", "opening"})),
    details=lambda config: {"reports_position": bool(config.get("position_topic"))},
)
