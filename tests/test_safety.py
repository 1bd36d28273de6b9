"""The one safety policy: sensitivity from domain, names in five languages, the wire and the
user's word; exposure; secrets; and the executor gate that asks it."""

from __future__ import annotations

import pytest

from assistant.config import ExposureConfig, ExposureRule
from assistant.messages import EntityCommand, MqttMessage
from assistant.registry import DeviceRegistry, Entity
from assistant.safety import (
    SECRET_MARK,
    SafetyPolicy,
    Verdict,
    exposure_predicate,
    extract_secrets,
    redact,
    redact_text,
    sensitive_name,
)
from skills.base import ActionRefusedError, ConfirmationRequired, ToolContext


def entity(entity_id: str, name: str, device_class: str | None = None, **extra: object) -> Entity:
    return Entity(entity_id=entity_id, name=name, domain=entity_id.split(".")[0],
                  device_class=device_class, **extra)


def policy_for(*entities: Entity, **kwargs: object) -> SafetyPolicy:
    registry = DeviceRegistry(None)
    for e in entities:
        registry.upsert(e)
    return SafetyPolicy(registry, **kwargs)


@pytest.mark.parametrize(("e", "sensitive"), [
    (entity("lock.front", "Front Door"), True),
    (entity("valve.lawn", "Lawn"), True),
    (entity("alarm_control_panel.home", "House"), True),
    (entity("siren.hall", "Hall"), True),
    (entity("cover.garage", "Door", "garage"), True),
    (entity("cover.drive", "Driveway", "gate"), True),
    (entity("button.node_restart", "Node", "restart"), True),
    (entity("switch.garage_opener", "Garage Door Opener"), True),
    (entity("cover.blinds", "Living Room Blinds", "blind"), False),
    (entity("light.garage", "Garage Light"), False),  # a light in the garage is a light
    (entity("switch.coffee", "Coffee Maker"), False),
    (entity("fan.ventilator", "Ventilator"), False),  # German for fan, ends like "-tor"
])
def test_domain_class_and_name_decide_sensitivity(e: Entity, sensitive: bool) -> None:
    assert policy_for(e).is_sensitive(e) is sensitive


@pytest.mark.parametrize("name", [
    "door opener", "Buzzer", "Garagentor", "Hoftor", "Türöffner", "Haustürschloss",
    "portail", "Porte de garage", "Gâche électrique", "cancello", "Apriporta", "Portón",
    "Cerradura", "Válvula riego", "Factory reset", "Restart",
])
def test_names_of_openings_in_every_language_make_a_relay_sensitive(name: str) -> None:
    relay = entity("switch.relay", name)
    assert sensitive_name(name), name
    assert policy_for(relay).is_sensitive(relay)


@pytest.mark.parametrize("name", ["Desk Lamp", "Monitor", "Motor", "Ventilator", "Torch",
                                  "Kitchen Radio", "Doorbell Light", "Tortoise Heater"])
def test_ordinary_names_are_not_sensitive(name: str) -> None:
    relay = entity("switch.x", name)
    assert sensitive_name(name) is None and not policy_for(relay).is_sensitive(relay)


LOCK = entity("lock.front", "Front Door", wire={
    "command_topic": "z2m/front_lock/set", "state_topic": "z2m/front_lock",
    "availability_topic": "z2m/bridge/state"})


@pytest.mark.parametrize("topic", ["z2m/front_lock/set", "z2m/front_lock"])
def test_a_switch_on_a_locks_topic_is_as_sensitive_as_the_lock(topic: str) -> None:
    relay = entity("switch.helper", "Helper", wire={"command_topic": topic})
    policy = policy_for(LOCK, relay)
    assert policy.is_sensitive(relay)
    assert policy.decide(relay, EntityCommand(relay.entity_id, "turn_on")).verdict \
        is Verdict.CONFIRM


def test_sharing_only_availability_with_a_lock_is_not_sensitive() -> None:
    light = entity("light.hall", "Hall", wire={"command_topic": "z2m/hall/set",
                                               "availability_topic": "z2m/bridge/state"})
    assert not policy_for(LOCK, light).is_sensitive(light)


def test_what_a_command_would_publish_decides_too() -> None:
    """A device whose own description looks harmless but whose command lands on the lock."""
    plug = entity("switch.plug", "Plug", wire={"command_topic": "plug/set"})

    def encode(e: Entity, command: EntityCommand) -> list[MqttMessage]:
        return [MqttMessage("z2m/front_lock/set", b'{"state": "UNLOCK"}')]

    policy = policy_for(LOCK, plug, encode=encode)
    decision = policy.decide(plug, EntityCommand(plug.entity_id, "turn_on"))
    assert decision.verdict is Verdict.CONFIRM and "z2m/front_lock/set" in decision.reason
    harmless = policy_for(LOCK, plug, encode=lambda e, c: [MqttMessage("plug/set", b"ON")])
    assert harmless.decide(plug, EntityCommand(plug.entity_id, "turn_on")).verdict \
        is Verdict.ALLOW


def test_the_users_word_marks_and_lifts_but_never_lifts_a_lock() -> None:
    heater = entity("switch.heater", "Heater")
    opener = entity("switch.opener", "Gate Opener")
    policy = policy_for(heater, opener, LOCK, user_marks={
        "switch.heater": True, "switch.opener": False, "lock.front": False})
    assert policy.is_sensitive(heater)
    assert not policy.is_sensitive(opener)
    assert policy.is_sensitive(LOCK)


