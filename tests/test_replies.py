"""Replies and confirmation words in the home's language: the catalogs match the English the
code really writes, and Italian and Spanish homes hear their language end to end."""

from __future__ import annotations

import ast
import calendar
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from assistant.automation.notices import Notices
from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation, classify_answer
from assistant.messages import ConversationRequest, ConversationResponse, EntityCommand
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.replies import SLOT, Replies, replies_for
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry
from skills.home_control import HomeControlSkill
from tests.safety_support import demo_registry
from tests.test_conversation import Sent
from tests.test_lists import started
from tests.test_timers import Hub

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "assistant" / "data"
LANGUAGES = ("it", "es")
# Where the replies and notices are written.
REPLY_SOURCES = ("assistant/conversation.py", "assistant/understanding",
                 "assistant/voice/pipeline.py", "assistant/automation", "skills")
_ANY = "\x01"  # a formatted value or a {slot} in a code string: any one word
# A word right before a formatted value ("item{plural}") may go on: "item" or "items".
_WORD = re.compile(rf"[^\W_]+{_ANY}?|{_ANY}")


def catalog(language: str) -> dict:
    return yaml.safe_load((DATA / f"replies_{language}.yaml").read_text(encoding="utf-8"))


# -- the catalogs match the code ----------------------------------------------------------------


def _code_strings() -> list[list[str]]:
    """Every string constant and f-string in the reply sources, as words (``_ANY`` for each
    formatted value or slot); an f-string's ``'a' if x else 'b'`` or ``x or 'a'`` is each
    of its branches."""
    files: list[Path] = []
    for source in REPLY_SOURCES:
        path = ROOT / source
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    strings: list[str] = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                strings.extend(_spelled(node.values))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.append(node.value)
    return [_WORD.findall(SLOT.sub(_ANY, s).casefold()) for s in strings]


def _spelled(parts: list[ast.expr]) -> Iterator[str]:
    if not parts:
        yield ""
        return
    first, rest = parts[0], list(_spelled(parts[1:]))
    if isinstance(first, ast.Constant):
        heads = [str(first.value)]
    else:
        value = first.value if isinstance(first, ast.FormattedValue) else first
        branches = [value.body, value.orelse] if isinstance(value, ast.IfExp) else \
            value.values if isinstance(value, ast.BoolOp) else [value]
        heads = [str(b.value) if isinstance(b, ast.Constant) else _ANY for b in branches]
    yield from (head + tail for head in heads for tail in rest)


def _found_in(words: list[str], code: list[list[str]]) -> bool:
    """``words`` appear one after another in some code string (``_ANY`` there: any word, but
    a run of formatted values alone, "{a} {b}", holds no English to find)."""
    size = len(words)
    return any(all(_same(c, w) for c, w in zip(window, words)) and set(window) != {_ANY}
               for string in code if len(string) >= size
               for at in range(len(string) - size + 1)
               for window in [string[at:at + size]])


def _formatted(words: list[str], code: list[list[str]]) -> bool:
    """A value the code formats rather than writes ("1 hour timer", "January"): numbers,
    month names and words the code does write, no more than three of them."""
    written = {word for string in code for word in string}
    months = {name.casefold() for name in calendar.month_name if name}
    return len(words) <= 3 and all(w.isdigit() or w in months or w in written for w in words)


def _same(code_word: str, word: str) -> bool:
    return code_word in (word, _ANY) or (code_word.endswith(_ANY)
                                         and word.startswith(code_word[:-1]))


@pytest.fixture(scope="module")
def code() -> list[list[str]]:
    return _code_strings()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalog_entry_matches_english_the_code_writes(language: str,
                                                             code: list[list[str]]) -> None:
    stale = []
    for english in catalog(language)["replies"]:
        for piece in SLOT.split(english)[::2]:
            words = _WORD.findall(piece.casefold())
            if words and not (_found_in(words, code) or _formatted(words, code)):
                stale.append(f"{english!r}: {piece.strip()!r}")
    assert stale == [], "catalog entries the code no longer writes:\n" + "\n".join(stale)


def test_the_rot_check_finds_english_that_is_not_in_the_code(code: list[list[str]]) -> None:
    assert _found_in(["say", "yes", "to", "confirm"], code)
    assert _found_in(["does", "not", "report", "its", "state"], code)  # from an f-string branch
    assert not _found_in(["say", "yes", "to", "agree"], code)
    assert _found_in(["checked", "off", "items", "from"], code)  # "item{plural}"
    assert not _found_in(["checked", "off", "apples", "from"], code)
    assert _formatted(["1", "hour", "timer"], code) and _formatted(["january"], code)
    assert not _formatted(["1", "hour", "cake"], code)


