"""Energy go/no-go for a planned delivery: per-phase breakdown, reserve, max payload and range."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from nestd.airspace import DeliveryPlan, LatLon, Waypoint, bearing_deg, distance_m
from nestd.airspace.waypoints import AltFrame
from nestd.safety.airframe import GRAVITY_MPS2, Airframe, DeliveryMethod
from nestd.safety.errors import RouteError, SafetyInputError

DEFAULT_CHARGE_POWER_W = 250.0
"""Energy into the battery per hour on the nest's charger (Wh per h); see `ready_in_s`."""

_VERTICAL_ONLY_M = 0.5  # a segment shorter than this horizontally is a pure climb/descent
_ON_GROUND_M = 0.5  # a waypoint this low is on the ground (take-off or touchdown)
# The worst case of a straight out-and-back is searched every 10 degrees.
_HEADINGS = tuple((math.cos(math.radians(d)), math.sin(math.radians(d))) for d in range(0, 360, 10))
_PAYLOAD_RESOLUTION_KG = 1e-5  # a hundredth of a gram: far below any parcel scale


# -- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindVector:
    """Horizontal wind as the air mass's velocity: it moves *towards* north/east (NED, WIND_COV).

    Weather reports give the direction the wind comes *from*; use `from_direction` for those.
    """

    north_mps: float = 0.0
    east_mps: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.north_mps) and math.isfinite(self.east_mps)):
            raise SafetyInputError(f"wind components must be finite: {self!r}")

    @classmethod
    def from_direction(cls, from_deg: float, speed_mps: float) -> WindVector:
        """Wind blowing *from* `from_deg` (clockwise from true north) at `speed_mps`."""
        if not speed_mps >= 0.0:
            raise SafetyInputError(f"wind speed must be >= 0, got {speed_mps}")
        towards = math.radians(from_deg + 180.0)
        return cls(speed_mps * math.cos(towards), speed_mps * math.sin(towards))

    @property
    def speed_mps(self) -> float:
        return math.hypot(self.north_mps, self.east_mps)

    @property
    def from_deg(self) -> float:
        d = math.degrees(math.atan2(-self.east_mps, -self.north_mps)) % 360.0
        return 0.0 if d >= 360.0 else d  # -0.0 rounding to 360.0


CALM = WindVector()


@dataclass(frozen=True, slots=True)
class Segment:
    """One straight piece of the route between two waypoints, geometry precomputed."""

    distance_m: float
    """Horizontal length on the WGS84 ellipsoid."""
    track_deg: float
    """Initial geodesic bearing; a pure climb/descent has 0."""
    start_alt_m: float
    end_alt_m: float
    # North/east unit vector of the track, so an evaluation does no trigonometry.
    track_n: float = 1.0
    track_e: float = 0.0

    @property
    def vertical(self) -> bool:
        return self.distance_m < _VERTICAL_ONLY_M


