"""Virtual home: a houseful of simulated MQTT devices, each speaking a chosen protocol.

Used by the zero-setup demo, by the evaluation harness and by tests. The home comes from a
fixture (``assistant.virtual.fixtures``), every entity behaves like a real device
(``assistant.virtual.models``) and announces itself, obeys commands and reports its state in
its protocol (``assistant.virtual.protocols``): Home Assistant MQTT discovery by default;
with ``protocols="mixed"`` the devices are spread over Zigbee2MQTT, Tasmota, Shelly Gen2+,
Homie v5 and HA discovery. The simulator's own state table (``states()``) uses Home
Assistant state semantics whatever the wire, so a harness can compare it with a dataset's
``expect_changes``.

Threading: paho runs its network loop in its own thread and calls back there. The device
logic runs in that thread too, behind one lock shared with the asyncio side (``reset``,
``states``); nothing touches the event loop from paho's thread except through
``call_soon_threadsafe``. One MQTT connection carries every front end; its last will is
HA discovery's ``<base>/availability`` (the native front ends' own offline messages go out
on a clean stop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from assistant.registry import Entity
from assistant.virtual.fixtures import (
    AreaSpec,
    DeviceSpec,
    FloorSpec,
    HomeSpec,
    VirtualEntitySpec,
    demo_home,
    load_home,
    normalise_attributes,
    normalise_state,
)
from assistant.virtual.models import ChangeCause, Device, EntityState, StateChange, model_for
from assistant.virtual.protocols import (
    NativeTopics,
    ProtocolChoice,
    assign_protocols,
    native_front_ends,
)
from assistant.virtual.protocols.base import (
    MALFORMED,
    FrontEnd,
    PresentedOn,
    Publication,
    Reaction,
)
from assistant.virtual.protocols.ha_discovery import (
    DEFAULT_DISCOVERY_PREFIX,
    HaDiscoveryFrontEnd,
    OFFLINE,
    QOS,
)

log = logging.getLogger(__name__)

__all__ = [
    "AreaSpec",
    "DeviceSpec",
    "EntityState",
    "FloorSpec",
    "HomeSpec",
    "NativeTopics",
    "PresentedOn",
    "StateChange",
    "VirtualEntitySpec",
    "VirtualHome",
    "demo_home",
    "load_home",
]

DEFAULT_BASE_TOPIC = "virtual-home"
ACK_TIMEOUT_S = 5.0
CHANGE_LOG_SIZE = 10_000

_Announced = tuple[mqtt.ReasonCode, list[mqtt.MQTTMessageInfo]]


class VirtualHome:
    """Simulated MQTT devices for every entity of ``spec``.

    ``protocols``: "ha" (every device on HA discovery), "mixed" (spread over every
    protocol that can present them), one protocol's name (everything it can present on
    it), or {entity id or fixture device id: protocol}; what a protocol cannot present
    stays on HA discovery. ``native`` names the native protocols' topic roots.
    """

    def __init__(
        self,
        spec: HomeSpec,
        host: str,
        port: int,
        discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX,
        base_topic: str = DEFAULT_BASE_TOPIC,
        protocols: ProtocolChoice = "ha",
        native: NativeTopics | None = None,
    ) -> None:
        self.spec = spec
        self._host, self._port = host, port
        self.base_topic = base_topic.strip("/")
        self._lock = threading.Lock()
        self._devices = {entity.entity_id: Device(entity, model_for(entity.domain))
                         for entity in spec.entities}
        for device in self._devices.values():
            device.state = self._initial_state(device)
        self._ha = HaDiscoveryFrontEnd(spec, self.base_topic, discovery_prefix)
        front_ends = {self._ha.name: self._ha,
                      **native_front_ends(spec, self.base_topic, native or NativeTopics())}
        published = [d.spec for d in self._devices.values() if d.model.published]
        self._protocol_of = assign_protocols(spec, published, protocols)
        for entity_id, protocol in self._protocol_of.items():
            front_ends[protocol].add(self._devices[entity_id])
        # HA discovery always runs: its availability topic is the simulator's last will.
        self._front_ends: list[FrontEnd] = [
            fe for fe in front_ends.values() if fe.devices or fe is self._ha]
        self._front_end_of = {device.spec.entity_id: fe for fe in self._front_ends
                              for device in fe.devices}
        self._changes: deque[StateChange] = deque(maxlen=CHANGE_LOG_SIZE)
        self._sequence = 0
        self._last_command_at = 0.0
        self._client: mqtt.Client | None = None

    # -- where each device went -------------------------------------------------------------

    @property
    def discovery_prefix(self) -> str:
        return self._ha.discovery_prefix

    @property
    def node_id(self) -> str:
        return self._ha.node_id

    @property
    def availability_topic(self) -> str:
        return f"{self.base_topic}/availability"

    def protocols(self) -> dict[str, str]:
        """{entity id: the protocol presenting it}; entities on no wire are not listed."""
        return dict(self._protocol_of)

    def presented_on(self) -> dict[str, PresentedOn]:
        """{entity id: its protocol and how an adapter knows the device}."""
        return {eid: fe.presented_on(self._devices[eid])
                for eid, fe in self._front_end_of.items()}

    def known_as(self, entities: Iterable[Entity]) -> dict[str, str]:
        """{fixture entity id: the id a hub gave it} among ``entities`` (a hub's registry),
        for the devices it has found. Native adapters name entities their own way: they
        are found by the device ids the wire told them (or their native id, for protocols
        without one), and of a device's entities the one of the fixture's domain."""
        entities = list(entities)
        by_id = {entity.entity_id: entity for entity in entities}
        found: dict[str, str] = {}
        for entity_id, where in self.presented_on().items():
            if where.protocol == "ha":
                if where.native_id in by_id:
                    found[entity_id] = where.native_id
                continue
            spec = self._devices[entity_id].spec
            token = _token(where.native_id)
            candidates = ([e for e in entities if set(e.device_ids) & set(where.device_ids)]
                          or [e for e in entities if token in _token(e.unique_id or "")
                              or token in _token(e.entity_id)])
            same_domain = [e for e in candidates if e.domain == spec.domain] or candidates
            if same_domain:
                best = min(same_domain, key=lambda e: (e.name != spec.name, e.entity_id))
                found[entity_id] = best.entity_id
        return found

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect, announce every device and publish its state; returns once the broker
        has all of it (and so also the command subscriptions, sent before)."""
        if self._client is not None:
            raise RuntimeError("the virtual home is already started")
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[_Announced] = loop.create_future()

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any,
                       reason: mqtt.ReasonCode, properties: Any) -> None:
            infos = [] if reason.is_failure else self._announce(client)
            with contextlib.suppress(RuntimeError):  # the loop may be gone on a late reconnect
                loop.call_soon_threadsafe(
                    lambda: connected.done() or connected.set_result((reason, infos)))

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"{self.node_id}-{uuid.uuid4().hex[:8]}")
        client.will_set(self.availability_topic, OFFLINE, qos=QOS, retain=True)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(0.5, 10)
        client.on_connect = on_connect
        client.on_message = self._on_message
        await asyncio.to_thread(client.connect, self._host, self._port, 30)
        client.loop_start()
        try:
            deadline = time.monotonic() + timeout_s
            reason, infos = await asyncio.wait_for(connected, timeout_s)
            if reason.is_failure:
                raise ConnectionError(f"the broker refused the virtual home: {reason}")
            await asyncio.to_thread(_wait_acknowledged, infos, deadline - time.monotonic())
        except BaseException:
            await asyncio.to_thread(_shut_down, client)
            raise
        self._client = client
        spread = {fe.name: len(fe.devices) for fe in self._front_ends if fe.devices}
        log.info("virtual home: %d devices on %s:%d under %s/ (%s)", len(self._devices),
                 self._host, self._port, self.base_topic,
                 ", ".join(f"{n} {name}" for name, n in spread.items()))

    async def stop(self) -> None:
        """Remove every device (empty retained configs and states) and disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        with self._lock:
            # The simulator's own availability last, after every front end's farewell.
            farewells = [m for fe in sorted(self._front_ends, key=lambda fe: fe is self._ha)
                         for m in fe.farewell()]
        infos = self._send(client, farewells)
        try:
            await asyncio.to_thread(_wait_acknowledged, infos, ACK_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as error:
            log.warning("virtual home: could not clear its retained topics: %s", error)
        await asyncio.to_thread(_shut_down, client)

    # -- what harnesses use -----------------------------------------------------------------

    def states(self) -> dict[str, EntityState]:
        with self._lock:
            return {entity_id: device.state for entity_id, device in self._devices.items()}

    def mark(self) -> int:
        """A marker for ``changes_since``: the sequence number of the latest change."""
        with self._lock:
            return self._sequence

    def changes_since(self, marker: int) -> list[StateChange]:
        with self._lock:
            return [change for change in self._changes if change.sequence > marker]

    async def reset(self, setup: Mapping[str, Mapping[str, Any] | None] | None = None,
                    timeout_s: float = ACK_TIMEOUT_S) -> int:
        """Back to the fixture state, overlaid with ``setup`` ({entity_id: {"state": ..,
        "attributes": {..}}}); returns once the broker acknowledged every new state, with
        the marker to pass to ``changes_since``."""
        client = self._require_client()
        setup = setup or {}
        for entity_id in setup.keys() - self._devices.keys():
            log.warning("virtual home: setup names unknown entity %s; ignored", entity_id)
        with self._lock:
            for device in self._devices.values():
                device.memory.clear()
                fixture = self._initial_state(device)
                entry = setup.get(device.spec.entity_id)
                new = self._apply_entry(device, fixture, entry) if entry else fixture
                self._record(device, new, "reset")
            messages: list[Publication] = []
            for entity_id, front_end in self._front_end_of.items():
                device = self._devices[entity_id]
                messages += front_end.state_messages(device)
                if not device.available:  # back on power, as in the fixture
                    device.available = True
                    messages += front_end.availability_messages(device)
            infos = self._send(client, messages)
            marker = self._sequence
        await asyncio.to_thread(_wait_acknowledged, infos, timeout_s)
        return marker

    async def wait_quiet(self, quiet_s: float = 0.3, timeout_s: float = 5.0) -> bool:
        """True once no command has arrived for ``quiet_s``; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            idle = time.monotonic() - self._last_command_at
            if idle >= quiet_s:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(quiet_s - idle, remaining))

    async def set_available(self, entity_id: str, available: bool,
                            timeout_s: float = ACK_TIMEOUT_S) -> None:
        """Take one device offline (or back online), as if it lost power."""
        client = self._require_client()
        with self._lock:
            device = self._devices[entity_id]
            device.available = available
            infos = self._send(
                client, self._front_end_of[entity_id].availability_messages(device))
        await asyncio.to_thread(_wait_acknowledged, infos, timeout_s)

    # -- internals --------------------------------------------------------------------------

    def _require_client(self) -> mqtt.Client:
        if self._client is None:
            raise RuntimeError("the virtual home is not started")
        return self._client

    @staticmethod
    def _send(client: mqtt.Client, messages: Iterable[Publication]) -> list[mqtt.MQTTMessageInfo]:
        return [client.publish(m.topic, m.payload, qos=QOS, retain=m.retain) for m in messages]

    def _initial_state(self, device: Device) -> EntityState:
        spec = device.spec
        return device.model.settle(device, spec.state, dict(spec.attributes))

    def _apply_entry(self, device: Device, base: EntityState,
                     entry: Mapping[str, Any]) -> EntityState:
        """``base`` overlaid with a setup entry; a position or brightness given without a
        state decides the state, as it would on a real device."""
        _, attributes = normalise_attributes(entry.get("attributes") or {})
        state = normalise_state(device.spec.domain, entry.get("state"))
        state = state or device.model.infer_state(attributes) or base.state
        return device.model.settle(device, state, {**base.attributes, **attributes})

    def _record(self, device: Device, new: EntityState, cause: ChangeCause) -> None:
        """Must hold the lock."""
        old, device.state = device.state, new
        if old != new:
            self._sequence += 1
            self._changes.append(StateChange(self._sequence, device.spec.entity_id, old, new,
                                             cause))
            log.debug("%s: %s %s -> %s %s (%s)", device.spec.entity_id, old.state,
                      old.attributes, new.state, new.attributes, cause)

    def _announce(self, client: mqtt.Client) -> list[mqtt.MQTTMessageInfo]:
        """(Re)publish every description, availability and state; runs on each connect."""
        client.subscribe([(f, QOS) for fe in self._front_ends for f in fe.subscriptions()])
        with self._lock:
            # HA discovery last: its availability says the simulator is all there.
            messages = [m for fe in sorted(self._front_ends, key=lambda fe: fe is self._ha)
                        for m in fe.announce()]
            return self._send(client, messages)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain:  # a stale retained command is not a command
            return
        try:
            for front_end in self._front_ends:
                try:
                    with self._lock:
                        reaction = front_end.handle(message.topic, message.payload)
                        if reaction is None:
                            continue
                        if reaction.device is not None:
                            self._last_command_at = time.monotonic()
                        self._react(client, front_end, reaction)
                except MALFORMED as error:
                    log.warning("virtual home: ignored a malformed command on %s (%.80r): %s",
                                message.topic, message.payload, error)
                return
        except Exception:  # paho's thread must survive anything a message does
            log.exception("virtual home: failed on a message to %s", message.topic)

    def _react(self, client: mqtt.Client, front_end: FrontEnd, reaction: Reaction) -> None:
        """Must hold the lock: retained states reach the broker in the order they changed."""
        device = reaction.device
        if device is not None and reaction.change is not None:
            self._record(device, reaction.change(device), "command")
            self._send(client, front_end.state_messages(device))
            for entity_id, entry in device.model.side_effects(device).items():
                target = self._devices.get(entity_id)
                if target is None:
                    log.warning("virtual home: %s sets unknown entity %s",
                                device.spec.entity_id, entity_id)
                    continue
                self._record(target, self._apply_entry(target, target.state, entry), "command")
                if entity_id in self._front_end_of:
                    self._send(client, self._front_end_of[entity_id].state_messages(target))
        self._send(client, reaction.reply())


