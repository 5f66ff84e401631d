"""VehicleState: real pymavlink messages in, SI values and change events out."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from nestsim.flavour import ARDUCOPTER, PX4
from nestsim.geo import LocalFrame
from nestsim.vehicle import SimVehicle, VehicleConfig
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.profiles import FirmwareProfile, load_profiles
from nestd.mavlink.state import (
    ArmedChanged,
    AutopilotChanged,
    BatteryLevelCrossed,
    HomeChanged,
    LandedStateChanged,
    MissionCurrentChanged,
    MissionItemReached,
    ModeChanged,
    StateEvent,
    StatusText,
    SystemStatusChanged,
    VehicleState,
)

PROFILES_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
SYSID, COMPID = 7, 1
NAN = float("nan")


@pytest.fixture(scope="module")
def profiles() -> dict[str, FirmwareProfile]:
    return load_profiles(PROFILES_DIR)


@pytest.fixture
def state(profiles: dict[str, FirmwareProfile]) -> VehicleState:
    return VehicleState(SYSID, COMPID, profiles["px4"])


def wire(msg: Any, sysid: int = SYSID, compid: int = COMPID) -> Any:
    """Send a message through pymavlink's encoder and parser, as the link would hand it over."""
    encoder = mav.MAVLink(None, srcSystem=sysid, srcComponent=compid)
    decoded = mav.MAVLink(None).parse_buffer(msg.pack(encoder))
    assert decoded is not None and len(decoded) == 1
    return decoded[0]


def feed(state: VehicleState, msg: Any, now_s: float = 0.0, **src: int) -> list[StateEvent]:
    return state.update(wire(msg, **src), now_s)


def heartbeat(
    custom_mode: int = 0x03040000,
    armed: bool = False,
    autopilot: int = mav.MAV_AUTOPILOT_PX4,
    vtype: int = mav.MAV_TYPE_QUADROTOR,
    status: int = mav.MAV_STATE_STANDBY,
) -> Any:
    base = mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (mav.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0)
    return mav.MAVLink_heartbeat_message(vtype, autopilot, base, custom_mode, status, 3)


def battery_status(
    cells_mv: list[int] | None = None,
    current_ca: int = 1520,
    consumed_mah: int = 1234,
    energy_hj: int = 720,
    remaining: int = 80,
    temperature_cdeg: int = 2550,
    battery_id: int = 0,
    ext: list[int] | None = None,
) -> Any:
    cells = cells_mv if cells_mv is not None else [4000] * 6
    return mav.MAVLink_battery_status_message(
        battery_id,
        mav.MAV_BATTERY_FUNCTION_ALL,
        mav.MAV_BATTERY_TYPE_LIPO,
        temperature_cdeg,
        cells + [65535] * (10 - len(cells)),
        current_ca,
        consumed_mah,
        energy_hj,
        remaining,
        600,
        mav.MAV_BATTERY_CHARGE_STATE_OK,
        ext if ext is not None else [0, 0, 0, 0],
        0,
        0,
    )


def sys_status(voltage_mv: int = 22200, current_ca: int = 500, remaining: int = 70) -> Any:
    return mav.MAVLink_sys_status_message(
        0, 0, 0, 250, voltage_mv, current_ca, remaining, 0, 0, 0, 0, 0, 0
    )


def statustext(text: bytes, text_id: int = 0, chunk_seq: int = 0, severity: int = 4) -> Any:
    return mav.MAVLink_statustext_message(severity, text, text_id, chunk_seq)


def texts(events: list[StateEvent]) -> list[StatusText]:
    return [e for e in events if isinstance(e, StatusText)]


# -- source filtering -----------------------------------------------------------------


def test_messages_from_other_systems_or_components_are_ignored_and_counted(
    state: VehicleState,
) -> None:
    assert feed(state, heartbeat(armed=True), sysid=8) == []
    assert feed(state, heartbeat(armed=True), compid=191) == []
    assert state.armed is None and state.last_heard_s is None
    assert state.counters["ignored_other_source"] == 2


