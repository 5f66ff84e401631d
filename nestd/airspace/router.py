"""Shortest legal route between two points: visibility graph over keep-out corners, A*."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import shapely
import shapely.ops
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace, BoolArray
from nestd.airspace.geo import LatLon, path_length_m
from nestd.airspace.model import conservative_buffer
from nestd.airspace.timewin import Instant, to_utc
from nestd.airspace.waypoints import AltFrame, Waypoint

FloatArray = NDArray[np.float64]
CORRIDOR_M = 150.0
MAX_CACHED_EDGES = 500_000


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """How the router chooses among legal routes."""

    layers_agl_m: tuple[float, ...] = (40.0, 60.0, 80.0, 100.0)
    """Cruise altitudes to choose from, metres above the nest's ground."""
    flight_duration_s: float = 1800.0
    """Time-limited zones active at any moment of [depart, depart + this] are avoided."""
    delivery_alt_agl_m: float = 0.0
    """Lowest height at the delivery point; the column from here to cruise must be legal."""
    altitude_cost_m_per_m: float = 2.0
    """Route cost of one metre of cruise altitude (climb energy), in horizontal metres."""
    simplify_tolerance_m: float = 3.0
    """Obstacles are outer-simplified by this much for speed; routes keep at least the margin."""
    node_offset_m: float = 0.5
    """Route corners sit this far outside the (margin-buffered) obstacles."""


DEFAULT_ROUTER_CONFIG = RouterConfig()


class NoRouteReason(StrEnum):
    START_OUTSIDE_KEEP_IN = "start_outside_keep_in"
    GOAL_OUTSIDE_KEEP_IN = "goal_outside_keep_in"
    START_IN_KEEP_OUT = "start_in_keep_out"
    GOAL_IN_KEEP_OUT = "goal_in_keep_out"
    UNREACHABLE = "unreachable"
    NO_LEGAL_LAYER = "no_legal_layer"


@dataclass(frozen=True, slots=True)
class Route:
    """A legal horizontal path flown at one cruise altitude, start and goal included."""

    points: tuple[LatLon, ...]
    xy_m: tuple[tuple[float, float], ...]
    cruise_alt_agl_m: float
    length_m: float
    depart_at: float
    """POSIX seconds the route was planned for (time windows were evaluated from here)."""

    def geodesic_length_m(self) -> float:
        """Length on the WGS84 ellipsoid (what ETAs and energy estimates should use)."""
        return path_length_m(self.points)

    def cruise_time_s(self, ground_speed_mps: float) -> float:
        return self.geodesic_length_m() / ground_speed_mps

    def to_waypoints(self, goal_alt_agl_m: float | None = None) -> list[Waypoint]:
        """Cruise waypoints plus the descent at the goal (relative to home = nest ground)."""
        wps = [Waypoint(p.lat_deg, p.lon_deg, self.cruise_alt_agl_m) for p in self.points]
        if goal_alt_agl_m is not None:
            g = self.points[-1]
            wps.append(Waypoint(g.lat_deg, g.lon_deg, goal_alt_agl_m, AltFrame.RELATIVE_HOME))
        return wps


@dataclass(frozen=True, slots=True)
class NoRoute:
    """Why no legal route exists, with the features responsible and a legal alternative."""

    reason: NoRouteReason
    message: str
    feature_ids: tuple[str, ...] = ()
    nearest_legal: LatLon | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    outbound: Route
    inbound: Route

    def to_waypoints(
        self, delivery_alt_agl_m: float, *, land_alt_agl_m: float = 0.0
    ) -> list[Waypoint]:
        """Takeoff column, outbound, descent and climb at the customer, return, landing."""
        nest = self.outbound.points[0]
        out = [Waypoint(nest.lat_deg, nest.lon_deg, 0.0)]
        out += self.outbound.to_waypoints(delivery_alt_agl_m)
        out += self.inbound.to_waypoints(land_alt_agl_m)
        return out


# ----------------------------------------------------------------------------
# Derived routing geometry (cached on the Airspace)
#
# Two tiers. Coarse: each zone's convex hull grown by the margin and thinned to
# a dozen corners; cheap to build for thousands of zones, few graph nodes, so
# most plans finish there. Fine: corners from the zone's own outline grown by
# the margin, edges tested against the exact margin (distance to the raw
# zone); built only for the zones a search touches, and used when the coarse
# tier finds no way (a goal in a bay of a zone, a gap between two hulls), so
# "no route" means no route.


def outer_simplify(geom: BaseGeometry, tolerance_m: float) -> BaseGeometry:
    """A polygon with fewer vertices that still covers `geom` (never smaller)."""
    if tolerance_m <= 0:
        return geom
    s = shapely.simplify(conservative_buffer(geom, tolerance_m, quad_segs=2), tolerance_m)
    return s if s.is_valid and s.covers(geom) else geom


def inner_simplify(geom: BaseGeometry, tolerance_m: float) -> BaseGeometry:
    """A polygon with fewer vertices that stays inside `geom` (never larger)."""
    if tolerance_m <= 0:
        return geom
    s = shapely.simplify(conservative_buffer(geom, -tolerance_m, quad_segs=2), tolerance_m)
    return s if s.is_valid and not s.is_empty and geom.covers(s) else geom


