"""The voice path with the real models (Whisper tiny.en, Piper joe, microWakeWord, micro VAD).

Piper speaks the commands; a recording fake stands in for the daemon's understanding path.
Models load once per session; the tests share one event loop so they can share them.
Speech is rendered without Piper's random noise, so every run hears the same audio.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from piper.config import SynthesisConfig
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.tts import Synthesize

from assistant.messages import (
    Action,
    ConversationRequest,
    ConversationResponse,
    MqttMessage,
)
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.voice import audio as voice_audio
from assistant.voice.audio import (
    SAMPLE_RATE,
    AudioDeviceUnavailableError,
    float_to_pcm16,
    pcm16_to_float,
    read_wav_file,
    resample,
    write_wav,
)
from assistant.voice.bench import (
    DEMO_HOME,
    normalize_transcript,
    registry_from_names,
    run_voice_bench,
)
from assistant.voice.commands import add_listen_arguments, listen
from assistant.voice.config import SatellitesConfig, VoiceConfig, WakeConfig
from assistant.voice.detect import (
    EndReason,
    SpeechEnded,
    SpeechStarted,
    WakeWordDetected,
)
from assistant.voice.mqtt_api import VoiceMqttApi, voice_request_topic, voice_response_topic
from assistant.voice.pipeline import PipelineEvent, TranscriptReady, VoicePipeline
from assistant.voice.service import VoiceService
from assistant.voice.wyoming_server import WyomingSatelliteServer
from tests.conftest import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT = 30.0
STEADY_VOICE = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


class RecordingConverse:
    """The daemon's understanding path, faked: remembers requests, answers like the fast path."""

    def __init__(self) -> None:
        self.requests: list[ConversationRequest] = []

    async def __call__(self, request: ConversationRequest) -> ConversationResponse:
        self.requests.append(request)
        return ConversationResponse(
            reply="Okay, the kitchen light is on now.",
            actions=(Action("turn_on", "light.kitchen_light", {}),), path="fast",
            conversation_id="conversation-1")

    @property
    def last_text(self) -> str:
        return normalize_transcript(self.requests[-1].text)


@pytest.fixture(scope="session")
def registry() -> DeviceRegistry:
    return registry_from_names(DEMO_HOME)


@pytest.fixture(scope="session")
def converse() -> RecordingConverse:
    return RecordingConverse()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pipeline(registry: DeviceRegistry,
                   converse: RecordingConverse) -> AsyncIterator[VoicePipeline]:
    config = VoiceConfig(wake=WakeConfig(mode="wake_word"))
    voice = VoicePipeline(config, converse, registry)
    await asyncio.wait_for(asyncio.gather(voice.stt.load(), voice.tts.load()), 60)
    yield voice
    await asyncio.wait_for(voice.stop(), TIMEOUT)


async def spoken(voice: VoicePipeline, text: str) -> tuple[bytes, int]:
    """Piper's rendering of ``text`` at its own rate (22,050 Hz)."""
    return await asyncio.wait_for(voice.tts.synthesize_all(text, syn_config=STEADY_VOICE),
                                  TIMEOUT)


async def spoken_16k(voice: VoicePipeline, text: str) -> np.ndarray:
    audio, rate = await spoken(voice, text)
    return resample(pcm16_to_float(audio), rate, SAMPLE_RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


async def chunks_of(pcm: bytes, size: int = 2048) -> AsyncIterator[bytes]:
    for offset in range(0, len(pcm), size):
        yield pcm[offset:offset + size]


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalize_transcript(a), normalize_transcript(b)).ratio()


# -- one recorded command --------------------------------------------------------------------------

async def test_spoken_wav_command_reaches_converse_and_is_answered_aloud(
        pipeline: VoicePipeline, converse: RecordingConverse, tmp_path: Path) -> None:
    audio, rate = await spoken(pipeline, "Turn on the kitchen light.")
    wav = write_wav(tmp_path / "command.wav", audio, rate)

    result = await asyncio.wait_for(
        pipeline.process_utterance(read_wav_file(wav), area="kitchen"), TIMEOUT)

    assert converse.last_text == "turn on the kitchen light"
    assert converse.requests[-1].area == "kitchen"
    assert result.response.actions[0].entity_id == "light.kitchen_light"
    assert result.sample_rate == 22_050 and len(result.reply_audio) > result.sample_rate  # > 0.5 s
    timings = result.timings
    assert timings.stt_ms > 0 and timings.tts_first_audio_ms is not None
    assert timings.end_of_speech_to_converse_ms >= timings.stt_ms
    reply_16k = float_to_pcm16(resample(pcm16_to_float(result.reply_audio), 22_050, SAMPLE_RATE))
    heard_back = await asyncio.wait_for(pipeline.stt.transcribe(reply_16k, biased=False), TIMEOUT)
    assert similarity(heard_back.text, result.response.reply) > 0.8, heard_back.text


