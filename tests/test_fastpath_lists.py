"""The fast path's lists are built off the event loop, and again once the home has changed."""

import asyncio
import threading

import pytest

from assistant.registry import Area, DeviceRegistry, Entity
from assistant.understanding import fastpath
from assistant.understanding.fastpath import FastPath


def a_home() -> DeviceRegistry:
    registry = DeviceRegistry(None)
    for area_id, name in [("kitchen", "Kitchen"), ("garden", "Garden")]:
        registry.set_area(Area(id=area_id, name=name))
    registry.upsert(Entity(entity_id="light.kitchen_light", name="Kitchen Light",
                           domain="light", area="kitchen", state="off"))
    return registry


def lamp(name: str) -> Entity:
    return Entity(entity_id=f"light.{name.lower().replace(' ', '_')}", name=name,
                  domain="light", area="garden", state="off")


@pytest.fixture()
def threads_built_on(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads the lists were built on, one per build."""
    built_on: list[int] = []
    build = fastpath.build_lists

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        built_on.append(threading.get_ident())
        return build(*args, **kwargs)

    monkeypatch.setattr(fastpath, "build_lists", recording)
    return built_on


async def test_the_lists_are_built_on_a_thread_while_the_loop_runs(
        threads_built_on: list[int]) -> None:
    registry = a_home()
    fast = FastPath(registry)
    ticks = 0
    building = asyncio.ensure_future(fast.prepare())
    while not building.done():  # the loop keeps turning while they are built
        ticks += 1
        await asyncio.wait([building], timeout=0.001)
    await building
    assert threads_built_on and threads_built_on[0] != threading.get_ident()
    assert ticks > 5
    lists = fast.lists
    assert fast.lists is lists and len(threads_built_on) == 1  # nothing changed: no rebuild

    registry.upsert(lamp("Garden Lamp"))
    await asyncio.wait_for(fast.prepare(), 60)
    assert len(threads_built_on) == 2 and threads_built_on[1] != threading.get_ident()
    assert fast.lists is not lists
    [call] = fast.understand("turn on the garden lamp").calls
    assert call.args["entity_ids"] == ["light.garden_lamp"]
    assert len(threads_built_on) == 2  # prepared: understanding built nothing more


async def test_stale_lists_are_never_used(threads_built_on: list[int]) -> None:
    registry = a_home()
    fast = FastPath(registry)
    await asyncio.wait_for(fast.prepare(), 60)
    registry.upsert(lamp("Garden Lamp"))
    # not prepared again: understanding builds them itself, on this thread
    [call] = fast.understand("turn on the garden lamp").calls
    assert call.args["entity_ids"] == ["light.garden_lamp"]
    assert threads_built_on[-1] == threading.get_ident()


async def test_changes_settle_after_a_quiet_time() -> None:
    registry = a_home()
    fast = FastPath(registry)
    await asyncio.wait_for(fast.prepare(), 60)
    loop = asyncio.get_running_loop()
    settled = asyncio.ensure_future(fast.changes_settled(0.3))
    done, _ = await asyncio.wait([settled], timeout=0.5)
    assert not done  # the lists are current: nothing to settle
    registry.upsert(lamp("Garden Lamp"))
    changed = loop.time()
    await asyncio.wait([settled], timeout=0.1)
    registry.upsert(lamp("Garden Spot"))  # a second change restarts the quiet time
    changed_again = loop.time()
    await asyncio.wait_for(settled, 5)
    assert loop.time() - changed_again >= 0.3 and loop.time() - changed >= 0.4
    await asyncio.wait_for(fast.prepare(), 60)
    assert fast.understand("turn on the garden spot").calls


async def test_a_stop_as_the_lists_are_built_is_not_lost() -> None:
    """The build ends and the daemon's stop comes in the same turn of the loop: the stop
    wins (Python 3.11's wait_for dropped it, and the daemon then never stopped)."""
    registry = a_home()
    fast = FastPath(registry)
    built = fast.lists  # a result for the build that is under way
    registry.upsert(lamp("Garden Lamp"))
    fast._building = asyncio.get_running_loop().create_future()
    preparing = asyncio.ensure_future(fast.prepare())
    await asyncio.sleep(0)  # it now waits for the build
    fast._building.set_result(built)
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(preparing, 5)


async def test_a_stop_as_the_home_changes_is_not_lost() -> None:
    registry = a_home()
    fast = FastPath(registry)
    await asyncio.wait_for(fast.prepare(), 60)
    settling = asyncio.ensure_future(fast.changes_settled(0.3))
    await asyncio.sleep(0)  # it now waits for a change
    registry.upsert(lamp("Garden Lamp"))
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(settling, 5)
