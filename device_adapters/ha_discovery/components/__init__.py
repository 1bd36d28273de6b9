"""The component kinds the adapter reads: one module each, registered in :data:`KINDS`.

A kind is one :class:`~.kind.ComponentKind` declaration (defaults, required options, state
readers, command encoders, capabilities); adding one is a new module and a line here. Not
read (yet): ``schema: template`` lights and the other platforms (number, select, text,
event, update, ...); their configs are ignored with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from device_adapters.ha_discovery.components import (
    alarm_control_panel,
    binary_sensor,
    button,
    climate,
    cover,
    fan,
    light,
    light_json,
    lock,
    media_player,
    scene,
    sensor,
    switch,
    vacuum,
    valve,
)
from device_adapters.ha_discovery.components.kind import ComponentKind
from device_adapters.ha_discovery.vocabulary import MalformedConfigError

KINDS: tuple[ComponentKind, ...] = (
    alarm_control_panel.KIND,
    binary_sensor.KIND,
    button.KIND,
    climate.KIND,
    cover.KIND,
    fan.KIND,
    light.KIND,
    light_json.KIND,
    lock.KIND,
    media_player.KIND,
    scene.KIND,
    sensor.KIND,
    switch.KIND,
    vacuum.KIND,
    valve.KIND,
)

_BY_COMPONENT: dict[str, tuple[ComponentKind, ...]] = {
    component: tuple(kind for kind in KINDS if kind.component == component)
    for component in dict.fromkeys(kind.component for kind in KINDS)
}

SUPPORTED_COMPONENTS = frozenset(_BY_COMPONENT)


def kind_for(component: str, config: Mapping[str, Any]) -> ComponentKind:
    """The kind a config of ``component`` describes (a light's by its ``schema``)."""
    kinds = _BY_COMPONENT.get(component)
    if kinds is None:
        raise MalformedConfigError(f"component {component!r} is not supported")
    if len(kinds) == 1 and not kinds[0].schemas:
        return kinds[0]
    schema = config.get("schema", next(iter(kinds[0].schemas)))
    for kind in kinds:
        if schema in kind.schemas:
            return kind
    raise MalformedConfigError(f"{component} schema {str(schema)[:40]!r} is not supported")
