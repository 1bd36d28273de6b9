"""Supervises the model worker process (``worker.py``) from asyncio.

The worker loads the GGUF once, in the background; until it says "ready" requests are
refused, never queued behind a load. A crash (segfault, OOM kill) or a request that runs past
its timeout kills the worker and starts a fresh one; the request in flight gets a clear error.
Cancelling a request asks the worker to stop between tokens; the next request waits for that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
# More crashes than this within RESTART_WINDOW_S: a crash loop. Report "failed" and restart
# only every RESTART_WINDOW_S / MAX_RESTARTS; never give up (the memory may free up later).
MAX_RESTARTS = 3
RESTART_WINDOW_S = 300.0


class EngineError(RuntimeError):
    """A request did not produce an answer; the message says why (for logs and users)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    model_path: Path
    n_ctx: int
    n_threads: int
    n_gpu_layers: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the loaded GGUF says about itself."""

    name: str
    architecture: str
    chat_template: str | None
    bos_token: str
    eos_token: str
    n_ctx: int
    load_ms: float


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    cached_tokens: int  # prompt tokens reused from the previous evaluation (not evaluated again)
    completion_tokens: int
    ttft_ms: float
    total_ms: float
    finish_reason: str


# Called with each freshly loaded model; returns a prompt prefix to evaluate before "ready".
WarmupPrefix = Callable[[ModelInfo], str | None]


class WorkerEngine:
    def __init__(self, settings: WorkerSettings, *, request_timeout_s: float,
                 load_timeout_s: float, warmup: WarmupPrefix | None = None) -> None:
        self.settings = settings
        self.request_timeout_s = request_timeout_s
        self.load_timeout_s = load_timeout_s
        self._warmup = warmup
        self._status = "stopped"
        self.info: ModelInfo | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()  # one request in the worker at a time
        self._draining: asyncio.Future[dict[str, Any]] | None = None  # a cancelled request
        self._supervisor: asyncio.Task[None] | None = None
        self._crashes: collections.deque[float] = collections.deque()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Begin loading in the background; returns at once."""
        if self._supervisor is None or self._supervisor.done():
            self._status = "loading"
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name="llm-worker-supervisor")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._status = "stopped"

    async def _supervise(self) -> None:
        try:
            while True:
                try:
                    outcome = await self._run_worker()
                except (OSError, EngineError) as exc:  # cannot start python, or warm-up failed
                    self._status = f"failed: {exc}"
                    log.error("LLM %s", self._status)
                    return
                if outcome is None:  # loading failed: restarting would fail the same way
                    return
                now = time.monotonic()
                self._crashes.append(now)
                while self._crashes and now - self._crashes[0] > RESTART_WINDOW_S:
                    self._crashes.popleft()
                if len(self._crashes) > MAX_RESTARTS:
                    pause = RESTART_WINDOW_S / MAX_RESTARTS
                    self._status = (f"failed: the model worker stopped {len(self._crashes)} times "
                                    f"in {RESTART_WINDOW_S:.0f} s (last: {outcome}); trying "
                                    f"again in {pause:.0f} s")
                    log.error("LLM %s", self._status)
                else:
                    pause = 0.5 * (len(self._crashes) - 1)  # back off on repeats
                    self._status = "restarting"
                    log.warning("LLM worker %s; restarting it", outcome)
                await asyncio.sleep(pause)
                self._status = "restarting"
        finally:
            await self._kill()

    async def _run_worker(self) -> str | None:
        """Run one worker until it dies; returns why it died, or None when it never loaded."""
        self._stderr_tail.clear()
        settings = json.dumps({
            "model_path": str(self.settings.model_path), "n_ctx": self.settings.n_ctx,
            "n_threads": self.settings.n_threads, "n_gpu_layers": self.settings.n_gpu_layers})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(WORKER_SCRIPT), settings,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        stderr_task = asyncio.create_task(self._drain_stderr(process.stderr))
        try:
            try:
                async with asyncio.timeout(self.load_timeout_s):
                    hello = json.loads(await process.stdout.readline() or b"null")
            except ValueError:
                hello = None
            except TimeoutError:
                hello = {"event": "failed",
                         "error": f"loading took longer than {self.load_timeout_s:.0f} s"}
            if not isinstance(hello, dict) or hello.get("event") != "ready":
                await self._kill()
                await stderr_task
                self._status = f"failed: {self._load_error(hello, process.returncode)}"
                log.error("LLM %s", self._status)
                return None
            info = hello["info"]
            self.info = ModelInfo(
                name=info["name"], architecture=info["architecture"],
                chat_template=info["chat_template"], bos_token=info["bos_token"],
                eos_token=info["eos_token"], n_ctx=info["n_ctx"], load_ms=info["load_ms"])
            reader = asyncio.create_task(self._read_responses(process))
            try:
                await self._warm(self.info)
            except EngineError as exc:
                raise EngineError(f"warming the prompt cache failed: {exc}") from None
            self._status = "ready"
            log.info("LLM ready: %s (%s) loaded in %.0f ms", self.info.name or "model",
                     self.settings.model_path.name, self.info.load_ms)
            return await reader
        finally:
            if self._status == "ready":
                self._status = "restarting"  # the supervisor decides whether it really will
            self._fail_pending(EngineError("the model worker was stopped"))
            await self._kill()
            stderr_task.cancel()

    async def _warm(self, info: ModelInfo) -> None:
        prefix = self._warmup(info) if self._warmup is not None else None
        if not prefix:
            return
        # Evaluating the static prefix once puts it in the KV cache for every request.
        await self._request({"op": "complete", "prompt": prefix, "max_tokens": 1},
                            self.load_timeout_s, require_ready=False)

    def _load_error(self, hello: Any, returncode: int | None) -> str:
        if isinstance(hello, dict) and hello.get("error"):
            detail = str(hello["error"])
        else:
            detail = f"the worker exited ({describe_exit(returncode, self._stderr_tail)})"
        return f"cannot load {self.settings.model_path}: {detail}"

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                log.debug("llm worker: %s", line)

    async def _read_responses(self, process: asyncio.subprocess.Process) -> str:
        """Hand answers to their requests until the worker exits; returns how it exited."""
        assert process.stdout is not None
        async for raw in process.stdout:
            try:
                message = json.loads(raw)
                future = self._pending.pop(message["id"], None)
            except (ValueError, KeyError, TypeError):
                log.warning("LLM worker said something unexpected: %.200r", raw)
                continue
            if future is not None and not future.done():
                future.set_result(message)
        how = describe_exit(await process.wait(), self._stderr_tail)
        self._fail_pending(EngineError(f"the model worker stopped ({how}); "
                                       "it is being restarted"))
        return how

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()

    # -- requests ------------------------------------------------------------------------

    async def complete(self, prompt: str, *, max_tokens: int, schema: str | None = None,
                       stop: tuple[str, ...] = (), reuse_prefix: bool = True) -> Completion:
        """Greedy completion of ``prompt``; ``schema`` (JSON schema text) constrains it."""
        result = await self._request(
            {"op": "complete", "prompt": prompt, "max_tokens": max_tokens, "schema": schema,
             "stop": list(stop), "reuse_prefix": reuse_prefix}, self.request_timeout_s)
        return Completion(**result)

    async def count_tokens(self, text: str) -> int:
        result = await self._request({"op": "tokenize", "text": text}, self.request_timeout_s)
        return int(result["tokens"])

    async def _request(self, request: dict[str, Any], timeout: float, *,
                       require_ready: bool = True) -> dict[str, Any]:
        async with self._lock:
            if self._draining is not None:
                await self._wait_for_cancelled(self._draining, timeout)
            process = self._process
            ready = self._status == "ready" or not require_ready
            if not ready or process is None or process.stdin is None:
                raise EngineError(self._unavailable_reason())
            self._next_id += 1
            request_id = self._next_id
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_consume_exception)
            self._pending[request_id] = future
            process.stdin.write((json.dumps({**request, "id": request_id}) + "\n").encode())
            try:
                async with asyncio.timeout(timeout):
                    response = await asyncio.shield(future)
            except TimeoutError:
                self._pending.pop(request_id, None)
                log.error("LLM request ran past %.0f s: killing the worker", timeout)
                self._status = "restarting"  # before the supervisor notices the exit
                await self._kill()
                raise EngineError(f"the model did not answer within {timeout:.0f} s; "
                                  "it is being restarted") from None
            except asyncio.CancelledError:
                if not future.done():
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        process.stdin.write((json.dumps(
                            {"op": "cancel", "target": request_id}) + "\n").encode())
                    self._draining = future
                raise
        if not response.get("ok"):
            raise EngineError(f"the model failed: {response.get('error', 'unknown error')}")
        return response["result"]

    async def _wait_for_cancelled(self, future: asyncio.Future[Any], timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait([future])
        except TimeoutError:
            log.error("a cancelled LLM request did not stop: killing the worker")
            await self._kill()
        finally:
            self._draining = None

    def _unavailable_reason(self) -> str:
        if self._status == "loading":
            return "the language model is still loading"
        if self._status == "restarting":
            return "the language model is restarting after a failure"
        return f"the language model is unavailable ({self._status})"


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # Futures of cancelled requests may fail later with nobody awaiting them.
    if not future.cancelled():
        future.exception()


def describe_exit(returncode: int | None, stderr_tail: collections.abc.Iterable[str]) -> str:
    if returncode is None:
        what = "killed"
    elif returncode < 0:
        try:
            what = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            what = f"killed by signal {-returncode}"
    else:
        what = f"exit code {returncode}"
    last = [line for line in stderr_tail if line.strip()][-1:]
    return f"{what}; last output: {last[0][:200]}" if last else what
