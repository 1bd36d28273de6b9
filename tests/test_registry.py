import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from assistant.device_data import DeviceLimits
from assistant.registry import (
    Area,
    DeviceRegistry,
    Entity,
    EntityPatch,
    RegistryFullError,
    normalize_name,
)


def light(entity_id: str = "light.kitchen", **extra: object) -> Entity:
    return Entity(entity_id=entity_id, name="Kitchen Light", domain="light", area="kitchen",
                  source="test", **extra)


def test_entities_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state" / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.set_area(Area(id="kitchen", name="Kitchen", floor="ground"))
    registry.upsert(light(aliases=("cooking light",)))
    registry.update_state("light.kitchen", "on", {"brightness": 128})
    registry.close()

    reopened = DeviceRegistry(db)
    entity = reopened.get("light.kitchen")
    assert entity is not None
    assert (entity.state, entity.attributes["brightness"]) == ("on", 128)
    assert entity.aliases == ("cooking light",)
    assert reopened.areas["kitchen"].floor == "ground"
    mode = reopened._db.execute("PRAGMA journal_mode").fetchone()[0]  # noqa: SLF001
    assert mode == "wal"
    reopened.close()


def test_listeners_hear_structure_and_state_changes_and_can_unsubscribe() -> None:
    registry = DeviceRegistry(None)
    heard = []
    unsubscribe = registry.subscribe(heard.append)
    registry.upsert(light())
    registry.update_state("light.kitchen", "on")
    registry.update_state("light.kitchen", "on")  # unchanged, but the device spoke
    registry.update_state("light.kitchen", available=True)  # no change: no event
    unsubscribe()
    registry.remove("light.kitchen")
    assert [(c.entity_id, c.structure, c.reported) for c in heard] == [
        ("light.kitchen", True, False), ("light.kitchen", False, True),
        ("light.kitchen", False, True)]


