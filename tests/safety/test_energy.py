"""Energy go/no-go: hand-computed phases, verdicts, limits and monotonic properties."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestd.airspace import LatLon, NoRoute, Waypoint, load_airspace, plan_delivery
from nestd.airspace.waypoints import AltFrame
from nestd.mavlink.state import Wind as VehicleWind
from nestd.safety.airframe import Airframe, DeliveryMethod
from nestd.safety.energy import (
    CALM,
    EnergyDecision,
    EnergyRoute,
    NoGoReason,
    Segment,
    Verdict,
    WindVector,
    battery_energy_from_telemetry,
    evaluate_energy,
    solve_groundspeed,
)
from nestd.safety.errors import RouteError, SafetyError, SafetyInputError

from .helpers import NEST, at, straight_route

AF = Airframe()
NO_DIVERT = Airframe.model_validate({"reserve": {"contingency_divert": False}})
FULL_WH = AF.battery_capacity_wh
ROUTE_2KM = straight_route(2000.0)
NORTH = Segment(1000.0, 0.0, 60.0, 60.0, 1.0, 0.0)


def evaluate(
    route: EnergyRoute = ROUTE_2KM,
    *,
    airframe: Airframe = AF,
    wind: WindVector = CALM,
    payload_kg: float = 1.0,
    battery_energy_wh: float = FULL_WH,
    **kw: object,
) -> EnergyDecision:
    return evaluate_energy(
        airframe,
        route,
        wind=wind,
        payload_kg=payload_kg,
        battery_energy_wh=battery_energy_wh,
        **kw,  # type: ignore[arg-type]
    )


def phase(d: EnergyDecision, name: str) -> float:
    (row,) = [p for p in d.phases if p.phase == name]
    return row.energy_wh


def power_w(mass_kg: float, airspeed_mps: float, climb_mps: float) -> float:
    hover = 950.0 * (mass_kg / 6.5) ** 1.5
    return (
        8.0 + hover * (1 + 0.35 * (airspeed_mps / 25.0) ** 2) + mass_kg * 9.80665 * climb_mps / 0.7
    )


# -- wind vectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_deg", "north", "east"),
    [(0.0, -5.0, 0.0), (90.0, 0.0, -5.0), (180.0, 5.0, 0.0), (270.0, 0.0, 5.0)],
)
def test_wind_from_direction_blows_the_other_way(
    from_deg: float, north: float, east: float
) -> None:
    w = WindVector.from_direction(from_deg, 5.0)
    assert (w.north_mps, w.east_mps) == (
        pytest.approx(north, abs=1e-9),
        pytest.approx(east, abs=1e-9),
    )
    assert w.from_deg == pytest.approx(from_deg)
    assert w.speed_mps == pytest.approx(5.0)


def test_wind_rejects_nan_and_negative_speed() -> None:
    with pytest.raises(SafetyInputError):
        WindVector(math.nan, 0.0)
    with pytest.raises(SafetyError):
        WindVector.from_direction(0.0, -1.0)


def test_wind_vector_convention_matches_vehicle_state() -> None:
    w = VehicleWind(north_mps=3.0, east_mps=-4.0)
    ours = WindVector(north_mps=3.0, east_mps=-4.0)
    assert ours.from_deg == pytest.approx(w.from_deg)
    assert ours.speed_mps == pytest.approx(w.speed_mps)


# -- groundspeed and airspeed -----------------------------------------------------------


@pytest.mark.parametrize(
    ("wind", "ground", "air", "head", "cross"),
    [
        (CALM, 25.0, 25.0, 0.0, 0.0),
        (WindVector.from_direction(180.0, 5.0), 25.0, 20.0, -5.0, 0.0),  # tailwind going north
        (WindVector.from_direction(0.0, 2.0), 25.0, 27.0, 2.0, 0.0),  # headwind under the cap
        (WindVector.from_direction(0.0, 5.0), 23.0, 28.0, 5.0, 0.0),  # capped: slows down
        (WindVector.from_direction(90.0, 10.0), 25.0, math.hypot(25, 10), 0.0, 10.0),
        (WindVector.from_direction(90.0, 20.0), math.sqrt(28**2 - 20**2), 28.0, 0.0, 20.0),
    ],
)
def test_solve_groundspeed_table(
    wind: WindVector, ground: float, air: float, head: float, cross: float
) -> None:
    sol = solve_groundspeed(AF, NORTH, wind)
    assert sol is not None
    assert sol == pytest.approx((ground, air, head, cross), abs=1e-9)


@pytest.mark.parametrize(
    "wind",
    [WindVector.from_direction(0.0, 26.0), WindVector.from_direction(90.0, 29.0)],
    ids=["headwind_leaves_2mps", "crosswind_over_max_airspeed"],
)
def test_no_headway_is_none(wind: WindVector) -> None:
    assert solve_groundspeed(AF, NORTH, wind) is None


# -- hand-computed phases ---------------------------------------------------------------


def test_calm_phases_match_hand_computation() -> None:
    d = evaluate(payload_kg=1.0)
    loaded, empty = 7.5, 6.5
    # Each leg: length / speed, plus speed / acceleration for speeding up and braking.
    climb_s, cruise_s = 60 / 4 + 4 / 3, 2000 / 25 + 25 / 4
    assert phase(d, "takeoff_climb") == pytest.approx(power_w(loaded, 0, 4) * climb_s / 3600)
    cruise_out = power_w(loaded, 25, 0) * cruise_s / 3600
    assert phase(d, "cruise_out_1") == pytest.approx(cruise_out, rel=1e-6)
    drop_s = 53 / 3 + 3 / 3
    assert phase(d, "descent_to_drop") == pytest.approx(power_w(loaded, 0, 0) * drop_s / 3600)
    assert phase(d, "winch_lower_release") == pytest.approx(power_w(loaded, 0, 0) * 17 / 3600)
    assert phase(d, "winch_raise") == pytest.approx(power_w(empty, 0, 0) * 7 / 3600)
    up_s = 53 / 4 + 4 / 3
    assert phase(d, "climb_after_drop") == pytest.approx(power_w(empty, 0, 4) * up_s / 3600)
    cruise_back = power_w(empty, 25, 0) * cruise_s / 3600
    assert phase(d, "cruise_back_1") == pytest.approx(cruise_back, rel=1e-6)
    # 52 m at 3 m/s, then the last 8 m at 0.7 m/s.
    landing_s = 52 / 3 + 1 + 8 / 0.7
    assert phase(d, "approach_landing") == pytest.approx(power_w(empty, 0, 0) * landing_s / 3600)
    assert phase(d, "landing_reserve") == pytest.approx(0.2 * 0.9 * 488)
    flight = sum(p.energy_wh for p in d.phases if not p.phase.startswith(("cont", "landing_r")))
    assert d.flight_wh == pytest.approx(flight)


def test_without_safe_sites_the_divert_returns_to_the_nest() -> None:
    d = evaluate(payload_kg=1.0)
    divert = phase(d, "contingency_divert")
    assert divert == pytest.approx(power_w(7.5, 25, 0) * (80 + 25 / 4) / 3600, rel=1e-6)
    assert d.contingency_wh == pytest.approx(divert + phase(d, "contingency_landing"))


def test_divert_goes_to_the_nearest_safe_site_from_the_farthest_point() -> None:
    near, far = at(500.0, 2000.0), at(-3000.0, 0.0)
    r = straight_route(2000.0, safe_sites=[far, near])
    assert r.divert_site == near
    assert r.farthest == pytest.approx(at(0.0, 2000.0))
    assert r.divert.distance_m == pytest.approx(500.0, abs=0.5)


def test_headwind_leg_records_head_and_crosswind() -> None:
    d = evaluate(wind=WindVector.from_direction(30.0, 6.0))
    (row,) = [p for p in d.phases if p.phase == "cruise_out_1"]
    assert row.headwind_mps == pytest.approx(6 * math.cos(math.radians(30)), abs=1e-3)
    assert row.crosswind_mps == pytest.approx(3.0, abs=1e-3)


def test_hovering_in_wind_costs_forward_power() -> None:
    calm = evaluate()
    windy = evaluate(wind=WindVector.from_direction(90.0, 8.0))
    assert phase(windy, "winch_raise") == pytest.approx(power_w(6.5, 8.0, 0) * 7 / 3600)
    assert phase(windy, "winch_raise") > phase(calm, "winch_raise")


def test_land_delivery_idles_on_the_ground_instead_of_winching() -> None:
    af = Airframe.model_validate({"delivery": {"method": "land", "ground_time_s": 30.0}})
    d = evaluate(straight_route(2000.0, airframe=af), airframe=af)
    names = [p.phase for p in d.phases]
    assert "ground_release" in names and not any(n.startswith("winch") for n in names)
    assert phase(d, "ground_release") == pytest.approx((8 + 950 * 0.08) * 30 / 3600)
    assert af.delivery.method is DeliveryMethod.LAND


# -- verdicts ---------------------------------------------------------------------------


def test_short_delivery_on_a_full_battery_is_go() -> None:
    d = evaluate()
    assert d.verdict is Verdict.GO and d.go and d.reasons == ()
    assert d.margin_wh == pytest.approx(AF.usable_energy_wh - d.required_wh)
    assert d.required_wh == pytest.approx(d.flight_wh + d.contingency_wh + d.reserve_wh)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"payload_kg": 2.5}, NoGoReason.PAYLOAD_OVER_MAX),
        ({"wind": WindVector.from_direction(0.0, 10.5)}, NoGoReason.WIND_OVER_LIMIT),
        ({"route": straight_route(12_000.0)}, NoGoReason.EXCEEDS_FULL_BATTERY),
    ],
)
def test_no_go_reasons(kwargs: dict[str, object], reason: NoGoReason) -> None:
    d = evaluate(**kwargs)  # type: ignore[arg-type]
    assert d.verdict is Verdict.NO_GO
    assert reason in [r.code for r in d.reasons]


def test_leg_without_headway_is_no_go_naming_the_leg() -> None:
    # Over the wind limit as well, but the headway reason must still name the stuck leg.
    d = evaluate(wind=WindVector.from_direction(0.0, 26.0))
    codes = {r.code: r.message for r in d.reasons}
    assert d.verdict is Verdict.NO_GO
    assert "cruise_out_1" in codes[NoGoReason.NO_HEADWAY]
    assert d.max_payload_kg is None


def test_low_battery_is_not_ready_with_a_charge_time() -> None:
    need = evaluate().required_wh
    battery = need + AF.unusable_energy_wh - 50.0  # 50 Wh short
    d = evaluate(battery_energy_wh=battery, charge_power_w=300.0, now_s=1000.0)
    assert d.verdict is Verdict.NOT_READY_UNTIL_CHARGED and not d.go
    assert [r.code for r in d.reasons] == [NoGoReason.BATTERY_LOW]
    assert d.margin_wh == pytest.approx(-50.0)
    assert d.ready_in_s == pytest.approx(50.0 / 300.0 * 3600.0)
    assert d.ready_at_s == pytest.approx(1000.0 + 600.0)


def test_route_a_full_battery_cant_fly_is_no_go_not_a_wait() -> None:
    d = evaluate(straight_route(12_000.0), battery_energy_wh=100.0)
    assert d.verdict is Verdict.NO_GO and d.ready_in_s is None


def test_unusable_share_is_never_available() -> None:
    d = evaluate(battery_energy_wh=FULL_WH * 0.05)
    assert d.available_wh == pytest.approx(FULL_WH * 0.05 - FULL_WH * 0.1)


@pytest.mark.parametrize(
    "kwargs",
    [{"payload_kg": -0.1}, {"payload_kg": math.nan}, {"battery_energy_wh": math.inf}],
)
def test_bad_inputs_raise_typed_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(SafetyInputError):
        evaluate(**kwargs)  # type: ignore[arg-type]


# -- limits for the quote ---------------------------------------------------------------


def test_max_payload_is_the_heaviest_parcel_that_is_still_go() -> None:
    route = straight_route(3000.0)
    battery = 330.0
    d = evaluate(route, battery_energy_wh=battery, payload_kg=0.0)
    assert d.max_payload_kg is not None and 0.0 < d.max_payload_kg < AF.max_payload_kg
    at_max = evaluate(route, battery_energy_wh=battery, payload_kg=d.max_payload_kg)
    over = evaluate(route, battery_energy_wh=battery, payload_kg=d.max_payload_kg + 0.01)
    assert at_max.go and 0.0 <= at_max.margin_wh < 0.01
    assert over.verdict is Verdict.NOT_READY_UNTIL_CHARGED


def test_max_payload_is_capped_by_the_airframe() -> None:
    assert evaluate().max_payload_kg == AF.max_payload_kg


@pytest.mark.parametrize("track_deg", [0.0, 135.0])
def test_max_range_in_calm_air_is_where_the_margin_runs_out(track_deg: float) -> None:
    d = evaluate(straight_route(1000.0), airframe=NO_DIVERT, payload_kg=1.5)
    reach = d.max_range_m
    inside = evaluate(straight_route(reach - 20, track_deg), airframe=NO_DIVERT, payload_kg=1.5)
    outside = evaluate(straight_route(reach + 20, track_deg), airframe=NO_DIVERT, payload_kg=1.5)
    assert inside.go and not outside.go


def test_max_range_shrinks_in_wind() -> None:
    calm = evaluate(payload_kg=1.5).max_range_m
    windy = evaluate(payload_kg=1.5, wind=WindVector.from_direction(45.0, 8.0)).max_range_m
    assert 0 < windy < calm


# -- routes -----------------------------------------------------------------------------


def test_route_from_the_routers_delivery_plan() -> None:
    a = load_airspace("geofences/us-tx-richardson.geojson")
    t = datetime(2026, 11, 24, 15, 0, tzinfo=ZoneInfo("America/Chicago"))
    plan = plan_delivery(a, LatLon(32.9500, -96.7480), t)
    assert not isinstance(plan, NoRoute)
    sites = [s.position for s in a.safe_landing_sites]
    r = EnergyRoute.from_delivery_plan(plan, AF.delivery.delivery_alt_agl_m, sites)
    horizontal = plan.outbound.geodesic_length_m() + plan.inbound.geodesic_length_m()
    assert r.length_m == pytest.approx(horizontal, rel=1e-6)
    assert r.outbound[-1].end_alt_m == AF.delivery.delivery_alt_agl_m
    assert r.inbound[-1].end_alt_m == 0.0
    assert r.divert_site in sites
    d = evaluate(r, wind=WindVector.from_direction(270.0, 8.0), payload_kg=2.0)
    names = [p.phase for p in d.phases]
    assert names[0] == "takeoff_climb" and names[-1] == "landing_reserve"
    assert "approach_landing" in names and d.go


def _wp(p: LatLon, alt: float, frame: AltFrame = AltFrame.RELATIVE_HOME) -> Waypoint:
    return Waypoint(p.lat_deg, p.lon_deg, alt, frame)


@pytest.mark.parametrize(
    ("out", "back"),
    [
        ([_wp(NEST, 0)], [_wp(NEST, 0), _wp(NEST, 0)]),
        ([_wp(NEST, 0), _wp(at(0, 1000), 60)], [_wp(at(0, 900), 60), _wp(NEST, 0)]),
        ([_wp(NEST, 0), _wp(NEST, 60, AltFrame.AMSL)], [_wp(NEST, 60), _wp(NEST, 0)]),
        ([_wp(NEST, 0), _wp(NEST, -5)], [_wp(NEST, -5), _wp(NEST, 0)]),
    ],
    ids=["too_few_points", "inbound_not_at_drop", "amsl_frame", "below_ground"],
)
def test_bad_routes_raise_route_error(out: list[Waypoint], back: list[Waypoint]) -> None:
    with pytest.raises(RouteError):
        EnergyRoute.from_waypoints(out, back)


def test_breakdown_table_lists_every_phase() -> None:
    d = evaluate()
    text = d.table()
    assert all(p.phase in text for p in d.phases) and "margin" in text


# -- properties -------------------------------------------------------------------------

payloads = st.floats(0.0, 2.3)
winds = st.builds(WindVector.from_direction, st.floats(0.0, 360.0), st.floats(0.0, 15.0))


@given(p1=payloads, p2=payloads, wind=winds)
def test_more_payload_never_needs_less_energy(p1: float, p2: float, wind: WindVector) -> None:
    lo, hi = sorted((p1, p2))
    a = evaluate(payload_kg=lo, wind=wind, with_limits=False)
    b = evaluate(payload_kg=hi, wind=wind, with_limits=False)
    assert b.required_wh >= a.required_wh - 1e-9


@given(head=st.floats(0.0, 20.0), cross=st.floats(-15.0, 15.0), payload=payloads)
def test_a_headwind_never_costs_less_than_calm_air(
    head: float, cross: float, payload: float
) -> None:
    # ROUTE_2KM flies north first: wind towards the south is against it.
    wind = WindVector(-head, cross)
    calm = evaluate(payload_kg=payload, with_limits=False)
    windy = evaluate(payload_kg=payload, wind=wind, with_limits=False)
    if any(r.code is NoGoReason.NO_HEADWAY for r in windy.reasons):
        return  # no energy figure for a leg that can't be flown; its verdict is pinned above
    assert phase(windy, "cruise_out_1") >= phase(calm, "cruise_out_1") - 1e-9


@settings(max_examples=40, deadline=None)
@given(d1=st.floats(100.0, 8000.0), d2=st.floats(100.0, 8000.0), track=st.floats(0, 360))
def test_more_distance_never_needs_less_energy(d1: float, d2: float, track: float) -> None:
    lo, hi = sorted((d1, d2))
    wind = WindVector.from_direction(200.0, 7.0)
    a = evaluate(straight_route(lo, track), wind=wind, with_limits=False)
    b = evaluate(straight_route(hi, track), wind=wind, with_limits=False)
    assert b.required_wh >= a.required_wh - 1e-9


@given(wind=winds)
def test_empty_round_trip_in_any_wind_never_beats_calm(wind: WindVector) -> None:
    # Out and back along one line at one mass: the wind's help one way never pays for its
    # cost the other way (power is convex in airspeed), and hovering in wind costs more.
    calm = evaluate(airframe=NO_DIVERT, payload_kg=0.0, with_limits=False)
    windy = evaluate(airframe=NO_DIVERT, payload_kg=0.0, wind=wind, with_limits=False)
    assert windy.flight_wh >= calm.flight_wh - 1e-9


@given(payload=payloads, battery=st.floats(0.0, 488.0), wind=winds)
def test_go_exactly_when_the_margin_covers_everything(
    payload: float, battery: float, wind: WindVector
) -> None:
    d = evaluate(payload_kg=payload, battery_energy_wh=battery, wind=wind, with_limits=False)
    assert d.go == (d.margin_wh >= 0 and wind.speed_mps <= AF.max_wind_sustained_mps)
    if d.required_wh > d.available_wh:
        assert not d.go


@pytest.mark.parametrize(
    ("pct", "consumed", "wh"),
    [
        (50.0, None, 244.0),
        (None, 88.0, 400.0),
        (90.0, 150.0, 338.0),  # consumed says less: the lower one is planned on
        (90.0, 10.0, 439.2),  # the percentage says less
        (None, None, None),
        (130.0, None, 488.0),
    ],
)
def test_battery_energy_from_telemetry_takes_the_lower_estimate(
    pct: float | None, consumed: float | None, wh: float | None
) -> None:
    got = battery_energy_from_telemetry(AF, remaining_pct=pct, consumed_wh=consumed)
    assert got == (None if wh is None else pytest.approx(wh))


@settings(max_examples=40, deadline=None)
@given(wind=winds, track=st.floats(0.0, 360.0), payload=payloads)
def test_max_range_holds_in_every_heading(wind: WindVector, track: float, payload: float) -> None:
    # The range is the worst heading's, searched every 10 degrees: 2% inside it must be a go
    # whichever way the customer lies.
    calm_wind = wind if wind.speed_mps <= AF.max_wind_sustained_mps else CALM
    base = evaluate(airframe=NO_DIVERT, payload_kg=payload, wind=calm_wind)
    reach = 0.98 * base.max_range_m
    d = evaluate(
        straight_route(reach, track), airframe=NO_DIVERT, payload_kg=payload, wind=calm_wind
    )
    assert d.go, d.table()
