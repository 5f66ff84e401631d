"""The nest's wind from the drones' estimates: what counts, ground stops, and no data."""

from __future__ import annotations

import pytest

from nestd.jobs.weather import NestWind
from nestd.safety import CALM, WindLimits
from nestd.safety.wind import WindState

LIMITS = WindLimits(sustained_limit_mps=10.0, gust_limit_mps=12.0, resume_after_s=300.0)


def test_without_any_estimate_launches_plan_in_calm_air_unless_data_is_required() -> None:
    lax = NestWind(LIMITS).status(0.0)
    assert lax.launches_allowed and lax.wind == CALM and not lax.measured
    strict = NestWind(LIMITS, require_data=True).status(0.0)
    assert not strict.launches_allowed and strict.state is WindState.NO_DATA


def test_grounded_or_unsure_estimates_are_ignored() -> None:
    w = NestWind(LIMITS, require_data=True)
    w.observe("drone-1", 0.0, 15.0, 0.0, 0.3, airborne=False)
    w.observe("drone-2", 0.0, 15.0, 0.0, 100.0, airborne=True)
    w.observe("drone-3", 0.0, float("nan"), 0.0, 0.3, airborne=True)
    assert w.status(1.0).state is WindState.NO_DATA


def test_airborne_estimates_set_the_planning_wind_as_their_mean() -> None:
    w = NestWind(LIMITS)
    w.observe("drone-1", 0.0, 4.0, 0.0, 0.3, airborne=True)
    w.observe("drone-2", 0.0, 2.0, 2.0, 0.3, airborne=True)
    st = w.status(1.0)
    assert st.launches_allowed and st.measured
    assert st.wind.north_mps == pytest.approx(3.0) and st.wind.east_mps == pytest.approx(1.0)


def test_strong_wind_stops_launches_until_calm_for_the_resume_time() -> None:
    w = NestWind(LIMITS)
    w.observe("drone-1", 0.0, 11.0, 0.0, 0.3, airborne=True)
    stop = w.status(0.0)
    assert not stop.launches_allowed and stop.state is WindState.GROUND_STOP
    assert "over the limit" in stop.reason
    w.observe("drone-1", 10.0, 3.0, 0.0, 0.3, airborne=True)
    assert not w.status(10.0).launches_allowed  # resuming, not yet
    w.observe("drone-1", 320.0, 3.0, 0.0, 0.3, airborne=True)
    assert w.status(320.0).launches_allowed


def test_a_ground_stop_is_not_lifted_by_the_estimates_going_stale() -> None:
    w = NestWind(LIMITS)
    w.observe("drone-1", 0.0, 11.0, 0.0, 0.3, airborne=True)
    assert not w.status(0.0).launches_allowed
    # The drone landed; nothing fresh for a long time. No data is no proof of calm.
    assert not w.status(10_000.0).launches_allowed
