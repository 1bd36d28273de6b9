"""What the demo's terminal shows of a request: its path, the tools it ran, the commands they
sent and the state changes those caused, and nothing another device did meanwhile."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable

import pytest

from assistant.config import Config
from assistant.daemon import CommandsSent, DaemonEvent, RequestAnswered
from assistant.llm.config import LlmConfig
from assistant.messages import (
    Action,
    ConversationRequest,
    ConversationResponse,
    EntityCommand,
    ScheduledRun,
    ToolCall,
)
from assistant.virtual.demo_display import (
    RequestDisplay,
    describe_reasoner,
    render_request,
    show_reasoner,
)
from assistant.virtual.stack import demo_stack

TIMEOUT = 10.0
HEADER = re.compile(r"^#(\d+) ")


class Shown:
    """What a display wrote, awaitable: ``wait_for`` returns once a predicate holds."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self._wrote = asyncio.Event()

    def write(self, text: str) -> None:
        self.writes.append(text)
        self._wrote.set()

    @property
    def text(self) -> str:
        return "\n".join(self.writes)

    async def wait_for(self, holds: Callable[[str], bool], timeout: float = TIMEOUT) -> None:
        async def written() -> None:
            while not holds(self.text):
                self._wrote.clear()
                await self._wrote.wait()
        await asyncio.wait_for(written(), timeout)


def request_block(shown: str, text: str) -> tuple[int, list[str]]:
    """The request's number and the lines of its block."""
    lines = shown.splitlines()
    quoted = json.dumps(text)
    for start, line in enumerate(lines):
        header = HEADER.match(line)
        if header and line[header.end():].startswith(quoted + "  ["):
            end = next((i for i in range(start + 1, len(lines))
                        if not lines[i].startswith("   ")), len(lines))
            return int(header.group(1)), lines[start:end]
    raise AssertionError(f"{text!r} is not shown:\n{shown}")


def check_request_shown(shown: str, text: str, *, path: str, tools: Iterable[str] = (),
                        sent: Iterable[str] = (), changes: Iterable[str] = (),
                        not_shown: Iterable[str] = ()) -> None:
    """The request's block has its path, each tool and command line, and each state change
    (in the block, or on its own line tagged with the request's number after it); nothing
    about the entities in ``not_shown`` appears anywhere."""
    number, block = request_block(shown, text)
    assert block[0].endswith(" ms]") and f"  [{path}, " in block[0], block[0]
    for tool in tools:
        assert f"   tool   {tool}" in block, (tool, block)
    for command in sent:
        assert f"   sent   {command}" in block, (command, block)
    tag = f"#{number} "
    states = [line[3:] for line in block if line.startswith("   state  ")] + [
        line[len(tag):] for line in shown.splitlines() if line.startswith(tag + "state  ")]
    for change in changes:  # the entity's line starts so; more attributes may follow
        assert any(line.startswith(f"state  {change}") for line in states), (change, shown)
    for entity_id in not_shown:
        assert entity_id not in shown, (entity_id, shown)


async def test_a_request_shows_its_path_tool_command_and_the_changes_it_caused() -> None:
    shown = Shown()
    offset = [0.0]  # the display's clock runs ahead when the test says so
    async with demo_stack(Config(llm=LlmConfig(enabled=False))) as (_house, daemon):
        stop = RequestDisplay(daemon, shown.write,
                              clock=lambda: time.monotonic() + offset[0]).start()
        await daemon.converse(ConversationRequest("turn on the kitchen light", "test"))
        # A sensor's reading meanwhile is no doing of the request.
        daemon.registry.update_state("sensor.living_room_temperature", "25.5")
        await shown.wait_for(lambda text: "light.kitchen: off -> on" in text)
        check_request_shown(shown.text, "turn on the kitchen light", path="fast",
                            tools=["turn_on light.kitchen"], sent=["turn_on light.kitchen"],
                            changes=["light.kitchen: off -> on, brightness=200"],
                            not_shown=["sensor.living_room_temperature"])

        # Long after its command, a change of the light is not that request's either.
        offset[0] = 60.0
        daemon.registry.update_state("light.kitchen", "off")
        # A scene moves other entities: those changes are its own.
        await daemon.converse(ConversationRequest("activate movie night", "test"))
        await shown.wait_for(lambda text: "cover.living_room_blinds: open -> closed" in text)
        check_request_shown(shown.text, "activate movie night", path="fast",
                            tools=["turn_on scene.movie_night"],
                            sent=["activate scene.movie_night"],
                            changes=["light.living_room_lamp: off -> on, brightness=60",
                                     "light.living_room_ceiling: on -> off"])
        assert "light.kitchen: on -> off" not in shown.text
        stop()
        await daemon.converse(ConversationRequest("turn on the bedroom light", "test"))
        assert "bedroom" not in shown.text  # stopped: nothing more is shown


