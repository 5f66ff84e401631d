"""Predict geofence breaches from position and velocity, fast enough to run every tick."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from nestd.airspace.airspace import Airspace
from nestd.airspace.model import conservative_buffer
from nestd.airspace.timewin import Instant, to_utc

NO_BREACH = -1
KEEP_IN = -2
CEILING = -3


class BreachKind(StrEnum):
    KEEP_OUT = "keep_out"
    OUTSIDE_KEEP_IN = "outside_keep_in"
    ABOVE_CEILING = "above_ceiling"


@dataclass(frozen=True, slots=True)
class Breach:
    """The first predicted breach: what, which feature, and how soon (0 = already)."""

    kind: BreachKind
    feature_id: str
    time_to_breach_s: float

    @property
    def now(self) -> bool:
        return self.time_to_breach_s == 0.0


@dataclass(frozen=True, slots=True)
class BatchBreach:
    """Per-vehicle results of `BreachPredictor.check_many`.

    `code[i]` is the breached zone's index in `Airspace.zones`, or KEEP_IN,
    CEILING or NO_BREACH; with several, a keep-out wins (it names a feature).
    """

    breach: NDArray[np.bool_]
    code: NDArray[np.intp]

    def feature_id(self, a: Airspace, i: int) -> str | None:
        c = int(self.code[i])
        if c >= 0:
            return a.zones[c].id
        if c in (KEEP_IN, CEILING):
            return a.keep_in.ids[0]
        return None


class BreachPredictor:
    """Straight-line extrapolation over `lookahead_s` against the real fence.

    The planned route already keeps the safety margins, so this guards the
    zones themselves (plus `extra_margin_m`, default none): a prediction to
    cross one within the lookahead is the moment to hold or return. Zones
    count when active at any moment of [at, at + valid_for_s]; build a new
    predictor when that runs out or the airspace changes (it is cheap).
    Altitudes are metres above the store's ground (relative to home), and
    velocity is NED (`vd_mps` positive down), as MAVLink reports them.
    """

    def __init__(
        self,
        a: Airspace,
        at: Instant,
        *,
        lookahead_s: float = 10.0,
        extra_margin_m: float = 0.0,
        valid_for_s: float = 60.0,
    ) -> None:
        t0 = to_utc(at)
        self.airspace = a
        self.lookahead_s = lookahead_s
        self.valid_until_s = t0.timestamp() + valid_for_s
        active = a.active_mask(t0, to_utc(t0.timestamp() + valid_for_s))
        self._idx = np.flatnonzero(active)
        geoms = np.array(
            [conservative_buffer(a.zones[i].geometry, extra_margin_m) for i in self._idx],
            dtype=object,
        )
        shapely.prepare(geoms)
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)
        self._floor = np.array([a.zones[i].floor_m for i in self._idx], float)
        self._ceiling = np.array([a.zones[i].ceiling_m for i in self._idx], float)
        self._keep_in = conservative_buffer(a.keep_in.geometry, -extra_margin_m)
        shapely.prepare(self._keep_in)
        # The keep-in test in batches: start inside and no crossing of any
        # boundary edge (an indexed edge query beats covered_by on a big ring).
        edges = []
        for ring in shapely.get_rings(self._keep_in):
            c = np.asarray(ring.coords)[:, :2]
            edges.append(np.stack([c[:-1], c[1:]], axis=1))
        self._edge_tree = shapely.STRtree(shapely.linestrings(np.concatenate(edges)))
        self._ceiling_m = a.keep_in.ceiling_m

    def check(
        self,
        lat_deg: float,
        lon_deg: float,
        alt_rel_m: float,
        vn_mps: float,
        ve_mps: float,
        vd_mps: float,
    ) -> Breach | None:
        """The soonest breach within the lookahead for one vehicle, or None."""
        x, y = self.airspace.frame.point_to_local_xy(lon_deg, lat_deg)
        t = self.lookahead_s
        x1, y1, h1 = x + ve_mps * t, y + vn_mps * t, alt_rel_m - vd_mps * t
        speed = math.hypot(ve_mps, vn_mps)
        line = shapely.LineString([(x, y), (x1 + 1e-6, y1)])
        found: list[Breach] = []
        for k in self._tree.query(line, predicate="intersects"):
            g = self._geoms[k]
            if shapely.intersects_xy(g, x, y):
                ts = 0.0
            else:
                c = shapely.get_coordinates(shapely.intersection(line, g))
                d = float(shapely.line_locate_point(line, shapely.points(c)).min()) if len(c) else 0
                ts = d / speed if speed > 0 else 0.0
            h_at = alt_rel_m - vd_mps * ts
            lo, hi = min(h_at, h1), max(h_at, h1)
            if hi >= self._floor[k] and lo <= self._ceiling[k]:
                found.append(Breach(BreachKind.KEEP_OUT, self.airspace.zones[self._idx[k]].id, ts))
        if not shapely.intersects_xy(self._keep_in, x, y):
            found.append(Breach(BreachKind.OUTSIDE_KEEP_IN, self.airspace.keep_in.ids[0], 0.0))
        elif not shapely.covered_by(line, self._keep_in):
            out = shapely.difference(line, self._keep_in)
            d = min(float(line.project(shapely.Point(c))) for c in shapely.get_coordinates(out))
            found.append(
                Breach(
                    BreachKind.OUTSIDE_KEEP_IN,
                    self.airspace.keep_in.ids[0],
                    d / speed if speed > 0 else 0.0,
                )
            )
        if alt_rel_m > self._ceiling_m:
            found.append(Breach(BreachKind.ABOVE_CEILING, self.airspace.keep_in.ids[0], 0.0))
        elif h1 > self._ceiling_m and vd_mps < 0:
            ts = (self._ceiling_m - alt_rel_m) / -vd_mps
            found.append(Breach(BreachKind.ABOVE_CEILING, self.airspace.keep_in.ids[0], ts))
        return min(found, key=lambda b: b.time_to_breach_s) if found else None

    def check_many(
        self,
        lat_deg: ArrayLike,
        lon_deg: ArrayLike,
        alt_rel_m: ArrayLike,
        vn_mps: ArrayLike,
        ve_mps: ArrayLike,
        vd_mps: ArrayLike,
    ) -> BatchBreach:
        """Vectorised check over a fleet: one call per monitor tick."""
        h0 = np.asarray(alt_rel_m, float)
        vn, ve, vd = (np.asarray(v, float) for v in (vn_mps, ve_mps, vd_mps))
        x, y = self.airspace.frame.to_local(lon_deg, lat_deg)
        t = self.lookahead_s
        coords = np.empty((len(x), 2, 2))
        coords[:, 0, 0], coords[:, 0, 1] = x, y
        coords[:, 1, 0], coords[:, 1, 1] = x + ve * t + 1e-6, y + vn * t
        h1 = h0 - vd * t
        lines = shapely.linestrings(coords)
        code = np.full(len(x), NO_BREACH, dtype=np.intp)
        inside = shapely.intersects_xy(self._keep_in, x, y)
        crossing = self._edge_tree.query(lines, predicate="intersects")[0]
        inside[crossing] = False
        code[~inside] = KEEP_IN
        code[np.maximum(h0, h1) > self._ceiling_m] = CEILING
        li, zi = self._tree.query(lines, predicate="intersects")
        if len(li):
            lo, hi = np.minimum(h0[li], h1[li]), np.maximum(h0[li], h1[li])
            # Whole-leg height range: conservative for climbing/descending vehicles.
            hit = (hi >= self._floor[zi]) & (lo <= self._ceiling[zi])
            code[li[hit]] = self._idx[zi[hit]]
        return BatchBreach(code != NO_BREACH, code)
