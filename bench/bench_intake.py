"""Intake benchmark: jobs accepted per second through parsing and the journal, and over MQTT.

Per job the daemon parses the payload, commits it as `received`, then as `accepted` (two
journal transactions; the journal is SQLite in WAL mode with synchronous=FULL, so each commit
waits for an fsync), and acknowledges the message only after that. Its four status messages
leave through the outbox, which deletes each row once the broker has acknowledged it.

In process: the same calls without MQTT, on a journal in a temporary directory on disk (and on
/dev/shm, where fsync costs nothing, to show what the disk costs). Over MQTT: a JobApi run as
the daemon runs it (manual acks, persistent session, uvloop) against a mosquitto this benchmark
starts on a free port, fed by a publisher in another process with 100 QoS 1 messages in
flight (the broker's per-client queue is lifted: see MAX_QUEUED). Logs are rendered as JSON
to /dev/null, as under journald. Prints tables; not a test.
Run with `.venv/bin/python bench/bench_intake.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nestd.devbroker import BrokerUnavailable, private_broker
from nestd.jobs.api import JobApi
from nestd.jobs.book import JobBook
from nestd.jobs.intake import parse_job
from nestd.jobs.journal import Journal, Outgoing
from nestd.jobs.lifecycle import JobState
from nestd.jobs.models import Job, Reason
from nestd.telemetry import Topics

STORE = "bench"
IN_FLIGHT = 100  # the publisher's QoS 1 window (docs: unbounded in-flight collapses aiomqtt)
ROWS_PER_JOB = 4  # received + accepted, each on jobs/<id>/events and the retained status
SHM = Path("/dev/shm")
MAX_QUEUED = 1_000_000  # the broker's per-client queue (mosquitto's default is 1,000)


def quiet_logging() -> None:
    """As the daemon logs under journald (JSON, info level), but into /dev/null."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    logging.getLogger("mqtt").setLevel(logging.ERROR)


def payload(order_id: str) -> bytes:
    """A typical submission (~300 bytes)."""
    return orjson.dumps({
        "order_id": order_id, "store_id": STORE,
        "destination": {"lat_deg": 32.9500123, "lon_deg": -96.7480456,
                        "notes": "back garden, by the shed"},
        "parcel": {"mass_kg": 1.4, "dimensions": {"length_cm": 30, "width_cm": 20,
                                                  "height_cm": 12}},
        "promised_by": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "priority": 3, "customer_ref": "cust-829341",
    })


class Desk:
    """Cancels and quotes are not measured here."""

    def cancel(self, order_id: str, reason: str | None) -> Reason | None:
        return None

    def quote_message(self, job: Job) -> bytes:
        return b"{}"


def make_api(journal: Journal, store: str = STORE) -> JobApi:
    topics = Topics(store)
    return JobApi(JobBook(journal, topics, time.time), topics, store, cancels=Desk(),
                  quotes=Desk())


@contextlib.contextmanager
def journal_in(base: Path | None, synchronous: str | None = None) -> Iterator[Journal]:
    with tempfile.TemporaryDirectory(dir=base, prefix="bench-intake-") as d:
        journal = Journal(Path(d) / "journal.sqlite3")
        if synchronous is not None:
            # What-if only: nestd never lowers this (NORMAL can lose the last commits).
            journal._conn.execute(f"PRAGMA synchronous = {synchronous}")
        try:
            yield journal
        finally:
            journal.close()


# -- in process -------------------------------------------------------------------------------


def new_jobs(journal: Journal, n: int) -> float:
    """Seconds for n jobs: parse_job, JobBook.submit, move to accepted (what handle() does)."""
    book = JobBook(journal, Topics(STORE), time.time)
    raws = [payload(f"o-{i}") for i in range(n)]
    t0 = time.perf_counter()
    for raw in raws:
        job = parse_job(raw, store_id=STORE, now=datetime.now(UTC))
        assert isinstance(job, Job)
        book.submit(job)
        book.move(job.order_id, JobState.ACCEPTED)
    dt = time.perf_counter() - t0
    assert journal.stats()["jobs_accepted"] == n
    return dt


