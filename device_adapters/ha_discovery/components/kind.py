"""What a component kind is: one declaration of everything the adapter knows about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import Entity
from device_adapters.ha_discovery.vocabulary import (
    Config, MalformedConfigError, check_effective, check_wire, coerce_numbers
)


@dataclass(frozen=True, slots=True)
class Update:
    """What one state message changes: the state, attributes, or both."""

    state: str | None = None
    attributes: Config = field(default_factory=dict)


StateApplier = Callable[[Config, str, Entity], Update | None]


@dataclass(frozen=True, slots=True)
class Reader:
    """What one state topic means: its option, the template option, and how to apply it."""

    topic: str
    template: str | None
    apply: StateApplier


@dataclass(frozen=True, slots=True)
class Request:
    entity: Entity
    config: Config  # the entity's wire config with defaults
    params: Mapping[str, Any]


def is_absent(value: Any) -> bool:
    return value is None or value is False  # not 0 or "": a payload of 0 is a real payload


@dataclass(frozen=True, slots=True)
class Command:
    """How to encode one service, and what the config must offer for the entity to have it."""

    encode: Callable[[Request], list[MqttMessage]]
    requires: tuple[str, ...] = ()
    feature: str | None = None  # entry needed in supported_features (alarm, vacuum)

    def missing(self, config: Mapping[str, Any]) -> str | None:
        absent = [option for option in self.requires if is_absent(config.get(option))]
        if absent:
            return "it has no " + ", ".join(absent)
        if self.feature and self.feature not in config.get("supported_features", ()):
            return f"{self.feature!r} is not in its supported_features"
        return None


@dataclass(frozen=True, slots=True)
class Toggle:
    """``toggle`` as the service for the current state."""

    when_on: str
    when_off: str
    on_states: frozenset[str]

    def service(self, state: str | None) -> str:
        return self.when_on if state in self.on_states else self.when_off


@dataclass(frozen=True)
class ComponentKind:
    """One kind of entity (a component, or a light schema): Home Assistant's defaults for its
    options, what it needs, how its state topics read, how its services encode, and what it
    tells about itself as capabilities."""

    name: str  # "light_json" for a light with schema: json; else the component
    component: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # options whose default is another option's value (a switch reports what it is sent)
    derived_defaults: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    readers: tuple[Reader, ...] = ()
    commands: Mapping[str, Command] = field(default_factory=dict)
    toggle: Toggle | None = None
    details: Callable[[Mapping[str, Any]], Config] | None = None  # capabilities beyond services
    aliases: Mapping[str, str] = field(default_factory=dict)  # other spellings of options
    schemas: tuple[str, ...] = ()  # the light schemas this kind reads, the default first
    check: Callable[[Config], None] | None = None  # kind-specific rules on the effective config

    def effective(self, wire: Mapping[str, Any]) -> Config:
        """The wire config with Home Assistant's defaults filled in and numbers coerced."""
        config = {**self.defaults, **wire}
        for option, source in self.derived_defaults.items():
            if config.get(option) is None:
                config[option] = config.get(source)
        return coerce_numbers(config)

    def validate(self, wire: Mapping[str, Any]) -> None:
        """Raise MalformedConfigError unless ``wire`` describes a usable entity."""
        for option in self.required:
            if not wire.get(option):
                raise MalformedConfigError(f"{self.name} needs {option}")
        check_wire(wire)
        try:
            effective = self.effective(wire)
        except (TypeError, ValueError) as error:
            raise MalformedConfigError(f"bad number: {error}") from None
        check_effective(effective)
        if self.check is not None:
            self.check(effective)

    def capabilities(self, config: Mapping[str, Any]) -> Config:
        """What the entity can do: the services its config offers plus kind-specific details."""
        services = {
            service for service, command in self.commands.items()
            if command.missing(config) is None
        }
        if self.toggle and {self.toggle.when_on, self.toggle.when_off} <= services:
            services.add("toggle")
        return {"services": sorted(services), **(self.details(config) if self.details else {})}

    def reports_state(self, wire: Mapping[str, Any]) -> bool:
        """Home Assistant's optimistic rule: no state topic of this kind, or ``optimistic:
        true``, means the device never confirms a command."""
        if wire.get("optimistic") is True:
            return False
        return any(not is_absent(wire.get(reader.topic)) for reader in self.readers)
