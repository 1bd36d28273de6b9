"""What goes into and comes out of the LLM path."""

from __future__ import annotations

from dataclasses import dataclass

from assistant.llm.prompt import PastTurn
from assistant.messages import ToolCall


class LlmUnavailable(RuntimeError):
    """The model cannot answer now (loading, failed, restarting, timed out); says why."""


@dataclass(frozen=True, slots=True)
class LlmRequest:
    text: str
    area: str | None = None  # the speaker's area id
    # Earlier turns of this conversation, oldest first; entries older than the configured
    # window are dropped. Anything with ``text``, ``calls``, ``reply`` and ``at`` fits.
    history: tuple[PastTurn, ...] = ()
    # What the fast path found unclear ("Which light: Kitchen or Hall?"), if it tried.
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class LlmProposal:
    """Validated calls and/or a reply; ``error`` set (and no calls) when the model failed."""

    calls: tuple[ToolCall, ...]
    reply: str | None
    raw: str  # the model's last answer, as decoded
    prompt_tokens: int
    cached_tokens: int = 0  # prompt tokens served from the KV cache
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    total_ms: float = 0.0
    attempts: int = 1
    candidates: tuple[str, ...] = ()  # the entity ids the model was shown
    error: str | None = None
