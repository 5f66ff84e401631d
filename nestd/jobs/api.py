"""The job API over MQTT: submissions, cancels and quotes in; status, rejections and quotes out.

Runs inside one broker session (`run(client)`; the daemon reconnects and calls it again).
A QoS 1 submission is acknowledged to the broker only after the journal has committed it
(manual acks), so a crash between receiving and committing makes the broker deliver it
again; duplicates are harmless because submission is idempotent on the order id. Everything
nestd publishes about jobs leaves through the journal's outbox, in order, and a row is
deleted only once the broker has acknowledged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nestd.aio import check_cancelled
from nestd.jobs.book import JobBook
from nestd.jobs.intake import order_id_hint, parse_cancel, parse_job, parse_quote_request
from nestd.jobs.journal import JournalError, Outgoing
from nestd.jobs.lifecycle import JobState
from nestd.jobs.models import Job, Reason, ReasonCode, Rejection
from nestd.telemetry import Topics

log = structlog.get_logger("nestd.jobs.api")

OUTBOX_BATCH = 100


class CancelHandler(Protocol):
    def cancel(self, order_id: str, reason: str | None) -> Reason | None:
        """Cancel a job; None when done (or under way), else why it can't be cancelled."""
        ...


class QuoteHandler(Protocol):
    def quote_message(self, job: Job) -> bytes:
        ...


def _raw(message: aiomqtt.Message) -> bytes:
    p = message.payload
    return p if isinstance(p, bytes) else (str(p).encode() if p is not None else b"")


def _prop(message: aiomqtt.Message, name: str) -> Any:
    props = message.properties
    return getattr(props, name, None) if props is not None else None


