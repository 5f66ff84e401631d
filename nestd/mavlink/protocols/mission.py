"""Mission, fence and rally transfer (upload, download, clear) as sans-io state machines."""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import MissionMismatch, MissionTimeout, MissionTransferError
from nestd.mavlink.protocols.base import Message

MISSION = mav.MAV_MISSION_TYPE_MISSION
FENCE = mav.MAV_MISSION_TYPE_FENCE
RALLY = mav.MAV_MISSION_TYPE_RALLY
ALL_TYPES = mav.MAV_MISSION_TYPE_ALL

# Retries are counted per step and reset whenever the transfer makes progress (as MAVSDK
# does), so the budget is per item, not per mission. At 20% loss each way one round trip
# fails with p = 1 - 0.8**2 = 0.36; eleven tries per item make a 100-item transfer fail
# with p ~ 100 * 0.36**11 ~ 1e-3. MAVSDK's 5 would lose about one 100-item transfer in five
# at that loss, which is what our delivery radios see at the edge of range. A dead link is
# still reported after ITEM_TIMEOUT_S * (MAX_RETRIES + 1) = 11 s of silence.
MAX_RETRIES = 10
# One MISSION_ITEM_INT round trip on a 57600-baud SiK radio with telemetry queued ahead of it
# takes a few hundred ms; 1 s leaves margin without making a lost item cost much.
ITEM_TIMEOUT_S = 1.0

# Frames whose x/y carry local metres * 1e4 in MISSION_ITEM_INT rather than degrees * 1e7.
_LOCAL_FRAMES = frozenset(
    {
        mav.MAV_FRAME_LOCAL_NED,
        mav.MAV_FRAME_LOCAL_ENU,
        mav.MAV_FRAME_LOCAL_OFFSET_NED,
        mav.MAV_FRAME_BODY_NED,
        mav.MAV_FRAME_BODY_OFFSET_NED,
        mav.MAV_FRAME_BODY_FRD,
        mav.MAV_FRAME_LOCAL_FRD,
        mav.MAV_FRAME_LOCAL_FLU,
    }
)
# The _INT frame names are a MAVLink-1 leftover: vehicles treat both spellings alike and
# some report the other one on read-back.
_FRAME_CLASS = {
    mav.MAV_FRAME_GLOBAL_INT: mav.MAV_FRAME_GLOBAL,
    mav.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT: mav.MAV_FRAME_GLOBAL_RELATIVE_ALT,
    mav.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT: mav.MAV_FRAME_GLOBAL_TERRAIN_ALT,
}


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


@dataclass(frozen=True, slots=True)
class MissionItem:
    """One mission/fence/rally item as MISSION_ITEM_INT carries it (x/y: degrees * 1e7)."""

    seq: int
    frame: int
    command: int
    current: int = 0
    autocontinue: int = 1
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0
    y: int = 0
    z: float = 0.0
    mission_type: int = MISSION

    @classmethod
    def from_msg(cls, msg: Message) -> MissionItem:
        """From MISSION_ITEM_INT, or from old firmware's MISSION_ITEM (float x/y)."""
        if msg.get_type() == "MISSION_ITEM":
            scale = 1e4 if msg.frame in _LOCAL_FRAMES else 1e7
            x, y = _scaled(msg.x, scale), _scaled(msg.y, scale)
        else:
            x, y = int(msg.x), int(msg.y)
        return cls(
            seq=msg.seq,
            frame=msg.frame,
            command=msg.command,
            current=msg.current,
            autocontinue=msg.autocontinue,
            param1=msg.param1,
            param2=msg.param2,
            param3=msg.param3,
            param4=msg.param4,
            x=x,
            y=y,
            z=msg.z,
            mission_type=getattr(msg, "mission_type", MISSION),
        )

    def to_msg(self, target: tuple[int, int]) -> Message:
        return mav.MAVLink_mission_item_int_message(
            target[0], target[1], self.seq, self.frame, self.command, self.current,
            self.autocontinue, self.param1, self.param2, self.param3, self.param4,
            self.x, self.y, self.z, self.mission_type,
        )  # fmt: skip


def _scaled(value: float, scale: float) -> int:
    if not math.isfinite(value):
        return 0
    return max(-(2**31), min(2**31 - 1, round(value * scale)))


# -- read-back comparison -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemDifference:
    """The first place where a read-back differs from what was uploaded."""

    seq: int
    field: str
    sent: object
    got: object

    def to_error(self, mission_type: int) -> MissionMismatch:
        return MissionMismatch(
            mission_type, self.seq, f"{self.field}: sent {self.sent!r}, got {self.got!r}"
        )


