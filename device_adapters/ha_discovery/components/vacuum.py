"""vacuum (state schema): a JSON state with state, battery_level and fan_speed; commands
offered as their ``supported_features`` entry says."""

from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import ComponentKind, Reader, Update
from device_adapters.ha_discovery.components.shared import send
from device_adapters.ha_discovery.vocabulary import Config
from device_adapters.wire import parse_json_object

_STATES = frozenset({"cleaning", "docked", "paused", "idle", "returning", "error"})


def _vacuum_state(config: Config, value: str, entity: Entity) -> Update:
    document = parse_json_object(value)
    state = document.get("state")
    if state is not None and state not in _STATES:
        raise ValueError(f"unexpected vacuum state {str(state)[:80]!r}")
    attributes = {key: document[key] for key in ("battery_level", "fan_speed") if key in document}
    return Update(state, attributes)


KIND = ComponentKind(
    name="vacuum",
    component="vacuum",
    defaults={
        "payload_pause": "pause",
        "payload_return_to_base": "return_to_base",
        "payload_start": "start",
        "payload_stop": "stop",
        "supported_features": ["start", "stop", "return_home", "battery", "clean_spot"],
    },
    readers=(Reader("state_topic", None, _vacuum_state),),
    commands={
        "vacuum_start": send("payload_start", feature="start"),
        "vacuum_pause": send("payload_pause", feature="pause"),
        "vacuum_stop": send("payload_stop", feature="stop"),
        "vacuum_return_to_base": send("payload_return_to_base", feature="return_home"),
    },
    details=lambda config: {"fan_speed_list": config["fan_speed_list"]}
    if config.get("fan_speed_list") else {},
)
