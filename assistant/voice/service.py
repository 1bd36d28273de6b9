"""What the daemon starts when ``voice.enabled``: the pipeline, the satellite server and the
MQTT voice API. The satellite server is started here, not by the pipeline it serves, so the
imports go one way: service -> wyoming_server -> pipeline."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry
from assistant.voice.config import VoiceConfig
from assistant.voice.mqtt_api import MessageHandler, VoiceMqttApi
from assistant.voice.pipeline import Converse, VoicePipeline
from assistant.voice.wyoming_server import WyomingSatelliteServer, advertise_wyoming

log = logging.getLogger(__name__)


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
        self._stoppers: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        """Loads the models (a few seconds), then serves microphone, satellites and MQTT."""
        await self.pipeline.start()
        if self.pipeline.config.satellites.enabled:
            await self._start_satellite_server()
        self.api.start()

    async def _start_satellite_server(self) -> None:
        satellites = self.pipeline.config.satellites
        server = WyomingSatelliteServer(self.pipeline, satellites)
        await server.start()
        self._stoppers.append(server.stop)
        if not satellites.advertise:
            return
        try:
            self._stoppers.append(await advertise_wyoming(
                name=satellites.advertise_name, port=satellites.port,
                address=satellites.advertise_address))
        except Exception:  # satellites can still be pointed at host:port by hand
            log.exception("could not advertise the satellite server with zeroconf")

    def set_muted(self, muted: bool) -> None:
        """Mute (or unmute) listening to the microphone and satellites; text still works."""
        self.pipeline.muted = muted
        log.info("listening %s", "muted" if muted else "unmuted")

    async def stop(self) -> None:
        await self.api.stop()
        for stop in reversed(self._stoppers):
            try:
                await stop()
            except Exception:
                log.exception("stopping a voice component failed")
        self._stoppers.clear()
        await self.pipeline.stop()
