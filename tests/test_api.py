"""The MQTT text API on a real broker: what a requester reads when its request is unusable."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.transport.api import ApiClient, ConversationApi, request_topic, response_topic
from assistant.config import MqttConfig
from assistant.messages import ConversationRequest, ConversationResponse, MqttMessage
from assistant.transport.mqtt_link import MqttLink
from tests.conftest import Broker, free_port


async def echo_length(request: ConversationRequest) -> ConversationResponse:
    return ConversationResponse(reply=f"heard {len(request.text)} characters")


@dataclass(frozen=True)
class Served:
    config: MqttConfig  # what a client uses to reach the API
    link: MqttLink  # the API's own connection, also used here to publish raw requests


@pytest.fixture()
async def served(broker: Broker, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """A ConversationApi on a real MqttLink and broker."""
    base = f"mimo-api-{request.node.name[:24]}"
    config = MqttConfig(host=broker.host, port=broker.port, base_topic=base, client_id=base)
    link = MqttLink(config)
    api = ConversationApi(base, echo_length, link.publish)
    unsubscribe = api.start(link.subscribe)
    task = asyncio.create_task(link.run())
    await link.wait_connected(10)
    yield Served(config, link)
    unsubscribe()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def ask(served: Served, text: str) -> dict[str, object]:
    """What ``mimo-home ask TEXT`` receives."""
    def run() -> dict[str, object]:
        with ApiClient(served.config) as client:
            return client.ask(text, timeout=10)
    return await asyncio.wait_for(asyncio.to_thread(run), 20)


async def publish_raw(served: Served, body: dict[str, object]) -> dict[str, object]:
    """Publish ``body`` as it is (no client-side checks) and wait for the answer."""
    answer: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    def arrived(message: MqttMessage) -> None:
        if not answer.done():
            answer.set_result(json.loads(message.payload))
    unsubscribe = served.link.subscribe(
        response_topic(served.config.base_topic, str(body["id"])), arrived)
    try:
        served.link.publish(MqttMessage(request_topic(served.config.base_topic),
                                        json.dumps(body).encode(), qos=1))
        return await asyncio.wait_for(answer, 10)
    finally:
        unsubscribe()


async def test_a_request_over_the_length_limit_gets_a_plain_sentence(served: Served) -> None:
    reply = await ask(served, "a" * 2345)
    assert reply["error"] == ("That request is too long (2,345 characters; the most is "
                              "2,000). Please say it shorter.")


async def test_a_request_at_the_limit_is_served(served: Served) -> None:
    reply = await ask(served, "a" * 2000)
    assert reply["reply"] == "heard 2000 characters" and "error" not in reply


async def test_every_problem_gets_its_own_readable_line(served: Served) -> None:
    reply = await publish_raw(served, {"id": "bad1", "area": 7, "conversation_id": "c" * 200,
                                       "colour": "red"})
    lines = str(reply["error"]).splitlines()
    assert sorted(lines) == sorted([
        "The request has no text.",
        "area must be a string.",
        "conversation_id is too long (200 characters; the most is 128).",
        "colour is not part of a request (it takes id, text, conversation_id, area, "
        "confirmation_id).",
    ])


async def mimo_ask(runtime_dir: Path, extra_env: dict[str, str], text: str) -> dict[str, object]:
    """``mimo-home ask --json TEXT`` with no config file, as a user next to a demo runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_HOME")}
    env.update(XDG_RUNTIME_DIR=str(runtime_dir), **extra_env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant.cli", "ask", "--json", "--timeout", "10", text,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def write_demo_runtime(runtime_dir: Path, port: int, base_topic: str) -> None:
    """What a running ``mimo-home demo`` leaves for its clients (this process stands in for
    the demo's pid, which the clients check is alive)."""
    (runtime_dir / "mimo-home-demo.json").write_text(json.dumps(
        {"pid": os.getpid(), "host": "127.0.0.1", "port": port, "base_topic": base_topic}))


async def test_ask_finds_a_running_demo_from_its_runtime_file(served: Served,
                                                              tmp_path: Path) -> None:
    write_demo_runtime(tmp_path, served.config.port, served.config.base_topic)
    reply = await mimo_ask(tmp_path, {}, "hello")
    assert reply["reply"] == "heard 5 characters"


async def test_environment_overrides_win_over_the_demos_runtime_file(served: Served,
                                                                     tmp_path: Path) -> None:
    write_demo_runtime(tmp_path, free_port(), "somewhere-else")  # nothing listens there
    reply = await mimo_ask(tmp_path, {
        "MIMO_HOME__MQTT__PORT": str(served.config.port),
        "MIMO_HOME__MQTT__BASE_TOPIC": served.config.base_topic}, "hello")
    assert reply["reply"] == "heard 5 characters"
