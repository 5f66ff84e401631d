"""The fleet link fed frames directly (no sockets): routing by component, command exclusivity,
signing clock, and serial hang-ups."""

from __future__ import annotations

import asyncio
import os
import time
import tty
from typing import Any

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.errors import CommandError
from nestd.mavlink.link import FleetLink
from nestd.mavlink.signing import SignatureChecker, Verdict, sign_outgoing, signing_timestamp
from nestd.mavlink.transport import Endpoint, SerialEndpoint

PX4_LOITER = 4 << 16 | 3 << 24


class FakeEndpoint(Endpoint):
    def __init__(self, name: str) -> None:
        super().__init__(name, lambda ep, addr, data: None)
        self.sent: list[tuple[Any, bytes]] = []

    async def open(self) -> None:
        pass

    def send(self, data: bytes, addr: Any) -> None:
        self.sent.append((addr, data))

    def close(self) -> None:
        pass


def make_link(**kw: Any) -> tuple[FleetLink, FakeEndpoint]:
    link = FleetLink(LinkConfig(endpoints=[EndpointConfig(name="ep", kind="udp_listen",
                                                          port=1)], **kw))
    ep = FakeEndpoint("ep")
    link.endpoints["ep"] = ep
    return link, ep


def frame(msg: Any, sysid: int = 1, compid: int = 1) -> bytes:
    return bytes(msg.pack(mav.MAVLink(None, sysid, compid)))


def heartbeat(sysid: int = 1, compid: int = 1) -> bytes:
    return frame(mav.MAVLink_heartbeat_message(2, 12, 1, PX4_LOITER, 3, 3), sysid, compid)


def ack(command: int, result: int = 0, compid: int = 1) -> bytes:
    return frame(mav.MAVLink_command_ack_message(command, result, 0, 0, 250, 190), 1, compid)


async def test_another_components_ack_does_not_complete_an_autopilot_command() -> None:
    link, ep = make_link()
    link._receive(ep, ("10.0.0.1", 1), heartbeat())
    v = link.vehicles[1]
    call = asyncio.create_task(v.command(mav.MAV_CMD_DO_SET_MODE, 1, 4, 3))
    await asyncio.sleep(0.01)
    link._receive(ep, ("10.0.0.9", 9), ack(mav.MAV_CMD_DO_SET_MODE, compid=191))
    await asyncio.sleep(0.05)
    assert not call.done()
    assert v.addr == ("10.0.0.1", 1)  # a companion computer doesn't take over the route
    link._receive(ep, ("10.0.0.1", 1), ack(mav.MAV_CMD_DO_SET_MODE))
    result = await call
    assert result.result == mav.MAV_RESULT_ACCEPTED
    await v.close()


async def test_only_the_autopilot_keeps_the_link_alive() -> None:
    now = [1000.0]
    link = FleetLink(LinkConfig(endpoints=[EndpointConfig(name="ep", kind="udp_listen",
                                                          port=1)], link_lost_after_s=3.0),
                     clock=lambda: now[0])
    ep = FakeEndpoint("ep")
    link.endpoints["ep"] = ep
    link._receive(ep, ("a", 1), heartbeat())
    v = link.vehicles[1]
    for _ in range(10):
        now[0] += 1.0
        link._receive(ep, ("a", 1), heartbeat(compid=191))  # companion still talking
    assert v.health.on_timer(now[0]) is not None  # the autopilot's silence is noticed
    assert not v.health.alive
    await v.close()


async def test_two_calls_with_one_command_id_do_not_share_an_ack() -> None:
    link, ep = make_link()
    link._receive(ep, ("a", 1), heartbeat())
    v = link.vehicles[1]
    await v.close()  # no setup traffic in this test
    first = asyncio.create_task(v.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1))
    second = asyncio.create_task(v.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0))
    await asyncio.sleep(0.02)
    link._receive(ep, ("a", 1), ack(mav.MAV_CMD_COMPONENT_ARM_DISARM))
    await first
    await asyncio.sleep(0.02)
    assert not second.done()  # the disarm waits for its own answer
    link._receive(ep, ("a", 1), ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, mav.MAV_RESULT_DENIED))
    with pytest.raises(CommandError) as refused:
        await second
    assert refused.value.result == mav.MAV_RESULT_DENIED


async def test_outgoing_signing_timestamp_follows_the_clock() -> None:
    wall = [time.time()]
    link = FleetLink(LinkConfig(endpoints=[EndpointConfig(name="ep", kind="udp_listen",
                                                          port=1)]), wall_clock=lambda: wall[0])
    ep = FakeEndpoint("ep")
    link.endpoints["ep"] = ep
    link._receive(ep, ("a", 1), heartbeat())
    v = link.vehicles[1]
    await v.close()
    key = bytes(range(32))
    sign_outgoing(v.encoder.mav, key, 1, wall[0])
    wall[0] += 3600  # an hour later a vehicle that just rebooted sees us as a new stream
    v.send(mav.MAVLink_heartbeat_message(6, 8, 0, 0, 4, 3))
    checker = SignatureChecker(key)
    parser = mav.MAVLink(None)
    (msg,) = parser.parse_buffer(ep.sent[-1][1])
    assert checker.check(msg, wall[0]) is Verdict.ACCEPTED
    assert v.encoder.mav.signing.timestamp >= signing_timestamp(wall[0])


async def test_serial_hang_up_closes_the_endpoint_instead_of_spinning() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    ep = SerialEndpoint("radio", lambda e, a, d: None, os.ttyname(slave), 57600)
    await ep.open()
    os.close(master)
    for _ in range(50):
        if ep.closed:
            break
        await asyncio.sleep(0.01)
    assert ep.closed and ep.hangups == 1
    os.close(slave)


async def test_serial_send_queue_is_bounded() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    ep = SerialEndpoint("radio", lambda e, a, d: None, os.ttyname(slave), 57600)
    await ep.open()
    try:
        for _ in range(200):  # nobody reads the other end
            ep.send(b"x" * 1000, None)
        assert len(ep._out) <= ep.max_queued_bytes
        assert ep.dropped_bytes > 0
    finally:
        ep.close()
        os.close(master)
        os.close(slave)
