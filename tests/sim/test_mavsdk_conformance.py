"""MAVSDK conformance: MAVSDK-Python (an independent client) must accept nestsim as PX4 SITL.

Uses the native in-process ``mavsdk`` 4.x package (``mavsdk.asyncio``; no mavsdk_server),
against the ``px4_fleet`` fixture (tests/conftest.py); parametrized for 1 and 3 vehicles.

Rules these tests follow (tests/sim/mavsdk_notes.md records what MAVSDK does on the wire):

* Every MAVSDK request runs in a worker thread (``run_in_executor``); cancelling the await does
  not stop the thread, and destroying Mavsdk while one is in flight leaves that thread blocked for
  ever (and the event loop's executor shutdown with it). ``Link.call`` therefore shields every
  request and ``Link.close`` drains them (MAVSDK's own timeouts bound them: commands ~2 s,
  mission transfer ~2.5 s per step, params ~3 s) before ``Mavsdk.destroy()``.
* Plugin objects must be kept alive: a new ``TelemetryAsync`` starts with an empty cache.
* Subscriptions are async generators; ``Collector`` runs them in a task and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from mavsdk.asyncio import Autopilot, ComponentType, Configuration, Mavsdk, Vehicle
from mavsdk.asyncio.plugins.action import ActionAsync, ActionResult
from mavsdk.asyncio.plugins.geofence import (
    Circle,
    FenceType,
    GeofenceAsync,
    GeofenceData,
    Point,
    Polygon,
)
from mavsdk.asyncio.plugins.mavlink_direct import MavlinkDirectAsync
from mavsdk.asyncio.plugins.mission_raw import MissionItem, MissionRawAsync
from mavsdk.asyncio.plugins.telemetry import FlightMode, LandedState, TelemetryAsync

pytestmark = [pytest.mark.mavsdk]

# Generous bounds: the sim runs at real time by default. Override for slow CI boxes.
DISCOVERY_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 15.0  # > MAVSDK's internal timeouts, so a timeout here means "hung"
TELEMETRY_TIMEOUT_S = 10.0
FLIGHT_TIMEOUT_S = float(os.environ.get("NESTSIM_MAVSDK_FLIGHT_TIMEOUT_S", "150"))
DRAIN_TIMEOUT_S = 20.0

# MAV_CMD / MAV_FRAME / MAV_MISSION_TYPE numbers used below
NAV_WAYPOINT, NAV_RETURN_TO_LAUNCH, NAV_LAND, NAV_TAKEOFF = 16, 20, 21, 22
NAV_FENCE_POLYGON_VERTEX_INCLUSION, NAV_FENCE_CIRCLE_EXCLUSION = 5001, 5004
NAV_FENCE_CIRCLE_INCLUSION, NAV_RALLY_POINT = 5003, 5100
FRAME_GLOBAL_INT, FRAME_GLOBAL_RELATIVE_ALT_INT = 5, 6
MISSION_TYPE_MISSION, MISSION_TYPE_FENCE, MISSION_TYPE_RALLY = 0, 1, 2

# PX4 custom mode names (as nestsim reports them) -> what MAVSDK's telemetry.flight_mode() shows.
# MAVSDK decodes HEARTBEAT.custom_mode as main_mode = (cm >> 16) & 0xFF, sub_mode = cm >> 24,
# and only when HEARTBEAT.base_mode has MAV_MODE_FLAG_CUSTOM_MODE_ENABLED (1).
PX4_MODE_TO_FLIGHT_MODE = {
    "MANUAL": FlightMode.MANUAL,
    "ALTCTL": FlightMode.ALTCTL,
    "POSCTL": FlightMode.POSCTL,
    "ACRO": FlightMode.ACRO,
    "OFFBOARD": FlightMode.OFFBOARD,
    "STABILIZED": FlightMode.STABILIZED,
    "RATTITUDE": FlightMode.RATTITUDE,
    "AUTO.READY": FlightMode.READY,
    "AUTO.TAKEOFF": FlightMode.TAKEOFF,
    "AUTO.LOITER": FlightMode.HOLD,
    "AUTO.MISSION": FlightMode.MISSION,
    "AUTO.RTL": FlightMode.RETURN_TO_LAUNCH,
    "AUTO.LAND": FlightMode.LAND,
    "AUTO.FOLLOW_TARGET": FlightMode.FOLLOW_ME,
}

EARTH_R = 6_371_000.0


# --------------------------------------------------------------------------- helpers


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_R)
    dlon = math.degrees(east_m / (EARTH_R * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def horiz_dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dn = math.radians(lat2 - lat1) * EARTH_R
    de = math.radians(lon2 - lon1) * EARTH_R * math.cos(math.radians(lat1))
    return math.hypot(dn, de)


def stored(veh: Any, mission_type: int) -> list[Any]:
    """Items the simulated vehicle holds for one mission type."""
    return list(veh.missions(mission_type))


def on_ground(veh: Any) -> bool:
    return bool(veh.is_landed)


_last_alt: dict[int, float] = {}


def hovering(veh: Any) -> bool:
    """In AUTO.LOITER above 1 m with altitude unchanged since the previous poll."""
    prev = _last_alt.get(id(veh))
    _last_alt[id(veh)] = veh.alt_rel_m
    return (
        veh.mode_name == "AUTO.LOITER"
        and veh.alt_rel_m > 1.0
        and prev is not None
        and abs(prev - veh.alt_rel_m) < 0.02
    )


def e7(deg: float) -> int:
    return round(deg * 1e7)


def same_float(a: float, b: float, tol: float = 1e-4) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


async def wait_until(
    pred: Callable[[], Any | Awaitable[Any]],
    limit_s: float,
    what: str,
    interval: float = 0.1,
) -> Any:
    """Poll ``pred`` (sync or async) until truthy; returns its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    last: Any = None
    while True:
        last = pred()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


