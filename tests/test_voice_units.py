"""Voice parts that need no model: audio decoding, devices, config, CLI checks, text matching."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import struct
import threading
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from assistant.messages import MqttMessage
from assistant.voice import audio as voice_audio
from assistant.voice import tts as voice_tts
from assistant.voice.audio import (
    SAMPLE_RATE,
    AudioDeviceUnavailableError,
    AudioFormatError,
    Microphone,
    decode_audio_payload,
    decode_wav,
)
from assistant.voice.bench import (
    DEMO_HOME,
    MIN_COMMANDS,
    bench_commands,
    guess_domain,
    normalize_transcript,
    registry_from_names,
)
from assistant.voice.commands import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_bench_voice_arguments,
    add_listen_arguments,
    bench_voice,
    listen,
)
from assistant.voice.config import TtsConfig, VoiceConfig
from assistant.voice.tts import ReplyOutput, SpeakerPlayer, SpeechChunk

TIMEOUT = 5.0


def sine_wav(*, rate: int, width: int, channels: int, seconds: float = 0.5,
             freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    wave_ = 0.5 * np.sin(2 * np.pi * freq * t)
    frames = np.repeat(wave_[:, None], channels, axis=1).ravel()
    if width == 1:
        raw = (frames * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = (frames * (2**23 - 1)).astype("<i4")
        raw = b"".join(struct.pack("<i", int(v))[:3] for v in ints)
    else:
        raw = (frames * (2 ** (8 * width - 1) - 1)).astype("<i2" if width == 2 else "<i4").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(raw)
    return buffer.getvalue()


def dominant_hz(pcm16k: bytes) -> float:
    samples = np.frombuffer(pcm16k, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * SAMPLE_RATE / samples.size)


# -- audio in ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "width", "channels"),
                         [(44_100, 1, 2), (48_000, 3, 1), (22_050, 2, 1), (8_000, 4, 2),
                          (16_000, 2, 1)])
def test_any_integer_wav_becomes_16k_mono(rate: int, width: int, channels: int) -> None:
    pcm = decode_wav(sine_wav(rate=rate, width=width, channels=channels))
    assert len(pcm) == 2 * 8000  # 0.5 s at 16 kHz, 16-bit
    assert dominant_hz(pcm) == pytest.approx(440, abs=5)


@pytest.mark.parametrize(("payload", "message"), [
    (b"hello, this is not audio at all", "not a WAV file"),
    (b"RIFF\x00\x00", "truncated"),
    # A float WAV (format 3): the header of a real one, data cut short.
    (b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00\x01\x00\x80>\x00\x00\x00\xfa\x00\x00"
     b"\x04\x00 \x00data\x00\x00\x00\x00", "integer PCM"),
])
def test_unusable_wav_says_why(payload: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        decode_wav(payload, source="upload.wav")


def test_empty_wav_and_ragged_raw_pcm_are_refused() -> None:
    with pytest.raises(AudioFormatError, match="contains no audio"):
        decode_wav(sine_wav(rate=16_000, width=2, channels=1, seconds=0))
    with pytest.raises(AudioFormatError, match="whole number of 2-byte frames"):
        decode_audio_payload(b"\x01\x02\x03")


def test_raw_pcm_is_resampled_from_its_rate() -> None:
    raw_8k = np.zeros(8000, "<i2").tobytes()  # 1 s
    assert len(decode_audio_payload(raw_8k, raw_rate=8000)) == 2 * SAMPLE_RATE


class FakeSoundDevice:
    """Stands in for PortAudio: records the stream and lets a test call back from a thread."""

    def __init__(self) -> None:
        self.callback: Any = None
        self.played: list[int] = []

    def RawInputStream(self, **kwargs: Any) -> SimpleNamespace:  # noqa: N802 (sounddevice's name)
        self.callback = kwargs["callback"]
        return SimpleNamespace(start=lambda: None, stop=lambda: None, close=lambda: None)


async def test_microphone_blocks_cross_from_portaudio_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSoundDevice()
    monkeypatch.setattr(voice_audio, "load_sounddevice", lambda: fake)
    microphone = Microphone(sample_rate=48_000)
    microphone.open()
    block = np.full(960, 1000, "<i2").tobytes()  # 20 ms at 48 kHz
    thread = threading.Thread(target=lambda: [fake.callback(block, 960, None, None)
                                              for _ in range(3)])
    thread.start()
    thread.join(TIMEOUT)
    chunks = microphone.chunks()
    received = [await asyncio.wait_for(anext(chunks), TIMEOUT) for _ in range(3)]
    microphone.close()
    assert sum(map(len, received)) == pytest.approx(3 * 640, abs=8)  # 16 kHz s16le


async def test_microphone_without_portaudio_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_portaudio() -> None:
        raise AudioDeviceUnavailableError("no sound devices: PortAudio library not found")

    monkeypatch.setattr(voice_audio, "load_sounddevice", no_portaudio)
    with pytest.raises(AudioDeviceUnavailableError, match="PortAudio"):
        Microphone().open()


async def test_speaker_without_device_logs_once_and_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_portaudio() -> None:
        raise AudioDeviceUnavailableError("no sound devices: PortAudio library not found")

    monkeypatch.setattr(voice_tts, "load_sounddevice", no_portaudio)
    speaker = SpeakerPlayer()
    chunk = SpeechChunk(bytes(4410), 22_050)
    with caplog.at_level(logging.ERROR):
        speaker.play(chunk)
        speaker.play(chunk)
        await speaker.wait_played(timeout=TIMEOUT)
    await speaker.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "PortAudio" in errors[0]


async def test_replies_go_to_a_wav_dir_or_an_mqtt_topic(tmp_path: Any) -> None:
    reply = bytes(4410)
    stored = await ReplyOutput(TtsConfig(output="wav_dir", wav_dir=tmp_path)).finish(reply, 22_050)
    assert stored is not None and decode_wav(stored.read_bytes()) == bytes(3200)
    published: list[MqttMessage] = []
    to_mqtt = ReplyOutput(TtsConfig(output="mqtt", mqtt_topic="home/voice/reply"),
                          publish=published.append)
    await to_mqtt.finish(reply, 22_050)
    assert [m.topic for m in published] == ["home/voice/reply"]
    assert published[0].payload[:4] == b"RIFF"


# -- config ---------------------------------------------------------------------------------------

def test_voice_config_defaults_and_mistakes() -> None:
    config = VoiceConfig()
    nowhere = Path("/nonexistent")  # English needs nothing joined or pulled
    assert config.stt.model_source(nowhere).endswith("model")  # the bundled tiny.en directory
    joe = config.tts.piper_voice_for("en", nowhere)
    assert joe is not None and joe.name == "en_US-joe-medium.onnx"
    with pytest.raises(ValidationError, match="Extra inputs"):
        VoiceConfig.model_validate({"stt": {"modle": "tiny"}})
    with pytest.raises(ValidationError, match="needs wav_dir"):
        VoiceConfig.model_validate({"tts": {"output": "wav_dir"}})
    with pytest.raises(ValidationError, match="bundled: okay_nabu"):
        VoiceConfig.model_validate({"wake": {"model": "hey_computer"}})


# -- bench helpers and CLI checks ----------------------------------------------------------------

@pytest.mark.parametrize(("heard", "said"), [
    ("Dim the Kitchen Light to 30%", "dim the kitchen light to thirty percent."),
    ("Set the thermostat to twenty-one degrees.", "set the thermostat to 21 degrees"),
    ("Turn on light one hundred five", "turn on light 105"),
])
def test_transcripts_compare_after_normalisation(heard: str, said: str) -> None:
    assert normalize_transcript(heard) == normalize_transcript(said)


def test_demo_home_gives_enough_commands() -> None:
    registry = registry_from_names(DEMO_HOME)
    commands = bench_commands(registry)
    assert len(commands) >= MIN_COMMANDS
    assert "Lock the front door." in commands and "Open the garage door." in commands
    assert {guess_domain(n) for n in ("Garage Door", "Front Door", "Porch Light", "Kettle")} == {
        "cover", "lock", "light", "switch"}


def test_bench_refuses_too_few_runs() -> None:
    parser = argparse.ArgumentParser()
    add_bench_voice_arguments(parser)
    err = io.StringIO()
    rc = asyncio.run(bench_voice(parser.parse_args(["--runs", "3"]), err=err))
    assert rc == EXIT_BAD_INPUT and "at least 10" in err.getvalue()


def listen_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_listen_arguments(parser)
    return parser.parse_args(list(argv))


async def never_called(_wav: bytes) -> dict[str, Any]:
    raise AssertionError("unusable audio must not reach the daemon")


async def test_listen_refuses_a_garbage_file(tmp_path: Any) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\xffnot a wav" * 50)
    err = io.StringIO()
    rc = await listen(listen_args(str(garbage)), never_called, err=err)
    assert rc == EXIT_BAD_INPUT
    assert f"{garbage}: not a WAV file" in err.getvalue()


async def test_listen_prints_what_the_daemon_understood() -> None:
    sent: list[bytes] = []

    async def daemon(wav: bytes) -> dict[str, Any]:
        sent.append(wav)
        return {"transcript": "turn on the kitchen light", "reply": "Done.",
                "actions": [{"tool": "turn_on", "entity_id": "light.kitchen", "args": {}}]}

    raw = np.zeros(8000, "<i2").tobytes()
    out = io.StringIO()
    rc = await listen(listen_args("-", "--rate", "8000"), daemon, stdin=io.BytesIO(raw), out=out)
    assert rc == EXIT_OK
    assert decode_wav(sent[0]) == bytes(2 * SAMPLE_RATE)  # resampled to 16 kHz before sending
    assert out.getvalue().splitlines() == [
        "heard:   turn on the kitchen light", "reply:   Done.",
        "action:  turn_on light.kitchen {}"]
    out = io.StringIO()
    await listen(listen_args("-", "--json"), daemon, stdin=io.BytesIO(raw), out=out)
    assert json.loads(out.getvalue())["transcript"] == "turn on the kitchen light"
