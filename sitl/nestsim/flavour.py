"""What differs between the PX4 and ArduCopter personalities: modes, parameters, quirks."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mav


class Nav(enum.Enum):
    """What the simulated flight controller is doing, independent of the firmware's mode names."""

    HOLD = "hold"  # keep position (or sit on the ground)
    TAKEOFF = "takeoff"
    MISSION = "mission"
    RTL = "rtl"
    LAND = "land"
    GUIDED = "guided"  # fly to a commanded point, then hold there
    OFFBOARD = "offboard"


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    custom_mode: int
    nav: Nav
    base_flags: int


# PX4 encodes custom_mode as main_mode << 16 | sub_mode << 24.
def _px4(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


_STAB = mav.MAV_MODE_FLAG_STABILIZE_ENABLED
_GUIDED = mav.MAV_MODE_FLAG_GUIDED_ENABLED
_AUTO = mav.MAV_MODE_FLAG_AUTO_ENABLED
_MANUAL = mav.MAV_MODE_FLAG_MANUAL_INPUT_ENABLED

PX4_MODES: tuple[Mode, ...] = (
    Mode("MANUAL", _px4(1), Nav.HOLD, _MANUAL),
    Mode("ALTCTL", _px4(2), Nav.HOLD, _MANUAL | _STAB),
    Mode("POSCTL", _px4(3), Nav.HOLD, _MANUAL | _STAB | _GUIDED),
    Mode("AUTO.READY", _px4(4, 1), Nav.HOLD, _STAB | _GUIDED | _AUTO),
    Mode("AUTO.TAKEOFF", _px4(4, 2), Nav.TAKEOFF, _STAB | _GUIDED | _AUTO),
    Mode("AUTO.LOITER", _px4(4, 3), Nav.GUIDED, _STAB | _GUIDED | _AUTO),
    Mode("AUTO.MISSION", _px4(4, 4), Nav.MISSION, _STAB | _GUIDED | _AUTO),
    Mode("AUTO.RTL", _px4(4, 5), Nav.RTL, _STAB | _GUIDED | _AUTO),
    Mode("AUTO.LAND", _px4(4, 6), Nav.LAND, _STAB | _GUIDED | _AUTO),
    Mode("ACRO", _px4(5), Nav.HOLD, _MANUAL),
    Mode("OFFBOARD", _px4(6), Nav.OFFBOARD, _STAB | _GUIDED | _AUTO),
    Mode("STABILIZED", _px4(7), Nav.HOLD, _MANUAL | _STAB),
)

ARDUCOPTER_MODES: tuple[Mode, ...] = (
    Mode("STABILIZE", 0, Nav.HOLD, _MANUAL | _STAB),
    Mode("ALT_HOLD", 2, Nav.HOLD, _MANUAL | _STAB),
    Mode("AUTO", 3, Nav.MISSION, _STAB | _GUIDED | _AUTO),
    Mode("GUIDED", 4, Nav.GUIDED, _STAB | _GUIDED),
    Mode("LOITER", 5, Nav.HOLD, _MANUAL | _STAB | _GUIDED),
    Mode("RTL", 6, Nav.RTL, _STAB | _GUIDED | _AUTO),
    Mode("LAND", 9, Nav.LAND, _STAB | _GUIDED | _AUTO),
    Mode("BRAKE", 17, Nav.HOLD, _STAB | _GUIDED),
    Mode("SMART_RTL", 21, Nav.RTL, _STAB | _GUIDED | _AUTO),
)


class ParamType(enum.IntEnum):
    INT8 = mav.MAV_PARAM_TYPE_INT8
    INT16 = mav.MAV_PARAM_TYPE_INT16
    INT32 = mav.MAV_PARAM_TYPE_INT32
    REAL32 = mav.MAV_PARAM_TYPE_REAL32


@dataclass(frozen=True, slots=True)
class ParamDef:
    name: str
    default: float
    type: ParamType


def _p(name: str, default: float, ptype: ParamType = ParamType.REAL32) -> ParamDef:
    return ParamDef(name, default, ptype)


_I = ParamType.INT32
_I8 = ParamType.INT8
_I16 = ParamType.INT16

# A realistic subset of PX4's parameters, with PX4's defaults except where a delivery
# airframe is tuned differently (speeds), which a real airframe file would also set.
PX4_PARAMS: tuple[ParamDef, ...] = (
    _p("MAV_SYS_ID", 1, _I),
    _p("MAV_COMP_ID", 1, _I),
    _p("SYS_AUTOSTART", 4001, _I),
    _p("SYS_HITL", 0, _I),
    _p("COM_ARM_WO_GPS", 0, _I),
    _p("COM_DISARM_PRFLT", 10.0),
    _p("COM_DISARM_LAND", 2.0),
    _p("COM_DL_LOSS_T", 10, _I),
    _p("COM_RC_IN_MODE", 4, _I),
    _p("COM_LOW_BAT_ACT", 0, _I),
    _p("COM_OBL_RC_ACT", 0, _I),
    _p("COM_RCL_EXCEPT", 4, _I),
    _p("NAV_DLL_ACT", 0, _I),
    _p("NAV_RCL_ACT", 2, _I),
    _p("NAV_ACC_RAD", 10.0),
    _p("NAV_MC_ALT_RAD", 0.8),
    _p("BAT_LOW_THR", 0.15),
    _p("BAT_CRIT_THR", 0.07),
    _p("BAT_EMERGEN_THR", 0.05),
    _p("BAT1_N_CELLS", 6, _I),
    _p("BAT1_CAPACITY", 22000.0),
    _p("BAT1_V_CHARGED", 4.05),
    _p("BAT1_V_EMPTY", 3.5),
    _p("GF_ACTION", 2, _I),
    _p("GF_MAX_HOR_DIST", 0.0),
    _p("GF_MAX_VER_DIST", 0.0),
    _p("GF_SOURCE", 0, _I),
    _p("GF_PREDICT", 1, _I),
    _p("RTL_RETURN_ALT", 60.0),
    _p("RTL_DESCEND_ALT", 30.0),
    _p("RTL_LAND_DELAY", 0.0),
    _p("RTL_TYPE", 0, _I),
    _p("RTL_CONE_ANG", 45, _I),
    _p("MIS_TAKEOFF_ALT", 2.5),
    _p("MIS_DIST_1WP", 900.0),
    _p("MPC_XY_CRUISE", 25.0),
    _p("MPC_XY_VEL_MAX", 28.0),
    _p("MPC_Z_VEL_MAX_UP", 4.0),
    _p("MPC_Z_VEL_MAX_DN", 3.0),
    _p("MPC_LAND_SPEED", 0.7),
    _p("MPC_ACC_HOR", 4.0),
    _p("MPC_TKO_SPEED", 1.5),
    _p("EKF2_AID_MASK", 1, _I),
    _p("EKF2_HGT_REF", 1, _I),
    _p("SENS_EN_GPSSIM", 1, _I),
    _p("SDLOG_MODE", 0, _I),
    _p("PD_GRIPPER_EN", 1, _I),
    _p("PD_GRIPPER_TO", 1.0),
    _p("PD_GRIPPER_TYPE", 0, _I),
    _p("CBRK_SUPPLY_CHK", 0, _I),
    _p("CBRK_IO_SAFETY", 22027, _I),
    _p("MAV_0_RATE", 0, _I),
    _p("MAV_1_MODE", 2, _I),
)

# A realistic subset of ArduCopter's parameters with ArduCopter's defaults.
ARDUCOPTER_PARAMS: tuple[ParamDef, ...] = (
    _p("SYSID_THISMAV", 1, _I16),
    _p("SYSID_MYGCS", 255, _I16),
    _p("FRAME_CLASS", 1, _I8),
    _p("FRAME_TYPE", 1, _I8),
    _p("ARMING_CHECK", 1, _I),
    _p("DISARM_DELAY", 10, _I8),
    _p("FS_GCS_ENABLE", 0, _I8),
    _p("FS_GCS_TIMEOUT", 5.0),
    _p("FS_THR_ENABLE", 1, _I8),
    _p("FS_OPTIONS", 0, _I),
    _p("BATT_MONITOR", 4, _I8),
    _p("BATT_CAPACITY", 22000, _I),
    _p("BATT_LOW_VOLT", 10.5),
    _p("BATT_CRT_VOLT", 0.0),
    _p("BATT_LOW_MAH", 0.0),
    _p("BATT_CRT_MAH", 0.0),
    _p("BATT_FS_LOW_ACT", 0, _I8),
    _p("BATT_FS_CRT_ACT", 0, _I8),
    _p("FENCE_ENABLE", 0, _I8),
    _p("FENCE_ACTION", 1, _I8),
    _p("FENCE_TYPE", 7, _I8),
    _p("FENCE_ALT_MAX", 100.0),
    _p("FENCE_RADIUS", 300.0),
    _p("FENCE_MARGIN", 2.0),
    _p("FENCE_TOTAL", 0, _I8),
    _p("RTL_ALT", 1500, _I16),
    _p("RTL_ALT_FINAL", 0, _I16),
    _p("RTL_LOIT_TIME", 5000, _I),
    _p("RTL_SPEED", 0, _I16),
    _p("RALLY_TOTAL", 0, _I8),
    _p("RALLY_INCL_HOME", 1, _I8),
    _p("RALLY_LIMIT_KM", 0.3),
    _p("WPNAV_SPEED", 2500.0),
    _p("WPNAV_SPEED_UP", 400.0),
    _p("WPNAV_SPEED_DN", 300.0),
    _p("WPNAV_RADIUS", 200.0),
    _p("WPNAV_ACCEL", 400.0),
    _p("LAND_SPEED", 70, _I16),
    _p("PILOT_TKOFF_ALT", 0.0),
    _p("WP_YAW_BEHAVIOR", 2, _I8),
    _p("GPS_TYPE", 1, _I8),
    _p("EK3_ENABLE", 1, _I8),
    _p("AHRS_EKF_TYPE", 3, _I8),
    _p("SIM_SPEEDUP", 1.0),
    _p("GRIP_ENABLE", 1, _I8),
    _p("WINCH_TYPE", 0, _I8),
    _p("WINCH_RATE_MAX", 1.0),
    _p("SR0_POSITION", 0, _I16),
    _p("SR0_EXTRA1", 0, _I16),
)


@dataclass(frozen=True, slots=True)
class Flavour:
    """One autopilot personality."""

    name: str
    autopilot: int
    modes: tuple[Mode, ...]
    params: tuple[ParamDef, ...]
    mission_seq0_is_home: bool
    requests_with_mission_request_int: bool
    streams_by_default: bool
    int_params_bytewise: bool
    sysid_param: str
    default_mode: str  # after boot
    loiter_mode: str  # PX4 falls back here after a mission or landing
    guided_mode: str  # where DO_REPOSITION flies
    max_items: dict[int, int]  # per MAV_MISSION_TYPE
    flight_sw_version: int

    def mode(self, name: str) -> Mode:
        for m in self.modes:
            if m.name == name:
                return m
        raise KeyError(name)

    def mode_by_custom(self, custom_mode: int) -> Mode | None:
        for m in self.modes:
            if m.custom_mode == custom_mode:
                return m
        return None

    def encode_param(self, value: float, ptype: ParamType) -> float:
        """The float that travels in PARAM_VALUE.param_value for this value."""
        if ptype is ParamType.REAL32 or not self.int_params_bytewise:
            return float(value)
        # PX4 puts the integer's raw bits into the float field.
        return float(struct.unpack("<f", struct.pack("<i", int(value)))[0])

    def decode_param(self, wire: float, ptype: ParamType) -> float:
        if ptype is ParamType.REAL32:
            return wire
        if self.int_params_bytewise:
            return float(struct.unpack("<i", struct.pack("<f", wire))[0])
        return float(round(wire))


PX4 = Flavour(
    name="px4",
    autopilot=mav.MAV_AUTOPILOT_PX4,
    modes=PX4_MODES,
    params=PX4_PARAMS,
    mission_seq0_is_home=False,
    requests_with_mission_request_int=True,
    streams_by_default=True,
    int_params_bytewise=True,
    sysid_param="MAV_SYS_ID",
    default_mode="AUTO.LOITER",
    loiter_mode="AUTO.LOITER",
    guided_mode="AUTO.LOITER",
    max_items={
        mav.MAV_MISSION_TYPE_MISSION: 2000,
        mav.MAV_MISSION_TYPE_FENCE: 64,
        mav.MAV_MISSION_TYPE_RALLY: 8,
    },
    # 1.15.0 release: major 1, minor 15, patch 0, type FIRMWARE_VERSION_TYPE_OFFICIAL (255)
    flight_sw_version=(1 << 24) | (15 << 16) | (0 << 8) | 255,
)

ARDUCOPTER = Flavour(
    name="ardupilot",
    autopilot=mav.MAV_AUTOPILOT_ARDUPILOTMEGA,
    modes=ARDUCOPTER_MODES,
    params=ARDUCOPTER_PARAMS,
    mission_seq0_is_home=True,
    requests_with_mission_request_int=False,
    streams_by_default=False,
    int_params_bytewise=False,
    sysid_param="SYSID_THISMAV",
    default_mode="STABILIZE",
    loiter_mode="LOITER",
    guided_mode="GUIDED",
    max_items={
        mav.MAV_MISSION_TYPE_MISSION: 700,
        mav.MAV_MISSION_TYPE_FENCE: 84,
        mav.MAV_MISSION_TYPE_RALLY: 10,
    },
    flight_sw_version=(4 << 24) | (5 << 16) | (7 << 8) | 255,
)

FLAVOURS = {"px4": PX4, "ardupilot": ARDUCOPTER}
