"""COMMAND_LONG/COMMAND_INT, SET_MESSAGE_INTERVAL and REQUEST_MESSAGE state machines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import CommandError, CommandTimeout
from nestd.mavlink.protocols.command import (
    MAX_RETRIES,
    CommandStatus,
    CommandTransaction,
    RequestMessageTransaction,
    Step,
    interval_us,
    set_message_interval,
)
from tests.mavlink.fakes import (
    DOWN,
    GCS,
    VEHICLE,
    CommandPeer,
    LossyLink,
    autopilot_version,
    command_ack,
    run,
)

T0 = 1000.0
ARM = mav.MAV_CMD_COMPONENT_ARM_DISARM
TAKEOFF = mav.MAV_CMD_NAV_TAKEOFF
VERSION_ID = mav.MAVLINK_MSG_ID_AUTOPILOT_VERSION


def arm(**kw: object) -> CommandTransaction:
    return CommandTransaction(VEHICLE, ARM, (1.0,), own=GCS, **kw)  # type: ignore[arg-type]


def test_command_long_goes_to_the_vehicle_with_params_padded() -> None:
    c = arm()
    (msg,) = c.start(T0)
    assert msg.get_type() == "COMMAND_LONG"
    assert (msg.target_system, msg.target_component, msg.command) == (*VEHICLE, ARM)
    assert (msg.confirmation, msg.param1, msg.param7) == (0, 1.0, 0.0)
    assert c.step is Step.AWAIT_ACK and c.deadline_s == T0 + 1.0


def test_command_accepted() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_ACCEPTED), T0 + 0.1)
    res = c.result
    assert c.done and res.ok and res.result == mav.MAV_RESULT_ACCEPTED and res.attempts == 1
    res.raise_for_status()
    assert c.deadline_s is None


@pytest.mark.parametrize(
    "code",
    [
        mav.MAV_RESULT_TEMPORARILY_REJECTED,
        mav.MAV_RESULT_DENIED,
        mav.MAV_RESULT_UNSUPPORTED,
        mav.MAV_RESULT_FAILED,
        6,  # MAV_RESULT_CANCELLED: in common.xml, missing from this pymavlink build
        mav.MAV_RESULT_COMMAND_LONG_ONLY,
        mav.MAV_RESULT_COMMAND_INT_ONLY,
    ],
)
def test_command_rejected_carries_the_mav_result(code: int) -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, code, result_param2=7), T0 + 0.1)
    res = c.result
    assert res.status is CommandStatus.REJECTED and res.result == code and res.result_param2 == 7
    with pytest.raises(CommandError) as err:
        res.raise_for_status()
    assert (err.value.command, err.value.result) == (ARM, code)


def test_command_retry_increments_confirmation() -> None:
    c = arm()
    c.start(T0)
    assert c.on_timer(T0 + 0.9) == []  # not due
    (m1,) = c.on_timer(T0 + 1.0)
    (m2,) = c.on_timer(T0 + 2.0)
    assert (m1.confirmation, m2.confirmation) == (1, 2) and c.attempts == 3


def test_command_times_out_after_its_retries() -> None:
    c = arm()
    sent = c.start(T0)
    now = T0
    while not c.done:
        assert c.deadline_s is not None
        now = c.deadline_s
        sent += c.on_timer(now)
    assert len(sent) == MAX_RETRIES + 1 == c.result.attempts
    assert c.result.status is CommandStatus.TIMEOUT and c.result.result is None
    assert now == pytest.approx(T0 + (MAX_RETRIES + 1) * 1.0)
    with pytest.raises(CommandTimeout) as err:
        c.result.raise_for_status()
    assert err.value.attempts == MAX_RETRIES + 1


def test_command_ignores_ack_for_other_command() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(TAKEOFF, mav.MAV_RESULT_ACCEPTED), T0 + 0.1)
    c.on_message(mav.MAVLink_heartbeat_message(2, 3, 0, 0, 0, 3), T0 + 0.1)
    assert not c.done and c.ignored_acks == 1


def test_command_ignores_ack_addressed_to_another_gcs() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_DENIED, to=(254, 190)), T0 + 0.1)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_DENIED, to=(GCS[0], 1)), T0 + 0.1)
    assert not c.done and c.ignored_acks == 2


def test_command_accepts_broadcast_ack() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_ACCEPTED, to=(0, 0)), T0 + 0.1)
    assert c.result.ok


def test_command_in_progress_extends_deadline() -> None:
    c = CommandTransaction(VEHICLE, TAKEOFF, own=GCS, in_progress_timeout_s=3.0)
    c.start(T0)
    c.on_message(command_ack(TAKEOFF, mav.MAV_RESULT_IN_PROGRESS, progress=10), T0 + 0.5)
    assert c.step is Step.IN_PROGRESS and c.deadline_s == T0 + 3.5
    assert c.on_timer(T0 + 1.0) == [] and not c.done  # the ack deadline no longer applies
    c.on_message(command_ack(TAKEOFF, mav.MAV_RESULT_IN_PROGRESS, progress=60), T0 + 3.0)
    assert c.deadline_s == T0 + 6.0 and c.result.progress == 60
    c.on_message(command_ack(TAKEOFF, mav.MAV_RESULT_ACCEPTED), T0 + 5.0)
    assert c.result.ok and c.result.progress == 60 and c.result.attempts == 1


def test_command_in_progress_with_unknown_progress_keeps_last_value() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_IN_PROGRESS, progress=255), T0)
    assert c.progress is None
    c.on_message(command_ack(ARM, mav.MAV_RESULT_IN_PROGRESS, progress=40), T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_IN_PROGRESS, progress=255), T0)
    assert c.progress == 40


def test_command_in_progress_silence_is_a_timeout_without_resending() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_IN_PROGRESS, progress=5), T0 + 0.1)
    assert c.on_timer(T0 + 3.1) == []
    assert c.result.status is CommandStatus.TIMEOUT and c.result.attempts == 1


def test_command_in_progress_then_failed_reports_failed() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_IN_PROGRESS, progress=50), T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_FAILED), T0 + 1)
    assert c.result.status is CommandStatus.REJECTED and c.result.result == mav.MAV_RESULT_FAILED


def test_command_late_ack_of_first_attempt_counts() -> None:
    c = arm()
    c.start(T0)
    c.on_timer(T0 + 1.0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_ACCEPTED), T0 + 1.2)
    assert c.result.ok and c.result.attempts == 2


def test_command_ignores_everything_once_done() -> None:
    c = arm()
    c.start(T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_ACCEPTED), T0)
    c.on_message(command_ack(ARM, mav.MAV_RESULT_DENIED), T0)
    assert c.on_timer(T0 + 10) == [] and c.result.ok


def test_command_int_carries_scaled_position_and_resends_unchanged() -> None:
    c = CommandTransaction(
        VEHICLE,
        mav.MAV_CMD_DO_REPOSITION,
        (-1.0, 1.0, 0.0, float("nan"), 473_977_420, 85_455_940, 40.0),
        own=GCS,
        use_int=True,
        frame=mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
    )
    (m1,) = c.start(T0)
    (m2,) = c.on_timer(T0 + 1.0)
    assert m1.get_type() == "COMMAND_INT"
    assert (m1.x, m1.y, m1.z, m1.frame) == (473_977_420, 85_455_940, 40.0, 6)
    assert (m2.x, m2.y, m2.command) == (m1.x, m1.y, m1.command)


def test_command_refuses_more_than_seven_params() -> None:
    with pytest.raises(ValueError, match="7"):
        CommandTransaction(VEHICLE, ARM, (0.0,) * 8, own=GCS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_command_through_a_20_percent_lossy_link(seed: int) -> None:
    peer = CommandPeer()
    link = LossyLink(seed=seed, loss_up=0.2, loss_down=0.2)
    c = arm()
    run(c, peer, link)
    assert c.result.ok
    # Every execution the vehicle saw carries the attempt number that reached it.
    assert [conf for _, conf in peer.executed] == sorted({conf for _, conf in peer.executed})
    assert c.result.attempts >= len(peer.executed) >= 1


def test_command_lost_ack_is_retried_with_confirmation() -> None:
    peer = CommandPeer()
    link = LossyLink(drop_next={(DOWN, "COMMAND_ACK"): 1})
    c = arm()
    run(c, peer, link)
    assert c.result.ok and peer.executed == [(ARM, 0), (ARM, 1)]


def test_command_rejection_through_the_link() -> None:
    c = arm()
    run(c, CommandPeer({ARM: mav.MAV_RESULT_TEMPORARILY_REJECTED}))
    assert c.result.result == mav.MAV_RESULT_TEMPORARILY_REJECTED


# -- message intervals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval_s", "expected"), [(None, -1.0), (0.0, 0.0), (0.1, 100_000), (2.0, 2_000_000)]
)
def test_interval_us(interval_s: float | None, expected: float) -> None:
    assert interval_us(interval_s) == expected


def test_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        interval_us(-0.5)


def test_set_message_interval_sends_message_id_and_microseconds() -> None:
    c = set_message_interval(VEHICLE, mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 0.2, own=GCS)
    (msg,) = c.start(T0)
    assert msg.command == mav.MAV_CMD_SET_MESSAGE_INTERVAL
    assert (msg.param1, msg.param2) == (mav.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 200_000)
    c.on_message(command_ack(mav.MAV_CMD_SET_MESSAGE_INTERVAL, mav.MAV_RESULT_ACCEPTED), T0)
    assert c.result.ok


# -- REQUEST_MESSAGE ------------------------------------------------------------------------


def request_version() -> RequestMessageTransaction:
    return RequestMessageTransaction(VEHICLE, VERSION_ID, own=GCS)


RM = mav.MAV_CMD_REQUEST_MESSAGE


def test_request_message_sends_the_message_id() -> None:
    r = request_version()
    (msg,) = r.start(T0)
    assert (msg.command, msg.param1) == (RM, VERSION_ID)


def test_request_message_needs_both_ack_and_message() -> None:
    r = request_version()
    r.start(T0)
    r.on_message(command_ack(RM, mav.MAV_RESULT_ACCEPTED), T0 + 0.1)
    assert not r.done and r.step is Step.AWAIT_MESSAGE
    r.on_message(autopilot_version(), T0 + 0.2)
    assert r.done and r.result.ok and r.result.message.get_type() == "AUTOPILOT_VERSION"


def test_request_message_arriving_before_the_ack_counts() -> None:
    r = request_version()
    r.start(T0)
    r.on_message(autopilot_version(), T0 + 0.1)
    assert not r.done
    r.on_message(command_ack(RM, mav.MAV_RESULT_ACCEPTED), T0 + 0.2)
    assert r.result.ok and r.result.attempts == 1


def test_request_message_resent_when_message_lost_after_ack() -> None:
    r = request_version()
    r.start(T0)
    r.on_message(command_ack(RM, mav.MAV_RESULT_ACCEPTED), T0 + 0.1)
    (again,) = r.on_timer(T0 + 1.1)
    assert again.command == RM and again.confirmation == 1 and r.step is Step.AWAIT_ACK
    r.on_message(command_ack(RM, mav.MAV_RESULT_ACCEPTED), T0 + 1.2)
    r.on_message(autopilot_version(), T0 + 1.3)
    assert r.result.ok and r.result.attempts == 2


def test_request_message_denied() -> None:
    r = request_version()
    r.start(T0)
    r.on_message(autopilot_version(), T0)  # an unsolicited copy doesn't rescue a refusal
    r.on_message(command_ack(RM, mav.MAV_RESULT_DENIED), T0 + 0.1)
    assert r.result.status is CommandStatus.REJECTED and r.result.message is None
    with pytest.raises(CommandError):
        r.result.raise_for_status()


def test_request_message_times_out_within_one_budget() -> None:
    r = request_version()
    sent = r.start(T0)
    now = T0
    while not r.done:
        assert r.deadline_s is not None
        now = r.deadline_s
        sent += r.on_timer(now)
        if len(sent) == 2:  # the vehicle ACKs the second try but the message never comes
            r.on_message(command_ack(RM, mav.MAV_RESULT_ACCEPTED), now)
    assert len(sent) == MAX_RETRIES + 1 == r.result.attempts
    assert r.result.status is CommandStatus.TIMEOUT
    assert r.result.result == mav.MAV_RESULT_ACCEPTED
    with pytest.raises(CommandTimeout):
        r.result.raise_for_status()


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_request_message_through_a_lossy_link(seed: int) -> None:
    peer = CommandPeer(send_before_ack=lambda _msg: [autopilot_version()])
    link = LossyLink(seed=seed, loss_up=0.2, loss_down=0.2, reorder=0.3)
    r = request_version()
    run(r, peer, link)
    assert r.result.ok and r.result.message is not None
    assert r.result.message.get_msgId() == VERSION_ID
    assert link.stats.sent_up == r.result.attempts


def test_request_message_lost_version_is_asked_again() -> None:
    peer = CommandPeer(send_before_ack=lambda _msg: [autopilot_version()])
    link = LossyLink(drop_next={(DOWN, "AUTOPILOT_VERSION"): 1})
    r = request_version()
    run(r, peer, link)
    assert r.result.ok and len(peer.executed) == 2 and link.stats.sent_up == 2


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    loss_up=st.floats(0.0, 0.7),
    loss_down=st.floats(0.0, 0.7),
    dup=st.floats(0.0, 0.3),
    reorder=st.floats(0.0, 0.5),
)
def test_random_loss_never_gives_a_wrong_command_result(
    seed: int, loss_up: float, loss_down: float, dup: float, reorder: float
) -> None:
    peer = CommandPeer()
    link = LossyLink(seed, loss_up, loss_down, dup, reorder)
    c = arm()
    run(c, peer, link)
    if c.result.ok:
        assert peer.executed  # an ACCEPTED only ever comes from a command that arrived
    else:
        assert c.result.status is CommandStatus.TIMEOUT
        assert c.result.attempts == MAX_RETRIES + 1