def test_on_off_words_never_lock_or_unlock() -> None:
    policy = policy_for(LOCK)
    for service in ("turn_on", "turn_off", "toggle"):
        assert policy.decide(LOCK, EntityCommand("lock.front", service)).verdict \
            is Verdict.REFUSE
    assert policy.decide(LOCK, EntityCommand("lock.front", "unlock")).verdict is Verdict.CONFIRM


def test_sweeps_never_include_sensitive_entities() -> None:
    light = entity("light.hall", "Hall")
    policy = policy_for(light, LOCK)
    assert policy.may_sweep(light) and not policy.may_sweep(LOCK)


def test_exposure_defaults_hide_maintenance_entities() -> None:
    exposed = exposure_predicate(ExposureConfig())
    assert exposed(entity("light.hall", "Hall"))
    assert not exposed(entity("button.restart", "Restart", entity_category="config"))
    assert not exposed(entity("sensor.rssi", "RSSI", entity_category="diagnostic"))
    assert not exposed(entity("switch.hidden", "Hidden", enabled_by_default=False))


def test_exposure_rules_include_and_exclude() -> None:
    config = ExposureConfig(include=ExposureRule(domains=["light"], entities=["lock.front"]),
                            exclude=ExposureRule(areas=["attic"], entities=["light.x"]))
    exposed = exposure_predicate(config)
    assert exposed(entity("light.hall", "Hall"))
    assert exposed(LOCK)  # named in include, though not a light
    assert not exposed(entity("switch.fan", "Fan"))  # include limits to lights
    assert not exposed(entity("light.attic", "Attic", area="attic"))
    assert not exposed(entity("light.x", "X"))


def test_unexposed_entities_exist_for_no_path_but_their_adapter() -> None:
    registry = DeviceRegistry(None)
    registry.set_exposure(exposure_predicate(ExposureConfig()))
    reset = entity("button.reset", "Factory reset", entity_category="config")
    registry.upsert(reset)
    assert registry.get("button.reset") is None and registry.entities() == []
    assert registry.get_any("button.reset") == reset
    decision = SafetyPolicy(registry).decide(reset, EntityCommand("button.reset", "press"))
    assert decision.verdict is Verdict.REFUSE


def test_secrets_are_replaced_everywhere_they_could_show() -> None:
    assert redact({"code": "1234", "brightness": 3}) == {"code": SECRET_MARK, "brightness": 3}
    assert redact({"code": None}) == {"code": None}
    assert redact_text('{"action":"DISARM","code":"1234"}', {"code": "1234"}) == \
        '{"action":"DISARM","code":"' + SECRET_MARK + '"}'
    masked, found = extract_secrets("disarm the alarm, code 4321 please")
    assert found == ["4321"] and "4321" not in masked and SECRET_MARK in masked
    assert extract_secrets("the pin is 0000") == (f"the pin is {SECRET_MARK}", ["0000"])
    assert extract_secrets("turn on the light") == ("turn on the light", [])


class Recorder:
    def __init__(self) -> None:
        self.sent: list[EntityCommand] = []

    async def __call__(self, commands: list[tuple[Entity, EntityCommand]]) -> None:
        self.sent.extend(c for _, c in commands)


async def test_the_executor_gate_asks_the_policy_for_every_command() -> None:
    relay = entity("switch.helper", "Helper", wire={"command_topic": "z2m/front_lock/set"})
    light = entity("light.hall", "Hall")
    policy = policy_for(LOCK, relay, light)
    sent = Recorder()
    context = ToolContext(policy.registry, sent, policy)
    with pytest.raises(ConfirmationRequired) as needed:
        await context.send([(light, EntityCommand("light.hall", "turn_on")),
                            (relay, EntityCommand("switch.helper", "turn_on"))])
    assert [e.entity_id for e in needed.value.entities] == ["switch.helper"]
    assert sent.sent == []  # nothing goes out when one command needs a yes
    with pytest.raises(ActionRefusedError):
        await context.send([(LOCK, EntityCommand("lock.front", "turn_off"))])
    confirmed = ToolContext(policy.registry, sent, policy, confirmed=frozenset({"switch.helper"}))
    await confirmed.send([(relay, EntityCommand("switch.helper", "turn_on"))])
    assert sent.sent == [EntityCommand("switch.helper", "turn_on")]
    # a yes for one device is no yes for another
    with pytest.raises(ConfirmationRequired):
        await confirmed.send([(LOCK, EntityCommand("lock.front", "unlock"))])
    asked = ToolContext(policy.registry, sent, policy, ask_first=frozenset({"light.hall"}))
    with pytest.raises(ConfirmationRequired):
        await asked.send([(light, EntityCommand("light.hall", "turn_on"))])


def test_the_fast_path_and_the_speech_vocabulary_never_see_a_hidden_entity() -> None:
    from assistant.understanding.fastpath import FastPath
    from assistant.voice.stt import build_vocabulary

    registry = DeviceRegistry(None)
    registry.set_exposure(exposure_predicate(ExposureConfig()))
    registry.upsert(entity("switch.kettle", "Kettle"))
    registry.upsert(entity("switch.reboot_node", "Node Reboot", entity_category="config"))
    fast = FastPath(registry)
    try:
        assert fast.understand("turn on the kettle").calls
        assert not fast.understand("turn on the node reboot").calls
    finally:
        fast.close()
    words = build_vocabulary(registry).casefold()
    assert "kettle" in words and "reboot" not in words
