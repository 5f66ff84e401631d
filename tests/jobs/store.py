"""A store airspace file around a simulated fleet: nest, one pad per drone, a keep-in disc and
optional keep-outs, written as the GeoJSON nestd loads (geofences/README.md)."""

from __future__ import annotations

import math
from pathlib import Path

import orjson

from nestd.airspace import LatLon, LocalFrame


def _ring(frame: LocalFrame, cx: float, cy: float, r: float, n: int = 24) -> list[list[float]]:
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        lon, lat = frame.to_wgs84(cx + r * math.cos(a), cy + r * math.sin(a))
        pts.append([round(float(lon), 7), round(float(lat), 7)])
    return [*pts, pts[0]]


def write_store(path: Path, home: tuple[float, float], pads: list[tuple[float, float]], *,
                store_id: str = "test-store", keep_in_radius_m: float = 3000.0,
                keep_outs: list[tuple[float, float, float]] = ()) -> Path:
    """keep_outs: (east_m, north_m, radius_m) circles (as polygons), surface to 120 m."""
    lat0, lon0 = home
    frame = LocalFrame(LatLon(lat0, lon0))
    feats: list[dict[str, object]] = [
        {"type": "Feature", "properties": {"kind": "nest", "id": "nest", "name": "Nest"},
         "geometry": {"type": "Point", "coordinates": [lon0, lat0]}},
        {"type": "Feature", "properties": {"kind": "keep_in", "id": "ops", "name": "Ops area",
                                           "ceiling_m": 120, "ceiling_ref": "AGL",
                                           "source": "test", "reason": "test"},
         "geometry": {"type": "Polygon", "coordinates": [_ring(frame, 0, 0, keep_in_radius_m)]}},
    ]
    for i, (la, lo) in enumerate(pads):
        feats.append({"type": "Feature",
                      "properties": {"kind": "pad", "id": f"pad-{i + 1}", "name": f"Pad {i + 1}"},
                      "geometry": {"type": "Point", "coordinates": [lo, la]}})
    for i, (e, n, r) in enumerate(keep_outs):
        feats.append({"type": "Feature",
                      "properties": {"kind": "keep_out", "id": f"ko-{i + 1}", "name": f"KO {i + 1}",
                                     "category": "other", "floor_m": 0, "ceiling_m": 120,
                                     "source": "test", "reason": "test"},
                      "geometry": {"type": "Polygon", "coordinates": [_ring(frame, e, n, r)]}})
    doc = {"type": "FeatureCollection", "format": 1,
           "store": {"id": store_id, "name": "Test store", "timezone": "UTC",
                     "ground_amsl_m": 0.0, "max_radius_m": 20000},
           "features": feats}
    path.write_bytes(orjson.dumps(doc))
    return path
