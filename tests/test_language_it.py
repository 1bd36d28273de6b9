"""Italian end to end: everyday commands on a home with Italian names, through the fast path
(upstream intents plus assistant/data/sentences_it*.yaml and words_it.yaml), the safety
policy, the timers and the lists. Each right answer has its wrong-answer counterpart: the
device that must not be touched, the question instead of a guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from assistant.messages import EntityCommand
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.understanding.fastpath import FastPath
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

_AREAS = [("cucina", "Cucina"), ("soggiorno", "Soggiorno"), ("camera", "Camera da letto"),
          ("ingresso", "Ingresso"), ("garage", "Garage")]
_DEVICES = [
    ("light.cucina", "Luce Cucina", "cucina", None, "off"),
    ("light.lampadario", "Lampadario", "soggiorno", None, "off"),
    ("light.lampada_terra", "Lampada da terra", "soggiorno", None, "off"),
    ("light.camera", "Luce Camera", "camera", None, "off"),
    ("cover.tapparella_soggiorno", "Tapparella Soggiorno", "soggiorno", "shutter", "open"),
    ("cover.tapparella_camera", "Tapparella Camera", "camera", "shutter", "open"),
    ("cover.garage", "Basculante", "garage", "garage", "open"),
    ("lock.ingresso", "Porta d'ingresso", "ingresso", None, "unlocked"),
    ("sensor.temperatura_camera", "Temperatura Camera", "camera", "temperature", "19.5"),
    ("climate.termostato", "Termostato", "soggiorno", None, "heat"),
    ("media_player.soggiorno", "Altoparlante Soggiorno", "soggiorno", None, "playing"),
    ("media_player.camera", "Radio Camera", "camera", None, "paused"),
]


def casa() -> DeviceRegistry:
    return home_of(_AREAS, _DEVICES)


@pytest.fixture()
def fast() -> FastPath:
    return FastPath(casa(), "it")


@pytest.mark.parametrize(("text", "area", "calls"), [
    ("accendi la luce della cucina", None, [("turn_on", {"entity_ids": ["light.cucina"]})]),
    ("accendi la luce in cucina", "soggiorno", [("turn_on", {"entity_ids": ["light.cucina"]})]),
    ("spegni tutte le luci del soggiorno", None,
     [("turn_off", {"entity_ids": ["light.lampadario", "light.lampada_terra"]})]),
    ("accendi tutte le luci", None, [("turn_on", {"entity_ids": [
        "light.cucina", "light.lampadario", "light.lampada_terra", "light.camera"]})]),
    ("imposta la luce al 50 per cento", "cucina",
     [("set_light", {"entity_ids": ["light.cucina"], "brightness_pct": 50})]),
    # no room said: the speaker's room's lights, never another room's
    ("imposta la luce al 50 per cento", "soggiorno", [("set_light", {
        "entity_ids": ["light.lampadario", "light.lampada_terra"], "brightness_pct": 50})]),
    ("imposta la luce della camera da letto al 30%", None,
     [("set_light", {"entity_ids": ["light.camera"], "brightness_pct": 30})]),
    ("alza le tapparelle", "soggiorno",
     [("turn_on", {"entity_ids": ["cover.tapparella_soggiorno"]})]),
    ("abbassa le tapparelle del soggiorno", "cucina",
     [("turn_off", {"entity_ids": ["cover.tapparella_soggiorno"]})]),
    ("abbassa tutte le tapparelle", None, [("turn_off", {"entity_ids": [
        "cover.tapparella_soggiorno", "cover.tapparella_camera"]})]),
    ("chiudi la porta d'ingresso a chiave", None, [("lock", {"entity_ids": ["lock.ingresso"]})]),
    ("chiudi a chiave la porta d'ingresso", None,
     [("lock", {"entity_ids": ["lock.ingresso"]})]),
    ("che temperatura c'è in camera da letto", None,
     [("get_state", {"entity_ids": ["sensor.temperatura_camera"]})]),
    ("imposta il termostato a 21°", None,
     [("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 21.0})]),
    ("imposta il termostato a 20.5 gradi", None,
     [("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 20.5})]),
    ("metti in pausa la musica", None,
     [("media", {"entity_ids": ["media_player.soggiorno"], "command": "pause"})]),
    ("riprendi la musica", None,
     [("media", {"entity_ids": ["media_player.camera"], "command": "play"})]),
    ("alza il volume", "soggiorno",
     [("set_volume", {"entity_ids": ["media_player.soggiorno"], "volume_step_pct": 10})]),
    ("accendi il riscaldamento in soggiorno", None,
     [("turn_on", {"entity_ids": ["climate.termostato"]})]),
    ("imposta il riscaldamento a 22 gradi", None,
     [("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 22.0})]),
    # "abbassa" lowers a shutter, but said of a light it dims it
    ("abbassa la luce in cucina", None,
     [("set_light", {"entity_ids": ["light.cucina"], "brightness_step_pct": -25})]),
    ("alza la luminosità della luce della cucina", None,
     [("set_light", {"entity_ids": ["light.cucina"], "brightness_step_pct": 25})]),
    ("imposta la luce della cucina al massimo", None,
     [("set_light", {"entity_ids": ["light.cucina"], "brightness_pct": 100})]),
    ("imposta la luce della cucina rossa", None,
     [("set_light", {"entity_ids": ["light.cucina"], "color": "red"})]),
    ("metti il volume a 40", "soggiorno",
     [("set_volume", {"entity_ids": ["media_player.soggiorno"], "volume_pct": 40})]),
    ("canzone successiva", None,
     [("media", {"entity_ids": ["media_player.soggiorno"], "command": "next"})]),
])
def test_everyday_italian_commands(fast: FastPath, text: str, area: str | None,
                                   calls: list[tuple[str, dict]]) -> None:
    assert calls_of(fast, text, area) == calls


@pytest.mark.parametrize(("text", "area", "candidates"), [
    # two lights in the living room: "la luce" is one of them, so ask, never both, never the
    # kitchen's "Luce Cucina" (a device noun is no device's derived name)
    ("spegni la luce del soggiorno", None, {"light.lampadario", "light.lampada_terra"}),
    ("accendi la luce", None,
     {"light.cucina", "light.lampadario", "light.lampada_terra", "light.camera"}),
    # no room said or known: which shutter?
    ("abbassa le tapparelle", None, {"cover.tapparella_soggiorno", "cover.tapparella_camera"}),
])
def test_a_singular_or_placeless_request_asks_instead_of_guessing(
        fast: FastPath, text: str, area: str | None, candidates: set[str]) -> None:
    result = fast.understand(text, area)
    assert result.clarification and not result.calls
    assert set(result.candidates) == candidates


def test_the_degree_sign_stays_a_unit_in_both_languages() -> None:
    # English templates spell "°" as "degrees", Italian ones as "gradi" or the sign itself
    english = FastPath(casa())
    assert calls_of(english, "set the termostato to 21°") == [
        ("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 21.0})]
    italian = FastPath(casa(), "it")
    assert calls_of(italian, "imposta il termostato a 21 degrees") == []


def test_whole_home_words_never_sweep_in_the_garage_door(fast: FastPath) -> None:
    shutters = ["cover.tapparella_soggiorno", "cover.tapparella_camera"]
    assert calls_of(fast, "chiudi tutto") == [("turn_off", {"entity_ids": shutters})]
    assert calls_of(fast, "apri tutta la casa") == [("turn_on", {"entity_ids": shutters})]
    assert calls_of(fast, "apri il garage") == []
    # the garage door is closed only when asked for by its kind or its name
    (garage,) = fast.understand("chiudi la serranda del garage").calls
    assert garage.args["entity_ids"] == ["cover.garage"]


async def test_a_lock_asks_first_and_acts_only_on_yes() -> None:
    conversation, sent = conversation_for(casa(), "it")
    question = await conversation.handle(ask("chiudi la porta d'ingresso a chiave"))
    assert question.awaiting_confirmation and not sent.commands
    done = await conversation.handle(ask("sì"))
    assert done.path == "confirmation"
    assert sent.commands == [EntityCommand("lock.ingresso", "lock")]


async def test_a_lock_request_answered_no_does_nothing() -> None:
    conversation, sent = conversation_for(casa(), "it")
    question = await conversation.handle(ask("apri la porta d'ingresso"))
    assert question.awaiting_confirmation and not sent.commands
    await conversation.handle(ask("no"))
    assert sent.commands == []


async def test_a_light_goes_out_at_once_and_only_that_light() -> None:
    conversation, sent = conversation_for(casa(), "it")
    response = await conversation.handle(ask("accendi la luce della cucina"))
    assert response.path == "fast" and response.success
    assert sent.commands == [EntityCommand("light.cucina", "turn_on")]


@pytest.fixture
async def timers(tmp_path: Path) -> AsyncIterator[TimerHub]:
    async for hub in timer_hub(tmp_path / "jobs.sqlite", casa()):
        yield hub


async def _say(hub: Any, fast: FastPath, text: str, **context: Any) -> Any:
    return await said_to(hub, fast, text, "cucina", **context)


async def test_a_named_timer_is_set_asked_about_and_cancelled(timers: TimerHub,
                                                              fast: FastPath) -> None:
    started = await _say(timers, fast, "imposta un timer di 5 minuti per la pasta")
    assert started.success
    await timers.wait(60)
    status = await _say(timers, fast, "quanto manca al timer della pasta")
    assert status.success and "4 minutes" in status.reply
    other = await _say(timers, fast, "quanto manca al timer della torta")
    assert not other.success
    assert (await _say(timers, fast, "cancella il timer della pasta")).success
    await timers.wait(600)
    assert timers.notices == []


async def test_timer_lengths_and_status_without_a_name(fast: FastPath) -> None:
    assert calls_of(fast, "imposta un timer di 5 minuti") == [
        ("start_timer", {"minutes": 5.0})]
    assert calls_of(fast, "metti un timer di un'ora") == [("start_timer", {"hours": 1})]
    assert calls_of(fast, "quanto manca al timer") == [("timer_status", {})]
    assert calls_of(fast, "aggiungi 2 minuti al timer della pizza") == [
        ("change_timer", {"minutes": 2.0, "name": "pizza", "direction": "add"})]
    # a room after "timer" is the room's timer, not a timer named after the room
    assert calls_of(fast, "cancella il timer della cucina") == [
        ("cancel_timer", {"area": "cucina"})]


def test_a_delayed_command_keeps_its_italian_words(fast: FastPath) -> None:
    ((tool, args),) = calls_of(fast, "fra 10 minuti spegni la luce della cucina")
    assert (tool, args["minutes"]) == ("start_timer", 10)
    assert calls_of(fast, args["command_text"]) == [
        ("turn_off", {"entity_ids": ["light.cucina"]})]


async def test_the_shopping_list_in_italian(tmp_path: Path) -> None:
    home = ListHome(tmp_path / "lists.sqlite", names=("Lista della spesa",))
    await home.lists.start()
    fast = FastPath(home.registry, "it")

    async def say(text: str) -> Any:
        (call,) = fast.understand(text).calls
        return await home.run(call.tool, **call.args)

    assert (await say("aggiungi il latte alla lista della spesa")).success
    await say("aggiungi le uova alla lista della spesa")
    assert home.summaries() == [("latte", "needs_action"), ("uova", "needs_action")]
    read = await say("cosa c'è nella lista della spesa")
    assert "latte" in read.reply and "il latte" not in read.reply
    assert (await say("togli il latte dalla lista della spesa")).success
    assert home.summaries() == [("latte", "completed"), ("uova", "needs_action")]
    missing = await say("togli il pane dalla lista della spesa")
    assert not missing.success
    assert (await say("cancella le uova dalla lista della spesa definitivamente")).success
    assert home.summaries() == [("latte", "completed")]
    fast.close()


@pytest.mark.parametrize(("text", "when", "command"), [
    ("ogni giorno alle 7 accendi la luce della cucina", {"every": "day", "hour": 7},
     ("turn_on", {"entity_ids": ["light.cucina"]})),
    ("il lunedì alle 8 e mezza apri le tapparelle del soggiorno",
     {"every": "monday", "hour": 8, "minute": 30},
     ("turn_on", {"entity_ids": ["cover.tapparella_soggiorno"]})),
    ("spegni la luce della cucina domani alle 23", {"day": "tomorrow", "hour": 23},
     ("turn_off", {"entity_ids": ["light.cucina"]})),
    ("30 minuti prima del tramonto chiudi le tapparelle della camera da letto",
     {"sun_event": "sunset", "offset_minutes": -30},
     ("turn_off", {"entity_ids": ["cover.tapparella_camera"]})),
])
def test_a_schedule_keeps_when_and_an_italian_command(fast: FastPath, text: str,
                                                      when: dict[str, Any],
                                                      command: tuple[str, dict]) -> None:
    ((tool, args),) = calls_of(fast, text)
    assert tool == "add_schedule"
    assert {k: v for k, v in args.items() if k != "command_text"} == when
    assert calls_of(fast, args["command_text"]) == [command]


def test_a_reminder_and_what_is_not_a_schedule(fast: FastPath) -> None:
    assert calls_of(fast, "ricordami tra 10 minuti di scolare la pasta") == [
        ("add_reminder", {"in_minutes": 10, "message": "scolare la pasta"})]
    # a level or a temperature said with "a"/"al" is not a time of day
    assert calls_of(fast, "imposta il termostato a 21") == [
        ("set_temperature", {"entity_ids": ["climate.termostato"], "temperature": 21.0})]
    assert calls_of(fast, "imposta la luce della cucina al 10 per cento") == [
        ("set_light", {"entity_ids": ["light.cucina"], "brightness_pct": 10})]


def test_a_room_is_called_by_its_first_word_only_when_no_other_room_is() -> None:
    # "in camera" is the "Camera da letto" while it is the one camera of the home
    assert calls_of(FastPath(casa(), "it"), "abbassa le tapparelle in camera") == [
        ("turn_off", {"entity_ids": ["cover.tapparella_camera"]})]
    registry = casa()
    registry.set_area(Area(id="bimbi", name="Camera dei bambini"))
    registry.upsert(Entity(entity_id="cover.tapparella_bimbi", name="Tapparella Bimbi",
                           domain="cover", area="bimbi", device_class="shutter", state="open"))
    result = FastPath(registry, "it").understand("abbassa la tapparella in camera")
    assert result.clarification and not result.calls
    assert set(result.candidates) == {"cover.tapparella_camera", "cover.tapparella_bimbi"}
