"""The job lifecycle as a pure state machine: states, the legal transitions, cancel outcomes."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    PREFLIGHT = "preflight"
    LAUNCHED = "launched"
    ENROUTE = "enroute"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETURNING = "returning"
    LANDED = "landed"
    COMPLETED = "completed"
    # off-ramps
    REJECTED = "rejected"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    ABORTED = "aborted"
    FAILED = "failed"


S = JobState

TERMINAL: frozenset[JobState] = frozenset(
    {S.COMPLETED, S.REJECTED, S.DECLINED, S.CANCELLED, S.ABORTED, S.FAILED}
)

# Before launch nothing has flown: a job can still be declined (handed back for another
# carrier) or cancelled, and an assignment can fall back to the queue (the drone became
# unavailable, preflight failed, airspace or wind changed). A cancel can arrive before intake
# has accepted the job, so `received` can be cancelled too (cancel_outcome says CANCEL_NOW).
# After launch the parcel is in the air: the off-ramps are `aborted` (the flight turned back;
# the event says where the parcel is) and `failed` (the flight ended somewhere it should not
# have).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.RECEIVED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.QUEUED, S.DECLINED, S.CANCELLED}),
    S.QUEUED: frozenset({S.ASSIGNED, S.DECLINED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.PREFLIGHT, S.QUEUED, S.DECLINED, S.CANCELLED}),
    S.PREFLIGHT: frozenset({S.LAUNCHED, S.QUEUED, S.DECLINED, S.CANCELLED, S.FAILED}),
    S.LAUNCHED: frozenset({S.ENROUTE, S.ABORTED, S.FAILED}),
    S.ENROUTE: frozenset({S.DELIVERING, S.ABORTED, S.FAILED}),
    S.DELIVERING: frozenset({S.DELIVERED, S.ABORTED, S.FAILED}),
    S.DELIVERED: frozenset({S.RETURNING, S.FAILED}),
    S.RETURNING: frozenset({S.LANDED, S.FAILED}),
    S.LANDED: frozenset({S.COMPLETED}),
    **{t: frozenset() for t in TERMINAL},
}

# States in which the parcel is aboard a flying drone.
IN_FLIGHT: frozenset[JobState] = frozenset({S.LAUNCHED, S.ENROUTE, S.DELIVERING})
# States in which a drone is committed to the job (assigned, or airborne for it).
HOLDS_DRONE: frozenset[JobState] = frozenset(
    {S.ASSIGNED, S.PREFLIGHT, S.LAUNCHED, S.ENROUTE, S.DELIVERING, S.DELIVERED, S.RETURNING,
     S.LANDED}
)


class IllegalTransition(ValueError):
    def __init__(self, frm: JobState, to: JobState) -> None:
        super().__init__(f"a job can't go from {frm.value} to {to.value}")
        self.frm = frm
        self.to = to


def is_terminal(state: JobState) -> bool:
    return state in TERMINAL


def can_transition(frm: JobState, to: JobState) -> bool:
    return to in TRANSITIONS[frm]


def check_transition(frm: JobState, to: JobState) -> None:
    if to not in TRANSITIONS[frm]:
        raise IllegalTransition(frm, to)


class CancelOutcome(StrEnum):
    CANCEL_NOW = "cancel_now"
    """Not launched: the job becomes `cancelled` at once."""
    RETURN_WITH_PARCEL = "return_with_parcel"
    """In flight before the drop: the drone turns back with the parcel (`aborted`)."""
    REFUSED_AFTER_DROP = "refused_after_drop"
    """The parcel is already at the door: nothing to cancel."""
    ALREADY_ENDED = "already_ended"


def cancel_outcome(state: JobState) -> CancelOutcome:
    """What a cancel request does to a job in `state`.

    In `delivering` the winch may already have let go; the flight executor knows and refuses
    the cancel once the release is confirmed.
    """
    if state in TERMINAL:
        return CancelOutcome.ALREADY_ENDED
    if state in IN_FLIGHT:
        return CancelOutcome.RETURN_WITH_PARCEL
    if state in (S.DELIVERED, S.RETURNING, S.LANDED):
        return CancelOutcome.REFUSED_AFTER_DROP
    return CancelOutcome.CANCEL_NOW
