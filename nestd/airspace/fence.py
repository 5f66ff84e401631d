"""Turn the store airspace into vehicle fence and rally items within a firmware's limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace
from nestd.airspace.errors import AirspaceError
from nestd.airspace.geo import LatLon
from nestd.airspace.router import inner_simplify, outer_simplify
from nestd.airspace.timewin import Instant, to_utc
from nestd.airspace.waypoints import AltFrame

# MAV_CMD numbers (MAVLink common.xml).
MAV_CMD_NAV_FENCE_RETURN_POINT = 5000
MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION = 5001
MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION = 5002
MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION = 5003
MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION = 5004
MAV_CMD_NAV_RALLY_POINT = 5100

_MAX_TOLERANCE_M = 2_000.0
FloatArray = NDArray[np.float64]


class FenceError(AirspaceError):
    """The operating area cannot be represented within the vehicle's fence limits."""


@dataclass(frozen=True, slots=True)
class FenceLimits:
    """What the autopilot can store (from its firmware profile).

    Circles count as items, not polygons; the return point counts as an item.
    """

    max_vertices_per_polygon: int
    max_total_items: int
    max_polygons: int


@dataclass(frozen=True, slots=True)
class FenceItem:
    """One MAV_MISSION_TYPE_FENCE or _RALLY item, unscaled (the codec scales it).

    param1 is the polygon's vertex count for vertex items and the radius in
    metres for circles; param2 is the inclusion group (PX4), 0 here.
    """

    command: int
    lat_deg: float
    lon_deg: float
    param1: float = 0.0
    param2: float = 0.0
    alt_m: float = 0.0
    frame: AltFrame = AltFrame.RELATIVE_HOME
    feature_id: str | None = None


@dataclass(frozen=True, slots=True)
class FencePlan:
    fence: tuple[FenceItem, ...]
    rally: tuple[FenceItem, ...]
    alt_max_m: float
    """Operating ceiling relative to home, for the FENCE_ALT_MAX-style parameter."""
    omitted: tuple[str, ...] = ()
    """Keep-outs left off the vehicle (no room, or simplified they would cover the route);
    the router and the mission check still honour them."""
    approximations: dict[str, str] = field(default_factory=dict)
    """How each feature was approximated to fit, when it had to be."""

    @property
    def complete(self) -> bool:
        return not self.omitted


@dataclass(slots=True)
class _Region:
    feature_id: str
    inclusion: bool
    polygon: BaseGeometry | None  # exterior only, local frame
    circle: tuple[float, float, float] | None  # x, y, r
    distance_m: float

    def items(self) -> int:
        return 1 if self.circle is not None else _nverts(self.polygon)


def _nverts(p: BaseGeometry | None) -> int:
    if p is None:
        return 0
    return len(p.exterior.coords) - 1


def _ccw_ring(poly: BaseGeometry) -> FloatArray:
    ring = shapely.orient_polygons(shapely.Polygon(poly.exterior), exterior_cw=False)
    return np.asarray(ring.exterior.coords)[:-1, :2]


def _tri_area(p: FloatArray, q: FloatArray, r: FloatArray) -> FloatArray:
    """Signed doubled area: > 0 when p->q->r turns left."""
    return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])


