"""Replies and confirmation words in the home's language.

The code writes its replies in English, in many places; they are translated once, where a
reply leaves the conversation and where a notice is said, from a catalog per language
(``assistant/data/replies_<lang>.yaml``) keyed by our English templates. gettext would need
every reply site to look its message up; here the finished text is matched instead, so the
sites stay as they are. A template's ``{slot}`` matches any text, which is translated in turn
(a nested "the Kitchen Light and the Lamp", "1 hour and 5 minutes") unless it is a number
(written with the language's decimal mark) or data said as it is (``AS_SAID``). Names the
caller keeps (devices, areas) are set aside first, so no word inside a name is translated.
A reply is translated sentence by sentence, so a template is at most one sentence; a
sentence no template matches is passed through unchanged and logged at debug.

This module imports nothing of the project when it runs, so any layer may use it (the
conversation for its replies, the automations' notices).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Literal

import yaml

if TYPE_CHECKING:
    from assistant.registry import DeviceRegistry

log = logging.getLogger(__name__)

Answer = Literal["yes", "no", "mixed"]
# Slots whose text is data (a list item, a reminder's message, a quoted request): never
# translated, whatever words it holds.
AS_SAID = frozenset({"item", "message", "quoted", "code"})
SLOT = re.compile(r"\{(\w+)\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_NUMBERED = re.compile(r"(?:^|[:;]\s)\d+\.$")  # "You have 2 schedules: 1. ...": no end
_SENTENCE = re.compile(r"^[A-Z]|[.?!]$")  # a template that is a whole sentence
_JOINER = re.compile(r"\{\w+\}([,;]| \w+) \{\w+\}")  # "{a}, {b}", "{a} and {b}"
_KEPT = "\x00{}\x00"  # a set-aside name, restored after translating
_MAX_READINGS = 64  # ways one template may split one text
_MAX_DEPTH = 40  # slots are shorter than their text, so this only bounds the stack


@dataclass(frozen=True, slots=True)
class AnswerWords:
    """The words that answer a confirmation question in one language."""

    yes: frozenset[str]
    yes_phrases: tuple[str, ...]  # several words that together say yes ("go ahead")
    fillers: frozenset[str]  # words that may stand beside a yes ("please", "thanks")
    no: frozenset[str]

    def classify(self, text: str) -> Answer | None:
        """"yes" only when unambiguous; "no" for a refusal; "mixed" for an answer that mixes
        or takes back; None when the text is no answer at all (a new request)."""
        words = re.findall(r"[^\W\d_]+", text.casefold())
        said = set(words)
        joined = f" {' '.join(words)} "
        phrases = [p for p in self.yes_phrases if f" {p} " in joined]
        has_yes = bool(self.yes & said) or bool(phrases)
        has_no = bool(self.no & said)
        if has_yes and not has_no:
            allowed = self.yes | self.fillers | {w for p in phrases for w in p.split()}
            return "yes" if said <= allowed else "mixed"
        if has_no:
            return "mixed" if has_yes else "no"
        return None


@dataclass(frozen=True, slots=True)
class _Template:
    english: str
    said: str
    slots: tuple[str, ...]
    pieces: tuple[str, ...]  # the lowercased text around the slots: one more than slots

    def readings(self, text: str, lower: str) -> Iterator[dict[str, str]]:
        """Every way the slots can split ``text`` (``lower``: the same, lowercased), the
        earlier slots shortest first; at most ``_MAX_READINGS``."""
        if not self.slots:
            if lower == self.pieces[0]:
                yield {}
            return
        first, *middle, last = self.pieces
        end = len(text) - len(last)
        if not (lower.startswith(first) and lower.endswith(last)) or end <= len(first):
            return
        found = 0

        def walk(at: int, values: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
            index = len(values)
            if index == len(middle):
                if end > at:
                    yield (*values, text[at:end])
                return
            start = lower.find(middle[index], at + 1)
            while start != -1 and start + len(middle[index]) < end:
                yield from walk(start + len(middle[index]), (*values, text[at:start]))
                start = lower.find(middle[index], start + 1)

        for values in walk(len(first), ()):
            yield dict(zip(self.slots, values))
            found += 1
            if found == _MAX_READINGS:
                return


class Replies:
    """One language's translation of our English replies, and its confirmation words."""

    def __init__(self, language: str, templates: dict[str, str], answers: AnswerWords,
                 decimal_mark: str = ".") -> None:
        self.language = language
        self.answers = answers
        self.decimal_mark = decimal_mark
        compiled = [_compiled(english, said) for english, said in templates.items()]
        # Lists first, the widest first ("{a}; {b}", "{a}, {b}", "{a} and {b}": what they
        # split is shorter and soon known), then the most specific ("1 minute" before
        # "{n} minute"); words without slots are looked up at once.
        self._templates = sorted((t for t in compiled if t.slots), key=_search_order)
        self._sentences = [t for t in self._templates if _SENTENCE.search(t.english)]
        self._words = {t.pieces[0]: t.said for t in compiled if not t.slots}

    def say(self, text: str, keep: Iterable[str] = ()) -> str:
        """``text`` in this language, sentence by sentence; ``keep`` are names to leave
        exactly as they are."""
        if not self._templates or not text.strip():
            return text
        masked, kept = _set_aside(text, tuple(keep))
        return " ".join(self._sentence(s, kept) for s in _sentences(masked.strip()))

    def _sentence(self, sentence: str, kept: list[str]) -> str:
        left, said = self._best(sentence, 0, _Search())
        if left:
            log.debug("%s reply left partly in English: %r -> %r", self.language, sentence, said)
        said = _restored(said, kept)
        return said[:1].upper() + said[1:] if _restored(sentence, kept)[:1].isupper() else said

    def _best(self, text: str, depth: int, search: _Search) -> tuple[int, str]:
        """The translation of ``text`` that leaves the fewest letters in English, and that
        number: a template's slots may split a text more than one way ("the {name} in the
        {area}" against a list of them), and a reading that leaves English over loses."""
        if text in search.memo:
            return search.memo[text]
        lower = text.lower()
        if len(lower) != len(text):  # a letter that lowercases to two: match it as it is
            lower = text
        if lower in self._words:
            search.memo[text] = (0, self._words[lower])
            return search.memo[text]
        best = (_letters(text), text)
        # A sentence is only ever said by a sentence of ours, never by a bare "{a} and {b}".
        templates = self._sentences if depth == 0 else self._templates
        for template in templates if depth <= _MAX_DEPTH else ():
            for reading in template.readings(text, lower):
                search.readings -= 1
                left, slots = 0, {}
                for name, value in reading.items():
                    slot_left, slots[name] = self._slot(name, value, depth, search)
                    left += slot_left
                    if left >= best[0]:
                        break
                else:
                    best = (left, template.said.format_map(slots))
                if not best[0] or search.readings <= 0:
                    break
            if not best[0] or search.readings <= 0:
                break
        search.memo[text] = best
        return best

    def _slot(self, name: str, value: str, depth: int, search: _Search) -> tuple[int, str]:
        if name in AS_SAID:
            return 0, value
        if _NUMBER.fullmatch(value):
            return 0, value.replace(".", self.decimal_mark)
        return self._best(value, depth + 1, search)


