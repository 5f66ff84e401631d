"""One dispatch round, planned without I/O: which queued job flies on which drone now.

The round walks the queue in order and quotes each job against the fleet as the earlier
assignments of the round leave it: a drone given a job is free again when it has landed and
turned around (so later jobs are quoted realistic times, and wait for it if it is still their
earliest way to the door), and each launch pushes the next launch slot back by the spacing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from nestd.jobs.models import Job, Reason, ReasonCode
from nestd.jobs.quote import FleetView, Option, Quoter

PERMANENT = frozenset(
    {
        ReasonCode.OVERWEIGHT,
        ReasonCode.OVERSIZE,
        ReasonCode.OUTSIDE_SERVICE_AREA,
        ReasonCode.NO_LEGAL_ROUTE,
        ReasonCode.ENERGY,
        ReasonCode.METHOD_UNAVAILABLE,
    }
)
"""Reasons no amount of waiting fixes: the job goes back to the retailer at once."""
HOLDS = frozenset({ReasonCode.WIND, ReasonCode.GROUND_STOP})


def is_permanent(reasons: Iterable[Reason]) -> bool:
    """Every reason is permanent (one drone's wind limit next to another's range is not)."""
    codes = [r.code for r in reasons]
    return bool(codes) and all(c in PERMANENT for c in codes)


@dataclass(frozen=True, slots=True)
class QueuedJob:
    job: Job
    queued_at_s: float


def _order_key(q: QueuedJob) -> tuple[object, ...]:
    return (q.job.promised_by, -q.job.priority, q.queued_at_s, q.job.order_id)


def queue_order(jobs: Iterable[QueuedJob]) -> list[QueuedJob]:
    """Earliest promise first; then higher priority, earlier queued, order id (deterministic)."""
    return sorted(jobs, key=_order_key)


@dataclass(frozen=True, slots=True)
class Assignment:
    order_id: str
    option: Option
    pad_id: str | None
    """The pad the drone launches from (and holds until it is back)."""


@dataclass(frozen=True, slots=True)
class Decline:
    order_id: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    """Kept queued: launches on hold, its drone still busy or charging, or late but kept."""

    order_id: str
    reasons: tuple[Reason, ...]
    retry_at_s: float | None
    """When it could launch, if known (None: when the hold lifts, or never in time)."""


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    decline_if_late: bool = True
    """A job no drone can deliver by its promised time is handed back (else it keeps waiting)."""
    launch_spacing_s: float = 30.0
    assign_ahead_s: float = 0.0
    """Assign only drones that can launch within this horizon from now."""


def _waiting_reason(option: Option, now_s: float, taken: bool) -> Reason:
    why = "already flying a job from this round" if taken else "busy, charging or spacing"
    return Reason(
        code=ReasonCode.NO_DRONE.value,
        message=f"its earliest drone, {option.drone} ({why}), can launch in "
        f"{option.launch_at_s - now_s:.0f} s",
    )


def plan_dispatch(
    queue: Sequence[QueuedJob], fleet: FleetView, quoter: Quoter, settings: DispatchSettings
) -> tuple[list[Assignment], list[Decline], list[Wait]]:
    """Plan one round: assignments to launch now, jobs to hand back, jobs left queued.

    Each job gets the option with the earliest door ETA. It is assigned only if that drone
    can launch by now + `assign_ahead_s` and was not given a job earlier in the round; else
    the job waits for it (`retry_at_s` is its launch time). Permanent reasons decline; a
    launch hold waits; a job that can't be at the door by its promised time declines if
    `decline_if_late`, else waits.
    """
    now = fleet.now_s
    horizon = now + settings.assign_ahead_s
    turnaround = quoter.settings.turnaround_s
    drones = {d.key: d for d in fleet.drones}
    taken: set[int] = set()
    slot = fleet.next_launch_slot_s
    assignments: list[Assignment] = []
    declines: list[Decline] = []
    waits: list[Wait] = []
    for q in queue_order(queue):
        oid = q.job.order_id
        # The queue is walked explicitly here: jobs ahead have taken their slots already.
        view = replace(
            fleet, drones=tuple(drones.values()), next_launch_slot_s=slot, queued_ahead=0
        )
        result = quoter.quote(q.job, view)
        best = result.best
        if result.eligible and best is not None:
            if best.drone in taken or best.launch_at_s > horizon:
                reason = _waiting_reason(best, now, best.drone in taken)
                waits.append(Wait(oid, (reason,), best.launch_at_s))
                continue
            d = drones[best.drone]
            assignments.append(Assignment(oid, best, d.pad_id))
            taken.add(d.key)
            slot = max(slot, best.launch_at_s + settings.launch_spacing_s)
            # A drone that must charge first is charged to what the flight needs; it lands
            # with that less the flight (the contingency and the reserve are still aboard).
            at_launch = d.battery_wh_when_available
            if best.energy.ready_in_s is not None:
                at_launch = best.energy.required_wh + d.airframe.unusable_energy_wh
            drones[d.key] = replace(
                d,
                available_at_s=best.back_at_s + turnaround,
                battery_wh_at_available=at_launch - best.energy.flight_wh,
            )
            continue
        reasons = result.reasons
        codes = {r.code for r in reasons}
        if is_permanent(reasons):
            declines.append(Decline(oid, reasons))
        elif codes & HOLDS:
            waits.append(Wait(oid, reasons, None))
        elif ReasonCode.NO_DRONE_IN_TIME in codes and settings.decline_if_late:
            declines.append(Decline(oid, reasons))
        else:
            waits.append(Wait(oid, reasons, None))
    return assignments, declines, waits
