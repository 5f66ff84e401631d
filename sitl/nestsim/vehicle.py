"""One simulated delivery multirotor: flight controller behaviour, physics and MAVLink handling."""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestsim.flavour import Flavour, Mode, Nav, ParamDef
from nestsim.geo import LocalFrame, point_in_polygon
from nestsim.mission import CIRCLE, FENCE, MISSION, POLYGON_VERTEX, RALLY, Item, MissionServer
from nestsim.physics import GRAVITY_MPS2, Airframe, Battery, Wind, approach, approach_2d

Message = mav.MAVLink_message

FORCE_MAGIC = 21196  # param2 of COMPONENT_ARM_DISARM that overrides checks
GCS_TYPES = frozenset({mav.MAV_TYPE_GCS})
AUTOPILOT_COMPID = mav.MAV_COMP_ID_AUTOPILOT1


_NEEDS_AIRBORNE = frozenset(
    {
        mav.MAV_CMD_NAV_WAYPOINT,
        mav.MAV_CMD_NAV_LOITER_TIME,
        mav.MAV_CMD_NAV_LOITER_UNLIM,
        mav.MAV_CMD_NAV_LAND,
    }
)


class Landed(enum.IntEnum):
    ON_GROUND = mav.MAV_LANDED_STATE_ON_GROUND
    IN_AIR = mav.MAV_LANDED_STATE_IN_AIR
    TAKEOFF = mav.MAV_LANDED_STATE_TAKEOFF
    LANDING = mav.MAV_LANDED_STATE_LANDING


class RtlPhase(enum.Enum):
    CLIMB = "climb"
    RETURN = "return"
    DESCEND = "descend"
    LOITER = "loiter"
    LAND = "land"


@dataclass(slots=True)
class Drop:
    """A payload release, for tests to check where a delivery really ended up."""

    lat_deg: float
    lon_deg: float
    height_above_ground_m: float
    line_length_m: float
    time_s: float


@dataclass(slots=True)
class Winch:
    line_m: float = 0.0
    target_m: float = 0.0
    rate_mps: float = 1.0
    deliver: bool = False  # lower to the ground, release, then retract
    released: bool = False

    @property
    def busy(self) -> bool:
        return abs(self.line_m - self.target_m) > 1e-3 or self.deliver


@dataclass(slots=True)
class FenceGeometry:
    inclusion_polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    exclusion_polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    inclusion_circles: list[tuple[float, float, float]] = field(default_factory=list)
    exclusion_circles: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.inclusion_polygons
            or self.exclusion_polygons
            or self.inclusion_circles
            or self.exclusion_circles
        )

    def breached(self, e: float, n: float) -> bool:
        has_inclusion = bool(self.inclusion_polygons or self.inclusion_circles)
        if has_inclusion:
            inside_any = any(point_in_polygon(e, n, p) for p in self.inclusion_polygons) or any(
                math.hypot(e - ce, n - cn) <= r for ce, cn, r in self.inclusion_circles
            )
            if not inside_any:
                return True
        if any(point_in_polygon(e, n, p) for p in self.exclusion_polygons):
            return True
        return any(math.hypot(e - ce, n - cn) < r for ce, cn, r in self.exclusion_circles)


@dataclass(slots=True)
class VehicleConfig:
    """How one simulated vehicle starts."""

    sysid: int
    flavour: Flavour
    home_lat_deg: float
    home_lon_deg: float
    home_alt_amsl_m: float
    airframe: Airframe = field(default_factory=Airframe)
    payload_kg: float = 0.0
    battery_soc: float = 1.0
    ekf_ready_s: float | None = None  # position estimate ready after boot; flavour default
    seed: int = 1