@dataclass(frozen=True, slots=True)
class EnergyRoute:
    """A delivery's geometry, computed once (geodesy is the slow part) and evaluated many times.

    `outbound` runs from the nest's ground to the delivery waypoint (the hover height for a
    winch, the ground for landing), `inbound` from there back to the nest's ground. Altitudes
    are metres above the nest's ground, as the router plans them.
    """

    outbound: tuple[Segment, ...]
    inbound: tuple[Segment, ...]
    farthest: LatLon
    """The route's point farthest from the nest, where a divert costs most."""
    divert_site: LatLon
    divert: Segment
    """Straight, at cruise altitude, from `farthest` to the nearest safe landing site."""

    @classmethod
    def from_waypoints(
        cls,
        outbound: Sequence[Waypoint],
        inbound: Sequence[Waypoint],
        safe_sites: Sequence[LatLon] = (),
    ) -> EnergyRoute:
        """Build from mission waypoints; the delivery happens where `outbound` ends.

        Without safe sites, the divert goes back to the nest.
        """
        if len(outbound) < 2 or len(inbound) < 2:
            raise RouteError("outbound and inbound need at least two waypoints each")
        wps = [*outbound, *inbound]
        if any(w.frame is not AltFrame.RELATIVE_HOME for w in wps):
            raise RouteError("energy routes take altitudes relative to home (the nest)")
        for w in wps:
            if not (math.isfinite(w.lat_deg) and math.isfinite(w.lon_deg)) or not w.alt_m >= 0:
                raise RouteError(f"waypoint out of range: {w!r}")
        gap_m = distance_m(_ll(outbound[-1]), _ll(inbound[0]))
        if gap_m > 5.0:
            raise RouteError(f"inbound starts {gap_m:.0f} m from where outbound ends")
        nest = _ll(outbound[0])
        far = max((_ll(w) for w in wps), key=lambda p: distance_m(nest, p))
        sites = list(safe_sites) or [nest]
        site = min(sites, key=lambda s: distance_m(far, s))
        cruise_alt_m = max(w.alt_m for w in wps)
        divert = _segment(far, site, cruise_alt_m, cruise_alt_m)
        return cls(_segments(outbound), _segments(inbound), far, site, divert)

    @classmethod
    def from_delivery_plan(
        cls,
        plan: DeliveryPlan,
        delivery_alt_agl_m: float,
        safe_sites: Sequence[LatLon] = (),
    ) -> EnergyRoute:
        """From the airspace router's plan; `delivery_alt_agl_m` from `Airframe.delivery`."""
        wps = plan.to_waypoints(delivery_alt_agl_m)
        # to_waypoints: nest on the ground, the outbound points at cruise, then the delivery
        # waypoint: the split is there, and both halves share it.
        k = 1 + len(plan.outbound.points)
        return cls.from_waypoints(wps[: k + 1], wps[k:], safe_sites)

    @property
    def length_m(self) -> float:
        return sum(s.distance_m for s in (*self.outbound, *self.inbound))


def _ll(w: Waypoint) -> LatLon:
    return LatLon(w.lat_deg, w.lon_deg)


def _segment(a: LatLon, b: LatLon, alt_a: float, alt_b: float) -> Segment:
    d = distance_m(a, b)
    if d < _VERTICAL_ONLY_M:
        return Segment(d, 0.0, alt_a, alt_b)
    trk = bearing_deg(a, b)
    r = math.radians(trk)
    return Segment(d, trk, alt_a, alt_b, math.cos(r), math.sin(r))


def _segments(wps: Sequence[Waypoint]) -> tuple[Segment, ...]:
    return tuple(_segment(_ll(a), _ll(b), a.alt_m, b.alt_m) for a, b in itertools.pairwise(wps))


def battery_energy_from_telemetry(
    airframe: Airframe,
    *,
    remaining_pct: float | None,
    consumed_wh: float | None = None,
) -> float | None:
    """The drone's energy now, from BATTERY_STATUS / SYS_STATUS fields (VehicleState.battery).

    Where both are known the lower wins: the percentage is the autopilot's voltage-based guess,
    consumed energy drifts with current-sensor error, and the plan must survive either.
    """
    guesses = []
    if remaining_pct is not None and math.isfinite(remaining_pct):
        guesses.append(airframe.battery_capacity_wh * min(max(remaining_pct, 0.0), 100.0) / 100)
    if consumed_wh is not None and math.isfinite(consumed_wh):
        guesses.append(max(airframe.battery_capacity_wh - consumed_wh, 0.0))
    return min(guesses) if guesses else None


# -- outputs ----------------------------------------------------------------------------


class Verdict(StrEnum):
    GO = "go"
    NO_GO = "no_go"
    NOT_READY_UNTIL_CHARGED = "not_ready_until_charged"


class NoGoReason(StrEnum):
    PAYLOAD_OVER_MAX = "payload_over_max"
    WIND_OVER_LIMIT = "wind_over_limit"
    NO_HEADWAY = "no_headway"
    EXCEEDS_FULL_BATTERY = "exceeds_full_battery"
    BATTERY_LOW = "battery_low"


