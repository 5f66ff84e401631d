"""One vehicle's state, updated from MAVLink messages: SI values in, change events out."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestd.mavlink.profiles import FirmwareProfile

# pymavlink message objects are untyped; this module only reads their fields. Protocol
# constants are spelled out here so the model stays free of pymavlink (it is domain code).
Message = Any

UINT16_MAX = 65535
INT16_MAX = 32767
UINT8_MAX = 255
MAV_MODE_FLAG_SAFETY_ARMED = 128
MAV_AUTOPILOT_INVALID = 8  # sent by components that are not flight controllers
MAV_TYPE_GCS = 6
MISSION_STATE_NO_MISSION = 1
STATUSTEXT_CHUNK_BYTES = 50

LANDED_STATE_NAMES = {0: "undefined", 1: "on_ground", 2: "in_air", 3: "takeoff", 4: "landing"}
SYSTEM_STATUS_NAMES = {
    0: "uninit",
    1: "boot",
    2: "calibrating",
    3: "standby",
    4: "active",
    5: "critical",
    6: "emergency",
    7: "poweroff",
    8: "flight_termination",
}
GPS_FIX_NAMES = {
    0: "no_gps",
    1: "no_fix",
    2: "2d",
    3: "3d",
    4: "dgps",
    5: "rtk_float",
    6: "rtk_fixed",
    7: "static",
    8: "ppp",
}
MISSION_STATE_NAMES = {
    0: "unknown",
    1: "no_mission",
    2: "not_started",
    3: "active",
    4: "paused",
    5: "complete",
}


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModeChanged:
    time_s: float
    old: str | None
    new: str
    custom_mode: int


@dataclass(frozen=True, slots=True)
class ArmedChanged:
    time_s: float
    armed: bool


@dataclass(frozen=True, slots=True)
class LandedStateChanged:
    time_s: float
    old: int | None
    new: int

    @property
    def name(self) -> str:
        return LANDED_STATE_NAMES.get(self.new, f"unknown:{self.new}")


@dataclass(frozen=True, slots=True)
class SystemStatusChanged:
    time_s: float
    old: int | None
    new: int

    @property
    def name(self) -> str:
        return SYSTEM_STATUS_NAMES.get(self.new, f"unknown:{self.new}")


@dataclass(frozen=True, slots=True)
class HomeChanged:
    time_s: float
    lat_deg: float
    lon_deg: float
    alt_amsl_m: float


@dataclass(frozen=True, slots=True)
class MissionItemReached:
    time_s: float
    seq: int


@dataclass(frozen=True, slots=True)
class MissionCurrentChanged:
    time_s: float
    seq: int
    total: int | None
    state: int


@dataclass(frozen=True, slots=True)
class StatusText:
    time_s: float
    severity: int  # MAV_SEVERITY: 0 emergency .. 7 debug
    text: str
    complete: bool = True  # False: chunks were lost and the text has gaps marked "…"


@dataclass(frozen=True, slots=True)
class AutopilotChanged:
    """The same sysid/compid now reports another autopilot or vehicle type: a spoof, a
    misconfigured second vehicle, or a reflash. Whatever it is, the profile may be wrong."""

    time_s: float
    old_autopilot: int
    old_type: int
    new_autopilot: int
    new_type: int


@dataclass(frozen=True, slots=True)
class BatteryLevelCrossed:
    time_s: float
    threshold_pct: float
    remaining_pct: float
    falling: bool  # False: back above the threshold (a swap, or the estimate recovering)


StateEvent = (
    ModeChanged
    | ArmedChanged
    | LandedStateChanged
    | SystemStatusChanged
    | HomeChanged
    | MissionItemReached
    | MissionCurrentChanged
    | StatusText
    | AutopilotChanged
    | BatteryLevelCrossed
)


# -- state groups ---------------------------------------------------------------------


@dataclass(slots=True)
class Position:
    lat_deg: float | None = None
    lon_deg: float | None = None
    alt_amsl_m: float | None = None
    alt_rel_m: float | None = None  # above home
    vn_mps: float | None = None
    ve_mps: float | None = None
    vd_mps: float | None = None
    heading_deg: float | None = None


@dataclass(slots=True)
class Attitude:
    roll_rad: float | None = None
    pitch_rad: float | None = None
    yaw_rad: float | None = None
    roll_rate_radps: float | None = None
    pitch_rate_radps: float | None = None
    yaw_rate_radps: float | None = None


@dataclass(slots=True)
class Hud:
    airspeed_mps: float | None = None
    groundspeed_mps: float | None = None
    climb_mps: float | None = None
    heading_deg: float | None = None
    throttle_pct: float | None = None


@dataclass(slots=True)
class Battery:
    remaining_pct: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    consumed_mah: float | None = None
    consumed_wh: float | None = None
    temperature_c: float | None = None
    time_remaining_s: float | None = None
    charge_state: int | None = None
    source: str | None = None  # BATTERY_STATUS or SYS_STATUS


@dataclass(slots=True)
class Gps:
    fix_type: int | None = None
    satellites: int | None = None
    hdop: float | None = None
    vdop: float | None = None
    h_acc_m: float | None = None
    v_acc_m: float | None = None


@dataclass(slots=True)
class Home:
    lat_deg: float
    lon_deg: float
    alt_amsl_m: float


@dataclass(slots=True)
class MissionProgress:
    current_seq: int | None = None
    total: int | None = None
    state: int = 0  # MISSION_STATE
    last_reached_seq: int | None = None


@dataclass(slots=True)
class Wind:
    north_mps: float | None = None  # towards which the air moves, NED
    east_mps: float | None = None
    down_mps: float | None = None
    var_horiz_m2ps2: float | None = None
    source: str | None = None

    @property
    def speed_mps(self) -> float | None:
        if self.north_mps is None or self.east_mps is None:
            return None
        return math.hypot(self.north_mps, self.east_mps)

    @property
    def from_deg(self) -> float | None:
        """Direction the wind blows from, as weather reports give it."""
        if self.north_mps is None or self.east_mps is None:
            return None
        return math.degrees(math.atan2(-self.east_mps, -self.north_mps)) % 360.0


@dataclass(slots=True)
class Winch:
    line_length_m: float | None = None
    speed_mps: float | None = None
    tension_kg: float | None = None  # MAVLink's unit for WINCH_STATUS.tension
    status: int | None = None  # MAV_WINCH_STATUS_FLAG bits


@dataclass(slots=True)
class StatusTextEntry:
    time_s: float
    severity: int
    text: str
    complete: bool = True


@dataclass(slots=True)
class _PartialText:
    started_s: float
    severity: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    last_seq: int | None = None  # the chunk that ended the text, once seen


# -- the model ------------------------------------------------------------------------


class VehicleState:
    """Everything known about one vehicle component, from the messages it sent.

    `update(msg, now_s)` takes every decoded message from the link (messages from other
    sysid/compid are counted and ignored) and returns the events it caused. No clock, no I/O.
    """

    def __init__(
        self,
        sysid: int,
        compid: int,
        profile: FirmwareProfile | None = None,
        *,
        battery_thresholds_pct: tuple[float, ...] = (50.0, 30.0, 20.0, 10.0),
        battery_hysteresis_pct: float = 2.0,
        statustext_log_size: int = 100,
        statustext_timeout_s: float = 2.0,
        max_partial_texts: int = 16,
        battery_status_fresh_s: float = 5.0,
    ) -> None:
        self.sysid = sysid
        self.compid = compid
        self.profile = profile
        self.battery_thresholds_pct = tuple(sorted(battery_thresholds_pct, reverse=True))
        self.battery_hysteresis_pct = battery_hysteresis_pct
        self.statustext_timeout_s = statustext_timeout_s
        self.max_partial_texts = max_partial_texts
        self.battery_status_fresh_s = battery_status_fresh_s

        # HEARTBEAT
        self.vehicle_type: int | None = None
        self.autopilot: int | None = None
        self.base_mode: int | None = None
        self.custom_mode: int | None = None
        self.system_status: int | None = None
        self.armed: bool | None = None
        self.mode_name: str | None = None  # via the profile, else "custom:<n>"
        # EXTENDED_SYS_STATE
        self.landed_state: int | None = None
        self.vtol_state: int | None = None

        self.position = Position()
        self.attitude = Attitude()
        self.hud = Hud()
        self.battery = Battery()
        self.gps = Gps()
        self.home: Home | None = None
        self.mission = MissionProgress()
        self.wind = Wind()
        self.winch = Winch()

        self.last_heard_s: float | None = None
        self.last_heard: dict[str, float] = {}
        self.statustext_log: deque[StatusTextEntry] = deque(maxlen=statustext_log_size)
        self.counters: dict[str, int] = {
            "messages": 0,
            "ignored_other_source": 0,
            "ignored_non_autopilot_heartbeat": 0,
            "bad_data": 0,
            "statustext_incomplete": 0,
        }

        self._battery_below: set[float] = set()
        self._battery_status_s: float | None = None
        self._home_raw: tuple[int, int, int] | None = None
        self._home_emitted: tuple[float, float, float] | None = None
        self._partials: dict[int, _PartialText] = {}
        self._handlers = {
            "HEARTBEAT": self._on_heartbeat,
            "GLOBAL_POSITION_INT": self._on_global_position_int,
            "ATTITUDE": self._on_attitude,
            "VFR_HUD": self._on_vfr_hud,
            "SYS_STATUS": self._on_sys_status,
            "BATTERY_STATUS": self._on_battery_status,
            "GPS_RAW_INT": self._on_gps_raw_int,
            "EXTENDED_SYS_STATE": self._on_extended_sys_state,
            "HOME_POSITION": self._on_home_position,
            "MISSION_CURRENT": self._on_mission_current,
            "MISSION_ITEM_REACHED": self._on_mission_item_reached,
            "WIND_COV": self._on_wind_cov,
            "WIND": self._on_wind,
            "WINCH_STATUS": self._on_winch_status,
            "STATUSTEXT": self._on_statustext,
        }

    # -- entry points ---------------------------------------------------------------

    def update(self, msg: Message, now_s: float) -> list[StateEvent]:
        """Apply one message; return the events it caused, oldest first."""
        if msg.get_srcSystem() != self.sysid or msg.get_srcComponent() != self.compid:
            self.counters["ignored_other_source"] += 1
            return []
        # BATTERY_STATUS has a field called `id`, so never read msg.id for the message type.
        msg_type = msg.get_type()
        if msg_type == "BAD_DATA":
            self.counters["bad_data"] += 1
            return []
        self.counters["messages"] += 1
        self.last_heard_s = now_s
        self.last_heard[msg_type] = now_s
        events: list[StateEvent] = []
        handler = self._handlers.get(msg_type)
        if handler is not None:
            handler(msg, now_s, events)
        self._expire_texts(now_s, events)
        return events

    def tick(self, now_s: float) -> list[StateEvent]:
        """Time passing alone: flushes STATUSTEXT chunks that waited too long."""
        events: list[StateEvent] = []
        self._expire_texts(now_s, events)
        return events

    def set_profile(self, profile: FirmwareProfile | None) -> None:
        """Use another profile (e.g. after AutopilotChanged); the mode name follows at once."""
        self.profile = profile
        if self.custom_mode is not None:
            self.mode_name = self._mode_name(self.custom_mode)

    # -- shortcuts for what flight logic reads most ----------------------------------

    @property
    def lat_deg(self) -> float | None:
        return self.position.lat_deg

    @property
    def lon_deg(self) -> float | None:
        return self.position.lon_deg

    @property
    def alt_amsl_m(self) -> float | None:
        return self.position.alt_amsl_m

    @property
    def alt_rel_m(self) -> float | None:
        return self.position.alt_rel_m

    @property
    def home_alt_amsl_m(self) -> float | None:
        return None if self.home is None else self.home.alt_amsl_m

    @property
    def mission_seq(self) -> int | None:
        return self.mission.current_seq

    @property
    def last_reached_seq(self) -> int | None:
        return self.mission.last_reached_seq

    @property
    def battery_pct(self) -> float | None:
        return self.battery.remaining_pct

    def age_s(self, msg_type: str, now_s: float) -> float | None:
        """Seconds since `msg_type` was last heard, or None if never."""
        t = self.last_heard.get(msg_type)
        return None if t is None else now_s - t

    # -- handlers -------------------------------------------------------------------

    def _on_heartbeat(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        if msg.autopilot == MAV_AUTOPILOT_INVALID or msg.type == MAV_TYPE_GCS:
            # A gimbal or companion using the autopilot's compid says nothing about the
            # autopilot's mode or arming.
            self.counters["ignored_non_autopilot_heartbeat"] += 1
            return
        if (
            self.autopilot is not None
            and self.vehicle_type is not None
            and (msg.autopilot != self.autopilot or msg.type != self.vehicle_type)
        ):
            events.append(
                AutopilotChanged(now_s, self.autopilot, self.vehicle_type, msg.autopilot, msg.type)
            )
        self.autopilot = msg.autopilot
        self.vehicle_type = msg.type
        self.base_mode = msg.base_mode
        armed = bool(msg.base_mode & MAV_MODE_FLAG_SAFETY_ARMED)
        if armed != self.armed:
            # Also on the first heartbeat: a daemon restarting mid-flight must learn "armed".
            events.append(ArmedChanged(now_s, armed))
            self.armed = armed
        mode = self._mode_name(msg.custom_mode)
        self.custom_mode = msg.custom_mode
        if mode != self.mode_name:
            events.append(ModeChanged(now_s, self.mode_name, mode, msg.custom_mode))
            self.mode_name = mode
        if msg.system_status != self.system_status:
            events.append(SystemStatusChanged(now_s, self.system_status, msg.system_status))
            self.system_status = msg.system_status

    def _mode_name(self, custom_mode: int) -> str:
        name = self.profile.mode_name(custom_mode) if self.profile is not None else None
        return name if name is not None else f"custom:{custom_mode}"

    def _on_global_position_int(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        p = self.position
        # (0, 0) is what a vehicle without a position estimate sends; no nest is there.
        if msg.lat == 0 and msg.lon == 0:
            p.lat_deg = p.lon_deg = None
        else:
            p.lat_deg = msg.lat / 1e7
            p.lon_deg = msg.lon / 1e7
        p.alt_amsl_m = msg.alt / 1000
        p.alt_rel_m = msg.relative_alt / 1000
        p.vn_mps = msg.vx / 100
        p.ve_mps = msg.vy / 100
        p.vd_mps = msg.vz / 100
        p.heading_deg = None if msg.hdg == UINT16_MAX else msg.hdg / 100

    def _on_attitude(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        a = self.attitude
        a.roll_rad = _finite(msg.roll)
        a.pitch_rad = _finite(msg.pitch)
        a.yaw_rad = _finite(msg.yaw)
        a.roll_rate_radps = _finite(msg.rollspeed)
        a.pitch_rate_radps = _finite(msg.pitchspeed)
        a.yaw_rate_radps = _finite(msg.yawspeed)

    def _on_vfr_hud(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        h = self.hud
        h.airspeed_mps = _finite(msg.airspeed)
        h.groundspeed_mps = _finite(msg.groundspeed)
        h.climb_mps = _finite(msg.climb)
        h.heading_deg = float(msg.heading % 360)
        h.throttle_pct = float(msg.throttle)

    def _on_sys_status(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        # BATTERY_STATUS knows more (energy, temperature); only fall back to SYS_STATUS's
        # battery fields while BATTERY_STATUS isn't arriving.
        if (
            self._battery_status_s is not None
            and now_s - self._battery_status_s <= self.battery_status_fresh_s
        ):
            return
        b = self.battery
        b.source = "SYS_STATUS"
        b.voltage_v = None if msg.voltage_battery == UINT16_MAX else msg.voltage_battery / 1000
        b.current_a = None if msg.current_battery == -1 else msg.current_battery / 100
        self._set_remaining(
            None if msg.battery_remaining == -1 else msg.battery_remaining, now_s, events
        )

    def _on_battery_status(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        # `msg.id` here is the battery's id; the first battery stands for the vehicle.
        if msg.id != 0:
            return
        self._battery_status_s = now_s
        b = self.battery
        b.source = "BATTERY_STATUS"
        b.voltage_v = _cell_sum_v(msg.voltages, getattr(msg, "voltages_ext", None))
        b.current_a = None if msg.current_battery == -1 else msg.current_battery / 100
        b.consumed_mah = None if msg.current_consumed == -1 else float(msg.current_consumed)
        # energy_consumed is in hectojoules: 1 hJ = 100 J = 1/36 Wh
        b.consumed_wh = None if msg.energy_consumed == -1 else msg.energy_consumed / 36.0
        b.temperature_c = None if msg.temperature == INT16_MAX else msg.temperature / 100
        b.time_remaining_s = None if msg.time_remaining == 0 else float(msg.time_remaining)
        b.charge_state = getattr(msg, "charge_state", None)
        self._set_remaining(
            None if msg.battery_remaining == -1 else msg.battery_remaining, now_s, events
        )

    def _set_remaining(self, pct: int | None, now_s: float, events: list[StateEvent]) -> None:
        self.battery.remaining_pct = None if pct is None else float(pct)
        if pct is None:
            return
        for t in self.battery_thresholds_pct:  # highest first: falling events in order
            if pct <= t and t not in self._battery_below:
                self._battery_below.add(t)
                events.append(BatteryLevelCrossed(now_s, t, float(pct), falling=True))
        for t in reversed(self.battery_thresholds_pct):
            # Hysteresis: a reading wobbling around a threshold is one crossing, not many.
            if t in self._battery_below and pct > t + self.battery_hysteresis_pct:
                self._battery_below.discard(t)
                events.append(BatteryLevelCrossed(now_s, t, float(pct), falling=False))

    def _on_gps_raw_int(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        g = self.gps
        g.fix_type = msg.fix_type
        g.satellites = None if msg.satellites_visible == UINT8_MAX else msg.satellites_visible
        g.hdop = None if msg.eph == UINT16_MAX else msg.eph / 100
        g.vdop = None if msg.epv == UINT16_MAX else msg.epv / 100
        # Extension fields: 0 when the sender doesn't fill them in.
        h_acc = getattr(msg, "h_acc", 0)
        v_acc = getattr(msg, "v_acc", 0)
        g.h_acc_m = h_acc / 1000 if h_acc else None
        g.v_acc_m = v_acc / 1000 if v_acc else None

    def _on_extended_sys_state(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        self.vtol_state = msg.vtol_state
        if msg.landed_state != self.landed_state:
            events.append(LandedStateChanged(now_s, self.landed_state, msg.landed_state))
            self.landed_state = msg.landed_state

    def _on_home_position(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        raw = (msg.latitude, msg.longitude, msg.altitude)
        if raw == self._home_raw:
            return
        self._home_raw = raw
        home = Home(msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000)
        self.home = home
        # PX4 keeps nudging home altitude for GNSS drift after takeoff; only a real move
        # (10 cm across, 0.5 m up/down) is news.
        last = self._home_emitted
        if (
            last is None
            or _ground_distance_m(last[0], last[1], home.lat_deg, home.lon_deg) >= 0.1
            or abs(last[2] - home.alt_amsl_m) >= 0.5
        ):
            self._home_emitted = (home.lat_deg, home.lon_deg, home.alt_amsl_m)
            events.append(HomeChanged(now_s, home.lat_deg, home.lon_deg, home.alt_amsl_m))

    def _on_mission_current(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        m = self.mission
        state = getattr(msg, "mission_state", 0)
        total_raw = getattr(msg, "total", 0)
        # total: UINT16_MAX says "no mission"; 0 says "not supported" (MAVLink 1 senders and
        # old firmware), unless mission_state says there is no mission.
        total: int | None
        if total_raw == UINT16_MAX or (total_raw == 0 and state == MISSION_STATE_NO_MISSION):
            total = 0
        elif total_raw == 0:
            total = None
        else:
            total = total_raw
        changed = msg.seq != m.current_seq or total != m.total
        if m.current_seq is not None and msg.seq < m.current_seq:
            # Restarted or jumped back: the same items may be reached again.
            m.last_reached_seq = None
        m.current_seq = msg.seq
        m.total = total
        m.state = state
        if changed:
            events.append(MissionCurrentChanged(now_s, msg.seq, total, state))

    def _on_mission_item_reached(
        self, msg: Message, now_s: float, events: list[StateEvent]
    ) -> None:
        # Autopilots (and the simulator) repeat the last reached item; report it once.
        if msg.seq == self.mission.last_reached_seq:
            return
        self.mission.last_reached_seq = msg.seq
        events.append(MissionItemReached(now_s, msg.seq))

    def _on_wind_cov(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        w = self.wind
        w.source = "WIND_COV"
        w.north_mps = _finite(msg.wind_x)
        w.east_mps = _finite(msg.wind_y)
        w.down_mps = _finite(msg.wind_z)
        w.var_horiz_m2ps2 = _finite(msg.var_horiz)

    def _on_wind(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        # ArduPilot's WIND (GCS_MAVLINK::send_wind): direction = atan2(-y, -x), where the wind
        # comes FROM; speed = the 3-D length of the NED wind vector; speed_z = its z (down).
        direction = _finite(msg.direction)
        speed = _finite(msg.speed)
        down = _finite(msg.speed_z)
        w = self.wind
        w.source = "WIND"
        if direction is None or speed is None:
            w.north_mps = w.east_mps = None
        else:
            horizontal = math.sqrt(max(speed * speed - (down or 0.0) ** 2, 0.0))
            w.north_mps = -horizontal * math.cos(math.radians(direction))
            w.east_mps = -horizontal * math.sin(math.radians(direction))
        w.down_mps = down
        w.var_horiz_m2ps2 = None

    def _on_winch_status(self, msg: Message, now_s: float, ev: list[StateEvent]) -> None:
        w = self.winch
        w.line_length_m = _finite(msg.line_length)
        w.speed_mps = _finite(msg.speed)
        w.tension_kg = _finite(msg.tension)
        w.status = msg.status

    # -- STATUSTEXT -----------------------------------------------------------------

    def _on_statustext(self, msg: Message, now_s: float, events: list[StateEvent]) -> None:
        raw = _raw_text(msg)
        text_id = getattr(msg, "id", 0) or 0
        chunk_seq = getattr(msg, "chunk_seq", 0) or 0
        body, ended = _chunk_body(raw)
        if text_id == 0:
            # MAVLink 1 style: one message is the whole text.
            self._emit_text(now_s, msg.severity, body.decode("utf-8", "replace"), True, events)
            return
        partial = self._partials.get(text_id)
        if partial is not None and chunk_seq in partial.chunks:
            if partial.chunks[chunk_seq] == body:
                return  # a duplicate on a lossy link
            # The id came round again for a new text: flush what the old one had.
            self._flush(text_id, now_s, events)
            partial = None
        if partial is None:
            if len(self._partials) >= self.max_partial_texts:
                oldest = min(self._partials, key=lambda k: self._partials[k].started_s)
                self._flush(oldest, now_s, events)
            partial = _PartialText(started_s=now_s, severity=msg.severity)
            self._partials[text_id] = partial
        partial.chunks[chunk_seq] = body
        if ended:
            partial.last_seq = chunk_seq
        if partial.last_seq is not None and all(
            i in partial.chunks for i in range(partial.last_seq + 1)
        ):
            del self._partials[text_id]
            text = b"".join(partial.chunks[i] for i in range(partial.last_seq + 1))
            self._emit_text(now_s, partial.severity, text.decode("utf-8", "replace"), True, events)

    def _expire_texts(self, now_s: float, events: list[StateEvent]) -> None:
        if not self._partials:
            return
        stale = [
            k for k, p in self._partials.items() if now_s - p.started_s > self.statustext_timeout_s
        ]
        for k in stale:
            self._flush(k, now_s, events)

    def _flush(self, text_id: int, now_s: float, events: list[StateEvent]) -> None:
        """Give up waiting for a text's missing chunks; emit what arrived, gaps marked."""
        partial = self._partials.pop(text_id)
        last = partial.last_seq if partial.last_seq is not None else max(partial.chunks)
        parts = []
        for i in range(last + 1):
            chunk = partial.chunks.get(i)
            parts.append(chunk.decode("utf-8", "replace") if chunk is not None else "…")
        if partial.last_seq is None:
            parts.append("…")  # the end never came
        self.counters["statustext_incomplete"] += 1
        self._emit_text(partial.started_s, partial.severity, "".join(parts), False, events)

    def _emit_text(
        self, time_s: float, severity: int, text: str, complete: bool, events: list[StateEvent]
    ) -> None:
        self.statustext_log.append(StatusTextEntry(time_s, severity, text, complete))
        events.append(StatusText(time_s, severity, text, complete))

    # -- telemetry ------------------------------------------------------------------

    def snapshot(self, now_s: float | None = None) -> dict[str, Any]:
        """A plain, JSON-ready dict in SI units, rounded to what the sensors can tell."""
        p, a, h, b, g, m, w, wi = (
            self.position,
            self.attitude,
            self.hud,
            self.battery,
            self.gps,
            self.mission,
            self.wind,
            self.winch,
        )
        snap: dict[str, Any] = {
            "sysid": self.sysid,
            "compid": self.compid,
            "profile": self.profile.name if self.profile is not None else None,
            "autopilot": self.autopilot,
            "vehicle_type": self.vehicle_type,
            "armed": self.armed,
            "mode": self.mode_name,
            "base_mode": self.base_mode,
            "custom_mode": self.custom_mode,
            "system_status": _named(SYSTEM_STATUS_NAMES, self.system_status),
            "landed_state": _named(LANDED_STATE_NAMES, self.landed_state),
            "position": {
                "lat_deg": _r(p.lat_deg, 7),
                "lon_deg": _r(p.lon_deg, 7),
                "alt_amsl_m": _r(p.alt_amsl_m, 2),
                "alt_rel_m": _r(p.alt_rel_m, 2),
                "vn_mps": _r(p.vn_mps, 2),
                "ve_mps": _r(p.ve_mps, 2),
                "vd_mps": _r(p.vd_mps, 2),
                "heading_deg": _r(p.heading_deg, 1),
            },
            "attitude": {
                "roll_rad": _r(a.roll_rad, 3),
                "pitch_rad": _r(a.pitch_rad, 3),
                "yaw_rad": _r(a.yaw_rad, 3),
            },
            "airspeed_mps": _r(h.airspeed_mps, 2),
            "groundspeed_mps": _r(h.groundspeed_mps, 2),
            "climb_mps": _r(h.climb_mps, 2),
            "battery": {
                "remaining_pct": _r(b.remaining_pct, 1),
                "voltage_v": _r(b.voltage_v, 2),
                "current_a": _r(b.current_a, 2),
                "consumed_wh": _r(b.consumed_wh, 2),
                "temperature_c": _r(b.temperature_c, 1),
                "time_remaining_s": _r(b.time_remaining_s, 0),
            },
            "gps": {
                "fix": _named(GPS_FIX_NAMES, g.fix_type),
                "satellites": g.satellites,
                "hdop": _r(g.hdop, 2),
            },
            "home": None
            if self.home is None
            else {
                "lat_deg": _r(self.home.lat_deg, 7),
                "lon_deg": _r(self.home.lon_deg, 7),
                "alt_amsl_m": _r(self.home.alt_amsl_m, 2),
            },
            "mission": {
                "current_seq": m.current_seq,
                "total": m.total,
                "state": MISSION_STATE_NAMES.get(m.state, f"unknown:{m.state}"),
                "last_reached_seq": m.last_reached_seq,
            },
            "wind": {
                "north_mps": _r(w.north_mps, 2),
                "east_mps": _r(w.east_mps, 2),
                "down_mps": _r(w.down_mps, 2),
                "speed_mps": _r(w.speed_mps, 2),
                "from_deg": _r(w.from_deg, 0),
            },
            "winch": {
                "line_length_m": _r(wi.line_length_m, 2),
                "speed_mps": _r(wi.speed_mps, 2),
                "status": wi.status,
            },
            "last_heard_s": self.last_heard_s,
        }
        if now_s is not None:
            snap["age_s"] = None if self.last_heard_s is None else _r(now_s - self.last_heard_s, 2)
        return snap


