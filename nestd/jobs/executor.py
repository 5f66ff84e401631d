"""The flight executor: turns an assignment into a flight and the flight into job events.

For each assigned job it builds the mission, checks it against the airspace (nothing that
fails validation is ever uploaded), uploads fence, rally points and mission with read-back,
runs the pre-flight checks, arms and starts, then follows the vehicle's mission progress,
landed state and mode to move the job through its lifecycle. A cancel before the drop turns
the drone back with the parcel. Whatever happens to the job, a drone that is in the air stays
watched until it is on the ground and disarmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from nestd.airspace import (
    Airspace,
    FenceLimits,
    LatLon,
    build_fence,
    distance_m,
    validate_mission,
)
from nestd.jobs.book import JobBook
from nestd.jobs.lifecycle import (
    IN_FLIGHT,
    CancelOutcome,
    JobState,
    cancel_outcome,
    is_terminal,
)
from nestd.jobs.mission import BuiltMission, Stage, build_delivery_mission
from nestd.jobs.models import ParcelWhere, Reason, ReasonCode
from nestd.jobs.quote import Option
from nestd.mavlink.errors import MavlinkError
from nestd.mavlink.items import fence_items, mission_items, mission_style, rally_items
from nestd.mavlink.link import FleetLink
from nestd.mavlink.protocols.mission import MISSION, MissionItem, compare_items
from nestd.mavlink.vehicle import Vehicle
from nestd.safety import (
    Airframe,
    BatteryInfo,
    CheckName,
    FlightIntent,
    GpsInfo,
    LinkInfo,
    PreflightLimits,
    VehicleSnapshot,
    run_preflight,
)

log = structlog.get_logger("nestd.jobs.executor")

MAV_LANDED_STATE_ON_GROUND = 1
# Checks the executor can't feed from live state yet, or that are decided elsewhere: the
# autopilot's own arming checks (which refuse to arm on a bad estimator or failed pre-arm)
# stand in for ESTIMATOR and ARMABLE; failsafe parameters are enforced with ensure_params
# before each flight (a vehicle that refuses them doesn't fly); wind is the dispatcher's
# (no assignment while the nest's wind monitor holds launches).
SKIPPED_CHECKS = frozenset({CheckName.ESTIMATOR, CheckName.ARMABLE, CheckName.FAILSAFE_PARAMS,
                            CheckName.WIND})


class FlightAbort(Exception):
    """Ends a flight attempt before launch, with the job's next state and reason."""

    def __init__(self, to: JobState, reason: Reason, *, drone_fault: bool = False) -> None:
        super().__init__(reason.message)
        self.to = to
        self.reason = reason
        self.drone_fault = drone_fault


def _reason(code: ReasonCode, message: str) -> Reason:
    return Reason(code=code.value, message=message)


def _restart_reason() -> Reason:
    return _reason(ReasonCode.DAEMON_RESTART, "nestd restarted before launch; planning again")


def _cancel_reason(text: str) -> Reason:
    return _reason(ReasonCode.CANCELLED_BY_CUSTOMER, text)


def items_to_json(items: list[MissionItem]) -> list[list[Any]]:
    """Mission items as JSON rows (NaN, which PX4 reads as "unchanged", is not JSON: null)."""
    def f(x: float) -> float | None:
        return None if math.isnan(x) else x

    return [[it.seq, it.frame, it.command, it.autocontinue, f(it.param1), f(it.param2),
             f(it.param3), f(it.param4), it.x, it.y, f(it.z)] for it in items]


def items_from_json(rows: list[list[Any]]) -> list[MissionItem]:
    def f(x: float | None) -> float:
        return math.nan if x is None else float(x)

    return [MissionItem(seq=int(r[0]), frame=int(r[1]), command=int(r[2]),
                        autocontinue=int(r[3]), param1=f(r[4]), param2=f(r[5]), param3=f(r[6]),
                        param4=f(r[7]), x=int(r[8]), y=int(r[9]), z=f(r[10]),
                        mission_type=MISSION)
            for r in rows]


