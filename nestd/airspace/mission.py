"""Check any mission against the store airspace before upload, reporting every violation."""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace, BoolArray, FloatArray, expand, seg_disc_d2
from nestd.airspace.geo import LatLon
from nestd.airspace.model import Margins, conservative_buffer
from nestd.airspace.timewin import Instant, to_utc
from nestd.airspace.waypoints import AltFrame, Waypoint

GROUND_TOLERANCE_M = 0.5


class ViolationKind(StrEnum):
    INVALID_WAYPOINT = "invalid_waypoint"
    OUTSIDE_KEEP_IN = "outside_keep_in"
    KEEP_IN_MARGIN = "keep_in_margin"
    """Inside the operating area but closer to its edge than the horizontal margin."""
    KEEP_OUT = "keep_out"
    KEEP_OUT_MARGIN = "keep_out_margin"
    """Clear of the zone itself but inside its safety margin."""
    ABOVE_CEILING = "above_ceiling"
    BELOW_GROUND = "below_ground"


@dataclass(frozen=True, slots=True)
class Violation:
    """One illegal leg. Leg i ends at waypoint i (leg 0 starts at home when `from_home`)."""

    leg: int
    kind: ViolationKind
    feature_id: str | None
    message: str
    where: LatLon | None = None


def validate_mission(
    a: Airspace,
    waypoints: Sequence[Waypoint],
    depart_at: Instant,
    *,
    flight_duration_s: float = 1800.0,
    home: LatLon | None = None,
    from_home: bool = True,
    return_alt_m: float | None = None,
) -> list[Violation]:
    """Every violation of every leg, in leg order; an empty list means the mission is legal.

    Legs are straight lines between consecutive waypoints with altitude varying
    linearly, so a vertical leg (same position, different altitude) is the
    climb or descent column there. With `from_home`, a first leg climbs from
    the ground at `home` (default the nest). With `return_alt_m`, an implicit
    return-to-launch is checked too: climb to that height at the last
    waypoint, fly straight home, descend. Zones active at any moment of
    [depart_at, depart_at + flight_duration_s] count.
    """
    t0 = to_utc(depart_at)
    active = a.active_mask(t0, to_utc(t0.timestamp() + flight_duration_s))
    home_p = a.nest.position if home is None else home
    out: list[Violation] = []

    w_lat = np.array([wp.lat_deg for wp in waypoints], float)
    w_lon = np.array([wp.lon_deg for wp in waypoints], float)
    w_alt = np.array([wp.alt_m for wp in waypoints], float)
    with np.errstate(invalid="ignore"):
        valid = (
            np.isfinite(w_lat)
            & np.isfinite(w_lon)
            & np.isfinite(w_alt)
            & (np.abs(w_lat) <= 90)
            & (np.abs(w_lon) <= 180)
        )
    amsl = np.array([wp.frame is not AltFrame.RELATIVE_HOME for wp in waypoints], bool)
    w_h = np.where(amsl, w_alt - a.store.ground_amsl_m, w_alt)
    for i in np.flatnonzero(~valid).tolist():
        out.append(
            Violation(
                i,  # leg i is the one that ends at waypoint i
                ViolationKind.INVALID_WAYPOINT,
                None,
                f"waypoint {i} has a non-finite or out-of-range position/altitude",
            )
        )
    # An invalid waypoint stands in as home on the ground; its legs are skipped.
    w_lat[~valid], w_lon[~valid], w_h[~valid] = home_p.lat_deg, home_p.lon_deg, 0.0
    off = 1 if from_home else 0
    bad_wp = set((np.flatnonzero(~valid) + off).tolist())
    lat = np.concatenate([[home_p.lat_deg]] * off + [w_lat])
    lon = np.concatenate([[home_p.lon_deg]] * off + [w_lon])
    h = np.concatenate([[0.0]] * off + [w_h])
    if return_alt_m is not None and len(h):
        h_back = max(float(h[-1]), return_alt_m)
        lat = np.concatenate([lat, [lat[-1], home_p.lat_deg, home_p.lat_deg]])
        lon = np.concatenate([lon, [lon[-1], home_p.lon_deg, home_p.lon_deg]])
        h = np.concatenate([h, [h_back, return_alt_m, 0.0]])
    if len(h) == 1:
        lat, lon, h = np.repeat(lat, 2), np.repeat(lon, 2), np.repeat(h, 2)
    if out and len(bad_wp) == len(h):
        return out

    x, y = a.frame.to_local(lon, lat)
    xy = np.column_stack([x, y])
    coords = np.stack([xy[:-1], xy[1:]], axis=1)
    # Degenerate legs (vertical columns) must stay valid LineStrings.
    same = np.all(coords[:, 0] == coords[:, 1], axis=1)
    coords[same, 1, 0] += 1e-6
    lines = shapely.linestrings(coords)
    first_leg = 0 if from_home else 1
    n_legs = len(lines)
    leg_ok = np.ones(n_legs, bool)
    for k in bad_wp:
        leg_ok[max(k - 1, 0) : k + 1] = False
    skip = set(np.flatnonzero(~leg_ok).tolist())

    # Violations other than zones' are few: gathered as records, made into
    # objects at the end with every position converted to WGS84 in one call.
    recs: list[_Record] = []
    ceiling_raw = a.keep_in.ceiling_m
    hi_leg, lo_leg = np.maximum(h[:-1], h[1:]), np.minimum(h[:-1], h[1:])
    for k in np.flatnonzero(leg_ok & (hi_leg > a.ceiling_limit_m)).tolist():
        leg, hi = k + first_leg, float(hi_leg[k])
        kind_txt = "above the ceiling" if hi > ceiling_raw else "within the vertical margin"
        recs.append(
            (
                leg,
                ViolationKind.ABOVE_CEILING,
                a.keep_in.ids[0],
                f"leg {leg} reaches {hi:.1f} m, {kind_txt} of the operating area "
                f"({ceiling_raw:.0f} m, margin {a.margins.vertical_m:.0f} m)",
                float(xy[k + 1, 0]),
                float(xy[k + 1, 1]),
            )
        )
    for k in np.flatnonzero(leg_ok & (lo_leg < -GROUND_TOLERANCE_M)).tolist():
        leg, lo = k + first_leg, float(lo_leg[k])
        recs.append(
            (
                leg,
                ViolationKind.BELOW_GROUND,
                None,
                f"leg {leg} goes {lo:.1f} m relative to the store's ground",
                float(xy[k + 1, 0]),
                float(xy[k + 1, 1]),
            )
        )

    in_margin = _covered_by_keep_in(a, coords, lines)
    for kk in np.flatnonzero(~in_margin):
        k = int(kk)
        if k in skip:
            continue
        leg = k + first_leg
        if shapely.covered_by(lines[k], a.keep_in.geometry):
            kind, txt = (
                ViolationKind.KEEP_IN_MARGIN,
                (
                    f"leg {leg} passes within {a.margins.horizontal_m:.0f} m of the operating "
                    "area's edge"
                ),
            )
            bad = shapely.difference(lines[k], a.keep_in_shrunk)
        else:
            kind, txt = ViolationKind.OUTSIDE_KEEP_IN, f"leg {leg} leaves the operating area"
            bad = shapely.difference(lines[k], a.keep_in.geometry)
        c = shapely.get_coordinates(bad)
        px, py = (float(c[0, 0]), float(c[0, 1])) if len(c) else (math.nan, math.nan)
        recs.append((leg, kind, a.keep_in.ids[0], txt, px, py))

    zone_vs = _zone_violations(a, coords, lines, h, active, leg_ok, first_leg)

    rx = np.array([r[4] for r in recs])
    ry = np.array([r[5] for r in recs])
    lon_w, lat_w = a.frame.to_wgs84(rx, ry) if recs else (rx, ry)
    for r, la, lo_ in zip(recs, lat_w.tolist(), lon_w.tolist(), strict=True):
        w = LatLon(la, lo_) if math.isfinite(r[4]) else None
        out.append(Violation(r[0], r[1], r[2], r[3], w))
    # Zone violations come sorted and outnumber the rest: put the rest in place.
    out.sort(key=_order)
    for v in out:
        bisect.insort(zone_vs, v, key=_order)
    return zone_vs


