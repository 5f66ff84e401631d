"""The job journal: idempotent submits, atomic transitions with their outbox, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nestd.jobs import journal as journal_mod
from nestd.jobs.journal import (
    KEEP,
    SCHEMA_VERSION,
    EventRecord,
    JobRecord,
    Journal,
    JournalError,
    Outgoing,
    UnknownOrder,
)
from nestd.jobs.lifecycle import IllegalTransition, JobState
from nestd.jobs.models import Job

S = JobState
REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


def make_job(order_id: str = "A-1", **changes: Any) -> Job:
    data: dict[str, Any] = {
        "order_id": order_id,
        "store_id": "store-7",
        "destination": {"lat_deg": 52.0907, "lon_deg": 5.1214, "notes": "back garden"},
        "parcel": {"mass_kg": 1.25, "dimensions": {"length_cm": 30.0, "width_cm": 20.0,
                                                   "height_cm": 10.5}},
        "promised_by": datetime(2027, 3, 1, 12, 30, tzinfo=UTC),
        "priority": 2,
        "customer_ref": "c-42",
    }
    data.update(changes)
    return Job.model_validate(data)


class Render:
    """Renders one status message per event and remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[EventRecord, JobRecord]] = []

    def __call__(self, ev: EventRecord, rec: JobRecord) -> list[Outgoing]:
        self.calls.append((ev, rec))
        return [Outgoing(f"t/{ev.order_id}/status", f"{ev.seq}:{ev.state.value}".encode(),
                         retain=True)]


class RenderFailed(Exception):
    pass


def failing_render(ev: EventRecord, rec: JobRecord) -> list[Outgoing]:
    raise RenderFailed


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    with Journal(path) as j:
        yield j


@pytest.fixture
def render() -> Render:
    return Render()


def snapshot(j: Journal) -> tuple[object, ...]:
    """Everything the journal holds that a reader can see."""
    return (
        [(r, j.events(r.order_id)) for r in j.active()],
        j.pending(1000),
        j.dead_letters(1000),
        j.stats(),
    )


def outbox(j: Journal) -> list[tuple[str, bytes, int, bool]]:
    return [(r.topic, r.payload, r.qos, r.retain) for r in j.pending(1000)]


def advance(j: Journal, order_id: str, states: list[JobState], render: Render,
            t: float = T0) -> None:
    for i, to in enumerate(states):
        j.transition(order_id, to, t + 1 + i, render)


# -- submit -----------------------------------------------------------------------------------

def test_submit_stores_the_job_as_received(journal: Journal, render: Render) -> None:
    job = make_job()
    rec, created = journal.submit(job, T0, render)
    assert created
    assert rec == JobRecord(order_id="A-1", job=job, state=S.RECEIVED, drone=None, pad=None,
                            created_s=T0, updated_s=T0, last_seq=1, flight={})
    assert journal.get("A-1") == rec
    assert [(e.seq, e.state, e.at_s) for e in journal.events("A-1")] == [(1, S.RECEIVED, T0)]
    assert outbox(journal) == [("t/A-1/status", b"1:received", 1, True)]


def test_submit_is_idempotent_on_order_id(journal: Journal, render: Render) -> None:
    results = [journal.submit(make_job(), T0 + i, render) for i in range(5)]
    assert [created for _, created in results] == [True, False, False, False, False]
    assert all(rec == results[0][0] for rec, _ in results)
    assert len(render.calls) == 1
    assert len(journal.active()) == 1
    assert [e.state for e in journal.events("A-1")] == [S.RECEIVED]
    assert len(journal.pending()) == 1
    assert journal.get("A-1") == results[0][0]  # created_s is the first submit's time


def test_resubmit_with_other_content_returns_the_stored_job(journal: Journal,
                                                            render: Render) -> None:
    first, _ = journal.submit(make_job(priority=1), T0, render)
    rec, created = journal.submit(make_job(priority=9), T0 + 1, render)
    assert not created
    assert rec == first
    assert rec.job.priority == 1


