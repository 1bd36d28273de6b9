"""The voice pipeline: audio -> (wake word, end of speech) -> text -> understanding -> speech.

``VoicePipeline`` owns the models (one Whisper, one Piper voice) and serves every audio
source: whole clips (``process_utterance``: the CLI's ``listen``, the MQTT voice API) and
live streams (``run_stream``: the hub's microphone, Wyoming satellites).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from assistant.messages import ConversationRequest, ConversationResponse
from assistant.registry import DeviceRegistry, normalize_name
from assistant.replies import replies_for
from assistant.safety import extract_secrets
from assistant.voice.audio import AudioDeviceUnavailableError, Microphone, seconds_of
from assistant.voice.config import ListenMode, VoiceConfig
from assistant.voice.detect import (
    CommandListener,
    EndReason,
    ListenEvent,
    SpeechEnded,
    WakeWordDetector,
    trim_to_speech,
)
from assistant.voice.stt import SpeechToText, Transcript
from assistant.voice.tts import Publish, ReplyOutput, SpeechChunk, TextToSpeech

log = logging.getLogger(__name__)

# The understanding path, as the daemon provides it (same shape as assistant.transport.api.Converse).
Converse = Callable[[ConversationRequest], Awaitable[ConversationResponse]]

TIMEOUT_REPLY = "Sorry, that took too long."
FAILURE_REPLY = "Sorry, something went wrong."


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    transcript: Transcript


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """One sentence of the spoken reply, sent as soon as it is rendered."""

    chunk: SpeechChunk


PipelineEvent = ListenEvent | TranscriptReady | ReplyAudio
EventListener = Callable[[PipelineEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class VoiceTimings:
    speech_s: float  # length of the audio handed to Whisper
    vad_ms: float
    stt_ms: float
    converse_ms: float
    tts_first_audio_ms: float | None  # converse done -> first sentence rendered
    tts_ms: float
    # End of speech (endpoint detected, or the whole clip at hand) -> converse done.
    end_of_speech_to_converse_ms: float

    @property
    def stt_real_time_factor(self) -> float:
        return self.stt_ms / 1000 / self.speech_s if self.speech_s else 0.0

    def to_json(self) -> dict[str, float | None]:
        return {
            "speech_s": round(self.speech_s, 3),
            "vad_ms": round(self.vad_ms, 1),
            "stt_ms": round(self.stt_ms, 1),
            "stt_real_time_factor": round(self.stt_real_time_factor, 3),
            "converse_ms": round(self.converse_ms, 1),
            "tts_first_audio_ms": None if self.tts_first_audio_ms is None
            else round(self.tts_first_audio_ms, 1),
            "tts_ms": round(self.tts_ms, 1),
            "end_of_speech_to_converse_ms": round(self.end_of_speech_to_converse_ms, 1),
        }


@dataclass(frozen=True, slots=True)
class VoiceResult:
    """One listening turn. No speech: empty transcript, empty reply, no audio."""

    transcript: Transcript
    response: ConversationResponse
    reply_audio: bytes  # mono s16le
    sample_rate: int
    timings: VoiceTimings
    area: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"transcript": self.transcript.text, **self.response.to_json(),
                "area": self.area, "timings": self.timings.to_json()}


async def _ignore(_event: PipelineEvent) -> None:
    return None


class VoicePipeline:
    def __init__(self, config: VoiceConfig, converse: Converse,
                 registry: DeviceRegistry | None = None, publish: Publish | None = None) -> None:
        self.config = config
        self.converse = converse
        self.registry = registry
        models_dir = config.resolved_models_dir()
        self.stt = SpeechToText(config.stt, registry, models_dir=models_dir)
        self.tts = TextToSpeech(config.tts, config.spoken_language, models_dir)
        self.output = ReplyOutput(config.tts, publish)
        # The pipeline's own replies (a timeout, a failure) in the language the voice speaks.
        self._replies = replies_for(config.spoken_language)
        self._microphone_task: asyncio.Task[None] | None = None
        # While muted, live streams (microphone, satellites) are not listened to; whole
        # clips (the MQTT voice API, `mimo-home listen`) are deliberate and still answered.
        self.muted = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the models, then open the microphone if configured."""
        await asyncio.gather(self.stt.load(), self.tts.load())
        if self.config.microphone.enabled:
            self._microphone_task = asyncio.create_task(self._run_microphone(), name="microphone")

    async def stop(self) -> None:
        if self._microphone_task is not None:
            self._microphone_task.cancel()
            await asyncio.gather(self._microphone_task, return_exceptions=True)
            self._microphone_task = None
        await self.output.close()
        self.stt.close()

    # -- one clip ----------------------------------------------------------------------------

    async def process_utterance(self, pcm16k: bytes, *, area: str | None = None,
                                conversation_id: str | None = None,
                                on_event: EventListener | None = None) -> VoiceResult:
        """A whole recorded command (16 kHz mono s16le): trim -> STT -> converse -> TTS."""
        started = time.perf_counter()
        speech = await asyncio.to_thread(trim_to_speech, pcm16k, self.config.vad)
        vad_ms = (time.perf_counter() - started) * 1000
        return await self._respond(speech or b"", end_of_speech_at=started, vad_ms=vad_ms,
                                   area=area, conversation_id=conversation_id,
                                   on_event=on_event or _ignore)

    async def _respond(self, speech: bytes, *, end_of_speech_at: float, vad_ms: float,
                       area: str | None, conversation_id: str | None,
                       on_event: EventListener, transcribe_only: bool = False) -> VoiceResult:
        if speech:
            transcript = await self.stt.transcribe(speech)
        else:
            transcript = Transcript("", 0.0, 0.0, biased=False)
        await on_event(TranscriptReady(transcript))
        if not transcript.text or transcribe_only:
            response = ConversationResponse(reply="", conversation_id=conversation_id,
                                            success=bool(transcript.text))
            converse_ms = 0.0
        else:
            converse_started = time.perf_counter()
            response = await self._converse(transcript.text, area, conversation_id)
            converse_ms = (time.perf_counter() - converse_started) * 1000
        converse_done = time.perf_counter()
        parts: list[bytes] = []
        first_audio_ms: float | None = None
        if response.reply:
            async for chunk in self.tts.synthesize(response.reply):
                if first_audio_ms is None:
                    first_audio_ms = (time.perf_counter() - converse_done) * 1000
                parts.append(chunk.audio)
                await on_event(ReplyAudio(chunk))
        timings = VoiceTimings(
            speech_s=seconds_of(speech), vad_ms=vad_ms, stt_ms=transcript.seconds * 1000,
            converse_ms=converse_ms, tts_first_audio_ms=first_audio_ms,
            tts_ms=(time.perf_counter() - converse_done) * 1000,
            end_of_speech_to_converse_ms=(converse_done - end_of_speech_at) * 1000)
        await self.tts.load()  # for its sample rate, when nothing was said
        return VoiceResult(transcript, response, b"".join(parts), self.tts.sample_rate, timings,
                           area)

    async def _converse(self, text: str, area: str | None,
                        conversation_id: str | None) -> ConversationResponse:
        request = ConversationRequest(text, conversation_id, area)
        try:
            return await asyncio.wait_for(self.converse(request), self.config.converse_timeout_s)
        except TimeoutError:
            log.error("no answer to %r within %.0f s", text, self.config.converse_timeout_s)
            return ConversationResponse(self._replies.say(TIMEOUT_REPLY),
                                        conversation_id=conversation_id, success=False)
        except Exception:  # the speaker must hear something, whatever broke
            log.exception("understanding %r failed", text)
            return ConversationResponse(self._replies.say(FAILURE_REPLY),
                                        conversation_id=conversation_id, success=False)

    # -- live streams ------------------------------------------------------------------------

    def new_listener(self, mode: ListenMode | None = None) -> CommandListener:
        mode = mode or self.config.wake.mode
        wake = WakeWordDetector(self.config.wake) if mode == "wake_word" else None
        return CommandListener(mode, self.config.vad, wake=wake,
                               refractory_s=self.config.wake.refractory_s)

    async def run_stream(self, audio: AsyncIterable[bytes], *, area: str | None = None,
                         conversation_id: str | None = None, mode: ListenMode | None = None,
                         on_event: EventListener | None = None,
                         transcribe_only: bool = False) -> AsyncIterator[VoiceResult]:
        """Listen to a live 16 kHz mono s16le stream and yield one result per turn.

        Audio that arrives while a turn is being answered is the caller's to drop (when the
        result is yielded): the listener restarts fresh after each turn. In push-to-talk
        mode the stream carries one command, so this ends after the first turn.
        ``transcribe_only`` stops each turn at the transcript (Wyoming ``Transcribe``).
        While ``muted`` the audio is dropped unheard, and listening afterwards starts afresh.
        """
        emit = on_event or _ignore
        listener = self.new_listener(mode)
        heard_while_muted = False
        async for chunk in audio:
            if self.muted:
                heard_while_muted = True
                continue
            if heard_while_muted:  # forget what was half heard before muting
                listener, heard_while_muted = self.new_listener(mode), False
            for event in listener.feed(chunk):
                await emit(event)
                if not isinstance(event, SpeechEnded):
                    continue
                result = await self._respond_to_capture(event, area, conversation_id, emit,
                                                        transcribe_only)
                conversation_id = result.response.conversation_id or conversation_id
                yield result
                if listener.mode == "push_to_talk":
                    return
                ask = result.response.awaiting_confirmation or result.response.clarification
                listener.listen_again(follow_up=ask)
                break  # the rest of this chunk predates the reply
        if heard_while_muted:
            return
        for event in listener.end_of_stream():
            await emit(event)
            if isinstance(event, SpeechEnded):
                yield await self._respond_to_capture(event, area, conversation_id, emit,
                                                     transcribe_only)

    async def _respond_to_capture(self, ended: SpeechEnded, area: str | None,
                                  conversation_id: str | None, emit: EventListener,
                                  transcribe_only: bool) -> VoiceResult:
        end_of_speech_at = time.perf_counter()
        speech, vad_ms = ended.audio, 0.0
        if ended.reason is EndReason.STREAM_END and speech:
            # Cut off before the VAD confirmed anything: check there is speech at all.
            speech = await asyncio.to_thread(trim_to_speech, speech, self.config.vad) or b""
            vad_ms = (time.perf_counter() - end_of_speech_at) * 1000
        return await self._respond(speech, end_of_speech_at=end_of_speech_at, vad_ms=vad_ms,
                                   area=area, conversation_id=conversation_id, on_event=emit,
                                   transcribe_only=transcribe_only)

    async def _run_microphone(self) -> None:
        mic_config = self.config.microphone
        microphone = Microphone(device=mic_config.device, sample_rate=mic_config.sample_rate)
        try:
            microphone.open()
        except AudioDeviceUnavailableError as exc:
            log.error("voice from the local microphone is off: %s", exc)
            return
        area = resolve_area(self.registry, mic_config.area)

        async def speak(event: PipelineEvent) -> None:
            if isinstance(event, ReplyAudio):
                self.output.play(event.chunk)

        try:
            async for result in self.run_stream(microphone.chunks(), area=area, on_event=speak):
                if result.transcript.text:
                    log.info("heard %r -> %r", extract_secrets(result.transcript.text)[0],
                             result.response.reply)
                await self.output.finish(result.reply_audio, result.sample_rate)
                microphone.clear()  # it heard the reply and whatever happened meanwhile
        except Exception:  # nobody awaits this task until shutdown: say it here
            log.exception("voice from the local microphone stopped")
        finally:
            microphone.close()


def resolve_area(registry: DeviceRegistry | None, area: str | None) -> str | None:
    """An area id for a configured area id or name (as-is when the registry does not know it)."""
    if area is None or registry is None:
        return area
    wanted = normalize_name(area)
    for area_id, known in registry.areas.items():
        if wanted in {normalize_name(area_id), normalize_name(known.name),
                      *(normalize_name(alias) for alias in known.aliases)}:
            return area_id
    return area
