"""COMMAND_LONG / COMMAND_INT transactions, message intervals and REQUEST_MESSAGE, sans-io."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import CommandError, CommandTimeout
from nestd.mavlink.protocols.base import Message

# Five attempts of 1.0 s each. 1.0 s covers a SiK radio at 57600 baud with a full telemetry
# queue ahead of the command (a few hundred ms each way); five attempts make a lost
# round trip at 20% loss each way (p = 0.36 per attempt) fail only 0.6% of the time,
# while a dead link is reported within 5 s, well inside PX4/ArduPilot's datalink failsafes.
MAX_RETRIES = 4
ACK_TIMEOUT_S = 1.0
# How long one MAV_RESULT_IN_PROGRESS keeps the transaction alive without a further ACK
# (the command protocol expects progress updates; a calibration or a winch may take long).
IN_PROGRESS_TIMEOUT_S = 3.0


class Step(enum.Enum):
    IDLE = "idle"
    AWAIT_ACK = "await_ack"
    IN_PROGRESS = "in_progress"
    AWAIT_MESSAGE = "await_message"  # REQUEST_MESSAGE only: ACKed, the message not yet seen
    DONE = "done"


class CommandStatus(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # a final MAV_RESULT other than ACCEPTED; see `result`
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: int
    status: CommandStatus
    result: int | None  # the final MAV_RESULT, None on timeout
    attempts: int
    progress: int | None = None  # last IN_PROGRESS percentage, if any
    result_param2: int = 0

    @property
    def ok(self) -> bool:
        return self.status is CommandStatus.ACCEPTED

    def raise_for_status(self) -> None:
        if self.status is CommandStatus.ACCEPTED:
            return
        if self.status is CommandStatus.REJECTED:
            raise CommandError(self.command, self.result if self.result is not None else -1)
        if self.status is CommandStatus.TIMEOUT:
            raise CommandTimeout(self.command, self.attempts)
        raise RuntimeError(f"command {self.command} has not finished")


class CommandTransaction:
    """One command to one vehicle component, with retries and IN_PROGRESS handling.

    `params` are param1..param7 (missing ones are 0). With `use_int` the command goes as
    COMMAND_INT: params 5 and 6 must then be the scaled integers (degrees * 1e7) and
    `frame` applies; COMMAND_INT has no confirmation counter, so a retry resends it as is.
    `own` is the daemon's (sysid, compid): an ACK addressed to someone else is not ours.
    """

    def __init__(
        self,
        target: tuple[int, int],
        command: int,
        params: Sequence[float] = (),
        *,
        own: tuple[int, int],
        use_int: bool = False,
        frame: int = mav.MAV_FRAME_GLOBAL_INT,
        timeout_s: float = ACK_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        in_progress_timeout_s: float = IN_PROGRESS_TIMEOUT_S,
        first_confirmation: int = 0,
    ) -> None:
        if len(params) > 7:
            raise ValueError("a command has at most 7 params")
        self.target = target
        self.command = command
        self.params = tuple(params) + (0.0,) * (7 - len(params))
        self.own = own
        self.use_int = use_int
        self.frame = frame
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.in_progress_timeout_s = in_progress_timeout_s
        self.step = Step.IDLE
        self.attempts = 0
        self.progress: int | None = None
        self.ignored_acks = 0  # ACKs for other commands or other GCSs, counted not acted on
        self._confirmation = first_confirmation
        self._deadline_s: float | None = None
        self._status = CommandStatus.PENDING
        self._result: int | None = None
        self._result_param2 = 0

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    @property
    def deadline_s(self) -> float | None:
        return self._deadline_s

    @property
    def result(self) -> CommandResult:
        return CommandResult(
            command=self.command,
            status=self._status,
            result=self._result,
            attempts=self.attempts,
            progress=self.progress,
            result_param2=self._result_param2,
        )

    def start(self, now_s: float) -> list[Message]:
        self.step = Step.AWAIT_ACK
        return [self._send(now_s)]

    def matches_ack(self, msg: Message) -> bool:
        """True for a COMMAND_ACK answering this command and addressed to us (or to all)."""
        if msg.get_type() != "COMMAND_ACK" or msg.command != self.command:
            return False
        # MAVLink 1 ACKs have no target fields; pymavlink then gives 0 (broadcast).
        return getattr(msg, "target_system", 0) in (0, self.own[0]) and getattr(
            msg, "target_component", 0
        ) in (0, self.own[1])

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done or msg.get_type() != "COMMAND_ACK":
            return []
        if not self.matches_ack(msg):
            self.ignored_acks += 1
            return []
        if msg.result == mav.MAV_RESULT_IN_PROGRESS:
            self.step = Step.IN_PROGRESS
            # 255 means "progress unknown" in the spec.
            if 0 <= msg.progress <= 100:
                self.progress = msg.progress
            self._deadline_s = now_s + self.in_progress_timeout_s
            return []
        self._finish(
            CommandStatus.ACCEPTED
            if msg.result == mav.MAV_RESULT_ACCEPTED
            else CommandStatus.REJECTED,
            msg.result,
            getattr(msg, "result_param2", 0),
        )
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        if self.done or self._deadline_s is None or now_s < self._deadline_s:
            return []
        # The command protocol says not to resend a command the vehicle reports in progress:
        # that would restart it. Silence after IN_PROGRESS is a timeout.
        if self.step is Step.IN_PROGRESS or self.attempts > self.max_retries:
            self._finish(CommandStatus.TIMEOUT, None, 0)
            return []
        self._confirmation += 1
        return [self._send(now_s)]

    def _finish(self, status: CommandStatus, result: int | None, result_param2: int) -> None:
        self._status = status
        self._result = result
        self._result_param2 = result_param2
        self.step = Step.DONE
        self._deadline_s = None

    def _send(self, now_s: float) -> Message:
        self.attempts += 1
        self._deadline_s = now_s + self.timeout_s
        p = self.params
        if self.use_int:
            return mav.MAVLink_command_int_message(
                self.target[0], self.target[1], self.frame, self.command, 0, 0,
                p[0], p[1], p[2], p[3], int(p[4]), int(p[5]), p[6],
            )  # fmt: skip
        return mav.MAVLink_command_long_message(
            self.target[0], self.target[1], self.command, min(self._confirmation, 255),
            p[0], p[1], p[2], p[3], p[4], p[5], p[6],
        )  # fmt: skip


def interval_us(interval_s: float | None) -> float:
    """SET_MESSAGE_INTERVAL's param2: None stops the stream, 0 restores the default rate."""
    if interval_s is None:
        return -1.0
    if interval_s < 0:
        raise ValueError("interval_s must be >= 0 (or None to stop the stream)")
    return round(interval_s * 1e6)


