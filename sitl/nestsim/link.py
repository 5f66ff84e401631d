"""A vehicle's MAVLink link over UDP: message streams, fault injection, and link-level commands."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import math
import random
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestsim.vehicle import Message, SimVehicle


class LinkKind(enum.Enum):
    API = "api"  # PX4's onboard/API link, towards 14540+i
    GCS = "gcs"  # the shared ground-station link, towards 14550


M = mav
# PX4-like default rates (Hz). The API link streams a lot, as PX4's onboard mode does;
# a ground station is expected to turn down what it doesn't need.
PX4_API_RATES: dict[int, float] = {
    M.MAVLINK_MSG_ID_HEARTBEAT: 1.0,
    M.MAVLINK_MSG_ID_SYS_STATUS: 5.0,
    M.MAVLINK_MSG_ID_BATTERY_STATUS: 1.0,
    M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 50.0,
    M.MAVLINK_MSG_ID_LOCAL_POSITION_NED: 30.0,
    M.MAVLINK_MSG_ID_GPS_RAW_INT: 5.0,
    M.MAVLINK_MSG_ID_ATTITUDE: 50.0,
    M.MAVLINK_MSG_ID_VFR_HUD: 10.0,
    M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 5.0,
    M.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    M.MAVLINK_MSG_ID_WIND_COV: 1.0,
    M.MAVLINK_MSG_ID_ALTITUDE: 10.0,
    M.MAVLINK_MSG_ID_MISSION_CURRENT: 1.0,
    M.MAVLINK_MSG_ID_MISSION_ITEM_REACHED: 1.0,
    M.MAVLINK_MSG_ID_WINCH_STATUS: 2.0,
}
PX4_GCS_RATES: dict[int, float] = {
    M.MAVLINK_MSG_ID_HEARTBEAT: 1.0,
    M.MAVLINK_MSG_ID_SYS_STATUS: 1.0,
    M.MAVLINK_MSG_ID_BATTERY_STATUS: 0.5,
    M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 5.0,
    M.MAVLINK_MSG_ID_GPS_RAW_INT: 1.0,
    M.MAVLINK_MSG_ID_ATTITUDE: 15.0,
    M.MAVLINK_MSG_ID_VFR_HUD: 4.0,
    M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 1.0,
    M.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    M.MAVLINK_MSG_ID_WIND_COV: 0.5,
    M.MAVLINK_MSG_ID_ALTITUDE: 1.0,
    M.MAVLINK_MSG_ID_MISSION_CURRENT: 1.0,
    M.MAVLINK_MSG_ID_MISSION_ITEM_REACHED: 1.0,
    M.MAVLINK_MSG_ID_WINCH_STATUS: 1.0,
}
# ArduPilot streams nothing but HEARTBEAT until a ground station asks.
ARDUPILOT_RATES: dict[int, float] = {M.MAVLINK_MSG_ID_HEARTBEAT: 1.0}

# REQUEST_DATA_STREAM groups, as ArduPilot maps them (SRx_* parameters).
DATA_STREAM_GROUPS: dict[int, tuple[int, ...]] = {
    M.MAV_DATA_STREAM_EXTENDED_STATUS: (
        M.MAVLINK_MSG_ID_SYS_STATUS,
        M.MAVLINK_MSG_ID_GPS_RAW_INT,
        M.MAVLINK_MSG_ID_MISSION_CURRENT,
    ),
    M.MAV_DATA_STREAM_POSITION: (
        M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT,
        M.MAVLINK_MSG_ID_LOCAL_POSITION_NED,
    ),
    M.MAV_DATA_STREAM_EXTRA1: (M.MAVLINK_MSG_ID_ATTITUDE,),
    M.MAV_DATA_STREAM_EXTRA2: (M.MAVLINK_MSG_ID_VFR_HUD,),
    M.MAV_DATA_STREAM_EXTRA3: (
        M.MAVLINK_MSG_ID_BATTERY_STATUS,
        M.MAVLINK_MSG_ID_WIND_COV,
        M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE,
        M.MAVLINK_MSG_ID_HOME_POSITION,
    ),
}
DATA_STREAM_GROUPS[M.MAV_DATA_STREAM_ALL] = tuple(
    m for group in list(DATA_STREAM_GROUPS.values()) for m in group
)


def wall_s_unix() -> float:
    return time.time()


def builders(v: SimVehicle) -> dict[int, Callable[[float], Message | None]]:
    """Message id -> function(now_s) building that message from the vehicle's state."""
    return {
        M.MAVLINK_MSG_ID_HEARTBEAT: v.heartbeat,
        M.MAVLINK_MSG_ID_SYS_STATUS: v.sys_status,
        M.MAVLINK_MSG_ID_BATTERY_STATUS: v.battery_status,
        M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: v.global_position_int,
        M.MAVLINK_MSG_ID_LOCAL_POSITION_NED: v.local_position_ned,
        M.MAVLINK_MSG_ID_GPS_RAW_INT: v.gps_raw_int,
        M.MAVLINK_MSG_ID_ATTITUDE: v.attitude,
        M.MAVLINK_MSG_ID_VFR_HUD: v.vfr_hud,
        M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: v.extended_sys_state,
        M.MAVLINK_MSG_ID_HOME_POSITION: v.home_position,
        M.MAVLINK_MSG_ID_WIND_COV: v.wind_cov,
        M.MAVLINK_MSG_ID_ALTITUDE: v.altitude,
        M.MAVLINK_MSG_ID_MISSION_CURRENT: v.mission_current_msg,
        M.MAVLINK_MSG_ID_MISSION_ITEM_REACHED: v.mission_item_reached,
        M.MAVLINK_MSG_ID_WINCH_STATUS: v.winch_status,
        M.MAVLINK_MSG_ID_AUTOPILOT_VERSION: lambda now: v.autopilot_version(),
    }