@dataclass(frozen=True, slots=True)
class Reason:
    code: NoGoReason
    message: str


class PhaseEnergy(NamedTuple):
    """One row of the breakdown (a tuple: a quote builds a dozen of these per answer)."""

    phase: str
    distance_m: float
    time_s: float
    energy_wh: float
    mass_kg: float
    airspeed_mps: float
    groundspeed_mps: float
    headwind_mps: float = 0.0
    """Wind component against the track (negative: tailwind)."""
    crosswind_mps: float = 0.0


@dataclass(frozen=True, slots=True)
class EnergyDecision:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    phases: tuple[PhaseEnergy, ...]
    """The flight itself, then the contingency divert and the landing reserve."""
    flight_wh: float
    contingency_wh: float
    reserve_wh: float
    available_wh: float
    """Battery energy now, less the part the airframe never plans on."""
    max_payload_kg: float | None
    """Heaviest parcel this route can carry now (battery, wind); None: not even empty."""
    max_range_m: float
    """Farthest straight delivery, out and back, in the worst heading for this wind."""
    ready_in_s: float | None = None
    ready_at_s: float | None = None

    @property
    def go(self) -> bool:
        return self.verdict is Verdict.GO

    @property
    def required_wh(self) -> float:
        return self.flight_wh + self.contingency_wh + self.reserve_wh

    @property
    def margin_wh(self) -> float:
        return self.available_wh - self.required_wh

    def table(self) -> str:
        """The breakdown as fixed-width text, for logs and the CLI."""
        rows = [f"{'phase':<20} {'dist m':>8} {'time s':>8} {'Wh':>8}"]
        rows += [
            f"{p.phase:<20} {p.distance_m:8.0f} {p.time_s:8.1f} {p.energy_wh:8.2f}"
            for p in self.phases
        ]
        rows.append(
            f"{self.verdict.value}: required {self.required_wh:.1f} Wh, "
            f"available {self.available_wh:.1f} Wh, margin {self.margin_wh:+.1f} Wh"
        )
        return "\n".join(rows)


# -- the model --------------------------------------------------------------------------


class _Phase(NamedTuple):
    """A phase's time and speeds; its power is avionics + H(m) * f + m * c + extra_w."""

    name: str
    distance_m: float
    time_s: float
    loaded: bool  # the parcel is aboard
    f: float  # multiplies hover power at the phase's mass (1 + forward gain term)
    c: float  # W per kg: g * climb rate / efficiency
    extra_w: float
    airspeed_mps: float
    groundspeed_mps: float
    headwind_mps: float = 0.0
    crosswind_mps: float = 0.0


def _power_w(af: Airframe, ph: _Phase, mass_kg: float) -> float:
    pm = af.power
    return pm.avionics_power_w + pm.hover_power_w_at(mass_kg) * ph.f + mass_kg * ph.c + ph.extra_w


def _forward_f(af: Airframe, airspeed_mps: float) -> float:
    r = airspeed_mps / af.power.reference_airspeed_mps
    return 1.0 + af.power.forward_power_gain * r * r


def _climb_c(af: Airframe, climb_mps: float) -> float:
    return GRAVITY_MPS2 * max(climb_mps, 0.0) / af.power.climb_efficiency


def solve_groundspeed(
    af: Airframe, seg: Segment, wind: WindVector
) -> tuple[float, float, float, float] | None:
    """(groundspeed, airspeed, headwind, crosswind) holding cruise groundspeed along `seg`.

    Airspeed is capped at the airframe's maximum: against a strong wind the drone goes
    slower over the ground. None when it can't make `min_groundspeed_mps` of headway.
    """
    return _solve(af, seg.track_n, seg.track_e, wind)


