"""The result of mission validation: a read-only list whose messages and positions are lazy."""

from __future__ import annotations

import copy
import gc
import pickle
import weakref

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nestd.airspace import (
    Airspace,
    Violation,
    ViolationKind,
    Violations,
    Waypoint,
    validate_mission,
)
from nestd.airspace.testing import random_field, synthetic_airspace

KEEP_IN = shapely.box(-600, -600, 600, 600)


def wp(a: Airspace, x: float, y: float, alt: float) -> Waypoint:
    p = a.to_wgs84(x, y)
    return Waypoint(p.lat_deg, p.lon_deg, alt)


def eager(v: Violation) -> Violation:
    return Violation(v.leg, v.kind, v.feature_id, v.message, v.where)


@pytest.fixture
def a() -> Airspace:
    return synthetic_airspace(
        [shapely.box(200, -50, 300, 50), shapely.box(-300, 200, -200, 300)], keep_in=KEEP_IN
    )


def test_violations_behave_like_a_read_only_list(a: Airspace) -> None:
    m = [
        wp(a, 0, 0, 40),
        wp(a, 250, 0, 40),
        wp(a, 250, 0, 130),
        wp(a, -250, 250, 40),
        wp(a, -700, 250, 40),
    ]
    vs = validate_mission(a, m, 0.0)
    assert isinstance(vs, Violations)
    assert vs and len(vs) == 8
    # Ordered by leg, kind, feature: the zones' rows and the others merged.
    assert [(v.leg, v.kind, v.feature_id) for v in vs] == [
        (1, ViolationKind.KEEP_OUT, "z0"),
        (2, ViolationKind.ABOVE_CEILING, "keep-in"),
        (2, ViolationKind.KEEP_OUT, "z0"),
        (3, ViolationKind.ABOVE_CEILING, "keep-in"),
        (3, ViolationKind.KEEP_OUT, "z0"),
        (3, ViolationKind.KEEP_OUT, "z1"),
        (4, ViolationKind.KEEP_OUT, "z1"),
        (4, ViolationKind.OUTSIDE_KEEP_IN, "keep-in"),
    ]
    assert (
        vs[4].message == "leg 3 enters keep-out 'z0' (zone 0) at 121-130 m; zone band 0-unlimited m"
    )
    first = vs[0]
    assert vs[0] is first and next(iter(vs)) is first  # made once, then kept
    assert vs[-1].kind is ViolationKind.OUTSIDE_KEEP_IN
    assert isinstance(vs[1:3], list) and vs[1:3] == [vs[1], vs[2]]
    with pytest.raises(IndexError):
        vs[8]
    assert first in vs and vs.index(vs[3]) == 3 and vs.count(first) == 1
    assert list(vs) == vs and vs == list(vs) and vs == tuple(vs)
    assert vs == validate_mission(a, m, 0.0)
    assert vs != [] and vs != list(vs)[:-1] and vs != "not a list"
    with pytest.raises(TypeError):
        hash(vs)
    assert repr(vs).startswith("Violations([Violation(leg=1, kind=")

    legal = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 0, -300, 40)], 0.0)
    assert legal == [] and not legal and len(legal) == 0
    assert [] == legal  # noqa: SIM300  (the list's == defers to Violations)
    assert list(legal) == [] and repr(legal) == "Violations([])"


