"""The rule engine's runs: safety, modes, the rate limit, loop protection, hostile input,
running by hand and reloading, on a manual clock; and one run through a real Mosquitto and
the virtual home."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from assistant.automation.scheduler import SystemClock
from assistant.messages import Notice
from assistant.rules.engine import LOOP_LIMIT, RuleEngine
from tests.conftest import Broker
from tests.rules_support import (
    HOME,
    TIMEOUT,
    ZONE,
    Rig,
    button_rule,
    fires,
    settle,
    write_rules,
)


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
    home = await rig(button_rule("{condition: state, entity_id: vacuum.robot, state: cleaning}"))
    assert not await fires(home)
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
