"""What the daemon starts when ``voice.enabled``: the pipeline, the satellite server and the
MQTT voice API. The satellite server is started here, not by the pipeline it serves, so the
imports go one way: service -> wyoming_server -> pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from assistant.messages import MqttMessage
from assistant.registry import DeviceRegistry
from assistant.voice.config import VoiceConfig
from assistant.voice.mqtt_api import MessageHandler, VoiceMqttApi
from assistant.voice.pipeline import Converse, VoicePipeline, resolve_area
from assistant.voice.tts import SpeechChunk
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
        self.satellites: WyomingSatelliteServer | None = None

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
        self.satellites = server
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

    async def speak(self, text: str, area: str | None) -> bool:
        """Says ``text`` in ``area`` (an area id or name): on the hub's own output when the
        hub stands there (``microphone.area``) or when ``area`` is None, and on every satellite
        connected in that area. True only when at least one of them played it; False while
        muted, when nothing in that area can speak, or when every one of them failed.
        Rendering runs in the voice's worker thread; a voice failure raises; without a
        voice for the home's language (text only) nothing is said."""
        if self.pipeline.muted or not text.strip() or not self.pipeline.tts.speaks:
            return False
        registry = self.pipeline.registry
        area = resolve_area(registry, area)
        on_hub = self.pipeline.output.can_announce and (
            area is None or area == resolve_area(registry, self.pipeline.config.microphone.area))
        satellites = (self.satellites.satellites_in(area)
                      if self.satellites is not None and area is not None else [])
        if not on_hub and not satellites:
            return False
        audio, sample_rate = await self.pipeline.tts.synthesize_all(text)
        chunk = SpeechChunk(audio, sample_rate)
        plays: list[Awaitable[bool]] = [satellite.announce(chunk) for satellite in satellites]
        if on_hub:
            plays.append(self.pipeline.output.announce(chunk))
        outcomes = await asyncio.gather(*plays, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.warning("an announcement in %s did not play: %r", area or "the hub", outcome)
        return any(outcome is True for outcome in outcomes)

    async def stop(self) -> None:
        await self.api.stop()
        for stop in reversed(self._stoppers):
            try:
                await stop()
            except Exception:
                log.exception("stopping a voice component failed")
        self._stoppers.clear()
        self.satellites = None
        await self.pipeline.stop()
