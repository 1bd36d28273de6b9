"""CLI glue: ``mimo-home listen`` and ``mimo-home bench voice``.

``listen`` never loads a model: it decodes the audio locally (to report bad files early)
and sends it to the running daemon, which owns the models (see mqtt_api.py). The caller
provides ``send_audio``, e.g. ``request_voice`` over the CLI's own MQTT connection.

Both commands come as a synchronous entry (runs its own event loop) and a coroutine for
callers that already run a loop (a ``converse`` bound to an MQTT connection needs one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from assistant.voice.config import SAMPLE_RATE

if TYPE_CHECKING:  # the audio and model stack loads only when a command runs
    from assistant.registry import DeviceRegistry
    from assistant.voice.config import VoiceConfig
    from assistant.voice.pipeline import Converse

# Sends a 16 kHz mono WAV to the daemon; returns its JSON reply (mqtt_api's response body).
SendAudio = Callable[[bytes], Awaitable[dict[str, Any]]]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


# -- listen ------------------------------------------------------------------------------------

def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", metavar="FILE.wav|-",
                        help="a WAV file, or - to read a WAV or raw 16-bit mono PCM from stdin")
    parser.add_argument("--json", action="store_true", help="print the daemon's reply as JSON")
    parser.add_argument("--rate", type=int, default=SAMPLE_RATE,
                        help="sample rate of raw PCM on stdin (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the daemon (default %(default)s)")


def listen_command(args: argparse.Namespace, send_audio: SendAudio) -> int:
    return asyncio.run(listen(args, send_audio))


async def listen(args: argparse.Namespace, send_audio: SendAudio, *,
                 stdin: BinaryIO | None = None, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    from assistant.voice.audio import AudioFormatError, wav_bytes

    out, err = out or sys.stdout, err or sys.stderr
    try:
        pcm = _read_audio(args.audio, args.rate, stdin or sys.stdin.buffer)
    except AudioFormatError as exc:
        print(f"mimo-home listen: {exc}", file=err)
        return EXIT_BAD_INPUT
    try:
        reply = await asyncio.wait_for(send_audio(wav_bytes(pcm)), args.timeout)
    except TimeoutError as exc:
        print(f"mimo-home listen: {exc or 'no reply from the daemon'}", file=err)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(reply, indent=2), file=out)
    elif "error" not in reply:
        print(_describe(reply), file=out)
    if "error" in reply:
        print(f"mimo-home listen: the daemon could not use the audio: {reply['error']}", file=err)
        return EXIT_FAILED
    return EXIT_OK


def _read_audio(source: str, raw_rate: int, stdin: BinaryIO) -> bytes:
    from assistant.voice.audio import decode_audio_payload, read_wav_file

    if source == "-":
        return decode_audio_payload(stdin.read(), raw_rate=raw_rate, source="stdin")
    return read_wav_file(Path(source))


def _describe(reply: dict[str, Any]) -> str:
    heard = reply.get("transcript") or "(nothing: no speech in the audio)"
    lines = [f"heard:   {heard}", f"reply:   {reply.get('reply') or '(none)'}"]
    for action in reply.get("actions") or []:
        args = json.dumps(action.get("args") or {}, sort_keys=True)
        lines.append(f"action:  {action.get('tool')} {action.get('entity_id')} {args}")
    return "\n".join(lines)


# -- bench voice -------------------------------------------------------------------------------

def add_bench_voice_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--runs", type=int, default=None,
                        help="commands to time (at least 10: the figures are medians; "
                             "default: one per command)")
    parser.add_argument("--devices", default=None,
                        help="comma-separated device names for a standalone home "
                             "(default: a built-in demo home)")


def bench_voice_command(args: argparse.Namespace, *, registry: DeviceRegistry | None = None,
                        converse: Converse | None = None,
                        config: VoiceConfig | None = None) -> int:
    return asyncio.run(bench_voice(args, registry=registry, converse=converse, config=config))


async def bench_voice(args: argparse.Namespace, *, registry: DeviceRegistry | None = None,
                      converse: Converse | None = None, config: VoiceConfig | None = None,
                      out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``converse`` (default: an instant stand-in) is what ``e2e_ms`` times, end to end."""
    from assistant.voice.bench import (
        DEMO_HOME,
        MIN_COMMANDS,
        MIN_RUNS,
        bench_commands,
        format_report,
        registry_from_names,
        run_voice_bench,
        stand_in_converse,
    )
    from assistant.voice.config import VoiceConfig
    from assistant.voice.pipeline import VoicePipeline

    out, err = out or sys.stdout, err or sys.stderr
    if registry is None:
        devices = [d.strip() for d in args.devices.split(",")] if args.devices else DEMO_HOME
        registry = registry_from_names(d for d in devices if d)
    commands = bench_commands(registry)
    if len(commands) < MIN_COMMANDS:
        print(f"note: this home yields only {len(commands)} commands "
              f"(fewer than {MIN_COMMANDS}); add devices for a fuller picture", file=err)
    if not commands:
        print("mimo-home bench voice: no commandable devices in the home", file=err)
        return EXIT_BAD_INPUT
    runs = args.runs if args.runs is not None else max(len(commands), MIN_RUNS)
    if runs < MIN_RUNS:
        print(f"mimo-home bench voice: --runs must be at least {MIN_RUNS} "
              "(the figures are medians)", file=err)
        return EXIT_BAD_INPUT
    pipeline = VoicePipeline(config or VoiceConfig(), converse or stand_in_converse, registry)
    try:  # models only: no start(), so no microphone and no satellite server
        report = await run_voice_bench(pipeline, commands, runs=runs)
    finally:
        await pipeline.stop()
    print(json.dumps(report.to_json(), indent=2) if args.json
          else format_report(report, pipeline), file=out)
    return EXIT_OK
