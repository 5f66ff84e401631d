"""Malformed MAVLink and bad control requests: refused or counted, never a crash."""

from __future__ import annotations

import asyncio
import json

import pytest
from nestsim.control import ControlServer, request
from nestsim.fleet import Fleet, FleetConfig, FleetError
from pymavlink.dialects.v10 import ardupilotmega as mav1
from pymavlink.dialects.v20 import ardupilotmega as mav

from tests.sim.gcs import TestGcs

ACCEPTED = mav.MAV_RESULT_ACCEPTED


def _arm_frame(gcs: TestGcs) -> bytes:
    return bytes(
        mav.MAVLink_command_long_message(
            1, 1, mav.MAV_CMD_REQUEST_MESSAGE, 0, mav.MAVLINK_MSG_ID_HOME_POSITION, 0, 0, 0, 0, 0, 0
        ).pack(gcs.encoder)
    )


async def test_garbage_bytes_are_counted_and_the_link_keeps_working(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    gcs.send_raw(b"\x00\xff" * 40 + b"hello, vehicle")
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_HOME_POSITION)
        == ACCEPTED
    )
    assert fleet.vehicle(0).counters["bad_frames"] >= 1


async def test_bad_crc_frame_is_dropped(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    frame = bytearray(
        mav.MAVLink_command_long_message(
            1, 1, mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, 1, 0, 0, 0, 0, 0, 0
        ).pack(gcs.encoder)
    )
    frame[-1] ^= 0x5A
    mark = len(gcs.log)
    gcs.send_raw(bytes(frame))
    with pytest.raises(AssertionError):
        await gcs.expect("COMMAND_ACK", since=mark, timeout=0.4)
    assert not fleet.vehicle(0).armed
    assert fleet.vehicle(0).counters["bad_frames"] == 1


async def test_truncated_frame_does_not_swallow_the_next_datagram(
    px4: tuple[Fleet, TestGcs],
) -> None:
    _fleet, gcs = px4
    gcs.send_raw(_arm_frame(gcs)[:9])
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_HOME_POSITION)
        == ACCEPTED
    )


async def test_unknown_message_id_is_counted(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    # a valid MAVLink 2 frame layout for message id 0x00EEEE, which no dialect defines
    frame = bytearray(_arm_frame(gcs))
    frame[7], frame[8], frame[9] = 0xEE, 0xEE, 0x00
    gcs.send_raw(bytes(frame))
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_HOME_POSITION)
        == ACCEPTED
    )
    c = fleet.vehicle(0).counters
    assert c["unknown_messages"] + c["bad_frames"] >= 1


