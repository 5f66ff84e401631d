"""A fleet of simulated vehicles in one asyncio loop, with PX4's ports and fault controls."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from types import TracebackType

from nestsim.flavour import FLAVOURS
from nestsim.geo import LocalFrame
from nestsim.link import LinkKind, SimLink
from nestsim.physics import Airframe
from nestsim.vehicle import SimVehicle, VehicleConfig

# A store's nest in a Dallas-Fort Worth suburb (Frisco, TX), ground at ~200 m AMSL.
DEFAULT_HOME = (33.1507, -96.8236, 200.0)


class FleetError(Exception):
    """A fleet control request that can't be carried out."""


@dataclass(slots=True)
class FleetConfig:
    """How to start a simulated fleet. Ports follow PX4 SITL: vehicle i uses 14540+i etc."""

    vehicles: int = 3
    autopilot: str = "px4"
    home: tuple[float, float, float] = DEFAULT_HOME
    pad_spacing_m: float = 6.0
    pads: list[tuple[float, float]] | None = None  # (lat, lon) per vehicle, instead of a row
    host: str = "127.0.0.1"
    api_remote_base: int = 14540  # vehicle i sends its API link to host:api_remote_base+i
    api_local_base: int = 14580  # ... from this local port (0: any free port)
    api_remote_ports: list[int] | None = None  # explicit per-vehicle ports, overriding the base
    gcs_remote_port: int = 14550  # every vehicle's GCS link goes to this one port
    gcs_local_base: int = 18570
    gcs_link: bool = True
    speed: float = 1.0  # simulated seconds per wall-clock second
    tick_hz: float = 50.0
    max_step_s: float = 0.05  # physics sub-step, in simulated seconds
    ekf_ready_s: float | None = None
    battery_soc: float = 1.0
    payload_kg: float = 0.0
    reload_payload: bool = False  # the nest loads a new parcel of payload_kg onto a landed drone
    airframe: Airframe = field(default_factory=Airframe)
    signing_keys: dict[int, bytes] = field(default_factory=dict)  # sysid -> 32-byte key
    seed: int = 1

    def __post_init__(self) -> None:
        if self.autopilot not in FLAVOURS:
            raise FleetError(f"unknown autopilot {self.autopilot!r}: use one of {sorted(FLAVOURS)}")
        if not 1 <= self.vehicles <= 254:
            raise FleetError("vehicles must be between 1 and 254 (MAVLink system ids are 8 bit)")
        if self.api_remote_ports is not None and len(self.api_remote_ports) != self.vehicles:
            raise FleetError("api_remote_ports needs exactly one port per vehicle")
        if self.pads is not None and (
            len(self.pads) != self.vehicles
            or not all(-90 <= la <= 90 and -180 <= lo <= 180 for la, lo in self.pads)
        ):
            raise FleetError("pads needs one valid (lat, lon) per vehicle")
        if not self.speed > 0 or not math.isfinite(self.speed):
            raise FleetError("speed must be a positive number")
        lat, lon, _ = self.home
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise FleetError(f"home {self.home} is not a valid lat, lon, alt")


