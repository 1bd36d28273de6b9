"""The demo home spoken to in Italian and Spanish: its devices answer to their names there."""

import pytest

from assistant.config import Config, UnderstandingConfig
from assistant.llm.config import LlmConfig
from assistant.messages import ConversationRequest
from assistant.virtual.stack import demo_stack
from tests.virtual_home_support import until


def _config(language: str) -> Config:
    return Config(llm=LlmConfig(enabled=False),
                  understanding=UnderstandingConfig(language=language))


@pytest.mark.parametrize(("language", "protocols", "sentence", "entity_id", "untouched"), [
    ("it", "ha", "accendi la luce della cucina", "light.kitchen", "light.bedroom"),
    ("it", "mixed", "accendi la luce in camera da letto", "light.bedroom", "light.kitchen"),
    ("es", "ha", "enciende la luz de la cocina", "light.kitchen", "light.bedroom"),
    ("es", "mixed", "enciende la luz del dormitorio", "light.bedroom", "light.kitchen"),
])
async def test_a_command_in_the_homes_language_moves_the_device_it_names(
        language: str, protocols: str, sentence: str, entity_id: str, untouched: str) -> None:
    async with demo_stack(_config(language), protocols=protocols) as (house, daemon):
        assert house.states()[entity_id].state == "off"
        other = house.states()[untouched].state
        response = await daemon.converse(ConversationRequest(sentence, f"demo-{language}"))
        assert response.path == "fast", response
        await until(lambda: house.states()[entity_id].state == "on")
        assert house.states()[untouched].state == other


async def test_another_languages_names_are_not_known_to_an_english_home() -> None:
    async with demo_stack(_config("en")) as (house, daemon):
        known = {alias for e in daemon.registry.all_entities() for alias in e.aliases}
        assert "Luce della cucina" not in known and "Luz de la cocina" not in known
        areas = {alias for a in daemon.registry.areas.values() for alias in a.aliases}
        assert "Cucina" not in areas
        response = await daemon.converse(ConversationRequest("accendi la luce della cucina",
                                                             "demo-en"))
        assert not response.actions
        assert house.states()["light.kitchen"].state == "off"
