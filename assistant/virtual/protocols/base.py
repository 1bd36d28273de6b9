"""What every protocol front end of the virtual home provides.

A front end presents some of the home's devices in one protocol: what it publishes when
the simulator connects (announcements, availability, states), what it publishes after a
device changed, and how a message in its protocol becomes an operation on a device model.
Front ends run in paho's network thread, always under the home's lock; they never touch
the broker themselves: they return ``Publication``s and ``Reaction``s and the home sends.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.models import Device, EntityState

# Why a message was refused: the home logs these as "ignored a malformed command".
MALFORMED = (ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: str | bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a message asks for: a change of ``device`` (None: only an answer), then the
    ``reply`` messages, built after the change (an RPC result, a command's echo)."""

    device: Device | None
    change: Callable[[Device], EntityState] | None = None
    reply: Callable[[], list[Publication]] = field(default=lambda: [])


@dataclass(frozen=True, slots=True)
class PresentedOn:
    """Where one fixture entity went: its protocol and how an adapter knows the device
    (protocol-neutral device ids as the registry spells them, and a native id)."""

    protocol: str
    device_ids: tuple[str, ...]
    native_id: str


def reading(state: Any) -> float | None:
    """A sensor's state as a number; None when it is none (unknown, text)."""
    try:
        return float(state)
    except (TypeError, ValueError):
        return None


def stable_hex(text: str, digits: int) -> str:
    """``digits`` hex digits that depend on ``text`` only (addresses, ids)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


class FrontEnd(ABC):
    """One protocol's view of the devices given to it with ``add``."""

    name: ClassVar[str]  # as in --protocols and in eval reports
    domains: ClassVar[frozenset[str]]  # the domains it can express

    def __init__(self, home: HomeSpec, base_topic: str) -> None:
        self.home = home
        self.base_topic = base_topic  # the simulator's own; ids derive from it
        self.devices: list[Device] = []

    @classmethod
    def can_present(cls, spec: VirtualEntitySpec) -> bool:
        return spec.domain in cls.domains

    def add(self, device: Device) -> None:
        self.devices.append(device)

    def key(self, text: str) -> str:
        """16 hex digits unique to this simulator and ``text``, for addresses and ids."""
        return stable_hex(f"{self.base_topic}/{text}", 16)

    def device_key(self, device: Device) -> str:
        return self.key(device.spec.entity_id)

    @abstractmethod
    def subscriptions(self) -> list[str]:
        """Topic filters for the commands it takes."""

    @abstractmethod
    def announce(self) -> list[Publication]:
        """Everything it publishes on (re)connecting: descriptions, availability, states."""

    @abstractmethod
    def state_messages(self, device: Device) -> list[Publication]:
        """What it publishes after ``device`` changed (and on reset)."""

    @abstractmethod
    def availability_messages(self, device: Device) -> list[Publication]:
        """What it publishes when ``device`` lost or got back its power."""

    @abstractmethod
    def handle(self, topic: str, payload: bytes) -> Reaction | None:
        """The reaction to a (non-retained) message; None when the topic is not its.
        Raises one of MALFORMED for a message it refuses."""

    @abstractmethod
    def farewell(self) -> list[Publication]:
        """What it publishes on a clean stop: its retained topics cleared (or offline)."""

    @abstractmethod
    def presented_on(self, device: Device) -> PresentedOn:
        """How an adapter knows ``device``."""


def retained_clears(topics: Iterable[str]) -> list[Publication]:
    return [Publication(topic, b"") for topic in topics]
