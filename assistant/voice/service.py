"""What the daemon starts when ``voice.enabled``: the pipeline plus its MQTT voice API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry
from assistant.voice.config import VoiceConfig
from assistant.voice.mqtt_api import MessageHandler, VoiceMqttApi
from assistant.voice.pipeline import Converse, VoicePipeline


class _MqttSettings(Protocol):
    base_topic: str


class MqttEndpoint(Protocol):
    """The part of the daemon's MqttLink used here."""

    @property
    def config(self) -> _MqttSettings: ...

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> Callable[[], None]: ...

    def publish(self, message: MqttMessage) -> None: ...


class VoiceService:
    def __init__(self, config: VoiceConfig, converse: Converse, registry: DeviceRegistry,
                 link: MqttEndpoint) -> None:
        self.pipeline = VoicePipeline(config, converse, registry, publish=link.publish)
        self.api = VoiceMqttApi(self.pipeline, base_topic=link.config.base_topic,
                                subscribe=link.subscribe, publish=link.publish)

    async def start(self) -> None:
        """Loads the models (a few seconds), then serves microphone, satellites and MQTT."""
        await self.pipeline.start()
        self.api.start()

    async def stop(self) -> None:
        await self.api.stop()
        await self.pipeline.stop()
