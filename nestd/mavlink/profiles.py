"""Firmware profiles: what differs between autopilot families, loaded and validated from TOML."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pymavlink.dialects.v20 import ardupilotmega as _mav

from nestd.mavlink.errors import ProfileError

UINT32_MAX = 0xFFFFFFFF

# A MAVLink parameter id is at most 16 characters; autopilots use upper case, digits, '_'.
ParamName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")]
ModeName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_.]*$", max_length=32)]


def _enum_value(prefix: str, name: str) -> int | None:
    value = getattr(_mav, prefix + name, None)
    return value if isinstance(value, int) else None


def message_id(name: str) -> int | None:
    """The id of a message in the ardupilotmega dialect (a superset of common), or None."""
    return _enum_value("MAVLINK_MSG_ID_", name)


class _Strict(BaseModel):
    # strict: a "2" where a number belongs is a typo in a safety file, not something to coerce.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Mode(_Strict):
    name: ModeName = Field(description="The firmware's own mode name, e.g. AUTO.MISSION or GUIDED.")
    custom_mode: int = Field(
        ge=0, le=UINT32_MAX, description="HEARTBEAT.custom_mode / DO_SET_MODE param2 value."
    )
    description: str = Field("", description="What the mode does, for people.")


class ModeRoles(_Strict):
    """Which mode the daemon uses for each job; every value must name a mode in `modes`."""

    hold: ModeName = Field(description="Stop and hold position in the air.")
    mission: ModeName = Field(description="Fly the uploaded mission.")
    rtl: ModeName = Field(description="Return to home or the nearest rally point and land.")
    land: ModeName = Field(description="Land where the vehicle is.")
    takeoff: ModeName = Field(description="The mode the vehicle is in while taking off.")
    guided: ModeName = Field(description="The mode a 'go to this point' command flies in.")


TakeoffStep = Literal["set_mode", "arm", "nav_takeoff"]


class Takeoff(_Strict):
    steps: list[TakeoffStep] = Field(
        min_length=2, description="In order: what the daemon sends to get the vehicle airborne."
    )
    mode: ModeName | None = Field(
        None, description="Mode to enter first when steps include set_mode (e.g. GUIDED)."
    )
    altitude_frame: Literal["amsl", "relative"] = Field(
        description="What NAV_TAKEOFF param7 means: metres AMSL or metres above home."
    )
    needs_position_mode: bool = Field(
        True, description="The vehicle must be in a position-holding mode to take off."
    )

    @model_validator(mode="after")
    def _steps_make_sense(self) -> Takeoff:
        if "arm" not in self.steps or "nav_takeoff" not in self.steps:
            raise ValueError("steps must include 'arm' and 'nav_takeoff'")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError("steps must not repeat")
        if ("set_mode" in self.steps) != (self.mode is not None):
            raise ValueError("'mode' is required exactly when steps include 'set_mode'")
        return self


class MissionQuirks(_Strict):
    seq0_is_home: bool = Field(
        description="Mission item 0 is the home position: upload a placeholder at seq 0, and "
        "the first real item is seq 1."
    )
    request_message: Literal["MISSION_REQUEST_INT", "MISSION_REQUEST"] = Field(
        description="What the vehicle sends to ask for items during an upload; answer with "
        "MISSION_ITEM_INT either way."
    )
    start_methods: list[Literal["mission_start", "set_mode"]] = Field(
        min_length=1,
        description="Ways to start the mission, preferred first: MAV_CMD_MISSION_START, or "
        "DO_SET_MODE to the mission role's mode.",
    )
    ground_start_methods: list[Literal["mission_start", "set_mode"]] = Field(
        description="Which start_methods also work for an armed vehicle still on the ground; "
        "empty: take off (see [takeoff]) before starting the mission."
    )
    ground_start_needs_takeoff_item: bool = Field(
        description="A ground start only leaves the ground if the first item is NAV_TAKEOFF."
    )

    @model_validator(mode="after")
    def _ground_methods_are_start_methods(self) -> MissionQuirks:
        extra = [m for m in self.ground_start_methods if m not in self.start_methods]
        if extra:
            raise ValueError(f"ground_start_methods {extra} are not in start_methods")
        return self

    @property
    def can_start_on_ground(self) -> bool:
        return bool(self.ground_start_methods)


class Goto(_Strict):
    method: Literal["do_reposition", "set_position_target_global_int"] = Field(
        description="How to send the vehicle to a point: MAV_CMD_DO_REPOSITION (COMMAND_INT) "
        "or SET_POSITION_TARGET_GLOBAL_INT in the guided role's mode."
    )
    altitude_frame: Literal["amsl", "relative"] = Field(
        description="The altitude frame the daemon uses for goto targets."
    )


class ParamRef(_Strict):
    """One autopilot parameter and how to read its value in SI."""

    name: ParamName = Field(description="Parameter id as the autopilot spells it.")
    unit: str = Field(description="Unit the autopilot stores it in: m, cm, s, V, mAh, enum, ...")
    scale_to_si: float = Field(
        1.0, gt=0, description="Multiply the stored value by this to get SI (cm -> m: 0.01)."
    )
    values: dict[str, str] = Field(
        default_factory=dict, description="Meaning of each enum value, for logs and people."
    )

    def to_si(self, raw: float) -> float:
        return raw * self.scale_to_si

    def from_si(self, value_si: float) -> float:
        return value_si / self.scale_to_si


class ParamNames(_Strict):
    """The parameters behind the failsafes and limits the daemon reads and enforces."""

    rtl_altitude: ParamRef = Field(description="Altitude above home the return flies at.")
    geofence_action: ParamRef = Field(description="What the vehicle does on a fence breach.")
    geofence_enable: ParamRef | None = Field(
        None, description="Fence on/off switch, where the firmware has one."
    )
    fence_types: ParamRef | None = Field(
        None, description="Which fence kinds are active (bitmask), where the firmware has one."
    )
    datalink_loss_action: ParamRef = Field(description="What the vehicle does on GCS link loss.")
    datalink_loss_timeout: ParamRef = Field(description="Silence before link loss counts.")
    gcs_sysid: ParamRef | None = Field(
        None, description="The one GCS system id whose heartbeats keep the link alive."
    )
    battery_low_action: ParamRef = Field(description="Action at the low (or only) battery level.")
    battery_critical_action: ParamRef | None = Field(
        None, description="Action at the critical level, where it has its own parameter."
    )
    battery_low_threshold: ParamRef = Field(description="Low battery level.")
    battery_critical_threshold: ParamRef = Field(description="Critical battery level.")
    battery_emergency_threshold: ParamRef | None = Field(
        None, description="Emergency battery level, where the firmware has one."
    )
    takeoff_altitude: ParamRef | None = Field(
        None, description="Default takeoff altitude when NAV_TAKEOFF carries none."
    )
    cruise_speed: ParamRef = Field(description="Horizontal speed for missions and goto.")


class RecommendedParam(_Strict):
    name: ParamName = Field(description="Parameter id.")
    value: int | float = Field(description="Value as the autopilot stores it (raw, not SI).")
    kind: Literal["int", "float"] = Field(
        description="int: an integer parameter of whatever width the vehicle reports; float: REAL32"
    )
    why: str = Field(min_length=1, description="Why a delivery vehicle needs this value.")

    @model_validator(mode="after")
    def _value_fits_kind(self) -> RecommendedParam:
        if not math.isfinite(self.value):
            raise ValueError("value must be finite")
        if self.kind == "int" and float(self.value) != int(self.value):
            raise ValueError(f"value {self.value} is not an integer but kind is 'int'")
        return self


class FenceLimits(_Strict):
    max_items: int = Field(ge=0, description="Most FENCE items (vertices + circles) it stores.")
    max_vertices_per_polygon: int = Field(ge=3, description="Most vertices in one polygon.")
    max_polygons: int = Field(ge=0, description="Most polygons (inclusion + exclusion).")
    circles_supported: bool = Field(description="Accepts FENCE_CIRCLE_INCLUSION/EXCLUSION items.")
    max_rally_points: int = Field(ge=0, description="Most RALLY items it stores.")
    max_mission_items: int = Field(ge=0, description="Most MISSION items it stores.")

    @model_validator(mode="after")
    def _consistent(self) -> FenceLimits:
        if self.max_vertices_per_polygon > self.max_items:
            raise ValueError("max_vertices_per_polygon is larger than max_items")
        return self


class MessageRate(_Strict):
    message: str = Field(description="Message name in the ardupilotmega dialect.")
    rate_hz: float = Field(ge=0, description="Wanted rate; 0 turns the message off.")

    @field_validator("message")
    @classmethod
    def _known_message(cls, v: str) -> str:
        if message_id(v) is None:
            raise ValueError(f"unknown MAVLink message {v!r}")
        return v

    @property
    def msg_id(self) -> int:
        msg_id = message_id(self.message)
        assert msg_id is not None  # checked on load
        return msg_id

    @property
    def interval_us(self) -> int:
        """MAV_CMD_SET_MESSAGE_INTERVAL param2: -1 disables the message."""
        return -1 if self.rate_hz == 0 else round(1e6 / self.rate_hz)


class DataStreamRate(_Strict):
    stream: str = Field(description="MAV_DATA_STREAM name without the prefix, e.g. EXTRA1.")
    rate_hz: int = Field(ge=0, le=65535, description="REQUEST_DATA_STREAM rate (whole Hz).")

    @field_validator("stream")
    @classmethod
    def _known_stream(cls, v: str) -> str:
        if _enum_value("MAV_DATA_STREAM_", v) is None:
            raise ValueError(f"unknown MAV_DATA_STREAM {v!r}")
        return v

    @property
    def stream_id(self) -> int:
        value = _enum_value("MAV_DATA_STREAM_", self.stream)
        assert value is not None  # checked on load
        return value


class Streams(_Strict):
    streams_by_default: bool = Field(
        description="The firmware streams telemetry before anyone asks (so turn the extras off)."
    )
    intervals_survive_reboot: bool = Field(
        description="SET_MESSAGE_INTERVAL settings outlive a reboot; if not, re-apply them."
    )
    intervals: list[MessageRate] = Field(description="Messages and rates the daemon wants.")
    off: list[str] = Field(
        default_factory=list, description="Messages to turn off (SET_MESSAGE_INTERVAL -1)."
    )
    data_streams: list[DataStreamRate] = Field(
        default_factory=list,
        description="REQUEST_DATA_STREAM fallback for firmware that refuses SET_MESSAGE_INTERVAL.",
    )

    @field_validator("off")
    @classmethod
    def _known_messages(cls, v: list[str]) -> list[str]:
        for name in v:
            if message_id(name) is None:
                raise ValueError(f"unknown MAVLink message {name!r}")
        return v

    @model_validator(mode="after")
    def _no_conflicts(self) -> Streams:
        wanted = [r.message for r in self.intervals]
        dup = _duplicates(wanted)
        if dup:
            raise ValueError(f"intervals list {', '.join(dup)} more than once")
        both = sorted(set(wanted) & set(self.off))
        if both:
            raise ValueError(f"{', '.join(both)} both wanted (intervals) and turned off (off)")
        return self

    @property
    def off_ids(self) -> list[int]:
        return [message_id(n) or 0 for n in self.off]


class FirmwareProfile(_Strict):
    """Everything the daemon needs to know about one autopilot family."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Short id, e.g. px4.")
    description: str = Field(
        description="Which firmware and versions this profile was written for."
    )
    sources: list[str] = Field(min_length=1, description="Where the facts come from.")
    autopilot: str = Field(description="MAV_AUTOPILOT name without the prefix, e.g. PX4.")
    vehicle_types: list[str] = Field(
        min_length=1, description="MAV_TYPE names without the prefix this profile covers."
    )
    param_encoding: Literal["bytewise", "c_cast"] = Field(
        description="How integer parameters travel in PARAM_VALUE's float: bytewise (raw bits) "
        "or c_cast (numeric conversion)."
    )
    modes: list[Mode] = Field(min_length=1, description="Every mode the daemon may meet.")
    roles: ModeRoles
    not_armable_modes: list[ModeName] = Field(
        default_factory=list, description="Modes the vehicle refuses to arm in."
    )
    takeoff: Takeoff
    mission: MissionQuirks
    goto: Goto
    params: ParamNames
    recommended_params: list[RecommendedParam] = Field(
        default_factory=list, description="Failsafe values ensure_params enforces for delivery."
    )
    fence: FenceLimits
    streams: Streams

    _path: Path | None = PrivateAttr(None)
    _name_by_number: dict[int, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        self._name_by_number = {m.custom_mode: m.name for m in self.modes}

    @field_validator("autopilot")
    @classmethod
    def _known_autopilot(cls, v: str) -> str:
        if _enum_value("MAV_AUTOPILOT_", v) is None:
            raise ValueError(f"unknown MAV_AUTOPILOT {v!r}")
        return v

    @field_validator("vehicle_types")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        for name in v:
            if _enum_value("MAV_TYPE_", name) is None:
                raise ValueError(f"unknown MAV_TYPE {name!r}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> FirmwareProfile:
        names = [m.name for m in self.modes]
        dup = _duplicates(names)
        if dup:
            raise ValueError(f"modes: name {', '.join(dup)} appears more than once")
        seen: dict[int, str] = {}
        for m in self.modes:
            if m.custom_mode in seen:
                raise ValueError(
                    f"modes: {m.name} and {seen[m.custom_mode]} share custom_mode {m.custom_mode}"
                )
            seen[m.custom_mode] = m.name
        known = set(names)
        for role, mode in self.roles.model_dump().items():
            if mode not in known:
                raise ValueError(f"roles.{role}: mode {mode!r} is not in modes")
        for mode in self.not_armable_modes:
            if mode not in known:
                raise ValueError(f"not_armable_modes: mode {mode!r} is not in modes")
        if self.takeoff.mode is not None and self.takeoff.mode not in known:
            raise ValueError(f"takeoff.mode: mode {self.takeoff.mode!r} is not in modes")
        if self.takeoff.mode in self.not_armable_modes:
            raise ValueError(f"takeoff.mode: the vehicle can't arm in {self.takeoff.mode}")
        dup = _duplicates([p.name for p in self.recommended_params])
        if dup:
            raise ValueError(f"recommended_params: {', '.join(dup)} set more than once")
        return self

    # -- lookups -------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file this profile was loaded from, if any."""
        return self._path

    @property
    def autopilot_id(self) -> int:
        value = _enum_value("MAV_AUTOPILOT_", self.autopilot)
        assert value is not None  # checked on load
        return value

    @property
    def vehicle_type_ids(self) -> frozenset[int]:
        return frozenset(_enum_value("MAV_TYPE_", n) or 0 for n in self.vehicle_types)

    def covers(self, autopilot: int, vehicle_type: int) -> bool:
        return autopilot == self.autopilot_id and vehicle_type in self.vehicle_type_ids

    def mode_name(self, custom_mode: int) -> str | None:
        """The mode name for a HEARTBEAT custom_mode, or None if this profile doesn't know it."""
        return self._name_by_number.get(custom_mode)

    def custom_mode(self, name: str) -> int:
        """The custom_mode number for a mode name; ValueError names the profile's modes."""
        for m in self.modes:
            if m.name == name:
                return m.custom_mode
        known = ", ".join(m.name for m in self.modes)
        raise ValueError(f"profile {self.name} has no mode {name!r} (known: {known})")

    def role_mode(self, role: str) -> Mode:
        """The Mode for a role name (hold, mission, rtl, land, takeoff, guided)."""
        name = getattr(self.roles, role, None)
        if not isinstance(name, str):
            raise ValueError(f"no mode role {role!r}")
        return next(m for m in self.modes if m.name == name)


def _duplicates(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for x in items:
        if x in seen and x not in dup:
            dup.append(x)
        seen.add(x)
    return dup


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        # Union members add their type name to the location; it only confuses the reader.
        loc = tuple(p for p in e["loc"] if p not in ("int", "float", "ParamRef"))
        msg = e["msg"].removeprefix("Value error, ")
        # Whole-profile checks already start their message with the field they are about.
        lines.append(f"{path}: {_loc(loc)}: {msg}" if loc else f"{path}: {msg}")
    return "\n".join(lines)


def parse_profile(data: dict[str, Any], path: Path) -> FirmwareProfile:
    """Validate already-parsed TOML data; `path` is only used in error messages."""
    try:
        profile = FirmwareProfile.model_validate(data)
    except ValidationError as e:
        raise ProfileError(_format_errors(path, e)) from None
    profile._path = path
    return profile


def load_profile(path: str | Path) -> FirmwareProfile:
    """Load and validate one profile file; ProfileError names the file and the field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such firmware profile file") from None
    except OSError as e:
        raise ProfileError(f"{path}: can't read firmware profile: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text: {e.reason} at byte {e.start}") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib's message carries "(at line N, column M)".
        raise ProfileError(f"{path}: TOML syntax error: {e}") from None
    return parse_profile(data, path)


def load_profiles(directory: str | Path) -> dict[str, FirmwareProfile]:
    """Every `*.toml` profile in a folder, by profile name; names and coverage must not clash."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ProfileError(f"{directory}: firmware profile folder does not exist")
    profiles: dict[str, FirmwareProfile] = {}
    for path in sorted(directory.glob("*.toml")):
        profile = load_profile(path)
        if profile.name in profiles:
            other = profiles[profile.name].path
            raise ProfileError(f"{path}: name: profile {profile.name!r} is also defined in {other}")
        for other_profile in profiles.values():
            if other_profile.autopilot_id == profile.autopilot_id:
                overlap = set(profile.vehicle_types) & set(other_profile.vehicle_types)
                if overlap:
                    raise ProfileError(
                        f"{path}: vehicle_types: {', '.join(sorted(overlap))} already covered "
                        f"for {profile.autopilot} by {other_profile.path}"
                    )
        profiles[profile.name] = profile
    if not profiles:
        raise ProfileError(f"{directory}: no firmware profiles (*.toml) in this folder")
    return profiles


def profile_for(
    autopilot: int, vehicle_type: int, profiles: dict[str, FirmwareProfile]
) -> FirmwareProfile | None:
    """The profile covering a HEARTBEAT's autopilot and type, or None if none does."""
    for profile in profiles.values():
        if profile.covers(autopilot, vehicle_type):
            return profile
    return None
