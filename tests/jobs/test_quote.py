"""Quotes: ETAs against the router and the energy model, every refusal reason, the route cache."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely

from nestd.airspace import Airspace, LatLon, NoRoute, load_airspace, plan_delivery, plan_route
from nestd.airspace.router import nearest_legal_point
from nestd.airspace.testing import synthetic_airspace
from nestd.airspace.timewin import Applicability, Schedule
from nestd.jobs.models import Job, Quote, ReasonCode
from nestd.jobs.quote import (
    DroneView,
    FleetView,
    Option,
    Quoter,
    QuoteSettings,
    confidence,
    phase_times_s,
)
from nestd.safety import (
    Airframe,
    Delivery,
    DeliveryMethod,
    EnergyRoute,
    WindVector,
    evaluate_energy,
)

from ..airspace.stores import GEOFENCES

NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC).timestamp()  # on a minute: bucket edges known
AF = Airframe()
CHICAGO = ZoneInfo("America/Chicago")
PAD = LatLon(32.96, -96.725)  # where the drones stand: the quoter plans from the nest anyway


def at(a: Airspace, x_m: float, y_m: float) -> LatLon:
    """The point x_m east and y_m north of the nest."""
    return a.to_wgs84(x_m, y_m)


def make_job(
    dest: LatLon,
    *,
    mass_kg: float = 1.0,
    promised_in_s: float = 3 * 3600.0,
    now_s: float = NOW,
    dims_cm: tuple[float, float, float] | None = None,
    method: str = "any",
    order_id: str = "order-1",
    priority: int = 0,
) -> Job:
    parcel: dict[str, object] = {"mass_kg": mass_kg}
    if dims_cm is not None:
        names = ("length_cm", "width_cm", "height_cm")
        parcel["dimensions"] = dict(zip(names, dims_cm, strict=True))
    return Job.model_validate(
        {
            "order_id": order_id,
            "store_id": "store-1",
            "destination": {"lat_deg": dest.lat_deg, "lon_deg": dest.lon_deg},
            "parcel": parcel,
            "promised_by": datetime.fromtimestamp(now_s + promised_in_s, UTC),
            "method": method,
            "priority": priority,
        }
    )


def drone(
    key: int = 1,
    *,
    battery_wh: float = 488.0,
    available_in_s: float = 0.0,
    at_available_wh: float | None = None,
    airframe: Airframe = AF,
    healthy: bool = True,
    now_s: float = NOW,
    pad: LatLon = PAD,
) -> DroneView:
    return DroneView(
        key=key,
        pad_id=f"pad-{key}",
        pad=pad,
        airframe=airframe,
        battery_wh=battery_wh,
        available_at_s=now_s + available_in_s,
        battery_wh_at_available=at_available_wh,
        healthy=healthy,
    )


def fleet(*drones: DroneView, now_s: float = NOW, **kw: object) -> FleetView:
    return FleetView(now_s, tuple(drones), **kw)  # type: ignore[arg-type]


def codes(result: object) -> list[str]:
    return [r.code for r in result.reasons]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def open_air() -> Airspace:
    return synthetic_airspace([], keep_in_radius_m=6000.0)


@pytest.fixture(scope="module")
def walled() -> Airspace:
    """A wall 200 m thick and 2.4 km long across the way east, 1.5 km from the nest."""
    return synthetic_airspace([shapely.box(1400, -1200, 1600, 1200)], keep_in_radius_m=6000.0)


@pytest.fixture(scope="module")
def wide_air() -> Airspace:
    """An operating area wider than a battery's reach."""
    return synthetic_airspace([], keep_in_radius_m=15_000.0)


@pytest.fixture(scope="module")
def richardson() -> Airspace:
    return load_airspace(GEOFENCES / "us-tx-richardson.geojson")


# -- ETAs -------------------------------------------------------------------------------------


