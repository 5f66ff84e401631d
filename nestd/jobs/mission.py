"""Delivery missions as flown: take off, route, winch or land, return to the assigned pad."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from nestd.airspace.geo import LatLon, distance_m
from nestd.airspace.router import DeliveryPlan, Route
from nestd.airspace.waypoints import Waypoint
from nestd.safety.airframe import Airframe, DeliveryMethod

# MAVLink values copied here so the domain needs no pymavlink (checked against it in tests).
MAV_CMD_NAV_WAYPOINT = 16
MAV_CMD_NAV_LAND = 21
MAV_CMD_NAV_TAKEOFF = 22
MAV_CMD_NAV_DELAY = 93
MAV_CMD_DO_CHANGE_SPEED = 178
MAV_CMD_DO_GRIPPER = 211
MAV_CMD_DO_WINCH = 42600
MAV_FRAME_GLOBAL = 0
MAV_FRAME_MISSION = 2
MAV_FRAME_GLOBAL_RELATIVE_ALT = 3
WINCH_RELATIVE_LENGTH_CONTROL = 1
GRIPPER_ACTION_RELEASE = 0
SPEED_TYPE_GROUNDSPEED = 1  # DO_CHANGE_SPEED param1

PAYLOAD_INSTANCE = 1.0
"""DO_WINCH / DO_GRIPPER param1: the first (only) winch or gripper."""
HOVER_SETTLE_S = 2.0
"""Hold at the delivery hover point before the line goes down, so the swing dies out.
Whole seconds: ArduPilot stores a waypoint's hold time as an integer."""
HOVER_ACCEPT_RADIUS_M = 1.0
"""Acceptance radius of the hover point where the firmware takes one (PX4): the parcel
goes down where the vehicle stops, and the default (PX4 NAV_ACC_RAD) is 10 m."""
WINCH_SLACK_M = 0.5
"""Line paid out beyond the hover height so the parcel rests on the ground instead of
hanging just above it (terrain and altitude error)."""
WINCH_MARGIN_S = 1.0
"""Added to the line's travel time before the next step: the winch starts and stops."""
PAD_MERGE_M = 1.0
"""A pad this close to the nest is the nest: no separate leg to it."""
PAD_MAX_FROM_NEST_M = 50.0
"""The leg between the nest and the pad is not routed, only checked: pads are a few metres
from the nest, and anything farther is a dispatcher error."""
ROUTE_JOIN_TOLERANCE_M = 1.0
"""The return must start where the outbound ends and end where it started."""
ALT_DECIMALS = 2
"""Altitudes are whole centimetres: ArduPilot stores them in cm, so the read-back matches."""


@dataclass(frozen=True, slots=True)
class MissionStyle:
    """What differs between autopilot families, derived from the firmware profile.

    The defaults are the MAVLink spec's reading as PX4 (v1.14+) implements it. The
    parameter conventions are what each firmware stores and reads back, so an upload
    verified by read-back compares equal on the real autopilot, not only in nestsim.
    """

    seq0_is_home: bool
    """ArduPilot: item 0 is home (a placeholder is written, the vehicle overwrites it)."""
    takeoff_item: bool = True
    """The mission starts with NAV_TAKEOFF (ArduPilot only leaves the ground with one)."""
    methods: frozenset[DeliveryMethod] = frozenset(DeliveryMethod)
    """Deliveries a mission can fly. LAND needs the vehicle to stay armed when it touches
    down mid-mission: PX4 does (no auto-disarm while a mission is unfinished); ArduCopter
    disarms, which would end the flight at the customer."""
    frame_no_position: int = MAV_FRAME_MISSION
    """Frame of items without a position (DO_*, NAV_DELAY). PX4 only accepts those in
    MAV_FRAME_MISSION; ArduPilot ignores the frame and reads such items back as 0 (GLOBAL)."""
    waypoint_radius: bool = True
    """NAV_WAYPOINT param2 (acceptance radius) is honoured and stored (PX4). ArduCopter
    uses WPNAV_RADIUS and reads param2 back as 0."""
    nav_yaw_deg: float = math.nan
    """param4 of NAV_TAKEOFF / NAV_WAYPOINT. PX4: NaN keeps its yaw mode (0 would turn the
    vehicle north at every point); ArduCopter stores no yaw and reads back 0."""
    land_param4: float = math.nan
    """param4 of NAV_LAND: yaw (NaN) on PX4; ArduPilot keeps only its sign as a loiter
    direction and reads back 1 for anything not negative."""


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """One MISSION_ITEM_INT, unscaled (degrees, metres above home)."""

    command: int
    frame: int
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    lat_deg: float = 0.0
    lon_deg: float = 0.0
    alt_m: float = 0.0
    autocontinue: bool = True


