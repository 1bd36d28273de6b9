"""The inventory ``mimo-home devices`` reads: the daemon answers it over MQTT.

Request ``<base>/devices/request`` ``{"id": "..."}``; reply on ``<base>/devices/response/<id>``
``{"id", "entities": [...], "appliances": [...], "mdns": "browsing" | "off" | "unavailable"}``.
The registry is read on the event loop (a snapshot of immutable entities); rows and JSON are
made in a worker thread, so a large home does not stall the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assistant.appliances.inventory import ApplianceInventory
from assistant.appliances.records import Appliance
from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry, Entity
from assistant.transport.api import devices_request_topic, devices_response_topic, parse_request

log = logging.getLogger(__name__)

MAX_REPORTS_IN_FLIGHT = 2  # a flood of requests gets "busy", not a pile of threads
Subscribe = Callable[[str, Callable[[MqttMessage], None]], Callable[[], None]]


def _modes(capabilities: Mapping[str, Any], key: str) -> str | None:
    modes = capabilities.get(key)
    return "/".join(str(mode) for mode in modes) if isinstance(modes, list) and modes else None


def _span(capabilities: Mapping[str, Any], low: str, high: str, unit: str) -> str | None:
    bounds = capabilities.get(low), capabilities.get(high)
    return f"{bounds[0]}-{bounds[1]}{unit}" if None not in bounds else None


def capability_summary(capabilities: Mapping[str, Any]) -> str:
    """What an entity can do, in a few words: "color_temp/hs 2000-6500 K"."""
    speeds, unit = capabilities.get("speed_count"), capabilities.get("unit_of_measurement")
    parts = [
        _modes(capabilities, "supported_color_modes"),
        _span(capabilities, "min_color_temp_kelvin", "max_color_temp_kelvin", " K"),
        _modes(capabilities, "hvac_modes"),
        _span(capabilities, "min_temp", "max_temp",
              str(capabilities.get("temperature_unit") or "")),
        f"{speeds} speeds" if speeds else None,
        "position" if capabilities.get("reports_position") else None,
        str(unit) if unit else None,
    ]
    summary = " ".join(part for part in parts if part)
    return summary or _modes(capabilities, "services") or ""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a report needs, taken on the event loop; immutable from then on."""

    entities: tuple[Entity, ...]
    exposed: frozenset[str]
    area_names: dict[str, str]
    appliances: tuple[Appliance, ...]
    mdns: str


def _entity_row(entity: Entity, snapshot: _Snapshot) -> dict[str, Any]:
    return {
        "entity_id": entity.entity_id,
        "name": entity.name,
        "domain": entity.domain,
        "source": entity.source,
        "area": snapshot.area_names.get(entity.area or "", entity.area),
        "capabilities": capability_summary(entity.capabilities),
        "available": entity.available,
        "state": entity.state,
        "exposed": entity.entity_id in snapshot.exposed,
        "device_ids": list(entity.device_ids),
    }


def _render(request_id: str, snapshot: _Snapshot) -> bytes:
    return json.dumps({
        "id": request_id,
        "entities": [_entity_row(entity, snapshot) for entity in snapshot.entities],
        "appliances": [appliance.to_json() for appliance in snapshot.appliances],
        "mdns": snapshot.mdns,
    }, ensure_ascii=False).encode()


class InventoryServer:
    def __init__(self, base_topic: str, registry: DeviceRegistry,
                 inventory: ApplianceInventory | None,
                 publish: Callable[[MqttMessage], None]) -> None:
        self.base_topic = base_topic
        self.registry = registry
        self.inventory = inventory
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()

    def on_request(self, message: MqttMessage) -> None:
        body = parse_request(message, "devices")
        if body is None:
            return
        request_id = body["id"]
        if len(self._tasks) >= MAX_REPORTS_IN_FLIGHT:
            self._reply(request_id, json.dumps(
                {"id": request_id, "error": "busy: other inventory requests are being "
                                            "answered; try again"}).encode())
            return
        task = asyncio.get_running_loop().create_task(self._serve(request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _snapshot(self) -> _Snapshot:
        inventory = self.inventory
        return _Snapshot(
            entities=tuple(self.registry.all_entities()),
            exposed=frozenset(entity.entity_id for entity in self.registry.entities()),
            area_names={area_id: area.name for area_id, area in self.registry.areas.items()},
            appliances=tuple(inventory.appliances()) if inventory is not None else (),
            mdns=inventory.status if inventory is not None else "off")

    async def _serve(self, request_id: str) -> None:
        try:
            payload = await asyncio.to_thread(_render, request_id, self._snapshot())
        except Exception as exc:  # the requester must always get an answer
            log.exception("devices request %s failed", request_id)
            payload = json.dumps({"id": request_id, "error": f"internal error: {exc}"}).encode()
        self._reply(request_id, payload)

    def _reply(self, request_id: str, payload: bytes) -> None:
        self.publish(MqttMessage(devices_response_topic(self.base_topic, request_id), payload,
                                 qos=1))


def serve_inventory(base_topic: str, registry: DeviceRegistry,
                    inventory: ApplianceInventory | None, subscribe: Subscribe,
                    publish: Callable[[MqttMessage], None]) -> Callable[[], None]:
    """Answer inventory requests from now on; returns the function that stops answering."""
    server = InventoryServer(base_topic, registry, inventory, publish)
    return subscribe(devices_request_topic(base_topic), server.on_request)
