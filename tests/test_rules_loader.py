"""The rules directory: loading, blueprints, the dataset's blueprints, hot reload, saving,
and ``rules check``."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.rules import loader
from assistant.rules.blueprints import Input, fill_blueprint, read_yaml
from assistant.rules.check import check_directory
from assistant.rules.loader import (
    MAX_FILE_BYTES,
    LoadedRule,
    RuleDirectoryWatcher,
    load_rules,
    load_rules_async,
    save_rule_file,
)
from assistant.rules.schema import (
    IfAction,
    NumericStateTrigger,
    RuleError,
    ServiceCall,
    StateTrigger,
    Target,
    WaitForTriggerAction,
    parse_rule,
)

DATA = Path(__file__).parent / "data" / "rules"
DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / \
    "home-assistant-datasets" / "automations"
BLUEPRINT = DATA / "valid" / "blueprints" / "ours" / "window_reminder.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_lines(directory: Path) -> list[str]:
    return [str(error) for error in load_rules(directory).errors]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(DATA / "valid", directory)
    return directory


# -- loading ---------------------------------------------------------------------------------

def test_the_valid_directory_loads_every_rule() -> None:
    result = load_rules(DATA / "valid")
    assert result.errors == ()
    assert result.files == 6  # blueprints/ is not read as rules
    assert [loaded.name for loaded in result.rules] == [
        "Movie time", "Night watch", "Kitchen window", "Bedroom window", "Evening lamp",
        "Doorbell pressed",
        "Hall motion", "Bathroom humid", "Morning blinds", "Every five minutes",
        "Porch at dusk", "Hub started"]
    assert result.rules[0].file == DATA / "valid" / "actions.yaml"


def test_a_broken_file_does_not_stop_the_others() -> None:
    directory = DATA / "broken"
    result = load_rules(directory)
    assert [loaded.name for loaded in result.rules] == ["Still loads"]
    hall = f"{directory / 'hall.yaml'}: rule 'Hall light at night': "
    assert [str(error) for error in result.errors] == [
        hall + "actions[0].target.device_id: only entity_id and area_id targets are supported",
        hall + "actions[1].delay: 'five minutes' is not a duration",
        hall + "actions[2]: the 'event' action is not supported; supported: action (a "
               "service call), say, delay, wait_for_trigger, wait_template, choose, if, "
               "repeat, variables, stop, condition",
        hall + "colour: unknown key",
        f"{directory / 'not_yaml.yaml'}: not valid YAML: line 2: found unexpected end of "
        "stream",
    ]


def test_duplicate_ids_and_aliases_are_errors_for_the_later_file(rules_dir: Path) -> None:
    write(rules_dir / "zz_again.yaml", """
- id: state_hall
  alias: Another hall rule
  triggers: {trigger: homeassistant, event: start}
  actions: {say: again}
- alias: Movie time
  triggers: {trigger: homeassistant, event: start}
  actions: {say: again}
- alias: New and fine
  triggers: {trigger: homeassistant, event: start}
  actions: {say: fine}
""")
    result = load_rules(rules_dir)
    assert [str(error) for error in result.errors] == [
        f"{rules_dir / 'zz_again.yaml'}: rule 'Another hall rule': id: 'state_hall' is "
        f"already used in {rules_dir / 'triggers.yaml'}",
        f"{rules_dir / 'zz_again.yaml'}: rule 'Movie time': alias: 'Movie time' is already "
        f"used in {rules_dir / 'actions.yaml'}",
    ]
    assert result.rules[-1].name == "New and fine"
    assert sum(loaded.name == "Movie time" for loaded in result.rules) == 1


def test_the_editor_format_loads() -> None:
    (lamp,) = [loaded.rule for loaded in load_rules(DATA / "valid").rules
               if loaded.name == "Evening lamp"]
    assert lamp.id == "1712345678901"
    assert lamp.actions == (
        ServiceCall(action="light.turn_on", target=Target(entity_id=("light.lamp",))),
        ServiceCall(action="assist_satellite.announce", data={"message": "The lamp is on"},
                    target=Target(area_id=("living_room",))))


def test_the_rule_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_RULES", 2)
    rule = "- triggers: {trigger: homeassistant, event: start}\n  actions: {say: hi}\n"
    write(tmp_path / "a.yaml", rule * 3)
    write(tmp_path / "b.yaml", rule)
    result = load_rules(tmp_path)
    assert len(result.rules) == 2
    assert [str(error) for error in result.errors] == [
        f"{tmp_path / 'a.yaml'}: rule '#3': more than 2 rules; this one and the rest are left "
        "out",
        f"{tmp_path / 'b.yaml'}: more than 2 rules in {tmp_path}; this file and the rest are "
        "left out"]


def test_unnamed_rules_get_unique_names(tmp_path: Path) -> None:
    write(tmp_path / "plain.yml", """
