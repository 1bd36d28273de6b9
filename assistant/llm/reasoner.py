"""``LlmUnderstanding`` as the conversation's ``Reasoner`` (what the daemon constructs)."""

from __future__ import annotations

import logging

from assistant.conversation import Proposal, ReasonerUnavailable, Turn
from assistant.llm.config import LlmConfig
from assistant.llm.messages import LlmRequest, LlmUnavailable
from assistant.llm.understanding import LlmUnderstanding
from assistant.registry import DeviceRegistry
from skills.base import SkillRegistry

log = logging.getLogger(__name__)


class LlmReasoner:
    def __init__(self, config: LlmConfig, skills: SkillRegistry,
                 registry: DeviceRegistry, language: str = "en") -> None:
        self.understanding = LlmUnderstanding(config, skills, registry, language=language)

    @property
    def status(self) -> str:
        return self.understanding.status

    def start(self) -> None:
        self.understanding.start()

    async def stop(self) -> None:
        await self.understanding.stop()

    async def propose(self, text: str, area: str | None, history: tuple[Turn, ...],
                      hint: str | None) -> Proposal:
        try:
            proposal = await self.understanding.propose(LlmRequest(text, area, history, hint))
        except LlmUnavailable as exc:
            raise ReasonerUnavailable(str(exc)) from None
        if proposal.error is not None:
            log.warning("LLM gave no usable answer for %r: %s", text, proposal.error)
        return Proposal(proposal.calls, proposal.reply)
