"""Pure physics of the simulator: kinematics, wind limits, power and battery."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nestsim.geo import LocalFrame, point_in_polygon
from nestsim.physics import Airframe, Battery, approach, approach_2d, cell_ocv_v, limit_by_airspeed


@given(
    pos=st.floats(-500, 500),
    vel=st.floats(-10, 10),
    target=st.floats(-500, 500),
    dt=st.floats(0.01, 0.5),
)
def test_approach_never_overshoots_the_target(
    pos: float, vel: float, target: float, dt: float
) -> None:
    p, v = pos, vel
    # enough steps to cover the distance at the slowest speed limit, plus braking time
    steps = int((abs(target - pos) / 3.0 + abs(vel) / 3.0 + 30.0) / dt) + 100
    for _ in range(steps):
        new_p, v = approach(p, v, target, 5.0, 3.0, 3.0, dt)
        # never beyond the target on the far side
        if (target - p) * (target - new_p) < 0:
            pytest.fail(f"overshot from {p} to {new_p} (target {target})")
        p = new_p
        if p == target and v == 0.0:
            break
    assert p == pytest.approx(target, abs=1e-6)


def test_approach_2d_reaches_target_at_cruise_speed_without_wind() -> None:
    e = n = ve = vn = 0.0
    top = 0.0
    for _ in range(2000):
        e, n, ve, vn = approach_2d(e, n, ve, vn, 1000.0, 0.0, 25.0, 4.0, 0.05, 0, 0, 28.0)
        top = max(top, math.hypot(ve, vn))
    assert (e, n) == (1000.0, 0.0)
    assert top == pytest.approx(25.0, abs=0.01)


def test_wind_stronger_than_max_airspeed_drifts_downwind() -> None:
    ve, vn = limit_by_airspeed(0.0, 10.0, 0.0, -30.0, 28.0)  # 30 m/s from the north
    assert ve == pytest.approx(0.0)
    assert vn == pytest.approx(-2.0)


def test_headwind_caps_groundspeed() -> None:
    _, vn = limit_by_airspeed(0.0, 25.0, 0.0, -10.0, 28.0)
    assert vn == pytest.approx(18.0)
    _ve, vn = limit_by_airspeed(0.0, 25.0, 0.0, 10.0, 28.0)  # tailwind: unchanged
    assert vn == pytest.approx(25.0)


def test_power_rises_with_mass_airspeed_and_climb() -> None:
    af = Airframe()
    base = af.power_w(af.empty_mass_kg, 0, 0)
    assert af.power_w(af.empty_mass_kg + af.max_payload_kg, 0, 0) > base * 1.4
    assert af.power_w(af.empty_mass_kg, 25, 0) == pytest.approx(
        base + af.hover_power_w * af.forward_power_gain
    )
    assert af.power_w(af.empty_mass_kg, 0, 3) > base


def test_battery_voltage_sags_under_load_and_drops_with_charge() -> None:
    b = Battery(capacity_wh=100, cells=6, internal_resistance_ohm=0.03, energy_wh=100)
    rest = b.voltage_v
    assert rest == pytest.approx(6 * 4.2)
    b.draw(1000.0, 1.0)
    assert b.voltage_v < rest - 1.0
    assert b.current_a == pytest.approx(1000 / 25.2, rel=0.01)
    assert b.energy_wh == pytest.approx(100 - 1000 / 3600)
    assert cell_ocv_v(0.2) < cell_ocv_v(0.8)


def test_local_frame_round_trips_and_has_metric_scale() -> None:
    f = LocalFrame(33.15, -96.82)
    e, n = f.to_en(33.16, -96.81)
    lat, lon = f.to_latlon(e, n)
    assert (lat, lon) == pytest.approx((33.16, -96.81), abs=1e-9)
    # 0.01 degrees of latitude is ~1109 m at this latitude
    assert n == pytest.approx(1109.0, abs=2.0)


def test_point_in_polygon() -> None:
    square = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
    assert point_in_polygon(5, 5, square)
    assert not point_in_polygon(15, 5, square)
    assert not point_in_polygon(-0.1, 5, square)