def _greedy_step(c: FloatArray, original: BaseGeometry, grow: bool) -> FloatArray | None:
    """Remove one vertex at the least area change, keeping the containment rule.

    Shrinking cuts off a convex corner; growing fills in a reflex corner or, on
    a convex ring, extends the two neighbouring edges of the cheapest edge until
    they meet. Candidates are tried cheapest first until one stays valid.
    """
    prev, nxt = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
    turn = _tri_area(prev, c, nxt)
    cands: list[tuple[float, FloatArray]] = []
    wanted = turn < 0 if grow else turn > 0
    for i in np.flatnonzero(wanted | (np.abs(turn) < 1e-9)):
        cands.append((abs(float(turn[i])), np.delete(c, i, axis=0)))
    if grow and not cands:
        n = len(c)
        for j in range(n):
            a0, a1 = c[j - 1], c[j]
            b0, b1 = c[(j + 1) % n], c[(j + 2) % n]
            d1, d2 = a1 - a0, b1 - b0
            den = d1[0] * d2[1] - d1[1] * d2[0]
            if abs(den) < 1e-12:
                continue
            t = ((b0[0] - a0[0]) * d2[1] - (b0[1] - a0[1]) * d2[0]) / den
            if t <= 1.0:
                continue  # the extended edges meet behind: not a convex growth
            pnt = a0 + t * d1
            area = abs(float((pnt - a1)[0] * (b0 - a1)[1] - (pnt - a1)[1] * (b0 - a1)[0]))
            new = np.concatenate([c[:j], [pnt], c[j + 2 :]]) if j + 1 < n else None
            if new is None:
                new = np.concatenate([[pnt], c[1:j]])
            cands.append((area, new))
    cands.sort(key=lambda t: t[0])
    for _, new in cands[:8]:
        if len(new) < 3:
            continue
        poly = shapely.Polygon(new)
        if not poly.is_valid or poly.area <= 0:
            continue
        if poly.covers(original) if grow else original.covers(poly):
            return new
    return None


def fit_polygon(poly: BaseGeometry, max_vertices: int, *, grow: bool) -> tuple[BaseGeometry, float]:
    """Simplify to at most `max_vertices`, growing (keep-outs) or shrinking (keep-ins) only.

    Returns the polygon and the largest distance it moved from the original
    (Hausdorff, metres). Greedy least-area vertex removal keeps the change
    small; Douglas-Peucker with a safety offset first thins very dense rings.
    Raises FenceError when the limit cannot be met.
    """
    if max_vertices < 3:
        raise FenceError(f"max_vertices_per_polygon={max_vertices} cannot hold a polygon")
    original = shapely.Polygon(poly.exterior)
    current = original
    tol = 0.5
    while _nverts(current) > 4 * max_vertices and tol <= _MAX_TOLERANCE_M:
        s = _largest(outer_simplify(original, tol) if grow else inner_simplify(original, tol))
        if s is not None and (s.covers(original) if grow else original.covers(s)):
            current = s
        tol *= 2
    c = _ccw_ring(current)
    while len(c) > max_vertices:
        step = _greedy_step(c, original, grow)
        if step is None:
            if grow:
                hull = original.convex_hull
                if _nverts(hull) < len(c):
                    c = _ccw_ring(hull)
                    continue
                # Stuck on a convex ring (e.g. a square into a triangle): a
                # regular polygon around the bounding circle always covers it.
                x, y, r = _bounding_circle(original)
                k = max_vertices
                ang = np.arange(k) * 2 * np.pi / k
                rr = r / np.cos(np.pi / k)
                c = np.column_stack([x + rr * np.cos(ang), y + rr * np.sin(ang)])
                break
            raise FenceError(f"cannot fit a polygon into {max_vertices} vertices")
        c = step
    fitted = shapely.Polygon(c)
    moved = float(shapely.hausdorff_distance(fitted.exterior, original.exterior))
    return fitted, (moved if _nverts(original) != len(c) else 0.0)


def _largest(g: BaseGeometry) -> BaseGeometry | None:
    parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty]
    if not parts:
        return None
    if len(parts) > 1:
        return None  # a shrink that splits the area needs more than one polygon
    return shapely.Polygon(parts[0].exterior)


def _bounding_circle(poly: BaseGeometry) -> tuple[float, float, float]:
    c = shapely.minimum_bounding_circle(poly).centroid
    r = float(shapely.minimum_bounding_radius(poly))
    # Recompute the radius from the centroid we actually upload, plus a hair.
    r = max(r, float(shapely.hausdorff_distance(shapely.Point(c.x, c.y), poly))) + 0.5
    return float(c.x), float(c.y), r


