"""Shelly JSON-RPC over MQTT: request frames, replies matched by id and src, errors and
timeouts (frames as General/RPCProtocol of Shelly's Gen2+ docs shows them)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from assistant.messages import CommandNotSentError, MqttMessage
from device_adapters.shelly.rpc import (
    MAX_PENDING,
    RpcClient,
    RpcError,
    RpcTimeoutError,
    our_src,
)

DEVICE = "shellypro4pm-f008d1d8b8b8"
SRC = "mimo-home-hub"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[MqttMessage] = []
        self.refuse = False

    def publish(self, message: MqttMessage) -> None:
        if self.refuse:
            raise CommandNotSentError("the broker is away")
        self.sent.append(message)

    def frame(self, index: int = -1) -> dict[str, Any]:
        return json.loads(self.sent[index].payload)


@pytest.fixture
async def rpc() -> tuple[RpcClient, Outbox]:
    outbox = Outbox()
    return RpcClient(SRC, outbox.publish, 5.0, asyncio.get_running_loop()), outbox


def reply(request_id: Any, **frame: Any) -> dict[str, Any]:
    return {"id": request_id, "src": DEVICE, "dst": SRC, **frame}


async def test_a_request_frame(rpc: tuple[RpcClient, Outbox]) -> None:
    client, outbox = rpc
    client.call(DEVICE, "Switch.Set", {"id": 0, "on": True}, device_src=DEVICE)
    message = outbox.sent[0]
    assert (message.topic, message.qos, message.retain) == (f"{DEVICE}/rpc", 1, False)
    assert outbox.frame() == {"id": 1, "src": SRC, "method": "Switch.Set",
                              "params": {"id": 0, "on": True}}
    client.call(DEVICE, "Shelly.GetStatus")
    assert outbox.frame() == {"id": 2, "src": SRC, "method": "Shelly.GetStatus", "params": {}}
    assert client.reply_topic == f"{SRC}/rpc"
    client.close()


async def test_a_reply_is_matched_by_id_and_src(rpc: tuple[RpcClient, Outbox]) -> None:
    client, _outbox = rpc
    first = client.call(DEVICE, "Switch.GetStatus", {"id": 0}, device_src=DEVICE)
    second = client.call(DEVICE, "Switch.GetStatus", {"id": 1}, device_src=DEVICE)
    client.on_reply(reply(3, result={"id": 0}))  # no such request
    client.on_reply(reply(True, result={"id": 0}))  # JSON true is not id 1
    client.on_reply(reply(1.0, result={"id": 0}))  # nor is 1.0
    client.on_reply(reply(1, result={"id": 0}, src="shellyplus1-000000000000"))  # another device
    client.on_reply(reply(1, result={"id": 0}, dst="someone-else"))  # not for us
    assert not first.done() and client.pending == 2
    client.on_reply(reply(2, result={"id": 1, "output": False}))
    assert second.result().result == {"id": 1, "output": False}
    assert not first.done()
    client.on_reply(reply(1, result={"id": 0, "output": True}))
    assert first.result().src == DEVICE and first.result().result["output"] is True
    assert client.pending == 0
    client.on_reply(reply(1, result={"id": 0, "output": False}))  # a duplicate: ignored


async def test_a_reply_to_a_first_question_may_come_from_anyone(
    rpc: tuple[RpcClient, Outbox],
) -> None:
    client, _outbox = rpc
    asked = client.call("some/prefix", "Shelly.GetDeviceInfo")  # whose src is not known yet
    client.on_reply({"id": 1, "src": "whoever", "result": {"id": "whoever"}})  # no dst: fine
    assert asked.result().src == "whoever"


async def test_error_replies(rpc: tuple[RpcClient, Outbox]) -> None:
    client, _outbox = rpc
    calls = [client.call(DEVICE, "Cover.GoToPosition", {"id": 0, "pos": 50}, device_src=DEVICE)
             for _ in range(4)]
    client.on_reply(reply(1, error={"code": -103, "message": "Invalid argument 'pos'!"}))
    client.on_reply(reply(2, error="broken"))
    client.on_reply(reply(3))  # neither result nor error
    client.on_reply(reply(4, result=None))  # Cover.Open and the like answer null
    with pytest.raises(RpcError) as error:
        calls[0].result()
    assert (error.value.code, error.value.message) == (-103, "Invalid argument 'pos'!")
    for call in calls[1:3]:
        with pytest.raises(RpcError):
            call.result()
    assert calls[3].result().result == {}
    assert client.pending == 0


async def test_a_missing_reply_times_out(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox()
    client = RpcClient(SRC, outbox.publish, 0.05, asyncio.get_running_loop())
    answered = client.call(DEVICE, "Shelly.GetConfig", device_src=DEVICE)
    silent = client.call(DEVICE, "Shelly.GetStatus", device_src=DEVICE)
    client.on_reply(reply(1, result={}))
    with caplog.at_level(logging.WARNING):
        with pytest.raises(RpcTimeoutError):
            await asyncio.wait_for(silent, 2)
    assert answered.result().result == {}
    assert "no reply to Shelly.GetStatus" in caplog.text
    assert "Shelly.GetConfig" not in caplog.text
    assert client.pending == 0
    client.on_reply(reply(2, result={}))  # too late: ignored


async def test_a_command_reply_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox()
    client = RpcClient(SRC, outbox.publish, 0.05, asyncio.get_running_loop())
    ok = client.request(DEVICE, "Switch.Set", {"id": 0, "on": True}, device_src=DEVICE)
    failing = client.request(DEVICE, "Switch.Set", {"id": 5, "on": True}, device_src=DEVICE)
    assert outbox.sent == []  # the gateway sends it
    assert json.loads(ok.payload)["id"] == 1 and json.loads(failing.payload)["id"] == 2
    with caplog.at_level(logging.WARNING):
        client.on_reply(reply(1, result={"was_on": False}))
        client.on_reply(reply(2, error={"code": 404, "message": "No such component"}))
    assert "No such component" in caplog.text and "was_on" not in caplog.text
    assert client.pending == 0


async def test_requests_are_bounded_and_unsent_ones_forgotten(
    rpc: tuple[RpcClient, Outbox],
) -> None:
    client, outbox = rpc
    outbox.refuse = True
    refused = client.call(DEVICE, "Shelly.GetStatus")
    with pytest.raises(RpcError):
        refused.result()
    assert client.pending == 0
    outbox.refuse = False
    calls = [client.call(DEVICE, "Shelly.GetStatus") for _ in range(MAX_PENDING + 1)]
    assert client.pending == MAX_PENDING
    with pytest.raises(RpcError):
        calls[-1].result()
    assert not calls[0].done()
    client.close()
    assert client.pending == 0 and calls[0].cancelled()


@pytest.mark.parametrize(("client_id", "src"), [
    ("mimo-home", "mimo-home-mimo-home"),
    ("hub/kitchen#1", "mimo-home-hub_kitchen_1"),
    ("+", "mimo-home"),
    ("x" * 300, ("mimo-home-" + "x" * 300)[:100]),
])
def test_our_src_is_one_safe_topic_level(client_id: str, src: str) -> None:
    assert our_src(client_id) == src
