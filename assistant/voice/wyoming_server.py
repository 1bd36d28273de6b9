"""Wyoming server for satellites: they stream their microphone here and play our replies.

Per connection:
  satellite -> us: Describe, Info (its name), Ping, RunPipeline / Transcribe, AudioStart,
                   AudioChunk..., AudioStop, Synthesize
  us -> satellite: Info, Pong, Detection, VoiceStarted, VoiceStopped, Transcript,
                   AudioStart, AudioChunk..., AudioStop (the spoken reply, or an
                   announcement such as a due timer, never one inside the other), Error

``RunPipeline`` with start stage ``wake`` makes us listen for the wake word; otherwise the
stream is one command (the satellite woke up by itself or a button was pressed). The area
of a satellite comes from ``satellites.areas``, by the name it announces or by its address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from assistant.voice.audio import SAMPLE_RATE, SAMPLE_WIDTH
from assistant.voice.config import ListenMode, SatellitesConfig
from assistant.voice.detect import SpeechEnded, SpeechStarted, WakeWordDetected
from assistant.voice.pipeline import (
    PipelineEvent,
    ReplyAudio,
    TranscriptReady,
    VoicePipeline,
    resolve_area,
)
from assistant.voice.tts import SpeechChunk

log = logging.getLogger(__name__)

WYOMING_SERVICE_TYPE = "_wyoming._tcp.local."
SAMPLES_PER_CHUNK = 1024  # reply audio goes out in pieces this size, like wyoming-piper's
# A satellite busy sending a reply gets this long before an announcement gives up on it.
ANNOUNCE_TIMEOUT_S = 10.0
_ATTRIBUTION = Attribution(name="mimo-home", url="")
_STREAM_END = None


class WyomingSatelliteServer:
    def __init__(self, pipeline: VoicePipeline, config: SatellitesConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self._server: AsyncTcpServer | None = None
        self.connections: set[SatelliteConnection] = set()  # connected now

    async def start(self) -> None:
        self._server = AsyncTcpServer(self.config.host, self.config.port)
        await self._server.start(self._connect)
        log.info("Wyoming satellites: listening on %s:%d", self.config.host, self.config.port)

    def _connect(self, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> SatelliteConnection:
        connection = SatelliteConnection(reader, writer, self)
        self.connections.add(connection)
        return connection

    def satellites_in(self, area: str) -> list[SatelliteConnection]:
        return [c for c in self.connections if c.area == area]

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def area_for(self, name: str | None, peer: str | None) -> str | None:
        area = self.config.areas.get(name or "") or self.config.areas.get(peer or "")
        return resolve_area(self.pipeline.registry, area)

    def info(self) -> Info:
        def artifact(name: str, description: str) -> dict[str, object]:
            return {"name": name, "attribution": _ATTRIBUTION, "installed": True,
                    "description": description, "version": None}

        config, tts = self.pipeline.config, self.pipeline.tts
        language, wake_word = config.spoken_language, config.wake.model
        voices = [TtsVoice(**artifact(tts.choice.name, f"{tts.choice.engine} voice"),
                           languages=[language])] if tts.choice and tts.speaks else []
        return Info(
            asr=[AsrProgram(**artifact("mimo-home-stt", "faster-whisper"), models=[
                AsrModel(**artifact(config.stt.model_name, "Whisper"),
                         languages=[config.stt.spoken_language])])],
            tts=[TtsProgram(**artifact("mimo-home-tts", "Piper or espeak-ng"), voices=voices)],
            wake=[WakeProgram(**artifact("mimo-home-wake", "microWakeWord"), models=[
                WakeModel(**artifact(wake_word, "microWakeWord"), languages=["en"],
                          phrase=wake_word.replace("_", " "))])],
            handle=[HandleProgram(**artifact("mimo-home", "home assistant hub"), models=[
                HandleModel(**artifact("mimo-home", "home control"), languages=[language])],
                supports_home_control=True)],
        )


class SatelliteConnection(AsyncEventHandler):
    """One satellite: each audio stream runs ``VoicePipeline.run_stream`` in its own task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 server: WyomingSatelliteServer) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.pipeline = server.pipeline
        peer = writer.get_extra_info("peername")
        self.peer: str | None = peer[0] if peer else None
        self.name: str | None = None
        self._queue: asyncio.Queue[bytes | None] | None = None  # the open audio stream
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=1)
        self._stream_task: asyncio.Task[None] | None = None
        self._reply_started = False
        # Held while one spoken audio stream (start, chunks, stop) goes out, so that an
        # announcement never lands inside a reply.
        self._speaking = asyncio.Lock()

    @property
    def area(self) -> str | None:
        return self.server.area_for(self.name, self.peer)

    async def handle_event(self, event: Event) -> bool:
        if AudioChunk.is_type(event.type):
            if self._queue is not None:
                self._queue.put_nowait(self._converter.convert(AudioChunk.from_event(event)).audio)
        elif AudioStart.is_type(event.type):
            if self._queue is None:  # no RunPipeline/Transcribe before: one command
                self._start_stream("push_to_talk", transcribe_only=False)
        elif AudioStop.is_type(event.type):
            if self._queue is not None:
                self._queue.put_nowait(_STREAM_END)
                self._queue = None
        elif RunPipeline.is_type(event.type):
            await self._on_run_pipeline(RunPipeline.from_event(event))
        elif Transcribe.is_type(event.type):
            self._start_stream("push_to_talk", transcribe_only=True)
        elif Synthesize.is_type(event.type):
            await self._speak(Synthesize.from_event(event).text)
        elif Describe.is_type(event.type):
            await self.write_event(self.server.info().event())
        elif Info.is_type(event.type):
            satellite = Info.from_event(event).satellite
            if satellite is not None:
                self.name = satellite.name
                log.info("satellite %r connected from %s (area %s)", self.name, self.peer,
                         self.server.area_for(self.name, self.peer))
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            log.debug("satellite %s: ignoring %s", self.name or self.peer, event.type)
        return True

    async def disconnect(self) -> None:
        self.server.connections.discard(self)
        if self._stream_task is not None:
            self._stream_task.cancel()
            await asyncio.gather(self._stream_task, return_exceptions=True)

    async def _on_run_pipeline(self, run: RunPipeline) -> None:
        if run.start_stage == PipelineStage.TTS:
            await self._speak(run.announce_text or "")
            return
        if run.start_stage not in (PipelineStage.WAKE, PipelineStage.ASR) or (
                run.end_stage == PipelineStage.WAKE):
            await self.write_event(Error(
                text=f"unsupported pipeline {run.start_stage.value} -> {run.end_stage.value}",
                code="unsupported").event())
            return
        mode: ListenMode = "wake_word" if run.start_stage == PipelineStage.WAKE else "push_to_talk"
        self._start_stream(mode, transcribe_only=run.end_stage == PipelineStage.ASR)

    def _start_stream(self, mode: ListenMode, *, transcribe_only: bool) -> None:
        if self._stream_task is not None and not self._stream_task.done():
            self._stream_task.cancel()  # a new stream replaces an unfinished one
        self._queue = asyncio.Queue()
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=1)
        self._stream_task = asyncio.create_task(
            self._run_stream(self._queue, mode, transcribe_only),
            name=f"satellite {self.name or self.peer}")

    async def _run_stream(self, queue: asyncio.Queue[bytes | None], mode: ListenMode,
                          transcribe_only: bool) -> None:
        area = self.area
        try:
            async for result in self.pipeline.run_stream(
                    _drain(queue), area=area, mode=mode, on_event=self._send,
                    transcribe_only=transcribe_only):
                await self._end_reply()
                _drop_stale_audio(queue)
                log.info("satellite %s: %r -> %r", self.name or self.peer,
                         result.transcript.text, result.response.reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("satellite %s went away", self.name or self.peer)
        except Exception as exc:
            log.exception("satellite %s: the pipeline failed", self.name or self.peer)
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=f"pipeline failed: {exc}").event())
        finally:
            with contextlib.suppress(ConnectionError):
                await self._end_reply()  # a reply cut short (a new stream) still ends here

    async def _send(self, event: PipelineEvent) -> None:
        """Pipeline events as Wyoming events, in order, as they happen."""
        if isinstance(event, ReplyAudio):
            await self._send_audio(event.chunk)
        elif isinstance(event, TranscriptReady):
            await self.write_event(WyomingTranscript(text=event.transcript.text).event())
        elif isinstance(event, WakeWordDetected):
            await self.write_event(Detection(name=event.name,
                                             timestamp=int(event.at_s * 1000)).event())
        elif isinstance(event, SpeechStarted):
            await self.write_event(VoiceStarted(timestamp=int(event.at_s * 1000)).event())
        elif isinstance(event, SpeechEnded):
            await self.write_event(VoiceStopped(timestamp=int(event.at_s * 1000)).event())

    async def announce(self, chunk: SpeechChunk) -> bool:
        """Plays a whole rendered announcement as one audio stream, after any reply that
        is going out: True once sent. Raises TimeoutError when the satellite stays busy or
        stops reading, ConnectionError when it is gone."""
        async with asyncio.timeout(ANNOUNCE_TIMEOUT_S), self._speaking:
            await self.write_event(AudioStart(chunk.sample_rate, SAMPLE_WIDTH, 1).event())
            await self._write_chunks(chunk)
            await self.write_event(AudioStop().event())
        return True

    async def _send_audio(self, chunk: SpeechChunk) -> None:
        if not self._reply_started:
            await self._speaking.acquire()
            self._reply_started = True  # from here on _end_reply releases the lock
            await self.write_event(AudioStart(chunk.sample_rate, SAMPLE_WIDTH, 1).event())
        await self._write_chunks(chunk)

    async def _write_chunks(self, chunk: SpeechChunk) -> None:
        step = SAMPLES_PER_CHUNK * SAMPLE_WIDTH
        for offset in range(0, len(chunk.audio), step):
            await self.write_event(AudioChunk(chunk.sample_rate, SAMPLE_WIDTH, 1,
                                              chunk.audio[offset:offset + step]).event())

    async def _end_reply(self) -> None:
        if not self._reply_started:
            return
        try:
            await self.write_event(AudioStop().event())
        finally:
            self._reply_started = False
            self._speaking.release()

    async def _speak(self, text: str) -> None:
        async for chunk in self.pipeline.tts.synthesize(text):
            await self._send_audio(chunk)
        await self._end_reply()