def test_eta_is_launch_plus_the_planned_routes_time_to_the_door(open_air: Airspace) -> None:
    wind = WindVector.from_direction(45.0, 6.0)
    dest = at(open_air, 2500.0, 1800.0)
    result = Quoter(open_air).quote(make_job(dest, mass_kg=1.2), fleet(drone(), wind=wind))
    assert result.eligible and result.best is not None
    best = result.best

    # Independently: the router's own delivery plan and the energy model's phases.
    plan = plan_delivery(open_air, dest, NOW, cruise_speed_mps=AF.cruise_speed_mps)
    assert not isinstance(plan, NoRoute)
    route = EnergyRoute.from_delivery_plan(plan, AF.delivery.delivery_alt_agl_m)
    dec = evaluate_energy(AF, route, wind=wind, payload_kg=1.2, battery_energy_wh=488.0)
    names = [p.phase for p in dec.phases]
    to_door = sum(p.time_s for p in dec.phases[: names.index("winch_lower_release")])
    flight = sum(p.time_s for p in dec.phases[: names.index("contingency_divert")])
    assert best.launch_at_s == NOW
    assert best.eta_door_s == pytest.approx(NOW + to_door, abs=1.0)
    assert best.back_at_s == pytest.approx(NOW + flight, abs=2.0)
    # And by plain kinematics: cruise at cruise speed, plus climb/descent/braking minutes.
    cruise_s = plan.outbound.geodesic_length_m() / AF.cruise_speed_mps
    assert cruise_s < best.eta_door_s - NOW < cruise_s + 60.0


def test_headwind_makes_the_eta_later_than_calm(open_air: Airspace) -> None:
    dest = at(open_air, 0.0, 4000.0)  # due north
    q = Quoter(open_air)
    calm = q.quote(make_job(dest), fleet(drone()))
    # Wind from the north at 9 m/s: cruise groundspeed held while airspeed allows, then less.
    head = q.quote(make_job(dest), fleet(drone(), wind=WindVector.from_direction(0.0, 9.0)))
    assert calm.best is not None and head.best is not None
    assert head.best.eta_door_s > calm.best.eta_door_s


def test_destination_behind_a_keep_out_gets_a_later_eta_than_an_equally_far_open_one(
    walled: Airspace,
) -> None:
    q = Quoter(walled)
    east = q.quote(make_job(at(walled, 3000.0, 0.0)), fleet(drone()))
    west = q.quote(make_job(at(walled, -3000.0, 0.0)), fleet(drone()))
    assert east.best is not None and west.best is not None
    extra_m = east.best.plan.outbound.length_m - west.best.plan.outbound.length_m
    assert extra_m > 100.0
    assert east.best.eta_door_s - west.best.eta_door_s > 0.8 * extra_m / AF.cruise_speed_mps


def test_a_school_zone_lengthens_the_route_only_in_school_hours(richardson: Airspace) -> None:
    dest = LatLon(32.948, -96.745)  # beyond the high school from the nest
    q = Quoter(richardson)
    times = {}
    for label, when in (("school", datetime(2026, 11, 24, 15, 0, tzinfo=CHICAGO)),
                        ("night", datetime(2026, 11, 24, 22, 0, tzinfo=CHICAGO))):
        now = when.timestamp()
        r = q.quote(make_job(dest, now_s=now), fleet(drone(now_s=now), now_s=now))
        assert r.eligible and r.best is not None
        times[label] = r.best.eta_door_s - now
        independent = plan_route(richardson, richardson.nest.position, dest, now)
        assert not isinstance(independent, NoRoute)
        assert r.best.plan.outbound.length_m == pytest.approx(independent.length_m, abs=5.0)
    assert times["school"] > times["night"]


# -- drones -----------------------------------------------------------------------------------


