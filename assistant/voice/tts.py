"""Text to speech: the one owner of the home's voice, and where spoken replies go.

The voice renders one sentence at a time; ``synthesize`` hands each sentence over as soon as
it is ready, so playback starts while the rest of the reply is still being rendered. Which
voice speaks the home's language (Piper, espeak-ng, or none: text only) is voices.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
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
from assistant.voice.config import TtsConfig, user_models_dir
from assistant.voice.voices import (
    Silent,
    Speaker,
    SpeechChunk,
    VoiceChoice,
    choose_voice,
    load_speaker,
)

if TYPE_CHECKING:
    from piper.config import SynthesisConfig

log = logging.getLogger(__name__)

Publish = Callable[[MqttMessage], None]

__all__ = ["ReplyOutput", "SpeakerPlayer", "SpeechChunk", "TextToSpeech"]


class TextToSpeech:
    """Loads the voice for ``language`` once; renders in a worker thread, one sentence per
    step. Without a voice for the language it says nothing (``speaks`` is False)."""

    def __init__(self, config: TtsConfig, language: str = "en",
                 models_dir: Path | None = None) -> None:
        self.config = config
        self.language = language
        self.models_dir = models_dir or user_models_dir()
        self.choice: VoiceChoice | None = None
        self._speaker: Speaker | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._lock:
            if self._speaker is None:
                started = time.perf_counter()
                self.choice, self._speaker = await asyncio.to_thread(self._load_blocking)
                if self.choice.engine == "text":
                    log.warning("spoken replies are off for %r: %s", self.language,
                                self.choice.why)
                else:
                    log.info("%s voice %s for %r loaded in %.1f s%s", self.choice.engine,
                             self.choice.name, self.language, time.perf_counter() - started,
                             f" ({self.choice.why})" if self.choice.why else "")

    def _load_blocking(self) -> tuple[VoiceChoice, Speaker]:
        choice = choose_voice(self.config, self.language, self.models_dir)
        return choice, load_speaker(choice)

    @property
    def sample_rate(self) -> int:
        return self._loaded.sample_rate

    @property
    def speaks(self) -> bool:
        """False when replies are text only (no voice for the language)."""
        return not isinstance(self._loaded, Silent)

    @property
    def _loaded(self) -> Speaker:
        if self._speaker is None:
            raise RuntimeError("the voice is not loaded yet: await load() first")
        return self._speaker

    async def synthesize(self, text: str, *,
                         syn_config: SynthesisConfig | None = None) -> AsyncIterator[SpeechChunk]:
        """Audio for ``text``, sentence by sentence (``syn_config``: Piper's only)."""
        await self.load()
        sentences: Iterator[SpeechChunk] = self._loaded.sentences(text, syn_config)
        while True:
            # Lock per sentence, not per reply: a long reply must not hold up a satellite.
            async with self._lock:
                chunk = await asyncio.to_thread(next, sentences, None)
            if chunk is None:
                return
            yield chunk

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
