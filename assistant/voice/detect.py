"""Finding commands in audio: wake word (pymicro-wakeword), speech and its end (pymicro-vad).

Both models are tiny, per-stream and stateful: each stream (microphone, satellite connection)
gets its own ``CommandListener``. They cost ~1.5 % of real time on this hub, so live chunks
are processed inline on the event loop; a thread hop per 20 ms chunk would cost more.

pymicro-vad 2.1 reports speech ~0.6 s after it is heard, at the start and at the end of
speech alike (measured on Piper speech padded with silence), and -1 for its first ~0.76 s.
The listener corrects for that delay: it keeps enough audio from before the reported start,
and after a wake word it ignores probabilities that still describe the wake word itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from assistant.voice.config import ListenMode, VadConfig, WakeConfig

if TYPE_CHECKING:
    from pymicro_vad import MicroVad

FRAME_BYTES = 320  # 10 ms of 16 kHz s16le: the unit both models consume
FRAMES_PER_SECOND = 100
VAD_DELAY_FRAMES = 60
SPEECH_START_FRAMES = 3  # consecutive speech frames before we call it speech
PAD_FRAMES = 30  # audio kept on each side of the speech
PRE_ROLL_FRAMES = VAD_DELAY_FRAMES + SPEECH_START_FRAMES + PAD_FRAMES


class EndReason(StrEnum):
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    NO_SPEECH = "no_speech"
    STREAM_END = "stream_end"


@dataclass(frozen=True, slots=True)
class WakeWordDetected:
    name: str
    at_s: float  # position in the stream


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_s: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """A command was captured (``audio`` is empty for NO_SPEECH)."""

    audio: bytes
    reason: EndReason
    at_s: float


ListenEvent = WakeWordDetected | SpeechStarted | SpeechEnded


def _new_vad() -> MicroVad:
    from pymicro_vad import MicroVad

    return MicroVad()


class SpeechProbability:
    """pymicro-vad over chunks of any size: one probability per complete 10 ms frame."""

    def __init__(self) -> None:
        self._vad = _new_vad()
        self._pending = b""

    def frames(self, pcm16k: bytes) -> list[tuple[bytes, float]]:
        data = self._pending + pcm16k
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        return [(data[i:i + FRAME_BYTES], self._vad.process_10ms(data[i:i + FRAME_BYTES]))
                for i in range(0, whole, FRAME_BYTES)]


def trim_to_speech(pcm16k: bytes, config: VadConfig) -> bytes | None:
    """The speech in a whole clip with a little padding, or None when nobody speaks."""
    vad = SpeechProbability()
    # Trailing silence flushes the VAD's delay so the clip's last words are judged too.
    results = vad.frames(pcm16k + bytes(FRAME_BYTES * (VAD_DELAY_FRAMES + PAD_FRAMES)))
    speech = [i - VAD_DELAY_FRAMES for i, (_f, p) in enumerate(results) if p >= config.threshold]
    if not speech:
        return None
    start = max(0, speech[0] - PAD_FRAMES) * FRAME_BYTES
    end = min(len(pcm16k), (speech[-1] + PAD_FRAMES) * FRAME_BYTES)
    return pcm16k[start:end] if end > start else None


class WakeWordDetector:
    """One stream's wake word model (pymicro-wakeword bundled model)."""

    def __init__(self, config: WakeConfig) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self._model = MicroWakeWord.from_builtin(Model(config.model))
        self._features = MicroWakeWordFeatures()
        self.name = config.model
        self.threshold = config.threshold or self._model.probability_cutoff

    def process(self, pcm16k: bytes) -> bool:
        """True when the wake word ends in this audio."""
        detected = False
        for features in self._features.process_streaming(pcm16k):
            probability = self._model.process_streaming_prob(features)
            detected |= probability is not None and probability > self.threshold
        return detected

    def reset(self) -> None:
        self._model.reset()
        self._features.reset()


class _State(Enum):
    WAKE = "waiting for the wake word"
    COMMAND = "waiting for speech"
    SPEECH = "in speech"
    DONE = "captured"