class Stage(StrEnum):
    """What the drone is doing while an item is the current one."""

    TAKEOFF = "takeoff"
    OUTBOUND = "outbound"
    DESCEND = "descend"
    RELEASE = "release"
    CLIMB = "climb"
    INBOUND = "inbound"
    LAND = "land"


@dataclass(frozen=True, slots=True)
class BuiltMission:
    items: tuple[PlannedItem, ...]
    """Exactly what is uploaded; seq == index (ArduPilot's seq 0 home placeholder included)."""
    stages: tuple[Stage, ...]
    """Per item: the stage the flight is in while that item is current."""
    release_seq: int
    """The item that releases the parcel; the mission past it means the parcel is gone."""
    delivery_seq: int
    """The hover point (winch) or the touchdown (land) at the customer."""
    land_seq: int
    """The final landing on the pad."""
    waypoints: tuple[Waypoint, ...]
    """The flown path, pad ground to pad ground, for airspace.validate_mission."""
    cruise_alt_m: float
    """Outbound cruise altitude above home (the return may fly another layer)."""
    pad: LatLon
    destination: LatLon

    def __post_init__(self) -> None:
        if len(self.items) != len(self.stages):
            raise ValueError("a built mission needs exactly one stage per item")
        n = len(self.items)
        if not 0 <= self.delivery_seq < self.release_seq < self.land_seq == n - 1:
            raise ValueError("delivery, release and landing must come in that order, landing last")

    @property
    def max_alt_m(self) -> float:
        """Highest point of the flight above home (the return may cruise above the outbound):
        what the fence's keep-outs are judged against."""
        return max(w.alt_m for w in self.waypoints)

    def stage(self, seq: int) -> Stage:
        """The stage while item `seq` is current; past the end the flight is landing."""
        if seq < 0:
            return Stage.TAKEOFF
        return self.stages[min(seq, len(self.stages) - 1)]


