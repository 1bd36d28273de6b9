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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.registry import RegistryChange
from assistant.voice.audio import pcm16_to_float, seconds_of
from assistant.voice.config import SttConfig, is_english

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from assistant.registry import DeviceRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandPhrasing:
    """How commands sound in one language: verbs and units as hotwords, and example commands
    in the style we expect (no device names: the home's names go in the hotwords) as the
    prompt; it primes phrasing, "Unlock" vs "and lock", and "30%" for numbers."""

    words: tuple[str, ...]
    style: str

    def is_example(self, heard: str) -> bool:
        return _words(heard) in (_words(sentence) for sentence in self.style.split(". "))

    def invented_object(self, example: str, unprompted: str) -> bool:
        """Whether the decode without the prompt did not hear the object (a device, a
        number) of the ``example`` heard with it at all: then Whisper copied the prompt over
        unclear audio ("spegni la luce del soggiorno" came out "Spegni il ventilatore."),
        and acting on it would touch the wrong device."""
        verbs = {word for phrase in self.words for word in _words(phrase)}
        objects = {word for word in _words(example) if len(word) > 3 and word not in verbs}
        return bool(objects) and not objects & set(_words(unprompted))


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.casefold().replace(".", " ").replace(",", " ").split())


# A language without an entry is primed with the home's names only.
PHRASING = {
    "en": CommandPhrasing(
        ("turn on", "turn off", "switch on", "switch off", "lock", "unlock", "open", "close",
         "dim", "brighten", "set", "raise", "lower", "start", "stop", "pause", "play",
         "percent", "degrees"),
        "Turn on the light. Turn off the fan. Lock the door. Unlock the door. "
        "Open the blinds. Close the curtains. Dim the lamp to 40%. "
        "Set the heating to 20 degrees."),
    "it": CommandPhrasing(
        ("accendi", "spegni", "apri", "chiudi", "blocca", "sblocca", "imposta", "alza",
         "abbassa", "avvia", "ferma", "metti in pausa", "riproduci", "per cento", "gradi"),
        # not "chiudi a chiave": Whisper then heard "a chiave" in commands for lights
        "Accendi la luce. Spegni il ventilatore. Blocca la serratura. Sblocca la porta. "
        "Apri le tapparelle. Chiudi le tende. Abbassa la lampada al 40%. "
        "Imposta il riscaldamento a 20 gradi."),
    "es": CommandPhrasing(
        ("enciende", "apaga", "abre", "cierra", "bloquea", "desbloquea", "pon", "sube",
         "baja", "inicia", "detén", "pausa", "reproduce", "por ciento", "grados"),
        "Enciende la luz. Apaga el ventilador. Bloquea la cerradura. Desbloquea la puerta. "
        "Abre las persianas. Cierra las cortinas. Baja la lámpara al 40%. "
        "Pon la calefacción a 20 grados."),
}
# Domains people command by voice go first: faster-whisper keeps only the first ~220 tokens.
_COMMANDED_FIRST = ("light", "lock", "cover", "switch", "fan", "climate", "media_player",
                    "vacuum", "scene", "script")


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    seconds: float  # wall-clock time spent transcribing
    audio_seconds: float
    biased: bool


def build_vocabulary(registry: DeviceRegistry | None, language: str = "en") -> str:
    """Comma-separated command words, area names, then device names and aliases."""
    phrasing = PHRASING.get(language)
    words: list[str] = list(phrasing.words if phrasing else ())
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

    def __init__(self, config: SttConfig, registry: DeviceRegistry | None = None, *,
                 models_dir: Path) -> None:
        self.config = config
        self.registry = registry
        self.models_dir = models_dir  # where the bundled multilingual model is joined
        self.language = config.spoken_language
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
            self._vocabulary = build_vocabulary(self.registry, self.language)
            log.debug("STT vocabulary: %s", self._vocabulary)
        return self._vocabulary

    async def load(self) -> None:
        async with self._lock:
            if self._model is None:
                started = time.perf_counter()
                self._model, source = await asyncio.to_thread(self._load_blocking)
                log.info("Whisper %s (%s) loaded from %s in %.1f s", self.config.model_name,
                         self.language, source, time.perf_counter() - started)

    def _load_blocking(self) -> tuple[WhisperModel, str]:
        from faster_whisper import WhisperModel

        source = self.config.model_source(self.models_dir)  # may join the bundled parts
        # local_files_only: a model that is not on disk is an error, never a download
        model = WhisperModel(source, local_files_only=True, device=self.config.device,
                             compute_type=self.config.compute_type,
                             cpu_threads=self.config.cpu_threads)
        if not model.model.is_multilingual and not is_english(self.language):
            raise ValueError(f"Whisper at {source} hears English only, not {self.language!r}")
        return model, source

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
            "language": self.language,
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
        phrasing = PHRASING.get(self.language) if biased else None
        audio = pcm16_to_float(pcm16k)
        text = self._decode(audio, options, prompt=phrasing.style if phrasing else None)
        if phrasing is None or not phrasing.is_example(text):
            return text
        unprompted = self._decode(audio, options, prompt=None)  # rare: costs a second decode
        if phrasing.invented_object(text, unprompted):
            log.info("heard %r only as the prompt's example; using %r", text, unprompted)
            return unprompted
        return text

    def _decode(self, audio: Any, options: dict[str, Any], prompt: str | None) -> str:
        assert self._model is not None
        segments, _info = self._model.transcribe(audio, **options, initial_prompt=prompt)
        return " ".join(segment.text.strip() for segment in segments).strip()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