def _answered(path: str = "fast") -> RequestAnswered:
    response = ConversationResponse("OK, turned on the Kitchen Light.", (
        Action("turn_on", "light.kitchen", {}),), path)  # type: ignore[arg-type]
    return RequestAnswered(1, ConversationRequest("turn on the kitchen light"), response, 12.0)


RIGHT = render_request(_answered(), [EntityCommand("light.kitchen", "turn_on")],
                       ["light.kitchen: off -> on"])
EXPECTED = {"path": "fast", "tools": ["turn_on light.kitchen"],
            "sent": ["turn_on light.kitchen"], "changes": ["light.kitchen: off -> on"],
            "not_shown": ["sensor.living_room_temperature"]}


def test_the_check_passes_the_right_display() -> None:
    check_request_shown(RIGHT, "turn on the kitchen light", **EXPECTED)  # type: ignore[arg-type]
    late = render_request(_answered(), [EntityCommand("light.kitchen", "turn_on")], [])
    check_request_shown(f"{late}\n#1 state  light.kitchen: off -> on",  # reported after
                        "turn on the kitchen light", **EXPECTED)  # type: ignore[arg-type]


@pytest.mark.parametrize("wrong", [
    render_request(_answered("llm"), [EntityCommand("light.kitchen", "turn_on")],
                   ["light.kitchen: off -> on"]),  # the wrong path
    render_request(_answered(), [], ["light.kitchen: off -> on"]),  # no command shown
    RIGHT.replace("   tool   turn_on light.kitchen\n", ""),  # no tool shown
    render_request(_answered(), [EntityCommand("light.kitchen", "turn_on")], []),  # no change
    render_request(_answered(), [EntityCommand("light.kitchen", "turn_on")],  # noise shown
                   ["light.kitchen: off -> on", "sensor.living_room_temperature: 21 -> 25.5"]),
    f"{RIGHT}\n#2 state  light.kitchen: off -> on".replace(  # another request's change
        "   state  light.kitchen: off -> on\n", ""),
])
def test_the_check_fails_a_wrong_display(wrong: str) -> None:
    with pytest.raises(AssertionError):
        check_request_shown(wrong, "turn on the kitchen light",
                            **EXPECTED)  # type: ignore[arg-type]


async def test_what_a_timer_or_rule_sends_later_is_shown_as_its_own() -> None:
    shown = Shown()
    async with demo_stack(Config(llm=LlmConfig(enabled=False))) as (_house, daemon):
        RequestDisplay(daemon, shown.write).start()
        later: list[asyncio.Future[ConversationResponse]] = []

        def run_later(event: DaemonEvent) -> None:
            # Scheduled while a request is answered, as the scheduler's wakeup is: the run
            # keeps that request's context, yet it is not that request's doing.
            if isinstance(event, CommandsSent) and not later:
                later.append(asyncio.get_running_loop().create_future())
                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(
                    daemon.run_scheduled(ScheduledRun(
                        (ToolCall("turn_on", {"entity_ids": ["light.office_desk_lamp"]}),),
                        "timer test"))).add_done_callback(
                            lambda task: later[0].set_result(task.result())))

        daemon.watch(run_later)
        await daemon.converse(ConversationRequest("turn on the kitchen light", "test"))
        await asyncio.wait_for(later[0], TIMEOUT)
        await shown.wait_for(lambda text: "state  light.office_desk_lamp" in text)
        assert "(timer, schedule or rule) sent turn_on light.office_desk_lamp" in shown.writes
        assert any(line.startswith("(timer, schedule or rule) state  light.office_desk_lamp: "
                                   "off -> on") for line in shown.writes), shown.writes
        _number, block = request_block(shown.text, "turn on the kitchen light")
        assert not any("office_desk_lamp" in line for line in block), block


class _Reasoner:
    def __init__(self) -> None:
        self.status = "loading"


class _Daemon:
    def __init__(self, reasoner: _Reasoner | None) -> None:
        self.reasoner = reasoner
        self.config = Config(llm=LlmConfig(model_path="/models/tiny.gguf"))


async def test_the_reasoning_models_news_are_shown_once_each() -> None:
    shown, reasoner = Shown(), _Reasoner()
    task = asyncio.create_task(show_reasoner(_Daemon(reasoner), shown.write,  # type: ignore
                                             poll_s=0.01))
    try:
        await shown.wait_for(lambda text: "loading tiny.gguf" in text)
        reasoner.status = "ready"
        await shown.wait_for(lambda text: "ready (tiny.gguf" in text)
        reasoner.status = "failed: the model worker stopped 3 times"
        await shown.wait_for(lambda text: "failed" in text)
    finally:
        task.cancel()
    assert len(shown.writes) == 3, shown.writes
    assert "only the fast path answers" in shown.writes[2]
    off = Shown()
    await asyncio.wait_for(show_reasoner(_Daemon(None), off.write), TIMEOUT)  # type: ignore
    assert off.writes == ["reasoning model: off (llm.enabled is false); "
                          "only the fast path answers"]
    assert describe_reasoner("restarting", "m", 1.0).startswith("reasoning model: restarting")