def _solve(
    af: Airframe, track_n: float, track_e: float, wind: WindVector
) -> tuple[float, float, float, float] | None:
    tail = wind.north_mps * track_n + wind.east_mps * track_e
    cross = abs(wind.east_mps * track_n - wind.north_mps * track_e)
    v = af.cruise_speed_mps
    air = math.hypot(v - tail, cross)
    if air <= af.max_airspeed_mps:
        return v, air, -tail, cross
    if cross >= af.max_airspeed_mps:
        return None
    root = math.sqrt(af.max_airspeed_mps**2 - cross * cross)
    # |g*u - w| = max airspeed has roots tail -/+ root; cruise lies outside them. Above them the
    # drone slows to the upper root; below them (a tailwind beyond cruise + max airspeed) it
    # is blown along faster than planned, which wind limits forbid long before.
    g = tail + root if v > tail + root else tail - root
    if g < af.min_groundspeed_mps:
        return None
    return g, af.max_airspeed_mps, -tail, cross


def _travel_s(distance_m: float, speed_mps: float, accel_mps2: float) -> float:
    """Time from rest to rest over `distance_m`, accelerating and braking at `accel_mps2`.

    Autopilots stop (or nearly) at each waypoint; flying it all at full speed would under-state
    the time by v/a per leg, the unsafe direction. The whole time is then charged at full-speed
    power, which slightly over-states the energy.
    """
    if distance_m >= speed_mps * speed_mps / accel_mps2:
        return distance_m / speed_mps + speed_mps / accel_mps2
    return 2.0 * math.sqrt(distance_m / accel_mps2)


def _vertical_phases(
    af: Airframe, name: str, seg: Segment, wind_mps: float, loaded: bool
) -> list[_Phase]:
    dz = seg.end_alt_m - seg.start_alt_m
    f = _forward_f(af, wind_mps)  # holding position in wind is flying at the wind's airspeed
    if dz >= 0:
        t = _travel_s(dz, af.climb_speed_mps, af.vertical_accel_mps2)
        return [_Phase(name, 0.0, t, loaded, f, _climb_c(af, af.climb_speed_mps), 0.0, wind_mps, 0)]
    drop = -dz
    slow = 0.0
    if seg.end_alt_m <= _ON_GROUND_M:
        # Autopilots slow down for the last metres of a landing (nestsim: below 8 m).
        slow = min(drop, max(af.slow_landing_height_m - seg.end_alt_m, 0.0))
    t = _travel_s(drop - slow, af.descent_speed_mps, af.vertical_accel_mps2)
    t += slow / af.land_speed_mps
    return [_Phase(name, 0.0, t, loaded, f, 0.0, 0.0, wind_mps, 0.0)]


def _leg_phase(
    af: Airframe, name: str, seg: Segment, wind: WindVector, loaded: bool
) -> _Phase | None:
    sol = solve_groundspeed(af, seg, wind)
    if sol is None:
        return None
    g, air, head, cross = sol
    t = _travel_s(seg.distance_m, g, af.horizontal_accel_mps2)
    dz = seg.end_alt_m - seg.start_alt_m
    if dz != 0.0:
        # A sloping leg: whichever of horizontal and vertical speed limits it sets the time.
        vz = af.climb_speed_mps if dz > 0 else af.descent_speed_mps
        t = max(t, _travel_s(abs(dz), vz, af.vertical_accel_mps2))
    c = _climb_c(af, dz / t) if t > 0 else 0.0
    return _Phase(name, seg.distance_m, t, loaded, _forward_f(af, air), c, 0.0, air, g, head, cross)


