"""The fleet link: one asyncio component that reaches every vehicle over every endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.codec import Decoder, Encoder, Message
from nestd.mavlink.config import EndpointConfig, LinkConfig
from nestd.mavlink.health import LinkEvent, LinkHealth
from nestd.mavlink.profiles import FirmwareProfile, load_profiles, profile_for
from nestd.mavlink.signing import SignatureChecker, Verdict, load_key, sign_outgoing
from nestd.mavlink.transport import Endpoint, SerialEndpoint, UdpEndpoint
from nestd.mavlink.vehicle import Vehicle

log = structlog.get_logger("nestd.mavlink")

ADDRESS_KEY_BASE = 1000

# Component types that are never a vehicle's autopilot, whatever sysid they use.
_NOT_AUTOPILOT_TYPES = frozenset(
    {
        mav.MAV_TYPE_GCS,
        mav.MAV_TYPE_ONBOARD_CONTROLLER,
        mav.MAV_TYPE_GIMBAL,
        mav.MAV_TYPE_ADSB,
        mav.MAV_TYPE_CAMERA,
        mav.MAV_TYPE_CHARGING_STATION,
        mav.MAV_TYPE_FLARM,
        mav.MAV_TYPE_SERVO,
    }
)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the link tells its listeners: a vehicle appeared, a link event, a state event."""

    vehicle: int  # the key in FleetLink.vehicles (the system id, unless identified by address)
    kind: str
    detail: Any = None


Listener = Callable[[Notice], None]


