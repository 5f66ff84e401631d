"""Importing EUROCAE ED-269 UAS geographical zone documents."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from nestd.airspace import Ed269Error, LatLon, LocalFrame, parse_ed269

FRAME = LocalFrame(LatLon(49.6105, 6.0820))


def zone(**over: Any) -> dict[str, Any]:
    z: dict[str, Any] = {
        "identifier": "Z1",
        "country": "LUX",
        "name": "Zone 1",
        "type": "COMMON",
        "restriction": "PROHIBITED",
        "reason": ["AIR_TRAFFIC"],
        "zoneAuthority": [{"name": "CAA"}],
        "applicability": [{"permanent": "YES"}],
        "geometry": [
            {
                "uomDimensions": "M",
                "lowerLimit": 0,
                "lowerVerticalReference": "AGL",
                "upperLimit": 120,
                "upperVerticalReference": "AGL",
                "horizontalProjection": {"type": "Circle", "center": [6.09, 49.61], "radius": 300},
            }
        ],
    }
    z.update(over)
    return z


def parse(*zones: dict[str, Any]) -> list[Any]:
    return parse_ed269({"features": list(zones)}, frame=FRAME, ground_amsl_m=300.0)


def test_circle_zone_becomes_a_circle_keep_out() -> None:
    (z,) = parse(zone())
    assert z.id == "Z1"
    assert z.circle is not None
    assert z.circle.radius_m == 300
    assert z.geometry.area >= math.pi * 300**2
    assert z.source == "CAA"
    assert z.category == "airport"
    assert z.schedule.always


def test_feet_and_amsl_are_converted_to_metres_above_store_ground() -> None:
    g = zone()["geometry"][0] | {
        "uomDimensions": "FT",
        "upperLimit": 1500,
        "upperVerticalReference": "AMSL",
    }
    g["horizontalProjection"] = g["horizontalProjection"] | {"radius": 1000}
    (z,) = parse(zone(geometry=[g]))
    assert z.ceiling_m == pytest.approx(1500 * 0.3048 - 300)
    assert z.circle is not None
    assert z.circle.radius_m == pytest.approx(304.8)


def test_no_restriction_zones_are_not_keep_outs() -> None:
    assert parse(zone(restriction="NO_RESTRICTION")) == []


def test_stratified_zone_gives_one_keep_out_per_volume() -> None:
    base = zone()["geometry"][0]
    upper = copy.deepcopy(base) | {"lowerLimit": 120, "upperLimit": 300}
    zs = parse(zone(geometry=[base, upper]))
    assert [(z.id, z.floor_m, z.ceiling_m) for z in zs] == [("Z1#0", 0, 120), ("Z1#1", 120, 300)]


def test_missing_limits_are_read_conservatively() -> None:
    g = {k: v for k, v in zone()["geometry"][0].items() if k not in ("lowerLimit", "upperLimit")}
    (z,) = parse(zone(geometry=[g]))
    assert z.floor_m == 0
    assert math.isinf(z.ceiling_m)


def test_schedule_days_and_utc_times() -> None:
    app = [
        {
            "permanent": "NO",
            "schedule": [{"day": ["SAT"], "startTime": "07:00Z", "endTime": "13:00Z"}],
        }
    ]
    (z,) = parse(zone(applicability=app))
    assert z.schedule.active_at(datetime(2026, 11, 28, 12, 59, tzinfo=UTC))  # Saturday
    assert not z.schedule.active_at(datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
    assert not z.schedule.active_at(datetime(2026, 11, 29, 12, 0, tzinfo=UTC))  # Sunday


def test_absolute_applicability_period() -> None:
    app = [
        {
            "permanent": "NO",
            "startDateTime": "2026-03-01T00:00:00Z",
            "endDateTime": "2026-08-01T00:00:00Z",
        }
    ]
    (z,) = parse(zone(applicability=app))
    assert z.schedule.active_at(datetime(2026, 5, 1, tzinfo=UTC))
    assert not z.schedule.active_at(datetime(2026, 9, 1, tzinfo=UTC))


def test_permanent_entry_wins_over_timed_ones() -> None:
    app = [
        {
            "permanent": "NO",
            "startDateTime": "2026-03-01T00:00:00Z",
            "endDateTime": "2026-03-02T00:00:00Z",
        },
        {"permanent": "YES"},
    ]
    (z,) = parse(zone(applicability=app))
    assert z.schedule.always


@pytest.mark.parametrize(
    ("over", "text"),
    [
        ({"restriction": "MAYBE"}, "unknown restriction"),
        ({"geometry": []}, "no geometry"),
        (
            {"geometry": [zone()["geometry"][0] | {"upperVerticalReference": "WGS84"}]},
            "WGS84",
        ),
        ({"geometry": [zone()["geometry"][0] | {"lowerLimit": 200}]}, "not below upperLimit"),
        (
            {"geometry": [zone()["geometry"][0] | {"horizontalProjection": {"type": "Corridor"}}]},
            "not supported",
        ),
        (
            {
                "geometry": [
                    zone()["geometry"][0]
                    | {
                        "horizontalProjection": {
                            "type": "Circle",
                            "center": [49.61, 6.09],
                            "radius": 9,
                        }
                    }
                ]
            },
            "swapped",
        ),
        ({"applicability": [{"schedule": [{"day": ["FUNDAY"]}]}]}, "MON..SUN"),
    ],
)
def test_bad_zones_are_rejected_with_their_identifier(over: dict[str, Any], text: str) -> None:
    with pytest.raises(Ed269Error) as exc:
        parse(zone(**over))
    assert any(p.feature_id == "Z1" and text in p.problem for p in exc.value.problems), exc.value


def test_all_bad_zones_are_reported() -> None:
    with pytest.raises(Ed269Error) as exc:
        parse(zone(identifier="A", restriction="X"), zone(identifier="B", geometry=[]))
    assert exc.value.feature_ids() == {"A", "B"}


def test_document_without_features_is_rejected() -> None:
    with pytest.raises(Ed269Error, match="no 'features'"):
        parse_ed269({"title": "x"}, frame=FRAME, ground_amsl_m=0)
