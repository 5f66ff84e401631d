"""Wind limits: ground stop over the limit, resume after a calm spell, and no flapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from nestd.safety.airframe import Airframe
from nestd.safety.errors import SafetyInputError
from nestd.safety.wind import WindLimits, WindMonitor, WindSample, WindState, WindStatus

LIMITS = WindLimits(resume_after_s=600.0, source_fresh_s=120.0)


def feed(
    m: WindMonitor, t: float, speed: float, gust: float | None = None, src: str = "anemo"
) -> WindStatus:
    return m.update(WindSample(t, speed, gust, src))


def stopped_monitor() -> WindMonitor:
    m = WindMonitor(LIMITS)
    feed(m, 0.0, 11.0)
    assert m.state is WindState.GROUND_STOP
    return m


def test_starts_with_no_data_and_no_launches() -> None:
    m = WindMonitor(LIMITS)
    s = m.tick(0.0)
    assert s.state is WindState.NO_DATA and not s.launches_allowed


@pytest.mark.parametrize(
    ("speed", "gust", "state"),
    [
        (5.0, None, WindState.CLEAR),
        (9.9, 11.9, WindState.CLEAR),  # just under both limits
        (10.1, None, WindState.GROUND_STOP),  # sustained over
        (6.0, 12.5, WindState.GROUND_STOP),  # gust over
        (12.5, None, WindState.GROUND_STOP),  # a mean over the gust limit is a gust over it
    ],
)
def test_first_sample_table(speed: float, gust: float | None, state: WindState) -> None:
    s = feed(WindMonitor(LIMITS), 0.0, speed, gust)
    assert s.state is state and s.changed
    assert s.launches_allowed is (state is WindState.CLEAR)


def test_ground_stop_resumes_only_after_ten_calm_minutes() -> None:
    m = stopped_monitor()
    s = feed(m, 10.0, 7.9)  # below 80% of 10 m/s
    assert s.state is WindState.RESUMING and s.resume_at_s == 610.0 and not s.launches_allowed
    for now in range(70, 610, 60):
        assert feed(m, float(now), 7.0, 9.0).state is WindState.RESUMING
    assert m.tick(609.9).state is WindState.RESUMING
    s = m.tick(610.0)
    assert s.state is WindState.CLEAR and s.changed and s.launches_allowed


def test_wind_between_80_percent_and_the_limit_holds_the_ground_stop() -> None:
    m = stopped_monitor()
    for t in range(10, 3600, 30):
        s = feed(m, float(t), 9.0)
        assert s.state is WindState.GROUND_STOP
        assert "not yet below 80%" in s.reason


def test_a_gust_above_80_percent_restarts_the_calm_countdown() -> None:
    m = stopped_monitor()
    feed(m, 10.0, 7.0)
    feed(m, 500.0, 7.0, 10.0)  # gust 10 >= 0.8 * 12
    s = feed(m, 510.0, 7.0)
    assert s.state is WindState.RESUMING and s.resume_at_s == 1110.0


def test_wind_over_the_limit_during_resume_stops_again() -> None:
    m = stopped_monitor()
    feed(m, 10.0, 7.0)
    s = feed(m, 100.0, 10.5)
    assert s.state is WindState.GROUND_STOP and s.changed and "over the limit" in s.reason


def test_worst_fresh_source_decides() -> None:
    m = WindMonitor(LIMITS)
    feed(m, 0.0, 4.0, src="anemometer")
    s = feed(m, 1.0, 10.5, src="vehicle:3")
    assert s.state is WindState.GROUND_STOP and s.sustained_mps == 10.5


def test_stale_sources_stop_counting() -> None:
    m = WindMonitor(LIMITS)
    feed(m, 0.0, 10.5, src="vehicle:3")  # landed long ago, its estimate goes stale
    feed(m, 100.0, 3.0, src="anemometer")
    s = m.tick(130.0)
    assert s.sustained_mps == 3.0 and s.state is WindState.RESUMING


def test_losing_all_data_never_lifts_a_ground_stop() -> None:
    m = stopped_monitor()
    feed(m, 10.0, 5.0)
    s = m.tick(10_000.0)  # calm would have been long enough, but nothing says it still is
    assert s.state is WindState.GROUND_STOP and s.reason == "no fresh wind data"


def test_losing_all_data_when_clear_means_no_data() -> None:
    m = WindMonitor(LIMITS)
    feed(m, 0.0, 5.0)
    s = m.tick(121.0)
    assert s.state is WindState.NO_DATA and not s.launches_allowed


def test_reordered_old_sample_is_ignored() -> None:
    m = WindMonitor(LIMITS)
    feed(m, 10.0, 5.0)
    s = feed(m, 5.0, 11.0)  # older than the source's last sample
    assert s.state is WindState.CLEAR and s.sustained_mps == 5.0


def test_limits_follow_the_airframe() -> None:
    af = Airframe.model_validate({"max_wind_sustained_mps": 8.0, "max_wind_gust_mps": 9.0})
    lim = WindLimits.for_airframe(af, resume_after_s=300.0)
    assert (lim.sustained_limit_mps, lim.gust_limit_mps, lim.resume_after_s) == (8.0, 9.0, 300.0)


def test_invalid_limits_and_samples_are_rejected() -> None:
    with pytest.raises(ValidationError):
        WindLimits(sustained_limit_mps=12.0, gust_limit_mps=10.0)
    with pytest.raises(SafetyInputError):
        WindSample(0.0, -1.0, None, "x")


# -- properties -------------------------------------------------------------------------


@given(
    levels=st.lists(st.floats(0.8, 0.999), min_size=2, max_size=200),
    start_stopped=st.booleans(),
)
def test_never_flaps_on_a_signal_just_under_the_limit(
    levels: list[float], start_stopped: bool
) -> None:
    # Between the resume threshold and the limit nothing changes: clear stays clear and a
    # ground stop stays stopped, however the signal wiggles.
    m = stopped_monitor() if start_stopped else WindMonitor(LIMITS)
    if not start_stopped:
        feed(m, 0.0, 5.0)
    expected = m.state
    for i, f in enumerate(levels):
        s = feed(m, 1.0 + 10.0 * i, 10.0 * f, 12.0 * f)
        assert s.state is expected and not s.changed


@given(
    speeds=st.lists(st.floats(0.0, 15.0), min_size=1, max_size=300),
    step_s=st.floats(1.0, 60.0),
)
def test_launches_resume_only_after_a_full_calm_spell(speeds: list[float], step_s: float) -> None:
    m = WindMonitor(LIMITS)
    calm_since: float | None = None
    stopped = False
    for i, v in enumerate(speeds):
        t = i * step_s
        s = feed(m, t, v)
        if v > 10.0:
            stopped = True
        calm = v < 8.0  # the resume threshold: 80% of 10 m/s
        calm_since = (t if calm_since is None else calm_since) if calm else None
        if s.launches_allowed and stopped:
            assert calm_since is not None and t - calm_since >= LIMITS.resume_after_s
        if s.launches_allowed:
            stopped = False
        if v > 10.0:
            assert not s.launches_allowed


def test_vehicle_estimate_components_become_a_speed() -> None:
    s = WindSample.from_vector(3.0, -6.0, 8.0, "vehicle:2")
    assert (s.time_s, s.speed_mps, s.gust_mps, s.source) == (3.0, 10.0, None, "vehicle:2")
