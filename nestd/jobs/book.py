"""The job book: lifecycle changes go through the journal, which queues their MQTT messages.

Every change is one journal transaction that also queues the status messages, so an event is
published if and only if it was committed. Listeners (the dispatcher, the flight executor)
hear about each change after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from nestd.jobs.journal import KEEP, EventRecord, JobRecord, Journal, Keep, Outgoing
from nestd.jobs.lifecycle import JobState
from nestd.jobs.models import Job, JobStatus, ParcelWhere, Reason
from nestd.telemetry import Topics

log = structlog.get_logger("nestd.jobs")

Listener = Callable[[EventRecord, JobRecord], None]

_PARCEL_BY_STATE = {
    JobState.LAUNCHED: ParcelWhere.ABOARD,
    JobState.ENROUTE: ParcelWhere.ABOARD,
    JobState.DELIVERING: ParcelWhere.ABOARD,
    JobState.DELIVERED: ParcelWhere.DELIVERED,
    JobState.RETURNING: ParcelWhere.DELIVERED,
    JobState.LANDED: ParcelWhere.DELIVERED,
    JobState.COMPLETED: ParcelWhere.DELIVERED,
}


def utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def status_message(ev: EventRecord, rec: JobRecord) -> JobStatus:
    detail = dict(ev.detail)
    parcel = detail.pop("parcel", None)
    where = ParcelWhere(parcel) if parcel else _PARCEL_BY_STATE.get(ev.state, ParcelWhere.AT_NEST)
    reason = None
    if ev.reason_code is not None:
        reason = Reason(code=ev.reason_code, message=ev.reason_message or ev.reason_code)
    return JobStatus(
        order_id=ev.order_id,
        store_id=rec.job.store_id,
        seq=ev.seq,
        state=ev.state,
        at=datetime.fromtimestamp(ev.at_s, UTC),
        reason=reason,
        drone=ev.drone,
        pad=ev.pad,
        eta_at_door=utc(ev.eta_s),
        parcel=where,
        detail=detail,
    )


class JobBook:
    """Submits and moves jobs through the journal; renders their status messages."""

    def __init__(self, journal: Journal, topics: Topics,
                 clock: Callable[[], float]) -> None:
        self.journal = journal
        self.topics = topics
        self.clock = clock
        self._listeners: list[Listener] = []

    def listen(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def render(self, ev: EventRecord, rec: JobRecord) -> Sequence[Outgoing]:
        payload = status_message(ev, rec).model_dump_json(exclude_none=True).encode()
        return (
            Outgoing(self.topics.job_events(ev.order_id), payload, qos=1, retain=False),
            Outgoing(self.topics.job_status(ev.order_id), payload, qos=1, retain=True),
        )

    def _changed(self, ev: EventRecord, rec: JobRecord) -> None:
        log.info("job_state", order_id=ev.order_id, state=ev.state.value, seq=ev.seq,
                 drone=ev.drone, reason=ev.reason_code, why=ev.reason_message)
        for fn in list(self._listeners):
            try:
                fn(ev, rec)
            except Exception:
                log.exception("job_listener_failed", order_id=ev.order_id)

    def submit(self, job: Job) -> tuple[JobRecord, bool]:
        rec, created = self.journal.submit(job, self.clock(), self.render)
        if created:
            events = self.journal.events(job.order_id)
            self._changed(events[-1], rec)
        return rec, created

    def move(self, order_id: str, to: JobState, *, reason: Reason | None = None,
             drone: int | Keep | None = KEEP, pad: str | Keep | None = KEEP,
             eta_s: float | None = None, detail: Mapping[str, Any] | None = None) -> EventRecord:
        ev = self.journal.transition(
            order_id, to, self.clock(), self.render,
            reason_code=None if reason is None else reason.code,
            reason_message=None if reason is None else reason.message,
            drone=drone, pad=pad, eta_s=eta_s, detail=detail,
        )
        rec = self.journal.get(order_id)
        assert rec is not None
        self._changed(ev, rec)
        return ev

    def get(self, order_id: str) -> JobRecord | None:
        return self.journal.get(order_id)

    def active(self) -> list[JobRecord]:
        return self.journal.active()
