"""The text API over MQTT (documented in docs/API.md).

Request  ``<base>/conversation/request``:  ``{"id": "...", "text": "...",
          "conversation_id": "...", "area": "...", "confirmation_id": "..."}`` (id and text
          required)
Response ``<base>/conversation/response/<id>``: the ConversationResponse as JSON plus ``id``
         (``{"id":..., "error": "..."}`` when the request itself was unusable).
Inventory ``<base>/devices/request`` ``{"id": "..."}`` → ``<base>/devices/response/<id>``:
          ``{"id", "entities", "appliances", "mdns"}`` (assistant/appliances/report.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from assistant.config import MqttConfig
from assistant.messages import ConversationRequest, ConversationResponse, MqttMessage

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ApiRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=REQUEST_ID.pattern)
    text: str = Field(max_length=2000)
    conversation_id: str | None = Field(None, max_length=128)
    area: str | None = Field(None, max_length=128)
    # The id of the question being answered: a "yes" for another question confirms nothing.
    confirmation_id: str | None = Field(None, max_length=64)


def describe_bad_request(exc: ValidationError) -> str:
    """What is wrong with a request, one plain sentence per field (for people, not parsers)."""
    return "\n".join(_describe_field_error(error) for error in exc.errors())


def _describe_field_error(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"])
    if error["type"] == "string_too_long":
        size = f"{len(error['input']):,} characters; the most is {error['ctx']['max_length']:,}"
        if field == "text":
            return f"That request is too long ({size}). Please say it shorter."
        return f"{field} is too long ({size})."
    if error["type"] == "missing":
        return f"The request has no {field}."
    if error["type"] == "extra_forbidden":
        return (f"{field} is not part of a request (it takes "
                f"{', '.join(ApiRequest.model_fields)}).")
    if error["type"] == "string_type":
        return f"{field} must be a string."
    return f"{field}: {error['msg']}."


def parse_request(message: MqttMessage, what: str) -> dict[str, Any] | None:
    """A JSON request object with a usable ``id`` (the reply topic ends with it); None, after
    logging why, for anything else."""
    try:
        body = json.loads(message.payload)
    except ValueError:
        log.warning("%s request on %s is not JSON", what, message.topic)
        return None
    request_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        log.warning("%s request without a usable id on %s", what, message.topic)
        return None
    return body


def request_topic(base: str) -> str:
    return f"{base}/conversation/request"


def response_topic(base: str, request_id: str) -> str:
    return f"{base}/conversation/response/{request_id}"


def devices_request_topic(base: str) -> str:
    return f"{base}/devices/request"


def devices_response_topic(base: str, request_id: str) -> str:
    return f"{base}/devices/response/{request_id}"


def rules_request_topic(base: str) -> str:
    return f"{base}/rules/request"


def rules_response_topic(base: str, request_id: str) -> str:
    return f"{base}/rules/response/{request_id}"


def voice_request_topic(base: str, request_id: str) -> str:
    return f"{base}/voice/request/{request_id}"


def voice_response_topic(base: str, request_id: str) -> str:
    return f"{base}/voice/response/{request_id}"


Converse = Callable[[ConversationRequest], Awaitable[ConversationResponse]]


class ConversationApi:
    """Serves text requests from the broker; each request runs in its own task."""

    def __init__(self, base_topic: str, converse: Converse,
                 publish: Callable[[MqttMessage], None]) -> None:
        self.base_topic = base_topic
        self.converse = converse
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, subscribe: Callable[[str, Callable[[MqttMessage], None]],
                                        Callable[[], None]]) -> Callable[[], None]:
        return subscribe(request_topic(self.base_topic), self._on_request)

    async def drain(self, timeout: float) -> None:
        """Let requests in flight finish (bounded) so no reply is cut in half at shutdown."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        for task in self._tasks:
            task.cancel()

    def _on_request(self, message: MqttMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError as exc:
            log.warning("conversation request on %s is not JSON: %s", message.topic, exc)
            return
        try:
            request = ApiRequest.model_validate(body)
        except ValidationError as exc:
            log.warning("bad conversation request on %s: %s", message.topic, exc)
            request_id = body.get("id") if isinstance(body, dict) else None
            if isinstance(request_id, str) and REQUEST_ID.match(request_id):
                self._reply(request_id, {"id": request_id, "error": describe_bad_request(exc)})
            return
        task = asyncio.get_running_loop().create_task(self._serve(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, request: ApiRequest) -> None:
        try:
            response = await self.converse(ConversationRequest(
                request.text, request.conversation_id, request.area,
                request.confirmation_id))
            body = {"id": request.id, **response.to_json()}
        except Exception as exc:  # the requester must always get an answer
            log.exception("conversation request %s failed", request.id)
            body = {"id": request.id, "error": f"internal error: {exc}"}
        self._reply(request.id, body)

    def _reply(self, request_id: str, body: dict[str, Any]) -> None:
        self.publish(MqttMessage(response_topic(self.base_topic, request_id),
                                 json.dumps(body).encode(), qos=1))


class DaemonNotRunningError(RuntimeError):
    pass


class ApiClient:
    """A blocking client for ``mimo-home ask``/``listen`` and the evaluation harness."""

    def __init__(self, config: MqttConfig, connect_timeout: float = 5.0) -> None:
        self.config = config
        self._responses: dict[str, dict[str, Any]] = {}
        self._waiting: set[str] = set()
        self._arrived = threading.Condition()
        self._daemon_status: str | None = None
        client = paho.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"mimo-home-ask-{uuid.uuid4().hex[:8]}")
        if config.username:
            client.username_pw_set(config.username, config.resolved_password())
        if config.tls.enabled:
            client.tls_set(ca_certs=str(config.tls.ca_file) if config.tls.ca_file else None)
            client.tls_insecure_set(config.tls.insecure)
        client.on_message = self._on_message
        try:
            client.connect(config.host, config.port, keepalive=30)
        except OSError as exc:
            raise DaemonNotRunningError(
                f"cannot reach the MQTT broker at {config.host}:{config.port} ({exc}); "
                "is the broker (or `mimo-home demo`) running?") from None
        client.subscribe([(f"{config.base_topic}/status", 1),
                          (response_topic(config.base_topic, "+"), 1),
                          (voice_response_topic(config.base_topic, "+"), 1),
                          (devices_response_topic(config.base_topic, "+"), 1),
                          (rules_response_topic(config.base_topic, "+"), 1)])
        client.loop_start()
        self._client = client
        # Wait for "online", not just any status: a daemon that is (re)connecting may still
        # have its retained will ("offline") standing for a moment.
        self._wait(lambda: self._daemon_status == "online", connect_timeout)
        if self._daemon_status != "online":
            self.close()
            raise DaemonNotRunningError(
                f"no mimo-home daemon is online at {config.host}:{config.port} "
                f"(base topic {config.base_topic!r}; status: {self._daemon_status or 'none'})")

    def ask(self, text: str, *, conversation_id: str | None = None, area: str | None = None,
            confirmation_id: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        body = {"id": request_id, "text": text, "conversation_id": conversation_id,
                "area": area, "confirmation_id": confirmation_id}
        payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        return self._request(request_topic(self.config.base_topic), payload, request_id,
                             timeout)

    def listen(self, wav: bytes, timeout: float = 60.0) -> dict[str, Any]:
        """Send a recording; the daemon answers with transcript, reply and actions."""
        request_id = uuid.uuid4().hex
        return self._request(voice_request_topic(self.config.base_topic, request_id), wav,
                             request_id, timeout)

    def devices(self, timeout: float = 30.0) -> dict[str, Any]:
        """The daemon's inventory: its entities and the appliances mDNS found."""
        request_id = uuid.uuid4().hex
        return self._request(devices_request_topic(self.config.base_topic),
                             json.dumps({"id": request_id}).encode(), request_id, timeout)

    def rules(self, op: str, name: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The daemon's rules (``op`` "list"), or one rule run now (``op`` "run")."""
        request_id = uuid.uuid4().hex
        body = {"id": request_id, "op": op, **({"name": name} if name is not None else {})}
        return self._request(rules_request_topic(self.config.base_topic),
                             json.dumps(body).encode(), request_id, timeout)

    def _request(self, topic: str, payload: bytes, request_id: str,
                 timeout: float) -> dict[str, Any]:
        with self._arrived:
            self._waiting.add(request_id)
        self._client.publish(topic, payload, qos=1)
        arrived = self._wait(lambda: request_id in self._responses, timeout)
        with self._arrived:
            self._waiting.discard(request_id)
            if not arrived:
                raise TimeoutError(f"no reply from mimo-home within {timeout:.0f} s")
            return self._responses.pop(request_id)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(predicate, timeout)

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        with self._arrived:
            if msg.topic.endswith("/status"):
                self._daemon_status = msg.payload.decode(errors="replace")
            else:
                try:
                    body = json.loads(msg.payload)
                    request_id = str(body["id"])
                except (ValueError, KeyError, TypeError):
                    return
                if request_id not in self._waiting:
                    return  # someone else's reply
                self._responses[request_id] = body
            self._arrived.notify_all()
