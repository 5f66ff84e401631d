"""Firmware profiles: the shipped files map the real numbers, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from nestsim.flavour import ARDUCOPTER, PX4
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import ProfileError
from nestd.mavlink.profiles import (
    FirmwareProfile,
    load_profile,
    load_profiles,
    profile_for,
)

PROFILES_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
PX4_TEXT = (PROFILES_DIR / "px4.toml").read_text()
AP_TEXT = (PROFILES_DIR / "ardupilot_copter.toml").read_text()


@pytest.fixture(scope="module")
def profiles() -> dict[str, FirmwareProfile]:
    return load_profiles(PROFILES_DIR)


@pytest.fixture(scope="module")
def px4(profiles: dict[str, FirmwareProfile]) -> FirmwareProfile:
    return profiles["px4"]


@pytest.fixture(scope="module")
def ap(profiles: dict[str, FirmwareProfile]) -> FirmwareProfile:
    return profiles["ardupilot_copter"]


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"test setup: {old!r} not in the profile text"
    return text.replace(old, new, 1)


def _write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    message = str(exc.value)
    assert str(path) in message  # every error names the file
    return message


# -- the shipped profiles ------------------------------------------------------------


def test_shipped_profiles_load_by_name(profiles: dict[str, FirmwareProfile]) -> None:
    assert set(profiles) == {"px4", "ardupilot_copter"}
    assert profiles["px4"].path == PROFILES_DIR / "px4.toml"


# (name, main_mode, sub_mode) from PX4's px4_custom_mode.h
PX4_MODES = [
    ("MANUAL", 1, 0),
    ("ALTCTL", 2, 0),
    ("POSCTL", 3, 0),
    ("POSCTL.ORBIT", 3, 1),
    ("AUTO.READY", 4, 1),
    ("AUTO.TAKEOFF", 4, 2),
    ("AUTO.LOITER", 4, 3),
    ("AUTO.MISSION", 4, 4),
    ("AUTO.RTL", 4, 5),
    ("AUTO.LAND", 4, 6),
    ("AUTO.RTGS", 4, 7),
    ("AUTO.FOLLOW_TARGET", 4, 8),
    ("AUTO.PRECLAND", 4, 9),
    ("ACRO", 5, 0),
    ("OFFBOARD", 6, 0),
    ("STABILIZED", 7, 0),
    ("RATTITUDE", 8, 0),
]


@pytest.mark.parametrize(("name", "main", "sub"), PX4_MODES)
def test_px4_custom_mode_is_main_shl16_or_sub_shl24(
    px4: FirmwareProfile, name: str, main: int, sub: int
) -> None:
    assert px4.custom_mode(name) == (main << 16) | (sub << 24)
    assert px4.mode_name((main << 16) | (sub << 24)) == name


ARDUCOPTER_MODES = {
    "STABILIZE": 0,
    "ACRO": 1,
    "ALT_HOLD": 2,
    "AUTO": 3,
    "GUIDED": 4,
    "LOITER": 5,
    "RTL": 6,
    "CIRCLE": 7,
    "LAND": 9,
    "DRIFT": 11,
    "SPORT": 13,
    "FLIP": 14,
    "AUTOTUNE": 15,
    "POSHOLD": 16,
    "BRAKE": 17,
    "THROW": 18,
    "AVOID_ADSB": 19,
    "GUIDED_NOGPS": 20,
    "SMART_RTL": 21,
    "FLOWHOLD": 22,
    "FOLLOW": 23,
    "ZIGZAG": 24,
    "SYSTEMID": 25,
    "AUTOROTATE": 26,
    "AUTO_RTL": 27,
    "TURTLE": 28,
}


def test_arducopter_mode_numbers_match_mode_h(ap: FirmwareProfile) -> None:
    assert {m.name: m.custom_mode for m in ap.modes} == ARDUCOPTER_MODES


def test_profiles_agree_with_the_simulator_modes(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    # nestsim was written separately; two sources agreeing on every number is the check.
    for mode in PX4.modes:
        assert px4.mode_name(mode.custom_mode) == mode.name
    for mode in ARDUCOPTER.modes:
        assert ap.mode_name(mode.custom_mode) == mode.name


def test_unknown_custom_mode_has_no_name(px4: FirmwareProfile) -> None:
    assert px4.mode_name(0x63040000) is None
    with pytest.raises(ValueError, match="no mode 'HOVER'"):
        px4.custom_mode("HOVER")


def test_roles(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    assert (px4.roles.hold, px4.roles.mission, px4.roles.rtl, px4.roles.land) == (
        "AUTO.LOITER",
        "AUTO.MISSION",
        "AUTO.RTL",
        "AUTO.LAND",
    )
    assert (px4.roles.takeoff, px4.roles.guided) == ("AUTO.TAKEOFF", "AUTO.LOITER")
    assert (ap.roles.hold, ap.roles.mission, ap.roles.rtl, ap.roles.land) == (
        "BRAKE",
        "AUTO",
        "RTL",
        "LAND",
    )
    assert ap.role_mode("guided").custom_mode == 4
    assert px4.role_mode("mission").custom_mode == 0x04040000


def test_takeoff_and_mission_quirks(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    assert px4.takeoff.steps == ["arm", "nav_takeoff"]
    assert px4.takeoff.altitude_frame == "amsl"
    assert ap.takeoff.steps == ["set_mode", "arm", "nav_takeoff"]
    assert ap.takeoff.mode == "GUIDED"
    assert ap.takeoff.altitude_frame == "relative"
    assert "AUTO" in ap.not_armable_modes
    assert px4.mission.seq0_is_home is False and ap.mission.seq0_is_home is True
    assert px4.mission.request_message == "MISSION_REQUEST_INT"
    assert ap.mission.request_message == "MISSION_REQUEST"
    assert px4.mission.can_start_on_ground and px4.mission.ground_start_methods == [
        "mission_start",
        "set_mode",
    ]
    assert ap.mission.ground_start_methods == ["mission_start"]  # plain AUTO waits for sticks
    assert ap.mission.ground_start_needs_takeoff_item
    assert not px4.mission.ground_start_needs_takeoff_item
    assert px4.param_encoding == "bytewise" and ap.param_encoding == "c_cast"


def test_param_names_and_scales(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    assert px4.params.rtl_altitude.name == "RTL_RETURN_ALT"
    assert px4.params.rtl_altitude.to_si(60.0) == 60.0
    assert ap.params.rtl_altitude.name == "RTL_ALT"
    assert ap.params.rtl_altitude.to_si(1500) == pytest.approx(15.0)
    assert ap.params.rtl_altitude.from_si(30.0) == pytest.approx(3000)
    assert ap.params.cruise_speed.to_si(1000) == pytest.approx(10.0)
    assert px4.params.datalink_loss_action.name == "NAV_DLL_ACT"
    assert px4.params.datalink_loss_action.values["2"] == "Return"
    assert ap.params.datalink_loss_timeout.name == "FS_GCS_TIMEOUT"
    assert (
        ap.params.geofence_enable is not None and ap.params.geofence_enable.name == "FENCE_ENABLE"
    )
    assert px4.params.geofence_enable is None
    assert ap.params.battery_critical_action is not None
    assert ap.params.battery_critical_action.values["1"] == "Land"
    assert ap.params.gcs_sysid is not None and ap.params.gcs_sysid.name == "SYSID_MYGCS"


def test_recommended_failsafe_values(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    assert {p.name: p.value for p in px4.recommended_params} == {
        "NAV_DLL_ACT": 2,
        "COM_DL_LOSS_T": 10,
        "GF_ACTION": 3,
        "COM_LOW_BAT_ACT": 3,
    }
    assert {p.name: p.value for p in ap.recommended_params} == {
        "FS_GCS_ENABLE": 1,
        "FS_GCS_TIMEOUT": 10,
        "FENCE_ENABLE": 1,
        "FENCE_TYPE": 5,
        "FENCE_ACTION": 1,
        "BATT_FS_LOW_ACT": 2,
        "BATT_FS_CRT_ACT": 1,
    }


def test_recommended_values_exist_in_the_simulated_autopilots(
    px4: FirmwareProfile, ap: FirmwareProfile
) -> None:
    for profile, flavour in ((px4, PX4), (ap, ARDUCOPTER)):
        names = {p.name for p in flavour.params}
        assert {p.name for p in profile.recommended_params} <= names


def test_fence_limits(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    assert (px4.fence.max_items, px4.fence.max_rally_points) == (64, 8)
    assert (ap.fence.max_items, ap.fence.max_rally_points) == (84, 10)
    assert px4.fence.circles_supported and ap.fence.circles_supported


def test_stream_intervals_resolve_to_message_ids(px4: FirmwareProfile, ap: FirmwareProfile) -> None:
    rates = {r.message: r for r in px4.streams.intervals}
    assert rates["GLOBAL_POSITION_INT"].msg_id == mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT
    assert rates["GLOBAL_POSITION_INT"].interval_us == 200_000
    assert rates["HOME_POSITION"].interval_us == 5_000_000
    assert mav.MAVLINK_MSG_ID_LOCAL_POSITION_NED in px4.streams.off_ids
    assert px4.streams.streams_by_default and not ap.streams.streams_by_default
    assert "WIND" in {r.message for r in ap.streams.intervals}
    assert {s.stream_id for s in ap.streams.data_streams} == {
        mav.MAV_DATA_STREAM_EXTENDED_STATUS,
        mav.MAV_DATA_STREAM_POSITION,
        mav.MAV_DATA_STREAM_EXTRA1,
        mav.MAV_DATA_STREAM_EXTRA2,
        mav.MAV_DATA_STREAM_EXTRA3,
    }


def test_profile_for_picks_by_autopilot_and_type(profiles: dict[str, FirmwareProfile]) -> None:
    quad, hexa, heli = mav.MAV_TYPE_QUADROTOR, mav.MAV_TYPE_HEXAROTOR, mav.MAV_TYPE_HELICOPTER
    found = profile_for(mav.MAV_AUTOPILOT_PX4, quad, profiles)
    assert found is not None and found.name == "px4"
    found = profile_for(mav.MAV_AUTOPILOT_ARDUPILOTMEGA, hexa, profiles)
    assert found is not None and found.name == "ardupilot_copter"
    assert profile_for(mav.MAV_AUTOPILOT_PX4, mav.MAV_TYPE_FIXED_WING, profiles) is None
    assert profile_for(mav.MAV_AUTOPILOT_GENERIC, quad, profiles) is None
    assert profile_for(mav.MAV_AUTOPILOT_PX4, heli, profiles) is None


# -- bad files -----------------------------------------------------------------------


def test_unknown_top_level_field_is_rejected(tmp_path: Path) -> None:
    msg = _error(tmp_path, 'colour = "red"\n' + PX4_TEXT)
    assert "colour" in msg and "Extra inputs are not permitted" in msg


def test_unknown_nested_field_names_its_table(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, "max_items = 64", "max_items = 64\nmax_widgets = 3"))
    assert "fence.max_widgets: Extra inputs are not permitted" in msg


def test_wrong_type_is_rejected_not_coerced(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, "max_items = 64", 'max_items = "64"'))
    assert "fence.max_items: Input should be a valid integer" in msg


def test_float_where_an_integer_belongs_is_rejected(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, "max_items = 64", "max_items = 64.0"))
    assert "fence.max_items" in msg


def test_wrong_type_inside_a_list_names_the_index(tmp_path: Path) -> None:
    text = _edit(
        PX4_TEXT,
        '{ name = "ALTCTL", custom_mode = 0x00020000 }',
        '{ name = "ALTCTL", custom_mode = "two" }',
    )
    msg = _error(tmp_path, text)
    assert "modes[1].custom_mode" in msg


def test_duplicate_custom_mode_names_both_modes(tmp_path: Path) -> None:
    text = _edit(
        PX4_TEXT,
        '{ name = "ALTCTL", custom_mode = 0x00020000 }',
        '{ name = "ALTCTL", custom_mode = 0x00010000 }',
    )
    msg = _error(tmp_path, text)
    assert "ALTCTL" in msg and "MANUAL" in msg and "custom_mode 65536" in msg


def test_duplicate_mode_name(tmp_path: Path) -> None:
    text = _edit(
        AP_TEXT, '{ name = "DRIFT", custom_mode = 11 }', '{ name = "ACRO", custom_mode = 11 }'
    )
    assert "ACRO appears more than once" in _error(tmp_path, text)


def test_role_naming_a_missing_mode(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, 'hold = "AUTO.LOITER"', 'hold = "AUTO.HOVER"'))
    assert "roles.hold: mode 'AUTO.HOVER' is not in modes" in msg


def test_missing_role_is_reported(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, 'land = "AUTO.LAND"\n', ""))
    assert "roles.land: Field required" in msg


def test_takeoff_mode_the_vehicle_cannot_arm_in(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(AP_TEXT, 'mode = "GUIDED"', 'mode = "AUTO"'))
    assert "takeoff.mode" in msg and "can't arm in AUTO" in msg


def test_takeoff_set_mode_step_needs_a_mode(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(AP_TEXT, 'mode = "GUIDED"\n', ""))
    assert "takeoff" in msg and "'mode' is required" in msg


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("max_items = 64", "max_items = -1", "fence.max_items"),
        ("max_rally_points = 8", "max_rally_points = -8", "fence.max_rally_points"),
        ("max_polygons = 21", "max_polygons = -1", "fence.max_polygons"),
        (
            '{ message = "ATTITUDE", rate_hz = 2.0 }',
            '{ message = "ATTITUDE", rate_hz = -2.0 }',
            "streams.intervals[2].rate_hz",
        ),
    ],
)
def test_negative_limits_are_rejected(tmp_path: Path, old: str, new: str, where: str) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, old, new))
    assert f"{where}: Input should be greater than or equal to 0" in msg


def test_polygon_larger_than_the_fence_store(tmp_path: Path) -> None:
    msg = _error(
        tmp_path, _edit(PX4_TEXT, "max_vertices_per_polygon = 64", "max_vertices_per_polygon = 65")
    )
    assert "fence: max_vertices_per_polygon is larger than max_items" in msg


def test_unknown_message_name(tmp_path: Path) -> None:
    text = _edit(
        PX4_TEXT,
        '{ message = "HEARTBEAT", rate_hz = 1.0 }',
        '{ message = "HEARTBEET", rate_hz = 1.0 }',
    )
    msg = _error(tmp_path, text)
    assert "streams.intervals[0].message" in msg and "HEARTBEET" in msg


def test_message_both_wanted_and_off(tmp_path: Path) -> None:
    msg = _error(tmp_path, _edit(PX4_TEXT, '"HIGHRES_IMU", ', '"HIGHRES_IMU", "VFR_HUD", '))
    assert "VFR_HUD both wanted" in msg


def test_unknown_autopilot_and_vehicle_type(tmp_path: Path) -> None:
    text = _edit(PX4_TEXT, 'autopilot = "PX4"', 'autopilot = "PX5"')
    text = _edit(text, '"QUADROTOR", ', '"QUADCOPTER", ')
    msg = _error(tmp_path, text)
    assert "autopilot: unknown MAV_AUTOPILOT 'PX5'" in msg
    assert "vehicle_types: unknown MAV_TYPE 'QUADCOPTER'" in msg


def test_recommended_int_param_with_a_fraction(tmp_path: Path) -> None:
    text = _edit(PX4_TEXT, 'name = "GF_ACTION"\nvalue = 3', 'name = "GF_ACTION"\nvalue = 3.5')
    msg = _error(tmp_path, text)
    assert "recommended_params[2]" in msg and "not an integer" in msg


def test_param_name_too_long_for_mavlink(tmp_path: Path) -> None:
    text = _edit(PX4_TEXT, 'name = "MPC_XY_CRUISE"', 'name = "MPC_XY_CRUISE_SPEED_MAX"')
    assert "params.cruise_speed.name" in _error(tmp_path, text)


def test_ground_start_method_must_be_a_start_method(tmp_path: Path) -> None:
    text = _edit(
        AP_TEXT, 'start_methods = ["mission_start", "set_mode"]', 'start_methods = ["set_mode"]'
    )
    assert "mission: ground_start_methods ['mission_start'] are not in start_methods" in _error(
        tmp_path, text
    )


def test_missing_table_is_reported(tmp_path: Path) -> None:
    start = PX4_TEXT.index("[goto]")
    end = PX4_TEXT.index("[params]")
    msg = _error(tmp_path, PX4_TEXT[:start] + PX4_TEXT[end:])
    assert "goto: Field required" in msg


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ProfileError, match=r"nope\.toml: no such firmware profile file"):
        load_profile(path)


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    lines = PX4_TEXT.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("param_encoding"))
    lines[index] = "param_encoding = bytewise"  # unquoted string
    msg = _error(tmp_path, "\n".join(lines))
    assert "TOML syntax error" in msg and f"line {index + 1}" in msg


def test_load_profiles_rejects_two_files_with_one_name(tmp_path: Path) -> None:
    _write(tmp_path, PX4_TEXT, "a.toml")
    _write(tmp_path, _edit(PX4_TEXT, 'autopilot = "PX4"', 'autopilot = "GENERIC"'), "b.toml")
    with pytest.raises(ProfileError, match=r"b.toml: name: profile 'px4' is also defined in"):
        load_profiles(tmp_path)


def test_load_profiles_rejects_overlapping_coverage(tmp_path: Path) -> None:
    _write(tmp_path, PX4_TEXT, "a.toml")
    _write(tmp_path, _edit(PX4_TEXT, 'name = "px4"', 'name = "px4_delivery"'), "b.toml")
    with pytest.raises(ProfileError, match=r"vehicle_types: .*already covered for PX4"):
        load_profiles(tmp_path)


def test_load_profiles_needs_a_folder_with_profiles(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no firmware profiles"):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles(tmp_path / "missing")
