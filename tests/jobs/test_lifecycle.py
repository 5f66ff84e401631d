"""The job lifecycle: exactly the listed transitions are legal, and cancels match them."""

from __future__ import annotations

import itertools

import pytest

from nestd.jobs.lifecycle import (
    TERMINAL,
    TRANSITIONS,
    CancelOutcome,
    IllegalTransition,
    JobState,
    can_transition,
    cancel_outcome,
    check_transition,
    is_terminal,
)

S = JobState

# Written out by hand, not derived from TRANSITIONS: a change to the table must change this too.
EXPECTED_LEGAL: dict[JobState, set[JobState]] = {
    S.RECEIVED: {S.ACCEPTED, S.REJECTED, S.CANCELLED},
    S.ACCEPTED: {S.QUEUED, S.DECLINED, S.CANCELLED},
    S.QUEUED: {S.ASSIGNED, S.DECLINED, S.CANCELLED},
    S.ASSIGNED: {S.PREFLIGHT, S.QUEUED, S.DECLINED, S.CANCELLED},
    S.PREFLIGHT: {S.LAUNCHED, S.QUEUED, S.DECLINED, S.CANCELLED, S.FAILED},
    S.LAUNCHED: {S.ENROUTE, S.ABORTED, S.FAILED},
    S.ENROUTE: {S.DELIVERING, S.ABORTED, S.FAILED},
    S.DELIVERING: {S.DELIVERED, S.ABORTED, S.FAILED},
    S.DELIVERED: {S.RETURNING, S.FAILED},
    S.RETURNING: {S.LANDED, S.FAILED},
    S.LANDED: {S.COMPLETED},
    S.COMPLETED: set(),
    S.REJECTED: set(),
    S.DECLINED: set(),
    S.CANCELLED: set(),
    S.ABORTED: set(),
    S.FAILED: set(),
}

EXPECTED_TERMINAL = {S.COMPLETED, S.REJECTED, S.DECLINED, S.CANCELLED, S.ABORTED, S.FAILED}

EXPECTED_CANCEL: dict[JobState, CancelOutcome] = {
    S.RECEIVED: CancelOutcome.CANCEL_NOW,
    S.ACCEPTED: CancelOutcome.CANCEL_NOW,
    S.QUEUED: CancelOutcome.CANCEL_NOW,
    S.ASSIGNED: CancelOutcome.CANCEL_NOW,
    S.PREFLIGHT: CancelOutcome.CANCEL_NOW,
    S.LAUNCHED: CancelOutcome.RETURN_WITH_PARCEL,
    S.ENROUTE: CancelOutcome.RETURN_WITH_PARCEL,
    S.DELIVERING: CancelOutcome.RETURN_WITH_PARCEL,
    S.DELIVERED: CancelOutcome.REFUSED_AFTER_DROP,
    S.RETURNING: CancelOutcome.REFUSED_AFTER_DROP,
    S.LANDED: CancelOutcome.REFUSED_AFTER_DROP,
    S.COMPLETED: CancelOutcome.ALREADY_ENDED,
    S.REJECTED: CancelOutcome.ALREADY_ENDED,
    S.DECLINED: CancelOutcome.ALREADY_ENDED,
    S.CANCELLED: CancelOutcome.ALREADY_ENDED,
    S.ABORTED: CancelOutcome.ALREADY_ENDED,
    S.FAILED: CancelOutcome.ALREADY_ENDED,
}

HAPPY_PATH = [S.RECEIVED, S.ACCEPTED, S.QUEUED, S.ASSIGNED, S.PREFLIGHT, S.LAUNCHED, S.ENROUTE,
              S.DELIVERING, S.DELIVERED, S.RETURNING, S.LANDED, S.COMPLETED]


def test_expected_tables_cover_every_state() -> None:
    # A new state must be added to the expectations above before the pair tests mean anything.
    assert set(EXPECTED_LEGAL) == set(JobState)
    assert set(EXPECTED_CANCEL) == set(JobState)
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(JobState, JobState)),
                         ids=lambda s: s.value)
def test_transition_is_legal_iff_listed(frm: JobState, to: JobState) -> None:
    legal = to in EXPECTED_LEGAL[frm]
    assert can_transition(frm, to) is legal
    if legal:
        check_transition(frm, to)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(frm, to)
        assert (info.value.frm, info.value.to) == (frm, to)


def test_illegal_transition_message_names_both_states() -> None:
    with pytest.raises(IllegalTransition, match="from completed to launched"):
        check_transition(S.COMPLETED, S.LAUNCHED)


def test_terminal_states_are_exactly_the_expected_ones() -> None:
    assert set(TERMINAL) == EXPECTED_TERMINAL
    assert {s for s in JobState if is_terminal(s)} == EXPECTED_TERMINAL


@pytest.mark.parametrize("state", sorted(EXPECTED_TERMINAL), ids=lambda s: s.value)
def test_terminal_state_has_no_way_out(state: JobState) -> None:
    assert not [to for to in JobState if can_transition(state, to)]


@pytest.mark.parametrize("state", sorted(set(JobState) - EXPECTED_TERMINAL), ids=lambda s: s.value)
def test_non_terminal_state_can_still_reach_an_end(state: JobState) -> None:
    seen = {state}
    frontier = [state]
    while frontier:
        nxt = [to for frm in frontier for to in JobState if can_transition(frm, to)]
        frontier = [s for s in nxt if s not in seen]
        seen.update(frontier)
    assert seen & EXPECTED_TERMINAL


def test_happy_path_from_received_to_completed_is_legal() -> None:
    for frm, to in itertools.pairwise(HAPPY_PATH):
        check_transition(frm, to)
    assert not is_terminal(HAPPY_PATH[-2])
    assert is_terminal(HAPPY_PATH[-1])


@pytest.mark.parametrize("state", list(JobState), ids=lambda s: s.value)
def test_cancel_outcome_for_every_state(state: JobState) -> None:
    assert cancel_outcome(state) is EXPECTED_CANCEL[state]


@pytest.mark.parametrize("state", list(JobState), ids=lambda s: s.value)
def test_cancel_outcome_agrees_with_the_transition_table(state: JobState) -> None:
    # A cancel that "happens now" must be a legal move to `cancelled`, a turn-back a legal
    # move to `aborted`; otherwise the cancel handler would hit IllegalTransition.
    outcome = cancel_outcome(state)
    assert (outcome is CancelOutcome.CANCEL_NOW) == can_transition(state, S.CANCELLED)
    assert (outcome is CancelOutcome.RETURN_WITH_PARCEL) == can_transition(state, S.ABORTED)
    assert (outcome is CancelOutcome.ALREADY_ENDED) == is_terminal(state)