class Collector:
    """Runs a MAVSDK async-generator subscription in a task and records what it yields."""

    def __init__(self, agen: AsyncIterator[Any], on_item: Callable[[Any], None] | None = None):
        self.items: list[Any] = []
        self._agen = agen
        self._on_item = on_item
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for x in self._agen:
            self.items.append(x)
            if self._on_item is not None:
                self._on_item(x)

    async def started(self) -> None:
        # The C subscription is made when the generator first runs (up to its queue.get()).
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await self._agen.aclose()  # type: ignore[attr-defined]


@dataclass
class Drone:
    index: int
    sysid: int
    system: Any
    tel: TelemetryAsync
    act: ActionAsync
    mr: MissionRawAsync
    gf: GeofenceAsync
    direct: MavlinkDirectAsync


@dataclass
class Link:
    """One Mavsdk instance (GCS, sysid 245 / compid 190) listening on every API port of a fleet."""

    mav: Mavsdk
    drones: list[Drone] = field(default_factory=list)
    _inflight: set[asyncio.Future[Any]] = field(default_factory=set)
    _collectors: list[Collector] = field(default_factory=list)

    async def call(self, aw: Awaitable[Any], limit_s: float = CALL_TIMEOUT_S) -> Any:
        """Await a MAVSDK request with a bound, without orphaning its worker thread."""
        fut = asyncio.ensure_future(aw)
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return await asyncio.wait_for(asyncio.shield(fut), limit_s)

    def collect(self, agen: AsyncIterator[Any], on_item: Callable[[Any], None] | None = None):
        c = Collector(agen, on_item)
        self._collectors.append(c)
        return c

    async def close(self) -> None:
        for c in self._collectors:
            await c.close()
        pending = set(self._inflight)
        if pending:
            done, still = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
            for f in done:
                if not f.cancelled():
                    f.exception()  # retrieve, so nothing is logged as "never retrieved"
            assert not still, f"{len(still)} MAVSDK request(s) still blocked at teardown"
        self.mav.destroy()


