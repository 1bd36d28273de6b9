"""Leave out the templates that cannot match an utterance, before hassil tries them.

hassil skips a template when a literal word it needs is missing from the text, but it knows
nothing of list slots nor of words the text has and the template cannot say: "[<set>] [<the>]
{name} [to] {color}" has no required word, so it is tried on every utterance, and trying one
means walking every optional prefix. Four more tests, each worked out once per template,
rule templates out:

- the text lists it needs (in conjunctive normal form, like hassil's literal fragments) must
  each have a value in the text that the template's block accepts: a block that requires
  ``domain: media_player`` never matches the name of a light;
- a template must match the whole text, so the text must end with one of the words the
  template can end with ("... in {area}" cannot match "... the kitchen ceiling light");
- for the same reason every word of the text must be made of the template's own words and
  its lists' words ("<turn> on [the] {area} <light>" cannot match "turn on the kitchen
  ceiling light": no area and no literal says "ceiling"). hassil matches text piece by piece,
  each piece a template chunk or a list value, so a word of the text is a run of the words of
  those pieces ("fan" and "[s]" make "fans"), once punctuation is gone and "-"/"_" are spaces;
- two lists it needs take two pieces of the text, so values of both must be found apart
  ("{area} [the] {name}" cannot match "turn on the kitchen light" when only "kitchen" is a
  room and "kitchen light" the name).

Last, hassil's own literal test runs here too, as hassil sets up every block it is given
before it tests any template. All are sound: a template is dropped only when it provably
cannot match, so recognition returns what it returned without the filter, only sooner. Each
test is a bit set over all templates (worked out in ``template_needs``); the templates kept
are their intersection, and the reduced intents are cached by it.

``recognize_best`` also tries the templates that can fill the best slot ("name") first: a
match with it outranks any without, so when one comes the others need not be tried.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents, RecognizeResult, recognize_best
from hassil.expression import Sentence
from hassil.intents import IntentData, RangeSlotList, SlotList, TextSlotList
# how hassil's matcher reads "living-room" as "living room" when the plain text fails
from hassil.string_matcher import BREAK_WORDS_TABLE
from hassil.util import (
    WHITESPACE, check_excluded_context, check_required_context, normalize_for_matching,
    remove_skip_words,
)

from assistant.understanding.template_needs import (
    DIGITS, Needs, Tail, TemplateAnalysis, ValueContext, block_slots, compact, list_values,
    union_endings, word_ending, words_in,
)

# Distinct sets of templates kept, and distinct words seen; each cache is emptied when full.
_CACHE_SIZE = 256
_WORD_CACHE_SIZE = 8192

_DIGIT = re.compile("[0-9]")  # what hassil's number patterns start from


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
class _Value:
    list_name: str
    text: str  # casefolded
    context: ValueContext
    context_key: str  # equal contexts, equal keys: each is tested once per text


@dataclass(frozen=True, slots=True)
class _Block:
    block: IntentData
    first: int  # the bit of its first template
    mask: int  # the bits of all its templates


@dataclass(frozen=True, slots=True)
class _Found:
    """What the filter found in a text: the templates kept, the forms of the text (``said``:
    as hassil matches them; ``forms``: also with "-" and "_" read as spaces) and the values
    found of the lists looked for where they are."""

    kept: int
    said: tuple[str, ...]
    forms: tuple[str, ...]
    placed: list[_Value]
    # worked out when first needed: per value found (by id), the text after it to the end
    # of a form, compacted; and where the values found lie (TemplateFilter._placed_spans)
    after: dict[int, frozenset[str]] = field(default_factory=dict)
    spans: defaultdict[str, list[_Span]] = field(default_factory=lambda: defaultdict(list))

    def followed_by(self, value: _Value, tail: Tail) -> bool:
        """Whether the value is followed by the tail's text to the end of one of the forms."""
        after = self.after.get(id(value))
        if after is None:
            after = self.after[id(value)] = frozenset(
                compact(form[start + len(value.text):])
                for form in self.forms for start in _starts(form, value.text))
        return not after.isdisjoint(tail.after)