def test_heartbeat_from_a_non_autopilot_on_the_same_ids_is_ignored(state: VehicleState) -> None:
    feed(state, heartbeat(armed=True))
    events = feed(state, heartbeat(autopilot=mav.MAV_AUTOPILOT_INVALID, vtype=mav.MAV_TYPE_GIMBAL))
    assert events == [] and state.armed is True
    assert state.counters["ignored_non_autopilot_heartbeat"] == 1


# -- heartbeat ------------------------------------------------------------------------


def test_first_heartbeat_reports_mode_arming_and_status(state: VehicleState) -> None:
    events = feed(state, heartbeat(custom_mode=0x04040000, armed=True), 5.0)
    assert ModeChanged(5.0, None, "AUTO.MISSION", 0x04040000) in events
    assert ArmedChanged(5.0, True) in events
    assert SystemStatusChanged(5.0, None, mav.MAV_STATE_STANDBY) in events
    assert state.mode_name == "AUTO.MISSION" and state.armed is True
    assert state.autopilot == mav.MAV_AUTOPILOT_PX4 and state.vehicle_type == mav.MAV_TYPE_QUADROTOR


def test_an_unchanged_heartbeat_raises_no_events(state: VehicleState) -> None:
    feed(state, heartbeat(), 1.0)
    assert feed(state, heartbeat(), 2.0) == []


def test_mode_change_and_disarm(state: VehicleState) -> None:
    feed(state, heartbeat(custom_mode=0x04040000, armed=True), 1.0)
    events = feed(state, heartbeat(custom_mode=0x05040000, armed=True), 2.0)
    assert events == [ModeChanged(2.0, "AUTO.MISSION", "AUTO.RTL", 0x05040000)]
    events = feed(state, heartbeat(custom_mode=0x05040000, armed=False), 3.0)
    assert events == [ArmedChanged(3.0, False)]
    assert state.base_mode == mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED


def test_mode_without_a_profile_is_custom_number() -> None:
    s = VehicleState(SYSID, COMPID, None)
    feed(s, heartbeat(custom_mode=0x04040000))
    assert s.mode_name == "custom:67371008"


def test_mode_the_profile_does_not_know(state: VehicleState) -> None:
    feed(state, heartbeat(custom_mode=0x63040000))
    assert state.mode_name == f"custom:{0x63040000}"


def test_setting_the_profile_renames_the_current_mode(
    profiles: dict[str, FirmwareProfile],
) -> None:
    s = VehicleState(SYSID, COMPID, None)
    feed(s, heartbeat(custom_mode=4, autopilot=mav.MAV_AUTOPILOT_ARDUPILOTMEGA))
    s.set_profile(profiles["ardupilot_copter"])
    assert s.mode_name == "GUIDED"


def test_autopilot_type_change_is_an_event(state: VehicleState) -> None:
    feed(state, heartbeat(), 1.0)
    events = feed(state, heartbeat(autopilot=mav.MAV_AUTOPILOT_ARDUPILOTMEGA, custom_mode=0), 2.0)
    changed = [e for e in events if isinstance(e, AutopilotChanged)]
    assert changed == [
        AutopilotChanged(
            2.0,
            mav.MAV_AUTOPILOT_PX4,
            mav.MAV_TYPE_QUADROTOR,
            mav.MAV_AUTOPILOT_ARDUPILOTMEGA,
            mav.MAV_TYPE_QUADROTOR,
        )
    ]
    events = feed(
        state,
        heartbeat(
            autopilot=mav.MAV_AUTOPILOT_ARDUPILOTMEGA, custom_mode=0, vtype=mav.MAV_TYPE_HEXAROTOR
        ),
        3.0,
    )
    assert any(
        isinstance(e, AutopilotChanged) and e.new_type == mav.MAV_TYPE_HEXAROTOR for e in events
    )


def test_system_status_change(state: VehicleState) -> None:
    feed(state, heartbeat(), 1.0)
    events = feed(state, heartbeat(status=mav.MAV_STATE_CRITICAL), 2.0)
    assert events == [SystemStatusChanged(2.0, mav.MAV_STATE_STANDBY, mav.MAV_STATE_CRITICAL)]
    assert events[0].name == "critical"


# -- position, attitude, hud ----------------------------------------------------------


