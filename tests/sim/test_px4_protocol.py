"""nestsim's PX4 flavour at the MAVLink level: what a ground station sees and gets back."""

from __future__ import annotations

import asyncio
import math
import struct

import pytest
from nestsim.fleet import Fleet
from pymavlink.dialects.v20 import ardupilotmega as mav

from tests.sim.conftest import sim
from tests.sim.gcs import TestGcs, download, mission_item, square_fence, until, upload

HOME_LAT, HOME_LON = 33.1507, -96.8236
ACCEPTED = mav.MAV_RESULT_ACCEPTED


def px4_mode(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


async def test_heartbeat_identifies_a_px4_quadrotor_in_loiter(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    hb = await gcs.expect("HEARTBEAT")
    assert hb.autopilot == mav.MAV_AUTOPILOT_PX4
    assert hb.type == mav.MAV_TYPE_QUADROTOR
    assert hb.get_srcSystem() == 1 and hb.get_srcComponent() == mav.MAV_COMP_ID_AUTOPILOT1
    assert hb.custom_mode == px4_mode(4, 3)  # AUTO.LOITER
    assert hb.base_mode & mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    assert not hb.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED
    assert hb.system_status == mav.MAV_STATE_STANDBY


async def test_streams_at_high_default_rates_until_told_otherwise(
    px4: tuple[Fleet, TestGcs],
) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    await asyncio.sleep(1.3)  # a little over a second, so a 1 Hz stream shows at least once
    # tens of Hz for attitude and position, as PX4's onboard link does
    # (thresholds leave room for a loaded CI machine; the configured rate is 50 Hz)
    assert gcs.count("ATTITUDE", mark) >= 20
    assert gcs.count("GLOBAL_POSITION_INT", mark) >= 20
    for t in (
        "SYS_STATUS",
        "GPS_RAW_INT",
        "VFR_HUD",
        "EXTENDED_SYS_STATE",
        "ALTITUDE",
        "BATTERY_STATUS",
        "HEARTBEAT",
    ):
        assert gcs.count(t, mark) >= 1, t
    assert (
        await gcs.command_ack(mav.MAV_CMD_SET_MESSAGE_INTERVAL, mav.MAVLINK_MSG_ID_ATTITUDE, -1)
        == ACCEPTED
    )
    assert (
        await gcs.command_ack(
            mav.MAV_CMD_SET_MESSAGE_INTERVAL, mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 500_000
        )
        == ACCEPTED
    )
    await asyncio.sleep(0.1)
    mark = len(gcs.log)
    await asyncio.sleep(1.0)
    assert gcs.count("ATTITUDE", mark) == 0
    assert 1 <= gcs.count("GLOBAL_POSITION_INT", mark) <= 4


async def test_position_and_home_are_reported_in_scaled_integers(
    px4: tuple[Fleet, TestGcs],
) -> None:
    _, gcs = px4
    pos = await gcs.expect("GLOBAL_POSITION_INT")
    assert pos.lat == pytest.approx(HOME_LAT * 1e7, abs=2)
    assert pos.lon == pytest.approx(HOME_LON * 1e7, abs=2)
    assert pos.alt == 200_000 and pos.relative_alt == 0
    mark = len(gcs.log)
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_HOME_POSITION)
        == ACCEPTED
    )
    home = await gcs.expect("HOME_POSITION", since=mark)
    assert home.latitude == pytest.approx(HOME_LAT * 1e7, abs=2)


async def test_autopilot_version_answers_request_message(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_AUTOPILOT_VERSION)
        == ACCEPTED
    )
    av = await gcs.expect("AUTOPILOT_VERSION", since=mark)
    assert av.capabilities & mav.MAV_PROTOCOL_CAPABILITY_MISSION_INT
    assert av.capabilities & mav.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    assert av.capabilities & mav.MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE
    assert av.flight_sw_version >> 24 == 1


async def test_request_message_for_unknown_id_is_unsupported(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, 60000) == mav.MAV_RESULT_UNSUPPORTED


