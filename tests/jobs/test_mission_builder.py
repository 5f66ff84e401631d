"""The delivery mission builder and its MAVLink items: order, stages, legality, refusals."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import shapely
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.airspace import (
    Airspace,
    DeliveryPlan,
    FenceItem,
    FencePlan,
    LatLon,
    NoRoute,
    Route,
    ViolationKind,
    Waypoint,
    distance_m,
    plan_delivery,
    validate_mission,
)
from nestd.airspace.testing import synthetic_airspace
from nestd.jobs import mission as jm
from nestd.jobs.mission import (
    BuiltMission,
    MissionStyle,
    PlannedItem,
    Stage,
    build_delivery_mission,
)
from nestd.mavlink.items import fence_items, mission_items, mission_style, rally_items
from nestd.mavlink.profiles import FirmwareProfile, load_profiles
from nestd.mavlink.protocols.mission import FENCE, MISSION, RALLY
from nestd.safety.airframe import DEFAULT_AIRFRAME, Airframe, Delivery, DeliveryMethod

PROFILES_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
KEEP_OUT_XY = (150.0, 130.0)
GOAL_XY = (300.0, 260.0)
PAD_XY = (6.0, 0.0)
DEPART = 1_750_000_000.0

PX4 = MissionStyle(seq0_is_home=False)
ARDUPILOT = MissionStyle(
    seq0_is_home=True,
    methods=frozenset({DeliveryMethod.WINCH}),
    frame_no_position=jm.MAV_FRAME_GLOBAL,
    waypoint_radius=False,
    nav_yaw_deg=0.0,
    land_param4=1.0,
)

WP, LAND, TAKEOFF = jm.MAV_CMD_NAV_WAYPOINT, jm.MAV_CMD_NAV_LAND, jm.MAV_CMD_NAV_TAKEOFF
DELAY, SPEED = jm.MAV_CMD_NAV_DELAY, jm.MAV_CMD_DO_CHANGE_SPEED
WINCH, GRIPPER = jm.MAV_CMD_DO_WINCH, jm.MAV_CMD_DO_GRIPPER


@pytest.fixture(scope="module")
def airspace() -> Airspace:
    """A store with one keep-out square on the straight line from the nest to the customer."""
    x, y = KEEP_OUT_XY
    return synthetic_airspace([shapely.box(x - 50, y - 50, x + 50, y + 50)])


@pytest.fixture(scope="module")
def plan(airspace: Airspace) -> DeliveryPlan:
    got = plan_delivery(airspace, airspace.to_wgs84(*GOAL_XY), DEPART)
    assert not isinstance(got, NoRoute), got
    return got


@pytest.fixture(scope="module")
def pad(airspace: Airspace) -> LatLon:
    return airspace.to_wgs84(*PAD_XY)


@pytest.fixture(scope="module")
def profiles() -> dict[str, FirmwareProfile]:
    return load_profiles(PROFILES_DIR)


def build(plan: DeliveryPlan, pad: LatLon, style: MissionStyle = PX4,
          method: DeliveryMethod = DeliveryMethod.WINCH, airframe: Airframe = DEFAULT_AIRFRAME,
          cruise_speed_mps: float | None = 20.0) -> BuiltMission:
    return build_delivery_mission(plan, airframe, style, pad=pad, method=method,
                                  cruise_speed_mps=cruise_speed_mps)


def commands(built: BuiltMission) -> list[int]:
    return [it.command for it in built.items]


def squeeze(cmds: list[int]) -> list[int]:
    """Runs of route waypoints collapsed to one, so the order reads like the flight."""
    out: list[int] = []
    for c in cmds:
        if not (c == WP and out and out[-1] == WP):
            out.append(c)
    return out


# -- MAVLink numbers ----------------------------------------------------------------------


def test_mavlink_numbers_copied_into_the_domain_equal_pymavlink() -> None:
    for name in (
        "MAV_CMD_NAV_WAYPOINT", "MAV_CMD_NAV_LAND", "MAV_CMD_NAV_TAKEOFF", "MAV_CMD_NAV_DELAY",
        "MAV_CMD_DO_CHANGE_SPEED", "MAV_CMD_DO_GRIPPER", "MAV_CMD_DO_WINCH", "MAV_FRAME_GLOBAL",
        "MAV_FRAME_MISSION", "MAV_FRAME_GLOBAL_RELATIVE_ALT", "WINCH_RELATIVE_LENGTH_CONTROL",
        "GRIPPER_ACTION_RELEASE",
    ):
        assert getattr(jm, name) == getattr(mav, name), name
    # DO_CHANGE_SPEED param1: 0 airspeed, 1 ground speed (SPEED_TYPE enum)
    assert jm.SPEED_TYPE_GROUNDSPEED == mav.SPEED_TYPE_GROUNDSPEED


# -- item order per firmware and method ---------------------------------------------------


def test_px4_winch_mission_takes_off_flies_out_winches_returns_and_lands_on_the_pad(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad)
    assert squeeze(commands(built)) == [
        TAKEOFF, SPEED, WP,  # take-off column on the pad, cruise speed, outbound route
        # the last outbound point is the customer at cruise, then the hover point
        WINCH, DELAY, GRIPPER, DELAY, WINCH, DELAY,
        WP, LAND,  # climb, return route, pad leg; land on the pad
    ]
    takeoff = built.items[0]
    assert (takeoff.lat_deg, takeoff.lon_deg) == (pad.lat_deg, pad.lon_deg)
    assert takeoff.alt_m == plan.outbound.cruise_alt_agl_m
    hover = built.items[built.delivery_seq]
    assert hover.command == WP
    assert hover.alt_m == DEFAULT_AIRFRAME.delivery.winch_hover_height_m
    assert (hover.lat_deg, hover.lon_deg) == (built.destination.lat_deg,
                                              built.destination.lon_deg)
    land = built.items[-1]
    assert (land.lat_deg, land.lon_deg, land.alt_m) == (pad.lat_deg, pad.lon_deg, 0.0)
    assert mav.MAV_CMD_NAV_RETURN_TO_LAUNCH not in commands(built)  # the pad, not home


def test_px4_land_delivery_lands_releases_waits_and_takes_off_again(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad, method=DeliveryMethod.LAND)
    assert squeeze(commands(built)) == [
        TAKEOFF, SPEED, WP,
        LAND, GRIPPER, DELAY, TAKEOFF,  # touch down at the customer, release, wait, go
        WP, LAND,
    ]
    touchdown = built.items[built.delivery_seq]
    assert touchdown.command == LAND
    assert (touchdown.lat_deg, touchdown.lon_deg) == (built.destination.lat_deg,
                                                      built.destination.lon_deg)
    assert built.items[built.delivery_seq + 2].param1 == DEFAULT_AIRFRAME.delivery.ground_time_s
    climb = built.items[built.delivery_seq + 3]
    assert climb.command == TAKEOFF and climb.alt_m == plan.inbound.cruise_alt_agl_m


def test_ardupilot_mission_has_a_home_placeholder_at_seq_0_then_takes_off(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad, style=ARDUPILOT)
    home = built.items[0]
    assert home.command == WP
    assert (home.lat_deg, home.lon_deg, home.alt_m) == (pad.lat_deg, pad.lon_deg, 0.0)
    assert commands(built)[1] == TAKEOFF
    px4 = build(plan, pad)
    assert commands(built)[1:] == commands(px4)
    assert (built.release_seq, built.delivery_seq, built.land_seq) == (
        px4.release_seq + 1, px4.delivery_seq + 1, px4.land_seq + 1)


def test_ardupilot_items_carry_what_arducopter_reads_back(plan: DeliveryPlan,
                                                          pad: LatLon) -> None:
    built = build(plan, pad, style=ARDUPILOT)
    for it in built.items:
        if it.command in (WP, TAKEOFF):
            assert (it.param2, it.param3, it.param4) == (0.0, 0.0, 0.0)
            assert it.param1 == int(it.param1)  # a uint16 hold time
        elif it.command == LAND:
            assert it.param4 == 1.0
        else:
            assert it.frame == jm.MAV_FRAME_GLOBAL
        assert it.alt_m == round(it.alt_m, 2)  # stored in whole centimetres


def test_px4_items_keep_the_yaw_mode_and_use_mission_frame_for_items_without_position(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad)
    for it in built.items:
        if it.command in (WP, TAKEOFF, LAND):
            assert it.frame == jm.MAV_FRAME_GLOBAL_RELATIVE_ALT
            assert math.isnan(it.param4)
        else:
            assert it.frame == jm.MAV_FRAME_MISSION
            assert (it.lat_deg, it.lon_deg, it.alt_m) == (0.0, 0.0, 0.0)
    assert built.items[built.delivery_seq].param2 == jm.HOVER_ACCEPT_RADIUS_M


def test_on_ardupilot_every_do_item_follows_a_nav_item_and_is_held_by_a_delay(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    # AP_Mission starts the DO items after a NAV item together when that NAV item ends:
    # a gripper right after the winch would open while the line is still going down.
    built = build(plan, pad, style=ARDUPILOT)
    cmds = commands(built)
    for i, c in enumerate(cmds):
        if c in (WINCH, GRIPPER):
            assert cmds[i + 1] == DELAY, i
            assert cmds[i - 1] in (WP, DELAY), i


def test_winch_pays_out_past_the_hover_height_and_takes_the_same_line_back(
    plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad)
    winch = [it for it in built.items if it.command == WINCH]
    assert len(winch) == 2
    down, up = winch
    hover = DEFAULT_AIRFRAME.delivery.winch_hover_height_m
    assert down.param2 == up.param2 == jm.WINCH_RELATIVE_LENGTH_CONTROL
    assert down.param3 == pytest.approx(hover + jm.WINCH_SLACK_M)
    assert up.param3 == -down.param3
    assert down.param4 == up.param4 == DEFAULT_AIRFRAME.delivery.winch_rate_mps
    lower_hold = built.items[built.items.index(down) + 1]
    assert lower_hold.param1 >= down.param3 / down.param4
    release_hold = built.items[built.release_seq + 1]
    assert release_hold.command == DELAY
    assert release_hold.param1 == DEFAULT_AIRFRAME.delivery.release_time_s
    gripper = built.items[built.release_seq]
    assert (gripper.param1, gripper.param2) == (1.0, jm.GRIPPER_ACTION_RELEASE)


def test_holds_are_whole_seconds_and_never_zero(plan: DeliveryPlan, pad: LatLon) -> None:
    airframe = DEFAULT_AIRFRAME.model_copy(update={"delivery": Delivery(
        release_time_s=0.0, winch_rate_mps=0.7, winch_hover_height_m=6.3)})
    built = build(plan, pad, airframe=airframe)
    delays = [it.param1 for it in built.items if it.command == DELAY]
    assert delays == [math.ceil(6.8 / 0.7 + jm.WINCH_MARGIN_S), 1.0,
                      math.ceil(6.8 / 0.7 + jm.WINCH_MARGIN_S)]


def test_cruise_speed_is_set_after_take_off_only_when_given(plan: DeliveryPlan,
                                                            pad: LatLon) -> None:
    built = build(plan, pad, cruise_speed_mps=18.5)
    speed = built.items[1]
    assert (speed.command, speed.param1, speed.param2) == (
        SPEED, jm.SPEED_TYPE_GROUNDSPEED, 18.5)
    assert SPEED not in commands(build(plan, pad, cruise_speed_mps=None))


def test_pad_off_the_nest_gets_its_own_legs_and_a_pad_at_the_nest_does_not(
    airspace: Airspace, plan: DeliveryPlan, pad: LatLon
) -> None:
    nest = airspace.nest.position
    off = build(plan, pad)
    at_nest = build(plan, nest)
    assert len(off.items) == len(at_nest.items) + 2
    pad_leg = off.items[off.land_seq - 1]
    assert (pad_leg.command, pad_leg.lat_deg, pad_leg.lon_deg) == (WP, pad.lat_deg, pad.lon_deg)
    assert pad_leg.alt_m == plan.inbound.cruise_alt_agl_m
    assert off.stages[off.land_seq - 1] is Stage.INBOUND
    last_route = at_nest.items[at_nest.land_seq - 1]
    assert (last_route.lat_deg, last_route.lon_deg) == (nest.lat_deg, nest.lon_deg)


def test_the_return_climbs_to_its_own_layer_and_flies_home_there(plan: DeliveryPlan,
                                                                  pad: LatLon) -> None:
    high_back = DeliveryPlan(plan.outbound,
                             dataclasses.replace(plan.inbound, cruise_alt_agl_m=60.0))
    built = build(high_back, pad)
    climb = built.stages.index(Stage.CLIMB)
    assert [it.alt_m for it in built.items[climb:built.land_seq]] == [60.0] * (
        built.land_seq - climb)
    assert {it.alt_m for i, it in enumerate(built.items)
            if built.stages[i] is Stage.OUTBOUND and it.command == WP} == {40.0}
    assert (built.cruise_alt_m, built.max_alt_m) == (40.0, 60.0)


# -- stages and the seqs the executor watches ---------------------------------------------


@pytest.mark.parametrize(
    ("style", "method"),
    [(PX4, DeliveryMethod.WINCH), (PX4, DeliveryMethod.LAND), (ARDUPILOT, DeliveryMethod.WINCH)],
    ids=["px4-winch", "px4-land", "ardupilot-winch"],
)
def test_stages_line_up_with_items_in_flight_order(
    plan: DeliveryPlan, pad: LatLon, style: MissionStyle, method: DeliveryMethod
) -> None:
    built = build(plan, pad, style=style, method=method)
    assert len(built.stages) == len(built.items)
    order = list(Stage)
    ranks = [order.index(s) for s in built.stages]
    assert ranks == sorted(ranks)
    assert set(built.stages) == set(Stage)
    by_stage = {s: [built.items[i].command for i, t in enumerate(built.stages) if t is s]
                for s in Stage}
    assert set(by_stage[Stage.OUTBOUND]) <= {WP, SPEED}
    assert set(by_stage[Stage.INBOUND]) == {WP}
    assert by_stage[Stage.LAND] == [LAND]
    assert by_stage[Stage.DESCEND] == [WP if method is DeliveryMethod.WINCH else LAND]
    assert by_stage[Stage.CLIMB] == [WP if method is DeliveryMethod.WINCH else TAKEOFF]
    assert GRIPPER in by_stage[Stage.RELEASE]
    assert built.stage(built.release_seq) is Stage.RELEASE
    assert built.stage(len(built.items) + 3) is Stage.LAND


@pytest.mark.parametrize(
    ("style", "method"),
    [(PX4, DeliveryMethod.WINCH), (PX4, DeliveryMethod.LAND), (ARDUPILOT, DeliveryMethod.WINCH)],
    ids=["px4-winch", "px4-land", "ardupilot-winch"],
)
def test_release_delivery_and_land_seqs_point_at_their_commands(
    plan: DeliveryPlan, pad: LatLon, style: MissionStyle, method: DeliveryMethod
) -> None:
    built = build(plan, pad, style=style, method=method)
    release = built.items[built.release_seq]
    assert (release.command, release.param2) == (GRIPPER, jm.GRIPPER_ACTION_RELEASE)
    assert [i for i, it in enumerate(built.items) if it.command == GRIPPER] == [built.release_seq]
    delivery = built.items[built.delivery_seq]
    assert delivery.command == (WP if method is DeliveryMethod.WINCH else LAND)
    assert distance_m(LatLon(delivery.lat_deg, delivery.lon_deg), built.destination) < 1e-6
    assert built.land_seq == len(built.items) - 1
    assert built.items[built.land_seq].command == LAND
    assert built.delivery_seq < built.release_seq < built.land_seq


# -- legality against the airspace ---------------------------------------------------------


def test_the_route_bends_around_the_keep_out(airspace: Airspace, plan: DeliveryPlan) -> None:
    assert len(plan.outbound.points) > 2 and len(plan.inbound.points) > 2
    straight = [Waypoint(p.lat_deg, p.lon_deg, 40.0)
                for p in (airspace.nest.position, airspace.to_wgs84(*GOAL_XY))]
    kinds = {v.kind for v in validate_mission(airspace, straight, DEPART)}
    assert ViolationKind.KEEP_OUT in kinds


@pytest.mark.parametrize(
    ("style", "method"),
    [(PX4, DeliveryMethod.WINCH), (PX4, DeliveryMethod.LAND), (ARDUPILOT, DeliveryMethod.WINCH)],
    ids=["px4-winch", "px4-land", "ardupilot-winch"],
)
def test_built_waypoints_pass_validate_mission(
    airspace: Airspace, plan: DeliveryPlan, pad: LatLon, style: MissionStyle,
    method: DeliveryMethod,
) -> None:
    built = build(plan, pad, style=style, method=method)
    assert validate_mission(airspace, built.waypoints, DEPART) == []
    assert validate_mission(airspace, built.waypoints, DEPART, home=pad) == []
    first, last = built.waypoints[0], built.waypoints[-1]
    assert (first.lat_deg, first.lon_deg, first.alt_m) == (pad.lat_deg, pad.lon_deg, 0.0)
    assert (last.lat_deg, last.lon_deg, last.alt_m) == (pad.lat_deg, pad.lon_deg, 0.0)


def test_a_waypoint_moved_into_the_keep_out_fails_validate_mission(
    airspace: Airspace, plan: DeliveryPlan, pad: LatLon
) -> None:
    built = build(plan, pad)
    inside = airspace.to_wgs84(*KEEP_OUT_XY)
    wps = list(built.waypoints)
    wps[3] = dataclasses.replace(wps[3], lat_deg=inside.lat_deg, lon_deg=inside.lon_deg)
    violations = validate_mission(airspace, wps, DEPART)
    assert any(v.kind is ViolationKind.KEEP_OUT and v.feature_id == "z0" for v in violations)


def test_every_altitude_is_finite_and_within_the_keep_in_ceiling(
    airspace: Airspace, plan: DeliveryPlan, pad: LatLon
) -> None:
    for method in DeliveryMethod:
        built = build(plan, pad, method=method)
        alts = [it.alt_m for it in built.items] + [w.alt_m for w in built.waypoints]
        assert all(math.isfinite(a) and 0.0 <= a <= airspace.keep_in.ceiling_m for a in alts)
        assert built.cruise_alt_m == plan.outbound.cruise_alt_agl_m
        assert built.max_alt_m == max(plan.outbound.cruise_alt_agl_m,
                                      plan.inbound.cruise_alt_agl_m)


# -- refusals ------------------------------------------------------------------------------


def _route(points: tuple[LatLon, ...], alt: float = 40.0) -> Route:
    return Route(points=points, xy_m=tuple((0.0, 0.0) for _ in points), cruise_alt_agl_m=alt,
                 length_m=0.0, depart_at=DEPART)


def test_refuses_empty_and_one_point_routes(plan: DeliveryPlan, pad: LatLon) -> None:
    for points in ((), (plan.outbound.points[0],)):
        bad = DeliveryPlan(_route(points), plan.inbound)
        with pytest.raises(ValueError, match=r"outbound route has .* point"):
            build(bad, pad)
    bad = DeliveryPlan(plan.outbound, _route(()))
    with pytest.raises(ValueError, match="return route has 0 point"):
        build(bad, pad)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_refuses_non_finite_positions_and_altitudes(plan: DeliveryPlan, pad: LatLon,
                                                    value: float) -> None:
    with pytest.raises(ValueError, match=r"pad .* not a finite"):
        build(plan, LatLon(value, pad.lon_deg))
    pts = list(plan.outbound.points)
    pts[1] = LatLon(pts[1].lat_deg, value)
    bad = DeliveryPlan(dataclasses.replace(plan.outbound, points=tuple(pts)), plan.inbound)
    with pytest.raises(ValueError, match=r"outbound route point 1 .* not a finite"):
        build(bad, pad)
    bad = DeliveryPlan(plan.outbound, dataclasses.replace(plan.inbound, cruise_alt_agl_m=value))
    with pytest.raises(ValueError, match="return cruise altitude"):
        build(bad, pad)
    with pytest.raises(ValueError, match="cruise speed"):
        build(plan, pad, cruise_speed_mps=value)


def test_refuses_land_delivery_with_a_winch_only_style(plan: DeliveryPlan, pad: LatLon) -> None:
    with pytest.raises(ValueError, match=r"land delivery is not supported .* winch"):
        build(plan, pad, style=ARDUPILOT, method=DeliveryMethod.LAND)


def test_refuses_a_winch_delivery_on_an_airframe_without_a_winch(plan: DeliveryPlan,
                                                                  pad: LatLon) -> None:
    lander = DEFAULT_AIRFRAME.model_copy(
        update={"delivery": Delivery(method=DeliveryMethod.LAND)})
    with pytest.raises(ValueError, match="has no winch"):
        build(plan, pad, airframe=lander)
    assert build(plan, pad, airframe=lander, method=DeliveryMethod.LAND).release_seq > 0


def test_refuses_infinite_delivery_times(plan: DeliveryPlan, pad: LatLon) -> None:
    forever = DEFAULT_AIRFRAME.model_copy(
        update={"delivery": Delivery(release_time_s=math.inf)})
    with pytest.raises(ValueError, match="release_time_s must be finite"):
        build(plan, pad, airframe=forever)


def test_refuses_a_cruise_speed_faster_than_the_airframe_flies(plan: DeliveryPlan,
                                                                pad: LatLon) -> None:
    for speed in (0.0, -3.0, DEFAULT_AIRFRAME.max_airspeed_mps + 1):
        with pytest.raises(ValueError, match=r"cruise speed .* max airspeed"):
            build(plan, pad, cruise_speed_mps=speed)


def test_refuses_a_pad_far_from_the_nest(airspace: Airspace, plan: DeliveryPlan) -> None:
    with pytest.raises(ValueError, match=r"pad is 2\d\d m from the nest"):
        build(plan, airspace.to_wgs84(200.0, -100.0))


def test_refuses_a_return_that_does_not_start_at_the_delivery_point(
    airspace: Airspace, plan: DeliveryPlan, pad: LatLon
) -> None:
    pts = (airspace.to_wgs84(250.0, 260.0), *plan.inbound.points[1:])
    bad = DeliveryPlan(plan.outbound, dataclasses.replace(plan.inbound, points=pts))
    with pytest.raises(ValueError, match=r"return route starts \d+\.\d m from the delivery point"):
        build(bad, pad)
    pts = (*plan.inbound.points[:-1], airspace.to_wgs84(0.0, 20.0))
    bad = DeliveryPlan(plan.outbound, dataclasses.replace(plan.inbound, points=pts))
    with pytest.raises(ValueError, match=r"return route ends \d+\.\d m from the nest"):
        build(bad, pad)


def test_refuses_a_hover_height_at_or_above_cruise(airspace: Airspace, pad: LatLon) -> None:
    nest, goal = airspace.nest.position, airspace.to_wgs84(*GOAL_XY)
    low = DeliveryPlan(_route((nest, goal), 6.0), _route((goal, nest), 6.0))
    with pytest.raises(ValueError, match=r"hover height 7\.0 m is not below the cruise"):
        build(low, pad)


def test_built_mission_rejects_seqs_out_of_order() -> None:
    item = PlannedItem(WP, jm.MAV_FRAME_GLOBAL_RELATIVE_ALT)
    with pytest.raises(ValueError, match="in that order"):
        BuiltMission(items=(item, item, item), stages=(Stage.TAKEOFF,) * 3, release_seq=0,
                     delivery_seq=1, land_seq=2, waypoints=(), cruise_alt_m=40.0,
                     pad=LatLon(0, 0), destination=LatLon(0, 0))


# -- the MAVLink adapter -------------------------------------------------------------------


def test_mission_style_follows_the_firmware_profile(
    profiles: dict[str, FirmwareProfile]
) -> None:
    px4 = mission_style(profiles["px4"])
    ap = mission_style(profiles["ardupilot_copter"])
    assert px4 == PX4
    assert ap == ARDUPILOT
    assert ap.seq0_is_home is profiles["ardupilot_copter"].mission.seq0_is_home
    assert ap.takeoff_item and profiles["ardupilot_copter"].mission.ground_start_needs_takeoff_item


def test_mission_style_refuses_an_unknown_autopilot_family(
    profiles: dict[str, FirmwareProfile]
) -> None:
    other = profiles["px4"].model_copy(update={"autopilot": "GENERIC", "name": "generic"})
    with pytest.raises(ValueError, match="no mission style for autopilot 'GENERIC'"):
        mission_style(other)


def test_mission_items_number_scale_and_frame_every_item(plan: DeliveryPlan,
                                                         pad: LatLon) -> None:
    built = build(plan, pad, style=ARDUPILOT)
    items = mission_items(built)
    assert [m.seq for m in items] == list(range(len(built.items)))
    assert [m.current for m in items] == [1] + [0] * (len(items) - 1)
    assert {m.mission_type for m in items} == {MISSION}
    for m, it in zip(items, built.items, strict=True):
        assert m.command == it.command
        assert (m.x, m.y) == (round(it.lat_deg * 1e7), round(it.lon_deg * 1e7))
        assert m.z == it.alt_m and m.autocontinue == 1
        assert (m.param1, m.param2, m.param3) == (it.param1, it.param2, it.param3)
        expected = {
            jm.MAV_FRAME_GLOBAL_RELATIVE_ALT: mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
            jm.MAV_FRAME_GLOBAL: mav.MAV_FRAME_GLOBAL_INT,
        }[it.frame]
        assert m.frame == expected
    px4_items = mission_items(build(plan, pad))
    assert {m.frame for m in px4_items if m.command in (WINCH, GRIPPER, DELAY, SPEED)} == {
        mav.MAV_FRAME_MISSION}


def test_fence_items_carry_no_altitude_and_rally_items_whole_metres(pad: LatLon) -> None:
    fp = FencePlan(
        fence=(
            FenceItem(mav.MAV_CMD_NAV_FENCE_RETURN_POINT, pad.lat_deg, pad.lon_deg, alt_m=40.0),
            *(FenceItem(mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, pad.lat_deg + d,
                        pad.lon_deg + e, param1=3.0) for d, e in ((0, 0.01), (0.01, 0), (0, 0))),
            FenceItem(mav.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION, pad.lat_deg, pad.lon_deg,
                      param1=55.5),
        ),
        rally=(FenceItem(mav.MAV_CMD_NAV_RALLY_POINT, pad.lat_deg, pad.lon_deg, alt_m=35.4),),
        alt_max_m=120.0,
    )
    fence = fence_items(fp)
    assert [m.seq for m in fence] == [0, 1, 2, 3, 4]
    assert {(m.mission_type, m.frame, m.z) for m in fence} == {
        (FENCE, mav.MAV_FRAME_GLOBAL_INT, 0.0)}
    assert [m.command for m in fence] == [f.command for f in fp.fence]
    assert [m.param1 for m in fence] == [0.0, 3.0, 3.0, 3.0, 55.5]
    assert fence[1].x == round((pad.lat_deg + 0.0) * 1e7)
    (rally,) = rally_items(fp)
    assert (rally.mission_type, rally.frame, rally.command, rally.z) == (
        RALLY, mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, mav.MAV_CMD_NAV_RALLY_POINT, 35.0)
    assert (rally.x, rally.y) == (round(pad.lat_deg * 1e7), round(pad.lon_deg * 1e7))


def test_items_refuse_coordinates_that_cannot_be_scaled(plan: DeliveryPlan,
                                                        pad: LatLon) -> None:
    built = build(plan, pad)
    broken = dataclasses.replace(
        built, items=(dataclasses.replace(built.items[0], lat_deg=math.nan), *built.items[1:]))
    with pytest.raises(ValueError, match="item 0 latitude nan"):
        mission_items(broken)
    fp = FencePlan(fence=(FenceItem(mav.MAV_CMD_NAV_FENCE_RETURN_POINT, 91.0, 0.0),), rally=(),
                   alt_max_m=120.0)
    with pytest.raises(ValueError, match=r"fence item 0 latitude 91\.0"):
        fence_items(fp)

