"""The job API against a real mosquitto, without drones: acks after the journal commit, shared
subscriptions, the outbox's order across a disconnect, and answers on MQTT 5 response topics.

JobApi runs on its own (as the daemon runs it: manual acks, optionally a persistent session),
with a trivial cancel and quote desk; the other side is a plain MQTT client.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from nestd.jobs.api import OUTBOX_BATCH, JobApi
from nestd.jobs.book import JobBook
from nestd.jobs.journal import Journal, JournalError, Outgoing
from nestd.jobs.models import Job, Reason
from nestd.telemetry import Topics
from tests.conftest import Broker
from tests.sim.gcs import until

TIMEOUT_S = 10.0
SESSION_EXPIRY_S = 60


def order(store: str, order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id, "store_id": store,
        "destination": {"lat_deg": 32.95, "lon_deg": -96.75},
        "parcel": {"mass_kg": 1.0},
        "promised_by": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }


@dataclass
class Desk:
    """The trivial cancel and quote handler: records cancels, quotes with its own name."""

    name: str = "desk"
    refusal: Reason | None = None
    cancelled: list[tuple[str, str | None]] = field(default_factory=list)

    def cancel(self, order_id: str, reason: str | None) -> Reason | None:
        self.cancelled.append((order_id, reason))
        return self.refusal

    def quote_message(self, job: Job) -> bytes:
        return orjson.dumps({"order_id": job.order_id, "quoted_by": self.name})


@dataclass
class Retailer:
    """The other side: publishes requests, keeps every message under the store's topics."""

    client: aiomqtt.Client
    store: str
    topics: Topics
    seen: defaultdict[str, list[aiomqtt.Message]] = field(
        default_factory=lambda: defaultdict(list))

    @property
    def reply_topic(self) -> str:
        return f"{self.topics.base}/replies/retailer"

    def payloads(self, topic: str) -> list[bytes]:
        return [bytes(m.payload) for m in self.seen[topic]]  # type: ignore[arg-type]

    def replies(self, correlation: bytes) -> list[aiomqtt.Message]:
        return [m for m in self.seen[self.reply_topic]
                if getattr(m.properties, "CorrelationData", None) == correlation]

    async def publish(self, topic: str, body: bytes, *, response_topic: str | None = None,
                      correlation: bytes | None = None) -> None:
        props = None
        if response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        await self.client.publish(topic, body, qos=1, properties=props)

    async def request(self, topic: str, body: bytes, timeout_s: float = TIMEOUT_S
                      ) -> aiomqtt.Message:
        """Publish with our response topic and fresh correlation data; the answer to it."""
        correlation = uuid.uuid4().bytes
        await self.publish(topic, body, response_topic=self.reply_topic, correlation=correlation)
        await until(lambda: self.replies(correlation), timeout_s, f"an answer on {topic}")
        (answer,) = self.replies(correlation)
        return answer

    async def answered_by(self, desk: Desk) -> None:
        """Quote requests until `desk` answers one (behind a share group another member may
        answer first). A quote writes nothing to the journal."""
        probe = orjson.dumps(order(self.store, "probe"))
        for _ in range(20):
            answer = await self.request(self.topics.quote_request, probe)
            if orjson.loads(bytes(answer.payload))["quoted_by"] == desk.name:  # type: ignore[arg-type]
                return
        raise AssertionError(f"{desk.name} answered none of 20 quote requests")


@contextlib.asynccontextmanager
async def retailer(broker: Broker, store: str) -> AsyncIterator[Retailer]:
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        # No local: our own requests don't come back to us.
        await client.subscribe(f"nest/{store}/#",
                               options=SubscribeOptions(qos=1, noLocal=True))  # type: ignore[no-untyped-call]
        shop = Retailer(client, store, Topics(store))

        async def collect() -> None:
            async for m in client.messages:
                shop.seen[m.topic.value].append(m)

        reader = asyncio.create_task(collect(), name="retailer")
        try:
            yield shop
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


@dataclass
class Running:
    api: JobApi
    task: asyncio.Task[None]

    async def ended_with(self) -> BaseException:
        """The exception that ended `run` (it must end by itself, within the timeout)."""
        done, _ = await asyncio.wait({self.task}, timeout=TIMEOUT_S)
        assert self.task in done, "the job API is still running"
        exc = self.task.exception()
        assert exc is not None
        return exc