def test_global_position_int_is_converted_to_si(state: VehicleState) -> None:
    msg = mav.MAVLink_global_position_int_message(
        1000, 476_123_456, 85_987_654, 512_345, 30_250, 150, -250, -100, 9000
    )
    feed(state, msg)
    p = state.position
    assert p.lat_deg == pytest.approx(47.6123456, abs=1e-9)
    assert p.lon_deg == pytest.approx(8.5987654, abs=1e-9)
    assert p.alt_amsl_m == pytest.approx(512.345)
    assert p.alt_rel_m == pytest.approx(30.25)
    assert (p.vn_mps, p.ve_mps, p.vd_mps) == pytest.approx((1.5, -2.5, -1.0))
    assert p.heading_deg == pytest.approx(90.0)


def test_shortcuts_read_the_groups(state: VehicleState) -> None:
    feed(
        state, mav.MAVLink_global_position_int_message(0, 10**8, 2 * 10**8, 5000, 3000, 0, 0, 0, 0)
    )
    feed(state, home(alt_mm=2000))
    feed(state, mission_current(4))
    feed(state, mav.MAVLink_mission_item_reached_message(3))
    feed(state, battery_status(remaining=55))
    assert (state.lat_deg, state.lon_deg, state.alt_amsl_m, state.alt_rel_m) == (10, 20, 5, 3)
    assert (state.home_alt_amsl_m, state.mission_seq, state.last_reached_seq) == (2, 4, 3)
    assert state.battery_pct == 55.0


def test_global_position_without_fix_or_heading(state: VehicleState) -> None:
    feed(state, mav.MAVLink_global_position_int_message(0, 0, 0, 0, 0, 0, 0, 0, 65535))
    assert state.position.lat_deg is None and state.position.lon_deg is None
    assert state.position.heading_deg is None


def test_attitude_in_radians_and_nan_is_unknown(state: VehicleState) -> None:
    feed(state, mav.MAVLink_attitude_message(0, 0.1, -0.2, 3.0, NAN, 0.01, 0.02))
    a = state.attitude
    assert (a.roll_rad, a.pitch_rad, a.yaw_rad) == pytest.approx((0.1, -0.2, 3.0))
    assert a.roll_rate_radps is None and a.yaw_rate_radps == pytest.approx(0.02)


def test_vfr_hud(state: VehicleState) -> None:
    feed(state, mav.MAVLink_vfr_hud_message(12.5, 11.0, 370, 55, 100.0, -1.5))
    h = state.hud
    assert (h.airspeed_mps, h.groundspeed_mps, h.climb_mps) == pytest.approx((12.5, 11.0, -1.5))
    assert h.heading_deg == 10.0 and h.throttle_pct == 55.0


def test_vfr_hud_nan_airspeed(state: VehicleState) -> None:
    feed(state, mav.MAVLink_vfr_hud_message(NAN, 3.0, 0, 0, 0.0, 0.0))
    assert state.hud.airspeed_mps is None and state.hud.groundspeed_mps == 3.0


# -- battery --------------------------------------------------------------------------


def test_battery_status_is_converted_to_si(state: VehicleState) -> None:
    feed(state, battery_status())
    b = state.battery
    assert b.voltage_v == pytest.approx(24.0)
    assert b.current_a == pytest.approx(15.2)
    assert b.consumed_mah == 1234
    assert b.consumed_wh == pytest.approx(20.0)  # 720 hJ = 72 kJ = 20 Wh
    assert b.temperature_c == pytest.approx(25.5)
    assert b.remaining_pct == 80.0 and b.time_remaining_s == 600
    assert b.source == "BATTERY_STATUS"


def test_battery_status_unknowns(state: VehicleState) -> None:
    feed(
        state,
        battery_status(
            cells_mv=[],
            current_ca=-1,
            consumed_mah=-1,
            energy_hj=-1,
            remaining=-1,
            temperature_cdeg=32767,
        ),
    )
    b = state.battery
    assert b.voltage_v is None and b.current_a is None and b.consumed_mah is None
    assert b.consumed_wh is None and b.temperature_c is None and b.remaining_pct is None


def test_cell_voltages_sum_until_the_first_uint16_max(state: VehicleState) -> None:
    feed(state, battery_status(cells_mv=[4100, 4100, 4100, 65535, 4100]))
    assert state.battery.voltage_v == pytest.approx(12.3)


