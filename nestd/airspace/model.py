"""Domain types of a store's airspace: zones, keep-in, sites and safety margins."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import shapely
from shapely.geometry.base import BaseGeometry

from nestd.airspace.geo import LatLon
from nestd.airspace.timewin import Instant, Schedule

UNLIMITED_M = math.inf


class SiteKind(StrEnum):
    NEST = "nest"
    PAD = "pad"
    SAFE_LANDING = "safe_landing"


@dataclass(frozen=True, slots=True)
class Margins:
    """Safety margins applied around keep-outs and inside the keep-in."""

    horizontal_m: float = 30.0
    vertical_m: float = 10.0


DEFAULT_MARGINS = Margins()


@dataclass(frozen=True, slots=True)
class StoreInfo:
    id: str
    name: str
    timezone: str
    ground_amsl_m: float


@dataclass(frozen=True, slots=True)
class Site:
    """A point of interest: the nest, a launch/landing pad or a safe landing site."""

    id: str
    name: str
    kind: SiteKind
    position: LatLon
    xy_m: tuple[float, float]
    rally_alt_agl_m: float | None = None


@dataclass(frozen=True, slots=True)
class Circle:
    """A circular zone as published (centre in the local frame)."""

    center_xy_m: tuple[float, float]
    center: LatLon
    radius_m: float


@dataclass(frozen=True, slots=True)
class Zone:
    """A keep-out volume in the local frame.

    Heights are metres above the store's ground (AGL and AMSL limits are both
    converted with the store's ground elevation), `ceiling_m` may be inf.
    `geometry` is the zone as published, before any safety margin; a circle's
    polygon circumscribes the circle so it never under-states the zone.
    """

    id: str
    name: str
    category: str
    source: str
    reason: str
    floor_m: float
    ceiling_m: float
    geometry: BaseGeometry
    schedule: Schedule = field(default_factory=Schedule)
    circle: Circle | None = None
    origin: str = "geojson"

    def active_during(self, start: Instant, end: Instant | None = None) -> bool:
        return self.schedule.active_during(start, end)


@dataclass(frozen=True, slots=True)
class KeepIn:
    """The operating area: union of the keep-in features, with the lowest ceiling of them."""

    ids: tuple[str, ...]
    geometry: BaseGeometry
    ceiling_m: float


def circle_polygon(x: float, y: float, radius_m: float, quad_segs: int = 16) -> BaseGeometry:
    """A polygon that contains the circle (its edges are tangent-ish outside, never inside)."""
    return conservative_buffer(shapely.Point(x, y), radius_m, quad_segs)


def conservative_buffer(geom: BaseGeometry, distance_m: float, quad_segs: int = 4) -> BaseGeometry:
    """Buffer so that the polygonised arcs never cut inside the true offset curve.

    GEOS approximates arcs with chords, whose midpoints lie `r*(1-cos(a/2))`
    inside the circle; scaling the radius by 1/cos(a/2) puts the chords on or
    outside it, so a grown keep-out is never smaller and a shrunk keep-in never
    larger than the exact offset.
    """
    if distance_m == 0:
        return geom
    half_angle = math.pi / (4 * quad_segs)
    return shapely.buffer(geom, distance_m / math.cos(half_angle), quad_segs=quad_segs)
