"""``mimo-home bench startup``: how long the daemon takes from process start to READY, and
how much memory it holds once its models are in.

The real daemon runs as a process (``mimo-home run``) against a private broker, with its
readiness sent over a notify socket of ours, as systemd gets it. ``ready_s`` is process
start -> READY=1 (``ready_cpu_s`` the CPU time the daemon used for it); the models (the
reasoning worker, Whisper, Piper) load after READY, so ``settled_s`` is process start -> the
first status that says nothing is loading any more, and ``rss_mb`` is the resident memory
then (``/proc/<pid>/status`` VmRSS), of the daemon and of its child processes (the reasoning
worker) apart. Right after READY one request is asked over the local API (``mimo-home
ask``'s path) to show the fast path answers while models load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from assistant.config import ENV_PREFIX, Config
from assistant.figures import figure
from assistant.transport.api import ApiClient
from assistant.virtual.stack import private_broker

READY_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
PROBE_REQUEST = "what time is it"
DAEMON_COMMAND = (sys.executable, "-m", "assistant.cli", "run")


def demo_startup_config(config: Config) -> Config:
    """What ``mimo-home demo`` runs with no config file: the bundled reasoning model, voice
    (Whisper and Piper, no speaker), no LAN browsing."""
    from assistant.virtual.demo import demo_defaults, demo_location

    config = demo_location(demo_defaults(config))
    return config.model_copy(update={"mdns": config.mdns.model_copy(update={"enabled": False})})


def run_startup_bench(config: Config, repeats: int = 3, *,
                      ready_timeout_s: float = READY_TIMEOUT_S,
                      settle_timeout_s: float = SETTLE_TIMEOUT_S,
                      command: Sequence[str] = DAEMON_COMMAND) -> dict[str, Any]:
    """``repeats`` cold starts of ``command --config FILE``; medians and p95 of those that
    reached READY, every run's details in ``runs``."""
    return asyncio.run(_bench(config, repeats, ready_timeout_s, settle_timeout_s,
                              tuple(command)))


async def _bench(config: Config, repeats: int, ready_timeout_s: float,
                 settle_timeout_s: float, command: tuple[str, ...]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    async with private_broker(_anonymous(config)) as config:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="mimo-startup-") as directory:
                runs.append(await _one_start(config, Path(directory), ready_timeout_s,
                                             settle_timeout_s, command))
    return summarize(runs, config)


def summarize(runs: list[dict[str, Any]], config: Config) -> dict[str, Any]:
    ready = [run for run in runs if run.get("ready_s") is not None]
    settled = [run for run in ready if run.get("settled_s") is not None]
    result: dict[str, Any] = {
        "repeats": len(runs), "reached_ready": len(ready),
        "llm": str(config.llm.model_path) if config.llm.enabled else None,
        "voice": config.voice.enabled,
        "ready_s": figure([run["ready_s"] for run in ready]) if ready else None,
        "ready_cpu_s": figure([run["ready_cpu_s"] for run in ready]) if ready else None,
        "settled_s": figure([run["settled_s"] for run in settled]) if settled else None,
        "rss_mb": {
            "daemon": figure([run["rss_mb"]["daemon"] for run in settled], 1),
            "children": figure([run["rss_mb"]["children"] for run in settled], 1),
        } if settled else None,
        "runs": runs,
    }
    problems = [run["error"] for run in runs if "error" in run]
    if problems:
        result["errors"] = problems
    return result


def _anonymous(config: Config) -> Config:
    """The private broker takes anyone over plain TCP: no credentials, no TLS."""
    mqtt = config.mqtt.model_copy(update={
        "username": None, "password": None, "password_file": None,
        "tls": config.mqtt.tls.model_copy(update={"enabled": False})})
    return config.model_copy(update={"mqtt": mqtt})


async def _one_start(config: Config, directory: Path, ready_timeout_s: float,
                     settle_timeout_s: float, command: tuple[str, ...]) -> dict[str, Any]:
    config = config.model_copy(update={"state_dir": directory / "state"})
    config_file = directory / "mimo-home.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(directory / "notify"))
    notify.setblocking(False)
    # The written file is the whole config: no MIMO_HOME__ override reaches the daemon.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith((ENV_PREFIX, "WATCHDOG_"))}
    env["NOTIFY_SOCKET"] = str(directory / "notify")
    log_file = directory / "daemon.log"
    with notify, open(log_file, "wb") as log_sink:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *command, "--config", str(config_file), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=log_sink)
        try:
            run = await _watch(process, notify, started, config, ready_timeout_s,
                               settle_timeout_s)
        finally:
            run["stop_s"] = await _stop(process)
    if "error" in run:
        run["log_tail"] = log_file.read_text(errors="replace").splitlines()[-5:]
    return run


