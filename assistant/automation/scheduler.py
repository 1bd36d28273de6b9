"""APScheduler 3 behind one small class, on a clock that tests can move.

APScheduler reads the wall clock (``datetime.now``) in its processing step, so ``Scheduler``
runs an ``AsyncIOScheduler`` whose processing step is ours: it reads ``clock.now()``, hands
each due job to the handler registered for the job's kind as an asyncio task, and asks the
clock again for when to wake up next. Jobs live in APScheduler's SQLAlchemy job store on a
SQLite file (or in memory), so they survive a restart.

Misfires are chosen deliberately: every job coalesces (a recurring job missed many times
runs once) and may run up to ``misfire_grace_s`` late. A job whose latest due time is further
back than that (the hub was down) does not run: it is handed to ``on_missed``, never dropped
silently; a one-shot job is then removed, a recurring one moves on to its next fire time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.exc import SQLAlchemyError

from assistant.messages import NotStoredError

log = logging.getLogger(__name__)

# Longest wait between two looks at the jobs: the wall clock can jump (NTP at boot on a hub
# without a real-time clock, a suspended VM), and call_later counts monotonic time.
MAX_WAIT_S = 60.0
# After a job store read fails, try again this much later.
STORE_RETRY_S = 10.0
# How long stop() lets running handlers finish before cancelling them.
STOP_GRACE_S = 5.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has moved ``seconds`` on."""
        ...


class SystemClock:
    """The real clock (``tz`` None: the system's local zone)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz) if self._tz is not None else datetime.now().astimezone()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when told to; sleepers and subscribers follow it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=seconds), woken)
        self._sleepers.append(entry)
        try:
            await woken
        finally:
            with contextlib.suppress(ValueError):
                self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware time")
        self._now = when
        for deadline, woken in list(self._sleepers):
            if deadline <= when and not woken.done():
                woken.set_result(None)
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the clock moves; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe


@dataclass(frozen=True)
class _JobFields:
    id: str
    kind: str
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class JobDue(_JobFields):
    """A job whose time has come (or, given to ``on_missed``, went by while the hub was down)."""

    due: datetime


@dataclass(frozen=True)
class JobInfo(_JobFields):
    next_run: datetime | None  # None: paused


JobHandler = Callable[[JobDue], Awaitable[None]]


class JobNotStoredError(NotStoredError):
    """The job store could not be written, so the job was not added, changed or removed."""


def _not_stored(doing: str, what: str, exc: SQLAlchemyError) -> JobNotStoredError:
    log.error("scheduler: could not %s %s: %s", doing, what, getattr(exc, "orig", None) or exc)
    return JobNotStoredError(f"could not {doing} {what}")


def scheduled_job(kind: str, data: dict[str, Any]) -> None:
    """The function every stored job names. The job store needs an importable function to
    pickle; our processing step never calls it, it hands the job to its kind's handler."""
    raise RuntimeError(f"{kind} job run outside the Scheduler")


class _ClockedScheduler(AsyncIOScheduler):
    """AsyncIOScheduler with our processing step, and a shutdown that happens now."""

    def __init__(self, process: Callable[[], float | None], **options: Any) -> None:
        super().__init__(**options)
        self._process = process

    def _process_jobs(self) -> float | None:
        # A wakeup queued before stop() may run after it: then there is nothing to do.
        if self.state != STATE_RUNNING:
            return None
        return self._process()

    def shutdown(self, wait: bool = True) -> None:
        # AsyncIOScheduler defers its shutdown to a later loop turn; stop() wants it done.
        BaseScheduler.shutdown(self, wait)
        self._stop_timer()
        self._eventloop = None