class CommandListener:
    """Turns one stream's audio into events: wake word, speech started, command captured.

    After ``SpeechEnded`` it ignores audio until ``listen_again`` (the reply is being made).
    """

    def __init__(self, mode: ListenMode, vad: VadConfig, *,
                 wake: WakeWordDetector | None = None, refractory_s: float = 2.0) -> None:
        if mode == "wake_word" and wake is None:
            raise ValueError("wake_word mode needs a WakeWordDetector")
        self.mode = mode
        self.vad_config = vad
        self._wake = wake
        self._refractory_frames = int(refractory_s * FRAMES_PER_SECOND)
        self._vad = SpeechProbability()
        self._frame = 0
        self._last_wake_frame: int | None = None
        self._ignore_vad_until = 0
        self._no_speech_deadline: int | None = None
        self._speech_run = 0
        self._silence_run = 0
        self._audio: deque[bytes] = deque()
        self._state = _State.WAKE
        self.listen_again()

    def listen_again(self, *, follow_up: bool = False) -> None:
        """Back to the start; ``follow_up`` skips the wake word (the assistant asked a question)."""
        if self.mode == "wake_word" and not follow_up:
            assert self._wake is not None
            self._wake.reset()
            self._state = _State.WAKE
        else:
            self._begin_command()

    def _begin_command(self) -> None:
        self._state = _State.COMMAND
        self._audio = deque(maxlen=None if self.mode == "push_to_talk" else PRE_ROLL_FRAMES)
        self._speech_run = 0
        # Probabilities for the next VAD_DELAY_FRAMES describe audio from before this point.
        self._ignore_vad_until = self._frame + VAD_DELAY_FRAMES
        self._no_speech_deadline = None if self.mode == "always_listening" else (
            self._frame + VAD_DELAY_FRAMES
            + int(self.vad_config.no_speech_timeout_s * FRAMES_PER_SECOND))

    def feed(self, pcm16k: bytes) -> list[ListenEvent]:
        events: list[ListenEvent] = []
        for frame, probability in self._vad.frames(pcm16k):
            self._frame += 1
            event = self._step(frame, probability)
            if event is not None:
                events.append(event)
        return events

    def end_of_stream(self) -> list[ListenEvent]:
        """The stream ended (push-to-talk released, satellite stopped): capture what we have."""
        if self._state in (_State.COMMAND, _State.SPEECH):
            return [self._end(EndReason.STREAM_END)]
        return []

    def _step(self, frame: bytes, probability: float) -> ListenEvent | None:
        at_s = self._frame / FRAMES_PER_SECOND
        if self._state is _State.WAKE:
            assert self._wake is not None
            if self._wake.process(frame) and not self._in_refractory():
                self._last_wake_frame = self._frame
                self._begin_command()
                return WakeWordDetected(self._wake.name, at_s)
            return None
        if self._state is _State.COMMAND:
            self._audio.append(frame)
            heard = probability >= self.vad_config.threshold
            self._speech_run = self._speech_run + 1 if heard and (
                self._frame > self._ignore_vad_until) else 0
            if self._speech_run >= SPEECH_START_FRAMES:
                self._state = _State.SPEECH
                self._silence_run = 0
                self._audio = deque(self._audio)  # unbounded from here on
                return SpeechStarted(at_s)
            if self._no_speech_deadline is not None and self._frame >= self._no_speech_deadline:
                return self._end(EndReason.NO_SPEECH)
            return None
        if self._state is _State.SPEECH:
            self._audio.append(frame)
            heard = probability >= self.vad_config.threshold
            self._silence_run = 0 if heard else self._silence_run + 1
            if self._silence_run * 10 >= self.vad_config.end_of_speech_silence_ms:
                return self._end(EndReason.SILENCE)
            if len(self._audio) >= self.vad_config.max_utterance_s * FRAMES_PER_SECOND:
                return self._end(EndReason.MAX_LENGTH)
        return None

    def _in_refractory(self) -> bool:
        return self._last_wake_frame is not None and (
            self._frame - self._last_wake_frame < self._refractory_frames)

    def _end(self, reason: EndReason) -> SpeechEnded:
        audio = b"" if reason is EndReason.NO_SPEECH else b"".join(self._audio)
        self._audio = deque()
        self._state = _State.DONE
        return SpeechEnded(audio, reason, self._frame / FRAMES_PER_SECOND)
