"""The job journal: jobs, their lifecycle events and the MQTT outbox, committed to SQLite (WAL).

A job or event is committed before its MQTT message is acknowledged, and every message nestd
publishes about it is queued in the same transaction (a transactional outbox): a message is
sent if and only if the change it reports was committed. The publisher sends the outbox in id
order and deletes a row only once the broker has acknowledged it, so after a crash a message
may go out twice (receivers deduplicate on the event seq) but never zero times.

Calls are synchronous and short; the service layer makes them from the event loop thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

from nestd.jobs.lifecycle import JobState, check_transition, is_terminal
from nestd.jobs.models import Job

JOURNAL_FILE: Final = "journal.sqlite3"
BUSY_TIMEOUT_MS: Final = 5000
# Written into the file header so that a journal is recognisable as one ("nest").
APPLICATION_ID: Final = 0x6E657374
# The file holds customer destinations and references: owner and group only.
FILE_MODE: Final = 0o640
STATE_DIR_MODE: Final = 0o750
MAX_TOPIC_BYTES: Final = 65535


# Schema migrations: MIGRATIONS[n] takes a file from user_version n to n + 1. Append only;
# never edit a step that has shipped.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (  # 1: jobs, events, outbox, dead letters
        f"PRAGMA application_id = {APPLICATION_ID}",
        """
        CREATE TABLE jobs (
            order_id    TEXT PRIMARY KEY NOT NULL,
            job_json    TEXT NOT NULL,
            state       TEXT NOT NULL,
            active      INTEGER NOT NULL CHECK (active IN (0, 1)),
            drone       INTEGER,
            pad         TEXT,
            created_s   REAL NOT NULL,
            updated_s   REAL NOT NULL,
            last_seq    INTEGER NOT NULL CHECK (last_seq >= 1),
            flight_json TEXT NOT NULL DEFAULT '{}'
        )
        """,
        # active() reads only non-terminal jobs, oldest first.
        "CREATE INDEX jobs_active ON jobs (created_s, order_id) WHERE active = 1",
        """
        CREATE TABLE events (
            order_id       TEXT NOT NULL REFERENCES jobs (order_id),
            seq            INTEGER NOT NULL CHECK (seq >= 1),
            state          TEXT NOT NULL,
            at_s           REAL NOT NULL,
            reason_code    TEXT,
            reason_message TEXT,
            drone          INTEGER,
            pad            TEXT,
            eta_s          REAL,
            detail_json    TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (order_id, seq)
        ) WITHOUT ROWID
        """,
        # AUTOINCREMENT: an id is never reused, even once the table has been emptied, so a
        # late mark_sent can't delete a newer message and ids always grow in send order.
        """
        CREATE TABLE outbox (
            id      INTEGER PRIMARY KEY AUTOINCREMENT,
            topic   TEXT NOT NULL,
            payload BLOB NOT NULL,
            qos     INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
            retain  INTEGER NOT NULL CHECK (retain IN (0, 1))
        )
        """,
        """
        CREATE TABLE dead_letters (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            at_s         REAL NOT NULL,
            topic        TEXT NOT NULL,
            order_id     TEXT,
            raw          BLOB NOT NULL,
            reasons_json TEXT NOT NULL
        )
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class JournalError(Exception):
    """The journal can't be used: the message names the file and the cause."""


class UnknownOrder(JournalError, KeyError):
    """No job with this order id is in the journal."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no job with order id {order_id!r} in the journal")
        self.order_id = order_id

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class Keep(Enum):
    """The type of KEEP."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
