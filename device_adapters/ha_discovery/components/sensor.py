"""sensor: the (templated) state topic value as the state, up to 255 characters."""

from assistant.registry import Entity
from device_adapters.ha_discovery.components.kind import ComponentKind, Reader, Update
from device_adapters.ha_discovery.vocabulary import Config


def _sensor_state(config: Config, value: str, entity: Entity) -> Update:
    if len(value) > 255:
        raise ValueError("a sensor state longer than 255 characters")
    return Update(value)


KIND = ComponentKind(
    name="sensor",
    component="sensor",
    required=("state_topic",),
    readers=(Reader("state_topic", "value_template", _sensor_state),),
    details=lambda config: {
        option: config[option] for option in ("unit_of_measurement", "state_class")
        if config.get(option)
    },
)