def test_italian_and_spanish_cover_the_same_english() -> None:
    italian, spanish = catalog("it"), catalog("es")
    for section in ("replies", "words"):
        assert set(italian[section]) == set(spanish[section]), section
    for language in LANGUAGES:
        assert not set(catalog(language)["replies"]) & set(catalog(language)["words"])


def test_a_template_must_keep_its_slots() -> None:
    with pytest.raises(ValueError, match="same slots"):
        Replies("it", {"OK, turned on {names}.": "OK, ho acceso."}, replies_for("it").answers)


# -- translating ---------------------------------------------------------------------------------


def test_unknown_english_and_english_homes_pass_through_unchanged() -> None:
    assert replies_for("it").say("Something we never wrote.") == "Something we never wrote."
    assert replies_for("en").say("OK, turned on the Lamp.") == "OK, turned on the Lamp."
    assert replies_for("de").say("OK, turned on the Lamp.") == "OK, turned on the Lamp."


def test_nested_fragments_numbers_and_kept_names() -> None:
    italian = replies_for("it")
    assert italian.say("Which one do you mean: the Lamp in the Kitchen, the Salt and Pepper "
                       "Lamp in the Den or the Fan in the unassigned area?",
                       keep=["Lamp", "Salt and Pepper Lamp", "Kitchen", "Den", "Fan"]) == (
        "Quale intendi: Lamp in Kitchen, Salt and Pepper Lamp in Den o Fan senza stanza?")
    assert italian.say("Timer set for 1 hour and 5 minutes.") == \
        "Timer impostato per 1 ora e 5 minuti."
    assert replies_for("es").say("The Kitchen Temperature is 21.5 degrees.",
                                 keep=["Kitchen Temperature"]) == \
        "Kitchen Temperature: 21,5 grados."
    # Without the name kept, "and" inside it would be taken for ours.
    assert italian.say("OK, turned on the Salt and Pepper Lamp.") == \
        "OK, ho acceso Salt e Pepper Lamp."
    assert italian.say("OK, turned on the Salt and Pepper Lamp.",
                       keep=["Salt and Pepper Lamp"]) == "OK, ho acceso Salt and Pepper Lamp."


@pytest.mark.parametrize("language, text, answer", [
    ("it", "sì", "yes"), ("it", "si, va bene", "yes"), ("it", "certo, grazie", "yes"),
    ("it", "no", "no"), ("it", "sì, anzi no", "mixed"), ("it", "accendi la luce", None),
    ("es", "sí", "yes"), ("es", "vale, de acuerdo", "yes"), ("es", "claro que sí", "yes"),
    ("es", "no", "no"), ("es", "sí, pero espera", "mixed"), ("es", "enciende la luz", None),
    ("en", "yes please", "yes"), ("en", "sì", None), ("it", "yes", None),
])
def test_confirmation_words_are_the_language_s(language: str, text: str,
                                               answer: str | None) -> None:
    assert classify_answer(text, language) == answer


# -- Italian and Spanish homes end to end --------------------------------------------------------

HOMES = {
    "it": ("Cucina", "Camera", "Ingresso", "Luce Cucina", "Lampada", "Porta d'Ingresso",
           "Temperatura Cucina"),
    "es": ("Cocina", "Dormitorio", "Entrada", "Luz Cocina", "Lámpara", "Puerta Principal",
           "Temperatura Cocina"),
}
SAID = {
    "it": {"turn_on": ("accendi la luce cucina", "OK, ho acceso Luce Cucina."),
           "question": ("qual è la temperatura in cucina", "Temperatura Cucina: 21,5 gradi."),
           "which": ("accendi la lampada", "Quale intendi: Lampada in Cucina o Lampada in "
                                           "Camera?"),
           "lock": ("chiudi a chiave la porta d'ingresso",
                    "Devo chiudere a chiave Porta d'Ingresso? Di' sì per confermare."),
           "yes": "sì, grazie", "locked": "OK, ho chiuso a chiave Porta d'Ingresso.",
           "no": ("no", "Va bene, non lo faccio.")},
    "es": {"turn_on": ("enciende la luz cocina", "Vale, he encendido Luz Cocina."),
           "question": ("cuál es la temperatura en la cocina",
                        "Temperatura Cocina: 21,5 grados."),
           "which": ("enciende la lámpara", "¿Cuál quieres decir: Lámpara en Cocina o Lámpara "
                                            "en Dormitorio?"),
           "lock": ("cierra con llave la puerta principal",
                    "¿Debo cerrar con llave Puerta Principal? Di sí para confirmar."),
           "yes": "sí, por favor", "locked": "Vale, he cerrado con llave Puerta Principal.",
           "no": ("no", "Vale, no lo haré.")},
}