def _token(text: str) -> str:
    """An id as it may appear inside another (entity ids have no "-" or capitals)."""
    return text.replace("-", "_").casefold()


def _wait_acknowledged(infos: Iterable[mqtt.MQTTMessageInfo], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for info in infos:
        try:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.001))
        except (RuntimeError, ValueError) as error:  # paho: not connected, queue full
            raise ConnectionError(f"publish failed: {error}") from error
        if not info.is_published():
            raise TimeoutError(f"the broker did not acknowledge within {timeout_s} s")


def _shut_down(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


# -- standalone ---------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    spec = load_home(args.home) if args.home else demo_home()
    house = VirtualHome(spec, args.host, args.port, args.discovery_prefix, args.base_topic,
                        protocols=args.protocols)
    await house.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"virtual home: {len(spec.entities)} entities on {args.host}:{args.port} "
          f"under {args.base_topic}/; Ctrl-C stops.", flush=True)
    try:
        await stopping.wait()
    finally:
        await house.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.virtual.home",
        description="Run a virtual home of MQTT devices (HA discovery or native protocols).")
    parser.add_argument("--home", type=Path, help="fixture dir or _fixtures.yaml (default: demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--base-topic", default=DEFAULT_BASE_TOPIC)
    parser.add_argument("--discovery-prefix", default=DEFAULT_DISCOVERY_PREFIX)
    parser.add_argument("--protocols", default="ha", help="ha, mixed, or one protocol's name")
    parser.add_argument("--quiet", action="store_true", help="do not log every state change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.quiet:
        log.setLevel(logging.DEBUG)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