@contextlib.asynccontextmanager
async def mavsdk_link(fleet: Any) -> AsyncIterator[Link]:
    """Connect one MAVSDK to all vehicles of ``fleet`` and wait until every sysid is discovered."""
    link = Link(Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION)))
    try:
        ports = sorted({fleet.api_port(i) for i in range(fleet.n)})
        for port in ports:
            await link.call(link.mav.add_any_connection(f"udpin://127.0.0.1:{port}"))

        wanted = {i + 1 for i in range(fleet.n)}

        async def discovered() -> dict[int, Any] | None:
            found: dict[int, Any] = {}
            for s in await link.mav.get_systems():
                # has_autopilot() turns True on the first HEARTBEAT; is_connected() only ~1 s
                # later ("Discovered component"), so wait for both.
                if await s.has_autopilot() and await s.is_connected():
                    found[await s.get_system_id()] = s
            return found if wanted <= found.keys() else None

        by_sysid = await wait_until(discovered, DISCOVERY_TIMEOUT_S, f"sysids {sorted(wanted)}")
        for i in range(fleet.n):
            s = by_sysid[i + 1]
            link.drones.append(
                Drone(
                    index=i,
                    sysid=i + 1,
                    system=s,
                    tel=TelemetryAsync(s),
                    act=ActionAsync(s),
                    mr=MissionRawAsync(s),
                    gf=GeofenceAsync(s),
                    direct=MavlinkDirectAsync(s),
                )
            )
        yield link
    finally:
        await link.close()


async def wait_position(d: Drone) -> Any:
    async def ok():
        p = await d.tel.position()
        return p if not math.isnan(p.latitude_deg) else None

    return await wait_until(ok, TELEMETRY_TIMEOUT_S, f"position of sysid {d.sysid}")


async def wait_home(d: Drone) -> Any:
    """HOME_POSITION (MAVSDK asks for it with MAV_CMD_REQUEST_MESSAGE p1=242 every 2 s)."""

    async def ok():
        h = await d.tel.home()
        return h if not math.isnan(h.latitude_deg) and h.latitude_deg != 0 else None

    return await wait_until(ok, TELEMETRY_TIMEOUT_S, f"home position of sysid {d.sysid}")


async def wait_mode(d: Drone, mode: FlightMode, limit_s: float = TELEMETRY_TIMEOUT_S) -> None:
    async def ok():
        return await d.tel.flight_mode() == mode

    await wait_until(ok, limit_s, f"flight mode {mode.name} on sysid {d.sysid}")


async def ensure_landed_and_disarmed(link: Link, d: Drone, veh: Any) -> None:
    await wait_until(lambda: on_ground(veh), FLIGHT_TIMEOUT_S, f"sysid {d.sysid} landed")
    # PX4 auto-disarms shortly after landing (COM_DISARM_LAND); accept either, then make sure.
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: not veh.armed, 5.0, "auto-disarm")
    if veh.armed:
        await link.call(d.act.disarm())
    await wait_until(lambda: not veh.armed, 5.0, f"sysid {d.sysid} disarmed (sim)")

    async def tel_disarmed():
        return not await d.tel.armed() and not await d.tel.in_air()

    await wait_until(tel_disarmed, TELEMETRY_TIMEOUT_S, "telemetry armed=False, in_air=False")


def mission_for(fleet: Any, idx: int) -> list[MissionItem]:
    """Takeoff, two waypoints ~30 m apart, land. Shifted east per vehicle so missions differ."""
    lat0, lon0, _ = fleet.home
    lat0, lon0 = offset(lat0, lon0, 0.0, 15.0 * idx)
    wp1 = offset(lat0, lon0, 30.0, 0.0)
    wp2 = offset(lat0, lon0, 30.0, 25.0)
    nan = float("nan")
    spec = [
        (NAV_TAKEOFF, (lat0, lon0), 10.0, (0.0, 0.0, 0.0, nan)),
        (NAV_WAYPOINT, wp1, 12.0 + idx, (0.0, 2.0, 0.0, nan)),
        (NAV_WAYPOINT, wp2, 12.0 + idx, (0.0, 2.0, 0.0, nan)),
        (NAV_LAND, wp2, 0.0, (0.0, 0.0, 0.0, nan)),
    ]
    return [
        MissionItem(
            seq=seq,
            frame=FRAME_GLOBAL_RELATIVE_ALT_INT,
            command=cmd,
            current=1 if seq == 0 else 0,  # MAVSDK rejects uploads without exactly one current
            autocontinue=1,
            param1=p[0],
            param2=p[1],
            param3=p[2],
            param4=p[3],
            x=e7(pos[0]),
            y=e7(pos[1]),
            z=alt,
            mission_type=MISSION_TYPE_MISSION,
        )
        for seq, (cmd, pos, alt, p) in enumerate(spec)
    ]


