"""What every protocol adapter provides.

An adapter turns wire messages into registry entities and states, and entity commands back
into wire messages. It never talks to the broker directly: it subscribes and publishes
through the context it is started with, so the MQTT link stays the one owner of the socket.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

# CommandNotSupportedError is what encode() raises: part of the contract, named here too.
from assistant.messages import CommandNotSupportedError, EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity, normalize_name
from device_adapters.intake import Intake

__all__ = ["AdapterContext", "CommandNotSupportedError", "DeviceAdapter", "ReportWait",
           "Running", "Subscriptions", "feature_name", "words_in"]

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


class Running:
    """One start of an adapter: its context, its intake, and every subscription it holds.
    ``stop`` ends those subscriptions, then runs what ``on_stop`` registered."""

    def __init__(self, adapter: str, context: AdapterContext) -> None:
        self.source = adapter  # the entities' source: the adapter's name
        self.registry = context.registry
        self.publish = context.publish
        self.intake = Intake(adapter, lambda: context.registry.limits)
        self.stopped = False
        self._subscribe = context.subscribe
        self._ids = itertools.count()
        self._subscriptions: dict[int, Unsubscribe] = {}  # live ones only: churn cannot grow it
        self._on_stop: list[Callable[[], None]] = []

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> Unsubscribe:
        """Subscribe ``handler``, guarded by the intake (nothing it raises reaches the link),
        until the returned function or the stop ends it."""
        if self.stopped:
            raise RuntimeError(f"the {self.source} adapter is stopped")
        key = next(self._ids)
        self._subscriptions[key] = self._subscribe(topic_filter, self.intake.handler(handler))
        return partial(self._unsubscribe, key)

    def _unsubscribe(self, key: int) -> None:
        unsubscribe = self._subscriptions.pop(key, None)
        if unsubscribe is not None:
            unsubscribe()

    def subscriptions(self) -> Subscriptions:
        """A new, empty group of subscriptions that end together (one device's topics)."""
        return Subscriptions(self)

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._on_stop.append(callback)

    def remove_entity(self, entity_id: str) -> None:
        """Remove ``entity_id`` if this adapter owns it: never another adapter's entity."""
        existing = self.registry.get_any(entity_id)
        if existing is not None and existing.source == self.source:
            self.registry.remove(entity_id)

    def stop(self) -> None:
        self.stopped = True
        subscriptions, self._subscriptions = self._subscriptions, {}
        for unsubscribe in subscriptions.values():
            unsubscribe()
        for callback in self._on_stop:
            callback()


class Subscriptions:
    """Subscriptions made through one :class:`Running` that end together; its stop ends
    them too. False while it holds none."""

    def __init__(self, running: Running) -> None:
        self._running = running
        self._unsubscribes: list[Unsubscribe] = []

    def add(self, topic_filter: str, handler: MessageHandler) -> None:
        self._unsubscribes.append(self._running.subscribe(topic_filter, handler))

    def close(self) -> None:
        while self._unsubscribes:
            self._unsubscribes.pop(0)()

    def __bool__(self) -> bool:
        return bool(self._unsubscribes)


class DeviceAdapter(ABC):
    name: ClassVar[str]
    _current: Running | None = None

    def start(self, context: AdapterContext) -> Callable[[], None]:
        """Subscribe to the adapter's topics (``_started``); returns the function that stops
        this start. It does its work once, and nothing once the adapter is started again."""
        running = self._current = Running(self.name, context)
        try:
            self._started(running)
        except BaseException:
            self._stop(running)
            raise
        return partial(self._stop, running)

    def _stop(self, running: Running) -> None:
        if self._current is running:
            running.stop()
            self._current = None

    @abstractmethod
    def _started(self, running: Running) -> None:
        """Make the adapter's first subscriptions on ``running``, and register with
        ``running.on_stop`` what clears the adapter's state when it stops."""

    @property
    def _running(self) -> Running:
        if self._current is None:
            raise RuntimeError(f"the {self.name} adapter is not started")
        return self._current

    @property
    def _registry(self) -> DeviceRegistry:
        return self._running.registry

    @property
    def _intake(self) -> Intake:
        return self._running.intake

    @abstractmethod
    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        """Wire messages that make ``entity`` carry out ``command``."""

    def reports_state(self, entity: Entity) -> bool:
        """Whether ``entity`` tells what it did; False for an optimistic device, which is
        assumed to obey and never confirms."""
        return True


def words_in(part: str, whole: str) -> bool:
    """Whether ``part``'s words stand, in order, within ``whole``'s."""
    return f" {normalize_name(part)} " in f" {normalize_name(whole)} "


def feature_name(device: str, feature: str | None) -> str:
    """What one feature of a device is called: the device's name, followed by the
    feature's unless the device's name already says it ("Living Room Temperature", not
    "Living Room Temperature Temperature")."""
    if not feature or words_in(feature, device):
        return device
    return f"{device} {feature}"
