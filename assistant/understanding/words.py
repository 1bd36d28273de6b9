"""The few words of a language the fast path reads itself, beyond its templates.

``data/words_<lang>.yaml`` holds them: the words for "all", the articles that may open a bare
device name, and the device nouns with their plurals (a plural with a room means every device
there, a singular one device). A language without a file gets none: its templates still
match, and a request said in the singular with several devices in the room is asked about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml


@dataclass(frozen=True, slots=True)
class Words:
    language: str
    all_words: frozenset[str] = frozenset()
    articles: frozenset[str] = frozenset()
    # singular -> plural
    device_nouns: tuple[tuple[str, str], ...] = ()

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
                                    for s, p in nouns.items()))
