"""Named pre-flight checks before arming, each a pass or fail with a reason, on plain inputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from nestd.airspace import LatLon, distance_m
from nestd.safety.airframe import Airframe
from nestd.safety.energy import EnergyDecision
from nestd.safety.wind import WindStatus

# MAVLink values copied here so the domain needs no pymavlink (checked against it in tests).
GPS_FIX_TYPE_3D = 3
MAV_LANDED_STATE_ON_GROUND = 1


class PreflightLimits(BaseModel):
    """Thresholds for the pre-flight checks; SITL-friendly defaults."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    min_fix_type: int = Field(GPS_FIX_TYPE_3D, ge=0, description="GPS_FIX_TYPE: 3 = 3D fix.")
    min_satellites: int = Field(10, ge=0, description="Satellites used in the fix.")
    max_hdop: float = Field(1.5, gt=0, description="Horizontal dilution of precision.")
    min_battery_pct: float = Field(
        20.0, ge=0, le=100, description="Floor on reported charge, whatever the energy plan."
    )
    min_battery_voltage_v: float | None = Field(
        None, description="Pack voltage floor at rest, V; None skips (cell count unknown)."
    )
    min_battery_temp_c: float = Field(5.0, description="Cold packs sag under load, degC.")
    max_battery_temp_c: float = Field(50.0, description="Hot packs age and can vent, degC.")
    max_from_pad_m: float = Field(
        5.0, gt=0, description="The vehicle must stand this close to its assigned pad, m."
    )
    max_home_from_pad_m: float = Field(
        5.0, gt=0, description="Home (where RTL lands) must be this close to the pad, m."
    )
    max_link_silence_s: float = Field(2.0, gt=0, description="Longest silence from the vehicle.")
    max_link_loss_ratio: float = Field(0.1, ge=0, le=1, description="Recent packet loss share.")
    param_abs_tolerance: float = Field(
        1e-3, ge=0, description="Parameters travel as float32; this much difference is equal."
    )


class CheckName(StrEnum):
    GPS = "gps"
    ESTIMATOR = "estimator"
    BATTERY_STATE = "battery_state"
    BATTERY_ENERGY = "battery_energy"
    DISARMED_ON_GROUND = "disarmed_on_ground"
    ON_PAD = "on_pad"
    HOME = "home"
    ARMABLE = "armable"
    LINK = "link"
    FAILSAFE_PARAMS = "failsafe_params"
    UPLOADS_MATCH = "uploads_match"
    WIND = "wind"
    PAYLOAD = "payload"
    AIRSPACE = "airspace"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: CheckName
    passed: bool
    reason: str


# -- inputs: field names follow nestd.mavlink.state so the service layer copies them over --


@dataclass(frozen=True, slots=True)
class GpsInfo:
    fix_type: int | None = None
    satellites: int | None = None
    hdop: float | None = None


@dataclass(frozen=True, slots=True)
class BatteryInfo:
    remaining_pct: float | None = None
    voltage_v: float | None = None
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """From nestd.mavlink.health.HealthSnapshot."""

    silent_s: float | None = None
    loss_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class VehicleSnapshot:
    """What the vehicle reports now; None means it hasn't said."""

    armed: bool | None = None
    landed_state: int | None = None
    position: LatLon | None = None
    home: LatLon | None = None
    gps: GpsInfo = field(default_factory=GpsInfo)
    battery: BatteryInfo = field(default_factory=BatteryInfo)
    link: LinkInfo = field(default_factory=LinkInfo)
    estimator_healthy: bool | None = None
    """EKF / estimator status flags all good (ESTIMATOR_STATUS, EKF_STATUS_REPORT)."""
    prearm_ok: bool | None = None
    """The autopilot's own pre-arm checks pass (SYS_STATUS MAV_SYS_STATUS_PREARM_CHECK)."""
    params: Mapping[str, float] = field(default_factory=dict)
    """Parameters as read back from the vehicle (raw, as the firmware stores them)."""
    onboard_hashes: Mapping[str, str] = field(default_factory=dict)
    """Hashes of the mission, fence and rally plans read back from the vehicle."""


@dataclass(frozen=True, slots=True)
class FlightIntent:
    """What we mean to fly, and what the other safety parts already decided about it."""

    pad: LatLon
    payload_kg: float
    energy: EnergyDecision | None
    wind: WindStatus | None
    required_params: Mapping[str, float] = field(default_factory=dict)
    """The profile's failsafe parameters (datalink loss, geofence, battery, RTL altitude)."""
    uploaded_hashes: Mapping[str, str] = field(default_factory=dict)
    """Hashes of what we uploaded, by plan kind ("mission", "fence", "rally")."""
    airspace_violations: Sequence[str] = ()
    """Problems validate_mission found for the planned time window; empty when legal."""


# -- the checks -------------------------------------------------------------------------


def _ok(name: CheckName, reason: str) -> CheckResult:
    return CheckResult(name, True, reason)


