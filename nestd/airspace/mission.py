"""Check any mission against the store airspace before upload, reporting every violation."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from enum import Enum, StrEnum
from typing import overload

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace, BoolArray, FloatArray, ZoneEdges, expand
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


class _Unset(Enum):
    UNSET = 0


class Violation:
    """One illegal leg. Leg i ends at waypoint i (leg 0 starts at home when `from_home`).

    Immutable, compared and hashed by all five fields like the dataclass it
    replaces. `Violation(leg, kind, feature_id, message, where=None)` makes
    one; those from `validate_mission` work out `message` and `where` (where
    the leg enters the zone or comes closest, WGS84; None for an invalid
    waypoint) on first access and keep them.
    """

    __slots__ = ("_feature_id", "_kind", "_leg", "_message", "_row", "_src", "_where")
    __match_args__ = ("leg", "kind", "feature_id", "message", "where")

    _leg: int
    _kind: ViolationKind
    _feature_id: str | None
    _message: str | None
    _where: LatLon | _Unset | None
    _src: Violations | None
    _row: int

    def __init__(
        self,
        leg: int,
        kind: ViolationKind,
        feature_id: str | None,
        message: str,
        where: LatLon | None = None,
    ) -> None:
        self._leg, self._kind, self._feature_id = leg, kind, feature_id
        self._message, self._where, self._src, self._row = message, where, None, -1

    @property
    def leg(self) -> int:
        return self._leg

    @property
    def kind(self) -> ViolationKind:
        return self._kind

    @property
    def feature_id(self) -> str | None:
        """The zone's id, the keep-in's first id, or None (ground, invalid waypoint)."""
        return self._feature_id

    @property
    def message(self) -> str:
        m = self._message
        if m is None:
            assert self._src is not None
            m = self._message = self._src._message_of(self._row)
        return m

    @property
    def where(self) -> LatLon | None:
        w = self._where
        if w is _Unset.UNSET:
            assert self._src is not None
            w = self._where = self._src._where_of(self._row)
        return w

    def _fields(self) -> tuple[int, ViolationKind, str | None, str, LatLon | None]:
        return (self._leg, self._kind, self._feature_id, self.message, self.where)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Violation):
            return NotImplemented
        if (self._leg, self._kind, self._feature_id) != (
            other._leg,
            other._kind,
            other._feature_id,
        ):
            return False
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Violation(leg={self._leg!r}, kind={self._kind!r}, feature_id={self._feature_id!r}, "
            f"message={self.message!r}, where={self.where!r})"
        )

    def __reduce__(self) -> tuple[type[Violation], tuple[object, ...]]:
        return (Violation, self._fields())


class _LazyViolation(Violation):
    """Row `row` of a `Violations`: message and where are asked of it on first access."""

    __slots__ = ()

    def __init__(
        self,
        src: Violations,
        row: int,
        leg: int,
        kind: ViolationKind,
        feature_id: str | None,
    ) -> None:
        self._leg, self._kind, self._feature_id = leg, kind, feature_id
        self._message, self._where, self._src, self._row = None, _Unset.UNSET, src, row


# Kinds by code (the row arrays of `Violations` hold codes); `_KIND_RANK`
# sorts them like their values, the order violations are listed in.
_KINDS: tuple[ViolationKind, ...] = tuple(ViolationKind)
_KIND_CODE = {k: i for i, k in enumerate(_KINDS)}
_KIND_RANK = np.argsort(np.argsort([k.value for k in _KINDS])).astype(np.intp)
_KO, _KOM = _KIND_CODE[ViolationKind.KEEP_OUT], _KIND_CODE[ViolationKind.KEEP_OUT_MARGIN]


class Violations(Sequence[Violation]):
    """Every violation of a mission, sorted by (leg, kind, feature id): a read-only list.

    `len()`, truthiness, indexing and slicing (a slice is a plain list),
    iteration, `in`, and `==` with any sequence (`validate_mission(...) == []`)
    work as on a list; `list(vs)` makes one. A dense mission can have
    hundreds of violations, so they are kept as arrays and each `Violation`
    is made when first reached (then kept: the same object every time).
    Messages are formatted on first access, and positions are converted to
    WGS84 all at once when the first `where` is read.
    """

    __slots__ = ("_arrays", "_complete", "_frame", "_items", "_lists", "_other", "_wgs84", "_zones")

    def __init__(
        self,
        a: Airspace,
        legs: NDArray[np.intp],
        kinds: NDArray[np.intp],
        src: NDArray[np.intp],
        lo: FloatArray,
        hi: FloatArray,
        x: FloatArray,
        y: FloatArray,
        other: list[tuple[str | None, str]],
    ) -> None:
        """Rows in order. Row i is about zone `src[i]` (`src[i]` >= 0; `lo`, `hi` are the
        heights flown over or near it) or, for `src[i]` < 0, has the feature id and
        message `other[-1 - src[i]]`; (x, y) is where, in the local frame (NaN: none)."""
        # Not the airspace: a violation kept for long must not keep its caches alive.
        self._zones, self._frame = a.zones, a.frame
        self._arrays = (legs, kinds, src, lo, hi, x, y)
        self._other = other
        self._items: list[Violation | None] = [None] * len(legs)
        self._complete = not len(legs)
        self._lists: tuple[list[int], list[int], list[int], list[float], list[float]] | None = None
        self._wgs84: tuple[list[float], list[float], list[bool]] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def _rows(self) -> tuple[list[int], list[int], list[int], list[float], list[float]]:
        """legs, kind codes, sources, lo, hi as Python lists (cheaper per item than numpy)."""
        got = self._lists
        if got is None:
            legs, kinds, src, lo, hi, _, _ = self._arrays
            got = self._lists = (
                legs.tolist(),
                kinds.tolist(),
                src.tolist(),
                lo.tolist(),
                hi.tolist(),
            )
        return got

    def _feature_id(self, s: int) -> str | None:
        return self._zones[s].id if s >= 0 else self._other[-1 - s][0]

    def _item(self, i: int) -> Violation:
        v = self._items[i]
        if v is None:
            legs, kinds, src, _, _ = self._rows()
            v = self._items[i] = _LazyViolation(
                self, i, legs[i], _KINDS[kinds[i]], self._feature_id(src[i])
            )
        return v

    def _all(self) -> list[Violation]:
        if not self._complete:
            for i in range(len(self._items)):
                self._item(i)
            self._complete = True
        return self._items  # type: ignore[return-value]  # no None left

    @overload
    def __getitem__(self, i: int) -> Violation: ...

    @overload
    def __getitem__(self, i: slice) -> list[Violation]: ...

    def __getitem__(self, i: int | slice) -> Violation | list[Violation]:
        if isinstance(i, slice):
            return [self._item(k) for k in range(*i.indices(len(self._items)))]
        n = len(self._items)
        if not -n <= i < n:
            raise IndexError("violation index out of range")
        return self._item(i % n)

    def __iter__(self) -> Iterator[Violation]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        if len(other) != len(self):
            return False
        return all(x == y for x, y in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Violations({self._all()!r})"

    def _message_of(self, row: int) -> str:
        legs, kinds, src, lo, hi = self._rows()
        s = src[row]
        if s < 0:
            return self._other[-1 - s][1]
        z = self._zones[s]
        what = f"keep-out {z.id!r} ({z.name})"
        if kinds[row] == _KOM:
            return f"leg {legs[row]} passes within the safety margin of {what}"
        return (
            f"leg {legs[row]} enters {what} at {lo[row]:.0f}-{hi[row]:.0f} m; "
            f"zone band {z.floor_m:.0f}-{_fmt(z.ceiling_m)} m"
        )

    def _where_of(self, row: int) -> LatLon | None:
        got = self._wgs84
        if got is None:
            x, y = self._arrays[5:]
            lon, lat = self._frame.to_wgs84(x, y)
            got = self._wgs84 = (lat.tolist(), lon.tolist(), np.isfinite(x).tolist())
        return LatLon(got[0][row], got[1][row]) if got[2][row] else None


def validate_mission(
    a: Airspace,
    waypoints: Sequence[Waypoint],
    depart_at: Instant,
    *,
    flight_duration_s: float = 1800.0,
    home: LatLon | None = None,
    from_home: bool = True,
    return_alt_m: float | None = None,
) -> Violations:
    """Every violation of every leg, in leg order; empty means the mission is legal.

    The result is a read-only list (`Violations`) sorted by (leg, kind,
    feature id), at most one entry per (leg, kind, feature); it compares
    equal to a list of the same violations, so `validate_mission(...) == []`
    tests for a legal mission.

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
    # Violations other than zones' are few: gathered as records (where as
    # local x, y; NaN for none) and merged with the zones' rows at the end.
    recs: list[_Record] = []

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
        recs.append(
            (
                i,  # leg i is the one that ends at waypoint i
                ViolationKind.INVALID_WAYPOINT,
                None,
                f"waypoint {i} has a non-finite or out-of-range position/altitude",
                math.nan,
                math.nan,
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
    if recs and len(bad_wp) == len(h):
        return _merge(a, recs, None)

    x, y = a.frame.to_local(lon, lat)
    xy = np.column_stack([x, y])
    coords = np.stack([xy[:-1], xy[1:]], axis=1)
    # Degenerate legs (vertical columns) must stay valid LineStrings.
    same = np.all(coords[:, 0] == coords[:, 1], axis=1)
    coords[same, 1, 0] += 1e-6
    lines = _Lines(coords)
    first_leg = 0 if from_home else 1
    n_legs = len(coords)
    leg_ok = np.ones(n_legs, bool)
    for k in bad_wp:
        leg_ok[max(k - 1, 0) : k + 1] = False
    skip = set(np.flatnonzero(~leg_ok).tolist())

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

    return _merge(a, recs, _zone_violations(a, coords, lines, h, active, leg_ok, first_leg))


def _merge(a: Airspace, recs: list[_Record], zone_rows: _ZoneRows | None) -> Violations:
    """The records and the zones' rows (sorted) as one `Violations`, in order."""
    if zone_rows is None:
        e = np.zeros(0, np.intp)
        ef = np.zeros(0)
        zone_rows = (e, e, e, ef, ef, ef, ef)
    z_legs, z_kinds, z_zone, lo, hi, x, y = zone_rows
    if not recs:
        return Violations(a, z_legs, z_kinds, z_zone, lo, hi, x, y, [])
    r_legs = np.array([r[0] for r in recs], np.intp)
    r_kinds = np.array([_KIND_CODE[r[1]] for r in recs], np.intp)
    nan = np.full(len(recs), math.nan)
    legs = np.concatenate([z_legs, r_legs])
    kinds = np.concatenate([z_kinds, r_kinds])
    src = np.concatenate([z_zone, -1 - np.arange(len(recs), dtype=np.intp)])
    # A record's (leg, kind) is unique and no zone row shares its kind, so
    # its feature id never decides the order.
    feat = np.concatenate([a.zone_rank[z_zone], np.zeros(len(recs), np.intp)])
    order = np.lexsort((feat, _KIND_RANK[kinds], legs))
    return Violations(
        a,
        legs[order],
        kinds[order],
        src[order],
        np.concatenate([lo, nan])[order],
        np.concatenate([hi, nan])[order],
        np.concatenate([x, [r[4] for r in recs]])[order],
        np.concatenate([y, [r[5] for r in recs]])[order],
        [(r[2], r[3]) for r in recs],
    )


class _Lines:
    """The legs as shapely LineStrings, made on first use (few missions need them)."""

    __slots__ = ("_coords", "_lines")

    def __init__(self, coords: FloatArray) -> None:
        self._coords = coords
        self._lines: NDArray[np.object_] | None = None

    def all(self) -> NDArray[np.object_]:
        if self._lines is None:
            self._lines = shapely.linestrings(self._coords)
        return self._lines

    def __getitem__(self, k: int) -> BaseGeometry:
        line: BaseGeometry = self.all()[k]
        return line


def _covered_by_keep_in(a: Airspace, coords: FloatArray, lines: _Lines) -> BoolArray:
    """Which legs stay inside the shrunk keep-in."""
    if _keep_in_is_convex(a):
        # A convex polygon covers a segment when it covers both ends.
        ends = coords.reshape(-1, 2)
        inside = shapely.intersects_xy(a.keep_in_shrunk, ends[:, 0], ends[:, 1])
        out: BoolArray = inside[0::2] & inside[1::2]
        return out
    covered: BoolArray = shapely.covered_by(lines.all(), a.keep_in_shrunk)
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
"""leg, kind, feature id, message, where (local x, y; NaN for none)."""
_ZoneRows = tuple[
    NDArray[np.intp],
    NDArray[np.intp],
    NDArray[np.intp],
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
]
"""Zone violations in order: legs, kind codes, zones, heights flown (lo, hi), where (x, y)."""


def _zone_violations(
    a: Airspace,
    coords: FloatArray,
    lines: _Lines,
    h: FloatArray,
    active: NDArray[np.bool_],
    leg_ok: NDArray[np.bool_],
    first_leg: int,
) -> _ZoneRows | None:
    """Keep-out and keep-out-margin violations of every (leg, active zone) pair, sorted.

    Pairs within the horizontal margin come from `_near_pairs` (numpy over
    the zones' edges, no per-pair GEOS call), with where each leg enters or
    comes closest, and for sloped legs the stretch flown over the zone.
    """
    vm = a.margins.vertical_m
    sloped_leg = h[:-1] != h[1:]
    li, zi, raw_hit, where_t, last_t = _near_pairs(a, coords, leg_ok, active, sloped_leg)
    if not len(li):
        return None
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
    key = (li[sel] * 2 + is_margin) * len(a.zones) + a.zone_rank[zi[sel]]
    sel = sel[np.argsort(key)]
    is_margin = margin[sel]
    leg_i, zone_i = li[sel], zi[sel]
    t = where_t[sel]
    ax, ay = coords[leg_i, 0, 0], coords[leg_i, 0, 1]
    wx = ax + t * (coords[leg_i, 1, 0] - ax)
    wy = ay + t * (coords[leg_i, 1, 1] - ay)
    kinds = np.where(is_margin, _KOM, _KO).astype(np.intp)
    return (leg_i + first_leg, kinds, zone_i, lo[sel], hi[sel], wx, wy)


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
    runs of edges, then by the vertices' distances from the leg's line;
    only edges in runs the leg's line passes through (crossings) or near
    (distance) are tested exactly. A disc covers what it stands for and a
    line is never further from anything than a segment on it, so no pair
    or edge within the margin is ever dropped. Crossings are found by the
    edges' parameters along the leg, and a leg that starts in a zone is
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
    # The discs are tested against each leg's line, not the leg: a
    # line is never further from a disc than the segment on it, so this
    # keeps every pair (run) the leg comes near, and costs half as much.
    # (nx, ny): unit normal of the leg (zero for a point: then every disc
    # passes); off: the line's distance from the origin along it.
    inv = 1.0 / np.maximum(np.hypot(dx, dy), 1e-300)
    nx, ny = -dy * inv, dx * inv
    off = ax * nx + ay * ny
    keep = np.abs(ze.cx[zi] * nx[li] + ze.cy[zi] * ny[li] - off[li]) <= ze.r[zi] + hm
    li, zi = li[keep], zi[keep]
    n = len(li)
    if not n:
        return li, zi, np.zeros(0, bool), np.zeros(0), np.zeros(0)
    pax, pay, pdx, pdy = ax[li], ay[li], dx[li], dy[li]
    len2 = np.maximum(pdx * pdx + pdy * pdy, 1e-300)
    # Fine-grained rows below get their pair's values by np.repeat (a row
    # per run, per edge): far cheaper than a gather per row.
    bw, rw = ze.BLOCK, ze.RUN

    # Runs of each pair's zone near its leg's line, a block of runs at a
    # time: pair pb[i] against the runs of block blk[i], a row per run.
    pb, blk = expand(ze.block_start_of_zone[zi], ze.blocks_of_zone[zi])
    disc = ze.block_discs.take(blk, axis=0)
    lb = li[pb]
    dist = disc[:, 0].reshape(-1) * nx[lb].repeat(bw)
    dist += disc[:, 1].reshape(-1) * ny[lb].repeat(bw)
    dist -= off[lb].repeat(bw)
    np.abs(dist, out=dist)
    rr = disc[:, 2].reshape(-1)
    through = np.flatnonzero(dist <= rr)

    # Crossings: an edge whose ends lie on both sides of the leg's line,
    # at a parameter t along the leg in [0, 1]. First a row per vertex of
    # each run: its distance from the line (signed, cheap; an edge can only
    # straddle the line if its ends' are not both clearly on one side).
    # The exact test and t on those edges only.
    run = ze.block_runs[blk].reshape(-1)
    vw = rw + 1
    pr = pb[through // bw]
    px_, py_, s = _run_vertices(ze, run[through], pr, nx[li], ny[li], off[li], vw)
    s0, s1 = s[:-1], s[1:]
    cand = (np.minimum(s0, s1) <= _SIDE_TOL) & (np.maximum(s0, s1) >= -_SIDE_TOL)
    cand[rw::vw] = False  # a run's last vertex starts no edge of it
    i = np.flatnonzero(cand)
    pe = pr[i // vw]
    rdx, rdy = pdx[pe], pdy[pe]
    ex, ey = px_[i + 1] - px_[i], py_[i + 1] - py_[i]
    wx, wy = px_[i] - pax[pe], py_[i] - pay[pe]
    side0 = wx * rdy - wy * rdx
    side1 = side0 + (ex * rdy - ey * rdx)
    st = np.flatnonzero(side0 * side1 <= 0.0)
    pe = pe[st]
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
    # end onto a zone edge). A vertex within the margin keeps the runs it
    # belongs to near, so their vertices cover every vertex that matters;
    # leg ends matter only near the zone.
    near = np.flatnonzero((dist <= rr + hm) & ~raw_hit[pb].repeat(bw))
    within = raw_hit
    if len(near):
        pr = pb[near // bw]
        px_, py_, s = _run_vertices(ze, run[near], pr, nx[li], ny[li], off[li], vw)
        # Only vertices within the margin of the line can be within it of the leg.
        i = np.flatnonzero(np.abs(s) <= hm + _SIDE_TOL)
        pv = pr[i // vw]
        rdx, rdy = pdx[pv], pdy[pv]
        qx, qy = px_[i], py_[i]
        wx, wy = qx - pax[pv], qy - pay[pv]
        tq = (wx * rdx + wy * rdy) * (1.0 / len2)[pv]
        np.clip(tq, 0.0, 1.0, out=tq)
        pairs, d2s, ts = [pv], [(wx - tq * rdx) ** 2 + (wy - tq * rdy) ** 2], [tq]
        reach2 = (ze.r[zi] + hm) ** 2
        for end_t, ex_, ey_ in ((0.0, pax, pay), (1.0, bx[li], by[li])):
            close = (ex_ - ze.cx[zi]) ** 2 + (ey_ - ze.cy[zi]) ** 2 <= reach2
            rows = np.flatnonzero(close[pr])
            if not len(rows):
                continue
            i = (rows[:, None] * vw + np.arange(rw)).reshape(-1)
            pc = pr[rows].repeat(rw)
            q0x, q0y = px_[i], py_[i]
            ex, ey = px_[i + 1] - q0x, py_[i + 1] - q0y
            px, py = ex_[pc], ey_[pc]
            se = ((px - q0x) * ex + (py - q0y) * ey) / np.maximum(ex * ex + ey * ey, 1e-300)
            np.clip(se, 0.0, 1.0, out=se)
            pairs.append(pc)
            d2s.append((q0x + se * ex - px) ** 2 + (q0y + se * ey - py) ** 2)
            ts.append(np.full(len(pc), end_t))
        pe, best, best_t = np.concatenate(pairs), np.concatenate(d2s), np.concatenate(ts)
        low = np.full(n, np.inf)
        np.minimum.at(low, pe, best)
        at_low = best == low[pe]
        closest = np.full(n, -1.0)
        np.maximum.at(closest, pe[at_low], best_t[at_low])
        within = raw_hit | (low <= hm * hm)
        where_t = np.where(raw_hit, where_t, closest)
    return li[within], zi[within], raw_hit[within], where_t[within], last[within]


# Far above the rounding of a vertex's distance from a leg's line (metres).
_SIDE_TOL = 1e-6


def _run_vertices(
    ze: ZoneEdges,
    runs: NDArray[np.intp],
    pair: NDArray[np.intp],
    nx: FloatArray,
    ny: FloatArray,
    off: FloatArray,
    vw: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """x, y of the vertices of `runs` (vw per run) and their signed distance from
    the line of pair `pair[k]` (unit normal `nx`, `ny`, offset `off`)."""
    v = ze.run_vertices.take(runs, axis=0)
    x, y = v[:, 0].reshape(-1), v[:, 1].reshape(-1)
    s = x * nx[pair].repeat(vw)
    s += y * ny[pair].repeat(vw)
    s -= off[pair].repeat(vw)
    return x, y, s


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
