"""MAVLink 2 signing in nestsim: signed traffic accepted, unsigned or forged rejected."""

from __future__ import annotations

import time

import pytest
from nestsim.fleet import Fleet
from pymavlink.dialects.v20 import ardupilotmega as mav

from tests.conftest import fleet_config
from tests.sim.gcs import TestGcs, until

KEY = bytes(range(1, 33))


def _sign(gcs: TestGcs, key: bytes) -> None:
    s = gcs.encoder.signing
    s.secret_key = key
    s.sign_outgoing = True
    s.link_id = 7
    s.timestamp = int((time.time() - 1420070400) * 100_000)


async def test_signed_commands_are_accepted_and_unsigned_rejected() -> None:
    cfg = fleet_config(1, speed=5.0, signing_keys={1: KEY})
    gcs = await TestGcs.listen(cfg.api_remote_ports[0])  # type: ignore[index]
    try:
        async with Fleet(cfg) as fleet:
            hb = await gcs.wait_heard()
            assert len(hb.get_msgbuf()) == 9 + 12 + 13  # the vehicle signs what it sends
            v = fleet.vehicle(0)
            # unsigned: silently dropped and counted
            mark = len(gcs.log)
            gcs.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1)
            with pytest.raises(AssertionError):
                await gcs.expect("COMMAND_ACK", since=mark, timeout=0.5)
            assert v.counters["signature_rejected"] == 1 and not v.armed
            # forged with the wrong key: same
            _sign(gcs, bytes(32))
            gcs.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1)
            await until(lambda: v.counters["signature_rejected"] == 2, 1.0, "forged rejected")
            # signed with the right key: accepted
            _sign(gcs, KEY)
            assert await gcs.command_ack(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == (
                mav.MAV_RESULT_ACCEPTED)
            assert v.armed
    finally:
        gcs.close()


async def test_setup_signing_provisions_a_key() -> None:
    cfg = fleet_config(1, speed=5.0)
    gcs = await TestGcs.listen(cfg.api_remote_ports[0])  # type: ignore[index]
    try:
        async with Fleet(cfg) as fleet:
            await gcs.wait_heard()
            v = fleet.vehicle(0)
            gcs.send(mav.MAVLink_setup_signing_message(1, 1, KEY, 0))
            await until(lambda: v.signing_key == KEY, 1.0, "key provisioned")
            gcs.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1)
            await until(lambda: v.counters.get("signature_rejected", 0) == 1, 1.0,
                        "unsigned now rejected")
    finally:
        gcs.close()