def assert_items_match(sent: list[MissionItem], stored: list[Any], who: str) -> None:
    assert len(stored) == len(sent), f"{who}: {len(stored)} items stored, {len(sent)} sent"
    for a, b in zip(sent, stored, strict=False):
        assert (b.seq, b.command, b.x, b.y) == (a.seq, a.command, a.x, a.y), who
        assert same_float(float(b.z), a.z, 1e-3), f"{who}: seq {a.seq} z {b.z} != {a.z}"


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("px4_fleet", [1, 3], indirect=True)
async def test_connect_and_discover(px4_fleet):
    async with asyncio.timeout(60), mavsdk_link(px4_fleet) as link:
        assert [d.sysid for d in link.drones] == list(range(1, px4_fleet.n + 1))
        for d in link.drones:
            assert await d.system.is_connected()
            # HEARTBEAT: autopilot=MAV_AUTOPILOT_PX4 (12), type=MAV_TYPE_QUADROTOR (2), compid 1
            assert await d.system.autopilot_type() == Autopilot.PX4
            assert await d.system.vehicle_type() == Vehicle.MULTICOPTER
            assert 1 in await link.call(d.system.component_ids())


@pytest.mark.parametrize("px4_fleet", [1, 3], indirect=True)
async def test_telemetry_matches_sim(px4_fleet):
    fleet = px4_fleet
    home_lat, home_lon, home_alt = fleet.home
    async with asyncio.timeout(60), mavsdk_link(fleet) as link:
        for d in link.drones:
            veh = fleet.vehicle(d.index)
            pos = await wait_position(d)  # GLOBAL_POSITION_INT
            assert pos.latitude_deg == pytest.approx(veh.lat_deg, abs=2e-6)
            assert pos.longitude_deg == pytest.approx(veh.lon_deg, abs=2e-6)
            # Vehicles of a fleet may stand a few metres apart around fleet.home.
            assert horiz_dist_m(pos.latitude_deg, pos.longitude_deg, home_lat, home_lon) < 50.0
            assert pos.relative_altitude_m == pytest.approx(veh.alt_rel_m, abs=0.5)
            assert pos.absolute_altitude_m == pytest.approx(home_alt + veh.alt_rel_m, abs=1.0)

            home = await wait_home(d)
            # On the ground before any flight, home is where the vehicle stands.
            assert home.latitude_deg == pytest.approx(veh.lat_deg, abs=2e-6)
            assert home.longitude_deg == pytest.approx(veh.lon_deg, abs=2e-6)
            assert home.absolute_altitude_m == pytest.approx(home_alt, abs=1.0)

            # BATTERY_STATUS.battery_remaining (or SYS_STATUS until one arrives) -> percent 0..100
            async def battery_ok(d=d):
                b = await d.tel.battery()
                return b if not math.isnan(b.remaining_percent) else None

            bat = await wait_until(battery_ok, TELEMETRY_TIMEOUT_S, "battery")
            assert bat.remaining_percent == pytest.approx(veh.battery_remaining_pct, abs=1.5)
            assert 1.0 < bat.remaining_percent <= 100.0, "remaining_percent must be percent"
            assert bat.voltage_v > 0

            # HEARTBEAT.base_mode/custom_mode
            expected_mode = PX4_MODE_TO_FLIGHT_MODE[veh.mode_name]
            await wait_mode(d, expected_mode)
            assert await d.tel.armed() is False
            assert veh.armed is False

            # EXTENDED_SYS_STATE.landed_state
            async def landed_known(d=d):
                return await d.tel.landed_state() == LandedState.ON_GROUND

            await wait_until(landed_known, TELEMETRY_TIMEOUT_S, "landed_state ON_GROUND")
            assert await d.tel.in_air() is False
            assert on_ground(veh)

            # SYS_STATUS sensor bits (present & health) + HOME_POSITION
            async def healthy(d=d):
                h = await d.tel.health()
                return h if (h.is_global_position_ok and h.is_home_position_ok) else None

            h = await wait_until(healthy, TELEMETRY_TIMEOUT_S, "health global+home ok")
            assert h.is_local_position_ok
            assert h.is_gyrometer_calibration_ok
            assert h.is_accelerometer_calibration_ok
            assert h.is_magnetometer_calibration_ok
            assert h.is_armable  # SYS_STATUS health bit MAV_SYS_STATUS_PREARM_CHECK


