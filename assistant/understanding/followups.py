"""Follow-ups on the fast path: after "turn off the bedroom light", "and the kitchen too",
"turn it off", "make it brighter", "a bit more", "not that one, the lamp".

A follow-up is read against the last turn only (what it said and the calls that ran); the
conversation decides whether that turn is recent enough. What a follow-up asks for goes
through the same executor and safety policy as any request: undoing a garage door is asked
about like opening it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from assistant.messages import ToolCall
from assistant.understanding.compound import Part, Parts
from assistant.understanding.fastpath import FastPath

# What undoes a simple action on the wrong device (a lock's undo is asked about like any).
_UNDO = {"turn_on": "turn_off", "turn_off": "turn_on", "open": "close", "close": "open",
         "lock": "unlock", "unlock": "lock"}
_STEP_ARG = re.compile(r"_step_pct$")

Kind = Literal["again", "correction", "addition", "pronoun"]


@dataclass(frozen=True, slots=True)
class LastTurn:
    """The turn a follow-up refers to: the fast-path sentences its calls came from (none when
    another path understood it) and the calls as far as they ran."""

    understood: tuple[str, ...]
    calls: tuple[ToolCall, ...]

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(eid for call in self.calls
                                  for eid in call.args.get("entity_ids", ())))


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Calls to run (undoing the last action first, for a correction), or a ``reply`` that
    asks or explains when the new target did not resolve."""

    kind: Kind
    calls: tuple[ToolCall, ...] = ()
    undo: tuple[ToolCall, ...] = ()
    understood: tuple[str, ...] = ()
    reply: str | None = None
    clarification: bool = False


class FollowUps:
    def __init__(self, fast_path: FastPath, parts: Parts) -> None:
        self.fast_path = fast_path
        self.registry = fast_path.registry
        self.parts = parts
        self.connectives = fast_path.words.connectives

    def resolve(self, text: str, last: LastTurn, area: str | None) -> FollowUp | None:
        """The follow-up ``text`` asks for; None when it is none, or refers to nothing the
        last turn did (the request then goes the usual way)."""
        spoken = self.fast_path.spoken_form(text)
        said = " ".join(re.findall(r"[\w%]+", spoken))
        if said in self.connectives.more or said in self.connectives.less:
            return self._again(last, said in self.connectives.more)
        corrected = _after(said, self.connectives.corrections)
        if corrected:
            return self._retarget("correction", corrected, last, area)
        opened = _after(said, self.connectives.adds_before)
        added = _before(opened or said, self.connectives.adds_after) or opened
        if added:  # "and the kitchen", "the kitchen too", "and the kitchen too"
            return self._retarget("addition", added, last, area)
        words = said.split()
        if self.connectives.pronouns & set(words):
            return self._pronoun(last, lambda name: " ".join(
                name if w in self.connectives.pronouns else w for w in words))
        verb = self.fast_path.words.without_enclitic(words[0]) if words else None
        if verb:  # "spegnila": "spegni" and the name
            return self._pronoun(last, lambda name: " ".join([verb, name, *words[1:]]))
        return None

    def _again(self, last: LastTurn, more: bool) -> FollowUp | None:
        """The last relative change once more, or the other way ("less" after "brighter")."""
        sign = 1 if more else -1
        again = tuple(ToolCall(call.tool, {k: sign * v if _STEP_ARG.search(k) else v
                                           for k, v in call.args.items()})
                      for call in last.calls if any(map(_STEP_ARG.search, call.args)))
        return FollowUp("again", again, understood=last.understood) if again else None

    def _retarget(self, kind: Kind, fragment: str, last: LastTurn,
                  area: str | None) -> FollowUp | None:
        """The last action on another target ("and the kitchen"): for a correction, undone on
        the last targets when that is a simple switch back."""
        frame = self.parts.frame_of(last.understood[-1], area) if last.understood else None
        part = self.parts.understand(fragment, frame, area)
        if part is None:
            return None
        if not part.result.calls:
            return FollowUp(kind, reply=part.result.reply,
                            clarification=part.result.clarification)
        undo = _undo(last, _targets_of(part)) if kind == "correction" else ()
        return FollowUp(kind, part.result.calls, undo, (part.understood or fragment,))

    def _pronoun(self, last: LastTurn, naming: Callable[[str], str]) -> FollowUp | None:
        """"turn it off": the sentence ``naming`` makes with the first last target's name
        for the pronoun, then acted on every last target of that kind."""
        targets = [e for e in map(self.registry.get, last.targets) if e is not None]
        if not targets:
            return None
        first = targets[0]
        sentence = naming(self.fast_path.spoken_form(first.name))
        result = self.fast_path.understand(sentence, first.area)
        if not result.calls or any(call.args.get("entity_ids") != [first.entity_id]
                                   for call in result.calls):
            return None  # the name did not lead back to the device: not for the fast path
        same_kind = [e.entity_id for e in targets if e.domain == first.domain]
        calls = tuple(ToolCall(c.tool, {**c.args, "entity_ids": same_kind})
                      for c in result.calls)
        return FollowUp("pronoun", calls, understood=(sentence,))


def _phrase_cut(said: str, phrases: tuple[str, ...],
                cut: Callable[[str, str], str | None]) -> str | None:
    for phrase in phrases:  # longest first
        rest = cut(said, phrase)
        if rest:
            return rest
    return None


def _after(said: str, phrases: tuple[str, ...]) -> str | None:
    """What follows a phrase that opens ``said``."""
    return _phrase_cut(said, phrases, lambda s, p: s[len(p):].strip()
                       if s.startswith(p + " ") else None)


def _before(said: str, phrases: tuple[str, ...]) -> str | None:
    """What comes before a phrase that closes ``said``."""
    return _phrase_cut(said, phrases, lambda s, p: s[:-len(p)].strip()
                       if s.endswith(" " + p) else None)


def _targets_of(part: Part) -> set[str]:
    return {eid for call in part.result.calls for eid in call.args.get("entity_ids", ())}


def _undo(last: LastTurn, kept: set[str]) -> tuple[ToolCall, ...]:
    undo = []
    for call in last.calls:
        wrong = [eid for eid in call.args.get("entity_ids", ()) if eid not in kept]
        if call.tool in _UNDO and wrong:
            undo.append(ToolCall(_UNDO[call.tool], {"entity_ids": wrong}))
    return tuple(undo)