def _float_equal(a: float, b: float) -> bool:
    # Params and z travel as float32; NaN ("leave unchanged" for PX4) must read back as NaN.
    fa, fb = _f32(a), _f32(b)
    return fa == fb or (math.isnan(fa) and math.isnan(fb))


def _coord_equal(sent: int, got: int, frame: int) -> bool:
    if sent == got:
        return True
    # Old firmware reads back through MISSION_ITEM's float32 degrees: accept exactly the
    # value that rounding produces, nothing looser.
    scale = 1e4 if frame in _LOCAL_FRAMES else 1e7
    return _scaled(_f32(sent / scale), scale) == got


def compare_items(
    sent: Sequence[MissionItem],
    got: Sequence[MissionItem],
    *,
    seq0_is_home: bool,
    compare_current: bool = False,
) -> ItemDifference | None:
    """None if `got` (a download) holds what `sent` (an upload) asked for.

    `seq0_is_home`: the vehicle (ArduPilot) keeps home at MISSION seq 0 whatever was sent
    there; it applies to MISSION lists only (fence and rally have no home slot). `current`
    is not compared by default: vehicles rewrite it to mark their active item.
    """
    if len(sent) != len(got):
        return ItemDifference(min(len(sent), len(got)), "count", len(sent), len(got))
    for a, b in zip(sent, got, strict=True):
        if seq0_is_home and a.seq == 0 and a.mission_type == MISSION:
            continue
        for f in fields(MissionItem):
            name = f.name
            va, vb = getattr(a, name), getattr(b, name)
            if name == "current" and not compare_current:
                continue
            if name in ("param1", "param2", "param3", "param4", "z"):
                same = _float_equal(va, vb)
            elif name in ("x", "y"):
                same = _coord_equal(va, vb, a.frame)
            elif name == "frame":
                same = _FRAME_CLASS.get(va, va) == _FRAME_CLASS.get(vb, vb)
            else:
                same = va == vb
            if not same:
                return ItemDifference(a.seq, name, va, vb)
    return None


def verify_read_back(
    mission_type: int,
    sent: Sequence[MissionItem],
    got: Sequence[MissionItem],
    *,
    seq0_is_home: bool,
) -> None:
    """Raise MissionMismatch where `compare_items` finds a difference."""
    diff = compare_items(sent, got, seq0_is_home=seq0_is_home)
    if diff is not None:
        raise diff.to_error(mission_type)


# -- results --------------------------------------------------------------------------------


class Operation(enum.Enum):
    UPLOAD = "upload"
    DOWNLOAD = "download"
    CLEAR = "clear"


class Step(enum.Enum):
    IDLE = "idle"
    SEND_COUNT = "send_count"  # upload: MISSION_COUNT sent, no request yet
    SEND_ITEMS = "send_items"  # upload: answering requests
    AWAIT_ACK = "await_ack"  # upload: last item sent; clear: CLEAR_ALL sent
    REQUEST_LIST = "request_list"  # download: MISSION_REQUEST_LIST sent
    REQUEST_ITEMS = "request_items"  # download: requesting items one by one
    DONE = "done"


class TransferResult(enum.Enum):
    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"  # MAV_MISSION_ERROR, or a result code this dialect doesn't know
    UNSUPPORTED_FRAME = "unsupported_frame"
    UNSUPPORTED = "unsupported"
    NO_SPACE = "no_space"
    INVALID_PARAM = "invalid_param"  # MAV_MISSION_INVALID and INVALID_PARAM1..7
    INVALID_SEQUENCE = "invalid_sequence"  # the vehicle says our sequence was wrong
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"  # the vehicle broke the protocol (we sent the NACK)
    # Upload only: every item went out and the vehicle ended the transfer, but its final ACK
    # never arrived (ArduPilot answers our resent last item with MAV_MISSION_ERROR, nestsim
    # stays silent). What the vehicle holds is unknown until it is read back.
    ACK_LOST = "ack_lost"
    INVALID_INPUT = "invalid_input"  # the items given to us were inconsistent; nothing sent


