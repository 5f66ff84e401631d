"""One vehicle as the rest of nestd sees it: live state, link health, and async commands."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.codec import Encoder, Message
from nestd.mavlink.errors import (
    CommandError,
    MavlinkError,
    MissionTimeout,
    ParamError,
    StateTimeout,
)
from nestd.mavlink.health import LinkEvent, LinkHealth
from nestd.mavlink.profiles import FirmwareProfile
from nestd.mavlink.protocols.base import Transaction
from nestd.mavlink.protocols.command import (
    CommandResult,
    CommandTransaction,
    RequestMessageTransaction,
    set_message_interval,
)
from nestd.mavlink.protocols.mission import (
    FENCE,
    MISSION,
    RALLY,
    MissionClear,
    MissionDownload,
    MissionItem,
    MissionUpload,
    compare_items,
    verify_read_back,
)
from nestd.mavlink.protocols.params import Param, ParamRead, ParamReadAll, ParamSet
from nestd.mavlink.signing import signing_timestamp
from nestd.mavlink.state import VehicleState
from nestd.mavlink.transport import Endpoint

if TYPE_CHECKING:
    from nestd.mavlink.link import FleetLink

log = structlog.get_logger("nestd.mavlink")


class Vehicle:
    """Created by the FleetLink on discovery; its methods are the daemon's hands on one drone."""

    def __init__(
        self,
        link: FleetLink,
        sysid: int,
        compid: int,
        profile: FirmwareProfile,
        encoder: Encoder,
        endpoint: Endpoint,
        addr: Any,
        health: LinkHealth,
    ) -> None:
        self.link = link
        self.sysid = sysid
        self.key = sysid  # the fleet's key for it; differs only on identify_by=address links
        self.compid = compid
        self.profile = profile
        self.encoder = encoder
        self.endpoint = endpoint
        self.addr = addr
        self.health = health
        self.state = VehicleState(sysid, compid, profile)
        self.ready = False
        self.autopilot_version: Message | None = None
        self.log = log.bind(sysid=sysid)
        self._waiters: dict[int, asyncio.Event] = {}
        self._active: list[Transaction] = []
        self._setup_task: asyncio.Task[None] | None = None
        self._timesync_sent: dict[int, float] = {}
        self._last_boot_ms: int | None = None
        self.tx_messages = 0
        self._active_waiters = 0
        self._param_lock = asyncio.Lock()
        self._mission_lock = asyncio.Lock()
        self._param_types: dict[str, int] = {}
        self._last_setup_s = 0.0
        self._verify_after_setup = False
        self._stream_tries: dict[str, int] = {}
        self.other_components: dict[int, float] = {}  # compid -> last heard
        self._command_locks: dict[int, asyncio.Lock] = {}
        self._autopilot_changed_logged = False
        self._autopilot_id = profile.autopilot_id
        self._vehicle_types = profile.vehicle_type_ids
        # What we last put on the vehicle, per mission type, to re-check after outages.
        self.uploaded: dict[int, tuple[MissionItem, ...]] = {}

    # -- sending ------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        self.tx_messages += 1
        signing = self.encoder.mav.signing
        if signing.sign_outgoing:
            # pymavlink only adds 1 per packet; the spec wants our clock, or a vehicle that
            # restarts (a new stream for it) finds our timestamps a minute stale and refuses.
            now_ts = signing_timestamp(self.link.wall_clock())
            if now_ts > signing.timestamp:
                signing.timestamp = now_ts
        self.endpoint.send(self.encoder.pack(msg), self.addr)

    def send_all(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.send(m)

    def send_timesync(self, now_s: float) -> None:
        ts1 = int(now_s * 1e9)
        self._timesync_sent[ts1] = now_s
        if len(self._timesync_sent) > 16:
            self._timesync_sent.pop(next(iter(self._timesync_sent)))
        self.send(mav.MAVLink_timesync_message(0, ts1))

    # -- receiving ------------------------------------------------------------------------------

    def on_message(self, msg: Message, endpoint: Endpoint, addr: Any, now_s: float) -> None:
        compid = msg.get_srcComponent()
        if compid != self.compid:
            # A gimbal, camera or companion computer on the same system id: it must not
            # answer our transactions, keep the autopilot's link "alive", or move our route.
            self.other_components[compid] = now_s
            return
        # Answer over whichever route the autopilot was last heard on (redundant links).
        self.endpoint, self.addr = endpoint, addr
        event = self.health.on_message(compid, msg.get_seq(), now_s)
        if event is LinkEvent.RESTORED and self.ready:
            self.log.info("link_restored")
            self.link.notify_vehicle(self, event.value, None)
            # re-sync: streams may be lost (ArduPilot forgets on reboot), lists re-checked
            self._verify_after_setup = True
            self.begin_setup()
        t = msg.get_type()
        if t == "TIMESYNC" and msg.tc1 != 0:
            sent = self._timesync_sent.pop(msg.ts1, None)
            if sent is not None:
                self.health.on_rtt(now_s - sent)
            return
        if t == "HEARTBEAT" and (msg.autopilot != self._autopilot_id
                                 or msg.type not in self._vehicle_types):
            self._on_autopilot_changed(msg)
        self._check_reboot(msg)
        for state_event in self.state.update(msg, now_s):
            self.link.notify_vehicle(self, type(state_event).__name__, state_event)
        for tx in list(self._active):
            if not tx.done:
                self.send_all(tx.on_message(msg, now_s))
        for wake in self._waiters.values():
            wake.set()

    def _check_reboot(self, msg: Message) -> None:
        boot_ms = getattr(msg, "time_boot_ms", None)
        if boot_ms is None:
            return
        last = self._last_boot_ms
        self._last_boot_ms = boot_ms
        # time since boot going back by more than a few seconds means the autopilot restarted
        if last is not None and boot_ms + 5000 < last and self.ready:
            self.log.warning("vehicle_rebooted", was_ms=last, now_ms=boot_ms)
            self.link.notify_vehicle(self, "vehicle_rebooted", None)
            self._verify_after_setup = True
            self.begin_setup()

    def _on_autopilot_changed(self, hb: Message) -> None:
        from nestd.mavlink.profiles import profile_for

        profile = profile_for(hb.autopilot, hb.type, self.link.profiles)
        if not self._autopilot_changed_logged:
            # once per switch: a misconfigured or spoofed sender repeats it every second
            self._autopilot_changed_logged = True
            self.log.warning("autopilot_changed", autopilot=hb.autopilot, type=hb.type,
                             profile=None if profile is None else profile.name)
            self.link.notify_vehicle(self, "autopilot_changed", hb.autopilot)
        if profile is None:
            return
        if profile is not self.profile:
            self._autopilot_changed_logged = False
            self.profile = profile
            self._autopilot_id = profile.autopilot_id
            self._vehicle_types = profile.vehicle_type_ids
            self.state.set_profile(profile)
            self.begin_setup()

    def check_streams(self, now_s: float) -> None:
        """Re-apply stream rates when the vehicle is heard but a wanted stream has stopped:
        an autopilot that rebooted quickly (ArduPilot forgets its rates) looks like this."""
        if not self.ready or not self.health.alive:
            return
        if self._setup_task is not None and not self._setup_task.done():
            return
        if now_s - self._last_setup_s < self.link.config.setup_retry_s:
            return
        for rate in self.profile.streams.intervals:
            if rate.rate_hz < 0.5 or rate.message == "HEARTBEAT":
                continue
            if self._stream_tries.get(rate.message, 0) >= 3:
                continue  # asked three times and never heard: this firmware doesn't send it
            age = self.state.age_s(rate.message, now_s)
            if age is None or age > 3.0 + 3.0 / rate.rate_hz:
                tries = self._stream_tries.get(rate.message, 0) + 1
                self._stream_tries[rate.message] = tries if age is None else 0
                self.log.warning("stream_missing", message=rate.message, age_s=age, tries=tries)
                self.link.notify_vehicle(self, "streams_reapplied", rate.message)
                self.begin_setup()
                return

    def on_link_lost(self) -> None:
        self._last_boot_ms = None

    # -- transactions -------------------------------------------------------------------------

    async def transact(self, tx: Transaction) -> Transaction:
        """Drive a sans-io transaction to completion over this vehicle's route."""
        clock = self.link.clock
        wake = asyncio.Event()
        key = id(tx)
        self._waiters[key] = wake
        self._active.append(tx)
        try:
            self.send_all(tx.start(clock()))
            while not tx.done:
                deadline = tx.deadline_s
                wake.clear()
                if deadline is not None:
                    left = deadline - clock()
                    if left <= 0:
                        self.send_all(tx.on_timer(clock()))
                        continue
                    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a
                    # cancellation that lands as the wait ends, and the call never stops.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await wake.wait()
                else:
                    await wake.wait()
        finally:
            self._waiters.pop(key, None)
            self._active.remove(tx)
        return tx

    # -- setup ------------------------------------------------------------------------------

    def begin_setup(self) -> None:
        if self._setup_task is not None and not self._setup_task.done():
            return
        self._last_setup_s = self.link.clock()
        self._setup_task = asyncio.create_task(self._setup(), name=f"vehicle[{self.sysid}]-setup")

    async def _setup(self) -> None:
        while True:
            try:
                await self.setup_streams()
            except Exception as exc:  # retried: a vehicle that isn't ready yet isn't an error
                self.log.info("setup_retry", error=str(exc))
                await asyncio.sleep(self.link.config.setup_retry_s)
                continue
            break
        if not self.ready:
            self.ready = True
            self.log.info("vehicle_ready", profile=self.profile.name)
            self.link.vehicle_ready(self)
        elif self._verify_after_setup:
            self._verify_after_setup = False
            await self._verify_lists()

    async def _verify_lists(self) -> None:
        """After an outage or reboot, check the vehicle still holds what we uploaded: a
        mission lost or replaced behind our back must not go unnoticed."""
        for mission_type, sent in list(self.uploaded.items()):
            try:
                got = await self.download(mission_type)
            except MavlinkError as exc:
                self.log.warning("resync_failed", mission_type=mission_type, error=str(exc))
                continue
            diff = compare_items(sent, got, seq0_is_home=self.profile.mission.seq0_is_home)
            if diff is None:
                self.log.info("resync_ok", mission_type=mission_type, items=len(sent))
                self.link.notify_vehicle(self, "mission_verified", mission_type)
            else:
                self.log.warning("mission_changed", mission_type=mission_type, diff=str(diff))
                self.link.notify_vehicle(self, "mission_changed", (mission_type, diff))

    async def close(self) -> None:
        if self._setup_task is not None:
            self._setup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._setup_task

    # -- the vehicle API ------------------------------------------------------------------------

    @property
    def _own(self) -> tuple[int, int]:
        return (self.link.config.own_sysid, self.link.config.own_compid)

    @property
    def _target(self) -> tuple[int, int]:
        return (self.sysid, self.compid)

    async def command(
        self,
        command: int,
        *params: float,
        use_int: bool = False,
        frame: int = mav.MAV_FRAME_GLOBAL_INT,
    ) -> CommandResult:
        """Send a command, retrying as the protocol says; raises CommandError/CommandTimeout."""
        tx = CommandTransaction(
            self._target, command, params, own=self._own, use_int=use_int, frame=frame
        )
        # ACKs name only the command: two in flight with one id would settle on one ACK.
        async with self._command_lock(command):
            await self.transact(tx)
        result = tx.result
        result.raise_for_status()
        return result

    def _command_lock(self, command: int) -> asyncio.Lock:
        lock = self._command_locks.get(command)
        if lock is None:
            lock = self._command_locks[command] = asyncio.Lock()
        return lock

    async def request_message(self, message_id: int, *params: float) -> Message:
        tx = RequestMessageTransaction(self._target, message_id, params, own=self._own)
        async with self._command_lock(mav.MAV_CMD_REQUEST_MESSAGE):
            await self.transact(tx)
        result = tx.result
        result.raise_for_status()
        return result.message

    async def set_message_interval(self, message_id: int, interval_s: float | None) -> None:
        """None turns the message off; 0 restores the firmware's default rate."""
        tx = set_message_interval(self._target, message_id, interval_s, own=self._own)
        async with self._command_lock(mav.MAV_CMD_SET_MESSAGE_INTERVAL):
            await self.transact(tx)
        tx.result.raise_for_status()

    async def setup_streams(self) -> None:
        """Identify the autopilot and set the message rates the daemon wants, per profile."""
        try:
            self.autopilot_version = await self.request_message(
                mav.MAVLINK_MSG_ID_AUTOPILOT_VERSION
            )
        except CommandError:
            self.autopilot_version = None  # old firmware: not fatal
        streams = self.profile.streams
        fallback = False
        for rate in streams.intervals:
            try:
                await self.set_message_interval(
                    rate.msg_id, None if rate.rate_hz == 0 else 1.0 / rate.rate_hz
                )
            except CommandError as exc:
                if exc.result in (mav.MAV_RESULT_UNSUPPORTED, mav.MAV_RESULT_DENIED):
                    fallback = True
                    continue
                raise
        if fallback and streams.data_streams:
            for ds in streams.data_streams:
                self.send(mav.MAVLink_request_data_stream_message(
                    self.sysid, self.compid, ds.stream_id, ds.rate_hz, 1 if ds.rate_hz else 0))
        for mid in streams.off_ids:
            with contextlib.suppress(CommandError):
                await self.set_message_interval(mid, None)
        with contextlib.suppress(CommandError):
            await self.request_message(mav.MAVLINK_MSG_ID_HOME_POSITION)

    async def provision_signing(self, key: bytes, link_id: int = 1) -> None:
        """Give the vehicle a new signing key with SETUP_SIGNING, then require it.

        Send this only over a link you trust (the key travels in clear); the vehicle sends
        no reply, so the switch is confirmed by the next signed message being accepted."""
        if len(key) != 32:
            raise ValueError("a MAVLink signing key is 32 bytes")
        from nestd.mavlink.signing import setup_signing

        old_encoder_key = self.encoder.mav.signing.secret_key
        for attempt in range(3):
            # No acknowledgement exists: the vehicle's messages arriving signed with the new
            # key (our checker now refuses anything else) is the confirmation.
            self.send(setup_signing(self.sysid, self.compid, key, self.link.wall_clock()))
            self.link.use_signing_key(self, key, link_id)
            before = self.health.received
            try:
                await self.wait_until(lambda b=before: self.health.received > b + 2, 2.0,
                                      "signed traffic after provisioning")
            except TimeoutError:
                self.log.warning("signing_not_confirmed", attempt=attempt + 1)
                self.encoder.mav.signing.secret_key = old_encoder_key
                self.encoder.mav.signing.sign_outgoing = old_encoder_key is not None
                self.link.forget_signing_key(self.sysid)
                continue
            self.log.info("signing_provisioned", link_id=link_id)
            return
        raise MavlinkError(f"vehicle {self.sysid}: SETUP_SIGNING not confirmed")

    # modes and flight

    def _mode_params(self, name: str) -> tuple[float, ...]:
        mode = next((m for m in self.profile.modes if m.name == name), None)
        if mode is None:
            raise MavlinkError(f"mode {name!r} is not in the {self.profile.name} profile")
        flag = float(mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED)
        if self.profile.autopilot == "PX4":
            # PX4 takes main and sub mode separately (custom_mode = main<<16 | sub<<24).
            return (flag, float((mode.custom_mode >> 16) & 0xFF),
                    float((mode.custom_mode >> 24) & 0xFF))
        return (flag, float(mode.custom_mode))

    async def set_mode(self, name: str, confirm_s: float = 3.0) -> None:
        """Switch mode and wait until the heartbeat shows it."""
        await self.command(mav.MAV_CMD_DO_SET_MODE, *self._mode_params(name))
        await self.wait_until(lambda: self.state.mode_name == name, confirm_s, f"mode {name}")

    async def wait_until(self, cond: Any, timeout_s: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wake = asyncio.Event()
        key = id(wake)
        self._waiters[key] = wake
        self._active_waiters += 1
        try:
            while not cond():
                left = deadline - loop.time()
                if left <= 0:
                    raise StateTimeout(f"vehicle {self.sysid}: {what} not seen in {timeout_s} s")
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 0.5)):
                        await wake.wait()
        finally:
            self._waiters.pop(key, None)
            self._active_waiters -= 1

    async def arm(self, force: bool = False) -> None:
        await self.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1.0, 21196.0 if force else 0.0)

    async def disarm(self, force: bool = False) -> None:
        await self.command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0.0, 21196.0 if force else 0.0)

    async def takeoff(self, alt_m: float) -> None:
        """Arm and climb to `alt_m` above home, the way this firmware wants it done."""
        if not alt_m > 0:
            raise ValueError("takeoff altitude must be positive")
        t = self.profile.takeoff
        for step in t.steps:
            if step == "set_mode":
                assert t.mode is not None
                await self.set_mode(t.mode)
            elif step == "arm":
                await self.arm()
            else:
                if t.altitude_frame == "amsl":
                    home = self.state.home_alt_amsl_m
                    if home is None:
                        raise MavlinkError(f"vehicle {self.sysid}: home altitude unknown")
                    alt = home + alt_m
                else:
                    alt = alt_m
                nan = math.nan
                await self.command(mav.MAV_CMD_NAV_TAKEOFF, 0.0, 0.0, 0.0, nan, nan, nan, alt)

    async def start_mission(self) -> None:
        m = self.profile.mission
        last: Exception | None = None
        on_ground = self.state.landed_state == mav.MAV_LANDED_STATE_ON_GROUND
        for method in m.ground_start_methods if on_ground else m.start_methods:
            try:
                if method == "mission_start":
                    await self.command(mav.MAV_CMD_MISSION_START, 0.0, 0.0)
                else:
                    await self.set_mode(self.profile.roles.mission)
                return
            except CommandError as exc:
                last = exc
        assert last is not None
        raise last

    async def return_to_launch(self) -> None:
        await self.set_mode(self.profile.roles.rtl)

    async def land(self) -> None:
        await self.set_mode(self.profile.roles.land)

    async def hold(self) -> None:
        await self.set_mode(self.profile.roles.hold)

    async def goto(self, lat_deg: float, lon_deg: float, alt_rel_m: float,
                   speed_mps: float | None = None) -> None:
        """Fly to a point at `alt_rel_m` above home and hold there."""
        if not (-90 <= lat_deg <= 90 and -180 <= lon_deg <= 180 and math.isfinite(alt_rel_m)):
            raise ValueError("goto target out of range")
        if self.profile.goto.altitude_frame == "amsl":
            home = self.state.home_alt_amsl_m
            if home is None:
                raise MavlinkError(f"vehicle {self.sysid}: home altitude unknown")
            frame, alt = mav.MAV_FRAME_GLOBAL_INT, home + alt_rel_m
        else:
            frame, alt = mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, alt_rel_m
        guided = self.profile.roles.guided
        if self.profile.goto.method == "set_position_target_global_int":
            if self.state.mode_name != guided:
                await self.set_mode(guided)
            ignore = (  # position only
                mav.POSITION_TARGET_TYPEMASK_VX_IGNORE | mav.POSITION_TARGET_TYPEMASK_VY_IGNORE
                | mav.POSITION_TARGET_TYPEMASK_VZ_IGNORE | mav.POSITION_TARGET_TYPEMASK_AX_IGNORE
                | mav.POSITION_TARGET_TYPEMASK_AY_IGNORE | mav.POSITION_TARGET_TYPEMASK_AZ_IGNORE
                | mav.POSITION_TARGET_TYPEMASK_YAW_IGNORE
                | mav.POSITION_TARGET_TYPEMASK_YAW_RATE_IGNORE
            )
            self.send(mav.MAVLink_set_position_target_global_int_message(
                0, self.sysid, self.compid, frame, ignore, round(lat_deg * 1e7),
                round(lon_deg * 1e7), alt, 0, 0, 0, 0, 0, 0, 0, 0))
            if speed_mps is not None:
                await self.command(mav.MAV_CMD_DO_CHANGE_SPEED, 1.0, speed_mps, -1.0)
            return
        await self.command(
            mav.MAV_CMD_DO_REPOSITION,
            -1.0 if speed_mps is None else speed_mps,
            float(mav.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE),
            0.0,
            math.nan,
            float(round(lat_deg * 1e7)),
            float(round(lon_deg * 1e7)),
            alt,
            use_int=True,
            frame=frame,
        )

    # parameters

    async def read_param(self, name: str) -> Param:
        tx = ParamRead(self._target, name, encoding=self.profile.param_encoding)
        async with self._param_lock:
            await self.transact(tx)
        result = tx.result
        result.raise_for_status()
        assert result.param is not None
        self._param_types[name] = result.param.param_type
        return result.param

    async def read_all_params(self) -> dict[str, Param]:
        tx = ParamReadAll(self._target, encoding=self.profile.param_encoding)
        async with self._param_lock:
            await self.transact(tx)
        result = tx.result
        result.raise_for_status()
        for p in result.params.values():
            self._param_types[p.name] = p.param_type
        return dict(result.params)

    async def set_param(self, name: str, value: float) -> Param:
        """Set and verify by the echo; the parameter's type is read from the vehicle first."""
        ptype = self._param_types.get(name)
        if ptype is None:
            ptype = (await self.read_param(name)).param_type
        if ptype != mav.MAV_PARAM_TYPE_REAL32 and ptype != mav.MAV_PARAM_TYPE_REAL64:
            if float(value) != int(value):
                raise ParamError(name, f"{value} is not an integer")
            value = int(value)
        tx = ParamSet(self._target, name, value, ptype, encoding=self.profile.param_encoding)
        async with self._param_lock:
            await self.transact(tx)
        result = tx.result
        result.raise_for_status()
        assert result.param is not None
        return result.param

    async def set_params(self, values: Mapping[str, float]) -> dict[str, Param | Exception]:
        """Set several; reports per parameter so one refusal doesn't hide the others."""
        out: dict[str, Param | Exception] = {}
        for name, value in values.items():
            try:
                out[name] = await self.set_param(name, value)
            except MavlinkError as exc:
                out[name] = exc
        return out

    async def ensure_params(self) -> dict[str, tuple[float, float]]:
        """Enforce the profile's recommended failsafe values; returns what changed
        (name -> (old, new)). Raises on the first parameter that can't be set."""
        wanted: dict[str, float] = {rp.name: float(rp.value)
                                    for rp in self.profile.recommended_params}
        gcs = self.profile.params.gcs_sysid
        if gcs is not None:
            # Its GCS failsafe only counts heartbeats from this one system id: ours.
            wanted[gcs.name] = float(self.link.config.own_sysid)
        changed: dict[str, tuple[float, float]] = {}
        for name, value in wanted.items():
            current = await self.read_param(name)
            if float(current.value) == value:
                continue
            await self.set_param(name, value)
            changed[name] = (float(current.value), value)
            self.log.info("param_enforced", name=name, old=current.value, new=value)
        return changed

    # missions, fences, rally points

    def _transfer_budget_s(self, n_items: int) -> float:
        """A hard cap on one transfer: a vehicle that keeps re-requesting must not keep it
        alive for ever. Generous: each item may need every retry."""
        return 10.0 + n_items * self._transfer_timeout_s() * 4

    async def upload(self, items: Sequence[MissionItem], mission_type: int = MISSION) -> None:
        """Upload then read back and compare: on return the vehicle holds exactly `items`."""
        try:
            async with asyncio.timeout(2 * self._transfer_budget_s(len(items))):
                await self._upload(items, mission_type)
        except TimeoutError:
            raise MissionTimeout(mission_type, "overall deadline") from None

    async def _upload(self, items: Sequence[MissionItem], mission_type: int) -> None:
        async with self._mission_lock:
            timeout_s = self._transfer_timeout_s()
            up = MissionUpload(self._target, items, mission_type, own=self._own,
                               timeout_s=timeout_s)
            await self.transact(up)
            if not up.result.read_back_decides:
                # (An ArduPilot that missed our final ACK answers "error" after a good
                # upload: then only the read-back can tell.)
                up.result.raise_for_status()
            down = MissionDownload(self._target, mission_type, own=self._own,
                                   timeout_s=timeout_s)
            await self.transact(down)
            result = down.result
            result.raise_for_status()
            verify_read_back(mission_type, items, result.items,
                             seq0_is_home=self.profile.mission.seq0_is_home
                             and mission_type == MISSION)
        self.uploaded[mission_type] = tuple(items)
        self.log.info("mission_uploaded", mission_type=mission_type, items=len(items))

    async def upload_mission(self, items: Sequence[MissionItem]) -> None:
        await self.upload(items, MISSION)

    async def upload_fence(self, items: Sequence[MissionItem]) -> None:
        await self.upload(items, FENCE)

    async def upload_rally(self, items: Sequence[MissionItem]) -> None:
        await self.upload(items, RALLY)

    def _transfer_timeout_s(self) -> float:
        """Per-step retry timeout: a few round trips when TIMESYNC has measured one, so a
        lossy radio retries promptly, within the protocol's usual 0.25-1 s bounds."""
        rtt = self.health.rtt_s
        if rtt is None:
            return 1.0
        return min(max(4.0 * rtt + 0.1, 0.25), 1.0)

    async def download(self, mission_type: int = MISSION) -> list[MissionItem]:
        async with self._mission_lock:
            down = MissionDownload(self._target, mission_type, own=self._own,
                                   timeout_s=self._transfer_timeout_s())
            try:
                async with asyncio.timeout(
                    self._transfer_budget_s(self.profile.fence.max_mission_items)
                ):
                    await self.transact(down)
            except TimeoutError:
                raise MissionTimeout(mission_type, "overall deadline") from None
        result = down.result
        result.raise_for_status()
        return list(result.items)

    async def clear(self, mission_type: int = MISSION) -> None:
        async with self._mission_lock:
            tx = MissionClear(self._target, mission_type, own=self._own)
            await self.transact(tx)
        tx.result.raise_for_status()
        for t in (MISSION, FENCE, RALLY) if mission_type == mav.MAV_MISSION_TYPE_ALL else (
            mission_type,
        ):
            self.uploaded[t] = ()