def test_ready_drone_beats_one_that_must_charge_and_charging_time_is_in_its_launch(
    open_air: Airspace,
) -> None:
    q = Quoter(open_air)
    opts, _ = q.options(
        make_job(at(open_air, 3000.0, 0.0), mass_kg=2.0),
        fleet(drone(1, battery_wh=150.0), drone(2, battery_wh=488.0)),
    )
    assert [o.drone for o in opts] == [2, 1]
    ready, charging = opts
    assert ready.launch_at_s == NOW and ready.energy.go
    e = charging.energy
    charge_s = (e.required_wh - e.available_wh) / q.settings.charge_power_w * 3600.0
    assert charge_s > 0
    assert charging.launch_at_s == pytest.approx(NOW + charge_s)
    assert e.ready_at_s == pytest.approx(NOW + charge_s)


def test_returning_drone_launches_when_back_with_its_expected_energy(open_air: Airspace) -> None:
    q = Quoter(open_air)
    dest = at(open_air, 3000.0, 0.0)
    back_full = q.quote(make_job(dest), fleet(drone(available_in_s=600.0, battery_wh=100.0,
                                                    at_available_wh=488.0)))
    assert back_full.best is not None and back_full.best.launch_at_s == NOW + 600.0
    back_low = q.quote(make_job(dest), fleet(drone(available_in_s=600.0, battery_wh=488.0,
                                                   at_available_wh=150.0)))
    assert back_low.best is not None and back_low.best.launch_at_s > NOW + 600.0


def test_launch_waits_for_the_next_launch_slot_and_for_jobs_queued_ahead(
    open_air: Airspace,
) -> None:
    q = Quoter(open_air, QuoteSettings(launch_spacing_s=30.0))
    job = make_job(at(open_air, 1000.0, 0.0))
    slot = q.quote(job, fleet(drone(), next_launch_slot_s=NOW + 90.0))
    assert slot.best is not None and slot.best.launch_at_s == NOW + 90.0
    queued = q.quote(job, fleet(drone(), next_launch_slot_s=NOW + 90.0, queued_ahead=2))
    assert queued.best is not None and queued.best.launch_at_s == NOW + 90.0 + 2 * 30.0


def test_unhealthy_drones_are_not_offered(open_air: Airspace) -> None:
    opts, _ = Quoter(open_air).options(
        make_job(at(open_air, 1000.0, 0.0)), fleet(drone(1, healthy=False), drone(2))
    )
    assert [o.drone for o in opts] == [2]


def test_options_are_sorted_by_door_eta(open_air: Airspace) -> None:
    drones = [drone(k, battery_wh=120.0 + 40.0 * k, available_in_s=(k % 3) * 300.0)
              for k in range(1, 9)]
    opts, _ = Quoter(open_air).options(make_job(at(open_air, 2000.0, 2000.0)), fleet(*drones))
    assert len(opts) == len(drones)
    etas = [o.eta_door_s for o in opts]
    assert etas == sorted(etas)


# -- reasons ----------------------------------------------------------------------------------


def test_parcel_over_the_airframes_max_is_overweight_without_routing(open_air: Airspace) -> None:
    q = Quoter(open_air)
    r = q.quote(make_job(at(open_air, 1000.0, 0.0), mass_kg=3.0), fleet(drone()))
    assert not r.eligible and codes(r) == [ReasonCode.OVERWEIGHT]
    assert f"{AF.max_payload_kg:.2f} kg" in r.reasons[0].message
    assert r.reasons[0].field == "parcel.mass_kg"
    assert q.cache_info().misses == 0


def test_parcel_over_what_the_routes_energy_allows_is_overweight_with_the_max(
    wide_air: Airspace,
) -> None:
    dest = at(wide_air, 0.0, 6000.0)
    plan = plan_delivery(wide_air, dest, NOW)
    assert not isinstance(plan, NoRoute)
    route = EnergyRoute.from_delivery_plan(plan, AF.delivery.delivery_alt_agl_m)
    full = evaluate_energy(AF, route, wind=WindVector(), payload_kg=2.0,
                           battery_energy_wh=AF.battery_capacity_wh)
    assert full.max_payload_kg is not None and 0.0 < full.max_payload_kg < 2.0  # the setup
    r = Quoter(wide_air).quote(make_job(dest, mass_kg=2.0), fleet(drone()))
    assert codes(r) == [ReasonCode.OVERWEIGHT]
    assert f"{full.max_payload_kg:.2f} kg" in r.reasons[0].message
    lighter = Quoter(wide_air).quote(make_job(dest, mass_kg=full.max_payload_kg * 0.9),
                                     fleet(drone()))
    assert lighter.eligible