def build_delivery_mission(
    plan: DeliveryPlan,
    airframe: Airframe,
    style: MissionStyle,
    *,
    pad: LatLon,
    method: DeliveryMethod,
    cruise_speed_mps: float | None = None,
) -> BuiltMission:
    """The mission for one delivery: take off from `pad`, fly the plan, deliver, land on `pad`.

    Take-off to the outbound cruise altitude, the outbound route, descent to the hover
    height over the customer, winch down, gripper release, winch up (each step held by a
    NAV_DELAY long enough for it: on ArduPilot DO items run when the previous NAV item
    ends, so a hold must follow each of them), climb to the return layer, the return
    route, the short leg from the nest to the pad and NAV_LAND there (not RTL: home may be
    another pad). For LAND, NAV_LAND at the customer, release, wait, NAV_TAKEOFF.
    Raises ValueError for inputs that cannot make a safe mission.
    """
    _check_inputs(plan, airframe, style, pad, method, cruise_speed_mps)
    out, back = plan.outbound, plan.inbound
    nest, dest = out.points[0], out.points[-1]
    alt_out = _alt(out.cruise_alt_agl_m)
    alt_back = _alt(back.cruise_alt_agl_m)
    pad_is_nest = distance_m(pad, nest) < PAD_MERGE_M
    b = _Builder(style)

    # Take-off column on the pad.
    path = [Waypoint(pad.lat_deg, pad.lon_deg, 0.0), Waypoint(pad.lat_deg, pad.lon_deg, alt_out)]
    if style.seq0_is_home:
        b.add(Stage.TAKEOFF, PlannedItem(MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL_RELATIVE_ALT,
                                         lat_deg=pad.lat_deg, lon_deg=pad.lon_deg))
    if style.takeoff_item:
        b.nav(Stage.TAKEOFF, MAV_CMD_NAV_TAKEOFF, pad, alt_out)
    else:
        b.waypoint(Stage.TAKEOFF, pad, alt_out)
    if cruise_speed_mps is not None:
        b.do(Stage.OUTBOUND, MAV_CMD_DO_CHANGE_SPEED, SPEED_TYPE_GROUNDSPEED, cruise_speed_mps,
             -1.0)

    # Outbound at cruise; the route's first point is the nest, a few metres from the pad.
    for p in out.points[1:] if pad_is_nest else out.points:
        b.waypoint(Stage.OUTBOUND, p, alt_out)
        path.append(Waypoint(p.lat_deg, p.lon_deg, alt_out))

    d = airframe.delivery
    if method is DeliveryMethod.WINCH:
        hover = _alt(d.winch_hover_height_m)
        delivery_seq = b.waypoint(Stage.DESCEND, dest, hover, hold_s=HOVER_SETTLE_S,
                                  radius_m=HOVER_ACCEPT_RADIUS_M)
        path.append(Waypoint(dest.lat_deg, dest.lon_deg, hover))
        line_m = _alt(hover + WINCH_SLACK_M)
        line_s = line_m / d.winch_rate_mps + WINCH_MARGIN_S
        b.do(Stage.RELEASE, MAV_CMD_DO_WINCH, PAYLOAD_INSTANCE, WINCH_RELATIVE_LENGTH_CONTROL,
             line_m, d.winch_rate_mps)
        b.delay(Stage.RELEASE, line_s)
        release_seq = b.do(Stage.RELEASE, MAV_CMD_DO_GRIPPER, PAYLOAD_INSTANCE,
                           GRIPPER_ACTION_RELEASE)
        b.delay(Stage.RELEASE, d.release_time_s)
        b.do(Stage.RELEASE, MAV_CMD_DO_WINCH, PAYLOAD_INSTANCE, WINCH_RELATIVE_LENGTH_CONTROL,
             -line_m, d.winch_rate_mps)
        b.delay(Stage.RELEASE, line_s)
        b.waypoint(Stage.CLIMB, dest, alt_back)
    else:
        delivery_seq = b.land(Stage.DESCEND, dest)
        path.append(Waypoint(dest.lat_deg, dest.lon_deg, 0.0))
        release_seq = b.do(Stage.RELEASE, MAV_CMD_DO_GRIPPER, PAYLOAD_INSTANCE,
                           GRIPPER_ACTION_RELEASE)
        b.delay(Stage.RELEASE, d.ground_time_s)
        b.nav(Stage.CLIMB, MAV_CMD_NAV_TAKEOFF, dest, alt_back)
    path.append(Waypoint(dest.lat_deg, dest.lon_deg, alt_back))

    # Return at its own layer to the nest, then the pad.
    for p in back.points[1:]:
        b.waypoint(Stage.INBOUND, p, alt_back)
        path.append(Waypoint(p.lat_deg, p.lon_deg, alt_back))
    if not pad_is_nest:
        b.waypoint(Stage.INBOUND, pad, alt_back)
        path.append(Waypoint(pad.lat_deg, pad.lon_deg, alt_back))
    land_seq = b.land(Stage.LAND, pad)
    path.append(Waypoint(pad.lat_deg, pad.lon_deg, 0.0))

    return BuiltMission(
        items=tuple(b.items),
        stages=tuple(b.stages),
        release_seq=release_seq,
        delivery_seq=delivery_seq,
        land_seq=land_seq,
        waypoints=tuple(path),
        cruise_alt_m=alt_out,
        pad=pad,
        destination=dest,
    )


class _Builder:
    """Items and their stages, in order; each add returns the new item's seq."""

    def __init__(self, style: MissionStyle) -> None:
        self.style = style
        self.items: list[PlannedItem] = []
        self.stages: list[Stage] = []

    def add(self, stage: Stage, item: PlannedItem) -> int:
        self.items.append(item)
        self.stages.append(stage)
        return len(self.items) - 1

    def nav(self, stage: Stage, command: int, p: LatLon, alt_m: float) -> int:
        return self.add(stage, PlannedItem(
            command, MAV_FRAME_GLOBAL_RELATIVE_ALT, param4=self.style.nav_yaw_deg,
            lat_deg=p.lat_deg, lon_deg=p.lon_deg, alt_m=alt_m,
        ))

    def waypoint(self, stage: Stage, p: LatLon, alt_m: float, *, hold_s: float = 0.0,
                 radius_m: float = 0.0) -> int:
        return self.add(stage, PlannedItem(
            MAV_CMD_NAV_WAYPOINT, MAV_FRAME_GLOBAL_RELATIVE_ALT, param1=hold_s,
            param2=radius_m if self.style.waypoint_radius else 0.0,
            param4=self.style.nav_yaw_deg, lat_deg=p.lat_deg, lon_deg=p.lon_deg, alt_m=alt_m,
        ))

    def land(self, stage: Stage, p: LatLon) -> int:
        return self.add(stage, PlannedItem(
            MAV_CMD_NAV_LAND, MAV_FRAME_GLOBAL_RELATIVE_ALT, param4=self.style.land_param4,
            lat_deg=p.lat_deg, lon_deg=p.lon_deg,
        ))

    def do(self, stage: Stage, command: int, *params: float) -> int:
        p = [float(x) for x in params] + [0.0, 0.0, 0.0, 0.0]
        return self.add(stage, PlannedItem(command, self.style.frame_no_position,
                                           param1=p[0], param2=p[1], param3=p[2], param4=p[3]))

    def delay(self, stage: Stage, seconds: float) -> int:
        # Whole seconds, at least one: ArduCopter reads 0 as "wait for a time of day", and
        # with no hold at all the next DO item would start at once.
        s = float(max(1, math.ceil(seconds - 1e-9)))
        # -1: the time-of-day fields (hour, minute, second) are unused.
        return self.add(stage, PlannedItem(MAV_CMD_NAV_DELAY, self.style.frame_no_position,
                                           param1=s, param2=-1.0, param3=-1.0, param4=-1.0))