def test_submit_render_failure_stores_nothing_and_order_can_be_submitted_again(
        journal: Journal, render: Render) -> None:
    with pytest.raises(RenderFailed):
        journal.submit(make_job(), T0, failing_render)
    assert journal.get("A-1") is None
    assert journal.events("A-1") == []
    assert journal.pending() == []
    _, created = journal.submit(make_job(), T0 + 1, render)
    assert created


# -- transition -------------------------------------------------------------------------------

def test_transition_updates_job_records_event_and_queues_render(journal: Journal,
                                                                render: Render) -> None:
    journal.submit(make_job(), T0, render)
    ev = journal.transition("A-1", S.ACCEPTED, T0 + 5, render, reason_code="ok",
                            reason_message="looks fine", eta_s=T0 + 900,
                            detail={"route_m": 1234.5, "legs": [1, 2]})
    assert ev == EventRecord(order_id="A-1", seq=2, state=S.ACCEPTED, at_s=T0 + 5,
                             reason_code="ok", reason_message="looks fine", drone=None,
                             pad=None, eta_s=T0 + 900,
                             detail={"route_m": 1234.5, "legs": [1, 2]})
    assert journal.events("A-1")[-1] == ev
    rec = journal.get("A-1")
    assert rec is not None
    assert (rec.state, rec.last_seq, rec.created_s, rec.updated_s) == (S.ACCEPTED, 2, T0,
                                                                       T0 + 5)
    # render sees the job as it is after the event
    assert render.calls[-1] == (ev, rec)
    assert outbox(journal)[-1] == ("t/A-1/status", b"2:accepted", 1, True)


def test_illegal_transition_writes_nothing(journal: Journal, render: Render) -> None:
    journal.submit(make_job(), T0, render)
    before = snapshot(journal)
    with pytest.raises(IllegalTransition):
        journal.transition("A-1", S.LAUNCHED, T0 + 1, render, drone=3)
    assert snapshot(journal) == before
    assert len(render.calls) == 1  # only the submit's


def test_transition_out_of_terminal_state_writes_nothing(journal: Journal,
                                                        render: Render) -> None:
    journal.submit(make_job(), T0, render)
    journal.transition("A-1", S.REJECTED, T0 + 1, render)
    events_before, outbox_before = journal.events("A-1"), outbox(journal)
    with pytest.raises(IllegalTransition):
        journal.transition("A-1", S.ACCEPTED, T0 + 2, render)
    assert journal.events("A-1") == events_before
    assert outbox(journal) == outbox_before


def test_transition_render_failure_rolls_back(journal: Journal, render: Render) -> None:
    journal.submit(make_job(), T0, render)
    before = snapshot(journal)
    with pytest.raises(RenderFailed):
        journal.transition("A-1", S.ACCEPTED, T0 + 1, failing_render, detail={"x": 1})
    assert snapshot(journal) == before
    # the next event takes seq 2: the failed one left no gap
    assert journal.transition("A-1", S.ACCEPTED, T0 + 2, render).seq == 2


def test_transition_with_detail_that_is_not_json_writes_nothing(journal: Journal,
                                                               render: Render) -> None:
    journal.submit(make_job(), T0, render)
    before = snapshot(journal)
    with pytest.raises(TypeError):
        journal.transition("A-1", S.ACCEPTED, T0 + 1, render, detail={"at": datetime.now(UTC)})
    with pytest.raises(ValueError, match="finite"):
        journal.transition("A-1", S.ACCEPTED, T0 + 1, render, eta_s=float("nan"))
    assert snapshot(journal) == before


def test_transition_of_unknown_order_raises_and_writes_nothing(journal: Journal,
                                                              render: Render) -> None:
    journal.submit(make_job(), T0, render)
    before = snapshot(journal)
    with pytest.raises(UnknownOrder, match="'B-2'") as info:
        journal.transition("B-2", S.ACCEPTED, T0 + 1, render)
    assert isinstance(info.value, KeyError) and isinstance(info.value, JournalError)
    assert snapshot(journal) == before


