"""Property-based: Zigbee2MQTT payloads generated and mutated from the recorded ones (10,000
examples, several payloads each) through the adapter's handlers, in-process.

Invariants: no handler fails for any reason but a bad message (nothing is logged as an
error); the registry stays within its limits; every stored string is clean; no topic the
adapter subscribes to or commands is a wildcard; reading states, availability and events
publishes nothing, and a device list publishes only its bounded /get requests."""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from assistant.device_data import DeviceLimits, clean_text
from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import CommandNotSupportedError
from device_adapters.wire import is_exact_topic
from device_adapters.zigbee2mqtt.adapter import GET_REQUESTS_PER_LIST
from tests.adapter_support import ErrorLog, logged_errors
from tests.zigbee2mqtt_support import AVAILABILITY, DEVICES, GROUPS, STATES, Bridge

LIMITS = DeviceLimits(max_entities_per_source=40, max_list_items=12, max_text_chars=40,
                      max_attributes=8, max_config_bytes=4096, max_state_bytes=2048,
                      max_device_list_bytes=16384)
EXAMPLES = int(os.environ.get("Z2M_FUZZ_EXAMPLES", 10_000))
SUPPORTED = [d for d in DEVICES if d.get("definition")]
EVENTS = [
    ("bridge/state", "online"), ("bridge/state", {"state": "offline"}),
    ("bridge/event", {"type": "device_leave", "data": {
        "ieee_address": "0x000d6f000f8e2a04", "friendly_name": "front door"}}),
    ("bridge/response/device/rename", {"data": {"from": "front door", "to": "porch/door",
                                                "homeassistant_rename": False}, "status": "ok"}),
    ("bridge/response/group/rename", {"data": {"from": "hue lights", "to": "tv"},
                                      "status": "ok"}),
]
SERVICES = [
    ("turn_on", {"brightness": 128, "color_temp_kelvin": 3000}), ("turn_off", {}),
    ("toggle", {}), ("open_cover", {}), ("set_cover_position", {"position": 50}),
    ("lock", {}), ("set_temperature", {"temperature": 21, "hvac_mode": "heat"}),
    ("set_percentage", {"percentage": 40}), ("set_preset_mode", {"preset_mode": "smart"}),
]
WEIRD_TEXT = ["ON", "OFF", "LOCK", "OPEN", "online", "offline", "+", "#", "a/+/b", "x/set",
              "bridge/devices", "/", "", "\x00", "\u202e\u2028", "0x00158d0001e1a85a",
              "l1", "state_l1", "x" * 300]

SCALARS: list[Any] = [None, True, False, 0, -1, 1, 2**63, -(2**70), 1e308, -0.0, 0.5,
                      float("nan"), float("inf"), *WEIRD_TEXT]
VALUES: list[Any] = [*SCALARS, [], {}, ["ON"], {"state": "online"}, {"type": "binary"},
                     {"property": "state", "access": 7, "type": "binary", "value_on": "ON"}]
OPS = ("replace", "delete", "insert", "wrap")
RECORDS = [json.dumps(record) for record in SUPPORTED]  # parsed afresh: cheaper than deepcopy


def _slot(document: Any, rng: random.Random) -> tuple[Any, Any] | None:
    """A random (container, key) inside ``document``, found by a random walk down."""
    slot = None
    while isinstance(document, dict | list) and document:
        key = rng.choice(list(document)) if isinstance(document, dict) else \
            rng.randrange(len(document))
        slot, document = (document, key), document[key]
        if rng.random() < 0.3:
            break
    return slot


def _value(rng: random.Random) -> Any:
    if rng.random() < 0.2:  # a fresh string with the characters that matter
        return "".join(rng.choice("aZ0_/+#. \x00\u202e\ud800é") for _ in range(rng.randint(0, 8)))
    return copy.copy(rng.choice(VALUES))


def mutate(document: Any, rng: random.Random) -> Any:
    """``document`` (already a fresh copy) with a few values replaced, removed, wrapped or
    added at random places."""
    for _ in range(rng.randint(0, 4)):
        slot = _slot(document, rng)
        if slot is None:
            return _value(rng)
        container, key = slot
        op = rng.choice(OPS)
        if op == "replace":
            container[key] = _value(rng)
        elif op == "delete":
            del container[key]
        elif op == "wrap":
            container[key] = [container[key]] if rng.random() < 0.5 else {"value": container[key]}
        elif isinstance(container, dict):
            container[str(_value(rng))[:20]] = _value(rng)
        else:
            container.insert(key, _value(rng))
    return document


