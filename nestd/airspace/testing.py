"""Synthetic airspaces for tests and benchmarks (random keep-out fields around a store)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from nestd.airspace.airspace import Airspace
from nestd.airspace.geo import LatLon, LocalFrame
from nestd.airspace.model import DEFAULT_MARGINS, KeepIn, Margins, Site, SiteKind, StoreInfo, Zone
from nestd.airspace.timewin import Schedule

DEFAULT_ORIGIN = LatLon(32.9600, -96.7250)


def star_polygon(
    rng: np.random.Generator, x: float, y: float, radius_m: float, n_vertices: int
) -> BaseGeometry:
    """A random simple (star-shaped) polygon around (x, y)."""
    # Strictly increasing angles around the centre keep the ring simple.
    ang = (np.arange(n_vertices) + rng.uniform(0.0, 0.8, n_vertices)) * (2 * np.pi / n_vertices)
    r = radius_m * rng.uniform(0.55, 1.0, n_vertices)
    return shapely.Polygon(np.column_stack([x + r * np.cos(ang), y + r * np.sin(ang)]))


def synthetic_airspace(
    geometries: list[BaseGeometry],
    *,
    keep_in: BaseGeometry | None = None,
    keep_in_radius_m: float = 6_000.0,
    origin: LatLon = DEFAULT_ORIGIN,
    margins: Margins = DEFAULT_MARGINS,
    floors_m: list[float] | None = None,
    ceilings_m: list[float] | None = None,
    schedules: list[Schedule] | None = None,
) -> Airspace:
    """An Airspace built directly in the local frame (no file, no validation)."""
    frame = LocalFrame(origin)
    ki = keep_in if keep_in is not None else shapely.Point(0, 0).buffer(keep_in_radius_m, 32)
    zones = [
        Zone(
            id=f"z{i}",
            name=f"zone {i}",
            category="other",
            source="synthetic",
            reason="test",
            floor_m=floors_m[i] if floors_m else 0.0,
            ceiling_m=ceilings_m[i] if ceilings_m else float("inf"),
            geometry=g,
            schedule=schedules[i] if schedules else Schedule(),
        )
        for i, g in enumerate(geometries)
    ]
    return Airspace(
        store=StoreInfo("synthetic", "Synthetic store", "UTC", 0.0),
        frame=frame,
        keep_in=KeepIn(("keep-in",), ki, 120.0),
        zones=zones,
        nest=Site("nest", "nest", SiteKind.NEST, origin, (0.0, 0.0)),
        margins=margins,
        source="<synthetic>",
    )


def random_field(
    n: int,
    *,
    seed: int = 0,
    extent_m: float = 6_000.0,
    radius_m: tuple[float, float] = (20.0, 80.0),
    vertices: tuple[int, int] = (20, 200),
    clear_radius_m: float = 150.0,
) -> list[BaseGeometry]:
    """`n` random star polygons in a disc of `extent_m`, none within `clear_radius_m` of (0, 0)."""
    rng = np.random.default_rng(seed)
    out: list[BaseGeometry] = []
    while len(out) < n:
        rho = extent_m * np.sqrt(rng.uniform())
        th = rng.uniform(0, 2 * np.pi)
        x, y = rho * np.cos(th), rho * np.sin(th)
        r = rng.uniform(*radius_m)
        if np.hypot(x, y) < clear_radius_m + r:
            continue
        out.append(star_polygon(rng, x, y, r, int(rng.integers(vertices[0], vertices[1] + 1))))
    return out
