"""Home Assistant MQTT discovery adapter.

Devices that speak Home Assistant's MQTT discovery announce themselves with retained JSON
configs on ``<prefix>/<component>/[<node_id>/]<object_id>/config`` (one entity) or
``<prefix>/device/<device_id>/config`` (a ``cmps`` map of entities). This adapter turns those
configs into registry entities, follows their state, attribute and availability topics, and
encodes entity commands in the payload format each config declares. How a config is read is
in :mod:`.vocabulary`, what each component kind means in :mod:`.components`, templates in
:mod:`.templates`.

Discovery follows Home Assistant's rules: a device config shares ``availability*``,
``payload_(not_)available``, ``state_topic`` and ``command_topic`` with components that do
not set them; an empty retained config removes the entity, as does a component omitted from
(or reduced to its ``p`` in) a re-published ``cmps``. Leniencies: a device-level ``~`` also
serves components without their own, and ``availability_topic`` may be combined with an
``availability`` list.

Entity ids: ``default_entity_id``, else the legacy ``object_id`` option, else the object id of
the discovery topic (``<device id>_<component id>`` for device configs); on a clash with an
entity owned by another config or adapter, ``<component>.<node_id>_<object_id>`` is tried, then
the first with ``_2``, ``_3``... An entity id stays bound to the ``unique_id`` that created it:
after a restart a retained config with another ``unique_id`` (or none) never takes over a
persisted entity, its aliases and area. ``device_ids`` come from the ``device`` block.

Hostile devices are data (limits in ``DeviceLimits``, ``adapters.limits`` in the config):
oversized payloads are dropped with a warning; every topic must be one exact topic (a config
naming ``+``/``#``, a NUL or no level at all is refused, so no entity listens to the whole
broker); device strings, lists and attributes are cleaned and bounded as they arrive. A
template that fails is logged once per entity and template, and the message is skipped: the
entity keeps its state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from assistant.device_data import bounded_attributes, bounded_text_list, bounded_value, clean_text
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import Entity, RegistryFullError, normalize_name
from device_adapters.base import CommandNotSupportedError, DeviceAdapter, Running, Subscriptions
from device_adapters.ha_discovery.availability import Availability, availability
from device_adapters.ha_discovery.components import SUPPORTED_COMPONENTS, kind_for
from device_adapters.ha_discovery.components.kind import ComponentKind, Reader, Request
from device_adapters.ha_discovery.components.shared import ATTRIBUTES_READER
from assistant.templating import TemplateError, render_template, value_variables
from device_adapters.ha_discovery.vocabulary import (
    COMPONENT_ID,
    DEFAULT_PREFIX,
    DISCOVERY_TOPIC,
    SHARED_OPTIONS,
    TEXT_LIST_OPTIONS,
    TOPIC_BASE,
    Config,
    MalformedConfigError,
    apply_aliases,
    apply_topic_base,
    device_ids,
    expand_component,
    is_migration,
    parse_config,
)
from device_adapters.intake import SKIP_ERRORS

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PREFIX", "SOURCE", "HomeAssistantDiscoveryAdapter"]

DiscoveryKey = tuple[str, str]  # (component, discovery id), as Home Assistant keys configs

SOURCE = "ha_discovery"
_MAX_ID_SUFFIX = 100  # entity ids tried per config: <id>_2 .. <id>_100
_MAX_REMEMBERED_CHARS = 1024  # longer state payloads are read again each time: bounded memory


@dataclass(frozen=True, slots=True)
class _Reading:
    """A state message as the registry takes it: cleaned and bounded."""

    state: str | None
    attributes: dict[str, Any]


@dataclass(slots=True)
class _Tracked:
    """One discovered entity: its config, availability and subscriptions."""

    entity_id: str
    kind: ComponentKind
    wire: Config
    config: Config  # wire with defaults
    availability: Availability
    subscriptions: Subscriptions
    # reader topic option -> (payload, entity it was read into, the bounded reading): the
    # same payload read into the same entity again reads the same (see _on_state)
    last_readings: dict[str, tuple[str, Entity, _Reading]] = field(default_factory=dict)


def _slug(text: str) -> str:
    # Home Assistant caps entity ids at 255 characters; leave room for the domain and _2.
    return re.sub(r"\W+", "_", text.lower(), flags=re.ASCII).strip("_")[:200]


def _unique_id(config: Mapping[str, Any]) -> str | None:
    value = config.get("unique_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Home Assistant reads unique_id as a string
    return value if isinstance(value, str) and value else None


class HomeAssistantDiscoveryAdapter(DeviceAdapter):
    """Entities announced with Home Assistant MQTT discovery, and commands back to them."""

    name: ClassVar[str] = "ha_discovery"

    def __init__(self, discovery_prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = discovery_prefix.strip("/")
        self._tracked: dict[DiscoveryKey, _Tracked] = {}
        # device discovery id -> {component key: component id} of its cmps
        self._devices: dict[str, dict[DiscoveryKey, str]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def _started(self, running: Running) -> None:
        running.subscribe(f"{self._prefix}/#", self._on_discovery)
        running.on_stop(self._tracked.clear)
        running.on_stop(self._devices.clear)

    # -- discovery ----------------------------------------------------------------------------

    def _on_discovery(self, message: MqttMessage) -> None:
        prefix = self._prefix + "/"
        if not message.topic.startswith(prefix) or not message.topic.endswith("/config"):
            return  # state published under the prefix, not a config
        match = DISCOVERY_TOPIC.fullmatch(message.topic[len(prefix) :])
        if match is None:
            log.warning("ha_discovery: ignoring config on malformed topic %.200r", message.topic)
            return
        text = self._intake.text(message, config=True)
        if text is None:
            return
        component, node_id, object_id = match.group("component", "node_id", "object_id")
        if component == "device":
            self._on_device_config(node_id, object_id, text)
        else:
            self._on_component_config(component, node_id, object_id, text)

    def _supported(self, component: str) -> bool:
        if component in SUPPORTED_COMPONENTS:
            return True
        self._intake.warn_once(("component", component), "component %r is not supported",
                               component)
        return False

    def _on_component_config(
        self, component: str, node_id: str | None, object_id: str, text: str
    ) -> None:
        key = (component, f"{node_id} {object_id}" if node_id else object_id)
        if not text.strip():
            self._forget(key)
            return
        if not self._supported(component):
            return
        document = parse_config(text)
        if is_migration(document):
            self._forget(key, remove=False)  # the device config that follows takes it over
            return
        config = expand_component(document)
        apply_topic_base(config, config.pop(TOPIC_BASE, None))
        self._discover(key, component, object_id, config)

    def _on_device_config(self, node_id: str | None, object_id: str, text: str) -> None:
        device_id = f"{node_id} {object_id}" if node_id else object_id
        if not text.strip():
            for key in self._devices.pop(device_id, {}):
                self._forget(key)
            return
        document = expand_component(parse_config(text))
        if is_migration(document):
            for key in self._devices.pop(device_id, {}):
                self._forget(key, remove=False)
            return
        components, device = document.get("components"), document.get("device")
        if not isinstance(components, dict) or not isinstance(device, dict):
            raise MalformedConfigError("a device config needs a device and a cmps map")
        inherited: Config = {
            option: document[option] for option in SHARED_OPTIONS if option in document
        }
        inherited["device"] = device
        if isinstance(document.get("origin"), dict):
            inherited["origin"] = document["origin"]
        prefix = f"{object_id} {node_id}" if node_id else object_id
        previous = self._devices.get(device_id, {})
        current: dict[DiscoveryKey, str] = {}
        for component_id, raw in components.items():
            try:
                key = self._discover_device_component(
                    prefix, component_id, raw, inherited, document.get(TOPIC_BASE)
                )
            except SKIP_ERRORS as error:
                log.warning("ha_discovery: device %.200r component %.200r skipped: %.300s",
                            device_id, component_id, error)
                # A broken entry must not remove what that component was before.
                current.update({k: c for k, c in previous.items() if c == component_id})
                continue
            if key is not None:
                current[key] = component_id
        for key in previous.keys() - current.keys():
            self._forget(key)
        self._devices[device_id] = current

    def _discover_device_component(
        self, prefix: str, component_id: Any, raw: Any, inherited: Config, device_base: Any
    ) -> DiscoveryKey | None:
        """Discover one ``cmps`` entry; its key, or None when it was removed or ignored."""
        if not isinstance(component_id, str) or not COMPONENT_ID.fullmatch(component_id):
            raise MalformedConfigError("component ids may only hold [a-zA-Z0-9_-]")
        if not isinstance(raw, dict):
            raise MalformedConfigError("the component config is not an object")
        config = expand_component(raw)
        platform = config.pop("platform", None)
        if not isinstance(platform, str):
            raise MalformedConfigError("the component has no platform")
        key = (platform, f"{prefix} {component_id}")
        if not config:  # only "p" left: Home Assistant's way to remove one component
            self._forget(key)
            return None
        if not self._supported(platform):
            return None
        base = config.pop(TOPIC_BASE, device_base)
        config = {
            **{o: v for o, v in inherited.items() if o not in config},
            **config,
            "device": inherited["device"],
        }
        apply_topic_base(config, base)
        self._discover(key, platform, _slug(key[1]), config)
        return key

    def _bounded_lists(self, wire: Config) -> Config:
        """``wire`` with its lists of names (modes, effects...) cleaned and bounded."""
        limits = self._registry.limits
        bounded = dict(wire)
        for option in TEXT_LIST_OPTIONS:
            if isinstance(wire.get(option), list):
                if len(wire[option]) > limits.max_list_items:
                    self._intake.warn_once(("max_list_items", option), "%s cut to adapters.limits."
                                           "max_list_items (%d)", option, limits.max_list_items)
                bounded[option] = bounded_text_list(wire[option], limits)
        return bounded

    def _discover(
        self, key: DiscoveryKey, component: str, object_id: str, wire: Config
    ) -> None:
        """Create or replace the entity ``wire`` describes; a bad config changes nothing."""
        kind = kind_for(component, wire)
        apply_aliases(wire, kind.aliases)
        kind.validate(wire)
        wire = self._bounded_lists(wire)
        old = self._tracked.get(key)
        if old is not None and old.wire == wire:
            return  # a re-published retained config: nothing changed
        entity_id = self._claim_entity_id(key, component, wire, object_id)
        config = kind.effective(wire)
        availability_now = availability(wire, old.availability if old else None)
        entity = self._entity(entity_id, component, kind, wire, config, availability_now.available)
        try:
            self._registry.upsert(entity)
        except RegistryFullError:
            return  # the registry has warned; what was there stays
        if old is not None:
            old.subscriptions.close()
            if old.entity_id != entity_id:
                self._running.remove_entity(old.entity_id)
        tracked = _Tracked(entity_id, kind, wire, config, availability_now,
                           self._running.subscriptions())
        self._tracked[key] = tracked
        self._subscribe(key, tracked)
        log.info("ha_discovery: %s %s from %.200r", "updated" if old else "discovered",
                 entity_id, key)

    def _claim_entity_id(
        self, key: DiscoveryKey, component: str, config: Config, object_id: str
    ) -> str:
        preferred = config.get("default_entity_id") or config.get("object_id")
        if isinstance(preferred, str) and _slug(preferred.split(".", 1)[-1]):
            object_id = preferred.split(".", 1)[-1]
        object_part = _slug(object_id) or _slug(key[1])
        if not object_part:
            raise MalformedConfigError(f"no usable object id in {key[1]!r}")
        first = f"{component}.{object_part}"
        candidates = (first, f"{component}.{_slug(key[1]) or object_part}", *(
            f"{first}_{n}" for n in range(2, _MAX_ID_SUFFIX + 1)))
        owners = {tracked.entity_id: other for other, tracked in self._tracked.items()}
        unique_id = _unique_id(config)
        for entity_id in candidates:
            if owners.get(entity_id, key) != key:
                continue  # another live config has it
            existing = self._registry.get_any(entity_id)
            # Free, ours, or a persisted entity of ours whose device came back; never one that
            # another adapter owns or that another unique_id created (a look-alike config).
            if existing is None or existing.source == SOURCE and (
                existing.unique_id is None or existing.unique_id == unique_id
            ):
                return entity_id
        raise MalformedConfigError(f"entity id {first} and its variants belong to other devices")

    def _entity(
        self,
        entity_id: str,
        component: str,
        kind: ComponentKind,
        wire: Config,
        config: Config,
        available: bool,
    ) -> Entity:
        limits = self._registry.limits
        device = wire.get("device") or {}
        device_name = clean_text(device.get("name"), 100)
        entity_name = clean_text(wire.get("name"), 100)
        device_class = clean_text(wire.get("device_class"), 40)
        name = entity_name or device_name or entity_id.split(".", 1)[1].replace("_", " ")[:100]
        # Home Assistant shows "<device> <entity>" (or "<device> <device class>"); keep it as
        # an alias so "hallway sensor temperature" finds an entity named "Temperature".
        qualifier = entity_name or (device_class.replace("_", " ") if device_class else None)
        aliases = []
        if device_name and qualifier and (
            normalize_name(device_name) not in normalize_name(qualifier)
        ):
            aliases.append(f"{device_name} {qualifier}")
        existing = self._registry.get_any(entity_id)
        suggested_area = clean_text(device.get("suggested_area"), 100)
        area = self._registry.ensure_area(suggested_area, SOURCE) if suggested_area else None
        if existing is not None:  # keep what people set by hand
            aliases = list(dict.fromkeys((*existing.aliases, *aliases)))
            area = area or existing.area
        unit = clean_text(wire.get("unit_of_measurement"), 20)
        capabilities = kind.capabilities(config)
        return Entity(
            entity_category=clean_text(wire.get("entity_category"), 20),
            enabled_by_default=wire.get("enabled_by_default") is not False,
            unique_id=_unique_id(wire),
            entity_id=entity_id,
            name=name,
            domain=component,
            aliases=tuple(alias for alias in aliases if alias != name),
            area=area,
            device_class=device_class,
            capabilities={k: bounded_value(v, limits) for k, v in capabilities.items()},
            attributes={"unit_of_measurement": unit} if unit else {},
            available=available,
            source=SOURCE,
            wire=wire,
            device_ids=device_ids(device),
        )

    # -- subscriptions and state --------------------------------------------------------------

    def _subscribe(self, key: DiscoveryKey, tracked: _Tracked) -> None:
        routes: dict[str, list[Callable[[str, str], None]]] = {}
        for reader in (*tracked.kind.readers, ATTRIBUTES_READER):
            topic = tracked.config.get(reader.topic)
            if topic:
                routes.setdefault(topic, []).append(partial(self._on_state, key, reader))
        for topic in tracked.availability.topics:
            routes.setdefault(topic, []).append(partial(self._on_availability, key, topic))
        for topic, handlers in routes.items():
            tracked.subscriptions.add(topic, partial(self._dispatch, handlers))

    def _dispatch(
        self, handlers: list[Callable[[str, str], None]], message: MqttMessage
    ) -> None:
        text = self._intake.text(message)
        if text is None:
            return
        for handler in handlers:  # each on its own: one bad reading must not hide another
            self._intake.run(message.topic, handler, message.topic, text)

    def _on_state(self, key: DiscoveryKey, reader: Reader, topic: str, text: str) -> None:
        registry = self._registry
        tracked = self._tracked.get(key)
        entity = registry.get_any(tracked.entity_id) if tracked else None
        if tracked is None or entity is None:
            return
        template = tracked.config.get(reader.template) if reader.template else None
        last = tracked.last_readings.get(reader.topic)
        if last is not None and last[0] == text and last[1] is entity and not template:
            # A device repeating itself (a template might read the clock: not skipped).
            reading = last[2]
        else:
            value = self._render_value(tracked.entity_id, template, topic, text)
            if not value:  # Home Assistant ignores empty state messages
                return
            update = reader.apply(tracked.config, value, entity)
            if update is None:
                return
            limits = registry.limits
            reading = _Reading(clean_text(update.state, limits.max_text_chars),
                               bounded_attributes(update.attributes, limits))
        entity = registry.update_state(entity.entity_id, reading.state, reading.attributes)
        if entity is not None and len(text) <= _MAX_REMEMBERED_CHARS:
            tracked.last_readings[reader.topic] = (text, entity, reading)

    def _on_availability(self, key: DiscoveryKey, topic: str, _: str, text: str) -> None:
        tracked = self._tracked.get(key)
        if tracked is None:
            return
        expected = tracked.availability.topics[topic]
        value = self._render_value(tracked.entity_id, expected.template, topic, text)
        if value not in (expected.available, expected.not_available):
            return  # Home Assistant ignores anything else
        tracked.availability.record(topic, value == expected.available)
        self._registry.update_state(tracked.entity_id, available=tracked.availability.available)

    def _render_value(
        self, entity_id: str, template: Any, topic: str, payload: str
    ) -> str | None:
        """The payload through the value template; None (warned once per entity and
        template) when the template fails, so the message changes nothing."""
        if not template:
            return payload
        try:
            return render_template(str(template), value_variables(payload))
        except TemplateError as error:
            self._intake.warn_once(
                (entity_id, str(template)), "%s: template %.200r failed on a message on %.200r "
                "(%.200s); such messages are skipped", entity_id, template, topic, error,
            )
            return None

    def _forget(self, key: DiscoveryKey, *, remove: bool = True) -> None:
        tracked = self._tracked.pop(key, None)
        if tracked is None:
            return
        tracked.subscriptions.close()
        if remove:
            self._running.remove_entity(tracked.entity_id)
            log.info("ha_discovery: removed %s", tracked.entity_id)

    # -- commands -----------------------------------------------------------------------------

    def encode(self, entity: Entity, command: EntityCommand) -> list[MqttMessage]:
        if not entity.wire:
            raise CommandNotSupportedError(f"{entity.entity_id} has no discovery config")
        try:
            kind = kind_for(entity.domain, entity.wire)
            config = kind.effective(entity.wire)
        except (TypeError, ValueError) as error:
            raise CommandNotSupportedError(f"{entity.entity_id}: {error}") from None
        service = command.service
        if service == "toggle" and kind.toggle is not None:
            service = kind.toggle.service(entity.state)
        handler = kind.commands.get(service)
        if handler is None:
            raise CommandNotSupportedError(
                f"{entity.entity_id} ({kind.name}) has no {command.service!r} command"
            )
        problem = handler.missing(config)
        if problem:
            raise CommandNotSupportedError(f"{entity.entity_id} cannot {service}: {problem}")
        return handler.encode(Request(entity, config, command.params))

    def reports_state(self, entity: Entity) -> bool:
        """Home Assistant's optimistic rule: a device with no state topic for its kind, or
        marked ``optimistic: true``, never confirms a command."""
        try:
            return kind_for(entity.domain, entity.wire).reports_state(entity.wire)
        except (TypeError, ValueError):
            return False
