"""The Homie adapter: v5 devices (``$state``, ``$description``, property ``/set``) and v4
devices, which are shown read-only.

Discovery follows the convention: ``<domain>/5/+/$state`` (a device exists once its state is
valid, and goes with an empty one) and its ``$description``; v4 devices announce themselves
on ``<domain>/+/$homie``. Each device then gets its own subscriptions, built only from ids
that match the convention's id pattern, so no device text ever becomes a wildcard. Values
are kept as they come (bounded), so a value that arrives before its description still
counts once the description does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import device_adapters.homie.commands as commands
from assistant.device_data import bounded_attributes, bounded_value, clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity, RegistryFullError, normalize_name
from device_adapters.base import DeviceAdapter, Running, Subscriptions, words_in
from device_adapters.homie.description import (
    AVAILABLE_STATES,
    STATES,
    V4_STATES,
    V4_VERSION,
    DeviceSpec,
    assemble_v4,
    is_id,
    parse_v5,
)
from device_adapters.homie.entities import Part, Plan, plan_node, reading, wire_of
from device_adapters.homie.values import parse_value
from device_adapters.wire import is_topic_level, parse_json_object

log = logging.getLogger(__name__)

MAX_VALUES_PER_DEVICE = 1024  # property values (and targets) kept per device
MAX_ID_SUFFIX = 9  # entity ids tried: <id>, <id>_2 … <id>_9
TARGET = "$target"
# Property names that say nothing of what the device is ("State", "Power"): such a property
# is the device itself, as Home Assistant names an entity that is its device's main feature.
GENERIC_LABELS = frozenset({"state", "status", "power", "on", "on off", "onoff", "switch",
                            "value", "enabled", "output", "relay"})
# The v4 attributes that describe a device (the rest, $stats, $fw …, are not kept).
_V4_DEVICE_ATTRIBUTES = frozenset({"$name", "$nodes", "$state"})
_V4_NODE_ATTRIBUTES = frozenset({"$name", "$type", "$properties"})
_V4_PROPERTY_ATTRIBUTES = frozenset({"$name", "$datatype", "$format", "$settable",
                                     "$retained", "$unit"})


@dataclass(frozen=True, slots=True)
class _Route:
    """Where one property's values go: an entity and the part the property plays in it."""

    entity_id: str
    domain: str
    part: Part
    has_brightness: bool


@dataclass
class _Device:
    version: int
    id: str
    subscriptions: Subscriptions
    state: str | None = None
    spec: DeviceSpec | None = None
    v4_attributes: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # "node/prop[/$target]" -> payload
    plans: dict[str, tuple[Plan, Entity]] = field(default_factory=dict)  # by plan key
    routes: dict[str, _Route] = field(default_factory=dict)  # by "node/prop"