@dataclass(slots=True)
class Faults:
    """Impairments applied to one link, in both directions."""

    cut: bool = False
    loss: float = 0.0  # probability a datagram is dropped, each way
    latency_s: float = 0.0

    def clear(self) -> None:
        self.cut = False
        self.loss = 0.0
        self.latency_s = 0.0


@dataclass(slots=True)
class LinkStats:
    rx_datagrams: int = 0
    rx_messages: int = 0
    rx_dropped: int = 0
    tx_messages: int = 0
    tx_dropped: int = 0


class SimLink(asyncio.DatagramProtocol):
    """One UDP link of one vehicle. Inbound goes to the vehicle; outbound is paced per stream."""

    def __init__(
        self,
        vehicle: SimVehicle,
        kind: LinkKind,
        remote: tuple[str, int],
        clock: Callable[[], tuple[float, float]],
        rng: random.Random,
    ) -> None:
        self.vehicle = vehicle
        self.kind = kind
        self.remote = remote
        self.clock = clock  # () -> (sim now_s, wall now_s)
        self.rng = rng
        self.faults = Faults()
        self.stats = LinkStats()
        self.transport: asyncio.DatagramTransport | None = None
        self.encoder = mav.MAVLink(None, vehicle.sysid, vehicle.compid)
        self.decoder = mav.MAVLink(None, vehicle.sysid, vehicle.compid)
        self.decoder.robust_parsing = True
        self.builders = builders(vehicle)
        self.rates: dict[int, float] = {}
        self.next_due: dict[int, float] = {}
        self.reset_streams()

    # -- streams ------------------------------------------------------------------------

    def default_rates(self) -> dict[int, float]:
        if not self.vehicle.flavour.streams_by_default:
            return dict(ARDUPILOT_RATES)
        return dict(PX4_API_RATES if self.kind is LinkKind.API else PX4_GCS_RATES)

    def reset_streams(self) -> None:
        self.rates = self.default_rates()
        self.next_due = {}

    def set_rate(self, msg_id: int, hz: float, now_wall: float) -> None:
        if hz <= 0:
            self.rates.pop(msg_id, None)
            self.next_due.pop(msg_id, None)
        else:
            self.rates[msg_id] = hz
            self.next_due[msg_id] = now_wall

    @property
    def local_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    # -- asyncio protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        f = self.faults
        if f.cut or (f.loss and self.rng.random() < f.loss):
            self.stats.rx_dropped += 1
            return
        if f.latency_s > 0:
            asyncio.get_running_loop().call_later(f.latency_s, self._receive, data)
        else:
            self._receive(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while nobody listens yet: normal for UDP, keep going.
        pass

    def _receive(self, data: bytes) -> None:
        self.stats.rx_datagrams += 1
        dec = self.decoder
        try:
            msgs = dec.parse_buffer(data) or []
        except Exception:  # pymavlink raises on some malformed input even when robust
            msgs = []
            self.vehicle.counters["bad_frames"] += 1
        # UDP carries whole frames: a truncated one must not swallow the next datagram.
        dec.buf = bytearray()
        dec.buf_index = 0
        dec.expected_length = mav.HEADER_LEN_V1 + 2
        dec.have_prefix_error = False
        now_s, wall_s = self.clock()
        v = self.vehicle
        for msg in msgs:
            t = msg.get_type()
            if t == "BAD_DATA":
                v.counters["bad_frames"] += 1
                continue
            if t.startswith("UNKNOWN"):
                v.counters["unknown_messages"] += 1
                continue
            if v.signing_key is not None and not self._signature_ok(msg, wall_s):
                v.counters["signature_rejected"] = v.counters.get("signature_rejected", 0) + 1
                continue
            self.stats.rx_messages += 1
            try:
                replies = self._link_level(msg, now_s, wall_s)
                if replies is None:
                    if t.startswith("MISSION_"):
                        v.mission_link = self
                    replies = v.handle(msg, now_s, wall_s)
            except Exception as exc:  # a simulator bug must not take the whole fleet down
                v.counters["handler_errors"] = v.counters.get("handler_errors", 0) + 1
                if v.counters["handler_errors"] == 1:
                    print(f"nestsim: vehicle {v.sysid} failed on {t}: {exc!r}", file=sys.stderr)
                replies = []
            self.flush_outbox()
            for r in replies:
                self.send(r)

    def _signature_ok(self, msg: Message, wall_s: float) -> bool:
        """MAVLink 2 signature check for a vehicle that has a key (as PX4/ArduPilot do)."""
        v = self.vehicle
        if getattr(msg, "target_system", 0) not in (0, v.sysid):
            return True  # not for us: ignored later anyway, whoever signed it
        buf = bytes(msg.get_msgbuf())
        if not (len(buf) > 13 and buf[0] == 0xFD and buf[2] & mav.MAVLINK_IFLAG_SIGNED):
            return msg.get_msgId() == mav.MAVLINK_MSG_ID_RADIO_STATUS
        assert v.signing_key is not None
        if hashlib.sha256(v.signing_key + buf[:-6]).digest()[:6] != buf[-6:]:
            return False
        low, high = struct.unpack("<IH", buf[-12:-6])
        ts = low | (high << 32)
        stream = (buf[-13], msg.get_srcSystem(), msg.get_srcComponent())
        last = v.sign_streams.get(stream)
        now_ts = int((wall_s_unix() - 1420070400) * 100_000)
        if (last is not None and ts <= last) or (last is None and ts + 6_000_000 < now_ts):
            return False  # replayed, or a new stream from too far in the past
        v.sign_streams[stream] = ts
        return True

    def enable_signing(self, key: bytes | None) -> None:
        s = self.encoder.signing
        s.secret_key = key
        s.sign_outgoing = key is not None
        s.link_id = {LinkKind.API: 0, LinkKind.GCS: 1}[self.kind]
        s.timestamp = max(s.timestamp, int((wall_s_unix() - 1420070400) * 100_000))

    def _link_level(self, msg: Message, now_s: float, wall_s: float) -> list[Message] | None:
        """Stream control is per link, as in PX4's and ArduPilot's MAVLink instances."""
        v = self.vehicle
        t = msg.get_type()
        if now_s < v.rebooting_until_s:
            return []
        if getattr(msg, "target_system", 0) not in (0, v.sysid):
            return None
        if t == "REQUEST_DATA_STREAM":
            if v.flavour.streams_by_default:
                return []  # PX4 ignores the legacy request
            ids = DATA_STREAM_GROUPS.get(msg.req_stream_id, ())
            for mid in ids:
                self.set_rate(mid, msg.req_message_rate if msg.start_stop else 0.0, wall_s)
            return []
        if t not in ("COMMAND_LONG", "COMMAND_INT"):
            return None
        if getattr(msg, "target_component", 0) not in (0, v.compid):
            return None
        cmd = msg.command

        def ack(result: int) -> Message:
            return mav.MAVLink_command_ack_message(
                cmd, result, 0, 0, msg.get_srcSystem(), msg.get_srcComponent()
            )

        if cmd == mav.MAV_CMD_SET_MESSAGE_INTERVAL:
            mid = int(msg.param1) if math.isfinite(msg.param1) else -1
            interval_us = msg.param2
            if mid not in self.builders or mid == M.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
                return [ack(mav.MAV_RESULT_UNSUPPORTED)]
            if not math.isfinite(interval_us):
                return [ack(mav.MAV_RESULT_DENIED)]
            if interval_us == 0:
                hz = self.default_rates().get(mid, 0.0)
            elif interval_us < 0:
                hz = 0.0
            else:
                hz = 1e6 / interval_us
            self.set_rate(mid, hz, wall_s)
            return [ack(mav.MAV_RESULT_ACCEPTED)]
        if cmd == mav.MAV_CMD_GET_MESSAGE_INTERVAL:
            mid = int(msg.param1) if math.isfinite(msg.param1) else -1
            if mid not in self.builders:
                return [ack(mav.MAV_RESULT_UNSUPPORTED)]
            hz = self.rates.get(mid, 0.0)
            interval = int(1e6 / hz) if hz > 0 else -1
            return [
                ack(mav.MAV_RESULT_ACCEPTED),
                mav.MAVLink_message_interval_message(mid, interval),
            ]
        if cmd == mav.MAV_CMD_REQUEST_MESSAGE:
            mid = int(msg.param1) if math.isfinite(msg.param1) else -1
            build = self.builders.get(mid)
            if mid == M.MAVLINK_MSG_ID_MESSAGE_INTERVAL:
                return [ack(mav.MAV_RESULT_UNSUPPORTED)]
            if build is None:
                return [ack(mav.MAV_RESULT_UNSUPPORTED)]
            built = build(now_s)
            if built is None:
                return [ack(mav.MAV_RESULT_FAILED)]
            return [ack(mav.MAV_RESULT_ACCEPTED), built]
        return None

    # -- sending ------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        if self.transport is None:
            return
        f = self.faults
        if f.cut or (f.loss and self.rng.random() < f.loss):
            self.stats.tx_dropped += 1
            msg.pack(self.encoder)  # the sequence number still advances, as on a real link
            return
        buf = msg.pack(self.encoder)
        self.stats.tx_messages += 1
        if f.latency_s > 0:
            asyncio.get_running_loop().call_later(f.latency_s, self._sendto, buf)
        else:
            self.transport.sendto(buf, self.remote)

    def _sendto(self, buf: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(buf, self.remote)

    def flush_outbox(self) -> None:
        """Broadcast what the vehicle queued (STATUSTEXT, events) on all its links."""
        v = self.vehicle
        if v.outbox:
            out, v.outbox = v.outbox, []
            for link in v.links:
                for msg in out:
                    link.send(msg)

    def tick(self, now_s: float, wall_s: float) -> None:
        """Send every stream message that is due."""
        if now_s < self.vehicle.rebooting_until_s:
            return
        due = self.next_due
        for mid, hz in self.rates.items():
            t = due.get(mid)
            if t is None:
                # Spread first sends so all vehicles don't burst in the same tick; the
                # heartbeat goes at once so a ground station discovers the vehicle quickly.
                if mid != M.MAVLINK_MSG_ID_HEARTBEAT:
                    due[mid] = wall_s + self.rng.random() / hz
                    continue
                t = wall_s
            if wall_s >= t:
                interval = 1.0 / hz
                t += interval
                due[mid] = t if t > wall_s else wall_s + interval
                msg = self.builders[mid](now_s)
                if msg is not None:
                    self.send(msg)
