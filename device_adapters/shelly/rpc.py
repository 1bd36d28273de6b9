"""JSON-RPC 2.0 over MQTT as Shelly Gen2+ devices speak it.

A request goes to ``<prefix>/rpc`` as ``{"id", "src", "method", "params"}``; the device answers
on ``<src>/rpc`` with the same ``id``, its own ``src`` and either ``result`` or ``error``
(``{"code", "message"}``). A reply counts only when its ``id`` is pending, it comes from the
device the request went to, and it is addressed to us; anything else is ignored. A request
whose reply does not come within the timeout is logged and forgotten. Nothing here blocks:
every call is a future resolved by the reply handler or by a timer on the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.device_data import clean_text
from assistant.messages import CommandNotSentError, MqttMessage

log = logging.getLogger(__name__)

COMMAND_QOS = 1
MAX_PENDING = 256  # requests awaiting a reply: devices cannot make us keep more
_TOPIC_LEVEL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class RpcError(Exception):
    """The device answered with an error frame, or with no usable answer."""

    def __init__(self, code: Any, message: Any) -> None:
        self.code = code if isinstance(code, int) and not isinstance(code, bool) else None
        self.message = clean_text(message, 200) or "no message"
        super().__init__(f"error {self.code}: {self.message}")


class RpcTimeoutError(TimeoutError):
    """No reply came in time."""


def our_src(client_id: str) -> str:
    """Our ``src``: the device answers on ``<src>/rpc``, so it must be one safe topic level."""
    cleaned = _TOPIC_LEVEL_UNSAFE.sub("_", f"mimo-home-{client_id}").strip("_-")
    return cleaned[:100]


@dataclass(frozen=True, slots=True)
class Reply:
    src: Any  # who answered: a device's src is its id
    result: dict[str, Any]


@dataclass(slots=True)
class _Pending:
    prefix: str
    method: str
    device_src: str | None  # the src the reply must carry; None while we do not know it yet
    future: asyncio.Future[Reply] | None  # None: a command, whose reply is logged
    timer: asyncio.TimerHandle


class RpcClient:
    """Outgoing requests and their replies; ``publish`` is the MQTT link's."""

    def __init__(self, src: str, publish: Callable[[MqttMessage], None], timeout_s: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.src = src
        self.reply_topic = f"{src}/rpc"
        self._publish = publish
        self._timeout_s = timeout_s
        self._loop = loop
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def request(self, prefix: str, method: str, params: dict[str, Any] | None = None, *,
                device_src: str | None = None) -> MqttMessage:
        """A request frame whose reply will be logged, not awaited (for commands)."""
        return self._register(prefix, method, params, device_src, None)[1]

    def call(self, prefix: str, method: str, params: dict[str, Any] | None = None, *,
             device_src: str | None = None) -> asyncio.Future[Reply]:
        """Publish a request; the future holds the reply, RpcError or RpcTimeoutError."""
        future: asyncio.Future[Reply] = self._loop.create_future()
        try:
            request_id, message = self._register(prefix, method, params, device_src, future)
        except RpcError as error:
            future.set_exception(error)
            return future
        try:
            self._publish(message)
        except CommandNotSentError as error:
            self._drop(request_id)
            future.set_exception(RpcError(None, f"not sent: {error}"))
        return future

    def _register(self, prefix: str, method: str, params: dict[str, Any] | None,
                  device_src: str | None,
                  future: asyncio.Future[Reply] | None) -> tuple[int, MqttMessage]:
        if len(self._pending) >= MAX_PENDING:
            raise RpcError(None, f"{MAX_PENDING} requests are already awaiting replies")
        request_id = next(self._ids)
        timer = self._loop.call_later(self._timeout_s, self._expire, request_id)
        self._pending[request_id] = _Pending(prefix, method, device_src, future, timer)
        frame = {"id": request_id, "src": self.src, "method": method, "params": params or {}}
        payload = json.dumps(frame, separators=(",", ":")).encode()
        return request_id, MqttMessage(f"{prefix}/rpc", payload, qos=COMMAND_QOS, retain=False)

    def on_reply(self, frame: dict[str, Any]) -> None:
        """A frame that arrived on our reply topic."""
        request_id = frame.get("id")
        # JSON's true would equal id 1 as a dict key: only a real integer is an id of ours.
        is_id = isinstance(request_id, int) and not isinstance(request_id, bool)
        pending = self._pending.get(request_id) if is_id else None
        if pending is None:
            log.debug("shelly: a reply with no pending id %.40r", request_id)
            return
        if frame.get("dst", self.src) != self.src or (
            pending.device_src is not None and frame.get("src") != pending.device_src
        ):
            log.debug("shelly: reply %d is not from %s for us", request_id, pending.device_src)
            return
        self._drop(request_id)
        outcome = _outcome(frame)
        if pending.future is None:
            if isinstance(outcome, RpcError):
                log.warning("shelly: %s on %.200r failed: %s", pending.method, pending.prefix,
                            outcome)
        elif not pending.future.done():
            if isinstance(outcome, RpcError):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(Reply(frame.get("src"), outcome))

    def _expire(self, request_id: int) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        if pending.future is None:
            # A command: the gateway may have encoded it and never sent it (another failed).
            log.debug("shelly: no reply to %s on %.200r", pending.method, pending.prefix)
            return
        log.warning("shelly: no reply to %s from %.200r in %gs", pending.method, pending.prefix,
                    self._timeout_s)
        if not pending.future.done():
            pending.future.set_exception(RpcTimeoutError(f"{pending.method}: no reply"))

    def _drop(self, request_id: int) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            pending.timer.cancel()

    def close(self) -> None:
        """Forget every pending request (the adapter is stopping)."""
        for request_id, pending in list(self._pending.items()):
            self._drop(request_id)
            if pending.future is not None and not pending.future.done():
                pending.future.cancel()


def _outcome(frame: dict[str, Any]) -> dict[str, Any] | RpcError:
    if "error" in frame:
        error = frame["error"]
        if isinstance(error, dict):
            return RpcError(error.get("code"), error.get("message"))
        return RpcError(None, "a malformed error")
    if "result" not in frame:
        return RpcError(None, "a reply with neither result nor error")
    result = frame["result"]
    if result is None:  # Cover.Open and friends answer null
        return {}
    if not isinstance(result, dict):
        return RpcError(None, "a result that is not an object")
    return result
