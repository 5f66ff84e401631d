"""Dispatch rounds: queue order, one job per drone, launch spacing, the quickest drone, outcomes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nestd.airspace import Airspace
from nestd.airspace.testing import synthetic_airspace
from nestd.jobs.dispatch import (
    DispatchSettings,
    QueuedJob,
    is_permanent,
    plan_dispatch,
    queue_order,
)
from nestd.jobs.models import Job, Reason, ReasonCode
from nestd.jobs.quote import Quoter, QuoteSettings

from .test_quote import NOW, at, drone, fleet, make_job

TURNAROUND_S = 120.0


@pytest.fixture(scope="module")
def air() -> Airspace:
    return synthetic_airspace([], keep_in_radius_m=6000.0)


@pytest.fixture
def quoter(air: Airspace) -> Quoter:
    return Quoter(air, QuoteSettings(turnaround_s=TURNAROUND_S))


def queued(job: Job, queued_at_s: float = NOW - 60.0) -> QueuedJob:
    return QueuedJob(job, queued_at_s)


def job_to(
    air: Airspace, x_m: float, y_m: float, order_id: str, **kw: object
) -> QueuedJob:
    return queued(make_job(at(air, x_m, y_m), order_id=order_id, **kw))  # type: ignore[arg-type]


def outcome_ids(
    result: tuple[list[object], list[object], list[object]],
) -> list[list[str]]:
    return [[o.order_id for o in part] for part in result]  # type: ignore[attr-defined]


# -- queue order ------------------------------------------------------------------------------

ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-6))]


@st.composite
def queues(draw: st.DrawFn) -> list[QueuedJob]:
    ids = draw(st.lists(st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True), max_size=12,
                        unique=True))
    out = []
    for oid in ids:
        # Few distinct values, so ties on each key happen and the later keys must break them;
        # deadlines in several UTC offsets compare by instant.
        promised = datetime.fromtimestamp(NOW + 600.0 * draw(st.integers(0, 3)), UTC)
        promised = promised.astimezone(draw(st.sampled_from(ZONES)))
        job = Job.model_validate(
            {
                "order_id": oid,
                "store_id": "store-1",
                "destination": {"lat_deg": 32.96, "lon_deg": -96.72},
                "parcel": {"mass_kg": 1.0},
                "promised_by": promised,
                "priority": draw(st.integers(0, 9)),
            }
        )
        out.append(QueuedJob(job, float(draw(st.sampled_from([0.0, 5.0, 10.0])))))
    return out


def _key(q: QueuedJob) -> tuple[float, int, float, str]:
    return (q.job.promised_by.timestamp(), -q.job.priority, q.queued_at_s, q.job.order_id)


@given(queues())
def test_queue_order_is_promise_then_priority_then_queued_time_then_order_id(
    jobs: list[QueuedJob],
) -> None:
    ordered = queue_order(jobs)
    assert sorted(ordered, key=_key) == ordered
    assert all(_key(a) < _key(b) for a, b in itertools.pairwise(ordered))
    assert {q.job.order_id for q in ordered} == {q.job.order_id for q in jobs}
    assert len(ordered) == len(jobs)


@given(st.data())
def test_queue_order_does_not_depend_on_the_input_order(data: st.DataObject) -> None:
    jobs = data.draw(queues())
    shuffled = data.draw(st.permutations(jobs))
    assert queue_order(shuffled) == queue_order(jobs)


# -- one round --------------------------------------------------------------------------------


def test_no_drone_is_assigned_twice_in_a_round(air: Airspace, quoter: Quoter) -> None:
    # A look-ahead long enough that each drone would be back (and could go again) within it.
    jobs = [job_to(air, 800.0 + 100.0 * k, 0.0, f"o{k}") for k in range(6)]
    f = fleet(drone(1), drone(2), drone(3))
    assigned, declined, waiting = plan_dispatch(
        jobs, f, quoter, DispatchSettings(assign_ahead_s=3600.0)
    )
    assert len(assigned) == 3 and not declined and len(waiting) == 3
    assert sorted(a.option.drone for a in assigned) == [1, 2, 3]
    assert sorted(a.pad_id for a in assigned) == ["pad-1", "pad-2", "pad-3"]
    # The others wait for a drone to come back, not for ever.
    back = min(a.option.back_at_s for a in assigned) + TURNAROUND_S
    assert all(w.retry_at_s is not None and w.retry_at_s >= back for w in waiting)


def test_launches_in_a_round_are_spaced_from_the_next_slot_on(
    air: Airspace, quoter: Quoter
) -> None:
    jobs = [job_to(air, 1000.0, 300.0 * k, f"o{k}") for k in range(4)]
    f = fleet(*(drone(k) for k in range(1, 5)), next_launch_slot_s=NOW + 10.0)
    settings = DispatchSettings(launch_spacing_s=30.0, assign_ahead_s=600.0)
    assigned, _, _ = plan_dispatch(jobs, f, quoter, settings)
    launches = sorted(a.option.launch_at_s for a in assigned)
    assert len(launches) == 4
    assert launches[0] == NOW + 10.0
    assert all(b - a >= 30.0 for a, b in itertools.pairwise(launches))


def test_without_look_ahead_the_second_job_waits_for_its_launch_slot(
    air: Airspace, quoter: Quoter
) -> None:
    jobs = [job_to(air, 1000.0, 0.0, "first"), job_to(air, -1000.0, 0.0, "second")]
    f = fleet(drone(1), drone(2))
    assigned, _, waiting = plan_dispatch(jobs, f, quoter, DispatchSettings(launch_spacing_s=45.0))
    assert [a.order_id for a in assigned] == ["first"]
    assert [w.order_id for w in waiting] == ["second"]
    assert waiting[0].retry_at_s == assigned[0].option.launch_at_s + 45.0


def test_ready_drone_with_enough_energy_beats_one_that_must_charge(
    air: Airspace, quoter: Quoter
) -> None:
    f = fleet(drone(1, battery_wh=120.0), drone(2, battery_wh=488.0))
    assigned, _, _ = plan_dispatch(
        [job_to(air, 3000.0, 0.0, "o1", mass_kg=2.0)], f, quoter, DispatchSettings()
    )
    assert [a.option.drone for a in assigned] == [2]
    assert assigned[0].pad_id == "pad-2"


def test_soonest_charged_drone_wins_when_none_is_ready(air: Airspace, quoter: Quoter) -> None:
    job = job_to(air, 3000.0, 0.0, "o1", mass_kg=2.0)
    f = fleet(drone(1, battery_wh=150.0), drone(2, battery_wh=250.0), drone(3, battery_wh=100.0))
    opts, _ = quoter.options(job.job, f)
    assert all(o.launch_at_s > NOW for o in opts)  # the setup: every drone must charge
    soonest = min(opts, key=lambda o: o.launch_at_s)
    assert soonest.drone == 2
    _, _, waiting = plan_dispatch([job], f, quoter, DispatchSettings())
    assert [w.retry_at_s for w in waiting] == [soonest.launch_at_s]
    assigned, _, _ = plan_dispatch([job], f, quoter, DispatchSettings(assign_ahead_s=7200.0))
    assert [a.option.drone for a in assigned] == [2]


def test_later_job_waits_for_a_drone_taken_earlier_in_the_round_when_still_quickest(
    air: Airspace, quoter: Quoter
) -> None:
    jobs = [job_to(air, 1000.0, 0.0, "o1"), job_to(air, 0.0, 1000.0, "o2")]
    f = fleet(drone(1), drone(2, battery_wh=60.0))  # drone 2 needs a long charge
    assigned, _, waiting = plan_dispatch(jobs, f, quoter, DispatchSettings())
    assert [(a.order_id, a.option.drone) for a in assigned] == [("o1", 1)]
    assert [w.order_id for w in waiting] == ["o2"]
    assert waiting[0].retry_at_s == assigned[0].option.back_at_s + TURNAROUND_S
    assert "drone" in waiting[0].reasons[0].message


def test_earlier_promise_gets_the_only_drone_whatever_the_queue_order(
    air: Airspace, quoter: Quoter
) -> None:
    relaxed = job_to(air, 1000.0, 0.0, "relaxed", promised_in_s=4 * 3600.0)
    urgent = job_to(air, -1000.0, 0.0, "urgent", promised_in_s=3600.0)
    for q in ([relaxed, urgent], [urgent, relaxed]):
        assigned, _, _ = plan_dispatch(q, fleet(drone(1)), quoter, DispatchSettings())
        assert [a.order_id for a in assigned] == ["urgent"]


@pytest.mark.parametrize(("decline_if_late", "declined"), [(True, True), (False, False)])
def test_late_job_is_declined_or_kept_queued_by_setting(
    air: Airspace, quoter: Quoter, decline_if_late: bool, declined: bool
) -> None:
    late = job_to(air, 3000.0, 0.0, "late", promised_in_s=60.0)
    a, d, w = plan_dispatch(
        [late], fleet(drone(1)), quoter, DispatchSettings(decline_if_late=decline_if_late)
    )
    assert not a
    got = d if declined else w
    assert len(got) == 1 and len(d) + len(w) == 1
    assert [r.code for r in got[0].reasons] == [ReasonCode.NO_DRONE_IN_TIME]


def test_permanent_reasons_decline_even_when_late_jobs_are_kept(
    air: Airspace, quoter: Quoter
) -> None:
    jobs = [
        job_to(air, 1000.0, 0.0, "heavy", mass_kg=5.0),
        job_to(air, 0.0, 9000.0, "far"),
        job_to(air, 1000.0, 0.0, "bulky", dims_cm=(80.0, 10.0, 10.0)),
        job_to(air, 1000.0, 0.0, "ok"),
    ]
    result = plan_dispatch(jobs, fleet(drone(1)), quoter, DispatchSettings(decline_if_late=False))
    assigned, declined, waiting = outcome_ids(result)  # type: ignore[arg-type]
    assert assigned == ["ok"] and not waiting
    assert sorted(declined) == ["bulky", "far", "heavy"]
    assert all(is_permanent(d.reasons) for d in result[1])


def test_wind_hold_keeps_every_job_queued_without_a_retry_time(
    air: Airspace, quoter: Quoter
) -> None:
    jobs = [job_to(air, 1000.0 * k, 0.0, f"o{k}") for k in (1, 2)]
    f = fleet(drone(1), drone(2), launches_allowed=False, hold_reason="gusts 13 m/s")
    assigned, declined, waiting = plan_dispatch(jobs, f, quoter, DispatchSettings())
    assert not assigned and not declined
    assert [(w.order_id, w.retry_at_s) for w in waiting] == [("o1", None), ("o2", None)]
    assert all([r.code for r in w.reasons] == [ReasonCode.WIND] for w in waiting)


def test_every_queued_job_gets_exactly_one_outcome(air: Airspace, quoter: Quoter) -> None:
    jobs = [
        job_to(air, 1000.0, 0.0, "a"),
        job_to(air, -1000.0, 500.0, "b"),
        job_to(air, 0.0, 9000.0, "c"),
        job_to(air, 2000.0, 0.0, "d", promised_in_s=30.0),
        job_to(air, 500.0, 500.0, "e", priority=9),
    ]
    result = plan_dispatch(jobs, fleet(drone(1), drone(2)), quoter, DispatchSettings())
    ids = [oid for part in outcome_ids(result) for oid in part]  # type: ignore[arg-type]
    assert sorted(ids) == ["a", "b", "c", "d", "e"]


def test_mixed_reasons_are_not_permanent() -> None:
    energy = Reason(code=ReasonCode.ENERGY.value, message="too far for drone 1")
    wind = Reason(code=ReasonCode.WIND.value, message="too windy for drone 2")
    assert is_permanent([energy])
    assert not is_permanent([energy, wind])
    assert not is_permanent([])
