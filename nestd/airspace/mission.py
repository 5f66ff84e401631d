"""Check any mission against the store airspace before upload, reporting every violation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace
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


def _height(a: Airspace, wp: Waypoint) -> float:
    return wp.alt_m if wp.frame is AltFrame.RELATIVE_HOME else a.height_from_amsl(wp.alt_m)


def _band_range_on_leg(
    line: BaseGeometry, part: BaseGeometry, h0: float, h1: float
) -> tuple[float, float, tuple[float, float]]:
    """Heights flown over the part of a leg that lies inside a zone, and where it enters."""
    coords = shapely.get_coordinates(part)
    if line.length == 0 or len(coords) == 0:
        c = shapely.get_coordinates(line)[0]
        return min(h0, h1), max(h0, h1), (float(c[0]), float(c[1]))
    t = shapely.line_locate_point(line, shapely.points(coords), normalized=True)
    hs = h0 + (h1 - h0) * t
    k = int(np.argmin(t))
    return float(hs.min()), float(hs.max()), (float(coords[k, 0]), float(coords[k, 1]))


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

    pts: list[tuple[LatLon, float]] = []
    if from_home:
        pts.append((home_p, 0.0))
    bad_wp: set[int] = set()
    for i, wp in enumerate(waypoints):
        leg = i  # leg i is the one that ends at waypoint i
        if not (
            math.isfinite(wp.lat_deg)
            and math.isfinite(wp.lon_deg)
            and math.isfinite(wp.alt_m)
            and -90 <= wp.lat_deg <= 90
            and -180 <= wp.lon_deg <= 180
        ):
            out.append(
                Violation(
                    leg,
                    ViolationKind.INVALID_WAYPOINT,
                    None,
                    f"waypoint {i} has a non-finite or out-of-range position/altitude",
                )
            )
            bad_wp.add(len(pts))
            pts.append((home_p, 0.0))
            continue
        pts.append((LatLon(wp.lat_deg, wp.lon_deg), _height(a, wp)))
    if return_alt_m is not None and pts:
        last, h_last = pts[-1]
        pts += [(last, max(h_last, return_alt_m)), (home_p, return_alt_m), (home_p, 0.0)]
    if len(pts) == 1:
        pts.append(pts[0])
    if out and len(bad_wp) == len(pts):
        return out

    lat = np.array([p.lat_deg for p, _ in pts])
    lon = np.array([p.lon_deg for p, _ in pts])
    h = np.array([hh for _, hh in pts])
    x, y = a.frame.to_local(lon, lat)
    xy = np.column_stack([x, y])
    coords = np.stack([xy[:-1], xy[1:]], axis=1)
    # Degenerate legs (vertical columns) must stay valid LineStrings.
    same = np.all(coords[:, 0] == coords[:, 1], axis=1)
    coords[same, 1, 0] += 1e-6
    lines = shapely.linestrings(coords)
    first_leg = 0 if from_home else 1
    n_legs = len(lines)
    skip = {k for k in range(n_legs) if k in bad_wp or k + 1 in bad_wp}

    def where(px: float, py: float) -> LatLon:
        return a.to_wgs84(px, py)

    ceiling_raw = a.keep_in.ceiling_m
    for k in range(n_legs):
        if k in skip:
            continue
        leg = k + first_leg
        hi, lo = max(h[k], h[k + 1]), min(h[k], h[k + 1])
        if hi > a.ceiling_limit_m:
            kind_txt = "above the ceiling" if hi > ceiling_raw else "within the vertical margin"
            out.append(
                Violation(
                    leg,
                    ViolationKind.ABOVE_CEILING,
                    a.keep_in.ids[0],
                    f"leg {leg} reaches {hi:.1f} m, {kind_txt} of the operating area "
                    f"({ceiling_raw:.0f} m, margin {a.margins.vertical_m:.0f} m)",
                    where(*xy[k + 1]),
                )
            )
        if lo < -GROUND_TOLERANCE_M:
            out.append(
                Violation(
                    leg,
                    ViolationKind.BELOW_GROUND,
                    None,
                    f"leg {leg} goes {lo:.1f} m relative to the store's ground",
                    where(*xy[k + 1]),
                )
            )

    in_margin = shapely.covered_by(lines, a.keep_in_shrunk)
    in_area = shapely.covered_by(lines, a.keep_in.geometry)
    for kk in np.flatnonzero(~in_margin):
        k = int(kk)
        if k in skip:
            continue
        leg = k + first_leg
        if in_area[k]:
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
        out.append(Violation(leg, kind, a.keep_in.ids[0], txt, where(*c[0]) if len(c) else None))

    vm = a.margins.vertical_m
    leg_idx, zone_idx = a.query_margin(lines)
    keep = np.array([k not in skip and active[j] for k, j in zip(leg_idx, zone_idx, strict=True)])
    if len(leg_idx) and keep.any():
        leg_idx, zone_idx = leg_idx[keep], zone_idx[keep]
        # Vectorised GEOS calls; the Python loop below only compares heights.
        # Level legs need only the predicate; sloped ones need where they cross.
        flat = h[leg_idx] == h[leg_idx + 1]
        raw_hit = shapely.intersects(lines[leg_idx], a.geometries[zone_idx])
        sloped = ~flat
        raw_parts = np.empty(len(leg_idx), dtype=object)
        raw_parts[sloped] = shapely.intersection(
            lines[leg_idx[sloped]], a.geometries[zone_idx[sloped]]
        )
        # For sloped legs only passing within the margin, the stretch of the
        # leg near the zone is bounded by projecting the zone's part inside a
        # capsule around the leg, widened by the margin: no zone buffering.
        near = sloped & ~raw_hit
        caps = conservative_buffer(lines[leg_idx[near]], a.margins.horizontal_m, 2)
        near_parts = np.empty(len(leg_idx), dtype=object)
        near_parts[near] = shapely.intersection(caps, a.geometries[zone_idx[near]])
        for n_pair, (k, j) in enumerate(zip(leg_idx.tolist(), zone_idx.tolist(), strict=True)):
            z = a.zones[j]
            leg = k + first_leg
            if raw_hit[n_pair]:
                if flat[n_pair]:
                    lo = hi = float(h[k])
                    px, py = _entry_point(lines[k], z.geometry)
                else:
                    lo, hi, (px, py) = _band_range_on_leg(
                        lines[k], raw_parts[n_pair], h[k], h[k + 1]
                    )
                if lo <= z.ceiling_m and hi >= z.floor_m:
                    out.append(
                        Violation(
                            leg,
                            ViolationKind.KEEP_OUT,
                            z.id,
                            f"leg {leg} enters keep-out {z.id!r} ({z.name}) at "
                            f"{lo:.0f}-{hi:.0f} m; zone band {z.floor_m:.0f}-{_fmt(z.ceiling_m)} m",
                            where(px, py),
                        )
                    )
                    continue
            if flat[n_pair]:
                lo = hi = float(h[k])
            else:
                part = raw_parts[n_pair] if raw_hit[n_pair] else near_parts[n_pair]
                lo, hi = _near_range(lines[k], part, h[k], h[k + 1], a.margins)
            if lo <= z.ceiling_m + vm and hi >= z.floor_m - vm:
                c = shapely.get_coordinates(shapely.shortest_line(lines[k], z.geometry))[0]
                out.append(
                    Violation(
                        leg,
                        ViolationKind.KEEP_OUT_MARGIN,
                        z.id,
                        f"leg {leg} passes within the safety margin of keep-out "
                        f"{z.id!r} ({z.name})",
                        where(float(c[0]), float(c[1])),
                    )
                )
    out.sort(key=lambda v: (v.leg, v.kind, v.feature_id or ""))
    return out


def _entry_point(line: BaseGeometry, zone: BaseGeometry) -> tuple[float, float]:
    """First point of a leg inside a zone, to within a metre or so.

    Sampling the leg twice (coarse, then between the last outside and first
    inside sample) is much cheaper than an exact overlay with a ragged zone.
    """
    c = shapely.get_coordinates(line)
    p0, p1 = c[0], c[-1]
    lo, hi = 0.0, 1.0
    for n in (129, 65):
        t = np.linspace(lo, hi, n)
        xs = p0[0] + (p1[0] - p0[0]) * t
        ys = p0[1] + (p1[1] - p0[1]) * t
        inside = np.flatnonzero(shapely.intersects_xy(zone, xs, ys))
        if not len(inside):
            p = shapely.get_coordinates(shapely.shortest_line(line, zone))[0]
            return float(p[0]), float(p[1])
        i = int(inside[0])
        if i == 0:
            return float(xs[0]), float(ys[0])
        lo, hi = float(t[i - 1]), float(t[i])
    return float(xs[i]), float(ys[i])


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