def home(language: str) -> DeviceRegistry:
    kitchen, bedroom, entry, light, lamp, door, temperature = HOMES[language]
    registry = DeviceRegistry(None)
    for area, name in (("kitchen", kitchen), ("bedroom", bedroom), ("entry", entry)):
        registry.set_area(Area(id=area, name=name))
    for entity_id, name, area, state, attributes in [
        ("light.kitchen", light, "kitchen", "off", {}),
        ("light.kitchen_lamp", lamp, "kitchen", "off", {}),
        ("light.bedroom_lamp", lamp, "bedroom", "off", {}),
        ("lock.front_door", door, "entry", "unlocked", {}),
        ("sensor.kitchen_temperature", temperature, "kitchen", "21.5",
         {"unit_of_measurement": "°C"}),
    ]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, state=state, attributes=attributes,
                               device_class="temperature" if area == "kitchen"
                               and entity_id.startswith("sensor") else None))
    return registry


@pytest.fixture(params=LANGUAGES)
def language(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def fast_paths() -> dict[str, tuple[DeviceRegistry, FastPath]]:
    made = {}
    for code_ in LANGUAGES:
        registry = home(code_)
        made[code_] = registry, FastPath(registry, code_, policy=SafetyPolicy(registry))
    return made


def conversation_in(language: str, fast_paths: dict) -> tuple[Conversation, Sent]:
    registry, fast_path = fast_paths[language]
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    sent = Sent()
    return Conversation(registry, skills, sent, fast_path, None,
                        UnderstandingConfig(language=language),
                        policy=SafetyPolicy(registry)), sent


async def say(conversation: Conversation, text: str) -> ConversationResponse:
    return await conversation.handle(ConversationRequest(text, "c1"))


async def test_a_command_a_question_and_a_clarification(language: str, fast_paths: dict) -> None:
    conversation, sent = conversation_in(language, fast_paths)
    for kind in ("turn_on", "question", "which"):
        text, reply = SAID[language][kind]
        assert (await say(conversation, text)).reply == reply, kind
    assert sent.commands == [EntityCommand("light.kitchen", "turn_on")]


async def test_a_lock_is_asked_about_and_confirmed_in_the_language(language: str,
                                                                  fast_paths: dict) -> None:
    conversation, sent = conversation_in(language, fast_paths)
    text, question = SAID[language]["lock"]
    asked = await say(conversation, text)
    assert (asked.reply, asked.awaiting_confirmation, sent.commands) == (question, True, [])
    done = await say(conversation, SAID[language]["yes"])
    assert done.reply == SAID[language]["locked"]
    assert sent.commands == [EntityCommand("lock.front_door", "lock")]


async def test_a_no_in_the_language_declines(language: str, fast_paths: dict) -> None:
    conversation, sent = conversation_in(language, fast_paths)
    await say(conversation, SAID[language]["lock"][0])
    answer, reply = SAID[language]["no"]
    assert (await say(conversation, answer)).reply == reply
    assert sent.commands == []


async def test_an_english_yes_does_not_confirm_in_an_italian_home(fast_paths: dict) -> None:
    conversation, sent = conversation_in("it", fast_paths)
    await say(conversation, SAID["it"]["lock"][0])
    await say(conversation, "yes")
    assert sent.commands == []


@pytest.mark.parametrize(("language", "questions", "none", "some"), [
    ("it", ("quali luci sono accese", "ci sono luci accese"), "Nessuno dei 3 è acceso.",
     "2 su 3 sono accesi: Luce Cucina e Lampada."),
    ("es", ("qué luces están encendidas", "hay luces encendidas"),
     "Ninguno de los 3 está encendido.", "2 de 3 están encendidos: Luz Cocina y Lámpara."),
])
async def test_which_lights_are_on_is_answered_in_the_language(
        language: str, questions: tuple[str, ...], none: str, some: str) -> None:
    registry = home(language)
    conversation, _ = conversation_in(
        language, {language: (registry, FastPath(registry, language,
                                                 policy=SafetyPolicy(registry)))})
    for question in questions:
        assert (await say(conversation, question)).reply == none
    registry.update_state("light.kitchen", "on")
    registry.update_state("light.bedroom_lamp", "on")
    for question in questions:
        assert (await say(conversation, question)).reply == some


@pytest.mark.parametrize(("language", "questions", "answer"), [
    ("it", ("cosa sai fare?", "Che cosa puoi fare", "cos'altro sai fare?"), "Posso accendere"),
    ("es", ("¿qué puedes hacer?", "Que sabes hacer", "¿cómo me puedes ayudar?"), "Puedo encender"),
])
async def test_what_can_you_do_is_answered_in_the_language(
        language: str, questions: tuple[str, ...], answer: str, fast_paths: dict) -> None:
    conversation, sent = conversation_in(language, fast_paths)
    for question in questions:
        assert (await say(conversation, question)).reply.startswith(answer), question
    unknown = (await say(conversation, "fammi un caffè" if language == "it" else
                         "hazme un café")).reply
    assert not unknown.startswith(answer) and answer in unknown  # "I can't... I can..."
    assert sent.commands == []


@pytest.mark.parametrize(("language", "english", "said"), [
    ("it", "Yes, the Window is open.", "Sì, Window: aperto."),  # a state, not "to open"
    ("it", "No, the Window is off.", "No, Window: spento."),
    ("it", "2 of 3 are open: the Window and the Door.", "2 su 3 sono aperti: Window e Door."),
    ("it", "1 of 3 is open: the Window.", "1 su 3 è aperto: Window."),
    ("es", "None of the 3 is open.", "Ninguno de los 3 está abierto."),
    ("es", "The Window is open (40% open).", "Window: abierto (abierto al 40%)."),
    ("es", "2 of 3 are playing: the Window and the Door.",
     "2 de 3 están reproduciendo: Window y Door."),
])
def test_state_answers_say_the_state_and_agree(language: str, english: str, said: str) -> None:
    assert replies_for(language).say(english, keep=["Window", "Door"]) == said


@pytest.mark.parametrize(("language", "english", "said"), [
    ("it", "It is 07:05.", "Sono le 07:05."),
    ("it", "Today is Wednesday, December 2, 2026.", "Oggi è mercoledì 2 dicembre 2026."),
    ("it", "The sun does not set here on June 21.", "Qui il sole non tramonta il 21 giugno."),
    ("es", "It is 21:30.", "Son las 21:30."),
    ("es", "Today is Monday, May 4, 2026.", "Hoy es lunes, 4 de mayo de 2026."),
    ("es", "The sun does not rise here for over a year.",
     "Aquí el sol no sale en más de un año."),
])
def test_the_time_the_date_and_the_sun_are_said_in_the_language(language: str, english: str,
                                                                 said: str) -> None:
    assert replies_for(language).say(english) == said


async def test_what_time_it_is_is_answered_in_italian(fast_paths: dict) -> None:
    conversation, _ = conversation_in("it", fast_paths)
    assert re.fullmatch(r"Sono le \d\d:\d\d\.", (await say(conversation, "che ore sono")).reply)


# -- timers, notices and lists -------------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    made = Hub(tmp_path / "jobs.sqlite", demo_registry())
    made.start()
    yield made
    assert made.scheduler is not None
    await made.scheduler.stop()


@pytest.mark.parametrize("language, set_reply, done_said", [
    ("it", "Timer impostato per 1 minuto e 30 secondi.", "Il timer pizza è finito."),
    ("es", "Temporizador puesto para 1 minuto y 30 segundos.",
     "El temporizador pizza ha terminado."),
])
async def test_a_timer_started_and_finished(hub: Hub, language: str, set_reply: str,
                                            done_said: str) -> None:
    replies = replies_for(language)
    started_reply = await hub.call("start_timer", seconds=90)
    assert replies.say(started_reply.reply) == set_reply
    await hub.call("start_timer", minutes=5, name="pizza")
    await hub.wait(300)
    spoken: list[tuple[str, str | None]] = []
    published: list[dict] = []

    async def speak(text: str, area: str | None) -> bool:
        spoken.append((text, area))
        return True

    notices = Notices(publish=lambda _topic, body: published.append(body), speak=speak,
                      clock=hub.clock, say=replies.say)
    for notice in hub.notices:
        await notices.announce(notice)
    assert spoken[-1] == (done_said, "kitchen")
    assert published[-1]["text"] == done_said


async def test_an_unheard_notice_stays_english_for_the_reply_to_translate(hub: Hub) -> None:
    notices = Notices(publish=None, speak=None, clock=hub.clock, say=replies_for("it").say)
    await hub.call("start_timer", minutes=5, name="pizza")
    await hub.wait(300)
    await notices.announce(hub.notices[-1])
    assert [n.text for n in notices.take_for("c1", "kitchen")] == ["Your pizza timer is done."]


@pytest.mark.parametrize("language, reply", [
    ("it", "Ho aggiunto latte alla tua lista della spesa."),
    ("es", "He añadido latte a tu lista de la compra."),
])
async def test_a_list_add(tmp_path: Path, language: str, reply: str) -> None:
    lists = await started(tmp_path / "lists.sqlite3")
    result = await lists.run("add_to_list", item="latte")
    assert replies_for(language).say(result.reply) == reply
