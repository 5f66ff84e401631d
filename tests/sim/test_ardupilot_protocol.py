"""nestsim's ArduCopter flavour: the quirks a ground station must handle differently from PX4."""

from __future__ import annotations

import asyncio

from nestsim.fleet import Fleet
from pymavlink.dialects.v20 import ardupilotmega as mav

from tests.sim.conftest import sim
from tests.sim.gcs import TestGcs, download, mission_item, until, upload

HOME_LAT, HOME_LON = 33.1507, -96.8236
ACCEPTED = mav.MAV_RESULT_ACCEPTED
AP_GUIDED, AP_AUTO, AP_LOITER, AP_RTL, AP_LAND = 4, 3, 5, 6, 9


async def set_mode(gcs: TestGcs, number: int) -> int:
    return await gcs.command_ack(
        mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, number
    )


async def test_heartbeat_is_ardupilotmega_in_stabilize(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _, gcs = ardupilot
    hb = await gcs.expect("HEARTBEAT", since=0)
    assert hb.autopilot == mav.MAV_AUTOPILOT_ARDUPILOTMEGA
    assert hb.type == mav.MAV_TYPE_QUADROTOR
    assert hb.custom_mode == 0  # STABILIZE


async def test_streams_nothing_but_heartbeat_until_asked(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _, gcs = ardupilot
    await asyncio.sleep(1.2)
    assert {m.get_type() for m in gcs.log} == {"HEARTBEAT"}
    assert (
        await gcs.command_ack(
            mav.MAV_CMD_SET_MESSAGE_INTERVAL, mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 100_000
        )
        == ACCEPTED
    )
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_request_data_stream_message(1, 1, mav.MAV_DATA_STREAM_EXTRA1, 10, 1))
    await asyncio.sleep(1.0)
    assert gcs.count("GLOBAL_POSITION_INT", mark) >= 7
    assert gcs.count("ATTITUDE", mark) >= 7
    assert gcs.count("VFR_HUD", mark) == 0


async def test_reboot_forgets_requested_streams(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _fleet, gcs = ardupilot
    assert (
        await gcs.command_ack(
            mav.MAV_CMD_SET_MESSAGE_INTERVAL, mav.MAVLINK_MSG_ID_ATTITUDE, 100_000
        )
        == ACCEPTED
    )
    await gcs.expect("ATTITUDE")
    assert await gcs.command_ack(mav.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1) == ACCEPTED
    await asyncio.sleep(0.5)  # 2 s of simulated boot at 10x
    await gcs.expect("HEARTBEAT", timeout=3.0)
    mark = len(gcs.log)
    await asyncio.sleep(1.0)
    assert gcs.count("ATTITUDE", mark) == 0


async def test_refuses_to_arm_until_position_estimate_is_ready() -> None:
    async with sim("ardupilot", speed=10.0, ekf_ready_s=20.0) as (_fleet, (gcs,)):
        mark = len(gcs.log)
        assert await set_mode(gcs, AP_GUIDED) == ACCEPTED
        assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_FAILED
        await gcs.expect(
            "STATUSTEXT", lambda m: m.text == "Arm: Need Position Estimate", since=mark
        )
        await asyncio.sleep(2.2)  # past 20 s of simulated time
        assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED


async def test_refuses_to_arm_in_auto(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _fleet, gcs = ardupilot
    await asyncio.sleep(0.4)
    items = [
        mission_item(0, HOME_LAT, HOME_LON, 0),
        mission_item(1, 0, 0, 10, mav.MAV_CMD_NAV_TAKEOFF),
    ]
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    assert await set_mode(gcs, AP_AUTO) == ACCEPTED
    mark = len(gcs.log)
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_FAILED
    await gcs.expect("STATUSTEXT", lambda m: "Mode not armable" in m.text, since=mark)


async def test_takeoff_needs_guided_and_armed(ardupilot: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = ardupilot
    await asyncio.sleep(0.4)
    assert await gcs.command_ack(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == (
        mav.MAV_RESULT_FAILED
    )
    assert await set_mode(gcs, AP_GUIDED) == ACCEPTED
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
    assert await gcs.command_ack(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 10) == ACCEPTED
    v = fleet.vehicle(0)
    await until(lambda: v.alt_rel_m > 9.4, 4.0, "10 m relative")  # param7 is relative on ArduPilot
    assert v.mode_name == "GUIDED"


async def test_upload_is_answered_with_mission_request_and_seq0_is_home(
    ardupilot: tuple[Fleet, TestGcs],
) -> None:
    _fleet, gcs = ardupilot
    items = [
        mission_item(0, 10.0, 10.0, 999),  # whatever is sent at seq 0 is ignored
        mission_item(1, 0, 0, 10, mav.MAV_CMD_NAV_TAKEOFF),
        mission_item(2, HOME_LAT + 0.001, HOME_LON, 10),
    ]
    mark = len(gcs.log)
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    requests = [m.get_type() for m in gcs.log[mark:] if m.get_type().startswith("MISSION_REQ")]
    assert requests == ["MISSION_REQUEST"] * 3
    back = await download(gcs)
    assert back[0].x == round(HOME_LAT * 1e7) and back[0].z == 200.0
    assert [m.command for m in back[1:]] == [mav.MAV_CMD_NAV_TAKEOFF, mav.MAV_CMD_NAV_WAYPOINT]


async def test_empty_mission_still_downloads_home(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _, gcs = ardupilot
    back = await download(gcs)
    assert len(back) == 1 and back[0].seq == 0


async def test_partial_write_replaces_a_range(ardupilot: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = ardupilot
    items = [mission_item(0, HOME_LAT, HOME_LON, 0)] + [
        mission_item(k, HOME_LAT + 0.001 * k, HOME_LON, 10) for k in range(1, 4)
    ]
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_write_partial_list_message(1, 1, 2, 2, 0))
    req = await gcs.expect("MISSION_REQUEST", since=mark)
    assert req.seq == 2
    gcs.send(mission_item(2, HOME_LAT + 0.005, HOME_LON, 33))
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_ACCEPTED
    zs = [it.z for it in fleet.vehicle(0).missions(0)]
    assert zs[1:] == [10, 33, 10]


async def test_int_params_are_plain_floats(ardupilot: tuple[Fleet, TestGcs]) -> None:
    _, gcs = ardupilot
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_request_read_message(1, 1, b"RTL_ALT", -1))
    pv = await gcs.expect("PARAM_VALUE", since=mark)
    assert pv.param_type == mav.MAV_PARAM_TYPE_INT16
    assert pv.param_value == 1500.0


async def test_flies_guided_takeoff_then_auto_mission_then_lands_and_disarms(
    ardupilot: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = ardupilot
    v = fleet.vehicle(0)
    await asyncio.sleep(0.4)
    items = [
        mission_item(0, HOME_LAT, HOME_LON, 0),
        mission_item(1, 0, 0, 15, mav.MAV_CMD_NAV_TAKEOFF),
        mission_item(2, HOME_LAT + 0.0008, HOME_LON, 15, params=(0, 2, 0, 0)),
        mission_item(3, 0, 0, 0, mav.MAV_CMD_NAV_RETURN_TO_LAUNCH),
    ]
    fleet.vehicle(0).params["RTL_ALT"] = 1500
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    assert await set_mode(gcs, AP_GUIDED) == ACCEPTED
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
    assert await gcs.command_ack(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 15) == ACCEPTED
    mark = len(gcs.log)
    await until(lambda: v.alt_rel_m > 14.5, 6.0, "takeoff altitude")
    assert await gcs.command_ack(mav.MAV_CMD_MISSION_START) == ACCEPTED
    assert v.mode_name == "AUTO"
    await gcs.expect("MISSION_ITEM_REACHED", lambda m: m.seq == 3, since=mark, timeout=20)
    assert v.reached == [1, 2, 3]
    assert v.is_landed
    await until(lambda: not v.armed, 2.0, "disarmed after landing")
    assert v.mode_name == "AUTO"  # ArduCopter stays in AUTO, disarmed, after the mission
