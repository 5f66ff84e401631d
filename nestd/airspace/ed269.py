"""Import EUROCAE ED-269 UAS geographical zone documents as keep-out zones."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

from shapely.geometry.base import BaseGeometry

from nestd.airspace.errors import Ed269Error, Problem
from nestd.airspace.geo import LatLon, LocalFrame
from nestd.airspace.loader import ProblemCollector, check_positions, rings_to_polygon
from nestd.airspace.model import UNLIMITED_M, Circle, Zone, circle_polygon
from nestd.airspace.timewin import Applicability, DailyWindow, Schedule

FT_M = 0.3048
# What we do with each ED-269 restriction: we hold no authorisations, so only
# NO_RESTRICTION zones are flyable; CONDITIONAL ones are kept out conservatively.
KEEP_OUT_RESTRICTIONS = frozenset({"PROHIBITED", "REQ_AUTHORISATION", "CONDITIONAL"})
KNOWN_RESTRICTIONS = KEEP_OUT_RESTRICTIONS | {"NO_RESTRICTION"}
_DAYS = {"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}
_REASON_CATEGORY = {
    "AIR_TRAFFIC": "airport",
    "SENSITIVE": "other",
    "PRIVACY": "privacy",
    "POPULATION": "other",
    "NATURE": "nature",
    "NOISE": "other",
    "FOREIGN_TERRITORY": "other",
    "EMERGENCY": "tfr",
    "OTHER": "other",
}


def parse_ed269(
    doc: str | bytes | Mapping[str, Any] | list[Any],
    *,
    frame: LocalFrame,
    ground_amsl_m: float,
    source: str = "ED-269",
    max_radius_m: float = 20_000.0,
) -> list[Zone]:
    """Zones of an ED-269 document, in the store's frame; raise Ed269Error listing every problem.

    Each horizontal volume of a zone becomes one Zone (id `identifier` or
    `identifier#k` when a zone is stratified into several volumes). Heights are
    converted to metres above the store's ground; WGS84 ellipsoid heights are
    refused rather than guessed. Schedule times without an offset are UTC, as
    ED-269 publishes them.
    """
    problems = ProblemCollector()
    if isinstance(doc, str | bytes):
        try:
            data: Any = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise Ed269Error(source, [Problem(source, f"not valid JSON: {exc}")]) from None
    else:
        data = doc
    features = data.get("features") if isinstance(data, Mapping) else data
    if not isinstance(features, list):
        raise Ed269Error(source, [Problem(source, "not an ED-269 document: no 'features' list")])
    default_source = str(data.get("title") or source) if isinstance(data, Mapping) else source
    zones: list[Zone] = []
    for i, feat in enumerate(features):
        zones.extend(
            _feature(feat, i, frame, ground_amsl_m, default_source, max_radius_m, problems)
        )
    if problems:
        raise Ed269Error(source, problems.items)
    return zones


def _feature(
    feat: Any,
    i: int,
    frame: LocalFrame,
    ground_amsl_m: float,
    default_source: str,
    max_radius_m: float,
    problems: ProblemCollector,
) -> list[Zone]:
    if not isinstance(feat, Mapping):
        problems.add(f"features[{i}]", "zone is not an object")
        return []
    ident = feat.get("identifier")
    if not isinstance(ident, str) or not ident:
        problems.add(f"features[{i}]", "missing identifier")
        return []
    restriction = feat.get("restriction")
    if restriction not in KNOWN_RESTRICTIONS:
        problems.add(ident, f"unknown restriction {restriction!r}")
        return []
    if restriction == "NO_RESTRICTION":
        return []
    reasons = feat.get("reason") or ["OTHER"]
    if isinstance(reasons, str) or not isinstance(reasons, list):
        problems.add(ident, "reason must be a list of ED-269 reason codes")
        return []
    authority = feat.get("zoneAuthority") or []
    source = default_source
    if isinstance(authority, list) and authority and isinstance(authority[0], Mapping):
        source = str(authority[0].get("name") or default_source)
    schedule = _schedule(ident, feat.get("applicability"), problems)
    volumes = feat.get("geometry")
    if not isinstance(volumes, list) or not volumes:
        problems.add(ident, "no geometry volumes")
        return []
    out: list[Zone] = []
    for k, vol in enumerate(volumes):
        zid = ident if len(volumes) == 1 else f"{ident}#{k}"
        z = _volume(zid, vol, frame, ground_amsl_m, max_radius_m, problems)
        if z is None or schedule is None:
            continue
        geom, circle, floor, ceiling = z
        out.append(
            Zone(
                id=zid,
                name=str(feat.get("name") or ident),
                category=_REASON_CATEGORY.get(str(reasons[0]), "other"),
                source=source,
                reason=f"{restriction}: {', '.join(str(r) for r in reasons)}"
                + (f" ({feat['message']})" if feat.get("message") else ""),
                floor_m=floor,
                ceiling_m=ceiling,
                geometry=geom,
                schedule=schedule,
                circle=circle,
                origin="ed269",
            )
        )
    return out


def _limit(
    zid: str, vol: Mapping[str, Any], side: str, ground: float, p: ProblemCollector
) -> float | None:
    value = vol.get(f"{side}Limit")
    ref = vol.get(f"{side}VerticalReference", "AGL")
    unit = str(vol.get("uomDimensions", "M")).upper()
    if unit not in ("M", "FT"):
        p.add(zid, f"uomDimensions {unit!r} is not M or FT")
        return None
    if value is None:
        # Not stated: the conservative reading is ground / unlimited.
        return 0.0 if side == "lower" else UNLIMITED_M
    if not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        p.add(zid, f"{side}Limit {value!r} is not a finite number")
        return None
    metres = float(value) * (FT_M if unit == "FT" else 1.0)
    if ref == "AGL":
        return metres
    if ref == "AMSL":
        return metres - ground
    p.add(zid, f"{side}VerticalReference {ref!r} is not supported (use AGL or AMSL)")
    return None


def _volume(
    zid: str,
    vol: Any,
    frame: LocalFrame,
    ground: float,
    max_radius_m: float,
    p: ProblemCollector,
) -> tuple[BaseGeometry, Circle | None, float, float] | None:
    if not isinstance(vol, Mapping):
        p.add(zid, "geometry volume is not an object")
        return None
    floor = _limit(zid, vol, "lower", ground, p)
    ceiling = _limit(zid, vol, "upper", ground, p)
    if floor is None or ceiling is None:
        return None
    if floor >= ceiling:
        p.add(zid, f"lowerLimit ({floor:.1f} m) is not below upperLimit ({ceiling:.1f} m)")
        return None
    proj = vol.get("horizontalProjection")
    if not isinstance(proj, Mapping):
        p.add(zid, "missing horizontalProjection")
        return None
    origin = frame.origin
    kind = proj.get("type")
    if kind == "Circle":
        center, radius = proj.get("center"), proj.get("radius")
        if not isinstance(center, list) or not isinstance(radius, int | float) or radius <= 0:
            p.add(zid, "Circle needs center [lon, lat] and radius > 0")
            return None
        msgs = check_positions([center], origin, max_radius_m)
        for m in msgs:
            p.add(zid, m)
        if msgs:
            return None
        unit = str(vol.get("uomDimensions", "M")).upper()
        radius_m = float(radius) * (FT_M if unit == "FT" else 1.0)
        c = LatLon(float(center[1]), float(center[0]))
        x, y = frame.point_to_local(c)
        return circle_polygon(x, y, radius_m), Circle((x, y), c, radius_m), floor, ceiling
    if kind == "Polygon":
        rings = proj.get("coordinates")
        if not isinstance(rings, list):
            p.add(zid, "Polygon needs coordinates")
            return None
        msgs = check_positions([q for r in rings for q in r], origin, max_radius_m)
        for m in msgs:
            p.add(zid, m)
        if msgs:
            return None
        poly = rings_to_polygon(zid, rings, frame, p)
        return None if poly is None else (poly, None, floor, ceiling)
    p.add(zid, f"horizontalProjection type {kind!r} is not supported (Polygon or Circle)")
    return None


def _utc(zid: str, raw: Any, what: str, p: ProblemCollector) -> datetime | None:
    try:
        dt = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        p.add(zid, f"{what} {raw!r} is not an ISO 8601 date-time")
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _time_of_day(zid: str, raw: Any, p: ProblemCollector) -> tuple[time, timezone] | None:
    text = str(raw)
    tz = UTC
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-":
        sign = 1 if text[-6] == "+" else -1
        hh, mm = int(text[-5:-3]), int(text[-2:])
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
        text = text[:-6]
    if text.startswith("24:00"):
        text = "00:00"  # end of day; a window ending at 00:00 wraps to midnight
    try:
        return time.fromisoformat(text), tz
    except ValueError:
        p.add(zid, f"schedule time {raw!r} is not HH:MM[:SS][Z]")
        return None


def _schedule(zid: str, applicability: Any, p: ProblemCollector) -> Schedule | None:
    if applicability is None:
        return Schedule(())
    if isinstance(applicability, Mapping):
        applicability = [applicability]
    if not isinstance(applicability, list):
        p.add(zid, "applicability must be a list")
        return None
    periods: list[Applicability] = []
    ok = True
    for a in applicability:
        if not isinstance(a, Mapping):
            p.add(zid, "applicability entry is not an object")
            return None
        if str(a.get("permanent", "NO")).upper() == "YES":
            # A permanent entry makes the zone always applicable whatever else is listed.
            return Schedule(())
        raw_start, raw_end = a.get("startDateTime"), a.get("endDateTime")
        start = _utc(zid, raw_start, "startDateTime", p) if raw_start else None
        end = _utc(zid, raw_end, "endDateTime", p) if raw_end else None
        if (raw_start and start is None) or (raw_end and end is None):
            ok = False
            continue
        if start and end and start >= end:
            p.add(zid, "startDateTime is not before endDateTime")
            ok = False
        daily: list[DailyWindow] = []
        for s in a.get("schedule") or []:
            days = s.get("day", ["ANY"]) if isinstance(s, Mapping) else None
            if isinstance(days, str):
                days = [days]
            if not isinstance(days, list) or not all(d in _DAYS or d == "ANY" for d in days):
                p.add(zid, f"schedule days {days!r} are not MON..SUN or ANY")
                ok = False
                continue
            assert isinstance(s, Mapping)
            st = _time_of_day(zid, s.get("startTime", "00:00"), p)
            en = _time_of_day(zid, s.get("endTime", "00:00"), p)
            if st is None or en is None:
                ok = False
                continue
            nums = frozenset(range(7)) if "ANY" in days else frozenset(_DAYS[d] for d in days)
            if st[0] == en[0]:
                # ED-269 writes whole days as 00:00-00:00 (or 00:00-24:00).
                daily.append(DailyWindow(nums, time(0), time(0), st[1]))
            else:
                daily.append(DailyWindow(nums, st[0], en[0], st[1]))
        periods.append(Applicability(start, end, tuple(daily)))
    if not ok:
        return None
    return Schedule(tuple(periods))
