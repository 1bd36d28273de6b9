from pathlib import Path

from assistant.registry import Area, DeviceRegistry, Entity, EntityPatch, normalize_name


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
    registry.update_state("light.kitchen", "on")  # no change: no event
    unsubscribe()
    registry.remove("light.kitchen")
    assert [(c.entity_id, c.structure) for c in heard] == [
        ("light.kitchen", True), ("light.kitchen", False)]


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


def test_sensitive_entities() -> None:
    def entity(domain: str, name: str, device_class: str | None = None) -> Entity:
        return Entity(entity_id=f"{domain}.x", name=name, domain=domain,
                      device_class=device_class)

    assert entity("lock", "Front Door").sensitive
    assert entity("valve", "Sprinkler").sensitive
    assert entity("alarm_control_panel", "Alarm").sensitive
    assert entity("cover", "Door", "garage").sensitive
    assert entity("cover", "Driveway", "gate").sensitive
    assert entity("switch", "Garage Door Opener").sensitive
    assert not entity("cover", "Living Room Blinds", "blind").sensitive
    assert not entity("light", "Garage Light").sensitive
    assert not entity("switch", "Coffee Maker").sensitive


def test_normalize_name() -> None:
    assert normalize_name("  Küche-Licht_2! ") == "kuche licht 2"
