"""Drone or courier: whether a drone can deliver a job, when it would be at the door, and why not.

The answer has to come while the retailer waits (a quote within 50 ms with a thousand keep-outs
and twenty drones), so the work is ordered cheapest first: the parcel against the fleet's
airframes and the box, the destination against the operating area, then one route (shared by
every drone: they all fly from the nest), then energy once per distinct airframe and battery.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple

import shapely
from pydantic import BaseModel, ConfigDict, Field

from nestd.airspace import (
    Airspace,
    DeliveryPlan,
    LatLon,
    NoRoute,
    NoRouteReason,
    Route,
    RouterConfig,
    Waypoint,
    distance_m,
    plan_route,
)
from nestd.airspace.router import DEFAULT_ROUTER_CONFIG, nearest_legal_point
from nestd.jobs.models import Job, MethodPreference, Quote, Reason, ReasonCode
from nestd.safety.airframe import Airframe
from nestd.safety.energy import (
    CALM,
    DEFAULT_CHARGE_POWER_W,
    EnergyDecision,
    EnergyRoute,
    NoGoReason,
    Verdict,
    WindVector,
    evaluate_energy,
)

# Phases of EnergyDecision.phases: the flight runs until the contingency rows; the drone is at
# the door when the delivery itself starts (the descent to the drop point is outbound).
_DELIVERY_PHASES = frozenset({"winch_lower_release", "ground_release"})
_NOT_FLOWN_PHASES = ("contingency", "landing_reserve")
# Charging and time-limited zones can move a launch into another route bucket, whose route
# may need other energy; this many re-plans always settle in practice.
_MAX_REPLANS = 8
_REACH_RESOLUTION_M = 50.0
# How the reasons are listed when several apply: what the retailer can act on first.
_REASON_RANK = {
    c: i
    for i, c in enumerate(
        (
            ReasonCode.OVERWEIGHT,
            ReasonCode.OVERSIZE,
            ReasonCode.METHOD_UNAVAILABLE,
            ReasonCode.OUTSIDE_SERVICE_AREA,
            ReasonCode.NO_LEGAL_ROUTE,
            ReasonCode.ENERGY,
            ReasonCode.WIND,
            ReasonCode.GROUND_STOP,
            ReasonCode.NO_DRONE,
            ReasonCode.NO_DRONE_IN_TIME,
        )
    )
}

# -- confidence -------------------------------------------------------------------------------
# A product of factors in (0, 1], each 1 when its risk is absent (see `confidence`).
WAIT_HALF_S = 1800.0
"""A launch this far away halves the confidence (things change while we wait)."""
QUEUE_STEP = 0.1
"""Each queued job ahead divides the confidence by (1 + this)."""
MARGIN_FULL_FRACTION = 0.2
"""An energy margin of this share of the usable battery (beyond the reserve) counts as ample."""
MARGIN_FLOOR = 0.6
"""The energy factor with no margin beyond the reserve."""
WIND_FREE_FRACTION = 0.5
"""Wind below this share of the airframe's sustained limit costs no confidence..."""
WIND_FLOOR = 0.2
"""...and at the limit the wind factor is this."""


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DroneView:
    """One drone as the service layer sees it."""

    key: int
    """Vehicle key."""
    pad_id: str | None
    pad: LatLon
    """Where it stands, or will land."""
    airframe: Airframe
    battery_wh: float
    """Energy now (`battery_energy_from_telemetry`)."""
    available_at_s: float
    """When it can next launch: now if idle and healthy on its pad; if flying, its ETA back on
    the pad plus the turnaround."""
    battery_wh_at_available: float | None = None
    """Expected energy when it is back (None: the same as `battery_wh`)."""
    healthy: bool = True
    """Link up, no failsafe, not in maintenance."""

    @property
    def battery_wh_when_available(self) -> float:
        return self.battery_wh if self.battery_wh_at_available is None else (
            self.battery_wh_at_available
        )


@dataclass(frozen=True, slots=True)
class FleetView:
    """The fleet and the nest's launch state at `now_s` (POSIX seconds)."""

    now_s: float
    drones: tuple[DroneView, ...]
    wind: WindVector = CALM
    launches_allowed: bool = True
    """The wind monitor and any ground stop allow launches."""
    hold_reason: str | None = None
    """Why launches aren't allowed (the wind monitor's or the ground stop's text)."""
    hold_code: str = ReasonCode.WIND.value
    """ReasonCode for the hold: "wind" or "ground_stop"."""
    next_launch_slot_s: float = 0.0
    """Launch spacing: the earliest time the nest may launch again."""
    queued_ahead: int = 0
    """Jobs ahead of this one in the dispatcher queue."""


