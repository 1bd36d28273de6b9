"""What every ``mimo-home bench`` prints with its figures, and ``bench all``.

A figure means little without the machine it was taken on, so each bench's output carries
``describe_machine()``. ``bench all`` runs every part in turn and gathers them in one JSON
document; a part that cannot run (a model missing, no broker) is recorded with why, and the
others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import io
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from assistant.config import Config


def describe_machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and versions, plus the load when the figures were taken (the
    machine may be shared); ``summary`` says it in one line."""
    cores = os.cpu_count() or 0
    memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    system = _os_name()
    machine: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": cores, "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": memory_gb, "os": system, "kernel": platform.release(),
        "python": platform.python_version(), "mimo_home": _version(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    machine["summary"] = (
        f"{machine['cpu']}, {cores} cores ({machine['usable_cores']} usable), {memory_gb} GB "
        f"RAM, {system}, Linux {machine['kernel']}, Python {machine['python']}, "
        f"mimo-home {machine['mimo_home']}, load {machine['load_average'][0]}")
    return machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    except OSError:
        return platform.system()


def _version() -> str:
    try:
        return importlib.metadata.version("mimo-home")
    except importlib.metadata.PackageNotFoundError:  # a bare source tree
        return "unknown"


# -- the parts ---------------------------------------------------------------------------------

def nlu_part(repeats: int) -> dict[str, Any]:
    from assistant.virtual.bench import run_nlu_bench

    return {"entities": run_nlu_bench(repeats=repeats)}


def llm_part(config_file: str | None) -> dict[str, Any]:
    """As ``bench llm`` with its defaults: the config's model, else the bundled one."""
    from assistant.llm.bench import bench_llm_config, run_llm_bench

    options = argparse.Namespace(config=config_file, model=None, threads=None)
    return run_llm_bench(bench_llm_config(options), log=lambda _: None)


def voice_part(config: Config) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    options = argparse.Namespace(json=True, runs=None, devices=None)
    if asyncio.run(voice_bench(config, options, out, err)) != 0:
        raise RuntimeError(err.getvalue().strip() or "bench voice failed")
    return json.loads(out.getvalue())


async def voice_bench(config: Config, options: argparse.Namespace, out: io.StringIO,
                      err: io.StringIO | None = None) -> int:
    """End of speech -> command published, through the real daemon and a virtual home."""
    from assistant.virtual.stack import demo_stack
    from assistant.voice.commands import bench_voice

    async with demo_stack(config) as (_house, daemon):
        voice = config.voice.for_home(config.understanding.language, daemon.config.state_dir)
        return await bench_voice(options, registry=daemon.registry, converse=daemon.converse,
                                 config=voice, out=out, err=err)


def mqtt_part(messages: int, repeats: int, broker: str = "auto") -> dict[str, Any]:
    from assistant.virtual.bench_mqtt import run_mqtt_bench

    return run_mqtt_bench(messages=messages, repeats=repeats, broker=broker)


def startup_part(config: Config, repeats: int) -> dict[str, Any]:
    from assistant.virtual.bench_startup import run_startup_bench

    return run_startup_bench(config, repeats=repeats)


# -- bench all ---------------------------------------------------------------------------------

def run_all(parts: Mapping[str, Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """Every part in turn, in one document; one that fails gives ``{"error": why}``."""
    started = datetime.datetime.now(datetime.timezone.utc)
    document: dict[str, Any] = {"machine": describe_machine(),
                                "taken_at": started.isoformat(timespec="seconds"),
                                "parts": {}}
    for name, run in parts.items():
        began = time.perf_counter()
        try:
            result = dict(run())
        except Exception as exc:  # recorded: the other parts still run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["took_s"] = round(time.perf_counter() - began, 1)
        document["parts"][name] = result
    document["failed"] = [name for name, result in document["parts"].items()
                          if "error" in result]
    return document


def figure_lines(document: Mapping[str, Any]) -> Iterator[str]:
    """The document's figures as ``part.key value`` lines (lists of details left out)."""
    yield f"machine: {document['machine']['summary']}"
    yield f"taken at: {document['taken_at']}"

    def walk(prefix: str, node: Any) -> Iterator[str]:
        if isinstance(node, Mapping):
            for key, value in node.items():
                yield from walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, (int, float, str)) and not isinstance(node, bool):
            yield f"{prefix} {node}"

    for name, result in document["parts"].items():
        yield from walk(name, result)


# -- output ------------------------------------------------------------------------------------

def render(result: Mapping[str, Any], as_json: bool, text: Iterable[str] = ()) -> str:
    """A bench's figures with the machine they were taken on: JSON, or lines of text."""
    machine = describe_machine()
    if as_json:
        return json.dumps({**result, "machine": machine}, indent=2)
    return "\n".join([f"machine: {machine['summary']}", *text])


def _figure(values: Mapping[str, Any] | None, unit: str) -> str:
    if not values or values.get("median") is None:
        return "not measured"
    return f"median {values['median']}{unit}, p95 {values['p95']}{unit}"


def nlu_lines(result: Mapping[str, Any]) -> Iterator[str]:
    yield (f"{'entities':>8} {'median_ms':>10} {'p95_ms':>8} {'first_ms':>9} {'cpu_ms':>7}"
           "  utterances")
    for size, row in result["entities"].items():
        yield (f"{size:>8} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f} "
               f"{row['first_median_ms']:>9.2f} {row['cpu_median_ms']:>7.2f}"
               f"  {row['samples']}")


def mqtt_lines(result: Mapping[str, Any]) -> Iterator[str]:
    yield f"broker: {result.get('broker')}, {result.get('messages')} messages per burst"
    yield f"plain subscriber: {_figure(result.get('raw_per_s'), ' msg/s')}"
    yield f"daemon ingest:    {_figure(result.get('ingest_per_s'), ' msg/s')}"
    yield f"ingest / raw:     {_figure(result.get('ingest_ratio'), '')}"
    yield f"command round trip: {_figure(result.get('roundtrip_ms'), ' ms')}"
    for problem in result.get("problems") or ():
        yield f"problem: {problem}"


def startup_lines(result: Mapping[str, Any]) -> Iterator[str]:
    yield (f"{result['reached_ready']} of {result['repeats']} starts reached READY "
           f"(LLM {result['llm'] or 'off'}, voice {'on' if result['voice'] else 'off'})")
    yield f"process start -> READY:        {_figure(result['ready_s'], ' s')}"
    yield f"CPU time used until READY:     {_figure(result['ready_cpu_s'], ' s')}"
    yield f"process start -> models ready: {_figure(result['settled_s'], ' s')}"
    rss = result["rss_mb"] or {}
    yield f"RSS of the daemon:    {_figure(rss.get('daemon'), ' MB')}"
    yield f"RSS of its children:  {_figure(rss.get('children'), ' MB')}"
    for run in result["runs"]:
        probe = run.get("probe") or {}
        if "ms" in probe:
            yield f"asked right after READY: {probe['text']!r} answered via {probe['path']} " \
                  f"in {probe['ms']} ms"
    for error in result.get("errors") or ():
        yield f"error: {error}"