def _fail(name: CheckName, reason: str) -> CheckResult:
    return CheckResult(name, False, reason)


def check_gps(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    g, n = v.gps, CheckName.GPS
    if g.fix_type is None or g.satellites is None or g.hdop is None:
        return _fail(n, "no GPS report")
    if g.fix_type < lim.min_fix_type:
        return _fail(n, f"fix type {g.fix_type}, need {lim.min_fix_type}")
    if g.satellites < lim.min_satellites:
        return _fail(n, f"{g.satellites} satellites, need {lim.min_satellites}")
    if not g.hdop <= lim.max_hdop:
        return _fail(n, f"hdop {g.hdop:.2f} over {lim.max_hdop:.2f}")
    return _ok(n, f"fix {g.fix_type}, {g.satellites} satellites, hdop {g.hdop:.2f}")


def check_estimator(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    if v.estimator_healthy is None:
        return _fail(CheckName.ESTIMATOR, "estimator health not reported")
    if not v.estimator_healthy:
        return _fail(CheckName.ESTIMATOR, "estimator reports a fault")
    return _ok(CheckName.ESTIMATOR, "estimator healthy")


def check_battery_state(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    b, n = v.battery, CheckName.BATTERY_STATE
    if b.remaining_pct is None:
        return _fail(n, "battery charge not reported")
    if b.remaining_pct < lim.min_battery_pct:
        return _fail(n, f"battery {b.remaining_pct:.0f}%, floor {lim.min_battery_pct:.0f}%")
    if lim.min_battery_voltage_v is not None and (
        b.voltage_v is None or b.voltage_v < lim.min_battery_voltage_v
    ):
        return _fail(n, f"battery voltage {b.voltage_v} V, floor {lim.min_battery_voltage_v} V")
    t = b.temperature_c
    # Many packs report no temperature; that is not a fault, a reading out of range is.
    if t is not None and not lim.min_battery_temp_c <= t <= lim.max_battery_temp_c:
        return _fail(
            n,
            f"battery {t:.0f} degC, outside {lim.min_battery_temp_c:.0f}.."
            f"{lim.max_battery_temp_c:.0f} degC",
        )
    return _ok(n, f"battery {b.remaining_pct:.0f}%")


def check_battery_energy(intent: FlightIntent) -> CheckResult:
    e, n = intent.energy, CheckName.BATTERY_ENERGY
    if e is None:
        return _fail(n, "no energy plan")
    if not e.go:
        why = "; ".join(r.message for r in e.reasons) or e.verdict.value
        return _fail(n, f"{e.verdict.value}: {why}")
    return _ok(n, f"margin {e.margin_wh:.1f} Wh over reserve and contingency")


def check_disarmed_on_ground(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    n = CheckName.DISARMED_ON_GROUND
    if v.armed is None:
        return _fail(n, "arming state not reported")
    if v.armed:
        return _fail(n, "vehicle is already armed")
    # Vehicles without EXTENDED_SYS_STATE never report landed state; disarmed is then enough.
    if v.landed_state is not None and v.landed_state != MAV_LANDED_STATE_ON_GROUND:
        return _fail(n, f"landed state {v.landed_state}, not on the ground")
    return _ok(n, "disarmed on the ground")


def check_on_pad(v: VehicleSnapshot, intent: FlightIntent, lim: PreflightLimits) -> CheckResult:
    n = CheckName.ON_PAD
    if v.position is None:
        return _fail(n, "no position")
    d = distance_m(v.position, intent.pad)
    if d > lim.max_from_pad_m:
        return _fail(n, f"{d:.1f} m from its pad, limit {lim.max_from_pad_m:.1f} m")
    return _ok(n, f"{d:.1f} m from its pad")


def check_home(v: VehicleSnapshot, intent: FlightIntent, lim: PreflightLimits) -> CheckResult:
    n = CheckName.HOME
    if v.home is None:
        return _fail(n, "home not set")
    d = distance_m(v.home, intent.pad)
    if d > lim.max_home_from_pad_m:
        return _fail(n, f"home is {d:.1f} m from the pad, limit {lim.max_home_from_pad_m:.1f} m")
    return _ok(n, f"home {d:.1f} m from the pad")


def check_armable(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    if v.prearm_ok is None:
        return _fail(CheckName.ARMABLE, "pre-arm status not reported")
    if not v.prearm_ok:
        return _fail(CheckName.ARMABLE, "the autopilot's pre-arm checks fail")
    return _ok(CheckName.ARMABLE, "pre-arm checks pass")


def check_link(v: VehicleSnapshot, lim: PreflightLimits) -> CheckResult:
    link, n = v.link, CheckName.LINK
    if link.silent_s is None:
        return _fail(n, "never heard from the vehicle")
    if link.silent_s > lim.max_link_silence_s:
        return _fail(n, f"silent for {link.silent_s:.1f} s")
    if link.loss_ratio is not None and link.loss_ratio > lim.max_link_loss_ratio:
        return _fail(n, f"{link.loss_ratio:.0%} packet loss")
    return _ok(n, "link healthy")


def check_failsafe_params(
    v: VehicleSnapshot, intent: FlightIntent, lim: PreflightLimits
) -> CheckResult:
    n = CheckName.FAILSAFE_PARAMS
    wrong: list[str] = []
    for name, want in sorted(intent.required_params.items()):
        have = v.params.get(name)
        if have is None:
            wrong.append(f"{name} not read")
        elif not math.isclose(have, want, rel_tol=1e-6, abs_tol=lim.param_abs_tolerance):
            wrong.append(f"{name}={have:g}, need {want:g}")
    if wrong:
        return _fail(n, "; ".join(wrong))
    return _ok(n, f"{len(intent.required_params)} failsafe parameters as required")


def check_uploads_match(v: VehicleSnapshot, intent: FlightIntent) -> CheckResult:
    n = CheckName.UPLOADS_MATCH
    if not intent.uploaded_hashes:
        return _fail(n, "nothing uploaded")
    wrong = [
        kind
        for kind, h in sorted(intent.uploaded_hashes.items())
        if v.onboard_hashes.get(kind) != h
    ]
    if wrong:
        return _fail(n, f"read-back differs from the upload: {', '.join(wrong)}")
    return _ok(n, f"read-back matches: {', '.join(sorted(intent.uploaded_hashes))}")


def check_wind(intent: FlightIntent) -> CheckResult:
    w, n = intent.wind, CheckName.WIND
    if w is None:
        return _fail(n, "no wind state")
    if not w.launches_allowed:
        return _fail(n, f"{w.state.value}: {w.reason}")
    return _ok(n, w.reason)


def check_payload(intent: FlightIntent, airframe: Airframe) -> CheckResult:
    p, n = intent.payload_kg, CheckName.PAYLOAD
    if not (math.isfinite(p) and p >= 0):
        return _fail(n, f"payload {p} kg is not a mass")
    if p > airframe.max_payload_kg:
        return _fail(n, f"payload {p:.2f} kg over the {airframe.max_payload_kg:.2f} kg limit")
    return _ok(n, f"payload {p:.2f} kg")


def check_airspace(intent: FlightIntent) -> CheckResult:
    if intent.airspace_violations:
        return _fail(CheckName.AIRSPACE, "; ".join(intent.airspace_violations))
    return _ok(CheckName.AIRSPACE, "route legal for the planned time window")


@dataclass(frozen=True, slots=True)
class PreflightReport:
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def result(self, name: CheckName) -> CheckResult:
        for r in self.results:
            if r.name is name:
                return r
        raise KeyError(name)


_Check = Callable[[VehicleSnapshot, FlightIntent, Airframe, PreflightLimits], CheckResult]

# Every check runs, even after a failure: the operator sees all reasons at once.
CHECKS: tuple[tuple[CheckName, _Check], ...] = (
    (CheckName.GPS, lambda v, i, a, lim: check_gps(v, lim)),
    (CheckName.ESTIMATOR, lambda v, i, a, lim: check_estimator(v, lim)),
    (CheckName.BATTERY_STATE, lambda v, i, a, lim: check_battery_state(v, lim)),
    (CheckName.BATTERY_ENERGY, lambda v, i, a, lim: check_battery_energy(i)),
    (CheckName.DISARMED_ON_GROUND, lambda v, i, a, lim: check_disarmed_on_ground(v, lim)),
    (CheckName.ON_PAD, lambda v, i, a, lim: check_on_pad(v, i, lim)),
    (CheckName.HOME, lambda v, i, a, lim: check_home(v, i, lim)),
    (CheckName.ARMABLE, lambda v, i, a, lim: check_armable(v, lim)),
    (CheckName.LINK, lambda v, i, a, lim: check_link(v, lim)),
    (CheckName.FAILSAFE_PARAMS, lambda v, i, a, lim: check_failsafe_params(v, i, lim)),
    (CheckName.UPLOADS_MATCH, lambda v, i, a, lim: check_uploads_match(v, i)),
    (CheckName.WIND, lambda v, i, a, lim: check_wind(i)),
    (CheckName.PAYLOAD, lambda v, i, a, lim: check_payload(i, a)),
    (CheckName.AIRSPACE, lambda v, i, a, lim: check_airspace(i)),
)


def run_preflight(
    vehicle: VehicleSnapshot,
    intent: FlightIntent,
    airframe: Airframe,
    limits: PreflightLimits | None = None,
    *,
    skip: frozenset[CheckName] = frozenset(),
) -> PreflightReport:
    """Run every check not in `skip`; a vehicle may arm only if the report `passed`."""
    lim = limits or PreflightLimits()
    return PreflightReport(
        tuple(fn(vehicle, intent, airframe, lim) for name, fn in CHECKS if name not in skip)
    )