async def test_silence_is_not_sent_to_converse(pipeline: VoicePipeline,
                                               converse: RecordingConverse) -> None:
    asked_before = len(converse.requests)
    result = await asyncio.wait_for(
        pipeline.process_utterance(float_to_pcm16(silence(1.5))), TIMEOUT)
    assert result.transcript.text == "" and result.reply_audio == b""
    assert len(converse.requests) == asked_before


# -- vocabulary biasing ---------------------------------------------------------------------------

async def test_biasing_fixes_lock_the_front_door(pipeline: VoicePipeline) -> None:
    speech = float_to_pcm16(await spoken_16k(pipeline, "Lock the front door"))
    plain = await asyncio.wait_for(pipeline.stt.transcribe(speech, biased=False), TIMEOUT)
    biased = await asyncio.wait_for(pipeline.stt.transcribe(speech, biased=True), TIMEOUT)
    # Measured here: unbiased tiny.en hears "Walk the front door."
    assert normalize_transcript(plain.text) != "lock the front door", plain.text
    assert normalize_transcript(biased.text) == "lock the front door", biased.text


async def test_vocabulary_follows_the_registry(pipeline: VoicePipeline,
                                               registry: DeviceRegistry) -> None:
    assert "Front Door" in pipeline.stt.vocabulary and "Living Room" in pipeline.stt.vocabulary
    registry.set_area(Area(id="garden", name="Garden"))
    registry.upsert(Entity(entity_id="switch.sprinkler", name="Lawn Sprinkler",
                           domain="switch", aliases=("Rain Bird",), area="garden"))
    try:
        assert {"Garden", "Lawn Sprinkler", "Rain Bird"} <= set(
            pipeline.stt.vocabulary.split(", "))
    finally:
        registry.remove("switch.sprinkler")
    assert "Lawn Sprinkler" not in pipeline.stt.vocabulary


# -- live stream: wake word, speech, end of speech ------------------------------------------------

async def test_wake_word_then_command_from_a_stream(pipeline: VoicePipeline,
                                                    converse: RecordingConverse) -> None:
    stream = float_to_pcm16(np.concatenate([
        silence(0.5), await spoken_16k(pipeline, "Okay, Nabu."), silence(0.3),
        await spoken_16k(pipeline, "Turn off the porch light."), silence(1.5)]))
    events: list[PipelineEvent] = []

    async def record(event: PipelineEvent) -> None:
        events.append(event)

    async def first_turn() -> Any:
        async for result in pipeline.run_stream(chunks_of(stream), area="porch",
                                                on_event=record):
            return result
        return None

    result = await asyncio.wait_for(first_turn(), TIMEOUT)

    kinds = [type(e) for e in events]
    assert kinds[:3] == [WakeWordDetected, SpeechStarted, SpeechEnded], kinds
    assert TranscriptReady in kinds
    wake = events[0]
    assert isinstance(wake, WakeWordDetected) and wake.name == "okay_nabu"
    ended = events[2]
    assert isinstance(ended, SpeechEnded) and ended.reason is EndReason.SILENCE
    assert wake.at_s < ended.at_s < len(stream) / 2 / SAMPLE_RATE
    assert converse.last_text == "turn off the porch light"  # the wake word is not in it
    assert result is not None and result.area == "porch"
    assert result.timings.end_of_speech_to_converse_ms < 1.25 * result.timings.stt_ms + 50


async def test_no_wake_word_no_command(pipeline: VoicePipeline,
                                       converse: RecordingConverse) -> None:
    asked_before = len(converse.requests)
    stream = float_to_pcm16(np.concatenate([
        silence(0.3), await spoken_16k(pipeline, "Turn off the porch light."), silence(1.0)]))
    results = await asyncio.wait_for(_all_results(pipeline, stream), TIMEOUT)
    assert results == [] and len(converse.requests) == asked_before


async def _all_results(voice: VoicePipeline, stream: bytes) -> list[Any]:
    return [result async for result in voice.run_stream(chunks_of(stream))]


