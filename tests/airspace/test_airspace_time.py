"""Zone time windows: absolute periods, recurring local hours, midnight wrap, DST, timezones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nestd.airspace import AirspaceTimeError
from nestd.airspace.timewin import Applicability, DailyWindow, Schedule, to_utc

CHI = ZoneInfo("America/Chicago")
WEEKDAYS = frozenset(range(5))


def school() -> Schedule:
    return Schedule(
        (Applicability(daily=(DailyWindow(WEEKDAYS, time(7, 30), time(16, 30), CHI),)),)
    )


@pytest.mark.parametrize(
    ("local", "active"),
    [
        (datetime(2026, 11, 24, 15, 0), True),  # Tuesday 15:00
        (datetime(2026, 11, 24, 19, 0), False),  # Tuesday 19:00
        (datetime(2026, 11, 24, 7, 29), False),
        (datetime(2026, 11, 24, 7, 30), True),
        (datetime(2026, 11, 24, 16, 30), False),  # end is exclusive
        (datetime(2026, 11, 28, 12, 0), False),  # Saturday
    ],
)
def test_school_hours_follow_local_time(local: datetime, active: bool) -> None:
    assert school().active_at(local.replace(tzinfo=CHI)) is active


def test_school_window_is_local_across_dst() -> None:
    # 08:00 local is 13:00Z in CDT (July) and 14:00Z in CST (January).
    assert school().active_at(datetime(2026, 7, 7, 13, 0, tzinfo=UTC))
    assert not school().active_at(datetime(2026, 1, 6, 13, 0, tzinfo=UTC))
    assert school().active_at(datetime(2026, 1, 6, 14, 0, tzinfo=UTC))


def test_window_ending_before_it_starts_wraps_past_midnight() -> None:
    night = Schedule((Applicability(daily=(DailyWindow(frozenset({4}), time(22), time(2), UTC),)),))
    assert night.active_at(datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # Friday 23:00
    assert night.active_at(datetime(2026, 11, 28, 1, 59, tzinfo=UTC))  # Saturday 01:59
    assert not night.active_at(datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
    assert not night.active_at(datetime(2026, 11, 27, 1, 0, tzinfo=UTC))  # Friday early hours


def test_interval_counts_a_window_that_opens_during_the_flight() -> None:
    start = datetime(2026, 11, 24, 7, 20, tzinfo=CHI)
    assert not school().active_at(start)
    assert school().active_during(start, start + timedelta(minutes=15))
    assert not school().active_during(start, start + timedelta(minutes=5))


def test_absolute_period_is_half_open() -> None:
    t0 = datetime(2026, 11, 28, 18, 0, tzinfo=CHI)
    tfr = Schedule((Applicability(start=t0, end=t0 + timedelta(hours=2)),))
    assert tfr.active_at(t0)
    assert tfr.active_at(t0 + timedelta(hours=1, minutes=59))
    assert not tfr.active_at(t0 + timedelta(hours=2))
    assert not tfr.active_at(t0 - timedelta(seconds=1))


def test_epoch_seconds_are_utc() -> None:
    assert to_utc(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert school().active_at(datetime(2026, 11, 24, 21, 0, tzinfo=UTC).timestamp())


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(AirspaceTimeError, match="naive"):
        school().active_at(datetime(2026, 11, 24, 15, 0))


def test_no_periods_means_always_active() -> None:
    assert Schedule().active_at(0.0)
    assert Schedule().always