def test_fourteen_cells_use_the_extension_field(state: VehicleState) -> None:
    feed(state, battery_status(cells_mv=[4000] * 10, ext=[4000, 4000, 0, 0]))
    assert state.battery.voltage_v == pytest.approx(48.0)


def test_pack_voltage_in_cell_zero(state: VehicleState) -> None:
    # A monitor that can't see cells reports the whole pack in cell 0.
    feed(state, battery_status(cells_mv=[22350]))
    assert state.battery.voltage_v == pytest.approx(22.35)


def test_second_battery_does_not_overwrite_the_first(state: VehicleState) -> None:
    feed(state, battery_status(remaining=80))
    feed(state, battery_status(remaining=10, battery_id=1))
    assert state.battery.remaining_pct == 80.0


def test_sys_status_battery_is_the_fallback(state: VehicleState) -> None:
    feed(state, sys_status(voltage_mv=22200, current_ca=500, remaining=70), 0.0)
    b = state.battery
    assert (b.voltage_v, b.current_a, b.remaining_pct) == pytest.approx((22.2, 5.0, 70.0))
    assert b.source == "SYS_STATUS"
    feed(state, battery_status(remaining=69), 1.0)
    feed(state, sys_status(remaining=10), 2.0)
    assert state.battery.remaining_pct == 69.0  # BATTERY_STATUS is fresh: it wins
    feed(state, sys_status(remaining=60), 10.0)
    assert state.battery.remaining_pct == 60.0 and state.battery.source == "SYS_STATUS"


def test_sys_status_unknown_battery_fields(state: VehicleState) -> None:
    feed(state, sys_status(voltage_mv=65535, current_ca=-1, remaining=-1))
    assert state.battery.voltage_v is None and state.battery.current_a is None
    assert state.battery.remaining_pct is None


def _crossings(events: list[StateEvent]) -> list[tuple[float, bool]]:
    return [(e.threshold_pct, e.falling) for e in events if isinstance(e, BatteryLevelCrossed)]


def test_battery_level_crossings(state: VehicleState) -> None:
    assert _crossings(feed(state, battery_status(remaining=60), 0.0)) == []
    assert _crossings(feed(state, battery_status(remaining=50), 1.0)) == [(50.0, True)]
    assert _crossings(feed(state, battery_status(remaining=49), 2.0)) == []
    # A jump across two thresholds reports both, highest first.
    assert _crossings(feed(state, battery_status(remaining=19), 3.0)) == [
        (30.0, True),
        (20.0, True),
    ]


def test_battery_crossing_has_hysteresis(state: VehicleState) -> None:
    feed(state, battery_status(remaining=30), 0.0)
    assert _crossings(feed(state, battery_status(remaining=31), 1.0)) == []
    assert _crossings(feed(state, battery_status(remaining=30), 2.0)) == []
    # A fresh pack: back above every threshold (lowest first).
    events = feed(state, battery_status(remaining=100), 3.0)
    assert _crossings(events) == [(30.0, False), (50.0, False)]
    crossed = next(e for e in events if isinstance(e, BatteryLevelCrossed))
    assert crossed.remaining_pct == 100.0 and crossed.time_s == 3.0


def test_first_battery_report_already_low(state: VehicleState) -> None:
    assert _crossings(feed(state, battery_status(remaining=9))) == [
        (50.0, True),
        (30.0, True),
        (20.0, True),
        (10.0, True),
    ]


# -- GPS, landed state, home ----------------------------------------------------------


def gps(fix: int = 3, eph: int = 70, epv: int = 110, sats: int = 14, h_acc: int = 500) -> Any:
    return mav.MAVLink_gps_raw_int_message(
        0, fix, 0, 0, 0, eph, epv, 0, 65535, sats, 0, h_acc, 800, 0, 0, 0
    )


def test_gps_raw_int(state: VehicleState) -> None:
    feed(state, gps())
    g = state.gps
    assert (g.fix_type, g.satellites, g.hdop, g.vdop) == (
        3,
        14,
        pytest.approx(0.7),
        pytest.approx(1.1),
    )
    assert g.h_acc_m == pytest.approx(0.5) and g.v_acc_m == pytest.approx(0.8)