class Scheduler:
    """Jobs of a ``kind`` (timer, reminder, schedule, rule) on ``clock``; see the module doc."""

    def __init__(
        self,
        store: Path | None,
        *,
        clock: Clock,
        timezone: tzinfo,
        misfire_grace_s: float = 300.0,
        on_missed: Callable[[JobDue], None] | None = None,
    ) -> None:
        if misfire_grace_s <= 0:
            raise ValueError("misfire_grace_s must be positive")
        self._store_path = store
        self._clock = clock
        # APScheduler wants whole seconds; rounding up never turns a run into a miss.
        self._grace_s = math.ceil(misfire_grace_s)
        self._on_missed = on_missed
        self._handlers: dict[str, JobHandler] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._unsubscribe_clock: Callable[[], None] | None = None
        self._aps = _ClockedScheduler(self._process_due, timezone=timezone)
        # Why the job store was started empty, when it could not be read; None when it was.
        self.store_problem: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def handle(self, kind: str, handler: JobHandler) -> Callable[[], None]:
        """Run ``handler`` for due jobs of ``kind``; returns the unregister function. Jobs of a
        kind without a handler wait (register handlers before ``start``)."""
        if kind in self._handlers:
            raise ValueError(f"jobs of kind {kind!r} already have a handler")
        self._handlers[kind] = handler
        if self._aps.running:
            self.wakeup()

        def unregister() -> None:
            if self._handlers.get(kind) is handler:
                del self._handlers[kind]

        return unregister

    def start(self) -> None:
        """Start on the running loop. Jobs missed while the hub was down run once now if within
        their grace; the others go to ``on_missed``."""
        self._aps.add_jobstore(self._open_store(), "default")
        # Opening the store and APScheduler's writes (one small row per added, changed or run
        # job, in its own transaction) happen on the loop: they are rare and tiny.
        self._aps.start()
        subscribe = getattr(self._clock, "subscribe", None)
        if subscribe is not None:
            self._unsubscribe_clock = subscribe(self.wakeup)

    async def stop(self) -> None:
        if self._unsubscribe_clock is not None:
            self._unsubscribe_clock()
            self._unsubscribe_clock = None
        if self._aps.running:
            self._aps.shutdown(wait=False)
        if self._running:
            _done, late = await asyncio.wait(set(self._running), timeout=STOP_GRACE_S)
            for task in late:
                task.cancel()

    async def settle(self, timeout: float = 5.0) -> None:
        """Return once due jobs were looked at and the handlers started have finished (for
        tests and for callers that want the outcome of a wakeup)."""
        async with asyncio.timeout(timeout):
            while True:
                # A wakeup is a loop callback: one queued after it runs after it.
                turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(turn.set_result, None)
                await turn
                if not self._running:
                    return
                await asyncio.wait(set(self._running))

    def wakeup(self) -> None:
        """Look at the jobs again now (soon, on the loop)."""
        if self._aps.running:
            self._aps.wakeup()

    # -- jobs ----------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        trigger: BaseTrigger,
        *,
        data: dict[str, Any],
        name: str,
        job_id: str | None = None,
        next_run: datetime | None = None,
    ) -> str:
        """Add a job (a ``job_id`` already used replaces that job); returns its id.
        ``next_run`` None: the trigger's first fire time from the clock's now."""
        if next_run is None:
            next_run = trigger.get_next_fire_time(None, self._clock.now())
            if next_run is None:
                raise ValueError(f"trigger {trigger} never fires")
        try:
            job = self._aps.add_job(
                scheduled_job,
                trigger,
                kwargs={"kind": kind, "data": copy.deepcopy(data)},
                id=job_id or uuid.uuid4().hex,
                name=name,
                misfire_grace_time=self._grace_s,
                coalesce=True,
                max_instances=1,
                next_run_time=next_run,
                replace_existing=True,
            )
        except SQLAlchemyError as exc:  # a full or read-only disk: the job does not exist
            raise _not_stored("store", f"the {kind} job {name!r}", exc) from exc
        return job.id

    def remove(self, job_id: str) -> bool:
        try:
            self._aps.remove_job(job_id)
        except JobLookupError:
            return False
        except SQLAlchemyError as exc:
            raise _not_stored("remove", job_id, exc) from exc
        return True

    def pause(self, job_id: str) -> None:
        """Keep the job but do not run it until ``resume``; KeyError for an unknown id."""
        self._modify(job_id, next_run_time=None)

    def resume(self, job_id: str, next_run: datetime) -> None:
        self._modify(job_id, next_run_time=next_run)

    def update(
        self, job_id: str, *, data: dict[str, Any] | None = None, next_run: datetime | None = None
    ) -> None:
        """Replace the job's data and/or move its next run; KeyError for an unknown id."""
        changes: dict[str, Any] = {}
        if data is not None:
            job = self._lookup(job_id)
            changes["kwargs"] = {"kind": job.kwargs["kind"], "data": copy.deepcopy(data)}
        if next_run is not None:
            changes["next_run_time"] = next_run
        if changes:
            self._modify(job_id, **changes)

    def get(self, job_id: str) -> JobInfo | None:
        job = self._aps.get_job(job_id)
        return None if job is None else _info(job, self._aps.timezone)

    def jobs(self, kind: str | None = None) -> list[JobInfo]:
        """The jobs (of ``kind``), soonest first, paused last. Before ``start`` only the jobs
        added since, not those in the store."""
        infos = [_info(job, self._aps.timezone) for job in self._aps.get_jobs()]
        return [info for info in infos if kind is None or info.kind == kind]

    # -- internals -----------------------------------------------------------------------

    def _lookup(self, job_id: str) -> Job:
        job = self._aps.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _modify(self, job_id: str, **changes: Any) -> None:
        try:
            self._aps.modify_job(job_id, **changes)
        except JobLookupError:
            raise KeyError(job_id) from None
        except SQLAlchemyError as exc:
            raise _not_stored("change", job_id, exc) from exc

    def _open_store(self) -> BaseJobStore:
        if self._store_path is None:
            return MemoryJobStore()
        path = self._store_path
        path.parent.mkdir(parents=True, exist_ok=True)
        problem = _unreadable(path)
        if problem is not None:
            aside = path.with_name(f"{path.name}.unreadable-{self._clock.now():%Y%m%dT%H%M%S}")
            for suffix in ("", "-journal", "-wal", "-shm"):
                part = path.with_name(path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
            self.store_problem = (
                f"the job store {path} could not be read ({problem}); it was moved to "
                f"{aside} and the scheduler started with no jobs"
            )
            log.error("%s", self.store_problem)
        return SQLAlchemyJobStore(url=f"sqlite:///{path}")

    def _process_due(self) -> float | None:
        """One look at the jobs: start what is due, report what was missed, and return how
        many seconds to wait until the next look (None: until something changes)."""
        now = self._clock.now()
        next_wakeup: datetime | None = None
        for store in list(self._aps._jobstores.values()):
            try:
                due_jobs = store.get_due_jobs(now)
            except Exception as exc:  # noqa: BLE001 - a bad store must not stop the others
                log.warning("could not read due jobs (%s); trying again soon", exc)
                retry = now + timedelta(seconds=STORE_RETRY_S)
                next_wakeup = retry if next_wakeup is None else min(next_wakeup, retry)
                continue
            for job in due_jobs:
                kind = job.kwargs.get("kind", "")
                handler = self._handlers.get(kind)
                if handler is None:
                    log.debug("job %s waits for a handler of kind %r", job.id, kind)
                    continue
                self._fire(store, job, handler, now)
            store_next = self._next_handled_run(store, now)
            if store_next is not None and (next_wakeup is None or store_next < next_wakeup):
                next_wakeup = store_next
        if next_wakeup is None:
            return None
        wait = (next_wakeup - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), MAX_WAIT_S)

    def _fire(self, store: BaseJobStore, job: Job, handler: JobHandler, now: datetime) -> None:
        run_times = job._get_run_times(now)
        if not run_times:
            return
        grace = job.misfire_grace_time
        in_time = [t for t in run_times if grace is None or (now - t).total_seconds() <= grace]
        late = [t for t in run_times if t not in in_time]
        if job.coalesce:
            # One run stands for all; only when even the latest is too late is it missed.
            in_time, late = (in_time[-1:], []) if in_time else ([], late[-1:])
        data = job.kwargs.get("data", {})
        kind = job.kwargs.get("kind", "")
        # Move the job on (or remove it) before its handler runs: a crash during the run
        # must not run it a second time after a restart.
        following = job.trigger.get_next_fire_time(run_times[-1], now)
        if following is None:
            store.remove_job(job.id)
        else:
            job._modify(next_run_time=following)
            store.update_job(job)
        zone = self._aps.timezone
        for due in late:
            self._report_missed(JobDue(job.id, kind, job.name, copy.deepcopy(data),
                                       due.astimezone(zone)))
        for due in in_time:
            task = asyncio.get_running_loop().create_task(
                self._run(handler, JobDue(job.id, kind, job.name, copy.deepcopy(data),
                                          due.astimezone(zone))),
                name=f"job {kind} {job.id}",
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _next_handled_run(self, store: BaseJobStore, now: datetime) -> datetime | None:
        """The store's next run time, skipping jobs that wait for a handler (they are due
        already, and would make the scheduler look again at once, forever)."""
        soonest = store.get_next_run_time()
        if soonest is None or soonest > now:
            return soonest
        return next(
            (
                job.next_run_time
                for job in store.get_all_jobs()
                if job.next_run_time is not None
                and job.next_run_time > now
                and job.kwargs.get("kind") in self._handlers
            ),
            None,
        )

    def _report_missed(self, due: JobDue) -> None:
        log.warning("%s job %r (%s) was due at %s and missed", due.kind, due.name, due.id,
                    due.due.isoformat())
        if self._on_missed is None:
            return
        try:
            self._on_missed(due)
        except Exception:  # noqa: BLE001 - reporting must not stop the scheduler
            log.exception("on_missed failed for job %s", due.id)

    @staticmethod
    async def _run(handler: JobHandler, due: JobDue) -> None:
        try:
            await handler(due)
        except Exception:  # noqa: BLE001 - one failing job must not stop the others
            log.exception("%s job %r (%s) failed", due.kind, due.name, due.id)


def _unreadable(path: Path) -> str | None:
    """Why the SQLite file cannot serve as a job store, or None when it can (or is new)."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                return str(verdict)
            db.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None


def _info(job: Job, zone: tzinfo) -> JobInfo:
    next_run = getattr(job, "next_run_time", None)
    return JobInfo(
        id=job.id,
        kind=job.kwargs.get("kind", ""),
        name=job.name,
        data=copy.deepcopy(job.kwargs.get("data", {})),
        next_run=next_run.astimezone(zone) if next_run is not None else None,
    )
