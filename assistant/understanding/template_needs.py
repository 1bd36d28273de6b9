"""What a template needs from a text to have a chance, worked out once per template for
``assistant.understanding.template_filter``: the lists it needs values of, the words it can
end with, the words it can say at all, hassil's own literal fragments, the slots a match of
it may fill, and the list value its literal ending must follow. Every answer errs on the
side of "anything": a template is only ruled out on what it provably needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from functools import cache
from typing import Any

from hassil.expression import (
    Alternative, Expression, Group, ListReference, RuleReference, Sentence, Sequence, TextChunk,
)
from hassil.intents import (
    IntentData, RangeFractionType, RangeSlotList, SlotList, TextSlotList,
)
from hassil.numbers import get_rbnf_engine
# how hassil's matcher reads "living-room" as "living room" when the plain text fails
from hassil.string_matcher import BREAK_WORDS_TABLE
from hassil.util import PUNCTUATION_STR

# Rules nest only a few levels deep; past this a template is simply kept.
_MAX_DEPTH = 32
_PUNCTUATION = frozenset(PUNCTUATION_STR)
# Words as the vocabulary test compares them: no punctuation, "-" and "_" break words.
_TO_WORDS = str.maketrans({**{mark: None for mark in PUNCTUATION_STR}, "-": " ", "_": " "})
# Stands for the digits a number range matches, in a template's words; no text word has it.
DIGITS = "\0digits"
# Text as the tail test compares it: no spaces, no punctuation (hassil skips both there).
_COMPACT = str.maketrans({mark: None for mark in PUNCTUATION_STR + " \t\n"})
# Past this many spoken forms of what follows the last list, a template has no tail.
_MAX_TAIL_FORMS = 256

Clauses = frozenset[frozenset[str]]
# The words a template can end with; None when that is not known (a number, a wildcard).
Endings = frozenset[str] | None
# The words a template can say; None when anything may be said (a wildcard).
Words = frozenset[str] | None
ValueContext = Mapping[str, Any] | None
# (slot, list) for each list reference that fills a slot; a slot fixed by the block: (slot, "")
Sources = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Needs:
    """What a template needs from a text to have a chance."""

    # lists that must each have a value in the text
    every_list: frozenset[str]
    # groups of lists of which one must have a value in the text
    one_list_of: tuple[frozenset[str], ...]
    endings: Endings
    words: Words
    # hassil's own test: literal fragments, one of each clause in the text
    fragments: Clauses
    # the slots a match may fill; None when that is not known
    slots: frozenset[str] | None
    tail: Tail | None = None
    # the slots filled from lists, each with its list: (slot, list); None when not known
    sources: Sources | None = None

    @staticmethod
    def of(clauses: Clauses, endings: Endings, words: Words, fragments: Clauses,
           slots: frozenset[str] | None, tail: Tail | None = None,
           sources: Sources | None = None) -> Needs:
        return Needs(frozenset().union(*(clause for clause in clauses if len(clause) == 1)),
                     tuple(clause for clause in clauses if len(clause) > 1), endings, words,
                     fragments, slots, tail, sources)


@dataclass(frozen=True, slots=True)
class Tail:
    """A template that ends in a list reference and then literal text only ("{name}
    <light>"): the text must end with a value of the list followed by one of those literal
    forms (``compact``), else the template cannot match."""

    list_name: str
    after: frozenset[str]


def compact(text: str) -> str:
    return text.casefold().translate(_COMPACT)


def block_slots(block: IntentData) -> frozenset[str]:
    """Slots every match of the block may have whatever its template: its fixed ``slots``
    and those ``requires_context`` copies from the context (``slot: true`` or a name)."""
    copied = {value["slot"] if isinstance(value["slot"], str) else key
              for key, value in block.requires_context.items()
              if isinstance(value, Mapping) and value.get("slot")}
    return frozenset(block.slots) | copied


def list_values(slot_list: SlotList, language: str,
                 ) -> tuple[tuple[str, ValueContext], ...] | None:
    """The list's values as hassil can match them (casefolded, with their context), or None
    when that cannot be told (a template value, a wildcard) and the list is not tested."""
    if isinstance(slot_list, RangeSlotList):
        words = _number_words(slot_list.words_language or language, slot_list.start,
                              slot_list.stop, slot_list.step, slot_list.fraction_type) \
            if slot_list.words else ()
        return tuple((spoken.casefold(), None) for spoken in words)
    if not isinstance(slot_list, TextSlotList):
        return None
    values = []
    for value in slot_list.values:
        if not isinstance(value.text_in, TextChunk):
            return None
        text = value.text_in.text.strip().casefold()
        if text:  # hassil never matches an empty value
            values.append((text, value.context))
    return tuple(values)


def words_in(text: str) -> list[str]:
    """The words as the vocabulary test compares them, in a text or a template chunk."""
    return text.casefold().translate(_TO_WORDS).split()


@cache
def _number_words(language: str, start: int, stop: int, step: int,
                  fraction_type: RangeFractionType | None) -> tuple[str, ...]:
    """The spoken forms hassil matches for a number range, built as hassil builds them; none
    where the language has no number words, as hassil then matches none."""
    try:
        engine = get_rbnf_engine(language)
        range_list = RangeSlotList(None, start, stop, step, fraction_type=fraction_type)
        return tuple({words for number in range_list.get_numbers()
                      for spoken in engine.format_number(number).text_by_ruleset.values()
                      for words in (spoken, spoken.translate(BREAK_WORDS_TABLE))})
    except ValueError:
        return ()


class TemplateAnalysis:
    """Works out what templates need, for blocks that share expansion rules and lists. Each
    rule's answer is kept: the same few rules recur in nearly every template."""

    def __init__(self, rules: Mapping[str, Sentence], testable: Set[str],
                 list_endings: Mapping[str, Endings], lists: Mapping[str, SlotList],
                 language: str) -> None:
        self._rules = rules
        self._testable = testable
        self._list_endings = list_endings
        self._lists = lists
        self._language = language
        self._list_words: dict[str, Words] = {}
        self._rule_lists: dict[str, set[frozenset[str]]] = {}
        self._rule_endings: dict[str, tuple[Endings, bool]] = {}
        self._rule_words: dict[str, Words] = {}
        self._rule_sources: dict[str, Sources | None] = {}
        self._list_sources: dict[str, Sources | None] = {}

    def needs(self, sentence: Sentence, fixed_slots: frozenset[str]) -> Needs:
        endings, may_be_empty = self._last_words(sentence.expression, 0)
        sources = self._sources(sentence.expression, 0)
        words = self._words(sentence.expression, 0)
        return Needs.of(frozenset(self._required_lists(sentence.expression, 0)),
                         None if may_be_empty else endings, words,
                         sentence.get_required_clauses(dict(self._rules)),
                         None if sources is None
                         else frozenset(slot for slot, _ in sources) | fixed_slots,
                         # a wildcard anywhere changes which skip words hassil drops
                         None if words is None else self._tail(sentence.expression),
                         # a fixed slot's list is ""
                         None if sources is None
                         else sources | {(slot, "") for slot in fixed_slots})

    def _tail(self, expression: Expression) -> Tail | None:
        """The template's tail: its last list, when only literal text follows it."""
        if not isinstance(expression, Sequence):
            return None
        after = frozenset({""})
        for item in reversed(expression.items):
            if isinstance(item, ListReference):
                slot_list = self._lists.get(item.list_name)
                if item.list_name not in self._testable or item.prefix or item.suffix \
                        or not isinstance(slot_list, TextSlotList):
                    return None
                return Tail(item.list_name, frozenset(map(compact, after)))
            said = self._literal_forms(item, 0)
            if said is None or len(said) * len(after) > _MAX_TAIL_FORMS:
                return None
            after = frozenset(first + rest for first in said for rest in after)
        return None

    def _literal_forms(self, expression: Expression, depth: int) -> frozenset[str] | None:
        """Every text a part with no list can match, or None (a list, a permutation, too
        many forms)."""
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expression, TextChunk):
            return frozenset({expression.text})
        if isinstance(expression, RuleReference):
            rule = self._rules.get(expression.rule_name)
            return None if rule is None else self._literal_forms(rule.expression, depth + 1)
        if isinstance(expression, Alternative):
            branches = [self._literal_forms(item, depth + 1) for item in expression.items]
            if None in branches:
                return None
            forms = frozenset().union(*branches) | ({""} if expression.is_optional else set())
            return forms if len(forms) <= _MAX_TAIL_FORMS else None
        if isinstance(expression, Sequence):
            forms: frozenset[str] = frozenset({""})
            for item in expression.items:
                said = self._literal_forms(item, depth + 1)
                if said is None or len(said) * len(forms) > _MAX_TAIL_FORMS:
                    return None
                forms = frozenset(first + rest for first in forms for rest in said)
            return forms
        return None  # a list or a permutation

    def _required_lists(self, expression: Expression, depth: int) -> set[frozenset[str]]:
        """Lists the template needs: at least one list of every clause must be in the text."""
        if depth > _MAX_DEPTH:
            return set()
        if isinstance(expression, ListReference):
            return {frozenset({expression.list_name})} \
                if expression.list_name in self._testable else set()
        if isinstance(expression, RuleReference):
            name = expression.rule_name
            if name not in self._rule_lists:
                rule = self._rules.get(name)
                self._rule_lists[name] = set() if rule is None \
                    else self._required_lists(rule.expression, depth + 1)
            return self._rule_lists[name]
        if isinstance(expression, Alternative):
            if expression.is_optional or not expression.items:
                return set()
            branches = [self._required_lists(item, depth + 1) for item in expression.items]
            if not all(branches):  # a branch that needs no list matches without one
                return set()
            # What every branch needs is needed; and one branch matches, so one list of one
            # branch's smallest clause is there.
            smallest = (min(branch, key=lambda clause: (len(clause), sorted(clause)))
                        for branch in branches)
            return set.intersection(*branches) | {frozenset().union(*smallest)}
        if isinstance(expression, Group):  # sequence or permutation: every item must match
            return set().union(*(self._required_lists(item, depth + 1)
                                 for item in expression.items))
        return set()  # literal text: hassil's own filter

    def _words(self, expression: Expression, depth: int) -> Words:
        """The words the expression can say, in pieces as the vocabulary test reads them."""
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expression, TextChunk):
            return frozenset(words_in(expression.text))
        if isinstance(expression, ListReference):
            name = expression.list_name
            if name not in self._list_words:
                self._list_words[name] = None  # a list that names itself may say anything
                self._list_words[name] = self._words_of_list(self._lists.get(name), depth)
            return self._list_words[name]
        if isinstance(expression, RuleReference):
            name = expression.rule_name
            if name not in self._rule_words:
                rule = self._rules.get(name)
                self._rule_words[name] = None if rule is None \
                    else self._words(rule.expression, depth + 1)
            return self._rule_words[name]
        if not isinstance(expression, Group):
            return None
        parts = [self._words(item, depth + 1) for item in expression.items]
        return None if None in parts else frozenset().union(*parts)


    def _sources(self, expression: Expression, depth: int) -> Sources | None:
        """The slots the expression may fill, each with the list that fills it (None: not
        known)."""
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expression, TextChunk):
            return frozenset()
        if isinstance(expression, ListReference):
            name = expression.list_name
            if name not in self._list_sources:  # a value may be a template with lists of its own
                self._list_sources[name] = None
                slot_list = self._lists.get(name)
                values = slot_list.values if isinstance(slot_list, TextSlotList) else ()
                parts = [self._sources(value.text_in, depth + 1) for value in values]
                self._list_sources[name] = None if None in parts \
                    else frozenset().union(*parts)
            inner = self._list_sources[name]
            return None if inner is None else inner | {(expression.slot_name, name)}
        if isinstance(expression, RuleReference):
            name = expression.rule_name
            if name not in self._rule_sources:
                rule = self._rules.get(name)
                self._rule_sources[name] = None if rule is None \
                    else self._sources(rule.expression, depth + 1)
            return self._rule_sources[name]
        if not isinstance(expression, Group):
            return None
        parts = [self._sources(item, depth + 1) for item in expression.items]
        return None if None in parts else frozenset().union(*parts)

    def _words_of_list(self, slot_list: SlotList | None, depth: int) -> Words:
        """What the list's values can say (``DIGITS`` for a range that takes digits)."""
        if isinstance(slot_list, RangeSlotList):
            words = {word for spoken in list_values(slot_list, self._language) or ()
                     for word in words_in(spoken[0])}
            return frozenset(words | {DIGITS} if slot_list.digits else words)
        if not isinstance(slot_list, TextSlotList):
            return None  # a wildcard
        parts = [self._words(value.text_in, depth + 1) for value in slot_list.values]
        return None if None in parts else frozenset().union(*parts)

    def _last_words(self, expression: Expression, depth: int) -> tuple[Endings, bool]:
        """The words the expression can end with (None: not known), and whether it can match
        no text at all, so that what comes before it may end the template."""
        if depth > _MAX_DEPTH:
            return None, True
        if isinstance(expression, TextChunk):
            words = expression.text.split()
            return (word_ending(words[-1]), False) if words else (frozenset(), True)
        if isinstance(expression, ListReference):
            return self._list_endings.get(expression.list_name), False
        if isinstance(expression, RuleReference):
            name = expression.rule_name
            if name not in self._rule_endings:
                rule = self._rules.get(name)
                self._rule_endings[name] = (None, True) if rule is None \
                    else self._last_words(rule.expression, depth + 1)
            return self._rule_endings[name]
        if not isinstance(expression, Group):
            return None, True
        parts = [self._last_words(item, depth + 1) for item in expression.items]
        if isinstance(expression, Sequence):
            # the last item ends it, or the one before where that matched nothing, and so on
            endings: Endings = frozenset()
            for item_endings, may_be_empty in reversed(parts):
                endings = union_endings([endings, item_endings])
                if not may_be_empty:
                    return endings, False
            return endings, True
        # alternative: any branch; permutation: any item may come last
        endings = union_endings([item_endings for item_endings, _ in parts])
        if isinstance(expression, Alternative):
            return endings, (expression.is_optional or not parts
                             or any(may_be_empty for _, may_be_empty in parts))
        return endings, all(may_be_empty for _, may_be_empty in parts)


def union_endings(endings: list[Endings]) -> Endings:
    return None if None in endings else frozenset().union(*endings)


def word_ending(word: str) -> Endings:
    """hassil strips punctuation from the ends of the text's words; a template word with some
    could end a text that does not show it, so it says nothing."""
    return None if _PUNCTUATION.intersection(word) else frozenset({word.casefold()})