async def test_mavlink1_command_is_understood(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    enc1 = mav1.MAVLink(None, 255, 190)
    frame = mav1.MAVLink_command_long_message(
        1, 1, mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, 1, 0, 0, 0, 0, 0, 0
    ).pack(enc1)
    assert frame[0] == 0xFE
    mark = len(gcs.log)
    gcs.send_raw(frame)
    ack = await gcs.expect("COMMAND_ACK", since=mark)
    assert ack.result == ACCEPTED and fleet.vehicle(0).armed


async def test_mission_item_without_an_upload_is_ignored(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    gcs.send(mav.MAVLink_mission_item_int_message(1, 1, 0, 6, 16, 0, 1, 0, 0, 0, 0, 1, 1, 10, 0))
    assert (
        await gcs.command_ack(mav.MAV_CMD_REQUEST_MESSAGE, mav.MAVLINK_MSG_ID_HOME_POSITION)
        == ACCEPTED
    )
    assert fleet.vehicle(0).counters["ignored_mission"] == 1
    assert fleet.vehicle(0).missions(0) == []


async def test_set_mode_to_unknown_custom_mode_is_unsupported(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_DO_SET_MODE, 1, 42, 7) == mav.MAV_RESULT_UNSUPPORTED
    assert fleet.vehicle(0).mode_name == "AUTO.LOITER"


async def test_offboard_without_setpoints_is_denied(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_DO_SET_MODE, 1, 6, 0) == mav.MAV_RESULT_DENIED


async def test_mission_mode_without_a_mission_is_denied(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_DO_SET_MODE, 1, 4, 4) == mav.MAV_RESULT_DENIED
    assert await gcs.command_ack(mav.MAV_CMD_MISSION_START) == mav.MAV_RESULT_DENIED


async def test_set_home_with_out_of_range_position_is_denied(px4: tuple[Fleet, TestGcs]) -> None:
    _, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_DO_SET_HOME, 0, 0, 0, 0, 91.0, 0, 100) == (
        mav.MAV_RESULT_DENIED
    )


async def test_set_message_interval_for_unknown_message_is_unsupported(
    px4: tuple[Fleet, TestGcs],
) -> None:
    _, gcs = px4
    assert await gcs.command_ack(mav.MAV_CMD_SET_MESSAGE_INTERVAL, 60001, 100000) == (
        mav.MAV_RESULT_UNSUPPORTED
    )


# -- configuration and control API ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"autopilot": "betaflight"}, "unknown autopilot"),
        ({"vehicles": 0}, "between 1 and 254"),
        ({"vehicles": 300}, "between 1 and 254"),
        ({"speed": 0.0}, "positive"),
        ({"home": (95.0, 0.0, 0.0)}, "not a valid"),
        ({"vehicles": 2, "api_remote_ports": [1]}, "one port per vehicle"),
    ],
)
def test_bad_fleet_config_is_refused_with_a_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FleetError, match=message):
        FleetConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "JSONDecodeError"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"cmd": "fly_to_the_moon"}\n', "unknown cmd"),
        (b'{"cmd": "cut_link", "vehicle": 9}\n', "no vehicle 9"),
        (b'{"cmd": "cut_link"}\n', "TypeError"),
        (b'{"cmd": "set_loss", "vehicle": 0, "loss": 2}\n', "between 0 and 1"),
        (b'{"cmd": "set_loss", "vehicle": 0}\n', "KeyError"),
        (b'{"cmd": "set_wind", "east_mps": "NaN", "north_mps": 0}\n', "finite"),
        (b'{"cmd": "cut_link", "vehicle": 0, "link": "radio"}\n', "unknown link"),
        (b'{"cmd": "statustext", "vehicle": 0, "severity": 12, "text": "x"}\n', "severity"),
    ],
)
async def test_bad_control_requests_get_an_error_reply(
    px4: tuple[Fleet, TestGcs], line: bytes, error: str
) -> None:
    fleet, _ = px4
    server = ControlServer(fleet)
    reply = server.handle_line(line)
    assert reply["ok"] is False
    assert error in reply["error"]


async def test_control_server_cuts_and_restores_a_link_over_tcp(
    px4: tuple[Fleet, TestGcs],
) -> None:
    fleet, gcs = px4
    server = ControlServer(fleet)
    port = await server.start()
    try:
        assert await request(port, {"cmd": "cut_link", "vehicle": 0, "duration_s": 0.6}) == {
            "ok": True
        }
        await asyncio.sleep(0.1)
        mark = len(gcs.log)
        await asyncio.sleep(0.3)
        assert len(gcs.log) == mark  # silent while cut
        await gcs.expect("ATTITUDE", timeout=2.0)  # and back afterwards by itself
        status = await request(port, {"cmd": "status"})
        assert status["vehicles"][0]["link_cut"] is False
        # an over-long line is refused, and the server keeps serving
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 10000 + b"\n")
        await writer.drain()
        reply = json.loads(await reader.readline())
        assert reply == {"ok": False, "error": "line too long"}
        writer.close()
        assert (await request(port, {"cmd": "status"}))["ok"] is True
    finally:
        await server.stop()


async def test_packet_loss_and_latency_are_applied(px4: tuple[Fleet, TestGcs]) -> None:
    fleet, gcs = px4
    fleet.set_loss(0, 1.0)
    await asyncio.sleep(0.1)
    mark = len(gcs.log)
    await asyncio.sleep(0.3)
    assert len(gcs.log) == mark
    fleet.set_loss(0, 0.0)
    fleet.set_latency(0, 0.25)
    await gcs.expect("ATTITUDE", timeout=2.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    mark = len(gcs.log)
    gcs.send(mav.MAVLink_timesync_message(0, 42))
    await gcs.expect("TIMESYNC", lambda m: m.ts1 == 42, since=mark)
    assert loop.time() - t0 >= 0.45  # 0.25 s each way
