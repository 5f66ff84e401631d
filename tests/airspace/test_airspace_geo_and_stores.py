"""Local frame and geodesy, plus end-to-end golden checks on the two shipped stores."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from nestd.airspace import (
    Airspace,
    FenceLimits,
    LatLon,
    LocalFrame,
    NoRoute,
    NoRouteReason,
    Route,
    bearing_deg,
    build_fence,
    distance_m,
    plan_delivery,
    plan_route,
    validate_mission,
)
from nestd.airspace.fence import MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION

LUX = ZoneInfo("Europe/Luxembourg")
CHI = ZoneInfo("America/Chicago")


def test_local_frame_round_trips_and_keeps_distances() -> None:
    origin = LatLon(32.96, -96.725)
    f = LocalFrame(origin)
    p = LatLon(32.99, -96.70)
    x, y = f.point_to_local(p)
    back = f.point_to_wgs84(x, y)
    assert back.lat_deg == pytest.approx(p.lat_deg, abs=1e-9)
    assert back.lon_deg == pytest.approx(p.lon_deg, abs=1e-9)
    # Azimuthal equidistant: distance from the centre is exact.
    assert np.hypot(x, y) == pytest.approx(distance_m(origin, p), rel=1e-9)
    assert x > 0
    assert y > 0  # north-east


def test_bearing_and_distance_on_the_ellipsoid() -> None:
    a = LatLon(49.6105, 6.0820)
    north = LatLon(49.6195, 6.0820)
    assert bearing_deg(a, north) == pytest.approx(0.0, abs=1e-6)
    assert distance_m(a, north) == pytest.approx(1000.8, abs=1.0)  # 0.009° of latitude
    assert bearing_deg(north, a) == pytest.approx(180.0, abs=1e-6)


def test_route_time_uses_the_geodesic_length(richardson: Airspace) -> None:
    r = plan_route(richardson, richardson.nest.position, LatLon(32.9700, -96.7150), 0.0)
    assert isinstance(r, Route)
    assert r.geodesic_length_m() == pytest.approx(r.length_m, rel=1e-3)
    assert r.cruise_time_s(10.0) == pytest.approx(r.geodesic_length_m() / 10.0)


def test_bertrange_delivery_avoids_the_hospital_and_validates(bertrange: Airspace) -> None:
    t = datetime(2026, 11, 24, 11, 0, tzinfo=LUX)  # a Tuesday
    heli = bertrange.zone("LU-HOSP-HELI-1")
    assert heli.circle is not None
    # East-north-east, past the helipad circle (the straight line clips it).
    goal = LatLon(49.6170, 6.1130)
    plan = plan_delivery(bertrange, goal, t)
    assert not isinstance(plan, NoRoute), plan
    assert len(plan.outbound.points) > 2
    assert validate_mission(bertrange, plan.to_waypoints(0.0), t) == []


def test_bertrange_airport_zone_refuses_goals_inside_it(bertrange: Airspace) -> None:
    r = plan_route(bertrange, bertrange.nest.position, LatLon(49.6130, 6.1330), 0.0)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.GOAL_IN_KEEP_OUT
    assert "LU-ELLX-CTR-UAS" in r.feature_ids


def test_bertrange_weekend_market_only_on_weekend_mornings(bertrange: Airspace) -> None:
    market = LatLon(49.6195, 6.0790)
    sat = datetime(2026, 11, 28, 9, 0, tzinfo=LUX)  # 08:00Z, inside 07:00Z-13:00Z
    tue = datetime(2026, 11, 24, 9, 0, tzinfo=LUX)
    on = plan_route(bertrange, bertrange.nest.position, market, sat)
    off = plan_route(bertrange, bertrange.nest.position, market, tue)
    assert isinstance(on, NoRoute)
    assert "LU-EVENT-MARKET#0" in on.feature_ids
    assert isinstance(off, Route)


def test_bertrange_fence_carries_the_ed269_circles(bertrange: Airspace) -> None:
    plan = build_fence(
        bertrange, FenceLimits(60, 150, 10), datetime(2026, 11, 24, 11, 0, tzinfo=LUX)
    )
    circles = {
        i.feature_id: i.param1
        for i in plan.fence
        if i.command == MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION
    }
    assert circles["LU-ELLX-CTR-UAS"] == 6000
    assert circles["LU-HOSP-HELI-1"] == pytest.approx(304.8)
    assert [r.feature_id for r in plan.rally] == ["safe-field", "safe-lot"]


def test_richardson_airport_edge_is_routed_around(richardson: Airspace) -> None:
    # Both ends west of the nest, on either side of the class D circle's bulge.
    t = datetime(2026, 11, 24, 19, 0, tzinfo=CHI)
    a = LatLon(32.9900, -96.7600)
    b = LatLon(32.9470, -96.7600)
    r = plan_route(richardson, a, b, t)
    assert isinstance(r, Route), r
    assert len(r.points) > 2
    wps = r.to_waypoints()
    assert validate_mission(richardson, wps, t, from_home=False) == []


def test_richardson_route_goes_around_the_keep_in_hole(richardson: Airspace) -> None:
    t = datetime(2026, 11, 24, 19, 0, tzinfo=CHI)
    south, north = LatLon(32.9700, -96.7050), LatLon(32.9840, -96.7050)
    r = plan_route(richardson, south, north, t)
    assert isinstance(r, Route), r
    assert len(r.points) > 2
    assert r.length_m > distance_m(south, north) + 100
    assert validate_mission(richardson, r.to_waypoints(), t, from_home=False) == []


def test_safe_sites_are_listed_nearest_first(richardson: Airspace) -> None:
    near_park = LatLon(32.9650, -96.7320)
    sites = richardson.safe_sites_by_distance(near_park)
    assert sites[0][0].id == "safe-park-west"
    assert [d for _, d in sites] == sorted(d for _, d in sites)
    assert sites[0][1] < 100