def test_drone_and_pad_are_kept_unless_given_and_cleared_by_none(journal: Journal,
                                                                 render: Render) -> None:
    journal.submit(make_job(), T0, render)
    advance(journal, "A-1", [S.ACCEPTED, S.QUEUED], render)
    ev = journal.transition("A-1", S.ASSIGNED, T0 + 10, render, drone=3, pad="P1")
    assert (ev.drone, ev.pad) == (3, "P1")
    ev = journal.transition("A-1", S.PREFLIGHT, T0 + 11, render)  # KEEP by default
    assert (ev.drone, ev.pad) == (3, "P1")
    rec = journal.get("A-1")
    assert rec is not None and (rec.drone, rec.pad) == (3, "P1")
    ev = journal.transition("A-1", S.QUEUED, T0 + 12, render, drone=None, pad=KEEP)
    assert (ev.drone, ev.pad) == (None, "P1")
    ev = journal.transition("A-1", S.ASSIGNED, T0 + 13, render, drone=5, pad=None)
    assert (ev.drone, ev.pad) == (5, None)
    rec = journal.get("A-1")
    assert rec is not None and (rec.drone, rec.pad) == (5, None)
    assert render.calls[-1][1] == rec
    assert [(e.drone, e.pad) for e in journal.events("A-1")][-4:] == [
        (3, "P1"), (3, "P1"), (None, "P1"), (5, None)]


def test_events_and_outbox_are_kept_in_commit_order(journal: Journal, render: Render) -> None:
    happy = [S.ACCEPTED, S.QUEUED, S.ASSIGNED, S.PREFLIGHT, S.LAUNCHED, S.ENROUTE,
             S.DELIVERING, S.DELIVERED, S.RETURNING, S.LANDED, S.COMPLETED]
    journal.submit(make_job("A-1"), T0, render)
    journal.submit(make_job("B-2"), T0, render)
    for i, to in enumerate(happy):  # interleave the two jobs
        journal.transition("A-1", to, T0 + 1 + i, render)
        if i < 3:
            journal.transition("B-2", to, T0 + 1 + i, render)
    a_events = journal.events("A-1")
    assert [e.seq for e in a_events] == list(range(1, 13))
    assert [e.state for e in a_events] == [S.RECEIVED, *happy]
    assert [e.state for e in journal.events("B-2")] == [S.RECEIVED, *happy[:3]]
    expected = ["A-1 1:received", "B-2 1:received"]
    for i, to in enumerate(happy):
        expected.append(f"A-1 {i + 2}:{to.value}")
        if i < 3:
            expected.append(f"B-2 {i + 2}:{to.value}")
    rows = journal.pending(1000)
    assert [f"{r.topic.split('/')[1]} {r.payload.decode()}" for r in rows] == expected
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len({r.id for r in rows}) == len(rows)
    assert [r.id for r in journal.pending(3)] == [r.id for r in rows[:3]]


def test_set_flight_is_stored_and_survives_transitions(journal: Journal,
                                                       render: Render) -> None:
    journal.submit(make_job(), T0, render)
    journal.set_flight("A-1", {"drone": 3, "mission_crc": 123456, "stage": "climb"})
    journal.transition("A-1", S.ACCEPTED, T0 + 1, render)
    rec = journal.get("A-1")
    assert rec is not None
    assert rec.flight == {"drone": 3, "mission_crc": 123456, "stage": "climb"}
    journal.set_flight("A-1", {"stage": "cruise"})
    rec = journal.get("A-1")
    assert rec is not None and rec.flight == {"stage": "cruise"}
    with pytest.raises(UnknownOrder):
        journal.set_flight("nope", {})


def test_active_lists_non_terminal_jobs_oldest_first(journal: Journal, render: Render) -> None:
    journal.submit(make_job("late"), T0 + 300, render)
    journal.submit(make_job("early"), T0 + 100, render)
    journal.submit(make_job("middle"), T0 + 200, render)
    journal.submit(make_job("bad"), T0 + 50, render)
    journal.transition("bad", S.REJECTED, T0 + 400, render)
    advance(journal, "middle", [S.ACCEPTED, S.CANCELLED], render, T0 + 400)
    journal.transition("early", S.ACCEPTED, T0 + 500, render)  # updated last, still oldest
    assert [r.order_id for r in journal.active()] == ["early", "late"]
    assert journal.get("bad") is not None  # terminal jobs stay readable


# -- dead letters and the outbox --------------------------------------------------------------

