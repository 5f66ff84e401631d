"""Live airspace updates: diffs, flights a new TFR affects, and rejecting bad files whole."""

from __future__ import annotations

import copy
import json
from typing import Any

from nestd.airspace import (
    ActiveFlight,
    AirspaceKeeper,
    AirspaceValidationError,
    LatLon,
    Waypoint,
    diff_airspace,
    parse_airspace,
)
from nestd.airspace.schema import json_schema

from .stores import GEOFENCES, NEST_LAT, NEST_LON, base_doc, feature, square

NOW = 1_795_000_000.0


def tfr(lon: float, lat: float, fid: str = "tfr-1") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "kind": "keep_out",
            "id": fid,
            "name": "TFR",
            "category": "tfr",
            "source": "NOTAM",
            "reason": "emergency",
            "radius_m": 150,
        },
    }


def flight_north() -> ActiveFlight:
    # In the air 200 m north of the nest, heading 1.5 km north and then home.
    return ActiveFlight(
        "job-7",
        LatLon(NEST_LAT + 0.0018, NEST_LON),
        40.0,
        [Waypoint(NEST_LAT + 0.0135, NEST_LON, 40.0), Waypoint(NEST_LAT, NEST_LON, 40.0)],
    )


def test_diff_names_added_removed_and_changed() -> None:
    old = base_doc()
    new = copy.deepcopy(old)
    new["features"].append(tfr(NEST_LON, NEST_LAT + 0.009))
    feature(new, "ko")["properties"]["ceiling_m"] = 150
    d = diff_airspace(parse_airspace(json.dumps(old)), parse_airspace(json.dumps(new)))
    assert d.added == ("tfr-1",)
    assert d.changed == ("ko",)
    assert d.removed == ()
    assert not d.keep_in_changed
    back = diff_airspace(parse_airspace(json.dumps(new)), parse_airspace(json.dumps(old)))
    assert back.removed == ("tfr-1",)


def test_identical_airspace_has_an_empty_diff() -> None:
    a = parse_airspace(json.dumps(base_doc()))
    assert diff_airspace(a, parse_airspace(json.dumps(base_doc()))).empty


def test_new_tfr_across_an_in_flight_route_reports_the_flight() -> None:
    keeper = AirspaceKeeper(parse_airspace(json.dumps(base_doc())))
    new = base_doc()
    new["features"].append(tfr(NEST_LON, NEST_LAT + 0.009))
    other = ActiveFlight(
        "job-8",
        LatLon(NEST_LAT, NEST_LON - 0.002),
        40.0,
        [Waypoint(NEST_LAT - 0.005, NEST_LON - 0.002, 40.0)],
    )
    up = keeper.replace_from_document(json.dumps(new), NOW, [flight_north(), other])
    assert up.accepted
    assert up.diff.added == ("tfr-1",)
    assert [f.flight_id for f in up.affected] == ["job-7"]
    assert up.affected[0].feature_ids == {"tfr-1"}
    assert keeper.current.zone("tfr-1").circle is not None


def test_tfr_away_from_the_route_affects_nobody() -> None:
    keeper = AirspaceKeeper(parse_airspace(json.dumps(base_doc())))
    new = base_doc()
    new["features"].append(tfr(NEST_LON - 0.007, NEST_LAT - 0.007))
    up = keeper.replace_from_document(new, NOW, [flight_north()])
    assert up.accepted
    assert up.affected == ()


def test_bad_update_keeps_the_previous_airspace_in_force() -> None:
    good = parse_airspace(json.dumps(base_doc()))
    keeper = AirspaceKeeper(good)
    new = base_doc()
    new["features"].append(tfr(NEST_LON, NEST_LAT + 0.009))
    feature(new, "ko")["geometry"]["coordinates"] = [
        square(NEST_LON, NEST_LAT, 0.001)
    ]  # covers nest
    up = keeper.replace_from_document(json.dumps(new), NOW, [flight_north()])
    assert not up.accepted
    assert isinstance(up.error, AirspaceValidationError)
    assert keeper.current is good
    assert "tfr-1" not in keeper.current.zone_index


def test_shipped_schema_matches_the_models() -> None:
    shipped = json.loads((GEOFENCES / "store-airspace.schema.json").read_text())
    assert shipped == json_schema()