def set_message_interval(
    target: tuple[int, int],
    message_id: int,
    interval_s: float | None,
    *,
    own: tuple[int, int],
    timeout_s: float = ACK_TIMEOUT_S,
    max_retries: int = MAX_RETRIES,
) -> CommandTransaction:
    """MAV_CMD_SET_MESSAGE_INTERVAL; `interval_s` as in `interval_us`."""
    return CommandTransaction(
        target,
        mav.MAV_CMD_SET_MESSAGE_INTERVAL,
        (float(message_id), interval_us(interval_s)),
        own=own,
        timeout_s=timeout_s,
        max_retries=max_retries,
    )


@dataclass(frozen=True, slots=True)
class RequestMessageResult:
    message_id: int
    status: CommandStatus
    result: int | None  # MAV_RESULT of the last ACK, None if none came
    attempts: int
    message: Message | None  # the requested message, on success

    @property
    def ok(self) -> bool:
        return self.status is CommandStatus.ACCEPTED

    def raise_for_status(self) -> None:
        cmd = mav.MAV_CMD_REQUEST_MESSAGE
        if self.status is CommandStatus.ACCEPTED:
            return
        if self.status is CommandStatus.REJECTED:
            raise CommandError(cmd, self.result if self.result is not None else -1)
        if self.status is CommandStatus.TIMEOUT:
            raise CommandTimeout(cmd, self.attempts)
        raise RuntimeError("REQUEST_MESSAGE has not finished")