def test_route_beyond_a_full_battery_is_energy_with_the_shortfall_and_the_reach(
    wide_air: Airspace,
) -> None:
    dest = at(wide_air, 0.0, 12_000.0)
    plan = plan_delivery(wide_air, dest, NOW)
    assert not isinstance(plan, NoRoute)
    route = EnergyRoute.from_delivery_plan(plan, AF.delivery.delivery_alt_agl_m)
    full = evaluate_energy(AF, route, wind=WindVector(), payload_kg=0.5,
                           battery_energy_wh=AF.battery_capacity_wh)
    r = Quoter(wide_air).quote(make_job(dest, mass_kg=0.5), fleet(drone()))
    assert codes(r) == [ReasonCode.ENERGY]
    msg = r.reasons[0].message
    assert f"{full.required_wh - AF.usable_energy_wh:.0f} Wh more" in msg
    reach_km = float(msg.split("reaches about ")[1].split(" km")[0])
    # The stated reach is deliverable, and a little further is not.
    near = Quoter(wide_air).quote(make_job(at(wide_air, 0.0, reach_km * 1000.0 - 100.0),
                                           mass_kg=0.5), fleet(drone()))
    far = Quoter(wide_air).quote(make_job(at(wide_air, 0.0, reach_km * 1000.0 + 300.0),
                                          mass_kg=0.5), fleet(drone()))
    assert near.eligible and not far.eligible


def test_shortfall_caused_by_the_wind_is_a_wind_reason_not_a_permanent_one(
    wide_air: Airspace,
) -> None:
    dest = at(wide_air, 0.0, 6500.0)
    q = Quoter(wide_air)
    assert q.quote(make_job(dest, mass_kg=0.5), fleet(drone())).eligible  # fits in calm air
    r = q.quote(make_job(dest, mass_kg=0.5),
                fleet(drone(), wind=WindVector.from_direction(0.0, 9.5)))
    assert not r.eligible and codes(r) == [ReasonCode.WIND]
    assert "calm air" in r.reasons[0].message


def test_parcel_that_fits_the_bay_only_turned_is_accepted_and_a_long_one_is_oversize(
    open_air: Airspace,
) -> None:
    q = Quoter(open_air)
    dest = at(open_air, 1000.0, 0.0)
    assert q.quote(make_job(dest, dims_cm=(24.0, 39.0, 29.0)), fleet(drone())).eligible
    r = q.quote(make_job(dest, dims_cm=(50.0, 10.0, 10.0)), fleet(drone()))
    assert codes(r) == [ReasonCode.OVERSIZE] and r.reasons[0].field == "parcel.dimensions"


def test_destination_outside_the_area_says_how_far(open_air: Airspace) -> None:
    q = Quoter(open_air)
    r = q.quote(make_job(at(open_air, 0.0, 8000.0)), fleet(drone()))
    assert codes(r) == [ReasonCode.OUTSIDE_SERVICE_AREA]
    assert "2.0 km outside" in r.reasons[0].message
    assert "swapped" not in r.reasons[0].message
    assert q.cache_info().misses == 0


