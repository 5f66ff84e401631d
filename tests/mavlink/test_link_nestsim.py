"""The fleet link against nestsim over real UDP: discovery, setup, transfers, flight, faults."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nestsim.fleet import Fleet
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.config import EndpointConfig, LinkConfig, SigningConfig, VehicleLinkConfig
from nestd.mavlink.link import FleetLink, Notice
from nestd.mavlink.protocols.mission import FENCE, MISSION, RALLY, MissionItem
from tests.conftest import fleet_config, free_udp_ports

HOME_LAT, HOME_LON = 33.1507, -96.8236
REL = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT


@contextlib.asynccontextmanager
async def fleet_and_link(
    autopilot: str, n: int, shared: bool, **kw: Any
) -> AsyncIterator[tuple[Fleet, FleetLink, list[Notice]]]:
    """n vehicles either on one shared GCS port or each on its own API port."""
    link_kw = kw.pop("link_kw", {})
    if shared:
        (port,) = free_udp_ports(1)
        cfg = fleet_config(n, autopilot=autopilot, gcs_link=True, gcs_remote_port=port, **kw)
        endpoints = [EndpointConfig(name="radio", kind="udp_listen", port=port)]
    else:
        cfg = fleet_config(n, autopilot=autopilot, **kw)
        assert cfg.api_remote_ports is not None
        endpoints = [EndpointConfig(name=f"api{i}", kind="udp_listen", port=p)
                     for i, p in enumerate(cfg.api_remote_ports)]
    link = FleetLink(LinkConfig(endpoints=endpoints, **link_kw))
    notices: list[Notice] = []
    link.listen(notices.append)
    async with link, Fleet(cfg) as fleet:
        yield fleet, link, notices


def wp(seq: int, lat: float, lon: float, alt: float, command: int = mav.MAV_CMD_NAV_WAYPOINT,
       params: tuple[float, float, float, float] = (0, 2, 0, math.nan),
       mission_type: int = MISSION, frame: int = REL) -> MissionItem:
    return MissionItem(seq=seq, frame=frame, command=command, current=1 if seq == 0 else 0,
                       autocontinue=1, param1=params[0], param2=params[1], param3=params[2],
                       param4=params[3], x=round(lat * 1e7), y=round(lon * 1e7), z=alt,
                       mission_type=mission_type)


@pytest.mark.parametrize("autopilot", ["px4", "ardupilot"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-port", "port-per-vehicle"])
async def test_discovers_five_vehicles_and_sets_their_streams(autopilot: str,
                                                              shared: bool) -> None:
    async with fleet_and_link(autopilot, 5, shared, speed=2.0) as (fleet, link, notices):
        await link.wait_for_vehicles({1, 2, 3, 4, 5}, timeout_s=20)
        for sysid, v in link.vehicles.items():
            assert v.profile.name == ("px4" if autopilot == "px4" else "ardupilot_copter")
            assert v.autopilot_version is not None
            sim_v = fleet.vehicle(sysid - 1)
            await v.wait_until(lambda v=v, s=sim_v: v.state.lat_deg is not None
                               and abs(v.state.lat_deg - s.lat_deg) < 1e-6, 5.0, "position")
        kinds = [n.kind for n in notices]
        assert kinds.count("vehicle_discovered") == 5
        assert kinds.count("vehicle_ready") == 5
        assert link.counters["bad_frames"] == 0


async def test_px4_high_rate_streams_are_turned_down() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        sim_link = fleet.vehicle(0).links[0]
        # what the profile asked for is what the simulated vehicle now streams
        profile = link.vehicles[1].profile
        for rate in profile.streams.intervals:
            assert sim_link.rates.get(rate.msg_id, 0.0) == pytest.approx(rate.rate_hz, rel=0.01)
        for mid in profile.streams.off_ids:
            assert mid not in sim_link.rates


@pytest.mark.parametrize("autopilot", ["px4", "ardupilot"])
async def test_upload_and_read_back_mission_fence_and_rally(autopilot: str) -> None:
    async with fleet_and_link(autopilot, 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        mission = [wp(0, HOME_LAT, HOME_LON, 0)] if v.profile.mission.seq0_is_home else []
        first = len(mission)
        mission.append(wp(first, 0, 0, 20, mav.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, math.nan)))
        mission += [wp(first + k, HOME_LAT + 0.001 * k, HOME_LON, 20) for k in range(1, 20)]
        await v.upload_mission(mission)
        d = 0.01
        fence = [wp(i, HOME_LAT + a, HOME_LON + b, 0,
                    mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, (4, 0, 0, 0), FENCE,
                    mav.MAV_FRAME_GLOBAL_INT)
                 for i, (a, b) in enumerate([(-d, -d), (-d, d), (d, d), (d, -d)])]
        await v.upload_fence(fence)
        rally = [wp(0, HOME_LAT + 0.002, HOME_LON, 15, mav.MAV_CMD_NAV_RALLY_POINT,
                    (0, 0, 0, 0), RALLY)]
        await v.upload_rally(rally)
        sim_v = fleet.vehicle(0)
        assert len(sim_v.missions(MISSION)) == len(mission)
        assert len(sim_v.missions(FENCE)) == 4
        assert len(sim_v.missions(RALLY)) == 1
        assert [it.z for it in await v.download(RALLY)] == [15.0]
        await v.clear(FENCE)
        assert sim_v.missions(FENCE) == []


@pytest.mark.parametrize("autopilot", ["px4", "ardupilot"])
async def test_arm_take_off_fly_mission_return_and_land(autopilot: str) -> None:
    async with fleet_and_link(autopilot, 1, False, speed=8.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        sim_v = fleet.vehicle(0)
        mission = [wp(0, HOME_LAT, HOME_LON, 0)] if v.profile.mission.seq0_is_home else []
        first = len(mission)
        mission.append(wp(first, 0, 0, 25, mav.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, math.nan)))
        mission.append(wp(first + 1, HOME_LAT + 0.002, HOME_LON + 0.001, 25))
        mission.append(wp(first + 2, HOME_LAT + 0.002, HOME_LON - 0.001, 25))
        await v.upload_mission(mission)
        if v.profile.mission.can_start_on_ground:
            await v.arm()
        else:
            await v.takeoff(25.0)
            await v.wait_until(lambda: (v.state.alt_rel_m or 0) > 24.0, 15.0, "takeoff")
        await v.start_mission()
        last = len(mission) - 1
        await v.wait_until(lambda: v.state.last_reached_seq == last, 40.0, "mission end")
        await v.return_to_launch()
        await v.wait_until(lambda: not v.state.armed, 60.0, "landed and disarmed")
        assert sim_v.is_landed
        assert math.hypot(sim_v.e - sim_v.home_e, sim_v.n - sim_v.home_n) < 1.5


async def test_goto_hold_and_land_commands() -> None:
    async with fleet_and_link("px4", 1, False, speed=8.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        await v.takeoff(15.0)
        await v.wait_until(lambda: (v.state.alt_rel_m or 0) > 14.0, 15.0, "takeoff")
        await v.goto(HOME_LAT + 0.001, HOME_LON, 30.0)
        sim_v = fleet.vehicle(0)
        await v.wait_until(lambda: abs(sim_v.lat_deg - HOME_LAT - 0.001) < 5e-6
                           and abs(sim_v.alt_rel_m - 30) < 0.5, 20.0, "at goto target")
        await v.hold()
        await v.land()
        await v.wait_until(lambda: v.state.landed_state == mav.MAV_LANDED_STATE_ON_GROUND,
                           60.0, "landed")


async def test_params_read_set_and_ensure_failsafes() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        sim_v = fleet.vehicle(0)
        p = await v.read_param("COM_DL_LOSS_T")
        assert p.value == 10 and isinstance(p.value, int)
        await v.set_param("RTL_RETURN_ALT", 45.5)
        assert sim_v.params["RTL_RETURN_ALT"] == 45.5
        changed = await v.ensure_params()
        assert "NAV_DLL_ACT" in changed
        for rp in v.profile.recommended_params:
            if rp.name in sim_v.params:
                assert sim_v.params[rp.name] == rp.value
        assert await v.ensure_params() == {}
        all_params = await v.read_all_params()
        assert len(all_params) == len(sim_v.param_order)


async def test_link_cut_is_noticed_and_restored() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0,
                              link_kw={"link_lost_after_s": 1.0}) as (fleet, link, notices):
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        fleet.cut_link(0)
        await v.wait_until(lambda: not v.health.alive, 5.0, "link lost")
        fleet.restore_link(0)
        await v.wait_until(lambda: v.health.alive, 5.0, "link back")
        kinds = [n.kind for n in notices]
        assert kinds.index("link_lost") < kinds.index("link_restored")
        # still fully usable: a command round trip works
        await v.set_message_interval(mav.MAVLINK_MSG_ID_VFR_HUD, 0.5)


async def test_ardupilot_reboot_forgets_streams_and_the_link_reapplies_them() -> None:
    async with fleet_and_link("ardupilot", 1, False, speed=2.0,
                              link_kw={"link_lost_after_s": 1.5}) as (fleet, link, notices):
        await link.wait_for_vehicles({1}, timeout_s=20)
        v = link.vehicles[1]
        sim_link = fleet.vehicle(0).links[0]
        assert mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT in sim_link.rates
        await v.command(mav.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN, 1.0)
        await v.wait_until(
            lambda: mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT not in sim_link.rates, 5.0,
            "the reboot dropped the requested streams")
        await v.wait_until(
            lambda: mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT in sim_link.rates, 20.0,
            "streams re-applied after the reboot")
        assert any(n.kind in ("vehicle_rebooted", "link_restored", "streams_reapplied")
                   for n in notices)


async def test_signed_link_works_and_unsigned_spoof_is_rejected(tmp_path: Path) -> None:
    key = bytes(range(100, 132))
    key_file = tmp_path / "v1.key"
    key_file.write_text(key.hex())
    async with fleet_and_link(
        "px4", 1, False, speed=2.0, signing_keys={1: key},
        link_kw={"vehicles": [VehicleLinkConfig(sysid=1, signing=SigningConfig(
            key_file=key_file))]},
    ) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        await v.arm()
        sim_v = fleet.vehicle(0)
        assert sim_v.armed
        assert sim_v.counters.get("signature_rejected", 0) == 0
        # a spoofer on the same port sends an unsigned disarm: the vehicle refuses it
        spoof = mav.MAVLink(None, 250, 190)
        frame = mav.MAVLink_command_long_message(1, 1, mav.MAV_CMD_COMPONENT_ARM_DISARM, 0,
                                                 0, 21196, 0, 0, 0, 0, 0).pack(spoof)
        link.endpoints["api0"].send(frame, v.addr)
        await v.wait_until(lambda: sim_v.counters.get("signature_rejected", 0) == 1, 3.0,
                           "spoof rejected")
        assert sim_v.armed


async def test_heartbeat_from_unexpected_sysid_is_counted_not_discovered() -> None:
    (port,) = free_udp_ports(1)
    cfg = fleet_config(2, gcs_link=True, gcs_remote_port=port, speed=2.0)
    link = FleetLink(LinkConfig(endpoints=[
        EndpointConfig(name="radio", kind="udp_listen", port=port, sysids=[1])]))
    async with link, Fleet(cfg):
        await link.wait_for_vehicles({1}, timeout_s=10)
        await asyncio.sleep(1.5)
        assert set(link.vehicles) == {1}
        assert link.counters["spoofed_sysid"] > 0


async def test_hundred_item_upload_survives_ten_percent_loss_each_way() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        await v.wait_until(lambda: v.health.rtt_s is not None, 5.0, "round trip measured")
        fleet.set_loss(0, 0.10)
        items = [wp(0, 0, 0, 30, mav.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, math.nan))]
        items += [wp(k, HOME_LAT + 0.0001 * k, HOME_LON, 30) for k in range(1, 100)]
        await v.upload_mission(items)
        sim_items = fleet.vehicle(0).missions(MISSION)
        assert [(it.x, it.y, it.z) for it in sim_items] == [(it.x, it.y, it.z) for it in items]
        assert fleet.vehicle(0).links[0].stats.tx_dropped > 0  # the loss really happened


async def test_garbage_on_the_link_is_counted_and_the_vehicle_stays_usable() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        sim_link = fleet.vehicle(0).links[0]
        good = mav.MAVLink_heartbeat_message(2, 12, 0, 0, 3, 3).pack(mav.MAVLink(None, 1, 1))
        bad_crc = bytearray(good)
        bad_crc[-1] ^= 0xFF
        unknown = bytearray(good)
        unknown[7:10] = b"\xee\xee\x00"
        assert sim_link.transport is not None
        for data in (b"\x00\xfe\xfd garbage", bytes(bad_crc), good[:7], bytes(unknown)):
            sim_link.transport.sendto(data, sim_link.remote)
        # an ACK for a command nobody sent is ignored
        sim_link.send(mav.MAVLink_command_ack_message(400, 0, 0, 0, 250, 190))
        await v.wait_until(lambda: link.counters["bad_frames"] >= 2
                           and link.counters["unknown_ids"] >= 1, 3.0, "counted")
        await v.set_message_interval(mav.MAVLINK_MSG_ID_VFR_HUD, 1.0)
        assert not fleet.vehicle(0).armed


async def test_vehicle_changing_autopilot_type_is_reported() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, notices):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        sim_link = fleet.vehicle(0).links[0]
        sim_link.send(
            mav.MAVLink_heartbeat_message(2, mav.MAV_AUTOPILOT_ARDUPILOTMEGA, 1, 0, 3, 3))
        await v.wait_until(lambda: any(n.kind == "autopilot_changed" for n in notices), 3.0,
                           "reported")
        changed = [n for n in notices if n.kind == "autopilot_changed"]
        assert changed[0].detail == mav.MAV_AUTOPILOT_ARDUPILOTMEGA


async def test_signing_key_is_provisioned_then_required() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0) as (fleet, link, _):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        sim_v = fleet.vehicle(0)
        key = bytes(range(7, 39))
        await v.provision_signing(key)
        assert sim_v.signing_key == key
        await v.set_message_interval(mav.MAVLINK_MSG_ID_VFR_HUD, 1.0)  # signed both ways
        assert sim_v.counters.get("signature_rejected", 0) == 0
        assert link.counters["signature_rejected"] == 0
        # the vehicle now refuses unsigned commands
        frame = mav.MAVLink_command_long_message(1, 1, mav.MAV_CMD_COMPONENT_ARM_DISARM, 0,
                                                 1, 0, 0, 0, 0, 0, 0).pack(
            mav.MAVLink(None, 250, 190))
        link.endpoints["api0"].send(frame, v.addr)
        await v.wait_until(lambda: sim_v.counters.get("signature_rejected", 0) == 1, 3.0,
                           "unsigned refused")
        assert not sim_v.armed


async def test_same_sysids_from_different_addresses_are_different_vehicles_by_address() -> None:
    (port,) = free_udp_ports(1)
    link = FleetLink(LinkConfig(endpoints=[EndpointConfig(
        name="radio", kind="udp_listen", port=port, identify_by="address")]))
    a = fleet_config(2, gcs_link=True, gcs_remote_port=port, speed=2.0)
    b = fleet_config(2, gcs_link=True, gcs_remote_port=port, speed=2.0)
    async with link, Fleet(a) as fa, Fleet(b) as fb:
        await link.wait_for_vehicles(4, timeout_s=15)
        assert sorted(v.sysid for v in link.vehicles.values()) == [1, 1, 2, 2]
        assert all(k >= 1000 for k in link.vehicles)
        # commands reach the right one of the two system-1 vehicles
        target = next(v for v in link.vehicles.values()
                      if v.sysid == 1 and v.addr[1] == fb.vehicle(0).links[-1].local_port)
        await target.arm()
        assert fb.vehicle(0).armed and not fa.vehicle(0).armed


async def test_mission_replaced_during_an_outage_is_reported_after_the_restore() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0,
                              link_kw={"link_lost_after_s": 1.0}) as (fleet, link, notices):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        items = [wp(0, 0, 0, 30, mav.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, math.nan)),
                 wp(1, HOME_LAT + 0.001, HOME_LON, 30)]
        await v.upload_mission(items)
        fleet.cut_link(0)
        await v.wait_until(lambda: not v.health.alive, 5.0, "link lost")
        # someone else (a handheld GCS, a reboot that lost storage) changes the mission
        sim_mission = fleet.vehicle(0).mission
        sim_mission.lists[MISSION] = sim_mission.lists[MISSION][:1]
        fleet.restore_link(0)
        await v.wait_until(lambda: any(n.kind == "mission_changed" for n in notices), 10.0,
                           "mismatch reported")
        (changed,) = [n for n in notices if n.kind == "mission_changed"]
        assert changed.detail[0] == MISSION


async def test_unchanged_mission_passes_the_resync_quietly() -> None:
    async with fleet_and_link("px4", 1, False, speed=2.0,
                              link_kw={"link_lost_after_s": 1.0}) as (fleet, link, notices):
        await link.wait_for_vehicles({1}, timeout_s=10)
        v = link.vehicles[1]
        await v.upload_mission([wp(0, 0, 0, 30, mav.MAV_CMD_NAV_TAKEOFF, (0, 0, 0, math.nan))])
        fleet.cut_link(0, duration_s=2.0)
        await v.wait_until(lambda: not v.health.alive, 5.0, "link lost")
        await v.wait_until(lambda: v.health.alive, 5.0, "link back")
        await v.wait_until(lambda: any(n.kind == "mission_verified" for n in notices), 10.0,
                           "resync done")
        assert not any(n.kind == "mission_changed" for n in notices)