RESULT_BY_MISSION_RESULT: dict[int, TransferResult] = {
    mav.MAV_MISSION_ACCEPTED: TransferResult.SUCCESS,
    mav.MAV_MISSION_ERROR: TransferResult.ERROR,
    mav.MAV_MISSION_UNSUPPORTED_FRAME: TransferResult.UNSUPPORTED_FRAME,
    mav.MAV_MISSION_UNSUPPORTED: TransferResult.UNSUPPORTED,
    mav.MAV_MISSION_NO_SPACE: TransferResult.NO_SPACE,
    mav.MAV_MISSION_INVALID: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM1: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM2: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM3: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM4: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM5_X: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM6_Y: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_PARAM7: TransferResult.INVALID_PARAM,
    mav.MAV_MISSION_INVALID_SEQUENCE: TransferResult.INVALID_SEQUENCE,
    mav.MAV_MISSION_DENIED: TransferResult.DENIED,
    mav.MAV_MISSION_OPERATION_CANCELLED: TransferResult.CANCELLED,
}


def result_for(mission_result: int) -> TransferResult:
    return RESULT_BY_MISSION_RESULT.get(mission_result, TransferResult.ERROR)


@dataclass(frozen=True, slots=True)
class MissionResult:
    operation: Operation
    mission_type: int
    status: TransferResult
    mission_result: int | None  # MAV_MISSION_RESULT from (or, on a protocol error, to) the vehicle
    step: Step  # where it ended (for a failure: where it failed)
    items: tuple[MissionItem, ...] = ()  # download: what the vehicle holds
    retries: int = 0  # timeouts that led to a resend, over the whole transfer
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is TransferResult.SUCCESS

    @property
    def read_back_decides(self) -> bool:
        """True when only a download can tell whether the upload took (ACK_LOST)."""
        return self.status is TransferResult.ACK_LOST

    def raise_for_status(self) -> None:
        if self.status is TransferResult.SUCCESS:
            return
        if self.status is TransferResult.PENDING:
            raise RuntimeError("mission transfer has not finished")
        if self.status is TransferResult.TIMEOUT:
            raise MissionTimeout(self.mission_type, self.step.value)
        raise MissionTransferError(
            self.mission_type,
            self.mission_result,
            self.step.value,
            f"mission type {self.mission_type} {self.operation.value} failed at "
            f"{self.step.value}: {self.status.value}"
            + (
                f" (MAV_MISSION_RESULT {self.mission_result})"
                if self.mission_result is not None
                else ""
            )
            + (f": {self.detail}" if self.detail else ""),
        )


# -- shared machinery -----------------------------------------------------------------------


@dataclass
class _Counters:
    sent: int = 0
    ignored: int = 0  # messages for another mission type / GCS, stale or duplicate
    duplicates: int = 0  # requests (upload) or items (download) we had already seen
    retries: int = 0  # timeouts that led to a resend


