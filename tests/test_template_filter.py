"""The template filter drops only templates that cannot match: hassil answers as without it."""

import random
from typing import Any

from hassil import Intents, RecognizeResult, recognize_best
from hassil.expression import (
    Alternative, Expression, ListReference, Permutation, RuleReference, Sentence, Sequence,
    TextChunk,
)
from hassil.intents import RangeSlotList, SlotList, TextSlotList

from assistant.understanding.fastpath import FastPath
from assistant.registry import Area, DeviceRegistry, Entity, Floor


def small_home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    registry.set_floor(Floor(id="ground", name="Ground Floor", aliases=("downstairs",)))
    for area_id, name in [("kitchen", "Kitchen"), ("den", "Den"), ("porch", "Front Porch")]:
        registry.set_area(Area(id=area_id, name=name, floor="ground"))
    for entity_id, name, area, device_class in [
        ("light.kitchen_light", "Kitchen Light", "kitchen", None),
        ("light.den_spot", "Spot-Light", "den", None),
        ("media_player.den_tv", "Den TV", "den", "tv"),
        ("cover.porch_blind", "Porch Blind", "porch", "blind"),
        ("climate.heat_pump", "Heat Pump", "den", None),
        ("fan.kitchen_fan", "Kitchen Fan", "kitchen", None),
        ("vacuum.robo", "Robo", "den", None),
        ("sensor.porch_temperature", "Porch Temperature", "porch", "temperature"),
    ]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, device_class=device_class, state="off"))
    return registry


def _sample(expression: Expression, rules: dict[str, Sentence], lists: dict[str, SlotList],
            rng: random.Random) -> str:
    """One random sentence the template can say."""
    if isinstance(expression, TextChunk):
        return expression.text
    if isinstance(expression, Alternative):
        return _sample(rng.choice(expression.items), rules, lists, rng) \
            if expression.items else ""
    if isinstance(expression, Permutation):
        items = list(expression.items)
        rng.shuffle(items)
        return " ".join(_sample(item, rules, lists, rng) for item in items)
    if isinstance(expression, Sequence):
        return "".join(_sample(item, rules, lists, rng) for item in expression.items)
    if isinstance(expression, RuleReference):
        return _sample(rules[expression.rule_name].expression, rules, lists, rng)
    if isinstance(expression, ListReference):
        slot_list = lists.get(expression.list_name)
        if isinstance(slot_list, TextSlotList) and slot_list.values:
            return _sample(rng.choice(slot_list.values).text_in, rules, lists, rng)
        if isinstance(slot_list, RangeSlotList):
            return rng.choice([str(rng.randint(slot_list.start, slot_list.stop)), "twenty",
                               "fifty five"])
        return "something"
    return ""


def _nearly(text: str, rng: random.Random) -> str:
    """The sentence slightly wrong: a word lost, added or moved, or an odd ending."""
    words = text.split() or [""]
    change = rng.randrange(5)
    if change == 0 and len(words) > 1:
        del words[rng.randrange(len(words))]
    elif change == 1:
        words.insert(rng.randrange(len(words) + 1),
                     rng.choice(["please", "the", "light", "kitchen", "on", "to", "for me"]))
    elif change == 2 and len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    elif change == 3:
        words[-1] += rng.choice(["s", "?", "-ish"])
    return " ".join(words)


def _outcome(result: RecognizeResult | None) -> Any:
    if result is None:
        return None
    return (result.intent.name, result.text_chunks_matched, repr(result.context),
            sorted((name, repr(e.value), e.text, e.text_span)
                   for name, e in result.entities.items()))


def test_recognition_is_the_same_with_and_without_the_filter() -> None:
    registry = small_home()
    fast = FastPath(registry)
    fast.understand("hello")  # builds the slot lists and the filter
    intents: Intents = fast._intents
    lists = {**intents.slot_lists, **fast.lists.slots}
    templates = [(block, sentence) for intent in intents.intents.values()
                 for block in intent.data for sentence in block.sentences]
    rng = random.Random(7)
    matched = 0
    for _ in range(400):
        block, sentence = rng.choice(templates)
        text = " ".join(_sample(sentence.expression,
                                {**intents.expansion_rules, **block.expansion_rules},
                                {**lists, **block.slot_lists}, rng).split())
        if rng.random() < 0.4:
            text = _nearly(text, rng)
        area = rng.choice([None, "kitchen", "den"])
        context = {"area": {"value": area, "text": area}} if area else {}
        options: dict[str, Any] = {"slot_lists": fast.lists.slots, "intent_context": context,
                                   "language": "en", "best_slot_name": "name"}
        filtered = recognize_best(text, fast.lists.template_filter.intents_for(text), **options)
        unfiltered = recognize_best(text, intents, **options)
        assert _outcome(filtered) == _outcome(unfiltered), text
        # and with the templates that can fill "name" tried first
        assert _outcome(fast.lists.template_filter.recognize_best(text, **options)) \
            == _outcome(unfiltered), text
        matched += unfiltered is not None
    assert matched > 150  # most samples are real sentences, so the comparison means something