@pytest.mark.parametrize("px4_fleet", [1, 3], indirect=True)
async def test_mission_raw_upload_download_clear(px4_fleet):
    fleet = px4_fleet
    async with asyncio.timeout(90), mavsdk_link(fleet) as link:
        missions = {d.sysid: mission_for(fleet, d.index) for d in link.drones}
        await asyncio.gather(
            *(link.call(d.mr.upload_mission(missions[d.sysid])) for d in link.drones)
        )
        for d in link.drones:
            sent = missions[d.sysid]
            assert_items_match(
                sent, stored(fleet.vehicle(d.index), MISSION_TYPE_MISSION), f"sim {d.sysid}"
            )
            got = await link.call(d.mr.download_mission())
            assert_items_match(sent, got, f"download {d.sysid}")
            for a, b in zip(sent, got, strict=False):
                assert b.frame == a.frame
                assert b.mission_type == MISSION_TYPE_MISSION
                assert b.autocontinue == a.autocontinue
                for pa, pb in ((a.param1, b.param1), (a.param2, b.param2), (a.param4, b.param4)):
                    assert same_float(pb, pa), f"param mismatch seq {a.seq}: {pb} != {pa}"
            # MAVSDK's own progress total comes from the items it uploaded/downloaded.
            prog = await d.mr.mission_progress()
            assert prog.total == len(sent)

        for d in link.drones:
            await link.call(d.mr.clear_mission())  # MISSION_CLEAR_ALL -> MISSION_ACK
            assert stored(fleet.vehicle(d.index), MISSION_TYPE_MISSION) == []
            assert await link.call(d.mr.download_mission()) == []


async def test_mission_raw_rally_points(px4_fleet):
    fleet = px4_fleet
    lat, lon, _ = fleet.home
    r1, r2 = offset(lat, lon, 50, 0), offset(lat, lon, 0, 50)
    items = [
        MissionItem(
            seq=i,
            frame=FRAME_GLOBAL_RELATIVE_ALT_INT,
            command=NAV_RALLY_POINT,
            current=1 if i == 0 else 0,
            autocontinue=0,
            param1=0.0,
            param2=0.0,
            param3=0.0,
            param4=0.0,
            x=e7(p[0]),
            y=e7(p[1]),
            z=20.0,
            mission_type=MISSION_TYPE_RALLY,
        )
        for i, p in enumerate((r1, r2))
    ]
    async with asyncio.timeout(60), mavsdk_link(fleet) as link:
        d = link.drones[0]
        await link.call(d.mr.upload_rally_points(items))
        assert_items_match(items, stored(fleet.vehicle(0), MISSION_TYPE_RALLY), "sim rally")
        assert_items_match(items, await link.call(d.mr.download_rallypoints()), "download rally")
        # The main mission must be untouched by a rally upload.
        assert stored(fleet.vehicle(0), MISSION_TYPE_MISSION) == []