def test_destination_in_the_edge_margin_gets_the_nearest_deliverable_point(
    open_air: Airspace,
) -> None:
    r = Quoter(open_air).quote(make_job(at(open_air, 0.0, 5990.0)), fleet(drone()))
    assert codes(r) == [ReasonCode.OUTSIDE_SERVICE_AREA]
    msg = r.reasons[0].message
    assert "within 30 m" in msg
    lat, lon = (float(v) for v in msg.split("point is ")[1].split(" (")[0].split(", "))
    x, y = open_air.to_local(LatLon(lat, lon))
    assert shapely.intersects_xy(open_air.keep_in_shrunk, x, y)


def test_swapped_lat_lon_that_would_be_inside_is_pointed_out() -> None:
    a = synthetic_airspace([], origin=LatLon(40.0, 40.02), keep_in_radius_m=6000.0)
    r = Quoter(a).quote(make_job(LatLon(40.06, 40.0)), fleet(drone()))
    assert codes(r) == [ReasonCode.OUTSIDE_SERVICE_AREA]
    assert "swapped" in r.reasons[0].message
    assert Quoter(a).quote(make_job(LatLon(40.0, 40.06)), fleet(drone())).eligible


def test_goal_in_a_keep_out_is_no_legal_route_with_the_zone_and_nearest_point() -> None:
    a = synthetic_airspace([shapely.box(1900, -100, 2100, 100)], keep_in_radius_m=6000.0)
    dest = at(a, 2000.0, 0.0)
    r = Quoter(a).quote(make_job(dest), fleet(drone()))
    assert codes(r) == [ReasonCode.NO_LEGAL_ROUTE]
    msg = r.reasons[0].message
    assert "z0" in msg
    low = min(Quoter(a).router.layers_agl_m)
    near = nearest_legal_point(a, dest, a.active_mask(NOW) & a.band_mask(0.0, low))
    assert near is not None and f"{near.lat_deg:.6f}, {near.lon_deg:.6f}" in msg


def test_goal_enclosed_by_a_keep_out_ring_is_no_legal_route_with_the_routers_message() -> None:
    ring = shapely.Point(3000, 0).buffer(400).difference(shapely.Point(3000, 0).buffer(250))
    a = synthetic_airspace([ring], keep_in_radius_m=6000.0)
    dest = at(a, 3000.0, 0.0)
    r = Quoter(a).quote(make_job(dest), fleet(drone()))
    assert codes(r) == [ReasonCode.NO_LEGAL_ROUTE]
    independent = plan_route(a, a.nest.position, dest, NOW)
    assert isinstance(independent, NoRoute)
    assert r.reasons[0].message.startswith(independent.message)


def test_tfr_refuses_flights_during_the_event_and_flights_that_would_meet_it(
    richardson: Airspace,
) -> None:
    dest = LatLon(32.944, -96.7)  # the stadium
    q = Quoter(richardson)
    for when, flyable in (
        (datetime(2026, 11, 28, 10, 0, tzinfo=CHICAGO), True),
        (datetime(2026, 11, 28, 17, 35, tzinfo=CHICAGO), False),  # still out at 18:00
        (datetime(2026, 11, 28, 19, 0, tzinfo=CHICAGO), False),
    ):
        now = when.timestamp()
        r = q.quote(make_job(dest, now_s=now), fleet(drone(now_s=now), now_s=now))
        assert r.eligible is flyable, when
        if not flyable:
            assert codes(r) == [ReasonCode.NO_LEGAL_ROUTE]
            assert "tfr-stadium-event" in r.reasons[0].message
            assert "nearest deliverable point" in r.reasons[0].message


def test_goal_at_the_hospital_helipad_is_no_legal_route(richardson: Airspace) -> None:
    r = Quoter(richardson).quote(make_job(LatLon(32.9905, -96.706)), fleet(drone()))
    assert codes(r) == [ReasonCode.NO_LEGAL_ROUTE]
    assert "hospital-helipad" in r.reasons[0].message