def test_gps_unknowns(state: VehicleState) -> None:
    feed(state, gps(fix=1, eph=65535, epv=65535, sats=255, h_acc=0))
    g = state.gps
    assert g.fix_type == 1 and g.satellites is None and g.hdop is None and g.vdop is None
    assert g.h_acc_m is None


def test_landed_state_changes(state: VehicleState) -> None:
    msg = mav.MAVLink_extended_sys_state_message
    assert feed(state, msg(0, mav.MAV_LANDED_STATE_ON_GROUND), 1.0) == [
        LandedStateChanged(1.0, None, mav.MAV_LANDED_STATE_ON_GROUND)
    ]
    assert feed(state, msg(0, mav.MAV_LANDED_STATE_ON_GROUND), 2.0) == []
    events = feed(state, msg(0, mav.MAV_LANDED_STATE_TAKEOFF), 3.0)
    assert events == [
        LandedStateChanged(3.0, mav.MAV_LANDED_STATE_ON_GROUND, mav.MAV_LANDED_STATE_TAKEOFF)
    ]
    assert events[0].name == "takeoff"


def home(lat_e7: int = 476_000_000, lon_e7: int = 85_000_000, alt_mm: int = 500_000) -> Any:
    return mav.MAVLink_home_position_message(
        lat_e7, lon_e7, alt_mm, 0.0, 0.0, 0.0, [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, 0
    )


def test_home_position(state: VehicleState) -> None:
    assert feed(state, home(), 1.0) == [HomeChanged(1.0, 47.6, 8.5, 500.0)]
    assert state.home is not None and state.home.alt_amsl_m == 500.0
    assert feed(state, home(), 6.0) == []  # the periodic repeat is not news


def test_home_altitude_drift_is_not_an_event_but_a_move_is(state: VehicleState) -> None:
    feed(state, home(), 1.0)
    assert feed(state, home(alt_mm=500_200), 2.0) == []
    assert state.home is not None and state.home.alt_amsl_m == pytest.approx(500.2)
    assert len(feed(state, home(alt_mm=501_000), 3.0)) == 1
    events = feed(state, home(lat_e7=476_000_100), 4.0)  # ~1.1 m north
    assert [type(e) for e in events] == [HomeChanged]


# -- mission progress -----------------------------------------------------------------


def mission_current(seq: int, total: int = 5, state: int = 3) -> Any:
    return mav.MAVLink_mission_current_message(seq, total, state, 1)


def test_mission_current_changes(state: VehicleState) -> None:
    assert feed(state, mission_current(0), 1.0) == [MissionCurrentChanged(1.0, 0, 5, 3)]
    assert feed(state, mission_current(0), 2.0) == []
    assert feed(state, mission_current(1), 3.0) == [MissionCurrentChanged(3.0, 1, 5, 3)]
    assert state.mission.current_seq == 1 and state.mission.state == 3


def test_mission_total_sentinels(state: VehicleState) -> None:
    feed(state, mission_current(0, total=65535, state=1))
    assert state.mission.total == 0  # UINT16_MAX: no mission
    feed(state, mission_current(0, total=0, state=0))
    assert state.mission.total is None  # 0 with no state: not supported by the sender
    feed(state, mission_current(0, total=0, state=1))
    assert state.mission.total == 0


def test_mission_item_reached_is_reported_once(state: VehicleState) -> None:
    reached = mav.MAVLink_mission_item_reached_message
    assert feed(state, reached(2), 1.0) == [MissionItemReached(1.0, 2)]
    assert feed(state, reached(2), 2.0) == []
    assert feed(state, reached(3), 3.0) == [MissionItemReached(3.0, 3)]
    assert state.mission.last_reached_seq == 3


def test_mission_restart_allows_the_same_item_again(state: VehicleState) -> None:
    feed(state, mission_current(3))
    feed(state, mav.MAVLink_mission_item_reached_message(3))
    feed(state, mission_current(1))  # restarted
    assert feed(state, mav.MAVLink_mission_item_reached_message(3), 9.0) == [
        MissionItemReached(9.0, 3)
    ]


# -- wind and winch -------------------------------------------------------------------


def test_wind_cov_axes_are_north_east_down(state: VehicleState) -> None:
    feed(state, mav.MAVLink_wind_cov_message(0, 0.0, 5.0, -0.5, 0.3, 0.3, 500.0, 0.5, 0.5))
    w = state.wind
    assert (w.north_mps, w.east_mps, w.down_mps) == pytest.approx((0.0, 5.0, -0.5))
    assert w.speed_mps == pytest.approx(5.0)
    assert w.from_deg == pytest.approx(270.0)  # blowing east, so it comes from the west


def test_wind_cov_nan_is_unknown(state: VehicleState) -> None:
    feed(state, mav.MAVLink_wind_cov_message(0, NAN, NAN, NAN, NAN, NAN, 0.0, 0.0, 0.0))
    assert state.wind.north_mps is None and state.wind.speed_mps is None
    assert state.wind.from_deg is None


def test_ardupilot_wind_direction_is_where_it_comes_from(state: VehicleState) -> None:
    feed(state, mav.MAVLink_wind_message(0.0, 5.0, 3.0))  # from the north; speed is 3-D
    w = state.wind
    assert (w.north_mps, w.east_mps, w.down_mps) == pytest.approx((-4.0, 0.0, 3.0), abs=1e-6)
    feed(state, mav.MAVLink_wind_message(270.0, 5.0, 0.0))
    assert state.wind.east_mps == pytest.approx(5.0) and state.wind.from_deg == pytest.approx(270)


def test_winch_status(state: VehicleState) -> None:
    status = mav.MAV_WINCH_STATUS_HEALTHY | mav.MAV_WINCH_STATUS_MOVING
    feed(state, mav.MAVLink_winch_status_message(0, 3.5, -1.0, 2.0, 24.0, 0.5, 30, status))
    w = state.winch
    assert (w.line_length_m, w.speed_mps, w.tension_kg, w.status) == (3.5, -1.0, 2.0, status)


# -- last heard -----------------------------------------------------------------------


def test_last_heard_per_message_type_and_overall(state: VehicleState) -> None:
    feed(state, heartbeat(), 1.0)
    feed(state, battery_status(), 2.5)  # its `id` field must not be taken for the type
    assert state.last_heard == {"HEARTBEAT": 1.0, "BATTERY_STATUS": 2.5}
    assert state.last_heard_s == 2.5
    assert state.age_s("HEARTBEAT", 4.0) == 3.0
    assert state.age_s("VFR_HUD", 4.0) is None
    assert state.counters["messages"] == 2


def test_unhandled_message_types_still_count_as_heard(state: VehicleState) -> None:
    feed(state, mav.MAVLink_vibration_message(0, 0.1, 0.1, 0.1, 0, 0, 0), 3.0)
    assert state.last_heard["VIBRATION"] == 3.0


# -- STATUSTEXT -----------------------------------------------------------------------


def chunked(text: bytes, text_id: int, severity: int = 2) -> list[Any]:
    """Split as an autopilot does: 50-byte chunks, an empty one if the last is exactly full."""
    chunks = [text[i : i + 50] for i in range(0, len(text), 50)]
    if len(chunks[-1]) == 50:
        chunks.append(b"")
    return [statustext(c, text_id, i, severity) for i, c in enumerate(chunks)]


LONG = b"Preflight Fail: " + b"compass 0 inconsistent by 45 degrees, " * 3  # 130 bytes


def test_single_statustext(state: VehicleState) -> None:
    events = feed(state, statustext(b"Takeoff detected", severity=6), 4.0)
    assert events == [StatusText(4.0, 6, "Takeoff detected", True)]
    assert state.statustext_log[-1].text == "Takeoff detected"


def test_chunks_in_order(state: VehicleState) -> None:
    msgs = chunked(LONG, 9)
    assert len(msgs) == 3
    assert texts(feed(state, msgs[0], 1.0)) == []
    assert texts(feed(state, msgs[1], 1.1)) == []
    assert texts(feed(state, msgs[2], 1.2)) == [StatusText(1.2, 2, LONG.decode(), True)]


def test_chunks_out_of_order(state: VehicleState) -> None:
    msgs = chunked(LONG, 9)
    events: list[StateEvent] = []
    for m in (msgs[2], msgs[0], msgs[1]):
        events += feed(state, m, 1.0)
    assert [e.text for e in texts(events)] == [LONG.decode()]


def test_duplicate_chunk_is_ignored(state: VehicleState) -> None:
    msgs = chunked(LONG, 9)
    events: list[StateEvent] = []
    for m in (msgs[0], msgs[0], msgs[1], msgs[1], msgs[2], msgs[2]):
        events += feed(state, m, 1.0)
    assert [e.text for e in texts(events)] == [LONG.decode()]


def test_lost_chunk_times_out_into_a_marked_partial_text(state: VehicleState) -> None:
    msgs = chunked(LONG, 9)
    feed(state, msgs[0], 1.0)
    feed(state, msgs[2], 1.1)
    assert texts(state.tick(2.9)) == []
    events = texts(state.tick(3.1))
    assert len(events) == 1 and not events[0].complete
    assert events[0].text == LONG[:50].decode() + "…" + LONG[100:].decode()
    assert events[0].time_s == 1.0 and state.counters["statustext_incomplete"] == 1


def test_lost_last_chunk_times_out_on_the_next_message(state: VehicleState) -> None:
    msgs = chunked(LONG, 9)
    feed(state, msgs[0], 1.0)
    feed(state, msgs[1], 1.1)
    events = texts(feed(state, heartbeat(), 5.0))
    assert [e.text for e in events] == [LONG[:100].decode() + "…"]


def test_exactly_fifty_bytes_waits_for_the_empty_terminator(state: VehicleState) -> None:
    text = b"x" * 50
    msgs = chunked(text, 11)
    assert len(msgs) == 2 and msgs[1].text == ""
    assert texts(feed(state, msgs[0], 1.0)) == []
    assert [e.text for e in texts(feed(state, msgs[1], 1.1))] == ["x" * 50]


def test_nul_inside_a_chunk_ends_the_text(state: VehicleState) -> None:
    events = texts(feed(state, statustext(b"short\x00garbage", text_id=12, chunk_seq=0)))
    assert [e.text for e in events] == ["short"]


def test_utf8_split_across_chunks_is_rejoined(state: VehicleState) -> None:
    text = ("a" * 49 + "é" + "ü" * 10).encode()  # é straddles the first chunk boundary
    events: list[StateEvent] = []
    for m in chunked(text, 13):
        events += feed(state, m, 1.0)
    assert [e.text for e in texts(events)] == [text.decode()]


def test_interleaved_texts_with_different_ids(state: VehicleState) -> None:
    a, b = chunked(LONG, 1), chunked(b"B" * 60, 2)
    events: list[StateEvent] = []
    for m in (a[0], b[0], a[1], b[1], a[2]):
        events += feed(state, m, 1.0)
    assert [e.text for e in texts(events)] == ["B" * 60, LONG.decode()]


def test_statustext_log_is_bounded(profiles: dict[str, FirmwareProfile]) -> None:
    s = VehicleState(SYSID, COMPID, profiles["px4"], statustext_log_size=3)
    for i in range(5):
        feed(s, statustext(f"msg {i}".encode()), float(i))
    assert [e.text for e in s.statustext_log] == ["msg 2", "msg 3", "msg 4"]


def test_too_many_partial_texts_flush_the_oldest(profiles: dict[str, FirmwareProfile]) -> None:
    s = VehicleState(SYSID, COMPID, profiles["px4"], max_partial_texts=2)
    feed(s, statustext(b"A" * 50, 1, 0), 1.0)
    feed(s, statustext(b"B" * 50, 2, 0), 1.1)
    events = texts(feed(s, statustext(b"C" * 50, 3, 0), 1.2))
    assert [e.text for e in events] == ["A" * 50 + "…"]


# -- snapshot -------------------------------------------------------------------------


def test_snapshot_is_plain_rounded_si(state: VehicleState) -> None:
    feed(state, heartbeat(custom_mode=0x04040000, armed=True), 1.0)
    feed(
        state,
        mav.MAVLink_global_position_int_message(
            0, 476_123_456, 85_987_654, 512_345, 30_256, 153, 0, 0, 9012
        ),
        1.5,
    )
    feed(state, battery_status(remaining=77), 2.0)
    feed(state, mav.MAVLink_extended_sys_state_message(0, mav.MAV_LANDED_STATE_IN_AIR), 2.0)
    snap = state.snapshot(now_s=3.0)
    json.dumps(snap)  # plain data only
    assert snap["mode"] == "AUTO.MISSION" and snap["armed"] is True
    assert snap["profile"] == "px4" and snap["landed_state"] == "in_air"
    assert snap["position"]["lat_deg"] == 47.6123456
    assert snap["position"]["alt_rel_m"] == 30.26 and snap["position"]["vn_mps"] == 1.53
    assert snap["position"]["heading_deg"] == 90.1
    assert snap["battery"]["remaining_pct"] == 77.0 and snap["battery"]["voltage_v"] == 24.0
    assert snap["home"] is None and snap["age_s"] == 1.0


# -- against the simulator ------------------------------------------------------------


def _sim(flavour: Any, sysid: int = 3) -> SimVehicle:
    frame = LocalFrame(47.3977, 8.5456)
    cfg = VehicleConfig(sysid, flavour, 47.3977, 8.5456, 488.0, battery_soc=0.9)
    return SimVehicle(cfg, frame, now_s=0.0)


@pytest.mark.parametrize(
    ("flavour", "profile_name", "mode"),
    [(PX4, "px4", "AUTO.LOITER"), (ARDUCOPTER, "ardupilot_copter", "STABILIZE")],
)
def test_simulator_telemetry_decodes(
    profiles: dict[str, FirmwareProfile], flavour: Any, profile_name: str, mode: str
) -> None:
    sim = _sim(flavour)
    s = VehicleState(sim.sysid, sim.compid, profiles[profile_name])
    now = 30.0
    builders = [
        sim.heartbeat,
        sim.sys_status,
        sim.battery_status,
        sim.global_position_int,
        sim.gps_raw_int,
        sim.attitude,
        sim.vfr_hud,
        sim.extended_sys_state,
        sim.home_position,
        sim.mission_current_msg,
        sim.wind_cov,
    ]
    for build in builders:
        s.update(wire(build(now), sysid=sim.sysid, compid=sim.compid), now)
    assert s.mode_name == mode and s.armed is False
    assert s.position.lat_deg == pytest.approx(sim.lat_deg, abs=1e-6)
    assert s.position.alt_amsl_m == pytest.approx(sim.alt_amsl_m, abs=0.01)
    assert s.home is not None and s.home.alt_amsl_m == pytest.approx(488.0, abs=0.01)
    assert s.battery.remaining_pct == pytest.approx(sim.battery_remaining_pct, abs=1)
    assert s.battery.voltage_v == pytest.approx(sim.battery.voltage_v, abs=0.05)
    assert s.landed_state == mav.MAV_LANDED_STATE_ON_GROUND
    assert s.gps.fix_type == mav.GPS_FIX_TYPE_3D_FIX and s.gps.hdop == pytest.approx(0.7)
    assert s.snapshot()["mode"] == mode


def test_simulator_statustext_chunks_reassemble(profiles: dict[str, FirmwareProfile]) -> None:
    sim = _sim(PX4)
    s = VehicleState(sim.sysid, sim.compid, profiles["px4"])
    long_text = "Preflight Fail: " + "battery cell imbalance detected, land now. " * 4
    sim.outbox.clear()
    sim.say(mav.MAV_SEVERITY_CRITICAL, long_text)
    sim.say(mav.MAV_SEVERITY_INFO, "y" * 100)  # two full chunks, then an empty terminator
    rng = random.Random(4)
    chunks = list(sim.outbox)
    rng.shuffle(chunks)
    events: list[StateEvent] = []
    for m in chunks:
        events += s.update(wire(m, sysid=sim.sysid, compid=sim.compid), 1.0)
    got = {(e.severity, e.text) for e in texts(events)}
    assert got == {(mav.MAV_SEVERITY_CRITICAL, long_text), (mav.MAV_SEVERITY_INFO, "y" * 100)}
    assert math.isclose(s.last_heard["STATUSTEXT"], 1.0)