def items_hash(items: list[MissionItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(repr((it.seq, it.frame, it.command, it.param1, it.param2, it.param3, it.param4,
                       it.x, it.y, round(it.z, 2))).encode())
    return h.hexdigest()[:16]


def position_of(v: Vehicle) -> LatLon | None:
    s = v.state
    return LatLon(s.lat_deg, s.lon_deg) if s.lat_deg is not None and s.lon_deg is not None \
        else None


def vehicle_snapshot(v: Vehicle) -> VehicleSnapshot:
    """What the pre-flight checks read, copied from the vehicle's live state and link health."""
    s = v.state
    h = v.health.snapshot(time.monotonic())
    return VehicleSnapshot(
        armed=s.armed, landed_state=s.landed_state, position=position_of(v),
        home=LatLon(s.home.lat_deg, s.home.lon_deg) if s.home is not None else None,
        gps=GpsInfo(s.gps.fix_type, s.gps.satellites, s.gps.hdop),
        battery=BatteryInfo(s.battery.remaining_pct, s.battery.voltage_v,
                            s.battery.temperature_c),
        link=LinkInfo(h.silent_s, h.loss_ratio),
    )


@dataclass
class Flight:
    """One drone's flight for one job, as the executor follows it."""

    order_id: str
    drone: int
    pad_id: str | None
    pad: LatLon
    destination: LatLon
    stages: tuple[str, ...]
    release_seq: int
    delivery_seq: int
    land_seq: int
    mission_hash: str
    items: list[MissionItem] = field(default_factory=list, repr=False)
    """The mission as uploaded: after a restart, what the drone must still hold."""
    launch_at_s: float | None = None
    """The launch slot the dispatcher planned (assigned ahead, the flight waits for it)."""
    launched_at_s: float | None = None
    eta_door_s: float | None = None
    back_at_s: float | None = None
    starting: bool = False
    """Arming and starting: the drone may take off any moment, so a cancel can't just stop
    the task; it is carried out at the next safe point."""
    cancel_reason: str | None = None
    aborted: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "drone": self.drone, "pad_id": self.pad_id,
            "pad": [self.pad.lat_deg, self.pad.lon_deg],
            "destination": [self.destination.lat_deg, self.destination.lon_deg],
            "stages": list(self.stages), "release_seq": self.release_seq,
            "delivery_seq": self.delivery_seq, "land_seq": self.land_seq,
            "mission_hash": self.mission_hash, "items": items_to_json(self.items),
            "launched_at_s": self.launched_at_s,
            "eta_door_s": self.eta_door_s, "back_at_s": self.back_at_s,
            "starting": self.starting, "aborted": self.aborted,
        }

    @classmethod
    def from_json(cls, order_id: str, d: dict[str, Any]) -> Flight:
        return cls(
            order_id=order_id, drone=int(d["drone"]), pad_id=d.get("pad_id"),
            pad=LatLon(*d["pad"]), destination=LatLon(*d["destination"]),
            stages=tuple(d["stages"]), release_seq=int(d["release_seq"]),
            delivery_seq=int(d["delivery_seq"]), land_seq=int(d["land_seq"]),
            mission_hash=str(d["mission_hash"]), items=items_from_json(d.get("items") or []),
            launched_at_s=d.get("launched_at_s"),
            eta_door_s=d.get("eta_door_s"), back_at_s=d.get("back_at_s"),
            starting=bool(d.get("starting", False)), aborted=bool(d.get("aborted", False)),
        )


@dataclass(frozen=True)
class ExecutorSettings:
    preflight_limits: PreflightLimits = field(default_factory=PreflightLimits)
    upload_attempts: int = 2
    drone_cooloff_s: float = 300.0  # a drone that failed pre-flight sits out this long
    max_attempts: int = 3  # pre-flight failures of one job (on any drones) before declining
    reattach_wait_s: float = 60.0  # after a restart: how long to wait to hear an airborne drone
    landed_away_m: float = 25.0  # landing farther than this from the pad is not a completed job
    start_settle_s: float = 15.0  # after a restart mid-start: how long an armed drone may sit
    start_check_s: float = 3.0  # after a start that got no answer: how long to look for takeoff
    turn_back_retry_s: float = 2.0  # a refused (or unanswered) turn-back is tried again
    poll_s: float = 0.25
    enforce_failsafe_params: bool = True  # ensure_params before each flight


class FlightExecutor:
    def __init__(
        self,
        book: JobBook,
        link: FleetLink,
        airspace: Callable[[], Airspace],
        airframe: Airframe,
        settings: ExecutorSettings | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.link = link
        self.airspace = airspace
        self.airframe = airframe
        self.settings = settings or ExecutorSettings()
        self.wall_clock = wall_clock
        self.flights: dict[str, Flight] = {}
        self.busy: dict[int, str] = {}  # drone -> order id (including drones still landing)
        self.cooloff_until: dict[int, float] = {}
        self.attempts: dict[str, int] = {}
        self.last_launch_s = -math.inf
        self.paused = False  # nestd is stopping: no drone is armed for a new flight
        self._tg: asyncio.TaskGroup | None = None
        self._ready = asyncio.Event()
        self.on_drone_free: Callable[[], None] = lambda: None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            self.recover()
            self._ready.set()
            await asyncio.Event().wait()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def recover(self) -> None:
        """After a (re)start: re-attach to flights in the air, re-plan the rest."""
        for rec in self.book.active():
            st = rec.state
            if st is JobState.RECEIVED:
                self.book.move(rec.order_id, JobState.ACCEPTED)
            elif (st is JobState.PREFLIGHT and rec.flight.get("starting")
                  and rec.flight.get("drone") == rec.drone):
                # nestd stopped while arming or starting: the drone may be flying the job.
                flight = Flight.from_json(rec.order_id, rec.flight)
                self._start(flight, self._resume_start(flight))
            elif st in (JobState.ASSIGNED, JobState.PREFLIGHT):
                self.book.move(rec.order_id, JobState.QUEUED, drone=None, pad=None,
                               reason=_restart_reason())
            elif rec.drone is not None and rec.flight and st not in (
                    JobState.ACCEPTED, JobState.QUEUED):
                flight = Flight.from_json(rec.order_id, rec.flight)
                if flight.launched_at_s is not None:
                    # Launch spacing holds across a restart too.
                    self.last_launch_s = max(self.last_launch_s, flight.launched_at_s)
                self._start(flight, self._reattach(flight, st))

    def _start(self, flight: Flight, coro: Any) -> None:
        assert self._tg is not None, "executor not running"
        self.flights[flight.order_id] = flight
        self.busy[flight.drone] = flight.order_id
        flight.task = self._tg.create_task(self._guard(flight, coro),
                                           name=f"flight-{flight.order_id}")
        # Also when the task is cancelled before it ever ran (and its finally can't).
        flight.task.add_done_callback(lambda _t: self._release(flight))

    def _release(self, flight: Flight) -> None:
        """The flight is over for the executor: the drone can be given another job."""
        if self.flights.get(flight.order_id) is flight:
            del self.flights[flight.order_id]
        if self.busy.get(flight.drone) == flight.order_id:
            del self.busy[flight.drone]
        self.on_drone_free()

    def launch(self, order_id: str, option: Option, pad_id: str | None, pad: LatLon) -> None:
        """Start flying an ASSIGNED job (called by the dispatcher)."""
        rec = self.book.get(order_id)
        assert rec is not None
        d = rec.job.destination
        flight = Flight(order_id=order_id, drone=option.drone, pad_id=pad_id, pad=pad,
                        destination=LatLon(d.lat_deg, d.lon_deg), stages=(), release_seq=-1,
                        delivery_seq=-1, land_seq=-1, mission_hash="",
                        launch_at_s=option.launch_at_s,
                        eta_door_s=option.eta_door_s, back_at_s=option.back_at_s)
        # The slot is taken from when the flight will launch: a job assigned ahead of its
        # slot waits for it (_fly), and the next launch is spaced from that time.
        self.last_launch_s = max(self.wall_clock(), option.launch_at_s)
        self._start(flight, self._fly(flight, option))

    def drone_busy(self, key: int) -> bool:
        return key in self.busy

    def drone_cooling(self, key: int, now_s: float) -> bool:
        return self.cooloff_until.get(key, -math.inf) > now_s

    def cancel(self, order_id: str, reason: str | None) -> Reason | None:
        rec = self.book.get(order_id)
        if rec is None:
            return _reason(ReasonCode.INVALID_FIELD, f"no job {order_id}")
        text = reason or "cancelled by the retailer"
        outcome = cancel_outcome(rec.state)
        if outcome is CancelOutcome.ALREADY_ENDED:
            return Reason(code=ReasonCode.ALREADY_ENDED.value,
                          message=f"order {order_id} already ended: {rec.state.value}")
        if outcome is CancelOutcome.REFUSED_AFTER_DROP:
            return Reason(code=ReasonCode.ALREADY_DELIVERED.value,
                          message=f"order {order_id} was already delivered; nothing to cancel")
        flight = self.flights.get(order_id)
        if outcome is CancelOutcome.CANCEL_NOW and (
                flight is None or flight.launched_at_s is None):
            if flight is not None and flight.starting and rec.state is JobState.PREFLIGHT:
                # Arming or starting: the flight task stops at its next safe point (after
                # the arm, it disarms); once started, the monitor turns the drone back.
                flight.cancel_reason = text
                return None
            # Nothing is moving yet (waiting for the slot, uploading, checking): cancel now,
            # so the answer already says `cancelled`, and stop the flight task. (A start
            # that already failed back to the queue is left to finish disarming.)
            self.book.move(order_id, JobState.CANCELLED, reason=_cancel_reason(text),
                           drone=None, pad=None)
            if flight is not None and flight.task is not None and not flight.starting:
                flight.cancel_reason = text
                flight.task.cancel()
            return None
        if flight is None:
            return Reason(code=ReasonCode.NOT_CANCELLABLE.value,
                          message="the flight is not under nestd control")
        v = self.link.vehicles.get(flight.drone)
        if rec.state is JobState.DELIVERING and v is not None and _released(flight, v, True):
            # The release is confirmed; the monitor will report `delivered` next.
            return Reason(code=ReasonCode.ALREADY_DELIVERED.value,
                          message=f"order {order_id}: the parcel was just released; "
                                  "nothing to cancel")
        # In flight before the drop: the monitor turns the drone back.
        flight.cancel_reason = text
        return None

    # -- one flight ---------------------------------------------------------------------------

    async def _guard(self, flight: Flight, coro: Any) -> None:
        """Run a flight; whatever goes wrong, end the job sensibly and keep watching the drone.

        Nothing but cancellation leaves this method: an exception here would end the
        executor's TaskGroup, and with it the daemon and the watch on every drone in the air.
        """
        try:
            try:
                await coro
            except FlightAbort as exc:
                if exc.drone_fault:
                    self.cooloff_until[flight.drone] = (self.wall_clock()
                                                        + self.settings.drone_cooloff_s)
                self._end_before_launch(flight, exc.to, exc.reason)
                await self._disarm_quietly(flight.drone)
            except Exception as exc:
                log.exception("flight_failed", order_id=flight.order_id, drone=flight.drone)
                rec = self.book.get(flight.order_id)
                if rec is not None and not is_terminal(rec.state):
                    if flight.launched_at_s is None:
                        self._end_before_launch(flight, JobState.QUEUED, _reason(
                            ReasonCode.FLIGHT_ERROR, f"could not launch: {exc}"))
                        await self._disarm_quietly(flight.drone)
                    else:
                        dropped = rec.state in (JobState.DELIVERED, JobState.RETURNING)
                        where = ParcelWhere.DELIVERED if dropped else ParcelWhere.UNKNOWN
                        self._move(flight, JobState.FAILED, _reason(
                            ReasonCode.FLIGHT_ERROR, f"flight error: {exc}"), parcel=where.value)
        except Exception:
            # Ending the job failed too (the journal, say): the drone is still watched below.
            log.exception("flight_end_failed", order_id=flight.order_id, drone=flight.drone)
        try:
            if flight.launched_at_s is not None or flight.starting:
                await self._watch_until_down(flight)
        finally:
            self._release(flight)

    def _end_before_launch(self, flight: Flight, to: JobState, reason: Reason) -> None:
        rec = self.book.get(flight.order_id)
        if rec is None or rec.state not in (JobState.ASSIGNED, JobState.PREFLIGHT):
            return
        if flight.cancel_reason is not None:
            # Cancelled while starting, and the start failed or was stopped: the customer's
            # cancel decides, not the fault.
            to, reason = JobState.CANCELLED, _cancel_reason(flight.cancel_reason)
        if to is JobState.QUEUED:
            n = self.attempts[flight.order_id] = self.attempts.get(flight.order_id, 0) + 1
            if n >= self.settings.max_attempts:
                to = JobState.DECLINED
                reason = Reason(code=reason.code,
                                message=f"{reason.message} (attempt {n}; handing back)")
        self.book.move(flight.order_id, to, reason=reason, drone=None, pad=None)

    def _move(self, flight: Flight, to: JobState, reason: Reason | None = None,
              **detail: Any) -> None:
        self.book.move(flight.order_id, to, reason=reason, eta_s=flight.eta_door_s,
                       detail=detail or None)

    async def _disarm_quietly(self, key: int) -> None:
        v = self.link.vehicles.get(key)
        if v is None or not v.state.armed or v.state.landed_state != MAV_LANDED_STATE_ON_GROUND:
            return
        with contextlib.suppress(MavlinkError, TimeoutError):
            await v.disarm()

    def _vehicle(self, key: int) -> Vehicle:
        v = self.link.vehicles.get(key)
        if v is None or not v.ready:
            raise FlightAbort(JobState.QUEUED, _reason(ReasonCode.NO_DRONE,
                                                       f"drone {key} is not connected"))
        return v

    async def _fly(self, flight: Flight, option: Option) -> None:
        await self._wait_for_slot(flight)
        self._check_go(flight)
        now = self.wall_clock()
        self.book.move(flight.order_id, JobState.PREFLIGHT, drone=flight.drone,
                       pad=flight.pad_id, eta_s=flight.eta_door_s)
        # A record from an earlier attempt must not make a restart think this one started.
        self.book.journal.set_flight(flight.order_id, flight.to_json())
        v = self._vehicle(flight.drone)
        built = self._build(flight, option, v, now)
        self._check_go(flight)
        await self._upload(flight, v, built, now)
        self._check_go(flight)
        await self._enforce_failsafes(flight, v)
        self._preflight(flight, v, option)
        # The airspace may have been replaced while uploading: check again, last thing
        # before the motors start.
        self._validate(flight, built, self.airspace(), self.wall_clock())
        self._check_go(flight)
        flight.starting = True
        self.book.journal.set_flight(flight.order_id, flight.to_json())
        try:
            await v.arm()
            # A cancel that came in while arming: the drone is still on the pad (the guard
            # disarms it). After the start the monitor turns it back instead.
            self._check_go(flight)
            await v.start_mission()
        except MavlinkError as exc:
            # A start whose answer was lost may still have been carried out.
            if not await self._took_off(v, self.settings.start_check_s):
                raise FlightAbort(JobState.QUEUED, _reason(
                    ReasonCode.PREFLIGHT_FAILED,
                    f"drone {flight.drone} refused to start: {exc}"),
                    drone_fault=True) from exc
            log.warning("started_without_answer", order_id=flight.order_id,
                        drone=flight.drone, error=str(exc))
        flight.launched_at_s = self.wall_clock()
        flight.starting = False
        self.book.journal.set_flight(flight.order_id, flight.to_json())
        self._move(flight, JobState.LAUNCHED)
        await self._monitor(flight, v, JobState.LAUNCHED)

    async def _wait_for_slot(self, flight: Flight) -> None:
        """An assignment made ahead of its launch slot waits for it, still `assigned`."""
        while flight.launch_at_s is not None and not self.paused:
            left = flight.launch_at_s - self.wall_clock()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 5.0))

    def _check_go(self, flight: Flight) -> None:
        if flight.cancel_reason is not None:
            raise FlightAbort(JobState.CANCELLED, _cancel_reason(flight.cancel_reason))
        if self.paused:
            raise FlightAbort(JobState.QUEUED, _reason(
                ReasonCode.GROUND_STOP, "nestd is stopping; the job waits for its return"))

    def _validate(self, flight: Flight, built: BuiltMission, a: Airspace, now: float) -> None:
        problems = validate_mission(a, built.waypoints, now, home=flight.pad)
        if len(problems):
            text = "; ".join(p.message for p in list(problems)[:5])
            raise FlightAbort(JobState.DECLINED, _reason(
                ReasonCode.VALIDATION_FAILED, f"the mission fails the airspace check: {text}"))

    async def _enforce_failsafes(self, flight: Flight, v: Vehicle) -> None:
        """Set the profile's failsafe parameters (datalink loss, geofence, battery) if the
        vehicle drifted from them; a vehicle that won't take them doesn't fly."""
        if not self.settings.enforce_failsafe_params:
            return
        try:
            changed = await v.ensure_params()
        except (MavlinkError, TimeoutError) as exc:
            raise FlightAbort(JobState.QUEUED, _reason(
                ReasonCode.PREFLIGHT_FAILED,
                f"drone {flight.drone} did not take its failsafe parameters: {exc}"),
                drone_fault=True) from exc
        if changed:
            log.warning("failsafe_params_enforced", order_id=flight.order_id,
                        drone=flight.drone, changed={k: list(v) for k, v in changed.items()})

    def _build(self, flight: Flight, option: Option, v: Vehicle, now: float) -> BuiltMission:
        a = self.airspace()
        try:
            built = build_delivery_mission(option.plan, self.airframe, mission_style(v.profile),
                                           pad=flight.pad, method=self.airframe.delivery.method)
        except ValueError as exc:
            raise FlightAbort(JobState.DECLINED, _reason(
                ReasonCode.VALIDATION_FAILED, f"mission could not be built: {exc}")) from exc
        self._validate(flight, built, a, now)
        flight.stages = tuple(s.value for s in built.stages)
        flight.release_seq = built.release_seq
        flight.delivery_seq = built.delivery_seq
        flight.land_seq = built.land_seq
        self._built = built
        return built

    async def _upload(self, flight: Flight, v: Vehicle, built: BuiltMission, now: float) -> None:
        a = self.airspace()
        lim = v.profile.fence
        fence = build_fence(
            a, FenceLimits(lim.max_vertices_per_polygon, lim.max_items, lim.max_polygons), now,
            route=[LatLon(w.lat_deg, w.lon_deg) for w in built.waypoints],
            max_alt_agl_m=built.max_alt_m,
        )
        items = mission_items(built)
        flight.mission_hash = items_hash(items)
        flight.items = items
        last: Exception | None = None
        for _ in range(self.settings.upload_attempts):
            try:
                await v.upload_fence(fence_items(fence))
                await v.upload_rally(rally_items(fence)[: lim.max_rally_points])
                await v.upload_mission(items)
                return
            except MavlinkError as exc:
                last = exc
                log.warning("upload_failed", order_id=flight.order_id, drone=flight.drone,
                            error=str(exc))
        raise FlightAbort(JobState.QUEUED, _reason(
            ReasonCode.UPLOAD_FAILED, f"upload to drone {flight.drone} failed: {last}"),
            drone_fault=True)

    def _preflight(self, flight: Flight, v: Vehicle, option: Option) -> None:
        snap = vehicle_snapshot(v)
        rec = self.book.get(flight.order_id)
        assert rec is not None
        intent = FlightIntent(pad=flight.pad, payload_kg=rec.job.parcel.mass_kg,
                              energy=option.energy, wind=None)
        report = run_preflight(snap, intent, self.airframe, self.settings.preflight_limits,
                               skip=SKIPPED_CHECKS | {CheckName.UPLOADS_MATCH})
        if not report.passed:
            text = "; ".join(f"{r.name.value}: {r.reason}" for r in report.failures)
            raise FlightAbort(JobState.QUEUED, _reason(
                ReasonCode.PREFLIGHT_FAILED, f"drone {flight.drone} failed pre-flight: {text}"),
                drone_fault=True)

    # -- following a flight ------------------------------------------------------------------

    async def _heard(self, flight: Flight) -> Vehicle:
        """The flight's drone once the link has it, however long that takes (warning now and
        then): a drone that may be in the air is never given up."""
        deadline = time.monotonic() + self.settings.reattach_wait_s
        v = self.link.vehicles.get(flight.drone)
        while v is None or not v.ready:
            if time.monotonic() > deadline:
                log.error("airborne_drone_not_heard", order_id=flight.order_id,
                          drone=flight.drone)
                deadline = time.monotonic() + self.settings.reattach_wait_s
            await asyncio.sleep(self.settings.poll_s * 4)
            v = self.link.vehicles.get(flight.drone)
        return v

    async def _resume_start(self, flight: Flight) -> None:
        """nestd stopped while arming or starting this flight: find out whether it flew."""
        v = await self._heard(flight)
        if not await self._took_off(v, self.settings.start_settle_s):
            log.info("start_not_carried_out", order_id=flight.order_id, drone=flight.drone)
            self._end_before_launch(flight, JobState.QUEUED, _restart_reason())
            await self._disarm_quietly(flight.drone)
            return
        flight.starting = False
        flight.launched_at_s = self.wall_clock()
        self.book.journal.set_flight(flight.order_id, flight.to_json())
        self._move(flight, JobState.LAUNCHED)
        await self._reattach(flight, JobState.LAUNCHED)

    @staticmethod
    async def _took_off(v: Vehicle, settle_s: float) -> bool:
        """After a start that may or may not have happened: whether the drone is flying.
        An armed drone on its pad takes off with its mission soon, or never (then the caller
        disarms it)."""
        def settled() -> bool:
            s = v.state
            return s.landed_state not in (None, MAV_LANDED_STATE_ON_GROUND) or s.armed is False

        with contextlib.suppress(TimeoutError):
            await v.wait_until(settled, settle_s, "start settled")
        return v.state.landed_state not in (None, MAV_LANDED_STATE_ON_GROUND)

    async def _reattach(self, flight: Flight, state: JobState) -> None:
        """Pick up a flight that was under way when nestd stopped."""
        flight.launched_at_s = flight.launched_at_s or self.wall_clock()
        v = await self._heard(flight)
        try:
            onboard = await v.download()
            if flight.items:
                same = compare_items(flight.items, onboard,
                                     seq0_is_home=v.profile.mission.seq0_is_home) is None
            else:  # a record from before items were kept
                same = items_hash(onboard) == flight.mission_hash
        except MavlinkError as exc:
            log.warning("reattach_download_failed", order_id=flight.order_id, error=str(exc))
            same = False
        log.info("flight_reattached", order_id=flight.order_id, drone=flight.drone,
                 state=state.value, mission_matches=same)
        if not same and state in IN_FLIGHT:
            # Not our mission any more: follow the drone down, don't pretend to know the job.
            self._move(flight, JobState.ABORTED, _reason(
                ReasonCode.FLIGHT_ERROR,
                "after a restart the drone no longer holds the job's mission"),
                parcel="unknown")
            await self._watch_until_down(flight)
            return
        await self._monitor(flight, v, state)

    async def _monitor(self, flight: Flight, v: Vehicle, state: JobState) -> None:
        """Follow the vehicle until the job is completed (or aborted and the drone is down)."""
        stages = flight.stages
        seen_airborne = state is not JobState.LAUNCHED
        turn_back_at = -math.inf
        while True:
            s = v.state
            seq = s.mission.current_seq
            on_ground = s.landed_state == MAV_LANDED_STATE_ON_GROUND
            if not on_ground and s.landed_state is not None:
                seen_airborne = True
            released = _released(flight, v, seen_airborne)
            state = self._state(flight)
            if (flight.cancel_reason is not None and state in IN_FLIGHT and not released
                    and time.monotonic() >= turn_back_at):
                if await self._turn_back(flight, v, flight.cancel_reason,
                                         ReasonCode.CANCELLED_BY_CUSTOMER):
                    return
                # Refused or unanswered (a link fade): the cancel stands; try again soon.
                turn_back_at = time.monotonic() + self.settings.turn_back_retry_s
                continue
            if state in IN_FLIGHT and not released and seen_airborne and (
                    s.mode_name in (v.profile.roles.rtl, v.profile.roles.land)):
                # The autopilot turned back on its own (a failsafe) with the parcel aboard.
                self._move(flight, JobState.ABORTED, _reason(
                    ReasonCode.SAFETY_ACTION,
                    f"the drone switched to {s.mode_name} before the drop"), parcel="aboard")
                flight.aborted = True
                await self._watch_until_down(flight)
                return
            stage = stages[seq] if seq is not None and 0 <= seq < len(stages) else None
            if state is JobState.LAUNCHED and seen_airborne and (
                    stage not in (None, Stage.TAKEOFF.value)):
                state = self._step(flight, state, JobState.ENROUTE)
            if state is JobState.ENROUTE and stage in (Stage.DESCEND.value, Stage.RELEASE.value):
                state = self._step(flight, state, JobState.DELIVERING)
            if released and state in (JobState.ENROUTE, JobState.DELIVERING):
                if state is JobState.ENROUTE:
                    state = self._step(flight, state, JobState.DELIVERING)
                state = self._step(flight, state, JobState.DELIVERED)
            if state is JobState.DELIVERED and stage not in (
                    Stage.RELEASE.value, Stage.DESCEND.value):
                state = self._step(flight, state, JobState.RETURNING)
            if seen_airborne and on_ground and s.armed is False:
                return self._landed(flight, v, state)
            await self._wait(v)

    def _landed(self, flight: Flight, v: Vehicle, state: JobState) -> None:
        where = position_of(v)
        away = where is None or distance_m(where, flight.pad) > self.settings.landed_away_m
        if state is JobState.DELIVERED and not away:
            # Home without a mission item on the way back seen (an RTL after the drop, or
            # the return flown while the link was out).
            state = self._step(flight, state, JobState.RETURNING)
        if state is JobState.RETURNING and not away:
            self._step(flight, state, JobState.LANDED)
            self._step(flight, JobState.LANDED, JobState.COMPLETED)
            return
        d = "unknown" if where is None else f"{distance_m(where, flight.pad):.0f} m from its pad"
        if state in IN_FLIGHT:
            self._move(flight, JobState.ABORTED, _reason(
                ReasonCode.FLIGHT_ERROR, f"the drone landed before the drop, {d}"),
                parcel="aboard")
        elif state in (JobState.DELIVERED, JobState.RETURNING):
            self._move(flight, JobState.FAILED, _reason(
                ReasonCode.FLIGHT_ERROR, f"the drone landed away from its pad, {d}"),
                parcel="delivered")

    def _state(self, flight: Flight) -> JobState:
        rec = self.book.get(flight.order_id)
        assert rec is not None
        return rec.state

    def _step(self, flight: Flight, frm: JobState, to: JobState) -> JobState:
        self._move(flight, to)
        return to

    async def _wait(self, v: Vehicle) -> None:
        with contextlib.suppress(TimeoutError):
            await v.wait_until(lambda: False, self.settings.poll_s, "progress")

    async def _turn_back(self, flight: Flight, v: Vehicle, why: str, code: ReasonCode) -> bool:
        """Send the drone home with the parcel; False if it did not take the command."""
        try:
            await v.return_to_launch()
        except (MavlinkError, TimeoutError) as exc:
            log.error("return_refused", order_id=flight.order_id, error=str(exc))
            return False
        flight.aborted = True
        self._move(flight, JobState.ABORTED, Reason(code=code.value, message=why),
                   parcel="aboard")
        await self._watch_until_down(flight)
        return True

    async def _watch_until_down(self, flight: Flight) -> None:
        """Keep the drone reserved (and watched by the link) until it is down and disarmed."""
        while True:
            v = self.link.vehicles.get(flight.drone)
            if v is not None and v.state.armed is False and (
                    v.state.landed_state in (None, MAV_LANDED_STATE_ON_GROUND)):
                log.info("drone_down", order_id=flight.order_id, drone=flight.drone)
                return
            if v is None:
                await asyncio.sleep(self.settings.poll_s * 4)
            else:
                await self._wait(v)


def _released(flight: Flight, v: Vehicle, seen_airborne: bool) -> bool:
    """Whether the drone has let go of the parcel: the release item reached, or the mission
    past it in the air."""
    m = v.state.mission
    reached, seq = m.last_reached_seq, m.current_seq
    return (reached is not None and reached >= flight.release_seq) or (
        seq is not None and seq > flight.release_seq and seen_airborne)


def flight_detail(flight: Flight) -> bytes:
    return orjson.dumps(flight.to_json())
