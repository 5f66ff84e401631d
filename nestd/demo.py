"""The demo: a simulated fleet flies one winch delivery each while live state prints from MAVLink.

Until the daemon's own link, planner and MQTT layers exist, the demo drives the vehicles
with a small ground-station loop of its own, over real UDP, exactly as a client would.
"""

from __future__ import annotations

import asyncio
import functools
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from nestsim.fleet import Fleet, FleetConfig
from pymavlink.dialects.v20 import ardupilotmega as mav

# Three delivery addresses around the default store, as (east_m, north_m) from the nest.
DESTINATIONS_M = ((260.0, 420.0), (380.0, -310.0), (-450.0, 150.0))
CRUISE_ALT_M = 40.0
WINCH_HOVER_M = 7.0
PAYLOAD_KG = 1.2


@dataclass
class Seen:
    """What the demo's ground station knows about one vehicle, from telemetry only."""

    sysid: int
    mode: str = "?"
    armed: bool = False
    lat_deg: float = math.nan
    lon_deg: float = math.nan
    alt_rel_m: float = math.nan
    groundspeed_mps: float = 0.0
    battery_pct: float = math.nan
    mission_seq: int = -1
    mission_total: int = 0
    reached: set[int] = field(default_factory=set)
    landed_state: int = 0
    statustext: str = ""
    done: bool = False


PX4_MODE_NAMES = {
    (4, 2): "AUTO.TAKEOFF",
    (4, 3): "AUTO.LOITER",
    (4, 4): "AUTO.MISSION",
    (4, 5): "AUTO.RTL",
    (4, 6): "AUTO.LAND",
    (3, 0): "POSCTL",
    (1, 0): "MANUAL",
    (6, 0): "OFFBOARD",
}
LANDED = {1: "on ground", 2: "in air", 3: "taking off", 4: "landing"}


class DemoGcs(asyncio.DatagramProtocol):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.encoder = mav.MAVLink(None, 255, 190)
        self.decoder = mav.MAVLink(None, 255, 190)
        self.decoder.robust_parsing = True
        self.transport: Any = None
        self.peer: tuple[str, int] | None = None
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.heard = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer = addr
        self.heard.set()
        for msg in self.decoder.parse_buffer(data) or []:
            self._update(msg)
            if msg.get_type() in (
                "COMMAND_ACK",
                "MISSION_REQUEST_INT",
                "MISSION_REQUEST",
                "MISSION_ACK",
            ):
                self.queue.put_nowait(msg)

    def _update(self, msg: Any) -> None:
        s = self.seen
        t = msg.get_type()
        if t == "HEARTBEAT":
            main, sub = (msg.custom_mode >> 16) & 0xFF, (msg.custom_mode >> 24) & 0xFF
            s.mode = PX4_MODE_NAMES.get((main, sub), f"{main}/{sub}")
            s.armed = bool(msg.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)
        elif t == "GLOBAL_POSITION_INT":
            s.lat_deg, s.lon_deg = msg.lat / 1e7, msg.lon / 1e7
            s.alt_rel_m = msg.relative_alt / 1000.0
            s.groundspeed_mps = math.hypot(msg.vx, msg.vy) / 100.0
        elif t == "SYS_STATUS":
            s.battery_pct = float(msg.battery_remaining)
        elif t == "MISSION_CURRENT":
            s.mission_seq, s.mission_total = msg.seq, msg.total
        elif t == "MISSION_ITEM_REACHED":
            s.reached.add(msg.seq)
        elif t == "EXTENDED_SYS_STATE":
            s.landed_state = msg.landed_state
        elif t == "STATUSTEXT":
            s.statustext = msg.text

    def send(self, msg: Any) -> None:
        if self.peer is not None:
            self.transport.sendto(msg.pack(self.encoder), self.peer)

    async def reply(self, types: tuple[str, ...], timeout_s: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                async with asyncio.timeout(left):
                    msg = await self.queue.get()
            except TimeoutError:
                return None
            if msg.get_type() in types:
                return msg


def _item(
    seq: int,
    command: int,
    lat: float = 0.0,
    lon: float = 0.0,
    alt: float = 0.0,
    params: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    frame: int = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
) -> Any:
    return mav.MAVLink_mission_item_int_message(
        1, 1, seq, frame, command, 0, 1, *params, int(lat * 1e7), int(lon * 1e7), alt, 0
    )


def delivery_mission(sysid: int, dest_lat: float, dest_lon: float) -> list[Any]:
    nan = math.nan
    m = mav
    items = [
        _item(0, m.MAV_CMD_NAV_TAKEOFF, alt=CRUISE_ALT_M),
        _item(1, m.MAV_CMD_NAV_WAYPOINT, dest_lat, dest_lon, CRUISE_ALT_M, (0, 2, 0, nan)),
        _item(2, m.MAV_CMD_NAV_WAYPOINT, dest_lat, dest_lon, WINCH_HOVER_M, (0, 0.5, 0, nan)),
        _item(
            3, m.MAV_CMD_DO_WINCH, params=(1, m.WINCH_DELIVER, 0, 1.5), frame=m.MAV_FRAME_MISSION
        ),
        _item(4, m.MAV_CMD_NAV_WAYPOINT, dest_lat, dest_lon, CRUISE_ALT_M, (0, 2, 0, nan)),
        _item(5, m.MAV_CMD_NAV_RETURN_TO_LAUNCH, frame=m.MAV_FRAME_MISSION),
    ]
    for it in items:
        it.target_system = sysid
    return items


async def fly_one(gcs: DemoGcs, sysid: int, items: list[Any]) -> None:
    """Upload, arm and start one delivery, retrying each step as a ground station would."""

    def command(cmd: int, *p: float) -> Any:
        args = [*p, *[0.0] * (7 - len(p))]
        return mav.MAVLink_command_long_message(sysid, 1, cmd, 0, *args)

    async with asyncio.timeout(10.0):
        await gcs.heard.wait()
    for _attempt in range(5):
        gcs.send(mav.MAVLink_mission_count_message(sysid, 1, len(items), 0))
        while True:
            msg = await gcs.reply(("MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_ACK"))
            if msg is None or msg.get_type() == "MISSION_ACK":
                break
            gcs.send(items[msg.seq])
        if msg is not None and msg.type == mav.MAV_MISSION_ACCEPTED:
            break
    else:
        raise RuntimeError(f"vehicle {sysid}: mission upload failed")
    for cmd, params in (
        (mav.MAV_CMD_COMPONENT_ARM_DISARM, (1.0,)),
        (mav.MAV_CMD_MISSION_START, ()),
    ):
        for _attempt in range(10):
            gcs.send(command(cmd, *params))
            ack = await gcs.reply(("COMMAND_ACK",))
            if ack is not None and ack.command == cmd and ack.result == mav.MAV_RESULT_ACCEPTED:
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"vehicle {sysid}: command {cmd} refused")


