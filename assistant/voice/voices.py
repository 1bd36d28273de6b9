"""Which voice speaks the home's language, and the engines behind it.

Piper where a voice for the language is configured (or bundled: English), espeak-ng where
it is not and espeak-ng is installed, else text only. A reply is never read out by another
language's voice: a Piper voice whose ``.onnx.json`` names another language is refused.
Every function here blocks (files, subprocesses, model loading): call them in a thread.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from assistant.voice.config import SAMPLE_RATE, TtsConfig, language_family

if TYPE_CHECKING:
    from piper.config import SynthesisConfig

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT_S = 30.0
Engine = Literal["piper", "espeak", "text"]


class VoiceError(RuntimeError):
    """A configured voice cannot be used; the text says what to do."""


@dataclass(frozen=True, slots=True)
class VoiceChoice:
    engine: Engine
    name: str  # the Piper voice's file stem, espeak-ng's voice, or "text only"
    path: Path | None = None  # Piper's .onnx
    why: str = ""  # for the log: why this and not a Piper voice


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """One rendered sentence: mono s16le PCM."""

    audio: bytes
    sample_rate: int


class Speaker(Protocol):
    @property
    def sample_rate(self) -> int: ...

    def sentences(self, text: str, syn_config: SynthesisConfig | None) -> Iterator[SpeechChunk]:
        """Blocking, one rendered sentence per step."""
        ...


def choose_voice(config: TtsConfig, language: str, models_dir: Path) -> VoiceChoice:
    piper = config.piper_voice_for(language, models_dir)
    if piper is not None:
        if not piper.is_file():
            raise VoiceError(f"Piper voice {piper} not found: pull it with `mimo-home model "
                             f"pull {piper.stem}`, or fix voice.tts")
        spoken = piper_voice_language(piper)
        if spoken is not None and language_family(spoken) != language_family(language):
            raise VoiceError(f"Piper voice {piper.name} speaks {spoken}, but the home's "
                             f"language is {language!r}: configure voice.tts.voices.{language}")
        return VoiceChoice("piper", piper.stem, piper)
    missing = f"no Piper voice for {language!r} in voice.tts.voices"
    if config.fallback == "espeak":
        espeak_voice = espeak_voice_for(language)
        if espeak_voice is not None:
            return VoiceChoice("espeak", espeak_voice, why=f"{missing}: espeak-ng speaks")
        missing += f", and {ESPEAK} with a {language!r} voice is not installed"
    return VoiceChoice("text", "text only", why=f"{missing}: replies are text only")


def piper_voice_language(onnx: Path) -> str | None:
    """The language a Piper voice's ``.onnx.json`` says it speaks ("it_IT"), if it says."""
    config_path = onnx.with_name(onnx.name + ".json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VoiceError(f"{config_path} is missing or not JSON ({exc}): pull the voice "
                         f"again with `mimo-home model pull {onnx.stem}`") from None
    language = config.get("language") if isinstance(config, dict) else None
    code = language.get("code") if isinstance(language, dict) else None
    espeak = config.get("espeak") if isinstance(config, dict) else None
    return code or (espeak.get("voice") if isinstance(espeak, dict) else None)


def espeak_voice_for(language: str) -> str | None:
    """espeak-ng's voice for ``language`` ("pt-BR" -> "pt-br"), or None without one."""
    if shutil.which(ESPEAK) is None:
        return None
    listed = subprocess.run([ESPEAK, "--voices"], capture_output=True, text=True,
                            timeout=ESPEAK_TIMEOUT_S, check=False).stdout
    known = {line.split()[1].lower() for line in listed.splitlines()[1:] if len(line.split()) > 1}
    for candidate in (language.lower().replace("_", "-"), language_family(language)):
        if candidate in known:
            return candidate
    return None


def load_speaker(choice: VoiceChoice) -> Speaker:
    if choice.engine == "piper":
        assert choice.path is not None
        return PiperSpeaker(choice.path)
    if choice.engine == "espeak":
        return EspeakSpeaker(choice.name)
    return Silent()


class PiperSpeaker:
    def __init__(self, path: Path) -> None:
        from piper import PiperVoice

        self._voice = PiperVoice.load(path)

    @property
    def sample_rate(self) -> int:
        return self._voice.config.sample_rate

    def sentences(self, text: str, syn_config: SynthesisConfig | None) -> Iterator[SpeechChunk]:
        for audio in self._voice.synthesize(text, syn_config=syn_config):
            yield SpeechChunk(audio.audio_int16_bytes, audio.sample_rate)


class EspeakSpeaker:
    """espeak-ng as a subprocess: the text goes in on stdin (never parsed as options)."""

    def __init__(self, voice: str) -> None:
        self.voice = voice
        self.sample_rate = self._render(".").sample_rate  # and it works at all

    def sentences(self, text: str, syn_config: SynthesisConfig | None) -> Iterator[SpeechChunk]:
        chunk = self._render(text)
        if chunk.audio:
            yield chunk

    def _render(self, text: str) -> SpeechChunk:
        done = subprocess.run([ESPEAK, "-v", self.voice, "--stdin", "--stdout"],
                              input=text.encode(), capture_output=True,
                              timeout=ESPEAK_TIMEOUT_S, check=False)
        try:
            # espeak-ng streams: its header's sizes are placeholders, so read what is there.
            with wave.open(io.BytesIO(done.stdout)) as wav:
                return SpeechChunk(wav.readframes(wav.getnframes()), wav.getframerate())
        except (EOFError, wave.Error):
            raise VoiceError(f"{ESPEAK} -v {self.voice} gave no audio (exit "
                             f"{done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()}") from None


class Silent:
    """Text only: no voice for the language, so nothing is said."""

    sample_rate = SAMPLE_RATE

    def sentences(self, text: str, syn_config: SynthesisConfig | None) -> Iterator[SpeechChunk]:
        return iter(())
