"""Mission validation: every leg, the descent, the return; all violations, not the first."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nestd.airspace import Airspace, AltFrame, LatLon, ViolationKind, Waypoint, validate_mission
from nestd.airspace.testing import random_field, synthetic_airspace

CHI = ZoneInfo("America/Chicago")
TUESDAY_15 = datetime(2026, 11, 24, 15, 0, tzinfo=CHI)
TUESDAY_19 = datetime(2026, 11, 24, 19, 0, tzinfo=CHI)
KEEP_IN = shapely.box(-600, -600, 600, 600)


def wp(
    a: Airspace, x: float, y: float, alt: float, frame: AltFrame = AltFrame.RELATIVE_HOME
) -> Waypoint:
    p = a.to_wgs84(x, y)
    return Waypoint(p.lat_deg, p.lon_deg, alt, frame)


def kinds(vs: list) -> list[tuple[int, ViolationKind, str | None]]:  # type: ignore[type-arg]
    return [(v.leg, v.kind, v.feature_id) for v in vs]


def airspace(**kw: object) -> Airspace:
    return synthetic_airspace([shapely.box(200, -50, 300, 50)], keep_in=KEEP_IN, **kw)  # type: ignore[arg-type]


def test_clear_mission_has_no_violations() -> None:
    a = airspace()
    m = [
        wp(a, 0, 0, 40),
        wp(a, 0, 300, 40),
        wp(a, 0, 300, 0),
        wp(a, 0, 300, 40),
        wp(a, 0, 0, 40),
        wp(a, 0, 0, 0),
    ]
    assert validate_mission(a, m, 0.0) == []


def test_leg_through_a_keep_out_is_reported_with_the_zone() -> None:
    a = airspace()
    vs = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)
    assert kinds(vs) == [(1, ViolationKind.KEEP_OUT, "z0")]
    assert vs[0].where is not None
    x, _ = a.to_local(vs[0].where)
    assert abs(x - 200) < 1  # where the leg enters the zone


def test_passing_inside_the_margin_is_its_own_kind() -> None:
    a = airspace()
    vs = validate_mission(a, [wp(a, 0, 70, 40), wp(a, 500, 70, 40)], 0.0)
    assert kinds(vs) == [(1, ViolationKind.KEEP_OUT_MARGIN, "z0")]


def test_descent_into_a_zone_below_cruise_is_caught() -> None:
    a = airspace(ceilings_m=[50.0])
    # Overflying at 80 m is fine; descending to 20 m over the zone is not.
    m = [wp(a, 0, 0, 80), wp(a, 250, 0, 80), wp(a, 250, 0, 20)]
    assert kinds(validate_mission(a, m, 0.0)) == [(2, ViolationKind.KEEP_OUT, "z0")]


def test_sloped_leg_uses_the_height_where_it_crosses_the_zone() -> None:
    # Climbing from the ground at x=0 to 100 m at x=500: 40-60 m over the zone (x 200-300).
    climb = [wp(airspace(), 500, 0, 100)]
    assert validate_mission(airspace(ceilings_m=[20.0]), climb, 0.0) == []
    vs = validate_mission(airspace(ceilings_m=[45.0]), climb, 0.0)
    assert kinds(vs) == [(0, ViolationKind.KEEP_OUT, "z0")]


def test_leaving_the_operating_area_and_its_margin() -> None:
    a = airspace()
    vs = validate_mission(a, [wp(a, 0, 0, 40), wp(a, -580, 0, 40), wp(a, -800, 0, 40)], 0.0)
    assert kinds(vs) == [
        (1, ViolationKind.KEEP_IN_MARGIN, "keep-in"),
        (2, ViolationKind.OUTSIDE_KEEP_IN, "keep-in"),
    ]


def test_ceiling_and_ground() -> None:
    a = airspace()
    vs = validate_mission(a, [wp(a, 0, 0, 115), wp(a, 0, 100, 130), wp(a, 0, 200, -5)], 0.0)
    assert kinds(vs) == [
        (0, ViolationKind.ABOVE_CEILING, "keep-in"),  # 115 > 120 - 10 margin
        (1, ViolationKind.ABOVE_CEILING, "keep-in"),
        (2, ViolationKind.ABOVE_CEILING, "keep-in"),
        (2, ViolationKind.BELOW_GROUND, None),
    ]


def test_all_violations_are_returned_in_leg_order() -> None:
    a = airspace()
    m = [wp(a, 0, 0, 40), wp(a, 500, 0, 40), wp(a, 500, 0, 200), wp(a, -800, 0, 40)]
    legs = [v.leg for v in validate_mission(a, m, 0.0)]
    assert legs == sorted(legs)
    assert {1, 2, 3} <= set(legs)


def test_amsl_waypoints_are_converted_with_the_store_ground(richardson: Airspace) -> None:
    a = richardson
    n = a.nest.position
    ok = Waypoint(n.lat_deg + 0.001, n.lon_deg, 192.0 + 40.0, AltFrame.AMSL)
    high = Waypoint(n.lat_deg + 0.001, n.lon_deg, 192.0 + 125.0, AltFrame.AMSL)
    assert validate_mission(a, [ok], TUESDAY_15) == []
    assert [v.kind for v in validate_mission(a, [high], TUESDAY_15)] == [
        ViolationKind.ABOVE_CEILING
    ]


def test_non_finite_waypoint_is_reported_and_others_still_checked() -> None:
    a = airspace()
    bad = Waypoint(float("nan"), 0.0, 40.0)
    vs = validate_mission(a, [wp(a, 0, 0, 40), bad, wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)
    assert len([v for v in vs if v.kind is ViolationKind.INVALID_WAYPOINT]) == 1
    assert (1, ViolationKind.INVALID_WAYPOINT, None) in kinds(vs)
    assert (3, ViolationKind.KEEP_OUT, "z0") in kinds(vs)


def test_implicit_return_to_launch_is_checked() -> None:
    a = airspace()
    m = [wp(a, 0, 0, 40), wp(a, 0, 300, 40), wp(a, 500, 300, 40), wp(a, 500, 0, 40)]
    assert validate_mission(a, m, 0.0) == []
    vs = validate_mission(a, m, 0.0, return_alt_m=40.0)
    # Leg 4 climbs at the last waypoint; leg 5 flies straight home through the zone.
    assert kinds(vs) == [(5, ViolationKind.KEEP_OUT, "z0")]


def test_school_zone_matters_only_during_school_hours(richardson: Airspace) -> None:
    a = richardson
    school = a.zone("high-school").geometry.centroid
    p = a.to_wgs84(school.x, school.y)
    m = [Waypoint(p.lat_deg, p.lon_deg, 40.0)]
    at15 = kinds(validate_mission(a, m, TUESDAY_15))
    assert (0, ViolationKind.KEEP_OUT, "high-school") in at15
    at19 = kinds(validate_mission(a, m, TUESDAY_19, flight_duration_s=600))
    assert all(fid != "high-school" for _, _, fid in at19)


def test_home_defaults_to_the_nest(richardson: Airspace) -> None:
    n = richardson.nest.position
    far = LatLon(n.lat_deg, n.lon_deg + 0.2)
    vs = validate_mission(richardson, [Waypoint(n.lat_deg, n.lon_deg, 40.0)], TUESDAY_15, home=far)
    assert any(v.kind is ViolationKind.OUTSIDE_KEEP_IN for v in vs)
    assert validate_mission(richardson, [Waypoint(n.lat_deg, n.lon_deg, 40.0)], TUESDAY_15) == []


def test_entry_point_is_the_first_crossing_even_through_a_thin_sliver() -> None:
    # A 0.5 m sliver at x=150 (joined to the body at y 40-50) is crossed
    # before the body at x=300: the leg first enters the zone at x=150.
    zone = shapely.union_all(
        [
            shapely.box(300, -50, 400, 50),
            shapely.box(150, -50, 150.5, 50),
            shapely.box(150, 40, 300, 50),
        ]
    )
    a = synthetic_airspace([zone], keep_in=KEEP_IN)
    vs = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)
    assert kinds(vs) == [(1, ViolationKind.KEEP_OUT, "z0")]
    assert vs[0].where is not None
    x, y = a.to_local(vs[0].where)
    assert abs(x - 150) < 0.01 and abs(y) < 0.01


def test_margin_violation_is_placed_at_the_closest_point_of_the_leg() -> None:
    a = synthetic_airspace([shapely.Polygon([(250, 20), (300, 100), (200, 100)])], keep_in=KEEP_IN)
    vs = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)
    assert kinds(vs) == [(1, ViolationKind.KEEP_OUT_MARGIN, "z0")]
    assert vs[0].where is not None
    x, y = a.to_local(vs[0].where)
    assert abs(x - 250) < 0.01 and abs(y) < 0.01


def test_leg_across_the_notch_of_a_concave_operating_area_is_caught() -> None:
    # Both ends are well inside the U-shaped area; the leg between them is not.
    u_shape = shapely.Polygon(
        [
            (-600, -600),
            (600, -600),
            (600, 600),
            (200, 600),
            (200, -200),
            (-200, -200),
            (-200, 600),
            (-600, 600),
        ]
    )
    a = synthetic_airspace([], keep_in=u_shape)
    vs = validate_mission(a, [wp(a, -400, 300, 40), wp(a, 400, 300, 40)], 0.0, from_home=False)
    assert (1, ViolationKind.OUTSIDE_KEEP_IN, "keep-in") in kinds(vs)


def test_climb_over_a_zone_with_a_floor_is_judged_on_the_heights_near_it() -> None:
    # Climbing from 0 m at x=0 to 100 m at x=1000 passes 10 m beside a zone
    # that starts at 60 m: near the zone (x 200-300, plus the margin) the leg
    # is at 17-33 m, far below 60 m less the 10 m margin.
    a = synthetic_airspace(
        [shapely.box(200, 10, 300, 100)],
        keep_in=shapely.box(-600, -600, 1200, 600),
        floors_m=[60.0],
    )
    climb = [wp(a, 1000, 0, 100)]
    assert validate_mission(a, climb, 0.0) == []
    b = synthetic_airspace(
        [shapely.box(200, 10, 300, 100)],
        keep_in=shapely.box(-600, -600, 1200, 600),
        floors_m=[35.0],
    )
    assert kinds(validate_mission(b, climb, 0.0)) == [(0, ViolationKind.KEEP_OUT_MARGIN, "z0")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_every_leg_within_the_margin_of_a_zone_is_reported_as_geos_measures_it(seed: int) -> None:
    """Validation's numpy edge tests agree with GEOS distances on random fields and legs."""
    rng = np.random.default_rng(seed)
    zones = random_field(
        60, seed=seed % 1000, extent_m=900, radius_m=(10.0, 60.0), clear_radius_m=0.0
    )
    # A zone with a hole and a multi-part zone: rings beyond a plain outline.
    zones.append(
        shapely.Point(-700, 700).buffer(80).difference(shapely.Point(-700, 700).buffer(40))
    )
    zones.append(
        shapely.MultiPolygon([shapely.box(600, -800, 650, -750), shapely.box(700, -800, 760, -700)])
    )
    a = synthetic_airspace(zones, keep_in_radius_m=2000)
    pts = rng.uniform(-950, 950, (31, 2))
    pts[5] = zones[3].representative_point().coords[0]  # a leg starting inside a zone
    pts[6] = (-700, 700)  # and one in a hole
    m = [wp(a, float(x), float(y), 40.0) for x, y in pts]
    got = {(v.leg, v.feature_id): v.kind for v in validate_mission(a, m, 0.0, from_home=False)}
    lines = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
    hm = a.margins.horizontal_m
    for k, line in enumerate(lines):
        for z in a.zones:
            d = shapely.distance(line, z.geometry)
            want = None
            if d == 0:
                want = ViolationKind.KEEP_OUT
            elif d <= hm - 1e-6:
                want = ViolationKind.KEEP_OUT_MARGIN
            elif d <= hm + 1e-6:
                continue  # on the margin's edge: either answer is fine
            assert got.get((k + 1, z.id)) == want, (k, z.id, d)