class FleetLink:
    """Opens the configured endpoints, discovers vehicles, routes their messages to `Vehicle`s.

    Run it with `async with FleetLink(config) as link:` (or `await link.start()` / `stop()`);
    `link.vehicles` maps system id to a `Vehicle`, whose methods talk to that drone.
    """

    def __init__(
        self,
        config: LinkConfig,
        profiles: dict[str, FirmwareProfile] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.profiles = profiles if profiles is not None else load_profiles(config.profiles_dir)
        self.clock = clock
        self.wall_clock = wall_clock
        # Keyed by system id, or for `identify_by = "address"` endpoints by a fleet key from
        # ADDRESS_KEY_BASE up (Vehicle.key); Vehicle.sysid is always the MAVLink id.
        self.vehicles: dict[int, Vehicle] = {}
        self._by_address: dict[tuple[str, Any, int], int] = {}
        self._unprofiled: set[tuple[int, int]] = set()
        self.endpoints: dict[str, Endpoint] = {}
        self._endpoint_configs = {e.name: e for e in config.endpoints}
        self._decoders: dict[tuple[str, Any], Decoder] = {}
        self._listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._signing = {v.sysid: v.signing for v in config.vehicles if v.signing is not None}
        self._checkers: dict[int, SignatureChecker] = {}
        self._keys: dict[int, bytes] = {}
        for sysid, sc in self._signing.items():
            key = load_key(sc.key_file)
            self._keys[sysid] = key
            self._checkers[sysid] = SignatureChecker(key, required=sc.required)
        self.counters: dict[str, int] = {
            "messages": 0,
            "bad_frames": 0,
            "unknown_ids": 0,
            "unknown_source": 0,
            "spoofed_sysid": 0,
            "own_echo": 0,
            "signature_rejected": 0,
        }
        self._vehicle_added = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for ec in self.config.endpoints:
                ep = self._make_endpoint(ec)
                await ep.open()
                self.endpoints[ec.name] = ep
        except Exception:
            self.close_endpoints()
            raise
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="mavlink-heartbeat"))
        self._tasks.append(asyncio.create_task(self._reopen_loop(), name="mavlink-reopen"))
        self._tasks.append(asyncio.create_task(self._health_loop(), name="mavlink-health"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        for v in self.vehicles.values():
            await v.close()
        self.close_endpoints()

    def close_endpoints(self) -> None:
        for ep in self.endpoints.values():
            ep.close()
        self.endpoints.clear()

    async def __aenter__(self) -> FleetLink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _make_endpoint(self, ec: EndpointConfig) -> Endpoint:
        if ec.kind == "serial":
            assert ec.device is not None
            return SerialEndpoint(ec.name, self._receive, ec.device, ec.baud)
        assert ec.port is not None
        mode = "listen" if ec.kind == "udp_listen" else "connect"
        return UdpEndpoint(ec.name, self._receive, mode, ec.host, ec.port, self.config.rcvbuf_bytes)

    # -- listeners ------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for every notice; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def notify(self, notice: Notice) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:  # a listener's bug must not stop the link
                log.exception("listener_failed", kind=notice.kind, vehicle=notice.vehicle)

    def use_signing_key(self, vehicle: Vehicle, key: bytes, link_id: int = 1,
                        required: bool = True) -> None:
        """From now on sign what goes to `vehicle` with `key` and check what comes back.
        (Checks are per system id: vehicles sharing an id on address-keyed links share one.)"""
        self._keys[vehicle.sysid] = key
        self._checkers[vehicle.sysid] = SignatureChecker(key, required=required)
        sign_outgoing(vehicle.encoder.mav, key, link_id, self.wall_clock())

    def forget_signing_key(self, sysid: int) -> None:
        """Back to the configured signing state for `sysid` (after a failed provisioning)."""
        sc = self._signing.get(sysid)
        if sc is None:
            self._keys.pop(sysid, None)
            self._checkers.pop(sysid, None)
        else:
            self._keys[sysid] = load_key(sc.key_file)
            self._checkers[sysid] = SignatureChecker(self._keys[sysid], required=sc.required)

    def notify_vehicle(self, vehicle: Vehicle, kind: str, detail: Any) -> None:
        self.notify(Notice(vehicle.key, kind, detail))

    async def wait_for_vehicles(self, sysids: set[int] | int, timeout_s: float) -> None:
        """Wait until the given vehicles (or that many) are discovered and set up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        def enough() -> bool:
            ready = {s for s, v in self.vehicles.items() if v.ready}
            return len(ready) >= sysids if isinstance(sysids, int) else sysids <= ready

        while not enough():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"vehicles not ready within {timeout_s} s: have "
                                   f"{sorted(s for s, v in self.vehicles.items() if v.ready)}")
            self._vehicle_added.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.2)):
                    await self._vehicle_added.wait()

    def vehicle_ready(self, vehicle: Vehicle) -> None:
        self._vehicle_added.set()
        self.notify(Notice(vehicle.key, "vehicle_ready", vehicle.profile.name))

    # -- receive path -------------------------------------------------------------------------

    def _receive(self, endpoint: Endpoint, addr: Any, data: bytes) -> None:
        key = (endpoint.name, addr)
        dec = self._decoders.get(key)
        if dec is None:
            if len(self._decoders) > 4096:
                self._decoders.clear()  # many transient peers: start over rather than grow
            dec = self._decoders[key] = Decoder(endpoint.datagram)
        bad, unknown = dec.bad_frames, dec.unknown_ids
        msgs = dec.feed(data)
        if dec.bad_frames != bad:
            self.counters["bad_frames"] += dec.bad_frames - bad
        if dec.unknown_ids != unknown:
            self.counters["unknown_ids"] += dec.unknown_ids - unknown
        if not msgs:
            return
        now = self.clock()
        for msg in msgs:
            self._dispatch(endpoint, addr, msg, now)

    def _dispatch(self, endpoint: Endpoint, addr: Any, msg: Message, now: float) -> None:
        self.counters["messages"] += 1
        sysid = msg.get_srcSystem()
        if sysid == self.config.own_sysid:
            self.counters["own_echo"] += 1
            return
        allowed = self._endpoint_configs[endpoint.name].sysids
        if allowed is not None and sysid not in allowed:
            self.counters["spoofed_sysid"] += 1
            if self.counters["spoofed_sysid"] == 1:
                log.warning("unexpected_sysid", endpoint=endpoint.name, sysid=sysid,
                            allowed=allowed)
            return
        checker = self._checkers.get(sysid)
        if checker is not None:
            verdict = checker.check(msg, self.wall_clock())
            if verdict not in (Verdict.ACCEPTED, Verdict.UNSIGNED):
                self.counters["signature_rejected"] += 1
                if checker.counts[verdict] == 1:
                    log.warning("signature_rejected", sysid=sysid, verdict=verdict.value,
                                msg=msg.get_type())
                return
        by_address = self._endpoint_configs[endpoint.name].identify_by == "address"
        if by_address:
            key = self._by_address.get((endpoint.name, addr, sysid))
            v = None if key is None else self.vehicles.get(key)
        else:
            v = self.vehicles.get(sysid)
        if v is None:
            if msg.get_type() != "HEARTBEAT" or not _is_autopilot(msg):
                self.counters["unknown_source"] += 1
                return
            v = self._discover(msg, endpoint, addr, now, by_address)
            if v is None:
                return
        v.on_message(msg, endpoint, addr, now)

    def _discover(
        self, hb: Message, endpoint: Endpoint, addr: Any, now: float, by_address: bool = False
    ) -> Vehicle | None:
        sysid, compid = hb.get_srcSystem(), hb.get_srcComponent()
        profile = profile_for(hb.autopilot, hb.type, self.profiles)
        if profile is None:
            self.counters["unknown_source"] += 1
            if (hb.autopilot, hb.type) not in self._unprofiled:
                self._unprofiled.add((hb.autopilot, hb.type))  # log once, not every second
                log.warning("no_firmware_profile", sysid=sysid, autopilot=hb.autopilot,
                            type=hb.type)
            return None
        encoder = Encoder(self.config.own_sysid, self.config.own_compid)
        sc = self._signing.get(sysid)
        if sc is not None:
            sign_outgoing(encoder.mav, self._keys[sysid], sc.link_id, self.wall_clock())
        v = Vehicle(self, sysid, compid, profile, encoder, endpoint, addr, LinkHealth(
            lost_after_s=self.config.link_lost_after_s))
        if by_address:
            v.key = ADDRESS_KEY_BASE + len(self._by_address)
            self._by_address[(endpoint.name, addr, sysid)] = v.key
        self.vehicles[v.key] = v
        log.info("vehicle_discovered", sysid=sysid, compid=compid, profile=profile.name,
                 endpoint=endpoint.name)
        self.notify(Notice(v.key, "vehicle_discovered", profile.name))
        v.send_timesync(now)  # an early round-trip time sizes the mission retry timeouts
        v.begin_setup()
        return v

    # -- periodic work -----------------------------------------------------------------------

    async def _reopen_loop(self) -> None:
        """A serial radio unplugged (USB) or hung up is reopened until it comes back."""
        while True:
            await asyncio.sleep(2.0)
            for ep in self.endpoints.values():
                if isinstance(ep, SerialEndpoint) and ep.closed:
                    try:
                        await ep.open()
                    except (OSError, ValueError) as exc:
                        if ep.reopen_failures == 0:
                            log.warning("serial_reopen_failed", endpoint=ep.name, error=str(exc))
                        ep.reopen_failures += 1
                    else:
                        log.info("serial_reopened", endpoint=ep.name)
                        ep.reopen_failures = 0

    async def _heartbeat_loop(self) -> None:
        hb = mav.MAVLink_heartbeat_message(
            mav.MAV_TYPE_GCS, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE, 3
        )
        while True:
            for v in list(self.vehicles.values()):
                v.send(hb)
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _health_loop(self) -> None:
        last_timesync = last_stream_check = 0.0
        while True:
            await asyncio.sleep(0.2)
            now = self.clock()
            do_timesync = now - last_timesync >= self.config.timesync_interval_s
            if do_timesync:
                last_timesync = now
            # Stream ages change slowly: once a second is plenty, and it keeps the per-tick
            # cost flat with hundreds of vehicles.
            do_streams = now - last_stream_check >= 1.0
            if do_streams:
                last_stream_check = now
            for v in list(self.vehicles.values()):
                try:
                    self._check_vehicle(v, now, do_timesync, do_streams)
                except Exception:  # link-loss detection must go on for the others
                    log.exception("health_check_failed", sysid=v.sysid)

    def _check_vehicle(self, v: Vehicle, now: float, do_timesync: bool,
                       do_streams: bool) -> None:
        for state_event in v.state.tick(now):
            self.notify_vehicle(v, type(state_event).__name__, state_event)
        ev = v.health.on_timer(now)
        if ev is LinkEvent.LOST:
            log.warning("link_lost", sysid=v.sysid)
            self.notify(Notice(v.key, ev.value))
            v.on_link_lost()
        if do_timesync and v.health.alive:
            v.send_timesync(now)
        if do_streams:
            v.check_streams(now)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "counters": dict(self.counters),
            "vehicles": {s: v.health.snapshot(now) for s, v in self.vehicles.items()},
        }


def _is_autopilot(hb: Message) -> bool:
    return bool(hb.autopilot != mav.MAV_AUTOPILOT_INVALID and hb.type not in _NOT_AUTOPILOT_TYPES)