def _route_phases(
    af: Airframe, segs: Sequence[Segment], wind: WindVector, loaded: bool, outbound: bool
) -> tuple[list[_Phase], list[str]]:
    """Phases for one half of the route, and the names of legs without headway."""
    cruise = [i for i, s in enumerate(segs) if not s.vertical]
    first = cruise[0] if cruise else len(segs)
    last = cruise[-1] if cruise else -1
    w = wind.speed_mps
    out: list[_Phase] = []
    stuck: list[str] = []
    n = 0
    for i, s in enumerate(segs):
        if not s.vertical:
            n += 1
            name = f"cruise_{'out' if outbound else 'back'}_{n}"
            ph = _leg_phase(af, name, s, wind, loaded)
            if ph is None:
                stuck.append(name)
            else:
                out.append(ph)
            continue
        if i < first:
            name = "takeoff_climb" if outbound else "climb_after_drop"
        elif i > last:
            name = "descent_to_drop" if outbound else "approach_landing"
        else:
            name = "altitude_change_out" if outbound else "altitude_change_back"
        out.extend(_vertical_phases(af, name, s, w, loaded))
    return out, stuck


def _delivery_phases(af: Airframe, wind_mps: float) -> list[_Phase]:
    d = af.delivery
    if d.method is DeliveryMethod.WINCH:
        f = _forward_f(af, wind_mps)
        lower_s = d.winch_hover_height_m / d.winch_rate_mps
        lower_release_s = lower_s + d.release_time_s
        return [
            _Phase("winch_lower_release", 0.0, lower_release_s, True, f, 0.0, 0.0, wind_mps, 0.0),
            _Phase("winch_raise", 0.0, lower_s, False, f, 0.0, 0.0, wind_mps, 0.0),
        ]
    idle_w = af.power.hover_power_w * af.power.ground_idle_fraction
    return [_Phase("ground_release", 0.0, d.ground_time_s, False, 0.0, 0.0, idle_w, 0.0, 0.0)]


class _Sums(NamedTuple):
    """Phases at one mass summed so their energy is a function of that mass alone."""

    t: float  # s
    f: float  # s, weighted by each phase's hover-power factor
    c: float  # J/kg
    extra_j: float

    @classmethod
    def of(cls, phases: Sequence[_Phase]) -> _Sums:
        return cls(
            sum(p.time_s for p in phases),
            sum(p.time_s * p.f for p in phases),
            sum(p.time_s * p.c for p in phases),
            sum(p.time_s * p.extra_w for p in phases),
        )

    def energy_wh(self, af: Airframe, mass_kg: float) -> float:
        pm = af.power
        j = pm.avionics_power_w * self.t + pm.hover_power_w_at(mass_kg) * self.f
        return (j + mass_kg * self.c + self.extra_j) / 3600.0


@dataclass(frozen=True, slots=True)
class _Plan:
    """Every phase for one wind; energy is then a cheap function of the payload."""

    phases: tuple[_Phase, ...]
    divert: tuple[_Phase, ...]
    stuck: tuple[str, ...]
    loaded: _Sums
    divert_sums: _Sums
    unloaded_wh: float


def _plan(af: Airframe, route: EnergyRoute, wind: WindVector) -> _Plan:
    w = wind.speed_mps
    out, stuck_out = _route_phases(af, route.outbound, wind, True, True)
    back, stuck_back = _route_phases(af, route.inbound, wind, False, False)
    phases = [*out, *_delivery_phases(af, w), *back]
    divert: list[_Phase] = []
    stuck = [*stuck_out, *stuck_back]
    if af.reserve.contingency_divert:
        d = route.divert
        if not d.vertical:
            ph = _leg_phase(af, "contingency_divert", d, wind, True)
            if ph is None:
                stuck.append("contingency_divert")
            else:
                divert.append(ph)
        down = Segment(0.0, 0.0, d.end_alt_m, 0.0)
        divert += _vertical_phases(af, "contingency_landing", down, w, True)
    unloaded = _Sums.of([p for p in phases if not p.loaded]).energy_wh(af, af.empty_mass_kg)
    return _Plan(
        tuple(phases),
        tuple(divert),
        tuple(stuck),
        _Sums.of([p for p in phases if p.loaded]),
        _Sums.of(divert),
        unloaded,
    )