@pytest.mark.parametrize("hold", [ReasonCode.WIND, ReasonCode.GROUND_STOP])
def test_launch_hold_makes_a_flyable_job_ineligible_now_with_the_holds_reason(
    open_air: Airspace, hold: ReasonCode
) -> None:
    text = "over the limit: sustained 11.2/10.0 m/s"
    r = Quoter(open_air).quote(
        make_job(at(open_air, 1000.0, 0.0)),
        fleet(drone(), launches_allowed=False, hold_reason=text, hold_code=hold.value),
    )
    assert not r.eligible and codes(r) == [hold]
    assert r.reasons[0].message == text
    assert r.best is not None  # it could fly once the hold lifts


def test_wind_over_the_airframes_limit_is_a_wind_reason(open_air: Airspace) -> None:
    r = Quoter(open_air).quote(
        make_job(at(open_air, 1000.0, 0.0)),
        fleet(drone(), wind=WindVector.from_direction(270.0, AF.max_wind_sustained_mps + 1.0)),
    )
    assert not r.eligible and codes(r) == [ReasonCode.WIND] and r.best is None


def test_no_healthy_drone_is_no_drone(open_air: Airspace) -> None:
    q = Quoter(open_air)
    job = make_job(at(open_air, 1000.0, 0.0))
    assert codes(q.quote(job, fleet(drone(1, healthy=False), drone(2, healthy=False)))) == [
        ReasonCode.NO_DRONE
    ]
    assert codes(q.quote(job, fleet())) == [ReasonCode.NO_DRONE]


