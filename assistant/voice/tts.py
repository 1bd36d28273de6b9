"""Text to speech: the one owner of the Piper voice, and where spoken replies go.

Piper renders one sentence at a time; ``synthesize`` hands each sentence over as soon as it
is ready, so playback starts while the rest of the reply is still being rendered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.messages import MqttMessage
from assistant.voice.audio import (
    AudioDeviceUnavailableError,
    load_sounddevice,
    wav_bytes,
    write_wav,
)
from assistant.voice.config import TtsConfig

if TYPE_CHECKING:
    from piper import PiperVoice
    from piper.config import SynthesisConfig

log = logging.getLogger(__name__)

Publish = Callable[[MqttMessage], None]


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """One rendered sentence: mono s16le PCM."""

    audio: bytes
    sample_rate: int


class TextToSpeech:
    """Loads the Piper voice once; renders in a worker thread, one sentence per step."""

    def __init__(self, config: TtsConfig) -> None:
        self.config = config
        self._voice: PiperVoice | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            if self._voice is None:
                started = time.perf_counter()
                self._voice = await asyncio.to_thread(self._load_blocking)
                log.info("Piper voice %s loaded in %.1f s", self.config.voice_path().name,
                         time.perf_counter() - started)

    def _load_blocking(self) -> PiperVoice:
        from piper import PiperVoice

        return PiperVoice.load(self.config.voice_path())

    @property
    def sample_rate(self) -> int:
        if self._voice is None:
            raise RuntimeError("the voice is not loaded yet: await load() first")
        return self._voice.config.sample_rate

    async def synthesize(self, text: str, *,
                         syn_config: SynthesisConfig | None = None) -> AsyncIterator[SpeechChunk]:
        """Audio for ``text``, sentence by sentence."""
        await self.load()
        assert self._voice is not None
        sentences: Iterator[SpeechChunk] = self._sentences(text, syn_config)
        while True:
            # Lock per sentence, not per reply: a long reply must not hold up a satellite.
            async with self._lock:
                chunk = await asyncio.to_thread(next, sentences, None)
            if chunk is None:
                return
            yield chunk

    def _sentences(self, text: str, syn_config: SynthesisConfig | None) -> Iterator[SpeechChunk]:
        assert self._voice is not None
        for audio in self._voice.synthesize(text, syn_config=syn_config):
            yield SpeechChunk(audio.audio_int16_bytes, audio.sample_rate)

    async def synthesize_all(self, text: str, *,
                             syn_config: SynthesisConfig | None = None) -> tuple[bytes, int]:
        """The whole reply as one PCM buffer and its sample rate."""
        await self.load()
        parts = [chunk.audio async for chunk in self.synthesize(text, syn_config=syn_config)]
        return b"".join(parts), self.sample_rate


# -- where spoken replies go ---------------------------------------------------------------

class SpeakerPlayer:
    """Plays sentences on the local speaker in order, in a worker thread.

    ``play`` only queues, so the next sentence renders while this one plays. Without a
    usable sound device the audio is dropped with one clear error in the log.
    """

    def __init__(self, device: str | int | None = None) -> None:
        self.device = device
        self._queue: asyncio.Queue[SpeechChunk] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._unavailable: str | None = None

    @property
    def available(self) -> bool:
        """False once the sound device failed (everything after is dropped)."""
        return self._unavailable is None

    def play(self, chunk: SpeechChunk) -> None:
        if self._unavailable is not None:
            return
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._play_in_order(),
                                                                  name="speaker")
        self._queue.put_nowait(chunk)

    async def wait_played(self, timeout: float = 120.0) -> None:
        await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _play_in_order(self) -> None:
        while True:
            chunk = await self._queue.get()
            try:
                if self._unavailable is None:
                    await asyncio.to_thread(self._play_blocking, chunk)
            except AudioDeviceUnavailableError as exc:
                self._unavailable = str(exc)
                log.error("spoken replies are not played: %s", exc)
            finally:
                self._queue.task_done()

    def _play_blocking(self, chunk: SpeechChunk) -> None:
        sounddevice = load_sounddevice()
        samples = np.frombuffer(chunk.audio, "<i2")
        try:
            sounddevice.play(samples, chunk.sample_rate, device=self.device, blocking=True)
        except Exception as exc:  # PortAudioError: no such device, device busy, ...
            raise AudioDeviceUnavailableError(
                f"cannot play on speaker {self.device or '(default)'}: {exc}") from None


class ReplyOutput:
    """Sends replies to the hub's own microphone where ``tts.output`` says."""

    def __init__(self, config: TtsConfig, publish: Publish | None = None) -> None:
        self.config = config
        self.publish = publish
        self._speaker = SpeakerPlayer(config.speaker_device) if config.output == "speaker" else None
        if config.output == "mqtt" and publish is None:
            log.error("tts.output is 'mqtt' but no MQTT publisher was given: replies are dropped")

    def play(self, chunk: SpeechChunk) -> None:
        """Called per sentence while the reply renders (only the speaker streams)."""
        if self._speaker is not None:
            self._speaker.play(chunk)

    async def finish(self, audio: bytes, sample_rate: int) -> Path | None:
        """The whole reply is rendered: wait until it has played, or store/publish it."""
        if not audio:
            return None
        if self._speaker is not None:
            await self._speaker.wait_played()
        elif self.config.output == "wav_dir" and self.config.wav_dir is not None:
            name = f"reply-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.wav"
            return await asyncio.to_thread(write_wav, self.config.wav_dir / name, audio,
                                           sample_rate)
        elif self._publishes:
            self._publish_wav(audio, sample_rate)
        return None

    @property
    def can_announce(self) -> bool:
        """Whether ``announce`` could reach anyone: a working speaker or the MQTT topic."""
        return self._speaker.available if self._speaker is not None else self._publishes

    async def announce(self, chunk: SpeechChunk) -> bool:
        """Says something the assistant says on its own (a due timer) on the hub: True once
        it has played on the speaker or gone to the MQTT topic. A WAV file in ``wav_dir`` is
        not heard by anyone, so that output (and ``none``) announces nothing."""
        if self._speaker is not None:
            self._speaker.play(chunk)
            await self._speaker.wait_played()
            return self._speaker.available
        if self._publishes:
            self._publish_wav(chunk.audio, chunk.sample_rate)
            return True
        return False

    @property
    def _publishes(self) -> bool:
        return self.config.output == "mqtt" and self.publish is not None and bool(
            self.config.mqtt_topic)

    def _publish_wav(self, audio: bytes, sample_rate: int) -> None:
        assert self.publish is not None and self.config.mqtt_topic
        self.publish(MqttMessage(self.config.mqtt_topic, wav_bytes(audio, sample_rate), qos=1))

    async def close(self) -> None:
        if self._speaker is not None:
            await self._speaker.close()
