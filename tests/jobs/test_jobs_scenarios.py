"""Job scenarios end to end: cancels, daemon restarts and autopilot failsafes, flown by a
nestsim fleet over UDP against a real mosquitto and the daemon's real SQLite journal.

Each scenario reads as a flight script; what the retailer sees is what its MQTT client got,
deduplicated on seq as the API tells it to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from nestsim.fleet import Fleet
from nestsim.vehicle import SimVehicle
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from nestd.airspace import LatLon
from nestd.config import JobsConfig
from nestd.jobs.book import JobBook
from nestd.jobs.executor import Flight
from nestd.jobs.intake import parse_job
from nestd.jobs.journal import Journal
from nestd.jobs.lifecycle import JobState
from nestd.jobs.models import Job
from nestd.telemetry import Topics
from tests.conftest import Broker
from tests.jobs.test_jobs_e2e import (
    HAPPY_PATH,
    Rig,
    Watcher,
    job,
    pad_positions,
    rig,
    submit,
)
from tests.sim.gcs import until

ENDED = ("completed", "failed", "aborted", "declined", "cancelled", "rejected")
PAD_NEAR_M = 3.0


# -- what the retailer sees ---------------------------------------------------------------------


def history(w: Watcher, order_id: str) -> list[dict[str, Any]]:
    """A job's events as a consumer keeps them: one per seq (a repeat must be the same event),
    in seq order."""
    by_seq: dict[int, dict[str, Any]] = {}
    for s in w.statuses(order_id):
        seen = by_seq.setdefault(s["seq"], s)
        assert seen == s, f"two different events with seq {s['seq']}: {seen} / {s}"
    return [by_seq[k] for k in sorted(by_seq)]


def states(w: Watcher, order_id: str) -> list[str]:
    return [s["state"] for s in history(w, order_id)]


def last(w: Watcher, order_id: str) -> dict[str, Any] | None:
    h = history(w, order_id)
    return h[-1] if h else None


def state_is(w: Watcher, order_id: str, *wanted: str) -> Callable[[], bool]:
    def check() -> bool:
        s = last(w, order_id)
        return s is not None and s["state"] in wanted
    return check


def at_s(status: dict[str, Any]) -> float:
    return datetime.fromisoformat(status["at"]).timestamp()


def assert_gap_free(h: list[dict[str, Any]]) -> None:
    assert [s["seq"] for s in h] == list(range(1, len(h) + 1)), h


def rejections(w: Watcher) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in w.seen.get(f"nest/{w.store}/jobs/rejected", [])]


async def cancel(r: Rig, order_id: str, reason: str = "the customer cancelled in the app"
                 ) -> dict[str, Any]:
    """Publish a cancel with an MQTT 5 response topic; returns nestd's answer there."""
    reply = f"e2e-replies/{r.store}/{uuid.uuid4().hex[:8]}"
    await r.client.subscribe(reply, qos=1)
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = reply
    props.CorrelationData = order_id.encode()
    await r.client.publish(f"nest/{r.store}/jobs/{order_id}/cancel",
                           orjson.dumps({"reason": reason}), qos=1, properties=props)
    await until(lambda: reply in r.watcher.seen, 10, f"an answer to the cancel of {order_id}")
    answer: dict[str, Any] = orjson.loads(r.watcher.seen[reply][0])
    return answer


# -- what the drones do -------------------------------------------------------------------------


def from_pad_m(v: SimVehicle) -> float:
    return math.hypot(v.e - v.home_e, v.n - v.home_n)


def on_pad(v: SimVehicle) -> bool:
    """Down and disarmed on (within a few metres of) its own pad."""
    return not v.armed and not v.in_air and from_pad_m(v) < PAD_NEAR_M


@contextlib.asynccontextmanager
async def sightings(fleet: Fleet) -> AsyncIterator[dict[int, set[str]]]:
    """What each vehicle (by index) was seen doing while the block ran: armed, in_air."""
    seen: dict[int, set[str]] = {i: set() for i in range(fleet.n)}

    async def look() -> None:
        while True:
            for i, v in enumerate(fleet.vehicles):
                if v.armed:
                    seen[i].add("armed")
                if v.in_air:
                    seen[i].add("in_air")
            await asyncio.sleep(0.02)  # sampling: an arm or a flight lasts seconds

    task = asyncio.create_task(look(), name="sightings")
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SLOTS = JobsConfig(launch_spacing_s=600.0, assign_ahead_s=3600.0, turnaround_s=900.0)
"""Launches ten minutes apart, drones assigned up to an hour ahead of their slot, and a drone
that lands is not offered again for a quarter of an hour: a second job is assigned to an idle
drone at once and waits, `assigned`, for its slot."""


