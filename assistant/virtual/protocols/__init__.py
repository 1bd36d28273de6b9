"""The virtual home's protocol front ends, and which device goes to which.

``assign_protocols`` decides per fixture device (all its entities go together, as on a
real appliance): "mixed" picks, by a stable hash of the device id, one of the protocols
that can present every entity of it (HA discovery included), so the same fixture always
spreads the same way.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from assistant.virtual.fixtures import HomeSpec, VirtualEntitySpec
from assistant.virtual.protocols.base import FrontEnd, stable_hex
from assistant.virtual.protocols.ha_discovery import HaDiscoveryFrontEnd
from assistant.virtual.protocols.homie import HomieFrontEnd
from assistant.virtual.protocols.shelly import ShellyFrontEnd
from assistant.virtual.protocols.tasmota import TasmotaFrontEnd
from assistant.virtual.protocols.zigbee2mqtt import Zigbee2MqttFrontEnd

log = logging.getLogger(__name__)

HA = "ha"
MIXED = "mixed"
FRONT_ENDS: dict[str, type[FrontEnd]] = {
    fe.name: fe for fe in (HaDiscoveryFrontEnd, Zigbee2MqttFrontEnd, TasmotaFrontEnd,
                           ShellyFrontEnd, HomieFrontEnd)}
PROTOCOLS = tuple(FRONT_ENDS)
# "ha", "mixed", one protocol's name, or {entity id or fixture device id: protocol}
ProtocolChoice = str | Mapping[str, str]


@dataclass(frozen=True, slots=True)
class NativeTopics:
    """Where the native protocols live on the broker (as the daemon's adapters config)."""

    zigbee2mqtt: str = "zigbee2mqtt"  # Zigbee2MQTT's base_topic
    tasmota_discovery: str = "tasmota/discovery"
    tasmota_full_topic: str = "%prefix%/%topic%/"  # the devices' FullTopic
    homie: str = "homie"  # v5 devices under <homie>/5/<id>


def native_front_ends(home: HomeSpec, base_topic: str,
                      native: NativeTopics) -> dict[str, FrontEnd]:
    return {
        Zigbee2MqttFrontEnd.name: Zigbee2MqttFrontEnd(home, base_topic, native.zigbee2mqtt),
        TasmotaFrontEnd.name: TasmotaFrontEnd(home, base_topic, native.tasmota_discovery,
                                              native.tasmota_full_topic),
        ShellyFrontEnd.name: ShellyFrontEnd(home, base_topic),
        HomieFrontEnd.name: HomieFrontEnd(home, base_topic, native.homie),
    }


def assign_protocols(home: HomeSpec, entities: Iterable[VirtualEntitySpec],
                     choice: ProtocolChoice) -> dict[str, str]:
    """{entity id: protocol} for the published ``entities``."""
    if isinstance(choice, str) and choice not in (MIXED, *PROTOCOLS):
        raise ValueError(f"unknown protocols {choice!r}: use {MIXED}, "
                         f"{', '.join(PROTOCOLS)} or a mapping")
    groups: dict[str, list[VirtualEntitySpec]] = defaultdict(list)
    for entity in entities:
        groups[entity.device or entity.entity_id].append(entity)
    names = _UniqueNames()
    assigned: dict[str, str] = {}
    refused: set[tuple[str, str]] = set()
    for key, members in groups.items():
        fits = [p for p in PROTOCOLS
                if all(FRONT_ENDS[p].can_present(e) for e in members) and names.free(p, members)]
        if choice == MIXED:
            protocol = fits[int(stable_hex(key, 8), 16) % len(fits)]
        else:
            wanted = choice if isinstance(choice, str) else _wanted(choice, key, members)
            protocol = wanted if wanted in fits else HA
            if protocol != wanted:
                refused.update((wanted, e.domain) for e in members)
        names.take(protocol, members)
        assigned.update((e.entity_id, protocol) for e in members)
    for protocol, domain in sorted(refused):
        log.info("virtual home: %s cannot present this %s (a domain or capability it lacks, "
                 "or a name it already has): it stays on HA discovery", protocol, domain)
    return assigned


def _wanted(choice: Mapping[str, str], key: str, members: list[VirtualEntitySpec]) -> str:
    for name in (key, *(e.entity_id for e in members)):
        if name in choice:
            if choice[name] not in PROTOCOLS:
                raise ValueError(f"{name}: unknown protocol {choice[name]!r}")
            return choice[name]
    return HA


class _UniqueNames:
    """Zigbee2MQTT addresses devices by friendly name: no two may share one."""

    _UNIQUE = frozenset({Zigbee2MqttFrontEnd.name})

    def __init__(self) -> None:
        self._taken: dict[str, set[str]] = defaultdict(set)

    def free(self, protocol: str, members: list[VirtualEntitySpec]) -> bool:
        if protocol not in self._UNIQUE:
            return True
        names = [e.name.casefold() for e in members]
        return len(set(names)) == len(names) and not self._taken[protocol] & set(names)

    def take(self, protocol: str, members: list[VirtualEntitySpec]) -> None:
        if protocol in self._UNIQUE:
            self._taken[protocol].update(e.name.casefold() for e in members)