class SimClock:
    """Simulated time runs `speed` times faster than the wall clock, from the Unix time at start."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._wall0 = time.monotonic()
        self._sim0 = time.time()

    def wall(self) -> float:
        return time.monotonic()

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self.speed

    def both(self) -> tuple[float, float]:
        w = time.monotonic()
        return self._sim0 + (w - self._wall0) * self.speed, w


class Fleet:
    """N vehicles, each with an API link and (optionally) a GCS link, run by one task.

    Use as `async with Fleet(FleetConfig(...)) as fleet:`; the control methods inject faults.
    """

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.clock = SimClock(config.speed)
        lat, lon, alt = config.home
        self.frame = LocalFrame(lat, lon)
        self.flavour = FLAVOURS[config.autopilot]
        self.vehicles: list[SimVehicle] = []
        self.links: list[SimLink] = []
        self._rng = random.Random(config.seed)
        self._task: asyncio.Task[None] | None = None
        self._restore_handles: dict[tuple[int, str], asyncio.TimerHandle] = {}
        now = self.clock.now()
        for i in range(config.vehicles):
            # Pads in a row going east from the nest, as in a parking-lot nest.
            if config.pads is not None:
                plat, plon = config.pads[i]
            else:
                plat, plon = self.frame.to_latlon(i * config.pad_spacing_m, 0.0)
            vc = VehicleConfig(
                sysid=i + 1,
                flavour=self.flavour,
                home_lat_deg=plat,
                home_lon_deg=plon,
                home_alt_amsl_m=alt,
                airframe=config.airframe,
                payload_kg=config.payload_kg,
                battery_soc=config.battery_soc,
                ekf_ready_s=config.ekf_ready_s,
                seed=config.seed,
            )
            v = SimVehicle(vc, self.frame, now)
            v.on_reboot = self._reset_streams_of(v)
            self.vehicles.append(v)

    @property
    def n(self) -> int:
        return len(self.vehicles)

    @property
    def home(self) -> tuple[float, float, float]:
        return self.config.home

    def vehicle(self, index: int) -> SimVehicle:
        if not 0 <= index < len(self.vehicles):
            raise FleetError(f"no vehicle {index}: the fleet has {len(self.vehicles)}")
        return self.vehicles[index]

    def api_port(self, index: int) -> int:
        """The UDP port vehicle `index` sends its API link to (where a client listens)."""
        self.vehicle(index)
        if self.config.api_remote_ports is not None:
            return self.config.api_remote_ports[index]
        return self.config.api_remote_base + index

    def link(self, index: int, kind: LinkKind) -> SimLink:
        for link in self.vehicle(index).links:
            if link.kind is kind:
                return link
        raise FleetError(f"vehicle {index} has no {kind.value} link")

    def _reset_streams_of(self, v: SimVehicle):  # type: ignore[no-untyped-def]
        def reset() -> None:
            for link in v.links:
                link.reset_streams()

        return reset

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            for i, v in enumerate(self.vehicles):
                specs = [(LinkKind.API, cfg.api_local_base, self.api_port(i))]
                if cfg.gcs_link:
                    specs.append((LinkKind.GCS, cfg.gcs_local_base, cfg.gcs_remote_port))
                for kind, local_base, remote_port in specs:
                    link = SimLink(
                        v,
                        kind,
                        (cfg.host, remote_port),
                        self.clock.both,
                        random.Random(self._rng.random()),
                    )
                    local = (cfg.host, local_base + i if local_base else 0)
                    await loop.create_datagram_endpoint(lambda link=link: link, local_addr=local)
                    v.links.append(link)
                    self.links.append(link)
        except OSError as exc:
            await self.stop()
            raise FleetError(f"can't open the simulator's UDP ports: {exc}") from exc
        for v in self.vehicles:
            if v.sysid in cfg.signing_keys:
                v.set_signing_key(cfg.signing_keys[v.sysid])
        self._task = asyncio.create_task(self._run(), name="nestsim-fleet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for h in self._restore_handles.values():
            h.cancel()
        self._restore_handles.clear()
        for link in self.links:
            if link.transport is not None:
                link.transport.close()
        self.links.clear()
        for v in self.vehicles:
            v.links.clear()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        tick = 1.0 / self.config.tick_hz
        last_sim, next_wall = self.clock.both()
        while True:
            next_wall += tick
            now_s, wall_s = self.clock.both()
            self.step(last_sim, now_s, wall_s)
            last_sim = now_s
            delay = next_wall - self.clock.wall()
            if delay < -tick:
                next_wall = self.clock.wall()  # fell behind: don't try to catch up in a burst
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))

    def step(self, last_sim: float, now_s: float, wall_s: float) -> None:
        """Advance every vehicle from `last_sim` to `now_s` and send what is due."""
        dt = now_s - last_sim
        steps = max(1, math.ceil(dt / self.config.max_step_s))
        sub = dt / steps
        for v in self.vehicles:
            t = last_sim
            for _ in range(steps):
                t += sub
                v.step(t, sub)
            if self.config.reload_payload and v.payload_kg <= 0 and not v.armed and not v.in_air:
                v.payload_kg = self.config.payload_kg
            if v.mission_link is not None:
                for msg in v.mission.on_timer(wall_s):
                    v.mission_link.send(msg)
            if v.links:
                v.links[0].flush_outbox()
            for link in v.links:
                link.tick(now_s, wall_s)

    # -- fault injection and control ------------------------------------------------------

    def _links(self, index: int, which: str) -> list[SimLink]:
        v = self.vehicle(index)
        if which == "all":
            return list(v.links)
        try:
            kind = LinkKind(which)
        except ValueError:
            raise FleetError(f"unknown link {which!r}: use all, api or gcs") from None
        return [link for link in v.links if link.kind is kind]

    def cut_link(self, index: int, duration_s: float | None = None, which: str = "all") -> None:
        """Silence a vehicle's link(s) both ways; restore after `duration_s` wall seconds."""
        for link in self._links(index, which):
            link.faults.cut = True
        key = (index, which)
        if key in self._restore_handles:
            self._restore_handles.pop(key).cancel()
        if duration_s is not None:
            loop = asyncio.get_running_loop()
            self._restore_handles[key] = loop.call_later(
                duration_s, self.restore_link, index, which
            )

    def restore_link(self, index: int, which: str = "all") -> None:
        for link in self._links(index, which):
            link.faults.cut = False
        self._restore_handles.pop((index, which), None)

    def set_loss(self, index: int, loss: float, which: str = "all") -> None:
        if not 0.0 <= loss <= 1.0:
            raise FleetError("loss must be between 0 and 1")
        for link in self._links(index, which):
            link.faults.loss = loss

    def set_latency(self, index: int, latency_s: float, which: str = "all") -> None:
        if not 0.0 <= latency_s <= 10.0:
            raise FleetError("latency must be between 0 and 10 s")
        for link in self._links(index, which):
            link.faults.latency_s = latency_s

    def set_gps(self, index: int, ok: bool) -> None:
        self.vehicle(index).set_gps(ok)

    def set_wind(
        self, east_mps: float, north_mps: float, gust_mps: float = 0.0, index: int | None = None
    ) -> None:
        for x in (east_mps, north_mps, gust_mps):
            if not math.isfinite(x) or abs(x) > 60:
                raise FleetError("wind components must be finite and within 60 m/s")
        targets = self.vehicles if index is None else [self.vehicle(index)]
        for v in targets:
            v.set_wind(east_mps, north_mps, gust_mps)

    def set_battery(self, index: int, percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise FleetError("battery percent must be between 0 and 100")
        self.vehicle(index).set_battery_soc(percent / 100.0)

    def load_parcel(self, index: int, kg: float) -> None:
        """The nest's loader hooks a parcel onto a drone standing on its pad."""
        if not 0.0 <= kg <= 25.0:
            raise FleetError("parcel mass must be between 0 and 25 kg")
        v = self.vehicle(index)
        if v.armed or v.in_air:
            raise FleetError("parcels are loaded only onto a disarmed drone on the ground")
        v.payload_kg = kg

    def statustext(self, index: int, severity: int, text: str) -> None:
        if not 0 <= severity <= 7:
            raise FleetError("severity must be a MAV_SEVERITY between 0 and 7")
        v = self.vehicle(index)
        v.say(severity, text)
        if v.links:
            v.links[0].flush_outbox()

    def status(self) -> list[dict[str, object]]:
        """A JSON-friendly summary of every vehicle."""
        out: list[dict[str, object]] = []
        for i, v in enumerate(self.vehicles):
            out.append(
                {
                    "index": i,
                    "sysid": v.sysid,
                    "mode": v.mode_name,
                    "armed": v.armed,
                    "landed_state": v.landed.name,
                    "lat_deg": round(v.lat_deg, 7),
                    "lon_deg": round(v.lon_deg, 7),
                    "alt_rel_m": round(v.alt_rel_m, 2),
                    "groundspeed_mps": round(math.hypot(v.ve, v.vn), 2),
                    "battery_pct": round(v.battery_remaining_pct, 1),
                    "payload_kg": v.payload_kg,
                    "mission_seq": v.mission_seq,
                    "gps_ok": v.gps_ok,
                    "link_cut": any(link.faults.cut for link in v.links),
                }
            )
        return out