# -- 1. cancel before launch --------------------------------------------------------------------


async def test_cancel_of_a_queued_job_ends_it_cancelled_in_the_reply_and_it_never_flies(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        await submit(r.client, job(w.store, "first", 150, 150), w.store)
        await until(state_is(w, "first", "enroute"), 20, "the first job en route")
        await submit(r.client, job(w.store, "second", -150, 150), w.store)
        await until(state_is(w, "second", "queued"), 10, "the second job queued behind it")

        answer = await cancel(r, "second")

        assert answer["order_id"] == "second"
        assert answer["state"] == "cancelled"
        assert answer["reason"]["code"] == "cancelled_by_customer"
        assert answer["reason"]["message"] == "the customer cancelled in the app"
        await until(state_is(w, "first", *ENDED), 40, "the first job ended")
        await until(lambda: on_pad(v), 10, "the drone back on its pad")
        assert states(w, "first") == HAPPY_PATH
        # The drone is free now, and stays on its pad: nothing is left to fly.
        assert r.daemon is not None and r.daemon.jobs is not None
        dispatcher = r.daemon.jobs.dispatcher
        async with sightings(r.fleet) as seen:
            rounds = dispatcher.rounds
            await until(lambda: dispatcher.rounds >= rounds + 3, 10, "three dispatch rounds")
        assert seen[0] == set()
        assert states(w, "second") == ["received", "accepted", "queued", "cancelled"]
        assert len(v.drops) == 1
        assert r.daemon.jobs.journal.active() == []


async def test_cancel_of_a_job_assigned_ahead_of_its_launch_slot_leaves_its_drone_on_the_pad(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 2, speed=20.0, jobs=SLOTS) as r:
        w = r.watcher
        await submit(r.client, job(w.store, "first", -150, 150), w.store)
        await until(state_is(w, "first", "launched", "enroute"), 20, "the first job launched")
        async with sightings(r.fleet) as seen:
            await submit(r.client, job(w.store, "second", 150, 150), w.store)
            await until(state_is(w, "second", "assigned"), 10, "the second job assigned")
            drone = last(w, "second")["drone"]  # type: ignore[index]
            first_drone = next(s["drone"] for s in history(w, "first") if "drone" in s)
            assert drone != first_drone
            v = r.fleet.vehicles[drone - 1]

            answer = await cancel(r, "second")

            assert answer["state"] == "cancelled"
            assert answer["reason"]["code"] == "cancelled_by_customer"
            assert r.daemon is not None and r.daemon.jobs is not None
            executor = r.daemon.jobs.executor
            await until(lambda: not executor.drone_busy(drone), 5, "the drone released")
            assert states(w, "second") == ["received", "accepted", "queued", "assigned",
                                           "cancelled"]
            assert on_pad(v)
            assert seen[drone - 1] == set()
            assert v.drops == []


# -- 2. cancel in flight before the drop ---------------------------------------------------------


async def test_cancel_in_flight_turns_the_drone_back_with_the_parcel_and_frees_it_for_the_next(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        await submit(r.client, job(w.store, "turned-back", 400, 300), w.store)
        await until(state_is(w, "turned-back", "enroute"), 20, "en route")

        answer = await cancel(r, "turned-back", "changed my mind")

        assert answer["order_id"] == "turned-back"  # the status as the cancel found it
        await until(state_is(w, "turned-back", *ENDED), 10, "the job ended")
        end = last(w, "turned-back")
        assert end is not None
        assert end["state"] == "aborted"
        assert end["reason"]["code"] == "cancelled_by_customer"
        assert end["reason"]["message"] == "changed my mind"
        assert end["parcel"] == "aboard"
        assert states(w, "turned-back")[-2:] == ["enroute", "aborted"]
        await until(lambda: on_pad(v), 40, "the drone landed on its pad and disarmed")
        assert v.drops == []
        assert v.payload_kg > 0

        await submit(r.client, job(w.store, "next", 200, 150), w.store)
        await until(state_is(w, "next", *ENDED), 40, "the next job ended")
        assert states(w, "next") == HAPPY_PATH
        assert len(v.drops) == 1


# -- 3. cancel after the drop -------------------------------------------------------------------


async def test_cancel_after_the_drop_is_refused_as_already_delivered_and_the_job_completes(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        await submit(r.client, job(w.store, "dropped", 200, 150), w.store)
        await until(lambda: "delivered" in states(w, "dropped"), 30, "the parcel delivered")

        answer = await cancel(r, "dropped")

        assert answer["order_id"] == "dropped"
        assert [x["code"] for x in answer["reasons"]] == ["already_delivered"]
        await until(lambda: any(x.get("order_id") == "dropped" for x in rejections(w)), 10,
                    "the refusal on jobs/rejected")
        assert [x["reasons"][0]["code"] for x in rejections(w)] == ["already_delivered"]
        await until(state_is(w, "dropped", *ENDED), 30, "the job ended")
        assert states(w, "dropped") == HAPPY_PATH
        assert len(v.drops) == 1


# -- 4. and 5. daemon restarts ------------------------------------------------------------------


async def test_a_new_daemon_reattaches_to_a_drone_in_the_air_and_replans_the_unlaunched_job(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 2, speed=10.0, jobs=SLOTS) as r:
        w = r.watcher
        await submit(r.client, job(w.store, "flying", -350, 300), w.store)
        await until(state_is(w, "flying", "enroute"), 20, "the first job en route")
        await submit(r.client, job(w.store, "waiting", 200, 150), w.store)
        await until(state_is(w, "waiting", "assigned"), 10, "the second job waiting its slot")
        v = r.fleet.vehicles[history(w, "flying")[-1]["drone"] - 1]

        await r.stop(force=True)
        assert v.in_air and v.armed, "the drone must still be flying when nestd is gone"
        # Back with launches 8 s apart: spaced from the flight still in the air.
        r.config = r.config.model_copy(update={"jobs": SLOTS.model_copy(
            update={"launch_spacing_s": 8.0})})
        await r.start()

        await until(lambda: state_is(w, "flying", *ENDED)()
                    and state_is(w, "waiting", *ENDED)(), 60, "both jobs ended")
        flown = history(w, "flying")
        assert [s["state"] for s in flown] == HAPPY_PATH
        assert_gap_free(flown)
        waited = history(w, "waiting")
        assert [s["state"] for s in waited] == [*HAPPY_PATH[:4], "queued", *HAPPY_PATH[3:]]
        assert waited[4]["reason"]["code"] == "daemon_restart"
        assert at_s(waited[7]) >= at_s(flown[5]) + 8.0  # launched, spaced from the first
        assert_gap_free(waited)
        assert sum(len(x.drops) for x in r.fleet.vehicles) == 2
        await until(lambda: all(on_pad(x) for x in r.fleet.vehicles), 10, "both drones home")


def journal_a_start_cut_short(state_dir: Path, store: str, order_id: str) -> None:
    """The journal nestd leaves when it dies while arming a drone for a job: the job in
    pre-flight, its flight record marked as starting (the drone may or may not have taken
    off). Written through the job book, as the executor writes it."""
    body = orjson.dumps(job(store, order_id, 200, 150))
    parsed = parse_job(body, store_id=store, now=datetime.now(UTC))
    assert isinstance(parsed, Job)
    with Journal.in_state_dir(state_dir) as journal:
        book = JobBook(journal, Topics(store), time.time)
        book.submit(parsed)
        for to in (JobState.ACCEPTED, JobState.QUEUED):
            book.move(order_id, to)
        book.move(order_id, JobState.ASSIGNED, drone=1, pad="pad-1")
        book.move(order_id, JobState.PREFLIGHT)
        (lat, lon), d = pad_positions(1)[0], parsed.destination
        flight = Flight(order_id=order_id, drone=1, pad_id="pad-1", pad=LatLon(lat, lon),
                        destination=LatLon(d.lat_deg, d.lon_deg), stages=(), release_seq=-1,
                        delivery_seq=-1, land_seq=-1, mission_hash="", starting=True)
        journal.set_flight(order_id, flight.to_json())


async def test_a_new_daemon_replans_a_job_whose_start_was_cut_short_when_the_drone_never_left(
    mosquitto: Broker, tmp_path: Path
) -> None:
    store = f"e2e-{uuid.uuid4().hex[:8]}"
    journal_a_start_cut_short(tmp_path / "state", store, "half-started")

    async with rig(mosquitto, tmp_path, 1, speed=20.0, store=store) as r:
        w = r.watcher
        await until(state_is(w, "half-started", *ENDED), 40, "the job ended")
        h = history(w, "half-started")
        assert [s["state"] for s in h] == [*HAPPY_PATH[:5], "queued", *HAPPY_PATH[3:]]
        assert h[5]["reason"]["code"] == "daemon_restart"
        assert_gap_free(h)
        assert len(r.fleet.vehicles[0].drops) == 1


async def test_a_job_published_while_the_daemon_is_down_is_flown_when_it_comes_back(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w = r.watcher
        await r.stop()
        await submit(r.client, job(w.store, "while-away", 200, 150), w.store)
        assert states(w, "while-away") == []

        await r.start()

        await until(state_is(w, "while-away", *ENDED), 40, "the job ended")
        h = history(w, "while-away")
        assert [s["state"] for s in h] == HAPPY_PATH
        assert_gap_free(h)
        assert len(r.fleet.vehicles[0].drops) == 1


# -- 6. and 7. the autopilot's failsafes and the link -------------------------------------------


async def test_a_battery_failsafe_with_the_parcel_aboard_aborts_and_grounds_the_drone_until_ready(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        assert r.daemon is not None and r.daemon.jobs is not None
        executor, dispatcher = r.daemon.jobs.executor, r.daemon.jobs.dispatcher
        v.params["COM_LOW_BAT_ACT"] = 3  # return at critical, land at emergency ...
        v.params["BAT_EMERGEN_THR"] = 0.0  # ... which this test keeps out of the way
        await submit(r.client, job(w.store, "low", 400, 300), w.store)
        await until(state_is(w, "low", "enroute"), 20, "en route")

        r.fleet.set_battery(0, 6.5)  # critical (BAT_CRIT_THR 7 %), not yet emergency
        await until(state_is(w, "low", *ENDED), 10, "the job ended")
        end = last(w, "low")
        assert end is not None
        assert end["state"] == "aborted"
        assert end["reason"]["code"] == "safety_action"
        assert end["parcel"] == "aboard"

        # A new order meanwhile: the drone is not given it while it is coming down...
        await submit(r.client, job(w.store, "after", 200, 150), w.store)
        await until(state_is(w, "after", "queued"), 10, "the new job queued")
        await until(lambda: on_pad(v), 60, "the drone landed on its pad and disarmed")
        assert v.drops == []
        # ... nor once down with a flat battery, however many rounds the dispatcher makes.
        await until(lambda: not executor.drone_busy(1), 5, "the aborted flight let go")
        rounds = dispatcher.rounds
        await until(lambda: dispatcher.rounds >= rounds + 3, 10, "three dispatch rounds")
        assert states(w, "after") == ["received", "accepted", "queued"]

        r.fleet.set_battery(0, 100.0)  # the nest swaps the battery
        await until(state_is(w, "after", *ENDED), 40, "the new job ended")
        assert states(w, "after") == HAPPY_PATH
        assert len(v.drops) == 1


async def test_a_datalink_loss_failsafe_with_the_parcel_aboard_aborts_the_job(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=10.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        v.params["NAV_DLL_ACT"] = 2  # return on datalink loss ...
        v.params["COM_DL_LOSS_T"] = 10  # ... after 10 s (1 s of wall time here)
        await submit(r.client, job(w.store, "cut", 400, 300), w.store)
        await until(state_is(w, "cut", "enroute"), 20, "en route")

        r.fleet.cut_link(0, duration_s=3.0)
        await until(lambda: v.mode_name == "AUTO.RTL", 10, "the drone returning on its own")
        await until(state_is(w, "cut", *ENDED), 10, "the job ended")
        end = last(w, "cut")
        assert end is not None
        assert end["state"] == "aborted"
        assert end["reason"]["code"] == "safety_action"
        assert end["parcel"] == "aboard"
        await until(lambda: on_pad(v), 60, "the drone landed on its pad and disarmed")
        assert v.drops == []


async def test_a_gps_loss_landing_away_from_the_pad_aborts_and_the_drone_is_not_offered_again(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=20.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        assert r.daemon is not None and r.daemon.jobs is not None
        executor, dispatcher = r.daemon.jobs.executor, r.daemon.jobs.dispatcher
        await submit(r.client, job(w.store, "lost", 400, 300), w.store)
        await until(state_is(w, "lost", "enroute"), 20, "en route")

        r.fleet.set_gps(0, False)  # the autopilot lands where it is
        await until(state_is(w, "lost", *ENDED), 10, "the job ended")
        end = last(w, "lost")
        assert end is not None
        assert (end["state"], end["reason"]["code"], end["parcel"]) == (
            "aborted", "safety_action", "aboard")
        await until(lambda: not v.armed and not v.in_air, 60, "the drone down and disarmed")
        await until(lambda: not executor.drone_busy(1), 5, "the aborted flight let go")
        r.fleet.set_gps(0, True)
        assert from_pad_m(v) > 50
        gps = r.daemon.link.vehicles[1].state.gps
        await until(lambda: (gps.fix_type or 0) >= 3 and (gps.satellites or 0) >= 10, 10,
                    "nestd sees the GPS fix back: the drone is fine but for where it stands")

        await submit(r.client, job(w.store, "next", 200, 150), w.store)
        await until(state_is(w, "next", "queued"), 10, "the next job queued")
        rounds = dispatcher.rounds
        await until(lambda: dispatcher.rounds >= rounds + 3, 10, "three dispatch rounds")
        assert states(w, "next") == ["received", "accepted", "queued"]
        assert v.drops == []


async def test_a_link_cut_shorter_than_the_failsafe_does_not_disturb_the_delivery(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=10.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        assert r.daemon is not None
        link_health = r.daemon.link.vehicles[1].health
        # This vehicle's datalink-loss timeout is deliberately long (a radio that fades), so
        # nestd must not reset it to the profile's 10 s before the flight.
        keep_params(r)
        v.params["NAV_DLL_ACT"] = 2
        v.params["COM_DL_LOSS_T"] = 60  # 6 s of wall time here
        await submit(r.client, job(w.store, "fade", 400, 300), w.store)
        await until(state_is(w, "fade", "enroute"), 20, "en route")

        r.fleet.cut_link(0, duration_s=4.0)  # 40 s simulated: nestd calls the link lost
        await until(lambda: not link_health.alive, 10, "nestd noticed the silence")
        await until(lambda: link_health.alive, 10, "the link back")

        await until(state_is(w, "fade", *ENDED), 60, "the job ended")
        h = history(w, "fade")
        assert [s["state"] for s in h] == HAPPY_PATH
        assert_gap_free(h)
        assert not v.datalink_lost and len(v.drops) == 1


def keep_params(r: Rig) -> None:
    assert r.daemon is not None and r.daemon.jobs is not None
    ex = r.daemon.jobs.executor
    ex.settings = dataclasses.replace(ex.settings, enforce_failsafe_params=False)


async def test_a_cancel_sent_while_the_link_is_out_is_carried_out_when_it_comes_back(
    mosquitto: Broker, tmp_path: Path
) -> None:
    async with rig(mosquitto, tmp_path, 1, speed=4.0) as r:
        w, v = r.watcher, r.fleet.vehicles[0]
        # This vehicle's datalink-loss timeout is deliberately long (a radio that fades), so
        # nestd must not reset it to the profile's 10 s before the flight.
        keep_params(r)
        v.params["NAV_DLL_ACT"] = 2
        v.params["COM_DL_LOSS_T"] = 300  # far longer than this cut: the drone flies on
        await submit(r.client, job(w.store, "faded", 600, 500), w.store)
        await until(state_is(w, "faded", "enroute"), 20, "en route")

        # Longer than the command protocol's retries (5 s): the first turn-back fails.
        r.fleet.cut_link(0, duration_s=7.0)
        answer = await cancel(r, "faded")
        assert answer["state"] == "enroute"
        await until(lambda: v.mode_name == "AUTO.RTL", 20, "the drone turned back")

        await until(state_is(w, "faded", *ENDED), 10, "the job ended")
        end = last(w, "faded")
        assert end is not None
        assert (end["state"], end["reason"]["code"], end["parcel"]) == (
            "aborted", "cancelled_by_customer", "aboard")
        assert not v.datalink_lost  # nestd turned it back, not the vehicle's failsafe
        assert v.drops == []
