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
    included), cut into runs of up to `RUN` consecutive edges of one ring
    (zone z owns runs `run_start_of_zone[z] : ... + runs_of_zone[z]`, run r
    owns edges `run_start[r] : ... + run_count[r]`); each zone and each run
    has a disc (centre, radius) covering it. Lets numpy answer "does this leg meet / come within the
    margin of this zone, and where" for hundreds of (leg, zone) pairs at once:
    the discs leave only the few runs a leg passes near, where a GEOS call
    per pair costs several microseconds and an overlay tens of them. The
    same runs and discs are also kept padded to fixed widths (`run_vertices`,
    `block_discs`) so numpy can gather them a row at a time.
    """

    RUN = 8
    BLOCK = 16

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
        # Runs: edges of one ring, RUN at a time (edges come grouped by ring
        # and rings by zone), so a run's edges join end to end.
        ring_of_edge = ring_of[:-1][same]
        ring_count = np.bincount(ring_of_edge, minlength=len(rings))
        ring_start = np.cumsum(ring_count) - ring_count
        ring_runs = (ring_count + self.RUN - 1) // self.RUN
        zone_of_ring = part_of[ring_part] if len(rings) else np.zeros(0, np.intp)
        n_runs = np.bincount(zone_of_ring, ring_runs, minlength=n).astype(np.intp)
        self.run_start_of_zone: NDArray[np.intp] = (np.cumsum(n_runs) - n_runs).astype(np.intp)
        self.runs_of_zone: NDArray[np.intp] = n_runs
        local = np.arange(len(ring_of_edge)) - ring_start[ring_of_edge]
        run_of_edge = (np.cumsum(ring_runs) - ring_runs)[ring_of_edge] + local // self.RUN
        m = int(n_runs.sum())
        self.run_count: NDArray[np.intp] = np.bincount(run_of_edge, minlength=m).astype(np.intp)
        self.run_start: NDArray[np.intp] = (np.cumsum(self.run_count) - self.run_count).astype(
            np.intp
        )
        self.run_cx, self.run_cy, self.run_r = _discs(
            self.x0, self.y0, self.x1, self.y1, run_of_edge, m
        )
        # Fixed-width copies, so numpy gathers a run (a block of runs) with
        # one row copy instead of one element per edge (run) and array: run
        # r's vertices are run_vertices[r] = (x, y) x (RUN + 1), its edges
        # joining consecutive ones; padded with copies of its last vertex
        # (zero-length edges there change no crossing or distance);
        # zone z's runs come in blocks `block_start_of_zone[z] : ... +
        # blocks_of_zone[z]` of BLOCK runs: block_runs[b] (run ids) and
        # their discs block_discs[b] = (cx, cy, r) x BLOCK (padding: r NaN,
        # never near anything).
        k = np.arange(self.RUN + 1)[None, :]
        cnt = self.run_count[:, None]
        pick = self.run_start[:, None] + np.minimum(k, cnt - 1)
        self.run_vertices: FloatArray = np.stack(
            [
                np.where(k < cnt, self.x0[pick], self.x1[pick]),
                np.where(k < cnt, self.y0[pick], self.y1[pick]),
            ],
            axis=1,
        )
        n_blocks = (n_runs + self.BLOCK - 1) // self.BLOCK
        self.block_start_of_zone: NDArray[np.intp] = (np.cumsum(n_blocks) - n_blocks).astype(
            np.intp
        )
        self.blocks_of_zone: NDArray[np.intp] = n_blocks.astype(np.intp)
        zone_of_block = np.repeat(np.arange(n), n_blocks)
        local_block = np.arange(len(zone_of_block)) - self.block_start_of_zone[zone_of_block]
        first = self.run_start_of_zone[zone_of_block] + local_block * self.BLOCK
        end = self.run_start_of_zone[zone_of_block] + n_runs[zone_of_block]
        ids = first[:, None] + np.arange(self.BLOCK)[None, :]
        real = ids < end[:, None]
        self.block_runs: NDArray[np.intp] = np.where(real, ids, 0).astype(np.intp)
        self.block_discs: FloatArray = np.stack(
            [
                self.run_cx[self.block_runs],
                self.run_cy[self.block_runs],
                np.where(real, self.run_r[self.block_runs], np.nan),
            ],
            axis=1,
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
        # Per zone: the position of its id among all the ids sorted.
        by_id = sorted(range(len(self.zones)), key=lambda i: self.zones[i].id)
        self.zone_rank: NDArray[np.intp] = np.empty(len(by_id), np.intp)
        self.zone_rank[by_id] = np.arange(len(by_id))

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
