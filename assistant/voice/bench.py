"""``mimo-home bench voice``: latency and accuracy of the voice path on this machine.

Piper speaks commands naming the home's devices; each one goes through the live-stream path
(end-of-speech detection -> Whisper -> converse) exactly as a microphone's audio would. The
converse can be injected: the daemon passes one that acts over MQTT, so ``e2e_ms`` is from
the detected end of speech to the reply, which waits for the devices to report what they did;
``report_wait_ms`` is the part of it spent waiting for those reports.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.figures import figure
from assistant.messages import ConversationRequest, ConversationResponse
from assistant.registry import DeviceRegistry, Entity, normalize_name
from assistant.voice.audio import SAMPLE_RATE, float_to_pcm16, pcm16_to_float, resample
from assistant.voice.detect import SpeechEnded
from assistant.voice.pipeline import PipelineEvent, VoicePipeline
from assistant.voice.tts import TextToSpeech
from skills.reports import recording_report_waits

# A small home for standalone runs: (device name, area).
DEMO_HOME: tuple[tuple[str, str | None], ...] = (
    ("Kitchen Light", "Kitchen"),
    ("Living Room Lamp", "Living Room"),
    ("Bedroom Ceiling Light", "Bedroom"),
    ("Porch Light", "Porch"),
    ("Office Desk Lamp", "Office"),
    ("Hallway Light", "Hallway"),
    ("Front Door", "Hallway"),
    ("Back Door Lock", "Kitchen"),
    ("Garage Door", "Garage"),
    ("Living Room Blinds", "Living Room"),
    ("Bedroom Curtains", "Bedroom"),
    ("Thermostat", "Hallway"),
    ("Ceiling Fan", "Bedroom"),
    ("Coffee Maker", "Kitchen"),
    ("Christmas Tree", "Living Room"),
    ("Patio Heater", "Porch"),
)
MIN_COMMANDS = 30
MAX_COMMANDS = 40
MIN_RUNS = 10
STAND_IN_REPLY = "Okay, I have done that for you."

# Spoken command templates per domain; numbers vary so digits get exercised.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "light": ("Turn on the {name}.", "Turn off the {name}.",
              "Dim the {name} to {percent} percent."),
    "switch": ("Turn on the {name}.", "Turn off the {name}."),
    "fan": ("Turn on the {name}.", "Set the {name} to {percent} percent."),
    "lock": ("Lock the {name}.", "Unlock the {name}."),
    "cover": ("Open the {name}.", "Close the {name}."),
    "climate": ("Set the {name} to {degrees} degrees.",),
    "media_player": ("Pause the {name}.", "Set the {name} volume to {percent} percent."),
    "vacuum": ("Start the {name}.", "Send the {name} back to its dock."),
    "valve": ("Open the {name}.", "Close the {name}."),
    "sensor": ("What is the {name}?",),
}
_PERCENTS = (30, 50, 75, 20)
_DEGREES = (21, 19, 22)


def guess_domain(name: str) -> str:
    words = set(normalize_name(name).split())
    if words & {"garage", "blind", "blinds", "curtain", "curtains", "shade", "shades", "gate"}:
        return "cover"
    if words & {"lock", "door"}:
        return "lock"
    if words & {"thermostat", "heating"}:
        return "climate"
    if "fan" in words:
        return "fan"
    if words & {"light", "lights", "lamp", "bulb"}:
        return "light"
    return "switch"


def registry_from_names(devices: Iterable[str | tuple[str, str | None]]) -> DeviceRegistry:
    """An in-memory home from device names (optionally with areas); domains are guessed."""
    registry = DeviceRegistry(None)
    for device in devices:
        name, area = (device, None) if isinstance(device, str) else device
        domain = guess_domain(name)
        slug = re.sub(r"\W+", "_", normalize_name(name)).strip("_")
        registry.upsert(Entity(
            entity_id=f"{domain}.{slug}", name=name.strip(), domain=domain,
            area=registry.ensure_area(area) if area else None,
            device_class="garage" if domain == "cover" and "garage" in slug else None))
    return registry


def bench_commands(registry: DeviceRegistry, limit: int = MAX_COMMANDS) -> list[str]:
    """Commands for the home's devices: every device's first template, then the second, ..."""
    entities = [e for e in registry.entities() if e.domain in _TEMPLATES]
    commands: list[str] = []
    for round_ in range(max(map(len, _TEMPLATES.values()))):
        for i, entity in enumerate(entities):
            templates = _TEMPLATES[entity.domain]
            if round_ < len(templates):
                commands.append(templates[round_].format(
                    name=entity.name.lower(), percent=_PERCENTS[i % len(_PERCENTS)],
                    degrees=_DEGREES[i % len(_DEGREES)]))
    return commands[:limit]


# -- transcript comparison -----------------------------------------------------------------

_UNITS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {word: 10 * n for n, word in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}


def normalize_transcript(text: str) -> str:
    """Lower case, no punctuation, numbers as digits ("Thirty %" -> "30 percent")."""
    text = text.lower().replace("%", " percent ").replace("°", " degrees ")
    return " ".join(_numbers_as_digits(re.sub(r"[^\w\s]|_", " ", text).split()))


def _numbers_as_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    value: int | None = None
    for word in words:
        if word in _UNITS or word in _TENS:
            n = _UNITS.get(word, _TENS.get(word, 0))
            # "twenty one", "one hundred five", "two hundred thirty": the number goes on.
            goes_on = value is not None and (
                (value % 100 == 0 and value > 0) or (word in _UNITS and n < 10 and value >= 20
                                                     and value % 10 == 0))
            if value is not None and not goes_on:
                out.append(str(value))
                value = None
            value = n if value is None else value + n
        elif word == "hundred" and value is not None and 0 < value < 10:
            value *= 100
        else:
            if value is not None:
                out.append(str(value))
                value = None
            out.append(word)
    if value is not None:
        out.append(str(value))
    return out


# -- the bench -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Misheard:
    said: str
    biased: str
    unbiased: str


@dataclass(frozen=True, slots=True)
class VoiceBenchReport:
    runs: int
    e2e_ms: float  # median: end of speech detected -> converse done
    report_wait_ms: float  # median per command: converse waiting for devices to report
    report_wait_max_ms: float
    stt_ms: float
    stt_real_time_factor: float
    tts_first_audio_ms: float
    exact_rate_biased: float
    exact_rate_unbiased: float
    misheard: tuple[Misheard, ...]
    e2e_p95_ms: float
    stt_p95_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "e2e_ms": round(self.e2e_ms, 1),
            "e2e_p95_ms": round(self.e2e_p95_ms, 1),
            "stt_ms": round(self.stt_ms, 1),
            "stt_p95_ms": round(self.stt_p95_ms, 1),
            "e2e_over_stt": round(self.e2e_ms / self.stt_ms, 3) if self.stt_ms else None,
            "report_wait_ms": round(self.report_wait_ms, 1),
            "report_wait_max_ms": round(self.report_wait_max_ms, 1),
            "stt_real_time_factor": round(self.stt_real_time_factor, 3),
            "tts_first_audio_ms": round(self.tts_first_audio_ms, 1),
            "exact_rate_biased": round(self.exact_rate_biased, 4),
            "exact_rate_unbiased": round(self.exact_rate_unbiased, 4),
            "misheard": [{"said": m.said, "biased": m.biased, "unbiased": m.unbiased}
                         for m in self.misheard],
        }


async def stand_in_converse(_request: ConversationRequest) -> ConversationResponse:
    """For standalone runs: answers at once, with a reply of typical length."""
    return ConversationResponse(reply=STAND_IN_REPLY, path="fast")


async def speak_command(tts: TextToSpeech, text: str, *, lead_s: float = 0.5,
                        tail_s: float = 1.5) -> bytes:
    """Piper's voice saying ``text`` as 16 kHz s16le, with silence around it like a real mic."""
    audio, rate = await tts.synthesize_all(text)
    speech = resample(pcm16_to_float(audio), rate, SAMPLE_RATE)
    lead, tail = np.zeros(int(lead_s * SAMPLE_RATE)), np.zeros(int(tail_s * SAMPLE_RATE))
    return float_to_pcm16(np.concatenate([lead, speech, tail]))


