"""Spanish end to end: everyday commands and questions on a home with Spanish names, through
the fast path (upstream intents plus assistant/data/sentences_es*.yaml and words_es.yaml),
the safety policy, the timers and the lists. Each right answer has its wrong-answer
counterpart: the device that must not be touched, the question instead of a guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from assistant.messages import EntityCommand
from assistant.registry import DeviceRegistry
from assistant.understanding.aliases import derived_names
from assistant.understanding.fastpath import FastPath
from assistant.understanding.words import words_for
from tests.language_support import (
    ask,
    calls_of,
    conversation_for,
    home_of,
    said_to,
    timer_hub,
)
from tests.test_lists import Home as ListHome
from tests.test_timers import Hub as TimerHub

_AREAS = [("cocina", "Cocina"), ("salon", "Salón"), ("dormitorio", "Dormitorio"),
          ("entrada", "Entrada"), ("garaje", "Garaje")]
_DEVICES = [
    ("light.cocina", "Luz de la cocina", "cocina", None, "off"),
    ("light.garaje", "Luz del garaje", "garaje", None, "off"),
    ("light.lampara_pie", "Lámpara de pie", "salon", None, "off"),
    ("light.lampara_mesa", "Lámpara de mesa", "salon", None, "off"),
    ("light.dormitorio", "Luz dormitorio", "dormitorio", None, "off"),
    ("cover.persiana_salon", "Persiana del salón", "salon", "blind", "open"),
    ("cover.persiana_dormitorio", "Persiana del dormitorio", "dormitorio", "blind", "open"),
    ("cover.garaje", "Puerta del garaje", "garaje", "garage", "closed"),
    ("lock.principal", "Puerta principal", "entrada", None, "unlocked"),
    ("sensor.temperatura_dormitorio", "Temperatura dormitorio", "dormitorio", "temperature",
     "19.5"),
    ("sensor.humedad_salon", "Humedad salón", "salon", "humidity", "45"),
    ("sensor.consumo", "Enchufe de la lavadora", "cocina", "power", "120"),
    ("binary_sensor.telefono_bateria", "Teléfono", None, "battery", "off"),
    ("binary_sensor.telefono_conexion", "Teléfono", None, "connectivity", "on"),
    ("binary_sensor.humo_cocina", "Detector de humo", "cocina", "smoke", "off"),
    ("climate.termostato", "Termostato", "salon", None, "heat"),
    ("media_player.salon", "Altavoz del salón", "salon", None, "playing"),
    ("media_player.dormitorio", "Radio dormitorio", "dormitorio", None, "paused"),
]


def casa() -> DeviceRegistry:
    return home_of(_AREAS, _DEVICES)


@pytest.fixture()
def fast() -> FastPath:
    return FastPath(casa(), "es")


_SALON_LAMPS = ["light.lampara_pie", "light.lampara_mesa"]


@pytest.mark.parametrize(("text", "area", "calls"), [
    ("enciende la luz de la cocina", None, [("turn_on", {"entity_ids": ["light.cocina"]})]),
    # said in another room: the kitchen's light, not the speaker's
    ("enciende la luz de la cocina", "salon", [("turn_on", {"entity_ids": ["light.cocina"]})]),
    ("apaga la luz del garaje", None, [("turn_off", {"entity_ids": ["light.garaje"]})]),
    ("apaga todas las luces del salón", None, [("turn_off", {"entity_ids": _SALON_LAMPS})]),
    ("enciende todas las luces", None, [("turn_on", {"entity_ids": [
        "light.cocina", "light.garaje", *_SALON_LAMPS, "light.dormitorio"]})]),
    ("pon la luz al 50 por ciento", "cocina",
     [("set_light", {"entity_ids": ["light.cocina"], "brightness_pct": 50})]),
    ("pon la luz del dormitorio al 30%", None,
     [("set_light", {"entity_ids": ["light.dormitorio"], "brightness_pct": 30})]),
    ("pon las luces del salón al 50 por ciento", None,
     [("set_light", {"entity_ids": _SALON_LAMPS, "brightness_pct": 50})]),
    ("sube las persianas", "salon", [("turn_on", {"entity_ids": ["cover.persiana_salon"]})]),
    ("baja las persianas del salón", "cocina",
     [("turn_off", {"entity_ids": ["cover.persiana_salon"]})]),
    # every blind, never the garage door
    ("baja todas las persianas", None, [("turn_off", {"entity_ids": [
        "cover.persiana_salon", "cover.persiana_dormitorio"]})]),
    ("cierra la puerta principal con llave", None,
     [("lock", {"entity_ids": ["lock.principal"]})]),
    ("cierra con llave la puerta principal", None,
     [("lock", {"entity_ids": ["lock.principal"]})]),
    ("bloquea la puerta principal", None, [("lock", {"entity_ids": ["lock.principal"]})]),
    # the word a refusal tells the user to say ("di cierra con llave o desbloquea")
    ("desbloquea la puerta principal", None, [("unlock", {"entity_ids": ["lock.principal"]})]),
    ("desbloquea la puerta de la entrada", None,
     [("unlock", {"entity_ids": ["lock.principal"]})]),
    ("¿qué temperatura hace en el dormitorio?", None,
     [("get_state", {"entity_ids": ["sensor.temperatura_dormitorio"]})]),
    ("¿cuál es la humedad del salón?", None,
     [("get_state", {"entity_ids": ["sensor.humedad_salon"]})]),
    ("¿cuánta potencia marca el enchufe de la lavadora?", None,
     [("get_state", {"entity_ids": ["sensor.consumo"]})]),
    ("pon el termostato a 21 grados", None,
     [("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 21.0})]),
    ("pon el termostato a 21°", None,
     [("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 21.0})]),
    ("enciende la calefacción", None, [("turn_on", {"entity_ids": ["climate.termostato"]})]),
    # the player that plays is paused, the paused one resumed
    ("pausa la música", None,
     [("media", {"entity_ids": ["media_player.salon"], "command": "pause"})]),
    ("reanuda la música", None,
     [("media", {"entity_ids": ["media_player.dormitorio"], "command": "play"})]),
    ("siguiente canción", None,
     [("media", {"entity_ids": ["media_player.salon"], "command": "next"})]),
    ("sube el volumen", "salon",
     [("set_volume", {"entity_ids": ["media_player.salon"], "volume_step_pct": 10})]),
    ("baja el volumen", "salon",
     [("set_volume", {"entity_ids": ["media_player.salon"], "volume_step_pct": -10})]),
])
def test_everyday_spanish_commands(fast: FastPath, text: str, area: str | None,
                                   calls: list[tuple[str, dict]]) -> None:
    assert calls_of(fast, text, area) == calls


@pytest.mark.parametrize(("text", "entity_id"), [
    # two sensors are called "Teléfono": the question's words say which one is meant
    ("¿está baja la batería del teléfono?", "binary_sensor.telefono_bateria"),
    ("¿está conectado el teléfono?", "binary_sensor.telefono_conexion"),
    ("¿hay alguna batería baja?", "binary_sensor.telefono_bateria"),
    ("¿se detecta humo en la cocina?", "binary_sensor.humo_cocina"),
    ("¿hay algún detector de humo activo?", "binary_sensor.humo_cocina"),
])
def test_sensor_questions_ask_the_sensor_of_that_kind(fast: FastPath, text: str,
                                                       entity_id: str) -> None:
    assert [(tool, args["entity_ids"]) for tool, args in calls_of(fast, text)] == [
        ("get_state", [entity_id])]


def test_a_question_of_one_kind_never_reads_a_sensor_of_another(fast: FastPath) -> None:
    # the phone has no sensor that is "low" other than its battery, nor smoke in the bedroom
    assert calls_of(fast, "¿está baja la conexión del teléfono?") == []
    result = fast.understand("¿se detecta humo en el dormitorio?")
    assert not result.calls


@pytest.mark.parametrize(("text", "area", "candidates"), [
    # two lamps in the living room: "la lámpara" is one of them, so ask, never both
    ("apaga la lámpara del salón", None, {"light.lampara_pie", "light.lampara_mesa"}),
    # no room said or known: which blind?
    ("sube las persianas", None, {"cover.persiana_salon", "cover.persiana_dormitorio"}),
])
def test_a_singular_or_placeless_request_asks_instead_of_guessing(
        fast: FastPath, text: str, area: str | None, candidates: set[str]) -> None:
    result = fast.understand(text, area)
    assert result.clarification and not result.calls
    assert set(result.candidates) == candidates


def test_a_name_cut_of_its_room_keeps_no_dangling_preposition() -> None:
    # "Luz del garaje" without its room is not "luz del": else "apaga la luz del salón"
    # reads as that name plus the living room, and finds nothing
    garage_light = casa().get("light.garaje")
    assert garage_light is not None
    links = words_for("es").place_links
    assert "luz del" in derived_names(garage_light, ["Garaje"])
    assert "luz del" not in derived_names(garage_light, ["Garaje"], place_links=links)


def test_the_living_room_light_is_not_the_garage_light(fast: FastPath) -> None:
    result = fast.understand("apaga la luz del salón")
    assert "light.garaje" not in {i for c in result.calls for i in c.args["entity_ids"]}
    assert set(result.candidates) <= set(_SALON_LAMPS)


def test_unlocking_is_only_ever_a_lock(fast: FastPath) -> None:
    assert calls_of(fast, "desbloquea la puerta del garaje") == []
    assert calls_of(fast, "desbloquea la lámpara del salón", "salon") == []


def test_closing_a_door_is_not_locking_it(fast: FastPath) -> None:
    # only "con llave" (or a lock word) locks; "cierra la puerta del garaje" closes the cover
    assert calls_of(fast, "cierra la puerta del garaje") == [
        ("turn_off", {"entity_ids": ["cover.garaje"]})]
    assert all(tool != "lock" for tool, _ in calls_of(fast, "cierra las persianas", "salon"))


def test_whole_home_words_never_sweep_in_the_garage_door(fast: FastPath) -> None:
    (call,) = fast.understand("cierra todo").calls
    assert call.tool == "turn_off"
    assert call.args["entity_ids"] == ["cover.persiana_salon", "cover.persiana_dormitorio"]
    # the garage door is closed only when asked for by its kind or its name
    (garage,) = fast.understand("cierra la puerta del garaje").calls
    assert garage.args["entity_ids"] == ["cover.garaje"]


def test_upstreams_name_all_is_scored_as_every_device_the_other_slots_select(
        fast: FastPath) -> None:
    from assistant.virtual.evaluation import _intent_matches

    registry = fast.registry
    every_light = fast.recognize("apaga todas las luces del salón")
    expected = {"name": "HassTurnOff", "slots": {"name": "all", "domain": "light"}}
    assert _intent_matches(every_light, {**expected, "slots": {
        **expected["slots"], "area": "Salón"}}, registry)
    # the other slots still count, and a device's own name is not "all"
    assert not _intent_matches(every_light, {**expected, "slots": {
        **expected["slots"], "area": "Cocina"}}, registry)
    one_light = fast.recognize("apaga la luz de la cocina")
    assert one_light is not None and "name" in one_light.entities
    assert not _intent_matches(one_light, expected, registry)


async def test_a_lock_asks_first_and_acts_only_on_yes() -> None:
    conversation, sent = conversation_for(casa(), "es")
    question = await conversation.handle(ask("cierra la puerta principal con llave"))
    assert question.awaiting_confirmation and not sent.commands
    done = await conversation.handle(ask("sí"))
    assert done.path == "confirmation"
    assert sent.commands == [EntityCommand("lock.principal", "lock")]


async def test_a_lock_request_answered_no_does_nothing() -> None:
    conversation, sent = conversation_for(casa(), "es")
    question = await conversation.handle(ask("abre la puerta principal"))
    assert question.awaiting_confirmation and not sent.commands
    await conversation.handle(ask("no"))
    assert sent.commands == []


async def test_the_garage_door_asks_first_too() -> None:
    conversation, sent = conversation_for(casa(), "es")
    question = await conversation.handle(ask("abre la puerta del garaje"))
    assert question.awaiting_confirmation and not sent.commands


async def test_a_light_goes_out_at_once_and_only_that_light() -> None:
    conversation, sent = conversation_for(casa(), "es")
    response = await conversation.handle(ask("enciende la luz de la cocina"))
    assert response.path == "fast" and response.success
    assert sent.commands == [EntityCommand("light.cocina", "turn_on")]


async def test_a_question_changes_nothing() -> None:
    conversation, sent = conversation_for(casa(), "es")
    response = await conversation.handle(ask("¿hay alguna batería baja?"))
    assert response.path == "fast" and sent.commands == []


@pytest.fixture
async def timers(tmp_path: Path) -> AsyncIterator[TimerHub]:
    async for hub in timer_hub(tmp_path / "jobs.sqlite", casa()):
        yield hub


async def _say(hub: Any, fast: FastPath, text: str, **context: Any) -> Any:
    return await said_to(hub, fast, text, "cocina", **context)


async def test_a_named_timer_is_set_asked_about_and_cancelled(timers: TimerHub,
                                                              fast: FastPath) -> None:
    started = await _say(timers, fast, "pon un temporizador de 5 minutos para la pasta")
    assert started.success
    await timers.wait(60)
    status = await _say(timers, fast, "¿cuánto le queda al temporizador de la pasta?")
    assert status.success
    other = await _say(timers, fast, "¿cuánto le queda al temporizador de la tarta?")
    assert not other.success
    assert (await _say(timers, fast, "cancela el temporizador de la pasta")).success
    await timers.wait(600)
    assert timers.notices == []


def test_timer_lengths_and_delayed_commands(fast: FastPath) -> None:
    assert calls_of(fast, "pon un temporizador de 5 minutos") == [
        ("start_timer", {"minutes": 5.0})]
    assert calls_of(fast, "pon un temporizador de una hora") == [("start_timer", {"hours": 1})]
    assert calls_of(fast, "cancela el temporizador") == [("cancel_timer", {})]
    ((tool, args),) = calls_of(fast, "en 10 minutos apaga la luz de la cocina")
    assert (tool, args["minutes"]) == ("start_timer", 10)
    assert calls_of(fast, args["command_text"]) == [
        ("turn_off", {"entity_ids": ["light.cocina"]})]


async def test_the_shopping_list_in_spanish(tmp_path: Path) -> None:
    home = ListHome(tmp_path / "lists.sqlite", names=("Lista de la compra",))
    await home.lists.start()
    fast = FastPath(home.registry, "es")

    async def say(text: str) -> Any:
        (call,) = fast.understand(text).calls
        return await home.run(call.tool, **call.args)

    assert (await say("añade leche a la lista de la compra")).success
    await say("añade los huevos a la lista de la compra")
    assert home.summaries() == [("leche", "needs_action"), ("huevos", "needs_action")]
    read = await say("¿qué hay en la lista de la compra?")
    assert "leche" in read.reply and "los huevos" not in read.reply
    assert (await say("tacha la leche de la lista de la compra")).success
    assert home.summaries() == [("leche", "completed"), ("huevos", "needs_action")]
    missing = await say("tacha el pan de la lista de la compra")
    assert not missing.success
    assert (await say("borra los huevos de la lista de la compra definitivamente")).success
    assert home.summaries() == [("leche", "completed")]
    fast.close()
