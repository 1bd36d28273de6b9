"""Device gateway: starts the protocol adapters on the MQTT link and routes entity commands
to the adapter that owns each entity."""

from __future__ import annotations

import logging
from collections.abc import Callable

from assistant.messages import EntityCommand, MqttMessage
from assistant.mqtt_link import MqttLink
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext, CommandNotSupportedError, DeviceAdapter

log = logging.getLogger(__name__)


class DeviceGateway:
    def __init__(self, registry: DeviceRegistry, link: MqttLink) -> None:
        self.registry = registry
        self.link = link
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

    async def send(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        """Encode every command first, so one that cannot be sent stops them all."""
        messages = [m for entity, command in commands for m in self.encode(entity, command)]
        for message in messages:
            log.info("command -> %s %s", message.topic, message.payload[:200])
            self.link.publish(message)
