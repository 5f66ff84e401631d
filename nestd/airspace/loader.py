"""Load and validate a store's geofence file into an Airspace, collecting every problem."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from pydantic import BaseModel, ConfigDict, ValidationError
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from nestd.airspace.airspace import Airspace
from nestd.airspace.errors import AirspaceValidationError, Problem
from nestd.airspace.geo import LatLon, LocalFrame, distance_m
from nestd.airspace.model import (
    DEFAULT_MARGINS,
    UNLIMITED_M,
    Circle,
    KeepIn,
    Margins,
    Site,
    SiteKind,
    StoreInfo,
    Zone,
    circle_polygon,
)
from nestd.airspace.schema import (
    AltRef,
    FeatureModel,
    KeepInProps,
    KeepOutProps,
    NestProps,
    PadProps,
    PointGeometry,
    PolygonGeometry,
    SafeLandingProps,
    StoreModel,
    Weekday,
    describe_validation_error,
)
from nestd.airspace.timewin import Applicability, DailyWindow, Schedule

FILE = "<file>"
MIN_AREA_M2 = 1.0
_WEEKDAY_NUM = {d: i for i, d in enumerate(Weekday)}


class _Top(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: str
    format: int = 1
    store: StoreModel
    features: list[Any]


class ProblemCollector:
    """Problems found so far; loaders keep going and raise them all at the end."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, feature_id: str, problem: str) -> None:
        self.items.append(Problem(feature_id, problem))

    def __bool__(self) -> bool:
        return bool(self.items)


def load_airspace(path: str | Path, margins: Margins = DEFAULT_MARGINS) -> Airspace:
    """Read, validate and compile a store file; raise AirspaceValidationError listing all problems.

    ED-269 documents named in `store.ed269_imports` are read relative to the file.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8-sig")
    return parse_airspace(text, source=str(p), base_dir=p.parent, margins=margins)


def parse_airspace(
    doc: str | bytes | Mapping[str, Any],
    *,
    source: str = "<memory>",
    base_dir: Path | None = None,
    margins: Margins = DEFAULT_MARGINS,
    ed269_docs: Mapping[str, Any] | None = None,
) -> Airspace:
    """Validate and compile a store file given as text or parsed JSON.

    `ed269_docs` maps import names to already-parsed ED-269 documents (for
    updates arriving over MQTT); otherwise imports are read from `base_dir`.
    """
    problems = ProblemCollector()
    if isinstance(doc, str | bytes):
        try:
            data = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise AirspaceValidationError(
                source, [Problem(FILE, f"not valid JSON: {exc}")]
            ) from None
    else:
        data = dict(doc)
    if not isinstance(data, dict):
        raise AirspaceValidationError(source, [Problem(FILE, "top level is not a JSON object")])
    if data.get("type") != "FeatureCollection":
        problems.add(FILE, f"type must be 'FeatureCollection', got {data.get('type')!r}")
    try:
        top = _Top.model_validate(data)
    except ValidationError as exc:
        for msg in describe_validation_error(exc):
            where = "store" if "store" in msg.split(":")[0] else FILE
            problems.add(where, msg)
        raise AirspaceValidationError(source, problems.items) from None
    if top.format != 1:
        problems.add(FILE, f"format {top.format} is not supported (expected 1)")

    features: list[tuple[str, FeatureModel]] = []
    for i, raw in enumerate(top.features):
        fid = _raw_id(raw, i)
        try:
            features.append((fid, FeatureModel.model_validate(raw)))
        except ValidationError as exc:
            for msg in describe_validation_error(exc):
                problems.add(fid, msg)

    for fid, n in Counter(_raw_id(raw, i) for i, raw in enumerate(top.features)).items():
        if n > 1:
            problems.add(fid, f"duplicate id: {n} features use it")

    builder = _Builder(top.store, problems, margins)
    airspace = builder.build(features, source)
    if top.store.ed269_imports and airspace is not None:
        from nestd.airspace.ed269 import parse_ed269

        extra: list[Zone] = []
        for name in top.store.ed269_imports:
            try:
                if ed269_docs is not None and name in ed269_docs:
                    ed_doc: Any = ed269_docs[name]
                elif base_dir is not None:
                    ed_doc = (base_dir / name).read_text(encoding="utf-8-sig")
                else:
                    problems.add("store", f"ed269 import {name!r} given but no base directory")
                    continue
            except OSError as exc:
                problems.add("store", f"cannot read ed269 import {name!r}: {exc.strerror}")
                continue
            try:
                extra.extend(
                    parse_ed269(
                        ed_doc,
                        frame=airspace.frame,
                        ground_amsl_m=top.store.ground_amsl_m,
                        source=name,
                        max_radius_m=top.store.max_radius_m,
                    )
                )
            except AirspaceValidationError as exc:
                problems.items.extend(exc.problems)
        seen = {z.id for z in airspace.zones} | set(builder.ids)
        for z in extra:
            if z.id in seen:
                problems.add(z.id, "duplicate id: an ED-269 zone reuses an id of the store file")
            seen.add(z.id)
        if not problems:
            builder.check_zones_against_sites(extra)
            airspace = Airspace(
                store=airspace.store,
                frame=airspace.frame,
                keep_in=airspace.keep_in,
                zones=[*airspace.zones, *extra],
                nest=airspace.nest,
                pads=airspace.pads,
                safe_landing_sites=airspace.safe_landing_sites,
                margins=margins,
                source=source,
            )
    if problems or airspace is None:
        raise AirspaceValidationError(source, problems.items)
    return airspace


def _raw_id(raw: Any, i: int) -> str:
    if isinstance(raw, dict):
        props = raw.get("properties")
        if isinstance(props, dict) and isinstance(props.get("id"), str) and props["id"]:
            return str(props["id"])
    return f"features[{i}]"


def height_m(value: float, ref: AltRef | str, ground_amsl_m: float) -> float:
    """A limit as metres above the store's ground (terrain taken as flat)."""
    return value if str(ref) == "AGL" else value - ground_amsl_m