async def test_muted_listening_drops_the_audio_and_then_starts_afresh(
        pipeline: VoicePipeline, converse: RecordingConverse) -> None:
    wake = await spoken_16k(pipeline, "Okay, Nabu.")
    cut_short = await spoken_16k(pipeline, "Turn on the kitchen light.")
    half = len(cut_short) // 2
    # Muted halfway through a command: what the listener held must not join the next one.
    before_mute = float_to_pcm16(np.concatenate([silence(0.5), wake, silence(0.3),
                                                 cut_short[:half]]))
    while_muted = float_to_pcm16(np.concatenate([cut_short[half:], silence(1.0)]))
    heard_part = float_to_pcm16(np.concatenate([
        wake, silence(0.3), await spoken_16k(pipeline, "Turn off the porch light."),
        silence(1.5)]))

    async def muted_then_heard() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(before_mute):
            yield chunk
        pipeline.muted = True
        async for chunk in chunks_of(while_muted):
            yield chunk
        pipeline.muted = False
        async for chunk in chunks_of(heard_part):
            yield chunk

    async def all_turns(audio: AsyncIterator[bytes], **options: Any) -> list[Any]:
        return [result async for result in pipeline.run_stream(audio, **options)]

    asked_before = len(converse.requests)
    try:
        results = await asyncio.wait_for(all_turns(muted_then_heard()), TIMEOUT)
        pipeline.muted = True  # a satellite's push-to-talk stream, wholly muted
        muted_only = await asyncio.wait_for(
            all_turns(chunks_of(heard_part), mode="push_to_talk"), TIMEOUT)
    finally:
        pipeline.muted = False
    assert [normalize_transcript(r.transcript.text) for r in results] == [
        "turn off the porch light"]
    assert muted_only == []
    assert [normalize_transcript(r.text) for r in converse.requests[asked_before:]] == [
        "turn off the porch light"]


# -- Wyoming satellite --------------------------------------------------------------------------

async def read_until(client: AsyncTcpClient, done: Callable[[Event], bool]) -> list[Event]:
    events = []
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, "the server hung up"
        events.append(event)
        if done(event):
            return events


async def test_satellite_streams_a_command_and_hears_the_reply(
        pipeline: VoicePipeline, converse: RecordingConverse) -> None:
    port = free_port()
    server = WyomingSatelliteServer(pipeline, SatellitesConfig(
        enabled=True, host="127.0.0.1", port=port, advertise=False,
        areas={"kitchen-satellite": "Kitchen"}))
    await asyncio.wait_for(server.start(), TIMEOUT)
    audio, rate = await spoken(pipeline, "Turn on the kitchen light.")
    audio += bytes(2 * rate)  # a second of silence: the satellite keeps streaming
    try:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            info = Info.from_event((await read_until(client, lambda e: Info.is_type(e.type)))[-1])
            assert info.asr and info.tts and info.handle and info.wake
            await client.write_event(Info(satellite=Satellite(
                name="kitchen-satellite", attribution=Attribution("test", ""), installed=True,
                description=None, version=None)).event())
            await client.write_event(AudioStart(rate, 2, 1).event())
            for offset in range(0, len(audio), 2048):  # the satellite's own rate: we convert
                await client.write_event(
                    AudioChunk(rate, 2, 1, audio[offset:offset + 2048]).event())
            await client.write_event(AudioStop().event())
            events = await read_until(client, lambda e: AudioStop.is_type(e.type))
            await client.write_event(Synthesize(text="Hello there.").event())
            spoken_only = await read_until(client, lambda e: AudioStop.is_type(e.type))
    finally:
        await asyncio.wait_for(server.stop(), TIMEOUT)

    transcripts = [WyomingTranscript.from_event(e).text for e in events
                   if WyomingTranscript.is_type(e.type)]
    assert [normalize_transcript(t) for t in transcripts] == ["turn on the kitchen light"]
    assert converse.requests[-1].area == "kitchen"  # the area id of "Kitchen"
    starts = [AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type)]
    reply = b"".join(AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type))
    assert starts[0].rate == 22_050 and len(reply) > 22_050
    assert sum(len(AudioChunk.from_event(e).audio) for e in spoken_only
               if AudioChunk.is_type(e.type)) > 11_025


# -- MQTT voice API and `mimo-home listen` ------------------------------------------------------

