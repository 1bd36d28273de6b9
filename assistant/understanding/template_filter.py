"""Leave out the templates that cannot match an utterance, before hassil tries them.

hassil skips a template when a literal word it needs is missing from the text, but it knows
nothing of list slots: "[<set>] [<the>] {name} [to] {color}" has no required word, so it is
tried on every utterance, and trying one means walking every optional prefix. Two more tests,
each worked out once per template, rule templates out:

- the text lists it needs (in conjunctive normal form, like hassil's literal fragments) must
  each have a value in the text that the template's block accepts: a block that requires
  ``domain: media_player`` never matches the name of a light;
- a template must match the whole text, so the text must end with one of the words the
  template can end with ("... in {area}" cannot match "... the kitchen ceiling light").

Both are sound: a template is dropped only when it provably cannot match, so recognition
returns what it returned without the filter, only sooner. Templates kept depend only on which
lists and endings the text has, so the reduced intents are cached by that.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass
from functools import cache
from typing import Any

from hassil import Intents
from hassil.expression import (
    Alternative, Expression, Group, ListReference, RuleReference, Sentence, Sequence, TextChunk,
)
from hassil.intents import IntentData, RangeFractionType, RangeSlotList, SlotList, TextSlotList
from hassil.numbers import get_rbnf_engine
# how hassil's matcher reads "living-room" as "living room" when the plain text fails
from hassil.string_matcher import BREAK_WORDS_TABLE
from hassil.util import (
    PUNCTUATION_STR, check_excluded_context, check_required_context, normalize_for_matching,
    remove_skip_words,
)

# Rules nest only a few levels deep; past this a template is simply kept.
_MAX_DEPTH = 32
# Distinct combinations of lists and endings seen; each keeps a reduced copy of the intents.
_CACHE_SIZE = 256
_PUNCTUATION = frozenset(PUNCTUATION_STR)

_DIGIT = re.compile("[0-9]")  # what hassil's number patterns start from

Clauses = frozenset[frozenset[str]]
# The words a template can end with; None when that is not known (a number, a wildcard).
Endings = frozenset[str] | None
ValueContext = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Condition:
    """A block's ``requires_context`` and ``excludes_context``, which hassil also applies to
    every list value it tries: a device name of the wrong domain never matches there."""

    requires: dict[str, Any]
    excludes: dict[str, Any]

    def admits(self, context: ValueContext) -> bool:
        return (check_required_context(self.requires, context, allow_missing_keys=True)
                and check_excluded_context(self.excludes, context))


@dataclass(frozen=True, slots=True)
class _Needs:
    """What a template needs from a text to have a chance."""

    # lists that must each have a value in the text
    every_list: frozenset[str]
    # groups of lists of which one must have a value in the text
    one_list_of: tuple[frozenset[str], ...]
    endings: Endings

    @staticmethod
    def of(clauses: Clauses, endings: Endings) -> _Needs:
        return _Needs(frozenset().union(*(clause for clause in clauses if len(clause) == 1)),
                      tuple(clause for clause in clauses if len(clause) > 1), endings)

    def met_by(self, lists: frozenset[str], endings: frozenset[str]) -> bool:
        return (self.every_list <= lists
                and (not self.one_list_of
                     or all(not group.isdisjoint(lists) for group in self.one_list_of))
                and (self.endings is None or not self.endings.isdisjoint(endings)))


@dataclass(frozen=True, slots=True)
class _Value:
    list_name: str
    text: str  # casefolded
    context: ValueContext


class TemplateFilter:
    """Per utterance, the intents reduced to the templates that can match it."""

    def __init__(self, intents: Intents, slot_lists: Mapping[str, SlotList],
                 language: str) -> None:
        self._intents = intents
        lists = {**intents.slot_lists, **slot_lists}
        values = {name: found for name, slot_list in lists.items()
                  if (found := _list_values(slot_list, language)) is not None}
        # first word -> the values starting with it, across all lists that can be tested
        self._by_first_word: dict[str, list[_Value]] = defaultdict(list)
        for name, texts in values.items():
            for text, context in texts:
                self._by_first_word[text.split()[0]].append(_Value(name, text, context))
        self._number_lists = frozenset(name for name, slot_list in lists.items()
                                       if isinstance(slot_list, RangeSlotList)
                                       and slot_list.digits)
        # the last words of a text list's values (a number may end in digits or words)
        text_list_endings = {name: _union([_ending(text.split()[-1]) for text, _ in texts])
                             for name, texts in values.items()
                             if isinstance(lists[name], TextSlotList)}
        shared = _Analysis(intents.expansion_rules, values.keys(), text_list_endings)
        self._conditions: list[_Condition] = []
        # id(block) -> (position of its condition, what each of its templates needs)
        self._blocks: dict[int, tuple[int, list[_Needs]]] = {}
        for intent in intents.intents.values():
            for block in intent.data:
                analysis = shared
                if block.expansion_rules or block.slot_lists:
                    # a block's own lists shadow the shared ones and are not tested
                    testable = values.keys() - block.slot_lists.keys()
                    analysis = _Analysis(
                        {**intents.expansion_rules, **block.expansion_rules}, testable,
                        {name: text_list_endings[name] for name in testable
                         if name in text_list_endings})
                self._blocks[id(block)] = (self._condition_of(block),
                                           [analysis.needs(sentence)
                                            for sentence in block.sentences])
        self._endings = frozenset().union(*(needs.endings
                                            for _, templates in self._blocks.values()
                                            for needs in templates if needs.endings))
        self._reduced: dict[tuple[tuple[frozenset[str], ...], frozenset[str]], Intents] = {}

    def _condition_of(self, block: IntentData) -> int:
        condition = _Condition(block.requires_context, block.excludes_context)
        if condition not in self._conditions:
            self._conditions.append(condition)
        return self._conditions.index(condition)

    def intents_for(self, text: str) -> Intents:
        if self._intents.settings.ignore_whitespace:  # whitespace-free scripts: keep everything
            return self._intents
        forms = self._forms(text)
        haystack = "\n".join(forms)
        found: dict[str, list[ValueContext]] = defaultdict(list)
        if _DIGIT.search(haystack):
            for name in self._number_lists:
                found[name].append(None)
        for first, values in self._by_first_word.items():
            if first in haystack:
                for value in values:
                    if value.text in haystack:
                        found[value.list_name].append(value.context)
        # per condition, the lists with a value in the text that blocks under it accept
        present = tuple(frozenset(name for name, contexts in found.items()
                                  if any(map(condition.admits, contexts)))
                        for condition in self._conditions)
        endings = frozenset(form[start:] for form in forms for start in range(len(form))
                            ) & self._endings
        key = (present, endings)
        reduced = self._reduced.get(key)
        if reduced is None:
            if len(self._reduced) >= _CACHE_SIZE:
                self._reduced.clear()
            reduced = self._reduced[key] = self._keep(present, endings)
        return reduced

    def _forms(self, text: str) -> tuple[str, ...]:
        """Every form of the text that hassil matches templates against, casefolded."""
        normalized = normalize_for_matching(text).text
        without_skip_words = remove_skip_words(normalized, self._intents.skip_words, False)
        forms = {form.strip().casefold() for form in (normalized, without_skip_words)}
        return tuple(forms | {form.translate(BREAK_WORDS_TABLE) for form in forms})

    def _keep(self, present: tuple[frozenset[str], ...], endings: frozenset[str]) -> Intents:
        intents = {}
        for name, intent in self._intents.intents.items():
            blocks = []
            for block in intent.data:
                condition, templates = self._blocks[id(block)]
                lists = present[condition]
                sentences = [sentence for sentence, needs
                             in zip(block.sentences, templates, strict=True)
                             if needs.met_by(lists, endings)]
                if len(sentences) == len(block.sentences):
                    blocks.append(block)
                elif sentences:
                    blocks.append(_with_sentences(block, sentences))
            if blocks:
                intents[name] = copy.copy(intent)
                intents[name].data = blocks
        reduced = copy.copy(self._intents)
        reduced.intents = intents
        return reduced


def _with_sentences(block: IntentData, sentences: list[Sentence]) -> IntentData:
    reduced = copy.copy(block)
    vars(reduced)["sentences"] = sentences  # IntentData.sentences is a cached_property
    return reduced


def _list_values(slot_list: SlotList, language: str,
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


class _Analysis:
    """Works out what templates need, for blocks that share expansion rules and lists. Each
    rule's answer is kept: the same few rules recur in nearly every template."""

    def __init__(self, rules: Mapping[str, Sentence], testable: Set[str],
                 list_endings: Mapping[str, Endings]) -> None:
        self._rules = rules
        self._testable = testable
        self._list_endings = list_endings
        self._rule_lists: dict[str, set[frozenset[str]]] = {}
        self._rule_endings: dict[str, tuple[Endings, bool]] = {}

    def needs(self, sentence: Sentence) -> _Needs:
        endings, may_be_empty = self._last_words(sentence.expression, 0)
        return _Needs.of(frozenset(self._required_lists(sentence.expression, 0)),
                         None if may_be_empty else endings)

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

    def _last_words(self, expression: Expression, depth: int) -> tuple[Endings, bool]:
        """The words the expression can end with (None: not known), and whether it can match
        no text at all, so that what comes before it may end the template."""
        if depth > _MAX_DEPTH:
            return None, True
        if isinstance(expression, TextChunk):
            words = expression.text.split()
            return (_ending(words[-1]), False) if words else (frozenset(), True)
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
                endings = _union([endings, item_endings])
                if not may_be_empty:
                    return endings, False
            return endings, True
        # alternative: any branch; permutation: any item may come last
        endings = _union([item_endings for item_endings, _ in parts])
        if isinstance(expression, Alternative):
            return endings, (expression.is_optional or not parts
                             or any(may_be_empty for _, may_be_empty in parts))
        return endings, all(may_be_empty for _, may_be_empty in parts)


def _union(endings: list[Endings]) -> Endings:
    return None if None in endings else frozenset().union(*endings)


def _ending(word: str) -> Endings:
    """hassil strips punctuation from the ends of the text's words; a template word with some
    could end a text that does not show it, so it says nothing."""
    return None if _PUNCTUATION.intersection(word) else frozenset({word.casefold()})