- triggers: {trigger: homeassistant, event: start}
  actions: {say: one}
- triggers: {trigger: homeassistant, event: start}
  actions: {say: two}
""")
    assert [loaded.name for loaded in load_rules(tmp_path).rules] == ["plain#1", "plain#2"]


@pytest.mark.parametrize(("text", "error"), [
    ("alias: x\ntriggers: !secret my_trigger\n",
     "not valid YAML: line 2: !secret is not supported: rule files hold no secrets here; "
     "write the value"),
    ("- !include other.yaml\n",
     "not valid YAML: line 1: !include is not supported: put the rules in the rules "
     "directory, one file each"),
    ("alias: x\ntriggers: !python/name:os.system\n",
     "not valid YAML: line 2: could not determine a constructor for the tag "
     "'!python/name:os.system'"),
    ("alias: Uses input\ntriggers: {trigger: state, entity_id: !input door}\nactions: []\n",
     "rule 'Uses input': !input door outside a blueprint"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, "
     "*c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     "holds more than 100000 values"),
    ("\xff\xfe", "is not UTF-8 text"),
    ("alias: x\ntriggers: []\nalias: y\n",
     "not valid YAML: line 3: the key 'alias' is given twice"),
])
def test_file_level_errors(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    assert error_lines(tmp_path) == [f"{path}: {error}"]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_FILE_BYTES == 1024 * 1024
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 100)
    path = write(tmp_path / "big.yaml", "#" * 101)
    assert error_lines(tmp_path) == [f"{path}: is larger than 100 bytes"]
    write(tmp_path / "big.yaml", "#" * 100)
    assert error_lines(tmp_path) == []


def test_hidden_files_and_a_missing_directory(tmp_path: Path) -> None:
    write(tmp_path / ".hall.yaml.swp.yaml", "broken: [")
    assert load_rules(tmp_path).errors == ()
    assert error_lines(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: is not a directory"]


async def test_loading_runs_off_the_event_loop() -> None:
    result = await asyncio.wait_for(load_rules_async(DATA / "valid"), 10)
    assert len(result.rules) == 12


# -- blueprints ------------------------------------------------------------------------------

def test_blueprint_inputs_fill_with_given_values_and_defaults() -> None:
    kitchen, bedroom = (loaded.rule for loaded in load_rules(DATA / "valid").rules[2:4])
    assert kitchen.id == "kitchen_window"
    assert kitchen.triggers[0] == StateTrigger(
        trigger="state", entity_id=("binary_sensor.kitchen_window",), to_state=("on",),
        for_duration=600.0)
    say, toggle, publish = kitchen.actions
    assert say.data == {"message": "A window is still open"}  # the default
    assert toggle.target == Target(entity_id=("light.hall",))  # a whole target mapping
    assert publish.data["payload"] == ["A window is still open", "sent"]  # inside a list
    assert bedroom.triggers[0].for_duration == 300.0
    assert bedroom.actions[0].data == {"message": "The bedroom window is open"}
    assert bedroom.actions[1].target == Target(area_id=("bedroom",))


def test_blueprint_inputs_missing_and_undeclared_are_named() -> None:
    blueprint = read_yaml(BLUEPRINT.read_text(encoding="utf-8"))
    with pytest.raises(RuleError) as caught:
        fill_blueprint(blueprint, {"colour": "red"}, rule="Windows")
    assert [str(error) for error in caught.value.errors] == [
        "rule 'Windows': use_blueprint.input.colour: the blueprint declares no input "
        "'colour' (it has: window, open_for, lights, reminder)",
        "rule 'Windows': use_blueprint.input.window: is not given and has no default",
    ]
    filled = fill_blueprint(blueprint, {"window": "binary_sensor.x"})
    assert filled["triggers"][0]["entity_id"] == "binary_sensor.x"
    assert "blueprint" not in filled
    assert Input("window") in blueprint["triggers"][0].values()  # the blueprint is untouched


def test_blueprint_input_sections_are_read() -> None:
    blueprint = read_yaml("""