async def test_unknown_command_is_unsupported(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    assert await gcs.command_ack(31999) == mav.MAV_RESULT_UNSUPPORTED
    assert fleet.vehicle(0).counters["unsupported_commands"] == 1


async def test_integer_params_travel_as_raw_bits(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_request_read_message(1, 1, b"COM_DL_LOSS_T", -1))
    pv = await gcs.expect("PARAM_VALUE", since=mark)
    assert pv.param_type == mav.MAV_PARAM_TYPE_INT32
    assert struct.unpack("<i", struct.pack("<f", pv.param_value))[0] == 10
    # and setting one takes the same encoding, echoed back
    wire = struct.unpack("<f", struct.pack("<i", 2))[0]
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_set_message(1, 1, b"NAV_DLL_ACT", wire, mav.MAV_PARAM_TYPE_INT32))
    pv = await gcs.expect("PARAM_VALUE", lambda m: m.param_id == "NAV_DLL_ACT", since=mark)
    assert struct.unpack("<i", struct.pack("<f", pv.param_value))[0] == 2


async def test_float_param_set_is_echoed_and_wrong_type_is_refused(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    mark = len(gcs.log)
    gcs.send(
        mav.MAVLink_param_set_message(1, 1, b"RTL_RETURN_ALT", 45.0, mav.MAV_PARAM_TYPE_REAL32)
    )
    pv = await gcs.expect("PARAM_VALUE", lambda m: m.param_id == "RTL_RETURN_ALT", since=mark)
    assert pv.param_value == 45.0
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_set_message(1, 1, b"RTL_RETURN_ALT", 1.0, mav.MAV_PARAM_TYPE_INT32))
    pv = await gcs.expect("PARAM_VALUE", lambda m: m.param_id == "RTL_RETURN_ALT", since=mark)
    assert pv.param_value == 45.0  # unchanged: the type didn't match
    assert fleet.vehicle(0).param("RTL_RETURN_ALT") == 45.0


async def test_param_list_sends_every_parameter_with_index_and_count(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_request_list_message(1, 1))
    await asyncio.sleep(0.5)
    values = [m for m in gcs.log[mark:] if m.get_type() == "PARAM_VALUE"]
    total = len(fleet.vehicle(0).param_order)
    assert {m.param_index for m in values} == set(range(total))
    assert all(m.param_count == total for m in values)


async def test_unknown_param_gets_no_answer(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_param_request_read_message(1, 1, b"NO_SUCH_PARAM", -1))
    with pytest.raises(AssertionError, match="no PARAM_VALUE"):
        await gcs.expect("PARAM_VALUE", since=mark, timeout=0.5)


def _square_mission(n: int = 4, alt: float = 20.0) -> list[mav.MAVLink_message]:
    items = [mission_item(0, 0, 0, alt, mav.MAV_CMD_NAV_TAKEOFF)]
    for k in range(1, n):
        items.append(
            mission_item(
                k,
                HOME_LAT + 0.0004 * k,
                HOME_LON + 0.0003 * (k % 2),
                alt,
                params=(0.0, 2.0, 0.0, math.nan),
            )
        )
    return items


async def test_mission_upload_download_and_clear_round_trip(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    items = _square_mission(5)
    mark = len(gcs.log)
    assert await upload(gcs, items) == mav.MAV_MISSION_ACCEPTED
    # PX4 asks with MISSION_REQUEST_INT, one per item, seq 0 is a real item
    requests = [m for m in gcs.log[mark:] if m.get_type().startswith("MISSION_REQUEST")]
    assert [m.get_type() for m in requests] == ["MISSION_REQUEST_INT"] * 5
    assert [m.seq for m in requests] == [0, 1, 2, 3, 4]
    back = await download(gcs)
    assert [(m.seq, m.command, m.x, m.y, m.z) for m in back] == [
        (m.seq, m.command, m.x, m.y, m.z) for m in items
    ]
    assert len(fleet.vehicle(0).missions(mav.MAV_MISSION_TYPE_MISSION)) == 5
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_clear_all_message(1, 1, mav.MAV_MISSION_TYPE_MISSION))
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_ACCEPTED
    assert await download(gcs) == []