def test_reject_keeps_raw_bytes_verbatim_and_queues_answers(journal: Journal) -> None:
    raw = b'\xff\xfe{"order_id": "\x80\xc3(", \x00 "mass_kg": }'
    answer = Outgoing("t/jobs/rejected", b'{"reasons": []}')
    dead_id = journal.reject(raw, "t/jobs/submit", None,
                             [("invalid_json", "not UTF-8", None),
                              ("invalid_field", "bad mass", "parcel.mass_kg")],
                             T0, [answer])
    (dead,) = journal.dead_letters()
    assert dead.id == dead_id
    assert dead.raw == raw
    assert (dead.at_s, dead.topic, dead.order_id) == (T0, "t/jobs/submit", None)
    assert dead.reasons == [("invalid_json", "not UTF-8", None),
                            ("invalid_field", "bad mass", "parcel.mass_kg")]
    assert outbox(journal) == [("t/jobs/rejected", b'{"reasons": []}', 1, False)]


def test_dead_letters_are_listed_newest_first(journal: Journal) -> None:
    ids = [journal.reject(f"m{i}".encode(), "t/in", f"o{i}", [("x", "y", None)], T0 + i, [])
           for i in range(3)]
    assert [d.id for d in journal.dead_letters(limit=2)] == [ids[2], ids[1]]
    assert [d.order_id for d in journal.dead_letters()] == ["o2", "o1", "o0"]


def test_mark_sent_removes_only_those_rows(journal: Journal) -> None:
    journal.enqueue([Outgoing(f"t/{i}", bytes([i])) for i in range(4)])
    rows = journal.pending()
    journal.mark_sent([rows[0].id, rows[2].id, 999_999])
    assert [r.topic for r in journal.pending()] == ["t/1", "t/3"]
    journal.mark_sent([])
    assert len(journal.pending()) == 2


def test_outbox_ids_keep_growing_after_it_empties(journal: Journal) -> None:
    journal.enqueue([Outgoing("t/a", b"1"), Outgoing("t/b", b"2", qos=0, retain=True)])
    first = journal.pending()
    assert [(r.qos, r.retain) for r in first] == [(1, False), (0, True)]
    journal.mark_sent(r.id for r in first)
    assert journal.pending() == []
    journal.enqueue([Outgoing("t/c", b"3")])
    (row,) = journal.pending()
    assert row.id > max(r.id for r in first)  # a stale mark_sent can't hit a new message


