"""A telemetry radio on a serial port: the link discovers and commands a vehicle over a pty."""

from __future__ import annotations

import asyncio
import os
import tty

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.link import FleetLink


async def test_vehicle_on_a_serial_radio_is_discovered_and_answers_commands() -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    os.set_blocking(master, False)
    device = os.ttyname(slave)
    link = FleetLink(LinkConfig(endpoints=[
        EndpointConfig(name="radio0", kind="serial", device=device, baud=57600)],
        setup_retry_s=60))
    vehicle = mav.MAVLink(None, 7, 1)
    parser = mav.MAVLink(None)
    received: list[str] = []
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            return
        # A stream, not datagrams: frames may be split across reads.
        for msg in parser.parse_buffer(data) or []:
            received.append(msg.get_type())
            if msg.get_type() == "COMMAND_LONG":
                os.write(master, mav.MAVLink_command_ack_message(
                    msg.command, mav.MAV_RESULT_ACCEPTED, 0, 0, 250, 190).pack(vehicle))

    loop.add_reader(master, readable)
    try:
        async with link:
            hb = mav.MAVLink_heartbeat_message(2, 12, 1, 4 << 16 | 3 << 24, 3, 3).pack(vehicle)
            # a heartbeat split in two writes still frames
            os.write(master, hb[:5])
            await asyncio.sleep(0.05)
            os.write(master, hb[5:])
            for _ in range(100):
                if 7 in link.vehicles:
                    break
                await asyncio.sleep(0.02)
            v = link.vehicles[7]
            result = await v.command(mav.MAV_CMD_DO_SET_MODE, 1, 4, 3)
            assert result.result == mav.MAV_RESULT_ACCEPTED
            assert "COMMAND_LONG" in received
    finally:
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