def encoded(document: Any, rng: random.Random) -> bytes:
    text = json.dumps(document)
    style = rng.random()
    if style < 0.08:
        return text[: len(text) // 2].encode()  # cut short
    if style < 0.12:
        return text.encode("utf-16")  # not UTF-8
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate is not UTF-8 either


def scenario(seed: int) -> list[tuple[str, bytes]]:
    """A devices list of one or two mutated records, maybe groups, then 1..3 messages: all
    drawn from ``seed`` (one cheap draw per example; shrinking still narrows the seed)."""
    rng = random.Random(seed)
    records = [json.loads(rng.choice(RECORDS)) for _ in range(rng.randint(1, 2))]
    devices = mutate(records, rng)
    messages = [("bridge/devices", encoded(devices, rng))]
    if rng.random() < 0.4:
        messages.append(("bridge/groups", encoded(mutate(copy.deepcopy(GROUPS), rng), rng)))
    names = [r.get("friendly_name") for r in (devices if isinstance(devices, list) else [])
             if isinstance(r, dict) and isinstance(r.get("friendly_name"), str)] or ["bulb"]
    for _ in range(rng.randint(1, 3)):
        name, kind = rng.choice(names), rng.choice(("state", "state", "availability", "event",
                                                     "bytes"))
        if kind == "state":
            base = STATES.get(name) or rng.choice(list(STATES.values()))
            messages.append((name, encoded(mutate(copy.deepcopy(base), rng), rng)))
        elif kind == "availability":
            payload = rng.choice([*AVAILABILITY.values(), *WEIRD_TEXT])
            body = payload.encode() if isinstance(payload, str) else encoded(payload, rng)
            messages.append((f"{name}/availability", body))
        elif kind == "event":
            topic, payload = rng.choice(EVENTS)
            messages.append((topic, encoded(mutate(copy.deepcopy(payload), rng), rng)))
        else:
            messages.append((name, rng.randbytes(rng.randint(0, 40))))
    return messages


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings_in(item)]
    return []


def check(bridge: Bridge, entity: Entity) -> None:
    for text in (entity.name, entity.state, *strings_in(entity.attributes),
                 *strings_in(entity.capabilities)):
        if text is not None:
            assert clean_text(text, LIMITS.max_text_chars * 4) == text, text
    offered = set(entity.capabilities.get("services") or ())
    for service, params in SERVICES:
        if service not in offered and service != "turn_on":
            continue  # refusals are cheap to prove once per entity, not nine times
        try:
            messages = bridge.adapter.encode(entity, EntityCommand(entity.entity_id, service,
                                                                   params))
        except CommandNotSupportedError:
            continue
        assert all(is_exact_topic(m.topic) and not m.retain for m in messages)


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    """What is logged at ERROR: a handler failing for another reason than a bad message
    (the intake's log.exception)."""
    with logged_errors() as log:
        yield log


@pytest.fixture(scope="module")
def counter() -> dict[str, int]:
    return {"examples": 0, "payloads": 0, "with_entities": 0, "reported": 0}


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(0, 2**64 - 1))
def test_mutated_payloads_keep_every_invariant(errors: ErrorLog, counter: dict[str, int],
                                               seed: int) -> None:
    messages = scenario(seed)
    bridge = Bridge(DeviceRegistry(None, LIMITS))
    for topic, payload in messages:
        before = len(bridge.broker.published)
        bridge.send(topic, payload)
        published = bridge.broker.published[before:]
        if topic != "bridge/devices":
            assert published == [], topic
        assert len(published) <= GET_REQUESTS_PER_LIST
        assert all(m.topic.endswith("/get") and is_exact_topic(m.topic) and not m.retain
                   for m in published)
    assert errors.records == []
    assert all(("+" not in t and "#" not in t) for t in bridge.broker.topics)
    entities = bridge.registry.all_entities()
    assert len(entities) <= LIMITS.max_entities_per_source
    for entity in entities:
        check(bridge, entity)
    counter["examples"] += 1
    counter["payloads"] += len(messages)
    counter["with_entities"] += bool(entities)
    counter["reported"] += any(e.state is not None for e in entities)


def test_the_fuzz_ran_ten_thousand_examples(counter: dict[str, int]) -> None:
    assert counter["examples"] >= 10_000
    assert counter["payloads"] >= 20_000
    # The mutations must leave most lists usable, or the handlers past parsing go untested.
    assert counter["with_entities"] >= counter["examples"] // 2
    assert counter["reported"] >= counter["examples"] // 10
