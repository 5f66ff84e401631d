"""A store's compiled airspace: margins applied, indexed for fast checks in metres."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from nestd.airspace.geo import LatLon, LocalFrame, distance_m
from nestd.airspace.model import (
    DEFAULT_MARGINS,
    KeepIn,
    Margins,
    Site,
    StoreInfo,
    Zone,
    conservative_buffer,
)
from nestd.airspace.timewin import Instant, to_utc

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


def expand(
    start: NDArray[np.intp], count: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Rows for ranges start[k] : start[k] + count[k], in order: (k of row, index of row)."""
    first = np.cumsum(count) - count
    owner = np.repeat(np.arange(len(count)), count)
    index = np.arange(int(first[-1] + count[-1]) if len(count) else 0) - np.repeat(
        first - start, count
    )
    return owner, index


class ZoneEdges:
    """Every boundary edge of every zone as flat arrays, in runs covered by discs.

    Zone z owns edges `start[z] : start[z] + count[z]` (all rings, holes
    included), cut into runs of `RUN` consecutive edges (zone z owns runs
    `run_start_of_zone[z] : ... + runs_of_zone[z]`, run r owns edges
    `run_start[r] : ... + run_count[r]`); each zone and each run has a disc
    (centre, radius) covering it. Lets numpy answer "does this leg meet / come within the
    margin of this zone, and where" for hundreds of (leg, zone) pairs at once:
    the discs leave only the few runs a leg passes near, where a GEOS call
    per pair costs several microseconds and an overlay tens of them.
    """

    RUN = 8

    def __init__(self, geometries: NDArray[np.object_]) -> None:
        n = len(geometries)
        parts, part_of = shapely.get_parts(geometries, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        zone_of_pt = part_of[ring_part[ring_of]] if len(xy) else np.zeros(0, np.intp)
        # Consecutive coordinates of one ring form an edge (rings are closed).
        same = ring_of[:-1] == ring_of[1:]
        self.x0: FloatArray = xy[:-1, 0][same]
        self.y0: FloatArray = xy[:-1, 1][same]
        self.x1: FloatArray = xy[1:, 0][same]
        self.y1: FloatArray = xy[1:, 1][same]
        self.ex: FloatArray = self.x1 - self.x0
        self.ey: FloatArray = self.y1 - self.y0
        zone_of_edge = zone_of_pt[:-1][same]
        self.count: NDArray[np.intp] = np.bincount(zone_of_edge, minlength=n).astype(np.intp)
        self.start: NDArray[np.intp] = (np.cumsum(self.count) - self.count).astype(np.intp)
        self.cx, self.cy, self.r = _discs(self.x0, self.y0, self.x1, self.y1, zone_of_edge, n)
        # Runs: edges of one zone, RUN at a time (edges come grouped by zone).
        n_runs = (self.count + self.RUN - 1) // self.RUN
        self.run_start_of_zone: NDArray[np.intp] = (np.cumsum(n_runs) - n_runs).astype(np.intp)
        self.runs_of_zone: NDArray[np.intp] = n_runs.astype(np.intp)
        local = np.arange(len(zone_of_edge)) - self.start[zone_of_edge]
        run_of_edge = self.run_start_of_zone[zone_of_edge] + local // self.RUN
        m = int(n_runs.sum())
        self.run_count: NDArray[np.intp] = np.bincount(run_of_edge, minlength=m).astype(np.intp)
        self.run_start: NDArray[np.intp] = (np.cumsum(self.run_count) - self.run_count).astype(
            np.intp
        )
        self.run_cx, self.run_cy, self.run_r = _discs(
            self.x0, self.y0, self.x1, self.y1, run_of_edge, m
        )


def _discs(
    x0: FloatArray, y0: FloatArray, x1: FloatArray, y1: FloatArray, group: NDArray[np.intp], n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per group of edges (grouped, in group order): a disc covering all their ends."""
    cnt = np.bincount(group, minlength=n)
    div = np.maximum(2 * cnt, 1)
    cx = np.bincount(group, x0 + x1, minlength=n) / div
    cy = np.bincount(group, y0 + y1, minlength=n) / div
    far = np.zeros(n)
    if len(group):
        gx, gy = cx[group], cy[group]
        # Both ends: a run's last edge ends on a vertex no edge of the run starts on.
        d2 = np.maximum((x0 - gx) ** 2 + (y0 - gy) ** 2, (x1 - gx) ** 2 + (y1 - gy) ** 2)
        has = cnt > 0
        far[has] = np.sqrt(np.maximum.reduceat(d2, (np.cumsum(cnt) - cnt)[has]))
    # Slack far above the rounding of any distance computed against it.
    r: FloatArray = far * (1.0 + 1e-9) + 1e-3
    return cx, cy, r


def seg_disc_d2(
    ax: FloatArray, ay: FloatArray, dx: FloatArray, dy: FloatArray, cx: FloatArray, cy: FloatArray
) -> FloatArray:
    """Squared distance from each segment (a, a + d) to the point c."""
    wx, wy = cx - ax, cy - ay
    t = (wx * dx + wy * dy) / np.maximum(dx * dx + dy * dy, 1e-300)
    np.clip(t, 0.0, 1.0, out=t)
    ex, ey = wx - t * dx, wy - t * dy
    out: FloatArray = ex * ex + ey * ey
    return out


class Airspace:
    """Immutable, validated airspace of one store, in a local metric frame.

    Build it with `load_airspace` / `parse_airspace` (which validate) rather
    than directly. The zones are indexed as published and the horizontal
    margin is applied by distance (`query_margin`), with margin polygons built
    lazily (`buffered_zone`); the shrunk keep-in is built once. Route
    planning keeps its derived obstacles in `route_cache`.
    """

    def __init__(
        self,
        *,
        store: StoreInfo,
        frame: LocalFrame,
        keep_in: KeepIn,
        zones: Sequence[Zone],
        nest: Site,
        pads: Sequence[Site] = (),
        safe_landing_sites: Sequence[Site] = (),
        margins: Margins = DEFAULT_MARGINS,
        source: str = "<memory>",
    ) -> None:
        self.store = store
        self.frame = frame
        self.keep_in = keep_in
        self.zones: tuple[Zone, ...] = tuple(zones)
        self.nest = nest
        self.pads = tuple(pads)
        self.safe_landing_sites = tuple(safe_landing_sites)
        self.margins = margins
        self.source = source
        self.zone_index: dict[str, int] = {z.id: i for i, z in enumerate(self.zones)}

        hm, vm = margins.horizontal_m, margins.vertical_m
        # The raw zones are indexed and the margin is applied with exact
        # distance queries (`dwithin`): buffering a thousand ragged polygons
        # up front costs seconds, and only a few are ever needed as polygons.
        self.geometries: NDArray[np.object_] = np.array(
            [z.geometry for z in self.zones], dtype=object
        ).reshape(-1)
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self._buffered: dict[int, BaseGeometry] = {}
        self.zone_edges = ZoneEdges(self.geometries)
        self.floor_with_margin_m = np.array([z.floor_m - vm for z in self.zones], float)
        self.ceiling_with_margin_m = np.array([z.ceiling_m + vm for z in self.zones], float)
        self.always_active: BoolArray = np.array([z.schedule.always for z in self.zones], bool)
        self.keep_in_shrunk: BaseGeometry = conservative_buffer(keep_in.geometry, -hm)
        shapely.prepare(self.keep_in_shrunk)
        shapely.prepare(keep_in.geometry)
        self.ceiling_limit_m = keep_in.ceiling_m - vm
        # Router-owned cache (derived obstacle sets per layer/active set).
        self.route_cache: dict[object, object] = {}

    # -- time ---------------------------------------------------------------
    def active_mask(self, start: Instant, end: Instant | None = None) -> BoolArray:
        """Which zones are active at any moment of [start, end] (or at `start`)."""
        t0 = to_utc(start)
        t1 = t0 if end is None else to_utc(end)
        mask = self.always_active.copy()
        for i in np.flatnonzero(~self.always_active):
            mask[i] = self.zones[i].schedule.active_during(t0, t1)
        return mask

    def band_mask(self, lo_m: float, hi_m: float) -> BoolArray:
        """Zones whose band (vertical margin included) meets heights [lo_m, hi_m]."""
        return (self.floor_with_margin_m <= hi_m) & (self.ceiling_with_margin_m >= lo_m)

    # -- margins ------------------------------------------------------------
    def buffered_zone(self, i: int) -> BaseGeometry:
        """Zone i grown by the horizontal margin (never smaller than exact), cached."""
        g = self._buffered.get(i)
        if g is None:
            g = conservative_buffer(self.zones[i].geometry, self.margins.horizontal_m)
            shapely.prepare(g)
            self._buffered[i] = g
        return g

    def query_margin(self, geoms: object) -> NDArray[np.intp]:
        """STRtree pairs (input index, zone index) within the horizontal margin of a zone."""
        pairs: NDArray[np.intp] = self.tree.query(
            geoms, predicate="dwithin", distance=self.margins.horizontal_m
        )
        return pairs

    # -- lookups ------------------------------------------------------------
    def zone(self, zone_id: str) -> Zone:
        return self.zones[self.zone_index[zone_id]]

    def to_local(self, p: LatLon) -> tuple[float, float]:
        return self.frame.point_to_local(p)

    def to_wgs84(self, x_m: float, y_m: float) -> LatLon:
        return self.frame.point_to_wgs84(x_m, y_m)

    def height_from_amsl(self, alt_amsl_m: float) -> float:
        return alt_amsl_m - self.store.ground_amsl_m

    def safe_sites_by_distance(self, p: LatLon) -> list[tuple[Site, float]]:
        """Safe landing sites, nearest first, with their geodesic distance from p."""
        out = [(s, distance_m(p, s.position)) for s in self.safe_landing_sites]
        return sorted(out, key=lambda t: t[1])

    def zones_at(
        self, p: LatLon, height_m: float, at: Instant, *, with_margins: bool = False
    ) -> list[Zone]:
        """Active zones containing the point at that height (optionally with the margins)."""
        x, y = self.to_local(p)
        pt = shapely.Point(x, y)
        active = self.active_mask(at)
        vm = self.margins.vertical_m if with_margins else 0.0
        hits = self.query_margin(pt) if with_margins else self.tree.query(pt, "intersects")
        out = []
        for i in sorted(int(k) for k in hits):
            z = self.zones[i]
            if active[i] and z.floor_m - vm <= height_m <= z.ceiling_m + vm:
                out.append(z)
        return out

    def __repr__(self) -> str:
        return (
            f"Airspace(store={self.store.id!r}, zones={len(self.zones)}, "
            f"margins={self.margins}, source={self.source!r})"
        )