async def _watch(process: asyncio.subprocess.Process, notify: socket.socket, started: float,
                 config: Config, ready_timeout_s: float,
                 settle_timeout_s: float) -> dict[str, Any]:
    """READY, a request on the fast path, then the first status with nothing loading."""
    run: dict[str, Any] = {"ready_s": None, "settled_s": None}
    deadline = started + ready_timeout_s
    status = await _next_message(process, notify, deadline, lambda m: "READY=1" in m)
    if status is None:
        return {**run, **_failure(process, f"no READY within {ready_timeout_s:.0f} s")}
    run["ready_s"] = round(time.monotonic() - started, 3)
    run["ready_cpu_s"] = process_cpu_s(process.pid)
    run["rss_at_ready_mb"] = process_rss_mb(process.pid)
    run["status_at_ready"] = _status_of(status)
    run["probe"] = await asyncio.to_thread(_probe, config)
    deadline = time.monotonic() + settle_timeout_s
    status = await _next_message(process, notify, deadline, _settled)
    if status is None:
        return {**run, **_failure(process, f"models still loading after "
                                           f"{settle_timeout_s:.0f} s")}
    run["settled_s"] = round(time.monotonic() - started, 3)
    run["status"] = _status_of(status)
    run["rss_mb"] = process_rss_mb(process.pid)
    return run


def _settled(message: str) -> bool:
    status = _status_of(message)
    return status is not None and "loading" not in status and "restarting" not in status


def _status_of(message: str) -> str | None:
    for line in message.splitlines():
        if line.startswith("STATUS="):
            return line.removeprefix("STATUS=")
    return None


def _failure(process: asyncio.subprocess.Process, timed_out: str) -> dict[str, Any]:
    if process.returncode is not None:
        return {"error": f"the daemon exited with code {process.returncode}"}
    return {"error": timed_out, "timed_out": True}


async def _next_message(process: asyncio.subprocess.Process, notify: socket.socket,
                        deadline: float, wanted: Any) -> str | None:
    """The first notify message ``wanted`` accepts; None when the daemon exits or the
    deadline passes first."""
    loop = asyncio.get_running_loop()
    exited = asyncio.ensure_future(process.wait())
    try:
        while (left := deadline - time.monotonic()) > 0:
            received = asyncio.ensure_future(loop.sock_recv(notify, 4096))
            done, _ = await asyncio.wait({received, exited}, timeout=left,
                                         return_when=asyncio.FIRST_COMPLETED)
            if received not in done:
                received.cancel()
                return None
            message = received.result().decode(errors="replace")
            if wanted(message):
                return message
        return None
    finally:
        exited.cancel()


def _probe(config: Config) -> dict[str, Any]:
    """One request right after READY: its path and how long the answer took."""
    started = time.monotonic()
    try:
        with ApiClient(config.mqtt) as client:
            reply = client.ask(PROBE_REQUEST, timeout=30)
    except Exception as exc:  # reported with the figures, not fatal to the bench
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"text": PROBE_REQUEST, "path": reply.get("path"),
            "ms": round((time.monotonic() - started) * 1000, 1)}


async def _stop(process: asyncio.subprocess.Process) -> float:
    """SIGTERM, as systemd stops it; SIGKILL when it does not stop in time. Seconds taken."""
    started = time.monotonic()
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    return round(time.monotonic() - started, 3)


def process_rss_mb(pid: int) -> dict[str, Any]:
    """VmRSS of ``pid`` and, summed and one by one, of its descendants, in MB."""
    children = [(child, _rss_kb(child)) for child in _descendants(pid)]
    return {"daemon": round(_rss_kb(pid) / 1024, 1),
            "children": round(sum(kb for _, kb in children) / 1024, 1),
            "each_child": [{"pid": child, "name": _name(child), "mb": round(kb / 1024, 1)}
                           for child, kb in children]}


def process_cpu_s(pid: int) -> float:
    """CPU seconds ``pid`` has used (user + system): unlike wall time, it does not grow
    while the process waits for a core on a busy machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return 0.0


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0  # gone, or a zombie: it holds no memory


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _name(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace") for w in words if w)[:120]