blueprint:
  name: Sectioned
  domain: automation
  input:
    where:
      name: Where
      input:
        light: {name: Light}
        area: {name: Area, default: hall}
triggers: {trigger: homeassistant, event: start}
actions:
  - action: light.turn_on
    target: {entity_id: !input light, area_id: !input area}
""")
    rule = parse_rule(fill_blueprint(blueprint, {"light": "light.desk"}))
    assert rule.actions[0].target == Target(entity_id=("light.desk",), area_id=("hall",))
    with pytest.raises(RuleError, match="declares no input 'where'"):
        fill_blueprint(blueprint, {"where": "x", "light": "light.desk"})


def test_save_rule_file_refuses_what_yaml_cannot_hold(rules_dir: Path) -> None:
    with pytest.raises(RuleError, match="cannot be written as YAML"):
        save_rule_file(rules_dir, "odd", [{**NEW_RULE, "variables": {"x": object()}}])


def test_use_blueprint_errors(rules_dir: Path) -> None:
    path = write(rules_dir / "users.yaml", """
- alias: Escapes
  use_blueprint: {path: ../triggers.yaml, input: {}}
- alias: Nowhere
  use_blueprint: {path: ours/none.yaml}
- alias: Extra key
  mode: queued
  use_blueprint: {path: ours/window_reminder.yaml, input: {window: binary_sensor.a}}
- alias: Missing input
  use_blueprint: {path: ours/window_reminder.yaml}
- alias: Bad value
  use_blueprint: {path: ours/window_reminder.yaml, input: {window: "Front Door"}}
