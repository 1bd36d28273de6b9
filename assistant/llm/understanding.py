"""The LLM path: candidates -> prompt -> constrained decode -> validated calls.

One owner (``LlmUnderstanding``) per configured model. ``start()`` begins loading in the
background and returns at once; ``propose()`` refuses with ``LlmUnavailable`` (saying why and,
for model-file problems, which command fixes them) until the model is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.llm.backends import Backend, Decoded, LlamaCppBackend, OpenAIBackend
from assistant.llm.candidates import select_candidates
from assistant.llm.config import LlmConfig
from assistant.llm.messages import LlmProposal, LlmRequest, LlmUnavailable
from assistant.llm.models import DEFAULT_MODEL, ModelError, catalog_name_for, check_gguf_header
from assistant.llm.prompt import PromptParts, build_request, static_instructions
from assistant.llm.schema import InvalidOutput, ParsedOutput, build_output_schema, parse_output
from assistant.registry import DeviceRegistry, Entity
from skills.base import SkillRegistry

log = logging.getLogger(__name__)

# Several actions or conditions in one request: worth thinking first (if a budget is set).
_COMPOUND = re.compile(r"\b(and|then|also|after|before|unless|if|except|but|while)\b|[,;]",
                       re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    parts: PromptParts
    schema: dict[str, Any]
    candidates: tuple[Entity, ...]
    think: bool


class LlmUnderstanding:
    def __init__(self, config: LlmConfig, skills: SkillRegistry, registry: DeviceRegistry,
                 *, clock: Callable[[], float] = time.monotonic, language: str = "en") -> None:
        self.config = config
        self.skills = skills
        self.registry = registry
        self.clock = clock
        self.instructions = static_instructions(skills, language)
        self.backend: Backend | None = None
        self._problem: str | None = None  # why there is no backend to start

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Begin loading the model in the background; returns at once."""
        if self.backend is not None:
            return
        config = self.config
        if config.backend == "openai":
            self.backend = OpenAIBackend(config)
        elif config.model_path is None:
            self._problem = (f"no model configured: run `mimo-home model pull {DEFAULT_MODEL}` "
                             "and set llm.model_path")
            return
        else:
            try:
                check_gguf_header(config.model_path)  # 4 bytes: spares a doomed worker start
            except ModelError as exc:
                self._problem = str(exc)
                return
            threads = config.n_threads or max(1, (os.cpu_count() or 2) // 2)
            self.backend = LlamaCppBackend(config, config.model_path, self.instructions, threads)
        self._problem = None
        self.backend.start()

    async def stop(self) -> None:
        if self.backend is not None:
            await self.backend.stop()
            self.backend = None

    @property
    def status(self) -> str:
        """``loading``, ``ready``, ``restarting``, ``failed: <reason>`` or ``stopped``."""
        if self._problem is not None:
            return f"failed: {self._problem}"
        if self.backend is None:
            return "stopped"
        status = self.backend.status
        if status.startswith("failed: cannot load") and self.config.model_path is not None:
            path = self.config.model_path
            status += (f" (check the file with `mimo-home model verify {path}`, fetch it again "
                       f"with `mimo-home model pull {catalog_name_for(path)}`)")
        return status

    async def wait_ready(self, timeout: float) -> None:
        """For tools and tests: wait until ready, or raise LlmUnavailable with the status."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.status in ("loading", "restarting"):
                    await asyncio.sleep(0.05)
        if self.status != "ready":
            raise LlmUnavailable(self._unavailable_text())

    # -- requests ------------------------------------------------------------------------

    def prepare(self, request: LlmRequest,
                registry: DeviceRegistry | None = None) -> PreparedRequest:
        """Candidates, prompt and answer schema for ``request`` (pure; no model involved)."""
        registry = registry or self.registry
        now = self.clock()
        history = [turn for turn in request.history
                   if now - turn.at <= self.config.history_window_s]
        history = history[-self.config.history_turns:] if self.config.history_turns else []
        candidates = select_candidates(
            registry, request.text, request.area,
            history=[call for turn in history for call in turn.calls],
            limit=self.config.max_candidates)
        request_text = build_request(registry, request.text, request.area, candidates,
                                     history, request.hint)
        return PreparedRequest(
            parts=PromptParts(self.instructions, request_text),
            schema=build_output_schema(self.skills, candidates,
                                       max_calls=self.config.max_calls),
            candidates=tuple(candidates),
            think=self.config.think_budget > 0 and bool(_COMPOUND.search(request.text)))

    async def propose(self, request: LlmRequest) -> LlmProposal:
        """Validated calls and/or a reply for ``request``.

        Raises LlmUnavailable when the model cannot answer (loading, failed, timed out,
        crashed). An answer that stays invalid after one corrected retry comes back as a
        proposal with ``error`` set and no calls.
        """
        backend = self.backend
        if backend is None or backend.status != "ready":
            raise LlmUnavailable(self._unavailable_text())
        prepared = self.prepare(request)
        shown = [e.entity_id for e in prepared.candidates]
        first = await backend.decode(prepared.parts, prepared.schema, think=prepared.think)
        try:
            parsed = parse_output(first.text, self.skills, self.registry, shown)
            return self._proposal(prepared, parsed, first, first)
        except InvalidOutput as problem:
            log.info("LLM answer rejected (%s): %.300s", problem, first.text)
            retry_parts = prepared.parts.with_correction(first.text, str(problem))
        second = await backend.decode(retry_parts, prepared.schema, think=False)
        try:
            parsed = parse_output(second.text, self.skills, self.registry, shown)
        except InvalidOutput as problem:
            log.warning("LLM answer rejected twice (%s): %.300s", problem, second.text)
            return self._proposal(prepared, ParsedOutput((), None), first, second,
                                  error=f"the model's answer was invalid twice: {problem}")
        return self._proposal(prepared, parsed, first, second)

    def _proposal(self, prepared: PreparedRequest, parsed: ParsedOutput, first: Decoded,
                  last: Decoded, error: str | None = None) -> LlmProposal:
        retried = last is not first
        return LlmProposal(
            calls=parsed.calls, reply=parsed.reply, raw=last.text,
            prompt_tokens=first.prompt_tokens, cached_tokens=first.cached_tokens,
            completion_tokens=first.completion_tokens + (last.completion_tokens if retried
                                                         else 0),
            ttft_ms=first.ttft_ms,
            total_ms=first.total_ms + (last.total_ms if retried else 0),
            attempts=2 if retried else 1,
            candidates=tuple(e.entity_id for e in prepared.candidates), error=error)

    def _unavailable_text(self) -> str:
        status = self.status
        if status == "loading":
            return "the language model is still loading"
        if status == "restarting":
            return "the language model is restarting after a failure"
        return f"the language model is unavailable: {status}"