async def _as_stream(pcm: bytes, chunk_bytes: int = 2048) -> AsyncIterator[bytes]:
    for offset in range(0, len(pcm), chunk_bytes):
        yield pcm[offset:offset + chunk_bytes]


async def run_voice_bench(pipeline: VoicePipeline, commands: Sequence[str], *,
                          runs: int) -> VoiceBenchReport:
    """``runs`` commands (cycling through ``commands``) through the live-stream path."""
    await asyncio.gather(pipeline.stt.load(), pipeline.tts.load())
    e2e, stt, rtf, first_audio, report_wait = [], [], [], [], []
    exact_biased = exact_unbiased = 0
    misheard: list[Misheard] = []
    captured: list[bytes] = []  # what Whisper heard, to transcribe it unbiased as well

    async def keep_capture(event: PipelineEvent) -> None:
        if isinstance(event, SpeechEnded):
            captured.append(event.audio)

    for run in range(runs):
        said = commands[run % len(commands)]
        audio = await speak_command(pipeline.tts, said)
        with recording_report_waits() as waits:
            async for result in pipeline.run_stream(_as_stream(audio), mode="push_to_talk",
                                                    on_event=keep_capture):
                timings = result.timings
                e2e.append(timings.end_of_speech_to_converse_ms)
                stt.append(timings.stt_ms)
                rtf.append(timings.stt_real_time_factor)
                if timings.tts_first_audio_ms is not None:
                    first_audio.append(timings.tts_first_audio_ms)
                unbiased = await pipeline.stt.transcribe(captured[-1], biased=False)
                expected = normalize_transcript(said)
                biased_ok = normalize_transcript(result.transcript.text) == expected
                unbiased_ok = normalize_transcript(unbiased.text) == expected
                exact_biased += biased_ok
                exact_unbiased += unbiased_ok
                if not biased_ok or not unbiased_ok:
                    misheard.append(Misheard(said, result.transcript.text, unbiased.text))
        report_wait.append(sum(waits) * 1000)
    return VoiceBenchReport(
        runs=runs, e2e_ms=statistics.median(e2e), stt_ms=statistics.median(stt),
        report_wait_ms=statistics.median(report_wait), report_wait_max_ms=max(report_wait),
        stt_real_time_factor=statistics.median(rtf),
        tts_first_audio_ms=statistics.median(first_audio) if first_audio else 0.0,
        exact_rate_biased=exact_biased / runs, exact_rate_unbiased=exact_unbiased / runs,
        misheard=tuple(misheard), e2e_p95_ms=float(figure(e2e)["p95"] or 0.0),
        stt_p95_ms=float(figure(stt)["p95"] or 0.0))


