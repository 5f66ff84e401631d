"""Predicted geofence breaches from position and velocity, one vehicle and a whole fleet."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from nestd.airspace import Airspace, BreachKind, BreachPredictor
from nestd.airspace.breach import CEILING, KEEP_IN, NO_BREACH
from nestd.airspace.testing import synthetic_airspace

KEEP_IN_BOX = shapely.box(-600, -600, 600, 600)


def airspace() -> Airspace:
    return synthetic_airspace(
        [shapely.box(200, -50, 300, 50), shapely.box(-300, 200, -200, 300)],
        keep_in=KEEP_IN_BOX,
        ceilings_m=[float("inf"), 50.0],
    )


def check(
    p: BreachPredictor,
    a: Airspace,
    x: float,
    y: float,
    h: float,
    vn: float,
    ve: float,
    vd: float = 0.0,
):  # type: ignore[no-untyped-def]
    pos = a.to_wgs84(x, y)
    return p.check(pos.lat_deg, pos.lon_deg, h, vn, ve, vd)


def test_heading_into_a_zone_predicts_the_time_to_breach() -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    b = check(p, a, 150, 0, 40, 0, 10)  # 50 m from the zone at 10 m/s
    assert b is not None
    assert b.kind is BreachKind.KEEP_OUT
    assert b.feature_id == "z0"
    assert b.time_to_breach_s == pytest.approx(5.0, abs=0.05)
    assert not b.now


def test_flying_away_or_too_slow_is_no_breach() -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    assert check(p, a, 150, 0, 40, 0, -10) is None
    assert check(p, a, 150, 0, 40, 0, 4) is None  # 40 m in 10 s: stops short


def test_inside_a_zone_is_a_breach_now() -> None:
    a = airspace()
    b = check(BreachPredictor(a, 0.0), a, 250, 0, 40, 0, 0)
    assert b is not None
    assert b.now


def test_zone_below_the_vehicle_is_not_a_breach_unless_descending_into_it() -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    assert check(p, a, -250, 150, 80, 10, 0) is None  # over a 50 m zone at 80 m
    b = check(p, a, -250, 150, 80, 10, 0, vd=5.0)  # 30 m lower after 6 s: 50 m
    assert b is not None
    assert b.feature_id == "z1"


def test_leaving_the_keep_in_and_climbing_through_the_ceiling() -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    b = check(p, a, -550, 0, 40, 0, -10)
    assert b is not None
    assert b.kind is BreachKind.OUTSIDE_KEEP_IN
    assert b.time_to_breach_s == pytest.approx(5.0, abs=0.05)
    up = check(p, a, 0, 0, 110, 0, 0, vd=-4.0)
    assert up is not None
    assert up.kind is BreachKind.ABOVE_CEILING
    assert up.time_to_breach_s == pytest.approx(2.5)


def test_lookahead_is_configurable() -> None:
    a = airspace()
    assert check(BreachPredictor(a, 0.0, lookahead_s=3.0), a, 150, 0, 40, 0, 10) is None


def test_batch_reports_which_feature() -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    pts = [a.to_wgs84(x, y) for x, y in [(150, 0), (0, 0), (-550, 0), (0, 0)]]
    res = p.check_many(
        [q.lat_deg for q in pts],
        [q.lon_deg for q in pts],
        [40, 40, 40, 125],
        [0, 0, 0, 0],
        [10, 0, -10, 0],
        [0, 0, 0, 0],
    )
    assert res.breach.tolist() == [True, False, True, True]
    assert res.code.tolist() == [0, NO_BREACH, KEEP_IN, CEILING]
    assert res.feature_id(a, 0) == "z0"
    assert res.feature_id(a, 1) is None


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_batched_and_scalar_checks_agree(seed: int) -> None:
    a = airspace()
    p = BreachPredictor(a, 0.0)
    rng = np.random.default_rng(seed)
    n = 40
    x, y = rng.uniform(-700, 700, n), rng.uniform(-700, 700, n)
    h = rng.uniform(0, 125, n)
    vn, ve, vd = rng.uniform(-15, 15, n), rng.uniform(-15, 15, n), rng.uniform(-3, 3, n)
    lon, lat = a.frame.to_wgs84(x, y)
    res = p.check_many(lat, lon, h, vn, ve, vd)
    for i in range(n):
        one = p.check(lat[i], lon[i], h[i], vn[i], ve[i], vd[i])
        # Batch heights span the whole lookahead, so it may flag a zone the
        # scalar check (height at entry) clears; it must never miss one.
        if one is not None:
            assert res.breach[i], (i, one)
