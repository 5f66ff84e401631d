"""Parameter read (one, all) and set with echo check, sans-io, for PX4 and ArduPilot encodings."""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Literal

from pymavlink.dialects.v20 import ardupilotmega as mav

from nestd.mavlink.errors import ParamError, ParamTimeout
from nestd.mavlink.protocols.base import Message

# "bytewise": PX4 puts an integer's raw bits into PARAM_VALUE's float field.
# "c_cast": ArduPilot sends every value converted to float.
Encoding = Literal["bytewise", "c_cast"]
ParamValueT = int | float

# A lost PARAM_VALUE costs one timeout; 1 s covers a busy radio link, and six tries make a
# single read or set fail only 0.2% of the time at 20% loss each way.
PARAM_TIMEOUT_S = 1.0
MAX_RETRIES = 5
# Read-all: how long the PARAM_VALUE stream may pause before we take it as finished and
# re-request the gaps one by one. ArduPilot paces its list over several seconds on a slow
# link, so this is longer than a single round trip.
LIST_SILENCE_S = 2.0

PARAM_ID_LEN = 16
INDEX_NONE = 65535  # param_index of an unsolicited PARAM_VALUE (an echo of someone's set)

# struct format of each integer type, as it sits in the low bytes of the float field.
_INT_FORMATS: dict[int, str] = {
    mav.MAV_PARAM_TYPE_UINT8: "<B",
    mav.MAV_PARAM_TYPE_INT8: "<b",
    mav.MAV_PARAM_TYPE_UINT16: "<H",
    mav.MAV_PARAM_TYPE_INT16: "<h",
    mav.MAV_PARAM_TYPE_UINT32: "<I",
    mav.MAV_PARAM_TYPE_INT32: "<i",
}
FLOAT_TYPES = frozenset({mav.MAV_PARAM_TYPE_REAL32, mav.MAV_PARAM_TYPE_REAL64})


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def param_name(raw: str | bytes) -> str:
    """A param_id as text: pymavlink gives str or bytes, NUL-padded to 16 or not."""
    if isinstance(raw, bytes):
        raw = raw.split(b"\0", 1)[0].decode("ascii", errors="replace")
    return raw.split("\0", 1)[0]


def param_id_bytes(name: str) -> bytes:
    data = name.encode("ascii")
    if not 0 < len(data) <= PARAM_ID_LEN or b"\0" in data:
        raise ValueError(f"parameter name {name!r} must be 1..{PARAM_ID_LEN} ASCII characters")
    return data


