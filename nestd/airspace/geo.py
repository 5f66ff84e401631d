"""Local metric frame around a store (pyproj) and ellipsoidal distances for ETAs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod, Transformer

FloatArray = NDArray[np.float64]

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS84 position in degrees."""

    lat_deg: float
    lon_deg: float


class LocalFrame:
    """Azimuthal-equidistant frame centred on the store: x east, y north, metres.

    Distances and bearings from the centre are exact on the ellipsoid and
    distortion stays far below a metre over a store's few-kilometre operating
    area, so all geometry can be done in plain metres with shapely.
    """

    def __init__(self, origin: LatLon) -> None:
        self.origin = origin
        crs = (
            f"+proj=aeqd +lat_0={origin.lat_deg!r} +lon_0={origin.lon_deg!r} "
            "+datum=WGS84 +units=m +no_defs"
        )
        self._fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def to_local(self, lon_deg: ArrayLike, lat_deg: ArrayLike) -> tuple[FloatArray, FloatArray]:
        x, y = self._fwd.transform(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
        return np.asarray(x, float), np.asarray(y, float)

    def to_wgs84(self, x_m: ArrayLike, y_m: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Return (lon_deg, lat_deg) arrays."""
        lon, lat = self._inv.transform(np.asarray(x_m, float), np.asarray(y_m, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def point_to_local(self, p: LatLon) -> tuple[float, float]:
        x, y = self._fwd.transform(p.lon_deg, p.lat_deg)
        return float(x), float(y)

    def point_to_local_xy(self, lon_deg: float, lat_deg: float) -> tuple[float, float]:
        x, y = self._fwd.transform(lon_deg, lat_deg)
        return float(x), float(y)

    def point_to_wgs84(self, x_m: float, y_m: float) -> LatLon:
        lon, lat = self._inv.transform(x_m, y_m)
        return LatLon(lat_deg=float(lat), lon_deg=float(lon))

    def ring_to_local(self, ring: Sequence[Sequence[float]]) -> FloatArray:
        """GeoJSON [lon, lat, ...] positions -> (n, 2) local array."""
        arr = np.asarray([(p[0], p[1]) for p in ring], float)
        x, y = self.to_local(arr[:, 0], arr[:, 1])
        return np.column_stack([x, y])

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalFrame, (self.origin,))


def distance_m(a: LatLon, b: LatLon) -> float:
    """Geodesic distance on the WGS84 ellipsoid."""
    _, _, dist = _GEOD.inv(a.lon_deg, a.lat_deg, b.lon_deg, b.lat_deg)
    return float(dist)


def bearing_deg(a: LatLon, b: LatLon) -> float:
    """Initial geodesic bearing from a to b, degrees clockwise from true north in [0, 360)."""
    az, _, _ = _GEOD.inv(a.lon_deg, a.lat_deg, b.lon_deg, b.lat_deg)
    return float(az) % 360.0


def path_length_m(points: Sequence[LatLon]) -> float:
    """Geodesic length of a polyline, for ETAs."""
    if len(points) < 2:
        return 0.0
    lons = [p.lon_deg for p in points]
    lats = [p.lat_deg for p in points]
    return float(_GEOD.line_length(lons, lats))
