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
from nestd.jobs.journal import Outgoing
from nestd.jobs.models import Job, Reason, Rejection
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
        self.handled = 0
        self.rejected = 0
        self.published = 0
        book.listen(lambda ev, rec: self._wake.set())

    def _filter(self, topic: str) -> str:
        return f"$share/{self.share_group}/{topic}" if self.share_group else topic

    async def run(self, client: aiomqtt.Client) -> None:
        # Acknowledge only after the journal commit (see the module docstring).
        client._client.manual_ack_set(True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_outbox(client), name="jobs-outbox")
            for t in (self.topics.jobs_submit, self.topics.jobs_cancel_filter,
                      self.topics.quote_request):
                await client.subscribe(self._filter(t), qos=1)
            log.info("job_api_subscribed", share_group=self.share_group)
            async for message in client.messages:
                try:
                    await self.handle(client, message)
                finally:
                    if message.qos > 0:
                        client._client.ack(message.mid, message.qos)
                check_cancelled()

    # -- incoming -----------------------------------------------------------------------------

    async def handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """One message; never raises for bad input (the journal failing does raise: the
        message then stays unacknowledged and the broker delivers it again)."""
        raw = message.payload if isinstance(message.payload, bytes) else (
            str(message.payload).encode() if message.payload is not None else b"")
        topic = message.topic.value
        self.handled += 1
        if message.topic.matches(self.topics.jobs_submit):
            self._on_submit(raw, topic, message)
        elif message.topic.matches(self.topics.jobs_cancel_filter):
            self._on_cancel(raw, topic, message)
        elif message.topic.matches(self.topics.quote_request):
            await self._on_quote(client, raw, topic, message)
        else:  # a retained or stray message on a topic we did not ask for
            log.warning("unexpected_topic", topic=topic)
        self._wake.set()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_clock(), UTC)

    def _response_outgoing(self, message: aiomqtt.Message, payload: bytes) -> list[Outgoing]:
        rt = _prop(message, "ResponseTopic")
        return [Outgoing(rt, payload, qos=1)] if isinstance(rt, str) and rt else []

    def reject(self, raw: bytes, topic: str, reasons: list[Reason],
               message: aiomqtt.Message | None = None, order_id: str | None = None) -> None:
        self.rejected += 1
        oid = order_id if order_id is not None else order_id_hint(raw)
        rej = Rejection(order_id=oid, store_id=self.store_id, topic=topic,
                        reasons=tuple(reasons), received_at=self.now())
        body = rej.model_dump_json(exclude_none=True).encode()
        out = [Outgoing(self.topics.jobs_rejected, body, qos=1),
               Outgoing(self.topics.deadletter, raw, qos=1)]
        if message is not None:
            out += self._response_outgoing(message, body)
        self.journal.reject(raw, topic, oid, [(r.code, r.message, r.field) for r in reasons],
                            self.wall_clock(), out)
        log.warning("message_rejected", topic=topic, order_id=oid,
                    reasons=[r.code for r in reasons])

    def _on_submit(self, raw: bytes, topic: str, message: aiomqtt.Message) -> None:
        parsed = parse_job(raw, store_id=self.store_id, now=self.now(),
                           max_bytes=self.max_payload_bytes)
        if not isinstance(parsed, Job):
            self.reject(raw, topic, parsed, message)
            return
        rec, created = self.book.submit(parsed)
        if created:
            from nestd.jobs.lifecycle import JobState

            self.book.move(parsed.order_id, JobState.ACCEPTED)
            return
        if rec.job != parsed:
            self.reject(raw, topic, [Reason(
                code="duplicate_order_id",
                message=f"order {parsed.order_id} was already submitted with different "
                        "content; cancel it and submit under a new order id",
                field="order_id")], message, parsed.order_id)
            return
        # The same job again (a retry): answer with its current status, fly it once.
        # Only the retained status is sent again: the events topic carries each event once.
        events = self.journal.events(parsed.order_id)
        status = [o for o in self.book.render(events[-1], rec) if o.retain]
        out = status + self._response_outgoing(message, status[0].payload)
        self.journal.enqueue(out)
        log.info("duplicate_submit", order_id=parsed.order_id, state=rec.state.value)

    def _on_cancel(self, raw: bytes, topic: str, message: aiomqtt.Message) -> None:
        parts = topic.split("/")
        order_id = parts[-2] if len(parts) >= 2 else ""
        parsed = parse_cancel(raw, max_bytes=self.max_payload_bytes)
        if isinstance(parsed, list):
            self.reject(raw, topic, parsed, message, order_id)
            return
        if self.book.get(order_id) is None:
            self.reject(raw, topic, [Reason(code="unknown_order",
                                            message=f"no job with order id {order_id!r}",
                                            field="order_id")], message, order_id)
            return
        refusal = self.cancels.cancel(order_id, parsed.reason)
        if refusal is not None:
            self.reject(raw, topic, [refusal], message, order_id)

    async def _on_quote(self, client: aiomqtt.Client, raw: bytes, topic: str,
                        message: aiomqtt.Message) -> None:
        parsed = parse_quote_request(raw, store_id=self.store_id, now=self.now(),
                                     max_bytes=self.max_payload_bytes)
        if not isinstance(parsed, Job):
            self.reject(raw, topic, parsed, message)
            return
        body = self.quotes.quote_message(parsed)
        rt = _prop(message, "ResponseTopic")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        cd = _prop(message, "CorrelationData")
        if cd is not None:
            props.CorrelationData = cd
        dest = rt if isinstance(rt, str) and rt else self.topics.quote_responses
        # Quotes are answers, not records: sent directly, not through the journal.
        with contextlib.suppress(aiomqtt.MqttCodeError):
            await client.publish(dest, body, qos=1, properties=props)

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
