"""Several commands at once and follow-ups in Italian and Spanish (the connectives of
``words_<lang>.yaml``), one dialogue per language on the homes of their own tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry
from assistant.understanding.words import words_for
from tests import test_language_es, test_language_it
from tests.language_support import ask, conversation_for


@dataclass(frozen=True)
class Dialogue:
    home: Callable[[], DeviceRegistry]
    kitchen_light: str
    bedroom_light: str
    front_lock: str
    both_lights: str  # the kitchen light on, the bedroom light off
    light_off_and_lock: str  # the kitchen light off, the front door locked
    yes: str
    kitchen_light_on: str
    and_the_bedroom: str
    not_that_one_the_bedroom: str
    turn_it_off: tuple[str, ...]  # the pronoun joined to the verb
    not_a_pronoun: str  # a first word that only ends like one


DIALOGUES = {
    "it": Dialogue(
        test_language_it.casa, "light.cucina", "light.camera", "lock.ingresso",
        "accendi la luce della cucina e spegni la luce della camera da letto",
        "spegni la luce della cucina e chiudi la porta d'ingresso a chiave", "sì",
        "accendi la luce della cucina", "e la camera da letto",
        "non quella, la camera da letto", ("spegnila", "spegnila per favore"), "scala"),
    "es": Dialogue(
        test_language_es.casa, "light.cocina", "light.dormitorio", "lock.principal",
        "enciende la luz de la cocina y apaga la luz del dormitorio",
        "apaga la luz de la cocina y cierra la puerta principal con llave", "sí",
        "enciende la luz de la cocina", "y el dormitorio", "esa no, la del dormitorio",
        ("apágala", "apágala por favor"), "escala"),
}
languages = pytest.mark.parametrize("language", sorted(DIALOGUES))


@languages
async def test_two_commands_in_one_sentence_run_in_order(language: str) -> None:
    said = DIALOGUES[language]
    conversation, sent = conversation_for(said.home(), language)
    response = await conversation.handle(ask(said.both_lights))
    assert response.path == "fast"
    assert sent.commands == [EntityCommand(said.kitchen_light, "turn_on"),
                             EntityCommand(said.bedroom_light, "turn_off")]


@languages
async def test_the_lock_part_of_a_compound_waits_for_its_own_yes(language: str) -> None:
    said = DIALOGUES[language]
    conversation, sent = conversation_for(said.home(), language)
    response = await conversation.handle(ask(said.light_off_and_lock))
    assert response.awaiting_confirmation
    assert sent.commands == [EntityCommand(said.kitchen_light, "turn_off")]
    await conversation.handle(ask(said.yes))
    assert sent.commands[1:] == [EntityCommand(said.front_lock, "lock")]


@languages
async def test_a_follow_up_adds_a_room_and_a_correction_puts_the_wrong_light_back(
        language: str) -> None:
    said = DIALOGUES[language]
    conversation, sent = conversation_for(said.home(), language)
    await conversation.handle(ask(said.kitchen_light_on))
    await conversation.handle(ask(said.and_the_bedroom))
    assert sent.commands == [EntityCommand(said.kitchen_light, "turn_on"),
                             EntityCommand(said.bedroom_light, "turn_on")]
    corrected, sent = conversation_for(said.home(), language)
    await corrected.handle(ask(said.kitchen_light_on))
    await corrected.handle(ask(said.not_that_one_the_bedroom))
    assert sent.commands == [EntityCommand(said.kitchen_light, "turn_on"),
                             EntityCommand(said.kitchen_light, "turn_off"),
                             EntityCommand(said.bedroom_light, "turn_on")]


@languages
async def test_a_follow_up_with_nothing_before_does_nothing(language: str) -> None:
    said = DIALOGUES[language]
    conversation, sent = conversation_for(said.home(), language)
    await conversation.handle(ask(said.and_the_bedroom))
    assert sent.commands == []


@languages
async def test_turn_it_off_with_the_pronoun_joined_to_the_verb(language: str) -> None:
    said = DIALOGUES[language]
    for turn_it_off in said.turn_it_off:
        conversation, sent = conversation_for(said.home(), language)
        await conversation.handle(ask(said.kitchen_light_on))
        response = await conversation.handle(ask(turn_it_off))
        assert response.path == "fast", turn_it_off
        assert sent.commands == [EntityCommand(said.kitchen_light, "turn_on"),
                                 EntityCommand(said.kitchen_light, "turn_off")], turn_it_off


@languages
async def test_a_word_that_only_ends_like_a_pronoun_refers_to_nothing(language: str) -> None:
    said = DIALOGUES[language]
    conversation, sent = conversation_for(said.home(), language)
    await conversation.handle(ask(said.kitchen_light_on))
    await conversation.handle(ask(said.not_a_pronoun))
    assert sent.commands == [EntityCommand(said.kitchen_light, "turn_on")]


@pytest.mark.parametrize(("language", "word", "verb"), [
    ("es", "apágala", "apaga"), ("es", "enciéndelas", "enciende"), ("es", "ábrela", "abre"),
    ("es", "ciérralos", "cierra"), ("es", "baja", None), ("es", "hola", None),
    ("it", "spegnila", "spegni"), ("it", "accendili", "accendi"), ("it", "aprile", "apri"),
    ("it", "sala", None), ("en", "hello", None),
])
def test_a_verb_is_read_without_its_joined_pronoun(language: str, word: str,
                                                   verb: str | None) -> None:
    assert words_for(language).without_enclitic(word) == verb
