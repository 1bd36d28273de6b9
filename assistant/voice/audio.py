"""Audio in: WAV files, raw PCM, the local microphone. Everything becomes 16 kHz mono s16le.

Whole clips are resampled with numpy (FFT, band-limited); live streams (microphone,
satellites) with wyoming's stateful converter, which carries its state across chunks.
"""

from __future__ import annotations

import asyncio
import io
import logging
import wave
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np
from wyoming.audio import AudioChunk as WyomingChunk
from wyoming.audio import AudioChunkConverter

from assistant.voice.config import SAMPLE_RATE

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH


class AudioFormatError(ValueError):
    """The audio cannot be read: not a WAV file, an unsupported encoding, or empty."""


class AudioDeviceUnavailableError(RuntimeError):
    """No sound device can be used (PortAudio missing, no such device, ...)."""


def seconds_of(pcm16k: bytes) -> float:
    return len(pcm16k) / BYTES_PER_SECOND


# -- whole clips -------------------------------------------------------------------------------

def decode_wav(data: bytes | BinaryIO, *, source: str = "audio") -> bytes:
    """Any integer-PCM WAV (8/16/24/32-bit, any rate, any channels) -> 16 kHz mono s16le."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with wave.open(stream, "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            frames = wav.readframes(wav.getnframes())
    except wave.Error as exc:
        # The stdlib reads only integer PCM: float and compressed WAVs land here too.
        raise AudioFormatError(f"{source}: not a WAV file with integer PCM audio ({exc})") from None
    except EOFError:
        raise AudioFormatError(f"{source}: the WAV file is truncated") from None
    if rate <= 0 or channels <= 0:
        raise AudioFormatError(f"{source}: the WAV header is invalid ({rate} Hz, {channels} ch)")
    return pcm_to_16k(frames, rate=rate, width=width, channels=channels, source=source)


def read_wav_file(path: Path | str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioFormatError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return decode_wav(data, source=str(path))


def decode_audio_payload(data: bytes, *, raw_rate: int = SAMPLE_RATE,
                         source: str = "audio") -> bytes:
    """A WAV file (recognised by its RIFF header) or raw mono s16le PCM at ``raw_rate``."""
    if data[:4] == b"RIFF":
        return decode_wav(data, source=source)
    return pcm_to_16k(data, rate=raw_rate, width=2, channels=1, source=source)


def pcm_to_16k(frames: bytes, *, rate: int, width: int, channels: int,
               source: str = "audio") -> bytes:
    if width not in (1, 2, 3, 4):
        raise AudioFormatError(f"{source}: unsupported sample width of {width} bytes")
    if len(frames) % (width * channels):
        raise AudioFormatError(
            f"{source}: {len(frames)} bytes is not a whole number of {width * channels}-byte "
            "frames (is this really raw 16-bit mono PCM?)")
    if not frames:
        raise AudioFormatError(f"{source}: contains no audio")
    samples = _to_float(frames, width).reshape(-1, channels).mean(axis=1)
    samples = resample(samples, rate, SAMPLE_RATE)
    return float_to_pcm16(samples)


def _to_float(frames: bytes, width: int) -> np.ndarray:
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(frames, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:  # little-endian 24-bit: widen to 32 bits through the top three bytes
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        wide = np.zeros((raw.shape[0], 4), np.uint8)
        wide[:, 1:] = raw
        return wide.view("<i4").ravel().astype(np.float32) / 2**31
    dtype = "<i2" if width == 2 else "<i4"
    return np.frombuffer(frames, dtype).astype(np.float32) / float(2 ** (8 * width - 1))


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of a whole clip in the frequency domain."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    out_len = max(1, round(samples.size * to_rate / from_rate))
    spectrum = np.fft.rfft(samples)
    keep = out_len // 2 + 1
    if keep <= spectrum.size:
        spectrum = spectrum[:keep]
    else:
        spectrum = np.pad(spectrum, (0, keep - spectrum.size))
    return (np.fft.irfft(spectrum, out_len) * (out_len / samples.size)).astype(np.float32)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0


def wav_bytes(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono s16le PCM wrapped in a WAV header."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def write_wav(path: Path | str, pcm: bytes, sample_rate: int = SAMPLE_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(pcm, sample_rate))
    return path


# -- sound devices -----------------------------------------------------------------------------

def load_sounddevice() -> ModuleType:
    """The sounddevice module, or a clear error when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:  # raised at import when libportaudio is not installed
        raise AudioDeviceUnavailableError(
            f"no sound devices: {exc} (install it, e.g. `apt install libportaudio2`)") from None
    return sounddevice


class Microphone:
    """Captures the local microphone into an asyncio queue as 16 kHz mono s16le chunks.

    PortAudio calls back on its own thread; each block re-enters the event loop with
    ``call_soon_threadsafe``. The queue is bounded (oldest audio dropped first): when the
    loop is busy, stale audio is worth less than fresh audio.
    """

    def __init__(self, *, device: str | int | None = None, sample_rate: int = SAMPLE_RATE,
                 block_ms: int = 20, max_queued_s: float = 2.0) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self._block_frames = sample_rate * block_ms // 1000
        self._queue: deque[bytes] = deque(maxlen=max(1, int(max_queued_s * 1000 / block_ms)))
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=1)

    def open(self) -> None:
        """Start capturing; raises AudioDeviceUnavailableError when there is no microphone."""
        sounddevice = load_sounddevice()
        self._loop = asyncio.get_running_loop()
        try:
            self._stream = sounddevice.RawInputStream(
                samplerate=self.sample_rate, blocksize=self._block_frames, device=self.device,
                channels=1, dtype="int16", callback=self._on_block_thread)
            self._stream.start()
        except Exception as exc:  # PortAudioError, ValueError for an unknown device name
            self._stream = None
            raise AudioDeviceUnavailableError(
                f"cannot open microphone {self.device or '(default)'}: {exc}") from None
        log.info("microphone %s open at %d Hz", self.device or "(default)", self.sample_rate)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def clear(self) -> None:
        """Drop audio captured so far (e.g. while the assistant itself was speaking)."""
        self._queue.clear()
        self._ready.clear()

    def _on_block_thread(self, indata: Any, _frames: int, _time: Any, status: Any) -> None:
        if status:
            log.debug("microphone: %s", status)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_block, bytes(indata))

    def _on_block(self, block: bytes) -> None:
        self._queue.append(block)
        self._ready.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """16 kHz mono s16le audio, block by block, until the microphone is closed."""
        while True:
            await self._ready.wait()
            while self._queue:
                block = self._queue.popleft()
                chunk = WyomingChunk(self.sample_rate, SAMPLE_WIDTH, 1, block)
                yield self._converter.convert(chunk).audio
            self._ready.clear()
