"""The dispatcher service: the fleet as the planner sees it, accepted jobs triaged, queued
jobs assigned to drones and launched, quotes answered from the same view."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import structlog

from nestd.airspace import Airspace, LatLon, distance_m
from nestd.jobs.book import JobBook
from nestd.jobs.dispatch import DispatchSettings, QueuedJob, plan_dispatch
from nestd.jobs.executor import (
    MAV_LANDED_STATE_ON_GROUND,
    FlightExecutor,
    position_of,
    vehicle_snapshot,
)
from nestd.jobs.journal import JournalError
from nestd.jobs.lifecycle import JobState
from nestd.jobs.models import Job, Reason, ReasonCode
from nestd.jobs.quote import DroneView, FleetView, Quoter
from nestd.jobs.weather import MAV_LANDED_STATE_IN_AIR, NestWind, NestWindStatus
from nestd.mavlink.link import FleetLink
from nestd.mavlink.vehicle import Vehicle
from nestd.safety import (
    Airframe,
    WindLimits,
    battery_energy_from_telemetry,
)
from nestd.safety.preflight import (
    FlightIntent,
    check_battery_state,
    check_gps,
    check_on_pad,
)

log = structlog.get_logger("nestd.jobs.dispatcher")

# Reasons no amount of waiting fixes: the job goes back to the retailer at once.
PERMANENT = frozenset({
    ReasonCode.OVERWEIGHT, ReasonCode.OVERSIZE, ReasonCode.OUTSIDE_SERVICE_AREA,
    ReasonCode.NO_LEGAL_ROUTE, ReasonCode.ENERGY, ReasonCode.METHOD_UNAVAILABLE,
})
PAD_MATCH_M = 10.0  # a drone whose home is this close to a pad stands on that pad


def is_permanent(reasons: tuple[Reason, ...] | list[Reason]) -> bool:
    return bool(reasons) and all(r.code in PERMANENT for r in reasons)


class Dispatcher:
    def __init__(
        self,
        book: JobBook,
        quoter: Quoter,
        executor: FlightExecutor,
        link: FleetLink,
        airspace: Callable[[], Airspace],
        airframe: Airframe,
        settings: DispatchSettings,
        *,
        turnaround_s: float = 120.0,
        period_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        wind: NestWind | None = None,
    ) -> None:
        self.book = book
        self.quoter = quoter
        self.executor = executor
        self.link = link
        self.airspace = airspace
        self.airframe = airframe
        self.settings = settings
        self.turnaround_s = turnaround_s
        self.period_s = period_s
        self.wall_clock = wall_clock
        self._paused = False
        self.wind = wind or NestWind(WindLimits.for_airframe(airframe))
        self.wind_status: NestWindStatus | None = None
        self._wake = asyncio.Event()
        self.rounds = 0
        book.listen(lambda ev, rec: self._wake.set())
        executor.on_drone_free = self._wake.set

    @property
    def paused(self) -> bool:
        """Set on shutdown: nothing new is assigned, and nothing assigned is launched."""
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value
        # A job assigned ahead of its slot (or still in pre-flight) must not launch either.
        self.executor.paused = value

    # -- the fleet as the planner sees it ------------------------------------------------------

    def pad_of(self, v: Vehicle) -> tuple[str | None, LatLon] | None:
        s = v.state
        where = LatLon(s.home.lat_deg, s.home.lon_deg) if s.home is not None else position_of(v)
        if where is None:
            return None
        best: tuple[float, str | None, LatLon] | None = None
        for pad in self.airspace().pads:
            d = distance_m(pad.position, where)
            if d <= PAD_MATCH_M and (best is None or d < best[0]):
                best = (d, pad.id, pad.position)
        return (best[1], best[2]) if best is not None else (None, where)

    def fleet_view(self) -> FleetView:
        now = self.wall_clock()
        mono = time.monotonic()
        drones = []
        for key, v in sorted(self.link.vehicles.items()):
            pad = self.pad_of(v)
            s = v.state
            w = s.wind
            self.wind.observe(f"drone-{key}", now, w.north_mps, w.east_mps, w.var_horiz_m2ps2,
                              airborne=s.landed_state == MAV_LANDED_STATE_IN_AIR)
            wh = battery_energy_from_telemetry(self.airframe,
                                               remaining_pct=s.battery.remaining_pct,
                                               consumed_wh=s.battery.consumed_wh)
            if pad is None or wh is None:
                continue
            busy = self.executor.flights.get(self.executor.busy.get(key, ""))
            if key in self.executor.busy:
                back = busy.back_at_s if busy is not None and busy.back_at_s else now
                available = max(back, now) + self.turnaround_s
            else:
                available = now
            idle_ok = key in self.executor.busy or (
                s.armed is False and s.landed_state in (None, MAV_LANDED_STATE_ON_GROUND)
                and self._ready_to_fly(v, pad[1]))
            healthy = (v.ready and v.health.snapshot(mono).alive and idle_ok
                       and not self.executor.drone_cooling(key, now))
            drones.append(DroneView(
                key=key, pad_id=pad[0], pad=pad[1], airframe=self.airframe, battery_wh=wh,
                available_at_s=available,
                # A drone coming back gets a fresh battery in its turnaround.
                battery_wh_at_available=(self.airframe.battery_capacity_wh
                                         if key in self.executor.busy else None),
                healthy=healthy,
            ))
        queued = sum(1 for r in self.book.active() if r.state is JobState.QUEUED)
        ws = self.wind_status = self.wind.status(now)
        if self.paused:
            allowed, why, code = False, "nestd is stopping", ReasonCode.GROUND_STOP
        elif not ws.launches_allowed:
            allowed, why, code = False, f"wind: {ws.reason}", ReasonCode.WIND
        else:
            allowed, why, code = True, None, ReasonCode.WIND
        return FleetView(
            now_s=now, drones=tuple(drones), wind=ws.wind,
            launches_allowed=allowed,
            hold_reason=why,
            hold_code=code.value,
            next_launch_slot_s=self.executor.last_launch_s + self.settings.launch_spacing_s,
            queued_ahead=queued,
        )

    def _ready_to_fly(self, v: Vehicle, pad: LatLon) -> bool:
        """The pre-flight checks a drone on its pad must pass before it is offered for a job
        (a battery still hot from the last flight, say, waits until it has cooled; a drone
        that came down away from its pad, after a failsafe landing, waits to be brought back)."""
        snap = vehicle_snapshot(v)
        lim = self.executor.settings.preflight_limits
        on_pad = check_on_pad(snap, FlightIntent(pad=pad, payload_kg=0.0, energy=None,
                                                 wind=None), lim)
        return (check_battery_state(snap, lim).passed and check_gps(snap, lim).passed
                and on_pad.passed)

    # -- quotes -------------------------------------------------------------------------------

    def quote_message(self, job: Job) -> bytes:
        now = self.wall_clock()
        result = self.quoter.quote(job, self.fleet_view())
        msg = self.quoter.to_message(job, result, now, job.store_id)
        return msg.model_dump_json(exclude_none=True).encode()

    # -- dispatch -----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.executor.wait_ready()
        while True:
            self._wake.clear()
            try:
                self.step()
            except Exception:
                # A planning bug must not stop the daemon (flights in the air are the
                # executor's, and keep being watched); log it and try again next round.
                log.exception("dispatch_round_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.period_s):
                    await self._wake.wait()

    def step(self) -> None:
        self.rounds += 1
        active = self.book.active()
        if not active:
            return
        fleet = self.fleet_view()
        for rec in active:
            with self._one_job(rec.order_id):
                if rec.state is JobState.RECEIVED:  # journaled, but the accept didn't commit
                    self.book.move(rec.order_id, JobState.ACCEPTED)
                    self._triage(rec.job, fleet)
                elif rec.state is JobState.ACCEPTED:
                    self._triage(rec.job, fleet)
        if self.paused:
            return
        queue = [QueuedJob(r.job, r.updated_s) for r in self.book.active()
                 if r.state is JobState.QUEUED]
        if not queue:
            return
        assignments, declines, _waits = plan_dispatch(queue, fleet, self.quoter, self.settings)
        by_key = {d.key: d for d in fleet.drones}
        for a in assignments:
            opt = a.option
            drone = by_key[opt.drone]
            if self.executor.drone_busy(opt.drone):
                continue
            with self._one_job(a.order_id):
                self.book.move(a.order_id, JobState.ASSIGNED, drone=opt.drone, pad=a.pad_id,
                               eta_s=opt.eta_door_s,
                               detail={"launch_at_s": round(opt.launch_at_s, 1),
                                       "back_at_s": round(opt.back_at_s, 1)})
                self.executor.launch(a.order_id, opt, a.pad_id, drone.pad)
        for d in declines:
            with self._one_job(d.order_id):
                self._decline(d.order_id, d.reasons)

    @contextlib.contextmanager
    def _one_job(self, order_id: str) -> Iterator[None]:
        """One job that trips a bug must not stop dispatch for the others (a journal that
        fails fails them all, and ends the round)."""
        try:
            yield
        except JournalError:
            raise
        except Exception:
            log.exception("dispatch_failed_for_job", order_id=order_id)

    def _triage(self, job: Job, fleet: FleetView) -> None:
        result = self.quoter.quote(job, fleet)
        if not result.eligible and is_permanent(result.reasons):
            self._decline(job.order_id, result.reasons)
            return
        eta = result.best.eta_door_s if result.best is not None else None
        self.book.move(job.order_id, JobState.QUEUED, eta_s=eta)

    def _decline(self, order_id: str, reasons: tuple[Reason, ...]) -> None:
        first = reasons[0] if reasons else Reason(code=ReasonCode.NO_DRONE_IN_TIME.value,
                                                  message="no drone can deliver it in time")
        self.book.move(order_id, JobState.DECLINED, reason=first, drone=None, pad=None,
                       detail={"reasons": [r.model_dump(exclude_none=True) for r in reasons]})