def check_positions(
    positions: Sequence[Sequence[float]],
    nest: LatLon | None,
    max_radius_m: float,
) -> list[str]:
    """Coordinate problems: wrong arity, NaN/inf, out of range, far from the store (swapped?)."""
    out: list[str] = []
    for k, pos in enumerate(positions):
        if len(pos) not in (2, 3):
            out.append(f"position {k} has {len(pos)} numbers; expected [lon, lat(, alt)]")
            continue
        lon, lat = float(pos[0]), float(pos[1])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            out.append(f"position {k} is NaN or infinite")
            continue
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            swapped = -180 <= lat <= 180 and -90 <= lon <= 90
            hint = " (looks like lat/lon swapped)" if swapped else ""
            out.append(f"position {k} [{lon}, {lat}] is out of range{hint}")
            continue
        if nest is None:
            continue
        d = distance_m(nest, LatLon(lat, lon))
        if d > max_radius_m:
            hint = ""
            if -90 <= lon <= 90 and distance_m(nest, LatLon(lon, lat)) <= max_radius_m:
                hint = "; looks like lat/lon swapped (GeoJSON is [lon, lat])"
            out.append(
                f"position {k} [{lon}, {lat}] is {d / 1000:.1f} km from the nest, "
                f"beyond max_radius_m={max_radius_m:.0f}{hint}"
            )
            if len(out) >= 5:
                out.append("further positions not checked")
                break
    return out


def rings_to_polygon(
    fid: str,
    rings: Sequence[Sequence[Sequence[float]]],
    frame: LocalFrame,
    problems: ProblemCollector,
) -> BaseGeometry | None:
    """Build one polygon in the local frame, reporting ring and topology problems."""
    ok = True
    if not rings:
        problems.add(fid, "polygon has no rings")
        return None
    for r, ring in enumerate(rings):
        label = "outer ring" if r == 0 else f"hole {r}"
        if len(ring) < 4:
            problems.add(fid, f"{label} has {len(ring)} positions; a closed ring needs at least 4")
            ok = False
        elif list(ring[0][:2]) != list(ring[-1][:2]):
            problems.add(fid, f"{label} is not closed (first position != last position)")
            ok = False
    if not ok:
        return None
    local = [frame.ring_to_local(ring) for ring in rings]
    poly = shapely.Polygon(local[0], local[1:])
    if not poly.is_valid:
        reason = explain_validity(poly)
        if "Self-intersection" in reason or "Ring Self" in reason:
            x, y = _reason_xy(reason)
            where = ""
            if x is not None and y is not None:
                p = frame.point_to_wgs84(x, y)
                where = f" near lat {p.lat_deg:.6f}, lon {p.lon_deg:.6f}"
            problems.add(fid, f"ring is self-intersecting{where}")
        elif "Too few points" in reason:
            problems.add(fid, "ring has too few distinct points")
        else:
            problems.add(fid, f"invalid polygon: {reason}")
        return None
    if poly.area < MIN_AREA_M2:
        problems.add(fid, f"polygon has zero area ({poly.area:.3f} m²)")
        return None
    return poly


