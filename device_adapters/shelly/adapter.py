"""Shelly Gen2+ devices over MQTT, natively (no Home Assistant discovery needed).

A Shelly with MQTT enabled publishes ``true`` on ``<prefix>/online`` when it connects (and
``false`` as its last will), takes JSON-RPC requests on ``<prefix>/rpc`` and publishes its
notifications on ``<prefix>/events/rpc``. The adapter listens to ``+/online`` (and to the
online topic of each configured prefix, which is also probed at start); a prefix becomes a
Shelly only once ``Shelly.GetDeviceInfo`` answers with a Shelly-looking reply. Then
``Shelly.GetConfig`` and ``Shelly.GetStatus`` make its entities and their first states, and
``NotifyStatus`` (deltas), ``NotifyFullStatus`` (the whole status) and ``NotifyEvent`` (button
pushes) keep them current; a changed ``sys.cfg_rev`` reads the device again.

Hostile input is data: payloads are bounded by ``adapters.limits``, prefixes must be one
exact, clean topic, replies only count from the device asked, notifications only from the
device itself, and probes, pending requests and components per device are bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from assistant.device_data import bounded_attributes, clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity, RegistryFullError
from device_adapters.base import CommandNotSupportedError, DeviceAdapter, Running
from device_adapters.intake import SKIP_ERRORS
from device_adapters.shelly.commands import rpc_call
from device_adapters.shelly.components import (
    BUTTON_EVENTS,
    SOURCE,
    Blueprint,
    DeviceInfo,
    Reading,
    Update,
    blueprints,
    merge,
    parse_device_info,
    project,
    read,
)
from device_adapters.shelly.rpc import RpcClient, RpcError, RpcTimeoutError, our_src
from device_adapters.wire import is_exact_topic, parse_json_object

log = logging.getLogger(__name__)

ONLINE_SUFFIX = "/online"
MAX_PROBES = 32  # devices being read at once
MAX_REJECTED = 1000  # prefixes remembered as not Shelly
MAX_PREFIX_CHARS = 300  # Shelly's own limit on topic_prefix


def is_prefix(value: Any) -> bool:
    """A topic prefix commands may be built on: one exact topic, clean text, Shelly-sized."""
    return (is_exact_topic(value) and len(value) <= MAX_PREFIX_CHARS
            and clean_text(value, MAX_PREFIX_CHARS) == value)


@dataclass(slots=True)
class _Device:
    prefix: str
    info: DeviceInfo
    readings: dict[str, Reading]  # entity id -> how its state is read
    status: dict[str, dict[str, Any]]  # component key -> the fields read of its status
    cfg_rev: Any = None
    online: bool = True
    keys: set[str] = field(default_factory=set)


class ShellyAdapter(DeviceAdapter):
    """Shelly Gen2+ devices found by ``<prefix>/online``, read and commanded over RPC."""

    name: ClassVar[str] = "shelly"

    def __init__(self, prefixes: Sequence[str] = (), rpc_timeout_s: float = 5.0,
                 client_id: str = "mimo-home") -> None:
        self._prefixes = tuple(dict.fromkeys(prefix.strip("/") for prefix in prefixes))
        bad = [prefix for prefix in self._prefixes if not is_prefix(prefix)]
        if bad:
            raise ValueError(f"not a usable Shelly topic prefix: {bad[0]!r}")
        if not rpc_timeout_s > 0:
            raise ValueError("rpc_timeout_s must be positive")
        self._timeout_s = rpc_timeout_s
        self.src = our_src(client_id)
        self._rpc: RpcClient | None = None
        self._devices: dict[str, _Device] = {}  # by prefix
        self._probing: set[str] = set()
        self._rejected: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------

    def _started(self, running: Running) -> None:
        rpc = self._rpc = RpcClient(self.src, running.publish, self._timeout_s,
                                    asyncio.get_running_loop())
        running.on_stop(lambda: self._stopped(rpc))
        running.subscribe(rpc.reply_topic, self._on_reply)
        running.subscribe("+" + ONLINE_SUFFIX, self._on_online)
        for prefix in self._prefixes:
            if "/" in prefix:  # "+/online" has the others
                running.subscribe(prefix + ONLINE_SUFFIX, self._on_online)
        for prefix in self._prefixes:
            self._probe(prefix)

    def _stopped(self, rpc: RpcClient) -> None:
        for task in self._tasks:
            task.cancel()
        rpc.close()
        self._devices.clear()
        self._probing.clear()
        self._rpc = None

    # -- finding devices ------------------------------------------------------------------

    def _on_online(self, message: MqttMessage) -> None:
        text = self._intake.text(message)
        if text is None or text.strip() not in ("true", "false"):
            return
        online = text.strip() == "true"
        prefix = message.topic[: -len(ONLINE_SUFFIX)]
        device = self._devices.get(prefix)
        if device is None:
            if online:
                self._probe(prefix)
            return
        if device.online == online:
            return  # the retained message again, after a reconnect of ours
        device.online = online
        for entity_id in device.readings:
            self._registry.update_state(entity_id, available=online)
        if online:
            self._probe(prefix)  # back after being away: it may have changed meanwhile

    def _probe(self, prefix: str) -> None:
        if prefix in self._probing or prefix in self._rejected or not is_prefix(prefix):
            return
        if len(self._probing) >= MAX_PROBES:
            self._intake.warn_once(("probes", prefix), "%d devices are being read already; "
                                   "%.200r waits for its next online message", MAX_PROBES,
                                   prefix)
            return
        self._probing.add(prefix)
        task = asyncio.get_running_loop().create_task(self._read_device(prefix))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_device(self, prefix: str) -> None:
        """GetDeviceInfo, then GetConfig and GetStatus; the device's entities from them."""
        running, rpc = self._running, self._rpc
        assert rpc is not None
        try:
            reply = await rpc.call(prefix, "Shelly.GetDeviceInfo")
            info = parse_device_info(reply.result, reply.src)
            if info is None:
                self._reject(prefix)
                return
            config = await rpc.call(prefix, "Shelly.GetConfig", device_src=info.id)
            status = await rpc.call(prefix, "Shelly.GetStatus", device_src=info.id)
            running.intake.run(prefix, self._adopt, running, prefix, info, config.result,
                               status.result)
        except RpcTimeoutError:
            pass  # logged where it timed out
        except (RpcError, *SKIP_ERRORS) as error:
            log.warning("shelly: %.200r did not answer as a Shelly: %.300s", prefix, error)
        finally:
            self._probing.discard(prefix)

    def _reject(self, prefix: str) -> None:
        log.info("shelly: %.200r is not a Shelly Gen2+ device", prefix)
        if len(self._rejected) < MAX_REJECTED:
            self._rejected.add(prefix)

    def _on_reply(self, message: MqttMessage) -> None:
        text = self._intake.text(message, config=True)  # a GetConfig reply can be large
        if text is not None and self._rpc is not None:
            self._rpc.on_reply(parse_json_object(text))

    # -- entities -------------------------------------------------------------------------

    def _adopt(self, running: Running, prefix: str, info: DeviceInfo, config: dict[str, Any],
               status: dict[str, Any]) -> None:
        """Make (or remake) the entities of the device at ``prefix``."""
        if running.stopped:
            return  # stopped while the device was read
        twin = next((d for d in self._devices.values()
                     if d.info.id == info.id and d.prefix != prefix), None)
        if twin is not None:
            self._intake.warn_once(("twin", info.id), "%s answers on %.200r and on %.200r; "
                                   "keeping the first", info.id, twin.prefix, prefix)
            return
        old = self._devices.get(prefix)
        device = _Device(prefix, info, {}, {}, project("sys", status.get("sys")).get("cfg_rev"))
        for blueprint in blueprints(prefix, info, config, status):
            key = blueprint.reading.key
            device.status[key] = project(key, status[key])
            if self._upsert(blueprint, device):
                device.readings[blueprint.entity.entity_id] = blueprint.reading
                device.keys.add(key)
        for entity_id in (old.readings.keys() - device.readings.keys()) if old else ():
            self._registry.remove(entity_id)
        if old is None:
            running.subscribe(f"{prefix}/events/rpc",
                              lambda message: self._on_notification(prefix, message))
        self._devices[prefix] = device
        log.info("shelly: %s (%s) at %.200r: %d entities", info.id, info.model, prefix,
                 len(device.readings))

    def _upsert(self, blueprint: Blueprint, device: _Device) -> bool:
        entity = blueprint.entity
        existing = self._registry.get_any(entity.entity_id)
        if existing is not None and (existing.source != SOURCE
                                     or existing.unique_id != entity.unique_id):
            self._intake.warn_once(("taken", entity.entity_id), "%s belongs to another device",
                                   entity.entity_id)
            return False
        update = read(blueprint.reading, device.status[blueprint.reading.key],
                      existing or entity, self._registry.limits) or Update()
        if existing is not None:  # keep what people set by hand
            entity = entity.model_copy(update={"aliases": existing.aliases,
                                               "area": existing.area})
        entity = entity.model_copy(update={
            "state": update.state,
            "attributes": {**entity.attributes, **self._bounded(update.attributes)}})
        try:
            self._registry.upsert(entity)
        except RegistryFullError:
            return False  # the registry has warned
        return True

    def _bounded(self, attributes: dict[str, Any] | None) -> dict[str, Any]:
        return bounded_attributes(attributes, self._registry.limits) if attributes else {}

    # -- notifications --------------------------------------------------------------------

    def _on_notification(self, prefix: str, message: MqttMessage) -> None:
        device = self._devices.get(prefix)
        text = self._intake.text(message)
        if device is None or text is None:
            return
        frame = parse_json_object(text)
        params = frame.get("params")
        if frame.get("src") != device.info.id or not isinstance(params, dict):
            return  # not the device's own notification
        method = frame.get("method")
        if method in ("NotifyStatus", "NotifyFullStatus"):
            self._on_status(device, params, full=method == "NotifyFullStatus")
        elif method == "NotifyEvent":
            self._on_events(device, params.get("events"))

    def _on_status(self, device: _Device, params: dict[str, Any], *, full: bool) -> None:
        changed = set()
        for key in device.keys.intersection(params):
            delta = project(key, params[key])
            device.status[key] = delta if full else merge(device.status[key], delta)
            changed.add(key)
        for entity_id, reading in device.readings.items():
            entity = self._registry.get_any(entity_id) if reading.key in changed else None
            if entity is not None:
                self._apply(entity_id, read(reading, device.status[reading.key], entity,
                                            self._registry.limits))
        cfg_rev = project("sys", params.get("sys")).get("cfg_rev")
        if cfg_rev is not None and cfg_rev != device.cfg_rev:
            log.info("shelly: %s changed its configuration; reading it again", device.info.id)
            device.cfg_rev = cfg_rev
            self._probe(device.prefix)

    def _on_events(self, device: _Device, events: Any) -> None:
        if not isinstance(events, list):
            return
        for event in events[: self._registry.limits.max_list_items]:
            if not isinstance(event, dict) or event.get("event") not in BUTTON_EVENTS:
                continue
            for entity_id, reading in device.readings.items():
                if reading.kind == "input_button" and reading.key == event.get("component"):
                    self._apply(entity_id, Update(event["event"]))

    def _apply(self, entity_id: str, update: Update | None) -> None:
        if update is not None:
            self._registry.update_state(entity_id, update.state, self._bounded(update.attributes))

    # -- commands -------------------------------------------------------------------------

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        prefix, device_src = entity.wire.get("prefix"), entity.wire.get("device_src")
        if self._rpc is None:
            raise CommandNotSupportedError("the Shelly adapter is not running")
        if not is_prefix(prefix) or not isinstance(device_src, str):
            raise CommandNotSupportedError(f"{entity.entity_id} has no usable Shelly prefix")
        method, params = rpc_call(entity, command)
        return [self._rpc.request(prefix, method, params, device_src=device_src)]