class JobApi:
    def __init__(self, book: JobBook, topics: Topics, store_id: str, *,
                 cancels: CancelHandler, quotes: QuoteHandler,
                 share_group: str | None = None,
                 max_payload_bytes: int = 16 * 1024,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.book = book
        self.journal = book.journal
        self.topics = topics
        self.store_id = store_id
        self.cancels = cancels
        self.quotes = quotes
        self.share_group = share_group
        self.max_payload_bytes = max_payload_bytes
        self.wall_clock = wall_clock
        self._wake = asyncio.Event()
        self._subscribed: aiomqtt.Client | None = None
        self.handled = 0
        self.rejected = 0
        self.published = 0
        book.listen(lambda ev, rec: self._wake.set())

    def _filter(self, topic: str) -> str:
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic

    async def subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe to the job topics (the daemon does this before it says it is online)."""
        # Acknowledge only after the journal commit (see the module docstring).
        client._client.manual_ack_set(True)
        for t in (self.topics.jobs_submit, self.topics.jobs_cancel_filter,
                  self.topics.quote_request):
            await client.subscribe(self._filter(t), qos=1)
        self._subscribed = client
        log.info("job_api_subscribed", share_group=self.share_group)

    async def run(self, client: aiomqtt.Client) -> None:
        if self._subscribed is not client:
            await self.subscribe(client)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_outbox(client), name="jobs-outbox")
            async for message in client.messages:
                # A message whose handling raised JournalError (nothing could be committed)
                # stays unacknowledged: the session restarts and the broker delivers it
                # again. Any other error is a bug with this message: it is dead-lettered and
                # acknowledged, so one bad message can't block every job behind it.
                try:
                    await self.handle(client, message)
                except JournalError:
                    raise
                except Exception as exc:
                    log.exception("message_handling_failed", topic=message.topic.value)
                    self.reject(_raw(message), message.topic.value, [Reason(
                        code=ReasonCode.INTERNAL_ERROR.value,
                        message=f"nestd could not process this message ({type(exc).__name__}); "
                                "it is kept in the dead letter for the operator")])
                if message.qos > 0:
                    client._client.ack(message.mid, message.qos)
                check_cancelled()

    # -- incoming -----------------------------------------------------------------------------

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """One message; never raises for bad input (the journal failing does raise: the
        message then stays unacknowledged and the broker delivers it again).

        Every message that names an MQTT 5 response topic gets its answer there, with its
        correlation data: the job's status, the rejection, or the quote. Those answers are
        sent directly; the records (status, rejections, dead letters) go through the outbox.
        """
        raw = _raw(message)
        topic = message.topic.value
        self.handled += 1
        reply: bytes | None = None
        fallback: str | None = None
        if message.topic.matches(self.topics.jobs_submit):
            reply = self._on_submit(raw, topic)
        elif message.topic.matches(self.topics.jobs_cancel_filter):
            reply = self._on_cancel(raw, topic)
        elif message.topic.matches(self.topics.quote_request):
            reply = self._on_quote(raw, topic)
            fallback = self.topics.quote_responses
        else:  # a retained or stray message on a topic we did not ask for
            log.warning("unexpected_topic", topic=topic)
        self._wake.set()
        if reply is not None:
            await self._answer(client, message, reply, fallback)

    async def _answer(self, client: aiomqtt.Client, message: aiomqtt.Message, body: bytes,
                      fallback: str | None) -> None:
        rt = _prop(message, "ResponseTopic")
        dest = rt if isinstance(rt, str) and rt else fallback
        if dest is None:
            return
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        cd = _prop(message, "CorrelationData")
        if cd is not None:
            props.CorrelationData = cd
        try:
            await client.publish(dest, body, qos=1, properties=props)
        except (ValueError, aiomqtt.MqttCodeError) as exc:
            # A wildcard or oversized response topic: the answer is on the shared topics.
            log.warning("bad_response_topic", topic=dest[:200], error=str(exc))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_clock(), UTC)

    def reject(self, raw: bytes, topic: str, reasons: list[Reason],
               order_id: str | None = None) -> bytes:
        """Journal the raw message as a dead letter and queue the rejection; returns it.

        An oversized payload is kept only up to the size cap (the rejection says how big it
        was): a flood of huge messages must not fill the disk or the dead-letter topic."""
        self.rejected += 1
        if len(raw) > self.max_payload_bytes:
            raw = raw[: self.max_payload_bytes]
        oid = order_id if order_id is not None else order_id_hint(raw)
        rej = Rejection(order_id=oid, store_id=self.store_id, topic=topic,
                        reasons=tuple(reasons), received_at=self.now())
        body = rej.model_dump_json(exclude_none=True).encode()
        out = [Outgoing(self.topics.jobs_rejected, body, qos=1),
               Outgoing(self.topics.deadletter, raw, qos=1)]
        self.journal.reject(raw, topic, oid, [(r.code, r.message, r.field) for r in reasons],
                            self.wall_clock(), out)
        log.warning("message_rejected", topic=topic, order_id=oid,
                    reasons=[r.code for r in reasons])
        return body

    def _status_body(self, order_id: str) -> bytes:
        rec = self.book.get(order_id)
        assert rec is not None
        events = self.journal.events(order_id)
        return next(o.payload for o in self.book.render(events[-1], rec) if o.retain)

    def _on_submit(self, raw: bytes, topic: str) -> bytes:
        parsed = parse_job(raw, store_id=self.store_id, now=self.now(),
                           max_bytes=self.max_payload_bytes)
        if not isinstance(parsed, Job):
            return self.reject(raw, topic, parsed)
        rec, created = self.book.submit(parsed)
        if created:
            self.book.move(parsed.order_id, JobState.ACCEPTED)
            return self._status_body(parsed.order_id)
        if rec.job != parsed:
            return self.reject(raw, topic, [Reason(
                code=ReasonCode.DUPLICATE_ORDER_ID.value,
                message=f"order {parsed.order_id} was already submitted with different "
                        "content; cancel it and submit under a new order id",
                field="order_id")], parsed.order_id)
        # The same job again (a retry): answer with its current status, fly it once.
        # Only the retained status is sent again: the events topic carries each event once.
        body = self._status_body(parsed.order_id)
        self.journal.enqueue([Outgoing(self.topics.job_status(parsed.order_id), body, qos=1,
                                       retain=True)])
        log.info("duplicate_submit", order_id=parsed.order_id, state=rec.state.value)
        return body

    def _on_cancel(self, raw: bytes, topic: str) -> bytes:
        parts = topic.split("/")
        order_id = parts[-2] if len(parts) >= 2 else ""
        parsed = parse_cancel(raw, max_bytes=self.max_payload_bytes)
        if isinstance(parsed, list):
            return self.reject(raw, topic, parsed, order_id)
        if self.book.get(order_id) is None:
            return self.reject(raw, topic, [Reason(
                code=ReasonCode.UNKNOWN_ORDER.value,
                message=f"no job with order id {order_id!r}", field="order_id")], order_id)
        refusal = self.cancels.cancel(order_id, parsed.reason)
        if refusal is not None:
            return self.reject(raw, topic, [refusal], order_id)
        return self._status_body(order_id)

    def _on_quote(self, raw: bytes, topic: str) -> bytes:
        parsed = parse_quote_request(raw, store_id=self.store_id, now=self.now(),
                                     max_bytes=self.max_payload_bytes)
        if not isinstance(parsed, Job):
            return self.reject(raw, topic, parsed)
        # Quotes are answers, not records: sent directly, not through the journal.
        return self.quotes.quote_message(parsed)

    # -- outgoing -----------------------------------------------------------------------------

    async def _publish_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            check_cancelled()
            self._wake.clear()
            rows = self.journal.pending(OUTBOX_BATCH)
            for row in rows:
                await client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                self.journal.mark_sent([row.id])
                self.published += 1
                check_cancelled()
            if len(rows) < OUTBOX_BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