def _order(v: Violation) -> tuple[int, str, str]:
    return (v.leg, v.kind, v.feature_id or "")


def _covered_by_keep_in(a: Airspace, coords: FloatArray, lines: NDArray[np.object_]) -> BoolArray:
    """Which legs stay inside the shrunk keep-in."""
    if _keep_in_is_convex(a):
        # A convex polygon covers a segment when it covers both ends.
        ends = coords.reshape(-1, 2)
        inside = shapely.intersects_xy(a.keep_in_shrunk, ends[:, 0], ends[:, 1])
        out: BoolArray = inside[0::2] & inside[1::2]
        return out
    covered: BoolArray = shapely.covered_by(lines, a.keep_in_shrunk)
    return covered


_CONVEX: weakref.WeakKeyDictionary[Airspace, bool] = weakref.WeakKeyDictionary()


def _keep_in_is_convex(a: Airspace) -> bool:
    """Is the shrunk keep-in one convex polygon (every turn of its ring the same way)?"""
    got = _CONVEX.get(a)
    if got is None:
        g = a.keep_in_shrunk
        got = False
        if g.geom_type == "Polygon" and not g.interiors:
            c = np.asarray(g.exterior.coords)[:-1, :2]
            if len(c) >= 3:
                e = np.roll(c, -1, axis=0) - c
                turn = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
                got = bool((turn >= 0).all() or (turn <= 0).all())
        _CONVEX[a] = got
    return got


