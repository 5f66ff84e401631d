"""Vehicle fence and rally items: commands, limits, and simplification that never loosens."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from nestd.airspace import Airspace, FenceError, FenceLimits, LatLon, build_fence
from nestd.airspace.fence import (
    MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
    MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
    MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
    MAV_CMD_NAV_FENCE_RETURN_POINT,
    MAV_CMD_NAV_RALLY_POINT,
    fit_polygon,
)
from nestd.airspace.testing import star_polygon

CHI = ZoneInfo("America/Chicago")
TUESDAY_15 = datetime(2026, 11, 24, 15, 0, tzinfo=CHI)
ROOMY = FenceLimits(max_vertices_per_polygon=100, max_total_items=200, max_polygons=20)


def polygons(items: list) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for it in items:
        if it.command in (
            MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
            MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
        ):
            out.setdefault(it.feature_id, []).append(it)
    return out


def test_store_fence_has_keep_in_exclusions_return_point_and_rally(richardson: Airspace) -> None:
    plan = build_fence(richardson, ROOMY, TUESDAY_15)
    cmds = [i.command for i in plan.fence]
    assert cmds[0] == MAV_CMD_NAV_FENCE_RETURN_POINT
    polys = polygons(list(plan.fence))
    inclusion = polys["ops-area"]
    assert {i.command for i in inclusion} == {MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION}
    assert all(i.param1 == len(inclusion) for i in inclusion)  # vertex count
    assert "ops-area/hole0" in polys  # the keep-in's hole is an exclusion
    circles = {
        i.feature_id: i for i in plan.fence if i.command == MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION
    }
    assert circles["kads-class-d"].param1 == 7400  # radius in metres
    assert "high-school" in polys  # active at 15:00 on a Tuesday
    assert "dfw-class-b-shelf" not in circles  # floor above the operating ceiling
    assert "tfr-stadium-event" not in circles  # not active this week
    assert [r.feature_id for r in plan.rally] == [
        "safe-park-west",
        "safe-lot-north",
        "safe-field-south",
    ]
    assert {r.command for r in plan.rally} == {MAV_CMD_NAV_RALLY_POINT}
    assert plan.rally[0].alt_m == 40
    assert plan.alt_max_m == 120
    assert plan.complete


def test_school_is_left_off_the_fence_after_hours(richardson: Airspace) -> None:
    plan = build_fence(
        richardson, ROOMY, datetime(2026, 11, 24, 19, 0, tzinfo=CHI), flight_duration_s=900
    )
    assert "high-school" not in polygons(list(plan.fence))


def test_limits_are_respected_and_reported(richardson: Airspace) -> None:
    tight = FenceLimits(max_vertices_per_polygon=8, max_total_items=24, max_polygons=2)
    plan = build_fence(richardson, tight, TUESDAY_15)
    assert len(plan.fence) <= 24
    polys = polygons(list(plan.fence))
    assert len(polys) <= 2
    assert all(len(v) <= 8 for v in polys.values())
    assert "ops-area" in plan.approximations
    # The nest stays inside the (shrunk) inclusion polygon.
    ring = [richardson.to_local(LatLon(i.lat_deg, i.lon_deg)) for i in polys["ops-area"]]
    assert shapely.Polygon(ring).contains(shapely.Point(0, 0))


def test_far_keep_outs_are_left_off_when_a_route_is_given(richardson: Airspace) -> None:
    n = richardson.nest.position
    route = [n, type(n)(n.lat_deg - 0.005, n.lon_deg + 0.002)]
    plan = build_fence(richardson, ROOMY, TUESDAY_15, route=route, near_m=300)
    ids = {i.feature_id for i in plan.fence}
    assert "hospital-helipad" not in ids  # ~4 km north
    assert "ops-area" in ids


def test_impossible_limits_raise() -> None:
    with pytest.raises(FenceError):
        fit_polygon(shapely.box(0, 0, 10, 10), 2, grow=True)


def test_square_keep_out_fits_a_triangle_by_growing() -> None:
    fitted, moved = fit_polygon(shapely.box(0, 0, 10, 10), 3, grow=True)
    assert len(fitted.exterior.coords) == 4
    assert fitted.covers(shapely.box(0, 0, 10, 10))
    assert moved > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 60), st.integers(3, 12))
def test_simplified_keep_out_always_covers_the_original(seed: int, n: int, limit: int) -> None:
    poly = star_polygon(np.random.default_rng(seed), 0, 0, 200, n)
    fitted, _ = fit_polygon(poly, limit, grow=True)
    assert len(fitted.exterior.coords) - 1 <= limit
    assert fitted.buffer(1e-6).covers(poly)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 60), st.integers(3, 12))
def test_simplified_keep_in_always_stays_inside_the_original(seed: int, n: int, limit: int) -> None:
    poly = star_polygon(np.random.default_rng(seed), 0, 0, 2000, n)
    try:
        fitted, _ = fit_polygon(poly, limit, grow=False)
    except FenceError:
        return  # refusing is allowed; loosening is not
    assert len(fitted.exterior.coords) - 1 <= limit
    assert poly.buffer(1e-6).covers(fitted)
    assert fitted.area > 0


def test_keep_out_that_would_grow_over_the_route_is_left_off_and_reported() -> None:
    from nestd.airspace.testing import synthetic_airspace

    u_shape = shapely.Polygon(
        [
            (100, -200),
            (400, -200),
            (400, 200),
            (100, 200),
            (100, 120),
            (320, 120),
            (320, -120),
            (100, -120),
        ]
    )
    a = synthetic_airspace([u_shape], keep_in=shapely.box(-600, -600, 600, 600))
    route = [a.nest.position, a.to_wgs84(250, 0)]  # into the bay
    plan = build_fence(a, FenceLimits(4, 50, 5), 0.0, route=route)
    assert plan.omitted == ("z0",)
    assert "cover" in plan.approximations["z0"]
    assert not plan.complete
    roomy = build_fence(a, FenceLimits(20, 50, 5), 0.0, route=route)
    assert roomy.complete
    assert "z0" in polygons(list(roomy.fence))


def test_zone_the_route_overflies_is_not_drawn_as_a_2d_exclusion() -> None:
    from nestd.airspace.testing import synthetic_airspace

    low = shapely.box(200, -100, 300, 100)
    a = synthetic_airspace([low], keep_in=shapely.box(-600, -600, 600, 600), ceilings_m=[50.0])
    route = [a.nest.position, a.to_wgs84(450, 0)]  # straight over it at 80 m
    plan = build_fence(a, ROOMY, 0.0, route=route, max_alt_agl_m=80.0)
    assert "z0" not in polygons(list(plan.fence))
    assert plan.omitted == ("z0",)
    assert "inside its outline" in plan.approximations["z0"]
    beside = build_fence(
        a, ROOMY, 0.0, route=[a.nest.position, a.to_wgs84(0, 450)], max_alt_agl_m=80.0
    )
    assert "z0" in polygons(list(beside.fence))


def test_zone_above_the_mission_is_left_to_the_altitude_fence() -> None:
    from nestd.airspace.testing import synthetic_airspace

    a = synthetic_airspace(
        [shapely.box(200, -100, 300, 100)],
        keep_in=shapely.box(-600, -600, 600, 600),
        floors_m=[90.0],
    )
    assert "z0" not in polygons(list(build_fence(a, ROOMY, 0.0, max_alt_agl_m=60.0).fence))
    assert "z0" in polygons(list(build_fence(a, ROOMY, 0.0, max_alt_agl_m=100.0).fence))