async def request_voice(audio: bytes, *, base_topic: str, subscribe: Any,
                        publish: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """The CLI's side of the voice API over the in-memory broker (the real CLI uses
    ``assistant.transport.api.ApiClient.listen``)."""
    request_id = uuid.uuid4().hex
    answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_response(message: MqttMessage) -> None:
        if not answered.done():
            answered.set_result(message.payload)

    # Subscribed before publishing: the reply cannot arrive before we listen.
    unsubscribe = subscribe(voice_response_topic(base_topic, request_id), on_response)
    try:
        publish(MqttMessage(voice_request_topic(base_topic, request_id), audio, qos=1))
        try:
            payload = await asyncio.wait_for(answered, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no voice reply within {timeout_s:.0f} s; is the daemon running "
                               "with voice enabled?") from None
    finally:
        unsubscribe()
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise ValueError(f"unexpected voice reply: {payload[:200]!r}")
    return body


class InMemoryBroker:
    """subscribe/publish with MQTT topic filters, delivering on the event loop like MqttLink."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Callable[[MqttMessage], None]]] = []

    def subscribe(self, topic_filter: str,
                  handler: Callable[[MqttMessage], None]) -> Callable[[], None]:
        entry = (topic_filter, handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry)

    def publish(self, message: MqttMessage) -> None:
        loop = asyncio.get_running_loop()
        for topic_filter, handler in list(self._handlers):
            if _matches(topic_filter, message.topic):
                loop.call_soon(handler, message)


def _matches(topic_filter: str, topic: str) -> bool:
    wanted, parts = topic_filter.split("/"), topic.split("/")
    return len(wanted) == len(parts) and all(
        w in ("+", p) for w, p in zip(wanted, parts, strict=True))


async def test_listen_sends_audio_to_the_daemon_over_mqtt(
        pipeline: VoicePipeline, converse: RecordingConverse, tmp_path: Path) -> None:
    broker = InMemoryBroker()
    api = VoiceMqttApi(pipeline, base_topic="home", subscribe=broker.subscribe,
                       publish=broker.publish)
    api.start()
    audio, rate = await spoken(pipeline, "Unlock the back door lock.")
    wav = write_wav(tmp_path / "unlock.wav", audio, rate)
    parser = argparse.ArgumentParser()
    add_listen_arguments(parser)

    async def send_audio(wav_bytes: bytes) -> dict[str, Any]:
        return await request_voice(wav_bytes, base_topic="home", subscribe=broker.subscribe,
                                   publish=broker.publish, timeout_s=TIMEOUT)

    out = io.StringIO()
    rc = await asyncio.wait_for(listen(parser.parse_args([str(wav), "--json"]), send_audio,
                                       out=out), TIMEOUT)
    assert rc == 0
    reply = json.loads(out.getvalue())
    assert normalize_transcript(reply["transcript"]) == "unlock the back door lock"
    assert reply["reply"] == "Okay, the kitchen light is on now."
    assert reply["actions"] == [{"tool": "turn_on", "entity_id": "light.kitchen_light",
                                 "args": {}}]
    assert reply["timings"]["stt_ms"] > 0

    answers: asyncio.Queue[MqttMessage] = asyncio.Queue()
    broker.subscribe("home/voice/response/bad-1", answers.put_nowait)
    broker.publish(MqttMessage(voice_request_topic("home", "bad-1"), b"RIFF garbage"))
    answer = json.loads((await asyncio.wait_for(answers.get(), TIMEOUT)).payload)
    assert answer["id"] == "bad-1" and "WAV" in answer["error"]
    await asyncio.wait_for(api.stop(), TIMEOUT)


# -- what the daemon starts ----------------------------------------------------------------------

async def test_voice_service_starts_what_is_configured(
        converse: RecordingConverse, registry: DeviceRegistry,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_portaudio() -> None:
        raise AudioDeviceUnavailableError("no sound devices: PortAudio library not found")

    monkeypatch.setattr(voice_audio, "load_sounddevice", no_portaudio)
    port = free_port()
    config = VoiceConfig.model_validate({
        "enabled": True, "microphone": {"enabled": True},
        "satellites": {"enabled": True, "host": "127.0.0.1", "port": port, "advertise": False}})
    broker = InMemoryBroker()
    link = SimpleNamespace(config=SimpleNamespace(base_topic="home"),
                           subscribe=broker.subscribe, publish=broker.publish)
    service = VoiceService(config, converse, registry, link)
    await asyncio.wait_for(service.start(), 60)
    try:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            await read_until(client, lambda e: Info.is_type(e.type))
        answers: asyncio.Queue[MqttMessage] = asyncio.Queue()
        broker.subscribe("home/voice/response/quiet-1", answers.put_nowait)
        broker.publish(MqttMessage(voice_request_topic("home", "quiet-1"), bytes(32_000)))
        answer = json.loads((await asyncio.wait_for(answers.get(), TIMEOUT)).payload)
        assert answer["transcript"] == "" and answer["success"] is False
        assert "microphone is off: no sound devices: PortAudio" in caplog.text
        service.set_muted(True)
        assert service.pipeline.muted
        service.set_muted(False)
        assert not service.pipeline.muted
    finally:
        await asyncio.wait_for(service.stop(), TIMEOUT)


# -- bench --------------------------------------------------------------------------------------

async def test_bench_measures_one_command(pipeline: VoicePipeline) -> None:
    report = await asyncio.wait_for(
        run_voice_bench(pipeline, ["Turn on the kitchen light."], runs=1), TIMEOUT)
    figures = report.to_json()
    assert {"e2e_ms", "stt_ms", "tts_first_audio_ms", "exact_rate_biased",
            "exact_rate_unbiased", "runs"} <= set(figures)
    assert figures["runs"] == 1 and report.tts_first_audio_ms > 0
    assert report.stt_ms <= report.e2e_ms < 1.25 * report.stt_ms + 50
