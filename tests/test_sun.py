"""Sunrise and sunset from coordinates: known times, offsets, weekdays, polar days, pickling."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral.sun import sunset

from assistant.automation.sun import (
    Location, SunTrigger, after_event, before_event, sun_event,
)

ROME_TZ = ZoneInfo("Europe/Rome")
ROME = Location(41.9028, 12.4964, timezone=ROME_TZ)
TROMSO = Location(69.6492, 18.9553, timezone=ZoneInfo("Europe/Oslo"))
MIDSUMMER = date(2026, 6, 21)  # a Sunday


def at(hour: int, minute: int = 0, day: date = MIDSUMMER) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ROME_TZ)


def test_rome_midsummer_sunset_is_astrals_and_about_20_48_local() -> None:
    found = sun_event(MIDSUMMER, "sunset", ROME)
    assert found is not None
    assert found == sunset(ROME.observer, MIDSUMMER, tzinfo=ROME_TZ)
    assert found.utcoffset() == timedelta(hours=2)  # summer time
    assert abs(found - at(20, 48)) < timedelta(minutes=3)
    # the wrong answer: the UTC wall clock, two hours early
    assert abs(found - datetime(2026, 6, 21, 20, 48, tzinfo=UTC)) > timedelta(hours=1)


def test_sunrise_comes_before_sunset_on_the_asked_local_date() -> None:
    rise = sun_event(MIDSUMMER, "sunrise", ROME)
    set_ = sun_event(MIDSUMMER, "sunset", ROME)
    assert rise is not None and set_ is not None
    assert rise.date() == set_.date() == MIDSUMMER
    assert abs(rise - at(5, 35)) < timedelta(minutes=3)


def test_polar_night_and_midnight_sun_have_no_event() -> None:
    assert sun_event(date(2026, 12, 15), "sunrise", TROMSO) is None
    assert sun_event(date(2026, 12, 15), "sunset", TROMSO) is None
    assert sun_event(date(2026, 6, 21), "sunset", TROMSO) is None
    assert sun_event(date(2026, 3, 21), "sunrise", TROMSO) is not None


def test_trigger_fires_at_sunset_plus_offset_strictly_after_the_previous_time() -> None:
    trigger = SunTrigger("sunset", ROME, offset=-30 * 60)
    tonight = sun_event(MIDSUMMER, "sunset", ROME)
    assert tonight is not None
    first = trigger.get_next_fire_time(None, at(12))
    assert first == tonight - timedelta(minutes=30)
    # at that very moment it is still due; once fired, the next one is tomorrow's
    assert trigger.get_next_fire_time(None, first) == first
    tomorrow = trigger.get_next_fire_time(first, first)
    expected = sun_event(MIDSUMMER + timedelta(days=1), "sunset", ROME)
    assert expected is not None and tomorrow == expected - timedelta(minutes=30)
    # past tonight's time it is tomorrow's, never tonight's again
    assert trigger.get_next_fire_time(None, first + timedelta(seconds=1)) == tomorrow


def test_a_large_offset_can_push_yesterdays_event_past_midnight() -> None:
    trigger = SunTrigger("sunset", ROME, offset=timedelta(hours=5))
    yesterday = sun_event(MIDSUMMER - timedelta(days=1), "sunset", ROME)
    assert yesterday is not None
    assert trigger.get_next_fire_time(None, at(0, 30)) == yesterday + timedelta(hours=5)


def test_trigger_keeps_to_its_weekdays() -> None:
    mondays = SunTrigger("sunrise", ROME, days_of_week=(0,))
    fire = mondays.get_next_fire_time(None, at(12))  # Sunday noon
    assert fire is not None and fire.date() == date(2026, 6, 22) and fire.weekday() == 0
    following = mondays.get_next_fire_time(fire, fire)
    assert following is not None and following.date() == date(2026, 6, 29)
    with pytest.raises(ValueError):
        SunTrigger("sunrise", ROME, days_of_week=(7,))
    with pytest.raises(ValueError):
        SunTrigger("noon", ROME)  # type: ignore[arg-type]


def test_trigger_skips_the_polar_night_to_the_first_sunrise() -> None:
    trigger = SunTrigger("sunrise", TROMSO)
    fire = trigger.get_next_fire_time(None, datetime(2026, 12, 1, tzinfo=TROMSO.timezone))
    assert fire is not None
    assert date(2027, 1, 10) <= fire.date() <= date(2027, 1, 20)
    assert sun_event(fire.date() - timedelta(days=1), "sunrise", TROMSO) is None


def test_trigger_survives_pickling_with_its_fields() -> None:
    trigger = SunTrigger("sunset", ROME, offset=-900, days_of_week=(5, 6))
    copy = pickle.loads(pickle.dumps(trigger))
    assert (copy.event, copy.offset_s, copy.location, copy.days_of_week) == \
        ("sunset", -900.0, ROME, (5, 6))
    assert copy.get_next_fire_time(None, at(12)) == trigger.get_next_fire_time(None, at(12))
    assert "sunset" in str(copy)


def test_sun_condition_after_sunset_and_before_sunrise() -> None:
    sunset_today = sun_event(MIDSUMMER, "sunset", ROME)
    assert sunset_today is not None
    assert after_event(sunset_today + timedelta(minutes=1), "sunset", 0, ROME)
    assert not after_event(sunset_today - timedelta(minutes=1), "sunset", 0, ROME)
    # an offset of one hour: 30 minutes after sunset is not yet "after sunset + 1 h"
    assert not after_event(sunset_today + timedelta(minutes=30), "sunset", 3600, ROME)
    assert after_event(sunset_today + timedelta(minutes=61), "sunset", timedelta(hours=1), ROME)
    assert before_event(at(5), "sunrise", 0, ROME)
    assert not before_event(at(6), "sunrise", 0, ROME)
    # the same instant said in UTC gives the same answer
    assert before_event(at(5).astimezone(UTC), "sunrise", 0, ROME)


def test_sun_condition_is_false_on_a_day_without_the_event() -> None:
    night = datetime(2026, 12, 15, 12, tzinfo=TROMSO.timezone)
    assert not after_event(night, "sunrise", 0, TROMSO)
    assert not before_event(night, "sunrise", 0, TROMSO)


def test_location_refuses_impossible_coordinates() -> None:
    with pytest.raises(ValueError):
        Location(95.0, 0.0, timezone=UTC)