def build_fence(
    a: Airspace,
    limits: FenceLimits,
    at: Instant,
    *,
    route: Sequence[LatLon] | None = None,
    near_m: float = 500.0,
    flight_duration_s: float = 1800.0,
    max_alt_agl_m: float | None = None,
    rally_alt_agl_m: float = 40.0,
    include_return_point: bool = True,
) -> FencePlan:
    """Fence items (keep-in inclusion, keep-out exclusions) and rally points.

    The fence is the real boundary, not the planning margin: it is the
    backstop if the vehicle strays. Vehicle fences are 2D, so a keep-out is
    drawn only if its floor is below `max_alt_agl_m` (pass the mission's
    highest altitude; default the operating ceiling) and the route, nest and
    pads are outside its outline (a zone the route legally overflies would
    otherwise trip the fence); the others are listed in `omitted`. Keep-outs
    active during the flight and within `near_m` of the route (all of them
    without a route) are included. Simplification only ever grows keep-outs
    and shrinks the keep-in. When over the item or polygon budget, the
    farthest keep-outs become bounding circles, then are omitted.
    """
    t0 = to_utc(at)
    active = a.active_mask(t0, to_utc(t0.timestamp() + flight_duration_s))
    top = a.keep_in.ceiling_m if max_alt_agl_m is None else max_alt_agl_m
    protect_pts = [a.nest.xy_m, *(p.xy_m for p in a.pads)]
    if route:
        protect_pts += [a.to_local(p) for p in route]
    protect: BaseGeometry = (
        shapely.LineString(protect_pts) if len(protect_pts) > 1 else shapely.Point(protect_pts[0])
    )
    approximations: dict[str, str] = {}

    regions: list[_Region] = []
    unfenced: list[str] = []
    keep_in_parts = list(shapely.get_parts(a.keep_in.geometry))
    for k, part in enumerate(keep_in_parts):
        fid = a.keep_in.ids[0] if len(keep_in_parts) == 1 else f"{a.keep_in.ids[0]}[{k}]"
        ext = shapely.Polygon(part.exterior)
        fitted, tol = fit_polygon(ext, limits.max_vertices_per_polygon, grow=False)
        if tol:
            approximations[fid] = f"shrunk by up to {tol:.1f} m to {_nverts(fitted)} vertices"
        if not fitted.covers(shapely.intersection(protect, ext)):
            raise FenceError(
                f"{fid}: within {limits.max_vertices_per_polygon} vertices the keep-in no longer "
                "contains the nest, pads and route"
            )
        regions.append(_Region(fid, True, fitted, None, 0.0))
        for h, hole in enumerate(part.interiors):
            hp = shapely.Polygon(hole)
            hfid = f"{fid}/hole{h}"
            reg = _exclusion(hfid, hp, None, limits, protect, approximations)
            if reg is None:
                unfenced.append(hfid)
            else:
                regions.append(reg)

    for i, z in enumerate(a.zones):
        if not active[i] or z.floor_m > top:
            continue
        dist = float(shapely.distance(z.geometry, protect))
        if route and dist > near_m:
            continue
        circle = (*z.circle.center_xy_m, z.circle.radius_m) if z.circle else None
        for part in shapely.get_parts(z.geometry):
            reg = _exclusion(z.id, part, circle, limits, protect, approximations)
            if reg is None:
                unfenced.append(z.id)
            else:
                regions.append(reg)

    def budget() -> tuple[int, int]:
        items = sum(r.items() for r in regions) + int(include_return_point)
        polys = sum(1 for r in regions if r.polygon is not None)
        return items, polys

    def over() -> bool:
        items, polys = budget()
        return items > limits.max_total_items or polys > limits.max_polygons

    omitted: list[str] = list(unfenced)
    # Farthest first: those matter least for this flight. Circles first cost
    # one item each; only when that is not enough are zones left off.
    order = sorted((r for r in regions if not r.inclusion), key=lambda r: -r.distance_m)
    for r in order:
        if not over():
            break
        if r.polygon is None:
            continue
        x, y, rad = _bounding_circle(r.polygon)
        if not shapely.Point(x, y).buffer(rad).intersects(protect):
            r.polygon, r.circle = None, (x, y, rad)
            approximations[r.feature_id] = f"replaced by bounding circle r={rad:.0f} m"
    for r in order:
        if not over():
            break
        items, polys = budget()
        if items <= limits.max_total_items and r.polygon is None:
            continue  # only polygons are over budget; a circle costs no polygon
        regions.remove(r)
        omitted.append(r.feature_id)
    items, polys = budget()
    if items > limits.max_total_items or polys > limits.max_polygons:
        raise FenceError(
            f"keep-in alone needs {items} items / {polys} polygons, over the limits {limits}"
        )

    fence: list[FenceItem] = []
    if include_return_point:
        n = a.nest.position
        fence.append(
            FenceItem(MAV_CMD_NAV_FENCE_RETURN_POINT, n.lat_deg, n.lon_deg, alt_m=rally_alt_agl_m)
        )
    for r in regions:
        if r.circle is not None:
            x, y, rad = r.circle
            p = a.to_wgs84(x, y)
            cmd = (
                MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION
                if r.inclusion
                else MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION
            )
            fence.append(FenceItem(cmd, p.lat_deg, p.lon_deg, param1=rad, feature_id=r.feature_id))
            continue
        assert r.polygon is not None
        c = np.asarray(r.polygon.exterior.coords)[:-1]
        lon, lat = a.frame.to_wgs84(c[:, 0], c[:, 1])
        cmd = (
            MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION
            if r.inclusion
            else MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION
        )
        for la, lo in zip(lat, lon, strict=True):
            fence.append(
                FenceItem(cmd, float(la), float(lo), param1=float(len(c)), feature_id=r.feature_id)
            )

    rally = tuple(
        FenceItem(
            MAV_CMD_NAV_RALLY_POINT,
            s.position.lat_deg,
            s.position.lon_deg,
            alt_m=s.rally_alt_agl_m or rally_alt_agl_m,
            feature_id=s.id,
        )
        for s in a.safe_landing_sites
    )
    return FencePlan(
        fence=tuple(fence),
        rally=rally,
        alt_max_m=a.keep_in.ceiling_m,
        omitted=tuple(omitted),
        approximations=approximations,
    )


