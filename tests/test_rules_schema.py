"""Rule models: every trigger, condition and action kind, HA's spellings, precise errors,
templates, and a fuzz of mutated rules."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.registry import Entity
from assistant.rules.blueprints import read_yaml
from assistant.rules.schema import (
    AndCondition,
    ChooseAction,
    DelayAction,
    HomeAssistantTrigger,
    IfAction,
    MqttTrigger,
    NotCondition,
    NumericStateCondition,
    NumericStateTrigger,
    OrCondition,
    RepeatAction,
    Rule,
    RuleError,
    RuleErrors,
    ServiceCall,
    StateCondition,
    StateTrigger,
    StopAction,
    SunCondition,
    SunTrigger,
    Target,
    Template,
    TemplateCondition,
    TimeCondition,
    TimePatternTrigger,
    TimeTrigger,
    TriggerCondition,
    VariablesAction,
    WaitForTriggerAction,
    WaitTemplateAction,
    parse_rule,
)
from assistant.rules.templates import TemplateError, render, render_bool, render_value

DATA = Path(__file__).parent / "data" / "rules" / "valid"
HALL = Path("rules/hall.yaml")


def rules_in(name: str) -> list[Rule]:
    raw = read_yaml((DATA / name).read_text(encoding="utf-8"))
    entries = raw if isinstance(raw, list) else [raw]
    return [parse_rule(entry, index=index) for index, entry in enumerate(entries, start=1)]


def errors_of(raw: Any, file: Path | None = HALL) -> list[str]:
    with pytest.raises(RuleError) as caught:
        parse_rule(raw, file=file)
    return [str(error) for error in caught.value.errors]


def rule_with(**parts: Any) -> dict[str, Any]:
    return {"alias": "Test", "triggers": [{"trigger": "homeassistant", "event": "start"}],
            "actions": [{"action": "light.turn_on", "target": {"entity_id": "light.a"}}],
            **parts}


# -- every kind parses to the expected model ------------------------------------------------

def test_every_trigger_kind_parses_to_its_model() -> None:
    triggers = [rule.triggers[0] for rule in rules_in("triggers.yaml")]
    assert triggers == [
        MqttTrigger(trigger="mqtt", topic="home/+/doorbell/#", payload="pressed",
                    value_template=Template(text="{{ value_json.event }}"), qos=1),
        StateTrigger(trigger="state", entity_id=("binary_sensor.hall_motion",
                                                 "binary_sensor.stairs_motion"),
                     from_state=("off",), to_state=("on",), for_duration=5.0),
        NumericStateTrigger(trigger="numeric_state", entity_id=("sensor.bathroom_humidity",),
                            above=70.0, below="sensor.humidity_ceiling", for_duration=120.0),
        TimeTrigger(trigger="time", at=(time(7, 30), time(8, 15, 30))),
        TimePatternTrigger(trigger="time_pattern", hours="*", minutes="*/5", seconds="0"),
        SunTrigger(trigger="sun", event="sunset", offset=-1800.0),
        HomeAssistantTrigger(trigger="homeassistant", event="start"),
    ]
    assert next(rule.id for rule in rules_in("triggers.yaml")) == "mqtt_doorbell"


def test_every_condition_kind_parses_to_its_model() -> None:
    (rule,) = rules_in("conditions.yaml")
    assert (rule.mode, rule.max, rule.description) == ("queued", 3, "Checks everything "
                                                                    "before it speaks")
    assert rule.conditions == (
        StateCondition(condition="state", entity_id=("person.anna", "person.ben"),
                       state=("not_home",), match="any", for_duration=60.0),
        NumericStateCondition(condition="numeric_state", entity_id=("sensor.outside_lux",),
                              below=20.0),
        TimeCondition(condition="time", after=time(22, 0), before=time(6, 0),
                      weekday=("mon", "tue", "wed", "thu", "fri")),
        SunCondition(condition="sun", after="sunset", after_offset=-3600.0),
        OrCondition(condition="or", conditions=(
            TemplateCondition(condition="template", value_template=Template(
                text="{{ is_state('alarm_control_panel.home', 'armed_night') }}")),
            TemplateCondition(condition="template", value_template=Template(
                text="{{ states('sensor.outside_lux') | float(0) < 5 }}")),
        )),
        NotCondition(condition="not", conditions=(
            TriggerCondition(condition="trigger", id=("window", "garage")),)),
        AndCondition(condition="and", conditions=(
            StateCondition(condition="state", entity_id=("light.porch",), state=("off",)),)),
    )


def test_every_action_kind_parses_to_its_model() -> None:
    (rule,) = rules_in("actions.yaml")
    kinds = [type(action) for action in rule.actions]
    assert kinds == [ServiceCall, DelayAction, WaitForTriggerAction, WaitTemplateAction,
                     ChooseAction, IfAction, RepeatAction, RepeatAction, RepeatAction,
                     VariablesAction, StateCondition, ServiceCall, StopAction]
    call, delay, wait, wait_template, choose, branch, count, each, until = rule.actions[:9]
    assert call == ServiceCall(action="light.turn_on", alias="Dim the lights",
                               target=Target(entity_id=("light.living_room",)),
                               data={"brightness_pct": "{{ dim_to }}"}, continue_on_error=True)
    assert delay.delay == 2.5
    assert (wait.timeout, wait.continue_on_timeout) == (3600.0, False)
    assert isinstance(wait.wait_for_trigger[0], StateTrigger)
    assert wait_template.wait_template == Template(
        text="{{ is_state('media_player.living_room_tv', 'idle') }}")
    assert choose.choose[0].conditions[0] == TemplateCondition(
        condition="template", value_template=Template(text="{{ now().hour >= 22 }}"))
    assert choose.default[0].target == Target(area_id=("living_room",))
    assert branch.else_ == (StopAction(stop="Nothing to do"),)
    assert (count.repeat.count, each.repeat.for_each) == (3, ["light.desk", "light.shelf"])
    assert until.repeat.until[0].state == ("closed",)
    assert rule.actions[11].action == "mqtt.publish"
    assert rule.variables == {"dim_to": 20}


# -- Home Assistant's equivalent spellings --------------------------------------------------

SPELLINGS = [
    ({"trigger": {"platform": "state", "entity_id": "light.a", "to": "on"},
      "condition": "{{ true }}", "action": {"service": "light.turn_off", "entity_id": "light.b"}},
     {"triggers": [{"trigger": "state", "entity_id": ["light.a"], "to": ["on"]}],
      "conditions": [{"condition": "template", "value_template": "{{ true }}"}],
      "actions": [{"action": "light.turn_off", "target": {"entity_id": ["light.b"]}}]}),
    ({"triggers": [{"trigger": "time", "at": "07:05"}],
      "actions": [{"service": "light.turn_on", "data_template": {"entity_id": "light.b",
                                                                 "brightness": 3}}]},
     {"trigger": {"platform": "time", "at": ["07:05:00"]},
      "action": {"action": "light.turn_on", "target": {"entity_id": "light.b"},
                 "data": {"brightness": 3}}}),
    ({"triggers": {"trigger": "state", "entity_id": "light.a, light.b"},
      "conditions": {"or": ["{{ 1 }}"]}, "actions": {"say": "hello"}},
     {"triggers": {"trigger": "state", "entity_id": ["light.a", "light.b"]},
      "conditions": {"condition": "or", "conditions": {"condition": "template",
                                                      "value_template": "{{ 1 }}"}},
      "actions": {"action": "assist_satellite.announce", "data": {"message": "hello"}}}),
    ({"triggers": {"trigger": "state", "entity_id": "sensor.a", "for": "00:01:30"},
      "actions": {"delay": {"minutes": 1, "seconds": 30}}},
     {"triggers": {"trigger": "state", "entity_id": "sensor.a", "for": 90},
      "actions": {"delay": "0:01:30"}}),
]


@pytest.mark.parametrize(("one", "other"), SPELLINGS)
def test_equivalent_spellings_give_the_same_model(one: dict[str, Any],
                                                   other: dict[str, Any]) -> None:
    assert parse_rule(one) == parse_rule(other)


def test_different_rules_give_different_models() -> None:
    one, other = SPELLINGS[0]
    assert parse_rule(one) != parse_rule({**other, "actions": {"action": "light.turn_on",
                                                               "entity_id": "light.b"}})


@pytest.mark.parametrize(("value", "seconds"), [
    (5, 5.0), (2.5, 2.5), ("45", 45.0), ("01:30", 5400.0), ("00:00:07", 7.0),
    ({"hours": 1, "milliseconds": 500}, 3600.5), ({"days": 1}, 86400.0),
])
def test_durations_in_every_spelling(value: Any, seconds: float) -> None:
    assert parse_rule(rule_with(actions=[{"delay": value}])).actions[0].delay == seconds


def test_a_template_duration_stays_a_template() -> None:
    delay = parse_rule(rule_with(actions=[{"delay": "{{ 3 * 60 }}"}])).actions[0].delay
    assert delay == Template(text="{{ 3 * 60 }}")


def test_state_trigger_tells_not_given_from_null() -> None:
    absent = parse_rule(rule_with(triggers={"trigger": "state", "entity_id": "light.a"}))
    null = parse_rule(rule_with(triggers={"trigger": "state", "entity_id": "light.a",
                                          "to": None, "not_from": ["unavailable"],
                                          "attribute": "brightness"}))
    assert absent.triggers[0].to_state is None
    assert null.triggers[0].to_state == ()
    assert null.triggers[0].not_from == ("unavailable",)
    assert null.triggers[0].attribute == "brightness"


def test_time_pattern_defaults_follow_home_assistant() -> None:
    hourly = parse_rule(rule_with(triggers={"trigger": "time_pattern", "hours": "/2"}))
    assert (hourly.triggers[0].hours, hourly.triggers[0].minutes,
            hourly.triggers[0].seconds) == ("*/2", "0", "0")
    secs = parse_rule(rule_with(triggers={"trigger": "time_pattern", "seconds": 10}))
    assert (secs.triggers[0].hours, secs.triggers[0].minutes) == ("*", "*")


def test_rule_defaults() -> None:
    rule = parse_rule(rule_with())
    assert (rule.mode, rule.max, rule.max_exceeded, rule.conditions) == (
        "single", 10, "warning", ())
    assert parse_rule(rule_with(trace={"stored_traces": 5})) == rule  # harmless key


# -- errors name the file, the rule and the key ---------------------------------------------

def test_the_error_text_names_file_rule_and_key() -> None:
    raw = {"alias": "Hall light at night",
           "trigger": {"platform": "state", "entity_id": "binary_sensor.hall", "to": "on"},
           "action": [{"service": "light.turn_on", "entity_id": "light.hall"},
                      {"delay": "five minutes"}]}
    assert errors_of(raw) == ["rules/hall.yaml: rule 'Hall light at night': actions[1].delay: "
                              "'five minutes' is not a duration"]


def test_all_errors_of_a_rule_are_collected() -> None:
    raw = {"id": "broken_one", "mode": "sometimes", "colour": "red",
           "triggers": [{"trigger": "state", "entity_id": "Not An Id"},
                        {"trigger": "webhook"},
                        {"trigger": "time", "at": "input_datetime.wake"}],
           "conditions": [{"condition": "time", "weekday": "funday"}, 7],
           "actions": [{"action": "light.turn_on", "target": {"device_id": "x"}},
                       {"wait_template": "{{ unclosed"},
                       {"repeat": {"count": 2, "while": [], "sequence": []}},
                       {"action": "mqtt.publish", "data": {"topic": "a/#"}},
                       {"action": "tts.say"}]}
    prefix = "rules/hall.yaml: rule 'broken_one': "
    assert errors_of(raw) == [prefix + line for line in [
        "mode: 'sometimes' is not one of 'single', 'restart', 'queued' or 'parallel'",
        "triggers[0].entity_id: 'Not An Id' is not an entity id (like light.kitchen)",
        "triggers[1]: the 'webhook' trigger is not supported; supported: mqtt, state, "
        "numeric_state, time, time_pattern, sun, homeassistant",
        "triggers[2].at: 'input_datetime.wake': times from entities (input_datetime, sensors) "
        "are not supported; write \"HH:MM\" or \"HH:MM:SS\"",
        "conditions[0].weekday: 'funday' is not a weekday (mon, tue, wed, thu, fri, sat, sun)",
        "conditions[1]: 7 is not a condition (a mapping with 'condition: <kind>', or a "
        "\"{{ template }}\")",
        "actions[0].target.device_id: only entity_id and area_id targets are supported",
        "actions[1].wait_template: bad template: TemplateSyntaxError: unexpected end of "
        "template, expected 'end of print statement'.",
        "actions[2].repeat: needs exactly one of count, while, until, for_each",
        "actions[3]: mqtt.publish needs data.topic, a topic without wildcards",
        "actions[4]: tts.say needs data.message (the text to say)",
        "colour: unknown key",
    ]]


@pytest.mark.parametrize(("part", "error"), [
    ({"triggers": {"trigger": "state", "entity_id": "light.a", "to": True}},
     "triggers[0].to: True is a YAML boolean here: write \"on\" (in quotes)"),
    ({"triggers": {"trigger": "mqtt", "topic": "home/#/x"}},
     "triggers[0].topic: 'home/#/x': # may only be the last topic level"),
    ({"triggers": {"trigger": "numeric_state", "entity_id": "sensor.t"}},
     "triggers[0]: needs above or below"),
    ({"triggers": {"trigger": "time_pattern", "minutes": "/75"}},
     "triggers[0].minutes: '/75' is not \"*\", \"/N\" or a number from 0 to 59"),
    ({"triggers": {"trigger": "sun", "event": "noon"}},
     "triggers[0].event: 'noon' is not one of 'sunrise' or 'sunset'"),
    ({"triggers": []}, "triggers: a rule needs at least one trigger"),
    ({"triggers": {"entity_id": "light.a"}},
     "triggers[0]: says no trigger kind: add 'trigger:' (mqtt, state, numeric_state, time, "
     "time_pattern, sun, homeassistant)"),
    ({"triggers": {"trigger": "state", "platform": "state", "entity_id": "light.a"}},
     "triggers[0]: both 'platform' and 'trigger' are given; keep 'trigger'"),
    ({"actions": {"service": "light.on", "action": "light.turn_on"}},
     "actions[0]: both 'service' and 'action' are given; keep 'action'"),
    ({"actions": {"action": "turn on the light"}},
     "actions[0].action: 'turn on the light' is not a service (like light.turn_on)"),
    ({"actions": {"action": "light.turn_on", "target": "light.a"}},
     "actions[0].target: 'light.a': a target is a mapping, like {entity_id: light.kitchen} "
     "or {area_id: kitchen}"),
    ({"actions": {"delay": {"fortnights": 1}}},
     "actions[0].delay: 'fortnights' is not a duration unit (days, hours, minutes, seconds, "
     "milliseconds)"),
    ({"actions": {"delay": -5}}, "actions[0].delay: -5 is negative"),
    ({"actions": {"parallel": []}},
     "actions[0]: the 'parallel' action is not supported; supported: action (a service "
     "call), say, delay, wait_for_trigger, wait_template, choose, if, repeat, variables, "
     "stop, condition"),
    ({"actions": {"if": "{{ 1 }}"}}, "actions[0].then: is required"),
    ({"actions": {"action": "light.turn_on", "data": {"x": "{{ states( }}"}}},
     "actions[0].data: bad template in x: TemplateSyntaxError: unexpected '}', expected ')'"),
    ({"conditions": {"condition": "sun"}}, "conditions[0]: needs after or before"),
    ({"max": 0}, "max: 0: input should be greater than or equal to 1"),
])
def test_one_error_each(part: dict[str, Any], error: str) -> None:
    assert errors_of(rule_with(**part), file=None) == [f"rule 'Test': {error}"]


def test_rules_are_named_by_alias_then_id_then_index() -> None:
    bad = {"triggers": [], "actions": []}
    assert errors_of({**bad, "id": "x1"}, None)[0].startswith("rule 'x1': ")
    with pytest.raises(RuleErrors) as caught:
        parse_rule(bad, index=4)
    assert caught.value.rule == "#4"
    assert errors_of("just text", None) == [
        "rule '#1': 'just text' is not a rule (a mapping with triggers and actions)"]


# -- templates -------------------------------------------------------------------------------

class Registry:
    def __init__(self, *entities: Entity) -> None:
        self._entities = {entity.entity_id: entity for entity in entities}

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)


HOME = Registry(
    Entity(entity_id="light.desk", name="Desk", domain="light", state="on",
           attributes={"brightness": 128}),
    Entity(entity_id="sensor.outside", name="Outside", domain="sensor", state="21.5"),
    Entity(entity_id="switch.pump", name="Pump", domain="switch", state="on",
           available=False),
)


def at_ten_past_ten() -> datetime:
    return datetime(2026, 3, 4, 22, 10, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ states('light.desk') }}", "on"),
    ("{{ states('light.nowhere') }}", "unknown"),
    ("{{ states('switch.pump') }}", "unavailable"),
    ("{{ states.light.desk.state }}/{{ states.light.desk.attributes.brightness }}", "on/128"),
    ("{{ is_state('light.desk', 'on') }} {{ is_state('light.desk', ['off', 'x']) }}",
     "True False"),
    ("{{ state_attr('light.desk', 'brightness') | int + 1 }}", "129"),
    ("{{ is_state_attr('light.desk', 'brightness', 128) }}", "True"),
    ("{{ states('sensor.outside') | float(0) > 20 }}", "True"),
    ("{{ (states('sensor.outside') | float) | round }}", "22"),
    ("{{ 'x' | float(7) }}", "7"),
    ("{{ iif(is_state('light.desk', 'on'), 'lit', 'dark') }}", "lit"),
    ("{{ now().hour }}:{{ now().minute }} {{ now().weekday() }}", "22:10 2"),
    ("{{ as_timestamp(now()) | int }}", "1772662200"),
    ("{{ as_timestamp('garbage', 0) }}", "0"),
    ("{{ trigger.to_state.state }} {{ this.entity_id }}", "off automation.t"),
    ("{{ missing_thing | default('none') }}", "none"),
    ("{{ has_value('switch.pump') }}", "False"),
])
def test_template_helpers(text: str, expected: str) -> None:
    variables = {"trigger": {"to_state": {"state": "off"}},
                 "this": {"entity_id": "automation.t"}, "missing_thing": None}
    if "missing_thing" in text:
        variables.pop("missing_thing")
        text = text.replace("missing_thing", "trigger.nothing")
    assert render(Template(text=text), variables, HOME, at_ten_past_ten) == expected


def test_render_bool_and_native_values() -> None:
    assert render_bool("{{ is_state('light.desk', 'on') }}", {}, HOME, at_ten_past_ten)
    assert not render_bool("{{ 'maybe' }}", {}, HOME, at_ten_past_ten)
    assert render_value({"brightness": "{{ 40 + 2 }}", "name": "{{ 'desk' }}",
                         "list": ["{{ [1, 2] }}", "plain {text}"], "code": "{{ '0123' }}"},
                        {}, HOME, at_ten_past_ten) == {
        "brightness": 42, "name": "desk", "list": [[1, 2], "plain {text}"], "code": "0123"}


@pytest.mark.parametrize("text", [
    "{% for i in range(999) %}{% for j in range(999) %}x{% endfor %}{% endfor %}",
    "{{ 'x' * 10000000 }}",
    "{{ now().__class__ }}",
    "{{ states.__init__ }}",
    "{{ undefined_name }}",
])
def test_templates_are_bounded_and_sandboxed(text: str) -> None:
    with pytest.raises(TemplateError):
        render(text, {}, HOME, at_ten_past_ten)


# -- fuzz: mutated rules fail only with RuleError -------------------------------------------

SEEDS = [
    *read_yaml((DATA / "triggers.yaml").read_text(encoding="utf-8")),
    read_yaml((DATA / "conditions.yaml").read_text(encoding="utf-8")),
    *read_yaml((DATA / "actions.yaml").read_text(encoding="utf-8")),
]
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
    st.sampled_from(["", "{{", "{{ x }}", "{% for %}", "on", "light.a", "Light A", "00:61",
                     "07:30", "/0", "*/5", "*", "#", "+/#", "-01:00", "sunset", "\0", "é"]),
    st.sampled_from([[], [1, "a"], [None], {}, {"minutes": "x"}, {"a": {"b": []}},
                     {"condition": "nope"}, {"trigger": "state"}]),
)


MUTATIONS = st.sampled_from(["replace", "delete", "wrap", "key"])
KEYS = st.sampled_from(["platform", "service", "for", "to", "if", "repeat", "choose", "say",
                        "condition", "x"])
SEED_RULES = st.sampled_from(SEEDS)
MUTATION_COUNT = st.integers(1, 4)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


@st.composite
def mutated_rules(draw: st.DrawFn) -> Any:
    rule = copy.deepcopy(draw(SEED_RULES))
    for _ in range(draw(MUTATION_COUNT)):
        paths = _paths(rule)
        path = paths[draw(st.integers(0, len(paths) - 1))]  # one strategy, not one per draw
        if not path:
            rule = copy.deepcopy(draw(ODD_VALUES))
            continue
        parent = rule
        for part in path[:-1]:
            parent = parent[part]
        action = draw(MUTATIONS)
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(ODD_VALUES))
        elif action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = parent[path[-1]]
        if not isinstance(rule, dict | list):
            break
    return rule


@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_rules())
def test_mutated_rules_fail_only_with_rule_errors(raw: Any) -> None:
    try:
        rule = parse_rule(raw)
    except RuleError as error:
        assert error.errors and all(isinstance(item, RuleError) for item in error.errors)
        assert str(error)
    else:
        assert isinstance(rule, Rule)


def test_deep_nesting_and_odd_keys_are_rule_errors() -> None:
    deep: dict[str, Any] = {"condition": "template", "value_template": "{{ true }}"}
    for _ in range(500):
        deep = {"not": [deep]}
    assert errors_of(rule_with(conditions=deep), None) == [
        "rule 'Test': is nested more than 40 levels deep"]
    assert errors_of({**rule_with(), None: 1}, None) == ["rule 'Test': None: a key must be text"]


def test_models_built_in_code_validate_like_parsed_ones() -> None:
    parsed = parse_rule(rule_with(actions=[{"if": "{{ true }}", "then": {"delay": 1}},
                                           {"condition": "trigger", "id": "a"}]))
    built = Rule(alias="Test", triggers=(HomeAssistantTrigger(trigger="homeassistant",
                                                              event="start"),),
                 actions=(IfAction(if_=(TemplateCondition(condition="template",
                                                          value_template="{{ true }}"),),
                                   then=(DelayAction(delay=1),)),
                          TriggerCondition(condition="trigger", id="a")))
    assert built == parsed


SEED_TEXT = (DATA / "actions.yaml").read_text(encoding="utf-8")


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(0, len(SEED_TEXT) - 1), st.integers(0, 40),
       st.sampled_from(["", ":", "- ", "{", "]", "!input x", "&a", "*a", "\t", "'", "\n  "]))
def test_damaged_yaml_fails_only_with_rule_errors(at: int, cut: int, insert: str) -> None:
    text = SEED_TEXT[:at] + insert + SEED_TEXT[at + cut:]
    try:
        value = read_yaml(text)
        for index, raw in enumerate(value if isinstance(value, list) else [value], start=1):
            parse_rule(raw, index=index)
    except RuleError as error:
        assert str(error)