def parse_only(n: int) -> float:
    raws = [payload(f"o-{i}") for i in range(n)]
    t0 = time.perf_counter()
    for raw in raws:
        assert isinstance(parse_job(raw, store_id=STORE, now=datetime.now(UTC)), Job)
    return time.perf_counter() - t0


def duplicates(journal: Journal, n: int) -> float:
    """Seconds for n resubmissions of one journaled job: the API's idempotent path (parse,
    find it, compare, render its status, queue the retained status again: one commit)."""
    api = make_api(journal)
    raw = payload("dup-1")
    api._on_submit(raw, api.topics.jobs_submit)
    t0 = time.perf_counter()
    for _ in range(n):
        api._on_submit(raw, api.topics.jobs_submit)
    dt = time.perf_counter() - t0
    assert journal.stats()["jobs_accepted"] == 1 and api.rejected == 0
    return dt


def fsync_rate(base: Path | None, n: int) -> float:
    """Bare fsyncs per second of a 4 KiB write: the floor under each commit."""
    with tempfile.TemporaryDirectory(dir=base, prefix="bench-fsync-") as d:
        fd = os.open(Path(d) / "f", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = b"x" * 4096
            t0 = time.perf_counter()
            for _ in range(n):
                os.write(fd, block)
                os.fsync(fd)
            return n / (time.perf_counter() - t0)
        finally:
            os.close(fd)


def median_rate(n: int, runs: int, once: Callable[[], float]) -> float:
    return statistics.median(n / once() for _ in range(runs))


# -- over MQTT --------------------------------------------------------------------------------


# Mosquitto queues at most 1,000 messages per client by default, connected or not, and drops
# QoS 1 messages past that after acknowledging them to the publisher: a burst that outruns
# nestd by more than that is lost. The benchmark floods, so it lifts the limit.
BROKER_CONF = f"max_queued_messages {MAX_QUEUED}\n"


def publisher(port: int, topic: str, raws: list[bytes], ready: Any, go: Any,
              took: Any) -> None:
    """Another process, as the retailer is: publish every payload QoS 1, IN_FLIGHT at a time."""
    logging.getLogger("mqtt").setLevel(logging.ERROR)

    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5,
                                  max_inflight_messages=IN_FLIGHT) as c:
            ready.set()
            await asyncio.to_thread(go.wait)
            todo = iter(raws)
            t0 = time.perf_counter()

            async def worker() -> None:
                for raw in todo:
                    await c.publish(topic, raw, qos=1)

            async with asyncio.TaskGroup() as tg:
                for i in range(IN_FLIGHT):
                    tg.create_task(worker(), name=f"publisher[{i}]")
            took.put(time.perf_counter() - t0)

    asyncio.run(main())


@dataclass(frozen=True)
class MqttRun:
    handled_s: float  # until the API has committed (and acked) every message
    drained_s: float  # until the outbox has been published and emptied
    published: int  # outbox rows published in that time
    publish_s: float  # the publisher's own time to get every PUBACK from the broker


async def until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.002)