async def _drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not _STREAM_END:
        yield chunk


def _drop_stale_audio(queue: asyncio.Queue[bytes | None]) -> None:
    """Forget audio heard while the reply was being made; keep the end-of-stream mark."""
    ended = False
    while not queue.empty():
        ended |= queue.get_nowait() is _STREAM_END
    if ended:
        queue.put_nowait(_STREAM_END)


# -- zeroconf ---------------------------------------------------------------------------------

async def advertise_wyoming(*, name: str, port: int,
                            address: str | None = None) -> Callable[[], Awaitable[None]]:
    """Announce ``<name>._wyoming._tcp.local.``; returns the coroutine that withdraws it.

    With an ``address`` mDNS runs only on that interface; without one, on all interfaces
    with the default route's address in the record.
    """
    from zeroconf import InterfaceChoice
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    interfaces: list[str] | InterfaceChoice = [address] if address else InterfaceChoice.All
    record_address = address or _default_route_address()
    zeroconf = AsyncZeroconf(interfaces=interfaces)
    info = AsyncServiceInfo(
        WYOMING_SERVICE_TYPE, f"{name}.{WYOMING_SERVICE_TYPE}", port=port,
        addresses=[ipaddress.ip_address(record_address).packed],
        server=f"{name}.local.")
    try:
        await zeroconf.async_register_service(info, allow_name_change=True)
    except BaseException:
        await zeroconf.async_close()
        raise
    log.info("advertising %s at %s:%d", info.name, record_address, port)

    async def unregister() -> None:
        await zeroconf.async_unregister_service(info)
        await zeroconf.async_close()

    return unregister


def _default_route_address() -> str:
    # Connecting a UDP socket sends nothing; it only asks the kernel which source address
    # the route to the mDNS group would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("224.0.0.251", 5353))
            return probe.getsockname()[0]
        except OSError as exc:
            raise OSError(f"cannot find this host's address to advertise ({exc}); "
                          "set voice.satellites.advertise_address") from None