async def test_fence_and_rally_are_stored_separately_from_the_mission(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    fence_type, rally_type = mav.MAV_MISSION_TYPE_FENCE, mav.MAV_MISSION_TYPE_RALLY
    fence = square_fence(HOME_LAT, HOME_LON, 0.01, fence_type)
    fence.append(
        mission_item(
            4,
            HOME_LAT + 0.002,
            HOME_LON,
            0,
            mav.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
            frame=mav.MAV_FRAME_GLOBAL_INT,
            params=(50, 0, 0, 0),
            mission_type=fence_type,
        )
    )
    rally = [
        mission_item(
            0, HOME_LAT + 0.001, HOME_LON, 10, mav.MAV_CMD_NAV_RALLY_POINT, mission_type=rally_type
        )
    ]
    assert await upload(gcs, fence, fence_type) == mav.MAV_MISSION_ACCEPTED
    assert await upload(gcs, rally, rally_type) == mav.MAV_MISSION_ACCEPTED
    v = fleet.vehicle(0)
    assert len(v.missions(fence_type)) == 5
    assert len(v.missions(rally_type)) == 1
    assert v.missions(mav.MAV_MISSION_TYPE_MISSION) == []
    back = await download(gcs, fence_type)
    assert [m.command for m in back] == [5001] * 4 + [5004]
    assert not v.fence.breached(v.e, v.n)


@pytest.mark.parametrize(
    ("item_kwargs", "result"),
    [
        ({"lat": 91.0}, mav.MAV_MISSION_INVALID_PARAM5_X),
        ({"lon": -181.0}, mav.MAV_MISSION_INVALID_PARAM6_Y),
        ({"alt": math.nan}, mav.MAV_MISSION_INVALID_PARAM7),
        ({"command": 31999}, mav.MAV_MISSION_UNSUPPORTED),
        ({"frame": mav.MAV_FRAME_LOCAL_NED}, mav.MAV_MISSION_UNSUPPORTED_FRAME),
        (
            {"command": mav.MAV_CMD_NAV_LOITER_TIME, "params": (-5.0, 0, 0, 0)},
            mav.MAV_MISSION_INVALID_PARAM1,
        ),
    ],
    ids=["lat-91", "lon-181", "nan-alt", "unknown-command", "local-frame", "negative-loiter"],
)
async def test_bad_item_mid_upload_is_refused_with_its_mission_result(
    px4: tuple[Fleet, TestGcs], item_kwargs: dict[str, object], result: int
) -> None:
    fleet, gcs = px4
    assert await upload(gcs, _square_mission(3)) == mav.MAV_MISSION_ACCEPTED
    before = list(fleet.vehicle(0).missions(mav.MAV_MISSION_TYPE_MISSION))
    kw = {"lat": HOME_LAT + 0.001, "lon": HOME_LON, "alt": 20.0}
    kw.update(item_kwargs)  # type: ignore[arg-type]
    items = _square_mission(4)
    items[2] = mission_item(2, **kw)  # type: ignore[arg-type]
    assert await upload(gcs, items) == result
    # the vehicle keeps the mission it had
    assert fleet.vehicle(0).missions(mav.MAV_MISSION_TYPE_MISSION) == before


async def test_too_many_items_is_no_space(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_count_message(1, 1, 65, mav.MAV_MISSION_TYPE_FENCE))
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_NO_SPACE


async def test_fence_polygon_with_inconsistent_vertex_count_is_refused(
    px4: tuple[Fleet, TestGcs],
) -> None:
    _, gcs = px4
    ft = mav.MAV_MISSION_TYPE_FENCE
    fence = [
        mission_item(
            i,
            HOME_LAT + 0.001 * i,
            HOME_LON + 0.001 * (i % 2),
            0,
            mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
            frame=mav.MAV_FRAME_GLOBAL_INT,
            params=(4, 0, 0, 0),
            mission_type=ft,
        )
        for i in range(3)
    ]  # says 4 vertices, sends 3
    assert await upload(gcs, fence, ft) == mav.MAV_MISSION_INVALID_PARAM1


async def test_item_out_of_order_is_invalid_sequence(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_count_message(1, 1, 3, 0))
    await gcs.expect("MISSION_REQUEST_INT", lambda m: m.seq == 0, since=mark)
    gcs.send(mission_item(2, HOME_LAT, HOME_LON, 10))
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_INVALID_SEQUENCE


async def test_duplicate_item_is_ignored_and_upload_continues(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    items = _square_mission(3)
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_count_message(1, 1, 3, 0))
    await gcs.expect("MISSION_REQUEST_INT", lambda m: m.seq == 0, since=mark)
    gcs.send(items[0])
    await gcs.expect("MISSION_REQUEST_INT", lambda m: m.seq == 1, since=mark)
    gcs.send(items[0])  # duplicate
    gcs.send(items[1])
    await gcs.expect("MISSION_REQUEST_INT", lambda m: m.seq == 2, since=mark)
    gcs.send(items[2])
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_ACCEPTED


async def test_silent_uploader_gets_retries_then_cancelled(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_count_message(1, 1, 2, 0))
    ack = await gcs.expect("MISSION_ACK", since=mark, timeout=8.0)
    assert ack.type == mav.MAV_MISSION_OPERATION_CANCELLED
    requests = [m for m in gcs.log[mark:] if m.get_type() == "MISSION_REQUEST_INT"]
    assert len(requests) == 21  # the first request and 20 retries, 250 ms apart
    assert fleet.vehicle(0).missions(0) == []


async def test_download_of_missing_seq_is_invalid_sequence(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_mission_request_int_message(1, 1, 7, 0))
    ack = await gcs.expect("MISSION_ACK", since=mark)
    assert ack.type == mav.MAV_MISSION_INVALID_SEQUENCE


async def test_messages_for_another_system_are_ignored(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    mark = len(gcs.log)
    gcs.send(
        mav.MAVLink_command_long_message(
            7, 1, mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, 1, 0, 0, 0, 0, 0, 0
        )
    )
    with pytest.raises(AssertionError):
        await gcs.expect("COMMAND_ACK", since=mark, timeout=0.5)
    assert not fleet.vehicle(0).armed
    assert fleet.vehicle(0).counters["not_for_us"] == 1


async def test_long_statustext_arrives_in_chunks(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    text = "Battery temperature high: check pack 2 before the next flight, cooling down now"
    mark = len(gcs.log)
    fleet.statustext(0, mav.MAV_SEVERITY_WARNING, text)
    await gcs.expect("STATUSTEXT", lambda m: m.chunk_seq == 1, since=mark)
    chunks = [m for m in gcs.log[mark:] if m.get_type() == "STATUSTEXT"]
    assert len({m.id for m in chunks}) == 1 and chunks[0].id != 0
    assert [m.chunk_seq for m in chunks] == [0, 1]
    assert "".join(m.text for m in chunks) == text


async def test_timesync_request_is_answered(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_timesync_message(0, 123456789))
    reply = await gcs.expect("TIMESYNC", since=mark)
    assert reply.ts1 == 123456789 and reply.tc1 > 0


async def test_arm_is_denied_without_gps_with_a_reason(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    fleet.set_gps(0, False)
    mark = len(gcs.log)
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_DENIED
    st = await gcs.expect("STATUSTEXT", lambda m: "Preflight Fail" in m.text, since=mark)
    assert st.severity == mav.MAV_SEVERITY_CRITICAL
    assert not fleet.vehicle(0).armed


async def test_unflown_vehicle_disarms_itself_after_preflight_timeout() -> None:
    async with sim("px4", speed=2.0) as (fleet, (gcs,)):
        mark = len(gcs.log)
        assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
        assert fleet.vehicle(0).armed
        hb = await gcs.expect("HEARTBEAT", lambda m: m.base_mode & 128, since=mark)
        assert hb.system_status == mav.MAV_STATE_ACTIVE
        # COM_DISARM_PRFLT is 10 s; at 2x that is about 5 s of wall time
        await gcs.expect("HEARTBEAT", lambda m: not m.base_mode & 128, timeout=7.0)
        assert any("preflight" in t for _, t in fleet.vehicle(0).statustext_log)


async def test_disarm_in_flight_is_denied_unless_forced(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    v = fleet.vehicle(0)
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == ACCEPTED
    assert (
        await gcs.command_ack(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, math.nan, math.nan, math.nan, 210.0)
        == ACCEPTED
    )
    await until(lambda: v.alt_rel_m > 3.0, 5.0)
    assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0) == mav.MAV_RESULT_DENIED
    assert v.armed