@pytest.mark.parametrize("topic", ["", "a/+/b", "a/#", "a\0b"])
def test_outgoing_refuses_topics_a_broker_would(topic: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        Outgoing(topic, b"x")


def test_outgoing_refuses_bad_qos() -> None:
    with pytest.raises(ValueError, match="qos"):
        Outgoing("t/x", b"x", qos=3)


def test_enqueue_with_an_invalid_row_enqueues_none(journal: Journal) -> None:
    # Outgoing validates on construction; a row that slips past it hits the table's CHECK.
    bad = object.__new__(Outgoing)
    for name, value in [("topic", "t/x"), ("payload", b"x"), ("qos", 7), ("retain", False)]:
        object.__setattr__(bad, name, value)
    with pytest.raises(JournalError):
        journal.enqueue([Outgoing("t/ok", b"1"), bad])
    assert journal.pending() == []


def test_stats_counts_jobs_by_state_outbox_and_dead_letters(journal: Journal,
                                                           render: Render) -> None:
    for oid in ("a", "b", "c"):
        journal.submit(make_job(oid), T0, render)
    journal.transition("a", S.ACCEPTED, T0 + 1, render)
    journal.transition("b", S.REJECTED, T0 + 1, render)
    journal.reject(b"?", "t/in", None, [("invalid_json", "no", None)], T0, [])
    journal.mark_sent([journal.pending(1)[0].id])
    expected = {f"jobs_{s.value}": 0 for s in JobState}
    expected.update(jobs_received=1, jobs_accepted=1, jobs_rejected=1, outbox_pending=4,
                    dead_letters=1)
    assert journal.stats() == expected


# -- files, reopening, migrations -------------------------------------------------------------

def test_reopen_keeps_everything(path: Path, render: Render) -> None:
    with Journal(path) as j:
        j.submit(make_job("A-1"), T0, render)
        j.submit(make_job("B-2"), T0 + 1, render)
        advance(j, "A-1", [S.ACCEPTED, S.QUEUED], render)
        j.transition("A-1", S.ASSIGNED, T0 + 5, render, drone=2, pad="P2", eta_s=T0 + 600,
                     reason_code="r", reason_message="m", detail={"k": [1, "two"]})
        j.set_flight("A-1", {"seq": 7})
        j.reject(b"\x00\xff", "t/in", "C-3", [("c", "m", "f")], T0 + 6, [Outgoing("t/r", b"r")])
        j.mark_sent([j.pending(1)[0].id])
        before = (snapshot(j), j.events("A-1"), j.get("A-1"))
    with Journal(path) as j:
        assert (snapshot(j), j.events("A-1"), j.get("A-1")) == before
        assert j.schema_version == SCHEMA_VERSION


def test_fresh_file_gets_current_schema_in_wal_mode(path: Path) -> None:
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION >= 1
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def _foreign_db(path: Path, user_version: int) -> bytes:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.execute("INSERT INTO notes VALUES ('keep me')")
    con.execute(f"PRAGMA user_version = {user_version}")
    con.commit()
    con.close()
    return path.read_bytes()


def test_file_from_newer_nestd_is_refused_untouched(path: Path) -> None:
    content = _foreign_db(path, SCHEMA_VERSION + 1)
    with pytest.raises(JournalError) as info:
        Journal(path)
    message = str(info.value)
    assert "newer nestd" in message
    assert f"schema {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION}" in message
    assert str(path) in message
    assert path.read_bytes() == content


def test_sqlite_file_of_another_program_is_refused_untouched(path: Path) -> None:
    content = _foreign_db(path, 0)
    with pytest.raises(JournalError, match="not a nestd journal") as info:
        Journal(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_file_that_is_not_a_database_is_refused_untouched(path: Path) -> None:
    content = b"job log, not sqlite\n" * 300
    path.write_bytes(content)
    with pytest.raises(JournalError) as info:
        Journal(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a directory") as info:
        Journal(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_refused(path: Path) -> None:
    with Journal(path):
        pass
    path.chmod(0)
    with pytest.raises(JournalError) as info:
        Journal(path)
    assert str(path) in str(info.value)


def test_missing_parent_directory_is_refused_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "journal.sqlite3"
    with pytest.raises(JournalError) as info:
        Journal(path)
    assert str(path) in str(info.value)
    assert not path.parent.exists()


def test_opening_runs_new_migration_steps_in_order_and_keeps_data(
        path: Path, render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal(path) as j:
        j.submit(make_job(), T0, render)
    monkeypatch.setattr(journal_mod, "MIGRATIONS", (
        *journal_mod.MIGRATIONS,
        ("CREATE TABLE extra (n INTEGER)", "INSERT INTO extra VALUES (1)"),
        ("INSERT INTO extra SELECT n + 1 FROM extra",),
    ))
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION + 2
        assert j.get("A-1") is not None
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT n FROM extra ORDER BY n").fetchall() == [(1,), (2,)]
    finally:
        con.close()


def test_failed_migration_step_leaves_the_file_at_the_previous_version(
        path: Path, render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    with Journal(path) as j:
        j.submit(make_job(), T0, render)
    original = journal_mod.MIGRATIONS
    monkeypatch.setattr(journal_mod, "MIGRATIONS", (
        *original, ("CREATE TABLE extra (n INTEGER)", "INSERT INTO no_such_table VALUES (1)"),
    ))
    with pytest.raises(JournalError, match=f"schema {SCHEMA_VERSION + 1}"):
        Journal(path)
    monkeypatch.setattr(journal_mod, "MIGRATIONS", original)
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        assert j.get("A-1") is not None
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    finally:
        con.close()
    assert "extra" not in tables


def test_in_state_dir_creates_a_private_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "nestd"
    old_umask = os.umask(0o022)
    try:
        with Journal.in_state_dir(state_dir) as j:
            assert j.path == state_dir / "journal.sqlite3"
    finally:
        os.umask(old_umask)
    assert state_dir.stat().st_mode & 0o777 == 0o750
    assert (state_dir / "journal.sqlite3").stat().st_mode & 0o777 == 0o640


def test_in_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.write_text("not a directory")
    with pytest.raises(JournalError, match="state directory"):
        Journal.in_state_dir(state_dir)


def test_closed_journal_raises_journal_error(journal: Journal) -> None:
    journal.close()
    with pytest.raises(JournalError):
        journal.pending()


# -- crash safety -----------------------------------------------------------------------------

# The child commits a job and three transitions, optionally marks the first messages sent,
# optionally starts one more transition and dies inside it, then is SIGKILLed: no close, no
# checkpoint, no atexit.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from nestd.jobs.journal import Journal, Outgoing
    from nestd.jobs.lifecycle import JobState
    from nestd.jobs.models import Job

    path, job_json, marked, die_inside = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def render(ev, rec):
        body = f"{ev.seq}:{ev.state.value}:{rec.drone}".encode()
        return [Outgoing(f"t/{ev.order_id}/events", body),
                Outgoing(f"t/{ev.order_id}/status", body, retain=True)]

    def render_and_die(ev, rec):
        render(ev, rec)
        os.kill(os.getpid(), signal.SIGKILL)

    j = Journal(path)
    job = Job.model_validate_json(job_json)
    j.submit(job, 100.0, render)
    j.transition(job.order_id, JobState.ACCEPTED, 101.0, render)
    j.transition(job.order_id, JobState.QUEUED, 102.0, render)
    j.transition(job.order_id, JobState.ASSIGNED, 103.0, render, drone=3, pad="P1")
    if marked:
        j.mark_sent(r.id for r in j.pending(marked))
    if die_inside == "yes":
        j.transition(job.order_id, JobState.PREFLIGHT, 104.0, render_and_die)
    os.kill(os.getpid(), signal.SIGKILL)
""")

COMMITTED = [(1, "received", None), (2, "accepted", None), (3, "queued", None),
             (4, "assigned", 3)]
COMMITTED_OUTBOX = [
    (f"t/A-1/{kind}", f"{seq}:{state}:{drone}".encode(), 1, kind == "status")
    for seq, state, drone in COMMITTED for kind in ("events", "status")
]


def run_and_kill_child(path: Path, *, marked: int, die_inside: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), make_job().model_dump_json(), str(marked),
         "yes" if die_inside else "no"],
        cwd=REPO, capture_output=True, timeout=60, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    # Killed without closing: the commits are only in the write-ahead log.
    assert path.with_name(path.name + "-wal").stat().st_size > 0


def test_commits_survive_sigkill_and_are_sent_exactly_once(path: Path) -> None:
    run_and_kill_child(path, marked=0, die_inside=False)
    with Journal(path) as j:
        rec = j.get("A-1")
        assert rec is not None
        assert (rec.state, rec.drone, rec.pad, rec.last_seq) == (S.ASSIGNED, 3, "P1", 4)
        assert rec.job == make_job()
        assert [(e.seq, e.state.value, e.drone) for e in j.events("A-1")] == COMMITTED
        rows = j.pending(1000)
        assert [(r.topic, r.payload, r.qos, r.retain) for r in rows] == COMMITTED_OUTBOX
        j.mark_sent(r.id for r in rows)
    with Journal(path) as j:
        assert j.pending(1000) == []
        assert len(j.events("A-1")) == 4


def test_sigkill_inside_a_transaction_leaves_no_trace_of_it(path: Path) -> None:
    run_and_kill_child(path, marked=3, die_inside=True)
    with Journal(path) as j:
        rec = j.get("A-1")
        assert rec is not None
        assert (rec.state, rec.last_seq, rec.updated_s) == (S.ASSIGNED, 4, 103.0)
        assert [(e.seq, e.state.value, e.drone) for e in j.events("A-1")] == COMMITTED
        # the three rows marked sent before the crash don't come back
        assert outbox(j) == COMMITTED_OUTBOX[3:]
        # and the journal carries on from where the commits left it
        assert j.transition("A-1", S.PREFLIGHT, 105.0, Render()).seq == 5