@contextlib.asynccontextmanager
async def running_api(broker: Broker, journal: Journal, store: str, desk: Desk, *,
                      share_group: str | None = None, client_id: str | None = None,
                      persistent: bool = False) -> AsyncIterator[Running]:
    """JobApi.run on a client of its own, set up as the daemon's: acks by hand from the first
    packet on, and with `persistent`, clean start off and a session that outlives the
    connection."""
    topics = Topics(store)
    api = JobApi(JobBook(journal, topics, time.time), topics, store, cancels=desk, quotes=desk,
                 share_group=share_group)
    props = None
    if persistent:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
    client = aiomqtt.Client(broker.host, broker.port, identifier=client_id,
                            protocol=aiomqtt.ProtocolVersion.V5, clean_start=not persistent,
                            properties=props)
    client._client.manual_ack_set(True)
    async with client:
        # As the daemon does: subscribed before anything is published to the job topics.
        await api.subscribe(client)
        task = asyncio.create_task(api.run(client), name="job-api")
        try:
            yield Running(api, task)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def states(shop: Retailer, order_id: str) -> list[str]:
    return [orjson.loads(p)["state"]
            for p in shop.payloads(shop.topics.job_events(order_id))]


def refuse_new_jobs(path: Path) -> None:
    """Make the journal's next job insert fail inside SQLite (reads still work)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs"
                     " BEGIN SELECT RAISE(ABORT, 'the disk refuses writes'); END")
    finally:
        conn.close()


def accept_new_jobs(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER refuse_jobs")
    finally:
        conn.close()


def new_store() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


# -- submissions and acks ---------------------------------------------------------------------


async def test_a_submitted_job_is_journaled_and_its_status_answers_the_correlation_data(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk):
            correlation = b"\x00order-1\xff"
            await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, "o-1")),
                               response_topic=shop.reply_topic, correlation=correlation)
            await until(lambda: shop.replies(correlation), TIMEOUT_S, "the status answer")
            (answer,) = shop.replies(correlation)
            status = orjson.loads(bytes(answer.payload))  # type: ignore[arg-type]
            assert (status["order_id"], status["seq"], status["state"]) == ("o-1", 2, "accepted")
            rec = journal.get("o-1")
            assert rec is not None and rec.state.value == "accepted"
            # The records go through the outbox: each event once, then the retained status.
            await until(lambda: states(shop, "o-1") == ["received", "accepted"] and
                        not journal.pending(), TIMEOUT_S, "both events published")
            # (The broker acked the last status to nestd; our copy may still be on its way.)
            await until(lambda: [orjson.loads(p)["state"] for p in shop.payloads(
                shop.topics.job_status("o-1"))] == ["received", "accepted"], TIMEOUT_S,
                "both statuses retained in order")


async def test_an_acknowledged_submission_is_not_delivered_again_to_the_same_session(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    client_id = f"nestd-test-{uuid.uuid4().hex[:8]}"
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop:
            async with running_api(mosquitto, journal, store, desk, client_id=client_id,
                                   persistent=True):
                await shop.request(shop.topics.jobs_submit, orjson.dumps(order(store, "o-1")))
                # Messages are handled one at a time: once a later one is answered, the
                # submission's ack has been sent.
                await shop.answered_by(desk)
                await until(lambda: states(shop, "o-1") == ["received", "accepted"] and
                            not journal.pending(), TIMEOUT_S, "o-1's events published")
            async with running_api(mosquitto, journal, store, desk, client_id=client_id,
                                   persistent=True):
                # Sent to the session: an unacknowledged o-1 would come again before it, and
                # its status, queued again, would be published before o-2's events.
                await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, "o-2")))
                await until(lambda: states(shop, "o-2") == ["received", "accepted"],
                            TIMEOUT_S, "o-2's events published")
                assert len(shop.payloads(shop.topics.job_status("o-1"))) == 2


async def test_a_submission_the_journal_fails_to_commit_is_not_acknowledged_and_is_journaled_once_after_a_restart(  # noqa: E501
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    client_id = f"nestd-test-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "j.sqlite3"
    async with retailer(mosquitto, store) as shop:
        with Journal(path) as journal:
            async with running_api(mosquitto, journal, store, desk, client_id=client_id,
                                   persistent=True) as first:
                refuse_new_jobs(path)
                await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, "o-1")))
                failure = await first.ended_with()
                assert isinstance(failure, BaseExceptionGroup)
                assert failure.subgroup(JournalError) is not None
            assert journal.get("o-1") is None
        accept_new_jobs(path)
        with Journal(path) as journal:
            # The broker still holds the unacknowledged submission for this session.
            async with running_api(mosquitto, journal, store, desk, client_id=client_id,
                                   persistent=True) as second:
                await until(lambda: not journal.pending() and
                            states(shop, "o-1") == ["received", "accepted"],
                            TIMEOUT_S, "the redelivered submission journaled and published")
                assert [e.state.value for e in journal.events("o-1")] == ["received",
                                                                          "accepted"]
                assert journal.stats()["jobs_accepted"] == 1
                assert not second.task.done()


# -- shared subscriptions ---------------------------------------------------------------------


async def test_with_a_share_group_the_api_still_receives_jobs_cancels_and_quotes(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk, share_group="nests"):
            job = orjson.dumps(order(store, "o-1"))
            submitted = await shop.request(shop.topics.jobs_submit, job)
            assert orjson.loads(bytes(submitted.payload))["state"] == "accepted"  # type: ignore[arg-type]
            cancelled = await shop.request(shop.topics.job_cancel("o-1"),
                                           orjson.dumps({"reason": "changed mind"}))
            assert orjson.loads(bytes(cancelled.payload))["order_id"] == "o-1"  # type: ignore[arg-type]
            assert desk.cancelled == [("o-1", "changed mind")]
            quoted = await shop.request(shop.topics.quote_request, job)
            assert orjson.loads(bytes(quoted.payload)) == {  # type: ignore[arg-type]
                "order_id": "o-1", "quoted_by": "desk"}


async def test_two_apis_in_one_share_group_handle_each_job_exactly_once_between_them(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store = new_store()
    desk_a, desk_b = Desk("a"), Desk("b")
    ids = [f"o-{i}" for i in range(20)]
    with Journal(tmp_path / "a.sqlite3") as ja, Journal(tmp_path / "b.sqlite3") as jb:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, ja, store, desk_a, share_group="nests"), \
                running_api(mosquitto, jb, store, desk_b, share_group="nests"):
            for oid in ids:
                await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, oid)))
            await until(lambda: sum(j.stats()["jobs_accepted"] for j in (ja, jb)) == 20,
                        TIMEOUT_S, "all jobs accepted")
        in_a = {oid for oid in ids if ja.get(oid) is not None}
        in_b = {oid for oid in ids if jb.get(oid) is not None}
        assert in_a.isdisjoint(in_b)
        assert in_a | in_b == set(ids)
        assert in_a and in_b  # both members got a share


# -- the outbox -------------------------------------------------------------------------------


def fill_outbox(journal: Journal, topic: str, n: int) -> None:
    journal.enqueue([Outgoing(topic, str(i).encode(), qos=1) for i in range(n)])


async def test_the_outbox_publishes_more_than_a_batch_in_journal_order(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    n = 2 * OUTBOX_BATCH + 50
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop:
            topic = f"{shop.topics.base}/test/sequence"
            fill_outbox(journal, topic, n)
            async with running_api(mosquitto, journal, store, desk) as running:
                await until(lambda: len(shop.payloads(topic)) >= n, TIMEOUT_S, "all sent")
                assert [int(p) for p in shop.payloads(topic)] == list(range(n))
                assert journal.pending() == []
                assert running.api.published == n


async def test_the_outbox_resumes_in_order_after_the_broker_drops_the_connection_mid_stream(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    n = 10 * OUTBOX_BATCH
    client_id = f"nestd-test-{uuid.uuid4().hex[:8]}"
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop:
            topic = f"{shop.topics.base}/test/sequence"
            fill_outbox(journal, topic, n)
            async with running_api(mosquitto, journal, store, desk,
                                   client_id=client_id) as first:
                await until(lambda: len(shop.payloads(topic)) >= OUTBOX_BATCH, TIMEOUT_S,
                            "a first batch sent")
                # Another connection with the same client id: the broker drops the API's.
                async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=client_id,
                                          protocol=aiomqtt.ProtocolVersion.V5):
                    pass
                failure = await first.ended_with()
                assert isinstance(failure, BaseExceptionGroup)
                assert failure.subgroup(aiomqtt.MqttError) is not None
            left = len(journal.pending(n))
            assert 0 < left < n, "the connection was not dropped mid-stream"
            async with running_api(mosquitto, journal, store, desk):
                await until(lambda: not journal.pending() and
                            len(set(shop.payloads(topic))) == n, TIMEOUT_S, "all sent")
    got = [int(p) for p in shop.payloads(topic)]
    # In order from each connection; at most the one message in flight at the cut goes out
    # twice (sent, but its ack not yet seen, so still in the outbox).
    again = [i for i in range(1, len(got)) if got[i] != got[i - 1] + 1]
    assert len(again) <= 1
    if again:
        assert got[again[0]] == got[again[0] - 1]
        del got[again[0]]
    assert got == list(range(n))


# -- answers ----------------------------------------------------------------------------------


async def test_a_quote_request_without_a_response_topic_is_answered_on_quote_responses(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk):
            await shop.publish(shop.topics.quote_request, orjson.dumps(order(store, "q-1")))
            responses = shop.topics.quote_responses
            await until(lambda: shop.payloads(responses), TIMEOUT_S, "a quote response")
            assert [orjson.loads(p) for p in shop.payloads(responses)] == [
                {"order_id": "q-1", "quoted_by": "desk"}]
            assert journal.stats()["dead_letters"] == 0


async def test_a_wildcard_response_topic_leaves_the_api_running_and_the_rejection_on_jobs_rejected(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk) as running:
            bad_reply_to = f"{shop.topics.base}/replies/#"
            await shop.publish(shop.topics.jobs_submit, b'{"order_id": "bad-1"}',
                               response_topic=bad_reply_to, correlation=b"c-1")
            await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, "o-2")),
                               response_topic=bad_reply_to, correlation=b"c-2")
            rejected, deadletter = shop.topics.jobs_rejected, shop.topics.deadletter
            await until(lambda: shop.payloads(rejected) and shop.payloads(deadletter) and
                        states(shop, "o-2") == ["received", "accepted"], TIMEOUT_S,
                        "the rejection, the dead letter and the valid job's events")
            (rejection,) = [orjson.loads(p) for p in shop.payloads(rejected)]
            assert rejection["order_id"] == "bad-1"
            assert {r["code"] for r in rejection["reasons"]} == {"missing_field"}
            assert shop.payloads(deadletter) == [b'{"order_id": "bad-1"}']
            # The valid job with the same unusable response topic was still accepted, and the
            # API goes on answering.
            rec = journal.get("o-2")
            assert rec is not None and rec.state.value == "accepted"
            answer = await shop.request(shop.topics.jobs_submit,
                                        orjson.dumps(order(store, "o-3")))
            assert orjson.loads(bytes(answer.payload))["state"] == "accepted"  # type: ignore[arg-type]
            assert not running.task.done()


@dataclass
class BrokenDesk(Desk):
    """A quote handler with a bug: it raises for one order id."""

    def quote_message(self, job: Job) -> bytes:
        if job.order_id == "boom":
            raise ZeroDivisionError("a bug in the quote path")
        return super().quote_message(job)


async def test_a_message_that_hits_a_bug_is_dead_lettered_acked_and_does_not_block_the_rest(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), BrokenDesk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk) as run:
            boom = orjson.dumps(order(store, "boom"))
            await shop.publish(shop.topics.quote_request, boom)
            await shop.publish(shop.topics.jobs_submit, orjson.dumps(order(store, "after")))
            await until(lambda: states(shop, "after") == ["received", "accepted"], TIMEOUT_S,
                        "the job after the bad message handled")
            await until(lambda: shop.payloads(shop.topics.deadletter) == [boom], TIMEOUT_S,
                        "the bad message in the dead letter")
            (rej,) = [orjson.loads(p) for p in shop.payloads(shop.topics.jobs_rejected)]
            assert rej["reasons"][0]["code"] == "internal_error"
            assert not run.task.done()
            (letter,) = journal.dead_letters()
            assert letter.raw == boom


async def test_an_oversized_message_is_rejected_and_kept_only_up_to_the_size_cap(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store, desk = new_store(), Desk()
    with Journal(tmp_path / "j.sqlite3") as journal:
        async with retailer(mosquitto, store) as shop, \
                running_api(mosquitto, journal, store, desk) as run:
            cap = run.api.max_payload_bytes
            huge = b"{" + b" " * (4 * cap) + b"}"
            await shop.publish(shop.topics.jobs_submit, huge)
            await until(lambda: shop.payloads(shop.topics.jobs_rejected), TIMEOUT_S,
                        "the rejection")
            rej = orjson.loads(shop.payloads(shop.topics.jobs_rejected)[0])
            assert rej["reasons"][0]["code"] == "too_large"
            await until(lambda: shop.payloads(shop.topics.deadletter), TIMEOUT_S, "dead letter")
            assert shop.payloads(shop.topics.deadletter) == [huge[:cap]]
            (letter,) = journal.dead_letters()
            assert letter.raw == huge[:cap]