def _corner_nodes(poly: BaseGeometry, offset_m: float, sign: float) -> FloatArray:
    """Vertices where a taut path can bend, as (n, 3, 2): corner, previous, next vertex.

    Convex corners of obstacles (sign=+1) or reflex corners of the keep-in
    (sign=-1), pushed `offset_m` into free space; the ring neighbours let the
    search keep only edges tangent at both ends (a shortest path never cuts
    into an obstacle at a corner), which prunes most of the visibility graph.
    """
    grown = shapely.buffer(poly, sign * offset_m, join_style="mitre", mitre_limit=4.0)
    grown = shapely.orient_polygons(grown, exterior_cw=False)
    out: list[FloatArray] = []
    for part in shapely.get_parts(grown):
        for ring in [part.exterior, *part.interiors]:
            c = np.asarray(ring.coords)[:-1, :2]
            if len(c) < 3:
                continue
            prev = np.roll(c, 1, axis=0)
            nxt = np.roll(c, -1, axis=0)
            cross = (c[:, 0] - prev[:, 0]) * (nxt[:, 1] - c[:, 1]) - (c[:, 1] - prev[:, 1]) * (
                nxt[:, 0] - c[:, 0]
            )
            keep = cross * sign > 0
            out.append(np.stack([c[keep], prev[keep], nxt[keep]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 3, 2))


@dataclass(slots=True)
class _Tier:
    """Obstacle polygons for every zone (built lazily) and their corner nodes."""

    airspace: Airspace
    coarse: bool
    tolerance_m: float
    offset_m: float
    geoms: dict[int, BaseGeometry] = field(default_factory=dict)
    nodes: dict[int, FloatArray] = field(default_factory=dict)

    def geom(self, i: int) -> BaseGeometry:
        g = self.geoms.get(i)
        if g is None:
            self.build([i])
            g = self.geoms[i]
        return g

    def node(self, i: int) -> FloatArray:
        n = self.nodes.get(i)
        if n is None:
            n = _corner_nodes(self.geom(i), self.offset_m, 1.0)
            self.nodes[i] = n
        return n

    def build(self, idx: list[int]) -> None:
        todo = [i for i in idx if i not in self.geoms]
        if not todo:
            return
        a = self.airspace
        if self.coarse:
            raw = a.geometries[todo]
            hulls = shapely.convex_hull(raw)
            grown = conservative_buffer(hulls, a.margins.horizontal_m + self.tolerance_m, 2)
            thin = shapely.convex_hull(shapely.simplify(grown, self.tolerance_m))
            ok = shapely.covers(thin, raw) & shapely.is_valid(thin)
            exact = conservative_buffer(hulls, a.margins.horizontal_m, 2)
            for k, i in enumerate(todo):
                g = thin[k] if ok[k] else exact[k]
                shapely.prepare(g)
                self.geoms[i] = g
        else:
            for i in todo:
                # Only the corners come from this shape (edges are tested
                # against the exact margin), so a thinned, slightly larger
                # outline is fine and buffers ragged zones much faster.
                raw = a.geometries[i]
                thin = shapely.simplify(raw, 1.0)
                if not thin.is_valid or thin.is_empty:
                    thin = raw
                g = conservative_buffer(thin, a.margins.horizontal_m + 1.0, 2)
                g = outer_simplify(g, self.tolerance_m)
                shapely.prepare(g)
                self.geoms[i] = g


@dataclass(slots=True)
class _KeepInRouting:
    geom: BaseGeometry
    nodes: FloatArray
    convex: bool


@dataclass(slots=True)
class _Mixed:
    """Coarse corners for most zones, fine ones for the `exact` few (hugging an end)."""

    coarse: _Tier
    fine: _Tier
    exact: frozenset[int]

    def geom(self, i: int) -> BaseGeometry:
        return self.fine.geom(i) if i in self.exact else self.coarse.geom(i)

    def node(self, i: int) -> FloatArray:
        return self.fine.node(i) if i in self.exact else self.coarse.node(i)


@dataclass(frozen=True, slots=True)
class _Discs:
    """A disc around each tree shape (centre, squared radius), aligned with the tree.

    A line's bounding box meets many more shapes than the line does (a
    diagonal kilometre-long edge in a dense field meets dozens), and an exact
    GEOS test per box candidate made each edge test cost ~100 µs. Testing the
    line against each candidate's disc first is a few numpy operations for
    all candidates, and leaves GEOS only the shapes the line passes close to.
    The disc covers its shape (it reaches the farthest vertex), so dropping a
    candidate whose disc the line misses never drops an intersection.
    """

    geoms: NDArray[np.object_]
    cx: FloatArray
    cy: FloatArray
    r2: FloatArray

    @classmethod
    def around(cls, geoms: NDArray[np.object_]) -> _Discs:
        n = len(geoms)
        cx, cy, r2 = np.zeros(n), np.zeros(n), np.zeros(n)
        for k, g in enumerate(geoms):
            c = shapely.get_coordinates(g)
            if not len(c):
                continue
            mx, my = float(c[:, 0].mean()), float(c[:, 1].mean())
            r = float(np.max(np.hypot(c[:, 0] - mx, c[:, 1] - my)))
            # Slack far above the rounding of the distance computed below.
            r = r * (1.0 + 1e-9) + 1e-3
            cx[k], cy[k], r2[k] = mx, my, r * r
        return cls(geoms, cx, cy, r2)

    def pairs(
        self, tree: shapely.STRtree, seg: FloatArray, lines: NDArray[np.object_]
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(line, tree index) pairs where segment `seg[line]` intersects the tree shape."""
        li, j = tree.query(lines)
        if not len(li):
            return li, j
        p0x, p0y = seg[li, 0, 0], seg[li, 0, 1]
        dx, dy = seg[li, 1, 0] - p0x, seg[li, 1, 1] - p0y
        wx, wy = self.cx[j] - p0x, self.cy[j] - p0y
        t = (wx * dx + wy * dy) / np.maximum(dx * dx + dy * dy, 1e-300)
        np.clip(t, 0.0, 1.0, out=t)
        ex, ey = wx - t * dx, wy - t * dy
        near = ex * ex + ey * ey <= self.r2[j]
        li, j = li[near], j[near]
        hit = shapely.intersects(self.geoms[j], lines[li])
        return li[hit], j[hit]


@dataclass(slots=True)
class _Context:
    """Everything one search needs: the obstacle zones and where their shapes come from.

    Obstacles are tested with the coarse shapes (`tree`) except for the zones
    in `exact` (all of them when `tree` is None), which are tested against
    the exact margin: distance to the raw zone.
    """

    airspace: Airspace
    idx: NDArray[np.intp]  # zone indices that are obstacles here
    tier: _Tier | _Mixed
    keep_in: _KeepInRouting
    tree: shapely.STRtree | None  # over the coarse shapes of idx, in order
    mask: BoolArray
    exact: frozenset[int] = frozenset()
    stats: dict[str, int] = field(default_factory=dict)
    # Edge results between corner nodes, against every obstacle of this
    # context: () when clear, else the blocking zones. Shared by all plans.
    edges: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    discs: _Discs | None = None  # the tree's shapes and their discs, when `tree` is set
    masks: dict[str, BoolArray] = field(default_factory=dict)  # derived per-zone masks

    def _pairs(
        self, geoms: NDArray[np.object_], seg: FloatArray | None = None
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        lis: list[NDArray[np.intp]] = []
        zis: list[NDArray[np.intp]] = []
        if self.tree is not None:
            if seg is not None and self.discs is not None:
                li, j = self.discs.pairs(self.tree, seg, geoms)
            else:
                li, j = self.tree.query(geoms, predicate="intersects")
            zi = self.idx[j]
            if self.exact:
                keep = ~self._exact_mask()[zi]
                li, zi = li[keep], zi[keep]
            lis.append(li)
            zis.append(zi)
        if self.tree is None:
            li, zi = self.airspace.query_margin(geoms)
            keep = self.mask[zi]
            lis.append(li[keep])
            zis.append(zi[keep])
        else:
            # The few exact zones: distance to each raw zone, vectorised over geoms.
            hm = self.airspace.margins.horizontal_m
            for z in self.exact:
                li = np.flatnonzero(shapely.dwithin(self.airspace.geometries[z], geoms, hm))
                lis.append(li)
                zis.append(np.full(len(li), z, dtype=np.intp))
        if len(lis) == 1:
            return lis[0], zis[0]
        return np.concatenate(lis), np.concatenate(zis)

    def _exact_mask(self) -> BoolArray:
        m = self.masks.get("exact")
        if m is None:
            m = np.zeros(len(self.mask), bool)
            m[list(self.exact)] = True
            self.masks["exact"] = m
        return m

    def blockers_of(self, ax: float, ay: float, bx: float, by: float) -> tuple[int, ...]:
        """Zones whose obstacle the one segment a-b crosses (`hits` for one, with less overhead).

        The search tests one edge at a time hundreds of times per plan, so
        this path avoids the batch bookkeeping: scalar leg, one disc pass.
        """
        if self.tree is None or self.discs is None:
            return tuple(int(z) for z in self.hits(np.array([[[ax, ay], [bx, by]]]))[1])
        line = shapely.linestrings(np.array([[[ax, ay], [bx, by]]]))
        j = self.tree.query(line)[1]
        out: list[int] = []
        if len(j):
            d = self.discs
            dx, dy = bx - ax, by - ay
            dd = dx * dx + dy * dy
            wx = d.cx[j] - ax
            wy = d.cy[j] - ay
            t = (wx * dx + wy * dy) * (1.0 / dd if dd > 0.0 else 0.0)
            np.maximum(t, 0.0, out=t)
            np.minimum(t, 1.0, out=t)
            wx -= t * dx
            wy -= t * dy
            j = j[wx * wx + wy * wy <= d.r2[j]]
            if len(j):
                zi = self.idx[j[shapely.intersects(d.geoms[j], line[0])]]
                if self.exact:
                    zi = zi[~self._exact_mask()[zi]]
                out = zi.tolist()
        if self.exact:
            hm = self.airspace.margins.horizontal_m
            geoms = self.airspace.geometries
            out += [z for z in self.exact if shapely.dwithin(geoms[z], line[0], hm)]
        return tuple(out)

    def hits(self, seg: FloatArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(segment index, zone index) pairs for segments (n, 2, 2) crossing an obstacle."""
        return self._pairs(shapely.linestrings(seg), seg)

    def inside(self, pts: FloatArray) -> NDArray[np.bool_]:
        """Which points lie inside an obstacle of this context."""
        out = np.zeros(len(pts), bool)
        if len(pts):
            out[self._pairs(shapely.points(pts))[0]] = True
        return out

    def blockers(self, pts: FloatArray) -> set[int]:
        """Zone indices whose obstacle the polyline's legs cross."""
        if len(pts) < 2:
            return set()
        return {int(z) for z in self.hits(np.stack([pts[:-1], pts[1:]], axis=1))[1]}

    def near(self, geom: BaseGeometry, distance_m: float) -> set[int]:
        hits = self.airspace.tree.query(
            geom, predicate="dwithin", distance=distance_m + self.airspace.margins.horizontal_m
        )
        return {int(j) for j in hits if self.mask[j]}


def _tiers(a: Airspace, cfg: RouterConfig) -> tuple[_Tier, _Tier, _KeepInRouting]:
    key = ("tiers", cfg.simplify_tolerance_m, cfg.node_offset_m)
    got = a.route_cache.get(key)
    if isinstance(got, tuple):
        return got
    coarse = _Tier(a, True, max(5.0, 2 * cfg.simplify_tolerance_m), cfg.node_offset_m)
    fine = _Tier(a, False, cfg.simplify_tolerance_m, cfg.node_offset_m)
    # The keep-in is used as is: a goal the validator accepts must be reachable.
    g = a.keep_in_shrunk
    convex = bool(g.geom_type == "Polygon" and g.convex_hull.area - g.area <= 1e-9 * g.area)
    if convex:
        # Equal-area hull up to rounding: make it exactly the hull so the test is sound.
        g = g.convex_hull
        shapely.prepare(g)
    kr = _KeepInRouting(g, _corner_nodes(g, cfg.node_offset_m, -1.0), convex)
    a.route_cache[key] = (coarse, fine, kr)
    return coarse, fine, kr


def _contexts(a: Airspace, cfg: RouterConfig, mask: BoolArray) -> tuple[_Context, _Context]:
    key = ("ctx", cfg.simplify_tolerance_m, cfg.node_offset_m, mask.tobytes())
    got = a.route_cache.get(key)
    if isinstance(got, tuple):
        return got
    coarse, fine, kr = _tiers(a, cfg)
    idx = np.flatnonzero(mask)
    coarse.build([int(i) for i in idx])
    shapes = np.empty(len(idx), dtype=object)
    shapes[:] = [coarse.geoms[int(i)] for i in idx]
    tree = shapely.STRtree(shapes)
    pair = (
        _Context(a, idx, coarse, kr, tree, mask, discs=_Discs.around(shapes)),
        _Context(a, idx, fine, kr, None, mask),
    )
    ctx_keys = [k for k in a.route_cache if isinstance(k, tuple) and k[0] == "ctx"]
    if len(ctx_keys) >= 32:
        # Bounded: layers and time windows give few distinct obstacle sets a day.
        for k in ctx_keys[:16]:
            del a.route_cache[k]
    a.route_cache[key] = pair
    return pair


# ----------------------------------------------------------------------------
# Search


def _segments(ax: float, ay: float, targets: FloatArray) -> FloatArray:
    n = len(targets)
    coords = np.empty((n, 2, 2))
    coords[:, 0, 0] = ax
    coords[:, 0, 1] = ay
    coords[:, 1, :] = targets
    return coords


def _astar(
    ctx: _Context,
    start: tuple[float, float],
    goal: tuple[float, float],
    subset: list[int],
    found_blockers: set[int],
) -> FloatArray | None:
    """Lazy A* over the corners of the `subset` zones, edges tested against all obstacles.

    Edges are not tested when relaxed, only when their far node is about to
    be closed (one segment test); if that edge is blocked, the node's best
    visible parent among the closed nodes is looked for, cheapest first. With
    a consistent heuristic this closes each node at its true distance over
    these corners. Edge results between corners are cached on the context,
    so later plans and rounds reuse them. Zones that block a tested edge are
    added to `found_blockers`. Returns the corner coordinates (start and goal
    included), or None.
    """
    tier = ctx.tier
    ends = np.repeat(np.asarray([start, goal], float)[:, None, :], 3, axis=1)
    parts = [ends, ctx.keep_in.nodes]
    id_parts = [np.array([-1, -2]), -10 - np.arange(len(ctx.keep_in.nodes))]
    for i in subset:
        nd = tier.node(i)
        parts.append(nd)
        id_parts.append(i * 4096 + np.arange(len(nd)))
    full = np.concatenate([p for p in parts if len(p)])
    ids = np.concatenate(id_parts)
    keep_in = ctx.keep_in.geom
    # Corners inside an obstacle or outside the keep-in can never be visited.
    usable = ~ctx.inside(full[:, 0]) & shapely.intersects_xy(keep_in, full[:, 0, 0], full[:, 0, 1])
    usable[:2] = True
    full, ids = full[usable], ids[usable]
    nodes = np.ascontiguousarray(full[:, 0])
    xs, ys = nodes[:, 0].copy(), nodes[:, 1].copy()
    # Ring neighbours relative to their corner, for the tangency test below.
    pdx, pdy = full[:, 1, 0] - xs, full[:, 1, 1] - ys
    ndx, ndy = full[:, 2, 0] - xs, full[:, 2, 1] - ys
    free = np.zeros(len(nodes), bool)
    free[:2] = True  # start and goal may leave in any direction
    zone_of = np.where(ids >= 0, ids // 4096, -1)
    holders = {
        i
        for i in subset
        if shapely.intersects_xy(tier.geom(i), [start[0], goal[0]], [start[1], goal[1]]).any()
    }
    hugs_end = np.zeros(len(nodes), bool)
    for i in holders:
        hugs_end |= zone_of == i
    any_hugs = bool(hugs_end.any())
    # With a convex keep-in, an edge between two inside nodes is inside too.
    check_keep_in = not ctx.keep_in.convex
    cache = ctx.edges
    id_list: list[int] = ids.tolist()

    def bitangent(u: int, vs: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Is the line u->v tangent at both ends, for each v in vs?

        Tangent at a corner: both its ring neighbours lie on one side of the
        line (a shortest path never cuts into an obstacle at a corner), which
        prunes most of the visibility graph. Free nodes pass at their end.
        """
        dx, dy = xs[vs] - xs[u], ys[vs] - ys[u]
        # At v the line looks back at u: (-dx, -dy) flips both sides' signs
        # together, so the product test reads the same.
        out: NDArray[np.bool_] = (dx * pdy[vs] - dy * pdx[vs]) * (
            dx * ndy[vs] - dy * ndx[vs]
        ) >= -1e-9
        out |= free[vs]
        if not free[u]:
            out &= (dx * pdy[u] - dy * pdx[u]) * (dx * ndy[u] - dy * ndx[u]) >= -1e-9
        if any_hugs:
            # An end inside a zone's corner polygon (a little larger than the
            # exact margin) is reached from that zone's corners without
            # looking tangent.
            if free[u]:
                out |= hugs_end[vs]
            if hugs_end[u]:
                out |= free[vs]
        return out

    def clear_from(u: int, vs: list[int]) -> list[bool]:
        """Are the segments from node u to nodes vs free of obstacles and inside the keep-in?"""
        ok = [True] * len(vs)
        iu = id_list[u]
        cacheable_u = iu not in (-1, -2)  # start and goal edges belong to this plan only
        keys: list[tuple[int, int] | None] = []
        todo: list[int] = []
        for k, v in enumerate(vs):
            iv = id_list[v]
            key = None
            if cacheable_u and iv not in (-1, -2):
                key = (iu, iv) if iu < iv else (iv, iu)
            keys.append(key)
            got = cache.get(key) if key is not None else None
            if got is None:
                todo.append(k)
            elif got:
                ok[k] = False
                found_blockers.update(got)
        if not todo:
            return ok
        seg = _segments(xs[u], ys[u], nodes[[vs[k] for k in todo]])
        li, zi = ctx.hits(seg)
        blocked: dict[int, list[int]] = {}
        for a_, z_ in zip(li.tolist(), zi.tolist(), strict=True):
            blocked.setdefault(a_, []).append(z_)
        inside = shapely.covered_by(shapely.linestrings(seg), keep_in) if check_keep_in else None
        for n_, k in enumerate(todo):
            zs = tuple(blocked.get(n_, ()))
            if not zs and inside is not None and not inside[n_]:
                zs = (-1,)  # leaves the keep-in: no zone to add
            if zs:
                ok[k] = False
                found_blockers.update(zs)
            key = keys[k]
            if key is not None:
                cache[key] = zs
        return ok

    xl, yl = xs.tolist(), ys.tolist()

    def clear_one(u: int, v: int) -> bool:
        """`clear_from(u, [v])`, for the one edge a popped node hangs on."""
        iu, iv = id_list[u], id_list[v]
        key = None
        if iu not in (-1, -2) and iv not in (-1, -2):
            key = (iu, iv) if iu < iv else (iv, iu)
            got = cache.get(key)
            if got is not None:
                found_blockers.update(got)
                return not got
        zs = ctx.blockers_of(xl[u], yl[u], xl[v], yl[v])
        if not zs and check_keep_in:
            line = shapely.LineString([(xl[u], yl[u]), (xl[v], yl[v])])
            if not shapely.covered_by(line, keep_in):
                zs = (-1,)  # leaves the keep-in: no zone to add
        if key is not None:
            cache[key] = zs
        found_blockers.update(zs)
        return not zs

    n = len(nodes)
    h = np.hypot(xs - goal[0], ys - goal[1])
    g = np.full(n, math.inf)
    parent = np.full(n, -1, dtype=np.intp)
    is_open = np.zeros(n, bool)
    closed = np.zeros(n, bool)
    verified = np.zeros(n, bool)
    g[0], is_open[0], verified[0] = 0.0, True, True
    closed_order: list[int] = []  # closed nodes, in closing order
    scan_pos = np.zeros(n, dtype=np.intp)  # closed_order[:scan_pos[v]] searched for v
    alt_g = np.full(n, math.inf)  # v's best visible parent among those: cost, node
    alt_parent = np.full(n, -1, dtype=np.intp)
    # Open set as a heap with lazy deletion: an entry is current only while
    # its node is open and its f still equals g + h (g changes push anew).
    # Ties go to the lower node index, as an argmin over the nodes would.
    heap: list[tuple[float, int]] = [(float(h[0]), 0)]
    while heap:
        fv, v = heapq.heappop(heap)
        if not is_open[v] or fv != float(g[v] + h[v]):
            continue
        ctx.stats["pops"] = ctx.stats.get("pops", 0) + 1
        if not verified[v]:
            u = int(parent[v])
            if clear_one(u, v):
                verified[v] = True
            else:
                # Best visible closed parent: try candidates cheapest first, in
                # small batches (the second or third usually sees v). Closed
                # nodes keep their g, so only those closed since v's last
                # search can beat the best found then: a node hidden behind
                # an obstacle is reopened by many expansions and would
                # otherwise search every closed node each time.
                cl = np.asarray(closed_order[scan_pos[v] :], dtype=np.intp)
                scan_pos[v] = len(closed_order)
                cl = cl[bitangent(v, cl)]
                d = g[cl] + np.hypot(xs[cl] - xs[v], ys[cl] - ys[v])
                cheaper = d < alt_g[v]
                cl, d = cl[cheaper], d[cheaper]
                order = np.argsort(d, kind="stable")
                for b in range(0, len(order), 8):
                    chunk = cl[order[b : b + 8]].tolist()
                    oks = clear_from(v, chunk)
                    if True in oks:
                        k = int(order[oks.index(True) + b])
                        alt_g[v], alt_parent[v] = d[k], cl[k]
                        break
                if alt_parent[v] < 0:
                    g[v], is_open[v] = math.inf, False
                    continue
                g[v], parent[v], verified[v] = alt_g[v], alt_parent[v], True
            heapq.heappush(heap, (float(g[v] + h[v]), v))
            continue
        if v == 1:
            path = [1]
            while path[-1] != 0:
                path.append(int(parent[path[-1]]))
            result: FloatArray = nodes[path[::-1]]
            return result
        is_open[v], closed[v] = False, True
        closed_order.append(v)
        d = g[v] + np.hypot(xs - xs[v], ys - ys[v])
        cand = np.flatnonzero(~closed & (d < g))
        if not len(cand):
            continue
        better = cand[bitangent(v, cand)]
        is_hidden = (alt_parent[better] < 0) & (scan_pos[better] > 0)
        if is_hidden.any():
            hidden = better[is_hidden]
            # Nodes no closed node could see so far: test them from v now,
            # in one batch, rather than reopen each for a pop, a test and a
            # search that mostly fail again one at a time.
            seen = np.asarray(clear_from(v, hidden.tolist()), bool)
            alt_g[hidden[seen]], alt_parent[hidden[seen]] = d[hidden[seen]], v
            verified[hidden[seen]] = True
            better = np.concatenate([better[~is_hidden], hidden[seen]])
        g[better], parent[better] = d[better], v
        verified[better[alt_parent[better] != v]] = False
        is_open[better] = True
        for w, fw in zip(better.tolist(), (g[better] + h[better]).tolist(), strict=True):
            heapq.heappush(heap, (fw, w))
    return None


def _shortest_path(
    ctx: _Context, start: tuple[float, float], goal: tuple[float, float]
) -> FloatArray | None:
    """Grow the set of corner-giving zones until A* over their corners succeeds.

    Every edge is tested against all obstacles, so any path found is legal.
    When the search fails, the zones that blocked its edges join the set; when
    no new zone blocked anything, the corners of the zones left out cannot
    matter (none of them stands in the way of any edge tried), so there is no
    route for this tier.
    """
    direct = np.asarray([start, goal], float)
    subset = ctx.blockers(direct)
    if not subset and shapely.covered_by(shapely.LineString(direct), ctx.keep_in.geom):
        return direct
    # Seeding with the zones near the straight line saves most growth rounds.
    subset |= ctx.near(shapely.LineString(direct), CORRIDOR_M)
    while True:
        ctx.stats["rounds"] = ctx.stats.get("rounds", 0) + 1
        found: set[int] = set()
        path = _astar(ctx, start, goal, sorted(subset), found)
        if len(ctx.edges) > MAX_CACHED_EDGES:
            ctx.edges.clear()  # bounded memory for a daemon that runs for months
        if path is not None:
            return _tighten(ctx, path)
        new = found - subset - {-1}
        if not new:
            return None
        subset |= new


def _tighten(ctx: _Context, path: FloatArray) -> FloatArray:
    """Drop corners whose neighbours see each other (the node offset leaves a few).

    From each kept corner, jump to the farthest later corner it sees; all
    shortcuts from one corner are tested in one batch.
    """
    out = [path[0]]
    i = 0
    while i < len(path) - 1:
        far = np.arange(len(path) - 1, i + 1, -1)  # candidates, farthest first
        j = i + 1
        if len(far):
            seg = _segments(path[i, 0], path[i, 1], path[far])
            ok = np.ones(len(far), bool)
            ok[ctx.hits(seg)[0]] = False
            ok &= shapely.covered_by(shapely.linestrings(seg), ctx.keep_in.geom)
            if ok.any():
                j = int(far[int(np.argmax(ok))])
        out.append(path[j])
        i = j
    return np.asarray(out)


def _route_path(
    a: Airspace, cfg: RouterConfig, mask: BoolArray, s: tuple[float, float], t: tuple[float, float]
) -> FloatArray | None:
    coarse, fine = _contexts(a, cfg, mask)
    assert coarse.tree is not None
    hugging = coarse.tree.query(shapely.points([s, t]), predicate="intersects")[1]
    if not len(hugging):
        path = _shortest_path(coarse, s, t)
        return path if path is not None else _shortest_path(fine, s, t)
    # An end inside a coarse hull (a bay of a zone, or just the hull's extra
    # room): fine shapes for the zones around the ends, coarse for the rest,
    # then all fine if that finds nothing.
    exact = frozenset(int(coarse.idx[j]) for j in hugging)
    assert isinstance(coarse.tier, _Tier)
    assert isinstance(fine.tier, _Tier)
    mixed = _Context(
        a,
        coarse.idx,
        _Mixed(coarse.tier, fine.tier, exact),
        coarse.keep_in,
        coarse.tree,
        mask,
        exact,
        discs=coarse.discs,
    )
    path = _shortest_path(mixed, s, t)
    return path if path is not None else _shortest_path(fine, s, t)


# ----------------------------------------------------------------------------
# Public API


def _names(a: Airspace, idx: NDArray[np.intp] | list[int]) -> tuple[str, ...]:
    return tuple(a.zones[int(i)].id for i in idx)


def _containing(a: Airspace, mask: BoolArray, x: float, y: float) -> list[int]:
    hits = a.query_margin(shapely.Point(x, y))
    return sorted(int(i) for i in hits if mask[i])


def nearest_legal_point(
    a: Airspace, p: LatLon, mask: BoolArray, *, inset_m: float = 2.0, max_search_m: float = 10_000.0
) -> LatLon | None:
    """Closest point inside the shrunk keep-in and outside the masked buffered zones.

    Searches a growing disc so only zones near `p` are ever buffered; a point
    found inside the disc has been checked against every zone that reaches it.
    """
    x, y = a.to_local(p)
    here = shapely.Point(x, y)
    radius = 100.0
    while radius <= max_search_m:
        disc = here.buffer(radius, quad_segs=8)
        near = [int(i) for i in a.query_margin(disc) if mask[i]]
        legal = shapely.intersection(a.keep_in_shrunk, disc)
        if near:
            legal = shapely.difference(legal, shapely.union_all([a.buffered_zone(i) for i in near]))
        legal = shapely.buffer(legal, -inset_m)
        if not legal.is_empty:
            q = shapely.ops.nearest_points(legal, here)[0]
            return a.to_wgs84(q.x, q.y)
        radius *= 2
    return None


def plan_route(
    a: Airspace,
    start: LatLon,
    goal: LatLon,
    depart_at: Instant,
    config: RouterConfig = DEFAULT_ROUTER_CONFIG,
    *,
    start_alt_agl_m: float = 0.0,
    goal_alt_agl_m: float | None = None,
) -> Route | NoRoute:
    """Shortest legal route from start to goal, at the cheapest legal cruise layer.

    Legal means: inside the shrunk keep-in, outside every buffered keep-out
    that is active during [depart_at, depart_at + flight_duration_s] and whose
    band (vertical margin included) meets the cruise altitude; and the climb
    column at the start and the descent column at the goal (down to
    `goal_alt_agl_m`, default `config.delivery_alt_agl_m`) clear of such zones.
    """
    t0 = to_utc(depart_at)
    t1 = to_utc(t0.timestamp() + config.flight_duration_s)
    active = a.active_mask(t0, t1)
    goal_alt = config.delivery_alt_agl_m if goal_alt_agl_m is None else goal_alt_agl_m
    sx, sy = a.to_local(start)
    gx, gy = a.to_local(goal)

    low_h = min(config.layers_agl_m, default=0.0)
    for label, (x, y), reason in (
        ("start", (sx, sy), NoRouteReason.START_OUTSIDE_KEEP_IN),
        ("goal", (gx, gy), NoRouteReason.GOAL_OUTSIDE_KEEP_IN),
    ):
        if not shapely.intersects_xy(a.keep_in_shrunk, x, y):
            inside = shapely.intersects_xy(a.keep_in.geometry, x, y)
            what = (
                f"within {a.margins.horizontal_m:.0f} m of the operating area's edge"
                if inside
                else "outside the operating area"
            )
            return NoRoute(
                reason,
                f"{label} is {what}",
                a.keep_in.ids,
                nearest_legal_point(
                    a, start if label == "start" else goal, active & a.band_mask(0.0, low_h)
                ),
            )

    layers = [h for h in sorted(config.layers_agl_m) if h <= a.ceiling_limit_m]
    if not layers:
        return NoRoute(
            NoRouteReason.NO_LEGAL_LAYER,
            f"no cruise layer is below the operating ceiling ({a.ceiling_limit_m:.0f} m "
            "with the vertical margin)",
            a.keep_in.ids,
        )
    best: tuple[float, float, FloatArray] | None = None
    start_block: set[int] = set()
    goal_block: set[int] = set()
    unreachable_layers: list[float] = []
    n_start_blocked = n_goal_blocked = 0
    paths: dict[bytes, FloatArray | None] = {}
    for h in layers:
        col_s = _containing(a, active & a.band_mask(min(start_alt_agl_m, h), h), sx, sy)
        col_g = _containing(a, active & a.band_mask(min(goal_alt, h), h), gx, gy)
        start_block.update(col_s)
        goal_block.update(col_g)
        n_start_blocked += bool(col_s)
        n_goal_blocked += bool(col_g)
        if col_s or col_g:
            continue
        mask = active & a.band_mask(h, h)
        key = mask.tobytes()
        if key not in paths:
            # Layers with the same obstacles share one search.
            paths[key] = _route_path(a, config, mask, (sx, sy), (gx, gy))
        path = paths[key]
        if path is None:
            unreachable_layers.append(h)
            continue
        length = float(np.sum(np.hypot(*np.diff(path, axis=0).T)))
        cost = length + config.altitude_cost_m_per_m * h
        if best is None or cost < best[0]:
            best = (cost, h, path)
    if best is not None:
        _, h, path = best
        lon, lat = a.frame.to_wgs84(path[:, 0], path[:, 1])
        pts = [LatLon(float(la), float(lo)) for la, lo in zip(lat, lon, strict=True)]
        # Exact endpoints: callers compare them with the positions they asked for.
        pts[0], pts[-1] = start, goal
        return Route(
            points=tuple(pts),
            xy_m=tuple((float(x), float(y)) for x, y in path),
            cruise_alt_agl_m=h,
            length_m=float(np.sum(np.hypot(*np.diff(path, axis=0).T))),
            depart_at=t0.timestamp(),
        )
    if n_goal_blocked == len(layers):
        mask = active & a.band_mask(min(goal_alt, layers[0]), layers[0])
        return NoRoute(
            NoRouteReason.GOAL_IN_KEEP_OUT,
            "goal is inside (or within the margin of) keep-out zone(s) at every cruise layer: "
            + ", ".join(_names(a, sorted(goal_block))),
            _names(a, sorted(goal_block)),
            nearest_legal_point(a, goal, mask),
        )
    if n_start_blocked == len(layers):
        return NoRoute(
            NoRouteReason.START_IN_KEEP_OUT,
            "start is inside (or within the margin of) active keep-out zone(s): "
            + ", ".join(_names(a, sorted(start_block))),
            _names(a, sorted(start_block)),
        )
    blocked = sorted(start_block | goal_block)
    return NoRoute(
        NoRouteReason.UNREACHABLE,
        "no way around the keep-out zones inside the operating area"
        + (
            f" at {', '.join(f'{h:.0f} m' for h in unreachable_layers)}"
            if unreachable_layers
            else ""
        )
        + (
            f"; climb/descent columns blocked by {', '.join(_names(a, blocked))}" if blocked else ""
        ),
        _names(a, blocked),
    )


def plan_delivery(
    a: Airspace,
    goal: LatLon,
    depart_at: Instant,
    config: RouterConfig = DEFAULT_ROUTER_CONFIG,
    *,
    start: LatLon | None = None,
    cruise_speed_mps: float = 12.0,
    service_time_s: float = 60.0,
) -> DeliveryPlan | NoRoute:
    """Outbound and return routes from the nest (or `start`, e.g. a pad).

    The return is planned for its own departure time (outbound flight time at
    `cruise_speed_mps` plus `service_time_s` at the customer), so a zone that
    switches on during the delivery is still honoured on the way back.
    """
    home = a.nest.position if start is None else start
    out = plan_route(a, home, goal, depart_at, config)
    if isinstance(out, NoRoute):
        return out
    back_at = to_utc(depart_at).timestamp() + out.length_m / cruise_speed_mps + service_time_s
    back = plan_route(
        a,
        goal,
        home,
        back_at,
        config,
        start_alt_agl_m=config.delivery_alt_agl_m,
        goal_alt_agl_m=0.0,
    )
    if isinstance(back, NoRoute):
        return back
    return DeliveryPlan(out, back)