def test_persisted_states_are_not_reported_until_the_device_speaks(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(light())
    registry.update_state("light.kitchen", "on")
    assert registry.get("light.kitchen").reported
    registry.close()

    reopened = DeviceRegistry(db)
    assert not reopened.get("light.kitchen").reported
    reopened.upsert(light())  # the retained discovery config comes back first
    assert not reopened.get("light.kitchen").reported
    reopened.update_state("light.kitchen", attributes={"brightness": 3})
    assert not reopened.get("light.kitchen").reported  # attributes alone say no state
    reopened.update_state("light.kitchen", "on")  # the same state, but now from the device
    assert reopened.get("light.kitchen").reported
    reopened.close()


def test_a_re_announced_entity_keeps_its_last_state() -> None:
    registry = DeviceRegistry(None)
    registry.upsert(light(state="on"))
    registry.upsert(light())  # a discovery config carries no state
    assert registry.get("light.kitchen").state == "on"


def test_config_overrides_add_aliases_name_and_area() -> None:
    registry = DeviceRegistry(None)
    registry.upsert(light(aliases=("ceiling",)))
    registry.set_overrides({"light.kitchen": EntityPatch("Cooker Light", ("stove light",),
                                                         "Main Kitchen")})
    entity = registry.get("light.kitchen")
    assert entity.name == "Cooker Light"
    assert entity.aliases == ("ceiling", "stove light")
    assert registry.areas[entity.area].name == "Main Kitchen"


def test_normalize_name() -> None:
    assert normalize_name("  Küche-Licht_2! ") == "kuche licht 2"


# -- writes off the event loop ------------------------------------------------------------


def test_a_burst_of_state_updates_is_written_off_the_caller_thread_in_few_batches(
    tmp_path: Path,
) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(light())
    registry.flush()
    statements: list[tuple[bool, str]] = []
    registry._db.set_trace_callback(  # noqa: SLF001
        lambda sql: statements.append((threading.current_thread() is threading.main_thread(),
                                       sql.split()[0].upper())))
    started = time.perf_counter()
    for level in range(20_000):
        registry.update_state("light.kitchen", "on", {"brightness": level % 256, "n": level})
    burst_s = time.perf_counter() - started
    on_caller = [sql for on_main, sql in statements if on_main]
    registry.close()  # stores what is left

    assert on_caller == []  # not one statement ran on the caller's (the event loop's) thread
    commits = sum(1 for _, sql in statements if sql == "COMMIT")
    assert 1 <= commits <= 50, commits  # batches, not 20,000 transactions
    assert burst_s < 5
    reopened = DeviceRegistry(db)
    assert reopened.get("light.kitchen").attributes["n"] == 19_999  # nothing lost
    reopened.close()


def test_the_writer_stores_changes_without_waiting_for_close(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(light())
    reader = sqlite3.connect(db)
    deadline = time.monotonic() + 5
    rows = 0
    while rows == 0 and time.monotonic() < deadline:  # the writer's short timer
        rows = reader.execute("SELECT count(*) FROM entities").fetchone()[0]
        time.sleep(0.01)
    reader.close()
    registry.close()
    assert rows == 1


def test_close_stores_removals_and_every_table(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.set_area(Area(id="kitchen", name="Kitchen"))
    registry.upsert(light())
    registry.upsert(light("light.gone"))
    registry.remove("light.gone")
    registry.close()
    reopened = DeviceRegistry(db)
    assert [e.entity_id for e in reopened.all_entities()] == ["light.kitchen"]
    assert "kitchen" in reopened.areas
    reopened.close()


def test_an_unstorable_entity_does_not_stop_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(light("light.broken", wire={"payload_on": "\ud800"}))  # a lone surrogate
    registry.flush()
    registry.upsert(light())
    registry.close()
    reopened = DeviceRegistry(db)
    assert [e.entity_id for e in reopened.all_entities()] == ["light.kitchen"]
    reopened.close()


def test_unique_id_is_persisted(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    registry = DeviceRegistry(db)
    registry.upsert(light(unique_id="0x00158d0001a2b3c4_light"))
    registry.close()
    reopened = DeviceRegistry(db)
    assert reopened.get("light.kitchen").unique_id == "0x00158d0001a2b3c4_light"
    reopened.close()


# -- limits -------------------------------------------------------------------------------


def test_entities_per_source_are_bounded_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = DeviceRegistry(None, DeviceLimits(max_entities_per_source=3))
    with caplog.at_level(logging.WARNING, logger="assistant.registry"):
        for n in range(3):
            registry.upsert(light(f"light.l{n}"))
        for n in range(3, 6):
            with pytest.raises(RegistryFullError):
                registry.upsert(light(f"light.l{n}"))
    assert len(registry) == 3
    assert caplog.text.count("max_entities_per_source") == 1
    registry.upsert(light("light.l0", state="on"))  # a known entity may still change
    registry.upsert(Entity(entity_id="switch.other", name="Other", domain="switch",
                           source="another adapter"))  # the limit is per source
    registry.remove("light.l1")
    registry.upsert(light("light.l9"))  # room again
    assert {e.entity_id for e in registry.all_entities()} == {
        "light.l0", "light.l2", "light.l9", "switch.other"}


def test_aliases_and_attributes_per_entity_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    registry = DeviceRegistry(None, DeviceLimits(max_aliases=2, max_attributes=3))
    with caplog.at_level(logging.WARNING, logger="assistant.registry"):
        registry.upsert(light(aliases=("a", "b", "c", "d"), attributes={"x": 1, "y": 2}))
        registry.update_state("light.kitchen", attributes={"z": 3, "w": 4, "v": 5})
        registry.update_state("light.kitchen", attributes={"x": 10})  # known keys still change
    entity = registry.get("light.kitchen")
    assert entity.aliases == ("a", "b")
    assert entity.attributes == {"x": 10, "y": 2, "z": 3}
    assert "max_aliases" in caplog.text and caplog.text.count("max_attributes") == 1
    registry.set_overrides({"light.kitchen": EntityPatch(aliases=("stove light",))})
    assert registry.get("light.kitchen").aliases == ("a", "b", "stove light")  # the user's stay


def test_areas_created_by_devices_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    registry = DeviceRegistry(None, DeviceLimits(max_areas=2))
    with caplog.at_level(logging.WARNING, logger="assistant.registry"):
        assert registry.ensure_area("Kitchen", "ha_discovery") == "kitchen"
        assert registry.ensure_area("Hall", "ha_discovery") == "hall"
        assert registry.ensure_area("Attic", "ha_discovery") is None
        assert registry.ensure_area("Cellar", "ha_discovery") is None
        assert registry.ensure_area("kitchen", "ha_discovery") == "kitchen"  # known: fine
    assert set(registry.areas) == {"kitchen", "hall"}
    assert caplog.text.count("max_areas") == 1


# -- one appliance, several adapters ----------------------------------------------------

HUE_BULB = ("zigbee:0x0017880104e45517",)


def _ranked(*order: str):
    return lambda source: order.index(source) if source in order else len(order)


def _hue(entity_id: str, source: str, **extra: object) -> Entity:
    return Entity(entity_id=entity_id, name="Hue Bulb", domain="light", source=source,
                  device_ids=HUE_BULB, **extra)


def test_the_preferred_adapter_speaks_for_an_appliance_that_arrives_twice() -> None:
    registry = DeviceRegistry(None)
    registry.set_source_preference(_ranked("zigbee2mqtt", "ha_discovery"))
    registry.upsert(_hue("light.hue_bulb_ha", "ha_discovery"))
    assert registry.get("light.hue_bulb_ha") is not None  # alone, it is the appliance

    changes = []
    registry.subscribe(changes.append)
    registry.upsert(_hue("light.hue_bulb", "zigbee2mqtt"))
    assert [e.entity_id for e in registry.entities()] == ["light.hue_bulb"]
    assert registry.get("light.hue_bulb_ha") is None
    assert registry.get_any("light.hue_bulb_ha") is not None  # its adapter still owns it
    assert registry.preferred_source(registry.get_any("light.hue_bulb_ha")) == "zigbee2mqtt"
    assert any(c.entity_id is None and c.structure for c in changes)  # slot lists rebuild

    registry.remove("light.hue_bulb")
    assert registry.get("light.hue_bulb_ha") is not None  # the other adapter takes over


def test_the_other_preference_keeps_home_assistant_discovery() -> None:
    registry = DeviceRegistry(None)
    registry.set_source_preference(_ranked("ha_discovery", "zigbee2mqtt"))
    registry.upsert(_hue("light.hue_bulb_ha", "ha_discovery"))
    registry.upsert(_hue("light.hue_bulb", "zigbee2mqtt"))
    assert [e.entity_id for e in registry.entities()] == ["light.hue_bulb_ha"]


def test_different_appliances_and_entities_without_ids_are_never_hidden() -> None:
    registry = DeviceRegistry(None)
    registry.set_source_preference(_ranked("zigbee2mqtt", "ha_discovery"))
    registry.upsert(_hue("light.hue_bulb", "zigbee2mqtt"))
    registry.upsert(_hue("light.other_bulb", "ha_discovery").model_copy(
        update={"device_ids": ("zigbee:0x00158d0001a2b3c4",)}))
    registry.upsert(light().model_copy(update={"source": "ha_discovery"}))
    assert {e.entity_id for e in registry.entities()} == {
        "light.hue_bulb", "light.other_bulb", "light.kitchen"}


def test_an_appliance_that_changes_ids_is_reindexed() -> None:
    registry = DeviceRegistry(None)
    registry.set_source_preference(_ranked("zigbee2mqtt", "ha_discovery"))
    registry.upsert(_hue("light.hue_bulb_ha", "ha_discovery"))
    registry.upsert(_hue("light.hue_bulb", "zigbee2mqtt"))
    registry.upsert(_hue("light.hue_bulb", "zigbee2mqtt").model_copy(update={"device_ids": ()}))
    assert registry.get("light.hue_bulb_ha") is not None
