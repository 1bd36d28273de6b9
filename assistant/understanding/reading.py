"""The fast path's readings of a request, in the order they are tried: a follow-up of the last
turn, the sentence as a whole, then its parts when the whole did not match.

The conversation acts on the first reading it can (and decides what to ask or leave to the
model); ``mimo-home bench nlu`` times the same readings without running anything. One order,
kept here, serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from assistant.messages import ToolCall
from assistant.understanding.compound import Part, Parts
from assistant.understanding.fastpath import NO_MATCH, FastPath, FastPathResult
from assistant.understanding.followups import FollowUp, FollowUps, LastTurn

# One reading: a follow-up, the whole sentence's result, or the parts of a compound request.
Reading = FollowUp | FastPathResult | tuple[Part, ...]
# Whether calls can run here (a switched-off skill's cannot).
Runnable = Callable[[tuple[ToolCall, ...]], bool]


def _everything_runs(_calls: tuple[ToolCall, ...]) -> bool:
    return True


class FastReader:
    """The readings of requests to one fast path."""

    def __init__(self, fast_path: FastPath) -> None:
        self.fast_path = fast_path
        self.parts = Parts(fast_path)
        self.followups = FollowUps(fast_path, self.parts)

    def readings(self, text: str, area: str | None, last: LastTurn | None,
                 runnable: Runnable = _everything_runs) -> Iterator[Reading]:
        """Each reading in turn; ``last`` is the turn a follow-up may refer to (None when
        there is none recent enough). Later readings are worked out only when asked for."""
        if last is not None and last.calls:
            follow = self.followups.resolve(text, last, area)
            if follow is not None and runnable(follow.undo + follow.calls):
                yield follow
        whole = self.fast_path.understand(text, area)
        if not runnable(whole.calls):
            whole = NO_MATCH  # a skill that is switched off (automation.enabled: false)
        yield whole
        if not whole.matched or (whole.unresolved and not whole.clarification):
            parts = self.parts.split(text, area)
            if parts:
                yield parts