class _Transfer:
    operation: Operation

    def __init__(
        self,
        target: tuple[int, int],
        mission_type: int = MISSION,
        *,
        own: tuple[int, int],
        timeout_s: float = ITEM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.target = target
        self.mission_type = mission_type
        self.own = own
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.step = Step.IDLE
        self.counters = _Counters()
        self._retries_in_step = 0
        self._deadline_s: float | None = None
        self._status = TransferResult.PENDING
        self._mission_result: int | None = None
        self._failed_step = Step.IDLE
        self._detail = ""
        self._items: tuple[MissionItem, ...] = ()

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    @property
    def deadline_s(self) -> float | None:
        return self._deadline_s

    @property
    def result(self) -> MissionResult:
        return MissionResult(
            operation=self.operation,
            mission_type=self.mission_type,
            status=self._status,
            mission_result=self._mission_result,
            step=self._failed_step if self.done else self.step,
            items=self._items,
            retries=self.counters.retries,
            detail=self._detail,
        )

    def cancel(self, now_s: float) -> list[Message]:
        """Give up (e.g. the caller was cancelled); tells the vehicle so it stops waiting."""
        if self.done:
            return []
        out = [self._ack(mav.MAV_MISSION_OPERATION_CANCELLED)]
        self._finish(TransferResult.CANCELLED, mav.MAV_MISSION_OPERATION_CANCELLED)
        return out

    def _for_us(self, msg: Message) -> bool:
        """Addressed to us (or broadcast) and about our mission type; counts the rest."""
        mtype = getattr(msg, "mission_type", MISSION)
        ok = (
            getattr(msg, "target_system", 0) in (0, self.own[0])
            and getattr(msg, "target_component", 0) in (0, self.own[1])
            and (mtype == self.mission_type or self.mission_type == ALL_TYPES)
        )
        if not ok:
            self.counters.ignored += 1
        return ok

    def _arm(self, now_s: float) -> None:
        self._deadline_s = now_s + self.timeout_s

    def _progress(self, now_s: float) -> None:
        self._retries_in_step = 0
        self._arm(now_s)

    def _retry_allowed(self, now_s: float) -> bool:
        """On a timeout: whether to resend (counted) or give up with TIMEOUT."""
        if self._retries_in_step >= self.max_retries:
            self._finish(TransferResult.TIMEOUT, None)
            return False
        self._retries_in_step += 1
        self.counters.retries += 1
        self._arm(now_s)
        return True

    def _timer_due(self, now_s: float) -> bool:
        return not self.done and self._deadline_s is not None and now_s >= self._deadline_s

    def _finish(self, status: TransferResult, mission_result: int | None, detail: str = "") -> None:
        self._status = status
        self._mission_result = mission_result
        self._failed_step = self.step
        self._detail = detail
        self.step = Step.DONE
        self._deadline_s = None

    def _send(self, msgs: list[Message]) -> list[Message]:
        self.counters.sent += len(msgs)
        return msgs

    def _ack(self, result: int) -> Message:
        return mav.MAVLink_mission_ack_message(
            self.target[0], self.target[1], result, self.mission_type
        )


# -- upload ---------------------------------------------------------------------------------


class MissionUpload(_Transfer):
    """Upload a list: MISSION_COUNT, answer each request with MISSION_ITEM_INT, final ACK.

    The vehicle drives the transfer. Requests may repeat (our item was lost) or go back
    (the vehicle restarted a part): both are answered. A request past the end is a protocol
    error: we NACK it with MAV_MISSION_INVALID_SEQUENCE and stop.

    ArduPilot answers a duplicate item mid-transfer with MAV_MISSION_INVALID_SEQUENCE and
    carries on, so once items flow that NACK is only remembered: it becomes the result if
    the vehicle then falls silent. If the final ACK is lost we resend the last item; PX4
    (since PR 9547) ACKs it again, ArduPilot answers MAV_MISSION_ERROR because its transfer
    is over. A MAV_MISSION_ERROR after the last item, or silence, is therefore ACK_LOST:
    the caller's read-back decides.
    """

    operation = Operation.UPLOAD

    def __init__(
        self,
        target: tuple[int, int],
        items: Sequence[MissionItem],
        mission_type: int = MISSION,
        *,
        own: tuple[int, int],
        timeout_s: float = ITEM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(
            target, mission_type, own=own, timeout_s=timeout_s, max_retries=max_retries
        )
        self.items = tuple(items)
        self._highest_sent = -1
        self._last_sent = -1
        self._nack: int | None = None  # a non-fatal INVALID_SEQUENCE since the last progress

    @property
    def progress(self) -> float:
        """0..1: items the vehicle has asked for, plus one step for the final ACK."""
        if self._status is TransferResult.SUCCESS:
            return 1.0
        return (self._highest_sent + 1) / (len(self.items) + 1)

    def _input_error(self) -> str:
        if self.mission_type not in (MISSION, FENCE, RALLY):
            return f"cannot upload mission type {self.mission_type}"
        for i, it in enumerate(self.items):
            if it.seq != i:
                return f"item {i} has seq {it.seq}"
            if it.mission_type != self.mission_type:
                return f"item {i} has mission type {it.mission_type}"
        return ""

    def start(self, now_s: float) -> list[Message]:
        problem = self._input_error()
        if problem:
            self._finish(TransferResult.INVALID_INPUT, None, problem)
            return []
        self.step = Step.SEND_COUNT
        self._arm(now_s)
        return self._send([self._count()])

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done:
            return []
        t = msg.get_type()
        if t in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            if not self._for_us(msg):
                return []
            return self._on_request(msg.seq, now_s)
        if t == "MISSION_ACK":
            if not self._for_us(msg):
                return []
            return self._on_ack(msg.type)
        return []

    def _on_request(self, seq: int, now_s: float) -> list[Message]:
        if not 0 <= seq < len(self.items):
            self._finish(
                TransferResult.PROTOCOL_ERROR,
                mav.MAV_MISSION_INVALID_SEQUENCE,
                f"vehicle requested seq {seq} of {len(self.items)}",
            )
            return self._send([self._ack(mav.MAV_MISSION_INVALID_SEQUENCE)])
        if seq > self._highest_sent:
            self._highest_sent = seq
            self._nack = None
            self._progress(now_s)
        else:
            # A re-request: our item (or the vehicle's earlier request) was lost, or the
            # vehicle went back. Answer it; the vehicle's own retry limit bounds this.
            self.counters.duplicates += 1
            self._arm(now_s)
        self._last_sent = seq
        self.step = Step.AWAIT_ACK if seq == len(self.items) - 1 else Step.SEND_ITEMS
        return self._send([self.items[seq].to_msg(self.target)])

    def _on_ack(self, mission_result: int) -> list[Message]:
        if mission_result == mav.MAV_MISSION_ACCEPTED:
            if self.items and self._highest_sent < len(self.items) - 1:
                # An ACCEPTED before the vehicle asked for every item can only be a stale
                # ACK of an earlier transfer (duplicated or delayed by the radio).
                self.counters.ignored += 1
                return []
            self._finish(TransferResult.SUCCESS, mission_result)
            return []
        if mission_result == mav.MAV_MISSION_INVALID_SEQUENCE and self.step is not Step.SEND_COUNT:
            self._nack = mission_result
            self.counters.ignored += 1
            return []
        if mission_result == mav.MAV_MISSION_ERROR and self.step is Step.AWAIT_ACK:
            # ArduPilot's answer to any copy of the last item (our resend, or the radio's
            # duplicate) that arrives after it ended the transfer; its real verdict may be
            # lost or still on the way. A genuine final ERROR also lands here: the read-back
            # tells the two apart, and nothing is ever reported as a success that wasn't.
            self._finish(
                TransferResult.ACK_LOST,
                mission_result,
                "MAV_MISSION_ERROR after the last item: transfer ended, verdict unknown",
            )
            return []
        self._finish(result_for(mission_result), mission_result)
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._timer_due(now_s):
            return []
        if self._retries_in_step >= self.max_retries:
            if self._nack is not None:
                self._finish(result_for(self._nack), self._nack, "vehicle stopped after NACK")
            elif self.step is Step.AWAIT_ACK:
                self._finish(TransferResult.ACK_LOST, None, "no final MISSION_ACK")
            else:
                self._finish(TransferResult.TIMEOUT, None)
            return []
        self._retry_allowed(now_s)
        if self.step is Step.SEND_COUNT:
            return self._send([self._count()])
        if self.step is Step.AWAIT_ACK:
            return self._send([self.items[self._last_sent].to_msg(self.target)])
        # SEND_ITEMS: the vehicle drives with its own re-requests; we only count the silence.
        return []

    def _count(self) -> Message:
        return mav.MAVLink_mission_count_message(
            self.target[0], self.target[1], len(self.items), self.mission_type
        )


# -- download -------------------------------------------------------------------------------


class MissionDownload(_Transfer):
    """Download a list: REQUEST_LIST, COUNT, one MISSION_REQUEST_INT per item, final ACK.

    A download usually follows an upload, whose late MISSION_ACKs (ArduPilot's ERROR for a
    resent last item, say) can arrive while it runs. So a NACK is only believed when it
    answers a request sent after an earlier NACK, or when the vehicle then falls silent;
    a genuine refusal (DENIED during someone's upload, UNSUPPORTED type) costs one timeout.
    """

    operation = Operation.DOWNLOAD

    def __init__(
        self,
        target: tuple[int, int],
        mission_type: int = MISSION,
        *,
        own: tuple[int, int],
        timeout_s: float = ITEM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(
            target, mission_type, own=own, timeout_s=timeout_s, max_retries=max_retries
        )
        self.count: int | None = None
        self._received: list[MissionItem] = []
        self._nack: int | None = None
        self._sent_since_nack = False

    @property
    def progress(self) -> float:
        if self._status is TransferResult.SUCCESS:
            return 1.0
        if not self.count:
            return 0.0
        return len(self._received) / self.count

    def start(self, now_s: float) -> list[Message]:
        if self.mission_type not in (MISSION, FENCE, RALLY):
            self._finish(
                TransferResult.INVALID_INPUT, None, f"cannot download type {self.mission_type}"
            )
            return []
        self.step = Step.REQUEST_LIST
        self._arm(now_s)
        return self._send([self._request_list()])

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done:
            return []
        t = msg.get_type()
        if t == "MISSION_COUNT":
            if not self._for_us(msg):
                return []
            return self._on_count(msg.count, now_s)
        if t in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            if not self._for_us(msg):
                return []
            return self._on_item(msg, now_s)
        if t == "MISSION_ACK":
            if not self._for_us(msg):
                return []
            return self._on_ack(msg.type)
        return []

    def _on_ack(self, mission_result: int) -> list[Message]:
        if mission_result != mav.MAV_MISSION_ACCEPTED and (
            self._nack is not None and self._sent_since_nack
        ):
            self._finish(result_for(mission_result), mission_result)
            return []
        # Nothing in a download is ACKed by the vehicle: ACCEPTED is always stale.
        self.counters.ignored += 1
        if mission_result != mav.MAV_MISSION_ACCEPTED:
            self._nack = mission_result
            self._sent_since_nack = False
        return []

    def _send(self, msgs: list[Message]) -> list[Message]:
        self._sent_since_nack = True
        return super()._send(msgs)

    def _progress(self, now_s: float) -> None:
        self._nack = None
        super()._progress(now_s)

    def _on_count(self, count: int, now_s: float) -> list[Message]:
        if self.step is not Step.REQUEST_LIST:
            # A second COUNT, answering a resent REQUEST_LIST: nothing new.
            self.counters.duplicates += 1
            return []
        self.count = count
        if count == 0:
            return self._complete()
        self.step = Step.REQUEST_ITEMS
        self._progress(now_s)
        return self._send([self._request(0)])

    def _on_item(self, msg: Message, now_s: float) -> list[Message]:
        if self.step is not Step.REQUEST_ITEMS or msg.seq != len(self._received):
            # Answers to resent requests, or reordered: we only ever take the next one.
            self.counters.duplicates += 1
            return []
        self._received.append(MissionItem.from_msg(msg))
        if len(self._received) == self.count:
            return self._complete()
        self._progress(now_s)
        return self._send([self._request(len(self._received))])

    def _complete(self) -> list[Message]:
        self._items = tuple(self._received)
        self._finish(TransferResult.SUCCESS, mav.MAV_MISSION_ACCEPTED)
        return self._send([self._ack(mav.MAV_MISSION_ACCEPTED)])

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._timer_due(now_s):
            return []
        if self._nack is not None and self._retries_in_step >= self.max_retries:
            self._finish(result_for(self._nack), self._nack, "vehicle fell silent after NACK")
            return []
        if not self._retry_allowed(now_s):
            return []
        if self.step is Step.REQUEST_LIST:
            return self._send([self._request_list()])
        return self._send([self._request(len(self._received))])

    def _request_list(self) -> Message:
        return mav.MAVLink_mission_request_list_message(
            self.target[0], self.target[1], self.mission_type
        )

    def _request(self, seq: int) -> Message:
        return mav.MAVLink_mission_request_int_message(
            self.target[0], self.target[1], seq, self.mission_type
        )


# -- clear ----------------------------------------------------------------------------------


class MissionClear(_Transfer):
    """MISSION_CLEAR_ALL for one type (or MAV_MISSION_TYPE_ALL), then the vehicle's ACK.

    MISSION_ACK carries no transaction id, so a radio-delayed ACK of an earlier transfer of
    the same type would be taken for the answer; where that matters, confirm with a download.
    """

    operation = Operation.CLEAR

    def start(self, now_s: float) -> list[Message]:
        self.step = Step.AWAIT_ACK
        self._arm(now_s)
        return self._send([self._clear()])

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done or msg.get_type() != "MISSION_ACK" or not self._for_us(msg):
            return []
        self._finish(result_for(msg.type), msg.type)
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._timer_due(now_s) or not self._retry_allowed(now_s):
            return []
        # Clearing twice is harmless, so a lost ACK just costs another CLEAR_ALL.
        return self._send([self._clear()])

    def _clear(self) -> Message:
        return mav.MAVLink_mission_clear_all_message(
            self.target[0], self.target[1], self.mission_type
        )


def with_seq(items: Sequence[MissionItem], mission_type: int = MISSION) -> list[MissionItem]:
    """The items renumbered 0..n-1 and typed, ready for `MissionUpload`."""
    return [replace(it, seq=i, mission_type=mission_type) for i, it in enumerate(items)]


__all__ = [
    "ALL_TYPES",
    "FENCE",
    "ITEM_TIMEOUT_S",
    "MAX_RETRIES",
    "MISSION",
    "RALLY",
    "RESULT_BY_MISSION_RESULT",
    "ItemDifference",
    "MissionClear",
    "MissionDownload",
    "MissionItem",
    "MissionResult",
    "MissionUpload",
    "Operation",
    "Step",
    "TransferResult",
    "compare_items",
    "result_for",
    "verify_read_back",
    "with_seq",
]
