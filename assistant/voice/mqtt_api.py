"""Voice requests over MQTT: the CLI sends audio, the daemon (which owns the models) answers.

Request  ``<base>/voice/request/<request_id>``: a WAV file, or raw 16 kHz mono s16le PCM.
Response ``<base>/voice/response/<request_id>``: JSON, ``{"id", "transcript", "reply",
         "actions", "path", "conversation_id", ..., "timings": {...}}``, or
         ``{"id", "error"}`` when the audio was unusable.
Request ids: 1-64 characters of ``A-Z a-z 0-9 _ . : -``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from assistant.transport.api import REQUEST_ID, voice_request_topic, voice_response_topic
from assistant.messages import MqttMessage
from assistant.voice.audio import AudioFormatError, decode_audio_payload
from assistant.voice.pipeline import VoicePipeline
from assistant.voice.tts import Publish

log = logging.getLogger(__name__)

MessageHandler = Callable[[MqttMessage], None]
Subscribe = Callable[[str, MessageHandler], Callable[[], None]]



class VoiceMqttApi:
    """Serves voice requests from the broker; each request runs in its own task."""

    def __init__(self, pipeline: VoicePipeline, *, base_topic: str, subscribe: Subscribe,
                 publish: Publish) -> None:
        self.pipeline = pipeline
        self.base_topic = base_topic
        self.subscribe = subscribe
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.subscribe(voice_request_topic(self.base_topic, "+"),
                                           self._on_request)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking requests; let those in flight finish (bounded)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        for task in self._tasks:
            task.cancel()

    def _on_request(self, message: MqttMessage) -> None:
        request_id = message.topic.rsplit("/", 1)[-1]
        if not REQUEST_ID.match(request_id):
            log.warning("ignoring a voice request with a bad id on %s", message.topic)
            return
        task = asyncio.get_running_loop().create_task(self._serve(request_id, message.payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, request_id: str, payload: bytes) -> None:
        try:
            pcm = await asyncio.to_thread(decode_audio_payload, payload,
                                          source=f"voice request {request_id}")
            result = await self.pipeline.process_utterance(pcm)
            body: dict[str, Any] = {"id": request_id, **result.to_json()}
        except AudioFormatError as exc:
            body = {"id": request_id, "error": str(exc)}
        except Exception as exc:  # the requester must always get an answer
            log.exception("voice request %s failed", request_id)
            body = {"id": request_id, "error": f"internal error: {exc}"}
        self.publish(MqttMessage(voice_response_topic(self.base_topic, request_id),
                                 json.dumps(body).encode(), qos=1))