def test_a_violation_is_immutable_hashable_and_pickles_whole(a: Airspace) -> None:
    vs = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)
    v = vs[0]
    with pytest.raises(AttributeError):
        v.leg = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        v.message = "fine"  # type: ignore[misc]
    assert v == eager(v) and eager(v) == v and hash(v) == hash(eager(v))
    assert v != Violation(v.leg, v.kind, v.feature_id, "another message", v.where)
    assert v != Violation(v.leg + 1, v.kind, v.feature_id, v.message, v.where)
    assert v != (v.leg, v.kind, v.feature_id, v.message, v.where)
    back = pickle.loads(pickle.dumps(v))
    assert back == v and type(back) is Violation
    assert copy.copy(v) == v and copy.deepcopy(vs) == vs
    match v:
        case Violation(leg, kind, feature_id, message, where):
            assert (leg, kind, feature_id) == (1, ViolationKind.KEEP_OUT, "z0")
            assert message == v.message and where == v.where
    assert repr(v) == repr(eager(v))
    assert repr(v).startswith("Violation(leg=1, kind=<ViolationKind.KEEP_OUT: 'keep_out'>, ")
    # A violation made by hand has no source to ask; an invalid waypoint no position.
    hand = Violation(0, ViolationKind.BELOW_GROUND, None, "down")
    assert hand.message == "down" and hand.where is None
    bad = validate_mission(a, [Waypoint(float("nan"), 0.0, 40.0)], 0.0)
    assert [(v.kind, v.where) for v in bad] == [(ViolationKind.INVALID_WAYPOINT, None)]
    assert bad[0].message == "waypoint 0 has a non-finite or out-of-range position/altitude"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_lazy_message_and_where_are_the_eager_ones_and_placed_as_geos_says(seed: int) -> None:
    """Whatever is read first, a violation's message and where come out the same, and
    where is the first point of the leg in the zone, or its point closest to it."""
    rng = np.random.default_rng(seed)
    zones = random_field(40, seed=seed % 1000, extent_m=900, radius_m=(10.0, 60.0))
    zones.append(
        shapely.Point(-700, 700).buffer(80).difference(shapely.Point(-700, 700).buffer(40))
    )
    zones.append(
        shapely.MultiPolygon([shapely.box(600, -800, 650, -750), shapely.box(700, -800, 760, -700)])
    )
    floors = rng.choice([0.0, 0.0, 30.0, 60.0], len(zones)).tolist()
    a = synthetic_airspace(
        zones,
        keep_in_radius_m=1000,
        floors_m=floors,
        ceilings_m=[f + float(rng.choice([20.0, 50.0, np.inf])) for f in floors],
    )
    pts = rng.uniform(-1050, 1050, (25, 2))
    alts = rng.choice([-5.0, 0.0, 20.0, 40.0, 70.0, 115.0], len(pts))
    m = [wp(a, float(x), float(y), float(h)) for (x, y), h in zip(pts, alts, strict=True)]

    one = validate_mission(a, m, 0.0, return_alt_m=50.0)
    made = [eager(v) for v in one]  # message, then where, in order
    two = validate_mission(a, m, 0.0, return_alt_m=50.0)
    for v in reversed(two):  # where first, from the end
        assert v.where == made[two.index(v)].where
    assert two == made and made == two
    keys = [(v.leg, v.kind, v.feature_id or "") for v in one]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)

    home = (0.0, 0.0)
    path = [home, *[(float(x), float(y)) for x, y in pts], (float(pts[-1, 0]), float(pts[-1, 1]))]
    path.append(home)
    for v in one:
        assert v.message.startswith(f"leg {v.leg} ")
        if v.kind not in (ViolationKind.KEEP_OUT, ViolationKind.KEEP_OUT_MARGIN):
            continue
        assert v.feature_id is not None and repr(v.feature_id) in v.message
        assert v.where is not None
        zone = a.zone(v.feature_id).geometry
        line = shapely.LineString([path[v.leg], path[v.leg + 1]])
        if line.length < 1e-3:
            continue
        at = shapely.Point(a.to_local(v.where))
        assert line.distance(at) < 1e-3
        if v.kind is ViolationKind.KEEP_OUT:
            assert "enters" in v.message
            assert zone.distance(at) < 1e-3
            first = shapely.get_coordinates(line.intersection(zone))
            along = min(line.project(shapely.Point(c)) for c in first)
            assert line.project(at) <= along + 1e-3
        else:
            assert "safety margin" in v.message
            assert abs(zone.distance(at) - zone.distance(line)) < 1e-3


def test_runs_of_edges_follow_each_ring_and_pad_to_fixed_widths() -> None:
    zones = [
        shapely.Point(0, 0).buffer(80, 9).difference(shapely.Point(0, 0).buffer(40, 4)),
        shapely.MultiPolygon([shapely.box(300, 0, 330, 40), shapely.box(400, 0, 405, 90)]),
        shapely.Polygon([(600, 0), (700, 0), (650, 90)]),
        *random_field(5, seed=3, extent_m=2000),
    ]
    a = synthetic_airspace(zones, keep_in_radius_m=3000)
    ze = a.zone_edges
    assert ze.run_vertices.shape == (len(ze.run_count), 2, ze.RUN + 1)
    for r in range(len(ze.run_count)):
        s, c = int(ze.run_start[r]), int(ze.run_count[r])
        assert 1 <= c <= ze.RUN
        v = ze.run_vertices[r]
        # Each edge of the run joins two consecutive vertices: no run spans two rings.
        assert np.array_equal(v[0, :c], ze.x0[s : s + c]) and np.array_equal(
            v[1, :c], ze.y0[s : s + c]
        )
        assert np.array_equal(v[0, 1 : c + 1], ze.x1[s : s + c])
        assert np.array_equal(v[1, 1 : c + 1], ze.y1[s : s + c])
        assert (v[:, c:] == v[:, c : c + 1]).all()  # padded with the last vertex
    for z in range(len(zones)):
        first, n_runs = int(ze.run_start_of_zone[z]), int(ze.runs_of_zone[z])
        blocks = range(ze.block_start_of_zone[z], ze.block_start_of_zone[z] + ze.blocks_of_zone[z])
        runs = np.concatenate([ze.block_runs[b] for b in blocks])
        real = ~np.isnan(np.concatenate([ze.block_discs[b, 2] for b in blocks]))
        assert runs[real].tolist() == list(range(first, first + n_runs))
        edges = range(ze.run_start[first], ze.run_start[first] + ze.count[z])
        assert int(ze.run_count[first : first + n_runs].sum()) == len(edges) == ze.count[z]
        ring_sizes = [len(r.coords) - 1 for r in shapely.get_rings(shapely.get_parts(zones[z]))]
        assert n_runs == sum(-(-k // ze.RUN) for k in ring_sizes)


def test_a_violation_kept_does_not_keep_the_airspace_alive() -> None:
    a = synthetic_airspace([shapely.box(200, -50, 300, 50)], keep_in=KEEP_IN)
    v = validate_mission(a, [wp(a, 0, 0, 40), wp(a, 500, 0, 40)], 0.0)[0]
    gone = weakref.ref(a)
    del a
    gc.collect()
    assert gone() is None  # replaced airspaces (and their route caches) can go
    assert v.message.startswith("leg 1 enters keep-out 'z0'") and v.where is not None