# -- helpers --------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _r(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def _named(names: dict[int, str], value: int | None) -> str | None:
    if value is None:
        return None
    return names.get(value, f"unknown:{value}")


def _cell_sum_v(voltages: list[int], voltages_ext: list[int] | None) -> float | None:
    """BATTERY_STATUS cells (mV): UINT16_MAX ends the list; cells 11-14 are 0 when unused."""
    total_mv = 0
    cells = 0
    for mv in voltages:
        if mv == UINT16_MAX:
            break
        total_mv += mv
        cells += 1
    else:
        for mv in voltages_ext or ():
            if mv == 0:
                break
            total_mv += mv
    return None if cells == 0 else total_mv / 1000


def _raw_text(msg: Message) -> bytes:
    """The STATUSTEXT text field as sent: pymavlink keeps the raw bytes beside its ASCII-only
    decoded `text`, and reassembly has to split and join bytes (UTF-8 may straddle chunks)."""
    raw = getattr(msg, "_text_raw", None)
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    text = msg.text
    if isinstance(text, bytes | bytearray):
        return bytes(text)
    return str(text).encode("utf-8", "replace")


def _chunk_body(raw: bytes) -> tuple[bytes, bool]:
    """A chunk's text and whether it ends the message (a NUL, or shorter than 50 bytes)."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        return raw[:nul], True
    return raw, len(raw) < STATUSTEXT_CHUNK_BYTES


def _ground_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # Equirectangular is exact enough at the centimetre-to-metre scale this is used for.
    k = 111_319.49
    dn = (lat2 - lat1) * k
    de = (lon2 - lon1) * k * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dn, de)