def _flight_wh(af: Airframe, plan: _Plan, payload_kg: float) -> float:
    return plan.unloaded_wh + plan.loaded.energy_wh(af, af.empty_mass_kg + payload_kg)


def _divert_wh(af: Airframe, plan: _Plan, payload_kg: float) -> float:
    return plan.divert_sums.energy_wh(af, af.empty_mass_kg + payload_kg)


def _row(af: Airframe, p: _Phase, payload_kg: float) -> PhaseEnergy:
    m = af.empty_mass_kg + (payload_kg if p.loaded else 0.0)
    return PhaseEnergy(
        p.name,
        p.distance_m,
        p.time_s,
        _power_w(af, p, m) * p.time_s / 3600.0,
        m,
        p.airspeed_mps,
        p.groundspeed_mps,
        p.headwind_mps,
        p.crosswind_mps,
    )


def _max_payload(af: Airframe, plan: _Plan, available_wh: float) -> float | None:
    # Flight and divert both carry the parcel, so one sum prices them; energy rises with
    # mass, so bisection finds the heaviest parcel that fits.
    loaded = _Sums(*(a + b for a, b in zip(plan.loaded, plan.divert_sums, strict=True)))
    budget_wh = available_wh - af.landing_reserve_wh - plan.unloaded_wh
    empty = af.empty_mass_kg

    def fits(payload: float) -> bool:
        return loaded.energy_wh(af, empty + payload) <= budget_wh

    if plan.stuck or not fits(0.0):
        return None
    if fits(af.max_payload_kg):
        return af.max_payload_kg
    lo, hi = 0.0, af.max_payload_kg
    while hi - lo > _PAYLOAD_RESOLUTION_KG:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _max_range_m(
    af: Airframe, plan: _Plan, wind: WindVector, payload_kg: float, available_wh: float
) -> float:
    """Farthest straight out-and-back delivery from the nest, in the worst heading.

    The route's own vertical phases, delivery and contingency are kept as they are; only the
    cruise distance changes. Past the ~150 m it takes to reach cruise speed and brake, a
    leg's energy is linear in its length, so the range is solved per heading, not searched.
    """
    full = af.empty_mass_kg + payload_kg
    empty = af.empty_mass_kg
    spare_wh = available_wh - _divert_wh(af, plan, payload_kg) - af.landing_reserve_wh
    spare_wh -= sum(_row(af, p, payload_kg).energy_wh for p in plan.phases if p.distance_m == 0)

    pm = af.power
    hover_full, hover_empty = pm.hover_power_w_at(full), pm.hover_power_w_at(empty)
    accel, avionics = af.horizontal_accel_mps2, pm.avionics_power_w
    k_fwd = pm.forward_power_gain / pm.reference_airspeed_mps**2
    best = math.inf
    for n, e in _HEADINGS:
        out = _solve(af, n, e, wind)
        back = _solve(af, -n, -e, wind)
        if out is None or back is None:
            return 0.0
        p_out = avionics + hover_full * (1.0 + k_fwd * out[1] * out[1])
        p_back = avionics + hover_empty * (1.0 + k_fwd * back[1] * back[1])
        # A leg of length L takes L / g + g / a (see _travel_s): linear in L.
        per_m_wh = (p_out / out[0] + p_back / back[0]) / 3600.0
        const_wh = (p_out * out[0] + p_back * back[0]) / accel / 3600.0
        best = min(best, (spare_wh - const_wh) / per_m_wh)
    return max(best, 0.0)