async def test_geofence_upload_read_back(px4_fleet):
    fleet = px4_fleet
    lat, lon, _ = fleet.home
    corners = [
        offset(lat, lon, n, e) for n, e in ((-200, -200), (200, -200), (200, 200), (-200, 200))
    ]
    keep_out = offset(lat, lon, 100, 100)
    data = GeofenceData(
        polygons=[Polygon([Point(a, b) for a, b in corners], FenceType.INCLUSION)],
        circles=[Circle(Point(*keep_out), 30.0, FenceType.EXCLUSION)],
    )
    async with asyncio.timeout(60), mavsdk_link(fleet) as link:
        d = link.drones[0]
        await link.call(d.gf.upload_geofence(data))  # mission_type 1 transfer
        fence = stored(fleet.vehicle(0), MISSION_TYPE_FENCE)
        assert [it.command for it in fence] == [NAV_FENCE_POLYGON_VERTEX_INCLUSION] * 4 + [
            NAV_FENCE_CIRCLE_EXCLUSION
        ]
        assert [it.seq for it in fence] == list(range(5))
        assert [(it.x, it.y) for it in fence[:4]] == [(e7(a), e7(b)) for a, b in corners]
        assert (fence[4].x, fence[4].y) == (e7(keep_out[0]), e7(keep_out[1]))
        # Mission must be untouched by a fence upload.
        assert stored(fleet.vehicle(0), MISSION_TYPE_MISSION) == []

        raw = await link.call(d.mr.download_geofence())
        assert [it.command for it in raw] == [it.command for it in fence]
        assert all(it.mission_type == MISSION_TYPE_FENCE for it in raw)
        assert [it.param1 for it in raw[:4]] == [4.0] * 4  # vertex count of the polygon
        assert raw[4].param1 == pytest.approx(30.0)  # circle radius

        back = await link.call(d.gf.download_geofence())
        assert len(back.polygons) == 1
        assert len(back.circles) == 1
        assert back.polygons[0].fence_type == FenceType.INCLUSION
        assert back.circles[0].fence_type == FenceType.EXCLUSION
        assert back.circles[0].radius == pytest.approx(30.0)

        # Raw fence upload through mission_raw (items must carry mission_type=1).
        circle_in = MissionItem(
            seq=0,
            frame=FRAME_GLOBAL_INT,
            command=NAV_FENCE_CIRCLE_INCLUSION,
            current=1,
            autocontinue=0,
            param1=500.0,
            param2=0.0,
            param3=0.0,
            param4=0.0,
            x=e7(lat),
            y=e7(lon),
            z=0.0,
            mission_type=MISSION_TYPE_FENCE,
        )
        await link.call(d.mr.upload_geofence([circle_in]))
        fence = stored(fleet.vehicle(0), MISSION_TYPE_FENCE)
        assert [(it.command, it.x, it.y) for it in fence] == [
            (NAV_FENCE_CIRCLE_INCLUSION, e7(lat), e7(lon))
        ]


async def test_param_takeoff_altitude(px4_fleet):
    """action.get/set_takeoff_altitude go through PARAM_REQUEST_READ / PARAM_SET of
    MIS_TAKEOFF_ALT (PX4); PARAM_SET must be answered with the echoed PARAM_VALUE."""
    async with asyncio.timeout(60), mavsdk_link(px4_fleet) as link:
        d = link.drones[0]
        alt = await link.call(d.act.get_takeoff_altitude())
        assert 0.5 < alt < 100
        await link.call(d.act.set_takeoff_altitude(7.5))
        assert await link.call(d.act.get_takeoff_altitude()) == pytest.approx(7.5)