@dataclass(slots=True)
class _Search:
    """One sentence's translation under way: what its parts came to, and how many more
    readings it may try (text no template fits would otherwise try them all)."""

    memo: dict[str, tuple[int, str]] = field(default_factory=dict)
    readings: int = 3000


def _sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        if not _NUMBERED.search(text, start, end.start()):
            sentences.append(text[start:end.start()])
            start = end.end()
    return [*sentences, text[start:]]


def _letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


ENGLISH_ONLY = frozenset({"en"})


@functools.cache
def replies_for(language: str) -> Replies:
    """The catalog of ``language`` (English and a language without one: replies as written,
    English confirmation words for a language without its own)."""
    english = _catalog("en")
    assert english is not None, "assistant/data/replies_en.yaml is part of the package"
    own = _catalog(language) if language not in ENGLISH_ONLY else None
    data = own or english
    answers = data.get("answers") or english["answers"]
    templates = {**(data.get("replies") or {}), **(data.get("words") or {})}
    return Replies(language if own else "en", templates, AnswerWords(
        yes=frozenset(answers["yes_words"]), yes_phrases=tuple(answers.get("yes_phrases", ())),
        fillers=frozenset(answers.get("fillers", ())), no=frozenset(answers["no_words"])),
        str(data.get("decimal_mark", ".")))


def kept_names(registry: DeviceRegistry) -> Iterator[str]:
    """The names a translated reply says as they are: devices, areas, floors (not lists:
    "shopping list" is our words for a list, said in the home's language). Only names of
    several words: a one-word name has no "and" to be cut at, and set aside it would cut our
    own words ("Garage" in "garage doors"). Lazily: an English reply never asks."""
    names = (*(e.name for e in registry.all_entities() if e.domain != "todo"),
             *(a.name for a in registry.areas.values()),
             *(f.name for f in registry.floors.values()))
    yield from (name for name in names if len(name.split()) > 1)


def _catalog(language: str) -> dict | None:
    path = resources.files("assistant") / "data" / f"replies_{language}.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compiled(english: str, said: str) -> _Template:
    slots = SLOT.findall(english)
    if len(set(slots)) != len(slots) or set(SLOT.findall(said)) != set(slots):
        raise ValueError(f"reply template {english!r} -> {said!r}: each slot once, "
                         "the same slots on both sides")
    pieces = tuple(piece.lower() for piece in SLOT.split(english)[::2])
    if any(not piece for piece in pieces[1:-1]):
        raise ValueError(f"reply template {english!r}: two slots need words between them")
    return _Template(english, said, tuple(slots), pieces)


def _search_order(template: _Template) -> tuple[int, int, int]:
    joiner = _JOINER.fullmatch(template.english)
    if joiner:
        return (0, {";": 0, ",": 1}.get(joiner[1], 2), 0)
    return (1, -_literal_letters(template.english), len(template.slots))


def _literal_letters(template: str) -> int:
    return sum(c.isalpha() for c in SLOT.sub("", template))


def _set_aside(text: str, names: tuple[str, ...]) -> tuple[str, list[str]]:
    """``text`` with each name in ``names`` (longest first) replaced by a marker, and the
    texts they stand for."""
    pattern = _names_pattern(tuple(sorted({n for n in names if n.strip()}, key=len,
                                          reverse=True)))
    if pattern is None:
        return text, []
    kept: list[str] = []

    def aside(match: re.Match[str]) -> str:
        kept.append(match[0])
        return _KEPT.format(len(kept) - 1)

    return pattern.sub(aside, text), kept


@functools.lru_cache(maxsize=8)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    if not names:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)",
                      re.IGNORECASE)


def _restored(text: str, kept: list[str]) -> str:
    for index, name in enumerate(kept):
        text = text.replace(_KEPT.format(index), name)
    return text