def format_report(report: VoiceBenchReport, pipeline: VoicePipeline) -> str:
    stt = pipeline.config.stt
    lines = [
        f"voice bench: {report.runs} spoken commands (Whisper {stt.model_name} {stt.compute_type}"
        f" beam {stt.beam_size} on {stt.device}; voice {_voice_name(pipeline)});"
        " medians",
        f"  end of speech -> converse done  {report.e2e_ms:7.0f} ms"
        f"  ({report.e2e_ms / report.stt_ms:.2f}x speech-to-text alone)" if report.stt_ms else "",
        f"  of which devices reporting back {report.report_wait_ms:7.0f} ms"
        f"  (slowest {report.report_wait_max_ms:.0f} ms)",
        f"  speech to text                  {report.stt_ms:7.0f} ms"
        f"  (real-time factor {report.stt_real_time_factor:.2f})",
        f"  text to speech, first audio     {report.tts_first_audio_ms:7.0f} ms",
        f"  exact transcripts               biased {report.exact_rate_biased:6.1%}"
        f"   unbiased {report.exact_rate_unbiased:6.1%}",
    ]
    for m in report.misheard:
        lines.append(f"    said {m.said!r}: biased {m.biased!r}, unbiased {m.unbiased!r}")
    return "\n".join(line for line in lines if line)


def _voice_name(pipeline: VoicePipeline) -> str:
    choice = pipeline.tts.choice
    return f"{choice.engine} {choice.name}" if choice is not None else "not loaded"