@pytest.mark.slow
@pytest.mark.timeout(FLIGHT_TIMEOUT_S * 3)
async def test_action_arm_takeoff_goto_rtl(px4_fleet):
    fleet = px4_fleet
    veh = fleet.vehicle(0)
    async with asyncio.timeout(FLIGHT_TIMEOUT_S * 3 - 10), mavsdk_link(fleet) as link:
        d = link.drones[0]
        await wait_position(d)
        home = await wait_home(d)  # RTL returns to the vehicle's own HOME_POSITION

        assert await link.call(d.act.arm()) == ActionResult.SUCCESS  # COMMAND_LONG 400 p1=1
        await wait_until(lambda: veh.armed, 5.0, "sim armed")

        async def tel_armed():
            return await d.tel.armed()

        await wait_until(tel_armed, 5.0, "telemetry armed (HEARTBEAT SAFETY_ARMED)")

        await link.call(d.act.takeoff())  # COMMAND_LONG 22, all params NaN
        await wait_until(lambda: veh.alt_rel_m > 1.0, FLIGHT_TIMEOUT_S, "climb above 1 m")

        async def tel_in_air():
            return await d.tel.in_air()

        await wait_until(tel_in_air, TELEMETRY_TIMEOUT_S, "telemetry in_air")
        # PX4: AUTO.TAKEOFF, then AUTO.LOITER once the takeoff altitude is reached. The sim may
        # already have been in AUTO.LOITER before, so also wait for the climb to stop.
        await wait_until(
            lambda: hovering(veh), FLIGHT_TIMEOUT_S, "takeoff finished (AUTO.LOITER, steady alt)"
        )
        await wait_mode(d, FlightMode.HOLD)

        # goto_location -> COMMAND_INT 192 DO_REPOSITION, frame GLOBAL (AMSL z), p2=1, p4=yaw rad
        tgt_lat, tgt_lon = offset(home.latitude_deg, home.longitude_deg, 40.0, 0.0)
        tgt_rel = 15.0
        await link.call(
            d.act.goto_location(tgt_lat, tgt_lon, home.absolute_altitude_m + tgt_rel, float("nan"))
        )

        def at_target() -> bool:
            return (
                horiz_dist_m(veh.lat_deg, veh.lon_deg, tgt_lat, tgt_lon) < 3.0
                and abs(veh.alt_rel_m - tgt_rel) < 1.5
            )

        await wait_until(at_target, FLIGHT_TIMEOUT_S, "sim at goto target")

        async def tel_at_target():  # telemetry lags the sim by up to one GLOBAL_POSITION_INT
            p = await d.tel.position()
            return (
                horiz_dist_m(p.latitude_deg, p.longitude_deg, tgt_lat, tgt_lon) < 5.0
                and abs(p.relative_altitude_m - tgt_rel) < 2.0
            )

        await wait_until(tel_at_target, TELEMETRY_TIMEOUT_S, "telemetry position at target")
        assert await d.tel.flight_mode() == FlightMode.HOLD
        assert veh.mode_name == "AUTO.LOITER"

        await link.call(d.act.return_to_launch())  # DO_SET_MODE p1=1 p2=4 (AUTO) p3=5 (RTL)
        await wait_mode(d, FlightMode.RETURN_TO_LAUNCH)
        assert veh.mode_name == "AUTO.RTL"
        await ensure_landed_and_disarmed(link, d, veh)
        assert horiz_dist_m(veh.lat_deg, veh.lon_deg, home.latitude_deg, home.longitude_deg) < 5.0
        assert veh.alt_rel_m == pytest.approx(0.0, abs=0.5)


@pytest.mark.slow
@pytest.mark.timeout(FLIGHT_TIMEOUT_S * 2)
async def test_action_takeoff_land_disarm(px4_fleet):
    fleet = px4_fleet
    veh = fleet.vehicle(0)
    async with asyncio.timeout(FLIGHT_TIMEOUT_S * 2 - 10), mavsdk_link(fleet) as link:
        d = link.drones[0]
        await wait_position(d)
        await link.call(d.act.arm())
        await link.call(d.act.takeoff())
        await wait_until(lambda: veh.alt_rel_m > 1.0, FLIGHT_TIMEOUT_S, "climb above 1 m")
        await link.call(d.act.land())  # COMMAND_LONG 21
        await wait_mode(d, FlightMode.LAND)
        assert veh.mode_name == "AUTO.LAND"
        await ensure_landed_and_disarmed(link, d, veh)