_Record = tuple[int, ViolationKind, str | None, str, float, float]


def _zone_violations(
    a: Airspace,
    coords: FloatArray,
    lines: NDArray[np.object_],
    h: FloatArray,
    active: NDArray[np.bool_],
    leg_ok: NDArray[np.bool_],
    first_leg: int,
) -> list[Violation]:
    """Keep-out and keep-out-margin violations of every (leg, active zone) pair.

    Pairs within the horizontal margin come from `_near_pairs` (numpy over
    the zones' edges, no per-pair GEOS call), with where each leg enters or
    comes closest, and for sloped legs the stretch flown over the zone.
    """
    vm = a.margins.vertical_m
    sloped_leg = h[:-1] != h[1:]
    li, zi, raw_hit, where_t, last_t = _near_pairs(a, coords, leg_ok, active, sloped_leg)
    if not len(li):
        return []
    h0, h1 = h[li], h[li + 1]
    # Heights flown over the zone (the leg meets it) or near it: the whole
    # leg unless refined below for sloped legs.
    lo, hi = np.minimum(h0, h1), np.maximum(h0, h1)
    sloped = h0 != h1
    met = np.flatnonzero(sloped & raw_hit)
    ha = h0[met] + (h1[met] - h0[met]) * where_t[met]
    hb = h0[met] + (h1[met] - h0[met]) * last_t[met]
    lo[met], hi[met] = np.minimum(ha, hb), np.maximum(ha, hb)
    floor = a.floor_with_margin_m[zi] + vm
    ceiling = a.ceiling_with_margin_m[zi] - vm
    enters = raw_hit & (lo <= ceiling) & (hi >= floor)
    # Near the zone is over it plus a margin's length either side.
    lo_m, hi_m = lo.copy(), hi.copy()
    if len(met):
        pad = a.margins.horizontal_m / np.maximum(
            np.hypot(
                coords[li[met], 1, 0] - coords[li[met], 0, 0],
                coords[li[met], 1, 1] - coords[li[met], 0, 1],
            ),
            1e-300,
        )
        ta = np.clip(np.minimum(where_t[met], last_t[met]) - pad, 0.0, 1.0)
        tb = np.clip(np.maximum(where_t[met], last_t[met]) + pad, 0.0, 1.0)
        ha = h0[met] + (h1[met] - h0[met]) * ta
        hb = h0[met] + (h1[met] - h0[met]) * tb
        lo_m[met], hi_m[met] = np.minimum(ha, hb), np.maximum(ha, hb)
    margin = ~enters & (lo_m <= ceiling + vm) & (hi_m >= floor - vm)
    # A sloped leg only passing near a zone whose band (with the margin)
    # covers part of the leg's heights: which heights are flown near it
    # takes GEOS (rare: climbs and descents, next to a zone with a floor or
    # a ceiling in the way).
    unsure = sloped & ~raw_hit & margin & ((lo < floor - vm) | (hi > ceiling + vm))
    for n_pair in np.flatnonzero(unsure).tolist():
        k, j = int(li[n_pair]), int(zi[n_pair])
        line = lines[k]
        part = shapely.intersection(
            conservative_buffer(line, a.margins.horizontal_m, 2), a.zones[j].geometry
        )
        a_lo, a_hi = _near_range(line, part, h[k], h[k + 1], a.margins)
        margin[n_pair] = a_lo <= ceiling[n_pair] + vm and a_hi >= floor[n_pair] - vm
    sel = np.flatnonzero(enters | margin)
    # In output order: leg, then kind (keep_out < keep_out_margin), then zone id.
    is_margin = margin[sel]
    sel = sel[np.lexsort((_zone_rank(a)[zi[sel]], is_margin, li[sel]))]
    is_margin = margin[sel]
    leg_i, zone_i = li[sel], zi[sel]
    t = where_t[sel]
    ax, ay = coords[leg_i, 0, 0], coords[leg_i, 0, 1]
    lon, lat = a.frame.to_wgs84(
        ax + t * (coords[leg_i, 1, 0] - ax), ay + t * (coords[leg_i, 1, 1] - ay)
    )

    # Hundreds of violations: built with comprehensions and map, which
    # halve the per-item interpreter overhead of an explicit loop.
    texts = _zone_texts(a)
    legs = (leg_i + first_leg).tolist()
    zt = [texts[z] for z in zone_i.tolist()]
    margins = is_margin.tolist()
    msgs = [
        f"leg {leg} passes within the safety margin of {what}"
        if m
        else f"leg {leg} enters {what} at {lo_:.0f}-{hi_:.0f} m; zone band {band} m"
        for leg, (_, what, band), m, lo_, hi_ in zip(
            legs, zt, margins, lo[sel].tolist(), hi[sel].tolist(), strict=True
        )
    ]
    ko, kom = ViolationKind.KEEP_OUT, ViolationKind.KEEP_OUT_MARGIN
    return list(
        map(
            Violation,
            legs,
            [kom if m else ko for m in margins],
            [t[0] for t in zt],
            msgs,
            map(LatLon, lat.tolist(), lon.tolist()),
        )
    )


