"""Understanding and execution of one utterance: fast path first, the LLM on no match or
ambiguity, one executor for both, and the confirmation window for sensitive devices."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from assistant.config import UnderstandingConfig
from assistant.understanding.fastpath import FastPath
from assistant.messages import (
    Action,
    ConversationRequest,
    ConversationResponse,
    ToolCall,
    UnderstandingPath,
)
from assistant.mqtt_link import PublishQueueFullError
from assistant.registry import DeviceRegistry
from device_adapters.base import CommandNotSupportedError
from skills.base import CommandSink, SkillRegistry, ToolContext, ToolValidationError

log = logging.getLogger(__name__)

_YES = re.compile(r"^(yes|yeah|yep|yup|sure|confirm(ed)?|do it|go ahead|ok(ay)?|correct|"
                  r"please do|yes please|affirmative)\b")
_NO = re.compile(r"^(no|nope|cancel|don'?t|do not|stop|never ?mind|abort)\b")


@dataclass(frozen=True, slots=True)
class Turn:
    """One finished exchange, kept so follow-ups can refer back to it."""

    text: str
    calls: tuple[ToolCall, ...]
    reply: str
    at: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a reasoner proposes: calls to run and/or a reply (answer or question)."""

    calls: tuple[ToolCall, ...] = ()
    reply: str | None = None


class Reasoner(Protocol):
    """The LLM path as the conversation sees it."""

    @property
    def status(self) -> str: ...

    def start(self) -> None:
        """Begin loading in the background; must not block."""

    async def stop(self) -> None: ...

    async def propose(self, text: str, area: str | None, history: tuple[Turn, ...],
                      hint: str | None) -> Proposal: ...


class ReasonerUnavailable(RuntimeError):
    """The reasoner cannot answer now (loading, failed, no model); the text says why."""


@dataclass
class _ConversationState:
    pending: tuple[ToolCall, ...] = ()
    pending_until: float = 0.0
    history: list[Turn] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Conversation:
    def __init__(self, registry: DeviceRegistry, skills: SkillRegistry, send: CommandSink,
                 fast_path: FastPath | None, reasoner: Reasoner | None,
                 config: UnderstandingConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.skills = skills
        self.send = send
        self.fast_path = fast_path
        self.reasoner = reasoner
        self.config = config
        self.clock = clock
        self._states: dict[str, _ConversationState] = {}

    async def handle(self, request: ConversationRequest) -> ConversationResponse:
        conversation_id = request.conversation_id or f"area:{request.area or '-'}"
        state = self._states.setdefault(conversation_id, _ConversationState())
        async with state.lock:  # one utterance at a time per conversation keeps "yes" sane
            response = await self._handle(request, state)
        return ConversationResponse(
            reply=response.reply, actions=response.actions, path=response.path,
            conversation_id=conversation_id,
            awaiting_confirmation=response.awaiting_confirmation,
            clarification=response.clarification, success=response.success)

    async def _handle(self, request: ConversationRequest,
                      state: _ConversationState) -> ConversationResponse:
        text = request.text.strip()
        if not text:
            return ConversationResponse("I didn't hear anything.", success=False)
        if len(text) > 1000:
            return ConversationResponse("That is too long for me; please say it shorter.",
                                        success=False)
        answered = self._answer_pending(text, state)
        if answered is not None:
            if answered == "yes":
                calls, state.pending = state.pending, ()
                return await self._execute(text, calls, "confirmation", request, state,
                                           confirmed=True)
            return ConversationResponse(answered, path="confirmation")

        hint = None
        if self.fast_path is not None:
            result = self.fast_path.understand(text, request.area)
            if result.calls:
                return await self._execute(text, result.calls, "fast", request, state)
            if result.reply is not None and not result.unresolved:
                return self._remember(text, (), ConversationResponse(result.reply, path="fast"),
                                      state)
            if result.unresolved:
                # Ambiguous or unknown target: the LLM may know better, else ask the user.
                if not self._reasoner_ready():
                    return self._remember(text, (), ConversationResponse(
                        result.reply or "", path="fast", clarification=result.clarification,
                        success=False), state)
                hint = result.reply
        return await self._reason(text, request, state, hint)

    def _answer_pending(self, text: str, state: _ConversationState) -> str | None:
        """"yes" to run the pending calls, a reply text to say, or None for a new request."""
        words = text.casefold().strip(" .!?")
        if not state.pending:
            if _YES.match(words) and len(words.split()) <= 3:
                return "There is nothing waiting for a confirmation."
            return None
        if self.clock() > state.pending_until:
            state.pending = ()
            if _YES.match(words):
                return "That confirmation came too late, so I did nothing. Please ask again."
            return None
        if _YES.match(words) and not _NO.search(words):
            return "yes"
        state.pending = ()
        if _NO.match(words):
            return "OK, I won't."
        return None  # a new request replaces the question

    def _reasoner_ready(self) -> bool:
        return self.reasoner is not None and self.reasoner.status == "ready"

    async def _reason(self, text: str, request: ConversationRequest,
                      state: _ConversationState, hint: str | None) -> ConversationResponse:
        if self.reasoner is None:
            return ConversationResponse("Sorry, I didn't understand that.", success=False)
        try:  # the reasoner keeps the turns within its own history window
            proposal = await self.reasoner.propose(text, request.area, tuple(state.history),
                                                   hint)
        except ReasonerUnavailable as exc:
            return ConversationResponse(f"Sorry, I didn't understand that ({exc}).",
                                        path="llm", success=False)
        if not proposal.calls:
            reply = proposal.reply or "Sorry, I didn't understand that."
            return self._remember(text, (), ConversationResponse(reply, path="llm"), state)
        return await self._execute(text, proposal.calls, "llm", request, state)

    async def _execute(self, text: str, calls: tuple[ToolCall, ...], path: UnderstandingPath,
                       request: ConversationRequest, state: _ConversationState,
                       confirmed: bool = False) -> ConversationResponse:
        context = ToolContext(self.registry, self.send, area=request.area, confirmed=confirmed)
        replies: list[str] = []
        actions: list[Action] = []
        to_confirm: list[ToolCall] = []
        success = True
        for call in calls:
            try:
                result = await self.skills.run(call, context)
            except ToolValidationError as exc:
                log.warning("rejected %s call: %s", path, exc)
                replies.append("Sorry, I couldn't do that.")
                success = False
                continue
            except PublishQueueFullError:
                replies.append("I can't reach the devices right now; please try again later.")
                success = False
                continue
            except CommandNotSupportedError as exc:
                replies.append(f"Sorry, {exc}.")
                success = False
                continue
            replies.append(result.reply)
            actions.extend(result.actions)
            to_confirm.extend(result.needs_confirmation)
            success = success and result.success
        if to_confirm:
            state.pending = tuple(to_confirm)
            state.pending_until = self.clock() + self.config.confirmation_window_s
        response = ConversationResponse(" ".join(r for r in replies if r), tuple(actions), path,
                                        awaiting_confirmation=bool(to_confirm), success=success)
        return self._remember(text, calls, response, state)

    def _remember(self, text: str, calls: tuple[ToolCall, ...], response: ConversationResponse,
                  state: _ConversationState) -> ConversationResponse:
        state.history = [*state.history[-3:], Turn(text, calls, response.reply, self.clock())]
        return response
