"""Flights in nestsim: missions, landing, delivery, and the autopilot's own failsafes."""

from __future__ import annotations

import asyncio
import math

from nestsim.fleet import Fleet
from pymavlink.dialects.v20 import ardupilotmega as mav

from tests.sim.conftest import sim
from tests.sim.gcs import TestGcs, mission_item, square_fence, until, upload

HOME_LAT, HOME_LON = 33.1507, -96.8236
ACCEPTED = mav.MAV_RESULT_ACCEPTED
NAN = math.nan


def px4_mode(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


async def arm_and_start(gcs: TestGcs) -> None:
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
    assert await gcs.command_ack(mav.MAV_CMD_MISSION_START) == ACCEPTED


async def take_off(gcs: TestGcs, fleet: Fleet, alt_m: float = 20.0) -> None:
    v = fleet.vehicle(0)
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
    assert (
        await gcs.command_ack(
            mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, NAN, NAN, NAN, v.home_alt_amsl_m + alt_m
        )
        == ACCEPTED
    )
    await until(lambda: v.alt_rel_m > alt_m - 0.6, 10.0, "takeoff altitude")


async def test_px4_mission_flown_to_completion_reaches_each_item_then_loiters(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    items = [mission_item(0, 0, 0, 15, mav.MAV_CMD_NAV_TAKEOFF)] + [
        mission_item(k, HOME_LAT + 0.0005 * k, HOME_LON + 0.0003 * k, 15, params=(0, 2, 0, NAN))
        for k in range(1, 4)
    ]
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    mark = len(gcs.log)
    await arm_and_start(gcs)
    await gcs.expect("MISSION_ITEM_REACHED", lambda m: m.seq == 3, since=mark, timeout=20)
    assert v.reached == [0, 1, 2, 3]
    reached = sorted({m.seq for m in gcs.log[mark:] if m.get_type() == "MISSION_ITEM_REACHED"})
    assert reached == [0, 1, 2, 3]
    # PX4 switches to AUTO.LOITER by itself at the end and holds over the last waypoint
    await gcs.expect("HEARTBEAT", lambda m: m.custom_mode == px4_mode(4, 3), since=mark)
    assert v.armed and v.in_air
    lat, lon = v.lat_deg, v.lon_deg
    assert (
        math.hypot((lat - (HOME_LAT + 0.0015)) * 111_000, (lon - (HOME_LON + 0.0009)) * 93_000)
        < 3.0
    )
    cur = await gcs.expect("MISSION_CURRENT", since=len(gcs.log))
    assert cur.mission_state == mav.MISSION_STATE_COMPLETE and cur.total == 4
    # and the last MISSION_ITEM_REACHED keeps repeating about once a second
    tail = len(gcs.log)
    await asyncio.sleep(2.2)
    assert gcs.count("MISSION_ITEM_REACHED", tail) >= 2


async def test_px4_landing_disarms_and_returns_to_loiter(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    items = [
        mission_item(0, 0, 0, 10, mav.MAV_CMD_NAV_TAKEOFF),
        mission_item(1, HOME_LAT + 0.0003, HOME_LON, 10, params=(0, 2, 0, NAN)),
        mission_item(2, HOME_LAT + 0.0003, HOME_LON, 0, mav.MAV_CMD_NAV_LAND),
    ]
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    mark = len(gcs.log)
    await arm_and_start(gcs)
    await gcs.expect("MISSION_ITEM_REACHED", lambda m: m.seq == 2, since=mark, timeout=25)
    await until(lambda: not v.armed, 2.0, "disarm after landing")
    assert v.is_landed and v.mode_name == "AUTO.LOITER"
    es = await gcs.expect("EXTENDED_SYS_STATE", since=len(gcs.log))
    assert es.landed_state == mav.MAV_LANDED_STATE_ON_GROUND
    assert math.hypot((v.lat_deg - HOME_LAT - 0.0003) * 111_000, 0) < 1.5


async def test_winch_delivery_lowers_releases_and_retracts(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    v.payload_kg = 1.5
    dest = (HOME_LAT + 0.0009, HOME_LON + 0.0004)
    items = [
        mission_item(0, 0, 0, 30, mav.MAV_CMD_NAV_TAKEOFF),
        mission_item(1, *dest, 30, params=(0, 1, 0, NAN)),
        mission_item(2, *dest, 7, params=(0, 0.5, 0, NAN)),
        mission_item(
            3,
            0,
            0,
            0,
            mav.MAV_CMD_DO_WINCH,
            frame=mav.MAV_FRAME_MISSION,
            params=(1, mav.WINCH_DELIVER, 0, 2.0),
        ),
        mission_item(4, *dest, 30, params=(0, 1, 0, NAN)),
        mission_item(5, 0, 0, 0, mav.MAV_CMD_NAV_RETURN_TO_LAUNCH, frame=mav.MAV_FRAME_MISSION),
    ]
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    mark = len(gcs.log)
    await arm_and_start(gcs)
    await gcs.expect("MISSION_ITEM_REACHED", lambda m: m.seq == 3, since=mark, timeout=30)
    assert v.payload_kg == 0.0
    (drop,) = v.drops
    assert math.hypot((drop.lat_deg - dest[0]) * 111_000, (drop.lon_deg - dest[1]) * 93_000) < 1.0
    assert abs(drop.line_length_m - drop.height_above_ground_m) < 0.2  # touched the ground
    assert v.winch.line_m == 0.0  # retracted before moving on
    assert gcs.count("WINCH_STATUS", mark) >= 1
    await gcs.expect("MISSION_ITEM_REACHED", lambda m: m.seq == 5, since=mark, timeout=40)
    assert v.is_landed
    assert math.hypot(v.e - v.home_e, v.n - v.home_n) < 1.0


async def test_gripper_release_drops_the_payload(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    v.payload_kg = 2.0
    await take_off(gcs, fleet, 10.0)
    assert await gcs.command_ack(mav.MAV_CMD_DO_GRIPPER, 1, mav.GRIPPER_ACTION_RELEASE) == ACCEPTED
    assert v.payload_kg == 0.0 and len(v.drops) == 1
    assert v.drops[0].height_above_ground_m > 9.0


async def test_goto_rtl_and_land_commands(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    await take_off(gcs, fleet, 15.0)
    target = (HOME_LAT + 0.001, HOME_LON - 0.0005)
    gcs.send(
        mav.MAVLink_command_int_message(
            1,
            1,
            mav.MAV_FRAME_GLOBAL_INT,
            mav.MAV_CMD_DO_REPOSITION,
            0,
            0,
            -1,
            mav.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE,
            0,
            NAN,
            int(target[0] * 1e7),
            int(target[1] * 1e7),
            v.home_alt_amsl_m + 25,
        )
    )
    await until(
        lambda: (
            math.hypot((v.lat_deg - target[0]) * 111_000, (v.lon_deg - target[1]) * 93_000) < 1.0
            and abs(v.alt_rel_m - 25) < 0.5
        ),
        15.0,
        "reposition reached",
    )
    assert v.mode_name == "AUTO.LOITER"
    assert await gcs.command_ack(mav.MAV_CMD_NAV_RETURN_TO_LAUNCH) == ACCEPTED
    assert v.mode_name == "AUTO.RTL"
    await until(lambda: v.alt_rel_m > 59.0, 20.0, "RTL climbs to RTL_RETURN_ALT")
    await until(lambda: math.hypot(v.e - v.home_e, v.n - v.home_n) < 1.0, 20.0, "back home")
    assert await gcs.command_ack(mav.MAV_CMD_NAV_LAND) == ACCEPTED
    assert v.mode_name == "AUTO.LAND"
    await until(lambda: v.is_landed, 40.0, "landed")


async def test_datalink_loss_triggers_rtl_when_configured() -> None:
    async with sim("px4", speed=5.0) as (fleet, (gcs,)):
        v = fleet.vehicle(0)
        v.params["NAV_DLL_ACT"] = 2
        v.params["COM_DL_LOSS_T"] = 5
        async with gcs.heartbeats(0.1):
            await take_off(gcs, fleet, 10.0)
            assert not v.datalink_lost
            fleet.cut_link(0)
            await until(lambda: v.mode_name == "AUTO.RTL", 3.0, "RTL after 5 s without heartbeat")
            assert v.datalink_lost
            fleet.restore_link(0)
            await until(lambda: not v.datalink_lost, 2.0, "link regained")
        assert v.mode_name == "AUTO.RTL"  # PX4 doesn't hand control back by itself


async def test_datalink_loss_is_ignored_when_disabled_by_default() -> None:
    async with sim("px4", speed=10.0) as (fleet, (gcs,)):
        v = fleet.vehicle(0)
        async with gcs.heartbeats(0.05):
            await take_off(gcs, fleet, 10.0)
            fleet.cut_link(0)
            await until(lambda: v.datalink_lost, 3.0, "loss detected")
            assert v.mode_name == "AUTO.LOITER"


async def test_critical_battery_returns_and_emergency_lands(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    v.params["COM_LOW_BAT_ACT"] = 3
    await take_off(gcs, fleet, 10.0)
    mark = len(gcs.log)
    fleet.set_battery(0, 6.5)
    await until(lambda: v.mode_name == "AUTO.RTL", 2.0, "RTL at critical")
    await gcs.expect("STATUSTEXT", lambda m: "Critical battery" in m.text, since=mark)
    fleet.set_battery(0, 4.0)
    await until(lambda: v.mode_name == "AUTO.LAND", 2.0, "land at emergency")
    bs = await gcs.expect("BATTERY_STATUS", since=len(gcs.log))
    assert bs.charge_state == mav.MAV_BATTERY_CHARGE_STATE_EMERGENCY


async def test_fence_breach_takes_the_fence_action(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    v.params["GF_ACTION"] = 3  # return
    ft = mav.MAV_MISSION_TYPE_FENCE
    d = 0.0006  # ~65 m square around home
    fence = square_fence(HOME_LAT, HOME_LON, d, ft)
    assert await upload(gcs, fence, ft) == mav.MAV_MISSION_ACCEPTED
    await take_off(gcs, fleet, 10.0)
    mark = len(gcs.log)
    gcs.command(
        mav.MAV_CMD_DO_REPOSITION, -1, 0, 0, NAN, HOME_LAT + 0.003, HOME_LON, v.home_alt_amsl_m + 10
    )
    await until(lambda: v.mode_name == "AUTO.RTL", 15.0, "RTL on breach")
    await gcs.expect("STATUSTEXT", lambda m: "Geofence" in m.text, since=mark)
    assert abs(v.lat_deg - HOME_LAT) < d * 1.3  # caught near the edge


async def test_gps_loss_in_flight_lands(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    await take_off(gcs, fleet, 10.0)
    fleet.set_gps(0, False)
    await until(lambda: v.mode_name == "AUTO.LAND", 2.0, "land without GPS")
    raw = await gcs.expect("GPS_RAW_INT", since=len(gcs.log))
    assert raw.fix_type == mav.GPS_FIX_TYPE_NO_FIX and raw.satellites_visible == 0


async def test_headwind_slows_groundspeed_and_costs_energy() -> None:
    async with sim("px4", n=2, speed=5.0) as (fleet, gcss):
        calm, windy = fleet.vehicle(0), fleet.vehicle(1)
        fleet.set_wind(0.0, -15.0, index=1)  # blowing towards the south
        for gcs, v in zip(gcss, (calm, windy), strict=True):
            assert (
                await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1, target=v.sysid)
                == ACCEPTED
            )
            assert (
                await gcs.command_ack(
                    mav.MAV_CMD_NAV_TAKEOFF,
                    0,
                    0,
                    0,
                    NAN,
                    NAN,
                    NAN,
                    v.home_alt_amsl_m + 20,
                    target=v.sysid,
                )
                == ACCEPTED
            )
        await until(lambda: calm.alt_rel_m > 19.5 and windy.alt_rel_m > 19.5, 10.0, "both up")
        start = [v.battery.energy_wh for v in (calm, windy)]
        for gcs, v in zip(gcss, (calm, windy), strict=True):
            gcs.send(
                mav.MAVLink_command_long_message(
                    v.sysid,
                    1,
                    mav.MAV_CMD_DO_REPOSITION,
                    0,
                    -1,
                    0,
                    0,
                    NAN,
                    v.lat_deg + 0.02,
                    v.lon_deg,
                    v.home_alt_amsl_m + 20,
                ),
                sysid=v.sysid,
            )
        await asyncio.sleep(2.0)
        assert math.hypot(calm.ve, calm.vn) > 20.0
        assert math.hypot(windy.ve, windy.vn) < 14.0  # 28 m/s max airspeed against 15 m/s
        used = [s - v.battery.energy_wh for s, v in zip(start, (calm, windy), strict=True)]
        assert used[1] > used[0]