"""Leave this field of the job as it is (None clears it)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to send later."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    def __post_init__(self) -> None:
        # Refuse here what the MQTT client would refuse at publish time: the outbox is sent in
        # order, so one unsendable row would hold back every message behind it.
        if not self.topic or "+" in self.topic or "#" in self.topic or "\0" in self.topic:
            raise ValueError(f"can't publish to the topic {self.topic!r}")
        if len(self.topic.encode()) > MAX_TOPIC_BYTES:
            raise ValueError(f"topic is longer than {MAX_TOPIC_BYTES} bytes")
        if not isinstance(self.payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(self.payload).__name__}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {self.qos!r}")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    """Increasing: send in id order."""
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class JobRecord:
    order_id: str
    job: Job
    state: JobState
    drone: int | None
    pad: str | None
    created_s: float
    updated_s: float
    last_seq: int
    """Seq of the newest event (1 = received)."""
    flight: dict[str, Any]
    """What the flight executor stored to re-attach to the flight after a restart."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    order_id: str
    seq: int
    """1, 2, 3... per job."""
    state: JobState
    at_s: float
    reason_code: str | None
    reason_message: str | None
    drone: int | None
    """The job's drone after this event."""
    pad: str | None
    """The job's pad after this event."""
    eta_s: float | None
    """ETA at the door, POSIX seconds."""
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that was refused, kept verbatim for inspection."""

    id: int
    at_s: float
    topic: str
    order_id: str | None
    raw: bytes
    reasons: list[tuple[str, str, str | None]]
    """(code, message, field) for each reason."""


Render = Callable[[EventRecord, JobRecord], Sequence[Outgoing]]
"""The messages that report an event; gets the job as it is after the event."""


class Journal:
    """The job journal in one SQLite file. Each public write is one transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = _open(self.path)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Journal:
        """The journal in `state_dir`, creating the directory if it is missing."""
        try:
            state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(
                f"can't create the state directory {state_dir}: {e.strerror or e}"
            ) from e
        return cls(state_dir / JOURNAL_FILE)

    @property
    def schema_version(self) -> int:
        return _user_version(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs and events ----------------------------------------------------------------------

    def submit(self, job: Job, now_s: float, render: Render) -> tuple[JobRecord, bool]:
        """Record a new job as `received`: (record, True). Idempotent on the order id: a job
        already in the journal is returned as it is now, (record, False), and nothing is
        written, even if `job` differs from the stored one (compare `record.job` to tell)."""
        _check_time(now_s)
        job_json = job.model_dump_json()
        with self._write() as conn:
            row = conn.execute(_SELECT_JOB + " WHERE order_id = ?", (job.order_id,)).fetchone()
            if row is not None:
                return _job_record(row), False
            conn.execute(
                "INSERT INTO jobs (order_id, job_json, state, active, drone, pad, created_s,"
                " updated_s, last_seq) VALUES (?, ?, ?, 1, NULL, NULL, ?, ?, 1)",
                (job.order_id, job_json, JobState.RECEIVED.value, now_s, now_s),
            )
            event = EventRecord(
                order_id=job.order_id, seq=1, state=JobState.RECEIVED, at_s=now_s,
                reason_code=None, reason_message=None, drone=None, pad=None, eta_s=None,
                detail={},
            )
            _insert_event(conn, event, "{}")
            record = JobRecord(
                order_id=job.order_id, job=Job.model_validate_json(job_json),
                state=JobState.RECEIVED, drone=None, pad=None, created_s=now_s,
                updated_s=now_s, last_seq=1, flight={},
            )
            _enqueue(conn, render(event, record))
        return record, True

    def transition(self, order_id: str, to: JobState, now_s: float, render: Render, *,
                   reason_code: str | None = None, reason_message: str | None = None,
                   drone: int | Keep | None = KEEP, pad: str | Keep | None = KEEP,
                   eta_s: float | None = None,
                   detail: Mapping[str, Any] | None = None) -> EventRecord:
        """Move a job to `to`, record the event and queue what `render` makes of it.

        Raises lifecycle.IllegalTransition, UnknownOrder, or whatever `render` raises; in
        every case nothing is written.
        """
        _check_time(now_s)
        if eta_s is not None:
            _check_time(eta_s)
        to = JobState(to)
        detail_json = _dump(dict(detail or {}))
        with self._write() as conn:
            row = conn.execute(_SELECT_JOB + " WHERE order_id = ?", (order_id,)).fetchone()
            if row is None:
                raise UnknownOrder(order_id)
            before = _job_record(row)
            check_transition(before.state, to)
            after = dataclasses.replace(
                before, state=to,
                drone=before.drone if isinstance(drone, Keep) else drone,
                pad=before.pad if isinstance(pad, Keep) else pad,
                updated_s=now_s, last_seq=before.last_seq + 1,
            )
            conn.execute(
                "UPDATE jobs SET state = ?, active = ?, drone = ?, pad = ?, updated_s = ?,"
                " last_seq = ? WHERE order_id = ?",
                (to.value, int(not is_terminal(to)), after.drone, after.pad, now_s,
                 after.last_seq, order_id),
            )
            event = EventRecord(
                order_id=order_id, seq=after.last_seq, state=to, at_s=now_s,
                reason_code=reason_code, reason_message=reason_message, drone=after.drone,
                pad=after.pad, eta_s=eta_s, detail=json.loads(detail_json),
            )
            _insert_event(conn, event, detail_json)
            _enqueue(conn, render(event, after))
        return event

    def set_flight(self, order_id: str, flight: Mapping[str, Any]) -> None:
        """Replace the job's flight blob (must be JSON: no NaN, string keys)."""
        flight_json = _dump(dict(flight))
        with self._write() as conn:
            cur = conn.execute("UPDATE jobs SET flight_json = ? WHERE order_id = ?",
                               (flight_json, order_id))
            if cur.rowcount == 0:
                raise UnknownOrder(order_id)

    def get(self, order_id: str) -> JobRecord | None:
        rows = self._read(_SELECT_JOB + " WHERE order_id = ?", (order_id,))
        return _job_record(rows[0]) if rows else None

    def events(self, order_id: str) -> list[EventRecord]:
        """The job's events in seq order ([] for an unknown order)."""
        rows = self._read(
            "SELECT order_id, seq, state, at_s, reason_code, reason_message, drone, pad, eta_s,"
            " detail_json FROM events WHERE order_id = ? ORDER BY seq", (order_id,))
        return [
            EventRecord(
                order_id=r["order_id"], seq=r["seq"], state=JobState(r["state"]),
                at_s=r["at_s"], reason_code=r["reason_code"],
                reason_message=r["reason_message"], drone=r["drone"], pad=r["pad"],
                eta_s=r["eta_s"], detail=json.loads(r["detail_json"]),
            )
            for r in rows
        ]

    def active(self) -> list[JobRecord]:
        """Jobs not in a terminal state, oldest first."""
        rows = self._read(_SELECT_JOB + " WHERE active = 1 ORDER BY created_s, order_id")
        return [_job_record(r) for r in rows]

    # -- rejected messages --------------------------------------------------------------------

    def reject(self, raw: bytes, topic: str, order_id: str | None,
               reasons: Sequence[tuple[str, str, str | None]], now_s: float,
               outgoing: Sequence[Outgoing]) -> int:
        """Keep a refused message verbatim and queue the answers to it; returns its id."""
        reasons_json = _dump([[code, message, field] for code, message, field in reasons])
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters (at_s, topic, order_id, raw, reasons_json)"
                " VALUES (?, ?, ?, ?, ?)",
                (now_s, topic, order_id, bytes(raw), reasons_json),
            )
            dead_id = cur.lastrowid
            _enqueue(conn, outgoing)
        assert dead_id is not None  # an INSERT into a rowid table always sets it
        return dead_id

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest `limit` dead letters, newest first."""
        rows = self._read(
            "SELECT id, at_s, topic, order_id, raw, reasons_json FROM dead_letters"
            " ORDER BY id DESC LIMIT ?", (limit,))
        return [
            DeadLetter(
                id=r["id"], at_s=r["at_s"], topic=r["topic"], order_id=r["order_id"],
                raw=bytes(r["raw"]),
                reasons=[(code, message, field)
                         for code, message, field in json.loads(r["reasons_json"])],
            )
            for r in rows
        ]

    # -- outbox -------------------------------------------------------------------------------

    def enqueue(self, outgoing: Sequence[Outgoing]) -> None:
        """Queue messages that report no change (e.g. the status again, for a retry)."""
        with self._write() as conn:
            _enqueue(conn, outgoing)

    def pending(self, limit: int = 100) -> list[OutboxRow]:
        """The oldest `limit` unsent messages, in the order to send them."""
        rows = self._read(
            "SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [
            OutboxRow(id=r["id"], topic=r["topic"], payload=bytes(r["payload"]), qos=r["qos"],
                      retain=bool(r["retain"]))
            for r in rows
        ]

    def mark_sent(self, ids: Iterable[int]) -> None:
        """Forget messages the broker has acknowledged (unknown ids are ignored)."""
        params = [(i,) for i in ids]
        if not params:
            return
        with self._write() as conn:
            conn.executemany("DELETE FROM outbox WHERE id = ?", params)

    def stats(self) -> dict[str, int]:
        """Counts: `jobs_<state>` for every state, `outbox_pending`, `dead_letters`."""
        counts = {f"jobs_{s.value}": 0 for s in JobState}
        for r in self._read("SELECT state, count(*) AS n FROM jobs GROUP BY state"):
            counts[f"jobs_{r['state']}"] = r["n"]
        (r,) = self._read("SELECT (SELECT count(*) FROM outbox) AS outbox,"
                          " (SELECT count(*) FROM dead_letters) AS dead")
        counts["outbox_pending"] = r["outbox"]
        counts["dead_letters"] = r["dead"]
        return counts

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front; rolled back on any error."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from e

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from e


_SELECT_JOB: Final = (
    "SELECT order_id, job_json, state, drone, pad, created_s, updated_s, last_seq, flight_json"
    " FROM jobs"
)


def _job_record(r: sqlite3.Row) -> JobRecord:
    return JobRecord(
        order_id=r["order_id"], job=Job.model_validate_json(r["job_json"]),
        state=JobState(r["state"]), drone=r["drone"], pad=r["pad"], created_s=r["created_s"],
        updated_s=r["updated_s"], last_seq=r["last_seq"], flight=json.loads(r["flight_json"]),
    )


def _insert_event(conn: sqlite3.Connection, ev: EventRecord, detail_json: str) -> None:
    conn.execute(
        "INSERT INTO events (order_id, seq, state, at_s, reason_code, reason_message, drone,"
        " pad, eta_s, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ev.order_id, ev.seq, ev.state.value, ev.at_s, ev.reason_code, ev.reason_message,
         ev.drone, ev.pad, ev.eta_s, detail_json),
    )


def _enqueue(conn: sqlite3.Connection, outgoing: Iterable[Outgoing]) -> None:
    conn.executemany(
        "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
        [(o.topic, o.payload, o.qos, int(o.retain)) for o in outgoing],
    )


def _dump(value: Any) -> str:
    # Strict JSON (no NaN): what goes in must read back the same, in any JSON parser.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _check_time(t: float) -> None:
    if not math.isfinite(t):
        raise ValueError(f"a time must be a finite number of seconds, not {t!r}")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _create_private(path: Path) -> None:
    """Create the file with FILE_MODE if it is missing (SQLite gives -wal and -shm the same)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except OSError as e:
        raise JournalError(f"can't create the journal {path}: {e.strerror or e}") from e
    os.close(fd)