async def mqtt_run(port: int, base: Path | None, raws: list[bytes], *,
                   journaled_first: bool = False, prefill: int = 0) -> MqttRun:
    """Time a JobApi on `raws`, sent by another process (with `journaled_first`, raws[0] is
    journaled and published before the clock starts); or, with no raws, time publishing
    `prefill` outbox rows."""
    store = f"bench-{uuid.uuid4().hex[:8]}"
    own = f'"store_id":"{store}"'.encode()
    raws = [r.replace(b'"store_id":"bench"', own) for r in raws]
    status = payload("status").replace(b'"store_id":"bench"', own)  # a status-sized body
    ctx = mp.get_context("spawn")
    ready, go, took = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = None
    with journal_in(base) as journal:
        api = make_api(journal, store)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 60
        # As the daemon connects: persistent session, acks sent by the API after the commit.
        client = aiomqtt.Client("127.0.0.1", port, identifier=f"nestd-{store}",
                                protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                properties=props)
        client._client.manual_ack_set(True)
        async with client:
            await api.subscribe(client)
            task = asyncio.create_task(api.run(client), name="job-api")
            try:
                if raws:
                    child = ctx.Process(target=publisher, daemon=True, args=(
                        port, api.topics.jobs_submit, raws, ready, go, took))
                    child.start()
                    proc = child
                    if not await asyncio.to_thread(ready.wait, 60):
                        raise TimeoutError("the publisher did not connect")
                if journaled_first:
                    api._on_submit(raws[0], api.topics.jobs_submit)
                    api._wake.set()
                await until(lambda: not journal.pending(1), 60, "outbox empty before the clock")
                handled0, published0 = api.handled, api.published
                t0 = time.perf_counter()
                if raws:
                    go.set()
                else:
                    journal.enqueue([Outgoing(api.topics.job_status(f"o-{i}"), status, qos=1,
                                              retain=True) for i in range(prefill)])
                    api._wake.set()
                # A message short means the broker dropped some (see MAX_QUEUED).
                await until(lambda: api.handled - handled0 == len(raws), 30 + len(raws) / 20,
                            f"all {len(raws)} messages handled ({api.handled - handled0} were)")
                handled_s = time.perf_counter() - t0
                await until(lambda: not journal.pending(1), 30 + (prefill + len(raws)) / 20,
                            "outbox drained")
                drained_s = time.perf_counter() - t0
                publish_s = await asyncio.to_thread(took.get, True, 60) if raws else 0.0
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if proc is not None:
                    go.set()  # a publisher still waiting (the run failed) ends too
                    proc.join(10)
        stats = journal.stats()
        want = 1 if journaled_first else len(raws)
        assert stats["jobs_accepted"] == want and stats["dead_letters"] == 0, stats
    return MqttRun(handled_s, drained_s, api.published - published0, publish_s)


# -- report -----------------------------------------------------------------------------------