def _templates(intents: Intents) -> set[str]:
    return {sentence.text or "" for intent in intents.intents.values()
            for block in intent.data for sentence in block.sentences}


def test_what_the_filter_leaves_out() -> None:
    fast = FastPath(small_home())
    fast.understand("hello")
    everything = _templates(fast._intents)

    def kept(text: str) -> set[str]:
        return _templates(fast.lists.template_filter.intents_for(text))

    name_only = "<turn> on [<the>] {name}"
    name_in_area = "<turn> on [<the>] {name} <in> [<the>] {area}"
    name_and_colour = "[<set>] [<the>] {name} [color] [to] {color}"
    name_and_number = "[<numeric_value_set>] [<the>] {name} [to] {brightness}[([ ]%)| percent]" \
        " [brightness]"
    assert {name_only, name_in_area, name_and_colour, name_and_number} <= everything
    # no colour said; the text does not end in a room
    assert kept("turn on the kitchen light") & {name_only, name_in_area, name_and_colour} \
        == {name_only}
    assert name_in_area in kept("turn on the kitchen light in the den")
    # a number said in words counts as much as one in digits
    assert name_and_number in kept("set the kitchen light to fifty percent")
    assert name_and_number in kept("set the kitchen light to 50 percent")
    assert name_and_number not in kept("set the kitchen light to blue")
    # templates of a block for media players only: a light's name does not let them in
    media_only = {sentence.text for block in fast._intents.intents["HassMediaPause"].data
                  if block.requires_context.get("domain") == ["media_player"]
                  for sentence in block.sentences}
    assert media_only and not media_only & kept("pause the kitchen light")
    assert media_only & kept("pause the den tv")
    # every word said must be one the template or its lists can say
    area_light = "<turn> on [<all>] [<the>] {area} <light>"
    assert area_light in kept("turn on the kitchen lights")
    assert area_light not in kept("turn on the kitchen ceiling lights")
    assert area_light not in kept("turn on the den spot-light")  # a name's words, no {name}
    assert name_only in kept("turn on the den spot-light")
    # a word may be made of several pieces: "fan" and "[s]"
    fans = "[<turn>] [<all>] [<the>] {area} fan[s] on"
    assert fans in everything
    assert fans in kept("turn the kitchen fans on") and fans in kept("turn the kitchen fan on")
    assert fans not in kept("turn the kitchen fanz on")
    # a room and a name each take their own words: "kitchen" cannot be both
    room_and_name = "<turn> on [<the>] {area} [<the>] {name}"
    assert room_and_name not in kept("turn on the kitchen light")
    assert room_and_name in kept("turn on the den heat pump")
    assert room_and_name in kept("turn on the kitchen kitchen light")
    # a template ending in a list and words must find a value right before those words
    name_light = "<turn> on [<the>] {name} <light>"
    assert name_light in everything
    assert name_light not in kept("turn on the kitchen ceiling light")  # no name "... ceiling"
    assert name_light in kept("turn on the spot-light lamp")
    assert name_light in kept("turn on the spot-light lamps.")  # hassil skips the full stop
    assert name_light not in kept("turn on the spot-light lampz")


def test_the_name_filling_templates_are_tried_first() -> None:
    fast = FastPath(small_home())
    fast.understand("hello")
    template_filter = fast.lists.template_filter
    options: dict[str, Any] = {"slot_lists": fast.lists.slots, "intent_context": {},
                               "language": "en", "best_slot_name": "name"}
    tried: list[set[str]] = []
    real = template_filter._intents_of

    def recording(kept: int) -> Intents:
        tried.append(_templates(real(kept)))
        return real(kept)

    template_filter._intents_of = recording  # type: ignore[method-assign]
    # a name matches: the templates without {name} are never tried
    result = template_filter.recognize_best("turn on the kitchen light", **options)
    assert result is not None and result.entities["name"].text == "kitchen light"
    assert len(tried) == 1 and "<turn> on [<all>] [<the>] {area} <light>" not in tried[0]
    # nor those that can only take a shorter name: after the room "den", only "tv" is left
    tried.clear()
    result = template_filter.recognize_best("turn on the den tv", **options)
    assert result is not None and result.entities["name"].text == "den tv"
    assert tried == [{"<turn> on [<the>] {name}"}]
    # no name matches: everything that can match is tried, as hassil would
    tried.clear()
    result = template_filter.recognize_best("turn on the lights in the den", **options)
    assert result is not None and "name" not in result.entities
    assert "<turn> on [(<all>|<the>)] <light> <in> [<the>] {area}" in tried[-1]


def test_the_filter_follows_the_registry() -> None:
    registry = small_home()
    fast = FastPath(registry)
    assert not fast.understand("turn on the garden lamp").matched
    registry.upsert(Entity(entity_id="light.garden_lamp", name="Garden Lamp", domain="light",
                           area="porch", state="off"))
    assert fast.understand("turn on the garden lamp").calls[0].args["entity_ids"] == [
        "light.garden_lamp"]
