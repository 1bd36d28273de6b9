"""Where the answer is decoded: the local worker (llama-cpp-python) or an OpenAI-compatible
server on the LAN (llama.cpp server, vLLM, Ollama). Both get the same prompt parts and the same
answer schema, and their answers are checked the same way by the caller."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from assistant.llm.config import LlmConfig
from assistant.llm.engine import (
    Completion,
    EngineError,
    ModelInfo,
    WorkerEngine,
    WorkerSettings,
)
from assistant.llm.messages import LlmUnavailable
from assistant.llm.profiles import MIMO, ModelProfile, SystemMode, chat_messages, resolve_profile
from assistant.llm.prompt import PromptParts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    ttft_ms: float
    total_ms: float


class Backend(Protocol):
    @property
    def status(self) -> str: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def decode(self, parts: PromptParts, schema: dict[str, Any], *, think: bool,
                     reuse_prefix: bool = True) -> Decoded: ...


class LlamaCppBackend:
    """A GGUF in the supervised worker process; the static prompt prefix is cached."""

    def __init__(self, config: LlmConfig, model_path: Path, instructions: str,
                 n_threads: int) -> None:
        self.config = config
        self.instructions = instructions
        self.profile: ModelProfile | None = None
        self.engine = WorkerEngine(
            WorkerSettings(model_path, config.n_ctx, n_threads, config.n_gpu_layers),
            request_timeout_s=config.request_timeout_s, load_timeout_s=config.load_timeout_s,
            warmup=self._static_prefix)

    def _static_prefix(self, info: ModelInfo) -> str:
        self.profile = resolve_profile(self.config.profile, info.name, info.chat_template,
                                       info.bos_token, info.eos_token)
        log.info("LLM profile %s for %s", self.profile.name, info.name or "the model")
        return self.profile.static_prefix(self.instructions)

    @property
    def status(self) -> str:
        return self.engine.status

    def start(self) -> None:
        self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    async def decode(self, parts: PromptParts, schema: dict[str, Any], *, think: bool,
                     reuse_prefix: bool = True) -> Decoded:
        profile = self.profile
        if profile is None or self.engine.status != "ready":
            raise LlmUnavailable(self.engine.status)
        started = time.perf_counter()
        thought: Completion | None = None
        try:
            if think and profile.can_think:
                thought = await self.engine.complete(
                    profile.thinking_prompt(parts), max_tokens=self.config.think_budget,
                    stop=(profile.think_close or "",), reuse_prefix=reuse_prefix)
                log.debug("LLM reasoning (%d tokens): %s", thought.completion_tokens,
                          thought.text)
            answer = await self.engine.complete(
                profile.prompt(parts, thought.text if thought else None),
                max_tokens=self.config.max_output_tokens, schema=json.dumps(schema),
                reuse_prefix=reuse_prefix or thought is not None)
        except EngineError as exc:
            raise LlmUnavailable(str(exc)) from None
        first = thought or answer
        return Decoded(
            text=answer.text, prompt_tokens=first.prompt_tokens, cached_tokens=first.cached_tokens,
            completion_tokens=answer.completion_tokens + (thought.completion_tokens
                                                          if thought else 0),
            ttft_ms=first.ttft_ms, total_ms=(time.perf_counter() - started) * 1000)

    async def count_tokens(self, parts: PromptParts) -> int:
        assert self.profile is not None
        return await self.engine.count_tokens(self.profile.prompt(parts))


class OpenAIBackend:
    """An OpenAI-compatible ``/chat/completions`` endpoint with a JSON-schema response format.

    The server applies the model's chat template and caches prompt prefixes itself (llama.cpp
    server: ``cache_prompt``); the static instructions come first so that cache hits.
    """

    def __init__(self, config: LlmConfig) -> None:
        assert config.endpoint_url is not None
        self.config = config
        self.url = config.endpoint_url.rstrip("/") + "/chat/completions"
        model = config.endpoint_model or ""
        mimo = config.profile == "mimo" or (config.profile == "auto"
                                            and "mimo" in model.casefold())
        # The server renders the chat template; only where the instructions go is ours.
        self.system: SystemMode = MIMO.system if mimo else "instructions"
        self._status = "stopped"

    @property
    def status(self) -> str:
        return self._status

    def start(self) -> None:
        self._status = "ready"  # nothing to load here; a dead server shows up per request

    async def stop(self) -> None:
        self._status = "stopped"

    async def decode(self, parts: PromptParts, schema: dict[str, Any], *, think: bool,
                     reuse_prefix: bool = True) -> Decoded:
        body: dict[str, Any] = {
            "messages": chat_messages(parts, self.system),
            "temperature": 0,
            "max_tokens": self.config.max_output_tokens,
            "stream": False,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "home_actions", "strict": True, "schema": schema}},
        }
        if self.config.endpoint_model:
            body["model"] = self.config.endpoint_model
        started = time.perf_counter()
        # urllib blocks: run it in a thread; cancelling the caller abandons the thread's answer.
        response = await asyncio.to_thread(self._post, body)
        total_ms = (time.perf_counter() - started) * 1000
        try:
            message = response["choices"][0]["message"]
            text = message.get("content") or ""
        except (KeyError, IndexError, TypeError):
            raise LlmUnavailable(
                f"the model server sent no answer: {str(response)[:200]}") from None
        if message.get("reasoning_content"):
            log.debug("LLM reasoning: %s", message["reasoning_content"])
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return Decoded(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                       cached_tokens=int(details.get("cached_tokens") or 0),
                       completion_tokens=int(usage.get("completion_tokens") or 0),
                       ttft_ms=total_ms, total_ms=total_ms)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_file is not None:
            key = self.config.api_key_file.read_text(encoding="utf-8").strip()
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.request_timeout_s) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace")
            raise LlmUnavailable(f"the model server at {self.url} answered {exc.code}: "
                                 f"{detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LlmUnavailable(
                f"cannot reach the model server at {self.url}: {reason}") from None
        except ValueError:
            raise LlmUnavailable(f"the model server at {self.url} sent invalid JSON") from None