@pytest.mark.parametrize("px4_fleet", [3], indirect=True)
async def test_commands_reach_only_the_addressed_vehicle(px4_fleet):
    """MAVSDK sends each command to every remote on a UDP link (one port shared by several
    vehicles gets all of them): vehicles must ignore target_system != own sysid."""
    fleet = px4_fleet
    async with asyncio.timeout(60), mavsdk_link(fleet) as link:
        for d in link.drones:
            await wait_position(d)
        d2 = link.drones[1]
        await link.call(d2.act.arm())
        await wait_until(lambda: fleet.vehicle(1).armed, 5.0, "sysid 2 armed")
        await asyncio.sleep(1.0)
        assert not fleet.vehicle(0).armed
        assert not fleet.vehicle(2).armed
        await link.call(d2.act.disarm())
        await wait_until(lambda: not fleet.vehicle(1).armed, 5.0, "sysid 2 disarmed")

        items = mission_for(fleet, 1)
        await link.call(d2.mr.upload_mission(items))
        assert stored(fleet.vehicle(0), MISSION_TYPE_MISSION) == []
        assert stored(fleet.vehicle(2), MISSION_TYPE_MISSION) == []
        assert_items_match(items, stored(fleet.vehicle(1), MISSION_TYPE_MISSION), "sim 2")


async def _fly_mission(link: Link, fleet: Any, d: Drone) -> None:
    veh = fleet.vehicle(d.index)
    items = mission_for(fleet, d.index)
    n = len(items)
    await wait_position(d)
    await link.call(d.mr.upload_mission(items))
    assert_items_match(items, stored(veh, MISSION_TYPE_MISSION), f"sim {d.sysid}")

    finished = asyncio.Event()
    reached_seqs: list[int] = []
    all_reached = asyncio.Event()

    def on_progress(p: Any) -> None:
        if p.total == n and p.current == n:
            finished.set()

    def on_reached(msg: Any) -> None:
        if msg.system_id != d.sysid:
            return
        reached_seqs.append(int(json.loads(msg.fields_json)["seq"]))
        if set(range(n)) <= set(reached_seqs):
            all_reached.set()

    progress = link.collect(d.mr.subscribe_mission_progress(), on_progress)
    reached = link.collect(d.direct.subscribe_message("MISSION_ITEM_REACHED"), on_reached)
    await progress.started()
    await reached.started()

    await link.call(d.act.arm())
    await link.call(d.mr.start_mission())  # DO_SET_MODE p1=1 p2=4 (AUTO) p3=4 (MISSION)

    async def mission_mode_seen():
        return all_reached.is_set() or await d.tel.flight_mode() == FlightMode.MISSION

    await wait_until(mission_mode_seen, TELEMETRY_TIMEOUT_S, f"MISSION mode on {d.sysid}")

    await asyncio.wait_for(all_reached.wait(), FLIGHT_TIMEOUT_S)
    await asyncio.wait_for(finished.wait(), TELEMETRY_TIMEOUT_S)
    assert sorted(set(reached_seqs)) == list(range(n))
    assert reached_seqs == sorted(reached_seqs), f"items reached out of order: {reached_seqs}"
    currents = [p.current for p in progress.items]
    assert currents == sorted(currents), f"mission progress went backwards: {currents}"
    assert await d.mr.is_mission_finished()

    # Last item is NAV_LAND at wp2.
    await ensure_landed_and_disarmed(link, d, veh)
    assert horiz_dist_m(veh.lat_deg, veh.lon_deg, items[-1].x / 1e7, items[-1].y / 1e7) < 5.0
    # MAVSDK ignores MISSION_CURRENT.seq == last reached seq, so progress must stay complete
    # as long as the sim keeps reporting the last seq (PX4 does) after the mission ended.
    await asyncio.sleep(2.0)
    prog = await d.mr.mission_progress()
    assert (prog.current, prog.total) == (n, n)
    # Nothing of another vehicle's mission may have leaked into this one.
    assert_items_match(items, stored(veh, MISSION_TYPE_MISSION), f"sim {d.sysid} after flight")


@pytest.mark.slow
@pytest.mark.timeout(FLIGHT_TIMEOUT_S * 3)
@pytest.mark.parametrize("px4_fleet", [1, 3], indirect=True)
async def test_mission_flown_to_completion(px4_fleet):
    async with asyncio.timeout(FLIGHT_TIMEOUT_S * 3 - 10), mavsdk_link(px4_fleet) as link:
        await asyncio.gather(*(_fly_mission(link, px4_fleet, d) for d in link.drones))
