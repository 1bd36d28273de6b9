"""Voice through the real daemon: Piper speaks a command into a WAV, the daemon's pipeline
(VAD -> faster-whisper, biased by the registry) hands it to the fast path, and an
independent mosquitto_sub sees the device command on the wire."""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.transport.api import ApiClient
from assistant.config import Config, MqttConfig
from assistant.virtual.stack import running_home
from assistant.voice.audio import wav_bytes
from assistant.voice.config import TtsConfig, VoiceConfig
from assistant.voice.tts import TextToSpeech
from assistant.virtual.home import demo_home
from tests.conftest import Broker


async def spoken(text: str) -> bytes:
    tts = TextToSpeech(TtsConfig(output="none"))
    pcm, rate = await asyncio.wait_for(tts.synthesize_all(text), 60)
    return wav_bytes(pcm, rate)


def voice_config(broker: Broker, state_dir: Path, base_topic: str) -> Config:
    """Voice on (models and the MQTT voice API), no microphone or speaker, no LLM."""
    return Config(
        state_dir=state_dir,
        mqtt=MqttConfig(host=broker.host, port=broker.port, base_topic=base_topic,
                        client_id=base_topic),
        llm={"enabled": False},
        voice=VoiceConfig(enabled=True, tts=TtsConfig(output="none")),
    )


async def test_a_spoken_command_reaches_the_device(broker: Broker, tmp_path: Path) -> None:
    config = voice_config(broker, tmp_path, "voice-e2e")
    wav = await spoken("Turn on the kitchen light.")
    async with running_home(config, demo_home(), home_topic="voice-e2e-home") as (house, _):
        sub = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
            "-t", "voice-e2e-home/light/kitchen/set", "-C", "1", "-W", "60",
            stdout=asyncio.subprocess.PIPE)
        await asyncio.sleep(0.3)
        client = await asyncio.to_thread(ApiClient, config.mqtt)
        try:
            reply = await asyncio.wait_for(asyncio.to_thread(client.listen, wav, 60), 70)
        finally:
            await asyncio.to_thread(client.close)
        out, _ = await asyncio.wait_for(sub.communicate(), 70)
        assert b'"state"' in out and b"ON" in out
        assert "kitchen light" in reply["transcript"].lower()
        assert reply["path"] == "fast"
        assert reply["actions"][0]["entity_id"] == "light.kitchen"
        assert reply["timings"]["stt_ms"] > 0
        await asyncio.wait_for(house.wait_quiet(0.1, 5), 10)
        assert house.states()["light.kitchen"].state == "on"


async def test_garbage_audio_gets_a_clear_error(broker: Broker, tmp_path: Path) -> None:
    config = voice_config(broker, tmp_path, "voice-bad")
    async with running_home(config, demo_home(), home_topic="voice-bad-home"):
        client = await asyncio.to_thread(ApiClient, config.mqtt)
        try:
            reply = await asyncio.wait_for(
                asyncio.to_thread(client.listen, b"RIFF\x00\x00junk that is not audio", 30), 40)
        finally:
            await asyncio.to_thread(client.close)
    assert "error" in reply