class SimVehicle:
    """A simulated flight controller: feed it messages and time; it answers and flies."""

    def __init__(self, config: VehicleConfig, frame: LocalFrame, now_s: float) -> None:
        self.config = config
        self.sysid = config.sysid
        self.compid = AUTOPILOT_COMPID
        self.flavour = config.flavour
        self.airframe = config.airframe
        self.frame = frame
        self.rng = random.Random(config.seed * 7919 + config.sysid)
        self.params: dict[str, float] = {}
        self.param_defs: dict[str, ParamDef] = {}
        for p in self.flavour.params:
            self.param_defs[p.name] = p
            self.params[p.name] = p.default
        self.params[self.flavour.sysid_param] = config.sysid
        self.param_order = [p.name for p in self.flavour.params]
        self.battery = Battery(
            capacity_wh=self.airframe.battery_capacity_wh,
            cells=self.airframe.battery_cells,
            internal_resistance_ohm=self.airframe.internal_resistance_ohm,
            energy_wh=self.airframe.battery_capacity_wh * config.battery_soc,
        )
        self.wind = Wind(_rng=random.Random(config.seed * 104729 + config.sysid))
        self.home_e, self.home_n = frame.to_en(config.home_lat_deg, config.home_lon_deg)
        self.home_alt_amsl_m = config.home_alt_amsl_m
        self.mission = MissionServer(self.flavour, self._home_item, self._on_list_changed)
        self.outbox: list[Message] = []  # broadcast on every link
        self.statustext_log: deque[tuple[int, str]] = deque(maxlen=200)
        self.drops: list[Drop] = []
        self.reached: list[int] = []
        self.links: list[Any] = []  # the SimLinks carrying this vehicle
        self.mission_link: Any = None  # where the current mission transfer came in
        self.on_reboot: Callable[[], None] | None = None
        self.signing_key: bytes | None = None
        self.sign_streams: dict[tuple[int, int, int], int] = {}
        self.counters: dict[str, int] = {
            "bad_frames": 0,
            "not_for_us": 0,
            "unknown_messages": 0,
            "unsupported_commands": 0,
            "ignored_mission": 0,
        }
        self._boot(now_s)

    # -- lifecycle ----------------------------------------------------------------

    def _boot(self, now_s: float) -> None:
        self.boot_s = now_s
        self.e, self.n, self.u = self.home_e, self.home_n, 0.0
        self.ve = self.vn = self.vu = 0.0
        self.yaw_rad = 0.0
        self.armed = False
        self.armed_at_s = 0.0
        self.has_flown = False
        self.landed = Landed.ON_GROUND
        self.touchdown_s: float | None = None
        self.falling = False
        self.mode: Mode = self.flavour.mode(self.flavour.default_mode)
        self.hold_e, self.hold_n, self.hold_u = self.e, self.n, 0.0
        self.guided_speed_mps: float | None = None
        self.takeoff_alt_m = 0.0
        self.rtl_phase = RtlPhase.CLIMB
        self.rtl_target: tuple[float, float] = (self.home_e, self.home_n)
        self.rtl_loiter_until_s = 0.0
        self.mission_seq = 1 if self.flavour.mission_seq0_is_home else 0
        self.mission_started = False
        self.mission_done = False
        self.item_phase = 0
        self.item_wait_until_s = 0.0
        self.mission_speed_mps: float | None = None
        self.jump_counts: dict[int, int] = {}
        self.reached_seq = -1
        self.payload_kg = self.config.payload_kg
        self.winch = Winch(rate_mps=1.0)
        self.gripper_until_s = 0.0
        self.gps_ok = True
        self.gps_sats = 14
        self.last_gcs_hb_s: float | None = None
        self.datalink_lost = False
        self.battery_level = 0  # 0 ok, 1 low, 2 critical, 3 emergency
        self.ap_batt_low_since: float | None = None
        self.fence_breached = False
        self.fence = FenceGeometry()
        self.rebooting_until_s = 0.0
        self.home_set = True
        self.statustext_id = 0
        self._last_fence_check_s = 0.0
        self.ekf_ready_s = (
            self.config.ekf_ready_s
            if self.config.ekf_ready_s is not None
            else (25.0 if self.flavour.mission_seq0_is_home else 3.0)
        )

    # -- derived state ------------------------------------------------------------

    @property
    def mass_kg(self) -> float:
        return self.airframe.empty_mass_kg + self.payload_kg

    @property
    def lat_deg(self) -> float:
        return self.frame.to_latlon(self.e, self.n)[0]

    @property
    def lon_deg(self) -> float:
        return self.frame.to_latlon(self.e, self.n)[1]

    @property
    def alt_rel_m(self) -> float:
        return self.u

    @property
    def alt_amsl_m(self) -> float:
        return self.home_alt_amsl_m + self.u

    @property
    def mode_name(self) -> str:
        return self.mode.name

    @property
    def in_air(self) -> bool:
        return self.landed is not Landed.ON_GROUND

    @property
    def is_landed(self) -> bool:
        return self.landed is Landed.ON_GROUND

    @property
    def battery_remaining_pct(self) -> float:
        return 100.0 * self.battery.soc

    @property
    def position_ready(self) -> bool:
        return self.gps_ok

    def ekf_ready(self, now_s: float) -> bool:
        return self.gps_ok and now_s - self.boot_s >= self.ekf_ready_s

    def missions(self, mission_type: int) -> list[Item]:
        return self.mission.items(mission_type)

    def param(self, name: str) -> float:
        return self.params[name]

    # -- statustext -------------------------------------------------------------

    def say(self, severity: int, text: str) -> None:
        """Queue a STATUSTEXT, split into 50-character chunks as MAVLink 2 allows."""
        self.statustext_log.append((severity, text))
        raw = text.encode("utf-8")
        if len(raw) <= 50:
            self.outbox.append(mav.MAVLink_statustext_message(severity, raw, 0, 0))
            return
        self.statustext_id = self.statustext_id % 65535 + 1
        chunks = [raw[i : i + 50] for i in range(0, len(raw), 50)]
        if len(chunks[-1]) == 50:
            chunks.append(b"")  # a NUL in the text marks the last chunk
        for i, chunk in enumerate(chunks):
            self.outbox.append(
                mav.MAVLink_statustext_message(severity, chunk, self.statustext_id, i)
            )

    # -- modes --------------------------------------------------------------------

    def set_mode(self, mode: Mode, now_s: float) -> bool:
        """Enter a mode if this autopilot would allow it now."""
        px4 = self.flavour.name == "px4"
        if mode.nav is Nav.OFFBOARD:
            return False  # needs a setpoint stream we don't simulate
        if mode.nav is Nav.MISSION and px4 and not self._mission_items():
            return False
        if mode.nav in (Nav.MISSION, Nav.RTL, Nav.GUIDED, Nav.TAKEOFF) and not self.gps_ok:
            return False
        previous = self.mode
        self.mode = mode
        if mode.nav is Nav.HOLD or mode.nav is Nav.GUIDED:
            if self.in_air:
                self._hold_here()
        elif mode.nav is Nav.TAKEOFF:
            self.takeoff_alt_m = self.params.get("MIS_TAKEOFF_ALT", 2.5)
            if self.armed and self.is_landed:
                self._start_takeoff(now_s, self.takeoff_alt_m)
        elif mode.nav is Nav.RTL:
            self._start_rtl()
        elif mode.nav is Nav.LAND:
            self.hold_e, self.hold_n = self.e, self.n
            if self.in_air:
                self.landed = Landed.LANDING
        elif mode.nav is Nav.MISSION and previous.nav is not Nav.MISSION:
            self._enter_mission(now_s)
        return True

    def _hold_here(self) -> None:
        self.hold_e, self.hold_n, self.hold_u = self.e, self.n, self.u
        self.guided_speed_mps = None

    def _fall_back_to_loiter(self, now_s: float) -> None:
        self.mode = self.flavour.mode(self.flavour.loiter_mode)
        if self.in_air:
            self._hold_here()

    # -- arming -------------------------------------------------------------------

    def arm_refusal(self, now_s: float) -> str | None:
        """Why arming is refused now, worded as the autopilot would, or None."""
        px4 = self.flavour.name == "px4"
        if px4:
            if not self.gps_ok and not self.params.get("COM_ARM_WO_GPS", 0):
                return "Preflight Fail: GPS fix too low"
            if now_s - self.boot_s < self.ekf_ready_s:
                return "Preflight Fail: ekf2 not ready"
            if self.mode.nav in (Nav.RTL, Nav.LAND):
                return "Arming denied: not available in this mode"
            if self.battery.soc < self.params["BAT_LOW_THR"]:
                return "Preflight Fail: low battery"
            if self.mode.nav is Nav.MISSION and not self._mission_items():
                return "Arming denied: no valid mission"
            if not self.fence.empty and self.fence.breached(self.e, self.n):
                return "Preflight Fail: vehicle outside geofence"
            return None
        if not self.ekf_ready(now_s):
            return "Arm: Need Position Estimate"
        if self.mode.name in ("AUTO", "RTL", "LAND", "SMART_RTL"):
            return "Arm: Mode not armable"
        if self.battery.voltage_v < self.params["BATT_LOW_VOLT"] and self.params["BATT_LOW_VOLT"]:
            return "PreArm: Battery 1 below minimum arming voltage"
        if (
            self.params["FENCE_ENABLE"]
            and not self.fence.empty
            and self.fence.breached(self.e, self.n)
        ):
            return "PreArm: vehicle outside fence"
        return None

    def arm(self, now_s: float) -> None:
        self.armed = True
        self.armed_at_s = now_s
        self.has_flown = False
        self.touchdown_s = None
        self.say(
            mav.MAV_SEVERITY_INFO,
            "Armed by external command" if self.flavour.name == "px4" else "Arming motors",
        )
        if self.mode.nav is Nav.TAKEOFF:
            self._start_takeoff(
                now_s, self.takeoff_alt_m or self.params.get("MIS_TAKEOFF_ALT", 2.5)
            )
        elif self.mode.nav is Nav.MISSION:
            self._enter_mission(now_s)

    def disarm(self, reason: str) -> None:
        if not self.armed:
            return
        self.armed = False
        if self.in_air:
            self.falling = True
        self.say(mav.MAV_SEVERITY_INFO, reason)

    # -- takeoff / mission / rtl ------------------------------------------------

    def _start_takeoff(self, now_s: float, alt_m: float) -> None:
        self.hold_e, self.hold_n = self.e, self.n
        self.takeoff_alt_m = alt_m
        self.hold_u = alt_m
        self.landed = Landed.TAKEOFF
        self.has_flown = True
        self.say(
            mav.MAV_SEVERITY_INFO,
            "Takeoff detected" if self.flavour.name == "px4" else "Takeoff started",
        )

    def _start_rtl(self) -> None:
        dest = (self.home_e, self.home_n)
        best = math.hypot(self.e - self.home_e, self.n - self.home_n)
        for item in self.mission.items(RALLY):
            re_, rn = self.frame.to_en(item.lat_deg, item.lon_deg)
            d = math.hypot(self.e - re_, self.n - rn)
            if d < best:
                best, dest = d, (re_, rn)
        self.rtl_target = dest
        self.rtl_phase = RtlPhase.CLIMB
        if self.in_air:
            self.say(mav.MAV_SEVERITY_INFO, f"RTL: start return at {int(self._rtl_alt_m())} m")

    def _rtl_alt_m(self) -> float:
        if self.flavour.name == "px4":
            return float(self.params["RTL_RETURN_ALT"])
        return float(self.params["RTL_ALT"]) / 100.0

    def _mission_items(self) -> list[Item]:
        items = self.mission.items(MISSION)
        if self.flavour.mission_seq0_is_home:
            return items[1:] if len(items) > 1 else []
        return items

    def _enter_mission(self, now_s: float) -> None:
        items = self.mission.items(MISSION)
        first = 1 if self.flavour.mission_seq0_is_home else 0
        if self.mission_done or self.mission_seq >= len(items):
            self.mission_seq = first
            self.mission_done = False
            self.jump_counts.clear()
        self.mission_seq = max(self.mission_seq, first)
        self.item_phase = 0
        self.mission_started = True

    def _on_list_changed(self, mission_type: int) -> None:
        if mission_type == MISSION:
            self.mission_seq = 1 if self.flavour.mission_seq0_is_home else 0
            self.mission_done = False
            self.item_phase = 0
            self.reached_seq = -1
            self.jump_counts.clear()
        elif mission_type == FENCE:
            self._rebuild_fence()
        elif mission_type == RALLY and self.flavour.name == "ardupilot":
            self.params["RALLY_TOTAL"] = len(self.mission.items(RALLY))
        if mission_type == FENCE and self.flavour.name == "ardupilot":
            self.params["FENCE_TOTAL"] = len(self.mission.items(FENCE))

    def _rebuild_fence(self) -> None:
        fence = FenceGeometry()
        items = self.mission.items(FENCE)
        i = 0
        while i < len(items):
            it = items[i]
            if it.command in POLYGON_VERTEX:
                count = int(it.param1)
                poly = [self.frame.to_en(v.lat_deg, v.lon_deg) for v in items[i : i + count]]
                if it.command == mav.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION:
                    fence.inclusion_polygons.append(poly)
                else:
                    fence.exclusion_polygons.append(poly)
                i += count
                continue
            if it.command in CIRCLE:
                ce, cn = self.frame.to_en(it.lat_deg, it.lon_deg)
                circle = (ce, cn, float(it.param1))
                if it.command == mav.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION:
                    fence.inclusion_circles.append(circle)
                else:
                    fence.exclusion_circles.append(circle)
            i += 1
        self.fence = fence
        self.fence_breached = False

    def _home_item(self) -> Item:
        return Item(
            seq=0,
            frame=mav.MAV_FRAME_GLOBAL_INT,
            command=mav.MAV_CMD_NAV_WAYPOINT,
            current=0,
            autocontinue=1,
            param1=0.0,
            param2=0.0,
            param3=0.0,
            param4=0.0,
            x=int(round(self.frame.to_latlon(self.home_e, self.home_n)[0] * 1e7)),
            y=int(round(self.frame.to_latlon(self.home_e, self.home_n)[1] * 1e7)),
            z=self.home_alt_amsl_m,
            mission_type=MISSION,
        )

    def _item_target(self, item: Item) -> tuple[float, float, float]:
        """An item's position as local (east, north, up-above-home); zeros mean 'here'."""
        if item.x == 0 and item.y == 0:
            e, n = self.e, self.n
        else:
            e, n = self.frame.to_en(item.lat_deg, item.lon_deg)
        if item.frame in (mav.MAV_FRAME_GLOBAL, mav.MAV_FRAME_GLOBAL_INT):
            u = item.z - self.home_alt_amsl_m
        else:
            u = item.z
        return e, n, u

    # -- message handling -----------------------------------------------------------

    def handle(self, msg: Message, now_s: float, wall_s: float) -> list[Message]:
        """React to one incoming message; returns replies for the link it came in on."""
        if now_s < self.rebooting_until_s:
            return []
        t = msg.get_type()
        if t == "BAD_DATA":
            self.counters["bad_frames"] += 1
            return []
        target_sys = getattr(msg, "target_system", None)
        if target_sys is not None and target_sys not in (0, self.sysid):
            self.counters["not_for_us"] += 1
            return []
        target_comp = getattr(msg, "target_component", None)
        if target_comp is not None and target_comp not in (0, self.compid) and t != "SET_MODE":
            self.counters["not_for_us"] += 1
            return []
        if t == "HEARTBEAT":
            if msg.type in GCS_TYPES or msg.autopilot == mav.MAV_AUTOPILOT_INVALID:
                self.last_gcs_hb_s = now_s
                if self.datalink_lost:
                    self.datalink_lost = False
                    self.say(mav.MAV_SEVERITY_INFO, "Data link regained")
            return []
        if t in ("COMMAND_LONG", "COMMAND_INT"):
            return self._on_command(msg, now_s)
        if t.startswith("MISSION_"):
            if t == "MISSION_SET_CURRENT":
                return self._set_current(msg.seq)
            before = self.mission.ignored
            out = self.mission.on_message(msg, wall_s)
            self.counters["ignored_mission"] += self.mission.ignored - before
            return out
        if t.startswith("PARAM_"):
            return self._on_param(msg)
        if t == "SET_POSITION_TARGET_GLOBAL_INT":
            return self._position_target(msg, now_s)
        if t == "SET_MODE":
            mode = self.flavour.mode_by_custom(msg.custom_mode)
            if mode is not None:
                self.set_mode(mode, now_s)
            return []
        if t == "SETUP_SIGNING":
            key = bytes(msg.secret_key)
            self.set_signing_key(key if any(key) else None)
            return []
        if t == "TIMESYNC":
            if msg.tc1 == 0:
                return [mav.MAVLink_timesync_message(int(wall_s * 1e9), msg.ts1)]
            return []
        if t == "REQUEST_DATA_STREAM":
            return []  # handled by the link, which owns stream rates
        if t in ("MANUAL_CONTROL", "RC_CHANNELS_OVERRIDE", "SYSTEM_TIME", "PING"):
            return []
        self.counters["unknown_messages"] += 1
        return []

    def _ack(self, msg: Message, result: int, progress: int = 0) -> Message:
        return mav.MAVLink_command_ack_message(
            msg.command, result, progress, 0, msg.get_srcSystem(), msg.get_srcComponent()
        )

    def _on_command(self, msg: Message, now_s: float) -> list[Message]:
        cmd = msg.command
        is_int = msg.get_type() == "COMMAND_INT"
        p = (msg.param1, msg.param2, msg.param3, msg.param4)
        if is_int:
            lat = msg.x / 1e7 if msg.x else math.nan
            lon = msg.y / 1e7 if msg.y else math.nan
            alt = msg.z
            frame = msg.frame
        else:
            lat, lon, alt = msg.param5, msg.param6, msg.param7
            frame = mav.MAV_FRAME_GLOBAL
        result = self._command(cmd, p, lat, lon, alt, frame, now_s, msg)
        if isinstance(result, list):
            return result
        if result == mav.MAV_RESULT_UNSUPPORTED:
            self.counters["unsupported_commands"] += 1
        return [self._ack(msg, result)]

    def _command(
        self,
        cmd: int,
        p: tuple[float, float, float, float],
        lat: float,
        lon: float,
        alt: float,
        frame: int,
        now_s: float,
        msg: Message,
    ) -> int | list[Message]:
        px4 = self.flavour.name == "px4"
        A, D, F = mav.MAV_RESULT_ACCEPTED, mav.MAV_RESULT_DENIED, mav.MAV_RESULT_FAILED
        refuse = D if px4 else F
        if cmd == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            force = _int(p[1]) == FORCE_MAGIC
            if p[0] >= 0.5:
                if self.armed:
                    return A
                why = None if force else self.arm_refusal(now_s)
                if why:
                    self.say(mav.MAV_SEVERITY_CRITICAL, why)
                    return refuse
                self.arm(now_s)
                return A
            if not self.armed:
                return A
            if self.in_air and not force:
                self.say(mav.MAV_SEVERITY_CRITICAL, "Disarming denied: not landed")
                return refuse
            self.disarm("Disarmed by external command")
            return A
        if cmd == mav.MAV_CMD_NAV_TAKEOFF:
            if px4:
                rel = alt - self.home_alt_amsl_m if math.isfinite(alt) else math.nan
                if not math.isfinite(rel):
                    rel = self.params["MIS_TAKEOFF_ALT"]
                if not self.gps_ok:
                    return D
                self.mode = self.flavour.mode("AUTO.TAKEOFF")
                self.takeoff_alt_m = max(rel, 1.0)
                if self.armed and self.is_landed:
                    self._start_takeoff(now_s, self.takeoff_alt_m)
                return A
            if self.mode.name != "GUIDED" or not self.armed or not self.is_landed:
                return F
            if not math.isfinite(alt) or alt <= 0:
                return F
            self._start_takeoff(now_s, alt)
            return A
        if cmd == mav.MAV_CMD_NAV_LAND:
            return (
                A
                if self.set_mode(self.flavour.mode("AUTO.LAND" if px4 else "LAND"), now_s)
                else refuse
            )
        if cmd == mav.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            return (
                A
                if self.set_mode(self.flavour.mode("AUTO.RTL" if px4 else "RTL"), now_s)
                else refuse
            )
        if cmd == mav.MAV_CMD_MISSION_START:
            if not self._mission_items():
                return refuse
            first = int(p[0]) if math.isfinite(p[0]) and p[0] > 0 else None
            if first is not None:
                self.mission_seq = first
                self.mission_done = False
            ok = self.set_mode(self.flavour.mode("AUTO.MISSION" if px4 else "AUTO"), now_s)
            if ok and self.mode.nav is Nav.MISSION:
                self._enter_mission(now_s)
            return A if ok else refuse
        if cmd == mav.MAV_CMD_DO_SET_MODE:
            if not _int(p[0]) & mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
                return mav.MAV_RESULT_UNSUPPORTED
            custom = (_int(p[1]) << 16 | max(_int(p[2]), 0) << 24) if px4 else _int(p[1])
            mode = self.flavour.mode_by_custom(custom)
            if mode is None:
                return mav.MAV_RESULT_UNSUPPORTED
            return A if self.set_mode(mode, now_s) else refuse
        if cmd == mav.MAV_CMD_DO_REPOSITION:
            return self._reposition(p, lat, lon, alt, frame, now_s)
        if cmd == mav.MAV_CMD_DO_CHANGE_SPEED:
            if math.isfinite(p[1]) and p[1] > 0:
                self.mission_speed_mps = min(p[1], self.airframe.max_airspeed_mps)
                self.guided_speed_mps = self.mission_speed_mps
            elif p[1] == -1:
                self.mission_speed_mps = None
                self.guided_speed_mps = None
            else:
                return D
            return A
        if cmd == mav.MAV_CMD_DO_WINCH:
            return A if self._winch(p, now_s) else D
        if cmd == mav.MAV_CMD_DO_GRIPPER:
            return A if self._gripper(p, now_s) else D
        if cmd == mav.MAV_CMD_DO_SET_MISSION_CURRENT:
            seq = int(p[0]) if math.isfinite(p[0]) else -1
            if not 0 <= seq < max(len(self.mission.items(MISSION)), 1):
                return D
            return [self._ack(msg, A), *self._set_current(seq)]
        if cmd == mav.MAV_CMD_DO_SET_HOME:
            if p[0] >= 0.5:
                self.home_e, self.home_n = self.e, self.n
                self.home_alt_amsl_m = self.alt_amsl_m
            elif math.isfinite(lat) and math.isfinite(lon) and math.isfinite(alt):
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    return D
                self.home_e, self.home_n = self.frame.to_en(lat, lon)
                self.home_alt_amsl_m = alt
            else:
                return D
            return [self._ack(msg, A), self._home_position_msg(now_s)]
        if cmd == mav.MAV_CMD_DO_FLIGHTTERMINATION:
            if p[0] >= 0.5:
                self.armed = False
                if self.in_air:
                    self.falling = True
                self.say(mav.MAV_SEVERITY_EMERGENCY, "Flight termination active")
            return A
        if cmd == mav.MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN:
            if _int(p[0]) != 1:
                return mav.MAV_RESULT_UNSUPPORTED
            if self.armed:
                return D
            return [self._ack(msg, A), *self._reboot(now_s)]
        if cmd in (
            mav.MAV_CMD_SET_MESSAGE_INTERVAL,
            mav.MAV_CMD_GET_MESSAGE_INTERVAL,
            mav.MAV_CMD_REQUEST_MESSAGE,
        ):
            return []  # answered by the link, which owns streams
        if cmd == mav.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            return [self._ack(msg, A), self.autopilot_version()]
        if cmd == mav.MAV_CMD_GET_HOME_POSITION:
            return [self._ack(msg, A), self._home_position_msg(now_s)]
        return mav.MAV_RESULT_UNSUPPORTED

    def _reposition(
        self,
        p: tuple[float, float, float, float],
        lat: float,
        lon: float,
        alt: float,
        frame: int,
        now_s: float,
    ) -> int:
        if not self.armed or not self.in_air:
            return mav.MAV_RESULT_TEMPORARILY_REJECTED
        if math.isfinite(lat) and not -90 <= lat <= 90:
            return mav.MAV_RESULT_DENIED
        if math.isfinite(lon) and not -180 <= lon <= 180:
            return mav.MAV_RESULT_DENIED
        if self.flavour.name == "px4":
            self.mode = self.flavour.mode("AUTO.LOITER")
        elif self.mode.name != "GUIDED":
            if _int(p[1]) > 0 and _int(p[1]) & mav.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE:
                self.mode = self.flavour.mode("GUIDED")
            else:
                return mav.MAV_RESULT_DENIED
        e, n = (
            self.frame.to_en(lat, lon)
            if math.isfinite(lat) and math.isfinite(lon)
            else (self.hold_e, self.hold_n)
        )
        if math.isfinite(alt):
            if frame in (mav.MAV_FRAME_GLOBAL, mav.MAV_FRAME_GLOBAL_INT):
                u = alt - self.home_alt_amsl_m
            else:
                u = alt
        else:
            u = self.u
        self.hold_e, self.hold_n, self.hold_u = e, n, max(u, 1.0)
        self.guided_speed_mps = p[0] if math.isfinite(p[0]) and p[0] > 0 else None
        return mav.MAV_RESULT_ACCEPTED

    def _position_target(self, msg: Message, now_s: float) -> list[Message]:
        """A guided position setpoint (ArduCopter GUIDED); anything else is ignored as the
        autopilots do, without an answer."""
        if self.mode.nav is not Nav.GUIDED or not self.in_air:
            return []
        if msg.type_mask & 0b111:  # position ignored: velocity/acceleration control not simulated
            return []
        lat, lon = msg.lat_int / 1e7, msg.lon_int / 1e7
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and math.isfinite(msg.alt)):
            self.counters["bad_setpoints"] = self.counters.get("bad_setpoints", 0) + 1
            return []
        e, n = self.frame.to_en(lat, lon)
        if msg.coordinate_frame in (mav.MAV_FRAME_GLOBAL, mav.MAV_FRAME_GLOBAL_INT):
            u = msg.alt - self.home_alt_amsl_m
        else:
            u = msg.alt
        self.hold_e, self.hold_n, self.hold_u = e, n, max(u, 1.0)
        return []

    def _winch(self, p: tuple[float, float, float, float], now_s: float) -> bool:
        action = int(p[1]) if math.isfinite(p[1]) else -1
        rate = p[3] if math.isfinite(p[3]) and p[3] > 0 else 1.0
        w = self.winch
        if action == mav.WINCH_RELAXED or action == mav.WINCH_HOLD or action == mav.WINCH_LOCK:
            w.target_m = w.line_m
            w.deliver = False
            return True
        if action == mav.WINCH_RELATIVE_LENGTH_CONTROL:
            if not math.isfinite(p[2]):
                return False
            w.target_m = max(0.0, w.line_m + p[2])
            w.rate_mps = rate
            return True
        if action == mav.WINCH_DELIVER:
            if not self.in_air or self.payload_kg <= 0:
                return False
            w.deliver = True
            w.released = False
            w.target_m = max(self.u, 0.0)
            w.rate_mps = rate
            return True
        if action == mav.WINCH_RETRACT:
            w.target_m = 0.0
            w.deliver = False
            w.rate_mps = rate
            return True
        return action in (mav.WINCH_RATE_CONTROL, mav.WINCH_LOAD_LINE, mav.WINCH_LOAD_PAYLOAD)

    def _gripper(self, p: tuple[float, float, float, float], now_s: float) -> bool:
        action = int(p[1]) if math.isfinite(p[1]) else -1
        if action == mav.GRIPPER_ACTION_RELEASE:
            self._release_payload(now_s)
            self.gripper_until_s = now_s + float(self.params.get("PD_GRIPPER_TO", 1.0))
            return True
        if action == mav.GRIPPER_ACTION_GRAB:
            self.gripper_until_s = now_s + float(self.params.get("PD_GRIPPER_TO", 1.0))
            return True
        return False

    def _release_payload(self, now_s: float) -> None:
        if self.payload_kg <= 0:
            return
        lat, lon = self.frame.to_latlon(self.e, self.n)
        self.drops.append(Drop(lat, lon, self.u, self.winch.line_m, now_s))
        self.payload_kg = 0.0
        self.say(mav.MAV_SEVERITY_INFO, "Payload released")

    def _set_current(self, seq: int) -> list[Message]:
        items = self.mission.items(MISSION)
        if 0 <= seq < len(items):
            self.mission_seq = seq
            self.mission_done = False
            self.item_phase = 0
        return [self.mission_current_msg()]

    def _reboot(self, now_s: float) -> list[Message]:
        self.say(mav.MAV_SEVERITY_INFO, "Rebooting")
        keep = (self.mission, self.params, self.battery, self.home_e, self.home_n)
        self._boot(now_s + 2.0)
        self.mission, self.params, self.battery, self.home_e, self.home_n = keep
        self.rebooting_until_s = now_s + 2.0
        if self.on_reboot is not None:
            self.on_reboot()
        return []

    # -- parameters -----------------------------------------------------------------

    def param_value_msg(self, name: str) -> Message:
        d = self.param_defs[name]
        return mav.MAVLink_param_value_message(
            name.encode(),
            self.flavour.encode_param(self.params[name], d.type),
            int(d.type),
            len(self.param_order),
            self.param_order.index(name),
        )

    def _on_param(self, msg: Message) -> list[Message]:
        t = msg.get_type()
        if t == "PARAM_REQUEST_LIST":
            return [self.param_value_msg(n) for n in self.param_order]
        if t == "PARAM_REQUEST_READ":
            if msg.param_index >= 0:
                if msg.param_index >= len(self.param_order):
                    return []
                return [self.param_value_msg(self.param_order[msg.param_index])]
            name = _param_name(msg.param_id)
            return [self.param_value_msg(name)] if name in self.params else []
        if t == "PARAM_SET":
            name = _param_name(msg.param_id)
            d = self.param_defs.get(name)
            if d is None:
                return []
            value = self.flavour.decode_param(msg.param_value, d.type)
            if math.isfinite(value) and (
                msg.param_type == int(d.type) or not self.flavour.int_params_bytewise
            ):
                self.params[name] = value
                if name == self.flavour.sysid_param:
                    self.params[name] = self.sysid  # takes effect after reboot; not simulated
            # Both autopilots answer with the value they now hold, changed or not.
            return [self.param_value_msg(name)]
        return []

    # -- telemetry builders -----------------------------------------------------------

    def time_boot_ms(self, now_s: float) -> int:
        return int(max(now_s - self.boot_s, 0.0) * 1000) & 0xFFFFFFFF

    def heartbeat(self, now_s: float) -> Message:
        base = mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | self.mode.base_flags
        if self.armed:
            base |= mav.MAV_MODE_FLAG_SAFETY_ARMED
        if self.falling:
            status = mav.MAV_STATE_EMERGENCY
        elif self.datalink_lost or self.battery_level >= 2 or self.fence_breached:
            status = mav.MAV_STATE_CRITICAL
        elif self.armed:
            status = mav.MAV_STATE_ACTIVE
        else:
            status = mav.MAV_STATE_STANDBY
        return mav.MAVLink_heartbeat_message(
            mav.MAV_TYPE_QUADROTOR, self.flavour.autopilot, base, self.mode.custom_mode, status, 3
        )

    def sys_status(self, now_s: float) -> Message:
        sensors = (
            mav.MAV_SYS_STATUS_SENSOR_3D_GYRO
            | mav.MAV_SYS_STATUS_SENSOR_3D_ACCEL
            | mav.MAV_SYS_STATUS_SENSOR_3D_MAG
            | mav.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE
            | mav.MAV_SYS_STATUS_SENSOR_GPS
            | mav.MAV_SYS_STATUS_SENSOR_ANGULAR_RATE_CONTROL
            | mav.MAV_SYS_STATUS_SENSOR_ATTITUDE_STABILIZATION
            | mav.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL
            | mav.MAV_SYS_STATUS_SENSOR_Z_ALTITUDE_CONTROL
            | mav.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS
            | mav.MAV_SYS_STATUS_SENSOR_BATTERY
        )
        health = sensors
        if self.arm_refusal(now_s) is None:
            # Reported by PX4 when the pre-arm checks pass (MAVSDK's `is_armable`).
            sensors |= mav.MAV_SYS_STATUS_PREARM_CHECK
            health |= mav.MAV_SYS_STATUS_PREARM_CHECK
        if not self.gps_ok:
            health &= ~mav.MAV_SYS_STATUS_SENSOR_GPS
        if self.battery_level >= 2:
            health &= ~mav.MAV_SYS_STATUS_SENSOR_BATTERY
        b = self.battery
        return mav.MAVLink_sys_status_message(
            sensors,
            sensors,
            health,
            250,
            int(b.voltage_v * 1000) & 0xFFFF,
            int(b.current_a * 100),
            int(round(b.soc * 100)),
            0,
            0,
            0,
            0,
            0,
            0,
        )

    def battery_status(self, now_s: float) -> Message:
        b = self.battery
        cell_mv = int(b.voltage_v / b.cells * 1000)
        cells = [cell_mv] * b.cells + [65535] * (10 - b.cells)
        power_w = b.voltage_v * b.current_a
        time_left = int(b.energy_wh * 3600 / power_w) if power_w > 1 else 0
        charge = (
            mav.MAV_BATTERY_CHARGE_STATE_OK,
            mav.MAV_BATTERY_CHARGE_STATE_LOW,
            mav.MAV_BATTERY_CHARGE_STATE_CRITICAL,
            mav.MAV_BATTERY_CHARGE_STATE_EMERGENCY,
        )[self.battery_level]
        return mav.MAVLink_battery_status_message(
            0,
            mav.MAV_BATTERY_FUNCTION_ALL,
            mav.MAV_BATTERY_TYPE_LIPO,
            int(b.temperature_c * 100),
            cells,
            int(b.current_a * 100),
            int(b.consumed_mah),
            int(b.consumed_wh * 36),
            int(round(b.soc * 100)),
            time_left,
            charge,
            [0, 0, 0, 0],
            0,
            0,
        )

    def global_position_int(self, now_s: float) -> Message:
        lat, lon = self.frame.to_latlon(self.e, self.n)
        hdg = int(math.degrees(self.yaw_rad) % 360 * 100)
        return mav.MAVLink_global_position_int_message(
            self.time_boot_ms(now_s),
            int(lat * 1e7),
            int(lon * 1e7),
            int(self.alt_amsl_m * 1000),
            int(self.u * 1000),
            int(self.vn * 100),
            int(self.ve * 100),
            int(-self.vu * 100),
            hdg,
        )

    def local_position_ned(self, now_s: float) -> Message:
        return mav.MAVLink_local_position_ned_message(
            self.time_boot_ms(now_s),
            self.n - self.home_n,
            self.e - self.home_e,
            -self.u,
            self.vn,
            self.ve,
            -self.vu,
        )

    def gps_raw_int(self, now_s: float) -> Message:
        lat, lon = self.frame.to_latlon(self.e, self.n)
        fix = mav.GPS_FIX_TYPE_3D_FIX if self.gps_ok else mav.GPS_FIX_TYPE_NO_FIX
        sats = self.gps_sats if self.gps_ok else 0
        gs = math.hypot(self.ve, self.vn)
        cog = int(math.degrees(math.atan2(self.ve, self.vn)) % 360 * 100) if gs > 0.1 else 65535
        return mav.MAVLink_gps_raw_int_message(
            int(now_s * 1e6),
            fix,
            int(lat * 1e7),
            int(lon * 1e7),
            int(self.alt_amsl_m * 1000),
            70 if self.gps_ok else 9999,
            110 if self.gps_ok else 9999,
            int(gs * 100),
            cog,
            sats,
            int(self.alt_amsl_m * 1000) + 30000,
            500,
            800,
            200,
            0,
            0,
        )

    def attitude(self, now_s: float) -> Message:
        # Tilt follows horizontal acceleration demand roughly: lean into the velocity.
        roll = max(-0.5, min(0.5, self.ve * 0.01))
        pitch = max(-0.5, min(0.5, -self.vn * 0.01))
        return mav.MAVLink_attitude_message(
            self.time_boot_ms(now_s), roll, pitch, _wrap_pi(self.yaw_rad), 0.0, 0.0, 0.0
        )

    def vfr_hud(self, now_s: float) -> Message:
        air = (
            math.hypot(self.ve - self.wind.now_e, self.vn - self.wind.now_n) if self.in_air else 0.0
        )
        throttle = 0
        if self.armed:
            throttle = 55 if self.in_air else 8
        return mav.MAVLink_vfr_hud_message(
            air,
            math.hypot(self.ve, self.vn),
            int(math.degrees(self.yaw_rad) % 360),
            throttle,
            self.alt_amsl_m,
            self.vu,
        )

    def extended_sys_state(self, now_s: float) -> Message:
        return mav.MAVLink_extended_sys_state_message(
            mav.MAV_VTOL_STATE_UNDEFINED, int(self.landed)
        )

    def altitude(self, now_s: float) -> Message:
        return mav.MAVLink_altitude_message(
            int(now_s * 1e6), self.alt_amsl_m, self.alt_amsl_m, -self.u, self.u, self.u, self.u
        )

    def wind_cov(self, now_s: float) -> Message:
        # Estimated wind: the sim knows it exactly, but only while flying can a real
        # estimator tell it, so report zeros with large variance on the ground.
        if self.in_air:
            return mav.MAVLink_wind_cov_message(
                int(now_s * 1e6),
                self.wind.now_n,
                self.wind.now_e,
                0.0,
                0.3,
                0.3,
                self.alt_amsl_m,
                0.5,
                0.5,
            )
        return mav.MAVLink_wind_cov_message(
            int(now_s * 1e6), 0.0, 0.0, 0.0, 100.0, 100.0, self.alt_amsl_m, 10.0, 10.0
        )

    def _home_position_msg(self, now_s: float) -> Message:
        lat, lon = self.frame.to_latlon(self.home_e, self.home_n)
        return mav.MAVLink_home_position_message(
            int(lat * 1e7),
            int(lon * 1e7),
            int(self.home_alt_amsl_m * 1000),
            0.0,
            0.0,
            0.0,
            [1.0, 0.0, 0.0, 0.0],
            0.0,
            0.0,
            0.0,
            int(now_s * 1e6),
        )

    def home_position(self, now_s: float) -> Message:
        return self._home_position_msg(now_s)

    def mission_current_msg(self, now_s: float = 0.0) -> Message:
        items = self.mission.items(MISSION)
        total = len(items)
        if total == 0 or (self.flavour.mission_seq0_is_home and total <= 1):
            state = mav.MISSION_STATE_NO_MISSION
        elif self.mission_done:
            state = mav.MISSION_STATE_COMPLETE
        elif self.mode.nav is Nav.MISSION and self.mission_started:
            state = mav.MISSION_STATE_ACTIVE
        elif self.mission_started:
            state = mav.MISSION_STATE_PAUSED
        else:
            state = mav.MISSION_STATE_NOT_STARTED
        in_mission = 1 if self.mode.nav is Nav.MISSION else 2
        seq = min(self.mission_seq, max(total - 1, 0))
        return mav.MAVLink_mission_current_message(seq, total, state, in_mission)

    def mission_item_reached(self, now_s: float) -> Message | None:
        if self.reached_seq < 0:
            return None
        return mav.MAVLink_mission_item_reached_message(self.reached_seq)

    def winch_status(self, now_s: float) -> Message | None:
        w = self.winch
        if w.line_m <= 0 and not w.busy:
            return None
        status = mav.MAV_WINCH_STATUS_HEALTHY
        if w.busy:
            status |= mav.MAV_WINCH_STATUS_MOVING
        if w.line_m <= 0:
            status |= mav.MAV_WINCH_STATUS_FULLY_RETRACTED
        speed = 0.0 if not w.busy else math.copysign(w.rate_mps, w.target_m - w.line_m)
        tension = self.payload_kg if w.line_m < self.u else 0.0  # MAVLink gives it in kg
        return mav.MAVLink_winch_status_message(
            int(now_s * 1e6), w.line_m, speed, tension, self.battery.voltage_v, 0.5, 30, status
        )

    def autopilot_version(self) -> Message:
        caps = (
            mav.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT
            | mav.MAV_PROTOCOL_CAPABILITY_MISSION_INT
            | mav.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
            | mav.MAV_PROTOCOL_CAPABILITY_MAVLINK2
            | mav.MAV_PROTOCOL_CAPABILITY_MISSION_FENCE
            | mav.MAV_PROTOCOL_CAPABILITY_MISSION_RALLY
            | mav.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT
            | mav.MAV_PROTOCOL_CAPABILITY_FLIGHT_TERMINATION
        )
        if self.flavour.int_params_bytewise:
            caps |= mav.MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE
        else:
            caps |= mav.MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_C_CAST
        uid = 0x4E45535400000000 | self.sysid
        return mav.MAVLink_autopilot_version_message(
            caps,
            self.flavour.flight_sw_version,
            0,
            0,
            0,
            b"nestsim\x00",
            b"\x00" * 8,
            b"\x00" * 8,
            0x1209,
            0x5740 + self.sysid % 16,
            uid,
            [0] * 18,
        )

    # -- simulation step ----------------------------------------------------------------

    def step(self, now_s: float, dt_s: float) -> None:
        """Advance autopilot logic and physics by `dt_s` of simulated time."""
        if now_s < self.rebooting_until_s:
            return
        self.wind.step(dt_s)
        self._failsafes(now_s)
        self._autopilot(now_s, dt_s)
        self._physics(now_s, dt_s)
        self._auto_disarm(now_s)

    def _physics(self, now_s: float, dt_s: float) -> None:
        af = self.airframe
        if self.falling:
            self.vu -= GRAVITY_MPS2 * dt_s
            self.u += self.vu * dt_s
            if self.u <= 0:
                self.u = 0.0
                self.ve = self.vn = self.vu = 0.0
                self.falling = False
                self.landed = Landed.ON_GROUND
                self.say(mav.MAV_SEVERITY_EMERGENCY, "Vehicle hit the ground")
            self.battery.draw(af.avionics_power_w, dt_s)
            return
        if not self.armed or self.landed is Landed.ON_GROUND:
            self.ve = self.vn = self.vu = 0.0
            idle = af.hover_power_w * af.ground_idle_fraction if self.armed else 0.0
            self.battery.draw(af.avionics_power_w + idle, dt_s)
            return
        we, wn = self.wind.now_e, self.wind.now_n
        speed = self._speed_limit()
        te, tn, tu = self._target()
        if not self.gps_ok:
            # Without position the vehicle can only hold attitude: it drifts with the wind.
            self.ve, self.vn = we * 0.8, wn * 0.8
            self.e += self.ve * dt_s
            self.n += self.vn * dt_s
        else:
            self.e, self.n, self.ve, self.vn = approach_2d(
                self.e,
                self.n,
                self.ve,
                self.vn,
                te,
                tn,
                speed,
                af.horizontal_accel_mps2,
                dt_s,
                we,
                wn,
                af.max_airspeed_mps,
            )
        if self.landed is Landed.LANDING:
            down = af.descent_speed_mps if self.u > 8.0 else self._land_speed()
            self.u, self.vu = approach(
                self.u, self.vu, -1.0, af.climb_speed_mps, down, af.vertical_accel_mps2, dt_s
            )
            if self.u <= 0.0:
                self.u = 0.0
                self.vu = 0.0
                self.ve = self.vn = 0.0
                self.landed = Landed.ON_GROUND
                self.touchdown_s = now_s
                self.say(mav.MAV_SEVERITY_INFO, "Landing detected")
        else:
            self.u, self.vu = approach(
                self.u,
                self.vu,
                tu,
                af.climb_speed_mps,
                af.descent_speed_mps,
                af.vertical_accel_mps2,
                dt_s,
            )
            if self.landed is Landed.TAKEOFF and self.u >= self.takeoff_alt_m - 0.5:
                self.landed = Landed.IN_AIR
        if math.hypot(self.ve, self.vn) > 0.5:
            self.yaw_rad = math.atan2(self.ve, self.vn)
        air = math.hypot(self.ve - we, self.vn - wn)
        self.battery.draw(af.power_w(self.mass_kg, air, self.vu), dt_s)

    def _land_speed(self) -> float:
        if self.flavour.name == "px4":
            return float(self.params["MPC_LAND_SPEED"])
        return float(self.params["LAND_SPEED"]) / 100.0

    def _speed_limit(self) -> float:
        af = self.airframe
        if self.mode.nav is Nav.MISSION and self.mission_speed_mps:
            return self.mission_speed_mps
        if self.mode.nav is Nav.GUIDED and self.guided_speed_mps:
            return self.guided_speed_mps
        if self.flavour.name == "px4":
            return float(self.params["MPC_XY_CRUISE"])
        return float(self.params["WPNAV_SPEED"]) / 100.0 or af.cruise_speed_mps

    def _target(self) -> tuple[float, float, float]:
        return self.hold_e, self.hold_n, self.hold_u

    # -- autopilot logic --------------------------------------------------------------

    def _autopilot(self, now_s: float, dt_s: float) -> None:
        self._winch_step(now_s, dt_s)
        if not self.armed or self.falling:
            return
        nav = self.mode.nav
        if self.landed is Landed.ON_GROUND:
            if nav is Nav.MISSION and self.mission_started and not self.mission_done:
                self._mission_step(now_s)
            return
        if nav is Nav.TAKEOFF:
            if self.landed is Landed.IN_AIR and self.flavour.name == "px4":
                self._fall_back_to_loiter(now_s)
            return
        if nav is Nav.RTL:
            self._rtl_step(now_s)
        elif nav is Nav.LAND:
            if self.landed is not Landed.LANDING:
                self.landed = Landed.LANDING
        elif nav is Nav.MISSION:
            self._mission_step(now_s)

    def _rtl_step(self, now_s: float) -> None:
        te, tn = self.rtl_target
        rtl_alt = self._rtl_alt_m()
        if self.rtl_phase is RtlPhase.CLIMB:
            self.hold_e, self.hold_n = self.e, self.n
            dist = math.hypot(self.e - te, self.n - tn)
            self.hold_u = max(self.u, rtl_alt) if dist > 5.0 else self.u
            if abs(self.u - self.hold_u) < 0.5:
                self.rtl_phase = RtlPhase.RETURN
        if self.rtl_phase is RtlPhase.RETURN:
            self.hold_e, self.hold_n = te, tn
            if math.hypot(self.e - te, self.n - tn) < 1.0:
                self.rtl_phase = RtlPhase.DESCEND
        if self.rtl_phase is RtlPhase.DESCEND:
            if self.flavour.name == "px4":
                final = min(float(self.params["RTL_DESCEND_ALT"]), self.u)
            else:
                final = float(self.params["RTL_ALT_FINAL"]) / 100.0
            self.hold_u = final
            if final <= 0.0:
                self.rtl_phase = RtlPhase.LAND
            elif abs(self.u - final) < 0.5:
                delay = (
                    float(self.params["RTL_LAND_DELAY"])
                    if self.flavour.name == "px4"
                    else float(self.params["RTL_LOIT_TIME"]) / 1000.0
                )
                self.rtl_loiter_until_s = now_s + max(delay, 0.0)
                self.rtl_phase = RtlPhase.LOITER
        if self.rtl_phase is RtlPhase.LOITER:
            delay_forever = self.flavour.name == "px4" and self.params["RTL_LAND_DELAY"] < 0
            if not delay_forever and now_s >= self.rtl_loiter_until_s:
                self.rtl_phase = RtlPhase.LAND
        if self.rtl_phase is RtlPhase.LAND and self.landed is not Landed.LANDING:
            self.landed = Landed.LANDING

    def _item_reached(self, seq: int) -> None:
        self.reached_seq = seq
        self.reached.append(seq)
        self.outbox.append(mav.MAVLink_mission_item_reached_message(seq))

    def _advance(self, now_s: float) -> None:
        self.mission_seq += 1
        self.item_phase = 0
        items = self.mission.items(MISSION)
        if self.mission_seq >= len(items):
            self._mission_finished(now_s)
        else:
            self.outbox.append(self.mission_current_msg())

    def _mission_finished(self, now_s: float) -> None:
        self.mission_done = True
        self.mission_seq = len(self.mission.items(MISSION)) - 1
        self.outbox.append(self.mission_current_msg())
        if self.flavour.name == "px4":
            self.say(mav.MAV_SEVERITY_INFO, "Mission finished, loitering")
            if self.in_air:
                self._fall_back_to_loiter(now_s)
        else:
            self.say(mav.MAV_SEVERITY_INFO, "Mission complete")
            self._hold_here()

    def _mission_step(self, now_s: float) -> None:
        """Run the current mission item; DO items complete at once or when their action ends."""
        items = self.mission.items(MISSION)
        for _ in range(32):  # a few instant items per step at most
            if self.mission_done or self.mission_seq >= len(items):
                if not self.mission_done:
                    self._mission_finished(now_s)
                return
            item = items[self.mission_seq]
            done = self._run_item(item, now_s)
            if not done:
                return
            if self.mode.nav is not Nav.MISSION:
                return
            if item.command == mav.MAV_CMD_DO_JUMP:
                continue  # _run_item already moved mission_seq
            self._item_reached(item.seq)
            self._advance(now_s)

    def _run_item(self, item: Item, now_s: float) -> bool:
        cmd = item.command
        if cmd == mav.MAV_CMD_NAV_TAKEOFF:
            _, _, u = self._item_target(item)
            if self.is_landed:
                if self.item_phase == 0:
                    self._start_takeoff(now_s, max(u, 1.0))
                    self.item_phase = 1
                return False
            if self.item_phase == 0:
                self.hold_e, self.hold_n, self.hold_u = self.e, self.n, max(u, self.u)
                self.item_phase = 1
            return self.u >= self.hold_u - 0.5
        landing_done = cmd == mav.MAV_CMD_NAV_LAND and self.item_phase == 2
        if self.is_landed and not landing_done and cmd in _NEEDS_AIRBORNE:
            # Started on the ground without a takeoff item: PX4 climbs first.
            if self.flavour.name == "px4":
                self._start_takeoff(now_s, max(self.params["MIS_TAKEOFF_ALT"], 2.5))
            return False
        if cmd in (
            mav.MAV_CMD_NAV_WAYPOINT,
            mav.MAV_CMD_NAV_LOITER_TIME,
            mav.MAV_CMD_NAV_LOITER_UNLIM,
            mav.MAV_CMD_NAV_LOITER_TO_ALT,
        ):
            e, n, u = self._item_target(item)
            if self.item_phase == 0:
                self.hold_e, self.hold_n, self.hold_u = e, n, u
                self.item_phase = 1
            if self.item_phase == 1:
                radius = (
                    item.param2
                    if cmd == mav.MAV_CMD_NAV_WAYPOINT and item.param2 > 0
                    else (
                        float(self.params["NAV_ACC_RAD"])
                        if self.flavour.name == "px4"
                        else float(self.params["WPNAV_RADIUS"]) / 100.0
                    )
                )
                if cmd != mav.MAV_CMD_NAV_WAYPOINT:
                    radius = min(radius, 2.0)
                if math.hypot(self.e - e, self.n - n) <= radius and abs(self.u - u) <= 1.0:
                    wait = (
                        item.param1
                        if cmd in (mav.MAV_CMD_NAV_WAYPOINT, mav.MAV_CMD_NAV_LOITER_TIME)
                        else 0.0
                    )
                    self.item_wait_until_s = now_s + max(wait if math.isfinite(wait) else 0.0, 0.0)
                    self.item_phase = 2
                else:
                    return False
            if cmd == mav.MAV_CMD_NAV_LOITER_UNLIM:
                return False
            return now_s >= self.item_wait_until_s
        if cmd == mav.MAV_CMD_NAV_LAND:
            e, n, _ = self._item_target(item)
            if self.item_phase == 0:
                self.hold_e, self.hold_n, self.hold_u = e, n, self.u
                self.item_phase = 1
            if self.item_phase == 1:
                if math.hypot(self.e - e, self.n - n) <= 1.0:
                    self.item_phase = 2
                    self.landed = Landed.LANDING
                return False
            return self.is_landed
        if cmd == mav.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            if self.item_phase == 0:
                self._start_rtl()
                self.item_phase = 1
            if self.is_landed:
                return True
            self._rtl_step(now_s)
            return False
        if cmd in (mav.MAV_CMD_NAV_DELAY, mav.MAV_CMD_CONDITION_DELAY):
            if self.item_phase == 0:
                self._hold_here()
                self.item_wait_until_s = now_s + max(item.param1, 0.0)
                self.item_phase = 1
            return now_s >= self.item_wait_until_s
        if cmd == mav.MAV_CMD_DO_CHANGE_SPEED:
            if item.param2 > 0:
                self.mission_speed_mps = min(item.param2, self.airframe.max_airspeed_mps)
            elif item.param2 == -1:
                self.mission_speed_mps = None
            return True
        if cmd == mav.MAV_CMD_DO_JUMP:
            target, repeat = int(item.param1), int(item.param2)
            done = self.jump_counts.get(item.seq, 0)
            if repeat < 0 or done < repeat:
                self.jump_counts[item.seq] = done + 1
                self.mission_seq = target
            else:
                self.mission_seq += 1
            self.item_phase = 0
            if self.mission_seq >= len(self.mission.items(MISSION)):
                self._mission_finished(now_s)
            return True
        if cmd == mav.MAV_CMD_DO_WINCH:
            if self.item_phase == 0:
                self._hold_here()
                if not self._winch((item.param1, item.param2, item.param3, item.param4), now_s):
                    return True
                self.item_phase = 1
            return not self.winch.busy
        if cmd == mav.MAV_CMD_DO_GRIPPER:
            if self.item_phase == 0:
                self._hold_here()
                self._gripper((item.param1, item.param2, item.param3, item.param4), now_s)
                self.item_phase = 1
            return now_s >= self.gripper_until_s
        if cmd == mav.MAV_CMD_DO_SET_HOME:
            if item.param1 >= 0.5:
                self.home_e, self.home_n = self.e, self.n
            else:
                self.home_e, self.home_n = self.frame.to_en(item.lat_deg, item.lon_deg)
            return True
        return True  # camera, ROI, yaw, servo: nothing to simulate

    def _winch_step(self, now_s: float, dt_s: float) -> None:
        w = self.winch
        if w.deliver:
            w.target_m = max(self.u, 0.0) if not w.released else 0.0
        if abs(w.line_m - w.target_m) > 1e-3:
            step = w.rate_mps * dt_s
            if w.line_m < w.target_m:
                w.line_m = min(w.line_m + step, w.target_m)
            else:
                w.line_m = max(w.line_m - step, w.target_m)
        if w.deliver and not w.released and w.line_m >= max(self.u, 0.0) - 0.05:
            self._release_payload(now_s)
            w.released = True
            w.target_m = 0.0
        if w.deliver and w.released and w.line_m <= 1e-3:
            w.deliver = False
            w.line_m = 0.0

    def _auto_disarm(self, now_s: float) -> None:
        if not self.armed or self.in_air:
            return
        px4 = self.flavour.name == "px4"
        if self.has_flown and self.touchdown_s is not None:
            if px4 and self.mode.nav is Nav.MISSION and not self.mission_done:
                # PX4 commander (handleAutoDisarm, "landed_amid_mission"): no disarm on
                # landing while a mission is unfinished, so a delivery can land, release
                # and take off again.
                return
            delay = float(self.params["COM_DISARM_LAND"]) if px4 else 1.0
            if now_s - self.touchdown_s >= delay:
                self.armed = False
                self.has_flown = False
                self.say(
                    mav.MAV_SEVERITY_INFO, "Disarmed by landing" if px4 else "Disarming motors"
                )
                if px4:
                    self.mode = self.flavour.mode(self.flavour.loiter_mode)
        elif not self.has_flown:
            delay = (
                float(self.params["COM_DISARM_PRFLT"])
                if px4
                else float(self.params["DISARM_DELAY"])
            )
            if delay > 0 and now_s - self.armed_at_s >= delay:
                self.armed = False
                self.say(
                    mav.MAV_SEVERITY_INFO,
                    "Disarmed by auto preflight disarming" if px4 else "Disarming motors",
                )

    # -- failsafes --------------------------------------------------------------------

    def _failsafe_action(self, action: str, now_s: float, reason: str) -> None:
        px4 = self.flavour.name == "px4"
        names = {
            "hold": "AUTO.LOITER" if px4 else "BRAKE",
            "rtl": "AUTO.RTL" if px4 else "RTL",
            "land": "AUTO.LAND" if px4 else "LAND",
        }
        if action == "terminate":
            self.armed = False
            self.falling = True
            self.say(mav.MAV_SEVERITY_EMERGENCY, f"Failsafe: {reason}, terminating")
            return
        mode = self.flavour.mode(names[action])
        if self.mode is mode:
            return
        if self.mode.nav is Nav.LAND and action != "land":
            return  # never climb away from a landing
        self.say(mav.MAV_SEVERITY_CRITICAL, f"Failsafe: {reason}, {action.upper()}")
        if not self.set_mode(mode, now_s) and action != "land":
            self.set_mode(self.flavour.mode(names["land"]), now_s)

    def _configured_action(
        self, px4: tuple[str, dict[int, str]], ardupilot: tuple[str, dict[int, str]]
    ) -> str | None:
        """The failsafe action a parameter selects, per flavour (param name, value -> action)."""
        name, actions = px4 if self.flavour.name == "px4" else ardupilot
        return actions.get(int(self.params[name]))

    def _failsafes(self, now_s: float) -> None:
        px4 = self.flavour.name == "px4"
        airborne = self.armed and self.in_air and not self.falling
        # GPS loss
        if not self.gps_ok and airborne and self.mode.nav is not Nav.LAND:
            self._failsafe_action("land", now_s, "GPS lost")
        # Datalink loss
        if self.last_gcs_hb_s is not None and not self.datalink_lost:
            timeout = float(self.params["COM_DL_LOSS_T"] if px4 else self.params["FS_GCS_TIMEOUT"])
            if now_s - self.last_gcs_hb_s > timeout:
                self.datalink_lost = True
                self.say(mav.MAV_SEVERITY_CRITICAL, "Connection to ground station lost")
                if airborne:
                    action = self._configured_action(
                        ("NAV_DLL_ACT", {1: "hold", 2: "rtl", 3: "land", 5: "terminate"}),
                        ("FS_GCS_ENABLE", {1: "rtl", 2: "rtl", 3: "rtl", 4: "land", 5: "land"}),
                    )
                    if action:
                        self._failsafe_action(action, now_s, "data link lost")
        # Battery
        self._battery_failsafe(now_s, airborne)
        # Geofence, a few times a second
        if now_s - self._last_fence_check_s >= 0.2:
            self._last_fence_check_s = now_s
            self._fence_failsafe(now_s, airborne)

    def _battery_failsafe(self, now_s: float, airborne: bool) -> None:
        px4 = self.flavour.name == "px4"
        soc = self.battery.soc
        if px4:
            level = 0
            if soc <= self.params["BAT_EMERGEN_THR"]:
                level = 3
            elif soc <= self.params["BAT_CRIT_THR"]:
                level = 2
            elif soc <= self.params["BAT_LOW_THR"]:
                level = 1
            if level > self.battery_level:
                self.battery_level = level
                text = {
                    1: "Low battery level! Return advised",
                    2: "Critical battery level!",
                    3: "Emergency battery level! Land now",
                }[level]
                self.say(mav.MAV_SEVERITY_CRITICAL if level > 1 else mav.MAV_SEVERITY_WARNING, text)
                act = int(self.params["COM_LOW_BAT_ACT"])
                if airborne:
                    if act == 2 and level >= 2:
                        self._failsafe_action("land", now_s, "battery critical")
                    elif act == 3 and level == 2:
                        self._failsafe_action("rtl", now_s, "battery critical")
                    elif act == 3 and level == 3:
                        self._failsafe_action("land", now_s, "battery emergency")
            return
        remaining_mah = float(self.params["BATT_CAPACITY"]) * soc
        low_v, crt_v = self.params["BATT_LOW_VOLT"], self.params["BATT_CRT_VOLT"]
        low_mah, crt_mah = self.params["BATT_LOW_MAH"], self.params["BATT_CRT_MAH"]
        resting = self.battery.cells * _ocv(soc)
        level = 0
        if (crt_v and resting < crt_v) or (crt_mah and remaining_mah < crt_mah):
            level = 2
        elif (low_v and resting < low_v) or (low_mah and remaining_mah < low_mah):
            level = 1
        if level > self.battery_level:
            self.battery_level = level
            self.say(
                mav.MAV_SEVERITY_CRITICAL,
                "Battery 1 is {} {:.2f}V used {:.0f} mAh".format(
                    "low" if level == 1 else "critical",
                    self.battery.voltage_v,
                    self.battery.consumed_mah,
                ),
            )
            act = int(self.params["BATT_FS_LOW_ACT" if level == 1 else "BATT_FS_CRT_ACT"])
            action = {1: "land", 2: "rtl", 3: "rtl", 4: "land", 5: "terminate"}.get(act)
            if airborne and action:
                self._failsafe_action(action, now_s, "battery")

    def _fence_failsafe(self, now_s: float, airborne: bool) -> None:
        px4 = self.flavour.name == "px4"
        enabled = (
            (
                not self.fence.empty
                or self.params["GF_MAX_HOR_DIST"] > 0
                or self.params["GF_MAX_VER_DIST"] > 0
            )
            if px4
            else bool(self.params["FENCE_ENABLE"])
        )
        if not enabled:
            self.fence_breached = False
            return
        if px4:
            breached = self.fence.breached(self.e, self.n)
            max_h = float(self.params["GF_MAX_HOR_DIST"])
            max_v = float(self.params["GF_MAX_VER_DIST"])
            if max_h > 0 and math.hypot(self.e - self.home_e, self.n - self.home_n) > max_h:
                breached = True
            if max_v > 0 and self.u > max_v:
                breached = True
        else:
            ftype = int(self.params["FENCE_TYPE"])
            from_home = math.hypot(self.e - self.home_e, self.n - self.home_n)
            breached = (
                bool(ftype & 4 and self.fence.breached(self.e, self.n))
                or bool(ftype & 1 and self.u > self.params["FENCE_ALT_MAX"])
                or bool(ftype & 2 and from_home > self.params["FENCE_RADIUS"])
            )
        if breached and not self.fence_breached:
            self.fence_breached = True
            self.say(mav.MAV_SEVERITY_CRITICAL, "Geofence breached")
            if airborne:
                action = self._configured_action(
                    ("GF_ACTION", {2: "hold", 3: "rtl", 4: "terminate", 5: "land"}),
                    ("FENCE_ACTION", {1: "rtl", 2: "land", 3: "rtl", 4: "hold", 5: "land"}),
                )
                if action:
                    self._failsafe_action(action, now_s, "geofence")
        elif not breached and self.fence_breached:
            self.fence_breached = False

    # -- fault injection ------------------------------------------------------------------

    def set_signing_key(self, key: bytes | None) -> None:
        """Require MAVLink 2 signatures with `key` (None: accept unsigned again)."""
        self.signing_key = key
        self.sign_streams.clear()
        for link in self.links:
            link.enable_signing(key)

    def set_gps(self, ok: bool) -> None:
        if ok != self.gps_ok:
            self.gps_ok = ok
            self.say(
                mav.MAV_SEVERITY_CRITICAL if not ok else mav.MAV_SEVERITY_INFO,
                "GPS fix lost" if not ok else "GPS fix regained",
            )

    def set_battery_soc(self, soc: float) -> None:
        self.battery.energy_wh = self.battery.capacity_wh * min(max(soc, 0.0), 1.0)
        if soc > 0.5:
            self.battery_level = 0

    def set_wind(self, east_mps: float, north_mps: float, gust_mps: float = 0.0) -> None:
        self.wind.east_mps = east_mps
        self.wind.north_mps = north_mps
        self.wind.gust_mps = gust_mps


def _int(x: float) -> int:
    """A command parameter as an integer; unused parameters arrive as NaN, which become -1."""
    return int(x) if math.isfinite(x) else -1


def _param_name(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw.split("\x00", 1)[0]


def _wrap_pi(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _ocv(soc: float) -> float:
    from nestsim.physics import cell_ocv_v

    return cell_ocv_v(soc)