def encode_value(value: ParamValueT, param_type: int, encoding: Encoding) -> float:
    """The float that travels in PARAM_SET/PARAM_VALUE.param_value for `value`."""
    if param_type in FLOAT_TYPES:
        return float(value)
    fmt = _INT_FORMATS.get(param_type)
    if fmt is None:
        raise ValueError(f"unsupported MAV_PARAM_TYPE {param_type}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    ivalue = int(value)
    if encoding == "c_cast":
        struct.pack(fmt, ivalue)  # range check
        return float(ivalue)
    raw = struct.pack(fmt, ivalue).ljust(4, b"\0")
    (bits,) = struct.unpack("<I", raw)
    # A signalling-NaN bit pattern cannot ride in a Python float: the conversion quiets it
    # and the vehicle would get a different integer. Refuse rather than corrupt.
    if bits & 0x7F800000 == 0x7F800000 and bits & 0x007FFFFF and not bits & 0x00400000:
        raise ValueError(f"{ivalue} cannot be sent bytewise through a float field")
    return float(struct.unpack("<f", raw)[0])


def decode_value(wire: float, param_type: int, encoding: Encoding) -> ParamValueT:
    """The parameter's value: int for integer types, float for REAL32/REAL64."""
    if param_type in FLOAT_TYPES:
        return float(wire)
    fmt = _INT_FORMATS.get(param_type)
    if fmt is None:
        return float(wire)  # unknown type: keep what came, don't guess
    if encoding == "c_cast":
        return round(wire) if math.isfinite(wire) else 0
    raw = struct.pack("<f", wire)
    return int(struct.unpack(fmt, raw[: struct.calcsize(fmt)])[0])


def values_equal(a: ParamValueT, b: ParamValueT, param_type: int) -> bool:
    """Equal as the vehicle stores them: floats compare at float32 precision."""
    if param_type in FLOAT_TYPES or isinstance(a, float) or isinstance(b, float):
        fa, fb = _f32(float(a)), _f32(float(b))
        return fa == fb or (math.isnan(fa) and math.isnan(fb))
    return a == b


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: ParamValueT
    param_type: int  # MAV_PARAM_TYPE
    index: int  # INDEX_NONE if the vehicle didn't say
    count: int

    @classmethod
    def from_msg(cls, msg: Message, encoding: Encoding) -> Param:
        return cls(
            name=param_name(msg.param_id),
            value=decode_value(msg.param_value, msg.param_type, encoding),
            param_type=msg.param_type,
            index=msg.param_index,
            count=msg.param_count,
        )


class ParamStatus(enum.Enum):
    PENDING = "pending"
    OK = "ok"
    TIMEOUT = "timeout"
    REJECTED = "rejected"  # set: the vehicle kept echoing a different value


class Step(enum.Enum):
    IDLE = "idle"
    AWAIT_VALUE = "await_value"  # read one, set
    AWAIT_LIST = "await_list"  # read all: PARAM_REQUEST_LIST sent, stream running
    FILL_GAPS = "fill_gaps"  # read all: re-requesting missing indices one by one
    DONE = "done"


@dataclass(frozen=True, slots=True)
class ParamResult:
    """Read one or set one. For a set, `param` is the vehicle's last echo."""

    name: str
    status: ParamStatus
    param: Param | None
    attempts: int
    requested: ParamValueT | None = None  # set only

    @property
    def ok(self) -> bool:
        return self.status is ParamStatus.OK

    @property
    def value(self) -> ParamValueT | None:
        return None if self.param is None else self.param.value

    def raise_for_status(self) -> None:
        if self.status is ParamStatus.OK:
            return
        if self.status is ParamStatus.TIMEOUT:
            raise ParamTimeout(self.name, self.attempts)
        if self.status is ParamStatus.REJECTED:
            raise ParamError(
                self.name, f"set to {self.requested!r} but the vehicle holds {self.value!r}"
            )
        raise RuntimeError(f"parameter {self.name}: transaction has not finished")


@dataclass(frozen=True, slots=True)
class ParamListResult:
    status: ParamStatus
    params: dict[str, Param]
    count: int | None  # what the vehicle announced
    missing: tuple[int, ...]  # indices never received (on timeout)
    attempts: int  # requests sent: the list request(s) plus every gap re-request

    @property
    def ok(self) -> bool:
        return self.status is ParamStatus.OK

    def values(self) -> dict[str, ParamValueT]:
        return {name: p.value for name, p in self.params.items()}

    def raise_for_status(self) -> None:
        if self.status is ParamStatus.OK:
            return
        if self.status is ParamStatus.TIMEOUT:
            raise ParamError(
                "*",
                f"list incomplete: {len(self.missing)} of {self.count} missing"
                if self.count is not None
                else "no PARAM_VALUE to PARAM_REQUEST_LIST",
            )
        raise RuntimeError("parameter list has not finished")


class _ParamTransaction:
    def __init__(
        self, target: tuple[int, int], *, encoding: Encoding, timeout_s: float, max_retries: int
    ) -> None:
        self.target = target
        self.encoding = encoding
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.step = Step.IDLE
        self.attempts = 0
        self.ignored = 0  # PARAM_VALUEs that weren't what we waited for
        self._deadline_s: float | None = None
        self._status = ParamStatus.PENDING

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    @property
    def deadline_s(self) -> float | None:
        return self._deadline_s

    def _due(self, now_s: float) -> bool:
        return not self.done and self._deadline_s is not None and now_s >= self._deadline_s

    def _finish(self, status: ParamStatus) -> None:
        self._status = status
        self.step = Step.DONE
        self._deadline_s = None

    def _read_request(self, name: str, index: int = -1) -> Message:
        pid = param_id_bytes(name) if name else b""
        return mav.MAVLink_param_request_read_message(self.target[0], self.target[1], pid, index)


class ParamRead(_ParamTransaction):
    """PARAM_REQUEST_READ by name until the PARAM_VALUE with that name comes back."""

    def __init__(
        self,
        target: tuple[int, int],
        name: str,
        *,
        encoding: Encoding,
        timeout_s: float = PARAM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(target, encoding=encoding, timeout_s=timeout_s, max_retries=max_retries)
        param_id_bytes(name)
        self.name = name
        self._param: Param | None = None

    @property
    def result(self) -> ParamResult:
        return ParamResult(self.name, self._status, self._param, self.attempts)

    def start(self, now_s: float) -> list[Message]:
        self.step = Step.AWAIT_VALUE
        return self._send(now_s)

    def _send(self, now_s: float) -> list[Message]:
        self.attempts += 1
        self._deadline_s = now_s + self.timeout_s
        return [self._read_request(self.name)]

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done or msg.get_type() != "PARAM_VALUE":
            return []
        if param_name(msg.param_id) != self.name:
            self.ignored += 1
            return []
        self._param = Param.from_msg(msg, self.encoding)
        self._finish(ParamStatus.OK)
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._due(now_s):
            return []
        if self.attempts > self.max_retries:
            self._finish(ParamStatus.TIMEOUT)
            return []
        return self._send(now_s)


class ParamSet(_ParamTransaction):
    """PARAM_SET, then wait for the PARAM_VALUE echo and check it holds what we asked.

    An echo with a different value (a late echo of the old value, or the vehicle clamping
    or refusing) triggers a resend; if the echo still differs when the retries are spent the
    result is REJECTED, carrying what the vehicle holds. No echo at all is TIMEOUT.
    """

    def __init__(
        self,
        target: tuple[int, int],
        name: str,
        value: ParamValueT,
        param_type: int,
        *,
        encoding: Encoding,
        timeout_s: float = PARAM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        super().__init__(target, encoding=encoding, timeout_s=timeout_s, max_retries=max_retries)
        self._pid = param_id_bytes(name)
        self.name = name
        self.value = value
        self.param_type = param_type
        self._wire = encode_value(value, param_type, encoding)  # raises on unsendable values
        self._echo: Param | None = None

    @property
    def result(self) -> ParamResult:
        return ParamResult(self.name, self._status, self._echo, self.attempts, self.value)

    def start(self, now_s: float) -> list[Message]:
        self.step = Step.AWAIT_VALUE
        return self._send(now_s)

    def _send(self, now_s: float) -> list[Message]:
        self.attempts += 1
        self._deadline_s = now_s + self.timeout_s
        return [
            mav.MAVLink_param_set_message(
                self.target[0], self.target[1], self._pid, self._wire, self.param_type
            )
        ]

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done or msg.get_type() != "PARAM_VALUE":
            return []
        if param_name(msg.param_id) != self.name:
            self.ignored += 1
            return []
        self._echo = Param.from_msg(msg, self.encoding)
        if values_equal(self._echo.value, self.value, msg.param_type):
            self._finish(ParamStatus.OK)
            return []
        if self.attempts > self.max_retries:
            self._finish(ParamStatus.REJECTED)
            return []
        return self._send(now_s)

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._due(now_s):
            return []
        if self.attempts > self.max_retries:
            mismatch = self._echo is not None
            self._finish(ParamStatus.REJECTED if mismatch else ParamStatus.TIMEOUT)
            return []
        return self._send(now_s)


class ParamReadAll(_ParamTransaction):
    """PARAM_REQUEST_LIST, collect by index, then fetch the gaps one by one by index."""

    def __init__(
        self,
        target: tuple[int, int],
        *,
        encoding: Encoding,
        timeout_s: float = PARAM_TIMEOUT_S,
        max_retries: int = MAX_RETRIES,
        list_silence_s: float = LIST_SILENCE_S,
    ) -> None:
        super().__init__(target, encoding=encoding, timeout_s=timeout_s, max_retries=max_retries)
        self.list_silence_s = list_silence_s
        self.count: int | None = None
        self._by_index: dict[int, Param] = {}
        self._gap: int | None = None  # the index being re-requested
        self._retries_in_step = 0

    @property
    def missing(self) -> tuple[int, ...]:
        if self.count is None:
            return ()
        return tuple(i for i in range(self.count) if i not in self._by_index)

    @property
    def result(self) -> ParamListResult:
        params = {p.name: p for _, p in sorted(self._by_index.items())}
        return ParamListResult(self._status, params, self.count, self.missing, self.attempts)

    def start(self, now_s: float) -> list[Message]:
        self.step = Step.AWAIT_LIST
        return self._request_list(now_s)

    def _request_list(self, now_s: float) -> list[Message]:
        self.attempts += 1
        self._deadline_s = now_s + self.list_silence_s
        return [mav.MAVLink_param_request_list_message(self.target[0], self.target[1])]

    def on_message(self, msg: Message, now_s: float) -> list[Message]:
        if self.done or msg.get_type() != "PARAM_VALUE":
            return []
        index, count = msg.param_index, msg.param_count
        if (
            index == INDEX_NONE
            or not 0 <= index < count
            or (self.count is not None and count != self.count)
        ):
            # Echoes of somebody's PARAM_SET carry no index; a changed count means the
            # vehicle's table changed under us and its indices can't be mixed.
            self.ignored += 1
            return []
        self.count = count
        if index not in self._by_index:
            self._by_index[index] = Param.from_msg(msg, self.encoding)
            self._retries_in_step = 0
        if len(self._by_index) == count:
            self._finish(ParamStatus.OK)
            return []
        if self.step is Step.AWAIT_LIST:
            self._deadline_s = now_s + self.list_silence_s
            return []
        if self._gap == index:
            return self._next_gap(now_s)
        return []

    def on_timer(self, now_s: float) -> list[Message]:
        if not self._due(now_s):
            return []
        if self.step is Step.AWAIT_LIST:
            if self.count is None:
                # Not one value yet: the request itself (or the whole stream) was lost.
                if self.attempts > self.max_retries:
                    self._finish(ParamStatus.TIMEOUT)
                    return []
                return self._request_list(now_s)
            self.step = Step.FILL_GAPS
            return self._next_gap(now_s)
        if self._retries_in_step >= self.max_retries:
            self._finish(ParamStatus.TIMEOUT)
            return []
        self._retries_in_step += 1
        return self._request_gap(now_s)

    def _next_gap(self, now_s: float) -> list[Message]:
        self._retries_in_step = 0
        missing = self.missing
        if not missing:
            self._finish(ParamStatus.OK)
            return []
        self._gap = missing[0]
        return self._request_gap(now_s)

    def _request_gap(self, now_s: float) -> list[Message]:
        assert self._gap is not None
        self.attempts += 1
        self._deadline_s = now_s + self.timeout_s
        return [self._read_request("", self._gap)]