def fs_type(path: Path) -> str:
    """The file system a path is on, from /proc/self/mounts ('?' if unknown)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer jobs and runs")
    args = ap.parse_args()
    n_local = 200 if args.quick else 1000
    n_mqtt = 300 if args.quick else 2000
    runs = 3 if args.quick else 5
    mqtt_runs = 1 if args.quick else 3
    quiet_logging()

    disk = Path(tempfile.gettempdir())
    places: list[tuple[str, Path | None]] = [(f"disk ({disk}, {fs_type(disk)})", None)]
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        places.append((f"/dev/shm ({fs_type(SHM)}, no real fsync)", SHM))
    else:
        print("/dev/shm is absent or not writable: the in-memory rows are skipped")

    try:
        import uvloop
        loop_name = f"uvloop {uvloop.__version__}"
        run: Callable[[Any], Any] = uvloop.run
    except ImportError:
        loop_name, run = "asyncio", asyncio.run

    cpus = os.cpu_count() or 1
    print(f"nestd intake benchmark - {platform.python_implementation()} "
          f"{platform.python_version()}, {loop_name}")
    print(f"cpus: {cpus}  journal: SQLite {__import__('sqlite3').sqlite_version}, WAL, "
          f"synchronous=FULL  median of {runs} runs (MQTT: {mqtt_runs})")
    print("bare fsync of a 4 KiB write: " + ", ".join(
        f"{label.split(' (')[0]} {fsync_rate(base, 200 if base is None else 2000):,.0f}/s"
        for label, base in places))
    print()

    print(f"In process, {n_local} jobs a run")
    head = f"{'what':<52} {'journal on':<34} {'jobs/s':>8} {'µs/job':>8}  commits/job"
    print(head)
    print("-" * len(head))

    def row(what: str, where: str, rate: float, commits: str) -> None:
        print(f"{what:<52} {where:<34} {rate:8,.0f} {1e6 / rate:8,.0f}  {commits}")

    row("parse_job only (no journal)", "-", median_rate(n_local, runs,
                                                        lambda: parse_only(n_local)), "0")
    for label, base in places:
        def fresh(base: Path | None = base, sync: str | None = None) -> float:
            with journal_in(base, sync) as j:
                return new_jobs(j, n_local)

        def dup(base: Path | None = base) -> float:
            with journal_in(base) as j:
                return duplicates(j, n_local)

        row("new job: parse_job + submit + move to accepted", label,
            median_rate(n_local, runs, fresh), "2")
        if base is None:
            row("  what-if synchronous=NORMAL (not used: unsafe)", label,
                median_rate(n_local, runs, lambda: fresh(None, "NORMAL")), "2, no fsync")
        row("duplicate: the same job again (idempotent path)", label,
            median_rate(n_local, runs, dup), "1 (re-queues the status)")
    print()

    with tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as d:
        try:
            with private_broker(Path(d), BROKER_CONF) as port:
                over_mqtt(run, port, places, n_mqtt, mqtt_runs, payload)
        except BrokerUnavailable as exc:
            print(f"Over MQTT: skipped, {exc}")


def over_mqtt(run: Callable[[Any], Any], port: int, places: Any, n_mqtt: int, mqtt_runs: int,
              payload: Any) -> None:
    print(f"Over MQTT: JobApi (manual acks, persistent session) <- mosquitto on "
          f"127.0.0.1:{port} <- a publisher process, QoS 1, {IN_FLIGHT} in flight")
    head = (f"{'what':<40} {'journal on':<34} {'n':>6} {'accepted/s':>11} "
            f"{'drained/s':>10} {'statuses/s':>11} {'pub PUBACK/s':>12}")
    print(head)
    print("-" * len(head))
    for label, base in places:
        for what, raws, first in (
            ("new jobs", [payload(f"o-{i}") for i in range(n_mqtt)], False),
            ("duplicates of one job", [payload("dup-1")] * n_mqtt, True),
        ):
            results = [run(mqtt_run(port, base, raws, journaled_first=first))
                       for _ in range(mqtt_runs)]
            n = len(raws)
            print(f"{what:<40} {label:<34} {n:6} "
                  f"{statistics.median(n / r.handled_s for r in results):11,.0f} "
                  f"{statistics.median(n / r.drained_s for r in results):10,.0f} "
                  f"{statistics.median(r.published / r.drained_s for r in results):11,.0f} "
                  f"{statistics.median(n / r.publish_s for r in results):12,.0f}")
        n_rows = ROWS_PER_JOB * n_mqtt
        results = [run(mqtt_run(port, base, [], prefill=n_rows))
                   for _ in range(mqtt_runs)]
        print(f"{'outbox alone (status rows)':<40} {label:<34} {n_rows:6} {'':>11} {'':>10} "
              f"{statistics.median(r.published / r.drained_s for r in results):11,.0f}")
    print()
    print("accepted/s: until every job is committed as accepted and acknowledged; drained/s: "
          "until its status messages are\npublished and deleted from the outbox "
          f"({ROWS_PER_JOB} per new job, 1 per duplicate); statuses/s: outbox rows published "
          "per second in that time;\npub PUBACK/s: the publisher's own rate (the broker "
          "acknowledges it without waiting for nestd).")
    print(f"The broker ran with max_queued_messages {MAX_QUEUED:,}: with mosquitto's default "
          "(1,000) a flood that outruns nestd\nby more than 1,000 messages loses the rest, "
          "though the publisher had its PUBACKs.")


if __name__ == "__main__":
    main()
