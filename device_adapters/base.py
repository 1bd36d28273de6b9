"""What every protocol adapter provides.

An adapter turns wire messages into registry entities and states, and entity commands back
into wire messages. It never talks to the broker directly: it subscribes and publishes
through the context it is started with, so the MQTT link stays the one owner of the socket.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

# CommandNotSupportedError is what encode() raises: part of the contract, named here too.
from assistant.messages import CommandNotSupportedError, EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity

__all__ = ["AdapterContext", "CommandNotSupportedError", "DeviceAdapter", "ReportWait"]

MessageHandler = Callable[[MqttMessage], None]
Unsubscribe = Callable[[], None]


@dataclass(frozen=True)
class AdapterContext:
    registry: DeviceRegistry
    # subscribe(topic_filter, handler) -> unsubscribe; handlers run on the event loop.
    subscribe: Callable[[str, MessageHandler], Unsubscribe]
    # publish(message): queued while the broker is unreachable.
    publish: Callable[[MqttMessage], None]


@dataclass(frozen=True)
class ReportWait:
    """How long a reply waits for devices to report the state a command asked for, and
    which devices report at all (``reports_state``; optimistic ones do not)."""

    timeout_s: float
    reports_state: Callable[[Entity], bool]


class DeviceAdapter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def start(self, context: AdapterContext) -> Callable[[], None]:
        """Subscribe to the adapter's topics; returns the function that stops it."""

    @abstractmethod
    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        """Wire messages that make ``entity`` carry out ``command``."""

    def reports_state(self, entity: Entity) -> bool:
        """Whether ``entity`` tells what it did; False for an optimistic device, which is
        assumed to obey and never confirms."""
        return True
