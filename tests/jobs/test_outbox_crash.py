"""Crash safety of job events: a process killed between the journal commit and the publish
(or between the publish and the outbox delete) loses nothing and, deduplicated by the per-job
event sequence, the retailer sees every event exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from nestd.jobs.api import JobApi
from nestd.jobs.book import JobBook
from nestd.jobs.journal import Journal
from nestd.telemetry import Topics
from tests.conftest import Broker
from tests.sim.gcs import until

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys, time
    from datetime import UTC, datetime, timedelta
    import aiomqtt
    from nestd.jobs.book import JobBook
    from nestd.jobs.journal import Journal
    from nestd.jobs.lifecycle import JobState
    from nestd.jobs.models import Job
    from nestd.telemetry import Topics

    state_dir, store, host, port, publish_first = sys.argv[1:6]
    journal = Journal.in_state_dir(__import__("pathlib").Path(state_dir))
    book = JobBook(journal, Topics(store), time.time)
    job = Job.model_validate({
        "order_id": "crash-1", "store_id": store,
        "destination": {"lat_deg": 33.0, "lon_deg": -96.0}, "parcel": {"mass_kg": 1.0},
        "promised_by": datetime.now(UTC) + timedelta(hours=1)})
    book.submit(job)
    book.move("crash-1", JobState.ACCEPTED)

    async def publish_then_die():
        async with aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as c:
            for row in journal.pending():
                await c.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        # Published and acknowledged by the broker, but the rows are still in the outbox.
        os.kill(os.getpid(), signal.SIGKILL)

    if publish_first == "1":
        asyncio.run(publish_then_die())
    os.kill(os.getpid(), signal.SIGKILL)  # committed, nothing published
""")


def run_child(state_dir: Path, store: str, broker: Broker, publish_first: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(state_dir), store, broker.host, str(broker.port),
         "1" if publish_first else "0"],
        cwd=ROOT, capture_output=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


class Retailer:
    """Consumes the job events topic and deduplicates on (order id, seq)."""

    def __init__(self) -> None:
        self.raw: list[dict[str, Any]] = []

    def deduplicated(self) -> list[tuple[str, int, str]]:
        seen: dict[tuple[str, int], str] = {}
        for e in self.raw:
            seen.setdefault((e["order_id"], e["seq"]), e["state"])
        return [(o, s, st) for (o, s), st in sorted(seen.items())]


async def _restart_and_collect(state_dir: Path, store: str, broker: Broker,
                               retailer: Retailer) -> Journal:
    journal = Journal.in_state_dir(state_dir)
    book = JobBook(journal, Topics(store), lambda: 0.0)

    class Nobody:
        def cancel(self, order_id: str, reason: str | None) -> None:
            return None

        def quote_message(self, job: Any) -> bytes:
            return b"{}"

    api = JobApi(book, Topics(store), store, cancels=Nobody(), quotes=Nobody())
    client = aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5)
    client._client.manual_ack_set(True)
    async with client:
        task = asyncio.create_task(api.run(client))
        try:
            await until(lambda: not journal.pending(), 10, "outbox drained")
            await until(lambda: len(retailer.deduplicated()) == 2, 10, "both events seen")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return journal


async def _watch(broker: Broker, store: str, retailer: Retailer,
                 ready: asyncio.Event) -> None:
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe(f"nest/{store}/jobs/+/events", qos=1)
        ready.set()
        async for m in c.messages:
            retailer.raw.append(orjson.loads(bytes(m.payload)))  # type: ignore[arg-type]


async def _scenario(broker: Broker, tmp_path: Path, publish_first: bool) -> Retailer:
    store = f"crash-{uuid.uuid4().hex[:8]}"
    retailer = Retailer()
    ready = asyncio.Event()
    watcher = asyncio.create_task(_watch(broker, store, retailer, ready))
    try:
        await ready.wait()
        await asyncio.to_thread(run_child, tmp_path, store, broker, publish_first)
        journal = await _restart_and_collect(tmp_path, store, broker, retailer)
        journal.close()
        # Another restart publishes nothing more: the outbox was emptied after the acks.
        reopened = Journal.in_state_dir(tmp_path)
        assert reopened.pending() == []
        reopened.close()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return retailer


async def test_events_committed_before_a_crash_are_published_after_the_restart(
    mosquitto: Broker, tmp_path: Path
) -> None:
    retailer = await _scenario(mosquitto, tmp_path, publish_first=False)
    assert retailer.deduplicated() == [("crash-1", 1, "received"), ("crash-1", 2, "accepted")]
    assert len(retailer.raw) == 2  # nothing had gone out before the crash


async def test_events_published_but_not_cleared_before_a_crash_dedupe_to_exactly_once(
    mosquitto: Broker, tmp_path: Path
) -> None:
    retailer = await _scenario(mosquitto, tmp_path, publish_first=True)
    assert retailer.deduplicated() == [("crash-1", 1, "received"), ("crash-1", 2, "accepted")]
    # At least once on the wire (sent before the crash and again after it), in seq order
    # each time, and exactly once after deduplication on seq.
    assert len(retailer.raw) == 4
    assert [e["seq"] for e in retailer.raw] == [1, 2, 1, 2]
