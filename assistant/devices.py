"""Device gateway: starts the protocol adapters on the MQTT link and routes entity commands
to the adapter that owns each entity."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from assistant.messages import EntityCommand, MqttMessage
from assistant.transport.mqtt_link import MqttLink
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import redact_text
from device_adapters.base import AdapterContext, CommandNotSupportedError, DeviceAdapter

log = logging.getLogger(__name__)


class DeviceGateway:
    """``is_sensitive``: commands to these entities go out now or never; they are not queued
    while the broker is away nor re-sent after a reconnect, since the user's yes was for now.
    Without it every command is treated so."""

    def __init__(self, registry: DeviceRegistry, link: MqttLink, *,
                 is_sensitive: Callable[[Entity], bool] = lambda _entity: True) -> None:
        self.registry = registry
        self.link = link
        self._is_sensitive = is_sensitive
        self._adapters: dict[str, DeviceAdapter] = {}

    def add_adapter(self, adapter: DeviceAdapter) -> Callable[[], None]:
        """Start ``adapter``; returns the function that stops and removes it."""
        if adapter.name in self._adapters:
            raise ValueError(f"adapter {adapter.name!r} is already running")
        context = AdapterContext(self.registry, self.link.subscribe, self.link.publish)
        stop = adapter.start(context)
        self._adapters[adapter.name] = adapter

        def remove() -> None:
            if self._adapters.pop(adapter.name, None) is not None:
                stop()

        return remove

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        adapter = self._adapters.get(entity.source)
        if adapter is None:
            raise CommandNotSupportedError(
                f"the {entity.name} comes from {entity.source or 'an unknown source'}, "
                "which is not running")
        return adapter.encode(entity, command)

    def reports_state(self, entity: Entity) -> bool:
        """Whether the entity's adapter hears back from it (optimistic devices do not)."""
        adapter = self._adapters.get(entity.source)
        return adapter is not None and adapter.reports_state(entity)

    async def send(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        """Encode every command first, so one that cannot be sent stops them all."""
        encoded = [(entity, command, message) for entity, command in commands
                   for message in self.encode(entity, command)]
        for entity, command, message in encoded:
            if self._is_sensitive(entity):
                message = dataclasses.replace(message, resend=False)
            shown = redact_text(message.payload[:200].decode("utf-8", "replace"), command.params)
            log.info("command -> %s %s", message.topic, shown)
            self.link.publish(message)
