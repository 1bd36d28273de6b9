"""What the assistant says on its own (a due timer, a reminder, a missed job, a rule's
``say``): published on MQTT, spoken where it belongs, and kept for the next reply when no
speaker there could say it.

``Notices.announce`` is the ``Announce`` callable the automation services are given. The
text may hold device or timer names, which are data, so it is never formatted or handed to
anything that interprets it; it is only put in the home's language (``say``), names kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from assistant.messages import Notice

if TYPE_CHECKING:
    from assistant.automation.scheduler import Clock

log = logging.getLogger(__name__)

NOTICES_TOPIC = "notices"  # under the base topic: <base>/notices
# (sub-topic, JSON-able body): the daemon sends it to <base>/<sub-topic>, QoS 1, not retained.
Publish = Callable[[str, dict[str, Any]], None]
# (text, area id or None) -> True when a speaker or satellite there played it.
Speak = Callable[[str, str | None], Awaitable[bool]]

REPLY_LEAD = "While you were away:"


@dataclass(frozen=True, slots=True)
class _Unheard:
    notice: Notice
    at: datetime


class Notices:
    """Announces notices and keeps the unheard ones (at most ``max_kept``, for ``keep_s``)."""

    def __init__(self, *, publish: Publish | None, speak: Speak | None, clock: Clock,
                 keep_s: float = 3600.0, max_kept: int = 50,
                 speak_timeout_s: float = 60.0,
                 say: Callable[[str], str] | None = None) -> None:
        if keep_s <= 0 or max_kept < 1:
            raise ValueError("keep_s must be positive and max_kept at least 1")
        self._publish = publish
        self._speak = speak
        self._clock = clock
        self._keep_for = timedelta(seconds=keep_s)
        self._speak_timeout_s = speak_timeout_s
        # The text in the home's language where it is said or published (assistant/replies);
        # kept in English, for the reply that tells it is translated as a whole.
        self._say = say or (lambda text: text)
        # Oldest first; a full deque drops its oldest notice to make room.
        self._unheard: deque[_Unheard] = deque(maxlen=max_kept)

    async def announce(self, notice: Notice) -> None:
        """Publish, then speak in the notice's area; unheard, keep it. Never raises."""
        at = self._clock.now()
        self._publish_notice(notice, at)
        if not await self._spoken(notice):
            if len(self._unheard) == self._unheard.maxlen:
                log.warning("too many unheard notices: forgetting %r",
                            self._unheard[0].notice.text)
            self._unheard.append(_Unheard(notice, at))

    def take_for(self, conversation_id: str | None, area: str | None) -> list[Notice]:
        """The unheard notices for this conversation, or failing that for this area (with
        those that belong to no area), oldest first; each is told once."""
        self._forget_expired()
        mine = [kept for kept in self._unheard
                if conversation_id is not None and kept.notice.conversation_id == conversation_id]
        if not mine:
            mine = [kept for kept in self._unheard if kept.notice.area in (area, None)]
        for kept in mine:
            self._unheard.remove(kept)
        return [kept.notice for kept in mine]

    def _forget_expired(self) -> None:
        oldest_kept = self._clock.now() - self._keep_for
        while self._unheard and self._unheard[0].at < oldest_kept:
            log.info("notice not told in time, forgotten: %r", self._unheard.popleft().notice.text)

    def _publish_notice(self, notice: Notice, at: datetime) -> None:
        if self._publish is None:
            return
        body = {"kind": notice.kind, "text": self._say(notice.text), "area": notice.area,
                "conversation_id": notice.conversation_id, "data": notice.data,
                "at": at.isoformat()}
        try:
            self._publish(NOTICES_TOPIC, body)
        except Exception:  # the broker is away, data is not JSON-able: still speak and keep
            log.exception("could not publish the %s notice %r", notice.kind, notice.text)

    async def _spoken(self, notice: Notice) -> bool:
        if self._speak is None:
            return False
        try:
            return await asyncio.wait_for(self._speak(self._say(notice.text), notice.area),
                                          self._speak_timeout_s) is True
        except Exception:  # no voice, Piper failed, a satellite hung: tell it in a reply
            log.exception("could not say the %s notice %r", notice.kind, notice.text)
            return False


def reply_prefix(notices: Sequence[Notice]) -> str:
    """``While you were away: <text>. <text>.`` for notices taken for a reply; "" for none.

    The texts are used as written (one sentence each, a full stop added where missing).
    The caller prepends it to the reply with a space.
    """
    sentences = []
    for notice in notices:
        text = " ".join(notice.text.split())
        if text:
            sentences.append(text if text[-1] in ".!?" else f"{text}.")
    return " ".join([REPLY_LEAD, *sentences]) if sentences else ""
