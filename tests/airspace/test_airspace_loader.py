"""Loading store geofence files: golden facts of the shipped stores and every validation error."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from nestd.airspace import Airspace, AirspaceValidationError, parse_airspace

from .stores import GEOFENCES, NEST_LAT, NEST_LON, base_doc, feature, square


def problems_of(doc: dict[str, Any] | str) -> list[tuple[str, str]]:
    with pytest.raises(AirspaceValidationError) as exc:
        parse_airspace(doc if isinstance(doc, str) else json.dumps(doc))
    return [(p.feature_id, p.problem) for p in exc.value.problems]


def assert_problem(doc: dict[str, Any] | str, feature_id: str, text: str) -> None:
    probs = problems_of(doc)
    assert any(fid == feature_id and text in msg for fid, msg in probs), probs


def test_base_document_is_valid(doc: dict[str, Any]) -> None:
    a = parse_airspace(json.dumps(doc))
    assert [z.id for z in a.zones] == ["ko"]
    assert a.nest.id == "nest"
    assert [s.id for s in a.pads] == ["pad"]
    assert [s.id for s in a.safe_landing_sites] == ["safe"]


def test_richardson_golden(richardson: Airspace) -> None:
    a = richardson
    assert a.store.id == "us-tx-richardson-0042"
    assert a.store.timezone == "America/Chicago"
    assert {z.id for z in a.zones} == {
        "kads-class-d",
        "dfw-class-b-shelf",
        "hospital-helipad",
        "high-school",
        "substation",
        "tfr-stadium-event",
    }
    kads = a.zone("kads-class-d")
    # 3000 ft MSL ceiling over 192 m ground.
    assert kads.ceiling_m == pytest.approx(914 - 192)
    assert kads.circle is not None
    assert kads.circle.radius_m == 7400
    # The polygon of a circle never under-states it.
    assert kads.geometry.area >= math.pi * 7400**2
    assert a.zone("dfw-class-b-shelf").floor_m == pytest.approx(914 - 192)
    assert a.zone("substation").ceiling_m == 60
    assert not a.zone("high-school").schedule.always
    assert a.keep_in.ceiling_m == 120
    assert len(a.keep_in.geometry.interiors) == 1  # the HOA hole
    assert len(a.safe_landing_sites) == 3


def test_bertrange_golden_merges_ed269(bertrange: Airspace) -> None:
    a = bertrange
    ids = {z.id for z in a.zones}
    assert ids == {
        "ecole-fondamentale",
        "LU-ELLX-CTR-UAS",
        "LU-HOSP-HELI-1",
        "LU-N2000-BRAM",
        "LU-EVENT-MARKET#0",
        "LU-EVENT-MARKET#1",
    }
    assert "LU-FREE-ZONE" not in ids  # NO_RESTRICTION is flyable
    heli = a.zone("LU-HOSP-HELI-1")
    assert heli.ceiling_m == pytest.approx(500 * 0.3048)
    assert heli.origin == "ed269"
    assert a.zone("LU-ELLX-CTR-UAS").ceiling_m == pytest.approx(1500 - 300)


def test_example_files_declare_their_schema_version() -> None:
    for path in GEOFENCES.glob("*.geojson"):
        data = json.loads(path.read_text())
        assert data["type"] == "FeatureCollection"
        assert data["format"] == 1


def test_self_intersecting_ring_is_named(doc: dict[str, Any]) -> None:
    ring = feature(doc, "ko")["geometry"]["coordinates"][0]
    ring[1], ring[2] = ring[2], ring[1]  # bow-tie
    assert_problem(doc, "ko", "self-intersecting")


def test_unclosed_ring(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["geometry"]["coordinates"][0].pop()
    assert_problem(doc, "ko", "not closed")


def test_too_few_points(doc: dict[str, Any]) -> None:
    ring = feature(doc, "ko")["geometry"]["coordinates"][0]
    feature(doc, "ko")["geometry"]["coordinates"][0] = [ring[0], ring[1], ring[0]]
    assert_problem(doc, "ko", "at least 4")


def test_nan_coordinate_is_refused() -> None:
    d = base_doc()
    feature(d, "ko")["geometry"]["coordinates"][0][1][0] = float("nan")
    text = json.dumps(d)  # Python writes NaN, which json.loads accepts
    assert_problem(text, "ko", "NaN")


def test_swapped_lat_lon_is_diagnosed(doc: dict[str, Any]) -> None:
    f = feature(doc, "safe")
    lon, lat = f["geometry"]["coordinates"]
    f["geometry"]["coordinates"] = [lat, lon]
    assert_problem(doc, "safe", "swapped")


def test_far_away_point_is_refused(doc: dict[str, Any]) -> None:
    feature(doc, "safe")["geometry"]["coordinates"] = [-97.5, 32.96]  # ~73 km west
    assert_problem(doc, "safe", "km from the nest")


def test_floor_above_ceiling(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["properties"].update(floor_m=120, ceiling_m=60)
    assert_problem(doc, "ko", "not below ceiling")


def test_amsl_floor_above_agl_ceiling_is_compared_in_one_datum(doc: dict[str, Any]) -> None:
    # 250 m AMSL is 60 m above the 190 m ground: above a 50 m AGL ceiling.
    feature(doc, "ko")["properties"].update(floor_m=250, floor_ref="AMSL", ceiling_m=50)
    assert_problem(doc, "ko", "not below ceiling")


def test_permanent_keep_out_covering_the_nest(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["geometry"]["coordinates"] = [square(NEST_LON, NEST_LAT, 0.001)]
    assert_problem(doc, "ko", "covers the nest")


def test_time_limited_keep_out_may_cover_the_nest(doc: dict[str, Any]) -> None:
    props = feature(doc, "ko")["properties"]
    feature(doc, "ko")["geometry"]["coordinates"] = [square(NEST_LON, NEST_LAT, 0.001)]
    props.update(active_from="2026-11-28T18:00:00-06:00", active_to="2026-11-28T20:00:00-06:00")
    a = parse_airspace(json.dumps(doc))
    assert a.zone("ko").schedule.active_at(1795910400.0)  # 2026-11-28T19:00-06:00


def test_keep_out_above_the_ceiling_may_cover_the_nest(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["geometry"]["coordinates"] = [square(NEST_LON, NEST_LAT, 0.001)]
    feature(doc, "ko")["properties"].update(floor_m=900, floor_ref="AMSL", ceiling_m=None)
    assert parse_airspace(json.dumps(doc)).zone("ko").floor_m == pytest.approx(710)


def test_keep_in_must_contain_the_nest(doc: dict[str, Any]) -> None:
    feature(doc, "area")["geometry"]["coordinates"] = [square(NEST_LON + 0.05, NEST_LAT, 0.01)]
    assert_problem(doc, "area", "does not contain the nest")


def test_zero_area_polygon(doc: dict[str, Any]) -> None:
    lon = NEST_LON + 0.005
    feature(doc, "ko")["geometry"]["coordinates"] = [
        [[lon, NEST_LAT], [lon + 0.001, NEST_LAT], [lon + 0.002, NEST_LAT], [lon, NEST_LAT]]
    ]
    probs = problems_of(doc)
    assert any(fid == "ko" and ("zero area" in m or "too few" in m) for fid, m in probs), probs


def test_duplicate_ids(doc: dict[str, Any]) -> None:
    feature(doc, "safe")["properties"]["id"] = "ko"
    assert_problem(doc, "ko", "duplicate id")


def test_unknown_property_is_named(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["properties"]["celing_m"] = 100
    assert_problem(doc, "ko", "unknown property 'celing_m'")


def test_point_keep_out_needs_a_radius(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["geometry"] = {"type": "Point", "coordinates": [NEST_LON + 0.005, NEST_LAT]}
    assert_problem(doc, "ko", "radius_m")


def test_unknown_timezone(doc: dict[str, Any]) -> None:
    doc["store"]["timezone"] = "America/Dallas"
    assert_problem(doc, "store", "unknown IANA timezone")


def test_active_window_without_offset_is_refused(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["properties"]["active_from"] = "2026-11-28T18:00:00"
    assert_problem(doc, "ko", "no UTC offset")


def test_missing_nest(doc: dict[str, Any]) -> None:
    doc["features"] = [f for f in doc["features"] if f["properties"]["kind"] != "nest"]
    assert_problem(doc, "<file>", "exactly one 'nest'")


def test_pad_outside_keep_in(doc: dict[str, Any]) -> None:
    feature(doc, "pad")["geometry"]["coordinates"] = [NEST_LON + 0.02, NEST_LAT]
    assert_problem(doc, "pad", "outside the keep_in")


def test_every_problem_is_reported_not_just_the_first(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["properties"]["colour"] = "red"
    feature(doc, "safe")["geometry"]["coordinates"] = [32.96, -96.7]
    feature(doc, "pad")["properties"]["id"] = "safe"
    ids = {fid for fid, _ in problems_of(doc)}
    assert {"ko", "safe"} <= ids
    assert len(problems_of(doc)) >= 3


def test_not_json() -> None:
    assert_problem("{not json", "<file>", "not valid JSON")


def test_error_message_lists_feature_and_problem(doc: dict[str, Any]) -> None:
    feature(doc, "ko")["properties"]["colour"] = "red"
    with pytest.raises(AirspaceValidationError) as exc:
        parse_airspace(json.dumps(doc), source="store.geojson")
    assert "store.geojson" in str(exc.value)
    assert "ko: unknown property 'colour'" in str(exc.value)


def test_example_files_validate_against_the_schema_models() -> None:
    from nestd.airspace.schema import StoreFileModel

    for path in GEOFENCES.glob("*.geojson"):
        model = StoreFileModel.model_validate_json(path.read_text())
        assert model.store.id


def test_zones_at_reports_active_zones_at_a_height(richardson: Airspace) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    school = richardson.zone("high-school").geometry.centroid
    p = richardson.to_wgs84(school.x, school.y)
    tue_15 = datetime(2026, 11, 24, 15, 0, tzinfo=ZoneInfo("America/Chicago"))
    sat_15 = datetime(2026, 11, 28, 15, 0, tzinfo=ZoneInfo("America/Chicago"))
    assert [z.id for z in richardson.zones_at(p, 40.0, tue_15)] == ["high-school"]
    assert richardson.zones_at(p, 40.0, sat_15) == []
    assert richardson.zones_at(p, 125.0, tue_15) == []  # above its 120 m ceiling
    assert [z.id for z in richardson.zones_at(p, 125.0, tue_15, with_margins=True)] == [
        "high-school"
    ]


def test_margins_are_configurable(doc: dict[str, Any]) -> None:
    from nestd.airspace import Margins

    a = parse_airspace(json.dumps(doc), margins=Margins(horizontal_m=50.0, vertical_m=20.0))
    assert a.margins.horizontal_m == 50.0
    assert a.ceiling_limit_m == pytest.approx(100.0)
