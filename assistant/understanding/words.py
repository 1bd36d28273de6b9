"""The few words of a language the fast path reads itself, beyond its templates.

``data/words_<lang>.yaml`` holds them: the words for "all", the articles that may open a bare
device name, and the device nouns with their plurals (a plural with a room means every device
there, a singular one device). A language without a file gets none: its templates still
match, and a request said in the singular with several devices in the room is asked about.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources

import yaml


_PLACE_FRAME = "{verb} {place} {noun}"
_ACUTE = "\u0301"  # the accent a Spanish verb takes when a pronoun joins it


@dataclass(frozen=True, slots=True)
class Connectives:
    """Words that join requests or refer back to the last one (compound requests and
    follow-ups): each a phrase of whole words, casefolded."""

    joins: tuple[str, ...] = ()  # "and", "then": between two requests or targets
    list_openers: frozenset[str] = frozenset()  # "both": opens a list, dropped on a split
    adds_before: tuple[str, ...] = ()  # "and the kitchen"
    adds_after: tuple[str, ...] = ()  # "the kitchen too"
    corrections: tuple[str, ...] = ()  # "not that one, the lamp"
    pronouns: frozenset[str] = frozenset()  # "turn it off"
    # pronouns joined to the end of a verb that opens the request ("spegnila", "apágala"),
    # longest first
    enclitics: tuple[str, ...] = ()
    more: frozenset[str] = frozenset()  # "a bit more": the last change again
    less: frozenset[str] = frozenset()  # "less": the last change the other way
    # How a verb, a device noun and a place said on its own make a request: "turn on" +
    # "lights" + "the bedroom" -> "turn on the bedroom lights" ("{verb} {place} {noun}");
    # Italian: "accendi luci in camera" ("{verb} {noun} in {place}").
    place_frame: str = _PLACE_FRAME


@dataclass(frozen=True, slots=True)
class Words:
    language: str
    all_words: frozenset[str] = frozenset()
    articles: frozenset[str] = frozenset()
    # singular -> plural
    device_nouns: tuple[tuple[str, str], ...] = ()
    # how "°" is said ("21°" -> "21 degrees"), for templates that spell the unit; none: kept
    degree_word: str = ""
    # words that tie a device to its room ("Luz del garaje"): a name cut of its room never
    # ends in one ("luz del" is nobody's name)
    place_links: frozenset[str] = frozenset()
    connectives: Connectives = Connectives()
    # questions about what the hub can do ("what can you do"), answered with its skills
    capability_questions: tuple[str, ...] = ()

    def asks_what_it_can_do(self, text: str) -> bool:
        said = f"{' '.join(_words(text))} "
        return any(said.startswith(f"{question} ") for question in self.capability_questions)

    def without_enclitic(self, word: str) -> str | None:
        """The verb ``word`` is with a pronoun joined to its end, without the pronoun and
        the written accent it took ("apágala" -> "apaga"); None when it has none."""
        for pronoun in self.connectives.enclitics:
            if word.endswith(pronoun) and len(word) > len(pronoun) + 2:
                stem = unicodedata.normalize("NFD", word[:-len(pronoun)])
                return unicodedata.normalize("NFC", stem.replace(_ACUTE, ""))
        return None

    def says_all(self, text: str) -> bool:
        return bool(self.all_words & set(_words(text)))

    def says_plural_noun(self, text: str) -> bool:
        return bool({plural for _, plural in self.device_nouns} & set(_words(text)))

    def singular_nouns_in(self, text: str) -> set[str]:
        return {singular for singular, _ in self.device_nouns} & set(_words(text))

    def without_article(self, text: str) -> str:
        """``text`` without a leading article ("the music" -> "music")."""
        first, _, rest = text.partition(" ")
        return rest if rest and first in self.articles else text


def _phrases(data: dict, key: str) -> tuple[str, ...]:
    """The phrases under ``key`` as words, longest first ("and then" is found before "and")."""
    said = {" ".join(_words(str(p))) for p in data.get(key) or ()}
    return tuple(sorted(said - {""}, key=len, reverse=True))


def _connectives(data: dict) -> Connectives:
    phrases = partial(_phrases, data)
    return Connectives(joins=phrases("joins"), list_openers=frozenset(phrases("list_openers")),
                       adds_before=phrases("adds_before"), adds_after=phrases("adds_after"),
                       corrections=phrases("corrections"),
                       pronouns=frozenset(phrases("pronouns")),
                       enclitics=phrases("enclitics"),
                       more=frozenset(phrases("more")), less=frozenset(phrases("less")),
                       place_frame=str(data.get("place_frame") or _PLACE_FRAME))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


@cache
def words_for(language: str) -> Words:
    path = resources.files("assistant") / "data" / f"words_{language}.yaml"
    if not path.is_file():
        return Words(language)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    nouns = data.get("device_nouns") or {}
    return Words(language,
                 all_words=frozenset(map(str.casefold, data.get("all_words") or ())),
                 articles=frozenset(map(str.casefold, data.get("articles") or ())),
                 device_nouns=tuple((str(s).casefold(), str(p).casefold())
                                    for s, p in nouns.items()),
                 degree_word=str(data.get("degree_word") or "").casefold(),
                 place_links=frozenset(map(str.casefold, data.get("place_links") or ())),
                 connectives=_connectives(data.get("connectives") or {}),
                 capability_questions=_phrases(data, "capability_questions"))