def test_door_eta_after_the_promise_is_no_drone_in_time_with_the_earliest_time(
    open_air: Airspace,
) -> None:
    q = Quoter(open_air)
    job = make_job(at(open_air, 3000.0, 0.0), promised_in_s=60.0)
    r = q.quote(job, fleet(drone()))
    assert codes(r) == [ReasonCode.NO_DRONE_IN_TIME] and r.best is not None
    earliest = datetime.fromtimestamp(r.best.eta_door_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert earliest in r.reasons[0].message
    in_time = make_job(at(open_air, 3000.0, 0.0),
                       promised_in_s=math.ceil(r.best.eta_door_s - NOW) + 1.0)
    assert q.quote(in_time, fleet(drone())).eligible


def test_method_the_airframe_lacks_is_method_unavailable(open_air: Airspace) -> None:
    q = Quoter(open_air)
    dest = at(open_air, 1000.0, 0.0)
    r = q.quote(make_job(dest, method="land"), fleet(drone()))
    assert codes(r) == [ReasonCode.METHOD_UNAVAILABLE] and r.reasons[0].field == "method"
    assert q.quote(make_job(dest, method="winch"), fleet(drone())).eligible
    lander = Airframe(delivery=Delivery(method=DeliveryMethod.LAND))
    r = q.quote(make_job(dest, method="land"), fleet(drone(1), drone(2, airframe=lander)))
    assert r.eligible and r.best is not None and r.best.drone == 2
    assert "ground_release" in [p.phase for p in r.best.energy.phases]


# -- the route cache --------------------------------------------------------------------------


def test_cache_hit_returns_the_same_plan_for_the_same_place_within_a_metre(
    open_air: Airspace,
) -> None:
    q = Quoter(open_air)
    p = at(open_air, 2000.0, 1000.0)
    dest = LatLon(round(p.lat_deg, 5), round(p.lon_deg, 5))  # the middle of a ~1 m cell
    first = q.plan(dest, NOW)
    assert q.plan(dest, NOW) is first
    near = LatLon(dest.lat_deg + 3e-6, dest.lon_deg - 3e-6)  # ~0.4 m away
    assert q.plan(near, NOW + 500.0) is first  # and no timed zones: any departure
    assert q.plan(at(open_air, 2010.0, 1000.0), NOW) is not first
    info = q.cache_info()
    assert (info.hits, info.misses) == (2, 2)


def test_swap_airspace_drops_cached_routes(open_air: Airspace, walled: Airspace) -> None:
    q = Quoter(open_air)
    dest = at(open_air, 3000.0, 0.0)
    before = q.plan(dest, NOW)
    q.swap_airspace(walled)
    after = q.plan(dest, NOW)
    assert not isinstance(before, NoRoute) and not isinstance(after, NoRoute)
    assert after.outbound.length_m > before.outbound.length_m + 100.0
    assert q.cache_info().size == 1


def test_cache_is_bounded_least_recently_used_first(open_air: Airspace) -> None:
    q = Quoter(open_air, QuoteSettings(route_cache_size=2))
    a, b, c = (at(open_air, 1000.0 * k, 0.0) for k in (1, 2, 3))
    pa = q.plan(a, NOW)
    q.plan(b, NOW)
    assert q.plan(a, NOW) is pa  # a is now the most recent
    q.plan(c, NOW)  # evicts b
    assert q.plan(a, NOW) is pa
    misses = q.cache_info().misses
    q.plan(b, NOW)
    assert q.cache_info().misses == misses + 1


def _timed_wall(start_s: float) -> Airspace:
    """The wall east of the nest, active for two hours from `start_s`."""
    when = Applicability(
        datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(start_s + 7200.0, UTC)
    )
    return synthetic_airspace(
        [shapely.box(1400, -1200, 1600, 1200)],
        keep_in_radius_m=6000.0,
        schedules=[Schedule((when,))],
    )


def test_departures_in_one_time_bucket_share_a_route_and_other_buckets_dont() -> None:
    a = _timed_wall(NOW + 10 * 3600.0)
    q = Quoter(a, QuoteSettings(route_time_bucket_s=60.0))
    dest = at(a, 3000.0, 0.0)
    first = q.plan(dest, NOW + 5.0)
    assert q.plan(dest, NOW + 55.0) is first
    assert q.plan(dest, NOW + 65.0) is not first


def test_bucketed_route_avoids_a_zone_starting_within_the_flight_window_of_any_departure() -> None:
    flight_s = Quoter(_timed_wall(NOW)).router.flight_duration_s
    # The wall switches on 30 s after a departure at the bucket's start could have ended its
    # window: a departure 45 s into the bucket is still in the air then.
    a = _timed_wall(NOW + flight_s + 30.0)
    q = Quoter(a, QuoteSettings(route_time_bucket_s=60.0))
    dest = at(a, 3000.0, 0.0)
    late = plan_route(a, a.nest.position, dest, NOW + 45.0)
    early = plan_route(a, a.nest.position, dest, NOW - 100.0)
    assert not isinstance(late, NoRoute) and not isinstance(early, NoRoute)
    assert late.length_m > early.length_m + 100.0  # the setup: the router avoids it at +45 s
    got = q.plan(dest, NOW + 45.0)
    assert not isinstance(got, NoRoute)
    assert got.outbound.length_m == pytest.approx(late.length_m, abs=5.0)
    assert got.inbound.length_m == pytest.approx(late.length_m, abs=5.0)
    assert q.plan(dest, NOW - 100.0) is not got


def test_the_way_back_is_the_way_out_reversed(walled: Airspace) -> None:
    got = Quoter(walled).plan(at(walled, 3000.0, 500.0), NOW)
    assert not isinstance(got, NoRoute)
    assert got.inbound.points == got.outbound.points[::-1]
    independent = plan_delivery(walled, at(walled, 3000.0, 500.0), NOW)
    assert not isinstance(independent, NoRoute)
    assert got.inbound.length_m == pytest.approx(independent.inbound.length_m, abs=5.0)


# -- confidence and the message ---------------------------------------------------------------


def _confidence(q: Quoter, job: Job, f: FleetView) -> float:
    r = q.quote(job, f)
    assert r.eligible, r.reasons
    assert 0.0 <= r.confidence <= 1.0
    return r.confidence


def test_confidence_is_full_for_a_ready_drone_with_a_big_margin_in_calm_air(
    open_air: Airspace,
) -> None:
    assert _confidence(Quoter(open_air), make_job(at(open_air, 1000.0, 0.0)), fleet(drone())) == 1.0


def test_confidence_falls_with_queue_wind_waiting_and_a_thin_margin(open_air: Airspace) -> None:
    q = Quoter(open_air)
    job = make_job(at(open_air, 3000.0, 0.0), mass_kg=2.0)
    base = _confidence(q, job, fleet(drone()))
    queue = [_confidence(q, job, fleet(drone(), queued_ahead=n)) for n in (0, 2, 6)]
    wind = [_confidence(q, job, fleet(drone(), wind=WindVector.from_direction(90.0, w)))
            for w in (0.0, 7.0, 9.5)]
    wait = [_confidence(q, job, fleet(drone(available_in_s=s))) for s in (0.0, 600.0, 3600.0)]
    assert queue[0] == wind[0] == wait[0] == base
    assert queue[0] > queue[1] > queue[2] > 0.0
    assert wind[0] > wind[1] > wind[2] > 0.0
    assert wait[0] > wait[1] > wait[2] > 0.0
    # Barely enough energy: just over what the flight needs with its reserve.
    opts, _ = q.options(job, fleet(drone()))
    needed = opts[0].energy.required_wh + AF.unusable_energy_wh
    thin = _confidence(q, job, fleet(drone(battery_wh=needed + 1.0)))
    assert 0.0 < thin < base


def test_confidence_function_matches_the_quote(open_air: Airspace) -> None:
    q = Quoter(open_air)
    d = drone(battery_wh=300.0)
    f = fleet(d, queued_ahead=1, wind=WindVector.from_direction(10.0, 6.0))
    r = q.quote(make_job(at(open_air, 2000.0, 0.0)), f)
    assert isinstance(r.best, Option)
    assert r.confidence == confidence(r.best, d, f)


def test_eligible_quote_message_carries_the_times_drone_and_validity(open_air: Airspace) -> None:
    q = Quoter(open_air, QuoteSettings(valid_for_s=90.0))
    job = make_job(at(open_air, 2000.0, 0.0))
    r = q.quote(job, fleet(drone(7)))
    msg = q.to_message(job, r, NOW, "store-1")
    assert Quote.model_validate_json(msg.model_dump_json()) == msg
    assert r.best is not None
    assert msg.eligible and msg.drone == 7 and msg.order_id == job.order_id
    assert msg.launch_at is not None and msg.launch_at.timestamp() == r.best.launch_at_s
    assert msg.eta_at_door is not None
    assert msg.eta_at_door.timestamp() == pytest.approx(r.best.eta_door_s, abs=1e-3)
    assert msg.valid_until is not None and msg.valid_until - msg.quoted_at == timedelta(seconds=90)
    assert msg.confidence == r.confidence


def test_ineligible_quote_message_has_reasons_and_no_eta(open_air: Airspace) -> None:
    q = Quoter(open_air)
    job = make_job(at(open_air, 1000.0, 0.0))
    r = q.quote(job, fleet(drone(), launches_allowed=False, hold_reason="gusts"))
    msg = q.to_message(job, r, NOW, "store-1")
    assert not msg.eligible and msg.reasons == r.reasons
    assert msg.eta_at_door is None and msg.launch_at is None and msg.drone is None
    assert msg.confidence == 0.0


def test_phase_times_split_at_the_delivery(open_air: Airspace) -> None:
    r = Quoter(open_air).quote(make_job(at(open_air, 2000.0, 0.0)), fleet(drone()))
    assert r.best is not None
    to_door, flight = phase_times_s(r.best.energy)
    winch = AF.delivery
    cycle = 2 * winch.winch_hover_height_m / winch.winch_rate_mps + winch.release_time_s
    back_cruise_s = r.best.plan.inbound.geodesic_length_m() / AF.cruise_speed_mps
    assert back_cruise_s + cycle < flight - to_door < back_cruise_s + cycle + 60.0
