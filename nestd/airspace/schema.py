"""Pydantic models of the store geofence file (GeoJSON FeatureCollection, WGS84)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FORMAT_VERSION = 1

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    # Unknown properties are errors: a typo like "celing_m" must not silently
    # become "no ceiling".
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class AltRef(StrEnum):
    """What an altitude limit is measured from."""

    AGL = "AGL"
    AMSL = "AMSL"


class Weekday(StrEnum):
    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"


ALL_DAYS: tuple[Weekday, ...] = tuple(Weekday)


class ZoneCategory(StrEnum):
    AIRPORT = "airport"
    HELIPORT = "heliport"
    HOSPITAL = "hospital"
    SCHOOL = "school"
    STADIUM = "stadium"
    PRISON = "prison"
    TFR = "tfr"
    POWER = "power"
    MILITARY = "military"
    NATURE = "nature"
    PRIVACY = "privacy"
    OTHER = "other"


class DailyWindowModel(_Strict):
    """Recurring hours, in the store's local timezone; end before start runs past midnight."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(ALL_DAYS),
        description="Weekdays on which the window starts (default every day).",
    )
    start: str = Field(description="Local start time, HH:MM (24 h).", examples=["07:30"])
    end: str = Field(description="Local end time, HH:MM (24 h), exclusive.", examples=["16:00"])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"time {v!r} is not HH:MM (00:00-23:59)")
        return v

    @field_validator("days")
    @classmethod
    def _some_days(cls, v: list[Weekday]) -> list[Weekday]:
        if not v:
            raise ValueError("days is empty; omit it for every day")
        return v


class StoreModel(_Strict):
    id: str = Field(min_length=1, description="Store identifier, used in MQTT topics.")
    name: str = Field(min_length=1)
    timezone: str = Field(description="IANA timezone for daily windows, e.g. America/Chicago.")
    ground_amsl_m: float = Field(
        description="Ground elevation at the nest, metres above mean sea level. "
        "Terrain is taken as flat at this elevation across the operating area."
    )
    max_radius_m: float = Field(
        default=20_000.0,
        gt=0,
        description="Any coordinate further than this from the nest is an error "
        "(catches swapped lat/lon).",
    )
    ed269_imports: list[str] = Field(
        default_factory=list,
        description="ED-269 zone documents, relative to this file, merged as keep-outs.",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {v!r}") from None
        return v


class PolygonGeometry(_Strict):
    type: Literal["Polygon"]
    coordinates: list[list[list[float]]] = Field(
        description="Rings of [lon, lat] positions; first ring outer, others holes; closed."
    )


class MultiPolygonGeometry(_Strict):
    type: Literal["MultiPolygon"]
    coordinates: list[list[list[list[float]]]]


class PointGeometry(_Strict):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[lon, lat]")


Geometry = Annotated[
    PolygonGeometry | MultiPolygonGeometry | PointGeometry, Field(discriminator="type")
]


class _Named(_Strict):
    id: str = Field(min_length=1, description="Unique within the file.")
    name: str = Field(min_length=1)


class KeepInProps(_Named):
    kind: Literal["keep_in"]
    ceiling_m: float = Field(default=120.0, description="Top of the operating area.")
    ceiling_ref: AltRef = AltRef.AGL
    source: str | None = None
    reason: str | None = None


class KeepOutProps(_Named):
    kind: Literal["keep_out"]
    category: ZoneCategory = ZoneCategory.OTHER
    source: str = Field(min_length=1, description="Where the zone comes from (authority, chart).")
    reason: str = Field(min_length=1, description="Why it is a no-fly zone.")
    floor_m: float = Field(default=0.0, description="Bottom of the zone.")
    floor_ref: AltRef = AltRef.AGL
    ceiling_m: float | None = Field(default=None, description="Top of the zone; null = unlimited.")
    ceiling_ref: AltRef = AltRef.AGL
    radius_m: float | None = Field(
        default=None, description="Circle radius; required with a Point geometry."
    )
    active_from: datetime | None = Field(
        default=None, description="ISO 8601 with UTC offset; zone inactive before."
    )
    active_to: datetime | None = Field(
        default=None, description="ISO 8601 with UTC offset; zone inactive from then on."
    )
    daily: list[DailyWindowModel] = Field(
        default_factory=list,
        description="Recurring local hours when the zone is active; empty = all day.",
    )


class NestProps(_Named):
    kind: Literal["nest"]


class PadProps(_Named):
    kind: Literal["pad"]


class SafeLandingProps(_Named):
    kind: Literal["safe_landing"]
    rally_alt_agl_m: float | None = Field(
        default=None, gt=0, description="Altitude to approach at; default the lowest layer."
    )


Properties = Annotated[
    KeepInProps | KeepOutProps | NestProps | PadProps | SafeLandingProps,
    Field(discriminator="kind"),
]


class FeatureModel(_Strict):
    type: Literal["Feature"]
    id: str | int | None = Field(default=None, description="Optional; properties.id is used.")
    geometry: Geometry
    properties: Properties


class StoreFileModel(_Strict):
    """A store's airspace file. `store` is a GeoJSON foreign member (RFC 7946 section 6.1)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    type: Literal["FeatureCollection"]
    format: Literal[1] = Field(default=1, description="nestd geofence format version.")
    store: StoreModel
    features: list[FeatureModel]


def json_schema() -> dict[str, Any]:
    """The JSON Schema shipped as geofences/store-airspace.schema.json."""
    schema = StoreFileModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nestd store airspace (GeoJSON FeatureCollection)"
    return schema


def describe_validation_error(err: ValidationError) -> list[str]:
    """Turn pydantic's errors into short sentences naming the offending property."""
    out: list[str] = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        # Discriminated unions insert the tag into the path; drop it for readability.
        loc = [p for p in loc if p not in _UNION_TAGS]
        where = ".".join(loc) or "feature"
        if e["type"] == "extra_forbidden":
            out.append(f"unknown property {loc[-1]!r} (at {where})")
        elif e["type"] == "missing":
            out.append(f"missing required property {where!r}")
        elif e["type"] in ("finite_number",):
            out.append(f"{where} is NaN or infinite")
        else:
            out.append(f"{where}: {e['msg']}")
    return out


_UNION_TAGS = {
    "Polygon",
    "MultiPolygon",
    "Point",
    "keep_in",
    "keep_out",
    "nest",
    "pad",
    "safe_landing",
}
