"""The scheduler on a manual clock and a real SQLite job store: triggers fire at the clock's
time and not before, jobs survive a restart, misses within grace run once, later ones are
reported, and a failing handler stops nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from assistant.automation.scheduler import JobDue, ManualClock, Scheduler, SystemClock

START = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)  # a Monday


class Recorder:
    """Handlers and on_missed that write down what they got."""

    def __init__(self) -> None:
        self.ran: list[JobDue] = []
        self.missed: list[JobDue] = []

    async def handler(self, due: JobDue) -> None:
        self.ran.append(due)

    def on_missed(self, due: JobDue) -> None:
        self.missed.append(due)

    def names(self) -> list[str]:
        return [due.name for due in self.ran]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def started(tmp_path: Path, clock: ManualClock, recorder: Recorder) -> AsyncIterator[
        Callable[[], Scheduler]]:
    """Start schedulers on one store file (each call is the hub starting again)."""
    made: list[Scheduler] = []

    def start() -> Scheduler:
        scheduler = Scheduler(tmp_path / "jobs.sqlite", clock=clock, timezone=UTC,
                              misfire_grace_s=300, on_missed=recorder.on_missed)
        scheduler.handle("test", recorder.handler)
        scheduler.start()
        made.append(scheduler)
        return scheduler

    yield start
    for scheduler in made:
        await scheduler.stop()


def at(seconds: float) -> DateTrigger:
    return DateTrigger(START + timedelta(seconds=seconds), timezone=UTC)


async def move(clock: ManualClock, scheduler: Scheduler, seconds: float) -> None:
    clock.advance(seconds)
    await scheduler.settle()


async def test_date_trigger_fires_at_its_time_and_not_before(started, clock, recorder) -> None:
    scheduler = started()
    job_id = scheduler.add("test", at(60), data={"n": 1}, name="one")
    await move(clock, scheduler, 59)
    assert recorder.ran == []
    await move(clock, scheduler, 1)
    assert [(d.id, d.data, d.due) for d in recorder.ran] == [
        (job_id, {"n": 1}, START + timedelta(seconds=60))]
    assert scheduler.get(job_id) is None  # a one-shot job is gone once run
    await move(clock, scheduler, 600)
    assert len(recorder.ran) == 1


async def test_cron_trigger_fires_at_each_fire_time(started, clock, recorder) -> None:
    scheduler = started()
    scheduler.add("test", CronTrigger(minute="*/10", timezone=UTC), data={}, name="every 10")
    await move(clock, scheduler, 0)
    assert recorder.names() == ["every 10"]  # a fire time equal to now counts (APScheduler)
    await move(clock, scheduler, 9 * 60 + 59)
    assert recorder.names() == ["every 10"]
    await move(clock, scheduler, 1)
    await move(clock, scheduler, 10 * 60)
    assert [d.due.strftime("%H:%M") for d in recorder.ran] == ["08:00", "08:10", "08:20"]
    info = scheduler.jobs("test")[0]
    assert info.next_run == START + timedelta(minutes=30)


async def test_job_in_sqlite_file_survives_a_restart(started, clock, recorder) -> None:
    first = started()
    job_id = first.add("test", at(120), data={"calls": [{"tool": "x", "args": {}}]},
                       name="kept")
    await first.stop()
    second = started()
    info = second.get(job_id)
    assert info is not None and info.data == {"calls": [{"tool": "x", "args": {}}]}
    assert second.jobs(kind="other") == []
    await move(clock, second, 120)
    assert recorder.names() == ["kept"]


async def test_missed_within_grace_runs_once_at_start(started, clock, recorder) -> None:
    first = started()
    first.add("test", at(60), data={}, name="late but fine")
    await first.stop()
    clock.advance(60 + 299)  # down while it was due, back within the 300 s grace
    second = started()
    await second.settle()
    assert recorder.names() == ["late but fine"]
    assert recorder.missed == []


async def test_missed_beyond_grace_is_reported_not_run(started, clock, recorder) -> None:
    first = started()
    job_id = first.add("test", at(60), data={"what": "pizza"}, name="too late")
    await first.stop()
    clock.advance(60 + 301)
    second = started()
    await second.settle()
    assert recorder.ran == []
    assert [(d.id, d.data, d.due) for d in recorder.missed] == [
        (job_id, {"what": "pizza"}, START + timedelta(seconds=60))]
    assert second.get(job_id) is None  # one-shot: removed once reported


async def test_recurring_job_missed_five_times_runs_once(started, clock, recorder) -> None:
    first = started()
    job_id = first.add("test", CronTrigger(minute="*", timezone=UTC), data={}, name="minutely")
    await first.stop()
    clock.advance(5 * 60 + 30)  # 08:01 .. 08:05 went by while down
    second = started()
    await second.settle()
    assert [d.due.strftime("%H:%M") for d in recorder.ran] == ["08:05"]
    assert recorder.missed == []
    info = second.get(job_id)
    assert info is not None and info.next_run == START + timedelta(minutes=6)


async def test_recurring_job_missed_beyond_grace_reported_once_and_kept(
        started, clock, recorder) -> None:
    first = started()
    job_id = first.add("test", CronTrigger(hour=7, minute=0, timezone=UTC), data={},
                       name="daily")
    await first.stop()
    clock.advance(3 * 24 * 3600)  # three mornings missed
    second = started()
    await second.settle()
    assert recorder.ran == []
    assert [d.due.date().isoformat() for d in recorder.missed] == ["2026-03-05"]
    info = second.get(job_id)
    assert info is not None and info.next_run == datetime(2026, 3, 6, 7, 0, tzinfo=UTC)


async def test_pause_and_resume(started, clock, recorder) -> None:
    scheduler = started()
    job_id = scheduler.add("test", at(60), data={}, name="paused")
    scheduler.pause(job_id)
    info = scheduler.get(job_id)
    assert info is not None and info.next_run is None
    await move(clock, scheduler, 120)
    assert recorder.ran == []
    scheduler.resume(job_id, clock.now() + timedelta(seconds=30))
    await move(clock, scheduler, 29)
    assert recorder.ran == []
    await move(clock, scheduler, 1)
    assert recorder.names() == ["paused"]


async def test_update_moves_the_run_and_replaces_data(started, clock, recorder) -> None:
    scheduler = started()
    job_id = scheduler.add("test", at(60), data={"v": 1}, name="moved")
    scheduler.update(job_id, data={"v": 2}, next_run=START + timedelta(seconds=90))
    await move(clock, scheduler, 60)
    assert recorder.ran == []
    await move(clock, scheduler, 30)
    assert [d.data for d in recorder.ran] == [{"v": 2}]
    with pytest.raises(KeyError):
        scheduler.update("no-such-job", data={})


async def test_remove(started, clock, recorder) -> None:
    scheduler = started()
    job_id = scheduler.add("test", at(60), data={}, name="removed")
    assert scheduler.remove(job_id) is True
    assert scheduler.remove(job_id) is False
    await move(clock, scheduler, 120)
    assert recorder.ran == []


async def test_failing_handler_does_not_stop_other_jobs(started, clock, recorder) -> None:
    scheduler = started()

    async def broken(_due: JobDue) -> None:
        raise RuntimeError("boom")

    scheduler.handle("broken", broken)
    scheduler.add("broken", at(10), data={}, name="bad")
    scheduler.add("test", at(10), data={}, name="same time")
    scheduler.add("test", at(20), data={}, name="later")
    await move(clock, scheduler, 10)
    await move(clock, scheduler, 10)
    assert recorder.names() == ["same time", "later"]


async def test_job_without_handler_waits_for_one(tmp_path, clock, recorder) -> None:
    scheduler = Scheduler(tmp_path / "jobs.sqlite", clock=clock, timezone=UTC)
    scheduler.start()
    try:
        scheduler.add("test", at(10), data={}, name="waiting")
        await move(clock, scheduler, 20)
        assert recorder.ran == []
        scheduler.handle("test", recorder.handler)
        await scheduler.settle()
        assert recorder.names() == ["waiting"]
    finally:
        await scheduler.stop()


async def test_corrupt_store_is_moved_aside_and_scheduler_starts_empty(
        tmp_path, clock, recorder) -> None:
    store = tmp_path / "jobs.sqlite"
    store.write_bytes(b"this is not a database" * 100)
    scheduler = Scheduler(store, clock=clock, timezone=UTC, on_missed=recorder.on_missed)
    scheduler.handle("test", recorder.handler)
    scheduler.start()
    try:
        assert scheduler.store_problem is not None and "moved" in scheduler.store_problem
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("jobs.sqlite.unreadable-")]
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
        assert scheduler.jobs() == []
        scheduler.add("test", at(5), data={}, name="after corruption")
        await move(clock, scheduler, 5)
        assert recorder.names() == ["after corruption"]
    finally:
        await scheduler.stop()


async def test_sound_store_is_left_alone(started, tmp_path) -> None:
    first = started()
    first.add("test", at(60), data={}, name="kept")
    await first.stop()
    second = started()
    assert second.store_problem is None and len(second.jobs()) == 1
    assert not [p for p in tmp_path.iterdir() if "unreadable" in p.name]


async def test_memory_store_and_system_clock_sleep(recorder) -> None:
    clock = ManualClock(START)
    scheduler = Scheduler(None, clock=clock, timezone=UTC)
    scheduler.handle("test", recorder.handler)
    scheduler.start()
    try:
        scheduler.add("test", at(1), data={}, name="memory")
        sleeper = asyncio.create_task(clock.sleep(1))
        await asyncio.sleep(0)
        assert not sleeper.done()
        clock.advance(1)
        await asyncio.wait_for(sleeper, 5)
        await scheduler.settle()
        assert recorder.names() == ["memory"]
    finally:
        await scheduler.stop()


def test_manual_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))


async def test_times_are_given_in_the_schedulers_zone(tmp_path, clock, recorder) -> None:
    rome = ZoneInfo("Europe/Rome")
    scheduler = Scheduler(tmp_path / "jobs.sqlite", clock=clock, timezone=rome)
    scheduler.handle("test", recorder.handler)
    scheduler.start()
    try:
        job_id = scheduler.add("test", CronTrigger(hour=10, minute=0, timezone=rome), data={},
                               name="ten in Rome")
        info = scheduler.get(job_id)
        assert info is not None and info.next_run is not None
        assert (info.next_run.hour, info.next_run.utcoffset()) == (10, timedelta(hours=1))
        await move(clock, scheduler, 3600 - 1)  # 08:59:59 UTC is 09:59:59 in Rome
        assert recorder.ran == []
        await move(clock, scheduler, 1)
        assert [(d.due.hour, d.due.tzinfo) for d in recorder.ran] == [(10, rome)]
    finally:
        await scheduler.stop()


def test_system_clock_is_timezone_aware() -> None:
    assert SystemClock().now().tzinfo is not None
    assert SystemClock(UTC).now().utcoffset() == timedelta(0)


async def test_wakeup_queued_before_stop_does_nothing_after(started, clock, recorder) -> None:
    scheduler = started()
    scheduler.add("test", at(10), data={}, name="after stop")
    clock.advance(10)  # queues a wakeup on the loop ...
    await scheduler.stop()  # ... that runs once the scheduler is stopped
    turn = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turn.set_result, None)
    await asyncio.wait_for(turn, 5)
    assert recorder.ran == []
