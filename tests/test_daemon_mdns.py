"""The daemon without ``mqtt.host`` uses a broker the LAN advertises as ``_mqtt._tcp``, and
without one falls back to localhost; with ``mqtt.host`` it never looks.

mDNS runs only inside a private network namespace (tests/netns.py): the child is this
module run as a script, with a real Mosquitto and the advertiser on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.netns import run_python, start_mosquitto

LOOPBACK = "127.0.0.1"
BROKER_PORT = 18831  # inside the namespace: nothing else listens there
WAIT_S = 20.0


async def run_daemon(state_dir: Path, mqtt: dict[str, Any]) -> dict[str, Any]:
    """Start a daemon with this ``mqtt`` section; where its link went and whether it got
    there."""
    from assistant.config import Config
    from assistant.daemon import Daemon

    config = Config.model_validate({
        "state_dir": str(state_dir), "mqtt": mqtt, "mdns": {"interfaces": [LOOPBACK]},
        "llm": {"enabled": False}, "voice": {"enabled": False}})
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.ready.wait(), WAIT_S)
        return {"host": daemon.link.config.host, "port": daemon.link.config.port,
                "connected": daemon.link.connected}
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, WAIT_S)


async def scenario() -> dict[str, Any]:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        mosquitto = start_mosquitto(BROKER_PORT, Path(directory))
        try:
            results["nothing advertised"] = await run_daemon(
                Path(directory) / "a", {"base_topic": "mdns-a", "client_id": "mdns-a"})
            advertiser = AsyncZeroconf(interfaces=[LOOPBACK])
            broker = AsyncServiceInfo(
                "_mqtt._tcp.local.", "Home broker._mqtt._tcp.local.", port=BROKER_PORT,
                addresses=[socket.inet_aton(LOOPBACK)], server="broker.local.")
            await asyncio.wait_for(await advertiser.async_register_service(broker), WAIT_S)
            results["advertised"] = await run_daemon(
                Path(directory) / "b", {"base_topic": "mdns-b", "client_id": "mdns-b"})
            results["configured"] = await run_daemon(
                Path(directory) / "c", {"host": "localhost", "port": 1,
                                        "base_topic": "mdns-c", "client_id": "mdns-c"})
            await advertiser.async_close()
        finally:
            mosquitto.terminate()
            mosquitto.wait(10)
    return results


@pytest.fixture(scope="module")
def outcome() -> dict[str, Any]:
    return run_python("-m", "tests.test_daemon_mdns", timeout=180)


def test_an_advertised_broker_is_used_when_none_is_configured(outcome: dict[str, Any]) -> None:
    assert outcome["advertised"] == {"host": LOOPBACK, "port": BROKER_PORT, "connected": True}


def test_without_an_advertised_broker_the_daemon_tries_localhost(
        outcome: dict[str, Any]) -> None:
    assert outcome["nothing advertised"] == {"host": "localhost", "port": 1883,
                                             "connected": False}


def test_a_configured_broker_is_never_replaced(outcome: dict[str, Any]) -> None:
    assert outcome["configured"] == {"host": "localhost", "port": 1, "connected": False}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario())))