def render(rows: list[Seen], elapsed_s: float, speed: float) -> str:
    out = [
        f"nestd demo: t={elapsed_s * speed:6.1f} s simulated ({speed:g}x)",
        f"{'sys':>3} {'mode':<13} {'arm':<3} {'state':<11} {'lat':>10} {'lon':>11} "
        f"{'alt_m':>6} {'gs_m/s':>6} {'batt%':>5} {'item':>5}  last message",
    ]
    for s in rows:
        item = f"{max(s.mission_seq, 0)}/{s.mission_total}"
        out.append(
            f"{s.sysid:>3} {s.mode:<13} {'yes' if s.armed else 'no':<3} "
            f"{LANDED.get(s.landed_state, '?'):<11} {s.lat_deg:>10.6f} {s.lon_deg:>11.6f} "
            f"{s.alt_rel_m:>6.1f} {s.groundspeed_mps:>6.1f} {s.battery_pct:>5.0f} {item:>5}  "
            f"{s.statustext[:40]}"
        )
    return "\n".join(out)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


async def run_demo(
    vehicles: int = 3, speed: float = 8.0, timeout_s: float = 240.0, out: TextIO = sys.stdout
) -> int:
    """Fly one delivery per vehicle; returns 0 when all are delivered and back on their pads."""
    ports = _free_ports(vehicles)
    cfg = FleetConfig(
        vehicles=vehicles,
        speed=speed,
        api_remote_ports=ports,
        api_local_base=0,
        gcs_link=False,
        payload_kg=PAYLOAD_KG,
    )
    loop = asyncio.get_running_loop()
    seen = [Seen(sysid=i + 1) for i in range(vehicles)]
    gcss: list[DemoGcs] = []
    for i, port in enumerate(ports):
        _, proto = await loop.create_datagram_endpoint(
            functools.partial(DemoGcs, seen[i]), local_addr=("127.0.0.1", port)
        )
        gcss.append(proto)
    fleet = Fleet(cfg)
    started = time.monotonic()
    try:
        async with fleet:
            print(
                f"nestd demo: {vehicles} simulated PX4 drones at {speed:g}x, one winch "
                f"delivery each ({PAYLOAD_KG} kg)",
                file=out,
                flush=True,
            )
            for i, gcs in enumerate(gcss):
                de, dn = DESTINATIONS_M[i % len(DESTINATIONS_M)]
                lat, lon = fleet.frame.to_latlon(de, dn)
                await fly_one(gcs, i + 1, delivery_mission(i + 1, lat, lon))
            while time.monotonic() - started < timeout_s:
                await asyncio.sleep(1.0)
                for s in seen:
                    # Judged from telemetry alone: the RTL item reached and motors off.
                    s.done = 5 in s.reached and not s.armed
                print(render(seen, time.monotonic() - started, speed), file=out, flush=True)
                if all(s.done for s in seen):
                    delivered = sum(len(v.drops) for v in fleet.vehicles)
                    print(
                        f"nestd demo: all {vehicles} deliveries made ({delivered} payloads "
                        "lowered by winch) and every drone is back on its pad",
                        file=out,
                    )
                    return 0
            print("nestd demo: timed out before every delivery finished", file=out)
            return 1
    finally:
        for g in gcss:
            if g.transport is not None:
                g.transport.close()
