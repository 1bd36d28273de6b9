"""Shared by the protocol adapters' tests: an in-process broker at the adapter's boundary,
the fuzz tests' error log and invariants, and an adapter on the real MQTT link and device
gateway (against the session's Mosquitto)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any

from assistant.config import MqttConfig
from assistant.device_data import DeviceLimits
from assistant.devices import DeviceGateway
from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry, Entity
from assistant.transport.mqtt_link import MqttLink
from device_adapters.base import DeviceAdapter
from tests.conftest import Broker

Handler = Callable[[MqttMessage], None]
Payload = str | bytes | dict[str, Any] | list[Any]


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (paho's topic_matches_sub, which is too slow for the fuzz)."""
    levels = topic.split("/")
    for index, level in enumerate(topic_filter.split("/")):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(levels) == len(topic_filter.split("/"))


def _is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


class FakeBroker:
    """The adapter's side of a broker, in-process: subscriptions by filter, delivery to the
    matching ones, what is published.

    ``routed``: the only wildcard filters that hear anything (None: all of them), so a
    wildcard subscription an adapter should not make never hears a message. ``retained``:
    the last payload of each topic is kept and sent to a new subscription that matches."""

    def __init__(self, routed: Collection[str] | None = None, *, retained: bool = False
                 ) -> None:
        self.subscriptions: dict[str, list[Handler]] = {}
        self.published: list[MqttMessage] = []
        self.retained: dict[str, bytes] | None = {} if retained else None
        self._routed = routed

    def subscribe(self, topic_filter: str, handler: Handler) -> Callable[[], None]:
        self.subscriptions.setdefault(topic_filter, []).append(handler)
        for topic, payload in list((self.retained or {}).items()):
            if matches(topic_filter, topic):
                handler(MqttMessage(topic, payload, retain=True))
        return lambda: self.subscriptions[topic_filter].remove(handler)

    def publish(self, message: MqttMessage) -> None:
        self.published.append(message)

    @property
    def topics(self) -> set[str]:
        """The filters subscribed to now."""
        return {topic for topic, handlers in self.subscriptions.items() if handlers}

    def deliver(self, topic: str, payload: Payload) -> int:
        """Hand a message to the subscriptions that hear it; how many handlers did."""
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        if self.retained is not None:
            self.retained[topic] = data
            if not data:  # an empty retained message clears the topic
                del self.retained[topic]
        filters = [topic, *(f for f in list(self.subscriptions) if _is_wildcard(f) and (
            self._routed is None or f in self._routed) and matches(f, topic))]
        heard = 0
        for topic_filter in filters:
            for handler in list(self.subscriptions.get(topic_filter, ())):
                handler(MqttMessage(topic, data, retain=True))
                heard += 1
        return heard


# -- the fuzz tests' error log and invariants ---------------------------------------------------


class ErrorLog(logging.Handler):
    """Errors logged by this test's own thread: threads earlier tests left behind (a
    registry writer, a paho loop) must not fail the fuzzing."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@contextlib.contextmanager
def logged_errors(*quiet: str) -> Iterator[ErrorLog]:
    """The errors logged meanwhile, by any logger; the adapters', the registry's and
    ``quiet``'s warnings (thousands, expected) are not even formatted."""
    handler = ErrorLog()
    loggers = [logging.getLogger(name)
               for name in ("device_adapters", "assistant.registry", *quiet)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


DELETE = object()  # a mutation's value that removes the key instead
Mutation = tuple[tuple[str, ...], Any]  # (path of keys, new value or DELETE)


def leaves(value: Any) -> list[Any]:
    """Every value inside a recorded document, nested ones too: real values to put where
    they do not belong."""
    found = [value]
    for item in value.values() if isinstance(value, dict) else value if isinstance(
            value, list) else ():
        found += leaves(item)
    return found


def mutated(document: Any, mutations: list[Mutation]) -> Any:
    """A copy of the JSON ``document`` with each path set to its value (or removed);
    missing or non-object levels on the way become objects."""
    document = json.loads(json.dumps(document))
    for path, value in mutations:
        node = document
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is DELETE:
            node.pop(path[-1], None)
        else:  # a copy: a pooled value must never be changed in place
            node[path[-1]] = copy.deepcopy(value)
    return document


# What clean_text removes besides control characters: line and paragraph separators and
# the bidirectional controls that reorder what a reader sees.
UNCLEAN = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def assert_exact_topic(topic: str) -> None:
    assert topic.strip("/") and not any(c in topic for c in "+#\x00"), topic


def assert_clean(text: str, limit: int) -> None:
    """Non-empty text of at most ``limit`` characters, with no control character, lone
    surrogate, separator or bidirectional control."""
    assert isinstance(text, str) and 0 < len(text) <= limit, text
    assert not any(unicodedata.category(c) in ("Cc", "Cs") or c in UNCLEAN for c in text), text


def assert_bounded(value: Any, limits: DeviceLimits) -> None:
    """A stored attribute or capability value: clean strings, lists and maps within
    ``max_list_items``, finite floats, integers that fit 64 bits."""
    if isinstance(value, str):
        assert_clean(value, limits.max_text_chars)
    elif isinstance(value, list | dict):
        assert len(value) <= limits.max_list_items
        for item in value.values() if isinstance(value, dict) else value:
            assert_bounded(item, limits)
    elif isinstance(value, float):
        assert value == value and abs(value) != float("inf")
    elif isinstance(value, int) and not isinstance(value, bool):
        assert abs(value) < 2**63
    else:
        assert value is None or isinstance(value, bool)


def assert_entity_bounded(entity: Entity, limits: DeviceLimits) -> None:
    """An entity's state, attributes and capabilities within ``limits``, and storable."""
    if entity.state is not None:
        assert_clean(entity.state, limits.max_text_chars)
    assert len(entity.attributes) <= limits.max_attributes
    for key, value in entity.attributes.items():
        assert_clean(key, limits.max_text_chars)
        assert_bounded(value, limits)
        if isinstance(value, list | dict):
            assert len(json.dumps(value)) <= limits.max_value_chars
    for value in entity.capabilities.values():
        assert_bounded(value, limits)
    entity.model_dump_json()  # storable: the registry persists it as JSON


# -- an adapter on the real MQTT link and gateway --------------------------------------------

TIMEOUT_S = 15  # each awaited broker round trip or registry change


@contextlib.asynccontextmanager
async def hub(broker: Broker, adapter: DeviceAdapter, name: str, *, sensitive: bool = False
              ) -> AsyncIterator[tuple[DeviceRegistry, DeviceGateway]]:
    """``adapter`` on a real MqttLink (client id and base topic ``name``) and DeviceGateway,
    once the link is connected; ``sensitive``: every command is treated as sensitive (not
    queued nor re-sent), as the gateway does by default."""
    link = MqttLink(MqttConfig(host=broker.host, port=broker.port, client_id=name,
                               base_topic=name))
    registry = DeviceRegistry(None)
    gateway = DeviceGateway(registry, link, is_sensitive=lambda _entity: sensitive)
    remove = gateway.add_adapter(adapter)
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(TIMEOUT_S)
        yield registry, gateway
    finally:
        remove()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def registry_until(registry: DeviceRegistry, condition: Callable[[], bool],
                         timeout: float = TIMEOUT_S) -> None:
    """Wait for a registry change after which ``condition`` holds (at once if it does)."""
    changed = asyncio.Event()
    unsubscribe = registry.subscribe(lambda _change: changed.set())
    try:
        async def wait() -> None:
            while not condition():
                changed.clear()
                await changed.wait()
        await asyncio.wait_for(wait(), timeout)
    finally:
        unsubscribe()
