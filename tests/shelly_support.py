"""Shared by the Shelly tests: the documented devices (tests/data/shelly), how such a device
answers RPC requests, and an in-process broker that lets the adapter talk to them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry, Entity
from device_adapters.base import AdapterContext
from device_adapters.shelly import ShellyAdapter
from tests import adapter_support

DEVICES = Path(__file__).parent / "data" / "shelly"
SRC = "mimo-home-test"  # our_src("test")


def device(name: str) -> dict[str, Any]:
    return json.loads((DEVICES / f"{name}.json").read_text(encoding="utf-8"))


def reply_to(recorded: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The documented response frame of ``recorded`` to ``request``: the recorded result of
    a Shelly.* method, ``{"was_on": ...}`` for Switch.Set/Toggle, null for the rest."""
    method = request["method"]
    result = recorded.get(method, {"was_on": False} if method.startswith("Switch.") else None)
    src = recorded.get("src", recorded["Shelly.GetDeviceInfo"]["id"])  # "src": a test's lie
    return {"id": request["id"], "src": src,
            "dst": request["src"], "result": result}


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    """Let the loop run (replies, timers) until ``predicate`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)


class FakeBroker(adapter_support.FakeBroker):
    """The in-process broker; a device added with ``serve`` answers the requests published
    to its ``<prefix>/rpc`` as the recorded device would."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, dict[str, Any]] = {}  # by request topic

    def publish(self, message: MqttMessage) -> None:
        super().publish(message)
        recorded = self.devices.get(message.topic)
        if recorded is not None:
            request = json.loads(message.payload)
            reply = json.dumps(reply_to(recorded, request))
            asyncio.get_running_loop().call_soon(self.deliver, f"{request['src']}/rpc", reply)

    def serve(self, recorded: dict[str, Any]) -> None:
        self.devices[f"{recorded['prefix']}/rpc"] = recorded

    def requests(self, prefix: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.published if m.topic == f"{prefix}/rpc"]


@dataclass
class Hub:
    registry: DeviceRegistry
    broker: FakeBroker
    adapter: ShellyAdapter
    stop: Callable[[], None] = field(default=lambda: None)

    @classmethod
    def started(cls, registry: DeviceRegistry | None = None, **options: Any) -> Hub:
        registry = registry or DeviceRegistry(None)
        broker = FakeBroker()
        adapter = ShellyAdapter(client_id="test", **options)
        stop = adapter.start(AdapterContext(registry, broker.subscribe, broker.publish))
        return cls(registry, broker, adapter, stop)

    async def add(self, name: str) -> dict[str, Any]:
        """Bring a recorded device online and wait until the adapter has read it."""
        recorded = device(name)
        self.broker.serve(recorded)
        self.broker.deliver(f"{recorded['prefix']}/online", "true")
        await self.settled(recorded["prefix"])
        return recorded

    async def settled(self, prefix: str) -> None:
        """Wait until every request to ``prefix`` has had its answer handled."""
        await until(lambda: prefix not in self.adapter._probing)

    def entity(self, entity_id: str) -> Entity:
        entity = self.registry.get_any(entity_id)
        assert entity is not None, f"{entity_id} is not in the registry"
        return entity

    def notify(self, recorded: dict[str, Any], index: int) -> None:
        self.broker.deliver(f"{recorded['prefix']}/events/rpc", recorded["notifications"][index])

    def shelly_entities(self) -> dict[str, Entity]:
        return {e.entity_id: e for e in self.registry.all_entities() if e.source == "shelly"}
