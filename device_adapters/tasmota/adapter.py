"""Tasmota's native discovery adapter: the protocol of Home Assistant's Tasmota integration,
which a device speaks with ``SetOption19 0`` (the default).

A device announces itself with retained ``<prefix>/<MAC>/config`` and ``<prefix>/<MAC>/
sensors`` documents (``discovery.py``); an empty document removes it (the config: the whole
device; the sensors: its sensor entities). Its entities follow ``stat/<topic>/RESULT``,
``stat/<topic>/POWER<n>``, ``tele/<topic>/STATE``, ``tele/<topic>/SENSOR`` and
``stat/<topic>/STATUS10`` (``readers.py``) and are available while ``tele/<topic>/LWT`` says
the device's online text (a device in deep sleep is always available); commands go to
``cmnd/<topic>/<Command>`` (``commands.py``), every topic built from the device's FullTopic
and prefixes. Entity ids are ``<domain>.tasmota_<mac>_<relay|light|shutter>_<n>`` and
``sensor.tasmota_<mac>_<reading path>``; every entity carries ``device_ids`` ``mac:<mac>``.

A device that comes online (its LWT) is asked what it is now, as Home Assistant's Tasmota
integration does: ``State`` (answered on RESULT) and, when it has sensors or shutters,
``Status 10``; nothing else is ever published while reading.
Hostile devices are data: payload sizes go through ``Intake``, topics are checked exact, the
devices and sensor documents kept are bounded by ``max_entities_per_source``, device text is
cleaned and bounded like every adapter's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from hatasmota.utils import discovery_topic_get_mac, discovery_topic_is_device_config

import device_adapters.tasmota.commands as commands
from assistant.device_data import bounded_attributes, bounded_value, clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity, RegistryFullError
from device_adapters.base import DeviceAdapter, Running, Unsubscribe
from device_adapters.tasmota.discovery import (
    Device,
    EntitySpec,
    device_from,
    parse_config,
    parse_sensors,
)
from device_adapters.tasmota.readers import (
    STATUS_SENSOR,
    Payload,
    Reader,
    read_light,
    read_power_text,
    read_relay,
    read_sensor,
    read_shutter,
)
from device_adapters.wire import parse_json_object

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "tasmota/discovery"
SOURCE = "tasmota"

# Which reports each kind of entity reads: (topic type, reader).
_READS: dict[str, tuple[tuple[str, Reader], ...]] = {
    "relay": (("result", read_relay), ("state", read_relay), ("power", read_power_text)),
    "light": (("result", read_light), ("state", read_light), ("power", read_power_text)),
    "shutter": (("result", read_shutter), ("sensor", read_shutter),
                ("status", partial(read_shutter, prefix=(STATUS_SENSOR,)))),
    "sensor": (("sensor", read_sensor), ("status", partial(read_sensor, prefix=(STATUS_SENSOR,)))),
}


def _topic(device: Device, topic_type: str, spec: EntitySpec) -> str:
    topics = device.topics
    return {"result": topics.stat + "RESULT", "power": topics.stat + spec.wire.get("power", ""),
            "status": topics.stat + "STATUS10", "state": topics.tele + "STATE",
            "sensor": topics.tele + "SENSOR"}[topic_type]


Handler = Callable[[Payload], None]


@dataclass(slots=True)
class _Tracked:
    """One discovered device: what it announced, and what the adapter listens to for it."""

    device: Device
    entity_ids: list[str]
    available: bool = False


class TasmotaAdapter(DeviceAdapter):
    """Tasmota devices from their native discovery, and commands back to them."""

    name: ClassVar[str] = SOURCE

    def __init__(self, discovery_prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = discovery_prefix.strip("/")
        self._configs: dict[str, dict] = {}  # MAC -> validated config
        self._sensors: dict[str, dict] = {}  # MAC -> validated sensors document
        self._tracked: dict[str, _Tracked] = {}  # MAC -> device with entities
        # topic -> {MAC: its handlers}; a topic stays subscribed while some device reads it,
        # so a re-announced device misses no report between an unsubscribe and a subscribe.
        self._listeners: dict[str, dict[str, list[Handler]]] = {}
        self._subscriptions: dict[str, Unsubscribe] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def _started(self, running: Running) -> None:
        running.subscribe(f"{self._prefix}/#", self._on_discovery)
        for state in (self._subscriptions, self._listeners, self._tracked, self._configs,
                      self._sensors):
            running.on_stop(state.clear)

    # -- discovery ----------------------------------------------------------------------------

    def _on_discovery(self, message: MqttMessage) -> None:
        mac = discovery_topic_get_mac(message.topic, self._prefix)
        if mac is None or not message.topic.startswith(self._prefix + "/"):
            return  # not a device's config or sensors
        text = self._intake.text(message, config=True)
        if text is None:
            return
        is_config = discovery_topic_is_device_config(message.topic)
        if text and mac not in self._configs and mac not in self._sensors and len(
                self._configs.keys() | self._sensors.keys()) >= \
                self._registry.limits.max_entities_per_source:
            self._intake.warn_once(("devices", SOURCE), "ignoring device %s: as many devices "
                                   "as adapters.limits.max_entities_per_source", mac)
            return
        document = parse_json_object(text) if text else None
        config, sensors = self._configs.get(mac), self._sensors.get(mac)
        if is_config:
            config = parse_config(document, mac) if document is not None else None
        else:
            sensors = parse_sensors(document) if document is not None else None
        # Built before anything changes: a malformed document leaves the device as it was.
        device = device_from(config, sensors) if config is not None else None
        for store, value in ((self._configs, config), (self._sensors, sensors)):
            if value is None:
                store.pop(mac, None)
            else:
                store[mac] = value
        self._apply(mac, device)

    def _apply(self, mac: str, device: Device | None) -> None:
        """Make the registry and the subscriptions match what the device announced."""
        old = self._tracked.pop(mac, None)
        if device is None:
            self._listen(mac, {})
            for entity_id in old.entity_ids if old else ():
                self._running.remove_entity(entity_id)
            if old is not None:
                log.info("tasmota: removed device %s", mac)
            return
        # A device that keeps its topics keeps what its LWT said; one asleep is never offline.
        available = device.deep_sleep or (old is not None and old.available
                                          and old.device.topics == device.topics)
        tracked = _Tracked(device, [], available)
        for spec in device.entities:
            if self._upsert(device, spec, available):
                tracked.entity_ids.append(spec.entity_id)
        for entity_id in set(old.entity_ids if old else ()) - set(tracked.entity_ids):
            self._running.remove_entity(entity_id)
        self._tracked[mac] = tracked
        self._listen(mac, self._routes(tracked))
        log.info("tasmota: %s device %s (%d entities)", "updated" if old else "discovered",
                 mac, len(tracked.entity_ids))

    def _upsert(self, device: Device, spec: EntitySpec, available: bool) -> bool:
        existing = self._registry.get_any(spec.entity_id)
        if existing is not None and (existing.source != SOURCE or existing.unique_id not in (
                None, spec.unique_id)):
            self._intake.warn_once(("claimed", spec.entity_id), "%s belongs to another "
                                   "device; not taken by %s", spec.entity_id, device.mac)
            return False
        limits = self._registry.limits
        unit = clean_text(spec.unit, 20)
        entity = Entity(
            entity_id=spec.entity_id, name=spec.name, domain=spec.domain,
            aliases=existing.aliases if existing else (), area=existing.area if existing else None,
            device_class=spec.device_class, entity_category=spec.entity_category,
            capabilities={key: bounded_value(value, limits)
                          for key, value in spec.capabilities.items()},
            attributes={"unit_of_measurement": unit} if unit else {}, available=available,
            source=SOURCE, wire=spec.wire, unique_id=spec.unique_id,
            device_ids=(device.device_id,))
        try:
            self._registry.upsert(entity)
        except RegistryFullError:
            return False  # the registry has said so once
        return True

    # -- subscriptions and state --------------------------------------------------------------

    def _routes(self, tracked: _Tracked) -> dict[str, list[Handler]]:
        """What the device's entities read, by topic."""
        device = tracked.device
        routes: dict[str, list[Handler]] = {}
        specs = {spec.entity_id: spec for spec in device.entities}
        for entity_id in tracked.entity_ids:
            spec = specs[entity_id]
            for topic_type, reader in _READS[spec.wire["kind"]]:
                routes.setdefault(_topic(device, topic_type, spec), []).append(
                    partial(self._on_state, entity_id, spec.wire, reader))
        if not device.deep_sleep:
            routes.setdefault(device.topics.tele + "LWT", []).append(
                partial(self._on_will, device.mac))
        return routes

    def _listen(self, mac: str, routes: dict[str, list[Handler]]) -> None:
        """Route the device's topics to ``routes``: new topics are subscribed, topics no
        device reads any more unsubscribed, the others kept as they are."""
        for topic, handlers in routes.items():
            self._listeners.setdefault(topic, {})[mac] = handlers
        for topic in [topic for topic, by_device in self._listeners.items()
                      if mac in by_device and topic not in routes]:
            del self._listeners[topic][mac]
            if not self._listeners[topic]:
                del self._listeners[topic]
                self._subscriptions.pop(topic)()
        for topic in routes:
            if topic not in self._subscriptions:
                self._subscriptions[topic] = self._running.subscribe(
                    topic, partial(self._dispatch, topic))

    def _dispatch(self, topic: str, message: MqttMessage) -> None:
        text = self._intake.text(message)
        if not text:  # too big, not UTF-8, or empty (a cleared retained message)
            return
        payload = Payload(text)
        handlers = [handler for device_handlers in self._listeners.get(topic, {}).values()
                    for handler in device_handlers]
        for handler in handlers:  # each on its own: one bad reading must not hide another
            self._intake.run(message.topic, handler, payload)
        if payload.unreadable:
            self._intake.warn_once(("json", message.topic), "ignoring reports on %.200r that "
                                   "are not JSON objects", message.topic)

    def _on_state(self, entity_id: str, wire: dict, reader: Reader, payload: Payload) -> None:
        update = reader(wire, payload)
        if update is not None:
            limits = self._registry.limits
            self._registry.update_state(entity_id, clean_text(update.state, limits.max_text_chars),
                                        bounded_attributes(update.attributes, limits))

    def _on_will(self, mac: str, payload: Payload) -> None:
        tracked = self._tracked.get(mac)
        if tracked is None or payload.text not in (tracked.device.online, tracked.device.offline):
            return
        came_online = payload.text == tracked.device.online and not tracked.available
        tracked.available = payload.text == tracked.device.online
        for entity_id in tracked.entity_ids:
            self._registry.update_state(entity_id, available=tracked.available)
        if came_online:
            for message in commands.status_polls(tracked.device):
                self._running.publish(message)

    # -- commands -----------------------------------------------------------------------------


    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        return commands.encode(entity, command)

    def reports_state(self, entity: Entity) -> bool:
        """Tasmota answers every command with its new state on RESULT (or POWER<n>)."""
        return True