def _near_pairs(
    a: Airspace,
    coords: FloatArray,
    leg_ok: NDArray[np.bool_],
    active: NDArray[np.bool_],
    sloped: NDArray[np.bool_],
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.bool_], FloatArray, FloatArray]:
    """(leg, zone) pairs within the horizontal margin: legs, zones, meets, where, last (0..1).

    Where is the first point of the leg in the zone when they meet, else
    the point of the leg closest to it; last is the last point of a `sloped`
    leg in the zone (NaN for the others), so the pair's [where, last] is the
    stretch flown over the zone. Candidates are narrowed by boxes
    (tree), then by the disc around each zone, then by the discs around its
    runs of edges; only edges in runs the leg passes through (crossings) or
    near (distance) are tested. A disc covers what it stands for, so no
    pair or edge within the margin is ever dropped. Crossings are found by
    the edges' parameters along the leg, and a leg that starts in a zone is
    found by a point-in-polygon test.
    """
    hm = a.margins.horizontal_m
    ze = a.zone_edges
    ax, ay = coords[:, 0, 0], coords[:, 0, 1]
    bx, by = coords[:, 1, 0], coords[:, 1, 1]
    dx, dy = bx - ax, by - ay
    boxes = shapely.box(
        np.minimum(ax, bx) - hm,
        np.minimum(ay, by) - hm,
        np.maximum(ax, bx) + hm,
        np.maximum(ay, by) + hm,
    )
    li, zi = a.tree.query(boxes)
    if not (leg_ok.all() and active.all()):
        keep = leg_ok[li] & active[zi]
        li, zi = li[keep], zi[keep]
    reach = ze.r[zi] + hm
    keep = seg_disc_d2(ax[li], ay[li], dx[li], dy[li], ze.cx[zi], ze.cy[zi]) <= reach * reach
    li, zi = li[keep], zi[keep]
    n = len(li)
    if not n:
        return li, zi, np.zeros(0, bool), np.zeros(0), np.zeros(0)
    pax, pay, pdx, pdy = ax[li], ay[li], dx[li], dy[li]

    # Runs of each pair's zone near its leg.
    pr, run = expand(ze.run_start_of_zone[zi], ze.runs_of_zone[zi])
    d2 = seg_disc_d2(pax[pr], pay[pr], pdx[pr], pdy[pr], ze.run_cx[run], ze.run_cy[run])
    rr = ze.run_r[run]
    through = d2 <= rr * rr

    # Crossings: an edge whose ends lie on both sides of the leg's line,
    # at a parameter t along the leg in [0, 1].
    po, edge = expand(ze.run_start[run[through]], ze.run_count[run[through]])
    pe = pr[through][po]
    rdx, rdy = pdx[pe], pdy[pe]
    ex, ey = ze.ex[edge], ze.ey[edge]
    wx, wy = ze.x0[edge] - pax[pe], ze.y0[edge] - pay[pe]
    side0 = wx * rdy - wy * rdx
    side1 = side0 + (ex * rdy - ey * rdx)
    st = np.flatnonzero(side0 * side1 <= 0.0)
    pe, edge = pe[st], edge[st]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (wx[st] * ey[st] - wy[st] * ex[st]) / (rdx[st] * ey[st] - rdy[st] * ex[st])
    cross = (t >= 0.0) & (t <= 1.0)
    pe, t = pe[cross], t[cross]
    entry = np.full(n, np.inf)
    np.minimum.at(entry, pe, t)
    # A leg can only start in a zone whose disc holds its start.
    maybe = np.flatnonzero((pax - ze.cx[zi]) ** 2 + (pay - ze.cy[zi]) ** 2 <= ze.r[zi] ** 2)
    starts_in = maybe[shapely.intersects_xy(a.geometries[zi[maybe]], pax[maybe], pay[maybe])]
    entry[starts_in] = 0.0
    raw_hit = np.isfinite(entry)
    where_t = np.where(raw_hit, entry, 0.0)
    last = np.full(n, np.nan)
    sl = np.flatnonzero(sloped[li] & raw_hit)
    if len(sl):
        last[sl] = -np.inf
        at = sloped[li[pe]]
        np.maximum.at(last, pe[at], t[at])
        ends_in = shapely.intersects_xy(a.geometries[zi[sl]], bx[li[sl]], by[li[sl]])
        last[sl[ends_in]] = 1.0
        # Starts in and never crosses out: the whole leg (ends_in says so too).
        last[sl[last[sl] < 0.0]] = 1.0

    # Distance for the pairs that don't meet: two disjoint segments are
    # closest at an end of one of them (a zone vertex onto the leg, or a leg
    # end onto a zone edge). A vertex within the margin keeps both its edges'
    # runs, so taking each edge's first vertex covers every vertex; leg ends
    # matter only near the zone.
    near = ~raw_hit[pr] & (d2 <= (rr + hm) ** 2)
    within = raw_hit
    if near.any():
        po, edge = expand(ze.run_start[run[near]], ze.run_count[run[near]])
        pe = pr[near][po]
        rdx, rdy = pdx[pe], pdy[pe]
        qx, qy = ze.x0[edge], ze.y0[edge]
        wx, wy = qx - pax[pe], qy - pay[pe]
        inv = 1.0 / np.maximum(pdx * pdx + pdy * pdy, 1e-300)
        tq = (wx * rdx + wy * rdy) * inv[pe]
        np.clip(tq, 0.0, 1.0, out=tq)
        best = (wx - tq * rdx) ** 2 + (wy - tq * rdy) ** 2
        best_t = tq
        reach2 = (ze.r[zi] + hm) ** 2
        for end_t, ex_, ey_ in ((0.0, pax, pay), (1.0, bx[li], by[li])):
            close = (ex_ - ze.cx[zi]) ** 2 + (ey_ - ze.cy[zi]) ** 2 <= reach2
            rows = np.flatnonzero(close[pe])
            if not len(rows):
                continue
            e = edge[rows]
            ex, ey = ze.ex[e], ze.ey[e]
            px, py = ex_[pe[rows]], ey_[pe[rows]]
            se = ((px - qx[rows]) * ex + (py - qy[rows]) * ey) / np.maximum(
                ex * ex + ey * ey, 1e-300
            )
            np.clip(se, 0.0, 1.0, out=se)
            de = (qx[rows] + se * ex - px) ** 2 + (qy[rows] + se * ey - py) ** 2
            better = de < best[rows]
            best[rows[better]] = de[better]
            best_t[rows[better]] = end_t
        low = np.full(n, np.inf)
        np.minimum.at(low, pe, best)
        at_low = best == low[pe]
        closest = np.full(n, -1.0)
        np.maximum.at(closest, pe[at_low], best_t[at_low])
        within = raw_hit | (low <= hm * hm)
        where_t = np.where(raw_hit, where_t, closest)
    return li[within], zi[within], raw_hit[within], where_t[within], last[within]


