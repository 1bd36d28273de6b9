"""Compound requests on the fast path: "turn on the kitchen light and then turn off the hall
light", "turn on the living room and kitchen lights", "turn off the tv and the lamp".

Only a sentence that does not match as a whole is split, so a name with "and" in it ("Salt
and Pepper Lamp") and common commands keep their single, cheap match. The pieces between the
language's joining words are taken longest first, so a name with "and" inside a longer
request still stays whole. A piece without a verb of its own borrows the previous part's
("turn off the tv and the lamp"); a place without a device noun borrows the noun said at the
end of the list ("the living room and kitchen lights"). A piece that only a bad cut could
produce is not understood rather than guessed: it never borrows from a part that did not
match, and a wildcard (a song, a list item) never ends at a cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hassil import RecognizeResult

from assistant.understanding.fastpath import FastPath, FastPathResult

MAX_PIECES = 8  # a longer list is not split: the cost grows with the square of the pieces
_NAMES = frozenset({"name", "area", "floor"})
_PLACES = frozenset({"area", "floor"})


@dataclass(frozen=True, slots=True)
class Frame:
    """What a later fragment without a verb borrows from a request: "turn off" [the kitchen]
    "light"; ``tail`` is what followed the target ("to 50 percent", "off")."""

    verb: str
    noun: str | None
    tail: str

    def around(self, fragment: str, place_frame: str | None = None) -> str:
        """The verb before ``fragment``; with ``place_frame``, the fragment is a place and
        the frame's noun goes with it ("turn off" "the bedroom" "light")."""
        said = place_frame.format(verb=self.verb, place=fragment, noun=self.noun) \
            if place_frame and self.noun else f"{self.verb} {fragment}"
        return f"{said} {self.tail}" if self.tail else said


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a request: as said, and the sentence that matched for it (None: not
    understood)."""

    said: str
    understood: str | None = None
    result: FastPathResult = FastPathResult()
    frame: Frame | None = None
    # a device or place was said for it, not taken from the speaker's room
    names_target: bool = False
    names_place: bool = False


class Parts:
    """Understands fragments of requests with the fast path; shared with the follow-ups."""

    def __init__(self, fast_path: FastPath) -> None:
        self.fast_path = fast_path
        self.words = fast_path.words
        joins = self.words.connectives.joins
        alternatives = "|".join(r"\s+".join(map(re.escape, j.split())) for j in joins)
        self._cut = re.compile(rf"\s*,\s*(?:(?:{alternatives})\s+)?|\s+(?:{alternatives})\s+"
                               if joins else r"\s*,\s*")
        self._nouns = frozenset(w for pair in self.words.device_nouns for w in pair)

    # -- compound requests ---------------------------------------------------------------

    def split(self, text: str, area: str | None) -> tuple[Part, ...] | None:
        """The parts of a request that did not match as a whole; None when it does not cut
        into several pieces."""
        spoken = self._without_list_openers(self.fast_path.spoken_form(text).strip(" .!?"))
        pieces = self._pieces(spoken)
        if not 2 <= len(pieces) <= MAX_PIECES:
            return None
        last_words = spoken[pieces[-1][0]:pieces[-1][1]].split()
        shared_noun = last_words[-1] if last_words and last_words[-1] in self._nouns else None
        parts: list[Part] = []
        start = missed_from = 0
        while start < len(pieces):
            frame = parts[-1].frame if parts else None
            for end in range(len(pieces), start, -1):
                if start == 0 and end == len(pieces):
                    continue  # the whole did not match
                fragment = spoken[pieces[start][0]:pieces[end - 1][1]]
                part = self.understand(fragment, frame, area, cut_before=start > 0,
                                       cut_after=end < len(pieces),
                                       shared_noun=shared_noun if end < len(pieces) else None)
                if part is not None:
                    break
            else:
                end = start + 1
                if parts and parts[-1].understood is None:  # "the salt and pepper": one miss
                    parts.pop()
                    start = missed_from
                missed_from = start
                part = Part(spoken[pieces[start][0]:pieces[end - 1][1]])
            parts.append(part)
            start = end
        return _unclear_places(parts)

    def _pieces(self, spoken: str) -> list[tuple[int, int]]:
        pieces, at = [], 0
        for cut in self._cut.finditer(spoken):
            pieces.append((at, cut.start()))
            at = cut.end()
        pieces.append((at, len(spoken)))
        return [(a, b) for a, b in pieces if spoken[a:b].strip()]

    def _without_list_openers(self, spoken: str) -> str:
        openers = self.words.connectives.list_openers
        return " ".join(w for w in spoken.split() if w not in openers) if openers else spoken

    # -- one fragment --------------------------------------------------------------------

    def understand(self, fragment: str, frame: Frame | None, area: str | None, *,
                   cut_before: bool = False, cut_after: bool = False,
                   shared_noun: str | None = None) -> Part | None:
        """The fragment understood on its own when it has a verb, else with the frame's verb
        (and noun, for a bare place); None when neither matches."""
        has_noun = bool(self._nouns & set(fragment.split()))
        tries: list[tuple[str, bool]] = []  # (sentence, only when it yields calls)
        if shared_noun and not has_noun:
            tries.append((f"{fragment} {shared_noun}", True))
        tries.append((fragment, False))
        for sentence, calls_only in tries:
            part = self._matched(sentence, fragment, area, cut_before, cut_after, own_verb=True)
            if part is not None and (part.result.calls or not calls_only):
                return part
        if frame is None:
            return None
        if has_noun or frame.noun is None:
            return self._matched(frame.around(fragment), fragment, area, cut_before, cut_after,
                                 own_verb=False)
        place_frame = self.words.connectives.place_frame
        for place in dict.fromkeys((fragment, self._bare_place(fragment))):
            if self.fast_path.names_a_place(place):  # "and the bedroom", "e del soggiorno"
                return self._matched(frame.around(place, place_frame), fragment, area,
                                     cut_before, cut_after, own_verb=False)
        return self._matched(frame.around(fragment), fragment, area, cut_before, cut_after,
                             own_verb=False)

    def _bare_place(self, fragment: str) -> str:
        """A place without the words that tie it to a noun ("del soggiorno" -> "soggiorno",
        "la camera" -> "camera")."""
        words = fragment.split()
        while len(words) > 1 and (words[0] in self.words.place_links
                                  or words[0] in self.words.articles):
            words.pop(0)
        return " ".join(words)

    def frame_of(self, sentence: str, area: str | None) -> Frame | None:
        match = self.fast_path.recognize(sentence, area)
        return self._frame(self.fast_path.spoken_form(sentence), match) if match else None

    def _matched(self, sentence: str, said: str, area: str | None, cut_before: bool,
                 cut_after: bool, own_verb: bool) -> Part | None:
        match = self.fast_path.recognize(sentence, area)
        if match is None or _wildcard_at_cut(match, sentence, cut_before, cut_after):
            return None
        frame = self._frame(sentence, match)
        if own_verb and frame is None and _spans(match, _NAMES):
            return None  # "kitchen light" alone: a target without a verb
        result = self.fast_path.understand_match(match, sentence, area)
        if not result.calls and not result.unresolved:
            return None
        return Part(said, sentence, result, frame, names_target=bool(_spans(match, _NAMES)),
                    names_place=bool(_spans(match, _PLACES)))

    def _frame(self, sentence: str, match: RecognizeResult) -> Frame | None:
        """The verb before the target (a device or place, or a device noun: "turn off the
        lights"), the device noun said and what follows the target; None when no target was
        said or nothing comes before it."""
        spans = _spans(match, _NAMES)
        words = sentence.split()
        # the first word is the verb even where it is also a noun ("switch on the fan")
        nouns = [w for w in words[1:] if w in self._nouns]
        if not spans and not nouns:
            return None
        head = sentence[:min(a for a, _ in spans)].split() if spans else words
        for index, word in enumerate(head[1:], 1):
            if word in self._nouns:  # "turn on the light in [the kitchen]"
                head = head[:index]
                break
        while head and head[-1] in self.words.articles:
            head.pop()
        if not head:
            return None
        tail = sentence[max(b for _, b in spans):].split() if spans \
            else words[len(words) - words[::-1].index(nouns[-1]):]
        while tail and tail[0] in self._nouns:  # "the [kitchen] lights": the noun is kept apart
            tail.pop(0)
        return Frame(" ".join(head), nouns[-1] if nouns else None, " ".join(tail))


def _spans(match: RecognizeResult, names: frozenset[str]) -> list[tuple[int, int]]:
    return [slot.text_span for slot in match.entities.values()
            if slot.name in names and slot.text_span is not None and not slot.is_wildcard]


def _wildcard_at_cut(match: RecognizeResult, sentence: str, cut_before: bool,
                     cut_after: bool) -> bool:
    """A wildcard that reaches a cut may have lost words to it ("play rock" of "play rock
    and roll")."""
    end = len(sentence.rstrip())
    for slot in match.entities.values():
        if not slot.is_wildcard:
            continue
        if slot.text_span is None:
            return True
        start, stop = slot.text_span
        if (cut_before and not sentence[:start].strip()) or (cut_after and stop >= end):
            return True
    return False


def _unclear_places(parts: list[Part]) -> tuple[Part, ...]:
    """A part that names no target acts on the speaker's room; beside a part that names a
    place ("turn off the lights and the fan in the bedroom") that place may be meant for it
    too, so it is not understood rather than done in the wrong room."""
    if not any(p.names_place for p in parts):
        return tuple(parts)
    return tuple(Part(p.said) if p.understood is not None and not p.names_target else p
                 for p in parts)