class RequestMessageTransaction:
    """MAV_CMD_REQUEST_MESSAGE: done when the ACK says ACCEPTED *and* the message arrived.

    The message may overtake the ACK (the vehicle often sends it first); that counts. If
    the ACK comes but the message was lost, the request is sent again (it is idempotent),
    within the same retry budget. Feed it every message from the vehicle component: it
    picks out the requested one by message id.
    """

    def __init__(
        self,
        target: tuple[int, int],
        message_id: int,
        params: Sequence[float] = (),
        *,
        own: tuple[int, int],
        timeout_s: float = ACK_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        if len(params) > 6:
            raise ValueError("REQUEST_MESSAGE takes at most 6 extra params")
        self.target = target
        self.message_id = message_id
        self.own = own
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._params = (float(message_id), *params)
        self.message: Message | None = None
        self.attempts = 0
        self._ack_result: int | None = None
        self._accepted = False
        self._status = CommandStatus.PENDING
        self._deadline_s: float | None = None
        self._cmd = self._new_command(0)

    def _new_command(self, confirmation: int) -> CommandTransaction:
        # The inner command gets the whole remaining budget; attempts are counted here.
        return CommandTransaction(
            self.target,
            mav.MAV_CMD_REQUEST_MESSAGE,
            self._params,
            own=self.own,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries - self.attempts,
            first_confirmation=confirmation,
        )

    @property
    def step(self) -> Step:
        if self._status is not CommandStatus.PENDING:
            return Step.DONE
        if self._accepted:
            return Step.AWAIT_MESSAGE
        return self._cmd.step

    @property
    def done(self) -> bool:
        return self._status is not CommandStatus.PENDING

    @property
    def deadline_s(self) -> float | None:
        if self.done:
            return None
        return self._deadline_s if self._accepted else self._cmd.deadline_s

    @property
    def result(self) -> RequestMessageResult:
        return RequestMessageResult(
            self.message_id,
            self._status,
            self._ack_result,
            self.attempts,
            self.message if self._status is CommandStatus.ACCEPTED else None,
        )

    def start(self, now_s: float) -> list[Message]:
        return self._track(self._cmd.start(now_s))

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done:
            return []
        if msg.get_msgId() == self.message_id:
            self.message = msg
            self._check_complete()
            return []
        if self._accepted:
            return []
        out = self._cmd.on_message(msg, now_s)
        if self._cmd.done:
            res = self._cmd.result
            self._ack_result = res.result
            if res.status is CommandStatus.ACCEPTED:
                self._accepted = True
                self._deadline_s = now_s + self.timeout_s
                self._check_complete()
            else:
                self._status = res.status
        return out

    def on_timer(self, now_s: float) -> list[Message]:
        if self.done:
            return []
        if not self._accepted:
            out = self._track(self._cmd.on_timer(now_s))
            if self._cmd.done:
                self._status = self._cmd.result.status
            return out
        if self._deadline_s is None or now_s < self._deadline_s:
            return []
        if self.attempts > self.max_retries:
            self._status = CommandStatus.TIMEOUT
            return []
        self._accepted = False
        self._cmd = self._new_command(self.attempts)
        return self._track(self._cmd.start(now_s))

    def _track(self, out: list[Message]) -> list[Message]:
        self.attempts += len(out)
        return out

    def _check_complete(self) -> None:
        if self._accepted and self.message is not None:
            self._status = CommandStatus.ACCEPTED
