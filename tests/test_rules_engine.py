"""The rule engine's triggers, conditions and actions against a real registry, the real
safety policy and a manual clock (its runs: tests/test_rules_engine_runs.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from assistant.automation.sun import sun_event
from tests.rules_support import (
    HOME,
    MONDAY_NOON,
    TIMEOUT,
    button_rule,
    fires,
    settle,
)


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
    home = await rig(button_rule(conditions))
    for entity_id, state in setup.items():
        home.set(entity_id, state)
    assert await fires(home) is expected


async def test_state_condition_for_needs_the_state_to_have_held(rig: Any) -> None:
    home = await rig(button_rule(
        "{condition: state, entity_id: vacuum.robot, state: cleaning, for: 600}"))
    home.set("vacuum.robot", "cleaning")
    await home.advance(599)
    assert not await fires(home)
    await home.advance(1)
    assert await fires(home)


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