class QuoteSettings(BaseModel):
    """The [quote] section: what the nest can take and how quotes are timed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_parcel_dims_cm: tuple[float, float, float] = Field(
        (40.0, 30.0, 25.0), description="The box a parcel must fit, in any orientation, cm."
    )
    charge_power_w: float = Field(
        DEFAULT_CHARGE_POWER_W, gt=0, description="Energy into a battery per hour on the pad, W."
    )
    turnaround_s: float = Field(
        120.0,
        ge=0,
        description="Battery swap / inspection between flights; a drone given a job is free "
        "again this long after it lands.",
    )
    launch_spacing_s: float = Field(
        30.0,
        ge=0,
        description="Time between launches from the nest; each job queued ahead of a quoted one "
        "is assumed to take one launch slot first.",
    )
    valid_for_s: float = Field(120.0, gt=0, description="How long a quote stays valid, s.")
    route_cache_size: int = Field(4096, ge=1, description="Routes kept (LRU).")
    route_time_bucket_s: float = Field(
        60.0,
        gt=0,
        description="Departures within one bucket share a route; the route avoids every zone "
        "active at any moment of the bucket plus the flight (see Quoter.plan).",
    )


# -- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One drone's way of flying the job."""

    drone: int
    launch_at_s: float
    eta_door_s: float
    """At the drop point (hovering at winch height, or landed)."""
    back_at_s: float
    """Landed on its pad again."""
    energy: EnergyDecision
    plan: DeliveryPlan


@dataclass(frozen=True, slots=True)
class QuoteResult:
    eligible: bool
    reasons: tuple[Reason, ...]
    best: Option | None
    """The earliest door ETA; also set when ineligible only because of a launch hold or the
    deadline (the job could be flown, later)."""
    confidence: float


class RouteCacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    capacity: int


@dataclass(slots=True)
class _Entry:
    key: tuple[float, float, int | None]
    plan: DeliveryPlan | NoRoute
    routes: dict[float, EnergyRoute] = field(default_factory=dict)  # by delivery height


@dataclass(slots=True)
class _QuoteMemo:
    """What one quote works out once and shares between its drones (keys: route bucket,
    id of the airframe, battery): the fleet's objects outlive the quote, so ids are safe."""

    entries: dict[int | None, _Entry] = field(default_factory=dict)
    energy: dict[tuple[int | None, int, float], EnergyDecision] = field(default_factory=dict)
    failures: dict[tuple[int | None, int], list[Reason]] = field(default_factory=dict)


def _reason(code: ReasonCode, message: str, field_: str | None = None) -> Reason:
    return Reason(code=code.value, message=message, field=field_)