class HomieAdapter(DeviceAdapter):
    """Homie devices under ``base_topic`` (the homie-domain, ``homie`` by default)."""

    name: ClassVar[str] = "homie"

    def __init__(self, base_topic: str = "homie") -> None:
        base = base_topic.strip("/")
        if not is_topic_level(base):
            raise ValueError(f"the Homie base topic {base_topic!r} must be one topic level")
        self._base = base
        self._devices: dict[tuple[int, str], _Device] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def _started(self, running: Running) -> None:
        running.subscribe(f"{self._base}/5/+/$state", self._on_v5_state)
        running.subscribe(f"{self._base}/5/+/$description", self._on_v5_description)
        running.subscribe(f"{self._base}/+/$homie", self._on_v4_homie)
        running.on_stop(self._devices.clear)

    # -- devices --------------------------------------------------------------------------

    def _device_id(self, message: MqttMessage, level: int) -> str | None:
        device_id = message.topic.split("/")[level]
        if is_id(device_id) and not (level == 1 and device_id == "5"):
            return device_id
        self._intake.warn_once(("device id", device_id), "ignoring device id %.80r: not a Homie "
                               "id", device_id)
        return None

    def _track(self, version: int, device_id: str) -> _Device | None:
        """The tracked device, subscribed to its own topics; None when there is no room."""
        device = self._devices.get((version, device_id))
        if device is not None:
            return device
        if len(self._devices) >= self._registry.limits.max_entities_per_source:
            self._intake.warn_once(("devices", ""), "not tracking more Homie devices than "
                                   "adapters.limits.max_entities_per_source")
            return None
        device = self._devices[(version, device_id)] = _Device(
            version, device_id, self._running.subscriptions())
        if version == 5:
            base = f"{self._base}/5/{device_id}/+/+"
            device.subscriptions.add(base, partial(self._on_v5_value, device))
            device.subscriptions.add(f"{base}/{TARGET}", partial(self._on_v5_value, device))
        else:
            device.subscriptions.add(f"{self._base}/{device_id}/#",
                                     partial(self._on_v4_topic, device))
        return device

    def _forget(self, version: int, device_id: str) -> None:
        device = self._devices.pop((version, device_id), None)
        if device is None:
            return
        device.subscriptions.close()
        for _plan, entity in device.plans.values():
            self._running.remove_entity(entity.entity_id)
        log.info("homie: removed device %s (v%d)", device_id, version)
        if version == 5:
            self._refresh_children(device_id)

    def _available(self, device: _Device) -> bool:
        root_id = device.spec.root if device.spec else None
        root = self._devices.get((5, root_id)) if root_id else None
        if root is not None and root.state == "lost":  # the root's will speaks for its tree
            return False
        return device.state in AVAILABLE_STATES

    def _refresh_children(self, root_id: str) -> None:
        for device in list(self._devices.values()):
            if device.spec is not None and device.spec.root == root_id:
                self._refresh(device)

    # -- v5 -------------------------------------------------------------------------------

    def _on_v5_state(self, message: MqttMessage) -> None:
        device_id = self._device_id(message, 2)
        if device_id is None:
            return
        if not message.payload:  # the convention's removal: the state topic cleared
            self._forget(5, device_id)
            return
        text = self._intake.text(message)
        if text not in STATES:
            self._intake.warn_once(("state", message.topic), "ignoring $state %.40r on %.200r",
                                   text, message.topic)
            return
        device = self._track(5, device_id)
        if device is not None and device.state != text:
            device.state = text
            self._refresh(device)
            self._refresh_children(device_id)

    def _on_v5_description(self, message: MqttMessage) -> None:
        device_id = self._device_id(message, 2)
        if device_id is None:
            return
        if not message.payload:
            device = self._devices.get((5, device_id))
            if device is not None:
                device.spec = None
                self._refresh(device)
            return
        text = self._intake.text(message, config=True)
        if text is None:
            return
        spec, skipped = parse_v5(device_id, parse_json_object(text))
        for problem in skipped:
            self._intake.warn_once(("description", f"{device_id} {problem}"), "device %s: "
                                   "ignoring %.200s", device_id, problem)
        device = self._track(5, device_id)
        if device is not None and device.spec != spec:
            device.spec = spec
            self._refresh(device)

    def _on_v5_value(self, device: _Device, message: MqttMessage) -> None:
        levels = message.topic.split("/")[3:]  # node, property[, $target]
        if not all(map(is_id, levels[:2])) or not message.payload:
            return  # an empty payload deletes a topic: no value to read
        text = self._intake.text(message)
        if text is not None and self._keep_value(device, "/".join(levels), text):
            self._apply(device, "/".join(levels))

    # -- v4 -------------------------------------------------------------------------------

    def _on_v4_homie(self, message: MqttMessage) -> None:
        device_id = self._device_id(message, 1)
        if device_id is None:
            return
        text = self._intake.text(message)
        if not message.payload:
            self._forget(4, device_id)
        elif text is not None and V4_VERSION.fullmatch(text):
            self._track(4, device_id)
        else:
            self._intake.warn_once(("version", device_id), "device %s speaks Homie %.20r, not 4.x "
                                   "or 5.x", device_id, text)

    def _on_v4_topic(self, device: _Device, message: MqttMessage) -> None:
        levels = message.topic.split("/")[2:]
        if not levels[-1].startswith("$"):
            if len(levels) == 2 and all(map(is_id, levels)) and message.payload:
                text = self._intake.text(message)
                if text is not None and self._keep_value(device, "/".join(levels), text):
                    self._apply(device, "/".join(levels))
            return
        wanted = {1: _V4_DEVICE_ATTRIBUTES, 2: _V4_NODE_ATTRIBUTES,
                  3: _V4_PROPERTY_ATTRIBUTES}.get(len(levels), frozenset())
        if levels[-1] not in wanted or not all(map(is_id, levels[:-1])):
            return
        key, text = "/".join(levels), self._intake.text(message)
        if key == "$state" and message.payload and text not in V4_STATES:
            self._intake.warn_once(("state", message.topic), "ignoring $state %.40r on %.200r",
                                   text, message.topic)
            return
        if not message.payload or text is None:
            device.v4_attributes.pop(key, None)
        elif key not in device.v4_attributes and (
                len(device.v4_attributes) >= MAX_VALUES_PER_DEVICE):
            self._intake.warn_once(("attributes", device.id), "device %s: too many attributes",
                                   device.id)
            return
        else:
            device.v4_attributes[key] = text[: self._registry.limits.max_value_chars]
        device.state = device.v4_attributes.get("$state")
        device.spec = assemble_v4(device.id, device.v4_attributes)
        self._refresh(device)

    # -- entities -------------------------------------------------------------------------

    def _refresh(self, device: _Device) -> None:
        """Make the registry show what ``device`` is now: its entities, names and
        availability; values are applied to the entities that are new or changed."""
        plans = [] if device.spec is None or device.state is None else [
            plan for node in device.spec.nodes for plan in plan_node(node, device.version == 4)]
        current: dict[str, tuple[Plan, Entity]] = {}
        for plan in plans:
            previous = device.plans.get(plan.key)
            same_domain = previous is not None and previous[0].domain == plan.domain
            entity = self._entity(device, plan, previous[1].entity_id if same_domain else None)
            if entity is None:
                continue
            if previous is None or previous[1] != entity:
                try:
                    self._registry.upsert(entity)
                except RegistryFullError:
                    continue  # the registry has warned
            current[plan.key] = (plan, entity)
        for key, (_plan, entity) in device.plans.items():
            if key not in current or current[key][1].entity_id != entity.entity_id:
                self._running.remove_entity(entity.entity_id)
        changed = [plan for key, (plan, _) in current.items()
                   if key not in device.plans or device.plans[key][0] != plan]
        device.plans = current
        device.routes = {
            f"{part.node}/{part.spec.id}": _Route(
                entity.entity_id, plan.domain, part,
                any(other.role == "brightness" for other in plan.parts))
            for plan, entity in current.values() for part in plan.parts}
        for plan in changed:
            for part in plan.parts:
                for key in (f"{part.node}/{part.spec.id}", f"{part.node}/{part.spec.id}/{TARGET}"):
                    if key in device.values:
                        self._apply(device, key)

    def _entity(self, device: _Device, plan: Plan, entity_id: str | None) -> Entity | None:
        assert device.spec is not None
        limits = self._registry.limits
        unique_id = f"homie{device.version}:{device.id}/{plan.key}"
        object_id = "_".join([device.id, *plan.key.split("/")]).replace("-", "_")[:200]
        entity_id = entity_id or self._claim(f"{plan.domain}.{object_id}", unique_id)
        if entity_id is None:
            self._intake.warn_once(("entity id", unique_id), "no free entity id for %s", unique_id)
            return None
        device_name = clean_text(device.spec.name, 100) or device.id
        label = clean_text(plan.label, 100) or plan.key.rsplit("/", 1)[-1]
        name, aliases = label, [f"{device_name} {label}"]
        if words_in(label, device_name):
            name, aliases = device_name, []  # "Light" of the "Kitchen light": the device's name
        elif normalize_name(label) in GENERIC_LABELS:
            name = device_name  # the "State" of the "Fireplace" is the fireplace
        elif words_in(device_name, label):
            aliases = []
        root = f"{self._base}/5" if device.version == 5 else self._base
        topics = {part.role: f"{root}/{device.id}/{part.node}/{part.spec.id}"
                  for part in plan.parts}
        capabilities = {key: bounded_value(value, limits)
                        for key, value in (plan.capabilities or {}).items()}
        unit = capabilities.get("unit_of_measurement")
        return Entity(
            entity_id=entity_id, name=name, domain=plan.domain, aliases=tuple(aliases),
            device_class=plan.device_class, capabilities=capabilities,
            attributes={"unit_of_measurement": unit} if isinstance(unit, str) else {},
            available=self._available(device), source=self.name,
            wire=wire_of(device.version, device.id, topics, plan), unique_id=unique_id)

    def _claim(self, preferred: str, unique_id: str) -> str | None:
        """``preferred`` or a numbered variant: free, or already this unique id's."""
        for entity_id in (preferred, *(f"{preferred}_{n}" for n in range(2, MAX_ID_SUFFIX + 1))):
            existing = self._registry.get_any(entity_id)
            if existing is None or (existing.source == self.name
                                    and existing.unique_id == unique_id):
                return entity_id
        return None

    # -- values ---------------------------------------------------------------------------

    def _keep_value(self, device: _Device, key: str, text: str) -> bool:
        if len(text) > self._registry.limits.max_value_chars:
            self._intake.warn_once(("long value", key), "device %s: ignoring a %d-character value "
                                   "of %s", device.id, len(text), key)
            return False
        if key not in device.values and len(device.values) >= MAX_VALUES_PER_DEVICE:
            self._intake.warn_once(("values", device.id), "device %s: too many properties",
                                   device.id)
            return False
        device.values[key] = text
        return True

    def _apply(self, device: _Device, key: str) -> None:
        route = device.routes.get(key.removesuffix(f"/{TARGET}"))
        if route is None:
            return
        target = key.endswith(f"/{TARGET}")
        if target and route.part.role != "state":
            return  # a light's parts move together; their targets are not shown
        spec = route.part.spec
        value = parse_value(spec.datatype, spec.format, device.values[key], device.version == 4)
        if value is None:  # the convention: an invalid value is ignored
            self._intake.warn_once(("invalid", key), "device %s: ignoring an invalid %s value on "
                                   "%s", device.id, spec.datatype, key)
            return
        state, attributes = reading(route.domain, route.part.role, spec, value,
                                    route.has_brightness)
        limits = self._registry.limits
        if target:
            state, attributes = None, {"target": state}
        self._registry.update_state(route.entity_id, clean_text(state, limits.max_text_chars)
                                    if state is not None else None,
                                    bounded_attributes(attributes, limits))

    # -- commands -------------------------------------------------------------------------

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        return commands.encode(entity, command)

    def reports_state(self, entity: Entity) -> bool:
        return commands.reports_state(entity)
