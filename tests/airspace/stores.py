"""Shared helpers for the airspace tests: a small valid store document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GEOFENCES = Path(__file__).resolve().parents[2] / "geofences"

# A small store around (0.0 N, 0.0 E) would be odd; use a real-looking place.
NEST_LON, NEST_LAT = -96.7250, 32.9600


def square(lon: float, lat: float, half_deg: float) -> list[list[float]]:
    return [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]


def base_doc() -> dict[str, Any]:
    """A minimal valid store: ~2 km square keep-in, one keep-out, nest, pad, safe site."""
    return {
        "type": "FeatureCollection",
        "format": 1,
        "store": {
            "id": "test-store",
            "name": "Test store",
            "timezone": "America/Chicago",
            "ground_amsl_m": 190.0,
        },
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [NEST_LON, NEST_LAT]},
                "properties": {"kind": "nest", "id": "nest", "name": "Nest"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [square(NEST_LON, NEST_LAT, 0.01)]},
                "properties": {"kind": "keep_in", "id": "area", "name": "Area"},
            },
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [square(NEST_LON + 0.005, NEST_LAT, 0.001)],
                },
                "properties": {
                    "kind": "keep_out",
                    "id": "ko",
                    "name": "Keep-out",
                    "source": "test",
                    "reason": "test",
                    "ceiling_m": 100,
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [NEST_LON + 0.0001, NEST_LAT]},
                "properties": {"kind": "pad", "id": "pad", "name": "Pad"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [NEST_LON - 0.005, NEST_LAT]},
                "properties": {"kind": "safe_landing", "id": "safe", "name": "Safe"},
            },
        ],
    }


def feature(doc: dict[str, Any], fid: str) -> dict[str, Any]:
    for f in doc["features"]:
        if f["properties"].get("id") == fid:
            return f  # type: ignore[no-any-return]
    raise KeyError(fid)