_TEXTS: weakref.WeakKeyDictionary[Airspace, list[tuple[str, str, str]]] = (
    weakref.WeakKeyDictionary()
)


_RANK: weakref.WeakKeyDictionary[Airspace, NDArray[np.intp]] = weakref.WeakKeyDictionary()


def _zone_rank(a: Airspace) -> NDArray[np.intp]:
    """Per zone: the position of its id among all zone ids sorted."""
    got = _RANK.get(a)
    if got is None:
        order = sorted(range(len(a.zones)), key=lambda i: a.zones[i].id)
        got = np.empty(len(order), np.intp)
        got[order] = np.arange(len(order))
        _RANK[a] = got
    return got


def _zone_texts(a: Airspace) -> list[tuple[str, str, str]]:
    """Per zone: its id, how messages name it, and its band."""
    got = _TEXTS.get(a)
    if got is None:
        got = [
            (z.id, f"keep-out {z.id!r} ({z.name})", f"{z.floor_m:.0f}-{_fmt(z.ceiling_m)}")
            for z in a.zones
        ]
        _TEXTS[a] = got
    return got


def _near_range(
    line: BaseGeometry, part: BaseGeometry, h0: float, h1: float, margins: Margins
) -> tuple[float, float]:
    """Heights over the stretch of a leg within the horizontal margin of `part`."""
    coords = shapely.get_coordinates(part)
    length = line.length
    if len(coords) == 0 or length < 1e-3:
        return min(h0, h1), max(h0, h1)
    t = shapely.line_locate_point(line, shapely.points(coords)) / length
    pad = margins.horizontal_m / length
    t0, t1 = max(0.0, float(t.min()) - pad), min(1.0, float(t.max()) + pad)
    ha, hb = h0 + (h1 - h0) * t0, h0 + (h1 - h0) * t1
    return min(ha, hb), max(ha, hb)


def _fmt(h: float) -> str:
    return "unlimited" if math.isinf(h) else f"{h:.0f}"