# Where a value lies in a text: (form, start, end, the conditions that accept it, the value).
_Span = tuple[int, int, int, int, _Value]
# What bounds a template's slot text: (its list, its tail, lists apart from it, condition bit).
_Bound = tuple[str, Tail | None, tuple[str, ...], int]


class _Bits:
    """Bit sets over all templates (bit i: the i-th template in the intents' order), one per
    thing a text may have or lack."""

    def __init__(self, needs: list[tuple[int, Needs]]) -> None:
        self.all = (1 << len(needs)) - 1
        # (condition, list) -> templates under that condition needing the list; and the same
        # for groups of lists of which one is needed
        by_list: dict[tuple[int, str], int] = defaultdict(int)
        by_group: dict[tuple[int, frozenset[str]], int] = defaultdict(int)
        self.by_ending: dict[str, int] = defaultdict(int)
        self.any_ending = 0
        self.by_word: dict[str, int] = defaultdict(int)
        self.any_words = 0
        self._fragments = [template.fragments for _, template in needs]
        self._no_fragments = 0
        for bit, (condition, template) in enumerate(needs):
            mask = 1 << bit
            if not template.fragments:
                self._no_fragments |= mask
            for name in template.every_list:
                by_list[(condition, name)] |= mask
            for group in template.one_list_of:
                by_group[(condition, group)] |= mask
            if template.endings is None:
                self.any_ending |= mask
            else:
                for ending in template.endings:
                    self.by_ending[ending] |= mask
            if template.words is None:
                self.any_words |= mask
            else:
                for word in template.words:
                    self.by_word[word] |= mask
        self._by_list = [(1 << condition, name, mask)
                         for (condition, name), mask in by_list.items()]
        self._by_group = [(1 << condition, group, mask)
                          for (condition, group), mask in by_group.items()]
        self._word_masks: dict[str, int] = {}

    def lacking(self, admitted: Mapping[str, int]) -> int:
        """Templates needing a list that no value in the text stands for, given the lists
        found and, for each, the conditions (bits) of blocks that accept one of its values."""
        lacking = 0
        for condition, name, mask in self._by_list:
            if not admitted.get(name, 0) & condition:
                lacking |= mask
        for condition, group, mask in self._by_group:
            if not any(admitted.get(name, 0) & condition for name in group):
                lacking |= mask
        return lacking

    def writing(self, kept: int, haystack: str) -> int:
        """Of the templates kept, those with the literal fragments hassil looks for first.
        hassil tests them again, but only on the few left: it sets every block it is given up
        for matching before it looks at any fragment."""
        writing = kept & self._no_fragments
        unknown = kept & ~self._no_fragments
        clauses: dict[frozenset[str], bool] = {}
        while unknown:
            bit = unknown & -unknown
            unknown ^= bit
            for clause in self._fragments[bit.bit_length() - 1]:
                found = clauses.get(clause)
                if found is None:
                    found = clauses[clause] = any(fragment in haystack for fragment in clause)
                if not found:
                    break
            else:
                writing |= bit
        return writing

    def ending_in(self, endings: Set[str]) -> int:
        mask = self.any_ending
        for ending in endings:
            mask |= self.by_ending.get(ending, 0)
        return mask

    def saying(self, words: tuple[str, ...]) -> int:
        """Templates that can say every one of the words."""
        mask = self.all
        for word in words:
            mask &= self._word_mask(word)
        return mask

    def _word_mask(self, word: str) -> int:
        mask = self._word_masks.get(word)
        if mask is None:
            if len(self._word_masks) >= _WORD_CACHE_SIZE:
                self._word_masks.clear()
            mask = self._word_masks[word] = self._runs_making(word) | self.any_words
        return mask

    def _runs_making(self, word: str) -> int:
        """Templates with words that, one after another, make the word: ``reach[i]`` holds
        those that can make its first i characters."""
        reach = [self.all] + [0] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(end):
                if reach[start]:
                    part = word[start:end]
                    mask = self.by_word.get(part, 0)
                    if part.isascii() and part.isdigit():
                        mask |= self.by_word.get(DIGITS, 0)
                    reach[end] |= reach[start] & mask
        return reach[-1]