def _open(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        raise JournalError(f"{path} is a directory, not a journal file")
    _create_private(path)
    try:
        # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE.
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise JournalError(f"can't open the journal {path}: {e}") from e
    try:
        conn.row_factory = sqlite3.Row
        _configure(conn, path)
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    """Settings, and checks that change nothing in a file that turns out not to be ours."""
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: in WAL mode, NORMAL can lose the last commits on power loss.
        conn.execute("PRAGMA synchronous = FULL")
        version = _user_version(conn)
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        n_objects = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.Error as e:
        raise JournalError(f"{path} is not a usable nestd journal: {e}") from e
    if app_id not in (0, APPLICATION_ID):
        raise JournalError(
            f"{path} is an SQLite database of another application (application_id {app_id}),"
            " not a nestd journal; refusing to change it"
        )
    if version == 0 and n_objects > 0:
        raise JournalError(
            f"{path} is an SQLite database with tables but no nestd schema version, not a"
            " nestd journal; refusing to change it"
        )
    _refuse_newer(path, version, len(MIGRATIONS))
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.Error as e:
        raise JournalError(f"can't switch the journal {path} to WAL: {e}") from e
    if mode != "wal":
        raise JournalError(f"can't switch the journal {path} to WAL (it stays in {mode} mode)")


def _refuse_newer(path: Path, version: int, known: int) -> None:
    if version > known:
        raise JournalError(
            f"{path} was written by a newer nestd (schema {version}, this one knows {known});"
            " refusing to open it"
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the missing steps of MIGRATIONS, each in its own transaction."""
    steps = MIGRATIONS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: another process may have migrated meanwhile.
                version = _user_version(conn)
                _refuse_newer(path, version, len(steps))
                if version == len(steps):
                    conn.execute("COMMIT")
                    return
                try:
                    for statement in steps[version]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                except sqlite3.Error as e:
                    raise JournalError(
                        f"can't migrate the journal {path} to schema {version + 1}: {e}"
                    ) from e
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise JournalError(f"can't migrate the journal {path}: {e}") from e