def _iso(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _where(p: LatLon) -> str:
    return f"{p.lat_deg:.6f}, {p.lon_deg:.6f}"


def _ranked(reasons: Iterable[Reason]) -> list[Reason]:
    unique = {(r.code, r.message): r for r in reasons}
    return sorted(unique.values(), key=lambda r: _REASON_RANK.get(ReasonCode(r.code), 99))


def phase_times_s(energy: EnergyDecision) -> tuple[float, float]:
    """(launch to the drop point, launch to landed) from an energy decision's phases.

    The phases carry the climb, each leg's groundspeed in the wind, the accelerations and the
    descents; the delivery phases (winch cycle or time on the ground) are in the second figure.
    """
    to_door = flight = 0.0
    at_door = False
    for p in energy.phases:
        if p.phase.startswith(_NOT_FLOWN_PHASES):
            break
        at_door = at_door or p.phase in _DELIVERY_PHASES
        if not at_door:
            to_door += p.time_s
        flight += p.time_s
    return to_door, flight


def confidence(option: Option, drone: DroneView, fleet: FleetView) -> float:
    """How likely the quoted ETA holds, in [0, 1]: a product of four simple factors.

    - waiting: 1 / (1 + wait / WAIT_HALF_S), the wait being from now to the launch;
    - queue: 1 / (1 + QUEUE_STEP * jobs queued ahead);
    - energy: MARGIN_FLOOR at no margin beyond the reserve, rising linearly to 1 at a margin of
      MARGIN_FULL_FRACTION of the usable battery (a drone that must charge first launches with
      no margin: it is charged to what the flight needs);
    - wind: 1 up to WIND_FREE_FRACTION of the airframe's sustained limit, falling linearly to
      WIND_FLOOR at the limit.
    """
    af = drone.airframe
    wait_s = max(option.launch_at_s - fleet.now_s, 0.0)
    c = 1.0 / (1.0 + wait_s / WAIT_HALF_S)
    c /= 1.0 + QUEUE_STEP * max(fleet.queued_ahead, 0)
    margin = max(option.energy.margin_wh, 0.0) / af.usable_energy_wh
    c *= MARGIN_FLOOR + (1.0 - MARGIN_FLOOR) * min(margin / MARGIN_FULL_FRACTION, 1.0)
    ratio = fleet.wind.speed_mps / af.max_wind_sustained_mps
    over = min(max((ratio - WIND_FREE_FRACTION) / (1.0 - WIND_FREE_FRACTION), 0.0), 1.0)
    c *= 1.0 - (1.0 - WIND_FLOOR) * over
    return min(max(c, 0.0), 1.0)


def fits_box(dims_cm: Sequence[float], box_cm: Sequence[float]) -> bool:
    """A box fits another, turned any way that keeps its faces parallel to the other's."""
    return all(d <= b for d, b in zip(sorted(dims_cm), sorted(box_cm), strict=True))


def _method_ok(af: Airframe, method: MethodPreference) -> bool:
    return method is MethodPreference.ANY or af.delivery.method.value == method.value


def _capable(af: Airframe, payload_kg: float, method: MethodPreference) -> bool:
    return payload_kg <= af.max_payload_kg and _method_ok(af, method)


class Quoter:
    """Quotes jobs against one store's airspace; keeps the routes it planned (LRU).

    Not thread-safe; one per store, called from the event loop.
    """

    def __init__(
        self,
        airspace: Airspace,
        settings: QuoteSettings | None = None,
        router: RouterConfig = DEFAULT_ROUTER_CONFIG,
    ) -> None:
        self.settings = settings or QuoteSettings()
        self.router = router
        self._cache: OrderedDict[tuple[float, float, int | None], _Entry] = OrderedDict()
        self._hits = self._misses = 0
        self._use(airspace)

    # -- routes -----------------------------------------------------------------------------

    def _use(self, airspace: Airspace) -> None:
        self.airspace = airspace
        self._sites = [s.position for s in airspace.safe_landing_sites]
        # Without time-limited zones a route doesn't depend on the departure time at all.
        self._timeless = bool(airspace.always_active.all())
        bucket = self.settings.route_time_bucket_s
        self._route_cfg = (
            self.router
            if self._timeless
            else replace(self.router, flight_duration_s=self.router.flight_duration_s + bucket)
        )
        self._cache.clear()

    def swap_airspace(self, airspace: Airspace) -> None:
        """Use a new airspace from now on (a live update); every cached route is dropped."""
        self._use(airspace)

    def cache_info(self) -> RouteCacheInfo:
        return RouteCacheInfo(
            self._hits, self._misses, len(self._cache), self.settings.route_cache_size
        )

    def _bucket(self, depart_at_s: float) -> int | None:
        if self._timeless:
            return None
        return math.floor(depart_at_s / self.settings.route_time_bucket_s)

    def _key(self, destination: LatLon, depart_at_s: float) -> tuple[float, float, int | None]:
        # 1e-5 degrees is ~1.1 m of latitude (less of longitude).
        return (
            round(destination.lat_deg, 5),
            round(destination.lon_deg, 5),
            self._bucket(depart_at_s),
        )

    def plan(self, destination: LatLon, depart_at_s: float) -> DeliveryPlan | NoRoute:
        """Nest -> destination -> nest, legal for a departure at `depart_at_s`; cached.

        The cache key is the destination rounded to 1e-5 degrees (~1 m) and the departure time
        in buckets of `route_time_bucket_s` (no time at all when the airspace has no
        time-limited zone). Trade-offs, each on the safe side or below GPS accuracy:

        - a route is planned from its bucket's start and avoids every zone active at any moment
          of [bucket start, bucket end + flight duration], so it is legal for any departure in
          the bucket, at the price of also avoiding a zone that ends (or starts) up to one
          bucket before (after) the flight;
        - the way back is the way out reversed, checked for that same window (the router's own
          return plan would be checked for a narrower one and cost a second search);
        - a destination within ~1 m of one already planned gets that plan, whose end is up to
          ~0.7 m from the asked point. The flight executor validates the mission it builds
          against the airspace at launch.
        """
        return self._entry(destination, depart_at_s).plan

    def _entry(self, destination: LatLon, depart_at_s: float) -> _Entry:
        key = self._key(destination, depart_at_s)
        e = self._cache.get(key)
        if e is not None:
            self._cache.move_to_end(key)
            self._hits += 1
            return e
        self._misses += 1
        bucket = key[2]
        depart = depart_at_s if bucket is None else bucket * self.settings.route_time_bucket_s
        e = _Entry(key, self._plan_uncached(destination, depart))
        self._cache[key] = e
        while len(self._cache) > self.settings.route_cache_size:
            self._cache.popitem(last=False)
        return e

    def _plan_uncached(self, destination: LatLon, depart_at_s: float) -> DeliveryPlan | NoRoute:
        a = self.airspace
        out = plan_route(a, a.nest.position, destination, depart_at_s, self._route_cfg)
        if isinstance(out, NoRoute):
            return out
        # The same obstacles (one window), the same columns (the router checks the drop point
        # from the delivery height and the nest from the ground either way): the reversed
        # route is exactly as legal as a second search, and as short.
        back = Route(
            points=out.points[::-1],
            xy_m=out.xy_m[::-1],
            cruise_alt_agl_m=out.cruise_alt_agl_m,
            length_m=out.length_m,
            depart_at=out.depart_at,
        )
        return DeliveryPlan(out, back)

    def _energy_route(self, entry: _Entry, plan: DeliveryPlan, af: Airframe) -> EnergyRoute:
        alt = af.delivery.delivery_alt_agl_m
        r = entry.routes.get(alt)
        if r is None:
            r = EnergyRoute.from_delivery_plan(plan, alt, self._sites)
            entry.routes[alt] = r
        return r

    # -- reasons ----------------------------------------------------------------------------

    def _job_reasons(self, job: Job, fleet: FleetView) -> list[Reason]:
        """The cheap checks: parcel against the airframes and the box, destination against
        the operating area. No routing."""
        if not fleet.drones:
            return [_reason(ReasonCode.NO_DRONE, "the nest has no drones")]
        out: list[Reason] = []
        payload = job.parcel.mass_kg
        method = job.method
        airframes = {id(d.airframe): d.airframe for d in fleet.drones}.values()
        by_method = [af for af in airframes if _method_ok(af, method)]
        if not by_method:
            methods = sorted({af.delivery.method.value for af in airframes})
            out.append(
                _reason(
                    ReasonCode.METHOD_UNAVAILABLE,
                    f"delivery by {method.value} was asked for; the drones deliver by "
                    f"{' or '.join(methods)}",
                    "method",
                )
            )
        heaviest = max(af.max_payload_kg for af in (by_method or airframes))
        if payload > heaviest:
            which = "the drones carry" if not by_method or method is MethodPreference.ANY else (
                f"the drones that deliver by {method.value} carry"
            )
            out.append(
                _reason(
                    ReasonCode.OVERWEIGHT,
                    f"parcel {payload:.2f} kg is over the {heaviest:.2f} kg {which}",
                    "parcel.mass_kg",
                )
            )
        dims = job.parcel.dimensions
        if dims is not None:
            d = (dims.length_cm, dims.width_cm, dims.height_cm)
            box = self.settings.max_parcel_dims_cm
            if not fits_box(d, box):
                out.append(
                    _reason(
                        ReasonCode.OVERSIZE,
                        f"parcel {d[0]:g} x {d[1]:g} x {d[2]:g} cm doesn't fit the "
                        f"{box[0]:g} x {box[1]:g} x {box[2]:g} cm bay in any orientation",
                        "parcel.dimensions",
                    )
                )
        area = self._area_reason(LatLon(job.destination.lat_deg, job.destination.lon_deg), fleet)
        if area is not None:
            out.append(area)
        return out

    def _area_reason(self, dest: LatLon, fleet: FleetView) -> Reason | None:
        a = self.airspace
        x, y = a.to_local(dest)
        if shapely.intersects_xy(a.keep_in_shrunk, x, y):
            return None
        if shapely.intersects_xy(a.keep_in.geometry, x, y):
            low = min(self.router.layers_agl_m, default=0.0)
            mask = a.active_mask(fleet.now_s) & a.band_mask(0.0, low)
            near = nearest_legal_point(a, dest, mask)
            text = (
                f"destination is within {a.margins.horizontal_m:.0f} m of the operating area's "
                "edge"
            )
            if near is not None:
                text += (
                    f"; the nearest deliverable point is {_where(near)} "
                    f"({distance_m(dest, near):.0f} m away)"
                )
            return _reason(ReasonCode.OUTSIDE_SERVICE_AREA, text, "destination")
        off_m = float(shapely.distance(a.keep_in.geometry, shapely.Point(x, y)))
        text = f"destination is {off_m / 1000.0:.1f} km outside the operating area"
        if abs(dest.lon_deg) <= 90.0:
            sx, sy = a.to_local(LatLon(dest.lon_deg, dest.lat_deg))
            if shapely.intersects_xy(a.keep_in_shrunk, sx, sy):
                text += (
                    "; with latitude and longitude swapped it would be inside "
                    f"(lat {dest.lon_deg:.6f}, lon {dest.lat_deg:.6f}): check their order"
                )
        return _reason(ReasonCode.OUTSIDE_SERVICE_AREA, text, "destination")

    @staticmethod
    def _no_route_reason(nr: NoRoute) -> Reason:
        code = (
            ReasonCode.OUTSIDE_SERVICE_AREA
            if nr.reason is NoRouteReason.GOAL_OUTSIDE_KEEP_IN
            else ReasonCode.NO_LEGAL_ROUTE
        )
        text = nr.message
        missing = [f for f in nr.feature_ids if f not in text]
        if missing:
            text += f" (features: {', '.join(missing)})"
        if nr.nearest_legal is not None:
            text += f"; the nearest deliverable point is {_where(nr.nearest_legal)}"
        return _reason(code, text, "destination")

    def _battery_reason(
        self,
        plan: DeliveryPlan,
        route: EnergyRoute,
        af: Airframe,
        payload_kg: float,
        decision: EnergyDecision,
        wind: WindVector,
    ) -> Reason:
        """Why even a full battery isn't enough: too heavy for this route, too far, or the wind.

        Judged in calm air, so a reason the wind will take away is not given as permanent.
        """
        calm = evaluate_energy(
            af,
            route,
            wind=CALM,
            payload_kg=payload_kg,
            battery_energy_wh=af.battery_capacity_wh,
            charge_power_w=self.settings.charge_power_w,
        )
        usable = af.usable_energy_wh
        if not any(r.code is NoGoReason.EXCEEDS_FULL_BATTERY for r in calm.reasons):
            return _reason(
                ReasonCode.WIND,
                f"in this wind ({wind.speed_mps:.1f} m/s) the flight needs "
                f"{decision.required_wh:.0f} Wh with reserve, more than a full battery's "
                f"{usable:.0f} Wh usable; in calm air it needs {calm.required_wh:.0f} Wh",
            )
        km = plan.outbound.geodesic_length_m() / 1000.0
        if calm.max_payload_kg is not None and calm.max_payload_kg < payload_kg:
            return _reason(
                ReasonCode.OVERWEIGHT,
                f"parcel {payload_kg:.2f} kg is over the {calm.max_payload_kg:.2f} kg a full "
                f"battery can carry on this route ({km:.1f} km each way)",
                "parcel.mass_kg",
            )
        short = calm.required_wh - usable
        reach_km = self._reach_m(plan, af, payload_kg) / 1000.0
        return _reason(
            ReasonCode.ENERGY,
            f"the route is {km:.1f} km each way and needs {calm.required_wh:.0f} Wh with "
            f"reserve: {short:.0f} Wh more than a full battery's {usable:.0f} Wh usable; "
            f"with this parcel a drone reaches about {reach_km:.1f} km that way (straight, "
            "calm air)",
            "destination",
        )

    def _reach_m(self, plan: DeliveryPlan, af: Airframe, payload_kg: float) -> float:
        """Farthest straight delivery towards the destination a full battery allows, calm air.

        `EnergyDecision.max_range_m` keeps the failing route's own contingency divert (from
        its far end), which under-states the range of a shorter flight by kilometres; this
        bisects on straight routes with their own divert. Only on the way to a refusal.
        """
        a = self.airspace
        nest, goal = plan.outbound.points[0], plan.outbound.points[-1]
        nx, ny = a.to_local(nest)
        gx, gy = a.to_local(goal)
        span = math.hypot(gx - nx, gy - ny)
        if span <= 0.0:
            return 0.0
        ux, uy = (gx - nx) / span, (gy - ny) / span
        cruise = plan.outbound.cruise_alt_agl_m
        drop = af.delivery.delivery_alt_agl_m

        def fits(d_m: float) -> bool:
            p = a.to_wgs84(nx + ux * d_m, ny + uy * d_m)
            out = [
                Waypoint(nest.lat_deg, nest.lon_deg, 0.0),
                Waypoint(nest.lat_deg, nest.lon_deg, cruise),
                Waypoint(p.lat_deg, p.lon_deg, cruise),
                Waypoint(p.lat_deg, p.lon_deg, drop),
            ]
            back = [
                Waypoint(p.lat_deg, p.lon_deg, drop),
                Waypoint(p.lat_deg, p.lon_deg, cruise),
                Waypoint(nest.lat_deg, nest.lon_deg, cruise),
                Waypoint(nest.lat_deg, nest.lon_deg, 0.0),
            ]
            route = EnergyRoute.from_waypoints(out, back, self._sites)
            dec = evaluate_energy(
                af,
                route,
                wind=CALM,
                payload_kg=payload_kg,
                battery_energy_wh=af.battery_capacity_wh,
                with_limits=False,
            )
            return dec.required_wh <= af.usable_energy_wh

        lo, hi = 0.0, span
        while hi - lo > _REACH_RESOLUTION_M:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo

    # -- options ----------------------------------------------------------------------------

    def options(self, job: Job, fleet: FleetView) -> tuple[list[Option], list[Reason]]:
        """Every drone that can fly the job, earliest door ETA first; and why the others can't.

        The reasons are for the drones left out (or the whole job, when a cheap check fails);
        with no option they say why nothing can fly it.
        """
        reasons = self._job_reasons(job, fleet)
        if reasons:
            return [], _ranked(reasons)
        payload = job.parcel.mass_kg
        drones = [
            d for d in fleet.drones if d.healthy and _capable(d.airframe, payload, job.method)
        ]
        if not drones:
            n = sum(_capable(d.airframe, payload, job.method) for d in fleet.drones)
            return [], [
                _reason(
                    ReasonCode.NO_DRONE,
                    f"no healthy drone: all {n} that could carry it are offline, in a "
                    "failsafe or in maintenance",
                )
            ]
        dest = LatLon(job.destination.lat_deg, job.destination.lon_deg)
        # Each job queued ahead launches first, one launch slot each.
        earliest = (
            max(fleet.now_s, fleet.next_launch_slot_s)
            + max(fleet.queued_ahead, 0) * self.settings.launch_spacing_s
        )
        memo = _QuoteMemo()
        out: list[Option] = []
        for d in drones:
            got = self._option(d, dest, payload, fleet, earliest, memo)
            if isinstance(got, Option):
                out.append(got)
            else:
                reasons.extend(got)
        out.sort(key=lambda o: (o.eta_door_s, o.launch_at_s, -o.energy.margin_wh, o.drone))
        return out, _ranked(reasons)

    def _option(
        self,
        d: DroneView,
        dest: LatLon,
        payload_kg: float,
        fleet: FleetView,
        earliest_s: float,
        memo: _QuoteMemo,
    ) -> Option | list[Reason]:
        af = d.airframe
        battery = d.battery_wh_when_available
        charge_from = max(fleet.now_s, d.available_at_s)
        t = max(charge_from, earliest_s)
        for _ in range(_MAX_REPLANS):
            bucket = self._bucket(t)
            e = memo.entries.get(bucket)
            if e is None:
                e = memo.entries[bucket] = self._entry(dest, t)
            if isinstance(e.plan, NoRoute):
                return [self._no_route_reason(e.plan)]
            plan = e.plan
            key = (bucket, id(af), battery)
            dec = memo.energy.get(key)
            if dec is None:
                dec = evaluate_energy(
                    af,
                    self._energy_route(e, plan, af),
                    wind=fleet.wind,
                    payload_kg=payload_kg,
                    battery_energy_wh=battery,
                    charge_power_w=self.settings.charge_power_w,
                    with_limits=False,
                )
                memo.energy[key] = dec
            if dec.verdict is Verdict.NO_GO:
                fkey = (bucket, id(af))
                why = memo.failures.get(fkey)
                if why is None:
                    why = self._no_go_reasons(plan, e, af, payload_kg, dec, fleet.wind)
                    memo.failures[fkey] = why
                return why
            launch = t
            if dec.ready_in_s is not None:
                ready = charge_from + dec.ready_in_s
                launch = max(t, ready)
                dec = replace(dec, ready_at_s=ready)
            if self._bucket(launch) == bucket:
                to_door_s, flight_s = phase_times_s(dec)
                return Option(d.key, launch, launch + to_door_s, launch + flight_s, dec, plan)
            t = launch
        return [
            _reason(
                ReasonCode.NO_DRONE,
                f"drone {d.key}: charging and time-limited zones keep moving its launch",
            )
        ]

    def _no_go_reasons(
        self,
        plan: DeliveryPlan,
        e: _Entry,
        af: Airframe,
        payload_kg: float,
        dec: EnergyDecision,
        wind: WindVector,
    ) -> list[Reason]:
        out: list[Reason] = []
        for r in dec.reasons:
            if r.code in (NoGoReason.WIND_OVER_LIMIT, NoGoReason.NO_HEADWAY):
                out.append(_reason(ReasonCode.WIND, r.message))
            elif r.code is NoGoReason.EXCEEDS_FULL_BATTERY:
                route = self._energy_route(e, plan, af)
                out.append(self._battery_reason(plan, route, af, payload_kg, dec, wind))
            elif r.code is NoGoReason.PAYLOAD_OVER_MAX:  # drones that can't carry it are skipped
                out.append(_reason(ReasonCode.OVERWEIGHT, r.message, "parcel.mass_kg"))
        return out

    # -- the answer -------------------------------------------------------------------------

    def quote(self, job: Job, fleet: FleetView) -> QuoteResult:
        """Can a drone deliver `job` by its promised time, and when would it be at the door."""
        opts, reasons = self.options(job, fleet)
        if not opts:
            return QuoteResult(False, tuple(reasons), None, 0.0)
        best = opts[0]
        if not fleet.launches_allowed:
            code = (
                ReasonCode.GROUND_STOP
                if fleet.hold_code == ReasonCode.GROUND_STOP.value
                else ReasonCode.WIND
            )
            text = fleet.hold_reason or "launches are on hold"
            return QuoteResult(False, (_reason(code, text),), best, 0.0)
        promised_s = job.promised_by.timestamp()
        if best.eta_door_s > promised_s:
            late = _reason(
                ReasonCode.NO_DRONE_IN_TIME,
                f"the earliest a drone can be at the door is {_iso(best.eta_door_s)} "
                f"(drone {best.drone}, launching {_iso(best.launch_at_s)}), "
                f"{best.eta_door_s - promised_s:.0f} s after the promised {_iso(promised_s)}",
                "promised_by",
            )
            return QuoteResult(False, (late,), best, 0.0)
        drone = next(d for d in fleet.drones if d.key == best.drone)
        return QuoteResult(True, (), best, confidence(best, drone, fleet))

    def to_message(self, job: Job, result: QuoteResult, now_s: float, store_id: str) -> Quote:
        """The Quote answer for the retailer (times as UTC datetimes)."""

        def at(t_s: float) -> datetime:
            return datetime.fromtimestamp(t_s, UTC)

        best = result.best if result.eligible else None
        return Quote(
            order_id=job.order_id,
            store_id=store_id,
            eligible=result.eligible,
            reasons=result.reasons,
            launch_at=None if best is None else at(best.launch_at_s),
            eta_at_door=None if best is None else at(best.eta_door_s),
            confidence=result.confidence if result.eligible else 0.0,
            drone=None if best is None else best.drone,
            quoted_at=at(now_s),
            valid_until=at(now_s + self.settings.valid_for_s),
        )