""")
    assert [line for line in error_lines(rules_dir) if line.startswith(str(path))] == [
        f"{path}: rule 'Escapes': use_blueprint.path: '../triggers.yaml' is not a YAML file "
        "under blueprints/",
        f"{path}: rule 'Nowhere': use_blueprint.path: no blueprint 'ours/none.yaml' in "
        f"{rules_dir / 'blueprints'}",
        f"{path}: rule 'Extra key': mode: unknown key beside use_blueprint (only id, alias, "
        "description)",
        f"{path}: rule 'Missing input': use_blueprint.input.window: is not given and has no "
        "default",
        f"{path}: rule 'Bad value': triggers[0].entity_id: 'Front Door' is not an entity id "
        "(like light.kitchen)",
    ]


def _fixture_entities(case: str) -> set[str]:
    fixtures = yaml.safe_load((DATASET / case / "_fixtures.yaml").read_text(encoding="utf-8"))
    return {entity["id"] for entity in fixtures["entities"]}


DATASET_INPUTS: dict[str, dict[str, Any]] = {
    "door_left_open": {"door_sensor": "binary_sensor.entry_door",
                       "alert_media": {"entity_id": "media_player.smart_speaker",
                                       "media_content_id": "media-source://alarm.mp3",
                                       "media_content_type": "music"}},
    "humidity_fan": {"humidity_sensor": "sensor.bathroom_exhaust_fan_humidity",
                     "humidity_level": 65, "fan_entity": "fan.bathroom_exhaust_fan"},
    "light_on_door": {"door_sensor": "binary_sensor.pantry_door",
                      "light_switch": {"entity_id": "light.pantry_light"},
                      "light_timeout": 120},
    "vacuum_pause": {"phone_call_sensor": "binary_sensor.motion_sensor",
                     "vacuum_entity": "vacuum.vacuum_cleaner"},
}


@pytest.mark.skipif(not DATASET.is_dir(), reason="the shared datasets are not here")
@pytest.mark.parametrize("case", sorted(DATASET_INPUTS))
def test_the_dataset_solutions_load_with_their_inputs(case: str) -> None:
    blueprint = read_yaml((DATASET / case / "solution.yaml").read_text(encoding="utf-8"))
    inputs = DATASET_INPUTS[case]
    known = _fixture_entities(case)
    for value in inputs.values():
        named = value.get("entity_id") if isinstance(value, dict) else value
        assert not isinstance(named, str) or "." not in named or named in known
    rule = parse_rule(fill_blueprint(blueprint, inputs))
    assert rule.mode == "single" and rule.max_exceeded == "silent"
    trigger_ids = {trigger.id for trigger in rule.triggers}
    if case == "door_left_open":
        assert rule.triggers[0].for_duration == 300.0  # the default
        media = rule.actions[0]
        assert media.target == Target(entity_id=("media_player.smart_speaker",))  # from data
        assert media.data == {"media_content_id": "media-source://alarm.mp3",
                              "media_content_type": "music"}
    elif case == "humidity_fan":
        assert isinstance(rule.triggers[0], NumericStateTrigger)
        assert (rule.triggers[0].above, rule.triggers[1].below) == (65.0, 65.0)
        assert isinstance(rule.actions[0], IfAction)
        assert rule.actions[1].then[0].target.entity_id == ("fan.bathroom_exhaust_fan",)
    elif case == "light_on_door":
        assert trigger_ids == {"door-open", "door-closed"}
        wait = rule.actions[0].then[1]
        assert isinstance(wait, WaitForTriggerAction) and wait.timeout == 120.0
        assert rule.actions[1] == ServiceCall(
            alias="Deactivate light", action="homeassistant.turn_off",
            target=Target(entity_id=("light.pantry_light",)))
    else:
        assert rule.conditions[0].entity_id == ("vacuum.vacuum_cleaner",)
        assert rule.actions[0].action == "vacuum.pause"


# -- hot reload ------------------------------------------------------------------------------

async def test_the_watcher_calls_on_change_after_a_file_is_written(rules_dir: Path) -> None:
    changed = asyncio.Event()
    watcher = RuleDirectoryWatcher(rules_dir, changed.set, debounce_ms=50)
    stop = await watcher.start()
    assert watcher.running
    try:
        write(rules_dir / "notes.txt", "not a rule file")
        write(rules_dir / "new.yaml", "alias: New\ntriggers: {trigger: homeassistant, "
                                      "event: start}\nactions: {say: hi}\n")
        await asyncio.wait_for(changed.wait(), 10)
        changed.clear()
        write(rules_dir / "blueprints" / "ours" / "window_reminder.yaml",
              BLUEPRINT.read_text(encoding="utf-8") + "\n# edited\n")
        await asyncio.wait_for(changed.wait(), 10)
    finally:
        await stop()
    assert not watcher.running  # stop cleaned up
    await stop()  # a second stop is harmless


async def test_the_watcher_ignores_other_files_and_survives_a_failing_listener(
        rules_dir: Path) -> None:
    calls: list[str] = []
    seen = asyncio.Event()

    def listener() -> None:
        calls.append("change")
        seen.set()
        raise RuntimeError("a broken listener")

    watcher = RuleDirectoryWatcher(rules_dir, listener, debounce_ms=50)
    stop = await watcher.start()
    try:
        write(rules_dir / "a.txt", "ignored")
        write(rules_dir / ".hidden.yaml", "ignored")
        write(rules_dir / "b.yaml", "{}")
        await asyncio.wait_for(seen.wait(), 10)
        seen.clear()
        write(rules_dir / "c.yaml", "{}")  # still watching after the listener raised
        await asyncio.wait_for(seen.wait(), 10)
    finally:
        await stop()
    assert calls == ["change", "change"]


async def test_watching_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await RuleDirectoryWatcher(tmp_path / "nowhere", lambda: None).start()


# -- saving ----------------------------------------------------------------------------------

NEW_RULE = {"alias": "Porch off at midnight", "triggers": [{"trigger": "time", "at": "00:00"}],
            "actions": [{"action": "light.turn_off", "target": {"entity_id": "light.porch"}}]}


def test_save_rule_file_writes_a_file_that_loads(rules_dir: Path) -> None:
    path = save_rule_file(rules_dir, "porch_midnight", [NEW_RULE])
    assert path == rules_dir / "porch_midnight.yaml"
    assert [loaded.name for loaded in load_rules(rules_dir).rules
            if loaded.file == path] == ["Porch off at midnight"]
    assert [p.name for p in rules_dir.iterdir() if p.name.startswith(".")] == []  # no temp


def test_save_rule_file_refuses_to_overwrite(rules_dir: Path) -> None:
    before = (rules_dir / "triggers.yaml").read_bytes()
    with pytest.raises(FileExistsError):
        save_rule_file(rules_dir, "triggers", [NEW_RULE])
    assert (rules_dir / "triggers.yaml").read_bytes() == before


def test_save_rule_file_validates_first(rules_dir: Path) -> None:
    bad = {**NEW_RULE, "actions": [{"delay": "soon"}]}
    with pytest.raises(RuleError) as caught:
        save_rule_file(rules_dir, "bad_one", [bad, {**NEW_RULE, "alias": "Movie time"}])
    path = rules_dir / "bad_one.yaml"
    assert [str(error) for error in caught.value.errors] == [
        f"{path}: rule 'Porch off at midnight': actions[0].delay: 'soon' is not a duration",
        f"{path}: rule 'Movie time': alias: 'Movie time' is already used in "
        f"{rules_dir / 'actions.yaml'}",
    ]
    assert not path.exists()
    with pytest.raises(RuleError):
        save_rule_file(rules_dir, "../escape", [NEW_RULE])


def test_save_rule_file_keeps_a_file_that_appears_meanwhile(rules_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    target = rules_dir / "racing.yaml"
    real_link = os.link

    def someone_else_writes_first(source: str, destination: str) -> None:
        target.write_text("# theirs\n", encoding="utf-8")
        real_link(source, destination)

    monkeypatch.setattr(os, "link", someone_else_writes_first)
    with pytest.raises(FileExistsError):
        save_rule_file(rules_dir, "racing", [NEW_RULE])
    assert target.read_text(encoding="utf-8") == "# theirs\n"
    assert [p.name for p in rules_dir.iterdir() if p.name.startswith(".")] == []


# -- rules check -----------------------------------------------------------------------------

def test_check_reports_ok() -> None:
    assert check_directory(DATA / "valid") == ("12 rules OK in 6 files", 0)


def test_check_adds_what_the_engine_finds() -> None:
    def no_sun_here(loaded: LoadedRule) -> list[RuleError]:
        return [RuleError(loaded.file, loaded.name, "triggers[0]", "needs the location")
                for trigger in loaded.rule.triggers if trigger.trigger == "sun"]

    report, code = check_directory(DATA / "valid", no_sun_here)
    assert (report.splitlines(), code) == ([
        f"{DATA / 'valid' / 'more' / 'from_the_editor.yaml'}: rule 'Evening lamp': "
        "triggers[0]: needs the location",
        f"{DATA / 'valid' / 'triggers.yaml'}: rule 'Porch at dusk': triggers[0]: needs the "
        "location",
        "10 rules OK in 6 files; 2 errors"], 1)


def test_check_reports_each_error_and_fails() -> None:
    report, code = check_directory(DATA / "broken")
    lines = report.splitlines()
    assert code == 1
    assert len(lines) == 6
    assert lines[1] == (f"{DATA / 'broken' / 'hall.yaml'}: rule 'Hall light at night': "
                        "actions[1].delay: 'five minutes' is not a duration")
    assert lines[-1] == "1 rule OK in 3 files; 5 errors"
