"""MAVLink items for a built mission, a fence plan and rally points, as each firmware keeps them."""

from __future__ import annotations

import math

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.airspace.fence import FenceItem, FencePlan
from nestd.airspace.waypoints import AltFrame
from nestd.jobs.mission import BuiltMission, MissionStyle
from nestd.mavlink.profiles import FirmwareProfile
from nestd.mavlink.protocols.mission import FENCE, MISSION, RALLY, MissionItem
from nestd.safety.airframe import DeliveryMethod

# MISSION_ITEM_INT carries x/y as integers; its frames say so (as MAVSDK and QGC send them).
_INT_FRAME = {
    mav.MAV_FRAME_GLOBAL: mav.MAV_FRAME_GLOBAL_INT,
    mav.MAV_FRAME_GLOBAL_RELATIVE_ALT: mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
    mav.MAV_FRAME_GLOBAL_TERRAIN_ALT: mav.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT,
}


def mission_style(profile: FirmwareProfile) -> MissionStyle:
    """How missions are written for this firmware family (PX4 v1.14+ or ArduCopter 4.x)."""
    m = profile.mission
    if profile.autopilot == "PX4":
        # PX4 v1.14+: DO_WINCH / DO_GRIPPER are mission items the mission waits on (payload
        # ACK or MIS_COMMAND_TOUT); commander does not auto-disarm a vehicle that lands
        # amid an unfinished mission, so a LAND delivery can take off again.
        return MissionStyle(seq0_is_home=m.seq0_is_home)
    if profile.autopilot == "ARDUPILOTMEGA":
        # ArduCopter (AP_Mission): DO items start when the NAV item before them ends and
        # do not hold the mission; the vehicle disarms on touchdown, so no LAND delivery.
        # The rest is what AP_Mission::mission_cmd_to_mavlink_int reads back.
        return MissionStyle(
            seq0_is_home=m.seq0_is_home,
            takeoff_item=True,
            methods=frozenset({DeliveryMethod.WINCH}),
            frame_no_position=mav.MAV_FRAME_GLOBAL,
            waypoint_radius=False,
            nav_yaw_deg=0.0,
            land_param4=1.0,
        )
    raise ValueError(f"no mission style for autopilot {profile.autopilot!r} "
                     f"(profile {profile.name!r}): only PX4 and ARDUPILOTMEGA are known")


def _e7(deg: float, limit: float, what: str) -> int:
    if not (math.isfinite(deg) and -limit <= deg <= limit):
        raise ValueError(f"{what} {deg} is not a finite WGS84 coordinate")
    return round(deg * 1e7)


def mission_items(built: BuiltMission) -> list[MissionItem]:
    """The MISSION list to upload: seq = index, current=1 on seq 0 (as MAVSDK and QGC send)."""
    out: list[MissionItem] = []
    for seq, it in enumerate(built.items):
        out.append(MissionItem(
            seq=seq,
            frame=_INT_FRAME.get(it.frame, it.frame),
            command=it.command,
            current=1 if seq == 0 else 0,
            autocontinue=1 if it.autocontinue else 0,
            param1=it.param1,
            param2=it.param2,
            param3=it.param3,
            param4=it.param4,
            x=_e7(it.lat_deg, 90.0, f"item {seq} latitude"),
            y=_e7(it.lon_deg, 180.0, f"item {seq} longitude"),
            z=it.alt_m,
            mission_type=MISSION,
        ))
    return out


def fence_items(plan: FencePlan) -> list[MissionItem]:
    """The FENCE list: return point, polygon vertices and circles in the plan's order.

    Fence items carry no altitude: vertices and circles have none in MAVLink, PX4 ignores
    the return point and ArduPilot returns at its own altitude, reading every fence item
    back as frame GLOBAL with z = 0. Sending exactly that keeps the read-back equal on both.
    """
    return [
        MissionItem(
            seq=seq,
            frame=mav.MAV_FRAME_GLOBAL_INT,
            command=f.command,
            param1=f.param1,
            param2=f.param2,
            x=_e7(f.lat_deg, 90.0, f"fence item {seq} latitude"),
            y=_e7(f.lon_deg, 180.0, f"fence item {seq} longitude"),
            z=0.0,
            mission_type=FENCE,
        )
        for seq, f in enumerate(plan.fence)
    ]


def rally_items(plan: FencePlan) -> list[MissionItem]:
    """The RALLY list. Heights above home in whole metres: ArduPilot stores them as int16 m
    (and refuses AMSL rally points)."""
    return [
        MissionItem(
            seq=seq,
            frame=_rally_frame(r),
            command=r.command,
            x=_e7(r.lat_deg, 90.0, f"rally point {seq} latitude"),
            y=_e7(r.lon_deg, 180.0, f"rally point {seq} longitude"),
            z=_rally_alt(r, seq),
            mission_type=RALLY,
        )
        for seq, r in enumerate(plan.rally)
    ]


def _rally_frame(r: FenceItem) -> int:
    if r.frame is AltFrame.AMSL:
        return int(mav.MAV_FRAME_GLOBAL_INT)
    return int(mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT)


def _rally_alt(r: FenceItem, seq: int) -> float:
    if not math.isfinite(r.alt_m):
        raise ValueError(f"rally point {seq} altitude {r.alt_m} is not finite")
    return float(round(r.alt_m))
