"""The rule engine against a real registry, the real safety policy and a manual clock; one
test through a real Mosquitto and the virtual home."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assistant.automation.scheduler import ManualClock, SystemClock
from assistant.automation.sun import Location, sun_event
from assistant.messages import Notice
from assistant.rules.engine import LOOP_LIMIT, RuleEngine
from assistant.safety import SafetyPolicy
from tests.conftest import Broker
from tests.rules_support import (
    HOME,
    MONDAY_NOON,
    TIMEOUT,
    ZONE,
    Bus,
    Rig,
    Sink,
    home_registry,
    settle,
    write_rules,
)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[RuleEngine] = []

    async def make(text: str, *, location: Location | None = HOME,
                   allow_sensitive: frozenset[str] = frozenset(), per_minute: int = 30,
                   start: datetime = MONDAY_NOON, report: bool = True) -> Rig:
        registry = home_registry()
        clock = ManualClock(start)
        sink, bus = Sink(registry, report), Bus()
        notices: list[Notice] = []

        async def announce(notice: Notice) -> None:
            notices.append(notice)

        engine = RuleEngine(registry, send=sink, policy=SafetyPolicy(registry),
                            subscribe=bus.subscribe, publish=bus.publish, announce=announce,
                            clock=clock, location=location, allow_sensitive=allow_sensitive,
                            max_runs_per_minute=per_minute)
        made.append(engine)
        directory = tmp_path / uuid.uuid4().hex[:6]
        errors = engine.load(write_rules(directory, text).rules)
        engine.start()
        await settle()
        return Rig(engine, registry, clock, sink, bus, directory, notices, errors)

    yield make
    for engine in made:
        await asyncio.wait_for(engine.stop(), 4 * TIMEOUT)


# -- triggers ----------------------------------------------------------------------------------


async def test_state_trigger_fires_on_the_change_it_names(rig: Any) -> None:
    home = await rig("""
        - alias: hall light on motion
          triggers: {trigger: state, entity_id: binary_sensor.hall_motion, from: "off", to: "on"}
          actions: {action: light.turn_on, target: {entity_id: light.hall},
                    data: {brightness_pct: 40}}
        """)
    home.set("binary_sensor.hall_motion", "off", battery=90)  # an attribute only: no
    home.set("sensor.bath_humidity", "55")  # another entity: no
    await settle()
    assert home.sink.sent == []
    home.set("binary_sensor.hall_motion", "on")
    await home.sink.count(1)
    assert home.sink.sent == [("light.hall", "turn_on", {"brightness": 102})]
    assert home.engine.rules()[0].last_triggered == MONDAY_NOON.isoformat()


async def test_state_trigger_for_fires_only_when_the_state_held(rig: Any) -> None:
    home = await rig("""
        - alias: motion held
          triggers: {trigger: state, entity_id: binary_sensor.hall_motion, to: "on",
                     for: {minutes: 2}}
          actions: {action: light.turn_on, target: {entity_id: light.hall}}
        """)
    home.set("binary_sensor.hall_motion", "on")
    await home.advance(119)
    assert home.sink.sent == []  # not before the two minutes
    home.set("binary_sensor.hall_motion", "off")  # broken by a change
    await home.advance(60)
    assert home.sink.sent == []
    home.set("binary_sensor.hall_motion", "on")
    await home.advance(60)
    home.set("binary_sensor.hall_motion", "on", battery=80)  # an attribute: still holding
    await home.advance(60)
    await home.sink.count(1)
    assert home.sink.services() == [("light.hall", "turn_on")]


async def test_numeric_state_fires_when_it_starts_to_match(rig: Any) -> None:
    home = await rig("""
        - alias: humid
          triggers: {trigger: numeric_state, entity_id: sensor.bath_humidity, above: 60}
          actions: {action: fan.turn_on, target: {entity_id: fan.bath}}
        """)
    home.set("sensor.bath_humidity", "60")  # not above
    home.set("sensor.bath_humidity", "not a number")
    await settle()
    assert home.sink.sent == []
    home.set("sensor.bath_humidity", "65")
    await home.sink.count(1)
    home.set("sensor.bath_humidity", "70")  # still above: no second run
    await settle()
    assert len(home.sink.sent) == 1
    home.set("sensor.bath_humidity", "50")
    home.set("sensor.bath_humidity", "61")
    await home.sink.count(2)


async def test_numeric_state_already_in_range_waits_for_a_crossing(rig: Any) -> None:
    home = await rig("""
        - alias: dry
          triggers: {trigger: numeric_state, entity_id: sensor.bath_humidity, below: 50,
                     for: 30}
          actions: {action: fan.turn_off, target: {entity_id: fan.bath}}
        """)
    home.set("sensor.bath_humidity", "39")  # was 40: in range all along
    await home.advance(60)
    assert home.sink.sent == []
    home.set("sensor.bath_humidity", "55")
    home.set("sensor.bath_humidity", "45")
    await home.advance(20)
    home.set("sensor.bath_humidity", "52")  # left the range before the 30 s: cancelled
    await home.advance(60)
    assert home.sink.sent == []
    home.set("sensor.bath_humidity", "45")
    await home.advance(30)
    await home.sink.count(1)


async def test_mqtt_trigger_matches_topic_payload_and_template(rig: Any) -> None:
    home = await rig("""
        - alias: button
          mode: queued
          triggers:
            - {trigger: mqtt, topic: "buttons/+/action", payload: "single"}
            - {trigger: mqtt, topic: "sensors/#", payload: "ON",
               value_template: "{{ value_json.state }}", id: json}
          actions:
            - action: mqtt.publish
              data:
                topic: "seen/{{ trigger.id }}"
                payload: "{{ trigger.topic }} {{ trigger.payload_json.battery
                           if trigger.payload_json is defined else '-' }}"
        """)
    home.bus.deliver("buttons/hall/action", "double")
    home.bus.deliver("buttons/hall/other", "single")
    home.bus.deliver("sensors/door", '{"state": "OFF"}')
    await settle()
    assert [m.topic for m in home.bus.published] == []
    home.bus.deliver("buttons/hall/action", "single")
    home.bus.deliver("sensors/door/x", '{"state": "ON", "battery": 7}')
    await settle()
    assert [(m.topic, m.payload) for m in home.bus.published] == [
        ("seen/0", b"buttons/hall/action -"), ("seen/json", b"sensors/door/x 7")]


async def test_time_trigger_fires_at_its_time_only(rig: Any) -> None:
    home = await rig("""
        - alias: evening
          triggers: {trigger: time, at: "18:30"}
          actions: {action: light.turn_on, target: {entity_id: light.kitchen}}
        """)
    await home.advance(6 * 3600 + 29 * 60)  # 18:29
    assert home.sink.sent == []
    await home.advance(60)
    await home.sink.count(1)
    home.clock.set(MONDAY_NOON + timedelta(days=3, hours=6, minutes=31))  # a jump of 3 days
    await settle()
    assert len(home.sink.sent) == 2  # once, not once per missed day


async def test_time_pattern_fires_every_five_minutes(rig: Any) -> None:
    home = await rig("""
        - alias: every five
          triggers: {trigger: time_pattern, minutes: "/5"}
          actions: {action: switch.toggle, target: {entity_id: switch.kettle}}
        """)
    await home.advance(299)
    assert home.sink.sent == []
    await home.advance(1)
    await home.sink.count(1)
    await home.advance(300)
    await home.sink.count(2)
    assert home.sink.services() == [("switch.kettle", "turn_on"), ("switch.kettle", "turn_off")]


async def test_sun_trigger_with_offset_and_the_need_for_a_location(rig: Any) -> None:
    text = """
        - alias: dusk
          triggers: {trigger: sun, event: sunset, offset: "-00:30:00"}
          actions: {action: light.turn_on, target: {entity_id: light.hall}}
        """
    home = await rig(text)
    sunset = sun_event(MONDAY_NOON.date(), "sunset", HOME)
    assert sunset is not None
    home.clock.set(sunset - timedelta(minutes=31))
    await settle()
    assert home.sink.sent == []
    home.clock.set(sunset - timedelta(minutes=30))
    await settle()
    await home.sink.count(1)
    nowhere = await rig(text, location=None)
    assert [e.key for e in nowhere.load_errors] == ["triggers[0]"]
    assert "location" in nowhere.load_errors[0].message
    assert nowhere.engine.rules()[0].enabled is False


async def test_homeassistant_start_and_shutdown(rig: Any) -> None:
    home = await rig("""
        - alias: at start
          triggers: {trigger: homeassistant, event: start}
          actions: {say: "The hub is up"}
        - alias: at shutdown
          triggers: {trigger: homeassistant, event: shutdown}
          actions: {action: mqtt.publish, data: {topic: bye, payload: "{{ trigger.event }}"}}
        """)
    await settle()
    assert [(n.kind, n.text) for n in home.notices] == [("rule", "The hub is up")]
    assert home.bus.published == []  # not before the stop
    await asyncio.wait_for(home.engine.stop(), TIMEOUT)
    assert [(m.topic, m.payload) for m in home.bus.published] == [("bye", b"shutdown")]


async def test_trigger_variables_this_and_disabled_triggers(rig: Any) -> None:
    home = await rig("""
        - alias: Tell Me
          id: tell_me
          variables: {where: hall}
          triggers:
            - {trigger: mqtt, topic: off_topic, enabled: false}
            - {trigger: mqtt, topic: tell, variables: {what: "{{ trigger.payload }}!"}}
          actions:
            - action: mqtt.publish
              data: {topic: told, payload: "{{ what }} {{ where }} {{ this.entity_id }} {{
                     this.attributes.id }} {{ trigger.idx }}"}
        """)
    home.bus.deliver("off_topic", "x")
    home.bus.deliver("tell", "hi")
    await settle()
    assert [m.payload for m in home.bus.published] == [b"hi! hall automation.tell_me tell_me 1"]


# -- conditions --------------------------------------------------------------------------------


def _button_rule(conditions: str) -> str:
    return f"""
        - alias: guarded
          triggers: {{trigger: mqtt, topic: go, id: press}}
          conditions: {conditions}
          actions: {{action: light.turn_on, target: {{entity_id: light.hall}}}}
        """


async def _fires(home: Rig) -> bool:
    before = len(home.sink.sent)
    home.bus.deliver("go", "x")
    await settle()
    return len(home.sink.sent) > before


@pytest.mark.parametrize(("conditions", "setup", "expected"), [
    ('{condition: state, entity_id: vacuum.robot, state: cleaning}', {}, False),
    ('{condition: state, entity_id: vacuum.robot, state: [docked, idle]}', {}, True),
    ('{condition: numeric_state, entity_id: sensor.bath_humidity, above: 30, below: 45}',
     {}, True),
    ('{condition: numeric_state, entity_id: sensor.bath_humidity, above: 40}', {}, False),
    ('{condition: numeric_state, entity_id: sensor.bath_humidity, above: 30, below: 45}',
     {"sensor.bath_humidity": "unknown"}, False),
    ('{condition: time, after: "11:00", before: "13:00", weekday: [mon]}', {}, True),
    ('{condition: time, after: "11:00", before: "13:00", weekday: [tue]}', {}, False),
    ('{condition: time, after: "22:00", before: "06:00"}', {}, False),
    ('{condition: sun, after: sunrise, before: sunset}', {}, True),
    ('{condition: sun, after: sunset}', {}, False),
    ('"{{ is_state(\'vacuum.robot\', \'docked\') and trigger.id == \'press\' }}"', {}, True),
    ('"{{ states(\'sensor.bath_humidity\') | int > 50 }}"', {}, False),
    ('{condition: trigger, id: press}', {}, True),
    ('{condition: trigger, id: other}', {}, False),
    ('{or: [{condition: trigger, id: other}, {condition: state, entity_id: light.hall, '
     'state: "off"}]}', {}, True),
    ('{and: [{condition: trigger, id: press}, {condition: state, entity_id: light.hall, '
     'state: "on"}]}', {}, False),
    ('{not: [{condition: state, entity_id: vacuum.robot, state: docked}]}', {}, False),
    ('{not: [{condition: state, entity_id: vacuum.robot, state: cleaning}]}', {}, True),
])
async def test_each_condition_kind(rig: Any, conditions: str, setup: dict[str, str],
                                   expected: bool) -> None:
    home = await rig(_button_rule(conditions))
    for entity_id, state in setup.items():
        home.set(entity_id, state)
    assert await _fires(home) is expected


async def test_state_condition_for_needs_the_state_to_have_held(rig: Any) -> None:
    home = await rig(_button_rule(
        "{condition: state, entity_id: vacuum.robot, state: cleaning, for: 600}"))
    home.set("vacuum.robot", "cleaning")
    await home.advance(599)
    assert not await _fires(home)
    await home.advance(1)
    assert await _fires(home)


# -- actions -----------------------------------------------------------------------------------


async def test_service_calls_map_to_entity_commands(rig: Any) -> None:
    home = await rig("""
        - alias: many
          triggers: {trigger: mqtt, topic: go}
          actions:
            - {action: homeassistant.turn_on, target: {entity_id: [light.kitchen, vacuum.robot]}}
            - {action: fan.turn_on, target: {entity_id: fan.bath}, data: {percentage: 66}}
            - {action: vacuum.pause, target: {entity_id: vacuum.robot}}
            - {action: media_player.volume_set, entity_id: media_player.speaker,
               data: {volume_level: 0.3}}
            - {action: media_player.play_media, data: {entity_id: media_player.speaker,
               media_content_id: "media-source://chime", media_content_type: music}}
            - {action: light.turn_on, target: {area_id: kitchen}, data: {color_name: red}}
            - {action: homeassistant.turn_off, target: {area_id: hall}}
        """)
    home.bus.deliver("go", "")
    await home.sink.count(8)
    assert home.sink.sent == [
        ("light.kitchen", "turn_on", {}), ("vacuum.robot", "vacuum_start", {}),
        ("fan.bath", "turn_on", {"percentage": 66}), ("vacuum.robot", "vacuum_pause", {}),
        ("media_player.speaker", "volume_set", {"volume_level": 0.3}),
        ("media_player.speaker", "play_media", {"media_content_id": "media-source://chime",
                                                "media_content_type": "music"}),
        ("light.kitchen", "turn_on", {"rgb_color": [255, 0, 0]}),
        # the hall by area: the light only, never the lock, garage door or its opener
        ("light.hall", "turn_off", {}),
    ]


async def test_unmappable_services_are_load_errors_with_their_key(rig: Any) -> None:
    home = await rig("""
        - alias: wrong
          triggers: {trigger: mqtt, topic: go}
          actions:
            - {action: light.turn_on, target: {entity_id: light.hall}, data: {flash: long}}
            - {action: light.turn_on, target: {entity_id: switch.kettle}}
            - if: [{condition: trigger, id: "0"}]
              then: [{action: notify.mobile_app, data: {message: hi}}]
            - {delay: {days: 3}}
        """)
    assert [(e.key, e.message.split(" (")[0]) for e in home.load_errors] == [
        ("actions[0].action", "light.turn_on does not take flash"),
        ("actions[1].target.entity_id", "light.turn_on cannot act on switch.kettle"),
        ("actions[2].then[0].action", "'notify.mobile_app' is not a service mimo-home can run"),
        ("actions[3].delay", "259200 s is longer than the 24 h a rule may wait"),
    ]
    assert (await home.engine.run_rule("wrong")).result == "failed"
    assert home.sink.sent == []


async def test_a_value_wrong_at_run_time_is_reported_once(rig: Any) -> None:
    home = await rig("""
        - alias: dim
          triggers: {trigger: mqtt, topic: go}
          actions:
            - {action: light.turn_on, target: {entity_id: light.hall},
               data: {brightness_pct: "{{ trigger.payload }}"}}
        """)
    for payload in ("500", "500", "30"):
        home.bus.deliver("go", payload)
        await settle()
    assert home.sink.sent == [("light.hall", "turn_on", {"brightness": 76})]
    assert [n.text for n in home.notices] == [
        "Rule dim: light.turn_on: brightness_pct 500 is outside 0..100"]


async def test_say_publish_variables_choose_if_and_repeat(rig: Any) -> None:
    home = await rig("""
        - alias: flow
          variables: {room: kitchen}
          triggers: {trigger: mqtt, topic: go}
          actions:
            - variables: {greeting: "hello {{ room }}"}
            - say: "{{ greeting }}"
              target: {area_id: kitchen}
            - choose:
                - conditions: "{{ trigger.payload == 'a' }}"
                  sequence: [{action: mqtt.publish, data: {topic: out/choose, payload: a}}]
              default: [{action: mqtt.publish, data: {topic: out/choose, payload: other}}]
            - if: [{condition: state, entity_id: light.hall, state: "on"}]
              then: [{action: mqtt.publish, data: {topic: out/if, payload: then}}]
              else: [{action: mqtt.publish, data: {topic: out/if, payload: else}}]
            - repeat:
                count: 2
                sequence: [{action: mqtt.publish, data: {topic: out/count,
                            payload: "{{ repeat.index }}{{ repeat.last }}"}}]
            - repeat:
                for_each: [x, y]
                sequence: [{action: mqtt.publish, data: {topic: out/each,
                            payload: "{{ repeat.item }}"}}]
            - repeat:
                while: "{{ repeat.index <= 2 }}"
                sequence: [{action: mqtt.publish, data: {topic: out/while,
                            payload: "{{ repeat.index }}"}}]
            - repeat:
                until: "{{ repeat.index >= 3 }}"
                sequence: [{action: mqtt.publish, data: {topic: out/until,
                            payload: "{{ repeat.index }}", retain: true, qos: 1}}]
        """)
    home.bus.deliver("go", "b")
    await settle(100)
    published = [(m.topic, m.payload.decode()) for m in home.bus.published]
    assert published == [
        ("out/choose", "other"), ("out/if", "else"), ("out/count", "1False"),
        ("out/count", "2True"), ("out/each", "x"), ("out/each", "y"), ("out/while", "1"),
        ("out/while", "2"), ("out/until", "1"), ("out/until", "2"), ("out/until", "3")]
    assert home.bus.published[-1].retain and home.bus.published[-1].qos == 1
    assert [(n.text, n.area) for n in home.notices] == [("hello kitchen", "kitchen")]


async def test_delay_and_wait_for_trigger_with_timeout(rig: Any) -> None:
    home = await rig("""
        - alias: waits
          triggers: {trigger: mqtt, topic: go}
          actions:
            - delay: 10
            - {action: light.turn_on, target: {entity_id: light.hall}}
            - wait_for_trigger: {trigger: state, entity_id: binary_sensor.hall_motion, to: "on"}
              timeout: 60
            - {action: mqtt.publish, data: {topic: waited,
               payload: "{{ wait.trigger.entity_id if wait.trigger else 'timeout' }}"}}
            - wait_for_trigger: {trigger: mqtt, topic: never}
              timeout: 30
              continue_on_timeout: false
            - {action: light.turn_off, target: {entity_id: light.hall}}
        """)
    home.bus.deliver("go", "")
    await settle()
    await home.advance(9)
    assert home.sink.sent == []
    await home.advance(1)
    await home.sink.count(1)
    home.set("binary_sensor.hall_motion", "on")
    await settle()
    assert [m.payload for m in home.bus.published if m.topic == "waited"] == \
        [b"binary_sensor.hall_motion"]
    await home.advance(30)
    assert home.sink.services() == [("light.hall", "turn_on")]  # stopped at the timeout
    assert home.engine.rules()[0].running == 0


async def test_wait_template_stop_condition_and_continue_on_error(rig: Any) -> None:
    home = await rig("""
        - alias: waits for humidity
          triggers: {trigger: mqtt, topic: go}
          actions:
            - wait_template: "{{ states('sensor.bath_humidity') | int > 60 }}"
              timeout: 120
            - {action: fan.turn_on, target: {entity_id: fan.bath}}
            - {action: lock.unlock, target: {entity_id: lock.front_door},
               continue_on_error: true}
            - condition: state
              entity_id: vacuum.robot
              state: cleaning
            - {action: fan.turn_off, target: {entity_id: fan.bath}}
        - alias: stops
          triggers: {trigger: mqtt, topic: stop}
          actions:
            - stop: "nothing to do"
            - {action: fan.turn_off, target: {entity_id: fan.bath}}
        """)
    home.bus.deliver("go", "")
    await home.advance(60)
    assert home.sink.sent == []
    home.set("sensor.bath_humidity", "70")
    await home.sink.count(1)
    await settle()
    # the unlock was refused (continue_on_error went on), the condition ended the run
    assert home.sink.services() == [("fan.bath", "turn_on")]
    assert (await home.engine.run_rule("stops")).result == "stopped"
    assert home.sink.services() == [("fan.bath", "turn_on")]


# -- safety ------------------------------------------------------------------------------------


UNLOCK = """
    - alias: unlock on arrival
      triggers: {trigger: mqtt, topic: arrived}
      actions:
        - {action: lock.unlock, target: {entity_id: lock.front_door}}
        - {action: light.turn_on, target: {entity_id: light.hall}}
    """


async def test_a_sensitive_unlock_is_refused_unless_allowed(rig: Any) -> None:
    home = await rig(UNLOCK)
    home.bus.deliver("arrived", "")
    await settle()
    assert home.sink.sent == []  # not the lock, and the run stopped there
    assert home.registry.get("lock.front_door").state == "locked"
    assert len(home.notices) == 1 and "lock.front_door was not actuated" in home.notices[0].text
    assert "allow_sensitive" in home.notices[0].text
    allowed = await rig(UNLOCK, allow_sensitive=frozenset({"lock.front_door"}))
    allowed.bus.deliver("arrived", "")
    await allowed.sink.count(2)
    assert allowed.sink.services() == [("lock.front_door", "unlock"), ("light.hall", "turn_on")]


async def test_turn_off_never_unlocks_and_area_sweeps_skip_sensitive(rig: Any) -> None:
    home = await rig("""
        - alias: sweep
          triggers: {trigger: mqtt, topic: go}
          actions: {action: homeassistant.turn_on, target: {area_id: hall}}
        - alias: lock off
          triggers: {trigger: mqtt, topic: go}
          actions: {action: homeassistant.turn_off, target: {entity_id: lock.front_door}}
        """, allow_sensitive=frozenset({"lock.front_door", "switch.garage_opener"}))
    assert [(e.rule, e.key) for e in home.load_errors] == [
        ("lock off", "actions[0].target.entity_id")]
    home.bus.deliver("go", "")
    await settle()
    # the lock, the garage door and the switch named an opener are never swept by area
    assert home.sink.services() == [("light.hall", "turn_on")]


# -- modes, rate limit, loop protection --------------------------------------------------------


def _slow_rule(mode: str, extra: str = "") -> str:
    return f"""
        - alias: slow
          mode: {mode}
          {extra}
          triggers: {{trigger: mqtt, topic: go}}
          actions:
            - {{action: mqtt.publish, data: {{topic: began, payload: "{{{{ trigger.payload }}}}"}}}}
            - delay: 10
            - {{action: mqtt.publish, data: {{topic: ended, payload: "{{{{ trigger.payload }}}}"}}}}
        """


def _payloads(home: Rig, topic: str) -> list[str]:
    return [m.payload.decode() for m in home.bus.published if m.topic == topic]


@pytest.mark.parametrize(("mode", "extra", "began", "ended"), [
    ("single", "", ["1"], ["1"]),
    ("restart", "", ["1", "2", "3"], ["3"]),
    ("queued", "max: 2", ["1", "2"], ["1", "2"]),
    ("parallel", "max: 2", ["1", "2"], ["1", "2"]),
])
async def test_modes(rig: Any, mode: str, extra: str, began: list[str],
                     ended: list[str]) -> None:
    home = await rig(_slow_rule(mode, extra))
    for payload in ("1", "2", "3"):
        home.bus.deliver("go", payload)
        await settle()
    for _ in range(4):
        await home.advance(10)
    assert _payloads(home, "began") == began
    assert _payloads(home, "ended") == ended


async def test_single_mode_exceeded_is_logged_per_max_exceeded(
        rig: Any, caplog: pytest.LogCaptureFixture) -> None:
    loud = await rig(_slow_rule("single"))
    quiet = await rig(_slow_rule("single", "max_exceeded: silent"))
    with caplog.at_level(logging.WARNING, "assistant.rules.engine"):
        for home in (loud, quiet):
            home.bus.deliver("go", "1")
            home.bus.deliver("go", "2")
            await settle()
    assert sum("already running" in r.getMessage() for r in caplog.records) == 1


async def test_rate_limit_skips_the_excess_and_logs_once(
        rig: Any, caplog: pytest.LogCaptureFixture) -> None:
    home = await rig("""
        - alias: chatty
          mode: parallel
          max: 100
          triggers: {trigger: mqtt, topic: go}
          actions: {action: mqtt.publish, data: {topic: out, payload: x}}
        """, per_minute=5)
    with caplog.at_level(logging.WARNING, "assistant.rules.engine"):
        for _ in range(8):
            home.bus.deliver("go", "")
        await settle()
    assert len(_payloads(home, "out")) == 5
    assert sum("runs in a minute" in r.getMessage() for r in caplog.records) == 1
    await home.advance(60)
    home.bus.deliver("go", "")
    await settle()
    assert len(_payloads(home, "out")) == 6


async def test_a_rule_that_triggers_itself_is_disabled(rig: Any) -> None:
    home = await rig("""
        - alias: flip flop
          triggers: {trigger: state, entity_id: switch.kettle}
          actions: {action: switch.toggle, target: {entity_id: switch.kettle}}
        - alias: echo
          triggers: {trigger: mqtt, topic: echo}
          actions: {action: mqtt.publish, data: {topic: echo, payload: again}}
        """, per_minute=1000)
    home.set("switch.kettle", "on")
    home.bus.deliver("echo", "start")
    await settle(400)
    flips = len(home.sink.sent)
    assert flips == LOOP_LIMIT + 1  # the first run, then LOOP_LIMIT of its own
    assert len(_payloads(home, "echo")) == LOOP_LIMIT + 1
    info = {rule.name: rule for rule in home.engine.rules()}
    assert not info["flip flop"].enabled and "triggering itself" in info["flip flop"].problem
    assert not info["echo"].enabled
    assert sum("kept triggering itself" in n.text for n in home.notices) == 2
    home.set("switch.kettle", "off")  # detached: nothing more
    await settle()
    assert len(home.sink.sent) == flips


async def test_a_rule_not_caused_by_itself_is_not_counted(rig: Any) -> None:
    home = await rig("""
        - alias: follow
          mode: queued
          triggers: {trigger: state, entity_id: binary_sensor.hall_motion}
          actions: {action: light.toggle, target: {entity_id: light.hall}}
        """, per_minute=1000)
    for index in range(LOOP_LIMIT + 5):
        home.set("binary_sensor.hall_motion", "on" if index % 2 == 0 else "off")
        await settle()
    assert len(home.sink.sent) == LOOP_LIMIT + 5
    assert home.engine.rules()[0].enabled


# -- hostile input -----------------------------------------------------------------------------


async def test_hostile_templates_and_loops_are_bounded(rig: Any) -> None:
    home = await rig("""
        - alias: spin
          triggers: {trigger: mqtt, topic: spin}
          actions:
            - {action: mqtt.publish, data: {topic: out,
               payload: "{% for i in range(10**9) %}x{% endfor %}"}}
        - alias: forever
          triggers: {trigger: mqtt, topic: forever}
          actions:
            - repeat:
                while: "{{ true }}"
                sequence: [{variables: {n: 1}}]
        - alias: huge count
          triggers: {trigger: mqtt, topic: count}
          actions:
            - repeat:
                count: "{{ trigger.payload }}"
                sequence: [{action: mqtt.publish, data: {topic: out, payload: x}}]
        """)
    home.bus.deliver("spin", "")
    assert (await asyncio.wait_for(home.engine.run_rule("forever"), TIMEOUT)).result == "failed"
    home.bus.deliver("count", "1000000")
    await settle(50)
    assert not any(m.topic == "out" for m in home.bus.published)
    texts = " | ".join(n.text for n in home.notices)
    assert "template" in texts and "1000 passes" in texts and "more than 1000" in texts
    home.bus.deliver("count", "2")  # the engine still runs rules
    await settle(50)
    assert len(_payloads(home, "out")) == 2


# -- running by hand, reloading ----------------------------------------------------------------


async def test_run_rule_skips_triggers_and_conditions(rig: Any) -> None:
    home = await rig(_button_rule("{condition: state, entity_id: vacuum.robot, state: cleaning}"))
    assert not await _fires(home)
    outcome = await home.engine.run_rule("guarded")
    assert outcome.result == "done"
    assert home.sink.services() == [("light.hall", "turn_on")]
    with pytest.raises(KeyError):
        await home.engine.run_rule("no such rule")


async def test_reload_keeps_unchanged_rules_running_and_stops_changed_ones(
        rig: Any, tmp_path: Path) -> None:
    home = await rig(_slow_rule("single") + """
        - alias: other
          triggers: {trigger: mqtt, topic: other}
          actions: [{delay: 10}, {action: mqtt.publish, data: {topic: other_done, payload: x}}]
        """)
    home.bus.deliver("go", "1")
    home.bus.deliver("other", "")
    await settle()
    changed = write_rules(home.directory, _slow_rule("single") + """
        - alias: other
          triggers: {trigger: mqtt, topic: other}
          actions: [{delay: 20}, {action: mqtt.publish, data: {topic: other_done, payload: y}}]
        """)
    home.engine.load(changed.rules)
    await settle()
    await home.advance(10)
    assert _payloads(home, "ended") == ["1"]  # the unchanged rule's run went on
    assert _payloads(home, "other_done") == []  # the changed rule's run was stopped
    home.bus.deliver("go", "2")  # still attached
    home.engine.load([])
    await settle()
    assert home.engine.rules() == []
    home.bus.deliver("go", "3")
    await home.advance(10)
    assert _payloads(home, "began") == ["1", "2"]


# -- through a real broker and the virtual home ------------------------------------------------


async def test_an_mqtt_rule_fires_on_a_real_publish_and_commands_a_virtual_device(
        broker: Broker, tmp_path: Path) -> None:
    from assistant.config import Config, MqttConfig
    from assistant.virtual.home import demo_home
    from assistant.virtual.stack import running_home
    from tests.virtual_home_support import observe, until

    base = f"rules-{uuid.uuid4().hex[:8]}"
    config = Config(state_dir=tmp_path / "state",
                    mqtt=MqttConfig(host=broker.host, port=broker.port, base_topic=base,
                                    client_id=base),
                    llm={"enabled": False}, voice={"enabled": False}, mdns={"enabled": False})
    button = f"{base}-buttons/hall/action"
    rules = write_rules(tmp_path / "rules", f"""
        - alias: hall button
          triggers: {{trigger: mqtt, topic: "{base}-buttons/+/action", payload: single}}
          actions: {{action: light.turn_on, target: {{entity_id: light.kitchen}},
                     data: {{brightness_pct: 50}}}}
        """)
    async with running_home(config, demo_home(), home_topic=f"{base}-home") as (house, daemon):
        notices: list[Notice] = []

        async def announce(notice: Notice) -> None:
            notices.append(notice)

        engine = RuleEngine(daemon.registry, send=daemon.gateway.send, policy=daemon.policy,
                            subscribe=daemon.link.subscribe, publish=daemon.link.publish,
                            announce=announce, clock=SystemClock(ZONE), location=HOME)
        assert engine.load(rules.rules) == []
        engine.start()
        light = house.states()["light.kitchen"]
        assert light.state != "on"
        client = await observe(broker)
        # Subscriptions go out in order on the link's one connection: once a probe on the same
        # filter comes back, the rule's subscription is in place too.
        probed = asyncio.Event()
        stop_probe = daemon.link.subscribe(
            f"{base}-buttons/+/action", lambda m: probed.set() if m.payload == b"probe" else None)

        async def probe() -> None:
            while not probed.is_set():
                await asyncio.to_thread(client.publish, f"{base}-buttons/probe/action", "probe")
                await asyncio.sleep(0.1)

        try:
            await asyncio.wait_for(probe(), TIMEOUT)
            await asyncio.to_thread(client.publish, button, "double")
            await asyncio.to_thread(client.publish, button, "single")
            await until(lambda: house.states()["light.kitchen"].state == "on", TIMEOUT)
        finally:
            stop_probe()
            client.close()
        assert house.states()["light.kitchen"].attributes.get("brightness") in (127, 128)
        assert notices == []
        await asyncio.wait_for(engine.stop(), 4 * TIMEOUT)
