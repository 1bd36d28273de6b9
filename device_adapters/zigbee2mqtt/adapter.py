"""Zigbee2MQTT's own MQTT API, natively: no Home Assistant discovery needed.

Topics under the base topic (``zigbee2mqtt`` by default), as Zigbee2MQTT's guide ("MQTT
topics and messages", "Device-Availability") documents them:

- ``bridge/devices`` (retained): every device with its ``definition.exposes``; each
  supported, enabled, interviewed device that is not the coordinator becomes entities
  (see ``exposes``). A device missing from a newer list is removed; the same
  ``ieee_address`` under a new ``friendly_name`` is a rename: its entities keep their ids
  and take the new name and topics.
- ``bridge/groups`` (retained): light and switch groups, built from their members' exposes.
- ``bridge/state``: ``online``/``offline``, or ``{"state": "online"}`` with
  ``legacy_availability_payload: false``; while the bridge is offline all its devices are
  unavailable.
- ``bridge/event`` ``device_leave`` removes a device; ``bridge/response/device/rename`` and
  ``bridge/response/group/rename`` with status ``ok`` rename at once.
- ``<friendly_name>``: the device's (or group's) JSON state; ``<friendly_name>/availability``:
  ``online``/``offline`` or the JSON form (case is not significant).
- Commands: one JSON object on ``<friendly_name>/set``; after discovery, one ``/get`` with
  ``{"<property>": ""}`` for the readable (access bit 4) features of a device that has not
  reported yet, at most ``GET_REQUESTS_PER_LIST`` devices per devices list.

Only Zigbee2MQTT's default JSON output is read (``advanced.output: attribute``, one topic
per property, is not). Friendly names may hold ``/`` (topics keep it, as Zigbee2MQTT's do).
A name that could not be one exact topic, that has an empty level, begins with ``bridge`` or
ends with ``set``, ``get`` or ``availability`` (it would read as another device's topic) is
refused. Entity ids
come from the IEEE address and the expose (``light.z2m_0017880104dfc05e_light``), so they
never change; every entity of a device carries ``device_ids = ("zigbee:0x<ieee>",)``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import device_adapters.zigbee2mqtt.commands as commands
import device_adapters.zigbee2mqtt.state as state
from assistant.device_data import bounded_attributes, clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity, RegistryFullError
from device_adapters.base import DeviceAdapter, Running, Subscriptions, feature_name
from device_adapters.intake import SKIP_ERRORS
from device_adapters.wire import is_exact_topic, parse_json_object
from device_adapters.zigbee2mqtt.exposes import (
    ACCESS_GET,
    ACCESS_STATE,
    EntitySpec,
    entity_specs,
)
from device_adapters.zigbee2mqtt.groups import group_spec

log = logging.getLogger(__name__)

SOURCE = "zigbee2mqtt"
DEFAULT_BASE_TOPIC = "zigbee2mqtt"
GET_REQUESTS_PER_LIST = 20
_IEEE = re.compile(r"0x[0-9a-fA-F]{16}")
_RESERVED_LAST_LEVELS = frozenset({"set", "get", "availability"})


@dataclass(slots=True)
class _Node:
    """A device or a group: one friendly name, its entities and its subscriptions."""

    key: str  # the IEEE address, or "group:<id>"
    friendly_name: str
    record: dict[str, Any]  # what the bridge said about it (for renames and groups)
    subscriptions: Subscriptions
    specs: list[EntitySpec] = field(default_factory=list)
    entity_ids: list[str] = field(default_factory=list)
    available: bool | None = None  # None: it never sent availability (the feature is off)
    reported: bool = False

    @property
    def is_group(self) -> bool:
        return self.key.startswith("group:")


def parse_online(text: str) -> bool | None:
    """``online``/``offline`` as plain text or ``{"state": ...}``; None for anything else."""
    value: Any = text.strip()
    if value.startswith("{"):
        value = parse_json_object(value).get("state")
    if not isinstance(value, str):
        return None
    return {"online": True, "offline": False}.get(value.strip().lower())


def display_name(friendly_name: str) -> str:
    """``kitchen/floor_light`` -> ``kitchen floor light``: levels and underscores are spaces."""
    return " ".join(friendly_name.replace("/", " ").replace("_", " ").split())


class Zigbee2MqttAdapter(DeviceAdapter):
    """Devices and groups of one Zigbee2MQTT instance, and commands back to them."""

    name: ClassVar[str] = SOURCE

    def __init__(self, base_topic: str = DEFAULT_BASE_TOPIC) -> None:
        self._base = base_topic.strip("/")
        if not is_exact_topic(self._base):
            raise ValueError(f"base topic {base_topic!r} is not one exact topic")
        self._nodes: dict[str, _Node] = {}
        self._groups_payload: list[Any] = []
        self._bridge_online = True
        self._asked: set[str] = set()  # devices sent a /get since the start

    # -- lifecycle ---------------------------------------------------------------------------

    def _started(self, running: Running) -> None:
        self._groups_payload, self._bridge_online, self._asked = [], True, set()
        routes = {
            "bridge/devices": self._on_devices,
            "bridge/groups": self._on_groups,
            "bridge/state": self._on_bridge_state,
            "bridge/event": self._on_event,
            "bridge/response/device/rename": self._on_device_renamed,
            "bridge/response/group/rename": self._on_group_renamed,
        }
        for topic, handler in routes.items():
            running.subscribe(f"{self._base}/{topic}", handler)
        running.on_stop(self._nodes.clear)

    def _bridge_list(self, message: MqttMessage) -> list[Any] | None:
        """``bridge/devices`` or ``bridge/groups`` as a list, at most ``max_entities_per_source``
        long, its payload within ``max_device_list_bytes`` (it holds every device's
        definition). Not a list, not JSON or not UTF-8: raises, and the intake logs it."""
        limit = self._intake.limits.max_device_list_bytes
        if self._intake.oversized(message, limit, "max_device_list_bytes"):
            return None
        entries = json.loads(message.payload.decode("utf-8"))
        if not isinstance(entries, list):
            raise ValueError(f"{message.topic[:200]!r} is not a list")
        return entries[: self._intake.limits.max_entities_per_source]

    # -- the bridge --------------------------------------------------------------------------

    def _on_devices(self, message: MqttMessage) -> None:
        records = self._bridge_list(message)
        if records is None:
            return
        seen: set[str] = set()
        names: set[str] = set()
        for record in records:
            try:
                key = self._device(record, names) if isinstance(record, dict) else None
            except SKIP_ERRORS as error:  # one broken entry must not hide the others
                self._intake.warn_once(("device", str(record.get("ieee_address"))[:40]),
                                       "skipped a device entry: %.200s", error)
                continue
            if key is not None:
                seen.add(key)
        for key in [k for k, node in self._nodes.items() if not node.is_group and k not in seen]:
            self._forget(key)
        self._prune("ieee", {i for n in self._nodes.values() if not n.is_group
                             for i in n.entity_ids})
        self._rebuild_groups()
        self._ask_for_states()

    def _device(self, record: dict[str, Any], names: set[str]) -> str | None:
        """Track one entry of the device list; its key, or None when it is not used."""
        ieee = record.get("ieee_address")
        if not isinstance(ieee, str) or not _IEEE.fullmatch(ieee):
            return None
        ieee = ieee.lower()
        definition = record.get("definition")
        if (record.get("type") == "Coordinator" or record.get("disabled") is True
                or record.get("supported") is not True or not isinstance(definition, dict)):
            return None
        interview = record.get("interview_state", "SUCCESSFUL" if record.get(
            "interview_completed", True) is not False else "PENDING")
        if interview != "SUCCESSFUL":  # a re-interview keeps what the device was
            return ieee if ieee in self._nodes else None
        friendly_name = record.get("friendly_name")
        if not self._usable_name(friendly_name, names):
            self._intake.warn_once(("friendly_name", ieee), "device %s: friendly name %.100r "
                                   "cannot be a topic; skipped", ieee, friendly_name)
            return None
        names.add(friendly_name)
        specs = entity_specs(definition.get("exposes"), self._intake.limits)
        self._track(_Node(ieee, friendly_name, record, self._running.subscriptions(), specs))
        return ieee

    def _usable_name(self, name: Any, taken: set[str]) -> bool:
        if not isinstance(name, str) or name in taken:
            return False
        levels = name.split("/")
        return (clean_text(name, self._intake.limits.max_text_chars) == name
                and is_exact_topic(f"{self._base}/{name}/availability") and all(levels)
                and levels[0] != "bridge" and levels[-1] not in _RESERVED_LAST_LEVELS)

    def _on_groups(self, message: MqttMessage) -> None:
        groups = self._bridge_list(message)
        if groups is not None:
            self._groups_payload = groups
            self._rebuild_groups()

    def _rebuild_groups(self) -> None:
        names = {n.friendly_name for n in self._nodes.values() if not n.is_group}
        devices = {k: n for k, n in self._nodes.items() if not n.is_group}
        seen: set[str] = set()
        for record in self._groups_payload:
            try:
                key = self._group(record, names, devices) if isinstance(record, dict) else None
            except SKIP_ERRORS as error:
                self._intake.warn_once(("group", str(record.get("id"))[:40]),
                                       "skipped a group entry: %.200s", error)
                continue
            if key is not None:
                seen.add(key)
        for key in [k for k, node in self._nodes.items() if node.is_group and k not in seen]:
            self._forget(key)
        self._prune("group_id", {i for n in self._nodes.values() if n.is_group
                                 for i in n.entity_ids})

    def _group(self, record: dict[str, Any], names: set[str], devices: dict[str, _Node]
               ) -> str | None:
        group_id = record.get("id")
        if isinstance(group_id, bool) or not isinstance(group_id, int) or group_id < 0:
            return None
        friendly_name = record.get("friendly_name")
        spec = group_spec(record.get("members"), devices, self._intake.limits)
        if spec is None or not self._usable_name(friendly_name, names):
            return None
        names.add(friendly_name)
        key = f"group:{group_id}"
        self._track(_Node(key, friendly_name, record, self._running.subscriptions(), [spec]))
        return key

    def _on_bridge_state(self, message: MqttMessage) -> None:
        text = self._intake.text(message)
        online = parse_online(text) if text is not None else None
        if online is None or online == self._bridge_online:
            return
        self._bridge_online = online
        for node in self._nodes.values():
            self._publish_availability(node)
        self._ask_for_states()  # what could not be asked while it was away

    def _on_event(self, message: MqttMessage) -> None:
        text = self._intake.text(message)
        if text is None:
            return
        event = parse_json_object(text)
        data = event.get("data")
        if event.get("type") == "device_leave" and isinstance(data, dict):
            ieee = data.get("ieee_address")
            if isinstance(ieee, str) and ieee.lower() in self._nodes:
                self._forget(ieee.lower())
                self._rebuild_groups()

    def _renamed(self, message: MqttMessage) -> tuple[str, str] | None:
        text = self._intake.text(message)
        response = parse_json_object(text) if text is not None else {}
        data = response.get("data")
        if response.get("status") != "ok" or not isinstance(data, dict):
            return None
        old, new = data.get("from"), data.get("to")
        return (old, new) if isinstance(old, str) and isinstance(new, str) else None

    def _on_device_renamed(self, message: MqttMessage) -> None:
        renamed = self._renamed(message)
        node = next((n for n in self._nodes.values() if not n.is_group and renamed and
                     renamed[0] in (n.friendly_name, n.key)), None)
        if renamed is None or node is None:
            return
        taken = {n.friendly_name for n in self._nodes.values() if n is not node}
        if self._device({**node.record, "friendly_name": renamed[1]}, taken) is not None:
            self._rebuild_groups()

    def _on_group_renamed(self, message: MqttMessage) -> None:
        renamed = self._renamed(message)
        if renamed is None:
            return
        self._groups_payload = [
            {**g, "friendly_name": renamed[1]} if isinstance(g, dict) and renamed[0] in (
                g.get("friendly_name"), str(g.get("id"))) else g for g in self._groups_payload]
        self._rebuild_groups()

    # -- entities ----------------------------------------------------------------------------

    def _track(self, node: _Node) -> None:
        """Create or update ``node``'s entities; the ones its exposes no longer have go."""
        old = self._nodes.get(node.key)
        if old is not None:
            node.available, node.reported = old.available, old.reported
        for spec in node.specs:
            entity = self._entity(node, spec)
            if entity is None:
                continue
            try:
                self._registry.upsert(entity)
            except RegistryFullError:
                continue  # the registry has warned
            node.entity_ids.append(entity.entity_id)
        if old is not None:
            for entity_id in set(old.entity_ids) - set(node.entity_ids):
                self._running.remove_entity(entity_id)
            if old.friendly_name == node.friendly_name:  # the same topics: kept subscribed
                node.subscriptions, old.subscriptions = old.subscriptions, node.subscriptions
            old.subscriptions.close()
        self._nodes[node.key] = node
        if not node.subscriptions:
            self._subscribe(node)

    def _entity(self, node: _Node, spec: EntitySpec) -> Entity | None:
        group = node.is_group
        owner = node.key.split(":", 1)[1] if group else node.key
        unique_id = f"{'group_' if group else ''}{owner}_{spec.key}"
        object_id = re.sub(r"\W+", "_", f"z2m_{'group_' + owner if group else owner[2:]}_"
                           f"{spec.key}".lower(), flags=re.ASCII).strip("_")
        entity_id = f"{spec.domain}.{object_id}"
        existing = self._registry.get_any(entity_id)
        if existing is not None and (existing.source != SOURCE or existing.unique_id not in (
                None, unique_id)):
            self._intake.warn_once(("entity_id", entity_id), "%s belongs to another device; "
                                   "%s skipped", entity_id, unique_id)
            return None
        device = display_name(node.friendly_name)
        name = clean_text(feature_name(device, spec.label), 100) or object_id
        topic = f"{self._base}/{node.friendly_name}"
        wire: dict[str, Any] = {
            "kind": spec.domain,
            "features": spec.features,
            "command_topic": f"{topic}/set",
            "state_topic": topic,
            "availability_topic": f"{topic}/availability",
            ("group_id" if group else "ieee"): int(owner) if group else owner,
            "reports": any(f["access"] & ACCESS_STATE for f in spec.features.values()),
        }
        capabilities = commands.capabilities(spec.domain, spec.features)
        if spec.unit:
            capabilities["unit_of_measurement"] = spec.unit
        capabilities.update(spec.attributes)
        return Entity(
            entity_id=entity_id, name=name, domain=spec.domain,
            aliases=existing.aliases if existing else (),
            area=existing.area if existing else None,
            device_class=spec.device_class, capabilities=capabilities,
            attributes={"unit_of_measurement": spec.unit} if spec.unit else {},
            available=self._is_available(node), source=SOURCE, wire=wire,
            entity_category=spec.entity_category, unique_id=unique_id,
            device_ids=() if group else (f"zigbee:{node.key}",),
        )

    def _prune(self, owner: str, keep: set[str]) -> None:
        """Remove this adapter's entities of devices (or groups) the bridge no longer has,
        persisted ones from before a restart included."""
        for entity in self._registry.all_entities():
            if entity.source == SOURCE and owner in entity.wire and entity.entity_id not in keep:
                self._registry.remove(entity.entity_id)

    def _forget(self, key: str) -> None:
        node = self._nodes.pop(key, None)
        if node is None:
            return
        node.subscriptions.close()
        for entity_id in node.entity_ids:
            self._running.remove_entity(entity_id)
        log.info("zigbee2mqtt: removed %s (%d entities)", key, len(node.entity_ids))

    # -- state and availability --------------------------------------------------------------

    def _subscribe(self, node: _Node) -> None:
        topic = f"{self._base}/{node.friendly_name}"
        node.subscriptions.add(topic, partial(self._on_state, node.key))
        node.subscriptions.add(f"{topic}/availability", partial(self._on_availability, node.key))

    def _on_state(self, key: str, message: MqttMessage) -> None:
        node = self._nodes.get(key)
        text = self._intake.text(message) if node is not None else None
        if node is None or text is None:
            return
        document = parse_json_object(text)
        node.reported = True
        limits = self._intake.limits
        for entity_id in node.entity_ids:
            entity = self._registry.get_any(entity_id)
            if entity is None:
                continue
            update = state.read(entity.wire["kind"], entity.wire["features"], document,
                                entity.state)
            if update is not None:
                self._registry.update_state(
                    entity_id, clean_text(update.state, limits.max_text_chars),
                    bounded_attributes(update.attributes, limits))

    def _on_availability(self, key: str, message: MqttMessage) -> None:
        node = self._nodes.get(key)
        text = self._intake.text(message) if node is not None else None
        online = parse_online(text) if text is not None else None
        if node is None or online is None:
            return
        node.available = online
        self._publish_availability(node)

    def _is_available(self, node: _Node) -> bool:
        return self._bridge_online and node.available is not False

    def _publish_availability(self, node: _Node) -> None:
        for entity_id in node.entity_ids:
            self._registry.update_state(entity_id, available=self._is_available(node))

    def _ask_for_states(self) -> None:
        """One ``/get`` per device that has not spoken, for its readable features."""
        if not self._bridge_online:
            return
        asked = 0
        for node in self._nodes.values():
            if asked >= GET_REQUESTS_PER_LIST:
                break
            if node.is_group or node.reported or node.key in self._asked:
                continue
            properties = {f["property"]: "" for spec in node.specs if spec.specific
                          for f in spec.features.values() if f["access"] & ACCESS_GET}
            if not properties:
                continue
            self._asked.add(node.key)
            asked += 1
            self._running.publish(MqttMessage(
                f"{self._base}/{node.friendly_name}/get",
                json.dumps(properties, separators=(",", ":")).encode(),
                qos=commands.COMMAND_QOS, retain=False))

    # -- commands ----------------------------------------------------------------------------

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        return commands.encode(entity, command)

    def reports_state(self, entity: Entity) -> bool:
        return entity.wire.get("reports") is True


__all__ = ["DEFAULT_BASE_TOPIC", "SOURCE", "Zigbee2MqttAdapter", "display_name", "parse_online"]