def _exclusion(
    fid: str,
    poly: BaseGeometry,
    circle: tuple[float, float, float] | None,
    limits: FenceLimits,
    protect: BaseGeometry,
    approximations: dict[str, str],
) -> _Region | None:
    """The exclusion region for one zone part, or None if it cannot be fenced safely."""
    dist = float(shapely.distance(poly, protect))
    if dist == 0.0:
        # The route flies over or under it (its band allows that) or the nest
        # sits below it: a 2D vehicle fence cannot say so and would trip.
        approximations[fid] = "left off: the route, nest or a pad is inside its outline"
        return None
    if circle is not None:
        return _Region(fid, False, None, circle, dist)
    fitted, tol = fit_polygon(poly, limits.max_vertices_per_polygon, grow=True)
    if fitted.intersects(protect) and not poly.intersects(protect):
        # Grown onto the nest, a pad or the route (or over a hole the route
        # uses), it would trip the vehicle's fence on a legal flight.
        approximations[fid] = (
            f"left off: within {limits.max_vertices_per_polygon} vertices it would cover "
            "the nest, a pad or the route"
        )
        return None
    if tol or _nverts(fitted) != _nverts(shapely.Polygon(poly.exterior)):
        approximations[fid] = f"grown by up to {tol:.1f} m to {_nverts(fitted)} vertices"
    return _Region(fid, False, fitted, None, dist)