def _reason_xy(reason: str) -> tuple[float | None, float | None]:
    try:
        inside = reason[reason.index("[") + 1 : reason.index("]")]
        xs, ys = inside.split()[:2]
        return float(xs), float(ys)
    except (ValueError, IndexError):
        return None, None


class _Builder:
    def __init__(self, store: StoreModel, problems: ProblemCollector, margins: Margins) -> None:
        self.store = store
        self.problems = problems
        self.margins = margins
        self.tz = ZoneInfo(store.timezone)
        self.ids: list[str] = []
        self.nest: Site | None = None
        self.frame: LocalFrame | None = None
        self.keep_in: KeepIn | None = None
        self.sites: list[Site] = []

    def _geometry(self, fid: str, f: FeatureModel) -> BaseGeometry | None:
        assert self.frame is not None
        assert self.nest is not None
        g = f.geometry
        all_pos: list[Sequence[float]]
        if isinstance(g, PointGeometry):
            all_pos = [g.coordinates]
        elif isinstance(g, PolygonGeometry):
            all_pos = [p for ring in g.coordinates for p in ring]
        else:
            all_pos = [p for poly in g.coordinates for ring in poly for p in ring]
        msgs = check_positions(all_pos, self.nest.position, self.store.max_radius_m)
        for m in msgs:
            self.problems.add(fid, m)
        if msgs:
            return None
        if isinstance(g, PointGeometry):
            x, y = self.frame.point_to_local(LatLon(g.coordinates[1], g.coordinates[0]))
            return shapely.Point(x, y)
        if isinstance(g, PolygonGeometry):
            return rings_to_polygon(fid, g.coordinates, self.frame, self.problems)
        polys = [rings_to_polygon(fid, rings, self.frame, self.problems) for rings in g.coordinates]
        if any(p is None for p in polys) or not polys:
            if not polys:
                self.problems.add(fid, "multipolygon has no polygons")
            return None
        multi = shapely.MultiPolygon([p for p in polys if p is not None])
        if not multi.is_valid:
            self.problems.add(fid, f"multipolygon parts overlap: {explain_validity(multi)}")
            return None
        return multi

    def build(self, features: list[tuple[str, FeatureModel]], source: str) -> Airspace | None:
        nests = [(fid, f) for fid, f in features if isinstance(f.properties, NestProps)]
        self.ids = [fid for fid, _ in features]
        if len(nests) != 1:
            self.problems.add(FILE, f"exactly one 'nest' feature is required, found {len(nests)}")
            return None
        nest_id, nest_f = nests[0]
        if not isinstance(nest_f.geometry, PointGeometry):
            self.problems.add(nest_id, "nest must be a Point")
            return None
        bad = check_positions([nest_f.geometry.coordinates], None, math.inf)
        if bad:
            for m in bad:
                self.problems.add(nest_id, m)
            return None
        lon, lat = nest_f.geometry.coordinates[:2]
        origin = LatLon(lat, lon)
        self.frame = LocalFrame(origin)
        self.nest = Site(nest_id, nest_f.properties.name, SiteKind.NEST, origin, (0.0, 0.0))

        keep_in_parts: list[tuple[str, BaseGeometry, float]] = []
        zones: list[Zone] = []
        for fid, f in features:
            props = f.properties
            if isinstance(props, NestProps):
                continue
            geom = self._geometry(fid, f)
            if isinstance(props, KeepInProps):
                if geom is not None and geom.geom_type == "Point":
                    self.problems.add(fid, "keep_in must be a Polygon or MultiPolygon")
                elif geom is not None:
                    ceiling = height_m(props.ceiling_m, props.ceiling_ref, self.store.ground_amsl_m)
                    if ceiling <= 0:
                        self.problems.add(fid, f"keep_in ceiling is {ceiling:.1f} m above ground")
                    keep_in_parts.append((fid, geom, ceiling))
            elif isinstance(props, KeepOutProps):
                zone = self._zone(fid, props, geom)
                if zone is not None:
                    zones.append(zone)
            elif isinstance(props, PadProps | SafeLandingProps):
                if geom is not None and geom.geom_type != "Point":
                    self.problems.add(fid, f"{props.kind} must be a Point")
                elif geom is not None:
                    assert isinstance(f.geometry, PointGeometry)
                    c = f.geometry.coordinates
                    kind = SiteKind.PAD if isinstance(props, PadProps) else SiteKind.SAFE_LANDING
                    rally = props.rally_alt_agl_m if isinstance(props, SafeLandingProps) else None
                    self.sites.append(
                        Site(fid, props.name, kind, LatLon(c[1], c[0]), (geom.x, geom.y), rally)
                    )

        if not keep_in_parts:
            if not any(isinstance(f.properties, KeepInProps) for _, f in features):
                self.problems.add(FILE, "no 'keep_in' feature: the operating area is required")
            return None
        union = shapely.union_all([g for _, g, _ in keep_in_parts])
        self.keep_in = KeepIn(
            ids=tuple(fid for fid, _, _ in keep_in_parts),
            geometry=union,
            ceiling_m=min(c for _, _, c in keep_in_parts),
        )
        if not union.contains(shapely.Point(0.0, 0.0)):
            self.problems.add(self.keep_in.ids[0], f"keep_in does not contain the nest {nest_id!r}")
        for s in self.sites:
            if not union.contains(shapely.Point(*s.xy_m)):
                self.problems.add(s.id, f"{s.kind} is outside the keep_in")
        self.check_zones_against_sites(zones)
        if self.problems:
            return None
        return Airspace(
            store=StoreInfo(
                self.store.id, self.store.name, self.store.timezone, self.store.ground_amsl_m
            ),
            frame=self.frame,
            keep_in=self.keep_in,
            zones=zones,
            nest=self.nest,
            pads=[s for s in self.sites if s.kind is SiteKind.PAD],
            safe_landing_sites=[s for s in self.sites if s.kind is SiteKind.SAFE_LANDING],
            margins=self.margins,
            source=source,
        )

    def check_zones_against_sites(self, zones: Sequence[Zone]) -> None:
        """Permanent zones may not cover the nest, pads or safe landing sites.

        Time-limited zones (a TFR over the store) may: rejecting them would keep
        the old airspace, without the TFR, in force. The router refuses to fly
        while they are active instead.
        """
        assert self.nest is not None
        assert self.keep_in is not None
        ceiling = self.keep_in.ceiling_m
        for z in zones:
            if not z.schedule.always or z.floor_m > ceiling:
                continue
            for s in [self.nest, *self.sites]:
                if z.geometry.covers(shapely.Point(*s.xy_m)):
                    self.problems.add(
                        z.id, f"permanent keep_out covers the {s.kind} {s.id!r} below the ceiling"
                    )

    def _zone(self, fid: str, p: KeepOutProps, geom: BaseGeometry | None) -> Zone | None:
        assert self.frame is not None
        g0 = self.store.ground_amsl_m
        floor = height_m(p.floor_m, p.floor_ref, g0)
        ceiling = UNLIMITED_M if p.ceiling_m is None else height_m(p.ceiling_m, p.ceiling_ref, g0)
        ok = True
        if floor >= ceiling:
            self.problems.add(
                fid,
                f"floor ({p.floor_m} m {p.floor_ref}) is not below ceiling "
                f"({p.ceiling_m} m {p.ceiling_ref})",
            )
            ok = False
        if p.active_from is not None and p.active_from.tzinfo is None:
            self.problems.add(fid, "active_from has no UTC offset")
            ok = False
        if p.active_to is not None and p.active_to.tzinfo is None:
            self.problems.add(fid, "active_to has no UTC offset")
            ok = False
        if ok and p.active_from and p.active_to and p.active_from >= p.active_to:
            self.problems.add(fid, "active_from is not before active_to")
            ok = False
        daily: list[DailyWindow] = []
        for w in p.daily:
            start, end = time.fromisoformat(w.start), time.fromisoformat(w.end)
            if start == end:
                self.problems.add(fid, f"daily window {w.start}-{w.end} is empty")
                ok = False
            days = frozenset(_WEEKDAY_NUM[d] for d in w.days)
            daily.append(DailyWindow(days, start, end, self.tz))
        circle: Circle | None = None
        if geom is not None and geom.geom_type == "Point":
            if p.radius_m is None or not p.radius_m > 0:
                self.problems.add(fid, "a Point keep_out needs radius_m > 0 (a circle)")
                ok = False
            else:
                circle = Circle(
                    (geom.x, geom.y), self.frame.point_to_wgs84(geom.x, geom.y), p.radius_m
                )
                geom = circle_polygon(geom.x, geom.y, p.radius_m)
        elif geom is not None and p.radius_m is not None:
            self.problems.add(fid, "radius_m is only allowed with a Point geometry")
            ok = False
        if geom is None or not ok:
            return None
        schedule = Schedule(())
        if p.active_from or p.active_to or daily:
            schedule = Schedule((Applicability(p.active_from, p.active_to, tuple(daily)),))
        return Zone(
            id=fid,
            name=p.name,
            category=str(p.category),
            source=p.source,
            reason=p.reason,
            floor_m=floor,
            ceiling_m=ceiling,
            geometry=geom,
            schedule=schedule,
            circle=circle,
        )