def _alt(alt_m: float) -> float:
    return round(alt_m, ALT_DECIMALS)


def _finite_position(p: LatLon) -> bool:
    return (
        math.isfinite(p.lat_deg)
        and math.isfinite(p.lon_deg)
        and -90.0 <= p.lat_deg <= 90.0
        and -180.0 <= p.lon_deg <= 180.0
    )


def _check_route(name: str, r: Route) -> None:
    if len(r.points) < 2:
        raise ValueError(
            f"the {name} route has {len(r.points)} point(s); it needs at least its start and goal"
        )
    for i, p in enumerate(r.points):
        if not _finite_position(p):
            raise ValueError(f"{name} route point {i} ({p.lat_deg}, {p.lon_deg}) is not a "
                             "finite WGS84 position")
    if not (math.isfinite(r.cruise_alt_agl_m) and r.cruise_alt_agl_m > 0):
        raise ValueError(f"the {name} cruise altitude {r.cruise_alt_agl_m} m must be finite "
                         "and above the ground")


def _check_inputs(
    plan: DeliveryPlan,
    airframe: Airframe,
    style: MissionStyle,
    pad: LatLon,
    method: DeliveryMethod,
    cruise_speed_mps: float | None,
) -> None:
    _check_route("outbound", plan.outbound)
    _check_route("return", plan.inbound)
    if not _finite_position(pad):
        raise ValueError(f"pad ({pad.lat_deg}, {pad.lon_deg}) is not a finite WGS84 position")
    out, back = plan.outbound.points, plan.inbound.points
    gap = distance_m(out[-1], back[0])
    if gap > ROUTE_JOIN_TOLERANCE_M:
        raise ValueError(f"the return route starts {gap:.1f} m from the delivery point where "
                         "the outbound route ends")
    gap = distance_m(back[-1], out[0])
    if gap > ROUTE_JOIN_TOLERANCE_M:
        raise ValueError(f"the return route ends {gap:.1f} m from the nest the outbound route "
                         "starts at")
    from_nest = distance_m(pad, out[0])
    if from_nest > PAD_MAX_FROM_NEST_M:
        raise ValueError(f"the pad is {from_nest:.0f} m from the nest, more than "
                         f"{PAD_MAX_FROM_NEST_M:.0f} m: the leg to it would not be routed")
    if method not in style.methods:
        supported = ", ".join(sorted(m.value for m in style.methods)) or "none"
        raise ValueError(f"{method.value} delivery is not supported by this autopilot's "
                         f"missions (supported: {supported})")
    if method is DeliveryMethod.WINCH and airframe.delivery.method is not DeliveryMethod.WINCH:
        raise ValueError(f"airframe {airframe.name!r} has no winch (its delivery method is "
                         f"{airframe.delivery.method.value})")
    d = airframe.delivery
    for name, value in (
        ("winch_hover_height_m", d.winch_hover_height_m),
        ("winch_rate_mps", d.winch_rate_mps),
        ("release_time_s", d.release_time_s),
        ("ground_time_s", d.ground_time_s),
    ):
        if not math.isfinite(value):
            raise ValueError(f"airframe delivery.{name} must be finite, got {value}")
    if method is DeliveryMethod.WINCH:
        low = min(plan.outbound.cruise_alt_agl_m, plan.inbound.cruise_alt_agl_m)
        if d.winch_hover_height_m >= low:
            raise ValueError(f"the winch hover height {d.winch_hover_height_m} m is not below "
                             f"the cruise altitude {low} m")
    if cruise_speed_mps is not None and not (
        math.isfinite(cruise_speed_mps) and 0 < cruise_speed_mps <= airframe.max_airspeed_mps
    ):
        raise ValueError(f"cruise speed {cruise_speed_mps} m/s must be finite, positive and at "
                         f"most the airframe's max airspeed {airframe.max_airspeed_mps} m/s")
