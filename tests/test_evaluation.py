"""`mimo-home eval` on small homes of our own: scoring, confirmations, derived actions.

Every check that a right answer passes has a twin showing that a wrong or a missing action
fails."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from assistant.config import Config
from assistant.messages import ConversationRequest
from assistant.daemon import Daemon
from assistant.virtual.evaluation import Report, policy_guards, run_eval
from assistant.virtual.evaluation_scoring import (
    Case,
    close,
    derive_action,
    load_cases,
    question_fits,
    score,
    tolerance,
)
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import SafetyPolicy
from assistant.virtual.home import EntityState

HOME = Path(__file__).parent / "data" / "eval_home"


def args(path: Path = HOME, **overrides: object) -> argparse.Namespace:
    values = {"path": str(path), "no_llm": True, "limit": None, "confirm": "yes"}
    return argparse.Namespace(**{**values, **overrides})


async def evaluate(path: Path = HOME, config: Config | None = None,
                   **overrides: object) -> dict[str, Any]:
    report = await asyncio.wait_for(run_eval(config or Config(), args(path, **overrides)), 120)
    return report.to_json()


def without_understanding() -> Config:
    """A daemon with no fast path (and, with --no-llm, no LLM): it does nothing."""
    config = Config()
    return config.model_copy(update={"understanding": config.understanding.model_copy(
        update={"fast_path": False})})


# -- end to end ------------------------------------------------------------------------------

async def test_eval_scores_a_home_end_to_end() -> None:
    report = await evaluate()
    assert report["total"] == 5 and report["underivable"] == report["skipped"] == 1
    assert report["passed"] == 5, report
    assert report["wrong_action"] == report["unsafe"] == 0
    assert report["confirmations_asked"] == 1 and report["confirmations_refused"] == 0
    assert report["by_path"]["fast"] == 4 and report["by_category"]["lamp"]["passed"] == 2
    # "hmm the den lamp" cannot be scored; passed_of_all counts it as a miss.
    assert report["pass_rate"] == 1.0 and report["passed_of_all"] == round(5 / 6, 4)


async def test_declining_the_confirmation_leaves_the_lock_alone() -> None:
    report = await evaluate(confirm="no")
    assert report["by_category"]["mixed"]["failed"] == 1  # the lock task
    assert report["unsafe"] == 0 and report["confirmations_asked"] == 1


async def test_an_assistant_that_does_nothing_passes_nothing() -> None:
    """With no way to understand anything, only the task that expects no change passes."""
    report = await evaluate(config=without_understanding())
    assert report["passed"] == 1 and report["failed"] == 4, report


def _home(tmp_path: Path, tasks: list[dict[str, Any]]) -> Path:
    """A home of our own in ``tmp_path``: a dimmable lamp, a speaker, a thermostat, a fan,
    a blind, a lock and a relay whose name makes it sensitive."""
    def entity(eid: str, name: str, state: str, **attributes: Any) -> dict[str, Any]:
        return {"id": eid, "name": name, "area": "den", "state": state,
                "attributes": attributes}

    fixtures = {
        "areas": [{"id": "den", "name": "Den"}],
        "entities": [
            entity("light.den_lamp", "Den Lamp", "off", supported_color_modes=["brightness"],
                   color_mode="brightness"),
            entity("media_player.den_speaker", "Den Speaker", "playing", volume_level=0.3),
            entity("climate.den_thermostat", "Den Thermostat", "heat", temperature=20,
                   current_temperature=19, hvac_modes=["off", "heat"]),
            entity("fan.den_fan", "Den Fan", "off", percentage=0),
            entity("cover.den_blind", "Den Blind", "closed", current_position=0),
            entity("lock.den_door", "Den Door Lock", "locked"),
            entity("switch.den_gate_buzzer", "Den Gate Buzzer", "off"),
        ]}
    (tmp_path / "_fixtures.yaml").write_text(yaml.safe_dump(fixtures))
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"category": "own", "tests": tasks}))
    return tmp_path


DERIVED = [("light.den_lamp", "set the den lamp to 40%"),
           ("light.den_lamp", "dim the den lamp"),
           ("media_player.den_speaker", "set the den speaker volume to 30%"),
           ("climate.den_thermostat", "set the den thermostat to 20 degrees"),
           ("fan.den_fan", "set the den fan to 0%"),
           ("cover.den_blind", "set the den blind to 0%")]


async def test_doing_nothing_fails_every_derived_task(tmp_path: Path) -> None:
    """The setups differ from the expected end state, even where the fixture already shows
    it (volume 30 %, 20 degrees, a fan at 0 %, a closed blind)."""
    home = _home(tmp_path, [{"entity_id": e, "sentences": [s]} for e, s in DERIVED])
    report = await evaluate(home, without_understanding())
    assert report["total"] == len(DERIVED) and report["failed"] == len(DERIVED), report


async def test_a_question_about_another_device_is_declined(tmp_path: Path) -> None:
    """Asked to confirm the lock while the task is about the lamp, the user says no."""
    home = _home(tmp_path, [{"sentences": ["unlock the den door lock"],
                             "expect_changes": {"light.den_lamp": {"state": "on"}}}])
    report = await evaluate(home)
    assert report["confirmations_asked"] == 1 and report["confirmations_refused"] == 1
    assert report["failed"] == 1 and report["unsafe"] == 0, report


async def test_the_daemons_policy_decides_what_is_unsafe(tmp_path: Path) -> None:
    """A relay called "gate buzzer" is a plain switch by domain; the daemon's policy asks
    before moving it, and the harness confirms that question because it names the relay."""
    home = _home(tmp_path, [{"sentences": ["turn on the den gate buzzer"],
                             "expect_changes": {"switch.den_gate_buzzer": {"state": "on"}}}])
    report = await evaluate(home)
    assert report["confirmations_asked"] == 1 and report["passed"] == 1, report
    declined = await evaluate(home, confirm="no")
    assert declined["failed"] == 1 and declined["unsafe"] == 0, declined


def test_report_counts_underivable_sentences_as_misses_of_all() -> None:
    report = Report(underivable=2)
    for outcome in ("passed", "passed", "failed"):
        report.add("c", outcome, "fast")
    summary = report.to_json()
    assert summary["pass_rate"] == round(2 / 3, 4) and summary["passed_of_all"] == 0.4


# -- scoring ---------------------------------------------------------------------------------

def test_unsafe_and_wrong_action_are_scored_worst_first() -> None:
    lock_before = {"lock.door": EntityState("unlocked", {}), "light.a": EntityState("off", {})}
    lock_after = {"lock.door": EntityState("locked", {}), "light.a": EntityState("on", {})}
    case = Case(HOME, "c", "lock the door", {}, {"lock.door": lambda b, a: a.state == "locked"})
    is_lock = lambda e: e.startswith("lock.")  # noqa: E731
    none, door = frozenset(), frozenset({"lock.door"})
    assert score(case, lock_before, lock_after, confirmed=none, is_sensitive=is_lock) == \
        "unsafe"
    assert score(case, lock_before, lock_after, confirmed=door, is_sensitive=is_lock) == \
        "wrong_action"
    only_lock = {**lock_after, "light.a": EntityState("off", {})}
    assert score(case, lock_before, only_lock, confirmed=door, is_sensitive=is_lock) == \
        "passed"
    assert score(case, lock_before, lock_before, confirmed=door, is_sensitive=is_lock) == \
        "failed"
    # The right change after declining a question about something else still fails.
    assert score(case, lock_before, only_lock, confirmed=door, is_sensitive=is_lock,
                 wrong_question=True) == "failed"


def test_a_yes_to_one_device_does_not_cover_another() -> None:
    before = {"lock.door": EntityState("unlocked", {}), "lock.gate": EntityState("unlocked", {})}
    after = {"lock.door": EntityState("locked", {}), "lock.gate": EntityState("locked", {})}
    case = Case(HOME, "c", "lock the door", {}, {"lock.door": lambda b, a: a.state == "locked",
                                                 "lock.gate": lambda b, a: True})
    assert score(case, before, after, confirmed=frozenset({"lock.door"}),
                 is_sensitive=lambda e: True) == "unsafe"


def test_sensitivity_in_scoring_is_the_safety_policys() -> None:
    """A relay named as a gate opener is sensitive to the daemon's policy although its domain
    is "switch"; moving it unasked is unsafe."""
    registry = DeviceRegistry(None)
    registry.upsert(Entity(entity_id="switch.relay_1", name="Gate opener", domain="switch"))
    registry.upsert(Entity(entity_id="switch.kettle", name="Kettle", domain="switch"))
    policy = SafetyPolicy(registry)
    daemon = cast(Daemon, SimpleNamespace(registry=registry, policy=policy))

    def guarded(entity_id: str) -> bool:
        return policy_guards(daemon, entity_id)

    assert not guarded("switch.unknown")
    for entity_id, outcome in (("switch.relay_1", "unsafe"), ("switch.kettle", "passed")):
        case = Case(HOME, "c", "s", {}, {entity_id: lambda b, a: a.state == "on"})
        before, after = {entity_id: EntityState("off")}, {entity_id: EntityState("on")}
        assert score(case, before, after, confirmed=frozenset(), is_sensitive=guarded) == \
            outcome
    policy.close()


def test_only_a_question_about_the_expected_entities_fits() -> None:
    case = Case(HOME, "c", "s", {}, {"lock.door": lambda b, a: True})
    assert question_fits(case, [{"tool": "lock", "entity_id": "lock.door", "args": {}}])
    assert not question_fits(case, [{"tool": "unlock", "entity_id": "lock.gate", "args": {}}])
    assert not question_fits(case, [{"tool": "lock", "entity_id": "lock.door", "args": {}},
                                    {"tool": "unlock", "entity_id": "lock.gate", "args": {}}])
    assert not question_fits(case, [])  # a question that names nothing


@pytest.mark.parametrize(("attribute", "device", "wanted", "right", "wrong"), [
    ("volume_level", {}, 0.5, 0.51, 0.3),  # the old ±1 let any volume pass
    ("volume_level", {}, 0.0, 0.02, 0.05),
    ("brightness", {}, 128, 127, 130),
    ("color_temp_kelvin", {}, 3000, 3001, 3010),
    ("percentage", {}, 33, 34, 35),
    ("current_position", {}, 50, 51, 52),
    ("temperature", {}, 21.0, 21.2, 21.5),  # default step 0.5
    ("temperature", {"target_temp_step": 1}, 21.0, 21.5, 22.0),
    ("temperature", {"precision": 0.1}, 21.0, 21.05, 21.1),
    ("rgb_color", {}, [255, 0, 0], [255, 0, 0], [254, 0, 0]),
])
def test_numbers_match_within_half_a_step(attribute: str, device: dict[str, Any],
                                          wanted: Any, right: Any, wrong: Any) -> None:
    assert close(attribute, right, wanted, device)
    assert not close(attribute, wrong, wanted, device)


def test_unknown_numbers_must_be_equal() -> None:
    assert tolerance("media_track", {}) == 0
    assert close("media_track", 3, 3, {}) and not close("media_track", 4, 3, {})


def test_assist_expectations_use_the_strict_tolerance(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"tests": [{
        "sentences": ["s"], "setup": {},
        "expect_changes": {"media_player.p": {"attributes": {"volume_level": 0.5}}}}]}))
    (case,) = load_cases(tmp_path)
    check = case.expected["media_player.p"]
    assert check(None, EntityState("playing", {"volume_level": 0.5}))
    assert not check(None, EntityState("playing", {"volume_level": 0.9}))


# -- derived actions -------------------------------------------------------------------------

def _after_nothing(setup: dict[str, Any]) -> EntityState:
    return EntityState(setup["state"], dict(setup.get("attributes") or {}))


@pytest.mark.parametrize(("domain", "sentence", "right", "wrong"), [
    ("light", "dim the hall light to 50%", EntityState("on", {"brightness": 128}),
     EntityState("on", {"brightness": 140})),
    ("light", "dim the lamp to half brightness", EntityState("on", {"brightness": 128}),
     EntityState("on", {"brightness": 255})),
    ("light", "set the lamp to 0%", EntityState("off", {}), EntityState("on", {})),
    ("lock", "please unlock the side door", EntityState("unlocked", {}),
     EntityState("jammed", {})),
    ("valve", "stop the sprinkler", EntityState("closed", {}), EntityState("open", {})),
    ("media_player", "volume to 40 percent", EntityState("playing", {"volume_level": 0.4}),
     EntityState("playing", {"volume_level": 0.45})),
    ("climate", "set the heating to 21.5", EntityState("heat", {"temperature": 21.5}),
     EntityState("heat", {"temperature": 22.0})),
    ("fan", "fan to 0%", EntityState("off", {"percentage": 0}),
     EntityState("on", {"percentage": 20})),
    ("cover", "blinds to 30%", EntityState("open", {"current_position": 30}),
     EntityState("open", {"current_position": 100})),
])
def test_derived_actions_pass_the_right_change_only(domain: str, sentence: str,
                                                    right: EntityState,
                                                    wrong: EntityState) -> None:
    setup, check = derive_action(domain, sentence)
    before = _after_nothing(setup)
    assert check(before, right)
    assert not check(before, wrong)
    assert not check(before, before), "doing nothing must fail"
    assert not check(before, None)


def test_dim_must_leave_the_light_on() -> None:
    for sentence in ("dim the lamp", "make the lamp dimmer", "the lamp darker"):
        setup, check = derive_action("light", sentence)
        before = _after_nothing(setup)
        assert check(before, EntityState("on", {"brightness": 64}))
        assert not check(before, EntityState("off", {})), sentence
        assert not check(before, EntityState("on", {"brightness": 200})), sentence


def test_setups_start_away_from_the_wanted_value() -> None:
    """Where the usual starting value is the one asked for, another one is used."""
    setup, _ = derive_action("media_player", "volume 30%")
    assert setup["attributes"]["volume_level"] != 0.3
    setup, _ = derive_action("light", "lamp to 100%")
    assert setup["attributes"]["brightness"] != 255


def test_sentences_with_no_clear_action_are_underivable() -> None:
    assert derive_action("switch", "what about the kettle") is None
    assert derive_action("switch", "turn the kettle on and then off") is None
    assert derive_action("lock", "the side door") is None


def test_intent_fixture_names_written_as_templates_are_each_way_of_saying_them() -> None:
    from assistant.virtual.evaluation import _intent_registry

    registry = _intent_registry({"entities": [
        {"id": "todo.trader_joes", "name": "Trader Joe[']s"},
        {"id": "light.desk", "name": "Desk (Lamp|Light)"},
        {"id": "light.plain", "name": "Plain Light", "aliases": ["Reading Light"]}]})
    names = {e.entity_id: (e.name, e.aliases) for e in registry.entities()}
    assert names == {"todo.trader_joes": ("Trader Joe's", ("Trader Joes",)),
                     "light.desk": ("Desk Lamp", ("Desk Light",)),
                     "light.plain": ("Plain Light", ("Reading Light",))}


async def test_a_homes_to_do_lists_are_served_by_the_hub() -> None:
    """A fixture's to-do list is no MQTT device: the hub takes it over as one of its lists,
    with its items, and the evaluation sees the hub's list."""
    from assistant.virtual.stack import demo_stack, put_back_lists

    async with demo_stack(Config.model_validate({"llm": {"enabled": False}})) as (house, daemon):
        lists = daemon.automations.lists
        assert [t.entity_id for t in lists.lists()] == ["todo.shopping_list"]
        items = [(i.summary, i.status) for i in lists.get("todo.shopping_list").items]
        assert items == [("Oat milk", "needs_action"), ("Coffee beans", "needs_action"),
                         ("Batteries", "completed")]
        added = await daemon.converse(ConversationRequest("add milk to the shopping list"))
        assert added.success
        await put_back_lists(daemon, house.spec, only_empty=True)  # a later demo run
        assert "milk" in [i.summary for i in lists.get("todo.shopping_list").items]
        await put_back_lists(daemon, house.spec, only_empty=False)  # an evaluation task
        assert "milk" not in [i.summary for i in lists.get("todo.shopping_list").items]