def evaluate_energy(
    airframe: Airframe,
    route: EnergyRoute,
    *,
    wind: WindVector,
    payload_kg: float,
    battery_energy_wh: float,
    charge_power_w: float = DEFAULT_CHARGE_POWER_W,
    now_s: float | None = None,
    with_limits: bool = True,
) -> EnergyDecision:
    """Go/no-go for flying `route` now with this parcel, wind and battery.

    `battery_energy_wh` is the drone's current energy from telemetry. Required energy is the
    flight plus the contingency divert plus the fixed landing reserve; the battery's unusable
    share is never counted as available. A drone that would be a go on a full battery is
    "not ready until charged", with the time to charge at `charge_power_w` (constant power:
    the taper of the last few percent is ignored, so the estimate is slightly early).
    `with_limits=False` skips max payload and range when only the verdict is wanted.
    """
    af = airframe
    if not (payload_kg >= 0.0 and math.isfinite(payload_kg)):
        raise SafetyInputError(f"payload must be a finite mass >= 0 kg, got {payload_kg}")
    if not math.isfinite(battery_energy_wh):
        raise SafetyInputError(f"battery energy must be finite, got {battery_energy_wh}")
    if not charge_power_w > 0.0:
        raise SafetyInputError(f"charge power must be > 0 W, got {charge_power_w}")
    plan = _plan(af, route, wind)
    rows = [_row(af, p, payload_kg) for p in plan.phases]
    rows += [_row(af, p, payload_kg) for p in plan.divert]
    reserve_wh = af.landing_reserve_wh
    rows.append(PhaseEnergy("landing_reserve", 0.0, 0.0, reserve_wh, af.empty_mass_kg, 0, 0))
    flight_wh = _flight_wh(af, plan, payload_kg)
    contingency_wh = _divert_wh(af, plan, payload_kg)
    required_wh = flight_wh + contingency_wh + reserve_wh
    available_wh = max(battery_energy_wh, 0.0) - af.unusable_energy_wh

    reasons: list[Reason] = []
    if payload_kg > af.max_payload_kg:
        reasons.append(
            Reason(
                NoGoReason.PAYLOAD_OVER_MAX,
                f"payload {payload_kg:.2f} kg is over the airframe's {af.max_payload_kg:.2f} kg",
            )
        )
    if wind.speed_mps > af.max_wind_sustained_mps:
        reasons.append(
            Reason(
                NoGoReason.WIND_OVER_LIMIT,
                f"wind {wind.speed_mps:.1f} m/s is over the {af.max_wind_sustained_mps:.1f} "
                "m/s sustained limit",
            )
        )
    if plan.stuck:
        reasons.append(
            Reason(
                NoGoReason.NO_HEADWAY,
                f"can't make {af.min_groundspeed_mps:.1f} m/s over the ground against the "
                f"wind on {', '.join(plan.stuck)}",
            )
        )
    if required_wh > af.usable_energy_wh:
        reasons.append(
            Reason(
                NoGoReason.EXCEEDS_FULL_BATTERY,
                f"needs {required_wh:.1f} Wh with reserve; a full battery has "
                f"{af.usable_energy_wh:.1f} Wh usable",
            )
        )
    ready_in_s: float | None = None
    if reasons:
        verdict = Verdict.NO_GO
    elif required_wh > available_wh:
        verdict = Verdict.NOT_READY_UNTIL_CHARGED
        ready_in_s = (required_wh - available_wh) / charge_power_w * 3600.0
        reasons.append(
            Reason(
                NoGoReason.BATTERY_LOW,
                f"needs {required_wh:.1f} Wh with reserve, battery has {available_wh:.1f} Wh "
                f"usable: ready in {ready_in_s / 60.0:.0f} min",
            )
        )
    else:
        verdict = Verdict.GO

    max_payload: float | None = None
    max_range = 0.0
    if with_limits:
        max_payload = _max_payload(af, plan, available_wh)
        max_range = _max_range_m(af, plan, wind, payload_kg, available_wh)
    return EnergyDecision(
        verdict=verdict,
        reasons=tuple(reasons),
        phases=tuple(rows),
        flight_wh=flight_wh,
        contingency_wh=contingency_wh,
        reserve_wh=reserve_wh,
        available_wh=available_wh,
        max_payload_kg=max_payload,
        max_range_m=max_range,
        ready_in_s=ready_in_s,
        ready_at_s=None if ready_in_s is None or now_s is None else now_s + ready_in_s,
    )
