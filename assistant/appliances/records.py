"""Appliances as the LAN advertises them, and the entities that are the same appliance.

Everything an advertisement says is device text: it is cleaned and bounded here, once,
before anything else reads it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from assistant.appliances.protocols import BY_TYPE, Protocol, normalize_mac
from assistant.device_data import DeviceLimits, clean_text
from assistant.registry import Entity

MAX_TXT_KEYS = 64  # a TXT record read per advertisement (real ones carry about a dozen)
MAX_ADDRESSES = 8
MAX_LINKED_ENTITIES = 50  # entity ids kept on one appliance
# Keys of an entity's wire description that hold the device's own MQTT name (the Shelly
# adapter's topic prefix and the device id its RPC replies come from).
DEVICE_NAME_WIRE_KEYS = ("prefix", "device_src")


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What one resolved mDNS service said, as it came (untrusted)."""

    service_type: str  # "_shelly._tcp.local."
    name: str  # the instance's full name: "shellyplus1pm-a8032ab12345._shelly._tcp.local."
    host: str | None  # the SRV target: "shellyplus1pm-a8032ab12345.local."
    addresses: tuple[str, ...]
    port: int | None
    txt: Mapping[bytes, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Appliance:
    """One advertised service: what it is, and whether mimo-home controls it (and how)."""

    key: str  # the service's full name, unique on the LAN
    protocol: str  # "Shelly"
    service_type: str  # "_shelly._tcp"
    instance: str  # the instance label: "shellyplus1pm-a8032ab12345"
    name: str  # the best name the advertisement gives
    model: str | None
    addresses: tuple[str, ...]
    port: int | None
    host: str | None
    mac: str | None  # 12 lowercase hex digits
    controlled: bool = False
    adapters: tuple[str, ...] = ()  # the adapters whose entities are this appliance
    entity_ids: tuple[str, ...] = ()
    note: str = ""  # how mimo-home controls it, or why it does not

    def to_json(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


@dataclass(frozen=True, slots=True)
class ApplianceEvent:
    change: Literal["added", "updated", "removed"]
    appliance: Appliance


def describe(advert: Advertisement, limits: DeviceLimits) -> Appliance | None:
    """The appliance an advertisement tells of; None for a service type we do not list."""
    protocol = BY_TYPE.get(advert.service_type)
    if protocol is None:
        return None
    limit = limits.max_text_chars
    txt = _txt_values(advert.txt, limit)
    instance = clean_text(advert.name.removesuffix(f".{advert.service_type}"), limit) or "?"
    host = clean_text(advert.host, limit)
    model = next((txt[key] for key in protocol.model_keys if txt.get(key)), None)
    if model is None and protocol.model_in_instance is not None:
        found = protocol.model_in_instance.match(instance)
        model = found.group(1) if found else None
    return Appliance(
        key=clean_text(advert.name, limit * 2) or instance,
        protocol=protocol.label,
        service_type=protocol.short_type,
        instance=instance,
        name=next((txt[key] for key in protocol.name_keys if txt.get(key)), instance),
        model=model,
        addresses=tuple(dict.fromkeys(
            text for text in (clean_text(a, 64) for a in advert.addresses[:MAX_ADDRESSES])
            if text)),
        port=advert.port if isinstance(advert.port, int) and 0 < advert.port < 65536 else None,
        host=host,
        mac=_mac(protocol, instance, host, txt),
        note=_note(protocol, ()),
    )


def _txt_values(txt: Mapping[bytes, bytes | None], limit: int) -> dict[str, str]:
    """TXT keys (case-insensitive, as DNS-SD has them) to clean values."""
    values: dict[str, str] = {}
    for key, value in islice(txt.items(), MAX_TXT_KEYS):
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            continue
        text = clean_text(value[: limit * 4].decode("utf-8", "replace"), limit)
        name = key[:64].decode("ascii", "replace").lower()
        if text is not None:
            values.setdefault(name, text)
    return values


def _mac(protocol: Protocol, instance: str, host: str | None,
         txt: Mapping[str, str]) -> str | None:
    for where, pattern in protocol.macs:
        text = {"@instance": instance, "@host": host}.get(where) if where.startswith("@") \
            else txt.get(where.lower())
        found = pattern.search(text) if text else None
        mac = normalize_mac(found.group(1)) if found else None
        if mac is not None:
            return mac
    return None


def _note(protocol: Protocol, adapters: tuple[str, ...]) -> str:
    sentence = protocol.linked.format(adapters=", ".join(adapters)) if adapters \
        else protocol.unlinked
    return f"{protocol.label}: {sentence}"


class EntityIndex:
    """The registry's entities by the identities an appliance can be matched on."""

    def __init__(self, entities: Iterable[Entity]) -> None:
        self._by_device_id: dict[str, list[Entity]] = defaultdict(list)
        self._by_name: dict[tuple[str, str], list[Entity]] = defaultdict(list)
        for entity in entities:
            for device_id in entity.device_ids:
                self._by_device_id[device_id].append(entity)
            names = {entity.wire.get(key) for key in DEVICE_NAME_WIRE_KEYS}
            for name in names:
                if isinstance(name, str):
                    self._by_name[(entity.source, name.casefold())].append(entity)

    def same_appliance(self, appliance: Appliance, protocol: Protocol) -> list[Entity]:
        found = list(self._by_device_id.get(f"mac:{appliance.mac}", ())) if appliance.mac \
            else []
        if protocol.instance_adapter is not None:
            found += self._by_name.get((protocol.instance_adapter,
                                        appliance.instance.casefold()), ())
        return list({entity.entity_id: entity for entity in found}.values())


def linked(appliance: Appliance, index: EntityIndex) -> Appliance:
    """``appliance`` with its control fields set from the entities that are the same device."""
    protocol = BY_TYPE[f"{appliance.service_type}.local."]
    entities = index.same_appliance(appliance, protocol)
    adapters = tuple(sorted({entity.source for entity in entities}))
    return dataclasses.replace(
        appliance, controlled=bool(entities), adapters=adapters,
        entity_ids=tuple(sorted(e.entity_id for e in entities))[:MAX_LINKED_ENTITIES],
        note=_note(protocol, adapters))
