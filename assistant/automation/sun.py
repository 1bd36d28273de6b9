"""Sunrise and sunset, computed locally from the configured coordinates (astral).

``SunTrigger`` is an APScheduler 3 trigger for "at sunset", "30 minutes before sunrise on
weekdays"; it keeps only plain fields so that the SQLite job store can pickle it.
``after_event`` / ``before_event`` answer Home Assistant's ``sun`` condition.

Near the poles a day may have no sunrise or no sunset (astral raises ``ValueError``): such a
day has no event, a trigger skips it and a condition about it is false, as in Home Assistant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

from apscheduler.triggers.base import BaseTrigger
from astral import Observer
from astral.sun import sunrise, sunset

SunEvent = Literal["sunrise", "sunset"]
SUN_EVENTS: tuple[SunEvent, ...] = ("sunrise", "sunset")
# Polar night or day lasts at most about six months; past this a trigger has no next time.
_SEARCH_DAYS = 400


@dataclass(frozen=True, slots=True)
class Location:
    """Where the home is: degrees north / east, metres above sea level, its time zone."""

    latitude: float
    longitude: float
    elevation: float = 0.0
    timezone: tzinfo = field(kw_only=True)

    def __post_init__(self) -> None:
        if not -90 <= self.latitude <= 90 or not -180 <= self.longitude <= 180:
            raise ValueError(f"no such place: latitude {self.latitude}, "
                             f"longitude {self.longitude}")

    @property
    def observer(self) -> Observer:
        return Observer(self.latitude, self.longitude, self.elevation)


def sun_event(day: date, event: SunEvent, location: Location) -> datetime | None:
    """When ``event`` happens on the local date ``day`` (aware, in the location's zone), or
    None when the sun does not rise or set there that day."""
    compute = {"sunrise": sunrise, "sunset": sunset}[event]
    try:
        return compute(location.observer, day, tzinfo=location.timezone)
    except ValueError:  # always above or below the horizon that day
        return None


def _offset(offset: float | timedelta) -> timedelta:
    return offset if isinstance(offset, timedelta) else timedelta(seconds=offset)


def _shifted(when: datetime, offset: timedelta, location: Location) -> datetime:
    """``when`` moved by ``offset`` of elapsed time (not wall-clock time across a DST
    change), in the location's zone."""
    return (when.astimezone(UTC) + offset).astimezone(location.timezone)


def _today(now: datetime, location: Location) -> date:
    return now.astimezone(location.timezone).date()


def after_event(now: datetime, event: SunEvent, offset: float | timedelta,
                location: Location) -> bool:
    """Home Assistant's ``after: sunset`` (with ``after_offset``): today's event plus the
    offset has passed. False on a day without the event."""
    when = sun_event(_today(now, location), event, location)
    return when is not None and now > _shifted(when, _offset(offset), location)


def before_event(now: datetime, event: SunEvent, offset: float | timedelta,
                 location: Location) -> bool:
    """Home Assistant's ``before: sunrise`` (with ``before_offset``): today's event plus the
    offset is still to come. False on a day without the event."""
    when = sun_event(_today(now, location), event, location)
    return when is not None and now < _shifted(when, _offset(offset), location)


class SunTrigger(BaseTrigger):
    """Fires at ``event`` plus ``offset`` (seconds, negative for before), on the given
    weekdays only (0 = Monday) or every day."""

    __slots__ = ("event", "offset_s", "location", "days_of_week")

    def __init__(self, event: SunEvent, location: Location, offset: float | timedelta = 0.0,
                 days_of_week: tuple[int, ...] | None = None) -> None:
        if event not in SUN_EVENTS:
            raise ValueError(f"unknown sun event {event!r}")
        if days_of_week is not None and (not days_of_week
                                         or not set(days_of_week) <= set(range(7))):
            raise ValueError(f"days of week are 0 (Monday) to 6: {days_of_week!r}")
        self.event: SunEvent = event
        self.location = location
        self.offset_s = _offset(offset).total_seconds()
        self.days_of_week = None if days_of_week is None else tuple(sorted(set(days_of_week)))

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        """The first event + offset strictly after the previous fire time, or at or after
        ``now`` when the job has not fired yet; days without the event are skipped."""
        # In UTC: datetimes sharing a zone compare by wall-clock time, wrong in a DST fold.
        after = (previous_fire_time or now).astimezone(UTC)
        offset = timedelta(seconds=self.offset_s)
        # The event of the day before may still be ahead with a large positive offset.
        day = _today(after - offset, self.location) - timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.days_of_week is None or day.weekday() in self.days_of_week:
                when = sun_event(day, self.event, self.location)
                if when is not None:
                    fire = _shifted(when, offset, self.location)
                    if fire > after or (previous_fire_time is None and fire == after):
                        return fire
            day += timedelta(days=1)
        return None

    def __getstate__(self) -> dict[str, object]:
        return {"version": 1, "event": self.event, "offset_s": self.offset_s,
                "location": self.location, "days_of_week": self.days_of_week}

    def __setstate__(self, state: dict[str, object]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"cannot read a SunTrigger of version {state.get('version')}")
        self.event = state["event"]  # type: ignore[assignment]
        self.offset_s = float(state["offset_s"])  # type: ignore[arg-type]
        self.location = state["location"]  # type: ignore[assignment]
        self.days_of_week = state["days_of_week"]  # type: ignore[assignment]

    def __str__(self) -> str:
        minutes = round(self.offset_s / 60)
        offset = f"{minutes:+d} min" if minutes else ""
        days = "" if self.days_of_week is None else f" on days {self.days_of_week}"
        return f"sun[{self.event}{offset}{days}]"

    def __repr__(self) -> str:
        return (f"<SunTrigger (event={self.event!r}, offset_s={self.offset_s}, "
                f"location={self.location!r}, days_of_week={self.days_of_week!r})>")
