"""Speech to text: the one owner of the faster-whisper model.

Vocabulary biasing: Whisper tiny.en hears "Lock the front door" as "Walk the front door" and
"Dim the kitchen light" as "Then the kitchen light". Priming the decoder with the words this
home actually uses (command verbs, area names, device names and aliases) fixes that; the
list is rebuilt from the live registry after a structural change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assistant.registry import RegistryChange
from assistant.voice.audio import pcm16_to_float, seconds_of
from assistant.voice.config import SttConfig

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from assistant.registry import DeviceRegistry

log = logging.getLogger(__name__)

COMMAND_WORDS = (
    "turn on", "turn off", "switch on", "switch off", "lock", "unlock", "open", "close",
    "dim", "brighten", "set", "raise", "lower", "start", "stop", "pause", "play",
    "percent", "degrees",
)
# Example commands in the style we expect (no device names): primes phrasing, "Unlock" vs
# "and lock", and "30%" for numbers. Generic on purpose: the home's names go in the hotwords.
COMMAND_STYLE = ("Turn on the light. Turn off the fan. Lock the door. Unlock the door. "
                 "Open the blinds. Close the curtains. Dim the lamp to 40%. "
                 "Set the heating to 20 degrees.")
# Domains people command by voice go first: faster-whisper keeps only the first ~220 tokens.
_COMMANDED_FIRST = ("light", "lock", "cover", "switch", "fan", "climate", "media_player",
                    "vacuum", "scene", "script")


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    seconds: float  # wall-clock time spent transcribing
    audio_seconds: float
    biased: bool


def build_vocabulary(registry: DeviceRegistry | None) -> str:
    """Comma-separated command words, area names, then device names and aliases."""
    words: list[str] = list(COMMAND_WORDS)
    if registry is not None:
        for area in registry.areas.values():
            words += [area.name, *area.aliases]
        rank = {domain: i for i, domain in enumerate(_COMMANDED_FIRST)}
        entities = sorted(registry.entities(),
                          key=lambda e: (rank.get(e.domain, len(rank)), e.name.casefold()))
        for entity in entities:
            words += [entity.name, *entity.aliases]
    return ", ".join(_unique(words))


def _unique(words: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for word in words:
        key = " ".join(word.casefold().split())
        if key and key not in seen:
            seen.add(key)
            kept.append(word.strip())
    return kept


class SpeechToText:
    """Loads Whisper once; transcribes one utterance at a time in a worker thread."""

    def __init__(self, config: SttConfig, registry: DeviceRegistry | None = None) -> None:
        self.config = config
        self.registry = registry
        self._model: WhisperModel | None = None
        self._lock = asyncio.Lock()
        self._vocabulary: str | None = None  # None: rebuild before the next biased decode
        self._unsubscribe: Callable[[], None] | None = None
        if registry is not None:
            self._unsubscribe = registry.subscribe(self._on_registry_change)

    def _on_registry_change(self, change: RegistryChange) -> None:
        # Discovery upserts entities in bursts: rebuild lazily, once, at the next decode.
        if change.structure:
            self._vocabulary = None

    @property
    def vocabulary(self) -> str:
        if self._vocabulary is None:
            self._vocabulary = build_vocabulary(self.registry)
            log.debug("STT vocabulary: %s", self._vocabulary)
        return self._vocabulary

    async def load(self) -> None:
        async with self._lock:
            if self._model is None:
                started = time.perf_counter()
                self._model = await asyncio.to_thread(self._load_blocking)
                log.info("Whisper %s loaded in %.1f s", self.config.model_source(),
                         time.perf_counter() - started)

    def _load_blocking(self) -> WhisperModel:
        from faster_whisper import WhisperModel

        # local_files_only: a model that is not on disk is an error, never a download
        return WhisperModel(self.config.model_source(), local_files_only=True,
                            device=self.config.device,
                            compute_type=self.config.compute_type,
                            cpu_threads=self.config.cpu_threads)

    async def transcribe(self, pcm16k: bytes, *, biased: bool = True) -> Transcript:
        """Text of one utterance (16 kHz mono s16le); ``biased`` primes the home's words."""
        await self.load()
        biased = biased and self.config.vocabulary_biasing
        async with self._lock:
            started = time.perf_counter()
            text = await asyncio.to_thread(self._transcribe_blocking, pcm16k, biased)
            elapsed = time.perf_counter() - started
        return Transcript(text, elapsed, seconds_of(pcm16k), biased=biased)

    def _transcribe_blocking(self, pcm16k: bytes, biased: bool) -> str:
        assert self._model is not None
        options: dict[str, Any] = {
            "language": self.config.language,
            "beam_size": self.config.beam_size,
            # Endpointing and trimming happened already (pymicro-vad); one window, no history.
            "vad_filter": False,
            "condition_on_previous_text": False,
            "without_timestamps": True,
        }
        if biased:
            # Measured on 74 spoken commands (docs/VOICE.md): words as hotwords plus example
            # commands as the prompt 100 %; hotwords alone 93 %, the word list as prompt
            # 93 %, the word list in both 90 %, no biasing 78 %.
            options["hotwords"] = self.vocabulary
            options["initial_prompt"] = COMMAND_STYLE
        segments, _info = self._model.transcribe(pcm16_to_float(pcm16k), **options)
        return " ".join(segment.text.strip() for segment in segments).strip()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