class TemplateFilter:
    """Per utterance, the intents reduced to the templates that can match it."""

    def __init__(self, intents: Intents, slot_lists: Mapping[str, SlotList],
                 language: str) -> None:
        self._intents = intents
        self._skip_words = tuple(word.strip().casefold() for word in intents.skip_words
                                 if word.strip())
        lists = {**intents.slot_lists, **slot_lists}
        values = {name: found for name, slot_list in lists.items()
                  if (found := list_values(slot_list, language)) is not None}
        # first word -> the values starting with it, across all lists that can be tested
        self._by_first_word: dict[str, list[_Value]] = defaultdict(list)
        for name, texts in values.items():
            for text, context in texts:
                self._by_first_word[text.split()[0]].append(
                    _Value(name, text, context, repr(context)))
        self._number_lists = frozenset(name for name, slot_list in lists.items()
                                       if isinstance(slot_list, RangeSlotList)
                                       and slot_list.digits)
        # the last words of a text list's values (a number may end in digits or words)
        text_list_endings = {
            name: union_endings([word_ending(text.split()[-1]) for text, _ in texts])
            for name, texts in values.items() if isinstance(lists[name], TextSlotList)}
        shared = TemplateAnalysis(intents.expansion_rules, values.keys(), text_list_endings,
                                  lists, language)
        self._conditions: list[_Condition] = []
        needs: list[tuple[int, Needs]] = []
        # per intent, its blocks with the bits of their templates
        self._layout: list[tuple[str, int, list[_Block]]] = []
        for name, intent in intents.intents.items():
            blocks = []
            for block in intent.data:
                analysis = shared
                if block.expansion_rules or block.slot_lists:
                    # a block's own lists shadow the shared ones and are not tested
                    testable = values.keys() - block.slot_lists.keys()
                    analysis = TemplateAnalysis(
                        {**intents.expansion_rules, **block.expansion_rules}, testable,
                        {list_name: text_list_endings[list_name] for list_name in testable
                         if list_name in text_list_endings},
                        {**lists, **block.slot_lists}, language)
                condition = self._condition_of(block)
                first = len(needs)
                needs.extend((condition, analysis.needs(sentence, block_slots(block)))
                             for sentence in block.sentences)
                blocks.append(_Block(block, first, ((1 << len(needs)) - 1) ^ ((1 << first) - 1)))
            self._layout.append((name, sum(block.mask for block in blocks), blocks))
        self._bits = _Bits(needs)
        # (condition, list, list) -> templates needing values of both lists, for lists whose
        # values can be found in the text where they are
        pairs: dict[tuple[int, str, str], int] = defaultdict(int)
        placed = {name for name in values if isinstance(lists[name], TextSlotList)}
        for bit, (condition, template) in enumerate(needs):
            names = sorted(template.every_list & placed)
            for index, first in enumerate(names):
                for second in names[index + 1:]:
                    pairs[(condition, first, second)] |= 1 << bit
        self._pairs = [(1 << condition, first, second, mask)
                       for (condition, first, second), mask in pairs.items()]
        # per template, its pairs of lists and its tail
        self._pairs_of: list[list[tuple[str, str]]] = [[] for _ in needs]
        for _, first, second, mask in self._pairs:
            while mask:
                low = mask & -mask
                mask ^= low
                self._pairs_of[low.bit_length() - 1].append((first, second))
        self._tail_of = [template.tail for _, template in needs]
        self._bound_by_template: dict[tuple[int, str], _Bound | None] = {}
        # tail -> the templates that end with it
        tails: dict[Tail, int] = defaultdict(int)
        for bit, (_, template) in enumerate(needs):
            if template.tail is not None:
                tails[template.tail] |= 1 << bit
        self._tails = list(tails.items())
        # the lists whose values are looked for where they are in the text
        self._placed_lists = frozenset(
            [name for _, first, second, _ in self._pairs for name in (first, second)]
            + [tail.list_name for tail in tails])
        # per template, the slots a match of it may fill (None: any)
        self._slots = [template.slots for _, template in needs]
        self._sources = [template.sources for _, template in needs]
        self._condition_bits = [1 << condition for condition, _ in needs]
        self._filling_by_slot: dict[str, int] = {}
        self._endings = frozenset().union(*(template.endings for _, template in needs
                                            if template.endings))
        # a value's context -> the conditions (bits) that accept it
        self._admitting: dict[str, int] = {}
        self._lacking: dict[frozenset[tuple[str, int]], int] = {}
        self._reduced: dict[int, Intents] = {}

    def _condition_of(self, block: IntentData) -> int:
        condition = _Condition(block.requires_context, block.excludes_context)
        if condition not in self._conditions:
            self._conditions.append(condition)
        return self._conditions.index(condition)

    def intents_for(self, text: str) -> Intents:
        return self._intents_of(self._found(text).kept)

    def recognize_best(self, text: str, *, best_slot_name: str,
                       slot_lists: dict[str, SlotList], intent_context: dict[str, Any],
                       language: str) -> RecognizeResult | None:
        """hassil's ``recognize_best`` over the templates that can match, in as few of them as
        its ranking allows. A match with ``best_slot_name`` outranks every match without it,
        and of those the longest slot text wins. So of the templates that can fill the slot,
        those that can make the longest slot text here go first (where the list's values lie
        bounds the others: a room before the name, or a word after it, leaves them less).
        When their best match's slot is longer than any other can make, it is hassil's
        answer over all. Otherwise all that can fill the slot are tried, then all."""
        found = self._found(text)
        kept = found.kept
        if not kept:  # hassil would set up the text for matching, then try nothing
            return None
        options: dict[str, Any] = {"slot_lists": slot_lists, "intent_context": intent_context,
                                   "language": language, "best_slot_name": best_slot_name}
        filling = kept & self._filling(best_slot_name)
        bounds = self._bounds(filling, best_slot_name, found)
        longest = max(bounds.values(), default=-1)
        first = filling & ~sum(bit for bit, bound in bounds.items() if bound < longest)
        if first != filling:
            best = recognize_best(text, self._intents_of(first), **options)
            if best is None:  # those templates match nothing here: leave them out below
                kept &= ~first
                filling &= ~first
            elif _slot_length(best, best_slot_name) > max(
                    bound for bound in bounds.values() if bound < longest):
                return best
        if filling and filling != kept:
            best = recognize_best(text, self._intents_of(filling), **options)
            if _slot_length(best, best_slot_name) >= 0:
                return best
        return recognize_best(text, self._intents_of(kept), **options)

    def _bounds(self, filling: int, slot_name: str, found: _Found) -> dict[int, int]:
        """Of the templates filling the slot, those whose slot text is bounded by where the
        list's values lie in the text (they need a value of another list apart from it, or
        end in literal text after it), each (its bit) with the longest slot text it can
        make."""
        bounds: dict[int, int] = {}
        if not found.forms:  # a whitespace-free script: no value was looked for, none bounds
            return bounds
        longest: dict[_Bound, int] = {}  # templates bounded alike share the work
        unknown = filling
        while unknown:
            bit = unknown & -unknown
            unknown ^= bit
            bound = self._bound_of(bit.bit_length() - 1, slot_name)
            if bound is None:
                continue
            length = longest.get(bound)
            if length is None:
                list_name, tail, others, condition = bound
                spans = self._placed_spans(found) if others else {}
                lengths = [len(value.text) for value in found.placed
                           if value.list_name == list_name
                           and self._admitting_context(value.context_key, value.context)
                           & condition
                           and (tail is None or found.followed_by(value, tail))
                           and all(any(_apart(span, other_span, condition)
                                       for span in spans[list_name] if span[4] is value
                                       for other_span in spans[other])
                                   for other in others)]
                # hassil's slot text may keep the space on either side of the value
                length = longest[bound] = max(lengths, default=-3) + 2
            bounds[bit] = length
        return bounds

    def _bound_of(self, index: int, slot_name: str) -> _Bound | None:
        """What bounds the slot's text in the template: the one list that fills it, the
        template's tail after it, the other lists whose values must lie apart from it, and
        its block's condition; None when nothing does."""
        key = (index, slot_name)
        if key in self._bound_by_template:
            return self._bound_by_template[key]
        sources = self._sources[index]
        lists = {name for slot, name in sources if slot == slot_name} if sources else ()
        bound = None
        if len(lists) == 1:
            (list_name,) = lists
            tail = self._tail_of[index]
            tail = tail if tail is not None and tail.list_name == list_name else None
            others = tuple(first if second == list_name else second
                           for first, second in self._pairs_of[index]
                           if list_name in (first, second))
            if tail is not None or others:
                bound = (list_name, tail, others, self._condition_bits[index])
        self._bound_by_template[key] = bound
        return bound

    def _found(self, text: str) -> _Found:
        if self._intents.settings.ignore_whitespace:  # whitespace-free scripts: keep everything
            return _Found(self._bits.all, (), (), [])
        said = self._forms(text)
        forms = tuple(set(said) | {form.translate(BREAK_WORDS_TABLE) for form in said})
        haystack = "\n".join(forms)
        admitted, placed = self._admitted(haystack)
        kept = self._lacking_none(admitted) & self._saying(forms) & self._bits.ending_in(
            frozenset(form[start:] for form in forms for start in range(len(form)))
            & self._endings)
        kept = self._bits.writing(kept, haystack)  # the cheaper test first, on more templates
        found = _Found(kept, said, forms, placed)
        kept &= ~self._crowded(found) & ~self._untailed(found)
        return _Found(kept, said, forms, placed, found.after, found.spans)

    def _filling(self, slot_name: str) -> int:
        """Templates that may give a match a value for the slot."""
        filling = self._filling_by_slot.get(slot_name)
        if filling is None:
            filling = self._filling_by_slot[slot_name] = sum(
                1 << bit for bit, slots in enumerate(self._slots)
                if slots is None or slot_name in slots)
        return filling

    def _intents_of(self, kept: int) -> Intents:
        if kept == self._bits.all:
            return self._intents
        reduced = self._reduced.get(kept)
        if reduced is None:
            if len(self._reduced) >= _CACHE_SIZE:
                self._reduced.clear()
            reduced = self._reduced[kept] = self._keep(kept)
        return reduced

    def _forms(self, text: str) -> tuple[str, ...]:
        """The forms of the text that hassil matches templates against, casefolded: with and
        without skip words (hassil also reads "-" and "_" in them as spaces)."""
        normalized = normalize_for_matching(text).text
        folded = normalized.casefold()
        # hassil drops skip words case-insensitively, so one not in the folded text is not
        # there; what is left is the text with its spaces collapsed
        without_skip_words = remove_skip_words(normalized, self._intents.skip_words, False) \
            if any(word in folded for word in self._skip_words) \
            else WHITESPACE.sub(" ", normalized).strip()
        return tuple({form.strip().casefold() for form in (normalized, without_skip_words)})

    def _admitted(self, haystack: str) -> tuple[dict[str, int], list[_Value]]:
        """The lists with a value in the text, each with the conditions (bits) of the blocks
        that accept one of those values; and the values found of lists that are looked for
        where they are (lists needed in pairs, and tails)."""
        admitted: dict[str, int] = defaultdict(int)
        placed: list[_Value] = []
        if _DIGIT.search(haystack):
            for name in self._number_lists:
                admitted[name] |= self._admitting_context(repr(None), None)
        for first, values in self._by_first_word.items():
            if first in haystack:
                for value in values:
                    if value.text in haystack:
                        admitted[value.list_name] |= self._admitting_context(
                            value.context_key, value.context)
                        if value.list_name in self._placed_lists:
                            placed.append(value)
        return admitted, placed

    def _crowded(self, found: _Found) -> int:
        """Of the templates kept, those needing values of two lists (a room and a name) where
        no value of one lies apart from a value of the other: each list reference takes its
        own piece of the text."""
        pairs = [pair for pair in self._pairs if pair[3] & found.kept]
        if not pairs:
            return 0
        spans = self._placed_spans(found)
        crowded = 0
        for condition, first, second, mask in pairs:
            if not any(_apart(span, other, condition)
                       for span in spans[first] for other in spans[second]):
                crowded |= mask
        return crowded

    def _placed_spans(self, found: _Found) -> dict[str, list[_Span]]:
        """Where the values found of the lists looked for where they are lie, per list (once
        per text). Places are compared within one form; "-" read as a space keeps them."""
        spans = found.spans
        if spans or not found.placed:
            return spans
        for index, form in enumerate(found.said):
            for text in {form, form.translate(BREAK_WORDS_TABLE)}:
                for value in found.placed:
                    conditions = self._admitting_context(value.context_key, value.context)
                    spans[value.list_name].extend(
                        (index, start, start + len(value.text), conditions, value)
                        for start in _starts(text, value.text))
        return spans

    def _untailed(self, found: _Found) -> int:
        """Of the templates kept, those ending in a list and literal text ("{name} <light>")
        where no value of the list is followed by that text to the end of a form: "turn on
        the office spotlight" has no name before "light"."""
        untailed = 0
        for tail, mask in self._tails:
            if mask & found.kept and not any(found.followed_by(value, tail)
                                             for value in found.placed
                                             if value.list_name == tail.list_name):
                untailed |= mask
        return untailed

    def _admitting_context(self, key: str, context: ValueContext) -> int:
        conditions = self._admitting.get(key)
        if conditions is None:
            conditions = self._admitting[key] = sum(
                1 << index for index, condition in enumerate(self._conditions)
                if condition.admits(context))
        return conditions

    def _lacking_none(self, admitted: dict[str, int]) -> int:
        """Templates whose every needed list has a value in the text that their block
        accepts."""
        key = frozenset(admitted.items())
        kept = self._lacking.get(key)
        if kept is None:
            if len(self._lacking) >= _CACHE_SIZE:
                self._lacking.clear()
            kept = self._lacking[key] = self._bits.all & ~self._bits.lacking(admitted)
        return kept

    def _saying(self, forms: tuple[str, ...]) -> int:
        """Templates that can say every word of one of the forms (hassil tries each)."""
        mask = 0
        for words in {tuple(words_in(form)) for form in forms}:
            mask |= self._bits.saying(words)
        return mask

    def _keep(self, kept: int) -> Intents:
        intents = {}
        for name, intent_mask, blocks in self._layout:
            if not kept & intent_mask:
                continue
            reduced_blocks = []
            for entry in blocks:
                bits = kept & entry.mask
                if bits == entry.mask:
                    reduced_blocks.append(entry.block)
                elif bits:
                    reduced_blocks.append(_with_sentences(
                        entry.block, [sentence for offset, sentence
                                      in enumerate(entry.block.sentences)
                                      if bits >> (entry.first + offset) & 1]))
            intents[name] = copy.copy(self._intents.intents[name])
            intents[name].data = reduced_blocks
        reduced = copy.copy(self._intents)
        reduced.intents = intents
        return reduced


def _apart(span: _Span, other: _Span, condition: int) -> bool:
    """Whether two values lie apart in the same form, both accepted under the condition."""
    form, start, end, conditions, _ = span
    other_form, other_start, other_end, other_conditions, _ = other
    return (form == other_form and (end <= other_start or other_end <= start)
            and bool(conditions & other_conditions & condition))


def _slot_length(result: RecognizeResult | None, slot_name: str) -> int:
    """How hassil ranks a match by its slot: the length of its text; -1 without one."""
    slot = result.entities.get(slot_name) if result is not None else None
    if slot is None or slot.is_wildcard:
        return -1
    return len(slot.text) if isinstance(slot.value, str) else 0


def _starts(text: str, part: str) -> list[int]:
    starts, start = [], text.find(part)
    while start >= 0:
        starts.append(start)
        start = text.find(part, start + 1)
    return starts


def _with_sentences(block: IntentData, sentences: list[Sentence]) -> IntentData:
    reduced = copy.copy(block)
    vars(reduced)["sentences"] = sentences  # IntentData.sentences is a cached_property
    return reduced
