"""Routing around keep-outs: legality, completeness against a grid search, time and altitude."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry.base import BaseGeometry

from nestd.airspace import (
    Airspace,
    LatLon,
    Margins,
    NoRoute,
    NoRouteReason,
    Route,
    RouterConfig,
    plan_delivery,
    plan_route,
    validate_mission,
)
from nestd.airspace.router import _Context, _contexts
from nestd.airspace.testing import random_field, star_polygon, synthetic_airspace
from nestd.airspace.timewin import Applicability, Schedule

CHI = ZoneInfo("America/Chicago")
TUESDAY_15 = datetime(2026, 11, 24, 15, 0, tzinfo=CHI)
TUESDAY_19 = datetime(2026, 11, 24, 19, 0, tzinfo=CHI)
ONE_LAYER = RouterConfig(layers_agl_m=(40.0,))
SQUARE_KEEP_IN = shapely.box(-600, -600, 600, 600)


def at(a: Airspace, x: float, y: float) -> LatLon:
    return a.to_wgs84(x, y)


def route(r: Route | NoRoute) -> Route:
    assert isinstance(r, Route), r
    return r


def assert_route_is_legal(a: Airspace, r: Route) -> None:
    line = shapely.LineString(r.xy_m)
    hm = a.margins.horizontal_m
    for z in a.zones:
        assert shapely.distance(line, z.geometry) >= hm - 1e-6, z.id
    assert a.keep_in.geometry.covers(line)
    assert shapely.distance(line, a.keep_in.geometry.boundary) >= hm - 1e-6


def test_clear_line_gives_a_direct_route() -> None:
    a = synthetic_airspace([shapely.box(300, 300, 400, 400)], keep_in=SQUARE_KEEP_IN)
    r = route(plan_route(a, a.nest.position, at(a, -300, 200), 0.0, ONE_LAYER))
    assert len(r.points) == 2
    assert r.points[0] == a.nest.position
    assert r.length_m == pytest.approx(np.hypot(300, 200), abs=0.01)


def test_obstacle_on_the_line_is_flown_around_with_the_margin() -> None:
    a = synthetic_airspace([shapely.box(150, -100, 250, 100)], keep_in=SQUARE_KEEP_IN)
    r = route(plan_route(a, a.nest.position, at(a, 450, 0), 0.0, ONE_LAYER))
    assert len(r.points) >= 3
    assert r.length_m > 450
    assert_route_is_legal(a, r)
    # Tight around the corner: within the margin + simplification slack of optimal.
    corner = np.hypot(150 - 30, 130) + np.hypot(450 - 250 - 30, 130) + 100 + 60
    assert r.length_m < corner + 40


def test_goal_in_a_concavity_is_reached_through_the_opening() -> None:
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
    a = synthetic_airspace([u_shape], keep_in=SQUARE_KEEP_IN, margins=Margins(20.0, 10.0))
    r = route(plan_route(a, a.nest.position, at(a, 250, 0), 0.0, ONE_LAYER))
    assert_route_is_legal(a, r)


def test_enclosed_goal_is_unreachable() -> None:
    donut = shapely.Point(300, 0).buffer(200).difference(shapely.Point(300, 0).buffer(120))
    a = synthetic_airspace([donut], keep_in=SQUARE_KEEP_IN)
    r = plan_route(a, a.nest.position, at(a, 300, 0), 0.0, ONE_LAYER)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.UNREACHABLE


def test_goal_inside_a_keep_out_names_it_and_offers_a_legal_point() -> None:
    a = synthetic_airspace([shapely.box(200, -100, 400, 100)], keep_in=SQUARE_KEEP_IN)
    r = plan_route(a, a.nest.position, at(a, 300, 0), 0.0, ONE_LAYER)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.GOAL_IN_KEEP_OUT
    assert r.feature_ids == ("z0",)
    assert r.nearest_legal is not None
    x, y = a.to_local(r.nearest_legal)
    assert 100 < np.hypot(x - 300, y) < 200  # the nearest edge is 100 m + margin away
    assert isinstance(plan_route(a, a.nest.position, r.nearest_legal, 0.0, ONE_LAYER), Route)


def test_goal_outside_the_keep_in() -> None:
    a = synthetic_airspace([], keep_in=SQUARE_KEEP_IN)
    r = plan_route(a, a.nest.position, at(a, 900, 0), 0.0, ONE_LAYER)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.GOAL_OUTSIDE_KEEP_IN
    assert r.nearest_legal is not None
    x, _ = a.to_local(r.nearest_legal)
    assert 560 < x < 571  # 600 m edge less the 30 m margin
    assert isinstance(plan_route(a, a.nest.position, r.nearest_legal, 0.0, ONE_LAYER), Route)


def test_active_tfr_over_the_nest_blocks_takeoff() -> None:
    t0 = datetime(2026, 11, 28, 18, 0, tzinfo=CHI)
    tfr = Schedule((Applicability(start=t0, end=t0.replace(hour=20)),))
    a = synthetic_airspace(
        [shapely.Point(0, 0).buffer(100)], keep_in=SQUARE_KEEP_IN, schedules=[tfr]
    )
    r = plan_route(a, a.nest.position, at(a, 400, 0), t0.replace(hour=19), ONE_LAYER)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.START_IN_KEEP_OUT
    assert isinstance(plan_route(a, a.nest.position, at(a, 400, 0), t0.replace(hour=21)), Route)


def test_zone_that_starts_during_the_flight_is_avoided() -> None:
    t0 = datetime(2026, 11, 28, 18, 0, tzinfo=CHI)
    tfr = Schedule((Applicability(start=t0, end=t0.replace(hour=20)),))
    a = synthetic_airspace(
        [shapely.box(150, -100, 250, 100)], keep_in=SQUARE_KEEP_IN, schedules=[tfr]
    )
    cfg = RouterConfig(layers_agl_m=(40.0,), flight_duration_s=900)
    early = route(
        plan_route(a, a.nest.position, at(a, 450, 0), t0.replace(hour=17, minute=50), cfg)
    )
    earlier = route(
        plan_route(a, a.nest.position, at(a, 450, 0), t0.replace(hour=17, minute=40), cfg)
    )
    assert len(early.points) > 2
    assert len(earlier.points) == 2


def test_school_zone_blocks_a_15h_flight_but_not_a_19h_one(richardson: Airspace) -> None:
    a = richardson
    goal = LatLon(32.9500, -96.7480)
    school = a.buffered_zone(a.zone_index["high-school"])
    at15 = route(plan_route(a, a.nest.position, goal, TUESDAY_15))
    at19 = route(plan_route(a, a.nest.position, goal, TUESDAY_19))
    assert not shapely.LineString(at15.xy_m).intersects(school)
    assert len(at19.points) == 2
    assert shapely.LineString(at19.xy_m).intersects(school)


def test_tall_wall_is_overflown_when_the_detour_is_long() -> None:
    wall = shapely.box(200, -550, 260, 550)  # leaves 50 m gaps: closed by the 30 m margin
    a = synthetic_airspace([wall], keep_in=SQUARE_KEEP_IN, ceilings_m=[50.0])
    r = route(plan_route(a, a.nest.position, at(a, 450, 0), 0.0))
    # 40 m is inside the band; 60 m is inside the 10 m vertical margin; 80 m is clear.
    assert r.cruise_alt_agl_m == 80.0
    assert len(r.points) == 2


def test_low_obstacle_with_a_short_detour_keeps_the_low_layer() -> None:
    a = synthetic_airspace(
        [shapely.box(200, -20, 220, 20)], keep_in=SQUARE_KEEP_IN, ceilings_m=[50.0]
    )
    r = route(plan_route(a, a.nest.position, at(a, 450, 0), 0.0))
    assert r.cruise_alt_agl_m == 40.0
    assert len(r.points) > 2


def test_delivery_under_an_overflyable_zone_is_refused_for_the_descent() -> None:
    a = synthetic_airspace(
        [shapely.box(200, -100, 400, 100)], keep_in=SQUARE_KEEP_IN, ceilings_m=[50.0]
    )
    r = plan_route(a, a.nest.position, at(a, 300, 0), 0.0)
    assert isinstance(r, NoRoute)
    assert r.reason is NoRouteReason.GOAL_IN_KEEP_OUT
    hover = plan_route(a, a.nest.position, at(a, 300, 0), 0.0, goal_alt_agl_m=70.0)
    assert isinstance(hover, Route)  # lowering on a tether from 70 m is fine


def test_delivery_plan_passes_mission_validation(richardson: Airspace) -> None:
    plan = plan_delivery(richardson, LatLon(32.9500, -96.7480), TUESDAY_15)
    assert not isinstance(plan, NoRoute), plan
    wps = plan.to_waypoints(delivery_alt_agl_m=0.0)
    assert validate_mission(richardson, wps, TUESDAY_15) == []
    assert plan.inbound.points[-1] == richardson.nest.position


def test_routes_in_the_dense_benchmark_field_are_legal() -> None:
    a = synthetic_airspace(random_field(300, seed=3, extent_m=3000), keep_in_radius_m=3200)
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(15):
        x, y = rng.uniform(-2500, 2500, 2)
        r = plan_route(a, a.nest.position, at(a, x, y), 0.0, ONE_LAYER)
        if isinstance(r, Route):
            found += 1
            assert_route_is_legal(a, r)
    assert found >= 8


# ---------------------------------------------------------------------------
# Properties on random obstacle fields, checked against a brute-force grid.

CELL_M = 20.0


def grid_reachable(a: Airspace, goal_xy: tuple[float, float]) -> bool:
    """8-connected search over cell centres with clearance margin + half a cell diagonal."""
    hm = a.margins.horizontal_m
    need = hm + CELL_M * np.sqrt(2) / 2 + 0.5
    n = int(600 // CELL_M)
    ax = np.arange(-n, n + 1) * CELL_M
    xx, yy = np.meshgrid(ax, ax, indexing="ij")
    obstacles: BaseGeometry = shapely.union_all([z.geometry for z in a.zones])
    pts = shapely.points(xx.ravel(), yy.ravel())
    clear = (
        shapely.distance(pts, obstacles) >= need
        if not obstacles.is_empty
        else np.ones(len(pts), bool)
    )
    inner = shapely.buffer(a.keep_in.geometry, -need)
    clear &= shapely.intersects(pts, inner)
    free = clear.reshape(xx.shape)
    s = (n, n)
    g = (n + round(goal_xy[0] / CELL_M), n + round(goal_xy[1] / CELL_M))
    if not (free[s] and free[g]):
        return False
    seen = {s}
    q = deque([s])
    while q:
        i, j = q.popleft()
        if (i, j) == g:
            return True
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                k = (i + di, j + dj)
                if (
                    0 <= k[0] < free.shape[0]
                    and 0 <= k[1] < free.shape[1]
                    and free[k]
                    and k not in seen
                ):
                    seen.add(k)
                    q.append(k)
    return False


@st.composite
def fields(draw: st.DrawFn) -> tuple[Airspace, tuple[float, float]]:
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 9))
    rng = np.random.default_rng(seed)
    polys = []
    while len(polys) < n:
        x, y = rng.uniform(-520, 520, 2)
        r = rng.uniform(30, 180)
        if np.hypot(x, y) < r + 60:
            continue
        polys.append(star_polygon(rng, x, y, r, int(rng.integers(5, 24))))
    a = synthetic_airspace(
        polys, keep_in=SQUARE_KEEP_IN, margins=Margins(draw(st.sampled_from([10.0, 30.0])), 10.0)
    )
    gx = draw(st.integers(-27, 27)) * CELL_M
    gy = draw(st.integers(-27, 27)) * CELL_M
    return a, (gx, gy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields())
def test_router_finds_a_legal_route_whenever_the_grid_does(
    case: tuple[Airspace, tuple[float, float]],
) -> None:
    a, (gx, gy) = case
    assume((gx, gy) != (0.0, 0.0))
    r = plan_route(a, a.nest.position, at(a, gx, gy), 0.0, ONE_LAYER)
    if isinstance(r, Route):
        assert_route_is_legal(a, r)
    elif grid_reachable(a, (gx, gy)):
        pytest.fail(f"grid reaches ({gx}, {gy}) but the router says {r}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_edge_tests_find_exactly_the_obstacles_geos_finds(seed: int) -> None:
    """The disc prefilter and the one-edge path drop no obstacle an edge crosses."""
    a = synthetic_airspace(
        random_field(300, seed=seed % 1000, extent_m=3000), keep_in_radius_m=3000
    )
    mask = np.ones(len(a.zones), bool)
    coarse, fine = _contexts(a, RouterConfig(), mask)
    assert coarse.tree is not None
    exact = frozenset(int(i) for i in coarse.idx[:3])
    mixed = _Context(
        a, coarse.idx, coarse.tier, coarse.keep_in, coarse.tree, mask, exact, discs=coarse.discs
    )
    rng = np.random.default_rng(seed)
    seg = rng.uniform(-3000, 3000, (40, 2, 2))
    seg[:5, 1] = seg[:5, 0] + rng.uniform(-50, 50, (5, 2))  # some short edges too
    lines = shapely.linestrings(seg)
    for ctx in (coarse, fine, mixed):
        if ctx.tree is not None:
            li, j = ctx.tree.query(lines, predicate="intersects")
            want = {(int(k), int(ctx.idx[t])) for k, t in zip(li, j, strict=True)}
            want = {(k, z) for k, z in want if z not in ctx.exact}
            hm = a.margins.horizontal_m
            for z in ctx.exact:
                want |= {
                    (int(k), z) for k in np.flatnonzero(shapely.dwithin(a.geometries[z], lines, hm))
                }
        else:
            li, zi = a.query_margin(lines)
            want = {(int(k), int(z)) for k, z in zip(li, zi, strict=True)}
        li, zi = ctx.hits(seg)
        assert {(int(k), int(z)) for k, z in zip(li, zi, strict=True)} == want
        for k in range(len(seg)):
            one = ctx.blockers_of(*seg[k, 0], *seg[k, 1])
            assert sorted(one) == sorted(z for kk, z in want if kk == k)
